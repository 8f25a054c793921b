//! Compiler output: snapshots of the scaffold deck, the content samples, determinism,
//! and the bundle directory / archive round trip with hash verification.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edetail_authoring::{
    CompileOptions, ReadError, archive_bytes, compile, read_archive, read_bundle, render_human,
    write_archive, write_bundle_dir,
};

const TODAY: &str = "2026-11-22";

fn scaffold_deck() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let deck = dir.path().join("deck");
    edetail_authoring::scaffold::write(&deck, TODAY).expect("scaffold");
    dir
}

fn compiled(deck: &Path) -> edetail_authoring::Compiled {
    compile(deck, &CompileOptions::new(TODAY)).expect("deck folder")
}

#[test]
fn scaffold_has_no_diagnostics_and_uses_every_component() {
    let dir = scaffold_deck();
    let out = compiled(&dir.path().join("deck"));
    assert!(
        out.diagnostics.is_empty(),
        "{}",
        render_human(&out.diagnostics, false)
    );
    let bundle = out.bundle.expect("bundle");
    let mut kinds = std::collections::BTreeSet::new();
    for s in &bundle.slides {
        for c in &s.components {
            let v = serde_json::to_value(c).expect("json");
            let t = v["type"].as_str().unwrap_or_default().to_string();
            let extra = match t.as_str() {
                "question" => format!(
                    "{}-{}",
                    v["purpose"].as_str().unwrap_or(""),
                    v["kind"].as_str().unwrap_or("")
                ),
                "chart" => v["kind"].as_str().unwrap_or("").to_string(),
                "tabs" => v["accordion"].to_string(),
                _ => String::new(),
            };
            kinds.insert(format!("{t}:{extra}"));
        }
    }
    let want = [
        "citation:",
        "link:",
        "popup:",
        "tabs:false",
        "tabs:true",
        "chart:bar",
        "chart:line",
        "chart:forest",
        "question:quiz-single",
        "question:poll-single",
        "question:survey-rating",
        "question:survey-text",
        "image:",
        "video:",
    ];
    for w in want {
        assert!(kinds.contains(w), "scaffold lacks {w}; has {kinds:?}");
    }
    assert!(
        bundle.slides.iter().any(|s| s.steps > 0),
        "scaffold has build steps"
    );
    assert!(bundle.slides.iter().any(|s| s.layout == "two-column"));
    assert!(
        bundle.slides.iter().any(|s| s.detail),
        "scaffold has a detail slide"
    );
    assert!(bundle.isi.is_some());
    assert!(bundle.slides.iter().any(|s| s.notes.is_some()));
}

#[test]
fn scaffold_bundle_snapshot() {
    let dir = scaffold_deck();
    let out = compiled(&dir.path().join("deck"));
    let bundle = out.bundle.expect("bundle");
    let pretty = serde_json::to_string_pretty(&bundle).expect("json");
    insta::assert_snapshot!("scaffold_bundle", pretty);
}

#[test]
fn diagnostics_render_snapshot() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut text = String::new();
    for name in [
        "E0104-semver",
        "E0206-unknown-link",
        "W0201-unreachable-detail",
    ] {
        let out = compiled(&fx.join(name));
        text.push_str(&render_human(&out.diagnostics, false));
    }
    insta::assert_snapshot!("diagnostics_human", text);
}

#[test]
fn references_are_numbered_by_first_citation_in_flow_order() {
    let dir = scaffold_deck();
    let bundle = compiled(&dir.path().join("deck")).bundle.expect("bundle");
    let numbers: Vec<(String, u32)> = bundle
        .references
        .iter()
        .map(|r| (r.id.clone(), r.number))
        .collect();
    // smith2024 is first cited on `burden` (main flow), lee2025 on the detail slide.
    assert_eq!(
        numbers,
        vec![("smith2024".into(), 1), ("lee2025".into(), 2)]
    );
    for s in &bundle.slides {
        assert_eq!(s.content_hash, s.compute_content_hash(), "slide {}", s.id);
        for c in &s.components {
            assert!(s.html.contains(&format!("data-component=\"{}\"", c.id())) || matches!(c, edetail_format::Component::Citation { .. } | edetail_format::Component::Link { .. }) || s.components.iter().any(|o| matches!(o, edetail_format::Component::Popup { html, .. } if html.contains(c.id()))),
                "component {} of {} has no element", c.id(), s.id);
        }
    }
}

/// Every deck in content-samples/ (written by the content team) compiles cleanly.
#[test]
fn content_samples_compile_without_diagnostics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../content-samples");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return;
    };
    let mut decks: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("deck.toml").is_file())
        .collect();
    decks.sort();
    for deck in decks {
        // Check on the first day of the deck's approval window, so the test does not
        // depend on the calendar.
        let manifest: toml::Table = std::fs::read_to_string(deck.join("deck.toml"))
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or_default();
        let today = manifest
            .get("approval")
            .and_then(|a| a.get("valid_from"))
            .and_then(|v| {
                v.as_datetime()
                    .map(|d| d.to_string())
                    .or_else(|| v.as_str().map(str::to_string))
            })
            .unwrap_or_else(|| TODAY.to_string());
        let out = compile(&deck, &CompileOptions::new(today)).expect("deck folder");
        assert!(
            out.diagnostics.is_empty(),
            "{}:\n{}",
            deck.display(),
            render_human(&out.diagnostics, false)
        );
        // Snapshots of these decks can be added once the content team freezes them.
        assert!(out.bundle.is_some(), "{}", deck.display());
    }
}

#[test]
fn builds_are_byte_identical() {
    let dir = scaffold_deck();
    let deck = dir.path().join("deck");
    let a = compiled(&deck);
    let b = compiled(&deck);
    let (ba, bb) = (a.bundle.as_ref().expect("a"), b.bundle.as_ref().expect("b"));
    assert_eq!(ba.to_json(), bb.to_json());
    assert_eq!(
        archive_bytes(ba, &a.assets).expect("tar"),
        archive_bytes(bb, &b.assets).expect("tar")
    );
    // And through the file system: two directories with identical files.
    let (d1, d2) = (dir.path().join("out1"), dir.path().join("out2"));
    let h1 = write_bundle_dir(ba, &a.assets, &d1).expect("write");
    let h2 = write_bundle_dir(bb, &b.assets, &d2).expect("write");
    assert_eq!(h1, h2);
    let list = |d: &Path| -> BTreeMap<String, Vec<u8>> {
        let mut m = BTreeMap::new();
        for sub in ["", "assets"] {
            for e in std::fs::read_dir(d.join(sub))
                .expect("dir")
                .filter_map(Result::ok)
            {
                if e.path().is_file() {
                    m.insert(
                        format!("{sub}/{}", e.file_name().to_string_lossy()),
                        std::fs::read(e.path()).expect("read"),
                    );
                }
            }
        }
        m
    };
    assert_eq!(list(&d1), list(&d2));
}

#[test]
fn directory_and_archive_round_trip_with_verification() {
    let dir = scaffold_deck();
    let out = compiled(&dir.path().join("deck"));
    let bundle = out.bundle.as_ref().expect("bundle");
    let bdir = dir.path().join("bundle");
    let hash = write_bundle_dir(bundle, &out.assets, &bdir).expect("write dir");
    let loaded = read_bundle(&bdir).expect("read dir");
    assert_eq!(&loaded.bundle, bundle);
    assert_eq!(loaded.hash, hash);
    assert_eq!(loaded.assets, out.assets);

    let arch = dir.path().join("deck.edetail");
    let hash2 = write_archive(bundle, &out.assets, &arch).expect("write archive");
    assert_eq!(hash, hash2);
    let loaded = read_bundle(&arch).expect("read archive");
    assert_eq!(&loaded.bundle, bundle);
    assert_eq!(loaded.assets, out.assets);

    // Tampered asset in the directory.
    let first = bundle.assets[0].path.clone();
    std::fs::write(bdir.join(&first), b"tampered").expect("write");
    assert!(matches!(
        read_bundle(&bdir),
        Err(ReadError::Bundle(
            edetail_format::BundleError::AssetHashMismatch { .. }
        ))
    ));

    // Tampered bundle.json.
    let bdir2 = dir.path().join("bundle2");
    write_bundle_dir(bundle, &out.assets, &bdir2).expect("write dir");
    let json = std::fs::read_to_string(bdir2.join("bundle.json")).expect("read");
    std::fs::write(
        bdir2.join("bundle.json"),
        json.replacen("Zentara", "Zentarra", 1),
    )
    .expect("write");
    assert!(matches!(
        read_bundle(&bdir2),
        Err(ReadError::Bundle(
            edetail_format::BundleError::HashMismatch { .. }
        ))
    ));

    // Missing asset.
    let bdir3 = dir.path().join("bundle3");
    write_bundle_dir(bundle, &out.assets, &bdir3).expect("write dir");
    std::fs::remove_file(bdir3.join(&first)).expect("rm");
    assert!(matches!(read_bundle(&bdir3), Err(ReadError::Missing(p)) if p == first));
}

fn tar_with(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

#[test]
fn archive_reader_refuses_unsafe_and_unexpected_entries() {
    for bad in [&b"../evil"[..], b"/etc/passwd", b"assets/../../x", b"a/./b"] {
        let t = tar_with(&[(bad, b"x")]);
        match read_archive(t.as_slice()) {
            Err(ReadError::UnsafePath(p)) => assert_eq!(p.as_bytes(), bad),
            other => panic!("{:?} accepted: {other:?}", String::from_utf8_lossy(bad)),
        }
    }
    // A valid bundle plus an extra file is refused.
    let dir = scaffold_deck();
    let out = compiled(&dir.path().join("deck"));
    let bundle = out.bundle.as_ref().expect("bundle");
    let files = edetail_authoring::bundle_files(bundle, &out.assets);
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = files
        .into_iter()
        .map(|(k, v)| (k.into_bytes(), v))
        .collect();
    entries.push((b"extra.txt".to_vec(), b"hi".to_vec()));
    let refs: Vec<(&[u8], &[u8])> = entries
        .iter()
        .map(|(a, b)| (a.as_slice(), b.as_slice()))
        .collect();
    assert!(
        matches!(read_archive(tar_with(&refs).as_slice()), Err(ReadError::Unexpected(p)) if p == "extra.txt")
    );
    // Garbage is an error, not a panic.
    assert!(read_archive(&b"not a tar at all"[..]).is_err());
    assert!(read_archive(&[][..]).is_err());
}

#[test]
fn synthetic_decks_compile_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    // 60 slides cover every rotation of components and several detail slides.
    edetail_authoring::synth::write_deck(dir.path(), 60).expect("write");
    let out = compile(dir.path(), &CompileOptions::new(TODAY)).expect("deck");
    assert!(
        out.diagnostics.is_empty(),
        "{}",
        render_human(&out.diagnostics, false)
    );
    let bundle = out.bundle.expect("bundle");
    assert_eq!(bundle.slides.len(), 60);
    assert_eq!(bundle.slides.iter().filter(|s| s.detail).count(), 6);
}

/// The examples in docs/authoring.md work: the manifest example plus every markdown
/// example (each made a slide) compile without errors.
#[test]
fn documentation_examples_compile() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/authoring.md"))
            .expect("docs");
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in doc.lines() {
        match (&mut cur, line.strip_prefix("```")) {
            (None, Some(lang)) => cur = Some((lang.trim().to_string(), String::new())),
            (Some(_), Some("")) => blocks.extend(cur.take()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            _ => {}
        }
    }
    let manifest = blocks
        .iter()
        .find(|(l, b)| l == "toml" && b.contains("[deck]"))
        .map(|(_, b)| b.clone())
        .expect("manifest example");
    let mut slides = String::new();
    let mut n = 0;
    for (lang, body) in blocks.iter().filter(|(l, _)| l == "markdown") {
        let _ = lang;
        if !slides.is_empty() {
            slides.push_str("\n---\n");
        }
        if body.starts_with("+++") {
            slides.push_str(body);
        } else {
            n += 1;
            slides.push_str(&format!(
                "+++\nid = \"doc-{n}\"\ntitle = \"Doc {n}\"\n+++\n\n{body}"
            ));
        }
    }
    let stubs: String = ["title", "hba1c", "safety", "subgroup-age", "older-adults"]
        .iter()
        .map(|id| format!("+++\nid = \"{id}\"\ntitle = \"{id}\"\n+++\n\nStub.\n\n---\n"))
        .collect();
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path();
    std::fs::create_dir_all(p.join("slides")).expect("mkdir");
    std::fs::create_dir_all(p.join("assets")).expect("mkdir");
    std::fs::write(p.join("deck.toml"), manifest).expect("write");
    std::fs::write(p.join("slides/01-intro.md"), slides).expect("write");
    std::fs::write(
        p.join("slides/02-efficacy.md"),
        stubs.trim_end_matches("\n---\n"),
    )
    .expect("write");
    std::fs::write(p.join("isi.md"), "Safety.\n").expect("write");
    for a in [
        "logo.svg",
        "moa.svg",
        "dosing.mp4",
        "dosing-poster.jpg",
        "dosing.vtt",
    ] {
        std::fs::write(p.join("assets").join(a), b"stub").expect("write");
    }
    let out = compile(p, &CompileOptions::new("2026-10-01")).expect("deck");
    let errors: Vec<_> = out
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    assert!(errors.is_empty(), "{}", render_human(&errors, false));
    // Doc examples are not in the flow, so only reachability warnings are expected.
    for d in &out.diagnostics {
        assert_eq!(d.code, "W0201", "{}", d.render());
    }
    assert!(n >= 10, "found only {n} markdown examples");
    let bundle = out.bundle.expect("bundle");
    let components: usize = bundle.slides.iter().map(|s| s.components.len()).sum();
    assert!(
        bundle.slides.len() > 15 && components >= 18,
        "{} slides, {components} components",
        bundle.slides.len()
    );
}

/// Author text cannot smuggle the compiler's internal placeholders through entities.
#[test]
fn placeholder_lookalikes_do_not_duplicate_generated_markup() {
    let mut files = BTreeMap::new();
    let deck = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/W0202-unused-reference/deck.toml"),
    )
    .expect("deck");
    files.insert("deck.toml".to_string(), deck);
    files.insert(
        "slides.md".to_string(),
        b"+++\nid = \"a\"\ntitle = \"A\"\n+++\n\nCited.[^r1] [^r2]\n\n<div>&#xE000;0&#xE001; \xee\x80\x800\xee\x80\x81</div>\n".to_vec(),
    );
    let out = edetail_authoring::compile_files(files, &CompileOptions::new(TODAY));
    let bundle = out.bundle.expect("bundle");
    let html = &bundle.slides[0].html;
    assert_eq!(html.matches("data-component=").count(), 2, "{html}");
}

/// A symlink inside the deck that points outside it is refused like `..`.
#[cfg(unix)]
#[test]
fn symlinks_out_of_the_deck_are_refused() {
    let dir = scaffold_deck();
    let deck = dir.path().join("deck");
    let outside = dir.path().join("secret.svg");
    std::fs::write(&outside, b"<svg/>").expect("write");
    std::os::unix::fs::symlink(&outside, deck.join("assets/link.svg")).expect("symlink");
    let slides = deck.join("slides/01-intro.md");
    let text = std::fs::read_to_string(&slides).expect("read");
    std::fs::write(
        &slides,
        text.replace("(assets/logo.svg)", "(assets/link.svg)"),
    )
    .expect("write");
    let out = compiled(&deck);
    let codes: Vec<&str> = out.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        vec!["E0402"],
        "{}",
        render_human(&out.diagnostics, false)
    );
}
