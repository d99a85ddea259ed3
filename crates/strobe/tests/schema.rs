//! The JSON report of a real run validates against the shipped JSON Schema, and the schema is
//! strict enough to catch drift.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_reports_match_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(strobe_report::json::SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let server = start(strobe_server::ServerConfig {
        faults: vec![(strobe_server::Fault::Cut, 0.3)],
        ..fast_config()
    })
    .await;
    let url = url_of(&server);
    for args in [
        &["-c", "2", "-n", "20", "--output-len", "4"][..],
        &[
            "-r",
            "50",
            "--burstiness",
            "0.5",
            "--max-concurrency",
            "3",
            "-n",
            "10",
            "--no-stream",
        ][..],
    ] {
        let path = temp_path("schema.json");
        let mut all = args.to_vec();
        all.extend_from_slice(&["-o", path.to_str().unwrap()]);
        run(&url, &all).await.unwrap();
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&report)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{args:?}: {errors:#?}");

        // Drift is caught: an unknown field or a wrong type fails validation.
        let mut bad = report.clone();
        bad["results"]["latency"]["ttft_ms"]["surprise"] = serde_json::json!(1);
        assert!(!validator.is_valid(&bad));
        let mut bad = report.clone();
        bad["results"]["requests"]["successful"] = serde_json::json!("many");
        assert!(!validator.is_valid(&bad));
    }
    server.shutdown().await;
}
