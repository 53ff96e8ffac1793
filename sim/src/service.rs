//! The gRPC side: one tonic server for every simulated agent. Each agent has its own listener
//! (its own loopback address); their accepted connections feed one server, and a call finds
//! its host by the local address it came in on. The semantics follow the real agent's service
//! (`agent/src/service.rs`): the bearer-token check, summary versus detail parts, `Watch`
//! sending the latest sample at once and then one per sample, spaced by `min_interval_ms`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use smon_proto::agent_server::{Agent, AgentServer};
use smon_proto::{GetInfoRequest, GetSnapshotRequest, HostInfo, Parts, Snapshot, WatchRequest};
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, WatchStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;
use tonic::service::Interceptor;
use tonic::{Request, Response, Status};

use crate::Listeners;
use crate::fleet::Fleet;
use crate::state::Tick;

/// The service over the whole fleet.
pub struct SimService {
    fleet: Arc<Fleet>,
    stop: CancellationToken,
}

impl SimService {
    /// A service over `fleet`; open `Watch` streams end when `stop` is cancelled.
    pub fn new(fleet: Arc<Fleet>, stop: CancellationToken) -> Self {
        Self { fleet, stop }
    }

    fn host<T>(&self, req: &Request<T>) -> Result<usize, Status> {
        match req.local_addr() {
            Some(SocketAddr::V4(a)) => self
                .fleet
                .host_at(*a.ip())
                .ok_or_else(|| Status::not_found("no simulated agent at this address")),
            _ => Err(Status::internal("no local address on the connection")),
        }
    }
}

/// A host's samples as a stream: wakes on its phase's ticks, builds a snapshot only for the
/// ticks it sends. A slow reader is not queued for: the tick channel keeps only the newest, so
/// a reader that falls behind gets the newest sample next, as from the real agent.
struct SampleStream {
    ticks: WatchStream<Tick>,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    fleet: Arc<Fleet>,
    host: usize,
    parts: Parts,
    min_gap_ms: u64,
    slack_ms: u64,
    last_ms: Option<u64>,
}

impl Stream for SampleStream {
    type Item = Result<Snapshot, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.ticks).poll_next(cx) {
                Poll::Ready(Some(t)) => {
                    // Spacing is judged on sample times, with a tenth of the gap as slack (as
                    // the real agent does), so asking for the agent's own interval gets every
                    // sample.
                    if this.last_ms.is_some_and(|last| {
                        t.unix_ms.saturating_sub(last) + this.slack_ms < this.min_gap_ms
                    }) {
                        continue;
                    }
                    this.last_ms = Some(t.unix_ms);
                    return Poll::Ready(Some(Ok(this.fleet.snapshot(this.host, t, this.parts))));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<Snapshot, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for SimService {
    async fn get_info(&self, req: Request<GetInfoRequest>) -> Result<Response<HostInfo>, Status> {
        let i = self.host(&req)?;
        Ok(Response::new(self.fleet.profile(i).info.clone()))
    }

    async fn get_snapshot(
        &self,
        req: Request<GetSnapshotRequest>,
    ) -> Result<Response<Snapshot>, Status> {
        let i = self.host(&req)?;
        let parts = req.into_inner().parts.unwrap_or(Parts::SUMMARY);
        let tick = self.fleet.latest(i);
        Ok(Response::new(self.fleet.snapshot(i, tick, parts)))
    }

    type WatchStream = SnapshotStream;

    async fn watch(
        &self,
        req: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let i = self.host(&req)?;
        let req = req.into_inner();
        let min_gap = Duration::from_millis(u64::from(req.min_interval_ms));
        let stream = SampleStream {
            // `WatchStream::new` yields the current tick first: the latest sample at once.
            ticks: WatchStream::new(self.fleet.subscribe(i)),
            stop: Box::pin(self.stop.clone().cancelled_owned()),
            fleet: self.fleet.clone(),
            host: i,
            parts: req.parts.unwrap_or(Parts::SUMMARY),
            min_gap_ms: min_gap.as_millis() as u64,
            slack_ms: (min_gap / 10).min(Duration::from_millis(100)).as_millis() as u64,
            last_ms: None,
        };
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Logs a warning at most once per second, counting the ones left out, so a flood (a scanner,
/// a descriptor shortage on 10,000 listeners) cannot flood the log.
struct Throttle {
    started: Instant,
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl Throttle {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(count left out since the last one)` when this one may be logged.
    fn admit(&self) -> Option<u64> {
        let now = self.started.elapsed().as_millis() as u64 + 1000;
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Checks `authorization: Bearer <token>` in constant time, as the real agent does.
#[derive(Clone)]
pub struct TokenCheck {
    expected: Option<Arc<Vec<u8>>>,
    log: Arc<Throttle>,
}

impl TokenCheck {
    /// A check for `token` (`None` lets every call through).
    pub fn new(token: Option<&str>) -> Self {
        Self {
            expected: token.map(|t| Arc::new(format!("Bearer {t}").into_bytes())),
            log: Arc::new(Throttle::new()),
        }
    }

    fn refuse(&self, req: &Request<()>, reason: &'static str) -> Status {
        if let Some(suppressed) = self.log.admit() {
            let agent = req
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "unknown".into());
            tracing::warn!(%agent, reason, suppressed, "Refused an unauthenticated gRPC call.");
        }
        Status::unauthenticated(reason)
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(req);
        };
        match req.metadata().get("authorization") {
            None => Err(self.refuse(&req, "missing bearer token")),
            Some(v) if bool::from(v.as_bytes().ct_eq(expected.as_slice())) => Ok(req),
            Some(_) => Err(self.refuse(&req, "wrong bearer token")),
        }
    }
}

/// Accepts on one listener until `stop`, handing connections to the shared server. With
/// `only_agents` (the shared listener), connections to an address that is no agent's are closed
/// at once.
async fn accept_loop(
    listener: TcpListener,
    tx: mpsc::Sender<std::io::Result<TcpStream>>,
    log: Arc<Throttle>,
    only_agents: Option<Arc<Fleet>>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((s, _)) => {
                if let Some(fleet) = &only_agents {
                    let ours = match s.local_addr() {
                        Ok(SocketAddr::V4(a)) => fleet.host_at(*a.ip()).is_some(),
                        _ => false,
                    };
                    if !ours {
                        continue; // dropped: closed
                    }
                }
                // Small replies would otherwise wait for delayed ACKs.
                let _ = s.set_nodelay(true);
                if tx.send(Ok(s)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                if let Some(suppressed) = log.admit() {
                    let addr = listener
                        .local_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    tracing::warn!(%addr, error = %e, suppressed, "Accept failed; retrying.");
                }
                // Out of descriptors (EMFILE) would otherwise spin.
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

/// Serves every agent on its listener until `stop` is cancelled.
pub async fn serve(
    fleet: Arc<Fleet>,
    listeners: Listeners,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let token = fleet.config().token.clone();
    let (tx, rx) = mpsc::channel(1024);
    let accepts = TaskTracker::new();
    let log = Arc::new(Throttle::new());
    match listeners {
        Listeners::PerAgent(all) => {
            for l in all {
                accepts.spawn(accept_loop(l, tx.clone(), log.clone(), None, stop.clone()));
            }
        }
        Listeners::Shared(l) => {
            let only = Some(fleet.clone());
            accepts.spawn(accept_loop(l, tx.clone(), log.clone(), only, stop.clone()));
        }
    }
    drop(tx);
    accepts.close();
    let server =
        AgentServer::new(SimService::new(fleet, stop.clone())).max_decoding_message_size(64 * 1024);
    let svc = tonic::service::interceptor::InterceptedService::new(
        server,
        TokenCheck::new(token.as_deref()),
    );
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(svc)
        .serve_with_incoming_shutdown(ReceiverStream::new(rx), stop.clone().cancelled_owned())
        .await?;
    accepts.wait().await;
    Ok(())
}
