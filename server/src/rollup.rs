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
//! Session-level rollups (`sess_end`, `sess_slide`, `path`: slides reached per session
//! for drop-off, the path followed and whether the call had a positive reaction) are
//! computed from the session's stored events when the session is *closed*: in the
//! ingest transaction when its `session_end` arrives, or by the background job
//! ([`crate::sessions`]) once no event of it has been received for the idle timeout
//! (default 30 min): tabs closed, iPads locked and killed apps never send an end.
//! What a session contributed is stored with it (`sess` table, a
//! [`SessionContribution`] as JSON); when events arrive after it was closed (an
//! offline device syncing the rest of a call, maybe with its `session_end`), the
//! session is open again and its next closing subtracts the stored contribution and
//! adds the one computed from all its events ([`reclose`]), so the session-level
//! rollups always equal what all the events arriving together would give, and a
//! session is counted once however often it is closed. The contribution's cohort
//! and day are those of the session's first `session_end` (lowest seq), else of its
//! last event (highest seq).
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
//! - `sess_end` (- / -; closed sessions: ended or idle), `sess_slide` (slide / -; closed
//!   sessions that viewed the slide), `path` (first slides in order joined by ` > ` /
//!   `pos`|`other`)

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
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
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
/// physicians; and the sessions with a new `session_end` (to close, [`reclose`]).
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
    cohorts(row.channel, row.territory.as_deref(), hcp)
}

/// The grain-0 cohort (channel only) and the grain-1 cohort (territory and the
/// physician's directory dimensions) of a channel, territory and physician.
fn cohorts(channel: &str, territory: Option<&str>, hcp: Option<&HcpRecord>) -> [Cohort; 2] {
    let coarse = Cohort {
        grain: 0,
        channel: channel.to_string(),
        territory: "*".into(),
        specialty: "*".into(),
        region: "*".into(),
        institution: "*".into(),
        segment: "*".into(),
    };
    let d = hcp.cloned().unwrap_or_default();
    let fine = Cohort {
        grain: 1,
        channel: channel.to_string(),
        territory: territory.unwrap_or_default().to_string(),
        specialty: d.specialty,
        region: d.region,
        institution: d.institution,
        segment: d.segment,
    };
    [coarse, fine]
}

/// The rollup deltas of newly stored, non-preview events.
pub fn compute(rows: &[&EventRow], hcps: &HashMap<String, HcpRecord>) -> Deltas {
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
            // Session-level rollups: when the session is closed ([`reclose`]).
            EventKind::SessionEnd { .. }
            | EventKind::PopupClose { .. }
            | EventKind::IsiScroll { .. }
            | EventKind::Visibility { .. }
            | EventKind::RuntimeError { .. } => {}
        }
    }
    d
}

/// What one closed session adds to the session-level rollups (stored with the session
/// so that closing it again can subtract it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionContribution {
    pub deck: String,
    pub version: String,
    /// Grain-0 and grain-1 cohorts.
    pub cohorts: [Cohort; 2],
    pub day: i32,
    /// Distinct slides with a counted view.
    pub slides: Vec<String>,
    /// The path (first [`PATH_LEN`] slides joined by ` > `) and `pos`|`other`; none
    /// without counted views.
    pub path: Option<(String, String)>,
}

impl SessionContribution {
    /// The hcp whose directory row the cohort needs: see [`session_contribution`].
    pub fn representative(items: &[SessionItem]) -> Option<&SessionItem> {
        items
            .iter()
            .filter(|i| i.etype == "session_end")
            .min_by_key(|i| (i.seq, i.corrected_time))
            .or_else(|| items.iter().max_by_key(|i| (i.seq, i.corrected_time)))
    }
}

/// A session's contribution from its stored (non-preview) events; none without events.
pub fn session_contribution(
    items: &[SessionItem],
    hcps: &HashMap<String, HcpRecord>,
) -> Option<SessionContribution> {
    let rep = SessionContribution::representative(items)?;
    let [coarse, fine] = cohorts(
        &rep.channel,
        rep.territory.as_deref(),
        rep.hcp.as_ref().and_then(|h| hcps.get(h)),
    );
    let mut views: Vec<&SessionItem> = items
        .iter()
        .filter(|i| i.etype == "slide_view" && i.val == Some(1) && i.slide_id.is_some())
        .collect();
    views.sort_by_key(|i| (i.ord.unwrap_or(i64::MAX), i.seq));
    let mut seen = BTreeSet::new();
    let mut slides = Vec::new();
    for v in &views {
        if let Some(s) = &v.slide_id
            && seen.insert(s.as_str())
        {
            slides.push(s.clone());
        }
    }
    let path = (!views.is_empty()).then(|| {
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
        (
            path.join(" > "),
            if positive { "pos" } else { "other" }.to_string(),
        )
    });
    Some(SessionContribution {
        deck: rep.deck.clone(),
        version: rep.version.clone(),
        cohorts: [coarse, fine],
        day: day_of_ms(rep.corrected_time),
        slides,
        path,
    })
}

impl Deltas {
    /// Add (`sign` 1) or subtract (`sign` -1) a session's contribution.
    pub fn add_session(&mut self, c: &SessionContribution, sign: i64) {
        let coh = [
            self.intern_cohort(&c.cohorts[0]),
            self.intern_cohort(&c.cohorts[1]),
        ];
        let put = |d: &mut Deltas, metric: &str, k1: &str, k2: &str| {
            let k = d.key_id(metric, &c.deck, &c.version, k1, k2);
            for h in coh {
                let e = d.rollup.entry((k, h, c.day)).or_insert((0, 0));
                e.0 += sign;
            }
        };
        put(self, "sess_end", "", "");
        for s in &c.slides {
            put(self, "sess_slide", s, "");
        }
        if let Some((p, pos)) = &c.path {
            put(self, "path", p, pos);
        }
    }
}

/// A session's stored closing state.
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    /// The stored contribution (JSON), if the session was closed before.
    pub contrib: Option<String>,
    /// Some of its raw events were deleted by retention: its contribution is kept as is.
    pub frozen: bool,
}

/// Close a session: add to `d` the change from its stored contribution to the one of
/// its events `items` (subtract the old, add the new) and return the contribution to
/// store. A frozen session keeps its stored contribution.
pub fn reclose(
    d: &mut Deltas,
    state: &SessionState,
    items: &[SessionItem],
    hcps: &HashMap<String, HcpRecord>,
) -> Option<String> {
    if state.frozen {
        return state.contrib.clone();
    }
    let old: Option<SessionContribution> = state.contrib.as_deref().and_then(|j| {
        serde_json::from_str(j)
            .map_err(|e| tracing::warn!(error = %e, "unreadable stored session contribution"))
            .ok()
    });
    let new = session_contribution(items, hcps);
    if old != new {
        if let Some(o) = &old {
            d.add_session(o, -1);
        }
        if let Some(n) = &new {
            d.add_session(n, 1);
        }
    }
    match new {
        Some(n) => serde_json::to_string(&n).ok(),
        None => state.contrib.clone().filter(|_| old.is_none()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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

    fn item(
        etype: &str,
        seq: i64,
        slide: Option<&str>,
        ord: Option<i64>,
        val: Option<i64>,
    ) -> SessionItem {
        SessionItem {
            etype: etype.into(),
            slide_id: slide.map(String::from),
            seq,
            ord,
            val,
            deck: "d".into(),
            version: "1".into(),
            channel: "mr_led".into(),
            territory: Some("T1".into()),
            hcp: None,
            corrected_time: 86_400_000 * 3 + seq,
        }
    }

    /// Net (metric, k1, k2) -> n over both grains of some deltas.
    fn net(d: &Deltas) -> BTreeMap<(String, String, String), i64> {
        let mut m = BTreeMap::new();
        for ((k, _, _), (n, _)) in &d.rollup {
            let k = &d.keys[*k as usize];
            *m.entry((k.metric.clone(), k.k1.clone(), k.k2.clone()))
                .or_insert(0) += n;
        }
        m.retain(|_, n| *n != 0);
        m
    }

    #[test]
    fn closing_again_replaces_the_contribution() {
        let first = vec![
            item("session_start", 0, None, None, None),
            item("slide_view", 1, Some("a"), Some(1), Some(1)),
        ];
        let all = [
            first.clone(),
            vec![
                item("slide_view", 2, Some("b"), Some(2), Some(1)),
                item("reaction", 3, Some("b"), None, Some(1)),
                item("session_end", 4, None, None, None),
            ],
        ]
        .concat();
        let hcps = HashMap::new();
        // Closed with its first events (auto-closed), then again with all of them.
        let mut d = Deltas::default();
        let c1 = reclose(&mut d, &SessionState::default(), &first, &hcps);
        let state = SessionState {
            contrib: c1.clone(),
            frozen: false,
        };
        let c2 = reclose(&mut d, &state, &all, &hcps);
        // Equal to closing it once with all its events.
        let mut once = Deltas::default();
        let c_once = reclose(&mut once, &SessionState::default(), &all, &hcps);
        assert_eq!(net(&d), net(&once));
        assert_eq!(c2, c_once);
        let k = |m: &str, k1: &str, k2: &str| (m.to_string(), k1.to_string(), k2.to_string());
        assert_eq!(
            net(&once),
            BTreeMap::from([
                (k("path", "a > b", "pos"), 2),
                (k("sess_end", "", ""), 2),
                (k("sess_slide", "a", ""), 2),
                (k("sess_slide", "b", ""), 2),
            ])
        );
        // Closing again without new events changes nothing; a frozen session keeps its
        // contribution.
        let mut again = Deltas::default();
        let st = SessionState {
            contrib: c2.clone(),
            frozen: false,
        };
        assert_eq!(reclose(&mut again, &st, &all, &hcps), c2);
        assert!(net(&again).is_empty());
        let frozen = SessionState {
            contrib: c1.clone(),
            frozen: true,
        };
        assert_eq!(reclose(&mut again, &frozen, &all, &hcps), c1);
        assert!(net(&again).is_empty());
        // The session_end fixes the cohort day; without one, the last event does.
        let c: SessionContribution = serde_json::from_str(c1.as_deref().unwrap()).unwrap();
        assert_eq!(c.day, 3);
        assert_eq!(c.cohorts[1].territory, "T1");
    }

    #[test]
    fn questions_normalise() {
        assert_eq!(
            normalise_question("  What   about\nRenal  dosing? "),
            "what about renal dosing?"
        );
    }
}
