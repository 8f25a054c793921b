//! Bad input that must give a clear diagnostic, never a panic or an escape: invalid
//! UTF-8 in markdown, asset paths that try to leave the deck folder.
//! (Assets over the size budget: fixture `tests/fixtures/W0401-asset-over-budget`.)

use std::collections::BTreeMap;
use std::path::Path;

use edetail_authoring::{CompileOptions, Compiled, compile, compile_files, render_human};

const TODAY: &str = "2026-06-01";

const MANIFEST: &str = r#"[deck]
id = "bad"
title = "Bad input"
version = "1.0.0"
locale = "en-US"
sources = ["slides/a.md"]

[approval]
code = "B-1"
valid_from = 2026-01-01
valid_until = 2026-12-31

[[flow]]
id = "main"
title = "Main"
slides = ["a"]
"#;

fn slide(body: &str) -> String {
    format!("+++\nid = \"a\"\ntitle = \"A\"\n+++\n\n# A\n\n{body}\n")
}

#[test]
fn invalid_utf8_markdown_names_file_line_and_column() {
    let mut bytes = slide("Line one.\n\nCaf\u{e9} ok, then bad: ")
        .trim_end_matches('\n')
        .as_bytes()
        .to_vec();
    bytes.extend_from_slice(b"\xff\xfe broken\n");
    let mut files = BTreeMap::new();
    files.insert("deck.toml".to_string(), MANIFEST.as_bytes().to_vec());
    files.insert("slides/a.md".to_string(), bytes);
    let out = compile_files(files, &CompileOptions::new(TODAY));
    assert!(out.bundle.is_none());
    let in_file = out
        .diagnostics
        .iter()
        .find(|d| d.code == "E0003" && d.file.as_deref() == Some("slides/a.md"))
        .unwrap_or_else(|| panic!("{}", render_human(&out.diagnostics, false)));
    // The bad byte is on line 10 (the body's third line), after "Café ok, then bad: ".
    assert_eq!(
        (in_file.line, in_file.column),
        (10, 20),
        "{}",
        in_file.render()
    );
    assert!(
        in_file.render().contains("slides/a.md:10:"),
        "{}",
        in_file.render()
    );
    let in_manifest = out
        .diagnostics
        .iter()
        .find(|d| d.code == "E0003" && d.file.as_deref() == Some("deck.toml"))
        .expect("reported where deck.toml names the file");
    assert!(
        in_manifest.message.contains("line 10, column 20"),
        "{}",
        in_manifest.message
    );
}

#[test]
fn invalid_utf8_manifest_and_isi_are_diagnostics() {
    let mut files = BTreeMap::new();
    files.insert(
        "deck.toml".to_string(),
        b"[deck]\nid = \"\xc3\x28\"\n".to_vec(),
    );
    let out = compile_files(files, &CompileOptions::new(TODAY));
    let d = out.diagnostics.first().expect("a diagnostic");
    assert_eq!(
        (d.code, d.file.as_deref(), d.line, d.column),
        ("E0003", Some("deck.toml"), 2, 7)
    );

    let mut files = BTreeMap::new();
    let manifest = MANIFEST.replace("[[flow]]", "[isi]\nfile = \"isi.md\"\n\n[[flow]]");
    files.insert("deck.toml".to_string(), manifest.into_bytes());
    files.insert("slides/a.md".to_string(), slide("Fine.").into_bytes());
    files.insert("isi.md".to_string(), b"Safety \x80\n".to_vec());
    let out = compile_files(files, &CompileOptions::new(TODAY));
    assert!(out.bundle.is_none());
    assert!(
        out.diagnostics
            .iter()
            .any(|d| d.code == "E0003" && d.file.as_deref() == Some("isi.md") && d.line == 1),
        "{}",
        render_human(&out.diagnostics, false)
    );
}

/// A deck folder inside a temp dir, with a secret file next to (outside) the deck.
fn deck_with(body: &str, logo: Option<&str>) -> (tempfile::TempDir, Compiled) {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("secret.png"), b"SECRET-BYTES").expect("secret");
    let deck = tmp.path().join("deck");
    std::fs::create_dir_all(deck.join("slides")).expect("dirs");
    std::fs::create_dir_all(deck.join("assets")).expect("dirs");
    std::fs::write(deck.join("assets/ok.png"), b"png").expect("asset");
    let mut manifest = MANIFEST.to_string();
    if let Some(l) = logo {
        manifest.push_str(&format!(
            "\n[theme]\nlogo = {}\n",
            serde_json::to_string(l).expect("json")
        ));
    }
    std::fs::write(deck.join("deck.toml"), manifest).expect("manifest");
    std::fs::write(deck.join("slides/a.md"), slide(body)).expect("slide");
    let out = compile(&deck, &CompileOptions::new(TODAY)).expect("deck folder");
    (tmp, out)
}

fn escapes(tmp: &Path) -> Vec<String> {
    let secret = tmp.join("secret.png");
    vec![
        "../secret.png".into(),
        "assets/../../secret.png".into(),
        "..\\secret.png".into(),
        "assets\\..\\..\\secret.png".into(),
        "%2e%2e/secret.png".into(),
        "%2E%2E%2Fsecret.png".into(),
        "..%2fsecret.png".into(),
        "assets/..%5c..%5csecret.png".into(),
        secret.display().to_string(),
        "/etc/passwd".into(),
        "C:\\secret.png".into(),
    ]
}

fn assert_escape_refused(out: &Compiled, path: &str) {
    assert!(out.bundle.is_none(), "{path}: a bundle was built");
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "E0402")
        .unwrap_or_else(|| {
            panic!(
                "{path}: no E0402:\n{}",
                render_human(&out.diagnostics, false)
            )
        });
    assert!(
        d.message.contains("outside the deck folder"),
        "{}",
        d.message
    );
    assert!(d.file.is_some() && d.line > 0, "{path}: not positioned");
    assert!(
        out.assets.values().all(|b| b != b"SECRET-BYTES"),
        "{path}: the secret was read"
    );
}

#[test]
fn image_paths_that_escape_the_deck_are_errors() {
    let probe = tempfile::tempdir().expect("tempdir");
    for path in escapes(probe.path()) {
        // Use the real temp dir of each deck for the absolute path.
        let (tmp, _) = deck_with("x", None);
        let path = path.replace(
            &probe.path().display().to_string(),
            &tmp.path().display().to_string(),
        );
        let md_path = path.replace('\\', "\\\\");
        let (_t, out) = deck_with(&format!("![secret]({md_path})"), None);
        assert_escape_refused(&out, &path);
    }
}

#[test]
fn video_and_logo_paths_that_escape_the_deck_are_errors() {
    let (tmp, _) = deck_with("x", None);
    for path in escapes(tmp.path()) {
        let attr = path.replace('\\', "\\\\").replace('"', "\\\"");
        let (_t, out) = deck_with(
            &format!("::video{{src=\"assets/ok.png\" poster=\"{attr}\"}}"),
            None,
        );
        assert_escape_refused(&out, &path);
        let (_t, out) = deck_with("Fine.", Some(&path));
        assert_escape_refused(&out, &path);
    }
}

#[test]
fn source_paths_that_escape_the_deck_are_errors() {
    for path in ["../slides/a.md", "..\\a.md", "%2e%2e/a.md", "/etc/passwd"] {
        let mut files = BTreeMap::new();
        let manifest = MANIFEST.replace(
            "sources = [\"slides/a.md\"]",
            &format!("sources = [{}]", serde_json::to_string(path).expect("json")),
        );
        files.insert("deck.toml".to_string(), manifest.into_bytes());
        let out = compile_files(files, &CompileOptions::new(TODAY));
        assert!(
            out.diagnostics
                .iter()
                .any(|d| d.code == "E0402" && d.file.as_deref() == Some("deck.toml")),
            "{path}: {}",
            render_human(&out.diagnostics, false)
        );
    }
}
