//! Insights computed from the rollups (never from raw events): an overview of decks
//! and a per-deck report. The same structures feed the JSON API, the HTML dashboard
//! and `edetail insights`.
//!
//! Median dwell: the rollup keeps a histogram of counted slide views per dwell bucket
//! ([`crate::rollup::DWELL_BUCKETS_MS`]); the median is found by walking the cumulative
//! counts to the bucket holding the middle view and interpolating linearly inside it.
//! It is exact to within one bucket's width. The mean is exact (summed dwell / views).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use edetail_format::{Bundle, Component};
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::app::AppState;
use crate::rollup::bucket_bounds;
use crate::storage::{AggRow, Filter, GroupBy};
use crate::util::{day_of_iso, iso_of_day};

/// Query-string filters (`?deck=&version=&from=YYYY-MM-DD&to=&channel=&territory=&specialty=&region=&institution=&segment=`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct FilterParams {
    pub deck: Option<String>,
    pub version: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub channel: Option<String>,
    pub territory: Option<String>,
    pub specialty: Option<String>,
    pub region: Option<String>,
    pub institution: Option<String>,
    pub segment: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
}

impl FilterParams {
    pub fn to_filter(&self) -> Result<Filter, ApiError> {
        let day = |s: &Option<String>, name: &str| -> Result<Option<i32>, ApiError> {
            match nonempty(s) {
                None => Ok(None),
                Some(v) => day_of_iso(&v).map(Some).ok_or_else(|| {
                    ApiError::bad_request(format!("`{name}` must be YYYY-MM-DD, got `{v}`"))
                }),
            }
        };
        let channel = nonempty(&self.channel);
        if let Some(c) = &channel
            && !["mr_led", "remote", "self_serve"].contains(&c.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "`channel` must be mr_led, remote or self_serve, got `{c}`"
            )));
        }
        Ok(Filter {
            deck: nonempty(&self.deck),
            version: nonempty(&self.version),
            from_day: day(&self.from, "from")?,
            to_day: day(&self.to, "to")?,
            channel,
            territory: nonempty(&self.territory),
            specialty: nonempty(&self.specialty),
            region: nonempty(&self.region),
            institution: nonempty(&self.institution),
            segment: nonempty(&self.segment),
        })
    }

    /// Query string of the non-empty filters (for links).
    pub fn query_string(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("deck", &self.deck),
            ("version", &self.version),
            ("from", &self.from),
            ("to", &self.to),
            ("channel", &self.channel),
            ("territory", &self.territory),
            ("specialty", &self.specialty),
            ("region", &self.region),
            ("institution", &self.institution),
            ("segment", &self.segment),
        ] {
            if let Some(v) = nonempty(v) {
                parts.push(format!("{k}={}", crate::util::url_encode(&v)));
            }
        }
        parts.join("&")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeckSummary {
    pub deck_id: String,
    pub title: String,
    pub versions: Vec<String>,
    pub reach: i64,
    pub sessions: i64,
    pub views: i64,
    pub mr_led_sessions: i64,
    pub remote_sessions: i64,
    pub self_serve_sessions: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overview {
    pub decks: Vec<DeckSummary>,
    pub trend: Vec<TrendPoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlideStat {
    pub slide_id: String,
    pub title: String,
    pub key_message: Option<String>,
    pub detail: bool,
    /// 1-based position in the main flow.
    pub flow_pos: Option<usize>,
    pub views: i64,
    pub dwell_mean_ms: Option<i64>,
    pub dwell_median_ms: Option<i64>,
    /// Closed sessions that viewed this slide.
    pub sessions_reached: i64,
    /// `sessions_reached` / closed sessions (drop-off along the flow).
    pub reached_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkStat {
    pub slide_id: String,
    pub component_id: String,
    pub target: String,
    pub drilldown: bool,
    pub follows: i64,
    /// Follows per counted view of the slide holding the link.
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InteractionStat {
    /// `popup`, `tab`, `isi`, `citation`, `references`, `video`, `zoom`, `chart`, `build_step`.
    pub kind: String,
    pub key: String,
    pub detail: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptionStat {
    pub option: String,
    pub label: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuestionStat {
    pub question_id: String,
    pub prompt: String,
    pub purpose: String,
    pub answers: i64,
    /// Quizzes: answers marked correct.
    pub correct: i64,
    pub options: Vec<OptionStat>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReactionStat {
    pub key_message: String,
    pub negative: i64,
    pub neutral: i64,
    pub positive: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelStat {
    pub channel: String,
    pub sessions: i64,
    pub views: i64,
    pub reach: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrendPoint {
    pub day: String,
    pub sessions: i64,
    pub views: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathStat {
    pub path: Vec<String>,
    /// Closed sessions that followed this path and had a positive reaction.
    pub positive_sessions: i64,
    pub sessions: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountStat {
    pub text: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeckReport {
    pub deck_id: String,
    pub title: String,
    /// Version whose bundle labels the report.
    pub labels_from: Option<String>,
    pub versions: Vec<String>,
    pub sessions: i64,
    /// Closed sessions (ended, or idle past the timeout): the drop-off denominator.
    pub ended_sessions: i64,
    /// Sessions (all decks) with events not yet in drop-off and paths: open, or closed
    /// and since extended by late events. See [`crate::sessions`].
    #[serde(default)]
    pub open_sessions: i64,
    /// Every session whose last event was received before this time (ms since the
    /// epoch) is in drop-off and paths; none when no session is open.
    #[serde(default)]
    pub closed_up_to_ms: Option<i64>,
    pub views: i64,
    pub reach: i64,
    pub visit_requests: i64,
    pub slides: Vec<SlideStat>,
    pub links: Vec<LinkStat>,
    pub interactions: Vec<InteractionStat>,
    pub questions: Vec<QuestionStat>,
    pub reactions: Vec<ReactionStat>,
    pub channels: Vec<ChannelStat>,
    pub trend: Vec<TrendPoint>,
    pub paths: Vec<PathStat>,
    pub hcp_questions: Vec<CountStat>,
}

/// Median from a dwell histogram (bucket index -> count), interpolated in the bucket.
pub fn median_from_hist(hist: &BTreeMap<usize, i64>) -> Option<i64> {
    let total: i64 = hist.values().sum();
    if total <= 0 {
        return None;
    }
    let half = total as f64 / 2.0;
    let mut cum = 0f64;
    for (b, n) in hist {
        let n = *n as f64;
        if cum + n >= half && n > 0.0 {
            let (lo, hi) = bucket_bounds(*b);
            let frac = (half - cum) / n;
            return Some(lo + ((hi - lo) as f64 * frac).round() as i64);
        }
        cum += n;
    }
    None
}

fn total(rows: &[AggRow]) -> i64 {
    rows.iter().map(|r| r.n).sum()
}

fn by_key(rows: &[AggRow]) -> HashMap<String, (i64, i64)> {
    let mut m = HashMap::new();
    for r in rows {
        let e = m.entry(r.keys[0].clone()).or_insert((0, 0));
        e.0 += r.n;
        e.1 += r.s;
    }
    m
}

fn trend(sessions: &[AggRow], views: &[AggRow]) -> Vec<TrendPoint> {
    let mut m: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for r in sessions {
        if let Ok(d) = r.keys[0].parse::<i32>() {
            m.entry(d).or_default().0 += r.n;
        }
    }
    for r in views {
        if let Ok(d) = r.keys[0].parse::<i32>() {
            m.entry(d).or_default().1 += r.n;
        }
    }
    m.into_iter()
        .map(|(d, (s, v))| TrendPoint {
            day: iso_of_day(d),
            sessions: s,
            views: v,
        })
        .collect()
}

pub async fn overview(st: &AppState, f: &Filter) -> Result<Overview, ApiError> {
    let store = &st.store;
    let (sessions, views, reach, chan, tsess, tviews, versions) = tokio::join!(
        store.rollup("session", f, GroupBy::Deck),
        store.rollup("view", f, GroupBy::Deck),
        store.reach(f, GroupBy::Deck),
        async {
            // Sessions per deck and channel: one query per channel keeps GroupBy simple.
            let mut out = HashMap::new();
            for ch in ["mr_led", "remote", "self_serve"] {
                let mut g = f.clone();
                g.channel = Some(ch.to_string());
                if f.channel.as_deref().is_some_and(|c| c != ch) {
                    continue;
                }
                out.insert(ch, store.rollup("session", &g, GroupBy::Deck).await?);
            }
            Ok::<_, crate::storage::StoreError>(out)
        },
        store.rollup("session", f, GroupBy::Day),
        store.rollup("view", f, GroupBy::Day),
        store.versions(),
    );
    let (sessions, views, reach, chan, versions) = (
        by_key(&sessions?),
        by_key(&views?),
        by_key(&reach?),
        chan?,
        versions?,
    );
    let mut decks: BTreeMap<String, DeckSummary> = BTreeMap::new();
    for v in &versions {
        let d = decks
            .entry(v.deck_id.clone())
            .or_insert_with(|| DeckSummary {
                deck_id: v.deck_id.clone(),
                title: v.title.clone(),
                versions: vec![],
                reach: 0,
                sessions: 0,
                views: 0,
                mr_led_sessions: 0,
                remote_sessions: 0,
                self_serve_sessions: 0,
            });
        d.title = v.title.clone();
        d.versions.push(v.version.clone());
    }
    let ids: Vec<String> = decks
        .keys()
        .cloned()
        .chain(sessions.keys().cloned())
        .chain(views.keys().cloned())
        .collect();
    for id in ids {
        if f.deck.as_ref().is_some_and(|d| *d != id) {
            continue;
        }
        let d = decks.entry(id.clone()).or_insert_with(|| DeckSummary {
            deck_id: id.clone(),
            title: id.clone(),
            versions: vec![],
            reach: 0,
            sessions: 0,
            views: 0,
            mr_led_sessions: 0,
            remote_sessions: 0,
            self_serve_sessions: 0,
        });
        d.sessions = sessions.get(&id).map_or(0, |x| x.0);
        d.views = views.get(&id).map_or(0, |x| x.0);
        d.reach = reach.get(&id).map_or(0, |x| x.0);
        let ch = |c: &str| {
            chan.get(c)
                .map(|rows| by_key(rows).get(&id).map_or(0, |x| x.0))
                .unwrap_or(0)
        };
        d.mr_led_sessions = ch("mr_led");
        d.remote_sessions = ch("remote");
        d.self_serve_sessions = ch("self_serve");
    }
    let mut list: Vec<DeckSummary> = decks
        .into_values()
        .filter(|d| f.deck.as_ref().is_none_or(|x| *x == d.deck_id))
        .collect();
    list.sort_by(|a, b| b.reach.cmp(&a.reach).then(a.deck_id.cmp(&b.deck_id)));
    Ok(Overview {
        decks: list,
        trend: trend(&tsess?, &tviews?),
    })
}

/// The bundle labelling a deck report: the filtered version, else the latest published.
async fn label_bundle(
    st: &AppState,
    deck: &str,
    version: Option<&str>,
) -> Option<(String, Arc<Bundle>)> {
    let versions = st.store.versions().await.ok()?;
    let v = versions
        .iter()
        .filter(|v| v.deck_id == deck && version.is_none_or(|x| x == v.version))
        .max_by_key(|v| v.published_at)?;
    let b = st.bundle(&v.bundle_hash).await.ok()??;
    Some((v.version.clone(), b))
}

/// (id, title, key message, detail, flow position)
type SlideRow = (String, String, Option<String>, bool, Option<usize>);

pub async fn deck_report(st: &AppState, f: &Filter) -> Result<DeckReport, ApiError> {
    let deck = f
        .deck
        .clone()
        .ok_or_else(|| ApiError::bad_request("`deck` is required"))?;
    let s = &st.store;
    // Read before the rollups: every session it reports closed is in them.
    let status = s.session_status().await?;
    let (views, hist, sess_slide, sess_end, sessions, links, answers_n, answers, reactions) = tokio::join!(
        s.rollup("view", f, GroupBy::K1),
        s.rollup("dwell_hist", f, GroupBy::K1K2),
        s.rollup("sess_slide", f, GroupBy::K1),
        s.rollup("sess_end", f, GroupBy::K1),
        s.rollup("session", f, GroupBy::Channel),
        s.rollup("link", f, GroupBy::K1K2),
        s.rollup("answer_n", f, GroupBy::K1),
        s.rollup("answer", f, GroupBy::K1K2),
        s.rollup("reaction", f, GroupBy::K1K2),
    );
    let (views_ch, reach_ch, tsess, tviews, paths, hq, visits, reach_all, labels) = tokio::join!(
        s.rollup("view", f, GroupBy::Channel),
        s.reach(f, GroupBy::Channel),
        s.rollup("session", f, GroupBy::Day),
        s.rollup("view", f, GroupBy::Day),
        s.rollup("path", f, GroupBy::K1K2),
        s.rollup("question", f, GroupBy::K1),
        s.rollup("visit_request", f, GroupBy::K1),
        s.reach(f, GroupBy::Deck),
        label_bundle(st, &deck, f.version.as_deref()),
    );
    let mut inter = Vec::new();
    for kind in [
        "popup",
        "tab",
        "isi",
        "citation",
        "references",
        "video",
        "zoom",
        "chart",
        "build_step",
    ] {
        for r in s.rollup(kind, f, GroupBy::K1K2).await? {
            inter.push(InteractionStat {
                kind: kind.to_string(),
                key: r.keys[0].clone(),
                detail: r.keys[1].clone(),
                count: r.n,
            });
        }
    }
    inter.sort_by(|a, b| b.count.cmp(&a.count).then(a.kind.cmp(&b.kind)));
    let views = by_key(&views?);
    let sess_slide = by_key(&sess_slide?);
    let ended = total(&sess_end?);
    let (labels_from, bundle) = match labels {
        Some((v, b)) => (Some(v), Some(b)),
        None => (None, None),
    };
    let versions: Vec<String> = s
        .versions()
        .await?
        .into_iter()
        .filter(|v| v.deck_id == deck)
        .map(|v| v.version)
        .collect();

    // Slides: flow order from the bundle, then details, then ids only seen in events.
    let mut hists: HashMap<String, BTreeMap<usize, i64>> = HashMap::new();
    for r in hist? {
        if let Ok(b) = r.keys[1].parse::<usize>() {
            *hists
                .entry(r.keys[0].clone())
                .or_default()
                .entry(b)
                .or_default() += r.n;
        }
    }
    let mut order: Vec<SlideRow> = Vec::new();
    if let Some(b) = &bundle {
        let flow: Vec<&str> = b.flow_ids().collect();
        for (i, id) in flow.iter().enumerate() {
            if let Some(sl) = b.slide(id) {
                order.push((
                    sl.id.clone(),
                    sl.title.clone(),
                    sl.key_message.clone(),
                    false,
                    Some(i + 1),
                ));
            }
        }
        for sl in b.slides.iter().filter(|s| !flow.contains(&s.id.as_str())) {
            order.push((
                sl.id.clone(),
                sl.title.clone(),
                sl.key_message.clone(),
                true,
                None,
            ));
        }
    }
    let mut extra: Vec<&String> = views
        .keys()
        .filter(|k| !order.iter().any(|o| &o.0 == *k))
        .collect();
    extra.sort();
    for id in extra {
        order.push((id.clone(), id.clone(), None, false, None));
    }
    let slides = order
        .into_iter()
        .map(|(id, title, km, detail, pos)| {
            let (n, dwell) = views.get(&id).copied().unwrap_or((0, 0));
            let reached = sess_slide.get(&id).map_or(0, |x| x.0);
            SlideStat {
                dwell_mean_ms: (n > 0).then(|| dwell / n),
                dwell_median_ms: hists.get(&id).and_then(median_from_hist),
                views: n,
                sessions_reached: reached,
                reached_pct: (ended > 0).then(|| reached as f64 * 100.0 / ended as f64),
                slide_id: id,
                title,
                key_message: km,
                detail,
                flow_pos: pos,
            }
        })
        .collect();

    let mut link_stats: Vec<LinkStat> = links?
        .into_iter()
        .map(|r| {
            let (drill, rest) = match r.keys[1].strip_prefix("d:") {
                Some(x) => (true, x.to_string()),
                None => (false, r.keys[1].clone()),
            };
            let (comp, target) = rest
                .split_once('\u{2192}')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .unwrap_or((rest.clone(), String::new()));
            let v = views.get(&r.keys[0]).map_or(0, |x| x.0);
            LinkStat {
                slide_id: r.keys[0].clone(),
                component_id: comp,
                target,
                drilldown: drill,
                follows: r.n,
                rate: (v > 0).then(|| r.n as f64 / v as f64),
            }
        })
        .collect();
    link_stats.sort_by_key(|l| std::cmp::Reverse(l.follows));

    // Questions: prompts and option labels from the bundle.
    let mut qmeta: HashMap<String, (String, String, HashMap<String, String>)> = HashMap::new();
    if let Some(b) = &bundle {
        for sl in &b.slides {
            for c in &sl.components {
                if let Component::Question {
                    id,
                    purpose,
                    prompt,
                    options,
                    ..
                } = c
                {
                    let p = serde_json::to_value(purpose)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default();
                    qmeta.insert(
                        id.clone(),
                        (
                            prompt.clone(),
                            p,
                            options
                                .iter()
                                .map(|o| (o.id.clone(), o.label.clone()))
                                .collect(),
                        ),
                    );
                }
            }
        }
    }
    let mut opts: HashMap<String, Vec<OptionStat>> = HashMap::new();
    for r in answers? {
        let label = qmeta
            .get(&r.keys[0])
            .and_then(|m| m.2.get(&r.keys[1]).cloned())
            .unwrap_or_else(|| r.keys[1].clone());
        opts.entry(r.keys[0].clone()).or_default().push(OptionStat {
            option: r.keys[1].clone(),
            label,
            count: r.n,
        });
    }
    let mut questions: Vec<QuestionStat> = answers_n?
        .into_iter()
        .map(|r| {
            let (prompt, purpose) = qmeta
                .get(&r.keys[0])
                .map(|m| (m.0.clone(), m.1.clone()))
                .unwrap_or_else(|| (r.keys[0].clone(), String::new()));
            let mut options = opts.remove(&r.keys[0]).unwrap_or_default();
            options.sort_by(|a, b| a.option.cmp(&b.option));
            QuestionStat {
                question_id: r.keys[0].clone(),
                prompt,
                purpose,
                answers: r.n,
                correct: r.s,
                options,
            }
        })
        .collect();
    questions.sort_by(|a, b| a.question_id.cmp(&b.question_id));

    let mut rx: BTreeMap<String, ReactionStat> = BTreeMap::new();
    for r in reactions? {
        let e = rx.entry(r.keys[0].clone()).or_insert_with(|| ReactionStat {
            key_message: r.keys[0].clone(),
            negative: 0,
            neutral: 0,
            positive: 0,
        });
        match r.keys[1].as_str() {
            "-1" => e.negative += r.n,
            "0" => e.neutral += r.n,
            "1" => e.positive += r.n,
            _ => {}
        }
    }
    let sessions_ch = by_key(&sessions?);
    let views_ch = by_key(&views_ch?);
    let reach_ch = by_key(&reach_ch?);
    let channels = ["mr_led", "remote", "self_serve"]
        .iter()
        .map(|c| ChannelStat {
            channel: c.to_string(),
            sessions: sessions_ch.get(*c).map_or(0, |x| x.0),
            views: views_ch.get(*c).map_or(0, |x| x.0),
            reach: reach_ch.get(*c).map_or(0, |x| x.0),
        })
        .collect();

    let mut pm: HashMap<String, (i64, i64)> = HashMap::new();
    for r in paths? {
        let e = pm.entry(r.keys[0].clone()).or_default();
        e.1 += r.n;
        if r.keys[1] == "pos" {
            e.0 += r.n;
        }
    }
    let mut paths: Vec<PathStat> = pm
        .into_iter()
        .map(|(p, (pos, all))| PathStat {
            path: p.split(" > ").map(String::from).collect(),
            positive_sessions: pos,
            sessions: all,
        })
        .filter(|p| p.positive_sessions > 0)
        .collect();
    paths.sort_by(|a, b| {
        b.positive_sessions
            .cmp(&a.positive_sessions)
            .then(a.path.cmp(&b.path))
    });
    paths.truncate(10);

    let mut hcp_questions: Vec<CountStat> = hq?
        .into_iter()
        .map(|r| CountStat {
            text: r.keys[0].clone(),
            count: r.n,
        })
        .collect();
    hcp_questions.sort_by(|a, b| b.count.cmp(&a.count).then(a.text.cmp(&b.text)));
    hcp_questions.truncate(50);

    let sessions_total: i64 = sessions_ch.values().map(|x| x.0).sum();
    let views_total: i64 = views.values().map(|x| x.0).sum();
    Ok(DeckReport {
        title: bundle
            .as_ref()
            .map_or_else(|| deck.clone(), |b| b.deck.title.clone()),
        deck_id: deck,
        labels_from,
        versions,
        sessions: sessions_total,
        ended_sessions: ended,
        open_sessions: status.open,
        closed_up_to_ms: status.oldest_open_ms,
        views: views_total,
        reach: total(&reach_all?),
        visit_requests: total(&visits?),
        slides,
        links: link_stats,
        interactions: inter,
        questions,
        reactions: rx.into_values().collect(),
        channels,
        trend: trend(&tsess?, &tviews?),
        paths,
        hcp_questions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_interpolates_in_bucket() {
        // 10 views all in bucket 1 (1000..2000 ms): the median is the bucket midpoint.
        let h: BTreeMap<usize, i64> = [(1, 10)].into_iter().collect();
        assert_eq!(median_from_hist(&h), Some(1500));
        // 1 view in bucket 0, 3 in bucket 2 (2000..3000): half = 2, one below, so
        // 1/3 into bucket 2.
        let h: BTreeMap<usize, i64> = [(0, 1), (2, 3)].into_iter().collect();
        assert_eq!(median_from_hist(&h), Some(2333));
        assert_eq!(median_from_hist(&BTreeMap::new()), None);
    }

    #[test]
    fn bad_filters_are_refused() {
        let p = FilterParams {
            from: Some("2024-02-30x".into()),
            ..Default::default()
        };
        assert!(p.to_filter().is_err());
        let p = FilterParams {
            channel: Some("fax".into()),
            ..Default::default()
        };
        assert!(p.to_filter().is_err());
    }
}
