//! The gateway's durable state behind one trait: uploaded files, batches with their OpenAI
//! status, one result per `(batch, custom_id)`, and the lease a gateway holds on a batch it runs.
//!
//! Exactly once, as in `strobe-batch`: a line is done exactly when its result row exists, and the
//! results table's primary key `(batch_id, custom_id)` refuses a second one, so a gateway that
//! crashes and resumes (or two gateways that both ran a line) still end with one output or error
//! line per `custom_id`. A request may reach the engine twice; its result is stored once.
//!
//! Claiming: a gateway takes a batch by writing its name and a lease deadline on it, in one
//! write transaction (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: `FOR UPDATE SKIP LOCKED`), renews
//! the lease while it runs, and another gateway may take the batch once the lease has lapsed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{json, Value};
use strobe_batch::LineResult;

/// The OpenAI batch statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Validating,
    InProgress,
    Finalizing,
    Completed,
    Failed,
    Cancelling,
    Cancelled,
    Expired,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Validating,
        Status::InProgress,
        Status::Finalizing,
        Status::Completed,
        Status::Failed,
        Status::Cancelling,
        Status::Cancelled,
        Status::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Validating => "validating",
            Status::InProgress => "in_progress",
            Status::Finalizing => "finalizing",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelling => "cancelling",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a gateway still has work to do on a batch in this status.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Status::Validating | Status::InProgress | Status::Finalizing | Status::Cancelling
        )
    }

    /// The batch column that records when this status was entered.
    pub fn at_column(self) -> &'static str {
        match self {
            Status::Validating => "created_at",
            Status::InProgress => "in_progress_at",
            Status::Finalizing => "finalizing_at",
            Status::Completed => "completed_at",
            Status::Failed => "failed_at",
            Status::Cancelling => "cancelling_at",
            Status::Cancelled => "cancelled_at",
            Status::Expired => "expired_at",
        }
    }
}

/// An uploaded (or gateway-written) file, without its content.
#[derive(Clone, Debug, PartialEq)]
pub struct FileObject {
    pub id: String,
    pub owner: String,
    pub purpose: String,
    pub filename: String,
    pub bytes: u64,
    pub created_at: i64,
}

impl FileObject {
    /// OpenAI's file object.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
        })
    }
}

/// What creating a batch needs.
#[derive(Clone, Debug)]
pub struct NewBatch {
    pub owner: String,
    pub input_file_id: String,
    pub endpoint: String,
    pub completion_window: String,
    /// Seconds after creation at which an unfinished batch expires.
    pub window_s: i64,
    pub metadata: Option<Value>,
    /// Lines in the input file.
    pub total: u64,
}

/// A batch as stored, with its result counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub id: String,
    pub owner: String,
    pub input_file_id: String,
    pub endpoint: String,
    pub completion_window: String,
    pub status: Status,
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub created_at: i64,
    pub expires_at: i64,
    /// When each status was entered, as OpenAI's `*_at` fields (seconds).
    pub times: Vec<(Status, i64)>,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    /// Why the batch failed, if it did.
    pub errors: Option<String>,
    pub metadata: Option<Value>,
}

impl Batch {
    /// OpenAI's batch object.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": self.errors.as_ref().map(|m| json!({
                "object": "list",
                "data": [{"code": "batch_failed", "message": m, "param": null, "line": null}],
            })),
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status.as_str(),
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        });
        for s in Status::ALL {
            if s == Status::Validating {
                continue;
            }
            let at = self.times.iter().find(|(t, _)| *t == s).map(|(_, at)| *at);
            v[s.at_column()] = json!(at);
        }
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {where_}: {message}")]
    Db { where_: String, message: String },
    #[error("no batch {0} in the store")]
    NoBatch(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Db {
            where_: "sqlite".into(),
            message: e.to_string(),
        }
    }
}

/// The gateway's store. Every method is one durable step: when it returns `Ok`, what it wrote
/// survives a crash of the process and of the machine (the store syncs before returning).
pub trait Store: Send + Sync {
    fn put_file(
        &self,
        owner: &str,
        purpose: &str,
        filename: &str,
        content: &[u8],
    ) -> Result<FileObject, StoreError>;
    /// A file, if `owner` may see it (files are visible only to the key that uploaded them).
    fn file(&self, owner: &str, id: &str) -> Result<Option<FileObject>, StoreError>;
    fn file_content(&self, owner: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// A new batch, in `validating`.
    fn create_batch(&self, new: &NewBatch) -> Result<Batch, StoreError>;
    fn batch(&self, owner: &str, id: &str) -> Result<Option<Batch>, StoreError>;
    /// A batch whoever owns it (the gateway's own view).
    fn get(&self, id: &str) -> Result<Option<Batch>, StoreError>;
    /// `owner`'s batches, newest first, those older than `after` when given; and whether more
    /// follow.
    fn list_batches(
        &self,
        owner: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Batch>, bool), StoreError>;
    /// Every live batch of every owner (for the web page and `/metrics`), oldest first.
    fn live_batches(&self) -> Result<Vec<Batch>, StoreError>;
    /// The `limit` batches of every owner that ended last (completed, failed, cancelled or
    /// expired), newest first: the web page lists them, so a batch that ends between two
    /// refreshes is still seen.
    fn recent_batches(&self, limit: usize) -> Result<Vec<Batch>, StoreError>;
    /// Asks a batch to stop: `validating` and `in_progress` become `cancelling`; other statuses
    /// are left as they are.
    fn cancel(&self, owner: &str, id: &str) -> Result<Option<Batch>, StoreError>;
    /// Takes the oldest live batch whose lease has lapsed (or that `worker` already holds), for
    /// `lease_ms`.
    fn claim(&self, worker: &str, lease_ms: i64) -> Result<Option<Batch>, StoreError>;
    /// Extends `worker`'s lease; false when the lease was lost to another gateway.
    fn renew(&self, worker: &str, id: &str, lease_ms: i64) -> Result<bool, StoreError>;
    /// Moves a batch to `status` (recording when), with a failure message for `failed`.
    fn set_status(&self, id: &str, status: Status, errors: Option<&str>) -> Result<(), StoreError>;
    /// The `custom_id`s that have a result.
    fn done_ids(&self, id: &str) -> Result<HashSet<String>, StoreError>;
    /// Stores results; a `custom_id` that has one already keeps it. Returns how many were new.
    fn put_results(&self, id: &str, results: &[LineResult]) -> Result<u64, StoreError>;
    /// Writes the output and error files from the stored results (in the order they were
    /// stored) and ends the batch in `status` (`completed`, `cancelled` or `expired`).
    fn finalize(&self, id: &str, status: Status) -> Result<Batch, StoreError>;
}

pub fn now_s() -> i64 {
    now_ms() / 1000
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A fresh id: `prefix` and 24 hex digits of randomness.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{:024x}", rand::random::<u128>() >> 32)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    filename TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    content BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    in_progress_at INTEGER,
    finalizing_at INTEGER,
    completed_at INTEGER,
    failed_at INTEGER,
    cancelling_at INTEGER,
    cancelled_at INTEGER,
    expired_at INTEGER,
    output_file_id TEXT,
    error_file_id TEXT,
    errors TEXT,
    metadata TEXT,
    lease_owner TEXT,
    lease_until INTEGER
);
CREATE INDEX IF NOT EXISTS batches_owner ON batches (owner, seq);
CREATE TABLE IF NOT EXISTS results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    success INTEGER NOT NULL,
    line TEXT NOT NULL,
    UNIQUE (batch_id, custom_id)
);
";

/// The batch columns every store selects, in the order its row reader expects.
pub(crate) const BATCH_COLUMNS: &str =
    "id, owner, input_file_id, endpoint, completion_window, status, \
    total, created_at, expires_at, in_progress_at, finalizing_at, completed_at, failed_at, \
    cancelling_at, cancelled_at, expired_at, output_file_id, error_file_id, errors, metadata";

/// The default store: one SQLite file in WAL mode with `synchronous = FULL` (a committed
/// transaction is on disk before the call returns), nothing to set up.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let at = |e: rusqlite::Error| StoreError::Db {
            where_: path.display().to_string(),
            message: e.to_string(),
        };
        let conn = Connection::open(path).map_err(at)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(at)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(at)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Db {
                where_: path.display().to_string(),
                message: format!(
                    "journal mode is {mode}, not WAL (is the file on a network file system?)"
                ),
            });
        }
        conn.execute_batch("PRAGMA synchronous = FULL;")
            .map_err(at)?;
        conn.execute_batch(SCHEMA).map_err(at)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable (SQLite rolls back an
        // unfinished transaction when it is dropped).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn counts(conn: &Connection, id: &str) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT COALESCE(SUM(success), 0), COALESCE(SUM(1 - success), 0) \
         FROM results WHERE batch_id = ?1",
        [id],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
}

fn batch_from_row(conn: &Connection, r: &rusqlite::Row<'_>) -> rusqlite::Result<Batch> {
    let id: String = r.get(0)?;
    let status: String = r.get(5)?;
    let mut times = Vec::new();
    // Columns 9.. are the `*_at` of every status after `validating`, in `Status::ALL` order.
    for (i, s) in Status::ALL[1..].iter().copied().enumerate() {
        if let Some(at) = r.get::<_, Option<i64>>(9 + i)? {
            times.push((s, at));
        }
    }
    let metadata: Option<String> = r.get(19)?;
    let (completed, failed) = counts(conn, &id)?;
    Ok(Batch {
        owner: r.get(1)?,
        input_file_id: r.get(2)?,
        endpoint: r.get(3)?,
        completion_window: r.get(4)?,
        status: Status::parse(&status).unwrap_or(Status::Failed),
        total: r.get::<_, i64>(6)? as u64,
        completed,
        failed,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        times,
        output_file_id: r.get(16)?,
        error_file_id: r.get(17)?,
        errors: r.get(18)?,
        metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        id,
    })
}

fn get_batch(conn: &Connection, id: &str) -> rusqlite::Result<Option<Batch>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?1"
    ))?;
    st.query_row([id], |r| batch_from_row(conn, r)).optional()
}

fn insert_file(
    conn: &Connection,
    owner: &str,
    purpose: &str,
    filename: &str,
    content: &[u8],
) -> rusqlite::Result<FileObject> {
    let f = FileObject {
        id: new_id("file-"),
        owner: owner.into(),
        purpose: purpose.into(),
        filename: filename.into(),
        bytes: content.len() as u64,
        created_at: now_s(),
    };
    conn.execute(
        "INSERT INTO files (id, owner, purpose, filename, bytes, created_at, content) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            f.id,
            f.owner,
            f.purpose,
            f.filename,
            f.bytes as i64,
            f.created_at,
            content
        ],
    )?;
    Ok(f)
}

impl Store for SqliteStore {
    fn put_file(
        &self,
        owner: &str,
        purpose: &str,
        filename: &str,
        content: &[u8],
    ) -> Result<FileObject, StoreError> {
        Ok(insert_file(
            &self.conn(),
            owner,
            purpose,
            filename,
            content,
        )?)
    }

    fn file(&self, owner: &str, id: &str) -> Result<Option<FileObject>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT id, owner, purpose, filename, bytes, created_at FROM files \
                 WHERE id = ?1 AND owner = ?2",
                [id, owner],
                |r| {
                    Ok(FileObject {
                        id: r.get(0)?,
                        owner: r.get(1)?,
                        purpose: r.get(2)?,
                        filename: r.get(3)?,
                        bytes: r.get::<_, i64>(4)? as u64,
                        created_at: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    fn file_content(&self, owner: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT content FROM files WHERE id = ?1 AND owner = ?2",
                [id, owner],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn create_batch(&self, new: &NewBatch) -> Result<Batch, StoreError> {
        let conn = self.conn();
        let id = new_id("batch_");
        let now = now_s();
        conn.execute(
            "INSERT INTO batches (id, owner, input_file_id, endpoint, completion_window, status, \
             total, created_at, expires_at, metadata) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'validating', ?6, ?7, ?8, ?9)",
            params![
                id,
                new.owner,
                new.input_file_id,
                new.endpoint,
                new.completion_window,
                new.total as i64,
                now,
                now + new.window_s,
                new.metadata.as_ref().map(Value::to_string),
            ],
        )?;
        get_batch(&conn, &id)?.ok_or(StoreError::NoBatch(id))
    }

    fn batch(&self, owner: &str, id: &str) -> Result<Option<Batch>, StoreError> {
        let conn = self.conn();
        Ok(get_batch(&conn, id)?.filter(|b| b.owner == owner))
    }

    fn get(&self, id: &str) -> Result<Option<Batch>, StoreError> {
        Ok(get_batch(&self.conn(), id)?)
    }

    fn list_batches(
        &self,
        owner: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Batch>, bool), StoreError> {
        let conn = self.conn();
        let below: i64 = match after {
            Some(a) => conn
                .query_row(
                    "SELECT seq FROM batches WHERE id = ?1 AND owner = ?2",
                    [a, owner],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(i64::MAX),
            None => i64::MAX,
        };
        let mut st = conn.prepare_cached(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE owner = ?1 AND seq < ?2 \
             ORDER BY seq DESC LIMIT ?3"
        ))?;
        let mut out = st
            .query_map(params![owner, below, limit as i64 + 1], |r| {
                batch_from_row(&conn, r)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let more = out.len() > limit;
        out.truncate(limit);
        Ok((out, more))
    }

    fn live_batches(&self) -> Result<Vec<Batch>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches \
             WHERE status IN ('validating', 'in_progress', 'finalizing', 'cancelling') \
             ORDER BY seq"
        ))?;
        let out = st
            .query_map([], |r| batch_from_row(&conn, r))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(out)
    }

    fn recent_batches(&self, limit: usize) -> Result<Vec<Batch>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches \
             WHERE status NOT IN ('validating', 'in_progress', 'finalizing', 'cancelling') \
             ORDER BY COALESCE(completed_at, failed_at, cancelled_at, expired_at) DESC, seq DESC \
             LIMIT ?1"
        ))?;
        let out = st
            .query_map([limit as i64], |r| batch_from_row(&conn, r))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(out)
    }

    fn cancel(&self, owner: &str, id: &str) -> Result<Option<Batch>, StoreError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE batches SET status = 'cancelling', cancelling_at = ?3 \
             WHERE id = ?1 AND owner = ?2 AND status IN ('validating', 'in_progress')",
            params![id, owner, now_s()],
        )?;
        Ok(get_batch(&conn, id)?.filter(|b| b.owner == owner))
    }

    fn claim(&self, worker: &str, lease_ms: i64) -> Result<Option<Batch>, StoreError> {
        let mut conn = self.conn();
        // IMMEDIATE takes the write lock first: two gateways on one file cannot both read the
        // same lapsed lease and both take it.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_ms();
        let id: Option<String> = tx
            .query_row(
                "SELECT id FROM batches \
                 WHERE status IN ('validating', 'in_progress', 'finalizing', 'cancelling') \
                 AND (lease_until IS NULL OR lease_until < ?1 OR lease_owner = ?2) \
                 ORDER BY seq LIMIT 1",
                params![now, worker],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE batches SET lease_owner = ?2, lease_until = ?3 WHERE id = ?1",
            params![id, worker, now + lease_ms],
        )?;
        let b = get_batch(&tx, &id)?;
        tx.commit()?;
        Ok(b)
    }

    fn renew(&self, worker: &str, id: &str, lease_ms: i64) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE batches SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2",
            params![id, worker, now_ms() + lease_ms],
        )?;
        Ok(n == 1)
    }

    fn set_status(&self, id: &str, status: Status, errors: Option<&str>) -> Result<(), StoreError> {
        let conn = self.conn();
        let n = conn.execute(
            &format!(
                "UPDATE batches SET status = ?2, {} = COALESCE({0}, ?3), \
                 errors = COALESCE(?4, errors) WHERE id = ?1",
                status.at_column()
            ),
            params![id, status.as_str(), now_s(), errors],
        )?;
        if n == 0 {
            return Err(StoreError::NoBatch(id.into()));
        }
        Ok(())
    }

    fn done_ids(&self, id: &str) -> Result<HashSet<String>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT custom_id FROM results WHERE batch_id = ?1")?;
        let out = st
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<HashSet<String>>>()?;
        Ok(out)
    }

    fn put_results(&self, id: &str, results: &[LineResult]) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut new = 0;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO results (batch_id, custom_id, success, line) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (batch_id, custom_id) DO NOTHING",
            )?;
            for r in results {
                new += st.execute(params![id, r.custom_id, r.success as i64, r.json])? as u64;
            }
        }
        tx.commit()?;
        Ok(new)
    }

    fn finalize(&self, id: &str, status: Status) -> Result<Batch, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let b = get_batch(&tx, id)?.ok_or_else(|| StoreError::NoBatch(id.into()))?;
        if !b.status.is_live() {
            // Finalized already (a crash after the commit below, or another gateway).
            return Ok(b);
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        {
            let mut st = tx.prepare_cached(
                "SELECT success, line FROM results WHERE batch_id = ?1 ORDER BY seq",
            )?;
            let mut rows = st.query([id])?;
            while let Some(r) = rows.next()? {
                let success: i64 = r.get(0)?;
                let line: String = r.get(1)?;
                let to = if success == 1 { &mut out } else { &mut err };
                to.extend_from_slice(line.as_bytes());
                to.push(b'\n');
            }
        }
        let name = |kind: &str| format!("{id}_{kind}.jsonl");
        let output = (!out.is_empty())
            .then(|| insert_file(&tx, &b.owner, "batch_output", &name("output"), &out))
            .transpose()?;
        let error = (!err.is_empty())
            .then(|| insert_file(&tx, &b.owner, "batch_output", &name("error"), &err))
            .transpose()?;
        tx.execute(
            &format!(
                "UPDATE batches SET status = ?2, {} = ?3, output_file_id = ?4, \
                 error_file_id = ?5, lease_owner = NULL, lease_until = NULL WHERE id = ?1",
                status.at_column()
            ),
            params![
                id,
                status.as_str(),
                now_s(),
                output.map(|f| f.id),
                error.map(|f| f.id)
            ],
        )?;
        let b = get_batch(&tx, id)?.ok_or_else(|| StoreError::NoBatch(id.into()))?;
        tx.commit()?;
        Ok(b)
    }
}

/// One batch's results as a [`strobe_batch::BatchStore`], so that the batch runner of
/// `strobe batch` (retries, classified failures, the one request path) runs gateway batches
/// unchanged. Results are buffered and stored, in one transaction, at each commit.
pub struct BatchSink<S: Store + ?Sized> {
    store: std::sync::Arc<S>,
    batch_id: String,
    done: HashSet<String>,
    buffer: Vec<LineResult>,
    succeeded: u64,
    failed: u64,
}

impl<S: Store + ?Sized> BatchSink<S> {
    pub fn open(store: std::sync::Arc<S>, batch_id: &str) -> Result<BatchSink<S>, StoreError> {
        let done = store.done_ids(batch_id)?;
        let b = store
            .get(batch_id)?
            .ok_or_else(|| StoreError::NoBatch(batch_id.into()))?;
        Ok(BatchSink {
            store,
            batch_id: batch_id.into(),
            done,
            buffer: Vec::new(),
            succeeded: b.completed,
            failed: b.failed,
        })
    }
}

impl<S: Store + ?Sized> strobe_batch::BatchStore for BatchSink<S> {
    fn is_done(&self, custom_id: &str) -> bool {
        self.done.contains(custom_id)
    }

    fn counts(&self) -> (u64, u64) {
        (self.succeeded, self.failed)
    }

    fn append(&mut self, result: &LineResult) -> Result<bool, strobe_batch::StoreError> {
        if !self.done.insert(result.custom_id.clone()) {
            return Ok(false);
        }
        if result.success {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        self.buffer.push(result.clone());
        Ok(true)
    }

    fn commit(&mut self) -> Result<(), strobe_batch::StoreError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.store
            .put_results(&self.batch_id, &self.buffer)
            .map_err(|e| strobe_batch::StoreError::Io {
                path: PathBuf::from(format!("gateway store, batch {}", self.batch_id)),
                source: std::io::Error::other(e.to_string()),
            })?;
        self.buffer.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use strobe_batch::BatchStore;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strobe-gw-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn batch(store: &dyn Store, owner: &str, total: u64) -> Batch {
        let f = store.put_file(owner, "batch", "in.jsonl", b"{}\n").unwrap();
        store
            .create_batch(&NewBatch {
                owner: owner.into(),
                input_file_id: f.id,
                endpoint: "/v1/chat/completions".into(),
                completion_window: "24h".into(),
                window_s: 86400,
                metadata: Some(json!({"job": "nightly"})),
                total,
            })
            .unwrap()
    }

    fn line(id: &str, success: bool) -> LineResult {
        LineResult {
            custom_id: id.into(),
            success,
            json: format!("{{\"custom_id\":\"{id}\"}}"),
        }
    }

    #[test]
    fn results_are_stored_once_and_survive_reopening() {
        let d = dir("once");
        let path = d.join("gw.db");
        let id = {
            let s = SqliteStore::open(&path).unwrap();
            let b = batch(&s, "k1", 3);
            assert_eq!(b.status, Status::Validating);
            assert_eq!(
                s.put_results(&b.id, &[line("a", true), line("b", false)])
                    .unwrap(),
                2
            );
            // The second result for "a" is refused, whatever it says.
            assert_eq!(
                s.put_results(&b.id, &[line("a", false), line("c", true)])
                    .unwrap(),
                1
            );
            b.id
        };
        let s = SqliteStore::open(&path).unwrap();
        let b = s.batch("k1", &id).unwrap().unwrap();
        assert_eq!((b.completed, b.failed, b.total), (2, 1, 3));
        let done = s.done_ids(&id).unwrap();
        assert_eq!(done.len(), 3);
        let b = s.finalize(&id, Status::Completed).unwrap();
        assert_eq!(b.status, Status::Completed);
        let out = s
            .file_content("k1", b.output_file_id.as_ref().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"custom_id\":\"a\"}\n{\"custom_id\":\"c\"}\n"
        );
        let err = s
            .file_content("k1", b.error_file_id.as_ref().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(String::from_utf8(err).unwrap(), "{\"custom_id\":\"b\"}\n");
        // Finalizing again changes nothing (a crash between finalize and the caller's next step).
        let again = s.finalize(&id, Status::Completed).unwrap();
        assert_eq!(again.output_file_id, b.output_file_id);
        let v = b.to_json();
        assert_eq!(v["request_counts"]["completed"], 2);
        assert_eq!(v["status"], "completed");
        assert!(v["completed_at"].is_i64());
        assert!(v["failed_at"].is_null());
        assert_eq!(v["metadata"]["job"], "nightly");
    }

    #[test]
    fn files_and_batches_are_visible_only_to_their_owner() {
        let d = dir("owner");
        let s = SqliteStore::open(&d.join("gw.db")).unwrap();
        let b = batch(&s, "k1", 1);
        assert!(s.batch("k2", &b.id).unwrap().is_none());
        assert!(s.file("k2", &b.input_file_id).unwrap().is_none());
        assert!(s.file_content("k2", &b.input_file_id).unwrap().is_none());
        assert!(s.file("k1", &b.input_file_id).unwrap().is_some());
        assert!(s.cancel("k2", &b.id).unwrap().is_none());
        assert_eq!(
            s.batch("k1", &b.id).unwrap().unwrap().status,
            Status::Validating
        );
        assert!(s.list_batches("k2", None, 10).unwrap().0.is_empty());
    }

    #[test]
    fn listing_pages_newest_first() {
        let d = dir("page");
        let s = SqliteStore::open(&d.join("gw.db")).unwrap();
        let ids: Vec<String> = (0..5).map(|_| batch(&s, "k1", 1).id).collect();
        let (first, more) = s.list_batches("k1", None, 2).unwrap();
        assert!(more);
        assert_eq!(
            first.iter().map(|b| &b.id).collect::<Vec<_>>(),
            [&ids[4], &ids[3]]
        );
        let (next, more) = s.list_batches("k1", Some(&ids[3]), 2).unwrap();
        assert!(more);
        assert_eq!(
            next.iter().map(|b| &b.id).collect::<Vec<_>>(),
            [&ids[2], &ids[1]]
        );
        let (last, more) = s.list_batches("k1", Some(&ids[1]), 2).unwrap();
        assert!(!more);
        assert_eq!(last.len(), 1);
    }

    #[test]
    fn a_lease_keeps_other_gateways_off_until_it_lapses() {
        let d = dir("lease");
        let path = d.join("gw.db");
        // Two stores on one file, as two gateway processes.
        let a = SqliteStore::open(&path).unwrap();
        let b = SqliteStore::open(&path).unwrap();
        let job = batch(&a, "k1", 1);
        let got = a.claim("gw-a", 60_000).unwrap().unwrap();
        assert_eq!(got.id, job.id);
        assert!(b.claim("gw-b", 60_000).unwrap().is_none(), "held by gw-a");
        assert!(a.renew("gw-a", &job.id, 60_000).unwrap());
        // gw-a's lease lapses: gw-b takes the batch, and gw-a learns it lost it.
        assert!(a.renew("gw-a", &job.id, -1).unwrap());
        assert_eq!(b.claim("gw-b", 60_000).unwrap().unwrap().id, job.id);
        assert!(!a.renew("gw-a", &job.id, 60_000).unwrap());
        // A finished batch is claimed by no one.
        b.finalize(&job.id, Status::Completed).unwrap();
        assert!(a.claim("gw-a", 60_000).unwrap().is_none());
    }

    #[test]
    fn cancelling_moves_only_running_batches() {
        let d = dir("cancel");
        let s = SqliteStore::open(&d.join("gw.db")).unwrap();
        let job = batch(&s, "k1", 2);
        s.set_status(&job.id, Status::InProgress, None).unwrap();
        let c = s.cancel("k1", &job.id).unwrap().unwrap();
        assert_eq!(c.status, Status::Cancelling);
        assert!(c.to_json()["cancelling_at"].is_i64());
        let done = s.finalize(&job.id, Status::Cancelled).unwrap();
        assert_eq!(done.status, Status::Cancelled);
        assert!(done.output_file_id.is_none(), "no results, no output file");
        assert_eq!(
            s.cancel("k1", &job.id).unwrap().unwrap().status,
            Status::Cancelled
        );
        let failed = batch(&s, "k1", 1);
        s.set_status(&failed.id, Status::Failed, Some("line 3: no body"))
            .unwrap();
        let f = s.batch("k1", &failed.id).unwrap().unwrap().to_json();
        assert_eq!(f["errors"]["data"][0]["message"], "line 3: no body");
    }

    #[test]
    fn the_batches_that_ended_last_are_listed_newest_first_of_every_owner() {
        let d = dir("recent");
        let s = SqliteStore::open(&d.join("gw.db")).unwrap();
        let first = batch(&s, "k1", 1);
        let second = batch(&s, "k2", 1);
        let running = batch(&s, "k1", 1);
        s.set_status(&running.id, Status::InProgress, None).unwrap();
        assert!(s.recent_batches(10).unwrap().is_empty());
        s.finalize(&first.id, Status::Completed).unwrap();
        s.set_status(&second.id, Status::Failed, Some("no lines"))
            .unwrap();
        let ids = |v: Vec<Batch>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.recent_batches(10).unwrap()),
            [second.id.clone(), first.id]
        );
        assert_eq!(ids(s.recent_batches(1).unwrap()), [second.id]);
    }

    #[test]
    fn the_batch_runner_stores_through_a_sink() {
        let d = dir("sink");
        let s = Arc::new(SqliteStore::open(&d.join("gw.db")).unwrap());
        let job = batch(&*s, "k1", 3);
        s.put_results(&job.id, &[line("a", true)]).unwrap();
        let mut sink = BatchSink::open(s.clone(), &job.id).unwrap();
        assert!(sink.is_done("a"));
        assert!(!sink.append(&line("a", false)).unwrap());
        assert!(sink.append(&line("b", false)).unwrap());
        assert_eq!(sink.counts(), (1, 1));
        // Not stored before the commit.
        assert_eq!(s.done_ids(&job.id).unwrap().len(), 1);
        sink.commit().unwrap();
        assert_eq!(s.done_ids(&job.id).unwrap().len(), 2);
    }
}
