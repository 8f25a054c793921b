//! The engagement event pipeline: envelope, slide-view timing, IndexedDB outbox,
//! batching, backoff and delivery. See `API.md` (the UI's interface) and
//! `docs/events.md` (the event schema and ingest contract).
//!
//! `timing`, `backoff`, `batch`, `session` and `status` are pure Rust (native unit
//! tests); the browser parts are wasm32 only.

pub mod backoff;
pub mod batch;
pub mod session;
pub mod status;
pub mod timing;

pub use session::SessionContext;
pub use status::{StorageState, SyncStatus};
pub use timing::{ClosedView, ViewTimer};

#[cfg(target_arch = "wasm32")]
pub mod outbox;
#[cfg(target_arch = "wasm32")]
mod tracker;
#[cfg(target_arch = "wasm32")]
pub(crate) mod web;

#[cfg(target_arch = "wasm32")]
pub use tracker::{
    DEVICE_ID_KEY, EVENT_LOG_CAP, PENDING_PREFIX, SESSION_KEY, Subscription, Tracker,
    TrackerOptions, drain_outbox, drain_outbox_with, register_service_worker,
};
