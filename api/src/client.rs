//! A small typed client of the REST API (`web/PROTOCOL.md`): it logs in with a session cookie
//! (or sends an API token, [`Client::with_token`]),
//! sends the `Origin` the server's CSRF check expects on every POST, and returns the wire
//! types of [`crate::wire`], [`crate::auth`] and [`crate::history`]. Every refusal comes back as
//! [`ClientError::Refused`] with the server's reason.

use std::time::Duration;

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;

use crate::audit::AuditEntry;
use crate::auth::{
    ChangePassword, ErrorBody, LoggedIn, LoginRequest, Me, NewUser, ResetPassword, Role, SetRole,
    UserEntry,
};
use crate::history::{GpuUsageAnswer, ProcessesAnswer, SeriesAnswer, StorageAnswer, UsageBy};
use crate::wire::{Cluster, EventRecord, HostDetail, HostRow};

/// The query of a series route.
fn series_pairs(
    metrics: &[&str],
    from_ms: u64,
    to_ms: u64,
    points: usize,
) -> Vec<(&'static str, String)> {
    vec![
        ("metrics", metrics.join(",")),
        ("from", from_ms.to_string()),
        ("to", to_ms.to_string()),
        ("points", points.to_string()),
    ]
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an `http://` or `https://` URL.
    #[error("'{url}' is not a server URL (e.g. http://127.0.0.1:8080/): {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (TLS settings).
    #[error("cannot set up the HTTP client: {0}")]
    Setup(#[source] reqwest::Error),
    /// The server did not answer (refused, timed out, TLS failure...).
    #[error("{url}: no answer: {source}")]
    Transport {
        /// The URL asked.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{url}: {status}: {reason}")]
    Refused {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's reason (`{"error": ...}`), or the body's start.
        reason: String,
    },
    /// The answer was not the JSON expected.
    #[error("{url}: unexpected answer: {source}")]
    Decode {
        /// The URL asked.
        url: String,
        /// What did not parse.
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How the client connects.
#[derive(Debug, Clone)]
pub struct Options {
    /// Deadline of each request.
    pub timeout: Duration,
    /// Extra root certificate (PEM) for a server with a private CA.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any certificate (a test server on loopback only).
    pub accept_invalid_certs: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            ca_pem: None,
            accept_invalid_certs: false,
        }
    }
}

/// A session with one smon server. Cloning shares the session (the cookie jar).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The base URL, with a trailing slash (`http://host:port/` or `.../smon/`).
    base: Url,
    /// `scheme://host:port` of the base, sent as `Origin` on POSTs.
    origin: String,
    /// An API token sent as `Authorization: Bearer` on every request, instead of a login.
    bearer: Option<Token>,
}

/// A token, never shown by `Debug`.
#[derive(Clone)]
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080/`, or `.../smon/` behind
    /// a proxy that keeps the prefix), with default [`Options`].
    pub fn new(base: &str) -> Result<Self, ClientError> {
        Self::with_options(base, Options::default())
    }

    /// A client of the server at `base` with `opts`.
    pub fn with_options(base: &str, opts: Options) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: base.to_owned(),
            reason: reason.to_owned(),
        };
        let mut url = Url::parse(base).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("expected http:// or https:// and a host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a base URL has no query or fragment"));
        }
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        let mut b = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(opts.timeout)
            .danger_accept_invalid_certs(opts.accept_invalid_certs);
        if let Some(pem) = &opts.ca_pem {
            let cert = reqwest::Certificate::from_pem(pem).map_err(ClientError::Setup)?;
            b = b.add_root_certificate(cert);
        }
        let http = b.build().map_err(ClientError::Setup)?;
        let origin = url.origin().ascii_serialization();
        Ok(Self {
            http,
            base: url,
            origin,
            bearer: None,
        })
    }

    /// This client with the API token `token` (`smon-aggregator token create`) sent as
    /// `Authorization: Bearer` on every request: no login is needed.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(Token(token.into()));
        self
    }

    /// The base URL (with a trailing slash).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `POST /api/v1/login`: starts the session; later calls carry its cookie.
    pub async fn login(&self, user: &str, password: &str) -> Result<LoggedIn, ClientError> {
        let body = LoginRequest {
            user: user.to_owned(),
            password: password.to_owned(),
        };
        self.json(Method::POST, &["api", "v1", "login"], Some(&body))
            .await
    }

    /// `POST /api/v1/logout`: ends the session.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.send(Method::POST, &["api", "v1", "logout"], None::<&()>)
            .await
            .map(drop)
    }

    /// `GET /api/v1/me`: who this session is.
    pub async fn me(&self) -> Result<Me, ClientError> {
        self.get(&["api", "v1", "me"]).await
    }

    /// `GET /api/v1/admin/users` (admins only).
    pub async fn users(&self) -> Result<Vec<UserEntry>, ClientError> {
        self.get(&["api", "v1", "admin", "users"]).await
    }

    /// `POST /api/v1/me/password`: changes this session's own password (needs the current
    /// one). The session stays; the user's other sessions end.
    pub async fn change_password(&self, current: &str, new: &str) -> Result<(), ClientError> {
        let body = ChangePassword {
            current: current.to_owned(),
            new: new.to_owned(),
        };
        self.send(Method::POST, &["api", "v1", "me", "password"], Some(&body))
            .await
            .map(drop)
    }

    /// `POST /api/v1/admin/users`: adds a user (admins only).
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        password: &str,
    ) -> Result<UserEntry, ClientError> {
        let body = NewUser {
            name: name.to_owned(),
            role,
            password: password.to_owned(),
        };
        self.json(Method::POST, &["api", "v1", "admin", "users"], Some(&body))
            .await
    }

    /// `DELETE /api/v1/admin/users/{name}`: removes a user (admins only; never the last
    /// admin).
    pub async fn remove_user(&self, name: &str) -> Result<(), ClientError> {
        self.send(
            Method::DELETE,
            &["api", "v1", "admin", "users", name],
            None::<&()>,
        )
        .await
        .map(drop)
    }

    /// `PUT /api/v1/admin/users/{name}/role`: sets a user's role (admins only; never demotes
    /// the last admin).
    pub async fn set_role(&self, name: &str, role: Role) -> Result<(), ClientError> {
        self.send(
            Method::PUT,
            &["api", "v1", "admin", "users", name, "role"],
            Some(&SetRole { role }),
        )
        .await
        .map(drop)
    }

    /// `PUT /api/v1/admin/users/{name}/password`: sets a user's password (admins only); the
    /// user's sessions end.
    pub async fn reset_password(&self, name: &str, password: &str) -> Result<(), ClientError> {
        let body = ResetPassword {
            password: password.to_owned(),
        };
        self.send(
            Method::PUT,
            &["api", "v1", "admin", "users", name, "password"],
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `GET /api/v1/clusters`.
    pub async fn clusters(&self) -> Result<Vec<Cluster>, ClientError> {
        self.get(&["api", "v1", "clusters"]).await
    }

    /// `GET /api/v1/hosts`: every overview row.
    pub async fn hosts(&self) -> Result<Vec<HostRow>, ClientError> {
        self.get(&["api", "v1", "hosts"]).await
    }

    /// `GET /api/v1/hosts/{id}`: one host's row, static facts and latest sample.
    pub async fn host(&self, id: &str) -> Result<HostDetail, ClientError> {
        self.get(&["api", "v1", "hosts", id]).await
    }

    /// `GET /api/v1/hosts/{id}/events`: the recent samples of one host, in brief.
    pub async fn events(&self, id: &str) -> Result<Vec<EventRecord>, ClientError> {
        self.get(&["api", "v1", "hosts", id, "events"]).await
    }

    /// `GET /api/v1/hosts/{id}/history`: one host's stored series (`metrics` as in
    /// PROTOCOL.md, times in ms since the epoch).
    pub async fn host_history(
        &self,
        id: &str,
        metrics: &[&str],
        from_ms: u64,
        to_ms: u64,
        points: usize,
    ) -> Result<SeriesAnswer, ClientError> {
        let q = series_pairs(metrics, from_ms, to_ms, points);
        self.get_query(&["api", "v1", "hosts", id, "history"], &q)
            .await
    }

    /// `GET /api/v1/clusters/{name}/history`: a cluster's aggregate series.
    pub async fn cluster_history(
        &self,
        name: &str,
        metrics: &[&str],
        from_ms: u64,
        to_ms: u64,
        points: usize,
    ) -> Result<SeriesAnswer, ClientError> {
        let q = series_pairs(metrics, from_ms, to_ms, points);
        self.get_query(&["api", "v1", "clusters", name, "history"], &q)
            .await
    }

    /// `GET /api/v1/hosts/{id}/processes?at=`: the stored top processes nearest `at_ms`.
    pub async fn processes_at(&self, id: &str, at_ms: u64) -> Result<ProcessesAnswer, ClientError> {
        self.get_query(
            &["api", "v1", "hosts", id, "processes"],
            &[("at", at_ms.to_string())],
        )
        .await
    }

    /// `GET /api/v1/gpus/usage`: GPU-hours over a range, grouped `by`, of one host or all.
    pub async fn gpu_usage(
        &self,
        from_ms: u64,
        to_ms: u64,
        by: UsageBy,
        host: Option<&str>,
    ) -> Result<GpuUsageAnswer, ClientError> {
        let by = match by {
            UsageBy::User => "user",
            UsageBy::Host => "host",
            UsageBy::Gpu => "gpu",
        };
        let mut q = vec![
            ("from", from_ms.to_string()),
            ("to", to_ms.to_string()),
            ("by", by.to_owned()),
        ];
        if let Some(h) = host {
            q.push(("host", h.to_owned()));
        }
        self.get_query(&["api", "v1", "gpus", "usage"], &q).await
    }

    /// `GET /api/v1/admin/storage` (admins): the database's size, tiers and writers.
    pub async fn storage(&self) -> Result<StorageAnswer, ClientError> {
        self.get(&["api", "v1", "admin", "storage"]).await
    }

    /// `GET /api/v1/audit` (admins): the audit log, newest first. `before`: only records
    /// with a smaller id (the next page).
    pub async fn audit(
        &self,
        limit: u32,
        before: Option<u64>,
        action: Option<&str>,
        host: Option<&str>,
    ) -> Result<Vec<AuditEntry>, ClientError> {
        let mut q = vec![("limit", limit.to_string())];
        if let Some(b) = before {
            q.push(("before", b.to_string()));
        }
        if let Some(a) = action {
            q.push(("action", a.to_owned()));
        }
        if let Some(h) = host {
            q.push(("host", h.to_owned()));
        }
        self.get_query(&["api", "v1", "audit"], &q).await
    }

    /// `GET /api/v1/applications`: the fleet's supervisord programs and the declared
    /// applications.
    pub async fn applications(
        &self,
    ) -> Result<crate::applications::ApplicationsAnswer, ClientError> {
        self.get(&["api", "v1", "applications"]).await
    }

    /// `POST /api/v1/applications/{name}/{verb}` (admins), or with `name` `None`
    /// `POST /api/v1/applications/{verb}`: every declared application, started in
    /// `start_after` order, stopped in reverse.
    pub async fn application_action(
        &self,
        name: Option<&str>,
        verb: crate::applications::AppVerb,
    ) -> Result<crate::applications::AppActionResult, ClientError> {
        let body = serde_json::json!({});
        match name {
            Some(n) => {
                self.post(&["api", "v1", "applications", n, verb.as_str()], &body)
                    .await
            }
            None => {
                self.post(&["api", "v1", "applications", verb.as_str()], &body)
                    .await
            }
        }
    }

    /// `POST` of `body` to the route `segments` below the base, its answer as JSON: for
    /// routes this client has no method for yet.
    pub async fn post<T: DeserializeOwned, B: serde::Serialize>(
        &self,
        segments: &[&str],
        body: &B,
    ) -> Result<T, ClientError> {
        self.json(Method::POST, segments, Some(body)).await
    }

    /// `GET` of the route `segments` below the base with the query `pairs`, its answer as
    /// JSON: for routes this client has no method for yet.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        pairs: &[(&str, String)],
    ) -> Result<T, ClientError> {
        self.get_query(segments, pairs).await
    }

    /// `GET` of the route `segments` below the base with the query `pairs`, its answer as
    /// text (invalid UTF-8 replaced).
    pub async fn get_text(
        &self,
        segments: &[&str],
        pairs: &[(&str, String)],
    ) -> Result<String, ClientError> {
        let mut url = self.url(segments);
        if !pairs.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let (_, bytes) = self.send_to(Method::GET, url, None::<&()>).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `GET /healthz`: `Ok` while the live view works.
    pub async fn healthz(&self) -> Result<(), ClientError> {
        self.send(Method::GET, &["healthz"], None::<&()>)
            .await
            .map(drop)
    }

    /// The URL of `segments` below the base, each segment percent-encoded (host ids hold `:`).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty().extend(segments);
        }
        url
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ClientError> {
        self.json(Method::GET, segments, None::<&()>).await
    }

    async fn json<T: DeserializeOwned, B: serde::Serialize>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let (url, bytes) = self.send(method, segments, body).await?;
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode { url, source })
    }

    async fn send<B: serde::Serialize>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<(String, Vec<u8>), ClientError> {
        self.send_to(method, self.url(segments), body).await
    }

    /// `GET` of `segments` with the query `pairs`, as JSON.
    async fn get_query<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        pairs: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let mut url = self.url(segments);
        if !pairs.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let (shown, bytes) = self.send_to(Method::GET, url, None::<&()>).await?;
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode { url: shown, source })
    }

    async fn send_to<B: serde::Serialize>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<(String, Vec<u8>), ClientError> {
        let shown = url.to_string();
        let mut req = self.http.request(method.clone(), url);
        if let Some(Token(t)) = &self.bearer {
            req = req.bearer_auth(t);
        }
        if method != Method::GET {
            // The server refuses state-changing requests whose Origin is not itself (CSRF).
            req = req.header(reqwest::header::ORIGIN, &self.origin);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |source| ClientError::Transport {
            url: shown.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?.to_vec();
        if status.is_success() {
            return Ok((shown, bytes));
        }
        let reason = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => b.error,
            Err(_) => String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        };
        Err(ClientError::Refused {
            url: shown,
            status: status.as_u16(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_get_a_trailing_slash() {
        let c = Client::new("http://127.0.0.1:8080").expect("client");
        assert_eq!(c.base().as_str(), "http://127.0.0.1:8080/");
        let c = Client::new("https://example.org/smon").expect("client");
        assert_eq!(c.base().as_str(), "https://example.org/smon/");
        for bad in ["127.0.0.1:8080", "ftp://x/", "http://x/?a=1", "not a url"] {
            let e = Client::new(bad).expect_err(bad);
            assert!(matches!(e, ClientError::BadUrl { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn urls_encode_host_ids_below_the_base_path() {
        let c = Client::new("http://h:1/smon/").expect("client");
        assert_eq!(
            c.url(&["api", "v1", "hosts", "lab:node 1/x", "events"])
                .as_str(),
            "http://h:1/smon/api/v1/hosts/lab:node%201%2Fx/events"
        );
        let c = Client::new("http://h:1").expect("client");
        assert_eq!(c.url(&["healthz"]).as_str(), "http://h:1/healthz");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_transport_error_naming_the_url() {
        // Port 9 on loopback: nothing listens (discard is not run on test machines).
        let c = Client::with_options(
            "http://127.0.0.1:9/",
            Options {
                timeout: Duration::from_secs(2),
                ..Options::default()
            },
        )
        .expect("client");
        let e = c.hosts().await.expect_err("nothing listens");
        assert!(matches!(e, ClientError::Transport { .. }), "{e}");
        assert!(e.to_string().contains("127.0.0.1:9/api/v1/hosts"), "{e}");
        assert_eq!(e.status(), None);
    }
}
