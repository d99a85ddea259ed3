//! Starting an engine, waiting until it serves, and always stopping it.
//!
//! The command runs under `sh -c` as the leader of a new process group, with its output going to a
//! log file. Stopping signals the whole group (engines spawn workers: vLLM's engine core is a child
//! process), first SIGTERM, then SIGKILL after a grace period; dropping a [`Launched`] that was not
//! stopped kills the group, so an early return or a panic leaves nothing running.

use http::HeaderMap;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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
    #[error("--launch: the engine serves, but {url} refused the credentials (HTTP {status}). Set the API key with --api-key-env NAME or --api-key-file PATH")]
    Auth { url: String, status: u16 },
    #[error("--launch: interrupted while waiting for the engine")]
    Interrupted,
}

/// A launched engine.
pub struct Launched {
    child: Child,
    pub command: String,
    pub log_path: PathBuf,
    stopped: bool,
    /// Threads copying the engine's output into its log.
    copiers: Vec<std::thread::JoinHandle<()>>,
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
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                command: strobe_core::redact_command(command),
                source,
            })?;
        // Engines print their arguments (vLLM: "non-default args: {... 'api_key': ...}"): the
        // log is written through strobe, scrubbed of the command's secrets.
        let log = Arc::new(Mutex::new(log));
        let secrets = strobe_core::command_secrets(command);
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        let mut copiers = Vec::new();
        for pipe in pipes.into_iter().flatten() {
            let (log, secrets) = (Arc::clone(&log), secrets.clone());
            if let Ok(t) = std::thread::Builder::new()
                .name("strobe-engine-log".into())
                .spawn(move || copy_redacted(pipe, &log, &secrets))
            {
                copiers.push(t);
            }
        }
        Ok(Launched {
            child,
            command: command.to_owned(),
            log_path: log_path.to_owned(),
            stopped: false,
            copiers,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log's last `n` lines, scrubbed of the command's secrets (engines print their
    /// arguments). The engine's last words may still be in the copiers: give them a moment (not
    /// forever: a background child can hold the pipes open).
    fn tail(&self, n: usize) -> String {
        let until = Instant::now() + Duration::from_secs(1);
        while self.copiers.iter().any(|t| !t.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        let secrets = strobe_core::command_secrets(&self.command);
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        strobe_core::redact_text(&tail(&self.log_path, n), &secrets)
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
                    tail: self.tail(20),
                });
            }
            let remaining = timeout.saturating_sub(started.elapsed());
            // At least 200 ms, so the last probe before the deadline still hears a real answer.
            let probe = PROBE_TIMEOUT.min(remaining.max(Duration::from_millis(200)));
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
                    // A wrong key will not become right by waiting.
                    Ok((status @ (401 | 403), _)) => {
                        return Err(LaunchError::Auth {
                            url: base.url_of("/v1/models"),
                            status,
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
                    tail: self.tail(20),
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

/// Copies an engine's output into its log line by line, without `secrets`.
fn copy_redacted(pipe: Box<dyn Read + Send>, log: &Mutex<std::fs::File>, secrets: &[String]) {
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let clean = strobe_core::redact_text(&String::from_utf8_lossy(&line), &secrets);
        if let Ok(mut f) = log.lock() {
            let _ = f.write_all(clean.as_bytes());
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

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn wait(
        command: &str,
        port: u16,
        timeout: Duration,
        model: Option<&str>,
    ) -> (Result<Ready, LaunchError>, Vec<String>, Duration) {
        let dir = std::env::temp_dir().join(format!("strobe-ready-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut l = Launched::spawn(command, &dir.join("e.log")).unwrap();
        let base = BaseUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let mut said = Vec::new();
        let t = Instant::now();
        let r = rt.block_on(l.wait_ready(
            &base,
            format!("127.0.0.1:{port}").parse().unwrap(),
            &HeaderMap::new(),
            timeout,
            model,
            &mut |s| said.push(s.to_owned()),
        ));
        let took = t.elapsed();
        l.stop_within(Duration::from_millis(500));
        let _ = std::fs::remove_dir_all(dir);
        (r, said, took)
    }

    #[test]
    fn an_engine_that_accepts_and_never_answers_cannot_outlast_the_timeout() {
        let port = free_port();
        // Listens (so connects succeed) but never reads or answers.
        let cmd = format!("exec python3 -c \"import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); s.listen(64); time.sleep(120)\"");
        let (r, said, took) = wait(&cmd, port, Duration::from_secs(3), None);
        assert!(matches!(r, Err(LaunchError::NotReady { .. })), "{r:?}");
        assert!(took < Duration::from_secs(6), "took {took:?}");
        assert!(
            said.iter().any(|s| s.contains("no answer within")),
            "{said:?}"
        );
    }

    #[test]
    fn an_empty_model_list_is_said_and_a_given_model_is_accepted() {
        let server = "import http.server, sys\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        b = b'{}' if self.path == '/health' else b'{\"object\":\"list\",\"data\":[]}'\n        self.send_response(200); self.send_header('content-length', str(len(b))); self.end_headers(); self.wfile.write(b)\n    def log_message(self, *a): pass\nhttp.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n";
        let file =
            std::env::temp_dir().join(format!("strobe-empty-models-{}.py", std::process::id()));
        std::fs::write(&file, server).unwrap();
        let port = free_port();
        let cmd = format!("exec python3 {} {port}", file.display());
        let (r, said, _) = wait(&cmd, port, Duration::from_secs(4), None);
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("empty model list") && e.contains("--model"),
            "{e}"
        );
        assert!(
            said.iter().any(|s| s.contains("empty model list")),
            "{said:?}"
        );
        let port = free_port();
        let cmd = format!("exec python3 {} {port}", file.display());
        let (r, _, _) = wait(&cmd, port, Duration::from_secs(10), Some("my-model"));
        let w = r.unwrap().warning.unwrap();
        assert!(w.contains("--model my-model unchecked"), "{w}");
        let _ = std::fs::remove_file(file);
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
