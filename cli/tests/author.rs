//! `edetail new|check|build`: exit codes and output formats.
//! Run with `cargo test -p edetail --no-default-features --test author`.

use std::path::Path;
use std::process::{Command, Output};

fn edetail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edetail"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run edetail")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../authoring/tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn new_check_build_round_trip() {
    let tmp = tempfile::tempdir().expect("tmp");
    let deck = tmp.path().join("deck");
    let deck_s = deck.display().to_string();
    let o = edetail(&["new", &deck_s]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    // The scaffold checks clean even with warnings denied.
    let o = edetail(&["check", &deck_s, "--deny-warnings"]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    // `new` refuses a non-empty folder.
    let o = edetail(&["new", &deck_s]);
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("not empty"));

    let out = tmp.path().join("out");
    let out_s = out.display().to_string();
    let o = edetail(&["build", &deck_s, "-o", &out_s]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    let hash = std::fs::read_to_string(out.join("bundle.sha256")).expect("hash file");
    assert!(
        stdout.contains(hash.trim()),
        "build prints the hash: {stdout}"
    );
    let loaded = edetail_authoring::read_bundle(&out).expect("valid bundle");
    assert_eq!(loaded.hash, hash.trim());

    let arch = tmp.path().join("deck.edetail");
    let arch_s = arch.display().to_string();
    let o = edetail(&[
        "build",
        &deck_s,
        "-o",
        &arch_s,
        "--archive",
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], true);
    assert_eq!(v["bundle"]["hash"], hash.trim());
    assert_eq!(v["bundle"]["path"], arch_s);
    assert!(edetail_authoring::read_bundle(&arch).is_ok());
}

#[test]
fn errors_exit_1_with_human_and_json_reports() {
    let deck = fixture("E0104-semver");
    let o = edetail(&["check", &deck, "--today", "2026-11-22"]);
    assert_eq!(code(&o), 1);
    let err = text(&o.stderr);
    assert!(
        err.contains("error[E0104]: `1.0` is not a semantic version"),
        "{err}"
    );
    assert!(err.contains("deck.toml:4:11"), "{err}");
    assert!(
        err.contains("version = \"1.0\""),
        "source line shown: {err}"
    );

    let o = edetail(&["check", &deck, "--today", "2026-11-22", "--format", "json"]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"], 1);
    assert_eq!(v["diagnostics"][0]["code"], "E0104");
    assert_eq!(v["diagnostics"][0]["line"], 4);
    assert_eq!(v["diagnostics"][0]["column"], 11);

    // build runs the same checks and writes nothing.
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let o = edetail(&[
        "build",
        &deck,
        "-o",
        &out.display().to_string(),
        "--today",
        "2026-11-22",
    ]);
    assert_eq!(code(&o), 1);
    assert!(!out.exists());
}

#[test]
fn warnings_pass_unless_denied() {
    let deck = fixture("W0202-unused-reference");
    let o = edetail(&["check", &deck, "--today", "2026-11-22"]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("warning[W0202]"));
    let o = edetail(&["check", &deck, "--today", "2026-11-22", "--deny-warnings"]);
    assert_eq!(code(&o), 1);
}

#[test]
fn preview_builds_expired_decks_and_marks_them() {
    let deck = fixture("E0109-expired");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let out_s = out.display().to_string();
    let o = edetail(&["build", &deck, "-o", &out_s, "--today", "2026-11-22"]);
    assert_eq!(code(&o), 1);
    let o = edetail(&[
        "build",
        &deck,
        "-o",
        &out_s,
        "--today",
        "2026-11-22",
        "--preview",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("warning[E0109]"));
    let loaded = edetail_authoring::read_bundle(&out).expect("bundle");
    assert!(loaded.bundle.preview);
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(code(&edetail(&["check"])), 2);
    assert_eq!(code(&edetail(&["check", "/no/such/deck"])), 2);
    assert_eq!(code(&edetail(&["check", ".", "--format", "xml"])), 2);
    assert_eq!(code(&edetail(&["check", ".", "--today", "tomorrow"])), 2);
    assert_eq!(
        code(&edetail(&["build", "/no/such/deck", "-o", "/tmp/x"])),
        2
    );
    // Output location that cannot be written: a file where a folder is needed.
    let tmp = tempfile::tempdir().expect("tmp");
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, b"x").expect("write");
    let deck = tmp.path().join("deck");
    assert_eq!(code(&edetail(&["new", &deck.display().to_string()])), 0);
    let o = edetail(&[
        "build",
        &deck.display().to_string(),
        "-o",
        &blocker.join("out").display().to_string(),
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o.stderr));
}
