//! Snapshots of the content samples' bundles, and the locale of compiler-generated text.
//!
//! Snapshots: `content-samples/<deck>` compiled with a fixed `today` (inside both
//! decks' approval windows), `bundle.json` pretty-printed. After an intended change,
//! review the diff and accept it with `INSTA_UPDATE=always cargo test -p
//! edetail-authoring --test samples` (or `cargo insta review`).

use std::collections::BTreeMap;
use std::path::Path;

use edetail_authoring::{CompileOptions, compile, compile_files, render_human};
use edetail_format::bundle::{Bundle, Component};

/// Inside both samples' approval windows (checked by the test).
const TODAY: &str = "2026-11-22";

fn sample(name: &str) -> Bundle {
    let deck = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../content-samples")
        .join(name);
    let out = compile(&deck, &CompileOptions::new(TODAY)).expect("sample deck folder");
    assert!(
        out.diagnostics.is_empty(),
        "{name}:\n{}",
        render_human(&out.diagnostics, false)
    );
    out.bundle.expect("sample builds")
}

#[test]
fn ko_zentara_launch_bundle_snapshot() {
    let b = sample("ko-zentara-launch");
    assert_eq!(b.deck.locale, "ko-KR");
    insta::assert_snapshot!(
        "ko_zentara_launch",
        serde_json::to_string_pretty(&b).expect("json")
    );
}

#[test]
fn en_dosing_guide_bundle_snapshot() {
    let b = sample("en-dosing-guide");
    assert!(b.deck.locale.starts_with("en"));
    insta::assert_snapshot!(
        "en_dosing_guide",
        serde_json::to_string_pretty(&b).expect("json")
    );
}

const SLIDE: &str = r#"+++
id = "a"
title = "A"
+++

# A

:::chart{#bars type=bar title="HbA1c" unit="%"}
Week,Drug,Placebo
12,-1.1,-0.3
:::

:::chart{#trend type=line title="Weight"}
Week,Drug
0,0
12,-1.2
:::

:::chart{#forest type=forest title="Subgroups" reference=0}
Subgroup,Estimate,Low,High
Age < 65,-1.3,-1.6,-1.0
:::

::video{src="assets/v.mp4" poster="assets/p.svg" captions="assets/v.vtt"}
"#;

fn deck(locale: &str) -> Bundle {
    let manifest = format!(
        r#"[deck]
id = "loc"
title = "Locale"
version = "1.0.0"
locale = "{locale}"
sources = ["s.md"]

[approval]
code = "L-1"
valid_from = 2026-01-01
valid_until = 2026-12-31

[isi]
file = "isi.md"

[[flow]]
id = "main"
title = "Main"
slides = ["a"]
"#
    );
    let mut files = BTreeMap::new();
    files.insert("deck.toml".to_string(), manifest.into_bytes());
    files.insert("s.md".to_string(), SLIDE.as_bytes().to_vec());
    files.insert("isi.md".to_string(), b"Safety text.\n".to_vec());
    files.insert("assets/v.mp4".to_string(), b"\0\0".to_vec());
    files.insert("assets/p.svg".to_string(), b"<svg/>".to_vec());
    files.insert("assets/v.vtt".to_string(), b"WEBVTT\n".to_vec());
    let out = compile_files(files, &CompileOptions::new(TODAY));
    assert!(
        out.diagnostics.is_empty(),
        "{}",
        render_human(&out.diagnostics, false)
    );
    out.bundle.expect("bundle")
}

/// Every piece of human text the compiler generates (not the author's).
fn generated_text(b: &Bundle) -> String {
    let s = &b.slides[0];
    let mut out = s.html.clone();
    for c in &s.components {
        if let Component::Video { title, .. } = c {
            out.push_str("\nvideo title: ");
            out.push_str(title);
        }
    }
    if let Some(isi) = &b.isi {
        out.push_str("\nisi title: ");
        out.push_str(&isi.title);
    }
    out
}

const ENGLISH: &[&str] = &[
    "Bar chart of Drug, Placebo by Week.",
    "Line chart of Drug by Week.",
    "Forest plot of 1 rows; reference line at 0. Estimates with 95% intervals: Age &lt; 65 -1.3 (-1.6 to -1).",
    r#"aria-label="Age &lt; 65: -1.3 (95% CI -1.6 to -1)""#,
    "<caption>HbA1c (data table)</caption>",
    "<caption>Subgroups (data table)</caption>",
    r#"label="Captions""#,
    r#"title="Video""#,
    "video title: Video",
    "isi title: Important safety information",
];

const KOREAN: &[&str] = &[
    "Week별 Drug, Placebo 막대 그래프.",
    "Week별 Drug 선 그래프.",
    "포레스트 플롯, 1개 행, 기준선 0. 추정치와 95% 신뢰구간: Age &lt; 65 -1.3 (-1.6~-1).",
    r#"aria-label="Age &lt; 65: -1.3 (95% 신뢰구간 -1.6~-1)""#,
    "<caption>HbA1c (데이터 표)</caption>",
    "<caption>Subgroups (데이터 표)</caption>",
    r#"label="자막""#,
    r#"title="동영상""#,
    "video title: 동영상",
    "isi title: 중요 안전성 정보",
];

fn assert_text(locale: &str, want: &[&str], not: &[&str]) {
    let text = generated_text(&deck(locale));
    for w in want {
        assert!(text.contains(w), "{locale}: missing {w:?} in\n{text}");
    }
    for n in not {
        assert!(!text.contains(n), "{locale}: unexpected {n:?} in\n{text}");
    }
}

#[test]
fn korean_decks_get_korean_generated_text() {
    assert_text("ko-KR", KOREAN, ENGLISH);
    assert_text("ko", KOREAN, ENGLISH);
}

#[test]
fn other_decks_get_english_generated_text() {
    assert_text("en-US", ENGLISH, KOREAN);
    assert_text("ja-JP", ENGLISH, KOREAN);
}
