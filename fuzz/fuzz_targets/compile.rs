//! Fuzz the deck compiler: the input is a deck.toml and a slide file separated by a
//! line `%%%` (without one, the input is the slide file of a fixed valid manifest).
//! Property: compile never panics; a bundle it builds validates and round-trips.
#![no_main]

use std::collections::BTreeMap;

use edetail_authoring::{CompileOptions, compile_files};
use libfuzzer_sys::fuzz_target;

const DECK: &str = "[deck]\nid = \"f\"\ntitle = \"F\"\nversion = \"1.0.0\"\nlocale = \"en\"\nsources = [\"s.md\"]\n\n[approval]\ncode = \"F\"\nvalid_from = 2026-01-01\nvalid_until = 2026-12-31\n\n[references.r1]\ncitation = \"R\"\n\n[[flow]]\nid = \"m\"\ntitle = \"M\"\nslides = [\"a\"]\n";

fuzz_target!(|data: &[u8]| {
    let sep = b"\n%%%\n";
    let (deck, slides) = match data.windows(sep.len()).position(|w| w == sep) {
        Some(i) => (data[..i].to_vec(), data[i + sep.len()..].to_vec()),
        None => (DECK.as_bytes().to_vec(), data.to_vec()),
    };
    let mut files = BTreeMap::new();
    files.insert("deck.toml".to_string(), deck);
    files.insert("s.md".to_string(), slides);
    files.insert("assets/a.svg".to_string(), b"<svg/>".to_vec());
    let out = compile_files(files, &CompileOptions::new("2026-06-01"));
    let _ = edetail_authoring::render_human(&out.diagnostics, false);
    if let Some(b) = &out.bundle {
        b.validate().expect("built bundles are valid");
        let bytes = edetail_authoring::archive_bytes(b, &out.assets).expect("archive");
        let back = edetail_authoring::read_archive(bytes.as_slice()).expect("round trip");
        assert_eq!(&back.bundle, b);
    }
});
