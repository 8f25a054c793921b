//! Test fixtures shared by the native unit tests.

use edetail_format::bundle::*;

/// A minimal valid bundle: `flow` slides in one section (those in `mandatory` are
/// mandatory) plus `detail` slides.
pub fn bundle(flow: &[&str], mandatory: &[&str], detail: &[&str]) -> Bundle {
    let slide = |id: &str, is_detail: bool| {
        let mut s = Slide {
            id: id.into(),
            title: format!("Title {id}"),
            key_message: None,
            tags: vec![],
            layout: "default".into(),
            mandatory: mandatory.contains(&id),
            audience: vec![],
            detail: is_detail,
            html: format!("<h1>{id}</h1>"),
            steps: 0,
            notes: None,
            components: vec![],
            references: vec![],
            content_hash: String::new(),
            source: None,
        };
        s.content_hash = s.compute_content_hash();
        s
    };
    let mut slides: Vec<Slide> = flow.iter().map(|id| slide(id, false)).collect();
    slides.extend(detail.iter().map(|id| slide(id, true)));
    Bundle {
        schema_version: BUNDLE_SCHEMA_VERSION,
        deck: DeckMeta {
            id: "deck".into(),
            title: "Deck".into(),
            version: "1.0.0".into(),
            locale: "en-US".into(),
            product: None,
            therapeutic_area: None,
            channels: vec![],
        },
        approval: Approval {
            code: "X-1".into(),
            valid_from: "2026-01-01".into(),
            valid_until: "2027-12-31".into(),
        },
        preview: false,
        tracking: Tracking::default(),
        theme: Theme {
            primary: "#0b5cad".into(),
            accent: "#f28c28".into(),
            background: "#ffffff".into(),
            text: "#1a1a1a".into(),
            font_family: "system-ui".into(),
            logo: None,
        },
        flow: vec![Section {
            id: "main".into(),
            title: "Main".into(),
            slides: flow.iter().map(|s| s.to_string()).collect(),
        }],
        slides,
        references: vec![],
        isi: None,
        assets: vec![],
    }
}
