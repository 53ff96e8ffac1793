//! Reachability checks: every host of the [`Registry`] is pinged (ICMP echo of its `ip`, else
//! the host part of its agent's address) and each of its configured `services` is tried (a
//! TCP connect to its port; an `icmp` service is the host's ping), every
//! `monitor.reach_interval_s` and on demand (`POST /api/v1/hosts/{id}/check`).
//!
//! Each result ([`ReachResult`]) becomes the host's last result, the overview row's digest
//! (`HostRow.reach`) and an event on the feed ([`Body::Reach`]), which carries the
//! transitions it saw (a service or the ping going down or back up; a host's first result is
//! none). The alerts consumer evaluates `service_down` rules on these events; transitions are
//! logged and, with the history database on, stored (`reach_events`) for the host page.
//!
//! Hosts are checked concurrently, at most [`CONCURRENCY`] at once, each at its own offset in
//! the interval (a hash of its id), so that a large fleet is not probed in one burst. Every
//! probe has its own timeout ([`TIMEOUT`]), so a host that does not answer holds up nobody
//! else; a host still being checked when its next turn comes is skipped that turn. The fleet
//! is re-read from the registry each round: hosts added or removed at run time are followed.
//!
//! Pings use one ICMP socket per address family for the whole fleet: an unprivileged one
//! (`SOCK_DGRAM`) when `net.ipv4.ping_group_range` includes the process's group, else a raw
//! one (which needs `CAP_NET_RAW`). When neither can be opened, every result's ping says so
//! (and the log, once), and the TCP checks still run.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use smon_api::reach::{PingResult, ReachAnswer, ReachResult, ReachTransition, ServiceResult};
use smon_web::hub::now_ms;
use smon_web::reachability::{ReachError, ReachService};
use smon_web::store::ClusterStore;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ServiceKind, Target};
use crate::feed::{Body, Feed};
use crate::registry::Registry;

/// How long one probe (a ping, a connect, a name lookup) may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Most hosts checked at once.
pub const CONCURRENCY: usize = 64;

/// Transitions kept in memory per host, the host page's list (filled from the database at
/// start, so a restart keeps it).
const RECENT: usize = 50;

/// How long stored transitions are kept.
const RETENTION_MS: u64 = 90 * 86_400_000;

/// The subject of a host's ping in transitions and `service_down` alerts.
pub const PING: &str = "ping";

/// Why the checker could not start.
#[derive(Debug, thiserror::Error)]
#[error("reachability: the database cannot be opened")]
pub struct StartError(#[source] pub smon_history::Error);

#[derive(Default)]
struct HostState {
    last: Option<ReachResult>,
    recent: VecDeque<ReachTransition>,
    /// A scheduled check of the host runs now.
    busy: bool,
}

/// The ICMP sockets, one per address family, shared by every ping: unprivileged (`SOCK_DGRAM`)
/// when `net.ipv4.ping_group_range` allows the process's group, else raw (`CAP_NET_RAW`), else
/// the reason, which every ping then answers.
pub struct Pingers {
    v4: Result<surge_ping::Client, String>,
    v6: Result<surge_ping::Client, String>,
}

impl Pingers {
    /// Opens the sockets (in a runtime: each has a receiving task), saying in the log which
    /// kind, or once why there is none.
    pub fn open() -> Self {
        let open = |kind: surge_ping::ICMP, family: &str| {
            let cfg = surge_ping::Config::builder().kind(kind).build();
            match surge_ping::Client::new(&cfg) {
                Ok(c) => {
                    let how = if c.get_socket().get_type() == socket2::Type::DGRAM {
                        "an unprivileged ICMP socket"
                    } else {
                        "a raw ICMP socket"
                    };
                    tracing::info!(family, socket = how, "Reachability pings ready.");
                    Ok(c)
                }
                // Refused the unprivileged socket (ping_group_range), then the raw one.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    let msg = no_ping_message(gid());
                    tracing::warn!(family, "{msg}; only the TCP checks run.");
                    Err(msg)
                }
                Err(e) => {
                    let msg = format!("no {family} ICMP socket: {e}");
                    tracing::warn!(family, "{msg}; only the TCP checks run.");
                    Err(msg)
                }
            }
        };
        Pingers {
            v4: open(surge_ping::ICMP::V4, "IPv4"),
            v6: open(surge_ping::ICMP::V6, "IPv6"),
        }
    }

    /// Whether IPv4 pings use an unprivileged socket (`None`: no socket).
    pub fn unprivileged_v4(&self) -> Option<bool> {
        self.v4
            .as_ref()
            .ok()
            .map(|c| c.get_socket().get_type() == socket2::Type::DGRAM)
    }

    /// Pings `ip` once, within [`TIMEOUT`].
    pub async fn ping(&self, ip: IpAddr) -> PingResult {
        let client = match (ip, &self.v4, &self.v6) {
            (IpAddr::V4(_), Ok(c), _) | (IpAddr::V6(_), _, Ok(c)) => c,
            (IpAddr::V4(_), Err(e), _) | (IpAddr::V6(_), _, Err(e)) => {
                return PingResult {
                    up: None,
                    error: Some(e.clone()),
                    address: Some(ip.to_string()),
                    ..Default::default()
                };
            }
        };
        // A random identifier and sequence: two checks of one host at once (a scheduled one
        // and one asked for) are two requests, not one answered twice.
        let mut pinger = client
            .pinger(ip, surge_ping::PingIdentifier(rand::random()))
            .await;
        pinger.timeout(TIMEOUT);
        let outcome = pinger
            .ping(surge_ping::PingSequence(rand::random()), &[0u8; 16])
            .await;
        match outcome {
            Ok((_, rtt)) => PingResult {
                up: Some(true),
                latency_ms: Some(ms(rtt)),
                error: None,
                address: Some(ip.to_string()),
            },
            Err(e) => PingResult {
                up: Some(false),
                latency_ms: None,
                error: Some(ping_error(&e)),
                address: Some(ip.to_string()),
            },
        }
    }
}

struct Inner {
    registry: Registry,
    feed: Feed,
    store: Arc<Mutex<ClusterStore>>,
    interval: Duration,
    permits: Semaphore,
    pingers: tokio::sync::OnceCell<Pingers>,
    hosts: Mutex<HashMap<String, HostState>>,
    db: Option<Mutex<Connection>>,
}

/// The checker: a cheap handle, shared by its loop, the routes and tests.
#[derive(Clone)]
pub struct Reach {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reach")
            .field("interval", &self.inner.interval)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under these locks is made whole before the guard drops.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Reach {
    /// A checker of the hosts of `registry` every `interval`, publishing on `feed` and
    /// setting the rows of `store`; with `db` (the history database's path), transitions are
    /// stored. Blocking when `db` is given (it opens the database).
    pub fn new(
        registry: Registry,
        feed: Feed,
        store: Arc<Mutex<ClusterStore>>,
        interval: Duration,
        db: Option<&Path>,
    ) -> Result<Self, StartError> {
        let db = match db {
            Some(p) => Some(smon_history::db::open_writer(p).map_err(StartError)?),
            None => None,
        };
        let mut hosts: HashMap<String, HostState> = HashMap::new();
        if let Some(c) = &db {
            match stored_recent(c) {
                Ok(rows) => {
                    for t in rows {
                        hosts.entry(t.host.clone()).or_default().recent.push_back(t);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Stored reachability transitions not read; the host pages list new ones only.")
                }
            }
        }
        let db = db.map(Mutex::new);
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                feed,
                store,
                interval,
                permits: Semaphore::new(CONCURRENCY),
                pingers: tokio::sync::OnceCell::new(),
                hosts: Mutex::new(hosts),
                db,
            }),
        })
    }

    /// Checks every host every interval, each at its own offset, until `stop`.
    pub async fn run(self, tracker: TaskTracker, stop: CancellationToken) {
        let interval = self.inner.interval;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let ids = self.inner.registry.ids();
            lock(&self.inner.hosts).retain(|id, _| ids.contains(id));
            for id in ids {
                let (me, stop) = (self.clone(), stop.clone());
                let offset = spread(&id, interval);
                tracker.spawn(async move {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = me.scheduled(id, offset) => {}
                    }
                });
            }
        }
    }

    /// One host's turn: after `offset`, unless its last check still runs.
    async fn scheduled(&self, id: String, offset: Duration) {
        tokio::time::sleep(offset).await;
        {
            let mut hosts = lock(&self.inner.hosts);
            let h = hosts.entry(id.clone()).or_default();
            if h.busy {
                tracing::debug!(host = %id, "Reachability check still running; skipping this turn.");
                return;
            }
            h.busy = true;
        }
        // Cleared however this ends (a stop cancels the future mid-check).
        struct Busy<'a>(&'a Reach, &'a str);
        impl Drop for Busy<'_> {
            fn drop(&mut self) {
                if let Some(h) = lock(&self.0.inner.hosts).get_mut(self.1) {
                    h.busy = false;
                }
            }
        }
        let _busy = Busy(self, &id);
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return;
        };
        let Some(target) = self.inner.registry.target(&id) else {
            return;
        };
        let result = self.check_target(&target).await;
        self.record(&id, result).await;
    }

    /// Checks host `id` now and records the result; `None` for a host not in the fleet.
    pub async fn check_now(&self, id: &str) -> Option<ReachResult> {
        let target = self.inner.registry.target(id)?;
        let result = self.check_target(&target).await;
        self.record(id, result.clone()).await;
        Some(result)
    }

    /// The last result of host `id`.
    pub fn last(&self, id: &str) -> Option<ReachResult> {
        lock(&self.inner.hosts).get(id).and_then(|h| h.last.clone())
    }

    async fn ping(&self, ip: IpAddr) -> PingResult {
        let pingers = self
            .inner
            .pingers
            .get_or_init(|| async { Pingers::open() })
            .await;
        pingers.ping(ip).await
    }

    /// Checks `target`: the ping and every service at once, each within [`TIMEOUT`].
    pub async fn check_target(&self, target: &Target) -> ReachResult {
        let name = target
            .net
            .ip
            .clone()
            .unwrap_or_else(|| host_part(&target.address).to_owned());
        let ip = resolve(&name).await;
        let ping = async {
            match &ip {
                Ok(ip) => self.ping(*ip).await,
                Err(e) => PingResult {
                    up: None,
                    error: Some(e.clone()),
                    ..Default::default()
                },
            }
        };
        let mut connects = tokio::task::JoinSet::new();
        for (i, s) in target.net.services.iter().enumerate() {
            if let (ServiceKind::Tcp, Some(port), Ok(ip)) = (s.kind, s.port, &ip) {
                let addr = std::net::SocketAddr::new(*ip, port);
                connects.spawn(async move { (i, connect(addr).await) });
            }
        }
        let (ping, tcp) = tokio::join!(ping, connects.join_all());
        let mut tcp: HashMap<usize, Result<f64, String>> = tcp.into_iter().collect();
        let services = target
            .net
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (up, latency_ms, error) = match s.kind {
                    ServiceKind::Icmp => (ping.up, ping.latency_ms, ping.error.clone()),
                    ServiceKind::Tcp => match (tcp.remove(&i), &ip) {
                        (Some(Ok(l)), _) => (Some(true), Some(l), None),
                        (Some(Err(e)), _) => (Some(false), None, Some(e)),
                        (None, Err(e)) => (None, None, Some(e.clone())),
                        (None, Ok(_)) => (None, None, Some("no port to connect to".into())),
                    },
                };
                ServiceResult {
                    name: s.name.clone(),
                    kind: kind_name(s.kind).into(),
                    port: s.port,
                    up,
                    latency_ms,
                    error,
                }
            })
            .collect();
        ReachResult {
            checked_ms: now_ms(),
            ping,
            services,
        }
    }

    /// Makes `result` the last of host `id`: its row, its transitions (feed, log, database).
    async fn record(&self, id: &str, result: ReachResult) {
        let changes = {
            let mut hosts = lock(&self.inner.hosts);
            let h = hosts.entry(id.to_owned()).or_default();
            if h.last
                .as_ref()
                .is_some_and(|l| l.checked_ms > result.checked_ms)
            {
                // A slower check that began earlier: the newer result stands.
                return;
            }
            let changes = transitions(id, h.last.as_ref(), &result);
            for c in &changes {
                h.recent.push_front(c.clone());
            }
            h.recent.truncate(RECENT);
            h.last = Some(result.clone());
            changes
        };
        lock(&self.inner.store).set_reach(id, Some(result.brief()));
        for c in &changes {
            if c.up {
                tracing::info!(host = %id, subject = %c.subject, kind = %c.kind, "Reachability: back up.");
            } else {
                tracing::warn!(host = %id, subject = %c.subject, kind = %c.kind, error = c.error.as_deref().unwrap_or(""), "Reachability: down.");
            }
        }
        if !changes.is_empty() && self.inner.db.is_some() {
            let (me, rows) = (self.clone(), changes.clone());
            let stored = tokio::task::spawn_blocking(move || me.store_transitions(&rows)).await;
            match stored {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(host = %id, error = %e, "Reachability transitions not stored.")
                }
                Err(e) => {
                    tracing::warn!(host = %id, error = %e, "Reachability transitions not stored.")
                }
            }
        }
        self.inner.feed.publish(
            result.checked_ms,
            Body::Reach {
                host: id.to_owned(),
                result: Arc::new(result),
                changes,
            },
        );
    }

    fn store_transitions(&self, rows: &[ReachTransition]) -> rusqlite::Result<()> {
        let Some(db) = &self.inner.db else {
            return Ok(());
        };
        let c = lock(db);
        let tx = c.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO reach_events (at_ms, host, subject, up, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in rows {
                let body = serde_json::to_string(r).unwrap_or_default();
                st.execute(params![sql(r.at_ms), r.host, r.subject, r.up, body])?;
            }
            tx.execute(
                "DELETE FROM reach_events WHERE at_ms < ?1",
                [sql(now_ms().saturating_sub(RETENTION_MS))],
            )?;
        }
        tx.commit()
    }
}

/// The last [`RECENT`] stored transitions of every host, newest first per host.
fn stored_recent(c: &Connection) -> rusqlite::Result<Vec<ReachTransition>> {
    let mut st = c.prepare(
        "SELECT body FROM (SELECT body, at_ms, seq, host, row_number() OVER \
         (PARTITION BY host ORDER BY at_ms DESC, seq DESC) AS n FROM reach_events) \
         WHERE n <= ?1 ORDER BY host, at_ms DESC, seq DESC",
    )?;
    let rows = st.query_map([RECENT as i64], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for body in rows {
        if let Ok(t) = serde_json::from_str(&body?) {
            out.push(t);
        }
    }
    Ok(out)
}

fn sql(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl ReachService for Reach {
    async fn check(&self, id: &str) -> Result<ReachResult, ReachError> {
        self.check_now(id)
            .await
            .ok_or_else(|| ReachError::NotFound(format!("unknown host '{id}'")))
    }

    fn status(&self, id: &str, limit: u32) -> Result<ReachAnswer, ReachError> {
        let known = {
            let hosts = lock(&self.inner.hosts);
            hosts.get(id).map(|h| {
                let recent = h.recent.iter().take(limit as usize).cloned().collect();
                (h.last.clone(), recent)
            })
        };
        if known.is_none() && self.inner.registry.target(id).is_none() {
            return Err(ReachError::NotFound(format!("unknown host '{id}'")));
        }
        let (last, transitions) = known.unwrap_or_default();
        Ok(ReachAnswer {
            result: last,
            transitions,
        })
    }
}

/// The transitions from `prev` to `new` of host `id`: the ping, then each service present
/// in both with a known state that differs. None without `prev`.
pub fn transitions(
    id: &str,
    prev: Option<&ReachResult>,
    new: &ReachResult,
) -> Vec<ReachTransition> {
    let Some(prev) = prev else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut change = |subject: &str,
                      kind: &str,
                      was: Option<bool>,
                      now: Option<bool>,
                      error: &Option<String>| {
        if let (Some(a), Some(b)) = (was, now)
            && a != b
        {
            out.push(ReachTransition {
                at_ms: new.checked_ms,
                host: id.to_owned(),
                subject: subject.to_owned(),
                kind: kind.to_owned(),
                up: b,
                error: if b { None } else { error.clone() },
            });
        }
    };
    change(PING, PING, prev.ping.up, new.ping.up, &new.ping.error);
    for s in &new.services {
        if let Some(p) = prev.services.iter().find(|p| p.name == s.name) {
            change(&s.name, &s.kind, p.up, s.up, &s.error);
        }
    }
    out
}

/// This host's offset in the interval: stable per host, spread over 90 % of it.
fn spread(id: &str, interval: Duration) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    let span = (interval.as_millis() as u64).saturating_mul(9) / 10;
    Duration::from_millis(h.finish() % span.max(1))
}

/// The host of `host:port` (`[v6]:port`, or a bare host).
pub fn host_part(address: &str) -> &str {
    let host = match address.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => h,
        _ => address,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `name` as an address: parsed, or looked up (the first address) within [`TIMEOUT`].
async fn resolve(name: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ip);
    }
    match tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((name, 0))).await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| format!("'{name}' has no address")),
        Ok(Err(e)) => Err(format!("'{name}' cannot be resolved: {e}")),
        Err(_) => Err(format!("'{name}' cannot be resolved: no answer within 2 s")),
    }
}

/// A TCP connect to `addr` within [`TIMEOUT`]: the time it took (ms), or why it failed.
pub async fn connect(addr: std::net::SocketAddr) -> Result<f64, String> {
    let started = Instant::now();
    match tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_stream)) => Ok(ms(started.elapsed())),
        Ok(Err(e)) => Err(connect_error(&e)),
        Err(_) => Err(NO_ANSWER.into()),
    }
}

const NO_ANSWER: &str = "no answer within 2 s";

/// Why a connect failed, as a sentence.
pub fn connect_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::TimedOut => NO_ANSWER.into(),
        K::HostUnreachable => "no route to host".into(),
        K::NetworkUnreachable => "network unreachable".into(),
        K::ConnectionReset => "connection reset".into(),
        K::AddrNotAvailable => "address not available".into(),
        _ => e.to_string(),
    }
}

/// Why a ping failed, as a sentence.
fn ping_error(e: &surge_ping::SurgeError) -> String {
    match e {
        surge_ping::SurgeError::Timeout { .. } => NO_ANSWER.into(),
        surge_ping::SurgeError::IOError(io) => connect_error(io),
        other => other.to_string(),
    }
}

/// What a result's ping says when no ICMP socket can be opened.
pub fn no_ping_message(gid: Option<u32>) -> String {
    match gid {
        Some(g) => {
            format!("ping needs net.ipv4.ping_group_range to include gid {g} or CAP_NET_RAW")
        }
        None => {
            "ping needs net.ipv4.ping_group_range to include the process's group or CAP_NET_RAW"
                .into()
        }
    }
}

/// The process's effective group (the owner group of `/proc/self`).
fn gid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.gid())
}

fn kind_name(k: ServiceKind) -> &'static str {
    match k {
        ServiceKind::Tcp => "tcp",
        ServiceKind::Icmp => "icmp",
    }
}

/// A duration in ms, three decimals.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(at: u64, ping: Option<bool>, svcs: &[(&str, Option<bool>)]) -> ReachResult {
        ReachResult {
            checked_ms: at,
            ping: PingResult {
                up: ping,
                error: (ping == Some(false)).then(|| NO_ANSWER.to_owned()),
                ..Default::default()
            },
            services: svcs
                .iter()
                .map(|(n, up)| ServiceResult {
                    name: (*n).into(),
                    kind: "tcp".into(),
                    port: Some(22),
                    up: *up,
                    error: (*up == Some(false)).then(|| "connection refused".to_owned()),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn the_host_page_list_is_read_from_the_database_once_newest_first_per_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("smon.db");
        let c = smon_history::db::open_writer(&path).expect("db");
        let row = |host: &str, at: u64, up: bool| ReachTransition {
            at_ms: at,
            host: host.into(),
            subject: PING.into(),
            kind: "icmp".into(),
            up,
            error: None,
        };
        let mut st = c
            .prepare("INSERT INTO reach_events (at_ms, host, subject, up, body) VALUES (?1, ?2, ?3, ?4, ?5)")
            .expect("prepare");
        for i in 0..60u64 {
            let t = row("c:a", 1000 + i, i % 2 == 0);
            st.execute(params![
                sql(t.at_ms),
                t.host,
                t.subject,
                t.up,
                serde_json::to_string(&t).expect("json")
            ])
            .expect("insert");
        }
        let t = row("c:b", 5, false);
        st.execute(params![
            sql(t.at_ms),
            t.host,
            t.subject,
            t.up,
            serde_json::to_string(&t).expect("json")
        ])
        .expect("insert");
        drop(st);
        let got = stored_recent(&c).expect("read");
        let a: Vec<u64> = got
            .iter()
            .filter(|t| t.host == "c:a")
            .map(|t| t.at_ms)
            .collect();
        assert_eq!(a.len(), RECENT, "at most RECENT per host");
        assert_eq!(a.first(), Some(&1059), "newest first");
        assert_eq!(a.last(), Some(&(1060 - RECENT as u64)));
        assert_eq!(got.iter().filter(|t| t.host == "c:b").count(), 1);
    }

    #[test]
    fn the_first_result_is_no_transition_and_changes_are() {
        let a = result(1, Some(true), &[("ssh", Some(true)), ("web", Some(false))]);
        assert!(transitions("c:h", None, &a).is_empty());
        assert!(transitions("c:h", Some(&a), &a).is_empty());
        let b = result(
            2,
            Some(false),
            &[
                ("ssh", Some(false)),
                ("web", Some(true)),
                ("new", Some(false)),
            ],
        );
        let t = transitions("c:h", Some(&a), &b);
        let got: Vec<(&str, bool, Option<&str>)> = t
            .iter()
            .map(|t| (t.subject.as_str(), t.up, t.error.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ping", false, Some(NO_ANSWER)),
                ("ssh", false, Some("connection refused")),
                ("web", true, None),
            ]
        );
        assert!(t.iter().all(|t| t.at_ms == 2 && t.host == "c:h"));
        // A ping that could not be sent is no transition either way.
        let c = result(3, None, &[("ssh", Some(false))]);
        assert!(transitions("c:h", Some(&b), &c).is_empty());
    }

    #[test]
    fn host_parts_and_offsets() {
        assert_eq!(host_part("10.0.0.1:50051"), "10.0.0.1");
        assert_eq!(host_part("[::1]:50051"), "::1");
        assert_eq!(host_part("node7.lan:50051"), "node7.lan");
        assert_eq!(host_part("node7.lan"), "node7.lan");
        let i = Duration::from_secs(30);
        let o = spread("lab:a", i);
        assert!(o < Duration::from_secs(27));
        assert_eq!(o, spread("lab:a", i), "stable per host");
        let offsets: std::collections::HashSet<Duration> =
            (0..20).map(|n| spread(&format!("lab:h{n}"), i)).collect();
        assert!(offsets.len() > 15, "spread over the interval: {offsets:?}");
    }

    #[test]
    fn errors_read_as_sentences() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            connect_error(&Error::from(ErrorKind::ConnectionRefused)),
            "connection refused"
        );
        assert_eq!(
            connect_error(&Error::from(ErrorKind::HostUnreachable)),
            "no route to host"
        );
        assert_eq!(connect_error(&Error::from(ErrorKind::TimedOut)), NO_ANSWER);
        assert_eq!(
            ping_error(&surge_ping::SurgeError::Timeout {
                seq: surge_ping::PingSequence(1)
            }),
            NO_ANSWER
        );
        assert_eq!(
            no_ping_message(Some(1000)),
            "ping needs net.ipv4.ping_group_range to include gid 1000 or CAP_NET_RAW"
        );
        assert_eq!(ms(Duration::from_micros(1234)), 1.234);
    }
}
