//! The edetail player: a Yew (CSR) app for wasm32 that presents verified bundles,
//! offline, on iPad Safari and in physicians' browsers.
//!
//! The logic that does not need a browser lives in plain modules that are unit-tested
//! natively (`cargo test -p edetail-runtime`): URL options, bundle admission,
//! navigation, sequences, canvas scaling, swipe recognition, the call summary and the
//! UI string table. The Yew UI (`web`) only builds for wasm32. See docs/runtime.md.

pub mod check;
pub mod i18n;
pub mod inspect;
pub mod json;
pub mod nav;
pub mod options;
pub mod quiz;
pub mod scale;
pub mod sequence;
pub mod snapshot;
pub mod summary;
pub mod swipe;
#[cfg(test)]
mod testutil;
pub mod tracking;

#[cfg(target_arch = "wasm32")]
mod web;

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    web::start();
}
