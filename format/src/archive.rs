//! The `.edetail` archive: one tar holding `bundle.json`, `bundle.sha256`, optionally
//! `bundle.sig`, and `assets/<sha256>.<ext>`. The one reader of archives for every
//! program that takes them from outside (the compiler's `read_archive`, the server's
//! publish endpoint), so both refuse the same hostile inputs the same way, and the
//! deterministic writer the compiler uses. Native only (feature `archive`).
//!
//! Reading refuses: entries that are not regular files (links, devices), unsafe paths
//! (absolute, `..`, `.` inside, backslashes, NUL), the same path twice, directories
//! other than `assets/`, an entry or a whole archive over its size limit, a
//! `bundle.sha256` that is not a hex sha256, any hash mismatch ([`verify_and_parse`],
//! [`verify_asset`]), a listed asset missing, and (strict) an unlisted file. A leading
//! `./` (as `tar -C dir -cf x.tar .` writes) is accepted and removed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component as PathComponent, Path};

use crate::bundle::{
    ASSETS_DIR, BUNDLE_HASH_FILE, BUNDLE_MANIFEST_FILE, Bundle, BundleError, verify_and_parse,
    verify_asset,
};
use crate::signature::SIGNATURE_FILE;

/// Largest file accepted from an archive (guards memory on hostile input).
pub const MAX_ENTRY_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// A bundle read back from a directory or an archive, every hash verified.
#[derive(Debug)]
pub struct LoadedBundle {
    pub bundle: Bundle,
    /// Hex sha256 of `bundle.json` (the bundle hash), lower case.
    pub hash: String,
    /// The `bundle.json` bytes, exactly as read (the bundle hash is theirs).
    pub manifest: Vec<u8>,
    /// Asset bytes by bundle path (`assets/<sha256>.<ext>`).
    pub assets: BTreeMap<String, Vec<u8>>,
    /// `bundle.sig` bytes when present (not verified here: see [`crate::signature`]).
    pub signature: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("I/O error reading `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bundle is missing `{0}`")]
    Missing(String),
    #[error("unsafe path in bundle: `{0}`")]
    UnsafePath(String),
    #[error("only regular files are allowed in a bundle archive: `{0}` is not one")]
    NotRegular(String),
    #[error("unexpected entry in bundle archive: `{0}`")]
    Unexpected(String),
    #[error("bundle archive is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("empty or not a tar archive")]
    Empty,
    #[error("`{BUNDLE_HASH_FILE}` is not a hex sha256")]
    BadHashFile,
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

/// The error for an I/O failure on `path`.
pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Is `p` a safe bundle-relative path: relative, only normal components, `/`-separated.
pub fn safe_rel(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && !p.contains('\0')
        && Path::new(p)
            .components()
            .all(|c| matches!(c, PathComponent::Normal(_)))
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

/// An asset path listed in `bundle.json` must be `assets/<file>`.
pub fn asset_path_ok(p: &str) -> bool {
    safe_rel(p)
        && p.strip_prefix(ASSETS_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|name| !name.contains('/'))
}

/// The plain files of an archive by path. Refuses links, unsafe paths, duplicates,
/// unknown directories, and more than `max_total` bytes of file content in all.
pub fn archive_files(
    reader: impl Read,
    max_total: u64,
) -> Result<BTreeMap<String, Vec<u8>>, ReadError> {
    let mut archive = tar::Archive::new(reader);
    let mut files = BTreeMap::new();
    let here = Path::new("<archive>");
    let mut total = 0u64;
    for entry in archive.entries().map_err(io_err(here))? {
        let mut entry = entry.map_err(io_err(here))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).to_string();
        let path = raw.strip_prefix("./").unwrap_or(&raw).to_string();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            let trimmed = path.trim_end_matches('/');
            if trimmed == ASSETS_DIR || trimmed.is_empty() || trimmed == "." {
                continue;
            }
            return Err(ReadError::Unexpected(raw));
        }
        if !kind.is_file() {
            return Err(ReadError::NotRegular(raw));
        }
        if !safe_rel(&path) {
            return Err(ReadError::UnsafePath(raw));
        }
        let size = entry.header().size().map_err(io_err(here))?;
        if size > MAX_ENTRY_BYTES {
            return Err(ReadError::Unexpected(format!("{raw} ({size} bytes)")));
        }
        total = total.saturating_add(size);
        if total > max_total {
            return Err(ReadError::TooLarge { limit: max_total });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
        // Read at most the declared size: a lying header cannot grow the buffer.
        (&mut entry)
            .take(size)
            .read_to_end(&mut bytes)
            .map_err(io_err(here))?;
        if files.insert(path, bytes).is_some() {
            return Err(ReadError::Unexpected(format!("{raw} (twice)")));
        }
    }
    if files.is_empty() {
        return Err(ReadError::Empty);
    }
    Ok(files)
}

/// Verify the files of a bundle (taken out of `files`): the bundle hash, schema,
/// structure and slide hashes, every listed asset, and with `strict` that nothing
/// unlisted is left (besides `bundle.sig`).
pub fn verify_files(
    files: &mut BTreeMap<String, Vec<u8>>,
    strict: bool,
) -> Result<LoadedBundle, ReadError> {
    let hash_bytes = files
        .remove(BUNDLE_HASH_FILE)
        .ok_or_else(|| ReadError::Missing(BUNDLE_HASH_FILE.into()))?;
    let hash = std::str::from_utf8(&hash_bytes)
        .map_err(|_| ReadError::BadHashFile)?
        .trim()
        .to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ReadError::BadHashFile);
    }
    let manifest = files
        .remove(BUNDLE_MANIFEST_FILE)
        .ok_or_else(|| ReadError::Missing(BUNDLE_MANIFEST_FILE.into()))?;
    let bundle = verify_and_parse(&manifest, &hash)?;
    let signature = files.remove(SIGNATURE_FILE);
    let mut assets = BTreeMap::new();
    for a in &bundle.assets {
        if !asset_path_ok(&a.path) {
            return Err(ReadError::UnsafePath(a.path.clone()));
        }
        let bytes = files
            .remove(&a.path)
            .ok_or_else(|| ReadError::Missing(a.path.clone()))?;
        verify_asset(a, &bytes)?;
        assets.insert(a.path.clone(), bytes);
    }
    if strict && let Some(extra) = files.keys().next() {
        return Err(ReadError::Unexpected(extra.clone()));
    }
    Ok(LoadedBundle {
        bundle,
        hash,
        manifest,
        assets,
        signature,
    })
}

/// Read and verify a `.edetail` archive from any reader (strict: no unlisted files),
/// with at most `max_total` bytes of file content.
pub fn read_archive(reader: impl Read, max_total: u64) -> Result<LoadedBundle, ReadError> {
    verify_files(&mut archive_files(reader, max_total)?, true)
}

/// A deterministic tar of `files` (sorted by path): mtime 0, uid/gid 0, mode 0644,
/// empty owner names, so equal files give equal bytes.
pub fn tar_of(files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, bytes) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)?;
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("")?;
        h.set_groupname("")?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        builder.append(&h, bytes.as_slice())?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_path(name).expect("path");
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(*kind);
            h.set_cksum();
            b.append(&h, *data).expect("append");
        }
        b.into_inner().expect("tar")
    }

    #[test]
    fn refuses_links_duplicates_dirs_and_oversize() {
        let link = raw_tar(&[("assets/a.svg", tar::EntryType::Symlink, b"")]);
        assert!(matches!(
            archive_files(link.as_slice(), 1 << 20),
            Err(ReadError::NotRegular(p)) if p == "assets/a.svg"
        ));
        let twice = raw_tar(&[
            ("bundle.json", tar::EntryType::Regular, b"{}"),
            ("./bundle.json", tar::EntryType::Regular, b"{}"),
        ]);
        let e = archive_files(twice.as_slice(), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let dir = raw_tar(&[("other/", tar::EntryType::Directory, b"")]);
        assert!(matches!(
            archive_files(dir.as_slice(), 1 << 20),
            Err(ReadError::Unexpected(_))
        ));
        let big = raw_tar(&[("bundle.json", tar::EntryType::Regular, &[b' '; 600])]);
        assert!(matches!(
            archive_files(big.as_slice(), 512),
            Err(ReadError::TooLarge { limit: 512 })
        ));
        assert!(matches!(
            archive_files(&[][..], 1 << 20),
            Err(ReadError::Empty)
        ));
        let e = archive_files(&b"not a tar archive\n".repeat(40)[..], 1 << 20).unwrap_err();
        assert!(!e.to_string().is_empty());
    }

    #[test]
    fn leading_dot_slash_is_accepted() {
        let t = raw_tar(&[
            ("./", tar::EntryType::Directory, b""),
            ("./assets/", tar::EntryType::Directory, b""),
            ("./bundle.sha256", tar::EntryType::Regular, b"x"),
        ]);
        let files = archive_files(t.as_slice(), 1 << 20).expect("read");
        assert_eq!(files.keys().collect::<Vec<_>>(), ["bundle.sha256"]);
    }

    #[test]
    fn bad_hash_file_and_missing_manifest() {
        let mut files = BTreeMap::from([(BUNDLE_HASH_FILE.to_string(), b"nothex".to_vec())]);
        assert!(matches!(
            verify_files(&mut files, true),
            Err(ReadError::BadHashFile)
        ));
        let mut files = BTreeMap::from([(BUNDLE_HASH_FILE.to_string(), b"ab".repeat(32))]);
        assert!(matches!(
            verify_files(&mut files, true),
            Err(ReadError::Missing(p)) if p == BUNDLE_MANIFEST_FILE
        ));
    }

    #[test]
    fn deterministic_tar_round_trips() {
        let files = BTreeMap::from([
            ("a.txt".to_string(), b"1".to_vec()),
            ("assets/b.bin".to_string(), vec![0u8; 700]),
        ]);
        let t1 = tar_of(&files).expect("tar");
        assert_eq!(t1, tar_of(&files).expect("tar"));
        assert_eq!(archive_files(t1.as_slice(), 1 << 20).expect("read"), files);
    }
}
