//! Embedded SQLite store: WAL, `synchronous=FULL`, one writer connection on a
//! dedicated thread that group-commits concurrent write jobs (each job in its own
//! savepoint), and a small pool of reader connections used from `spawn_blocking`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::*;
use crate::rollup;

/// Versioned migrations, applied in order at open.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tokens (
  id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, kind TEXT NOT NULL,
  rep TEXT, territory TEXT, label TEXT, created_at INTEGER NOT NULL, revoked_at INTEGER);
CREATE TABLE hcps (
  hcp TEXT PRIMARY KEY, specialty TEXT NOT NULL, institution TEXT NOT NULL,
  region TEXT NOT NULL, segment TEXT NOT NULL);
CREATE TABLE blobs (key TEXT PRIMARY KEY, bytes BLOB NOT NULL);
CREATE TABLE versions (
  bundle_hash TEXT PRIMARY KEY, deck_id TEXT NOT NULL, version TEXT NOT NULL,
  title TEXT NOT NULL, locale TEXT NOT NULL, product TEXT, approval_code TEXT NOT NULL,
  valid_from TEXT NOT NULL, valid_until TEXT NOT NULL, territories TEXT NOT NULL,
  published_at INTEGER NOT NULL, retired_at INTEGER, UNIQUE (deck_id, version));
CREATE TABLE events (
  id BLOB PRIMARY KEY, session_id TEXT NOT NULL, seq INTEGER NOT NULL,
  device_id TEXT NOT NULL, deck_id TEXT NOT NULL, deck_version TEXT NOT NULL,
  bundle_hash TEXT NOT NULL, slide_id TEXT, type TEXT NOT NULL, channel TEXT NOT NULL,
  rep_id TEXT, territory TEXT, hcp TEXT, token_id TEXT NOT NULL,
  client_time INTEGER NOT NULL, sent_at INTEGER NOT NULL, received_at INTEGER NOT NULL,
  corrected_time INTEGER NOT NULL, preview INTEGER NOT NULL,
  dwell_ms INTEGER, ord INTEGER, val INTEGER, body TEXT NOT NULL);
CREATE INDEX events_session ON events (session_id);
CREATE TABLE rollup (
  metric TEXT NOT NULL, deck TEXT NOT NULL, grain INTEGER NOT NULL, day INTEGER NOT NULL,
  version TEXT NOT NULL, channel TEXT NOT NULL, territory TEXT NOT NULL,
  specialty TEXT NOT NULL, region TEXT NOT NULL, institution TEXT NOT NULL,
  segment TEXT NOT NULL, k1 TEXT NOT NULL, k2 TEXT NOT NULL,
  n INTEGER NOT NULL, s INTEGER NOT NULL,
  PRIMARY KEY (metric, deck, grain, day, version, channel, territory, specialty, region,
               institution, segment, k1, k2)) WITHOUT ROWID;
CREATE TABLE reach (
  deck TEXT NOT NULL, version TEXT NOT NULL, day INTEGER NOT NULL, channel TEXT NOT NULL,
  territory TEXT NOT NULL, specialty TEXT NOT NULL, region TEXT NOT NULL,
  institution TEXT NOT NULL, segment TEXT NOT NULL, hcp TEXT NOT NULL,
  PRIMARY KEY (deck, day, version, channel, territory, specialty, region, institution,
               segment, hcp)) WITHOUT ROWID;
"#,
    ),
    (
        2,
        r#"
CREATE TABLE reach_total (
  deck TEXT NOT NULL, version TEXT NOT NULL, channel TEXT NOT NULL, hcp TEXT NOT NULL,
  PRIMARY KEY (deck, version, channel, hcp)) WITHOUT ROWID;
INSERT OR IGNORE INTO reach_total SELECT DISTINCT deck, version, channel, hcp FROM reach;
"#,
    ),
    (
        3,
        // Rollup keys interned: (metric, deck, version, k1, k2) into `rkey` ids and the
        // dimension tuple (grain, channel, territory, specialty, region, institution,
        // segment) into `cohort` ids, so rollup rows are keyed by three integers. The
        // existing rollup and reach rows are carried over exactly (same sums).
        r#"
CREATE TABLE rkey (
  id INTEGER PRIMARY KEY, metric TEXT NOT NULL, deck TEXT NOT NULL, version TEXT NOT NULL,
  k1 TEXT NOT NULL, k2 TEXT NOT NULL, UNIQUE (metric, deck, version, k1, k2));
CREATE TABLE cohort (
  id INTEGER PRIMARY KEY, grain INTEGER NOT NULL, channel TEXT NOT NULL,
  territory TEXT NOT NULL, specialty TEXT NOT NULL, region TEXT NOT NULL,
  institution TEXT NOT NULL, segment TEXT NOT NULL,
  UNIQUE (grain, channel, territory, specialty, region, institution, segment));
INSERT OR IGNORE INTO rkey (metric, deck, version, k1, k2)
  SELECT DISTINCT metric, deck, version, k1, k2 FROM rollup;
INSERT OR IGNORE INTO rkey (metric, deck, version, k1, k2)
  SELECT DISTINCT 'reach', deck, version, '', '' FROM reach;
INSERT OR IGNORE INTO cohort (grain, channel, territory, specialty, region, institution, segment)
  SELECT DISTINCT grain, channel, territory, specialty, region, institution, segment FROM rollup;
INSERT OR IGNORE INTO cohort (grain, channel, territory, specialty, region, institution, segment)
  SELECT DISTINCT 1, channel, territory, specialty, region, institution, segment FROM reach;
CREATE TABLE rollup3 (
  key INTEGER NOT NULL, cohort INTEGER NOT NULL, day INTEGER NOT NULL,
  n INTEGER NOT NULL, s INTEGER NOT NULL,
  PRIMARY KEY (key, cohort, day)) WITHOUT ROWID;
INSERT INTO rollup3 (key, cohort, day, n, s)
  SELECT k.id, c.id, r.day, SUM(r.n), SUM(r.s) FROM rollup r
  JOIN rkey k ON k.metric = r.metric AND k.deck = r.deck AND k.version = r.version
    AND k.k1 = r.k1 AND k.k2 = r.k2
  JOIN cohort c ON c.grain = r.grain AND c.channel = r.channel AND c.territory = r.territory
    AND c.specialty = r.specialty AND c.region = r.region AND c.institution = r.institution
    AND c.segment = r.segment
  GROUP BY k.id, c.id, r.day;
DROP TABLE rollup;
ALTER TABLE rollup3 RENAME TO rollup;
CREATE TABLE reach3 (
  dv INTEGER NOT NULL, cohort INTEGER NOT NULL, day INTEGER NOT NULL, hcp TEXT NOT NULL,
  PRIMARY KEY (dv, cohort, day, hcp)) WITHOUT ROWID;
INSERT OR IGNORE INTO reach3 (dv, cohort, day, hcp)
  SELECT k.id, c.id, r.day, r.hcp FROM reach r
  JOIN rkey k ON k.metric = 'reach' AND k.deck = r.deck AND k.version = r.version
    AND k.k1 = '' AND k.k2 = ''
  JOIN cohort c ON c.grain = 1 AND c.channel = r.channel AND c.territory = r.territory
    AND c.specialty = r.specialty AND c.region = r.region AND c.institution = r.institution
    AND c.segment = r.segment;
DROP TABLE reach;
ALTER TABLE reach3 RENAME TO reach;
CREATE INDEX events_time ON events (corrected_time);
"#,
    ),
    (
        4,
        r#"
CREATE TABLE audit (
  id INTEGER PRIMARY KEY, at INTEGER NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL,
  target TEXT NOT NULL, outcome TEXT NOT NULL);
"#,
    ),
    (
        5,
        // Session closing (see `rollup`): one row per (non-preview) session. `dirty`: it
        // has events not reflected in the session-level rollups (open); `contrib`: what
        // it contributed when last closed; `frozen`: retention deleted some of its
        // events. Sessions stored before this migration: those with a `session_end`
        // are counted already, with an unknown contribution (frozen); the others are
        // open and the close job closes them.
        r#"
CREATE TABLE sess (
  session_id TEXT PRIMARY KEY, last_rx INTEGER NOT NULL, dirty INTEGER NOT NULL,
  frozen INTEGER NOT NULL DEFAULT 0, closed_at INTEGER, contrib TEXT) WITHOUT ROWID;
CREATE INDEX sess_open ON sess (last_rx) WHERE dirty = 1;
INSERT INTO sess (session_id, last_rx, dirty, frozen)
  SELECT session_id, MAX(received_at), 1 - MAX(type = 'session_end'), MAX(type = 'session_end')
  FROM events WHERE preview = 0 GROUP BY session_id;
"#,
    ),
    (
        6,
        // Rollup and reach deltas are written here by each commit and folded into
        // `rollup` / `reach` about once a second ([`fold_range`]); queries read both
        // ([`with_pending`]), so figures are exact at every commit. `seq` tells one
        // commit's delta of a rollup row from another's (the writer's commit count;
        // restarts at 0 after the fold the writer does when it starts).
        r#"
CREATE TABLE rollup_pending (
  key INTEGER NOT NULL, cohort INTEGER NOT NULL, day INTEGER NOT NULL, seq INTEGER NOT NULL,
  n INTEGER NOT NULL, s INTEGER NOT NULL,
  PRIMARY KEY (key, cohort, day, seq)) WITHOUT ROWID;
CREATE TABLE reach_pending (
  dv INTEGER NOT NULL, cohort INTEGER NOT NULL, day INTEGER NOT NULL, hcp TEXT NOT NULL,
  PRIMARY KEY (dv, cohort, day, hcp)) WITHOUT ROWID;
"#,
    ),
];

/// The rows of `table` (`rollup` or `reach`) and of its pending deltas (not folded yet,
/// [`fold_range`]) that match `w` (over `r.`): a subquery aliased `r`. The condition
/// is written into both arms (SQLite does not push `IN (subquery)` terms into a UNION
/// ALL), so `table` is still read by primary-key seeks; `p` is the condition's
/// parameters, returned twice.
fn with_pending(table: &str, cols: &str, w: &str, p: Vec<Param>) -> (String, Vec<Param>) {
    let src = format!(
        "(SELECT {cols} FROM {table} r WHERE {w}
          UNION ALL SELECT {cols} FROM {table}_pending r WHERE {w}) r"
    );
    let mut both = p.clone();
    both.extend(p);
    (src, both)
}

/// How often every pending delta is folded into `rollup` and `reach` (at the latest).
///
/// Why not upsert them directly: `rollup` is keyed (key, cohort, day) for reads, so
/// one commit's deltas land on as many b-tree pages as it has distinct (key, cohort)
/// pairs, all over a table of millions of rows, and every such page was written to the
/// WAL again at every commit. Writing to the small `rollup_pending` touches few pages;
/// the fold then writes each touched `rollup` page about once per interval instead of
/// once per commit (measured in BENCHMARKS.md, "Pending rollup deltas").
const FOLD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The fold is spread over commits so no commit waits for a whole interval's fold
/// (batch latency): every `FOLD_EVERY / FOLD_SLICES` a commit folds the pending rows of
/// the next slice of key ids (each slice once per interval); an idle writer folds all.
const FOLD_SLICES: u32 = 16;

/// The writer's folding state (see [`FOLD_SLICES`]).
struct Folder {
    /// First key id of the next slice to fold.
    next_key: i64,
    last: std::time::Instant,
    /// Deltas written since the last complete fold.
    pending: bool,
}

impl Folder {
    /// Whether this commit folds a slice.
    fn due(&self) -> bool {
        self.last.elapsed() >= FOLD_EVERY / FOLD_SLICES
    }

    /// Fold the next slice of key ids (inside the caller's transaction); returns the
    /// first key id of the slice after it, to keep once the transaction commits.
    fn fold_slice(&self, c: &Connection) -> Result<i64, StoreError> {
        let max: i64 = c.query_row("SELECT COALESCE(MAX(id), 0) FROM rkey", [], |r| r.get(0))?;
        let step = (max / i64::from(FOLD_SLICES)).max(1);
        let lo = if self.next_key > max {
            0
        } else {
            self.next_key
        };
        fold_range(c, lo, lo + step)?;
        Ok(lo + step)
    }

    /// Fold everything pending, in a transaction of its own.
    fn fold_all(&mut self, conn: &Connection) {
        if !self.pending {
            return;
        }
        let folded = conn.execute_batch("BEGIN IMMEDIATE").is_ok()
            && fold_range(conn, i64::MIN, i64::MAX).is_ok()
            && conn.execute_batch("COMMIT").is_ok();
        if folded {
            self.pending = false;
            self.last = std::time::Instant::now();
        } else {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

type Finisher = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write job: runs inside the group's transaction (in its own savepoint); ingest jobs
/// hand their newly stored rows to the group, whose rollup deltas are computed and
/// written once, before commit.
type Job = Box<dyn FnOnce(&Connection, &mut Group) -> (bool, Finisher) + Send>;

/// The newly stored, non-preview events of one group commit.
#[derive(Default)]
pub(crate) struct Group {
    rows: Vec<EventRow>,
    /// Idle sessions the close job picked: closed before commit ([`track_sessions`]).
    close: Vec<String>,
}

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    readers: std::sync::Arc<Mutex<Vec<Connection>>>,
    /// Dropping the sender stops the checkpointer thread.
    checkpointer: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// WAL frames are copied into the database file on their own thread and connection
/// (PASSIVE: never blocks the writer or readers), so most of that work and its fsyncs
/// happen off the writer thread. The writer keeps SQLite's automatic checkpoint (at
/// 1000 WAL pages): it then finds the frames mostly copied already, and it is what lets
/// the WAL restart from its beginning (a checkpointer alone, always behind a busy
/// writer, let the WAL grow to gigabytes). Durability is the WAL's
/// (`synchronous=FULL`) either way.
fn checkpointer(path: PathBuf, stop: mpsc::Receiver<()>) {
    let conn = match open_conn(&path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "checkpointer: cannot open the database; the WAL will grow");
            return;
        }
    };
    loop {
        match stop.recv_timeout(CHECKPOINT_EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "checkpoint failed; retrying");
                }
            }
            _ => {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                return;
            }
        }
    }
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let c = Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "cache_size", -32_000)?;
    c.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(c)
}

/// Largest number of concurrent write jobs committed in one transaction.
const GROUP_COMMIT_MAX: usize = 64;

impl SqliteStore {
    /// Open (creating the directory and database on first run) and migrate.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join("edetail.sqlite3");
        let mut conn = open_conn(&path)?;
        migrate(&mut conn)?;
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let cp_path = path.clone();
        let cp = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpointer(cp_path, stop_rx))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            readers: std::sync::Arc::new(Mutex::new(Vec::new())),
            checkpointer: Mutex::new(Some((stop_tx, cp))),
        })
    }

    /// Stop accepting writes, finish queued ones and join the writer thread.
    pub fn close(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        if let Some((stop, t)) = self.checkpointer.lock().ok().and_then(|mut c| c.take()) {
            drop(stop);
            let _ = t.join();
        }
    }

    fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, R> {
        self.write_with(move |c, _| f(c))
    }

    fn write_with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut Group) -> Result<R, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, R> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<R, StoreError>>();
        let job: Job = Box::new(move |c, group| {
            let r = f(c, group);
            let ok = r.is_ok();
            let fin: Finisher = Box::new(move |commit| {
                let out = match (r, commit) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
                };
                let _ = tx.send(out);
            });
            (ok, fin)
        });
        let sent = self
            .writer
            .lock()
            .ok()
            .and_then(|w| w.as_ref().map(|s| s.send(job).is_ok()))
            .unwrap_or(false);
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Unavailable("the store is shutting down".into()));
            }
            rx.await
                .map_err(|_| StoreError::Unavailable("writer thread stopped".into()))?
        })
    }

    fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, R> {
        let pool = self.readers.clone();
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let conn = pool.lock().ok().and_then(|mut p| p.pop());
                let conn = match conn {
                    Some(c) => c,
                    None => open_conn(&path)?,
                };
                let r = f(&conn);
                if let Ok(mut p) = pool.lock()
                    && p.len() < 8
                {
                    p.push(conn);
                }
                r
            })
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, i64::MAX)
}

/// Apply the migrations up to version `upto`.
fn migrate_to(conn: &mut Connection, upto: i64) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= upto) {
        let done: Option<i64> = conn
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [v],
                |r| r.get(0),
            )
            .optional()?;
        if done.is_some() {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![v, crate::util::now_ms()],
        )?;
        tx.commit()?;
        tracing::info!(version = v, "applied SQLite migration");
    }
    Ok(())
}

/// The writer's cache of interned rollup key and cohort ids (valid only for committed
/// transactions: cleared when a group fails to commit).
#[derive(Default)]
struct Interned {
    keys: HashMap<rollup::KeyDims, i64>,
    cohorts: HashMap<rollup::Cohort, i64>,
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>) {
    let mut interned = Interned::default();
    // Deltas left pending by an earlier process: folded first, so `seq` restarts at 0.
    let mut folder = Folder {
        next_key: 0,
        last: std::time::Instant::now(),
        pending: true,
    };
    folder.fold_all(&conn);
    let mut seq: i64 = 0;
    loop {
        let first = match rx.recv_timeout(FOLD_EVERY / FOLD_SLICES) {
            Ok(j) => j,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Idle: fold everything, so queries find nothing pending.
                folder.fold_all(&conn);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut jobs = vec![first];
        while jobs.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut fins = Vec::with_capacity(jobs.len());
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Run nothing; fail every job of the group.
            let msg = e.to_string();
            for j in jobs {
                let (_, fin) = j(&conn_failing(), &mut Group::default());
                fin(Err(msg.clone()));
            }
            continue;
        }
        let mut group = Group::default();
        for j in jobs {
            let sp = conn.execute_batch("SAVEPOINT job");
            let (ok, fin) = j(&conn, &mut group);
            if sp.is_ok() {
                if ok {
                    let _ = conn.execute_batch("RELEASE job");
                } else {
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                }
            }
            fins.push(fin);
        }
        let fold = folder.due();
        let mut next_key = folder.next_key;
        let wrote = !(group.rows.is_empty() && group.close.is_empty());
        seq += 1;
        let commit = if wrote {
            group_deltas(&conn, &group)
                .and_then(|d| write_deltas(&conn, &d, &mut interned, seq))
                .map_err(|e| e.to_string())
        } else {
            Ok(())
        }
        .and_then(|()| {
            if fold {
                next_key = folder.fold_slice(&conn).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .and_then(|()| conn.execute_batch("COMMIT").map_err(|e| e.to_string()));
        if commit.is_ok() {
            folder.pending |= wrote;
            if fold {
                folder.next_key = next_key;
                folder.last = std::time::Instant::now();
            }
        } else {
            let _ = conn.execute_batch("ROLLBACK");
            // Ids interned in the rolled-back transaction no longer exist.
            interned = Interned::default();
        }
        for f in fins {
            f(commit.clone());
        }
    }
    // Shutting down: fold what is pending (only tidiness: queries read it either way).
    folder.fold_all(&conn);
}

/// Fold the pending deltas of key ids `lo..hi` into `rollup` and `reach` (inside the
/// caller's transaction): one upsert per distinct (key, cohort, day), in primary-key
/// order; rows a replaced session contribution leaves at zero are deleted, so figures
/// equal those of the sessions' events arriving together.
fn fold_range(c: &Connection, lo: i64, hi: i64) -> Result<(), StoreError> {
    // Rows a negative delta may leave at zero (rare: only re-closed sessions).
    let emptied: Vec<(i64, i64, i64)> = c
        .prepare_cached(
            "SELECT DISTINCT key, cohort, day FROM rollup_pending
             WHERE key >= ?1 AND key < ?2 AND n < 0",
        )?
        .query_map([lo, hi], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    c.prepare_cached(
        "INSERT INTO rollup (key, cohort, day, n, s)
           SELECT key, cohort, day, SUM(n), SUM(s) FROM rollup_pending
           WHERE key >= ?1 AND key < ?2
           GROUP BY key, cohort, day HAVING SUM(n) != 0 OR SUM(s) != 0
         ON CONFLICT DO UPDATE SET n = n + excluded.n, s = s + excluded.s",
    )?
    .execute([lo, hi])?;
    let mut del = c.prepare_cached(
        "DELETE FROM rollup WHERE key = ?1 AND cohort = ?2 AND day = ?3 AND n = 0 AND s = 0",
    )?;
    for (k, h, d) in emptied {
        del.execute(params![k, h, d])?;
    }
    for sql in [
        "DELETE FROM rollup_pending WHERE key >= ?1 AND key < ?2",
        "INSERT INTO reach (dv, cohort, day, hcp)
           SELECT dv, cohort, day, hcp FROM reach_pending WHERE dv >= ?1 AND dv < ?2
         ON CONFLICT DO NOTHING",
        "DELETE FROM reach_pending WHERE dv >= ?1 AND dv < ?2",
    ] {
        c.prepare_cached(sql)?.execute([lo, hi])?;
    }
    Ok(())
}

/// An in-memory connection handed to jobs when the real transaction could not start;
/// whatever they do is discarded.
fn conn_failing() -> Connection {
    Connection::open_in_memory().unwrap_or_else(|_| {
        // Opening an in-memory database does not fail in practice.
        std::process::abort()
    })
}

fn bind(p: &[Param]) -> Vec<rusqlite::types::Value> {
    p.iter()
        .map(|p| match p {
            Param::Text(s) => rusqlite::types::Value::Text(s.clone()),
            Param::Int(i) => rusqlite::types::Value::Integer(*i),
        })
        .collect()
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let kind: String = r.get(2)?;
    Ok(TokenRecord {
        id: r.get(0)?,
        secret_hash: r.get(1)?,
        kind: TokenKind::parse(&kind).unwrap_or(TokenKind::Device),
        rep: r.get(3)?,
        territory: r.get(4)?,
        label: r.get(5)?,
        created_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

/// Insert the events (duplicates ignored); the newly stored, non-preview ones go to the
/// group, whose rollup deltas are written before commit ([`group_deltas`]).
fn ingest_events(
    c: &Connection,
    rows: Vec<EventRow>,
    group: &mut Group,
) -> Result<Vec<bool>, StoreError> {
    let mut ins = c.prepare_cached(
        "INSERT INTO events (id, session_id, seq, device_id, deck_id, deck_version, bundle_hash,
           slide_id, type, channel, rep_id, territory, hcp, token_id, client_time, sent_at,
           received_at, corrected_time, preview, dwell_ms, ord, val, body)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23)
         ON CONFLICT (id) DO NOTHING",
    )?;
    let mut flags = Vec::with_capacity(rows.len());
    for r in &rows {
        let n = ins.execute(params![
            &r.id[..],
            r.session_id,
            r.seq,
            r.device_id,
            r.deck_id,
            r.deck_version,
            r.bundle_hash,
            r.slide_id,
            r.etype,
            r.channel,
            r.rep,
            r.territory,
            r.hcp,
            r.token_id,
            r.client_time,
            r.sent_at,
            r.received_at,
            r.corrected_time,
            r.preview,
            r.dwell_ms,
            r.ord,
            r.val,
            r.body,
        ])?;
        flags.push(n == 1);
    }
    for (r, f) in rows.into_iter().zip(&flags) {
        if *f && !r.preview {
            group.rows.push(r);
        }
    }
    Ok(flags)
}

/// The rollup deltas of a group's new events (directory rows looked up once per group)
/// and of the sessions it closes ([`track_sessions`]).
fn group_deltas(c: &Connection, group: &Group) -> Result<rollup::Deltas, StoreError> {
    let fresh: Vec<&EventRow> = group.rows.iter().collect();
    let (hcp_ids, ended) = rollup::needs(&fresh);
    let mut hcps = HashMap::new();
    {
        let mut q = c.prepare_cached(
            "SELECT hcp, specialty, institution, region, segment FROM hcps WHERE hcp = ?1",
        )?;
        for h in &hcp_ids {
            if let Some(rec) = q
                .query_row([h], |r| {
                    Ok(HcpRecord {
                        hcp: r.get(0)?,
                        specialty: r.get(1)?,
                        institution: r.get(2)?,
                        region: r.get(3)?,
                        segment: r.get(4)?,
                    })
                })
                .optional()?
            {
                hcps.insert(h.clone(), rec);
            }
        }
    }
    let mut d = rollup::compute(&fresh, &hcps);
    track_sessions(c, group, ended, &mut hcps, &mut d)?;
    Ok(d)
}

/// Session closing in the group's transaction: every session with new events is
/// marked open with its latest receive time; then the sessions with a new
/// `session_end` and those the close job picked are closed.
fn track_sessions(
    c: &Connection,
    group: &Group,
    ended: Vec<String>,
    hcps: &mut HashMap<String, HcpRecord>,
    d: &mut rollup::Deltas,
) -> Result<(), StoreError> {
    let mut last: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for r in &group.rows {
        let e = last.entry(r.session_id.as_str()).or_insert(r.received_at);
        *e = (*e).max(r.received_at);
    }
    let close: std::collections::BTreeSet<&str> = ended
        .iter()
        .chain(&group.close)
        .map(String::as_str)
        .collect();
    // Sessions closed in this commit are written once, closed, below.
    let mut up = c.prepare_cached(
        "INSERT INTO sess (session_id, last_rx, dirty) VALUES (?1, ?2, 1)
         ON CONFLICT DO UPDATE SET last_rx = max(last_rx, excluded.last_rx), dirty = 1",
    )?;
    for (s, rx) in &last {
        if !close.contains(s) {
            up.execute(params![s, rx])?;
        }
    }
    if close.is_empty() {
        return Ok(());
    }
    let mut st = c.prepare_cached("SELECT contrib, frozen FROM sess WHERE session_id = ?1")?;
    let mut ev = c.prepare_cached(&format!(
        "SELECT {SESSION_ITEM_COLS} FROM events WHERE session_id = ?1 AND preview = 0"
    ))?;
    let mut hq = c.prepare_cached(
        "SELECT specialty, institution, region, segment FROM hcps WHERE hcp = ?1",
    )?;
    let mut done = c.prepare_cached(
        "INSERT INTO sess (session_id, last_rx, dirty, contrib, closed_at) VALUES (?1, ?2, 0, ?3, ?4)
         ON CONFLICT DO UPDATE SET last_rx = max(last_rx, excluded.last_rx), dirty = 0,
           contrib = excluded.contrib, closed_at = excluded.closed_at",
    )?;
    let now = crate::util::now_ms();
    for s in close {
        let state = st
            .query_row([s], session_state)
            .optional()?
            .unwrap_or_default();
        let items = ev
            .query_map([s], session_item)?
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(h) =
            rollup::SessionContribution::representative(&items).and_then(|r| r.hcp.clone())
            && !hcps.contains_key(&h)
            && let Some(rec) = hq
                .query_row([&h], |r| {
                    Ok(HcpRecord {
                        hcp: h.clone(),
                        specialty: r.get(0)?,
                        institution: r.get(1)?,
                        region: r.get(2)?,
                        segment: r.get(3)?,
                    })
                })
                .optional()?
        {
            hcps.insert(h, rec);
        }
        let contrib = rollup::reclose(d, &state, &items, hcps);
        let rx = last.get(s).copied().unwrap_or(0);
        done.execute(params![s, rx, contrib, now])?;
    }
    Ok(())
}

fn session_state(r: &rusqlite::Row<'_>) -> rusqlite::Result<rollup::SessionState> {
    Ok(rollup::SessionState {
        contrib: r.get(0)?,
        frozen: r.get::<_, i64>(1)? != 0,
    })
}

/// A [`SessionItem`] from a row of [`SESSION_ITEM_COLS`].
fn session_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionItem> {
    Ok(SessionItem {
        etype: r.get(1)?,
        slide_id: r.get(2)?,
        seq: r.get(3)?,
        ord: r.get(4)?,
        val: r.get(5)?,
        deck: r.get(6)?,
        version: r.get(7)?,
        channel: r.get(8)?,
        territory: r.get(9)?,
        hcp: r.get(10)?,
        corrected_time: r.get(11)?,
    })
}

/// The database id of each interned key of `d` (inserting new ones).
fn key_ids(
    c: &Connection,
    d: &rollup::Deltas,
    cache: &mut Interned,
) -> Result<(Vec<i64>, Vec<i64>), StoreError> {
    let mut keys = Vec::with_capacity(d.keys.len());
    for k in &d.keys {
        if let Some(id) = cache.keys.get(k) {
            keys.push(*id);
            continue;
        }
        c.prepare_cached(
            "INSERT INTO rkey (metric, deck, version, k1, k2) VALUES (?1,?2,?3,?4,?5)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![k.metric, k.deck, k.version, k.k1, k.k2])?;
        let id: i64 = c
            .prepare_cached(
                "SELECT id FROM rkey WHERE metric = ?1 AND deck = ?2 AND version = ?3
                 AND k1 = ?4 AND k2 = ?5",
            )?
            .query_row(params![k.metric, k.deck, k.version, k.k1, k.k2], |r| {
                r.get(0)
            })?;
        cache.keys.insert(k.clone(), id);
        keys.push(id);
    }
    let mut cohorts = Vec::with_capacity(d.cohorts.len());
    for h in &d.cohorts {
        if let Some(id) = cache.cohorts.get(h) {
            cohorts.push(*id);
            continue;
        }
        c.prepare_cached(
            "INSERT INTO cohort (grain, channel, territory, specialty, region, institution,
               segment) VALUES (?1,?2,?3,?4,?5,?6,?7) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            h.grain,
            h.channel,
            h.territory,
            h.specialty,
            h.region,
            h.institution,
            h.segment
        ])?;
        let id: i64 = c
            .prepare_cached(
                "SELECT id FROM cohort WHERE grain = ?1 AND channel = ?2 AND territory = ?3
                 AND specialty = ?4 AND region = ?5 AND institution = ?6 AND segment = ?7",
            )?
            .query_row(
                params![
                    h.grain,
                    h.channel,
                    h.territory,
                    h.specialty,
                    h.region,
                    h.institution,
                    h.segment
                ],
                |r| r.get(0),
            )?;
        cache.cohorts.insert(h.clone(), id);
        cohorts.push(id);
    }
    Ok((keys, cohorts))
}

/// Append the group's deltas to the pending tables (folded later, [`fold_range`]):
/// one row per distinct (key, cohort, day) with a non-zero delta, and the physicians
/// reached.
fn write_deltas(
    c: &Connection,
    d: &rollup::Deltas,
    cache: &mut Interned,
    seq: i64,
) -> Result<(), StoreError> {
    let (keys, cohorts) = key_ids(c, d, cache)?;
    let mut up = c.prepare_cached(
        "INSERT INTO rollup_pending (key, cohort, day, seq, n, s) VALUES (?1,?2,?3,?4,?5,?6)",
    )?;
    for ((k, h, day), (n, s)) in &d.rollup {
        // A session closed again with the same figures nets to zero.
        if *n != 0 || *s != 0 {
            up.execute(params![
                keys[*k as usize],
                cohorts[*h as usize],
                day,
                seq,
                n,
                s
            ])?;
        }
    }
    let mut rq = c.prepare_cached(
        "INSERT INTO reach_pending (dv, cohort, day, hcp) VALUES (?1,?2,?3,?4)
         ON CONFLICT DO NOTHING",
    )?;
    for (k, h, day, hcp) in &d.reach {
        rq.execute(params![keys[*k as usize], cohorts[*h as usize], day, hcp])?;
    }
    let mut rt = c.prepare_cached(
        "INSERT INTO reach_total (deck, version, channel, hcp) VALUES (?1,?2,?3,?4)
         ON CONFLICT DO NOTHING",
    )?;
    for (deck, version, channel, hcp) in &d.reach_total {
        rt.execute(params![deck, version, channel, hcp])?;
    }
    Ok(())
}

const VERSION_COLS: &str = "bundle_hash, deck_id, version, title, locale, product, approval_code,
  valid_from, valid_until, territories, published_at, retired_at";

fn version_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRecord> {
    let terr: String = r.get(9)?;
    Ok(VersionRecord {
        bundle_hash: r.get(0)?,
        deck_id: r.get(1)?,
        version: r.get(2)?,
        title: r.get(3)?,
        locale: r.get(4)?,
        product: r.get(5)?,
        approval_code: r.get(6)?,
        valid_from: r.get(7)?,
        valid_until: r.get(8)?,
        territories: split_list(&terr),
        published_at: r.get(10)?,
        retired_at: r.get(11)?,
    })
}

pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn meta_get_or_init(&self, key: &str, value: String) -> StoreFuture<'_, String> {
        let key = key.to_string();
        self.write(move |c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![key, value],
            )?;
            Ok(
                c.query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    fn insert_token(&self, t: TokenRecord) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO tokens (id, secret_hash, kind, rep, territory, label, created_at, revoked_at)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                params![t.id, t.secret_hash, t.kind.as_str(), t.rep, t.territory, t.label, t.created_at, t.revoked_at],
            )?;
            Ok(())
        })
    }

    fn get_token(&self, id: &str) -> StoreFuture<'_, Option<TokenRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT id, secret_hash, kind, rep, territory, label, created_at, revoked_at FROM tokens WHERE id = ?1",
            )?
            .query_row([id], token_from_row)
            .optional()?)
        })
    }

    fn revoke_token(&self, id: &str, at: i64) -> StoreFuture<'_, bool> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![id, at],
            )?;
            Ok(n == 1)
        })
    }

    fn list_tokens(&self) -> StoreFuture<'_, Vec<TokenRecord>> {
        self.read(|c| {
            let mut q = c.prepare(
                "SELECT id, secret_hash, kind, rep, territory, label, created_at, revoked_at FROM tokens ORDER BY created_at, id",
            )?;
            let rows = q.query_map([], token_from_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn upsert_hcps(&self, rows: Vec<HcpRecord>) -> StoreFuture<'_, u64> {
        self.write(move |c| {
            let mut q = c.prepare_cached(
                "INSERT INTO hcps (hcp, specialty, institution, region, segment) VALUES (?1,?2,?3,?4,?5)
                 ON CONFLICT (hcp) DO UPDATE SET specialty = excluded.specialty,
                   institution = excluded.institution, region = excluded.region, segment = excluded.segment",
            )?;
            for h in &rows {
                q.execute(params![h.hcp, h.specialty, h.institution, h.region, h.segment])?;
            }
            Ok(rows.len() as u64)
        })
    }

    fn publish(&self, v: NewVersion) -> StoreFuture<'_, PublishOutcome> {
        self.write(move |c| {
            let r = &v.record;
            let existing: Option<String> = c
                .query_row(
                    "SELECT bundle_hash FROM versions WHERE deck_id = ?1 AND version = ?2",
                    params![r.deck_id, r.version],
                    |x| x.get(0),
                )
                .optional()?;
            match existing {
                Some(h) if h == r.bundle_hash => return Ok(PublishOutcome::AlreadyPublished),
                Some(h) => {
                    return Err(StoreError::Conflict(format!(
                        "deck `{}` version {} is already published with bundle {h}; versions are immutable, bump the version",
                        r.deck_id, r.version
                    )));
                }
                None => {}
            }
            let other: Option<String> = c
                .query_row(
                    "SELECT deck_id || ' ' || version FROM versions WHERE bundle_hash = ?1",
                    [&r.bundle_hash],
                    |x| x.get(0),
                )
                .optional()?;
            if let Some(o) = other {
                return Err(StoreError::Conflict(format!(
                    "bundle {} is already published as {o}",
                    r.bundle_hash
                )));
            }
            let mut b = c.prepare_cached(
                "INSERT INTO blobs (key, bytes) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
            for (k, bytes) in &v.blobs {
                b.execute(params![k, bytes])?;
            }
            c.execute(
                &format!("INSERT INTO versions ({VERSION_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)"),
                params![
                    r.bundle_hash, r.deck_id, r.version, r.title, r.locale, r.product,
                    r.approval_code, r.valid_from, r.valid_until, r.territories.join(","),
                    r.published_at, r.retired_at
                ],
            )?;
            Ok(PublishOutcome::Created)
        })
    }

    fn retire(&self, deck: &str, version: &str, at: i64) -> StoreFuture<'_, bool> {
        let (deck, version) = (deck.to_string(), version.to_string());
        self.write(move |c| {
            let n = c.execute(
                "UPDATE versions SET retired_at = COALESCE(retired_at, ?3) WHERE deck_id = ?1 AND version = ?2",
                params![deck, version, at],
            )?;
            Ok(n == 1)
        })
    }

    fn versions(&self) -> StoreFuture<'_, Vec<VersionRecord>> {
        self.read(|c| {
            let mut q = c.prepare_cached(&format!(
                "SELECT {VERSION_COLS} FROM versions ORDER BY deck_id, published_at"
            ))?;
            let rows = q
                .query_map([], version_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn blob(&self, key: &str) -> StoreFuture<'_, Option<Vec<u8>>> {
        let key = key.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT bytes FROM blobs WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })
    }

    fn ingest(&self, rows: Vec<EventRow>) -> StoreFuture<'_, Vec<bool>> {
        self.write_with(move |c, group| ingest_events(c, rows, group))
    }

    fn rollup(
        &self,
        metric: &str,
        filter: &Filter,
        group: GroupBy,
    ) -> StoreFuture<'_, Vec<AggRow>> {
        let (sql, p) = rollup_sql(metric, filter, group);
        let arity = group.arity();
        self.read(move |c| agg_query(c, &sql, &p, arity))
    }

    fn reach(&self, filter: &Filter, group: GroupBy) -> StoreFuture<'_, Vec<AggRow>> {
        let (sql, p) = reach_sql(filter, group);
        self.read(move |c| agg_query(c, &sql, &p, 1))
    }

    fn clickstream(&self, filter: &Filter) -> StoreFuture<'_, Vec<ClickRow>> {
        let f = filter.clone();
        self.read(move |c| {
            let (sql, p) =
                clickstream_sql(&f, "CAST(json_extract(e.body, '$.enter_time') AS INTEGER)");
            let mut q = c.prepare(&sql)?;
            let rows = q
                .query_map(params_from_iter(bind(&p)), |r| {
                    Ok(ClickRow {
                        session_id: r.get(0)?,
                        hcp: r.get(1)?,
                        rep: r.get(2)?,
                        deck_id: r.get(3)?,
                        deck_version: r.get(4)?,
                        slide_id: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                        start_ms: r.get(6)?,
                        dwell_ms: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
                        channel: r.get(8)?,
                        reaction: r.get(9)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn count_ids(&self, ids: Vec<[u8; 16]>) -> StoreFuture<'_, i64> {
        self.read(move |c| {
            let mut q = c.prepare_cached("SELECT COUNT(*) FROM events WHERE id = ?1")?;
            let mut n = 0i64;
            for id in &ids {
                n += q.query_row([&id[..]], |r| r.get::<_, i64>(0))?;
            }
            Ok(n)
        })
    }

    fn audit(&self, e: AuditEntry) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO audit (at, action, actor, target, outcome) VALUES (?1,?2,?3,?4,?5)",
            )?
            .execute(params![e.at, e.action, e.actor, e.target, e.outcome])?;
            Ok(())
        })
    }

    fn audit_log(&self, limit: i64) -> StoreFuture<'_, Vec<AuditEntry>> {
        self.read(move |c| {
            let mut q = c.prepare_cached(
                "SELECT id, at, action, actor, target, outcome FROM audit ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = q
                .query_map([limit], audit_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    fn purge_events(&self, before_ms: i64, unended_before_ms: i64) -> StoreFuture<'_, u64> {
        let sql = format!(
            "DELETE FROM events WHERE rowid IN (SELECT e.rowid FROM events e WHERE {PURGE_WHERE} LIMIT {PURGE_CHUNK})
             RETURNING session_id"
        );
        Box::pin(async move {
            let mut total = 0u64;
            loop {
                let sql = sql.clone();
                let n = self
                    .write(move |c| {
                        let ids = c
                            .prepare_cached(&sql)?
                            .query_map(params![before_ms, unended_before_ms], |r| {
                                r.get::<_, String>(0)
                            })?
                            .collect::<Result<Vec<_>, _>>()?;
                        let mut f = c.prepare_cached(
                            "UPDATE sess SET frozen = 1 WHERE session_id = ?1 AND frozen = 0",
                        )?;
                        let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
                        for s in distinct {
                            f.execute([s])?;
                        }
                        Ok(ids.len())
                    })
                    .await?;
                total += n as u64;
                if (n as i64) < PURGE_CHUNK {
                    return Ok(total);
                }
            }
        })
    }

    fn close_idle_sessions(&self, idle_before_ms: i64, limit: i64) -> StoreFuture<'_, u64> {
        // Picked in the writer's transaction and closed before its commit (one writer:
        // no other closing can interleave).
        self.write_with(move |c, group| {
            let ids = c
                .prepare_cached(
                    "SELECT session_id FROM sess WHERE dirty = 1 AND last_rx < ?1
                     ORDER BY last_rx LIMIT ?2",
                )?
                .query_map(params![idle_before_ms, limit], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let n = ids.len() as u64;
            group.close.extend(ids);
            Ok(n)
        })
    }

    fn session_status(&self) -> StoreFuture<'_, SessionStatus> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*), MIN(last_rx) FROM sess WHERE dirty = 1",
                [],
                |r| {
                    Ok(SessionStatus {
                        open: r.get(0)?,
                        oldest_open_ms: r.get(1)?,
                    })
                },
            )?)
        })
    }

    fn stats(&self) -> StoreFuture<'_, Stats> {
        self.read(|c| {
            let one =
                |sql: &str| -> Result<i64, StoreError> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
            Ok(Stats {
                backend: "sqlite".into(),
                events: one("SELECT COUNT(*) FROM events")?,
                rollup_rows: one("SELECT COUNT(*) FROM rollup")?,
                versions: one("SELECT COUNT(*) FROM versions")?,
                hcps: one("SELECT COUNT(*) FROM hcps")?,
            })
        })
    }
}

/// `r.key IN (...) AND r.cohort IN (...) [AND r.day ...]` over the interned schema:
/// the rollup primary key (key, cohort, day) is then read by seeks, never scanned.
pub(crate) fn interned_where(
    metric: &str,
    f: &Filter,
    grain: i64,
    dv: &str,
) -> (String, Vec<Param>) {
    let mut p = vec![Param::Text(metric.to_string())];
    let mut k = String::from("SELECT id FROM rkey WHERE metric = ?");
    for (col, v) in [("deck", &f.deck), ("version", &f.version)] {
        if let Some(v) = v {
            k.push_str(&format!(" AND {col} = ?"));
            p.push(Param::Text(v.clone()));
        }
    }
    let mut h = String::from("SELECT id FROM cohort WHERE grain = ?");
    p.push(Param::Int(grain));
    for (col, v) in [
        ("channel", &f.channel),
        ("territory", &f.territory),
        ("specialty", &f.specialty),
        ("region", &f.region),
        ("institution", &f.institution),
        ("segment", &f.segment),
    ] {
        if let Some(v) = v {
            h.push_str(&format!(" AND {col} = ?"));
            p.push(Param::Text(v.clone()));
        }
    }
    let mut w = format!("r.{dv} IN ({k}) AND r.cohort IN ({h})");
    if let Some(d) = f.from_day {
        w.push_str(" AND r.day >= ?");
        p.push(Param::Int(i64::from(d)));
    }
    if let Some(d) = f.to_day {
        w.push_str(" AND r.day <= ?");
        p.push(Param::Int(i64::from(d)));
    }
    (w, p)
}

/// Groups whose rows all net to zero: a pending negative delta (a re-closed session)
/// and the row it empties, not folded yet ([`fold_range`] deletes such rows). Rows are
/// never stored at zero otherwise, so this is what the folded table answers.
const NONZERO: &str = "HAVING SUM(r.n) != 0 OR SUM(r.s) != 0";

/// A rollup query: sums per interned key (or cohort, or day) first, then grouped by the
/// requested text columns.
fn rollup_sql(metric: &str, f: &Filter, group: GroupBy) -> (String, Vec<Param>) {
    let (w, p) = interned_where(metric, f, i64::from(f.needs_fine_grain()), "key");
    let (src, p) = with_pending("rollup", "r.key, r.cohort, r.day, r.n, r.s", &w, p);
    let sql = match group {
        GroupBy::Day => {
            format!(
                "SELECT CAST(r.day AS TEXT), SUM(r.n), SUM(r.s) FROM {src} GROUP BY r.day {NONZERO}"
            )
        }
        GroupBy::Channel => format!(
            "SELECT c.channel, SUM(x.n), SUM(x.s) FROM
               (SELECT r.cohort AS cohort, SUM(r.n) AS n, SUM(r.s) AS s FROM {src}
                GROUP BY r.cohort {NONZERO}) x
             JOIN cohort c ON c.id = x.cohort GROUP BY c.channel"
        ),
        g => {
            let cols = match g {
                GroupBy::Deck => "k.deck",
                GroupBy::Version => "k.version",
                GroupBy::K1 => "k.k1",
                _ => "k.k1, k.k2",
            };
            format!(
                "SELECT {cols}, SUM(x.n), SUM(x.s) FROM
                   (SELECT r.key AS key, SUM(r.n) AS n, SUM(r.s) AS s FROM {src}
                    GROUP BY r.key {NONZERO}) x
                 JOIN rkey k ON k.id = x.key GROUP BY {cols}"
            )
        }
    };
    (sql, p)
}

/// Distinct physicians reached: from `reach_total` when only deck, version and channel
/// are filtered, else from `reach` (grain-1 cohorts, per day).
fn reach_sql(f: &Filter, group: GroupBy) -> (String, Vec<Param>) {
    let total_group = matches!(
        group,
        GroupBy::Deck | GroupBy::Version | GroupBy::Channel | GroupBy::K1 | GroupBy::K1K2
    );
    if f.reach_total_suffices() && total_group {
        let (w, p) = filter_sql(None, f, false);
        let cols = match group {
            GroupBy::K1 | GroupBy::K1K2 => "deck",
            g => g.columns(),
        };
        return (
            format!("SELECT {cols}, COUNT(DISTINCT hcp), 0 FROM reach_total{w} GROUP BY {cols}"),
            p,
        );
    }
    let (w, p) = interned_where("reach", f, 1, "dv");
    let (src, p) = with_pending("reach", "r.dv, r.cohort, r.day, r.hcp", &w, p);
    let (cols, join) = match group {
        GroupBy::Day => ("CAST(r.day AS TEXT)", ""),
        GroupBy::Channel => ("c.channel", " JOIN cohort c ON c.id = r.cohort"),
        GroupBy::Version => ("k.version", " JOIN rkey k ON k.id = r.dv"),
        _ => ("k.deck", " JOIN rkey k ON k.id = r.dv"),
    };
    (
        format!("SELECT {cols}, COUNT(DISTINCT r.hcp), 0 FROM {src}{join} GROUP BY {cols}"),
        p,
    )
}

fn audit_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get(0)?,
        at: r.get(1)?,
        action: r.get(2)?,
        actor: r.get(3)?,
        target: r.get(4)?,
        outcome: r.get(5)?,
    })
}

fn agg_query(
    c: &Connection,
    sql: &str,
    p: &[Param],
    arity: usize,
) -> Result<Vec<AggRow>, StoreError> {
    let mut q = c.prepare_cached(sql)?;
    let rows = q
        .query_map(params_from_iter(bind(p)), |r| {
            let mut keys = Vec::with_capacity(arity);
            for i in 0..arity {
                keys.push(r.get::<_, Option<String>>(i)?.unwrap_or_default());
            }
            Ok(AggRow {
                keys,
                n: r.get::<_, Option<i64>>(arity)?.unwrap_or(0),
                s: r.get::<_, Option<i64>>(arity + 1)?.unwrap_or(0),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Clickstream query over raw slide views (an export, not a dashboard query).
/// Physician-dimension filters join the HCP directory.
pub(crate) fn clickstream_sql(f: &Filter, enter_time_expr: &str) -> (String, Vec<Param>) {
    let mut w = vec![
        "e.type = 'slide_view'".to_string(),
        "e.preview = ?".to_string(),
    ];
    let mut p = vec![Param::Int(0)];
    for (col, v) in [
        ("e.deck_id", &f.deck),
        ("e.deck_version", &f.version),
        ("e.channel", &f.channel),
        ("e.territory", &f.territory),
        ("h.specialty", &f.specialty),
        ("h.region", &f.region),
        ("h.institution", &f.institution),
        ("h.segment", &f.segment),
    ] {
        if let Some(v) = v {
            w.push(format!("{col} = ?"));
            p.push(Param::Text(v.clone()));
        }
    }
    if let Some(d) = f.from_day {
        w.push("e.corrected_time >= ?".into());
        p.push(Param::Int(i64::from(d) * 86_400_000));
    }
    if let Some(d) = f.to_day {
        w.push("e.corrected_time < ?".into());
        p.push(Param::Int((i64::from(d) + 1) * 86_400_000));
    }
    let sql = format!(
        "SELECT e.session_id, e.hcp, e.rep_id, e.deck_id, e.deck_version, e.slide_id,
           {enter_time_expr}, e.dwell_ms, e.channel,
           (SELECT r.val FROM events r WHERE r.session_id = e.session_id AND r.type = 'reaction'
              AND r.slide_id = e.slide_id ORDER BY r.seq DESC LIMIT 1)
         FROM events e LEFT JOIN hcps h ON h.hcp = e.hcp
         WHERE {}
         ORDER BY e.session_id, e.seq",
        w.join(" AND ")
    );
    (sql, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<AggRow>) -> Vec<AggRow> {
        v.sort_by(|a, b| a.keys.cmp(&b.keys));
        v
    }

    /// A database with the version-2 schema (13-text-column rollup keys) migrates to the
    /// interned schema with every figure unchanged: each rollup and reach query over the
    /// new tables equals the same query over the old ones.
    #[test]
    fn migration_3_keeps_every_rollup_and_reach_figure() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_conn(&dir.path().join("m.sqlite3")).unwrap();
        migrate_to(&mut c, 2).unwrap();
        let mut x: u64 = 7;
        let mut rnd = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        let pick = |a: &[&'static str], i: u64| a[i as usize % a.len()];
        for _ in 0..3000 {
            let metric = pick(&["view", "session", "dwell_hist", "reaction"], rnd(4));
            let (deck, version) = (pick(&["d1", "d2"], rnd(2)), pick(&["1.0", "2.0"], rnd(2)));
            let day = 20_000 + rnd(5) as i64;
            let ch = pick(&["mr_led", "remote", "self_serve"], rnd(3));
            let dims = [
                pick(&["T1", "T2", ""], rnd(3)),
                pick(&["GP", "Cardiology", ""], rnd(3)),
                pick(&["Seoul", "Busan"], rnd(2)),
                pick(&["Inst A", "Inst B"], rnd(2)),
                pick(&["A", "B"], rnd(2)),
            ];
            let (k1, k2) = (
                pick(&["s1", "s2", "q1"], rnd(3)),
                pick(&["", "01", "-1"], rnd(3)),
            );
            let (n, sum) = (1 + rnd(5) as i64, rnd(9000) as i64);
            for grain in [0i64, 1] {
                let d = if grain == 0 { ["*"; 5] } else { dims };
                c.execute(
                    "INSERT INTO rollup (metric, deck, grain, day, version, channel, territory,
                       specialty, region, institution, segment, k1, k2, n, s)
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)
                     ON CONFLICT DO UPDATE SET n = n + excluded.n, s = s + excluded.s",
                    params![
                        metric, deck, grain, day, version, ch, d[0], d[1], d[2], d[3], d[4], k1,
                        k2, n, sum
                    ],
                )
                .unwrap();
            }
            if metric == "session" {
                let hcp = format!("h{}", rnd(40));
                c.execute(
                    "INSERT OR IGNORE INTO reach (deck, version, day, channel, territory,
                       specialty, region, institution, segment, hcp)
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                    params![
                        deck, version, day, ch, dims[0], dims[1], dims[2], dims[3], dims[4], hcp
                    ],
                )
                .unwrap();
                c.execute(
                    "INSERT OR IGNORE INTO reach_total (deck, version, channel, hcp)
                     VALUES (?1,?2,?3,?4)",
                    params![deck, version, ch, hcp],
                )
                .unwrap();
            }
        }
        let (filters, groups, metrics) = super::migration_cases();
        let mut before = Vec::new();
        for f in &filters {
            for g in groups {
                for m in metrics {
                    // The version-2 queries.
                    let (w, p) = filter_sql(Some(m), f, true);
                    let cols = g.columns();
                    let sql =
                        format!("SELECT {cols}, SUM(n), SUM(s) FROM rollup{w} GROUP BY {cols}");
                    before.push(sorted(agg_query(&c, &sql, &p, g.arity()).unwrap()));
                }
                let (w, p) = filter_sql(None, f, false);
                let cols = match g {
                    GroupBy::K1 | GroupBy::K1K2 => "deck",
                    g => g.columns(),
                };
                let sql =
                    format!("SELECT {cols}, COUNT(DISTINCT hcp), 0 FROM reach{w} GROUP BY {cols}");
                before.push(sorted(agg_query(&c, &sql, &p, 1).unwrap()));
            }
        }
        assert!(before.iter().filter(|r| !r.is_empty()).count() > 100);
        migrate(&mut c).unwrap();
        let mut after = Vec::new();
        for f in &filters {
            for g in groups {
                for m in metrics {
                    let (sql, p) = rollup_sql(m, f, g);
                    after.push(sorted(agg_query(&c, &sql, &p, g.arity()).unwrap()));
                }
                let (sql, p) = reach_sql(f, g);
                after.push(sorted(agg_query(&c, &sql, &p, 1).unwrap()));
            }
        }
        assert_eq!(before.len(), after.len());
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert_eq!(b, a, "query {i}");
        }
    }
}
