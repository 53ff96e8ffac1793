//! What the HTTP side shares ([`Web`]): the store, who watches which host ([`Demand`]), the
//! health counters and the security state. Below the handlers and the hub, above the store and
//! the security policy: nothing here serves a request.
//!
//! Pollers read [`Demand`] to ask their agent for the detail parts only while a browser looks at
//! that host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use socketioxide::SocketIo;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::metrics::Telemetry;
use crate::security::{Class, Principal, Security};
use crate::store::ClusterStore;

/// The remote-write targets' state, asked at each `GET /api/v1/admin/storage` (the aggregator's
/// remote-write queues live outside the database).
pub type RemoteWriteStatsFn =
    Arc<dyn Fn() -> Vec<smon_api::history::RemoteWriteStats> + Send + Sync>;

/// How many browsers watch each host, and a channel per host that says whether anyone does.
#[derive(Clone, Default)]
pub struct Demand {
    inner: Arc<Mutex<Watchers>>,
}

/// Per host: how many sockets watch it, how many of each [`Class`], and the channel pollers
/// read.
type Watchers = HashMap<String, (usize, [usize; 3], watch::Sender<bool>)>;

impl Demand {
    fn lock(&self) -> MutexGuard<'_, Watchers> {
        // A poisoned lock only means a panic elsewhere mid-update of a counter; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that is `true` while at least one browser watches `id`.
    pub fn subscribe(&self, id: &str) -> watch::Receiver<bool> {
        self.lock()
            .entry(id.to_owned())
            .or_insert_with(|| (0, [0; 3], watch::channel(false).0))
            .2
            .subscribe()
    }

    /// Whether anyone watches `id`.
    pub fn is_watched(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|(n, _, _)| *n > 0)
    }

    /// Which classes of visitor watch `id`.
    pub fn classes(&self, id: &str) -> Vec<Class> {
        self.lock()
            .get(id)
            .map(|(_, per, _)| {
                Class::ALL
                    .into_iter()
                    .filter(|c| per[c.index()] > 0)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A socket of `class` started watching `id`.
    pub(crate) fn add(&self, id: &str, class: Class) {
        let mut m = self.lock();
        let e = m
            .entry(id.to_owned())
            .or_insert_with(|| (0, [0; 3], watch::channel(false).0));
        e.0 += 1;
        e.1[class.index()] += 1;
        if e.0 == 1 {
            e.2.send_replace(true);
        }
    }

    /// A socket of `class` stopped watching `id`.
    pub(crate) fn remove(&self, id: &str, class: Class) {
        let mut m = self.lock();
        if let Some(e) = m.get_mut(id) {
            e.0 = e.0.saturating_sub(1);
            e.1[class.index()] = e.1[class.index()].saturating_sub(1);
            if e.0 == 0 {
                e.2.send_replace(false);
                // Nobody watches and no poller listens (its host was removed): forget it.
                if e.2.receiver_count() == 0 {
                    m.remove(id);
                }
            }
        }
    }

    /// Forgets `id` once its host is gone from the fleet, unless a browser still watches it
    /// (its page says the host was removed; [`Demand::remove`] forgets it when that page
    /// goes). Without this, every host ever removed would keep an entry.
    pub fn forget(&self, id: &str) {
        let mut m = self.lock();
        if m.get(id).is_some_and(|(n, _, _)| *n == 0) {
            m.remove(id);
        }
    }

    /// How many hosts have an entry (watched, or polled).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no host has an entry.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Everything the HTTP side shares.
pub struct Web {
    /// The store the pollers feed.
    pub store: Arc<Mutex<ClusterStore>>,
    /// Who watches which host.
    pub demand: Demand,
    /// Health counters for `/metrics` (connected browsers here; poll errors and latency in the
    /// aggregator's pollers).
    pub telemetry: Telemetry,
    /// `app` or `node`.
    pub mode: &'static str,
    /// When the hub last ran (ms since the epoch), for `/healthz`: a frozen hub means a frozen
    /// live view, which the manager must see.
    pub hub_tick_ms: std::sync::atomic::AtomicU64,
    /// Users, sessions, allow-lists.
    pub security: Arc<Security>,
    /// The stored history behind the history routes (`web/PROTOCOL.md`, "History"); `None`
    /// when history is off (those routes answer 503). Set with [`Web::with_history`].
    #[cfg(feature = "database")]
    pub history: Option<Arc<dyn smon_history::History>>,
    /// The remote-write targets' state for the admin storage page; set with
    /// [`Web::with_remote_write`].
    pub remote_write: Option<RemoteWriteStatsFn>,
    /// The server's alerting behind the alert routes (`web/PROTOCOL.md`, "Alerts"); `None`
    /// when it runs none (those routes answer 503). Set with [`Web::with_alerts`].
    pub alerts: Option<Arc<dyn crate::alerting::AlertsService>>,
    /// The server's reachability checker behind the reachability routes (`web/PROTOCOL.md`,
    /// "Reachability"); `None` when it runs none (503). Set with [`Web::with_reach`].
    pub reach: Option<Arc<dyn crate::reachability::ReachService>>,
    /// The server's actions on hosts behind the action routes (`web/PROTOCOL.md`,
    /// "Actions"); `None` when it has none (the agent's own view: those routes answer 503).
    /// Set with [`Web::with_actions`].
    pub actions: Option<Arc<dyn crate::acting::ActionsService>>,
    /// The server's control of supervisord programs and processes behind the program routes
    /// (`web/PROTOCOL.md`, "Programs and signals"); `None` when it has none (503). Set with
    /// [`Web::with_programs`].
    pub programs: Option<Arc<dyn crate::acting::ProgramsService>>,
    /// The server's declared applications behind the applications routes
    /// (`web/PROTOCOL.md`, "Applications"); `None` when it has none (the fleet's programs are
    /// still listed). Set with [`Web::with_applications`].
    pub applications: Option<Arc<dyn crate::acting::ApplicationsService>>,
    /// The server's inventory behind the inventory routes (`docs/protocol-inventory.md`);
    /// `None` when it has none (the agent's own view: those routes answer 503). Set with
    /// [`Web::with_inventory`].
    pub inventory: Option<Arc<dyn crate::inventory::InventoryService>>,
    /// The Socket.IO handle, once the router is built (to close a session's sockets).
    pub(crate) io: OnceLock<SocketIo>,
}

impl Web {
    /// Shared state over `store` for a daemon in `mode` (`app` or `node`), guarded by
    /// `security`.
    pub fn new(
        store: Arc<Mutex<ClusterStore>>,
        mode: &'static str,
        security: Arc<Security>,
    ) -> Self {
        Self {
            store,
            demand: Demand::default(),
            telemetry: Telemetry::default(),
            mode,
            hub_tick_ms: std::sync::atomic::AtomicU64::new(now_ms()),
            security,
            #[cfg(feature = "database")]
            history: None,
            remote_write: None,
            alerts: None,
            reach: None,
            actions: None,
            programs: None,
            applications: None,
            inventory: None,
            io: OnceLock::new(),
        }
    }

    /// Serves `actions` on the action routes (before the state is shared).
    pub fn with_actions(mut self, actions: Arc<dyn crate::acting::ActionsService>) -> Self {
        self.actions = Some(actions);
        self
    }

    /// Serves `applications` on the applications routes (before the state is shared).
    pub fn with_applications(
        mut self,
        applications: Arc<dyn crate::acting::ApplicationsService>,
    ) -> Self {
        self.applications = Some(applications);
        self
    }

    /// Serves `programs` on the program routes (before the state is shared).
    pub fn with_programs(mut self, programs: Arc<dyn crate::acting::ProgramsService>) -> Self {
        self.programs = Some(programs);
        self
    }

    /// Serves `inventory` on the inventory routes (before the state is shared).
    pub fn with_inventory(
        mut self,
        inventory: Arc<dyn crate::inventory::InventoryService>,
    ) -> Self {
        self.inventory = Some(inventory);
        self
    }

    /// Serves `alerts` on the alert routes (before the state is shared).
    pub fn with_alerts(mut self, alerts: Arc<dyn crate::alerting::AlertsService>) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Serves `reach` on the reachability routes (before the state is shared).
    pub fn with_reach(mut self, reach: Arc<dyn crate::reachability::ReachService>) -> Self {
        self.reach = Some(reach);
        self
    }

    /// Serves `history` on the history routes (before the state is shared:
    /// `Arc::new(Web::new(..).with_history(h))`).
    #[cfg(feature = "database")]
    pub fn with_history(mut self, history: Arc<dyn smon_history::History>) -> Self {
        self.history = Some(history);
        self
    }

    /// Reports the remote-write targets' state on the admin storage page.
    pub fn with_remote_write(mut self, stats: RemoteWriteStatsFn) -> Self {
        self.remote_write = Some(stats);
        self
    }

    /// Closes every live socket of the session `id` (at logout).
    pub fn disconnect_session(&self, id: &str) {
        let Some(io) = self.io.get() else { return };
        for s in io.sockets() {
            let mine = s
                .extensions
                .get::<Principal>()
                .is_some_and(|p| matches!(&p, Principal::User { session, .. } if session == id));
            if mine {
                let _ = s.disconnect();
            }
        }
    }

    /// Locks the store. Never held across an `.await`.
    pub fn store(&self) -> MutexGuard<'_, ClusterStore> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sampling interval.
    pub(crate) fn interval_ms(&self) -> u64 {
        self.store().config().interval_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_removed_hosts_are_forgotten_once_nobody_watches() {
        let d = Demand::default();
        let poller = d.subscribe("lab:a");
        d.add("lab:a", Class::Full);
        assert!(d.is_watched("lab:a") && *poller.borrow());
        // The host is removed while its page is open: the entry stays for that page.
        drop(poller);
        d.forget("lab:a");
        assert_eq!(d.len(), 1);
        // The page goes: nobody watches, no poller listens.
        d.remove("lab:a", Class::Full);
        assert!(d.is_empty());

        // Removed with nobody watching: gone at once; a host added again starts afresh.
        let poller = d.subscribe("lab:b");
        drop(poller);
        d.forget("lab:b");
        assert!(d.is_empty());
        let poller = d.subscribe("lab:b");
        d.add("lab:b", Class::Viewer);
        assert!(*poller.borrow());
        // A polled host nobody watches any more keeps its entry (its poller still listens).
        d.remove("lab:b", Class::Viewer);
        assert_eq!(d.len(), 1);
        assert!(!*poller.borrow());
    }
}
