//! The tracker (wasm32 only): turns UI calls into events, writes every event to the
//! IndexedDB outbox before anything else, and uploads batches with backoff.
//! See `API.md` for the contract with the UI and `docs/events.md` for the events.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use edetail_format::event::{Event, EventKind, NavVia};
use edetail_format::ingest::{BatchResponse, ErrorBody, KEEPALIVE_MAX_BYTES};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};

use super::backoff::{Backoff, parse_retry_after};
use super::batch::{
    self, Entry, MAX_BYTES_PER_BATCH, MAX_EVENTS_PER_BATCH, SEND_AFTER_MS, SEND_AT_EVENTS,
};
use super::outbox::{DB_NAME, Outbox};
use super::session::{SessionContext, SessionRecord, envelope, is_interaction};
use super::status::{StorageState, SyncStatus};
use super::timing::{ClosedView, ViewTimer};
use super::web;

/// `sessionStorage` key of the session record.
pub const SESSION_KEY: &str = "edetail.tracking.session";
/// `localStorage` key of the device id.
pub const DEVICE_ID_KEY: &str = "edetail.device_id";
/// `localStorage` flag: `navigator.storage.persist()` was asked once on this device.
pub const PERSIST_ASKED_KEY: &str = "edetail.persist_asked";
/// `localStorage` key prefix of events emitted but not yet committed to IndexedDB;
/// one key per tracker (`<prefix><uuid>`), written synchronously with every event so
/// that events emitted while the page unloads survive (see `recover_pending`).
pub const PENDING_PREFIX: &str = "edetail.tracking.pending.";
/// This page's unacknowledged events kept in memory for keepalive flushes.
const KEEP_IN_MEMORY: usize = 500;
/// Test hook `window.__edetailEvents`: the last this many emitted events.
pub const EVENT_LOG_CAP: u32 = 10_000;

/// Knobs with production defaults; tests shorten them.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerOptions {
    pub db_name: String,
    pub session_key: String,
    pub send_at_events: u32,
    pub send_after_ms: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Install `visibilitychange`/`pagehide`/`pageshow`/`online` listeners.
    pub listen: bool,
    /// Ask `navigator.storage.persist()` (once per device).
    pub request_persistence: bool,
    /// `localStorage` key prefix of not-yet-committed events (`PENDING_PREFIX`).
    pub pending_prefix: String,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        TrackerOptions {
            db_name: DB_NAME.into(),
            session_key: SESSION_KEY.into(),
            send_at_events: SEND_AT_EVENTS,
            send_after_ms: SEND_AFTER_MS,
            retry_base_ms: super::backoff::BASE_MS,
            retry_max_ms: super::backoff::MAX_MS,
            listen: true,
            request_persistence: true,
            pending_prefix: PENDING_PREFIX.into(),
        }
    }
}

enum Store {
    Opening,
    Idb(Outbox),
    Memory(Vec<Entry>),
}

type StatusFn = Rc<dyn Fn(&SyncStatus)>;
type EventFn = Rc<dyn Fn(&Event)>;
type Listener = (
    web_sys::EventTarget,
    &'static str,
    Closure<dyn FnMut(web_sys::Event)>,
);

struct Inner {
    ctx: SessionContext,
    opts: TrackerOptions,
    device_id: String,
    active: bool,
    ended: bool,
    rec: Option<SessionRecord>,
    timer: ViewTimer,
    /// The slide on screen (known even while tracking is off).
    shown: Option<(String, String)>,
    /// Closed by `pagehide`; reopened on `pageshow` from the back/forward cache.
    suspended: bool,
    store: Store,
    /// Emitted, not yet committed to the store.
    to_write: Vec<Entry>,
    /// Emitted, not yet committed to IndexedDB (mirrored in `localStorage[pending_key]`).
    uncommitted: Vec<Entry>,
    pending_key: String,
    /// A tracker-less outbox drain (`drain_outbox`): never emits, pauses while a
    /// session tracker is alive.
    drain_only: bool,
    writing: bool,
    /// Entries in the store (all sessions).
    stored: u32,
    /// This page's unacknowledged events (for keepalive flushes).
    recent: Vec<Entry>,
    sending: bool,
    max_events: usize,
    backoff: Backoff,
    send_timer: Option<i32>,
    retry_timer: Option<i32>,
    status: SyncStatus,
    status_subs: Vec<(u64, StatusFn)>,
    event_subs: Vec<(u64, EventFn)>,
    next_sub: u64,
    listeners: Vec<Listener>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.drain_only {
            let left = LIVE_TRACKERS.with(|n| {
                n.set(n.get().saturating_sub(1));
                n.get()
            });
            if left == 0 {
                // The session is gone: the drain takes over delivery (after this drop).
                let _ = web::set_timeout(0, kick_drain);
            }
        }
        for (target, name, cb) in self.listeners.drain(..) {
            let _ = target.remove_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
        }
        for t in [self.send_timer.take(), self.retry_timer.take()]
            .into_iter()
            .flatten()
        {
            web::clear_timeout(t);
        }
    }
}

/// The engagement tracker. Cheap to clone (one `Rc`).
#[derive(Clone)]
pub struct Tracker(Rc<RefCell<Inner>>);

impl PartialEq for Tracker {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// Unsubscribes when dropped.
#[must_use = "dropping the Subscription unsubscribes"]
pub struct Subscription {
    tracker: Weak<RefCell<Inner>>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(t) = self.tracker.upgrade()
            && let Ok(mut i) = t.try_borrow_mut()
        {
            i.status_subs.retain(|(id, _)| *id != self.id);
            i.event_subs.retain(|(id, _)| *id != self.id);
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn load_device_id(ctx: &SessionContext) -> String {
    if let Some(d) = ctx.device_id.as_ref().filter(|d| !d.is_empty()) {
        return d.clone();
    }
    let ls = web::local_storage();
    if let Some(id) = ls
        .as_ref()
        .and_then(|s| s.get_item(DEVICE_ID_KEY).ok().flatten())
        .filter(|id| !id.is_empty() && id.len() <= 128)
    {
        return id;
    }
    let id = format!("d-{}", uuid::Uuid::new_v4().simple());
    if let Some(s) = ls {
        let _ = s.set_item(DEVICE_ID_KEY, &id);
    }
    id
}

fn viewport() -> Option<String> {
    let w = web_sys::window()?;
    // Integers only: float formatting would add ~10 KB of wasm.
    let width = w.inner_width().ok()?.as_f64()? as i64;
    let height = w.inner_height().ok()?.as_f64()? as i64;
    Some(format!("{width}x{height}"))
}

fn user_agent() -> Option<String> {
    web_sys::window()?.navigator().user_agent().ok()
}

impl Tracker {
    /// Start tracking a session with production settings.
    pub fn start(ctx: SessionContext) -> Tracker {
        Tracker::start_with(ctx, TrackerOptions::default())
    }

    pub fn start_with(ctx: SessionContext, opts: TrackerOptions) -> Tracker {
        Tracker::start_inner(ctx, opts, false)
    }

    fn start_inner(ctx: SessionContext, opts: TrackerOptions, drain_only: bool) -> Tracker {
        let now = web::now_ms();
        if !drain_only {
            LIVE_TRACKERS.with(|n| n.set(n.get() + 1));
        }
        let pending_key = format!("{}{}", opts.pending_prefix, new_id());
        let status = SyncStatus {
            online: web::online(),
            ..SyncStatus::default()
        };
        let inner = Inner {
            timer: ViewTimer::new(ctx.view_threshold_ms, web::page_visible(), now),
            backoff: Backoff::with_limits(opts.retry_base_ms, opts.retry_max_ms),
            ctx,
            opts,
            device_id: String::new(),
            active: false,
            ended: false,
            rec: None,
            shown: None,
            suspended: false,
            store: Store::Opening,
            to_write: Vec::new(),
            uncommitted: Vec::new(),
            pending_key,
            drain_only,
            writing: false,
            stored: 0,
            recent: Vec::new(),
            sending: false,
            max_events: MAX_EVENTS_PER_BATCH,
            send_timer: None,
            retry_timer: None,
            status,
            status_subs: Vec::new(),
            event_subs: Vec::new(),
            next_sub: 0,
            listeners: Vec::new(),
        };
        let t = Tracker(Rc::new(RefCell::new(inner)));
        let (allowed, listen, persist) = {
            let i = t.0.borrow();
            (
                i.ctx.tracking_allowed,
                i.opts.listen,
                i.opts.request_persistence,
            )
        };
        if listen {
            t.install_listeners();
        }
        if allowed {
            t.activate(now);
            if persist {
                t.request_persistence();
            }
        }
        t.open_store();
        t
    }

    /// Turn tracking on: device id, session record (resumed or new), `session_start`.
    fn activate(&self, now: i64) {
        let new_session = {
            let mut i = self.0.borrow_mut();
            if i.active || i.ended {
                return;
            }
            i.active = true;
            i.device_id = load_device_id(&i.ctx);
            let key = i.opts.session_key.clone();
            let old = web::session_storage()
                .and_then(|s| s.get_item(&key).ok().flatten())
                .and_then(|s| SessionRecord::parse(&s));
            match old {
                Some(r) if r.resumable(&i.ctx, now) => {
                    i.rec = Some(r);
                    false
                }
                _ => {
                    i.rec = Some(SessionRecord::new(new_id(), &i.ctx, now));
                    true
                }
            }
        };
        if new_session {
            let (mode, sequence) = {
                let i = self.0.borrow();
                (i.ctx.mode.clone(), i.ctx.sequence.clone())
            };
            self.push(
                EventKind::SessionStart {
                    mode,
                    sequence,
                    user_agent: user_agent(),
                    viewport: viewport(),
                },
                now,
            );
        } else {
            self.save_record();
        }
    }

    /// Mirror the not-yet-committed events in `localStorage` (synchronous).
    fn save_pending(&self) {
        let i = self.0.borrow();
        let Some(ls) = web::local_storage() else {
            return;
        };
        if i.uncommitted.is_empty() {
            let _ = ls.remove_item(&i.pending_key);
            return;
        }
        let list: Vec<(&str, &str)> = i
            .uncommitted
            .iter()
            .map(|e| (e.id.as_str(), e.json.as_str()))
            .collect();
        let Ok(json) = serde_json::to_string(&list) else {
            return;
        };
        if ls.set_item(&i.pending_key, &json).is_err() {
            drop(i);
            self.0
                .borrow_mut()
                .status
                .log_line("localStorage full: events emitted while leaving may be lost".into());
        }
    }

    /// These events are committed to IndexedDB (or acknowledged): forget them.
    fn unpend(&self, ids: &[String]) {
        let changed = {
            let mut i = self.0.borrow_mut();
            let before = i.uncommitted.len();
            i.uncommitted.retain(|e| !ids.contains(&e.id));
            i.uncommitted.len() != before
        };
        if changed {
            self.save_pending();
        }
    }

    fn save_record(&self) {
        let i = self.0.borrow();
        if let (Some(rec), Some(s)) = (i.rec.as_ref(), web::session_storage())
            && let Ok(json) = serde_json::to_string(rec)
        {
            let _ = s.set_item(&i.opts.session_key, &json);
        }
    }

    /// Build an event around `kind` (current slide attached) and queue it.
    fn push(&self, kind: EventKind, now: i64) {
        let slide = {
            let i = self.0.borrow();
            i.timer.current().map(|(a, b)| (a.to_owned(), b.to_owned()))
        };
        self.push_on(kind, now, slide);
    }

    fn push_on(&self, kind: EventKind, now: i64, slide: Option<(String, String)>) {
        let (event, subs) = {
            let mut guard = self.0.borrow_mut();
            let i = &mut *guard;
            if !i.active {
                return;
            }
            let Some(rec) = i.rec.as_mut() else { return };
            let ev = envelope(
                &i.ctx,
                &i.device_id,
                rec,
                new_id(),
                now,
                slide.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                kind,
            );
            let json = match serde_json::to_string(&ev) {
                Ok(j) => j,
                Err(e) => {
                    i.status.log_line(format!("could not encode an event: {e}"));
                    return;
                }
            };
            let entry = Entry {
                id: ev.id.clone(),
                json,
            };
            i.uncommitted.push(entry.clone());
            i.to_write.push(entry.clone());
            i.recent.push(entry);
            if i.recent.len() > KEEP_IN_MEMORY {
                let excess = i.recent.len() - KEEP_IN_MEMORY;
                i.recent.drain(..excess);
            }
            let subs: Vec<EventFn> = i.event_subs.iter().map(|(_, f)| f.clone()).collect();
            (ev, subs)
        };
        self.save_record();
        // Synchronously durable before anything else: an IndexedDB write started now
        // may never commit when the page is going away (pagehide, reload).
        self.save_pending();
        log_event(&event);
        for f in subs {
            f(&event);
        }
        self.write_soon();
        self.notify();
    }

    fn emit_closed(&self, v: ClosedView, now: i64) {
        if v.counted
            && let Some(rec) = self.0.borrow_mut().rec.as_mut()
        {
            rec.note_counted(&v.slide_id);
        }
        let slide = Some((v.slide_id, v.slide_hash));
        self.push_on(
            EventKind::SlideView {
                enter_time: v.enter_time,
                exit_time: v.exit_time,
                dwell_ms: v.dwell_ms,
                hidden_ms: v.hidden_ms,
                order: v.order,
                via: v.via,
                counted: v.counted,
            },
            now,
            slide,
        );
    }

    /// The presenter is now on `slide_id`: closes the open view (emits `slide_view`)
    /// and opens a new one. A no-op when that slide's view is already open.
    pub fn enter_slide(&self, slide_id: &str, slide_hash: &str, via: NavVia) {
        let now = web::now_ms();
        let closed = {
            let mut guard = self.0.borrow_mut();
            let i = &mut *guard;
            i.shown = Some((slide_id.to_owned(), slide_hash.to_owned()));
            i.suspended = false;
            if !i.active {
                return;
            }
            if i.timer.current() == Some((slide_id, slide_hash)) {
                return;
            }
            let Some(rec) = i.rec.as_mut() else { return };
            rec.views += 1;
            let order = rec.views;
            i.timer.open(now, slide_id, slide_hash, via, order)
        };
        if let Some(v) = closed {
            self.emit_closed(v, now);
        } else {
            self.save_record();
        }
    }

    /// Any interaction on the open slide: its view counts.
    pub fn interaction(&self) {
        self.0.borrow_mut().timer.interaction();
    }

    /// Emit an in-slide event (the envelope and current slide are added).
    /// Lifecycle kinds (`SessionStart`, `SessionEnd`, `SlideView`, `Visibility`) are
    /// the tracker's own and are ignored here.
    pub fn emit(&self, kind: EventKind) {
        if matches!(
            kind,
            EventKind::SessionStart { .. }
                | EventKind::SessionEnd { .. }
                | EventKind::SlideView { .. }
                | EventKind::Visibility { .. }
        ) {
            web_sys::console::warn_1(&JsValue::from_str(&format!(
                "edetail tracking: `{}` is emitted by the tracker itself; ignored",
                kind.type_name()
            )));
            return;
        }
        if is_interaction(&kind) {
            self.interaction();
        }
        self.push(kind, web::now_ms());
    }

    /// Self-serve consent answered (see API.md).
    pub fn set_consent(&self, granted: bool) {
        let now = web::now_ms();
        let active = self.0.borrow().active;
        if granted {
            if active {
                return;
            }
            if self.0.borrow().ended {
                return;
            }
            self.activate(now);
            self.push_on(EventKind::Consent { granted: true }, now, None);
            let shown = self.0.borrow().shown.clone();
            if let Some((id, hash)) = shown {
                self.enter_slide(&id, &hash, NavVia::Start);
            }
            if self.0.borrow().opts.request_persistence {
                self.request_persistence();
            }
        } else if active {
            let closed = self.0.borrow_mut().timer.close(now);
            if let Some(v) = closed {
                self.emit_closed(v, now);
            }
            self.push(EventKind::Consent { granted: false }, now);
            self.0.borrow_mut().active = false;
            self.flush();
        }
    }

    /// End the session: closes the view, emits `session_end`, flushes.
    pub fn end_session(&self, reason: &str) {
        let now = web::now_ms();
        if !self.0.borrow().active {
            self.0.borrow_mut().ended = true;
            return;
        }
        let closed = self.0.borrow_mut().timer.close(now);
        if let Some(v) = closed {
            self.emit_closed(v, now);
        }
        let (duration_ms, slides_viewed) = {
            let i = self.0.borrow();
            let rec = i.rec.as_ref();
            (
                rec.map(|r| u64::try_from(now - r.started_at).unwrap_or(0))
                    .unwrap_or(0),
                rec.map(|r| r.slides_viewed.len() as u32).unwrap_or(0),
            )
        };
        self.push_on(
            EventKind::SessionEnd {
                reason: reason.to_owned(),
                duration_ms,
                slides_viewed,
            },
            now,
            None,
        );
        {
            let mut i = self.0.borrow_mut();
            i.active = false;
            i.ended = true;
            if let Some(s) = web::session_storage() {
                let _ = s.remove_item(&i.opts.session_key);
            }
        }
        self.flush();
    }

    /// Page visibility changed (called by the tracker's own listener; public for tests).
    pub fn handle_visibility(&self, visible: bool) {
        let now = web::now_ms();
        let changed = self.0.borrow_mut().timer.set_visible(now, visible);
        if changed {
            self.push(EventKind::Visibility { visible }, now);
        }
        if visible {
            self.flush();
        } else {
            self.flush_keepalive();
        }
    }

    /// The page is being left (`pagehide`; public for tests): close the open view,
    /// keep the session record for a reload, and flush with `keepalive`.
    pub fn handle_pagehide(&self) {
        let now = web::now_ms();
        let closed = {
            let mut i = self.0.borrow_mut();
            let c = i.timer.close(now);
            if c.is_some() {
                i.suspended = true;
            }
            c
        };
        if let Some(v) = closed {
            self.emit_closed(v, now);
        }
        self.flush_keepalive();
    }

    fn handle_pageshow(&self, persisted: bool) {
        let resume = {
            let i = self.0.borrow();
            (persisted && i.suspended)
                .then(|| i.shown.clone())
                .flatten()
        };
        if let Some((id, hash)) = resume {
            self.enter_slide(&id, &hash, NavVia::Start);
        }
    }

    pub fn status(&self) -> SyncStatus {
        self.0.borrow().status.clone()
    }

    pub fn session_id(&self) -> String {
        self.0
            .borrow()
            .rec
            .as_ref()
            .map(|r| r.session_id.clone())
            .unwrap_or_default()
    }

    pub fn device_id(&self) -> String {
        self.0.borrow().device_id.clone()
    }

    /// Whether events are being recorded now.
    pub fn is_active(&self) -> bool {
        self.0.borrow().active
    }

    pub fn subscribe_status(&self, f: impl Fn(&SyncStatus) + 'static) -> Subscription {
        let mut i = self.0.borrow_mut();
        i.next_sub += 1;
        let id = i.next_sub;
        i.status_subs.push((id, Rc::new(f)));
        Subscription {
            tracker: Rc::downgrade(&self.0),
            id,
        }
    }

    pub fn subscribe_events(&self, f: impl Fn(&Event) + 'static) -> Subscription {
        let mut i = self.0.borrow_mut();
        i.next_sub += 1;
        let id = i.next_sub;
        i.event_subs.push((id, Rc::new(f)));
        Subscription {
            tracker: Rc::downgrade(&self.0),
            id,
        }
    }

    fn notify(&self) {
        let (status, subs) = {
            let mut i = self.0.borrow_mut();
            i.status.unsynced = i.stored + i.to_write.len() as u32;
            i.status.online = web::online();
            let subs: Vec<StatusFn> = i.status_subs.iter().map(|(_, f)| f.clone()).collect();
            (i.status.clone(), subs)
        };
        for f in subs {
            f(&status);
        }
    }

    fn log(&self, line: String) {
        web_sys::console::warn_1(&JsValue::from_str(&format!("edetail tracking: {line}")));
        self.0.borrow_mut().status.log_line(line);
    }

    fn set_error(&self, e: Option<String>) {
        if let Some(msg) = &e {
            self.log(msg.clone());
        }
        self.0.borrow_mut().status.last_error = e;
    }

    /// Wait until the outbox is open, everything emitted is stored, and no upload runs
    /// (tests; a UI may use it before showing "all stored").
    pub async fn settled(&self) {
        for _ in 0..500 {
            let done = {
                let i = self.0.borrow();
                !matches!(i.store, Store::Opening)
                    && !i.writing
                    && i.to_write.is_empty()
                    && !i.sending
            };
            if done {
                return;
            }
            web::sleep(10).await;
        }
    }

    // ----- storage -----

    fn open_store(&self) {
        let t = self.clone();
        spawn_local(async move {
            let (name, prefix, own) = {
                let i = t.0.borrow();
                (
                    i.opts.db_name.clone(),
                    i.opts.pending_prefix.clone(),
                    i.pending_key.clone(),
                )
            };
            match Outbox::open(&name).await {
                Ok(db) => {
                    if let Err(e) = recover_pending(&db, &prefix, &own).await {
                        t.log(e);
                    }
                    let stored = db.count().await.unwrap_or(0);
                    {
                        let mut i = t.0.borrow_mut();
                        i.stored = stored;
                        i.store = Store::Idb(db);
                        i.status.storage = StorageState::IndexedDb;
                    }
                    t.notify();
                    t.write_soon();
                    // Resend what earlier sessions left behind.
                    if stored > 0 {
                        t.flush();
                    }
                }
                Err(e) => {
                    {
                        let mut i = t.0.borrow_mut();
                        i.store = Store::Memory(Vec::new());
                        i.status.storage = StorageState::MemoryOnly;
                    }
                    t.set_error(Some(format!(
                        "events kept in memory only (lost when the page closes): {e}"
                    )));
                    t.write_soon();
                }
            }
        });
    }

    fn write_soon(&self) {
        {
            let i = self.0.borrow();
            if i.writing || i.to_write.is_empty() || matches!(i.store, Store::Opening) {
                return;
            }
        }
        self.0.borrow_mut().writing = true;
        let t = self.clone();
        spawn_local(async move {
            loop {
                let (batch, db) = {
                    let mut i = t.0.borrow_mut();
                    let batch = std::mem::take(&mut i.to_write);
                    if batch.is_empty() {
                        i.writing = false;
                        break;
                    }
                    match &mut i.store {
                        Store::Idb(db) => (batch, Some(db.clone())),
                        Store::Memory(m) => {
                            m.extend(batch.iter().cloned());
                            i.stored = m.len() as u32;
                            (Vec::new(), None)
                        }
                        Store::Opening => {
                            i.to_write = batch;
                            i.writing = false;
                            return;
                        }
                    }
                };
                if let Some(db) = db {
                    let n = batch.len() as u32;
                    match db.put(&batch).await {
                        Ok(()) => {
                            t.0.borrow_mut().stored += n;
                            let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
                            t.unpend(&ids);
                        }
                        Err(e) => {
                            // Keep them (in front, in order) and try again shortly.
                            {
                                let mut i = t.0.borrow_mut();
                                let later = std::mem::take(&mut i.to_write);
                                i.to_write = batch;
                                i.to_write.extend(later);
                                i.writing = false;
                            }
                            t.set_error(Some(format!("could not store events: {e}")));
                            t.notify();
                            // Weak: a dropped tracker's events are in the pending list.
                            let weak = Rc::downgrade(&t.0);
                            web::set_timeout(2000, move || {
                                if let Some(rc) = weak.upgrade() {
                                    Tracker(rc).write_soon();
                                }
                            });
                            return;
                        }
                    }
                }
                t.notify();
                t.schedule_send();
            }
        });
    }

    // ----- delivery -----

    /// Send now when enough events wait, else arm the send timer.
    fn schedule_send(&self) {
        let (stored, at, after, armed, waiting) = {
            let i = self.0.borrow();
            (
                i.stored,
                i.opts.send_at_events,
                i.opts.send_after_ms,
                i.send_timer.is_some(),
                i.retry_timer.is_some(),
            )
        };
        if waiting || stored == 0 {
            return;
        }
        if stored >= at {
            self.send();
        } else if !armed {
            let weak = Rc::downgrade(&self.0);
            let h = web::set_timeout(after, move || {
                if let Some(rc) = weak.upgrade() {
                    let t = Tracker(rc);
                    t.0.borrow_mut().send_timer = None;
                    t.send();
                }
            });
            self.0.borrow_mut().send_timer = h;
        }
    }

    /// Send everything in the outbox now, ignoring any backoff wait.
    pub fn flush(&self) {
        let timers = {
            let mut i = self.0.borrow_mut();
            [i.send_timer.take(), i.retry_timer.take()]
        };
        for t in timers.into_iter().flatten() {
            web::clear_timeout(t);
        }
        self.0.borrow_mut().status.retry_at_ms = None;
        self.write_soon();
        self.send();
    }

    fn send(&self) {
        {
            let mut i = self.0.borrow_mut();
            if i.sending || i.ctx.endpoint.is_empty() || matches!(i.store, Store::Opening) {
                return;
            }
            if i.drain_only && LIVE_TRACKERS.with(|n| n.get()) > 0 {
                return;
            }
            i.sending = true;
            i.status.sending = true;
        }
        self.notify();
        let t = self.clone();
        spawn_local(async move {
            while let Step::More = t.send_one().await {}
            {
                let mut i = t.0.borrow_mut();
                i.sending = false;
                i.status.sending = false;
            }
            t.notify();
        });
    }

    async fn read_outbox(&self, limit: usize) -> Result<Vec<Entry>, String> {
        let db = {
            let i = self.0.borrow();
            match &i.store {
                Store::Idb(db) => db.clone(),
                Store::Memory(m) => return Ok(m.iter().take(limit).cloned().collect()),
                Store::Opening => return Ok(Vec::new()),
            }
        };
        db.read(limit as u32).await
    }

    async fn delete(&self, ids: &[String]) -> Result<(), String> {
        // Acknowledged (or dropped): nothing left to recover, whatever the store.
        self.unpend(ids);
        let db = {
            let mut i = self.0.borrow_mut();
            i.recent.retain(|e| !ids.contains(&e.id));
            match &mut i.store {
                Store::Idb(db) => db.clone(),
                Store::Memory(m) => {
                    m.retain(|e| !ids.contains(&e.id));
                    i.stored = m.len() as u32;
                    return Ok(());
                }
                Store::Opening => return Ok(()),
            }
        };
        db.delete(ids).await?;
        let n = db.count().await.unwrap_or(0);
        self.0.borrow_mut().stored = n;
        Ok(())
    }

    /// Schedule a retry after a failure; `retry_after_ms` from the server.
    fn back_off(&self, error: String, retry_after_ms: Option<u64>) {
        let delay = self
            .0
            .borrow_mut()
            .backoff
            .fail(js_sys::Math::random(), retry_after_ms);
        self.set_error(Some(format!(
            "{error}; retrying in {}.{} s",
            delay / 1000,
            (delay % 1000) / 100
        )));
        let weak = Rc::downgrade(&self.0);
        let h = web::set_timeout(u32::try_from(delay).unwrap_or(u32::MAX), move || {
            if let Some(rc) = weak.upgrade() {
                let t = Tracker(rc);
                {
                    let mut i = t.0.borrow_mut();
                    i.retry_timer = None;
                    i.status.retry_at_ms = None;
                }
                t.send();
            }
        });
        let mut i = self.0.borrow_mut();
        if let Some(old) = i.retry_timer.replace(h.unwrap_or(-1)) {
            web::clear_timeout(old);
        }
        i.status.retry_at_ms = Some(js_sys::Date::now() + delay as f64);
    }

    async fn send_one(&self) -> Step {
        let (max_events, device_id, endpoint, token) = {
            let i = self.0.borrow();
            (
                i.max_events,
                i.device_id.clone(),
                i.ctx.endpoint.clone(),
                i.ctx.auth_token.clone(),
            )
        };
        let entries = match self.read_outbox(max_events).await {
            Ok(e) => e,
            Err(e) => {
                self.set_error(Some(format!("could not read the outbox: {e}")));
                return Step::Done;
            }
        };
        if entries.is_empty() {
            return Step::Done;
        }
        // Events of earlier sessions may carry another device id only if the context
        // overrides it; the batch carries this page's (or the first event's) id.
        let device_id = if device_id.is_empty() {
            crate::json::from_str::<serde_json::Value>(&entries[0].json)
                .ok()
                .and_then(|v| v.get("device_id")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into())
        } else {
            device_id
        };
        let n = batch::take_count(&entries, &device_id, max_events, MAX_BYTES_PER_BATCH);
        if n == 0 {
            let id = entries[0].id.clone();
            self.log(format!(
                "dropped event {id}: larger than one upload may be ({} bytes)",
                entries[0].json.len()
            ));
            self.0.borrow_mut().status.rejected_total += 1;
            if let Err(e) = self.delete(&[id]).await {
                self.set_error(Some(e));
                return Step::Done;
            }
            return Step::More;
        }
        let sent: Vec<String> = entries[..n].iter().map(|e| e.id.clone()).collect();
        let body = batch::batch_body(&device_id, web::now_ms(), &entries[..n]);
        let resp = match post(&endpoint, token.as_deref(), &body, false).await {
            Ok(r) => r,
            Err(e) => {
                self.back_off(format!("upload failed (offline?): {e}"), None);
                return Step::Done;
            }
        };
        let code = resp.status();
        let text = match resp.text() {
            Ok(p) => JsFuture::from(p)
                .await
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        let retry_after = resp
            .headers()
            .get("retry-after")
            .ok()
            .flatten()
            .and_then(|v| parse_retry_after(&v));
        match code {
            200 => match crate::json::from_str::<BatchResponse>(&text) {
                Ok(r) => {
                    if self.handle_results(&sent, &r).await {
                        Step::More
                    } else {
                        Step::Done
                    }
                }
                Err(e) => {
                    self.back_off(format!("unreadable answer from the server: {e}"), None);
                    Step::Done
                }
            },
            413 if n > 1 => {
                let mut i = self.0.borrow_mut();
                i.max_events = (n / 2).max(1);
                drop(i);
                self.log(format!(
                    "server said batch too large; sending {} at a time",
                    (n / 2).max(1)
                ));
                Step::More
            }
            413 => {
                self.log(format!(
                    "dropped event {}: the server refuses it as too large",
                    sent[0]
                ));
                self.0.borrow_mut().status.rejected_total += 1;
                match self.delete(&sent).await {
                    Ok(()) => Step::More,
                    Err(e) => {
                        self.set_error(Some(e));
                        Step::Done
                    }
                }
            }
            _ => {
                let detail = crate::json::from_str::<ErrorBody>(&text)
                    .map(|b| format!("{}: {}", b.error, b.message))
                    .unwrap_or_else(|_| text.chars().take(200).collect());
                let what = match code {
                    401 => "device token refused (401)".to_string(),
                    429 | 503 => format!("server busy ({code})"),
                    _ => format!("upload refused ({code})"),
                };
                self.back_off(format!("{what} {detail}").trim().to_string(), retry_after);
                Step::Done
            }
        }
    }

    /// Apply a `200` answer. Returns whether to continue sending right away.
    async fn handle_results(&self, sent: &[String], resp: &BatchResponse) -> bool {
        let out = batch::apply_results(sent, resp);
        for (id, reason) in &out.rejected {
            self.log(format!("rejected {id}: {reason}"));
        }
        if let Err(e) = self.delete(&out.delete).await {
            self.set_error(Some(e));
            return false;
        }
        let progressed = !out.delete.is_empty();
        {
            let mut i = self.0.borrow_mut();
            i.status.rejected_total += out.rejected.len() as u32;
            if progressed {
                i.backoff.succeed();
                i.max_events = MAX_EVENTS_PER_BATCH;
                i.status.last_sync_ms = Some(js_sys::Date::now());
                i.status.last_error = None;
            }
        }
        self.notify();
        if !progressed {
            self.back_off("the server acknowledged none of the batch".into(), None);
            return false;
        }
        if !out.unanswered.is_empty() {
            self.log(format!(
                "{} events not acknowledged; they will be resent",
                out.unanswered.len()
            ));
        }
        self.0.borrow().stored > 0
    }

    /// Send this page's unacknowledged events with `fetch(keepalive)`, one body under
    /// `KEEPALIVE_MAX_BYTES` (browsers cap the sum of in-flight keepalive bodies at 64 KiB).
    /// The outbox stays authoritative: the answer, if the page lives to see it,
    /// deletes the acknowledged events; otherwise they are resent at the next start.
    pub fn flush_keepalive(&self) {
        let (entries, device_id, endpoint, token) = {
            let i = self.0.borrow();
            if i.ctx.endpoint.is_empty() || i.recent.is_empty() {
                return;
            }
            (
                i.recent.clone(),
                i.device_id.clone(),
                i.ctx.endpoint.clone(),
                i.ctx.auth_token.clone(),
            )
        };
        // Make sure the writes have started before anything leaves the device.
        self.write_soon();
        let n = batch::take_count(
            &entries,
            &device_id,
            MAX_EVENTS_PER_BATCH,
            KEEPALIVE_MAX_BYTES,
        );
        if n == 0 {
            return;
        }
        let sent: Vec<String> = entries[..n].iter().map(|e| e.id.clone()).collect();
        let body = batch::batch_body(&device_id, web::now_ms(), &entries[..n]);
        let t = self.clone();
        spawn_local(async move {
            let Ok(resp) = post(&endpoint, token.as_deref(), &body, true).await else {
                return;
            };
            if resp.status() != 200 {
                return;
            }
            let Ok(p) = resp.text() else { return };
            let Some(text) = JsFuture::from(p).await.ok().and_then(|v| v.as_string()) else {
                return;
            };
            if let Ok(r) = crate::json::from_str::<BatchResponse>(&text) {
                // Wait for pending writes so a delete cannot precede its put.
                t.settled_writes().await;
                t.handle_results(&sent, &r).await;
            }
        });
    }

    async fn settled_writes(&self) {
        for _ in 0..300 {
            let busy = {
                let i = self.0.borrow();
                i.writing || !i.to_write.is_empty()
            };
            if !busy {
                return;
            }
            web::sleep(10).await;
        }
    }

    // ----- browser hooks -----

    fn install_listeners(&self) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let Some(document) = window.document() else {
            return;
        };
        let weak = Rc::downgrade(&self.0);
        let mk = |f: fn(&Tracker, &web_sys::Event)| {
            let w = weak.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |ev: web_sys::Event| {
                if let Some(rc) = w.upgrade() {
                    f(&Tracker(rc), &ev);
                }
            })
        };
        let vis = mk(|t, _| t.handle_visibility(web::page_visible()));
        let hide = mk(|t, _| t.handle_pagehide());
        let show = mk(|t, ev| {
            let persisted = ev
                .dyn_ref::<web_sys::PageTransitionEvent>()
                .map(|e| e.persisted())
                .unwrap_or(false);
            t.handle_pageshow(persisted);
        });
        let online = mk(|t, _| {
            t.0.borrow_mut().backoff.succeed();
            t.flush();
        });
        let offline = mk(|t, _| t.notify());
        let doc: web_sys::EventTarget = document.into();
        let win: web_sys::EventTarget = window.into();
        let mut i = self.0.borrow_mut();
        for (target, name, cb) in [
            (doc, "visibilitychange", vis),
            (win.clone(), "pagehide", hide),
            (win.clone(), "pageshow", show),
            (win.clone(), "online", online),
            (win, "offline", offline),
        ] {
            let _ = target.add_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
            i.listeners.push((target, name, cb));
        }
    }

    /// Ask for persistent storage once per device; report the answer in the status.
    fn request_persistence(&self) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let nav = window.navigator();
        if !web::has(&nav, "storage") {
            return;
        }
        let storage = nav.storage();
        let asked = web::local_storage()
            .and_then(|s| s.get_item(PERSIST_ASKED_KEY).ok().flatten())
            .is_some();
        let promise = if asked {
            storage.persisted()
        } else {
            if let Some(s) = web::local_storage() {
                let _ = s.set_item(PERSIST_ASKED_KEY, "1");
            }
            storage.persist()
        };
        let Ok(promise) = promise else { return };
        let weak = Rc::downgrade(&self.0);
        spawn_local(async move {
            let granted = JsFuture::from(promise).await.ok().and_then(|v| v.as_bool());
            if let Some(rc) = weak.upgrade() {
                let t = Tracker(rc);
                t.0.borrow_mut().status.persisted = granted;
                t.notify();
            }
        });
    }
}

enum Step {
    More,
    Done,
}

/// Move events that earlier pages left in `localStorage` (`<prefix>*`, except `own`)
/// into the outbox; each key is removed only after its events committed, and only if
/// nobody rewrote it meanwhile. Putting an event twice is harmless (key = id).
async fn recover_pending(db: &Outbox, prefix: &str, own: &str) -> Result<(), String> {
    let Some(ls) = web::local_storage() else {
        return Ok(());
    };
    let n = ls.length().unwrap_or(0);
    let keys: Vec<String> = (0..n)
        .filter_map(|k| ls.key(k).ok().flatten())
        .filter(|k| k.starts_with(prefix) && k != own)
        .collect();
    let mut recovered = 0usize;
    for key in keys {
        let Some(value) = ls.get_item(&key).ok().flatten() else {
            continue;
        };
        let list: Vec<(String, String)> = crate::json::from_str(&value).unwrap_or_default();
        let entries: Vec<Entry> = list
            .into_iter()
            .filter(|(id, json)| !id.is_empty() && !json.is_empty())
            .map(|(id, json)| Entry { id, json })
            .collect();
        db.put(&entries)
            .await
            .map_err(|e| format!("could not recover events emitted while leaving: {e}"))?;
        recovered += entries.len();
        if ls.get_item(&key).ok().flatten().as_deref() == Some(value.as_str()) {
            let _ = ls.remove_item(&key);
        }
    }
    if recovered > 0 {
        web_sys::console::info_1(&JsValue::from_str(&format!(
            "edetail tracking: {recovered} events emitted while a page was closing moved to the outbox"
        )));
    }
    Ok(())
}

/// Test hook: append `{id, seq, type, session_id}` to `window.__edetailEvents`,
/// keeping the last `EVENT_LOG_CAP` entries.
fn log_event(e: &Event) {
    let Some(w) = web_sys::window() else { return };
    let key = JsValue::from_str("__edetailEvents");
    let arr = match js_sys::Reflect::get(&w, &key)
        .ok()
        .and_then(|v| v.dyn_into::<js_sys::Array>().ok())
    {
        Some(a) => a,
        None => {
            let a = js_sys::Array::new();
            let _ = js_sys::Reflect::set(&w, &key, &a);
            a
        }
    };
    let o = js_sys::Object::new();
    for (k, v) in [
        ("id", JsValue::from_str(&e.id)),
        ("seq", JsValue::from_f64(e.seq as f64)),
        ("type", JsValue::from_str(e.kind.type_name())),
        ("session_id", JsValue::from_str(&e.session_id)),
    ] {
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), &v);
    }
    arr.push(&o);
    let len = arr.length();
    if len > EVENT_LOG_CAP {
        arr.splice(0, len - EVENT_LOG_CAP, &JsValue::UNDEFINED);
    }
}

thread_local! {
    /// Session trackers alive in this page (the drain pauses while any is).
    static LIVE_TRACKERS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    static DRAIN: RefCell<Option<Tracker>> = const { RefCell::new(None) };
}

fn kick_drain() {
    let d = DRAIN.try_with(|d| d.borrow().clone()).ok().flatten();
    if let Some(d) = d {
        d.flush();
    }
}

/// Deliver what the outbox holds (earlier sessions, closed calls) without a session:
/// call at app start with the ingest endpoint and token. It keeps running for the life
/// of the page: resends with backoff, on `online` and when the page becomes visible; it
/// pauses while a session `Tracker` is alive (that one delivers) and resumes when the
/// last one is dropped. It never emits or records anything. Calling it again replaces
/// the endpoint/token. An empty endpoint stops it.
pub fn drain_outbox(endpoint: &str, token: Option<&str>) {
    drain_outbox_with(endpoint, token, TrackerOptions::default());
}

/// `drain_outbox` with other storage names and timers (tests).
pub fn drain_outbox_with(endpoint: &str, token: Option<&str>, opts: TrackerOptions) {
    let opts = TrackerOptions {
        request_persistence: false,
        ..opts
    };
    let same = DRAIN.with(|d| {
        d.borrow().as_ref().is_some_and(|t| {
            let i = t.0.borrow();
            i.ctx.endpoint == endpoint && i.ctx.auth_token.as_deref() == token && i.opts == opts
        })
    });
    if same {
        kick_drain();
        return;
    }
    let old = DRAIN.with(|d| d.borrow_mut().take());
    drop(old);
    if endpoint.is_empty() {
        return;
    }
    let mut ctx = SessionContext::new("", "", "", edetail_format::Channel::SelfServe);
    ctx.endpoint = endpoint.to_owned();
    ctx.auth_token = token.map(str::to_owned);
    ctx.tracking_allowed = false;
    let t = Tracker::start_inner(ctx, opts, true);
    DRAIN.with(|d| *d.borrow_mut() = Some(t));
}

/// POST a batch body; `keepalive` for flushes while the page goes away.
async fn post(
    endpoint: &str,
    token: Option<&str>,
    body: &str,
    keepalive: bool,
) -> Result<web_sys::Response, String> {
    let window = web_sys::window().ok_or("no window")?;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    let headers = web_sys::Headers::new().map_err(|e| web::js_err(&e))?;
    headers
        .set("Content-Type", "application/json")
        .map_err(|e| web::js_err(&e))?;
    if let Some(t) = token {
        headers
            .set("Authorization", &format!("Bearer {t}"))
            .map_err(|e| web::js_err(&e))?;
    }
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(body));
    if keepalive {
        // web-sys has no setter for `keepalive`.
        let _ = js_sys::Reflect::set(&init, &JsValue::from_str("keepalive"), &JsValue::TRUE);
    }
    let resp = JsFuture::from(window.fetch_with_str_and_init(endpoint, &init))
        .await
        .map_err(|e| web::js_err(&e))?;
    resp.dyn_into::<web_sys::Response>()
        .map_err(|_| "fetch returned no response".to_string())
}

/// Register the service worker at `url` (no-op where unsupported, e.g. insecure origins).
pub fn register_service_worker(url: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let nav = window.navigator();
    if !web::has(&nav, "serviceWorker") {
        return;
    }
    let container = nav.service_worker();
    listen_integrity(&container);
    let promise = container.register(url);
    spawn_local(async move {
        if let Err(e) = JsFuture::from(promise).await {
            web_sys::console::warn_1(&JsValue::from_str(&format!(
                "edetail: service worker not registered: {}",
                web::js_err(&e)
            )));
            return;
        }
        // First visit: the bundle was fetched before the worker existed. Hand the worker
        // the bundle files and assets this page fetched, so they are cached for offline.
        let Ok(ready) = container.ready() else { return };
        let Ok(reg) = JsFuture::from(ready).await else {
            return;
        };
        post_fetched_bundle_urls(&reg);
        // Fetches between `ready` and the worker taking control were not seen by it.
        web::sleep(3_000).await;
        post_fetched_bundle_urls(&reg);
    });
}

/// `true` for URLs the service worker caches as bundle files or assets.
pub fn is_bundle_url(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or("");
    if path.ends_with("/bundle.json")
        || path.ends_with("/bundle.sha256")
        || path.ends_with("/bundle.sig")
        || path.ends_with("/trusted-keys.json")
    {
        return true;
    }
    let Some((_, name)) = path.rsplit_once("/assets/") else {
        return false;
    };
    let hash = name.split_once('.').map(|(h, _)| h).unwrap_or(name);
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && name[64..]
            .bytes()
            .skip(1)
            .all(|b| b.is_ascii_alphanumeric())
}

/// Post `{type: "edetail-cache", urls}` (bundle files and assets in the page's
/// resource timing entries) to the active worker of `reg`.
fn post_fetched_bundle_urls(reg: &JsValue) {
    let Some(perf) = web_sys::window().and_then(|w| w.performance()) else {
        return;
    };
    let urls = js_sys::Array::new();
    for e in perf.get_entries_by_type("resource").iter() {
        if let Some(name) = js_sys::Reflect::get(&e, &JsValue::from_str("name"))
            .ok()
            .and_then(|v| v.as_string())
            && is_bundle_url(&name)
            && !name.starts_with("blob:")
        {
            urls.push(&JsValue::from_str(&name));
        }
    }
    if urls.length() == 0 {
        return;
    }
    let Ok(active) = js_sys::Reflect::get(reg, &JsValue::from_str("active")) else {
        return;
    };
    let Some(post) = js_sys::Reflect::get(&active, &JsValue::from_str("postMessage"))
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
    else {
        return;
    };
    let msg = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&msg, &"type".into(), &"edetail-cache".into());
    let _ = js_sys::Reflect::set(&msg, &"urls".into(), &urls);
    let _ = post.call1(&active, &msg);
}

/// The worker found an asset whose bytes do not match its name: log it and dispatch a
/// window `edetail-integrity` event (`detail` = the URL) the UI may turn into its
/// integrity refusal (images are refused by the page's own check in any case).
fn listen_integrity(container: &web_sys::ServiceWorkerContainer) {
    let cb = Closure::<dyn FnMut(web_sys::Event)>::new(|ev: web_sys::Event| {
        let data = js_sys::Reflect::get(&ev, &JsValue::from_str("data")).unwrap_or_default();
        let ty = js_sys::Reflect::get(&data, &JsValue::from_str("type"))
            .ok()
            .and_then(|v| v.as_string());
        if ty.as_deref() != Some("edetail-integrity") {
            return;
        }
        let url = js_sys::Reflect::get(&data, &JsValue::from_str("url")).unwrap_or_default();
        web_sys::console::error_2(
            &JsValue::from_str("edetail: asset bytes do not match their sha256 name:"),
            &url,
        );
        let Some(w) = web_sys::window() else { return };
        let Some(ctor) = js_sys::Reflect::get(&w, &JsValue::from_str("CustomEvent"))
            .ok()
            .and_then(|c| c.dyn_into::<js_sys::Function>().ok())
        else {
            return;
        };
        let init = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&init, &"detail".into(), &url);
        let args = js_sys::Array::of2(&JsValue::from_str("edetail-integrity"), &init);
        if let Ok(e) = js_sys::Reflect::construct(&ctor, &args) {
            let _ = w.dispatch_event(e.unchecked_ref());
        }
    });
    let _ = container.add_event_listener_with_callback("message", cb.as_ref().unchecked_ref());
    cb.forget();
}
