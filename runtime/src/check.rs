//! Whether a fetched bundle may be presented: integrity (bundle hash, schema version,
//! structure), the MLR approval window, and the signature (`bundle.sig` by a key of the
//! app's `trusted-keys.json`; preview bundles skip it). Every hash the player needs
//! (bundle hash, asset hashes, key ids) and the ed25519 check itself are computed in the
//! browser with WebCrypto (`web::dom::sha256_hex`, `web::load`), so the wasm carries no
//! SHA-256 code; the decisions on those results are here, and tested natively.

use edetail_format::bundle::{AssetEntry, Bundle, BundleError, WindowStatus};
use edetail_format::signature::{
    BundleSignature, PublicKey, SignatureError, TrustedKeysJson, VerifyRequest, signed_message,
};

/// Why the player refuses to present (shown full-screen, localized).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Expired {
        code: String,
        from: String,
        until: String,
    },
    NotYetValid {
        code: String,
        from: String,
        until: String,
    },
    /// Bundle, slide or asset hash mismatch.
    Integrity(String),
    UnsupportedSchema(String),
    /// Network or server problem, malformed bundle.
    LoadFailed(String),
    /// The link names no bundle.
    NoBundle,
    /// A non-preview bundle without `bundle.sig`.
    Unsigned(String),
    /// Signed by a key the app does not trust (or the app trusts no key).
    UntrustedSigner(String),
    /// `bundle.sig` is malformed, signs another bundle, or does not verify (forged).
    BadSignature(String),
}

impl From<SignatureError> for Refusal {
    fn from(e: SignatureError) -> Self {
        let msg = e.to_string();
        match e {
            SignatureError::Unsigned => Refusal::Unsigned(msg),
            SignatureError::NoTrustedKeys
            | SignatureError::UnknownKey(_)
            | SignatureError::BadKey(_) => Refusal::UntrustedSigner(msg),
            SignatureError::Malformed(_)
            | SignatureError::WrongHash { .. }
            | SignatureError::BadSignature(_) => Refusal::BadSignature(msg),
        }
    }
}

/// Whether `bundle` must carry a trusted signature: every bundle except previews
/// (never signed; shown marked as previews).
pub fn needs_signature(bundle: &Bundle) -> bool {
    !bundle.preview
}

/// The keys of `trusted-keys.json` (its bytes); any bad key refuses (untrusted signer).
pub fn trusted_keys(bytes: &[u8]) -> Result<Vec<PublicKey>, Refusal> {
    Ok(TrustedKeysJson::parse(bytes)?)
}

/// A trusted key and its key id (`format::signature::key_id`: hex of the first 8 bytes
/// of the key's sha256, computed by the caller: WebCrypto in the browser).
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedKey {
    pub key: PublicKey,
    pub id: String,
}

/// The key id from the hex sha256 of the key's 32 bytes.
pub fn key_id_from_sha256(sha256_hex: &str) -> String {
    sha256_hex
        .get(..16)
        .unwrap_or(sha256_hex)
        .to_ascii_lowercase()
}

/// What WebCrypto must verify, and the id of the key that should have signed.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub request: VerifyRequest,
    pub key_id: String,
}

/// Everything before the ed25519 check: `sig` is `bundle.sig` (None: the server has
/// none, HTTP 404), `trusted` the app's keys with their ids. The same checks, in the
/// same order and with the same errors, as `format::signature::check_claims` (which
/// the server uses; a test holds them equal), but with the key ids computed by the
/// caller so that the wasm does not hash.
pub fn signature_claims(
    hash: &str,
    sig: Option<&[u8]>,
    trusted: &[TrustedKey],
) -> Result<Claims, Refusal> {
    if trusted.is_empty() {
        return Err(SignatureError::NoTrustedKeys.into());
    }
    let bytes = sig.ok_or(SignatureError::Unsigned)?;
    let s = BundleSignature::parse(bytes)?;
    let actual = hash.trim().to_ascii_lowercase();
    if s.bundle_hash.to_ascii_lowercase() != actual {
        return Err(SignatureError::WrongHash {
            signed: s.bundle_hash,
            actual,
        }
        .into());
    }
    let key_id = s.key_id.to_ascii_lowercase();
    let Some(k) = trusted.iter().find(|k| k.id == key_id) else {
        return Err(SignatureError::UnknownKey(key_id).into());
    };
    Ok(Claims {
        request: VerifyRequest {
            public_key: k.key,
            message: signed_message(&actual),
            signature: s.signature_bytes()?,
        },
        key_id,
    })
}

/// The refusal when WebCrypto reports that the signature does not verify.
pub fn signature_failed(c: &Claims) -> Refusal {
    SignatureError::BadSignature(c.key_id.clone()).into()
}

impl From<BundleError> for Refusal {
    fn from(e: BundleError) -> Self {
        let msg = e.to_string();
        match e {
            BundleError::HashMismatch { .. }
            | BundleError::SlideHashMismatch { .. }
            | BundleError::AssetHashMismatch { .. } => Refusal::Integrity(msg),
            BundleError::UnsupportedSchema { .. } => Refusal::UnsupportedSchema(msg),
            BundleError::Malformed(_) | BundleError::Invalid(_) => Refusal::LoadFailed(msg),
        }
    }
}

/// Admit `bundle.json` bytes: `computed_hash` is their sha256 (hex; WebCrypto in the
/// browser), `expected_hash` the content of `bundle.sha256`. Checks the bundle hash,
/// then schema version and structure (`Bundle::from_verified_json`), then the approval
/// window for `today` (UTC `YYYY-MM-DD`). Slide content hashes are not recomputed: they
/// are part of the hashed bytes (a slide edited after the build changes the bundle
/// hash), and a replaced `bundle.sha256` is caught by the signature.
pub fn admit_with_hash(
    bytes: &[u8],
    computed_hash: &str,
    expected_hash: &str,
    today: &str,
) -> Result<Bundle, Refusal> {
    check_bundle_hash(computed_hash, expected_hash)?;
    let b = Bundle::from_verified_json(bytes)?;
    window(&b, today)?;
    Ok(b)
}

/// `computed_hash` (hex) against the content of `bundle.sha256`: trimmed, any case.
fn check_bundle_hash(computed_hash: &str, expected_hash: &str) -> Result<(), Refusal> {
    let expected = expected_hash.trim();
    if !computed_hash.eq_ignore_ascii_case(expected) {
        return Err(BundleError::HashMismatch {
            expected: expected.to_string(),
            actual: computed_hash.to_ascii_lowercase(),
        }
        .into());
    }
    Ok(())
}

/// [`admit_with_hash`] for bytes already parsed (`Bundle::from_verified_json`) while
/// their hash and signature were still being checked by WebCrypto: the same checks in
/// the same order with the same refusals, the bundle hash first, so a parse of bytes
/// that do not match `bundle.sha256` is never used (nor its error shown).
pub fn admit_parsed(
    parsed: Result<Bundle, BundleError>,
    computed_hash: &str,
    expected_hash: &str,
    today: &str,
) -> Result<Bundle, Refusal> {
    check_bundle_hash(computed_hash, expected_hash)?;
    let b = parsed?;
    window(&b, today)?;
    Ok(b)
}

/// Check an asset's sha256 (hex, computed by the caller) and size against its manifest
/// entry: `format::bundle::verify_asset` without hashing in the wasm.
pub fn verify_asset_hash(entry: &AssetEntry, computed_hash: &str, len: u64) -> Result<(), Refusal> {
    if computed_hash != entry.sha256 || len != entry.size {
        return Err(BundleError::AssetHashMismatch {
            path: entry.path.clone(),
        }
        .into());
    }
    Ok(())
}

/// Lower-case hex of `bytes` (a WebCrypto digest).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// The approval-window check alone.
pub fn window(b: &Bundle, today: &str) -> Result<(), Refusal> {
    let a = &b.approval;
    let args = || (a.code.clone(), a.valid_from.clone(), a.valid_until.clone());
    match a.window_status(today) {
        WindowStatus::Valid => Ok(()),
        WindowStatus::Expired => {
            let (code, from, until) = args();
            Err(Refusal::Expired { code, from, until })
        }
        WindowStatus::NotYetValid => {
            let (code, from, until) = args();
            Err(Refusal::NotYetValid { code, from, until })
        }
    }
}

/// UTC ISO date (`YYYY-MM-DD`) of a Unix time in ms (civil-from-days, no chrono).
pub fn iso_date(ms: f64) -> String {
    let days = (ms / 86_400_000.0).floor() as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::bundle;
    use edetail_format::bundle::verify_and_parse;
    use edetail_format::sha256_hex;

    /// What the player does with the bytes (the hash computed natively here, by
    /// WebCrypto in the browser).
    fn admit(bytes: &[u8], expected_hash: &str, today: &str) -> Result<Bundle, Refusal> {
        admit_with_hash(bytes, &sha256_hex(bytes), expected_hash, today)
    }

    #[test]
    fn admits_a_valid_bundle() {
        let bytes = bundle(&["a"], &[], &[]).to_json();
        let hash = sha256_hex(&bytes);
        let b = admit(&bytes, &hash, "2026-06-01").expect("admitted");
        assert_eq!(b, verify_and_parse(&bytes, &hash).expect("format agrees"));
        // Window bounds are inclusive; the expected hash is read trimmed, any case.
        assert!(admit(&bytes, &hash, "2026-01-01").is_ok());
        assert!(admit(&bytes, &format!("{}\n", hash.to_uppercase()), "2027-12-31").is_ok());
    }

    #[test]
    fn refuses_expired_and_not_yet_valid() {
        let bytes = bundle(&["a"], &[], &[]).to_json();
        let hash = sha256_hex(&bytes);
        assert!(matches!(
            admit(&bytes, &hash, "2028-01-01"),
            Err(Refusal::Expired { ref until, .. }) if until == "2027-12-31"
        ));
        assert!(matches!(
            admit(&bytes, &hash, "2025-12-31"),
            Err(Refusal::NotYetValid { .. })
        ));
    }

    #[test]
    fn refuses_tampering() {
        let bytes = bundle(&["a"], &[], &[]).to_json();
        let hash = sha256_hex(&bytes);
        let mut tampered = bytes.clone();
        let at = tampered.len() - 2;
        tampered[at] = b' ';
        // The same refusal, word for word, as format's verify_and_parse.
        let want: Refusal = verify_and_parse(&tampered, &hash).unwrap_err().into();
        let got = admit(&tampered, &hash, "2026-06-01").unwrap_err();
        assert_eq!(got, want);
        assert!(
            matches!(&got, Refusal::Integrity(m) if m.contains("bundle hash mismatch") && m.contains(&hash))
        );
        // A slide edited after the build (its content hash left or recomputed): the
        // bytes no longer match the published bundle hash.
        for recompute in [false, true] {
            let mut b = bundle(&["a"], &[], &[]);
            b.slides[0].html = "<h1>changed</h1>".into();
            if recompute {
                b.slides[0].content_hash = b.slides[0].compute_content_hash();
            }
            assert!(matches!(
                admit(&b.to_json(), &hash, "2026-06-01"),
                Err(Refusal::Integrity(m)) if m.contains("bundle hash mismatch")
            ));
        }
    }

    /// The player parses while WebCrypto still hashes and verifies: every outcome of
    /// `admit_parsed` on the early parse equals `admit_with_hash` (hash first).
    #[test]
    fn admit_parsed_equals_admit_with_hash() {
        let good = bundle(&["a", "b"], &[], &[]).to_json();
        let mut tampered = good.clone();
        let at = tampered.len() - 2;
        tampered[at] = b' ';
        let mut schema: serde_json::Value = serde_json::from_slice(&good).expect("json");
        schema["schema_version"] = 2.into();
        let schema = serde_json::to_vec(&schema).expect("json");
        let good_hash = sha256_hex(&good);
        let cases: Vec<(&[u8], String)> = vec![
            (&good, good_hash.clone()),
            (&good, format!(" {}\n", good_hash.to_uppercase())),
            (&tampered, good_hash.clone()),
            (&tampered, sha256_hex(&tampered)),
            (&schema, sha256_hex(&schema)),
            (&schema, good_hash.clone()),
            (b"<html>404</html>", sha256_hex(b"<html>404</html>")),
            (b"<html>404</html>", good_hash.clone()),
        ];
        let mut kinds = std::collections::BTreeSet::new();
        for (bytes, expected) in &cases {
            for today in ["2025-12-31", "2026-06-01", "2028-01-01"] {
                let want = admit(bytes, expected, today);
                let got = admit_parsed(
                    Bundle::from_verified_json(bytes),
                    &sha256_hex(bytes),
                    expected,
                    today,
                );
                assert_eq!(got, want, "{expected} {today}");
                kinds.insert(match want {
                    Ok(_) => "ok",
                    Err(Refusal::Integrity(_)) => "integrity",
                    Err(Refusal::UnsupportedSchema(_)) => "schema",
                    Err(Refusal::LoadFailed(_)) => "malformed",
                    Err(Refusal::Expired { .. }) => "expired",
                    Err(Refusal::NotYetValid { .. }) => "not-yet-valid",
                    Err(_) => "other",
                });
            }
        }
        // The cases cover every refusal the parse order decides.
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            [
                "expired",
                "integrity",
                "malformed",
                "not-yet-valid",
                "ok",
                "schema"
            ]
        );
    }

    #[test]
    fn refuses_other_schema_and_garbage() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&bundle(&["a"], &[], &[]).to_json()).expect("json");
        v["schema_version"] = 2.into();
        let bytes = serde_json::to_vec(&v).expect("json");
        assert!(matches!(
            admit(&bytes, &sha256_hex(&bytes), "2026-06-01"),
            Err(Refusal::UnsupportedSchema(_))
        ));
        let junk = b"<html>404</html>";
        assert!(matches!(
            admit(junk, &sha256_hex(junk), "2026-06-01"),
            Err(Refusal::LoadFailed(_))
        ));
        // Structure is still checked: a flow naming a missing slide.
        let mut v: serde_json::Value =
            serde_json::from_slice(&bundle(&["a"], &[], &[]).to_json()).expect("json");
        v["flow"][0]["slides"][0] = "zz".into();
        let bytes = serde_json::to_vec(&v).expect("json");
        assert!(matches!(
            admit(&bytes, &sha256_hex(&bytes), "2026-06-01"),
            Err(Refusal::LoadFailed(m)) if m.contains("unknown slide `zz`")
        ));
    }

    #[test]
    fn asset_checks_match_format() {
        use edetail_format::bundle::verify_asset;
        let data = b"\x89PNG fake image bytes";
        let entry = AssetEntry {
            path: format!("assets/{}.png", sha256_hex(data)),
            source: "img/a.png".into(),
            sha256: sha256_hex(data),
            size: data.len() as u64,
            media_type: "image/png".into(),
        };
        let check =
            |bytes: &[u8]| verify_asset_hash(&entry, &sha256_hex(bytes), bytes.len() as u64);
        assert_eq!(check(data), Ok(()));
        let mut other = data.to_vec();
        other[0] ^= 1;
        for bad in [&other[..], &data[1..], b""] {
            let want: Refusal = verify_asset(&entry, bad).unwrap_err().into();
            assert_eq!(check(bad), Err(want));
        }
        // Right bytes, wrong size in the manifest.
        let wrong_size = AssetEntry {
            size: 1,
            ..entry.clone()
        };
        assert!(matches!(
            verify_asset_hash(&wrong_size, &sha256_hex(data), data.len() as u64),
            Err(Refusal::Integrity(m)) if m.contains(&entry.path)
        ));
    }

    #[test]
    fn hex_digits() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(key_id_from_sha256(&sha256_hex(b"abc")), "ba7816bf8f01cfea");
    }

    mod signatures {
        use super::super::*;
        use edetail_format::sha256_hex;
        use edetail_format::signature::{BundleSignature, check_claims, key_id};

        const H: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

        fn keys(k: &[PublicKey]) -> Vec<u8> {
            TrustedKeysJson::from_keys(k).to_json()
        }

        /// What `web::load` does: parse the keys, id them (WebCrypto there), claim.
        fn claims(hash: &str, sig: Option<&[u8]>, keys_json: &[u8]) -> Result<Claims, Refusal> {
            let trusted: Vec<TrustedKey> = trusted_keys(keys_json)?
                .into_iter()
                .map(|key| TrustedKey {
                    id: key_id_from_sha256(&sha256_hex(&key.0)),
                    key,
                })
                .collect();
            signature_claims(hash, sig, &trusted)
        }

        /// The same outcome as the server's `check_claims`.
        fn format_claims(
            hash: &str,
            sig: Option<&[u8]>,
            keys_json: &[u8],
        ) -> Result<Claims, Refusal> {
            let keys = TrustedKeysJson::parse(keys_json)?;
            let request = check_claims(sig, hash, &keys)?;
            let key_id = request.public_key.key_id();
            Ok(Claims { request, key_id })
        }

        #[test]
        fn preview_bundles_skip_the_check() {
            let mut b = crate::testutil::bundle(&["a"], &[], &[]);
            assert!(needs_signature(&b));
            b.preview = true;
            assert!(!needs_signature(&b));
        }

        #[test]
        fn key_ids_match_format() {
            for k in [[0u8; 32], [7u8; 32], [255u8; 32]] {
                assert_eq!(key_id_from_sha256(&sha256_hex(&k)), key_id(&k));
            }
        }

        #[test]
        fn claims_give_webcrypto_its_inputs() {
            let k = PublicKey([3u8; 32]);
            let sig = BundleSignature::new(&k, H, &[9u8; 64]).to_json();
            let c = claims(H, Some(&sig), &keys(&[PublicKey([1u8; 32]), k])).unwrap();
            assert_eq!(c.request.public_key, k);
            assert_eq!(c.key_id, k.key_id());
            assert_eq!(c.request.message, signed_message(H));
            assert_eq!(
                c.request.message,
                format!("edetail-bundle-v1:{H}").into_bytes()
            );
            assert_eq!(c.request.signature, [9u8; 64]);
            assert!(
                matches!(signature_failed(&c), Refusal::BadSignature(m) if m.contains(&k.key_id()))
            );
        }

        #[test]
        fn refusals_by_cause() {
            let k = PublicKey([3u8; 32]);
            let sig = BundleSignature::new(&k, H, &[9u8; 64]).to_json();
            assert!(matches!(
                claims(H, None, &keys(&[k])),
                Err(Refusal::Unsigned(m)) if m.contains("not signed")
            ));
            assert!(matches!(
                claims(H, Some(&sig), &keys(&[PublicKey([4u8; 32])])),
                Err(Refusal::UntrustedSigner(m)) if m.contains(&k.key_id())
            ));
            assert!(matches!(
                claims(H, Some(&sig), &keys(&[])),
                Err(Refusal::UntrustedSigner(m)) if m.contains("no trusted")
            ));
            assert!(matches!(
                claims(H, Some(&sig), b"<html>404</html>"),
                Err(Refusal::UntrustedSigner(_))
            ));
            assert!(matches!(
                claims(&"0".repeat(64), Some(&sig), &keys(&[k])),
                Err(Refusal::BadSignature(m)) if m.contains("another bundle")
            ));
            assert!(matches!(
                claims(H, Some(b"{}"), &keys(&[k])),
                Err(Refusal::BadSignature(m)) if m.contains("malformed")
            ));
        }

        /// The player's claim check and the server's `check_claims` agree, refusal
        /// text included, over valid and broken inputs.
        #[test]
        fn claims_agree_with_format() {
            let k = PublicKey([3u8; 32]);
            let other = PublicKey([4u8; 32]);
            let good = BundleSignature::new(&k, H, &[9u8; 64]);
            let mut upper = good.clone();
            upper.key_id = upper.key_id.to_uppercase();
            upper.bundle_hash = upper.bundle_hash.to_uppercase();
            let mut bad_sig = good.clone();
            bad_sig.sig = "AAAA".into();
            let sigs: Vec<Option<Vec<u8>>> = vec![
                None,
                Some(good.to_json()),
                Some(upper.to_json()),
                Some(bad_sig.to_json()),
                Some(BundleSignature::new(&other, H, &[1u8; 64]).to_json()),
                Some(b"{}".to_vec()),
                Some(b"not json".to_vec()),
            ];
            let key_sets = [
                keys(&[k]),
                keys(&[other, k]),
                keys(&[other]),
                keys(&[]),
                b"{\"keys\":[\"ed25519:nope\"]}".to_vec(),
            ];
            let hashes = [
                H.to_string(),
                format!(" {}\n", H.to_uppercase()),
                "0".repeat(64),
            ];
            let mut n = 0;
            for sig in &sigs {
                for ks in &key_sets {
                    for h in &hashes {
                        assert_eq!(
                            claims(h, sig.as_deref(), ks),
                            format_claims(h, sig.as_deref(), ks),
                            "hash {h:?}, keys {}, sig {:?}",
                            String::from_utf8_lossy(ks),
                            sig.as_deref().map(String::from_utf8_lossy),
                        );
                        n += 1;
                    }
                }
            }
            assert_eq!(n, 7 * 5 * 3);
        }
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_date(0.0), "1970-01-01");
        assert_eq!(iso_date(951_782_400_000.0), "2000-02-29");
        assert_eq!(iso_date(1_763_800_000_000.0), "2025-11-22");
        assert_eq!(iso_date(1_798_761_599_999.0), "2026-12-31");
        assert_eq!(iso_date(-86_400_000.0), "1969-12-31");
    }
}
