//! `strobe gateway` as a user runs it, in front of `strobe serve`: the Batch API's refusals,
//! `kill -9` of the gateway at random points of a 2,000-line batch ending with every
//! `custom_id` exactly once, and the adaptive policy keeping interactive TTFT near its isolated
//! value while a batch runs (seed 000's conditions, on the built-in target).
//!
//! An `https://` upstream is reached with the CA it is given, refused without it, and the proxy
//! keeps its upstream connections open between requests.
//!
//! The official `openai` client's workflow and the conditions against a real vLLM are in the
//! real-engine tier (scripts/test-vllm.sh, scripts/check_gateway.py).

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

fn strobe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strobe"))
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strobe-gateway-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The first `http://` address a child prints on standard output.
fn address_of(child: &mut Child) -> String {
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line).unwrap();
    line.split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_owned()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(extra: &[&str]) -> (Proc, String) {
    let mut child = strobe()
        .args(["serve", "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = address_of(&mut child);
    (Proc(child), addr)
}

fn gateway(
    upstream: &str,
    store: impl AsRef<std::ffi::OsStr>,
    listen: &str,
    extra: &[&str],
) -> (Proc, String) {
    // A restart right after a SIGKILL can find the port still held for a moment.
    for _ in 0..50 {
        let mut child = strobe()
            .args(["gateway", "-q", "--upstream"])
            .arg(if upstream.contains("://") {
                upstream.to_owned()
            } else {
                format!("http://{upstream}")
            })
            .args(["--listen", listen, "--store"])
            .arg(store.as_ref())
            .args(extra)
            .env("GW_KEY", "key-a")
            .env("GW_KEY_B", "key-b")
            .args(["--api-key-env", "GW_KEY", "--api-key-env", "GW_KEY_B"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        if let Some(w) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            let addr = w
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .trim_start_matches("http://")
                .to_owned();
            return (Proc(child), addr);
        }
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(100));
    }
    let ss = Command::new("ss")
        .arg("-tanp")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let port = listen.rsplit(':').next().unwrap_or_default();
    let held: Vec<&str> = ss.lines().filter(|l| l.contains(port)).collect();
    let ps = Command::new("ps")
        .args(["-eo", "pid,ppid,stat,args"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    eprintln!(
        "{}",
        ps.lines()
            .filter(|l| l.contains("strobe"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    panic!("the gateway did not start on {listen}; sockets on the port: {held:#?}");
}

/// A free port below Linux's ephemeral range, so no outgoing connection can hold it; never one
/// handed out before in this process (tests run at once, and a port is free until its server
/// binds it: two PostgreSQL clusters once raced for one).
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let base = 20_000 + (std::process::id() % 10_000) as u16;
    let port = (0..2000)
        .map(|k| 20_000 + (base - 20_000 + k * 7) % 12_000)
        .filter(|p| !given.contains(p))
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port");
    given.push(port);
    port
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    ctype: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(k) = key {
        head.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    if !ctype.is_empty() {
        head.push_str(&format!("Content-Type: {ctype}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    (status, body)
}

fn json(
    addr: &str,
    method: &str,
    path: &str,
    key: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (status, b) = http(
        addr,
        method,
        path,
        Some(key),
        "application/json",
        text.as_bytes(),
    );
    (
        status,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

fn upload(
    addr: &str,
    key: &str,
    name: &str,
    content: &[u8],
    purpose: &str,
) -> (u16, serde_json::Value) {
    let boundary = "strobe-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n{purpose}\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/jsonl\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (status, b) = http(
        addr,
        "POST",
        "/v1/files",
        Some(key),
        &format!("multipart/form-data; boundary={boundary}"),
        &body,
    );
    (
        status,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

fn lines(n: usize, max_tokens: u32) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "{{\"custom_id\":\"req-{i}\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{{\"messages\":[{{\"role\":\"user\",\"content\":\"line {i}\"}}],\"max_tokens\":{max_tokens}}}}}\n"
        ));
    }
    s.into_bytes()
}

fn create(addr: &str, key: &str, file: &str) -> serde_json::Value {
    let (status, b) = json(
        addr,
        "POST",
        "/v1/batches",
        key,
        &serde_json::json!({"input_file_id": file, "endpoint": "/v1/chat/completions", "completion_window": "24h"}),
    );
    assert_eq!(status, 200, "{b}");
    b
}

fn message(v: &serde_json::Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_batch_api_refuses_what_it_must_and_says_why() {
    let d = dir("refusals");
    let (_server, up) = serve(&[]);
    let (_gw, gw) = gateway(
        &up,
        d.join("g.db"),
        "127.0.0.1:0",
        &["--max-input-lines", "5", "--max-input-bytes", "2000"],
    );
    let (s, v) = json(&gw, "GET", "/v1/batches", "wrong", &serde_json::Value::Null);
    assert_eq!(s, 401, "{v}");
    assert!(message(&v).contains("Authorization: Bearer"), "{v}");
    let (s, v) = http(&gw, "GET", "/v1/batches", None, "", b"");
    assert_eq!(s, 401, "{}", String::from_utf8_lossy(&v));

    let (s, v) = upload(&gw, "key-a", "six.jsonl", &lines(6, 4), "batch");
    assert_eq!(s, 400, "{v}");
    assert!(message(&v).contains("more than 5 requests"), "{v}");
    let mut big = lines(4, 4);
    big.extend(std::iter::repeat_n(b' ', 2500));
    let (s, v) = upload(&gw, "key-a", "big.jsonl", &big, "batch");
    assert_eq!(s, 413, "{v}");
    assert!(message(&v).contains("2000 bytes"), "{v}");
    let (s, v) = upload(&gw, "key-a", "x.jsonl", &lines(2, 4), "fine-tune");
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["param"], "purpose", "{v}");
    let mut bad = lines(2, 4);
    bad.extend_from_slice(b"{\"custom_id\":\"req-0\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n");
    let (s, v) = upload(&gw, "key-a", "dup.jsonl", &bad, "batch");
    assert_eq!(s, 400, "{v}");
    assert!(message(&v).contains("dup.jsonl: lines 1 and 3"), "{v}");

    let (s, f) = upload(&gw, "key-a", "ok.jsonl", &lines(3, 4), "batch");
    assert_eq!(s, 200, "{f}");
    let id = f["id"].as_str().unwrap();
    let (s, v) = json(
        &gw,
        "POST",
        "/v1/batches",
        "key-a",
        &serde_json::json!({"input_file_id": id, "endpoint": "/v1/completions"}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        message(&v).contains(":1: the line's url is /v1/chat/completions"),
        "{v}"
    );
    let (s, v) = json(
        &gw,
        "POST",
        "/v1/batches",
        "key-b",
        &serde_json::json!({"input_file_id": id, "endpoint": "/v1/chat/completions"}),
    );
    assert_eq!(s, 400, "another key cannot batch this key's file: {v}");
    let (s, _) = json(
        &gw,
        "GET",
        &format!("/v1/files/{id}"),
        "key-b",
        &serde_json::Value::Null,
    );
    assert_eq!(s, 404);
    let (s, v) = json(
        &gw,
        "GET",
        "/v1/batches/batch_nope",
        "key-a",
        &serde_json::Value::Null,
    );
    assert_eq!(s, 404, "{v}");
    let (s, v) = json(
        &gw,
        "GET",
        "/v1/batches?limit=0",
        "key-a",
        &serde_json::Value::Null,
    );
    assert_eq!(s, 400, "{v}");
}

/// Polls until the batch ends; its final object.
fn finished(gw: &str, id: &str, within: Duration) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let (s, b) = json(
            gw,
            "GET",
            &format!("/v1/batches/{id}"),
            "key-a",
            &serde_json::Value::Null,
        );
        assert_eq!(s, 200, "{b}");
        if ["completed", "failed", "cancelled", "expired"].contains(&b["status"].as_str().unwrap())
        {
            return b;
        }
        assert!(
            t0.elapsed() < within,
            "batch still {} after {within:?}: {b}",
            b["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The output file of finished batch `b` (key-a's) holds `n` successful lines, each `custom_id`
/// once.
fn each_once_in_the_output(gw: &str, b: &serde_json::Value, n: usize) {
    let out = b["output_file_id"].as_str().unwrap();
    let (s, content) = http(
        gw,
        "GET",
        &format!("/v1/files/{out}/content"),
        Some("key-a"),
        "",
        b"",
    );
    assert_eq!(s, 200);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in String::from_utf8(content).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["response"]["status_code"], 200, "{v}");
        *seen
            .entry(v["custom_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), n);
    assert!(seen.values().all(|&c| c == 1), "a custom_id twice");
}

#[test]
fn a_gateway_killed_at_random_points_ends_with_every_custom_id_exactly_once() {
    let d = dir("crash");
    crash_and_resume(d.join("g.db").to_str().unwrap(), "sqlite", 1);
}

#[test]
fn a_store_url_password_never_reaches_the_output() {
    let out = strobe()
        .args([
            "gateway",
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--store", "postgres://strobe:s3cret-pw@127.0.0.1:9/db"])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(!all.contains("s3cret-pw"), "{all}");
    assert!(
        all.contains("--store postgres://strobe@127.0.0.1:9/db"),
        "{all}"
    );
}

#[test]
fn the_same_on_postgresql_with_the_batch_spread_over_two_upstreams() {
    let Some(pg) = Postgres::start("crash") else {
        return;
    };
    crash_and_resume(&pg.url, "postgres", 2);
}

/// Two gateways share one PostgreSQL store: both take work from it, and when one is killed the
/// other takes its batch over once the lease lapses, ending with every `custom_id` once.
#[test]
fn two_gateways_on_postgresql_hand_a_batch_over_when_one_dies() {
    let Some(pg) = Postgres::start("two-gateways") else {
        return;
    };
    let (_server, up) = serve(&["--ttft", "30ms", "--itl", "30ms"]);
    let flags = |id: &'static str| {
        [
            "--no-adaptive",
            "--batch-max-concurrency",
            "16",
            "--worker-id",
            id,
        ]
    };
    let (mut a, a_addr) = gateway(&up, &pg.url, "127.0.0.1:0", &flags("gw-a"));
    let (_b, b_addr) = gateway(&up, &pg.url, "127.0.0.1:0", &flags("gw-b"));
    let n = 800;
    let mut ids = Vec::new();
    for k in 0..2 {
        let (s, f) = upload(
            &a_addr,
            "key-a",
            &format!("{k}.jsonl"),
            &lines(n, 8),
            "batch",
        );
        assert_eq!(s, 200, "{f}");
        let b = create(&a_addr, "key-a", f["id"].as_str().unwrap());
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    // 800 lines at 16 in flight, ~0.27 s each: ~14 s of work per batch. Both run at once, one
    // on each gateway (a gateway works one batch at a time).
    std::thread::sleep(Duration::from_secs(3));
    let counts = |id: &str| {
        let (_, b) = json(
            &b_addr,
            "GET",
            &format!("/v1/batches/{id}"),
            "key-a",
            &serde_json::Value::Null,
        );
        let c = &b["request_counts"];
        (
            b["status"].as_str().unwrap().to_owned(),
            c["completed"].as_u64().unwrap(),
        )
    };
    let before: Vec<_> = ids.iter().map(|id| counts(id)).collect();
    assert!(
        before
            .iter()
            .all(|(s, d)| s == "in_progress" && *d > 0 && *d < n as u64),
        "both batches should be running, one per gateway: {before:?}"
    );
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let killed_at = Instant::now();
    for id in &ids {
        let b = finished(&b_addr, id, Duration::from_secs(120));
        assert_eq!(b["status"], "completed", "{b}");
        assert_eq!(b["request_counts"]["completed"], n as u64, "{b}");
        each_once_in_the_output(&b_addr, &b, n);
    }
    // The dead gateway's batch waited for its lease (30 s) before the other took it.
    let took = killed_at.elapsed();
    assert!(
        took >= Duration::from_secs(20),
        "handed over after {took:?}, before the lease lapsed"
    );
    eprintln!("two gateways: before the kill {before:?}; both batches complete {took:?} after it");
}

/// A throw-away PostgreSQL cluster from Debian's packages (`apt-get install postgresql`), on a
/// free port, owned by the `postgres` user (PostgreSQL refuses to run as root), stopped on drop.
/// Missing binaries skip the test, unless STROBE_REQUIRE_POSTGRES=1 (scripts/test.sh) says they
/// must be there.
struct Postgres {
    url: String,
    dir: PathBuf,
    bin: PathBuf,
}

impl Postgres {
    fn start(name: &str) -> Option<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .find(|b| b.join("initdb").exists())
        });
        let Some(bin) = bin else {
            assert!(
                std::env::var("STROBE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "STROBE_REQUIRE_POSTGRES=1 but no /usr/lib/postgresql/*/bin/initdb: apt-get install -y postgresql"
            );
            eprintln!("skipped: PostgreSQL is not installed (apt-get install -y postgresql)");
            return None;
        };
        let dir = dir(&format!("postgres-{name}")); // one cluster per test: tests run at once
        let port = free_port();
        let as_pg = |cmd: String| {
            let root = unsafe { libc::geteuid() } == 0;
            let status = if root {
                Command::new("su")
                    .args(["postgres", "-s", "/bin/sh", "-c", &cmd])
                    .status()
            } else {
                Command::new("sh").args(["-c", &cmd]).status()
            }
            .unwrap();
            assert!(status.success(), "{cmd}");
        };
        if unsafe { libc::geteuid() } == 0 {
            assert!(Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success());
        }
        let (b, d) = (bin.display(), dir.display());
        as_pg(format!(
            "{b}/initdb -D {d}/data -A trust -U strobe > {d}/initdb.log 2>&1"
        ));
        as_pg(format!(
            "{b}/pg_ctl -D {d}/data -w -o '-p {port} -k {d} -c listen_addresses=127.0.0.1' -l {d}/log start > /dev/null"
        ));
        Some(Postgres {
            url: format!("postgres://strobe:unused-password@127.0.0.1:{port}/postgres"),
            dir,
            bin,
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let cmd = format!(
            "{}/pg_ctl -D {}/data -m immediate stop > /dev/null 2>&1",
            self.bin.display(),
            self.dir.display()
        );
        let root = unsafe { libc::geteuid() } == 0;
        let _ = if root {
            Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", &cmd])
                .status()
        } else {
            Command::new("sh").args(["-c", &cmd]).status()
        };
    }
}

/// `upstreams` engines behind the gateway (two: the batch is spread over both, each slower, so
/// the work takes as long).
fn crash_and_resume(store: &str, name: &str, upstreams: usize) {
    // ~270 ms per request, 32 at a time: 2,000 lines are ~17 s of work, so kills land mid-run.
    let itl = format!("{}ms", 30 + 40 * (upstreams - 1));
    let servers: Vec<(Proc, String)> = (0..upstreams)
        .map(|_| serve(&["--ttft", "30ms", "--itl", &itl]))
        .collect();
    let up = servers[0].1.clone();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut flags: Vec<String> = [
        "--no-adaptive",
        "--batch-max-concurrency",
        "32",
        "--worker-id",
        "crash-test",
    ]
    .map(String::from)
    .to_vec();
    for (_, other) in &servers[1..] {
        flags.extend(["--upstream".into(), format!("http://{other}")]);
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let n = 2000;
    let (mut gw, addr) = gateway(&up, store, &listen, &flags);
    let (s, f) = upload(&addr, "key-a", "crash.jsonl", &lines(n, 8), "batch");
    assert_eq!(s, 200, "{f}");
    let batch = create(&addr, "key-a", f["id"].as_str().unwrap());
    let id = batch["id"].as_str().unwrap().to_owned();
    let kills = 30;
    let mut done_before = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(300 + seed % 1000));
        let (s, b) = json(
            &addr,
            "GET",
            &format!("/v1/batches/{id}"),
            "key-a",
            &serde_json::Value::Null,
        );
        assert_eq!(s, 200);
        let c = &b["request_counts"];
        let done = c["completed"].as_u64().unwrap() + c["failed"].as_u64().unwrap();
        // SIGKILL: no handler runs, nothing is flushed on the way out.
        gw.0.kill().unwrap();
        gw.0.wait().unwrap();
        done_before.push(done);
        let (g, a) = gateway(&up, store, &listen, &flags);
        assert_eq!(a, addr);
        gw = g;
        if b["status"] == "completed" {
            break;
        }
    }
    // Counts never go back: what was stored before a kill is there after it.
    assert!(
        done_before.windows(2).all(|w| w[0] <= w[1]),
        "{done_before:?}"
    );
    let mid_run = done_before
        .iter()
        .filter(|&&d| d > 0 && d < n as u64)
        .count();
    assert!(
        mid_run >= 20,
        "only {mid_run} of the kills were mid-run: {done_before:?}"
    );
    let b = finished(&addr, &id, Duration::from_secs(120));
    assert_eq!(b["status"], "completed", "{b}");
    assert_eq!(b["request_counts"]["completed"], n as u64, "{b}");
    assert_eq!(b["request_counts"]["failed"], 0, "{b}");
    each_once_in_the_output(&addr, &b, n);
    let out = b["output_file_id"].as_str().unwrap();
    // The page lists the batch once it has ended, from whichever store.
    let (s, page) = http(&addr, "GET", "/", None, "", b"");
    let page = String::from_utf8(page).unwrap();
    assert_eq!(s, 200);
    let recent = page
        .split("Finished recently")
        .nth(1)
        .unwrap_or_else(|| panic!("no ended batches on the page: {page}"));
    assert!(
        recent.contains(&format!("<code>{id}</code>")) && recent.contains(">completed<"),
        "{recent}"
    );
    let sent: Vec<u64> = servers
        .iter()
        .map(|(_, a)| {
            let (_, truth) = http(a, "GET", "/strobe/truth", None, "", b"");
            let truth: serde_json::Value = serde_json::from_slice(&truth).unwrap();
            truth["accepted_requests"].as_u64().unwrap()
        })
        .collect();
    let total: u64 = sent.iter().sum();
    eprintln!(
        "{name}: {} kills ({mid_run} mid-run); the engines received {sent:?} requests for {n} lines ({} sent again after a kill), every custom_id once in the output",
        done_before.len(),
        total - n as u64
    );
    if upstreams > 1 {
        assert!(
            sent.iter().all(|&s| s > 0),
            "an upstream took no line: {sent:?}"
        );
    }
    // The rest of the store's contract, through the API: paging, owners, a finished batch's
    // cancel changing nothing.
    let (s, f2) = upload(&addr, "key-a", "two.jsonl", &lines(2, 4), "batch");
    assert_eq!(s, 200, "{f2}");
    let second = create(&addr, "key-a", f2["id"].as_str().unwrap());
    let (_, page) = json(
        &addr,
        "GET",
        "/v1/batches?limit=1",
        "key-a",
        &serde_json::Value::Null,
    );
    assert_eq!(page["data"][0]["id"], second["id"], "{page}");
    assert_eq!(page["has_more"], true, "{page}");
    let after = format!(
        "/v1/batches?limit=1&after={}",
        second["id"].as_str().unwrap()
    );
    let (_, page) = json(&addr, "GET", &after, "key-a", &serde_json::Value::Null);
    assert_eq!(page["data"][0]["id"], id.as_str(), "{page}");
    assert_eq!(page["has_more"], false, "{page}");
    let (_, other) = json(
        &addr,
        "GET",
        "/v1/batches",
        "key-b",
        &serde_json::Value::Null,
    );
    assert_eq!(other["data"], serde_json::json!([]), "{other}");
    let (s, _) = json(
        &addr,
        "GET",
        &format!("/v1/files/{out}"),
        "key-b",
        &serde_json::Value::Null,
    );
    assert_eq!(s, 404);
    let (_, c) = json(
        &addr,
        "POST",
        &format!("/v1/batches/{id}/cancel"),
        "key-a",
        &serde_json::Value::Null,
    );
    assert_eq!(c["status"], "completed", "{c}");
    let done = finished(
        &addr,
        second["id"].as_str().unwrap(),
        Duration::from_secs(60),
    );
    assert_eq!(done["request_counts"]["completed"], 2, "{done}");
    drop(gw);
}

/// Interactive TTFT p95 (ms) of `strobe run` through the gateway, 2 users for `secs`.
fn interactive(gw: &str, d: &Path, name: &str, secs: u32) -> f64 {
    let out = d.join(format!("{name}.json"));
    let status = strobe()
        .args(["run", "-q", "--url"])
        .arg(format!("http://{gw}"))
        .env("GW_TEST_KEY", "key-a")
        .args([
            "--api-key-env",
            "GW_TEST_KEY",
            "-c",
            "2",
            "-d",
            &format!("{secs}s"),
            "--input-len",
            "16",
            "--output-len",
            "8",
            "--no-server-metrics",
            "-o",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "{name}: strobe run failed");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    r["results"]["latency"]["ttft_ms"]["p95"].as_f64().unwrap()
}

fn metric(gw: &str, name: &str) -> Option<String> {
    let (_, m) = http(gw, "GET", "/metrics", None, "", b"");
    String::from_utf8(m)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(name))
        .map(str::to_owned)
}

#[test]
fn the_adaptive_policy_keeps_interactive_ttft_near_isolated_while_a_batch_runs() {
    let d = dir("policy");
    // An engine of 8 slots: what does not fit waits, as in vLLM past max_num_seqs.
    let mut rows = Vec::new();
    for (name, flags) in [
        ("isolated", vec!["--no-adaptive"]),
        (
            "naive",
            vec!["--no-adaptive", "--batch-max-concurrency", "32"],
        ),
        (
            "adaptive",
            vec![
                "--batch-max-concurrency",
                "32",
                "--interactive-ttft-p95",
                "60ms",
                "--policy-interval",
                "200ms",
                "--policy-window",
                "3s",
            ],
        ),
    ] {
        // A fresh engine each time: the last condition's queue must not carry over.
        let (_server, up) = serve(&["--ttft", "20ms", "--itl", "5ms", "--max-running", "8"]);
        let (_gw, gw) = gateway(&up, d.join(format!("{name}.db")), "127.0.0.1:0", &flags);
        let batch = (name != "isolated").then(|| {
            let (s, f) = upload(&gw, "key-a", "b.jsonl", &lines(3000, 8), "batch");
            assert_eq!(s, 200, "{f}");
            let b = create(&gw, "key-a", f["id"].as_str().unwrap());
            std::thread::sleep(Duration::from_secs(2));
            b["id"].as_str().unwrap().to_owned()
        });
        let ttft = interactive(&gw, &d, name, 5);
        let cap = metric(&gw, "strobe_gateway_batch_concurrency{");
        let reason = metric(&gw, "strobe_gateway_policy_info");
        let done = batch.map(|id| {
            let (_, b) = json(
                &gw,
                "GET",
                &format!("/v1/batches/{id}"),
                "key-a",
                &serde_json::Value::Null,
            );
            b["request_counts"]["completed"].as_u64().unwrap()
        });
        eprintln!("{name}: interactive TTFT p95 {ttft:.1} ms; batch lines done {done:?}; {cap:?}; {reason:?}");
        rows.push((name, ttft, done, cap));
    }
    let (iso, naive, adaptive) = (rows[0].1, rows[1].1, rows[2].1);
    assert!(
        naive > 2.0 * iso,
        "the naive batch should hurt: {naive:.1} vs {iso:.1} ms"
    );
    // (docs/gateway.md has the figures; here only what a busy CI machine cannot blur.)
    assert!(
        adaptive * 3.0 < naive && adaptive < 2.0 * iso.max(25.0),
        "adaptive {adaptive:.1} ms vs isolated {iso:.1} ms, naive {naive:.1} ms"
    );
    // The batch still moves with the policy on (at least a third of the naive batch's lines).
    let (nd, ad) = (rows[1].2.unwrap(), rows[2].2.unwrap());
    assert!(ad * 3 >= nd, "adaptive batch did {ad} lines, naive {nd}");
    let cap = rows[2].3.as_deref().unwrap_or_default();
    let value: u32 = cap.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value < 32, "the policy lowered the cap: {cap}");
}

/// The TTFT the policy protects is the one strobe measures: the first token, not the role-only
/// chunk a chat engine sends at once (the built-in target does, as `transformers serve` does).
#[test]
fn the_policy_times_the_first_token_not_the_first_byte() {
    let d = dir("first-token");
    let (_server, up) = serve(&["--ttft", "300ms", "--itl", "20ms"]);
    let (_gw, gw) = gateway(&up, d.join("g.db"), "127.0.0.1:0", &[]);
    let status = strobe()
        .args(["run", "-q", "--url"])
        .arg(format!("http://{gw}"))
        .env("GW_TEST_KEY", "key-a")
        .args([
            "--api-key-env",
            "GW_TEST_KEY",
            "--api",
            "chat",
            "-c",
            "1",
            "-n",
            "3",
        ])
        .args([
            "--input-len",
            "16",
            "--output-len",
            "6",
            "--no-server-metrics",
            "-o",
        ])
        .arg(d.join("run.json"))
        .status()
        .unwrap();
    assert!(status.success());
    let value = |name: &str| -> f64 {
        let line = metric(&gw, name).unwrap_or_else(|| panic!("no {name} on /metrics"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let ttft = value("strobe_gateway_interactive_ttft_p95_seconds");
    let tpot = value("strobe_gateway_interactive_tpot_p95_seconds");
    assert!(
        (0.28..1.0).contains(&ttft),
        "TTFT p95 {ttft} s, the engine's is 0.3 s"
    );
    assert!(
        (0.015..0.1).contains(&tpot),
        "TPOT p95 {tpot} s, the engine's is 0.02 s"
    );
}

#[test]
fn an_https_upstream_is_reached_with_its_ca_and_refused_without_it() {
    let d = dir("https");
    let (ca, cert, key) = common::pki();
    let (_server, up) = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let port = up.rsplit(':').next().unwrap();
    let upstream = format!("https://localhost:{port}");
    let chat = |gw: &str| {
        let (status, body) = http(
            gw,
            "POST",
            "/v1/chat/completions",
            Some("key-a"),
            "application/json",
            br#"{"model":"strobe-sim","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true}"#,
        );
        (status, String::from_utf8_lossy(&body).into_owned())
    };

    // Without the CA: the proxy answers 502 and says why; nothing is sent in the clear.
    let (_gw, gw) = gateway(&upstream, d.join("untrusted.db"), "127.0.0.1:0", &[]);
    let (status, body) = chat(&gw);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("certificate"), "{body}");

    // With it: interactive streams and a batch go through.
    let (_gw, gw) = gateway(
        &upstream,
        d.join("trusted.db"),
        "127.0.0.1:0",
        &["--upstream-ca-cert", ca.to_str().unwrap()],
    );
    let (status, body) = chat(&gw);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body.matches("data: ").count(),
        6,
        "the role, 4 tokens and [DONE]: {body}"
    );
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let (s, f) = upload(&gw, "key-a", "in.jsonl", &lines(20, 3), "batch");
    assert_eq!(s, 200, "{f}");
    let b = create(&gw, "key-a", f["id"].as_str().unwrap());
    let b = finished(&gw, b["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(b["status"], "completed", "{b}");
    assert_eq!(b["request_counts"]["completed"], 20, "{b}");
}

#[test]
fn the_proxy_keeps_its_upstream_connections_open_between_requests() {
    let d = dir("reuse");
    let (_server, up) = serve(&["--ttft", "2ms", "--itl", "1ms"]);
    let (_gw, gw) = gateway(&up, d.join("g.db"), "127.0.0.1:0", &[]);
    let chat = br#"{"model":"strobe-sim","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"stream":true}"#;
    let whole = br#"{"model":"strobe-sim","prompt":"hi","max_tokens":8}"#;
    for i in 0..40 {
        let (path, body) = if i % 2 == 0 {
            ("/v1/chat/completions", &chat[..])
        } else {
            ("/v1/completions", &whole[..])
        };
        let (status, b) = http(&gw, "POST", path, Some("key-a"), "application/json", body);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&b));
    }
    let (s, truth) = http(&up, "GET", "/strobe/truth", None, "", b"");
    assert_eq!(s, 200);
    let truth: serde_json::Value = serde_json::from_slice(&truth).unwrap();
    assert_eq!(truth["completed_streams"], 20, "{truth}");
    assert_eq!(truth["accepted_requests"], 40, "{truth}");
    // One after another, the 40 requests (and the policy's /metrics reads) share a connection
    // or two; the one this test opened for /strobe/truth counts too.
    let opened = truth["connections"].as_u64().unwrap();
    assert!(opened <= 4, "{opened} connections for 40 requests: {truth}");
}

/// Two upstreams, one batch: both send its lines (the idle one helps the one that claimed it),
/// each line to exactly one of them, the faster taking more; every custom_id once in the output.
#[test]
fn one_batch_is_spread_over_every_upstream_the_faster_taking_more() {
    let d = dir("spread");
    let (_fast, fast) = serve(&["--ttft", "5ms", "--itl", "2ms"]);
    let (_slow, slow) = serve(&["--ttft", "5ms", "--itl", "12ms"]);
    let slow_url = format!("http://{slow}");
    let (_gw, gw) = gateway(
        &fast,
        d.join("g.db"),
        "127.0.0.1:0",
        &[
            "--upstream",
            &slow_url,
            "--no-adaptive",
            "--batch-max-concurrency",
            "8",
        ],
    );
    let n = 1000;
    let (s, f) = upload(&gw, "key-a", "spread.jsonl", &lines(n, 8), "batch");
    assert_eq!(s, 200, "{f}");
    let b = create(&gw, "key-a", f["id"].as_str().unwrap());
    let id = b["id"].as_str().unwrap();
    // Both upstreams appear on the page while it runs.
    let t0 = Instant::now();
    let mut both = false;
    while !both && t0.elapsed() < Duration::from_secs(20) {
        let (_, page) = http(&gw, "GET", "/", None, "", b"");
        let page = String::from_utf8_lossy(&page).into_owned();
        let live = page.split("Finished recently").next().unwrap_or_default();
        both = live.contains(&format!("{fast}<br>{slow}"))
            || live.contains(&format!("{slow}<br>{fast}"));
        if !both {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let b = finished(&gw, id, Duration::from_secs(120));
    assert_eq!(b["status"], "completed", "{b}");
    assert_eq!(b["request_counts"]["completed"], n as u64, "{b}");
    each_once_in_the_output(&gw, &b, n);
    let accepted = |addr: &str| -> u64 {
        let (_, t) = http(addr, "GET", "/strobe/truth", None, "", b"");
        let t: serde_json::Value = serde_json::from_slice(&t).unwrap();
        t["accepted_requests"].as_u64().unwrap()
    };
    let (a, s) = (accepted(&fast), accepted(&slow));
    eprintln!("spread: {a} lines to the fast upstream, {s} to the slow one");
    assert_eq!(a + s, n as u64, "each line sent once: {a} + {s}");
    assert!(s > 0 && a > 2 * s, "fast {a}, slow {s}");
    assert!(both, "the page never showed both upstreams on the batch");
}
