//! The URL contract: `/app/?bundle=<base>&mode=mr|self|preview&endpoint=..&token=..&share=..`.
//!
//! Parsed from the page's query string into [`Options`]. Pure Rust so it is tested natively.

/// How the player is being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An MR presents in a call (start-call screen, presenter tray).
    MrLed,
    /// A physician browses on their own (consent prompt, ask/visit forms).
    SelfServe,
    /// An author previews (`edetail preview`): tracking inspector, events marked preview.
    Preview,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "mr" | "mr_led" | "remote" => Some(Mode::MrLed),
            "self" | "self_serve" => Some(Mode::SelfServe),
            "preview" => Some(Mode::Preview),
            _ => None,
        }
    }

    /// The `mode` field of the `session_start` event.
    pub fn as_event_str(self) -> &'static str {
        match self {
            Mode::MrLed => "mr_led",
            Mode::SelfServe => "self_serve",
            Mode::Preview => "preview",
        }
    }
}

/// Everything the query string can say.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Base URL of a bundle directory, always ending in `/`.
    pub bundle: Option<String>,
    pub mode: Mode,
    /// Ingest URL (default [`DEFAULT_ENDPOINT`]).
    pub endpoint: String,
    /// Bearer token for ingest (device token).
    pub token: Option<String>,
    /// Share-link token (self-serve links from the server).
    pub share: Option<String>,
    /// Server base for catalog lookups (default: the page's origin).
    pub server: Option<String>,
    /// Deck to pick from the catalog when `share` is used without `bundle`.
    pub deck: Option<String>,
    /// Preview server: poll `/__preview/version` and reload on change.
    pub live_reload: bool,
    /// UI language override (`en`, `ko`); otherwise the bundle locale decides.
    pub lang: Option<String>,
}

/// Ingest endpoint used when the query names none (relative to the page's origin).
pub const DEFAULT_ENDPOINT: &str = "/api/v1/events";

impl Default for Options {
    fn default() -> Self {
        Options {
            bundle: None,
            mode: Mode::SelfServe,
            endpoint: DEFAULT_ENDPOINT.to_string(),
            token: None,
            share: None,
            server: None,
            deck: None,
            live_reload: false,
            lang: None,
        }
    }
}

impl Options {
    /// Parse a query string (with or without the leading `?`). Unknown keys are ignored;
    /// an unknown `mode` falls back to self-serve (the most private mode) unless a
    /// device token is present, in which case MR-led.
    pub fn from_query(query: &str) -> Options {
        let mut o = Options::default();
        let mut mode = None;
        for (k, v) in pairs(query) {
            match k.as_str() {
                "bundle" if !v.is_empty() => o.bundle = Some(with_slash(&v)),
                "mode" => mode = Mode::parse(&v),
                "endpoint" if !v.is_empty() => o.endpoint = v,
                "token" if !v.is_empty() => o.token = Some(v),
                "share" if !v.is_empty() => o.share = Some(v),
                "server" if !v.is_empty() => o.server = Some(v.trim_end_matches('/').to_string()),
                "deck" if !v.is_empty() => o.deck = Some(v),
                "live" => o.live_reload = v != "0",
                "lang" if !v.is_empty() => o.lang = Some(v),
                _ => {}
            }
        }
        o.mode = mode.unwrap_or(if o.share.is_some() || o.token.is_none() {
            Mode::SelfServe
        } else {
            Mode::MrLed
        });
        if o.mode == Mode::Preview {
            o.live_reload = true;
        }
        o
    }
}

fn with_slash(s: &str) -> String {
    if s.ends_with('/') {
        s.to_string()
    } else {
        format!("{s}/")
    }
}

/// `k=v&k2=v2` pairs, percent- and plus-decoded.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Percent-decoding (`+` is a space). Invalid escapes are kept literally; invalid
/// UTF-8 is replaced, never a panic.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encode a query component.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Resolve a bundle-relative path (e.g. `assets/ab12.svg`) against the bundle base.
/// Refuses anything that is not a plain relative path inside the bundle.
pub fn asset_url(base: &str, path: &str) -> Option<String> {
    if path.is_empty()
        || path.starts_with('/')
        || path.contains("..")
        || path.contains(':')
        || path.contains('\\')
    {
        return None;
    }
    Some(format!("{base}{path}"))
}

/// Point bundle-relative asset references at the bundle base. No asset URL is loaded
/// directly:
/// - images, captions and posters move to `data-asset` / `data-poster`; the player sets
///   `src` / `poster` to a blob URL only after the bytes matched the manifest's sha256
///   (see `Player::fill_assets`);
/// - a video's `<source>` moves to `data-video` (the full URL); the player sets `src`
///   only once the service worker controls the page (it downloads the whole file, checks
///   its sha256 and answers the player's range requests from that verified copy), or in
///   preview mode (the author's own files, no worker).
pub fn rewrite_assets(html: &str, base: &str) -> String {
    let mut s = html.replace(
        "<source src=\"assets/",
        &format!("<source data-video=\"{base}assets/"),
    );
    s = s.replace("poster=\"assets/", "data-poster=\"assets/");
    s = s.replace("href=\"assets/", &format!("href=\"{base}assets/"));
    s.replace("src=\"assets/", "data-asset=\"assets/")
}

/// The bundle paths of the images and video posters a slide body, as
/// [`rewrite_assets`] returned it, loads: its `data-asset` and `data-poster` values
/// (what `Player::fill_assets` fills in). In document order, each once. The player
/// requests only those listed in the bundle's asset manifest.
pub fn image_assets(rewritten: &str) -> Vec<&str> {
    let mut paths: Vec<&str> = vec![];
    for (i, _) in rewritten.match_indices("=\"assets/") {
        let before = &rewritten[..i];
        // The attribute itself, after whitespace: not the end of a longer name.
        let named = ["data-asset", "data-poster"].into_iter().any(|name| {
            before
                .strip_suffix(name)
                .is_some_and(|b| b.ends_with(|c: char| c.is_ascii_whitespace()))
        });
        let path = rewritten[i + 2..].split('"').next().unwrap_or_default();
        if named && !paths.contains(&path) {
            paths.push(path);
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_assets_of_a_slide_body() {
        let html = r#"<p><img src="assets/aa.png" alt="a"></p>
<video controls poster="assets/pp.jpg"><source src="assets/vv.mp4" type="video/mp4"></video>
<img class="x" data-src="assets/no.png"><img src="https://cdn.example/x.png">
<p>prose: src=&quot;assets/text.png&quot; (the compiler escapes quotes in text)</p>
<img alt="again" src="assets/aa.png"><img
 src="assets/bb.svg">"#;
        let base = "https://cdn.example/b/";
        assert_eq!(
            image_assets(&rewrite_assets(html, base)),
            ["assets/aa.png", "assets/pp.jpg", "assets/bb.svg"]
        );
        assert!(image_assets("").is_empty());
        // Not HTML the compiler writes; the player only requests paths in the manifest.
        assert_eq!(
            image_assets(&rewrite_assets("<img src=\"assets/unterminated", base)),
            ["assets/unterminated"]
        );
    }

    #[test]
    fn parses_full_query() {
        let o = Options::from_query(
            "?bundle=https%3A%2F%2Fcdn.example%2Fb%2Fzentara&mode=mr&endpoint=%2Fingest&token=abc",
        );
        assert_eq!(o.bundle.as_deref(), Some("https://cdn.example/b/zentara/"));
        assert_eq!(o.mode, Mode::MrLed);
        assert_eq!(o.endpoint, "/ingest");
        assert_eq!(o.token.as_deref(), Some("abc"));
        assert!(!o.live_reload);
    }

    #[test]
    fn defaults_are_private() {
        let o = Options::from_query("");
        assert_eq!(o.mode, Mode::SelfServe);
        assert_eq!(o.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(o.bundle, None);
        // A device token without a mode means an MR device.
        assert_eq!(Options::from_query("token=t").mode, Mode::MrLed);
        // A share link is self-serve even with a token.
        assert_eq!(Options::from_query("token=t&share=s").mode, Mode::SelfServe);
        // Unknown mode falls back.
        assert_eq!(Options::from_query("mode=bogus").mode, Mode::SelfServe);
    }

    #[test]
    fn preview_turns_on_live_reload() {
        let o = Options::from_query("mode=preview&bundle=/bundle");
        assert_eq!(o.mode, Mode::Preview);
        assert!(o.live_reload);
        assert_eq!(o.bundle.as_deref(), Some("/bundle/"));
    }

    #[test]
    fn decoding_is_total() {
        assert_eq!(decode("a+b%20c"), "a b c");
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%ED%95%9C"), "한");
        assert_eq!(decode("%FF"), "\u{FFFD}");
        assert_eq!(decode(&encode("a b/한?&")), "a b/한?&");
    }

    #[test]
    fn asset_urls_stay_inside_the_bundle() {
        assert_eq!(
            asset_url("/b/", "assets/ab.svg").as_deref(),
            Some("/b/assets/ab.svg")
        );
        assert_eq!(asset_url("/b/", "../etc/passwd"), None);
        assert_eq!(asset_url("/b/", "/abs.png"), None);
        assert_eq!(asset_url("/b/", "javascript:alert(1)"), None);
        assert_eq!(asset_url("/b/", ""), None);
    }
}
