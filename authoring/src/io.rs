//! Writing and reading bundles: the bundle directory and the single-file `.edetail`
//! archive (a tar with deterministic headers), with hash verification on read.
//! Either form may carry `bundle.sig` ([`edetail_format::signature`]); this module
//! stores and returns its bytes, the signing and checking happen in the CLI/server.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component as PathComponent, Path};

use edetail_format::bundle::{
    ASSETS_DIR, BUNDLE_HASH_FILE, BUNDLE_MANIFEST_FILE, Bundle, BundleError, verify_and_parse,
    verify_asset,
};
use edetail_format::sha256_hex;
use edetail_format::signature::SIGNATURE_FILE;

/// Largest file accepted from an archive (guards memory on hostile input).
pub const MAX_ENTRY_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// A bundle read back from disk, every hash verified.
#[derive(Debug)]
pub struct LoadedBundle {
    pub bundle: Bundle,
    /// Hex sha256 of `bundle.json` (the bundle hash).
    pub hash: String,
    /// Asset bytes by bundle path (`assets/<sha256>.<ext>`).
    pub assets: BTreeMap<String, Vec<u8>>,
    /// `bundle.sig` bytes when present (not verified here).
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
    #[error("unexpected entry in bundle archive: `{0}`")]
    Unexpected(String),
    #[error("`{BUNDLE_HASH_FILE}` is not a hex sha256")]
    BadHashFile,
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
    move |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The files of a bundle, by bundle-relative path, sorted: what both forms contain.
pub fn bundle_files(
    bundle: &Bundle,
    assets: &BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    let json = bundle.to_json();
    let hash = sha256_hex(&json);
    let mut files = BTreeMap::new();
    for a in &bundle.assets {
        if let Some(bytes) = assets.get(&a.path) {
            files.insert(a.path.clone(), bytes.clone());
        }
    }
    files.insert(BUNDLE_MANIFEST_FILE.to_string(), json);
    files.insert(
        BUNDLE_HASH_FILE.to_string(),
        format!("{hash}\n").into_bytes(),
    );
    files
}

/// Write the bundle directory; returns the bundle hash. Stale files in `dir/assets`
/// that the bundle does not list are removed, and so is a stale `bundle.sig`.
pub fn write_bundle_dir(
    bundle: &Bundle,
    assets: &BTreeMap<String, Vec<u8>>,
    dir: &Path,
) -> std::io::Result<String> {
    write_bundle_dir_signed(bundle, assets, dir, |_| None)
}

/// [`write_bundle_dir`] with a `bundle.sig`: `sign` gets the bundle hash and returns
/// the signature file's bytes (None: unsigned, any old `bundle.sig` is removed).
pub fn write_bundle_dir_signed(
    bundle: &Bundle,
    assets: &BTreeMap<String, Vec<u8>>,
    dir: &Path,
    sign: impl FnOnce(&str) -> Option<Vec<u8>>,
) -> std::io::Result<String> {
    let mut files = bundle_files(bundle, assets);
    let sig = sign(&hash_of(&files));
    let sig_path = dir.join(SIGNATURE_FILE);
    match sig {
        Some(bytes) => {
            files.insert(SIGNATURE_FILE.to_string(), bytes);
        }
        None if sig_path.is_file() => std::fs::remove_file(&sig_path)?,
        None => {}
    }
    let assets_dir = dir.join(ASSETS_DIR);
    std::fs::create_dir_all(&assets_dir)?;
    for entry in std::fs::read_dir(&assets_dir)? {
        let entry = entry?;
        let name = format!("{ASSETS_DIR}/{}", entry.file_name().to_string_lossy());
        if !files.contains_key(&name) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    for (path, bytes) in &files {
        let target = dir.join(path);
        // Content-addressed assets that already exist with the right bytes are kept.
        if path.starts_with(ASSETS_DIR) && std::fs::read(&target).is_ok_and(|b| b == *bytes) {
            continue;
        }
        std::fs::write(target, bytes)?;
    }
    Ok(hash_of(&files))
}

/// The bundle hash as written in `bundle.sha256` of [`bundle_files`] output.
fn hash_of(files: &BTreeMap<String, Vec<u8>>) -> String {
    files
        .get(BUNDLE_HASH_FILE)
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .unwrap_or_default()
}

/// Archive bytes: a tar of the bundle files, sorted by path, with fixed mtime 0,
/// uid/gid 0, mode 0644 and empty owner names, so equal bundles give equal bytes.
pub fn archive_bytes(
    bundle: &Bundle,
    assets: &BTreeMap<String, Vec<u8>>,
) -> std::io::Result<Vec<u8>> {
    Ok(archive_with_hash(bundle, assets, |_| None)?.0)
}

fn archive_with_hash(
    bundle: &Bundle,
    assets: &BTreeMap<String, Vec<u8>>,
    sign: impl FnOnce(&str) -> Option<Vec<u8>>,
) -> std::io::Result<(Vec<u8>, String)> {
    let mut files = bundle_files(bundle, assets);
    if let Some(sig) = sign(&hash_of(&files)) {
        files.insert(SIGNATURE_FILE.to_string(), sig);
    }
    Ok((tar_of(&files)?, hash_of(&files)))
}

/// A deterministic tar of `files` (sorted by path).
fn tar_of(files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<Vec<u8>> {
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

/// Write the single-file `.edetail` archive; returns the bundle hash.
pub fn write_archive(
    bundle: &Bundle,
    assets: &BTreeMap<String, Vec<u8>>,
    path: &Path,
) -> std::io::Result<String> {
    write_archive_signed(bundle, assets, path, |_| None)
}

/// [`write_archive`] with a `bundle.sig` (see [`write_bundle_dir_signed`]).
pub fn write_archive_signed(
    bundle: &Bundle,
    assets: &BTreeMap<String, Vec<u8>>,
    path: &Path,
    sign: impl FnOnce(&str) -> Option<Vec<u8>>,
) -> std::io::Result<String> {
    let (bytes, hash) = archive_with_hash(bundle, assets, sign)?;
    write_file(path, &bytes)?;
    Ok(hash)
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

/// Add (or replace) `bundle.sig` in an existing bundle directory or `.edetail`
/// archive, after verifying the bundle; `sign` gets the bundle hash and returns the
/// signature file's bytes. The archive's other entries are kept byte for byte (the
/// tar is rewritten deterministically). Returns the bundle hash.
pub fn add_signature(path: &Path, sign: impl FnOnce(&str) -> Vec<u8>) -> Result<String, ReadError> {
    if path.is_dir() {
        let loaded = read_bundle(path)?;
        let p = path.join(SIGNATURE_FILE);
        std::fs::write(&p, sign(&loaded.hash)).map_err(io_err(&p))?;
        return Ok(loaded.hash);
    }
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut files = archive_files(file)?;
    let loaded = verify(&mut files.clone(), true)?;
    files.insert(SIGNATURE_FILE.to_string(), sign(&loaded.hash));
    let bytes = tar_of(&files).map_err(io_err(path))?;
    write_file(path, &bytes).map_err(io_err(path))?;
    Ok(loaded.hash)
}

/// Is `p` a safe bundle-relative path: relative, only normal components, `/`-separated.
fn safe_rel(p: &str) -> bool {
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
fn asset_path_ok(p: &str) -> bool {
    safe_rel(p)
        && p.strip_prefix(ASSETS_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|name| !name.contains('/'))
}

fn verify(files: &mut BTreeMap<String, Vec<u8>>, strict: bool) -> Result<LoadedBundle, ReadError> {
    let hash_bytes = files
        .remove(BUNDLE_HASH_FILE)
        .ok_or_else(|| ReadError::Missing(BUNDLE_HASH_FILE.into()))?;
    let hash = std::str::from_utf8(&hash_bytes)
        .map_err(|_| ReadError::BadHashFile)?
        .trim()
        .to_string();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ReadError::BadHashFile);
    }
    let json = files
        .remove(BUNDLE_MANIFEST_FILE)
        .ok_or_else(|| ReadError::Missing(BUNDLE_MANIFEST_FILE.into()))?;
    let bundle = verify_and_parse(&json, &hash)?;
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
        hash: hash.to_ascii_lowercase(),
        assets,
        signature,
    })
}

/// Read and verify a bundle: `path` is a bundle directory or a `.edetail` archive.
/// Checks the bundle hash, every slide hash and every asset hash and size, and refuses
/// archive entries that are not plain files at safe relative paths.
pub fn read_bundle(path: &Path) -> Result<LoadedBundle, ReadError> {
    if path.is_dir() {
        let mut files = BTreeMap::new();
        for name in [BUNDLE_HASH_FILE, BUNDLE_MANIFEST_FILE] {
            let p = path.join(name);
            if !p.is_file() {
                return Err(ReadError::Missing(name.into()));
            }
            files.insert(name.to_string(), std::fs::read(&p).map_err(io_err(&p))?);
        }
        // Parse first so only listed, safe asset paths are opened.
        let hash = String::from_utf8_lossy(&files[BUNDLE_HASH_FILE])
            .trim()
            .to_string();
        let listed = verify_and_parse(&files[BUNDLE_MANIFEST_FILE], &hash)?;
        for a in &listed.assets {
            if !asset_path_ok(&a.path) {
                return Err(ReadError::UnsafePath(a.path.clone()));
            }
            let p = path.join(&a.path);
            if !p.is_file() {
                return Err(ReadError::Missing(a.path.clone()));
            }
            files.insert(a.path.clone(), std::fs::read(&p).map_err(io_err(&p))?);
        }
        let sig = path.join(SIGNATURE_FILE);
        if sig.is_file() {
            files.insert(
                SIGNATURE_FILE.to_string(),
                std::fs::read(&sig).map_err(io_err(&sig))?,
            );
        }
        return verify(&mut files, false);
    }
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    read_archive(file)
}

/// Read and verify a `.edetail` archive from any reader.
pub fn read_archive(reader: impl Read) -> Result<LoadedBundle, ReadError> {
    verify(&mut archive_files(reader)?, true)
}

/// The plain files of an archive by path (unsafe paths, links, duplicates refused).
fn archive_files(reader: impl Read) -> Result<BTreeMap<String, Vec<u8>>, ReadError> {
    let mut archive = tar::Archive::new(reader);
    let mut files = BTreeMap::new();
    let here = Path::new("<archive>");
    for entry in archive.entries().map_err(io_err(here))? {
        let mut entry = entry.map_err(io_err(here))?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).to_string();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            let trimmed = raw_path.trim_end_matches('/');
            if trimmed == ASSETS_DIR {
                continue;
            }
            return Err(ReadError::Unexpected(raw_path));
        }
        if !kind.is_file() {
            return Err(ReadError::UnsafePath(raw_path));
        }
        if !safe_rel(&raw_path) {
            return Err(ReadError::UnsafePath(raw_path));
        }
        let size = entry.header().size().map_err(io_err(here))?;
        if size > MAX_ENTRY_BYTES {
            return Err(ReadError::Unexpected(format!("{raw_path} ({size} bytes)")));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
        entry.read_to_end(&mut bytes).map_err(io_err(here))?;
        if files.insert(raw_path.clone(), bytes).is_some() {
            return Err(ReadError::Unexpected(format!("{raw_path} (twice)")));
        }
    }
    Ok(files)
}
