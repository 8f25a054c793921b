//! Small browser helpers (wasm32 only).

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Element, HtmlElement};

pub fn window() -> web_sys::Window {
    web_sys::window().expect("no window")
}

pub fn document() -> web_sys::Document {
    window().document().expect("no document")
}

pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Today's UTC date, ISO `YYYY-MM-DD`, from the device clock.
pub fn today() -> String {
    crate::check::iso_date(now_ms())
}

/// Run `f` once the next frame has been painted (`requestAnimationFrame`, then a
/// task): work that the first paint does not need waits for it.
pub fn after_paint(f: impl FnOnce() + 'static) {
    let task = Closure::once_into_js(move || {
        crate::tracking::web::set_timeout(0, f);
    });
    if window()
        .request_animation_frame(task.unchecked_ref())
        .is_err()
    {
        let _ =
            window().set_timeout_with_callback_and_timeout_and_arguments_0(task.unchecked_ref(), 0);
    }
}

pub fn local_get(key: &str) -> Option<String> {
    window()
        .local_storage()
        .ok()
        .flatten()
        .and_then(|s| s.get_item(key).ok().flatten())
}

pub fn local_set(key: &str, value: &str) {
    if let Some(s) = window().local_storage().ok().flatten() {
        let _ = s.set_item(key, value);
    }
}

fn js_msg(v: &JsValue) -> String {
    v.as_string()
        .or_else(|| {
            js_sys::Reflect::get(v, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| "network error".into())
}

/// GET `url` (with an optional bearer token); returns the body bytes of a 2xx response.
pub async fn fetch_bytes(url: &str, token: Option<&str>) -> Result<Vec<u8>, String> {
    let buf = fetch_buffer(url, token).await?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// How long a GET may wait for the server's answer (status and headers; the body may
/// then take its time): a server that accepts the connection and never answers (a
/// captive portal, "lie-fi") gets a clear load error instead of an endless spinner.
pub const ANSWER_WITHIN_MS: u32 = 15_000;

/// [`fetch_bytes`] without copying the body into wasm memory.
pub async fn fetch_buffer(url: &str, token: Option<&str>) -> Result<js_sys::ArrayBuffer, String> {
    fetch_buffer_within(url, token, ANSWER_WITHIN_MS).await
}

/// [`fetch_buffer`] waiting at most `answer_ms` for the answer.
pub async fn fetch_buffer_within(
    url: &str,
    token: Option<&str>,
    answer_ms: u32,
) -> Result<js_sys::ArrayBuffer, String> {
    let init = web_sys::RequestInit::new();
    init.set_method("GET");
    if let Some(t) = token {
        let h = web_sys::Headers::new().map_err(|e| js_msg(&e))?;
        h.set("Authorization", &format!("Bearer {t}"))
            .map_err(|e| js_msg(&e))?;
        init.set_headers(&h);
    }
    let (resp, expired) = match token.is_none().then(|| take_early(url)).flatten() {
        Some(early) => answer_within(early, answer_ms).await,
        None => {
            let deadline = Deadline::arm(&init, answer_ms);
            let resp = JsFuture::from(window().fetch_with_str_and_init(url, &init)).await;
            let expired = deadline.as_ref().is_some_and(Deadline::expired);
            (resp, expired)
        }
    };
    let resp = resp.map_err(|e| {
        if expired {
            format!("{url}: no answer within {} s", answer_ms / 1000)
        } else {
            format!("{url}: {}", js_msg(&e))
        }
    })?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "not a response".to_string())?;
    if !resp.ok() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(|e| js_msg(&e))?)
        .await
        .map_err(|e| js_msg(&e))?;
    buf.dyn_into()
        .map_err(|_| format!("{url}: not an ArrayBuffer"))
}

/// The request boot.js started for `url` before the wasm ran (`globalThis.__edetailEarly`,
/// keyed by absolute URL), taken at most once: its response is the page's only copy.
fn take_early(url: &str) -> Option<js_sys::Promise> {
    let map: js_sys::Map = js_sys::Reflect::get(&js_sys::global(), &"__edetailEarly".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let href = window().location().href().ok()?;
    let key = JsValue::from_str(&web_sys::Url::new_with_base(url, &href).ok()?.href());
    let p = map.get(&key);
    map.delete(&key);
    p.dyn_into().ok()
}

/// What the timer of [`answer_within`] rejects with.
const NO_ANSWER: &str = "edetail: no answer in time";

/// Await a request started elsewhere (it cannot be aborted from here), giving up after
/// `ms`; `true` when it was the time that ran out.
async fn answer_within(request: js_sys::Promise, ms: u32) -> (Result<JsValue, JsValue>, bool) {
    let timer = std::rc::Rc::new(std::cell::Cell::new(None));
    let set = timer.clone();
    let timeout = js_sys::Promise::new(&mut |_, reject| {
        let fire = Closure::once_into_js(move || {
            let _ = reject.call1(&JsValue::NULL, &NO_ANSWER.into());
        });
        set.set(
            window()
                .set_timeout_with_callback_and_timeout_and_arguments_0(
                    fire.unchecked_ref(),
                    i32::try_from(ms).unwrap_or(i32::MAX),
                )
                .ok(),
        );
    });
    let r = JsFuture::from(js_sys::Promise::race(&js_sys::Array::of2(
        &request, &timeout,
    )))
    .await;
    if let Some(t) = timer.get() {
        window().clear_timeout_with_handle(t);
    }
    let expired = matches!(&r, Err(e) if e.as_string().as_deref() == Some(NO_ANSWER));
    (r, expired)
}

/// Aborts a request whose answer has not come within its time (an `AbortController`
/// and a timer, cleared when dropped; `AbortSignal.timeout` needs Safari 16).
struct Deadline {
    controller: web_sys::AbortController,
    timer: i32,
    /// The timer's callback, freed with the deadline.
    _abort: Closure<dyn FnMut()>,
}

impl Deadline {
    fn arm(init: &web_sys::RequestInit, ms: u32) -> Option<Deadline> {
        let controller = web_sys::AbortController::new().ok()?;
        init.set_signal(Some(&controller.signal()));
        let c = controller.clone();
        let abort = Closure::once(move || c.abort());
        let timer = window()
            .set_timeout_with_callback_and_timeout_and_arguments_0(
                abort.as_ref().unchecked_ref(),
                i32::try_from(ms).unwrap_or(i32::MAX),
            )
            .ok()?;
        Some(Deadline {
            controller,
            timer,
            _abort: abort,
        })
    }

    fn expired(&self) -> bool {
        self.controller.signal().aborted()
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        window().clear_timeout_with_handle(self.timer);
    }
}

/// Lower-case hex SHA-256 of `data` (an `ArrayBuffer` or typed array) by WebCrypto
/// (`crypto.subtle.digest`): the browser's native code, and no SHA-256 in the wasm.
/// WebCrypto exists only in secure contexts (https, localhost), like the service
/// worker and the Ed25519 signature check.
pub async fn sha256_hex(data: &js_sys::Object) -> Result<String, String> {
    sha256_finish(sha256_start(data)?).await
}

fn sha256_fail(e: JsValue) -> String {
    let m = js_sys::Reflect::get(&e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "error".into());
    format!("this browser cannot compute SHA-256 (WebCrypto; https or localhost needed): {m}")
}

/// [`sha256_hex`] in two halves: start the digest (WebCrypto copies `data` now and
/// hashes it off the wasm), do other work, then [`sha256_finish`].
pub fn sha256_start(data: &js_sys::Object) -> Result<js_sys::Promise, String> {
    let crypto = window().crypto().map_err(sha256_fail)?;
    if !js_sys::Reflect::get(&crypto, &"subtle".into()).is_ok_and(|s| s.is_object()) {
        return Err(sha256_fail("crypto.subtle is not available".into()));
    }
    crypto
        .subtle()
        .digest_with_str_and_buffer_source("SHA-256", data)
        .map_err(sha256_fail)
}

pub async fn sha256_finish(digest: js_sys::Promise) -> Result<String, String> {
    let digest = JsFuture::from(digest).await.map_err(sha256_fail)?;
    Ok(crate::check::hex(
        &js_sys::Uint8Array::new(&digest).to_vec(),
    ))
}

pub async fn fetch_text(url: &str, token: Option<&str>) -> Result<String, String> {
    fetch_text_within(url, token, ANSWER_WITHIN_MS).await
}

/// [`fetch_text`] waiting at most `answer_ms` for the answer.
pub async fn fetch_text_within(
    url: &str,
    token: Option<&str>,
    answer_ms: u32,
) -> Result<String, String> {
    let buf = fetch_buffer_within(url, token, answer_ms).await?;
    String::from_utf8(js_sys::Uint8Array::new(&buf).to_vec())
        .map_err(|_| format!("{url}: not UTF-8 text"))
}

/// The element itself or its closest ancestor matching `sel`.
pub fn closest(target: Option<web_sys::EventTarget>, sel: &str) -> Option<Element> {
    let el: Element = target?.dyn_into().ok()?;
    el.closest(sel).ok().flatten()
}

pub fn focus(el: &Element) {
    if let Some(h) = el.dyn_ref::<HtmlElement>() {
        let _ = h.focus();
    }
}

/// Focusable elements inside `root`, in document order.
pub fn focusables(root: &Element) -> Vec<HtmlElement> {
    let sel = "a[href],button:not([disabled]),input:not([disabled]),textarea:not([disabled]),select:not([disabled]),[tabindex]:not([tabindex='-1']),video[controls],summary";
    let mut out = Vec::new();
    if let Ok(list) = root.query_selector_all(sel) {
        for i in 0..list.length() {
            if let Some(h) = list.item(i).and_then(|n| n.dyn_into::<HtmlElement>().ok()) {
                out.push(h);
            }
        }
    }
    out
}

/// Keep a CSS colour to `#hex` (the compiler validates; the runtime stays defensive).
pub fn safe_color(c: &str, fallback: &'static str) -> String {
    let ok = c.starts_with('#')
        && (c.len() == 4 || c.len() == 7)
        && c[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        c.to_string()
    } else {
        fallback.to_string()
    }
}

/// A font-family list without characters that could end the declaration.
pub fn safe_font(f: &str) -> String {
    f.chars()
        .filter(|c| !matches!(c, ';' | '{' | '}' | '<' | '>' | '\\'))
        .collect()
}
