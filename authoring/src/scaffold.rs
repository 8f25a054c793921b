//! The deck written by `edetail new`: passes `edetail check` with zero warnings and
//! uses every feature. Files live in `authoring/scaffold/` and are embedded here.

use std::path::Path;

/// Scaffold files: deck-relative path and bytes. `deck.toml` holds `{{VALID_FROM}}`
/// and `{{VALID_UNTIL}}` placeholders filled by [`files`].
const FILES: &[(&str, &[u8])] = &[
    ("deck.toml", include_bytes!("../scaffold/deck.toml")),
    ("isi.md", include_bytes!("../scaffold/isi.md")),
    (
        "slides/01-intro.md",
        include_bytes!("../scaffold/slides/01-intro.md"),
    ),
    (
        "slides/02-evidence.md",
        include_bytes!("../scaffold/slides/02-evidence.md"),
    ),
    (
        "slides/03-engage.md",
        include_bytes!("../scaffold/slides/03-engage.md"),
    ),
    (
        "assets/logo.svg",
        include_bytes!("../scaffold/assets/logo.svg"),
    ),
    (
        "assets/moa.svg",
        include_bytes!("../scaffold/assets/moa.svg"),
    ),
    (
        "assets/dosing-poster.svg",
        include_bytes!("../scaffold/assets/dosing-poster.svg"),
    ),
    (
        "assets/dosing.vtt",
        include_bytes!("../scaffold/assets/dosing.vtt"),
    ),
    (
        "assets/dosing.mp4",
        include_bytes!("../scaffold/assets/dosing.mp4"),
    ),
];

/// The scaffold's files with the approval window set to cover `today`
/// (`YYYY-MM-DD`): from January 1st of this year to December 31st of next year.
pub fn files(today: &str) -> Vec<(&'static str, Vec<u8>)> {
    let year: i32 = today.get(..4).and_then(|y| y.parse().ok()).unwrap_or(2026);
    FILES
        .iter()
        .map(|(path, bytes)| {
            if *path == "deck.toml" {
                let text = String::from_utf8_lossy(bytes)
                    .replace("{{VALID_FROM}}", &format!("{year:04}-01-01"))
                    .replace("{{VALID_UNTIL}}", &format!("{:04}-12-31", year + 1));
                (*path, text.into_bytes())
            } else {
                (*path, bytes.to_vec())
            }
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{0}` already exists and is not empty; choose a new folder")]
    NotEmpty(String),
    #[error("cannot write `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Write the scaffold deck into `dir` (created; must be absent or empty).
pub fn write(dir: &Path, today: &str) -> Result<(), ScaffoldError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| ScaffoldError::Io { path, source }
    };
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(ScaffoldError::NotEmpty(dir.display().to_string()));
        }
    }
    for (path, bytes) in files(today) {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&target, bytes).map_err(io(&target))?;
    }
    Ok(())
}
