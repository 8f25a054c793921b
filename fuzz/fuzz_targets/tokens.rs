//! Fuzz bearer-token and share-link parsing (`edetail_server::auth`).
//! Properties: never panics; a parsed admin/device token is exactly `edt.<id>.<secret>`
//! with a bounded, non-empty id; a share link is accepted only with this server's
//! signature and an expiry in the future; a link signed here verifies back to the same
//! claims, and no single-byte change to it is accepted.
#![no_main]

use edetail_server::auth::{Bearer, Keys, MAX_TOKEN_ID_LEN, ShareClaims, parse_bearer};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_790_000_000_000;

fuzz_target!(|data: &[u8]| {
    let keys = Keys::from_hex(&"5a".repeat(32)).expect("fixed test key");
    let text = String::from_utf8_lossy(data);

    // Any presented token.
    match parse_bearer(&text) {
        Ok(Bearer::Token { id, secret }) => {
            assert!(!id.is_empty() && id.len() <= MAX_TOKEN_ID_LEN && !secret.is_empty());
            assert_eq!(format!("edt.{id}.{secret}"), text.trim());
        }
        Ok(Bearer::Share(s)) => {
            if let Ok(c) = keys.verify_share(s, NOW) {
                assert!(c.e > NOW, "expired link accepted");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    // A link this server signs, from fuzzed claims, and every one-byte change of it.
    let mut fields = text.splitn(3, '\u{1f}');
    let claims = ShareClaims {
        d: fields.next().unwrap_or_default().to_string(),
        h: fields.next().unwrap_or_default().to_string(),
        e: NOW + 1 + i64::from(data.first().copied().unwrap_or(0)),
        n: fields.next().unwrap_or_default().to_string(),
    };
    let link = keys.sign_share(&claims);
    assert_eq!(keys.verify_share(&link, NOW), Ok(claims));
    let i = usize::from(data.last().copied().unwrap_or(0)) % link.len();
    let mut bytes = link.clone().into_bytes();
    bytes[i] ^= 0x01;
    if let Ok(mutated) = String::from_utf8(bytes) {
        assert!(
            keys.verify_share(&mutated, NOW).is_err(),
            "forged link accepted"
        );
    }
});
