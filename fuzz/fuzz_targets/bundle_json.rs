//! Fuzz `Bundle::from_json` (the `bundle.json` parser the runtime and server use).
//! Property: never panics; a bundle it accepts validates and survives a
//! canonical-JSON round trip unchanged.
#![no_main]

use edetail_format::bundle::Bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Bundle::from_json(data) {
        b.validate().expect("accepted bundles are valid");
        let again = Bundle::from_json(&b.to_json()).expect("canonical JSON parses");
        assert_eq!(again, b);
    }
});
