//! The insights dashboard: server-rendered HTML with inline SVG charts, no JavaScript,
//! one small external stylesheet. Admins sign in once with their token; the cookie
//! (HttpOnly, SameSite=Strict, 12 hours) holds a signed session naming the token
//! ([`crate::auth::Keys::sign_session`]), never the token itself, so revoking the
//! token ends its sessions. `/insights/logout` clears it.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::app::{AppState, cookie};
use crate::auth::Principal;
use crate::insights::{self, DeckReport, FilterParams, Overview};
use crate::util::esc;

pub const COOKIE: &str = "edetail_admin";
const CSS: &str = include_str!("insights.css");

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/insights", get(overview_page))
        .route("/insights/", get(|| async { Redirect::to("/insights") }))
        .route("/insights/deck/{deck}", get(deck_page))
        .route("/insights/login", get(login_get).post(login_post))
        .route("/insights/logout", get(logout))
        .route("/static/insights.css", get(css))
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1, viewport-fit=cover\">\
<title>{} · edetail insights</title><link rel=\"stylesheet\" href=\"/static/insights.css\"></head>\
<body><header class=\"top\"><a class=\"brand\" href=\"/insights\">edetail <span>insights</span></a>\
<nav><a href=\"/insights\">Decks</a><a href=\"/insights/logout\">Sign out</a></nav></header>\
<main>{}</main></body></html>",
        esc(title),
        body
    )
}

pub fn landing_page() -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>edetail</title>\
<link rel=\"stylesheet\" href=\"/static/insights.css\"></head><body><main class=\"narrow\">\
<h1>edetail head office</h1><ul class=\"links\"><li><a href=\"/app/\">Presenter app</a></li>\
<li><a href=\"/insights\">Insights dashboard</a></li></ul><p class=\"muted\">Server {}.</p></main></body></html>",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn missing_shell_page(www: &std::path::Path) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>edetail</title>\
<link rel=\"stylesheet\" href=\"/static/insights.css\"></head><body><main class=\"narrow\">\
<h1>The presenter app is not built</h1><p>No runtime shell was found in <code>{}</code>. \
Build it with <code>cargo xtask runtime</code>, or start the server with <code>--www DIR</code>.</p>\
<p><a href=\"/insights\">Insights dashboard</a></p></main></body></html>",
        esc(&www.display().to_string())
    )
}

fn login_page(msg: Option<&str>) -> Response {
    let body = format!(
        "<section class=\"card narrow\"><h1>Sign in</h1>{}<form method=\"post\" action=\"/insights/login\">\
<label>Admin token<input type=\"password\" name=\"token\" autocomplete=\"off\" required></label>\
<button type=\"submit\">Sign in</button></form><p class=\"muted\">The first admin token is in \
<code>&lt;data-dir&gt;/admin-token</code>; create more with <code>edetail token create --admin</code>.</p></section>",
        msg.map(|m| format!("<p class=\"error\">{}</p>", esc(m)))
            .unwrap_or_default()
    );
    (StatusCode::UNAUTHORIZED, Html(page("Sign in", &body))).into_response()
}

/// `Ok` for an admin; otherwise the page to answer: the sign-in form, or a 503 page
/// with `Retry-After` when the database could not be asked (a storage outage must not
/// look like a signed-out session).
async fn require_admin(st: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let who = match (crate::app::bearer(headers), cookie(headers, COOKIE)) {
        (Some(t), _) => st.auth_token(&t).await,
        (None, Some(c)) => st.auth_session(&c).await,
        (None, None) => return Err(login_page(None)),
    };
    match who {
        Ok(Principal::Admin { .. }) => Ok(()),
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => {
            let mut r = error_page(&e.message, e.status);
            if let Some(s) = e.retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, s.into());
            }
            Err(r)
        }
        _ => Err(login_page(None)),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    token: Option<String>,
}

/// How long a dashboard session lasts.
const SESSION_SECS: i64 = 12 * 3600;

fn set_cookie_and_go(session: &str) -> Response {
    let c =
        format!("{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, c),
            (header::LOCATION, "/insights".to_string()),
        ],
    )
        .into_response()
}

async fn login_get(State(st): State<Arc<AppState>>, Query(f): Query<LoginForm>) -> Response {
    match f.token {
        Some(t) => login_with(&st, &t).await,
        None => login_page(None),
    }
}

async fn login_post(State(st): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let token = form_value(&body, "token").unwrap_or_default();
    login_with(&st, &token).await
}

async fn login_with(st: &AppState, token: &str) -> Response {
    let t = token.trim();
    if t.contains([';', ',', ' ']) {
        return login_page(Some("That is not an admin token."));
    }
    match st.auth_token(t).await {
        Ok(Principal::Admin { token_id }) => {
            let expires = crate::util::now_ms() + SESSION_SECS * 1000;
            set_cookie_and_go(&st.keys.sign_session(&token_id, expires))
        }
        _ => login_page(Some("That is not a valid admin token.")),
    }
}

fn form_value(body: &[u8], key: &str) -> Option<String> {
    let s = std::str::from_utf8(body).ok()?;
    for pair in s.split('&') {
        let (k, v) = pair.split_once('=')?;
        if k == key {
            return Some(percent_decode(&v.replace('+', " ")));
        }
    }
    None
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(h) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
            ),
            (header::LOCATION, "/insights/login".to_string()),
        ],
    )
        .into_response()
}

fn error_page(msg: &str, status: StatusCode) -> Response {
    (
        status,
        Html(page(
            "Error",
            &format!(
                "<section class=\"card\"><p class=\"error\">{}</p></section>",
                esc(msg)
            ),
        )),
    )
        .into_response()
}

async fn overview_page(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(p): Query<FilterParams>,
) -> Response {
    if let Err(page) = require_admin(&st, &headers).await {
        return page;
    }
    let f = match p.to_filter() {
        Ok(f) => f,
        Err(e) => return error_page(&e.message, StatusCode::BAD_REQUEST),
    };
    match insights::overview(&st, &f).await {
        Ok(o) => Html(page("Decks", &render_overview(&o, &p))).into_response(),
        Err(e) => error_page(&e.message, e.status),
    }
}

async fn deck_page(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(deck): Path<String>,
    Query(mut p): Query<FilterParams>,
) -> Response {
    if let Err(page) = require_admin(&st, &headers).await {
        return page;
    }
    p.deck = Some(deck);
    let f = match p.to_filter() {
        Ok(f) => f,
        Err(e) => return error_page(&e.message, StatusCode::BAD_REQUEST),
    };
    match insights::deck_report(&st, &f).await {
        Ok(r) => Html(page(&r.title, &render_deck(&r, &p))).into_response(),
        Err(e) => error_page(&e.message, e.status),
    }
}

// ---------- rendering ----------

fn fmt_ms(ms: Option<i64>) -> String {
    match ms {
        None => "–".into(),
        Some(ms) if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60),
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{v:.0}%"))
}

fn kpi(label: &str, value: impl std::fmt::Display) -> String {
    format!(
        "<div class=\"kpi\"><span class=\"kv\">{value}</span><span class=\"kl\">{}</span></div>",
        esc(label)
    )
}

fn filter_form(action: &str, p: &FilterParams, versions: &[String]) -> String {
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let mut s = format!(
        "<form class=\"filters\" method=\"get\" action=\"{}\">",
        esc(action)
    );
    if !versions.is_empty() {
        s.push_str("<label>Version<select name=\"version\"><option value=\"\">All</option>");
        for ver in versions {
            let sel = if p.version.as_deref() == Some(ver) {
                " selected"
            } else {
                ""
            };
            let _ = write!(s, "<option{sel}>{}</option>", esc(ver));
        }
        s.push_str("</select></label>");
    }
    let _ = write!(
        s,
        "<label>From<input type=\"date\" name=\"from\" value=\"{}\"></label>\
<label>To<input type=\"date\" name=\"to\" value=\"{}\"></label>\
<label>Channel<select name=\"channel\"><option value=\"\">All</option>{}</select></label>\
<label>Territory<input name=\"territory\" value=\"{}\"></label>\
<label>Specialty<input name=\"specialty\" value=\"{}\"></label>\
<label>Region<input name=\"region\" value=\"{}\"></label>\
<label>Institution<input name=\"institution\" value=\"{}\"></label>\
<label>Segment<input name=\"segment\" value=\"{}\"></label>\
<button type=\"submit\">Apply</button><a class=\"reset\" href=\"{}\">Reset</a></form>",
        v(&p.from),
        v(&p.to),
        ["mr_led", "remote", "self_serve"]
            .iter()
            .map(|c| format!(
                "<option value=\"{c}\"{}>{}</option>",
                if p.channel.as_deref() == Some(c) {
                    " selected"
                } else {
                    ""
                },
                channel_label(c)
            ))
            .collect::<String>(),
        v(&p.territory),
        v(&p.specialty),
        v(&p.region),
        v(&p.institution),
        v(&p.segment),
        esc(action)
    );
    s
}

fn channel_label(c: &str) -> &'static str {
    match c {
        "mr_led" => "MR-led",
        "remote" => "Remote",
        "self_serve" => "Self-serve",
        _ => "Other",
    }
}

/// Horizontal bar chart: (label, value, annotation).
fn hbars(items: &[(String, f64, String)], class: &str) -> String {
    if items.is_empty() {
        return "<p class=\"muted\">No data yet.</p>".into();
    }
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1e-9);
    let row = 26.0;
    let h = items.len() as f64 * row + 4.0;
    let mut s = format!(
        "<svg class=\"chart {class}\" viewBox=\"0 0 600 {h}\" role=\"img\" preserveAspectRatio=\"xMinYMin meet\">"
    );
    for (i, (label, v, note)) in items.iter().enumerate() {
        let y = i as f64 * row + 2.0;
        let w = (v / max * 330.0).max(if *v > 0.0 { 2.0 } else { 0.0 });
        let short: String = label.chars().take(34).collect();
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{ty}\" class=\"lbl\">{l}</text><rect x=\"210\" y=\"{y}\" width=\"{w:.1}\" height=\"{bh}\" rx=\"4\" class=\"bar\"><title>{full}: {n}</title></rect><text x=\"{tx:.1}\" y=\"{ty}\" class=\"val\">{n}</text>",
            ty = y + 15.0,
            l = esc(&short),
            bh = row - 8.0,
            full = esc(label),
            n = esc(note),
            tx = 216.0 + w,
        );
    }
    s.push_str("</svg>");
    s
}

/// Day-by-day trend line (sessions and views).
fn trend_chart(points: &[insights::TrendPoint]) -> String {
    if points.is_empty() {
        return "<p class=\"muted\">No data yet.</p>".into();
    }
    let (w, h, pad) = (640.0, 180.0, 30.0);
    let maxv = points
        .iter()
        .map(|p| p.views.max(p.sessions))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let n = points.len().max(2) as f64 - 1.0;
    let xy = |i: usize, v: i64| {
        (
            pad + (w - 2.0 * pad) * (i as f64 / n),
            h - pad - (h - 2.0 * pad) * (v as f64 / maxv),
        )
    };
    let line = |f: &dyn Fn(&insights::TrendPoint) -> i64| {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (x, y) = xy(i, f(p));
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = format!("<svg class=\"chart trend\" viewBox=\"0 0 {w} {h}\" role=\"img\">");
    let _ = write!(
        s,
        "<line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" class=\"axis\"/><text x=\"{pad}\" y=\"{t}\" class=\"lbl\">{max}</text>",
        b = h - pad,
        r = w - pad,
        t = pad - 8.0,
        max = maxv as i64
    );
    let _ = write!(
        s,
        "<polyline points=\"{}\" class=\"line views\"/>",
        line(&|p| p.views)
    );
    let _ = write!(
        s,
        "<polyline points=\"{}\" class=\"line sessions\"/>",
        line(&|p| p.sessions)
    );
    for (i, p) in points.iter().enumerate() {
        let (x, y) = xy(i, p.views);
        let _ = write!(
            s,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" class=\"dot\"><title>{}: {} views, {} sessions</title></circle>",
            p.day, p.views, p.sessions
        );
    }
    if let (Some(a), Some(z)) = (points.first(), points.last()) {
        let _ = write!(
            s,
            "<text x=\"{pad}\" y=\"{y}\" class=\"lbl\">{}</text><text x=\"{r}\" y=\"{y}\" class=\"lbl end\">{}</text>",
            a.day,
            z.day,
            y = h - 8.0,
            r = w - pad
        );
    }
    s.push_str("</svg><p class=\"legend\"><span class=\"sw views\"></span>Slide views <span class=\"sw sessions\"></span>Sessions</p>");
    s
}

/// Stacked -1/0/+1 bar per key message.
fn reaction_bars(r: &[insights::ReactionStat]) -> String {
    if r.is_empty() {
        return "<p class=\"muted\">No reactions recorded.</p>".into();
    }
    let row = 28.0;
    let h = r.len() as f64 * row + 4.0;
    let mut s = format!("<svg class=\"chart\" viewBox=\"0 0 600 {h}\" role=\"img\">");
    for (i, x) in r.iter().enumerate() {
        let tot = (x.negative + x.neutral + x.positive).max(1) as f64;
        let y = i as f64 * row + 2.0;
        let mut off = 210.0;
        let label: String = x.key_message.chars().take(34).collect();
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\" class=\"lbl\">{}</text>",
            y + 16.0,
            esc(&label)
        );
        for (n, cls) in [(x.negative, "neg"), (x.neutral, "neu"), (x.positive, "pos")] {
            let w = n as f64 / tot * 330.0;
            let _ = write!(
                s,
                "<rect x=\"{off:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{bh}\" class=\"{cls}\"><title>{}: {n}</title></rect>",
                esc(&x.key_message),
                bh = row - 8.0
            );
            off += w;
        }
        let _ = write!(
            s,
            "<text x=\"548\" y=\"{}\" class=\"val\">{:.0}% +</text>",
            y + 16.0,
            x.positive as f64 * 100.0 / tot
        );
    }
    s.push_str("</svg><p class=\"legend\"><span class=\"sw neg\"></span>−1 <span class=\"sw neu\"></span>0 <span class=\"sw pos\"></span>+1</p>");
    s
}

fn render_overview(o: &Overview, p: &FilterParams) -> String {
    let mut s = String::from("<h1>Decks</h1>");
    s.push_str(&filter_form("/insights", p, &[]));
    let reach: i64 = o.decks.iter().map(|d| d.reach).sum();
    let sessions: i64 = o.decks.iter().map(|d| d.sessions).sum();
    let views: i64 = o.decks.iter().map(|d| d.views).sum();
    let _ = write!(
        s,
        "<div class=\"kpis\">{}{}{}{}</div>",
        kpi("Decks", o.decks.len()),
        kpi("Physicians reached (sum over decks)", reach),
        kpi("Sessions", sessions),
        kpi("Slide views", views)
    );
    let qs = p.query_string();
    s.push_str("<section class=\"card\"><h2>Decks by reach</h2><div class=\"scroll\"><table><thead><tr><th>Deck</th><th>Versions</th><th class=\"num\">Reach</th><th class=\"num\">Sessions</th><th class=\"num\">Views</th><th>MR-led / remote / self-serve</th></tr></thead><tbody>");
    for d in &o.decks {
        let tot = (d.mr_led_sessions + d.remote_sessions + d.self_serve_sessions).max(1) as f64;
        let split = format!(
            "<svg class=\"split\" viewBox=\"0 0 120 12\"><rect x=\"0\" width=\"{a:.1}\" height=\"12\" class=\"mr\"/><rect x=\"{a:.1}\" width=\"{b:.1}\" height=\"12\" class=\"remote\"/><rect x=\"{ab:.1}\" width=\"{c:.1}\" height=\"12\" class=\"self\"/></svg> {} / {} / {}",
            d.mr_led_sessions,
            d.remote_sessions,
            d.self_serve_sessions,
            a = d.mr_led_sessions as f64 / tot * 120.0,
            b = d.remote_sessions as f64 / tot * 120.0,
            ab = (d.mr_led_sessions + d.remote_sessions) as f64 / tot * 120.0,
            c = d.self_serve_sessions as f64 / tot * 120.0,
        );
        let _ = write!(
            s,
            "<tr><td><a href=\"/insights/deck/{}{}\">{}</a><div class=\"muted\">{}</div></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            crate::util::url_encode(&d.deck_id),
            if qs.is_empty() {
                String::new()
            } else {
                format!("?{}", esc(&qs))
            },
            esc(&d.title),
            esc(&d.deck_id),
            esc(&d.versions.join(", ")),
            d.reach,
            d.sessions,
            d.views,
            split
        );
    }
    s.push_str("</tbody></table></div></section>");
    let _ = write!(
        s,
        "<section class=\"card\"><h2>Day by day</h2>{}</section>",
        trend_chart(&o.trend)
    );
    s
}

/// How far session closing has got (drop-off and paths count closed sessions only).
fn closing_lag(r: &DeckReport) -> String {
    match r.closed_up_to_ms {
        Some(t) => format!(
            "Sessions still open: {} (not yet in drop-off and paths); closed up to {}.",
            r.open_sessions,
            esc(&crate::util::iso_datetime(t))
        ),
        None => "Sessions still open: 0; all sessions closed.".to_string(),
    }
}

fn render_deck(r: &DeckReport, p: &FilterParams) -> String {
    let mut s = format!(
        "<p class=\"crumbs\"><a href=\"/insights\">Decks</a> › {}</p><h1>{}</h1>",
        esc(&r.deck_id),
        esc(&r.title)
    );
    s.push_str(&filter_form(
        &format!("/insights/deck/{}", crate::util::url_encode(&r.deck_id)),
        p,
        &r.versions,
    ));
    let _ = write!(
        s,
        "<div class=\"kpis\">{}{}{}{}{}</div>",
        kpi("Physicians reached", r.reach),
        kpi("Sessions", r.sessions),
        kpi("Slide views", r.views),
        kpi("Closed sessions", r.ended_sessions),
        kpi("Visit requests", r.visit_requests)
    );
    // Channel split.
    let ch: Vec<(String, f64, String)> = r
        .channels
        .iter()
        .map(|c| {
            (
                channel_label(&c.channel).to_string(),
                c.sessions as f64,
                format!("{} sessions · {} physicians", c.sessions, c.reach),
            )
        })
        .collect();
    let _ = write!(
        s,
        "<div class=\"grid2\"><section class=\"card\"><h2>MR-led vs self-serve</h2>{}</section>",
        hbars(&ch, "channels")
    );
    let _ = write!(
        s,
        "<section class=\"card\"><h2>Day by day</h2>{}</section></div>",
        trend_chart(&r.trend)
    );

    // Slides.
    let flow: Vec<&insights::SlideStat> =
        r.slides.iter().filter(|x| x.flow_pos.is_some()).collect();
    let funnel: Vec<(String, f64, String)> = flow
        .iter()
        .map(|x| {
            (
                format!("{}. {}", x.flow_pos.unwrap_or(0), x.title),
                x.reached_pct.unwrap_or(0.0),
                pct(x.reached_pct),
            )
        })
        .collect();
    let _ = write!(
        s,
        "<section class=\"card\"><h2>Drop-off along the main flow</h2><p class=\"muted\">Share of closed sessions (ended, or idle past the timeout) that viewed each slide.</p><p class=\"muted lag\">{}</p>{}</section>",
        closing_lag(r),
        hbars(&funnel, "funnel")
    );
    s.push_str("<section class=\"card\"><h2>Slides</h2><p class=\"muted\">Median dwell is interpolated from a dwell histogram (bucket edges 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180, 300 s); mean is exact.</p><div class=\"scroll\"><table><thead><tr><th>#</th><th>Slide</th><th>Key message</th><th class=\"num\">Views</th><th class=\"num\">Median dwell</th><th class=\"num\">Mean dwell</th><th class=\"num\">Reached</th></tr></thead><tbody>");
    let maxv = r.slides.iter().map(|x| x.views).max().unwrap_or(1).max(1) as f64;
    for x in &r.slides {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}<div class=\"muted\">{}</div></td><td>{}</td><td class=\"num\"><svg class=\"mini\" viewBox=\"0 0 60 8\"><rect width=\"{:.1}\" height=\"8\" rx=\"2\" class=\"bar\"/></svg> {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            x.flow_pos.map_or_else(
                || if x.detail {
                    "detail".to_string()
                } else {
                    String::new()
                },
                |p| p.to_string()
            ),
            esc(&x.title),
            esc(&x.slide_id),
            esc(x.key_message.as_deref().unwrap_or("")),
            x.views as f64 / maxv * 60.0,
            x.views,
            fmt_ms(x.dwell_median_ms),
            fmt_ms(x.dwell_mean_ms),
            pct(x.reached_pct)
        );
    }
    s.push_str("</tbody></table></div></section>");

    // Links.
    s.push_str("<div class=\"grid2\"><section class=\"card\"><h2>Drill-downs and links</h2>");
    if r.links.is_empty() {
        s.push_str("<p class=\"muted\">No links followed.</p>");
    } else {
        s.push_str("<table><thead><tr><th>From slide</th><th>Link → target</th><th class=\"num\">Follows</th><th class=\"num\">Rate</th></tr></thead><tbody>");
        for l in &r.links {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{} → {}{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&l.slide_id),
                esc(&l.component_id),
                esc(&l.target),
                if l.drilldown {
                    " <span class=\"tag\">drill-down</span>"
                } else {
                    ""
                },
                l.follows,
                l.rate.map_or("–".into(), |x| format!("{:.0}%", x * 100.0))
            );
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</section><section class=\"card\"><h2>Popups, tabs, ISI and more</h2>");
    if r.interactions.is_empty() {
        s.push_str("<p class=\"muted\">No interactions recorded.</p>");
    } else {
        s.push_str("<table><thead><tr><th>Kind</th><th>Where</th><th>Detail</th><th class=\"num\">Opens</th></tr></thead><tbody>");
        for i in r.interactions.iter().take(30) {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                esc(&i.kind),
                esc(&i.key),
                esc(&i.detail),
                i.count
            );
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</section></div>");

    // Questions.
    s.push_str("<section class=\"card\"><h2>Quiz, poll and survey results</h2>");
    if r.questions.is_empty() {
        s.push_str("<p class=\"muted\">No answers yet.</p>");
    }
    for q in &r.questions {
        let bars: Vec<(String, f64, String)> = q
            .options
            .iter()
            .map(|o| {
                (
                    o.label.clone(),
                    o.count as f64,
                    format!(
                        "{} ({:.0}%)",
                        o.count,
                        o.count as f64 * 100.0 / q.answers.max(1) as f64
                    ),
                )
            })
            .collect();
        let _ = write!(
            s,
            "<h3>{} <span class=\"tag\">{}</span></h3><p class=\"muted\">{} answers{}</p>{}",
            esc(&q.prompt),
            esc(&q.purpose),
            q.answers,
            if q.purpose == "quiz" {
                format!(
                    " · {:.0}% correct",
                    q.correct as f64 * 100.0 / q.answers.max(1) as f64
                )
            } else {
                String::new()
            },
            hbars(&bars, "answers")
        );
    }
    s.push_str("</section>");

    let _ = write!(
        s,
        "<section class=\"card\"><h2>Reactions per key message</h2>{}</section>",
        reaction_bars(&r.reactions)
    );

    let _ = write!(
        s,
        "<div class=\"grid2\"><section class=\"card\"><h2>Paths followed in calls with a positive reaction</h2><p class=\"muted lag\">{}</p>",
        closing_lag(r)
    );
    if r.paths.is_empty() {
        s.push_str("<p class=\"muted\">No closed sessions with a positive reaction yet.</p>");
    } else {
        s.push_str("<ol class=\"paths\">");
        for pth in &r.paths {
            let _ = write!(
                s,
                "<li><span class=\"path\">{}</span> <span class=\"muted\">{} of {} sessions</span></li>",
                pth.path
                    .iter()
                    .map(|x| esc(x))
                    .collect::<Vec<_>>()
                    .join(" <b>›</b> "),
                pth.positive_sessions,
                pth.sessions
            );
        }
        s.push_str("</ol>");
    }
    s.push_str("</section><section class=\"card\"><h2>Physicians' questions</h2>");
    if r.hcp_questions.is_empty() {
        s.push_str("<p class=\"muted\">No questions recorded.</p>");
    } else {
        s.push_str(
            "<table><thead><tr><th>Question</th><th class=\"num\">Asked</th></tr></thead><tbody>",
        );
        for q in &r.hcp_questions {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
                esc(&q.text),
                q.count
            );
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</section></div>");
    let _ = write!(
        s,
        "<p><a class=\"button\" href=\"/api/v1/export/clickstream.csv?{}\">Download CRM clickstream (CSV)</a></p>",
        esc(&p.query_string())
    );
    s
}
