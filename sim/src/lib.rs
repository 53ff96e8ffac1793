//! smon-sim: a fleet of simulated smon agents for tests and benchmarks. Each agent listens on
//! its own loopback address and speaks the real `smon.v1` gRPC contract; the hosts behind them
//! have stable names and hardware drawn from a seed and metrics that drift like real ones.
//!
//! Built to cost little CPU next to the aggregator it feeds: one clock for the whole fleet,
//! state stepped only when a sample is asked for, process lists shared between hosts of a kind,
//! and one thread. `main.rs` is thin; tests call [`run`].

pub mod aggconfig;
pub mod config;
pub mod fleet;
pub mod limits;
pub mod procs;
pub mod profile;
pub mod rng;
pub mod service;
pub mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

pub use config::SimConfig;
pub use fleet::Fleet;
pub use limits::Listening;

/// How long shutdown waits for the clock and the server after `stop`.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// The agents' listening sockets (see [`limits`] for why there are two ways).
pub enum Listeners {
    /// `listeners[i]` is agent `i`'s, on its own address.
    PerAgent(Vec<TcpListener>),
    /// One listener on `0.0.0.0:PORT` bound to `lo`, for every agent's address.
    Shared(TcpListener),
}

/// Binds the agents' listeners. Fails on the first address that cannot be bound, naming it.
pub async fn bind(cfg: &SimConfig, how: Listening) -> anyhow::Result<Listeners> {
    match how {
        Listening::PerAgent => {
            let mut out = Vec::with_capacity(cfg.agents as usize);
            for i in 0..cfg.agents {
                let addr = cfg
                    .addr(i)
                    .ok_or_else(|| anyhow::anyhow!("agent {i} has no address in 127.0.0.0/8"))?;
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
                out.push(l);
            }
            Ok(Listeners::PerAgent(out))
        }
        Listening::Shared => {
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, cfg.port));
            let bound = (|| {
                let s = TcpSocket::new_v4()?;
                s.set_reuseaddr(true)?;
                // Only what arrives on the loopback device: nothing from other hosts.
                s.bind_device(Some(b"lo"))?;
                s.bind(addr)?;
                s.listen(4096)
            })();
            let l =
                bound.map_err(|e| anyhow::anyhow!("cannot listen on {addr} (device lo): {e}"))?;
            Ok(Listeners::Shared(l))
        }
    }
}

/// Runs the fleet on `listeners` until `stop` is cancelled.
pub async fn run(
    fleet: Arc<Fleet>,
    listeners: Listeners,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let clock = tokio::spawn(fleet.clone().run_clock(stop.clone()));
    let served = service::serve(fleet, listeners, stop.clone());
    tokio::pin!(served);
    let result = tokio::select! {
        r = &mut served => r,
        _ = stop.cancelled() => {
            // Open streams end at once; a client slow to hang up does not hold the exit.
            tokio::time::timeout(SHUTDOWN_GRACE, served).await.unwrap_or(Ok(()))
        }
    };
    stop.cancel();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, clock).await;
    result
}
