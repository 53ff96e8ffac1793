//! The HTTP middleware of both daemons, outermost first: security headers, the client's
//! address and the allow-list ([`client_and_allow`]), the host name the request names
//! ([`allowed_host`]), the session ([`session_layer`]) and who it belongs to ([`principal`]:
//! the session's user, or an API token's),
//! the Engine.IO handshake gate ([`engine_gate`]) in front of Socket.IO, and the CSRF check on
//! every state-changing route ([`csrf`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::security::sessions::Sessions;

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::security::handshake::{Full, Handshakes};
use crate::security::login::{LOGIN_KEY, Login};
use crate::security::net::{self, Client};
use crate::security::tokens::{self, BearerAuth};
use crate::security::{Principal, Security};

/// The Content-Security-Policy: scripts, styles and connections from this origin only; no
/// inline scripts; no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The headers every response carries (unless a handler set its own).
pub fn security_headers() -> [(header::HeaderName, &'static str); 6] {
    [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), payment=()",
        ),
    ]
}

/// The session cookie layer: `smon_session`, HttpOnly, SameSite=Strict, Secure over TLS,
/// scoped to the base path, ending after the idle time.
pub fn session_layer(security: &Security, base: &str) -> SessionManagerLayer<Sessions> {
    let idle = security.idle();
    SessionManagerLayer::new(security.sessions())
        .with_name("smon_session")
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(security.http.secure_cookies())
        .with_path(if base.is_empty() {
            "/".to_owned()
        } else {
            format!("{base}/")
        })
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::seconds(idle.as_secs() as i64),
        ))
        .with_always_save(true)
}

/// Works out the client (peer, or forwarded from a trusted proxy), refuses it with 403 when
/// `allow_from` does not list it, and keeps it in the request's extensions.
pub async fn client_and_allow(
    State(sec): State<Arc<Security>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let h = &sec.http;
    let client = net::client(
        peer.ip(),
        req.headers(),
        h.behind_proxy,
        &h.trusted_proxies,
        h.tls.is_some(),
    );
    if !h.allow_from.is_empty() && !h.allow_from.contains(client.ip) {
        tracing::warn!(client = %client.ip, path = %crate::security::login::log_safe(req.uri().path()), "Refused by server.allow_from.");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{} is not allowed by server.allow_from", client.ip),
        )
        .into_response();
    }
    req.extensions_mut().insert(client);
    next.run(req).await
}

/// At most one log line per interval for a refusal anyone can trigger at will, with the count
/// of those left out.
#[derive(Debug, Default)]
pub struct LogEvery {
    last_ms: AtomicU64,
    skipped: AtomicU64,
}

impl LogEvery {
    /// Whether to log now (at most once per `every_ms`); `Some(n)`: log, `n` were left out since
    /// the last line.
    pub fn pass(&self, now_ms: u64, every_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if (last == 0 || now_ms.saturating_sub(last) >= every_ms)
            && self
                .last_ms
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.skipped.swap(0, Ordering::Relaxed));
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// A client-sent value as a message or a log shows it: control characters escaped, at most
/// 100 characters.
fn shown(s: &str) -> String {
    let p = smon_runtime::config::printable(s);
    match p.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &p[..i]),
        None => p.into_owned(),
    }
}

/// Whether the request came from a trusted proxy, whose forwarded headers count.
fn from_trusted_proxy(sec: &Security, req: &Request) -> bool {
    sec.http.behind_proxy
        && req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|c| sec.http.trusted_proxies.contains(c.0.ip()))
}

/// Refuses with 421 a request whose host name (`Host`, the URI's authority in HTTP/2, or a
/// trusted proxy's `X-Forwarded-Host`) is not in `server.allowed_hosts`: a page of another
/// site whose name was re-pointed at this server (DNS rebinding) reads nothing, on any route,
/// `/metrics` and `/healthz` included (health probes use an address or `localhost`, which
/// always pass). A request naming no host at all (HTTP/1.0) is no browser's and passes.
pub async fn allowed_host(State(sec): State<Arc<Security>>, req: Request, next: Next) -> Response {
    let trusted = from_trusted_proxy(&sec, &req);
    let named = served_authority(req.headers(), trusted).or_else(|| {
        req.uri()
            .authority()
            .map(|a| a.as_str().to_ascii_lowercase())
    });
    match named {
        Some(host) if !sec.http.allowed_hosts.allows(&host) => {
            if let Some(skipped) = sec.host_refusals.pass(now_ms(), 10_000) {
                tracing::warn!(
                    host = %shown(&host),
                    path = %crate::security::login::log_safe(req.uri().path()),
                    skipped,
                    "Refused a request for a host name not in server.allowed_hosts."
                );
            }
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this server does not answer to the host name '{}' (server.allowed_hosts \
                     accepts: {}); this refusal stops DNS rebinding",
                    shown(&host),
                    sec.http.allowed_hosts.describe()
                ),
            )
            .into_response()
        }
        _ => next.run(req).await,
    }
}

/// Answers an Engine.IO handshake (a `/socket.io/` request without `sid`) before socketioxide
/// allocates a session: 401 without a live session on a dashboard that is not public; on a
/// public one, anonymous visitors within their limits get a place ([`Handshakes`]), the others
/// 429 (their address) or 503 (everyone's). Logged-in users pass. Must run inside
/// [`principal`] and outside the Socket.IO layer.
pub async fn engine_gate(
    State(gate): State<Arc<Handshakes>>,
    mut req: Request,
    next: Next,
) -> Response {
    if !gate.is_handshake(req.uri()) {
        return next.run(req).await;
    }
    match req.extensions().get::<Principal>() {
        Some(Principal::User { .. }) => next.run(req).await,
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login required: the Socket.IO handshake needs a session (log in on the dashboard's \
             login page first)"
                .into(),
        )
        .into_response(),
        Some(Principal::Anonymous) => {
            let ip = req
                .extensions()
                .get::<Client>()
                .map(|c| c.ip)
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            match gate.admit(ip) {
                Ok(lease) => {
                    req.extensions_mut().insert(lease);
                    next.run(req).await
                }
                Err(full) => {
                    let status = match full {
                        Full::Address { .. } => StatusCode::TOO_MANY_REQUESTS,
                        Full::Total { .. } => StatusCode::SERVICE_UNAVAILABLE,
                    };
                    let mut r = ApiError::new(status, full.to_string()).into_response();
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("10"));
                    r
                }
            }
        }
    }
}

/// Puts the [`Principal`] of the request in its extensions: the token's of a request with
/// `Authorization: Bearer smon_...` (a wrong token is refused here), the logged-in user of a live
/// session, or, on a public dashboard, [`Principal::Anonymous`]. A session past its absolute
/// lifetime, or of a user who no longer exists, is ended here.
pub async fn principal(
    State(sec): State<Arc<Security>>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Response {
    // Only `smon_` tokens are ours: a bearer token a proxy in front passes on (an OAuth
    // proxy's ID token) is left alone, and the session decides.
    if let Some(value) = req.headers().get(header::AUTHORIZATION)
        && let Some(token) = value
            .to_str()
            .ok()
            .and_then(tokens::bearer)
            .filter(|t| t.starts_with(tokens::PREFIX))
    {
        let token = token.to_owned();
        let client = req
            .extensions()
            .get::<Client>()
            .map(|c| c.ip)
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let path = crate::security::login::log_safe(req.uri().path());
        return match by_token(&sec, client, &path, token).await {
            Ok(p) => {
                req.extensions_mut().insert(p);
                req.extensions_mut().insert(BearerAuth);
                next.run(req).await
            }
            Err(refused) => refused,
        };
    }
    let auth = &sec.http.auth;
    let mut who = None;
    if let Ok(Some(l)) = session.get::<Login>(LOGIN_KEY).await {
        let expires_ms = l.login_ms.saturating_add(auth.absolute.as_millis() as u64);
        let known = sec
            .users
            .session_valid(&l.user, l.role, l.login_ms, &l.password_mark);
        if now_ms() < expires_ms && known {
            who = Some(Principal::User {
                name: l.user,
                role: l.role,
                expires_ms,
                session: session.id().map(|i| i.to_string()).unwrap_or_default(),
            });
        } else {
            let _ = session.flush().await;
        }
    }
    if who.is_none() && auth.public_read_only {
        who = Some(Principal::Anonymous);
    }
    if let Some(p) = who {
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

/// The principal of a bearer `token` ([`crate::security::tokens`]): a user named
/// `token:<name>` with the token's role. A wrong or
/// revoked token is 401 and counts as a failed login of the client's address; past the
/// throttle's limit, 429. The token itself is never logged.
async fn by_token(
    sec: &Arc<Security>,
    client: std::net::IpAddr,
    path: &str,
    token: String,
) -> Result<Principal, Response> {
    let Some(store) = sec.tokens() else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "API tokens need the server's database (storage), which is off here".into(),
        )
        .into_response());
    };
    let now = now_ms();
    let found = tokio::task::spawn_blocking(move || store.find(&tokens::hash(&token), now))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    match found {
        Ok(Some(t)) => Ok(Principal::User {
            name: t.actor(),
            role: t.role,
            // A socket opened with a token lives no longer than a login session would.
            expires_ms: now.saturating_add(sec.http.auth.absolute.as_millis() as u64),
            session: String::new(),
        }),
        Ok(None) => {
            let refused = sec.throttle.reserve(client, tokens::THROTTLE_NAME, now);
            if let Some(skipped) = sec.throttle.log.admit(now) {
                tracing::warn!(
                    client = %client,
                    path = %path,
                    suppressed = skipped,
                    "Refused a wrong or revoked API token."
                );
            }
            match refused {
                Ok(_) => {
                    let s = sec.clone();
                    tokio::task::spawn_blocking(move || s.throttle.persist_logged());
                    Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "invalid or revoked API token (make one with `smon-aggregator token \
                         create --name NAME --role viewer|admin`)"
                            .into(),
                    )
                    .into_response())
                }
                Err(r) => {
                    let wait = r.wait.as_secs().max(1);
                    let mut res = ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("too many wrong API tokens from {client}; try again in {wait} s"),
                    )
                    .into_response();
                    res.headers_mut()
                        .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
                    Err(res)
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "Cannot look API tokens up.");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "API tokens cannot be checked now (the database failed); try again".into(),
            )
            .into_response())
        }
    }
}

/// The authority (`host[:port]`) the browser used: `Host`, or a trusted proxy's
/// `X-Forwarded-Host`.
pub fn served_authority(headers: &HeaderMap, from_trusted_proxy: bool) -> Option<String> {
    let fwd = from_trusted_proxy
        .then(|| headers.get("x-forwarded-host"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim);
    fwd.or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .map(|s| s.to_ascii_lowercase())
}

/// The authority of an `Origin` header value (`https://example.org:8443` → `example.org:8443`),
/// without a default port for the scheme.
pub fn origin_authority(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.split_once("://")?;
    let auth = rest.split('/').next()?.to_ascii_lowercase();
    if auth.is_empty() {
        return None;
    }
    let default = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    Some(
        auth.strip_suffix(default)
            .map(str::to_owned)
            .unwrap_or(auth),
    )
}

/// The scheme of an `Origin` header value (`https://example.org` → `https`).
fn origin_scheme(origin: &str) -> Option<&str> {
    origin.split_once("://").map(|(s, _)| s)
}

/// `authority` without the default port of `scheme`.
fn without_default_port(authority: &str, https: bool) -> &str {
    authority
        .strip_suffix(if https { ":443" } else { ":80" })
        .unwrap_or(authority)
}

/// Refuses state-changing requests (anything but GET, HEAD, OPTIONS) that do not come from a
/// page of this server: the `Origin` must match the scheme and the host the request was sent
/// to (an `https://` page is not this server when it is served over plain HTTP, nor the
/// reverse); without `Origin`, `Sec-Fetch-Site` must say `same-origin`. Scripts must send an
/// `Origin` header.
pub async fn csrf(State(sec): State<Arc<Security>>, req: Request, next: Next) -> Response {
    // A request with a valid bearer token is no browser's doing (see `tokens`).
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || req.extensions().get::<BearerAuth>().is_some()
    {
        return next.run(req).await;
    }
    let h = req.headers();
    let trusted = from_trusted_proxy(&sec, &req);
    let https = req
        .extensions()
        .get::<Client>()
        .map(|c| c.https)
        .unwrap_or(sec.http.tls.is_some());
    let scheme = if https { "https" } else { "http" };
    let served = served_authority(h, trusted).or_else(|| {
        req.uri()
            .authority()
            .map(|a| a.as_str().to_ascii_lowercase())
    });
    let verdict = match h.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("")) {
        Some(origin) => {
            let same = match (origin_authority(origin), &served) {
                (Some(o), Some(s)) => {
                    origin_scheme(origin) == Some(scheme) && o == without_default_port(s, https)
                }
                _ => false,
            };
            if same {
                Ok(())
            } else {
                Err(format!(
                    "cross-site request refused: Origin '{}' is not this server ({scheme}://{})",
                    shown(origin),
                    served
                        .as_deref()
                        .map(shown)
                        .unwrap_or_else(|| "no Host header".into())
                ))
            }
        }
        None => match h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            Some("same-origin") => Ok(()),
            Some(other) => Err(format!(
                "cross-site request refused (Sec-Fetch-Site: {})",
                shown(other)
            )),
            None => Err(
                "state-changing requests need an Origin header (browsers send one; scripts: add \
                 -H 'Origin: <the dashboard URL>')"
                    .into(),
            ),
        },
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(why) => {
            tracing::warn!(path = %crate::security::login::log_safe(req.uri().path()), reason = %why, "CSRF check refused a request.");
            ApiError::new(StatusCode::FORBIDDEN, why).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_authority("https://Example.org:8443").as_deref(),
            Some("example.org:8443")
        );
        assert_eq!(
            origin_authority("https://example.org:443").as_deref(),
            Some("example.org")
        );
        assert_eq!(
            origin_authority("http://127.0.0.1:8080/x").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(origin_authority("null"), None);
        assert_eq!(origin_authority("ftp://x"), None);
        assert_eq!(origin_scheme("https://x"), Some("https"));
        assert_eq!(without_default_port("x:443", true), "x");
        assert_eq!(without_default_port("x:443", false), "x:443");
        assert_eq!(without_default_port("x:80", false), "x");
    }

    #[test]
    fn log_lines_of_refusals_are_rate_limited() {
        let l = LogEvery::default();
        assert_eq!(l.pass(1_000, 10_000), Some(0));
        assert_eq!(l.pass(2_000, 10_000), None);
        assert_eq!(l.pass(9_000, 10_000), None);
        assert_eq!(l.pass(11_000, 10_000), Some(2));
        assert_eq!(l.pass(11_001, 10_000), None);
    }
}
