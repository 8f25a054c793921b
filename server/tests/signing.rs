//! Signed bundles on publish, on SQLite and PostgreSQL: unsigned, unknown-key,
//! forged and other-bundle signatures are refused with a clear 422 and nothing is
//! stored; a correctly signed bundle is accepted and its `bundle.sig` served; with no
//! trusted key configured, publishing is refused.

mod common;

use std::io::Read;

use common::*;
use edetail_format::signature::{
    BundleSignature, PublicKey, SIGNATURE_FILE, SecretKey, TrustedKeysJson, crypto,
};
use edetail_server::bundles::{pack_files, sample_bundle, test_public_key, test_signing_key};
use edetail_server::client::ClientError;

/// The files of a sample archive (path, bytes), in archive order.
fn files_of(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut ar = tar::Archive::new(archive);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().to_string();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        out.push((path, b));
    }
    out
}

/// The sample archive for `deck` with its `bundle.sig` replaced (None: removed).
fn with_sig(deck: &str, sig: impl FnOnce(&str) -> Option<Vec<u8>>) -> (Vec<u8>, String) {
    let (ar, b) = sample_bundle(deck, "1.0.0", "2020-01-01", "2099-12-31", 3);
    let hash = edetail_format::sha256_hex(&b.to_json());
    let mut files: Vec<_> = files_of(&ar)
        .into_iter()
        .filter(|(p, _)| p != SIGNATURE_FILE)
        .collect();
    if let Some(s) = sig(&hash) {
        files.push((SIGNATURE_FILE.into(), s));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    (pack_files(&refs), hash)
}

fn refused(r: Result<edetail_server::app::PublishResult, ClientError>) -> String {
    match r {
        Err(ClientError::Status {
            status: 422,
            message,
            ..
        }) => message,
        other => panic!("expected 422, got {other:?}"),
    }
}

#[test]
fn publish_refuses_unsigned_untrusted_forged_and_misapplied_signatures() {
    each_backend(|b| {
        let s = TestServer::start(b);
        let admin = s.admin_client();
        let intruder = SecretKey([42u8; 32]);

        let (unsigned, _) = with_sig("a", |_| None);
        let m = refused(admin.publish(&unsigned, &[]));
        assert!(m.contains("not signed"), "{m}");

        let (untrusted, _) = with_sig("a", |h| Some(crypto::sign(&intruder, h).to_json()));
        let m = refused(admin.publish(&untrusted, &[]));
        assert!(
            m.contains(&intruder.public_key().key_id()) && m.contains("not a trusted key"),
            "{m}"
        );

        // Forged: names the trusted key, but was made with another key.
        let (forged, _) = with_sig("a", |h| {
            let mut sig = crypto::sign(&intruder, h);
            sig.key_id = test_public_key().key_id();
            Some(sig.to_json())
        });
        let m = refused(admin.publish(&forged, &[]));
        assert!(m.contains("does not verify"), "{m}");

        // A genuine signature of another bundle, copied next to this one...
        let (_, other_hash) = with_sig("b", |_| None);
        let (copied, _) = with_sig("a", |_| {
            Some(crypto::sign(&test_signing_key(), &other_hash).to_json())
        });
        let m = refused(admin.publish(&copied, &[]));
        assert!(
            m.contains("signs another bundle") && m.contains(&other_hash),
            "{m}"
        );
        // ...and with its bundle_hash rewritten to this bundle's hash.
        let (rewritten, _) = with_sig("a", |h| {
            let mut sig = crypto::sign(&test_signing_key(), &other_hash);
            sig.bundle_hash = h.to_string();
            Some(sig.to_json())
        });
        let m = refused(admin.publish(&rewritten, &[]));
        assert!(m.contains("does not verify"), "{m}");

        let (malformed, _) = with_sig("a", |_| Some(b"{\"schema\":1}".to_vec()));
        let m = refused(admin.publish(&malformed, &[]));
        assert!(m.contains("malformed"), "{m}");

        assert!(
            admin.versions().unwrap().is_empty(),
            "a refused bundle was stored"
        );

        // Correctly signed: accepted, and its signature served next to bundle.json.
        let (good, hash) = with_sig("a", |h| {
            Some(crypto::sign(&test_signing_key(), h).to_json())
        });
        let r = admin.publish(&good, &[]).unwrap();
        assert_eq!(r.bundle_hash, hash);
        let anon = s.anon();
        let sig = anon
            .raw("GET", &format!("/bundles/{hash}/bundle.sig"), None, None)
            .unwrap();
        assert_eq!(sig.status, 200, "{}", sig.body);
        assert_eq!(
            crypto::verify(Some(sig.body.as_bytes()), &hash, &[test_public_key()]),
            Ok(test_public_key())
        );
        assert_eq!(
            BundleSignature::parse(sig.body.as_bytes())
                .unwrap()
                .bundle_hash,
            hash
        );
        let missing = anon
            .raw(
                "GET",
                &format!("/bundles/{}/bundle.sig", "0".repeat(64)),
                None,
                None,
            )
            .unwrap();
        assert_eq!(missing.status, 404);
        let keys = anon
            .raw("GET", "/app/trusted-keys.json", None, None)
            .unwrap();
        assert_eq!(keys.status, 200);
        assert_eq!(
            TrustedKeysJson::parse(keys.body.as_bytes()).unwrap(),
            vec![test_public_key()]
        );
    });
}

#[test]
fn no_trusted_keys_means_no_publishing() {
    each_backend(|b| {
        let s = TestServer::start_with(b, |c| c.trusted_keys.clear());
        let (ar, _) = sample_bundle("d", "1.0.0", "2020-01-01", "2099-12-31", 3);
        let m = refused(s.admin_client().publish(&ar, &[]));
        assert!(m.contains("no trusted signing keys"), "{m}");
        assert!(s.admin_client().versions().unwrap().is_empty());
        let keys = s
            .anon()
            .raw("GET", "/app/trusted-keys.json", None, None)
            .unwrap();
        assert_eq!(
            TrustedKeysJson::parse(keys.body.as_bytes()).unwrap(),
            Vec::<PublicKey>::new()
        );
    });
}

#[test]
fn a_server_trusts_only_its_configured_keys() {
    each_backend(|b| {
        let ho = SecretKey([7u8; 32]);
        let s = TestServer::start_with(b, |c| c.trusted_keys = vec![ho.public_key()]);
        // The TEST key's sample is refused here: only configured keys count.
        let (ar, _) = sample_bundle("d", "1.0.0", "2020-01-01", "2099-12-31", 3);
        let m = refused(s.admin_client().publish(&ar, &[]));
        assert!(m.contains("not a trusted key"), "{m}");
        let (signed, hash) = with_sig("d", |h| Some(crypto::sign(&ho, h).to_json()));
        assert_eq!(
            s.admin_client().publish(&signed, &[]).unwrap().bundle_hash,
            hash
        );
    });
}
