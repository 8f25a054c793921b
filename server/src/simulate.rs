//! Traffic simulator: creates device tokens and share links, imports a physician
//! directory and sends weeks of plausible engagement through the real ingest API, in
//! batches of 100, using the decks published on the server (their slides, links,
//! popups and questions come from each deck's `bundle.json`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use edetail_format::Bundle;
use edetail_format::bundle::{Component, QuestionKind, QuestionPurpose};
use edetail_format::event::{Channel, EVENT_SCHEMA_VERSION, Event, EventKind, NavVia};
use edetail_format::ingest::EventStatus;

use crate::app::{ShareRequest, TokenRequest};
use crate::bundles::CatalogEntry;
use crate::client::{Client, ClientError};
use crate::util::now_ms;

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub server: String,
    pub admin_token: String,
    pub reps: usize,
    pub hcps: usize,
    pub days: u32,
    /// Deck ids to use; empty = every deck in the catalog.
    pub decks: Vec<String>,
    pub seed: u64,
    pub batch_size: usize,
    /// Concurrent senders.
    pub senders: usize,
    /// Calls per rep per working day (mean).
    pub calls_per_day: f64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            server: "http://127.0.0.1:8080".into(),
            admin_token: String::new(),
            reps: 10,
            hcps: 200,
            days: 30,
            decks: vec![],
            seed: 42,
            batch_size: 100,
            senders: 4,
            calls_per_day: 4.0,
        }
    }
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SimReport {
    pub sessions: u64,
    pub events: u64,
    pub batches: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub retries: u64,
    pub elapsed_ms: u64,
    pub device_tokens: usize,
    pub share_links: usize,
}

/// SplitMix64: small, seedable, good enough for synthetic traffic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn f(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }
    /// Log-normal with the given median (ms) and spread.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        // Box-Muller.
        let u1 = self.f().max(1e-12);
        let u2 = self.f();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median * (sigma * z).exp()
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

const SPECIALTIES: &[&str] = &[
    "Cardiology",
    "Endocrinology",
    "Nephrology",
    "General practice",
    "Internal medicine",
];
const REGIONS: &[&str] = &["Seoul", "Busan", "Incheon", "Daegu", "Gwangju"];
const SEGMENTS: &[&str] = &["A", "B", "C"];
const QUESTIONS: &[&str] = &[
    "What is the dose in renal impairment?",
    "Can it be combined with metformin?",
    "What about patients over 75?",
    "Is there data on hypoglycaemia risk?",
    "How does it compare with the current standard of care?",
    "Is it reimbursed?",
    "What are the most common adverse events?",
];

/// The physician directory the simulator imports (CSV), deterministic in `hcps`.
pub fn directory_csv(hcps: usize) -> String {
    let mut s = String::from("id,specialty,institution,region,segment\n");
    for i in 0..hcps {
        let region = REGIONS[i % REGIONS.len()];
        s.push_str(&format!(
            "HCP-{i:05},{},{} Hospital {},{region},{}\n",
            SPECIALTIES[(i / 5) % SPECIALTIES.len()],
            region,
            (i / 25) % 8 + 1,
            SEGMENTS[(i * 7 / 3) % SEGMENTS.len()]
        ));
    }
    s
}

struct Deck {
    entry: CatalogEntry,
    bundle: Bundle,
}

struct Actor {
    token: String,
    rep: Option<String>,
    device: String,
}

fn uuid_at(ms: i64, rng: &mut Rng) -> String {
    let mut b = [0u8; 16];
    let ms = ms.max(0) as u64;
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6..].copy_from_slice(
        &rng.next_u64().to_be_bytes()[..8]
            .iter()
            .chain(&rng.next_u64().to_be_bytes()[..2])
            .copied()
            .collect::<Vec<u8>>(),
    );
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

struct SessionGen<'a> {
    rng: &'a mut Rng,
    deck: &'a Deck,
    session: String,
    seq: u64,
    t: i64,
    channel: Channel,
    rep: Option<String>,
    hcp: Option<String>,
    device: String,
    out: Vec<Event>,
}

impl SessionGen<'_> {
    fn push(&mut self, slide: Option<&str>, kind: EventKind) {
        let slide_hash = slide
            .and_then(|s| self.deck.bundle.slide(s))
            .map(|s| s.content_hash.clone());
        let id = uuid_at(self.t, self.rng);
        self.out.push(Event {
            id,
            schema_version: EVENT_SCHEMA_VERSION,
            session_id: self.session.clone(),
            seq: self.seq,
            client_time: self.t,
            deck_id: self.deck.entry.deck_id.clone(),
            deck_version: self.deck.entry.version.clone(),
            bundle_hash: self.deck.entry.bundle_hash.clone(),
            slide_id: slide.map(String::from),
            slide_hash,
            channel: self.channel,
            rep_id: self.rep.clone(),
            hcp_id: self.hcp.clone(),
            device_id: self.device.clone(),
            preview: false,
            kind,
        });
        self.seq += 1;
        self.t += 50;
    }

    fn view(&mut self, slide: &str, order: &mut u32, via: NavVia, interest: f64) {
        let self_serve = self.channel == Channel::SelfServe;
        let median = if self_serve { 6_000.0 } else { 11_000.0 } * interest;
        let dwell = self.rng.lognormal(median, 0.7).clamp(300.0, 900_000.0) as u64;
        let enter = self.t;
        *order += 1;
        let o = *order;
        // Interactions on the slide, from its components.
        let comps = self
            .deck
            .bundle
            .slide(slide)
            .map(|s| s.components.clone())
            .unwrap_or_default();
        let mut follow: Option<String> = None;
        for c in &comps {
            match c {
                Component::Popup { id, .. } if self.rng.chance(0.25 * interest) => {
                    self.t += 1500;
                    self.push(
                        Some(slide),
                        EventKind::PopupOpen {
                            component_id: id.clone(),
                        },
                    );
                    self.t += 4000;
                    self.push(
                        Some(slide),
                        EventKind::PopupClose {
                            component_id: id.clone(),
                            open_ms: 4000,
                        },
                    );
                }
                Component::Tabs { id, tabs, .. } if !tabs.is_empty() && self.rng.chance(0.4) => {
                    let tab = self.rng.pick(tabs).id.clone();
                    self.push(
                        Some(slide),
                        EventKind::TabSelect {
                            component_id: id.clone(),
                            tab_id: tab,
                        },
                    );
                }
                Component::Question {
                    id,
                    purpose,
                    kind,
                    options,
                    correct,
                    scale,
                    ..
                } if self.rng.chance(0.6) => {
                    let purpose_s = match purpose {
                        QuestionPurpose::Quiz => "quiz",
                        QuestionPurpose::Poll => "poll",
                        QuestionPurpose::Survey => "survey",
                    };
                    let mut selected = vec![];
                    let mut rating = None;
                    let mut text = None;
                    match kind {
                        QuestionKind::Single | QuestionKind::Multiple if !options.is_empty() => {
                            // Quizzes: the correct option is chosen 65% of the time.
                            let pick = if !correct.is_empty() && self.rng.chance(0.65) {
                                correct[0].clone()
                            } else {
                                self.rng.pick(options).id.clone()
                            };
                            selected.push(pick);
                        }
                        QuestionKind::Rating => {
                            let (lo, hi) = scale.as_ref().map_or((1, 5), |s| (s.min, s.max));
                            rating = Some(
                                hi - (self.rng.below(((hi - lo).max(0) + 1) as usize) as i32 / 2),
                            );
                        }
                        QuestionKind::Text => text = Some("Useful, thanks".to_string()),
                        _ => {}
                    }
                    let is_correct = (!correct.is_empty()).then(|| {
                        selected.iter().all(|s| correct.contains(s)) && !selected.is_empty()
                    });
                    self.t += 3000;
                    self.push(
                        Some(slide),
                        EventKind::Answer {
                            question_id: id.clone(),
                            purpose: purpose_s.into(),
                            question_kind: format!("{kind:?}").to_lowercase(),
                            options_shown: options.iter().map(|o| o.id.clone()).collect(),
                            selected,
                            rating,
                            text,
                            correct: is_correct,
                        },
                    );
                }
                Component::Citation { id, reference, .. } if self.rng.chance(0.05) => {
                    self.push(
                        Some(slide),
                        EventKind::CitationOpen {
                            component_id: id.clone(),
                            reference_id: reference.clone(),
                        },
                    );
                }
                Component::Image { id, zoom: true, .. } if self.rng.chance(0.1) => {
                    self.push(
                        Some(slide),
                        EventKind::Zoom {
                            component_id: id.clone(),
                        },
                    );
                }
                Component::Link {
                    id,
                    target,
                    drilldown,
                } if follow.is_none() && self.rng.chance(if *drilldown { 0.3 } else { 0.1 }) => {
                    follow = Some(target.clone());
                    self.t += 2000;
                    self.push(
                        Some(slide),
                        EventKind::LinkFollow {
                            component_id: id.clone(),
                            target: target.clone(),
                            drilldown: *drilldown,
                        },
                    );
                }
                _ => {}
            }
        }
        if self.rng.chance(0.06) {
            self.push(Some(slide), EventKind::IsiOpen {});
        }
        // MR-recorded reaction to the key message.
        if self.channel != Channel::SelfServe
            && let Some(km) = self
                .deck
                .bundle
                .slide(slide)
                .and_then(|s| s.key_message.clone())
            && self.rng.chance(0.35)
        {
            let r = self.rng.f() * interest;
            let value = if r > 0.45 {
                1
            } else if r > 0.18 {
                0
            } else {
                -1
            };
            self.push(
                Some(slide),
                EventKind::Reaction {
                    value,
                    key_message: Some(km),
                },
            );
        }
        let exit = enter.max(self.t) + dwell as i64;
        self.t = exit;
        let counted = dwell >= 2000 || self.rng.chance(0.3);
        self.push(
            Some(slide),
            EventKind::SlideView {
                enter_time: enter,
                exit_time: exit,
                dwell_ms: dwell,
                hidden_ms: 0,
                order: o,
                via,
                counted,
            },
        );
        if let Some(target) = follow {
            self.view(&target, order, NavVia::Drilldown, interest);
            self.t += 500;
        }
    }
}

fn gen_session(
    rng: &mut Rng,
    deck: &Deck,
    channel: Channel,
    actor: &Actor,
    hcp: &str,
    start: i64,
) -> Vec<Event> {
    let mut g = SessionGen {
        session: String::new(),
        seq: 0,
        t: start,
        channel,
        rep: actor.rep.clone(),
        hcp: Some(hcp.to_string()),
        device: actor.device.clone(),
        out: Vec::new(),
        deck,
        rng,
    };
    g.session = uuid_at(start, g.rng);
    let mode = channel.as_str().to_string();
    g.push(
        None,
        EventKind::SessionStart {
            mode,
            sequence: None,
            user_agent: None,
            viewport: Some("1180x820".into()),
        },
    );
    if channel == Channel::SelfServe {
        g.push(None, EventKind::Consent { granted: true });
    }
    let interest = 0.6 + g.rng.f() * 0.9;
    let flow: Vec<String> = deck.bundle.flow_ids().map(String::from).collect();
    let mut order = 0;
    let stop_p = if channel == Channel::SelfServe {
        0.12
    } else {
        0.06
    } / interest;
    let mut viewed = 0;
    for (i, s) in flow.iter().enumerate() {
        g.view(
            s,
            &mut order,
            if i == 0 { NavVia::Start } else { NavVia::Swipe },
            interest,
        );
        viewed += 1;
        if g.rng.chance(stop_p) {
            break;
        }
    }
    if g.rng.chance(0.07) {
        let q = (*g.rng.pick(QUESTIONS)).to_string();
        g.push(
            flow.first().map(String::as_str),
            EventKind::Question { text: q },
        );
    }
    if channel == Channel::SelfServe && g.rng.chance(0.05) {
        g.push(
            None,
            EventKind::VisitRequest {
                note: None,
                preferred_time: None,
            },
        );
    }
    let dur = (g.t - start).max(0) as u64;
    g.push(
        None,
        EventKind::SessionEnd {
            reason: "ended".into(),
            duration_ms: dur,
            slides_viewed: viewed,
        },
    );
    g.out
}

/// Run the simulation; `progress` receives human-readable progress lines.
pub fn simulate(o: &SimOptions, mut progress: impl FnMut(&str)) -> Result<SimReport, ClientError> {
    let t0 = Instant::now();
    let admin = Client::new(&o.server, Some(&o.admin_token));
    let mut rng = Rng::new(o.seed);
    let n_hcps = o.hcps.max(1);
    admin.import_hcps(&directory_csv(n_hcps))?;
    progress(&format!("imported a directory of {n_hcps} physicians"));
    let catalog = admin.catalog(None)?;
    let mut decks: Vec<Deck> = Vec::new();
    for e in catalog {
        if !o.decks.is_empty() && !o.decks.contains(&e.deck_id) {
            continue;
        }
        // Newest version of each deck.
        if let Some(d) = decks.iter_mut().find(|d| d.entry.deck_id == e.deck_id) {
            if d.entry.published_at >= e.published_at {
                continue;
            }
            d.bundle = admin.bundle(&e.bundle_hash)?;
            d.entry = e;
            continue;
        }
        let bundle = admin.bundle(&e.bundle_hash)?;
        decks.push(Deck { entry: e, bundle });
    }
    if decks.is_empty() {
        return Err(ClientError::Decode(
            "no published deck to simulate (publish one, or check --deck)".into(),
        ));
    }
    progress(&format!(
        "decks: {}",
        decks
            .iter()
            .map(|d| format!("{} {}", d.entry.deck_id, d.entry.version))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // Reps: device tokens, one region (territory) each.
    let mut reps = Vec::new();
    for i in 0..o.reps.max(1) {
        let territory = REGIONS[i % REGIONS.len()].to_string();
        let rep = format!("rep-{:03}", i + 1);
        let t = admin.create_token(&TokenRequest {
            kind: Some("device".into()),
            rep: Some(rep.clone()),
            territory: Some(territory.clone()),
            label: Some("simulator".into()),
        })?;
        reps.push((
            Actor {
                token: t.token,
                rep: Some(rep),
                device: format!("ipad-{:03}", i + 1),
            },
            territory,
        ));
    }
    // Self-serve: share links for a fifth of the physicians (at most 200), one deck each.
    let self_serve_decks: Vec<usize> = (0..decks.len()).collect();
    let mut links: Vec<(Actor, String, usize)> = Vec::new();
    for i in (0..n_hcps).step_by(5).take(200) {
        let di = self_serve_decks[i % self_serve_decks.len()];
        let hcp = format!("HCP-{i:05}");
        let l = admin.share(&ShareRequest {
            deck: decks[di].entry.deck_id.clone(),
            hcp: hcp.clone(),
            expires: Some(format!("{}d", o.days + 30)),
        })?;
        links.push((
            Actor {
                token: l.token,
                rep: None,
                device: format!("browser-{i}"),
            },
            hcp,
            di,
        ));
    }
    progress(&format!(
        "created {} device tokens and {} share links",
        reps.len(),
        links.len()
    ));

    // Senders.
    let (tx, rx) = mpsc::sync_channel::<(String, String, Vec<Event>)>(o.senders * 4);
    let rx = Arc::new(Mutex::new(rx));
    let report = Arc::new(Mutex::new(SimReport::default()));
    let sent = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for w in 0..o.senders.max(1) {
        let rx = rx.clone();
        let report = report.clone();
        let sent = sent.clone();
        let server = o.server.clone();
        handles.push(std::thread::spawn(move || -> Result<(), ClientError> {
            let c = Client::new(&server, None);
            loop {
                let job = rx
                    .lock()
                    .map_err(|_| ClientError::Transport("sender lock".into()))?
                    .recv();
                let Ok((token, device, events)) = job else {
                    return Ok(());
                };
                let body = serde_json::json!({
                    "schema_version": EVENT_SCHEMA_VERSION,
                    "device_id": device,
                    "sent_at": now_ms(),
                    "events": events,
                });
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                let mut attempt = 0;
                loop {
                    match c.send_batch(&token, &bytes, w % 2 == 0) {
                        Ok(r) => {
                            let mut rep = report
                                .lock()
                                .map_err(|_| ClientError::Transport("report lock".into()))?;
                            rep.batches += 1;
                            rep.events += events.len() as u64;
                            for x in r.results {
                                match x.status {
                                    EventStatus::Accepted => rep.accepted += 1,
                                    EventStatus::Duplicate => rep.duplicates += 1,
                                    EventStatus::Rejected => rep.rejected += 1,
                                }
                            }
                            break;
                        }
                        Err(ClientError::Status {
                            status: 429 | 503,
                            retry_after,
                            ..
                        }) if attempt < 20 => {
                            attempt += 1;
                            if let Ok(mut rep) = report.lock() {
                                rep.retries += 1;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(
                                retry_after.unwrap_or(1) * 200,
                            ));
                        }
                        Err(e) => return Err(e),
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let now = now_ms();
    let day_ms = 86_400_000i64;
    let first_day = now.div_euclid(day_ms) - i64::from(o.days);
    let mut sessions = 0u64;
    let mut buffers: Vec<Vec<Event>> = vec![Vec::new(); reps.len() + links.len()];
    let hcps_per_region: Vec<Vec<usize>> = (0..REGIONS.len())
        .map(|r| (0..n_hcps).filter(|i| i % REGIONS.len() == r).collect())
        .collect();
    let flush = |idx: usize,
                 buf: &mut Vec<Event>,
                 force: bool,
                 reps: &Vec<(Actor, String)>,
                 links: &Vec<(Actor, String, usize)>|
     -> Result<(), ClientError> {
        while buf.len() >= o.batch_size || (force && !buf.is_empty()) {
            let n = buf.len().min(o.batch_size);
            let chunk: Vec<Event> = buf.drain(..n).collect();
            let actor = if idx < reps.len() {
                &reps[idx].0
            } else {
                &links[idx - reps.len()].0
            };
            tx.send((actor.token.clone(), actor.device.clone(), chunk))
                .map_err(|_| ClientError::Transport("all senders failed".into()))?;
        }
        Ok(())
    };
    for d in 0..i64::from(o.days) {
        let day = first_day + d;
        let weekday = (day + 3).rem_euclid(7); // 0 = Monday
        for (ri, (actor, territory)) in reps.iter().enumerate() {
            if weekday >= 5 {
                continue;
            }
            let region = REGIONS.iter().position(|r| r == territory).unwrap_or(0);
            let pool = &hcps_per_region[region];
            if pool.is_empty() {
                continue;
            }
            let calls = (o.calls_per_day * (0.5 + rng.f())).round() as usize;
            // Calls start in the morning (UTC+9 office hours land at 00:00-03:00 UTC).
            let mut t = day * day_ms + 3_600_000 * rng.below(3) as i64;
            for _ in 0..calls {
                let hcp = format!("HCP-{:05}", pool[rng.below(pool.len())]);
                let di = rng.below(decks.len());
                let channel = if rng.chance(0.1) {
                    Channel::Remote
                } else {
                    Channel::MrLed
                };
                let ev = gen_session(&mut rng, &decks[di], channel, actor, &hcp, t);
                t = ev.last().map_or(t, |e| e.client_time)
                    + 1_800_000
                    + rng.below(3_600_000) as i64;
                sessions += 1;
                buffers[ri].extend(ev);
                let mut b = std::mem::take(&mut buffers[ri]);
                flush(ri, &mut b, false, &reps, &links)?;
                buffers[ri] = b;
            }
        }
        for (li, (actor, hcp, di)) in links.iter().enumerate() {
            if !rng.chance(0.08) {
                continue;
            }
            let t = day * day_ms + rng.below(day_ms as usize) as i64;
            let ev = gen_session(
                &mut rng,
                &decks[*di],
                Channel::SelfServe,
                actor,
                hcp,
                t.min(now - 60_000),
            );
            sessions += 1;
            let idx = reps.len() + li;
            buffers[idx].extend(ev);
            let mut b = std::mem::take(&mut buffers[idx]);
            flush(idx, &mut b, false, &reps, &links)?;
            buffers[idx] = b;
        }
        progress(&format!(
            "day {}/{}: {} sessions so far",
            d + 1,
            o.days,
            sessions
        ));
    }
    for (idx, buf) in buffers.iter_mut().enumerate() {
        let mut b = std::mem::take(buf);
        flush(idx, &mut b, true, &reps, &links)?;
    }
    drop(tx);
    for h in handles {
        h.join()
            .map_err(|_| ClientError::Transport("sender panicked".into()))??;
    }
    let mut r = report.lock().map(|r| r.clone()).unwrap_or_default();
    r.sessions = sessions;
    r.elapsed_ms = t0.elapsed().as_millis() as u64;
    r.device_tokens = reps.len();
    r.share_links = links.len();
    Ok(r)
}
