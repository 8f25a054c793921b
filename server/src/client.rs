//! A small blocking HTTP client for the server's API (used by the `edetail` head-office
//! commands, the simulator, tests and benchmarks).

use std::time::Duration;

use edetail_format::Bundle;
use edetail_format::ingest::{BatchResponse, ErrorBody};
use serde::de::DeserializeOwned;

use crate::app::{PublishResult, ShareLink, ShareRequest, TokenRequest};
use crate::auth::NewToken;
use crate::bundles::CatalogEntry;
use crate::insights::{DeckReport, FilterParams, Overview};
use crate::storage::{Stats, TokenRecord, VersionRecord};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server: {0}")]
    Transport(String),
    #[error("server answered {status}: {message}")]
    Status {
        status: u16,
        code: String,
        message: String,
        retry_after: Option<u64>,
    },
    #[error("unexpected response: {0}")]
    Decode(String),
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

/// A raw HTTP answer (status, body text, Retry-After seconds).
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<u64>,
    pub headers: Vec<(String, String)>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    pub fn new(base: &str, token: Option<&str>) -> Client {
        let cfg = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build();
        Client {
            agent: ureq::Agent::new_with_config(cfg),
            base: base.trim_end_matches('/').to_string(),
            token: token.map(String::from),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Send a request; `body` is (content type, content encoding, bytes).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Option<&str>, &[u8])>,
    ) -> Result<RawResponse, ClientError> {
        let url = format!("{}{path}", self.base);
        let token = token.or(self.token.as_deref());
        let auth = token.map(|t| format!("Bearer {t}"));
        let res = match method {
            "GET" => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = self.agent.post(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some((ct, enc, bytes)) => {
                        r = r.header("Content-Type", ct);
                        if let Some(e) = enc {
                            r = r.header("Content-Encoding", e);
                        }
                        r.send(bytes)
                    }
                    None => r.send_empty(),
                }
            }
        };
        let mut res = res.map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = res.status().as_u16();
        let headers: Vec<(String, String)> = res
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = res
            .body_mut()
            .with_config()
            .limit(1 << 32)
            .read_to_string()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(RawResponse {
            status,
            body,
            retry_after,
            headers,
        })
    }

    fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Option<&str>, &[u8])>,
    ) -> Result<T, ClientError> {
        let r = self.raw(method, path, None, body)?;
        check(&r)?;
        serde_json::from_str(&r.body).map_err(|e| {
            ClientError::Decode(format!(
                "{e}: {}",
                r.body.chars().take(200).collect::<String>()
            ))
        })
    }

    pub fn publish(
        &self,
        archive: &[u8],
        territories: &[String],
    ) -> Result<PublishResult, ClientError> {
        let path = if territories.is_empty() {
            "/api/v1/bundles".to_string()
        } else {
            format!(
                "/api/v1/bundles?territory={}",
                crate::util::url_encode(&territories.join(","))
            )
        };
        self.json("POST", &path, Some(("application/x-tar", None, archive)))
    }

    pub fn versions(&self) -> Result<Vec<VersionRecord>, ClientError> {
        self.json("GET", "/api/v1/versions", None)
    }

    pub fn retire(&self, deck: &str, version: &str) -> Result<serde_json::Value, ClientError> {
        self.json(
            "POST",
            &format!(
                "/api/v1/decks/{}/versions/{}/retire",
                crate::util::url_encode(deck),
                crate::util::url_encode(version)
            ),
            None,
        )
    }

    pub fn create_token(&self, req: &TokenRequest) -> Result<NewToken, ClientError> {
        let b = serde_json::to_vec(req).unwrap_or_default();
        self.json(
            "POST",
            "/api/v1/tokens",
            Some(("application/json", None, &b)),
        )
    }

    pub fn list_tokens(&self) -> Result<Vec<TokenRecord>, ClientError> {
        self.json("GET", "/api/v1/tokens", None)
    }

    pub fn revoke_token(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        self.json(
            "POST",
            &format!("/api/v1/tokens/{}/revoke", crate::util::url_encode(id)),
            None,
        )
    }

    pub fn share(&self, req: &ShareRequest) -> Result<ShareLink, ClientError> {
        let b = serde_json::to_vec(req).unwrap_or_default();
        self.json(
            "POST",
            "/api/v1/share",
            Some(("application/json", None, &b)),
        )
    }

    pub fn import_hcps(&self, csv: &str) -> Result<serde_json::Value, ClientError> {
        self.json(
            "POST",
            "/api/v1/hcps",
            Some(("text/csv", None, csv.as_bytes())),
        )
    }

    pub fn catalog(&self, token: Option<&str>) -> Result<Vec<CatalogEntry>, ClientError> {
        let r = self.raw("GET", "/api/v1/catalog", token, None)?;
        check(&r)?;
        serde_json::from_str(&r.body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub fn bundle(&self, hash: &str) -> Result<Bundle, ClientError> {
        let r = self.raw("GET", &format!("/bundles/{hash}/bundle.json"), None, None)?;
        check(&r)?;
        edetail_format::bundle::verify_and_parse(r.body.as_bytes(), hash)
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub fn overview(&self, p: &FilterParams) -> Result<Overview, ClientError> {
        self.json(
            "GET",
            &format!("/api/v1/insights/overview?{}", p.query_string()),
            None,
        )
    }

    pub fn deck_report(&self, p: &FilterParams) -> Result<DeckReport, ClientError> {
        self.json(
            "GET",
            &format!("/api/v1/insights/deck?{}", p.query_string()),
            None,
        )
    }

    pub fn clickstream(&self, p: &FilterParams) -> Result<String, ClientError> {
        let r = self.raw(
            "GET",
            &format!("/api/v1/export/clickstream.csv?{}", p.query_string()),
            None,
            None,
        )?;
        check(&r)?;
        Ok(r.body)
    }

    pub fn stats(&self) -> Result<Stats, ClientError> {
        self.json("GET", "/api/v1/admin/stats", None)
    }

    /// The newest `limit` rows of the audit log of admin actions, newest first.
    pub fn audit(&self, limit: i64) -> Result<Vec<crate::storage::AuditEntry>, ClientError> {
        self.json("GET", &format!("/api/v1/audit?limit={limit}"), None)
    }

    /// Send one ingest batch (JSON body, optionally gzip-compressed here).
    pub fn send_batch(
        &self,
        token: &str,
        body: &[u8],
        gzip: bool,
    ) -> Result<BatchResponse, ClientError> {
        let r = if gzip {
            let z = gzip_bytes(body);
            self.raw(
                "POST",
                edetail_format::ingest::INGEST_PATH,
                Some(token),
                Some(("application/json", Some("gzip"), &z)),
            )?
        } else {
            self.raw(
                "POST",
                edetail_format::ingest::INGEST_PATH,
                Some(token),
                Some(("application/json", None, body)),
            )?
        };
        check(&r)?;
        serde_json::from_str(&r.body).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

pub fn gzip_bytes(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(b);
    e.finish().unwrap_or_default()
}

fn check(r: &RawResponse) -> Result<(), ClientError> {
    if (200..300).contains(&r.status) {
        return Ok(());
    }
    let (code, message) = match serde_json::from_str::<ErrorBody>(&r.body) {
        Ok(e) => (e.error, e.message),
        Err(_) => (String::new(), r.body.chars().take(300).collect()),
    };
    Err(ClientError::Status {
        status: r.status,
        code,
        message,
        retry_after: r.retry_after,
    })
}
