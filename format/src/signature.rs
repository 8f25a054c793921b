//! Signed bundles: the `bundle.sig` file, public/secret key text forms, trusted-key
//! lists, and (behind the `crypto` feature) ed25519 signing and verification.
//!
//! # Contract
//!
//! A bundle directory or `.edetail` archive may hold `bundle.sig`, JSON:
//!
//! ```json
//! {"schema":1,"alg":"ed25519","key_id":"<16 hex>","bundle_hash":"<64 hex>","sig":"<base64>"}
//! ```
//!
//! - `key_id`: the first 8 bytes of sha256(32 public key bytes), lower-case hex
//!   ([`key_id`]).
//! - `bundle_hash`: the bundle hash (hex sha256 of `bundle.json`, i.e. `bundle.sha256`
//!   trimmed). `bundle.json` lists the sha256 of every asset and every slide's content
//!   hash, so signing the bundle hash covers the whole bundle.
//! - `sig`: standard base64 (with padding) of the 64-byte ed25519 signature of
//!   [`signed_message`]: ASCII `edetail-bundle-v1:` followed by the lower-case bundle
//!   hash hex (the prefix separates this use of the key from any other).
//!
//! Keys: a public key is written `ed25519:<standard base64 of 32 bytes>`; a
//! trusted-keys file has one per line (blank lines and `#` comments allowed); a secret
//! key file holds `ed25519-secret:<standard base64 of the 32-byte seed>` (mode 0600).
//! The player fetches `trusted-keys.json` (`{"keys":["ed25519:..."]}`) next to its
//! page.
//!
//! Everything except [`crypto`] is plain parsing and compiles into the wasm runtime
//! without an ed25519 implementation (the browser verifies with WebCrypto).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Name of the signature file in a bundle directory or archive.
pub const SIGNATURE_FILE: &str = "bundle.sig";
/// The trusted keys the player fetches, relative to its page.
pub const TRUSTED_KEYS_JSON: &str = "trusted-keys.json";
/// `bundle.sig` schema version.
pub const SIGNATURE_SCHEMA: u32 = 1;
/// The only algorithm.
pub const ALG_ED25519: &str = "ed25519";
/// Domain-separation prefix of the signed message.
pub const MESSAGE_PREFIX: &str = "edetail-bundle-v1:";
/// Text prefix of a public key.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";
/// Text prefix of a secret key (seed).
pub const SECRET_KEY_PREFIX: &str = "ed25519-secret:";

/// Why a signature or key is refused. Each case has its own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "bundle is not signed (no {SIGNATURE_FILE}); sign it with `edetail sign` or build with --sign-key"
    )]
    Unsigned,
    #[error("{SIGNATURE_FILE} is malformed: {0}")]
    Malformed(String),
    #[error(
        "no trusted signing keys are configured, so no bundle can be accepted (configure trusted public keys)"
    )]
    NoTrustedKeys,
    #[error("bundle is signed by key {0}, which is not a trusted key")]
    UnknownKey(String),
    #[error("{SIGNATURE_FILE} signs another bundle ({signed}), not this one ({actual})")]
    WrongHash { signed: String, actual: String },
    #[error(
        "signature does not verify with trusted key {0}: the signature is forged or the bundle was altered"
    )]
    BadSignature(String),
    #[error("invalid key: {0}")]
    BadKey(String),
}

/// `key_id` of 32 public key bytes: hex of the first 8 bytes of their sha256.
pub fn key_id(public_key: &[u8; 32]) -> String {
    let d = Sha256::digest(public_key);
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes that are signed for a bundle hash.
pub fn signed_message(bundle_hash: &str) -> Vec<u8> {
    let mut m = MESSAGE_PREFIX.as_bytes().to_vec();
    m.extend_from_slice(bundle_hash.trim().to_ascii_lowercase().as_bytes());
    m
}

/// The fields of `bundle.sig`.
const SIGNATURE_FIELDS: [&str; 5] = ["schema", "alg", "key_id", "bundle_hash", "sig"];

fn json_object(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("expected a JSON object".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Strict standard base64 (RFC 4648 alphabet, `=` padding required, zero trailing
/// bits): accepts exactly what `base64`'s `STANDARD` engine decodes, and yields the same
/// bytes (checked against it by a property test). Written out because the wasm runtime
/// decodes a key or a signature once per start, and the crate's general decoder (chunked
/// fast paths, error types with positions) was ~4 KB of the module; encoding still uses
/// the crate. `None` for anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, quad) in b.chunks_exact(4).enumerate() {
        let last = i + 1 == b.len() / 4;
        let pad = match quad {
            [_, _, b'=', b'='] if last => 2,
            [_, _, _, b'='] if last => 1,
            _ => 0,
        };
        let mut v = 0u32;
        for &c in &quad[..4 - pad] {
            v = v << 6 | sextet(c)?;
        }
        v <<= 6 * pad as u32;
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        // The bits below the last byte kept must be zero (canonical encoding).
        if pad > 0 && bytes[3 - pad..].iter().any(|&x| x != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

fn decode_fixed<const N: usize>(b64: &str, what: &str) -> Result<[u8; N], String> {
    let bytes =
        base64_decode(b64.trim()).ok_or_else(|| format!("{what} is not standard base64"))?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| format!("{what} must be {N} bytes, found {}", bytes.len()))
}

/// An ed25519 public key (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Parse `ed25519:<base64>`.
    pub fn parse(text: &str) -> Result<PublicKey, SignatureError> {
        let t = text.trim();
        let b64 = t.strip_prefix(PUBLIC_KEY_PREFIX).ok_or_else(|| {
            SignatureError::BadKey(format!("a public key starts with `{PUBLIC_KEY_PREFIX}`"))
        })?;
        decode_fixed::<32>(b64, "public key")
            .map(PublicKey)
            .map_err(SignatureError::BadKey)
    }

    /// `ed25519:<base64>`.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}", STANDARD.encode(self.0))
    }

    pub fn key_id(&self) -> String {
        key_id(&self.0)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_text())
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// An ed25519 secret key: the 32-byte seed. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub [u8; 32]);

impl SecretKey {
    /// Parse `ed25519-secret:<base64>` (a key file's content).
    pub fn parse(text: &str) -> Result<SecretKey, SignatureError> {
        let b64 = text.trim().strip_prefix(SECRET_KEY_PREFIX).ok_or_else(|| {
            SignatureError::BadKey(format!(
                "a secret key file starts with `{SECRET_KEY_PREFIX}`"
            ))
        })?;
        decode_fixed::<32>(b64, "secret key")
            .map(SecretKey)
            .map_err(SignatureError::BadKey)
    }

    /// `ed25519-secret:<base64>` (no newline).
    pub fn to_text(&self) -> String {
        format!("{SECRET_KEY_PREFIX}{}", STANDARD.encode(self.0))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Parse a trusted-keys file: one `ed25519:...` key per line, `#` comments and blank
/// lines allowed. Errors name the line.
pub fn parse_trusted_keys(text: &str) -> Result<Vec<PublicKey>, SignatureError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let k = PublicKey::parse(line).map_err(|e| match e {
            SignatureError::BadKey(m) => SignatureError::BadKey(format!("line {}: {m}", i + 1)),
            other => other,
        })?;
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    Ok(keys)
}

/// The player's `trusted-keys.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKeysJson {
    pub keys: Vec<String>,
}

impl TrustedKeysJson {
    pub fn from_keys(keys: &[PublicKey]) -> TrustedKeysJson {
        TrustedKeysJson {
            keys: keys.iter().map(PublicKey::to_text).collect(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Parse `{"keys":[...]}`; any bad key fails the whole document.
    pub fn parse(bytes: &[u8]) -> Result<Vec<PublicKey>, SignatureError> {
        let bad = |m: String| SignatureError::BadKey(format!("{TRUSTED_KEYS_JSON}: {m}"));
        let doc = json_object(bytes).map_err(bad)?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("expected {\"keys\":[...]}".into()))?;
        keys.iter()
            .map(|k| {
                k.as_str()
                    .ok_or_else(|| bad("keys must be strings".into()))
                    .and_then(PublicKey::parse)
            })
            .collect()
    }
}

/// The content of `bundle.sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSignature {
    pub schema: u32,
    pub alg: String,
    pub key_id: String,
    pub bundle_hash: String,
    pub sig: String,
}

impl BundleSignature {
    /// A signature record from raw signature bytes.
    pub fn new(public_key: &PublicKey, bundle_hash: &str, signature: &[u8; 64]) -> Self {
        BundleSignature {
            schema: SIGNATURE_SCHEMA,
            alg: ALG_ED25519.into(),
            key_id: public_key.key_id(),
            bundle_hash: bundle_hash.trim().to_ascii_lowercase(),
            sig: STANDARD.encode(signature),
        }
    }

    /// Parse and validate the shape of `bundle.sig` (not the signature itself).
    pub fn parse(bytes: &[u8]) -> Result<BundleSignature, SignatureError> {
        // Through `serde_json::Value` rather than a derived `Deserialize`: the wasm
        // runtime already carries the `Value` parser, a derived one would add code.
        let m = json_object(bytes).map_err(SignatureError::Malformed)?;
        if let Some(k) = m.keys().find(|k| !SIGNATURE_FIELDS.contains(&k.as_str())) {
            return Err(SignatureError::Malformed(format!("unknown field `{k}`")));
        }
        let text = |f: &str| {
            m.get(f)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| SignatureError::Malformed(format!("missing string field `{f}`")))
        };
        let schema = m
            .get("schema")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| SignatureError::Malformed("missing number field `schema`".into()))?;
        let s = BundleSignature {
            schema,
            alg: text("alg")?,
            key_id: text("key_id")?,
            bundle_hash: text("bundle_hash")?,
            sig: text("sig")?,
        };
        if s.schema != SIGNATURE_SCHEMA {
            return Err(SignatureError::Malformed(format!(
                "schema {} is not supported (expected {SIGNATURE_SCHEMA})",
                s.schema
            )));
        }
        if s.alg != ALG_ED25519 {
            return Err(SignatureError::Malformed(format!(
                "algorithm `{}` is not supported (expected {ALG_ED25519})",
                s.alg
            )));
        }
        if !is_hex(&s.key_id, 16) {
            return Err(SignatureError::Malformed(
                "key_id must be 16 hex digits".into(),
            ));
        }
        if !is_hex(&s.bundle_hash, 64) {
            return Err(SignatureError::Malformed(
                "bundle_hash must be 64 hex digits".into(),
            ));
        }
        s.signature_bytes()?;
        Ok(s)
    }

    /// The 64 signature bytes.
    pub fn signature_bytes(&self) -> Result<[u8; 64], SignatureError> {
        decode_fixed::<64>(&self.sig, "sig").map_err(SignatureError::Malformed)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// What remains to be checked cryptographically once the claims in `bundle.sig` are
/// accepted: verify `signature` over `message` with `public_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    pub public_key: PublicKey,
    pub message: Vec<u8>,
    pub signature: [u8; 64],
}

/// Everything before the ed25519 check, shared by the server and the player: the file
/// is present and well-formed, signs `expected_hash`, and names a trusted key.
pub fn check_claims(
    sig_file: Option<&[u8]>,
    expected_hash: &str,
    trusted: &[PublicKey],
) -> Result<VerifyRequest, SignatureError> {
    if trusted.is_empty() {
        return Err(SignatureError::NoTrustedKeys);
    }
    let bytes = sig_file.ok_or(SignatureError::Unsigned)?;
    let s = BundleSignature::parse(bytes)?;
    let actual = expected_hash.trim().to_ascii_lowercase();
    if s.bundle_hash.to_ascii_lowercase() != actual {
        return Err(SignatureError::WrongHash {
            signed: s.bundle_hash,
            actual,
        });
    }
    let key_id = s.key_id.to_ascii_lowercase();
    let public_key = *trusted
        .iter()
        .find(|k| k.key_id() == key_id)
        .ok_or(SignatureError::UnknownKey(key_id))?;
    Ok(VerifyRequest {
        public_key,
        message: signed_message(&actual),
        signature: s.signature_bytes()?,
    })
}

/// ed25519 signing and verification (`crypto` feature: authoring, server, CLI; never
/// the wasm runtime).
#[cfg(feature = "crypto")]
pub mod crypto {
    use super::*;
    use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

    impl SecretKey {
        /// A new random key (operating-system randomness).
        pub fn generate() -> Result<SecretKey, SignatureError> {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)
                .map_err(|e| SignatureError::BadKey(format!("no randomness: {e}")))?;
            Ok(SecretKey(seed))
        }

        /// The matching public key.
        pub fn public_key(&self) -> PublicKey {
            PublicKey(SigningKey::from_bytes(&self.0).verifying_key().to_bytes())
        }
    }

    /// Sign a bundle hash: the content of `bundle.sig`.
    pub fn sign(secret: &SecretKey, bundle_hash: &str) -> BundleSignature {
        let sk = SigningKey::from_bytes(&secret.0);
        let sig = sk.sign(&signed_message(bundle_hash));
        BundleSignature::new(&secret.public_key(), bundle_hash, &sig.to_bytes())
    }

    /// Check a [`VerifyRequest`] (strict ed25519: no malleable signatures or weak keys).
    pub fn verify_request(r: &VerifyRequest) -> Result<(), SignatureError> {
        let id = r.public_key.key_id();
        let vk = VerifyingKey::from_bytes(&r.public_key.0)
            .map_err(|_| SignatureError::BadSignature(id.clone()))?;
        vk.verify_strict(&r.message, &Signature::from_bytes(&r.signature))
            .map_err(|_| SignatureError::BadSignature(id))
    }

    /// Full check of a bundle's `bundle.sig` (None: absent) against the bundle hash and
    /// the trusted keys; returns the key that signed it.
    pub fn verify(
        sig_file: Option<&[u8]>,
        expected_hash: &str,
        trusted: &[PublicKey],
    ) -> Result<PublicKey, SignatureError> {
        let r = check_claims(sig_file, expected_hash, trusted)?;
        verify_request(&r)?;
        Ok(r.public_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The hand-written decoder agrees with the `base64` crate's STANDARD engine:
        /// on encodings of any bytes, and on arbitrary strings over the alphabet, `=`
        /// and a few foreign characters (padding in odd places, non-zero trailing bits).
        #[test]
        fn base64_decode_agrees_with_the_crate(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            junk in "[A-Za-z0-9+/=_ -]{0,24}",
        ) {
            let enc = STANDARD.encode(&bytes);
            proptest::prop_assert_eq!(base64_decode(&enc), Some(bytes));
            proptest::prop_assert_eq!(base64_decode(&junk), STANDARD.decode(&junk).ok());
            // Near misses of a valid encoding: the last character changed.
            if let Some(last) = enc.len().checked_sub(1) {
                for c in ["A", "B", "Q", "=", "/"] {
                    let near = format!("{}{c}", &enc[..last]);
                    proptest::prop_assert_eq!(base64_decode(&near), STANDARD.decode(&near).ok());
                }
            }
        }
    }

    #[test]
    fn base64_decode_edge_cases() {
        for (s, ok) in [
            ("", true),
            ("AA==", true),
            ("AB==", false), // non-zero trailing bits
            ("AAA=", true),
            ("AAB=", false),
            ("AAAA", true),
            ("A===", false),
            ("====", false),
            ("AA==AAAA", false), // padding before the end
            ("AA=A", false),
            ("AAA", false),
            ("AA AA", false),
            ("AA-_", false), // URL-safe alphabet
        ] {
            assert_eq!(base64_decode(s).is_some(), ok, "{s}");
            assert_eq!(base64_decode(s), STANDARD.decode(s).ok(), "{s}");
        }
    }

    const HASH: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn key_text_roundtrip_and_id() {
        let k = PublicKey([7u8; 32]);
        let t = k.to_text();
        assert!(t.starts_with("ed25519:"));
        assert_eq!(PublicKey::parse(&t).unwrap(), k);
        assert_eq!(k.key_id().len(), 16);
        assert_eq!(
            k.key_id(),
            crate::sha256_hex(&[7u8; 32])[..16],
            "key id = first 8 bytes of sha256"
        );
        let s = SecretKey([9u8; 32]);
        assert_eq!(SecretKey::parse(&format!("{}\n", s.to_text())).unwrap(), s);
        assert!(!format!("{s:?}").contains(&s.to_text()[15..]));
        assert!(matches!(
            PublicKey::parse("ed25519:AAAA"),
            Err(SignatureError::BadKey(m)) if m.contains("32 bytes")
        ));
        assert!(matches!(
            PublicKey::parse(&s.to_text()),
            Err(SignatureError::BadKey(_))
        ));
    }

    #[test]
    fn message_is_domain_separated() {
        assert_eq!(
            signed_message(&format!(" {}\n", HASH.to_uppercase())),
            format!("edetail-bundle-v1:{HASH}").into_bytes()
        );
    }

    #[test]
    fn trusted_keys_file() {
        let a = PublicKey([1u8; 32]);
        let b = PublicKey([2u8; 32]);
        let text = format!("# head office\n\n{a}  # main\n{b}\n{a}\n");
        assert_eq!(parse_trusted_keys(&text).unwrap(), vec![a, b]);
        let e = parse_trusted_keys(&format!("{a}\nnot-a-key\n")).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let json = TrustedKeysJson::from_keys(&[a, b]).to_json();
        assert_eq!(TrustedKeysJson::parse(&json).unwrap(), vec![a, b]);
        assert!(TrustedKeysJson::parse(b"{\"keys\":[\"x\"]}").is_err());
    }

    #[test]
    fn malformed_signature_files() {
        let k = PublicKey([3u8; 32]);
        let good = BundleSignature::new(&k, HASH, &[5u8; 64]);
        assert_eq!(BundleSignature::parse(&good.to_json()).unwrap(), good);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "expected"),
            (b"[1]".to_vec(), "JSON object"),
            (b"{\"schema\":1}".to_vec(), "missing string field `alg`"),
            (
                {
                    let mut v: serde_json::Value = serde_json::to_value(&good).unwrap();
                    v["extra"] = 1.into();
                    serde_json::to_vec(&v).unwrap()
                },
                "unknown field `extra`",
            ),
            (
                serde_json::to_vec(&BundleSignature {
                    schema: 2,
                    ..good.clone()
                })
                .unwrap(),
                "schema 2",
            ),
            (
                serde_json::to_vec(&BundleSignature {
                    alg: "rsa".into(),
                    ..good.clone()
                })
                .unwrap(),
                "algorithm",
            ),
            (
                serde_json::to_vec(&BundleSignature {
                    key_id: "xyz".into(),
                    ..good.clone()
                })
                .unwrap(),
                "key_id",
            ),
            (
                serde_json::to_vec(&BundleSignature {
                    bundle_hash: "abc".into(),
                    ..good.clone()
                })
                .unwrap(),
                "bundle_hash",
            ),
            (
                serde_json::to_vec(&BundleSignature {
                    sig: "AAAA".into(),
                    ..good.clone()
                })
                .unwrap(),
                "64 bytes",
            ),
        ];
        for (bytes, needle) in cases {
            match check_claims(Some(&bytes), HASH, &[k]) {
                Err(SignatureError::Malformed(m)) => assert!(m.contains(needle), "{m}"),
                other => panic!("{needle}: {other:?}"),
            }
        }
    }

    #[test]
    fn claims_unsigned_no_keys_wrong_hash_unknown_key() {
        let k = PublicKey([3u8; 32]);
        let other = PublicKey([4u8; 32]);
        let sig = BundleSignature::new(&k, HASH, &[5u8; 64]).to_json();
        assert_eq!(
            check_claims(None, HASH, &[k]),
            Err(SignatureError::Unsigned)
        );
        assert_eq!(
            check_claims(Some(&sig), HASH, &[]),
            Err(SignatureError::NoTrustedKeys)
        );
        assert!(matches!(
            check_claims(Some(&sig), &"0".repeat(64), &[k]),
            Err(SignatureError::WrongHash { ref signed, .. }) if signed == HASH
        ));
        assert_eq!(
            check_claims(Some(&sig), HASH, &[other]),
            Err(SignatureError::UnknownKey(k.key_id()))
        );
        let r = check_claims(Some(&sig), &HASH.to_uppercase(), &[other, k]).unwrap();
        assert_eq!(r.public_key, k);
        assert_eq!(r.message, signed_message(HASH));
        assert_eq!(r.signature, [5u8; 64]);
    }

    #[cfg(feature = "crypto")]
    mod with_crypto {
        use super::super::crypto::*;
        use super::super::*;
        use super::HASH;

        #[test]
        fn sign_verify_roundtrip() {
            let sk = SecretKey::generate().unwrap();
            let pk = sk.public_key();
            let sig = sign(&sk, HASH);
            assert_eq!(sig.key_id, pk.key_id());
            assert_eq!(sig.bundle_hash, HASH);
            let bytes = sig.to_json();
            assert_eq!(verify(Some(&bytes), HASH, &[pk]), Ok(pk));
            // Two generated keys differ.
            assert_ne!(SecretKey::generate().unwrap(), sk);
        }

        #[test]
        fn wrong_key_wrong_hash_tampered_sig() {
            let sk = SecretKey([11u8; 32]);
            let pk = sk.public_key();
            let other = SecretKey([12u8; 32]).public_key();
            let good = sign(&sk, HASH);
            // Signed by a key that is not trusted.
            assert_eq!(
                verify(Some(&good.to_json()), HASH, &[other]),
                Err(SignatureError::UnknownKey(pk.key_id()))
            );
            // A valid signature, but over another bundle's hash.
            let h2 = "1".repeat(64);
            assert!(matches!(
                verify(Some(&sign(&sk, &h2).to_json()), HASH, &[pk]),
                Err(SignatureError::WrongHash { .. })
            ));
            // bundle_hash rewritten to this bundle, signature left over the other one.
            let mut moved = sign(&sk, &h2);
            moved.bundle_hash = HASH.into();
            assert_eq!(
                verify(Some(&moved.to_json()), HASH, &[pk]),
                Err(SignatureError::BadSignature(pk.key_id()))
            );
            // One bit of the signature flipped.
            let mut bytes = good.signature_bytes().unwrap();
            bytes[10] ^= 1;
            let tampered = BundleSignature::new(&pk, HASH, &bytes);
            assert_eq!(
                verify(Some(&tampered.to_json()), HASH, &[pk]),
                Err(SignatureError::BadSignature(pk.key_id()))
            );
            // Forged: claims the trusted key id, signed by another key.
            let mut forged = sign(&SecretKey([12u8; 32]), HASH);
            forged.key_id = pk.key_id();
            assert_eq!(
                verify(Some(&forged.to_json()), HASH, &[pk]),
                Err(SignatureError::BadSignature(pk.key_id()))
            );
            // Messages of each error are distinct.
            let msgs: std::collections::BTreeSet<String> = [
                SignatureError::Unsigned,
                SignatureError::NoTrustedKeys,
                SignatureError::UnknownKey("k".into()),
                SignatureError::WrongHash {
                    signed: "a".into(),
                    actual: "b".into(),
                },
                SignatureError::BadSignature("k".into()),
                SignatureError::Malformed("m".into()),
            ]
            .iter()
            .map(ToString::to_string)
            .collect();
            assert_eq!(msgs.len(), 6);
        }

        #[test]
        fn rfc8032_test_vector_1() {
            // RFC 8032 section 7.1, TEST 1: our key handling matches the standard.
            let seed: [u8; 32] = [
                0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
                0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
                0x1c, 0xae, 0x7f, 0x60,
            ];
            let pk = SecretKey(seed).public_key();
            let hex: String = pk.0.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(
                hex,
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
            );
        }
    }
}
