//! Bundle schema: what the compiler writes and the runtime and server read.
//!
//! A bundle on disk is a directory:
//!
//! ```text
//! bundle.json                 the manifest (this module's [`Bundle`]), canonical JSON
//! bundle.sha256               hex sha256 of bundle.json bytes: the bundle hash
//! assets/<sha256>.<ext>       every asset, named by the sha256 of its bytes
//! ```
//!
//! Every asset's sha256 and size are listed in `bundle.json`, so the bundle hash
//! covers every byte of the bundle. The single-file archive form (`.edetail`) is a
//! tar of the same files in the same layout.
//!
//! The runtime never parses markdown: slides arrive as sanitized HTML plus
//! structured component data.

use serde::{Deserialize, Serialize};

use crate::hash::sha256_hex;

/// Version of the bundle schema written by this crate. Readers refuse other versions.
pub const BUNDLE_SCHEMA_VERSION: u32 = 1;

/// File name of the manifest inside a bundle directory or archive.
pub const BUNDLE_MANIFEST_FILE: &str = "bundle.json";
/// File name of the bundle hash (hex sha256 of `bundle.json`).
pub const BUNDLE_HASH_FILE: &str = "bundle.sha256";
/// Directory of content-addressed assets.
pub const ASSETS_DIR: &str = "assets";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Bundle {
    pub schema_version: u32,
    pub deck: DeckMeta,
    pub approval: Approval,
    /// True when built with `--preview`: the runtime shows a "PREVIEW" mark and
    /// the server refuses to publish it.
    #[serde(default)]
    pub preview: bool,
    pub tracking: Tracking,
    pub theme: Theme,
    /// The main flow, in order, grouped into sections.
    pub flow: Vec<Section>,
    /// Every slide: main-flow slides in flow order, then detail slides (reachable by links).
    pub slides: Vec<Slide>,
    /// References in citation-number order.
    #[serde(default)]
    pub references: Vec<Reference>,
    /// Important safety information, reachable from every slide.
    #[serde(default)]
    pub isi: Option<Isi>,
    /// Every asset file in the bundle.
    #[serde(default)]
    pub assets: Vec<AssetEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct DeckMeta {
    pub id: String,
    pub title: String,
    /// Semantic version, e.g. `1.2.0`.
    pub version: String,
    /// BCP 47 locale, e.g. `ko-KR`, `en-US`.
    pub locale: String,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub therapeutic_area: Option<String>,
    /// Intended channels: `mr_led`, `remote`, `self_serve`.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// MLR approval. Dates are ISO `YYYY-MM-DD`, inclusive, in UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Approval {
    pub code: String,
    pub valid_from: String,
    pub valid_until: String,
}

impl Approval {
    /// Whether `today` (ISO `YYYY-MM-DD`) falls inside the approval window.
    /// ISO dates compare correctly as strings.
    pub fn window_status(&self, today: &str) -> WindowStatus {
        if today < self.valid_from.as_str() {
            WindowStatus::NotYetValid
        } else if today > self.valid_until.as_str() {
            WindowStatus::Expired
        } else {
            WindowStatus::Valid
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowStatus {
    NotYetValid,
    Valid,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Tracking {
    /// A slide view counts once the slide was visible this long (or on any interaction).
    pub view_threshold_ms: u64,
}

impl Default for Tracking {
    fn default() -> Self {
        Self {
            view_threshold_ms: 2000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Theme {
    /// CSS colours (validated by the compiler: `#rgb`, `#rrggbb`).
    pub primary: String,
    pub accent: String,
    pub background: String,
    pub text: String,
    /// CSS font-family list.
    pub font_family: String,
    /// Bundle-relative path of the logo asset, if any.
    #[serde(default)]
    pub logo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Section {
    pub id: String,
    pub title: String,
    pub slides: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Slide {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub key_message: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Layout name: `default`, `title`, `two-column`, `section`, `full-media`.
    pub layout: String,
    /// Must be shown in every call.
    #[serde(default)]
    pub mandatory: bool,
    /// Who may see it: `hcp`, `mr`, ... (empty means everyone).
    #[serde(default)]
    pub audience: Vec<String>,
    /// True for detail slides outside the main flow (reached by drill-down links).
    #[serde(default)]
    pub detail: bool,
    /// Sanitized HTML of the slide body. Interactive components appear as
    /// elements carrying `data-component="<component id>"`; build steps as
    /// elements carrying `data-step="<n>"` (1-based).
    pub html: String,
    /// Number of build steps (0 when the slide has none).
    #[serde(default)]
    pub steps: u32,
    /// Speaker notes for the MR, sanitized HTML.
    #[serde(default)]
    pub notes: Option<String>,
    /// Interactive components, in document order.
    #[serde(default)]
    pub components: Vec<Component>,
    /// Ids of references cited on this slide, in first-citation order.
    #[serde(default)]
    pub references: Vec<String>,
    /// sha256 over the slide's content (see [`Slide::compute_content_hash`]).
    pub content_hash: String,
    /// Where the slide came from (deck-relative path and 1-based line), for diagnostics and analytics.
    #[serde(default)]
    pub source: Option<SourceRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct SourceRef {
    pub file: String,
    pub line: u32,
}

crate::map_only!(
    Bundle,
    DeckMeta,
    Approval,
    Tracking,
    Theme,
    Section,
    Slide,
    SourceRef,
    Tab,
    AnswerOption,
    RatingScale,
    Reference,
    Isi,
    AssetEntry,
);

/// The part of a slide that its content hash covers.
#[derive(Serialize)]
struct SlideContent<'a> {
    id: &'a str,
    title: &'a str,
    key_message: &'a Option<String>,
    layout: &'a str,
    html: &'a str,
    steps: u32,
    notes: &'a Option<String>,
    components: &'a [Component],
    references: &'a [String],
}

impl Slide {
    /// sha256 (hex) of the slide's presented content: id, title, key message, layout,
    /// HTML, steps, notes, components and references. Tags, audience, `mandatory`
    /// and source position are metadata and do not change the hash.
    pub fn compute_content_hash(&self) -> String {
        let content = SlideContent {
            id: &self.id,
            title: &self.title,
            key_message: &self.key_message,
            layout: &self.layout,
            html: &self.html,
            steps: self.steps,
            notes: &self.notes,
            components: &self.components,
            references: &self.references,
        };
        // Serialising plain structs and vectors cannot fail.
        let bytes = serde_json::to_vec(&content).unwrap_or_default();
        sha256_hex(&bytes)
    }
}

/// An interactive or tracked element inside a slide. Every component has an id that
/// is stable across builds (author-given, or derived from slide id and position) and
/// unique within the bundle; engagement events name it.
///
/// On the wire it is a JSON object whose `type` field names the variant (`citation`,
/// `link`, ...), the other fields being the variant's. Serialization is serde's
/// internally tagged form; deserialization is written by hand (`component_de` below) so
/// the runtime's wasm does not carry serde's buffering of internally tagged enums.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Component {
    /// A citation superscript `[^ref]`.
    Citation {
        id: String,
        reference: String,
        number: u32,
    },
    /// A link to another slide (main flow or detail/drill-down).
    Link {
        id: String,
        target: String,
        /// True when the target is a detail slide (drill-down).
        drilldown: bool,
    },
    /// A button that opens a modal overlay.
    Popup {
        id: String,
        label: String,
        title: String,
        html: String,
    },
    /// Tabs (or an accordion when `accordion` is true).
    Tabs {
        id: String,
        #[serde(default)]
        accordion: bool,
        tabs: Vec<Tab>,
    },
    /// A chart rendered at build time to SVG (in the slide HTML) with a data table fallback.
    Chart {
        id: String,
        kind: ChartKind,
        title: String,
        /// Series names.
        series: Vec<String>,
        /// Category labels (x axis) or row labels (forest plot).
        categories: Vec<String>,
    },
    /// Quiz, poll or survey question.
    Question {
        id: String,
        /// `quiz` has correct answers; `poll` shows aggregate-free thanks; `survey` collects.
        purpose: QuestionPurpose,
        kind: QuestionKind,
        prompt: String,
        #[serde(default)]
        options: Vec<AnswerOption>,
        /// Option ids that are correct (quizzes only).
        #[serde(default)]
        correct: Vec<String>,
        /// Rating scale bounds (rating questions only).
        #[serde(default)]
        scale: Option<RatingScale>,
        /// Feedback HTML shown after answering a quiz.
        #[serde(default)]
        explanation: Option<String>,
    },
    Image {
        id: String,
        /// Bundle-relative asset path.
        src: String,
        alt: String,
        /// Tap to zoom.
        #[serde(default)]
        zoom: bool,
    },
    Video {
        id: String,
        src: String,
        poster: String,
        title: String,
        #[serde(default)]
        captions: Option<String>,
    },
}

impl Component {
    pub fn id(&self) -> &str {
        match self {
            Component::Citation { id, .. }
            | Component::Link { id, .. }
            | Component::Popup { id, .. }
            | Component::Tabs { id, .. }
            | Component::Chart { id, .. }
            | Component::Question { id, .. }
            | Component::Image { id, .. }
            | Component::Video { id, .. } => id,
        }
    }
}

/// Hand-written `Deserialize` for [`Component`].
///
/// `#[serde(tag = "type")]` would buffer every component into serde's private `Content`
/// tree and then run one struct visitor per variant over it; in the runtime's wasm that
/// machinery was most of the ~140 KB the bundle parser cost. Here one visitor reads the
/// object's fields straight from the JSON in any key order (the compiler writes `type`
/// first, but any order is accepted) and builds the variant at the end.
///
/// Errors read like serde's derive: `missing field `number``, `duplicate field `id``,
/// `unknown variant `pie`, expected one of `bar`, `line`, `forest``, `invalid type: ...`.
/// Unknown fields are ignored, as before. One difference: a field name that belongs to
/// *another* variant (say `label` on a citation) is type-checked instead of ignored.
mod component_de {
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

    use super::{
        AnswerOption, ChartKind, Component, QuestionKind, QuestionPurpose, RatingScale, Tab,
    };

    const TYPES: &[&str] = &[
        "citation", "link", "popup", "tabs", "chart", "question", "image", "video",
    ];
    const CHART_KINDS: &[&str] = &["bar", "line", "forest"];
    const QUESTION_KINDS: &[&str] = &["single", "multiple", "rating", "text"];
    const PURPOSES: &[&str] = &["quiz", "poll", "survey"];

    /// Every field name any variant uses (`kind` and `purpose` are read as strings and
    /// resolved against the variant once `type` is known).
    #[derive(serde::Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum Field {
        Type,
        Id,
        Reference,
        Number,
        Target,
        Drilldown,
        Label,
        Title,
        Html,
        Accordion,
        Tabs,
        Kind,
        Series,
        Categories,
        Purpose,
        Prompt,
        Options,
        Correct,
        Scale,
        Explanation,
        Src,
        Alt,
        Zoom,
        Poster,
        Captions,
        #[serde(other)]
        Other,
    }

    /// The index of `value` among the names field `field` (`kind` or `purpose`) allows on
    /// component type `ty`; `None` when that type has no such field (it is ignored). An
    /// unknown name is an error as soon as the type is known, as in serde's derive
    /// (which reads it with the variant's other fields).
    fn unit_index<E: de::Error>(ty: &str, field: &str, value: &str) -> Result<Option<usize>, E> {
        let names = match (ty, field) {
            ("chart", "kind") => CHART_KINDS,
            ("question", "kind") => QUESTION_KINDS,
            ("question", _) => PURPOSES,
            _ => return Ok(None),
        };
        match names.iter().position(|n| *n == value) {
            Some(i) => Ok(Some(i)),
            None => Err(E::unknown_variant(value, names)),
        }
    }

    impl<'de> Deserialize<'de> for Component {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_map(ComponentVisitor)
        }
    }

    struct ComponentVisitor;

    impl<'de> Visitor<'de> for ComponentVisitor {
        type Value = Component;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a component (an object with a `type` field)")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Component, A::Error> {
            let mut ty: Option<String> = None;
            let mut id: Option<String> = None;
            let mut reference: Option<String> = None;
            let mut number: Option<u32> = None;
            let mut target: Option<String> = None;
            let mut drilldown: Option<bool> = None;
            let mut label: Option<String> = None;
            let mut title: Option<String> = None;
            let mut html: Option<String> = None;
            let mut accordion: Option<bool> = None;
            let mut tabs: Option<Vec<Tab>> = None;
            let mut kind: Option<String> = None;
            let mut series: Option<Vec<String>> = None;
            let mut categories: Option<Vec<String>> = None;
            let mut purpose: Option<String> = None;
            let mut prompt: Option<String> = None;
            let mut options: Option<Vec<AnswerOption>> = None;
            let mut correct: Option<Vec<String>> = None;
            let mut scale: Option<Option<RatingScale>> = None;
            let mut explanation: Option<Option<String>> = None;
            let mut src: Option<String> = None;
            let mut alt: Option<String> = None;
            let mut zoom: Option<bool> = None;
            let mut poster: Option<String> = None;
            let mut captions: Option<Option<String>> = None;

            // Reads the next value into `slot`, refusing a second occurrence of the key.
            macro_rules! take {
                ($slot:ident, $name:literal) => {{
                    if $slot.is_some() {
                        return Err(de::Error::duplicate_field($name));
                    }
                    $slot = Some(map.next_value()?);
                }};
            }
            while let Some(key) = map.next_key::<Field>()? {
                match key {
                    Field::Type => {
                        take!(ty, "type");
                        // As soon as it is read (first, from the compiler), like serde's
                        // tagged form does before the variant's fields.
                        if let Some(t) = &ty
                            && !TYPES.contains(&t.as_str())
                        {
                            return Err(de::Error::unknown_variant(t, TYPES));
                        }
                    }
                    Field::Id => take!(id, "id"),
                    Field::Reference => take!(reference, "reference"),
                    Field::Number => take!(number, "number"),
                    Field::Target => take!(target, "target"),
                    Field::Drilldown => take!(drilldown, "drilldown"),
                    Field::Label => take!(label, "label"),
                    Field::Title => take!(title, "title"),
                    Field::Html => take!(html, "html"),
                    Field::Accordion => take!(accordion, "accordion"),
                    Field::Tabs => take!(tabs, "tabs"),
                    Field::Kind => {
                        take!(kind, "kind");
                        if let (Some(t), Some(k)) = (&ty, &kind) {
                            unit_index::<A::Error>(t, "kind", k)?;
                        }
                    }
                    Field::Series => take!(series, "series"),
                    Field::Categories => take!(categories, "categories"),
                    Field::Purpose => {
                        take!(purpose, "purpose");
                        if let (Some(t), Some(p)) = (&ty, &purpose) {
                            unit_index::<A::Error>(t, "purpose", p)?;
                        }
                    }
                    Field::Prompt => take!(prompt, "prompt"),
                    Field::Options => take!(options, "options"),
                    Field::Correct => take!(correct, "correct"),
                    Field::Scale => take!(scale, "scale"),
                    Field::Explanation => take!(explanation, "explanation"),
                    Field::Src => take!(src, "src"),
                    Field::Alt => take!(alt, "alt"),
                    Field::Zoom => take!(zoom, "zoom"),
                    Field::Poster => take!(poster, "poster"),
                    Field::Captions => take!(captions, "captions"),
                    Field::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }

            // A field the variant requires.
            macro_rules! req {
                ($slot:ident, $name:literal) => {
                    $slot.ok_or_else(|| de::Error::missing_field($name))?
                };
            }
            let ty = ty.ok_or_else(|| de::Error::missing_field("type"))?;
            // With `type` read after them, `purpose` and `kind` are checked here, still
            // before any missing-field error.
            let purpose = match &purpose {
                Some(p) => unit_index::<A::Error>(&ty, "purpose", p)?,
                None => None,
            };
            let kind = match &kind {
                Some(k) => unit_index::<A::Error>(&ty, "kind", k)?,
                None => None,
            };
            Ok(match ty.as_str() {
                "citation" => Component::Citation {
                    id: req!(id, "id"),
                    reference: req!(reference, "reference"),
                    number: req!(number, "number"),
                },
                "link" => Component::Link {
                    id: req!(id, "id"),
                    target: req!(target, "target"),
                    drilldown: req!(drilldown, "drilldown"),
                },
                "popup" => Component::Popup {
                    id: req!(id, "id"),
                    label: req!(label, "label"),
                    title: req!(title, "title"),
                    html: req!(html, "html"),
                },
                "tabs" => {
                    let id = req!(id, "id");
                    Component::Tabs {
                        id,
                        accordion: accordion.unwrap_or_default(),
                        tabs: req!(tabs, "tabs"),
                    }
                }
                "chart" => {
                    let id = req!(id, "id");
                    let kind = match kind.ok_or_else(|| de::Error::missing_field("kind"))? {
                        0 => ChartKind::Bar,
                        1 => ChartKind::Line,
                        _ => ChartKind::Forest,
                    };
                    Component::Chart {
                        id,
                        kind,
                        title: req!(title, "title"),
                        series: req!(series, "series"),
                        categories: req!(categories, "categories"),
                    }
                }
                "question" => {
                    let id = req!(id, "id");
                    let purpose =
                        match purpose.ok_or_else(|| de::Error::missing_field("purpose"))? {
                            0 => QuestionPurpose::Quiz,
                            1 => QuestionPurpose::Poll,
                            _ => QuestionPurpose::Survey,
                        };
                    let kind = match kind.ok_or_else(|| de::Error::missing_field("kind"))? {
                        0 => QuestionKind::Single,
                        1 => QuestionKind::Multiple,
                        2 => QuestionKind::Rating,
                        _ => QuestionKind::Text,
                    };
                    Component::Question {
                        id,
                        purpose,
                        kind,
                        prompt: req!(prompt, "prompt"),
                        options: options.unwrap_or_default(),
                        correct: correct.unwrap_or_default(),
                        scale: scale.flatten(),
                        explanation: explanation.flatten(),
                    }
                }
                "image" => Component::Image {
                    id: req!(id, "id"),
                    src: req!(src, "src"),
                    alt: req!(alt, "alt"),
                    zoom: zoom.unwrap_or_default(),
                },
                _ => Component::Video {
                    id: req!(id, "id"),
                    src: req!(src, "src"),
                    poster: req!(poster, "poster"),
                    title: req!(title, "title"),
                    captions: captions.flatten(),
                },
            })
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Tab {
    pub id: String,
    pub label: String,
    pub html: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    Bar,
    Line,
    Forest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionPurpose {
    Quiz,
    Poll,
    Survey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    Single,
    Multiple,
    Rating,
    Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct AnswerOption {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct RatingScale {
    pub min: i32,
    pub max: i32,
    #[serde(default)]
    pub min_label: Option<String>,
    #[serde(default)]
    pub max_label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Reference {
    pub id: String,
    /// 1-based citation number, in order of first citation across the flow.
    pub number: u32,
    pub citation: String,
    #[serde(default)]
    pub doi: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Isi {
    pub title: String,
    /// Sanitized HTML.
    pub html: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct AssetEntry {
    /// Bundle-relative path: `assets/<sha256>.<ext>`.
    pub path: String,
    /// Deck-relative path of the source file (for authors' diagnostics).
    pub source: String,
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
}

/// Why a bundle cannot be presented or accepted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BundleError {
    #[error("bundle is not valid JSON for schema version {BUNDLE_SCHEMA_VERSION}: {0}")]
    Malformed(String),
    #[error(
        "unsupported bundle schema version {found} (this build reads version {BUNDLE_SCHEMA_VERSION})"
    )]
    UnsupportedSchema { found: u64 },
    #[error("bundle hash mismatch: expected {expected}, computed {actual}")]
    HashMismatch { expected: String, actual: String },
    #[error("slide `{slide}` content hash does not match its content")]
    SlideHashMismatch { slide: String },
    #[error("asset `{path}` hash does not match its content")]
    AssetHashMismatch { path: String },
    #[error("invalid bundle: {0}")]
    Invalid(String),
}

impl Bundle {
    /// Parse `bundle.json` bytes: checks the schema version first so an old or future
    /// bundle gets a clear "unsupported schema" rather than a field error.
    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        Self::parse::<true>(bytes)
    }

    /// [`Bundle::from_json`] for bytes whose bundle hash the caller has already
    /// verified (the wasm runtime computes it with WebCrypto): the same schema and
    /// structure checks, but slide content hashes are not recomputed. They are inside
    /// the hashed bytes, so a slide edited without its hash changes the bundle hash.
    /// Hashes nothing: the runtime's wasm does not link sha2 through it.
    pub fn from_verified_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        Self::parse::<false>(bytes)
    }

    fn parse<const SLIDE_HASHES: bool>(bytes: &[u8]) -> Result<Bundle, BundleError> {
        // One parse in the common case; only a failure (or a foreign version) pays
        // for the probe that tells "unsupported schema" from "malformed".
        let schema_error = |found: Option<u64>| match found {
            Some(v) => BundleError::UnsupportedSchema { found: v },
            None => BundleError::Malformed("missing or non-integer `schema_version`".into()),
        };
        let bundle: Bundle = match serde_json::from_slice(bytes) {
            Ok(b) => b,
            Err(e) => {
                #[derive(Deserialize)]
                struct Probe {
                    schema_version: Option<serde_json::Value>,
                }
                let probe: Probe = serde_json::from_slice(bytes)
                    .map_err(|_| BundleError::Malformed(e.to_string()))?;
                return Err(
                    match probe.schema_version.as_ref().and_then(|v| v.as_u64()) {
                        Some(v) if v == u64::from(BUNDLE_SCHEMA_VERSION) => {
                            BundleError::Malformed(e.to_string())
                        }
                        found => schema_error(found),
                    },
                );
            }
        };
        if bundle.schema_version != BUNDLE_SCHEMA_VERSION {
            return Err(schema_error(Some(u64::from(bundle.schema_version))));
        }
        bundle.check::<SLIDE_HASHES>()?;
        Ok(bundle)
    }

    /// Canonical bytes of `bundle.json` (compact JSON, struct field order).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Structural checks a reader relies on: unique slide ids, flow entries and link
    /// targets that exist, slide hashes that match their content.
    pub fn validate(&self) -> Result<(), BundleError> {
        self.check::<true>()
    }

    /// [`Bundle::validate`] without the slide content hashes (see
    /// [`Bundle::from_verified_json`]).
    pub fn validate_structure(&self) -> Result<(), BundleError> {
        self.check::<false>()
    }

    /// `SLIDE_HASHES` is a const parameter so that the instance without slide hashes
    /// does not reference the hashing code at all (the wasm runtime does not link it).
    fn check<const SLIDE_HASHES: bool>(&self) -> Result<(), BundleError> {
        let mut ids = std::collections::BTreeSet::new();
        for s in &self.slides {
            if !ids.insert(s.id.as_str()) {
                return Err(BundleError::Invalid(format!(
                    "duplicate slide id `{}`",
                    s.id
                )));
            }
        }
        for sec in &self.flow {
            for id in &sec.slides {
                if !ids.contains(id.as_str()) {
                    return Err(BundleError::Invalid(format!(
                        "flow names unknown slide `{id}`"
                    )));
                }
            }
        }
        if self.flow.iter().all(|s| s.slides.is_empty()) {
            return Err(BundleError::Invalid("the main flow is empty".into()));
        }
        for s in &self.slides {
            for c in &s.components {
                if let Component::Link { target, .. } = c
                    && !ids.contains(target.as_str())
                {
                    return Err(BundleError::Invalid(format!(
                        "slide `{}` links to unknown slide `{target}`",
                        s.id
                    )));
                }
            }
            if SLIDE_HASHES && s.compute_content_hash() != s.content_hash {
                return Err(BundleError::SlideHashMismatch {
                    slide: s.id.clone(),
                });
            }
        }
        Ok(())
    }

    /// Slide ids of the main flow, in order.
    pub fn flow_ids(&self) -> impl Iterator<Item = &str> {
        self.flow
            .iter()
            .flat_map(|s| s.slides.iter().map(String::as_str))
    }

    pub fn slide(&self, id: &str) -> Option<&Slide> {
        self.slides.iter().find(|s| s.id == id)
    }

    /// The asset entry for a bundle-relative path.
    pub fn asset(&self, path: &str) -> Option<&AssetEntry> {
        self.assets.iter().find(|a| a.path == path)
    }
}

/// Verify `bundle.json` bytes against an expected bundle hash, then parse them.
pub fn verify_and_parse(bytes: &[u8], expected_hash: &str) -> Result<Bundle, BundleError> {
    let actual = sha256_hex(bytes);
    if !actual.eq_ignore_ascii_case(expected_hash.trim()) {
        return Err(BundleError::HashMismatch {
            expected: expected_hash.trim().to_string(),
            actual,
        });
    }
    Bundle::from_json(bytes)
}

/// Check an asset's bytes against its entry.
pub fn verify_asset(entry: &AssetEntry, bytes: &[u8]) -> Result<(), BundleError> {
    if sha256_hex(bytes) != entry.sha256 || bytes.len() as u64 != entry.size {
        return Err(BundleError::AssetHashMismatch {
            path: entry.path.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid two-slide bundle (`b` is a detail slide linked from `a`).
    fn bundle_json() -> serde_json::Value {
        let slide = |id: &str, components: serde_json::Value| {
            let mut s: Slide = serde_json::from_value(serde_json::json!({
                "id": id, "title": format!("Title {id}"), "layout": "default",
                "html": format!("<h1>{id}</h1>"), "components": components,
                "content_hash": "",
            }))
            .expect("slide");
            s.content_hash = s.compute_content_hash();
            serde_json::to_value(s).expect("json")
        };
        let link =
            serde_json::json!([{"type": "link", "id": "l1", "target": "b", "drilldown": true}]);
        serde_json::json!({
            "schema_version": BUNDLE_SCHEMA_VERSION,
            "deck": {"id": "d", "title": "D", "version": "1.0.0", "locale": "en-US"},
            "approval": {"code": "X-1", "valid_from": "2026-01-01", "valid_until": "2027-12-31"},
            "tracking": {"view_threshold_ms": 2000},
            "theme": {"primary": "#000", "accent": "#111", "background": "#fff", "text": "#222",
                      "font_family": "system-ui"},
            "flow": [{"id": "main", "title": "Main", "slides": ["a"]}],
            "slides": [slide("a", link), slide("b", serde_json::json!([]))],
        })
    }

    fn bytes(v: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(v).expect("json")
    }

    #[test]
    fn verified_json_checks_schema_and_structure_but_not_slide_hashes() {
        let good = bundle_json();
        let parsed = Bundle::from_verified_json(&bytes(&good)).expect("valid");
        assert_eq!(parsed, Bundle::from_json(&bytes(&good)).expect("valid"));
        assert_eq!(parsed.validate_structure(), Ok(()));

        // A slide edited without its content hash: only from_json notices (the
        // caller of from_verified_json relies on the bundle hash for that).
        let mut edited = good.clone();
        edited["slides"][0]["html"] = "<h1>changed</h1>".into();
        assert_eq!(
            Bundle::from_json(&bytes(&edited)),
            Err(BundleError::SlideHashMismatch { slide: "a".into() })
        );
        let b = Bundle::from_verified_json(&bytes(&edited)).expect("structure is fine");
        assert_eq!(b.slides[0].html, "<h1>changed</h1>");
        assert!(b.validate_structure().is_ok());
        assert!(b.validate().is_err());

        // Schema and structure refusals are the same as from_json's.
        let mut other = good.clone();
        other["schema_version"] = 2.into();
        assert_eq!(
            Bundle::from_verified_json(&bytes(&other)),
            Err(BundleError::UnsupportedSchema { found: 2 })
        );
        let mut dangling = good.clone();
        dangling["slides"][0]["components"][0]["target"] = "zz".into();
        let e = Bundle::from_verified_json(&bytes(&dangling));
        assert!(matches!(&e, Err(BundleError::Invalid(m)) if m.contains("unknown slide `zz`")));
        let mut dup = good.clone();
        dup["slides"][1]["id"] = "a".into();
        let e = Bundle::from_verified_json(&bytes(&dup));
        assert!(matches!(&e, Err(BundleError::Invalid(m)) if m.contains("duplicate slide id")));
        let mut empty = good;
        empty["flow"][0]["slides"] = serde_json::json!([]);
        assert!(matches!(
            Bundle::from_verified_json(&bytes(&empty)),
            Err(BundleError::Invalid(_))
        ));
        assert!(matches!(
            Bundle::from_verified_json(b"<html>404</html>"),
            Err(BundleError::Malformed(_))
        ));
    }
}
