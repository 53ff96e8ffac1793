//! The security fields of both daemons' `server` block (`allow_from`, `trusted_proxies`,
//! `metrics_allow_from`, `allowed_hosts`, `tls`, `auth`, and the `base_path` check), and one
//! check for both, so the aggregator and the agent's web view behave the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use smon_runtime::config::FieldError;
pub use smon_runtime::config::server::{
    AuthConfig, ServerConfig, TlsFiles, default_metrics_allow_from, default_trusted_proxies,
};

use crate::security::net::{CidrList, HostPolicy};
use crate::security::users::{self, User};
use crate::security::visibility::{Class, Visibility};

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
    /// `server.allowed_hosts` (`None`: the default).
    pub allowed_hosts: Option<&'a [String]>,
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
    /// What anonymous visitors of a public dashboard see.
    pub public: Visibility,
    /// Anonymous Socket.IO sessions at once per address, on a public dashboard.
    pub public_sockets_per_address: usize,
    /// Anonymous Socket.IO sessions at once in all, on a public dashboard.
    pub public_sockets: usize,
    /// Failures allowed per window.
    pub max_login_failures: u32,
    /// The throttling window.
    pub lockout: Duration,
}

impl AuthSettings {
    /// What a visitor of `class` sees.
    pub fn visibility(&self, class: Class) -> Visibility {
        match class {
            Class::Full => Visibility::FULL,
            Class::Viewer => self.viewer,
            Class::Public => self.public,
        }
    }
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
    /// The host names requests may name (`Host`, or a trusted proxy's `X-Forwarded-Host`).
    pub allowed_hosts: HostPolicy,
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

/// What is wrong with a `server.base_path`, if anything: it must be a clean absolute path
/// (`/` or `/smon`, a trailing slash is fine), because the router, the session cookie's path and
/// the page's relative URLs all derive from it, and a proxy may normalise `..` or `%2F` where
/// smon does not.
pub fn base_path_problem(base: &str) -> Option<String> {
    const LIKE: &str = "must be a path like / or /smon";
    if !base.starts_with('/') {
        return Some(LIKE.into());
    }
    if base.contains("//") {
        return Some(format!("{LIKE}, without empty segments ('//')"));
    }
    if base.contains('%') {
        return Some(format!(
            "{LIKE}, without percent-encoding (an encoded '/' or '.' reads differently to a proxy)"
        ));
    }
    if let Some(c) = base
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~')))
    {
        return Some(format!(
            "{LIKE}: {c:?} is not allowed (letters, digits, '-', '_', '.', '~' and '/')"
        ));
    }
    if base.split('/').any(|seg| seg == "." || seg == "..") {
        return Some(format!("{LIKE}, without '.' or '..' segments"));
    }
    None
}

/// This machine's host name, the default `server.allowed_hosts` (besides IP addresses and
/// `localhost`).
fn this_host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
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
    let allowed_hosts = match input.allowed_hosts {
        None => HostPolicy::with_names(this_host_name().as_deref()),
        Some(entries) => {
            let mut p = HostPolicy::default();
            if entries.is_empty() {
                bad(
                    "server.allowed_hosts".into(),
                    "[]".into(),
                    "must name at least one host name (or \"*\"); leave it out for the default \
                     (this machine's name; IP addresses and localhost always pass)",
                );
            }
            for (i, e) in entries.iter().enumerate() {
                if let Err(why) = p.add(e) {
                    bad(
                        format!("server.allowed_hosts[{i}]"),
                        e.clone(),
                        &why.to_string(),
                    );
                }
            }
            p
        }
    };
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
    for (field, v) in [
        (
            "public_max_sockets_per_address",
            a.public_max_sockets_per_address,
        ),
        ("public_max_sockets", a.public_max_sockets),
    ] {
        if !(1..=1_000_000).contains(&v) {
            bad(
                format!("server.auth.{field}"),
                v.to_string(),
                "must be between 1 and 1000000",
            );
        }
    }
    if a.public_max_sockets_per_address > a.public_max_sockets {
        bad(
            "server.auth.public_max_sockets_per_address".into(),
            a.public_max_sockets_per_address.to_string(),
            &format!(
                "must not exceed server.auth.public_max_sockets ({})",
                a.public_max_sockets
            ),
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
        allowed_hosts,
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
            public: Visibility {
                addresses: a.public_shows_addresses,
                error_texts: a.public_shows_addresses,
                ..Visibility::PUBLIC
            },
            public_sockets_per_address: a.public_max_sockets_per_address as usize,
            public_sockets: a.public_max_sockets as usize,
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
            allowed_hosts: s.allowed_hosts.as_deref(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_must_be_clean() {
        for ok in ["/", "/smon", "/smon/", "/a/b-c_d.e~f"] {
            assert_eq!(base_path_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("smon", "must be a path like / or /smon"),
            ("/x/../y", "'..' segments"),
            ("/x/./y", "'.' or '..'"),
            ("/..", "'..' segments"),
            ("/x//y", "empty segments"),
            ("/x%2Fy", "percent-encoding"),
            ("/x%2e%2e/y", "percent-encoding"),
            ("/x\\y", "'\\\\' is not allowed"),
            ("/x?y", "'?' is not allowed"),
        ] {
            let p = base_path_problem(bad).unwrap_or_default();
            assert!(p.contains(why), "{bad}: {p}");
        }
    }

    fn checked(json: &str) -> (HttpSecurity, Vec<Problem>) {
        let server: ServerConfig = serde_json::from_str(json).expect("server block");
        let mut problems = Vec::new();
        let sec = check(
            (&server).into(),
            Path::new("/tmp"),
            "users.json",
            &mut problems,
        );
        (sec, problems)
    }

    #[test]
    fn allowed_hosts_and_public_limits_are_checked() {
        let (sec, p) = checked(r#"{"allowed_hosts":["smon.example.org","*.lab.example"]}"#);
        assert!(p.is_empty(), "{p:?}");
        assert!(sec.allowed_hosts.allows("smon.example.org:8443"));
        assert!(sec.allowed_hosts.allows("127.0.0.1:8080"));
        assert!(!sec.allowed_hosts.allows("evil.example:8080"));

        let (_, p) = checked(r#"{"allowed_hosts":["ok.example","bad host",""]}"#);
        let fields: Vec<_> = p
            .iter()
            .map(|p| (p.field.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("server.allowed_hosts[1]", "bad host"),
                ("server.allowed_hosts[2]", "")
            ]
        );
        assert!(p[0].problem.contains("is not a host name"), "{p:?}");
        let (_, p) = checked(r#"{"allowed_hosts":[]}"#);
        assert_eq!(p[0].field, "server.allowed_hosts");

        let (sec, p) = checked("{}");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(sec.auth.public_sockets_per_address, 32);
        assert_eq!(sec.auth.public_sockets, 1000);
        assert!(sec.auth.visibility(Class::Public).filters_rows());
        assert!(!sec.auth.visibility(Class::Viewer).filters_rows());

        let (sec, p) = checked(
            r#"{"auth":{"public_read_only":true,"public_shows_addresses":true,
                "public_max_sockets_per_address":0,"public_max_sockets":2}}"#,
        );
        assert!(!sec.auth.visibility(Class::Public).filters_rows());
        assert!(!sec.auth.visibility(Class::Public).command_lines);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            (p[0].field.as_str(), p[0].value.as_str()),
            ("server.auth.public_max_sockets_per_address", "0")
        );
        let (_, p) =
            checked(r#"{"auth":{"public_max_sockets_per_address":5,"public_max_sockets":2}}"#);
        assert!(p[0].problem.contains("must not exceed"), "{p:?}");
    }
}
