//! Containers and services, found by their cgroups: no runtime daemon is asked.
//!
//! Every container runtime and systemd put what they run in a cgroup whose path says what it
//! is (`/system.slice/docker-<id>.scope`, `/kubepods/burstable/pod<uid>/<id>`,
//! `/system.slice/cron.service`, `/lxc/web`, ...). [`ContainerCollector`] walks one cgroup
//! hierarchy each sample, classifies the directories ([`classify`]), stops at the first one
//! that is a container, and reads only those: CPU, memory (page cache apart), block I/O,
//! task count, and the network of the container's own namespace through `/proc/<pid>/net/dev`
//! of one of its processes. Rates and CPU percent are deltas over the sample interval.
//!
//! Layouts ([`Layout::detect`]): cgroup v2 (unified at the root, or under `unified/` in the
//! hybrid layout when it holds the controllers) and v1 (the `cpuacct`, `memory`, `pids` and
//! `blkio` controllers, each its own hierarchy; the `memory` one is walked). The root is a
//! parameter, so tests build fake trees with the kernel's file formats.
//!
//! The files read are kept open and re-read with `pread` at offset 0 (as the process table
//! does), and the hierarchy is walked every [`WALK_EVERY`] samples, not each one: on cgroupfs
//! the open, the path lookup and the `getdents` of the walk were most of the cost (about
//! 4 ms a sample for 50 containers on cgroup v1, against well under 1 ms now; see
//! `BENCHMARKS.md`). A container removed between walks is gone from the very next sample (the
//! reads of its kept CPU and memory files fail, `ENODEV`, and its directory is gone); a new
//! one is found at the next walk, at most [`WALK_EVERY`] samples later. A container still
//! there at a walk keeps its open files. Read every sample: CPU usage and memory usage. What
//! changes slowly or costs the kernel most to render is read at the walks only (and for a
//! container seen for the first time), its last value kept between them: `memory.stat` (the
//! page cache; on v1 a walk over every counter of the cgroup and those below it), the memory
//! limit, block I/O, the task count, which of a container's processes has a network namespace
//! of its own (not looked at again while the container's processes stay the same), and
//! `cgroup.procs` (on v1 the kernel builds and sorts the pid list at each read; opened afresh
//! each time, since a kept v1 file re-read within a second gets the list cached at the last
//! read). Processes are tagged with their container from the `cgroup.procs` files at the
//! walks and, when first seen between walks, from their own `/proc/<pid>/cgroup`, read once
//! ([`ContainerCollector::sample_tagging`]). The walk lists no directory whose link count
//! says it has no subdirectory.
//!
//! Names come from the cgroup path (a short id, or the unit name). Where Docker's or Podman's
//! API socket is readable, [`runtime::RuntimeNames`] reads their names, images and states on a
//! thread of its own, and the sampler only looks them up.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use smon_proto::{Container, Containers, Process};

#[cfg(unix)]
pub mod runtime;

/// At most this many containers by default.
pub const DEFAULT_MAX: usize = 500;

/// The hierarchy is walked for new containers every this many samples.
pub const WALK_EVERY: u64 = 5;

/// How deep the walk goes below the hierarchy's root (kubepods with the systemd driver are 4
/// levels deep; the container under them one more).
const MAX_DEPTH: usize = 6;

/// What the collector is built from.
#[derive(Debug, Clone)]
pub struct ContainersConfig {
    /// The cgroup filesystem's mount point (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// The proc filesystem, for network namespaces (`/proc`).
    pub proc_root: PathBuf,
    /// At most this many containers are read and reported.
    pub max: usize,
    /// API sockets of container runtimes (Docker's Engine API or Podman's compatible one)
    /// asked for names, images and states; empty: none asked.
    pub runtime_sockets: Vec<PathBuf>,
}

impl Default for ContainersConfig {
    fn default() -> Self {
        Self {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_root: PathBuf::from("/proc"),
            max: DEFAULT_MAX,
            runtime_sockets: vec![
                PathBuf::from("/var/run/docker.sock"),
                PathBuf::from("/run/podman/podman.sock"),
            ],
        }
    }
}

/// What runs a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Docker (`/docker/<id>`, `docker-<id>.scope`).
    Docker,
    /// Podman (`libpod-<id>.scope`; `/libpod_parent/libpod-<id>` with its cgroupfs manager).
    Podman,
    /// containerd without Kubernetes (`cri-containerd-<id>.scope`).
    Containerd,
    /// CRI-O without Kubernetes (`crio-<id>.scope`).
    Crio,
    /// A container of a Kubernetes pod (under `kubepods`).
    Kubernetes,
    /// A systemd service (`system.slice/<name>.service`).
    Systemd,
    /// LXC (`/lxc/<name>`, `/lxc.payload.<name>`).
    Lxc,
}

impl Kind {
    /// The name on the wire (`Container.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
            Kind::Containerd => "containerd",
            Kind::Crio => "crio",
            Kind::Kubernetes => "kubernetes",
            Kind::Systemd => "systemd",
            Kind::Lxc => "lxc",
        }
    }
}

/// A cgroup path recognised as a container or service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// What runs it.
    pub kind: Kind,
    /// The full id (64 hex digits), the unit name or the LXC name.
    pub id: String,
    /// The short name: 12 hex digits, the unit or the LXC name.
    pub name: String,
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The id inside `<prefix><id>.scope` when it is 64 hex digits.
fn scope_id<'a>(last: &'a str, prefix: &str) -> Option<&'a str> {
    let id = last.strip_prefix(prefix)?.strip_suffix(".scope")?;
    is_hex_id(id).then_some(id)
}

fn container(kind: Kind, id: &str) -> Classified {
    Classified {
        kind,
        id: id.to_owned(),
        name: id.chars().take(12).collect(),
    }
}

/// A pod's directory: `pod<uid>` (cgroupfs driver) or `kubepods-<qos>-pod<uid>.slice`.
fn is_pod_dir(c: &str) -> bool {
    c.starts_with("pod")
        || (c.starts_with("kubepods") && c.contains("-pod") && c.ends_with(".slice"))
}

/// What the cgroup at `path` (from the hierarchy's root, `/`-separated) is, if it is a
/// container or a service; `None` for slices, the root, and anything else.
pub fn classify(path: &str) -> Option<Classified> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let (&last, ancestors) = parts.split_last()?;
    let parent = ancestors.last().copied().unwrap_or("");
    let in_kube = ancestors.iter().any(|c| c.starts_with("kubepods"));
    if in_kube {
        if !is_pod_dir(parent) {
            return None;
        }
        let id = ["cri-containerd-", "crio-", "docker-", "libpod-"]
            .iter()
            .find_map(|p| scope_id(last, p))
            .or_else(|| is_hex_id(last).then_some(last))?;
        return Some(container(Kind::Kubernetes, id));
    }
    for (prefix, kind) in [
        ("docker-", Kind::Docker),
        ("libpod-", Kind::Podman),
        ("cri-containerd-", Kind::Containerd),
        ("crio-", Kind::Crio),
    ] {
        if let Some(id) = scope_id(last, prefix) {
            return Some(container(kind, id));
        }
    }
    if parent == "docker" && is_hex_id(last) {
        return Some(container(Kind::Docker, last));
    }
    // Podman with its cgroupfs manager (no systemd): `/libpod_parent/libpod-<id>`, no
    // `.scope` (seen with Podman 4.3 on Debian 12, hybrid cgroups).
    if parent == "libpod_parent"
        && let Some(id) = last.strip_prefix("libpod-")
        && is_hex_id(id)
    {
        return Some(container(Kind::Podman, id));
    }
    if parent == "lxc" {
        return Some(Classified {
            kind: Kind::Lxc,
            id: last.to_owned(),
            name: last.to_owned(),
        });
    }
    if let Some(name) = last.strip_prefix("lxc.payload.") {
        return Some(Classified {
            kind: Kind::Lxc,
            id: name.to_owned(),
            name: name.to_owned(),
        });
    }
    if parent == "system.slice" && last.len() > ".service".len() && last.ends_with(".service") {
        return Some(Classified {
            kind: Kind::Systemd,
            id: last.to_owned(),
            name: last.to_owned(),
        });
    }
    None
}

/// Where each figure is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v2: every controller's files in one directory per cgroup.
    V2(PathBuf),
    /// cgroup v1: one hierarchy per controller (a missing one gives zeros).
    V1 {
        /// `cpuacct` (or `cpu,cpuacct`).
        cpuacct: Option<PathBuf>,
        /// `memory`.
        memory: Option<PathBuf>,
        /// `pids`.
        pids: Option<PathBuf>,
        /// `blkio`.
        blkio: Option<PathBuf>,
    },
}

fn dir_of(root: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| root.join(n)).find(|p| p.is_dir())
}

impl Layout {
    /// The layout under the cgroup mount point `root`: v2 when `root` itself is the unified
    /// hierarchy; v1 when the controllers have their own hierarchies (the hybrid layout too:
    /// its `unified/` carries no memory or I/O figures); v2 under `unified/` when it is the only
    /// hierarchy with controllers. `None` when there is no cgroup filesystem.
    pub fn detect(root: &Path) -> Option<Layout> {
        if root.join("cgroup.controllers").is_file() {
            return Some(Layout::V2(root.to_owned()));
        }
        let cpuacct = dir_of(root, &["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]);
        let memory = dir_of(root, &["memory"]);
        let pids = dir_of(root, &["pids"]);
        let blkio = dir_of(root, &["blkio"]);
        if cpuacct.is_some() || memory.is_some() || pids.is_some() {
            return Some(Layout::V1 {
                cpuacct,
                memory,
                pids,
                blkio,
            });
        }
        let unified = root.join("unified");
        unified
            .join("cgroup.controllers")
            .is_file()
            .then_some(Layout::V2(unified))
    }

    /// Every hierarchy read: the v2 tree, or the v1 controllers found.
    pub fn hierarchies(&self) -> Vec<PathBuf> {
        match self {
            Layout::V2(root) => vec![root.clone()],
            Layout::V1 {
                cpuacct,
                memory,
                pids,
                blkio,
            } => [cpuacct, memory, pids, blkio]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
        }
    }

    /// The hierarchy that is walked to find the containers.
    fn walked(&self) -> Option<&Path> {
        match self {
            Layout::V2(p) => Some(p),
            Layout::V1 {
                memory,
                pids,
                cpuacct,
                ..
            } => memory.as_deref().or(pids.as_deref()).or(cpuacct.as_deref()),
        }
    }
}

/// The raw counters of one container at one time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// CPU time used, nanoseconds.
    pub cpu_ns: u64,
    /// Memory charged, page cache included.
    pub memory_bytes: u64,
    /// The limit, `None` when unlimited.
    pub memory_limit_bytes: Option<u64>,
    /// Page cache.
    pub cache_bytes: u64,
    /// Block bytes read since the cgroup was made.
    pub io_read_bytes: u64,
    /// Block bytes written since the cgroup was made.
    pub io_write_bytes: u64,
    /// Tasks (pids.current), `None` without the pids controller.
    pub tasks: Option<u32>,
}

/// Limits at or above this are "unlimited" (v1 writes `PAGE_COUNTER_MAX` pages in bytes).
const UNLIMITED: u64 = 1 << 60;

/// One cgroup file kept open between samples and re-read with `pread` at offset 0 (no path
/// lookup, open or close each sample). Opened at its first read; a file missing then is
/// tried again at the next walk; a read that fails (its cgroup removed, perhaps made again
/// under the same path, as a restarted container's is) closes it, to be opened afresh.
#[derive(Debug)]
struct Kept {
    path: PathBuf,
    file: Option<fs::File>,
    tried: bool,
}

impl Kept {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            tried: false,
        }
    }

    /// The text of the file now (`None` when it cannot be read: missing, or its cgroup gone).
    fn text<'b>(&mut self, buf: &'b mut Vec<u8>) -> Option<&'b str> {
        if !self.tried {
            self.tried = true;
            self.file = fs::File::open(&self.path).ok();
        }
        if crate::processes::read_record(self.file.as_ref()?, buf).is_err() {
            self.file = None;
            self.tried = false;
            return None;
        }
        std::str::from_utf8(buf).ok()
    }

    /// The text of the file through a fresh open, not the kept file: a kept v1
    /// `cgroup.procs` re-read within a second of its last read gives the pid list the kernel
    /// built then (the list is cached per cgroup and dropped a second after its last use,
    /// `CGROUP_PIDLIST_DESTROY_DELAY`; only the first read after an open builds a new one).
    fn fresh_text<'b>(&self, buf: &'b mut Vec<u8>) -> Option<&'b str> {
        let f = fs::File::open(&self.path).ok()?;
        crate::processes::read_record(&f, buf).ok()?;
        std::str::from_utf8(buf).ok()
    }

    /// A file that could not be opened is tried again at its next read.
    fn retry_if_missing(&mut self) {
        if self.file.is_none() {
            self.tried = false;
        }
    }

    /// The number in a one-number file.
    fn number(&mut self, buf: &mut Vec<u8>) -> Option<u64> {
        self.text(buf)?.trim().parse().ok()
    }
}

/// The files of one container's cgroup, named once per walk from the layout (v2: one
/// directory; v1: one per controller).
#[derive(Debug)]
struct CgroupFiles {
    /// v2 `cpu.stat` (`usage_usec`), v1 `cpuacct.usage` (nanoseconds).
    cpu: Option<Kept>,
    v2: bool,
    /// `memory.current` / `memory.usage_in_bytes`.
    memory: Option<Kept>,
    /// `memory.max` / `memory.limit_in_bytes`.
    limit: Option<Kept>,
    /// `memory.stat` (the page cache: `file` / `total_cache` or `cache`).
    stat: Option<Kept>,
    /// v2 `io.stat`; v1 `blkio.throttle.io_service_bytes_recursive` (it counts the cgroups
    /// below too, kernels since 4.x), then the plain file where that one is missing.
    io: Vec<Kept>,
    /// `pids.current`.
    pids: Option<Kept>,
    /// The `cgroup.procs` files of the container's directory and those below it (its own
    /// first), opened afresh at each read (see [`Kept::fresh_text`]).
    procs: Vec<Kept>,
}

impl CgroupFiles {
    /// Files that could not be opened are tried again (called at each walk).
    fn retry_missing(&mut self) {
        let singles = [
            &mut self.cpu,
            &mut self.memory,
            &mut self.limit,
            &mut self.stat,
            &mut self.pids,
        ];
        for f in singles.into_iter().flatten() {
            f.retry_if_missing();
        }
        for f in self.io.iter_mut().chain(self.procs.iter_mut()) {
            f.retry_if_missing();
        }
    }

    /// The counters now. With `slow` false the files that change slowly or cost the kernel
    /// most to render are not read (`memory.stat`, on v1 a walk over every counter of the
    /// cgroup and those below it; the limit; block I/O; the task count): those fields are left
    /// at their defaults and the caller keeps the last values read.
    ///
    /// `None` when the cgroup is gone: its CPU and memory files (those it has) both fail to
    /// read (on cgroupfs a kept file of a removed cgroup fails, `ENODEV`) and its directory
    /// in the walked hierarchy is gone.
    fn read(&mut self, buf: &mut Vec<u8>, slow: bool) -> Option<Reading> {
        let mut r = Reading::default();
        let mut failed = 0;
        if let Some(f) = &mut self.cpu {
            let cpu = if self.v2 {
                f.text(buf)
                    .map(|t| keyed(t, "usage_usec").unwrap_or(0).saturating_mul(1000))
            } else {
                f.number(buf)
            };
            failed += usize::from(cpu.is_none());
            r.cpu_ns = cpu.unwrap_or(0);
        }
        if let Some(f) = &mut self.memory {
            let memory = f.number(buf);
            failed += usize::from(memory.is_none());
            r.memory_bytes = memory.unwrap_or(0);
        }
        let counters = usize::from(self.cpu.is_some()) + usize::from(self.memory.is_some());
        if counters > 0 && failed == counters && !self.dir_exists() {
            return None;
        }
        if !slow {
            return Some(r);
        }
        if let Some(f) = &mut self.limit {
            r.memory_limit_bytes = f.number(buf).filter(|&l| l < UNLIMITED);
        }
        if let Some(f) = &mut self.stat {
            let v2 = self.v2;
            r.cache_bytes = f
                .text(buf)
                .and_then(|t| {
                    if v2 {
                        keyed(t, "file")
                    } else {
                        keyed(t, "total_cache").or_else(|| keyed(t, "cache"))
                    }
                })
                .unwrap_or(0);
        }
        for f in &mut self.io {
            if let Some(t) = f.text(buf) {
                (r.io_read_bytes, r.io_write_bytes) = if self.v2 {
                    parse_io_stat(t)
                } else {
                    parse_blkio(t)
                };
                break;
            }
        }
        r.tasks = self
            .pids
            .as_mut()
            .and_then(|f| f.number(buf))
            .map(|n| n as u32);
        Some(r)
    }

    /// Whether the container's directory in the walked hierarchy is still there.
    fn dir_exists(&self) -> bool {
        self.procs
            .first()
            .and_then(|f| f.path.parent())
            .is_some_and(Path::exists)
    }

    /// Whether the cgroup has a CPU or a memory file, whose failed reads tell that it is gone
    /// (else its `cgroup.procs` is read every sample to tell).
    fn has_counters(&self) -> bool {
        self.cpu.is_some() || self.memory.is_some()
    }

    /// The processes listed in the `cgroup.procs` files; `None` when the container's cgroup
    /// is gone (its own file unreadable and its directory gone).
    fn procs(&self, buf: &mut Vec<u8>) -> Option<Vec<u32>> {
        let mut out = Vec::new();
        for (i, f) in self.procs.iter().enumerate() {
            match f.fresh_text(buf) {
                Some(t) => out.extend(t.lines().filter_map(|l| l.trim().parse::<u32>().ok())),
                None if i == 0 && f.path.parent().is_some_and(|d| !d.exists()) => return None,
                None => {}
            }
        }
        Some(out)
    }
}

/// The value of `key` in a `key value` file (cpu.stat, memory.stat).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Read and written bytes summed over the devices of a v2 `io.stat`
/// (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`).
pub fn parse_io_stat(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for field in text.split_ascii_whitespace() {
        if let Some(v) = field.strip_prefix("rbytes=") {
            r = r.saturating_add(v.parse().unwrap_or(0));
        } else if let Some(v) = field.strip_prefix("wbytes=") {
            w = w.saturating_add(v.parse().unwrap_or(0));
        }
    }
    (r, w)
}

/// Read and written bytes summed over the devices of a v1 `blkio.throttle.io_service_bytes`
/// (`8:0 Read 1`, `8:0 Write 2`, ..., `Total 3`).
pub fn parse_blkio(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(_dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let v: u64 = v.parse().unwrap_or(0);
        match op {
            "Read" => r = r.saturating_add(v),
            "Write" => w = w.saturating_add(v),
            _ => {}
        }
    }
    (r, w)
}

impl Layout {
    /// The files of the cgroup at `rel` (relative to each hierarchy's root), whose processes
    /// are listed in the `cgroup.procs` files `procs`.
    fn files(&self, rel: &str, procs: &[PathBuf]) -> CgroupFiles {
        let kept = |dir: &Option<PathBuf>, name: &str| {
            dir.as_ref().map(|d| Kept::new(d.join(rel).join(name)))
        };
        let procs = procs.iter().map(|p| Kept::new(p.clone())).collect();
        match self {
            Layout::V2(root) => {
                let d = Some(root.clone());
                CgroupFiles {
                    cpu: kept(&d, "cpu.stat"),
                    v2: true,
                    memory: kept(&d, "memory.current"),
                    limit: kept(&d, "memory.max"),
                    stat: kept(&d, "memory.stat"),
                    io: kept(&d, "io.stat").into_iter().collect(),
                    pids: kept(&d, "pids.current"),
                    procs,
                }
            }
            Layout::V1 {
                cpuacct,
                memory,
                pids,
                blkio,
            } => CgroupFiles {
                cpu: kept(cpuacct, "cpuacct.usage"),
                v2: false,
                memory: kept(memory, "memory.usage_in_bytes"),
                limit: kept(memory, "memory.limit_in_bytes"),
                stat: kept(memory, "memory.stat"),
                io: [
                    kept(blkio, "blkio.throttle.io_service_bytes_recursive"),
                    kept(blkio, "blkio.throttle.io_service_bytes"),
                ]
                .into_iter()
                .flatten()
                .collect(),
                pids: kept(pids, "pids.current"),
                procs,
            },
        }
    }
}

/// The counters kept from the last sample, for rates.
#[derive(Debug, Clone, Copy)]
struct Previous {
    cpu_ns: u64,
    io_read: u64,
    io_write: u64,
    net: Option<(u64, u64)>,
    seen: u64,
    /// The slow values of the last slow read ([`CgroupFiles::read`]), and the I/O rates
    /// computed then.
    cache_bytes: u64,
    limit: Option<u64>,
    /// The task count (`pids.current`, else the processes listed in `cgroup.procs`).
    pids: u32,
    io_rates: (u64, u64),
    /// Seconds since that read.
    since_slow: f64,
    /// A process of the container that has a network namespace of its own (found at the
    /// walks); `None`: it shares the agent's (or has no process), so no network is read.
    net_pid: Option<u32>,
    /// [`procs_mark`] of the processes listed at the last walk.
    procs_mark: Option<(usize, u64, u64)>,
}

/// Which processes a `cgroup.procs` list holds, in any order: their count, sum and a mixed
/// xor (equal marks: the same processes, but for a pid reused by a process in the same cgroup).
fn procs_mark(procs: &[u32]) -> (usize, u64, u64) {
    procs.iter().fold((procs.len(), 0, 0), |(n, sum, x), &p| {
        let p = u64::from(p);
        (
            n,
            sum.wrapping_add(p),
            x ^ p.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        )
    })
}

/// The container a process was found in, kept while the process lives (see
/// [`ContainerCollector::sample_tagging`]).
#[derive(Debug)]
struct Tag {
    /// The process's start time: a pid given to a new process is looked up afresh.
    start_unix_ms: u64,
    /// The container's id; `None`: in none.
    container: Option<String>,
    /// The last tagging round that saw the process.
    seen: u64,
}

/// Reads the containers every sample; keep one for the life of the agent.
pub struct ContainerCollector {
    cfg: ContainersConfig,
    layout: Option<Layout>,
    previous: HashMap<String, Previous>,
    /// The agent's own network namespace (`net:[inode]`), to skip shared namespaces.
    own_netns: Option<PathBuf>,
    ticks: u64,
    /// The read buffer of the cgroup files.
    buf: Vec<u8>,
    /// The containers of the last walk, with their cgroup files kept open (and the
    /// `cgroup.procs` of the directories below theirs, bounded depth, listed here).
    found: Vec<(String, Classified, Vec<PathBuf>, CgroupFiles)>,
    /// The sample of the last walk.
    walked_tick: u64,
    /// Which container each process is in, from the `cgroup.procs` files read at the last
    /// walk.
    pids: HashMap<u32, String>,
    /// The container of each cgroup directory found at the last walk (path from the walked
    /// hierarchy's root, no leading `/`).
    by_dir: HashMap<String, String>,
    /// The v1 controller whose line of `/proc/<pid>/cgroup` names the walked hierarchy;
    /// `None`: the v2 line (`0::`).
    controller: Option<String>,
    /// The container of each process tagged, by pid.
    tags: HashMap<u32, Tag>,
    tag_round: u64,
    /// How many processes' network namespaces were looked at (for tests).
    #[cfg_attr(not(test), allow(dead_code))]
    netns_looks: u64,
    /// Names, images and states from the runtimes' sockets.
    #[cfg(unix)]
    names: Option<runtime::RuntimeNames>,
}

impl ContainerCollector {
    /// A collector over `cfg`'s roots; the layout is detected here.
    pub fn new(cfg: ContainersConfig) -> Self {
        let layout = Layout::detect(&cfg.cgroup_root);
        let controller = match &layout {
            Some(l @ Layout::V1 { .. }) => l
                .walked()
                .and_then(Path::file_name)
                .and_then(|n| n.to_str())
                .and_then(|n| {
                    n.split(',')
                        .find(|c| matches!(*c, "memory" | "pids" | "cpuacct"))
                        .map(str::to_owned)
                }),
            _ => None,
        };
        let own_netns = fs::read_link(cfg.proc_root.join("self/ns/net")).ok();
        #[cfg(unix)]
        let names = (!cfg.runtime_sockets.is_empty())
            .then(|| runtime::RuntimeNames::start(cfg.runtime_sockets.clone()));
        Self {
            #[cfg(unix)]
            names,
            cfg,
            layout,
            previous: HashMap::new(),
            own_netns,
            ticks: 0,
            buf: Vec::new(),
            found: Vec::new(),
            walked_tick: 0,
            pids: HashMap::new(),
            by_dir: HashMap::new(),
            controller,
            tags: HashMap::new(),
            tag_round: 0,
            netns_looks: 0,
        }
    }

    /// The layout found at start-up.
    pub fn layout(&self) -> Option<&Layout> {
        self.layout.as_ref()
    }

    /// Which container each process was in at the last walk (from the `cgroup.procs` files).
    pub fn pids(&self) -> &HashMap<u32, String> {
        &self.pids
    }

    /// The containers now; `elapsed` seconds since the last call give the rates. No process
    /// is tagged (see [`ContainerCollector::sample_tagging`]).
    pub fn sample(&mut self, elapsed: f64) -> Containers {
        self.sample_tagging(elapsed, &mut [])
    }

    /// The containers now, as [`ContainerCollector::sample`], and each process of `procs` (the
    /// process table, read just before) tagged with its container's id (`container`; empty:
    /// in none).
    ///
    /// `cgroup.procs` is read at the walks only (every [`WALK_EVERY`] samples), not each
    /// sample: at a walk every process is tagged from those files; between walks a process
    /// keeps the tag it had, and one seen for the first time (a new pid, or a pid with
    /// another start time) is tagged from its own `/proc/<pid>/cgroup`, read once (the path
    /// of the walked hierarchy, matched against the containers' directories and those up to
    /// three levels below, as the walk's `cgroup.procs` files are). So a process that starts
    /// in a container is tagged at its first sample, and one moved into or out of a container
    /// after its first sample is tagged anew at the next walk, at most [`WALK_EVERY`] samples
    /// later.
    pub fn sample_tagging(&mut self, elapsed: f64, procs: &mut [Process]) -> Containers {
        let found = self.read_containers(elapsed);
        self.tag(procs);
        found
    }

    /// Tags `procs` (see [`ContainerCollector::sample_tagging`]).
    fn tag(&mut self, procs: &mut [Process]) {
        self.tag_round += 1;
        let round = self.tag_round;
        let walked = self.walked_tick == self.ticks;
        fn set(p: &mut Process, container: &Option<String>) {
            match container {
                Some(c) if p.container != *c => p.container.clone_from(c),
                Some(_) => {}
                None => p.container.clear(),
            }
        }
        for p in procs.iter_mut() {
            // Known since: the tag it had.
            if !walked
                && let Some(t) = self.tags.get_mut(&p.pid)
                && t.start_unix_ms == p.start_unix_ms
            {
                t.seen = round;
                set(p, &t.container);
                continue;
            }
            let container = if walked {
                self.pids.get(&p.pid).cloned()
            } else {
                self.container_of(p.pid)
            };
            set(p, &container);
            self.tags.insert(
                p.pid,
                Tag {
                    start_unix_ms: p.start_unix_ms,
                    container,
                    seen: round,
                },
            );
        }
        self.tags.retain(|_, t| t.seen == round);
    }

    /// The container `pid` is in, from its `/proc/<pid>/cgroup`: the cgroup of the walked
    /// hierarchy, a container's directory found at the last walk or one up to three levels
    /// below it.
    fn container_of(&mut self, pid: u32) -> Option<String> {
        use std::fmt::Write as _;
        if self.by_dir.is_empty() {
            return None;
        }
        let mut path = self.cfg.proc_root.clone();
        let mut name = String::with_capacity(24);
        let _ = write!(name, "{pid}/cgroup");
        path.push(&name);
        let file = fs::File::open(&path).ok()?;
        crate::processes::read_record(&file, &mut self.buf).ok()?;
        let text = std::str::from_utf8(&self.buf).ok()?;
        let cgroup = text.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (id, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let ours = match &self.controller {
                Some(c) => controllers.split(',').any(|x| x == c),
                None => id == "0" && controllers.is_empty(),
            };
            ours.then_some(path)
        })?;
        let mut dir = cgroup.trim_matches('/');
        for _ in 0..=3 {
            if let Some(id) = self.by_dir.get(dir) {
                return Some(id.clone());
            }
            dir = dir.rsplit_once('/')?.0;
        }
        None
    }

    /// The containers now (see [`ContainerCollector::sample`]).
    fn read_containers(&mut self, elapsed: f64) -> Containers {
        self.ticks += 1;
        let elapsed = elapsed.max(1e-3);
        let Some(layout) = self.layout.clone() else {
            self.pids.clear();
            self.by_dir.clear();
            return Containers {
                count: 0,
                items: Vec::new(),
                error: Some(format!(
                    "containers: no cgroup hierarchy under {}",
                    self.cfg.cgroup_root.display()
                )),
            };
        };
        let Some(walked) = layout.walked().map(Path::to_owned) else {
            return Containers::default();
        };
        let walk_now = self.walked_tick == 0 || self.ticks - self.walked_tick >= WALK_EVERY;
        if walk_now {
            let mut found = Vec::new();
            walk(&walked, String::new(), 0, self.cfg.max, &mut found);
            // A container still there with the same directories keeps its open files (no
            // open and close of each of its files every walk).
            let mut before: HashMap<String, (Vec<PathBuf>, CgroupFiles)> = self
                .found
                .drain(..)
                .map(|(rel, _, dirs, files)| (rel, (dirs, files)))
                .collect();
            self.found = found
                .into_iter()
                .map(|(rel, c)| {
                    let mut dirs = Vec::new();
                    dirs_into(&walked.join(&rel), 0, &mut dirs);
                    let files = match before.remove(&rel) {
                        Some((d, mut files)) if d == dirs => {
                            files.retry_missing();
                            files
                        }
                        _ => layout.files(&rel, &dirs),
                    };
                    (rel, c, dirs, files)
                })
                .collect();
            self.by_dir = self
                .found
                .iter()
                .map(|(rel, c, ..)| (rel.clone(), c.id.clone()))
                .collect();
            self.pids.clear();
            self.walked_tick = self.ticks;
        }
        let mut items = Vec::with_capacity(self.found.len());
        let mut found = std::mem::take(&mut self.found);
        for (rel, c, _, files) in &mut found {
            let prev = self.previous.get(rel.as_str()).copied();
            // The slow files at each walk and for a container seen for the first time.
            let slow = walk_now || prev.is_none();
            // Its processes at the walks (and where no counter file tells whether it is
            // gone); gone since the walk: not listed (and forgotten at the next walk).
            let procs = if slow || !files.has_counters() {
                let Some(procs) = files.procs(&mut self.buf) else {
                    continue;
                };
                Some(procs)
            } else {
                None
            };
            let Some(mut r) = files.read(&mut self.buf, slow) else {
                continue;
            };
            let (rel, c) = (rel.clone(), c.clone());
            let since_slow = prev.map_or(0.0, |p| p.since_slow) + elapsed;
            if let (false, Some(p)) = (slow, prev) {
                (r.cache_bytes, r.memory_limit_bytes) = (p.cache_bytes, p.limit);
                (r.io_read_bytes, r.io_write_bytes) = (p.io_read, p.io_write);
            }
            let task_count = match (&procs, prev) {
                (Some(procs), _) if slow => r.tasks.unwrap_or(procs.len() as u32),
                (_, Some(p)) => p.pids,
                _ => 0,
            };
            if let (Some(procs), true) = (&procs, walk_now) {
                for &p in procs {
                    self.pids.insert(p, c.id.clone());
                }
            }
            // Whose network namespace to read: looked for at the walks (a `readlink` per
            // process until one has a namespace of its own), kept between them while that
            // process lives (and reads). A container whose processes all share the agent's
            // namespace is not looked at again while they stay the same processes.
            let procs_mark = procs.as_deref().map(procs_mark);
            let shared_before =
                prev.is_some_and(|p| p.net_pid.is_none() && p.procs_mark == procs_mark);
            let net_pid = match (prev, &procs) {
                (Some(p), _) if !slow => p.net_pid,
                (_, Some(_)) if shared_before => None,
                (_, Some(procs)) => {
                    let mut looked = 0;
                    let found = procs.iter().copied().find(|&p| {
                        looked += 1;
                        self.own_namespace(p)
                    });
                    self.netns_looks += looked;
                    found
                }
                (_, None) => None,
            };
            let net = net_pid.and_then(|p| self.net_counters(p));
            let rate = |now: u64, before: u64| -> u64 {
                (now.saturating_sub(before) as f64 / elapsed).round() as u64
            };
            let cpu_percent = prev.map_or(0.0, |p| {
                (r.cpu_ns.saturating_sub(p.cpu_ns) as f64 / (elapsed * 1e9) * 100.0) as f32
            });
            // Block I/O is read at the walks: its rates are over the seconds since the last.
            let (io_r, io_w) = match prev {
                Some(p) if slow => {
                    let over = |now: u64, before: u64| -> u64 {
                        (now.saturating_sub(before) as f64 / since_slow).round() as u64
                    };
                    (
                        over(r.io_read_bytes, p.io_read),
                        over(r.io_write_bytes, p.io_write),
                    )
                }
                Some(p) => p.io_rates,
                None => (0, 0),
            };
            let (net_rx, net_tx) = match (net, prev.and_then(|p| p.net)) {
                (Some((rx, tx)), Some((prx, ptx))) => (Some(rate(rx, prx)), Some(rate(tx, ptx))),
                (Some(_), None) => (Some(0), Some(0)),
                _ => (None, None),
            };
            self.previous.insert(
                rel.clone(),
                Previous {
                    cpu_ns: r.cpu_ns,
                    io_read: r.io_read_bytes,
                    io_write: r.io_write_bytes,
                    net,
                    seen: self.ticks,
                    cache_bytes: r.cache_bytes,
                    limit: r.memory_limit_bytes,
                    pids: task_count,
                    io_rates: (io_r, io_w),
                    since_slow: if slow { 0.0 } else { since_slow },
                    net_pid,
                    procs_mark: procs_mark.or(prev.and_then(|p| p.procs_mark)),
                },
            );
            let mut item = Container {
                id: c.id,
                name: c.name,
                kind: c.kind.as_str().to_owned(),
                cgroup: format!("/{rel}"),
                cpu_percent,
                memory_bytes: r.memory_bytes.saturating_sub(r.cache_bytes),
                memory_limit_bytes: r.memory_limit_bytes,
                memory_cache_bytes: r.cache_bytes,
                io_read_bytes_per_s: io_r,
                io_write_bytes_per_s: io_w,
                pids: task_count,
                net_rx_bytes_per_s: net_rx,
                net_tx_bytes_per_s: net_tx,
                image: None,
                state: None,
            };
            self.name_from_runtime(&mut item);
            items.push(item);
        }
        self.found = found;
        let ticks = self.ticks;
        self.previous.retain(|_, p| p.seen == ticks);
        items.sort_by(|a, b| {
            b.cpu_percent
                .total_cmp(&a.cpu_percent)
                .then_with(|| a.id.cmp(&b.id))
        });
        Containers {
            count: items.len() as u32,
            items,
            error: None,
        }
    }

    /// The name, image and state a runtime gave for a container (not for services and LXC).
    fn name_from_runtime(&self, item: &mut Container) {
        #[cfg(unix)]
        if !matches!(item.kind.as_str(), "systemd" | "lxc")
            && let Some(m) = self.names.as_ref().and_then(|n| n.get(&item.id))
        {
            if !m.name.is_empty() {
                item.name = m.name;
            }
            item.image = (!m.image.is_empty()).then_some(m.image);
            item.state = (!m.state.is_empty()).then_some(m.state);
        }
        #[cfg(not(unix))]
        let _ = item;
    }

    /// Whether `pid` is in a network namespace other than the agent's.
    fn own_namespace(&self, pid: u32) -> bool {
        let ns = self.cfg.proc_root.join(pid.to_string()).join("ns/net");
        fs::read_link(ns).is_ok_and(|ns| self.own_netns.as_ref() != Some(&ns))
    }

    /// Received and sent bytes of `pid`'s network namespace (lo left out; `pid` is one
    /// [`Self::own_namespace`] found).
    fn net_counters(&self, pid: u32) -> Option<(u64, u64)> {
        let dir = self.cfg.proc_root.join(pid.to_string());
        let text = fs::read_to_string(dir.join("net/dev")).ok()?;
        let (rx, tx) = crate::network::parse_proc_net_dev(&text)
            .into_iter()
            .filter(|(n, ..)| n != "lo")
            .fold((0u64, 0u64), |(r, t), (_, rx, tx)| {
                (r.saturating_add(rx), t.saturating_add(tx))
            });
        Some((rx, tx))
    }
}

/// Whether the directory `dir` surely has no subdirectory: its link count is 2 (the count is 2
/// plus its subdirectories on cgroupfs, tmpfs and ext4), so it need not be listed. Where the
/// count says nothing (btrfs gives 1) or cannot be read: false.
fn no_subdirs(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    fs::metadata(dir).is_ok_and(|m| m.nlink() == 2)
}

/// The containers below `dir` (whose path from the root is `rel`), depth first, at most `max`.
fn walk(dir: &Path, rel: String, depth: usize, max: usize, out: &mut Vec<(String, Classified)>) {
    if out.len() >= max || depth > MAX_DEPTH || (depth > 0 && no_subdirs(dir)) {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut subdirs: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    subdirs.sort_unstable();
    for name in subdirs {
        if out.len() >= max {
            return;
        }
        let child_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        match classify(&child_rel) {
            Some(c) => out.push((child_rel, c)),
            None => walk(&dir.join(&name), child_rel, depth + 1, max, out),
        }
    }
}

/// `dir` and the cgroup directories below it (bounded depth), whose `cgroup.procs` hold the
/// processes of the container at `dir`.
fn dirs_into(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    out.push(dir.join("cgroup.procs"));
    if depth >= 3 || no_subdirs(dir) {
        return;
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs_into(&e.path(), depth + 1, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn paths_are_classified_by_runtime() {
        let k = |p: &str| classify(p).map(|c| (c.kind, c.name));
        let short = A[..12].to_owned();
        assert_eq!(
            k(&format!("/docker/{A}")),
            Some((Kind::Docker, short.clone()))
        );
        assert_eq!(
            k(&format!("/system.slice/docker-{A}.scope")),
            Some((Kind::Docker, short.clone()))
        );
        assert_eq!(
            k(&format!("/machine.slice/libpod-{A}.scope")),
            Some((Kind::Podman, short.clone()))
        );
        assert_eq!(k(&format!("/machine.slice/libpod-conmon-{A}.scope")), None);
        assert_eq!(
            k(&format!("/libpod_parent/libpod-{A}")),
            Some((Kind::Podman, short.clone()))
        );
        assert_eq!(k("/libpod_parent/conmon"), None);
        assert_eq!(
            k(&format!("/system.slice/cri-containerd-{A}.scope")),
            Some((Kind::Containerd, short.clone()))
        );
        assert_eq!(
            k(&format!("/system.slice/crio-{A}.scope")),
            Some((Kind::Crio, short.clone()))
        );
        assert_eq!(
            k(&format!("/kubepods/burstable/pod1234-56/{A}")),
            Some((Kind::Kubernetes, short.clone()))
        );
        assert_eq!(
            k(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice/cri-containerd-{A}.scope"
            )),
            Some((Kind::Kubernetes, short.clone()))
        );
        assert_eq!(k("/kubepods/burstable/pod1234-56"), None, "the pod itself");
        assert_eq!(
            k("/system.slice/cron.service"),
            Some((Kind::Systemd, "cron.service".to_owned()))
        );
        assert_eq!(k("/user.slice/user-1000.slice/user@1000.service"), None);
        assert_eq!(k("/lxc/web"), Some((Kind::Lxc, "web".to_owned())));
        assert_eq!(k("/lxc.payload.db"), Some((Kind::Lxc, "db".to_owned())));
        assert_eq!(k("/system.slice"), None);
        assert_eq!(k("/"), None);
        assert_eq!(k("/docker/notanid"), None);
        assert_eq!(classify(&format!("/docker/{A}")).expect("docker").id, A);
    }

    #[test]
    fn io_files_are_summed_over_devices() {
        assert_eq!(
            parse_io_stat(
                "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n\
                 8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n"
            ),
            (101, 202)
        );
        assert_eq!(
            parse_blkio(
                "8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Async 0\n8:0 Total 300\n\
                 8:16 Read 1\n8:16 Write 2\nTotal 303\n"
            ),
            (101, 202)
        );
    }

    fn put(dir: &Path, file: &str, text: &str) {
        fs::create_dir_all(dir).expect("mkdir");
        fs::write(dir.join(file), text).expect("write");
    }

    /// A v2 tree: a Docker scope with a limit, a service without one, a slice between.
    fn v2_tree(root: &Path, cpu_usec: u64, io: (u64, u64)) {
        put(root, "cgroup.controllers", "cpu io memory pids\n");
        let d = root.join(format!("system.slice/docker-{A}.scope"));
        put(
            &d,
            "cpu.stat",
            &format!("usage_usec {cpu_usec}\nuser_usec 1\nsystem_usec 2\n"),
        );
        put(&d, "memory.current", "300000000\n");
        put(&d, "memory.max", "536870912\n");
        put(
            &d,
            "memory.stat",
            "anon 200000000\nfile 100000000\nkernel 0\n",
        );
        put(
            &d,
            "io.stat",
            &format!(
                "8:0 rbytes={} wbytes={} rios=1 wios=1 dbytes=0 dios=0\n",
                io.0, io.1
            ),
        );
        put(&d, "pids.current", "7\n");
        put(&d, "cgroup.procs", &format!("{}\n", std::process::id()));
        let s = root.join("system.slice/cron.service");
        put(&s, "cpu.stat", "usage_usec 5\n");
        put(&s, "memory.current", "1000\n");
        put(&s, "memory.max", "max\n");
        put(&s, "memory.stat", "file 0\n");
        put(&s, "pids.current", "1\n");
        put(&s, "cgroup.procs", "");
        put(&root.join("user.slice"), "cgroup.procs", "");
    }

    fn collector(root: &Path, max: usize) -> ContainerCollector {
        ContainerCollector::new(ContainersConfig {
            cgroup_root: root.to_owned(),
            proc_root: PathBuf::from("/proc"),
            max,
            runtime_sockets: Vec::new(),
        })
    }

    /// Docker's name, image and state replace the short id where its socket answers.
    #[cfg(unix)]
    #[test]
    fn a_runtime_socket_names_the_containers() {
        use std::io::{Read as _, Write as _};
        let dir = tempfile::tempdir().expect("tempdir");
        v2_tree(dir.path(), 1, (0, 0));
        let sock = dir.path().join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut req = [0u8; 512];
            let _ = s.read(&mut req).expect("read");
            let body = format!(
                r#"[{{"Id":"{A}","Names":["/web"],"Image":"nginx:1.27","State":"running"}}]"#
            );
            let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            s.write_all(head.as_bytes()).expect("write");
            s.write_all(body.as_bytes()).expect("write");
        });
        let mut c = ContainerCollector::new(ContainersConfig {
            cgroup_root: dir.path().to_owned(),
            proc_root: PathBuf::from("/proc"),
            max: DEFAULT_MAX,
            runtime_sockets: vec![sock],
        });
        server.join().expect("server");
        let started = std::time::Instant::now();
        while c.names.as_ref().and_then(|n| n.get(A)).is_none() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "never read"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let s = c.sample(1.0);
        let d = s.items.iter().find(|i| i.kind == "docker").expect("docker");
        assert_eq!(d.name, "web");
        assert_eq!(d.image.as_deref(), Some("nginx:1.27"));
        assert_eq!(d.state.as_deref(), Some("running"));
        let svc = s
            .items
            .iter()
            .find(|i| i.kind == "systemd")
            .expect("service");
        assert_eq!((svc.image.as_ref(), svc.state.as_ref()), (None, None));
    }

    #[test]
    fn the_cache_and_the_limit_are_read_at_the_walks_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        v2_tree(dir.path(), 1_000_000, (0, 0));
        let d = dir.path().join(format!("system.slice/docker-{A}.scope"));
        let mut c = collector(dir.path(), DEFAULT_MAX);
        let docker = |s: &Containers| s.items.iter().find(|i| i.kind == "docker").cloned();
        let first = docker(&c.sample(1.0)).expect("docker");
        assert_eq!(first.memory_cache_bytes, 100_000_000);
        // Between walks: the usage is read each sample, the cache and the limit kept.
        put(
            &d,
            "memory.current",
            "400000000
",
        );
        put(
            &d,
            "memory.stat",
            "anon 200000000
file 150000000
",
        );
        put(
            &d,
            "memory.max",
            "1073741824
",
        );
        for _ in 1..WALK_EVERY {
            let s = docker(&c.sample(1.0)).expect("docker");
            assert_eq!(s.memory_cache_bytes, 100_000_000, "kept between walks");
            assert_eq!(
                s.memory_limit_bytes,
                Some(536_870_912),
                "kept between walks"
            );
            assert_eq!(s.memory_bytes, 300_000_000, "usage read, kept cache apart");
        }
        // The next walk reads them again.
        let s = docker(&c.sample(1.0)).expect("docker");
        assert_eq!(s.memory_cache_bytes, 150_000_000);
        assert_eq!(s.memory_limit_bytes, Some(1_073_741_824));
        assert_eq!(s.memory_bytes, 250_000_000);
    }

    #[test]
    fn v2_tree_gives_percent_rates_limits_and_cache_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        v2_tree(dir.path(), 1_000_000, (0, 0));
        let mut c = collector(dir.path(), DEFAULT_MAX);
        assert_eq!(c.layout(), Some(&Layout::V2(dir.path().to_owned())));
        let first = c.sample(1.0);
        assert_eq!(first.count, 2);
        assert!(
            first.items.iter().all(|i| i.cpu_percent == 0.0),
            "no delta yet"
        );
        // 1.5 s of CPU over 2 s: 75 % of a core; 4 MB read and 2 MB written.
        v2_tree(dir.path(), 2_500_000, (4_000_000, 2_000_000));
        let s = c.sample(2.0);
        let d = s.items.iter().find(|i| i.kind == "docker").expect("docker");
        assert!((d.cpu_percent - 75.0).abs() < 0.01, "{}", d.cpu_percent);
        assert_eq!(d.name, &A[..12]);
        assert_eq!(d.id, A);
        assert_eq!(d.cgroup, format!("/system.slice/docker-{A}.scope"));
        assert_eq!(d.memory_bytes, 200_000_000, "the page cache apart");
        assert_eq!(d.memory_cache_bytes, 100_000_000);
        assert_eq!(d.memory_limit_bytes, Some(536_870_912));
        assert_eq!(
            (d.io_read_bytes_per_s, d.io_write_bytes_per_s),
            (0, 0),
            "block I/O is read at the walks"
        );
        assert_eq!(d.pids, 7);
        assert_eq!(
            d.net_rx_bytes_per_s, None,
            "its process (this test) shares the agent's network namespace"
        );
        assert_eq!(
            c.pids().get(&std::process::id()),
            Some(&A.to_owned()),
            "tagged"
        );
        let svc = s
            .items
            .iter()
            .find(|i| i.kind == "systemd")
            .expect("service");
        assert_eq!(svc.name, "cron.service");
        assert_eq!(svc.memory_limit_bytes, None, "max: unlimited");
        assert_eq!(s.items[0].kind, "docker", "sorted by CPU");
        assert_eq!(WALK_EVERY, 5, "the figures below");
        assert_eq!(
            io_at_next_walk(&mut c),
            (666_667, 333_333),
            "4 MB and 2 MB over the 6 s since the last walk (2 + 4 x 1)"
        );
    }

    /// The docker container's I/O rates at the next walk (the collector has taken two
    /// samples), one second a sample from here.
    fn io_at_next_walk(c: &mut ContainerCollector) -> (u64, u64) {
        for _ in 2..WALK_EVERY {
            let s = c.sample(1.0);
            let d = s.items.iter().find(|i| i.kind == "docker").expect("docker");
            assert_eq!((d.io_read_bytes_per_s, d.io_write_bytes_per_s), (0, 0));
        }
        let s = c.sample(1.0);
        let d = s.items.iter().find(|i| i.kind == "docker").expect("docker");
        (d.io_read_bytes_per_s, d.io_write_bytes_per_s)
    }

    /// A hybrid v1 tree: one hierarchy per controller, and `unified/` without controllers.
    fn v1_tree(root: &Path, cpu_ns: u64, io: (u64, u64)) {
        put(&root.join("unified"), "cgroup.controllers", "");
        let rel = format!("docker/{B}");
        put(
            &root.join("cpuacct").join(&rel),
            "cpuacct.usage",
            &format!("{cpu_ns}\n"),
        );
        let m = root.join("memory").join(&rel);
        put(&m, "memory.usage_in_bytes", "50000000\n");
        put(&m, "memory.limit_in_bytes", "9223372036854771712\n");
        put(
            &m,
            "memory.stat",
            "cache 20000000\nrss 30000000\ntotal_cache 20000000\ntotal_rss 30000000\n",
        );
        put(&m, "cgroup.procs", "");
        put(&root.join("pids").join(&rel), "pids.current", "3\n");
        put(
            &root.join("blkio").join(&rel),
            "blkio.throttle.io_service_bytes",
            &format!(
                "8:0 Read {}\n8:0 Write {}\n8:0 Sync 0\n8:0 Async 0\n8:0 Total 0\nTotal 0\n",
                io.0, io.1
            ),
        );
        let s = root.join("memory/system.slice/ssh.service");
        put(&s, "memory.usage_in_bytes", "4096\n");
        put(&s, "memory.limit_in_bytes", "1048576\n");
        put(&s, "cgroup.procs", "");
    }

    /// A process row as the process table gives it: only the pid and the start time matter
    /// here.
    fn row(pid: u32, start_unix_ms: u64) -> Process {
        Process {
            pid,
            start_unix_ms,
            ..Process::default()
        }
    }

    /// `<proc>/<pid>/cgroup` of a hybrid host, the memory hierarchy's cgroup `memory`.
    fn proc_cgroup_v1(proc: &Path, pid: u32, memory: &str) {
        put(
            &proc.join(pid.to_string()),
            "cgroup",
            &format!("9:name=systemd:/\n7:blkio:/\n4:memory:{memory}\n2:cpuacct:/\n0::/\n"),
        );
    }

    fn tags(procs: &[Process]) -> Vec<(u32, &str)> {
        procs
            .iter()
            .map(|p| (p.pid, p.container.as_str()))
            .collect()
    }

    /// A v1 tree with container `B` holding pid 100, and a collector over it: the collector,
    /// the container's memory cgroup and the fake `/proc` (the directory is `dir`).
    fn v1_with_pid_100(dir: &Path) -> (ContainerCollector, PathBuf, PathBuf) {
        let (root, proc) = (dir.join("cg"), dir.join("proc"));
        v1_tree(&root, 1, (0, 0));
        let docker = root.join(format!("memory/docker/{B}"));
        put(&docker, "cgroup.procs", "100\n");
        let c = ContainerCollector::new(ContainersConfig {
            cgroup_root: root,
            proc_root: proc.clone(),
            max: DEFAULT_MAX,
            runtime_sockets: Vec::new(),
        });
        (c, docker, proc)
    }

    /// The containers' `cgroup.procs` are read at the walks only; a process first seen
    /// between walks is tagged from its own `/proc/<pid>/cgroup` at its first sample.
    #[test]
    fn a_process_started_in_a_container_between_walks_is_tagged_at_its_first_sample() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut c, _, proc) = v1_with_pid_100(dir.path());
        assert_eq!(c.controller.as_deref(), Some("memory"));
        let mut procs = vec![row(100, 1), row(200, 1)];
        c.sample_tagging(1.0, &mut procs);
        assert_eq!(
            tags(&procs),
            [(100, B), (200, "")],
            "from the walk's cgroup.procs"
        );

        // Between walks: new processes in the container's cgroup, in a cgroup below it, in a
        // service's, and in none; their /proc/<pid>/cgroup says where.
        proc_cgroup_v1(&proc, 300, &format!("/docker/{B}"));
        proc_cgroup_v1(&proc, 301, &format!("/docker/{B}/init/a"));
        proc_cgroup_v1(&proc, 302, "/system.slice/ssh.service");
        proc_cgroup_v1(&proc, 303, "/user.slice");
        // Too deep below the container: the walk's cgroup.procs files stop 3 levels down.
        proc_cgroup_v1(&proc, 304, &format!("/docker/{B}/a/b/c/d"));
        procs.extend([300, 301, 302, 303, 304].map(|p| row(p, 2)));
        let s = c.sample_tagging(1.0, &mut procs);
        assert_eq!(s.count, 2);
        assert_eq!(
            tags(&procs),
            [
                (100, B),
                (200, ""),
                (300, B),
                (301, B),
                (302, "ssh.service"),
                (303, ""),
                (304, "")
            ]
        );
        // A tag is kept: the file is read once per process (here: its change is not seen).
        proc_cgroup_v1(&proc, 303, &format!("/docker/{B}"));
        c.sample_tagging(1.0, &mut procs);
        assert_eq!(procs[5].container, "", "303 kept its tag");
        // A pid given to a new process (another start time) is looked up afresh.
        procs[5].start_unix_ms = 3;
        c.sample_tagging(1.0, &mut procs);
        assert_eq!(procs[5].container, B, "the new 303");
        // A process whose file cannot be read (ended meanwhile) is in none.
        procs.push(row(305, 3));
        c.sample_tagging(1.0, &mut procs);
        assert_eq!(procs[7].container, "");
    }

    /// A process moved into or out of a container after its first sample is tagged anew at
    /// the next walk, at most `WALK_EVERY` samples later.
    #[test]
    fn a_process_moved_out_of_a_container_is_untagged_at_the_next_walk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut c, docker, proc) = v1_with_pid_100(dir.path());
        let mut procs = vec![row(100, 1), row(200, 1)];
        c.sample_tagging(1.0, &mut procs);
        assert_eq!(tags(&procs), [(100, B), (200, "")]);
        // 100 moves out, 200 in.
        put(&docker, "cgroup.procs", "200\n");
        proc_cgroup_v1(&proc, 100, "/");
        proc_cgroup_v1(&proc, 200, &format!("/docker/{B}"));
        for _ in 1..WALK_EVERY {
            c.sample_tagging(1.0, &mut procs);
            assert_eq!(tags(&procs), [(100, B), (200, "")], "until the walk");
        }
        c.sample_tagging(1.0, &mut procs);
        assert_eq!(tags(&procs), [(100, ""), (200, B)], "at the walk");
        assert_eq!(c.pids().get(&200), Some(&B.to_owned()));
        assert_eq!(c.tags.len(), 2);
        // Processes that ended are forgotten.
        procs.truncate(1);
        c.sample_tagging(1.0, &mut procs);
        assert_eq!(c.tags.len(), 1);
    }

    /// A container whose processes share the agent's network namespace is looked at again
    /// only when its processes change.
    #[test]
    fn a_shared_network_namespace_is_looked_at_again_only_for_other_processes() {
        let dir = tempfile::tempdir().expect("tempdir");
        v2_tree(dir.path(), 1, (0, 0));
        let d = dir.path().join(format!("system.slice/docker-{A}.scope"));
        let mut c = collector(dir.path(), DEFAULT_MAX);
        c.sample(1.0);
        assert_eq!(
            c.netns_looks, 1,
            "this test's process, in the agent's namespace"
        );
        for _ in 0..2 * WALK_EVERY {
            c.sample(1.0);
        }
        assert_eq!(c.netns_looks, 1, "the same process at the next two walks");
        let other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let _kill = KillOnDrop(other);
        put(
            &d,
            "cgroup.procs",
            &format!("{}\n{}\n", std::process::id(), _kill.0.id()),
        );
        for _ in 0..WALK_EVERY {
            let s = c.sample(1.0);
            let item = s.items.iter().find(|i| i.kind == "docker").expect("docker");
            assert_eq!(item.net_rx_bytes_per_s, None, "shares the namespace");
        }
        assert_eq!(c.netns_looks, 3, "both processes at the walk");
    }

    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// On cgroup v2 the process's `0::` line names its cgroup.
    #[test]
    fn a_new_process_is_tagged_from_the_v2_line_of_its_cgroup_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, proc) = (dir.path().join("cg"), dir.path().join("proc"));
        v2_tree(&root, 1, (0, 0));
        let mut c = ContainerCollector::new(ContainersConfig {
            cgroup_root: root.clone(),
            proc_root: proc.clone(),
            max: DEFAULT_MAX,
            runtime_sockets: Vec::new(),
        });
        assert_eq!(c.controller, None);
        let mut procs = vec![row(std::process::id(), 1)];
        c.sample_tagging(1.0, &mut procs);
        assert_eq!(
            procs[0].container, A,
            "from the walk: the tree lists this process"
        );
        put(
            &proc.join("400"),
            "cgroup",
            &format!("0::/system.slice/docker-{A}.scope\n"),
        );
        put(
            &proc.join("401"),
            "cgroup",
            "0::/system.slice/cron.service\n",
        );
        put(
            &proc.join("402"),
            "cgroup",
            &format!("1:name=systemd:/system.slice/docker-{A}.scope\n0::/init.scope\n"),
        );
        procs.extend([400, 401, 402].map(|p| row(p, 1)));
        c.sample_tagging(1.0, &mut procs);
        assert_eq!(
            tags(&procs)[1..],
            [(400, A), (401, "cron.service"), (402, "")]
        );
    }

    #[test]
    fn v1_tree_reads_each_controller() {
        let dir = tempfile::tempdir().expect("tempdir");
        v1_tree(dir.path(), 10_000_000_000, (0, 0));
        let mut c = collector(dir.path(), DEFAULT_MAX);
        assert!(
            matches!(c.layout(), Some(Layout::V1 { .. })),
            "{:?}",
            c.layout()
        );
        c.sample(1.0);
        // Half a second of CPU in one second: 50 %.
        v1_tree(dir.path(), 10_500_000_000, (1_000, 3_000));
        let s = c.sample(1.0);
        assert_eq!(s.count, 2);
        let d = s.items.iter().find(|i| i.kind == "docker").expect("docker");
        assert!((d.cpu_percent - 50.0).abs() < 0.01, "{}", d.cpu_percent);
        assert_eq!(d.memory_bytes, 30_000_000);
        assert_eq!(d.memory_cache_bytes, 20_000_000);
        assert_eq!(d.memory_limit_bytes, None, "the v1 'unlimited' value");
        assert_eq!(d.pids, 3);
        let svc = s
            .items
            .iter()
            .find(|i| i.kind == "systemd")
            .expect("service");
        assert_eq!(svc.memory_limit_bytes, Some(1_048_576));
        assert_eq!(svc.cpu_percent, 0.0, "no cpuacct directory: zero");
        assert_eq!(svc.pids, 0, "no pids directory, no process: zero");
        assert_eq!(
            io_at_next_walk(&mut c),
            (200, 600),
            "1,000 and 3,000 bytes over the 5 s since the last walk"
        );
    }

    #[test]
    fn the_count_is_bounded_and_gone_containers_are_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        put(dir.path(), "cgroup.controllers", "");
        for i in 0..20 {
            put(
                &dir.path().join(format!("system.slice/s{i:02}.service")),
                "cpu.stat",
                "usage_usec 1\n",
            );
        }
        let mut c = collector(dir.path(), 8);
        assert_eq!(c.sample(1.0).count, 8);
        assert_eq!(c.previous.len(), 8);
        let mut c = collector(dir.path(), DEFAULT_MAX);
        assert_eq!(c.sample(1.0).count, 20);
        fs::remove_dir_all(dir.path().join("system.slice/s00.service")).expect("rm");
        // On cgroupfs the kept files of a removed cgroup fail to read and it is gone from the
        // next sample (`tests/containers_real.rs`); the
        // files of a plain directory still read once open, and it goes at the next walk.
        for _ in 1..WALK_EVERY {
            c.sample(1.0);
        }
        assert_eq!(c.sample(1.0).count, 19);
        assert_eq!(c.previous.len(), 19);
        // A file that cannot be read, in a directory that is gone: gone at once.
        fs::remove_dir_all(dir.path().join("system.slice/s01.service")).expect("rm");
        c.found
            .iter_mut()
            .filter(|(rel, ..)| rel.ends_with("s01.service"))
            .for_each(|(.., files)| files.cpu = Some(Kept::new(dir.path().join("gone"))));
        assert_eq!(c.sample(1.0).count, 18);
    }

    #[test]
    fn no_cgroup_filesystem_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = collector(dir.path(), DEFAULT_MAX).sample(1.0);
        assert_eq!(s.count, 0);
        assert!(s.error.expect("error").contains("no cgroup hierarchy"));
    }

    /// The cost of a sample with 50 containers (v2 files on the test's disk, not cgroupfs):
    /// printed, not asserted.
    #[test]
    fn fifty_containers_cost() {
        let dir = tempfile::tempdir().expect("tempdir");
        put(dir.path(), "cgroup.controllers", "");
        for i in 0..50 {
            let d = dir
                .path()
                .join(format!("system.slice/docker-{i:02}{}.scope", &A[2..]));
            put(&d, "cpu.stat", "usage_usec 1\n");
            put(&d, "memory.current", "1000\n");
            put(&d, "memory.max", "max\n");
            put(&d, "memory.stat", "anon 1\nfile 2\n");
            put(
                &d,
                "io.stat",
                "8:0 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n",
            );
            put(&d, "pids.current", "1\n");
            put(&d, "cgroup.procs", "");
        }
        let mut c = collector(dir.path(), DEFAULT_MAX);
        c.sample(1.0);
        let started = std::time::Instant::now();
        let n = 20;
        for _ in 0..n {
            assert_eq!(c.sample(1.0).count, 50);
        }
        eprintln!(
            "containers: 50 containers, {:?} per sample",
            started.elapsed() / n
        );
    }

    /// This machine's own cgroups: whatever is there reads without a panic and with sane
    /// figures. Prints the cost of one sample (no timed assertion).
    #[test]
    fn the_real_tree_reads_sanely() {
        let mut c = ContainerCollector::new(ContainersConfig {
            runtime_sockets: Vec::new(),
            ..ContainersConfig::default()
        });
        c.sample(1.0);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let started = std::time::Instant::now();
        let n = 20;
        let mut s = Containers::default();
        for _ in 0..n {
            s = c.sample(0.2);
        }
        let each = started.elapsed() / n;
        eprintln!(
            "containers: layout {:?}, {} found, {:?} per sample",
            c.layout(),
            s.count,
            each
        );
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f32;
        for i in &s.items {
            assert!(
                i.cpu_percent >= 0.0 && i.cpu_percent <= 100.0 * cores * 5.0,
                "{i:?}"
            );
            assert!(!i.id.is_empty() && !i.name.is_empty() && i.cgroup.starts_with('/'));
        }
    }
}
