//! Slide bodies: directive blocks (`:::name{attrs}` ... `:::`), leaf directives
//! (`::video{...}`), markdown via pulldown-cmark, citations, slide links, images and
//! every component. Author content is sanitized; generated markup is inserted after
//! sanitizing through placeholders the sanitizer cannot produce.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use edetail_format::bundle::{
    AnswerOption, ChartKind, Component, QuestionKind, QuestionPurpose, RatingScale, Tab,
};
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

use crate::assets::{AssetStore, Loaded, PathProblem, normalize};
use crate::chart;
use crate::diag::{Diagnostic, SourceFile};
use crate::html::{check_raw_html, esc, is_script_url, sanitize};
use crate::slides::FenceState;

const PH_OPEN: char = '\u{E000}';
const PH_CLOSE: char = '\u{E001}';

/// Directive names the compiler knows.
pub const BLOCK_DIRECTIVES: &[&str] = &[
    "popup",
    "tabs",
    "accordion",
    "tab",
    "chart",
    "quiz",
    "poll",
    "survey",
    "step",
    "columns",
    "column",
];

/// Deck-wide state shared by every slide's rendering.
pub struct DeckCtx {
    /// Slide id -> is a detail slide.
    pub slides: BTreeMap<String, bool>,
    /// Known reference ids.
    pub refs: BTreeSet<String>,
    /// Reference id -> citation number (first citation order).
    pub ref_numbers: BTreeMap<String, u32>,
    /// Component id -> where it was first defined (`file:line:col`).
    pub component_ids: BTreeMap<String, String>,
    pub assets: AssetStore,
    pub asset_budget: u64,
    budget_warned: BTreeSet<String>,
    pub palette: Vec<String>,
    pub locale: String,
    pub diags: Vec<Diagnostic>,
}

impl DeckCtx {
    pub fn new(
        assets: AssetStore,
        asset_budget: u64,
        palette: Vec<String>,
        locale: String,
    ) -> Self {
        DeckCtx {
            slides: BTreeMap::new(),
            refs: BTreeSet::new(),
            ref_numbers: BTreeMap::new(),
            component_ids: BTreeMap::new(),
            assets,
            asset_budget,
            budget_warned: BTreeSet::new(),
            palette,
            locale,
            diags: Vec::new(),
        }
    }

    /// Resolve an asset path written in `file` at `span`; reports problems.
    pub fn asset(
        &mut self,
        file: &SourceFile,
        path: &str,
        span: (usize, usize),
        what: &str,
    ) -> Option<String> {
        let norm = match normalize(path) {
            Ok(n) => n,
            Err(PathProblem::Remote) => {
                self.diags.push(
                    Diagnostic::new("E0404", format!("{what} `{path}` is a remote URL"))
                        .at(file, span.0, span.1)
                        .with_label("remote URL")
                        .with_hint("bundles work offline: copy the file into the deck's assets/ folder and use a relative path"),
                );
                return None;
            }
            Err(PathProblem::Escapes) => {
                self.diags.push(escapes(file, path, span, what));
                return None;
            }
            Err(PathProblem::Empty) => {
                self.diags.push(
                    Diagnostic::new("E0401", format!("{what} has no path"))
                        .at(file, span.0, span.1)
                        .with_label("empty path")
                        .with_hint("give a deck-relative path such as assets/figure.svg"),
                );
                return None;
            }
        };
        match self.assets.load(&norm) {
            Loaded::Ok { bundle_path, size } => {
                if let Some((w, h)) = self.oversized_pixels(&bundle_path)
                    && self.budget_warned.insert(format!("px:{norm}"))
                {
                    self.diags.push(
                        Diagnostic::new(
                            "E0405",
                            format!(
                                "{what} `{norm}` is {w}×{h} px, over the limit of {MAX_IMAGE_SIDE} px per side and {} megapixels",
                                MAX_IMAGE_PIXELS / 1_000_000
                            ),
                        )
                        .at(file, span.0, span.1)
                        .with_label("image too large to decode on a device")
                        .with_hint("iPad Safari runs out of memory on images this large: export it at the size it is shown (2x the slide canvas is plenty)"),
                    );
                    return None;
                }
                if size > self.asset_budget && self.budget_warned.insert(norm.clone()) {
                    self.diags.push(
                        Diagnostic::new(
                            "W0401",
                            format!(
                                "asset `{norm}` is {}, over the {} budget",
                                human_size(size),
                                human_size(self.asset_budget)
                            ),
                        )
                        .at(file, span.0, span.1)
                        .with_label("large asset")
                        .with_hint("large assets slow offline sync and can exhaust iPad memory: compress it, or raise [limits] asset_max_bytes in deck.toml"),
                    );
                }
                Some(bundle_path)
            }
            Loaded::Missing => {
                self.diags.push(
                    Diagnostic::new("E0401", format!("{what} `{path}` not found"))
                        .at(file, span.0, span.1)
                        .with_label("no such file in the deck folder")
                        .with_hint(
                            "paths are relative to the deck folder (the one holding deck.toml)",
                        ),
                );
                None
            }
            Loaded::Escapes => {
                self.diags.push(escapes(file, path, span, what));
                None
            }
            Loaded::Unreadable(e) => {
                self.diags.push(
                    Diagnostic::new("E0401", format!("{what} `{path}` cannot be read: {e}"))
                        .at(file, span.0, span.1)
                        .with_label("unreadable"),
                );
                None
            }
        }
    }
}

/// Largest raster image accepted: per side and in total pixels (a decoded 32 MP image
/// takes 128 MiB on the device). Checked from the file header, nothing is decoded.
pub const MAX_IMAGE_SIDE: usize = 8_192;
pub const MAX_IMAGE_PIXELS: usize = 32_000_000;

impl DeckCtx {
    /// Declared pixel size of a raster image asset when it is over the limits.
    fn oversized_pixels(&self, bundle_path: &str) -> Option<(usize, usize)> {
        let (_, bytes) = self.assets.files.get(bundle_path)?;
        let size = imagesize::blob_size(bytes).ok()?;
        let (w, h) = (size.width, size.height);
        (w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || w.saturating_mul(h) > MAX_IMAGE_PIXELS)
            .then_some((w, h))
    }
}

/// Sizes for messages: bytes below 10 KiB, then KiB, then MiB with one decimal.
pub fn human_size(n: u64) -> String {
    if n < 10 * 1024 {
        format!("{n} bytes")
    } else if n < 10 * 1024 * 1024 {
        format!("{} KiB", n.div_ceil(1024))
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}

fn escapes(file: &SourceFile, path: &str, span: (usize, usize), what: &str) -> Diagnostic {
    Diagnostic::new("E0402", format!("{what} `{path}` is outside the deck folder"))
        .at(file, span.0, span.1)
        .with_label("escapes the deck folder")
        .with_hint("keep every file inside the deck folder and use a relative path without leading '/' or '..'")
}

/// Directive attributes: `{#id key=value key="quoted value"}`.
#[derive(Debug, Default, Clone)]
pub struct Attrs {
    pub id: Option<String>,
    pub kv: Vec<(String, String)>,
    /// The attributes did not parse (already reported): skip further attribute checks.
    pub broken: bool,
}

impl Attrs {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.kv
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Parse `{...}` attribute text (without the braces).
pub fn parse_attrs(s: &str) -> Result<Attrs, String> {
    let mut a = Attrs::default();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let Some(&(_, c)) = chars.peek() else { break };
        if c == '#' {
            chars.next();
            let mut id = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                id.push(c);
                chars.next();
            }
            if id.is_empty() {
                return Err("`#` must be followed by an id".into());
            }
            if a.id.is_some() {
                return Err("only one `#id` is allowed".into());
            }
            a.id = Some(id);
            continue;
        }
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                key.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if key.is_empty() {
            return Err(format!("unexpected `{c}`; expected `#id` or `key=value`"));
        }
        if chars.peek().map(|(_, c)| *c) != Some('=') {
            return Err(format!("attribute `{key}` needs a value: `{key}=value`"));
        }
        chars.next();
        let mut val = String::new();
        if chars.peek().map(|(_, c)| *c) == Some('"') {
            chars.next();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    _ => val.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted value for `{key}`"));
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '"' {
                    return Err(format!("stray quote in the value of `{key}`"));
                }
                val.push(c);
                chars.next();
            }
        }
        if a.kv.iter().any(|(k, _)| *k == key) {
            return Err(format!("attribute `{key}` is given twice"));
        }
        a.kv.push((key, val));
    }
    Ok(a)
}

/// A block of a slide body.
#[derive(Debug)]
pub enum Node {
    Md(usize, usize),
    Block {
        name: String,
        attrs: Attrs,
        open: (usize, usize),
        body: (usize, usize),
        children: Vec<Node>,
    },
    Leaf {
        name: String,
        attrs: Attrs,
        open: (usize, usize),
    },
}

/// Deepest directive nesting accepted (real decks nest three or four levels); deeper
/// blocks are E0313, which also keeps the compiler's recursion bounded.
pub const MAX_NESTING: usize = 16;

struct Open {
    name: String,
    attrs: Attrs,
    colons: usize,
    open: (usize, usize),
    body_start: usize,
    children: Vec<Node>,
}

impl Open {
    /// The finished block, its body ending at byte `body_end`.
    fn close(self, body_end: usize) -> Node {
        Node::Block {
            name: self.name,
            attrs: self.attrs,
            open: self.open,
            body: (self.body_start, body_end),
            children: self.children,
        }
    }
}

/// Lines as (start, end without newline, start of next line).
fn line_spans(text: &str, start: usize, end: usize) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let nl = text[pos..end].find('\n').map_or(end, |i| pos + i);
        let next = if nl < end { nl + 1 } else { end };
        let e = if nl > pos && text.as_bytes()[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        out.push((pos, e, next));
        pos = next;
    }
    out
}

/// Rendering mode: slides get components; ISI and notes get sanitized markdown only.
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Slide,
    Plain,
}

/// Renders one slide (or the ISI, or notes).
pub struct Renderer<'a> {
    pub deck: &'a mut DeckCtx,
    file: &'a SourceFile,
    text: Arc<str>,
    slide_id: String,
    mode: Mode,
    pub components: Vec<Component>,
    pub references: Vec<String>,
    pub links: Vec<String>,
    pub steps: u32,
    /// Number of `columns` blocks (for the two-column layout check).
    pub columns: u32,
    counters: BTreeMap<&'static str, u32>,
    placeholders: Vec<String>,
}

impl<'a> Renderer<'a> {
    pub fn new(deck: &'a mut DeckCtx, file: &'a SourceFile, slide_id: &str, mode: Mode) -> Self {
        Renderer {
            deck,
            file,
            text: file.text.clone(),
            slide_id: slide_id.to_string(),
            mode,
            components: Vec::new(),
            references: Vec::new(),
            links: Vec::new(),
            steps: 0,
            columns: 0,
            counters: BTreeMap::new(),
            placeholders: Vec::new(),
        }
    }

    fn diag(&mut self, d: Diagnostic) {
        self.deck.diags.push(d);
    }

    fn at(&self, code: &'static str, msg: impl Into<String>, s: usize, e: usize) -> Diagnostic {
        Diagnostic::new(code, msg).at(self.file, s, e)
    }

    /// Render the byte range `start..end` of the file (a slide body, notes or ISI).
    pub fn render(&mut self, start: usize, end: usize) -> String {
        let nodes = self.parse_blocks(start, end);
        self.render_nodes(&nodes)
    }

    /// Split a range into markdown and directive blocks.
    pub fn parse_blocks(&mut self, start: usize, end: usize) -> Vec<Node> {
        let text = self.text.clone();
        let mut root: Vec<Node> = Vec::new();
        let mut stack: Vec<Open> = Vec::new();
        let mut md_start = start;
        let mut fences = FenceState::default();
        // Blocks opened beyond MAX_NESTING (their fence lengths): reported once each and
        // not nested, so the tree (and every recursion over it) stays shallow; their
        // closing fences are consumed here so the blocks around them still match.
        let mut too_deep: Vec<usize> = Vec::new();
        fn flush(stack: &mut [Open], root: &mut Vec<Node>, text: &str, from: usize, to: usize) {
            if from < to && !text[from..to].trim().is_empty() {
                let node = Node::Md(from, to);
                match stack.last_mut() {
                    Some(o) => o.children.push(node),
                    None => root.push(node),
                }
            }
        }
        fn push(stack: &mut [Open], root: &mut Vec<Node>, node: Node) {
            match stack.last_mut() {
                Some(o) => o.children.push(node),
                None => root.push(node),
            }
        }
        for (ls, le, next) in line_spans(&text, start, end) {
            let line = &text[ls..le];
            if fences.code_line(line) {
                continue;
            }
            let t = line.trim_end();
            let n = t.bytes().take_while(|&b| b == b':').count();
            if n < 2 {
                continue;
            }
            let rest = &t[n..];
            if n >= 3 && rest.trim().is_empty() {
                flush(&mut stack, &mut root, &text, md_start, ls);
                md_start = next;
                if too_deep.pop().is_some() {
                    continue;
                }
                let idx = stack
                    .iter()
                    .rposition(|o| o.colons == n)
                    .or_else(|| stack.iter().rposition(|o| o.colons <= n));
                let Some(idx) = idx else {
                    self.diag(
                        self.at("E0302", "closing fence without an open block", ls, le)
                            .with_label("nothing to close")
                            .with_hint(
                                "remove this line, or open a block with `:::name` before it",
                            ),
                    );
                    continue;
                };
                while stack.len() > idx + 1 {
                    if let Some(o) = stack.pop() {
                        self.diag(self.unclosed(&o));
                        push(&mut stack, &mut root, o.close(ls));
                    }
                }
                if let Some(o) = stack.pop() {
                    push(&mut stack, &mut root, o.close(ls));
                }
                continue;
            }
            if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
                continue;
            }
            flush(&mut stack, &mut root, &text, md_start, ls);
            md_start = next;
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(rest.len());
            let name = rest[..name_len].to_string();
            let after = rest[name_len..].trim();
            let attrs = if after.is_empty() {
                Ok(Attrs::default())
            } else if let Some(inner) = after.strip_prefix('{').and_then(|a| a.strip_suffix('}')) {
                parse_attrs(inner)
            } else {
                Err(format!(
                    "unexpected `{after}` after `{name}`; attributes go in braces: {{#id key=value}}"
                ))
            };
            let attrs = match attrs {
                Ok(a) => a,
                Err(m) => {
                    self.diag(
                        self.at("E0303", format!("bad attributes on `{name}`: {m}"), ls, le)
                            .with_label("cannot parse these attributes")
                            .with_hint("write attributes as {#id key=value key=\"quoted value\"}"),
                    );
                    Attrs {
                        broken: true,
                        ..Attrs::default()
                    }
                }
            };
            if n == 2 {
                push(
                    &mut stack,
                    &mut root,
                    Node::Leaf {
                        name,
                        attrs,
                        open: (ls, le),
                    },
                );
            } else if stack.len() >= MAX_NESTING || !too_deep.is_empty() {
                if too_deep.is_empty() {
                    self.diag(
                        self.at(
                            "E0313",
                            format!(
                                "`{name}` is nested more than {MAX_NESTING} blocks deep"
                            ),
                            ls,
                            le,
                        )
                        .with_label("too deeply nested")
                        .with_hint("close some blocks first: components nest a few levels at most (columns > tabs > popup)"),
                    );
                }
                too_deep.push(n);
            } else {
                stack.push(Open {
                    name,
                    attrs,
                    colons: n,
                    open: (ls, le),
                    body_start: next,
                    children: Vec::new(),
                });
            }
        }
        flush(&mut stack, &mut root, &text, md_start, end);
        while let Some(o) = stack.pop() {
            self.diag(self.unclosed(&o));
            push(&mut stack, &mut root, o.close(end));
        }
        root
    }

    /// Byte range of the value of attribute `key` on a directive line (or the whole line).
    fn attr_span(&self, open: (usize, usize), key: &str) -> (usize, usize) {
        let line = &self.text[open.0..open.1];
        let pat = format!("{key}=");
        let mut from = 0;
        while let Some(i) = line[from..].find(&pat).map(|i| from + i) {
            let before = line[..i].chars().next_back();
            if matches!(before, Some(c) if c.is_whitespace() || c == '{') {
                let vs = i + pat.len();
                let rest = &line[vs..];
                let len = if let Some(q) = rest.strip_prefix('"') {
                    q.find('"').map_or(rest.len(), |e| e + 2)
                } else {
                    rest.find(|c: char| c.is_whitespace() || c == '}')
                        .unwrap_or(rest.len())
                };
                return (open.0 + vs, open.0 + vs + len);
            }
            from = i + pat.len();
        }
        open
    }

    fn unclosed(&self, o: &Open) -> Diagnostic {
        self.at(
            "E0302",
            format!("`{}` block is not closed", o.name),
            o.open.0,
            o.open.1,
        )
        .with_label("opened here")
        .with_hint(format!(
            "close it with a line of {} colons; nest blocks by giving the outer fence more colons",
            o.colons
        ))
    }

    pub fn render_nodes(&mut self, nodes: &[Node]) -> String {
        let mut out = String::new();
        for n in nodes {
            match n {
                Node::Md(s, e) => {
                    let html = self.render_md(*s, *e);
                    out.push_str(&html);
                }
                Node::Leaf { name, attrs, open } => {
                    if name == "video" && self.mode == Mode::Slide {
                        let html = self.video(attrs, *open);
                        out.push_str(&html);
                    } else {
                        self.unknown_directive(name, *open, true);
                    }
                }
                Node::Block {
                    name,
                    attrs,
                    open,
                    body,
                    children,
                } => {
                    let html = self.block(name, attrs, *open, *body, children);
                    out.push_str(&html);
                }
            }
        }
        out
    }

    fn unknown_directive(&mut self, name: &str, open: (usize, usize), leaf: bool) {
        let hint = if self.mode == Mode::Plain {
            "components are not available here (ISI and speaker notes are plain markdown)"
                .to_string()
        } else if leaf {
            "the only leaf directive (two colons) is ::video{...}".to_string()
        } else if name == "video" {
            "video is a leaf directive: write ::video{src=... poster=...} with two colons and no body".to_string()
        } else {
            format!("known blocks: {}", BLOCK_DIRECTIVES.join(", "))
        };
        self.diag(
            self.at(
                "E0301",
                format!("unknown directive `{name}`"),
                open.0,
                open.1,
            )
            .with_label("unknown directive")
            .with_hint(hint),
        );
    }

    /// Allocate a component id (author-given `#id`, else `<slide>-<kind>-<n>`), checking uniqueness.
    fn component_id(
        &mut self,
        kind: &'static str,
        explicit: Option<&str>,
        span: (usize, usize),
    ) -> String {
        let n = {
            let c = self.counters.entry(kind).or_insert(0);
            *c += 1;
            *c
        };
        let id = match explicit {
            Some(id) => {
                if !crate::manifest::is_item_id(id) {
                    self.diag(
                        self.at(
                            "E0303",
                            format!("invalid component id `{id}`"),
                            span.0,
                            span.1,
                        )
                        .with_label("not a valid id")
                        .with_hint("ids use ASCII letters, digits, '-' and '_'"),
                    );
                }
                id.to_string()
            }
            None => format!("{}-{kind}-{n}", self.slide_id),
        };
        self.register_id(&id, span);
        id
    }

    fn register_id(&mut self, id: &str, span: (usize, usize)) {
        let here = self.at("E0304", "", span.0, span.1);
        if let Some(first) = self.deck.component_ids.get(id) {
            let first = first.clone();
            self.diag(
                Diagnostic {
                    message: format!("duplicate component id `{id}`"),
                    ..here
                }
                .with_label("id already used")
                .with_hint(format!(
                    "first used at {first}; component ids must be unique in the deck"
                )),
            );
        } else {
            self.deck
                .component_ids
                .insert(id.to_string(), here.location());
        }
    }

    fn placeholder(&mut self, html: String) -> String {
        let n = self.placeholders.len();
        self.placeholders.push(html);
        format!("{PH_OPEN}{n}{PH_CLOSE}")
    }

    /// Replace placeholders created since index `first` with their markup; each at most
    /// once, so text that smuggles a placeholder-like sequence through an HTML entity
    /// cannot duplicate or import generated markup.
    fn substitute(&self, s: &str, first: usize) -> String {
        let mut used = vec![false; self.placeholders.len()];
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(p) = rest.find(PH_OPEN) {
            out.push_str(&rest[..p]);
            let after = &rest[p + PH_OPEN.len_utf8()..];
            match after.find(PH_CLOSE) {
                Some(q) => {
                    if let Ok(i) = after[..q].parse::<usize>()
                        && i >= first
                        && let Some(h) = self.placeholders.get(i)
                        && !std::mem::replace(&mut used[i], true)
                    {
                        out.push_str(h);
                    }
                    rest = &after[q + PH_CLOSE.len_utf8()..];
                }
                None => {
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Markdown (with inline raw HTML) to sanitized HTML, with citations, links and images.
    pub fn render_md(&mut self, start: usize, end: usize) -> String {
        let text = self.text.clone();
        self.render_md_str(&text[start..end], start)
    }

    fn render_md_str(&mut self, src: &str, base: usize) -> String {
        let first = self.placeholders.len();
        let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
        let mut events: Vec<Event<'static>> = Vec::new();
        let mut pending: Option<(String, usize, usize)> = None;
        #[derive(PartialEq)]
        enum LinkKind {
            Generated,
            Plain,
            Dropped,
        }
        let mut link_stack: Vec<LinkKind> = Vec::new();
        let mut image: Option<(String, String, usize, usize, usize)> = None; // dest, alt, start, end, depth
        for (ev, range) in Parser::new_ext(src, opts).into_offset_iter() {
            if let Some(img) = image.as_mut() {
                match ev {
                    Event::Start(Tag::Image { .. }) => img.4 += 1,
                    Event::End(TagEnd::Image) if img.4 > 0 => img.4 -= 1,
                    Event::End(TagEnd::Image) => {
                        let (dest, alt, s, e, _) = image.take().unwrap_or_default();
                        let html = self.image(&dest, &alt, base + s, base + e);
                        if let Some(h) = html {
                            let p = self.placeholder(h);
                            events.push(Event::Text(p.into()));
                        }
                    }
                    Event::Text(t) | Event::Code(t) => img.1.push_str(&t),
                    Event::SoftBreak | Event::HardBreak => img.1.push(' '),
                    _ => {}
                }
                continue;
            }
            if let Event::Text(t) = &ev {
                match pending.as_mut() {
                    Some(p) => {
                        p.0.push_str(t);
                        p.2 = range.end;
                    }
                    None => pending = Some((t.to_string(), range.start, range.end)),
                }
                continue;
            }
            if let Some((t, s, e)) = pending.take() {
                self.text_events(&t, src, base, s, e, &mut events);
            }
            match ev {
                Event::Html(h) | Event::InlineHtml(h) => {
                    for issue in check_raw_html(&h) {
                        let off = if src[range.clone()].contains(&*h) {
                            range.start + src[range.clone()].find(&*h).unwrap_or(0)
                        } else {
                            range.start
                        };
                        let d = self
                            .at(issue.code, issue.message, base + off + issue.start, base + off + issue.end)
                            .with_label("unsafe HTML")
                            .with_hint("slides cannot run scripts or embed other pages; use components (popup, video, tabs) instead");
                        self.diag(d);
                    }
                    events.push(Event::InlineHtml(clean_pua(&h).into()));
                }
                Event::Code(t) => events.push(Event::Code(clean_pua(&t).into())),
                Event::Start(Tag::Image { dest_url, .. }) => {
                    image = Some((
                        dest_url.to_string(),
                        String::new(),
                        range.start,
                        range.end,
                        0,
                    ));
                }
                Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                }) => {
                    let (s, e) = (base + range.start, base + range.end);
                    if let Some(target) = dest_url
                        .strip_prefix('#')
                        .filter(|_| self.mode == Mode::Slide)
                    {
                        match self.deck.slides.get(target).copied() {
                            Some(detail) => {
                                let cid = self.component_id("link", None, (s, e));
                                self.components.push(Component::Link {
                                    id: cid.clone(),
                                    target: target.to_string(),
                                    drilldown: detail,
                                });
                                self.links.push(target.to_string());
                                let p = self.placeholder(format!(
                                    r##"<a class="ed-link{dd}" data-component="{c}" data-target="{t}" href="#{t}">"##,
                                    dd = if detail { " ed-drilldown" } else { "" },
                                    c = esc(&cid),
                                    t = esc(target)
                                ));
                                events.push(Event::Text(p.into()));
                                link_stack.push(LinkKind::Generated);
                            }
                            None => {
                                let d = self
                                    .at("E0206", format!("link to unknown slide `{target}`"), s, e)
                                    .with_label("no slide has this id")
                                    .with_hint(self.suggest_slide(target));
                                self.diag(d);
                                link_stack.push(LinkKind::Dropped);
                            }
                        }
                    } else if is_script_url(&dest_url) {
                        let d = self
                            .at("E0504", "`javascript:` URLs are not allowed", s, e)
                            .with_label("script URL")
                            .with_hint("link to a slide with (#slide-id) or to an https:// page");
                        self.diag(d);
                        link_stack.push(LinkKind::Dropped);
                    } else {
                        events.push(Event::Start(Tag::Link {
                            link_type,
                            dest_url: clean_pua(&dest_url).into(),
                            title: clean_pua(&title).into(),
                            id: CowStr::from(id.to_string()),
                        }));
                        link_stack.push(LinkKind::Plain);
                    }
                }
                Event::End(TagEnd::Link) => match link_stack.pop() {
                    Some(LinkKind::Generated) => {
                        let p = self.placeholder("</a>".into());
                        events.push(Event::Text(p.into()));
                    }
                    Some(LinkKind::Plain) => events.push(Event::End(TagEnd::Link)),
                    _ => {}
                },
                other => events.push(other.into_static()),
            }
        }
        if let Some((t, s, e)) = pending.take() {
            self.text_events(&t, src, base, s, e, &mut events);
        }
        let mut html = String::new();
        pulldown_cmark::html::push_html(&mut html, events.into_iter());
        let clean = sanitize(&html);
        self.substitute(&clean, first)
    }

    fn suggest_slide(&self, target: &str) -> String {
        let close = self
            .deck
            .slides
            .keys()
            .find(|k| k.eq_ignore_ascii_case(target) || strsim_close(k, target));
        match close {
            Some(k) => format!("did you mean `#{k}`? Links name a slide id: [text](#slide-id)"),
            None => "links name a slide id from front matter: [text](#slide-id)".into(),
        }
    }

    /// Text with `[^ref]` citations.
    fn text_events(
        &mut self,
        t: &str,
        src: &str,
        base: usize,
        s: usize,
        e: usize,
        out: &mut Vec<Event<'static>>,
    ) {
        let t = clean_pua(t);
        if self.mode != Mode::Slide || !t.contains("[^") {
            out.push(Event::Text(t.into()));
            return;
        }
        let mut rest: &str = &t;
        let mut buf = String::new();
        while let Some(p) = rest.find("[^") {
            let after = &rest[p + 2..];
            let close = after.find(']');
            let id = close.map(|q| &after[..q]);
            match id.filter(|id| {
                !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_alphanumeric() || "-_.:".contains(c))
            }) {
                Some(id) => {
                    buf.push_str(&rest[..p]);
                    if !buf.is_empty() {
                        out.push(Event::Text(std::mem::take(&mut buf).into()));
                    }
                    let needle = format!("[^{id}]");
                    let pos = src[s..e].find(&needle).map_or(s, |i| s + i);
                    let html = self.citation(id, base + pos, base + pos + needle.len());
                    match html {
                        Some(h) => {
                            let ph = self.placeholder(h);
                            out.push(Event::Text(ph.into()));
                        }
                        None => buf.push_str(&needle),
                    }
                    rest = &after[id.len() + 1..];
                }
                None => {
                    buf.push_str(&rest[..p + 2]);
                    rest = after;
                }
            }
        }
        buf.push_str(rest);
        if !buf.is_empty() {
            out.push(Event::Text(buf.into()));
        }
    }

    fn citation(&mut self, id: &str, s: usize, e: usize) -> Option<String> {
        if !self.deck.refs.contains(id) {
            let d = self
                .at(
                    "E0207",
                    format!("citation of unknown reference `{id}`"),
                    s,
                    e,
                )
                .with_label("not in [references]")
                .with_hint(format!(
                    "define it in deck.toml: [references.{id}] citation = \"...\""
                ));
            self.diag(d);
            return None;
        }
        let next = u32::try_from(self.deck.ref_numbers.len() + 1).unwrap_or(u32::MAX);
        let number = *self.deck.ref_numbers.entry(id.to_string()).or_insert(next);
        let cid = self.component_id("cite", None, (s, e));
        self.components.push(Component::Citation {
            id: cid.clone(),
            reference: id.to_string(),
            number,
        });
        if !self.references.iter().any(|r| r == id) {
            self.references.push(id.to_string());
        }
        Some(format!(
            r#"<sup class="cite" data-component="{}" data-ref="{}">{number}</sup>"#,
            esc(&cid),
            esc(id)
        ))
    }

    fn image(&mut self, dest: &str, alt: &str, s: usize, e: usize) -> Option<String> {
        let src = self.deck.asset(self.file, dest, (s, e), "image");
        let alt = alt.trim();
        if alt.is_empty() {
            let d = self
                .at("E0403", format!("image `{dest}` has no alt text"), s, e)
                .with_label("empty alt text")
                .with_hint("describe the image for screen readers: ![what the image shows](path)");
            self.diag(d);
        }
        let src = src?;
        if self.mode == Mode::Plain {
            return Some(format!(
                r#"<img src="{}" alt="{}" loading="lazy" decoding="async">"#,
                esc(&src),
                esc(alt)
            ));
        }
        let cid = self.component_id("image", None, (s, e));
        self.components.push(Component::Image {
            id: cid.clone(),
            src: src.clone(),
            alt: alt.to_string(),
            zoom: true,
        });
        Some(format!(
            r#"<img class="ed-image" data-component="{}" src="{}" alt="{}" loading="lazy" decoding="async">"#,
            esc(&cid),
            esc(&src),
            esc(alt)
        ))
    }

    fn video(&mut self, attrs: &Attrs, open: (usize, usize)) -> String {
        let id = self.component_id("video", attrs.id.as_deref(), open);
        let src = match attrs.get("src") {
            Some(s) => {
                let sp = self.attr_span(open, "src");
                self.deck.asset(self.file, s, sp, "video")
            }
            None => {
                let d = self
                    .at("E0309", "video needs a `src`", open.0, open.1)
                    .with_label("no src")
                    .with_hint(
                        "::video{src=\"assets/clip.mp4\" poster=\"assets/clip.jpg\" title=\"...\"}",
                    );
                self.diag(d);
                None
            }
        };
        let poster = match attrs.get("poster") {
            Some(p) => {
                let sp = self.attr_span(open, "poster");
                self.deck.asset(self.file, p, sp, "video poster")
            }
            None => {
                let d = self
                    .at("E0308", "video without poster", open.0, open.1)
                    .with_label("no poster")
                    .with_hint("add poster=\"assets/clip-poster.jpg\": the poster shows until the MR taps play, and keeps memory low");
                self.diag(d);
                None
            }
        };
        let captions = attrs.get("captions").and_then(|c| {
            let sp = self.attr_span(open, "captions");
            self.deck.asset(self.file, c, sp, "captions")
        });
        let lang = crate::i18n::Lang::from_locale(&self.deck.locale);
        let title = attrs.get("title").unwrap_or(lang.video_title()).to_string();
        let (Some(src), Some(poster)) = (src, poster) else {
            return String::new();
        };
        let mt = src
            .rsplit('.')
            .next()
            .map_or("video/mp4", crate::assets::media_type);
        self.components.push(Component::Video {
            id: id.clone(),
            src: src.clone(),
            poster: poster.clone(),
            title: title.clone(),
            captions: captions.clone(),
        });
        let mut h = format!(
            r#"<video class="ed-video" data-component="{}" controls playsinline preload="none" poster="{}" title="{}"><source src="{}" type="{}">"#,
            esc(&id),
            esc(&poster),
            esc(&title),
            esc(&src),
            esc(mt)
        );
        if let Some(c) = captions {
            let _ = write!(
                h,
                r#"<track kind="captions" src="{}" srclang="{}" label="{}" default>"#,
                esc(&c),
                esc(self.deck.locale.split('-').next().unwrap_or("en")),
                esc(lang.captions())
            );
        }
        h.push_str("</video>");
        h
    }

    fn block(
        &mut self,
        name: &str,
        attrs: &Attrs,
        open: (usize, usize),
        body: (usize, usize),
        children: &[Node],
    ) -> String {
        if self.mode == Mode::Plain {
            self.unknown_directive(name, open, false);
            return self.render_nodes(children);
        }
        match name {
            "step" => {
                self.steps += 1;
                let n = self.steps;
                let inner = self.render_nodes(children);
                format!(r#"<div class="ed-step" data-step="{n}">{inner}</div>"#)
            }
            "columns" => {
                self.columns += 1;
                format!(
                    r#"<div class="ed-columns">{}</div>"#,
                    self.render_nodes(children)
                )
            }
            "column" => format!(
                r#"<div class="ed-column">{}</div>"#,
                self.render_nodes(children)
            ),
            "popup" => self.popup(attrs, open, children),
            "tabs" | "accordion" => self.tabs(name == "accordion", attrs, open, children),
            "tab" => {
                let d = self
                    .at(
                        "E0311",
                        "`tab` outside `tabs` or `accordion`",
                        open.0,
                        open.1,
                    )
                    .with_label("no enclosing tabs")
                    .with_hint("wrap tabs in ::::tabs ... :::: (the outer fence has more colons)");
                self.diag(d);
                self.render_nodes(children)
            }
            "chart" => self.chart(attrs, open, body),
            "quiz" => self.question(QuestionPurpose::Quiz, attrs, open, body),
            "poll" => self.question(QuestionPurpose::Poll, attrs, open, body),
            "survey" => self.question(QuestionPurpose::Survey, attrs, open, body),
            _ => {
                self.unknown_directive(name, open, false);
                self.render_nodes(children)
            }
        }
    }

    fn required(
        &mut self,
        attrs: &Attrs,
        key: &str,
        what: &str,
        open: (usize, usize),
        example: &str,
    ) -> Option<String> {
        match attrs.get(key) {
            Some(v) if !v.trim().is_empty() => Some(v.to_string()),
            _ if attrs.broken => None,
            _ => {
                let d = self
                    .at("E0309", format!("{what} needs a `{key}`"), open.0, open.1)
                    .with_label(format!("missing {key}"))
                    .with_hint(format!("for example: {example}"));
                self.diag(d);
                None
            }
        }
    }

    fn popup(&mut self, attrs: &Attrs, open: (usize, usize), children: &[Node]) -> String {
        let id = self.component_id("popup", attrs.id.as_deref(), open);
        let label = self
            .required(
                attrs,
                "label",
                "popup",
                open,
                ":::popup{#pk label=\"Pharmacokinetics\" title=\"...\"}",
            )
            .unwrap_or_default();
        let title = attrs
            .get("title")
            .map_or_else(|| label.clone(), str::to_string);
        let idx = self.components.len();
        let html = self.render_nodes(children);
        self.components.insert(
            idx,
            Component::Popup {
                id: id.clone(),
                label: label.clone(),
                title,
                html,
            },
        );
        format!(
            r#"<button type="button" class="ed-popup-trigger" data-component="{}" aria-haspopup="dialog">{}</button>"#,
            esc(&id),
            esc(&label)
        )
    }

    fn tabs(
        &mut self,
        accordion: bool,
        attrs: &Attrs,
        open: (usize, usize),
        children: &[Node],
    ) -> String {
        let kind = if accordion { "accordion" } else { "tabs" };
        let id = self.component_id(kind, attrs.id.as_deref(), open);
        let idx = self.components.len();
        let mut tabs = Vec::new();
        for child in children {
            match child {
                Node::Block {
                    name,
                    attrs: ta,
                    open: topen,
                    children: tc,
                    ..
                } if name == "tab" => {
                    let n = tabs.len() + 1;
                    let tab_id = ta.id.clone().unwrap_or_else(|| format!("{id}-{n}"));
                    if !crate::manifest::is_item_id(&tab_id) {
                        let d = self
                            .at(
                                "E0303",
                                format!("invalid tab id `{tab_id}`"),
                                topen.0,
                                topen.1,
                            )
                            .with_label("not a valid id")
                            .with_hint("ids use ASCII letters, digits, '-' and '_'");
                        self.diag(d);
                    }
                    self.register_id(&tab_id, *topen);
                    let label = self
                        .required(ta, "label", "tab", *topen, ":::tab{label=\"Adults\"}")
                        .unwrap_or_default();
                    let html = self.render_nodes(tc);
                    tabs.push(Tab {
                        id: tab_id,
                        label,
                        html,
                    });
                }
                Node::Md(s, e) => {
                    let d = self
                        .at(
                            "E0311",
                            format!("text inside `{kind}` must be in a `:::tab` block"),
                            *s,
                            *e,
                        )
                        .with_label("outside any tab")
                        .with_hint("put content inside :::tab{label=\"...\"} ... ::: blocks");
                    self.diag(d);
                }
                Node::Block { open: o, .. } | Node::Leaf { open: o, .. } => {
                    let d = self
                        .at("E0311", format!("only `:::tab` blocks may appear inside `{kind}`"), o.0, o.1)
                        .with_label("not a tab")
                        .with_hint("put components inside a :::tab block (give the tabs fence more colons)");
                    self.diag(d);
                }
            }
        }
        if tabs.is_empty() {
            let d = self
                .at("E0309", format!("`{kind}` has no `:::tab` blocks"), open.0, open.1)
                .with_label("empty")
                .with_hint("add :::tab{label=\"...\"} blocks inside, with fewer colons than the outer fence");
            self.diag(d);
        }
        let mut h = format!(
            r#"<div class="ed-{kind}" data-component="{}" data-kind="{kind}">"#,
            esc(&id)
        );
        if accordion {
            for t in &tabs {
                let _ = write!(
                    h,
                    r#"<details class="ed-accordion-item" data-tab="{id}"><summary>{label}</summary><div class="ed-accordion-body">{html}</div></details>"#,
                    id = esc(&t.id),
                    label = esc(&t.label),
                    html = t.html
                );
            }
        } else {
            h.push_str(r#"<div class="ed-tablist" role="tablist">"#);
            for (i, t) in tabs.iter().enumerate() {
                let _ = write!(
                    h,
                    r#"<button type="button" role="tab" class="ed-tab" id="ed-tab-{id}" aria-controls="ed-panel-{id}" aria-selected="{sel}" data-tab="{id}">{label}</button>"#,
                    id = esc(&t.id),
                    sel = i == 0,
                    label = esc(&t.label)
                );
            }
            h.push_str("</div>");
            for (i, t) in tabs.iter().enumerate() {
                let _ = write!(
                    h,
                    r#"<div class="ed-tabpanel" role="tabpanel" id="ed-panel-{id}" aria-labelledby="ed-tab-{id}" data-tab="{id}"{hidden}>{html}</div>"#,
                    id = esc(&t.id),
                    hidden = if i == 0 { "" } else { " hidden" },
                    html = t.html
                );
            }
        }
        h.push_str("</div>");
        self.components.insert(
            idx,
            Component::Tabs {
                id,
                accordion,
                tabs,
            },
        );
        h
    }

    fn chart(&mut self, attrs: &Attrs, open: (usize, usize), body: (usize, usize)) -> String {
        let id = self.component_id("chart", attrs.id.as_deref(), open);
        let kind = match attrs.get("type").unwrap_or("bar") {
            "bar" => ChartKind::Bar,
            "line" => ChartKind::Line,
            "forest" => ChartKind::Forest,
            other => {
                let sp = self.attr_span(open, "type");
                let d = self
                    .at("E0310", format!("unknown chart type `{other}`"), sp.0, sp.1)
                    .with_label("unknown type")
                    .with_hint("chart types: bar, line, forest");
                self.diag(d);
                return String::new();
            }
        };
        let title = self
            .required(
                attrs,
                "title",
                "chart",
                open,
                ":::chart{type=bar title=\"HbA1c change\" unit=\"%\"}",
            )
            .unwrap_or_default();
        let number_attr = |this: &mut Self, key: &str, default: f64| -> f64 {
            match attrs.get(key) {
                None => default,
                Some(v) => match v.trim().replace('\u{2212}', "-").parse::<f64>() {
                    Ok(x) if x.is_finite() => x,
                    _ => {
                        let d = this
                            .at(
                                "E0310",
                                format!("chart `{key}` must be a number, found `{v}`"),
                                open.0,
                                open.1,
                            )
                            .with_label("not a number")
                            .with_hint(format!("write {key}=1 (the line of no effect)"));
                        this.diag(d);
                        default
                    }
                },
            }
        };
        let reference = number_attr(self, "reference", 1.0);
        let text = self.text.clone();
        let data = match chart::parse(&text[body.0..body.1], kind) {
            Ok(d) => d,
            Err(e) => {
                let lines = line_spans(&text, body.0, body.1);
                let (s, en) = lines.get(e.line).map_or(open, |l| (l.0, l.1));
                let d = self
                    .at("E0307", format!("chart data does not parse: {}", e.message), s, en)
                    .with_label("bad chart data")
                    .with_hint(if kind == ChartKind::Forest {
                        "forest data is CSV: a header, then label,estimate,low,high per row"
                    } else {
                        "chart data is CSV: a header (category, series...), then one row per category with numbers"
                    });
                self.diag(d);
                return String::new();
            }
        };
        let spec = chart::ChartSpec {
            id: &id,
            kind,
            title: &title,
            unit: attrs.get("unit").unwrap_or(""),
            reference,
            x_label: attrs.get("x_label").unwrap_or(""),
            palette: &self.deck.palette,
            lang: crate::i18n::Lang::from_locale(&self.deck.locale),
        };
        let html = chart::render(&spec, &data);
        self.components.push(Component::Chart {
            id,
            kind,
            title,
            series: data.header[1..].to_vec(),
            categories: data.categories,
        });
        html
    }

    fn question(
        &mut self,
        purpose: QuestionPurpose,
        attrs: &Attrs,
        open: (usize, usize),
        body: (usize, usize),
    ) -> String {
        let pname = match purpose {
            QuestionPurpose::Quiz => "quiz",
            QuestionPurpose::Poll => "poll",
            QuestionPurpose::Survey => "survey",
        };
        let id = self.component_id(pname, attrs.id.as_deref(), open);
        let text = self.text.clone();
        let mut prompt_lines: Vec<&str> = Vec::new();
        let mut options: Vec<AnswerOption> = Vec::new();
        let mut correct: Vec<String> = Vec::new();
        let mut quote = String::new();
        let mut quote_start = None;
        let mut prompt_done = false;
        for (s, e, _) in line_spans(&text, body.0, body.1) {
            let line = &text[s..e];
            let t = line.trim();
            if t.is_empty() {
                if !prompt_lines.is_empty() {
                    prompt_done = true;
                }
                continue;
            }
            if let Some(q) = t.strip_prefix('>') {
                quote_start.get_or_insert(s);
                quote.push_str(q.strip_prefix(' ').unwrap_or(q));
                quote.push('\n');
                continue;
            }
            let item = t
                .strip_prefix("- ")
                .or_else(|| t.strip_prefix("* "))
                .or_else(|| t.strip_prefix("+ "))
                .or_else(|| {
                    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
                    (digits > 0)
                        .then(|| {
                            t[digits..]
                                .strip_prefix(". ")
                                .or_else(|| t[digits..].strip_prefix(") "))
                        })
                        .flatten()
                });
            if let Some(item) = item {
                prompt_done = true;
                let mut label = item.trim();
                let mut is_correct = false;
                if let Some(r) = label
                    .strip_prefix("[x]")
                    .or_else(|| label.strip_prefix("[X]"))
                {
                    is_correct = true;
                    label = r.trim_start();
                } else if let Some(r) = label.strip_prefix("[ ]") {
                    label = r.trim_start();
                }
                let mut opt_id = None;
                if label.ends_with('}')
                    && let Some(p) = label.rfind("{#")
                {
                    opt_id = Some(label[p + 2..label.len() - 1].trim().to_string());
                    label = label[..p].trim_end();
                }
                let oid = opt_id.unwrap_or_else(|| (options.len() + 1).to_string());
                if !crate::manifest::is_item_id(&oid) || options.iter().any(|o| o.id == oid) {
                    let d = self
                        .at("E0304", format!("duplicate or invalid option id `{oid}` in {pname} `{id}`"), s, e)
                        .with_label("option id")
                        .with_hint("option ids are unique within a question and use letters, digits, '-' and '_'");
                    self.diag(d);
                }
                if is_correct {
                    correct.push(oid.clone());
                }
                options.push(AnswerOption {
                    id: oid,
                    label: inline_text(label),
                });
                continue;
            }
            if !prompt_done {
                prompt_lines.push(t);
            } else {
                let d = self
                    .at("E0312", format!("unexpected text in {pname} `{id}`"), s, e)
                    .with_label("not part of the question")
                    .with_hint("a question is: one paragraph (the prompt), a list of options, and for quizzes an optional > explanation");
                self.diag(d);
            }
        }
        let prompt = inline_text(&prompt_lines.join(" "));
        if prompt.is_empty() {
            let d = self
                .at(
                    "E0309",
                    format!("{pname} `{id}` has no question text"),
                    open.0,
                    open.1,
                )
                .with_label("no prompt")
                .with_hint("write the question as the first paragraph inside the block");
            self.diag(d);
        }
        let kind_attr = attrs.get("kind");
        let kind = match (purpose, kind_attr) {
            (QuestionPurpose::Quiz, None) => {
                if correct.len() > 1 {
                    QuestionKind::Multiple
                } else {
                    QuestionKind::Single
                }
            }
            (_, None) if purpose == QuestionPurpose::Poll => QuestionKind::Single,
            (_, None) => {
                if options.is_empty() {
                    QuestionKind::Text
                } else {
                    QuestionKind::Single
                }
            }
            (_, Some("single")) => QuestionKind::Single,
            (_, Some("multiple")) => QuestionKind::Multiple,
            (QuestionPurpose::Survey, Some("rating")) => QuestionKind::Rating,
            (QuestionPurpose::Survey, Some("text")) => QuestionKind::Text,
            (_, Some(other)) => {
                let allowed = if purpose == QuestionPurpose::Survey {
                    "single, multiple, rating, text"
                } else {
                    "single, multiple"
                };
                let sp = self.attr_span(open, "kind");
                let d = self
                    .at(
                        "E0310",
                        format!("unknown {pname} kind `{other}`"),
                        sp.0,
                        sp.1,
                    )
                    .with_label("unknown kind")
                    .with_hint(format!("{pname} kinds: {allowed}"));
                self.diag(d);
                QuestionKind::Single
            }
        };
        let choice = matches!(kind, QuestionKind::Single | QuestionKind::Multiple);
        if purpose == QuestionPurpose::Quiz && correct.is_empty() {
            let d = self
                .at(
                    "E0305",
                    format!("quiz `{id}` has no correct answer"),
                    open.0,
                    open.1,
                )
                .with_label("no option marked [x]")
                .with_hint("mark the correct option(s) with - [x] ...");
            self.diag(d);
        }
        if purpose == QuestionPurpose::Quiz && kind == QuestionKind::Single && correct.len() > 1 {
            let d = self
                .at(
                    "E0310",
                    format!(
                        "quiz `{id}` is single choice but has {} correct options",
                        correct.len()
                    ),
                    open.0,
                    open.1,
                )
                .with_label("kind=single")
                .with_hint("remove kind=single (several [x] make a multiple-choice quiz)");
            self.diag(d);
        }
        if choice && options.is_empty() {
            let d = self
                .at(
                    "E0306",
                    format!("{pname} `{id}` has no options"),
                    open.0,
                    open.1,
                )
                .with_label("no options")
                .with_hint("list the options as a markdown list: - Option one");
            self.diag(d);
        }
        if !choice && !options.is_empty() {
            let d = self
                .at(
                    "E0312",
                    format!(
                        "{pname} `{id}` is a {} question but lists options",
                        if kind == QuestionKind::Rating {
                            "rating"
                        } else {
                            "text"
                        }
                    ),
                    open.0,
                    open.1,
                )
                .with_label("options ignored")
                .with_hint("remove the options, or use kind=single / kind=multiple");
            self.diag(d);
        }
        let scale = if kind == QuestionKind::Rating {
            let int = |this: &mut Self, key: &str, default: i32| -> i32 {
                match attrs.get(key) {
                    None => default,
                    Some(v) => v.trim().parse().unwrap_or_else(|_| {
                        let d = this
                            .at(
                                "E0310",
                                format!("`{key}` must be a whole number, found `{v}`"),
                                open.0,
                                open.1,
                            )
                            .with_label("not a whole number")
                            .with_hint("rating scales use whole numbers, e.g. min=1 max=5");
                        this.diag(d);
                        default
                    }),
                }
            };
            let min = int(self, "min", 1);
            let max = int(self, "max", 5);
            if min >= max || max - min > 20 {
                let d = self
                    .at(
                        "E0310",
                        format!("rating scale {min}..{max} is invalid"),
                        open.0,
                        open.1,
                    )
                    .with_label("bad scale")
                    .with_hint("min must be below max, with at most 21 points");
                self.diag(d);
            }
            Some(RatingScale {
                min,
                max,
                min_label: attrs.get("min_label").map(str::to_string),
                max_label: attrs.get("max_label").map(str::to_string),
            })
        } else {
            None
        };
        let explanation = if quote.trim().is_empty() {
            None
        } else {
            Some(self.render_md_str(&quote, quote_start.unwrap_or(body.0)))
        };
        // Static markup; the runtime wires it up from the component data.
        let kind_name = match kind {
            QuestionKind::Single => "single",
            QuestionKind::Multiple => "multiple",
            QuestionKind::Rating => "rating",
            QuestionKind::Text => "text",
        };
        let mut h = format!(
            r#"<div class="ed-question" data-component="{}" data-purpose="{pname}" data-kind="{kind_name}"><p class="ed-question-prompt">{}</p>"#,
            esc(&id),
            esc(&prompt)
        );
        match kind {
            QuestionKind::Single | QuestionKind::Multiple => {
                h.push_str(r#"<ul class="ed-options">"#);
                for o in &options {
                    let _ = write!(
                        h,
                        r#"<li><button type="button" class="ed-option" data-option="{}" aria-pressed="false">{}</button></li>"#,
                        esc(&o.id),
                        esc(&o.label)
                    );
                }
                h.push_str("</ul>");
            }
            QuestionKind::Rating => {
                if let Some(sc) = &scale {
                    h.push_str(r#"<div class="ed-rating" role="group">"#);
                    if let Some(l) = &sc.min_label {
                        let _ = write!(h, r#"<span class="ed-rating-min">{}</span>"#, esc(l));
                    }
                    for v in sc.min..=sc.max.min(sc.min.saturating_add(20)) {
                        let _ = write!(
                            h,
                            r#"<button type="button" class="ed-option" data-option="{v}" aria-pressed="false">{v}</button>"#
                        );
                    }
                    if let Some(l) = &sc.max_label {
                        let _ = write!(h, r#"<span class="ed-rating-max">{}</span>"#, esc(l));
                    }
                    h.push_str("</div>");
                }
            }
            QuestionKind::Text => {
                let _ = write!(
                    h,
                    r#"<textarea class="ed-answer-text" rows="3" aria-label="{}"></textarea>"#,
                    esc(&prompt)
                );
            }
        }
        h.push_str("</div>");
        self.components.push(Component::Question {
            id,
            purpose,
            kind,
            prompt,
            options,
            correct: if purpose == QuestionPurpose::Quiz {
                correct
            } else {
                Vec::new()
            },
            scale,
            explanation,
        });
        h
    }
}

/// Remove the private-use characters used as placeholders.
fn clean_pua(s: &str) -> String {
    if s.contains([PH_OPEN, PH_CLOSE]) {
        s.replace([PH_OPEN, PH_CLOSE], "\u{FFFD}")
    } else {
        s.to_string()
    }
}

/// Inline markdown reduced to plain text (for labels and prompts).
pub fn inline_text(s: &str) -> String {
    let mut out = String::new();
    for ev in Parser::new_ext(s, Options::ENABLE_STRIKETHROUGH) {
        match ev {
            Event::Text(t) | Event::Code(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak => out.push(' '),
            _ => {}
        }
    }
    clean_pua(out.trim())
}

/// Cheap "did you mean": same length +-1 and at most 2 differing characters by position.
fn strsim_close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 1 || a.len() < 3 {
        return false;
    }
    let diff = a.iter().zip(&b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len());
    diff <= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs() {
        let a = parse_attrs(r#"#pk label="Pharmaco \"kinetics\"" type=bar"#).unwrap_or_default();
        assert_eq!(a.id.as_deref(), Some("pk"));
        assert_eq!(a.get("label"), Some("Pharmaco \"kinetics\""));
        assert_eq!(a.get("type"), Some("bar"));
        assert!(parse_attrs("label=\"x").is_err());
        assert!(parse_attrs("label").is_err());
        assert!(parse_attrs("a=1 a=2").is_err());
    }
}
