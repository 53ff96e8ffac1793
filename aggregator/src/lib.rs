//! smon-aggregator: polls every agent of every cluster (and, optionally, its own host
//! in-process), merges the samples in the cluster store, and serves the live dashboard, the REST
//! API and Socket.IO.
//!
//! `main.rs` is thin; tests call [`run`] on `127.0.0.1:0`.

pub mod config;
pub mod endpoint;
pub mod poller;
pub mod start;

use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// The aggregator's health probe for `manager.mode = "self"`: `GET /healthz` answers 200
/// within 1.5 s (it answers 503 when the hub, and so the live view, has stalled).
pub async fn probe_http(url: String) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        // Our own listener on loopback: its certificate names the public host, not 127.0.0.1.
        .tls_danger_accept_invalid_certs(url.starts_with("https://"))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        let code = resp.status();
        Err(format!(
            "{url}: {code}: {}",
            resp.text().await.unwrap_or_default()
        ))
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
            "First start: created the user 'admin'; its password was printed once on the console."
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
) -> anyhow::Result<()> {
    let security = prepare_security(&settings, &listener)?;
    run_secured(settings, listener, security, stop).await
}

/// Loads the users (creating the first-start `admin` on loopback) for a server on
/// `listener`. `main` calls it before dropping privileges, so the users file may stay
/// readable by root only.
pub fn prepare_security(
    settings: &Settings,
    listener: &TcpListener,
) -> anyhow::Result<Arc<Security>> {
    let (security, bootstrap) = Security::start(settings.http.clone(), listener.local_addr()?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", settings.source))?;
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
) -> anyhow::Result<()> {
    let interval_ms = settings.interval.as_millis() as u64;
    let mut store_cfg = StoreConfig::for_interval(interval_ms);
    store_cfg.stale_after_ms = interval_ms * u64::from(settings.stale_after_intervals);
    store_cfg.down_after_ms = interval_ms * u64::from(settings.down_after_intervals);
    let mut specs = Vec::new();
    if let Some(me) = &settings.self_host {
        specs.push(me.spec.clone());
    }
    specs.extend(settings.targets.iter().map(|t| t.spec.clone()));
    let store = Arc::new(Mutex::new(ClusterStore::new(specs, store_cfg, now_ms())));
    let web = Arc::new(Web::new(store.clone(), "app", security));
    let tracker = TaskTracker::new();

    for t in &settings.targets {
        let demand = web.demand.subscribe(&t.spec.id());
        tracker.spawn(poller::run(
            t.clone(),
            store.clone(),
            demand,
            settings.interval,
            Duration::from_millis(store_cfg.down_after_ms),
            web.telemetry.poller(&t.spec.cluster, &t.spec.name),
            stop.clone(),
        ));
    }

    let mut sampler = None;
    if let Some(me) = &settings.self_host {
        let gpu = me.gpu;
        let interval = settings.interval;
        let demand = DetailDemand::default();
        let collector_demand = demand.clone();
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
            })
        })
        .await?;
        web.store().set_info(&me.spec.id(), s.info().clone());
        tracker.spawn(hub::feed_local(
            s.subscribe(),
            me.spec.id(),
            web.clone(),
            |latest, detail| {
                latest.as_ref().map(|s| {
                    s.view(if detail {
                        Parts::DETAIL
                    } else {
                        Parts::SUMMARY
                    })
                })
            },
            stop.clone(),
        ));
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
    tracker.close();

    let addr = listener.local_addr()?;
    let scheme = if settings.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(url = %format!("{scheme}://{addr}{}/", settings.base_path), hosts = settings.targets.len(), include_self = settings.self_host.is_some(), "Serving the dashboard.");
    let served = hub::serve_app(app, listener, settings.http.tls.clone(), stop.clone()).await;
    stop.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("Some tasks did not stop in time.");
    }
    if let Some(s) = sampler {
        s.stop().await;
    }
    served?;
    Ok(())
}
