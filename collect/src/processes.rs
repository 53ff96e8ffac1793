//! The process table on Linux, read as narrowly as possible: per sample `/proc` is listed
//! and each process's CPU time read with one positional read into a reused buffer, from
//! `/proc/<pid>/schedstat` for a single-threaded process between full reads, else from
//! `/proc/<pid>/stat` (state, parent, flags, CPU ticks, threads, start time, resident pages;
//! only those fields parsed, in place), which a single-threaded process has read every
//! [`FULL_EVERY`] (see [`ProcTable`] for what that means for its row). The owner and the
//! command line are read once per process, the command line redacted then and cached.
//! `status`, `statm`, `environ` and the thread list are never read. This is what keeps the
//! agent's own CPU use low at 1 Hz (see `BENCHMARKS.md`): sysinfo's process refresh also reads
//! `status` for every process, which the kernel formats at some cost.
//!
//! Each process's `stat` (and `schedstat`) file stays open between samples and is re-read with
//! `pread` at offset 0 (as Netdata's apps.plugin does): most of the kernel's cost of a fresh
//! open+read+close is the path lookup and the open, and a 1 Hz full listing of ~300 processes
//! paid it 300 times a second. A procfs file is tied to the process it was opened for, not to
//! its number: once that process is gone, the read fails (`ESRCH`) even if the pid has been
//! given to a new process, so a failed read drops the file and the pid is opened afresh by
//! path. A pid no longer listed in `/proc` drops its files with the rest of its entry, and a
//! start time that differs from the one recorded (a reused pid on a `/proc` that does not
//! behave so) drops them too. At most [`MAX_KEPT_FDS`] files (and at most half the soft
//! `RLIMIT_NOFILE`) are kept; processes past that are opened and closed per sample as before,
//! and read in full.
//!
//! Listing `/proc` (`getdents`) is itself about a tenth of the table's cost, so it is skipped
//! when no pid was handed out since the last listing: the fifth field of `/proc/loadavg` is
//! the last pid allocated (to a process or a thread) in the reader's pid namespace, read
//! through a kept file before each listing. While it has not moved, the processes are those
//! listed last time less those that ended (whose reads fail), and the table reads its known
//! pids instead. It does so only where `<root>/self` names this process (a `/proc` of our own
//! namespace, not a fixture tree or another namespace's procfs), and lists in full at least
//! every [`RELIST_EVERY`] all the same.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::redact::Redactor;
use crate::CollectError;

/// The most `stat` files kept open between samples.
pub const MAX_KEPT_FDS: usize = 4096;

/// One process in a sample, before user names are resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcRow {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Owner (uid of `/proc/<pid>`).
    pub uid: Option<u32>,
    /// Short name (`comm`).
    pub name: String,
    /// Redacted command line.
    pub cmdline: String,
    /// CPU use since the previous sample, percent of one core.
    pub cpu_percent: f32,
    /// Resident memory.
    pub rss_bytes: u64,
    /// Start time, ms since the epoch.
    pub start_unix_ms: u64,
    /// State name.
    pub state: &'static str,
    /// A kernel thread (see [`is_kernel_thread`]).
    pub kernel_thread: bool,
}

/// `PF_KTHREAD` in the `flags` field of `/proc/<pid>/stat` (include/linux/sched.h): the kernel
/// sets it on every kernel thread, kthreadd included, whatever its name.
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// Whether a process is a kernel thread: its `PF_KTHREAD` flag, nothing else. Pid 2 and its
/// children are kthreadd's only in the host's first PID namespace: in a container pid 2 is an
/// ordinary process, and a name (`kworker/…`) or an empty command line (a zombie) proves
/// nothing either.
pub fn is_kernel_thread(flags: u32) -> bool {
    flags & PF_KTHREAD != 0
}

struct Known {
    start: u64,
    ticks: u64,
    uid: Option<u32>,
    cmdline: String,
    seen: u64,
    /// The process's `stat` file, kept open while the fd budget allows.
    stat: Option<File>,
    /// The round in which `stat` was opened (for tests: a kept file is not reopened).
    #[cfg_attr(not(test), allow(dead_code))]
    opened: u64,
    /// Its `schedstat` file, kept open while the process has one thread (see [`ProcTable`]).
    sched: Option<File>,
    /// The CPU time `schedstat` gave at the last sample, in ns (`None`: not read then).
    sched_ns: Option<u64>,
    /// Threads at the last full read.
    threads: i64,
    /// When `stat` was last read in full.
    full_at: Option<Instant>,
    /// The row of the last full read (its CPU figure aside).
    row: Option<ProcRow>,
}

/// How often a single-threaded process's `stat` is read in full; between, its CPU time comes
/// from `schedstat` and the rest of its row is the last full read's.
pub const FULL_EVERY: Duration = Duration::from_secs(5);

/// The longest the table goes without listing `/proc`, even when no pid was handed out.
pub const RELIST_EVERY: Duration = Duration::from_secs(10);

/// Slack on [`FULL_EVERY`], so that a sample a few ms early does not wait one more interval.
const FULL_SLACK: Duration = Duration::from_millis(250);

/// Reads the process table; keeps what is needed between samples (CPU times, command lines,
/// the last full rows, open `stat` and `schedstat` files).
///
/// Every sample lists `/proc` (so a new process is in the very next sample and an ended one
/// is gone from it) and reads every process's CPU time, but only multi-threaded, new and due
/// processes have their `stat` read in full. A process that had one thread at its last full
/// read has its CPU time read from `/proc/<pid>/schedstat` (three numbers, the first its run
/// time in ns; about a third of the kernel's cost of rendering `stat`), and its `stat` again
/// every [`FULL_EVERY`], staggered by pid so that the full reads spread over the samples.
/// `schedstat` counts the main thread alone, hence only for single-threaded processes; one
/// that starts threads is seen at its next full read, and until then only its main thread's
/// CPU counts. Memory (RSS), state, parent and name of a single-threaded process may so be up
/// to [`FULL_EVERY`] old. A `schedstat` file is tied to its process like `stat`: a read of an
/// ended one fails, and the pid is read afresh in full.
pub struct ProcTable {
    root: PathBuf,
    known: HashMap<i32, Known>,
    last: Option<Instant>,
    ticks_per_s: f64,
    page: u64,
    boot_unix_ms: u64,
    round: u64,
    buf: Vec<u8>,
    max_kept: usize,
    full_every: Duration,
    /// `<root>/loadavg`, kept open, where `<root>` is this process's own procfs.
    loadavg: Option<File>,
    /// The last pid allocated, as read before the last listing of `<root>`.
    listed_mark: Option<u64>,
    /// When `<root>` was last listed.
    listed_at: Option<Instant>,
    relist_every: Duration,
    /// The pids to read this sample (reused).
    pids: Vec<i32>,
}

/// The last pid allocated, the fifth field of a `/proc/loadavg` record
/// (`0.00 0.01 0.05 1/123 4567`).
fn parse_last_pid(buf: &[u8]) -> Option<u64> {
    let last = buf.trim_ascii().rsplit(|&b| b == b' ').next()?;
    std::str::from_utf8(last).ok()?.parse().ok()
}

/// `<root>/loadavg` opened when `<root>/self` names this process: a procfs of our own pid
/// namespace, whose last pid counts every process it lists.
fn own_loadavg(root: &std::path::Path) -> Option<File> {
    let me = std::fs::read_link(root.join("self")).ok()?;
    (me.to_str()?.parse::<u32>().ok()? == std::process::id())
        .then(|| File::open(root.join("loadavg")).ok())
        .flatten()
}

/// The run time (ns) of a `schedstat` record: its first number.
fn parse_schedstat(buf: &[u8]) -> Option<u64> {
    let first = buf.trim_ascii().split(|&b| b == b' ').next()?;
    std::str::from_utf8(first).ok()?.parse().ok()
}

/// Reads a whole small /proc record with one positional read at offset 0: a stat line fits a
/// 1 KiB buffer, and when it does not the buffer grows and the record is read again from the
/// start (a record is generated whole per read, so a read from 0 is one consistent record).
pub(crate) fn read_record(f: &File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    buf.resize(1024, 0);
    loop {
        let n = f.read_at(buf, 0)?;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(());
        }
        let bigger = buf.len() * 2;
        buf.resize(bigger, 0);
    }
}

/// How many files may be kept open: [`MAX_KEPT_FDS`], and no more than half the soft
/// open-file limit so that the rest of the daemon (sockets, logs) always has room.
fn fd_budget() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(soft / 2).map_or(MAX_KEPT_FDS, |half| half.min(MAX_KEPT_FDS))
}

/// The frame of a `stat` record, `pid (comm) rest`, with a space before the first `(` and
/// after the last `)` (a name may hold parentheses and spaces): the trimmed line and the
/// positions of those two parentheses. The kernel always writes that frame; anything else (a
/// truncated read, a foreign or fake /proc) is skipped like a vanished process.
fn stat_frame(buf: &[u8]) -> Option<(&[u8], usize, usize)> {
    let line = buf.trim_ascii();
    let open = line.iter().position(|&b| b == b'(')?;
    let close = line.iter().rposition(|&b| b == b')')?;
    let ok =
        open >= 1 && line[open - 1] == b' ' && close > open && line.get(close + 1) == Some(&b' ');
    ok.then_some((line, open, close))
}

/// Counts the processes (numeric entries of `root`) without reading any of them.
pub fn count(root: &std::path::Path) -> std::io::Result<u32> {
    Ok(std::fs::read_dir(root)?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count() as u32)
}

/// Lower-case name of a `/proc/<pid>/stat` state letter.
pub fn state_name(c: char) -> &'static str {
    match c {
        'R' => "running",
        'S' => "sleeping",
        'D' => "disk-sleep",
        'Z' => "zombie",
        'T' => "stopped",
        't' => "tracing",
        'X' | 'x' => "dead",
        'I' => "idle",
        'P' => "parked",
        'W' => "waking",
        'K' => "wakekill",
        _ => "unknown",
    }
}

impl ProcTable {
    /// A table reading `<root>/<pid>/...`; `boot_unix_ms` turns start ticks into times.
    pub fn new(root: PathBuf, boot_unix_ms: u64) -> Self {
        Self {
            known: HashMap::new(),
            last: None,
            ticks_per_s: procfs::ticks_per_second() as f64,
            page: procfs::page_size(),
            boot_unix_ms,
            round: 0,
            buf: Vec::with_capacity(1024),
            max_kept: fd_budget(),
            full_every: FULL_EVERY,
            loadavg: own_loadavg(&root),
            root,
            listed_mark: None,
            listed_at: None,
            relist_every: RELIST_EVERY,
            pids: Vec::new(),
        }
    }

    /// Lists `<root>` at least this often (zero: every sample, as where the last pid cannot
    /// be read).
    pub fn with_relist_every(mut self, every: Duration) -> Self {
        self.relist_every = every;
        self
    }

    /// Fills `self.pids` with the pids to read: those of a listing of `<root>`, or, when no
    /// pid was handed out since the last listing (and it is recent), the known ones. False
    /// when `<root>` cannot be listed (the error is in `errors`).
    fn list(&mut self, now: Instant, errors: &mut Vec<CollectError>) -> bool {
        self.pids.clear();
        let mark = self.loadavg.as_ref().and_then(|f| {
            read_record(f, &mut self.buf)
                .ok()
                .and_then(|()| parse_last_pid(&self.buf))
        });
        let recent = self
            .listed_at
            .is_some_and(|t| now.saturating_duration_since(t) < self.relist_every);
        if mark.is_some() && mark == self.listed_mark && recent {
            self.pids.extend(self.known.keys());
            return true;
        }
        let dir = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(error) => {
                errors.push(CollectError::Read {
                    area: "processes",
                    path: self.root.clone(),
                    error,
                });
                return false;
            }
        };
        self.pids.extend(
            dir.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok())),
        );
        self.listed_mark = mark;
        self.listed_at = Some(now);
        true
    }

    /// Reads single-threaded processes' `stat` in full this often (zero: every sample).
    pub fn with_full_every(mut self, every: Duration) -> Self {
        self.full_every = every;
        self
    }

    /// Keeps at most `n` `stat` and `schedstat` files open between samples (0: open and close
    /// every time, and every read in full).
    pub fn with_fd_limit(mut self, n: usize) -> Self {
        self.max_kept = n;
        self
    }

    /// How many `stat` and `schedstat` files are kept open now.
    pub fn kept_fds(&self) -> usize {
        self.known
            .values()
            .map(|k| usize::from(k.stat.is_some()) + usize::from(k.sched.is_some()))
            .sum()
    }

    /// Reads every process at `now`. Processes that vanish while being read are skipped.
    pub fn sample(
        &mut self,
        now: Instant,
        redactor: &Redactor,
        errors: &mut Vec<CollectError>,
    ) -> Vec<ProcRow> {
        self.round += 1;
        let elapsed = self
            .last
            .map(|t| now.duration_since(t).as_secs_f64())
            .filter(|e| *e > 0.0);
        self.last = Some(now);
        if !self.list(now, errors) {
            return Vec::new();
        }
        let mut kept = self.kept_fds();
        let mut rows = Vec::with_capacity(self.known.len() + 16);
        let mut path = self.root.clone();
        let pids = std::mem::take(&mut self.pids);
        let mut name = String::with_capacity(12);
        for &pid in &pids {
            use std::fmt::Write as _;
            name.clear();
            let _ = write!(name, "{pid}");
            path.push(&name);
            let known = self.known.entry(pid).or_insert_with(|| Known {
                start: u64::MAX,
                ticks: 0,
                uid: None,
                cmdline: String::new(),
                seen: 0,
                stat: None,
                opened: 0,
                sched: None,
                sched_ns: None,
                threads: 0,
                full_at: None,
                row: None,
            });
            // A single-threaded process between full reads: its CPU time from `schedstat`.
            let due = known
                .full_at
                .is_none_or(|t| now.saturating_duration_since(t) + FULL_SLACK >= self.full_every);
            if !due
                && known.threads == 1
                && let (Some(f), Some(prev), Some(row)) = (&known.sched, known.sched_ns, &known.row)
            {
                let ns = read_record(f, &mut self.buf)
                    .ok()
                    .and_then(|()| parse_schedstat(&self.buf));
                if let Some(ns) = ns {
                    known.sched_ns = Some(ns);
                    known.seen = self.round;
                    let cpu_percent = elapsed.map_or(0.0, |secs| {
                        (ns.saturating_sub(prev) as f64 / 1e9 / secs * 100.0) as f32
                    });
                    rows.push(ProcRow {
                        cpu_percent,
                        ..row.clone()
                    });
                    path.pop();
                    continue;
                }
                // Ended (or unreadable): read the pid afresh in full.
                known.sched = None;
                kept -= 1;
            }
            // A kept file is read in place; one whose process has ended fails (ESRCH) and is
            // dropped, and the pid (perhaps a new process by now) is opened by path below.
            let mut through_kept = false;
            if let Some(f) = &known.stat {
                if read_record(f, &mut self.buf).is_ok() {
                    through_kept = true;
                } else {
                    known.stat = None;
                    kept -= 1;
                }
            }
            let mut parsed = parse_stat(&self.buf, through_kept);
            if through_kept
                && parsed
                    .as_ref()
                    .is_some_and(|st| st.starttime != known.start)
            {
                // Another process behind the same file: never on Linux's /proc, but then the
                // file is not trusted any longer; read the pid afresh by path.
                known.stat = None;
                kept -= 1;
                through_kept = false;
                parsed = None;
            }
            if !through_kept {
                path.push("stat");
                let opened = File::open(&path);
                path.pop();
                let Ok(f) = opened else {
                    path.pop();
                    continue; // gone in the meantime
                };
                if read_record(&f, &mut self.buf).is_err() {
                    path.pop();
                    continue;
                }
                parsed = parse_stat(&self.buf, true);
                if parsed.is_some() && kept < self.max_kept {
                    known.stat = Some(f);
                    known.opened = self.round;
                    kept += 1;
                }
            }
            let Some(st) = parsed else {
                path.pop();
                continue;
            };
            // Saturating: the values come from a file (a panic in debug builds otherwise).
            let ticks = st.utime.saturating_add(st.stime);
            let same = known.start == st.starttime;
            let prev_ticks = if same { Some(known.ticks) } else { None };
            if !same {
                // A new process (or a reused pid): nothing of the old one's is kept.
                if known.sched.take().is_some() {
                    kept -= 1;
                }
                known.sched_ns = None;
                known.threads = 0;
                // Stagger the full reads of processes first seen together.
                known.full_at = now.checked_sub(Duration::from_secs(
                    u64::from(pid.unsigned_abs()) % self.full_every.as_secs().max(1),
                ));
            } else {
                known.full_at = Some(now);
            }
            if known.full_at.is_none() {
                known.full_at = Some(now);
            }
            // A process single-threaded before or now has its CPU time from `schedstat` (one
            // source while it stays so: the tick counts of `stat` are rounded down, and mixing
            // the two would show idle processes as busy).
            let was_single = same && known.sched_ns.is_some();
            let single = st.num_threads == 1 && self.max_kept > 0;
            let mut sched_ns = None;
            if was_single || single {
                if known.sched.is_none() && kept < self.max_kept {
                    path.push("schedstat");
                    if let Ok(f) = File::open(&path) {
                        known.sched = Some(f);
                        kept += 1;
                    }
                    path.pop();
                }
                if let Some(f) = &known.sched {
                    sched_ns = read_record(f, &mut self.buf)
                        .ok()
                        .and_then(|()| parse_schedstat(&self.buf));
                }
            }
            let sched_delta = match (was_single, known.sched_ns, sched_ns) {
                (true, Some(prev), Some(ns)) => Some(ns.saturating_sub(prev)),
                _ => None,
            };
            known.sched_ns = if single { sched_ns } else { None };
            if !single && known.sched.take().is_some() {
                kept -= 1;
            }
            known.threads = st.num_threads;
            if !same {
                // New process (or a reused pid): what does not change is read once.
                known.start = st.starttime;
                match procfs::process::Process::new_with_root(path.clone()) {
                    Ok(p) => {
                        known.uid = p.uid().ok();
                        known.cmdline = p
                            .cmdline()
                            .map(|args| redactor.redact_args(&args))
                            .unwrap_or_default();
                    }
                    Err(_) => {
                        known.uid = None;
                        known.cmdline = String::new();
                    }
                }
            }
            path.pop();
            known.ticks = ticks;
            known.seen = self.round;
            let cpu_percent = match (sched_delta, prev_ticks, elapsed) {
                (Some(ns), _, Some(secs)) => (ns as f64 / 1e9 / secs * 100.0) as f32,
                (None, Some(prev), Some(secs)) if !was_single => {
                    (ticks.saturating_sub(prev) as f64 / self.ticks_per_s / secs * 100.0) as f32
                }
                _ => 0.0,
            };
            let ppid = st.ppid.max(0) as u32;
            let row = ProcRow {
                pid: pid as u32,
                ppid,
                kernel_thread: is_kernel_thread(st.flags),
                uid: known.uid,
                name: st.comm,
                cmdline: known.cmdline.clone(),
                cpu_percent,
                rss_bytes: st.rss.saturating_mul(self.page),
                start_unix_ms: self
                    .boot_unix_ms
                    .saturating_add((st.starttime as f64 * 1000.0 / self.ticks_per_s) as u64),
                state: state_name(st.state),
            };
            if single && known.sched.is_some() && known.sched_ns.is_some() {
                known.row = Some(row.clone());
            } else {
                known.row = None;
            }
            rows.push(row);
        }
        self.pids = pids;
        // Pids no longer listed (or unreadable this round) go, and their files are closed.
        let round = self.round;
        self.known.retain(|_, k| k.seen == round);
        rows
    }
}

/// The fields of a `/proc/<pid>/stat` record the table uses.
#[derive(Debug, Clone, PartialEq)]
struct Stat {
    comm: String,
    state: char,
    ppid: i32,
    flags: u32,
    utime: u64,
    stime: u64,
    num_threads: i64,
    starttime: u64,
    rss: u64,
}

/// Parses a `stat` record read into `buf` (when `read` is true), skipping a malformed one.
/// Only the fields used are parsed, in place, with one allocation (the name): the record is
/// read for every process every second, and a general parser (procfs's, which builds all 52
/// fields from an owned copy of the line) cost more than the kernel's rendering of it.
fn parse_stat(buf: &[u8], read: bool) -> Option<Stat> {
    if !read {
        return None;
    }
    let (line, open, close) = stat_frame(buf)?;
    let comm = line.get(open + 1..close)?;
    // Fields after the name, from field 3 (state) on, as proc_pid_stat(5) numbers them.
    let mut rest = line.get(close + 2..)?.split(|&b| b == b' ');
    let state = String::from_utf8_lossy(rest.next()?).chars().next()?;
    let mut at = 4;
    let mut field = |n: usize| -> Option<&[u8]> {
        let skip = n.checked_sub(at)?;
        at = n + 1;
        rest.nth(skip)
    };
    fn num<T: std::str::FromStr>(tok: &[u8]) -> Option<T> {
        std::str::from_utf8(tok).ok()?.parse().ok()
    }
    let ppid = num(field(4)?)?;
    let flags = num(field(9)?)?;
    let utime = num(field(14)?)?;
    let stime = num(field(15)?)?;
    let num_threads = num(field(20)?)?;
    let starttime = num(field(22)?)?;
    let rss = num(field(24)?)?;
    Some(Stat {
        comm: String::from_utf8_lossy(comm).into_owned(),
        state,
        ppid,
        flags,
        utime,
        stime,
        num_threads,
        starttime,
        rss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[allow(clippy::too_many_arguments)] // one argument per field of the fixture's stat line
    fn write_proc(
        root: &std::path::Path,
        pid: u32,
        comm: &str,
        state: char,
        utime: u64,
        start: u64,
        rss: u64,
        cmdline: &[&str],
    ) {
        let d = root.join(pid.to_string());
        std::fs::create_dir_all(&d).expect("mkdir");
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        // cutime cstime priority nice num_threads itrealvalue starttime vsize rss ...
        let stat = format!(
            "{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194304 100 0 0 0 {utime} 10 0 0 20 0 1 0 {start} 1000000 {rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        );
        std::fs::write(d.join("stat"), stat).expect("stat");
        let mut cl = cmdline.join("\0");
        cl.push('\0');
        std::fs::write(d.join("cmdline"), cl).expect("cmdline");
    }

    #[test]
    fn reads_a_fixture_tree_and_computes_cpu_between_samples() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write_proc(
            root,
            42,
            "my proc",
            'S',
            100,
            5000,
            256,
            &["server", "--password", "hunter2"],
        );
        write_proc(root, 43, "kworker/0:1", 'I', 0, 10, 0, &[]);
        std::fs::write(root.join("not-a-pid"), "x").expect("noise");
        let mut t = ProcTable::new(root.to_path_buf(), 1_700_000_000_000);
        let red = Redactor::default();
        let mut errors = Vec::new();
        let t0 = Instant::now();
        let first = t.sample(t0, &red, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(first.len(), 2);
        let p = first.iter().find(|r| r.pid == 42).expect("pid 42");
        assert_eq!(p.name, "my proc", "comm with a space");
        assert_eq!(p.state, "sleeping");
        assert_eq!(p.ppid, 1);
        assert_eq!(p.cmdline, "server --password ***");
        assert_eq!(p.cpu_percent, 0.0, "no rate on first sight");
        assert_eq!(p.rss_bytes, 256 * procfs::page_size());
        let tps = procfs::ticks_per_second();
        assert_eq!(p.start_unix_ms, 1_700_000_000_000 + 5000 * 1000 / tps);

        // 50 more ticks of user time over 2 s is 25 % of a core at 100 ticks/s.
        write_proc(
            root,
            42,
            "my proc",
            'R',
            100 + tps / 2,
            5000,
            256,
            &["changed"],
        );
        let second = t.sample(t0 + Duration::from_secs(2), &red, &mut errors);
        let p = second.iter().find(|r| r.pid == 42).expect("pid 42");
        assert!((p.cpu_percent - 25.0).abs() < 0.01, "{}", p.cpu_percent);
        assert_eq!(p.state, "running");
        assert_eq!(
            p.cmdline, "server --password ***",
            "command line read once per process"
        );

        // A pid reused by a new process is read afresh; a vanished one is forgotten.
        std::fs::remove_dir_all(root.join("43")).expect("rm");
        write_proc(root, 42, "other", 'S', 1, 9000, 1, &["other", "token=abc"]);
        let third = t.sample(t0 + Duration::from_secs(3), &red, &mut errors);
        assert_eq!(third.len(), 1);
        assert_eq!(third[0].cmdline, "other token=***");
        assert_eq!(third[0].cpu_percent, 0.0);
        assert_eq!(t.known.len(), 1);
    }

    #[test]
    fn between_full_reads_cpu_comes_from_schedstat_and_the_rest_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // pid 10: single-threaded, with schedstat; its full reads are staggered by pid % 5 = 0.
        write_proc(root, 10, "one", 'S', 100, 5000, 256, &["one"]);
        std::fs::write(root.join("10/schedstat"), "1000000000 5 7\n").expect("schedstat");
        // pid 11: four threads (field 20), read in full every sample.
        write_proc(root, 11, "many", 'S', 100, 5000, 256, &["many"]);
        let stat = std::fs::read_to_string(root.join("11/stat")).expect("stat");
        std::fs::write(
            root.join("11/stat"),
            stat.replacen(" 20 0 1 0 ", " 20 0 4 0 ", 1),
        )
        .expect("threads");
        let mut t = ProcTable::new(root.to_path_buf(), 0);
        let red = Redactor::default();
        let t0 = Instant::now();
        let first = t.sample(t0, &red, &mut Vec::new());
        assert_eq!(first.len(), 2);
        assert_eq!(t.kept_fds(), 3, "two stat files and one schedstat");

        // One second on: 0.5 s more run time in schedstat; stat changes too (state, memory,
        // ticks), but only the multi-threaded process's stat is read again.
        std::fs::write(root.join("10/schedstat"), "1500000000 5 9\n").expect("schedstat");
        write_proc(root, 10, "one", 'R', 900, 5000, 512, &["one"]);
        let tps = procfs::ticks_per_second();
        let many = |state: char, utime: u64, rss: u64| {
            write_proc(root, 11, "many", state, utime, 5000, rss, &["many"]);
            let stat = std::fs::read_to_string(root.join("11/stat")).expect("stat");
            std::fs::write(
                root.join("11/stat"),
                stat.replacen(" 20 0 1 0 ", " 20 0 4 0 ", 1),
            )
            .expect("threads");
        };
        many('R', 100 + tps, 512);
        let second = t.sample(t0 + Duration::from_secs(1), &red, &mut Vec::new());
        let row = |rows: &[ProcRow], pid: u32| {
            rows.iter().find(|r| r.pid == pid).cloned().expect("listed")
        };
        let one = row(&second, 10);
        assert!((one.cpu_percent - 50.0).abs() < 0.01, "{}", one.cpu_percent);
        assert_eq!(one.state, "sleeping", "kept from the last full read");
        assert_eq!(one.rss_bytes, 256 * t.page);
        let m = row(&second, 11);
        assert!((m.cpu_percent - 100.0).abs() < 0.01, "{}", m.cpu_percent);
        assert_eq!(
            (m.state, m.rss_bytes),
            ("running", 512 * t.page),
            "read in full"
        );

        // Five seconds after its first read, pid 10 is read in full again; its CPU still comes
        // from schedstat (one source: stat's ticks are rounded down).
        std::fs::write(root.join("10/schedstat"), "1600000000 5 9\n").expect("schedstat");
        let later = t.sample(t0 + Duration::from_secs(5), &red, &mut Vec::new());
        let one = row(&later, 10);
        assert_eq!((one.state, one.rss_bytes), ("running", 512 * t.page));
        assert!((one.cpu_percent - 2.5).abs() < 0.01, "{}", one.cpu_percent);

        // It starts threads: from its next full read its CPU comes from stat's ticks, every
        // sample, and its schedstat file is closed.
        let stat = std::fs::read_to_string(root.join("10/stat")).expect("stat");
        std::fs::write(
            root.join("10/stat"),
            stat.replacen(" 20 0 1 0 ", " 20 0 2 0 ", 1),
        )
        .expect("threads");
        t.sample(t0 + Duration::from_secs(10), &red, &mut Vec::new());
        assert!(t.known[&10].sched.is_none() && t.known[&10].threads == 2);
        assert_eq!(t.kept_fds(), 2);
    }

    #[test]
    fn a_new_process_is_in_the_next_sample_and_an_ended_one_is_gone() {
        // The default table: single-threaded processes between full reads.
        let mut t = ProcTable::new(PathBuf::from("/proc"), 0);
        let red = Redactor::default();
        let before = Child::sleep();
        for _ in 0..3 {
            t.sample(Instant::now(), &red, &mut Vec::new());
        }
        assert!(
            t.known[&before.pid()].sched.is_some(),
            "read through schedstat"
        );
        let mut child = Child::sleep();
        let rows = t.sample(Instant::now(), &red, &mut Vec::new());
        let row = rows
            .iter()
            .find(|r| r.pid == child.pid() as u32)
            .expect("a new process is listed at once");
        assert_eq!(row.cmdline, "sleep 30");
        assert!(rows.iter().any(|r| r.pid == before.pid() as u32));
        child.end();
        let rows = t.sample(Instant::now(), &red, &mut Vec::new());
        assert!(
            rows.iter().all(|r| r.pid != child.pid() as u32),
            "an ended process is gone at once"
        );
        assert!(rows.iter().any(|r| r.pid == before.pid() as u32));
        assert!(!t.known.contains_key(&child.pid()));
    }

    #[test]
    fn the_listing_is_skipped_while_no_pid_is_handed_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // Our own procfs, as far as the table can tell: `self` names this process.
        std::os::unix::fs::symlink(std::process::id().to_string(), root.join("self"))
            .expect("self link");
        std::fs::write(root.join("loadavg"), "0.00 0.01 0.05 1/3 100\n").expect("loadavg");
        write_proc(root, 10, "one", 'S', 1, 5, 1, &["one"]);
        let red = Redactor::default();
        let mut t = ProcTable::new(root.to_path_buf(), 0).with_fd_limit(0);
        assert!(t.loadavg.is_some(), "loadavg kept open");
        let pids = |rows: Vec<ProcRow>| {
            let mut v: Vec<u32> = rows.iter().map(|r| r.pid).collect();
            v.sort_unstable();
            v
        };
        let t0 = Instant::now();
        assert_eq!(pids(t.sample(t0, &red, &mut Vec::new())), [10]);
        // A new directory, but no pid handed out (the last pid unchanged): not listed.
        write_proc(root, 11, "two", 'S', 1, 6, 1, &["two"]);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(pids(t.sample(t1, &red, &mut Vec::new())), [10]);
        // An ended process goes at once all the same (its read fails).
        std::fs::remove_dir_all(root.join("10")).expect("rm");
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(pids(t.sample(t2, &red, &mut Vec::new())), Vec::<u32>::new());
        // The last pid moved: listed again.
        std::fs::write(root.join("loadavg"), "0.00 0.01 0.05 1/3 101\n").expect("loadavg");
        let t3 = t2 + Duration::from_secs(1);
        assert_eq!(pids(t.sample(t3, &red, &mut Vec::new())), [11]);
        // And at least every RELIST_EVERY whatever the last pid.
        write_proc(root, 12, "three", 'S', 1, 7, 1, &["three"]);
        let t4 = t3 + Duration::from_secs(1);
        assert_eq!(pids(t.sample(t4, &red, &mut Vec::new())), [11]);
        let t5 = t3 + RELIST_EVERY;
        assert_eq!(pids(t.sample(t5, &red, &mut Vec::new())), [11, 12]);
    }

    #[test]
    fn a_foreign_proc_is_always_listed() {
        // `self` names another process (another pid namespace's procfs): its last pid says
        // nothing of the pids listed, so no listing is skipped.
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::os::unix::fs::symlink("1", root.join("self")).expect("self link");
        std::fs::write(root.join("loadavg"), "0.00 0.01 0.05 1/3 100\n").expect("loadavg");
        write_proc(root, 10, "one", 'S', 1, 5, 1, &["one"]);
        let red = Redactor::default();
        let mut t = ProcTable::new(root.to_path_buf(), 0);
        assert!(t.loadavg.is_none());
        let t0 = Instant::now();
        assert_eq!(t.sample(t0, &red, &mut Vec::new()).len(), 1);
        write_proc(root, 11, "two", 'S', 1, 6, 1, &["two"]);
        assert_eq!(
            t.sample(t0 + Duration::from_secs(1), &red, &mut Vec::new())
                .len(),
            2
        );
    }

    #[test]
    fn the_last_pid_is_the_fifth_field_of_loadavg() {
        assert_eq!(parse_last_pid(b"0.00 0.01 0.05 1/123 4567\n"), Some(4567));
        assert_eq!(parse_last_pid(b"garbage"), None);
        assert_eq!(parse_last_pid(b""), None);
        let real = std::fs::read("/proc/loadavg").expect("/proc/loadavg");
        assert!(parse_last_pid(&real).is_some());
        assert!(own_loadavg(std::path::Path::new("/proc")).is_some());
    }

    #[test]
    fn kernel_threads_are_flagged_by_pf_kthread_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // pid, comm, ppid, flags: kthreadd and a kernel thread (flags as a 6.1 kernel shows
        // them); in a container, pid 2 and its child without the flag; a user process whose
        // name only looks like a kernel thread's.
        let procs = [
            (10, "ksoftirqd/0", 2, PF_KTHREAD | 0x0400_0040),
            (3, "kthreadd", 0, PF_KTHREAD | 0x0000_0040),
            (2, "sh", 0, 0x0040_0100),
            (11, "worker", 2, 0x0040_0000),
            (12, "kworker-fake", 1, 0x0040_0100),
        ];
        for (pid, comm, ppid, flags) in procs {
            let d = root.join(pid.to_string());
            std::fs::create_dir_all(&d).expect("mkdir");
            let stat = format!(
                "{pid} ({comm}) S {ppid} 0 0 0 -1 {flags} 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            );
            std::fs::write(d.join("stat"), stat).expect("stat");
            std::fs::write(d.join("cmdline"), "").expect("cmdline");
        }
        let mut t = ProcTable::new(root.to_path_buf(), 0);
        let rows = t.sample(Instant::now(), &Redactor::default(), &mut Vec::new());
        let flag = |pid: u32| rows.iter().find(|r| r.pid == pid).map(|r| r.kernel_thread);
        assert_eq!(flag(10), Some(true), "PF_KTHREAD");
        assert_eq!(flag(3), Some(true), "kthreadd");
        assert_eq!(flag(2), Some(false), "pid 2 of a container");
        assert_eq!(flag(11), Some(false), "a child of a container's pid 2");
        assert_eq!(
            flag(12),
            Some(false),
            "a user process named like a kernel thread"
        );
    }

    #[test]
    fn malformed_stat_records_are_skipped_not_a_panic() {
        // Found by the property tests: each of these made procfs-core 0.18 panic on a slice
        // (its parser was used before this one).
        for stat in [
            "(x) S 1\n",            // nothing before the '('
            "7 (x)\n",              // nothing after the ')'
            "7 ) (x S 1\n",         // the last ')' before the first '('
            "7\u{e9}(x) S 1\n",     // a multi-byte character before the '('
            "7 (x)\u{e9}S 1 1 1\n", // a multi-byte character after the ')'
        ] {
            assert!(stat_frame(stat.as_bytes()).is_none(), "{stat:?}");
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::create_dir(dir.path().join("7")).expect("mkdir");
            std::fs::write(dir.path().join("7/stat"), stat).expect("stat");
            let mut t = ProcTable::new(dir.path().to_path_buf(), 0);
            let rows = t.sample(Instant::now(), &Redactor::default(), &mut Vec::new());
            assert!(rows.is_empty(), "{stat:?}");
        }
        assert!(stat_frame(b"7 (a) b) S 1").is_some());
    }

    #[test]
    fn the_lean_parser_reads_what_procfs_reads() {
        use procfs::FromRead as _;
        let mut compared = 0;
        for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(buf) = std::fs::read(e.path().join("stat")) else {
                continue;
            };
            let Ok(want) = procfs::process::Stat::from_read(&buf[..]) else {
                continue;
            };
            let got = parse_stat(&buf, true).expect("parsed");
            assert_eq!(
                got,
                Stat {
                    comm: want.comm,
                    state: want.state,
                    ppid: want.ppid,
                    flags: want.flags,
                    utime: want.utime,
                    stime: want.stime,
                    num_threads: want.num_threads,
                    starttime: want.starttime,
                    rss: want.rss,
                }
            );
            compared += 1;
        }
        assert!(compared > 1, "{compared}");
        let odd = b"9 (a) b (c)) R 1 9 9 0 -1 4194560 1 0 0 0 7 3 0 0 20 0 1 0 77 1 5 18446744073709551615\n";
        let st = parse_stat(odd, true).expect("parsed");
        assert_eq!((st.comm.as_str(), st.state), ("a) b (c)", 'R'));
        assert_eq!((st.utime, st.stime, st.starttime, st.rss), (7, 3, 77, 5));
        assert!(
            parse_stat(b"9 (a) R 1 9 9 0 -1 x\n", true).is_none(),
            "flags not a number"
        );
        assert!(
            parse_stat(b"9 (a) R 1 9 9 0 -1 0 1 0 0 0 7\n", true).is_none(),
            "cut short"
        );
    }

    #[test]
    fn huge_counters_saturate() {
        // Found by the property tests: utime + stime and boot + start used to overflow.
        let dir = tempfile::tempdir().expect("tempdir");
        let max = u64::MAX;
        write_proc(dir.path(), 7, "x", 'S', max, max, max, &["x"]);
        let mut t = ProcTable::new(dir.path().to_path_buf(), max);
        let rows = t.sample(Instant::now(), &Redactor::default(), &mut Vec::new());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].start_unix_ms, u64::MAX);
        assert_eq!(rows[0].rss_bytes, u64::MAX);
    }

    /// A `sleep` child that is killed and reaped when dropped.
    struct Child(std::process::Child);

    impl Child {
        fn sleep() -> Self {
            Self(
                std::process::Command::new("sleep")
                    .arg("30")
                    .spawn()
                    .expect("spawn sleep"),
            )
        }

        fn pid(&self) -> i32 {
            self.0.id() as i32
        }

        fn signal(&self, sig: rustix::process::Signal) {
            let pid = rustix::process::Pid::from_raw(self.pid()).expect("pid");
            rustix::process::kill_process(pid, sig).expect("kill");
        }

        fn end(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl Drop for Child {
        fn drop(&mut self) {
            self.end();
        }
    }

    /// A table of the real /proc that reads every process in full every sample.
    fn real_table() -> ProcTable {
        ProcTable::new(PathBuf::from("/proc"), 0)
            .with_fd_limit(MAX_KEPT_FDS)
            .with_full_every(Duration::ZERO)
    }

    /// Samples until `pid` is in the wanted state (a signal is delivered asynchronously).
    fn sample_until(t: &mut ProcTable, pid: i32, state: &str) -> ProcRow {
        let red = Redactor::default();
        for _ in 0..200 {
            let rows = t.sample(Instant::now(), &red, &mut Vec::new());
            let row = rows
                .into_iter()
                .find(|r| r.pid == pid as u32)
                .expect("listed");
            if row.state == state {
                return row;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("pid {pid} never {state}");
    }

    #[test]
    fn a_kept_stat_file_is_read_again_with_fresh_values() {
        let child = Child::sleep();
        let pid = child.pid();
        let mut t = real_table();
        let first = sample_until(&mut t, pid, "sleeping");
        let opened = t.known[&pid].opened;
        assert!(t.known[&pid].stat.is_some(), "the file is kept");
        // A stopped process reads back as stopped through the same open file.
        child.signal(rustix::process::Signal::STOP);
        let stopped = sample_until(&mut t, pid, "stopped");
        assert_eq!(t.known[&pid].opened, opened, "not reopened");
        assert!(t.round > 1);
        assert_eq!(stopped.start_unix_ms, first.start_unix_ms);
        assert_eq!(stopped.cmdline, "sleep 30");
        child.signal(rustix::process::Signal::CONT);
        sample_until(&mut t, pid, "sleeping");
        assert_eq!(t.known[&pid].opened, opened, "still not reopened");
    }

    #[test]
    fn an_ended_process_drops_its_file() {
        let mut child = Child::sleep();
        let pid = child.pid();
        // The kernel refuses reads of a file whose process is gone, whatever holds the pid now.
        let f = File::open(format!("/proc/{pid}/stat")).expect("open");
        let mut t = real_table();
        sample_until(&mut t, pid, "sleeping");
        assert!(t.known[&pid].stat.is_some());
        child.end();
        let err = read_record(&f, &mut Vec::new()).expect_err("read after exit");
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::SRCH.raw_os_error())
        );
        let rows = t.sample(Instant::now(), &Redactor::default(), &mut Vec::new());
        assert!(rows.iter().all(|r| r.pid != pid as u32));
        assert!(!t.known.contains_key(&pid), "entry and file dropped");
    }

    #[test]
    fn a_reused_pid_is_read_afresh() {
        // The kernel cannot be made to hand a pid out again on demand; a recorded start time
        // that differs from the one the kept file reads is what a reused pid looks like.
        let child = Child::sleep();
        let pid = child.pid();
        let mut t = real_table();
        sample_until(&mut t, pid, "sleeping");
        let opened = t.known[&pid].opened;
        {
            let k = t.known.get_mut(&pid).expect("known");
            k.start = k.start.wrapping_sub(1);
            k.cmdline = "the previous process".into();
        }
        let row = sample_until(&mut t, pid, "sleeping");
        assert_eq!(row.cmdline, "sleep 30", "command line read again");
        assert_eq!(row.cpu_percent, 0.0, "no rate across processes");
        assert!(t.known[&pid].opened > opened, "the file was reopened");
        assert!(t.known[&pid].stat.is_some());
    }

    #[test]
    fn the_fd_budget_bounds_kept_files() {
        let a = Child::sleep();
        let b = Child::sleep();
        for limit in [0, 1] {
            let mut t = ProcTable::new(PathBuf::from("/proc"), 0).with_fd_limit(limit);
            let red = Redactor::default();
            for _ in 0..2 {
                let rows = t.sample(Instant::now(), &red, &mut Vec::new());
                for c in [&a, &b] {
                    assert!(rows.iter().any(|r| r.pid == c.pid() as u32), "listed");
                }
                assert_eq!(t.kept_fds(), limit);
            }
        }
        assert!(fd_budget() >= 1 && fd_budget() <= MAX_KEPT_FDS);
    }

    #[test]
    fn reads_the_real_proc() {
        let mut t = ProcTable::new(PathBuf::from("/proc"), 0);
        let mut errors = Vec::new();
        let rows = t.sample(Instant::now(), &Redactor::default(), &mut errors);
        let me = rows
            .iter()
            .find(|r| r.pid == std::process::id())
            .expect("own process");
        assert!(me.rss_bytes > 0 && me.uid.is_some());
        assert!(!me.cmdline.is_empty());
    }
}

/// Property tests of the process table over generated `/proc/<pid>/stat` and `cmdline` files:
/// names with spaces, parentheses and newlines, numbers past every range, and plain garbage
/// never panic; a well-formed line reads back. Cases per property: `PROPTEST_CASES` (256 when
/// unset; for a long session `PROPTEST_CASES=100000 cargo test -p smon-collect --lib`).
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// A number field: usually sane, sometimes at or past the edges of every integer type.
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (0u64..100_000).prop_map(|n| n.to_string()),
            1 => any::<u64>().prop_map(|n| n.to_string()),
            1 => (u64::MAX - 10..=u64::MAX).prop_map(|n| n.to_string()),
            1 => any::<i64>().prop_map(|n| n.to_string()),
            1 => "[0-9]{20,30}",
            1 => "-?[0-9a-z]{0,4}",
        ]
    }

    /// `comm` as a process may set it (up to 15 bytes, anything but NUL).
    fn comm() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9/:. -]{0,15}", "[()a-z \\n]{0,15}", "\\PC{0,8}",]
    }

    /// A `stat` line with 52 fields; `fields[i]` replaces field i + 3 (after pid, comm, state).
    fn stat_line(pid: i32, comm: &str, state: char, fields: &[String]) -> String {
        let mut line = format!("{pid} ({comm}) {state}");
        for f in fields {
            line.push(' ');
            line.push_str(f);
        }
        line.push('\n');
        line
    }

    fn write(root: &std::path::Path, pid: i32, stat: &[u8], cmdline: &[u8]) {
        let d = root.join(pid.to_string());
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("stat"), stat).expect("stat");
        std::fs::write(d.join("cmdline"), cmdline).expect("cmdline");
    }

    /// Samples twice, one second apart, with the second `stat` given; returns both samples.
    fn sample_twice(
        pid: i32,
        first: &[u8],
        second: &[u8],
        cmdline: &[u8],
    ) -> (Vec<ProcRow>, Vec<ProcRow>) {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), pid, first, cmdline);
        let mut t = ProcTable::new(dir.path().to_path_buf(), u64::MAX / 2);
        let red = Redactor::default();
        let mut errors = Vec::new();
        let t0 = Instant::now();
        let a = t.sample(t0, &red, &mut errors);
        write(dir.path(), pid, second, cmdline);
        let b = t.sample(t0 + Duration::from_secs(1), &red, &mut errors);
        (a, b)
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_stat_bytes_are_survived(
            stat in proptest::collection::vec(any::<u8>(), 0..3000),
            cmdline in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let (a, b) = sample_twice(7, &stat, &stat, &cmdline);
            prop_assert!(a.len() <= 1 && b.len() <= 1);
        }

        #[test]
        fn generated_stat_lines_are_survived_and_read_back(
            pid in 1i32..=i32::MAX,
            name in comm(),
            state in prop_oneof![4 => Just('S'), 1 => any::<char>()],
            base in proptest::collection::vec((0u64..100_000).prop_map(|n| n.to_string()), 49),
            first_edits in proptest::collection::vec((0..49usize, number()), 0..4),
            later_edits in proptest::collection::vec((0..49usize, number()), 0..4),
            cmdline in proptest::collection::vec("\\PC{0,12}", 0..5),
        ) {
            // Mostly valid lines with a few fields replaced, so that most cases parse and reach
            // the arithmetic on the values.
            let edit = |edits: &[(usize, String)]| {
                let mut f = base.clone();
                for (i, v) in edits {
                    f[*i] = v.clone();
                }
                f
            };
            let first = stat_line(pid, &name, state, &edit(&first_edits));
            let second = stat_line(pid, &name, state, &edit(&later_edits));
            let cmdline: Vec<u8> = cmdline.iter().flat_map(|a| a.bytes().chain([0])).collect();
            let (a, b) = sample_twice(pid, first.as_bytes(), second.as_bytes(), &cmdline);
            for row in a.iter().chain(&b) {
                prop_assert_eq!(row.pid, pid as u32);
                if state.is_ascii_alphabetic() {
                    // The kernel writes a letter; with one, `comm` reads back whatever it holds.
                    prop_assert_eq!(&row.name, &name);
                }
                prop_assert!(row.cpu_percent.is_finite() && row.cpu_percent >= 0.0);
            }
        }

        #[test]
        fn every_state_letter_has_a_name(c in any::<char>()) {
            prop_assert!(!state_name(c).is_empty());
        }
    }
}
