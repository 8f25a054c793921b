//! The presentation: stage with the current slide and its neighbours, controls,
//! overlays, the MR presenter tray, call start/summary, self-serve consent and forms,
//! and the preview tracking inspector.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use edetail_format::bundle::{QuestionKind, QuestionPurpose, Slide};
use edetail_format::event::MAX_TEXT_BYTES;
use edetail_format::{Channel, Component, Event, EventKind, NavVia};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{Element, HtmlElement, HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;

use super::enhance::{self, AnswerState};
use super::icons::icon;
use super::load::Loaded;
use super::{dom, refusal_screen};
use crate::check::Refusal;
use crate::i18n::{self, K, Lang, t};
use crate::nav::{Nav, Outcome};
use crate::options::Mode;
use crate::scale::{self, Fit};
use crate::sequence::{self, Sequence};
use crate::summary::CallSummary;
use crate::swipe::{Swipe, SwipeTracker};
use crate::tracking::{SessionContext, Subscription, SyncStatus, Tracker};

/// Height of the control bar, CSS px (plus the bottom safe-area inset).
const BAR_PX: f64 = 64.0;
/// Width kept free on the right of the stage for the tray handle in MR and preview
/// modes (the handle's width in style.css).
const HANDLE_PX: f64 = 44.0;

/// How long after the player starts the background work begins: the service worker's
/// registration and install (it precaches the runtime and the bundle) and the delivery
/// of events left by earlier sessions. On a first open with 2 cores that work
/// otherwise runs while the first view is rastered: registering right after the first
/// paint, the first slide was presented 25-60 ms later (runtime_bench, cold,
/// BENCHMARKS.md "Session 8").
const BACKGROUND_START_MS: u32 = 1_000;
/// Events kept for the inspector.
const INSPECTOR_MAX: usize = 100;
/// Where a swipe may not start: interactive regions own their gestures.
const NO_SWIPE: &str = "input,textarea,select,video,.ed-chart,.ed-question,.ed-tablist,.ed-accordion,[data-noswipe],.overlay,.tray";

#[derive(Properties, PartialEq)]
pub struct Props {
    pub loaded: Rc<Loaded>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    StartCall,
    Presenting,
    Summary,
}

#[derive(Clone, PartialEq)]
pub enum Overlay {
    Popup { id: String, opened: f64 },
    References { highlight: Option<String> },
    Isi,
    Zoom { src: String, alt: String },
    Overview,
    Ask,
    Visit,
    Sequence,
    Consent,
}

pub enum Msg {
    Next(NavVia),
    Prev(NavVia),
    Back,
    Jump(String),
    SlideClick(MouseEvent),
    Key(KeyboardEvent),
    Resize,
    PointerDown(PointerEvent),
    PointerUp(PointerEvent),
    PointerCancel,
    Open(Overlay),
    Close,
    Sync(SyncStatus),
    Tracked(Box<Event>),
    ToggleTray,
    ToggleInspector,
    SetHcp(String),
    SetRemote(bool),
    StartCall,
    EndCall,
    ResumeCall,
    CloseCall,
    Reaction(i8),
    SetQuestion(String),
    SaveQuestion,
    PickSequence(String),
    SeqShift(usize, isize),
    SeqRemove(usize),
    SeqAdd(String),
    SeqName(String),
    SeqSave,
    Consent(bool),
    FormText(String),
    FormTime(String),
    SubmitAsk,
    SubmitVisit,
    IsiScroll(Event2),
    Media(web_sys::Event),
    Rerender,
    /// The first slide is on screen: mount its neighbours, ask for consent if due.
    Neighbours,
    AssetReady(String, String),
    AssetBad(String),
    /// The service worker found an asset (`detail` URL) whose bytes do not match its
    /// sha256 name (a video it was asked to stream, a poster, ...).
    Integrity(String),
}

/// A callback handed to JS that takes one argument.
type JsCallback = Closure<dyn FnMut(wasm_bindgen::JsValue)>;

/// A DOM event wrapper (keeps `Msg` readable).
pub type Event2 = web_sys::Event;

pub struct Player {
    lang: Lang,
    mode: Mode,
    /// Slide HTML with asset references rewritten, made when a slide is first mounted.
    html: std::cell::RefCell<HashMap<String, AttrValue>>,
    nav: Nav,
    phase: Phase,
    overlay: Option<Overlay>,
    tray: bool,
    inspector: bool,
    tracker: Option<Tracker>,
    subs: Vec<Subscription>,
    sync: SyncStatus,
    events: Vec<Event>,
    summary: CallSummary,
    fit: Fit,
    announce: String,
    swipe: SwipeTracker,
    answers: BTreeMap<String, AnswerState>,
    quartiles: HashMap<String, u8>,
    isi_depth: u8,
    entered_at: f64,
    hcp: String,
    hcp_error: bool,
    remote: bool,
    sequences: Vec<Sequence>,
    seq_name: String,
    seq_draft: Vec<String>,
    seq_notice: Option<String>,
    question: String,
    question_saved: bool,
    consent: Option<bool>,
    form_text: String,
    form_time: String,
    form_sent: bool,
    focus_dialog: bool,
    return_focus: Option<HtmlElement>,
    stage: NodeRef,
    slides_ref: NodeRef,
    dialog_ref: NodeRef,
    refusal: Option<Refusal>,
    /// Verified image assets: bundle path -> blob URL.
    assets: HashMap<String, String>,
    pending: std::collections::HashSet<String>,
    /// Asset files (`<sha256>.<ext>`) the service worker reported as tampered: their
    /// videos are never given a source again.
    blocked: std::collections::HashSet<String>,
    /// Reports the stage's size changes (and the callback it calls).
    resize_obs: Option<(web_sys::ResizeObserver, JsCallback)>,
    /// The stage element `resize_obs` watches.
    observed: Option<Element>,
    /// `performance.mark("edetail:first-slide")` done.
    marked: bool,
    /// The neighbouring slides are mounted: from the frame after the first slide's (the
    /// first frame lays out one slide, not three).
    neighbours: bool,
    _listeners: Vec<Closure<dyn FnMut(web_sys::Event)>>,
}

/// A `<button>`: one copy of the element-building code for the player's many buttons
/// (each `html!` element expands to its own allocation and attribute code inline).
/// `None` leaves the attribute out.
fn button(
    class: &'static str,
    id: Option<&'static str>,
    testid: Option<&'static str>,
    label: Option<&'static str>,
    disabled: bool,
    onclick: Callback<MouseEvent>,
    body: Html,
) -> Html {
    html! {
        <button class={class} id={id} data-testid={testid} aria-label={label} disabled={disabled} {onclick}>{ body }</button>
    }
}

/// An icon followed by its text label (the bar's text buttons).
fn icon_label(name: &str, text: &'static str) -> Html {
    html! { <>{ icon(name) }<span class="label">{ text }</span></> }
}

fn consent_key(deck: &str) -> String {
    format!("edetail.consent.{deck}")
}

/// Cut free text to the event schema's limit on a char boundary.
fn clip(s: &str) -> String {
    let s = s.trim();
    if s.len() <= MAX_TEXT_BYTES {
        return s.to_string();
    }
    let mut end = MAX_TEXT_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl Player {
    fn b<'a>(&self, ctx: &'a Context<Self>) -> &'a edetail_format::Bundle {
        &ctx.props().loaded.bundle
    }

    fn slide<'a>(&self, ctx: &'a Context<Self>, id: &str) -> Option<&'a Slide> {
        ctx.props().loaded.bundle.slide(id)
    }

    fn emit(&self, kind: EventKind) {
        if let Some(tr) = &self.tracker {
            tr.emit(kind);
        }
    }

    fn start_tracker(
        &mut self,
        ctx: &Context<Self>,
        channel: Channel,
        hcp: Option<String>,
        allowed: bool,
        sequence: Option<String>,
    ) {
        let l = &ctx.props().loaded;
        let b = &l.bundle;
        let mode = match self.mode {
            Mode::Preview => "preview",
            Mode::SelfServe => "self_serve",
            Mode::MrLed if channel == Channel::Remote => "remote",
            Mode::MrLed => "mr_led",
        };
        let sc = SessionContext {
            deck_id: b.deck.id.clone(),
            deck_version: b.deck.version.clone(),
            bundle_hash: l.hash.clone(),
            channel,
            mode: mode.into(),
            sequence,
            rep_id: None,
            hcp_id: hcp,
            device_id: None,
            preview: b.preview || self.mode == Mode::Preview,
            endpoint: l.opts.endpoint.clone(),
            auth_token: l.token.clone(),
            view_threshold_ms: b.tracking.view_threshold_ms,
            tracking_allowed: allowed,
        };
        let tr = Tracker::start(sc);
        let scb = ctx.link().callback(Msg::Sync);
        let ecb = ctx.link().callback(|e: Event| Msg::Tracked(Box::new(e)));
        self.sync = tr.status();
        self.subs = vec![
            tr.subscribe_status(move |s| scb.emit(s.clone())),
            tr.subscribe_events(move |e| ecb.emit(e.clone())),
        ];
        let cur = self.nav.current().to_string();
        if let Some(s) = self.slide(ctx, &cur) {
            tr.enter_slide(&s.id, &s.content_hash, NavVia::Start);
        }
        self.entered_at = dom::now_ms();
        self.tracker = Some(tr);
    }

    fn stop_tracker(&mut self, reason: &str) {
        if let Some(tr) = self.tracker.take() {
            tr.end_session(reason);
        }
        self.subs.clear();
    }

    /// Apply a navigation outcome: tracking, announcement, overlays.
    fn after(&mut self, ctx: &Context<Self>, out: Outcome, via: NavVia) -> bool {
        match out {
            Outcome::Stay => false,
            Outcome::Step(n) => {
                self.emit(EventKind::BuildStep { step: n });
                true
            }
            Outcome::Moved { to, .. } => {
                if let Some(s) = self.slide(ctx, &to) {
                    if let Some(tr) = &self.tracker {
                        tr.enter_slide(&s.id, &s.content_hash, via);
                    }
                    self.announce = match self.nav.position() {
                        Some(n) => {
                            i18n::slide_announcement(self.lang, n, self.nav.total(), &s.title)
                        }
                        None => i18n::detail_announcement(self.lang, &s.title),
                    };
                }
                self.entered_at = dom::now_ms();
                self.question_saved = false;
                if self.overlay.is_some() && self.overlay != Some(Overlay::Consent) {
                    self.finish_overlay();
                }
                true
            }
        }
    }

    fn open(&mut self, ov: Overlay) {
        if self.overlay.is_some() {
            // One overlay at a time (a citation inside a popup opens the references):
            // the first one's close events still go out; focus returns to its opener.
            self.finish_overlay();
        } else if let Some(Ok(a)) = dom::document()
            .active_element()
            .map(|e| e.dyn_into::<HtmlElement>())
        {
            self.return_focus = Some(a);
        }
        match &ov {
            Overlay::Popup { id, .. } => self.emit(EventKind::PopupOpen {
                component_id: id.clone(),
            }),
            Overlay::References { highlight: None } => self.emit(EventKind::ReferencesOpen {}),
            Overlay::Isi => {
                self.isi_depth = 0;
                self.emit(EventKind::IsiOpen {});
            }
            Overlay::Ask | Overlay::Visit => {
                self.form_text.clear();
                self.form_time.clear();
                self.form_sent = false;
            }
            _ => {}
        }
        self.overlay = Some(ov);
        self.focus_dialog = true;
    }

    fn close(&mut self) {
        self.finish_overlay();
        if let Some(f) = self.return_focus.take() {
            let _ = f.focus();
        }
        self.ask_consent_if_due();
    }

    /// A self-serve visitor who has not answered is asked, once the first view is up
    /// (`Msg::Neighbours`) and no other dialog is open (one opened in that first frame
    /// is closed first).
    fn ask_consent_if_due(&mut self) {
        if self.mode == Mode::SelfServe
            && self.consent.is_none()
            && self.neighbours
            && self.overlay.is_none()
        {
            self.overlay = Some(Overlay::Consent);
            self.focus_dialog = true;
        }
    }

    /// Take the open overlay down, emitting its closing events.
    fn finish_overlay(&mut self) {
        match self.overlay.take() {
            Some(Overlay::Popup { id, opened }) => self.emit(EventKind::PopupClose {
                component_id: id,
                open_ms: (dom::now_ms() - opened).max(0.0) as u64,
            }),
            Some(Overlay::Isi) if self.isi_depth > 0 => {
                self.emit(EventKind::IsiScroll {
                    depth_pct: self.isi_depth.min(100),
                });
            }
            _ => {}
        }
    }

    fn current_components<'a>(&self, ctx: &'a Context<Self>) -> &'a [Component] {
        self.slide(ctx, self.nav.current())
            .map(|s| s.components.as_slice())
            .unwrap_or(&[])
    }

    fn current_slide_el(&self) -> Option<Element> {
        let root = self.slides_ref.cast::<Element>()?;
        root.query_selector(".slide.is-current").ok().flatten()
    }

    /// Clicks inside the current slide: one delegated handler for every component.
    fn slide_click(&mut self, ctx: &Context<Self>, e: MouseEvent) -> bool {
        let target = e.target();
        let Some(el) = dom::closest(target.clone(), "[data-component]") else {
            return false;
        };
        // Only the current slide reacts (neighbours are inert anyway).
        if el
            .closest(".slide.is-current, .overlay.popup")
            .ok()
            .flatten()
            .is_none()
        {
            return false;
        }
        let id = el.get_attribute("data-component").unwrap_or_default();
        let Some(c) = self
            .current_components(ctx)
            .iter()
            .find(|c| c.id() == id)
            .cloned()
        else {
            return false;
        };
        match c {
            Component::Citation { reference, .. } => {
                self.emit(EventKind::CitationOpen {
                    component_id: id,
                    reference_id: reference.clone(),
                });
                self.open(Overlay::References {
                    highlight: Some(reference),
                });
                true
            }
            Component::Link {
                target, drilldown, ..
            } => {
                e.prevent_default();
                self.emit(EventKind::LinkFollow {
                    component_id: id,
                    target: target.clone(),
                    drilldown,
                });
                let out = self.nav.follow(&target);
                let via = if drilldown {
                    NavVia::Drilldown
                } else {
                    NavVia::Link
                };
                self.after(ctx, out, via)
            }
            Component::Popup { .. } => {
                self.open(Overlay::Popup {
                    id,
                    opened: dom::now_ms(),
                });
                true
            }
            Component::Tabs {
                accordion, tabs, ..
            } => {
                if accordion {
                    if let Some(d) = dom::closest(target, "summary")
                        .and_then(|s| s.parent_element())
                        .filter(|d| !d.has_attribute("open"))
                        && let Some(tab) = d.get_attribute("data-tab")
                    {
                        self.emit(EventKind::TabSelect {
                            component_id: id,
                            tab_id: tab,
                        });
                    }
                    return false;
                }
                let Some(btn) = dom::closest(target, "[role=tab][data-tab]") else {
                    return false;
                };
                let tab = btn.get_attribute("data-tab").unwrap_or_default();
                if !tabs.iter().any(|t| t.id == tab) {
                    return false;
                }
                select_tab(&el, &tab);
                self.emit(EventKind::TabSelect {
                    component_id: id,
                    tab_id: tab,
                });
                false
            }
            Component::Chart { .. } => {
                if let Some(b) = dom::closest(target.clone(), "[data-act=table]") {
                    let on = el.class_list().toggle("show-table").unwrap_or(false);
                    let _ = b.set_attribute("aria-pressed", if on { "true" } else { "false" });
                    b.set_text_content(Some(t(
                        self.lang,
                        if on { K::ShowChart } else { K::ShowTable },
                    )));
                    self.emit(EventKind::ChartInteraction {
                        component_id: id,
                        action: if on { "table" } else { "chart" }.into(),
                        detail: None,
                    });
                } else if let Some(s) = dom::closest(target, "[data-series]") {
                    self.emit(EventKind::ChartInteraction {
                        component_id: id,
                        action: "point".into(),
                        detail: s.get_attribute("data-series"),
                    });
                }
                false
            }
            Component::Question { .. } => {
                self.question_click(&el, &c, target);
                false
            }
            Component::Image { src, alt, zoom, .. } => {
                if zoom && let Some(url) = crate::options::asset_url(&ctx.props().loaded.base, &src)
                {
                    self.emit(EventKind::Zoom { component_id: id });
                    self.open(Overlay::Zoom { src: url, alt });
                    return true;
                }
                false
            }
            Component::Video { .. } => false,
        }
    }

    fn question_click(&mut self, q: &Element, c: &Component, target: Option<web_sys::EventTarget>) {
        let Component::Question {
            id,
            purpose,
            kind,
            options,
            correct,
            ..
        } = c
        else {
            return;
        };
        let state = self.answers.entry(id.clone()).or_default();
        if state.submitted {
            return;
        }
        let submit = if let Some(opt) = dom::closest(target.clone(), ".ed-option[data-option]") {
            let v = opt.get_attribute("data-option").unwrap_or_default();
            match kind {
                QuestionKind::Multiple => {
                    if let Some(i) = state.selected.iter().position(|s| *s == v) {
                        state.selected.remove(i);
                    } else {
                        state.selected.push(v);
                    }
                    false
                }
                _ => {
                    state.selected = vec![v];
                    true
                }
            }
        } else if dom::closest(target, "[data-act=submit]").is_some() {
            match kind {
                QuestionKind::Text => {
                    let text = q
                        .query_selector("textarea")
                        .ok()
                        .flatten()
                        .and_then(|t| t.dyn_into::<HtmlTextAreaElement>().ok())
                        .map(|t| t.value())
                        .unwrap_or_default();
                    if text.trim().is_empty() {
                        return;
                    }
                    state.text = Some(clip(&text));
                    true
                }
                _ => !state.selected.is_empty(),
            }
        } else {
            false
        };
        if submit {
            state.submitted = true;
            if *purpose == QuestionPurpose::Quiz {
                state.correct = Some(crate::quiz::is_correct(&state.selected, correct));
            }
        }
        let state = state.clone();
        enhance::show_answer(q, c, &state, self.lang);
        if submit {
            let rating = (*kind == QuestionKind::Rating)
                .then(|| state.selected.first().and_then(|s| s.parse().ok()))
                .flatten();
            self.emit(EventKind::Answer {
                question_id: id.clone(),
                purpose: match purpose {
                    QuestionPurpose::Quiz => "quiz",
                    QuestionPurpose::Poll => "poll",
                    QuestionPurpose::Survey => "survey",
                }
                .into(),
                question_kind: match kind {
                    QuestionKind::Single => "single",
                    QuestionKind::Multiple => "multiple",
                    QuestionKind::Rating => "rating",
                    QuestionKind::Text => "text",
                }
                .into(),
                options_shown: options.iter().map(|o| o.id.clone()).collect(),
                selected: if *kind == QuestionKind::Rating {
                    vec![]
                } else {
                    state.selected.clone()
                },
                rating,
                text: state.text.clone(),
                correct: state.correct,
            });
        } else if let Some(tr) = &self.tracker {
            tr.interaction();
        }
    }

    fn media(&mut self, e: web_sys::Event) {
        let Some(v) = e
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlMediaElement>().ok())
        else {
            return;
        };
        let Some(id) = v.get_attribute("data-component") else {
            return;
        };
        let pos = (v.current_time() * 1000.0).max(0.0) as u64;
        let kind = e.type_();
        let (action, quartile) = match kind.as_str() {
            "play" => ("play", None),
            "pause" if !v.ended() => ("pause", None),
            "seeked" => ("seek", None),
            "ended" => ("complete", None),
            "timeupdate" => {
                let d = v.duration();
                if !(d.is_finite() && d > 0.0) {
                    return;
                }
                let q = ((v.current_time() / d) * 4.0).floor().clamp(0.0, 3.0) as u8;
                let last = self.quartiles.entry(id.clone()).or_insert(0);
                if q == 0 || q <= *last {
                    return;
                }
                *last = q;
                ("quartile", Some(q))
            }
            _ => return,
        };
        self.emit(EventKind::Video {
            component_id: id,
            action: action.into(),
            position_ms: pos,
            quartile,
        });
    }

    fn key(&mut self, ctx: &Context<Self>, e: KeyboardEvent) -> bool {
        let key = e.key();
        if key == "Escape" {
            if matches!(self.overlay, Some(Overlay::Consent)) {
                return false;
            }
            if self.overlay.is_some() {
                self.close();
                return true;
            }
            if self.tray || self.inspector {
                self.tray = false;
                self.inspector = false;
                return true;
            }
            return false;
        }
        if self.overlay.is_some() {
            if key == "Tab"
                && let Some(d) = self.dialog_ref.cast::<Element>()
            {
                let f = dom::focusables(&d);
                let active = dom::document().active_element();
                if let (Some(first), Some(last)) = (f.first(), f.last()) {
                    let at_first = active
                        .as_ref()
                        .is_some_and(|a| a == first.unchecked_ref::<Element>());
                    let at_last = active
                        .as_ref()
                        .is_some_and(|a| a == last.unchecked_ref::<Element>());
                    let outside = !active.as_ref().is_some_and(|a| d.contains(Some(a)));
                    if e.shift_key() && (at_first || outside) {
                        e.prevent_default();
                        let _ = last.focus();
                    } else if !e.shift_key() && (at_last || outside) {
                        e.prevent_default();
                        let _ = first.focus();
                    }
                }
            }
            return false;
        }
        if self.phase != Phase::Presenting {
            return false;
        }
        let target = e.target();
        if dom::closest(
            target.clone(),
            "input,textarea,select,[contenteditable],.tray,.inspector",
        )
        .is_some()
        {
            return false;
        }
        let on_control = dom::closest(target.clone(), "button,a,summary,video,[role=button]");
        if matches!(key.as_str(), "Enter" | " ")
            && let Some(c) = on_control.as_ref().filter(|c| {
                c.has_attribute("data-component")
                    && c.get_attribute("role").as_deref() == Some("button")
            })
        {
            e.prevent_default();
            if let Some(h) = c.dyn_ref::<HtmlElement>() {
                h.click();
            }
            return false;
        }
        if dom::closest(target, ".ed-tablist").is_some() && key.starts_with("Arrow") {
            return false;
        }
        let via = NavVia::Key;
        let out = match key.as_str() {
            "ArrowRight" | "ArrowDown" | "PageDown" => self.nav.next(),
            " " if on_control.is_none() => self.nav.next(),
            "ArrowLeft" | "ArrowUp" | "PageUp" => self.nav.prev(),
            "Home" => self.nav.first(),
            "End" => self.nav.last(),
            "Backspace" if self.nav.can_back() => self.nav.back(),
            _ => return false,
        };
        e.prevent_default();
        let via = if key == "Backspace" {
            NavVia::Back
        } else {
            via
        };
        self.after(ctx, out, via)
    }

    /// Give every `[data-asset]` (images, captions) without a `src` and every
    /// `video[data-poster]` without a poster its verified blob URL, fetching and checking
    /// (sha256 and size against the manifest) the ones not seen yet. A mismatch, or an
    /// asset the manifest does not list, refuses the presentation. Video sources
    /// (`source[data-video]`) get their URL once the service worker, which verifies
    /// video bytes before they play, controls the page (or in preview mode).
    fn fill_assets(&mut self, ctx: &Context<Self>) {
        let Ok(list) = dom::document().query_selector_all(
            "[data-asset]:not([src]),video[data-poster]:not([poster]),source[data-video]:not([src])",
        ) else {
            return;
        };
        let mut can_stream: Option<bool> = None;
        for i in 0..list.length() {
            let Some(el) = list.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
                continue;
            };
            if let Some(url) = el.get_attribute("data-video") {
                if self.blocked.contains(asset_file(&url)) {
                    block_video(&el, self.lang);
                    continue;
                }
                let ok = *can_stream
                    .get_or_insert_with(|| self.mode == Mode::Preview || sw_controls_page());
                if ok {
                    let _ = el.set_attribute("src", &url);
                    if let Some(v) = el
                        .parent_element()
                        .and_then(|p| p.dyn_into::<web_sys::HtmlMediaElement>().ok())
                    {
                        v.load();
                    }
                }
                continue;
            }
            let (attr, path) = match el.get_attribute("data-poster") {
                Some(p) => ("poster", p),
                None => ("src", el.get_attribute("data-asset").unwrap_or_default()),
            };
            match self.assets.get(&path) {
                Some(url) => {
                    let _ = el.set_attribute(attr, url);
                }
                None => self.request_asset(ctx, path),
            }
        }
    }

    /// Fetch and verify an image asset (once), then `Msg::AssetReady` fills it in.
    fn request_asset(&mut self, ctx: &Context<Self>, path: String) {
        if self.assets.contains_key(&path) || !self.pending.insert(path.clone()) {
            return;
        }
        let l = ctx.props().loaded.clone();
        let link = ctx.link().clone();
        wasm_bindgen_futures::spawn_local(async move {
            let msg = match verified_blob(&l, &path).await {
                Ok(url) => Msg::AssetReady(path, url),
                Err(true) => Msg::AssetBad(path),
                // Network trouble: leave the image empty rather than refuse.
                Err(false) => return,
            };
            link.send_message(msg);
        });
    }

    /// Stage width kept free on the right for the tray handle (MR and preview).
    fn gutter(&self) -> f64 {
        if matches!(self.mode, Mode::MrLed | Mode::Preview) {
            HANDLE_PX
        } else {
            0.0
        }
    }

    fn measure(&mut self) -> bool {
        let Some(stage) = self.stage.cast::<Element>() else {
            return false;
        };
        let r = stage.get_bounding_client_rect();
        let f = scale::fit_beside(r.width(), r.height(), self.gutter());
        if (f.scale - self.fit.scale).abs() > 1e-4
            || f.canvas_w != self.fit.canvas_w
            || (f.left - self.fit.left).abs() > 0.5
            || (f.top - self.fit.top).abs() > 0.5
        {
            self.fit = f;
            true
        } else {
            false
        }
    }
}

/// The file name (`<sha256>.<ext>`) of an asset URL or bundle path.
fn asset_file(url: &str) -> &str {
    url.rsplit_once("/assets/")
        .or_else(|| url.split_once("assets/"))
        .map_or(url, |(_, f)| f)
}

/// Whether a service worker controls this page (it verifies video bytes).
fn sw_controls_page() -> bool {
    let nav = dom::window().navigator();
    js_sys::Reflect::get(&nav, &"serviceWorker".into())
        .ok()
        .filter(|c| c.is_object())
        .and_then(|c| js_sys::Reflect::get(&c, &"controller".into()).ok())
        .is_some_and(|c| c.is_object())
}

/// Take the source off a video whose bytes failed the integrity check and say so in
/// its place (once).
fn block_video(source: &Element, lang: Lang) {
    let _ = source.remove_attribute("src");
    let Some(video) = source.parent_element() else {
        return;
    };
    if video.has_attribute("data-refused") {
        return;
    }
    let _ = video.set_attribute("data-refused", "integrity");
    if let Some(v) = video.dyn_ref::<web_sys::HtmlMediaElement>() {
        v.load();
    }
    if let Ok(p) = dom::document().create_element("p") {
        let _ = p.set_attribute("class", "ed-video-refused");
        let _ = p.set_attribute("role", "alert");
        let _ = p.set_attribute("data-testid", "video-refused");
        p.set_text_content(Some(t(lang, K::VideoRefused)));
        let _ = video.after_with_node_1(&p);
    }
}

/// Fetch an image asset (or poster, captions), check its sha256 and size against the
/// manifest and return a blob URL.
/// `Err(true)`: integrity failure; `Err(false)`: could not fetch.
async fn verified_blob(l: &Loaded, path: &str) -> Result<String, bool> {
    let entry = l.bundle.asset(path).ok_or(true)?;
    let url = crate::options::asset_url(&l.base, path).ok_or(true)?;
    let auth = l.opts.share.as_deref();
    // Fetched, hashed (WebCrypto) and wrapped in a blob without entering wasm memory.
    let buf = dom::fetch_buffer(&url, auth).await.map_err(|_| false)?;
    let hash = dom::sha256_hex(&buf).await.map_err(|_| false)?;
    crate::check::verify_asset_hash(entry, &hash, u64::from(buf.byte_length()))
        .map_err(|_| true)?;
    let parts = js_sys::Array::of1(&buf);
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(&entry.media_type);
    let blob =
        web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &opts).map_err(|_| false)?;
    web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| false)
}

fn select_tab(root: &Element, tab: &str) {
    if let Ok(list) = root.query_selector_all("[data-tab]") {
        for i in 0..list.length() {
            let Some(e) = list.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
                continue;
            };
            let on = e.get_attribute("data-tab").as_deref() == Some(tab);
            if e.get_attribute("role").as_deref() == Some("tab") {
                let _ = e.set_attribute("aria-selected", if on { "true" } else { "false" });
            } else if on {
                let _ = e.remove_attribute("hidden");
            } else {
                let _ = e.set_attribute("hidden", "");
            }
        }
    }
}

impl yew::Component for Player {
    type Message = Msg;
    type Properties = Props;

    fn create(ctx: &Context<Self>) -> Self {
        let l = ctx.props().loaded.clone();
        let b = &l.bundle;
        let lang = match l.opts.lang.as_deref() {
            Some(x) => Lang::from_locale(x),
            None => Lang::from_locale(&b.deck.locale),
        };
        // Inserted one by one: `collect()` into a BTreeMap sorts first, which would link
        // a stable sort of `(String, u32)` pairs into the wasm (~3 KB) for this map alone.
        let mut steps = BTreeMap::new();
        for s in &b.slides {
            steps.insert(s.id.clone(), s.steps);
        }
        let order = sequence::flow_order(b);
        // `admit` guarantees a non-empty flow; keep a refusal rather than a panic anyway.
        let (nav, refusal) = match Nav::new(order.clone(), steps) {
            Some(n) => (n, None),
            None => (
                Nav::new(vec![String::new()], BTreeMap::new()).expect("one"),
                Some(Refusal::LoadFailed("the main flow is empty".into())),
            ),
        };
        let mode = l.opts.mode;
        let sequences = if mode == Mode::MrLed {
            sequence::load(&dom::local_get(&sequence::storage_key(&b.deck.id)).unwrap_or_default())
        } else {
            vec![]
        };
        let consent = match dom::local_get(&consent_key(&b.deck.id)).as_deref() {
            Some("granted") => Some(true),
            Some("declined") => Some(false),
            _ => None,
        };
        let win = dom::window();
        let w = win
            .inner_width()
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(1024.0);
        let h = win
            .inner_height()
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(768.0);
        let mut p = Player {
            lang,
            mode,
            html: Default::default(),
            nav,
            phase: if mode == Mode::MrLed {
                Phase::StartCall
            } else {
                Phase::Presenting
            },
            overlay: None,
            tray: false,
            inspector: mode == Mode::Preview && w >= 1200.0,
            tracker: None,
            subs: vec![],
            sync: SyncStatus::default(),
            events: vec![],
            summary: CallSummary::default(),
            // A first guess (the stage observer measures the real stage before the
            // first paint): MR and preview keep a gutter for the tray handle.
            fit: scale::fit_beside(
                w,
                (h - BAR_PX).max(1.0),
                if matches!(mode, Mode::MrLed | Mode::Preview) {
                    HANDLE_PX
                } else {
                    0.0
                },
            ),
            announce: String::new(),
            swipe: SwipeTracker::default(),
            answers: BTreeMap::new(),
            quartiles: HashMap::new(),
            isi_depth: 0,
            entered_at: dom::now_ms(),
            hcp: String::new(),
            hcp_error: false,
            remote: false,
            sequences,
            seq_name: String::new(),
            seq_draft: order,
            seq_notice: None,
            question: String::new(),
            question_saved: false,
            consent,
            form_text: String::new(),
            form_time: String::new(),
            form_sent: false,
            focus_dialog: false,
            return_focus: None,
            stage: NodeRef::default(),
            slides_ref: NodeRef::default(),
            dialog_ref: NodeRef::default(),
            refusal,
            assets: HashMap::new(),
            pending: Default::default(),
            blocked: Default::default(),
            resize_obs: None,
            observed: None,
            marked: false,
            neighbours: false,
            _listeners: vec![],
        };
        match mode {
            Mode::Preview => p.start_tracker(ctx, Channel::MrLed, None, true, None),
            Mode::SelfServe => {
                // Without an answer, the consent dialog opens once the first slide is
                // painted (Msg::Neighbours): the first frame shows the slide alone.
                p.start_tracker(ctx, Channel::SelfServe, None, consent == Some(true), None);
            }
            Mode::MrLed => {}
        }
        if let Some(s) = b.slide(p.nav.current()) {
            p.announce = i18n::slide_announcement(lang, 1, p.nav.total(), &s.title);
            // The first slide's images (and the deck logo in its footer) are requested
            // now, while it renders, not once it is in the DOM: they arrive with it
            // rather than a round trip later. (Its rewritten body is cached for the view.)
            let body = p.slide_html(&l.base, s);
            let logo = b.theme.logo.as_deref().into_iter();
            for path in logo.chain(crate::options::image_assets(&body)) {
                if b.asset(path).is_some() {
                    p.request_asset(ctx, path.to_string());
                }
            }
        }
        // Not needed for the first view: a second after it (BACKGROUND_START_MS).
        let (endpoint, token) = (l.opts.endpoint.clone(), l.token.clone());
        let base = l.base.clone();
        let auth = l.opts.share.clone();
        // Controlled already: the bundle came through the worker, which cached it.
        let controlled = js_sys::Reflect::get(&dom::window().navigator(), &"serviceWorker".into())
            .and_then(|c| js_sys::Reflect::get(&c, &"controller".into()))
            .is_ok_and(|c| c.is_object());
        crate::tracking::web::set_timeout(BACKGROUND_START_MS, move || {
            // Deliver events left in the outbox by earlier sessions (e.g. a call closed
            // offline) even while no session runs (start-call screen, declined consent).
            crate::tracking::drain_outbox(&endpoint, token.as_deref());
            if mode == Mode::Preview {
                return;
            }
            crate::tracking::register_service_worker("sw.js");
            if controlled {
                return;
            }
            // On a first visit the bundle was fetched before the service worker existed:
            // fetch it again once the worker controls the page, so it is cached offline.
            wasm_bindgen_futures::spawn_local(async move {
                let Ok(ready) = dom::window().navigator().service_worker().ready() else {
                    return;
                };
                if wasm_bindgen_futures::JsFuture::from(ready).await.is_err() {
                    return;
                }
                // Give `clients.claim()` a moment to make the worker control this page.
                crate::tracking::web::sleep(500).await;
                for f in ["bundle.sha256", "bundle.json"] {
                    // Through the worker, which caches it; not copied into the wasm.
                    let _ = dom::fetch_buffer(&format!("{base}{f}"), auth.as_deref()).await;
                }
            });
        });
        p
    }

    fn update(&mut self, ctx: &Context<Self>, msg: Msg) -> bool {
        match msg {
            Msg::Next(via) => {
                let out = self.nav.next();
                self.after(ctx, out, via)
            }
            Msg::Prev(via) => {
                let out = self.nav.prev();
                self.after(ctx, out, via)
            }
            Msg::Back => {
                let out = self.nav.back();
                self.after(ctx, out, NavVia::Back)
            }
            Msg::Jump(id) => {
                let out = self.nav.jump(&id);
                self.overlay = None;
                self.after(ctx, out, NavVia::Overview);
                self.ask_consent_if_due();
                true
            }
            Msg::SlideClick(e) => self.slide_click(ctx, e),
            Msg::Key(e) => self.key(ctx, e),
            Msg::Resize => self.measure(),
            Msg::PointerDown(e) => {
                let interactive = dom::closest(e.target(), NO_SWIPE).is_some();
                self.swipe.down(
                    e.pointer_id(),
                    &e.pointer_type(),
                    e.client_x() as f64,
                    e.client_y() as f64,
                    interactive,
                );
                false
            }
            Msg::PointerUp(e) => {
                if self.overlay.is_some() || self.phase != Phase::Presenting {
                    self.swipe.cancel();
                    return false;
                }
                match self.swipe.up(
                    e.pointer_id(),
                    &e.pointer_type(),
                    e.client_x() as f64,
                    e.client_y() as f64,
                ) {
                    Some(Swipe::Next) => {
                        let out = self.nav.next();
                        self.after(ctx, out, NavVia::Swipe)
                    }
                    Some(Swipe::Prev) => {
                        let out = self.nav.prev();
                        self.after(ctx, out, NavVia::Swipe)
                    }
                    None => false,
                }
            }
            Msg::PointerCancel => {
                self.swipe.cancel();
                false
            }
            Msg::Open(ov) => {
                if ov == Overlay::Sequence {
                    self.seq_notice = None;
                }
                self.open(ov);
                true
            }
            Msg::Close => {
                self.close();
                true
            }
            Msg::Sync(s) => {
                // Only the MR badge and tray and the preview inspector show the sync
                // state, and only these fields: every event written changes the status,
                // and a render per change would double the cost of a slide change.
                let shown = matches!(self.mode, Mode::MrLed | Mode::Preview)
                    && (s.unsynced != self.sync.unsynced
                        || s.last_sync_ms != self.sync.last_sync_ms
                        || s.last_error != self.sync.last_error);
                self.sync = s;
                shown
            }
            Msg::Tracked(e) => {
                self.summary.record(&e);
                if self.mode == Mode::Preview {
                    self.events.push(*e);
                    if self.events.len() > INSPECTOR_MAX {
                        self.events.remove(0);
                    }
                    return self.inspector;
                }
                self.tray || self.phase == Phase::Summary
            }
            Msg::ToggleTray => {
                self.tray = !self.tray;
                true
            }
            Msg::ToggleInspector => {
                self.inspector = !self.inspector;
                true
            }
            Msg::SetHcp(s) => {
                self.hcp = s;
                self.hcp_error = false;
                true
            }
            Msg::SetRemote(r) => {
                self.remote = r;
                true
            }
            Msg::StartCall => {
                let hcp = self.hcp.trim().to_string();
                let valid = hcp.len() <= 64
                    && !hcp.contains('@')
                    && hcp
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !valid {
                    self.hcp_error = true;
                    return true;
                }
                let draft = self.seq_draft.clone();
                let custom = draft != sequence::flow_order(self.b(ctx));
                let _ = self.nav.set_order(draft);
                let _ = self.nav.first();
                let channel = if self.remote {
                    Channel::Remote
                } else {
                    Channel::MrLed
                };
                let seq_name = (custom && !self.seq_name.is_empty()).then(|| self.seq_name.clone());
                self.summary = CallSummary::default();
                self.start_tracker(
                    ctx,
                    channel,
                    (!hcp.is_empty()).then_some(hcp),
                    true,
                    seq_name,
                );
                self.phase = Phase::Presenting;
                if let Some(s) = self.slide(ctx, self.nav.current()) {
                    self.announce =
                        i18n::slide_announcement(self.lang, 1, self.nav.total(), &s.title);
                }
                true
            }
            Msg::EndCall => {
                self.tray = false;
                self.overlay = None;
                self.phase = Phase::Summary;
                true
            }
            Msg::ResumeCall => {
                self.phase = Phase::Presenting;
                true
            }
            Msg::CloseCall => {
                self.stop_tracker("ended");
                self.hcp.clear();
                self.answers.clear();
                self.quartiles.clear();
                let _ = self.nav.first();
                self.phase = Phase::StartCall;
                true
            }
            Msg::Reaction(v) => {
                let km = self
                    .slide(ctx, self.nav.current())
                    .and_then(|s| s.key_message.clone());
                self.emit(EventKind::Reaction {
                    value: v,
                    key_message: km,
                });
                true
            }
            Msg::SetQuestion(s) => {
                self.question = s;
                self.question_saved = false;
                true
            }
            Msg::SaveQuestion => {
                let text = clip(&self.question);
                if !text.is_empty() {
                    self.emit(EventKind::Question { text });
                    self.question.clear();
                    self.question_saved = true;
                }
                true
            }
            Msg::PickSequence(name) => {
                let b = self.b(ctx);
                if name.is_empty() {
                    self.seq_draft = sequence::flow_order(b);
                    self.seq_name.clear();
                    self.seq_notice = None;
                } else if let Some(s) = self.sequences.iter().find(|s| s.name == name) {
                    let r = sequence::reconcile(b, &s.slides);
                    self.seq_notice = (!r.dropped.is_empty()).then(|| {
                        format!(
                            "{}: {}",
                            t(self.lang, K::SlidesDropped),
                            r.dropped.join(", ")
                        )
                    });
                    self.seq_draft = r.slides;
                    self.seq_name = name;
                }
                true
            }
            Msg::SeqShift(i, d) => {
                let _ = sequence::shift(&mut self.seq_draft, i, d);
                true
            }
            Msg::SeqRemove(i) => {
                let b = &ctx.props().loaded.bundle;
                let _ = sequence::remove(b, &mut self.seq_draft, i);
                true
            }
            Msg::SeqAdd(id) => {
                let b = &ctx.props().loaded.bundle;
                let _ = sequence::add(b, &mut self.seq_draft, &id);
                true
            }
            Msg::SeqName(n) => {
                self.seq_name = n;
                true
            }
            Msg::SeqSave => {
                let name = self.seq_name.trim().to_string();
                if name.is_empty() {
                    return false;
                }
                let b = self.b(ctx);
                let seq = Sequence {
                    name,
                    deck_version: b.deck.version.clone(),
                    slides: self.seq_draft.clone(),
                };
                let (all, json) = sequence::save(std::mem::take(&mut self.sequences), seq);
                dom::local_set(&sequence::storage_key(&b.deck.id), &json);
                self.sequences = all;
                self.close();
                true
            }
            Msg::Consent(granted) => {
                let deck = self.b(ctx).deck.id.clone();
                dom::local_set(
                    &consent_key(&deck),
                    if granted { "granted" } else { "declined" },
                );
                self.consent = Some(granted);
                if let Some(tr) = &self.tracker {
                    tr.set_consent(granted);
                }
                if matches!(self.overlay, Some(Overlay::Consent)) {
                    self.overlay = None;
                }
                true
            }
            Msg::FormText(s) => {
                self.form_text = s;
                false
            }
            Msg::FormTime(s) => {
                self.form_time = s;
                false
            }
            Msg::SubmitAsk => {
                let text = clip(&self.form_text);
                if text.is_empty() {
                    return false;
                }
                self.emit(EventKind::Question { text });
                self.form_sent = true;
                true
            }
            Msg::SubmitVisit => {
                let note = clip(&self.form_text);
                let time: String = self.form_time.trim().chars().take(100).collect();
                self.emit(EventKind::VisitRequest {
                    note: (!note.is_empty()).then_some(note),
                    preferred_time: (!time.is_empty()).then_some(time),
                });
                self.form_sent = true;
                true
            }
            Msg::IsiScroll(e) => {
                if let Some(el) = e.target().and_then(|t| t.dyn_into::<Element>().ok()) {
                    let max = (el.scroll_height() - el.client_height()).max(1) as f64;
                    let pct = ((el.scroll_top() as f64 / max) * 100.0).clamp(0.0, 100.0) as u8;
                    self.isi_depth = self.isi_depth.max(pct);
                }
                false
            }
            Msg::Media(e) => {
                self.media(e);
                false
            }
            Msg::Rerender => true,
            Msg::Neighbours => {
                // A frame after the first slide: its neighbours, and the consent question
                // of a first self-serve open (the first frame shows the slide alone).
                self.neighbours = true;
                self.ask_consent_if_due();
                super::mark("edetail:settled");
                true
            }
            Msg::AssetReady(path, url) => {
                self.pending.remove(&path);
                self.assets.insert(path, url);
                self.fill_assets(ctx);
                false
            }
            Msg::Integrity(url) => {
                let file = asset_file(&url).to_string();
                if file.is_empty() || !self.blocked.insert(file.clone()) {
                    return false;
                }
                self.emit(EventKind::RuntimeError {
                    message: format!(
                        "integrity: asset `assets/{file}` does not match its sha256; not played"
                    ),
                });
                if let Ok(list) = dom::document().query_selector_all("source[data-video]") {
                    for i in 0..list.length() {
                        if let Some(el) = list.item(i).and_then(|n| n.dyn_into::<Element>().ok())
                            && el
                                .get_attribute("data-video")
                                .is_some_and(|v| asset_file(&v) == file)
                        {
                            block_video(&el, self.lang);
                        }
                    }
                }
                false
            }
            Msg::AssetBad(path) => {
                self.refusal = Some(Refusal::Integrity(format!(
                    "asset `{path}` does not match its sha256"
                )));
                self.stop_tracker("closed");
                true
            }
        }
    }

    fn rendered(&mut self, ctx: &Context<Self>, first: bool) {
        if first {
            // The player's view is in the DOM now: it replaces boot.js's copy of it. No
            // frame shows neither; when Yew's scheduler yielded after a long first render,
            // one frame may hold both, the player's view on top (it comes later in
            // <body>) and looking the same.
            super::snapshot::remove();
            let win = dom::window();
            let link = ctx.link().clone();
            let key = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
                if let Ok(k) = e.dyn_into::<KeyboardEvent>() {
                    link.send_message(Msg::Key(k));
                }
            });
            let _ = win.add_event_listener_with_callback("keydown", key.as_ref().unchecked_ref());
            let link = ctx.link().clone();
            let resize =
                Closure::<dyn FnMut(web_sys::Event)>::new(move |_| link.send_message(Msg::Resize));
            let _ = win.add_event_listener_with_callback("resize", resize.as_ref().unchecked_ref());
            self._listeners.push(key);
            self._listeners.push(resize);
            // The service worker's integrity reports (window event from tracking).
            let link = ctx.link().clone();
            let integrity = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
                let url = js_sys::Reflect::get(&e, &"detail".into())
                    .ok()
                    .and_then(|d| d.as_string())
                    .unwrap_or_default();
                link.send_message(Msg::Integrity(url));
            });
            let _ = win.add_event_listener_with_callback(
                "edetail-integrity",
                integrity.as_ref().unchecked_ref(),
            );
            self._listeners.push(integrity);
            // Video sources wait for the worker to control the page (first visit).
            if let Some(c) = js_sys::Reflect::get(&win.navigator(), &"serviceWorker".into())
                .ok()
                .and_then(|c| c.dyn_into::<web_sys::EventTarget>().ok())
            {
                let link = ctx.link().clone();
                let cb = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
                    link.send_message(Msg::Rerender)
                });
                let _ = c.add_event_listener_with_callback(
                    "controllerchange",
                    cb.as_ref().unchecked_ref(),
                );
                self._listeners.push(cb);
            }
        }
        // The stage size can change without a window resize (inspector, phase change):
        // a ResizeObserver reports it after layout, so no render forces a layout.
        if self.phase == Phase::Presenting {
            self.observe_stage(ctx);
        }
        if let Some(root) = self.slides_ref.cast::<Element>() {
            if !root.has_attribute("data-media") {
                let _ = root.set_attribute("data-media", "1");
                let link = ctx.link().clone();
                let media = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
                    link.send_message(Msg::Media(e))
                });
                for ev in ["play", "pause", "seeked", "timeupdate", "ended"] {
                    let _ = root.add_event_listener_with_callback_and_bool(
                        ev,
                        media.as_ref().unchecked_ref(),
                        true,
                    );
                }
                self._listeners.push(media);
            }
            let b = &ctx.props().loaded.bundle;
            if let Ok(list) = root.query_selector_all(".slide") {
                for i in 0..list.length() {
                    let Some(el) = list.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else {
                        continue;
                    };
                    let id = el.get_attribute("data-slide-id").unwrap_or_default();
                    let Some(s) = b.slide(&id) else { continue };
                    enhance::enhance(&el, &s.components, self.lang, &self.answers);
                    let shown = if id == self.nav.current() {
                        self.nav.step()
                    } else if el.class_list().contains("is-prev") {
                        s.steps
                    } else {
                        0
                    };
                    enhance::apply_steps(&el, shown);
                }
            }
            // Focus must not stay inside a slide that just became inert.
            if let Some(a) = dom::document().active_element()
                && a.closest(".slide:not(.is-current)")
                    .ok()
                    .flatten()
                    .is_some()
                && let Some(cur) = self.current_slide_el()
            {
                dom::focus(&cur);
            }
        }
        self.fill_assets(ctx);
        if !self.marked && self.current_slide_el().is_some() {
            self.marked = true;
            super::mark("edetail:first-slide");
            // Once the first slide is painted: mount its neighbours, and (self-serve links
            // open on their first slide) keep a copy of this view for the next open of this
            // page (crate::snapshot). Not MR calls (they open on the start-call form, which
            // a copy cannot take input for) nor author previews (rebuilt all the time).
            let copy =
                (self.mode == Mode::SelfServe && self.phase == Phase::Presenting).then(|| {
                    let l = &ctx.props().loaded;
                    let meta = super::snapshot::Meta {
                        from: l.bundle.approval.valid_from.clone(),
                        until: l.bundle.approval.valid_until.clone(),
                        lang: self.lang.tag().to_string(),
                        title: l.bundle.deck.title.clone(),
                        bundle: l.hash.clone(),
                    };
                    (self.nav.current().to_string(), meta)
                });
            let link = ctx.link().clone();
            dom::after_paint(move || {
                if let Some((first, meta)) = copy
                    && let Ok(Some(root)) = dom::document().query_selector("#app > .player")
                {
                    super::snapshot::save(&root, &first, meta);
                }
                link.send_message(Msg::Neighbours);
            });
        }
        if self.focus_dialog {
            self.focus_dialog = false;
            if let Some(d) = self.dialog_ref.cast::<Element>() {
                // The consent question focuses the dialog itself (its title is read out),
                // not one of the two answers: neither is preselected or ringed.
                let first = dom::focusables(&d).into_iter().next();
                match first.filter(|_| !matches!(self.overlay, Some(Overlay::Consent))) {
                    Some(f) => {
                        let _ = f.focus();
                    }
                    None => dom::focus(&d),
                }
                if matches!(self.overlay, Some(Overlay::Isi))
                    && let Ok(Some(body)) = d.query_selector(".isi-body")
                    && body.scroll_height() <= body.client_height()
                {
                    self.isi_depth = 100;
                }
            }
        }
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        if let Some(r) = &self.refusal {
            return refusal_screen(r, self.lang, Callback::noop());
        }
        let l = &ctx.props().loaded;
        let b = &l.bundle;
        let th = &b.theme;
        let style = format!(
            "--primary:{};--accent:{};--bg:{};--text:{};--font:{}",
            dom::safe_color(&th.primary, "#0b5cad"),
            dom::safe_color(&th.accent, "#f28c28"),
            dom::safe_color(&th.background, "#ffffff"),
            dom::safe_color(&th.text, "#1a1a1a"),
            dom::safe_font(&th.font_family),
        );
        let preview_mark = b.preview.then(|| html! {
            <div class="preview-mark" role="note" data-testid="preview-mark">{ t(self.lang, K::Preview) }</div>
        });
        let body = match self.phase {
            Phase::StartCall => self.view_start(ctx),
            Phase::Summary => self.view_summary(ctx),
            Phase::Presenting => self.view_presenting(ctx),
        };
        let mode_class = match self.mode {
            Mode::MrLed => "mode-mr",
            Mode::SelfServe => "mode-self",
            Mode::Preview => "mode-preview",
        };
        html! {
            <div class={classes!("player", mode_class, b.preview.then_some("has-preview-mark"), (self.mode == Mode::Preview && self.inspector).then_some("inspector-open"))} style={style} data-testid="player">
                { for preview_mark }
                { body }
                <div class="sr-only" aria-live="polite" aria-atomic="true" data-testid="announcer">{ &self.announce }</div>
            </div>
        }
    }
}

impl Player {
    fn measure_and_maybe_rerender(&mut self, ctx: &Context<Self>) {
        if self.measure() {
            ctx.link().send_message(Msg::Rerender);
        }
    }

    /// Watch the stage's size (once per stage element): the observer's callback runs
    /// after layout, so measuring there costs no extra layout, unlike a measurement
    /// after every render (which forced one per slide change).
    fn observe_stage(&mut self, ctx: &Context<Self>) {
        let Some(stage) = self.stage.cast::<Element>() else {
            return;
        };
        if self.observed.as_ref() == Some(&stage) {
            return;
        }
        if self.resize_obs.is_none() {
            let link = ctx.link().clone();
            let cb = Closure::<dyn FnMut(wasm_bindgen::JsValue)>::new(move |_| {
                link.send_message(Msg::Resize)
            });
            match web_sys::ResizeObserver::new(cb.as_ref().unchecked_ref()) {
                Ok(o) => {
                    self.resize_obs = Some((o, cb));
                }
                Err(_) => {
                    // No ResizeObserver: measure now (window resizes still re-measure).
                    self.observed = Some(stage);
                    self.measure_and_maybe_rerender(ctx);
                    return;
                }
            }
        }
        if let Some((o, _)) = &self.resize_obs {
            o.disconnect();
            o.observe(&stage);
        }
        self.observed = Some(stage);
    }

    /// A slide's HTML with asset references rewritten (cached).
    fn slide_html(&self, base: &str, s: &Slide) -> AttrValue {
        self.html
            .borrow_mut()
            .entry(s.id.clone())
            .or_insert_with(|| AttrValue::from(crate::options::rewrite_assets(&s.html, base)))
            .clone()
    }

    fn view_presenting(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let b = &ctx.props().loaded.bundle;
        let lang = self.lang;
        let cur = self.nav.current().to_string();
        let (prev, next) = if self.neighbours {
            self.nav.neighbours()
        } else {
            (None, None)
        };
        let mut mounted: Vec<(String, &'static str)> = vec![];
        if let Some(p) = prev {
            mounted.push((p.to_string(), "is-prev"));
        }
        mounted.push((cur.clone(), "is-current"));
        if let Some(n) = next
            && n != cur
            && Some(n) != prev
        {
            mounted.push((n.to_string(), "is-next"));
        }
        let logo = b.theme.logo.clone();
        let slides = mounted.into_iter().filter_map(|(id, pos)| {
            let s = b.slide(&id)?;
            let html = self.slide_html(&ctx.props().loaded.base, s);
            let current = pos == "is-current";
            Some(html! {
                <section key={id.clone()}
                    class={classes!("slide", pos, format!("layout-{}", s.layout))}
                    data-slide-id={id.clone()}
                    id={format!("slide-{id}")}
                    role="group"
                    aria-roledescription="slide"
                    aria-label={s.title.clone()}
                    tabindex="-1"
                    inert={!current}
                    aria-hidden={(!current).then_some("true")}>
                    <div class="slide-body">{ Html::from_html_unchecked(html) }</div>
                    <footer class="slide-foot" aria-hidden="true">
                        <span class="code">{ &b.approval.code }</span>
                        if let Some(logo) = &logo { <img class="logo" data-asset={logo.clone()} alt="" /> }
                    </footer>
                </section>
            })
        });
        let fit = self.fit;
        let slide = b.slide(&cur);
        let has_refs = slide.is_some_and(|s| !s.references.is_empty());
        let pos_text = match self.nav.position() {
            Some(n) => format!("{n} / {}", self.nav.total()),
            None => slide.map(|s| s.title.clone()).unwrap_or_default(),
        };
        let progress = self
            .nav
            .position()
            .map(|n| n as f64 / self.nav.total() as f64)
            .unwrap_or(0.0);
        let section = b
            .flow
            .iter()
            .find(|sec| sec.slides.contains(&cur))
            .map(|sec| sec.title.clone());
        let steps_left = self.nav.step() < self.nav.steps_of(&cur);
        let tray_mode = matches!(self.mode, Mode::MrLed | Mode::Preview);
        html! {
            <>
            <main class="stage" ref={self.stage.clone()}
                onpointerdown={link.callback(Msg::PointerDown)}
                onpointerup={link.callback(Msg::PointerUp)}
                onpointercancel={link.callback(|_| Msg::PointerCancel)}>
                <div class={classes!("canvas", fit.class())} style={fit.style()}
                    ref={self.slides_ref.clone()}
                    onclick={link.callback(Msg::SlideClick)}
                    data-testid="canvas">
                    { for slides }
                </div>
            </main>
            <nav class="bar" aria-label={t(lang, K::Menu)}>
                <div class="bar-progress" role="progressbar" aria-label={t(lang, K::Progress)}
                    aria-valuemin="0" aria-valuemax="100" aria-valuenow={((progress * 100.0).round() as i64).to_string()}>
                    <div class="bar-progress-fill" style={format!("transform:scaleX({})", scale::fixed(progress, 4))}></div>
                </div>
                <div class="bar-group">
                    { button("ctl", Some("btn-overview"), Some("overview"), Some(t(lang, K::Overview)), false,
                        link.callback(|_| Msg::Open(Overlay::Overview)), icon("grid")) }
                    if self.nav.can_back() {
                        { button("ctl ctl-text", Some("btn-back"), Some("back"), None, false,
                            link.callback(|_| Msg::Back), icon_label("back", t(lang, K::Back))) }
                    }
                    if self.mode == Mode::SelfServe {
                        { button("ctl ctl-text", None, Some("ask"), None, false,
                            link.callback(|_| Msg::Open(Overlay::Ask)), icon_label("chat", t(lang, K::AskQuestion))) }
                        { button("ctl ctl-text", None, Some("visit"), None, false,
                            link.callback(|_| Msg::Open(Overlay::Visit)), icon_label("calendar", t(lang, K::RequestVisit))) }
                    }
                    if self.mode == Mode::Preview {
                        <button class="ctl ctl-text" data-testid="inspector-toggle" aria-pressed={self.inspector.to_string()}
                            onclick={link.callback(|_| Msg::ToggleInspector)}>
                            { icon("list") }<span class="label">{ format!("{} ({})", t(lang, K::Events), self.events.len()) }</span></button>
                    }
                </div>
                <div class="bar-center" data-testid="position">
                    <span class="pos">{ pos_text }</span>
                    if let Some(sec) = section { <span class="sec">{ sec }</span> }
                    if steps_left { <span class="steps-hint" title={t(lang, K::StepHint)} aria-hidden="true">{ "•••" }</span> }
                </div>
                <div class="bar-group right">
                    if tray_mode { { self.sync_badge() } }
                    if has_refs {
                        { button("ctl", None, Some("references"), Some(t(lang, K::References)), false,
                            link.callback(|_| Msg::Open(Overlay::References { highlight: None })), icon("refs")) }
                    }
                    if b.isi.is_some() {
                        <button class="ctl ctl-text isi-btn" id="btn-isi" data-testid="isi" onclick={link.callback(|_| Msg::Open(Overlay::Isi))}>
                            { icon("isi") }<span class="label label-long">{ t(lang, K::Isi) }</span><span class="label label-short">{ t(lang, K::IsiShort) }</span></button>
                    }
                    { button("ctl", Some("btn-prev"), Some("prev"), Some(t(lang, K::Prev)), !self.nav.has_prev(),
                        link.callback(|_| Msg::Prev(NavVia::Button)), icon("prev")) }
                    { button("ctl primary", Some("btn-next"), Some("next"), Some(t(lang, K::Next)), !self.nav.has_next(),
                        link.callback(|_| Msg::Next(NavVia::Button)), icon("next")) }
                </div>
            </nav>
            if tray_mode { { self.view_tray(ctx) } }
            if self.mode == Mode::Preview && self.inspector { { self.view_inspector() } }
            { self.view_overlay(ctx) }
            </>
        }
    }

    fn sync_badge(&self) -> Html {
        let s = &self.sync;
        let state = if s.last_error.is_some() {
            "error"
        } else if s.unsynced > 0 {
            "pending"
        } else {
            "ok"
        };
        html! {
            <span class={classes!("sync", state)} data-testid="sync-status" title={s.last_error.clone().unwrap_or_default()}>
                <span class="dot" aria-hidden="true"></span>
                <span class="label">{ format!("{} {}", s.unsynced, t(self.lang, K::Unsynced)) }</span>
            </span>
        }
    }

    fn view_tray(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let lang = self.lang;
        let b = &ctx.props().loaded.bundle;
        let cur = self.nav.current();
        let slide = b.slide(cur);
        let reaction = self.summary.reaction_on(cur);
        let react_btn = |v: i8, label: K, glyph: &'static str, tid: &'static str| {
            html! {
                <button class={classes!("react", (reaction == Some(v)).then_some("on"))} data-testid={tid}
                    aria-pressed={(reaction == Some(v)).to_string()} aria-label={t(lang, label)}
                    onclick={link.callback(move |_| Msg::Reaction(v))}>
                    <span class="glyph" aria-hidden="true">{ glyph }</span><span class="label">{ t(lang, label) }</span>
                </button>
            }
        };
        let mandatory = sequence::mandatory(b);
        let last_sync = self
            .sync
            .last_sync_ms
            .map(|ms| {
                let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms));
                format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
            })
            .unwrap_or_else(|| t(lang, K::Never).to_string());
        html! {
            <>
            <button class={classes!("tray-handle", self.tray.then_some("open"))} data-testid="tray-handle"
                aria-expanded={self.tray.to_string()} aria-controls="tray" aria-label={t(lang, K::Tray)}
                onclick={link.callback(|_| Msg::ToggleTray)}>{ icon("tray") }</button>
            <aside id="tray" class={classes!("tray", self.tray.then_some("open"))} aria-label={t(lang, K::Tray)}
                inert={!self.tray} data-testid="tray">
                <div class="tray-head">
                    <h2>{ t(lang, K::Tray) }</h2>
                    { button("ctl", None, None, Some(t(lang, K::Close)), false, link.callback(|_| Msg::ToggleTray), icon("close")) }
                </div>
                <div class="tray-scroll">
                    <section class="tray-sec">
                        <h3>{ t(lang, K::KeyMessage) }</h3>
                        <p class="key-message">{ slide.and_then(|s| s.key_message.clone()).unwrap_or_else(|| "—".into()) }</p>
                        <div class="reactions" role="group" aria-label={t(lang, K::Reaction)}>
                            { react_btn(-1, K::Negative, "−1", "reaction-neg") }
                            { react_btn(0, K::Neutral, "0", "reaction-neutral") }
                            { react_btn(1, K::Positive, "+1", "reaction-pos") }
                        </div>
                    </section>
                    <section class="tray-sec">
                        <h3>{ t(lang, K::SpeakerNotes) }</h3>
                        <div class="notes">{
                            match slide.and_then(|s| s.notes.clone()) {
                                Some(n) => Html::from_html_unchecked(AttrValue::from(n)),
                                None => html! { <p class="muted">{ t(lang, K::NoNotes) }</p> },
                            }
                        }</div>
                    </section>
                    <section class="tray-sec">
                        <label for="tray-question"><h3>{ t(lang, K::CaptureQuestion) }</h3></label>
                        <textarea id="tray-question" data-testid="question-input" rows="3" maxlength="2000"
                            placeholder={t(lang, K::QuestionPlaceholder)} value={self.question.clone()}
                            oninput={link.callback(|e: InputEvent| Msg::SetQuestion(e.target_unchecked_into::<HtmlTextAreaElement>().value()))} />
                        <div class="row">
                            { button("btn", None, Some("question-save"), None, false, link.callback(|_| Msg::SaveQuestion), t(lang, K::Save).into()) }
                            if self.question_saved { <span class="ok-note" role="status">{ "✓ " }{ t(lang, K::Saved) }</span> }
                        </div>
                    </section>
                    if !mandatory.is_empty() {
                        <section class="tray-sec">
                            <h3>{ t(lang, K::MandatoryChecklist) }</h3>
                            <ul class="checklist" data-testid="mandatory-checklist">
                            { for mandatory.iter().map(|id| {
                                let done = self.summary.shown(id) || id == cur;
                                let title = b.slide(id).map(|s| s.title.clone()).unwrap_or_default();
                                let target = id.clone();
                                html! {
                                    <li class={classes!(done.then_some("done"))}>
                                        <button class="link" onclick={link.callback(move |_| Msg::Jump(target.clone()))}>
                                            <span class="tick" aria-hidden="true">{ if done { "✓" } else { "○" } }</span>{ title }
                                        </button>
                                    </li>
                                }
                            }) }
                            </ul>
                        </section>
                    }
                    <section class="tray-sec sync-sec" data-testid="tray-sync">
                        <p>{ format!("{} {} · {} {}", self.sync.unsynced, t(lang, K::Unsynced), t(lang, K::LastSync), last_sync) }</p>
                        if let Some(e) = &self.sync.last_error { <p class="warn">{ t(lang, K::SyncError) }{ ": " }{ e }</p> }
                    </section>
                </div>
                <div class="tray-foot">
                    { button("btn", None, Some("tray-overview"), None, false, link.callback(|_| Msg::Open(Overlay::Overview)),
                        html! { <>{ icon("grid") }{ t(lang, K::Overview) }</> }) }
                    if self.mode == Mode::MrLed {
                        { button("btn danger", Some("btn-end-call"), Some("end-call"), None, false, link.callback(|_| Msg::EndCall), t(lang, K::EndCall).into()) }
                    }
                </div>
            </aside>
            </>
        }
    }

    fn view_inspector(&self) -> Html {
        html! {
            <aside class="inspector" aria-label={t(self.lang, K::Inspector)} data-testid="inspector">
                <h2>{ t(self.lang, K::Inspector) }<span class="count">{ self.events.len() }</span></h2>
                <p class="muted">{ format!("{} {} · {}", self.sync.unsynced, t(self.lang, K::Unsynced),
                    self.sync.last_error.clone().unwrap_or_default()) }</p>
                <ol class="events" reversed=true>
                { for self.events.iter().rev().map(|e| {
                    let fields = crate::inspect::kind_fields(e);
                    html! {
                        <li data-event-type={e.kind.type_name()} data-event-id={e.id.clone()}>
                            <span class="seq">{ format!("#{}", e.seq) }</span>
                            <span class="type">{ e.kind.type_name() }</span>
                            <span class="slide">{ e.slide_id.clone().unwrap_or_default() }</span>
                            <code class="fields">{ fields }</code>
                        </li>
                    }
                }) }
                </ol>
            </aside>
        }
    }

    fn dialog(
        &self,
        ctx: &Context<Self>,
        class: &'static str,
        title: String,
        testid: &'static str,
        body: Html,
        closable: bool,
    ) -> Html {
        let link = ctx.link();
        let close = link.callback(|_| Msg::Close);
        let backdrop = if closable {
            link.callback(|_| Msg::Close)
        } else {
            Callback::noop()
        };
        html! {
            <div class={classes!("overlay", class)} data-testid={testid}>
                <div class="backdrop" onclick={backdrop}></div>
                <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="dialog-title" ref={self.dialog_ref.clone()} tabindex="-1">
                    <div class="dialog-head">
                        <h2 id="dialog-title">{ title }</h2>
                        if closable {
                            { button("ctl", None, Some("dialog-close"), Some(t(self.lang, K::Close)), false, close, icon("close")) }
                        }
                    </div>
                    { body }
                </div>
            </div>
        }
    }

    fn view_overlay(&self, ctx: &Context<Self>) -> Html {
        let Some(ov) = &self.overlay else {
            return html! {};
        };
        let link = ctx.link();
        let lang = self.lang;
        let l = &ctx.props().loaded;
        let b = &l.bundle;
        let cur = self.nav.current();
        match ov {
            Overlay::Popup { id, .. } => {
                let Some(Component::Popup { title, html, .. }) =
                    self.current_components(ctx).iter().find(|c| c.id() == id)
                else {
                    return html! {};
                };
                let body = html! { <div class="dialog-body prose" onclick={link.callback(Msg::SlideClick)}>{ Html::from_html_unchecked(AttrValue::from(crate::options::rewrite_assets(html, &l.base))) }</div> };
                self.dialog(ctx, "popup", title.clone(), "popup", body, true)
            }
            Overlay::References { highlight } => {
                let slide_refs = b
                    .slide(cur)
                    .map(|s| s.references.clone())
                    .unwrap_or_default();
                let refs: Vec<_> = if slide_refs.is_empty() {
                    b.references.iter().collect()
                } else {
                    b.references
                        .iter()
                        .filter(|r| slide_refs.contains(&r.id))
                        .collect()
                };
                let body = html! {
                    <ol class="dialog-body refs">
                    { for refs.into_iter().map(|r| {
                        let hl = highlight.as_deref() == Some(r.id.as_str());
                        let href = r.url.clone().or_else(|| r.doi.as_ref().map(|d| format!("https://doi.org/{d}")))
                            .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
                        html! {
                            <li class={classes!(hl.then_some("highlight"))} value={r.number.to_string()} data-ref={r.id.clone()}>
                                <span class="num">{ r.number }</span>
                                <span class="cit">{ &r.citation }
                                if let Some(h) = href { { " " }<a href={h} target="_blank" rel="noopener noreferrer">{ r.doi.clone().map(|d| format!("doi:{d}")).unwrap_or_else(|| "link".into()) }</a> }
                                </span>
                            </li>
                        }
                    }) }
                    </ol>
                };
                self.dialog(
                    ctx,
                    "references",
                    t(lang, K::References).into(),
                    "references-panel",
                    body,
                    true,
                )
            }
            Overlay::Isi => {
                let Some(isi) = &b.isi else { return html! {} };
                let body = html! {
                    <div class="dialog-body isi-body prose" tabindex="0" onscroll={link.callback(Msg::IsiScroll)}>
                        { Html::from_html_unchecked(AttrValue::from(isi.html.clone())) }
                    </div>
                };
                self.dialog(ctx, "isi-panel", isi.title.clone(), "isi-panel", body, true)
            }
            Overlay::Zoom { src, alt } => {
                let body = html! {
                    <div class="dialog-body zoom-body" onclick={link.callback(|_| Msg::Close)}>
                        <img data-asset={src.clone()} src={self.assets.get(src).cloned()} alt={alt.clone()} />
                    </div>
                };
                self.dialog(ctx, "zoom", alt.clone(), "zoom", body, true)
            }
            Overlay::Overview => self.view_overview(ctx),
            Overlay::Ask | Overlay::Visit => self.view_form(ctx, ov == &Overlay::Visit),
            Overlay::Sequence => self.view_sequence(ctx),
            Overlay::Consent => {
                let body = html! {
                    <div class="dialog-body">
                        <p>{ t(lang, K::ConsentBody) }</p>
                        <div class="row end">
                            { button("btn", Some("btn-consent-decline"), Some("consent-decline"), None, false, link.callback(|_| Msg::Consent(false)), t(lang, K::Decline).into()) }
                            { button("btn primary", Some("btn-consent-accept"), Some("consent-accept"), None, false, link.callback(|_| Msg::Consent(true)), t(lang, K::Accept).into()) }
                        </div>
                    </div>
                };
                self.dialog(
                    ctx,
                    "consent",
                    t(lang, K::ConsentTitle).into(),
                    "consent",
                    body,
                    false,
                )
            }
        }
    }

    fn view_overview(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let lang = self.lang;
        let b = &ctx.props().loaded.bundle;
        let order = self.nav.order();
        let cur = self.nav.current();
        let flow = sequence::flow_order(b);
        let card = |n: usize, id: &str| {
            let Some(s) = b.slide(id) else {
                return html! {};
            };
            let target = id.to_string();
            let is_cur = id == cur;
            html! {
                <li>
                    <button class={classes!("card", is_cur.then_some("current"), s.mandatory.then_some("mandatory"))}
                        aria-label={i18n::goto_label(lang, n, &s.title)} aria-current={is_cur.then_some("true")}
                        data-testid="overview-card" data-slide={id.to_string()}
                        onclick={link.callback(move |_| Msg::Jump(target.clone()))}>
                        <span class="num">{ n }</span>
                        <span class="title">{ &s.title }</span>
                        if let Some(k) = &s.key_message { <span class="km">{ k }</span> }
                        if s.mandatory { <span class="badge">{ t(lang, K::Mandatory) }</span> }
                    </button>
                </li>
            }
        };
        let body = if order == flow.as_slice() {
            let mut n = 0;
            html! {
                <div class="dialog-body overview-body">
                { for b.flow.iter().map(|sec| {
                    let cards: Vec<Html> = sec.slides.iter().map(|id| { n += 1; card(n, id) }).collect();
                    html! { <section><h3>{ &sec.title }</h3><ol class="cards">{ for cards }</ol></section> }
                }) }
                </div>
            }
        } else {
            html! {
                <div class="dialog-body overview-body">
                    <section><h3>{ t(lang, K::Sequence) }</h3>
                    <ol class="cards">{ for order.iter().enumerate().map(|(i, id)| card(i + 1, id)) }</ol></section>
                </div>
            }
        };
        self.dialog(
            ctx,
            "overview",
            t(lang, K::Overview).into(),
            "overview-panel",
            body,
            true,
        )
    }

    fn view_form(&self, ctx: &Context<Self>, visit: bool) -> Html {
        let link = ctx.link();
        let lang = self.lang;
        let title = t(
            lang,
            if visit {
                K::RequestVisit
            } else {
                K::AskQuestion
            },
        );
        let body = if self.consent != Some(true) {
            html! {
                <div class="dialog-body">
                    <p>{ t(lang, K::ConsentBody) }</p>
                    <div class="row end">
                        { button("btn primary", None, Some("consent-accept"), None, false, link.callback(|_| Msg::Consent(true)), t(lang, K::Accept).into()) }
                    </div>
                </div>
            }
        } else if self.form_sent {
            html! { <div class="dialog-body"><p class="ok-note" role="status" data-testid="form-sent">{ t(lang, K::Sent) }</p></div> }
        } else {
            html! {
                <form class="dialog-body form" onsubmit={link.callback(move |e: SubmitEvent| { e.prevent_default(); if visit { Msg::SubmitVisit } else { Msg::SubmitAsk } })}>
                    <label for="form-text">{ if visit { t(lang, K::Note) } else { t(lang, K::AskQuestion) } }</label>
                    <textarea id="form-text" data-testid="form-text" rows="4" maxlength="2000"
                        oninput={link.callback(|e: InputEvent| Msg::FormText(e.target_unchecked_into::<HtmlTextAreaElement>().value()))} />
                    if visit {
                        <label for="form-time">{ t(lang, K::PreferredTime) }</label>
                        <input id="form-time" data-testid="form-time" type="text" maxlength="100"
                            oninput={link.callback(|e: InputEvent| Msg::FormTime(e.target_unchecked_into::<HtmlInputElement>().value()))} />
                    }
                    <div class="row end"><button class="btn primary" type="submit" data-testid="form-send">{ t(lang, K::Send) }</button></div>
                </form>
            }
        };
        self.dialog(
            ctx,
            "form",
            title.into(),
            if visit { "visit-form" } else { "ask-form" },
            body,
            true,
        )
    }

    fn view_sequence(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let lang = self.lang;
        let b = &ctx.props().loaded.bundle;
        let n = self.seq_draft.len();
        let missing: Vec<_> = b
            .slides
            .iter()
            .filter(|s| !self.seq_draft.contains(&s.id))
            .collect();
        let body = html! {
            <div class="dialog-body seq">
                <ol class="seq-list" data-testid="sequence-list">
                { for self.seq_draft.iter().enumerate().map(|(i, id)| {
                    let s = b.slide(id);
                    let mandatory = s.is_some_and(|s| s.mandatory);
                    html! {
                        <li data-slide={id.clone()}>
                            <span class="num">{ i + 1 }</span>
                            <span class="title">{ s.map(|s| s.title.clone()).unwrap_or_else(|| id.clone()) }
                                if mandatory { <span class="badge">{ t(lang, K::Mandatory) }</span> }</span>
                            { button("ctl", None, None, Some(t(lang, K::MoveUp)), i == 0, link.callback(move |_| Msg::SeqShift(i, -1)), icon("up")) }
                            { button("ctl", None, None, Some(t(lang, K::MoveDown)), i + 1 == n, link.callback(move |_| Msg::SeqShift(i, 1)), icon("down")) }
                            { button("ctl", None, Some("sequence-remove"), Some(t(lang, K::Remove)), mandatory, link.callback(move |_| Msg::SeqRemove(i)), icon("close")) }
                        </li>
                    }
                }) }
                </ol>
                if !missing.is_empty() {
                    <h3>{ t(lang, K::AddSlide) }</h3>
                    <ul class="seq-add">
                    { for missing.into_iter().map(|s| {
                        let id = s.id.clone();
                        html! { <li><button class="btn small" onclick={link.callback(move |_| Msg::SeqAdd(id.clone()))}>{ "+ " }{ &s.title }</button></li> }
                    }) }
                    </ul>
                }
                <div class="row">
                    <label for="seq-name" class="sr-only">{ t(lang, K::SequenceName) }</label>
                    <input id="seq-name" data-testid="sequence-name" placeholder={t(lang, K::SequenceName)} value={self.seq_name.clone()}
                        oninput={link.callback(|e: InputEvent| Msg::SeqName(e.target_unchecked_into::<HtmlInputElement>().value()))} />
                    { button("btn primary", None, Some("sequence-save"), None, false, link.callback(|_| Msg::SeqSave), t(lang, K::SaveSequence).into()) }
                </div>
            </div>
        };
        self.dialog(
            ctx,
            "sequence",
            t(lang, K::EditSequence).into(),
            "sequence-editor",
            body,
            true,
        )
    }

    fn view_start(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let lang = self.lang;
        let b = &ctx.props().loaded.bundle;
        let custom = self.seq_draft != sequence::flow_order(b);
        html! {
            <>
            <main class="start" data-testid="start-call-screen">
                <div class="start-card">
                    <p class="eyebrow">{ b.deck.product.clone().unwrap_or_default() }</p>
                    <h1>{ &b.deck.title }</h1>
                    <p class="meta">{ format!("v{} · {} {} · {}", b.deck.version, t(lang, K::ApprovalCode), b.approval.code,
                        i18n::approval_window(lang, &b.approval.valid_from, &b.approval.valid_until)) }</p>
                    <h2>{ t(lang, K::StartCallTitle) }</h2>
                    <label for="hcp-id">{ t(lang, K::PhysicianId) }</label>
                    <input id="hcp-id" data-testid="hcp-id" autocomplete="off" autocapitalize="off" spellcheck="false"
                        placeholder={format!("{} — {}", t(lang, K::Anonymous), t(lang, K::PhysicianIdHint))}
                        value={self.hcp.clone()} aria-invalid={self.hcp_error.to_string()}
                        oninput={link.callback(|e: InputEvent| Msg::SetHcp(e.target_unchecked_into::<HtmlInputElement>().value()))} />
                    if self.hcp_error { <p class="warn" role="alert">{ t(lang, K::PhysicianIdHint) }</p> }
                    <div class="seg" role="radiogroup" aria-label="Channel">
                        <button role="radio" aria-checked={(!self.remote).to_string()} class={classes!((!self.remote).then_some("on"))}
                            data-testid="channel-in-person" onclick={link.callback(|_| Msg::SetRemote(false))}>{ t(lang, K::InPerson) }</button>
                        <button role="radio" aria-checked={self.remote.to_string()} class={classes!(self.remote.then_some("on"))}
                            data-testid="channel-remote" onclick={link.callback(|_| Msg::SetRemote(true))}>{ t(lang, K::Remote) }</button>
                    </div>
                    <label for="seq-pick">{ t(lang, K::Sequence) }</label>
                    <div class="row">
                        <select id="seq-pick" data-testid="sequence-pick"
                            onchange={link.callback(|e: web_sys::Event| Msg::PickSequence(e.target_unchecked_into::<HtmlInputElement>().value()))}>
                            <option value="" selected={self.seq_name.is_empty()}>{ format!("{} ({})", t(lang, K::FullDeck), sequence::flow_order(b).len()) }</option>
                            { for self.sequences.iter().map(|s| html! {
                                <option value={s.name.clone()} selected={s.name == self.seq_name}>{ format!("{} ({})", s.name, s.slides.len()) }</option>
                            }) }
                        </select>
                        { button("btn", None, Some("sequence-edit"), None, false, link.callback(|_| Msg::Open(Overlay::Sequence)), t(lang, K::EditSequence).into()) }
                    </div>
                    if custom { <p class="muted">{ format!("{}: {}", t(lang, K::Sequence), self.seq_draft.len()) }</p> }
                    if let Some(n) = &self.seq_notice { <p class="warn" role="status" data-testid="sequence-notice">{ n }</p> }
                    { button("btn primary big", Some("btn-start-call"), Some("start-call"), None, false, link.callback(|_| Msg::StartCall),
                        html! { <>{ icon("play") }{ t(lang, K::StartCall) }</> }) }
                </div>
            </main>
            { self.view_overlay(ctx) }
            </>
        }
    }

    fn view_summary(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let lang = self.lang;
        let b = &ctx.props().loaded.bundle;
        let title = |id: &str| {
            b.slide(id)
                .map(|s| s.title.clone())
                .unwrap_or_else(|| id.to_string())
        };
        let cur = self.nav.current().to_string();
        let live_ms = (dom::now_ms() - self.entered_at).max(0.0) as u64;
        let mandatory = sequence::mandatory(b);
        let missed: Vec<_> = mandatory
            .iter()
            .filter(|m| !self.summary.shown(m) && **m != cur)
            .collect();
        let total = self.summary.total_dwell_ms() + live_ms;
        html! {
            <main class="summary" data-testid="call-summary">
                <div class="summary-card">
                    <h1>{ t(lang, K::CallSummary) }</h1>
                    <p class="meta">{ format!("{} · {}", b.deck.title, i18n::duration(total)) }</p>
                    if !missed.is_empty() {
                        <p class="warn" data-testid="mandatory-missed">{ t(lang, K::MandatoryMissed) }{ ": " }{ missed.iter().map(|m| title(m)).collect::<Vec<_>>().join(", ") }</p>
                    }
                    <h2>{ t(lang, K::SlidesShown) }</h2>
                    <ol class="summary-views">
                    { for self.summary.views.iter().map(|(id, ms)| html! {
                        <li><span class="title">{ title(id) }</span>
                            if let Some(r) = self.summary.reaction_on(id) { <span class={classes!("react-chip", format!("r{r}"))}>{ format!("{r:+}") }</span> }
                            <span class="dwell">{ i18n::duration(*ms) }</span></li>
                    }) }
                        <li class="live"><span class="title">{ title(&cur) }</span>
                            if let Some(r) = self.summary.reaction_on(&cur) { <span class={classes!("react-chip", format!("r{r}"))}>{ format!("{r:+}") }</span> }
                            <span class="dwell">{ i18n::duration(live_ms) }</span></li>
                    </ol>
                    <h2>{ t(lang, K::Questions) }</h2>
                    if self.summary.questions.is_empty() { <p class="muted">{ t(lang, K::NoneYet) }</p> }
                    <ul class="summary-questions">
                    { for self.summary.questions.iter().map(|(id, q)| html! { <li><q>{ q }</q><span class="muted">{ format!(" — {}", title(id)) }</span></li> }) }
                    </ul>
                    <div class="row end">
                        { button("btn", None, Some("resume-call"), None, false, link.callback(|_| Msg::ResumeCall), t(lang, K::ResumeCall).into()) }
                        { button("btn danger", None, Some("close-call"), None, false, link.callback(|_| Msg::CloseCall), t(lang, K::CloseCall).into()) }
                    </div>
                </div>
            </main>
        }
    }
}
