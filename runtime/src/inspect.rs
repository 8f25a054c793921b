//! Text of the tracking inspector (preview mode).

use edetail_format::Event;
use serde_json::Value;

/// The event's own fields (its type's fields, without `type`) as compact JSON, or an
/// empty string when the type has none.
///
/// Goes through the event's wire JSON (the serializer the tracker already uses) rather
/// than `serde_json::to_value(&event.kind)`, which would add a second serializer for
/// every event type to the wasm for this debugging panel alone.
pub fn kind_fields(e: &Event) -> String {
    let Ok(json) = serde_json::to_string(e) else {
        return String::new();
    };
    let Ok(Value::Object(mut o)) = crate::json::from_str::<Value>(&json) else {
        return String::new();
    };
    // The envelope's fields (flattening guarantees the kind's fields have other names).
    for k in [
        "id",
        "schema_version",
        "session_id",
        "seq",
        "client_time",
        "deck_id",
        "deck_version",
        "bundle_hash",
        "slide_id",
        "slide_hash",
        "channel",
        "rep_id",
        "hcp_id",
        "device_id",
        "preview",
        "type",
    ] {
        o.remove(k);
    }
    if o.is_empty() {
        String::new()
    } else {
        // Not `Value`'s `Display`: it links a second (pretty-printing) serializer.
        serde_json::to_string(&Value::Object(o)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edetail_format::{Channel, EventKind, NavVia};

    fn event(kind: EventKind) -> Event {
        Event {
            id: "0190a0a0-0000-7000-8000-000000000001".into(),
            schema_version: 1,
            session_id: "s".into(),
            seq: 3,
            client_time: 1_700_000_000_000,
            deck_id: "d".into(),
            deck_version: "1".into(),
            bundle_hash: "ab".into(),
            slide_id: Some("intro".into()),
            slide_hash: Some("cd".into()),
            channel: Channel::MrLed,
            rep_id: Some("rep".into()),
            hcp_id: Some("hcp".into()),
            device_id: "dev".into(),
            preview: true,
            kind,
        }
    }

    /// What the inspector showed before: the kind serialized alone, minus `type`.
    fn via_value(e: &Event) -> String {
        let mut v = serde_json::to_value(&e.kind).expect("value");
        if let Some(o) = v.as_object_mut() {
            o.remove("type");
        }
        if v.as_object().is_some_and(|o| o.is_empty()) {
            String::new()
        } else {
            v.to_string()
        }
    }

    #[test]
    fn shows_only_the_kind_fields() {
        let e = event(EventKind::SlideView {
            enter_time: 1,
            exit_time: 2500,
            dwell_ms: 2400,
            hidden_ms: 99,
            order: 4,
            via: NavVia::Swipe,
            counted: true,
        });
        let s = kind_fields(&e);
        assert_eq!(s, via_value(&e));
        assert!(s.contains("\"dwell_ms\":2400"), "{s}");
        assert!(!s.contains("session_id") && !s.contains("\"type\""), "{s}");
    }

    #[test]
    fn optional_fields_and_empty_kinds() {
        let e = event(EventKind::SessionStart {
            mode: "mr_led".into(),
            sequence: None,
            user_agent: Some("UA".into()),
            viewport: None,
        });
        assert_eq!(kind_fields(&e), via_value(&e));
        assert_eq!(kind_fields(&e), r#"{"mode":"mr_led","user_agent":"UA"}"#);
    }
}
