//! The JSON of the history routes (`web/PROTOCOL.md`, "History"): metric series over a time
//! range, the top processes at a minute, GPU usage, and the storage's state for admins.

use serde::{Deserialize, Serialize};

/// Which stored resolution answered a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Every sample (kept 24 h by default).
    Raw,
    /// 1-minute min/avg/max (kept 90 days by default).
    Minute,
    /// 1-hour min/avg/max (kept 2 years by default).
    Hour,
}

/// One series of an answer, aligned with [`SeriesAnswer::t`]: `null` where nothing was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The metric (`cpu_percent`, `disk_percent`, ...; PROTOCOL.md lists them).
    pub metric: String,
    /// Its label where the metric has one per host (a mount point, an interface, a sensor, a
    /// GPU index); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// The mean over each point's interval.
    pub avg: Vec<Option<f64>>,
    /// The lowest value in each point's interval (spikes stay visible when downsampled).
    pub min: Vec<Option<f64>>,
    /// The highest value in each point's interval.
    pub max: Vec<Option<f64>>,
}

/// `GET /api/v1/hosts/{id}/history` and `GET /api/v1/clusters/{name}/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesAnswer {
    /// The host id, or the cluster name.
    pub of: String,
    /// Start of the range (ms since the epoch).
    pub from: u64,
    /// End of the range (ms since the epoch).
    pub to: u64,
    /// The tier that answered.
    pub tier: Tier,
    /// Width of each point's interval (ms).
    pub step_ms: u64,
    /// Start of each point's interval (ms since the epoch).
    pub t: Vec<u64>,
    /// The series asked for, one per metric and label.
    pub series: Vec<Series>,
}

/// A process in history (the top by CPU or by memory at one minute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessAt {
    /// Process id.
    pub pid: u32,
    /// Short name.
    pub name: String,
    /// Owner (empty when hidden from the caller).
    #[serde(default)]
    pub user: String,
    /// Command line as redacted on the agent (empty when hidden from the caller).
    #[serde(default)]
    pub cmdline: String,
    /// CPU % of one core.
    pub cpu_percent: f32,
    /// Resident memory.
    pub memory_bytes: u64,
}

/// A process on a GPU in history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuProcessAt {
    /// GPU index on its host.
    pub gpu: u32,
    /// GPU UUID (a MIG instance's, for a process on one).
    pub gpu_uuid: String,
    /// The UUID of the physical GPU: `gpu_uuid` itself, or the parent GPU's when the process
    /// runs on a MIG instance. What GPU history is keyed by (the index can change when another
    /// GPU falls off the bus). Empty for a process stored before GPUs were keyed by UUID, or
    /// of a GPU without one.
    #[serde(default)]
    pub parent_uuid: String,
    /// Process id.
    pub pid: u32,
    /// Short name.
    pub name: String,
    /// Owner (empty when hidden from the caller).
    #[serde(default)]
    pub user: String,
    /// GPU memory it holds.
    pub memory_bytes: Option<u64>,
}

/// `GET /api/v1/hosts/{id}/processes?at=`: the stored minute nearest `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessesAnswer {
    /// The host id.
    pub host: String,
    /// The minute answered (ms since the epoch); absent when nothing is stored near `at`.
    pub at: Option<u64>,
    /// Top processes by CPU, highest first.
    pub top_cpu: Vec<ProcessAt>,
    /// Top processes by memory, highest first.
    pub top_memory: Vec<ProcessAt>,
    /// Every process on a GPU at that minute.
    pub gpu: Vec<GpuProcessAt>,
}

/// How GPU usage is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageBy {
    /// Per process owner.
    User,
    /// Per host.
    Host,
    /// Per GPU (`host/<uuid>`; `host/#index` for a GPU stored without a UUID).
    Gpu,
}

/// One group of [`GpuUsageAnswer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuUsageRow {
    /// The user, host id or GPU (`host/<uuid>`, the GPU's UUID whatever index it had;
    /// `host/#index` for a GPU stored without a UUID, as every row stored before UUIDs was).
    pub key: String,
    /// Hours of GPU held by at least one process of the group (a GPU held by one process for
    /// an hour is 1).
    pub gpu_hours: f64,
    /// GPU memory held, integrated over time (GiB x hours).
    pub gpu_memory_gib_hours: f64,
    /// Distinct processes seen.
    pub processes: u64,
}

/// `GET /api/v1/gpus/usage?from=&to=&by=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuUsageAnswer {
    /// Start (ms since the epoch).
    pub from: u64,
    /// End (ms since the epoch).
    pub to: u64,
    /// The grouping.
    pub by: UsageBy,
    /// Groups, most GPU-hours first.
    pub rows: Vec<GpuUsageRow>,
}

/// One storage tier's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierStats {
    /// `raw`, `minute`, `hour`, `processes`, `events`.
    pub name: String,
    /// Retention in force (seconds).
    pub retention_s: u64,
    /// Bytes on disk (pages of its tables and indexes).
    pub bytes: u64,
    /// Oldest data kept (ms since the epoch), if any.
    pub oldest_ms: Option<u64>,
}

/// A remote-write target's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteWriteStats {
    /// The URL (without credentials).
    pub url: String,
    /// Samples waiting in its queue.
    pub queued: u64,
    /// Age of the oldest sample not yet accepted (seconds); 0 when caught up.
    pub lag_s: f64,
    /// Samples accepted so far.
    pub sent: u64,
    /// Samples dropped (queue full, or refused for good).
    pub dropped: u64,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
}

/// `GET /api/v1/admin/storage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageAnswer {
    /// The database file.
    pub path: String,
    /// Size of the database file plus its write-ahead log.
    pub bytes: u64,
    /// Per tier.
    pub tiers: Vec<TierStats>,
    /// The last write error (a full disk, ...), while it lasts.
    pub write_error: Option<String>,
    /// Samples waiting for the writer.
    pub queued: u64,
    /// Remote-write targets.
    pub remote_write: Vec<RemoteWriteStats>,
}
