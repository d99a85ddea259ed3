//! The gateway's web page (`GET /`): live batches with progress, throughput and ETA, the
//! batches that ended last (so one that ends between two refreshes is still seen), each
//! upstream's batch concurrency and why, and the interactive latency the policy protects.
//! Server-rendered HTML with inline CSS, refreshed every 5 s by a `<meta>` tag: no script, no
//! build step, nothing fetched from elsewhere.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use http::{header, Response};
use http_body_util::BodyExt;

use crate::server::{live, Body, Gateway};
use crate::store::Status;

/// How many ended batches the page lists.
const RECENT: usize = 10;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |s| format!("{:.0} ms", s * 1e3))
}

fn duration(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0..=99 => format!("{s} s"),
        100..=5999 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub async fn render(gw: &Arc<Gateway>) -> Response<Body> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content=5>\
<link rel=icon href=\"data:,\"><title>strobe gateway</title><style>\
body{{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#1d2330;padding:0 1em}}\
h1{{font-size:1.4em;margin:0 0 .2em}}h2{{font-size:1.1em;margin:1.6em 0 .5em}}.sub{{color:#667}}\
table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e6ec}}\
th{{font-weight:600;color:#445;background:#f5f6f9}}td.n{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}\
.bar{{background:#e8ebf1;border-radius:3px;height:.8em;width:8em;overflow:hidden;display:inline-block;vertical-align:middle}}\
.bar i{{display:block;height:100%;background:#3a7bd5}}.bar i.f{{background:#d9534f}}\
.s{{padding:.1em .5em;border-radius:3px;background:#eef;font-size:.9em}}.s.in_progress{{background:#e1f0ff}}.s.cancelling{{background:#fde8d7}}.s.completed{{background:#e2f4e5}}.s.failed,.s.expired{{background:#fbe0df}}.s.cancelled{{background:#eceef2}}\
.empty{{color:#667;padding:1em 0}}.nw{{white-space:nowrap}}td.bad{{color:#b52b27;font-weight:600}}</style></head><body>\
<h1>strobe gateway</h1><div class=sub>OpenAI Batch API in front of {} upstream(s); up {}; this page refreshes every 5 s.</div>",
        gw.upstreams.len(),
        duration(gw.started.elapsed().as_secs_f64())
    );
    let _ = write!(h, "<h2>Upstreams: batch concurrency and the interactive latency it protects</h2><table><tr><th>upstream</th><th>batch concurrency</th><th>why</th><th>interactive (last {} s)</th><th>TTFT p95</th><th>TPOT p95</th><th>latency p95</th><th>engine waiting</th><th>KV cache</th></tr>", gw.config.policy.window.as_secs());
    for up in &gw.upstreams {
        let mut p = up.policy.lock().unwrap_or_else(|p| p.into_inner());
        let seen = p.interactive(Instant::now());
        let e = *up.engine.lock().unwrap_or_else(|p| p.into_inner());
        let slo = |v: Option<std::time::Duration>| {
            v.map_or(String::new(), |d| format!(" (SLO {} ms)", d.as_millis()))
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=n>{} of {}{}</td><td>{}</td><td class=n>{}</td><td class=n>{}{}</td><td class=n>{}{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(&up.upstream.url),
            p.cap,
            p.config.max,
            if p.config.adaptive { "" } else { " (fixed)" },
            esc(&p.reason),
            seen.requests,
            ms(seen.ttft_p95),
            slo(p.config.ttft_p95),
            seen.tpot_p95.map_or("–".into(), |s| format!("{:.1} ms", s * 1e3)),
            slo(p.config.tpot_p95),
            ms(seen.latency_p95),
            e.waiting.map_or("–".into(), |w| format!("{w:.0}")),
            e.kv_cache.map_or("–".into(), |k| format!("{:.0}%", k * 100.0)),
        );
    }
    h.push_str("</table><h2>Live batches</h2>");
    match live(gw).await {
        Err(e) => {
            let _ = write!(
                h,
                "<div class=empty>the store cannot be read: {}</div>",
                esc(&e)
            );
        }
        Ok(list) if list.is_empty() => {
            h.push_str("<div class=empty>No live batches. Create one with POST /v1/files (purpose=batch), then POST /v1/batches.</div>");
        }
        Ok(list) => {
            h.push_str("<table><tr><th>batch</th><th>status</th><th>progress</th><th>done</th><th>failed</th><th>total</th><th>lines/s</th><th>ETA</th><th>on</th><th>endpoint</th></tr>");
            for b in list {
                let on = b
                    .upstreams
                    .iter()
                    .filter_map(|&i| gw.upstreams.get(i))
                    .map(|u| esc(u.upstream.url.split("://").last().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("<br>");
                let x = &b.batch;
                let total = x.total.max(1) as f64;
                let ok = 100.0 * x.completed as f64 / total;
                let bad = 100.0 * x.failed as f64 / total;
                let _ = write!(
                    h,
                    "<tr><td><code>{}</code></td><td><span class=\"s {}\">{}</span></td><td class=nw><span class=bar><i style=\"width:{ok:.1}%;float:left\"></i><i class=f style=\"width:{bad:.1}%;float:left\"></i></span> {:.0}%</td><td class=n>{}</td><td class=\"n{}\">{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&x.id),
                    x.status.as_str(),
                    x.status.as_str(),
                    ok + bad,
                    x.completed,
                    if x.failed > 0 { " bad" } else { "" },
                    x.failed,
                    x.total,
                    b.lines_per_s.map_or("–".into(), |r| format!("{r:.1}")),
                    b.eta_s.map_or("–".into(), duration),
                    if on.is_empty() { "–".into() } else { on },
                    esc(&x.endpoint),
                );
            }
            h.push_str("</table>");
        }
    }
    h.push_str("<h2>Finished recently</h2>");
    let store = Arc::clone(&gw.store);
    let recent = match tokio::task::spawn_blocking(move || store.recent_batches(RECENT)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match recent {
        Ok(list) if list.is_empty() => {
            h.push_str("<div class=empty>No batch has ended yet.</div>");
        }
        Ok(list) => {
            h.push_str("<table><tr><th>batch</th><th>status</th><th>done</th><th>failed</th><th>total</th><th>took</th><th>lines/s</th><th>ended</th><th>endpoint</th></tr>");
            let now = crate::store::now_s();
            for x in list {
                let at = |s: Status| x.times.iter().find(|(t, _)| *t == s).map(|(_, at)| *at);
                let ended = [
                    Status::Completed,
                    Status::Failed,
                    Status::Cancelled,
                    Status::Expired,
                ]
                .into_iter()
                .find_map(at);
                let began = at(Status::InProgress).unwrap_or(x.created_at);
                // Seconds are the store's resolution: a rate over less than one is not shown.
                let took = ended.map(|e| (e - began).max(0));
                let rate = took
                    .filter(|&t| t >= 1)
                    .map(|t| (x.completed + x.failed) as f64 / t as f64);
                let _ = write!(
                    h,
                    "<tr><td><code>{}</code></td><td><span class=\"s {}\">{}</span></td><td class=n>{}</td><td class=\"n{}\">{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>",
                    esc(&x.id),
                    x.status.as_str(),
                    x.status.as_str(),
                    x.completed,
                    if x.failed > 0 { " bad" } else { "" },
                    x.failed,
                    x.total,
                    took.map_or("–".into(), |t| if t < 1 { "< 1 s".into() } else { duration(t as f64) }),
                    rate.map_or("–".into(), |r| format!("{r:.1}")),
                    ended.map_or("–".into(), |e| format!("{} ago", duration((now - e).max(0) as f64))),
                    esc(&x.endpoint),
                );
            }
            h.push_str("</table>");
        }
        Err(e) => {
            let _ = write!(
                h,
                "<div class=empty>the store cannot be read: {}</div>",
                esc(&e)
            );
        }
    }
    h.push_str("<p class=sub>Machine-readable: <a href=\"/metrics\">/metrics</a> (Prometheus), GET /v1/batches.</p></body></html>");
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(
            http_body_util::Full::new(bytes::Bytes::from(h))
                .map_err(|e| match e {})
                .boxed(),
        )
        .expect("valid response")
}
