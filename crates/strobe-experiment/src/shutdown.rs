//! One process-wide shutdown, listening from the first instant: SIGINT, SIGTERM (what `timeout`,
//! CI runners and job schedulers send) and SIGHUP all ask for it. Every stage waits on it: the
//! engine's start, the pre-run checks, building workloads, each run (which then drains its
//! in-flight requests and still writes its outputs) and the gaps between runs.

use strobe_load::{StopSignal, StopState, Stopper};

/// A cloneable handle on the process's stop request.
#[derive(Clone)]
pub struct Shutdown {
    stopper: Stopper,
    signal: StopSignal,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (stopper, signal) = Stopper::new();
        Shutdown { stopper, signal }
    }

    /// The first request drains the current run; a second cancels its in-flight requests.
    pub fn request(&self) {
        self.stopper.request_stop();
    }

    pub fn is_requested(&self) -> bool {
        self.signal.stopped()
    }

    pub fn state(&self) -> StopState {
        self.signal.state()
    }

    /// What the schedule core waits on.
    pub fn signal(&self) -> StopSignal {
        self.signal.clone()
    }

    /// Resolves once a stop is requested.
    pub async fn wait(&self) {
        self.signal.clone().wait().await
    }

    /// Turns SIGINT, SIGTERM and SIGHUP into stop requests, telling `notify` which signal came
    /// and what it does now. Call it once, first thing, on the runtime.
    pub fn listen_for_signals(
        &self,
        notify: impl Fn(&'static str, StopState) + Send + 'static,
    ) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = int.recv() => "SIGINT",
                    Some(()) = term.recv() => "SIGTERM",
                    Some(()) = hup.recv() => "SIGHUP",
                    else => break,
                };
                this.request();
                notify(name, this.state());
            }
        });
        Ok(())
    }
}
