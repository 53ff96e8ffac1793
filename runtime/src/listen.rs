//! The connection guard in front of both daemons' listeners: who may connect at all, how many
//! connections one address may hold, how many all may hold together, and when a silent
//! connection is closed.
//!
//! Why at accept, before TLS or HTTP: a connection costs a file descriptor and buffers from its
//! first byte. Without limits, three clients holding idle connections took the aggregator to
//! `Too many open files`, after which `/healthz` went unanswered and the manager restarted it
//! (issue 18). So the guard
//! - drops a peer outside the allow-list at once (no TLS handshake, no HTTP/2 preface);
//! - holds each address (an IPv6 address by its /64, which one subscriber usually has whole) to
//!   `per_address` connections, except peers named `unlimited` (a trusted reverse proxy, which
//!   carries many clients);
//! - holds everyone together to `total`, which [`global_cap`] keeps below the file-descriptor
//!   limit, so the daemon always has descriptors left for its own files and outgoing
//!   connections; peers on this host (the health probe) get [`LOOPBACK_RESERVE`] more;
//! - closes a connection on which nothing was read or written for `idle`;
//! - keeps accepting when `accept` fails for lack of descriptors, after a short pause.
//!
//! Refusals are counted ([`Guard::stats`]) and logged at most once per second, with the number
//! not logged, so a flood cannot flood the log too.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use crate::net::{CidrList, canonical};

/// Connections admitted beyond [`Limits::total`] for peers on this host only (`127.0.0.1`,
/// `::1`, or the listener's own address, which is where the local health probe comes from):
/// a flood that fills the cap still leaves room for the probe and an operator on the host.
pub const LOOPBACK_RESERVE: usize = 16;

/// How long `accept` pauses after failing for lack of file descriptors (or memory), so the
/// loop does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The limits one listener applies.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections at once from one address (an IPv6 address counts by its /64).
    pub per_address: usize,
    /// Connections at once from everyone together (peers on this host get
    /// [`LOOPBACK_RESERVE`] more). See [`global_cap`].
    pub total: usize,
    /// Who may connect at all; others are dropped at accept. Empty: anyone.
    pub allow: CidrList,
    /// Peers not held to `per_address`, only to `total` (a trusted reverse proxy).
    pub unlimited: CidrList,
    /// A connection on which nothing was read or written for this long is closed (reads then
    /// fail with `TimedOut`). `None`: never.
    pub idle: Option<Duration>,
    /// TCP keepalive probes start after the connection has been silent this long, so a peer
    /// that vanished is found even when the protocol above sends nothing. `None`: off.
    pub tcp_keepalive: Option<Duration>,
}

/// The cap on connections for a process whose open-file limit is `nofile` (`None`: unknown),
/// given the configured `wanted` cap: never more than half of `nofile` (and at least 64 below
/// it). The other half stays free for the daemon's own files (the process collector keeps up
/// to half the limit open), its connections to agents, and the reserve for this host. At
/// least 1.
pub fn global_cap(nofile: Option<u64>, wanted: usize) -> usize {
    let Some(n) = nofile else {
        return wanted.max(1);
    };
    let headroom = (n / 2).max(64);
    let room = usize::try_from(n.saturating_sub(headroom)).unwrap_or(usize::MAX);
    wanted.min(room).max(1)
}

/// This process's soft limit on open files (`None` where unknown).
#[cfg(target_os = "linux")]
pub fn nofile_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Unknown elsewhere.
#[cfg(not(target_os = "linux"))]
pub fn nofile_limit() -> Option<u64> {
    None
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The peer is outside the allow-list.
    NotAllowed,
    /// The peer's address already holds `per_address` connections.
    PerAddress,
    /// All together already hold `total` connections.
    Total,
}

impl Refusal {
    /// In words, for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "address not allowed",
            Refusal::PerAddress => "too many connections from this address",
            Refusal::Total => "too many connections in all",
        }
    }
}

/// Counts of a guard, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections open now.
    pub open: usize,
    /// Refused: outside the allow-list.
    pub not_allowed: u64,
    /// Refused: the address's limit.
    pub per_address: u64,
    /// Refused: the total limit.
    pub total: u64,
}

/// The guard of one listener; clones share the counts.
#[derive(Debug, Clone)]
pub struct Guard(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    name: &'static str,
    limits: Limits,
    state: Mutex<State>,
    refused: [AtomicU64; 3],
    log: RateLimited,
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    per: HashMap<IpAddr, usize>,
}

/// The address a connection counts against: IPv4 (mapped ones too) as is, IPv6 by its /64.
fn key_of(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Guard {
    /// A guard named `name` (in log lines, e.g. "HTTP" or "gRPC") applying `limits`.
    pub fn new(name: &'static str, limits: Limits) -> Self {
        Self(Arc::new(Inner {
            name,
            limits,
            state: Mutex::new(State::default()),
            refused: Default::default(),
            log: RateLimited::new(Duration::from_secs(1)),
        }))
    }

    /// The limits applied.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a pair of counters updated in one step: a panic elsewhere cannot leave
        // it half-written, so a poisoned lock is still good.
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `ip` to the local address `local`, or says why not. The permit
    /// counts the connection until it is dropped.
    pub fn admit(&self, ip: IpAddr, local: Option<IpAddr>) -> Result<Permit, Refusal> {
        let l = &self.0.limits;
        let ip = canonical(ip);
        let this_host = ip == IpAddr::from(std::net::Ipv4Addr::LOCALHOST)
            || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            || local.map(canonical) == Some(ip);
        if !l.allow.is_empty() && !l.allow.contains(ip) {
            return Err(self.count(Refusal::NotAllowed));
        }
        let mut st = self.state();
        let cap = if this_host {
            l.total.saturating_add(LOOPBACK_RESERVE)
        } else {
            l.total
        };
        if st.open >= cap {
            drop(st);
            return Err(self.count(Refusal::Total));
        }
        let key = (!l.unlimited.contains(ip)).then(|| key_of(ip));
        if let Some(k) = key {
            let n = st.per.entry(k).or_insert(0);
            if *n >= l.per_address {
                drop(st);
                return Err(self.count(Refusal::PerAddress));
            }
            *n += 1;
        }
        st.open += 1;
        Ok(Permit {
            guard: self.0.clone(),
            key,
        })
    }

    fn count(&self, r: Refusal) -> Refusal {
        self.0.refused[r as usize].fetch_add(1, Ordering::Relaxed);
        r
    }

    /// What the guard has seen.
    pub fn stats(&self) -> Stats {
        let open = self.state().open;
        let n = |r: Refusal| self.0.refused[r as usize].load(Ordering::Relaxed);
        Stats {
            open,
            not_allowed: n(Refusal::NotAllowed),
            per_address: n(Refusal::PerAddress),
            total: n(Refusal::Total),
        }
    }

    /// The next admitted connection on `listener`, with TCP_NODELAY and the keepalive set.
    /// Refused peers are closed at once and logged (rate-limited). Never fails: an `accept`
    /// error (out of descriptors, a connection reset before it was accepted) is logged
    /// (rate-limited) and accepting goes on, after a pause where waiting helps.
    pub async fn accept(&self, listener: &TcpListener) -> (Guarded<TcpStream>, SocketAddr) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => match self
                    .admit(peer.ip(), stream.local_addr().ok().map(|a| a.ip()))
                {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        if let Some(t) = self.0.limits.tcp_keepalive {
                            let ka = socket2::TcpKeepalive::new()
                                .with_time(t)
                                .with_interval(Duration::from_secs(10));
                            let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&ka);
                        }
                        return (Guarded::new(stream, permit, self.0.limits.idle), peer);
                    }
                    Err(r) => {
                        // Reset rather than close: no TIME_WAIT kept for a refused peer.
                        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        drop(stream);
                        if let Some(suppressed) = self.0.log.permit() {
                            tracing::warn!(
                                listener = self.0.name,
                                peer = %peer.ip(),
                                reason = r.as_str(),
                                suppressed,
                                "Refused a connection."
                            );
                        }
                    }
                },
                Err(e) => {
                    // A connection reset before it was accepted concerns that peer alone; any
                    // other failure (out of descriptors or memory) lasts until connections
                    // close: pause rather than spin.
                    let transient = matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    );
                    if let Some(suppressed) = self.0.log.permit() {
                        tracing::warn!(listener = self.0.name, error = %e, suppressed, "Accept failed; accepting goes on.");
                    }
                    if !transient {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            }
        }
    }
}

/// One admitted connection's place in the counts, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    guard: Arc<Inner>,
    key: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self
            .guard
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        st.open = st.open.saturating_sub(1);
        if let Some(k) = self.key
            && let Some(n) = st.per.get_mut(&k)
        {
            *n -= 1;
            if *n == 0 {
                st.per.remove(&k);
            }
        }
    }
}

/// At most one log line per period; the others are counted and the count is given with the
/// next line.
#[derive(Debug)]
struct RateLimited {
    started: std::time::Instant,
    period_ms: u64,
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimited {
    fn new(period: Duration) -> Self {
        Self {
            started: std::time::Instant::now(),
            period_ms: period.as_millis() as u64,
            last_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines not logged since the last one)` when a line may be logged now.
    fn permit(&self) -> Option<u64> {
        let now = self.started.elapsed().as_millis() as u64 + self.period_ms;
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= self.period_ms
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

/// An admitted connection: the stream, its [`Permit`] (released when the connection is
/// dropped, after an HTTP upgrade too), and the idle timer.
#[derive(Debug)]
pub struct Guarded<S> {
    io: S,
    _permit: Permit,
    idle: Option<Idle>,
}

#[derive(Debug)]
struct Idle {
    limit: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    /// Wraps `io`, counted by `permit`, closed after `idle` without traffic.
    pub fn new(io: S, permit: Permit, idle: Option<Duration>) -> Self {
        let idle = idle.map(|limit| Idle {
            limit,
            last: Instant::now(),
            timer: Box::pin(tokio::time::sleep(limit)),
        });
        Self {
            io,
            _permit: permit,
            idle,
        }
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    fn touch(&mut self) {
        if let Some(i) = &mut self.idle {
            i.last = Instant::now();
        }
    }

    /// `Ready(Err(TimedOut))` once nothing moved for the idle limit; else `Pending`, with the
    /// timer armed for the next deadline.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(i) = &mut self.idle else {
            return Poll::Pending;
        };
        loop {
            let deadline = i.last + i.limit;
            if Instant::now() >= deadline {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ));
            }
            if i.timer.deadline() != deadline {
                i.timer.as_mut().reset(deadline);
            }
            if i.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            this.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            this.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(per_address: usize, total: usize) -> Limits {
        Limits {
            per_address,
            total,
            allow: CidrList::default(),
            unlimited: CidrList::default(),
            idle: None,
            tcp_keepalive: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn list(items: &[&str]) -> CidrList {
        CidrList::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("list")
    }

    #[test]
    fn per_address_and_total_limits_and_permits_give_back() {
        let g = Guard::new("test", limits(2, 3));
        let a1 = g.admit(ip("10.0.0.1"), None).expect("first");
        let _a2 = g.admit(ip("10.0.0.1"), None).expect("second");
        assert_eq!(
            g.admit(ip("10.0.0.1"), None).err(),
            Some(Refusal::PerAddress)
        );
        // A mapped IPv4 address is the same address.
        assert_eq!(
            g.admit(ip("::ffff:10.0.0.1"), None).err(),
            Some(Refusal::PerAddress)
        );
        let _b1 = g.admit(ip("10.0.0.2"), None).expect("another address");
        assert_eq!(g.admit(ip("10.0.0.3"), None).err(), Some(Refusal::Total));
        drop(a1);
        let _a3 = g
            .admit(ip("10.0.0.1"), None)
            .expect("room again after a close");
        let s = g.stats();
        assert_eq!(
            (s.open, s.per_address, s.total, s.not_allowed),
            (3, 2, 1, 0)
        );
    }

    #[test]
    fn this_host_gets_a_reserve_beyond_the_total() {
        let g = Guard::new("test", limits(100, 1));
        let _x = g.admit(ip("10.0.0.1"), None).expect("outside");
        assert_eq!(g.admit(ip("10.0.0.2"), None).err(), Some(Refusal::Total));
        // Another loopback address is not this host's probe.
        assert_eq!(g.admit(ip("127.0.0.2"), None).err(), Some(Refusal::Total));
        let mut local: Vec<_> = (0..LOOPBACK_RESERVE - 1)
            .map(|_| g.admit(ip("127.0.0.1"), None).expect("reserve"))
            .collect();
        // The listener's own address (a probe of a listener on 10.0.0.9 comes from there).
        local.push(
            g.admit(ip("10.0.0.9"), Some(ip("10.0.0.9")))
                .expect("reserve"),
        );
        assert_eq!(g.admit(ip("::1"), None).err(), Some(Refusal::Total));
        drop(local);
        assert_eq!(g.stats().open, 1);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_unlimited_peers_only_by_the_total() {
        let mut l = limits(1, 10);
        l.unlimited = list(&["192.0.2.1"]);
        let g = Guard::new("test", l);
        let _a = g.admit(ip("2001:db8:1:2::1"), None).expect("first");
        assert_eq!(
            g.admit(ip("2001:db8:1:2::ffff"), None).err(),
            Some(Refusal::PerAddress)
        );
        let _b = g.admit(ip("2001:db8:1:3::1"), None).expect("another /64");
        let proxies: Vec<_> = (0..5)
            .map(|_| g.admit(ip("192.0.2.1"), None).expect("a proxy"))
            .collect();
        assert_eq!(g.stats().open, 7);
        drop(proxies);
        assert_eq!(g.stats().open, 2);
    }

    #[test]
    fn the_allow_list_refuses_first() {
        let mut l = limits(1, 1);
        l.allow = list(&["10.0.0.0/8"]);
        let g = Guard::new("test", l);
        assert_eq!(
            g.admit(ip("192.168.1.1"), None).err(),
            Some(Refusal::NotAllowed)
        );
        let _a = g.admit(ip("10.1.1.1"), None).expect("allowed");
        assert_eq!(g.stats().not_allowed, 1);
        assert_eq!(g.stats().open, 1);
    }

    #[test]
    fn the_cap_leaves_headroom_below_the_fd_limit() {
        assert_eq!(global_cap(Some(20_000), 100_000), 10_000);
        assert_eq!(global_cap(Some(20_000), 4096), 4096);
        assert_eq!(global_cap(Some(256), 4096), 128);
        assert_eq!(global_cap(Some(100), 4096), 36);
        assert_eq!(global_cap(Some(64), 4096), 1);
        assert_eq!(global_cap(None, 4096), 4096);
    }

    #[test]
    fn the_log_is_rate_limited_with_a_count() {
        let r = RateLimited::new(Duration::from_secs(3600));
        assert_eq!(r.permit(), Some(0));
        assert_eq!(r.permit(), None);
        assert_eq!(r.permit(), None);
        let r2 = RateLimited::new(Duration::ZERO);
        assert_eq!(r2.permit(), Some(0));
        assert_eq!(r.suppressed.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn accept_drops_refused_peers_and_counts_the_rest_until_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let g = Guard::new("test", limits(1, 10));
        let g2 = g.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            loop {
                let conn = g2.accept(&listener).await;
                if tx.send(conn).is_err() {
                    break;
                }
            }
        });
        let mut first = TcpStream::connect(addr).await.expect("connect");
        let (mut admitted, _) = rx.recv().await.expect("admitted");
        let mut second = TcpStream::connect(addr).await.expect("connect");
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut b))
            .await
            .expect("the refused connection is closed at once");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        first.write_all(b"x").await.expect("write");
        admitted.read_exact(&mut b).await.expect("read");
        assert_eq!(&b, b"x");
        assert_eq!(g.stats().open, 1);
        assert_eq!(g.stats().per_address, 1);
        drop(admitted);
        assert_eq!(g.stats().open, 0);
        server.abort();
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_and_traffic_keeps_it_open() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut l = limits(10, 10);
        l.idle = Some(Duration::from_millis(300));
        let g = Guard::new("test", l);
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (mut conn, _) = g.accept(&listener).await;
        let mut b = [0u8; 1];
        // Bytes every 100 ms for 600 ms: never idle for 300 ms.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            client.write_all(b"y").await.expect("write");
            conn.read_exact(&mut b)
                .await
                .expect("traffic keeps it open");
        }
        let started = std::time::Instant::now();
        let e = conn.read(&mut b).await.expect_err("silent: times out");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
