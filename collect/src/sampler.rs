//! The sampler: one dedicated OS thread that owns the [`Collector`] and takes a sample every
//! interval, publishing the latest on a `watch` channel. RPC handlers only read that channel;
//! they never touch the OS, so a slow collection can delay the next sample but never a reply.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use smon_proto::{HostInfo, Parts, Snapshot};
use tokio::sync::{oneshot, watch};

use crate::collector::{Collector, DetailDemand, with_parts};
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

/// A view of the samples with a fresh process list every period, for a history of the top
/// processes kept beside the sampler (the aggregator's own host, the agent's single-host
/// view): when one is due it asks the collector for a full scan and takes the first sample
/// whose list was read with it. The first is at a random point of the first period
/// ([`first_due`]), so that hosts started together scan at different seconds.
#[derive(Debug)]
pub struct PeriodicScan {
    every: Duration,
    parts: Parts,
    scan: DetailDemand,
    fresh_within_ms: u64,
    due: tokio::time::Instant,
}

/// When the first of a periodic fetch or scan is due, after `every` at the latest: a random
/// point of the first period, then one period apart (10,000 hosts asked each minute spread
/// over its seconds).
pub fn first_due(every: Duration, rng: &mut impl rand::Rng) -> Duration {
    every.mul_f64(rng.random::<f64>())
}

impl PeriodicScan {
    /// Every `every`, the view with `parts` of a sample with a fresh process list, scanned on
    /// request through `scan` (the collector's [`DetailDemand`]) by a sampler taking a sample
    /// every `interval`; the first after `first`.
    pub fn new(
        every: Duration,
        first: Duration,
        parts: Parts,
        scan: DetailDemand,
        interval: Duration,
    ) -> Self {
        Self {
            every,
            parts,
            scan,
            // As the agent judges it: a list read with the sample, not carried over.
            fresh_within_ms: (interval.as_millis() as u64 / 2).max(50),
            due: tokio::time::Instant::now() + first,
        }
    }

    /// Called with each new sample: the view when one is due and `sample` has a fresh list
    /// (until then every sample asks for a full scan).
    pub fn poll(&mut self, sample: &Sample) -> Option<Snapshot> {
        if tokio::time::Instant::now() < self.due {
            return None;
        }
        // Keeps full scans going until a fresh list comes.
        self.scan.mark();
        let age = sample
            .full
            .sample_unix_ms
            .saturating_sub(sample.full.processes_unix_ms);
        if age >= self.fresh_within_ms {
            return None;
        }
        self.due += self.every;
        Some(sample.view(self.parts))
    }
}

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

    /// A sample taken at `at_ms` whose process list was read at `list_ms`.
    fn sample(at_ms: u64, list_ms: u64) -> Sample {
        let full = Snapshot {
            sample_unix_ms: at_ms,
            processes_unix_ms: list_ms,
            ..Snapshot::default()
        };
        Sample {
            summary: full.clone(),
            full,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_periodic_scan_asks_for_a_list_when_due_and_takes_the_first_fresh_one() {
        let demand = DetailDemand::default();
        let every = Duration::from_secs(60);
        let parts = Parts {
            top_processes: 10,
            ..Parts::SUMMARY
        };
        let first = Duration::from_secs(20);
        let mut scan =
            PeriodicScan::new(every, first, parts, demand.clone(), Duration::from_secs(1));
        assert!(scan.poll(&sample(1_000, 1_000)).is_none(), "not due yet");
        assert!(
            !demand.recent(Duration::from_secs(3600)),
            "no scan asked for"
        );
        tokio::time::advance(first).await;
        // Due: a stale list (read 2 s before the sample) is not taken, but a scan is asked.
        assert!(scan.poll(&sample(10_000, 8_000)).is_none());
        assert!(
            demand.recent(Duration::from_secs(1)),
            "a full scan was asked for"
        );
        let got = scan.poll(&sample(11_000, 10_900)).expect("fresh: taken");
        assert_eq!(got.sample_unix_ms, 11_000);
        // Taken once a period: not again until the next one.
        assert!(scan.poll(&sample(12_000, 11_950)).is_none());
        tokio::time::advance(every - Duration::from_secs(1)).await;
        assert!(scan.poll(&sample(13_000, 12_950)).is_none(), "not yet due");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(scan.poll(&sample(14_000, 13_950)).is_some(), "due again");
    }

    #[test]
    fn first_dues_spread_over_the_period() {
        use rand::SeedableRng as _;
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let every = Duration::from_secs(60);
        let firsts: Vec<_> = (0..10_000)
            .map(|_| first_due(every, &mut rng).as_secs())
            .collect();
        assert!(firsts.iter().all(|s| *s < 60));
        let mut per_second = [0u32; 60];
        for s in &firsts {
            per_second[*s as usize] += 1;
        }
        // 10,000 hosts: about 167 a second, none of the 60 seconds much above it.
        assert!(
            per_second.iter().all(|n| (100..=250).contains(n)),
            "{per_second:?}"
        );
    }
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
            programs: None,
            containers: None,
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
