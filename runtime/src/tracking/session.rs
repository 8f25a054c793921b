//! Session context, the persisted session record and the event envelope, pure.

use edetail_format::{Channel, EVENT_SCHEMA_VERSION, Event, EventKind};
use serde::{Deserialize, Serialize};

/// A reload of the same tab continues the session when the last event is at most this old.
pub const RESUME_WITHIN_MS: i64 = 30 * 60 * 1000;

/// Everything the tracker needs to know about a session; built by the UI.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionContext {
    pub deck_id: String,
    pub deck_version: String,
    /// Contents of `bundle.sha256`.
    pub bundle_hash: String,
    pub channel: Channel,
    /// `mr_led`, `remote`, `self_serve`, `preview`.
    pub mode: String,
    /// Rep sequence (custom presentation) id, when one is presented.
    pub sequence: Option<String>,
    pub rep_id: Option<String>,
    /// Pseudonymous physician id; never a name.
    pub hcp_id: Option<String>,
    /// `None`: a random id persisted in localStorage (`edetail.device_id`).
    pub device_id: Option<String>,
    pub preview: bool,
    /// Ingest URL (absolute or same-origin path); empty: queue only, never send.
    pub endpoint: String,
    pub auth_token: Option<String>,
    pub view_threshold_ms: u64,
    /// `false` until self-serve consent is given: nothing is written or sent.
    pub tracking_allowed: bool,
}

impl SessionContext {
    /// A context with defaults, for tests and previews.
    pub fn new(deck_id: &str, deck_version: &str, bundle_hash: &str, channel: Channel) -> Self {
        SessionContext {
            deck_id: deck_id.into(),
            deck_version: deck_version.into(),
            bundle_hash: bundle_hash.into(),
            channel,
            mode: channel.as_str().into(),
            sequence: None,
            rep_id: None,
            hcp_id: None,
            device_id: None,
            preview: false,
            endpoint: edetail_format::ingest::INGEST_PATH.into(),
            auth_token: None,
            view_threshold_ms: 2000,
            tracking_allowed: true,
        }
    }
}

/// The session state that survives a reload (kept in `sessionStorage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct SessionRecord {
    pub session_id: String,
    pub deck_id: String,
    pub bundle_hash: String,
    pub started_at: i64,
    pub last_activity: i64,
    /// The next sequence number to hand out; never reused.
    pub next_seq: u64,
    /// Slide views opened so far (the `order` of the last one).
    pub views: u32,
    /// Distinct slides with a counted view.
    pub slides_viewed: Vec<String>,
}

impl SessionRecord {
    pub fn new(session_id: String, ctx: &SessionContext, now: i64) -> Self {
        SessionRecord {
            session_id,
            deck_id: ctx.deck_id.clone(),
            bundle_hash: ctx.bundle_hash.clone(),
            started_at: now,
            last_activity: now,
            next_seq: 0,
            views: 0,
            slides_viewed: Vec::new(),
        }
    }

    /// Whether a new page showing `ctx` at `now` continues this session.
    pub fn resumable(&self, ctx: &SessionContext, now: i64) -> bool {
        self.deck_id == ctx.deck_id
            && self.bundle_hash == ctx.bundle_hash
            && now >= self.last_activity
            && now - self.last_activity <= RESUME_WITHIN_MS
    }

    /// Hand out the next sequence number.
    pub fn take_seq(&mut self, now: i64) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        self.last_activity = self.last_activity.max(now);
        s
    }

    pub fn note_counted(&mut self, slide_id: &str) {
        if !self.slides_viewed.iter().any(|s| s == slide_id) {
            self.slides_viewed.push(slide_id.to_owned());
        }
    }

    /// Parse a stored record; anything unreadable is treated as absent.
    pub fn parse(s: &str) -> Option<Self> {
        crate::json::from_str(s).ok()
    }
}

/// Build an event: the envelope from the context and record, plus `kind`.
/// `client_time` is clamped to at least 1 (the server refuses 0 and negatives).
pub fn envelope(
    ctx: &SessionContext,
    device_id: &str,
    rec: &mut SessionRecord,
    id: String,
    now: i64,
    slide: Option<(&str, &str)>,
    kind: EventKind,
) -> Event {
    Event {
        id,
        schema_version: EVENT_SCHEMA_VERSION,
        session_id: rec.session_id.clone(),
        seq: rec.take_seq(now),
        client_time: now.max(1),
        deck_id: ctx.deck_id.clone(),
        deck_version: ctx.deck_version.clone(),
        bundle_hash: ctx.bundle_hash.clone(),
        slide_id: slide.map(|s| s.0.to_owned()),
        slide_hash: slide.map(|s| s.1.to_owned()),
        channel: ctx.channel,
        rep_id: ctx.rep_id.clone(),
        hcp_id: ctx.hcp_id.clone(),
        device_id: device_id.to_owned(),
        preview: ctx.preview,
        kind,
    }
}

/// Event kinds that count as an interaction with the open slide.
pub fn is_interaction(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::SessionStart { .. }
            | EventKind::SessionEnd { .. }
            | EventKind::SlideView { .. }
            | EventKind::Visibility { .. }
            | EventKind::Consent { .. }
            | EventKind::RuntimeError { .. }
    )
}

edetail_format::map_only!(SessionRecord);

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0192f0c4-1111-7000-8000-000000000001";

    fn ctx() -> SessionContext {
        let mut c = SessionContext::new("zentara-launch", "1.0.0", "ab12", Channel::MrLed);
        c.rep_id = Some("rep-042".into());
        c.hcp_id = Some("h-9f2c".into());
        c
    }

    #[test]
    fn envelope_passes_server_validation_and_numbers_events() {
        let c = ctx();
        let mut rec = SessionRecord::new("s-1".into(), &c, 1_000);
        let e0 = envelope(
            &c,
            "dev",
            &mut rec,
            ID.into(),
            1_763_800_000_000,
            None,
            EventKind::IsiOpen {},
        );
        let e1 = envelope(
            &c,
            "dev",
            &mut rec,
            ID.into(),
            1_763_800_000_001,
            Some(("efficacy", "cd34")),
            EventKind::Reaction {
                value: 1,
                key_message: None,
            },
        );
        assert_eq!((e0.seq, e1.seq), (0, 1));
        assert_eq!(rec.next_seq, 2);
        assert_eq!(rec.last_activity, 1_763_800_000_001);
        e0.validate().expect("valid");
        e1.validate().expect("valid");
        assert_eq!(e1.slide_id.as_deref(), Some("efficacy"));
        assert_eq!(e1.slide_hash.as_deref(), Some("cd34"));
        assert_eq!(e1.hcp_id.as_deref(), Some("h-9f2c"));
        // Round trip through the server's decoder.
        let v = serde_json::to_value(&e1).unwrap();
        assert_eq!(Event::from_value(v).unwrap(), e1);
    }

    #[test]
    fn client_time_is_never_zero() {
        let c = ctx();
        let mut rec = SessionRecord::new("s".into(), &c, 0);
        let e = envelope(&c, "d", &mut rec, ID.into(), 0, None, EventKind::IsiOpen {});
        assert_eq!(e.client_time, 1);
    }

    #[test]
    fn resume_rules() {
        let c = ctx();
        let rec = SessionRecord::new("s".into(), &c, 1_000_000);
        assert!(rec.resumable(&c, 1_000_000 + RESUME_WITHIN_MS));
        assert!(!rec.resumable(&c, 1_000_001 + RESUME_WITHIN_MS), "too old");
        assert!(!rec.resumable(&c, 999_999), "clock went back");
        let mut other = c.clone();
        other.bundle_hash = "ffff".into();
        assert!(!rec.resumable(&other, 1_000_001), "other bundle");
        other = c.clone();
        other.deck_id = "other".into();
        assert!(!rec.resumable(&other, 1_000_001), "other deck");
    }

    #[test]
    fn record_round_trips_and_garbage_is_absent() {
        let c = ctx();
        let mut rec = SessionRecord::new("s".into(), &c, 5);
        rec.take_seq(6);
        rec.note_counted("a");
        rec.note_counted("a");
        rec.note_counted("b");
        let s = serde_json::to_string(&rec).unwrap();
        assert_eq!(SessionRecord::parse(&s), Some(rec.clone()));
        assert_eq!(rec.slides_viewed, ["a", "b"]);
        assert_eq!(SessionRecord::parse("{\"session_id\":1}"), None);
        assert_eq!(SessionRecord::parse("not json"), None);
    }

    #[test]
    fn interactions() {
        assert!(is_interaction(&EventKind::BuildStep { step: 1 }));
        assert!(is_interaction(&EventKind::IsiOpen {}));
        assert!(!is_interaction(&EventKind::Visibility { visible: true }));
        assert!(!is_interaction(&EventKind::RuntimeError {
            message: "x".into()
        }));
    }
}
