//! The fleet through an aggregator's REST API (`smonctl top --server`), with
//! [`smon_api::Client`]: a login with a user and password, or none on a public read-only
//! dashboard; a session that expires is renewed once with the same credentials. Every failure
//! comes back as a [`FleetError`] whose message is a sentence saying what to check.

use std::error::Error as _;

use smon_api::Client;
use smon_api::client::{ClientError, Options};
use smon_api::wire::{HostDetail, HostRow};

/// A user and password for the dashboard.
#[derive(Clone)]
pub struct Login {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why the server gave no answer, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// The URL is not one, or the client cannot be set up.
    #[error("{0}")]
    Settings(String),
    /// Nothing answers there.
    #[error(
        "cannot reach the server at {url}: {reason}. Is smon-aggregator running, and is this its dashboard address (server.host, server.port)?"
    )]
    Unreachable {
        /// Where.
        url: String,
        /// Refused, timed out, TLS...
        reason: String,
    },
    /// The dashboard needs a login and none was given.
    #[error(
        "the server at {0} needs a login (it is not a public read-only dashboard): pass --user and --password-file"
    )]
    NeedsLogin(String),
    /// The login was refused.
    #[error("the server at {url} refused the login of '{user}': {reason}")]
    LoginRefused {
        /// Where.
        url: String,
        /// Who.
        user: String,
        /// The server's reason.
        reason: String,
    },
    /// The host is no longer on the server.
    #[error("the server no longer knows the host {0}")]
    UnknownHost(String),
    /// The server answered with an error.
    #[error("the server at {url} answered {status}: {reason}")]
    Refused {
        /// Where.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's reason.
        reason: String,
    },
    /// The answer was not smon's.
    #[error(
        "the answer from {0} is not smon's REST API: is this the dashboard's address (with its path prefix behind a proxy)?"
    )]
    NotSmon(String),
}

/// A session with one aggregator (or an agent's single-host view: the same routes).
#[derive(Debug, Clone)]
pub struct Fleet {
    client: Client,
    url: String,
    login: Option<Login>,
}

impl Fleet {
    /// A client of the server at `url` (`http://host:port/`, or `.../smon/` behind a proxy),
    /// trusting `ca_pem` besides the system's roots; logs in when `login` is given.
    pub async fn connect(
        url: &str,
        login: Option<Login>,
        ca_pem: Option<Vec<u8>>,
    ) -> Result<Self, FleetError> {
        let opts = Options {
            timeout: std::time::Duration::from_secs(5),
            ca_pem,
            ..Options::default()
        };
        let client =
            Client::with_options(url, opts).map_err(|e| FleetError::Settings(e.to_string()))?;
        let f = Self {
            url: client.base().to_string(),
            client,
            login,
        };
        f.log_in().await?;
        Ok(f)
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn log_in(&self) -> Result<(), FleetError> {
        let Some(l) = &self.login else { return Ok(()) };
        match self.client.login(&l.user, &l.password).await {
            Ok(_) => Ok(()),
            Err(ClientError::Refused {
                status: 400 | 401 | 429,
                reason,
                ..
            }) => Err(FleetError::LoginRefused {
                url: self.url.clone(),
                user: l.user.clone(),
                reason,
            }),
            Err(e) => Err(self.explain(e)),
        }
    }

    /// Every host's row.
    pub async fn hosts(&self) -> Result<Vec<HostRow>, FleetError> {
        match self.client.hosts().await {
            Err(e) if e.status() == Some(401) && self.login.is_some() => {
                // The session ended (a restart, an expiry): log in again, once.
                self.log_in().await?;
                self.client.hosts().await.map_err(|e| self.explain(e))
            }
            r => r.map_err(|e| self.explain(e)),
        }
    }

    /// One host's detail (`GET /api/v1/hosts/{id}`).
    pub async fn host(&self, id: &str) -> Result<HostDetail, FleetError> {
        let r = match self.client.host(id).await {
            Err(e) if e.status() == Some(401) && self.login.is_some() => {
                self.log_in().await?;
                self.client.host(id).await
            }
            r => r,
        };
        r.map_err(|e| match e.status() {
            Some(404) => FleetError::UnknownHost(id.to_owned()),
            _ => self.explain(e),
        })
    }

    fn explain(&self, e: ClientError) -> FleetError {
        let url = self.url.clone();
        match e {
            ClientError::BadUrl { .. } | ClientError::Setup(_) => {
                FleetError::Settings(e.to_string())
            }
            ClientError::Transport { source, .. } => {
                let mut chain = Vec::new();
                let mut cur: Option<&(dyn std::error::Error + 'static)> = source.source();
                while let Some(c) = cur {
                    chain.push(c.to_string());
                    cur = c.source();
                }
                let all = chain.join(": ").to_ascii_lowercase();
                let reason = if all.contains("connection refused") {
                    "connection refused".to_owned()
                } else if source.is_timeout() || all.contains("timed out") {
                    "no answer in time".to_owned()
                } else if all.contains("dns error") || all.contains("failed to lookup") {
                    "DNS does not know this name".to_owned()
                } else if all.contains("certificate") || all.contains("tls") {
                    format!(
                        "TLS failed ({}); pass --tls-ca for a private CA",
                        chain.last().cloned().unwrap_or_default()
                    )
                } else {
                    chain.last().cloned().unwrap_or_else(|| source.to_string())
                };
                FleetError::Unreachable { url, reason }
            }
            ClientError::Refused { status: 401, .. } if self.login.is_none() => {
                FleetError::NeedsLogin(url)
            }
            ClientError::Refused { status, reason, .. } => FleetError::Refused {
                url,
                status,
                reason,
            },
            ClientError::Decode { .. } => FleetError::NotSmon(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::sync::{Arc, Mutex};

    /// A tiny HTTP/1.1 server on 127.0.0.1: logins succeed and set a new session cookie; the
    /// first `GET /api/v1/hosts` answers 401 (a session lost in a restart), later ones `[]`
    /// when they carry the latest cookie. Returns its URL and the requests it saw.
    fn server() -> (String, Arc<Mutex<Vec<String>>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/", l.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let counts = Arc::new(Mutex::new((0u32, 0u32)));
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                let (log, counts) = (log.clone(), counts.clone());
                // A thread per connection: a client keeps its connection open.
                std::thread::spawn(move || serve(conn, &log, &counts));
            }
        });
        (url, seen)
    }

    fn serve(conn: std::net::TcpStream, log: &Mutex<Vec<String>>, counts: &Mutex<(u32, u32)>) {
        let mut r = BufReader::new(conn.try_clone().expect("clone"));
        let mut w = conn;
        loop {
            let mut head = Vec::new();
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                head.push(line.trim_end().to_owned());
                line.clear();
            }
            let Some(first) = head.first().cloned() else {
                break;
            };
            let header = |name: &str| {
                head.iter()
                    .find_map(|h| {
                        let (k, v) = h.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            let len: usize = header("content-length").parse().unwrap_or(0);
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let cookie = header("cookie");
            log.lock()
                .expect("lock")
                .push(format!("{first} [{cookie}]"));
            let mut c = counts.lock().expect("lock");
            let (logins, hosts_calls) = &mut *c;
            let (status, extra, body) = if first.starts_with("POST /api/v1/login") {
                *logins += 1;
                (
                    "200 OK",
                    format!("set-cookie: s={logins}; Path=/\r\n"),
                    r#"{"user":"u","role":"viewer"}"#.to_owned(),
                )
            } else if first.starts_with("GET /api/v1/hosts") {
                *hosts_calls += 1;
                if *hosts_calls == 1 || cookie != format!("s={logins}") {
                    (
                        "401 Unauthorized",
                        String::new(),
                        r#"{"error":"log in"}"#.to_owned(),
                    )
                } else {
                    ("200 OK", String::new(), "[]".to_owned())
                }
            } else {
                (
                    "404 Not Found",
                    String::new(),
                    r#"{"error":"no"}"#.to_owned(),
                )
            };
            let _ = write!(
                w,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    }

    #[tokio::test]
    async fn a_lost_session_is_renewed_once_with_the_same_login() {
        let (url, seen) = server();
        let login = Login {
            user: "u".into(),
            password: "p".into(),
        };
        let f = Fleet::connect(&url, Some(login), None)
            .await
            .expect("login");
        assert_eq!(f.hosts().await.expect("renewed"), Vec::new());
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(
            seen,
            [
                "POST /api/v1/login HTTP/1.1 []",
                "GET /api/v1/hosts HTTP/1.1 [s=1]",
                "POST /api/v1/login HTTP/1.1 [s=1]",
                "GET /api/v1/hosts HTTP/1.1 [s=2]",
            ]
        );
        // Without a login, a 401 is the advice to give one.
        let f = Fleet::connect(&url, None, None).await.expect("no login");
        let e = f.hosts().await.expect_err("401");
        assert!(matches!(e, FleetError::NeedsLogin(_)), "{e}");
    }
}
