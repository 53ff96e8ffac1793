//! The read side: [`SqliteHistory`] implements [`crate::History`] on a small pool of read-only
//! connections, so a long query never blocks the writer (WAL) and queries run side by side.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;
use smon_api::history::{
    GpuUsageAnswer, ProcessesAnswer, SeriesAnswer, StorageAnswer, Tier, UsageBy,
};

use crate::writer::{Clock, WriterStats, system_clock};
use crate::{Error, History, Retention, SeriesQuery, Shown, StorageOptions, metrics, series};

/// How many idle read connections are kept.
const POOL: usize = 4;

/// The history in the SQLite file, read-only.
pub struct SqliteHistory {
    path: PathBuf,
    retention: Retention,
    clock: Clock,
    writer: Option<WriterStats>,
    idle: Mutex<Vec<Connection>>,
    /// The tiers' sizes, measured at most once a minute (measuring reads every page).
    tiers: Mutex<Option<(u64, Vec<smon_api::history::TierStats>)>>,
}

/// How long measured tier sizes are shown before they are measured again.
const TIER_SIZES_FOR_MS: u64 = 60_000;

impl SqliteHistory {
    /// Reads the database of `opts` (the writer made it: start the [`crate::writer::Writer`]
    /// first). `writer` gives the writer's state to [`History::storage`].
    pub fn open(opts: &StorageOptions, writer: Option<WriterStats>) -> Result<Self, Error> {
        Self::open_with(opts, writer, system_clock())
    }

    /// [`SqliteHistory::open`] with a clock (tests inject time; the tier of a query and what
    /// retention hides depend on it).
    pub fn open_with(
        opts: &StorageOptions,
        writer: Option<WriterStats>,
        clock: Clock,
    ) -> Result<Self, Error> {
        let path = opts.db_path();
        let conn = crate::db::open_reader(&path)?;
        Ok(Self {
            path,
            retention: opts.retention,
            clock,
            writer,
            idle: Mutex::new(vec![conn]),
            tiers: Mutex::new(None),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a pooled read-only connection.
    pub fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let pooled = self.idle.lock().map_or(None, |mut v| v.pop());
        let conn = match pooled {
            Some(c) => c,
            None => crate::db::open_reader(&self.path)?,
        };
        let r = f(&conn);
        if let Ok(mut v) = self.idle.lock()
            && v.len() < POOL
        {
            v.push(conn);
        }
        r
    }
}

impl History for SqliteHistory {
    fn host_series(&self, host: &str, q: &SeriesQuery) -> Result<SeriesAnswer, Error> {
        let now = (self.clock)();
        self.with_conn(|c| {
            let target = metrics::Target {
                host,
                of: host,
                finest: Tier::Raw,
            };
            metrics::query(c, &self.path, target, q, now, &self.retention)
        })
    }

    fn cluster_series(&self, cluster: &str, q: &SeriesQuery) -> Result<SeriesAnswer, Error> {
        let now = (self.clock)();
        let pseudo = series::cluster_host(cluster);
        self.with_conn(|c| {
            let target = metrics::Target {
                host: &pseudo,
                of: cluster,
                finest: Tier::Minute,
            };
            metrics::query(c, &self.path, target, q, now, &self.retention)
        })
    }

    fn processes_at(&self, host: &str, at_ms: u64, shown: Shown) -> Result<ProcessesAnswer, Error> {
        self.with_conn(|c| crate::procs::processes_at(c, host, at_ms, shown))
    }

    fn gpu_usage(
        &self,
        from_ms: u64,
        to_ms: u64,
        by: UsageBy,
        host_ok: &dyn Fn(&str) -> bool,
    ) -> Result<GpuUsageAnswer, Error> {
        self.with_conn(|c| crate::procs::gpu_usage(c, from_ms, to_ms, by, host_ok))
    }

    fn storage(&self) -> Result<StorageAnswer, Error> {
        let now = (self.clock)();
        let mut cached = self.tiers.lock().unwrap_or_else(|p| p.into_inner());
        let tiers = match &*cached {
            Some((at, t)) if now.saturating_sub(*at) < TIER_SIZES_FOR_MS => t.clone(),
            _ => {
                let t = self.with_conn(|c| {
                    // One pass over the pages for every tier (dbstat reads them all: on a
                    // large file that takes seconds, hence the cache).
                    let sizes = crate::admin::sizes(c)?;
                    let mut tiers = metrics::tier_stats(c, &self.path, &self.retention, &sizes)?;
                    tiers.extend(crate::procs::tiers(c, &self.retention, &sizes)?);
                    Ok(tiers)
                })?;
                *cached = Some((now, t.clone()));
                t
            }
        };
        drop(cached);
        Ok(StorageAnswer {
            path: self.path.display().to_string(),
            bytes: crate::admin::file_bytes(&self.path),
            tiers,
            write_error: self.writer.as_ref().and_then(WriterStats::last_error),
            queued: self.writer.as_ref().map_or(0, WriterStats::queued),
            remote_write: Vec::new(),
        })
    }
}
