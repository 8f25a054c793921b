//! The HTTP application: routes, authentication, security headers, static runtime
//! shell, bundle distribution, and server start/stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use edetail_format::Bundle;
use edetail_format::ingest::{INGEST_PATH, MAX_BATCH_BYTES};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::api::ApiError;
use crate::auth::{self, Keys, NewToken, Principal, ShareClaims};
use crate::bundles::{self, CatalogEntry};
use crate::config::Config;
use crate::insights::{self, FilterParams};
use crate::storage::{self, PublishOutcome, Store, StoreError, TokenKind};
use crate::util::{b64url, now_ms, random_bytes, today_iso};

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: Keys,
    pub write_slots: Arc<Semaphore>,
    pub www: PathBuf,
    /// Base URL used in printed links, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
    bundle_cache: Mutex<HashMap<String, Arc<Bundle>>>,
    /// Failed authentications per client IP (429 after too many in a minute).
    pub auth_limiter: auth::FailureLimiter,
    /// Public keys whose bundle signatures publish accepts (none: publish refuses).
    pub trusted_keys: Vec<edetail_format::signature::PublicKey>,
}

impl AppState {
    /// A published bundle's manifest, parsed (cached: bundles are immutable).
    pub async fn bundle(&self, hash: &str) -> Result<Option<Arc<Bundle>>, StoreError> {
        if let Some(b) = self
            .bundle_cache
            .lock()
            .ok()
            .and_then(|c| c.get(hash).cloned())
        {
            return Ok(Some(b));
        }
        let Some(bytes) = self.store.blob(hash).await? else {
            return Ok(None);
        };
        let Ok(b) = Bundle::from_json(&bytes) else {
            return Ok(None);
        };
        let b = Arc::new(b);
        if let Ok(mut c) = self.bundle_cache.lock() {
            c.insert(hash.to_string(), b.clone());
        }
        Ok(Some(b))
    }

    pub async fn principal(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token =
            bearer(headers).ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        self.auth_token(&token).await
    }

    pub async fn auth_token(&self, token: &str) -> Result<Principal, ApiError> {
        auth::authenticate(self.store.as_ref(), &self.keys, token)
            .await
            .map_err(auth_error)
    }

    /// The admin behind a dashboard session cookie ([`auth::authenticate_session`]).
    pub async fn auth_session(&self, session: &str) -> Result<Principal, ApiError> {
        auth::authenticate_session(self.store.as_ref(), &self.keys, session)
            .await
            .map_err(auth_error)
    }

    /// An admin principal, from the bearer token or the dashboard's session cookie
    /// (HttpOnly, SameSite=Strict, so it is not sent on cross-site requests).
    pub async fn admin(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let who = match (bearer(headers), cookie(headers, crate::dashboard::COOKIE)) {
            (None, Some(c)) => self.auth_session(&c).await?,
            _ => self.principal(headers).await?,
        };
        match who {
            p @ Principal::Admin { .. } => Ok(p),
            _ => Err(ApiError::forbidden("an admin token is required")),
        }
    }
}

/// A failed authentication as an answer: storage trouble is 503, the rest 401.
fn auth_error(e: auth::AuthError) -> ApiError {
    match e {
        auth::AuthError::Storage(m) => {
            tracing::warn!(error = %m, "storage error during authentication");
            ApiError::unavailable("the database is unavailable; retry later")
        }
        other => ApiError::unauthorized(other.to_string()),
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    Some(t.trim().to_string())
}

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, val)) = part.trim().split_once('=')
                && k == name
            {
                return Some(val.to_string());
            }
        }
    }
    None
}

const CSP_APP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; font-src 'self'; connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";
const CSP_PAGES: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const CSP_BUNDLES: &str = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox";

async fn security_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let csp = if path == "/app" || path.starts_with("/app/") {
        CSP_APP
    } else if path.starts_with("/bundles/") {
        CSP_BUNDLES
    } else {
        CSP_PAGES
    };
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// Repeated authentication failures (401) from one client IP: after the configured
/// number within a minute, every request from it gets 429 with `Retry-After` until
/// the minute is over (health checks excepted).
async fn auth_rate_limit(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    // Also per token id (`edt.<id>.<secret>`), so guessing one token's secret from
    // many addresses is limited too.
    let token_key = bearer(req.headers()).and_then(|t| {
        let mut p = t.splitn(3, '.');
        match (p.next(), p.next()) {
            (Some("edt"), Some(id)) if id.len() <= 64 => Some(format!("token:{id}")),
            _ => None,
        }
    });
    let now = now_ms();
    let blocked = st.auth_limiter.blocked(&ip, now).or_else(|| {
        token_key
            .as_deref()
            .and_then(|k| st.auth_limiter.blocked(k, now))
    });
    if req.uri().path() != "/healthz"
        && let Some(secs) = blocked
    {
        return ApiError {
            retry_after: Some(secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many failed authentications from this address; retry later",
            )
        }
        .into_response();
    }
    let res = next.run(req).await;
    if res.status() == StatusCode::UNAUTHORIZED {
        st.auth_limiter.failed(&ip, now_ms());
        if let Some(k) = &token_key {
            st.auth_limiter.failed(k, now_ms());
        }
    }
    res
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(|| async { "ok" }))
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(app_index))
        .route("/app/trusted-keys.json", get(trusted_keys_json))
        .route("/app/{*path}", get(app_file))
        .route(INGEST_PATH, post(ingest))
        .route("/api/v1/bundles", post(publish))
        .route("/api/v1/versions", get(list_versions))
        .route(
            "/api/v1/decks/{deck}/versions/{version}/retire",
            post(retire),
        )
        .route("/api/v1/catalog", get(catalog))
        .route("/api/v1/tokens", post(create_token).get(list_tokens))
        .route("/api/v1/tokens/{id}/revoke", post(revoke_token))
        .route("/api/v1/share", post(create_share))
        .route("/api/v1/share/resolve", get(resolve_share))
        .route("/api/v1/hcps", post(import_hcps))
        .route("/api/v1/insights/overview", get(api_overview))
        .route("/api/v1/insights/deck", get(api_deck))
        .route("/api/v1/export/clickstream.csv", get(export_clickstream))
        .route("/api/v1/admin/stats", get(stats))
        .route("/api/v1/audit", get(crate::audit::list))
        .route("/bundles/{hash}/bundle.json", get(bundle_json))
        .route("/bundles/{hash}/bundle.sha256", get(bundle_sha256))
        .route("/bundles/{hash}/bundle.sig", get(bundle_sig))
        .route("/bundles/{hash}/assets/{file}", get(bundle_asset))
        .merge(crate::dashboard::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(middleware::from_fn(bounded))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::audit::record,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth_rate_limit,
        ))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Longest any request but an upload or an export takes before it is answered 503 with
/// `Retry-After` (a stalled database must not hang catalogs, dashboards or bundle
/// downloads). Longer than [`crate::ingest::INGEST_TIMEOUT`], so ingest answers with its
/// own message first.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Requests that may legitimately take longer than [`REQUEST_TIMEOUT`]: publishing (up
/// to 256 MiB uploaded) and CSV exports over the whole store.
fn unbounded_path(method: &axum::http::Method, path: &str) -> bool {
    (method == axum::http::Method::POST && path == "/api/v1/bundles")
        || path.starts_with("/api/v1/export/")
}

async fn bounded(req: axum::extract::Request, next: middleware::Next) -> Response {
    if unbounded_path(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_string();
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(%path, timeout_s = REQUEST_TIMEOUT.as_secs(), "request timed out");
            ApiError::unavailable("the server could not answer in time; retry later")
                .into_response()
        }
    }
}

async fn root() -> Html<String> {
    Html(crate::dashboard::landing_page())
}

// ---------- static runtime shell ----------

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A file of the runtime shell. When the build left a precompressed `<file>.gz` (see
/// `cargo xtask runtime`) and the client accepts gzip, that is sent with
/// `Content-Encoding: gzip`: the transfer the first-slide budget counts.
async fn serve_www(st: &AppState, rel: &str, gzip: bool) -> Response {
    if rel.split('/').any(|s| s == ".." || s.starts_with('.')) || rel.contains('\\') {
        return ApiError::not_found("no such file").into_response();
    }
    let root = st.www.clone();
    let rel_s = if rel.is_empty() {
        "index.html".to_string()
    } else {
        rel.to_string()
    };
    let path = root.join(&rel_s);
    let read = tokio::task::spawn_blocking(move || {
        let plain = std::fs::read(&path)?;
        let mut gz = path.into_os_string();
        gz.push(".gz");
        if gzip
            && let Ok(b) = std::fs::read(&gz)
            && gzip_of(&b, &plain)
        {
            return Ok((b, true));
        }
        Ok::<_, std::io::Error>((plain, false))
    })
    .await;
    match read {
        Ok(Ok((bytes, gzipped))) => {
            let cache =
                if rel_s == "index.html" || rel_s == "sw.js" || rel_s.ends_with(".webmanifest") {
                    "no-cache"
                } else {
                    "public, max-age=300"
                };
            let mut r = (
                [
                    (header::CONTENT_TYPE, content_type(&rel_s)),
                    (header::CACHE_CONTROL, cache),
                    (header::VARY, "Accept-Encoding"),
                ],
                bytes,
            )
                .into_response();
            if gzipped {
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            r
        }
        _ if rel_s == "index.html" => (
            [(header::CACHE_CONTROL, "no-cache")],
            Html(crate::dashboard::missing_shell_page(&st.www)),
        )
            .into_response(),
        _ => ApiError::not_found("no such file").into_response(),
    }
}

async fn app_index(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    serve_www(&st, "", accepts_gzip(&headers)).await
}

async fn app_file(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    serve_www(&st, &path, accepts_gzip(&headers)).await
}

/// Is `gz` a gzip of `plain`, by its trailer (CRC-32 and length of the uncompressed
/// data)? A `.gz` left stale by a later edit of its source is then never sent.
pub fn gzip_of(gz: &[u8], plain: &[u8]) -> bool {
    let Some(trailer) = gz.len().checked_sub(8).and_then(|i| gz.get(i..)) else {
        return false;
    };
    let mut crc = flate2::Crc::new();
    crc.update(plain);
    gz.starts_with(&[0x1f, 0x8b])
        && trailer[..4] == crc.sum().to_le_bytes()
        && trailer[4..] == (plain.len() as u32).to_le_bytes()
}

/// Does `Accept-Encoding` allow gzip (and not with `q=0`)?
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let q0 = parts.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q0
        })
}

/// The player's trusted signing keys (`./trusted-keys.json` next to its page), from
/// the server's configuration: `{"keys":["ed25519:..."]}`.
async fn trusted_keys_json(State(st): State<Arc<AppState>>) -> Response {
    let doc = edetail_format::signature::TrustedKeysJson::from_keys(&st.trusted_keys);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        doc.to_json(),
    )
        .into_response()
}

// ---------- ingest ----------

/// `POST /api/v1/events`, bounded as a whole: a stalled database (token lookup or
/// commit) answers 503 within [`crate::ingest::INGEST_TIMEOUT`], never a hang. A batch
/// whose commit outcome is unknown is simply resent; what did commit comes back
/// `duplicate`, so counting stays exactly-once.
async fn ingest(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    tokio::time::timeout(crate::ingest::INGEST_TIMEOUT, ingest_unbounded(st, headers, body))
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(
                timeout_s = crate::ingest::INGEST_TIMEOUT.as_secs(),
                "ingest timed out; batch not acknowledged"
            );
            Err(ApiError::unavailable(
                "storage did not answer in time; resend this batch later (events already stored are reported as duplicates)",
            ))
        })
}

async fn ingest_unbounded(
    st: Arc<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let who = st.principal(&headers).await?;
    if matches!(who, Principal::Admin { .. }) {
        return Err(ApiError::forbidden(
            "events are sent with a device token or a share link",
        ));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" {
        return Err(ApiError::unsupported_media(format!(
            "Content-Type must be application/json, got `{ct}`"
        )));
    }
    let raw = axum::body::to_bytes(body, MAX_BATCH_BYTES)
        .await
        .map_err(|_| ApiError::too_large(format!("body exceeds {MAX_BATCH_BYTES} bytes")))?;
    let enc = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let body = match enc.as_str() {
        "gzip" | "x-gzip" => crate::ingest::gunzip(&raw)?,
        "identity" | "" => raw.to_vec(),
        other => {
            return Err(ApiError::unsupported_media(format!(
                "Content-Encoding `{other}` is not supported (use gzip or none)"
            )));
        }
    };
    let resp = crate::ingest::handle_batch(&st, &who, &body).await?;
    Ok(axum::Json(resp).into_response())
}

// ---------- publish / catalog / bundles ----------

#[derive(Deserialize)]
struct PublishQuery {
    territory: Option<String>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct PublishResult {
    pub outcome: PublishOutcome,
    pub deck_id: String,
    pub version: String,
    pub bundle_hash: String,
    pub valid_until: String,
}

async fn publish(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<PublishQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    let bytes = axum::body::to_bytes(body, bundles::MAX_ARCHIVE_BYTES)
        .await
        .map_err(|_| ApiError::too_large("archive too large"))?;
    let today = today_iso();
    let trusted = st.trusted_keys.clone();
    let verified =
        tokio::task::spawn_blocking(move || bundles::verify_archive(&bytes, &today, &trusted))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    let territories = q
        .territory
        .map(|t| storage::sqlite::split_list(&t))
        .unwrap_or_default();
    let nv = verified.into_new_version(territories, now_ms());
    let res = PublishResult {
        outcome: PublishOutcome::Created,
        deck_id: nv.record.deck_id.clone(),
        version: nv.record.version.clone(),
        bundle_hash: nv.record.bundle_hash.clone(),
        valid_until: nv.record.valid_until.clone(),
    };
    let outcome = st.store.publish(nv).await?;
    tracing::info!(deck = %res.deck_id, version = %res.version, hash = %res.bundle_hash, ?outcome, "published");
    let status = if outcome == PublishOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(PublishResult { outcome, ..res })).into_response())
}

async fn list_versions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    Ok(axum::Json(st.store.versions().await?).into_response())
}

async fn retire(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((deck, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    if st.store.retire(&deck, &version, now_ms()).await? {
        Ok(
            axum::Json(serde_json::json!({"retired": true, "deck_id": deck, "version": version}))
                .into_response(),
        )
    } else {
        Err(ApiError::not_found(format!(
            "no published version {version} of deck `{deck}`"
        )))
    }
}

/// The catalog a principal may see today.
pub async fn catalog_for(st: &AppState, who: &Principal) -> Result<Vec<CatalogEntry>, ApiError> {
    let today = today_iso();
    let versions = st.store.versions().await?;
    Ok(versions
        .iter()
        .filter(|v| match who {
            Principal::Admin { .. } => bundles::listed(v, &today, None),
            Principal::Device { territory, .. } => bundles::listed(v, &today, territory.as_deref()),
            Principal::Share { deck, .. } => v.deck_id == *deck && bundles::listed(v, &today, None),
        })
        .map(CatalogEntry::from_record)
        .collect())
}

async fn catalog(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = st.principal(&headers).await?;
    let mut entries = catalog_for(&st, &who).await?;
    if let Principal::Share { .. } = who {
        // A share link sees only the newest version of its deck.
        entries.sort_by_key(|e| e.published_at);
        let last = entries.pop();
        entries = last.into_iter().collect();
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(entries)).into_response())
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn immutable(headers: &HeaderMap, etag: String, ctype: String, bytes: Vec<u8>) -> Response {
    let cache = "public, max-age=31536000, immutable";
    if etag_matches(headers, &etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, cache.to_string()),
            ],
        )
            .into_response();
    }
    (
        [
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache.to_string()),
            (header::CONTENT_TYPE, ctype),
        ],
        bytes,
    )
        .into_response()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn bundle_json(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    if !is_hex64(&hash) {
        return Err(ApiError::not_found("no such bundle"));
    }
    let hash = hash.to_ascii_lowercase();
    if etag_matches(&headers, &format!("\"{hash}\"")) && st.bundle(&hash).await?.is_some() {
        return Ok(immutable(
            &headers,
            format!("\"{hash}\""),
            String::new(),
            Vec::new(),
        ));
    }
    let bytes = st
        .store
        .blob(&hash)
        .await?
        .ok_or_else(|| ApiError::not_found("no such bundle"))?;
    Ok(immutable(
        &headers,
        format!("\"{hash}\""),
        "application/json".into(),
        bytes,
    ))
}

/// `bundle.sha256` next to `bundle.json`: the runtime's loader fetches it first
/// (`<base>bundle.sha256`, then `bundle.json`) and checks the manifest against it.
async fn bundle_sha256(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    if !is_hex64(&hash) {
        return Err(ApiError::not_found("no such bundle"));
    }
    let hash = hash.to_ascii_lowercase();
    if st.bundle(&hash).await?.is_none() {
        return Err(ApiError::not_found("no such bundle"));
    }
    Ok(immutable(
        &headers,
        format!("\"{hash}.sha256\""),
        "text/plain; charset=utf-8".into(),
        hash.into_bytes(),
    ))
}

/// `bundle.sig` next to `bundle.json` (verified when the bundle was published); the
/// runtime checks it against `/app/trusted-keys.json`.
async fn bundle_sig(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    if !is_hex64(&hash) {
        return Err(ApiError::not_found("no such bundle"));
    }
    let hash = hash.to_ascii_lowercase();
    let bytes = st
        .store
        .blob(&bundles::signature_blob_key(&hash))
        .await?
        .ok_or_else(|| ApiError::not_found("no signature for this bundle"))?;
    Ok(immutable(
        &headers,
        format!("\"{hash}.sig\""),
        "application/json".into(),
        bytes,
    ))
}

async fn bundle_asset(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((hash, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if !is_hex64(&hash) {
        return Err(ApiError::not_found("no such bundle"));
    }
    let b = st
        .bundle(&hash.to_ascii_lowercase())
        .await?
        .ok_or_else(|| ApiError::not_found("no such bundle"))?;
    let path = format!("{}/{file}", edetail_format::bundle::ASSETS_DIR);
    let entry = b
        .asset(&path)
        .ok_or_else(|| ApiError::not_found("no such asset in this bundle"))?;
    let etag = format!("\"{}\"", entry.sha256);
    if etag_matches(&headers, &etag) {
        return Ok(immutable(&headers, etag, String::new(), Vec::new()));
    }
    let bytes = st
        .store
        .blob(&entry.sha256)
        .await?
        .ok_or_else(|| ApiError::not_found("asset missing"))?;
    Ok(immutable(&headers, etag, entry.media_type.clone(), bytes))
}

// ---------- tokens / share links / directory ----------

#[derive(Deserialize, Serialize, Default, Debug)]
pub struct TokenRequest {
    /// `device` (default) or `admin`.
    #[serde(default)]
    pub kind: Option<String>,
    pub rep: Option<String>,
    pub territory: Option<String>,
    pub label: Option<String>,
}

async fn create_token(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    let req: TokenRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed token request: {e}")))?;
    let kind = match req.kind.as_deref().unwrap_or("device") {
        "device" => TokenKind::Device,
        "admin" => TokenKind::Admin,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown token kind `{other}`"
            )));
        }
    };
    if kind == TokenKind::Device && req.rep.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(ApiError::bad_request("a device token needs `rep`"));
    }
    let t: NewToken =
        auth::create_token(st.store.as_ref(), kind, req.rep, req.territory, req.label).await?;
    tracing::info!(id = %t.id, kind = kind.as_str(), "token created");
    Ok((StatusCode::CREATED, axum::Json(t)).into_response())
}

async fn list_tokens(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    Ok(axum::Json(st.store.list_tokens().await?).into_response())
}

async fn revoke_token(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    if st.store.revoke_token(&id, now_ms()).await? {
        tracing::info!(%id, "token revoked");
        Ok(axum::Json(serde_json::json!({"revoked": true, "id": id})).into_response())
    } else {
        Err(ApiError::not_found(format!("no token `{id}`")))
    }
}

#[derive(Deserialize, Serialize, Debug)]
pub struct ShareRequest {
    pub deck: String,
    /// Physician id (CRM id; pseudonymized by the server).
    pub hcp: String,
    /// Lifetime: `30d`, `12h`, or seconds. Default 30 days.
    pub expires: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone)]
pub struct ShareLink {
    pub token: String,
    pub url: String,
    pub deck_id: String,
    pub expires_at: i64,
}

async fn create_share(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    let req: ShareRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed share request: {e}")))?;
    let secs = match req.expires.as_deref() {
        None => 30 * 86_400,
        Some(s) => crate::util::parse_duration_secs(s)
            .ok_or_else(|| ApiError::bad_request(format!("bad `expires` `{s}` (e.g. 30d, 12h)")))?,
    };
    if req.hcp.trim().is_empty() {
        return Err(ApiError::bad_request("`hcp` must not be empty"));
    }
    let who = Principal::Share {
        deck: req.deck.clone(),
        hcp: String::new(),
        expires_at: 0,
        nonce: String::new(),
    };
    if catalog_for(&st, &who).await?.is_empty() {
        return Err(ApiError::not_found(format!(
            "deck `{}` has no published, valid version",
            req.deck
        )));
    }
    let claims = ShareClaims {
        d: req.deck.clone(),
        h: st.keys.pseudonymize(&req.hcp),
        e: now_ms().saturating_add(secs.saturating_mul(1000)),
        n: b64url(&random_bytes::<9>()),
    };
    let token = st.keys.sign_share(&claims);
    let link = ShareLink {
        url: format!("{}/app/?share={token}", st.public_url),
        token,
        deck_id: req.deck,
        expires_at: claims.e,
    };
    Ok((StatusCode::CREATED, axum::Json(link)).into_response())
}

#[derive(Serialize, Deserialize, Debug)]
pub struct ShareResolution {
    pub deck_id: String,
    pub expires_at: i64,
    /// The version to present (newest valid), with its bundle URL.
    pub entry: CatalogEntry,
}

async fn resolve_share(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)
        .or_else(|| q.get("token").cloned())
        .ok_or_else(|| ApiError::unauthorized("missing share token"))?;
    let who = st.auth_token(&token).await?;
    let Principal::Share {
        deck, expires_at, ..
    } = &who
    else {
        return Err(ApiError::bad_request("not a share-link token"));
    };
    let mut entries = catalog_for(&st, &who).await?;
    entries.sort_by_key(|e| e.published_at);
    let entry = entries
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("deck `{deck}` is no longer available")))?;
    Ok(axum::Json(ShareResolution {
        deck_id: deck.clone(),
        expires_at: *expires_at,
        entry,
    })
    .into_response())
}

async fn import_hcps(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the CSV must be UTF-8"))?;
    let rows = crate::directory::parse_directory(text, &st.keys)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let n = st.store.upsert_hcps(rows).await?;
    Ok(axum::Json(serde_json::json!({"imported": n})).into_response())
}

// ---------- insights API ----------

async fn api_overview(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<FilterParams>,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    let f = p.to_filter()?;
    Ok(axum::Json(insights::overview(&st, &f).await?).into_response())
}

async fn api_deck(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<FilterParams>,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    let f = p.to_filter()?;
    Ok(axum::Json(insights::deck_report(&st, &f).await?).into_response())
}

/// The CRM clickstream CSV: one row per counted or uncounted slide view.
pub async fn clickstream_csv(st: &AppState, p: &FilterParams) -> Result<String, ApiError> {
    use crate::directory::csv_field as q;
    let f = p.to_filter()?;
    let rows = st.store.clickstream(&f).await?;
    let versions = st.store.versions().await?;
    let mut km: HashMap<(String, String), Arc<Bundle>> = HashMap::new();
    for v in &versions {
        if let Ok(Some(b)) = st.bundle(&v.bundle_hash).await {
            km.insert((v.deck_id.clone(), v.version.clone()), b);
        }
    }
    let mut out = String::from(
        "session_id,hcp,rep,deck_id,deck_version,slide_id,key_message,start,duration_ms,reaction,channel\n",
    );
    for r in rows {
        let key_message = km
            .get(&(r.deck_id.clone(), r.deck_version.clone()))
            .and_then(|b| b.slide(&r.slide_id).and_then(|s| s.key_message.clone()))
            .unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            q(&r.session_id),
            q(r.hcp.as_deref().unwrap_or("")),
            q(r.rep.as_deref().unwrap_or("")),
            q(&r.deck_id),
            q(&r.deck_version),
            q(&r.slide_id),
            q(&key_message),
            crate::util::iso_datetime(r.start_ms),
            r.dwell_ms,
            r.reaction.map(|v| v.to_string()).unwrap_or_default(),
            r.channel,
        ));
    }
    Ok(out)
}

async fn export_clickstream(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<FilterParams>,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    let csv = clickstream_csv(&st, &p).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"clickstream.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

async fn stats(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    Ok(axum::Json(st.store.stats().await?).into_response())
}

// ---------- start / stop ----------

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What a started server reports.
#[derive(Debug, Clone)]
pub struct Started {
    pub addr: SocketAddr,
    pub base_url: String,
    /// The admin token, when this start created the first one.
    pub new_admin_token: Option<String>,
    pub admin_token_file: PathBuf,
    pub backend: &'static str,
}

/// Create the first admin token (once per database) and write it to
/// `<data-dir>/admin-token` (mode 0600).
async fn bootstrap_admin(
    store: &dyn Store,
    data_dir: &FsPath,
) -> Result<Option<String>, ServeError> {
    let marker = b64url(&random_bytes::<12>());
    let winner = store
        .meta_get_or_init("admin_bootstrap", marker.clone())
        .await?;
    if winner != marker {
        return Ok(None);
    }
    let t = auth::create_token(
        store,
        TokenKind::Admin,
        None,
        None,
        Some("first admin".into()),
    )
    .await?;
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join("admin-token");
    write_private(&path, &format!("{}\n", t.token))?;
    Ok(Some(t.token))
}

fn write_private(path: &FsPath, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)?.write_all(text.as_bytes())
}

/// Open storage, bootstrap, bind. Returns the listener, the state and what to print.
pub async fn prepare(
    cfg: &Config,
) -> Result<(tokio::net::TcpListener, Arc<AppState>, Started), ServeError> {
    let store = storage::open(
        &cfg.data_dir,
        cfg.database.as_deref(),
        cfg.pg_schema.as_deref(),
    )
    .await?;
    let keys = Keys::load(store.as_ref()).await?;
    let new_admin_token = bootstrap_admin(store.as_ref(), &cfg.data_dir).await?;
    let bind = format!("{}:{}", cfg.bind, cfg.port);
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| ServeError::Bind(bind.clone(), e))?;
    let addr = listener.local_addr()?;
    let host = if cfg.bind == "0.0.0.0" {
        "127.0.0.1".to_string()
    } else {
        cfg.bind.clone()
    };
    let base_url = cfg
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{host}:{}", addr.port()));
    let backend = store.backend();
    let state = Arc::new(AppState {
        store,
        keys,
        write_slots: Arc::new(Semaphore::new(cfg.max_concurrent_batches)),
        www: cfg.www.clone(),
        public_url: base_url.clone(),
        bundle_cache: Mutex::new(HashMap::new()),
        auth_limiter: auth::FailureLimiter::new(cfg.auth_failures_per_minute),
        trusted_keys: cfg.trusted_keys.clone(),
    });
    if let Some(days) = cfg.retention_days {
        crate::retention::spawn(state.store.clone(), days);
    }
    crate::sessions::spawn(
        state.store.clone(),
        cfg.session_idle,
        cfg.session_close_every,
    );
    if cfg.trusted_keys.is_empty() {
        tracing::warn!(
            "no trusted signing keys configured (--trusted-keys / EDETAIL_TRUSTED_KEYS / trusted_keys): publishing is refused"
        );
    }
    Ok((
        listener,
        state,
        Started {
            addr,
            base_url,
            new_admin_token,
            admin_token_file: cfg.data_dir.join("admin-token"),
            backend,
        },
    ))
}

/// Serve until `shutdown` resolves; in-flight requests (and their batches) finish first.
pub async fn run_until(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// `edetail serve`: run in the foreground until Ctrl-C / SIGTERM. `on_start` gets the
/// start report (URLs, a newly created admin token) to print.
pub fn serve_blocking(cfg: Config, on_start: impl FnOnce(&Started)) -> Result<(), ServeError> {
    crate::config::init_logging(cfg.log_json, &cfg.log_level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (listener, state, started) = prepare(&cfg).await?;
        tracing::info!(addr = %started.addr, backend = started.backend, "edetail server listening");
        on_start(&started);
        run_until(listener, state, shutdown_signal()).await
    })?;
    // The runtime (and with it the store's writer) shuts down after the last request.
    drop(rt);
    tracing::info!("stopped");
    Ok(())
}

/// A server on a background thread (tests, benchmarks, embedding).
pub struct RunningServer {
    pub started: Started,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl RunningServer {
    pub fn start(cfg: Config) -> Result<RunningServer, ServeError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("edetail-server".into())
            .spawn(move || -> Result<(), ServeError> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let (listener, state, started) = match prepare(&cfg).await {
                        Ok(x) => x,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let _ = tx.send(Ok(started));
                    run_until(listener, state, async {
                        let _ = stop_rx.await;
                    })
                    .await
                })
            })?;
        match rx.recv() {
            Ok(Ok(started)) => Ok(RunningServer {
                started,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(ServeError::Io(std::io::Error::other("server thread died"))),
        }
    }

    pub fn url(&self) -> &str {
        &self.started.base_url
    }

    /// Graceful stop: finish in-flight requests, close the store.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
