//! The security fields of both daemons' `server` block (`allow_from`, `trusted_proxies`,
//! `metrics_allow_from`, `tls`, `auth`), and one check for both, so the aggregator and the
//! agent's web view behave the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use smon_runtime::config::FieldError;
pub use smon_runtime::config::server::{
    AuthConfig, ServerConfig, TlsFiles, default_metrics_allow_from, default_trusted_proxies,
};

use crate::security::net::CidrList;
use crate::security::users::{self, User};
use crate::security::visibility::Visibility;

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
        Err(e) => {
            bad(
                format!("server.{name}[{}]", e.index),
                e.value,
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

impl<'a> From<&'a ServerConfig> for Input<'a> {
    fn from(s: &'a ServerConfig) -> Self {
        Input {
            behind_proxy: s.behind_proxy,
            allow_from: &s.allow_from,
            trusted_proxies: &s.trusted_proxies,
            metrics_allow_from: &s.metrics_allow_from,
            tls: s.tls.as_ref(),
            auth: &s.auth,
        }
    }
}

/// [`check`] on a daemon's whole `server` block, with the problems recorded as the config
/// kit's [`FieldError`]s next to the daemon's own.
pub fn check_server(
    server: &ServerConfig,
    base: &Path,
    default_users_file: &str,
    errs: &mut Vec<FieldError>,
) -> HttpSecurity {
    let mut problems = Vec::new();
    let sec = check(server.into(), base, default_users_file, &mut problems);
    errs.extend(problems.into_iter().map(|p| FieldError {
        field: p.field,
        value: p.value,
        problem: p.problem,
    }));
    sec
}

/// The users check that [`crate::security::Security::start`] makes at start-up, made at load
/// (and so by `--check-config`) without its side effects: on an address other than loopback,
/// with no user in the config nor in the users file and no public read-only mode, nobody could
/// log in, and start-up refuses. (On loopback start-up creates `admin` instead; that write
/// stays with start-up.) Reads the users file; one this user may not read (root's, checked by
/// an unprivileged user, or after the privilege drop) is left to start-up.
pub fn check_users(http: &HttpSecurity, listen: std::net::SocketAddr, errs: &mut Vec<FieldError>) {
    let auth = &http.auth;
    let file = auth.users_file.display().to_string();
    let from_file = match users::read_file(&auth.users_file) {
        Ok(u) => u,
        Err(users::UsersError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            return;
        }
        Err(e) => {
            errs.push(FieldError {
                field: "server.auth.users_file".into(),
                value: file,
                problem: format!("cannot be used: {e}"),
            });
            return;
        }
    };
    let all = match users::merge(&auth.users, &from_file, &auth.users_file) {
        Ok(all) => all,
        Err(e) => {
            errs.push(FieldError {
                field: "server.auth.users".into(),
                value: String::new(),
                problem: e.to_string(),
            });
            return;
        }
    };
    if all.is_empty() && !auth.public_read_only && !listen.ip().is_loopback() {
        errs.push(FieldError {
            field: "server.host".into(),
            value: listen.ip().to_string(),
            problem: format!(
                "is not a loopback address, and there are no users: nobody could log in. Add \
                 users to server.auth.users or {file} (make a hash with `hash-password`), or \
                 set server.auth.public_read_only to true for an anonymous read-only dashboard"
            ),
        });
    }
}
