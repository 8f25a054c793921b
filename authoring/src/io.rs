//! Writing and reading bundles: the bundle directory and the single-file `.edetail`
//! archive (a tar with deterministic headers), with hash verification on read.
//! Either form may carry `bundle.sig` ([`edetail_format::signature`]); this module
//! stores and returns its bytes, the signing and checking happen in the CLI/server.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use edetail_format::bundle::{
    ASSETS_DIR, BUNDLE_HASH_FILE, BUNDLE_MANIFEST_FILE, Bundle, verify_and_parse,
};
use edetail_format::sha256_hex;
use edetail_format::signature::SIGNATURE_FILE;

pub use edetail_format::archive::{LoadedBundle, ReadError};
use edetail_format::archive::{archive_files, asset_path_ok, io_err, tar_of, verify_files};

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
    let mut files = archive_files(file, u64::MAX)?;
    let loaded = verify_files(&mut files.clone(), true)?;
    files.insert(SIGNATURE_FILE.to_string(), sign(&loaded.hash));
    let bytes = tar_of(&files).map_err(io_err(path))?;
    write_file(path, &bytes).map_err(io_err(path))?;
    Ok(loaded.hash)
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
        return verify_files(&mut files, false);
    }
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    read_archive(file)
}

/// Read and verify a `.edetail` archive from any reader (the shared reader of
/// [`edetail_format::archive`]; no limit on the total size besides [`edetail_format::archive::MAX_ENTRY_BYTES`]
/// per file).
pub fn read_archive(reader: impl Read) -> Result<LoadedBundle, ReadError> {
    edetail_format::archive::read_archive(reader, u64::MAX)
}
