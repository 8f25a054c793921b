//! The end-of-call summary, built from the events the tracker emits: slides shown in
//! order with dwell, reactions and questions.

use edetail_format::{Event, EventKind};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallSummary {
    /// (slide id, dwell ms) in the order shown.
    pub views: Vec<(String, u64)>,
    /// (slide id, value, key message).
    pub reactions: Vec<(String, i8, Option<String>)>,
    /// (slide id, question text).
    pub questions: Vec<(String, String)>,
}

impl CallSummary {
    pub fn record(&mut self, e: &Event) {
        let slide = e.slide_id.clone().unwrap_or_default();
        match &e.kind {
            EventKind::SlideView { dwell_ms, .. } => self.views.push((slide, *dwell_ms)),
            EventKind::Reaction { value, key_message } => {
                // The latest reaction to a slide replaces an earlier one.
                self.reactions.retain(|(s, _, _)| *s != slide);
                self.reactions.push((slide, *value, key_message.clone()));
            }
            EventKind::Question { text } => self.questions.push((slide, text.clone())),
            _ => {}
        }
    }

    pub fn total_dwell_ms(&self) -> u64 {
        self.views.iter().map(|(_, d)| d).sum()
    }

    /// The latest reaction recorded on a slide.
    pub fn reaction_on(&self, slide: &str) -> Option<i8> {
        self.reactions
            .iter()
            .rev()
            .find(|(s, _, _)| s == slide)
            .map(|(_, v, _)| *v)
    }

    /// Which of `mandatory` were shown.
    pub fn shown(&self, slide: &str) -> bool {
        self.views.iter().any(|(s, _)| s == slide)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edetail_format::{Channel, NavVia};

    fn ev(slide: &str, kind: EventKind) -> Event {
        Event {
            id: "0192f0c4-0000-7000-8000-000000000000".into(),
            schema_version: 1,
            session_id: "s".into(),
            seq: 0,
            client_time: 1,
            deck_id: "d".into(),
            deck_version: "1".into(),
            bundle_hash: "h".into(),
            slide_id: Some(slide.into()),
            slide_hash: None,
            channel: Channel::MrLed,
            rep_id: None,
            hcp_id: None,
            device_id: "dev".into(),
            preview: false,
            kind,
        }
    }

    fn view(slide: &str, dwell: u64) -> Event {
        ev(
            slide,
            EventKind::SlideView {
                enter_time: 1,
                exit_time: 2,
                dwell_ms: dwell,
                hidden_ms: 0,
                order: 1,
                via: NavVia::Swipe,
                counted: true,
            },
        )
    }

    #[test]
    fn builds_summary_in_order() {
        let mut s = CallSummary::default();
        s.record(&view("a", 1000));
        s.record(&ev(
            "b",
            EventKind::Reaction {
                value: 1,
                key_message: Some("k".into()),
            },
        ));
        s.record(&ev(
            "b",
            EventKind::Reaction {
                value: -1,
                key_message: None,
            },
        ));
        s.record(&ev(
            "b",
            EventKind::Question {
                text: "Dose in CKD?".into(),
            },
        ));
        s.record(&view("b", 2500));
        s.record(&ev("b", EventKind::IsiOpen {}));
        assert_eq!(s.views, vec![("a".into(), 1000), ("b".into(), 2500)]);
        assert_eq!(s.total_dwell_ms(), 3500);
        assert_eq!(s.reaction_on("b"), Some(-1));
        assert_eq!(s.reactions.len(), 1);
        assert_eq!(s.reaction_on("a"), None);
        assert_eq!(s.questions, vec![("b".into(), "Dose in CKD?".into())]);
        assert!(s.shown("a") && !s.shown("c"));
    }
}
