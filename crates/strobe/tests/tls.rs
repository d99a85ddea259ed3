//! HTTPS: against a local TLS server whose certificate a generated CA signed. Refused without the
//! CA, measured with it (kernel receive timestamps still date the reads), and `--insecure` works
//! and is flagged.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_refused_without_the_ca_measured_with_it_and_flagged_when_insecure() {
    let (ca, cert, key) = pki();
    let server = start(strobe_server::ServerConfig {
        tls: Some(strobe_server::tls_config(&cert, &key).unwrap()),
        ..timed(20, 2)
    })
    .await;
    let url = format!("https://localhost:{}", server.addr.port());

    // The platform's roots do not know the test CA.
    let e = run(&url, &["-n", "2"]).await.err().unwrap().to_string();
    assert!(e.contains("certificate"), "{e}");

    // With it: long streams (records larger than one TLS record), both APIs, exact counts.
    let ca_flag = ca.to_str().unwrap();
    for api in ["completions", "chat"] {
        let out = run(
            &url,
            &[
                "--ca-cert",
                ca_flag,
                "--api",
                api,
                "-c",
                "4",
                "-n",
                "12",
                "--output-len",
                "600",
            ],
        )
        .await
        .unwrap();
        let r = &out.report;
        assert_eq!(out.exit_code, 0);
        assert_eq!(
            (r.results.requests.successful, r.results.tokens.output),
            (12, 12 * 600),
            "{api}"
        );
        assert!(r.results.latency.ttft_ms.min >= 20.0);
        let tls = r.run.target.tls.as_ref().unwrap();
        assert_eq!(tls.version.as_deref(), Some("TLSv1_3"));
        assert!(!tls.insecure && tls.ca_cert.as_deref() == Some(ca_flag));
        assert!(r.run.target.base_url.starts_with("https://localhost:"));
        // Every socket's reads were still dated by the kernel, through TLS.
        if cfg!(target_os = "linux") {
            assert_eq!(r.client.receive_timestamps, "kernel");
            assert_eq!(r.client.sockets_kernel_timestamps, 4);
            assert_eq!(r.client.sockets_user_timestamps, 0);
        }
    }

    // --insecure: no check at all, and the report says so.
    let out = run(&url, &["--insecure", "-n", "3", "--output-len", "4"])
        .await
        .unwrap();
    assert_eq!(out.report.results.requests.successful, 3);
    assert!(out.report.run.target.tls.as_ref().unwrap().insecure);
    assert!(out
        .report
        .client
        .warnings
        .iter()
        .any(|w| w.contains("--insecure")));

    // A CA file that is not one, and TLS options on plain HTTP, are clear errors.
    let e = plan(&url, &["--ca-cert", "/nonexistent/ca.pem"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--ca-cert /nonexistent/ca.pem"), "{e}");
    let e = run(&url, &["--ca-cert", cert.to_str().unwrap(), "-n", "1"])
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("certificate"), "{e}");
    server.shutdown().await;
}
