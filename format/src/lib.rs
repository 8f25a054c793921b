//! `edetail-format`: the only contract between the compiler (`authoring`), the
//! runtime and the server. Everything here is versioned: bundles carry
//! [`bundle::BUNDLE_SCHEMA_VERSION`], events [`event::EVENT_SCHEMA_VERSION`].
//! Compiles for native and wasm32 alike.

#[cfg(feature = "archive")]
pub mod archive;
pub mod bundle;
pub mod event;
pub mod hash;
pub mod ingest;
#[doc(hidden)]
pub mod map_only;
pub mod signature;

pub use bundle::{BUNDLE_SCHEMA_VERSION, Bundle, BundleError, Component, Slide};
pub use event::{Channel, EVENT_SCHEMA_VERSION, Event, EventError, EventKind, NavVia};
pub use hash::sha256_hex;
