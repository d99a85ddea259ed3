//! `--tui` driven in tmux as a person would: the dashboard shows the run's classes, throughput and
//! errors; `q` stops the run cleanly (exit 130) and every output is still written.

use std::process::Command;
use std::time::{Duration, Instant};

fn tmux(args: &[&str]) -> String {
    let o = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux is needed for the dashboard test (apt-get install tmux)");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn wait_for(session: &str, what: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", session]);
        if screen.contains(what) || start.elapsed() > limit {
            return screen;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_dashboard_shows_the_run_and_q_stops_it_with_every_output_written() {
    let d = std::env::temp_dir().join(format!("strobe-tui-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let (json, html, status) = (d.join("r.json"), d.join("r.html"), d.join("status"));
    let session = format!("strobe-tui-{}", std::process::id());
    let cmd = format!(
        "{} run -n 100000 -c 8 --output-len 16 --tui -o {} --export {}; echo $? > {}; sleep 60",
        env!("CARGO_BIN_EXE_strobe"),
        json.display(),
        html.display(),
        status.display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "45",
        &cmd,
    ]);
    let screen = wait_for(&session, "errors by kind", Duration::from_secs(30));
    let result = std::panic::catch_unwind(|| {
        for needle in [
            "strobe · run",
            "classes",
            "TTFT p99",
            "output tokens/s",
            "requests in flight",
            "errors by kind",
            "default",
        ] {
            assert!(
                screen.contains(needle),
                "`{needle}` not on the screen:\n{screen}"
            );
        }
        // Numbers move: after a while requests are done.
        std::thread::sleep(Duration::from_secs(2));
        let later = tmux(&["capture-pane", "-p", "-t", &session]);
        assert!(!later.contains(" 0 of 100000 done"), "{later}");
        tmux(&["send-keys", "-t", &session, "q"]);
        let start = Instant::now();
        while !status.exists() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(200));
        }
        let code = std::fs::read_to_string(&status).unwrap_or_default();
        assert_eq!(code.trim(), "130", "exit status after q");
        // The terminal is back and the summary printed.
        let after = tmux(&["capture-pane", "-p", "-t", &session]);
        assert!(
            after.contains("Output token throughput")
                && after.contains("written:")
                && !after.contains("errors by kind"),
            "{after}"
        );
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(r["run"]["interrupted"], true);
        assert!(r["results"]["requests"]["successful"].as_u64().unwrap() > 0);
        assert!(std::fs::read_to_string(&html)
            .unwrap()
            .contains("<figure class=\"chart\""));
    });
    tmux(&["kill-session", "-t", &session]);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
