//! The GPU thread: it owns the [`GpuSource`], opens it (retrying with backoff while the
//! driver is missing), reads it every interval and keeps the latest reading. The sampler only
//! takes that reading and its age, so a call stuck in a wedged driver (uninterruptible sleep,
//! no deadline possible) stops GPU values alone: the sample carries "NVML not answering for
//! N s" while CPU, memory and disks flow. The same pattern as `statvfs` on dead NFS mounts.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smon_proto::Gpu;

use super::read::Reader;
use super::xid::XidLog;
use super::{CallError, GpuError, GpuSource};
use crate::collector::{DETAIL_LINGER, DetailDemand, QUIET_SCAN_EVERY};
use crate::error::CollectError;

/// Longest wait between two attempts to open the driver.
const RETRY_CAP: Duration = Duration::from_secs(60);

/// A reading in flight for longer than this (and three intervals) counts as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(3);

/// One reading of every GPU.
#[derive(Debug, Clone)]
pub struct GpuReading {
    /// The GPUs, failed ones included with their error.
    pub gpus: Vec<Gpu>,
    /// One line per GPU and field that failed, e.g. "gpus: GPU 1: device: NoPermission...".
    pub faults: Vec<String>,
    /// When it was taken.
    pub unix_ms: u64,
}

/// What a sample gets from the GPU thread.
#[derive(Debug, Clone, Default)]
pub struct Taken {
    /// The GPUs (identity only while NVML is not answering).
    pub gpus: Vec<Gpu>,
    /// Problems to put in the snapshot's errors.
    pub errors: Vec<String>,
    /// When the GPU values were read (0: never).
    pub unix_ms: u64,
}

/// What `HostInfo` says about GPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuFacts {
    /// The source is open.
    pub open: bool,
    /// Names in index order.
    pub names: Vec<String>,
    /// Why GPUs are not reported (empty when open, and when there is no NVIDIA library at
    /// all: a host without GPUs is not an error).
    pub status: String,
    /// The driver's version while open (empty otherwise).
    pub driver_version: String,
    /// The newest CUDA version the driver supports, while open (empty otherwise).
    pub cuda_version: String,
    /// Bumps whenever the above changes.
    pub generation: u64,
}

#[derive(Debug, Default)]
struct State {
    latest: Option<Arc<GpuReading>>,
    busy_since: Option<Instant>,
    facts: GpuFacts,
    /// The status is a problem worth an error line in every sample.
    status_is_error: bool,
    first_done: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    first: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic on the GPU thread leaves the data as it was: still worth reading.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handle on the GPU thread. Dropping it asks the thread to stop; a thread stuck in the driver
/// is left behind rather than holding anything up.
#[derive(Debug)]
pub struct GpuWorker {
    kind: &'static str,
    shared: Arc<Shared>,
    stuck_after: Duration,
    _stop: mpsc::Sender<()>,
    _handle: JoinHandle<()>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl GpuWorker {
    /// Starts the thread on `src`, reading every `interval`; processes are listed while
    /// `demand` is recent (and every 10 s otherwise, as the process table is).
    pub fn start(
        src: Box<dyn GpuSource>,
        interval: Duration,
        demand: DetailDemand,
    ) -> Result<Self, CollectError> {
        let shared = Arc::new(Shared::default());
        let (stop_tx, stop_rx) = mpsc::channel();
        let kind = src.kind();
        let sh = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("smon-gpus".into())
            .spawn(move || run(src, interval, demand, &sh, &stop_rx))
            .map_err(|error| CollectError::Thread {
                area: "gpus",
                thread: "GPU",
                error,
            })?;
        Ok(Self {
            kind,
            shared,
            stuck_after: STUCK_AFTER.max(interval * 3),
            _stop: stop_tx,
            _handle: handle,
        })
    }

    /// The source's kind (`nvml`, `fake`).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Waits until the first attempt to open and read the source is over, at most `timeout`
    /// (so the first `HostInfo` names the GPUs, and a hung driver does not hold up start-up).
    pub fn wait_first(&self, timeout: Duration) {
        let st = self.shared.lock();
        let _ = self
            .shared
            .first
            .wait_timeout_while(st, timeout, |s| !s.first_done);
    }

    /// What `HostInfo` says about GPUs now.
    pub fn facts(&self) -> GpuFacts {
        self.shared.lock().facts.clone()
    }

    /// The latest reading for a sample taken `now`.
    pub fn take(&self, now: Instant) -> Taken {
        let st = self.shared.lock();
        let mut out = Taken::default();
        if st.status_is_error {
            out.errors.push(format!("gpus: {}", st.facts.status));
        }
        let Some(latest) = st.latest.as_ref() else {
            if let Some(since) = st
                .busy_since
                .filter(|s| now.duration_since(*s) > self.stuck_after)
            {
                let secs = now.duration_since(since).as_secs();
                out.errors
                    .push(format!("gpus: {}", GpuError::NotAnswering(secs)));
            }
            return out;
        };
        out.unix_ms = latest.unix_ms;
        match st.busy_since {
            Some(since) if now.duration_since(since) > self.stuck_after => {
                let secs = now.duration_since(since).as_secs();
                let why = GpuError::NotAnswering(secs).to_string();
                // Keep each GPU's place and identity; withhold values that are no longer
                // current rather than show them as live.
                out.gpus = latest
                    .gpus
                    .iter()
                    .map(|g| Gpu {
                        index: g.index,
                        uuid: g.uuid.clone(),
                        name: g.name.clone(),
                        pci_bus_id: g.pci_bus_id.clone(),
                        memory_total_bytes: g.memory_total_bytes,
                        mig_mode: g.mig_mode,
                        persistence_mode: g.persistence_mode,
                        // Events already seen stay true while the driver is stuck.
                        xid_errors: g.xid_errors,
                        last_xid: g.last_xid,
                        last_xid_unix_ms: g.last_xid_unix_ms,
                        error: why.clone(),
                        ..Gpu::default()
                    })
                    .collect();
                out.errors.push(format!("gpus: {why}"));
            }
            _ => {
                out.gpus.clone_from(&latest.gpus);
                out.errors.extend(latest.faults.iter().cloned());
            }
        }
        out
    }
}

/// Waits `d` or until asked to stop; true when asked.
fn stopped(stop: &mpsc::Receiver<()>, d: Duration) -> bool {
    !matches!(stop.recv_timeout(d), Err(mpsc::RecvTimeoutError::Timeout))
}

fn run(
    mut src: Box<dyn GpuSource>,
    interval: Duration,
    demand: DetailDemand,
    sh: &Shared,
    stop: &mpsc::Receiver<()>,
) {
    let retry_base = interval.max(Duration::from_millis(100));
    let mut retry = retry_base;
    let mut reader: Option<Reader> = None;
    let mut last_faults: BTreeSet<String> = BTreeSet::new();
    // GPUs seen with persistence mode off (by UUID): warned once, until it changes.
    let mut last_persistence_off = BTreeSet::<String>::new();
    let mut last_scan: Option<Instant> = None;
    // Kept across reopenings of the driver: counts never go back.
    let mut xids = XidLog::default();
    // The last reason the source did not open, logged once until it changes.
    let mut last_init_failure = String::new();
    let mut next = Instant::now();
    loop {
        let Some(r) = reader.as_mut() else {
            sh.lock().busy_since = Some(Instant::now());
            match src.init() {
                Ok(facts) => {
                    tracing::info!(source = src.kind(), driver = %facts.driver_version, "GPU source opened.");
                    if let Some(why) = facts.process_abi.problem() {
                        tracing::warn!(driver = %facts.driver_version, "GPU {why}.");
                    }
                    let mut st = sh.lock();
                    st.busy_since = None;
                    if st.facts.driver_version != facts.driver_version
                        || st.facts.cuda_version != facts.cuda_version
                    {
                        st.facts.driver_version.clone_from(&facts.driver_version);
                        st.facts.cuda_version.clone_from(&facts.cuda_version);
                        st.facts.generation += 1;
                    }
                    set_status(&mut st, true, String::new(), false);
                    drop(st);
                    last_init_failure.clear();
                    reader = Some(Reader::new(facts));
                    continue;
                }
                Err(e) => {
                    // No NVIDIA library at all: a host without GPUs, not a fault to show.
                    let is_error = !matches!(e, CallError::LibraryNotFound(_));
                    let text = format!(
                        "{} (retrying every {} s at most)",
                        GpuError::Init(e.clone()),
                        RETRY_CAP.as_secs()
                    );
                    let mut st = sh.lock();
                    st.busy_since = None;
                    let changed = last_init_failure != text;
                    last_init_failure.clone_from(&text);
                    let status = if is_error {
                        text.clone()
                    } else {
                        String::new()
                    };
                    set_status(&mut st, false, status, is_error);
                    st.latest = None;
                    mark_first(sh, &mut st);
                    drop(st);
                    if changed {
                        if is_error {
                            tracing::warn!(error = %e, retry_in_ms = retry.as_millis() as u64, "GPU source did not open; retrying with backoff.");
                        } else {
                            tracing::info!(reason = %e, "NVML is not available; GPUs will be reported once it is.");
                        }
                    }
                    if stopped(stop, retry) {
                        return;
                    }
                    retry = (retry * 2).min(RETRY_CAP);
                    continue;
                }
            }
        };
        let now = Instant::now();
        let want = demand.recent(DETAIL_LINGER)
            || last_scan.is_none_or(|t| now.duration_since(t) >= QUIET_SCAN_EVERY);
        sh.lock().busy_since = Some(now);
        let read = r.read(src.as_mut(), want);
        let mut st = sh.lock();
        st.busy_since = None;
        match read {
            Ok(mut reading) => {
                retry = retry_base;
                let news = src.xid_events();
                for e in &news.events {
                    tracing::warn!(
                        gpu = e.index,
                        xid = e.xid,
                        "GPU reported a critical Xid error (see NVIDIA's Xid table; 79: fallen off the bus, 48: double-bit ECC)."
                    );
                }
                xids.record(news);
                xids.apply(&mut reading.gpus);
                if want {
                    last_scan = Some(now);
                } else if let Some(prev) = st.latest.as_ref() {
                    // Between scans, the last lists stand (as the process table's do).
                    for g in &mut reading.gpus {
                        if let Some(p) = prev
                            .gpus
                            .iter()
                            .find(|p| p.uuid == g.uuid && p.index == g.index)
                        {
                            g.processes.clone_from(&p.processes);
                            for (mi, pi) in g.mig_instances.iter_mut().zip(&p.mig_instances) {
                                mi.processes.clone_from(&pi.processes);
                            }
                        }
                    }
                }
                let faults: BTreeSet<String> =
                    reading.faults.iter().map(ToString::to_string).collect();
                for f in faults.difference(&last_faults) {
                    tracing::warn!(error = %f, "GPU query failed.");
                }
                for f in last_faults.difference(&faults) {
                    tracing::info!(was = %f, "GPU query works again.");
                }
                last_faults = faults;
                let off: BTreeSet<String> = reading
                    .gpus
                    .iter()
                    .filter(|g| g.persistence_mode == Some(false))
                    .map(|g| format!("GPU {} ({})", g.index, g.uuid))
                    .collect();
                for g in off.difference(&last_persistence_off) {
                    tracing::warn!(
                        gpu = %g,
                        "Persistence mode is off: the driver unloads between clients, so each first call takes seconds. Turn it on with nvidia-persistenced (or `nvidia-smi -pm 1`)."
                    );
                }
                last_persistence_off = off;
                let names: Vec<String> = reading.gpus.iter().map(|g| g.name.clone()).collect();
                if names != st.facts.names {
                    st.facts.names = names;
                    st.facts.generation += 1;
                }
                st.latest = Some(Arc::new(GpuReading {
                    gpus: reading.gpus,
                    faults: last_faults.iter().cloned().collect(),
                    unix_ms: unix_ms(),
                }));
                mark_first(sh, &mut st);
            }
            Err(e) => {
                // The source as a whole failed (a driver unloaded or reloaded): open it again.
                tracing::warn!(error = %e, "GPU source failed; reopening it.");
                reader = None;
                st.latest = None;
                let text = GpuError::Count(e).to_string();
                set_status(&mut st, false, text, true);
                last_faults.clear();
                drop(st);
                // Back off: a driver that opens but cannot count its GPUs must not spin.
                if stopped(stop, retry) {
                    return;
                }
                retry = (retry * 2).min(RETRY_CAP);
                continue;
            }
        }
        drop(st);
        next += interval;
        let now = Instant::now();
        if next < now {
            next = now + interval;
        }
        if stopped(stop, next - now) {
            return;
        }
    }
}

fn set_status(st: &mut State, open: bool, status: String, is_error: bool) {
    if st.facts.open != open || st.facts.status != status {
        st.facts.open = open;
        st.facts.status = status;
        if !open {
            st.facts.names.clear();
            st.facts.driver_version.clear();
            st.facts.cuda_version.clear();
        }
        st.facts.generation += 1;
    }
    st.status_is_error = is_error;
}

fn mark_first(sh: &Shared, st: &mut State) {
    if !st.first_done {
        st.first_done = true;
        sh.first.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpus::{FakeFault, FakeGpus};

    fn worker(f: FakeGpus) -> GpuWorker {
        GpuWorker::start(
            Box::new(f),
            Duration::from_millis(50),
            DetailDemand::default(),
        )
        .expect("start")
    }

    #[test]
    fn a_late_driver_is_retried_and_then_reported() {
        let w = worker(FakeGpus::with_faults(
            2,
            vec![FakeFault::LateDriver { attempts: 2 }],
        ));
        w.wait_first(Duration::from_secs(2));
        let before = w.facts();
        assert!(!before.open);
        assert!(
            before.status.contains("DriverNotLoaded"),
            "{}",
            before.status
        );
        let t = w.take(Instant::now());
        assert!(t.gpus.is_empty());
        assert!(
            t.errors[0].starts_with("gpus: NVML did not start: DriverNotLoaded"),
            "{:?}",
            t.errors
        );
        // Two failures: retries after 50 and 100 ms.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !w.facts().open {
            assert!(Instant::now() < deadline, "never opened");
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = w.facts();
        assert!(after.generation > before.generation);
        assert!(after.status.is_empty());
        while w.take(Instant::now()).gpus.is_empty() {
            assert!(Instant::now() < deadline, "never read");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(w.facts().names.len(), 2);
        assert!(w.take(Instant::now()).errors.is_empty());
    }

    #[test]
    fn a_driver_that_goes_away_is_reopened_with_backoff() {
        let f = FakeGpus::with_faults(
            1,
            vec![FakeFault::DriverGone {
                from: 3,
                readings: 4,
            }],
        );
        let calls = f.calls();
        let w = worker(f);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut failed_at: Option<Instant> = None;
        loop {
            let t = w.take(Instant::now());
            if t.errors
                .iter()
                .any(|e| e.starts_with("gpus: cannot count GPUs: DriverNotLoaded"))
            {
                failed_at.get_or_insert_with(Instant::now);
                assert!(t.gpus.is_empty());
            } else if let Some(at) = failed_at
                && t.gpus.len() == 1
            {
                // Four failed readings, each followed by a wait (50, 100, 200, 400 ms) and a
                // reopen: back after about 750 ms, not at once.
                assert!(
                    at.elapsed() >= Duration::from_millis(500),
                    "{:?}",
                    at.elapsed()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never failed and came back: {t:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(w.facts().open);
        let n = calls.load(std::sync::atomic::Ordering::Relaxed);
        assert!(n < 200, "{n} calls: a spin, not a backoff");
    }

    #[test]
    fn an_xid_event_is_counted_on_its_gpu_with_its_code_and_time() {
        let before = unix_ms();
        let w = worker(FakeGpus::with_faults(
            3,
            vec![
                FakeFault::Xid {
                    index: 1,
                    code: 79,
                    at: 3,
                },
                FakeFault::NoPermission { index: 2 },
            ],
        ));
        w.wait_first(Duration::from_secs(2));
        let first = w.take(Instant::now());
        assert_eq!(first.gpus[1].xid_errors, Some(0), "watched, none yet");
        assert_eq!(first.gpus[2].xid_errors, None, "not watched");
        let deadline = Instant::now() + Duration::from_secs(5);
        let t = loop {
            let t = w.take(Instant::now());
            if t.gpus[1].xid_errors == Some(1) {
                break t;
            }
            assert!(Instant::now() < deadline, "never counted: {:?}", t.gpus[1]);
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(t.gpus[1].last_xid, Some(79));
        let at = t.gpus[1].last_xid_unix_ms.expect("time");
        assert!(at >= before && at <= unix_ms(), "{at}");
        assert_eq!(t.gpus[0].xid_errors, Some(0));
        assert_eq!(t.gpus[0].last_xid, None);
        // It arrives once: later readings keep the count at 1.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(w.take(Instant::now()).gpus[1].xid_errors, Some(1));
    }

    #[test]
    fn a_hung_call_is_reported_with_its_age_and_values_withheld() {
        let w = worker(FakeGpus::with_faults(
            2,
            vec![FakeFault::Hang {
                at: 3,
                duration: Duration::from_secs(4),
            }],
        ));
        w.wait_first(Duration::from_secs(2));
        assert_eq!(w.take(Instant::now()).gpus.len(), 2);
        // Pretend the sample is taken well after the hang began.
        std::thread::sleep(Duration::from_millis(300));
        let later = Instant::now() + Duration::from_secs(5);
        let t = w.take(later);
        let secs: u64 = t
            .errors
            .iter()
            .find_map(|e| e.strip_prefix("gpus: NVML not answering for "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{:?}", t.errors));
        assert!((5..7).contains(&secs), "{secs}");
        assert_eq!(t.gpus.len(), 2, "rows kept");
        assert!(t.gpus[1].utilization_percent.is_none() && !t.gpus[1].uuid.is_empty());
    }
}
