//! The PostgreSQL store (`--store postgres://…`), for several gateways sharing the work: the same
//! schema and rules as [`crate::SqliteStore`], with claiming by `SELECT … FOR UPDATE SKIP
//! LOCKED` so that gateways never wait on each other's claims, and durability from PostgreSQL's
//! own commit (`synchronous_commit` on, its default).
//!
//! The `postgres` crate's client is synchronous (it runs its own small runtime), like every
//! [`Store`] method: the gateway calls them on blocking threads. A connection that broke is
//! opened again on the next call.

use std::collections::HashSet;
use std::sync::Mutex;

use postgres::{Client, NoTls, Row};
use serde_json::Value;
use strobe_batch::LineResult;

use crate::store::{new_id, now_ms, now_s, Batch, FileObject, NewBatch, Status, Store, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    filename TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    content BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status TEXT NOT NULL,
    total BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    in_progress_at BIGINT,
    finalizing_at BIGINT,
    completed_at BIGINT,
    failed_at BIGINT,
    cancelling_at BIGINT,
    cancelled_at BIGINT,
    expired_at BIGINT,
    output_file_id TEXT,
    error_file_id TEXT,
    errors TEXT,
    metadata TEXT,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX IF NOT EXISTS batches_owner ON batches (owner, seq);
CREATE TABLE IF NOT EXISTS results (
    seq BIGSERIAL PRIMARY KEY,
    batch_id TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    success BOOLEAN NOT NULL,
    line TEXT NOT NULL,
    UNIQUE (batch_id, custom_id)
);
";

// The column list (its order is what `batch_from_row` reads) is the SQLite store's.
use crate::store::BATCH_COLUMNS;

const LIVE: &str = "('validating', 'in_progress', 'finalizing', 'cancelling')";

/// A gateway store in a PostgreSQL database.
pub struct PgStore {
    url: String,
    client: Mutex<Option<Client>>,
}

fn db(e: postgres::Error) -> StoreError {
    StoreError::Db {
        where_: "postgres".into(),
        message: e.to_string(),
    }
}

/// `url` without its password, for messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(i), Some(j)) if j > i => {
            let user = &url[i + 3..j];
            let user = user.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..i + 3], user, &url[j + 1..])
        }
        _ => url.to_owned(),
    }
}

impl PgStore {
    /// Connects and creates the tables if they are missing.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let s = PgStore {
            url: url.to_owned(),
            client: Mutex::new(None),
        };
        s.with(|c| c.batch_execute(SCHEMA))?;
        Ok(s)
    }

    fn connect(&self) -> Result<Client, StoreError> {
        Client::connect(&self.url, NoTls).map_err(|e| StoreError::Db {
            where_: redacted(&self.url),
            message: format!("cannot connect: {e}"),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(self.connect()?);
        }
        let client = guard.as_mut().expect("connected above");
        let r = f(client).map_err(db);
        if client.is_closed() {
            *guard = None;
        }
        r
    }
}

fn counts(c: &mut impl postgres::GenericClient, id: &str) -> Result<(u64, u64), postgres::Error> {
    let r = c.query_one(
        "SELECT COUNT(*) FILTER (WHERE success), COUNT(*) FILTER (WHERE NOT success) \
         FROM results WHERE batch_id = $1",
        &[&id],
    )?;
    Ok((r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
}

fn batch_from_row(c: &mut impl postgres::GenericClient, r: &Row) -> Result<Batch, postgres::Error> {
    let id: String = r.get(0);
    let status: String = r.get(5);
    let mut times = Vec::new();
    // Columns 9.. are the `*_at` of every status after `validating`, in `Status::ALL` order.
    for (i, s) in Status::ALL[1..].iter().copied().enumerate() {
        if let Some(at) = r.get::<_, Option<i64>>(9 + i) {
            times.push((s, at));
        }
    }
    let metadata: Option<String> = r.get(19);
    let (completed, failed) = counts(c, &id)?;
    Ok(Batch {
        owner: r.get(1),
        input_file_id: r.get(2),
        endpoint: r.get(3),
        completion_window: r.get(4),
        status: Status::parse(&status).unwrap_or(Status::Failed),
        total: r.get::<_, i64>(6) as u64,
        completed,
        failed,
        created_at: r.get(7),
        expires_at: r.get(8),
        times,
        output_file_id: r.get(16),
        error_file_id: r.get(17),
        errors: r.get(18),
        metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        id,
    })
}

fn get_batch(
    c: &mut impl postgres::GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<Batch>, postgres::Error> {
    let sql = format!(
        "SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    match c.query_opt(&sql, &[&id])? {
        Some(r) => batch_from_row(c, &r).map(Some),
        None => Ok(None),
    }
}

fn insert_file(
    c: &mut impl postgres::GenericClient,
    owner: &str,
    purpose: &str,
    filename: &str,
    content: &[u8],
) -> Result<FileObject, postgres::Error> {
    let f = FileObject {
        id: new_id("file-"),
        owner: owner.into(),
        purpose: purpose.into(),
        filename: filename.into(),
        bytes: content.len() as u64,
        created_at: now_s(),
    };
    c.execute(
        "INSERT INTO files (id, owner, purpose, filename, bytes, created_at, content) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &f.id,
            &f.owner,
            &f.purpose,
            &f.filename,
            &(f.bytes as i64),
            &f.created_at,
            &content,
        ],
    )?;
    Ok(f)
}

impl Store for PgStore {
    fn put_file(
        &self,
        owner: &str,
        purpose: &str,
        filename: &str,
        content: &[u8],
    ) -> Result<FileObject, StoreError> {
        self.with(|c| insert_file(c, owner, purpose, filename, content))
    }

    fn file(&self, owner: &str, id: &str) -> Result<Option<FileObject>, StoreError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT id, owner, purpose, filename, bytes, created_at FROM files \
                 WHERE id = $1 AND owner = $2",
                &[&id, &owner],
            )?
            .map(|r| FileObject {
                id: r.get(0),
                owner: r.get(1),
                purpose: r.get(2),
                filename: r.get(3),
                bytes: r.get::<_, i64>(4) as u64,
                created_at: r.get(5),
            }))
        })
    }

    fn file_content(&self, owner: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT content FROM files WHERE id = $1 AND owner = $2",
                &[&id, &owner],
            )?
            .map(|r| r.get(0)))
        })
    }

    fn create_batch(&self, new: &NewBatch) -> Result<Batch, StoreError> {
        let id = new_id("batch_");
        let now = now_s();
        let b = self.with(|c| {
            c.execute(
                "INSERT INTO batches (id, owner, input_file_id, endpoint, completion_window, \
                 status, total, created_at, expires_at, metadata) \
                 VALUES ($1, $2, $3, $4, $5, 'validating', $6, $7, $8, $9)",
                &[
                    &id,
                    &new.owner,
                    &new.input_file_id,
                    &new.endpoint,
                    &new.completion_window,
                    &(new.total as i64),
                    &now,
                    &(now + new.window_s),
                    &new.metadata.as_ref().map(Value::to_string),
                ],
            )?;
            get_batch(c, &id, false)
        })?;
        b.ok_or(StoreError::NoBatch(id))
    }

    fn batch(&self, owner: &str, id: &str) -> Result<Option<Batch>, StoreError> {
        Ok(self.get(id)?.filter(|b| b.owner == owner))
    }

    fn get(&self, id: &str) -> Result<Option<Batch>, StoreError> {
        self.with(|c| get_batch(c, id, false))
    }

    fn list_batches(
        &self,
        owner: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Batch>, bool), StoreError> {
        self.with(|c| {
            let below: i64 = match after {
                Some(a) => c
                    .query_opt(
                        "SELECT seq FROM batches WHERE id = $1 AND owner = $2",
                        &[&a, &owner],
                    )?
                    .map_or(i64::MAX, |r| r.get(0)),
                None => i64::MAX,
            };
            let rows = c.query(
                &format!(
                    "SELECT {BATCH_COLUMNS} FROM batches WHERE owner = $1 AND seq < $2 \
                     ORDER BY seq DESC LIMIT $3"
                ),
                &[&owner, &below, &(limit as i64 + 1)],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(batch_from_row(c, r)?);
            }
            let more = out.len() > limit;
            out.truncate(limit);
            Ok((out, more))
        })
    }

    fn live_batches(&self) -> Result<Vec<Batch>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                &format!("SELECT {BATCH_COLUMNS} FROM batches WHERE status IN {LIVE} ORDER BY seq"),
                &[],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(batch_from_row(c, r)?);
            }
            Ok(out)
        })
    }

    fn recent_batches(&self, limit: usize) -> Result<Vec<Batch>, StoreError> {
        self.with(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {BATCH_COLUMNS} FROM batches WHERE status NOT IN {LIVE} \
                     ORDER BY COALESCE(completed_at, failed_at, cancelled_at, expired_at) DESC, \
                     seq DESC LIMIT $1"
                ),
                &[&(limit as i64)],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(batch_from_row(c, r)?);
            }
            Ok(out)
        })
    }

    fn cancel(&self, owner: &str, id: &str) -> Result<Option<Batch>, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE batches SET status = 'cancelling', cancelling_at = $3 \
                 WHERE id = $1 AND owner = $2 AND status IN ('validating', 'in_progress')",
                &[&id, &owner, &now_s()],
            )?;
            Ok(get_batch(c, id, false)?.filter(|b| b.owner == owner))
        })
    }

    fn claim(&self, worker: &str, lease_ms: i64) -> Result<Option<Batch>, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let now = now_ms();
            // SKIP LOCKED: a batch another gateway is claiming right now is passed over, not
            // waited for; the row lock keeps two gateways from both taking one lapsed lease.
            let row = tx.query_opt(
                &format!(
                    "SELECT id FROM batches WHERE status IN {LIVE} \
                     AND (lease_until IS NULL OR lease_until < $1 OR lease_owner = $2) \
                     ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED"
                ),
                &[&now, &worker],
            )?;
            let Some(row) = row else {
                tx.commit()?;
                return Ok(None);
            };
            let id: String = row.get(0);
            tx.execute(
                "UPDATE batches SET lease_owner = $2, lease_until = $3 WHERE id = $1",
                &[&id, &worker, &(now + lease_ms)],
            )?;
            let b = get_batch(&mut tx, &id, false)?;
            tx.commit()?;
            Ok(b)
        })
    }

    fn renew(&self, worker: &str, id: &str, lease_ms: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE batches SET lease_until = $3 WHERE id = $1 AND lease_owner = $2",
                &[&id, &worker, &(now_ms() + lease_ms)],
            )?;
            Ok(n == 1)
        })
    }

    fn set_status(&self, id: &str, status: Status, errors: Option<&str>) -> Result<(), StoreError> {
        let n = self.with(|c| {
            c.execute(
                &format!(
                    "UPDATE batches SET status = $2, {0} = COALESCE({0}, $3), \
                     errors = COALESCE($4, errors) WHERE id = $1",
                    status.at_column()
                ),
                &[&id, &status.as_str(), &now_s(), &errors],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NoBatch(id.into()));
        }
        Ok(())
    }

    fn done_ids(&self, id: &str) -> Result<HashSet<String>, StoreError> {
        self.with(|c| {
            Ok(
                c.query("SELECT custom_id FROM results WHERE batch_id = $1", &[&id])?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
            )
        })
    }

    fn put_results(&self, id: &str, results: &[LineResult]) -> Result<u64, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let st = tx.prepare(
                "INSERT INTO results (batch_id, custom_id, success, line) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (batch_id, custom_id) DO NOTHING",
            )?;
            let mut new = 0;
            for r in results {
                new += tx.execute(&st, &[&id, &r.custom_id, &r.success, &r.json])?;
            }
            tx.commit()?;
            Ok(new)
        })
    }

    fn finalize(&self, id: &str, status: Status) -> Result<Batch, StoreError> {
        let b = self.with(|c| {
            let mut tx = c.transaction()?;
            // The row lock serialises finalizing: a second gateway sees the first one's result.
            let Some(b) = get_batch(&mut tx, id, true)? else {
                return Ok(None);
            };
            if !b.status.is_live() {
                tx.commit()?;
                return Ok(Some(b));
            }
            let (mut out, mut err) = (Vec::new(), Vec::new());
            for r in tx.query(
                "SELECT success, line FROM results WHERE batch_id = $1 ORDER BY seq",
                &[&id],
            )? {
                let success: bool = r.get(0);
                let line: String = r.get(1);
                let to = if success { &mut out } else { &mut err };
                to.extend_from_slice(line.as_bytes());
                to.push(b'\n');
            }
            let name = |kind: &str| format!("{id}_{kind}.jsonl");
            let output = if out.is_empty() {
                None
            } else {
                Some(insert_file(&mut tx, &b.owner, "batch_output", &name("output"), &out)?.id)
            };
            let error = if err.is_empty() {
                None
            } else {
                Some(insert_file(&mut tx, &b.owner, "batch_output", &name("error"), &err)?.id)
            };
            tx.execute(
                &format!(
                    "UPDATE batches SET status = $2, {} = $3, output_file_id = $4, \
                     error_file_id = $5, lease_owner = NULL, lease_until = NULL WHERE id = $1",
                    status.at_column()
                ),
                &[&id, &status.as_str(), &now_s(), &output, &error],
            )?;
            let b = get_batch(&mut tx, id, false)?;
            tx.commit()?;
            Ok(b)
        })?;
        b.ok_or_else(|| StoreError::NoBatch(id.into()))
    }
}
