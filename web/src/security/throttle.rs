//! Throttling of logins, so that passwords cannot be guessed, without handing an attacker a
//! switch that locks a user out from elsewhere.
//!
//! The policy (README "Security", "Logins and lockout"), within a window of `lockout_s`:
//! - per (address, user name): at most `max_login_failures` attempts that did not succeed;
//!   then that address gets 429 for that name until the oldest attempt leaves the window;
//! - per address: at most [`ADDRESS_FACTOR`] times as many, whatever the names (password
//!   spraying); then 429 for every name from that address;
//! - per user name, from any address: never a refusal, only a delay before the check that
//!   doubles with each failure past `max_login_failures` (from [`BASE_DELAY`] up to
//!   [`MAX_DELAY`]). A user whose name is being guessed from elsewhere still logs in, a little
//!   later.
//!
//! An attempt counts BEFORE its password is checked: [`Throttle::reserve`] checks the limits
//! and records the attempt as a failure under one lock, and only [`Throttle::succeeded`]
//! takes it back. Parallel requests therefore cannot all pass the check before any failure is
//! recorded, and a request cut off mid-check still counts.
//!
//! IPv6 clients are counted per /64, the block one subscriber usually holds.
//!
//! The state sits behind [`ThrottleStore`] so that it survives a restart: [`FileStore`] keeps
//! it in a private JSON file next to the users file today; the database can implement the
//! same trait later.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The per-address limit is this many times the per-(address, user) one.
pub const ADDRESS_FACTOR: u32 = 4;
/// The first delay of a user name that has used up its free failures.
pub const BASE_DELAY: Duration = Duration::from_millis(250);
/// The longest delay of a user name: what a real user waits at worst while their name is
/// being guessed.
pub const MAX_DELAY: Duration = Duration::from_secs(8);
/// Keys kept at most in memory; past this, the stalest are forgotten first.
const MAX_KEYS: usize = 100_000;
/// Keys kept at most in the state file (the most recent ones).
const MAX_SAVED_KEYS: usize = 20_000;
/// Log lines of refused or failed logins written per second at most.
const LOG_LINES_PER_SECOND: u32 = 5;
/// A state file larger than this is not read.
const MAX_FILE_BYTES: u64 = 8 << 20;

/// What an attempt is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Key {
    /// A client address (an IPv6 one cut to its /64).
    Address {
        /// The address.
        address: IpAddr,
    },
    /// A user name tried from a client address.
    AddressUser {
        /// The address.
        address: IpAddr,
        /// The user name.
        user: String,
    },
    /// A user name, from anywhere.
    User {
        /// The user name.
        user: String,
    },
}

/// The attempts of one key that did not succeed, as saved by a [`ThrottleStore`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What they count against.
    #[serde(flatten)]
    pub key: Key,
    /// When (ms since the epoch), oldest first.
    pub at_ms: Vec<u64>,
}

/// Why a throttle's state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a throttle state.
    #[error("{}: not a login throttle state: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The file is larger than any state this program writes.
    #[error("{}: {bytes} bytes, more than a login throttle state can be", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
}

/// Where a throttle keeps its state across restarts.
pub trait ThrottleStore: Send + Sync {
    /// The saved records (possibly with expired times: the throttle drops those).
    fn load(&self) -> Result<Vec<Record>, StoreError>;
    /// Replaces the saved records with `records`.
    fn save(&self, records: &[Record]) -> Result<(), StoreError>;
}

/// A [`ThrottleStore`] in a JSON file readable by its owner only, replaced atomically.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    records: Vec<Record>,
}

impl FileStore {
    /// A store in `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// The state file that goes with the users file `users_file`: `smon-users.json` ->
    /// `smon-users.throttle.json`.
    pub fn beside(users_file: &Path) -> Self {
        Self::new(users_file.with_extension("throttle.json"))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ThrottleStore for FileStore {
    fn load(&self) -> Result<Vec<Record>, StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        if bytes > MAX_FILE_BYTES {
            return Err(StoreError::TooLarge {
                path: self.path.clone(),
                bytes,
            });
        }
        let text = std::fs::read(&self.path).map_err(io)?;
        let file: StateFile =
            serde_json::from_slice(&text).map_err(|source| StoreError::Parse {
                path: self.path.clone(),
                source,
            })?;
        Ok(file.records)
    }

    fn save(&self, records: &[Record]) -> Result<(), StoreError> {
        let file = StateFile {
            version: 1,
            records: records.to_vec(),
        };
        let text = serde_json::to_vec(&file).map_err(|source| StoreError::Parse {
            path: self.path.clone(),
            source,
        })?;
        smon_runtime::secret_file::write_private(&self.path, &text).map_err(|source| {
            StoreError::Io {
                path: self.path.clone(),
                source,
            }
        })
    }
}

/// The limits of a [`Throttle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts that did not succeed allowed per (address, user name) within `window`.
    pub per_address_user: u32,
    /// The same per address, whatever the names.
    pub per_address: u32,
    /// Failures of a user name (from anywhere) before its attempts are delayed.
    pub user_free: u32,
    /// How long an attempt counts.
    pub window: Duration,
}

impl Policy {
    /// The policy of `max_login_failures` within `window` (see the module doc).
    pub fn new(max_failures: u32, window: Duration) -> Self {
        let max = max_failures.max(1);
        Self {
            per_address_user: max,
            per_address: max.saturating_mul(ADDRESS_FACTOR),
            user_free: max,
            window,
        }
    }
}

/// Why [`Throttle::reserve`] refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// How long until an attempt is allowed again.
    pub wait: Duration,
    /// Which limit: `address and user` or `address`.
    pub limit: &'static str,
}

/// An attempt that may go ahead: it already counts as a failure until
/// [`Throttle::succeeded`].
#[derive(Debug, Clone)]
pub struct Attempt {
    address: IpAddr,
    user: String,
    at_ms: u64,
    /// How long to wait before checking the password (the user name's backoff).
    pub delay: Duration,
}

/// Attempts per address, per (address, user name) and per user name (see the module doc).
pub struct Throttle {
    policy: Policy,
    attempts: Mutex<HashMap<Key, VecDeque<u64>>>,
    store: Option<Box<dyn ThrottleStore>>,
    /// Held while a snapshot is taken and written, so that the last write holds the latest
    /// state.
    saving: Mutex<()>,
    /// The log lines of refused and failed logins.
    pub log: LogLimit,
    /// The last save failed (and was logged).
    save_failing: std::sync::atomic::AtomicBool,
}

/// An IPv6 address cut to its /64 (an IPv4-mapped one becomes IPv4); IPv4 as it is.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

impl Throttle {
    /// A throttle with `policy` and no saved state.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            attempts: Mutex::new(HashMap::new()),
            store: None,
            saving: Mutex::new(()),
            log: LogLimit::new(LOG_LINES_PER_SECOND),
            save_failing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A throttle with `policy` whose state is loaded from, and saved to, `store`; entries
    /// older than the window at `now_ms` are dropped.
    pub fn with_store(
        policy: Policy,
        store: Box<dyn ThrottleStore>,
        now_ms: u64,
    ) -> Result<Self, StoreError> {
        let records = store.load()?;
        let mut t = Self::new(policy);
        t.store = Some(store);
        let window = t.window_ms();
        {
            let mut m = t.lock();
            for r in records {
                let q: VecDeque<u64> = r
                    .at_ms
                    .into_iter()
                    .filter(|at| now_ms.saturating_sub(*at) < window)
                    .collect();
                if !q.is_empty() && m.len() < MAX_KEYS {
                    m.insert(r.key, q);
                }
            }
        }
        Ok(t)
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    fn window_ms(&self) -> u64 {
        self.policy.window.as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<u64>>> {
        self.attempts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the limits for `user` from `address` at `now_ms` and, if the attempt may go
    /// ahead, counts it as a failure at once (under the same lock).
    pub fn reserve(&self, address: IpAddr, user: &str, now_ms: u64) -> Result<Attempt, Refusal> {
        let address = bucket(address);
        let window = self.window_ms();
        let p = self.policy;
        let mut m = self.lock();
        let keys = [
            Key::AddressUser {
                address,
                user: user.to_owned(),
            },
            Key::Address { address },
            Key::User {
                user: user.to_owned(),
            },
        ];
        let mut counts = [0usize; 3];
        for (i, k) in keys.iter().enumerate() {
            if let Some(q) = m.get_mut(k) {
                while q
                    .front()
                    .is_some_and(|t| now_ms.saturating_sub(*t) >= window)
                {
                    q.pop_front();
                }
                counts[i] = q.len();
            }
        }
        let wait_for = |m: &HashMap<Key, VecDeque<u64>>, k: &Key| {
            let oldest = m.get(k).and_then(|q| q.front()).copied().unwrap_or(now_ms);
            Duration::from_millis((oldest + window).saturating_sub(now_ms).max(1000))
        };
        if counts[0] >= p.per_address_user as usize {
            return Err(Refusal {
                wait: wait_for(&m, &keys[0]),
                limit: "address and user",
            });
        }
        if counts[1] >= p.per_address as usize {
            return Err(Refusal {
                wait: wait_for(&m, &keys[1]),
                limit: "address",
            });
        }
        let over = counts[2].saturating_sub(p.user_free as usize) as u32;
        let delay = if counts[2] < p.user_free as usize {
            Duration::ZERO
        } else {
            BASE_DELAY
                .saturating_mul(1u32 << over.min(16))
                .min(MAX_DELAY)
        };
        if m.len() + 3 > MAX_KEYS {
            Self::evict(&mut m, now_ms, window);
        }
        for k in keys {
            let q = m.entry(k).or_default();
            q.push_back(now_ms);
            // A user name's deque is the only one not bounded by a refusal above.
            while q.len() > (p.per_address as usize).max(p.user_free as usize + 17) {
                q.pop_front();
            }
        }
        Ok(Attempt {
            address,
            user: user.to_owned(),
            at_ms: now_ms,
            delay,
        })
    }

    /// Forgets expired keys; if that is not enough, the half with the stalest last attempt.
    fn evict(m: &mut HashMap<Key, VecDeque<u64>>, now_ms: u64, window: u64) {
        m.retain(|_, q| q.back().is_some_and(|t| now_ms.saturating_sub(*t) < window));
        if m.len() + 3 > MAX_KEYS {
            let mut lasts: Vec<u64> = m.values().filter_map(|q| q.back().copied()).collect();
            lasts.sort_unstable();
            let cut = lasts.get(lasts.len() / 2).copied().unwrap_or(u64::MAX);
            m.retain(|_, q| q.back().is_some_and(|t| *t > cut));
        }
    }

    /// The attempt logged in: it no longer counts, and the address's other failures for that
    /// name are forgotten. The user name's failures from elsewhere stay (its owner logging
    /// in must not reset the backoff for someone guessing it).
    pub fn succeeded(&self, a: &Attempt) {
        let mut m = self.lock();
        m.remove(&Key::AddressUser {
            address: a.address,
            user: a.user.clone(),
        });
        for k in [
            Key::Address { address: a.address },
            Key::User {
                user: a.user.clone(),
            },
        ] {
            if let Some(q) = m.get_mut(&k) {
                if let Some(i) = q.iter().rposition(|t| *t == a.at_ms) {
                    q.remove(i);
                }
                if q.is_empty() {
                    m.remove(&k);
                }
            }
        }
    }

    /// Forgets every attempt of the user name `user` (its password was just changed or
    /// reset by an admin).
    pub fn forget_user(&self, user: &str) {
        self.lock().retain(|k, _| match k {
            Key::User { user: u } | Key::AddressUser { user: u, .. } => u != user,
            Key::Address { .. } => true,
        });
    }

    /// The current state, the most recent keys first at most `MAX_SAVED_KEYS`.
    pub fn snapshot(&self) -> Vec<Record> {
        let m = self.lock();
        let mut records: Vec<Record> = m
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, q)| Record {
                key: k.clone(),
                at_ms: q.iter().copied().collect(),
            })
            .collect();
        drop(m);
        if records.len() > MAX_SAVED_KEYS {
            records.sort_unstable_by_key(|r| std::cmp::Reverse(r.at_ms.last().copied()));
            records.truncate(MAX_SAVED_KEYS);
        }
        records
    }

    /// [`Throttle::persist`], logging a failure once until a save works again (an unwritable
    /// directory must not add a log line per login).
    pub fn persist_logged(&self) {
        use std::sync::atomic::Ordering;
        match self.persist() {
            Ok(()) => self.save_failing.store(false, Ordering::Relaxed),
            Err(e) => {
                if !self.save_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        "Cannot save the login throttle's state: a restart would forget it."
                    );
                }
            }
        }
    }

    /// Writes the state to the store (if any). Blocking (a file write and sync): call it off
    /// the async threads. Concurrent calls are serialised, each writing the state as it is
    /// when its turn comes, so the last write is never older than the last change.
    pub fn persist(&self) -> Result<(), StoreError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let _turn = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        store.save(&self.snapshot())
    }
}

/// The throttle of a server with these `auth` settings: the policy of
/// `max_login_failures` per `lockout_s`, its state in a [`FileStore`] beside the users file. A
/// state file that cannot be read is reported and replaced (a fresh start beats no start).
pub fn for_auth(auth: &crate::security::config::AuthSettings) -> Throttle {
    let policy = Policy::new(auth.max_login_failures, auth.lockout);
    let store = FileStore::beside(&auth.users_file);
    let now = crate::clock::now_ms();
    match Throttle::with_store(policy, Box::new(store.clone()), now) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read the login throttle's state; starting afresh.");
            let mut t = Throttle::new(policy);
            t.store = Some(Box::new(store));
            t
        }
    }
}

/// At most so many log lines per second of one kind; the rest are counted, and the count is
/// reported with the next line that is written (`suppressed`).
pub struct LogLimit {
    per_second: u32,
    state: Mutex<(u64, u32, u64)>,
}

impl LogLimit {
    /// At most `per_second` lines a second.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            state: Mutex::new((0, 0, 0)),
        }
    }

    /// `Some(suppressed)` when a line may be written at `now_ms` (with how many were left out
    /// since the last one); `None` when this one is to be left out.
    pub fn admit(&self, now_ms: u64) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (second, written, suppressed) = &mut *s;
        if now_ms / 1000 != *second {
            *second = now_ms / 1000;
            *written = 0;
        }
        if *written < self.per_second {
            *written += 1;
            Some(std::mem::take(suppressed))
        } else {
            *suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_lines_are_limited_and_the_rest_counted() {
        let l = LogLimit::new(2);
        assert_eq!(l.admit(1_000), Some(0));
        assert_eq!(l.admit(1_500), Some(0));
        assert_eq!(l.admit(1_600), None);
        assert_eq!(l.admit(1_700), None);
        assert_eq!(l.admit(2_000), Some(2));
        assert_eq!(l.admit(2_001), Some(0));
    }

    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

    fn policy() -> Policy {
        Policy::new(3, Duration::from_secs(60))
    }

    #[test]
    fn attempts_count_before_the_check_and_lock_the_address_and_user() {
        let t = Throttle::new(policy());
        let t0 = 1_000_000;
        // Three reservations with no outcome yet: the fourth is refused at once.
        for i in 0..3 {
            assert!(t.reserve(A, "alice", t0).is_ok(), "attempt {i}");
        }
        let r = t.reserve(A, "alice", t0).expect_err("locked");
        assert_eq!(r.limit, "address and user");
        assert_eq!(r.wait, Duration::from_secs(60));
        // The same name from another address goes ahead, delayed: the name is not locked.
        let b = t.reserve(B, "alice", t0).expect("other address");
        assert_eq!(b.delay, BASE_DELAY);
        assert_eq!(
            t.reserve(B, "alice", t0).expect("again").delay,
            BASE_DELAY * 2
        );
        // After the window, the address may try again.
        assert!(t.reserve(A, "alice", t0 + 60_000).is_ok());
    }

    #[test]
    fn the_address_limit_stops_spraying_many_names() {
        let t = Throttle::new(policy());
        for i in 0..12 {
            assert!(t.reserve(A, &format!("u{i}"), 0).is_ok(), "name {i}");
        }
        assert_eq!(
            t.reserve(A, "other", 0).expect_err("address").limit,
            "address"
        );
        assert!(t.reserve(B, "other", 0).is_ok());
    }

    #[test]
    fn a_success_takes_back_its_attempt_but_not_the_names_backoff() {
        let t = Throttle::new(policy());
        t.reserve(B, "alice", 0).expect("b");
        t.reserve(B, "alice", 0).expect("b");
        t.reserve(B, "alice", 0).expect("b");
        let a = t.reserve(A, "alice", 0).expect("a");
        t.succeeded(&a);
        // The user name still has three failures from B: the next attempt is delayed.
        assert_eq!(t.reserve(A, "alice", 1).expect("a").delay, BASE_DELAY);
        t.forget_user("alice");
        assert_eq!(t.reserve(A, "alice", 2).expect("a").delay, Duration::ZERO);
        let backoff = (0..40)
            .map(|i| t.reserve(IpAddr::from([10, 0, 0, i]), "bob", 3))
            .map(|r| r.expect("never locked").delay)
            .max();
        assert_eq!(backoff, Some(MAX_DELAY));
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t = Throttle::new(policy());
        for last in 1..=3u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
            t.reserve(ip, "x", 0).expect("ok");
        }
        let other = IpAddr::from([0x2001, 0xdb8, 0, 1, 9, 9, 9, 9]);
        assert!(t.reserve(other, "x", 0).is_err(), "same /64");
        assert!(
            t.reserve(IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]), "x", 0)
                .is_ok()
        );
    }

    #[test]
    fn the_state_survives_in_a_private_file_without_expired_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = dir.path().join("smon-users.json");
        let store = FileStore::beside(&users);
        assert_eq!(store.path(), dir.path().join("smon-users.throttle.json"));
        let t = Throttle::with_store(policy(), Box::new(store.clone()), 0).expect("empty");
        for _ in 0..3 {
            t.reserve(A, "alice", 1_000).expect("ok");
        }
        t.reserve(B, "bob", 100).expect("ok");
        t.persist().expect("save");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A restart 30 s later: alice is still locked out from A.
        let t2 = Throttle::with_store(policy(), Box::new(store.clone()), 31_000).expect("load");
        assert!(t2.reserve(A, "alice", 31_000).is_err());
        // 60.5 s later, bob's entry (at 100 ms) has expired and is not kept.
        let t3 = Throttle::with_store(policy(), Box::new(store.clone()), 60_500).expect("load");
        t3.persist().expect("save");
        let kept = store.load().expect("load");
        assert!(
            kept.iter()
                .all(|r| !matches!(&r.key, Key::User { user } if user == "bob"))
        );
        assert!(
            kept.iter()
                .any(|r| matches!(&r.key, Key::User { user } if user == "alice"))
        );
        std::fs::write(store.path(), "not json").expect("write");
        assert!(matches!(store.load(), Err(StoreError::Parse { .. })));
    }
}
