//! The event feed: what happens to the fleet, as values with a sequence number and a time,
//! published to any number of consumers.
//!
//! Pollers publish what they get from agents ([`Body::Connected`], [`Body::Sample`],
//! [`Body::Unreachable`], and once a minute [`Body::Processes`]); the store consumer ([`run_store`]) applies those to the cluster
//! store, which the hub reads, and publishes the host state changes that result
//! ([`Body::State`]) and the supervisord program state changes the samples show
//! ([`Body::Program`], [`ProgramWatch`]); the registry publishes fleet changes
//! ([`Body::Registry`]); the reachability checker its results and transitions
//! ([`Body::Reach`]); the applications reconciler what it decided ([`Body::Application`]).
//!
//! Every consumer has its own bounded queue. Publishing never waits: an event that does not
//! fit a consumer's queue is dropped for that consumer alone and counted
//! ([`Feed::consumers`]), so a slow or dead consumer never holds up the pollers, the store or
//! the other consumers. Events are shared (`Arc`), not copied per consumer; they serialize as
//! JSON (`serde`), so that a later bus between aggregators can carry them unchanged.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use smon_proto::{HostInfo, Snapshot};
use smon_web::metrics::{FeedCounters, Telemetry};
use smon_web::store::ClusterStore;
use smon_web::wire::Status;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Sequence number: strictly increasing in publication order, from 1.
    pub seq: u64,
    /// When it happened (ms since the epoch, this server's clock).
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: Body,
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// A poller reached its agent, which gave its host facts.
    Connected {
        /// Host id (`cluster:name`).
        host: String,
        /// The facts.
        info: Arc<HostInfo>,
    },
    /// A sample of a host.
    Sample {
        /// Host id.
        host: String,
        /// The sample (summary parts, or the detail while a browser watches the host).
        snapshot: Arc<Snapshot>,
    },
    /// A host's top processes (by CPU and by memory) and its GPU processes, fetched once a
    /// minute for the history (`Parts.top_processes`).
    Processes {
        /// Host id.
        host: String,
        /// The sample with the top processes and the GPU processes.
        snapshot: Arc<Snapshot>,
    },
    /// Polling a host failed; its poller backs off and retries.
    Unreachable {
        /// Host id.
        host: String,
        /// Why, as the host row shows it.
        error: String,
    },
    /// A host's state changed (pending, up, stale, down).
    State {
        /// Host id.
        host: String,
        /// The state before.
        from: Status,
        /// The state now.
        to: Status,
        /// Why (the error of a host going down), when known.
        reason: Option<String>,
    },
    /// The fleet changed.
    Registry(RegistryChange),
    /// An alert fired or resolved (published by the alerts consumer, [`crate::alerts`]; the
    /// alert history's events). The alert's `id` names it; the event's time is when it
    /// fired or resolved.
    Alert {
        /// The alert, with its status now.
        alert: Arc<smon_api::alerts::Alert>,
    },
    /// A reachability check of a host ended (published by the checker, [`crate::reach`],
    /// every `monitor.reach_interval_s` and on demand): its result, and the transitions it
    /// saw against the host's previous result (a service or the ping going down or back up;
    /// none for the host's first result). The alerts consumer evaluates `service_down`
    /// rules on it.
    Reach {
        /// Host id.
        host: String,
        /// What the check found.
        result: Arc<smon_api::reach::ReachResult>,
        /// The transitions, ping first, then services in configuration order.
        changes: Vec<smon_api::reach::ReachTransition>,
    },
    /// A supervisord program of a host changed state, as a sample shows it against the
    /// host's previous sample (published by the store consumer; none for a host's first
    /// sample with programs, nor for a program that appears or disappears).
    Program {
        /// Host id.
        host: String,
        /// The program, `group:name`.
        program: String,
        /// supervisord's state before (`RUNNING`, `STOPPED`, `FATAL`...).
        from: String,
        /// Its state now.
        to: String,
        /// The exit status of its last run (0 when it has not exited).
        exit_status: i32,
        /// Why it could not be spawned (empty otherwise).
        spawnerr: String,
        /// supervisord's description, e.g. "Exited too quickly (process log may have details)".
        description: String,
    },
    /// A declared application's decision (published by the reconciler,
    /// [`crate::applications`]): an instance started or stopped, or nothing could be done.
    Application {
        /// The application's name.
        name: String,
        /// The decision and how it went.
        decision: smon_api::applications::Decision,
        /// Why the application cannot run as declared now; `None` when all is well (an
        /// `application_degraded` alert fires while it is `Some`).
        problem: Option<String>,
    },
}

/// A change of the fleet.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum RegistryChange {
    /// A host was added (its poller started).
    Added {
        /// Host id.
        host: String,
        /// Its agent's address.
        address: String,
    },
    /// A host's connection settings changed (address, token or TLS): its poller restarted.
    Reconnected {
        /// Host id.
        host: String,
        /// Its agent's address now.
        address: String,
    },
    /// A host's tags changed (its poller goes on).
    Retagged {
        /// Host id.
        host: String,
        /// The tags now.
        tags: Vec<String>,
    },
    /// A host was removed (its poller stopped).
    Removed {
        /// Host id.
        host: String,
    },
}

/// Which kinds of event a consumer wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    /// [`Body::Connected`], [`Body::Sample`] and [`Body::Unreachable`]: what pollers see.
    pub const POLL: Self = Self(1);
    /// [`Body::State`].
    pub const STATE: Self = Self(2);
    /// [`Body::Registry`].
    pub const REGISTRY: Self = Self(4);
    /// [`Body::Processes`] (once a minute per host, for the history).
    pub const PROCESSES: Self = Self(8);
    /// [`Body::Alert`].
    pub const ALERT: Self = Self(16);
    /// [`Body::Reach`].
    pub const REACH: Self = Self(32);
    /// [`Body::Program`].
    pub const PROGRAM: Self = Self(64);
    /// [`Body::Application`].
    pub const APPLICATION: Self = Self(128);
    /// Everything.
    pub const ALL: Self = Self(255);

    /// Both sets.
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    fn of(body: &Body) -> Self {
        match body {
            Body::Connected { .. } | Body::Sample { .. } | Body::Unreachable { .. } => Self::POLL,
            Body::State { .. } => Self::STATE,
            Body::Registry(_) => Self::REGISTRY,
            Body::Processes { .. } => Self::PROCESSES,
            Body::Alert { .. } => Self::ALERT,
            Body::Reach { .. } => Self::REACH,
            Body::Program { .. } => Self::PROGRAM,
            Body::Application { .. } => Self::APPLICATION,
        }
    }

    fn wants(self, kind: Self) -> bool {
        self.0 & kind.0 != 0
    }
}

/// What a consumer has received and missed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStats {
    /// The name it subscribed with.
    pub name: String,
    /// Events queued for it.
    pub delivered: u64,
    /// Events dropped because its queue was full.
    pub dropped: u64,
}

struct Consumer {
    name: String,
    kinds: Kinds,
    tx: mpsc::Sender<Arc<Event>>,
    counters: FeedCounters,
}

#[derive(Default)]
struct State {
    seq: u64,
    consumers: Vec<Consumer>,
}

/// The feed: a cheap handle, cloned into every publisher. Not a process-wide singleton: each
/// aggregator (and each test) makes its own.
#[derive(Clone, Default)]
pub struct Feed {
    state: Arc<Mutex<State>>,
    telemetry: Option<Telemetry>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("consumers", &self.consumers())
            .finish()
    }
}

/// A consumer's end of the feed. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Arc<Event>>,
    counters: FeedCounters,
}

impl Subscription {
    /// The next event; `None` once the feed is gone.
    pub async fn recv(&mut self) -> Option<Arc<Event>> {
        self.rx.recv().await
    }

    /// Waits for at least one event, then moves up to `limit` queued events into `buf`;
    /// returns how many (0 once the feed is gone).
    pub async fn recv_many(&mut self, buf: &mut Vec<Arc<Event>>, limit: usize) -> usize {
        self.rx.recv_many(buf, limit).await
    }

    /// An event if one is queued.
    pub fn try_recv(&mut self) -> Option<Arc<Event>> {
        self.rx.try_recv().ok()
    }

    /// Events dropped for this consumer so far (its queue was full).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped_total()
    }
}

impl Feed {
    /// A feed with no consumer yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A feed whose consumers' counters appear in `/metrics` through `telemetry`.
    pub fn with_telemetry(telemetry: Telemetry) -> Self {
        Self {
            state: Arc::default(),
            telemetry: Some(telemetry),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Publication holds the lock only to number the event and queue it without waiting;
        // a panic there leaves nothing half-done worth refusing to go on for.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new consumer of `kinds`, with a queue of `capacity` events, named for the counters.
    /// It sees events published from now on.
    pub fn subscribe(&self, name: &str, kinds: Kinds, capacity: usize) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        // Counted in `/metrics` (smon_feed_delivered_total, smon_feed_dropped_total) when the
        // feed was made with the server's telemetry.
        let counters = match &self.telemetry {
            Some(t) => t.feed_consumer(name),
            None => FeedCounters::default(),
        };
        self.lock().consumers.push(Consumer {
            name: name.to_owned(),
            kinds,
            tx,
            counters: counters.clone(),
        });
        Subscription { rx, counters }
    }

    /// Publishes `body` as happened at `at_ms`; returns its sequence number. Never waits: a
    /// consumer whose queue is full misses it (counted); a consumer that is gone is removed.
    pub fn publish(&self, at_ms: u64, body: Body) -> u64 {
        let kind = Kinds::of(&body);
        let mut st = self.lock();
        st.seq += 1;
        let seq = st.seq;
        if !st.consumers.iter().any(|c| c.kinds.wants(kind)) {
            return seq;
        }
        // Numbered and queued under one lock: every consumer sees events in `seq` order.
        let event = Arc::new(Event { seq, at_ms, body });
        st.consumers.retain(|c| {
            if !c.kinds.wants(kind) {
                return !c.tx.is_closed();
            }
            match c.tx.try_send(event.clone()) {
                Ok(()) => {
                    c.counters.delivered();
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let n = c.counters.dropped();
                    if n == 0 || (n + 1).is_power_of_two() {
                        tracing::warn!(consumer = %c.name, dropped = n + 1, "Event feed consumer too slow; dropping its events.");
                    }
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        seq
    }

    /// The consumers and their counters.
    pub fn consumers(&self) -> Vec<ConsumerStats> {
        self.lock()
            .consumers
            .iter()
            .map(|c| ConsumerStats {
                name: c.name.clone(),
                delivered: c.counters.delivered_total(),
                dropped: c.counters.dropped_total(),
            })
            .collect()
    }

    /// The number of the last event published.
    pub fn last_seq(&self) -> u64 {
        self.lock().seq
    }
}

/// Queue length of the store consumer: room for several seconds of samples of a large fleet
/// (a queue takes memory only as it fills).
pub const STORE_QUEUE: usize = 65_536;

/// How often the store consumer looks for state changes when no event comes (the hub's tick
/// ages hosts to stale and down).
const TRANSITIONS_EVERY: Duration = Duration::from_millis(200);

/// Most events applied under one lock of the store.
const BATCH: usize = 512;

/// The last program states seen per host, to turn samples into [`Body::Program`] changes.
#[derive(Debug, Default)]
pub struct ProgramWatch {
    /// Per host: (group, name, state) of each program, in the sample's order.
    hosts: std::collections::HashMap<String, Vec<(String, String, String)>>,
}

impl ProgramWatch {
    /// Records the programs of `snap` for `host` and returns the state changes against the
    /// host's previous sample with programs: none for the first one, none for a sample
    /// without programs (the agent reads no supervisord), none for a program that appears
    /// or disappears (supervisord's config changed; the sample shows it). A sample like the
    /// last (the usual case, every second of every host) allocates nothing.
    pub fn changes(&mut self, host: &str, snap: &Snapshot) -> Vec<Body> {
        let Some(p) = &snap.programs else {
            return Vec::new();
        };
        let seen = |p: &smon_proto::Program| (p.group.clone(), p.name.clone(), p.state.clone());
        let Some(before) = self.hosts.get_mut(host) else {
            self.hosts
                .insert(host.to_owned(), p.programs.iter().map(seen).collect());
            return Vec::new();
        };
        let same = before.len() == p.programs.len()
            && before
                .iter()
                .zip(&p.programs)
                .all(|((g, n, s), q)| *g == q.group && *n == q.name && *s == q.state);
        if same {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, prog) in p.programs.iter().enumerate() {
            // Sorted by group then name on both sides: the same index is the usual match.
            let is = |(g, n, _): &&(String, String, String)| *g == prog.group && *n == prog.name;
            let was = match before.get(i) {
                Some(b) if is(&b) => Some(&b.2),
                _ => before.iter().find(is).map(|b| &b.2),
            };
            if let Some(was) = was
                && *was != prog.state
            {
                out.push(Body::Program {
                    host: host.to_owned(),
                    program: format!("{}:{}", prog.group, prog.name),
                    from: was.clone(),
                    to: prog.state.clone(),
                    exit_status: prog.exit_status,
                    spawnerr: prog.spawnerr.clone(),
                    description: prog.description.clone(),
                });
            }
        }
        *before = p.programs.iter().map(seen).collect();
        out
    }

    /// Forgets `host` (it left the fleet).
    pub fn forget(&mut self, host: &str) {
        self.hosts.remove(host);
    }
}

/// The store consumer: applies poller events from `sub` to `store` (batched, one lock per
/// batch), and publishes the host state changes and program state changes that result on
/// `feed`, until `stop`.
pub async fn run_store(
    mut sub: Subscription,
    store: Arc<Mutex<ClusterStore>>,
    feed: Feed,
    stop: CancellationToken,
) {
    let mut buf = Vec::with_capacity(BATCH);
    let mut programs = Vec::new();
    let mut watch = ProgramWatch::default();
    let mut tick = tokio::time::interval(TRANSITIONS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            n = sub.recv_many(&mut buf, BATCH) => if n == 0 { return },
            _ = tick.tick() => {}
        }
        let transitions = {
            let mut st = store.lock().unwrap_or_else(|p| p.into_inner());
            for event in buf.drain(..) {
                match &event.body {
                    Body::Sample { host, snapshot } => {
                        for c in watch.changes(host, snapshot) {
                            programs.push((event.at_ms, c));
                        }
                    }
                    Body::Registry(RegistryChange::Removed { host }) => watch.forget(host),
                    _ => {}
                }
                apply(&mut st, event);
            }
            st.take_transitions()
        };
        for (at, body) in programs.drain(..) {
            feed.publish(at, body);
        }
        for t in transitions {
            feed.publish(
                t.at_ms,
                Body::State {
                    host: t.id,
                    from: t.from,
                    to: t.to,
                    reason: t.reason,
                },
            );
        }
    }
}

/// Applies one poller event to the store. The store keeps the sample's `Arc` (shared with the
/// history writer and the other consumers, never copied); other bodies are moved out when this
/// consumer holds the last reference, else copied.
fn apply(st: &mut ClusterStore, event: Arc<Event>) {
    let at = event.at_ms;
    let body = match Arc::try_unwrap(event) {
        Ok(e) => e.body,
        Err(shared) => shared.body.clone(),
    };
    match body {
        Body::Sample { host, snapshot } => {
            st.apply(&host, snapshot, at);
        }
        Body::Connected { host, info } => st.set_info(&host, Arc::unwrap_or_clone(info)),
        Body::Unreachable { host, error } => st.mark_down(&host, &error, at),
        Body::State { .. }
        | Body::Registry(_)
        | Body::Processes { .. }
        | Body::Alert { .. }
        | Body::Reach { .. }
        | Body::Program { .. }
        | Body::Application { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removed(n: u32) -> Body {
        Body::Registry(RegistryChange::Removed {
            host: format!("c:h{n}"),
        })
    }

    #[tokio::test]
    async fn a_full_queue_drops_for_that_consumer_only() {
        let feed = Feed::new();
        let mut slow = feed.subscribe("slow", Kinds::ALL, 2);
        let mut fast = feed.subscribe("fast", Kinds::ALL, 100);
        for n in 0..10 {
            feed.publish(1000 + u64::from(n), removed(n));
        }
        let mut seqs = Vec::new();
        while let Some(e) = fast.try_recv() {
            seqs.push(e.seq);
        }
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
        assert_eq!(slow.dropped(), 8);
        assert_eq!(fast.dropped(), 0);
        assert_eq!(slow.recv().await.map(|e| e.seq), Some(1));
        let stats = feed.consumers();
        assert_eq!(stats[0].name, "slow");
        assert_eq!((stats[0].delivered, stats[0].dropped), (2, 8));
        assert_eq!((stats[1].delivered, stats[1].dropped), (10, 0));
    }

    #[tokio::test]
    async fn kinds_filter_and_gone_consumers_are_removed() {
        let feed = Feed::new();
        let mut states = feed.subscribe("states", Kinds::STATE, 10);
        let gone = feed.subscribe("gone", Kinds::ALL, 10);
        drop(gone);
        feed.publish(1, removed(1));
        feed.publish(
            2,
            Body::State {
                host: "c:h".into(),
                from: Status::Up,
                to: Status::Down,
                reason: Some("no sample for 3 s".into()),
            },
        );
        let e = states.try_recv().expect("a state event");
        assert_eq!(e.seq, 2);
        assert!(states.try_recv().is_none());
        assert_eq!(feed.consumers().len(), 1, "the dropped subscription left");
        let json = serde_json::to_value(&*e).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"seq": 2, "at_ms": 2, "kind": "state", "host": "c:h",
                "from": "up", "to": "down", "reason": "no sample for 3 s"})
        );
    }

    fn with_programs(states: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            programs: Some(smon_proto::Programs {
                programs: states
                    .iter()
                    .map(|(n, st)| {
                        let (g, n) = n.split_once(':').unwrap_or((n, n));
                        smon_proto::Program {
                            group: g.into(),
                            name: n.into(),
                            state: (*st).into(),
                            exit_status: if *st == "EXITED" { 3 } else { 0 },
                            description: format!("{st} now"),
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn program_changes_skip_the_first_sample_and_report_each_change() {
        let mut w = ProgramWatch::default();
        let first = with_programs(&[("a:x", "RUNNING"), ("b:y", "STOPPED")]);
        assert!(w.changes("c:h", &first).is_empty(), "first sample");
        assert!(w.changes("c:h", &first).is_empty(), "nothing changed");
        assert!(
            w.changes("c:h", &Snapshot::default()).is_empty(),
            "no programs in the sample"
        );
        let next = with_programs(&[("a:new", "RUNNING"), ("a:x", "EXITED"), ("b:y", "STOPPED")]);
        let changes = w.changes("c:h", &next);
        assert_eq!(changes.len(), 1, "{changes:?}");
        let json = serde_json::to_value(Event {
            seq: 3,
            at_ms: 4,
            body: changes.into_iter().next().expect("one"),
        })
        .expect("json");
        assert_eq!(
            json,
            serde_json::json!({"seq": 3, "at_ms": 4, "kind": "program", "host": "c:h",
                "program": "a:x", "from": "RUNNING", "to": "EXITED", "exit_status": 3,
                "spawnerr": "", "description": "EXITED now"})
        );
        assert!(
            w.changes("c:other", &next).is_empty(),
            "another host's first sample"
        );
        w.forget("c:h");
        assert!(
            w.changes("c:h", &first).is_empty(),
            "forgotten: first again"
        );
    }

    #[test]
    fn registry_changes_serialize_flat() {
        let json = serde_json::to_value(Event {
            seq: 7,
            at_ms: 9,
            body: Body::Registry(RegistryChange::Added {
                host: "c:h".into(),
                address: "10.0.0.1:50051".into(),
            }),
        })
        .expect("json");
        assert_eq!(
            json,
            serde_json::json!({"seq": 7, "at_ms": 9, "kind": "registry", "change": "added",
                "host": "c:h", "address": "10.0.0.1:50051"})
        );
    }
}
