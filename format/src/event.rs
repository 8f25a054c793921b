//! Engagement event schema, version 1.
//!
//! Every event is one JSON object: the envelope fields plus `"type"` and the
//! type's own fields (flattened). Example:
//!
//! ```json
//! {"id":"0192f0c4-...","schema_version":1,"session_id":"0192f0c4-...","seq":7,
//!  "client_time":1763800000000,"deck_id":"zentara-launch","deck_version":"1.0.0",
//!  "bundle_hash":"ab12...","slide_id":"efficacy","slide_hash":"cd34...",
//!  "channel":"mr_led","rep_id":"rep-042","hcp_id":"h-9f2c...","device_id":"ipad-7",
//!  "preview":false,"type":"slide_view","enter_time":1763799990000,
//!  "exit_time":1763800000000,"dwell_ms":9400,"hidden_ms":600,"order":3,"via":"swipe",
//!  "counted":true}
//! ```

use serde::{Deserialize, Serialize};

/// Version of the event schema written by this crate.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// Longest accepted string in any free-text field (questions, answers), in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Client-made UUIDv7 (time-ordered), the de-duplication key.
    pub id: String,
    pub schema_version: u32,
    /// One call (MR-led / remote) or one self-serve visit.
    pub session_id: String,
    /// Per-session sequence number starting at 0; gaps reveal losses.
    pub seq: u64,
    /// Device clock when the event happened, ms since the Unix epoch.
    pub client_time: i64,
    pub deck_id: String,
    pub deck_version: String,
    pub bundle_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide_id: Option<String>,
    /// Content hash of the slide the event happened on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide_hash: Option<String>,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep_id: Option<String>,
    /// Pseudonymous physician id (never a name or a licence number in clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hcp_id: Option<String>,
    pub device_id: String,
    /// Preview/training use outside real calls: excluded from insights by default.
    #[serde(default)]
    pub preview: bool,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    MrLed,
    Remote,
    SelfServe,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::MrLed => "mr_led",
            Channel::Remote => "remote",
            Channel::SelfServe => "self_serve",
        }
    }
}

/// How the presenter arrived at a slide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NavVia {
    Start,
    Swipe,
    Key,
    Button,
    Link,
    Drilldown,
    Overview,
    Back,
    Sequence,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    SessionStart {
        /// `mr_led`, `remote`, `self_serve`, `preview`.
        mode: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_agent: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        viewport: Option<String>,
    },
    SessionEnd {
        /// `ended` (by the MR), `closed` (page left), `timeout`.
        reason: String,
        duration_ms: u64,
        slides_viewed: u32,
    },
    /// Emitted when the presenter leaves a slide (or the session ends on it).
    SlideView {
        enter_time: i64,
        exit_time: i64,
        /// Visible time: exit - enter minus time hidden/backgrounded.
        dwell_ms: u64,
        hidden_ms: u64,
        /// 1-based position of this view in the session.
        order: u32,
        via: NavVia,
        /// Reached the view threshold or had an interaction.
        counted: bool,
    },
    BuildStep {
        step: u32,
    },
    PopupOpen {
        component_id: String,
    },
    PopupClose {
        component_id: String,
        open_ms: u64,
    },
    TabSelect {
        component_id: String,
        tab_id: String,
    },
    CitationOpen {
        component_id: String,
        reference_id: String,
    },
    LinkFollow {
        component_id: String,
        target: String,
        drilldown: bool,
    },
    ReferencesOpen {},
    IsiOpen {},
    IsiScroll {
        /// Deepest scroll position reached, 0-100.
        depth_pct: u8,
    },
    Answer {
        question_id: String,
        /// `quiz`, `poll`, `survey`.
        purpose: String,
        /// `single`, `multiple`, `rating`, `text`.
        question_kind: String,
        #[serde(default)]
        options_shown: Vec<String>,
        /// Selected option ids (single/multiple).
        #[serde(default)]
        selected: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rating: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// Quizzes only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correct: Option<bool>,
    },
    Video {
        component_id: String,
        /// `play`, `pause`, `seek`, `quartile`, `complete`.
        action: String,
        position_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quartile: Option<u8>,
    },
    Zoom {
        component_id: String,
    },
    ChartInteraction {
        component_id: String,
        /// `point`, `table`, ...
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    Reaction {
        /// -1, 0 or +1.
        value: i8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_message: Option<String>,
    },
    Question {
        text: String,
    },
    VisitRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preferred_time: Option<String>,
    },
    Consent {
        granted: bool,
    },
    Visibility {
        visible: bool,
    },
    RuntimeError {
        message: String,
    },
}

impl EventKind {
    /// The `type` tag as written on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::SessionStart { .. } => "session_start",
            EventKind::SessionEnd { .. } => "session_end",
            EventKind::SlideView { .. } => "slide_view",
            EventKind::BuildStep { .. } => "build_step",
            EventKind::PopupOpen { .. } => "popup_open",
            EventKind::PopupClose { .. } => "popup_close",
            EventKind::TabSelect { .. } => "tab_select",
            EventKind::CitationOpen { .. } => "citation_open",
            EventKind::LinkFollow { .. } => "link_follow",
            EventKind::ReferencesOpen {} => "references_open",
            EventKind::IsiOpen {} => "isi_open",
            EventKind::IsiScroll { .. } => "isi_scroll",
            EventKind::Answer { .. } => "answer",
            EventKind::Video { .. } => "video",
            EventKind::Zoom { .. } => "zoom",
            EventKind::ChartInteraction { .. } => "chart_interaction",
            EventKind::Reaction { .. } => "reaction",
            EventKind::Question { .. } => "question",
            EventKind::VisitRequest { .. } => "visit_request",
            EventKind::Consent { .. } => "consent",
            EventKind::Visibility { .. } => "visibility",
            EventKind::RuntimeError { .. } => "runtime_error",
        }
    }
}

/// Why one event is refused. The reason string reaches the device log.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("not a valid event: {0}")]
    Malformed(String),
    #[error("unsupported event schema version {0} (server reads {EVENT_SCHEMA_VERSION})")]
    UnsupportedSchema(u64),
    #[error("field `{field}`: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

fn is_uuid_like(s: &str) -> bool {
    // 8-4-4-4-12 hex digits.
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn short_id(field: &'static str, v: &str) -> Result<(), EventError> {
    if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
        return Err(EventError::Invalid {
            field,
            problem: "must be 1-128 characters without control characters".into(),
        });
    }
    Ok(())
}

impl Event {
    /// Decode one event from a JSON value, checking the schema version first.
    pub fn from_value(v: serde_json::Value) -> Result<Event, EventError> {
        match v.get("schema_version").and_then(|s| s.as_u64()) {
            Some(n) if n == u64::from(EVENT_SCHEMA_VERSION) => {}
            Some(n) => return Err(EventError::UnsupportedSchema(n)),
            None => {
                return Err(EventError::Malformed(
                    "missing or non-integer `schema_version`".into(),
                ));
            }
        }
        let e: Event =
            serde_json::from_value(v).map_err(|e| EventError::Malformed(e.to_string()))?;
        e.validate()?;
        Ok(e)
    }

    /// Semantic checks beyond the types.
    pub fn validate(&self) -> Result<(), EventError> {
        if !is_uuid_like(&self.id) {
            return Err(EventError::Invalid {
                field: "id",
                problem: "must be a UUID (v7 recommended)".into(),
            });
        }
        short_id("session_id", &self.session_id)?;
        short_id("deck_id", &self.deck_id)?;
        short_id("deck_version", &self.deck_version)?;
        short_id("device_id", &self.device_id)?;
        if let Some(s) = &self.slide_id {
            short_id("slide_id", s)?;
        }
        if let Some(s) = &self.rep_id {
            short_id("rep_id", s)?;
        }
        if let Some(s) = &self.hcp_id {
            short_id("hcp_id", s)?;
        }
        if self.client_time <= 0 {
            return Err(EventError::Invalid {
                field: "client_time",
                problem: "must be milliseconds since the Unix epoch".into(),
            });
        }
        match &self.kind {
            EventKind::Reaction { value, .. } if !(-1..=1).contains(value) => {
                Err(EventError::Invalid {
                    field: "value",
                    problem: "a reaction is -1, 0 or +1".into(),
                })
            }
            EventKind::SlideView {
                enter_time,
                exit_time,
                ..
            } if exit_time < enter_time => Err(EventError::Invalid {
                field: "exit_time",
                problem: "exit_time is before enter_time".into(),
            }),
            EventKind::SlideView { .. } if self.slide_id.is_none() => Err(EventError::Invalid {
                field: "slide_id",
                problem: "a slide view needs a slide_id".into(),
            }),
            EventKind::IsiScroll { depth_pct } if *depth_pct > 100 => Err(EventError::Invalid {
                field: "depth_pct",
                problem: "must be 0-100".into(),
            }),
            EventKind::Question { text } if text.trim().is_empty() => Err(EventError::Invalid {
                field: "text",
                problem: "must not be empty".into(),
            }),
            EventKind::Question { text } | EventKind::RuntimeError { message: text }
                if text.len() > MAX_TEXT_BYTES =>
            {
                Err(EventError::Invalid {
                    field: "text",
                    problem: format!("longer than {MAX_TEXT_BYTES} bytes"),
                })
            }
            EventKind::Answer { text: Some(t), .. } if t.len() > MAX_TEXT_BYTES => {
                Err(EventError::Invalid {
                    field: "text",
                    problem: format!("longer than {MAX_TEXT_BYTES} bytes"),
                })
            }
            _ => Ok(()),
        }
    }
}
