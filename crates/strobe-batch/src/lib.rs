//! Batch jobs in the OpenAI batch format.
//!
//! A batch is a file of requests (see [`input`]), sent through strobe's one schedule core as a
//! class whose requests are the file's lines not yet done, and results kept in a
//! [`store::BatchStore`]. A line's result is written once it is final (a success, a failure
//! that retrying cannot fix, or one that used up its attempts); a line stopped while it could
//! still succeed stays pending, and a re-run sends it. This crate owns the file formats and the
//! store; when requests are sent and retried is `strobe-load`'s.

pub mod input;
pub mod store;

use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use strobe_core::{Outcome, Prompt, RawRequest, RequestRecord, RequestSpec};
use strobe_workload::{Variation, Workload};

pub use input::{BatchLine, InputError, Limits};
pub use store::{errors_path_for, BatchStore, FileStore, LineResult, Recovered, StoreError};

/// A batch ready to run: its pending lines and the store their results go to.
///
/// As made by [`BatchJob::new`], request `i` of the class is pending line `i`. A
/// [`BatchJob::share`] instead draws its lines from a pool it shares with the job's other
/// shares: several classes (the gateway's upstreams) send one batch together, each line to one
/// of them, a faster upstream taking more, and each class ends when the pool is empty.
pub struct BatchJob {
    lines: Arc<Lines>,
    /// A share's requests: request index → pending line, as drawn.
    drawn: Option<Arc<Mutex<HashMap<u64, usize>>>>,
    /// Lines in the input.
    pub total: u64,
    /// What the store held when the job was opened.
    pub recovered: Recovered,
}

/// What every share of a job has in common.
struct Lines {
    /// Lines without a result yet, in input order.
    pending: Vec<Pending>,
    /// The next line a share draws.
    next: AtomicUsize,
    store: Mutex<Box<dyn BatchStore>>,
    /// Why storing stopped, if it did (the run goes on; nothing more is marked done).
    failure: Mutex<Option<String>>,
}

struct Pending {
    custom_id: String,
    url: String,
    body: Map<String, Value>,
    max_tokens: u32,
}

impl BatchJob {
    /// The job for `lines` whose results go to `store`: lines the store already has are skipped.
    pub fn new(
        lines: Vec<BatchLine>,
        store: Box<dyn BatchStore>,
        recovered: Recovered,
    ) -> BatchJob {
        let total = lines.len() as u64;
        let pending = lines
            .into_iter()
            .filter(|l| !store.is_done(&l.custom_id))
            .map(|l| {
                let max_tokens = ["max_completion_tokens", "max_tokens"]
                    .iter()
                    .find_map(|k| l.body.get(*k).and_then(Value::as_u64))
                    .unwrap_or(0)
                    .min(u32::MAX as u64) as u32;
                Pending {
                    custom_id: l.custom_id,
                    url: l.url,
                    body: l.body,
                    max_tokens,
                }
            })
            .collect();
        BatchJob {
            lines: Arc::new(Lines {
                pending,
                next: AtomicUsize::new(0),
                store: Mutex::new(store),
                failure: Mutex::new(None),
            }),
            drawn: None,
            total,
            recovered,
        }
    }

    /// A class's view of this job that draws its lines from the pool every share of the job
    /// draws from (the job itself keeps request `i` = line `i`; do not run both). Results go to
    /// the one store.
    pub fn share(&self) -> BatchJob {
        BatchJob {
            lines: Arc::clone(&self.lines),
            drawn: Some(Arc::default()),
            total: self.total,
            recovered: self.recovered.clone(),
        }
    }

    /// Lines still to send: every pending line, or for a share those no share has drawn yet.
    pub fn pending(&self) -> u64 {
        match self.drawn {
            None => self.lines.pending.len() as u64,
            Some(_) => self.undrawn(),
        }
    }

    /// Pending lines no share of this job has drawn yet.
    pub fn undrawn(&self) -> u64 {
        let n = self.lines.pending.len();
        n.saturating_sub(self.lines.next.load(Ordering::Relaxed)) as u64
    }

    /// The class's workload: request `i` is pending line `i` (a share: the line it drew for
    /// `i`), its body sent as is (with `model` filled in from `model` when the line names none).
    pub fn workload(&self, model: &str) -> Arc<dyn Workload> {
        Arc::new(BatchWorkload {
            lines: Arc::clone(&self.lines),
            drawn: self.drawn.clone(),
            model: model.to_owned(),
        })
    }

    /// Stores the result of `record` (request `record.index`) when it is final; false when it is
    /// not (stopped while still retryable, or cancelled), and the line stays pending.
    pub fn record(&self, record: &RequestRecord) -> bool {
        let line = match &self.drawn {
            None => Some(record.index as usize),
            Some(d) => lock(d).get(&record.index).copied(),
        };
        let Some(line) = line.and_then(|i| self.lines.pending.get(i)) else {
            return false;
        };
        let Some(result) = result_line(&line.custom_id, record) else {
            return false;
        };
        match lock(&self.lines.store).append(&result) {
            Ok(stored) => stored,
            Err(e) => {
                self.fail(e.to_string());
                false
            }
        }
    }

    /// Makes every stored result durable; call whenever no record is waiting.
    pub fn commit(&self) {
        if let Err(e) = lock(&self.lines.store).commit() {
            self.fail(e.to_string());
        }
    }

    /// Results in the store now (successes, failures), earlier runs' included.
    pub fn counts(&self) -> (u64, u64) {
        lock(&self.lines.store).counts()
    }

    /// Why storing results failed, if it did.
    pub fn failure(&self) -> Option<String> {
        lock(&self.lines.failure).clone()
    }

    fn fail(&self, e: String) {
        lock(&self.lines.failure).get_or_insert(e);
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A [`BatchJob`] shared by the settings that name it (equal when it is the same job).
#[derive(Clone)]
pub struct JobHandle(pub Arc<BatchJob>);

impl PartialEq for JobHandle {
    fn eq(&self, other: &JobHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BatchJob({} lines, {} pending)",
            self.0.total,
            self.0.pending()
        )
    }
}

struct BatchWorkload {
    lines: Arc<Lines>,
    drawn: Option<Arc<Mutex<HashMap<u64, usize>>>>,
    model: String,
}

impl BatchWorkload {
    fn line(&self, index: u64) -> Option<&Pending> {
        let i = match &self.drawn {
            None => index as usize,
            Some(d) => *lock(d).get(&index)?,
        };
        self.lines.pending.get(i)
    }
}

impl Workload for BatchWorkload {
    fn vary(&self, _: Variation) -> Arc<dyn Workload> {
        Arc::new(BatchWorkload {
            lines: Arc::clone(&self.lines),
            drawn: self.drawn.clone(),
            model: self.model.clone(),
        })
    }

    fn claim(&self, index: u64) -> bool {
        let Some(drawn) = &self.drawn else {
            return (index as usize) < self.lines.pending.len();
        };
        let mut d = lock(drawn);
        if d.contains_key(&index) {
            return true;
        }
        let n = self.lines.next.fetch_add(1, Ordering::Relaxed);
        if n >= self.lines.pending.len() {
            return false;
        }
        d.insert(index, n);
        true
    }

    fn spec(&self, index: u64) -> RequestSpec {
        let Some(p) = self.line(index) else {
            // Past the end or never drawn (the class sends only what it drew): an empty body the
            // server rejects, never a panic.
            return RequestSpec {
                index,
                class: Default::default(),
                prompt: Prompt::Raw(RawRequest {
                    path: "/v1/completions".into(),
                    body: "{}".into(),
                }),
                input_tokens: None,
                max_tokens: 0,
                warmup: false,
            };
        };
        let body = if p.body.contains_key("model") {
            serde_json::to_string(&p.body)
        } else {
            let mut b = p.body.clone();
            b.insert("model".into(), Value::String(self.model.clone()));
            serde_json::to_string(&b)
        };
        RequestSpec {
            index,
            class: Default::default(),
            prompt: Prompt::Raw(RawRequest {
                path: p.url.clone(),
                body: body.unwrap_or_default(),
            }),
            input_tokens: None,
            max_tokens: p.max_tokens,
            warmup: false,
        }
    }

    fn describe(&self) -> String {
        format!("batch file, {} requests", self.lines.pending.len())
    }
}

/// A stable id for a line's result (`batch_req_` and 16 hex digits of its custom_id's hash).
fn result_id(custom_id: &str) -> String {
    // FNV-1a: stable across Rust versions, so a re-run writes the same ids.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in custom_id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("batch_req_{h:016x}")
}

/// The body as JSON when it is JSON, else as a string.
fn body_value(body: &[u8]) -> Value {
    match std::str::from_utf8(body) {
        Ok(text) => match serde_json::from_str::<Box<RawValue>>(text) {
            Ok(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            Err(_) => Value::String(text.to_owned()),
        },
        Err(_) => Value::String(String::from_utf8_lossy(body).into_owned()),
    }
}

/// The OpenAI batch output line for a final record, or `None` while the line has no final
/// result.
pub fn result_line(custom_id: &str, record: &RequestRecord) -> Option<LineResult> {
    let capture = record.capture.as_deref()?;
    if capture.unfinished || matches!(record.outcome, Outcome::Cancelled) {
        return None;
    }
    let id = result_id(custom_id);
    let request_id = capture
        .request_id
        .clone()
        .unwrap_or_else(|| id.replacen("batch_req_", "req_", 1));
    let response = capture.status.map(|status| {
        json!({
            "status_code": status,
            "request_id": request_id,
            "body": body_value(&capture.body),
        })
    });
    let (success, error) = match &record.outcome {
        Outcome::Success => (true, Value::Null),
        Outcome::Failed { kind, message } => (
            false,
            json!({ "code": kind.label(), "message": message, "attempts": record.attempts }),
        ),
        Outcome::Cancelled => return None,
    };
    let line = json!({
        "id": id,
        "custom_id": custom_id,
        "response": response,
        "error": error,
    });
    Some(LineResult {
        custom_id: custom_id.to_owned(),
        success,
        json: line.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strobe_core::{Captured, ChunkArrivals, ClassId, ErrorKind};

    fn record(outcome: Outcome, capture: Option<Captured>) -> RequestRecord {
        RequestRecord {
            index: 0,
            class: ClassId(0),
            warmup: false,
            intended_ns: 0,
            sent_ns: 0,
            first_token_ns: None,
            end_ns: 10,
            chunk_arrivals_ns: ChunkArrivals::default(),
            input_tokens: None,
            input_tokens_source: None,
            output_tokens: None,
            output_tokens_source: None,
            expected_input_tokens: None,
            batch: None,
            attempts: 2,
            outcome,
            capture: capture.map(Box::new),
        }
    }

    /// Results in memory, for the tests.
    #[derive(Default)]
    struct Memory(Arc<Mutex<Vec<String>>>);

    impl BatchStore for Memory {
        fn is_done(&self, custom_id: &str) -> bool {
            lock(&self.0).iter().any(|c| c == custom_id)
        }
        fn counts(&self) -> (u64, u64) {
            (lock(&self.0).len() as u64, 0)
        }
        fn append(&mut self, r: &LineResult) -> Result<bool, StoreError> {
            if self.is_done(&r.custom_id) {
                return Ok(false);
            }
            lock(&self.0).push(r.custom_id.clone());
            Ok(true)
        }
        fn commit(&mut self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn ok(index: u64) -> RequestRecord {
        let mut r = record(
            Outcome::Success,
            Some(Captured {
                status: Some(200),
                body: b"{}".to_vec(),
                ..Default::default()
            }),
        );
        r.index = index;
        r
    }

    #[test]
    fn shares_draw_each_line_once_and_end_when_the_pool_is_empty() {
        let lines = (0..5)
            .map(|i| BatchLine {
                line: i + 1,
                custom_id: format!("c{i}"),
                url: "/v1/completions".into(),
                body: json!({"prompt": format!("p{i}"), "max_tokens": 3})
                    .as_object()
                    .unwrap()
                    .clone(),
            })
            .collect();
        let stored = Memory::default();
        let results = Arc::clone(&stored.0);
        let job = BatchJob::new(lines, Box::new(stored), Recovered::default());
        let (a, b) = (job.share(), job.share());
        let (wa, wb) = (a.workload("m"), b.workload("m"));
        assert_eq!(a.pending(), 5);
        // Class a takes two requests, b three, interleaved; each request is a different line.
        let mut prompts = vec![];
        for (w, i) in [(&wa, 0), (&wb, 0), (&wa, 1), (&wb, 1), (&wb, 2)] {
            assert!(w.claim(i));
            assert!(w.claim(i), "asking again is the same request");
            let Prompt::Raw(r) = w.spec(i).prompt else {
                panic!()
            };
            prompts.push(serde_json::from_str::<Value>(&r.body).unwrap()["prompt"].clone());
        }
        assert_eq!(prompts, ["p0", "p1", "p2", "p3", "p4"]);
        assert_eq!((b.pending(), job.undrawn(), job.pending()), (0, 0, 5));
        assert!(!wa.claim(2) && !wb.claim(3), "the pool is empty");
        // A record finds its own share's line: b's request 2 is line 4.
        assert!(b.record(&ok(2)));
        assert!(a.record(&ok(1)));
        assert!(!a.record(&ok(7)), "a request a never drew stores nothing");
        assert_eq!(*lock(&results), ["c4", "c2"]);
        assert_eq!(job.counts(), (2, 0));
        // The job itself maps request i to line i.
        assert!(job.workload("m").claim(4) && !job.workload("m").claim(5));
        assert_eq!(job.pending(), 5);
    }

    #[test]
    fn lines_follow_the_openai_output_format() {
        let ok = record(
            Outcome::Success,
            Some(Captured {
                status: Some(200),
                request_id: Some("r1".into()),
                body: br#"{"choices":[]}"#.to_vec(),
                ..Default::default()
            }),
        );
        let l = result_line("a", &ok).unwrap();
        let v: Value = serde_json::from_str(&l.json).unwrap();
        assert!(l.success);
        assert_eq!(v["response"]["status_code"], 200);
        assert_eq!(v["response"]["request_id"], "r1");
        assert_eq!(v["response"]["body"]["choices"], json!([]));
        assert_eq!(v["error"], Value::Null);
        assert!(v["id"].as_str().unwrap().starts_with("batch_req_"));

        let refused = record(
            Outcome::Failed {
                kind: ErrorKind::HttpStatus(400),
                message: "HTTP 400: bad".into(),
            },
            Some(Captured {
                status: Some(400),
                body: b"plain text".to_vec(),
                ..Default::default()
            }),
        );
        let v: Value = serde_json::from_str(&result_line("b", &refused).unwrap().json).unwrap();
        assert_eq!(v["response"]["body"], "plain text");
        assert_eq!(
            (v["error"]["code"].as_str(), v["error"]["attempts"].as_u64()),
            (Some("http_400"), Some(2))
        );

        let down = record(
            Outcome::Failed {
                kind: ErrorKind::Connect,
                message: "refused".into(),
            },
            Some(Captured::default()),
        );
        let v: Value = serde_json::from_str(&result_line("c", &down).unwrap().json).unwrap();
        assert_eq!(v["response"], Value::Null);
        assert_eq!(v["error"]["code"], "connect");
    }

    #[test]
    fn unfinished_and_cancelled_lines_stay_pending() {
        let unfinished = record(
            Outcome::Failed {
                kind: ErrorKind::Connect,
                message: "x".into(),
            },
            Some(Captured {
                unfinished: true,
                ..Default::default()
            }),
        );
        assert!(result_line("a", &unfinished).is_none());
        assert!(result_line("a", &record(Outcome::Cancelled, Some(Captured::default()))).is_none());
        assert!(result_line("a", &record(Outcome::Success, None)).is_none());
    }

    #[test]
    fn result_ids_are_stable() {
        assert_eq!(result_id("a"), result_id("a"));
        assert_ne!(result_id("a"), result_id("b"));
    }
}
