//! The HTTP middleware of both daemons, outermost first: security headers, the client's
//! address and the allow-list ([`client_and_allow`]), the session ([`session_layer`]) and who
//! it belongs to ([`principal`]), and the CSRF check on every state-changing route ([`csrf`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, MemoryStore, Session, SessionManagerLayer};

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::security::login::{LOGIN_KEY, Login};
use crate::security::net;
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
pub fn session_layer(security: &Security, base: &str) -> SessionManagerLayer<MemoryStore> {
    let idle = security.idle();
    SessionManagerLayer::new(MemoryStore::default())
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
        tracing::warn!(client = %client.ip, path = %req.uri().path(), "Refused by server.allow_from.");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{} is not allowed by server.allow_from", client.ip),
        )
        .into_response();
    }
    req.extensions_mut().insert(client);
    next.run(req).await
}

/// Puts the [`Principal`] of the request in its extensions: the logged-in user of a live
/// session, or, on a public dashboard, [`Principal::Anonymous`]. A session past its absolute
/// lifetime, or of a user who no longer exists, is ended here.
pub async fn principal(
    State(sec): State<Arc<Security>>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Response {
    let auth = &sec.http.auth;
    let mut who = None;
    if let Ok(Some(l)) = session.get::<Login>(LOGIN_KEY).await {
        let expires_ms = l.login_ms.saturating_add(auth.absolute.as_millis() as u64);
        let known = sec.users.session_valid(&l.user, l.role, l.login_ms);
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

/// The authority (`host[:port]`) the browser used: `Host`, or a trusted proxy's
/// `X-Forwarded-Host`.
fn served_authority(headers: &HeaderMap, from_trusted_proxy: bool) -> Option<String> {
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

/// Refuses state-changing requests (anything but GET, HEAD, OPTIONS) that do not come from a
/// page of this server: the `Origin` must match the host the request was sent to; without
/// `Origin`, `Sec-Fetch-Site` must say `same-origin`. Scripts must send an `Origin` header.
pub async fn csrf(State(sec): State<Arc<Security>>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let h = req.headers();
    let trusted = sec.http.behind_proxy
        && req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|c| sec.http.trusted_proxies.contains(c.0.ip()));
    let served = served_authority(h, trusted);
    let verdict = match h.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("")) {
        Some(origin) => {
            let strip = |s: String| -> String {
                s.strip_suffix(":443")
                    .or_else(|| s.strip_suffix(":80"))
                    .map(str::to_owned)
                    .unwrap_or(s)
            };
            match (origin_authority(origin), served) {
                (Some(o), Some(s)) if o == strip(s.clone()) || o == s => Ok(()),
                (_, s) => Err(format!(
                    "cross-site request refused: Origin '{origin}' is not this server ({})",
                    s.unwrap_or_else(|| "no Host header".into())
                )),
            }
        }
        None => match h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            Some("same-origin") => Ok(()),
            Some(other) => Err(format!(
                "cross-site request refused (Sec-Fetch-Site: {other})"
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
            tracing::warn!(path = %req.uri().path(), reason = %why, "CSRF check refused a request.");
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
    }
}
