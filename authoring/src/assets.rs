//! Deck assets: path checks (must stay inside the deck folder), reading, hashing,
//! content-addressed bundle paths and the size budget.

use std::collections::BTreeMap;
use std::path::{Component as PathComponent, Path, PathBuf};

use edetail_format::bundle::AssetEntry;
use edetail_format::sha256_hex;

/// Why a deck-relative path was refused.
#[derive(Debug, PartialEq)]
pub enum PathProblem {
    Empty,
    Remote,
    Escapes,
}

/// Normalise a deck-relative path lexically: `/`-separated, no `.`, no `..` above the root.
pub fn normalize(rel: &str) -> Result<String, PathProblem> {
    let rel = rel.trim();
    if rel.is_empty() {
        return Err(PathProblem::Empty);
    }
    let lower = rel.to_ascii_lowercase();
    if lower.contains("://") || lower.starts_with("data:") || lower.starts_with("//") {
        return Err(PathProblem::Remote);
    }
    if rel.starts_with('/') || rel.starts_with('\\') || rel.as_bytes().get(1) == Some(&b':') {
        return Err(PathProblem::Escapes);
    }
    // Percent-encoded dots and separators (`%2e%2e/`, `..%2f`): a server or a
    // browser could decode them into `..` later, so they are refused outright.
    if ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
        return Err(PathProblem::Escapes);
    }
    let mut parts: Vec<&str> = Vec::new();
    for p in rel.split(['/', '\\']) {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathProblem::Escapes);
                }
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err(PathProblem::Empty);
    }
    Ok(parts.join("/"))
}

/// Resolve a normalised deck-relative path to a file inside the deck, refusing
/// symlinks that lead outside it.
pub fn resolve_inside(
    root: &Path,
    canonical_root: Option<&Path>,
    norm: &str,
) -> Result<PathBuf, PathProblem> {
    let path = root.join(norm);
    if let (Some(croot), Ok(canon)) = (canonical_root, path.canonicalize())
        && !canon.starts_with(croot)
    {
        return Err(PathProblem::Escapes);
    }
    // Lexical check (normalize already refused `..` above the root).
    if path
        .strip_prefix(root)
        .map(|p| {
            p.components()
                .any(|c| matches!(c, PathComponent::ParentDir))
        })
        .unwrap_or(true)
    {
        return Err(PathProblem::Escapes);
    }
    Ok(path)
}

/// Media type by file extension.
pub fn media_type(ext: &str) -> &'static str {
    match ext {
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "avif" => "image/avif",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "vtt" => "text/vtt",
        "pdf" => "application/pdf",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Where a deck's files come from: a folder on disk, or memory (tests, fuzzing,
/// editors with unsaved buffers).
#[derive(Debug, Clone)]
pub enum DeckSource {
    Dir {
        root: PathBuf,
        canonical_root: Option<PathBuf>,
    },
    /// Files by normalised deck-relative path (`slides/01.md`).
    Memory(BTreeMap<String, Vec<u8>>),
}

/// Why a deck file could not be read.
#[derive(Debug, PartialEq)]
pub enum FileError {
    NotFound,
    Escapes,
    Io(String),
}

impl DeckSource {
    pub fn dir(root: &Path) -> Self {
        DeckSource::Dir {
            root: root.to_path_buf(),
            canonical_root: root.canonicalize().ok(),
        }
    }

    /// Read a file by normalised deck-relative path (see [`normalize`]).
    pub fn read(&self, norm: &str) -> Result<Vec<u8>, FileError> {
        match self {
            DeckSource::Memory(files) => files.get(norm).cloned().ok_or(FileError::NotFound),
            DeckSource::Dir {
                root,
                canonical_root,
            } => {
                let path = resolve_inside(root, canonical_root.as_deref(), norm)
                    .map_err(|_| FileError::Escapes)?;
                if !path.is_file() {
                    return Err(FileError::NotFound);
                }
                std::fs::read(&path).map_err(|e| FileError::Io(e.to_string()))
            }
        }
    }
}

pub enum Loaded {
    Ok { bundle_path: String, size: u64 },
    Missing,
    Escapes,
    Unreadable(String),
}

/// Every asset the deck uses, keyed by normalised deck-relative path.
pub struct AssetStore {
    source: std::sync::Arc<DeckSource>,
    by_source: BTreeMap<String, LoadedInner>,
    /// Bundle path -> (entry, bytes).
    pub files: BTreeMap<String, (AssetEntry, Vec<u8>)>,
}

#[derive(Clone)]
enum LoadedInner {
    Ok(String, u64),
    Missing,
    Escapes,
    Unreadable(String),
}

impl AssetStore {
    pub fn new(source: std::sync::Arc<DeckSource>) -> Self {
        AssetStore {
            source,
            by_source: BTreeMap::new(),
            files: BTreeMap::new(),
        }
    }

    /// Load (once) the asset at a normalised deck-relative path.
    pub fn load(&mut self, norm: &str) -> Loaded {
        if !self.by_source.contains_key(norm) {
            let inner = self.read(norm);
            self.by_source.insert(norm.to_string(), inner);
        }
        match self.by_source.get(norm).cloned() {
            Some(LoadedInner::Ok(p, s)) => Loaded::Ok {
                bundle_path: p,
                size: s,
            },
            Some(LoadedInner::Escapes) => Loaded::Escapes,
            Some(LoadedInner::Unreadable(e)) => Loaded::Unreadable(e),
            Some(LoadedInner::Missing) | None => Loaded::Missing,
        }
    }

    fn read(&mut self, norm: &str) -> LoadedInner {
        let bytes = match self.source.read(norm) {
            Ok(b) => b,
            Err(FileError::NotFound) => return LoadedInner::Missing,
            Err(FileError::Escapes) => return LoadedInner::Escapes,
            Err(FileError::Io(e)) => return LoadedInner::Unreadable(e),
        };
        let sha = sha256_hex(&bytes);
        let ext = Path::new(norm)
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or_else(|| "bin".to_string());
        let bundle_path = format!("{}/{sha}.{ext}", edetail_format::bundle::ASSETS_DIR);
        let size = bytes.len() as u64;
        self.files.entry(bundle_path.clone()).or_insert_with(|| {
            (
                AssetEntry {
                    path: bundle_path.clone(),
                    source: norm.to_string(),
                    sha256: sha,
                    size,
                    media_type: media_type(&ext).to_string(),
                },
                bytes,
            )
        });
        LoadedInner::Ok(bundle_path, size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses_escapes() {
        assert_eq!(normalize("./assets//a.svg"), Ok("assets/a.svg".into()));
        assert_eq!(normalize("assets/x/../a.svg"), Ok("assets/a.svg".into()));
        assert_eq!(normalize("../secret.png"), Err(PathProblem::Escapes));
        assert_eq!(normalize("assets/../../x"), Err(PathProblem::Escapes));
        assert_eq!(normalize("/etc/passwd"), Err(PathProblem::Escapes));
        assert_eq!(normalize("C:\\x.png"), Err(PathProblem::Escapes));
        assert_eq!(normalize("https://x/y.png"), Err(PathProblem::Remote));
        assert_eq!(normalize(" "), Err(PathProblem::Empty));
        assert_eq!(normalize("..\\x.png"), Err(PathProblem::Escapes));
        assert_eq!(normalize("%2e%2e/x.png"), Err(PathProblem::Escapes));
        assert_eq!(normalize("assets/..%2Fx.png"), Err(PathProblem::Escapes));
    }
}
