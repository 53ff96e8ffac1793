//! The live fleet registry: which agents are polled, changed while the aggregator runs.
//!
//! Each host has its own poller task with its own cancellation (a child of the server's), and
//! its own command link ([`crate::link`]). [`Registry::apply`] takes the wanted fleet and
//! changes only the difference: a new host gets a store row and a poller; a removed one loses
//! both (REST, `/metrics` and open pages follow the store); a host whose connection settings
//! changed (address, token, TLS) gets a fresh poller and keeps its row, state and history; a
//! host whose tags alone changed keeps its poller. Every change is published on the event
//! feed ([`RegistryChange`]).
//!
//! A host without an agent (its `address` empty: a printer, a NAS, a switch) is in the
//! registry too, so that reachability checks and Wake-on-LAN find it ([`Registry::ids`],
//! [`Registry::target`]), with a `pending` store row and no poller: never aged to `down`.
//!
//! Hosts are kept in configuration order and found by id through a hash index (an
//! [`IndexMap`]): the reachability checks, the command link and the remote-write labels look a
//! host up on every use, and a scan formatting every id was quadratic at fleet scale.
//!
//! A `Registry` is a handle made by the server it belongs to (no process-wide state), so that
//! a replicated registry can later feed the same operations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use indexmap::IndexMap;

use smon_web::hub::{Demand, now_ms};
use smon_web::metrics::Telemetry;
use smon_web::store::ClusterStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Target;
use crate::feed::{Body, Feed, RegistryChange};
use crate::link::{AgentLink, LinkError, LinkSlot};
use crate::poller::{self, Poll};

/// What pollers share: where they publish, who watches, the timing, and the task tree.
#[derive(Clone)]
pub struct Context {
    /// The store (rows are added and removed here; samples go through the feed).
    pub store: Arc<Mutex<ClusterStore>>,
    /// Who watches which host (pollers ask for the detail parts then).
    pub demand: Demand,
    /// Poll counters for `/metrics`.
    pub telemetry: Telemetry,
    /// The event feed.
    pub feed: Feed,
    /// Interval asked of agents.
    pub interval: Duration,
    /// A silent stream counts as failed after this long.
    pub down_after: Duration,
    /// Fetch each host's top processes this often, for the history (`None`: history off).
    pub processes_every: Option<Duration>,
    /// Whether the alert rules need a host's whole process list (`process_missing`): its
    /// per-minute process fetch then asks for it ([`crate::poller::ProcessNeeds`]).
    pub process_needs: Option<crate::poller::ProcessNeeds>,
    /// Whether the alert rules need every container of a host (`container_down`,
    /// `container_memory_percent`): its live stream then asks for them (`Parts.containers`).
    pub container_needs: Option<crate::poller::ProcessNeeds>,
    /// Tracks the poller tasks (shutdown waits for them).
    pub tracker: TaskTracker,
    /// The server's cancellation; each poller gets a child of it.
    pub stop: CancellationToken,
}

/// Why the registry refused a change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// Adding a host that is already there.
    #[error("host '{0}' is already in the fleet")]
    Exists(String),
    /// Changing or removing a host that is not there.
    #[error("unknown host '{0}'")]
    Unknown(String),
}

/// What [`Registry::update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Nothing differed.
    Unchanged,
    /// Only the tags differed: the store row changed, the poller went on.
    Retagged,
    /// The address, token or TLS differed: the poller restarted.
    Reconnected,
}

/// What [`Registry::apply`] changed, by host id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// New hosts.
    pub added: Vec<String>,
    /// Hosts gone.
    pub removed: Vec<String>,
    /// Hosts whose poller restarted (address, token or TLS changed).
    pub reconnected: Vec<String>,
    /// Hosts whose tags alone changed.
    pub retagged: Vec<String>,
    /// How many hosts stayed as they were.
    pub unchanged: usize,
}

impl Applied {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.reconnected.is_empty()
            && self.retagged.is_empty()
    }
}

struct Entry {
    target: Target,
    /// Stops this host's poller alone.
    cancel: CancellationToken,
    link: LinkSlot,
    /// Which poller of this host this is (1 for the first; a restart adds one).
    generation: u64,
}

struct Inner {
    ctx: Context,
    /// By host id (`cluster/name`), in configuration order.
    hosts: Mutex<IndexMap<String, Entry>>,
    pollers_started: AtomicU64,
}

/// The fleet being polled: a cheap handle, shared by the server, the reload task and tests.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("hosts", &self.ids())
            .finish_non_exhaustive()
    }
}

/// Whether two targets connect the same way (address, token, TLS).
fn same_connection(a: &Target, b: &Target) -> bool {
    a.address == b.address && a.token == b.token && a.tls == b.tls
}

impl Registry {
    /// An empty fleet over `ctx`. Its store rows of polled hosts come and go with
    /// [`Registry::add`] and [`Registry::remove`].
    pub fn new(ctx: Context) -> Self {
        Self {
            inner: Arc::new(Inner {
                ctx,
                hosts: Mutex::new(IndexMap::new()),
                pollers_started: AtomicU64::new(0),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, IndexMap<String, Entry>> {
        // Every change is made whole before the guard drops (the map is only inserted into,
        // replaced in or removed from); a panic elsewhere leaves it consistent.
        self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn store(&self) -> MutexGuard<'_, ClusterStore> {
        self.inner
            .ctx
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, change: RegistryChange) {
        self.inner
            .ctx
            .feed
            .publish(now_ms(), Body::Registry(change));
    }

    /// Starts the poller of `target`; returns its cancellation and link. A host without an
    /// agent gets neither poller nor link (its row stays `pending`: never aged, never down).
    fn spawn(&self, target: &Target) -> (CancellationToken, LinkSlot) {
        let ctx = &self.inner.ctx;
        let cancel = ctx.stop.child_token();
        let link = LinkSlot::default();
        if !target.has_agent() {
            return (cancel, link);
        }
        let id = target.spec.id();
        ctx.tracker.spawn(poller::run(
            Poll {
                target: target.clone(),
                feed: ctx.feed.clone(),
                link: link.clone(),
                demand: ctx.demand.subscribe(&id),
                interval: ctx.interval,
                down_after: ctx.down_after,
                metrics: ctx
                    .telemetry
                    .poller(&target.spec.cluster, &target.spec.name),
                processes_every: ctx.processes_every,
                process_needs: ctx.process_needs.clone(),
                container_needs: ctx.container_needs.clone(),
            },
            cancel.clone(),
        ));
        self.inner.pollers_started.fetch_add(1, Ordering::Relaxed);
        (cancel, link)
    }

    /// Adds a host: a `pending` store row, then its poller.
    pub fn add(&self, target: Target) -> Result<(), RegistryError> {
        let id = target.spec.id();
        let mut hosts = self.lock();
        if hosts.contains_key(&id) || !self.store_add(&target) {
            return Err(RegistryError::Exists(id));
        }
        let (cancel, link) = self.spawn(&target);
        let address = target.address.clone();
        hosts.insert(
            id.clone(),
            Entry {
                target,
                cancel,
                link,
                generation: 1,
            },
        );
        drop(hosts);
        tracing::info!(host = %id, address = %address, "Host added.");
        self.publish(RegistryChange::Added { host: id, address });
        Ok(())
    }

    fn store_add(&self, target: &Target) -> bool {
        self.store().add_host(target.spec.clone(), now_ms())
    }

    /// Removes a host: stops its poller and drops its row, state and history.
    pub fn remove(&self, id: &str) -> Result<(), RegistryError> {
        let mut hosts = self.lock();
        // `shift_remove` keeps the others in configuration order.
        let e = hosts
            .shift_remove(id)
            .ok_or_else(|| RegistryError::Unknown(id.to_owned()))?;
        e.cancel.cancel();
        self.store().remove_host(id);
        self.inner.ctx.demand.forget(id);
        // `/metrics` follows: the host's poll series go, and its cluster's with its last host.
        let spec = &e.target.spec;
        let telemetry = &self.inner.ctx.telemetry;
        telemetry.forget_host(&spec.cluster, &spec.name);
        if !hosts
            .values()
            .any(|o| o.target.spec.cluster == spec.cluster)
        {
            telemetry.forget_cluster(&spec.cluster);
        }
        drop(hosts);
        tracing::info!(host = %id, "Host removed.");
        self.publish(RegistryChange::Removed {
            host: id.to_owned(),
        });
        Ok(())
    }

    /// Changes a known host (same cluster and name): a new address, token or TLS restarts its
    /// poller; new tags only change its row. Its state and history stay.
    pub fn update(&self, target: Target) -> Result<Update, RegistryError> {
        let id = target.spec.id();
        let mut hosts = self.lock();
        let e = hosts
            .get_mut(&id)
            .ok_or_else(|| RegistryError::Unknown(id.clone()))?;
        if e.target.has_agent() != target.has_agent() {
            // An agent added to a host or taken from it: its row starts afresh (a row aged
            // by a poller must not stay `down` without one).
            drop(hosts);
            self.remove(&id)?;
            self.add(target).map_err(|_| RegistryError::Unknown(id))?;
            return Ok(Update::Reconnected);
        }
        let what = if !same_connection(&e.target, &target) {
            Update::Reconnected
        } else if e.target.spec != target.spec {
            Update::Retagged
        } else {
            // Its control token or network identity (MAC, services) may have changed: kept
            // for the next action or check, with no poller change.
            e.target = target;
            return Ok(Update::Unchanged);
        };
        self.store().update_spec(target.spec.clone());
        let change = if what == Update::Reconnected {
            e.cancel.cancel();
            let (cancel, link) = self.spawn(&target);
            e.cancel = cancel;
            e.link = link;
            e.generation += 1;
            tracing::info!(host = %id, address = %target.address, "Host's connection settings changed; reconnecting.");
            RegistryChange::Reconnected {
                host: id,
                address: target.address.clone(),
            }
        } else {
            tracing::info!(host = %id, "Host's tags changed.");
            RegistryChange::Retagged {
                host: id,
                tags: target.spec.tags.clone(),
            }
        };
        e.target = target;
        drop(hosts);
        self.publish(change);
        Ok(what)
    }

    /// Makes the fleet `targets`: adds, changes and removes only what differs.
    pub fn apply(&self, targets: Vec<Target>) -> Applied {
        let mut out = Applied::default();
        let wanted: std::collections::HashSet<String> =
            targets.iter().map(|t| t.spec.id()).collect();
        for id in self.ids() {
            if !wanted.contains(&id) && self.remove(&id).is_ok() {
                out.removed.push(id);
            }
        }
        for t in targets {
            let id = t.spec.id();
            match self.update(t.clone()) {
                Ok(Update::Unchanged) => out.unchanged += 1,
                Ok(Update::Retagged) => out.retagged.push(id),
                Ok(Update::Reconnected) => out.reconnected.push(id),
                Err(RegistryError::Unknown(_)) => match self.add(t) {
                    Ok(()) => out.added.push(id),
                    Err(e) => tracing::warn!(host = %id, error = %e, "Host not added."),
                },
                Err(e) => tracing::warn!(host = %id, error = %e, "Host not changed."),
            }
        }
        out
    }

    /// The ids of the polled hosts, in configuration order.
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The target of host `id`.
    pub fn target(&self, id: &str) -> Option<Target> {
        self.lock().get(id).map(|e| e.target.clone())
    }

    /// Which poller of host `id` runs now: 1 for the first, one more per restart.
    pub fn generation(&self, id: &str) -> Option<u64> {
        self.lock().get(id).map(|e| e.generation)
    }

    /// Pollers started since the registry was made (restarts included).
    pub fn pollers_started(&self) -> u64 {
        self.inner.pollers_started.load(Ordering::Relaxed)
    }

    /// The command link to host `id`: its poller's channel, while it is connected.
    pub fn link(&self, id: &str) -> Result<AgentLink, LinkError> {
        let slot = self
            .lock()
            .get(id)
            .map(|e| e.link.clone())
            .ok_or_else(|| LinkError::UnknownHost(id.to_owned()))?;
        slot.borrow(id)
    }

    /// The event feed the registry publishes on.
    pub fn feed(&self) -> &Feed {
        &self.inner.ctx.feed
    }
}
