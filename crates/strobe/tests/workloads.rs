//! Workloads end to end against the built-in target: profiles, data sets (and their bad input),
//! images, the server's tokenizer, and reproducible request streams.

mod common;

use common::{fast_config, plan, run, start, temp_path, url_of};
use std::time::Duration;
use strobe_client::{BaseUrl, Target};
use strobe_core::Api;
use strobe_server::ServerConfig;
use strobe_workload::profiles::PROFILES;

fn quick() -> ServerConfig {
    ServerConfig {
        ttft: Duration::from_millis(1),
        itl: Duration::ZERO,
        max_model_len: 8192,
        ..fast_config()
    }
}

/// A small ShareGPT file: six conversations, one of them a single turn (dropped, as vLLM does),
/// one with a 2-word prompt (dropped: too short).
fn sharegpt_fixture(name: &str) -> std::path::PathBuf {
    let words = |n: usize, w: &str| vec![w; n].join(" ");
    let conv = |id: usize, turns: Vec<String>| {
        serde_json::json!({
            "id": format!("c{id}"),
            "conversations": turns.iter().enumerate().map(|(i, t)| serde_json::json!({
                "from": if i % 2 == 0 { "human" } else { "gpt" }, "value": t
            })).collect::<Vec<_>>()
        })
    };
    let records = vec![
        conv(0, vec![words(12, "alpha"), words(9, "beta")]),
        conv(1, vec![words(30, "gamma")]),
        conv(2, vec![words(2, "delta"), words(9, "eps")]),
        conv(
            3,
            vec![
                words(7, "zeta"),
                words(20, "eta"),
                words(5, "theta"),
                words(6, "iota"),
            ],
        ),
        conv(4, vec![words(25, "kappa"), words(4, "lambda")]),
        conv(5, vec![words(40, "mu"), words(11, "nu")]),
    ];
    let path = temp_path(name);
    std::fs::write(&path, serde_json::to_string_pretty(&records).unwrap()).unwrap();
    path
}

fn err_of(r: anyhow::Result<common::Out>) -> String {
    format!("{:#}", r.err().expect("the run should fail"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_resolves_and_runs_against_the_built_in_target() {
    let server = start(quick()).await;
    let url = url_of(&server);
    let sharegpt = sharegpt_fixture("profile-sharegpt.json");
    for p in PROFILES {
        let before = server.truth.summary();
        let mut args = vec!["--profile", p.name, "-n", "3", "--output-len", "4"];
        if p.sharegpt {
            args.extend(["--dataset", sharegpt.to_str().unwrap(), "-r", "200"]);
        }
        let out = run(&url, &args).await.unwrap();
        let r = &out.report;
        let levels = p.concurrency.len().max(1) as u64;
        assert_eq!(out.exit_code, 0, "{}", p.name);
        assert_eq!(r.classes[0].workload.profile.as_deref(), Some(p.name));
        assert_eq!(r.results.requests.successful, 3, "{}", p.name);
        assert_eq!(
            r.classes[0].request.api,
            if p.api == Api::Chat {
                "chat"
            } else {
                "completions"
            },
            "{}",
            p.name
        );
        // The last level ran at the profile's last concurrency (or its rate).
        match p.rate {
            Some(_) => assert_eq!(r.classes[0].load.rate_per_s, Some(200.0)),
            None => assert_eq!(r.classes[0].load.concurrency, p.concurrency.last().copied()),
        }
        let after = server.truth.summary();
        assert_eq!(
            after.accepted_requests - before.accepted_requests,
            3 * levels,
            "{}: one run of 3 requests per level",
            p.name
        );
        let images = p.images.map_or(0, |i| i.0 as u64);
        assert_eq!(
            after.images - before.images,
            3 * levels * images,
            "{}",
            p.name
        );
        assert_eq!(r.classes[0].workload.images_per_request as u64, images);
        // Lengths are exact under the server's own counting (found at /tokenize).
        assert!(
            r.classes[0].workload.tokenizer.starts_with("server:"),
            "{}",
            p.name
        );
        let check = r.results.input_length_check.as_ref().unwrap();
        assert_eq!((check.compared, check.exact), (3, 3), "{}", p.name);
        // Counting through /tokenize keeps its connections open between calls; it once opened
        // one per call, about 500 for each profile's prompts. What remains is the run's own: a
        // connection per user at each level, and a few for the check and the telemetry.
        let opened = after.connections - before.connections;
        let users: u64 = p.concurrency.iter().map(|&c| u64::from(c)).sum();
        assert!(
            opened <= users + 8 * levels + 24,
            "{}: {opened} connections for {users} users over {levels} levels",
            p.name
        );
        if p.name == "high" {
            // Context 8192 minus 2048.
            assert_eq!(r.classes[0].workload.input_len, "6144");
            assert_eq!(r.results.input_tokens_per_request.mean, 6144.0);
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vision_request_is_accepted_by_the_built_in_target_and_counted() {
    let server = start(ServerConfig {
        image_tokens: 100,
        ..quick()
    })
    .await;
    let url = url_of(&server);
    let out = run(
        &url,
        &[
            "--api",
            "chat",
            "--images",
            "2",
            "--image-size",
            "64x48",
            "--image-format",
            "png",
            "-n",
            "4",
            "-c",
            "2",
            "--input-len",
            "30",
            "--output-len",
            "3",
        ],
    )
    .await
    .unwrap();
    let truth = server.truth.summary();
    assert_eq!(truth.images, 8);
    assert_eq!(out.report.results.requests.successful, 4);
    assert_eq!(
        out.report.classes[0].workload.images.as_deref(),
        Some("generated 64x48 image/png")
    );
    // The server added 100 tokens per image; strobe reports the difference.
    let check = out.report.results.input_length_check.clone().unwrap();
    assert_eq!((check.min_diff, check.max_diff), (200, 200));

    // Image files: a folder of them, used in turn.
    let dir = temp_path("images");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, fmt) in [
        strobe_workload::picture::ImageFormat::Jpeg,
        strobe_workload::picture::ImageFormat::Png,
    ]
    .iter()
    .enumerate()
    {
        let bytes = strobe_workload::picture::generate(32, 32, *fmt, i as u64);
        let ext = if i == 0 { "jpg" } else { "png" };
        std::fs::write(dir.join(format!("img{i}.{ext}")), bytes).unwrap();
    }
    let out = run(
        &url,
        &[
            "--api",
            "chat",
            "--image",
            dir.to_str().unwrap(),
            "-n",
            "3",
            "--output-len",
            "2",
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.report.results.requests.successful, 3);
    assert_eq!(server.truth.summary().images, 8 + 3);
    // Images need chat.
    let e = plan("http://x:1", &["--images", "1"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--api chat"), "{e}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_sets_load_filter_and_fail_clearly() {
    let server = start(quick()).await;
    let url = url_of(&server);

    // ShareGPT: vLLM's rules drop the single-turn and the too-short conversation.
    let sharegpt = sharegpt_fixture("data.json");
    let s = sharegpt.to_str().unwrap();
    let out = run(&url, &["--dataset", s, "-n", "8", "-c", "2"])
        .await
        .unwrap();
    let d = out.report.classes[0].workload.dataset.clone().unwrap();
    assert_eq!((d.records, d.kept, d.format.as_str()), (6, 4, "sharegpt"));
    assert_eq!(d.dropped.get("not_a_conversation"), Some(&1));
    assert_eq!(d.dropped.get("input_too_short"), Some(&1));
    assert!(d.shuffled);
    assert_eq!(out.report.results.requests.successful, 8);
    // Output lengths are the data set's own answers (9, 20, 4, 11 words) reused in order.
    let out_total = out.report.results.tokens.output;
    assert_eq!(out_total, 2 * (9 + 20 + 4 + 11));

    // A truncated file: an error naming the file and line, or with --skip-invalid its complete
    // records, and the truncation reported.
    let text = std::fs::read_to_string(&sharegpt).unwrap();
    let cut = temp_path("truncated.json");
    std::fs::write(&cut, &text[..text.rfind("\"mu").unwrap()]).unwrap();
    let c = cut.to_str().unwrap();
    let e = err_of(run(&url, &["--dataset", c, "-n", "2"]).await);
    assert!(
        e.contains("truncated.json") && e.contains("line") && e.contains("truncated"),
        "{e}"
    );
    let out = run(&url, &["--dataset", c, "--skip-invalid", "-n", "2"])
        .await
        .unwrap();
    let d = out.report.classes[0].workload.dataset.clone().unwrap();
    assert_eq!(d.records, 5);
    assert!(d.truncated.unwrap().contains("5 complete records"));

    // JSONL with a malformed line 3.
    let jsonl = temp_path("prompts.jsonl");
    std::fs::write(
        &jsonl,
        "{\"prompt\": \"one two three four\", \"output_tokens\": 5}\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi there\"}], \"max_tokens\": 3}\n{\"prompt\": 7}\n\n{\"text\": \"five six\"}\n",
    )
    .unwrap();
    let j = jsonl.to_str().unwrap();
    let e = err_of(run(&url, &["--dataset", j, "--api", "chat"]).await);
    assert!(
        e.contains("prompts.jsonl, line 3") && e.contains("--skip-invalid"),
        "{e}"
    );
    let out = run(
        &url,
        &[
            "--dataset",
            j,
            "--api",
            "chat",
            "--skip-invalid",
            "-n",
            "3",
            "-c",
            "1",
        ],
    )
    .await
    .unwrap();
    let d = out.report.classes[0].workload.dataset.clone().unwrap();
    assert_eq!((d.records, d.malformed_skipped, d.kept), (4, 1, 3));
    // 5 + 3 + the default 128 for the record without a length (warned).
    assert_eq!(out.report.results.tokens.output, 5 + 3 + 128);
    assert!(out
        .report
        .client
        .warnings
        .iter()
        .any(|w| w.contains("give no output length")));

    // OpenAI batch input: the body's max_tokens is the output length.
    let batch = temp_path("batch.jsonl");
    std::fs::write(
        &batch,
        "{\"custom_id\": \"a\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": {\"model\": \"x\", \"messages\": [{\"role\": \"user\", \"content\": \"say hi\"}], \"max_tokens\": 7}}\n{\"custom_id\": \"b\", \"method\": \"POST\", \"url\": \"/v1/completions\", \"body\": {\"model\": \"x\", \"prompt\": \"count to ten\", \"max_completion_tokens\": 2}}\n",
    )
    .unwrap();
    let out = run(
        &url,
        &[
            "--dataset",
            batch.to_str().unwrap(),
            "--api",
            "chat",
            "-n",
            "4",
            "-c",
            "1",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        out.report.classes[0]
            .workload
            .dataset
            .as_ref()
            .unwrap()
            .format,
        "openai-batch"
    );
    assert_eq!(out.report.results.tokens.output, 2 * (7 + 2));

    // Text lines; filters that leave nothing; an empty file.
    let txt = temp_path("lines.txt");
    std::fs::write(&txt, "first prompt here\n\nsecond one\n").unwrap();
    let t = txt.to_str().unwrap();
    let out = run(&url, &["--dataset", t, "--output-len", "5", "-n", "2"])
        .await
        .unwrap();
    assert_eq!(out.report.results.tokens.input, 3 + 2);
    let e = err_of(run(&url, &["--dataset", t, "--min-input-len", "50"]).await);
    assert!(
        e.contains("lines.txt") && e.contains("2 input_too_short") && e.contains("--min-input-len"),
        "{e}"
    );
    let empty = temp_path("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let e = err_of(run(&url, &["--dataset", empty.to_str().unwrap()]).await);
    assert!(e.contains("empty.jsonl") && e.contains("no records"), "{e}");
    let e = err_of(run(&url, &["--dataset", "/nonexistent/d.jsonl"]).await);
    assert!(e.contains("/nonexistent/d.jsonl"), "{e}");
    let e = err_of(run(&url, &["--tokenizer", "/nonexistent/tok"]).await);
    assert!(
        e.contains("/nonexistent/tok") && e.contains("tokenizer.json"),
        "{e}"
    );
    server.shutdown().await;
}

/// The JSON bodies of the first `n` requests of a run's workload.
fn bodies(args: &[&str], api: Api, n: u64) -> Vec<Vec<u8>> {
    let p = plan("http://127.0.0.1:9", args).unwrap();
    let ctx = strobe_experiment::workloads::BuildContext {
        api,
        seed: p.experiment().unwrap().runs[0].classes[0].seed,
        built_in: true,
        server_tokenizer: None,
        max_model_len: Some(4096),
        needed: Some(n),
        concurrency: 4,
    };
    let built =
        strobe_experiment::workloads::build(&p.experiment().unwrap().workloads[0], ctx).unwrap();
    let base = BaseUrl::parse("http://127.0.0.1:9").unwrap();
    let target = Target {
        addr: "127.0.0.1:9".parse().unwrap(),
        headers: strobe_client::build_headers(&base, None, &[]).unwrap(),
        base,
        api,
        model: "m".into(),
        stream: true,
        extra_body: Default::default(),
        request_timeout: Duration::from_secs(1),
        first_byte_timeout: None,
        idle_timeout: None,
        kernel_timestamps: false,
        sockets: Default::default(),
    };
    (0..n)
        .map(|i| target.request_bytes(&built.workload.spec(i)))
        .collect()
}

#[test]
fn the_same_seed_gives_byte_identical_request_streams() {
    let sharegpt = sharegpt_fixture("repro.json");
    let cases: Vec<(Vec<&str>, Api)> = vec![
        (
            vec![
                "--input-len",
                "lognormal:200:150",
                "--output-len",
                "uniform:10:90",
            ],
            Api::Completions,
        ),
        (
            vec![
                "--api",
                "chat",
                "--input-len",
                "normal:100:30",
                "--turns",
                "3",
                "--shared-prefix",
                "16",
                "--prefix-groups",
                "3",
            ],
            Api::Chat,
        ),
        (
            vec![
                "--api",
                "chat",
                "--images",
                "1",
                "--image-size",
                "32x32",
                "--image-format",
                "jpeg",
            ],
            Api::Chat,
        ),
        (
            vec![
                "--dataset",
                sharegpt.to_str().unwrap(),
                "--output-len",
                "normal:50:10",
            ],
            Api::Completions,
        ),
    ];
    for (args, api) in cases {
        let mut with_seed = args.clone();
        with_seed.extend(["--seed", "42"]);
        let a = bodies(&with_seed, api, 300);
        let b = bodies(&with_seed, api, 300);
        assert!(a == b, "{args:?}: same seed, different bytes");
        let c = bodies(&args, api, 300);
        assert!(a != c, "{args:?}: seeds 42 and 0 gave the same stream");
        let distinct: std::collections::HashSet<&Vec<u8>> = a.iter().collect();
        assert!(distinct.len() > 4, "{args:?}: requests should differ");
    }
}

#[test]
fn profiles_resolve_to_their_documented_settings_and_flags_override_them() {
    use strobe_experiment::InputLength;
    use strobe_load::Schedule;
    use strobe_workload::LengthSpec;
    let levels = |e: &strobe_experiment::Experiment| -> Vec<u32> {
        e.runs
            .iter()
            .map(|r| match r.classes[0].schedule {
                Schedule::Closed { concurrency } => concurrency,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let len = |s: &str| InputLength::Spec(LengthSpec::parse(s).unwrap());
    let e = plan("http://x:1", &["--profile", "medium"])
        .unwrap()
        .experiment()
        .unwrap()
        .clone();
    assert_eq!(levels(&e), vec![32, 64, 128]);
    let w = &e.workloads[0];
    assert_eq!(
        (&w.input, &w.output),
        (&len("200"), &LengthSpec::parse("250").ok())
    );
    // 10 × concurrency per level, and fresh text per level.
    let requests: Vec<_> = e.runs.iter().map(|r| r.classes[0].requests).collect();
    assert_eq!(requests, vec![Some(320), Some(640), Some(1280)]);
    let seeds: Vec<_> = e.runs.iter().map(|r| r.classes[0].content_seed).collect();
    assert_eq!(seeds, vec![0, 1, 2]);
    let e = plan(
        "http://x:1",
        &["--profile", "low", "-c", "3", "--output-len", "9"],
    )
    .unwrap()
    .experiment()
    .unwrap()
    .clone();
    assert_eq!(levels(&e), vec![3]);
    assert_eq!(e.workloads[0].output, LengthSpec::parse("9").ok());
    assert_eq!(e.workloads[0].input, len("100"));
    let e = plan("http://x:1", &["--profile", "high"])
        .unwrap()
        .experiment()
        .unwrap()
        .clone();
    assert_eq!(
        (e.workloads[0].input.clone(), levels(&e)),
        (InputLength::ContextMinus(2048), vec![1, 5, 10])
    );
    let e = plan("http://x:1", &["--profile", "vision-b"])
        .unwrap()
        .experiment()
        .unwrap()
        .clone();
    let c = &e.runs[0].classes[0];
    assert_eq!(
        (c.request.api, e.workloads[0].images_per_request),
        (Api::Chat, 1)
    );
    assert_eq!(
        e.workloads[0].images,
        Some(strobe_experiment::ImageSpec::Generated {
            width: 512,
            height: 512,
            format: strobe_workload::picture::ImageFormat::Jpeg
        })
    );
    assert_eq!(levels(&e), vec![1, 8, 16, 32]);
    let e = plan(
        "http://x:1",
        &["--profile", "sharegpt", "--dataset", "x.json"],
    )
    .unwrap()
    .experiment()
    .unwrap()
    .clone();
    let c = &e.runs[0].classes[0];
    assert!(matches!(c.schedule, Schedule::Open { rate, .. } if rate == 1.0));
    assert_eq!(c.requests, Some(200));
}

#[test]
fn dataset_stats_prints_the_distribution_and_fits() {
    let path = sharegpt_fixture("stats.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(["dataset", "stats", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("6 read") && text.contains("4 kept"), "{text}");
    assert!(text.contains("fitted: --input-len normal:"), "{text}");
    let json = std::process::Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(["dataset", "stats", "--json", path.to_str().unwrap()])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    // Prompts of 12, 7, 25 and 40 words.
    assert_eq!(v["input_tokens"]["count"], 4);
    assert_eq!(v["input_tokens"]["mean"], 21.0);
    assert_eq!(v["input_tokens"]["max"], 40);
}

#[test]
fn profiles_are_listed_and_shown() {
    let bin = env!("CARGO_BIN_EXE_strobe");
    let list = std::process::Command::new(bin)
        .arg("profiles")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success());
    for p in PROFILES {
        assert!(text.contains(p.name), "{} missing from:\n{text}", p.name);
    }
    let show = std::process::Command::new(bin)
        .args(["profiles", "show", "high"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("context - 2048") && text.contains("1/5/10"),
        "{text}"
    );
    let bad = std::process::Command::new(bin)
        .args(["profiles", "show", "nope"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown profile `nope`"));
}
