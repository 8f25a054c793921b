//! XSS corpus at the compiler level: every payload of `tests/xss-corpus.txt` is pushed
//! into every author-controlled field of a deck (slide markdown, link and image
//! destinations, directive attributes, chart CSV cells and titles, quiz options,
//! popup and tab labels, notes, front matter, manifest fields, theme values, the ISI).
//! Each compile must either refuse the deck with a clear error diagnostic, or produce
//! a bundle in which nothing is executable:
//!
//! - HTML fields (slide, popup, tab, explanation, notes, ISI) tokenized like a browser
//!   (html5ever) hold only allowed tags, no `<script`, no `on*` attribute, no
//!   `javascript:`/`vbscript:`/`data:text/html` URL, no style carrying
//!   `url()`/`expression()`;
//! - plain-text fields (titles, labels, prompts, options, alt text, citations) contain
//!   no markup at all, so they stay inert even if a consumer inserted them as HTML;
//! - theme values are plain colours / font lists, reference links http(s) only.
//!
//! The browser-side counterpart (opening the output in a real browser) lives with
//! the e2e tests and reuses the same corpus file.

use std::cell::RefCell;
use std::collections::BTreeMap;

use edetail_authoring::{CompileOptions, compile_files, render_human};
use edetail_format::bundle::{Bundle, Component};
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

const TODAY: &str = "2026-06-01";

fn corpus() -> Vec<String> {
    let text = include_str!("xss-corpus.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("//"))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------
// The checker: browser tokenization of the output.

#[derive(Default)]
struct Sink {
    tags: RefCell<Vec<Tag>>,
    comments: RefCell<usize>,
}

impl TokenSink for Sink {
    type Handle = ();
    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        match token {
            Token::TagToken(t) => self.tags.borrow_mut().push(t),
            Token::CommentToken(_) | Token::DoctypeToken(_) => *self.comments.borrow_mut() += 1,
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

fn tokenize(html: &str) -> (Vec<Tag>, usize) {
    let tok = Tokenizer::new(Sink::default(), TokenizerOpts::default());
    let q = BufferQueue::default();
    q.push_back(StrTendril::from_slice(html));
    let _ = tok.feed(&q);
    tok.end();
    let tags = tok.sink.tags.take();
    let comments = *tok.sink.comments.borrow();
    (tags, comments)
}

/// Tags that may appear in a bundle's HTML: the sanitizer's allow-list plus the
/// compiler's generated markup (components, charts).
fn allowed_tag(name: &str) -> bool {
    edetail_authoring::html::ALLOWED_TAGS.contains(&name)
        || [
            "figure", "svg", "title", "desc", "g", "line", "text", "rect", "circle", "polyline",
            "button", "img", "video", "source", "track", "details", "summary", "textarea",
        ]
        .contains(&name)
}

const URL_ATTRS: &[&str] = &[
    "href",
    "src",
    "poster",
    "xlink:href",
    "action",
    "formaction",
    "data",
    "srcset",
    "background",
    "values",
    "to",
    "from",
    "by",
    "content",
    "srcdoc",
    "codebase",
    "cite",
];

fn script_url(v: &str) -> bool {
    let cleaned: String = v
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    cleaned.starts_with("javascript:")
        || cleaned.starts_with("vbscript:")
        || cleaned.starts_with("data:text/html")
        || cleaned.starts_with("data:image/svg")
}

/// Executable vectors in an HTML field (empty when safe).
fn html_problems(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    if html.to_ascii_lowercase().contains("<script") {
        out.push("`<script` in the output".into());
    }
    let (tags, _) = tokenize(html);
    for t in tags.iter().filter(|t| t.kind == TagKind::StartTag) {
        let name = t.name.to_string();
        if !allowed_tag(&name) {
            out.push(format!("tag <{name}> is not allowed"));
        }
        for a in &t.attrs {
            let an = a.name.local.to_string().to_ascii_lowercase();
            let full = match a.name.prefix.as_ref() {
                Some(p) => format!("{p}:{an}"),
                None => an.clone(),
            };
            let v = a.value.to_string();
            if an.starts_with("on") {
                out.push(format!("<{name}> has event handler `{an}`"));
            }
            if (URL_ATTRS.contains(&an.as_str()) || URL_ATTRS.contains(&full.as_str()))
                && script_url(&v)
            {
                out.push(format!("<{name} {an}> is a script URL: {v}"));
            }
            let lv = v.to_ascii_lowercase();
            if an == "style"
                && [
                    "url(",
                    "expression(",
                    "@import",
                    "behavior",
                    "binding",
                    "javascript:",
                ]
                .iter()
                .any(|x| lv.contains(x))
            {
                out.push(format!("<{name}> style carries a vector: {v}"));
            }
        }
    }
    out
}

/// Markup in a plain-text field (empty when it is inert even as HTML).
fn text_problems(text: &str) -> Vec<String> {
    let (tags, comments) = tokenize(text);
    let mut out: Vec<String> = tags
        .iter()
        .map(|t| format!("plain text holds markup <{}>", t.name))
        .collect();
    if comments > 0 {
        out.push("plain text holds a comment/doctype".into());
    }
    out
}

fn colour_ok(s: &str) -> bool {
    s.strip_prefix('#')
        .is_some_and(|h| (h.len() == 3 || h.len() == 6) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Every problem in a built bundle.
fn bundle_problems(b: &Bundle) -> Vec<String> {
    let mut p = Vec::new();
    let mut html = |field: &str, s: &str| {
        for x in html_problems(s) {
            p.push(format!("{field}: {x}"));
        }
    };
    for s in &b.slides {
        html(&format!("slide {} html", s.id), &s.html);
        if let Some(n) = &s.notes {
            html(&format!("slide {} notes", s.id), n);
        }
        for c in &s.components {
            match c {
                Component::Popup { html: h, .. } => html("popup html", h),
                Component::Tabs { tabs, .. } => {
                    for t in tabs {
                        html("tab html", &t.html);
                    }
                }
                Component::Question {
                    explanation: Some(e),
                    ..
                } => html("quiz explanation", e),
                _ => {}
            }
        }
    }
    if let Some(isi) = &b.isi {
        html("isi html", &isi.html);
    }
    // Plain text.
    let mut texts: Vec<(String, String)> = vec![
        ("deck title".into(), b.deck.title.clone()),
        ("product".into(), b.deck.product.clone().unwrap_or_default()),
        (
            "area".into(),
            b.deck.therapeutic_area.clone().unwrap_or_default(),
        ),
        ("font".into(), b.theme.font_family.clone()),
    ];
    texts.extend(
        b.flow
            .iter()
            .map(|s| ("section title".into(), s.title.clone())),
    );
    if let Some(isi) = &b.isi {
        texts.push(("isi title".into(), isi.title.clone()));
    }
    for r in &b.references {
        texts.push(("citation".into(), r.citation.clone()));
    }
    for s in &b.slides {
        texts.push(("slide title".into(), s.title.clone()));
        texts.extend(
            s.key_message
                .iter()
                .map(|k| ("key message".into(), k.clone())),
        );
        texts.extend(s.tags.iter().map(|t| ("tag".into(), t.clone())));
        for c in &s.components {
            let v = serde_json::to_value(c).unwrap_or_default();
            let mut strings = Vec::new();
            collect_strings(&v, &mut strings);
            for (k, s) in strings {
                if !matches!(k.as_str(), "html" | "explanation") {
                    texts.push((format!("component {k}"), s));
                }
            }
        }
    }
    for (field, t) in texts {
        for x in text_problems(&t) {
            p.push(format!("{field}: {x}: {t:?}"));
        }
    }
    // Theme and reference links.
    let th = &b.theme;
    for (n, c) in [
        ("primary", &th.primary),
        ("accent", &th.accent),
        ("background", &th.background),
        ("text", &th.text),
    ] {
        if !colour_ok(c) {
            p.push(format!("theme {n} is not a plain colour: {c:?}"));
        }
    }
    if th.font_family.chars().any(|c| {
        matches!(
            c,
            ';' | ':' | '(' | ')' | '{' | '}' | '<' | '>' | '\\' | '/'
        )
    }) {
        p.push(format!(
            "font_family can leave its declaration: {:?}",
            th.font_family
        ));
    }
    if let Some(l) = &th.logo
        && b.asset(l).is_none()
    {
        p.push(format!("logo is not a bundle asset: {l:?}"));
    }
    for r in &b.references {
        if let Some(u) = &r.url {
            let l = u.to_ascii_lowercase();
            if !(l.starts_with("https://") || l.starts_with("http://"))
                || u.contains(['"', '\'', '<', '>', ' '])
            {
                p.push(format!("reference url is not a plain http(s) URL: {u:?}"));
            }
        }
        if let Some(d) = &r.doi
            && d.contains(['"', '\'', '<', '>', ' '])
        {
            p.push(format!("doi can break out of a link: {d:?}"));
        }
    }
    p
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match x {
                    serde_json::Value::String(s) => out.push((k.clone(), s.clone())),
                    other => collect_strings(other, out),
                }
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                if let serde_json::Value::String(s) = x {
                    out.push(("item".into(), s.clone()));
                } else {
                    collect_strings(x, out);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------
// The deck template and the injection points.

fn toml_str(p: &str) -> String {
    serde_json::to_string(p).unwrap_or_default()
}

fn attr(p: &str) -> String {
    p.replace('\\', "\\\\").replace('"', "\\\"")
}

fn csv(p: &str) -> String {
    format!("\"{}\"", p.replace('"', "\"\""))
}

/// Manifest keys (placeholder -> default TOML value).
const MANIFEST_DEFAULTS: &[(&str, &str)] = &[
    ("TITLE", "\"XSS deck\""),
    ("PRODUCT", "\"Zentara\""),
    ("AREA", "\"Diabetes\""),
    ("ISITITLE", "\"Safety\""),
    ("PRIMARY", "\"#0b5cad\""),
    ("ACCENT", "\"#f28c28\""),
    ("BACKGROUND", "\"#ffffff\""),
    ("TEXTCOL", "\"#1a1a1a\""),
    ("FONT", "\"'Noto Sans KR', system-ui, sans-serif\""),
    ("LOGO", "\"assets/logo.svg\""),
    ("CITATION", "\"Smith J. A fictional trial. 2024.\""),
    ("URL", "\"https://example.org/ref\""),
    ("DOI", "\"10.0000/x.1\""),
    ("SECTION", "\"Main\""),
];

const MANIFEST: &str = r#"[deck]
id = "xss"
title = TITLE
version = "1.0.0"
locale = "en-US"
product = PRODUCT
therapeutic_area = AREA
sources = ["s.md"]

[approval]
code = "X-1"
valid_from = 2026-01-01
valid_until = 2026-12-31

[isi]
title = ISITITLE
file = "isi.md"

[theme]
primary = PRIMARY
accent = ACCENT
background = BACKGROUND
text = TEXTCOL
font_family = FONT
logo = LOGO

[references.r1]
citation = CITATION
url = URL
doi = DOI

[[flow]]
id = "main"
title = SECTION
slides = ["a"]
"#;

#[derive(Clone, Copy)]
enum Where {
    /// Slide body markdown; `{p}` raw, `{a}` attribute-escaped, `{c}` CSV-quoted.
    Body(&'static str),
    /// A front-matter line; `{t}` is the TOML string.
    FrontMatter(&'static str),
    /// A manifest placeholder replaced by the TOML string.
    Manifest(&'static str),
    /// The ISI markdown file.
    Isi,
}

const CONTEXTS: &[(&str, Where)] = &[
    ("paragraph", Where::Body("{p}\n")),
    ("inline", Where::Body("Before {p} after.\n")),
    ("heading", Where::Body("## {p}\n")),
    ("list item", Where::Body("- {p}\n- two\n")),
    (
        "table cell",
        Where::Body("| a | b |\n|---|---|\n| {p} | x |\n"),
    ),
    ("link text", Where::Body("[{p}](https://example.org)\n")),
    ("link destination", Where::Body("[x]({p})\n")),
    (
        "link title",
        Where::Body("[x](https://example.org \"{a}\")\n"),
    ),
    ("image alt", Where::Body("![{p}](assets/a.svg)\n")),
    ("image destination", Where::Body("![alt]({p})\n")),
    (
        "popup label and title",
        Where::Body(":::popup{label=\"{a}\" title=\"{a}\"}\n{p}\n:::\n"),
    ),
    (
        "popup label unescaped",
        Where::Body(":::popup{label=\"{p}\"}\nbody\n:::\n"),
    ),
    (
        "popup body",
        Where::Body(":::popup{label=\"More\"}\n{p}\n:::\n"),
    ),
    (
        "tab label and body",
        Where::Body("::::tabs\n:::tab{label=\"{a}\"}\n{p}\n:::\n::::\n"),
    ),
    (
        "tab id",
        Where::Body("::::tabs\n:::tab{#{p} label=\"L\"}\nx\n:::\n::::\n"),
    ),
    (
        "accordion",
        Where::Body("::::accordion\n:::tab{label=\"{a}\"}\n{p}\n:::\n::::\n"),
    ),
    (
        "chart title, unit and cells",
        Where::Body(":::chart{type=bar title=\"{a}\" unit=\"{a}\"}\nWeek,{c}\n{c},1\n:::\n"),
    ),
    (
        "forest label and x_label",
        Where::Body(
            ":::chart{type=forest title=\"T\" x_label=\"{a}\" reference=0}\nL,E,Lo,Hi\n{c},1,0,2\n:::\n",
        ),
    ),
    (
        "quiz prompt, option, explanation",
        Where::Body(":::quiz\n{p}\n\n- [x] {p}\n- other\n\n> {p}\n:::\n"),
    ),
    (
        "poll option",
        Where::Body(":::poll\nWhich?\n\n- {p}\n- other\n:::\n"),
    ),
    (
        "rating labels",
        Where::Body(":::survey{kind=rating min_label=\"{a}\" max_label=\"{a}\"}\nRate it\n:::\n"),
    ),
    (
        "video title",
        Where::Body("::video{src=\"assets/v.mp4\" poster=\"assets/a.svg\" title=\"{a}\"}\n"),
    ),
    (
        "video src",
        Where::Body("::video{src=\"{a}\" poster=\"assets/a.svg\"}\n"),
    ),
    ("build step", Where::Body(":::step\n{p}\n:::\n")),
    (
        "columns",
        Where::Body("::::columns\n:::column\n{p}\n:::\n:::column\nx\n:::\n::::\n"),
    ),
    ("speaker notes", Where::Body("Text.\n\nNote:\n{p}\n")),
    ("slide title", Where::FrontMatter("title = {t}")),
    ("key message", Where::FrontMatter("key_message = {t}")),
    ("tags", Where::FrontMatter("tags = [{t}]")),
    ("deck title", Where::Manifest("TITLE")),
    ("product", Where::Manifest("PRODUCT")),
    ("therapeutic area", Where::Manifest("AREA")),
    ("section title", Where::Manifest("SECTION")),
    ("ISI title", Where::Manifest("ISITITLE")),
    ("reference citation", Where::Manifest("CITATION")),
    ("reference url", Where::Manifest("URL")),
    ("reference doi", Where::Manifest("DOI")),
    ("theme primary", Where::Manifest("PRIMARY")),
    ("theme accent", Where::Manifest("ACCENT")),
    ("theme background", Where::Manifest("BACKGROUND")),
    ("theme text", Where::Manifest("TEXTCOL")),
    ("theme font_family", Where::Manifest("FONT")),
    ("theme logo", Where::Manifest("LOGO")),
    ("ISI markdown", Where::Isi),
];

fn deck_files(payload: &str, place: Where) -> BTreeMap<String, Vec<u8>> {
    let mut manifest = MANIFEST.to_string();
    for (k, default) in MANIFEST_DEFAULTS {
        let v = match place {
            Where::Manifest(key) if key == *k => toml_str(payload),
            _ => (*default).to_string(),
        };
        manifest = manifest.replacen(&format!(" = {k}\n"), &format!(" = {v}\n"), 1);
    }
    let (mut fm, mut body) = ("title = \"A\"".to_string(), "Benign.\n".to_string());
    match place {
        Where::Body(t) => {
            body = t
                .replace("{a}", &attr(payload))
                .replace("{c}", &csv(payload))
                .replace("{p}", payload);
        }
        Where::FrontMatter(t) => {
            let line = t.replace("{t}", &toml_str(payload));
            fm = if line.starts_with("title") {
                line
            } else {
                format!("title = \"A\"\n{line}")
            };
        }
        _ => {}
    }
    let slide = format!("+++\nid = \"a\"\n{fm}\n+++\n\n# A\n\nCited.[^r1]\n\n{body}");
    let isi = match place {
        Where::Isi => format!("{payload}\n"),
        _ => "Safety text.\n".to_string(),
    };
    let mut files = BTreeMap::new();
    files.insert("deck.toml".to_string(), manifest.into_bytes());
    files.insert("s.md".to_string(), slide.into_bytes());
    files.insert("isi.md".to_string(), isi.into_bytes());
    files.insert(
        "assets/a.svg".to_string(),
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec(),
    );
    files.insert(
        "assets/logo.svg".to_string(),
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec(),
    );
    files.insert("assets/v.mp4".to_string(), b"\0\0\0".to_vec());
    files
}

enum Outcome {
    Refused,
    Built,
}

fn run(payload: &str, name: &str, place: Where) -> Result<Outcome, String> {
    let out = compile_files(deck_files(payload, place), &CompileOptions::new(TODAY));
    let errors: Vec<_> = out.diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        if out.bundle.is_some() {
            return Err("errors reported but a bundle was built".into());
        }
        // A clear diagnostic: a code, a message and (for content) a file.
        for d in &errors {
            if d.code.is_empty() || d.message.trim().is_empty() || d.file.is_none() {
                return Err(format!("unclear diagnostic: {}", d.render()));
            }
        }
        return Ok(Outcome::Refused);
    }
    let b = out.bundle.ok_or_else(|| {
        format!(
            "no errors but no bundle:\n{}",
            render_human(&out.diagnostics, false)
        )
    })?;
    let problems = bundle_problems(&b);
    if problems.is_empty() {
        Ok(Outcome::Built)
    } else {
        Err(format!("[{name}] {}", problems.join("\n    ")))
    }
}

#[test]
fn checker_catches_known_vectors() {
    // The checker must be able to fail: each of these is flagged.
    for bad in [
        "<img src=x onerror=alert(1)>",
        "<p ONCLICK='x'>a</p>",
        "<a href=\" &#x6A;avascript:alert(1)\">x</a>",
        "<a href=\"java&#x09;script:alert(1)\">x</a>",
        "<a href='data:text/html,x'>x</a>",
        "<svg><a xlink:href=\"javascript:alert(1)\">x</a></svg>",
        "<p style=\"background:url(x)\">x</p>",
        "<td style=\"width:expression(alert(1))\">x</td>",
        "<style>p{}</style>",
        "<noscript>x</noscript>",
        "<math><mtext>x</mtext></math>",
        "<SCRIPT>x</SCRIPT>",
        "<iframe src=x></iframe>",
    ] {
        assert!(!html_problems(bad).is_empty(), "not flagged: {bad}");
    }
    for good in [
        "<p>a <a href=\"https://example.org\" rel=\"noopener noreferrer\">b</a></p>",
        "<td style=\"text-align: left\">x</td>",
        "<p>javascript:alert(1) as text &lt;script&gt;</p>",
        r#"<button type="button" class="ed-popup-trigger" data-component="p" aria-haspopup="dialog">x&quot; onmouseover=&quot;y</button>"#,
    ] {
        assert!(
            html_problems(good).is_empty(),
            "flagged: {good}: {:?}",
            html_problems(good)
        );
    }
    assert!(!text_problems("<img src=x onerror=alert(1)>").is_empty());
    assert!(!text_problems("a <!-- b -->").is_empty());
    assert!(text_problems("x\" onmouseover=\"alert(1) and a < b").is_empty());
}

#[test]
fn templates_build_with_benign_content() {
    for (name, place) in CONTEXTS {
        let out = compile_files(
            deck_files("hello world", *place),
            &CompileOptions::new(TODAY),
        );
        let benign_ok = match place {
            // Benign values for typed fields.
            Where::Manifest(k)
                if k.starts_with("PRIMARY")
                    || ["ACCENT", "BACKGROUND", "TEXTCOL", "URL", "DOI", "LOGO"].contains(k) =>
            {
                continue;
            }
            Where::Body(t)
                if t.contains("#{p}") || t.contains("src=\"{a}\"") || t.contains("]({p})") =>
            {
                continue;
            }
            _ => true,
        };
        assert!(
            benign_ok && out.bundle.is_some() && !out.diagnostics.iter().any(|d| d.is_error()),
            "template `{name}` does not build with benign content:\n{}",
            render_human(&out.diagnostics, false)
        );
    }
}

/// Runs one group of contexts (split so the test harness runs groups in parallel).
fn corpus_in(contexts: &[(&str, Where)]) {
    let payloads = corpus();
    assert!(
        payloads.len() >= 60,
        "corpus has {} payloads",
        payloads.len()
    );
    let mut failures = Vec::new();
    let (mut built, mut refused) = (0usize, 0usize);
    for (name, place) in contexts {
        let (mut b, mut r) = (0usize, 0usize);
        for p in &payloads {
            match run(p, name, *place) {
                Ok(Outcome::Built) => b += 1,
                Ok(Outcome::Refused) => r += 1,
                Err(e) => failures.push(format!("{name} <- {p}\n    {e}")),
            }
        }
        eprintln!("{name}: {b} built and inert, {r} refused");
        built += b;
        refused += r;
    }
    eprintln!(
        "xss corpus: {} payloads x {} contexts: {built} built and inert, {refused} refused",
        payloads.len(),
        contexts.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Both outcomes occur: the sanitizer path is exercised, not only the refusals.
    assert!(built > 0 && refused > 0, "built {built}, refused {refused}");
}

#[test]
fn corpus_in_markdown_is_refused_or_inert() {
    corpus_in(&CONTEXTS[..10]);
}

#[test]
fn corpus_in_components_is_refused_or_inert() {
    corpus_in(&CONTEXTS[10..26]);
}

#[test]
fn corpus_in_front_matter_manifest_and_isi_is_refused_or_inert() {
    corpus_in(&CONTEXTS[26..]);
}
