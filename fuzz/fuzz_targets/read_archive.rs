//! Fuzz the bundle archive reader: arbitrary bytes as a `.edetail` archive.
//! Property: `read_archive` never panics; whatever it accepts is a valid bundle with
//! every listed asset present and matching its sha256 and size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(loaded) = edetail_authoring::read_archive(data) {
        loaded
            .bundle
            .validate()
            .expect("accepted bundles are valid");
        assert_eq!(loaded.hash.len(), 64);
        for a in &loaded.bundle.assets {
            let bytes = loaded.assets.get(&a.path).expect("listed asset present");
            edetail_format::bundle::verify_asset(a, bytes).expect("asset hash verified");
        }
    }
});
