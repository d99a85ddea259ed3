//! The batch worker of one upstream: claims a live batch from the store, runs its pending lines
//! through strobe's batch runner (one offline class of the experiment layer, its concurrency
//! steered by the policy), and finalizes it.
//!
//! With several upstreams, one that has no batch of its own helps with one this gateway runs on
//! another: both draw the batch's lines from one pool ([`strobe_batch::BatchJob::share`]), each
//! at the concurrency its own policy allows, so a single large batch uses every upstream and a
//! faster one takes more lines. The upstream that claimed the batch keeps its lease and
//! finalizes it once its helpers are done; a cancel, the window's end or a lost lease stops them
//! all.
//!
//! Every result is in the store before it counts (the runner's [`strobe_batch::BatchJob`] writes
//! through [`crate::BatchSink`]), so a gateway killed at any point loses nothing: the lease lapses
//! (or the same worker id claims it at once on restart), the batch is claimed again, and only
//! lines without a result are sent. A line that was in flight at the crash may reach the engine
//! twice; its result is stored once (the store keeps one result per `custom_id`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use strobe_experiment::draft::{ClassDraft, ScheduleKind};
use strobe_experiment::{Experiment, ExperimentOptions, Outputs, Session, Shutdown, Silent};

use crate::server::{Gateway, UpstreamState};
use crate::store::{now_s, Batch, Status};
use crate::BatchSink;

/// How long a claim holds a batch without renewal.
pub const LEASE_MS: i64 = 30_000;
const RENEW_EVERY: Duration = Duration::from_secs(5);
const IDLE_POLL: Duration = Duration::from_millis(300);

/// The batches one gateway runs now, by id.
#[derive(Default)]
pub struct Shareable(Mutex<HashMap<String, Arc<Shared>>>);

/// A batch being run, as its helpers see it.
pub(crate) struct Shared {
    batch: Batch,
    job: strobe_batch::JobHandle,
    /// The claiming upstream's run's stop: it stops the helpers too.
    stop: Shutdown,
    /// Helpers running now.
    helpers: watch::Sender<usize>,
}

/// A helper's place on a batch; leaving (dropping it) tells the claiming upstream.
struct Helping(Arc<Shared>);

impl Drop for Helping {
    fn drop(&mut self) {
        self.0.helpers.send_modify(|n| *n -= 1);
    }
}

impl Shareable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Shared>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running batch with the most lines nobody has drawn yet, if any has one.
    fn help(&self) -> Option<Helping> {
        let map = self.lock();
        let s = map
            .values()
            .filter(|s| s.job.0.undrawn() > 0 && !s.stop.is_requested())
            .max_by_key(|s| s.job.0.undrawn())?;
        // Counted under the lock the claiming upstream takes to end the batch's sharing.
        s.helpers.send_modify(|n| *n += 1);
        Some(Helping(Arc::clone(s)))
    }
}

/// Runs batches on `up` until `stop` is requested.
pub async fn run(gw: Arc<Gateway>, up: Arc<UpstreamState>, stop: Arc<Shutdown>) {
    let worker = format!("{}#{}", gw.config.worker_id, up.index);
    while !stop.is_requested() {
        let store = Arc::clone(&gw.store);
        let w = worker.clone();
        let claimed = tokio::task::spawn_blocking(move || store.claim(&w, LEASE_MS)).await;
        let batch = match claimed {
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) => {
                if let Some(h) = gw.shareable.help() {
                    if let Err(e) = help(&gw, &up, h).await {
                        gw.log(&e);
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    continue;
                }
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            Ok(Err(e)) => {
                gw.log(&format!("cannot claim a batch: {e}"));
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(e) => {
                gw.log(&format!("claiming panicked: {e}"));
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(e) = process(&gw, &up, &worker, batch, &stop).await {
            gw.log(&e);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("a store call panicked: {e}")),
    }
}

/// Ends `batch` in `status`, writing its output and error files.
async fn finish(gw: &Arc<Gateway>, id: &str, status: Status) -> Result<(), String> {
    let store = Arc::clone(&gw.store);
    let id2 = id.to_owned();
    if status == Status::Completed {
        let s = Arc::clone(&store);
        let i = id2.clone();
        blocking(move || s.set_status(&i, Status::Finalizing, None)).await?;
    }
    let b = blocking(move || store.finalize(&id2, status)).await?;
    gw.log(&format!(
        "batch {} {}: {} completed, {} failed of {}",
        b.id,
        b.status.as_str(),
        b.completed,
        b.failed,
        b.total
    ));
    Ok(())
}

async fn process(
    gw: &Arc<Gateway>,
    up: &Arc<UpstreamState>,
    worker: &str,
    batch: Batch,
    stop: &Arc<Shutdown>,
) -> Result<(), String> {
    let id = batch.id.clone();
    match batch.status {
        Status::Cancelling => return finish(gw, &id, Status::Cancelled).await,
        Status::Finalizing => return finish(gw, &id, Status::Completed).await,
        _ if now_s() >= batch.expires_at => return finish(gw, &id, Status::Expired).await,
        Status::Validating => {
            let store = Arc::clone(&gw.store);
            let i = id.clone();
            blocking(move || store.set_status(&i, Status::InProgress, None)).await?;
        }
        _ => {}
    }
    let store = Arc::clone(&gw.store);
    let (owner, file) = (batch.owner.clone(), batch.input_file_id.clone());
    let content = blocking(move || store.file_content(&owner, &file))
        .await?
        .ok_or_else(|| format!("batch {id}: its input file {} is gone", batch.input_file_id))?;
    let limits = strobe_batch::Limits {
        max_lines: usize::MAX,
        ..Default::default()
    };
    let path = std::path::PathBuf::from(&batch.input_file_id);
    let mut lines = match strobe_batch::input::parse(&path, &content, limits) {
        Ok(l) => l,
        Err(e) => {
            // Checked at upload: only an edited store gets here.
            let store = Arc::clone(&gw.store);
            let (i, m) = (id.clone(), e.to_string());
            blocking(move || store.set_status(&i, Status::Failed, Some(&m))).await?;
            return Ok(());
        }
    };
    if let Some(p) = gw.config.batch_priority {
        for l in &mut lines {
            l.body
                .entry("priority")
                .or_insert_with(|| serde_json::json!(p));
        }
    }
    let store = Arc::clone(&gw.store);
    let i = id.clone();
    let sink = blocking(move || BatchSink::open(store, &i)).await?;
    let (succeeded, failed) = strobe_batch::BatchStore::counts(&sink);
    let recovered = strobe_batch::Recovered {
        succeeded,
        failed,
        ..Default::default()
    };
    let job = strobe_batch::JobHandle(Arc::new(strobe_batch::BatchJob::new(
        lines,
        Box::new(sink),
        recovered,
    )));
    let pending = job.0.pending();
    up.started(&batch, succeeded + failed);
    let sent = if pending > 0 {
        run_lines(gw, up, worker, &batch, job.clone(), stop).await
    } else {
        Ok(())
    };
    up.finished();
    sent?;
    if let Some(e) = job.0.failure() {
        return Err(format!("batch {id}: storing results failed: {e}"));
    }
    if stop.is_requested() {
        return Ok(());
    }
    let store = Arc::clone(&gw.store);
    let i = id.clone();
    let now = blocking(move || store.get(&i)).await?;
    let Some(now) = now else { return Ok(()) };
    let done = now.completed + now.failed;
    match now.status {
        Status::Cancelling => finish(gw, &id, Status::Cancelled).await,
        _ if done >= now.total => finish(gw, &id, Status::Completed).await,
        _ if now_s() >= now.expires_at => finish(gw, &id, Status::Expired).await,
        // Lines left (the run was aborted: the engine unreachable, say): claimed again later.
        _ => Err(format!(
            "batch {id}: {} of {} lines have results; the rest are sent again shortly",
            done, now.total
        )),
    }
}

/// One offline class sending a share of `job`'s lines to `up`, until the pool is empty or
/// `run_stop` is requested.
async fn send_share(
    gw: &Arc<Gateway>,
    up: &Arc<UpstreamState>,
    id: &str,
    job: &strobe_batch::JobHandle,
    run_stop: &Shutdown,
) -> Result<(), String> {
    if job.0.undrawn() == 0 {
        return Ok(());
    }
    let share = strobe_batch::JobHandle(Arc::new(job.0.share()));
    let spec = up.target_spec(&gw.config);
    let session = Session::open(spec, run_stop, &mut Silent)
        .await
        .map_err(|e| format!("batch {id}: upstream {}: {e}", up.upstream.url))?;
    let mut draft = ClassDraft::new("batch");
    draft.schedule = Some(ScheduleKind::Offline);
    draft.max_concurrency = Some(gw.config.policy.max.max(1));
    draft.requests = Some(share.0.pending());
    draft.batch = Some(share);
    draft.steer = Some(up.steer.clone());
    draft.retry = strobe_load::Retry {
        max_attempts: gw.config.max_attempts,
        backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(30),
    };
    draft.abort = strobe_load::AbortRules {
        unreachable_for: Some(Duration::from_secs(60)),
        max_failures: None,
    };
    draft.ignore_eos = false;
    let result = match draft.resolve(0) {
        // Every line was drawn between the look and the share: nothing to send.
        Err(_) if job.0.undrawn() == 0 => Ok(()),
        Err(e) => Err(format!("batch {id}: {} {}", e.flag(), e.message)),
        Ok((class, workload)) => {
            let options = ExperimentOptions {
                drain_timeout: Duration::from_secs(30),
                abort_after_failures: 0,
                price: None,
                outputs: Outputs::default(),
                reset_prefix_cache: false,
                restart: true,
            };
            let exp = Experiment::single("batch", id, vec![(class, workload)], options);
            match strobe_experiment::run(&session, &exp, run_stop, &mut Silent).await {
                Ok(_) => Ok(()),
                Err(strobe_experiment::ExperimentError::Interrupted { .. }) => Ok(()),
                Err(e) => Err(format!("batch {id}: {e}")),
            }
        }
    };
    session.close().await;
    result
}

/// Helps with a batch another upstream of this gateway runs.
async fn help(gw: &Arc<Gateway>, up: &Arc<UpstreamState>, h: Helping) -> Result<(), String> {
    let s = Arc::clone(&h.0);
    let (done, failed) = s.job.0.counts();
    up.started(&s.batch, done + failed);
    let r = send_share(gw, up, &s.batch.id, &s.job, &s.stop).await;
    up.finished();
    drop(h);
    r
}

/// Sends the job's pending lines to the upstream (and to this gateway's idle upstreams that
/// help), renewing the lease and watching for a cancel or the window's end, which stop the run
/// (lines not yet done stay pending).
async fn run_lines(
    gw: &Arc<Gateway>,
    up: &Arc<UpstreamState>,
    worker: &str,
    batch: &Batch,
    job: strobe_batch::JobHandle,
    stop: &Arc<Shutdown>,
) -> Result<(), String> {
    let id = batch.id.as_str();
    let run_stop = Shutdown::new();
    let (helpers, mut helping) = watch::channel(0usize);
    gw.shareable.lock().insert(
        id.to_owned(),
        Arc::new(Shared {
            batch: batch.clone(),
            job: job.clone(),
            stop: run_stop.clone(),
            helpers,
        }),
    );
    let watch = {
        let (gw, stop, run_stop) = (Arc::clone(gw), Arc::clone(stop), run_stop.clone());
        let (worker, id) = (worker.to_owned(), id.to_owned());
        tokio::spawn(async move {
            let mut last_renew = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if stop.is_requested() {
                    run_stop.request();
                    return;
                }
                let store = Arc::clone(&gw.store);
                let i = id.clone();
                if let Ok(Some(b)) = blocking(move || store.get(&i)).await {
                    if b.status == Status::Cancelling || now_s() >= b.expires_at {
                        run_stop.request();
                        return;
                    }
                }
                if last_renew.elapsed() >= RENEW_EVERY {
                    last_renew = Instant::now();
                    let store = Arc::clone(&gw.store);
                    let (w, i) = (worker.clone(), id.clone());
                    if let Ok(false) = blocking(move || store.renew(&w, &i, LEASE_MS)).await {
                        gw.log(&format!(
                            "batch {id}: the lease went to another gateway; stopping here"
                        ));
                        run_stop.request();
                        return;
                    }
                }
            }
        })
    };
    let result = send_share(gw, up, id, &job, &run_stop).await;
    // No helper joins from here on; those helping finish their lines (the lease is renewed
    // meanwhile) before the batch is counted and finalized.
    gw.shareable.lock().remove(id);
    let _ = helping.wait_for(|n| *n == 0).await;
    watch.abort();
    result
}
