//! Metric history: the raw tier's compressed blocks, the 1-minute and 1-hour rollups, the
//! clusters' aggregate series, retention, and the series queries.
//!
//! # Layout (`migrations/0001_metrics.sql`, byte formats in [`crate::codec`])
//!
//! - **Raw tier.** A host sample becomes one `raw_staging` row (a few bytes per value, written
//!   in the writer's per-second transaction, so a committed sample survives `kill -9`). Once a
//!   host's 10-minute window has closed and been rolled up, its staging rows become one
//!   `raw_blocks` row: the shared timestamps and one pco-compressed column of quantised
//!   integers per series ([`crate::series::quantise`]: percent x100, bytes as integers, ...).
//!   Windows are staggered by host (`host id mod 10` minutes) so that each minute flushes a
//!   tenth of the hosts, not all of them at once. Measured: 0.86-0.88 bytes per value
//!   (`tests/metrics.rs`, `raw_tier_stays_under_two_bytes_per_value`); 0.43 for hosts with 8
//!   GPUs and their health series, most of which hold still
//!   (`gpu_hosts_with_health_signals_stay_under_two_bytes_per_value`).
//! - **1-minute tier.** The writer keeps each series' current minute (min, sum, max, count)
//!   in memory, fed by the samples it stores. About once a minute, every minute that ended more
//!   than [`GRACE_MS`] ago goes to `minute_staging` (and `minute_done_ms` moves on, in the same
//!   transaction); after a restart the open minutes are rebuilt from `raw_staging`, which still
//!   holds every sample of them. When an hour is over, its rows become one `minute_blocks` row
//!   per series, and its 1-hour rollup (min of the mins, count-weighted mean, max of the maxes)
//!   goes to `hour_staging`.
//! - **1-hour tier.** When a day is over, its `hour_staging` rows become one `hour_blocks` row
//!   per series. Hour and day passes go a chunk of series at a time, at most half a second
//!   per maintenance, so a large fleet's hour boundary never holds the writer for long (rows
//!   not yet moved are read from staging meanwhile).
//! - **Clusters.** When minutes are rolled up, the writer also makes each cluster's aggregate
//!   (the mean over its hosts for percentages, loads and temperatures, the sum for bytes,
//!   rates, counts and watts; applied to the hosts' min, avg and max alike) and stores it as
//!   the series of the pseudo host `@cluster`. A cluster's history therefore starts at the
//!   1-minute tier, and a 7-day query reads one series' blocks, not a thousand hosts'. A
//!   per-GPU metric is aggregated over every GPU of the cluster into one series labelled
//!   `all` ([`series::cluster_label`]): GPU series are keyed by UUID, which no two hosts share.
//! - **Retention.** A block is deleted once its newest row is past its tier's age (an index on
//!   `end_ms` finds them); rows past the age inside a block still kept are hidden by the
//!   reader, so what a query returns follows the retention exactly.
//!
//! Samples that arrive after their minute was rolled up (a writer that fell far behind) are
//! stored in the raw tier but not counted in the rollups.
//!
//! Every function takes the current time: the writer passes its clock, tests inject it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use smon_api::history::{Series, SeriesAnswer, Tier, TierStats};
use smon_proto::Snapshot;

use crate::admin::TableSize;
use crate::codec::{self, RawBlock, Rollup};
use crate::series::{self, Aggregate, Metric, Selector};
use crate::{Error, Retention, SeriesQuery};

/// A minute (ms).
pub const MINUTE: i64 = 60_000;
/// An hour (ms).
pub const HOUR: i64 = 3_600_000;
/// A day (ms).
pub const DAY: i64 = 86_400_000;
/// The span of a raw block (ms).
pub const RAW_WINDOW: i64 = 10 * MINUTE;
/// How long after a minute ends the writer waits for its last samples before rolling it up.
pub const GRACE_MS: i64 = 5_000;
/// Series rolled per chunk of an hour's or a day's pass.
const ROLL_CHUNK: i64 = 2_000;
/// Time one maintenance may spend on hour and day passes before leaving the rest for the next.
const ROLL_BUDGET: Duration = Duration::from_millis(500);
/// The most points a query may ask for.
pub const MAX_POINTS: usize = 5_000;

fn floor_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

fn ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

pub(crate) fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> Error + use<> {
    let path = path.to_owned();
    move |source| Error::Sqlite {
        path: path.clone(),
        source,
    }
}

/// Start of the raw window of `host_id` holding `t` (windows are staggered by host).
fn window_start(host_id: i64, t: i64) -> i64 {
    let off = host_id.rem_euclid(10) * MINUTE;
    floor_to(t - off, RAW_WINDOW) + off
}

#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    min: i64,
    max: i64,
    sum: i128,
    n: i64,
}

impl Acc {
    fn new(v: i64) -> Self {
        Self {
            min: v,
            max: v,
            sum: i128::from(v),
            n: 1,
        }
    }

    fn add(&mut self, v: i64) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += i128::from(v);
        self.n += 1;
    }

    fn rollup(&self, t: i64) -> Rollup {
        let avg = (self.sum as f64 / self.n.max(1) as f64).round() as i64;
        Rollup {
            t,
            min: self.min,
            avg,
            max: self.max,
            n: self.n,
        }
    }
}

#[derive(Debug, Clone)]
struct SeriesInfo {
    host_id: i64,
    metric: &'static Metric,
    label: String,
}

/// What one [`Store::maintain`] did (for logs and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintained {
    /// 1-minute rows written (cluster rows included).
    pub minute_rows: usize,
    /// Raw blocks written.
    pub raw_blocks: usize,
    /// 1-minute blocks written.
    pub minute_blocks: usize,
    /// 1-hour blocks written.
    pub hour_blocks: usize,
    /// Rows and blocks deleted by retention.
    pub deleted: usize,
}

/// A hasher for the maps keyed by ids this crate hands out (row ids, times): a multiply and a
/// rotate per integer, not SipHash (which took a fifth of the writer's time at fleet scale).
/// Only for keys no host chooses, so no host can make its entries collide.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
}

/// A map keyed by an id of this crate's (see [`IdHasher`]).
type IdMap<V> = HashMap<i64, V, std::hash::BuildHasherDefault<IdHasher>>;

/// The open accumulators of one minute, by series id: in a vector indexed by the id (ids are
/// row ids handed out from 1, so at fleet scale nearly every slot is in use and a sample's
/// series, made together, sit side by side), or, for an id far past the series this store
/// knows (a database edited by hand), in a map. A slot with `n == 0` is empty.
#[derive(Default)]
struct OpenMinute {
    dense: Vec<Acc>,
    sparse: IdMap<Acc>,
}

impl OpenMinute {
    fn add(&mut self, sid: i64, v: i64, known: usize) {
        let acc = match usize::try_from(sid) {
            Ok(i) if i < self.dense.len() => &mut self.dense[i],
            Ok(i) if i <= 2 * known + 1024 => {
                self.dense.resize(i + 1, Acc::default());
                &mut self.dense[i]
            }
            _ => self.sparse.entry(sid).or_default(),
        };
        if acc.n == 0 {
            *acc = Acc::new(v);
        } else {
            acc.add(v);
        }
    }

    fn len(&self) -> usize {
        self.dense.iter().filter(|a| a.n > 0).count() + self.sparse.len()
    }

    /// The accumulators, by series id.
    fn into_accs(self) -> impl Iterator<Item = (i64, Acc)> {
        let dense = self.dense.into_iter().enumerate().filter(|(_, a)| a.n > 0);
        dense
            .map(|(i, a)| (i64::try_from(i).unwrap_or(i64::MAX), a))
            .chain(self.sparse)
    }
}

/// A series of a host's last sample (see `Store::last_series`).
struct Seen {
    metric: &'static str,
    label: String,
    id: i64,
    /// Whether `label` is the previous entry's label.
    same_label: bool,
}

/// The writer's side of the metric tables: the caches and open rollups of the one connection
/// that writes. Every method runs inside the caller's transaction.
pub struct Store {
    path: PathBuf,
    hosts: HashMap<String, i64>,
    host_names: IdMap<String>,
    /// (host, metric) -> label -> series id (looked up by `&str`: no allocation per value).
    series: HashMap<(i64, &'static str), HashMap<String, i64>>,
    /// Per host, the series of its last sample in the order [`series::each_value`] gave them:
    /// the next sample (the same disks, interfaces and GPUs, almost always) finds its series
    /// ids by comparing each name with the one at the same place, without hashing a string.
    last_series: IdMap<Vec<Seen>>,
    info: IdMap<SeriesInfo>,
    /// Per host, the oldest sample still in `raw_staging`.
    first_staged: IdMap<i64>,
    /// Open minutes: minute start -> series -> accumulator.
    accs: BTreeMap<i64, OpenMinute>,
    minute_done: Option<i64>,
    hour_done: Option<i64>,
    day_done: Option<i64>,
    /// A roll of hours (`[0]`) or days (`[1]`) under way: its cut and the next series id.
    pending: [Option<(i64, i64)>; 2],
}

fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT value FROM metrics_meta WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
    .optional()
}

fn set_meta(conn: &Connection, key: &str, v: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO metrics_meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, v])?;
    Ok(())
}

impl Store {
    /// Loads the caches and rebuilds the open minutes from the staging rows (after a restart,
    /// or a crash: nothing that was committed is lost).
    pub fn load(conn: &Connection, path: &Path) -> Result<Self, Error> {
        let e = sql(path);
        let mut s = Store {
            path: path.to_owned(),
            hosts: HashMap::new(),
            host_names: IdMap::default(),
            series: HashMap::new(),
            last_series: IdMap::default(),
            info: IdMap::default(),
            first_staged: IdMap::default(),
            accs: BTreeMap::new(),
            minute_done: meta(conn, "minute_done_ms").map_err(&e)?,
            hour_done: meta(conn, "hour_done_ms").map_err(&e)?,
            day_done: meta(conn, "day_done_ms").map_err(&e)?,
            pending: [None; 2],
        };
        let mut st = conn.prepare("SELECT id, name FROM hosts").map_err(&e)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(&e)?;
        for row in rows {
            let (id, name) = row.map_err(&e)?;
            s.hosts.insert(name.clone(), id);
            s.host_names.insert(id, name);
        }
        let mut st = conn
            .prepare("SELECT id, host_id, metric, label FROM series")
            .map_err(&e)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(&e)?;
        for row in rows {
            let (id, host_id, metric, label) = row.map_err(&e)?;
            // A metric this version does not know (a newer smon wrote it) is left alone.
            if let Some(metric) = series::metric(&metric) {
                s.series
                    .entry((host_id, metric.name))
                    .or_default()
                    .insert(label.clone(), id);
                s.info.insert(
                    id,
                    SeriesInfo {
                        host_id,
                        metric,
                        label,
                    },
                );
            }
        }
        let mut st = conn
            .prepare("SELECT host_id, min(ts_ms) FROM raw_staging GROUP BY host_id")
            .map_err(&e)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .map_err(&e)?;
        for row in rows {
            let (h, t) = row.map_err(&e)?;
            s.first_staged.insert(h, t);
        }
        let from = s.minute_done.unwrap_or(i64::MIN);
        let mut st = conn
            .prepare("SELECT ts_ms, body FROM raw_staging WHERE ts_ms >= ?1")
            .map_err(&e)?;
        let mut rows = st.query([from]).map_err(&e)?;
        while let Some(r) = rows.next().map_err(&e)? {
            let ts: i64 = r.get(0).map_err(&e)?;
            let body: Vec<u8> = r.get(1).map_err(&e)?;
            let pairs = codec::decode_staging(&body)?;
            s.accumulate(ts, &pairs);
        }
        drop(rows);
        drop(st);
        Ok(s)
    }

    fn host_id(&mut self, conn: &Connection, host: &str) -> Result<i64, Error> {
        if let Some(id) = self.hosts.get(host) {
            return Ok(*id);
        }
        let e = sql(&self.path);
        conn.prepare_cached("INSERT OR IGNORE INTO hosts (name) VALUES (?1)")
            .map_err(&e)?
            .execute([host])
            .map_err(&e)?;
        let id: i64 = conn
            .prepare_cached("SELECT id FROM hosts WHERE name = ?1")
            .map_err(&e)?
            .query_row([host], |r| r.get(0))
            .map_err(&e)?;
        self.hosts.insert(host.to_owned(), id);
        self.host_names.insert(id, host.to_owned());
        Ok(id)
    }

    fn series_id(
        &mut self,
        conn: &Connection,
        host_id: i64,
        metric: &'static Metric,
        label: &str,
    ) -> Result<i64, Error> {
        if let Some(id) = self
            .series
            .get(&(host_id, metric.name))
            .and_then(|m| m.get(label))
        {
            return Ok(*id);
        }
        let e = sql(&self.path);
        conn.prepare_cached(
            "INSERT OR IGNORE INTO series (host_id, metric, label) VALUES (?1, ?2, ?3)",
        )
        .map_err(&e)?
        .execute(params![host_id, metric.name, label])
        .map_err(&e)?;
        let id: i64 = conn
            .prepare_cached(
                "SELECT id FROM series WHERE host_id = ?1 AND metric = ?2 AND label = ?3",
            )
            .map_err(&e)?
            .query_row(params![host_id, metric.name, label], |r| r.get(0))
            .map_err(&e)?;
        self.series
            .entry((host_id, metric.name))
            .or_default()
            .insert(label.to_owned(), id);
        self.info.insert(
            id,
            SeriesInfo {
                host_id,
                metric,
                label: label.to_owned(),
            },
        );
        Ok(id)
    }

    fn accumulate(&mut self, ts: i64, pairs: &[(i64, i64)]) {
        let minute = floor_to(ts, MINUTE);
        if self.minute_done.is_some_and(|d| minute < d) {
            return;
        }
        let known = self.info.len();
        let accs = self.accs.entry(minute).or_default();
        for &(sid, v) in pairs {
            accs.add(sid, v, known);
        }
    }

    /// The `(series id, quantised value)` pairs of a sample, creating series on first sight.
    fn pairs(
        &mut self,
        conn: &Connection,
        host_id: i64,
        snapshot: &Snapshot,
    ) -> Result<Vec<(i64, i64)>, Error> {
        let mut seen = self.last_series.remove(&host_id).unwrap_or_default();
        let mut pairs = Vec::with_capacity(seen.len().max(32));
        let mut failed = None;
        // Where the previous value's label lies in the snapshot: a GPU's 16 values (a disk's
        // 4) share one label string, which then needs no comparing again.
        let mut prev_label = (std::ptr::null::<u8>(), 0);
        series::each_value(snapshot, &mut |metric, label, value| {
            if failed.is_some() {
                return;
            }
            let i = pairs.len();
            let here = (label.as_ptr(), label.len());
            let same_as_prev = std::mem::replace(&mut prev_label, here) == here;
            let sid = match seen.get(i) {
                // The same place of `each_value` gives the same name: its address is enough
                // (a different address with the same name only takes the slow path). The
                // label is compared unless it is the previous value's string and was so
                // last time too (`seen[i - 1]` always holds the previous value's label).
                Some(s)
                    if std::ptr::eq(s.metric, metric.name)
                        && ((same_as_prev && s.same_label) || s.label == label) =>
                {
                    s.id
                }
                _ => match self.series_id(conn, host_id, metric, label) {
                    Ok(id) => {
                        seen.truncate(i);
                        let same_label = seen.last().is_some_and(|p| p.label == label);
                        seen.push(Seen {
                            metric: metric.name,
                            label: label.to_owned(),
                            id,
                            same_label,
                        });
                        id
                    }
                    Err(e) => {
                        failed = Some(e);
                        return;
                    }
                },
            };
            pairs.push((sid, series::quantise(metric, value)));
        });
        if let Some(e) = failed {
            return Err(e);
        }
        seen.truncate(pairs.len());
        self.last_series.insert(host_id, seen);
        pairs.sort_unstable_by_key(|p| p.0);
        pairs.dedup_by_key(|p| p.0);
        Ok(pairs)
    }

    /// Stores one host sample in the raw tier (its staging row) and feeds the open minutes.
    pub fn write_sample(
        &mut self,
        conn: &Connection,
        host: &str,
        at_ms: u64,
        snapshot: &Snapshot,
    ) -> Result<(), Error> {
        let host_id = self.host_id(conn, host)?;
        let pairs = self.pairs(conn, host_id, snapshot)?;
        let ts = ms(at_ms);
        let e = sql(&self.path);
        conn.prepare_cached(
            "INSERT OR REPLACE INTO raw_staging (host_id, ts_ms, body) VALUES (?1, ?2, ?3)",
        )
        .map_err(&e)?
        .execute(params![host_id, ts, codec::encode_staging(&pairs)])
        .map_err(&e)?;
        self.first_staged
            .entry(host_id)
            .and_modify(|t| *t = (*t).min(ts))
            .or_insert(ts);
        self.accumulate(ts, &pairs);
        Ok(())
    }

    /// Rolls up what is due and applies retention, as of `now_ms`: closed minutes to the
    /// 1-minute tier (and the clusters' aggregates), closed raw windows to blocks, closed hours
    /// to 1-minute blocks and 1-hour rows, closed days to 1-hour blocks, then deletes what is
    /// past its age.
    pub fn maintain(
        &mut self,
        conn: &Connection,
        now_ms: u64,
        retention: &Retention,
    ) -> Result<Maintained, Error> {
        let now = ms(now_ms);
        // Retention first: on a full disk, the pages it frees are what the rollups then use.
        let mut done = Maintained {
            deleted: self.retain(conn, now, retention)?,
            ..Maintained::default()
        };
        let cutoff = floor_to(now - GRACE_MS, MINUTE);
        if self.minute_done.is_none_or(|d| cutoff > d) {
            done.minute_rows = self.roll_minutes(conn, cutoff)?;
            self.minute_done = Some(cutoff);
            set_meta(conn, "minute_done_ms", cutoff).map_err(sql(&self.path))?;
        }
        let minute_done = self.minute_done.unwrap_or(cutoff);
        let due: Vec<i64> = self
            .first_staged
            .iter()
            .filter(|(h, t)| window_start(**h, **t) + RAW_WINDOW <= minute_done)
            .map(|(h, _)| *h)
            .collect();
        for host_id in due {
            done.raw_blocks +=
                self.flush_host(conn, host_id, window_start(host_id, minute_done))?;
        }
        // Hours and days are rolled a chunk of series at a time, at most ROLL_BUDGET per call,
        // so that a large fleet's hour boundary does not hold the writer for many seconds.
        let started = Instant::now();
        let hour_cut = floor_to(minute_done, HOUR);
        if self.pending[0].is_some() || self.hour_done.is_none_or(|h| hour_cut > h) {
            let (n, finished) = self.roll_pass(conn, Level::Minute, hour_cut, started)?;
            done.minute_blocks = n;
            if let Some(cut) = finished {
                self.hour_done = Some(cut);
                set_meta(conn, "hour_done_ms", cut).map_err(sql(&self.path))?;
            }
        }
        if let Some(hour_done) = self.hour_done.filter(|_| self.pending[0].is_none()) {
            let day_cut = floor_to(hour_done, DAY);
            if self.pending[1].is_some() || self.day_done.is_none_or(|d| day_cut > d) {
                let (n, finished) = self.roll_pass(conn, Level::Hour, day_cut, started)?;
                done.hour_blocks = n;
                if let Some(cut) = finished {
                    self.day_done = Some(cut);
                    set_meta(conn, "day_done_ms", cut).map_err(sql(&self.path))?;
                }
            }
        }
        Ok(done)
    }

    /// Closes every open minute before `cutoff`, with the clusters' aggregates.
    fn roll_minutes(&mut self, conn: &Connection, cutoff: i64) -> Result<usize, Error> {
        let open = self.accs.split_off(&cutoff);
        let closed = std::mem::replace(&mut self.accs, open);
        let mut rows: Vec<(i64, Rollup)> =
            Vec::with_capacity(closed.values().map(|m| m.len()).sum());
        type Key = (String, &'static str, String, i64);
        let mut clusters: BTreeMap<Key, Vec<Rollup>> = BTreeMap::new();
        for (sid, minute, acc) in closed
            .into_iter()
            .flat_map(|(m, accs)| accs.into_accs().map(move |(sid, a)| (sid, m, a)))
        {
            let key = (sid, minute);
            let r = acc.rollup(key.1);
            if let Some(info) = self.info.get(&key.0)
                && let Some(host) = self.host_names.get(&info.host_id)
                && !host.starts_with('@')
            {
                clusters
                    .entry((
                        series::cluster_of(host).to_owned(),
                        info.metric.name,
                        series::cluster_label(info.metric, &info.label).to_owned(),
                        key.1,
                    ))
                    .or_default()
                    .push(r);
            }
            rows.push((key.0, r));
        }
        for ((cluster, metric, label, t), hosts) in clusters {
            let Some(metric) = series::metric(metric) else {
                continue;
            };
            let host_id = self.host_id(conn, &series::cluster_host(&cluster))?;
            let sid = self.series_id(conn, host_id, metric, &label)?;
            rows.push((sid, aggregate(metric.aggregate, t, &hosts)));
        }
        let e = sql(&self.path);
        let mut st = conn
            .prepare_cached(
                "INSERT OR REPLACE INTO minute_staging (series_id, t_ms, min, avg, max, n) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(&e)?;
        for (sid, r) in &rows {
            st.execute(params![sid, r.t, r.min, r.avg, r.max, r.n])
                .map_err(&e)?;
        }
        Ok(rows.len())
    }

    /// Moves `host_id`'s staging rows before `limit` (a window boundary) into raw blocks.
    fn flush_host(&mut self, conn: &Connection, host_id: i64, limit: i64) -> Result<usize, Error> {
        let e = sql(&self.path);
        let mut windows: BTreeMap<i64, BTreeMap<i64, Vec<(i64, i64)>>> = BTreeMap::new();
        {
            let mut st = conn
                .prepare_cached(
                    "SELECT ts_ms, body FROM raw_staging WHERE host_id = ?1 AND ts_ms < ?2",
                )
                .map_err(&e)?;
            let mut rows = st.query(params![host_id, limit]).map_err(&e)?;
            while let Some(r) = rows.next().map_err(&e)? {
                let ts: i64 = r.get(0).map_err(&e)?;
                let body: Vec<u8> = r.get(1).map_err(&e)?;
                windows
                    .entry(window_start(host_id, ts))
                    .or_default()
                    .insert(ts, codec::decode_staging(&body)?);
            }
        }
        let n = windows.len();
        for (start, rows) in windows {
            self.store_window(conn, host_id, start, rows)?;
        }
        conn.prepare_cached("DELETE FROM raw_staging WHERE host_id = ?1 AND ts_ms < ?2")
            .map_err(&e)?
            .execute(params![host_id, limit])
            .map_err(&e)?;
        let first: Option<i64> = conn
            .prepare_cached("SELECT min(ts_ms) FROM raw_staging WHERE host_id = ?1")
            .map_err(&e)?
            .query_row([host_id], |r| r.get(0))
            .map_err(&e)?;
        match first {
            Some(t) => self.first_staged.insert(host_id, t),
            None => self.first_staged.remove(&host_id),
        };
        Ok(n)
    }

    /// Writes the raw block of `host_id`'s window at `start`, merged with the block already
    /// there (samples that came late).
    fn store_window(
        &self,
        conn: &Connection,
        host_id: i64,
        start: i64,
        mut rows: BTreeMap<i64, Vec<(i64, i64)>>,
    ) -> Result<(), Error> {
        let e = sql(&self.path);
        let old: Option<Vec<u8>> = conn
            .prepare_cached("SELECT body FROM raw_blocks WHERE host_id = ?1 AND start_ms = ?2")
            .map_err(&e)?
            .query_row(params![host_id, start], |r| r.get(0))
            .optional()
            .map_err(&e)?;
        if let Some(old) = old {
            let blk = RawBlock::parse(&old)?;
            let ts = blk.times()?;
            let mut old_rows: BTreeMap<i64, Vec<(i64, i64)>> =
                ts.iter().map(|t| (*t, Vec::new())).collect();
            for sid in blk.series().collect::<Vec<_>>() {
                for (i, v) in blk.column(sid)?.unwrap_or_default() {
                    if let Some(row) = old_rows.get_mut(&ts[i]) {
                        row.push((sid, v));
                    }
                }
            }
            for (t, row) in old_rows {
                rows.entry(t).or_insert(row);
            }
        }
        let Some((&first, _)) = rows.first_key_value() else {
            return Ok(());
        };
        let last = rows.last_key_value().map_or(first, |(t, _)| *t);
        let sids: BTreeSet<i64> = rows.values().flatten().map(|p| p.0).collect();
        let col_of: HashMap<i64, usize> = sids.iter().enumerate().map(|(i, s)| (*s, i)).collect();
        let mut cols: Vec<(i64, Vec<Option<i64>>)> =
            sids.iter().map(|s| (*s, vec![None; rows.len()])).collect();
        let mut ts = Vec::with_capacity(rows.len());
        for (i, (t, row)) in rows.iter().enumerate() {
            ts.push(*t);
            for (sid, v) in row {
                if let Some(c) = col_of.get(sid) {
                    cols[*c].1[i] = Some(*v);
                }
            }
        }
        let body = codec::encode_raw(&ts, &cols)?;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO raw_blocks (host_id, start_ms, end_ms, n, body) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(&e)?
        .execute(params![host_id, start, last, ts.len() as i64, body])
        .map_err(&e)?;
        Ok(())
    }

    /// Continues (or starts, with `cut`) the pass of `level` over the series, chunk by chunk,
    /// until it is done or `ROLL_BUDGET` since `started` is spent. Returns the blocks written
    /// and, when the pass is done, its cut.
    fn roll_pass(
        &mut self,
        conn: &Connection,
        level: Level,
        cut: i64,
        started: Instant,
    ) -> Result<(usize, Option<i64>), Error> {
        let slot = usize::from(level == Level::Hour);
        let (cut, mut cursor) = self.pending[slot].unwrap_or((cut, i64::MIN));
        let last = self.info.keys().copied().max().unwrap_or(0);
        let mut n = 0;
        loop {
            let end = cursor.max(0).saturating_add(ROLL_CHUNK);
            n += self.roll_blocks(conn, level, cut, cursor, end)?;
            cursor = end;
            if cursor > last {
                self.pending[slot] = None;
                return Ok((n, Some(cut)));
            }
            if started.elapsed() >= ROLL_BUDGET {
                self.pending[slot] = Some((cut, cursor));
                return Ok((n, None));
            }
        }
    }

    /// Turns the staging rows of `level` before `cut` of the series `lo <= id < hi` into
    /// blocks (an hour of minutes, or a day of hours, per series), and for minutes writes each
    /// hour's rollup.
    fn roll_blocks(
        &mut self,
        conn: &Connection,
        level: Level,
        cut: i64,
        lo: i64,
        hi: i64,
    ) -> Result<usize, Error> {
        let e = sql(&self.path);
        let (staging, blocks, span) = level.tables();
        let mut groups: BTreeMap<(i64, i64), Vec<Rollup>> = BTreeMap::new();
        {
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT series_id, t_ms, min, avg, max, n FROM {staging} \
                     WHERE series_id >= ?2 AND series_id < ?3 AND t_ms < ?1"
                ))
                .map_err(&e)?;
            let mut rows = st.query(params![cut, lo, hi]).map_err(&e)?;
            while let Some(r) = rows.next().map_err(&e)? {
                let sid: i64 = r.get(0).map_err(&e)?;
                let t: i64 = r.get(1).map_err(&e)?;
                groups
                    .entry((sid, floor_to(t, span)))
                    .or_default()
                    .push(Rollup {
                        t,
                        min: r.get(2).map_err(&e)?,
                        avg: r.get(3).map_err(&e)?,
                        max: r.get(4).map_err(&e)?,
                        n: r.get(5).map_err(&e)?,
                    });
            }
        }
        let n = groups.len();
        for ((sid, start), rows) in groups {
            let merged = self.store_rollup_block(conn, blocks, sid, start, rows)?;
            if level == Level::Minute {
                let r = combine(start, &merged);
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO hour_staging (series_id, t_ms, min, avg, max, n) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(&e)?
                .execute(params![sid, r.t, r.min, r.avg, r.max, r.n])
                .map_err(&e)?;
            }
        }
        conn.prepare_cached(&format!(
            "DELETE FROM {staging} WHERE series_id >= ?2 AND series_id < ?3 AND t_ms < ?1"
        ))
        .map_err(&e)?
        .execute(params![cut, lo, hi])
        .map_err(&e)?;
        Ok(n)
    }

    /// Writes one rollup block merged with the one already there; returns the merged rows.
    fn store_rollup_block(
        &self,
        conn: &Connection,
        table: &str,
        sid: i64,
        start: i64,
        rows: Vec<Rollup>,
    ) -> Result<Vec<Rollup>, Error> {
        let e = sql(&self.path);
        let old: Option<Vec<u8>> = conn
            .prepare_cached(&format!(
                "SELECT body FROM {table} WHERE series_id = ?1 AND start_ms = ?2"
            ))
            .map_err(&e)?
            .query_row(params![sid, start], |r| r.get(0))
            .optional()
            .map_err(&e)?;
        let mut all: BTreeMap<i64, Rollup> = BTreeMap::new();
        if let Some(old) = old {
            for r in codec::decode_rollups(&old)? {
                all.insert(r.t, r);
            }
        }
        for r in rows {
            all.insert(r.t, r);
        }
        let merged: Vec<Rollup> = all.into_values().collect();
        let last = merged.last().map_or(start, |r| r.t);
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {table} (series_id, start_ms, end_ms, n, body) \
             VALUES (?1, ?2, ?3, ?4, ?5)"
        ))
        .map_err(&e)?
        .execute(params![
            sid,
            start,
            last,
            merged.len() as i64,
            codec::encode_rollups(&merged)?
        ])
        .map_err(&e)?;
        Ok(merged)
    }

    /// Deletes what is past its age: blocks whose newest row is, and staging rows that are.
    fn retain(&mut self, conn: &Connection, now: i64, r: &Retention) -> Result<usize, Error> {
        let e = sql(&self.path);
        let age = |d: std::time::Duration| now - i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let raw = age(r.raw);
        let mut n = 0;
        n += conn
            .execute("DELETE FROM raw_blocks WHERE end_ms < ?1", [raw])
            .map_err(&e)?;
        if self.first_staged.values().any(|t| *t < raw) {
            n += conn
                .execute("DELETE FROM raw_staging WHERE ts_ms < ?1", [raw])
                .map_err(&e)?;
            let stale: Vec<i64> = self
                .first_staged
                .iter()
                .filter(|(_, t)| **t < raw)
                .map(|(h, _)| *h)
                .collect();
            for h in stale {
                let first: Option<i64> = conn
                    .query_row(
                        "SELECT min(ts_ms) FROM raw_staging WHERE host_id = ?1",
                        [h],
                        |r| r.get(0),
                    )
                    .map_err(&e)?;
                match first {
                    Some(t) => self.first_staged.insert(h, t),
                    None => self.first_staged.remove(&h),
                };
            }
        }
        for (level, keep) in [(Level::Minute, r.minute), (Level::Hour, r.hour)] {
            let (staging, blocks, _) = level.tables();
            let cut = age(keep);
            n += conn
                .execute(&format!("DELETE FROM {blocks} WHERE end_ms < ?1"), [cut])
                .map_err(&e)?;
            // Staging rows are younger than an hour (a day) unless the retention is shorter.
            if keep.as_secs() < 2 * 86_400 {
                n += conn
                    .execute(&format!("DELETE FROM {staging} WHERE t_ms < ?1"), [cut])
                    .map_err(&e)?;
            }
        }
        Ok(n)
    }

    /// Writes `hosts` x the range of synthetic samples straight to blocks (for benchmarks and
    /// demos), then rolls up as of `to_ms`. See [`backfill`].
    fn backfill_host_window(
        &mut self,
        conn: &Connection,
        host: &str,
        samples: &[(i64, Snapshot)],
    ) -> Result<usize, Error> {
        let host_id = self.host_id(conn, host)?;
        let mut windows: BTreeMap<i64, BTreeMap<i64, Vec<(i64, i64)>>> = BTreeMap::new();
        let mut values = 0;
        for (ts, s) in samples {
            let pairs = self.pairs(conn, host_id, s)?;
            values += pairs.len();
            self.accumulate(*ts, &pairs);
            windows
                .entry(window_start(host_id, *ts))
                .or_default()
                .insert(*ts, pairs);
        }
        for (start, rows) in windows {
            self.store_window(conn, host_id, start, rows)?;
        }
        Ok(values)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Minute,
    Hour,
}

impl Level {
    /// (staging table, block table, span of a block).
    fn tables(self) -> (&'static str, &'static str, i64) {
        match self {
            Level::Minute => ("minute_staging", "minute_blocks", HOUR),
            Level::Hour => ("hour_staging", "hour_blocks", DAY),
        }
    }
}

/// A cluster's row for one interval from its hosts' rows.
fn aggregate(how: Aggregate, t: i64, hosts: &[Rollup]) -> Rollup {
    let k = hosts.len().max(1) as f64;
    let f = |get: fn(&Rollup) -> i64| -> i64 {
        let sum: f64 = hosts.iter().map(|r| get(r) as f64).sum();
        match how {
            Aggregate::Sum => sum.round() as i64,
            Aggregate::Mean => (sum / k).round() as i64,
        }
    };
    Rollup {
        t,
        min: f(|r| r.min),
        avg: f(|r| r.avg),
        max: f(|r| r.max),
        n: hosts.len() as i64,
    }
}

/// One coarser row from finer ones: min of the mins, count-weighted mean, max of the maxes.
fn combine(t: i64, rows: &[Rollup]) -> Rollup {
    let n: i64 = rows.iter().map(|r| r.n).sum();
    let sum: f64 = rows.iter().map(|r| r.avg as f64 * r.n as f64).sum();
    Rollup {
        t,
        min: rows.iter().map(|r| r.min).min().unwrap_or(0),
        avg: (sum / n.max(1) as f64).round() as i64,
        max: rows.iter().map(|r| r.max).max().unwrap_or(0),
        n,
    }
}

/// Synthetic history for benchmarks and demos: what [`backfill`] writes.
#[derive(Debug, Clone)]
pub struct Backfill {
    /// Hosts, named `c{k}:node{i}` over `clusters` clusters.
    pub hosts: usize,
    /// Clusters the hosts are spread over (at least 1).
    pub clusters: usize,
    /// First sample (ms since the epoch).
    pub from_ms: u64,
    /// End of the range (exclusive).
    pub to_ms: u64,
    /// Interval between a host's samples (ms).
    pub interval_ms: u64,
    /// Seed of the values (the same seed writes the same history).
    pub seed: u64,
    /// GPUs per host ([`synthetic_gpus`]: use, memory, power and the health signals); 0 for
    /// hosts without GPUs.
    pub gpus: u32,
}

/// What [`backfill`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backfilled {
    /// Samples written.
    pub samples: u64,
    /// Values written (about 25 per sample: CPU, loads, memory, swap, two disks, two
    /// interfaces, two sensors, processes, sessions; and 16 per GPU: 6 of use, 10 of health).
    pub values: u64,
}

/// A small deterministic generator (xorshift) for synthetic samples.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A plausible host sample: values that wander like a busy server's.
pub fn synthetic_snapshot(seed: u64, t_ms: u64) -> Snapshot {
    use smon_proto::{Cpu, Disk, LoadAverage, Memory, NetInterface, Temperature};
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ t_ms.wrapping_mul(0x2545_F491) | 1);
    let _ = r.next();
    let phase = (t_ms as f64 / 600_000.0 + (seed % 97) as f64).sin();
    let cpu = (35.0 + 25.0 * phase + 8.0 * r.unit()).clamp(0.0, 100.0);
    let gib = 1u64 << 30;
    let mem_used = 24 * gib + ((phase + 1.0) * 2.0 * gib as f64) as u64 / 4096 * 4096;
    let disk = |mount: &str, base: u64, r: &mut Rng| Disk {
        mount_point: mount.into(),
        total_bytes: 1000 * gib,
        used_bytes: base + t_ms / 1000 * 4096,
        used_percent: ((base + t_ms / 1000 * 4096) as f64 * 100.0 / (1000 * gib) as f64) as f32,
        read_bytes_per_s: Some(if r.unit() < 0.7 {
            0
        } else {
            (r.unit() * 4e6) as u64 / 4096 * 4096
        }),
        write_bytes_per_s: Some((r.unit() * 2e6) as u64 / 4096 * 4096),
        ..Default::default()
    };
    Snapshot {
        sample_unix_ms: t_ms,
        cpu: Some(Cpu {
            total_percent: cpu as f32,
            ..Default::default()
        }),
        load: Some(LoadAverage {
            one: 4.0 + 2.0 * phase,
            five: 4.0 + 1.5 * phase,
            fifteen: 4.0 + phase,
        }),
        memory: Some(Memory {
            total_bytes: 64 * gib,
            used_bytes: mem_used,
            used_percent: (mem_used as f64 * 100.0 / (64 * gib) as f64) as f32,
            swap_total_bytes: 8 * gib,
            swap_used_bytes: 12 << 20,
            swap_used_percent: 0.15,
            ..Default::default()
        }),
        disks: vec![
            disk("/", 200 * gib, &mut r),
            disk("/data", 600 * gib, &mut r),
        ],
        networks: ["eth0", "eth1"]
            .iter()
            .map(|n| NetInterface {
                name: (*n).into(),
                rx_bytes_per_s: (r.unit() * 5e5 * (phase + 1.5)) as u64,
                tx_bytes_per_s: (r.unit() * 2e5 * (phase + 1.5)) as u64,
                ..Default::default()
            })
            .collect(),
        temperatures: ["cpu", "nvme"]
            .iter()
            .map(|l| Temperature {
                label: (*l).into(),
                celsius: Some((50.0 + 10.0 * phase + r.unit()) as f32),
                ..Default::default()
            })
            .collect(),
        process_count: 400 + (r.unit() * 10.0) as u32,
        sessions: Vec::new(),
        ..Default::default()
    }
}

/// Plausible GPUs of a host sample: `n` GPUs (H100-like, no fan) that are busy or idle for
/// minutes at a time, with the health signals as a lab's GPUs report them: the SM clock at
/// its boost or idle value (a few steps lower while the power cap holds it), the HBM a few
/// degrees above the core, a corrected-ECC count that rises now and then on every other GPU,
/// no uncorrected errors, remapped rows or Xid errors, and the throttle reasons of the state.
pub fn synthetic_gpus(seed: u64, t_ms: u64, n: u32) -> Vec<smon_proto::Gpu> {
    (0..n)
        .map(|i| {
            let k = u64::from(i);
            let mut r = Rng((seed ^ k.wrapping_mul(0x9E37_79B9))
                .wrapping_mul(0x2545_F491_4F6C_DD1D)
                ^ t_ms.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                | 1);
            let _ = r.next();
            // Busy or idle for 7-minute spells, different per GPU.
            let spell = (t_ms / 420_000).wrapping_add(seed).wrapping_add(k * 3);
            let busy = !spell.is_multiple_of(4);
            let util = if busy {
                88 + (r.unit() * 12.0) as u32
            } else {
                0
            };
            let capped = util >= 97;
            let temp = if busy { 62 } else { 34 } + (r.unit() * 2.0) as u32;
            let gib = 1u64 << 30;
            let mut throttle = Vec::new();
            if !busy {
                throttle.push("gpu_idle".to_owned());
            }
            if capped {
                throttle.push("sw_power_cap".to_owned());
            }
            smon_proto::Gpu {
                index: i,
                uuid: format!("GPU-{seed:08x}-{i}"),
                name: "NVIDIA H100 80GB HBM3".into(),
                utilization_percent: Some(util),
                memory_used_bytes: Some(if busy { 61 * gib } else { gib / 2 }),
                memory_total_bytes: Some(80 * gib),
                temperature_celsius: Some(temp),
                power_mw: Some(
                    if busy { 520_000 + util * 1500 } else { 72_000 } + (r.unit() * 2000.0) as u32,
                ),
                power_limit_mw: Some(700_000),
                sm_clock_mhz: Some(match (busy, capped) {
                    (false, _) => 345,
                    (true, false) => 1980,
                    (true, true) => 1980 - 15 * (1 + (r.unit() * 8.0) as u32),
                }),
                memory_temperature_celsius: Some(temp + 5),
                ecc_corrected_errors: Some(if i % 2 == 1 {
                    t_ms / 1_800_000 % 1000
                } else {
                    0
                }),
                ecc_uncorrected_errors: Some(0),
                remapped_rows_correctable: Some(if i == 1 { 2 } else { 0 }),
                remapped_rows_uncorrectable: Some(0),
                xid_errors: Some(0),
                throttle_reasons: throttle,
                ..Default::default()
            }
        })
        .collect()
}

/// Writes synthetic history (see [`Backfill`]) into the database of `path`, straight to the
/// raw blocks (no staging rows) and through the same rollups as live samples, one transaction
/// per 10 minutes of data; the tiers are rolled up as of `b.to_ms` at the end. For the
/// benchmarks ("a day of 1,000 hosts") and demos; never run it on a live server's database
/// while its writer runs.
pub fn backfill(path: &Path, retention: &Retention, b: &Backfill) -> Result<Backfilled, Error> {
    let mut conn = crate::db::open_writer(path)?;
    let e = sql(path);
    let mut store = {
        let tx = conn.transaction().map_err(&e)?;
        let s = Store::load(&tx, path)?;
        tx.commit().map_err(&e)?;
        s
    };
    let interval = b.interval_ms.max(1);
    let clusters = b.clusters.max(1);
    let mut out = Backfilled {
        samples: 0,
        values: 0,
    };
    let mut start = b.from_ms;
    while start < b.to_ms {
        let end = (start + RAW_WINDOW as u64).min(b.to_ms);
        let tx = conn.transaction().map_err(&e)?;
        for h in 0..b.hosts {
            let host = format!("c{}:node{h}", h % clusters);
            let seed = b.seed.wrapping_add(h as u64 * 7919);
            let jitter = (h as u64 * 37) % interval.min(1000);
            let samples: Vec<(i64, Snapshot)> = (start..end)
                .step_by(usize::try_from(interval).unwrap_or(usize::MAX))
                .map(|t| {
                    let mut s = synthetic_snapshot(seed, t);
                    s.gpus = synthetic_gpus(seed, t, b.gpus);
                    (ms(t + jitter), s)
                })
                .filter(|(t, _)| *t < ms(end))
                .collect();
            out.samples += samples.len() as u64;
            out.values += store.backfill_host_window(&tx, &host, &samples)? as u64;
        }
        store.maintain(&tx, end, retention)?;
        tx.commit().map_err(&e)?;
        start = end;
    }
    let tx = conn.transaction().map_err(&e)?;
    store.maintain(&tx, b.to_ms + RAW_WINDOW as u64, retention)?;
    tx.commit().map_err(&e)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Reading.

/// A point read from a tier, before it is put in its bucket.
#[derive(Debug, Clone, Copy)]
struct Point {
    t: i64,
    min: f64,
    avg: f64,
    max: f64,
    w: f64,
}

struct Wanted {
    sid: i64,
    metric: &'static Metric,
    label: String,
}

fn tier_res(tier: Tier) -> i64 {
    match tier {
        Tier::Raw => 1_000,
        Tier::Minute => MINUTE,
        Tier::Hour => HOUR,
    }
}

/// Checks a query's shape; the text of the error is what a 400 answer says.
pub fn validate(q: &SeriesQuery) -> Result<Vec<Selector>, Error> {
    if q.from_ms > q.to_ms {
        return Err(Error::BadQuery(format!(
            "'from' ({}) is after 'to' ({}): the range must not end before it starts",
            q.from_ms, q.to_ms
        )));
    }
    if q.points == 0 || q.points > MAX_POINTS {
        return Err(Error::BadQuery(format!(
            "'points' is {}; it must be between 1 and {MAX_POINTS}",
            q.points
        )));
    }
    if q.metrics.is_empty() {
        return Err(Error::BadQuery(
            "no metric asked for: give 'metrics', e.g. cpu_percent,mem_percent".into(),
        ));
    }
    q.metrics
        .iter()
        .map(|m| series::parse_selector(m))
        .collect()
}

/// The tier a query of `[from_ms, ..]` reads: the finest whose retention covers `from_ms`.
pub fn pick_tier(from_ms: u64, now_ms: u64, r: &Retention) -> Tier {
    let age = now_ms.saturating_sub(from_ms);
    if u128::from(age) <= r.raw.as_millis() {
        Tier::Raw
    } else if u128::from(age) <= r.minute.as_millis() {
        Tier::Minute
    } else {
        Tier::Hour
    }
}

fn keep_from(now: i64, tier: Tier, r: &Retention) -> i64 {
    let d = match tier {
        Tier::Raw => r.raw,
        Tier::Minute => r.minute,
        Tier::Hour => r.hour,
    };
    now - i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whose series a query reads.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The stored host: a host id, or a cluster's pseudo host `@cluster`.
    pub host: &'a str,
    /// What the answer names (`SeriesAnswer::of`): the host id or the cluster.
    pub of: &'a str,
    /// The finest tier allowed (`Minute` for clusters, which have no raw tier).
    pub finest: Tier,
}

/// Answers a series query, as of `now_ms` (which picks the tier and what retention hides).
pub fn query(
    conn: &Connection,
    path: &Path,
    target: Target<'_>,
    q: &SeriesQuery,
    now_ms: u64,
    retention: &Retention,
) -> Result<SeriesAnswer, Error> {
    let Target { host, of, finest } = target;
    let selectors = validate(q)?;
    let e = sql(path);
    let mut tier = pick_tier(q.from_ms, now_ms, retention);
    if finest == Tier::Minute && tier == Tier::Raw {
        tier = Tier::Minute;
    }
    let res = tier_res(tier);
    let (from, to) = (ms(q.from_ms), ms(q.to_ms));
    let span = to - from + 1;
    let per = (span + q.points as i64 - 1) / q.points as i64;
    let step = ((per.max(res) + res - 1) / res) * res;
    let t0 = floor_to(from, step);
    let nb = usize::try_from((to - t0) / step + 1).unwrap_or(0);
    let t: Vec<u64> = (0..nb).map(|i| (t0 + i as i64 * step) as u64).collect();
    let host_id: Option<i64> = conn
        .prepare_cached("SELECT id FROM hosts WHERE name = ?1")
        .map_err(&e)?
        .query_row([host], |r| r.get(0))
        .optional()
        .map_err(&e)?;
    let mut wanted: Vec<Wanted> = Vec::new();
    if let Some(host_id) = host_id {
        let mut st = conn
            .prepare_cached("SELECT id, label FROM series WHERE host_id = ?1 AND metric = ?2")
            .map_err(&e)?;
        for sel in &selectors {
            let rows = st
                .query_map(params![host_id, sel.metric.name], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(&e)?;
            for row in rows {
                let (sid, label) = row.map_err(&e)?;
                if sel.label.as_ref().is_none_or(|l| *l == label)
                    && !wanted.iter().any(|w| w.sid == sid)
                {
                    wanted.push(Wanted {
                        sid,
                        metric: sel.metric,
                        label,
                    });
                }
            }
        }
    }
    wanted.sort_by(|a, b| {
        (series::metric_index(a.metric.name), &a.label)
            .cmp(&(series::metric_index(b.metric.name), &b.label))
    });
    let lo = from.max(keep_from(ms(now_ms), tier, retention));
    let mut points: HashMap<i64, Vec<Point>> = wanted.iter().map(|w| (w.sid, Vec::new())).collect();
    if let (Some(host_id), false) = (host_id, wanted.is_empty()) {
        match tier {
            Tier::Raw => read_raw(conn, path, host_id, lo, to, &mut points)?,
            Tier::Minute | Tier::Hour => {
                let level = if tier == Tier::Minute {
                    Level::Minute
                } else {
                    Level::Hour
                };
                for w in &wanted {
                    let pts = points.entry(w.sid).or_default();
                    read_rollups(conn, path, level, w.sid, lo, to, pts)?;
                }
            }
        }
    }
    let series = wanted
        .iter()
        .map(|w| {
            let mut min = vec![f64::INFINITY; nb];
            let mut max = vec![f64::NEG_INFINITY; nb];
            let mut sum = vec![0.0; nb];
            let mut wt = vec![0.0; nb];
            for p in points.get(&w.sid).into_iter().flatten() {
                if p.t < lo || p.t > to || p.t < t0 {
                    continue;
                }
                let Ok(i) = usize::try_from((p.t - t0) / step) else {
                    continue;
                };
                if i >= nb {
                    continue;
                }
                min[i] = min[i].min(p.min);
                max[i] = max[i].max(p.max);
                sum[i] += p.avg * p.w;
                wt[i] += p.w;
            }
            let m = w.metric;
            let out = |i: usize, v: f64| (wt[i] > 0.0).then(|| series::dequantise(m, v));
            Series {
                metric: m.name.to_owned(),
                label: w.label.clone(),
                avg: (0..nb).map(|i| out(i, sum[i] / wt[i].max(1e-12))).collect(),
                min: (0..nb).map(|i| out(i, min[i])).collect(),
                max: (0..nb).map(|i| out(i, max[i])).collect(),
            }
        })
        .collect();
    Ok(SeriesAnswer {
        of: of.to_owned(),
        from: q.from_ms,
        to: q.to_ms,
        tier,
        step_ms: step as u64,
        t,
        series,
    })
}

fn raw_point(t: i64, v: i64) -> Point {
    let v = v as f64;
    Point {
        t,
        min: v,
        avg: v,
        max: v,
        w: 1.0,
    }
}

fn read_raw(
    conn: &Connection,
    path: &Path,
    host_id: i64,
    from: i64,
    to: i64,
    points: &mut HashMap<i64, Vec<Point>>,
) -> Result<(), Error> {
    let e = sql(path);
    let mut st = conn
        .prepare_cached(
            "SELECT body FROM raw_blocks WHERE host_id = ?1 AND start_ms > ?2 AND start_ms <= ?3 \
             AND end_ms >= ?4 ORDER BY start_ms",
        )
        .map_err(&e)?;
    let mut rows = st
        .query(params![host_id, from - RAW_WINDOW, to, from])
        .map_err(&e)?;
    while let Some(r) = rows.next().map_err(&e)? {
        let body = r.get_ref(0).map_err(&e)?.as_blob().map_err(|x| {
            sql(path)(rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Blob,
                Box::new(x),
            ))
        })?;
        let blk = RawBlock::parse(body)?;
        let ts = blk.times()?;
        for (sid, pts) in points.iter_mut() {
            if let Some(col) = blk.column(*sid)? {
                pts.extend(
                    col.into_iter()
                        .filter(|(i, _)| ts[*i] >= from && ts[*i] <= to)
                        .map(|(i, v)| raw_point(ts[i], v)),
                );
            }
        }
    }
    drop(rows);
    let mut st = conn
        .prepare_cached(
            "SELECT ts_ms, body FROM raw_staging WHERE host_id = ?1 AND ts_ms >= ?2 AND ts_ms <= ?3",
        )
        .map_err(&e)?;
    let mut rows = st.query(params![host_id, from, to]).map_err(&e)?;
    while let Some(r) = rows.next().map_err(&e)? {
        let t: i64 = r.get(0).map_err(&e)?;
        let body: Vec<u8> = r.get(1).map_err(&e)?;
        for (sid, v) in codec::decode_staging(&body)? {
            if let Some(pts) = points.get_mut(&sid) {
                pts.push(raw_point(t, v));
            }
        }
    }
    Ok(())
}

fn rollup_point(r: &Rollup) -> Point {
    Point {
        t: r.t,
        min: r.min as f64,
        avg: r.avg as f64,
        max: r.max as f64,
        w: r.n as f64,
    }
}

fn read_rollups(
    conn: &Connection,
    path: &Path,
    level: Level,
    sid: i64,
    from: i64,
    to: i64,
    pts: &mut Vec<Point>,
) -> Result<(), Error> {
    let e = sql(path);
    let (staging, blocks, span) = level.tables();
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT body FROM {blocks} WHERE series_id = ?1 AND start_ms > ?2 AND start_ms <= ?3 \
             ORDER BY start_ms"
        ))
        .map_err(&e)?;
    let mut rows = st.query(params![sid, from - span, to]).map_err(&e)?;
    while let Some(r) = rows.next().map_err(&e)? {
        let body: Vec<u8> = r.get(0).map_err(&e)?;
        pts.extend(
            codec::decode_rollups(&body)?
                .iter()
                .filter(|r| r.t >= from && r.t <= to)
                .map(rollup_point),
        );
    }
    drop(rows);
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT t_ms, min, avg, max, n FROM {staging} \
             WHERE series_id = ?1 AND t_ms >= ?2 AND t_ms <= ?3"
        ))
        .map_err(&e)?;
    let rows = st
        .query_map(params![sid, from, to], |r| {
            Ok(Rollup {
                t: r.get(0)?,
                min: r.get(1)?,
                avg: r.get(2)?,
                max: r.get(3)?,
                n: r.get(4)?,
            })
        })
        .map_err(&e)?;
    for r in rows {
        pts.push(rollup_point(&r.map_err(&e)?));
    }
    Ok(())
}

/// The metric tiers of [`smon_api::history::StorageAnswer::tiers`]: their bytes (tables and
/// indexes, from [`crate::admin::sizes`]), the retention in force and the oldest data. The
/// oldest time of a tier is the start of its oldest block (for the raw tier, of the block's
/// 10-minute window: up to 10 minutes before its first sample).
pub fn tier_stats(
    conn: &Connection,
    path: &Path,
    r: &Retention,
    sizes: &[TableSize],
) -> Result<Vec<TierStats>, Error> {
    let e = sql(path);
    let bytes = |tables: [&str; 2]| -> u64 {
        sizes
            .iter()
            .filter(|s| tables.contains(&s.table.as_str()))
            .map(|s| s.bytes)
            .sum()
    };
    let oldest = |q: &str| -> Result<Option<u64>, Error> {
        let v: Option<i64> = conn.query_row(q, [], |r| r.get(0)).map_err(&e)?;
        Ok(v.and_then(|v| u64::try_from(v).ok()))
    };
    let min2 = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let block_oldest = |t: &str| {
        format!("SELECT min(start_ms) FROM {t} WHERE end_ms = (SELECT min(end_ms) FROM {t})")
    };
    Ok(vec![
        TierStats {
            name: "raw".into(),
            retention_s: r.raw.as_secs(),
            bytes: bytes(["raw_blocks", "raw_staging"]),
            oldest_ms: min2(
                oldest(&block_oldest("raw_blocks"))?,
                oldest("SELECT min(ts_ms) FROM raw_staging")?,
            ),
        },
        TierStats {
            name: "minute".into(),
            retention_s: r.minute.as_secs(),
            bytes: bytes(["minute_blocks", "minute_staging"]),
            oldest_ms: min2(
                oldest(&block_oldest("minute_blocks"))?,
                oldest("SELECT min(t_ms) FROM minute_staging")?,
            ),
        },
        TierStats {
            name: "hour".into(),
            retention_s: r.hour.as_secs(),
            bytes: bytes(["hour_blocks", "hour_staging"]),
            oldest_ms: min2(
                oldest(&block_oldest("hour_blocks"))?,
                oldest("SELECT min(t_ms) FROM hour_staging")?,
            ),
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series ids a sample gets by position from the host's last sample are those the
    /// names give, whatever changes between samples: disks swapped, a label renamed, a GPU
    /// gone and back, a GPU's UUID changed, a value missing, and labels that repeat.
    #[test]
    fn series_found_by_position_are_the_ones_their_names_give() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.sqlite3");
        let conn = crate::db::open_writer(&path).expect("open");
        let mut store = Store::load(&conn, &path).expect("load");
        let base = synthetic_snapshot(7, 1_700_000_000_000);
        let mut variants = vec![base.clone()];
        let mut s = base.clone();
        s.gpus = synthetic_gpus(7, 1_700_000_000_000, 3);
        variants.push(s.clone());
        s.disks.swap(0, 1);
        variants.push(s.clone());
        s.disks[0].mount_point = "/scratch".into();
        variants.push(s.clone());
        s.gpus.remove(1);
        variants.push(s.clone());
        s.gpus[0].uuid = "GPU-renamed".into();
        variants.push(s.clone());
        s.disks[1].read_bytes_per_s = None;
        s.cpu = None;
        variants.push(s.clone());
        // Two interfaces of the same name: the same series twice in one sample.
        s.networks[1].name = s.networks[0].name.clone();
        variants.push(s.clone());
        let host = store.host_id(&conn, "lab:a").expect("host");
        for round in 0..2 {
            for (k, snap) in variants.iter().chain(variants.iter().rev()).enumerate() {
                let pairs = store.pairs(&conn, host, snap).expect("pairs");
                let mut want: Vec<(i64, i64)> = series::values(snap)
                    .iter()
                    .map(|v| {
                        let id = store.series[&(host, v.metric.name)][&v.label];
                        (id, v.quantised())
                    })
                    .collect();
                want.sort_by_key(|p| p.0);
                want.dedup_by_key(|p| p.0);
                let ids = |p: &[(i64, i64)]| p.iter().map(|x| x.0).collect::<Vec<_>>();
                assert_eq!(ids(&pairs), ids(&want), "round {round}, sample {k}");
                for (sid, _) in &pairs {
                    assert_eq!(store.info[sid].host_id, host);
                }
            }
        }
    }

    #[test]
    fn an_hour_pass_goes_chunk_by_chunk_and_finishes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.sqlite3");
        let conn = crate::db::open_writer(&path).expect("open");
        conn.execute("INSERT INTO hosts (id, name) VALUES (1, 'lab:a')", [])
            .expect("host");
        for id in [1i64, 2_500, 4_500] {
            conn.execute(
                "INSERT INTO series (id, host_id, metric, label) VALUES (?1, 1, 'disk_percent', ?2)",
                params![id, id.to_string()],
            )
            .expect("series");
            for m in 0..60 {
                conn.execute(
                    "INSERT INTO minute_staging VALUES (?1, ?2, 1, 2, 3, 60)",
                    params![id, m * MINUTE],
                )
                .expect("row");
            }
        }
        let mut store = Store::load(&conn, &path).expect("load");
        // A spent budget: one chunk per call.
        let spent = Instant::now() - ROLL_BUDGET;
        let mut calls = 0;
        loop {
            calls += 1;
            let (_, done) = store
                .roll_pass(&conn, Level::Minute, HOUR, spent)
                .expect("pass");
            if let Some(cut) = done {
                assert_eq!(cut, HOUR);
                break;
            }
            assert!(store.pending[0].is_some());
        }
        assert_eq!(calls, 3, "series 1, 2500 and 4500 are in three chunks");
        let count = |q: &str| -> i64 { conn.query_row(q, [], |r| r.get(0)).expect("count") };
        assert_eq!(count("SELECT count(*) FROM minute_staging"), 0);
        assert_eq!(count("SELECT count(*) FROM minute_blocks"), 3);
        assert_eq!(count("SELECT count(*) FROM hour_staging WHERE n = 3600"), 3);
    }

    #[test]
    fn windows_are_staggered_by_host_and_ten_minutes_long() {
        let t = 1_700_000_123_456;
        for h in 0..20 {
            let s = window_start(h, t);
            assert!(s <= t && t < s + RAW_WINDOW, "host {h}");
            assert_eq!(s.rem_euclid(MINUTE), 0);
        }
        assert_ne!(window_start(1, t), window_start(2, t));
    }

    #[test]
    fn cluster_rows_mean_or_sum_their_hosts() {
        let a = Rollup {
            t: 0,
            min: 10,
            avg: 20,
            max: 30,
            n: 60,
        };
        let b = Rollup {
            t: 0,
            min: 30,
            avg: 40,
            max: 50,
            n: 58,
        };
        let m = aggregate(Aggregate::Mean, 0, &[a, b]);
        assert_eq!((m.min, m.avg, m.max, m.n), (20, 30, 40, 2));
        let s = aggregate(Aggregate::Sum, 0, &[a, b]);
        assert_eq!((s.min, s.avg, s.max), (40, 60, 80));
        let c = combine(0, &[a, b]);
        assert_eq!((c.min, c.max, c.n), (10, 50, 118));
        assert_eq!(
            c.avg,
            ((20.0 * 60.0 + 40.0 * 58.0) / 118.0f64).round() as i64
        );
    }

    #[test]
    fn the_tier_is_the_finest_whose_retention_covers_from() {
        let r = Retention::default();
        let now = 100 * DAY as u64;
        assert_eq!(pick_tier(now - HOUR as u64, now, &r), Tier::Raw);
        assert_eq!(pick_tier(now - DAY as u64, now, &r), Tier::Raw);
        assert_eq!(pick_tier(now - 2 * DAY as u64, now, &r), Tier::Minute);
        assert_eq!(pick_tier(now - 95 * DAY as u64, now, &r), Tier::Hour);
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        let q = |from, to, points, m: &str| SeriesQuery {
            metrics: vec![m.to_owned()],
            from_ms: from,
            to_ms: to,
            points,
        };
        let msg = |q| validate(&q).expect_err("bad").to_string();
        assert!(msg(q(5, 4, 10, "cpu_percent")).contains("after 'to'"));
        assert!(msg(q(1, 4, 0, "cpu_percent")).contains("between 1 and 5000"));
        assert!(msg(q(1, 4, 5001, "cpu_percent")).contains("between 1 and 5000"));
        assert!(msg(q(1, 4, 10, "nope")).contains("unknown metric 'nope'"));
        assert!(validate(&q(1, 4, 10, "disk_percent{/}")).is_ok());
    }
}
