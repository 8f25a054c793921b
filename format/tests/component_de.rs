//! `Component`'s hand-written `Deserialize` against the serde derive it replaced
//! (`#[serde(tag = "type")]`, kept here as the oracle `Old`): same values for every
//! accepted input, same refusals, and the same error messages when `type` comes first
//! (as the compiler writes it).

use edetail_format::bundle::{
    AnswerOption, ChartKind, Component, QuestionKind, QuestionPurpose, RatingScale, Tab,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The previous definition, verbatim but for the name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Old {
    Citation {
        id: String,
        reference: String,
        number: u32,
    },
    Link {
        id: String,
        target: String,
        drilldown: bool,
    },
    Popup {
        id: String,
        label: String,
        title: String,
        html: String,
    },
    Tabs {
        id: String,
        #[serde(default)]
        accordion: bool,
        tabs: Vec<Tab>,
    },
    Chart {
        id: String,
        kind: ChartKind,
        title: String,
        series: Vec<String>,
        categories: Vec<String>,
    },
    Question {
        id: String,
        purpose: QuestionPurpose,
        kind: QuestionKind,
        prompt: String,
        #[serde(default)]
        options: Vec<AnswerOption>,
        #[serde(default)]
        correct: Vec<String>,
        #[serde(default)]
        scale: Option<RatingScale>,
        #[serde(default)]
        explanation: Option<String>,
    },
    Image {
        id: String,
        src: String,
        alt: String,
        #[serde(default)]
        zoom: bool,
    },
    Video {
        id: String,
        src: String,
        poster: String,
        title: String,
        #[serde(default)]
        captions: Option<String>,
    },
}

const VARIANTS: &[(&str, &[&str])] = &[
    ("citation", &["id", "reference", "number"]),
    ("link", &["id", "target", "drilldown"]),
    ("popup", &["id", "label", "title", "html"]),
    ("tabs", &["id", "accordion", "tabs"]),
    ("chart", &["id", "kind", "title", "series", "categories"]),
    (
        "question",
        &[
            "id",
            "purpose",
            "kind",
            "prompt",
            "options",
            "correct",
            "scale",
            "explanation",
        ],
    ),
    ("image", &["id", "src", "alt", "zoom"]),
    ("video", &["id", "src", "poster", "title", "captions"]),
];

/// A well-typed value for `field` of variant `ty` (index `pick` chooses among a few).
fn good_value(ty: &str, field: &str, pick: usize) -> Value {
    let s = |v: &[&str]| json!(v[pick % v.len()]);
    match field {
        "number" => json!([1, 0, 42, u32::MAX][pick % 4]),
        "drilldown" | "accordion" | "zoom" => json!(pick.is_multiple_of(2)),
        "tabs" => {
            json!([{"id": "t1", "label": "One", "html": "<p>1</p>"}, {"id": "t2", "label": "두", "html": ""}])
        }
        "kind" if ty == "chart" => s(&["bar", "line", "forest"]),
        "kind" => s(&["single", "multiple", "rating", "text"]),
        "purpose" => s(&["quiz", "poll", "survey"]),
        "series" | "categories" | "correct" => {
            [json!(["a", "b"]), json!([]), json!(["é\"\\"])][pick % 3].clone()
        }
        "options" => json!([{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]),
        "scale" => [
            Value::Null,
            json!({"min": 1, "max": 5}),
            json!({"min": 0, "max": 10, "min_label": "no", "max_label": "yes"}),
        ][pick % 3]
            .clone(),
        "explanation" | "captions" => [Value::Null, json!("<p>x</p>")][pick % 2].clone(),
        _ => s(&["s1", "", "한국어 <b>x</b>", "a\"b\\c\n"]),
    }
}

/// A value that is wrong for most fields (or unknown for `kind`/`purpose`).
fn bad_value(pick: usize) -> Value {
    [
        Value::Null,
        json!(1.5),
        json!(-1),
        json!("pie"),
        json!([]),
        json!({}),
        json!(true),
        json!(4_294_967_296u64),
        json!([{"id": 1}]),
    ][pick % 9]
        .clone()
}

fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Parse `text` with both; they must agree. Messages are compared when `exact_messages`.
fn agree(text: &str, exact_messages: bool) -> Result<Component, String> {
    let new = serde_json::from_str::<Component>(text);
    let old = serde_json::from_str::<Old>(text);
    match (new, old) {
        (Ok(n), Ok(o)) => {
            assert_eq!(
                serde_json::to_value(&n).unwrap(),
                serde_json::to_value(&o).unwrap(),
                "different values for {text}"
            );
            Ok(n)
        }
        (Err(n), Err(o)) => {
            let (n, o) = (strip_position(&n), strip_position(&o));
            // A non-string `kind` or `purpose`: serde's enum deserializer says "invalid
            // type: sequence, expected string or map" or "invalid value: map, expected
            // map with a single key"; ours says "invalid type: map, expected a string".
            let enum_wording = n.starts_with("invalid type: ")
                && n.ends_with(", expected a string")
                && o.starts_with("invalid ");
            if exact_messages && !enum_wording {
                assert_eq!(n, o, "different errors for {text}");
            }
            Err(n)
        }
        (n, o) => panic!("disagree on {text}: new {n:?}, old {o:?}"),
    }
}

#[derive(Debug, Clone)]
enum Entry {
    Good(usize),
    Bad(usize),
    Missing,
}

fn object_strategy() -> impl Strategy<Value = (String, bool)> {
    (
        0..VARIANTS.len() + 2,
        prop::collection::vec(
            prop_oneof![
                6 => (0..4usize).prop_map(Entry::Good),
                1 => (0..9usize).prop_map(Entry::Bad),
                1 => Just(Entry::Missing),
            ],
            8,
        ),
        any::<bool>(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(v, entries, type_first, dups, type_pos, extra)| {
            let (ty, fields): (Option<&str>, &[&str]) = match v {
                v if v < VARIANTS.len() => (Some(VARIANTS[v].0), VARIANTS[v].1),
                v if v == VARIANTS.len() => (Some("pie_chart"), &["id", "title"]),
                _ => (None, &["id", "src", "alt"]),
            };
            let mut pairs: Vec<(String, Value)> = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                let value = match &entries[i % entries.len()] {
                    Entry::Good(p) => good_value(ty.unwrap_or(""), f, *p),
                    Entry::Bad(p) => bad_value(*p),
                    Entry::Missing => continue,
                };
                pairs.push(((*f).to_string(), value));
            }
            if extra {
                pairs.push(("x_unknown".into(), json!({"deep": [1, {"a": null}]})));
            }
            for d in &dups {
                if !pairs.is_empty() {
                    let p = pairs[d.index(pairs.len())].clone();
                    pairs.push(p);
                }
            }
            if let Some(t) = ty {
                let at = if type_first {
                    0
                } else {
                    type_pos.index(pairs.len() + 1)
                };
                pairs.insert(at, ("type".into(), json!(t)));
            }
            // JSON text by hand: `Map` would drop duplicate keys.
            let body: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
                .collect();
            let exact = ty.is_some() && type_first && dups.is_empty();
            (format!("{{{}}}", body.join(",")), exact)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Random objects built from each variant's fields (present, missing, ill-typed,
    /// duplicated, unknown extras, `type` anywhere or absent): the new deserializer
    /// accepts exactly what the derive accepted, with the same value, and, with `type`
    /// first and no duplicates, the same error message.
    #[test]
    fn agrees_with_the_derive((text, exact) in object_strategy()) {
        let _ = agree(&text, exact);
    }
}

#[test]
fn every_variant_round_trips_with_type_anywhere() {
    let all = vec![
        Component::Citation {
            id: "c".into(),
            reference: "r".into(),
            number: 3,
        },
        Component::Link {
            id: "l".into(),
            target: "s2".into(),
            drilldown: true,
        },
        Component::Popup {
            id: "p".into(),
            label: "L".into(),
            title: "T".into(),
            html: "<p>h</p>".into(),
        },
        Component::Tabs {
            id: "t".into(),
            accordion: true,
            tabs: vec![Tab {
                id: "a".into(),
                label: "A".into(),
                html: String::new(),
            }],
        },
        Component::Chart {
            id: "ch".into(),
            kind: ChartKind::Forest,
            title: "F".into(),
            series: vec!["x".into()],
            categories: vec![],
        },
        Component::Question {
            id: "q".into(),
            purpose: QuestionPurpose::Quiz,
            kind: QuestionKind::Rating,
            prompt: "?".into(),
            options: vec![AnswerOption {
                id: "a".into(),
                label: "A".into(),
            }],
            correct: vec!["a".into()],
            scale: Some(RatingScale {
                min: -2,
                max: 2,
                min_label: None,
                max_label: Some("max".into()),
            }),
            explanation: Some("<p>e</p>".into()),
        },
        Component::Image {
            id: "i".into(),
            src: "assets/x.png".into(),
            alt: "".into(),
            zoom: true,
        },
        Component::Video {
            id: "v".into(),
            src: "assets/v.mp4".into(),
            poster: "assets/p.png".into(),
            title: "V".into(),
            captions: Some("assets/c.vtt".into()),
        },
    ];
    for c in all {
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.starts_with("{\"type\":"), "{text}");
        assert_eq!(agree(&text, true).unwrap(), c);
        // `type` last instead of first.
        let Value::Object(m) = serde_json::to_value(&c).unwrap() else {
            panic!()
        };
        let mut last: Vec<(String, Value)> = m.into_iter().filter(|(k, _)| k != "type").collect();
        last.push((
            "type".into(),
            json!(serde_json::to_value(&c).unwrap()["type"]),
        ));
        let text: Map<String, Value> = last.into_iter().collect();
        let text = Value::Object(text).to_string();
        assert_eq!(agree(&text, true).unwrap(), c, "{text}");
    }
}

#[test]
fn errors_name_the_problem() {
    let err = |t: &str| {
        serde_json::from_str::<Component>(t)
            .unwrap_err()
            .to_string()
    };
    assert!(err(r#"{"id":"c","reference":"r","number":1}"#).contains("missing field `type`"));
    let e = err(r#"{"type":"citation","id":"c","reference":"r"}"#);
    assert!(e.contains("missing field `number`"), "{e}");
    let e = err(r#"{"type":"pie","id":"c"}"#);
    assert!(
        e.starts_with("unknown variant `pie`, expected one of `citation`, `link`"),
        "{e}"
    );
    let e = err(r#"{"type":"chart","id":"c","kind":"pie","title":"","series":[],"categories":[]}"#);
    assert!(
        e.starts_with("unknown variant `pie`, expected one of `bar`, `line`, `forest`"),
        "{e}"
    );
    let e = err(r#"{"type":"link","id":"a","id":"b","target":"x","drilldown":false}"#);
    assert!(e.contains("duplicate field `id`"), "{e}");
    let e = err(r#"{"type":"citation","id":"c","reference":"r","number":"1"}"#);
    assert!(
        e.starts_with("invalid type: string \"1\", expected u32"),
        "{e}"
    );
    let e = err(r#"["citation","c","r",1]"#);
    assert!(e.contains("expected a component"), "{e}");
    // Positions point into the object.
    assert!(err("{\"type\":\"link\",\n\"id\":5}").contains("line 2"));
}

#[test]
fn unknown_fields_are_ignored_and_optional_fields_default() {
    let c: Component = serde_json::from_str(
        r#"{"type":"image","future":{"a":[1,2,{"b":null}]},"id":"i","src":"s","alt":"a"}"#,
    )
    .unwrap();
    assert_eq!(
        c,
        Component::Image {
            id: "i".into(),
            src: "s".into(),
            alt: "a".into(),
            zoom: false
        }
    );
    let c: Component = serde_json::from_str(
        r#"{"type":"video","id":"v","src":"s","poster":"p","title":"t","captions":null}"#,
    )
    .unwrap();
    assert!(matches!(c, Component::Video { captions: None, .. }));
    // `kind` on a variant without one is ignored like any other foreign field.
    let c: Component = serde_json::from_str(
        r#"{"type":"citation","kind":"pie","id":"c","reference":"r","number":1}"#,
    )
    .unwrap();
    assert_eq!(c.id(), "c");
}

#[test]
fn a_field_of_another_variant_is_type_checked() {
    // The one documented difference from the derive: `label` belongs to popups, so on a
    // citation it must still be a string (the derive ignored it). The compiler never
    // writes foreign fields.
    let t = r#"{"type":"citation","id":"c","reference":"r","number":1,"label":5}"#;
    assert!(serde_json::from_str::<Old>(t).is_ok());
    assert!(serde_json::from_str::<Component>(t).is_err());
    let t = r#"{"type":"citation","id":"c","reference":"r","number":1,"label":"x"}"#;
    assert!(serde_json::from_str::<Component>(t).is_ok());
}

#[test]
fn the_compiled_sample_bundle_parses_the_same() {
    // The compiled `bundle.json` of content-samples/en-dosing-guide (the fuzz seed), as
    // the compiler wrote it (`type` first).
    let raw: &[u8] = include_bytes!("../../fuzz/corpus/bundle_json/en-dosing-guide.json");
    #[derive(Deserialize)]
    struct OldBundle {
        slides: Vec<OldSlide>,
    }
    #[derive(Deserialize)]
    struct OldSlide {
        components: Vec<Old>,
    }
    let old: OldBundle = serde_json::from_slice(raw).unwrap();
    let new = edetail_format::bundle::Bundle::from_json(raw).unwrap();
    let old: Vec<&Old> = old.slides.iter().flat_map(|s| &s.components).collect();
    let new: Vec<&Component> = new.slides.iter().flat_map(|s| &s.components).collect();
    assert!(new.len() > 10, "{} components", new.len());
    assert_eq!(
        serde_json::to_value(&new).unwrap(),
        serde_json::to_value(&old).unwrap()
    );
    let text = String::from_utf8_lossy(raw);
    assert_eq!(
        text.matches("{\"type\":\"").count(),
        new.len(),
        "every component starts with `type`"
    );
}
