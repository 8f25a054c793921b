//! The ingest HTTP contract (version 1), shared by the runtime (sender), the
//! server (receiver) and test receivers.
//!
//! ```text
//! POST /api/v1/events
//! Authorization: Bearer <device token | share-link token>
//! Content-Type: application/json
//! Content-Encoding: gzip            (optional)
//!
//! {"schema_version":1,"device_id":"ipad-7","sent_at":1763800000000,"events":[ ...Event... ]}
//! ```
//!
//! Responses:
//! - `200` with [`BatchResponse`]: one [`EventResult`] per event, in request order.
//!   The 200 is sent only after every accepted event is durable. `duplicate` means the
//!   id was stored before: the device deletes it from its outbox exactly as for
//!   `accepted`. `rejected` carries a reason; the device logs it and drops the event
//!   (resending cannot fix it).
//! - `400` malformed body (not JSON, not a batch object, bad gzip) — [`ErrorBody`].
//! - `401` missing, unknown, revoked or expired token.
//! - `413` body over [`MAX_BATCH_BYTES`] (after decompression) or more than
//!   [`MAX_BATCH_EVENTS`] events.
//! - `415` content type is not JSON.
//! - `422` batch `schema_version` unsupported.
//! - `429` / `503` overloaded or storage unavailable, with `Retry-After` seconds:
//!   nothing from the batch was stored; resend later.
//!
//! Clock: the server keeps `client_time` (device clock at the event), `sent_at`
//! (device clock at upload) and its own receive time, and derives
//! `corrected_time = client_time + (received_at - sent_at)`. Batches whose
//! `sent_at` is more than [`MAX_CLOCK_SKEW_MS`] from the server clock are still
//! accepted (iPads drift); the correction absorbs the skew.

use serde::{Deserialize, Serialize};

use crate::event::{EVENT_SCHEMA_VERSION, Event, EventError};

pub const INGEST_PATH: &str = "/api/v1/events";
/// Largest accepted body after decompression.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 500;
/// Browsers cap `fetch(..., {keepalive: true})` bodies at 64 KiB; senders keep
/// keepalive flushes under this.
pub const KEEPALIVE_MAX_BYTES: usize = 60 * 1024;
/// Skew beyond which the server flags (not refuses) a batch's clock.
pub const MAX_CLOCK_SKEW_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    pub schema_version: u32,
    pub device_id: String,
    /// Device clock at upload, ms since epoch.
    pub sent_at: i64,
    pub events: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Accepted,
    Duplicate,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct EventResult {
    /// The event id as sent (empty when the event had none).
    pub id: String,
    pub status: EventStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct BatchResponse {
    /// Server clock at receipt, ms since epoch.
    pub received_at: i64,
    pub results: Vec<EventResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ErrorBody {
    /// Stable machine code: `malformed`, `unauthorized`, `too_large`, `unsupported_schema`,
    /// `unsupported_media_type`, `overloaded`, `unavailable`.
    pub error: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BatchError {
    #[error("malformed batch: {0}")]
    Malformed(String),
    #[error("unsupported batch schema version {0} (server reads {EVENT_SCHEMA_VERSION})")]
    UnsupportedSchema(u64),
    #[error("batch has {0} events; the limit is {MAX_BATCH_EVENTS}")]
    TooManyEvents(usize),
    #[error("batch body is {0} bytes; the limit is {MAX_BATCH_BYTES}")]
    TooLarge(usize),
}

/// A decoded batch: each entry is either a valid event or the reason it was refused.
#[derive(Debug)]
pub struct DecodedBatch {
    pub device_id: String,
    pub sent_at: i64,
    pub events: Vec<(String, Result<Event, EventError>)>,
}

/// Decode a (decompressed) batch body. Whole-batch problems are errors; per-event
/// problems are returned per event so one bad event never sinks the batch.
pub fn decode_batch(body: &[u8]) -> Result<DecodedBatch, BatchError> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(BatchError::TooLarge(body.len()));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| BatchError::Malformed(e.to_string()))?;
    match v.get("schema_version").and_then(|s| s.as_u64()) {
        Some(n) if n == u64::from(EVENT_SCHEMA_VERSION) => {}
        Some(n) => return Err(BatchError::UnsupportedSchema(n)),
        None => {
            return Err(BatchError::Malformed(
                "missing or non-integer `schema_version`".into(),
            ));
        }
    }
    let req: BatchRequest =
        serde_json::from_value(v).map_err(|e| BatchError::Malformed(e.to_string()))?;
    if req.events.len() > MAX_BATCH_EVENTS {
        return Err(BatchError::TooManyEvents(req.events.len()));
    }
    let events = req
        .events
        .into_iter()
        .map(|v| {
            let id = v
                .get("id")
                .and_then(|i| i.as_str())
                .unwrap_or_default()
                .chars()
                .take(64)
                .collect::<String>();
            (id, Event::from_value(v))
        })
        .collect();
    Ok(DecodedBatch {
        device_id: req.device_id,
        sent_at: req.sent_at,
        events,
    })
}

crate::map_only!(EventResult, BatchResponse, ErrorBody);
