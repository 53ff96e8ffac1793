//! The security fields of both daemons' `server` block (`allow_from`, `trusted_proxies`,
//! `metrics_allow_from`, `tls`, `auth`), and one check for both, so the aggregator and the
//! agent's web view behave the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::security::net::CidrList;
use crate::security::users::{self, User};
use crate::security::visibility::Visibility;

/// `server.auth`: who may log in, and for how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Users in the config itself (name, argon2 hash, role).
    #[serde(default)]
    pub users: Vec<users::UserEntry>,
    /// More users, in a file of their own (mode 0600; the first start writes `admin` here).
    /// Relative to the config file's directory.
    #[serde(default)]
    pub users_file: Option<String>,
    /// Anonymous visitors may watch the dashboard, read-only: no command lines, no user names
    /// of sessions, no actions. Off unless set.
    #[serde(default)]
    pub public_read_only: bool,
    /// A session ends after this many seconds without a request.
    #[serde(default = "default_idle")]
    pub session_idle_s: u64,
    /// A session ends this many seconds after login, whatever happens.
    #[serde(default = "default_max")]
    pub session_max_s: u64,
    /// Viewers see full command lines (admins always do; a public dashboard never does).
    #[serde(default)]
    pub viewers_see_command_lines: bool,
    /// Viewers see where logged-in users come from (admins always do).
    #[serde(default)]
    pub viewers_see_login_origins: bool,
    /// Failed logins allowed per address and per user within `lockout_s`, before
    /// further attempts are refused until the window has passed.
    #[serde(default = "default_failures")]
    pub max_login_failures: u32,
    /// The throttling window, in seconds.
    #[serde(default = "default_lockout")]
    pub lockout_s: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            users_file: None,
            public_read_only: false,
            session_idle_s: default_idle(),
            session_max_s: default_max(),
            viewers_see_command_lines: false,
            viewers_see_login_origins: false,
            max_login_failures: default_failures(),
            lockout_s: default_lockout(),
        }
    }
}

fn default_idle() -> u64 {
    30 * 60
}
fn default_max() -> u64 {
    12 * 3600
}
fn default_failures() -> u32 {
    5
}
fn default_lockout() -> u64 {
    15 * 60
}

/// A certificate chain and its key (PEM files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, PEM.
    pub cert: String,
    /// The private key, PEM.
    pub key: String,
}

/// The security fields of a `server` block, as read.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// `server.behind_proxy`.
    pub behind_proxy: bool,
    /// `server.allow_from`.
    pub allow_from: &'a [String],
    /// `server.trusted_proxies`.
    pub trusted_proxies: &'a [String],
    /// `server.metrics_allow_from`.
    pub metrics_allow_from: &'a [String],
    /// `server.tls`.
    pub tls: Option<&'a TlsFiles>,
    /// `server.auth`.
    pub auth: &'a AuthConfig,
}

/// Default `trusted_proxies`: a proxy on the same host.
pub fn default_trusted_proxies() -> Vec<String> {
    vec!["127.0.0.1/32".into(), "::1/128".into()]
}

/// Default `metrics_allow_from`: a Prometheus on the same host.
pub fn default_metrics_allow_from() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}

/// One problem with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path, e.g. `server.auth.users[0].role`.
    pub field: String,
    /// The value (never a secret: hashes are not echoed).
    pub value: String,
    /// What is wrong.
    pub problem: String,
}

/// The checked `auth` settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Users from the config.
    pub users: Vec<User>,
    /// The users file (may not exist yet).
    pub users_file: PathBuf,
    /// Anonymous read-only access.
    pub public_read_only: bool,
    /// Idle expiry.
    pub idle: Duration,
    /// Absolute expiry.
    pub absolute: Duration,
    /// What viewers see.
    pub viewer: Visibility,
    /// Failures allowed per window.
    pub max_login_failures: u32,
    /// The throttling window.
    pub lockout: Duration,
}

/// The checked security settings of one HTTP server.
#[derive(Debug, Clone)]
pub struct HttpSecurity {
    /// Forwarded headers are believed from `trusted_proxies`.
    pub behind_proxy: bool,
    /// Who may connect (empty: anyone; the login still applies).
    pub allow_from: CidrList,
    /// Whose `X-Forwarded-*` headers count.
    pub trusted_proxies: CidrList,
    /// Who may read `/metrics` without a session.
    pub metrics_allow_from: CidrList,
    /// HTTPS on the listener itself.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Users and sessions.
    pub auth: AuthSettings,
}

impl HttpSecurity {
    /// Whether session cookies get the `Secure` flag: served over TLS directly, or behind a
    /// proxy (which is expected to terminate TLS).
    pub fn secure_cookies(&self) -> bool {
        self.tls.is_some() || self.behind_proxy
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Checks the security fields of a `server` block. `base` resolves relative paths;
/// `default_users_file` is the daemon's users file name.
pub fn check(
    input: Input<'_>,
    base: &Path,
    default_users_file: &str,
    problems: &mut Vec<Problem>,
) -> HttpSecurity {
    let mut bad = |field: String, value: String, problem: &str| {
        problems.push(Problem {
            field,
            value,
            problem: problem.to_owned(),
        })
    };
    let mut cidrs = |name: &str, items: &[String]| match CidrList::parse(items) {
        Ok(l) => l,
        Err((i, v)) => {
            bad(
                format!("server.{name}[{i}]"),
                v,
                "is not an address or CIDR range like 10.0.0.0/8 or fd00::/8",
            );
            CidrList::default()
        }
    };
    let allow_from = cidrs("allow_from", input.allow_from);
    let trusted_proxies = cidrs("trusted_proxies", input.trusted_proxies);
    let metrics_allow_from = cidrs("metrics_allow_from", input.metrics_allow_from);
    let mut bad = |field: String, value: String, problem: &str| {
        problems.push(Problem {
            field,
            value,
            problem: problem.to_owned(),
        })
    };
    if input.behind_proxy && trusted_proxies.is_empty() {
        bad(
            "server.trusted_proxies".into(),
            "[]".into(),
            "must name the proxy's address when server.behind_proxy is true",
        );
    }
    let tls = input
        .tls
        .map(|t| (resolve(base, &t.cert), resolve(base, &t.key)));
    if let Some((cert, key)) = &tls {
        for (field, p) in [("server.tls.cert", cert), ("server.tls.key", key)] {
            if !p.is_file() {
                bad(
                    field.into(),
                    p.display().to_string(),
                    "is not a readable file",
                );
            }
        }
    }
    let a = input.auth;
    let mut users = Vec::new();
    for (i, e) in a.users.iter().enumerate() {
        match users::check_entry(e) {
            Ok(u) => {
                if users.iter().any(|x: &User| x.name == u.name) {
                    bad(
                        format!("server.auth.users[{i}].name"),
                        e.name.clone(),
                        "is listed twice",
                    );
                }
                users.push(u);
            }
            Err((field, why)) => {
                let value = if field == "password_hash" {
                    "(not shown)".to_owned()
                } else if field == "name" {
                    e.name.clone()
                } else {
                    e.role.clone()
                };
                bad(format!("server.auth.users[{i}].{field}"), value, &why);
            }
        }
    }
    if !(2..=86_400).contains(&a.session_idle_s) {
        bad(
            "server.auth.session_idle_s".into(),
            a.session_idle_s.to_string(),
            "must be between 2 and 86400",
        );
    }
    if !(2..=30 * 86_400).contains(&a.session_max_s) {
        bad(
            "server.auth.session_max_s".into(),
            a.session_max_s.to_string(),
            "must be between 2 and 2592000",
        );
    }
    if a.max_login_failures == 0 {
        bad(
            "server.auth.max_login_failures".into(),
            "0".into(),
            "must be at least 1",
        );
    }
    if !(1..=86_400).contains(&a.lockout_s) {
        bad(
            "server.auth.lockout_s".into(),
            a.lockout_s.to_string(),
            "must be between 1 and 86400",
        );
    }
    let users_file = a.users_file.as_deref().unwrap_or(default_users_file);
    if users_file.is_empty() {
        bad(
            "server.auth.users_file".into(),
            String::new(),
            "must be a file name",
        );
    }
    HttpSecurity {
        behind_proxy: input.behind_proxy,
        allow_from,
        trusted_proxies,
        metrics_allow_from,
        tls,
        auth: AuthSettings {
            users,
            users_file: resolve(base, users_file),
            public_read_only: a.public_read_only,
            idle: Duration::from_secs(a.session_idle_s),
            absolute: Duration::from_secs(a.session_max_s),
            viewer: Visibility {
                command_lines: a.viewers_see_command_lines,
                login_origins: a.viewers_see_login_origins,
                ..Visibility::VIEWER_DEFAULT
            },
            max_login_failures: a.max_login_failures,
            lockout: Duration::from_secs(a.lockout_s),
        },
    }
}
