//! The collector: everything a daemon knows about its host, gathered into one [`Snapshot`].
//!
//! One [`Collector`] owns one `sysinfo::System` for the life of the daemon and refreshes only
//! what a snapshot needs (narrow refresh kinds). It is blocking and is driven by the sampler
//! thread; nothing here is async. It asks each resource module for its part; OS-specific
//! readers (disks, processes, utmp sessions) sit behind one name each, with stand-ins on other
//! systems. Problems come back as [`CollectError`]s and become the snapshot's `errors` text
//! here, in one place.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smon_proto::{Cpu, Disk, HostInfo, Parts, Process, Session, Snapshot};
use sysinfo::{Components, Networks, System, Users};
#[cfg(not(target_os = "linux"))]
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, UpdateKind};

use crate::error::CollectError;
use crate::filters::{DiskFilter, NetworkFilter};
use crate::gpus::{GpuSource, GpuWorker};
use crate::memory::percent;
use crate::redact::Redactor;
use crate::{cpu, memory, network, temperatures};
#[cfg(target_os = "linux")]
use crate::{disks, processes, sessions};

/// This host's name as the OS reports it (empty when unknown).
pub fn hostname() -> String {
    System::host_name().unwrap_or_default()
}

/// A host name as a store name: the first label, letters, digits, `-` and `_`, at most 63.
pub fn host_slug(hostname: &str) -> String {
    hostname
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .take(63)
        .collect()
}

/// Where OS files are read from; tests point these at fixtures.
#[derive(Debug, Clone)]
pub struct Roots {
    /// The proc filesystem (`/proc`).
    pub proc: PathBuf,
    /// The utmp file (`/var/run/utmp`).
    pub utmp: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            proc: PathBuf::from("/proc"),
            utmp: PathBuf::from("/var/run/utmp"),
        }
    }
}

/// Whether someone wants the process list: the gRPC service (and in-process viewers) mark it,
/// the collector reads it to decide between a full process scan and a cheap count.
#[derive(Debug, Clone, Default)]
pub struct DetailDemand(Arc<AtomicU64>);

impl DetailDemand {
    /// Records that process detail was asked for now.
    pub fn mark(&self) {
        self.0.store(unix_ms(SystemTime::now()), Ordering::Relaxed);
    }

    /// Whether detail was asked for within `window`.
    pub fn recent(&self, window: Duration) -> bool {
        let last = self.0.load(Ordering::Relaxed);
        last != 0 && unix_ms(SystemTime::now()).saturating_sub(last) <= window.as_millis() as u64
    }
}

/// Full process scans continue this long after the last request for processes.
pub(crate) const DETAIL_LINGER: Duration = Duration::from_secs(5);

/// Without requests, the process table is read this often (the count every sample).
pub(crate) const QUIET_SCAN_EVERY: Duration = Duration::from_secs(10);

/// What a collector is built from.
pub struct CollectorConfig {
    /// OS file roots.
    pub roots: Roots,
    /// Redaction rules for command lines.
    pub redactor: Redactor,
    /// Disk filters.
    pub disks: DiskFilter,
    /// Network filters.
    pub network: NetworkFilter,
    /// GPU source, if any: opened and read on its own thread ([`GpuWorker`]).
    pub gpus: Option<Box<dyn GpuSource>>,
    /// Sampling interval, reported in `HostInfo`.
    pub interval: Duration,
    /// Who wants the process list.
    pub demand: DetailDemand,
    /// supervisord's programs, read elsewhere (the agent's `control.supervisor`); `None`:
    /// the sample carries no `programs`.
    pub programs: Option<crate::ProgramsFeed>,
    /// Containers and services from the cgroups; `None`: the sample carries no `containers`
    /// and processes are not tagged.
    pub containers: Option<crate::ContainersConfig>,
}

#[cfg(target_os = "linux")]
type DiskState = disks::DiskCollector;
#[cfg(not(target_os = "linux"))]
type DiskState = sysinfo::Disks;

/// A redacted command line, kept while the process lives so it is redacted once.
#[cfg(not(target_os = "linux"))]
struct CachedCmd {
    start_time: u64,
    cmdline: String,
    seen: u64,
}

/// Collects snapshots. Keep one for the life of the agent.
pub struct Collector {
    cfg: CollectorConfig,
    sys: System,
    networks: network::Interfaces,
    /// When the CPU frequencies were last read ([`cpu::FREQUENCY_EVERY`]).
    frequency_read: Instant,
    components: Components,
    users: Users,
    users_refreshed: Instant,
    disks: DiskState,
    #[cfg(target_os = "linux")]
    procs: processes::ProcTable,
    #[cfg(not(target_os = "linux"))]
    cmd_cache: HashMap<Pid, CachedCmd>,
    user_names: HashMap<u32, String>,
    /// The process list of the last scan, carried by the quiet samples that follow it; `None`
    /// after a watched sample (whose list is not copied: the next sample is most likely
    /// watched too and scans again, and a quiet one after it scans once).
    last_procs: Option<Vec<Process>>,
    last_scan: Option<(Instant, u64)>,
    last_refresh: Instant,
    ticks: u64,
    boot_unix_ms: u64,
    gpus: Option<GpuWorker>,
    /// The GPU facts generation the last `info()` saw, and when `HostInfo` last changed.
    info_generation: u64,
    info_unix_ms: u64,
    containers: Option<crate::containers::ContainerCollector>,
}

/// How long start-up waits for the GPU thread's first reading (so the first `HostInfo` names
/// the GPUs); a driver that hangs longer is reported by the samples instead.
const GPU_FIRST_WAIT: Duration = Duration::from_secs(3);

/// The process fields refreshed every sample (platforms other than Linux): CPU and memory
/// always; user and command line only once per process. Threads and the environment never.
#[cfg(not(target_os = "linux"))]
fn process_kind() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing()
        .with_cpu()
        .with_memory()
        .with_user(UpdateKind::OnlyIfNotSet)
        .with_cmd(UpdateKind::OnlyIfNotSet)
        .without_tasks()
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Collector {
    /// Builds a collector and takes the first (baseline) refresh; CPU figures are meaningful
    /// from the first [`Collector::sample`] that follows at least
    /// `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` later.
    pub fn new(cfg: CollectorConfig) -> Result<Self, CollectError> {
        let sys_err = |what| move |error| CollectError::System { what, error };
        let mut sys = System::new().map_err(sys_err("read system information"))?;
        sys.refresh_cpu_specifics(cpu::refresh_kind(true));
        sys.refresh_memory_specifics(memory::refresh_kind());
        #[cfg(not(target_os = "linux"))]
        sys.refresh_processes_specifics(ProcessesToUpdate::All, true, process_kind());
        let mut networks = network::Interfaces::new(
            Networks::new_with_refreshed_list().map_err(sys_err("list network interfaces"))?,
            cfg.roots.proc.clone(),
        );
        // The counters' baseline: the first sample's rates are over the time since.
        networks.read(&cfg.network, 1.0);
        let components = Components::new_with_refreshed_list().map_err(sys_err("list sensors"))?;
        let users = Users::new_with_refreshed_list().map_err(sys_err("list users"))?;
        #[cfg(target_os = "linux")]
        let disks = disks::DiskCollector::new(cfg.roots.proc.clone(), cfg.disks.clone());
        #[cfg(not(target_os = "linux"))]
        let disks = sysinfo::Disks::new_with_refreshed_list().map_err(sys_err("list disks"))?;
        let boot_unix_ms = System::boot_time().map(|s| s * 1000).unwrap_or(0);
        let user_names = users
            .iter()
            .map(|u| (uid_of(u.id()), u.name().to_owned()))
            .collect();
        let mut cfg = cfg;
        let containers = cfg
            .containers
            .clone()
            .map(crate::containers::ContainerCollector::new);
        let gpus = match cfg.gpus.take() {
            Some(src) => {
                let w = GpuWorker::start(src, cfg.interval, cfg.demand.clone())?;
                w.wait_first(GPU_FIRST_WAIT);
                Some(w)
            }
            None => None,
        };
        let mut c = Self {
            gpus,
            info_generation: 0,
            info_unix_ms: 0,
            containers,
            #[cfg(target_os = "linux")]
            procs: processes::ProcTable::new(cfg.roots.proc.clone(), boot_unix_ms),
            #[cfg(not(target_os = "linux"))]
            cmd_cache: HashMap::new(),
            user_names,
            last_procs: None,
            last_scan: None,
            cfg,
            sys,
            networks,
            frequency_read: Instant::now(),
            components,
            users,
            users_refreshed: Instant::now(),
            disks,
            last_refresh: Instant::now(),
            ticks: 0,
            boot_unix_ms,
        };
        let mut ignored = Vec::new();
        c.collect_disks(&mut ignored);
        let mut procs = c.collect_processes(0, &mut ignored);
        c.last_scan = Some((Instant::now(), unix_ms(SystemTime::now())));
        if let Some(k) = c.containers.as_mut() {
            // The counters' baseline (the first sample's rates are over the time since), and
            // the processes' first tags (read from the walk's `cgroup.procs`).
            k.sample_tagging(1.0, &mut procs);
        }
        c.last_procs = Some(procs);
        Ok(c)
    }

    /// Static facts about the host.
    pub fn info(&mut self) -> HostInfo {
        let mut caps = vec![
            "cpu",
            "memory",
            "disks",
            "network",
            "processes",
            "temperatures",
        ];
        if cfg!(target_os = "linux") {
            caps.push("users");
        }
        if self.containers.is_some() {
            caps.push("containers");
        }
        let facts = self.gpus.as_ref().map(|w| (w.kind(), w.facts()));
        if let Some((_, f)) = &facts {
            self.info_generation = f.generation;
        }
        let (gpu_names, gpu_source, gpu_status, gpu_driver_version, cuda_driver_version) =
            match facts {
                Some((kind, f)) if f.open => {
                    caps.push("gpus");
                    (f.names, kind, f.status, f.driver_version, f.cuda_version)
                }
                Some((_, f)) => (Vec::new(), "none", f.status, String::new(), String::new()),
                None => (
                    Vec::new(),
                    "none",
                    String::new(),
                    String::new(),
                    String::new(),
                ),
            };
        let cpus = self.sys.cpus();
        HostInfo {
            hostname: System::host_name().unwrap_or_default(),
            os_name: System::name().unwrap_or_default(),
            os_version: System::os_version().unwrap_or_default(),
            kernel_version: System::kernel_version().unwrap_or_default(),
            arch: System::cpu_arch(),
            boot_unix_ms: self.boot_unix_ms,
            cpu_brand: cpus
                .first()
                .map(|c| c.brand().trim().to_owned())
                .unwrap_or_default(),
            cpu_logical_cores: cpus.len() as u32,
            cpu_physical_cores: System::physical_core_count().ok().map(|n| n as u32),
            memory_total_bytes: self.sys.total_memory(),
            swap_total_bytes: self.sys.total_swap(),
            gpu_names,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: caps.into_iter().map(str::to_owned).collect(),
            sample_interval_ms: self.cfg.interval.as_millis() as u32,
            gpu_source: gpu_source.to_owned(),
            gpu_status,
            gpu_driver_version,
            cuda_driver_version,
        }
    }

    /// The new `HostInfo` when the GPU facts changed since the last [`Collector::info`] (a
    /// driver loaded late, a GPU appeared or went); `None` otherwise.
    pub fn info_if_changed(&mut self) -> Option<HostInfo> {
        let generation = self.gpus.as_ref()?.facts().generation;
        if generation == self.info_generation {
            return None;
        }
        self.info_unix_ms = unix_ms(SystemTime::now());
        Some(self.info())
    }

    /// Takes one full sample (every part included) with sequence number `seq`.
    pub fn sample(&mut self, seq: u64) -> Snapshot {
        let started = Instant::now();
        self.ticks += 1;
        let mut errors = Vec::new();
        let elapsed = self.last_refresh.elapsed().as_secs_f64().max(1e-3);
        self.last_refresh = Instant::now();

        let frequency = self.frequency_read.elapsed() >= cpu::FREQUENCY_EVERY;
        if frequency {
            self.frequency_read = Instant::now();
        }
        self.sys.refresh_cpu_specifics(cpu::refresh_kind(frequency));
        self.sys.refresh_memory_specifics(memory::refresh_kind());
        #[cfg(not(target_os = "linux"))]
        self.sys
            .refresh_processes_specifics(ProcessesToUpdate::All, true, process_kind());
        self.components.refresh(false);

        let cpu = cpu::read(&self.sys);
        let memory = memory::read(&self.sys);
        let total = memory.total_bytes;
        let load = cpu::load();

        let networks = self.networks.read(&self.cfg.network, elapsed);
        let disks = self.collect_disks(&mut errors);
        let wanted = self.cfg.demand.recent(DETAIL_LINGER);
        let due = self
            .last_scan
            .is_none_or(|(t, _)| t.elapsed() >= QUIET_SCAN_EVERY);
        let scan = wanted || due || !cfg!(target_os = "linux");
        let carried = if scan { None } else { self.last_procs.clone() };
        let (processes, process_count) = match carried {
            Some(p) => (p, self.count_processes()),
            None => {
                let p = self.collect_processes(total, &mut errors);
                self.last_scan = Some((Instant::now(), unix_ms(SystemTime::now())));
                // Kept for the quiet samples only (a watched sample's is not copied).
                self.last_procs = (!wanted).then(|| p.clone());
                let n = p.len() as u32;
                (p, n)
            }
        };
        let processes_unix_ms = self.last_scan.map_or(0, |(_, ms)| ms);
        let sessions = self.collect_sessions(&mut errors);
        let temperatures = temperatures::read(&self.components);
        let (gpus, gpu_errors, gpus_unix_ms) = self.collect_gpus_with(&processes);
        let mut processes = processes;
        // The process table is read before the containers: at a walk, their `cgroup.procs`
        // files list every process of the table (see `sample_tagging`).
        let containers = self
            .containers
            .as_mut()
            .map(|c| c.sample_tagging(elapsed, &mut processes));
        let programs = self.cfg.programs.as_ref().map(|f| {
            let mut programs = f.read();
            crate::programs::mark(&mut processes, &programs.programs);
            crate::programs::sum(&processes, &mut programs.programs);
            programs
        });

        Snapshot {
            seq,
            sample_unix_ms: unix_ms(SystemTime::now()),
            collect_us: started.elapsed().as_micros() as u64,
            hostname: System::host_name().unwrap_or_default(),
            boot_unix_ms: self.boot_unix_ms,
            uptime_s: System::uptime().unwrap_or(0),
            load: Some(load),
            cpu: Some(cpu),
            memory: Some(memory),
            disks,
            networks,
            process_count,
            processes,
            processes_unix_ms,
            sessions,
            gpus,
            temperatures,
            parts: Some(Parts::DETAIL),
            // The wire carries problems as text: this is where they become text.
            errors: errors
                .iter()
                .map(ToString::to_string)
                .chain(gpu_errors)
                .collect(),
            info_unix_ms: self.info_unix_ms,
            gpus_unix_ms,
            programs,
            containers,
        }
    }

    #[cfg(target_os = "linux")]
    fn collect_disks(&mut self, errors: &mut Vec<CollectError>) -> Vec<Disk> {
        self.disks.sample(errors)
    }

    #[cfg(not(target_os = "linux"))]
    fn collect_disks(&mut self, _errors: &mut Vec<CollectError>) -> Vec<Disk> {
        self.disks.refresh(true);
        self.disks
            .iter()
            .filter(|d| {
                let fs = d.file_system().to_string_lossy();
                let mp = d.mount_point().to_string_lossy();
                !self.cfg.disks.exclude_fs_types.iter().any(|t| *t == fs)
                    && !self
                        .cfg
                        .disks
                        .exclude_mounts
                        .iter()
                        .any(|m| mp == m.as_str())
            })
            .map(|d| {
                let total = d.total_space();
                let avail = d.available_space();
                let used = total.saturating_sub(avail);
                Disk {
                    device: d.name().to_string_lossy().into_owned(),
                    fs_type: d.file_system().to_string_lossy().into_owned(),
                    mount_point: d.mount_point().to_string_lossy().into_owned(),
                    total_bytes: total,
                    used_bytes: used,
                    available_bytes: avail,
                    used_percent: percent(used, total),
                    read_bytes_per_s: None,
                    write_bytes_per_s: None,
                    unresponsive: false,
                    read_only: d.is_read_only(),
                }
            })
            .collect()
    }

    #[cfg(target_os = "linux")]
    fn collect_sessions(&self, errors: &mut Vec<CollectError>) -> Vec<Session> {
        sessions::read_sessions(&self.cfg.roots.utmp, errors)
    }

    #[cfg(not(target_os = "linux"))]
    fn collect_sessions(&self, _errors: &mut Vec<CollectError>) -> Vec<Session> {
        Vec::new()
    }

    fn user_name(&mut self, uid: u32) -> String {
        if let Some(n) = self.user_names.get(&uid) {
            return n.clone();
        }
        // A user created after the agent started: reread the user list, at most every 10 s.
        if self.users_refreshed.elapsed() > Duration::from_secs(10) {
            self.users.refresh();
            self.users_refreshed = Instant::now();
            self.user_names = self
                .users
                .iter()
                .map(|u| (uid_of(u.id()), u.name().to_owned()))
                .collect();
            if let Some(n) = self.user_names.get(&uid) {
                return n.clone();
            }
        }
        uid.to_string()
    }

    #[cfg(target_os = "linux")]
    fn count_processes(&self) -> u32 {
        processes::count(&self.cfg.roots.proc)
            .unwrap_or_else(|_| self.last_procs.as_ref().map_or(0, Vec::len) as u32)
    }

    #[cfg(not(target_os = "linux"))]
    fn count_processes(&self) -> u32 {
        self.last_procs.as_ref().map_or(0, Vec::len) as u32
    }

    #[cfg(target_os = "linux")]
    fn collect_processes(
        &mut self,
        total_mem: u64,
        errors: &mut Vec<CollectError>,
    ) -> Vec<Process> {
        let now_ms = unix_ms(SystemTime::now());
        let rows = self
            .procs
            .sample(Instant::now(), &self.cfg.redactor, errors);
        let mut out: Vec<Process> = rows
            .into_iter()
            .map(|r| Process {
                pid: r.pid,
                ppid: r.ppid,
                user: r.uid.map(|u| self.user_name(u)).unwrap_or_default(),
                name: r.name,
                cmdline: r.cmdline,
                cpu_percent: r.cpu_percent,
                memory_bytes: r.rss_bytes,
                memory_percent: percent(r.rss_bytes, total_mem),
                start_unix_ms: r.start_unix_ms,
                run_time_s: now_ms.saturating_sub(r.start_unix_ms) / 1000,
                state: r.state.to_owned(),
                kernel_thread: r.kernel_thread,
                program: String::new(),
                container: String::new(),
            })
            .collect();
        out.sort_by(|a, b| {
            b.cpu_percent
                .total_cmp(&a.cpu_percent)
                .then(a.pid.cmp(&b.pid))
        });
        out
    }

    #[cfg(not(target_os = "linux"))]
    fn collect_processes(
        &mut self,
        total_mem: u64,
        _errors: &mut Vec<CollectError>,
    ) -> Vec<Process> {
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let tick = self.ticks;
        let mut rows = Vec::with_capacity(self.sys.processes().len());
        let mut uids = Vec::with_capacity(rows.capacity());
        for (pid, p) in self.sys.processes() {
            if p.thread_kind().is_some() {
                continue;
            }
            let start = p.start_time();
            let cached = self.cmd_cache.entry(*pid).or_insert_with(|| CachedCmd {
                start_time: u64::MAX,
                cmdline: String::new(),
                seen: 0,
            });
            if cached.start_time != start {
                let args: Vec<String> = p
                    .cmd()
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                cached.cmdline = self.cfg.redactor.redact_args(&args);
                cached.start_time = start;
            }
            cached.seen = tick;
            uids.push(p.user_id().map(uid_of));
            rows.push(Process {
                pid: pid.as_u32(),
                ppid: p.parent().map(|p| p.as_u32()).unwrap_or(0),
                user: String::new(),
                name: p.name().to_string_lossy().into_owned(),
                cmdline: cached.cmdline.clone(),
                cpu_percent: p.cpu_usage(),
                memory_bytes: p.memory(),
                memory_percent: percent(p.memory(), total_mem),
                start_unix_ms: start * 1000,
                run_time_s: now_s.saturating_sub(start),
                state: format!("{:?}", p.status()).to_lowercase(),
                kernel_thread: false,
                program: String::new(),
                container: String::new(),
            });
        }
        self.cmd_cache.retain(|_, c| c.seen == tick);
        for (row, uid) in rows.iter_mut().zip(uids) {
            row.user = uid.map(|u| self.user_name(u)).unwrap_or_default();
        }
        rows.sort_by(|a, b| {
            b.cpu_percent
                .total_cmp(&a.cpu_percent)
                .then(a.pid.cmp(&b.pid))
        });
        rows
    }

    /// The GPU thread's latest reading, with names and users of its processes from the
    /// process table. Pids that are not in /proc are dropped (a process that ended, or garbage
    /// from a driver's broken process list).
    fn collect_gpus_with(&mut self, procs: &[Process]) -> (Vec<smon_proto::Gpu>, Vec<String>, u64) {
        let Some(w) = self.gpus.as_ref() else {
            return (Vec::new(), Vec::new(), 0);
        };
        let taken = w.take(Instant::now());
        let mut gpus = taken.gpus;
        let proc_root = &self.cfg.roots.proc;
        let fill = |list: &mut Vec<smon_proto::GpuProcess>| {
            list.retain(|gp| proc_root.join(gp.pid.to_string()).exists());
            for gp in list {
                if let Some(p) = procs.iter().find(|p| p.pid == gp.pid) {
                    gp.name.clone_from(&p.name);
                    gp.user.clone_from(&p.user);
                }
            }
        };
        for g in &mut gpus {
            fill(&mut g.processes);
            for m in &mut g.mig_instances {
                fill(&mut m.processes);
            }
        }
        (gpus, taken.errors, taken.unix_ms)
    }

    /// The agent's own pid, for tests and diagnostics.
    pub fn own_pid(&self) -> Option<u32> {
        Some(std::process::id())
    }
}

/// The numeric id behind a sysinfo user id.
fn uid_of(u: &sysinfo::Uid) -> u32 {
    #[cfg(unix)]
    {
        **u
    }
    #[cfg(not(unix))]
    {
        let _ = u;
        0
    }
}

/// Returns a copy of `full` with only the asked-for heavy parts.
pub fn with_parts(full: &Snapshot, parts: Parts) -> Snapshot {
    Snapshot {
        seq: full.seq,
        sample_unix_ms: full.sample_unix_ms,
        collect_us: full.collect_us,
        hostname: full.hostname.clone(),
        boot_unix_ms: full.boot_unix_ms,
        uptime_s: full.uptime_s,
        load: full.load,
        cpu: full.cpu.as_ref().map(|c| Cpu {
            total_percent: c.total_percent,
            logical_cores: c.logical_cores,
            frequency_mhz: c.frequency_mhz,
            per_core_percent: if parts.per_core {
                c.per_core_percent.clone()
            } else {
                Vec::new()
            },
            per_core_frequency_mhz: if parts.per_core {
                c.per_core_frequency_mhz.clone()
            } else {
                Vec::new()
            },
        }),
        memory: full.memory,
        disks: full.disks.clone(),
        networks: full.networks.clone(),
        process_count: full.process_count,
        processes: if parts.processes {
            full.processes.clone()
        } else {
            Parts::top_of(parts.top_processes, &full.processes)
        },
        processes_unix_ms: full.processes_unix_ms,
        sessions: full.sessions.clone(),
        gpus: full
            .gpus
            .iter()
            .map(|g| {
                let mut g = g.clone();
                if !parts.gpu_processes {
                    g.processes.clear();
                    for m in &mut g.mig_instances {
                        m.processes.clear();
                    }
                }
                g
            })
            .collect(),
        temperatures: full.temperatures.clone(),
        parts: Some(parts),
        errors: full.errors.clone(),
        info_unix_ms: full.info_unix_ms,
        gpus_unix_ms: full.gpus_unix_ms,
        programs: full.programs.clone(),
        containers: full.containers.as_ref().map(|c| c.for_parts(&parts)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector(gpus: Option<Box<dyn GpuSource>>) -> Collector {
        Collector::new(CollectorConfig {
            roots: Roots::default(),
            redactor: Redactor::default(),
            disks: DiskFilter::default(),
            network: NetworkFilter::default(),
            gpus,
            interval: Duration::from_secs(1),
            demand: DetailDemand::default(),
            programs: None,
            containers: Some(crate::ContainersConfig::default()),
        })
        .expect("collector")
    }

    #[test]
    fn sample_has_every_part_and_summary_strips_them() {
        let mut c = collector(Some(Box::new(crate::gpus::FakeGpus::new(2))));
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        c.cfg.demand.mark();
        let full = c.sample(7);
        assert_eq!(full.seq, 7);
        assert!(full.process_count > 0 && full.processes.len() == full.process_count as usize);
        let cpu = full.cpu.as_ref().expect("cpu");
        assert_eq!(cpu.per_core_percent.len(), cpu.logical_cores as usize);
        let me = full
            .processes
            .iter()
            .find(|p| Some(p.pid) == c.own_pid())
            .expect("own process listed");
        assert!(!me.user.is_empty() && me.memory_bytes > 0, "{me:?}");
        assert_eq!(full.gpus.len(), 2);
        assert_eq!(
            full.gpus[0].processes[0].name, me.name,
            "GPU process name filled from the process table"
        );
        assert_eq!(full.gpus[0].processes[0].user, me.user);
        let mem = full.memory.expect("memory");
        assert!(mem.total_bytes > 0 && mem.used_bytes <= mem.total_bytes);

        let summary = with_parts(&full, Parts::SUMMARY);
        assert!(summary.processes.is_empty());
        assert_eq!(summary.process_count, full.process_count);
        assert!(
            summary
                .cpu
                .as_ref()
                .expect("cpu")
                .per_core_percent
                .is_empty()
        );
        assert!(summary.gpus.iter().all(|g| g.processes.is_empty()));
        assert_eq!(summary.gpus.len(), 2);
        assert_eq!(summary.parts, Some(Parts::SUMMARY));
        assert_eq!(with_parts(&full, Parts::DETAIL), full);
    }

    #[test]
    fn top_processes_keeps_the_top_by_cpu_and_by_memory_only() {
        let mut c = collector(None);
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        c.cfg.demand.mark();
        let full = c.sample(1);
        assert!(full.processes.len() > 6, "a real process table");
        let top = with_parts(
            &full,
            Parts {
                top_processes: 3,
                ..Parts::SUMMARY
            },
        );
        assert!(
            (3..=6).contains(&top.processes.len()),
            "{}",
            top.processes.len()
        );
        let most_mem = full
            .processes
            .iter()
            .max_by_key(|p| p.memory_bytes)
            .expect("a process");
        assert!(top.processes.iter().any(|p| p.pid == most_mem.pid));
        let max_cpu = full
            .processes
            .iter()
            .map(|p| p.cpu_percent)
            .fold(0.0f32, f32::max);
        assert!(top.processes.iter().any(|p| p.cpu_percent == max_cpu));
        assert!(top.cpu.as_ref().expect("cpu").per_core_percent.is_empty());
    }

    #[test]
    fn the_process_table_is_read_only_while_wanted() {
        let mut c = collector(None);
        std::thread::sleep(Duration::from_millis(300));
        let quiet = c.sample(1);
        assert!(
            quiet.sample_unix_ms >= quiet.processes_unix_ms + 250,
            "no scan without demand"
        );
        assert!(quiet.process_count > 0, "the count is still fresh");
        c.cfg.demand.mark();
        let wanted = c.sample(2);
        assert!(
            wanted.sample_unix_ms - wanted.processes_unix_ms < 100,
            "scanned on demand"
        );
        assert_eq!(wanted.processes.len() as u32, wanted.process_count);
    }

    /// A watched sample's list is not copied for later; the first quiet sample after it scans
    /// once, and the quiet samples after that one carry its list.
    #[test]
    fn a_quiet_sample_after_a_watched_one_scans_once_then_carries_its_list() {
        let mut c = collector(None);
        c.cfg.demand.mark();
        let watched = c.sample(1);
        assert!(watched.sample_unix_ms - watched.processes_unix_ms < 100);
        assert!(
            c.last_procs.is_none(),
            "a watched sample's list is not copied"
        );
        std::thread::sleep(DETAIL_LINGER + Duration::from_millis(100));
        let first = c.sample(2);
        assert!(
            first.sample_unix_ms - first.processes_unix_ms < 100,
            "scanned: no list was kept"
        );
        assert!(c.last_procs.is_some(), "kept for the quiet samples");
        std::thread::sleep(Duration::from_millis(300));
        let next = c.sample(3);
        assert_eq!(next.processes_unix_ms, first.processes_unix_ms, "carried");
        let pids = |s: &Snapshot| s.processes.iter().map(|p| p.pid).collect::<Vec<_>>();
        assert_eq!(pids(&next), pids(&first));
    }

    #[test]
    fn info_describes_the_host() {
        let mut c = collector(None);
        let info = c.info();
        assert!(info.cpu_logical_cores >= 1);
        assert!(info.memory_total_bytes > 0);
        assert_eq!(info.gpu_source, "none");
        assert!(!info.capabilities.iter().any(|c| c == "gpus"));
        assert_eq!(info.agent_version, env!("CARGO_PKG_VERSION"));
    }
}

/// Property test of [`host_slug`], which turns any host name into a store name. Cases:
/// `PROPTEST_CASES` (256 when unset).
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_host_name_gives_a_store_name(name in "\\PC{0,80}|[a-z0-9.\\-_ ]{0,80}") {
            let slug = host_slug(&name);
            prop_assert!(slug.len() <= 63);
            prop_assert!(slug.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            prop_assert_eq!(host_slug(&slug), slug.clone(), "a slug is its own slug");
        }
    }
}
