//! The aggregator's configuration (`config_app.json`), in the same shape and with the same
//! strictness as the agent's: unknown keys refused, every problem reported at once with the
//! file, the field and the value. The `server`, `manager` and `log` blocks and the error
//! types are smon-runtime's config kit, shared with the agent.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use smon_runtime::config::{
    FieldError, LogConfig, LogSettings, ManagerConfig, ManagerMode, ServerConfig, finish,
    parse_json_all, read_pem,
};
use smon_runtime::manager::ManagerSettings;
use smon_web::store::HostSpec;

pub use smon_runtime::config::ConfigError;

/// The dashboard's port when `server.port` is not set.
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// The example config shipped in the repository, used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config_app.json");

/// Name shown for the embedded default in error messages.
pub const EMBEDDED_NAME: &str = "<embedded config_app.json>";

/// The whole `config_app.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The HTTP server (dashboard, REST, Socket.IO).
    #[serde(default)]
    pub server: ServerConfig,
    /// Who keeps the aggregator alive.
    #[serde(default)]
    pub manager: ManagerConfig,
    /// What to watch.
    pub monitor: MonitorConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// History: the embedded store and remote write.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Alerting: rules, channels, silences and the engine's settings.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Declared applications: supervisord programs the aggregator keeps running on
    /// candidate hosts, with failover (README "Applications"). Needs a restart.
    #[serde(default)]
    pub applications: Vec<crate::applications::config::AppConfig>,
}

/// The `alerts` block (README, "Alerts"). `rules` and `silences` are reloaded on SIGHUP;
/// `channels`, `engine` and `history_retention_s` need a restart.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The alert rules (read-only in the UI; admins add their own there).
    #[serde(default)]
    pub rules: Vec<smon_alerts::RuleConfig>,
    /// The notification channels (secrets inline or as `*_file`).
    #[serde(default)]
    pub channels: Vec<smon_notify::ChannelConfig>,
    /// Silences and maintenance windows (read-only in the UI).
    #[serde(default)]
    pub silences: Vec<smon_alerts::SilenceConfig>,
    /// The engine's settings: grouping, flapping, the expected agent version.
    #[serde(default)]
    pub engine: Option<smon_alerts::EngineConfig>,
    /// How long the alert history is kept, seconds (default 30 days; at least an hour).
    #[serde(default)]
    pub history_retention_s: Option<u64>,
}

/// Default of `alerts.history_retention_s`: 30 days.
pub const DEFAULT_ALERT_RETENTION_S: u64 = 30 * 86_400;

/// The checked `alerts` block.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// The config's rules (validated).
    pub rules: Vec<smon_alerts::RuleConfig>,
    /// The config's silences (validated).
    pub silences: Vec<smon_alerts::SilenceConfig>,
    /// The channels, secrets read.
    pub channels: Vec<smon_notify::Channel>,
    /// The engine's settings (`link` set from `server.public_url`).
    pub engine: smon_alerts::EngineConfig,
    /// How long the alert history is kept.
    pub history_retention: Duration,
}

impl AlertsConfig {
    /// Whether anything is configured.
    fn is_set(&self) -> bool {
        !self.rules.is_empty()
            || !self.channels.is_empty()
            || !self.silences.is_empty()
            || self.engine.is_some()
            || self.history_retention_s.is_some()
    }

    /// Checks the block; `public_url` is the checked `server.public_url`.
    fn check(
        &self,
        base: &Path,
        public_url: Option<&str>,
        secret_files: &mut Vec<PathBuf>,
        errs: &mut Vec<FieldError>,
    ) -> AlertSettings {
        let channels =
            smon_notify::config::check(&self.channels, "alerts.channels", base, secret_files, errs);
        let names: Vec<&str> = self
            .channels
            .iter()
            .filter_map(|c| c.0.get("name").and_then(|n| n.as_str()))
            .collect();
        if let Err(e) = smon_alerts::compile_rules(&self.rules, "alerts.rules") {
            errs.extend(e);
        }
        errs.extend(smon_alerts::check_notify(
            &self.rules,
            &names,
            "alerts.rules",
        ));
        if let Err(e) = smon_alerts::compile_silences(&self.silences, "alerts.silences") {
            errs.extend(e);
        }
        let mut engine = self.engine.clone().unwrap_or_default();
        if let Err(e) = engine.validate("alerts.engine") {
            errs.extend(e);
        }
        engine.link = public_url.map(|u| format!("{}/#/alerts", u.trim_end_matches('/')));
        let retention_s = self
            .history_retention_s
            .unwrap_or(DEFAULT_ALERT_RETENTION_S);
        if retention_s < 3600 {
            errs.push(FieldError {
                field: "alerts.history_retention_s".into(),
                value: retention_s.to_string(),
                problem: "must be at least 3600 (an hour)".into(),
            });
        }
        AlertSettings {
            rules: self.rules.clone(),
            silences: self.silences.clone(),
            channels,
            engine,
            history_retention: Duration::from_secs(retention_s),
        }
    }
}

/// Checks `server.public_url`: an absolute `http` or `https` URL without query or fragment.
fn check_public_url(v: Option<&str>, errs: &mut Vec<FieldError>) -> Option<String> {
    let v = v?;
    match reqwest::Url::parse(v) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            Some(v.trim_end_matches('/').to_owned())
        }
        Ok(_) => {
            errs.push(FieldError {
                field: "server.public_url".into(),
                value: v.to_owned(),
                problem: "must be an http:// or https:// URL with a host and no query or fragment (e.g. https://smon.example.org/)".into(),
            });
            None
        }
        Err(e) => {
            errs.push(FieldError {
                field: "server.public_url".into(),
                value: v.to_owned(),
                problem: format!("is not a URL ({e}); e.g. https://smon.example.org/"),
            });
            None
        }
    }
}

/// The `storage` block: the embedded history database (issue 12; its keys are
/// [`smon_history::config::StorageConfig`]'s, the agent's too) and remote write. Every key
/// needs a restart.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Keep history (default true). Off: no database is opened and the history routes answer
    /// 503 "history is off".
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The database's directory (`smon.sqlite3` in it); relative to the config file's
    /// directory (the working directory for the embedded default). Default `smon-data`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// How long each tier keeps its data.
    #[serde(default)]
    pub retention: smon_history::config::RetentionConfig,
    /// Receivers every sample is also sent to, by Prometheus remote write
    /// ([`crate::remote_write`]).
    #[serde(default)]
    pub remote_write: Vec<crate::remote_write::RemoteWriteConfig>,
}

impl StorageConfig {
    /// The checked storage options, `None` when history is off.
    fn check(
        &self,
        base: &Path,
        errs: &mut Vec<FieldError>,
    ) -> Option<smon_history::StorageOptions> {
        smon_history::config::StorageConfig {
            enabled: self.enabled,
            dir: self.dir.clone(),
            retention: self.retention.clone(),
        }
        .check(base, true, errs)
    }
}

/// The `monitor` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Must be `app`.
    pub mode: String,
    /// How often agents send samples to the aggregator, in milliseconds (at least 100).
    #[serde(default = "default_interval")]
    pub poll_interval_ms: u64,
    /// A host is `stale` after this many intervals without a sample.
    #[serde(default = "default_stale")]
    pub stale_after_intervals: u32,
    /// A host is `down` after this many intervals without a sample.
    #[serde(default = "default_down")]
    pub down_after_intervals: u32,
    /// Also watch the aggregator's own host, in-process (no agent needed).
    #[serde(default = "default_true")]
    pub include_self: bool,
    /// Cluster of the aggregator's own host.
    #[serde(default = "default_self_cluster")]
    pub self_cluster: String,
    /// Name of the aggregator's own host (default: its host name).
    #[serde(default)]
    pub self_name: Option<String>,
    /// GPU source for the own host: `auto`, `off` or `fake`.
    #[serde(default = "default_gpu")]
    pub self_gpu: String,
    /// How often every host's reachability (its ping and its `services`) is checked, in
    /// seconds (5-3600, default 30).
    #[serde(default = "default_reach_interval")]
    pub reach_interval_s: u64,
    /// The clusters and their agents.
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
}

fn default_interval() -> u64 {
    1000
}
fn default_reach_interval() -> u64 {
    30
}
fn default_stale() -> u32 {
    3
}
fn default_down() -> u32 {
    10
}
fn default_true() -> bool {
    true
}
fn default_self_cluster() -> String {
    "local".into()
}
fn default_gpu() -> String {
    "auto".into()
}

/// One cluster.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster name (`[A-Za-z0-9._-]`, 1-63 characters).
    pub name: String,
    /// Its hosts.
    pub hosts: Vec<HostConfig>,
    /// TLS towards this cluster's agents (a host's own `tls` wins).
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
}

/// TLS towards agents: the CA that signed their certificates, and for mutual TLS the
/// aggregator's own certificate and key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// CA certificate (PEM) that signed the agents' certificates.
    pub ca: String,
    /// The aggregator's client certificate (PEM), for agents that require mutual TLS.
    #[serde(default)]
    pub cert: Option<String>,
    /// Its private key (PEM).
    #[serde(default)]
    pub key: Option<String>,
    /// The name to expect in the agent's certificate (default: the host part of `address`).
    #[serde(default)]
    pub domain: Option<String>,
}

/// TLS towards an agent, checked: the PEM files read at start (and at each reload: a
/// changed file is a changed setting).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificate, PEM.
    pub ca: Vec<u8>,
    /// Client certificate and key, PEM.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Expected name in the agent's certificate.
    pub domain: Option<String>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("mutual", &self.identity.is_some())
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

fn check_client_tls(
    t: &ClientTlsConfig,
    field: &str,
    base: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<ClientTls> {
    let ca = read_pem(base, &format!("{field}.ca"), &t.ca, errs);
    let identity = match (&t.cert, &t.key) {
        (Some(c), Some(k)) => Some((
            read_pem(base, &format!("{field}.cert"), c, errs),
            read_pem(base, &format!("{field}.key"), k, errs),
        )),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            errs.push(FieldError {
                field: format!("{field}.cert"),
                value: String::new(),
                problem: "and key go together: set both for mutual TLS, or neither".into(),
            });
            return None;
        }
    };
    let identity = match identity {
        Some((Some(c), Some(k))) => Some((c, k)),
        Some(_) => return None,
        None => None,
    };
    Some(ClientTls {
        ca: ca?,
        identity,
        domain: t.domain.clone(),
    })
}

/// One agent to poll.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Host name, unique in its cluster (`[A-Za-z0-9._-]`, 1-63 characters).
    pub name: String,
    /// The agent's gRPC address, `host:port`; absent for a host without an agent (a printer,
    /// a NAS, a switch: reachability checks and Wake-on-LAN only), which needs `ip` then.
    #[serde(default)]
    pub address: Option<String>,
    /// The agent's bearer token (prefer `token_file`).
    #[serde(default)]
    pub token: Option<String>,
    /// File holding the agent's token; relative to the config file's directory.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Free-form tags, shown and filterable in the UI.
    #[serde(default)]
    pub tags: Vec<String>,
    /// TLS towards this agent (else the cluster's, else plaintext).
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
    /// The host's IP address or DNS name, for the reachability checks (default: the host
    /// part of `address`).
    #[serde(default)]
    pub ip: Option<String>,
    /// The host's MAC address, for Wake-on-LAN (`aa:bb:cc:dd:ee:ff`).
    #[serde(default)]
    pub mac: Option<String>,
    /// How to send its Wake-on-LAN packet.
    #[serde(default)]
    pub wol: Option<WolConfig>,
    /// Services whose reachability is checked: `[{"name", "port", "type": "tcp"|"icmp"}]`.
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// The agent's control token, for its `Control` service (wake relay, power); prefer
    /// `control_token_file`.
    #[serde(default)]
    pub control_token: Option<String>,
    /// File holding the agent's control token; relative to the config file's directory.
    #[serde(default)]
    pub control_token_file: Option<PathBuf>,
}

/// How a host's Wake-on-LAN packet is sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WolConfig {
    /// The IPv4 broadcast (or unicast) address the packet goes to (default
    /// `255.255.255.255`).
    #[serde(default)]
    pub broadcast: Option<String>,
    /// The UDP port (default 9).
    #[serde(default)]
    pub port: Option<u16>,
    /// A host (`name` in the same cluster, or `cluster:name`) whose agent sends the packet
    /// on its LAN (its `Control.Wake`); absent: the aggregator sends it.
    #[serde(default)]
    pub via: Option<String>,
}

/// A service of a host whose reachability is checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Its name, shown (1-63 printable characters, unique on the host).
    pub name: String,
    /// The TCP port (needed for `tcp`).
    #[serde(default)]
    pub port: Option<u16>,
    /// `tcp` (a connect to `port`, the default) or `icmp` (a ping).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// How a service is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// A TCP connect.
    Tcp,
    /// An ICMP echo.
    Icmp,
}

/// A service to check, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// The TCP port (`Some` for `tcp`).
    pub port: Option<u16>,
    /// How it is checked.
    pub kind: ServiceKind,
}

/// Where a host's Wake-on-LAN packet goes, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wol {
    /// The destination address.
    pub broadcast: std::net::Ipv4Addr,
    /// The UDP port.
    pub port: u16,
    /// The id (`cluster:name`) of the host whose agent relays the packet.
    pub via: Option<String>,
}

impl Default for Wol {
    fn default() -> Self {
        Self {
            broadcast: smon_runtime::wol::DEFAULT_BROADCAST,
            port: smon_runtime::wol::DEFAULT_PORT,
            via: None,
        }
    }
}

/// A host's network identity beyond its agent: what reachability checks and Wake-on-LAN use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNet {
    /// IP address or DNS name (absent: the host part of the agent's address).
    pub ip: Option<String>,
    /// MAC address (needed to wake the host).
    pub mac: Option<smon_runtime::wol::Mac>,
    /// Where its Wake-on-LAN packet goes.
    pub wol: Wol,
    /// Services checked.
    pub services: Vec<Service>,
}

/// A host of the fleet, checked: an agent to poll, or, with `address` empty, a host without
/// an agent (reachability checks and Wake-on-LAN only; no poller).
#[derive(Clone)]
pub struct Target {
    /// Identity in the store.
    pub spec: HostSpec,
    /// `host:port`; empty for a host without an agent.
    pub address: String,
    /// Bearer token, if the agent needs one.
    pub token: Option<String>,
    /// TLS towards the agent (plaintext when absent).
    pub tls: Option<ClientTls>,
    /// The agent's control token (its `Control` service is not used without one).
    pub control_token: Option<String>,
    /// Its network identity: IP, MAC, Wake-on-LAN, services.
    pub net: HostNet,
}

impl Target {
    /// Whether the host has an agent to poll.
    pub fn has_agent(&self) -> bool {
        !self.address.is_empty()
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("spec", &self.spec)
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .field(
                "control_token",
                &self.control_token.as_ref().map(|_| "<hidden>"),
            )
            .field("net", &self.net)
            .finish()
    }
}

/// A cluster of the config, checked.
#[derive(Debug, Clone)]
pub struct ConfigCluster {
    /// Its name.
    pub name: String,
    /// TLS towards its agents (`tls`), if set.
    pub tls: Option<ClientTls>,
}

/// The aggregator's own host, collected in-process.
#[derive(Debug, Clone)]
pub struct SelfHost {
    /// Identity in the store.
    pub spec: HostSpec,
    /// GPU source.
    pub gpu: smon_collect::GpuMode,
}

/// Everything the aggregator runs on, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the settings came from, for messages.
    pub source: String,
    /// The file they came from (none for the embedded default or text): a running server
    /// reloads it on SIGHUP.
    pub path: Option<PathBuf>,
    /// What cannot change without a restart, as written (`server`, `manager`, `log`, and
    /// `monitor` less its clusters): a reload compares it to tell what it must ignore.
    pub fixed: serde_json::Value,
    /// HTTP listen address.
    pub http_listen: SocketAddr,
    /// Behind a reverse proxy.
    pub behind_proxy: bool,
    /// Path prefix (`""` or `/prefix`).
    pub base_path: String,
    /// Users, sessions, allow-lists, HTTPS.
    pub http: smon_web::security::HttpSecurity,
    /// Connection limits and timeouts of the HTTP listener (`server.limits`).
    pub limits: smon_web::serve::HttpLimits,
    /// Switch to this user after binding.
    pub run_as: Option<String>,
    /// Who keeps the process alive.
    pub manager: ManagerMode,
    /// How mode `self` supervises.
    pub manager_settings: ManagerSettings,
    /// Logging.
    pub log: LogSettings,
    /// Sampling interval asked of agents.
    pub interval: Duration,
    /// Stale after this many intervals.
    pub stale_after_intervals: u32,
    /// Down after this many intervals.
    pub down_after_intervals: u32,
    /// How often every host's reachability is checked (`monitor.reach_interval_s`).
    pub reach_interval: Duration,
    /// Own host, if watched.
    pub self_host: Option<SelfHost>,
    /// Agents to poll (and hosts without an agent: `address` empty).
    pub targets: Vec<Target>,
    /// The clusters of the config, in order, with their TLS towards agents (hosts added to
    /// them in the UI use it).
    pub clusters: Vec<ConfigCluster>,
    /// The per-host token files read, checked for group/world access at start and by
    /// `--check-config` (the users file is `http.auth.users_file`), and the remote-write
    /// secret files.
    pub token_files: Vec<PathBuf>,
    /// The history database (`storage`), `None` when `storage.enabled` is false. Changes
    /// need a restart.
    pub storage: Option<smon_history::StorageOptions>,
    /// How often each host's top processes are fetched for the history (a minute; not a
    /// config key: tests shorten it).
    pub processes_every: Duration,
    /// Remote-write receivers (`storage.remote_write`).
    pub remote_write: Vec<crate::remote_write::Target>,
    /// The dashboard's external URL (`server.public_url`, no trailing `/`).
    pub public_url: Option<String>,
    /// Alerting (`alerts`): on whenever the history database is (admins may add rules in
    /// the UI); `None` when `storage.enabled` is false.
    pub alerts: Option<AlertSettings>,
    /// The declared applications (`applications[]`), checked, in configuration order.
    pub applications: Vec<crate::applications::config::App>,
}

pub(crate) fn valid_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn valid_address(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok_and(|p| p > 0)
                && !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        }
        None => false,
    }
}

/// The sink of field errors while validating.
pub(crate) type Bad<'a> = dyn FnMut(String, &dyn fmt::Display, &str) + 'a;

/// A token given inline or in a file (relative to `base`; the file is remembered in
/// `files`, for reloads), checked: 16+ characters, no whitespace. Never shown in errors.
fn read_token(
    (inline, inline_key): (&Option<String>, &str),
    (file, file_key): (&Option<PathBuf>, &str),
    hf: &str,
    base: &Path,
    files: &mut Vec<PathBuf>,
    bad: &mut Bad<'_>,
) -> Option<String> {
    let token = match (inline, file) {
        (Some(_), Some(f)) => {
            bad(
                format!("{hf}.{file_key}"),
                &f.display(),
                &format!("cannot be combined with {inline_key}; set one"),
            );
            None
        }
        (Some(t), None) => Some(t.clone()),
        (None, Some(f)) => {
            let p = if f.is_absolute() {
                f.clone()
            } else {
                base.join(f)
            };
            files.push(p.clone());
            match std::fs::read_to_string(&p) {
                Ok(t) => Some(t.trim().to_owned()),
                Err(e) => {
                    bad(
                        format!("{hf}.{file_key}"),
                        &p.display(),
                        &format!("cannot be read: {e}"),
                    );
                    None
                }
            }
        }
        (None, None) => None,
    };
    if let Some(t) = &token
        && (t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        let field = if inline.is_some() {
            inline_key
        } else {
            file_key
        };
        bad(
            format!("{hf}.{field}"),
            &"<hidden>",
            "is not a valid token (16+ characters, no whitespace)",
        );
    }
    token
}

/// Whether `s` is an IP address or a DNS name.
pub fn valid_ip_or_name(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
        || (!s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            }))
}

/// One host of the fleet, checked (all but its name's uniqueness and its TLS, which the
/// caller sets): its agent's `address` (optional when `ip` is given: a host without an
/// agent), `tags`, tokens (files relative to `base`, remembered in `files`) and network
/// identity. Field names in errors start with `hf`. The inventory edited in the UI checks its
/// hosts here too, so that both say the same sentences.
pub(crate) fn check_host(
    h: &HostConfig,
    cluster: &str,
    hf: &str,
    base: &Path,
    files: &mut Vec<PathBuf>,
    bad: &mut Bad<'_>,
) -> Target {
    match &h.address {
        Some(a) if !valid_address(a) => {
            bad(format!("{hf}.address"), a, "is not a host:port address");
        }
        None if h.ip.is_none() => bad(
            format!("{hf}.address"),
            &"(none)",
            "is needed, or ip for a host without an agent (a printer, a NAS, a switch)",
        ),
        _ => {}
    }
    for (ti, t) in h.tags.iter().enumerate() {
        if t.is_empty() || t.len() > 63 || t.chars().any(char::is_control) {
            bad(
                format!("{hf}.tags[{ti}]"),
                t,
                "must be 1-63 printable characters",
            );
        }
    }
    let token = read_token(
        (&h.token, "token"),
        (&h.token_file, "token_file"),
        hf,
        base,
        files,
        bad,
    );
    let control_token = read_token(
        (&h.control_token, "control_token"),
        (&h.control_token_file, "control_token_file"),
        hf,
        base,
        files,
        bad,
    );
    let net = check_net(h, cluster, hf, bad);
    let address = h.address.clone().unwrap_or_default();
    Target {
        spec: HostSpec {
            cluster: cluster.to_owned(),
            name: h.name.clone(),
            address: address.clone(),
            tags: h.tags.clone(),
        },
        address,
        token,
        tls: None,
        control_token,
        net,
    }
}

/// A host's network identity (`ip`, `mac`, `wol`, `services`), checked; `wol.via` becomes a
/// host id (`cluster:name`, the cluster being `cluster` when not given), checked against the
/// fleet by the caller.
fn check_net(h: &HostConfig, cluster: &str, hf: &str, bad: &mut Bad<'_>) -> HostNet {
    let mut net = HostNet::default();
    if let Some(ip) = &h.ip {
        if valid_ip_or_name(ip) {
            net.ip = Some(ip.clone());
        } else {
            bad(format!("{hf}.ip"), ip, "is not an IP address or a DNS name");
        }
    }
    if let Some(mac) = &h.mac {
        match mac.parse::<smon_runtime::wol::Mac>() {
            Ok(m) => net.mac = Some(m),
            Err(_) => bad(
                format!("{hf}.mac"),
                mac,
                "is not a MAC address (six hex pairs: aa:bb:cc:dd:ee:ff)",
            ),
        }
    }
    if let Some(w) = &h.wol {
        if h.mac.is_none() {
            bad(
                format!("{hf}.wol"),
                &"{..}",
                "needs the host's mac: set mac too",
            );
        }
        if let Some(b) = &w.broadcast {
            match b.parse::<std::net::Ipv4Addr>() {
                Ok(a) => net.wol.broadcast = a,
                Err(_) => bad(
                    format!("{hf}.wol.broadcast"),
                    b,
                    "is not an IPv4 address (a broadcast such as 192.168.1.255)",
                ),
            }
        }
        match w.port {
            Some(0) => bad(format!("{hf}.wol.port"), &0, "must be 1-65535"),
            Some(p) => net.wol.port = p,
            None => {}
        }
        net.wol.via = w.via.as_ref().map(|v| {
            if v.contains(':') {
                v.clone()
            } else {
                format!("{cluster}:{v}")
            }
        });
        if net.wol.via.as_deref() == Some(&format!("{cluster}:{}", h.name)) {
            bad(
                format!("{hf}.wol.via"),
                &h.name,
                "is the host itself: a host asleep cannot relay its own wake",
            );
            net.wol.via = None;
        }
    }
    let mut names = HashSet::new();
    for (si, sv) in h.services.iter().enumerate() {
        let sf = format!("{hf}.services[{si}]");
        if sv.name.is_empty() || sv.name.len() > 63 || sv.name.chars().any(char::is_control) {
            bad(
                format!("{sf}.name"),
                &sv.name,
                "must be 1-63 printable characters",
            );
        } else if !names.insert(sv.name.clone()) {
            bad(
                format!("{sf}.name"),
                &sv.name,
                "is used by another service of this host",
            );
        }
        let kind = match sv.kind.as_deref() {
            None | Some("tcp") => ServiceKind::Tcp,
            Some("icmp") => ServiceKind::Icmp,
            Some(other) => {
                bad(format!("{sf}.type"), &other, "must be tcp or icmp");
                continue;
            }
        };
        match (kind, sv.port) {
            (ServiceKind::Tcp, None) => {
                bad(format!("{sf}.port"), &"(none)", "is needed for a tcp check");
                continue;
            }
            (_, Some(0)) => {
                bad(format!("{sf}.port"), &0, "must be 1-65535");
                continue;
            }
            _ => {}
        }
        net.services.push(Service {
            name: sv.name.clone(),
            port: sv.port,
            kind,
        });
    }
    net
}

/// Loads and validates a config file.
pub fn load_file(path: &Path) -> Result<Settings, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut s = load_str(&text, &file, &base)?;
    s.path = Some(path.to_path_buf());
    Ok(s)
}

/// The parts of a config document that a reload cannot apply: everything but
/// `monitor.clusters`.
fn fixed_part(text: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    if let Some(m) = v.get_mut("monitor").and_then(|m| m.as_object_mut()) {
        m.remove("clusters");
    }
    // Reloaded on SIGHUP (crate::reload): the alert rules and silences.
    if let Some(a) = v.get_mut("alerts").and_then(|a| a.as_object_mut()) {
        a.remove("rules");
        a.remove("silences");
        if a.is_empty() {
            v.as_object_mut().map(|o| o.remove("alerts"));
        }
    }
    v
}

/// The fields of `fixed` that differ between two configs (`server`, `monitor.poll_interval_ms`,
/// ...), in a stable order: what a reload reports as needing a restart.
pub fn fixed_changes(old: &Settings, new: &Settings) -> Vec<String> {
    let empty = serde_json::Map::new();
    let obj = |v: &serde_json::Value| v.as_object().cloned().unwrap_or_else(|| empty.clone());
    let (a, b) = (obj(&old.fixed), obj(&new.fixed));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        let (x, y) = (a.get(k), b.get(k));
        if x == y {
            continue;
        }
        match (x.and_then(|v| v.as_object()), y.and_then(|v| v.as_object())) {
            (Some(x), Some(y)) if k == "monitor" => {
                let mut inner: Vec<&String> = x.keys().chain(y.keys()).collect();
                inner.sort();
                inner.dedup();
                out.extend(
                    inner
                        .into_iter()
                        .filter(|f| x.get(*f) != y.get(*f))
                        .map(|f| format!("monitor.{f}")),
                );
            }
            _ => out.push(k.clone()),
        }
    }
    out
}

/// Loads the embedded default.
pub fn load_embedded() -> Result<Settings, ConfigError> {
    load_str(EMBEDDED_DEFAULT, EMBEDDED_NAME, Path::new(""))
}

/// Parses and validates config text; `file` names it in errors, `base` resolves relative paths.
/// Every problem is reported at once: unknown keys and wrong types, then the value checks.
pub fn load_str(text: &str, file: &str, base: &Path) -> Result<Settings, ConfigError> {
    let (raw, parse_errors) = parse_json_all::<AppConfig>(text, file)?;
    let mut s = finish(file, parse_errors, raw.validate(base))?;
    s.source = file.to_owned();
    s.fixed = fixed_part(text);
    Ok(s)
}

impl AppConfig {
    /// Checks every field; returns the settings or every problem.
    pub fn validate(&self, base: &Path) -> Result<Settings, Vec<FieldError>> {
        let mut errs = Vec::new();
        let manager = self.manager.check(&mut errs);
        let log = self.log.check(&mut errs);
        let http_listen = self.server.listen(DEFAULT_HTTP_PORT, &mut errs);
        let mut bad = |field: String, value: &dyn fmt::Display, problem: &str| {
            errs.push(FieldError {
                field,
                value: value.to_string(),
                problem: problem.to_owned(),
            });
        };
        if let Some(web) = self.server.web {
            bad(
                "server.web".into(),
                &web,
                "is smon-agent's (its single-host web view); the aggregator always serves its dashboard: remove the key",
            );
        }
        let bp = &self.server.base_path;
        if let Some(why) = smon_web::security::config::base_path_problem(bp) {
            bad("server.base_path".into(), bp, &why);
        }
        let m = &self.monitor;
        if m.mode != "app" {
            bad(
                "monitor.mode".into(),
                &m.mode,
                "must be 'app' for smon-aggregator ('node' is for smon-agent)",
            );
        }
        if m.poll_interval_ms < 100 || m.poll_interval_ms > 3_600_000 {
            bad(
                "monitor.poll_interval_ms".into(),
                &m.poll_interval_ms,
                "must be between 100 and 3600000",
            );
        }
        if !(5..=3600).contains(&m.reach_interval_s) {
            bad(
                "monitor.reach_interval_s".into(),
                &m.reach_interval_s,
                "must be between 5 and 3600 (seconds)",
            );
        }
        if m.stale_after_intervals < 2 {
            bad(
                "monitor.stale_after_intervals".into(),
                &m.stale_after_intervals,
                "must be at least 2",
            );
        }
        if m.down_after_intervals <= m.stale_after_intervals {
            bad(
                "monitor.down_after_intervals".into(),
                &m.down_after_intervals,
                "must be greater than stale_after_intervals",
            );
        }
        let gpu = match m.self_gpu.as_str() {
            "auto" => Some(smon_collect::GpuMode::Auto),
            "off" => Some(smon_collect::GpuMode::Off),
            "fake" => Some(smon_collect::GpuMode::Fake(2)),
            other => {
                bad(
                    "monitor.self_gpu".into(),
                    &other,
                    "is not one of auto, off, fake",
                );
                None
            }
        };
        if !valid_name(&m.self_cluster) {
            bad(
                "monitor.self_cluster".into(),
                &m.self_cluster,
                "must be 1-63 of A-Z a-z 0-9 . _ -",
            );
        }
        let self_name = m.self_name.clone().unwrap_or_else(|| {
            let slug = smon_collect::host_slug(&smon_collect::hostname());
            if slug.is_empty() { "self".into() } else { slug }
        });
        if !valid_name(&self_name) {
            bad(
                "monitor.self_name".into(),
                &self_name,
                "must be 1-63 of A-Z a-z 0-9 . _ -",
            );
        }

        let mut ids = HashSet::new();
        let mut cluster_names = HashSet::new();
        if m.include_self {
            ids.insert(format!("{}:{}", m.self_cluster, self_name));
        }
        let mut targets = Vec::new();
        let mut token_files = Vec::new();
        let mut tls_errs = Vec::new();
        let mut wol_vias = Vec::new();
        let mut config_clusters = Vec::new();
        for (ci, c) in m.clusters.iter().enumerate() {
            let cf = format!("monitor.clusters[{ci}]");
            let cluster_tls = c
                .tls
                .as_ref()
                .and_then(|t| check_client_tls(t, &format!("{cf}.tls"), base, &mut tls_errs));
            if !valid_name(&c.name) {
                bad(
                    format!("{cf}.name"),
                    &c.name,
                    "must be 1-63 of A-Z a-z 0-9 . _ -",
                );
            }
            if !cluster_names.insert(c.name.clone()) {
                bad(format!("{cf}.name"), &c.name, "is used by another cluster");
            }
            if c.hosts.is_empty() {
                bad(format!("{cf}.hosts"), &"[]", "lists no host");
            }
            for (hi, h) in c.hosts.iter().enumerate() {
                let hf = format!("{cf}.hosts[{hi}]");
                if !valid_name(&h.name) {
                    bad(
                        format!("{hf}.name"),
                        &h.name,
                        "must be 1-63 of A-Z a-z 0-9 . _ -",
                    );
                } else if !ids.insert(format!("{}:{}", c.name, h.name)) {
                    bad(
                        format!("{hf}.name"),
                        &h.name,
                        "is used by another host of this cluster",
                    );
                }
                let mut target = check_host(h, &c.name, &hf, base, &mut token_files, &mut bad);
                wol_vias.push((format!("{hf}.wol.via"), target.net.wol.via.clone()));
                let tls = match (&h.tls, &c.tls) {
                    (Some(t), _) => check_client_tls(t, &format!("{hf}.tls"), base, &mut tls_errs),
                    (None, _) => cluster_tls.clone(),
                };
                target.tls = tls;
                targets.push(target);
            }
            let tls = cluster_tls;
            config_clusters.push(ConfigCluster {
                name: c.name.clone(),
                tls,
            });
        }
        for (field, via) in wol_vias {
            if let Some(v) = via
                && !ids.contains(&v)
            {
                bad(field, &v, "names no host of the fleet");
            }
        }
        if !m.include_self && targets.is_empty() {
            bad(
                "monitor.clusters".into(),
                &"[]",
                "lists no host and include_self is false: nothing to watch",
            );
        }

        errs.append(&mut tls_errs);
        let http = smon_web::security::config::check_server(
            &self.server,
            base,
            "smon-users.json",
            &mut errs,
        );
        // Start-up's refusal of a dashboard nobody could log in to, checked here too so that
        // `--check-config` says it.
        if let Some(listen) = http_listen {
            smon_web::security::config::check_users(&http, listen, &mut errs);
        }
        let run_as = self.server.run_as(&mut errs);
        let limits = self.server.limits.check(&mut errs);
        let storage = self.storage.check(base, &mut errs);
        let remote_write = crate::remote_write::config::check(
            &self.storage.remote_write,
            "storage.remote_write",
            base,
            &mut token_files,
            &mut errs,
        );

        let applications =
            crate::applications::config::check(&self.applications, "applications", &ids, &mut errs);
        let public_url = check_public_url(self.server.public_url.as_deref(), &mut errs);
        let alerts = self
            .alerts
            .check(base, public_url.as_deref(), &mut token_files, &mut errs);
        let alerts = match (&storage, self.alerts.is_set()) {
            (Some(_), _) => Some(alerts),
            (None, false) => None,
            (None, true) => {
                errs.push(FieldError {
                    field: "alerts".into(),
                    value: String::new(),
                    problem: "needs the database, but storage.enabled is false: the outbox, the alert history and the engine's state live in it (enable storage, or remove the alerts block)".into(),
                });
                None
            }
        };

        match (errs.is_empty(), http_listen, manager, gpu) {
            (true, Some(http_listen), Some((manager, manager_settings)), Some(gpu)) => {
                Ok(Settings {
                    source: String::new(),
                    path: None,
                    fixed: serde_json::Value::Null,
                    http_listen,
                    behind_proxy: self.server.behind_proxy,
                    base_path: smon_web::hub::normalise_base(&self.server.base_path),
                    http,
                    limits,
                    run_as,
                    manager,
                    manager_settings,
                    log: log.unwrap_or_default(),
                    interval: Duration::from_millis(m.poll_interval_ms),
                    stale_after_intervals: m.stale_after_intervals,
                    down_after_intervals: m.down_after_intervals,
                    reach_interval: Duration::from_secs(m.reach_interval_s),
                    self_host: m.include_self.then(|| SelfHost {
                        spec: HostSpec {
                            cluster: m.self_cluster.clone(),
                            name: self_name,
                            address: "in-process".into(),
                            tags: Vec::new(),
                        },
                        gpu,
                    }),
                    targets,
                    clusters: config_clusters,
                    token_files,
                    storage,
                    processes_every: Duration::from_secs(60),
                    remote_write,
                    public_url,
                    alerts,
                    applications,
                })
            }
            _ => Err(errs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        load_str(text, "app.json", Path::new("/nonexistent"))
    }

    #[test]
    fn embedded_default_is_valid_and_watches_itself() {
        let s = load_embedded().expect("valid");
        assert!(s.http_listen.ip().is_loopback());
        assert!(s.self_host.is_some());
        assert_eq!(s.base_path, "");
    }

    #[test]
    fn reports_every_problem() {
        let err = load(r#"{"server":{"base_path":"smon"},"monitor":{"mode":"node","poll_interval_ms":10,"stale_after_intervals":5,"down_after_intervals":4,"clusters":[
            {"name":"lab","hosts":[{"name":"n1","address":"node7:50O51"},{"name":"n1","address":"10.0.0.1:50051","token":"short"}]},
            {"name":"lab","hosts":[]}]}}"#)
        .expect_err("invalid")
        .to_string();
        for want in [
            "app.json: server.base_path: 'smon' must be a path like / or /smon",
            "app.json: monitor.mode: 'node' must be 'app'",
            "app.json: monitor.poll_interval_ms: '10' must be between 100 and 3600000",
            "app.json: monitor.down_after_intervals: '4' must be greater than stale_after_intervals",
            "app.json: monitor.clusters[0].hosts[0].address: 'node7:50O51' is not a host:port address",
            "app.json: monitor.clusters[0].hosts[1].name: 'n1' is used by another host of this cluster",
            "app.json: monitor.clusters[0].hosts[1].token: '<hidden>' is not a valid token",
            "app.json: monitor.clusters[1].name: 'lab' is used by another cluster",
            "app.json: monitor.clusters[1].hosts: '[]' lists no host",
        ] {
            assert!(err.contains(want), "missing {want:?} in\n{err}");
        }
        assert!(!err.contains("short"), "token leaked: {err}");
    }

    #[test]
    fn hostnames_and_prefixes_are_accepted() {
        let s = load(r#"{"server":{"base_path":"/smon/"},"monitor":{"mode":"app","include_self":false,"clusters":[{"name":"lab","hosts":[{"name":"gpu-01","address":"gpu-01.lab.example:50051","token":"0123456789abcdef0123","tags":["gpu","rack 3"]}]}]}}"#)
            .expect("valid");
        assert_eq!(s.base_path, "/smon");
        assert_eq!(s.targets[0].spec.id(), "lab:gpu-01");
        assert!(format!("{:?}", s.targets[0]).contains("<hidden>"));
    }

    #[test]
    fn fixed_changes_name_what_needs_a_restart() {
        let a = load(r#"{"server":{"port":8080},"monitor":{"mode":"app","poll_interval_ms":1000,"clusters":[{"name":"lab","hosts":[{"name":"a","address":"10.0.0.1:1"}]}]}}"#)
            .expect("valid");
        let hosts_only = load(r#"{"server":{"port":8080},"monitor":{"mode":"app","poll_interval_ms":1000,"clusters":[{"name":"lab","hosts":[{"name":"b","address":"10.0.0.2:1"}]}]}}"#)
            .expect("valid");
        assert!(fixed_changes(&a, &hosts_only).is_empty());
        let both = load(r#"{"server":{"port":9090},"log":{"format":"json"},"monitor":{"mode":"app","poll_interval_ms":500,"clusters":[]}}"#)
            .expect("valid");
        assert_eq!(
            fixed_changes(&a, &both),
            ["log", "monitor.poll_interval_ms", "server"]
        );
    }

    #[test]
    fn storage_defaults_next_to_the_config_with_history_on() {
        let s = load(r#"{"monitor":{"mode":"app"}}"#).expect("valid");
        let st = s.storage.expect("history on by default");
        assert_eq!(st.dir, Path::new("/nonexistent/smon-data"));
        assert_eq!(st.retention, smon_history::Retention::default());
        let e = load_embedded().expect("valid").storage.expect("on");
        assert_eq!(
            e.dir,
            Path::new("smon-data"),
            "embedded: the working directory"
        );
        let s = load(r#"{"monitor":{"mode":"app"},"storage":{"dir":"db","retention":{"raw":"48h","minute":"2w","hour":"1y","processes":"3600s"}}}"#)
            .expect("valid");
        let st = s.storage.expect("on");
        assert_eq!(st.dir, Path::new("/nonexistent/db"));
        assert_eq!(st.retention.raw, Duration::from_secs(48 * 3600));
        assert_eq!(st.retention.minute, Duration::from_secs(14 * 86_400));
        assert_eq!(st.retention.hour, Duration::from_secs(365 * 86_400));
        assert_eq!(st.retention.processes, Duration::from_secs(3600));
        let off = load(r#"{"monitor":{"mode":"app"},"storage":{"enabled":false}}"#).expect("valid");
        assert!(off.storage.is_none());
        let changed =
            load(r#"{"monitor":{"mode":"app"},"storage":{"enabled":false}}"#).expect("valid");
        let before = load(r#"{"monitor":{"mode":"app"}}"#).expect("valid");
        assert_eq!(fixed_changes(&before, &changed), ["storage"]);
    }

    #[test]
    fn nothing_to_watch_is_refused() {
        let err = load(r#"{"monitor":{"mode":"app","include_self":false}}"#)
            .expect_err("invalid")
            .to_string();
        assert!(err.contains("nothing to watch"), "{err}");
    }

    #[test]
    fn the_agents_web_key_is_refused() {
        let err = load(r#"{"server":{"web":true},"monitor":{"mode":"app"}}"#)
            .expect_err("invalid")
            .to_string();
        assert!(
            err.contains("app.json: server.web: 'true' is smon-agent's"),
            "{err}"
        );
    }
}
