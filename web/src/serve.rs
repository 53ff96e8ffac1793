//! Serving the dashboard: the HTTP server loop over the router of [`crate::hub`], plain or
//! HTTPS, until the daemon stops.
//!
//! The loop is ours (hyper-util's HTTP/1 + HTTP/2 connection builder), not `axum::serve`,
//! because the open internet needs what that one lacks (issue 18):
//! - every connection passes the guard of `smon_runtime::listen` first: a limit per client
//!   address, a total kept below the open-file limit with a reserve for loopback (the health
//!   probe), and an idle timeout on the socket;
//! - the TLS handshake and each request's header lines must arrive within
//!   `server.limits.header_read_timeout_s` (slowloris); on HTTP/1 keep-alive that bound also
//!   applies to the wait for the next request;
//! - the replies hyper writes itself, without asking the app (400 for a malformed request
//!   line, 414, 431), carry the same security headers as the app's (`Canned`).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum_server::accept::Accept;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use smon_runtime::listen::{Guard, Limits, global_cap, nofile_limit};
use smon_runtime::net::CidrList;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use smon_runtime::config::server::HttpLimits;

use crate::hub::{router, run_hub};
use crate::security::HttpSecurity;
use crate::security::layers::security_headers;
use crate::state::Web;

/// How long open connections may take to finish once the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// TCP keepalive probes on accepted connections start after this long without traffic.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// What [`serve_app`] needs besides the router.
#[derive(Debug, Clone)]
pub struct Options {
    /// HTTPS: the certificate chain and key (PEM files); `None`: plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `server.limits`.
    pub limits: HttpLimits,
    /// Peers held only to the total, not to the per-address limit: the trusted proxies when
    /// the server sits behind one (each carries many clients).
    pub unlimited: CidrList,
}

impl Options {
    /// The options of a server with these security settings and limits.
    pub fn new(http: &HttpSecurity, limits: HttpLimits) -> Self {
        Self {
            tls: http.tls.clone(),
            limits,
            unlimited: if http.behind_proxy {
                http.trusted_proxies.clone()
            } else {
                CidrList::default()
            },
        }
    }
}

/// Serves the dashboard on `listener` under `base` until `stop`: the router, the hub task, and
/// closing open Socket.IO connections on stop so graceful shutdown does not wait for them.
pub async fn serve(
    web: Arc<Web>,
    base: &str,
    listener: TcpListener,
    limits: HttpLimits,
    stop: CancellationToken,
) -> io::Result<()> {
    let (app, io) = router(web.clone(), base);
    let options = Options::new(&web.security.http, limits);
    let hub = tokio::spawn(run_hub(io.clone(), web, stop.clone()));
    let closer_stop = stop.clone();
    let closer = tokio::spawn(async move {
        closer_stop.cancelled().await;
        io.close().await;
    });
    let served = serve_app(app, listener, options, stop.clone()).await;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = hub.await;
        let _ = closer.await;
    })
    .await;
    served
}

/// Serves `app` on `listener` until `stop`, over HTTPS when `options.tls` names a certificate
/// chain and key (PEM), else plain HTTP. Requests carry their peer address
/// (`ConnectInfo<SocketAddr>`, for the allow-list). Fails only when the TLS files cannot be
/// used.
pub async fn serve_app(
    app: Router,
    listener: TcpListener,
    options: Options,
    stop: CancellationToken,
) -> io::Result<()> {
    let tls = match &options.tls {
        Some((cert, key)) => {
            Some(tls_acceptor(cert, key, options.limits.header_read_timeout).await?)
        }
        None => None,
    };
    let limits = options.limits;
    let nofile = nofile_limit();
    let total = global_cap(nofile, limits.max_connections);
    tracing::debug!(
        max_connections = total,
        per_address = limits.per_address,
        nofile,
        "HTTP connection limits."
    );
    let guard = Guard::new(
        "HTTP",
        Limits {
            per_address: limits.per_address,
            total,
            allow: CidrList::default(),
            unlimited: options.unlimited,
            idle: Some(limits.idle_timeout),
            tcp_keepalive: Some(TCP_KEEPALIVE),
        },
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper applies the header timeout only with a timer; it runs from the first wait for a
    // request head (and between keep-alive requests) until the head is complete.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        // HTTP/2 WebSockets (Socket.IO) need CONNECT, as axum::serve enables it.
        .enable_connect_protocol()
        .max_concurrent_streams(128);
    let builder = Arc::new(builder);
    let tracker = TaskTracker::new();
    let conns = CancellationToken::new();
    loop {
        let (io, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            c = guard.accept(&listener) => c,
        };
        let app = app.clone();
        let builder = builder.clone();
        let stop = conns.clone();
        match &tls {
            None => {
                tracker.spawn(serve_connection(io, peer, app, builder, stop));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tracker.spawn(async move {
                    // The acceptor bounds the handshake by the header timeout.
                    let io = tokio::select! {
                        _ = stop.cancelled() => return,
                        r = acceptor.accept(io, ()) => match r {
                            Ok((io, ())) => io,
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed.");
                                return;
                            }
                        },
                    };
                    serve_connection(io, peer, app, builder, stop).await;
                });
            }
        }
    }
    // Stop accepting at once (the port refuses), then let open requests finish briefly.
    drop(listener);
    conns.cancel();
    tracker.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE * 2, tracker.wait()).await;
    Ok(())
}

/// A rustls acceptor for the PEM files, with ALPN for HTTP/2 and HTTP/1.1, whose handshake
/// must end within `handshake`.
async fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
    handshake: Duration,
) -> io::Result<axum_server::tls_rustls::RustlsAcceptor> {
    // One process-wide provider (aws-lc-rs, as tonic and reqwest use); already set is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|e| {
            io::Error::other(format!(
                "server.tls: cannot use {} and {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    Ok(axum_server::tls_rustls::RustlsAcceptor::new(config).handshake_timeout(handshake))
}

/// Serves one connection until it ends, or, once `stop` is cancelled, for a short grace.
async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            tower_service::Service::call(&mut app, req)
        });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(Canned::new(io)), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error.");
            }
            return;
        }
        _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
}

/// The replies hyper writes itself, without the app, for requests it cannot parse.
const CANNED_STATUSES: [&[u8]; 3] = [b"400 ", b"414 ", b"431 "];

/// The only header lines of such a reply (hyper adds no others).
const CANNED_HEADERS: [&[u8]; 3] = [b"content-length:", b"date:", b"connection:"];

/// An HTTP/1 connection's stream that adds the security headers to the replies hyper makes on
/// its own: `400` (a malformed request line or header), `414` (a URI over 64 KiB) and `431`
/// (a head over hyper's buffer). hyper has no hook for them and writes them straight to the
/// connection, so they are recognised here, by their exact shape: a status line with one of
/// those codes at the start of a write, then only `content-length`, `date` and `connection`
/// lines. A reply of the app always has the security headers already (the router adds them
/// to every response), so it never has that shape and passes untouched.
#[derive(Debug)]
struct Canned<I> {
    io: I,
    /// A rewritten head not yet written, sent before anything else.
    pending: Vec<u8>,
    sent: usize,
}

impl<I> Canned<I> {
    /// Wraps a connection's stream.
    fn new(io: I) -> Self {
        Self {
            io,
            pending: Vec::new(),
            sent: 0,
        }
    }
}

/// `buf`'s head (up to and without the blank line) when it is one of hyper's own error
/// replies, and its length with the blank line.
fn canned_head(buf: &[u8]) -> Option<(&[u8], usize)> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    if !CANNED_STATUSES.iter().any(|s| rest.starts_with(s)) {
        return None;
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &buf[..end];
    let only_canned_lines = head.split(|&b| b == b'\n').skip(1).all(|line| {
        let line = line.to_ascii_lowercase();
        CANNED_HEADERS.iter().any(|h| line.starts_with(h))
    });
    only_canned_lines.then_some((head, end + 4))
}

/// `head` with the security headers added, and the blank line.
fn with_security_headers(head: &[u8]) -> Vec<u8> {
    let mut out = head.to_vec();
    for (name, value) in security_headers() {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
    out
}

impl<I: AsyncWrite + Unpin> Canned<I> {
    /// Writes what is pending; `Ready(Ok)` once nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.io).poll_write(cx, &self.pending[self.sent..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Canned<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Canned<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_pending(cx))?;
        if let Some((head, len)) = canned_head(buf) {
            this.pending = with_security_headers(head);
            // The head is taken whole: it goes out from `pending`, before anything after it.
            let _ = this.poll_pending(cx)?;
            return Poll::Ready(Ok(len));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    // Not vectored: hyper then hands a reply's head to one `poll_write`, where it is seen.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_replies_get_the_security_headers() {
        let reply = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 23:00:00 GMT\r\n\r\n";
        let (head, len) = canned_head(reply).expect("hyper's 400");
        assert_eq!(len, reply.len());
        let out = String::from_utf8(with_security_headers(head)).expect("text");
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"));
        assert!(
            out.contains("\r\nx-content-type-options: nosniff\r\n"),
            "{out}"
        );
        assert!(out.contains("\r\ncontent-security-policy: "), "{out}");
        assert!(out.ends_with("\r\n\r\n"));
        assert!(
            canned_head(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\r\n"
            )
            .is_some()
        );
        assert!(canned_head(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n").is_some());
    }

    #[test]
    fn the_apps_replies_and_bodies_pass_untouched() {
        // The app's 400 carries other headers (at least the security ones).
        assert!(canned_head(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\n\r\n{}").is_none());
        assert!(canned_head(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(canned_head(b"{\"error\":\"HTTP/1.1 400 \"}").is_none());
        // A head not complete in this write is left alone.
        assert!(canned_head(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n").is_none());
    }
}
