//! The writer: one thread owns the only writing connection. The server hands it what to
//! store ([`Write`]) through a bounded queue ([`Writer::send`] never blocks: when the queue is
//! full the write is dropped and counted); it batches them into one transaction per second,
//! rolls the tiers up and applies retention about once a minute ([`crate::metrics::Store`]).
//!
//! Crash safety: a write is committed within about a second of being handed over, so
//! `kill -9` loses at most the queue and the last second's batch; SQLite's WAL keeps the file
//! consistent. A failed commit (a full disk) keeps its error in [`WriterStats`], logs once per
//! episode, drops that batch and tries again with the next one; the thread never panics on a
//! database error.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use smon_proto::Snapshot;

use crate::metrics::{Store, sql};
use crate::{Error, Retention, StorageOptions};

/// Something to store.
#[derive(Debug, Clone)]
pub enum Write {
    /// A host's sample (the summary parts): its metrics go to the raw tier.
    Sample {
        /// Host id (`cluster:name`).
        host: String,
        /// When the server received it (ms since the epoch).
        at_ms: u64,
        /// The sample.
        snapshot: Arc<Snapshot>,
    },
    /// A host's top processes and GPU processes, once a minute.
    Processes {
        /// Host id.
        host: String,
        /// When the server received it (ms since the epoch).
        at_ms: u64,
        /// A sample with the top processes (`Parts.top_processes`) and the GPU processes.
        snapshot: Arc<Snapshot>,
    },
}

/// The current time in ms since the epoch. The writer and the reader take one so that tests
/// can inject time; [`system_clock`] is the real one.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

/// How many writes the queue holds (a few seconds of 10,000 hosts at 1 Hz).
pub const QUEUE: usize = 65_536;
/// How often a batch is committed.
pub const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// How often (by the writer's clock) the tiers are rolled up and retention applied.
pub const MAINTAIN_EVERY_MS: u64 = 60_000;

/// The writer connection's page cache: SQLite's `cache_size`, negative for KiB (128 MiB;
/// filled only as far as the fleet needs it). At 10,000 hosts 64 MiB left a fifth of the
/// writer's time in page reads; 256 MiB gained little more.
pub const WRITER_CACHE_KIB: i64 = -131_072;

/// The writer's counters and state, cheap to clone and read (for `/metrics` and the admin
/// page).
#[derive(Debug, Clone, Default)]
pub struct WriterStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    queued: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    disk_full: std::sync::atomic::AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl WriterStats {
    /// Writes waiting in the queue.
    pub fn queued(&self) -> u64 {
        self.inner.queued.load(Ordering::Relaxed)
    }
    /// Writes dropped because the queue was full (or the writer had stopped).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
    /// Writes committed.
    pub fn written(&self) -> u64 {
        self.inner.written.load(Ordering::Relaxed)
    }
    /// Writes lost because their batch could not be committed (a full disk, ...).
    pub fn failed(&self) -> u64 {
        self.inner.failed.load(Ordering::Relaxed)
    }
    /// Whether the last commit failed because the disk (or the quota) is full.
    pub fn disk_full(&self) -> bool {
        self.inner.disk_full.load(Ordering::Relaxed)
    }
    /// The last write error, while it lasts (cleared by the next successful commit).
    pub fn last_error(&self) -> Option<String> {
        self.inner
            .last_error
            .lock()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    fn set_error(&self, e: Option<String>) {
        match self.inner.last_error.lock() {
            Ok(mut g) => *g = e,
            Err(p) => *p.into_inner() = e,
        }
    }
}

enum Msg {
    Write(Write),
    /// Commit now, roll up as of the given time when `Some`, and answer.
    Sync(Option<u64>, SyncSender<Result<(), String>>),
}

/// The handle of the writer thread.
pub struct Writer {
    tx: SyncSender<Msg>,
    stats: WriterStats,
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Opens (creating it) the database of `opts` and starts the writer thread, on the system
    /// clock. An error here (a directory that cannot be made, a damaged file) is the caller's
    /// to report; after this, errors go to [`WriterStats::last_error`].
    pub fn start(opts: StorageOptions) -> Result<Writer, Error> {
        Self::start_with(opts, system_clock(), QUEUE)
    }

    /// [`Writer::start`] with a clock (tests inject time) and a queue length.
    pub fn start_with(opts: StorageOptions, clock: Clock, queue: usize) -> Result<Writer, Error> {
        let conn = crate::db::open_writer(&opts.db_path())?;
        Self::start_on(conn, opts, clock, queue)
    }

    /// [`Writer::start_with`] on a connection opened by [`crate::db::open_writer`] on
    /// `opts.db_path()` (with pragmas of the caller's own, e.g. a `max_page_count` to test a
    /// full disk).
    pub fn start_on(
        conn: Connection,
        opts: StorageOptions,
        clock: Clock,
        queue: usize,
    ) -> Result<Writer, Error> {
        let path = opts.db_path();
        // The writer touches every host's last staging page each second: a page cache that
        // holds them and the B-trees above them (the default is 2 MiB) spares a read system call per page and commit.
        conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)
            .map_err(sql(&path))?;
        let store = {
            let tx = conn.unchecked_transaction().map_err(sql(&path))?;
            let s = Store::load(&tx, &path)?;
            tx.commit().map_err(sql(&path))?;
            s
        };
        let (tx, rx) = sync_channel(queue.max(1));
        let stats = WriterStats::default();
        let mut state = Thread {
            conn,
            store,
            sessions: crate::procs::SessionCache::default(),
            retention: opts.retention,
            clock,
            stats: stats.clone(),
            path: path.clone(),
            next_maintain: 0,
            failing: false,
        };
        let thread = std::thread::Builder::new()
            .name("smon-history-writer".into())
            .spawn(move || state.run(rx))
            .map_err(|source| Error::Dir {
                dir: opts.dir.clone(),
                source,
            })?;
        Ok(Writer {
            tx,
            stats,
            path,
            thread: Some(thread),
        })
    }

    /// Hands a write over without blocking; `false` (and counted as dropped) when the queue
    /// is full or the writer has stopped.
    pub fn send(&self, w: Write) -> bool {
        self.stats.inner.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Write(w)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.inner.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.inner.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The counters (a cheap handle that stays valid after [`Writer::stop`]).
    pub fn stats(&self) -> WriterStats {
        self.stats.clone()
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Waits until everything sent before is committed (and, with `maintain_at_ms`, the tiers
    /// rolled up as of that time). Blocks; for tests, tools and shutdown.
    pub fn sync(&self, maintain_at_ms: Option<u64>) -> Result<(), Error> {
        let (tx, rx) = sync_channel(1);
        let gone = || Error::Codec("the history writer has stopped".into());
        self.tx
            .send(Msg::Sync(maintain_at_ms, tx))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?.map_err(Error::Codec)
    }

    /// Commits what is queued and stops the thread.
    pub fn stop(mut self) -> Result<(), Error> {
        let r = self.sync(None);
        let Writer { tx, thread, .. } = &mut self;
        drop(std::mem::replace(tx, sync_channel(1).0));
        if let Some(t) = thread.take() {
            let _ = t.join();
        }
        r
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The thread ends when the channel closes; it commits its batch first.
        if let Some(t) = self.thread.take() {
            drop(std::mem::replace(&mut self.tx, sync_channel(1).0));
            let _ = t.join();
        }
    }
}

struct Thread {
    conn: Connection,
    store: Store,
    sessions: crate::procs::SessionCache,
    retention: Retention,
    clock: Clock,
    stats: WriterStats,
    path: PathBuf,
    next_maintain: u64,
    failing: bool,
}

impl Thread {
    fn run(&mut self, rx: Receiver<Msg>) {
        let mut batch: Vec<Write> = Vec::new();
        let mut deadline = Instant::now() + COMMIT_EVERY;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Msg::Write(w)) => {
                    self.stats.inner.queued.fetch_sub(1, Ordering::Relaxed);
                    batch.push(w);
                    if Instant::now() < deadline {
                        continue;
                    }
                }
                Ok(Msg::Sync(at, reply)) => {
                    let r = self.commit(&mut batch, at);
                    let _ = reply.send(r.map_err(|e| e.to_string()));
                    deadline = Instant::now() + COMMIT_EVERY;
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.commit(&mut batch, None);
                    return;
                }
            }
            let now = (self.clock)();
            let maintain = (now >= self.next_maintain).then_some(now);
            let _ = self.commit(&mut batch, maintain);
            deadline = Instant::now() + COMMIT_EVERY;
        }
    }

    /// Commits the batch (and rolls up as of `maintain` when asked), recording the outcome.
    fn commit(&mut self, batch: &mut Vec<Write>, maintain: Option<u64>) -> Result<(), Error> {
        let n = batch.len() as u64;
        let r = self.try_commit(batch, maintain);
        batch.clear();
        match &r {
            Ok(()) => {
                self.stats.inner.written.fetch_add(n, Ordering::Relaxed);
                if let Some(now) = maintain {
                    self.next_maintain = now + MAINTAIN_EVERY_MS;
                }
                if self.failing {
                    self.failing = false;
                    tracing::info!(path = %self.path.display(), "History writes work again.");
                }
                self.stats.set_error(None);
                self.stats.inner.disk_full.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats
                    .inner
                    .disk_full
                    .store(e.is_disk_full(), Ordering::Relaxed);
                self.stats.inner.failed.fetch_add(n, Ordering::Relaxed);
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(
                        path = %self.path.display(),
                        disk_full = e.is_disk_full(),
                        error = %e,
                        "History write failed; dropping this batch and retrying each second (the live view is unaffected)."
                    );
                }
                self.stats.set_error(Some(e.to_string()));
                // The caches may name rows that the rollback removed: reload them.
                self.sessions = crate::procs::SessionCache::default();
                if let Ok(s) = Store::load(&self.conn, &self.path) {
                    self.store = s;
                }
            }
        }
        r
    }

    fn try_commit(&mut self, batch: &[Write], maintain: Option<u64>) -> Result<(), Error> {
        if batch.is_empty() && maintain.is_none() {
            return Ok(());
        }
        let e = sql(&self.path);
        let tx = self.conn.transaction().map_err(&e)?;
        for w in batch {
            match w {
                Write::Sample {
                    host,
                    at_ms,
                    snapshot,
                } => {
                    self.store.write_sample(&tx, host, *at_ms, snapshot)?;
                    crate::procs::sessions_with(&tx, &mut self.sessions, host, *at_ms, snapshot)?;
                }
                Write::Processes {
                    host,
                    at_ms,
                    snapshot,
                } => crate::procs::write(&tx, host, *at_ms, snapshot)?,
            }
        }
        if let Some(now) = maintain {
            crate::procs::retain(&tx, now, &self.retention)?;
            self.store.maintain(&tx, now, &self.retention)?;
        }
        tx.commit().map_err(&e)
    }
}
