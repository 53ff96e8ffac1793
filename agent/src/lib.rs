//! smon-agent: the node agent. It samples its host on a dedicated thread and serves the latest
//! sample over gRPC (`smon.v1.Agent`): static facts, the latest snapshot (summary or detail)
//! and a live stream.
//!
//! `main.rs` is thin: it parses arguments, loads the config and calls [`run`]. Tests call
//! [`run`] on `127.0.0.1:0`.

pub mod collect;
pub mod config;
pub mod daemon;
pub mod query;
pub mod sampler;
pub mod service;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::collect::{Collector, CollectorConfig};
use crate::config::Settings;

/// Runs the agent until `stop` is cancelled: starts the sampler thread and serves gRPC on
/// `listener`. Returns once the server and the sampler have stopped.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    run_with(
        CollectorConfig::from_settings(&settings),
        settings,
        listener,
        stop,
    )
    .await
}

/// Like [`run`], with the collector's sources given (tests point them at fixtures).
pub async fn run_with(
    collector: CollectorConfig,
    settings: Settings,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let interval = settings.interval;
    let sampler = sampler::Sampler::start(interval, move || Collector::new(collector)).await?;
    let info = Arc::new(sampler.info().clone());
    let addr = listener.local_addr()?;
    tracing::info!(%addr, interval_ms = interval.as_millis() as u64, auth = if matches!(settings.auth, config::Auth::None) { "none" } else { "token" }, "Serving gRPC.");
    let served = service::serve(&settings, info, sampler.subscribe(), listener, stop.clone()).await;
    stop.cancel();
    sampler.stop().await;
    served
}
