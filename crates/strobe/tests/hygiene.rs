//! strobe never misleads and never leaks: a server that refuses `ignore_eos` is told apart before
//! the run, with the fix; planted secrets (API key, `--launch` flag and variable, header, URL
//! password, body field) appear in no output, log line or message; sockets are counted by how
//! their reads were dated.

mod common;

use common::*;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_ignore_eos_is_named_before_the_run_with_the_fix() {
    let server = start(strobe_server::ServerConfig {
        strict: true,
        ..fast_config()
    })
    .await;
    let url = url_of(&server);
    let e = run(&url, &["-n", "5"]).await.err().unwrap().to_string();
    assert!(
        e.contains("HTTP 422") && e.contains("`ignore_eos`") && e.contains("--no-ignore-eos"),
        "{e}"
    );
    assert_eq!(
        server.truth.summary().accepted_requests,
        0,
        "nothing was measured"
    );
    // The fix works: the standard body (stream_options included) is accepted.
    let out = run(&url, &["-n", "5", "--no-ignore-eos"]).await.unwrap();
    assert_eq!(out.report.results.requests.successful, 5);
    // A --body field the server refuses is named too.
    let e = run(
        &url,
        &[
            "-n",
            "5",
            "--no-ignore-eos",
            "--body",
            r#"{"min_tokens":4}"#,
        ],
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("`min_tokens` (from --body)"), "{e}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_are_counted_by_how_their_reads_were_dated() {
    let server = start(fast_config()).await;
    let url = url_of(&server);
    for (stamps, kernel) in [("kernel", cfg!(target_os = "linux")), ("user", false)] {
        let out = run(
            &url,
            &[
                "-c",
                "3",
                "-n",
                "9",
                "--output-len",
                "3",
                "--timestamps",
                stamps,
            ],
        )
        .await
        .unwrap();
        let c = &out.report.client;
        let (k, u) = (c.sockets_kernel_timestamps, c.sockets_user_timestamps);
        assert_eq!(k + u, 3, "{stamps}");
        assert_eq!((k == 3, u == 3), (kernel, !kernel), "{stamps}");
        assert_eq!(c.receive_timestamps, if kernel { "kernel" } else { "user" });
    }
    server.shutdown().await;
}

const SECRETS: [&str; 5] = [
    "sk-planted-launch-key-4471",
    "hf_planted_env_token_9182",
    "hk-planted-header-value-2205",
    "pw-planted-url-password-7733",
    "bk-planted-body-secret-6610",
];

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} holds the secret {s}:\n{text}");
    }
}

#[test]
fn planted_secrets_reach_no_output_file_log_line_or_message() {
    let dir = std::env::temp_dir().join(format!("strobe-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = unused_port();
    let strobe = env!("CARGO_BIN_EXE_strobe");
    let [key, env_token, header, password, body] = SECRETS;
    // The engine echoes its own arguments, as vLLM does at start-up.
    let engine = format!(
        "HF_TOKEN={env_token} sh -c 'echo non-default args: api_key={key} HF_TOKEN=$HF_TOKEN; exec {strobe} serve --port {port} --ttft 2ms --itl 1ms --api-key {key}'"
    );
    let url = format!("http://bench:{password}@127.0.0.1:{port}");
    let (report, records, log) = (
        dir.join("r.json"),
        dir.join("r.jsonl"),
        dir.join("engine.log"),
    );
    let args = |extra: &[&str]| {
        let mut a = vec![
            "run".to_owned(),
            "--url".into(),
            url.clone(),
            "--launch".into(),
            engine.clone(),
            "--launch-log".into(),
            log.display().to_string(),
            "-H".into(),
            format!("X-Api-Key: {header}"),
            "--body".into(),
            // A secret at the top and one nested (a vendor's extension object).
            format!(r#"{{"api_key":"{body}","extra":{{"vendor":{{"auth_token":"{body}"}}}}}}"#),
            "-n".into(),
            "4".into(),
            "--output-len".into(),
            "3".into(),
            "--api-key-env".into(),
            "PLANTED_KEY".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let out = Command::new(strobe)
        .args(args(&[
            "-o",
            report.to_str().unwrap(),
            "--records",
            records.to_str().unwrap(),
        ]))
        .env("PLANTED_KEY", key)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("Successful requests:                     4"),
        "{stdout}"
    );
    assert_clean("stdout", &stdout);
    assert_clean("stderr", &stderr);
    let r = std::fs::read_to_string(&report).unwrap();
    assert_clean("the report", &r);
    // Still useful: names, not values; the redacted command and its flags.
    assert!(
        r.contains("X-Api-Key") && r.contains("--api-key ***") && r.contains("HF_TOKEN=***"),
        "{r}"
    );
    assert_clean("the records", &std::fs::read_to_string(&records).unwrap());
    let engine_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        engine_log.contains("non-default args: api_key=*** HF_TOKEN=***"),
        "{engine_log}"
    );
    assert_clean("the engine log", &engine_log);

    // A wrong key: the failure message quotes the server, never the secrets.
    let out = Command::new(strobe)
        .args(args(&["-q"]))
        .env("PLANTED_KEY", "sk-wrong-key-0000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    assert_clean("stderr of a failed run", &stderr);

    // An engine that dies prints its log's tail, scrubbed of the command's secrets.
    let dying = format!(
        "HF_TOKEN={env_token} sh -c 'echo args: --api-key {key} HF_TOKEN=$HF_TOKEN; exit 3'"
    );
    let out = Command::new(strobe)
        .args([
            "run",
            "-q",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--launch",
            &dying,
            "-n",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exited with") && stderr.contains("args: --api-key ***"),
        "{stderr}"
    );
    assert_clean("a dying engine's message", &stderr);
    let _ = std::fs::remove_dir_all(dir);
}
