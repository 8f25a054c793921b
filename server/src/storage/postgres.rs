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
];

pub struct PgStore {
    pool: Pool,
    /// Ingest batches go to one writer task that commits the batches waiting at the
    /// same time in one transaction (group commit): concurrent batches then no longer
    /// queue on the row locks of the same hot rollup rows, and their deltas are merged.
    ingest_tx: tokio::sync::mpsc::UnboundedSender<PgJob>,
}

type PgJob = (
    Vec<EventRow>,
    tokio::sync::oneshot::Sender<Result<Vec<bool>, StoreError>>,
);

/// Largest number of ingest batches committed in one PostgreSQL transaction.
const PG_GROUP_MAX: usize = 32;

async fn pg_writer(pool: Pool, mut rx: tokio::sync::mpsc::UnboundedReceiver<PgJob>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < PG_GROUP_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let all: Vec<&EventRow> = jobs.iter().flat_map(|(rows, _)| rows.iter()).collect();
        match ingest_bounded(&pool, &all).await {
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
                    let _ = tx.send(ingest_bounded(&pool, &r).await);
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
async fn ingest_bounded(pool: &Pool, rows: &[&EventRow]) -> Result<Vec<bool>, StoreError> {
    let mut c = pool.get().await.map_err(unavailable)?;
    match tokio::time::timeout(PG_WRITE_TIMEOUT, ingest_with_retry(&mut c, rows)).await {
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
    rows: &[&EventRow],
) -> Result<Vec<bool>, StoreError> {
    let mut attempt = 0;
    loop {
        match PgStore::ingest_once(c, rows).await {
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
            cfg.options(format!("-c search_path={s}"));
        }
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
        tokio::spawn(pg_writer(pool.clone(), rx));
        let store = PgStore { pool, ingest_tx };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        // One process migrates at a time.
        c.batch_execute("SELECT pg_advisory_lock(7275001)").await?;
        let r = async {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .await?;
            for (v, sql) in MIGRATIONS {
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
        if !fresh.is_empty() {
            let (hcp_ids, ended) = rollup::needs(&fresh);
            let hcps = hcp_records(&tx, &hcp_ids).await?;
            let mut d = rollup::compute(&fresh, &hcps);
            // Sessions first (row locks on `sess` before any rollup row: see
            // `close_idle_once`), then the rollups.
            track_sessions(&tx, &fresh, &ended, &mut d).await?;
            write_deltas(&tx, &d).await?;
        }
        tx.commit().await?;
        Ok(flags)
    }
}

/// Write rollup deltas (sorted, so concurrent transactions take row locks in one order).
async fn write_deltas(
    tx: &tokio_postgres::Transaction<'_>,
    d: &rollup::Deltas,
) -> Result<(), tokio_postgres::Error> {
    if !d.rollup.is_empty() {
        // Expanded to text keys and sorted, so concurrent transactions (other
        // processes) take row locks in the same order.
        let mut exp: Vec<(&rollup::KeyDims, &rollup::Cohort, i32, i64, i64)> = d
            .rollup
            .iter()
            .map(|((k, h, day), (n, s))| {
                (&d.keys[*k as usize], &d.cohorts[*h as usize], *day, *n, *s)
            })
            .filter(|e| e.3 != 0 || e.4 != 0)
            .collect();
        exp.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        let mut cols: [Vec<&str>; 10] = Default::default();
        let mut grain = Vec::new();
        let mut day = Vec::new();
        let mut n = Vec::new();
        let mut s = Vec::new();
        for (k, h, kd, kn, ks) in &exp {
            cols[0].push(&k.metric);
            cols[1].push(&k.deck);
            cols[2].push(&k.version);
            cols[3].push(&h.channel);
            cols[4].push(&h.territory);
            cols[5].push(&h.specialty);
            cols[6].push(&h.region);
            cols[7].push(&h.institution);
            cols[8].push(&h.segment);
            cols[9].push(&k.k1);
            grain.push(i64::from(h.grain));
            day.push(i64::from(*kd));
            n.push(*kn);
            s.push(*ks);
        }
        let k2: Vec<&str> = exp.iter().map(|e| e.0.k2.as_str()).collect();
        tx.execute(
            "INSERT INTO rollup (metric, deck, version, channel, territory, specialty, region,
                   institution, segment, k1, grain, day, n, s, k2)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                   $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[],
                   $12::int8[], $13::int8[], $14::int8[], $15::text[])
                 ON CONFLICT (metric, deck, grain, day, version, channel, territory, specialty,
                   region, institution, segment, k1, k2)
                 DO UPDATE SET n = rollup.n + EXCLUDED.n, s = rollup.s + EXCLUDED.s",
            &[
                &cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6], &cols[7],
                &cols[8], &cols[9], &grain, &day, &n, &s, &k2,
            ],
        )
        .await?;
        if n.iter().any(|x| *x < 0) {
            // A replaced session contribution: drop rows it leaves empty, so figures
            // equal those of the sessions' events arriving together.
            tx.execute(
                "DELETE FROM rollup r USING UNNEST($1::text[], $2::text[], $3::text[],
                       $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                       $10::text[], $11::int8[], $12::int8[], $13::int8[], $14::text[])
                       AS x(metric, deck, version, channel, territory, specialty, region,
                         institution, segment, k1, grain, day, n, k2)
                     WHERE x.n < 0 AND r.metric = x.metric AND r.deck = x.deck
                       AND r.grain = x.grain AND r.day = x.day AND r.version = x.version
                       AND r.channel = x.channel AND r.territory = x.territory
                       AND r.specialty = x.specialty AND r.region = x.region
                       AND r.institution = x.institution AND r.segment = x.segment
                       AND r.k1 = x.k1 AND r.k2 = x.k2 AND r.n = 0 AND r.s = 0",
                &[
                    &cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6], &cols[7],
                    &cols[8], &cols[9], &grain, &day, &n, &k2,
                ],
            )
            .await?;
        }
    }
    if !d.reach.is_empty() {
        let mut cols: [Vec<&str>; 9] = Default::default();
        let mut day = Vec::new();
        for (k, h, kd, hcp) in &d.reach {
            let (k, h) = (&d.keys[*k as usize], &d.cohorts[*h as usize]);
            cols[0].push(&k.deck);
            cols[1].push(&k.version);
            cols[2].push(&h.channel);
            cols[3].push(&h.territory);
            cols[4].push(&h.specialty);
            cols[5].push(&h.region);
            cols[6].push(&h.institution);
            cols[7].push(&h.segment);
            cols[8].push(hcp);
            day.push(i64::from(*kd));
        }
        tx.execute(
            "INSERT INTO reach (deck, version, channel, territory, specialty, region,
                   institution, segment, hcp, day)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                   $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[])
                 ON CONFLICT DO NOTHING",
            &[
                &cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6], &cols[7],
                &cols[8], &day,
            ],
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
            &format!(
                "SELECT {SESSION_ITEM_COLS} FROM events WHERE session_id = ANY($1) AND preview = 0"
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
    write_deltas(&tx, &d).await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
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
        let (w, p) = filter_sql(Some(metric), filter, true);
        let cols = group.columns();
        let arity = group.arity();
        Box::pin(async move {
            let sql = format!(
                "SELECT {cols}, CAST(SUM(n) AS BIGINT), CAST(SUM(s) AS BIGINT) FROM rollup{w} GROUP BY {cols}"
            );
            self.query_agg(&sql, &p, arity).await
        })
    }

    fn reach(&self, filter: &Filter, group: GroupBy) -> StoreFuture<'_, Vec<AggRow>> {
        let (w, p) = filter_sql(None, filter, false);
        let total = filter.reach_total_suffices();
        let cols = match group {
            GroupBy::K1 | GroupBy::K1K2 => "deck",
            g => g.columns(),
        };
        Box::pin(async move {
            let table = if total { "reach_total" } else { "reach" };
            let sql = format!(
                "SELECT {cols}, COUNT(DISTINCT hcp), CAST(0 AS BIGINT) FROM {table}{w} GROUP BY {cols}"
            );
            self.query_agg(&sql, &p, 1).await
        })
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
                match close_idle_once(&mut c, idle_before_ms, limit).await {
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
            let c = self.client().await?;
            let r = c
                .query_one(
                    "SELECT COUNT(*), MIN(last_rx) FROM sess WHERE dirty = 1",
                    &[],
                )
                .await?;
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
