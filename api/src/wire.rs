//! The JSON the browser receives (see `web/PROTOCOL.md`). Host facts and samples are the agent's
//! own gRPC messages (`HostInfo`, `Snapshot`, serialised as they are); the overview row and the
//! cluster aggregates are the only shapes of our own, because a row is a digest of a snapshot.

use serde::{Deserialize, Serialize};
use smon_proto::{HostInfo, Snapshot};

/// Where a host stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Never reached yet.
    #[default]
    Pending,
    /// Samples arrive.
    Up,
    /// No sample for a few intervals; the connection may still be open.
    Stale,
    /// Unreachable, or no sample for many intervals.
    Down,
}

impl Status {
    /// The lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Up => "up",
            Status::Stale => "stale",
            Status::Down => "down",
        }
    }
}

/// One GPU in an overview row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuBrief {
    /// NVML index.
    pub index: u32,
    /// UUID: what identifies the GPU (an index moves when a GPU before it goes missing).
    #[serde(default)]
    pub uuid: String,
    /// Product name.
    pub name: String,
    /// Why the GPU could not be read (in full); absent when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// MIG instances in use, for a GPU in MIG mode (its utilisation is not reported): such a
    /// GPU counts as busy when this is above 0. Absent without MIG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_instances: Option<u32>,
    /// Utilisation, 0-100.
    pub util_percent: Option<u32>,
    /// Memory in use.
    pub mem_used_bytes: Option<u64>,
    /// Total memory.
    pub mem_total_bytes: Option<u64>,
}

/// One row of the home page: who the host is, its state, and a digest of its latest sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostRow {
    /// `"<cluster>:<host>"`.
    pub id: String,
    /// Cluster name.
    pub cluster: String,
    /// Host name as configured.
    pub name: String,
    /// Agent address (`in-process` for the server's own host).
    pub address: String,
    /// Tags from the config.
    pub tags: Vec<String>,
    /// State.
    pub status: Status,
    /// When the state last changed.
    pub status_since_ms: u64,
    /// When the last sample arrived (server clock).
    pub last_seen_ms: Option<u64>,
    /// When the agent took the last sample (agent clock).
    pub sample_unix_ms: Option<u64>,
    /// The last failure, while it matters.
    pub last_error: Option<String>,
    /// Host name the host reports.
    pub hostname: Option<String>,
    /// OS name and version.
    pub os: Option<String>,
    /// Kernel version.
    pub kernel: Option<String>,
    /// Logical CPUs.
    pub cpu_cores: Option<u32>,
    /// Seconds since boot.
    pub uptime_s: Option<u64>,
    /// CPU use, 0-100, one decimal.
    pub cpu_percent: Option<f32>,
    /// Load average 1, 5, 15 minutes, as precise as shown: two decimals below 10, one below
    /// 100, none above.
    pub load: Option<[f64; 3]>,
    /// Memory use, 0-100, one decimal.
    pub mem_percent: Option<f32>,
    /// Memory in use.
    pub mem_used_bytes: Option<u64>,
    /// Total memory.
    pub mem_total_bytes: Option<u64>,
    /// Swap use, 0-100, one decimal.
    pub swap_percent: Option<f32>,
    /// Swap size: 0 when the host has no swap (then `swap_percent` says nothing).
    #[serde(default)]
    pub swap_total_bytes: Option<u64>,
    /// Use of the fullest filesystem, 0-100, one decimal.
    pub disk_max_percent: Option<f32>,
    /// Mount point of the fullest filesystem.
    pub disk_max_mount: Option<String>,
    /// Received bytes per second, all interfaces.
    pub net_rx_bytes_per_s: Option<u64>,
    /// Sent bytes per second, all interfaces.
    pub net_tx_bytes_per_s: Option<u64>,
    /// Bytes read per second, all filesystems listed (null when none reports I/O).
    #[serde(default)]
    pub disk_read_bytes_per_s: Option<u64>,
    /// Bytes written per second, all filesystems listed (null when none reports I/O).
    #[serde(default)]
    pub disk_write_bytes_per_s: Option<u64>,
    /// The hottest temperature sensor, °C, whole degrees (null without sensors).
    #[serde(default)]
    pub temp_max_celsius: Option<f32>,
    /// GPUs.
    pub gpus: Vec<GpuBrief>,
    /// Logged-in sessions.
    pub users: Option<u32>,
    /// Processes.
    pub processes: Option<u32>,
    /// The last CPU % values (at most 60, one decimal), oldest first.
    pub spark: Vec<f32>,
    /// Alerts firing on this host now (the overview's badge; absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub alerts: u32,
    /// The last reachability check's digest (absent before the first, and for hosts not
    /// checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<crate::reach::ReachBrief>,
    /// Containers and services the host reports (`Snapshot.containers.count`); absent when it
    /// reports none: the agent's `monitor.containers` is off, or the agent predates them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<u32>,
    /// The busiest of them by CPU: its name (absent when there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_top_name: Option<String>,
    /// Its CPU use in percent of one core (can pass 100), one decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_top_cpu_percent: Option<f32>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Aggregates of one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Cluster {
    /// Cluster name.
    pub name: String,
    /// Hosts in it.
    pub hosts: u32,
    /// Hosts up.
    pub up: u32,
    /// Hosts stale.
    pub stale: u32,
    /// Hosts down.
    pub down: u32,
    /// Hosts never reached yet.
    pub pending: u32,
    /// Logical CPUs of the hosts with data.
    pub cpu_cores: u32,
    /// CPUs in use (sum of use % x cores / 100).
    pub cpu_cores_used: f64,
    /// Memory in use.
    pub mem_used_bytes: u64,
    /// Total memory.
    pub mem_total_bytes: u64,
    /// GPUs.
    pub gpus: u32,
    /// GPUs at 10 % use or more, and GPUs in MIG mode with an instance in use (their
    /// utilisation is not reported; they are not counted as idle).
    pub gpus_busy: u32,
    /// Logged-in sessions.
    pub users: u32,
}

/// Sent on connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// `app` (aggregator) or `node` (single-host view).
    pub mode: String,
    /// Server version.
    pub version: String,
    /// Sampling interval.
    pub interval_ms: u64,
    /// Server clock.
    pub server_time_ms: u64,
}

/// The whole overview (on subscribe, and on a resync after a missed delta), or one part of it:
/// a large fleet's overview goes in several `overview` frames (see [`Overview::into_parts`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overview {
    /// Server clock.
    pub server_time_ms: u64,
    /// The number of the last delta this state includes: the next delta is `seq + 1`.
    pub seq: u64,
    /// The layout generation of this state: the rows' positions are those of this layout. The
    /// next [`LayoutChange`] is `layout + 1`.
    pub layout: u64,
    /// Every cluster (in the first part; empty in the others).
    pub clusters: Vec<Cluster>,
    /// Position of this part's first row among all rows.
    pub offset: usize,
    /// All rows, over every part.
    pub total: usize,
    /// The hosts, or this part's share of them.
    pub hosts: Vec<HostRow>,
}

/// Rows per `overview` frame, at least.
pub const OVERVIEW_PART_ROWS: usize = 128;
/// `overview` frames per state, at most (the engine keeps 128 frames per socket).
pub const OVERVIEW_MAX_PARTS: usize = 64;

impl Overview {
    /// Splits the whole overview into parts of at least [`OVERVIEW_PART_ROWS`] rows, at most
    /// [`OVERVIEW_MAX_PARTS`] of them, sent in order on one socket. One frame of the whole
    /// state would cost every socket that state's size for as long as it is open (the
    /// WebSocket writer keeps its buffer at the largest frame it wrote): about 1 MB at 1,000
    /// hosts, 10 MB at 10,000.
    pub fn into_parts(self) -> Vec<Overview> {
        let total = self.hosts.len();
        let rows = OVERVIEW_PART_ROWS.max(total.div_ceil(OVERVIEW_MAX_PARTS));
        let mut clusters = self.clusters;
        let mut hosts = self.hosts.into_iter();
        // At least one part, so that an empty fleet still gets its (empty) state.
        (0..total.div_ceil(rows).max(1))
            .map(|k| Overview {
                server_time_ms: self.server_time_ms,
                seq: self.seq,
                layout: self.layout,
                clusters: std::mem::take(&mut clusters),
                offset: k * rows,
                total,
                hosts: hosts.by_ref().take(rows).collect(),
            })
            .collect()
    }
}

/// What changed in the overview since the previous delta (`seq - 1`): the clusters whose
/// totals changed, and for each changed host only the fields that changed, under short keys
/// (PROTOCOL.md "Overview deltas").
#[derive(Debug, Clone, Serialize)]
pub struct OverviewDelta {
    /// Server clock; also the base of each row's sample time (`t`).
    pub server_time_ms: u64,
    /// Consecutive number: a client that sees a gap missed a delta and resubscribes.
    pub seq: u64,
    /// Rows added or removed (hosts added to or removed from the fleet while the server runs),
    /// to apply before `clusters` and `hosts`; absent when the layout did not change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<LayoutChange>,
    /// The clusters whose totals changed (whole), new clusters included.
    pub clusters: Vec<Cluster>,
    /// Changed hosts: the row's position (in the layout after `layout`) and the fields that
    /// changed.
    pub hosts: Vec<RowPatch>,
}

/// A change of the overview's rows: hosts removed and added while the server runs. Rare (a
/// configuration reload), so it names rows plainly; rows that stay keep their order, so there
/// is never a reorder to send. The client removes the rows at `removed`, then inserts each of
/// `added` at its position, in order; the result is the layout `generation`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayoutChange {
    /// The layout generation this change makes (one more than the client's).
    #[serde(rename = "gen")]
    pub generation: u64,
    /// Positions of the removed rows in the previous layout, ascending.
    pub removed: Vec<u32>,
    /// The new rows, whole, with their positions in the new layout, ascending.
    pub added: Vec<RowInsert>,
    /// Every cluster's name, in order, when the set of clusters changed (a cluster appears
    /// with its first host and goes with its last); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clusters: Option<Vec<String>>,
}

/// A row added to the overview, and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowInsert {
    /// Its position in the new layout.
    pub i: u32,
    /// The whole row.
    pub row: HostRow,
}

/// Sent to a host page's room when that host was removed from the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRemoved {
    /// Server clock.
    pub server_time_ms: u64,
    /// The host removed.
    pub id: String,
}

/// The changed fields of one overview row, under short keys: this is most of the bytes every
/// browser on the overview receives each interval. An absent field did not change; a field that
/// became unknown is `null`. The row is named by its position `i` in the overview's `hosts`
/// (after the delta's layout change, if any). `spark` is never resent: a new
/// sample (`t`) appends the row's `cpu_percent` to the sparkline unless `s` lists the points to
/// append instead (the client keeps the last 60).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RowPatch {
    /// The row's position in the overview's `hosts`.
    #[serde(rename = "i")]
    pub ix: u32,
    /// Agent address (changed by a configuration reload).
    #[serde(rename = "a", skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Tags (changed by a configuration reload).
    #[serde(rename = "tg", skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// State.
    #[serde(rename = "st", skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// When the state last changed.
    #[serde(rename = "ss", skip_serializing_if = "Option::is_none")]
    pub status_since_ms: Option<u64>,
    /// When the last sample arrived (sent while the host is not `up`, and once a minute).
    #[serde(rename = "ls", skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<Option<u64>>,
    /// When the agent took the last sample, in ms relative to the delta's `server_time_ms`
    /// (usually negative): `sample_unix_ms = server_time_ms + t`.
    #[serde(rename = "t", skip_serializing_if = "Option::is_none")]
    pub sample_rel_ms: Option<Option<i64>>,
    /// The last failure.
    #[serde(rename = "er", skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Option<String>>,
    /// Host name the host reports.
    #[serde(rename = "hn", skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Option<String>>,
    /// OS name and version.
    #[serde(rename = "os", skip_serializing_if = "Option::is_none")]
    pub os: Option<Option<String>>,
    /// Kernel version.
    #[serde(rename = "kn", skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Option<String>>,
    /// Logical CPUs.
    #[serde(rename = "cc", skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<Option<u32>>,
    /// Seconds since boot.
    #[serde(rename = "up", skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<Option<u64>>,
    /// CPU use.
    #[serde(rename = "c", skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<Option<f32>>,
    /// Load averages.
    #[serde(rename = "l", skip_serializing_if = "Option::is_none")]
    pub load: Option<Option<[f64; 3]>>,
    /// Memory use.
    #[serde(rename = "m", skip_serializing_if = "Option::is_none")]
    pub mem_percent: Option<Option<f32>>,
    /// Memory in use.
    #[serde(rename = "mu", skip_serializing_if = "Option::is_none")]
    pub mem_used_bytes: Option<Option<u64>>,
    /// Total memory.
    #[serde(rename = "mt", skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<Option<u64>>,
    /// Swap use.
    #[serde(rename = "sw", skip_serializing_if = "Option::is_none")]
    pub swap_percent: Option<Option<f32>>,
    /// Swap size.
    #[serde(rename = "swt", skip_serializing_if = "Option::is_none")]
    pub swap_total_bytes: Option<Option<u64>>,
    /// Use of the fullest filesystem.
    #[serde(rename = "d", skip_serializing_if = "Option::is_none")]
    pub disk_max_percent: Option<Option<f32>>,
    /// Its mount point.
    #[serde(rename = "dm", skip_serializing_if = "Option::is_none")]
    pub disk_max_mount: Option<Option<String>>,
    /// Received bytes per second.
    #[serde(rename = "rx", skip_serializing_if = "Option::is_none")]
    pub net_rx_bytes_per_s: Option<Option<u64>>,
    /// Sent bytes per second.
    #[serde(rename = "tx", skip_serializing_if = "Option::is_none")]
    pub net_tx_bytes_per_s: Option<Option<u64>>,
    /// Bytes read per second.
    #[serde(rename = "dr", skip_serializing_if = "Option::is_none")]
    pub disk_read_bytes_per_s: Option<Option<u64>>,
    /// Bytes written per second.
    #[serde(rename = "dw", skip_serializing_if = "Option::is_none")]
    pub disk_write_bytes_per_s: Option<Option<u64>>,
    /// The hottest temperature.
    #[serde(rename = "tm", skip_serializing_if = "Option::is_none")]
    pub temp_max_celsius: Option<Option<f32>>,
    /// GPUs, the whole list: only when the list itself changed (count, names, totals).
    #[serde(rename = "g", skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Vec<GpuBrief>>,
    /// Otherwise: the use of every GPU, in list order, when one changed.
    #[serde(rename = "gu", skip_serializing_if = "Option::is_none")]
    pub gpu_util: Option<Vec<Option<u32>>>,
    /// And the memory in use of every GPU, when one moved by 1 % of its total.
    #[serde(rename = "gm", skip_serializing_if = "Option::is_none")]
    pub gpu_mem_used_bytes: Option<Vec<Option<u64>>>,
    /// Logged-in sessions.
    #[serde(rename = "u", skip_serializing_if = "Option::is_none")]
    pub users: Option<Option<u32>>,
    /// Processes.
    #[serde(rename = "p", skip_serializing_if = "Option::is_none")]
    pub processes: Option<Option<u32>>,
    /// Alerts firing on the host.
    #[serde(rename = "al", skip_serializing_if = "Option::is_none")]
    pub alerts: Option<u32>,
    /// The last reachability check's digest.
    #[serde(rename = "rc", skip_serializing_if = "Option::is_none")]
    pub reach: Option<Option<crate::reach::ReachBrief>>,
    /// Containers and services the host reports.
    #[serde(rename = "ct", skip_serializing_if = "Option::is_none")]
    pub containers: Option<Option<u32>>,
    /// The busiest container's name.
    #[serde(rename = "ctn", skip_serializing_if = "Option::is_none")]
    pub container_top_name: Option<Option<String>>,
    /// The busiest container's CPU use.
    #[serde(rename = "ctc", skip_serializing_if = "Option::is_none")]
    pub container_top_cpu_percent: Option<Option<f32>>,
    /// CPU % points to append to the sparkline, oldest first, when they are not just the new
    /// `cpu_percent` of a new sample (absent then): several samples in one interval, or a
    /// sample without CPU (`[]`).
    #[serde(rename = "s", skip_serializing_if = "Option::is_none")]
    pub spark_add: Option<Vec<f32>>,
}

/// The last 15 minutes of one host, as columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Sample times.
    pub t: Vec<u64>,
    /// CPU %.
    pub cpu: Vec<f32>,
    /// Memory %.
    pub mem: Vec<f32>,
    /// Received B/s.
    pub rx: Vec<u64>,
    /// Sent B/s.
    pub tx: Vec<u64>,
    /// Utilisation per GPU (outer: GPU, inner: sample); `null` where unknown.
    pub gpu: Vec<Vec<Option<u32>>>,
    /// The GPU of each `gpu` series, by UUID (`#<index>` for a GPU whose UUID could not be
    /// read), in order of first appearance: a GPU that goes missing leaves a gap in its own
    /// series and never shifts the others.
    #[serde(default)]
    pub gpu_ids: Vec<String>,
}

/// A host page's full state (on subscribe).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostFull {
    /// Server clock.
    pub server_time_ms: u64,
    /// The row.
    pub host: HostRow,
    /// Static facts.
    pub info: Option<HostInfo>,
    /// The latest sample (with every part while someone watches).
    pub detail: Option<Snapshot>,
    /// Chart data.
    pub history: History,
}

/// `GET /api/v1/hosts/{id}`: one host's row, static facts and latest sample (the detail a
/// page shows, filtered by the caller's role as on the page).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostDetail {
    /// The row.
    pub host: HostRow,
    /// Static facts.
    pub info: Option<HostInfo>,
    /// The latest sample.
    pub detail: Option<Snapshot>,
}

/// A host page's update.
#[derive(Debug, Clone, Serialize)]
pub struct HostUpdate {
    /// Server clock.
    pub server_time_ms: u64,
    /// The row.
    pub host: HostRow,
    /// The latest sample.
    pub detail: Option<Snapshot>,
}

/// One record of `/api/v1/hosts/{id}/events`, the shape existing scripts read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Sample time.
    pub time: u64,
    /// CPU %.
    pub cpu_percent: f32,
    /// Memory %.
    pub memory_percent: f32,
    /// Use of the fullest filesystem.
    pub disk_percent: f32,
    /// Processes.
    pub num_pids: u32,
}

/// A browser's `subscribe` / `unsubscribe` request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "room", rename_all = "lowercase", deny_unknown_fields)]
pub enum Subscribe {
    /// The home page.
    Overview,
    /// One host page.
    Host {
        /// Host id.
        id: String,
    },
}

/// The answer to `subscribe`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ack {
    /// Whether it worked.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Ack {
    /// It worked.
    pub fn ok() -> Self {
        Self {
            ok: true,
            error: None,
        }
    }

    /// It did not, because of `why`.
    pub fn err(why: String) -> Self {
        Self {
            ok: false,
            error: Some(why),
        }
    }
}
