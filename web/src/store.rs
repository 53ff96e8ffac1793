//! The cluster store: the latest state of every host, 15 minutes of chart points per host, the
//! cluster aggregates, and what changed since the last frame. Synchronous and free of I/O: the
//! pollers feed it, the hub drains its changes, and times are passed in, so it is unit-tested
//! without a runtime.

use std::collections::{HashMap, VecDeque};

use smon_proto::{HostInfo, Snapshot};

use crate::wire::{
    Cluster, EventRecord, GpuBrief, History, HostFull, HostRow, HostUpdate, Overview,
    OverviewDelta, Status,
};

/// CPU values kept for a row's sparkline.
pub const SPARK_LEN: usize = 60;

/// A GPU counts as busy from this use on.
const GPU_BUSY_PERCENT: u32 = 10;

/// One configured host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Cluster name.
    pub cluster: String,
    /// Host name (unique in its cluster).
    pub name: String,
    /// Agent address, or `in-process`.
    pub address: String,
    /// Tags.
    pub tags: Vec<String>,
}

impl HostSpec {
    /// `"<cluster>:<name>"`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.cluster, self.name)
    }
}

/// Timing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Expected time between samples.
    pub interval_ms: u64,
    /// Up -> stale after this long without a sample.
    pub stale_after_ms: u64,
    /// -> down after this long without a sample.
    pub down_after_ms: u64,
    /// Chart points kept per host.
    pub history_len: usize,
}

impl StoreConfig {
    /// Stale after 3 intervals, down after 10, 15 minutes of history.
    pub fn for_interval(interval_ms: u64) -> Self {
        let interval_ms = interval_ms.max(1);
        Self {
            interval_ms,
            stale_after_ms: 3 * interval_ms,
            down_after_ms: 10 * interval_ms,
            history_len: (15 * 60 * 1000 / interval_ms).clamp(60, 9000) as usize,
        }
    }
}

/// One chart point.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    t: u64,
    cpu: f32,
    mem: f32,
    rx: u64,
    tx: u64,
    disk: f32,
    pids: u32,
    gpu: Vec<Option<u32>>,
}

#[derive(Debug)]
struct Host {
    row: HostRow,
    info: Option<HostInfo>,
    latest: Option<Snapshot>,
    history: VecDeque<Point>,
    row_changed: bool,
    sample_changed: bool,
}

/// What the hub sends after draining the store.
#[derive(Debug, Default)]
pub struct Changes {
    /// The overview delta, if any row changed.
    pub delta: Option<OverviewDelta>,
    /// Updates for the host pages that someone watches.
    pub host_updates: Vec<(String, HostUpdate)>,
}

/// Every host's state.
#[derive(Debug)]
pub struct ClusterStore {
    cfg: StoreConfig,
    hosts: Vec<Host>,
    index: HashMap<String, usize>,
    clusters: Vec<String>,
}

fn gpu_briefs(s: &Snapshot) -> Vec<GpuBrief> {
    s.gpus
        .iter()
        .map(|g| GpuBrief {
            index: g.index,
            name: g.name.clone(),
            util_percent: g.utilization_percent,
            mem_used_bytes: g.memory_used_bytes,
            mem_total_bytes: g.memory_total_bytes,
        })
        .collect()
}

impl ClusterStore {
    /// A store for these hosts, all `pending` since `now_ms`. Cluster order is the order of
    /// first appearance.
    pub fn new(specs: Vec<HostSpec>, cfg: StoreConfig, now_ms: u64) -> Self {
        let mut s = Self {
            cfg,
            hosts: Vec::new(),
            index: HashMap::new(),
            clusters: Vec::new(),
        };
        for spec in specs {
            if !s.clusters.contains(&spec.cluster) {
                s.clusters.push(spec.cluster.clone());
            }
            let id = spec.id();
            s.index.insert(id.clone(), s.hosts.len());
            s.hosts.push(Host {
                row: HostRow {
                    id,
                    cluster: spec.cluster,
                    name: spec.name,
                    address: spec.address,
                    tags: spec.tags,
                    status: Status::Pending,
                    status_since_ms: now_ms,
                    last_seen_ms: None,
                    sample_unix_ms: None,
                    last_error: None,
                    hostname: None,
                    os: None,
                    kernel: None,
                    cpu_cores: None,
                    uptime_s: None,
                    cpu_percent: None,
                    load: None,
                    mem_percent: None,
                    mem_used_bytes: None,
                    mem_total_bytes: None,
                    swap_percent: None,
                    disk_max_percent: None,
                    disk_max_mount: None,
                    net_rx_bytes_per_s: None,
                    net_tx_bytes_per_s: None,
                    gpus: Vec::new(),
                    users: None,
                    processes: None,
                    spark: Vec::new(),
                },
                info: None,
                latest: None,
                history: VecDeque::new(),
                row_changed: true,
                sample_changed: false,
            });
        }
        s
    }

    /// The timing rules.
    pub fn config(&self) -> StoreConfig {
        self.cfg
    }

    /// Whether `id` is a known host.
    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// Every host id, in config order.
    pub fn ids(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.row.id.clone()).collect()
    }

    /// True once every host has been tried (none is `pending`).
    pub fn ready(&self) -> bool {
        self.hosts.iter().all(|h| h.row.status != Status::Pending)
    }

    fn host_mut(&mut self, id: &str) -> Option<&mut Host> {
        let i = *self.index.get(id)?;
        self.hosts.get_mut(i)
    }

    fn host(&self, id: &str) -> Option<&Host> {
        self.hosts.get(*self.index.get(id)?)
    }

    fn set_status(h: &mut Host, status: Status, now_ms: u64) {
        if h.row.status != status {
            h.row.status = status;
            h.row.status_since_ms = now_ms;
            h.row_changed = true;
        }
    }

    /// Records the static facts of a host.
    pub fn set_info(&mut self, id: &str, info: HostInfo) {
        let Some(h) = self.host_mut(id) else { return };
        h.row.hostname = Some(info.hostname.clone());
        h.row.os = Some(
            format!("{} {}", info.os_name, info.os_version)
                .trim()
                .to_owned(),
        );
        h.row.kernel = Some(info.kernel_version.clone());
        h.row.cpu_cores = Some(info.cpu_logical_cores);
        h.info = Some(info);
        h.row_changed = true;
    }

    /// Records a sample received at `now_ms` (server clock). Returns false for an unknown host.
    pub fn apply(&mut self, id: &str, snap: Snapshot, now_ms: u64) -> bool {
        let history_len = self.cfg.history_len;
        let Some(h) = self.host_mut(id) else {
            return false;
        };
        let r = &mut h.row;
        let cpu = snap.cpu.as_ref().map(|c| c.total_percent);
        let mem = snap.memory.as_ref();
        let fullest = snap
            .disks
            .iter()
            .max_by(|a, b| a.used_percent.total_cmp(&b.used_percent));
        r.last_seen_ms = Some(now_ms);
        r.sample_unix_ms = Some(snap.sample_unix_ms);
        r.last_error = None;
        r.hostname = Some(snap.hostname.clone());
        r.uptime_s = Some(snap.uptime_s);
        r.cpu_percent = cpu;
        if let Some(c) = &snap.cpu {
            r.cpu_cores = Some(c.logical_cores);
        }
        r.load = snap.load.map(|l| [l.one, l.five, l.fifteen]);
        r.mem_percent = mem.map(|m| m.used_percent);
        r.mem_used_bytes = mem.map(|m| m.used_bytes);
        r.mem_total_bytes = mem.map(|m| m.total_bytes);
        r.swap_percent = mem.map(|m| m.swap_used_percent);
        r.disk_max_percent = fullest.map(|d| d.used_percent);
        r.disk_max_mount = fullest.map(|d| d.mount_point.clone());
        let rx: u64 = snap.networks.iter().map(|n| n.rx_bytes_per_s).sum();
        let tx: u64 = snap.networks.iter().map(|n| n.tx_bytes_per_s).sum();
        r.net_rx_bytes_per_s = Some(rx);
        r.net_tx_bytes_per_s = Some(tx);
        r.gpus = gpu_briefs(&snap);
        r.users = Some(snap.sessions.len() as u32);
        r.processes = Some(snap.process_count);
        if let Some(c) = cpu {
            if r.spark.len() >= SPARK_LEN {
                r.spark.remove(0);
            }
            // One decimal is all a sparkline shows, and it halves the bytes of every row.
            r.spark.push((c * 10.0).round() / 10.0);
        }
        if h.history.len() >= history_len {
            h.history.pop_front();
        }
        h.history.push_back(Point {
            t: snap.sample_unix_ms,
            cpu: cpu.unwrap_or(0.0),
            mem: mem.map_or(0.0, |m| m.used_percent),
            rx,
            tx,
            disk: fullest.map_or(0.0, |d| d.used_percent),
            pids: snap.process_count,
            gpu: snap.gpus.iter().map(|g| g.utilization_percent).collect(),
        });
        h.latest = Some(snap);
        h.row_changed = true;
        h.sample_changed = true;
        Self::set_status(h, Status::Up, now_ms);
        true
    }

    /// Marks a host down after a connection or stream failure.
    pub fn mark_down(&mut self, id: &str, error: &str, now_ms: u64) {
        let Some(h) = self.host_mut(id) else { return };
        if h.row.last_error.as_deref() != Some(error) {
            h.row.last_error = Some(error.to_owned());
            h.row_changed = true;
        }
        Self::set_status(h, Status::Down, now_ms);
        h.sample_changed = true; // host pages show the new state at once
    }

    /// Ages hosts: up -> stale after `stale_after_ms` without a sample, -> down after
    /// `down_after_ms`.
    pub fn tick(&mut self, now_ms: u64) {
        let cfg = self.cfg;
        for h in &mut self.hosts {
            let Some(seen) = h.row.last_seen_ms else {
                continue;
            };
            let age = now_ms.saturating_sub(seen);
            let target = if age >= cfg.down_after_ms {
                Status::Down
            } else if age >= cfg.stale_after_ms {
                Status::Stale
            } else {
                continue;
            };
            if h.row.status == Status::Up
                || (h.row.status == Status::Stale && target == Status::Down)
            {
                if target == Status::Down {
                    h.row.last_error = Some(format!("no sample for {} s", age / 1000));
                }
                Self::set_status(h, target, now_ms);
                h.sample_changed = true;
            }
        }
    }

    /// Aggregates of every cluster.
    pub fn clusters(&self) -> Vec<Cluster> {
        let mut out: Vec<Cluster> = self
            .clusters
            .iter()
            .map(|n| Cluster {
                name: n.clone(),
                ..Cluster::default()
            })
            .collect();
        for h in &self.hosts {
            let Some(c) = out.iter_mut().find(|c| c.name == h.row.cluster) else {
                continue;
            };
            let r = &h.row;
            c.hosts += 1;
            match r.status {
                Status::Up => c.up += 1,
                Status::Stale => c.stale += 1,
                Status::Down => c.down += 1,
                Status::Pending => c.pending += 1,
            }
            if r.status != Status::Up {
                continue; // aggregates describe what runs now
            }
            let cores = r.cpu_cores.unwrap_or(0);
            c.cpu_cores += cores;
            c.cpu_cores_used += f64::from(r.cpu_percent.unwrap_or(0.0)) * f64::from(cores) / 100.0;
            c.mem_used_bytes += r.mem_used_bytes.unwrap_or(0);
            c.mem_total_bytes += r.mem_total_bytes.unwrap_or(0);
            c.gpus += r.gpus.len() as u32;
            c.gpus_busy += r
                .gpus
                .iter()
                .filter(|g| g.util_percent.unwrap_or(0) >= GPU_BUSY_PERCENT)
                .count() as u32;
            c.users += r.users.unwrap_or(0);
        }
        out
    }

    /// Every row.
    pub fn rows(&self) -> Vec<HostRow> {
        self.hosts.iter().map(|h| h.row.clone()).collect()
    }

    /// One row.
    pub fn row(&self, id: &str) -> Option<HostRow> {
        self.host(id).map(|h| h.row.clone())
    }

    /// Static facts and the latest sample of one host.
    pub fn info_and_latest(&self, id: &str) -> Option<(Option<HostInfo>, Option<Snapshot>)> {
        self.host(id).map(|h| (h.info.clone(), h.latest.clone()))
    }

    /// Visits every host in config order: its row, its static facts and its latest sample (with
    /// the detail parts while someone watches the host). For `/metrics`, which copies what it
    /// needs and encodes after the lock is released.
    pub fn for_each_host(&self, mut f: impl FnMut(&HostRow, Option<&HostInfo>, Option<&Snapshot>)) {
        for h in &self.hosts {
            f(&h.row, h.info.as_ref(), h.latest.as_ref());
        }
    }

    /// The full overview.
    pub fn overview(&self, now_ms: u64) -> Overview {
        Overview {
            server_time_ms: now_ms,
            clusters: self.clusters(),
            hosts: self.rows(),
        }
    }

    /// The full state of a host page.
    pub fn host_full(&self, id: &str, now_ms: u64) -> Option<HostFull> {
        let h = self.host(id)?;
        let n_gpu = h.history.iter().map(|p| p.gpu.len()).max().unwrap_or(0);
        let mut hist = History {
            t: Vec::with_capacity(h.history.len()),
            cpu: Vec::with_capacity(h.history.len()),
            mem: Vec::with_capacity(h.history.len()),
            rx: Vec::with_capacity(h.history.len()),
            tx: Vec::with_capacity(h.history.len()),
            gpu: vec![Vec::with_capacity(h.history.len()); n_gpu],
        };
        for p in &h.history {
            hist.t.push(p.t);
            hist.cpu.push(p.cpu);
            hist.mem.push(p.mem);
            hist.rx.push(p.rx);
            hist.tx.push(p.tx);
            for (i, g) in hist.gpu.iter_mut().enumerate() {
                g.push(p.gpu.get(i).copied().flatten());
            }
        }
        Some(HostFull {
            server_time_ms: now_ms,
            host: h.row.clone(),
            info: h.info.clone(),
            detail: h.latest.clone(),
            history: hist,
        })
    }

    /// The `/events` records of a host, oldest first.
    pub fn events(&self, id: &str) -> Option<Vec<EventRecord>> {
        self.host(id).map(|h| {
            h.history
                .iter()
                .map(|p| EventRecord {
                    time: p.t,
                    cpu_percent: p.cpu,
                    memory_percent: p.mem,
                    disk_percent: p.disk,
                    num_pids: p.pids,
                })
                .collect()
        })
    }

    /// Drains what changed since the last call: an overview delta when any row changed, and a
    /// host update for each changed host that `watched` says someone looks at.
    pub fn take_changes(&mut self, now_ms: u64, watched: impl Fn(&str) -> bool) -> Changes {
        let mut rows = Vec::new();
        let mut host_updates = Vec::new();
        for h in &mut self.hosts {
            if h.row_changed {
                rows.push(h.row.clone());
                h.row_changed = false;
            }
            if h.sample_changed {
                h.sample_changed = false;
                if watched(&h.row.id) {
                    host_updates.push((
                        h.row.id.clone(),
                        HostUpdate {
                            server_time_ms: now_ms,
                            host: h.row.clone(),
                            detail: h.latest.clone(),
                        },
                    ));
                }
            }
        }
        let delta = (!rows.is_empty()).then(|| OverviewDelta {
            server_time_ms: now_ms,
            clusters: self.clusters(),
            hosts: rows,
            removed: Vec::new(),
        });
        Changes {
            delta,
            host_updates,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smon_proto::{Cpu, Disk, Gpu, Memory, NetInterface};

    fn spec(cluster: &str, name: &str) -> HostSpec {
        HostSpec {
            cluster: cluster.into(),
            name: name.into(),
            address: "127.0.0.1:1".into(),
            tags: vec![],
        }
    }

    fn snap(seq: u64, cpu: f32, gpu_util: Option<u32>) -> Snapshot {
        Snapshot {
            seq,
            sample_unix_ms: 1_000 * seq,
            hostname: "h".into(),
            cpu: Some(Cpu {
                total_percent: cpu,
                logical_cores: 4,
                ..Default::default()
            }),
            memory: Some(Memory {
                total_bytes: 1000,
                used_bytes: 250,
                used_percent: 25.0,
                ..Default::default()
            }),
            disks: vec![
                Disk {
                    mount_point: "/".into(),
                    used_percent: 40.0,
                    ..Default::default()
                },
                Disk {
                    mount_point: "/data".into(),
                    used_percent: 90.0,
                    ..Default::default()
                },
            ],
            networks: vec![
                NetInterface {
                    rx_bytes_per_s: 10,
                    tx_bytes_per_s: 1,
                    ..Default::default()
                },
                NetInterface {
                    rx_bytes_per_s: 5,
                    tx_bytes_per_s: 2,
                    ..Default::default()
                },
            ],
            gpus: gpu_util
                .map(|u| {
                    vec![Gpu {
                        index: 0,
                        utilization_percent: Some(u),
                        ..Default::default()
                    }]
                })
                .unwrap_or_default(),
            process_count: 42,
            ..Default::default()
        }
    }

    fn store() -> ClusterStore {
        ClusterStore::new(
            vec![spec("a", "h1"), spec("a", "h2"), spec("b", "h3")],
            StoreConfig::for_interval(1000),
            0,
        )
    }

    #[test]
    fn a_sample_fills_the_row_and_the_aggregates() {
        let mut s = store();
        assert!(s.apply("a:h1", snap(1, 50.0, Some(80)), 1_000));
        let r = s.row("a:h1").expect("row");
        assert_eq!(r.status, Status::Up);
        assert_eq!(r.status_since_ms, 1_000);
        assert_eq!(r.disk_max_percent, Some(90.0));
        assert_eq!(r.disk_max_mount.as_deref(), Some("/data"));
        assert_eq!(
            (r.net_rx_bytes_per_s, r.net_tx_bytes_per_s),
            (Some(15), Some(3))
        );
        assert_eq!(r.processes, Some(42));
        assert_eq!(r.spark, vec![50.0]);
        let c = &s.clusters()[0];
        assert_eq!((c.hosts, c.up, c.pending), (2, 1, 1));
        assert_eq!(c.cpu_cores, 4);
        assert!((c.cpu_cores_used - 2.0).abs() < 1e-9);
        assert_eq!((c.gpus, c.gpus_busy), (1, 1));
        assert_eq!(s.clusters()[1].name, "b");
        assert!(!s.apply("nope:x", snap(1, 1.0, None), 1));
    }

    #[test]
    fn hosts_age_to_stale_then_down_and_recover() {
        let mut s = store();
        s.apply("a:h1", snap(1, 10.0, None), 1_000);
        s.tick(3_999);
        assert_eq!(s.row("a:h1").expect("row").status, Status::Up);
        s.tick(4_000);
        let r = s.row("a:h1").expect("row");
        assert_eq!((r.status, r.status_since_ms), (Status::Stale, 4_000));
        s.tick(11_000);
        let r = s.row("a:h1").expect("row");
        assert_eq!(r.status, Status::Down);
        assert_eq!(r.last_error.as_deref(), Some("no sample for 10 s"));
        s.apply("a:h1", snap(2, 10.0, None), 12_000);
        let r = s.row("a:h1").expect("row");
        assert_eq!((r.status, r.last_error.clone()), (Status::Up, None));
        // A pending host never ages (nothing seen yet) until the poller reports a failure.
        s.tick(100_000);
        assert_eq!(s.row("a:h2").expect("row").status, Status::Pending);
        s.mark_down("a:h2", "connection refused", 100_000);
        assert_eq!(
            s.row("a:h2").expect("row").last_error.as_deref(),
            Some("connection refused")
        );
        assert!(!s.ready());
        s.mark_down("b:h3", "timeout", 100_000);
        assert!(s.ready());
    }

    #[test]
    fn deltas_carry_only_changed_rows_and_watched_hosts() {
        let mut s = store();
        let first = s.take_changes(0, |_| false);
        assert_eq!(first.delta.expect("initial rows").hosts.len(), 3);
        assert!(
            s.take_changes(1, |_| true).delta.is_none(),
            "nothing changed"
        );
        s.apply("a:h2", snap(1, 5.0, None), 1_000);
        s.apply("b:h3", snap(1, 5.0, None), 1_000);
        let c = s.take_changes(1_000, |id| id == "b:h3");
        let d = c.delta.expect("delta");
        assert_eq!(
            d.hosts.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["a:h2", "b:h3"]
        );
        assert_eq!(d.clusters.len(), 2);
        assert_eq!(c.host_updates.len(), 1);
        assert_eq!(c.host_updates[0].0, "b:h3");
        assert!(c.host_updates[0].1.detail.is_some());
    }

    #[test]
    fn history_is_bounded_and_columnar() {
        let mut s = ClusterStore::new(
            vec![spec("a", "h1")],
            StoreConfig {
                history_len: 3,
                ..StoreConfig::for_interval(1000)
            },
            0,
        );
        for i in 1..=5 {
            s.apply("a:h1", snap(i, i as f32, Some(i as u32)), i * 1000);
        }
        let full = s.host_full("a:h1", 5_000).expect("host");
        assert_eq!(full.history.t, vec![3_000, 4_000, 5_000]);
        assert_eq!(full.history.cpu, vec![3.0, 4.0, 5.0]);
        assert_eq!(full.history.gpu, vec![vec![Some(3), Some(4), Some(5)]]);
        let ev = s.events("a:h1").expect("events");
        assert_eq!(ev.len(), 3);
        assert_eq!(
            ev[2],
            EventRecord {
                time: 5_000,
                cpu_percent: 5.0,
                memory_percent: 25.0,
                disk_percent: 90.0,
                num_pids: 42
            }
        );
        assert!(s.events("x:y").is_none());
    }

    #[test]
    fn sparkline_keeps_the_last_sixty() {
        let mut s = store();
        for i in 0..70u64 {
            s.apply("a:h1", snap(i + 1, i as f32, None), i * 1000);
        }
        let spark = s.row("a:h1").expect("row").spark;
        assert_eq!(spark.len(), SPARK_LEN);
        assert_eq!(spark[0], 10.0);
        assert_eq!(spark[59], 69.0);
    }
}
