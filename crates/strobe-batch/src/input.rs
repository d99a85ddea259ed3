//! Reading a batch input file (the OpenAI batch format): one JSON object per line with
//! `custom_id`, `method`, `url` and `body`. Every problem is an error that names the file and
//! the line, and says what to change.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Endpoints a batch line may name (those of OpenAI's batch API that an inference server has).
pub const ENDPOINTS: &[&str] = &["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

/// Limits on an input file; OpenAI's as defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_lines: usize,
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_lines: 50_000,
            max_bytes: 200 * 1024 * 1024,
        }
    }
}

/// One request of the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchLine {
    /// 1-based line in the input file.
    pub line: usize,
    pub custom_id: String,
    /// One of [`ENDPOINTS`].
    pub url: String,
    pub body: Map<String, Value>,
}

/// A bad input file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read batch input {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {problem}")]
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("{path}: lines {first} and {second} have the same custom_id `{custom_id}`; every line needs its own (results are matched to requests by it)")]
    Duplicate {
        path: PathBuf,
        custom_id: String,
        first: usize,
        second: usize,
    },
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
}

/// Reads and checks the whole file.
pub fn read(path: &Path, limits: Limits) -> Result<Vec<BatchLine>, InputError> {
    let size = std::fs::metadata(path)
        .map_err(|source| InputError::Read {
            path: path.to_owned(),
            source,
        })?
        .len();
    if size > limits.max_bytes {
        return Err(InputError::File {
            path: path.to_owned(),
            problem: format!(
                "{size} bytes, more than the limit of {} (--max-input-bytes)",
                limits.max_bytes
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(|source| InputError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &bytes, limits)
}

/// Checks the bytes of an input file (`path` is for messages).
pub fn parse(path: &Path, bytes: &[u8], limits: Limits) -> Result<Vec<BatchLine>, InputError> {
    let mut lines = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = |problem: String| InputError::Line {
            path: path.to_owned(),
            line,
            problem,
        };
        let parsed = parse_line(raw, line).map_err(bad)?;
        if let Some(&first) = seen.get(&parsed.custom_id) {
            return Err(InputError::Duplicate {
                path: path.to_owned(),
                custom_id: parsed.custom_id,
                first,
                second: line,
            });
        }
        seen.insert(parsed.custom_id.clone(), line);
        lines.push(parsed);
        if lines.len() > limits.max_lines {
            return Err(InputError::File {
                path: path.to_owned(),
                problem: format!(
                    "more than {} requests (--max-input-lines); split the file",
                    limits.max_lines
                ),
            });
        }
    }
    if lines.is_empty() {
        return Err(InputError::File {
            path: path.to_owned(),
            problem: "no requests in it (expected one JSON object per line with custom_id, method, url and body)".into(),
        });
    }
    Ok(lines)
}

fn parse_line(raw: &[u8], line: usize) -> Result<BatchLine, String> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        format!("not a JSON object ({e}); each line is one request: {{\"custom_id\": ..., \"method\": \"POST\", \"url\": ..., \"body\": {{...}}}}")
    })?;
    let Value::Object(mut o) = value else {
        return Err("not a JSON object; each line is one request object".into());
    };
    let custom_id = match o.remove("custom_id") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) => return Err("`custom_id` is empty".into()),
        Some(other) => return Err(format!("`custom_id` must be a string, not {other}")),
        None => return Err("no `custom_id`; give every line a unique string id".into()),
    };
    match o.remove("method") {
        Some(Value::String(m)) if m.eq_ignore_ascii_case("POST") => {}
        Some(m) => return Err(format!("`method` is {m}; batch requests are \"POST\"")),
        None => return Err("no `method`; add \"method\": \"POST\"".into()),
    }
    let url = match o.remove("url") {
        Some(Value::String(u)) if ENDPOINTS.contains(&u.as_str()) => u,
        Some(u) => {
            return Err(format!(
                "`url` {u} is not a batch endpoint; use one of {}",
                ENDPOINTS.join(", ")
            ))
        }
        None => return Err("no `url`; e.g. \"url\": \"/v1/chat/completions\"".into()),
    };
    let body = match o.remove("body") {
        Some(Value::Object(b)) => b,
        Some(_) => return Err("`body` must be a JSON object (the request's body)".into()),
        None => return Err("no `body`".into()),
    };
    if body.get("stream") == Some(&Value::Bool(true)) {
        return Err("`body.stream` is true; batch requests are answered whole: remove it".into());
    }
    if let Some(m) = body.get("model") {
        if !m.is_string() {
            return Err(format!("`body.model` must be a string, not {m}"));
        }
    }
    if let Some(k) = o.keys().next() {
        return Err(format!(
            "unknown field `{k}`; a line has custom_id, method, url and body (line {line})"
        ));
    }
    Ok(BatchLine {
        line,
        custom_id,
        url,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<BatchLine>, InputError> {
        parse(Path::new("in.jsonl"), text.as_bytes(), Limits::default())
    }

    const GOOD: &str = r#"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"hi"}]}}"#;

    #[test]
    fn good_lines_parse_and_blank_lines_are_skipped() {
        let two = format!("{GOOD}\n\n{}\r\n", GOOD.replace("\"a\"", "\"b\""));
        let lines = p(&two).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[1].line, lines[1].custom_id.as_str()), (3, "b"));
        assert_eq!(lines[0].url, "/v1/chat/completions");
    }

    #[test]
    fn every_bad_line_names_its_line_and_the_fix() {
        let cases = [
            ("{not json", "not a JSON object"),
            ("[1]", "not a JSON object"),
            (
                r#"{"method":"POST","url":"/v1/completions","body":{}}"#,
                "no `custom_id`",
            ),
            (
                r#"{"custom_id":7,"method":"POST","url":"/v1/completions","body":{}}"#,
                "must be a string",
            ),
            (
                r#"{"custom_id":"x","method":"GET","url":"/v1/completions","body":{}}"#,
                "batch requests are \"POST\"",
            ),
            (
                r#"{"custom_id":"x","method":"POST","url":"/v1/models","body":{}}"#,
                "not a batch endpoint",
            ),
            (
                r#"{"custom_id":"x","method":"POST","url":"/v1/completions","body":"s"}"#,
                "must be a JSON object",
            ),
            (
                r#"{"custom_id":"x","method":"POST","url":"/v1/completions","body":{"stream":true}}"#,
                "remove it",
            ),
            (
                r#"{"custom_id":"x","method":"POST","url":"/v1/completions","body":{},"extra":1}"#,
                "unknown field `extra`",
            ),
        ];
        for (line, want) in cases {
            let e = p(&format!("{GOOD}\n{line}\n")).unwrap_err().to_string();
            assert!(
                e.starts_with("in.jsonl:2: ") && e.contains(want),
                "{line}: {e}"
            );
        }
    }

    #[test]
    fn duplicates_name_both_lines() {
        let e = p(&format!("{GOOD}\n{GOOD}\n{GOOD}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lines 1 and 2") && e.contains("`a`"), "{e}");
    }

    #[test]
    fn limits_hold() {
        let many: String = (0..4)
            .map(|i| GOOD.replace("\"a\"", &format!("\"r{i}\"")) + "\n")
            .collect();
        let limits = Limits {
            max_lines: 3,
            ..Limits::default()
        };
        let e = parse(Path::new("in.jsonl"), many.as_bytes(), limits).unwrap_err();
        assert!(e.to_string().contains("more than 3 requests"), "{e}");
        assert!(p("\n\n").unwrap_err().to_string().contains("no requests"));
    }
}
