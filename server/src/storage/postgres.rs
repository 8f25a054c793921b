//! PostgreSQL store (tokio-postgres + deadpool-postgres). Several server processes
//! may share one database: event ids are the primary key, rollups are updated in the
//! inserting transaction only for rows that transaction actually inserted
//! (`ON CONFLICT DO NOTHING RETURNING id`), so a retried or concurrently repeated
//! event is never counted twice. Rollup upserts go in key order to keep lock order
//! consistent; deadlocks and serialisation failures are retried.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::*;
use crate::rollup;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tokens (
  id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, kind TEXT NOT NULL,
  rep TEXT, territory TEXT, label TEXT, created_at BIGINT NOT NULL, revoked_at BIGINT);
CREATE TABLE hcps (
  hcp TEXT PRIMARY KEY, specialty TEXT NOT NULL, institution TEXT NOT NULL,
  region TEXT NOT NULL, segment TEXT NOT NULL);
CREATE TABLE blobs (key TEXT PRIMARY KEY, bytes BYTEA NOT NULL);
CREATE TABLE versions (
  bundle_hash TEXT PRIMARY KEY, deck_id TEXT NOT NULL, version TEXT NOT NULL,
  title TEXT NOT NULL, locale TEXT NOT NULL, product TEXT, approval_code TEXT NOT NULL,
  valid_from TEXT NOT NULL, valid_until TEXT NOT NULL, territories TEXT NOT NULL,
  published_at BIGINT NOT NULL, retired_at BIGINT, UNIQUE (deck_id, version));
CREATE TABLE events (
  id BYTEA PRIMARY KEY, session_id TEXT NOT NULL, seq BIGINT NOT NULL,
  device_id TEXT NOT NULL, deck_id TEXT NOT NULL, deck_version TEXT NOT NULL,
  bundle_hash TEXT NOT NULL, slide_id TEXT, type TEXT NOT NULL, channel TEXT NOT NULL,
  rep_id TEXT, territory TEXT, hcp TEXT, token_id TEXT NOT NULL,
  client_time BIGINT NOT NULL, sent_at BIGINT NOT NULL, received_at BIGINT NOT NULL,
  corrected_time BIGINT NOT NULL, preview BIGINT NOT NULL,
  dwell_ms BIGINT, ord BIGINT, val BIGINT, body TEXT NOT NULL);
CREATE INDEX events_session ON events (session_id);
CREATE TABLE rollup (
  metric TEXT NOT NULL, deck TEXT NOT NULL, grain BIGINT NOT NULL, day BIGINT NOT NULL,
  version TEXT NOT NULL, channel TEXT NOT NULL, territory TEXT NOT NULL,
  specialty TEXT NOT NULL, region TEXT NOT NULL, institution TEXT NOT NULL,
  segment TEXT NOT NULL, k1 TEXT NOT NULL, k2 TEXT NOT NULL,
  n BIGINT NOT NULL, s BIGINT NOT NULL,
  PRIMARY KEY (metric, deck, grain, day, version, channel, territory, specialty, region,
               institution, segment, k1, k2));
CREATE TABLE reach (
  deck TEXT NOT NULL, version TEXT NOT NULL, day BIGINT NOT NULL, channel TEXT NOT NULL,
  territory TEXT NOT NULL, specialty TEXT NOT NULL, region TEXT NOT NULL,
  institution TEXT NOT NULL, segment TEXT NOT NULL, hcp TEXT NOT NULL,
  PRIMARY KEY (deck, day, version, channel, territory, specialty, region, institution,
               segment, hcp));
"#,
    ),
    (
        2,
        r#"
CREATE TABLE reach_total (
  deck TEXT NOT NULL, version TEXT NOT NULL, channel TEXT NOT NULL, hcp TEXT NOT NULL,
  PRIMARY KEY (deck, version, channel, hcp));
INSERT INTO reach_total SELECT DISTINCT deck, version, channel, hcp FROM reach
  ON CONFLICT DO NOTHING;
"#,
    ),
    (
        3,
        r#"
CREATE TABLE audit (
  id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL,
  target TEXT NOT NULL, outcome TEXT NOT NULL);
CREATE INDEX events_time ON events (corrected_time);
"#,
    ),
    (
        5,
        // Session closing: see the SQLite migration 5.
        r#"
CREATE TABLE sess (
  session_id TEXT PRIMARY KEY, last_rx BIGINT NOT NULL, dirty BIGINT NOT NULL,
  frozen BIGINT NOT NULL DEFAULT 0, closed_at BIGINT, contrib TEXT);
CREATE INDEX sess_open ON sess (last_rx) WHERE dirty = 1;
INSERT INTO sess (session_id, last_rx, dirty, frozen)
  SELECT session_id, MAX(received_at),
    CASE WHEN bool_or(type = 'session_end') THEN 0 ELSE 1 END,
    CASE WHEN bool_or(type = 'session_end') THEN 1 ELSE 0 END
  FROM events WHERE preview = 0 GROUP BY session_id;
"#,
    ),
    (
        6,
        // Rollup keys interned as in the SQLite migration 3: (metric, deck, version, k1,
        // k2) into `rkey` ids and the dimension tuple (grain, channel, territory,
        // specialty, region, institution, segment) into `cohort` ids, so `rollup` is
        // keyed (key, cohort, day) and `reach` (dv, cohort, day, hcp): a physician
        // filter resolves matching cohort ids, then seeks the primary key. Existing rows
        // are carried over exactly (the old primary keys map one to one onto the new).
        // `rollup_total` holds the same sums over all days (written in the same
        // transactions), for queries without a day range or day grouping: a physician
        // filter then reads one row per (key, cohort) instead of one per day (the heap is
        // not clustered: each row read is a page visit). `reach` rows are also kept under
        // the grain-0 cohort of their channel (a day range without physician filters
        // then reads one cohort); `reach_cohort` is the grain-1 `reach` without the day.
        r#"
CREATE TABLE rkey (
  id SERIAL PRIMARY KEY, metric TEXT NOT NULL, deck TEXT NOT NULL, version TEXT NOT NULL,
  k1 TEXT NOT NULL, k2 TEXT NOT NULL, UNIQUE (metric, deck, version, k1, k2));
CREATE TABLE cohort (
  id SERIAL PRIMARY KEY, grain BIGINT NOT NULL, channel TEXT NOT NULL,
  territory TEXT NOT NULL, specialty TEXT NOT NULL, region TEXT NOT NULL,
  institution TEXT NOT NULL, segment TEXT NOT NULL,
  UNIQUE (grain, channel, territory, specialty, region, institution, segment));
INSERT INTO rkey (metric, deck, version, k1, k2)
  SELECT metric, deck, version, k1, k2 FROM rollup
  UNION SELECT 'reach', deck, version, '', '' FROM reach
  ORDER BY 1, 2, 3, 4, 5;
INSERT INTO cohort (grain, channel, territory, specialty, region, institution, segment)
  SELECT grain, channel, territory, specialty, region, institution, segment FROM rollup
  UNION SELECT 1, channel, territory, specialty, region, institution, segment FROM reach
  UNION SELECT 0, channel, '*', '*', '*', '*', '*' FROM reach
  ORDER BY 1, 2, 3, 4, 5, 6, 7;
CREATE TABLE rollup6 (
  key INTEGER NOT NULL, cohort INTEGER NOT NULL, day BIGINT NOT NULL,
  n BIGINT NOT NULL, s BIGINT NOT NULL);
INSERT INTO rollup6 (key, cohort, day, n, s)
  SELECT k.id, c.id, r.day, r.n, r.s FROM rollup r
  JOIN rkey k ON k.metric = r.metric AND k.deck = r.deck AND k.version = r.version
    AND k.k1 = r.k1 AND k.k2 = r.k2
  JOIN cohort c ON c.grain = r.grain AND c.channel = r.channel AND c.territory = r.territory
    AND c.specialty = r.specialty AND c.region = r.region AND c.institution = r.institution
    AND c.segment = r.segment
  ORDER BY 1, 2, 3;
DROP TABLE rollup;
ALTER TABLE rollup6 RENAME TO rollup;
ALTER TABLE rollup ADD PRIMARY KEY (key, cohort, day);
CREATE TABLE reach6 (
  dv INTEGER NOT NULL, cohort INTEGER NOT NULL, day BIGINT NOT NULL, hcp TEXT NOT NULL);
INSERT INTO reach6 (dv, cohort, day, hcp)
  SELECT k.id, c.id, r.day, r.hcp FROM reach r
  JOIN rkey k ON k.metric = 'reach' AND k.deck = r.deck AND k.version = r.version
    AND k.k1 = '' AND k.k2 = ''
  JOIN cohort c ON c.grain = 1 AND c.channel = r.channel AND c.territory = r.territory
    AND c.specialty = r.specialty AND c.region = r.region AND c.institution = r.institution
    AND c.segment = r.segment
  ORDER BY 1, 2, 3, 4;
INSERT INTO reach6 (dv, cohort, day, hcp)
  SELECT DISTINCT k.id, c.id, r.day, r.hcp FROM reach r
  JOIN rkey k ON k.metric = 'reach' AND k.deck = r.deck AND k.version = r.version
    AND k.k1 = '' AND k.k2 = ''
  JOIN cohort c ON c.grain = 0 AND c.channel = r.channel AND c.territory = '*'
    AND c.specialty = '*' AND c.region = '*' AND c.institution = '*' AND c.segment = '*'
  ORDER BY 1, 2, 3, 4;
DROP TABLE reach;
ALTER TABLE reach6 RENAME TO reach;
ALTER TABLE reach ADD PRIMARY KEY (dv, cohort, day, hcp);
CREATE TABLE rollup_total (
  key INTEGER NOT NULL, cohort INTEGER NOT NULL, n BIGINT NOT NULL, s BIGINT NOT NULL,
  PRIMARY KEY (key, cohort));
INSERT INTO rollup_total (key, cohort, n, s)
  SELECT key, cohort, SUM(n), SUM(s) FROM rollup GROUP BY key, cohort ORDER BY 1, 2;
CREATE TABLE reach_cohort (
  dv INTEGER NOT NULL, cohort INTEGER NOT NULL, hcp TEXT NOT NULL,
  PRIMARY KEY (dv, cohort, hcp));
INSERT INTO reach_cohort (dv, cohort, hcp)
  SELECT DISTINCT r.dv, r.cohort, r.hcp FROM reach r JOIN cohort c ON c.id = r.cohort
  WHERE c.grain = 1 ORDER BY 1, 2, 3;
ANALYZE rkey;
ANALYZE cohort;
ANALYZE rollup;
ANALYZE rollup_total;
ANALYZE reach_cohort;
ANALYZE reach;
"#,
    ),
];

pub struct PgStore {
    pool: Pool,
    /// Ingest batches go to one writer task that commits the batches waiting at the
    /// same time in one transaction (group commit): concurrent batches then no longer
    /// queue on the row locks of the same hot rollup rows, and their deltas are merged.
    ingest_tx: tokio::sync::mpsc::UnboundedSender<PgJob>,
    interned: SharedInterned,
}

type PgJob = (
    Vec<EventRow>,
    tokio::sync::oneshot::Sender<Result<Vec<bool>, StoreError>>,
);

/// Largest number of ingest batches committed in one PostgreSQL transaction.
const PG_GROUP_MAX: usize = 32;

async fn pg_writer(
    pool: Pool,
    interned: SharedInterned,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<PgJob>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < PG_GROUP_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let all: Vec<&EventRow> = jobs.iter().flat_map(|(rows, _)| rows.iter()).collect();
        match ingest_bounded(&pool, &interned, &all).await {
            Ok(flags) => {
                let mut it = flags.into_iter();
                for (rows, tx) in jobs {
                    let f: Vec<bool> = it.by_ref().take(rows.len()).collect();
                    let _ = tx.send(Ok(f));
                }
            }
            Err(e) if jobs.len() == 1 => {
                if let Some((_, tx)) = jobs.pop() {
                    let _ = tx.send(Err(e));
                }
            }
            Err(_) => {
                // One batch may be what the database refuses: commit each on its own so
                // the others are not failed with it.
                for (rows, tx) in jobs {
                    let r: Vec<&EventRow> = rows.iter().collect();
                    let _ = tx.send(ingest_bounded(&pool, &interned, &r).await);
                }
            }
        }
    }
}

/// How long one ingest commit may take before the batch is answered "unavailable".
/// A database that stops answering (network partition, stalled server) would otherwise
/// hold the writer, and every device's request, until TCP gives up (minutes).
pub const PG_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);
/// Connect / pool-wait bounds (a pool at its maximum waits for a free connection).
const PG_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// [`ingest_with_retry`] within [`PG_WRITE_TIMEOUT`]. On timeout the connection is taken
/// out of the pool (it may be mid-transaction on a stalled socket) and the batch fails as
/// unavailable: the client resends it and rows that did commit come back `duplicate`.
async fn ingest_bounded(
    pool: &Pool,
    interned: &SharedInterned,
    rows: &[&EventRow],
) -> Result<Vec<bool>, StoreError> {
    let mut c = pool.get().await.map_err(unavailable)?;
    let write = ingest_with_retry(&mut c, interned, rows);
    match tokio::time::timeout(PG_WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => {
            drop(deadpool_postgres::Object::take(c));
            Err(StoreError::Unavailable(format!(
                "the database did not answer within {} s",
                PG_WRITE_TIMEOUT.as_secs()
            )))
        }
    }
}

async fn ingest_with_retry(
    c: &mut deadpool_postgres::Object,
    interned: &SharedInterned,
    rows: &[&EventRow],
) -> Result<Vec<bool>, StoreError> {
    let mut attempt = 0;
    loop {
        match PgStore::ingest_once(c, interned, rows).await {
            Ok(f) => return Ok(f),
            Err(e) if is_retryable(&e) && attempt < 5 => {
                attempt += 1;
                tracing::debug!(attempt, "retrying ingest after {e}");
                tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
            }
            Err(e) if e.is_closed() || e.code().is_none() => {
                return Err(StoreError::Unavailable(e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn unavailable<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Replace `?` placeholders with `$1..$n`.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(ch);
        }
    }
    out
}

fn boxed(p: &[Param]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    p.iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(i) => Box::new(*i),
            }
        })
        .collect()
}

fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(e.code().map(|c| c.code()), Some("40P01") | Some("40001"))
}

impl PgStore {
    /// Connect, create `schema` if given (and use it for every connection), migrate.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<PgStore, StoreError> {
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(PG_CONNECT_TIMEOUT);
        }
        // Dead peers are noticed by the kernel instead of hanging a connection forever.
        cfg.keepalives(true)
            .keepalives_idle(std::time::Duration::from_secs(30));
        // Every query here is small: JIT compilation (triggered by cost estimates, which
        // are large for tables without statistics) would only add latency.
        let mut options = match cfg.get_options() {
            Some(o) => format!("{o} -c jit=off"),
            None => String::from("-c jit=off"),
        };
        if let Some(s) = schema {
            if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || s.is_empty() {
                return Err(StoreError::Unavailable(format!("bad schema name `{s}`")));
            }
            // Create the schema with a plain connection first.
            let (client, conn) = cfg.connect(NoTls).await.map_err(unavailable)?;
            let h = tokio::spawn(conn);
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .await
                .or_else(|e| {
                    // Two processes racing to create the schema: fine if it exists now.
                    if e.code().map(|c| c.code()) == Some("23505") {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
            drop(client);
            let _ = h.await;
            options.push_str(&format!(" -c search_path={s}"));
        }
        cfg.options(&options);
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(PG_WRITE_TIMEOUT))
            .create_timeout(Some(PG_CONNECT_TIMEOUT))
            .build()
            .map_err(unavailable)?;
        let (ingest_tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let interned = SharedInterned::default();
        tokio::spawn(pg_writer(pool.clone(), interned.clone(), rx));
        let store = PgStore {
            pool,
            ingest_tx,
            interned,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        migrate_to(&mut c, i64::MAX).await
    }

    async fn query_agg(
        &self,
        sql: &str,
        p: &[Param],
        arity: usize,
    ) -> Result<Vec<AggRow>, StoreError> {
        let c = self.client().await?;
        let params = boxed(p);
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref() as _).collect();
        let rows = c.query(&numbered(sql), &refs).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut keys = Vec::with_capacity(arity);
            for i in 0..arity {
                keys.push(r.try_get::<_, Option<String>>(i)?.unwrap_or_default());
            }
            out.push(AggRow {
                keys,
                n: r.try_get::<_, Option<i64>>(arity)?.unwrap_or(0),
                s: r.try_get::<_, Option<i64>>(arity + 1)?.unwrap_or(0),
            });
        }
        Ok(out)
    }

    async fn ingest_once(
        c: &mut deadpool_postgres::Object,
        interned: &SharedInterned,
        rows: &[&EventRow],
    ) -> Result<Vec<bool>, tokio_postgres::Error> {
        let tx = c.transaction().await?;
        let ids: Vec<&[u8]> = rows.iter().map(|r| &r.id[..]).collect();
        let session: Vec<&str> = rows.iter().map(|r| r.session_id.as_str()).collect();
        let seq: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        let device: Vec<&str> = rows.iter().map(|r| r.device_id.as_str()).collect();
        let deck: Vec<&str> = rows.iter().map(|r| r.deck_id.as_str()).collect();
        let ver: Vec<&str> = rows.iter().map(|r| r.deck_version.as_str()).collect();
        let bh: Vec<&str> = rows.iter().map(|r| r.bundle_hash.as_str()).collect();
        let slide: Vec<Option<&str>> = rows.iter().map(|r| r.slide_id.as_deref()).collect();
        let ty: Vec<&str> = rows.iter().map(|r| r.etype).collect();
        let ch: Vec<&str> = rows.iter().map(|r| r.channel).collect();
        let rep: Vec<Option<&str>> = rows.iter().map(|r| r.rep.as_deref()).collect();
        let terr: Vec<Option<&str>> = rows.iter().map(|r| r.territory.as_deref()).collect();
        let hcp: Vec<Option<&str>> = rows.iter().map(|r| r.hcp.as_deref()).collect();
        let tok: Vec<&str> = rows.iter().map(|r| r.token_id.as_str()).collect();
        let ct: Vec<i64> = rows.iter().map(|r| r.client_time).collect();
        let sa: Vec<i64> = rows.iter().map(|r| r.sent_at).collect();
        let ra: Vec<i64> = rows.iter().map(|r| r.received_at).collect();
        let cor: Vec<i64> = rows.iter().map(|r| r.corrected_time).collect();
        let pv: Vec<i64> = rows.iter().map(|r| i64::from(r.preview)).collect();
        let dw: Vec<Option<i64>> = rows.iter().map(|r| r.dwell_ms).collect();
        let ord: Vec<Option<i64>> = rows.iter().map(|r| r.ord).collect();
        let val: Vec<Option<i64>> = rows.iter().map(|r| r.val).collect();
        let body: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
        let inserted = tx
            .query(
                "INSERT INTO events (id, session_id, seq, device_id, deck_id, deck_version, bundle_hash,
                   slide_id, type, channel, rep_id, territory, hcp, token_id, client_time, sent_at,
                   received_at, corrected_time, preview, dwell_ms, ord, val, body)
                 SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::int8[], $4::text[], $5::text[],
                   $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                   $12::text[], $13::text[], $14::text[], $15::int8[], $16::int8[], $17::int8[],
                   $18::int8[], $19::int8[], $20::int8[], $21::int8[], $22::int8[], $23::text[])
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                &[
                    &ids, &session, &seq, &device, &deck, &ver, &bh, &slide, &ty, &ch, &rep,
                    &terr, &hcp, &tok, &ct, &sa, &ra, &cor, &pv, &dw, &ord, &val, &body,
                ],
            )
            .await?;
        let mut new_ids: HashSet<Vec<u8>> = HashSet::with_capacity(inserted.len());
        for r in inserted {
            new_ids.insert(r.try_get::<_, Vec<u8>>(0)?);
        }
        // An id repeated across the batches of a group is inserted once: the first row
        // claims it, later ones are duplicates.
        let flags: Vec<bool> = rows.iter().map(|r| new_ids.remove(&r.id[..])).collect();
        let fresh: Vec<&EventRow> = rows
            .iter()
            .zip(&flags)
            .filter(|(r, f)| **f && !r.preview)
            .map(|(r, _)| *r)
            .collect();
        let mut new = NewIds::default();
        if !fresh.is_empty() {
            let (hcp_ids, ended) = rollup::needs(&fresh);
            let hcps = hcp_records(&tx, &hcp_ids).await?;
            let mut d = rollup::compute(&fresh, &hcps);
            // Sessions first (row locks on `sess` before any rollup row: see
            // `close_idle_once`), then the rollups.
            track_sessions(&tx, &fresh, &ended, &mut d).await?;
            write_deltas(&tx, &d, interned, &mut new).await?;
        }
        tx.commit().await?;
        Interned::learn(interned, new);
        Ok(flags)
    }
}

/// The interned rollup key and cohort ids this process has seen committed (see
/// migration 6). An id is cached only once the transaction that looked it up has
/// committed: an id a rolled-back transaction inserted may not exist.
#[derive(Default)]
struct Interned {
    keys: HashMap<rollup::KeyDims, i32>,
    cohorts: HashMap<rollup::Cohort, i32>,
}

/// Ids looked up by a transaction, cached by [`Interned::learn`] after its commit.
#[derive(Default)]
struct NewIds {
    keys: Vec<(rollup::KeyDims, i32)>,
    cohorts: Vec<(rollup::Cohort, i32)>,
}

type SharedInterned = std::sync::Arc<std::sync::Mutex<Interned>>;

impl Interned {
    fn learn(shared: &SharedInterned, new: NewIds) {
        if new.keys.is_empty() && new.cohorts.is_empty() {
            return;
        }
        let mut c = shared.lock().unwrap_or_else(|e| e.into_inner());
        c.keys.extend(new.keys);
        c.cohorts.extend(new.cohorts);
    }
}

/// The database ids of the keys of `d` and of `coh` (by local index), interning those
/// not cached: `INSERT ... ON CONFLICT DO NOTHING` (in a fixed order, so concurrent
/// processes wait on each other's new rows in one order), then a `SELECT` (a new
/// statement, so it sees rows another process committed meanwhile).
async fn key_ids(
    tx: &tokio_postgres::Transaction<'_>,
    d: &rollup::Deltas,
    coh: &[rollup::Cohort],
    cache: &SharedInterned,
    new: &mut NewIds,
) -> Result<(Vec<i32>, Vec<i32>), tokio_postgres::Error> {
    let (mut keys, mut cohorts) = (vec![0; d.keys.len()], vec![0; coh.len()]);
    let (mut miss_k, mut miss_c) = (Vec::new(), Vec::new());
    {
        let c = cache.lock().unwrap_or_else(|e| e.into_inner());
        for (i, k) in d.keys.iter().enumerate() {
            match c.keys.get(k) {
                Some(id) => keys[i] = *id,
                None => miss_k.push(i),
            }
        }
        for (i, h) in coh.iter().enumerate() {
            match c.cohorts.get(h) {
                Some(id) => cohorts[i] = *id,
                None => miss_c.push(i),
            }
        }
    }
    if !miss_k.is_empty() {
        miss_k.sort_unstable_by(|a, b| d.keys[*a].cmp(&d.keys[*b]));
        let mut cols: [Vec<&str>; 5] = Default::default();
        for i in &miss_k {
            let k = &d.keys[*i];
            for (c, v) in cols
                .iter_mut()
                .zip([&k.metric, &k.deck, &k.version, &k.k1, &k.k2])
            {
                c.push(v);
            }
        }
        tx.execute(
            "INSERT INTO rkey (metric, deck, version, k1, k2)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
             ON CONFLICT DO NOTHING",
            &[&cols[0], &cols[1], &cols[2], &cols[3], &cols[4]],
        )
        .await?;
        let rows = tx
            .query(
                "SELECT x.i, k.id FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                   $5::text[]) WITH ORDINALITY AS x(metric, deck, version, k1, k2, i)
                 JOIN rkey k ON k.metric = x.metric AND k.deck = x.deck
                   AND k.version = x.version AND k.k1 = x.k1 AND k.k2 = x.k2",
                &[&cols[0], &cols[1], &cols[2], &cols[3], &cols[4]],
            )
            .await?;
        for r in rows {
            let (i, id): (i64, i32) = (r.try_get(0)?, r.try_get(1)?);
            let ix = miss_k[i as usize - 1];
            keys[ix] = id;
            new.keys.push((d.keys[ix].clone(), id));
        }
        debug_assert_eq!(new.keys.len(), miss_k.len());
    }
    if !miss_c.is_empty() {
        miss_c.sort_unstable_by(|a, b| coh[*a].cmp(&coh[*b]));
        let mut cols: [Vec<&str>; 6] = Default::default();
        let mut grain = Vec::with_capacity(miss_c.len());
        for i in &miss_c {
            let h = &coh[*i];
            grain.push(i64::from(h.grain));
            for (c, v) in cols.iter_mut().zip([
                &h.channel,
                &h.territory,
                &h.specialty,
                &h.region,
                &h.institution,
                &h.segment,
            ]) {
                c.push(v);
            }
        }
        tx.execute(
            "INSERT INTO cohort (grain, channel, territory, specialty, region, institution, segment)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[],
               $6::text[], $7::text[])
             ON CONFLICT DO NOTHING",
            &[&grain, &cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5]],
        )
        .await?;
        let rows = tx
            .query(
                "SELECT x.i, c.id FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[],
                   $5::text[], $6::text[], $7::text[]) WITH ORDINALITY
                   AS x(grain, channel, territory, specialty, region, institution, segment, i)
                 JOIN cohort c ON c.grain = x.grain AND c.channel = x.channel
                   AND c.territory = x.territory AND c.specialty = x.specialty
                   AND c.region = x.region AND c.institution = x.institution
                   AND c.segment = x.segment",
                &[
                    &grain, &cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5],
                ],
            )
            .await?;
        for r in rows {
            let (i, id): (i64, i32) = (r.try_get(0)?, r.try_get(1)?);
            let ix = miss_c[i as usize - 1];
            cohorts[ix] = id;
            new.cohorts.push((coh[ix].clone(), id));
        }
        debug_assert_eq!(new.cohorts.len(), miss_c.len());
    }
    Ok((keys, cohorts))
}

/// Write rollup deltas keyed by interned ids (sorted by primary key, so concurrent
/// transactions take row locks in one order). Ids first seen here are added to `new`.
async fn write_deltas(
    tx: &tokio_postgres::Transaction<'_>,
    d: &rollup::Deltas,
    cache: &SharedInterned,
    new: &mut NewIds,
) -> Result<(), tokio_postgres::Error> {
    if d.rollup.is_empty() && d.reach.is_empty() && d.reach_total.is_empty() {
        return Ok(());
    }
    // Reach is also written under the grain-0 cohort of its channel (so a day range
    // without physician filters reads one cohort, as rollups do): the cohorts of `d`
    // plus any grain-0 cohort missing from them.
    let mut coh = d.cohorts.clone();
    let mut coarse: HashMap<String, u32> = coh
        .iter()
        .enumerate()
        .filter(|(_, h)| h.grain == 0)
        .map(|(i, h)| (h.channel.clone(), i as u32))
        .collect();
    let mut reach_coarse = Vec::with_capacity(d.reach.len());
    for (_, h, _, _) in &d.reach {
        let ch = &d.cohorts[*h as usize].channel;
        let i = match coarse.get(ch) {
            Some(i) => *i,
            None => {
                let i = coh.len() as u32;
                coh.push(rollup::Cohort {
                    grain: 0,
                    channel: ch.clone(),
                    territory: "*".into(),
                    specialty: "*".into(),
                    region: "*".into(),
                    institution: "*".into(),
                    segment: "*".into(),
                });
                coarse.insert(ch.clone(), i);
                i
            }
        };
        reach_coarse.push(i);
    }
    let (kid, cid) = key_ids(tx, d, &coh, cache, new).await?;
    if !d.rollup.is_empty() {
        let mut exp: Vec<(i32, i32, i64, i64, i64)> = d
            .rollup
            .iter()
            .filter(|(_, (n, s))| *n != 0 || *s != 0)
            .map(|((k, h, day), (n, s))| {
                (kid[*k as usize], cid[*h as usize], i64::from(*day), *n, *s)
            })
            .collect();
        exp.sort_unstable();
        let key: Vec<i32> = exp.iter().map(|e| e.0).collect();
        let cohort: Vec<i32> = exp.iter().map(|e| e.1).collect();
        let day: Vec<i64> = exp.iter().map(|e| e.2).collect();
        let n: Vec<i64> = exp.iter().map(|e| e.3).collect();
        let s: Vec<i64> = exp.iter().map(|e| e.4).collect();
        tx.execute(
            "INSERT INTO rollup (key, cohort, day, n, s)
             SELECT * FROM UNNEST($1::int4[], $2::int4[], $3::int8[], $4::int8[], $5::int8[])
             ON CONFLICT (key, cohort, day)
             DO UPDATE SET n = rollup.n + EXCLUDED.n, s = rollup.s + EXCLUDED.s",
            &[&key, &cohort, &day, &n, &s],
        )
        .await?;
        if n.iter().any(|x| *x < 0) {
            // A replaced session contribution: drop rows it leaves empty, so figures
            // equal those of the sessions' events arriving together.
            tx.execute(
                "DELETE FROM rollup r USING UNNEST($1::int4[], $2::int4[], $3::int8[],
                   $4::int8[]) AS x(key, cohort, day, n)
                 WHERE x.n < 0 AND r.key = x.key AND r.cohort = x.cohort AND r.day = x.day
                   AND r.n = 0 AND r.s = 0",
                &[&key, &cohort, &day, &n],
            )
            .await?;
        }
        // The same deltas summed over days (`exp` is sorted, so (key, cohort) runs are
        // adjacent and in primary-key order).
        let mut tot: Vec<(i32, i32, i64, i64)> = Vec::new();
        for (k, h, _, dn, ds) in &exp {
            match tot.last_mut() {
                Some(t) if t.0 == *k && t.1 == *h => {
                    t.2 += dn;
                    t.3 += ds;
                }
                _ => tot.push((*k, *h, *dn, *ds)),
            }
        }
        tot.retain(|t| t.2 != 0 || t.3 != 0);
        if !tot.is_empty() {
            let key: Vec<i32> = tot.iter().map(|e| e.0).collect();
            let cohort: Vec<i32> = tot.iter().map(|e| e.1).collect();
            let n: Vec<i64> = tot.iter().map(|e| e.2).collect();
            let s: Vec<i64> = tot.iter().map(|e| e.3).collect();
            tx.execute(
                "INSERT INTO rollup_total (key, cohort, n, s)
                 SELECT * FROM UNNEST($1::int4[], $2::int4[], $3::int8[], $4::int8[])
                 ON CONFLICT (key, cohort)
                 DO UPDATE SET n = rollup_total.n + EXCLUDED.n, s = rollup_total.s + EXCLUDED.s",
                &[&key, &cohort, &n, &s],
            )
            .await?;
            if n.iter().any(|x| *x < 0) {
                tx.execute(
                    "DELETE FROM rollup_total r USING UNNEST($1::int4[], $2::int4[], $3::int8[])
                       AS x(key, cohort, n)
                     WHERE x.n < 0 AND r.key = x.key AND r.cohort = x.cohort
                       AND r.n = 0 AND r.s = 0",
                    &[&key, &cohort, &n],
                )
                .await?;
            }
        }
    }
    if !d.reach.is_empty() {
        // Grain 1 and grain 0, in primary-key order.
        let mut rows: Vec<(i32, i32, i64, &str)> = Vec::with_capacity(2 * d.reach.len());
        for ((k, h, kd, who), h0) in d.reach.iter().zip(&reach_coarse) {
            rows.push((kid[*k as usize], cid[*h as usize], i64::from(*kd), who));
            rows.push((kid[*k as usize], cid[*h0 as usize], i64::from(*kd), who));
        }
        rows.sort_unstable();
        rows.dedup();
        let dv: Vec<i32> = rows.iter().map(|e| e.0).collect();
        let cohort: Vec<i32> = rows.iter().map(|e| e.1).collect();
        let day: Vec<i64> = rows.iter().map(|e| e.2).collect();
        let hcp: Vec<&str> = rows.iter().map(|e| e.3).collect();
        tx.execute(
            "INSERT INTO reach (dv, cohort, day, hcp)
             SELECT * FROM UNNEST($1::int4[], $2::int4[], $3::int8[], $4::text[])
             ON CONFLICT DO NOTHING",
            &[&dv, &cohort, &day, &hcp],
        )
        .await?;
        // Grain 1 without the day (in primary-key order).
        let mut all: Vec<(i32, i32, &str)> = d
            .reach
            .iter()
            .map(|(k, h, _, who)| (kid[*k as usize], cid[*h as usize], who.as_str()))
            .collect();
        all.sort_unstable();
        all.dedup();
        let dv: Vec<i32> = all.iter().map(|e| e.0).collect();
        let cohort: Vec<i32> = all.iter().map(|e| e.1).collect();
        let hcp: Vec<&str> = all.iter().map(|e| e.2).collect();
        tx.execute(
            "INSERT INTO reach_cohort (dv, cohort, hcp)
             SELECT * FROM UNNEST($1::int4[], $2::int4[], $3::text[])
             ON CONFLICT DO NOTHING",
            &[&dv, &cohort, &hcp],
        )
        .await?;
    }
    if !d.reach_total.is_empty() {
        let mut cols: [Vec<&str>; 4] = Default::default();
        for (a, b, c, h) in &d.reach_total {
            cols[0].push(a);
            cols[1].push(b);
            cols[2].push(c);
            cols[3].push(h);
        }
        tx.execute(
            "INSERT INTO reach_total (deck, version, channel, hcp)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
                 ON CONFLICT DO NOTHING",
            &[&cols[0], &cols[1], &cols[2], &cols[3]],
        )
        .await?;
    }
    Ok(())
}

/// Session closing in an ingest transaction: every session with new events is marked
/// open with its latest receive time (which row-locks it until commit), then the
/// sessions with a new `session_end` are closed.
async fn track_sessions(
    tx: &tokio_postgres::Transaction<'_>,
    fresh: &[&EventRow],
    ended: &[String],
    d: &mut rollup::Deltas,
) -> Result<(), tokio_postgres::Error> {
    let mut last: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for r in fresh {
        let e = last.entry(r.session_id.as_str()).or_insert(r.received_at);
        *e = (*e).max(r.received_at);
    }
    let ids: Vec<&str> = last.keys().copied().collect();
    let rx: Vec<i64> = last.values().copied().collect();
    tx.execute(
        "INSERT INTO sess (session_id, last_rx, dirty)
         SELECT s, r, 1 FROM UNNEST($1::text[], $2::int8[]) AS x(s, r)
         ON CONFLICT (session_id) DO UPDATE
           SET last_rx = GREATEST(sess.last_rx, EXCLUDED.last_rx), dirty = 1",
        &[&ids, &rx],
    )
    .await?;
    close_sessions(tx, ended, d).await
}

/// Close these sessions (whose `sess` rows this transaction holds locked): add the
/// change of their contributions to `d` and mark them closed.
/// The HCP directory rows of these physicians (pseudonyms), by pseudonym.
async fn hcp_records(
    tx: &tokio_postgres::Transaction<'_>,
    ids: &[String],
) -> Result<HashMap<String, HcpRecord>, tokio_postgres::Error> {
    let mut hcps = HashMap::new();
    if ids.is_empty() {
        return Ok(hcps);
    }
    for r in tx
        .query(
            "SELECT hcp, specialty, institution, region, segment FROM hcps WHERE hcp = ANY($1)",
            &[&ids],
        )
        .await?
    {
        let rec = HcpRecord {
            hcp: r.try_get(0)?,
            specialty: r.try_get(1)?,
            institution: r.try_get(2)?,
            region: r.try_get(3)?,
            segment: r.try_get(4)?,
        };
        hcps.insert(rec.hcp.clone(), rec);
    }
    Ok(hcps)
}

async fn close_sessions(
    tx: &tokio_postgres::Transaction<'_>,
    ids: &[String],
    d: &mut rollup::Deltas,
) -> Result<(), tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut states: HashMap<String, rollup::SessionState> = HashMap::new();
    for r in tx
        .query(
            "SELECT session_id, contrib, frozen FROM sess WHERE session_id = ANY($1)",
            &[&ids],
        )
        .await?
    {
        states.insert(
            r.try_get(0)?,
            rollup::SessionState {
                contrib: r.try_get(1)?,
                frozen: r.try_get::<_, i64>(2)? != 0,
            },
        );
    }
    let mut items: HashMap<String, Vec<SessionItem>> = HashMap::new();
    for r in tx
        .query(
            // One index lookup per session whatever the planner's statistics say
            // (`OFFSET 0` keeps the subquery per session): without statistics on
            // `events` (no ANALYZE yet) `session_id = ANY($1)` is planned as a scan of
            // the whole table at every close.
            &format!(
                "SELECT x.* FROM UNNEST($1::text[]) AS s(id) CROSS JOIN LATERAL
                   (SELECT {SESSION_ITEM_COLS} FROM events
                    WHERE session_id = s.id AND preview = 0 OFFSET 0) x"
            ),
            &[&ids],
        )
        .await?
    {
        items.entry(r.try_get(0)?).or_default().push(SessionItem {
            etype: r.try_get(1)?,
            slide_id: r.try_get(2)?,
            seq: r.try_get(3)?,
            ord: r.try_get(4)?,
            val: r.try_get(5)?,
            deck: r.try_get(6)?,
            version: r.try_get(7)?,
            channel: r.try_get(8)?,
            territory: r.try_get(9)?,
            hcp: r.try_get(10)?,
            corrected_time: r.try_get(11)?,
        });
    }
    let rep_hcps: Vec<String> = items
        .values()
        .filter_map(|v| rollup::SessionContribution::representative(v)?.hcp.clone())
        .collect();
    let hcps = hcp_records(tx, &rep_hcps).await?;
    let mut contribs: Vec<Option<String>> = Vec::with_capacity(ids.len());
    for s in ids {
        let state = states.remove(s).unwrap_or_default();
        let ev = items.remove(s).unwrap_or_default();
        contribs.push(rollup::reclose(d, &state, &ev, &hcps));
    }
    tx.execute(
        "UPDATE sess SET dirty = 0, contrib = x.c, closed_at = $3
         FROM UNNEST($1::text[], $2::text[]) AS x(s, c) WHERE sess.session_id = x.s",
        &[&ids, &contribs, &crate::util::now_ms()],
    )
    .await?;
    Ok(())
}

/// One close-job transaction: lock up to `limit` idle open sessions, skipping those
/// another transaction holds (another process closing them, or an ingest adding
/// events to them), close them and commit. Each session is closed by one transaction:
/// a row it skipped is closed by whoever holds it, or at the next run.
async fn close_idle_once(
    c: &mut deadpool_postgres::Object,
    interned: &SharedInterned,
    idle_before_ms: i64,
    limit: i64,
) -> Result<u64, tokio_postgres::Error> {
    let tx = c.transaction().await?;
    let ids: Vec<String> = tx
        .query(
            "SELECT session_id FROM sess WHERE dirty = 1 AND last_rx < $1
             ORDER BY last_rx LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&idle_before_ms, &limit],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut d = rollup::Deltas::default();
    close_sessions(&tx, &ids, &mut d).await?;
    let mut new = NewIds::default();
    write_deltas(&tx, &d, interned, &mut new).await?;
    tx.commit().await?;
    Interned::learn(interned, new);
    Ok(ids.len() as u64)
}

/// A rollup query over the interned schema (migration 6): matching key and cohort ids
/// first, then seeks of the primary key; sums per key (or cohort, or day), then grouped
/// by the requested text columns.
fn rollup_sql(metric: &str, f: &Filter, group: GroupBy) -> (String, Vec<Param>) {
    let (w, p) = super::sqlite::interned_where(metric, f, i64::from(f.needs_fine_grain()), "key");
    // The day-less sums when no day is asked for.
    let rollup = if f.from_day.is_none() && f.to_day.is_none() {
        "rollup_total"
    } else {
        "rollup"
    };
    let sql = match group {
        GroupBy::Day => format!(
            "SELECT CAST(r.day AS TEXT), CAST(SUM(r.n) AS BIGINT), CAST(SUM(r.s) AS BIGINT)
             FROM rollup r WHERE {w} GROUP BY r.day"
        ),
        GroupBy::Channel => format!(
            "SELECT c.channel, CAST(SUM(x.n) AS BIGINT), CAST(SUM(x.s) AS BIGINT) FROM
               (SELECT r.cohort AS cohort, SUM(r.n) AS n, SUM(r.s) AS s FROM {rollup} r
                WHERE {w} GROUP BY r.cohort) x
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
                "SELECT {cols}, CAST(SUM(x.n) AS BIGINT), CAST(SUM(x.s) AS BIGINT) FROM
                   (SELECT r.key AS key, SUM(r.n) AS n, SUM(r.s) AS s FROM {rollup} r
                    WHERE {w} GROUP BY r.key) x
                 JOIN rkey k ON k.id = x.key GROUP BY {cols}"
            )
        }
    };
    (sql, p)
}

/// Distinct physicians reached: from `reach_total` when only deck, version and channel
/// are filtered (and the grouping has no day), else from `reach_cohort` (grain-1
/// cohorts) with physician filters and without days, or `reach` (per day; grain-1
/// cohorts with physician filters, else the grain-0 cohort of each channel).
fn reach_sql(f: &Filter, group: GroupBy) -> (String, Vec<Param>) {
    if f.reach_total_suffices() && group != GroupBy::Day {
        let (w, p) = filter_sql(None, f, false);
        let cols = match group {
            GroupBy::K1 | GroupBy::K1K2 => "deck",
            g => g.columns(),
        };
        return (
            format!(
                "SELECT {cols}, COUNT(DISTINCT hcp), CAST(0 AS BIGINT) FROM reach_total{w}
                 GROUP BY {cols}"
            ),
            p,
        );
    }
    let fine = f.needs_fine_grain();
    let (w, p) = super::sqlite::interned_where("reach", f, i64::from(fine), "dv");
    let table = if fine && f.from_day.is_none() && f.to_day.is_none() && group != GroupBy::Day {
        "reach_cohort"
    } else {
        "reach"
    };
    // Distinct (cohort or deck version, physician) pairs first, then joined for their
    // text: one join per pair instead of one per (pair, day).
    let sql = match group {
        GroupBy::Day => format!(
            "SELECT CAST(r.day AS TEXT), COUNT(DISTINCT r.hcp), CAST(0 AS BIGINT)
             FROM {table} r WHERE {w} GROUP BY r.day"
        ),
        GroupBy::Channel => format!(
            "SELECT c.channel, COUNT(DISTINCT x.hcp), CAST(0 AS BIGINT) FROM
               (SELECT DISTINCT r.cohort, r.hcp FROM {table} r WHERE {w}) x
             JOIN cohort c ON c.id = x.cohort GROUP BY c.channel"
        ),
        g => {
            let col = if g == GroupBy::Version {
                "k.version"
            } else {
                "k.deck"
            };
            format!(
                "SELECT {col}, COUNT(DISTINCT x.hcp), CAST(0 AS BIGINT) FROM
                   (SELECT DISTINCT r.dv, r.hcp FROM {table} r WHERE {w}) x
                 JOIN rkey k ON k.id = x.dv GROUP BY {col}"
            )
        }
    };
    (sql, p)
}

/// Apply the migrations up to version `upto` not applied yet.
async fn migrate_to(c: &mut tokio_postgres::Client, upto: i64) -> Result<(), StoreError> {
    // One process migrates at a time.
    c.batch_execute("SELECT pg_advisory_lock(7275001)").await?;
    let r = async {
        c.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= upto) {
            let done = c
                .query_opt("SELECT version FROM schema_migrations WHERE version = $1", &[v])
                .await?;
            if done.is_some() {
                continue;
            }
            let tx = c.transaction().await?;
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[v, &crate::util::now_ms()],
            )
            .await?;
            tx.commit().await?;
            tracing::info!(version = v, "applied PostgreSQL migration");
        }
        Ok::<(), StoreError>(())
    }
    .await;
    c.batch_execute("SELECT pg_advisory_unlock(7275001)")
        .await?;
    r
}

fn token_from_row(r: &tokio_postgres::Row) -> Result<TokenRecord, StoreError> {
    let kind: String = r.try_get(2)?;
    Ok(TokenRecord {
        id: r.try_get(0)?,
        secret_hash: r.try_get(1)?,
        kind: TokenKind::parse(&kind).unwrap_or(TokenKind::Device),
        rep: r.try_get(3)?,
        territory: r.try_get(4)?,
        label: r.try_get(5)?,
        created_at: r.try_get(6)?,
        revoked_at: r.try_get(7)?,
    })
}

const VERSION_COLS: &str = "bundle_hash, deck_id, version, title, locale, product, approval_code,
  valid_from, valid_until, territories, published_at, retired_at";

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn meta_get_or_init(&self, key: &str, value: String) -> StoreFuture<'_, String> {
        let key = key.to_string();
        Box::pin(async move {
            let c = self.client().await?;
            c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&key, &value],
            )
            .await?;
            let r = c
                .query_one("SELECT value FROM meta WHERE key = $1", &[&key])
                .await?;
            Ok(r.try_get(0)?)
        })
    }

    fn insert_token(&self, t: TokenRecord) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let c = self.client().await?;
            c.execute(
                "INSERT INTO tokens (id, secret_hash, kind, rep, territory, label, created_at, revoked_at)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                &[&t.id, &t.secret_hash, &t.kind.as_str(), &t.rep, &t.territory, &t.label, &t.created_at, &t.revoked_at],
            )
            .await?;
            Ok(())
        })
    }

    fn get_token(&self, id: &str) -> StoreFuture<'_, Option<TokenRecord>> {
        let id = id.to_string();
        Box::pin(async move {
            let c = self.client().await?;
            let r = c
                .query_opt(
                    "SELECT id, secret_hash, kind, rep, territory, label, created_at, revoked_at FROM tokens WHERE id = $1",
                    &[&id],
                )
                .await?;
            r.as_ref().map(token_from_row).transpose()
        })
    }

    fn revoke_token(&self, id: &str, at: i64) -> StoreFuture<'_, bool> {
        let id = id.to_string();
        Box::pin(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                    &[&id, &at],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn list_tokens(&self) -> StoreFuture<'_, Vec<TokenRecord>> {
        Box::pin(async move {
            let c = self.client().await?;
            let rows = c
                .query(
                    "SELECT id, secret_hash, kind, rep, territory, label, created_at, revoked_at FROM tokens ORDER BY created_at, id",
                    &[],
                )
                .await?;
            rows.iter().map(token_from_row).collect()
        })
    }

    fn upsert_hcps(&self, rows: Vec<HcpRecord>) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let st = tx
                .prepare(
                    "INSERT INTO hcps (hcp, specialty, institution, region, segment) VALUES ($1,$2,$3,$4,$5)
                     ON CONFLICT (hcp) DO UPDATE SET specialty = EXCLUDED.specialty,
                       institution = EXCLUDED.institution, region = EXCLUDED.region, segment = EXCLUDED.segment",
                )
                .await?;
            for h in &rows {
                tx.execute(
                    &st,
                    &[&h.hcp, &h.specialty, &h.institution, &h.region, &h.segment],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(rows.len() as u64)
        })
    }

    fn publish(&self, v: NewVersion) -> StoreFuture<'_, PublishOutcome> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let r = &v.record;
            tx.batch_execute("LOCK TABLE versions IN SHARE ROW EXCLUSIVE MODE")
                .await?;
            if let Some(row) = tx
                .query_opt(
                    "SELECT bundle_hash FROM versions WHERE deck_id = $1 AND version = $2",
                    &[&r.deck_id, &r.version],
                )
                .await?
            {
                let h: String = row.try_get(0)?;
                if h == r.bundle_hash {
                    return Ok(PublishOutcome::AlreadyPublished);
                }
                return Err(StoreError::Conflict(format!(
                    "deck `{}` version {} is already published with bundle {h}; versions are immutable, bump the version",
                    r.deck_id, r.version
                )));
            }
            if let Some(row) = tx
                .query_opt(
                    "SELECT deck_id || ' ' || version FROM versions WHERE bundle_hash = $1",
                    &[&r.bundle_hash],
                )
                .await?
            {
                let o: String = row.try_get(0)?;
                return Err(StoreError::Conflict(format!(
                    "bundle {} is already published as {o}",
                    r.bundle_hash
                )));
            }
            let st = tx
                .prepare("INSERT INTO blobs (key, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .await?;
            for (k, b) in &v.blobs {
                tx.execute(&st, &[k, b]).await?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO versions ({VERSION_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)"
                ),
                &[
                    &r.bundle_hash,
                    &r.deck_id,
                    &r.version,
                    &r.title,
                    &r.locale,
                    &r.product,
                    &r.approval_code,
                    &r.valid_from,
                    &r.valid_until,
                    &r.territories.join(","),
                    &r.published_at,
                    &r.retired_at,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(PublishOutcome::Created)
        })
    }

    fn retire(&self, deck: &str, version: &str, at: i64) -> StoreFuture<'_, bool> {
        let (deck, version) = (deck.to_string(), version.to_string());
        Box::pin(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    "UPDATE versions SET retired_at = COALESCE(retired_at, $3) WHERE deck_id = $1 AND version = $2",
                    &[&deck, &version, &at],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn versions(&self) -> StoreFuture<'_, Vec<VersionRecord>> {
        Box::pin(async move {
            let c = self.client().await?;
            let rows = c
                .query(
                    &format!("SELECT {VERSION_COLS} FROM versions ORDER BY deck_id, published_at"),
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let terr: String = r.try_get(9)?;
                    Ok(VersionRecord {
                        bundle_hash: r.try_get(0)?,
                        deck_id: r.try_get(1)?,
                        version: r.try_get(2)?,
                        title: r.try_get(3)?,
                        locale: r.try_get(4)?,
                        product: r.try_get(5)?,
                        approval_code: r.try_get(6)?,
                        valid_from: r.try_get(7)?,
                        valid_until: r.try_get(8)?,
                        territories: super::sqlite::split_list(&terr),
                        published_at: r.try_get(10)?,
                        retired_at: r.try_get(11)?,
                    })
                })
                .collect()
        })
    }

    fn blob(&self, key: &str) -> StoreFuture<'_, Option<Vec<u8>>> {
        let key = key.to_string();
        Box::pin(async move {
            let c = self.client().await?;
            let r = c
                .query_opt("SELECT bytes FROM blobs WHERE key = $1", &[&key])
                .await?;
            Ok(match r {
                Some(r) => Some(r.try_get(0)?),
                None => None,
            })
        })
    }

    fn ingest(&self, rows: Vec<EventRow>) -> StoreFuture<'_, Vec<bool>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.ingest_tx.send((rows, tx)).is_ok();
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Unavailable("the ingest writer stopped".into()));
            }
            rx.await
                .map_err(|_| StoreError::Unavailable("the ingest writer stopped".into()))?
        })
    }

    fn rollup(
        &self,
        metric: &str,
        filter: &Filter,
        group: GroupBy,
    ) -> StoreFuture<'_, Vec<AggRow>> {
        let (sql, p) = rollup_sql(metric, filter, group);
        let arity = group.arity();
        Box::pin(async move { self.query_agg(&sql, &p, arity).await })
    }

    fn reach(&self, filter: &Filter, group: GroupBy) -> StoreFuture<'_, Vec<AggRow>> {
        let (sql, p) = reach_sql(filter, group);
        Box::pin(async move { self.query_agg(&sql, &p, 1).await })
    }

    fn clickstream(&self, filter: &Filter) -> StoreFuture<'_, Vec<ClickRow>> {
        let (sql, p) =
            super::sqlite::clickstream_sql(filter, "CAST(e.body::jsonb->>'enter_time' AS BIGINT)");
        Box::pin(async move {
            let c = self.client().await?;
            let params = boxed(&p);
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref() as _).collect();
            let rows = c.query(&numbered(&sql), &refs).await?;
            rows.iter()
                .map(|r| {
                    Ok(ClickRow {
                        session_id: r.try_get(0)?,
                        hcp: r.try_get(1)?,
                        rep: r.try_get(2)?,
                        deck_id: r.try_get(3)?,
                        deck_version: r.try_get(4)?,
                        slide_id: r.try_get::<_, Option<String>>(5)?.unwrap_or_default(),
                        start_ms: r.try_get::<_, Option<i64>>(6)?.unwrap_or(0),
                        dwell_ms: r.try_get::<_, Option<i64>>(7)?.unwrap_or(0),
                        channel: r.try_get(8)?,
                        reaction: r.try_get(9)?,
                    })
                })
                .collect()
        })
    }

    fn count_ids(&self, ids: Vec<[u8; 16]>) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            let c = self.client().await?;
            let v: Vec<&[u8]> = ids.iter().map(|i| &i[..]).collect();
            let r = c
                .query_one("SELECT COUNT(*) FROM events WHERE id = ANY($1)", &[&v])
                .await?;
            Ok(r.try_get(0)?)
        })
    }

    fn audit(&self, e: AuditEntry) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let c = self.client().await?;
            c.execute(
                "INSERT INTO audit (at, action, actor, target, outcome) VALUES ($1,$2,$3,$4,$5)",
                &[&e.at, &e.action, &e.actor, &e.target, &e.outcome],
            )
            .await?;
            Ok(())
        })
    }

    fn audit_log(&self, limit: i64) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let c = self.client().await?;
            let rows = c
                .query(
                    "SELECT id, at, action, actor, target, outcome FROM audit ORDER BY id DESC LIMIT $1",
                    &[&limit],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(AuditEntry {
                        id: r.try_get(0)?,
                        at: r.try_get(1)?,
                        action: r.try_get(2)?,
                        actor: r.try_get(3)?,
                        target: r.try_get(4)?,
                        outcome: r.try_get(5)?,
                    })
                })
                .collect()
        })
    }

    fn purge_events(&self, before_ms: i64, unended_before_ms: i64) -> StoreFuture<'_, u64> {
        let sql = numbered(&format!(
            "WITH del AS (
               DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE {} LIMIT {PURGE_CHUNK})
               RETURNING session_id),
             fz AS (UPDATE sess SET frozen = 1
               WHERE frozen = 0 AND session_id IN (SELECT session_id FROM del))
             SELECT COUNT(*) FROM del",
            PURGE_WHERE.replace("?1", "?").replace("?2", "?")
        ));
        Box::pin(async move {
            let c = self.client().await?;
            let mut total = 0u64;
            loop {
                let n: i64 = c
                    .query_one(&sql, &[&before_ms, &unended_before_ms])
                    .await?
                    .try_get(0)?;
                let n = n as u64;
                total += n;
                if (n as i64) < PURGE_CHUNK {
                    return Ok(total);
                }
            }
        })
    }

    fn close_idle_sessions(&self, idle_before_ms: i64, limit: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut c = self.client().await?;
            let mut attempt = 0;
            loop {
                match close_idle_once(&mut c, &self.interned, idle_before_ms, limit).await {
                    Ok(n) => return Ok(n),
                    Err(e) if is_retryable(&e) && attempt < 5 => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        })
    }

    fn session_status(&self) -> StoreFuture<'_, SessionStatus> {
        Box::pin(async move {
            let mut c = self.client().await?;
            // A plain index scan of `sess_open`, not a bitmap scan: every ingest leaves a
            // dead entry in that partial index; a plain scan marks those it meets dead
            // so the next scan skips them, a bitmap scan visits all of them every time
            // until VACUUM (80-120 ms at 10M events without autovacuum).
            let tx = c.transaction().await?;
            tx.batch_execute("SET LOCAL enable_bitmapscan = off")
                .await?;
            let r = tx
                .query_one(
                    "SELECT COUNT(*), MIN(last_rx) FROM sess WHERE dirty = 1",
                    &[],
                )
                .await?;
            tx.commit().await?;
            Ok(SessionStatus {
                open: r.try_get(0)?,
                oldest_open_ms: r.try_get(1)?,
            })
        })
    }

    fn stats(&self) -> StoreFuture<'_, Stats> {
        Box::pin(async move {
            let c = self.client().await?;
            let r = c
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM rollup),
                            (SELECT COUNT(*) FROM versions), (SELECT COUNT(*) FROM hcps)",
                    &[],
                )
                .await?;
            Ok(Stats {
                backend: "postgres".into(),
                events: r.try_get(0)?,
                rollup_rows: r.try_get(1)?,
                versions: r.try_get(2)?,
                hcps: r.try_get(3)?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    fn sorted(mut v: Vec<AggRow>) -> Vec<AggRow> {
        v.sort_by(|a, b| a.keys.cmp(&b.keys));
        v
    }

    async fn agg(c: &tokio_postgres::Client, sql: &str, p: &[Param], arity: usize) -> Vec<AggRow> {
        let params = boxed(p);
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref() as _).collect();
        let rows = c.query(&numbered(sql), &refs).await.unwrap();
        let mut out = Vec::new();
        for r in rows {
            let keys = (0..arity)
                .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                .collect();
            out.push(AggRow {
                keys,
                n: r.get::<_, Option<i64>>(arity).unwrap_or(0),
                s: r.get::<_, Option<i64>>(arity + 1).unwrap_or(0),
            });
        }
        sorted(out)
    }

    /// A database with the version-5 schema (13-text-column rollup keys, text-keyed
    /// reach) migrates to the interned schema (migration 6) with every figure
    /// unchanged: each rollup and reach query over the new tables equals the same query
    /// (as version 5 ran it) over the old ones.
    #[tokio::test]
    async fn migration_6_keeps_every_rollup_and_reach_figure() {
        if std::net::TcpStream::connect_timeout(
            &"127.0.0.1:5432".parse().unwrap(),
            std::time::Duration::from_secs(2),
        )
        .is_err()
        {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
                "PostgreSQL at 127.0.0.1:5432 is unreachable and CI=true"
            );
            eprintln!("PostgreSQL unreachable: SKIPPING migration_6 test");
            return;
        }
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let schema = format!("t_mig6_{}_{}", std::process::id(), t % 1_000_000_000);
        let mut cfg: tokio_postgres::Config = PG_URL.parse().unwrap();
        let (admin, conn) = cfg.connect(NoTls).await.unwrap();
        tokio::spawn(conn);
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        cfg.options(format!("-c search_path={schema}"));
        let (mut c, conn) = cfg.connect(NoTls).await.unwrap();
        tokio::spawn(conn);
        migrate_to(&mut c, 5).await.unwrap();

        let mut x: u64 = 7;
        let mut rnd = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        let pick = |a: &[&'static str], i: u64| a[i as usize % a.len()];
        let tx = c.transaction().await.unwrap();
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
                tx.execute(
                    "INSERT INTO rollup (metric, deck, grain, day, version, channel, territory,
                       specialty, region, institution, segment, k1, k2, n, s)
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)
                     ON CONFLICT (metric, deck, grain, day, version, channel, territory,
                       specialty, region, institution, segment, k1, k2)
                     DO UPDATE SET n = rollup.n + EXCLUDED.n, s = rollup.s + EXCLUDED.s",
                    &[
                        &metric, &deck, &grain, &day, &version, &ch, &d[0], &d[1], &d[2], &d[3],
                        &d[4], &k1, &k2, &n, &sum,
                    ],
                )
                .await
                .unwrap();
            }
            if metric == "session" {
                let hcp = format!("h{}", rnd(40));
                tx.execute(
                    "INSERT INTO reach (deck, version, day, channel, territory, specialty,
                       region, institution, segment, hcp)
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING",
                    &[
                        &deck, &version, &day, &ch, &dims[0], &dims[1], &dims[2], &dims[3],
                        &dims[4], &hcp,
                    ],
                )
                .await
                .unwrap();
                tx.execute(
                    "INSERT INTO reach_total (deck, version, channel, hcp)
                     VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
                    &[&deck, &version, &ch, &hcp],
                )
                .await
                .unwrap();
            }
        }
        tx.commit().await.unwrap();
        let (filters, groups, metrics) = super::migration_cases();
        let mut before = Vec::new();
        for f in &filters {
            for g in groups {
                for m in metrics {
                    // The version-5 queries.
                    let (w, p) = filter_sql(Some(m), f, true);
                    let cols = g.columns();
                    let sql = format!(
                        "SELECT {cols}, CAST(SUM(n) AS BIGINT), CAST(SUM(s) AS BIGINT) FROM rollup{w} GROUP BY {cols}"
                    );
                    before.push(agg(&c, &sql, &p, g.arity()).await);
                }
                let (w, p) = filter_sql(None, f, false);
                let cols = match g {
                    GroupBy::K1 | GroupBy::K1K2 => "deck",
                    g => g.columns(),
                };
                let table = if f.reach_total_suffices() && g != GroupBy::Day {
                    "reach_total"
                } else {
                    "reach"
                };
                let sql = format!(
                    "SELECT {cols}, COUNT(DISTINCT hcp), CAST(0 AS BIGINT) FROM {table}{w} GROUP BY {cols}"
                );
                before.push(agg(&c, &sql, &p, 1).await);
            }
        }
        assert!(before.iter().filter(|r| !r.is_empty()).count() > 100);
        migrate_to(&mut c, 6).await.unwrap();
        let mut after = Vec::new();
        for f in &filters {
            for g in groups {
                for m in metrics {
                    let (sql, p) = rollup_sql(m, f, g);
                    after.push(agg(&c, &sql, &p, g.arity()).await);
                }
                let (sql, p) = reach_sql(f, g);
                after.push(agg(&c, &sql, &p, 1).await);
            }
        }
        admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
        assert_eq!(before.len(), after.len());
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            assert_eq!(b, a, "query {i}");
        }
    }
}
