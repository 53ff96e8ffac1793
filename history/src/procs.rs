//! Process and GPU history: the top processes and every GPU process, per host and minute, and
//! the queries on them (the processes at a minute, GPU usage by user, host or GPU); the logins
//! and logouts seen in the samples' sessions; and the retention of all of it.
//!
//! Storage (`migrations/0002_processes.sql`):
//! - `top_processes`: one row per host and minute, keyed `(minute_ms, host)`, whose body is a
//!   compact binary list (see `Body`): the union of the top [`TOP_N`] by CPU and by memory,
//!   and both rankings as indexes into it. Strings (names, users, command lines, GPU UUIDs) are
//!   stored once in `proc_text` and referred to by id, so a process that stays on top for a
//!   month costs its command line once. About 250 bytes per host and minute (measured with
//!   `examples/procs_backfill`: 720 bytes per host-minute in all with 8 busy GPUs).
//! - `gpu_processes`: one row per GPU process, host and minute; `gpu_usage_hour` sums them
//!   per hour, host, GPU and user as they are written (so a usage query over weeks reads the
//!   hours), and `gpu_pids` keeps each GPU process once with its first and last minute. A GPU
//!   is keyed by its UUID (`gpu_key`, `migrations/0008_gpu_uuid.sql`), not by its index, so
//!   that its usage stays with the card when another GPU falls off the bus and the rest are
//!   numbered anew; rows stored before, or of a GPU without a UUID, keep the index.
//! - `session_state` (each host's sessions at its last sample) and `login_events`.
//!
//! The per-minute and per-hour tables' keys start with the time, so retention deletes a key
//! range and new rows are appended at the end of each tree (`login_events` and `gpu_pids` have
//! an index on the time for retention). Visibility (command lines, users) is applied when reading
//! ([`Shown`]): what is stored is what the agent sent (command lines already redacted there).

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use smon_api::history::{
    GpuProcessAt, GpuUsageAnswer, GpuUsageRow, ProcessAt, ProcessesAnswer, TierStats, UsageBy,
};
use smon_proto::{GpuProcess, Snapshot};

use crate::admin::TableSize;
use crate::{Error, Retention, Shown};

/// How many processes each ranking keeps (by CPU, by memory) per host and minute.
pub const TOP_N: usize = 10;

/// How often the top processes are taken for the history, per host.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The parts a host is asked for each [`EVERY`]: the top [`TOP_N`] by CPU and by memory, and
/// the processes on each GPU.
pub const PARTS: smon_proto::Parts = smon_proto::Parts {
    top_processes: TOP_N as u32,
    gpu_processes: true,
    ..smon_proto::Parts::SUMMARY
};

/// One minute in ms: the resolution of process history.
pub const MINUTE_MS: u64 = 60_000;

/// How far from the asked time [`processes_at`] looks for a stored minute.
pub const NEAREST_MS: u64 = 5 * MINUTE_MS;

/// A string's `last_ms` is refreshed when it is written again at least this much later; so
/// retention keeps strings this much longer than the rows (see [`retain`]).
const TEXT_REFRESH_MS: u64 = 86_400_000;

/// The tables of the `processes` tier and of the `events` tier (for [`tiers`]).
pub const PROCESS_TABLES: &[&str] = &[
    "top_processes",
    "gpu_processes",
    "gpu_usage_hour",
    "gpu_pids",
    "proc_text",
];
/// The tables of the `events` tier.
pub const EVENT_TABLES: &[&str] = &["login_events", "session_state"];

const GIB: f64 = (1u64 << 30) as f64;

/// The start of the minute holding `at_ms`.
pub fn minute_of(at_ms: u64) -> u64 {
    at_ms - at_ms % MINUTE_MS
}

fn sql(conn: &Connection) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Sqlite {
        path: conn.path().unwrap_or_default().into(),
        source,
    }
}

/// Times are stored as SQLite integers (i64): ms since the epoch fit until the year 292 million.
fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// CPU percent as stored: hundredths of a percent (NaN and negatives as 0).
fn centi(cpu_percent: f32) -> u32 {
    let c = (f64::from(cpu_percent) * 100.0).round();
    if c.is_finite() && c > 0.0 {
        c.min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

// ---------------------------------------------------------------------------------------------
// Strings

/// Interns the strings of one write: an id per distinct string, refreshed at most once a day.
struct Texts<'c> {
    conn: &'c Connection,
    at_ms: i64,
    cache: HashMap<String, i64>,
}

impl<'c> Texts<'c> {
    fn new(conn: &'c Connection, at_ms: u64) -> Self {
        Self {
            conn,
            at_ms: ms(at_ms),
            cache: HashMap::new(),
        }
    }

    /// The id of `s` (0 for the empty string, which is not stored).
    fn id(&mut self, s: &str) -> Result<i64, Error> {
        if s.is_empty() {
            return Ok(0);
        }
        if let Some(&id) = self.cache.get(s) {
            return Ok(id);
        }
        let e = sql(self.conn);
        let found: Option<(i64, i64)> = self
            .conn
            .prepare_cached("SELECT id, last_ms FROM proc_text WHERE text = ?1")
            .map_err(&e)?
            .query_row([s], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(&e)?;
        let id = match found {
            Some((id, last)) => {
                if last < self.at_ms.saturating_sub(ms(TEXT_REFRESH_MS)) {
                    self.conn
                        .prepare_cached("UPDATE proc_text SET last_ms = ?2 WHERE id = ?1")
                        .map_err(&e)?
                        .execute(params![id, self.at_ms])
                        .map_err(&e)?;
                }
                id
            }
            None => {
                self.conn
                    .prepare_cached("INSERT INTO proc_text (text, last_ms) VALUES (?1, ?2)")
                    .map_err(&e)?
                    .execute(params![s, self.at_ms])
                    .map_err(&e)?;
                self.conn.last_insert_rowid()
            }
        };
        self.cache.insert(s.to_owned(), id);
        Ok(id)
    }
}

/// Reads stored strings by id (for one answer).
struct TextReader<'c> {
    conn: &'c Connection,
    cache: HashMap<i64, String>,
}

impl<'c> TextReader<'c> {
    fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            cache: HashMap::new(),
        }
    }

    fn get(&mut self, id: i64) -> Result<String, Error> {
        if id == 0 {
            return Ok(String::new());
        }
        if let Some(s) = self.cache.get(&id) {
            return Ok(s.clone());
        }
        let e = sql(self.conn);
        let s: Option<String> = self
            .conn
            .prepare_cached("SELECT text FROM proc_text WHERE id = ?1")
            .map_err(&e)?
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(&e)?;
        // Retention keeps every string a kept row uses; a missing one (a damaged file) reads
        // as empty rather than failing the whole answer.
        let s = s.unwrap_or_else(|| {
            tracing::warn!(id, "A stored process string is missing; shown as empty.");
            String::new()
        });
        self.cache.insert(id, s.clone());
        Ok(s)
    }
}

// ---------------------------------------------------------------------------------------------
// The body of a host-minute

/// A process in a stored body (strings as `proc_text` ids, 0 for empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    pid: u32,
    name: i64,
    user: i64,
    cmdline: i64,
    cpu_centi: u32,
    memory_bytes: u64,
}

/// The stored body of one host and minute: format version 1 is a byte `1`, then LEB128
/// unsigned varints: the number of entries, each entry as `pid name user cmdline cpu_centi
/// memory_bytes`, then the CPU ranking (count, entry indexes) and the memory ranking (count,
/// entry indexes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Body {
    entries: Vec<Entry>,
    by_cpu: Vec<usize>,
    by_memory: Vec<usize>,
}

const BODY_V1: u8 = 1;

fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.b.get(self.at) else {
                return Err(Error::Codec("process body: truncated".into()));
            };
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::Codec("process body: varint too long".into()))
    }

    fn int<T: TryFrom<u64>>(&mut self) -> Result<T, Error> {
        let v = self.next()?;
        T::try_from(v).map_err(|_| Error::Codec(format!("process body: {v} out of range")))
    }
}

impl Body {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * 16);
        out.push(BODY_V1);
        put(&mut out, self.entries.len() as u64);
        for e in &self.entries {
            put(&mut out, u64::from(e.pid));
            for id in [e.name, e.user, e.cmdline] {
                put(&mut out, u64::try_from(id).unwrap_or(0));
            }
            put(&mut out, u64::from(e.cpu_centi));
            put(&mut out, e.memory_bytes);
        }
        for list in [&self.by_cpu, &self.by_memory] {
            put(&mut out, list.len() as u64);
            for &i in list {
                put(&mut out, i as u64);
            }
        }
        out
    }

    fn decode(b: &[u8]) -> Result<Self, Error> {
        match b.first() {
            Some(&BODY_V1) => {}
            Some(v) => {
                return Err(Error::Codec(format!(
                    "process body: unknown format {v} (written by a newer smon?)"
                )));
            }
            None => return Err(Error::Codec("process body: empty".into())),
        }
        let mut c = Cursor { b, at: 1 };
        let n: usize = c.int()?;
        if n > b.len() {
            return Err(Error::Codec(format!(
                "process body: {n} entries in {} bytes",
                b.len()
            )));
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(Entry {
                pid: c.int()?,
                name: c.int()?,
                user: c.int()?,
                cmdline: c.int()?,
                cpu_centi: c.int()?,
                memory_bytes: c.next()?,
            });
        }
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let k: usize = c.int()?;
            if k > n {
                return Err(Error::Codec(format!("process body: ranking of {k} > {n}")));
            }
            for _ in 0..k {
                let i: usize = c.int()?;
                if i >= n {
                    return Err(Error::Codec(format!("process body: index {i} >= {n}")));
                }
                list.push(i);
            }
        }
        if c.at != b.len() {
            return Err(Error::Codec("process body: trailing bytes".into()));
        }
        let [by_cpu, by_memory] = lists;
        Ok(Self {
            entries,
            by_cpu,
            by_memory,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Stores the top processes and the GPU processes of `snap` for `host` at the minute holding
/// `at_ms`, replacing what that host-minute held. Of `snap.processes` it keeps the top
/// [`TOP_N`] by CPU and the top [`TOP_N`] by memory (CPU rounded to 0.01 %); of the GPUs every
/// process, those of MIG instances included (with the instance's UUID; a process listed both on
/// its GPU and on an instance is stored once). A host-minute is stored even with nothing to
/// list, so [`processes_at`] can tell "nothing ran" from "nothing was stored".
pub fn write(tx: &Transaction, host: &str, at_ms: u64, snap: &Snapshot) -> Result<(), Error> {
    let conn: &Connection = tx;
    let e = sql(conn);
    let minute = ms(minute_of(at_ms));
    let mut texts = Texts::new(conn, at_ms);

    let procs = &snap.processes;
    let mut order: Vec<usize> = (0..procs.len()).collect();
    let cpu = |i: usize| centi(procs[i].cpu_percent);
    let mem = |i: usize| procs[i].memory_bytes;
    let pid = |i: usize| procs[i].pid;
    order.sort_by(|&a, &b| {
        (cpu(b), mem(b))
            .cmp(&(cpu(a), mem(a)))
            .then(pid(a).cmp(&pid(b)))
    });
    let top_cpu: Vec<usize> = order.iter().copied().take(TOP_N).collect();
    order.sort_by(|&a, &b| {
        (mem(b), cpu(b))
            .cmp(&(mem(a), cpu(a)))
            .then(pid(a).cmp(&pid(b)))
    });
    let top_mem: Vec<usize> = order.iter().copied().take(TOP_N).collect();

    let mut body = Body::default();
    let mut slot: HashMap<usize, usize> = HashMap::new();
    for (list, ranked) in [(&top_cpu, false), (&top_mem, true)] {
        for &i in list {
            let at = match slot.get(&i) {
                Some(&at) => at,
                None => {
                    let p = &procs[i];
                    body.entries.push(Entry {
                        pid: p.pid,
                        name: texts.id(&p.name)?,
                        user: texts.id(&p.user)?,
                        cmdline: texts.id(&p.cmdline)?,
                        cpu_centi: centi(p.cpu_percent),
                        memory_bytes: p.memory_bytes,
                    });
                    slot.insert(i, body.entries.len() - 1);
                    body.entries.len() - 1
                }
            };
            if ranked {
                body.by_memory.push(at);
            } else {
                body.by_cpu.push(at);
            }
        }
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO top_processes (minute_ms, host, body) VALUES (?1, ?2, ?3)",
    )
    .map_err(&e)?
    .execute(params![minute, host, body.encode()])
    .map_err(&e)?;

    // A host-minute written again: take its old GPU rows out of the hourly usage first.
    roll_up(conn, host, minute, -1)?;
    conn.prepare_cached("DELETE FROM gpu_processes WHERE minute_ms = ?1 AND host = ?2")
        .map_err(&e)?
        .execute(params![minute, host])
        .map_err(&e)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO gpu_processes \
             (minute_ms, host, gpu, pid, uuid_id, name_id, user_id, memory_bytes, gpu_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(&e)?;
    for g in &snap.gpus {
        // The GPU's key: its UUID (as a string id, >= 1), or -1 - index without one.
        let gpu_key = if g.uuid.is_empty() {
            -1 - i64::from(g.index)
        } else {
            texts.id(&g.uuid)?
        };
        // MIG instances first: their UUID is the more precise one; the same process on the
        // GPU's own list is then ignored (same primary key).
        let on_instances = g
            .mig_instances
            .iter()
            .flat_map(|m| m.processes.iter().map(move |p| (m.uuid.as_str(), p)));
        let on_gpu = g.processes.iter().map(|p| (g.uuid.as_str(), p));
        for (uuid, p) in on_instances.chain(on_gpu) {
            let GpuProcess {
                pid,
                name,
                user,
                memory_used_bytes,
                ..
            } = p;
            insert
                .execute(params![
                    minute,
                    host,
                    g.index,
                    pid,
                    texts.id(uuid)?,
                    texts.id(name)?,
                    texts.id(user)?,
                    memory_used_bytes.map(ms),
                    gpu_key,
                ])
                .map_err(&e)?;
        }
    }
    roll_up(conn, host, minute, 1)?;
    conn.prepare_cached(
        "INSERT INTO gpu_pids (host, gpu_key, pid, user_id, first_ms, last_ms) \
         SELECT host, gpu_key, pid, user_id, minute_ms, minute_ms FROM gpu_processes \
         WHERE minute_ms = ?1 AND host = ?2 \
         ON CONFLICT DO UPDATE SET first_ms = min(first_ms, excluded.first_ms), \
         last_ms = max(last_ms, excluded.last_ms)",
    )
    .map_err(&e)?
    .execute(params![minute, host])
    .map_err(&e)?;
    Ok(())
}

/// One hour in ms: the resolution of the GPU usage rollup.
const HOUR_MS: u64 = 3_600_000;

/// Adds (`sign` 1) or takes away (-1) the GPU rows of one host-minute to or from the hourly
/// usage: per GPU and user, and per GPU for any user (`user_id` -1).
fn roll_up(conn: &Connection, host: &str, minute: i64, sign: i64) -> Result<(), Error> {
    let e = sql(conn);
    let hour = minute - minute.rem_euclid(ms(HOUR_MS));
    for q in [
        "INSERT INTO gpu_usage_hour (hour_ms, host, gpu_key, user_id, minutes, memory) \
         SELECT ?1, host, gpu_key, user_id, ?4, ?4 * COALESCE(SUM(memory_bytes), 0) \
         FROM gpu_processes WHERE minute_ms = ?2 AND host = ?3 GROUP BY gpu_key, user_id \
         ON CONFLICT DO UPDATE SET minutes = minutes + excluded.minutes, \
         memory = memory + excluded.memory",
        "INSERT INTO gpu_usage_hour (hour_ms, host, gpu_key, user_id, minutes, memory) \
         SELECT ?1, host, gpu_key, -1, ?4, ?4 * COALESCE(SUM(memory_bytes), 0) \
         FROM gpu_processes WHERE minute_ms = ?2 AND host = ?3 GROUP BY gpu_key \
         ON CONFLICT DO UPDATE SET minutes = minutes + excluded.minutes, \
         memory = memory + excluded.memory",
    ] {
        conn.prepare_cached(q)
            .map_err(&e)?
            .execute(params![hour, minute, host, sign])
            .map_err(&e)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading

/// The stored top processes and GPU processes of `host` at the stored minute nearest `at_ms`
/// (the minute holding it first, then one minute before, one after, and so on up to
/// [`NEAREST_MS`]); `at` is `None` and the lists empty when nothing is stored that near.
/// Command lines and users are blank where `shown` hides them. At most 11 primary-key lookups
/// and one key range: well under a millisecond however large the table.
pub fn processes_at(
    conn: &Connection,
    host: &str,
    at_ms: u64,
    shown: Shown,
) -> Result<ProcessesAnswer, Error> {
    let e = sql(conn);
    let m0 = minute_of(at_ms);
    let steps = NEAREST_MS / MINUTE_MS;
    let candidates = std::iter::once(Some(m0)).chain(
        (1..=steps).flat_map(|k| [m0.checked_sub(k * MINUTE_MS), m0.checked_add(k * MINUTE_MS)]),
    );
    let mut answer = ProcessesAnswer {
        host: host.to_owned(),
        at: None,
        top_cpu: Vec::new(),
        top_memory: Vec::new(),
        gpu: Vec::new(),
    };
    let mut get = conn
        .prepare_cached("SELECT body FROM top_processes WHERE minute_ms = ?1 AND host = ?2")
        .map_err(&e)?;
    let mut found = None;
    for m in candidates.flatten() {
        let body: Option<Vec<u8>> = get
            .query_row(params![ms(m), host], |r| r.get(0))
            .optional()
            .map_err(&e)?;
        if let Some(body) = body {
            found = Some((m, body));
            break;
        }
    }
    let Some((minute, body)) = found else {
        return Ok(answer);
    };
    answer.at = Some(minute);
    let body = Body::decode(&body)?;
    let mut texts = TextReader::new(conn);
    let mut one = |i: usize| -> Result<ProcessAt, Error> {
        let p = body.entries[i];
        Ok(ProcessAt {
            pid: p.pid,
            name: texts.get(p.name)?,
            user: if shown.process_users {
                texts.get(p.user)?
            } else {
                String::new()
            },
            cmdline: if shown.command_lines {
                texts.get(p.cmdline)?
            } else {
                String::new()
            },
            cpu_percent: p.cpu_centi as f32 / 100.0,
            memory_bytes: p.memory_bytes,
        })
    };
    answer.top_cpu = body
        .by_cpu
        .iter()
        .map(|&i| one(i))
        .collect::<Result<_, _>>()?;
    answer.top_memory = body
        .by_memory
        .iter()
        .map(|&i| one(i))
        .collect::<Result<_, _>>()?;

    let mut rows = conn
        .prepare_cached(
            "SELECT gpu, pid, uuid_id, name_id, user_id, memory_bytes, gpu_key \
             FROM gpu_processes WHERE minute_ms = ?1 AND host = ?2 ORDER BY gpu, pid",
        )
        .map_err(&e)?;
    type Row = (u32, u32, i64, i64, i64, Option<i64>, i64);
    let raw: Vec<Row> = rows
        .query_map(params![ms(minute), host], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .map_err(&e)?
        .collect::<Result<_, _>>()
        .map_err(&e)?;
    for (gpu, pid, uuid, name, user, memory, gpu_key) in raw {
        answer.gpu.push(GpuProcessAt {
            gpu,
            gpu_uuid: texts.get(uuid)?,
            parent_uuid: if gpu_key >= 1 {
                texts.get(gpu_key)?
            } else {
                String::new()
            },
            pid,
            name: texts.get(name)?,
            user: if shown.process_users {
                texts.get(user)?
            } else {
                String::new()
            },
            memory_bytes: memory.map(unsigned),
        });
    }
    Ok(answer)
}

/// GPU-hours and GPU memory-hours from `from_ms` to `to_ms`, grouped `by` user, host or GPU
/// (`host/<uuid>`: the GPU's UUID, whatever index it had; `host/#index` for a GPU stored
/// without a UUID, as every row stored before UUIDs was), over the hosts `host_ok` accepts;
/// most GPU-hours first (then by key).
///
/// Each stored minute (a minute counts when its start is in `[minute_of(from_ms), to_ms)`) in
/// which a GPU holds at least one process of a group adds 1/60 GPU-hour to the group, however
/// many of its processes share that GPU; the GPU memory of the group's processes on it adds
/// GiB/60 GiB-hours. `processes` counts distinct (host, pid) seen in the range (a pid reused
/// by the same user on the same GPU counts once). Processes whose owner the agent could not
/// see are grouped under the empty user.
///
/// Cost: the whole hours of the range are read from the hourly rollup (a row per hour, host,
/// GPU and user); only the partial hours at either end scan the per-minute GPU rows.
pub fn gpu_usage(
    conn: &Connection,
    from_ms: u64,
    to_ms: u64,
    by: UsageBy,
    host_ok: &dyn Fn(&str) -> bool,
) -> Result<GpuUsageAnswer, Error> {
    if to_ms < from_ms {
        return Err(Error::BadQuery(format!(
            "the range ends ({to_ms}) before it starts ({from_ms})"
        )));
    }
    let e = sql(conn);
    // The group's column besides the host (`k`): the user's id, the GPU, or none.
    let k = match by {
        UsageBy::User => "user_id",
        UsageBy::Host => "0",
        UsageBy::Gpu => "gpu_key",
    };
    // Minutes and memory per (host, k): from the per-minute rows (inner: one row per group,
    // GPU and minute held) ...
    let raw = format!(
        "SELECT host, k, COUNT(*), TOTAL(mem) FROM ( \
             SELECT host, {k} AS k, SUM(memory_bytes) AS mem FROM gpu_processes \
             WHERE minute_ms >= ?1 AND minute_ms < ?2 GROUP BY host, k, gpu_key, minute_ms) \
         GROUP BY host, k"
    );
    // ... and from the hourly rollup (per user, or for any user).
    let users = if by == UsageBy::User {
        "user_id >= 0"
    } else {
        "user_id = -1"
    };
    let hourly = format!(
        "SELECT host, {k} AS k, SUM(minutes), TOTAL(memory) FROM gpu_usage_hour \
         WHERE hour_ms >= ?1 AND hour_ms < ?2 AND {users} GROUP BY host, k"
    );
    let pids = format!("SELECT host, {k}, pid FROM gpu_pids WHERE last_ms >= ?1 AND first_ms < ?2");
    let lo = minute_of(from_ms);
    // The whole hours inside [lo, to_ms).
    let h_lo = lo.div_ceil(HOUR_MS) * HOUR_MS;
    let h_hi = to_ms - to_ms % HOUR_MS;
    let mut parts: Vec<(&str, u64, u64)> = Vec::new();
    if h_lo < h_hi {
        parts.push((&raw, lo, h_lo));
        parts.push((&hourly, h_lo, h_hi));
        parts.push((&raw, h_hi, to_ms));
    } else {
        parts.push((&raw, lo, to_ms));
    }

    #[derive(Default)]
    struct Acc {
        minutes: u64,
        memory_byte_minutes: f64,
        processes: std::collections::HashSet<(String, u32)>,
    }
    let mut texts = TextReader::new(conn);
    let mut key = |host: &str, second: i64| -> Result<String, Error> {
        Ok(match by {
            UsageBy::User => texts.get(second)?,
            UsageBy::Host => host.to_owned(),
            UsageBy::Gpu => gpu_key_name(host, second, &mut texts)?,
        })
    };
    let mut groups: HashMap<String, Acc> = HashMap::new();
    for (q, a, b) in parts {
        if a >= b {
            continue;
        }
        let mut stmt = conn.prepare_cached(q).map_err(&e)?;
        let rows: Vec<(String, i64, i64, f64)> = stmt
            .query_map(params![ms(a), ms(b)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(&e)?
            .collect::<Result<_, _>>()
            .map_err(&e)?;
        for (host, second, minutes, memory) in rows {
            if !host_ok(&host) {
                continue;
            }
            let acc = groups.entry(key(&host, second)?).or_default();
            acc.minutes += unsigned(minutes);
            acc.memory_byte_minutes += memory;
        }
    }
    let mut stmt = conn.prepare_cached(&pids).map_err(&e)?;
    let rows: Vec<(String, i64, u32)> = stmt
        .query_map(params![ms(lo), ms(to_ms)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(&e)?
        .collect::<Result<_, _>>()
        .map_err(&e)?;
    for (host, second, pid) in rows {
        if !host_ok(&host) {
            continue;
        }
        let k = key(&host, second)?;
        groups.entry(k).or_default().processes.insert((host, pid));
    }
    let mut rows: Vec<GpuUsageRow> = groups
        .into_iter()
        // A group seen only in a rolled-up hour written again with nothing left in it.
        .filter(|(_, a)| a.minutes > 0 || !a.processes.is_empty())
        .map(|(key, a)| GpuUsageRow {
            key,
            gpu_hours: a.minutes as f64 / 60.0,
            gpu_memory_gib_hours: a.memory_byte_minutes / GIB / 60.0,
            processes: a.processes.len() as u64,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.gpu_hours
            .total_cmp(&a.gpu_hours)
            .then_with(|| a.key.cmp(&b.key))
    });
    Ok(GpuUsageAnswer {
        from: from_ms,
        to: to_ms,
        by,
        rows,
    })
}

/// The key of a GPU in a usage answer: `host/<uuid>` for a `gpu_key` >= 1 (a string id),
/// `host/#index` for -1 - index.
fn gpu_key_name(host: &str, gpu_key: i64, texts: &mut TextReader<'_>) -> Result<String, Error> {
    Ok(if gpu_key >= 1 {
        format!("{host}/{}", texts.get(gpu_key)?)
    } else {
        format!("{host}/#{}", -1 - gpu_key)
    })
}

// ---------------------------------------------------------------------------------------------
// Sessions: logins and logouts

/// Whether a [`LoginEvent`] is a login or a logout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginKind {
    /// A session appeared.
    Login,
    /// A session went away.
    Logout,
}

impl LoginKind {
    fn as_str(self) -> &'static str {
        match self {
            LoginKind::Login => "login",
            LoginKind::Logout => "logout",
        }
    }
}

/// A login or logout seen in a host's sessions (JSON: `at`, `kind`, `user`, `terminal`,
/// `from`, `login`). The web side applies its visibility rules (session users, login origins)
/// to these as to live sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginEvent {
    /// When (ms since the epoch): the session's login time for a login (the sample's time when
    /// the agent gave none); for a logout, the first sample without the session (so up to one
    /// sample interval late, or the whole downtime late after a restart of the server).
    #[serde(rename = "at")]
    pub at_ms: u64,
    /// Login or logout.
    pub kind: LoginKind,
    /// The user.
    pub user: String,
    /// The terminal (`pts/0`, `tty1`).
    pub terminal: String,
    /// Where the user came from (empty for a local login).
    pub from: String,
    /// The session's login time (ms since the epoch; for a logout, when that session began).
    #[serde(rename = "login")]
    pub login_ms: u64,
}

/// A session as compared between samples: user, terminal, origin, login time.
type SessionKey = (String, String, String, u64);

/// Compares the sessions of `snap` with the last set stored for `host` (kept in the database,
/// so a restart in between still sees what changed) and stores a login event for each new
/// session and a logout event for each one gone. The first sample of a host records a login
/// for each of its sessions (at their login times). A sample whose sessions could not be read
/// in full (an error starting `sessions:`) is skipped. Cheap when nothing changed: one
/// primary-key lookup and a string comparison, so it can run on every sample.
pub fn sessions(tx: &Transaction, host: &str, at_ms: u64, snap: &Snapshot) -> Result<(), Error> {
    sessions_with(tx, &mut SessionCache::default(), host, at_ms, snap)
}

/// The session sets [`sessions_with`] last stored or found stored, per host: a sample whose
/// set is the one stored (almost every sample) then costs no query at all. The writer keeps
/// one and empties it when a transaction rolls back, since the rows it names are then gone.
#[derive(Debug, Default)]
pub struct SessionCache(std::collections::HashMap<String, String>);

impl SessionCache {
    fn known(&self, host: &str, json: &str) -> bool {
        self.0.get(host).is_some_and(|s| s == json)
    }

    fn remember(&mut self, host: &str, json: String) {
        match self.0.get_mut(host) {
            Some(s) => *s = json,
            None => {
                self.0.insert(host.to_owned(), json);
            }
        }
    }
}

/// [`sessions`] with a [`SessionCache`] that lives as long as the writer's connection.
pub fn sessions_with(
    tx: &Transaction,
    cache: &mut SessionCache,
    host: &str,
    at_ms: u64,
    snap: &Snapshot,
) -> Result<(), Error> {
    // The agent could not read its utmp in full: the list may lack sessions that are still
    // there, so it decides nothing (no false logouts); the next complete list does.
    if snap.errors.iter().any(|e| e.starts_with("sessions:")) {
        return Ok(());
    }
    let conn: &Connection = tx;
    let e = sql(conn);
    let mut now: Vec<SessionKey> = snap
        .sessions
        .iter()
        .map(|s| {
            (
                s.user.clone(),
                s.terminal.clone(),
                s.from.clone(),
                s.login_unix_ms,
            )
        })
        .collect();
    now.sort();
    now.dedup();
    let json = serde_json::to_string(&now)
        .map_err(|err| Error::Codec(format!("sessions of {host}: {err}")))?;
    if cache.known(host, &json) {
        return Ok(());
    }
    let stored: Option<String> = conn
        .prepare_cached("SELECT sessions FROM session_state WHERE host = ?1")
        .map_err(&e)?
        .query_row([host], |r| r.get(0))
        .optional()
        .map_err(&e)?;
    if stored.as_deref() == Some(json.as_str()) {
        cache.remember(host, json);
        return Ok(());
    }
    let before: Vec<SessionKey> = match &stored {
        // A stored set that cannot be read (damaged) counts as empty: only logins follow.
        Some(s) => serde_json::from_str(s).unwrap_or_else(|err| {
            tracing::warn!(host, error = %err, "Stored sessions unreadable; starting afresh.");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let mut insert = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO login_events \
             (host, at_ms, kind, user, terminal, from_host, login_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(&e)?;
    for s in now.iter().filter(|s| before.binary_search(s).is_err()) {
        let at = if s.3 > 0 { s.3 } else { at_ms };
        insert
            .execute(params![
                host,
                ms(at),
                LoginKind::Login.as_str(),
                s.0,
                s.1,
                s.2,
                ms(s.3)
            ])
            .map_err(&e)?;
    }
    for s in before.iter().filter(|s| now.binary_search(s).is_err()) {
        insert
            .execute(params![
                host,
                ms(at_ms),
                LoginKind::Logout.as_str(),
                s.0,
                s.1,
                s.2,
                ms(s.3)
            ])
            .map_err(&e)?;
    }
    conn.prepare_cached("INSERT OR REPLACE INTO session_state (host, sessions) VALUES (?1, ?2)")
        .map_err(&e)?
        .execute(params![host, json])
        .map_err(&e)?;
    cache.remember(host, json);
    Ok(())
}

/// The logins and logouts of `host` with `from_ms <= at < to_ms`, oldest first (a login before
/// a logout at the same time).
pub fn logins(
    conn: &Connection,
    host: &str,
    from_ms: u64,
    to_ms: u64,
) -> Result<Vec<LoginEvent>, Error> {
    if to_ms < from_ms {
        return Err(Error::BadQuery(format!(
            "the range ends ({to_ms}) before it starts ({from_ms})"
        )));
    }
    let e = sql(conn);
    let mut stmt = conn
        .prepare_cached(
            "SELECT at_ms, kind, user, terminal, from_host, login_ms FROM login_events \
             WHERE host = ?1 AND at_ms >= ?2 AND at_ms < ?3 \
             ORDER BY at_ms, kind, terminal, user",
        )
        .map_err(&e)?;
    let rows = stmt
        .query_map(params![host, ms(from_ms), ms(to_ms)], |r| {
            let kind: String = r.get(1)?;
            Ok(LoginEvent {
                at_ms: unsigned(r.get(0)?),
                kind: if kind == "logout" {
                    LoginKind::Logout
                } else {
                    LoginKind::Login
                },
                user: r.get(2)?,
                terminal: r.get(3)?,
                from: r.get(4)?,
                login_ms: unsigned(r.get(5)?),
            })
        })
        .map_err(&e)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(&e)?;
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Retention and sizes

/// Deletes the process history, GPU process rows and login events older than
/// `retention.processes` before `now_ms`, the hourly GPU usage of the hours that ended by then
/// (the hour holding the cutoff is kept whole, so a usage query over it may count up to an
/// hour more than the minute rows still kept), and the strings no kept row uses. Returns the number
/// of rows deleted. Every delete is a key range (or an index range), so running it every
/// minute costs a minute's worth of rows.
pub fn retain(tx: &Transaction, now_ms: u64, retention: &Retention) -> Result<u64, Error> {
    let conn: &Connection = tx;
    let e = sql(conn);
    let keep = u64::try_from(retention.processes.as_millis()).unwrap_or(u64::MAX);
    let cutoff = ms(now_ms.saturating_sub(keep));
    let mut n = 0;
    for q in [
        "DELETE FROM top_processes WHERE minute_ms < ?1",
        "DELETE FROM gpu_processes WHERE minute_ms < ?1",
        "DELETE FROM login_events WHERE at_ms < ?1",
        "DELETE FROM gpu_pids WHERE last_ms < ?1",
        // Hours that end by the cutoff (the hour holding it is kept whole).
        "DELETE FROM gpu_usage_hour WHERE hour_ms + 3600000 <= ?1",
    ] {
        n += conn
            .prepare_cached(q)
            .map_err(&e)?
            .execute([cutoff])
            .map_err(&e)?;
    }
    // A kept row at minute m >= cutoff uses only strings with last_ms >= m - TEXT_REFRESH_MS
    // (refreshed on write when older than that), hence >= cutoff - TEXT_REFRESH_MS; a kept
    // hourly row may hold minutes up to an hour before the cutoff.
    n += conn
        .prepare_cached("DELETE FROM proc_text WHERE last_ms < ?1")
        .map_err(&e)?
        .execute([cutoff.saturating_sub(ms(TEXT_REFRESH_MS + HOUR_MS))])
        .map_err(&e)?;
    Ok(n as u64)
}

/// The `processes` and `events` tiers of [`smon_api::history::StorageAnswer::tiers`]: their
/// bytes (from [`crate::admin::sizes`]), the retention in force and the oldest row kept.
pub fn tiers(
    conn: &Connection,
    retention: &Retention,
    sizes: &[TableSize],
) -> Result<Vec<TierStats>, Error> {
    let e = sql(conn);
    let bytes = |tables: &[&str]| -> u64 {
        sizes
            .iter()
            .filter(|s| tables.contains(&s.table.as_str()))
            .map(|s| s.bytes)
            .sum()
    };
    let oldest = |q: &str| -> Result<Option<u64>, Error> {
        let v: Option<i64> = conn.query_row(q, [], |r| r.get(0)).map_err(&e)?;
        Ok(v.map(unsigned))
    };
    let retention_s = retention.processes.as_secs();
    Ok(vec![
        TierStats {
            name: "processes".into(),
            retention_s,
            bytes: bytes(PROCESS_TABLES),
            oldest_ms: oldest("SELECT MIN(minute_ms) FROM top_processes")?,
        },
        TierStats {
            name: "events".into(),
            retention_s,
            bytes: bytes(EVENT_TABLES),
            oldest_ms: oldest("SELECT MIN(at_ms) FROM login_events")?,
        },
    ])
}

// ---------------------------------------------------------------------------------------------
// Synthetic history for the benchmarks

/// What [`backfill`] writes: a busy fleet's process and GPU history, one host-minute at a time
/// through [`write()`] (so the strings, the rollup and the indexes are those of real use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcsBackfill {
    /// Hosts, named `c{k}:node{i}` over `clusters` clusters (as `metrics::Backfill` names them).
    pub hosts: usize,
    /// Clusters the hosts are spread over (at least 1).
    pub clusters: usize,
    /// First minute (ms since the epoch).
    pub from_ms: u64,
    /// End of the range (exclusive).
    pub to_ms: u64,
    /// GPUs per host (each busy most of the time with one or two processes).
    pub gpus: u32,
    /// Seed (the same seed writes the same history).
    pub seed: u64,
}

/// A host's synthetic process table at one minute: 60 processes whose CPU and memory wander
/// (so the top lists change from minute to minute), and `gpus` GPUs each holding one or two
/// processes of one of eight users, or none.
pub fn synthetic_processes(seed: u64, minute: u64, gpus: u32) -> Snapshot {
    let mut x = seed ^ minute.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    const NAMES: [&str; 12] = [
        "python3",
        "postgres",
        "java",
        "node",
        "nginx",
        "sshd",
        "bash",
        "rsync",
        "gcc",
        "cc1plus",
        "redis-server",
        "slurmstepd",
    ];
    let processes = (0..60u32)
        .map(|i| {
            let name = NAMES[(i as usize) % NAMES.len()];
            smon_proto::Process {
                pid: 1000 + i,
                user: format!("user{}", i % 8),
                name: name.to_owned(),
                cmdline: format!("/usr/bin/{name} --job {} --config /etc/{name}.conf", i % 20),
                cpu_percent: next(40_000) as f32 / 100.0 * if i % 7 == 0 { 1.0 } else { 0.05 },
                memory_bytes: (next(4096) + 1) << (20 + i % 3),
                ..Default::default()
            }
        })
        .collect();
    let gpus = (0..gpus)
        .map(|g| smon_proto::Gpu {
            index: g,
            uuid: format!("GPU-{seed:08x}-{g}"),
            processes: (0..next(3))
                .map(|k| GpuProcess {
                    pid: 5000 + g * 10 + k as u32,
                    name: "python3".into(),
                    user: format!("user{}", (u64::from(g) + k + minute / 240) % 8),
                    memory_used_bytes: Some((next(80) + 1) << 30),
                    kind: "compute".into(),
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    Snapshot {
        processes,
        gpus,
        ..Default::default()
    }
}

/// Writes [`ProcsBackfill`] into the database at `path` (one transaction per minute of the
/// whole fleet) and returns the host-minutes written.
pub fn backfill(path: &std::path::Path, b: &ProcsBackfill) -> Result<u64, Error> {
    let mut conn = crate::db::open_writer(path)?;
    let e = |source| Error::Sqlite {
        path: path.to_owned(),
        source,
    };
    let clusters = b.clusters.max(1);
    let mut n = 0;
    let mut minute = minute_of(b.from_ms);
    while minute < b.to_ms {
        let tx = conn.transaction().map_err(e)?;
        for h in 0..b.hosts {
            let host = format!("c{}:node{h}", h % clusters);
            let snap = synthetic_processes(b.seed ^ h as u64, minute / MINUTE_MS, b.gpus);
            write(&tx, &host, minute, &snap)?;
            n += 1;
        }
        tx.commit().map_err(e)?;
        minute += MINUTE_MS;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_bad_ones_are_refused() {
        let body = Body {
            entries: vec![
                Entry {
                    pid: 1,
                    name: 2,
                    user: 0,
                    cmdline: 300,
                    cpu_centi: 12_345,
                    memory_bytes: u64::MAX,
                },
                Entry {
                    pid: u32::MAX,
                    name: 5,
                    user: 6,
                    cmdline: 0,
                    cpu_centi: 0,
                    memory_bytes: 0,
                },
            ],
            by_cpu: vec![0, 1],
            by_memory: vec![1],
        };
        let bytes = body.encode();
        assert_eq!(Body::decode(&bytes).expect("decode"), body);
        for cut in 0..bytes.len() {
            assert!(Body::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Body::decode(&extra).is_err());
        let mut newer = bytes;
        newer[0] = 2;
        let err = Body::decode(&newer).expect_err("newer format");
        assert!(err.to_string().contains("unknown format 2"), "{err}");
    }

    #[test]
    fn cpu_is_kept_in_hundredths() {
        assert_eq!(centi(12.345_6), 1235);
        assert_eq!(centi(-1.0), 0);
        assert_eq!(centi(f32::NAN), 0);
        assert_eq!(centi(f32::INFINITY), 0);
        assert_eq!(centi(1e12), u32::MAX);
    }

    #[test]
    fn minutes_start_on_the_minute() {
        assert_eq!(minute_of(0), 0);
        assert_eq!(minute_of(119_999), 60_000);
        assert_eq!(minute_of(120_000), 120_000);
    }
}
