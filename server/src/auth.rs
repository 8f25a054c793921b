//! Identity: admin and device tokens (stored as sha256 of their secret, compared in
//! constant time, revocable), signed share links (HMAC-SHA256 with the server secret,
//! expiring, scoped to one deck and one physician) and physician pseudonyms (keyed hash).
//!
//! Token format: `edt.<id>.<secret>`; the id is public (listing, revocation), the
//! secret is 32 random bytes, base64url. Share token format: `shr.<payload>.<sig>`,
//! payload = base64url of JSON `{"d":deck,"h":pseudonym,"e":expires_ms,"n":nonce}`,
//! sig = base64url(HMAC-SHA256(secret, "edetail-share-v1." + payload)).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::storage::{Store, StoreError, TokenKind, TokenRecord};
use crate::util::{b64url, b64url_decode, hex, now_ms, random_bytes};

type HmacSha256 = Hmac<Sha256>;

/// The server secret (32 bytes), created on first start and kept in the database.
#[derive(Clone)]
pub struct Keys {
    secret: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    pub fn from_hex(h: &str) -> Option<Keys> {
        if h.len() != 64 {
            return None;
        }
        let mut secret = [0u8; 32];
        for (i, b) in secret.iter_mut().enumerate() {
            *b = u8::from_str_radix(h.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(Keys { secret })
    }

    /// Load the server secret from the store, creating it on first start.
    pub async fn load(store: &dyn Store) -> Result<Keys, StoreError> {
        let fresh = hex(&random_bytes::<32>());
        let h = store.meta_get_or_init("server_secret", fresh).await?;
        Keys::from_hex(&h).ok_or_else(|| StoreError::Db("corrupt server secret".into()))
    }

    fn mac(&self, domain: &str, msg: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length.
        let mut m = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        m.update(domain.as_bytes());
        m.update(msg);
        m
    }

    /// The pseudonym stored for a physician id: `p` + 32 hex digits of
    /// HMAC-SHA256(secret, "edetail-hcp-v1." + id). Ids that are already pseudonyms
    /// of this server (`p` + 32 hex) are kept.
    pub fn pseudonymize(&self, hcp_id: &str) -> String {
        let id = hcp_id.trim();
        if is_pseudonym(id) {
            return id.to_string();
        }
        let tag = self
            .mac("edetail-hcp-v1.", id.as_bytes())
            .finalize()
            .into_bytes();
        format!("p{}", hex(&tag[..16]))
    }

    pub fn sign_share(&self, claims: &ShareClaims) -> String {
        let payload = b64url(&serde_json::to_vec(claims).unwrap_or_default());
        let sig = self
            .mac("edetail-share-v1.", payload.as_bytes())
            .finalize()
            .into_bytes();
        format!("shr.{payload}.{}", b64url(&sig))
    }

    /// Verify a share token's signature and expiry.
    pub fn verify_share(&self, token: &str, now: i64) -> Result<ShareClaims, AuthError> {
        let rest = token.strip_prefix("shr.").ok_or(AuthError::Unknown)?;
        let (payload, sig) = rest.split_once('.').ok_or(AuthError::Unknown)?;
        let sig = b64url_decode(sig).ok_or(AuthError::Unknown)?;
        self.mac("edetail-share-v1.", payload.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| AuthError::BadSignature)?;
        let claims: ShareClaims = b64url_decode(payload)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(AuthError::Unknown)?;
        if claims.e <= now {
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }
}

impl Keys {
    /// A dashboard session for an admin token: `ses.<token id>.<expiry ms>.<mac>`, the
    /// mac an HMAC-SHA256 of the id and expiry under the server secret. The cookie
    /// holds this, never the token itself; [`authenticate_session`] also checks that
    /// the token still exists and is not revoked.
    pub fn sign_session(&self, token_id: &str, expires_ms: i64) -> String {
        let msg = format!("{token_id}.{expires_ms}");
        let sig = self
            .mac("edetail-session-v1.", msg.as_bytes())
            .finalize()
            .into_bytes();
        format!("ses.{msg}.{}", b64url(&sig))
    }

    /// The token id of a session whose signature verifies and which has not expired.
    pub fn verify_session(&self, session: &str, now: i64) -> Result<String, AuthError> {
        let rest = session.strip_prefix("ses.").ok_or(AuthError::Unknown)?;
        let (msg, sig) = rest.rsplit_once('.').ok_or(AuthError::Unknown)?;
        let (id, expires) = msg.split_once('.').ok_or(AuthError::Unknown)?;
        if id.is_empty() || id.len() > MAX_TOKEN_ID_LEN {
            return Err(AuthError::Unknown);
        }
        let sig = b64url_decode(sig).ok_or(AuthError::Unknown)?;
        self.mac("edetail-session-v1.", msg.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| AuthError::Unknown)?;
        let expires: i64 = expires.parse().map_err(|_| AuthError::Unknown)?;
        if expires <= now {
            return Err(AuthError::SessionExpired);
        }
        Ok(id.to_string())
    }
}

/// Resolve a dashboard session cookie ([`Keys::sign_session`]): signature and expiry,
/// then the admin token it names must still exist, be an admin token and not be revoked.
pub async fn authenticate_session(
    store: &dyn Store,
    keys: &Keys,
    session: &str,
) -> Result<Principal, AuthError> {
    let id = keys.verify_session(session.trim(), now_ms())?;
    let rec = store
        .get_token(&id)
        .await
        .map_err(|e| AuthError::Storage(e.to_string()))?
        .ok_or(AuthError::Unknown)?;
    if rec.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    match rec.kind {
        TokenKind::Admin => Ok(Principal::Admin { token_id: rec.id }),
        TokenKind::Device => Err(AuthError::Unknown),
    }
}

fn is_pseudonym(s: &str) -> bool {
    s.len() == 33 && s.starts_with('p') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// What a share link grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareClaims {
    /// Deck id.
    pub d: String,
    /// Physician pseudonym.
    pub h: String,
    /// Expiry, ms since the epoch.
    pub e: i64,
    /// Nonce (distinguishes links).
    pub n: String,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Admin {
        token_id: String,
    },
    Device {
        token_id: String,
        rep: Option<String>,
        territory: Option<String>,
    },
    Share {
        deck: String,
        hcp: String,
        expires_at: i64,
        nonce: String,
    },
}

impl Principal {
    pub fn token_id(&self) -> String {
        match self {
            Principal::Admin { token_id } | Principal::Device { token_id, .. } => token_id.clone(),
            Principal::Share { nonce, .. } => format!("share:{nonce}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("unknown token")]
    Unknown,
    #[error("token revoked")]
    Revoked,
    #[error("share link expired")]
    Expired,
    #[error("share link signature is invalid")]
    BadSignature,
    #[error("dashboard session expired; sign in again")]
    SessionExpired,
    #[error("storage unavailable: {0}")]
    Storage(String),
}

/// A newly created token: the full secret string is shown once and never stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub kind: TokenKind,
    pub rep: Option<String>,
    pub territory: Option<String>,
}

pub fn hash_secret(secret: &str) -> String {
    crate::util::hex(&<Sha256 as sha2::Digest>::digest(secret.as_bytes()))
}

pub async fn create_token(
    store: &dyn Store,
    kind: TokenKind,
    rep: Option<String>,
    territory: Option<String>,
    label: Option<String>,
) -> Result<NewToken, StoreError> {
    let id = hex(&random_bytes::<8>());
    let secret = b64url(&random_bytes::<32>());
    store
        .insert_token(TokenRecord {
            id: id.clone(),
            secret_hash: hash_secret(&secret),
            kind,
            rep: rep.clone(),
            territory: territory.clone(),
            label,
            created_at: now_ms(),
            revoked_at: None,
        })
        .await?;
    Ok(NewToken {
        token: format!("edt.{id}.{secret}"),
        id,
        kind,
        rep,
        territory,
    })
}

/// The shape of a presented bearer token, before any lookup or signature check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// A share link token (`shr.<payload>.<sig>`), verified by [`Keys::verify_share`].
    Share(&'a str),
    /// An admin or device token (`edt.<id>.<secret>`), looked up by id.
    Token { id: &'a str, secret: &'a str },
}

/// Longest token id accepted (ids are 16 hex digits; anything longer is never looked up).
pub const MAX_TOKEN_ID_LEN: usize = 64;

/// Split a presented bearer token into its kind and parts. Pure and total: any input
/// gives `Ok` or an [`AuthError`] (fuzzed by `fuzz/fuzz_targets/tokens.rs`).
pub fn parse_bearer(token: &str) -> Result<Bearer<'_>, AuthError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if token.starts_with("shr.") {
        return Ok(Bearer::Share(token));
    }
    let mut parts = token.splitn(3, '.');
    let (Some("edt"), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Unknown);
    };
    if id.is_empty() || id.len() > MAX_TOKEN_ID_LEN || secret.is_empty() {
        return Err(AuthError::Unknown);
    }
    Ok(Bearer::Token { id, secret })
}

/// Resolve a bearer token (device/admin token or share link).
pub async fn authenticate(
    store: &dyn Store,
    keys: &Keys,
    token: &str,
) -> Result<Principal, AuthError> {
    let (id, secret) = match parse_bearer(token)? {
        Bearer::Share(share) => {
            let c = keys.verify_share(share, now_ms())?;
            return Ok(Principal::Share {
                deck: c.d,
                hcp: c.h,
                expires_at: c.e,
                nonce: c.n,
            });
        }
        Bearer::Token { id, secret } => (id, secret),
    };
    let rec = store
        .get_token(id)
        .await
        .map_err(|e| AuthError::Storage(e.to_string()))?
        .ok_or(AuthError::Unknown)?;
    let presented = hash_secret(secret);
    if !bool::from(presented.as_bytes().ct_eq(rec.secret_hash.as_bytes())) {
        return Err(AuthError::Unknown);
    }
    if rec.revoked_at.is_some() {
        return Err(AuthError::Revoked);
    }
    Ok(match rec.kind {
        TokenKind::Admin => Principal::Admin { token_id: rec.id },
        TokenKind::Device => Principal::Device {
            token_id: rec.id,
            rep: rec.rep,
            territory: rec.territory,
        },
    })
}

/// Counts failed authentications per key (client IP) in a fixed one-minute window;
/// once a key has `limit` failures in its window, requests from it are refused with
/// 429 until the window ends. `limit == 0` disables it.
pub struct FailureLimiter {
    limit: u32,
    window_ms: i64,
    seen: std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>,
}

impl FailureLimiter {
    pub fn new(limit: u32) -> FailureLimiter {
        FailureLimiter {
            limit,
            window_ms: 60_000,
            seen: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Seconds until `key` may try again, when it is blocked now.
    pub fn blocked(&self, key: &str, now: i64) -> Option<u32> {
        if self.limit == 0 {
            return None;
        }
        let seen = self.seen.lock().ok()?;
        let (start, n) = *seen.get(key)?;
        let left = start + self.window_ms - now;
        (n >= self.limit && left > 0).then(|| ((left + 999) / 1000).max(1) as u32)
    }

    /// Record one failure for `key`.
    pub fn failed(&self, key: &str, now: i64) {
        if self.limit == 0 {
            return;
        }
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() > 100_000 {
            // Bound memory under a spray of addresses: forget finished windows.
            let w = self.window_ms;
            seen.retain(|_, (start, _)| *start + w > now);
        }
        let e = seen.entry(key.to_string()).or_insert((now, 0));
        if e.0 + self.window_ms <= now {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_hex(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn failure_limiter_blocks_then_forgets() {
        let l = FailureLimiter::new(3);
        for _ in 0..2 {
            l.failed("1.2.3.4", 1_000);
        }
        assert_eq!(l.blocked("1.2.3.4", 1_000), None);
        l.failed("1.2.3.4", 1_500);
        assert_eq!(l.blocked("1.2.3.4", 1_500), Some(60));
        assert_eq!(l.blocked("5.6.7.8", 1_500), None);
        assert_eq!(l.blocked("1.2.3.4", 61_000), None);
        assert_eq!(FailureLimiter::new(0).blocked("x", 0), None);
    }

    #[test]
    fn sessions_verify_expire_and_resist_tampering() {
        let k = keys();
        let t = k.sign_session("0123456789abcdef", 2_000);
        assert_eq!(k.verify_session(&t, 1_000), Ok("0123456789abcdef".into()));
        assert_eq!(k.verify_session(&t, 2_000), Err(AuthError::SessionExpired));
        // A later expiry or another id with the old signature is refused.
        let sig = t.rsplit('.').next().unwrap();
        for forged in [
            format!("ses.0123456789abcdef.9999999999999.{sig}"),
            format!("ses.fedcba9876543210.2000.{sig}"),
            "ses.x".to_string(),
            "ses...".to_string(),
            "edt.0123456789abcdef.secret".to_string(),
        ] {
            assert_eq!(
                k.verify_session(&forged, 1_000),
                Err(AuthError::Unknown),
                "{forged}"
            );
        }
        // Another server's secret.
        let other = Keys::from_hex(&"cd".repeat(32)).unwrap();
        assert_eq!(other.verify_session(&t, 1_000), Err(AuthError::Unknown));
    }

    #[test]
    fn share_links_verify_and_expire() {
        let k = keys();
        let c = ShareClaims {
            d: "deck".into(),
            h: k.pseudonymize("HCP-1"),
            e: 2_000,
            n: "n1".into(),
        };
        let t = k.sign_share(&c);
        assert_eq!(k.verify_share(&t, 1_000), Ok(c));
        assert_eq!(k.verify_share(&t, 2_000), Err(AuthError::Expired));
        // Tampered payload.
        let mut bad = t.clone();
        bad.insert(5, 'x');
        assert!(k.verify_share(&bad, 1_000).is_err());
        // Another server's secret.
        let other = Keys::from_hex(&"cd".repeat(32)).unwrap();
        assert_eq!(other.verify_share(&t, 1_000), Err(AuthError::BadSignature));
    }

    #[test]
    fn pseudonyms_are_keyed_and_stable() {
        let k = keys();
        let p = k.pseudonymize("HCP-1");
        assert_eq!(p.len(), 33);
        assert_eq!(p, k.pseudonymize(" HCP-1 "));
        assert_eq!(k.pseudonymize(&p), p);
        assert_ne!(
            p,
            Keys::from_hex(&"cd".repeat(32))
                .unwrap()
                .pseudonymize("HCP-1")
        );
        assert!(!p.contains("HCP"));
    }

    #[test]
    fn bearer_tokens_parse_or_give_a_clear_error() {
        assert_eq!(parse_bearer(""), Err(AuthError::Missing));
        assert_eq!(parse_bearer("  \t "), Err(AuthError::Missing));
        assert_eq!(
            parse_bearer(" edt.0123abcd.s3cr.et "),
            Ok(Bearer::Token {
                id: "0123abcd",
                secret: "s3cr.et"
            })
        );
        assert_eq!(parse_bearer("shr.a.b"), Ok(Bearer::Share("shr.a.b")));
        for bad in [
            "edt",
            "edt.",
            "edt.id",
            "edt..secret",
            "edt.id.",
            "Bearer edt.a.b",
            "EDT.a.b",
            "xyz.a.b",
            "' OR 1=1 --",
        ] {
            assert_eq!(parse_bearer(bad), Err(AuthError::Unknown), "{bad:?}");
        }
        let long_id = format!("edt.{}.s", "a".repeat(MAX_TOKEN_ID_LEN + 1));
        assert_eq!(parse_bearer(&long_id), Err(AuthError::Unknown));
    }

    #[test]
    fn share_links_refuse_every_truncation_and_garbage() {
        let k = keys();
        let t = k.sign_share(&ShareClaims {
            d: "deck".into(),
            h: k.pseudonymize("HCP-1"),
            e: 2_000,
            n: "n1".into(),
        });
        for cut in 0..t.len() {
            assert!(k.verify_share(&t[..cut], 1_000).is_err(), "prefix {cut}");
        }
        for junk in ["shr.", "shr..", "shr.%%%.%%%", "shr.e30.", "shr.e30.AAAA"] {
            assert!(k.verify_share(junk, 1_000).is_err(), "{junk:?}");
        }
    }
}
