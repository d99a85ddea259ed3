//! Starting an engine, waiting until it serves, and always stopping it.
//!
//! The command runs under `sh -c` as the leader of a new process group, with its output going to a
//! log file. Stopping signals the whole group (engines spawn workers: vLLM's engine core is a child
//! process), first SIGTERM, then SIGKILL after a grace period; dropping a [`Launched`] that was not
//! stopped kills the group, so an early return or a panic leaves nothing running.

use http::HeaderMap;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strobe_client::BaseUrl;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("--launch: cannot create the engine log {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
    #[error("--launch: cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("--launch: the engine exited with {status} before it served {url}. Last lines of {log}:\n{tail}")]
    Exited {
        status: String,
        url: String,
        log: String,
        tail: String,
    },
    #[error("--launch: the engine did not serve {url} within {timeout:?} (raise --launch-timeout?); last it said: {last}. Last lines of {log}:\n{tail}")]
    NotReady {
        url: String,
        timeout: Duration,
        last: String,
        log: String,
        tail: String,
    },
    #[error("--launch: interrupted while waiting for the engine")]
    Interrupted,
}

/// A launched engine.
pub struct Launched {
    child: Child,
    pub command: String,
    pub log_path: PathBuf,
    stopped: bool,
}

/// The engine serves.
#[derive(Clone, Debug, PartialEq)]
pub struct Ready {
    pub after: Duration,
    /// Set when it was accepted without a model list (see [`Launched::wait_ready`]).
    pub warning: Option<String>,
}

/// Longest wait for one readiness or version probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

fn lists_models(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("data")
                .and_then(|d| d.as_array())
                .map(|d| !d.is_empty())
        })
        .unwrap_or(false)
}

fn snippet(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(&body[..body.len().min(120)])
        .trim()
        .to_owned();
    if t.is_empty() {
        String::new()
    } else {
        format!("({t})")
    }
}

/// Grace period between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(15);

impl Launched {
    /// Starts `command` (a shell command line) in its own process group, logging to `log_path`.
    pub fn spawn(command: &str, log_path: &Path) -> Result<Launched, LaunchError> {
        let log = std::fs::File::create(log_path).map_err(|source| LaunchError::Log {
            path: log_path.display().to_string(),
            source,
        })?;
        let err = log.try_clone().map_err(|source| LaunchError::Log {
            path: log_path.display().to_string(),
            source,
        })?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                command: command.to_owned(),
                source,
            })?;
        Ok(Launched {
            child,
            command: command.to_owned(),
            log_path: log_path.to_owned(),
            stopped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/health`, then `/v1/models`, every 500 ms (each probe bounded by 5 s, so an engine
    /// that accepts connections and never answers cannot hold strobe past `timeout`) until both
    /// answer, the engine exits, or `timeout` passes. `on_status` hears what the engine answers
    /// whenever that changes. With `model` given, a model list that fails or is empty once
    /// `/health` answers is accepted, with a warning in [`Ready::warning`].
    pub async fn wait_ready(
        &mut self,
        base: &BaseUrl,
        addr: SocketAddr,
        headers: &HeaderMap,
        timeout: Duration,
        model: Option<&str>,
        on_status: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Ready, LaunchError> {
        let started = Instant::now();
        let mut last_status = String::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LaunchError::Exited {
                    status: status.to_string(),
                    url: base.display.clone(),
                    log: self.log_path.display().to_string(),
                    tail: tail(&self.log_path, 20),
                });
            }
            let remaining = timeout.saturating_sub(started.elapsed());
            let probe = PROBE_TIMEOUT.min(remaining.max(Duration::from_millis(1)));
            let get = |path: &'static str| async move {
                match tokio::time::timeout(probe, strobe_client::get(base, addr, path, headers))
                    .await
                {
                    Err(_) => Err(format!("no answer within {probe:?}")),
                    Ok(Err(e)) => Err(e),
                    Ok(Ok((status, body, _))) => Ok((status, body)),
                }
            };
            let status = match get("/health").await {
                Ok((200, _)) => match get("/v1/models").await {
                    Ok((200, body)) if lists_models(&body) => {
                        return Ok(Ready {
                            after: started.elapsed(),
                            warning: None,
                        })
                    }
                    other => {
                        let what = match other {
                            Ok((200, _)) => "an empty model list".to_owned(),
                            Ok((code, body)) => format!("HTTP {code} {}", snippet(&body)),
                            Err(e) => e,
                        };
                        let url = base.url_of("/v1/models");
                        if let Some(m) = model {
                            return Ok(Ready {
                                after: started.elapsed(),
                                warning: Some(format!(
                                    "{url} answered {what}; going on with --model {m} unchecked"
                                )),
                            });
                        }
                        format!("/health answers, but {url} answered {what} (pass --model NAME to go on without a model list)")
                    }
                },
                Ok((code, body)) => format!("/health answered HTTP {code} {}", snippet(&body)),
                Err(e) => format!("/health: {e}"),
            };
            if status != last_status {
                on_status(&status);
                last_status = status.clone();
            }
            if started.elapsed() >= timeout {
                return Err(LaunchError::NotReady {
                    url: base.display.clone(),
                    timeout,
                    last: status,
                    log: self.log_path.display().to_string(),
                    tail: tail(&self.log_path, 20),
                });
            }
            tokio::time::sleep(
                Duration::from_millis(500).min(timeout.saturating_sub(started.elapsed())),
            )
            .await;
        }
    }

    /// Stops the whole process group: SIGTERM, then SIGKILL after 15 s. Blocking.
    pub fn stop(&mut self) {
        self.stop_within(GRACE);
    }

    /// Stops the whole process group: SIGTERM, then SIGKILL after `grace`. Blocking.
    pub fn stop_within(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let group = -(self.child.id() as i32);
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && group_alive(group) {
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Whether any live (non-zombie) process is left in the group `-group`. Zombies are dead: they
/// only wait for whoever adopted them to reap them.
fn group_alive(group: i32) -> bool {
    let pgid = -group;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        let mut any = false;
        for e in entries.flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // Fields after the parenthesised command: state, ppid, pgrp, ...
            let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
                continue;
            };
            let mut f = after.split_whitespace();
            let (state, _ppid, pgrp) = (f.next(), f.next(), f.next());
            if pgrp.and_then(|p| p.parse::<i32>().ok()) == Some(pgid) && state != Some("Z") {
                any = true;
                break;
            }
        }
        return any;
    }
    // SAFETY: signal 0 only checks whether any process of the group exists.
    unsafe { libc::kill(group, 0) == 0 }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if !self.stopped {
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// The last `n` lines of a file (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The engine's version, from `/version` (vLLM: `{"version": "..."}`) or `/info` (TGI).
pub async fn version(base: &BaseUrl, addr: SocketAddr, headers: &HeaderMap) -> Option<String> {
    for path in ["/version", "/info"] {
        let probe =
            tokio::time::timeout(PROBE_TIMEOUT, strobe_client::get(base, addr, path, headers));
        if let Ok(Ok((200, body, _))) = probe.await {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                if let Some(s) = v.get("version").and_then(|s| s.as_str()) {
                    return Some(s.to_owned());
                }
            }
        }
    }
    None
}

/// Splits a command line into words (single and double quotes group; no other shell syntax).
pub fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The engine parameters of a command line: `--key value`, `--key=value`, and bare `--flag`
/// (recorded as "true"), in the spirit of seed 002's engine_params.txt. Values of secret-looking
/// flags (`--api-key`, `--hf-token`) are `***`.
pub fn params(command: &str) -> BTreeMap<String, String> {
    let w = words(command);
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < w.len() {
        if let Some(flag) = w[i].strip_prefix("--") {
            if let Some((k, v)) = flag.split_once('=') {
                out.insert(k.to_owned(), v.to_owned());
            } else if i + 1 < w.len() && !w[i + 1].starts_with("--") {
                out.insert(flag.to_owned(), w[i + 1].clone());
                i += 1;
            } else {
                out.insert(flag.to_owned(), "true".to_owned());
            }
        }
        i += 1;
    }
    for (k, v) in out.iter_mut() {
        if strobe_core::is_secret_name(k) {
            *v = "***".into();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_params_from_a_command_line() {
        let p = params(
            r#"VLLM_X=1 python -m vllm.entrypoints.openai.api_server --model /m --max-model-len=4096 --enforce-eager --served-model-name "my model" --port 8000"#,
        );
        assert_eq!(p["model"], "/m");
        assert_eq!(p["max-model-len"], "4096");
        assert_eq!(p["enforce-eager"], "true");
        assert_eq!(p["served-model-name"], "my model");
        assert_eq!(p["port"], "8000");
        let p = params("vllm serve m --api-key sk-123 --hf-token=hf_x --max-num-batched-tokens 8");
        assert_eq!(
            (p["api-key"].as_str(), p["hf-token"].as_str()),
            ("***", "***")
        );
        assert_eq!(p["max-num-batched-tokens"], "8");
    }

    #[test]
    fn a_command_that_exits_is_reported_with_its_log() {
        let dir = std::env::temp_dir().join(format!("strobe-launch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("engine.log");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut l = Launched::spawn(
            "echo loading model; echo 'CUDA out of memory' >&2; exit 3",
            &log,
        )
        .unwrap();
        let base = BaseUrl::parse("http://127.0.0.1:9").unwrap();
        let e = rt
            .block_on(l.wait_ready(
                &base,
                "127.0.0.1:9".parse().unwrap(),
                &HeaderMap::new(),
                Duration::from_secs(20),
                None,
                &mut |_| {},
            ))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("exited with exit status: 3") && e.contains("CUDA out of memory"),
            "{e}"
        );
        l.stop();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn stop_ends_the_whole_process_group() {
        let dir = std::env::temp_dir().join(format!("strobe-launch-g-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A child that ignores SIGTERM and a grandchild: both must be gone after stop().
        let mut l =
            Launched::spawn("sleep 300 & trap '' TERM; sleep 300", &dir.join("e.log")).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let group = -(l.pid() as i32);
        assert!(group_alive(group));
        let t = Instant::now();
        l.stop_within(Duration::from_millis(500));
        assert!(!group_alive(group), "nothing of the group is left");
        assert!(t.elapsed() < Duration::from_secs(3));
        let _ = std::fs::remove_dir_all(dir);
    }
}
