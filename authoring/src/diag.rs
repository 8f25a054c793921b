//! Diagnostics: what the compiler tells authors, with file:line:col, rendered
//! rustc-style (via miette's graphical handler) or as JSON.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// How bad a diagnostic is. Errors stop a build; warnings do not (unless denied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A byte range in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// One problem found in a deck.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Stable code, e.g. `E0204` (errors) or `W0201` (warnings). See docs/authoring.md.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// Deck-relative path of the file, when the problem is in a file.
    pub file: Option<String>,
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column in characters (0 when unknown).
    pub column: u32,
    /// The offending source line, without its newline.
    pub source_line: Option<String>,
    /// Byte range in `file`.
    pub span: Option<Span>,
    /// What to do about it.
    pub hint: Option<String>,
    /// Full text of `file`, kept for the graphical report (not serialised).
    #[serde(skip)]
    pub(crate) text: Option<Arc<str>>,
    /// Label under the span in the graphical report.
    #[serde(skip)]
    pub(crate) label: Option<String>,
}

impl Diagnostic {
    /// A diagnostic that is not tied to a file position.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        let severity = if code.starts_with('W') {
            Severity::Warning
        } else {
            Severity::Error
        };
        Diagnostic {
            code,
            severity,
            message: message.into(),
            file: None,
            line: 0,
            column: 0,
            source_line: None,
            span: None,
            hint: None,
            text: None,
            label: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Attach a file without a position.
    pub fn in_file(mut self, file: &str) -> Self {
        self.file = Some(file.to_string());
        self
    }

    /// Attach a position: `start..end` are byte offsets into `text` (clamped).
    pub fn at(mut self, file: &SourceFile, start: usize, end: usize) -> Self {
        let text = &file.text;
        let mut start = start.min(text.len());
        while start > 0 && !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = end.clamp(start, text.len());
        while end < text.len() && !text.is_char_boundary(end) {
            end += 1;
        }
        let line_idx = file
            .line_starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1);
        let line_start = file.line_starts.get(line_idx).copied().unwrap_or(0);
        let line_end = text[line_start..]
            .find('\n')
            .map_or(text.len(), |i| line_start + i);
        let column = text[line_start..start].chars().count() + 1;
        self.file = Some(file.path.clone());
        self.line = u32::try_from(line_idx + 1).unwrap_or(u32::MAX);
        self.column = u32::try_from(column).unwrap_or(u32::MAX);
        self.source_line = Some(
            text[line_start..line_end]
                .trim_end_matches('\r')
                .to_string(),
        );
        self.span = Some(Span { start, end });
        self.text = Some(file.text.clone());
        self
    }

    /// Same diagnostic with a different severity (used by `--preview` for approval-window errors).
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col`, or just the file, or `<deck>`.
    pub fn location(&self) -> String {
        match (&self.file, self.line) {
            (Some(f), 0) => f.clone(),
            (Some(f), l) => format!("{f}:{l}:{}", self.column),
            (None, _) => "<deck>".to_string(),
        }
    }

    /// rustc-style report with the offending source line, no colours.
    pub fn render(&self) -> String {
        self.render_with(false)
    }

    /// rustc-style report; `color` adds ANSI colours for terminals.
    pub fn render_with(&self, color: bool) -> String {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false)
            .with_context_lines(1);
        let mut out = String::new();
        let report = Report {
            d: self,
            src: match (&self.file, &self.text) {
                (Some(f), Some(t)) => Some(miette::NamedSource::new(f.clone(), t.clone())),
                _ => None,
            },
        };
        if handler.render_report(&mut out, &report).is_err() {
            out = self.to_string();
        }
        if let Some(file) = &self.file {
            // miette prints the location in the snippet header; a plain "--> file:line:col"
            // line keeps it greppable even when there is no snippet.
            if self.span.is_none() {
                out.push_str(&format!("  --> {file}\n"));
            }
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}: {sev}[{}]: {}",
            self.location(),
            self.code,
            self.message
        )
    }
}

/// miette adapter.
struct Report<'a> {
    d: &'a Diagnostic,
    src: Option<miette::NamedSource<Arc<str>>>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}[{}]: {}", self.d.code, self.d.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.d
            .hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.src.as_ref().map(|t| t as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.d.span?;
        self.src.as_ref()?;
        let label = miette::LabeledSpan::new(
            Some(self.d.label.clone().unwrap_or_else(|| "here".to_string())),
            span.start,
            span.end.saturating_sub(span.start),
        );
        Some(Box::new(std::iter::once(label)))
    }

    fn url<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        None
    }
}

/// Render every diagnostic, rustc-style, followed by a summary line.
pub fn render_human(diags: &[Diagnostic], color: bool) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.render_with(color));
        out.push('\n');
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    out.push_str(&format!(
        "{errors} error{}, {warnings} warning{}\n",
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    ));
    out
}

/// JSON array of diagnostics (stable field names; see [`Diagnostic`]).
pub fn render_json(diags: &[Diagnostic]) -> String {
    serde_json::to_string_pretty(diags).unwrap_or_else(|_| "[]".to_string())
}

/// A loaded source file with a line index.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Deck-relative path, `/`-separated.
    pub path: String,
    pub text: Arc<str>,
    pub(crate) line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> u32 {
        let idx = self
            .line_starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        u32::try_from(idx + 1).unwrap_or(u32::MAX)
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (u32, u32) {
        let mut offset = offset.min(self.text.len());
        while offset > 0 && !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let idx = self
            .line_starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.line_starts.get(idx).copied().unwrap_or(0);
        let col = self.text[start..offset].chars().count() + 1;
        (
            u32::try_from(idx + 1).unwrap_or(u32::MAX),
            u32::try_from(col).unwrap_or(u32::MAX),
        )
    }
}
