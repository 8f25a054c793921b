//! Insight rollups: what each stored event adds to the aggregate tables.
//!
//! A rollup row is keyed by a key (metric, deck, version, k1, k2), a cohort (grain,
//! channel, territory, specialty, region, institution, segment) and a day, and holds a
//! count `n` and a sum `s`. Stores intern keys and cohorts into integer ids (SQLite
//! keys its rollup table by three integers). Every delta is written for two cohorts:
//! grain 0 with territory and the physician dimensions collapsed to `*` (small; answers
//! queries that do not filter by territory, specialty, region, institution or segment)
//! and grain 1 with them (answers those filters). Distinct physician reach lives in a
//! separate `reach` table (one row per physician, deck version, grain-1 cohort and day,
//! written at session start) because distinct counts cannot be summed; `reach_total`
//! (deck, version, channel, physician) answers reach queries without day, territory or
//! physician-dimension filters quickly.
//!
//! Session-level rollups (slides reached per session for drop-off, the path followed
//! and whether the call had a positive reaction) are computed when a `session_end`
//! event arrives, from the session's stored events.
//!
//! Metrics (k1 / k2; n; s):
//! - `session` (- / -; sessions started)
//! - `view` (slide / -; counted views; summed dwell ms)
//! - `dwell_hist` (slide / bucket index `00`..; views in bucket) — see [`DWELL_BUCKETS_MS`]
//! - `link` (slide / `component→target` with `d:` prefix for drill-downs; follows)
//! - `popup` (slide / component), `tab` (component / tab), `isi` (slide / -),
//!   `citation` (reference / -), `references` (slide / -), `video` (component / action),
//!   `zoom` (component / -), `chart` (component / action), `build_step` (slide / step)
//! - `answer_n` (question / -; answers; s = correct quiz answers)
//! - `answer` (question / option id, `rating:N` or `text`)
//! - `reaction` (key message or `slide:<id>` / `-1`|`0`|`1`)
//! - `question` (normalised question text / -), `visit_request`, `consent` (- / granted)
//! - `sess_end` (- / -; ended sessions), `sess_slide` (slide / -; ended sessions that
//!   viewed the slide), `path` (first slides in order joined by ` > ` / `pos`|`other`)

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use edetail_format::EventKind;

use crate::storage::{EventRow, HcpRecord, SessionItem};
use crate::util::day_of_ms;

/// Upper bounds (exclusive) of the dwell histogram buckets, in ms; the last bucket is open.
pub const DWELL_BUCKETS_MS: [i64; 14] = [
    1_000, 2_000, 3_000, 5_000, 8_000, 13_000, 20_000, 30_000, 45_000, 60_000, 90_000, 120_000,
    180_000, 300_000,
];

/// Slides kept in a session path.
pub const PATH_LEN: usize = 6;

pub fn dwell_bucket(ms: i64) -> usize {
    DWELL_BUCKETS_MS
        .iter()
        .position(|b| ms < *b)
        .unwrap_or(DWELL_BUCKETS_MS.len())
}

/// Lower and upper bound of a bucket (upper of the open bucket: 2x its lower bound).
pub fn bucket_bounds(i: usize) -> (i64, i64) {
    let lo = if i == 0 { 0 } else { DWELL_BUCKETS_MS[i - 1] };
    let hi = DWELL_BUCKETS_MS.get(i).copied().unwrap_or(lo * 2);
    (lo, hi)
}

/// The non-dimension part of a rollup key: what is counted (metric, k1, k2) for which
/// deck version. Stores intern it into an integer id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyDims {
    pub metric: String,
    pub deck: String,
    pub version: String,
    pub k1: String,
    pub k2: String,
}

/// The dimensions a rollup row is counted under (a "cohort"). Grain 0 keeps only the
/// channel (territory and physician dimensions are `*`); grain 1 keeps all of them.
/// Stores intern it into an integer id.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cohort {
    pub grain: i32,
    pub channel: String,
    pub territory: String,
    pub specialty: String,
    pub region: String,
    pub institution: String,
    pub segment: String,
}

/// Rollup deltas with their keys and cohorts interned locally (indices into
/// [`Deltas::keys`] and [`Deltas::cohorts`]), so accumulating a delta costs two hash
/// lookups of a reused buffer and no allocation once the key has been seen.
#[derive(Debug, Default)]
pub struct Deltas {
    pub keys: Vec<KeyDims>,
    key_ix: HashMap<String, u32>,
    pub cohorts: Vec<Cohort>,
    cohort_ix: HashMap<String, u32>,
    /// (key index, cohort index, day) -> (n, s).
    pub rollup: HashMap<(u32, u32, i32), (i64, i64), BuildHasherDefault<IntHasher>>,
    /// (key index of the `reach` pseudo-metric for the deck version, grain-1 cohort
    /// index, day, hcp): one row per physician reached.
    pub reach: BTreeSet<(u32, u32, i32, String)>,
    /// (deck, version, channel, hcp): reach without day or dimension filters.
    pub reach_total: BTreeSet<(String, String, String, String)>,
    buf: String,
}

const SEP: char = '\u{1f}';

/// A multiply-rotate hasher for the small integer tuples keying [`Deltas::rollup`]
/// (indices assigned here, not chosen by clients, so no flooding concern).
#[derive(Default, Clone, Copy)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_i32(&mut self, i: i32) {
        self.write_u64(u64::from(i as u32));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// What a store must look up before [`compute`]: the HCP directory rows of these
/// physicians and the stored events of these (ended) sessions.
pub fn needs(rows: &[&EventRow]) -> (Vec<String>, Vec<String>) {
    let mut hcps = BTreeSet::new();
    let mut sessions = BTreeSet::new();
    for r in rows {
        if let Some(h) = &r.hcp {
            hcps.insert(h.clone());
        }
        if r.etype == "session_end" {
            sessions.insert(r.session_id.clone());
        }
    }
    (hcps.into_iter().collect(), sessions.into_iter().collect())
}

/// Normalise a physician's question for counting: trimmed, whitespace collapsed,
/// lower-cased, at most 200 characters.
pub fn normalise_question(t: &str) -> String {
    let s: String = t
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    s.chars().take(200).collect()
}

struct Ctx<'a> {
    row: &'a EventRow,
    /// Cohort indices at grain 0 and grain 1.
    coh: [u32; 2],
    day: i32,
}

impl Deltas {
    fn intern_cohort(&mut self, c: &Cohort) -> u32 {
        self.buf.clear();
        for (i, p) in [
            &c.channel,
            &c.territory,
            &c.specialty,
            &c.region,
            &c.institution,
            &c.segment,
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                self.buf.push(SEP);
            }
            self.buf.push_str(p);
        }
        self.buf.push(SEP);
        self.buf.push(if c.grain == 0 { '0' } else { '1' });
        if let Some(i) = self.cohort_ix.get(self.buf.as_str()) {
            return *i;
        }
        let i = self.cohorts.len() as u32;
        self.cohorts.push(c.clone());
        self.cohort_ix.insert(self.buf.clone(), i);
        i
    }

    fn key_id(&mut self, metric: &str, deck: &str, version: &str, k1: &str, k2: &str) -> u32 {
        self.buf.clear();
        for (i, p) in [metric, deck, version, k1, k2].into_iter().enumerate() {
            if i > 0 {
                self.buf.push(SEP);
            }
            self.buf.push_str(p);
        }
        if let Some(i) = self.key_ix.get(self.buf.as_str()) {
            return *i;
        }
        let i = self.keys.len() as u32;
        self.keys.push(KeyDims {
            metric: metric.to_string(),
            deck: deck.to_string(),
            version: version.to_string(),
            k1: k1.to_string(),
            k2: k2.to_string(),
        });
        self.key_ix.insert(self.buf.clone(), i);
        i
    }

    fn add(&mut self, c: &Ctx<'_>, metric: &'static str, k1: &str, k2: &str, n: i64, s: i64) {
        let r = c.row;
        let k = self.key_id(metric, &r.deck_id, &r.deck_version, k1, k2);
        for coh in c.coh {
            let e = self.rollup.entry((k, coh, c.day)).or_insert((0, 0));
            e.0 += n;
            e.1 += s;
        }
    }

    fn reach(&mut self, c: &Ctx<'_>) {
        let r = c.row;
        let Some(hcp) = &r.hcp else { return };
        self.reach_total.insert((
            r.deck_id.clone(),
            r.deck_version.clone(),
            r.channel.to_string(),
            hcp.clone(),
        ));
        let k = self.key_id("reach", &r.deck_id, &r.deck_version, "", "");
        self.reach.insert((k, c.coh[1], c.day, hcp.clone()));
    }
}

/// The grain-0 and grain-1 cohorts of an event.
pub fn cohorts_of(row: &EventRow, hcp: Option<&HcpRecord>) -> [Cohort; 2] {
    let coarse = Cohort {
        grain: 0,
        channel: row.channel.to_string(),
        territory: "*".into(),
        specialty: "*".into(),
        region: "*".into(),
        institution: "*".into(),
        segment: "*".into(),
    };
    let d = hcp.cloned().unwrap_or_default();
    let fine = Cohort {
        grain: 1,
        channel: row.channel.to_string(),
        territory: row.territory.clone().unwrap_or_default(),
        specialty: d.specialty,
        region: d.region,
        institution: d.institution,
        segment: d.segment,
    };
    [coarse, fine]
}

/// The rollup deltas of newly stored, non-preview events.
pub fn compute(
    rows: &[&EventRow],
    hcps: &HashMap<String, HcpRecord>,
    sessions: &HashMap<String, Vec<SessionItem>>,
) -> Deltas {
    let mut d = Deltas::default();
    for row in rows {
        if row.preview {
            continue;
        }
        let [coarse, fine] = cohorts_of(row, row.hcp.as_ref().and_then(|h| hcps.get(h)));
        let c = Ctx {
            row,
            coh: [d.intern_cohort(&coarse), d.intern_cohort(&fine)],
            day: day_of_ms(row.corrected_time),
        };
        let slide = row.slide_id.as_deref().unwrap_or("");
        match &row.event.kind {
            EventKind::SessionStart { .. } => {
                d.add(&c, "session", "", "", 1, 0);
                d.reach(&c);
            }
            EventKind::SlideView {
                dwell_ms, counted, ..
            } => {
                if *counted {
                    let dw = i64::try_from(*dwell_ms).unwrap_or(i64::MAX);
                    d.add(&c, "view", slide, "", 1, dw);
                    d.add(
                        &c,
                        "dwell_hist",
                        slide,
                        &format!("{:02}", dwell_bucket(dw)),
                        1,
                        0,
                    );
                }
            }
            EventKind::BuildStep { step } => {
                d.add(&c, "build_step", slide, &step.to_string(), 1, 0)
            }
            EventKind::PopupOpen { component_id } => d.add(&c, "popup", slide, component_id, 1, 0),
            EventKind::TabSelect {
                component_id,
                tab_id,
            } => d.add(&c, "tab", component_id, tab_id, 1, 0),
            EventKind::CitationOpen { reference_id, .. } => {
                d.add(&c, "citation", reference_id, "", 1, 0)
            }
            EventKind::LinkFollow {
                component_id,
                target,
                drilldown,
            } => {
                let k2 = format!(
                    "{}{component_id}\u{2192}{target}",
                    if *drilldown { "d:" } else { "" }
                );
                d.add(&c, "link", slide, &k2, 1, 0)
            }
            EventKind::ReferencesOpen {} => d.add(&c, "references", slide, "", 1, 0),
            EventKind::IsiOpen {} => d.add(&c, "isi", slide, "", 1, 0),
            EventKind::Answer {
                question_id,
                selected,
                rating,
                text,
                correct,
                ..
            } => {
                d.add(
                    &c,
                    "answer_n",
                    question_id,
                    "",
                    1,
                    i64::from(*correct == Some(true)),
                );
                for s in selected {
                    d.add(&c, "answer", question_id, s, 1, 0);
                }
                if let Some(r) = rating {
                    d.add(&c, "answer", question_id, &format!("rating:{r}"), 1, 0);
                }
                if text.is_some() {
                    d.add(&c, "answer", question_id, "text", 1, 0);
                }
            }
            EventKind::Video {
                component_id,
                action,
                ..
            } => d.add(&c, "video", component_id, action, 1, 0),
            EventKind::Zoom { component_id } => d.add(&c, "zoom", component_id, "", 1, 0),
            EventKind::ChartInteraction {
                component_id,
                action,
                ..
            } => d.add(&c, "chart", component_id, action, 1, 0),
            EventKind::Reaction { value, key_message } => {
                let k1 = match key_message {
                    Some(k) if !k.trim().is_empty() => k.trim().chars().take(200).collect(),
                    _ => format!("slide:{slide}"),
                };
                d.add(&c, "reaction", &k1, &value.to_string(), 1, 0)
            }
            EventKind::Question { text } => {
                d.add(&c, "question", &normalise_question(text), "", 1, 0)
            }
            EventKind::VisitRequest { .. } => d.add(&c, "visit_request", "", "", 1, 0),
            EventKind::Consent { granted } => d.add(&c, "consent", "", &granted.to_string(), 1, 0),
            EventKind::SessionEnd { .. } => {
                d.add(&c, "sess_end", "", "", 1, 0);
                if let Some(items) = sessions.get(&row.session_id) {
                    session_rollups(&mut d, &c, items);
                }
            }
            EventKind::PopupClose { .. }
            | EventKind::IsiScroll { .. }
            | EventKind::Visibility { .. }
            | EventKind::RuntimeError { .. } => {}
        }
    }
    d
}

fn session_rollups(d: &mut Deltas, c: &Ctx<'_>, items: &[SessionItem]) {
    let mut views: Vec<&SessionItem> = items
        .iter()
        .filter(|i| i.etype == "slide_view" && i.val == Some(1) && i.slide_id.is_some())
        .collect();
    views.sort_by_key(|i| (i.ord.unwrap_or(i64::MAX), i.seq));
    let mut seen = BTreeSet::new();
    for v in &views {
        if let Some(s) = &v.slide_id
            && seen.insert(s.as_str())
        {
            d.add(c, "sess_slide", s, "", 1, 0);
        }
    }
    if views.is_empty() {
        return;
    }
    let mut path: Vec<&str> = Vec::new();
    for v in &views {
        let s = v.slide_id.as_deref().unwrap_or("");
        if path.last() != Some(&s) {
            path.push(s);
        }
        if path.len() == PATH_LEN {
            break;
        }
    }
    let positive = items
        .iter()
        .any(|i| i.etype == "reaction" && i.val == Some(1));
    d.add(
        c,
        "path",
        &path.join(" > "),
        if positive { "pos" } else { "other" },
        1,
        0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(dwell_bucket(0), 0);
        assert_eq!(dwell_bucket(999), 0);
        assert_eq!(dwell_bucket(1000), 1);
        assert_eq!(dwell_bucket(10_000_000), DWELL_BUCKETS_MS.len());
        assert_eq!(bucket_bounds(0), (0, 1000));
        assert_eq!(bucket_bounds(14), (300_000, 600_000));
    }

    #[test]
    fn questions_normalise() {
        assert_eq!(
            normalise_question("  What   about\nRenal  dosing? "),
            "what about renal dosing?"
        );
    }
}
