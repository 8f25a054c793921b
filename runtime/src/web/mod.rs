//! The Yew UI (wasm32 only): [`App`] loads and admits the bundle, then mounts the
//! [`player::Player`]; any refusal is a full-screen, localized screen, never a blank page.

mod dom;
mod enhance;
mod icons;
mod load;
mod player;
mod snapshot;

use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use yew::prelude::*;

use crate::check::Refusal;
use crate::i18n::{K, Lang, approval_window, t};
use crate::options::Options;
use load::Loaded;

/// `performance.mark(name)`: the boot's milestones for the benchmark
/// (`edetail:start`, `edetail:loaded`, then the player's `edetail:first-slide`).
pub fn mark(name: &str) {
    if let Some(p) = dom::window().performance() {
        let _ = p.mark(name);
    }
}

pub fn start() {
    mark("edetail:start");
    // boot.js is an `async` module script, first in `<head>`: it runs as soon as it
    // and the wasm are in, without waiting for the stylesheet or the end of parsing.
    // The parser is nearly always done by now (the page is ~1 KB); if not, mount once
    // it is, so that `<body>` and `#boot` exist.
    let doc = dom::document();
    if doc.ready_state() == "loading" || doc.body().is_none() {
        let once = Closure::once_into_js(mount);
        let _ = doc.add_event_listener_with_callback("DOMContentLoaded", once.unchecked_ref());
        return;
    }
    mount();
}

fn mount() {
    let doc = dom::document();
    let root = doc.create_element("div").expect("div");
    root.set_id("app");
    if let Some(body) = doc.body() {
        let _ = body.append_child(&root);
    }
    yew::Renderer::<App>::with_root(root).render();
    if let Some(boot) = doc.get_element_by_id("boot") {
        boot.remove();
    }
}

pub enum Msg {
    Loaded(Box<Result<Loaded, Refusal>>),
    Retry,
    PreviewStatus(String),
}

pub struct App {
    state: State,
    opts: Options,
    preview_version: Option<String>,
    diagnostics: Option<String>,
    _poll: Option<Closure<dyn FnMut()>>,
}

enum State {
    Loading,
    Refused(Refusal),
    Ready(Rc<Loaded>),
}

impl Component for App {
    type Message = Msg;
    type Properties = ();

    fn create(ctx: &Context<Self>) -> Self {
        let query = dom::window().location().search().unwrap_or_default();
        let opts = Options::from_query(&query);
        let o = opts.clone();
        ctx.link()
            .send_future(async move { Msg::Loaded(Box::new(load::load(o).await)) });
        let poll = opts.live_reload.then(|| {
            let link = ctx.link().clone();
            let cb = Closure::<dyn FnMut()>::new(move || {
                let link = link.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(s) = dom::fetch_text("/__preview/status", None).await {
                        link.send_message(Msg::PreviewStatus(s));
                    }
                });
            });
            let _ = dom::window().set_interval_with_callback_and_timeout_and_arguments_0(
                cb.as_ref().unchecked_ref(),
                1000,
            );
            cb
        });
        App {
            state: State::Loading,
            opts,
            preview_version: None,
            diagnostics: None,
            _poll: poll,
        }
    }

    fn update(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
        match msg {
            Msg::Loaded(r) => {
                mark("edetail:loaded");
                match *r {
                    Ok(l) => {
                        let lang = lang_for(&self.opts, &l.bundle.deck.locale);
                        dom::document()
                            .document_element()
                            .map(|e| e.set_attribute("lang", lang.tag()));
                        dom::document().set_title(&l.bundle.deck.title);
                        self.state = State::Ready(Rc::new(l));
                    }
                    Err(r) => {
                        // The refusal replaces the copy; a bundle that fails its checks
                        // is not shown from its copy again (a network failure keeps it).
                        snapshot::remove();
                        if !matches!(r, Refusal::LoadFailed(_)) {
                            snapshot::forget();
                        }
                        self.state = State::Refused(r);
                    }
                }
            }
            Msg::Retry => {
                self.state = State::Loading;
                let o = self.opts.clone();
                ctx.link()
                    .send_future(async move { Msg::Loaded(Box::new(load::load(o).await)) });
            }
            Msg::PreviewStatus(s) => {
                let v: serde_json::Value = crate::json::from_str(&s).unwrap_or_default();
                // Compact JSON text of the value (as `Value`'s `Display`, without linking it).
                let version = v.get("version").and_then(|x| serde_json::to_string(x).ok());
                let diags = v
                    .get("diagnostics")
                    .and_then(|d| d.as_str())
                    .filter(|d| !d.trim().is_empty())
                    .map(str::to_string);
                let changed = self.diagnostics != diags;
                self.diagnostics = diags;
                match (&self.preview_version, version) {
                    (None, Some(v)) => self.preview_version = Some(v),
                    (Some(old), Some(v)) if *old != v => {
                        let _ = dom::window().location().reload();
                    }
                    _ => {}
                }
                return changed;
            }
        }
        true
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        let diag = self.diagnostics.as_ref().map(|d| {
            html! {
                <div class="diagnostics" role="alert" data-testid="preview-diagnostics">
                    <h2>{ t(Lang::En, K::Diagnostics) }</h2>
                    <pre>{ d }</pre>
                </div>
            }
        });
        let body = match &self.state {
            // boot.js shows the copy of this page's first view (crate::snapshot): no
            // loading screen over it.
            State::Loading if snapshot::showing() => html! {},
            State::Loading => {
                let lang = lang_for(&self.opts, "");
                html! {
                    <div class="boot" role="status" data-testid="loading">
                        <div class="spinner" aria-hidden="true"></div>
                        <p>{ t(lang, K::Loading) }</p>
                    </div>
                }
            }
            State::Refused(r) => refusal_screen(
                r,
                lang_for(&self.opts, ""),
                ctx.link().callback(|_| Msg::Retry),
            ),
            State::Ready(l) => html! { <player::Player loaded={l.clone()} /> },
        };
        html! { <>{ body }{ for diag }</> }
    }
}

fn lang_for(opts: &Options, locale: &str) -> Lang {
    match opts.lang.as_deref() {
        Some(l) => Lang::from_locale(l),
        None if !locale.is_empty() => Lang::from_locale(locale),
        // Before the bundle is known (loading, refusals), follow the browser.
        None => Lang::from_locale(&dom::window().navigator().language().unwrap_or_default()),
    }
}

/// The full-screen refusal: what happened, in plain words, and what to do.
pub fn refusal_screen(r: &Refusal, lang: Lang, retry: Callback<MouseEvent>) -> Html {
    let (kind, reason, detail, can_retry) = match r {
        Refusal::Expired { code, from, until } => (
            "expired",
            t(lang, K::Expired),
            Some(format!(
                "{} {code} · {}",
                t(lang, K::ApprovalCode),
                approval_window(lang, from, until)
            )),
            false,
        ),
        Refusal::NotYetValid { code, from, until } => (
            "not-yet-valid",
            t(lang, K::NotYetValid),
            Some(format!(
                "{} {code} · {}",
                t(lang, K::ApprovalCode),
                approval_window(lang, from, until)
            )),
            false,
        ),
        Refusal::Integrity(m) => (
            "integrity",
            t(lang, K::HashMismatch),
            Some(m.clone()),
            false,
        ),
        Refusal::UnsupportedSchema(m) => (
            "schema",
            t(lang, K::UnsupportedSchema),
            Some(m.clone()),
            false,
        ),
        Refusal::LoadFailed(m) => ("load", t(lang, K::LoadFailed), Some(m.clone()), true),
        Refusal::NoBundle => ("no-bundle", t(lang, K::NoBundle), None, false),
        Refusal::Unsigned(m) => ("unsigned", t(lang, K::Unsigned), Some(m.clone()), false),
        Refusal::UntrustedSigner(m) => (
            "untrusted-signer",
            t(lang, K::UntrustedSigner),
            Some(m.clone()),
            false,
        ),
        Refusal::BadSignature(m) => (
            "bad-signature",
            t(lang, K::BadSignature),
            Some(m.clone()),
            false,
        ),
    };
    html! {
        <main class="refusal" role="alert" data-testid="refusal" data-reason={kind}>
            <div class="refusal-card">
                <div class="refusal-icon" aria-hidden="true">{ icons::icon("stop") }</div>
                <h1>{ t(lang, K::RefusedTitle) }</h1>
                <p class="refusal-reason">{ reason }</p>
                if let Some(d) = detail { <p class="refusal-detail">{ d }</p> }
                if can_retry {
                    <button class="btn primary" data-testid="retry" onclick={retry}>{ "↻ " }{ t(lang, K::Retry) }</button>
                }
            </div>
        </main>
    }
}
