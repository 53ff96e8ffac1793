//! smon-agent: the node agent. It samples its host on a dedicated thread and serves the latest
//! sample over gRPC (`smon.v1.Agent`): static facts, the latest snapshot (summary or detail)
//! and a live stream.
//!
//! `main.rs` is thin: it parses arguments and hands over to smon-runtime's start-up sequence
//! with the agent's part ([`start`]). Tests call [`run`] on `127.0.0.1:0`.
//!
//! The cargo feature `web` (on by default) adds the single-host web view and with it
//! smon-web; without it the agent is the collector and the gRPC server alone, and refuses
//! `server.web: true`.

pub mod config;
pub mod control;
pub mod error;
pub mod query;
pub mod service;
pub mod signals;
pub mod start;
pub mod supervisor;
pub mod xmlrpc;

#[cfg(feature = "web")]
use std::sync::{Arc, Mutex};

#[cfg(feature = "web")]
use smon_proto::{HostInfo, Parts};
use smon_runtime::health;
#[cfg(feature = "web")]
use smon_web::hub::{self, Web, now_ms};
#[cfg(feature = "web")]
use smon_web::security::Security;
#[cfg(feature = "web")]
use smon_web::store::{ClusterStore, HostSpec, StoreConfig};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
pub use crate::error::Error;

/// The web view's tasks: its feed, its server and, with history on, the task that feeds the
/// history writer (with the writer, closed once that task ends).
struct WebTasks {
    feed: tokio::task::JoinHandle<()>,
    #[cfg(feature = "web")]
    info: tokio::task::JoinHandle<()>,
    serve: tokio::task::JoinHandle<Result<(), Error>>,
    #[cfg(feature = "history")]
    history: Option<(
        tokio::task::JoinHandle<()>,
        Arc<smon_history::writer::Writer>,
    )>,
}

/// The web view's listener.
#[cfg(feature = "web")]
pub type WebListener = TcpListener;

/// Built without the web view: no listener for it can exist.
#[cfg(not(feature = "web"))]
#[derive(Debug)]
pub enum WebListener {}

/// The web view's listener with its users loaded ([`prepare_security`]).
#[cfg(feature = "web")]
pub type PreparedWeb = (TcpListener, Arc<Security>);

/// Built without the web view: nothing to prepare.
#[cfg(not(feature = "web"))]
#[derive(Debug)]
pub enum PreparedWeb {}
#[cfg(feature = "history")]
use smon_collect::sampler::{PeriodicScan, first_due};
use smon_collect::{Collector, CollectorConfig, Sampler};

/// Runs the agent until `stop` is cancelled: starts the sampler thread, serves gRPC on `grpc`
/// and, when given, the single-host web view on `http`. Returns once everything has stopped.
pub async fn run(
    settings: Settings,
    grpc: TcpListener,
    http: Option<WebListener>,
    stop: CancellationToken,
) -> Result<(), Error> {
    run_with(settings.collector_config(), settings, grpc, http, stop).await
}

/// Like [`run`], with the collector's sources given (tests point them at fixtures).
pub async fn run_with(
    collector: CollectorConfig,
    settings: Settings,
    grpc: TcpListener,
    http: Option<WebListener>,
    stop: CancellationToken,
) -> Result<(), Error> {
    let http = match http {
        #[cfg(feature = "web")]
        Some(l) => {
            let sec = prepare_security(&settings, &l)?;
            Some((l, sec))
        }
        None => None,
    };
    run_prepared(collector, settings, grpc, http, stop).await
}

/// Loads the web view's users (creating the first-start `admin` on loopback) for the
/// listener `http`. `main` calls it before dropping privileges, so the users file may stay
/// readable by root only.
#[cfg(feature = "web")]
pub fn prepare_security(settings: &Settings, http: &TcpListener) -> Result<Arc<Security>, Error> {
    let Some(web) = &settings.web else {
        return Err(Error::WebViewOff);
    };
    let (sec, bootstrap) =
        Security::start(web.http.clone(), http.local_addr()?).map_err(|e| Error::Security {
            file: settings.source.clone(),
            message: e.to_string(),
        })?;
    smon_web::security::announce(&bootstrap, "smon-agent");
    Ok(sec)
}

/// [`run_with`] with the web view's security already prepared ([`prepare_security`]).
pub async fn run_prepared(
    collector: CollectorConfig,
    settings: Settings,
    grpc: TcpListener,
    http: Option<PreparedWeb>,
    stop: CancellationToken,
) -> Result<(), Error> {
    let interval = settings.interval;
    let demand = collector.demand.clone();
    let programs = collector.programs.clone();
    let sampler = Sampler::start(interval, move || Collector::new(collector))
        .await
        .map_err(Error::Sampler)?;
    // supervisord is read on its own task: the sampler takes its latest reading as it is.
    let supervisor_task = match (&settings.supervisor, programs) {
        (Some(sup), Some(feed)) => {
            tracing::info!(url = %sup.url, every_s = sup.interval.as_secs(), "Reading supervisord's programs.");
            Some(tokio::spawn(supervisor::poll(
                supervisor::Supervisor::new(sup),
                feed,
                sup.interval,
                stop.clone(),
            )))
        }
        _ => None,
    };
    let info = sampler.info_watch();
    // Heartbeat files (a manager's, or systemd's watchdog with TLS): touched after each sample.
    let name = start::ABOUT.name;
    let heartbeats: Vec<_> = [
        health::parent_heartbeat(name),
        Some(health::heartbeat_path(name, std::process::id())).filter(|p| p.is_file()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !heartbeats.is_empty() {
        let mut rx = sampler.subscribe();
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    c = rx.changed() => if c.is_err() { return },
                }
                for p in &heartbeats {
                    if let Err(e) = health::touch(p) {
                        tracing::debug!(file = %p.display(), error = %e, "Cannot touch the heartbeat.");
                    }
                }
            }
        });
    }
    let addr = grpc.local_addr()?;
    let auth = if matches!(settings.auth, config::Auth::None) {
        "none"
    } else {
        "token"
    };
    tracing::info!(%addr, interval_ms = interval.as_millis() as u64, auth, "Serving gRPC.");
    match &settings.control {
        None => tracing::info!(
            "The Control service (Wake-on-LAN relay, reboot, shutdown) is off: no control.token_file or control.token is set."
        ),
        Some(c) => tracing::info!(
            wake = c.wake,
            power = c.power.is_some(),
            supervisor = settings.supervisor.is_some(),
            signals = c.signals.is_some(),
            "Serving the Control service too (calls need the control token)."
        ),
    }

    #[cfg(not(feature = "web"))]
    let web_task: Option<WebTasks> = http.map(|never| match never {});
    #[cfg(feature = "web")]
    let web_task = match http {
        None => None,
        Some((listener, security)) => {
            let web = node_view(&sampler.info(), interval, security);
            let id = web.store().ids().remove(0);
            #[cfg(feature = "history")]
            let (web, history) = match &settings.storage {
                Some(opts) => {
                    let (web, writer) = smon_web::database::open(web, opts, stop.clone())
                        .await
                        .map_err(|source| Error::History {
                            file: settings.source.clone(),
                            source: Box::new(source),
                        })?;
                    let scan = PeriodicScan::new(
                        settings.processes_every,
                        first_due(settings.processes_every, &mut rand::rng()),
                        smon_history::procs::PARTS,
                        demand.clone(),
                        interval,
                    );
                    let feed = tokio::spawn(keep_history(
                        sampler.subscribe(),
                        id.clone(),
                        writer.clone(),
                        scan,
                        stop.clone(),
                    ));
                    (web, Some((feed, writer)))
                }
                None => (web, None),
            };
            let web = Arc::new(web);
            let info = tokio::spawn(follow_info(
                sampler.info_watch(),
                id.clone(),
                web.clone(),
                stop.clone(),
            ));
            let demand = demand.clone();
            let feed = tokio::spawn(hub::feed_local(
                sampler.subscribe(),
                id,
                web.clone(),
                move |latest, detail| {
                    if detail {
                        demand.mark();
                    }
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
            let base = settings
                .web
                .as_ref()
                .map(|w| w.base_path.clone())
                .unwrap_or_default();
            if let Ok(a) = listener.local_addr() {
                let tls = settings.web.as_ref().is_some_and(|w| w.http.tls.is_some());
                let scheme = if tls { "https" } else { "http" };
                tracing::info!(url = %format!("{scheme}://{a}{base}/"), "Serving the single-host web view.");
            }
            let limits = settings.web.as_ref().map(|w| w.limits).unwrap_or_default();
            let stop_web = stop.clone();
            let serve = tokio::spawn(async move {
                smon_web::serve::serve(web, &base, listener, limits, stop_web)
                    .await
                    .map_err(|e| Error::WebView(e.to_string()))
            });
            Some(WebTasks {
                feed,
                info,
                serve,
                #[cfg(feature = "history")]
                history,
            })
        }
    };

    let served = service::serve(
        &settings,
        info,
        sampler.subscribe(),
        demand,
        grpc,
        stop.clone(),
    )
    .await;
    stop.cancel();
    if let Some(w) = web_task {
        let _ = w.feed.await;
        #[cfg(feature = "web")]
        let _ = w.info.await;
        if let Ok(Err(e)) = w.serve.await {
            tracing::warn!(error = %e, "The web view stopped with an error.");
        }
        // The last samples committed before the process ends.
        #[cfg(feature = "history")]
        if let Some((feed, writer)) = w.history {
            let _ = feed.await;
            let _ = tokio::task::spawn_blocking(move || smon_web::database::close(writer)).await;
        }
    }
    if let Some(t) = supervisor_task {
        let _ = t.await;
    }
    sampler.stop().await;
    served
}

/// The store and hub state of the single-host view: one cluster `local` with this host.
#[cfg(feature = "web")]
fn node_view(info: &HostInfo, interval: std::time::Duration, security: Arc<Security>) -> Web {
    let name = smon_collect::host_slug(&info.hostname);
    let spec = HostSpec {
        cluster: "local".into(),
        name: if name.is_empty() {
            "localhost".into()
        } else {
            name
        },
        address: "in-process".into(),
        tags: Vec::new(),
    };
    let id = spec.id();
    let mut store = ClusterStore::new(
        vec![spec],
        StoreConfig::for_interval(interval.as_millis() as u64),
        now_ms(),
    );
    store.set_info(&id, info.clone());
    Web::new(Arc::new(Mutex::new(store)), "node", security)
}

/// Keeps the web view's host facts current: they change when GPUs appear or go (a driver
/// loaded after the agent, a GPU fallen off the bus), as gRPC's `GetInfo` does.
#[cfg(feature = "web")]
async fn follow_info(
    mut rx: tokio::sync::watch::Receiver<HostInfo>,
    id: String,
    web: Arc<Web>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
        let info = rx.borrow_and_update().clone();
        web.store().set_info(&id, info);
    }
}

/// Hands every sample of the own host (the summary parts) to the history writer, and every
/// period its top processes (`scan`), until `stop` or the sampler ends.
#[cfg(feature = "history")]
async fn keep_history(
    mut rx: smon_collect::sampler::Latest,
    id: String,
    writer: Arc<smon_history::writer::Writer>,
    mut scan: PeriodicScan,
    stop: CancellationToken,
) {
    use smon_history::writer::Write;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
        let Some(sample) = rx.borrow_and_update().clone() else {
            continue;
        };
        let at_ms = now_ms();
        // A full queue (or disk) is counted by the writer (`smon_history_*` in /metrics).
        let _ = writer.send(Write::Sample {
            host: id.clone(),
            at_ms,
            snapshot: Arc::new(sample.summary.clone()),
        });
        if let Some(top) = scan.poll(&sample) {
            let _ = writer.send(Write::Processes {
                host: id.clone(),
                at_ms,
                snapshot: Arc::new(top),
            });
        }
    }
}
