//! Audit log of admin actions: publish, retire, token create/revoke, HCP directory
//! import and share-link creation. A middleware ([`record`]) wraps those routes: when
//! the caller is an admin, one row is stored per request with the time, the action,
//! the admin token's id (never its secret), the target and the outcome (`ok` or
//! `refused <status> <code>`; error messages are not copied, so nothing from a
//! refused CSV or bundle reaches the log). Targets never name a physician: a share
//! link's target is its deck and expiry; a directory import's is its row count.
//! Read it with `GET /api/v1/audit` (admin only) or `edetail audit`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::api::ApiError;
use crate::app::AppState;
use crate::auth::Principal;
use crate::storage::AuditEntry;
use crate::util::now_ms;

/// Largest response body read back to name the target (publish/token/share/import
/// answers are small JSON documents).
const MAX_BODY: usize = 64 * 1024;

/// The audited action of a request, and the target known from its path.
pub fn action_of(method: &Method, path: &str) -> Option<(&'static str, String)> {
    if method != Method::POST {
        return None;
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["", "api", "v1", "bundles"] => Some(("publish", String::new())),
        [
            "",
            "api",
            "v1",
            "decks",
            deck,
            "versions",
            version,
            "retire",
        ] => Some(("retire", format!("{deck} {version}"))),
        ["", "api", "v1", "tokens"] => Some(("token_create", String::new())),
        ["", "api", "v1", "tokens", id, "revoke"] => Some(("token_revoke", id.to_string())),
        ["", "api", "v1", "hcps"] => Some(("hcp_import", String::new())),
        ["", "api", "v1", "share"] => Some(("share_create", String::new())),
        _ => None,
    }
}

/// The target named by a successful response body.
fn target_from_body(action: &str, body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    Some(match action {
        "publish" => format!("{} {} {}", s("deck_id"), s("version"), s("bundle_hash")),
        // The token's id and kind; the response also holds the secret, never copied.
        "token_create" => format!("{} {}", s("id"), s("kind")),
        "hcp_import" => format!("{} rows", v.get("imported")?.as_u64()?),
        "share_create" => format!(
            "{} expires {}",
            s("deck_id"),
            v.get("expires_at")?.as_i64()?
        ),
        _ => return None,
    })
}

/// Middleware: store one audit row for every admin action request by an admin.
pub async fn record(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some((action, path_target)) = action_of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    // Only admins can act; other callers are refused by the handler (and 401s are
    // rate-limited), so they leave no audit row.
    let actor = match st.admin(req.headers()).await {
        Ok(p @ Principal::Admin { .. }) => p.token_id(),
        _ => return next.run(req).await,
    };
    let res = next.run(req).await;
    let status = res.status();
    let (parts, body) = res.into_parts();
    let (res, bytes) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => (
            Response::from_parts(parts, Body::from(bytes.clone())),
            bytes,
        ),
        Err(_) => (
            ApiError::internal("audited response too large").into_response(),
            Default::default(),
        ),
    };
    let (target, outcome) = if status.is_success() {
        (
            target_from_body(action, &bytes).unwrap_or_default(),
            "ok".to_string(),
        )
    } else {
        // Only the stable machine code of the error, not its message.
        let code = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|c| c.as_str()).map(String::from))
            .unwrap_or_default();
        let outcome = format!("refused {} {code}", status.as_u16());
        (String::new(), outcome.trim_end().to_string())
    };
    let target = if path_target.is_empty() {
        target
    } else {
        path_target
    };
    let entry = AuditEntry {
        id: 0,
        at: now_ms(),
        action: action.to_string(),
        actor,
        target,
        outcome,
    };
    if let Err(e) = st.store.audit(entry).await {
        // The action itself is done; losing its audit row is logged loudly.
        tracing::error!(error = %e, action, "could not write the audit log");
    }
    res
}

/// Query of `GET /api/v1/audit`. `limit` is read as text and parsed here so a bad value
/// gets the API's JSON error body (axum's own query rejection is plain text).
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    pub limit: Option<String>,
}

/// `GET /api/v1/audit?limit=N` (admin only): newest first, at most 10,000 rows.
pub async fn list(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    st.admin(&headers).await?;
    let limit = match q.limit.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        None => 1000,
        Some(l) => l.parse::<i64>().map_err(|_| {
            ApiError::bad_request("`limit` must be a whole number of rows (1 to 10000)")
        })?,
    }
    .clamp(1, 10_000);
    Ok(axum::Json(st.store.audit_log(limit).await?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_recognised() {
        let p = Method::POST;
        assert_eq!(
            action_of(&p, "/api/v1/bundles"),
            Some(("publish", String::new()))
        );
        assert_eq!(
            action_of(&p, "/api/v1/decks/d1/versions/1.0.0/retire"),
            Some(("retire", "d1 1.0.0".to_string()))
        );
        assert_eq!(
            action_of(&p, "/api/v1/tokens/abc/revoke"),
            Some(("token_revoke", "abc".to_string()))
        );
        assert_eq!(action_of(&Method::GET, "/api/v1/tokens"), None);
        assert_eq!(action_of(&p, "/api/v1/events"), None);
    }

    #[test]
    fn token_secret_is_not_a_target() {
        let body = br#"{"id":"t1","token":"edt.t1.SECRET","kind":"device","rep":"r"}"#;
        let t = target_from_body("token_create", body).unwrap();
        assert_eq!(t, "t1 device");
        assert!(!t.contains("SECRET"));
    }
}
