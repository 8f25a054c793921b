//! DOM work on mounted slides: the compiler's static markup (see authoring's HTML
//! conventions) is wired up here — build-step visibility, chart table toggles, quiz
//! controls and feedback. Runs only on the (at most three) mounted slides.

use std::collections::BTreeMap;

use edetail_format::Component;
use edetail_format::bundle::QuestionPurpose;
use wasm_bindgen::JsCast;
use web_sys::Element;

use crate::i18n::{K, Lang, t};

/// A question's answer, kept so a remounted slide shows it again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerState {
    pub selected: Vec<String>,
    pub text: Option<String>,
    pub submitted: bool,
    pub correct: Option<bool>,
}

fn each(root: &Element, sel: &str, mut f: impl FnMut(Element)) {
    if let Ok(list) = root.query_selector_all(sel) {
        for i in 0..list.length() {
            if let Some(e) = list.item(i).and_then(|n| n.dyn_into::<Element>().ok()) {
                f(e);
            }
        }
    }
}

/// Show build steps `1..=shown`, hide the rest (hidden steps are also hidden from AT).
pub fn apply_steps(slide: &Element, shown: u32) {
    each(slide, "[data-step]", |e| {
        let n: u32 = e
            .get_attribute("data-step")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let cl = e.class_list();
        if n <= shown {
            let _ = cl.add_1("shown");
            let _ = e.remove_attribute("aria-hidden");
        } else {
            let _ = cl.remove_1("shown");
            let _ = e.set_attribute("aria-hidden", "true");
        }
    });
}

/// One-time wiring of a freshly mounted slide.
pub fn enhance(
    slide: &Element,
    components: &[Component],
    lang: Lang,
    answers: &BTreeMap<String, AnswerState>,
) {
    if slide.has_attribute("data-enhanced") {
        return;
    }
    let _ = slide.set_attribute("data-enhanced", "1");
    let doc = super::dom::document();
    // Citations and zoomable images are not natively focusable: make them operable.
    each(
        slide,
        "sup.cite[data-component], img.ed-image[data-component]",
        |e| {
            let _ = e.set_attribute("tabindex", "0");
            let _ = e.set_attribute("role", "button");
            if e.tag_name().eq_ignore_ascii_case("sup") {
                let n = e.text_content().unwrap_or_default();
                let n: u32 = n.trim().parse().unwrap_or(0);
                let _ = e.set_attribute("aria-label", &crate::i18n::reference_label(lang, n));
            } else {
                let _ = e.set_attribute("data-zoom", "1");
            }
        },
    );
    // Charts: a data-table toggle.
    each(slide, "figure.ed-chart[data-component]", |fig| {
        if let Ok(b) = doc.create_element("button") {
            let _ = b.set_attribute("type", "button");
            let _ = b.set_attribute("class", "ed-chart-toggle");
            let _ = b.set_attribute("data-act", "table");
            let _ = b.set_attribute("aria-pressed", "false");
            b.set_text_content(Some(t(lang, K::ShowTable)));
            let _ = fig.append_child(&b);
        }
    });
    // Questions: submit buttons where one tap is not the answer, a feedback region.
    for c in components {
        let Component::Question { id, kind, .. } = c else {
            continue;
        };
        let Some(q) = question_el(slide, id) else {
            continue;
        };
        use edetail_format::bundle::QuestionKind::*;
        if matches!(kind, Multiple | Text)
            && let Ok(b) = doc.create_element("button")
        {
            let _ = b.set_attribute("type", "button");
            let _ = b.set_attribute("class", "ed-submit");
            let _ = b.set_attribute("data-act", "submit");
            b.set_text_content(Some(t(lang, K::Submit)));
            let _ = q.append_child(&b);
        }
        if let Ok(f) = doc.create_element("div") {
            let _ = f.set_attribute("class", "ed-feedback");
            let _ = f.set_attribute("aria-live", "polite");
            let _ = q.append_child(&f);
        }
        if let Some(a) = answers.get(id) {
            show_answer(&q, c, a, lang);
        }
    }
}

pub fn question_el(slide: &Element, id: &str) -> Option<Element> {
    slide
        .query_selector(&format!(
            ".ed-question[data-component=\"{}\"]",
            css_escape(id)
        ))
        .ok()
        .flatten()
}

/// Component ids are compiler-made (`[a-z0-9-]`), but never trust markup in a selector.
pub fn css_escape(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        .collect()
}

/// Reflect selections (before submit) on the option buttons.
pub fn show_selection(q: &Element, selected: &[String]) {
    each(q, ".ed-option", |b| {
        let v = b.get_attribute("data-option").unwrap_or_default();
        let on = selected.contains(&v);
        let _ = b.set_attribute("aria-pressed", if on { "true" } else { "false" });
    });
}

/// Lock a submitted question and show feedback (quiz: correct or not + explanation).
pub fn show_answer(q: &Element, c: &Component, a: &AnswerState, lang: Lang) {
    let Component::Question {
        purpose,
        correct,
        explanation,
        ..
    } = c
    else {
        return;
    };
    show_selection(q, &a.selected);
    if !a.submitted {
        return;
    }
    let _ = q.class_list().add_1("answered");
    each(q, ".ed-option, .ed-submit, textarea", |b| {
        let _ = b.set_attribute("disabled", "");
    });
    if *purpose == QuestionPurpose::Quiz {
        each(q, ".ed-option", |b| {
            let v = b.get_attribute("data-option").unwrap_or_default();
            if correct.contains(&v) {
                let _ = b.class_list().add_1("is-correct");
            } else if a.selected.contains(&v) {
                let _ = b.class_list().add_1("is-wrong");
            }
        });
    }
    if let Ok(Some(f)) = q.query_selector(".ed-feedback") {
        let head = match (purpose, a.correct) {
            (QuestionPurpose::Quiz, Some(true)) => {
                format!("<p class=\"verdict ok\">✓ {}</p>", t(lang, K::Correct))
            }
            (QuestionPurpose::Quiz, _) => {
                format!("<p class=\"verdict no\">✗ {}</p>", t(lang, K::Incorrect))
            }
            _ => format!("<p class=\"verdict\">{}</p>", t(lang, K::ThanksAnswer)),
        };
        // The explanation is compiler-sanitized HTML, like the slide itself.
        let expl = match (purpose, explanation) {
            (QuestionPurpose::Quiz, Some(e)) => format!("<div class=\"explanation\">{e}</div>"),
            _ => String::new(),
        };
        f.set_inner_html(&format!("{head}{expl}"));
    }
}
