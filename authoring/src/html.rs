//! HTML helpers: escaping for generated markup, the author-content sanitizer
//! (ammonia with an explicit allow-list) and the raw-HTML safety checks.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

/// Escape text for HTML text and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Tags allowed in author HTML (markdown output and inline raw HTML).
pub const ALLOWED_TAGS: &[&str] = &[
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "code",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "s",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
];

fn cleaner() -> &'static ammonia::Builder<'static> {
    static CLEANER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    CLEANER.get_or_init(|| {
        let mut b = ammonia::Builder::empty();
        b.tags(ALLOWED_TAGS.iter().copied().collect::<HashSet<_>>());
        let mut attrs: HashMap<&str, HashSet<&str>> = HashMap::new();
        attrs.insert("a", ["href", "title"].into_iter().collect());
        attrs.insert("abbr", ["title"].into_iter().collect());
        attrs.insert("ol", ["start"].into_iter().collect());
        attrs.insert("th", ["style", "colspan", "rowspan"].into_iter().collect());
        attrs.insert("td", ["style", "colspan", "rowspan"].into_iter().collect());
        b.tag_attributes(attrs);
        b.generic_attributes(["lang", "dir"].into_iter().collect());
        b.filter_style_properties(["text-align"].into_iter().collect());
        b.url_schemes(["http", "https", "mailto", "tel"].into_iter().collect());
        b.url_relative(ammonia::UrlRelative::PassThrough);
        b.link_rel(Some("noopener noreferrer"));
        b.clean_content_tags(["script", "style"].into_iter().collect());
        b.strip_comments(true);
        b
    })
}

/// Sanitize author HTML to the allow-list.
pub fn sanitize(html: &str) -> String {
    cleaner().clean(html).to_string()
}

/// A safety problem in raw author HTML: byte range (relative to the input), code, message.
pub struct HtmlIssue {
    pub start: usize,
    pub end: usize,
    pub code: &'static str,
    pub message: String,
}

/// Whether a URL is a `javascript:` (or `vbscript:`/`data:text/html`) URL, ignoring the
/// whitespace and control characters browsers ignore.
pub fn is_script_url(url: &str) -> bool {
    let cleaned: String = url
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .take(16)
        .collect::<String>()
        .to_ascii_lowercase();
    cleaned.starts_with("javascript:")
        || cleaned.starts_with("vbscript:")
        || cleaned.starts_with("data:text/html")
}

/// Scan raw HTML for `<script>`, `<iframe>` (and other embedding elements), `on*=` event
/// handler attributes and script URLs.
pub fn check_raw_html(html: &str) -> Vec<HtmlIssue> {
    let mut out = Vec::new();
    let b = html.as_bytes();
    let lower = html.to_ascii_lowercase();
    let lb = lower.as_bytes();
    let mut i = 0;
    while i < lb.len() {
        if lb[i] != b'<' {
            i += 1;
            continue;
        }
        let tag_start = i;
        let mut j = i + 1;
        if j < lb.len() && lb[j] == b'/' {
            j += 1;
        }
        let name_start = j;
        while j < lb.len() && (lb[j].is_ascii_alphanumeric() || lb[j] == b'-') {
            j += 1;
        }
        if j == name_start {
            i += 1;
            continue;
        }
        let name = &lower[name_start..j];
        let closing = name_start > tag_start + 1;
        if !closing {
            match name {
                "script" => out.push(HtmlIssue {
                    start: tag_start,
                    end: j,
                    code: "E0501",
                    message: "raw `<script>` is not allowed in slides".into(),
                }),
                "iframe" | "frame" | "object" | "embed" => out.push(HtmlIssue {
                    start: tag_start,
                    end: j,
                    code: "E0502",
                    message: format!("raw `<{name}>` is not allowed in slides"),
                }),
                _ => {}
            }
        }
        // Attributes.
        loop {
            while j < lb.len() && (lb[j].is_ascii_whitespace() || lb[j] == b'/') {
                j += 1;
            }
            if j >= lb.len() || lb[j] == b'>' || lb[j] == b'<' {
                break;
            }
            let an_start = j;
            while j < lb.len()
                && !lb[j].is_ascii_whitespace()
                && !matches!(lb[j], b'=' | b'>' | b'/')
            {
                j += 1;
            }
            let an_end = j;
            let attr = &lower[an_start..an_end];
            if attr.len() > 2 && attr.starts_with("on") {
                out.push(HtmlIssue {
                    start: an_start,
                    end: an_end,
                    code: "E0503",
                    message: format!(
                        "event-handler attribute `{}` is not allowed",
                        &html[an_start..an_end]
                    ),
                });
            }
            while j < lb.len() && lb[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < lb.len() && lb[j] == b'=' {
                j += 1;
                while j < lb.len() && lb[j].is_ascii_whitespace() {
                    j += 1;
                }
                let (vs, ve);
                if j < lb.len() && (lb[j] == b'"' || lb[j] == b'\'') {
                    let q = lb[j];
                    vs = j + 1;
                    j += 1;
                    while j < lb.len() && lb[j] != q {
                        j += 1;
                    }
                    ve = j;
                    j = (j + 1).min(lb.len());
                } else {
                    vs = j;
                    while j < lb.len() && !lb[j].is_ascii_whitespace() && lb[j] != b'>' {
                        j += 1;
                    }
                    ve = j;
                }
                let value = String::from_utf8_lossy(&b[vs..ve]);
                if is_script_url(&decode_entities(&value)) {
                    out.push(HtmlIssue {
                        start: vs,
                        end: ve,
                        code: "E0504",
                        message: "`javascript:` URLs are not allowed".into(),
                    });
                }
            } else if an_end == an_start {
                j += 1;
            }
        }
        i = j.max(i + 1);
    }
    out
}

/// The first HTML-tag-like sequence in plain text (`<` followed by a letter, `/`, `!`
/// or `?`), e.g. `<img`: plain-text fields (titles, labels, prompts, options, alt
/// text, citations) must not hold markup, so that no consumer can turn them into HTML.
pub fn markup_in_text(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(p) = s[from..].find('<').map(|p| from + p) {
        let next = b.get(p + 1).copied();
        if next.is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, b'/' | b'!' | b'?')) {
            let end = s[p + 1..]
                .find(|c: char| {
                    !(c.is_ascii_alphanumeric() || matches!(c, '/' | '!' | '?' | '-' | ':'))
                })
                .map_or(s.len(), |e| p + 1 + e);
            return Some(&s[p..end]);
        }
        from = p + 1;
    }
    None
}

/// Decode the few entities that are used to hide `javascript:` from naive filters.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = rest.find(';').filter(|&e| e < 12);
        let decoded = end.and_then(|e| {
            let ent = &rest[1..e];
            let code = if let Some(h) = ent.strip_prefix("#x").or_else(|| ent.strip_prefix("#X")) {
                u32::from_str_radix(h, 16).ok()
            } else if let Some(d) = ent.strip_prefix('#') {
                d.parse().ok()
            } else {
                match ent {
                    "colon" => Some(58),
                    "tab" => Some(9),
                    "newline" => Some(10),
                    _ => None,
                }
            };
            code.and_then(char::from_u32).map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_unsafe_html() {
        let codes: Vec<_> = check_raw_html(r#"<p onclick="x()">a</p><SCRIPT>x</SCRIPT><a href=" jav&#x61;script:alert(1)">x</a><iframe src=x>"#)
            .into_iter()
            .map(|i| i.code)
            .collect();
        assert_eq!(codes, vec!["E0503", "E0501", "E0504", "E0502"]);
        assert!(check_raw_html("<sup>1</sup><br><small>ok</small>").is_empty());
    }

    #[test]
    fn markup_in_plain_text() {
        assert_eq!(markup_in_text("a <img src=x>"), Some("<img"));
        assert_eq!(markup_in_text("</noscript>"), Some("</noscript"));
        assert_eq!(markup_in_text("<!-- x"), Some("<!--"));
        assert_eq!(markup_in_text("<svg:script"), Some("<svg:script"));
        assert_eq!(
            markup_in_text("HbA1c < 7% and a<5, <65 years, 10 <= x"),
            None
        );
        assert_eq!(markup_in_text("젠타라 <"), None);
    }

    #[test]
    fn sanitizer_keeps_allow_list_only() {
        let out = sanitize(
            r#"<p class="x" style="color:red">a<img src=x onerror=y><sup>1</sup></p><style>p{}</style>"#,
        );
        assert_eq!(out, "<p>a<sup>1</sup></p>");
    }
}
