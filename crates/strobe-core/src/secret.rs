//! Secrets: values that must never reach a terminal, a log line or an output file.

use std::fmt;

/// A secret string (an API key, a password). Its `Debug` and `Display` forms are redacted; only
/// [`Secret::expose`] gives the value, for the one place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the request that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Whether a flag, variable, header or field name looks like it holds a secret: one of its words
/// (split at `-`, `_`, `.`) is key, token, secret, password, auth, ... (`--api-key`, `HF_TOKEN`,
/// `Authorization`), or it contains apikey, secret, password, accesstoken. `max-num-batched-tokens`
/// and `tokenizer` are not secrets.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "pass",
        "pwd",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "bearer",
        "cookie",
    ];
    const PARTS: &[&str] = &[
        "apikey",
        "secret",
        "password",
        "passwd",
        "accesstoken",
        "authtoken",
    ];
    n.split(['-', '_', '.']).any(|w| WORDS.contains(&w)) || PARTS.iter().any(|p| n.contains(p))
}

/// A command line with the values of secret-looking flags (`--api-key X`, `--api-key=X`) and
/// environment assignments (`HF_TOKEN=X`) replaced by `***`.
pub fn redact_command(command: &str) -> String {
    let mut out = String::with_capacity(command.len());
    let mut redact_next = false;
    for (i, word) in command.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if redact_next && !word.is_empty() {
            out.push_str("***");
            redact_next = false;
            continue;
        }
        if let Some(flag) = word.strip_prefix("--").or_else(|| word.strip_prefix('-')) {
            match flag.split_once('=') {
                Some((name, _)) if is_secret_name(name) => {
                    out.push_str(&word[..word.len() - flag.len() + name.len() + 1]);
                    out.push_str("***");
                }
                None if is_secret_name(flag) => {
                    out.push_str(word);
                    redact_next = true;
                }
                _ => out.push_str(word),
            }
            continue;
        }
        match word.split_once('=') {
            Some((name, _))
                if !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && is_secret_name(name) =>
            {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(word),
        }
    }
    out
}

/// The values [`redact_command`] hides: what a secret flag or assignment holds.
pub fn command_secrets(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let words: Vec<&str> = command.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if let Some(flag) = w.strip_prefix("--").or_else(|| w.strip_prefix('-')) {
            match flag.split_once('=') {
                Some((name, v)) if is_secret_name(name) => out.push(v.to_owned()),
                None if is_secret_name(flag) => {
                    if let Some(v) = words.get(i + 1) {
                        out.push((*v).to_owned());
                    }
                }
                _ => {}
            }
        } else if let Some((name, v)) = w.split_once('=') {
            if is_secret_name(name) {
                out.push(v.to_owned());
            }
        }
    }
    out.into_iter()
        .map(|v| v.trim_matches(['"', '\'']).to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// `text` with every occurrence of each secret replaced by `***` (for messages that quote what a
/// server or an engine said, which may echo a key back).
pub fn redact_text(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= 4 {
            out = out.replace(s, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[test]
    fn commands_lose_their_secret_values() {
        assert_eq!(
            redact_command("HF_TOKEN=hf_abc vllm serve m --api-key sk-1 --port 8000 --hf-token=x"),
            "HF_TOKEN=*** vllm serve m --api-key *** --port 8000 --hf-token=***"
        );
        assert_eq!(
            redact_command("vllm serve m --max-num-batched-tokens 4096 --tokenizer t"),
            "vllm serve m --max-num-batched-tokens 4096 --tokenizer t"
        );
        assert!(is_secret_name("Authorization") && is_secret_name("x-api-key"));
        assert!(!is_secret_name("max_tokens") && !is_secret_name("ignore_eos"));
        assert_eq!(
            redact_text("bad key sk-1234 given", &["sk-1234"]),
            "bad key *** given"
        );
    }
}
