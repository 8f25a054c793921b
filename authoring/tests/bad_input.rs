//! Bad input that must give a clear diagnostic, never a panic or an escape: invalid
//! UTF-8 in markdown, asset paths that try to leave the deck folder, a 100 MB image,
//! an image whose header declares 50,000 x 50,000 px, deeply nested markdown,
//! directives and TOML.
//! (Assets over the size budget: also fixture `tests/fixtures/W0401-asset-over-budget`.)

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

/// The deck of [`deck_with`] plus `assets/<name>` holding `bytes`.
fn deck_with_asset(
    body: &str,
    name: &str,
    write: impl FnOnce(&Path),
) -> (tempfile::TempDir, Compiled) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let deck = tmp.path().join("deck");
    std::fs::create_dir_all(deck.join("slides")).expect("dirs");
    std::fs::create_dir_all(deck.join("assets")).expect("dirs");
    write(&deck.join("assets").join(name));
    std::fs::write(deck.join("deck.toml"), MANIFEST).expect("manifest");
    std::fs::write(deck.join("slides/a.md"), slide(body)).expect("slide");
    let out = compile(&deck, &CompileOptions::new(TODAY)).expect("deck folder");
    (tmp, out)
}

#[test]
fn a_100_mb_image_is_a_positioned_budget_warning() {
    let size: u64 = 100 * 1024 * 1024;
    let (_t, out) = deck_with_asset("![A huge figure](assets/huge.png)", "huge.png", |p| {
        let f = std::fs::File::create(p).expect("create");
        // A sparse file: 100 MiB without writing 100 MiB.
        f.set_len(size).expect("set_len");
    });
    let w = out
        .diagnostics
        .iter()
        .find(|d| d.code == "W0401")
        .unwrap_or_else(|| panic!("no W0401:\n{}", render_human(&out.diagnostics, false)));
    assert!(
        w.message.contains("assets/huge.png") && w.message.contains("100"),
        "the warning names the asset and its size: {}",
        w.message
    );
    assert_eq!(
        (w.file.as_deref(), w.line),
        (Some("slides/a.md"), 8),
        "{}",
        w.render()
    );
    // A warning, not an error: the author decides (the server refuses archives over
    // its own limit with 413).
    let b = out.bundle.as_ref().expect("a bundle");
    assert_eq!(b.assets.len(), 1);
    assert_eq!(b.assets[0].size, size);
}

/// A valid PNG header (signature + IHDR) declaring `w` x `h` pixels, no image data.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(&ihdr);
    v.extend_from_slice(&[0, 0, 0, 0]); // CRC (not checked by anyone here)
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(b"IEND");
    v.extend_from_slice(&[0xAE, 0x42, 0x60, 0x82]);
    v
}

/// A "pixel bomb": a 60-byte PNG declaring 50,000 x 50,000 px (10 GB decoded, RGBA).
/// The compiler reads the header only (nothing is decoded, so the build cannot blow up)
/// and refuses it with E0405 naming the declared size; no bundle is produced.
#[test]
fn a_png_declaring_50000_by_50000_px_is_refused_with_its_size() {
    let (_t, out) = deck_with_asset("![Bomb](assets/bomb.png)", "bomb.png", |p| {
        std::fs::write(p, png_header(50_000, 50_000)).expect("write");
    });
    assert!(out.bundle.is_none(), "a pixel bomb was bundled");
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "E0405")
        .unwrap_or_else(|| panic!("no E0405:\n{}", render_human(&out.diagnostics, false)));
    assert!(d.message.contains("50000×50000"), "{}", d.message);
    assert_eq!(d.file.as_deref(), Some("slides/a.md"), "{}", d.render());
}

/// Just under the limits (8,192 x 3,900 px = 31.9 MP) is accepted.
#[test]
fn a_png_at_the_size_limit_is_accepted() {
    let bytes = png_header(8_192, 3_900);
    let (_t, out) = deck_with_asset("![Big](assets/big.png)", "big.png", |p| {
        std::fs::write(p, &bytes).expect("write");
    });
    let b = out
        .bundle
        .as_ref()
        .unwrap_or_else(|| panic!("{}", render_human(&out.diagnostics, false)));
    assert_eq!(b.assets.len(), 1);
    assert_eq!(b.assets[0].size, bytes.len() as u64);
}

/// Run `f` on a thread with the default test-thread (2 MiB) stack: deep recursion shows up as a
/// crash of the test process instead of passing on a big main-thread stack.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic");
}

fn compile_body(body: String) -> Compiled {
    let mut files = BTreeMap::new();
    files.insert("deck.toml".to_string(), MANIFEST.as_bytes().to_vec());
    files.insert("slides/a.md".to_string(), slide(&body).into_bytes());
    compile_files(files, &CompileOptions::new(TODAY))
}

/// Markdown nesting the compiler handles today (sizes keep CI fast: nested
/// blockquotes and lists take time quadratic in the depth, measured 1.4 s for a
/// 1,000-deep list and 15.7 s for 10,000 `>` in a debug build; reported in issue #5).
#[test]
fn deeply_nested_markdown_compiles_or_is_refused_without_overflow() {
    on_small_stack(|| {
        for (what, body) in [
            ("100k `[`", "[".repeat(100_000)),
            (
                "50k `*` emphasis",
                format!("{}x{}", "*".repeat(50_000), "*".repeat(50_000)),
            ),
            (
                "20k nested inline HTML",
                format!("{}x{}", "<em>".repeat(20_000), "</em>".repeat(20_000)),
            ),
            (
                "1,000 `>` blockquotes",
                format!("{} deep", ">".repeat(1_000)),
            ),
            (
                "300 nested lists",
                (0..300)
                    .map(|i| format!("{}- item\n", "  ".repeat(i)))
                    .collect::<String>(),
            ),
        ] {
            let out = compile_body(body);
            let errors: Vec<_> = out.diagnostics.iter().filter(|d| d.is_error()).collect();
            assert!(
                out.bundle.is_some() || !errors.is_empty(),
                "{what}: neither a bundle nor an error"
            );
            for d in errors {
                assert!(
                    !d.code.is_empty() && !d.message.is_empty(),
                    "{what}: unclear diagnostic {}",
                    d.render()
                );
            }
        }
    });
}

/// `depth` directives of `name` nested in each other (fences of decreasing length).
fn nested_directives(name: &str, depth: usize) -> String {
    let mut body = String::new();
    for i in 0..depth {
        body.push_str(&format!("{}{name}\n", ":".repeat(depth + 3 - i)));
    }
    body.push_str("x\n");
    for i in (0..depth).rev() {
        body.push_str(&format!("{}\n", ":".repeat(depth + 3 - i)));
    }
    body
}

#[test]
fn nested_directives_are_a_clear_error_or_a_bundle() {
    on_small_stack(|| {
        for name in ["columns", "popup{label=\"x\"}", "step"] {
            let out = compile_body(nested_directives(name, 300));
            assert!(
                out.bundle.is_some() || out.diagnostics.iter().any(|d| d.is_error()),
                "{name}: neither a bundle nor an error"
            );
        }
    });
}

/// Found by this file: directives nested ~1,000 deep (popup) or ~1,500 deep (columns)
/// used to overflow a 2 MiB thread stack; the compiler now stops nesting at 16 levels
/// (E0313), so 5,000 levels are one clear error.
#[test]
fn directives_nested_5000_deep_do_not_overflow_the_stack() {
    on_small_stack(|| {
        let out = compile_body(nested_directives("popup{label=\"x\"}", 5_000));
        assert!(out.bundle.is_none());
        assert_eq!(
            out.diagnostics.iter().filter(|d| d.code == "E0313").count(),
            1,
            "{}",
            render_human(&out.diagnostics, false)
        );
    });
}

#[test]
fn deeply_nested_toml_is_a_syntax_error_not_a_crash() {
    on_small_stack(|| {
        for nested in [
            format!("x = {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            format!("x = {}{}\n", "{ a = ".repeat(10_000), "}".repeat(10_000)),
        ] {
            let manifest = format!("{nested}{MANIFEST}");
            let mut files = BTreeMap::new();
            files.insert("deck.toml".to_string(), manifest.into_bytes());
            files.insert("slides/a.md".to_string(), slide("x").into_bytes());
            let out = compile_files(files, &CompileOptions::new(TODAY));
            assert!(out.bundle.is_none(), "a nested unknown key was accepted");
            let d = out
                .diagnostics
                .iter()
                .find(|d| d.is_error())
                .expect("an error");
            assert_eq!(d.file.as_deref(), Some("deck.toml"), "{}", d.render());
            assert!(d.code.starts_with("E01"), "{}", d.render());
        }
        // The same in a slide's front matter.
        let fm = format!(
            "+++\nid = \"a\"\ntitle = \"A\"\nx = {}{}\n+++\n\nx\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let mut files = BTreeMap::new();
        files.insert("deck.toml".to_string(), MANIFEST.as_bytes().to_vec());
        files.insert("slides/a.md".to_string(), fm.into_bytes());
        let out = compile_files(files, &CompileOptions::new(TODAY));
        assert!(out.bundle.is_none());
        assert!(
            out.diagnostics
                .iter()
                .any(|d| d.is_error() && d.file.as_deref() == Some("slides/a.md")),
            "{}",
            render_human(&out.diagnostics, false)
        );
    });
}
