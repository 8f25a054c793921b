//! Taking and removing the copy of the first view that `boot.js` shows on the next open
//! (the rules are in [`crate::snapshot`]).

use wasm_bindgen::JsCast;
use web_sys::Element;

use super::dom;
use crate::snapshot::{self as snap, ELEMENT_ID, Entry, STORAGE_KEY};

/// Parts of the player that are not in the copy: the neighbouring slides (hidden
/// anyway), dialogs (consent is asked again by the player), the live region, the MR
/// tray and the preview inspector, video sources (no media loads for a picture).
const LEFT_OUT: &str =
    ".slide:not(.is-current), .overlay, [aria-live], .tray, .tray-handle, .inspector, video source";

/// The address entries are kept under: the page's path and query.
fn page() -> String {
    let l = dom::window().location();
    format!(
        "{}{}",
        l.pathname().unwrap_or_default(),
        l.search().unwrap_or_default()
    )
}

/// Whether `boot.js` is showing a copy now.
pub fn showing() -> bool {
    dom::document().get_element_by_id(ELEMENT_ID).is_some()
}

/// Take the copy away: the player's own view (or its refusal) is in the DOM now.
pub fn remove() {
    if let Some(e) = dom::document().get_element_by_id(ELEMENT_ID) {
        e.remove();
    }
}

/// Forget this page's copy: its bundle no longer passes the checks.
pub fn forget() {
    if let Some(list) = snap::without(dom::local_get(STORAGE_KEY).as_deref(), &page()) {
        dom::local_set(STORAGE_KEY, &list);
    }
}

/// What the copy is valid for, from the admitted bundle.
pub struct Meta {
    pub from: String,
    pub until: String,
    pub lang: String,
    pub title: String,
    pub bundle: String,
}

/// Keep a copy of the player's first view (`root`: its `.player` element) for this page,
/// when its current slide is `first` (the slide a new open starts on).
pub fn save(root: &Element, first: &str, meta: Meta) {
    // Written by boot.js: without it (a page without the shell's boot script) nothing
    // would ever show the copy.
    let Some(shell) = js_sys::Reflect::get(&js_sys::global(), &"__edetailShell".into())
        .ok()
        .and_then(|v| v.as_string())
    else {
        return;
    };
    let current = root
        .query_selector(".slide.is-current")
        .ok()
        .flatten()
        .and_then(|s| s.get_attribute("data-slide-id"));
    if current.as_deref() != Some(first) {
        return;
    }
    let Some(copy) = root
        .clone_node_with_deep(true)
        .ok()
        .and_then(|n| n.dyn_into::<Element>().ok())
    else {
        return;
    };
    strip(&copy);
    let win = dom::window();
    let size = |v: Result<wasm_bindgen::JsValue, _>| {
        v.ok().and_then(|v| v.as_f64()).unwrap_or(0.0).round() as u32
    };
    let entry = Entry {
        page: page(),
        shell,
        w: size(win.inner_width()),
        h: size(win.inner_height()),
        from: meta.from,
        until: meta.until,
        lang: meta.lang,
        title: meta.title,
        bundle: meta.bundle,
        html: copy.outer_html(),
    };
    match snap::with_entry(dom::local_get(STORAGE_KEY).as_deref(), &entry) {
        Some(list) => {
            dom::local_set(STORAGE_KEY, &list);
            super::mark("edetail:snapshot-saved");
        }
        None => forget(),
    }
}

/// Make the clone a picture: no parts that take input or speak, no ids or test ids
/// (they belong to the player's own elements), no blob URLs (they die with the page).
fn strip(copy: &Element) {
    each(copy, LEFT_OUT, |e| e.remove());
    for attr in ["id", "data-testid"] {
        let _ = copy.remove_attribute(attr);
        each(copy, &format!("[{attr}]"), |e| {
            let _ = e.remove_attribute(attr);
        });
    }
    for attr in ["src", "poster"] {
        each(copy, &format!("[{attr}^='blob:']"), |e| {
            let _ = e.remove_attribute(attr);
        });
    }
}

fn each(root: &Element, css: &str, mut f: impl FnMut(&Element)) {
    let Ok(list) = root.query_selector_all(css) else {
        return;
    };
    for i in 0..list.length() {
        if let Some(e) = list.item(i).and_then(|n| n.dyn_into::<Element>().ok()) {
            f(&e);
        }
    }
}
