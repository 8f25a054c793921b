//! Fetch and admit a bundle: from a bundle directory URL, or via the server's catalog
//! for share links (self-serve) and device tokens (MR-led).

use edetail_format::Bundle;
use edetail_format::signature::{SIGNATURE_FILE, TRUSTED_KEYS_JSON, VerifyRequest};
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::dom;
use futures_util::future::join;

use crate::check::{
    Claims, Refusal, TrustedKey, admit_parsed, key_id_from_sha256, needs_signature,
    signature_claims, signature_failed, trusted_keys,
};
use crate::options::{Mode, Options};

/// A bundle ready to present.
pub struct Loaded {
    pub bundle: Bundle,
    /// Bundle base URL (ends with `/`).
    pub base: String,
    pub hash: String,
    pub opts: Options,
    /// Bearer token for ingest (device token or share token).
    pub token: Option<String>,
}

impl PartialEq for Loaded {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.base == other.base
    }
}

/// Pick a bundle from a catalog document. Accepts a top-level array or an object with
/// `entries`/`decks`/`items`; each entry names `deck_id` (or `id`), `bundle_hash` (or
/// `hash`) and optionally `url` (bundle base); without `url` the bundle is at
/// `<server>/api/v1/bundles/<hash>/`.
pub fn pick_from_catalog(doc: &Value, server: &str, deck: Option<&str>) -> Option<String> {
    let list = doc.as_array().or_else(|| {
        ["entries", "decks", "items", "catalog"]
            .iter()
            .find_map(|k| doc.get(*k).and_then(Value::as_array))
    })?;
    let deck_of = |e: &Value| {
        e.get("deck_id")
            .or_else(|| e.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let entry = match deck {
        Some(d) => list.iter().find(|e| deck_of(e).as_deref() == Some(d))?,
        None => list.first()?,
    };
    if let Some(u) = entry
        .get("url")
        .or_else(|| entry.get("bundle_url"))
        .and_then(Value::as_str)
    {
        let u = u.trim_end_matches("bundle.json");
        let abs = if u.starts_with("http") || u.starts_with('/') {
            u.to_string()
        } else {
            format!("{server}/{u}")
        };
        return Some(if abs.ends_with('/') {
            abs
        } else {
            format!("{abs}/")
        });
    }
    let hash = entry
        .get("bundle_hash")
        .or_else(|| entry.get("hash"))
        .and_then(Value::as_str)?;
    if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!("{server}/api/v1/bundles/{hash}/"))
}

/// How long the catalog may take to answer when the device remembers the deck it
/// picked last time (see [`load`]).
const CATALOG_WITH_FALLBACK_MS: u32 = 5_000;

async fn fetch_catalog_base(
    server: &str,
    bearer: &str,
    deck: Option<&str>,
    within_ms: u32,
) -> Result<String, Refusal> {
    let url = format!("{server}/api/v1/catalog");
    let text = dom::fetch_text_within(&url, Some(bearer), within_ms)
        .await
        .map_err(Refusal::LoadFailed)?;
    let doc: Value =
        crate::json::from_str(&text).map_err(|e| Refusal::LoadFailed(format!("catalog: {e}")))?;
    pick_from_catalog(&doc, server, deck)
        .ok_or_else(|| Refusal::LoadFailed("the catalog lists no matching deck".into()))
}

pub async fn load(opts: Options) -> Result<Loaded, Refusal> {
    let server = opts.server.clone().unwrap_or_default();
    let token = opts.share.clone().or_else(|| opts.token.clone());
    let base = match (&opts.bundle, &token) {
        (Some(b), _) => b.clone(),
        // Share links (self-serve) and device tokens (MR iPads) open "the deck of my
        // catalog". The catalog is not cached by the service worker, so the last
        // bundle picked is remembered: a call can start offline on a deck opened once.
        (None, Some(bearer)) => {
            let key = format!("edetail.catalog.{}", opts.deck.as_deref().unwrap_or("*"));
            // With a deck to fall back on, a catalog that does not answer soon (lie-fi:
            // the API is never answered by the service worker) must not hold up the call.
            let remembered = dom::local_get(&key);
            let within = if remembered.is_some() {
                CATALOG_WITH_FALLBACK_MS
            } else {
                dom::ANSWER_WITHIN_MS
            };
            match fetch_catalog_base(&server, bearer, opts.deck.as_deref(), within).await {
                Ok(base) => {
                    dom::local_set(&key, &base);
                    base
                }
                Err(e) => remembered.ok_or(e)?,
            }
        }
        (None, None) => return Err(Refusal::NoBundle),
    };
    let auth = if opts.share.is_some() {
        token.as_deref()
    } else {
        None
    };
    // Everything runs at once: the four files are requested together (boot.js has
    // started the bundle and its hash for `?bundle=` links), the signature is checked by WebCrypto as
    // soon as `bundle.sha256`, `bundle.sig` and the trusted keys are in (it signs the
    // hash, not the bytes), and the bundle is parsed while WebCrypto hashes it. Nothing
    // is presented before every check has passed, and the refusals are decided in the
    // order of the sequential check: hash file, bundle file, bundle hash, schema and
    // structure, approval window, then the signature.
    // Preview links (`mode=preview`) carry unsigned preview bundles: no signature
    // requests for them unless the bundle turns out not to be a preview.
    let early_signature = opts.mode != Mode::Preview;
    let today = dom::today();
    let bundle_side = async {
        let buf = dom::fetch_buffer(&format!("{base}bundle.json"), auth).await?;
        super::mark("edetail:bundle-fetched");
        // WebCrypto hashes (native code) while the wasm parses a copy.
        let digest = dom::sha256_start(&buf);
        let bytes = js_sys::Uint8Array::new(&buf).to_vec();
        drop(buf);
        let parsed = Bundle::from_verified_json(&bytes);
        drop(bytes);
        super::mark("edetail:parsed");
        let computed = dom::sha256_finish(digest?).await?;
        Ok::<_, String>((parsed, computed))
    };
    let signature_side = async {
        let hash_url = format!("{base}bundle.sha256");
        let hash_f = dom::fetch_text(&hash_url, auth);
        if !early_signature {
            return (hash_f.await.map(|h| h.trim().to_string()), None);
        }
        let (hash, inputs) = join(hash_f, signature_inputs(&base, auth)).await;
        let hash = match hash {
            Ok(h) => h.trim().to_string(),
            Err(e) => return (Err(e), None),
        };
        let verdict = match inputs {
            Ok((sig, keys)) => check_signature(&hash, sig.as_deref(), &keys).await,
            Err(e) => Err(e),
        };
        super::mark("edetail:signature-checked");
        (Ok(hash), Some(verdict))
    };
    let (bundle_r, (hash_r, early_verdict)) = join(bundle_side, signature_side).await;
    let hash = hash_r.map_err(Refusal::LoadFailed)?;
    let (parsed, computed) = bundle_r.map_err(Refusal::LoadFailed)?;
    let bundle = admit_parsed(parsed, &computed, &hash, &today)?;
    if needs_signature(&bundle) {
        match early_verdict {
            Some(v) => v?,
            None => {
                let (sig, keys) = signature_inputs(&base, auth).await?;
                check_signature(&hash, sig.as_deref(), &keys).await?;
            }
        }
    }
    Ok(Loaded {
        bundle,
        base,
        hash,
        opts,
        token,
    })
}

/// GET `url`; `Ok(None)` on HTTP 404 (the file does not exist).
async fn fetch_optional(url: &str, token: Option<&str>) -> Result<Option<Vec<u8>>, String> {
    match dom::fetch_bytes(url, token).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.ends_with("HTTP 404") => Ok(None),
        Err(e) => Err(e),
    }
}

/// `bundle.sig` next to the bundle (None: HTTP 404) and the app's trusted keys with
/// their ids (`./trusted-keys.json`, the page's directory: `/app/trusted-keys.json` on
/// a head-office server; ids by WebCrypto SHA-256), fetched together.
async fn signature_inputs(
    base: &str,
    auth: Option<&str>,
) -> Result<(Option<Vec<u8>>, Vec<TrustedKey>), Refusal> {
    let (sig_url, keys_url) = (
        format!("{base}{SIGNATURE_FILE}"),
        format!("./{TRUSTED_KEYS_JSON}"),
    );
    let (sig, keys) = join(
        fetch_optional(&sig_url, auth),
        dom::fetch_bytes(&keys_url, None),
    )
    .await;
    let sig = sig.map_err(Refusal::LoadFailed)?;
    let keys = keys.map_err(Refusal::LoadFailed)?;
    let keys = trusted_keys(&keys)?;
    // Every digest is started before the first is awaited: they run together.
    let started: Vec<_> = keys
        .iter()
        .map(|k| dom::sha256_start(&js_sys::Uint8Array::from(&k.0[..])))
        .collect();
    let mut trusted = Vec::with_capacity(keys.len());
    for (key, digest) in keys.into_iter().zip(started) {
        let digest = async { dom::sha256_finish(digest?).await }.await;
        trusted.push(TrustedKey {
            key,
            id: key_id_from_sha256(&digest.map_err(Refusal::LoadFailed)?),
        });
    }
    Ok((sig, trusted))
}

/// `bundle.sig` (None: there is none) against the trusted keys, the ed25519 check by
/// WebCrypto.
async fn check_signature(
    hash: &str,
    sig: Option<&[u8]>,
    trusted: &[TrustedKey],
) -> Result<(), Refusal> {
    let claims: Claims = signature_claims(hash, sig, trusted)?;
    match webcrypto_verify(&claims.request).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(signature_failed(&claims)),
        Err(e) => Err(Refusal::LoadFailed(format!(
            "this browser cannot verify Ed25519 signatures: {e}"
        ))),
    }
}

fn js_err(v: &wasm_bindgen::JsValue) -> String {
    js_sys::Reflect::get(v, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| v.as_string())
        .unwrap_or_else(|| "WebCrypto error".into())
}

/// `crypto.subtle.verify("Ed25519", importKey("raw", key), sig, message)`.
async fn webcrypto_verify(r: &VerifyRequest) -> Result<bool, String> {
    let subtle = dom::window().crypto().map_err(|e| js_err(&e))?.subtle();
    let key_data = js_sys::Uint8Array::from(&r.public_key.0[..]);
    let usages = js_sys::Array::of1(&"verify".into());
    let key = JsFuture::from(
        subtle
            .import_key_with_str("raw", &key_data, "Ed25519", false, &usages)
            .map_err(|e| js_err(&e))?,
    )
    .await
    .map_err(|e| js_err(&e))?;
    let key: web_sys::CryptoKey = key.dyn_into().map_err(|_| "not a CryptoKey".to_string())?;
    let ok = JsFuture::from(
        subtle
            .verify_with_str_and_u8_array_and_u8_array("Ed25519", &key, &r.signature, &r.message)
            .map_err(|e| js_err(&e))?,
    )
    .await
    .map_err(|e| js_err(&e))?;
    Ok(ok.as_bool() == Some(true))
}
