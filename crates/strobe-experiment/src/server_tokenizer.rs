//! `--tokenizer server`: counts through the server's own `/tokenize` (vLLM, SGLang, and strobe's
//! built-in target have it), so lengths match the server exactly, chat template included.
//!
//! Only used while a workload is built (on a blocking thread), never during the measured run.

use http::HeaderMap;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use strobe_client::{BaseUrl, JsonCalls};
use strobe_core::ChatMessage;
use strobe_workload::{TokenCounter, TokenizerError};

/// At most this many /tokenize calls at once.
const PARALLEL: usize = 8;

struct Inner {
    base: BaseUrl,
    /// Connections kept open between calls (one per prompt otherwise).
    calls: JsonCalls,
    headers: HeaderMap,
    model: String,
}

/// The server's tokenizer. Its methods block: call them from a blocking thread.
#[derive(Clone)]
pub struct ServerTokenizer {
    inner: Arc<Inner>,
    handle: tokio::runtime::Handle,
}

impl ServerTokenizer {
    /// Checks that `POST /tokenize` answers with a count; `Err` says what it answered.
    pub async fn probe(
        base: &BaseUrl,
        addr: SocketAddr,
        headers: &HeaderMap,
        model: &str,
    ) -> Result<ServerTokenizer, String> {
        let inner = Arc::new(Inner {
            base: base.clone(),
            calls: JsonCalls::new(base.clone(), addr, PARALLEL),
            headers: headers.clone(),
            model: model.to_owned(),
        });
        let body = json!({"model": model, "prompt": "hello world"});
        tokio::time::timeout(std::time::Duration::from_secs(10), call(&inner, &body))
            .await
            .map_err(|_| "no answer within 10 s".to_owned())??;
        Ok(ServerTokenizer {
            inner,
            handle: tokio::runtime::Handle::current(),
        })
    }

    fn err(&self, problem: String) -> TokenizerError {
        TokenizerError::Count {
            source_name: self.describe(),
            problem,
        }
    }
}

/// One /tokenize call (30 s bound): the `count` of the answer.
async fn call(inner: &Inner, body: &Value) -> Result<u32, String> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let (status, answer) = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        inner.calls.post("/tokenize", &inner.headers, &bytes),
    )
    .await
    .map_err(|_| {
        format!(
            "{} gave no answer within 30 s",
            inner.base.url_of("/tokenize")
        )
    })??;
    let text = String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned();
    if status != 200 {
        return Err(format!(
            "{} answered HTTP {status}: {}",
            inner.base.url_of("/tokenize"),
            text.trim()
        ));
    }
    let v: Value = serde_json::from_slice(&answer)
        .map_err(|e| format!("{} answered non-JSON: {e}", inner.base.url_of("/tokenize")))?;
    v.get("count")
        .and_then(Value::as_u64)
        .or_else(|| {
            v.get("tokens")
                .and_then(Value::as_array)
                .map(|t| t.len() as u64)
        })
        .map(|n| n as u32)
        .ok_or_else(|| {
            format!(
                "{} answered without a `count`: {}",
                inner.base.url_of("/tokenize"),
                text.trim()
            )
        })
}

impl TokenCounter for ServerTokenizer {
    fn describe(&self) -> String {
        format!("server:{}", self.inner.base.url_of("/tokenize"))
    }

    fn count(&self, text: &str) -> Result<u32, TokenizerError> {
        Ok(self.count_many(&[text])?[0])
    }

    fn count_many(&self, texts: &[&str]) -> Result<Vec<u32>, TokenizerError> {
        let bodies: Vec<Value> = texts
            .iter()
            .map(|t| json!({"model": self.inner.model, "prompt": t}))
            .collect();
        let inner = Arc::clone(&self.inner);
        let result = self.handle.block_on(async move {
            let mut out = vec![0u32; bodies.len()];
            let mut set = tokio::task::JoinSet::new();
            let mut next = 0;
            let mut done = 0;
            while done < bodies.len() {
                while next < bodies.len() && set.len() < PARALLEL {
                    let (inner, body, i) = (Arc::clone(&inner), bodies[next].clone(), next);
                    set.spawn(async move { (i, call(&inner, &body).await) });
                    next += 1;
                }
                match set.join_next().await {
                    Some(Ok((i, Ok(n)))) => {
                        out[i] = n;
                        done += 1;
                    }
                    Some(Ok((_, Err(e)))) => return Err(e),
                    Some(Err(e)) => return Err(e.to_string()),
                    None => break,
                }
            }
            Ok(out)
        });
        result.map_err(|e| self.err(e))
    }

    fn count_chat(&self, messages: &[ChatMessage]) -> Result<Option<u32>, TokenizerError> {
        let body = json!({
            "model": self.inner.model,
            "messages": messages,
            "add_generation_prompt": true,
        });
        let inner = Arc::clone(&self.inner);
        self.handle
            .block_on(async move { call(&inner, &body).await })
            .map(Some)
            .map_err(|e| self.err(e))
    }
}
