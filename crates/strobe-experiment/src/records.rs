//! The records thread: aggregates records into per-class statistics as they arrive, appends
//! each to the run's records file and hands a batch class's final results to its store,
//! flushing (and committing the store) whenever the channel is momentarily empty, so that
//! records already measured survive a crash.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use strobe_batch::BatchJob;
use strobe_core::{ClassId, Outcome, RequestRecord};
use strobe_metrics::ClassSets;
use tokio::sync::mpsc;

pub(crate) struct Collected {
    pub sets: ClassSets,
    /// The first message of each failure kind.
    pub error_examples: BTreeMap<String, String>,
    /// Why writing the records file stopped, if it did.
    pub records_error: Option<String>,
}

pub(crate) type RecordsFile = std::io::BufWriter<std::fs::File>;

pub(crate) fn spawn(
    mut rx: mpsc::Receiver<RequestRecord>,
    mut file: Option<RecordsFile>,
    sets: ClassSets,
    jobs: BTreeMap<ClassId, Arc<BatchJob>>,
) -> std::io::Result<std::thread::JoinHandle<Collected>> {
    std::thread::Builder::new()
        .name("strobe-records".into())
        .spawn(move || {
            let mut c = Collected {
                sets,
                error_examples: BTreeMap::new(),
                records_error: None,
            };
            let write =
                |file: &mut Option<RecordsFile>, r: &RequestRecord, err: &mut Option<String>| {
                    if let Some(f) = file.as_mut() {
                        if let Err(e) = f.write_all(&strobe_report::records::line(r)) {
                            *err = Some(e.to_string());
                            *file = None;
                        }
                    }
                };
            while let Some(record) = rx.blocking_recv() {
                let mut next = Some(record);
                while let Some(r) = next {
                    c.sets.add(&r);
                    if let Outcome::Failed { kind, message } = &r.outcome {
                        c.error_examples
                            .entry(kind.label())
                            .or_insert_with(|| message.clone());
                    }
                    write(&mut file, &r, &mut c.records_error);
                    if let Some(job) = jobs.get(&r.class) {
                        job.record(&r);
                    }
                    next = rx.try_recv().ok();
                }
                // Batch results first (written and synced), then the records.
                for job in jobs.values() {
                    job.commit();
                }
                // Nothing waiting: put what we have on disk.
                if let Some(f) = file.as_mut() {
                    if let Err(e) = f.flush() {
                        c.records_error = Some(e.to_string());
                        file = None;
                    }
                }
            }
            c
        })
}
