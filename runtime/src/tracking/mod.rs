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
mod web;

#[cfg(target_arch = "wasm32")]
pub use tracker::{
    DEVICE_ID_KEY, SESSION_KEY, Subscription, Tracker, TrackerOptions, register_service_worker,
};
