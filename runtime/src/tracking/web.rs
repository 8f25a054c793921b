//! Small browser helpers shared by the tracking code (wasm32 only).

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A human-readable message from a thrown JS value.
pub fn js_err(v: &JsValue) -> String {
    if let Some(s) = v.as_string() {
        return s;
    }
    if let Some(e) = v.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    if let Some(e) = v.dyn_ref::<web_sys::DomException>() {
        return format!("{}: {}", e.name(), e.message());
    }
    format!("{v:?}")
}

/// Run `f` once after `ms`; returns the timer handle.
pub fn set_timeout(ms: u32, f: impl FnOnce() + 'static) -> Option<i32> {
    let window = web_sys::window()?;
    let cb = Closure::once_into_js(f);
    window
        .set_timeout_with_callback_and_timeout_and_arguments_0(
            cb.unchecked_ref(),
            i32::try_from(ms).unwrap_or(i32::MAX),
        )
        .ok()
}

pub fn clear_timeout(handle: i32) {
    if let Some(w) = web_sys::window() {
        w.clear_timeout_with_handle(handle);
    }
}

/// Resolve after `ms` milliseconds.
pub async fn sleep(ms: u32) {
    let p = Promise::new(&mut |resolve: Function, _reject: Function| {
        let _ = set_timeout(ms, move || {
            let _ = resolve.call0(&JsValue::NULL);
        });
    });
    let _ = JsFuture::from(p).await;
}

/// `true` when `obj[key]` exists and is not undefined/null.
pub fn has(obj: &JsValue, key: &str) -> bool {
    Reflect::get(obj, &JsValue::from_str(key))
        .map(|v| !v.is_undefined() && !v.is_null())
        .unwrap_or(false)
}

pub fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

pub fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

pub fn page_visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .map(|d| !d.hidden())
        .unwrap_or(true)
}

pub fn online() -> bool {
    web_sys::window()
        .map(|w| w.navigator().on_line())
        .unwrap_or(true)
}
