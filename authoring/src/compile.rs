//! The compiler pipeline: manifest -> slides -> rendering -> checks -> bundle.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use edetail_format::bundle::{
    Approval, BUNDLE_SCHEMA_VERSION, Bundle, DeckMeta, Isi, Reference, Section, Slide, SourceRef,
    Tracking,
};

use crate::assets::{AssetStore, DeckSource, FileError, PathProblem, normalize};
use crate::diag::{Diagnostic, Severity, SourceFile};
use crate::manifest;
use crate::render::{DeckCtx, Mode, Renderer};
use crate::slides;

/// Options for [`compile`].
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// "Today" (UTC, `YYYY-MM-DD`) for the approval-window check. Injectable so
    /// builds and tests are deterministic; the CLI passes [`crate::today_utc`].
    pub today: String,
    /// Build even when the approval window is closed (reported as warnings) and mark
    /// the bundle `preview = true`.
    pub preview: bool,
}

impl CompileOptions {
    pub fn new(today: impl Into<String>) -> Self {
        CompileOptions {
            today: today.into(),
            preview: false,
        }
    }
}

/// The result of compiling a deck.
#[derive(Debug)]
pub struct Compiled {
    /// The bundle; `None` when any error was reported.
    pub bundle: Option<Bundle>,
    /// Asset bytes by bundle path (`assets/<sha256>.<ext>`), sorted.
    pub assets: BTreeMap<String, Vec<u8>>,
    /// Every problem found, errors and warnings, in discovery order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.diagnostics.len() - self.error_count()
    }

    /// The bundle hash (hex sha256 of the canonical `bundle.json`), when built.
    pub fn hash(&self) -> Option<String> {
        self.bundle
            .as_ref()
            .map(|b| edetail_format::sha256_hex(&b.to_json()))
    }
}

/// Failures that are not about the deck's content (exit code 2 in the CLI).
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("deck folder `{0}` does not exist or is not a directory")]
    NotADeck(PathBuf),
}

/// Why a deck text file could not be read.
enum TextError {
    /// Code (`E0002` not found / unreadable, `E0402` escapes) and message.
    Read(&'static str, String),
    /// Not UTF-8: the file as lossy text and the byte offset of the first bad byte,
    /// so the diagnostic can point at its line and column.
    NotUtf8(SourceFile, usize),
}

impl TextError {
    /// Code and message for a diagnostic placed in the file that names this one.
    fn parts(&self) -> (&'static str, String) {
        match self {
            TextError::Read(code, msg) => (code, msg.clone()),
            TextError::NotUtf8(f, at) => {
                let (line, col) = f.line_col(*at);
                (
                    "E0003",
                    format!(
                        "file is not valid UTF-8 (first bad byte at line {line}, column {col}, offset {at})"
                    ),
                )
            }
        }
    }

    /// A second diagnostic inside the file itself, at the first bad byte.
    fn in_file(&self) -> Option<Diagnostic> {
        match self {
            TextError::NotUtf8(f, at) => Some(
                Diagnostic::new("E0003", format!("`{}` is not valid UTF-8", f.path))
                    .at(f, *at, (*at + 3).min(f.text.len()))
                    .with_label("not UTF-8 (shown as \u{FFFD})")
                    .with_hint(
                        "save the file as UTF-8 (most editors: File > Save with encoding > UTF-8)",
                    ),
            ),
            TextError::Read(..) => None,
        }
    }
}

fn read_text(src: &DeckSource, norm: &str) -> Result<String, TextError> {
    let bytes = src.read(norm).map_err(|e| match e {
        FileError::NotFound => TextError::Read("E0002", "file not found".to_string()),
        FileError::Escapes => TextError::Read("E0402", "is outside the deck folder".to_string()),
        FileError::Io(e) => TextError::Read("E0002", format!("cannot read file: {e}")),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
        TextError::NotUtf8(SourceFile::new(norm, lossy), at)
    })
}

/// Compile the deck folder `deck_dir`. Content problems are diagnostics (never a panic,
/// never an `Err`); `Err` only when `deck_dir` is not a folder.
pub fn compile(deck_dir: &Path, opts: &CompileOptions) -> Result<Compiled, CompileError> {
    if !deck_dir.is_dir() {
        return Err(CompileError::NotADeck(deck_dir.to_path_buf()));
    }
    Ok(compile_source(DeckSource::dir(deck_dir), opts))
}

/// Compile a deck held in memory: `files` maps deck-relative paths (`deck.toml`,
/// `slides/01.md`, `assets/x.svg`) to bytes. Never panics, whatever the bytes.
pub fn compile_files(files: BTreeMap<String, Vec<u8>>, opts: &CompileOptions) -> Compiled {
    let files = files
        .into_iter()
        .filter_map(|(k, v)| normalize(&k).ok().map(|k| (k, v)))
        .collect();
    compile_source(DeckSource::Memory(files), opts)
}

fn compile_source(source: DeckSource, opts: &CompileOptions) -> Compiled {
    let source = std::sync::Arc::new(source);
    let mut diags = Vec::new();
    let fail = |diags: Vec<Diagnostic>| Compiled {
        bundle: None,
        assets: BTreeMap::new(),
        diagnostics: diags,
    };
    let mtext = match read_text(&source, "deck.toml") {
        Ok(t) => t,
        Err(TextError::NotUtf8(f, at)) => {
            diags.extend(TextError::NotUtf8(f, at).in_file());
            return fail(diags);
        }
        Err(e) => {
            let (code, msg) = e.parts();
            let code = if code == "E0002" { "E0001" } else { code };
            diags.push(
                Diagnostic::new(code, format!("deck.toml: {msg}"))
                    .in_file("deck.toml")
                    .with_hint("a deck folder holds deck.toml (the manifest); `edetail new <dir>` scaffolds one"),
            );
            return fail(diags);
        }
    };
    let mfile = SourceFile::new("deck.toml", mtext);
    let Some(m) = manifest::parse(&mfile, &mut diags) else {
        return fail(diags);
    };

    // Approval window.
    let window_sev = if opts.preview {
        Severity::Warning
    } else {
        Severity::Error
    };
    if let (Some(from), Some(until)) = (&m.valid_from, &m.valid_until) {
        let today = opts.today.as_str();
        if today < from.0.as_str() {
            diags.push(
                Diagnostic::new("E0110", format!("approval not yet valid: valid from {} (today is {today})", from.0))
                    .at(&mfile, from.1, from.2)
                    .with_label("starts after today")
                    .with_hint("content may not be shown before its approval date; build with --preview to review it")
                    .with_severity(window_sev),
            );
        } else if today > until.0.as_str() {
            diags.push(
                Diagnostic::new("E0109", format!("approval expired on {} (today is {today})", until.0))
                    .at(&mfile, until.1, until.2)
                    .with_label("ended before today")
                    .with_hint("expired content must not be shown: renew the MLR approval, or build with --preview to review it")
                    .with_severity(window_sev),
            );
        }
    }

    // Source files.
    let mut files: Vec<SourceFile> = Vec::new();
    let mut seen_sources = BTreeSet::new();
    for src in &m.sources {
        let norm = match normalize(&src.value) {
            Ok(n) => n,
            Err(p) => {
                let (code, msg) = match p {
                    PathProblem::Empty => ("E0002", "empty source path".to_string()),
                    _ => (
                        "E0402",
                        format!("source `{}` is outside the deck folder", src.value),
                    ),
                };
                diags.push(
                    Diagnostic::new(code, msg)
                        .at(&mfile, src.start, src.end)
                        .with_label("bad path")
                        .with_hint("list slide files relative to the deck folder, e.g. \"slides/01-intro.md\""),
                );
                continue;
            }
        };
        if !seen_sources.insert(norm.clone()) {
            diags.push(
                Diagnostic::new("E0116", format!("source `{norm}` is listed twice"))
                    .at(&mfile, src.start, src.end)
                    .with_label("listed again")
                    .with_hint("list each slide file once"),
            );
            continue;
        }
        match read_text(&source, &norm) {
            Ok(t) => files.push(SourceFile::new(norm, t)),
            Err(e) => {
                let (code, msg) = e.parts();
                diags.push(
                    Diagnostic::new(code, format!("source `{norm}`: {msg}"))
                        .at(&mfile, src.start, src.end)
                        .with_label(msg.clone())
                        .with_hint(
                            "sources are read in order from the deck folder; save files as UTF-8",
                        ),
                );
                diags.extend(e.in_file());
            }
        }
    }

    // Slides. When a source or a slide could not be read, checks that need every
    // slide (unknown flow entries, unreachable slides, unused references) are skipped
    // to avoid misleading follow-on diagnostics.
    let mut incomplete = files.len() < m.sources.len();
    let mut raw = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let before = diags.len();
        raw.extend(slides::split(i, f, &mut diags));
        incomplete |= diags[before..]
            .iter()
            .any(|d| matches!(d.code, "E0201" | "E0202" | "E0203"));
    }
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    let mut unique = Vec::new();
    for s in raw {
        let f = &files[s.file];
        if let Some(&first) = by_id.get(&s.id) {
            let first_loc = {
                let fs: &slides::RawSlide = &unique[first];
                Diagnostic::new("E0204", "")
                    .at(&files[fs.file], fs.id_span.0, fs.id_span.1)
                    .location()
            };
            diags.push(
                Diagnostic::new("E0204", format!("duplicate slide id `{}`", s.id))
                    .at(f, s.id_span.0, s.id_span.1)
                    .with_label("already used")
                    .with_hint(format!(
                        "first defined at {first_loc}; slide ids must be unique in the deck"
                    )),
            );
            continue;
        }
        by_id.insert(s.id.clone(), unique.len());
        unique.push(s);
    }

    // Flow.
    let mut in_flow: BTreeSet<String> = BTreeSet::new();
    let mut flow = Vec::new();
    for sec in &m.flow {
        let mut ids = Vec::new();
        for sl in &sec.slides {
            if !by_id.contains_key(&sl.value) {
                if incomplete {
                    continue;
                }
                let close = by_id
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case(&sl.value) || close_enough(k, &sl.value));
                diags.push(
                    Diagnostic::new("E0113", format!("flow names unknown slide `{}`", sl.value))
                        .at(&mfile, sl.start, sl.end)
                        .with_label("no slide has this id")
                        .with_hint(match close {
                            Some(k) => format!("did you mean `{k}`?"),
                            None => "flow entries are slide ids from the slides' front matter"
                                .to_string(),
                        }),
                );
            } else if !in_flow.insert(sl.value.clone()) {
                diags.push(
                    Diagnostic::new("E0116", format!("slide `{}` appears twice in the flow", sl.value))
                        .at(&mfile, sl.start, sl.end)
                        .with_label("listed again")
                        .with_hint("each slide appears once in the main flow; link to it from elsewhere instead"),
                );
            } else {
                ids.push(sl.value.clone());
            }
        }
        flow.push(Section {
            id: sec.id.value.clone(),
            title: sec.title.clone(),
            slides: ids,
        });
    }

    // Bundle order: flow slides in flow order, then detail slides in source order.
    let mut order: Vec<usize> = flow
        .iter()
        .flat_map(|s| s.slides.iter())
        .filter_map(|id| by_id.get(id).copied())
        .collect();
    order.extend((0..unique.len()).filter(|&i| !in_flow.contains(&unique[i].id)));

    let palette = vec![
        m.theme.primary.clone(),
        m.theme.accent.clone(),
        "#6b7280".to_string(),
        "#15803d".to_string(),
        "#7e22ce".to_string(),
    ];
    let mut ctx = DeckCtx::new(
        AssetStore::new(source.clone()),
        m.asset_budget,
        palette,
        m.locale.clone(),
    );
    for s in &unique {
        ctx.slides.insert(s.id.clone(), !in_flow.contains(&s.id));
    }
    ctx.refs = m.references.iter().map(|r| r.id.value.clone()).collect();

    let mut out_slides = Vec::with_capacity(order.len());
    let mut links: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for &i in &order {
        let s = &unique[i];
        let file = &files[s.file];
        let mut r = Renderer::new(&mut ctx, file, &s.id, Mode::Slide);
        let html = r.render(s.body.0, s.body.1);
        let components = std::mem::take(&mut r.components);
        let references = std::mem::take(&mut r.references);
        let steps = r.steps;
        if s.layout == "two-column" && r.columns == 0 {
            r.deck.diags.push(
                Diagnostic::new("W0203", format!("slide `{}` has layout \"two-column\" but no `columns` block", s.id))
                    .at(file, s.layout_span.0, s.layout_span.1)
                    .with_label("two-column layout")
                    .with_hint("split the body with ::::columns holding two :::column blocks, or use layout = \"default\""),
            );
        }
        links.insert(s.id.clone(), std::mem::take(&mut r.links));
        let notes = s.notes.map(|(ns, ne)| {
            let mut nr = Renderer::new(&mut ctx, file, &s.id, Mode::Plain);
            nr.render(ns, ne)
        });
        let mut slide = Slide {
            id: s.id.clone(),
            title: s.title.clone(),
            key_message: s.key_message.clone(),
            tags: s.tags.clone(),
            layout: s.layout.clone(),
            mandatory: s.mandatory,
            audience: s.audience.clone(),
            detail: !in_flow.contains(&s.id),
            html,
            steps,
            notes: notes.filter(|n| !n.trim().is_empty()),
            components,
            references,
            content_hash: String::new(),
            source: Some(SourceRef {
                file: file.path.clone(),
                line: file.line_of(s.start),
            }),
        };
        let end = s.notes.map_or(s.body.1, |n| n.1.max(s.body.1));
        for (what, text) in slide_text_fields(&slide) {
            if let Some(tag) = crate::html::markup_in_text(text) {
                let (a, b) = file.text[s.start..end]
                    .find(tag)
                    .map_or(s.id_span, |p| (s.start + p, s.start + p + tag.len()));
                diags.push(markup_diag(what, tag).at(file, a, b));
            }
        }
        slide.content_hash = slide.compute_content_hash();
        out_slides.push(slide);
    }

    // Theme logo.
    let mut theme = m.theme.clone();
    if let Some(logo) = &m.logo {
        theme.logo = ctx.asset(&mfile, &logo.value, (logo.start, logo.end), "logo");
    }

    // ISI.
    let mut isi = None;
    if let Some(f) = &m.isi_file {
        match normalize(&f.value).ok() {
            None => diags.push(
                Diagnostic::new(
                    "E0402",
                    format!("ISI file `{}` is outside the deck folder", f.value),
                )
                .at(&mfile, f.start, f.end)
                .with_label("escapes the deck folder")
                .with_hint("keep isi.md inside the deck folder"),
            ),
            Some(norm) => match read_text(&source, &norm) {
                Ok(t) => {
                    let isi_file = SourceFile::new(norm, t);
                    let mut r = Renderer::new(&mut ctx, &isi_file, "isi", Mode::Plain);
                    let html = r.render(0, isi_file.text.len());
                    if html.trim().is_empty() {
                        diags.push(
                            Diagnostic::new("E0112", "the ISI file is empty")
                                .at(&mfile, f.start, f.end)
                                .with_label("empty ISI")
                                .with_hint("write the important safety information in this file"),
                        );
                    }
                    isi = Some(Isi {
                        title: m.isi_title.clone(),
                        html,
                    });
                }
                Err(e) => {
                    let (code, msg) = e.parts();
                    diags.push(
                        Diagnostic::new(
                            if code == "E0002" { "E0112" } else { code },
                            format!("ISI file `{}`: {msg}", f.value),
                        )
                        .at(&mfile, f.start, f.end)
                        .with_label(msg.clone())
                        .with_hint("create the ISI markdown file, or fix the path in [isi] file"),
                    );
                    diags.extend(e.in_file());
                }
            },
        }
    }

    // Plain-text manifest fields.
    let mut manifest_text: Vec<(&str, &str)> = vec![("deck title", m.title.as_str())];
    if let Some(p) = &m.product {
        manifest_text.push(("product", p.value.as_str()));
    }
    if let Some(t) = &m.therapeutic_area {
        manifest_text.push(("therapeutic area", t.as_str()));
    }
    manifest_text.extend(m.flow.iter().map(|s| ("section title", s.title.as_str())));
    manifest_text.push(("ISI title", m.isi_title.as_str()));
    manifest_text.extend(
        m.references
            .iter()
            .map(|r| ("reference citation", r.citation.as_str())),
    );
    for (what, text) in manifest_text {
        if let Some(tag) = crate::html::markup_in_text(text) {
            let d = markup_diag(what, tag);
            diags.push(match mfile.text.find(tag) {
                Some(p) => d.at(&mfile, p, p + tag.len()),
                None => d.in_file("deck.toml"),
            });
        }
    }

    // Reachability of detail slides: breadth-first over links from the flow.
    let mut reached: BTreeSet<&str> = in_flow.iter().map(String::as_str).collect();
    let mut queue: VecDeque<&str> = reached.iter().copied().collect();
    while let Some(id) = queue.pop_front() {
        for t in links.get(id).map(Vec::as_slice).unwrap_or(&[]) {
            if reached.insert(t.as_str()) {
                queue.push_back(t.as_str());
            }
        }
    }
    for s in unique.iter().filter(|_| !incomplete) {
        if !reached.contains(s.id.as_str()) {
            diags.push(
                Diagnostic::new("W0201", format!("detail slide `{}` is unreachable", s.id))
                    .at(&files[s.file], s.id_span.0, s.id_span.1)
                    .with_label("not in the flow, and no reachable slide links here")
                    .with_hint(format!(
                        "add it to a [[flow]] section, or link to it: [see more](#{})",
                        s.id
                    )),
            );
        }
    }

    // References: cited ones in number order; unused ones are warnings.
    let mut references: Vec<Reference> = Vec::new();
    for r in &m.references {
        match ctx.ref_numbers.get(&r.id.value) {
            Some(&n) => references.push(Reference {
                id: r.id.value.clone(),
                number: n,
                citation: r.citation.clone(),
                doi: r.doi.clone(),
                url: r.url.clone(),
            }),
            None if incomplete => {}
            None => diags.push(
                Diagnostic::new(
                    "W0202",
                    format!("reference `{}` is never cited", r.id.value),
                )
                .at(&mfile, r.id.start, r.id.end)
                .with_label("unused reference")
                .with_hint(format!("cite it with [^{}] or remove it", r.id.value)),
            ),
        }
    }
    references.sort_by_key(|r| r.number);

    diags.append(&mut ctx.diags);
    let assets_map = std::mem::take(&mut ctx.assets.files);
    if diags.iter().any(Diagnostic::is_error) {
        return fail(diags);
    }

    let bundle = Bundle {
        schema_version: BUNDLE_SCHEMA_VERSION,
        deck: DeckMeta {
            id: m.id.clone(),
            title: m.title.clone(),
            version: m.version.clone(),
            locale: m.locale.clone(),
            product: m.product.as_ref().map(|p| p.value.clone()),
            therapeutic_area: m.therapeutic_area.clone(),
            channels: m.channels.clone(),
        },
        approval: Approval {
            code: m.approval_code.clone(),
            valid_from: m
                .valid_from
                .as_ref()
                .map(|d| d.0.clone())
                .unwrap_or_default(),
            valid_until: m
                .valid_until
                .as_ref()
                .map(|d| d.0.clone())
                .unwrap_or_default(),
        },
        preview: opts.preview,
        tracking: Tracking {
            view_threshold_ms: m.view_threshold_ms,
        },
        theme,
        flow,
        slides: out_slides,
        references,
        isi,
        assets: assets_map.values().map(|(e, _)| e.clone()).collect(),
    };
    if let Err(e) = bundle.validate() {
        diags.push(Diagnostic::new(
            "E0000",
            format!("internal error: the compiled bundle is invalid: {e}"),
        ));
        return fail(diags);
    }
    Compiled {
        bundle: Some(bundle),
        assets: assets_map.into_iter().map(|(k, (_, b))| (k, b)).collect(),
        diagnostics: diags,
    }
}

/// E0505: HTML markup in a plain-text field.
fn markup_diag(what: &str, tag: &str) -> Diagnostic {
    Diagnostic::new(
        "E0505",
        format!("{what} contains HTML markup `{tag}`; it is plain text"),
    )
    .with_label("markup in plain text")
    .with_hint("titles, labels, prompts, options, alt text and citations are plain text: remove the tag (write `&lt;` for a literal `<` followed by a letter)")
}

/// Every plain-text field of a slide (titles, labels, prompts, options, alt text).
fn slide_text_fields(s: &Slide) -> Vec<(&'static str, &str)> {
    use edetail_format::bundle::Component;
    let mut out: Vec<(&'static str, &str)> = vec![("slide title", s.title.as_str())];
    if let Some(k) = &s.key_message {
        out.push(("key message", k));
    }
    out.extend(s.tags.iter().map(|t| ("tag", t.as_str())));
    for c in &s.components {
        match c {
            Component::Popup { label, title, .. } => {
                out.push(("popup label", label));
                if title != label {
                    out.push(("popup title", title));
                }
            }
            Component::Tabs { tabs, .. } => {
                out.extend(tabs.iter().map(|t| ("tab label", t.label.as_str())));
            }
            Component::Chart {
                title,
                series,
                categories,
                ..
            } => {
                out.push(("chart title", title));
                out.extend(series.iter().map(|x| ("chart series name", x.as_str())));
                out.extend(categories.iter().map(|x| ("chart category", x.as_str())));
            }
            Component::Question {
                prompt,
                options,
                scale,
                ..
            } => {
                out.push(("question", prompt));
                out.extend(options.iter().map(|o| ("answer option", o.label.as_str())));
                if let Some(sc) = scale {
                    out.extend(sc.min_label.iter().map(|l| ("rating label", l.as_str())));
                    out.extend(sc.max_label.iter().map(|l| ("rating label", l.as_str())));
                }
            }
            Component::Image { alt, .. } => out.push(("image alt text", alt)),
            Component::Video { title, .. } => out.push(("video title", title)),
            Component::Citation { .. } | Component::Link { .. } => {}
        }
    }
    out
}

fn close_enough(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    a.len().abs_diff(b.len()) <= 1
        && a.len() >= 3
        && a.iter().zip(&b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len()) <= 2
}
