//! smon-aggregator: polls every agent of every cluster (and, optionally, its own host
//! in-process), merges the samples in the cluster store, and serves the live dashboard, the REST
//! API and Socket.IO.
//!
//! Data flows one way: pollers (one per agent, started and stopped by the [`registry`])
//! publish on the event [`feed`]; the store consumer applies the feed to the cluster store,
//! which the hub reads for the browsers, and publishes host state changes back on the feed for
//! other consumers. Each poller lends its channel as the host's command [`link`]. On SIGHUP the
//! config file is read again and the fleet follows it ([`reload`]).
//!
//! `main.rs` is thin; tests call [`run`] (or [`start`], to hold the registry and the feed) on
//! `127.0.0.1:0`.

pub mod access;
pub mod actions;
pub mod alerts;
pub mod applications;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod feed;
pub mod history;
pub mod inventory;
pub mod link;
pub mod poller;
pub mod reach;
pub mod registry;
pub mod reload;
pub mod remote_write;
pub mod start;

pub use error::Error;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use smon_collect::sampler::{PeriodicScan, first_due};
use smon_collect::{
    Collector, CollectorConfig, DetailDemand, DiskFilter, NetworkFilter, Redactor, Roots, Sampler,
};
use smon_proto::Parts;
use smon_web::hub::{self, Web, now_ms};
use smon_web::security::{Bootstrap, HttpSecurity, Security};
use smon_web::store::{ClusterStore, StoreConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::feed::{Body, Feed, Kinds};
use crate::registry::{Context, Registry};

/// Why the health probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The HTTP client could not be built.
    #[error("cannot set up the probe's HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Nothing answered in time.
    #[error("{url}: {source}")]
    Unreachable {
        /// The URL probed.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status (503: the hub has stalled).
    #[error("{url}: {status}: {body}")]
    Unhealthy {
        /// The URL probed.
        url: String,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The answer's body (the reason).
        body: String,
    },
}

/// The aggregator's health probe for `manager.mode = "self"`: `GET /healthz` answers 200
/// within 1.5 s (it answers 503 when the hub, and so the live view, has stalled).
pub async fn probe_http(url: String) -> Result<(), ProbeError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        // Our own listener on loopback: its certificate names the public host, not 127.0.0.1.
        .tls_danger_accept_invalid_certs(url.starts_with("https://"))
        .build()
        .map_err(ProbeError::Client)?;
    let resp = match client.get(&url).send().await {
        Ok(r) => r,
        Err(source) => return Err(ProbeError::Unreachable { url, source }),
    };
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let body = resp.text().await.unwrap_or_default();
        Err(ProbeError::Unhealthy { url, status, body })
    }
}

/// Says in the log how the dashboard is protected (never the password).
pub fn log_bootstrap(b: &Bootstrap, http: &HttpSecurity) {
    match b {
        Bootstrap::Users(n) => tracing::info!(
            users = n,
            public_read_only = http.auth.public_read_only,
            "Login required."
        ),
        Bootstrap::PublicOnly => {
            tracing::warn!("No users: the dashboard is public and read-only; nobody can log in.")
        }
        Bootstrap::CreatedAdmin { file, .. } => tracing::warn!(
            file = %file.display(),
            "First start: created the user 'admin' (its password: on the terminal, or in the file the line above names)."
        ),
    }
}

/// How long shutdown waits for pollers and the hub.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Runs the aggregator until `stop` is cancelled, serving HTTP on `listener`.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    stop: CancellationToken,
) -> Result<(), Error> {
    let security = prepare_security(&settings, &listener)?;
    run_secured(settings, listener, security, stop).await
}

/// Loads the users (creating the first-start `admin` on loopback) for a server on
/// `listener`. `main` calls it before dropping privileges, so the users file may stay
/// readable by root only.
pub fn prepare_security(
    settings: &Settings,
    listener: &TcpListener,
) -> Result<Arc<Security>, Error> {
    let listen = listener.local_addr().map_err(Error::LocalAddr)?;
    let (security, bootstrap) =
        Security::start(settings.http.clone(), listen).map_err(|error| Error::Security {
            file: settings.source.clone(),
            error,
        })?;
    smon_web::security::announce(&bootstrap, "smon-aggregator");
    log_bootstrap(&bootstrap, &settings.http);
    Ok(security)
}

/// [`run`] with the security state already prepared ([`prepare_security`]).
pub async fn run_secured(
    settings: Settings,
    listener: TcpListener,
    security: Arc<Security>,
    stop: CancellationToken,
) -> Result<(), Error> {
    start(settings, listener, security, stop)
        .await?
        .wait()
        .await
}

/// A running aggregator: its fleet registry and event feed, until [`Running::wait`] sees it
/// stop.
pub struct Running {
    registry: Registry,
    feed: Feed,
    remote_write: remote_write::RemoteWrite,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    tracker: TaskTracker,
    sampler: Option<Sampler>,
    history: Option<Arc<smon_history::writer::Writer>>,
    reach: reach::Reach,
    stop: CancellationToken,
}

impl Running {
    /// The reachability checker: check a host now, read its last result.
    pub fn reach(&self) -> &reach::Reach {
        &self.reach
    }

    /// The fleet: add, change and remove hosts, borrow a host's command link.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The event feed: subscribe to samples, state changes and fleet changes.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// The remote-write receivers' state (for the admin page).
    pub fn remote_write(&self) -> &remote_write::RemoteWrite {
        &self.remote_write
    }

    /// Waits until the server stops (its `stop` token, or a listener failure), then for its
    /// tasks, with a bounded grace period.
    pub async fn wait(self) -> Result<(), Error> {
        let served = match self.served.await {
            Ok(r) => r.map_err(Error::Serve),
            Err(e) => Err(Error::ServeTask(e)),
        };
        self.stop.cancel();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("Some tasks did not stop in time.");
        }
        if let Some(s) = self.sampler {
            s.stop().await;
        }
        if let Some(w) = self.history {
            // Commits the last batch: a clean stop loses no sample.
            let _ = tokio::task::spawn_blocking(move || smon_web::database::close(w)).await;
        }
        served?;
        Ok(())
    }
}

/// Starts the aggregator on `listener` (security prepared by [`prepare_security`]): the store
/// and its feed consumer, a poller per agent, the own host's sampler, the hub and the HTTP
/// server, and, when the settings came from a file, the reload on SIGHUP.
pub async fn start(
    settings: Settings,
    listener: TcpListener,
    security: Arc<Security>,
    stop: CancellationToken,
) -> Result<Running, Error> {
    let interval_ms = settings.interval.as_millis() as u64;
    let mut store_cfg = StoreConfig::for_interval(interval_ms);
    store_cfg.stale_after_ms = interval_ms * u64::from(settings.stale_after_intervals);
    store_cfg.down_after_ms = interval_ms * u64::from(settings.down_after_intervals);
    let specs = settings
        .self_host
        .iter()
        .map(|me| me.spec.clone())
        .collect();
    let store = Arc::new(Mutex::new(ClusterStore::new(specs, store_cfg, now_ms())));
    let mut web = Web::new(store.clone(), "app", security);
    // The history database: opened before anything runs, so that a storage.dir that cannot
    // be used stops the start with the reason.
    let history = match &settings.storage {
        Some(opts) => {
            let (w, writer) = smon_web::database::open(web, opts, stop.clone()).await?;
            web = w;
            // API tokens and the audit log are kept in the same file.
            let path = opts.db_path();
            let access = tokio::task::spawn_blocking(move || access::Access::open(&path))
                .await
                .unwrap_or_else(|e| Err(access::TokenError::Task(e.to_string())))
                .map_err(Error::Access)
                .inspect_err(|_| stop.cancel())?;
            let access = Arc::new(access);
            web.security.keep_tokens(access.clone());
            web.security.keep_audit(access);
            Some(writer)
        }
        None => None,
    };
    // The admin storage page shows the remote-write receivers, which start below (they need
    // the registry, which needs the shared `Web`).
    let remote_stats: Arc<std::sync::OnceLock<remote_write::RemoteWrite>> = Arc::default();
    if !settings.remote_write.is_empty() {
        let rs = remote_stats.clone();
        web = web.with_remote_write(Arc::new(move || {
            rs.get()
                .map(remote_write::RemoteWrite::stats)
                .unwrap_or_default()
        }));
    }
    let feed = Feed::with_telemetry(web.telemetry.clone());
    // Alerting lives in the database too (config: alerts need storage).
    let alerts = match (&settings.alerts, &settings.storage) {
        (Some(a), Some(opts)) => {
            let (path, a, st) = (opts.db_path(), a.clone(), store.clone());
            let al = tokio::task::spawn_blocking(move || alerts::Alerts::open(&path, &a, st))
                .await
                .map_err(alerts::StartError::from)
                .inspect_err(|_| stop.cancel())?
                .inspect_err(|_| stop.cancel())?;
            web.telemetry.add_collector(Arc::new(al.clone()));
            web = web.with_alerts(Arc::new(al.clone()));
            Some(al)
        }
        _ => None,
    };
    // The fleet: the config's hosts and those made in the UI (kept in the database).
    let inventory = {
        let (s, db) = (
            settings.clone(),
            settings.storage.as_ref().map(|o| o.db_path()),
        );
        tokio::task::spawn_blocking(move || inventory::Inventory::open(&s, db.as_deref()))
            .await
            .map_err(inventory::StartError::from)
            .and_then(|r| r)
            .inspect_err(|_| stop.cancel())?
    };
    web = web.with_inventory(Arc::new(inventory.clone()));
    let tracker = TaskTracker::new();
    let registry = Registry::new(Context {
        store: store.clone(),
        demand: web.demand.clone(),
        telemetry: web.telemetry.clone(),
        feed: feed.clone(),
        interval: settings.interval,
        down_after: Duration::from_millis(store_cfg.down_after_ms),
        processes_every: settings.storage.as_ref().map(|_| settings.processes_every),
        process_needs: alerts.clone().map(|al| {
            Arc::new(move |id: &str| al.needs_processes(id)) as crate::poller::ProcessNeeds
        }),
        container_needs: alerts.clone().map(|al| {
            Arc::new(move |id: &str| al.needs_containers(id)) as crate::poller::ProcessNeeds
        }),
        tracker: tracker.clone(),
        stop: stop.clone(),
    });
    // The reachability checker (its transitions go to the database when history is on).
    let reach = {
        let (r, f, st, every) = (
            registry.clone(),
            feed.clone(),
            store.clone(),
            settings.reach_interval,
        );
        let path = settings.storage.as_ref().map(|o| o.db_path());
        tokio::task::spawn_blocking(move || reach::Reach::new(r, f, st, every, path.as_deref()))
            .await
            .map_err(|e| Error::Reach(e.to_string()))
            .and_then(|r| r.map_err(|e| Error::Reach(format!("{e}: {}", e.0))))
            .inspect_err(|_| stop.cancel())?
    };
    web = web.with_reach(Arc::new(reach.clone()));
    let acts = actions::Actions::new(registry.clone(), reach.clone());
    web = web.with_actions(Arc::new(acts.clone()));
    web = web.with_programs(Arc::new(acts.clone()));
    let apps = applications::Applications::new(
        settings.applications.clone(),
        Arc::new(acts),
        registry.clone(),
        feed.clone(),
        Some(web.security.clone()),
    );
    if !apps.is_empty() {
        web = web.with_applications(Arc::new(apps.clone()));
        // Subscribed before the first poller starts: no sample is missed.
        let sub = feed.subscribe("applications", applications::KINDS, applications::QUEUE);
        tracker.spawn(apps.run(sub, stop.clone()));
    }
    let web = Arc::new(web);
    if let Some(al) = &alerts {
        // Subscribed before the first poller starts: no state change is missed.
        let sub = feed.subscribe("alerts", alerts::KINDS, alerts::QUEUE);
        al.start_delivery(&tracker, stop.clone());
        tracker.spawn(al.clone().run(sub, feed.clone(), stop.clone()));
    }
    if let Some(writer) = &history {
        let sub = feed.subscribe("history", history::KINDS, history::QUEUE);
        tracker.spawn(history::run(sub, writer.clone(), stop.clone()));
    }
    // The store is the feed's first consumer; the hub reads the store.
    // Fleet changes only to forget the programs of a host removed.
    let to_store = feed.subscribe(
        "store",
        Kinds::POLL.with(Kinds::REGISTRY),
        feed::STORE_QUEUE,
    );
    tracker.spawn(feed::run_store(
        to_store,
        store.clone(),
        feed.clone(),
        stop.clone(),
    ));

    inventory.attach(registry.clone());
    // Subscribed before the first poller starts: no sample is missed.
    let remote_write = remote_write::start(
        &settings.remote_write,
        &feed,
        registry.clone(),
        &web.telemetry,
        &tracker,
        &stop,
    )
    .map_err(Error::RemoteWrite)
    .inspect_err(|_| stop.cancel())?;
    let _ = remote_stats.set(remote_write.clone());
    registry.apply(inventory.fleet());
    tracker.spawn(reach.clone().run(tracker.clone(), stop.clone()));
    if let Some(al) = &alerts {
        al.sync_fleet();
    }

    let mut sampler = None;
    if let Some(me) = &settings.self_host {
        let gpu = me.gpu;
        let interval = settings.interval;
        let demand = DetailDemand::default();
        let collector_demand = demand.clone();
        let processes = settings.storage.as_ref().map(|_| {
            PeriodicScan::new(
                settings.processes_every,
                first_due(settings.processes_every, &mut rand::rng()),
                smon_history::procs::PARTS,
                demand.clone(),
                interval,
            )
        });
        let s = Sampler::start(interval, move || {
            Collector::new(CollectorConfig {
                roots: Roots::default(),
                redactor: Redactor::default(),
                disks: DiskFilter::default(),
                network: NetworkFilter {
                    exclude_interfaces: vec!["lo".into()],
                },
                gpus: smon_collect::gpus::open(gpu),
                interval,
                demand: collector_demand,
                programs: None,
                containers: None,
            })
        })
        .await
        .map_err(Error::Sampler)
        .inspect_err(|_| stop.cancel())?;
        feed.publish(
            now_ms(),
            Body::Connected {
                host: me.spec.id(),
                info: Arc::new(s.info().clone()),
            },
        );
        tracker.spawn(publish_local(
            s.subscribe(),
            me.spec.id(),
            web.clone(),
            feed.clone(),
            processes,
            stop.clone(),
        ));
        // The own host's facts change when its GPUs appear or go.
        let mut facts = s.info_watch();
        let (id, facts_feed, facts_stop) = (me.spec.id(), feed.clone(), stop.clone());
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = facts_stop.cancelled() => return,
                    c = facts.changed() => if c.is_err() { return },
                }
                let info = Arc::new(facts.borrow_and_update().clone());
                facts_feed.publish(
                    now_ms(),
                    Body::Connected {
                        host: id.clone(),
                        info,
                    },
                );
            }
        });
        sampler = Some(s);
    }

    let (app, io) = hub::router(web.clone(), &settings.base_path);
    tracker.spawn(hub::run_hub(io.clone(), web.clone(), stop.clone()));
    // Open Socket.IO connections would hold graceful shutdown up: close them on stop.
    let closer = stop.clone();
    tracker.spawn(async move {
        closer.cancelled().await;
        io.close().await;
    });
    if let Some(path) = settings.path.clone() {
        tracker.spawn(reload::on_sighup(
            path,
            settings.clone(),
            registry.clone(),
            inventory.clone(),
            alerts.clone(),
            stop.clone(),
        ));
    }
    tracker.close();

    let addr = listener
        .local_addr()
        .map_err(Error::LocalAddr)
        .inspect_err(|_| stop.cancel())?;
    let scheme = if settings.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(url = %format!("{scheme}://{addr}{}/", settings.base_path), hosts = settings.targets.len(), include_self = settings.self_host.is_some(), "Serving the dashboard.");
    let served = tokio::spawn(smon_web::serve::serve_app(
        app,
        listener,
        smon_web::serve::Options::new(&settings.http, settings.limits),
        stop.clone(),
    ));
    Ok(Running {
        registry,
        feed,
        remote_write,
        served,
        tracker,
        sampler,
        history,
        reach,
        stop,
    })
}

/// Publishes the own host's samples (in-process sampler) on the feed, with the detail parts
/// while a browser watches it, until `stop` or the sampler ends. With the history on
/// (`processes`), also its top processes every period, as the pollers fetch them from agents.
async fn publish_local(
    mut rx: smon_collect::sampler::Latest,
    id: String,
    web: Arc<Web>,
    feed: Feed,
    mut processes: Option<PeriodicScan>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
        let top = processes
            .as_mut()
            .and_then(|p| rx.borrow().as_ref().and_then(|s| p.poll(s)));
        if let Some(top) = top {
            feed.publish(
                now_ms(),
                Body::Processes {
                    host: id.clone(),
                    snapshot: Arc::new(top),
                },
            );
        }
        let parts = if web.demand.is_watched(&id) {
            Parts::DETAIL
        } else {
            Parts::SUMMARY
        };
        let snap = rx.borrow_and_update().as_ref().map(|s| s.view(parts));
        if let Some(s) = snap {
            feed.publish(
                now_ms(),
                Body::Sample {
                    host: id.clone(),
                    snapshot: Arc::new(s),
                },
            );
        }
    }
}
