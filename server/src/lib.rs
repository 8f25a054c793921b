//! The head-office server: bundle distribution (publish, catalog, content-addressed
//! bundles), the engagement-event ingest API, storage (SQLite or PostgreSQL behind one
//! trait), identity (admin/device tokens, signed share links, pseudonymous physicians),
//! rollup-backed insights (JSON, HTML dashboard, CLI tables, CRM clickstream CSV) and a
//! traffic simulator. See `docs/server.md`.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bundles;
pub mod config;
pub mod dashboard;
pub mod directory;
pub mod ingest;
pub mod insights;
pub mod retention;
pub mod rollup;
pub mod sessions;
pub mod storage;
pub mod util;

pub use app::{RunningServer, Started, serve_blocking};
pub use config::{Config, ServeArgs};
pub mod client;
pub mod report;
pub mod simulate;
