//! The HTTP `server` block, written once for both daemons: where the server listens, how it
//! sits behind a proxy, who may reach it, HTTPS, the user to run as, its users and
//! sessions (`auth`), and its connection limits (`limits`).
//!
//! Why here and not in smon-web, next to the code that enforces it: the agent built without
//! its web view (`--no-default-features`) has no smon-web, yet must still read the same
//! `config_node.json` strictly (a typo in `server` fails the load) and use `server.run_as`.
//! So the block's *shape* (plain serde structs) lives in the config kit; its *meaning* (CIDR
//! parsing aside, the users and session checks, which need argon2) stays in smon-web's
//! `security::config::check_server`, which re-exports these types.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::FieldError;

/// The `server` block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    #[serde(default = "default_host")]
    pub host: String,
    /// Port the HTTP server listens on (default: the daemon's own, see [`Self::listen`]).
    #[serde(default)]
    pub port: Option<u16>,
    /// True when nginx (or another reverse proxy) fronts the server.
    #[serde(default)]
    pub behind_proxy: bool,
    /// smon-agent only: serve the single-host web view (the dashboard for this host alone).
    /// The aggregator always serves its dashboard and refuses the key.
    #[serde(default)]
    pub web: Option<bool>,
    /// Path prefix of the pages when the proxy does not strip it, e.g. `/smon`.
    #[serde(default = "default_base_path")]
    pub base_path: String,
    /// Who may reach the server (CIDR ranges; empty: anyone, the login still applies).
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Proxies whose `X-Forwarded-For`/`-Proto`/`-Host` are believed (with `behind_proxy`).
    #[serde(default = "default_trusted_proxies")]
    pub trusted_proxies: Vec<String>,
    /// Who may read `/metrics` without logging in.
    #[serde(default = "default_metrics_allow_from")]
    pub metrics_allow_from: Vec<String>,
    /// Host names the dashboard answers to (the `Host` header, or a trusted proxy's
    /// `X-Forwarded-Host`), against DNS rebinding: names like `smon.example.org`, `*.example.org`
    /// for any name below it, or `*` for any name. IP addresses and `localhost` are always
    /// accepted. Absent: this machine's host name.
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
    /// HTTPS on the listener itself (certificate and key, PEM).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Started as root: switch to this user (and its group) once the listeners are bound.
    #[serde(default)]
    pub run_as: Option<String>,
    /// Users and sessions.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Connection limits and timeouts of the HTTP listener.
    #[serde(default)]
    pub limits: HttpLimitsConfig,
    /// The dashboard's external URL (`https://smon.example.org/`), put in notifications as
    /// a link to the alerts page (the aggregator; optional).
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: default_host(),
            port: None,
            behind_proxy: false,
            web: None,
            base_path: default_base_path(),
            allow_from: Vec::new(),
            trusted_proxies: default_trusted_proxies(),
            metrics_allow_from: default_metrics_allow_from(),
            allowed_hosts: None,
            tls: None,
            run_as: None,
            auth: AuthConfig::default(),
            limits: HttpLimitsConfig::default(),
            public_url: None,
        }
    }
}

impl ServerConfig {
    /// The listen address: `host` (an IP address) and `port`, else the daemon's
    /// `default_port`. Records a problem when `host` is not an address.
    pub fn listen(&self, default_port: u16, errs: &mut Vec<FieldError>) -> Option<SocketAddr> {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => Some(SocketAddr::new(ip, self.port.unwrap_or(default_port))),
            Err(_) => {
                errs.push(FieldError {
                    field: "server.host".into(),
                    value: self.host.clone(),
                    problem: "is not an IP address".into(),
                });
                None
            }
        }
    }

    /// `run_as`, checked: a user that exists on this machine.
    pub fn run_as(&self, errs: &mut Vec<FieldError>) -> Option<String> {
        super::check_run_as(self.run_as.as_ref(), errs)
    }
}

fn default_host() -> String {
    "127.0.0.1".to_owned()
}

fn default_base_path() -> String {
    "/".to_owned()
}

/// Default `trusted_proxies`: a proxy on the same host.
pub fn default_trusted_proxies() -> Vec<String> {
    vec!["127.0.0.1/32".into(), "::1/128".into()]
}

/// Default `metrics_allow_from`: a Prometheus on the same host.
pub fn default_metrics_allow_from() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}

/// `server.limits`: how many connections the HTTP listener holds, and how long it waits.
/// What each stops is in the README ("Connections and limits").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLimitsConfig {
    /// Connections at once in all. Never more than half the open-file limit; the other half
    /// stays free for the daemon's own files and connections to agents. Peers on this host
    /// (the health probe) get 16 more.
    #[serde(default = "default_http_max_connections")]
    pub max_connections: usize,
    /// Connections at once from one client address (an IPv6 address counts by its /64).
    /// With `behind_proxy`, the `trusted_proxies` are held only to `max_connections`.
    #[serde(default = "default_http_per_address")]
    pub max_connections_per_address: usize,
    /// Seconds a client has for the TLS handshake and for each request's header lines; on an
    /// HTTP/1 keep-alive connection, also how long the next request may take to start.
    #[serde(default = "default_header_read_timeout_s")]
    pub header_read_timeout_s: u64,
    /// A connection on which nothing is read or written for this many seconds is closed
    /// (an HTTP/2 connection with no request, or a client that never sends one). Keep it
    /// above 30: Socket.IO long-polling waits up to 25 s for the next message.
    #[serde(default = "default_http_idle_timeout_s")]
    pub idle_timeout_s: u64,
}

impl Default for HttpLimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: default_http_max_connections(),
            max_connections_per_address: default_http_per_address(),
            header_read_timeout_s: default_header_read_timeout_s(),
            idle_timeout_s: default_http_idle_timeout_s(),
        }
    }
}

fn default_http_max_connections() -> usize {
    4096
}
fn default_http_per_address() -> usize {
    64
}
fn default_header_read_timeout_s() -> u64 {
    10
}
fn default_http_idle_timeout_s() -> u64 {
    120
}

/// `server.limits`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// `max_connections`, as configured (the guard lowers it below the open-file limit).
    pub max_connections: usize,
    /// `max_connections_per_address`.
    pub per_address: usize,
    /// `header_read_timeout_s`.
    pub header_read_timeout: Duration,
    /// `idle_timeout_s`.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimitsConfig::default().check(&mut Vec::new())
    }
}

impl HttpLimitsConfig {
    /// The checked limits; problems are recorded as `server.limits.<field>` errors.
    pub fn check(&self, errs: &mut Vec<FieldError>) -> HttpLimits {
        let p = "server.limits";
        count_in(
            errs,
            p,
            "max_connections",
            self.max_connections,
            1,
            1_000_000,
        );
        count_in(
            errs,
            p,
            "max_connections_per_address",
            self.max_connections_per_address,
            1,
            1_000_000,
        );
        seconds_in(
            errs,
            p,
            "header_read_timeout_s",
            self.header_read_timeout_s,
            1,
            300,
        );
        seconds_in(errs, p, "idle_timeout_s", self.idle_timeout_s, 1, 86_400);
        HttpLimits {
            max_connections: self.max_connections.max(1),
            per_address: self.max_connections_per_address.max(1),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_s.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_s.max(1)),
        }
    }
}

/// Records `<prefix>.<field>: '<value>' is not between <lo> and <hi>` when out of range.
pub fn count_in(
    errs: &mut Vec<FieldError>,
    prefix: &str,
    field: &str,
    value: usize,
    lo: usize,
    hi: usize,
) {
    if !(lo..=hi).contains(&value) {
        errs.push(FieldError {
            field: format!("{prefix}.{field}"),
            value: value.to_string(),
            problem: format!("is not between {lo} and {hi}"),
        });
    }
}

/// Records `<prefix>.<field>: '<value>' is not between <lo> and <hi> seconds` when out of range.
pub fn seconds_in(
    errs: &mut Vec<FieldError>,
    prefix: &str,
    field: &str,
    value: u64,
    lo: u64,
    hi: u64,
) {
    if !(lo..=hi).contains(&value) {
        errs.push(FieldError {
            field: format!("{prefix}.{field}"),
            value: value.to_string(),
            problem: format!("is not between {lo} and {hi} seconds"),
        });
    }
}

/// `server.auth`: who may log in, and for how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Users in the config itself (name, argon2 hash, role).
    #[serde(default)]
    pub users: Vec<UserEntry>,
    /// More users, in a file of their own (mode 0600; the first start writes `admin` here).
    /// Relative to the config file's directory.
    #[serde(default)]
    pub users_file: Option<String>,
    /// Anonymous visitors may watch the dashboard, read-only: no command lines, no user names
    /// of sessions, no actions. Off unless set.
    #[serde(default)]
    pub public_read_only: bool,
    /// Anonymous visitors of a public dashboard also see the agents' addresses (and the
    /// interfaces' IP and MAC addresses) and the text of the last errors. Off unless set.
    #[serde(default)]
    pub public_shows_addresses: bool,
    /// On a public dashboard: Socket.IO sessions of anonymous visitors open at once from one
    /// address (a tab holds one); more handshakes get 429.
    #[serde(default = "default_public_sockets_per_address")]
    pub public_max_sockets_per_address: u32,
    /// On a public dashboard: Socket.IO sessions of anonymous visitors open at once in all;
    /// more handshakes get 503. Logged-in users do not count.
    #[serde(default = "default_public_sockets")]
    pub public_max_sockets: u32,
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
            public_shows_addresses: false,
            public_max_sockets_per_address: default_public_sockets_per_address(),
            public_max_sockets: default_public_sockets(),
            session_idle_s: default_idle(),
            session_max_s: default_max(),
            viewers_see_command_lines: false,
            viewers_see_login_origins: false,
            max_login_failures: default_failures(),
            lockout_s: default_lockout(),
        }
    }
}

fn default_public_sockets_per_address() -> u32 {
    32
}
fn default_public_sockets() -> u32 {
    1000
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

/// A user as written in a config or the users file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Login name: 1-64 characters, letters, digits, `.`, `_`, `-`, `@`.
    pub name: String,
    /// `$argon2id$...` from `hash-password`.
    pub password_hash: String,
    /// `viewer` or `admin`.
    pub role: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_daemons_port() {
        let s: ServerConfig = serde_json::from_str("{}").expect("empty block");
        let mut errs = Vec::new();
        assert_eq!(
            s.listen(8081, &mut errs),
            Some("127.0.0.1:8081".parse().expect("addr"))
        );
        assert_eq!(s.trusted_proxies, default_trusted_proxies());
        let s: ServerConfig = serde_json::from_str(r#"{"host":"::","port":9000}"#).expect("block");
        assert_eq!(
            s.listen(8081, &mut errs),
            Some("[::]:9000".parse().expect("addr"))
        );
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn a_host_name_is_not_an_address() {
        let s: ServerConfig = serde_json::from_str(r#"{"host":"localhost"}"#).expect("block");
        let mut errs = Vec::new();
        assert_eq!(s.listen(8080, &mut errs), None);
        assert_eq!(
            errs[0].to_string(),
            "server.host: 'localhost' is not an IP address"
        );
    }

    #[test]
    fn limits_have_defaults_and_out_of_range_values_name_the_field() {
        let s: ServerConfig = serde_json::from_str("{}").expect("empty block");
        let mut errs = Vec::new();
        let l = s.limits.check(&mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(l, HttpLimits::default());
        assert_eq!((l.max_connections, l.per_address), (4096, 64));
        assert_eq!(l.header_read_timeout, Duration::from_secs(10));
        let s: ServerConfig = serde_json::from_str(
            r#"{"limits":{"max_connections":0,"max_connections_per_address":8,"header_read_timeout_s":0,"idle_timeout_s":100000}}"#,
        )
        .expect("block");
        let errs_text: Vec<String> = {
            let mut errs = Vec::new();
            s.limits.check(&mut errs);
            errs.iter().map(ToString::to_string).collect()
        };
        assert_eq!(
            errs_text,
            [
                "server.limits.max_connections: '0' is not between 1 and 1000000",
                "server.limits.header_read_timeout_s: '0' is not between 1 and 300 seconds",
                "server.limits.idle_timeout_s: '100000' is not between 1 and 86400 seconds",
            ]
        );
        assert!(
            serde_json::from_str::<ServerConfig>(r#"{"limits":{"max_conections":1}}"#).is_err()
        );
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        assert!(serde_json::from_str::<ServerConfig>(r#"{"prot":1}"#).is_err());
        assert!(serde_json::from_str::<ServerConfig>(r#"{"auth":{"user":[]}}"#).is_err());
        assert!(
            serde_json::from_str::<ServerConfig>(r#"{"auth":{"users":[{"name":"a"}]}}"#).is_err()
        );
    }
}
