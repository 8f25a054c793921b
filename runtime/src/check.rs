//! Whether a fetched bundle may be presented: integrity (bundle hash, slide hashes,
//! schema version), the MLR approval window, and the signature (`bundle.sig` by a key
//! of the app's `trusted-keys.json`; preview bundles skip it). The ed25519 check itself
//! runs in the browser (WebCrypto, `web::load`); everything before it is here.

use edetail_format::bundle::{Bundle, BundleError, WindowStatus, verify_and_parse};
use edetail_format::signature::{SignatureError, TrustedKeysJson, VerifyRequest, check_claims};

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

/// Everything before the ed25519 check: `sig` is `bundle.sig` (None: the server has
/// none, HTTP 404), `trusted_keys` the bytes of `trusted-keys.json`. Returns the
/// request for WebCrypto: its public key, message and signature.
pub fn signature_claims(
    hash: &str,
    sig: Option<&[u8]>,
    trusted_keys: &[u8],
) -> Result<VerifyRequest, Refusal> {
    let keys = TrustedKeysJson::parse(trusted_keys)?;
    Ok(check_claims(sig, hash, &keys)?)
}

/// The refusal when WebCrypto reports that the signature does not verify.
pub fn signature_failed(r: &VerifyRequest) -> Refusal {
    SignatureError::BadSignature(r.public_key.key_id()).into()
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

/// Verify `bundle.json` bytes against the bundle hash and check the approval window
/// for `today` (UTC `YYYY-MM-DD`).
pub fn admit(bytes: &[u8], expected_hash: &str, today: &str) -> Result<Bundle, Refusal> {
    let b = verify_and_parse(bytes, expected_hash)?;
    window(&b, today)?;
    Ok(b)
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
    use edetail_format::sha256_hex;

    #[test]
    fn admits_a_valid_bundle() {
        let bytes = bundle(&["a"], &[], &[]).to_json();
        let hash = sha256_hex(&bytes);
        assert!(admit(&bytes, &hash, "2026-06-01").is_ok());
        // Window bounds are inclusive.
        assert!(admit(&bytes, &hash, "2026-01-01").is_ok());
        assert!(admit(&bytes, &hash, "2027-12-31").is_ok());
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
        assert!(matches!(
            admit(&tampered, &hash, "2026-06-01"),
            Err(Refusal::Integrity(_))
        ));
        // A slide edited without updating its content hash.
        let mut b = bundle(&["a"], &[], &[]);
        b.slides[0].html = "<h1>changed</h1>".into();
        let bytes = b.to_json();
        assert!(matches!(
            admit(&bytes, &sha256_hex(&bytes), "2026-06-01"),
            Err(Refusal::Integrity(_))
        ));
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
    }

    mod signatures {
        use super::super::*;
        use edetail_format::signature::{BundleSignature, PublicKey, signed_message};

        const H: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

        fn keys(k: &[PublicKey]) -> Vec<u8> {
            TrustedKeysJson::from_keys(k).to_json()
        }

        #[test]
        fn preview_bundles_skip_the_check() {
            let mut b = crate::testutil::bundle(&["a"], &[], &[]);
            assert!(needs_signature(&b));
            b.preview = true;
            assert!(!needs_signature(&b));
        }

        #[test]
        fn claims_give_webcrypto_its_inputs() {
            let k = PublicKey([3u8; 32]);
            let sig = BundleSignature::new(&k, H, &[9u8; 64]).to_json();
            let r = signature_claims(H, Some(&sig), &keys(&[PublicKey([1u8; 32]), k])).unwrap();
            assert_eq!(r.public_key, k);
            assert_eq!(r.message, signed_message(H));
            assert_eq!(r.message, format!("edetail-bundle-v1:{H}").into_bytes());
            assert_eq!(r.signature, [9u8; 64]);
            assert!(
                matches!(signature_failed(&r), Refusal::BadSignature(m) if m.contains(&k.key_id()))
            );
        }

        #[test]
        fn refusals_by_cause() {
            let k = PublicKey([3u8; 32]);
            let sig = BundleSignature::new(&k, H, &[9u8; 64]).to_json();
            assert!(matches!(
                signature_claims(H, None, &keys(&[k])),
                Err(Refusal::Unsigned(m)) if m.contains("not signed")
            ));
            assert!(matches!(
                signature_claims(H, Some(&sig), &keys(&[PublicKey([4u8; 32])])),
                Err(Refusal::UntrustedSigner(m)) if m.contains(&k.key_id())
            ));
            assert!(matches!(
                signature_claims(H, Some(&sig), &keys(&[])),
                Err(Refusal::UntrustedSigner(m)) if m.contains("no trusted")
            ));
            assert!(matches!(
                signature_claims(H, Some(&sig), b"<html>404</html>"),
                Err(Refusal::UntrustedSigner(_))
            ));
            assert!(matches!(
                signature_claims(&"0".repeat(64), Some(&sig), &keys(&[k])),
                Err(Refusal::BadSignature(m)) if m.contains("another bundle")
            ));
            assert!(matches!(
                signature_claims(H, Some(b"{}"), &keys(&[k])),
                Err(Refusal::BadSignature(m)) if m.contains("malformed")
            ));
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
