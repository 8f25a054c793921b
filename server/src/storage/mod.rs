//! Storage: one trait ([`Store`]) with two implementations, embedded SQLite
//! ([`sqlite::SqliteStore`], the default) and PostgreSQL ([`postgres::PgStore`]).
//!
//! Both apply versioned migrations at open, insert events idempotently by event id
//! (primary key) and update the insight rollups in the same transaction as the
//! insert, so a committed batch is always counted exactly once.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

pub mod postgres;
pub mod sqlite;

/// Boxed future returned by [`Store`] methods (keeps the trait object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Admin,
    Device,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Device => "device",
        }
    }
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "admin" => Some(TokenKind::Admin),
            "device" => Some(TokenKind::Device),
            _ => None,
        }
    }
}

/// A stored admin or device token. Only the sha256 of the secret part is kept.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TokenRecord {
    pub id: String,
    #[serde(skip, default)]
    pub secret_hash: String,
    pub kind: TokenKind,
    pub rep: Option<String>,
    pub territory: Option<String>,
    pub label: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// One published, immutable deck version.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct VersionRecord {
    pub bundle_hash: String,
    pub deck_id: String,
    pub version: String,
    pub title: String,
    pub locale: String,
    pub product: Option<String>,
    pub approval_code: String,
    pub valid_from: String,
    pub valid_until: String,
    /// Territories the version is distributed to; empty means every territory.
    pub territories: Vec<String>,
    pub published_at: i64,
    pub retired_at: Option<i64>,
}

/// A version to store with its blobs: `bundle.json` (keyed by the bundle hash) and
/// every asset (keyed by its sha256).
pub struct NewVersion {
    pub record: VersionRecord,
    pub blobs: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishOutcome {
    Created,
    /// The same bundle hash was already published under this deck and version.
    AlreadyPublished,
}

/// A CRM directory row, keyed by the pseudonymous HCP id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HcpRecord {
    pub hcp: String,
    pub specialty: String,
    pub institution: String,
    pub region: String,
    pub segment: String,
}

/// One validated event ready to store.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: [u8; 16],
    pub session_id: String,
    pub seq: i64,
    pub device_id: String,
    pub deck_id: String,
    pub deck_version: String,
    pub bundle_hash: String,
    pub slide_id: Option<String>,
    pub etype: &'static str,
    pub channel: &'static str,
    pub rep: Option<String>,
    pub territory: Option<String>,
    /// Pseudonymous HCP id (keyed hash), never the id as sent.
    pub hcp: Option<String>,
    pub token_id: String,
    pub client_time: i64,
    pub sent_at: i64,
    pub received_at: i64,
    pub corrected_time: i64,
    pub preview: bool,
    /// Slide views: visible dwell.
    pub dwell_ms: Option<i64>,
    /// Slide views: 1-based order in the session.
    pub ord: Option<i64>,
    /// Slide views: 1 when counted; reactions: the value.
    pub val: Option<i64>,
    /// What the columns lack, as JSON (`ingest::stored_body`): the event is the columns
    /// plus this.
    pub body: String,
    /// The parsed event (for rollups).
    pub event: edetail_format::Event,
}

/// A stored event of a session, as the session rollups need it.
#[derive(Debug, Clone, Default)]
pub struct SessionItem {
    pub etype: String,
    pub slide_id: Option<String>,
    pub seq: i64,
    pub ord: Option<i64>,
    pub val: Option<i64>,
    pub deck: String,
    pub version: String,
    pub channel: String,
    pub territory: Option<String>,
    pub hcp: Option<String>,
    pub corrected_time: i64,
}

/// The columns of `events` read into a [`SessionItem`] (in field order, after
/// `session_id`).
pub(crate) const SESSION_ITEM_COLS: &str = "session_id, type, slide_id, seq, ord, val, deck_id, \
  deck_version, channel, territory, hcp, corrected_time";

/// How far the closing of sessions has got: sessions with events not yet reflected in
/// the session-level rollups (drop-off, paths), and the oldest last-event receive time
/// among them (every session whose last event was received before it is closed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SessionStatus {
    pub open: i64,
    /// Milliseconds since the epoch (server receive time); none when no session is open.
    pub oldest_open_ms: Option<i64>,
}

/// Filters shared by every insight query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub deck: Option<String>,
    pub version: Option<String>,
    /// Inclusive day numbers (days since the epoch, UTC).
    pub from_day: Option<i32>,
    pub to_day: Option<i32>,
    pub channel: Option<String>,
    pub territory: Option<String>,
    pub specialty: Option<String>,
    pub region: Option<String>,
    pub institution: Option<String>,
    pub segment: Option<String>,
}

impl Filter {
    /// Whether only deck, version and channel are filtered (reach from `reach_total`).
    pub fn reach_total_suffices(&self) -> bool {
        self.from_day.is_none() && self.to_day.is_none() && !self.needs_fine_grain()
    }

    /// Whether the filter needs the HCP-level rollup grain.
    pub fn needs_fine_grain(&self) -> bool {
        self.territory.is_some()
            || self.specialty.is_some()
            || self.region.is_some()
            || self.institution.is_some()
            || self.segment.is_some()
    }
}

/// What to group a rollup query by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Deck,
    Version,
    K1,
    K1K2,
    Day,
    Channel,
}

impl GroupBy {
    pub(crate) fn columns(self) -> &'static str {
        match self {
            GroupBy::Deck => "deck",
            GroupBy::Version => "version",
            GroupBy::K1 => "k1",
            GroupBy::K1K2 => "k1, k2",
            GroupBy::Day => "CAST(day AS TEXT)",
            GroupBy::Channel => "channel",
        }
    }
    pub(crate) fn arity(self) -> usize {
        if self == GroupBy::K1K2 { 2 } else { 1 }
    }
}

/// One aggregated rollup row: the group keys, the summed count `n` and sum `s`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggRow {
    pub keys: Vec<String>,
    pub n: i64,
    pub s: i64,
}

/// One row of the CRM clickstream export (one slide view).
#[derive(Debug, Clone, Serialize)]
pub struct ClickRow {
    pub session_id: String,
    pub hcp: Option<String>,
    pub rep: Option<String>,
    pub deck_id: String,
    pub deck_version: String,
    pub slide_id: String,
    pub start_ms: i64,
    pub dwell_ms: i64,
    pub channel: String,
    pub reaction: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Stats {
    pub backend: String,
    pub events: i64,
    pub rollup_rows: i64,
    pub versions: i64,
    pub hcps: i64,
}

/// One row of the audit log of admin actions. `actor` is the token id (never its
/// secret); `target` names what was acted on (deck and version, token id, row count),
/// never a physician in clear.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    /// Milliseconds since the epoch (server clock).
    pub at: i64,
    /// `publish`, `retire`, `token_create`, `token_revoke`, `hcp_import`, `share_create`.
    pub action: String,
    pub actor: String,
    pub target: String,
    /// `ok`, or `error: <reason>`.
    pub outcome: String,
}

/// Everything the server stores. Implementations must make [`Store::ingest`]
/// idempotent by event id across restarts and processes, and durable before it returns.
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> &'static str;
    /// Insert `value` under `key` unless present; return the stored value.
    fn meta_get_or_init(&self, key: &str, value: String) -> StoreFuture<'_, String>;
    fn insert_token(&self, t: TokenRecord) -> StoreFuture<'_, ()>;
    fn get_token(&self, id: &str) -> StoreFuture<'_, Option<TokenRecord>>;
    /// Revoke; false when no such token.
    fn revoke_token(&self, id: &str, at: i64) -> StoreFuture<'_, bool>;
    fn list_tokens(&self) -> StoreFuture<'_, Vec<TokenRecord>>;
    fn upsert_hcps(&self, rows: Vec<HcpRecord>) -> StoreFuture<'_, u64>;
    fn publish(&self, v: NewVersion) -> StoreFuture<'_, PublishOutcome>;
    fn retire(&self, deck: &str, version: &str, at: i64) -> StoreFuture<'_, bool>;
    fn versions(&self) -> StoreFuture<'_, Vec<VersionRecord>>;
    fn blob(&self, key: &str) -> StoreFuture<'_, Option<Vec<u8>>>;
    /// Store a batch: one flag per row, true when inserted, false when the id existed.
    /// Rollups are updated for inserted rows in the same transaction.
    fn ingest(&self, rows: Vec<EventRow>) -> StoreFuture<'_, Vec<bool>>;
    fn rollup(&self, metric: &str, filter: &Filter, group: GroupBy)
    -> StoreFuture<'_, Vec<AggRow>>;
    /// Distinct HCPs reached, grouped.
    fn reach(&self, filter: &Filter, group: GroupBy) -> StoreFuture<'_, Vec<AggRow>>;
    fn clickstream(&self, filter: &Filter) -> StoreFuture<'_, Vec<ClickRow>>;
    /// How many of `ids` are stored (each id counts at most once).
    fn count_ids(&self, ids: Vec<[u8; 16]>) -> StoreFuture<'_, i64>;
    fn stats(&self) -> StoreFuture<'_, Stats>;
    /// Append one audit-log row (`id` is assigned by the store).
    fn audit(&self, e: AuditEntry) -> StoreFuture<'_, ()>;
    /// The newest `limit` audit rows, newest first.
    fn audit_log(&self, limit: i64) -> StoreFuture<'_, Vec<AuditEntry>>;
    /// Retention: delete raw events whose `corrected_time` is before `before_ms` and
    /// whose session is closed with every event counted (its session rollups are
    /// computed), preview events before `before_ms`, and events before
    /// `unended_before_ms` whatever their session. Sessions losing events are frozen
    /// (their session rollups are no longer recomputed). Rollups are kept. Works in
    /// bounded chunks so ingest is not stalled; returns the number deleted.
    fn purge_events(&self, before_ms: i64, unended_before_ms: i64) -> StoreFuture<'_, u64>;
    /// Close up to `limit` open sessions whose last event was received before
    /// `idle_before_ms`: compute (or recompute) their session-level rollups from their
    /// stored events ([`crate::rollup::reclose`]). Safe with several processes on one
    /// database (each session is closed by one). Returns the number closed.
    fn close_idle_sessions(&self, idle_before_ms: i64, limit: i64) -> StoreFuture<'_, u64>;
    /// Open sessions and the age of the closing ([`SessionStatus`]).
    fn session_status(&self) -> StoreFuture<'_, SessionStatus>;
}

/// Sessions closed per [`Store::close_idle_sessions`] call (one write transaction).
pub const CLOSE_CHUNK: i64 = 200;

/// Rows deleted per retention chunk (one short write transaction each).
pub(crate) const PURGE_CHUNK: i64 = 5_000;

/// The WHERE clause selecting purgeable events (`e` is the events table; `?1` the
/// cutoff for closed sessions, `?2` the cutoff for any event).
pub(crate) const PURGE_WHERE: &str = "e.corrected_time < ?1 AND (e.corrected_time < ?2
  OR e.preview = 1 OR EXISTS (
  SELECT 1 FROM sess x WHERE x.session_id = e.session_id AND x.dirty = 0))";

/// A bound SQL parameter (both backends).
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// Build the WHERE clause of a rollup/reach query with `?` placeholders.
pub(crate) fn filter_sql(metric: Option<&str>, f: &Filter, rollup: bool) -> (String, Vec<Param>) {
    let mut w = Vec::new();
    let mut p = Vec::new();
    if let Some(m) = metric {
        w.push("metric = ?".to_string());
        p.push(Param::Text(m.to_string()));
    }
    if rollup {
        w.push("grain = ?".to_string());
        p.push(Param::Int(i64::from(f.needs_fine_grain())));
    }
    let text = [
        ("deck", &f.deck),
        ("version", &f.version),
        ("channel", &f.channel),
        ("territory", &f.territory),
        ("specialty", &f.specialty),
        ("region", &f.region),
        ("institution", &f.institution),
        ("segment", &f.segment),
    ];
    for (col, v) in text {
        if let Some(v) = v {
            w.push(format!("{col} = ?"));
            p.push(Param::Text(v.clone()));
        }
    }
    if let Some(d) = f.from_day {
        w.push("day >= ?".into());
        p.push(Param::Int(i64::from(d)));
    }
    if let Some(d) = f.to_day {
        w.push("day <= ?".into());
        p.push(Param::Int(i64::from(d)));
    }
    let clause = if w.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", w.join(" AND "))
    };
    (clause, p)
}

/// Open the store named by a database URL: `postgres://...` or `postgresql://...`
/// selects PostgreSQL, anything else (or none) SQLite in `data_dir`.
pub async fn open(
    data_dir: &std::path::Path,
    database: Option<&str>,
    pg_schema: Option<&str>,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match database {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(
            std::sync::Arc::new(postgres::PgStore::connect(url, pg_schema).await?),
        ),
        Some(other) if !other.is_empty() => Err(StoreError::Unavailable(format!(
            "unsupported database URL `{other}` (expected postgres://...; omit for SQLite)"
        ))),
        _ => {
            let dir = data_dir.to_path_buf();
            let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&dir))
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))??;
            Ok(std::sync::Arc::new(store))
        }
    }
}

/// The filters, groupings and metrics the migration tests of both backends query before
/// and after a schema change (every figure must come out the same).
#[cfg(test)]
pub(crate) fn migration_cases() -> (Vec<Filter>, [GroupBy; 6], [&'static str; 5]) {
    let filters = vec![
        Filter::default(),
        Filter {
            deck: Some("d1".into()),
            ..Default::default()
        },
        Filter {
            deck: Some("d2".into()),
            version: Some("2.0".into()),
            channel: Some("remote".into()),
            ..Default::default()
        },
        Filter {
            deck: Some("d1".into()),
            from_day: Some(20_001),
            to_day: Some(20_003),
            ..Default::default()
        },
        Filter {
            deck: Some("d1".into()),
            specialty: Some("GP".into()),
            region: Some("Seoul".into()),
            ..Default::default()
        },
        Filter {
            territory: Some("T2".into()),
            segment: Some("B".into()),
            from_day: Some(20_002),
            ..Default::default()
        },
        Filter {
            territory: Some("".into()),
            institution: Some("Inst A".into()),
            channel: Some("mr_led".into()),
            ..Default::default()
        },
    ];
    let groups = [
        GroupBy::Deck,
        GroupBy::Version,
        GroupBy::K1,
        GroupBy::K1K2,
        GroupBy::Day,
        GroupBy::Channel,
    ];
    let metrics = ["view", "session", "dwell_hist", "reaction", "absent"];
    (filters, groups, metrics)
}
