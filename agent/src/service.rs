//! The gRPC side: the `smon.v1.Agent` service over the sampler's latest sample, the bearer-token
//! check in front of it, and the server setup (with `smon.v1.Control`, [`crate::control`],
//! when a control token is configured).
//!
//! The server is built in one place ([`serve`]) so that TLS and mutual TLS can be added to the
//! same builder next to the token check, without touching the handlers.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smon_proto::agent_server::{Agent, AgentServer};
use smon_proto::{GetInfoRequest, GetSnapshotRequest, HostInfo, Parts, Snapshot, WatchRequest};
use smon_runtime::net::CidrList;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use subtle::ConstantTimeEq;

use smon_runtime::listen::{Guard, Guarded, Limits, global_cap, nofile_limit};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Interceptor;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::config::{Auth, Settings};
use crate::control::ControlService;
use smon_collect::{DetailDemand, Latest};
use smon_proto::control_server::ControlServer;

/// How long `GetSnapshot` waits for the very first sample after start-up.
const FIRST_SAMPLE_WAIT: Duration = Duration::from_secs(5);

/// Messages a `Watch` stream may have queued for a slow client before samples are dropped
/// (a live view wants the newest sample, not a backlog).
const WATCH_BUFFER: usize = 4;

/// The service implementation: reads the latest sample, never the OS.
pub struct AgentService {
    /// The host facts as they are now: they change when GPUs appear or go.
    info: watch::Receiver<HostInfo>,
    latest: Latest,
    demand: DetailDemand,
    stop: CancellationToken,
}

impl AgentService {
    /// A service over the sampler's channel. Requests for processes are recorded in `demand`
    /// (the collector then reads the process table every sample). Open `Watch` streams end
    /// when `stop` is cancelled.
    pub fn new(
        info: watch::Receiver<HostInfo>,
        latest: Latest,
        demand: DetailDemand,
        stop: CancellationToken,
    ) -> Self {
        Self {
            info,
            latest,
            demand,
            stop,
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.info.borrow().sample_interval_ms.max(1)))
    }
}

/// Whether a sample's process list was read with the sample itself (not carried over from an
/// earlier scan).
fn processes_fresh(s: &Snapshot, interval: Duration) -> bool {
    s.sample_unix_ms.saturating_sub(s.processes_unix_ms) < (interval.as_millis() as u64 / 2).max(50)
}

fn parts_of(p: Option<Parts>) -> Parts {
    p.unwrap_or(Parts::SUMMARY)
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<Snapshot, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for AgentService {
    async fn get_info(&self, _req: Request<GetInfoRequest>) -> Result<Response<HostInfo>, Status> {
        Ok(Response::new(self.info.borrow().clone()))
    }

    async fn get_snapshot(
        &self,
        req: Request<GetSnapshotRequest>,
    ) -> Result<Response<Snapshot>, Status> {
        let parts = parts_of(req.into_inner().parts);
        let wants_procs = parts.processes || parts.gpu_processes || parts.top_processes > 0;
        if wants_procs {
            self.demand.mark();
        }
        let interval = self.interval();
        let mut rx = self.latest.clone();
        // Without recent demand the process table is read only every 10 s: a caller asking for
        // processes waits (about one interval) for a sample with a fresh list.
        let ready = |s: &Option<Arc<smon_collect::Sample>>| match s {
            None => false,
            Some(s) => !wants_procs || processes_fresh(&s.full, interval),
        };
        let wait = FIRST_SAMPLE_WAIT.max(interval * 3);
        let waited = match tokio::time::timeout(wait, rx.wait_for(ready)).await {
            Ok(Ok(s)) => Some(s.clone()),
            Ok(Err(_)) => return Err(Status::unavailable("the agent is shutting down")),
            Err(_) => None,
        };
        // No fresh list in time (a very slow scan): answer with what there is.
        let sample = waited.unwrap_or_else(|| self.latest.borrow().clone());
        let sample = sample.ok_or_else(|| Status::unavailable("no sample yet"))?;
        Ok(Response::new(sample.view(parts)))
    }

    type WatchStream = SnapshotStream;

    async fn watch(
        &self,
        req: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let req = req.into_inner();
        let parts = parts_of(req.parts);
        let wants_procs = parts.processes || parts.gpu_processes || parts.top_processes > 0;
        let demand = self.demand.clone();
        let min_gap = Duration::from_millis(u64::from(req.min_interval_ms));
        let mut rx = self.latest.clone();
        let stop = self.stop.clone();
        let (tx, out) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            // The current sample first, then every new one.
            rx.mark_changed();
            // Spacing is judged on sample times (regular, from the sampler's schedule), with a
            // tenth of the gap as slack, so a poller asking for the agent's own interval gets
            // every sample even when the first one sent was already some way through its tick.
            let slack = (min_gap / 10).min(Duration::from_millis(100));
            let mut last_sample_ms: Option<u64> = None;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tx.closed() => break,
                    changed = rx.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        if wants_procs {
                            demand.mark(); // keeps full process scans going while this stream lives
                        }
                        let Some(sample) = rx.borrow_and_update().clone() else { continue };
                        let t = sample.full.sample_unix_ms;
                        if last_sample_ms.is_some_and(|last| Duration::from_millis(t.saturating_sub(last)) + slack < min_gap) {
                            continue;
                        }
                        match tx.try_send(Ok(sample.view(parts))) {
                            Ok(()) => last_sample_ms = Some(t),
                            Err(mpsc::error::TrySendError::Full(_)) => {} // slow client: skip
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}

/// Checks `authorization: Bearer <token>` in constant time. Refusals are logged without the
/// token, at most once per second (with a count of the ones not logged), so a scanner cannot
/// flood the log.
///
/// It also applies `monitor.allow_from`: a caller from elsewhere gets `PermissionDenied`
/// naming its address, before the token is looked at.
#[derive(Clone)]
pub struct TokenCheck {
    expected: Option<Arc<Vec<u8>>>,
    allow: Arc<CidrList>,
    log: Arc<RefusalLog>,
}

/// At most one log line per second about refused calls, with a count of the ones left out.
pub(crate) struct RefusalLog {
    started: Instant,
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RefusalLog {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(refusals not logged since the last line)` when a line is due now; `None` (and
    /// this refusal counted) otherwise.
    pub(crate) fn due(&self) -> Option<u64> {
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

/// Whether an `authorization` value is exactly `expected` (`Bearer <token>` bytes), compared
/// in constant time.
pub(crate) fn bearer_is(
    value: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    expected: &[u8],
) -> bool {
    bool::from(value.as_bytes().ct_eq(expected))
}

impl TokenCheck {
    /// A check for `auth` that also refuses callers outside `allow` (empty: anyone).
    pub fn with_allow(auth: &Auth, allow: CidrList) -> Self {
        let expected = match auth {
            Auth::Token(t) => Some(Arc::new(format!("Bearer {t}").into_bytes())),
            Auth::None => None,
        };
        Self {
            expected,
            allow: Arc::new(allow),
            log: Arc::new(RefusalLog::new()),
        }
    }

    /// Logs a refusal (at most once per second) and returns `reason` as its status.
    fn refuse(&self, req: &Request<()>, reason: &'static str) -> Status {
        self.log_refusal(req, reason);
        Status::unauthenticated(reason)
    }

    fn log_refusal(&self, req: &Request<()>, reason: &'static str) {
        if let Some(suppressed) = self.log.due() {
            let peer = req
                .remote_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "unknown".into());
            tracing::warn!(%peer, reason, suppressed, "Refused a gRPC call.");
        }
    }
}

/// `monitor.allow_from` for a call from `peer`: PERMISSION_DENIED outside it (an empty list
/// allows everyone). Shared by the Agent and Control services.
pub(crate) fn check_allow(
    allow: &CidrList,
    peer: Option<std::net::SocketAddr>,
) -> Result<(), Status> {
    match peer {
        _ if allow.is_empty() => Ok(()),
        Some(a) if allow.contains(a.ip()) => Ok(()),
        peer => {
            let who = peer.map(|a| a.ip().to_string()).unwrap_or("unknown".into());
            Err(Status::permission_denied(format!(
                "{who} is not allowed by the agent's monitor.allow_from"
            )))
        }
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        if let Err(e) = check_allow(&self.allow, req.remote_addr()) {
            self.log_refusal(&req, "address not in monitor.allow_from");
            return Err(e);
        }
        let Some(expected) = &self.expected else {
            return Ok(req);
        };
        // Two credentials are ambiguous (which one counts depends on who reads them): refused
        // whatever they hold.
        if req
            .metadata()
            .get_all("authorization")
            .iter()
            .nth(1)
            .is_some()
        {
            return Err(self.refuse(&req, "more than one authorization entry"));
        }
        match req.metadata().get("authorization") {
            None => Err(self.refuse(&req, "missing bearer token")),
            Some(v) if bearer_is(v, expected) => Ok(req),
            Some(_) => Err(self.refuse(&req, "wrong bearer token")),
        }
    }
}

/// Serves the agent service on `listener` until `stop` is cancelled.
///
/// Connections pass the guard first (`smon_runtime::listen`): a peer outside
/// `monitor.allow_from` is closed at accept, before TLS or HTTP/2; the others are held to
/// `monitor.limits` (per address, in all below the open-file limit, idle timeout), with a TCP
/// keepalive. The TLS handshake has a deadline, HTTP/2 pings find dead peers, and one
/// connection carries at most `max_concurrent_streams` calls.
pub async fn serve(
    settings: &Settings,
    info: watch::Receiver<HostInfo>,
    latest: Latest,
    demand: DetailDemand,
    listener: TcpListener,
    stop: CancellationToken,
) -> Result<(), crate::Error> {
    let server = AgentServer::new(AgentService::new(info, latest, demand, stop.clone()))
        .max_decoding_message_size(64 * 1024);
    let svc = tonic::service::interceptor::InterceptedService::new(
        server,
        TokenCheck::with_allow(&settings.auth, settings.grpc_allow.clone()),
    );
    // Without a control token the Control service is not routed: its calls get UNIMPLEMENTED.
    let control = settings.control.as_ref().map(|c| {
        ControlServer::new(ControlService::new(
            c,
            settings.supervisor.as_ref(),
            &settings.auth,
            settings.grpc_allow.clone(),
        ))
        .max_decoding_message_size(64 * 1024)
    });
    let limits = settings.grpc_limits;
    let streams = limits.max_concurrent_streams;
    let mut builder = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(streams)
        .concurrency_limit_per_connection(streams as usize);
    if let Some(tls) = &settings.grpc_tls {
        let mut cfg = ServerTlsConfig::new()
            .identity(Identity::from_pem(&tls.cert, &tls.key))
            .timeout(limits.handshake_timeout);
        if let Some(ca) = &tls.client_ca {
            // Mutual TLS: a client without a certificate from this CA fails the handshake.
            cfg = cfg.client_ca_root(Certificate::from_pem(ca));
        }
        builder = builder.tls_config(cfg).map_err(crate::Error::Tls)?;
    }
    let nofile = nofile_limit();
    let total = global_cap(nofile, limits.max_connections);
    tracing::debug!(
        max_connections = total,
        per_address = limits.per_address,
        nofile,
        "gRPC connection limits."
    );
    let guard = Guard::new(
        "gRPC",
        Limits {
            per_address: limits.per_address,
            total,
            allow: settings.grpc_allow.clone(),
            unlimited: CidrList::default(),
            idle: Some(limits.idle_timeout),
            tcp_keepalive: Some(Duration::from_secs(60)),
        },
    );
    // With our own listener the builder's TCP options do not apply to accepted sockets: the
    // guard sets TCP_NODELAY (else small replies wait for delayed ACKs, ~40 ms per call) and
    // the keepalive. Accepting stops with the server, which drops the stream.
    let incoming = guarded_incoming(guard, listener);
    builder
        .add_service(svc)
        .add_optional_service(control)
        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
        .await
        .map_err(crate::Error::Grpc)?;
    Ok(())
}

/// The guarded connections of `listener`, as the stream tonic serves. It never ends or fails
/// (the guard retries failed accepts), so tonic's accept loop never stops on an error.
fn guarded_incoming(
    guard: Guard,
    listener: TcpListener,
) -> impl Stream<Item = Result<GrpcConn, std::io::Error>> + Send + 'static {
    let listener = Arc::new(listener);
    repeat_with(move || {
        let guard = guard.clone();
        let listener = listener.clone();
        async move {
            let (io, peer) = guard.accept(&listener).await;
            Ok(GrpcConn { io, peer })
        }
    })
}

/// A stream that yields `next()`'s value forever.
fn repeat_with<F, Fut, T>(next: F) -> impl Stream<Item = T> + Send + 'static
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let item = tokio::select! {
                item = next() => item,
                _ = tx.closed() => return,
            };
            if tx.send(item).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// An admitted gRPC connection: the guarded socket, with its addresses for tonic
/// (`Request::remote_addr`, through TLS too).
struct GrpcConn {
    io: Guarded<TcpStream>,
    peer: SocketAddr,
}

impl Connected for GrpcConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        TcpConnectInfo {
            local_addr: self.io.get_ref().local_addr().ok(),
            remote_addr: Some(self.peer),
        }
    }
}

impl AsyncRead for GrpcConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for GrpcConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
