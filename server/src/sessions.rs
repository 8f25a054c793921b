//! Closing sessions that never send a `session_end` (tab closed, iPad locked, app
//! killed): a background job closes every session with no new event for the idle
//! timeout (server receive time; default 30 min), computing its session-level rollups
//! (drop-off, paths) from its stored events exactly as for an ended session. See
//! [`crate::rollup`] for how a session closed again (late events) replaces what it
//! contributed. The job runs in every server process; the store makes sure each
//! session is closed by one of them ([`crate::storage::Store::close_idle_sessions`]).

use std::sync::Arc;
use std::time::Duration;

use crate::storage::{CLOSE_CHUNK, Store, StoreError};
use crate::util::now_ms;

/// Default idle time after which a session without `session_end` is closed.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30 * 60);
/// Default interval between two runs of the close job.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Close every session idle for `idle` at time `now_ms`; returns the number closed.
pub async fn run_once(store: &dyn Store, idle: Duration, now_ms: i64) -> Result<u64, StoreError> {
    let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
    let before = now_ms.saturating_sub(idle_ms);
    let mut total = 0;
    loop {
        let n = store.close_idle_sessions(before, CLOSE_CHUNK).await?;
        total += n;
        if n < CLOSE_CHUNK as u64 {
            break;
        }
    }
    if total > 0 {
        tracing::debug!(closed = total, "idle sessions closed");
    }
    Ok(total)
}

/// Run the close job every `every`, in the background.
pub fn spawn(
    store: Arc<dyn Store>,
    idle: Duration,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_once(store.as_ref(), idle, now_ms()).await {
                tracing::warn!(error = %e, "closing idle sessions failed; retrying at the next run");
            }
        }
    })
}
