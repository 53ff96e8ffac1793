//! The cluster store: the latest state of every host, 15 minutes of chart points per host
//! (compact, [`history`]), the cluster aggregates, and what changed since the last frame: the
//! overview delta is computed against the rows as the overview room has them, field by field
//! ([`delta`]). Synchronous and free of I/O: the pollers feed it, the hub drains its changes,
//! and times are passed in, so it is unit-tested without a runtime.
//!
//! The fleet may change while the server runs ([`ClusterStore::add_host`],
//! [`ClusterStore::remove_host`], [`ClusterStore::update_spec`]). The overview room keeps its
//! layout (which row is at which position) until the next delta, which carries the change
//! ([`LayoutChange`]): a removed host stays behind as a tombstone holding its room row, and an
//! added one waits, outside the room's layout, until then. Every change of a host's state is
//! also kept, in order, for the event feed ([`ClusterStore::take_transitions`]).

mod delta;
mod history;
#[cfg(test)]
mod scale;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use smon_proto::{HostInfo, Snapshot};

use crate::wire::{
    Cluster, EventRecord, GpuBrief, History, HostFull, HostRow, HostUpdate, LayoutChange, Overview,
    OverviewDelta, RowInsert, Status,
};
use history::{HistoryRing, Point};

/// CPU values kept for a row's sparkline.
pub const SPARK_LEN: usize = 60;

/// A GPU counts as busy from this use on.
const GPU_BUSY_PERCENT: u32 = 10;

/// State changes kept for [`ClusterStore::take_transitions`] at most; older ones are dropped
/// (and counted) when nobody drains them.
pub const TRANSITIONS_MAX: usize = 65_536;

/// A change of a host's state, for the event feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// The host, `"<cluster>:<host>"`.
    pub id: String,
    /// The state before.
    pub from: Status,
    /// The state after.
    pub to: Status,
    /// Why, for `down` (the failure) and `stale` (how long without a sample).
    pub reason: Option<String>,
    /// When (server clock, ms since the epoch).
    pub at_ms: u64,
}

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

#[derive(Debug)]
struct Host {
    /// The live row (REST, host pages).
    row: HostRow,
    /// The row as the overview room has it: the base of the next overview delta.
    sent: HostRow,
    /// Index in `ClusterStore::clusters`.
    cluster: usize,
    /// Sparkline points added since the last overview delta.
    spark_added: usize,
    info: Option<HostInfo>,
    /// Shared with the event feed's other consumers (the history writer, alerting): kept as
    /// received, not copied per sample.
    latest: Option<Arc<Snapshot>>,
    history: HistoryRing,
    /// The GPU of each history series (UUID, or `#index`), in order of first appearance.
    gpu_series: Vec<String>,
    /// Not in the overview room's layout yet: added since the last delta.
    fresh: bool,
    /// Removed from the fleet: out of the index, kept only for its room row until the next
    /// delta says it went.
    removed: bool,
    row_changed: bool,
    /// A text field of the row (host name, OS, error, mount point, GPU names) may have changed.
    texts_changed: bool,
    sample_changed: bool,
}

/// What the hub sends after draining the store.
#[derive(Debug, Default)]
pub struct Changes {
    /// The overview delta, if anything in the overview changed.
    pub delta: Option<OverviewDelta>,
    /// Updates for the host pages that someone watches.
    pub host_updates: Vec<(String, HostUpdate)>,
    /// Hosts removed since the last call (their pages are told).
    pub removed: Vec<String>,
}

/// Every host's state.
#[derive(Debug)]
pub struct ClusterStore {
    cfg: StoreConfig,
    /// In the overview room's order, tombstones and fresh hosts included (see the module doc).
    hosts: Vec<Host>,
    /// Live hosts by id: their place in `hosts`.
    index: HashMap<String, usize>,
    /// Cluster names, in order of appearance.
    clusters: Vec<String>,
    /// Live hosts per cluster (a cluster goes with its last host).
    cluster_sizes: Vec<usize>,
    /// The cluster totals as the overview room has them.
    sent_clusters: Vec<Cluster>,
    /// Number of the last overview delta.
    seq: u64,
    /// The overview room's layout generation.
    layout: u64,
    /// Hosts were added or removed since the last delta.
    layout_changed: bool,
    /// Hosts removed since the last delta, for their pages.
    removed_ids: Vec<String>,
    /// State changes not taken yet, oldest first.
    transitions: VecDeque<Transition>,
    /// State changes dropped because nobody took them.
    transitions_dropped: u64,
}

/// A fresh, `pending` row for `spec`.
fn pending_row(spec: HostSpec, now_ms: u64) -> HostRow {
    HostRow {
        id: spec.id(),
        cluster: spec.cluster,
        name: spec.name,
        address: spec.address,
        tags: spec.tags,
        status: Status::Pending,
        status_since_ms: now_ms,
        ..Default::default()
    }
}

/// Updates the GPU digests of a row in place; true when the list itself (count, names, UUIDs,
/// errors) changed.
fn gpu_briefs(s: &Snapshot, out: &mut Vec<GpuBrief>) -> bool {
    let error = |g: &smon_proto::Gpu| (!g.error.is_empty()).then(|| g.error.clone());
    let same = out.len() == s.gpus.len()
        && out.iter().zip(&s.gpus).all(|(b, g)| {
            b.index == g.index
                && b.name == g.name
                && b.uuid == g.uuid
                && b.error.as_deref().unwrap_or("") == g.error
        });
    if !same {
        out.clear();
        out.extend(s.gpus.iter().map(|g| GpuBrief {
            index: g.index,
            uuid: g.uuid.clone(),
            name: g.name.clone(),
            error: error(g),
            active_instances: None,
            util_percent: None,
            mem_used_bytes: None,
            mem_total_bytes: None,
        }));
    }
    for (b, g) in out.iter_mut().zip(&s.gpus) {
        b.util_percent = g.utilization_percent;
        b.mem_used_bytes = g.memory_used_bytes;
        b.mem_total_bytes = g.memory_total_bytes;
        b.active_instances = g.active_instances;
    }
    !same
}

/// Sets the row's containers digest from a sample's containers part: the count and the
/// busiest by CPU (the first listed among equals, so that idle containers do not take turns);
/// all absent without the part. True when the busiest one's name changed.
fn container_brief(c: Option<&smon_proto::Containers>, r: &mut HostRow) -> bool {
    let top = c.and_then(|c| {
        c.items
            .iter()
            .reduce(|a, b| if b.cpu_percent > a.cpu_percent { b } else { a })
    });
    r.containers = c.map(|c| c.count);
    r.container_top_cpu_percent = top.map(|t| round1(t.cpu_percent));
    match top {
        Some(t) => set_str(&mut r.container_top_name, &t.name),
        None => r.container_top_name.take().is_some(),
    }
}

/// Whether a GPU counts as busy: 10 % use or more, or, when its use is not reported (a MIG
/// GPU), an instance in use.
fn gpu_busy(g: &GpuBrief) -> bool {
    match g.util_percent {
        Some(u) => u >= GPU_BUSY_PERCENT,
        None => g.active_instances.unwrap_or(0) > 0,
    }
}

/// One sample's GPU use in series order (`series` gains the GPUs seen for the first time): a
/// GPU keeps its column for the life of the history, a missing one gives `None` there.
fn gpu_columns(series: &mut Vec<String>, gpus: &[smon_proto::Gpu]) -> Vec<Option<u32>> {
    let mut out = vec![None; series.len()];
    for g in gpus {
        let id = gpu_series_id(g);
        match series.iter().position(|s| *s == id) {
            Some(i) => {
                if let Some(slot) = out.get_mut(i) {
                    *slot = g.utilization_percent;
                }
            }
            None => {
                series.push(id);
                out.push(g.utilization_percent);
            }
        }
    }
    out
}

/// The history series of a GPU: its UUID, or its index when the UUID is unknown.
fn gpu_series_id(g: &smon_proto::Gpu) -> String {
    if g.uuid.is_empty() {
        format!("#{}", g.index)
    } else {
        g.uuid.clone()
    }
}

/// To one decimal: what the overview shows, and fewer bytes per row.
fn round1(v: f32) -> f32 {
    (v * 10.0).round() / 10.0
}

/// A load average as precise as the overview shows it (two decimals below 10, one below 100,
/// none above): a busy host's load then moves in the overview's deltas only when what is shown
/// moves.
fn round_load(v: f64) -> f64 {
    let scale = if v.abs() < 10.0 {
        100.0
    } else if v.abs() < 100.0 {
        10.0
    } else {
        1.0
    };
    (v * scale).round() / scale
}

/// Sets `slot` to `v` without allocating when it already holds it; true when it changed.
fn set_str(slot: &mut Option<String>, v: &str) -> bool {
    if slot.as_deref() == Some(v) {
        return false;
    }
    *slot = Some(v.to_owned());
    true
}

impl ClusterStore {
    /// A store for these hosts, all `pending` since `now_ms`, in the overview room's layout
    /// from the start. Cluster order is the order of first appearance; a repeated id is
    /// ignored.
    pub fn new(specs: Vec<HostSpec>, cfg: StoreConfig, now_ms: u64) -> Self {
        let mut s = Self {
            cfg,
            hosts: Vec::with_capacity(specs.len()),
            index: HashMap::with_capacity(specs.len()),
            clusters: Vec::new(),
            cluster_sizes: Vec::new(),
            sent_clusters: Vec::new(),
            seq: 0,
            layout: 0,
            layout_changed: false,
            removed_ids: Vec::new(),
            transitions: VecDeque::new(),
            transitions_dropped: 0,
        };
        for spec in specs {
            s.add_host(spec, now_ms);
        }
        for h in &mut s.hosts {
            h.fresh = false;
        }
        s.layout_changed = false;
        s.sent_clusters = s.clusters();
        s
    }

    /// Adds a host, `pending` since `now_ms`, and its cluster if it is new. It reaches the
    /// overview room with the next delta (appended: the page sorts rows itself). False when
    /// `spec`'s id is already known.
    pub fn add_host(&mut self, spec: HostSpec, now_ms: u64) -> bool {
        let id = spec.id();
        if self.index.contains_key(&id) {
            return false;
        }
        let cluster = match self.clusters.iter().position(|c| *c == spec.cluster) {
            Some(i) => i,
            None => {
                self.clusters.push(spec.cluster.clone());
                self.cluster_sizes.push(0);
                self.clusters.len() - 1
            }
        };
        if let Some(n) = self.cluster_sizes.get_mut(cluster) {
            *n += 1;
        }
        self.index.insert(id, self.hosts.len());
        let row = pending_row(spec, now_ms);
        self.hosts.push(Host {
            sent: row.clone(),
            row,
            cluster,
            spark_added: 0,
            info: None,
            latest: None,
            history: HistoryRing::new(self.cfg.history_len),
            gpu_series: Vec::new(),
            fresh: true,
            removed: false,
            row_changed: false,
            texts_changed: false,
            sample_changed: false,
        });
        self.layout_changed = true;
        true
    }

    /// Removes a host, its state and history; its cluster goes with its last host. The
    /// overview room hears of it with the next delta, and so do the host's pages. False for an
    /// unknown id.
    pub fn remove_host(&mut self, id: &str) -> bool {
        let Some(i) = self.index.remove(id) else {
            return false;
        };
        let Some(h) = self.hosts.get_mut(i) else {
            return false;
        };
        h.removed = true;
        // Only the room row is still needed.
        h.info = None;
        h.latest = None;
        h.history = HistoryRing::new(0);
        h.gpu_series = Vec::new();
        let cluster = h.cluster;
        self.layout_changed = true;
        self.removed_ids.push(id.to_owned());
        let left = self.cluster_sizes.get_mut(cluster).map(|n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left == Some(0) {
            self.clusters.remove(cluster);
            self.cluster_sizes.remove(cluster);
            for h in &mut self.hosts {
                if !h.removed && h.cluster > cluster {
                    h.cluster -= 1;
                }
            }
        }
        true
    }

    /// Changes what the configuration says of a known host (address, tags), keeping its state
    /// and history; the overview hears of it with the next delta. False for an unknown id
    /// (the id, cluster and name, cannot change: that is another host).
    pub fn update_spec(&mut self, spec: HostSpec) -> bool {
        let Some(h) = self.host_mut(&spec.id()) else {
            return false;
        };
        if h.row.address != spec.address || h.row.tags != spec.tags {
            h.row.address = spec.address;
            h.row.tags = spec.tags;
            h.row_changed = true;
            h.texts_changed = true;
            h.sample_changed = true; // host pages show the new address
        }
        true
    }

    /// The host state changes since the last call (pending/up/stale/down, with the reason for
    /// down and stale), oldest first. At most [`TRANSITIONS_MAX`] are kept between calls; older
    /// ones are dropped and counted ([`ClusterStore::transitions_dropped`]).
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        self.transitions.drain(..).collect()
    }

    /// State changes dropped so far because they were not taken in time.
    pub fn transitions_dropped(&self) -> u64 {
        self.transitions_dropped
    }

    /// The timing rules.
    pub fn config(&self) -> StoreConfig {
        self.cfg
    }

    /// Whether `id` is a known host.
    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// How many hosts there are.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there is no host.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The live hosts, in order (config order, then hosts added since, in order of addition).
    fn live(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| !h.removed)
    }

    /// Every host id, in order (config order, then hosts added since).
    pub fn ids(&self) -> Vec<String> {
        self.live().map(|h| h.row.id.clone()).collect()
    }

    /// True once every host with an agent has been tried (none is `pending`). A host without
    /// an agent (its `address` empty: a printer, a switch) is never polled: it stays `pending`
    /// and is not waited for.
    pub fn ready(&self) -> bool {
        self.live()
            .all(|h| h.row.status != Status::Pending || h.row.address.is_empty())
    }

    fn host_mut(&mut self, id: &str) -> Option<&mut Host> {
        let i = *self.index.get(id)?;
        self.hosts.get_mut(i)
    }

    fn host(&self, id: &str) -> Option<&Host> {
        self.hosts.get(*self.index.get(id)?)
    }

    /// Sets the state of `h`, recording the change in `log` (with `reason`) if it is one.
    fn set_status(
        h: &mut Host,
        status: Status,
        reason: Option<&str>,
        now_ms: u64,
        log: &mut Transitions<'_>,
    ) {
        if h.row.status != status {
            log.push(Transition {
                id: h.row.id.clone(),
                from: h.row.status,
                to: status,
                reason: reason.map(str::to_owned),
                at_ms: now_ms,
            });
            h.row.status = status;
            h.row.status_since_ms = now_ms;
            h.row_changed = true;
        }
    }

    /// The host `id` and the transition log, borrowed together.
    fn host_and_log(&mut self, id: &str) -> Option<(&mut Host, Transitions<'_>)> {
        let i = *self.index.get(id)?;
        let h = self.hosts.get_mut(i)?;
        Some((
            h,
            Transitions {
                queue: &mut self.transitions,
                dropped: &mut self.transitions_dropped,
            },
        ))
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
        h.texts_changed = true;
    }

    /// Sets the number of alerts firing on a host (the overview's badge); unknown hosts are
    /// ignored.
    pub fn set_alerts(&mut self, id: &str, firing: u32) {
        let Some(h) = self.host_mut(id) else { return };
        if h.row.alerts != firing {
            h.row.alerts = firing;
            h.row_changed = true;
            h.sample_changed = true; // the host page's row too
        }
    }

    /// Sets the digest of a host's last reachability check (the overview's mark); unknown
    /// hosts are ignored.
    pub fn set_reach(&mut self, id: &str, brief: Option<smon_api::reach::ReachBrief>) {
        let Some(h) = self.host_mut(id) else { return };
        if h.row.reach != brief {
            h.row.reach = brief;
            h.row_changed = true;
            h.sample_changed = true; // the host page's row too
        }
    }

    /// Records a sample received at `now_ms` (server clock). Returns false for an unknown host.
    pub fn apply(&mut self, id: &str, snap: impl Into<Arc<Snapshot>>, now_ms: u64) -> bool {
        let snap = snap.into();
        let Some((h, mut log)) = self.host_and_log(id) else {
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
        let mut texts = r.last_error.take().is_some();
        texts |= set_str(&mut r.hostname, &snap.hostname);
        r.uptime_s = Some(snap.uptime_s);
        r.cpu_percent = cpu.map(round1);
        if let Some(c) = &snap.cpu {
            r.cpu_cores = Some(c.logical_cores);
        }
        r.load = snap
            .load
            .map(|l| [round_load(l.one), round_load(l.five), round_load(l.fifteen)]);
        r.mem_percent = mem.map(|m| round1(m.used_percent));
        r.mem_used_bytes = mem.map(|m| m.used_bytes);
        r.mem_total_bytes = mem.map(|m| m.total_bytes);
        r.swap_percent = mem.map(|m| round1(m.swap_used_percent));
        r.swap_total_bytes = mem.map(|m| m.swap_total_bytes);
        r.disk_max_percent = fullest.map(|d| round1(d.used_percent));
        texts |= match fullest {
            Some(d) => set_str(&mut r.disk_max_mount, &d.mount_point),
            None => r.disk_max_mount.take().is_some(),
        };
        let rx: u64 = snap.networks.iter().map(|n| n.rx_bytes_per_s).sum();
        let tx: u64 = snap.networks.iter().map(|n| n.tx_bytes_per_s).sum();
        r.net_rx_bytes_per_s = Some(rx);
        r.net_tx_bytes_per_s = Some(tx);
        let io = |f: fn(&smon_proto::Disk) -> Option<u64>| {
            snap.disks.iter().filter_map(f).reduce(u64::saturating_add)
        };
        r.disk_read_bytes_per_s = io(|d| d.read_bytes_per_s);
        r.disk_write_bytes_per_s = io(|d| d.write_bytes_per_s);
        r.temp_max_celsius = snap
            .temperatures
            .iter()
            .filter_map(|t| t.celsius)
            .filter(|c| c.is_finite())
            .reduce(f32::max)
            .map(f32::round);
        texts |= gpu_briefs(&snap, &mut r.gpus);
        r.users = Some(snap.sessions.len() as u32);
        r.processes = Some(snap.process_count);
        texts |= container_brief(snap.containers.as_ref(), r);
        if let Some(c) = r.cpu_percent {
            if r.spark.len() >= SPARK_LEN {
                r.spark.remove(0);
            }
            r.spark.push(c);
            h.spark_added += 1;
        }
        h.history.push(
            Point {
                t: snap.sample_unix_ms,
                cpu: cpu.unwrap_or(0.0),
                mem: mem.map_or(0.0, |m| m.used_percent),
                disk: fullest.map_or(0.0, |d| d.used_percent),
                rx,
                tx,
                pids: snap.process_count,
            },
            gpu_columns(&mut h.gpu_series, &snap.gpus).into_iter(),
        );
        h.latest = Some(snap);
        h.row_changed = true;
        h.texts_changed |= texts;
        h.sample_changed = true;
        Self::set_status(h, Status::Up, None, now_ms, &mut log);
        true
    }

    /// Marks a host down after a connection or stream failure.
    pub fn mark_down(&mut self, id: &str, error: &str, now_ms: u64) {
        let Some((h, mut log)) = self.host_and_log(id) else {
            return;
        };
        if h.row.last_error.as_deref() != Some(error) {
            h.row.last_error = Some(error.to_owned());
            h.row_changed = true;
            h.texts_changed = true;
        }
        Self::set_status(h, Status::Down, Some(error), now_ms, &mut log);
        h.sample_changed = true; // host pages show the new state at once
    }

    /// Ages hosts: up -> stale after `stale_after_ms` without a sample, -> down after
    /// `down_after_ms`.
    pub fn tick(&mut self, now_ms: u64) {
        let cfg = self.cfg;
        let mut log = Transitions {
            queue: &mut self.transitions,
            dropped: &mut self.transitions_dropped,
        };
        for h in &mut self.hosts {
            if h.removed {
                continue;
            }
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
                let why = format!("no sample for {} s", age / 1000);
                Self::set_status(h, target, Some(&why), now_ms, &mut log);
                if target == Status::Down {
                    h.row.last_error = Some(why);
                    h.texts_changed = true;
                }
                h.sample_changed = true;
            }
        }
    }

    /// Aggregates of every cluster (`cpu_cores_used` to one decimal).
    pub fn clusters(&self) -> Vec<Cluster> {
        let mut out: Vec<Cluster> = self
            .clusters
            .iter()
            .map(|n| Cluster {
                name: n.clone(),
                ..Cluster::default()
            })
            .collect();
        for h in self.live() {
            let Some(c) = out.get_mut(h.cluster) else {
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
            c.gpus_busy += r.gpus.iter().filter(|g| gpu_busy(g)).count() as u32;
            c.users += r.users.unwrap_or(0);
        }
        for c in &mut out {
            c.cpu_cores_used = (c.cpu_cores_used * 10.0).round() / 10.0;
        }
        out
    }

    /// Every row.
    pub fn rows(&self) -> Vec<HostRow> {
        self.live().map(|h| h.row.clone()).collect()
    }

    /// One row.
    pub fn row(&self, id: &str) -> Option<HostRow> {
        self.host(id).map(|h| h.row.clone())
    }

    /// Static facts and the latest sample of one host. The sample is the shared one: a caller
    /// that edits it copies it after the store's lock is released.
    pub fn info_and_latest(&self, id: &str) -> Option<(Option<HostInfo>, Option<Arc<Snapshot>>)> {
        self.host(id).map(|h| (h.info.clone(), h.latest.clone()))
    }

    /// Visits every host in order: its row, its static facts and its latest sample (with
    /// the detail parts while someone watches the host). For `/metrics`, which copies what it
    /// needs and encodes after the lock is released.
    pub fn for_each_host(&self, mut f: impl FnMut(&HostRow, Option<&HostInfo>, Option<&Snapshot>)) {
        for h in self.live() {
            f(&h.row, h.info.as_ref(), h.latest.as_deref());
        }
    }

    /// The full overview as the overview room has it: the state after delta `seq`, so that a
    /// browser that subscribes now and applies the deltas after `seq` stays exact (hosts
    /// removed since are still in it, and hosts added since not yet).
    pub fn overview(&self, now_ms: u64) -> Overview {
        let hosts: Vec<HostRow> = self
            .hosts
            .iter()
            .filter(|h| !h.fresh)
            .map(|h| h.sent.clone())
            .collect();
        Overview {
            server_time_ms: now_ms,
            seq: self.seq,
            layout: self.layout,
            clusters: self.sent_clusters.clone(),
            offset: 0,
            total: hosts.len(),
            hosts,
        }
    }

    /// The full state of a host page.
    pub fn host_full(&self, id: &str, now_ms: u64) -> Option<HostFull> {
        let h = self.host(id)?;
        let n = h.history.len();
        let mut hist = History {
            t: Vec::with_capacity(n),
            cpu: Vec::with_capacity(n),
            mem: Vec::with_capacity(n),
            rx: Vec::with_capacity(n),
            tx: Vec::with_capacity(n),
            gpu: vec![Vec::with_capacity(n); h.history.gpus()],
            gpu_ids: h.gpu_series.clone(),
        };
        for (p, gpus) in h.history.iter() {
            hist.t.push(p.t);
            hist.cpu.push(p.cpu);
            hist.mem.push(p.mem);
            hist.rx.push(p.rx);
            hist.tx.push(p.tx);
            for (col, g) in hist.gpu.iter_mut().zip(gpus) {
                col.push(g);
            }
        }
        Some(HostFull {
            server_time_ms: now_ms,
            host: h.row.clone(),
            info: h.info.clone(),
            detail: h.latest.as_deref().cloned(),
            history: hist,
        })
    }

    /// The `/events` records of a host, oldest first.
    pub fn events(&self, id: &str) -> Option<Vec<EventRecord>> {
        self.host(id).map(|h| {
            h.history
                .iter()
                .map(|(p, _)| EventRecord {
                    time: p.t,
                    cpu_percent: p.cpu,
                    memory_percent: p.mem,
                    disk_percent: p.disk,
                    num_pids: p.pids,
                })
                .collect()
        })
    }

    /// Drains what changed since the last call: an overview delta (the layout change when
    /// hosts were added or removed, the changed fields of the changed rows, and the changed
    /// cluster totals) when anything the overview shows changed, a host update for each
    /// changed host that `watched` says someone looks at, and the hosts removed.
    pub fn take_changes(&mut self, now_ms: u64, watched: impl Fn(&str) -> bool) -> Changes {
        let layout = self.layout_changed.then(|| self.commit_layout());
        let mut patches = Vec::with_capacity(self.hosts.iter().filter(|h| h.row_changed).count());
        let mut host_updates = Vec::new();
        let mut any_row = layout.is_some();
        for (ix, h) in self.hosts.iter_mut().enumerate() {
            if h.row_changed {
                h.row_changed = false;
                any_row = true;
                if let Some(p) = delta::diff(
                    &mut h.sent,
                    &h.row,
                    h.spark_added,
                    h.texts_changed,
                    ix,
                    now_ms,
                ) {
                    patches.push(p);
                }
                h.spark_added = 0;
                h.texts_changed = false;
            }
            if h.sample_changed {
                h.sample_changed = false;
                if watched(&h.row.id) {
                    host_updates.push((
                        h.row.id.clone(),
                        HostUpdate {
                            server_time_ms: now_ms,
                            host: h.row.clone(),
                            detail: h.latest.as_deref().cloned(),
                        },
                    ));
                }
            }
        }
        let mut clusters = Vec::new();
        if any_row {
            let totals = self.clusters();
            if layout.as_ref().is_some_and(|l| l.clusters.is_some()) {
                // The set of clusters changed: send the new ones and those whose totals moved.
                for now in &totals {
                    if !self.sent_clusters.contains(now) {
                        clusters.push(now.clone());
                    }
                }
                self.sent_clusters = totals;
            } else {
                for (sent, now) in self.sent_clusters.iter_mut().zip(totals) {
                    if *sent != now {
                        clusters.push(now.clone());
                        *sent = now;
                    }
                }
            }
        }
        let delta = (layout.is_some() || !patches.is_empty() || !clusters.is_empty()).then(|| {
            self.seq += 1;
            OverviewDelta {
                server_time_ms: now_ms,
                seq: self.seq,
                layout,
                clusters,
                hosts: patches,
            }
        });
        let removed = std::mem::take(&mut self.removed_ids)
            .into_iter()
            .filter(|id| !self.index.contains_key(id)) // unless it came back since
            .collect();
        Changes {
            delta,
            host_updates,
            removed,
        }
    }

    /// Brings the overview room's layout up to date: drops the tombstones, takes the fresh
    /// hosts in whole, and says how, as the next layout generation.
    fn commit_layout(&mut self) -> LayoutChange {
        self.layout_changed = false;
        self.layout += 1;
        let mut removed = Vec::new();
        let mut added = Vec::new();
        let (mut old_pos, mut new_pos) = (0u32, 0u32);
        for h in &mut self.hosts {
            match (h.fresh, h.removed) {
                (true, true) => {} // came and went between two deltas: the room never had it
                (false, true) => {
                    removed.push(old_pos);
                    old_pos += 1;
                }
                (true, false) => {
                    h.fresh = false;
                    h.sent.clone_from(&h.row);
                    h.row_changed = false;
                    h.spark_added = 0;
                    h.texts_changed = false;
                    added.push(RowInsert {
                        i: new_pos,
                        row: h.sent.clone(),
                    });
                    new_pos += 1;
                }
                (false, false) => {
                    old_pos += 1;
                    new_pos += 1;
                }
            }
        }
        self.hosts.retain(|h| !h.removed);
        self.index = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.row.id.clone(), i))
            .collect();
        let names: Vec<&String> = self.sent_clusters.iter().map(|c| &c.name).collect();
        let clusters =
            (names != self.clusters.iter().collect::<Vec<_>>()).then(|| self.clusters.clone());
        LayoutChange {
            generation: self.layout,
            removed,
            added,
            clusters,
        }
    }
}

/// The transition log, borrowed apart from the hosts.
struct Transitions<'a> {
    queue: &'a mut VecDeque<Transition>,
    dropped: &'a mut u64,
}

impl Transitions<'_> {
    /// Appends `t`, dropping the oldest beyond [`TRANSITIONS_MAX`].
    fn push(&mut self, t: Transition) {
        if self.queue.len() >= TRANSITIONS_MAX {
            self.queue.pop_front();
            *self.dropped += 1;
        }
        self.queue.push_back(t);
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
        // A host without an agent stays pending, never aged, and is not waited for.
        let printer = HostSpec {
            address: String::new(),
            ..spec("b", "printer")
        };
        assert!(s.add_host(printer, 100_000));
        s.tick(1_000_000);
        assert_eq!(s.row("b:printer").expect("row").status, Status::Pending);
        assert!(s.ready());
    }

    #[test]
    fn deltas_carry_only_changed_rows_and_watched_hosts() {
        let mut s = store();
        assert!(
            s.take_changes(0, |_| true).delta.is_none(),
            "nothing changed since the store was made"
        );
        s.apply("a:h2", snap(1, 5.0, None), 1_000);
        s.apply("b:h3", snap(1, 5.0, None), 1_000);
        let c = s.take_changes(1_000, |id| id == "b:h3");
        let d = c.delta.expect("delta");
        assert_eq!(d.seq, 1);
        assert_eq!(
            d.hosts.iter().map(|r| r.ix).collect::<Vec<_>>(),
            vec![1, 2],
            "a:h2 and b:h3"
        );
        assert_eq!(d.clusters.len(), 2);
        assert_eq!(c.host_updates.len(), 1);
        assert_eq!(c.host_updates[0].0, "b:h3");
        assert!(c.host_updates[0].1.detail.is_some());
        assert!(s.take_changes(1_001, |_| true).delta.is_none());
    }

    #[test]
    fn a_delta_after_one_host_changes_carries_only_that_host_and_its_new_values() {
        let mut s = store();
        for id in ["a:h1", "a:h2", "b:h3"] {
            s.apply(id, snap(1, 10.0, None), 1_000);
        }
        let _ = s.take_changes(1_000, |_| false);
        // The same sample again, a second later, except for h2's CPU.
        s.apply("a:h1", snap(2, 10.0, None), 2_000);
        s.apply("a:h2", snap(2, 33.333, None), 2_000);
        let d = s.take_changes(2_000, |_| false).delta.expect("delta");
        assert_eq!(d.seq, 2);
        assert_eq!(d.hosts.len(), 2, "{:?}", d.hosts);
        let json = serde_json::to_string(&d.hosts).expect("json");
        assert_eq!(json, r#"[{"i":0,"t":0},{"i":1,"t":0,"c":33.3}]"#);
        assert_eq!(
            d.clusters
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            vec!["a"],
            "only the cluster whose totals moved"
        );
        // Only h2 changes now: the delta carries only h2.
        s.apply("a:h2", snap(3, 50.0, None), 3_000);
        let d = s.take_changes(3_000, |_| false).delta.expect("delta");
        assert_eq!(
            d.hosts.iter().map(|r| r.ix).collect::<Vec<_>>(),
            vec![1],
            "h2, the second row"
        );
        assert_eq!(d.hosts[0].cpu_percent, Some(Some(50.0)));
        assert_eq!(d.hosts[0].spark_add, None, "the point is the new CPU %");
    }

    #[test]
    fn a_subscriber_that_applies_the_deltas_holds_the_full_overview() {
        let mut s = store();
        let mut rng = 7u64;
        let mut next = move || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) as f32 / (1u64 << 31) as f32
        };
        let _ = s.take_changes(0, |_| false);
        let first = s.overview(0);
        let mut rows: Vec<HostRow> = first.hosts;
        let mut seq = first.seq;
        for i in 1..=200u64 {
            for (k, id) in ["a:h1", "a:h2", "b:h3"].iter().enumerate() {
                // h3 goes away for a while; h1 sometimes samples twice in a tick.
                if k == 2 && (50..80).contains(&i) {
                    continue;
                }
                let reps = if k == 0 && i % 9 == 0 { 2 } else { 1 };
                for r in 0..reps {
                    s.apply(id, snap(i, next() * 100.0, None), i * 1000 + r);
                }
            }
            s.tick(i * 1000 + 500);
            if let Some(d) = s.take_changes(i * 1000 + 500, |_| false).delta {
                assert_eq!(d.seq, seq + 1, "consecutive");
                seq = d.seq;
                for p in &d.hosts {
                    let row = rows.get_mut(p.ix as usize).expect("a known row");
                    delta::apply(row, p, d.server_time_ms);
                }
            }
            let full = s.overview(i * 1000 + 500);
            assert_eq!(full.seq, seq);
            assert_eq!(rows, full.hosts, "tick {i}");
            if i == 75 {
                // Text fields reach the client too: the error of a host gone down, the OS.
                assert_eq!(rows[2].status, Status::Down);
                assert!(
                    rows[2]
                        .last_error
                        .as_deref()
                        .is_some_and(|e| e.starts_with("no sample"))
                );
                s.set_info(
                    "a:h1",
                    HostInfo {
                        os_name: "Debian".into(),
                        os_version: "12".into(),
                        ..Default::default()
                    },
                );
            }
        }
        assert_eq!(rows[0].os.as_deref(), Some("Debian 12"));
        assert_eq!(rows[2].last_error, None);
        // What the overview shows is what the live rows say (coarse fields aside).
        let live = s.rows();
        for (a, b) in rows.iter().zip(&live) {
            assert_eq!(
                (a.status, &a.spark, a.cpu_percent),
                (b.status, &b.spark, b.cpu_percent)
            );
        }
        assert_eq!(rows[2].status, Status::Up, "h3 came back");
    }

    #[test]
    fn gpu_history_is_keyed_by_uuid_and_a_missing_gpu_shifts_nothing() {
        let gpu = |i: u32, uuid: &str, u: u32| Gpu {
            index: i,
            uuid: uuid.into(),
            utilization_percent: Some(u),
            ..Default::default()
        };
        let with = |seq: u64, gpus: Vec<Gpu>| Snapshot {
            gpus,
            ..snap(seq, 1.0, None)
        };
        let mut s = store();
        s.apply(
            "a:h1",
            with(
                1,
                vec![
                    gpu(0, "GPU-a", 10),
                    gpu(1, "GPU-b", 20),
                    gpu(2, "GPU-c", 30),
                ],
            ),
            1_000,
        );
        // GPU-a is gone (after a reboot the driver counts from the next one): indices move.
        s.apply(
            "a:h1",
            with(2, vec![gpu(0, "GPU-b", 21), gpu(1, "GPU-c", 31)]),
            2_000,
        );
        s.apply(
            "a:h1",
            with(
                3,
                vec![
                    gpu(0, "GPU-b", 22),
                    gpu(1, "GPU-c", 32),
                    gpu(2, "GPU-d", 40),
                ],
            ),
            3_000,
        );
        let h = s.host_full("a:h1", 3_000).expect("host").history;
        assert_eq!(h.gpu_ids, ["GPU-a", "GPU-b", "GPU-c", "GPU-d"]);
        assert_eq!(h.gpu[0], [Some(10), None, None]);
        assert_eq!(h.gpu[1], [Some(20), Some(21), Some(22)]);
        assert_eq!(h.gpu[2], [Some(30), Some(31), Some(32)]);
        assert_eq!(h.gpu[3], [None, None, Some(40)]);
        let row = s.row("a:h1").expect("row");
        assert_eq!(row.gpus[0].uuid, "GPU-b");
    }

    #[test]
    fn a_mig_gpu_without_utilisation_is_busy_when_an_instance_is_in_use() {
        let mig = |active: u32| Gpu {
            index: 0,
            uuid: "GPU-m".into(),
            mig_mode: Some(true),
            active_instances: Some(active),
            ..Default::default()
        };
        let mut s = store();
        s.apply(
            "a:h1",
            Snapshot {
                gpus: vec![mig(2)],
                ..snap(1, 1.0, None)
            },
            1_000,
        );
        assert_eq!((s.clusters()[0].gpus, s.clusters()[0].gpus_busy), (1, 1));
        s.apply(
            "a:h1",
            Snapshot {
                gpus: vec![mig(0)],
                ..snap(2, 1.0, None)
            },
            2_000,
        );
        assert_eq!(s.clusters()[0].gpus_busy, 0);
        let failed = Gpu {
            index: 0,
            error: "device: NoPermission".into(),
            ..Default::default()
        };
        s.apply(
            "a:h1",
            Snapshot {
                gpus: vec![failed],
                ..snap(3, 1.0, None)
            },
            3_000,
        );
        let row = s.row("a:h1").expect("row");
        assert_eq!(row.gpus[0].error.as_deref(), Some("device: NoPermission"));
        assert_eq!(s.clusters()[0].gpus_busy, 0);
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
    fn a_large_overview_goes_in_parts_that_add_up_to_the_whole() {
        for (hosts, parts, rows) in [(3, 1, 3), (300, 3, 128), (10_000, 64, 157)] {
            let specs = (0..hosts)
                .map(|i| spec(if i % 2 == 0 { "a" } else { "b" }, &format!("h{i}")))
                .collect();
            let s = ClusterStore::new(specs, StoreConfig::for_interval(1000), 0);
            let whole = s.overview(5);
            let split = whole.clone().into_parts();
            assert_eq!(split.len(), parts, "{hosts} hosts");
            assert_eq!(split[0].hosts.len(), rows, "{hosts} hosts");
            assert_eq!(
                split[0].clusters, whole.clusters,
                "clusters in the first part"
            );
            let mut joined = Vec::new();
            for p in &split {
                assert_eq!((p.seq, p.server_time_ms, p.total), (whole.seq, 5, hosts));
                assert_eq!(p.offset, joined.len(), "parts in order");
                assert!(p.offset == 0 || p.clusters.is_empty());
                joined.extend(p.hosts.iter().map(|r| r.id.clone()));
            }
            let ids: Vec<String> = whole.hosts.iter().map(|r| r.id.clone()).collect();
            assert_eq!(joined, ids);
        }
    }

    /// A browser on the overview: the rows and clusters it holds, kept by the deltas.
    struct Client {
        seq: u64,
        layout: u64,
        clusters: Vec<Cluster>,
        rows: Vec<HostRow>,
    }

    impl Client {
        fn subscribe(s: &ClusterStore, now_ms: u64) -> Self {
            let o = s.overview(now_ms);
            Self {
                seq: o.seq,
                layout: o.layout,
                clusters: o.clusters,
                rows: o.hosts,
            }
        }

        /// Applies a delta as `home.ts` does.
        fn apply(&mut self, d: &OverviewDelta) {
            assert_eq!(d.seq, self.seq + 1, "consecutive deltas");
            self.seq = d.seq;
            if let Some(l) = &d.layout {
                assert_eq!(l.generation, self.layout + 1, "consecutive layouts");
                self.layout = l.generation;
                if let Some(names) = &l.clusters {
                    let mut old = std::mem::take(&mut self.clusters);
                    for n in names {
                        let c = match old.iter().position(|c| c.name == *n) {
                            Some(i) => old.remove(i),
                            None => Cluster {
                                name: n.clone(),
                                ..Cluster::default()
                            },
                        };
                        self.clusters.push(c);
                    }
                }
            }
            for c in &d.clusters {
                let slot = self.clusters.iter_mut().find(|x| x.name == c.name);
                *slot.expect("a delta names only known clusters") = c.clone();
            }
            assert!(delta::apply_delta(&mut self.rows, d), "patches name rows");
        }

        /// Holds what a new subscriber would get.
        fn check(&self, s: &ClusterStore, what: &str) {
            let full = s.overview(0);
            assert_eq!((self.seq, self.layout), (full.seq, full.layout), "{what}");
            assert_eq!(self.clusters, full.clusters, "{what}");
            assert_eq!(self.rows, full.hosts, "{what}");
        }
    }

    fn spec_at(cluster: &str, name: &str, address: &str, tags: &[&str]) -> HostSpec {
        HostSpec {
            cluster: cluster.into(),
            name: name.into(),
            address: address.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn hosts_added_and_removed_reach_the_overview_in_one_delta() {
        let mut s = store();
        for id in ["a:h1", "a:h2", "b:h3"] {
            s.apply(id, snap(1, 10.0, None), 1_000);
        }
        let _ = s.take_changes(1_000, |_| false);
        let mut c = Client::subscribe(&s, 1_000);
        assert_eq!(c.layout, 0);
        assert!(s.add_host(spec("c", "h4"), 1_500));
        assert!(s.add_host(spec("a", "h5"), 1_500));
        assert!(!s.add_host(spec("a", "h1"), 1_500), "a known id");
        assert!(s.remove_host("a:h2"));
        assert!(!s.remove_host("a:h2"), "already gone");
        assert!(!s.remove_host("x:y"));
        // New hosts are live at once (REST, pollers), and the room keeps its layout until the
        // next delta: a browser subscribing now follows that delta too.
        assert!(s.contains("c:h4") && !s.contains("a:h2"));
        assert_eq!(s.ids(), vec!["a:h1", "b:h3", "c:h4", "a:h5"]);
        let late = Client::subscribe(&s, 1_600);
        assert_eq!(
            late.rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["a:h1", "a:h2", "b:h3"],
            "the room's layout until the delta"
        );
        // A sample of a new host before the delta: the added row carries it.
        s.apply("c:h4", snap(2, 77.0, None), 1_700);
        s.apply("b:h3", snap(2, 20.0, None), 2_000);
        let ch = s.take_changes(2_000, |_| false);
        assert_eq!(ch.removed, vec!["a:h2"]);
        let d = ch.delta.expect("a delta");
        let l = d.layout.as_ref().expect("a layout change");
        assert_eq!(l.generation, 1);
        assert_eq!(l.removed, vec![1], "a:h2 was second");
        assert_eq!(
            l.added
                .iter()
                .map(|a| (a.i, a.row.id.as_str(), a.row.status))
                .collect::<Vec<_>>(),
            vec![(2, "c:h4", Status::Up), (3, "a:h5", Status::Pending)]
        );
        assert_eq!(l.added[0].row.cpu_percent, Some(77.0));
        assert_eq!(
            l.clusters.as_deref(),
            Some(&["a".to_owned(), "b".to_owned(), "c".to_owned()][..])
        );
        // The patch of b:h3 names its new position (1, once a:h2 is gone); no patch repeats
        // the added rows.
        assert_eq!(
            d.hosts.iter().map(|p| p.ix).collect::<Vec<_>>(),
            vec![1],
            "{:?}",
            d.hosts
        );
        assert_eq!(d.hosts[0].cpu_percent, Some(Some(20.0)));
        let names: Vec<&str> = d.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["a", "b", "c"],
            "a lost and gained a host, b's host sampled, c is new"
        );
        let mut late = late;
        for cl in [&mut c, &mut late] {
            cl.apply(&d);
            cl.check(&s, "after the layout change");
        }
        assert_eq!(
            serde_json::to_value(&d).expect("json")["layout"]["gen"],
            serde_json::json!(1)
        );
        // Nothing more changed: no delta, no layout.
        assert!(s.take_changes(2_001, |_| false).delta.is_none());
    }

    #[test]
    fn a_cluster_goes_with_its_last_host_and_comes_back_at_the_end() {
        let mut s = store();
        let _ = s.take_changes(0, |_| false);
        let mut c = Client::subscribe(&s, 0);
        assert!(s.remove_host("b:h3"));
        assert_eq!(
            s.clusters()
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>(),
            vec!["a"]
        );
        let d = s.take_changes(1_000, |_| false).delta.expect("delta");
        let l = d.layout.as_ref().expect("layout");
        assert_eq!((l.removed.clone(), l.added.len()), (vec![2], 0));
        assert_eq!(l.clusters.as_deref(), Some(&["a".to_owned()][..]));
        c.apply(&d);
        c.check(&s, "b gone");
        // Removing every host of a cluster keeps the others' cluster right.
        assert!(s.remove_host("a:h1") && s.remove_host("a:h2"));
        assert!(s.add_host(spec("b", "h9"), 2_000));
        assert!(s.add_host(spec("a", "h1"), 2_000));
        s.apply("a:h1", snap(3, 50.0, None), 2_500);
        let cl = s.clusters();
        assert_eq!(
            cl.iter()
                .map(|c| (c.name.as_str(), c.hosts, c.up))
                .collect::<Vec<_>>(),
            vec![("b", 1, 0), ("a", 1, 1)],
            "a came back after b"
        );
        let d = s.take_changes(3_000, |_| false).delta.expect("delta");
        c.apply(&d);
        c.check(&s, "clusters back");
        assert!(!s.is_empty() && s.len() == 2);
        // Every host gone: an empty overview.
        assert!(s.remove_host("b:h9") && s.remove_host("a:h1"));
        assert!(s.is_empty());
        let d = s.take_changes(4_000, |_| false).delta.expect("delta");
        c.apply(&d);
        c.check(&s, "empty");
        assert!(c.rows.is_empty() && c.clusters.is_empty());
        assert!(s.ready(), "no host left to try");
    }

    #[test]
    fn a_removed_host_is_gone_from_every_view() {
        let mut s = store();
        for id in ["a:h1", "a:h2", "b:h3"] {
            s.apply(id, snap(1, 10.0, Some(50)), 1_000);
            s.set_info(
                id,
                HostInfo {
                    cpu_logical_cores: 4,
                    ..Default::default()
                },
            );
        }
        assert!(s.remove_host("a:h2"));
        assert!(s.row("a:h2").is_none());
        assert!(s.host_full("a:h2", 1).is_none());
        assert!(s.events("a:h2").is_none());
        assert!(s.info_and_latest("a:h2").is_none());
        assert!(!s.apply("a:h2", snap(2, 1.0, None), 2_000), "a late sample");
        s.mark_down("a:h2", "late", 2_000);
        s.set_info("a:h2", HostInfo::default());
        assert_eq!(
            s.rows().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec!["a:h1", "b:h3"]
        );
        let mut seen = Vec::new();
        s.for_each_host(|r, _, _| seen.push(r.id.clone()));
        assert_eq!(seen, vec!["a:h1", "b:h3"], "what /metrics reads");
        let a = &s.clusters()[0];
        assert_eq!((a.hosts, a.up, a.gpus, a.cpu_cores), (1, 1, 1, 4));
        // Aging ignores it (no transition for a removed host).
        let _ = s.take_transitions();
        s.tick(60_000);
        let t = s.take_transitions();
        assert_eq!(
            t.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            vec!["a:h1", "b:h3"]
        );
    }

    #[test]
    fn a_host_removed_and_added_again_before_the_delta_is_a_new_row() {
        let mut s = store();
        s.apply("a:h2", snap(1, 10.0, None), 1_000);
        let _ = s.take_changes(1_000, |_| false);
        let mut c = Client::subscribe(&s, 1_000);
        assert!(s.remove_host("a:h2"));
        assert!(s.add_host(spec("a", "h2"), 1_500));
        assert_eq!(s.row("a:h2").expect("row").status, Status::Pending);
        assert!(
            s.events("a:h2").expect("events").is_empty(),
            "a new history"
        );
        let ch = s.take_changes(2_000, |_| false);
        assert!(
            ch.removed.is_empty(),
            "its pages need not hear it went: it is back"
        );
        let d = ch.delta.expect("delta");
        let l = d.layout.as_ref().expect("layout");
        assert_eq!(l.removed, vec![1]);
        assert_eq!(l.added.len(), 1);
        assert_eq!(l.added[0].i, 2, "appended");
        assert_eq!(l.clusters, None, "the same clusters");
        c.apply(&d);
        c.check(&s, "re-added");
        // Added and removed between two deltas: the room never hears of it.
        assert!(s.add_host(spec("z", "tmp"), 2_500));
        assert!(s.remove_host("z:tmp"));
        let d = s.take_changes(3_000, |_| false).delta.expect("delta");
        let l = d.layout.as_ref().expect("layout");
        assert!(l.removed.is_empty() && l.added.is_empty() && l.clusters.is_none());
        c.apply(&d);
        c.check(&s, "came and went");
    }

    #[test]
    fn a_changed_spec_keeps_the_state_and_patches_address_and_tags() {
        let mut s = store();
        for i in 1..=3 {
            s.apply("a:h1", snap(i, 10.0, None), i * 1000);
        }
        let _ = s.take_changes(3_000, |_| false);
        let mut c = Client::subscribe(&s, 3_000);
        assert!(!s.update_spec(spec("a", "nope")));
        assert!(s.update_spec(spec_at("a", "h1", "10.0.0.9:50051", &["gpu"])));
        let r = s.row("a:h1").expect("row");
        assert_eq!(
            (r.address.as_str(), r.tags.clone()),
            ("10.0.0.9:50051", vec!["gpu".to_owned()])
        );
        assert_eq!((r.status, r.spark.len()), (Status::Up, 3), "state kept");
        assert_eq!(s.events("a:h1").expect("events").len(), 3, "history kept");
        let ch = s.take_changes(3_500, |id| id == "a:h1");
        assert_eq!(ch.host_updates.len(), 1, "its page shows the new address");
        let d = ch.delta.expect("delta");
        assert!(d.layout.is_none(), "no row added or removed");
        assert_eq!(
            serde_json::to_string(&d.hosts).expect("json"),
            r#"[{"i":0,"a":"10.0.0.9:50051","tg":["gpu"]}]"#
        );
        c.apply(&d);
        c.check(&s, "new spec");
        // The same spec again changes nothing.
        assert!(s.update_spec(spec_at("a", "h1", "10.0.0.9:50051", &["gpu"])));
        assert!(s.take_changes(4_000, |_| true).delta.is_none());
    }

    #[test]
    fn transitions_are_kept_in_order_with_their_reasons() {
        let mut s = store();
        assert!(
            s.take_transitions().is_empty(),
            "starting pending is no change"
        );
        s.mark_down("a:h2", "connection refused", 500);
        s.mark_down("a:h2", "connection refused again", 600);
        s.apply("a:h1", snap(1, 10.0, None), 1_000);
        s.apply("a:h1", snap(2, 10.0, None), 2_000);
        s.tick(5_000);
        s.tick(12_000);
        s.apply("a:h1", snap(3, 10.0, None), 13_000);
        let t = s.take_transitions();
        let tr = |id: &str, from, to, reason: Option<&str>, at_ms| Transition {
            id: id.into(),
            from,
            to,
            reason: reason.map(str::to_owned),
            at_ms,
        };
        assert_eq!(
            t,
            vec![
                tr(
                    "a:h2",
                    Status::Pending,
                    Status::Down,
                    Some("connection refused"),
                    500
                ),
                tr("a:h1", Status::Pending, Status::Up, None, 1_000),
                tr(
                    "a:h1",
                    Status::Up,
                    Status::Stale,
                    Some("no sample for 3 s"),
                    5_000
                ),
                tr(
                    "a:h1",
                    Status::Stale,
                    Status::Down,
                    Some("no sample for 10 s"),
                    12_000
                ),
                tr("a:h1", Status::Down, Status::Up, None, 13_000),
            ]
        );
        assert!(s.take_transitions().is_empty(), "taken");
        assert_eq!(
            serde_json::to_value(&t[0]).expect("json"),
            serde_json::json!({"id": "a:h2", "from": "pending", "to": "down",
                "reason": "connection refused", "at_ms": 500})
        );
        assert_eq!(s.transitions_dropped(), 0);
    }

    #[test]
    fn transitions_nobody_takes_are_bounded() {
        let mut s = ClusterStore::new(vec![spec("a", "h")], StoreConfig::for_interval(1000), 0);
        let n = TRANSITIONS_MAX as u64 + 10;
        for i in 0..n {
            if i % 2 == 0 {
                s.apply("a:h", snap(i + 1, 1.0, None), i);
            } else {
                s.mark_down("a:h", "gone", i);
            }
        }
        assert_eq!(s.transitions_dropped(), 10);
        let t = s.take_transitions();
        assert_eq!(t.len(), TRANSITIONS_MAX);
        assert_eq!(t[0].at_ms, 10, "the oldest went first");
        assert_eq!(t.last().map(|t| t.at_ms), Some(n - 1));
    }

    #[test]
    fn a_subscriber_follows_a_fleet_that_keeps_changing() {
        // Samples, hosts added, removed and changed, and new subscribers at any time: after
        // every delta each browser holds exactly what a new subscriber would get.
        let mut rng = 11u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n.max(1)
        };
        let mut s = store();
        let _ = s.take_changes(0, |_| false);
        let mut clients = vec![Client::subscribe(&s, 0)];
        let mut made = 3u64;
        for tick in 1..=300u64 {
            let now = tick * 1000;
            let ids = s.ids();
            for id in &ids {
                if next(4) != 0 {
                    s.apply(
                        id,
                        snap(tick, next(1000) as f32 / 10.0, Some(next(100) as u32)),
                        now - 100,
                    );
                }
            }
            match next(6) {
                0 => {
                    made += 1;
                    let cluster = ["a", "b", "c", "d"][next(4) as usize];
                    assert!(s.add_host(spec(cluster, &format!("n{made}")), now - 50));
                }
                1 if !ids.is_empty() => {
                    let id = &ids[next(ids.len() as u64) as usize];
                    assert!(s.remove_host(id));
                }
                2 if !ids.is_empty() => {
                    let id = &ids[next(ids.len() as u64) as usize];
                    let (cluster, name) = id.split_once(':').expect("an id");
                    let addr = format!("10.0.0.{}:1", next(250));
                    assert!(s.update_spec(spec_at(cluster, name, &addr, &["t"])));
                }
                3 => clients.push(Client::subscribe(&s, now - 20)),
                _ => {}
            }
            s.tick(now);
            if let Some(d) = s.take_changes(now, |_| false).delta {
                for c in &mut clients {
                    c.apply(&d);
                }
            }
            for (k, c) in clients.iter().enumerate() {
                c.check(&s, &format!("client {k} at tick {tick}"));
            }
            if clients.len() > 8 {
                clients.remove(0);
            }
        }
        let full = s.overview(0);
        assert!(full.layout > 20, "the fleet changed often: {}", full.layout);
        let live: Vec<String> = full.hosts.iter().map(|r| r.id.clone()).collect();
        assert_eq!(
            live,
            s.ids(),
            "after the last delta the room has every host"
        );
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

    fn container(name: &str, cpu: f32) -> smon_proto::Container {
        smon_proto::Container {
            id: name.into(),
            name: name.into(),
            kind: "systemd".into(),
            cpu_percent: cpu,
            ..Default::default()
        }
    }

    fn with_containers(seq: u64, items: Vec<smon_proto::Container>, count: u32) -> Snapshot {
        Snapshot {
            containers: Some(smon_proto::Containers {
                count,
                items,
                error: None,
            }),
            ..snap(seq, 10.0, None)
        }
    }

    #[test]
    fn the_row_carries_the_container_count_and_the_busiest() {
        let mut s = store();
        s.apply(
            "a:h1",
            with_containers(
                1,
                vec![
                    container("web.service", 12.34),
                    container("db.service", 50.06),
                    container("cron.service", 50.06),
                ],
                7,
            ),
            1_000,
        );
        let r = s.row("a:h1").expect("row");
        assert_eq!(r.containers, Some(7), "the count, not the items listed");
        assert_eq!(
            (r.container_top_name.as_deref(), r.container_top_cpu_percent),
            (Some("db.service"), Some(50.1)),
            "the busiest, the first listed among equals, to one decimal"
        );

        // All idle: the first listed stays the busiest, not the last.
        s.apply(
            "a:h1",
            with_containers(2, vec![container("a", 0.0), container("b", 0.0)], 2),
            2_000,
        );
        let r = s.row("a:h1").expect("row");
        assert_eq!(r.container_top_name.as_deref(), Some("a"));

        // Reported, none found: a count of 0 and no busiest.
        s.apply("a:h1", with_containers(3, vec![], 0), 3_000);
        let r = s.row("a:h1").expect("row");
        assert_eq!(r.containers, Some(0));
        assert_eq!(
            (r.container_top_name, r.container_top_cpu_percent),
            (None, None)
        );

        // Not reported (monitor.containers off): absent, and absent from the JSON.
        s.apply("a:h1", snap(4, 10.0, None), 4_000);
        let r = s.row("a:h1").expect("row");
        assert_eq!(
            (r.containers, r.container_top_name.as_deref()),
            (None, None)
        );
        let json = serde_json::to_value(&r).expect("json");
        for k in [
            "containers",
            "container_top_name",
            "container_top_cpu_percent",
        ] {
            assert!(json.get(k).is_none(), "{k} in {json}");
        }
    }

    #[test]
    fn container_changes_reach_the_overview_under_short_keys() {
        let mut s = store();
        s.apply("a:h1", snap(1, 10.0, None), 1_000);
        s.take_changes(1_000, |_| false);
        let mut client = Client::subscribe(&s, 1_000);

        s.apply(
            "a:h1",
            with_containers(2, vec![container("web.service", 3.0)], 1),
            2_000,
        );
        let d = s.take_changes(2_000, |_| false).delta.expect("a delta");
        let json = serde_json::to_value(&d.hosts[0]).expect("json");
        assert_eq!(json["ct"], 1, "{json}");
        assert_eq!(json["ctn"], "web.service", "{json}");
        assert_eq!(json["ctc"], 3.0, "{json}");
        client.apply(&d);
        client.check(&s, "containers appeared");

        // Only the CPU moved: the name is not resent.
        s.apply(
            "a:h1",
            with_containers(3, vec![container("web.service", 4.0)], 1),
            3_000,
        );
        let d = s.take_changes(3_000, |_| false).delta.expect("a delta");
        let json = serde_json::to_value(&d.hosts[0]).expect("json");
        assert_eq!(json["ctc"], 4.0, "{json}");
        assert!(
            json.get("ctn").is_none() && json.get("ct").is_none(),
            "{json}"
        );
        client.apply(&d);
        client.check(&s, "the busiest's CPU moved");

        // Another one is busier.
        s.apply(
            "a:h1",
            with_containers(
                4,
                vec![container("db.service", 9.0), container("web.service", 4.0)],
                2,
            ),
            4_000,
        );
        let d = s.take_changes(4_000, |_| false).delta.expect("a delta");
        let json = serde_json::to_value(&d.hosts[0]).expect("json");
        assert_eq!(
            (&json["ct"], &json["ctn"]),
            (&2.into(), &"db.service".into()),
            "{json}"
        );
        client.apply(&d);
        client.check(&s, "a new busiest");

        // The agent stops reporting them: null, so the page drops them.
        s.apply("a:h1", snap(5, 10.0, None), 5_000);
        let d = s.take_changes(5_000, |_| false).delta.expect("a delta");
        let json = serde_json::to_value(&d.hosts[0]).expect("json");
        for k in ["ct", "ctn", "ctc"] {
            assert!(json[k].is_null() && json.get(k).is_some(), "{k} in {json}");
        }
        client.apply(&d);
        client.check(&s, "containers gone");
    }
}
