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
use std::sync::{Arc, Mutex};
use strobe_core::{Outcome, Prompt, RawRequest, RequestRecord, RequestSpec};
use strobe_workload::{Variation, Workload};

pub use input::{BatchLine, InputError, Limits};
pub use store::{errors_path_for, BatchStore, FileStore, LineResult, Recovered, StoreError};

/// A batch ready to run: its pending lines and the store their results go to.
pub struct BatchJob {
    /// Lines without a result yet, in input order; request `i` of the class is `pending[i]`.
    pending: Arc<Vec<Pending>>,
    /// Lines in the input.
    pub total: u64,
    /// What the store held when the job was opened.
    pub recovered: Recovered,
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
            pending: Arc::new(pending),
            total,
            recovered,
            store: Mutex::new(store),
            failure: Mutex::new(None),
        }
    }

    /// Lines still to send.
    pub fn pending(&self) -> u64 {
        self.pending.len() as u64
    }

    /// The class's workload: request `i` is pending line `i`, its body sent as is (with `model`
    /// filled in from `model` when the line names none).
    pub fn workload(&self, model: &str) -> Arc<dyn Workload> {
        Arc::new(BatchWorkload {
            pending: Arc::clone(&self.pending),
            model: model.to_owned(),
        })
    }

    /// Stores the result of `record` (request `record.index`) when it is final; false when it is
    /// not (stopped while still retryable, or cancelled), and the line stays pending.
    pub fn record(&self, record: &RequestRecord) -> bool {
        let Some(line) = self.pending.get(record.index as usize) else {
            return false;
        };
        let Some(result) = result_line(&line.custom_id, record) else {
            return false;
        };
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        match store.append(&result) {
            Ok(stored) => stored,
            Err(e) => {
                self.fail(e.to_string());
                false
            }
        }
    }

    /// Makes every stored result durable; call whenever no record is waiting.
    pub fn commit(&self) {
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = store.commit() {
            self.fail(e.to_string());
        }
    }

    /// Results in the store now (successes, failures), earlier runs' included.
    pub fn counts(&self) -> (u64, u64) {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts()
    }

    /// Why storing results failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn fail(&self, e: String) {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
    }
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
    pending: Arc<Vec<Pending>>,
    model: String,
}

impl Workload for BatchWorkload {
    fn vary(&self, _: Variation) -> Arc<dyn Workload> {
        Arc::new(BatchWorkload {
            pending: Arc::clone(&self.pending),
            model: self.model.clone(),
        })
    }

    fn spec(&self, index: u64) -> RequestSpec {
        let Some(p) = self.pending.get(index as usize) else {
            // Past the end (the class sends exactly `pending` requests): an empty body the server
            // rejects, never a panic.
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
        format!("batch file, {} requests", self.pending.len())
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
