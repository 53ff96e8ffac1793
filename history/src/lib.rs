//! smon-history: the embedded database of an smon server, and the history kept in it.
//!
//! - [`db`]: opening the SQLite file (WAL) and its schema migrations. Later features (alerts,
//!   inventory, audit) add their tables as further migrations.
//! - [`admin`]: an online backup of the file, and the bytes each table takes.
//! - [`config`]: where the file lives and how long each tier is kept.
//! - the write side ([`writer`]): one thread owns the only writing connection; the server hands
//!   it samples, and it batches them into transactions, rolls the tiers up and applies
//!   retention.
//! - the read side ([`History`], implemented by [`reader::SqliteHistory`]): the queries behind
//!   the REST routes, on read-only connections, so a long query never blocks the writer.
//!
//! Every call here blocks (SQLite): async callers use `spawn_blocking` or the writer thread.

pub mod admin;
pub mod codec;
pub mod config;
pub mod db;
pub mod error;
pub mod metrics;
pub mod procs;
pub mod reader;
pub mod series;
pub mod writer;

pub use config::{Retention, StorageOptions};
pub use error::Error;

use smon_api::history::{GpuUsageAnswer, ProcessesAnswer, SeriesAnswer, StorageAnswer, UsageBy};

/// What the reader may see of people and command lines (the server's role rules, applied to
/// history as to live data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// Process command lines.
    pub command_lines: bool,
    /// Process owners (host and GPU processes).
    pub process_users: bool,
}

/// A series query: which metrics of which host (or cluster) over which range.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesQuery {
    /// Metric names, each either a family (`disk_percent`: every mount) or one label
    /// (`disk_percent{/home}`).
    pub metrics: Vec<String>,
    /// Start (ms since the epoch).
    pub from_ms: u64,
    /// End (ms since the epoch).
    pub to_ms: u64,
    /// About how many points to answer with.
    pub points: usize,
}

/// The read side of the history, as the HTTP handlers see it. One implementation today
/// ([`reader::SqliteHistory`]); a replicated store could be another.
pub trait History: Send + Sync {
    /// One host's series.
    fn host_series(&self, host: &str, q: &SeriesQuery) -> Result<SeriesAnswer, Error>;
    /// A cluster's aggregate series (the mean over its hosts for percentages and loads, the
    /// sum for bytes and rates).
    fn cluster_series(&self, cluster: &str, q: &SeriesQuery) -> Result<SeriesAnswer, Error>;
    /// The stored top processes (and GPU processes) of `host` nearest `at_ms`.
    fn processes_at(&self, host: &str, at_ms: u64, shown: Shown) -> Result<ProcessesAnswer, Error>;
    /// GPU-hours and GPU memory-hours over a range, grouped `by`; `host_ok` filters the hosts
    /// the caller may see. Grouping by user when `shown.process_users` is false is refused by
    /// the caller, not here.
    fn gpu_usage(
        &self,
        from_ms: u64,
        to_ms: u64,
        by: UsageBy,
        host_ok: &dyn Fn(&str) -> bool,
    ) -> Result<GpuUsageAnswer, Error>;
    /// The database's size per tier, the retention in force and the writer's state.
    fn storage(&self) -> Result<StorageAnswer, Error>;
}
