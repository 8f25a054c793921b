//! Splitting slide files into slides: `---` separators, `+++` TOML front matter,
//! trailing `Note:` speaker notes.

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Diagnostic, SourceFile};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FrontMatter {
    pub id: Option<Spanned<String>>,
    pub title: Option<Spanned<String>>,
    pub key_message: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub layout: Option<Spanned<String>>,
    #[serde(default)]
    pub mandatory: bool,
    #[serde(default)]
    pub audience: Vec<String>,
}

/// One slide as found in a source file. Offsets are bytes into the file.
pub struct RawSlide {
    /// Index of the source file.
    pub file: usize,
    pub id: String,
    /// Byte range of the id value (or of the front matter when the id is missing).
    pub id_span: (usize, usize),
    pub title: String,
    pub key_message: Option<String>,
    pub tags: Vec<String>,
    pub layout: String,
    pub layout_span: (usize, usize),
    pub mandatory: bool,
    pub audience: Vec<String>,
    pub body: (usize, usize),
    pub notes: Option<(usize, usize)>,
    /// Byte offset of the slide's first line.
    pub start: usize,
}

/// Lines of `text` as (start, end-without-newline) offsets.
pub fn lines(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= text.len() {
            return None;
        }
        let start = pos;
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        pos = end + 1;
        let trimmed_end = if text[start..end].ends_with('\r') {
            end - 1
        } else {
            end
        };
        Some((start, trimmed_end))
    })
}

/// Tracks fenced code blocks so separators inside code are not taken literally.
#[derive(Default)]
pub struct FenceState {
    open: Option<(u8, usize)>,
}

impl FenceState {
    /// Feed a line; returns true when the line is inside (or opens/closes) a code fence.
    pub fn code_line(&mut self, line: &str) -> bool {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let t = line.trim_start_matches(' ');
        let fence = |c: u8| t.bytes().take_while(|&b| b == c).count();
        if let Some((c, n)) = self.open {
            if indent < 4 && fence(c) >= n && t.trim_start_matches(char::from(c)).trim().is_empty()
            {
                self.open = None;
            }
            return true;
        }
        if indent < 4 {
            for c in [b'`', b'~'] {
                let n = fence(c);
                if n >= 3 && !(c == b'`' && t[n..].contains('`')) {
                    self.open = Some((c, n));
                    return true;
                }
            }
        }
        false
    }
}

/// Split one file into slides and parse each slide's front matter.
pub fn split(file_idx: usize, file: &SourceFile, diags: &mut Vec<Diagnostic>) -> Vec<RawSlide> {
    let text: &str = &file.text;
    // Chunks between `---` lines (outside code fences).
    let mut chunks = Vec::new();
    let mut fences = FenceState::default();
    let mut chunk_start = 0;
    for (s, e) in lines(text) {
        let line = &text[s..e];
        if fences.code_line(line) {
            continue;
        }
        if line.trim_end() == "---" {
            chunks.push((chunk_start, s));
            chunk_start = (e + 1).min(text.len());
            if text[e..].starts_with("\r\n") {
                chunk_start = (e + 2).min(text.len());
            }
        }
    }
    chunks.push((chunk_start, text.len()));

    let mut out = Vec::new();
    for (cs, ce) in chunks {
        let chunk = &text[cs..ce];
        if chunk.trim().is_empty() {
            continue;
        }
        // Front matter: first non-blank line must be `+++`.
        let mut it = lines(chunk).map(|(s, e)| (cs + s, cs + e));
        let open = it.find(|&(s, e)| !text[s..e].trim().is_empty());
        let Some((os, oe)) = open else { continue };
        if text[os..oe].trim_end() != "+++" {
            diags.push(
                Diagnostic::new("E0201", "slide has no front matter")
                    .at(file, os, oe)
                    .with_label("expected `+++` here")
                    .with_hint("start every slide with TOML front matter between `+++` lines: +++ / id = \"...\" / title = \"...\" / +++"),
            );
            continue;
        }
        let close = it.find(|&(s, e)| text[s..e].trim_end() == "+++");
        let Some((cls, cle)) = close else {
            diags.push(
                Diagnostic::new("E0201", "front matter is not closed")
                    .at(file, os, oe)
                    .with_label("opened here, no closing `+++`")
                    .with_hint("end the front matter with a line containing only `+++`"),
            );
            continue;
        };
        let fm_start = (oe + 1).min(cls);
        let fm_text = &text[fm_start..cls];
        let fm: FrontMatter = match toml::from_str(fm_text) {
            Ok(fm) => fm,
            Err(e) => {
                let (s, en) = e.span().map_or((0, 0), |r| (r.start, r.end));
                let msg = e.message().trim().to_string();
                let full = match crate::manifest::key_at(&file.text, fm_start + s, false) {
                    Some(key) if !msg.contains("unknown field") => {
                        format!("invalid front matter: `{key}`: {msg}")
                    }
                    _ => format!("invalid front matter: {msg}"),
                };
                diags.push(
                    Diagnostic::new("E0202", full)
                        .at(file, fm_start + s, fm_start + en)
                        .with_label(msg.lines().next().unwrap_or("here").to_string())
                        .with_hint("front matter is TOML: id, title, key_message, tags, layout, mandatory, audience"),
                );
                continue;
            }
        };
        let body_start = (cle + 1).min(ce);
        let mut ok = true;
        let (id, id_span) = match &fm.id {
            Some(id) => {
                let span = (fm_start + id.span().start, fm_start + id.span().end);
                if !crate::manifest::is_item_id(id.get_ref()) {
                    diags.push(
                        Diagnostic::new("E0203", format!("invalid slide id `{}`", id.get_ref()))
                            .at(file, span.0, span.1)
                            .with_label("not a valid id")
                            .with_hint("slide ids use ASCII letters, digits, '-' and '_'"),
                    );
                    ok = false;
                }
                (id.get_ref().clone(), span)
            }
            None => {
                diags.push(
                    Diagnostic::new("E0203", "slide front matter has no `id`")
                        .at(file, os, oe)
                        .with_label("front matter without id")
                        .with_hint("add `id = \"my-slide\"`: ids are how flow, links and analytics name slides"),
                );
                ok = false;
                (String::new(), (os, oe))
            }
        };
        let title = match &fm.title {
            Some(t) => t.get_ref().clone(),
            None => {
                diags.push(
                    Diagnostic::new("E0203", "slide front matter has no `title`")
                        .at(file, os, oe)
                        .with_label("front matter without title")
                        .with_hint(
                            "add `title = \"...\"`: titles show in the overview and in analytics",
                        ),
                );
                String::new()
            }
        };
        let (layout, layout_span) = match &fm.layout {
            Some(l) => {
                let span = (fm_start + l.span().start, fm_start + l.span().end);
                if !matches!(
                    l.get_ref().as_str(),
                    "default" | "title" | "two-column" | "section" | "full-media"
                ) {
                    diags.push(
                        Diagnostic::new("E0205", format!("unknown layout `{}`", l.get_ref()))
                            .at(file, span.0, span.1)
                            .with_label("unknown layout")
                            .with_hint("layouts: default, title, two-column, section, full-media"),
                    );
                }
                (l.get_ref().clone(), span)
            }
            None => ("default".to_string(), id_span),
        };
        if !ok {
            continue;
        }
        // Notes: everything after a line `Note:` (outside code fences).
        let mut fences = FenceState::default();
        let mut body_end = ce;
        let mut notes = None;
        for (s, e) in lines(&text[body_start..ce]) {
            let line = &text[body_start + s..body_start + e];
            if fences.code_line(line) {
                continue;
            }
            if line.trim_end() == "Note:" {
                body_end = body_start + s;
                notes = Some(((body_start + e + 1).min(ce), ce));
                break;
            }
        }
        out.push(RawSlide {
            file: file_idx,
            id,
            id_span,
            title,
            key_message: fm.key_message.clone(),
            tags: fm.tags.clone(),
            layout,
            layout_span,
            mandatory: fm.mandatory,
            audience: fm.audience.clone(),
            body: (body_start, body_end),
            notes,
            start: os,
        });
    }
    out
}
