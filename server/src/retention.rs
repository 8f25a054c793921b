//! Retention of raw events (`retention_days`): raw events older than N days are
//! deleted at start and then every hour; the rollups are kept, so every dashboard
//! figure (including those of the deleted days) stays the same.
//!
//! Age is the event's `corrected_time` (its client time corrected by the batch's clock
//! offset), the same time that places an event on a dashboard day: "older than N days"
//! means "about a day more than N days ago", whatever the day it was received.
//!
//! Session-level rollups (drop-off, paths, positive calls) are computed from the
//! session's stored events when the session is closed ([`crate::sessions`]: at its
//! `session_end`, or by the idle-session job). So an old event is deleted only once its
//! session is closed with every event counted; events of sessions still open are kept
//! until 2N days. A session losing events is frozen: later events of it no longer change
//! its session rollups (they are never recomputed from a partial session). See
//! docs/server.md.

use std::sync::Arc;
use std::time::Duration;

use crate::storage::{Store, StoreError};
use crate::util::now_ms;

const DAY_MS: i64 = 86_400_000;

/// How often retention runs after the start.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// Delete what `days` of retention allows at time `now_ms`; returns the rows deleted.
pub async fn run_once(store: &dyn Store, days: u32, now_ms: i64) -> Result<u64, StoreError> {
    let keep = i64::from(days) * DAY_MS;
    let before = now_ms.saturating_sub(keep);
    let unended_before = now_ms.saturating_sub(keep.saturating_mul(2));
    let n = store.purge_events(before, unended_before).await?;
    if n > 0 {
        tracing::info!(deleted = n, days, "retention: raw events deleted");
    }
    Ok(n)
}

/// Run retention now and then every [`INTERVAL`], in the background.
pub fn spawn(store: Arc<dyn Store>, days: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        loop {
            tick.tick().await;
            if let Err(e) = run_once(store.as_ref(), days, now_ms()).await {
                tracing::warn!(error = %e, "retention run failed; retrying at the next interval");
            }
        }
    })
}
