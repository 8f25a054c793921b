//! One broken deck per diagnostic under `tests/fixtures/<CODE>-<what>/`; each holds an
//! `expected.txt` listing every diagnostic the deck must produce, one per line:
//! `CODE severity file:line:col message`. The fixture's own code must be among them.
//!
//! To see what the compiler says for a new fixture: `PRINT_DIAGNOSTICS=1 cargo test
//! -p edetail-authoring --test diagnostics -- --nocapture` (then review and write
//! `expected.txt` by hand).

use std::path::Path;

use edetail_authoring::{CompileOptions, Severity, compile};

const TODAY: &str = "2026-11-22";

fn line(d: &edetail_authoring::Diagnostic) -> String {
    let sev = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    format!("{} {sev} {} {}", d.code, d.location(), d.message)
}

#[test]
fn every_fixture_reports_its_diagnostic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 50,
        "expected a fixture per diagnostic, found {}",
        dirs.len()
    );
    let print = std::env::var_os("PRINT_DIAGNOSTICS").is_some();
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let code = name.split('-').next().unwrap_or_default().to_string();
        let out = compile(dir, &CompileOptions::new(TODAY)).expect("fixture is a folder");
        let got: Vec<String> = out.diagnostics.iter().map(line).collect();
        if print {
            println!("== {name}\n{}", got.join("\n"));
            for d in &out.diagnostics {
                println!("{}", d.render());
            }
        }
        let expected_text = std::fs::read_to_string(dir.join("expected.txt")).unwrap_or_default();
        let expected: Vec<String> = expected_text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if got != expected {
            failures.push(format!(
                "{name}:\n  expected:\n    {}\n  got:\n    {}",
                expected.join("\n    "),
                got.join("\n    ")
            ));
        }
        if !out.diagnostics.iter().any(|d| d.code == code) {
            failures.push(format!("{name}: no {code} diagnostic"));
        }
        if out.diagnostics.iter().any(|d| d.is_error()) {
            assert!(
                out.bundle.is_none(),
                "{name}: a deck with errors must not produce a bundle"
            );
        }
        // Every positioned diagnostic carries its source line and a rendered snippet.
        for d in &out.diagnostics {
            if d.line > 0 {
                assert!(
                    d.source_line.is_some(),
                    "{name}: {} has no source line",
                    d.code
                );
                let r = d.render();
                assert!(r.contains(d.code), "{name}: render lacks the code:\n{r}");
                assert!(
                    r.contains(&format!(
                        "{}:{}:{}",
                        d.file.as_deref().unwrap_or(""),
                        d.line,
                        d.column
                    )),
                    "{name}: render lacks file:line:col:\n{r}"
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn preview_builds_an_expired_deck_and_marks_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/E0109-expired");
    let strict = compile(&dir, &CompileOptions::new(TODAY)).expect("folder");
    assert!(strict.bundle.is_none());
    let opts = CompileOptions {
        today: TODAY.into(),
        preview: true,
    };
    let out = compile(&dir, &opts).expect("folder");
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "E0109")
        .expect("still reported");
    assert_eq!(d.severity, Severity::Warning);
    let bundle = out.bundle.expect("preview builds anyway");
    assert!(bundle.preview);
}

#[test]
fn approval_window_is_inclusive() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/W0202-unused-reference");
    for today in ["2026-01-01", "2026-12-31"] {
        let out = compile(&dir, &CompileOptions::new(today)).expect("folder");
        assert!(out.bundle.is_some(), "{today} is inside the window");
    }
    for today in ["2025-12-31", "2027-01-01"] {
        let out = compile(&dir, &CompileOptions::new(today)).expect("folder");
        assert!(out.bundle.is_none(), "{today} is outside the window");
    }
}

#[test]
fn json_rendering_has_stable_fields() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/E0104-semver");
    let out = compile(&dir, &CompileOptions::new(TODAY)).expect("folder");
    let json: serde_json::Value =
        serde_json::from_str(&edetail_authoring::render_json(&out.diagnostics)).expect("json");
    let d = &json[0];
    assert_eq!(d["code"], "E0104");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "deck.toml");
    assert_eq!(d["line"], 4);
    assert_eq!(d["column"], 11);
    assert_eq!(d["source_line"], "version = \"1.0\"");
    // "[deck]\n" (7) + "id = \"fx\"\n" (10) + "title = \"Fixture\"\n" (18) + "version = " (10)
    assert_eq!(d["span"]["start"], 45);
    assert_eq!(d["span"]["end"], 50);
    assert!(
        d["hint"]
            .as_str()
            .is_some_and(|h| h.contains("MAJOR.MINOR.PATCH"))
    );
}

#[test]
fn missing_deck_folder_is_an_error_not_a_diagnostic() {
    let r = compile(
        Path::new("/definitely/not/a/deck"),
        &CompileOptions::new(TODAY),
    );
    assert!(r.is_err());
}

/// Every code the compiler can emit is documented in docs/authoring.md and (except the
/// internal E0000) has a fixture.
#[test]
fn every_code_is_documented_and_has_a_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut codes = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(root.join("src"))
        .expect("src")
        .filter_map(Result::ok)
    {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let b = text.as_bytes();
        for i in 0..b.len().saturating_sub(6) {
            if b[i] == b'"'
                && (b[i + 1] == b'E' || b[i + 1] == b'W')
                && b[i + 2..i + 6].iter().all(u8::is_ascii_digit)
                && b[i + 6] == b'"'
            {
                codes.insert(text[i + 1..i + 6].to_string());
            }
        }
    }
    assert!(codes.len() > 40, "found {codes:?}");
    let doc = std::fs::read_to_string(root.join("../docs/authoring.md")).expect("docs");
    let fixtures: Vec<String> = std::fs::read_dir(root.join("tests/fixtures"))
        .expect("fixtures")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for code in &codes {
        assert!(
            doc.contains(&format!("| {code} |")),
            "{code} is not in docs/authoring.md"
        );
        if code != "E0000" {
            let mut mine: Vec<&String> = fixtures
                .iter()
                .filter(|f| f.starts_with(&format!("{code}-")))
                .collect();
            mine.sort();
            let first = mine
                .first()
                .unwrap_or_else(|| panic!("{code} has no fixture"));
            // The documented example is what the (first) fixture really produces.
            let expected = std::fs::read_to_string(
                root.join("tests/fixtures").join(first).join("expected.txt"),
            )
            .unwrap_or_default();
            let line = expected
                .lines()
                .find(|l| l.starts_with(code.as_str()))
                .unwrap_or_else(|| panic!("{first}: no {code} line"));
            let mut parts = line.splitn(4, ' ');
            let (_, _, loc, msg) = (
                parts.next(),
                parts.next(),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let example = format!("`{loc}`: {}", msg.replace('|', "\\|"));
            assert!(
                doc.contains(&example),
                "docs/authoring.md lacks the example for {code}: {example}"
            );
        }
    }
}
