//! Text renderings of insights for `edetail insights`: aligned tables or CSV, one
//! section at a time or all of them.

use crate::directory::csv_field;
use crate::insights::{DeckReport, Overview};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

pub struct Section {
    pub name: &'static str,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

fn ms(x: Option<i64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

fn f1(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.1}")).unwrap_or_default()
}

pub fn overview_sections(o: &Overview) -> Vec<Section> {
    vec![
        Section {
            name: "decks",
            headers: vec![
                "deck_id",
                "title",
                "versions",
                "reach",
                "sessions",
                "views",
                "mr_led_sessions",
                "remote_sessions",
                "self_serve_sessions",
            ],
            rows: o
                .decks
                .iter()
                .map(|d| {
                    vec![
                        d.deck_id.clone(),
                        d.title.clone(),
                        d.versions.join(" "),
                        d.reach.to_string(),
                        d.sessions.to_string(),
                        d.views.to_string(),
                        d.mr_led_sessions.to_string(),
                        d.remote_sessions.to_string(),
                        d.self_serve_sessions.to_string(),
                    ]
                })
                .collect(),
        },
        Section {
            name: "trend",
            headers: vec!["day", "sessions", "views"],
            rows: o
                .trend
                .iter()
                .map(|t| vec![t.day.clone(), t.sessions.to_string(), t.views.to_string()])
                .collect(),
        },
    ]
}

/// The audit log as one section (time in UTC, newest first as given).
pub fn audit_sections(rows: &[crate::storage::AuditEntry]) -> Vec<Section> {
    vec![Section {
        name: "audit",
        headers: vec!["id", "time", "action", "actor", "target", "outcome"],
        rows: rows
            .iter()
            .map(|a| {
                vec![
                    a.id.to_string(),
                    crate::util::iso_datetime(a.at),
                    a.action.clone(),
                    a.actor.clone(),
                    a.target.clone(),
                    a.outcome.clone(),
                ]
            })
            .collect(),
    }]
}

pub fn deck_sections(r: &DeckReport) -> Vec<Section> {
    vec![
        Section {
            name: "summary",
            headers: vec![
                "deck_id",
                "title",
                "versions",
                "reach",
                "sessions",
                "ended_sessions",
                "views",
                "visit_requests",
                "open_sessions",
                "closed_up_to",
            ],
            rows: vec![vec![
                r.deck_id.clone(),
                r.title.clone(),
                r.versions.join(" "),
                r.reach.to_string(),
                r.sessions.to_string(),
                r.ended_sessions.to_string(),
                r.views.to_string(),
                r.visit_requests.to_string(),
                r.open_sessions.to_string(),
                r.closed_up_to_ms
                    .map(crate::util::iso_datetime)
                    .unwrap_or_default(),
            ]],
        },
        Section {
            name: "slides",
            headers: vec![
                "pos",
                "slide_id",
                "title",
                "key_message",
                "views",
                "median_dwell_ms",
                "mean_dwell_ms",
                "sessions_reached",
                "reached_pct",
            ],
            rows: r
                .slides
                .iter()
                .map(|s| {
                    vec![
                        s.flow_pos.map_or_else(
                            || {
                                if s.detail {
                                    "detail".into()
                                } else {
                                    String::new()
                                }
                            },
                            |p| p.to_string(),
                        ),
                        s.slide_id.clone(),
                        s.title.clone(),
                        s.key_message.clone().unwrap_or_default(),
                        s.views.to_string(),
                        ms(s.dwell_median_ms),
                        ms(s.dwell_mean_ms),
                        s.sessions_reached.to_string(),
                        f1(s.reached_pct),
                    ]
                })
                .collect(),
        },
        Section {
            name: "links",
            headers: vec![
                "slide_id",
                "component_id",
                "target",
                "drilldown",
                "follows",
                "rate_pct",
            ],
            rows: r
                .links
                .iter()
                .map(|l| {
                    vec![
                        l.slide_id.clone(),
                        l.component_id.clone(),
                        l.target.clone(),
                        l.drilldown.to_string(),
                        l.follows.to_string(),
                        f1(l.rate.map(|x| x * 100.0)),
                    ]
                })
                .collect(),
        },
        Section {
            name: "interactions",
            headers: vec!["kind", "where", "detail", "count"],
            rows: r
                .interactions
                .iter()
                .map(|i| {
                    vec![
                        i.kind.clone(),
                        i.key.clone(),
                        i.detail.clone(),
                        i.count.to_string(),
                    ]
                })
                .collect(),
        },
        Section {
            name: "answers",
            headers: vec![
                "question_id",
                "purpose",
                "prompt",
                "answers",
                "correct",
                "option",
                "label",
                "count",
            ],
            rows: r
                .questions
                .iter()
                .flat_map(|q| {
                    q.options.iter().map(move |o| {
                        vec![
                            q.question_id.clone(),
                            q.purpose.clone(),
                            q.prompt.clone(),
                            q.answers.to_string(),
                            q.correct.to_string(),
                            o.option.clone(),
                            o.label.clone(),
                            o.count.to_string(),
                        ]
                    })
                })
                .collect(),
        },
        Section {
            name: "reactions",
            headers: vec!["key_message", "negative", "neutral", "positive"],
            rows: r
                .reactions
                .iter()
                .map(|x| {
                    vec![
                        x.key_message.clone(),
                        x.negative.to_string(),
                        x.neutral.to_string(),
                        x.positive.to_string(),
                    ]
                })
                .collect(),
        },
        Section {
            name: "channels",
            headers: vec!["channel", "sessions", "views", "reach"],
            rows: r
                .channels
                .iter()
                .map(|c| {
                    vec![
                        c.channel.clone(),
                        c.sessions.to_string(),
                        c.views.to_string(),
                        c.reach.to_string(),
                    ]
                })
                .collect(),
        },
        Section {
            name: "trend",
            headers: vec!["day", "sessions", "views"],
            rows: r
                .trend
                .iter()
                .map(|t| vec![t.day.clone(), t.sessions.to_string(), t.views.to_string()])
                .collect(),
        },
        Section {
            name: "paths",
            headers: vec!["path", "positive_sessions", "sessions"],
            rows: r
                .paths
                .iter()
                .map(|p| {
                    vec![
                        p.path.join(" > "),
                        p.positive_sessions.to_string(),
                        p.sessions.to_string(),
                    ]
                })
                .collect(),
        },
        Section {
            name: "questions",
            headers: vec!["question", "count"],
            rows: r
                .hcp_questions
                .iter()
                .map(|q| vec![q.text.clone(), q.count.to_string()])
                .collect(),
        },
    ]
}

pub fn render(sections: &[Section], only: Option<&str>, format: Format) -> Result<String, String> {
    let chosen: Vec<&Section> = match only {
        None | Some("all") => sections.iter().collect(),
        Some(name) => {
            let s: Vec<&Section> = sections.iter().filter(|s| s.name == name).collect();
            if s.is_empty() {
                return Err(format!(
                    "no section `{name}`; sections: {}",
                    sections
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            s
        }
    };
    let mut out = String::new();
    for (i, s) in chosen.iter().enumerate() {
        match format {
            Format::Csv => {
                if chosen.len() > 1 {
                    if i > 0 {
                        out.push('\n');
                    }
                    out.push_str(&format!("# {}\n", s.name));
                }
                out.push_str(&s.headers.join(","));
                out.push('\n');
                for r in &s.rows {
                    out.push_str(&r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
                    out.push('\n');
                }
            }
            Format::Table | Format::Json => {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&format!("== {} ==\n", s.name));
                out.push_str(&table(&s.headers, &s.rows));
            }
        }
    }
    Ok(out)
}

fn width(s: &str) -> usize {
    s.chars().count()
}

pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "(no data)\n".into();
    }
    let mut w: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(width(c).min(48));
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let c: String = c.chars().take(48).collect();
            let pad = w[i].saturating_sub(width(&c));
            let numeric = !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_digit() || ch == '.' || ch == '-');
            if numeric {
                s.push_str(&" ".repeat(pad));
                s.push_str(&c);
            } else {
                s.push_str(&c);
                s.push_str(&" ".repeat(pad));
            }
            if i + 1 < cells.len() {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(w.iter().map(|n| "-".repeat(*n)).collect()));
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

/// Pretty JSON of any insight structure.
pub fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
