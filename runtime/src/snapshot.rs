//! First-slide snapshots: how a deck opened before is shown at once from the cache.
//!
//! After the player has admitted a bundle (hashes, schema, approval window, signature)
//! and presented its first slide in self-serve mode, it keeps a copy of that first view
//! (the player's markup without the neighbouring slides, dialogs, ids and blob URLs) in
//! `localStorage` under [`STORAGE_KEY`], one entry per page address. On the next open
//! of the same address, `www/boot.js` inserts that copy, inert, before the wasm has
//! started, when all of these hold:
//!
//! - the entry was written by the same shell build (`shell`: `boot.js` stamps the build
//!   id into `globalThis.__edetailShell`, the player copies it into the entry);
//! - the window has the size the copy was laid out for (`w`, `h`: the canvas scale is
//!   in the markup);
//! - today (UTC, as [`crate::check`] decides it) is inside the bundle's approval window
//!   (`from`, `until`): an expired or not-yet-valid deck is never shown, not even from
//!   its snapshot.
//!
//! The player removes the copy once its own first slide is in the DOM (in that task, or
//! a frame later when Yew's scheduler yielded; its view lies on top meanwhile), or
//! shows its refusal instead (and then forgets the entry): a bundle that no
//! longer passes its checks shows the refusal, after at most the copy of the view that
//! passed them last time. A copy is only a picture: it takes no input and sends no
//! events; after a second without the player, boot.js marks it as still loading.
//!
//! This module is the part without a browser: the entry list and its rules. The DOM
//! side (taking and removing the copy) is in `web::snapshot`.

use serde_json::{Map, Value};

/// The `localStorage` key holding the entry list as JSON:
/// `{"v": 1, "entries": [Entry, ...]}`, most recent first.
pub const STORAGE_KEY: &str = "edetail.snapshots";
/// The id of the element `boot.js` puts the copy in.
pub const ELEMENT_ID: &str = "edetail-snapshot";
/// Format version of the list (boot.js ignores any other).
pub const VERSION: u64 = 1;
/// Entries kept (most recent first): a device opens a handful of deck links.
pub const MAX_ENTRIES: usize = 4;
/// Entries larger than this are not kept (`localStorage` is ~5 MB per origin, shared
/// with the rest of the player's state).
pub const MAX_HTML_BYTES: usize = 256 * 1024;

/// The first view of one page address, as boot.js reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `location.pathname + location.search` of the page that showed it.
    pub page: String,
    /// The shell build that made it.
    pub shell: String,
    /// `innerWidth` and `innerHeight` it was laid out for.
    pub w: u32,
    pub h: u32,
    /// The bundle's approval window (`YYYY-MM-DD`, inclusive).
    pub from: String,
    pub until: String,
    /// `<html lang>` and the document title while it shows.
    pub lang: String,
    pub title: String,
    /// The bundle hash it was taken from (for diagnostics; boot.js does not read it).
    pub bundle: String,
    /// The copy: markup of the player's root element.
    pub html: String,
}

impl Entry {
    // A JSON value built by hand rather than derived or `json!` serde code: the wasm
    // already has `Value` and its (de)serializers, anything else added ~5 KB gzipped
    // to the first-slide download.
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in [
            ("page", &self.page),
            ("shell", &self.shell),
            ("from", &self.from),
            ("until", &self.until),
            ("lang", &self.lang),
            ("title", &self.title),
            ("bundle", &self.bundle),
            ("html", &self.html),
        ] {
            m.insert(k.into(), Value::String(v.clone()));
        }
        m.insert("w".into(), Value::from(self.w));
        m.insert("h".into(), Value::from(self.h));
        Value::Object(m)
    }
}

/// The stored list (JSON text) after keeping `entry`: it replaces the entry of the same
/// page and goes first; at most [`MAX_ENTRIES`]. `stored` is what the key held
/// (anything unreadable, or of another version, is replaced). `None`: `entry` is too
/// large to keep (then the page's old entry must go too, see [`without`]).
pub fn with_entry(stored: Option<&str>, entry: &Entry) -> Option<String> {
    if entry.html.len() > MAX_HTML_BYTES {
        return None;
    }
    let mut list = entries(stored);
    list.retain(|e| !is_page(e, &entry.page));
    list.insert(0, entry.to_json());
    list.truncate(MAX_ENTRIES);
    Some(text(list))
}

/// The stored list without `page`'s entry; `None` when it had none (nothing to write).
pub fn without(stored: Option<&str>, page: &str) -> Option<String> {
    let mut list = entries(stored);
    let before = list.len();
    list.retain(|e| !is_page(e, page));
    (list.len() != before).then(|| text(list))
}

fn is_page(e: &Value, page: &str) -> bool {
    e.get("page").and_then(Value::as_str) == Some(page)
}

fn entries(stored: Option<&str>) -> Vec<Value> {
    stored
        .and_then(|s| crate::json::from_str::<Value>(s).ok())
        .filter(|v| v.get("v").and_then(Value::as_u64) == Some(VERSION))
        .and_then(|mut v| match v.get_mut("entries").map(Value::take) {
            Some(Value::Array(a)) => Some(a),
            _ => None,
        })
        .unwrap_or_default()
}

fn text(entries: Vec<Value>) -> String {
    let mut m = Map::new();
    m.insert("v".into(), Value::from(VERSION));
    m.insert("entries".into(), Value::Array(entries));
    serde_json::to_string(&Value::Object(m)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(page: &str, html: &str) -> Entry {
        Entry {
            page: page.into(),
            shell: "s1".into(),
            w: 1024,
            h: 768,
            from: "2026-01-01".into(),
            until: "2026-12-31".into(),
            lang: "en".into(),
            title: "Deck".into(),
            bundle: "ab".into(),
            html: html.into(),
        }
    }

    fn pages(stored: &str) -> Vec<String> {
        entries(Some(stored))
            .iter()
            .map(|e| e["page"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_stored_form_is_what_boot_js_reads() {
        let s = with_entry(None, &entry("/app/?bundle=a", "<p>1</p>")).unwrap();
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v,
            json!({"v": 1, "entries": [{
                "page": "/app/?bundle=a", "shell": "s1", "w": 1024, "h": 768,
                "from": "2026-01-01", "until": "2026-12-31", "lang": "en",
                "title": "Deck", "bundle": "ab", "html": "<p>1</p>"
            }]})
        );
    }

    #[test]
    fn a_page_has_one_entry_and_the_latest_goes_first() {
        let a = with_entry(None, &entry("/app/?bundle=a", "<p>1</p>")).unwrap();
        let b = with_entry(Some(&a), &entry("/app/?bundle=b", "<p>2</p>")).unwrap();
        let a2 = with_entry(Some(&b), &entry("/app/?bundle=a", "<p>3</p>")).unwrap();
        assert_eq!(pages(&a2), ["/app/?bundle=a", "/app/?bundle=b"]);
        assert_eq!(entries(Some(&a2))[0]["html"], "<p>3</p>");
    }

    #[test]
    fn at_most_max_entries_are_kept() {
        let mut s: Option<String> = None;
        for i in 0..MAX_ENTRIES + 3 {
            s = with_entry(s.as_deref(), &entry(&format!("/p{i}"), "x"));
        }
        let p = pages(&s.unwrap());
        assert_eq!(p.len(), MAX_ENTRIES);
        assert_eq!(p[0], format!("/p{}", MAX_ENTRIES + 2));
    }

    #[test]
    fn unreadable_or_other_versions_are_replaced() {
        for stored in [
            "",
            "not json",
            r#"{"v":2,"entries":[]}"#,
            "[1,2]",
            r#"{"v":1}"#,
        ] {
            let s = with_entry(Some(stored), &entry("/p", "x")).unwrap();
            assert_eq!(pages(&s), ["/p"], "{stored}");
        }
    }

    #[test]
    fn too_large_copies_are_not_kept() {
        let big = "x".repeat(MAX_HTML_BYTES + 1);
        assert_eq!(with_entry(None, &entry("/p", &big)), None);
    }

    #[test]
    fn forgetting_removes_only_that_page() {
        let a = with_entry(None, &entry("/a", "1")).unwrap();
        let b = with_entry(Some(&a), &entry("/b", "2")).unwrap();
        let left = without(Some(&b), "/a").unwrap();
        assert_eq!(pages(&left), ["/b"]);
        assert_eq!(without(Some(&left), "/a"), None);
        assert_eq!(without(None, "/a"), None);
    }
}
