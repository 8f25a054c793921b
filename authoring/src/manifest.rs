//! `deck.toml`: parsing with spans and validation.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Diagnostic, SourceFile};

/// Default asset size budget: 5 MiB per asset.
pub const DEFAULT_ASSET_BUDGET: u64 = 5 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    deck: Option<Spanned<RawDeck>>,
    approval: Option<Spanned<RawApproval>>,
    isi: Option<Spanned<RawIsi>>,
    tracking: Option<RawTracking>,
    theme: Option<RawTheme>,
    limits: Option<RawLimits>,
    #[serde(default)]
    references: BTreeMap<Spanned<String>, Spanned<RawReference>>,
    #[serde(default)]
    flow: Vec<Spanned<RawSection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeck {
    id: Option<Spanned<String>>,
    title: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    locale: Option<Spanned<String>>,
    product: Option<Spanned<String>>,
    therapeutic_area: Option<String>,
    #[serde(default)]
    channels: Vec<Spanned<String>>,
    sources: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    code: Option<Spanned<String>>,
    valid_from: Option<Spanned<toml::value::Datetime>>,
    valid_until: Option<Spanned<toml::value::Datetime>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIsi {
    title: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTracking {
    view_threshold_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTheme {
    primary: Option<Spanned<String>>,
    accent: Option<Spanned<String>>,
    background: Option<Spanned<String>>,
    text: Option<Spanned<String>>,
    font_family: Option<Spanned<String>>,
    logo: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    asset_max_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReference {
    citation: Option<Spanned<String>>,
    doi: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    id: Spanned<String>,
    title: Spanned<String>,
    #[serde(default)]
    slides: Vec<Spanned<String>>,
}

/// A string with its byte range in `deck.toml`.
#[derive(Debug, Clone)]
pub struct Located {
    pub value: String,
    pub start: usize,
    pub end: usize,
}

impl Located {
    fn from(s: &Spanned<String>) -> Self {
        Located {
            value: s.get_ref().clone(),
            start: s.span().start,
            end: s.span().end,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ManifestReference {
    pub id: Located,
    pub citation: String,
    pub doi: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ManifestSection {
    pub id: Located,
    pub title: String,
    pub slides: Vec<Located>,
}

/// The validated manifest. Missing or invalid values were reported and replaced by
/// placeholders so the rest of the deck can still be checked.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub id: String,
    pub title: String,
    pub version: String,
    pub locale: String,
    pub product: Option<Located>,
    pub therapeutic_area: Option<String>,
    pub channels: Vec<String>,
    pub sources: Vec<Located>,
    pub approval_code: String,
    pub valid_from: Option<(String, usize, usize)>,
    pub valid_until: Option<(String, usize, usize)>,
    /// Span of the `[approval]` table (or 0..0).
    pub approval_span: (usize, usize),
    /// `[isi] title`; defaults to the locale's "Important safety information".
    pub isi_title: String,
    pub isi_file: Option<Located>,
    pub view_threshold_ms: u64,
    pub theme: edetail_format::bundle::Theme,
    pub logo: Option<Located>,
    pub asset_budget: u64,
    pub references: Vec<ManifestReference>,
    pub flow: Vec<ManifestSection>,
}

/// Parse and validate `deck.toml`. Returns `None` when the file cannot be parsed at all.
pub fn parse(file: &SourceFile, diags: &mut Vec<Diagnostic>) -> Option<Manifest> {
    let raw: RawManifest = match toml::from_str(&file.text) {
        Ok(r) => r,
        Err(e) => {
            let (start, end) = e.span().map_or((0, 0), |r| (r.start, r.end));
            let msg = e.message().trim().to_string();
            let hint = manifest_hint(&msg);
            let full = match key_at(&file.text, start, true) {
                Some(key) if !msg.contains("unknown field") => {
                    format!("invalid deck.toml: `{key}`: {msg}")
                }
                _ => format!("invalid deck.toml: {msg}"),
            };
            let mut d = Diagnostic::new("E0101", full).at(file, start, end);
            if let Some(h) = hint {
                d = d.with_hint(h);
            }
            diags.push(d.with_label(short_label(&msg)));
            return None;
        }
    };
    let mut push = |d: Diagnostic| diags.push(d);

    let missing =
        |what: &str, table: &str, span: (usize, usize), push: &mut dyn FnMut(Diagnostic)| {
            push(
                Diagnostic::new(
                    "E0102",
                    format!("missing required field `{what}` in [{table}]"),
                )
                .at(file, span.0, span.1)
                .with_label(format!("[{table}] needs `{what}`"))
                .with_hint(format!(
                    "add `{what} = ...` to the [{table}] table (see docs/authoring.md)"
                )),
            );
        };

    let (deck, deck_span) = match raw.deck {
        Some(d) => {
            let span = (d.span().start, d.span().end);
            (Some(d.into_inner()), span)
        }
        None => {
            push(
                Diagnostic::new("E0102", "missing required table [deck]")
                    .in_file(&file.path)
                    .with_hint(
                        "start deck.toml with a [deck] table: id, title, version, locale, sources",
                    ),
            );
            (None, (0, 0))
        }
    };

    let mut m = Manifest {
        id: String::new(),
        title: String::new(),
        version: "0.0.0".into(),
        locale: "en".into(),
        product: None,
        therapeutic_area: None,
        channels: Vec::new(),
        sources: Vec::new(),
        approval_code: String::new(),
        valid_from: None,
        valid_until: None,
        approval_span: (0, 0),
        isi_title: String::new(),
        isi_file: None,
        view_threshold_ms: raw
            .tracking
            .as_ref()
            .and_then(|t| t.view_threshold_ms)
            .unwrap_or(2000),
        theme: default_theme(),
        logo: None,
        asset_budget: raw
            .limits
            .as_ref()
            .and_then(|l| l.asset_max_bytes)
            .unwrap_or(DEFAULT_ASSET_BUDGET),
        references: Vec::new(),
        flow: Vec::new(),
    };

    if let Some(deck) = deck {
        match &deck.id {
            Some(id) => {
                if !is_deck_id(id.get_ref()) {
                    push(
                        Diagnostic::new("E0103", format!("invalid deck id `{}`", id.get_ref()))
                            .at(file, id.span().start, id.span().end)
                            .with_label("not a valid id")
                            .with_hint("use lowercase letters, digits and '-', starting with a letter or digit"),
                    );
                }
                m.id = id.get_ref().clone();
            }
            None => missing("id", "deck", deck_span, &mut push),
        }
        match &deck.title {
            Some(t) => m.title = t.get_ref().clone(),
            None => missing("title", "deck", deck_span, &mut push),
        }
        match &deck.version {
            Some(v) => {
                if !is_semver(v.get_ref()) {
                    push(
                        Diagnostic::new(
                            "E0104",
                            format!("`{}` is not a semantic version", v.get_ref()),
                        )
                        .at(file, v.span().start, v.span().end)
                        .with_label("expected MAJOR.MINOR.PATCH")
                        .with_hint("write the version as MAJOR.MINOR.PATCH, e.g. \"1.0.0\" or \"1.2.0-rc.1\""),
                    );
                } else {
                    m.version = v.get_ref().clone();
                }
            }
            None => missing("version", "deck", deck_span, &mut push),
        }
        match &deck.locale {
            Some(l) => {
                if !is_locale(l.get_ref()) {
                    push(
                        Diagnostic::new(
                            "E0106",
                            format!("`{}` is not a BCP 47 locale", l.get_ref()),
                        )
                        .at(file, l.span().start, l.span().end)
                        .with_label("expected e.g. \"en-US\" or \"ko-KR\"")
                        .with_hint("use a BCP 47 language tag such as \"en-US\" or \"ko-KR\""),
                    );
                } else {
                    m.locale = l.get_ref().clone();
                }
            }
            None => missing("locale", "deck", deck_span, &mut push),
        }
        for ch in &deck.channels {
            if !matches!(ch.get_ref().as_str(), "mr_led" | "remote" | "self_serve") {
                push(
                    Diagnostic::new("E0107", format!("unknown channel `{}`", ch.get_ref()))
                        .at(file, ch.span().start, ch.span().end)
                        .with_label("unknown channel")
                        .with_hint("channels are \"mr_led\", \"remote\" and \"self_serve\""),
                );
            } else if !m.channels.contains(ch.get_ref()) {
                m.channels.push(ch.get_ref().clone());
            }
        }
        m.product = deck.product.as_ref().map(Located::from);
        m.therapeutic_area = deck.therapeutic_area.clone();
        match &deck.sources {
            Some(s) if !s.get_ref().is_empty() => {
                m.sources = s.get_ref().iter().map(Located::from).collect();
            }
            Some(s) => push(
                Diagnostic::new("E0102", "`sources` is empty: the deck has no slide files")
                    .at(file, s.span().start, s.span().end)
                    .with_label("no files listed")
                    .with_hint("list the slide files in reading order, e.g. sources = [\"slides/01-intro.md\"]"),
            ),
            None => missing("sources", "deck", deck_span, &mut push),
        }
    }

    // Approval.
    match &raw.approval {
        None => push(
            Diagnostic::new(
                "E0108",
                "approval code missing: deck.toml has no [approval] table",
            )
            .in_file(&file.path)
            .with_hint("add [approval] with code, valid_from and valid_until (the MLR approval)"),
        ),
        Some(a) => {
            let span = (a.span().start, a.span().end);
            m.approval_span = span;
            let a = a.get_ref();
            match &a.code {
                Some(c) if !c.get_ref().trim().is_empty() => m.approval_code = c.get_ref().clone(),
                Some(c) => push(
                    Diagnostic::new("E0108", "approval code missing: `code` is empty")
                        .at(file, c.span().start, c.span().end)
                        .with_label("empty approval code")
                        .with_hint("write the MLR approval code, e.g. code = \"KR-ZEN-2026-0142\""),
                ),
                None => push(
                    Diagnostic::new("E0108", "approval code missing: [approval] has no `code`")
                        .at(file, span.0, span.1)
                        .with_label("no `code` here")
                        .with_hint("write the MLR approval code, e.g. code = \"KR-ZEN-2026-0142\""),
                ),
            }
            m.valid_from =
                approval_date(file, "valid_from", a.valid_from.as_ref(), span, &mut push);
            m.valid_until =
                approval_date(file, "valid_until", a.valid_until.as_ref(), span, &mut push);
            if let (Some(f), Some(u)) = (&m.valid_from, &m.valid_until)
                && f.0 > u.0
            {
                push(
                    Diagnostic::new(
                        "E0111",
                        format!(
                            "approval window is empty: valid_from {} is after valid_until {}",
                            f.0, u.0
                        ),
                    )
                    .at(file, u.1, u.2)
                    .with_label("before valid_from")
                    .with_hint("valid_until must be on or after valid_from"),
                );
            }
        }
    }

    // ISI.
    if let Some(isi) = &raw.isi {
        let span = (isi.span().start, isi.span().end);
        let isi = isi.get_ref();
        if let Some(t) = &isi.title {
            m.isi_title = t.get_ref().clone();
        }
        match &isi.file {
            Some(f) => m.isi_file = Some(Located::from(f)),
            None => missing("file", "isi", span, &mut push),
        }
    }
    if let Some(product) = &m.product
        && m.isi_file.is_none()
    {
        push(
            Diagnostic::new(
                "E0114",
                format!(
                    "deck names product `{}` but has no important safety information",
                    product.value
                ),
            )
            .at(file, product.start, product.end)
            .with_label("a product deck needs an ISI")
            .with_hint("add [isi] with title and file = \"isi.md\""),
        );
    }

    // Theme.
    if let Some(t) = &raw.theme {
        for (name, val, slot) in [
            ("primary", &t.primary, &mut m.theme.primary),
            ("accent", &t.accent, &mut m.theme.accent),
            ("background", &t.background, &mut m.theme.background),
            ("text", &t.text, &mut m.theme.text),
        ] {
            if let Some(v) = val {
                if is_colour(v.get_ref()) {
                    *slot = v.get_ref().to_ascii_lowercase();
                } else {
                    push(
                        Diagnostic::new(
                            "E0105",
                            format!(
                                "theme colour `{name}` is `{}`, not a hex colour",
                                v.get_ref()
                            ),
                        )
                        .at(file, v.span().start, v.span().end)
                        .with_label("expected #rgb or #rrggbb")
                        .with_hint("write colours as \"#rgb\" or \"#rrggbb\", e.g. \"#0b5cad\""),
                    );
                }
            }
        }
        if let Some(f) = &t.font_family {
            if is_font_family(f.get_ref()) {
                m.theme.font_family = f.get_ref().clone();
            } else {
                push(
                    Diagnostic::new(
                        "E0117",
                        format!("theme `font_family` `{}` is not a font list", f.get_ref()),
                    )
                    .at(file, f.span().start, f.span().end)
                    .with_label("only font names, quotes, commas and spaces")
                    .with_hint("write a CSS font list such as \"'Noto Sans KR', system-ui, sans-serif\" (no ; : ( ) { } < > \\ /)"),
                );
            }
        }
        m.logo = t.logo.as_ref().map(Located::from);
    }

    // References (BTreeMap: sorted by id, deterministic).
    for (id, r) in &raw.references {
        let rr = r.get_ref();
        let citation = match &rr.citation {
            Some(c) => c.get_ref().clone(),
            None => {
                missing(
                    "citation",
                    &format!("references.{}", id.get_ref()),
                    (r.span().start, r.span().end),
                    &mut push,
                );
                String::new()
            }
        };
        if let Some(u) = &rr.url
            && !is_web_url(u.get_ref())
        {
            push(
                Diagnostic::new(
                    "E0118",
                    format!(
                        "reference `{}` url `{}` is not an http(s) URL",
                        id.get_ref(),
                        u.get_ref()
                    ),
                )
                .at(file, u.span().start, u.span().end)
                .with_label("expected https://...")
                .with_hint(
                    "reference links open in a browser: use a full https:// (or http://) URL",
                ),
            );
        }
        if let Some(d) = &rr.doi
            && !is_doi(d.get_ref())
        {
            push(
                Diagnostic::new(
                    "E0118",
                    format!(
                        "reference `{}` doi `{}` is not a DOI",
                        id.get_ref(),
                        d.get_ref()
                    ),
                )
                .at(file, d.span().start, d.span().end)
                .with_label("expected 10.xxxx/...")
                .with_hint(
                    "write the bare DOI, e.g. \"10.1000/xyz123\" (no spaces, quotes or < >)",
                ),
            );
        }
        m.references.push(ManifestReference {
            id: Located::from(id),
            citation,
            doi: rr.doi.as_ref().map(|d| d.get_ref().clone()),
            url: rr.url.as_ref().map(|u| u.get_ref().clone()),
        });
    }

    // Flow.
    for s in raw.flow {
        let s = s.into_inner();
        m.flow.push(ManifestSection {
            id: Located::from(&s.id),
            title: s.title.get_ref().clone(),
            slides: s.slides.iter().map(Located::from).collect(),
        });
    }
    if m.flow.iter().all(|s| s.slides.is_empty()) && deck_span != (0, 0) {
        push(
            Diagnostic::new("E0115", "the main flow is empty")
                .at(file, deck_span.0, deck_span.0)
                .with_label("no [[flow]] slides")
                .with_hint("add [[flow]] sections listing the main-flow slide ids in order"),
        );
    }
    if m.isi_title.is_empty() {
        m.isi_title = crate::i18n::Lang::from_locale(&m.locale)
            .isi_title()
            .to_string();
    }
    Some(m)
}

fn approval_date(
    file: &SourceFile,
    field: &str,
    v: Option<&Spanned<toml::value::Datetime>>,
    table: (usize, usize),
    push: &mut dyn FnMut(Diagnostic),
) -> Option<(String, usize, usize)> {
    let Some(v) = v else {
        push(
            Diagnostic::new(
                "E0102",
                format!("missing required field `{field}` in [approval]"),
            )
            .at(file, table.0, table.1)
            .with_label(format!("[approval] needs `{field}`"))
            .with_hint(format!(
                "add `{field} = YYYY-MM-DD` (a TOML date, inclusive, UTC)"
            )),
        );
        return None;
    };
    let dt = v.get_ref();
    match (dt.date, dt.time, dt.offset) {
        (Some(d), None, None) => Some((
            format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
            v.span().start,
            v.span().end,
        )),
        _ => {
            push(
                Diagnostic::new(
                    "E0111",
                    format!("`{field}` must be a date (YYYY-MM-DD), found `{dt}`"),
                )
                .at(file, v.span().start, v.span().end)
                .with_label("expected a plain date")
                .with_hint(format!("write `{field} = 2026-09-01` (no time, no quotes)")),
            );
            None
        }
    }
}

/// The dotted key whose value is at `offset` (`deck.version`), from the source text:
/// the key before `=` on that line, prefixed by the enclosing `[table]` when `tables`.
pub fn key_at(text: &str, offset: usize, tables: bool) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let eq = line.find('=')?;
    if line_start + eq > offset {
        return None;
    }
    let key = line[..eq].trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    let table = if tables {
        text[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| {
                l.trim_start_matches('[')
                    .trim_end_matches(']')
                    .trim()
                    .to_string()
            })
    } else {
        None
    };
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

fn short_label(msg: &str) -> String {
    msg.lines().next().unwrap_or("here").to_string()
}

fn manifest_hint(msg: &str) -> Option<String> {
    if msg.contains("unknown field") {
        Some("check the spelling against docs/authoring.md; unknown keys are refused so typos are not silently ignored".into())
    } else if msg.contains("invalid type") {
        Some("the value has the wrong type: quote strings, leave numbers and dates unquoted, use [..] for lists".into())
    } else if msg.contains("missing field") {
        Some("add the missing field (see docs/authoring.md)".into())
    } else {
        None
    }
}

fn default_theme() -> edetail_format::bundle::Theme {
    edetail_format::bundle::Theme {
        primary: "#0b5cad".into(),
        accent: "#f28c28".into(),
        background: "#ffffff".into(),
        text: "#1a1a1a".into(),
        font_family: "system-ui, sans-serif".into(),
        logo: None,
    }
}

/// Deck ids: lowercase letters, digits and '-', starting with a letter or digit.
pub fn is_deck_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Slide and component ids: ASCII letters, digits, '-' and '_', not starting with '-'.
pub fn is_item_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Semantic Versioning 2.0.0.
pub fn is_semver(s: &str) -> bool {
    let (core, rest) = match s.find(['-', '+']) {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    };
    if parts.len() != 3 || !parts.iter().all(|p| numeric(p)) {
        return false;
    }
    let ident_ok = |list: &str, pre: bool| {
        list.split('.').all(|id| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && (!pre || !id.bytes().all(|b| b.is_ascii_digit()) || numeric(id))
        })
    };
    match rest {
        None => true,
        Some(r) => {
            let (pre, build) = if let Some(stripped) = r.strip_prefix('-') {
                match stripped.find('+') {
                    Some(i) => (Some(&stripped[..i]), Some(&stripped[i + 1..])),
                    None => (Some(stripped), None),
                }
            } else {
                (None, r.strip_prefix('+'))
            };
            pre.is_none_or(|p| ident_ok(p, true)) && build.is_none_or(|b| ident_ok(b, false))
        }
    }
}

/// A pragmatic BCP 47 check: a 2-3 letter language, then 1-8 character alphanumeric subtags.
pub fn is_locale(s: &str) -> bool {
    let mut parts = s.split('-');
    let lang_ok = parts
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
    lang_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A CSS font-family list that cannot leave its declaration: font names (any
/// letters or digits), spaces, quotes, commas, `-`, `_` and `.` only.
pub fn is_font_family(s: &str) -> bool {
    !s.trim().is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | ',' | '\'' | '"' | '-' | '_' | '.'))
}

/// An absolute `http://` or `https://` URL without whitespace, quotes or angle brackets.
pub fn is_web_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty())
        && !s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\')
        })
}

/// A DOI (`10.<registrant>/<suffix>`) without whitespace, quotes or angle brackets.
pub fn is_doi(s: &str) -> bool {
    s.starts_with("10.")
        && s.contains('/')
        && !s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\')
        })
}

/// `#rgb` or `#rrggbb`.
pub fn is_colour(s: &str) -> bool {
    s.strip_prefix('#')
        .is_some_and(|h| (h.len() == 3 || h.len() == 6) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver() {
        for ok in [
            "1.0.0",
            "0.1.2",
            "1.2.3-rc.1",
            "1.2.3+build.5",
            "1.2.3-alpha+b",
        ] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in ["1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0-01", "1..0", ""] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn colours_and_locales() {
        assert!(is_colour("#0b5cad") && is_colour("#FFF"));
        assert!(!is_colour("blue") && !is_colour("#12345") && !is_colour("#ggg"));
        assert!(is_locale("ko-KR") && is_locale("en") && is_locale("zh-Hant-TW"));
        assert!(!is_locale("english!") && !is_locale("e") && !is_locale(""));
        assert!(is_font_family(
            "'Noto Sans KR', 'Apple SD Gothic Neo', system-ui, sans-serif"
        ));
        assert!(!is_font_family("x; background:url(javascript:alert(1))"));
        assert!(!is_font_family("a</style><script>"));
        assert!(is_web_url("https://example.org/a?b=c#d") && is_web_url("HTTP://x.org"));
        assert!(!is_web_url("javascript:alert(1)") && !is_web_url("https://x.org/\"onclick"));
        assert!(
            !is_web_url("https://") && !is_web_url("//x.org") && !is_web_url("data:text/html,x")
        );
        assert!(
            is_doi("10.0000/kjfe.2025.008")
                && !is_doi("10.1/x\"><script>")
                && !is_doi("javascript:1")
        );
    }
}
