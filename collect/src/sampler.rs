//! The sampler: one dedicated OS thread that owns the [`Collector`] and takes a sample every
//! interval, publishing the latest on a `watch` channel. RPC handlers only read that channel;
//! they never touch the OS, so a slow collection can delay the next sample but never a reply.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use smon_proto::{HostInfo, Parts, Snapshot};
use tokio::sync::{oneshot, watch};

use crate::collector::{Collector, with_parts};
use crate::error::CollectError;

/// One sample, kept both whole and as the summary that most callers ask for (built once per
/// sample instead of once per request).
#[derive(Debug)]
pub struct Sample {
    /// Every part.
    pub full: Snapshot,
    /// Without the heavy parts.
    pub summary: Snapshot,
}

impl Sample {
    /// The sample with just `parts`.
    pub fn view(&self, parts: Parts) -> Snapshot {
        if parts == Parts::SUMMARY {
            self.summary.clone()
        } else if parts == Parts::DETAIL {
            self.full.clone()
        } else {
            with_parts(&self.full, parts)
        }
    }
}

/// The latest sample (`None` until the first one).
pub type Latest = watch::Receiver<Option<Arc<Sample>>>;

/// Handle on the sampler thread.
pub struct Sampler {
    info: watch::Receiver<HostInfo>,
    rx: Latest,
    stop_tx: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts the thread, which builds the collector with `make` and takes a sample every
    /// `interval`. Returns once the collector is built and the host facts are known, or with
    /// the reason it could not be built.
    pub async fn start<F>(interval: Duration, make: F) -> Result<Self, CollectError>
    where
        F: FnOnce() -> Result<Collector, CollectError> + Send + 'static,
    {
        let (tx, rx) = watch::channel(None);
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (info_tx, info_rx) = oneshot::channel();
        let handle = std::thread::Builder::new()
            .name("smon-sampler".into())
            .spawn(move || sampler_loop(interval, make, tx, stop_rx, info_tx))
            .map_err(|error| CollectError::Thread {
                area: "sampler",
                thread: "sampler",
                error,
            })?;
        let info = info_rx.await.map_err(|_| CollectError::SamplerStopped)??;
        Ok(Self {
            info,
            rx,
            stop_tx: Some(stop_tx),
            handle: Some(handle),
        })
    }

    /// Facts about the host, as they are now (they change when GPUs appear or go).
    pub fn info(&self) -> HostInfo {
        self.info.borrow().clone()
    }

    /// A receiver of the host facts, which change when GPUs appear or go (a driver loaded
    /// after the agent, a GPU fallen off the bus).
    pub fn info_watch(&self) -> watch::Receiver<HostInfo> {
        self.info.clone()
    }

    /// A receiver of the latest sample.
    pub fn subscribe(&self) -> Latest {
        self.rx.clone()
    }

    /// Stops the thread and waits for it (at most one second; a collector stuck in the kernel
    /// is left behind rather than holding up shutdown).
    pub async fn stop(mut self) {
        drop(self.stop_tx.take());
        if let Some(h) = self.handle.take() {
            let joined = tokio::task::spawn_blocking(move || h.join());
            if tokio::time::timeout(Duration::from_secs(1), joined)
                .await
                .is_err()
            {
                tracing::warn!("The sampler thread did not stop within 1 s; leaving it.");
            }
        }
    }
}

fn sampler_loop<F>(
    interval: Duration,
    make: F,
    tx: watch::Sender<Option<Arc<Sample>>>,
    stop: mpsc::Receiver<()>,
    info_tx: oneshot::Sender<Result<watch::Receiver<HostInfo>, CollectError>>,
) where
    F: FnOnce() -> Result<Collector, CollectError>,
{
    let mut collector = match make() {
        Ok(c) => c,
        Err(e) => {
            let _ = info_tx.send(Err(e));
            return;
        }
    };
    let (facts_tx, facts_rx) = watch::channel(collector.info());
    let _ = info_tx.send(Ok(facts_rx));
    // CPU usage is a difference between two refreshes at least this far apart.
    if !matches!(
        stop.recv_timeout(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL),
        Err(mpsc::RecvTimeoutError::Timeout)
    ) {
        return;
    }
    let mut seq = 0u64;
    let mut next = Instant::now();
    loop {
        seq += 1;
        // Before the sample, so a poller that sees its `info_unix_ms` move gets the new facts.
        if let Some(info) = collector.info_if_changed() {
            facts_tx.send_replace(info);
        }
        // A bug in one collector must not end sampling for good: log it and try next tick.
        let taken =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| collector.sample(seq)));
        match taken {
            Ok(full) => {
                let summary = with_parts(&full, Parts::SUMMARY);
                tx.send_replace(Some(Arc::new(Sample { full, summary })));
            }
            Err(_) => tracing::error!(seq, "A collector panicked; this sample is skipped."),
        }
        next += interval;
        let now = Instant::now();
        if next < now {
            // Collection took longer than the interval: skip the missed ticks, do not burst.
            next = now + interval;
        }
        match stop.recv_timeout(next - now) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::{CollectorConfig, DetailDemand, Roots};
    use crate::filters::{DiskFilter, NetworkFilter};
    use crate::redact::Redactor;

    fn config() -> CollectorConfig {
        CollectorConfig {
            roots: Roots::default(),
            redactor: Redactor::default(),
            disks: DiskFilter::default(),
            network: NetworkFilter::default(),
            gpus: None,
            interval: Duration::from_millis(100),
            demand: DetailDemand::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn samples_are_published_in_sequence_until_stopped() {
        let s = Sampler::start(Duration::from_millis(100), || Collector::new(config()))
            .await
            .expect("start");
        assert!(s.info().cpu_logical_cores >= 1);
        let mut rx = s.subscribe();
        let mut seqs = Vec::new();
        while seqs.len() < 2 {
            tokio::time::timeout(Duration::from_secs(5), rx.changed())
                .await
                .expect("a sample within 5 s")
                .expect("sender alive");
            let latest = rx.borrow_and_update().clone().expect("a sample");
            assert!(latest.summary.processes.is_empty());
            assert_eq!(latest.view(Parts::DETAIL), latest.full);
            seqs.push(latest.full.seq);
        }
        assert!(seqs[1] > seqs[0], "{seqs:?}");
        s.stop().await;
        assert!(
            rx.changed().await.is_err(),
            "the thread ended and dropped its sender"
        );
    }

    #[tokio::test]
    async fn a_collector_that_cannot_be_built_fails_the_start() {
        let err = Sampler::start(Duration::from_secs(1), || {
            Err(CollectError::Read {
                area: "processes",
                path: "/nowhere".into(),
                error: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
        })
        .await
        .err()
        .expect("refused");
        assert!(matches!(err, CollectError::Read { .. }), "{err}");
        assert!(
            err.to_string().starts_with("processes: /nowhere: "),
            "{err}"
        );
    }
}
