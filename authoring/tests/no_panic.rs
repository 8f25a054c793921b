//! Property tests: whatever the manifest, front matter or markdown, the compiler
//! returns diagnostics or a bundle and never panics. This is the CI-run guarantee
//! (the cargo-fuzz target in fuzz/ explores the same entry point, but needs nightly).

use std::collections::BTreeMap;

use edetail_authoring::{CompileOptions, compile_files};
use proptest::prelude::*;

const DECK: &str = r#"[deck]
id = "p"
title = "P"
version = "1.0.0"
locale = "en-US"
sources = ["s.md"]

[approval]
code = "P-1"
valid_from = 2026-01-01
valid_until = 2026-12-31

[references.r1]
citation = "R"

[[flow]]
id = "m"
title = "M"
slides = ["a", "b"]
"#;

/// Fragments that reach the interesting parts of the parser when recombined.
const FRAGMENTS: &[&str] = &[
    "+++\n",
    "id = \"a\"\n",
    "id = \"b\"\n",
    "title = \"T\"\n",
    "layout = \"two-column\"\n",
    "---\n",
    "\n",
    "Note:\n",
    "# H\n",
    "text ",
    "[^r1]",
    "[^nope]",
    "[^",
    "]",
    "[x](#a)",
    "[y](#zz)",
    "[j](javascript:alert(1))",
    "![alt](assets/a.svg)",
    "![](../x.png)",
    "![r](https://x/y.png)",
    ":::",
    "::::",
    ":::::",
    ":::popup{#p label=\"L\"}\n",
    ":::popup{label=\"\n",
    "::::tabs\n",
    ":::tab{label=\"T\"}\n",
    "::::accordion{#acc}\n",
    ":::step\n",
    "::::columns\n",
    ":::column\n",
    ":::chart{type=bar title=\"C\"}\n",
    ":::chart{type=forest title=\"F\" reference=x}\n",
    "Week,A,B\n",
    "1,2,3\n",
    "x,y\n",
    "a,1,0,2\n",
    "\"q,1\n",
    ":::quiz\n",
    ":::poll{kind=multiple}\n",
    ":::survey{kind=rating min=5 max=1}\n",
    "- [x] yes {#y}\n",
    "- [ ] no\n",
    "- opt {#}\n",
    "> why\n",
    "::video{src=\"assets/v.mp4\"}\n",
    "::video{poster=\"p.png\" src=\"../../etc\"}\n",
    "<script>x</script>",
    "<span onclick=x>",
    "<a href=\"jav&#x61;script:1\">",
    "<iframe>",
    "```\n",
    "~~~\n",
    "| a | b |\n|---|---|\n| 1 | 2 |\n",
    "\u{E000}0\u{E001}",
    "\u{E000}",
    "é",
    "한국어",
    "\r\n",
    "\t",
    "{#",
    "}",
    "{",
    "\"",
    "\\",
    "=",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
            1 => ".{0,12}",
        ],
        0..60,
    )
    .prop_map(|v| v.concat())
}

fn run(deck: Vec<u8>, slides: Vec<u8>, extra: Option<(String, Vec<u8>)>) {
    let mut files = BTreeMap::new();
    files.insert("deck.toml".to_string(), deck);
    files.insert("s.md".to_string(), slides);
    files.insert("assets/a.svg".to_string(), b"<svg/>".to_vec());
    files.insert("assets/v.mp4".to_string(), b"\0".to_vec());
    if let Some((k, v)) = extra {
        files.insert(k, v);
    }
    let out = compile_files(files, &CompileOptions::new("2026-06-01"));
    // Rendering diagnostics must not panic either.
    let _ = edetail_authoring::render_human(&out.diagnostics, false);
    let _ = edetail_authoring::render_json(&out.diagnostics);
    if let Some(b) = &out.bundle {
        assert!(out.diagnostics.iter().all(|d| !d.is_error()));
        b.validate().expect("a built bundle is valid");
        let bytes = edetail_authoring::archive_bytes(b, &out.assets).expect("archive");
        let back = edetail_authoring::read_archive(bytes.as_slice()).expect("round trip");
        assert_eq!(&back.bundle, b);
    }
    for d in &out.diagnostics {
        if let Some(span) = d.span {
            assert!(span.start <= span.end);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn structured_slides_never_panic(body in fragments()) {
        let slides = format!("+++\nid = \"a\"\ntitle = \"A\"\n+++\n{body}\n---\n+++\nid = \"b\"\ntitle = \"B\"\n+++\n{body}");
        run(DECK.as_bytes().to_vec(), slides.into_bytes(), None);
    }

    #[test]
    fn raw_slide_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        run(DECK.as_bytes().to_vec(), bytes, None);
    }

    #[test]
    fn arbitrary_manifests_never_panic(deck in ".{0,300}", body in fragments()) {
        run(deck.into_bytes(), body.into_bytes(), None);
    }

    #[test]
    fn mutated_manifests_never_panic(pos in 0usize..400, insert in prop::sample::select(vec!["\"", "[", "]", "=", "\n", "1", "[[flow]]\n", "x = 1\n", "2026-13-45", "#", "{", "}", "'''"]), cut in 0usize..20) {
        let mut deck = DECK.to_string();
        let pos = pos.min(deck.len());
        let pos = (0..=pos).rev().find(|&p| deck.is_char_boundary(p)).unwrap_or(0);
        let end = (pos + cut).min(deck.len());
        let end = (end..=deck.len()).find(|&p| deck.is_char_boundary(p)).unwrap_or(deck.len());
        deck.replace_range(pos..end, insert);
        run(deck.into_bytes(), b"+++\nid = \"a\"\ntitle = \"A\"\n+++\nx[^r1]\n---\n+++\nid = \"b\"\ntitle = \"B\"\n+++\n".to_vec(), None);
    }

    #[test]
    fn front_matter_never_panics(fm in ".{0,200}", isi in ".{0,100}") {
        let slides = format!("+++\n{fm}\n+++\nbody\n");
        let deck = format!("{DECK}\n[isi]\ntitle = \"I\"\nfile = \"isi.md\"\n");
        run(deck.into_bytes(), slides.into_bytes(), Some(("isi.md".into(), isi.into_bytes())));
    }
}
