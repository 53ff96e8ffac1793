//! The agent's configuration (`config_node.json`): serde structs that reject unknown keys, and a
//! validation pass that reports every problem at once, naming the file, the field and the value.
//!
//! The JSON keeps the shape users of the older Python System Monitor know: `server`, `manager`
//! and `monitor` blocks. Loading turns the raw file into [`Settings`], the typed, checked values
//! the agent runs on; nothing downstream re-validates.
//!
//! Loading is pure: it reads the files the config names but writes none. A missing
//! `monitor.token_file` gets a fresh random token in memory, and [`Settings::create_token_file`]
//! writes it when the agent starts (never on `--check-config` or `--once`).
//!
//! The `server`, `manager` and `log` blocks are smon-runtime's, shared with the aggregator.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

use serde::Deserialize;
use smon_runtime::config::{
    FieldError, LogConfig, LogSettings, ManagerConfig, ManagerMode, ServerConfig, printable,
    read_pem,
};
use smon_runtime::manager::ManagerSettings;
use smon_runtime::net::CidrList;

pub use smon_runtime::config::{ConfigError, parse_json, parse_json_all};

/// The web view's port when `server.port` is not set.
pub const DEFAULT_HTTP_PORT: u16 = 8081;
use smon_collect::{
    CollectorConfig, ContainersConfig, DetailDemand, DiskFilter, GpuMode, NetworkFilter, Redactor,
    Roots,
    gpus::{FakeFault, FakeGpus},
};

/// The example config shipped in the repository, used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config_node.json");

/// Name shown for the embedded default in error messages.
pub const EMBEDDED_NAME: &str = "<embedded config_node.json>";

/// Shortest token accepted: shorter ones are guessable.
const MIN_TOKEN_LEN: usize = 16;

/// Fastest sampling interval accepted.
pub const MIN_INTERVAL_MS: u64 = 100;

/// Most fake GPUs the demo source will pretend to have.
const MAX_FAKE_GPUS: u32 = 16;

/// The whole `config_node.json` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// HTTP side: the single-host web view, and `run_as`.
    #[serde(default)]
    pub server: ServerConfig,
    /// Who keeps the agent alive.
    #[serde(default)]
    pub manager: ManagerConfig,
    /// What to collect and how to serve it over gRPC.
    pub monitor: MonitorConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The single-host view's history (`smon.sqlite3` in `storage.dir`): off unless
    /// `storage.enabled` is true, and then `server.web` must be on.
    #[serde(default)]
    pub storage: StorageBlock,
    /// The `smon.v1.Control` service (Wake-on-LAN relay, reboot and shutdown): not served
    /// unless a control token is set here.
    #[serde(default)]
    pub control: ControlConfig,
}

/// The `control` block: who may act on the host, and which actions are on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// The control token inline (16+ characters, no whitespace, different from the read
    /// token). Prefer `token_file`.
    #[serde(default)]
    pub token: Option<String>,
    /// File holding the control token; relative paths are relative to the config file's
    /// directory. Never created by the agent: a missing file is a config error.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Whether `Control.Wake` sends magic packets (on by default once a token is set).
    #[serde(default = "default_true")]
    pub wake: bool,
    /// Reboot and shutdown.
    #[serde(default)]
    pub power: PowerConfig,
    /// The host's supervisord: its programs in every sample, and `Control.Program` /
    /// `Control.TailLog`. Off when absent. Read also without a control token.
    #[serde(default)]
    pub supervisor: Option<SupervisorConfig>,
    /// `Control.Signal`: off by default.
    #[serde(default)]
    pub signals: SignalsConfig,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            token: None,
            token_file: None,
            wake: true,
            power: PowerConfig::default(),
            supervisor: None,
            signals: SignalsConfig::default(),
        }
    }
}

/// `control.supervisor`: where supervisord's XML-RPC interface is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorConfig {
    /// `unix:///run/supervisor.sock` (the `[unix_http_server]` file) or
    /// `http://127.0.0.1:9001` (the `[inet_http_server]` port; a path, default `/RPC2`, may
    /// follow).
    pub url: String,
    /// The `username` of supervisord's `[unix_http_server]` / `[inet_http_server]`.
    #[serde(default)]
    pub username: Option<String>,
    /// Its password inline. Prefer `password_file`.
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the password (relative to the config file's directory).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// How often the programs are read, in seconds (1-3600).
    #[serde(default = "default_supervisor_interval")]
    pub interval_s: u64,
}

fn default_supervisor_interval() -> u64 {
    5
}

/// `control.signals`: whether `Control.Signal` may signal processes, and whose.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsConfig {
    /// Off by default: `Control.Signal` then answers FAILED_PRECONDITION.
    #[serde(default)]
    pub enabled: bool,
    /// Only processes of these users (names); absent: any user the agent may signal.
    #[serde(default)]
    pub users: Option<Vec<String>>,
}

/// Where supervisord listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorEndpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// HTTP over TCP: `authority` (`host:port`) and the request path.
    Http {
        /// `host:port`.
        authority: String,
        /// The XML-RPC path, `/RPC2` by default.
        path: String,
    },
}

/// `control.supervisor`, checked.
#[derive(Clone)]
pub struct SupervisorSettings {
    /// The URL as configured (shown in messages; it holds no credentials).
    pub url: String,
    /// Where it is.
    pub endpoint: SupervisorEndpoint,
    /// `username` and password, when set.
    pub credentials: Option<(String, String)>,
    /// `password_file`, resolved: a secret file, checked for group/world access.
    pub password_file: Option<PathBuf>,
    /// How often the programs are read.
    pub interval: Duration,
}

impl fmt::Debug for SupervisorSettings {
    // Never print the password, even in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorSettings")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("username", &self.credentials.as_ref().map(|c| &c.0))
            .field("interval", &self.interval)
            .finish()
    }
}

/// `control.signals` when enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalSettings {
    /// Only processes of these users; `None`: any.
    pub users: Option<Vec<String>>,
}

impl SupervisorConfig {
    /// The checked block; problems are recorded as `control.supervisor.<field>` errors.
    fn check(&self, base: &Path, errs: &mut Vec<FieldError>) -> Option<SupervisorSettings> {
        let mut ok = true;
        let mut bad = |field: &str, value: &dyn fmt::Display, problem: &str| {
            ok = false;
            errs.push(FieldError {
                field: format!("control.supervisor.{field}"),
                value: value.to_string(),
                problem: problem.to_owned(),
            });
        };
        let endpoint = parse_supervisor_url(&self.url);
        if endpoint.is_none() {
            // A password in the URL is not repeated in the message.
            let (shown, problem) = match self.url.split_once('@') {
                Some((_, host)) => (
                    format!("<credentials>@{host}"),
                    "holds credentials: give them as control.supervisor.username and password_file",
                ),
                None => (
                    printable(&self.url).into_owned(),
                    "is not a supervisord address: give unix:///run/supervisor.sock (its [unix_http_server] file) or http://127.0.0.1:9001 (its [inet_http_server] port)",
                ),
            };
            bad("url", &shown, problem);
        }
        if !(1..=3600).contains(&self.interval_s) {
            bad("interval_s", &self.interval_s, "is not between 1 and 3600");
        }
        let password = match (&self.password, &self.password_file) {
            (Some(_), Some(f)) => {
                bad(
                    "password_file",
                    &f.display(),
                    "cannot be combined with control.supervisor.password; set one",
                );
                None
            }
            (Some(p), None) => Some(p.clone()),
            (None, Some(f)) => match std::fs::read_to_string(base.join(f)) {
                Ok(p) => Some(p.trim_end_matches(['\r', '\n']).to_owned()),
                Err(e) => {
                    bad(
                        "password_file",
                        &base.join(f).display(),
                        &format!("cannot be read: {e}"),
                    );
                    None
                }
            },
            (None, None) => None,
        };
        let credentials = match (&self.username, password) {
            (Some(u), Some(p)) => {
                if u.contains(':') || u.chars().any(char::is_control) {
                    bad(
                        "username",
                        &printable(u),
                        "contains ':' or control characters",
                    );
                }
                Some((u.clone(), p))
            }
            (None, None) => None,
            (Some(u), None) => {
                if self.password_file.is_none() {
                    bad(
                        "username",
                        &printable(u),
                        "is set without a password: set control.supervisor.password_file (or password) too",
                    );
                }
                None
            }
            (None, Some(_)) => {
                bad(
                    "password",
                    &"<hidden>",
                    "is set without control.supervisor.username",
                );
                None
            }
        };
        let endpoint = endpoint?;
        ok.then(|| SupervisorSettings {
            url: self.url.clone(),
            endpoint,
            credentials,
            password_file: self.password_file.as_ref().map(|f| base.join(f)),
            interval: Duration::from_secs(self.interval_s),
        })
    }
}

/// `unix:///path` or `http://host:port[/path]`; `None` for anything else.
fn parse_supervisor_url(url: &str) -> Option<SupervisorEndpoint> {
    if let Some(path) = url.strip_prefix("unix://") {
        return (path.starts_with('/') && path.len() > 1 && !path.chars().any(char::is_control))
            .then(|| SupervisorEndpoint::Unix(PathBuf::from(path)));
    }
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/RPC2"),
    };
    let path = if path == "/" { "/RPC2" } else { path };
    let (host, port) = authority.rsplit_once(':')?;
    let valid_host = !host.is_empty()
        && !host.contains('@')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    let valid_path = path
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '?' | '#'));
    (valid_host && valid_path && port.parse::<u16>().is_ok_and(|p| p > 0)).then(|| {
        SupervisorEndpoint::Http {
            authority: authority.to_owned(),
            path: path.to_owned(),
        }
    })
}

/// `control.power`: the commands `Control.Power` starts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerConfig {
    /// Off by default: `Control.Power` then answers FAILED_PRECONDITION.
    #[serde(default)]
    pub enabled: bool,
    /// The reboot command, an argv list (no shell): an absolute path or a program name
    /// looked up in `PATH` first. `null` turns reboot off alone.
    #[serde(default = "default_reboot")]
    pub reboot: Option<Vec<String>>,
    /// The shutdown command, as `reboot`.
    #[serde(default = "default_shutdown")]
    pub shutdown: Option<Vec<String>>,
}

impl Default for PowerConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            reboot: default_reboot(),
            shutdown: default_shutdown(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_reboot() -> Option<Vec<String>> {
    Some(vec!["systemctl".into(), "reboot".into()])
}

fn default_shutdown() -> Option<Vec<String>> {
    Some(vec!["systemctl".into(), "poweroff".into()])
}

/// The `control` block, checked: present only when a control token is configured.
#[derive(Clone)]
pub struct ControlSettings {
    /// The control token.
    pub token: String,
    /// `control.token_file`, resolved: a secret file, checked for group/world access.
    pub token_file: Option<PathBuf>,
    /// `control.wake`.
    pub wake: bool,
    /// The power commands, `None` when `control.power.enabled` is false.
    pub power: Option<PowerCommands>,
    /// `control.signals`, `None` when off.
    pub signals: Option<SignalSettings>,
}

impl fmt::Debug for ControlSettings {
    // Never print the token, even in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlSettings")
            .field("token", &"<hidden>")
            .field("token_file", &self.token_file)
            .field("wake", &self.wake)
            .field("power", &self.power)
            .field("signals", &self.signals)
            .finish()
    }
}

/// `control.power` when enabled: each action's argv, `None` for an action set to `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerCommands {
    /// `control.power.reboot`.
    pub reboot: Option<Vec<String>>,
    /// `control.power.shutdown`.
    pub shutdown: Option<Vec<String>>,
}

/// The `storage` block, the aggregator's keys less `remote_write`.
#[cfg(feature = "history")]
pub type StorageBlock = smon_history::config::StorageConfig;

/// The `storage` block of an agent built without history: only read to refuse
/// `storage.enabled: true`.
#[cfg(not(feature = "history"))]
pub type StorageBlock = serde_json::Value;

/// The `monitor` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Must be `node` for the agent (`app` is the aggregator's).
    pub mode: String,
    /// Sampling interval in milliseconds (at least 100).
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Socket address of the gRPC listener, e.g. `127.0.0.1:50051` or `[::]:50051`.
    #[serde(default = "default_grpc_listen")]
    pub grpc_listen: String,
    /// `token` (every call needs the bearer token) or `none` (allowed on loopback only).
    #[serde(default = "default_auth")]
    pub auth: String,
    /// The bearer token inline. Prefer `token_file` or the `SMON_TOKEN` environment variable.
    #[serde(default)]
    pub token: Option<String>,
    /// File holding the bearer token; created with a random token (mode 0600) when the agent
    /// starts and it is missing. Relative paths are relative to the config file's directory.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// GPU source: `auto` (NVML when present), `off`, or `fake` (a demo source).
    #[serde(default = "default_gpu")]
    pub gpu: String,
    /// How many GPUs the `fake` source pretends to have.
    #[serde(default = "default_fake_gpu_count")]
    pub fake_gpu_count: u32,
    /// Faults the `fake` source shows, for tests and demos, e.g. `["no_permission:1",
    /// "gpu_lost:2@30", "late_driver:3", "mig:0x3"]` (forms in `smon_collect::gpus::FakeFault`).
    #[serde(default)]
    pub fake_gpu_faults: Vec<String>,
    /// Extra regular expressions redacted from command lines. With a capture group only the
    /// group is replaced; without one the whole match is.
    #[serde(default)]
    pub redact_patterns: Vec<String>,
    /// Which filesystems to report.
    #[serde(default)]
    pub disks: DiskFilterConfig,
    /// Which network interfaces to report.
    #[serde(default)]
    pub network: NetworkFilterConfig,
    /// Containers and services found by their cgroups (on by default).
    #[serde(default)]
    pub containers: ContainersBlock,
    /// TLS on the gRPC listener; with `client_ca`, mutual TLS (clients need a certificate
    /// signed by that CA). The token still applies.
    #[serde(default)]
    pub tls: Option<GrpcTlsConfig>,
    /// Who may call the gRPC API (CIDR ranges; empty: anyone, the token still applies).
    /// Connections from elsewhere are closed before TLS or any request.
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Connection limits and timeouts of the gRPC listener.
    #[serde(default)]
    pub limits: GrpcLimitsConfig,
}

/// `monitor.limits`: how many connections the gRPC listener holds, and how long it waits.
/// What each stops is in the README ("Connections and limits").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcLimitsConfig {
    /// Connections at once in all (from addresses `allow_from` admits). Never more than half
    /// the open-file limit (the process collector may use the other half); peers on this host
    /// (the health probe) get 16 more.
    #[serde(default = "default_grpc_max_connections")]
    pub max_connections: usize,
    /// Connections at once from one address (an IPv6 address counts by its /64). An
    /// aggregator needs one.
    #[serde(default = "default_grpc_per_address")]
    pub max_connections_per_address: usize,
    /// Calls (HTTP/2 streams) at once on one connection; an aggregator holds one `Watch`.
    #[serde(default = "default_grpc_streams")]
    pub max_concurrent_streams: u32,
    /// Seconds a client has for the TLS handshake.
    #[serde(default = "default_grpc_handshake_s")]
    pub handshake_timeout_s: u64,
    /// A connection on which nothing is read or written for this many seconds is closed
    /// (the agent pings every 30 s, so only a peer that stopped answering, or one that never
    /// began HTTP/2, stays silent that long).
    #[serde(default = "default_grpc_idle_s")]
    pub idle_timeout_s: u64,
}

impl Default for GrpcLimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: default_grpc_max_connections(),
            max_connections_per_address: default_grpc_per_address(),
            max_concurrent_streams: default_grpc_streams(),
            handshake_timeout_s: default_grpc_handshake_s(),
            idle_timeout_s: default_grpc_idle_s(),
        }
    }
}

fn default_grpc_max_connections() -> usize {
    256
}
fn default_grpc_per_address() -> usize {
    16
}
fn default_grpc_streams() -> u32 {
    128
}
fn default_grpc_handshake_s() -> u64 {
    10
}
fn default_grpc_idle_s() -> u64 {
    120
}

/// `monitor.limits`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcLimits {
    /// `max_connections`, as configured (lowered below the open-file limit when serving).
    pub max_connections: usize,
    /// `max_connections_per_address`.
    pub per_address: usize,
    /// `max_concurrent_streams`.
    pub max_concurrent_streams: u32,
    /// `handshake_timeout_s`.
    pub handshake_timeout: Duration,
    /// `idle_timeout_s`.
    pub idle_timeout: Duration,
}

impl GrpcLimitsConfig {
    /// The checked limits; problems are recorded as `monitor.limits.<field>` errors.
    pub fn check(&self, errs: &mut Vec<FieldError>) -> GrpcLimits {
        use smon_runtime::config::server::{count_in, seconds_in};
        let p = "monitor.limits";
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
        count_in(
            errs,
            p,
            "max_concurrent_streams",
            self.max_concurrent_streams as usize,
            1,
            100_000,
        );
        seconds_in(
            errs,
            p,
            "handshake_timeout_s",
            self.handshake_timeout_s,
            1,
            300,
        );
        // Above the 30 s ping interval, or live connections would be cut.
        seconds_in(errs, p, "idle_timeout_s", self.idle_timeout_s, 45, 86_400);
        GrpcLimits {
            max_connections: self.max_connections.max(1),
            per_address: self.max_connections_per_address.max(1),
            max_concurrent_streams: self.max_concurrent_streams.max(1),
            handshake_timeout: Duration::from_secs(self.handshake_timeout_s.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_s.max(1)),
        }
    }
}

/// `monitor.tls`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcTlsConfig {
    /// The agent's certificate chain (PEM).
    pub cert: String,
    /// The agent's private key (PEM).
    pub key: String,
    /// The CA (PEM) whose certificates clients must present: mutual TLS. Absent: any client.
    #[serde(default)]
    pub client_ca: Option<String>,
}

/// The gRPC listener's TLS, checked: PEM files read at start.
#[derive(Clone)]
pub struct GrpcTls {
    /// Certificate chain, PEM.
    pub cert: Vec<u8>,
    /// Private key, PEM.
    pub key: Vec<u8>,
    /// Client CA, PEM (mutual TLS).
    pub client_ca: Option<Vec<u8>>,
}

impl fmt::Debug for GrpcTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcTls")
            .field("mutual", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

fn default_interval_ms() -> u64 {
    1000
}

fn default_grpc_listen() -> String {
    "127.0.0.1:50051".to_owned()
}

fn default_auth() -> String {
    "token".to_owned()
}

fn default_gpu() -> String {
    "auto".to_owned()
}

fn default_fake_gpu_count() -> u32 {
    2
}

/// The `monitor.disks` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskFilterConfig {
    /// Filesystem types to report even though they are pseudo filesystems (e.g. `tmpfs`).
    #[serde(default)]
    pub include_fs_types: Vec<String>,
    /// Filesystem types never to report (e.g. `nfs4`).
    #[serde(default)]
    pub exclude_fs_types: Vec<String>,
    /// Mount points never to report; an entry also excludes everything below it.
    #[serde(default)]
    pub exclude_mounts: Vec<String>,
}

/// The `monitor.containers` block: containers (Docker, Podman, containerd, CRI-O, Kubernetes,
/// LXC) and systemd services found by their cgroups under `/sys/fs/cgroup`, no runtime daemon
/// asked. Reading cgroup files needs no privileges.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainersBlock {
    /// Report them (`Snapshot.containers`) and tag each process with its container.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// At most this many are read each sample (1 to 10000).
    #[serde(default = "default_containers_max")]
    pub max: usize,
    /// API sockets of Docker (Engine API) or Podman (its compatible API), asked read-only
    /// every 10 s for names, images and states when readable; `[]`: names from the cgroup
    /// paths only. Relative paths are relative to the config file's directory.
    #[serde(default = "default_runtime_sockets")]
    pub runtime_sockets: Vec<PathBuf>,
}

impl Default for ContainersBlock {
    fn default() -> Self {
        Self {
            enabled: true,
            max: default_containers_max(),
            runtime_sockets: default_runtime_sockets(),
        }
    }
}

fn default_runtime_sockets() -> Vec<PathBuf> {
    ContainersConfig::default().runtime_sockets
}

fn default_containers_max() -> usize {
    smon_collect::containers::DEFAULT_MAX
}

/// The `monitor.network` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFilterConfig {
    /// Interface names never to report; a trailing `*` matches a prefix (e.g. `veth*`).
    #[serde(default = "default_exclude_interfaces")]
    pub exclude_interfaces: Vec<String>,
}

impl Default for NetworkFilterConfig {
    fn default() -> Self {
        Self {
            exclude_interfaces: default_exclude_interfaces(),
        }
    }
}

fn default_exclude_interfaces() -> Vec<String> {
    vec!["lo".to_owned()]
}

/// How gRPC callers authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Every call must carry `authorization: Bearer <token>`.
    Token(String),
    /// No authentication (loopback listeners only).
    None,
}

impl fmt::Debug for Auth {
    // Never print the token, even in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Token(<hidden>)"),
            Auth::None => f.write_str("None"),
        }
    }
}

/// Everything the agent runs on, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the settings came from (a path or the embedded default), for messages.
    pub source: String,
    /// The single-host web view, when enabled.
    #[cfg(feature = "web")]
    pub web: Option<WebView>,
    /// The web view's history (`storage`), `None` when off (the default).
    #[cfg(feature = "history")]
    pub storage: Option<smon_history::StorageOptions>,
    /// How often the history takes the top processes (a minute; tests shorten it).
    #[cfg(feature = "history")]
    pub processes_every: Duration,
    /// Who keeps the process alive.
    pub manager: ManagerMode,
    /// How mode `self` supervises.
    pub manager_settings: ManagerSettings,
    /// Logging.
    pub log: LogSettings,
    /// Sampling interval.
    pub interval: Duration,
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// gRPC authentication.
    pub auth: Auth,
    /// `monitor.token_file` did not exist at load: [`Settings::create_token_file`] writes the
    /// token of `auth` there at start-up.
    pub token_file_to_create: Option<PathBuf>,
    /// `monitor.token_file`, resolved: a secret file, checked for group/world access.
    pub token_file: Option<PathBuf>,
    /// GPU source.
    pub gpu: GpuMode,
    /// Faults of the fake GPU source (empty for the other sources).
    pub fake_gpu_faults: Vec<FakeFault>,
    /// Extra redaction patterns, compiled.
    pub redact_patterns: Vec<Regex>,
    /// Disk filters.
    pub disks: DiskFilter,
    /// Network filters.
    pub network: NetworkFilter,
    /// `monitor.containers`, `None` when off.
    pub containers: Option<ContainersConfig>,
    /// Switch to this user after binding.
    pub run_as: Option<String>,
    /// TLS of the gRPC listener.
    pub grpc_tls: Option<GrpcTls>,
    /// Who may call the gRPC API (empty: anyone).
    pub grpc_allow: CidrList,
    /// Connection limits of the gRPC listener.
    pub grpc_limits: GrpcLimits,
    /// The Control service, `None` (not served) without a control token.
    pub control: Option<ControlSettings>,
    /// `control.supervisor`: read into every sample, with or without a control token.
    pub supervisor: Option<SupervisorSettings>,
}

impl Settings {
    /// The collector config for these settings: the real OS roots and the GPU source the
    /// settings ask for.
    pub fn collector_config(&self) -> CollectorConfig {
        CollectorConfig {
            roots: Roots::default(),
            redactor: Redactor::new(self.redact_patterns.clone()),
            disks: self.disks.clone(),
            network: self.network.clone(),
            gpus: match self.gpu {
                GpuMode::Fake(n) if !self.fake_gpu_faults.is_empty() => Some(Box::new(
                    FakeGpus::with_faults(n, self.fake_gpu_faults.clone()),
                )),
                mode => smon_collect::gpus::open(mode),
            },
            interval: self.interval,
            demand: DetailDemand::default(),
            programs: self
                .supervisor
                .as_ref()
                .map(|s| smon_collect::ProgramsFeed::new(s.url.clone())),
            containers: self.containers.clone(),
        }
    }
}

/// The single-host web view's settings, checked.
#[cfg(feature = "web")]
#[derive(Debug, Clone)]
pub struct WebView {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Path prefix (`""` or `/prefix`).
    pub base_path: String,
    /// Users, sessions, allow-lists, HTTPS.
    pub http: smon_web::security::HttpSecurity,
    /// Connection limits and timeouts of the HTTP listener (`server.limits`).
    pub limits: smon_web::serve::HttpLimits,
}

/// The token file could not be created at start-up.
#[derive(Debug, thiserror::Error)]
#[error("monitor.token_file: cannot create {}: {source}", path.display())]
pub struct TokenFileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl Settings {
    /// Writes the token file that was missing at load (owner-only), with the token in `auth`.
    /// When another process created it meanwhile (the self manager's child, or a second
    /// start), its token is used instead. A no-op when nothing is to be created.
    pub fn create_token_file(&mut self) -> Result<(), TokenFileError> {
        let Some(path) = self.token_file_to_create.take() else {
            return Ok(());
        };
        let Auth::Token(token) = &self.auth else {
            return Ok(());
        };
        let err = |source| TokenFileError {
            path: path.clone(),
            source,
        };
        match write_new_token_file(&path, token) {
            Ok(()) => {
                tracing::info!(
                    file = %path.display(),
                    "Created a new random gRPC token (mode 0600); give it to the aggregator."
                );
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let t = std::fs::read_to_string(&path).map_err(err)?;
                let t = t.trim();
                if t.len() < MIN_TOKEN_LEN || t.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "it appeared while starting, and holds no valid token",
                    )));
                }
                self.auth = Auth::Token(t.to_owned());
                Ok(())
            }
            Err(e) => Err(err(e)),
        }
    }
}

/// Where a token may come from besides the config, injected so tests need not touch the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// Value of `SMON_TOKEN`, which overrides any token in the config.
    pub smon_token: Option<String>,
}

impl Env {
    /// Reads the real process environment.
    pub fn from_process() -> Self {
        Self {
            smon_token: std::env::var("SMON_TOKEN").ok().filter(|t| !t.is_empty()),
        }
    }
}

/// Loads and validates a config file. Relative paths inside it are resolved against the file's
/// directory.
pub fn load_file(path: &Path, env: &Env) -> Result<Settings, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_str(&text, &file, &base, env)
}

/// Loads the embedded default config; relative paths are resolved against the working directory.
///
/// The example turns the web view on; a build without it (cargo feature `web` off) runs the
/// same example without the view, where a file that asks for it is refused.
pub fn load_embedded(env: &Env) -> Result<Settings, ConfigError> {
    #[cfg(feature = "web")]
    let raw: NodeConfig = parse_json(EMBEDDED_DEFAULT, EMBEDDED_NAME)?;
    #[cfg(not(feature = "web"))]
    let raw = {
        let mut raw: NodeConfig = parse_json(EMBEDDED_DEFAULT, EMBEDDED_NAME)?;
        raw.server.web = None;
        raw
    };
    check(raw, Vec::new(), EMBEDDED_NAME, Path::new(""), env)
}

/// Parses and validates config text. `file` names it in errors; `base` resolves relative paths.
/// Every problem is reported at once: unknown keys and wrong types, then the value checks.
pub fn load_str(text: &str, file: &str, base: &Path, env: &Env) -> Result<Settings, ConfigError> {
    let (raw, parse_errors) = parse_json_all(text, file)?;
    check(raw, parse_errors, file, base, env)
}

/// Validates a parsed config; `parse_errors` are the problems parsing found and went past.
fn check(
    raw: NodeConfig,
    parse_errors: Vec<FieldError>,
    file: &str,
    base: &Path,
    env: &Env,
) -> Result<Settings, ConfigError> {
    let mut s = smon_runtime::config::finish(file, parse_errors, raw.validate(base, env))?;
    s.source = file.to_owned();
    Ok(s)
}

impl NodeConfig {
    /// Checks every field and returns the typed settings, or every problem found.
    pub fn validate(&self, base: &Path, env: &Env) -> Result<Settings, Vec<FieldError>> {
        let mut errs = Vec::new();
        #[cfg(feature = "history")]
        let storage = self.storage.check(base, false, &mut errs);
        #[cfg(feature = "history")]
        if storage.is_some() && self.server.web != Some(true) {
            errs.push(FieldError {
                field: "storage.enabled".into(),
                value: "true".into(),
                problem: "keeps the history of the single-host web view, which is off: set server.web to true too, or storage.enabled to false".into(),
            });
        }
        #[cfg(not(feature = "history"))]
        if self.storage.get("enabled") == Some(&serde_json::Value::Bool(true)) {
            errs.push(FieldError {
                field: "storage.enabled".into(),
                value: "true".into(),
                problem: "needs history, and this smon-agent was built without it (cargo feature `history`); set it to false".into(),
            });
        }
        if let Some(u) = &self.server.public_url {
            errs.push(FieldError {
                field: "server.public_url".into(),
                value: u.clone(),
                problem:
                    "is used by smon-aggregator only (links in alert notifications); remove it here"
                        .into(),
            });
        }
        let manager = self.manager.check(&mut errs);
        let log = self.log.check(&mut errs);
        // Checked in every build: a lean agent still refuses a bad address.
        let http_listen = self.server.listen(DEFAULT_HTTP_PORT, &mut errs);
        let mut bad = |field: &str, value: &dyn fmt::Display, problem: &str| {
            errs.push(FieldError {
                field: field.to_owned(),
                value: value.to_string(),
                problem: problem.to_owned(),
            });
        };
        #[cfg(feature = "web")]
        {
            let bp = &self.server.base_path;
            if let Some(why) = smon_web::security::config::base_path_problem(bp) {
                bad("server.base_path", bp, &why);
            }
        }
        #[cfg(not(feature = "web"))]
        if self.server.web == Some(true) {
            bad(
                "server.web",
                &"true",
                "needs the single-host web view, and this smon-agent was built without it (cargo feature `web`); set it to false",
            );
        }

        let m = &self.monitor;
        if m.mode != "node" {
            bad(
                "monitor.mode",
                &m.mode,
                "must be 'node' for smon-agent ('app' is for smon-aggregator)",
            );
        }
        if m.interval_ms < MIN_INTERVAL_MS {
            bad(
                "monitor.interval_ms",
                &m.interval_ms,
                "is below the minimum of 100",
            );
        } else if m.interval_ms > 3_600_000 {
            bad(
                "monitor.interval_ms",
                &m.interval_ms,
                "is above the maximum of 3600000 (one hour)",
            );
        }
        let grpc_listen = match m.grpc_listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                bad(
                    "monitor.grpc_listen",
                    &m.grpc_listen,
                    "is not a socket address (e.g. 127.0.0.1:50051)",
                );
                None
            }
        };

        let mut token_file_to_create = None;
        let auth = match m.auth.as_str() {
            "none" => {
                if m.token.is_some() || m.token_file.is_some() {
                    bad(
                        "monitor.auth",
                        &"none",
                        "cannot be combined with token or token_file",
                    );
                }
                match grpc_listen {
                    Some(a) if a.ip().is_loopback() => Some(Auth::None),
                    Some(a) => {
                        bad(
                            "monitor.auth",
                            &"none",
                            &format!(
                                "is allowed only on a loopback listener, and monitor.grpc_listen is {a}"
                            ),
                        );
                        None
                    }
                    None => None,
                }
            }
            "token" => {
                if m.token.is_some() && m.token_file.is_some() {
                    bad(
                        "monitor.token_file",
                        &display_path(m.token_file.as_deref()),
                        "cannot be combined with monitor.token; set one",
                    );
                }
                let (resolved, to_create) = match resolve_token(m, base, env) {
                    Ok(Token::Found(t)) => (Ok(t), None),
                    Ok(Token::Missing(path)) => (Ok(random_token()), Some(path)),
                    Err(e) => (Err(e), None),
                };
                token_file_to_create = to_create;
                match resolved {
                    Ok(t) if t.len() < MIN_TOKEN_LEN => {
                        bad(
                            token_field(m, env),
                            &"<hidden>",
                            "is shorter than 16 characters",
                        );
                        None
                    }
                    Ok(t) if t.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                        bad(
                            token_field(m, env),
                            &"<hidden>",
                            "contains whitespace or control characters",
                        );
                        None
                    }
                    Ok(t) => Some(Auth::Token(t)),
                    Err((field, value, problem)) => {
                        bad(field, &value, &problem);
                        None
                    }
                }
            }
            other => {
                bad("monitor.auth", &other, "is not one of token, none");
                None
            }
        };

        let gpu = match m.gpu.as_str() {
            "auto" => Some(GpuMode::Auto),
            "off" => Some(GpuMode::Off),
            "fake" => {
                if m.fake_gpu_count == 0 || m.fake_gpu_count > MAX_FAKE_GPUS {
                    bad(
                        "monitor.fake_gpu_count",
                        &m.fake_gpu_count,
                        "must be between 1 and 16",
                    );
                    None
                } else {
                    Some(GpuMode::Fake(m.fake_gpu_count))
                }
            }
            other => {
                bad("monitor.gpu", &other, "is not one of auto, off, fake");
                None
            }
        };
        let mut fake_gpu_faults = Vec::new();
        for (i, f) in m.fake_gpu_faults.iter().enumerate() {
            if m.gpu != "fake" {
                bad(
                    &format!("monitor.fake_gpu_faults[{i}]"),
                    f,
                    "needs \"gpu\": \"fake\"",
                );
                continue;
            }
            match f.parse::<FakeFault>() {
                Ok(fault) => fake_gpu_faults.push(fault),
                Err(e) => bad(&format!("monitor.fake_gpu_faults[{i}]"), f, &e.to_string()),
            }
        }

        let mut redact_patterns = Vec::new();
        for (i, p) in m.redact_patterns.iter().enumerate() {
            match Regex::new(p) {
                Ok(r) if r.is_match("") => {
                    bad(
                        &format!("monitor.redact_patterns[{i}]"),
                        p,
                        "matches the empty string",
                    );
                }
                Ok(r) => redact_patterns.push(r),
                Err(e) => {
                    let first = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    bad(
                        &format!("monitor.redact_patterns[{i}]"),
                        p,
                        &format!("is not a valid regular expression: {first}"),
                    );
                }
            }
        }

        for (i, mnt) in m.disks.exclude_mounts.iter().enumerate() {
            if !mnt.starts_with('/') {
                bad(
                    &format!("monitor.disks.exclude_mounts[{i}]"),
                    mnt,
                    "is not an absolute path",
                );
            }
        }
        for (name, list) in [
            ("include_fs_types", &m.disks.include_fs_types),
            ("exclude_fs_types", &m.disks.exclude_fs_types),
        ] {
            for (i, t) in list.iter().enumerate() {
                if t.is_empty() || t.contains(char::is_whitespace) {
                    bad(
                        &format!("monitor.disks.{name}[{i}]"),
                        t,
                        "is not a filesystem type name",
                    );
                }
            }
        }
        if !(1..=10_000).contains(&m.containers.max) {
            bad(
                "monitor.containers.max",
                &m.containers.max,
                "is not between 1 and 10000",
            );
        }
        for (i, n) in m.network.exclude_interfaces.iter().enumerate() {
            if n.is_empty() || n == "*" || n.contains(char::is_whitespace) {
                bad(
                    &format!("monitor.network.exclude_interfaces[{i}]"),
                    n,
                    "is not an interface name or prefix*",
                );
            }
        }

        #[cfg(feature = "web")]
        let http = smon_web::security::config::check_server(
            &self.server,
            base,
            "smon-agent-users.json",
            &mut errs,
        );
        // Start-up's refusal of a web view nobody could log in to, checked here too so that
        // `--check-config` says it.
        #[cfg(feature = "web")]
        if self.server.web == Some(true)
            && let Some(listen) = http_listen
        {
            smon_web::security::config::check_users(&http, listen, &mut errs);
        }
        let run_as = self.server.run_as(&mut errs);
        // Checked with or without the web view, as the rest of the block is.
        let http_limits = self.server.limits.check(&mut errs);
        #[cfg(not(feature = "web"))]
        let _ = http_limits;
        let grpc_tls = m.tls.as_ref().and_then(|t| {
            let cert = read_pem(base, "monitor.tls.cert", &t.cert, &mut errs);
            let key = read_pem(base, "monitor.tls.key", &t.key, &mut errs);
            let client_ca = match &t.client_ca {
                Some(ca) => Some(read_pem(base, "monitor.tls.client_ca", ca, &mut errs)?),
                None => None,
            };
            Some(GrpcTls {
                cert: cert?,
                key: key?,
                client_ca,
            })
        });
        let grpc_allow = match CidrList::parse(&m.allow_from) {
            Ok(l) => l,
            Err(e) => {
                errs.push(FieldError {
                    field: format!("monitor.allow_from[{}]", e.index),
                    value: e.value,
                    problem: "is not an address or CIDR range like 10.0.0.0/8 or fd00::/8".into(),
                });
                CidrList::default()
            }
        };

        let grpc_limits = m.limits.check(&mut errs);
        let control = self.control.check(base, auth.as_ref(), &mut errs);
        let supervisor = self
            .control
            .supervisor
            .as_ref()
            .and_then(|s| s.check(base, &mut errs));
        if let Some(users) = &self.control.signals.users
            && let Some((i, u)) = users.iter().enumerate().find(|(_, u)| {
                u.is_empty() || u.chars().any(|c| c.is_whitespace() || c.is_control())
            })
        {
            errs.push(FieldError {
                field: format!("control.signals.users[{i}]"),
                value: printable(u).into_owned(),
                problem: "is not a user name".into(),
            });
        }

        match (
            errs.is_empty(),
            http_listen,
            manager,
            grpc_listen,
            auth,
            gpu,
        ) {
            (
                true,
                Some(http_listen),
                Some((manager, manager_settings)),
                Some(grpc_listen),
                Some(auth),
                Some(gpu),
            ) => {
                // Without the web view the address is only checked.
                #[cfg(not(feature = "web"))]
                let _ = http_listen;
                Ok(Settings {
                    source: String::new(),
                    #[cfg(feature = "web")]
                    web: (self.server.web == Some(true)).then_some(WebView {
                        listen: http_listen,
                        base_path: smon_web::hub::normalise_base(&self.server.base_path),
                        http,
                        limits: http_limits,
                    }),
                    #[cfg(feature = "history")]
                    storage,
                    #[cfg(feature = "history")]
                    processes_every: smon_history::procs::EVERY,
                    manager,
                    manager_settings,
                    log: log.unwrap_or_default(),
                    interval: Duration::from_millis(m.interval_ms),
                    grpc_listen,
                    auth,
                    token_file_to_create,
                    token_file: m.token_file.as_ref().map(|f| base.join(f)),
                    gpu,
                    fake_gpu_faults,
                    redact_patterns,
                    disks: DiskFilter {
                        include_fs_types: m.disks.include_fs_types.clone(),
                        exclude_fs_types: m.disks.exclude_fs_types.clone(),
                        exclude_mounts: m
                            .disks
                            .exclude_mounts
                            .iter()
                            .map(|s| match s.trim_end_matches('/') {
                                "" => "/".to_owned(),
                                t => t.to_owned(),
                            })
                            .collect(),
                    },
                    network: NetworkFilter {
                        exclude_interfaces: m.network.exclude_interfaces.clone(),
                    },
                    containers: m.containers.enabled.then(|| ContainersConfig {
                        max: m.containers.max,
                        runtime_sockets: m
                            .containers
                            .runtime_sockets
                            .iter()
                            .map(|p| base.join(p))
                            .collect(),
                        ..ContainersConfig::default()
                    }),
                    run_as,
                    grpc_tls,
                    grpc_allow,
                    grpc_limits,
                    control,
                    supervisor,
                })
            }
            _ => Err(errs),
        }
    }
}

impl ControlConfig {
    /// The checked block, `None` without a token; problems are recorded as `control.<field>`
    /// errors. `read` is the read token, which the control token must not equal.
    fn check(
        &self,
        base: &Path,
        read: Option<&Auth>,
        errs: &mut Vec<FieldError>,
    ) -> Option<ControlSettings> {
        let mut bad = |field: &str, value: &dyn fmt::Display, problem: &str| {
            errs.push(FieldError {
                field: field.to_owned(),
                value: value.to_string(),
                problem: problem.to_owned(),
            });
        };
        // The commands are checked while power is off too: turning it on later must not
        // surprise.
        let reboot = check_argv(&self.power.reboot, "control.power.reboot", &mut bad);
        let shutdown = check_argv(&self.power.shutdown, "control.power.shutdown", &mut bad);
        let token_file = self.token_file.as_ref().map(|rel| base.join(rel));
        let (token, field) = match (&self.token, &token_file) {
            (Some(_), Some(_)) => {
                bad(
                    "control.token_file",
                    &display_path(self.token_file.as_deref()),
                    "cannot be combined with control.token; set one",
                );
                return None;
            }
            (None, None) => return None,
            (Some(t), None) => (t.clone(), "control.token"),
            (None, Some(f)) => match std::fs::read_to_string(f) {
                Ok(t) => (t.trim().to_owned(), "control.token_file"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    bad(
                        "control.token_file",
                        &f.display(),
                        "does not exist, and the agent does not create the control token: write one there (e.g. `openssl rand -hex 32`, mode 0600) or remove control.token_file",
                    );
                    return None;
                }
                Err(e) => {
                    bad(
                        "control.token_file",
                        &f.display(),
                        &format!("cannot be read: {e}"),
                    );
                    return None;
                }
            },
        };
        if token.len() < MIN_TOKEN_LEN {
            bad(field, &"<hidden>", "is shorter than 16 characters");
            return None;
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bad(
                field,
                &"<hidden>",
                "contains whitespace or control characters",
            );
            return None;
        }
        if let Some(Auth::Token(read)) = read
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                token.as_bytes(),
                read.as_bytes(),
            ))
        {
            bad(
                field,
                &"<hidden>",
                "is the read token (monitor.token, monitor.token_file or SMON_TOKEN); the control token must differ: make a new one",
            );
            return None;
        }
        Some(ControlSettings {
            token,
            token_file,
            wake: self.wake,
            power: self
                .power
                .enabled
                .then_some(PowerCommands { reboot, shutdown }),
            signals: self.signals.enabled.then(|| SignalSettings {
                users: self.signals.users.clone(),
            }),
        })
    }
}

/// Checks a power command (`None`: that action is off): a non-empty argv whose program is an
/// absolute path or a plain name looked up in `PATH`.
fn check_argv(
    argv: &Option<Vec<String>>,
    field: &str,
    bad: &mut impl FnMut(&str, &dyn fmt::Display, &str),
) -> Option<Vec<String>> {
    let argv = argv.as_ref()?;
    let Some(program) = argv.first() else {
        bad(
            field,
            &"[]",
            "is empty: give the command as an argv list, e.g. [\"systemctl\", \"reboot\"], or null to turn this action off",
        );
        return None;
    };
    let plain = !program.is_empty() && !program.contains('/');
    let absolute = program.starts_with('/') && program.len() > 1;
    if !(plain || absolute) || program.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bad(
            &format!("{field}[0]"),
            program,
            "is not a program: give an absolute path (/usr/bin/systemctl) or a plain name found in PATH (systemctl), without spaces; arguments go in the next items",
        );
        return None;
    }
    Some(argv.clone())
}

fn display_path(p: Option<&Path>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

fn token_field(m: &MonitorConfig, env: &Env) -> &'static str {
    if env.smon_token.is_some() {
        "SMON_TOKEN (environment)"
    } else if m.token.is_some() {
        "monitor.token"
    } else {
        "monitor.token_file"
    }
}

/// Where the token comes from, as found at load.
enum Token {
    /// Read (from the environment, the config or the file).
    Found(String),
    /// `token_file` names a file that does not exist yet, in a directory that does.
    Missing(PathBuf),
}

/// Finds the token: `SMON_TOKEN`, then `token`, then `token_file`. Reads only: a missing file
/// is reported as [`Token::Missing`] for start-up to create.
fn resolve_token(
    m: &MonitorConfig,
    base: &Path,
    env: &Env,
) -> Result<Token, (&'static str, String, String)> {
    if let Some(t) = &env.smon_token {
        return Ok(Token::Found(t.trim().to_owned()));
    }
    if let Some(t) = &m.token {
        return Ok(Token::Found(t.clone()));
    }
    let Some(rel) = &m.token_file else {
        return Err((
            "monitor.auth",
            "token".to_owned(),
            "needs monitor.token, monitor.token_file or SMON_TOKEN in the environment".to_owned(),
        ));
    };
    let path = if rel.is_absolute() {
        rel.clone()
    } else {
        base.join(rel)
    };
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Token::Found(s.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Created at start-up: its directory must be there to hold it.
            let dir = match path.parent() {
                Some(d) if d.as_os_str().is_empty() => Path::new("."),
                Some(d) => d,
                None => Path::new("/"),
            };
            if dir.is_dir() {
                Ok(Token::Missing(path))
            } else {
                Err((
                    "monitor.token_file",
                    path.display().to_string(),
                    format!(
                        "does not exist and cannot be created: {} is not a directory",
                        dir.display()
                    ),
                ))
            }
        }
        Err(e) => Err((
            "monitor.token_file",
            path.display().to_string(),
            format!("cannot be read: {e}"),
        )),
    }
}

/// A new random token: 32 random bytes in hex.
fn random_token() -> String {
    use rand::Rng as _;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `token` to a new file at `path`, readable by the owner only; fails when it exists.
fn write_new_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        load_str(
            text,
            "test.json",
            Path::new("/nonexistent"),
            &Env::default(),
        )
    }

    #[cfg(feature = "web")]
    #[test]
    fn embedded_default_is_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s =
            load_str(EMBEDDED_DEFAULT, EMBEDDED_NAME, dir.path(), &Env::default()).expect("valid");
        assert_eq!(s.interval, Duration::from_secs(1));
        assert!(s.grpc_listen.ip().is_loopback());
        assert!(matches!(s.auth, Auth::Token(ref t) if t.len() == 64));
        // Loading wrote nothing; start-up creates the token file, owner-only, and the next
        // load reads the same token from it.
        let path = dir.path().join("smon-agent.token");
        assert_eq!(s.token_file_to_create.as_deref(), Some(path.as_path()));
        assert!(!path.exists(), "loading created the token file");
        s.create_token_file().expect("created");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path)
                .expect("token file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again =
            load_str(EMBEDDED_DEFAULT, EMBEDDED_NAME, dir.path(), &Env::default()).expect("valid");
        assert_eq!(again.auth, s.auth);
    }

    #[cfg(feature = "history")]
    #[test]
    fn history_is_off_by_default_and_needs_the_web_view() {
        let s = load(
            r#"{"server":{"web":true},"monitor":{"mode":"node","token":"0123456789abcdef0"}}"#,
        )
        .expect("valid");
        assert!(s.storage.is_none(), "off unless asked for");
        let s = load(r#"{"server":{"web":true},"monitor":{"mode":"node","token":"0123456789abcdef0"},"storage":{"enabled":true,"retention":{"raw":"48h"}}}"#)
            .expect("valid");
        let st = s.storage.expect("on");
        assert_eq!(st.dir, Path::new("/nonexistent/smon-data"));
        assert_eq!(st.retention.raw, Duration::from_secs(48 * 3600));
        let e = load(
            r#"{"monitor":{"mode":"node","token":"0123456789abcdef0"},"storage":{"enabled":true}}"#,
        )
        .expect_err("no web view")
        .to_string();
        assert!(
            e.contains("test.json") && e.contains("storage.enabled") && e.contains("server.web"),
            "{e}"
        );
        let e = load(r#"{"server":{"web":true},"monitor":{"mode":"node","token":"0123456789abcdef0"},"storage":{"retention":{"hour":"soon"}}}"#)
            .expect_err("bad retention, even while off")
            .to_string();
        assert!(
            e.contains("storage.retention.hour") && e.contains("'soon'"),
            "{e}"
        );
        let e = load(r#"{"monitor":{"mode":"node","token":"0123456789abcdef0"},"storage":{"remote_write":[]}}"#)
            .expect_err("the aggregator's key")
            .to_string();
        assert!(e.contains("remote_write"), "{e}");
    }

    #[test]
    fn env_token_overrides_config() {
        let env = Env {
            smon_token: Some("from-the-environment-123".into()),
        };
        let s = load_str(
            r#"{"monitor":{"mode":"node","token":"from-the-config-file-123"}}"#,
            "t.json",
            Path::new("."),
            &env,
        )
        .expect("valid");
        assert_eq!(s.auth, Auth::Token("from-the-environment-123".into()));
    }

    #[test]
    fn fake_gpu_faults_are_parsed_and_checked() {
        let s = load(
            r#"{"monitor":{"mode":"node","token":"0123456789abcdef0123","gpu":"fake","fake_gpu_faults":["no_permission:1","mig:0x2"]}}"#,
        )
        .expect("valid");
        assert_eq!(
            s.fake_gpu_faults,
            [
                FakeFault::NoPermission { index: 1 },
                FakeFault::Mig {
                    index: 0,
                    instances: 2
                }
            ]
        );
        let text =
            load(r#"{"monitor":{"mode":"node","gpu":"fake","fake_gpu_faults":["r535","boom"]}}"#)
                .expect_err("invalid")
                .to_string();
        assert!(
            text.contains("test.json: monitor.fake_gpu_faults[1]: 'boom' is not a fake GPU fault (unknown kind 'boom')"),
            "{text}"
        );
        let text = load(r#"{"monitor":{"mode":"node","gpu":"auto","fake_gpu_faults":["r535"]}}"#)
            .expect_err("invalid")
            .to_string();
        assert!(
            text.contains(r#"test.json: monitor.fake_gpu_faults[0]: 'r535' needs "gpu": "fake""#),
            "{text}"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let err = load(
            r#"{"manager":{"mode":"cron"},"monitor":{"mode":"app","interval_ms":5,"grpc_listen":"node7:50O51","auth":"token","token":"short","gpu":"amd"}}"#,
        )
        .expect_err("invalid");
        let text = err.to_string();
        for want in [
            "test.json: manager.mode: 'cron' is not one of self, supervisor, systemd",
            "test.json: monitor.mode: 'app' must be 'node'",
            "test.json: monitor.interval_ms: '5' is below the minimum of 100",
            "test.json: monitor.grpc_listen: 'node7:50O51' is not a socket address",
            "test.json: monitor.token: '<hidden>' is shorter than 16 characters",
            "test.json: monitor.gpu: 'amd' is not one of auto, off, fake",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(
            !text.contains("short\n") && !text.contains("'short'"),
            "token leaked: {text}"
        );
    }

    #[test]
    fn supervisor_urls_are_a_unix_socket_or_http() {
        assert_eq!(
            parse_supervisor_url("unix:///run/supervisor.sock"),
            Some(SupervisorEndpoint::Unix("/run/supervisor.sock".into()))
        );
        let http = |a: &str, p: &str| {
            Some(SupervisorEndpoint::Http {
                authority: a.into(),
                path: p.into(),
            })
        };
        assert_eq!(
            parse_supervisor_url("http://127.0.0.1:9001"),
            http("127.0.0.1:9001", "/RPC2")
        );
        assert_eq!(
            parse_supervisor_url("http://sup.lan:9001/"),
            http("sup.lan:9001", "/RPC2")
        );
        assert_eq!(
            parse_supervisor_url("http://[::1]:9001/rpc"),
            http("[::1]:9001", "/rpc")
        );
        for bad in [
            "",
            "unix://",
            "unix://run/s.sock",
            "http://127.0.0.1",
            "http://h:0",
            "https://h:9001",
            "http://u:p@h:9001",
            "http://h:9001/a b",
            "http://h:9001/?x",
        ] {
            assert_eq!(parse_supervisor_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn supervisor_and_signals_are_read_with_or_without_a_control_token() {
        let s = load(r#"{"monitor":{"mode":"node","auth":"none"},"control":{"supervisor":{"url":"unix:///run/supervisor.sock","username":"smon","password":"pw"}}}"#)
            .expect("valid");
        assert!(s.control.is_none(), "no control token: no Control service");
        let sup = s.supervisor.expect("read anyway");
        assert_eq!(sup.interval, Duration::from_secs(5));
        assert_eq!(sup.credentials, Some(("smon".into(), "pw".into())));
        assert!(!format!("{sup:?}").contains("pw\""), "{sup:?}");
        let s = load(r#"{"monitor":{"mode":"node","auth":"none"},"control":{"token":"control-token-0123456789","signals":{"enabled":true,"users":["alice"]}}}"#)
            .expect("valid");
        let c = s.control.expect("on");
        assert_eq!(c.signals.expect("on").users, Some(vec!["alice".into()]));
        assert!(s.supervisor.is_none());
    }

    #[test]
    fn control_is_off_without_its_token_and_must_not_be_the_read_token() {
        let s =
            load(r#"{"monitor":{"mode":"node","token":"read-token-0123456789"}}"#).expect("valid");
        assert!(s.control.is_none(), "off by default");
        let s = load(r#"{"monitor":{"mode":"node","token":"read-token-0123456789"},"control":{"token":"control-token-0123456789"}}"#)
            .expect("valid");
        let c = s.control.expect("on");
        assert!(c.wake && c.power.is_none(), "wake on, power off by default");
        assert!(
            !format!("{c:?}").contains("control-token"),
            "token in Debug"
        );
        let s = load(r#"{"monitor":{"mode":"node","auth":"none"},"control":{"token":"control-token-0123456789","power":{"enabled":true,"shutdown":null}}}"#)
            .expect("valid");
        let p = s.control.and_then(|c| c.power).expect("power on");
        assert_eq!(
            p.reboot,
            Some(vec!["systemctl".to_owned(), "reboot".to_owned()])
        );
        assert_eq!(p.shutdown, None);
        // The read token from the environment counts too.
        let env = Env {
            smon_token: Some("control-token-0123456789".into()),
        };
        let e = load_str(
            r#"{"monitor":{"mode":"node"},"control":{"token":"control-token-0123456789"}}"#,
            "t.json",
            Path::new("/nonexistent"),
            &env,
        )
        .expect_err("same token")
        .to_string();
        assert!(
            e.contains("t.json: control.token: '<hidden>' is the read token")
                && !e.contains("control-token-0123456789"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_names_its_path() {
        let err = load(r#"{"monitor":{"mode":"node","intervall_ms":100}}"#).expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "test.json: monitor.intervall_ms: '100' is not a known key (expected one of `mode`"
            ),
            "{text}"
        );
    }

    #[test]
    fn auth_none_only_on_loopback() {
        assert!(
            load(r#"{"monitor":{"mode":"node","auth":"none","grpc_listen":"127.0.0.2:1"}}"#)
                .is_ok()
        );
        assert!(
            load(r#"{"monitor":{"mode":"node","auth":"none","grpc_listen":"[::1]:1"}}"#).is_ok()
        );
        let err = load(r#"{"monitor":{"mode":"node","auth":"none","grpc_listen":"0.0.0.0:1"}}"#)
            .expect_err("refused");
        assert!(
            err.to_string()
                .contains("monitor.auth: 'none' is allowed only on a loopback listener"),
            "{err}"
        );
    }

    #[test]
    fn a_token_file_that_appeared_meanwhile_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.token");
        let text = format!(
            r#"{{"monitor":{{"mode":"node","token_file":"{}"}}}}"#,
            path.display()
        );
        let mut s = load_str(&text, "t.json", dir.path(), &Env::default()).expect("valid");
        std::fs::write(&path, "written-by-someone-else-0123\n").expect("write");
        s.create_token_file().expect("uses the file");
        assert_eq!(s.auth, Auth::Token("written-by-someone-else-0123".into()));
        assert_eq!(s.token_file_to_create, None);
    }

    #[cfg(not(feature = "web"))]
    #[test]
    fn without_the_web_feature_the_web_view_is_refused_by_name() {
        let err = load(
            r#"{"server":{"web":true},"monitor":{"mode":"node","token":"0123456789abcdef0"}}"#,
        )
        .expect_err("refused")
        .to_string();
        assert!(
            err.contains("test.json: server.web: 'true' needs the single-host web view")
                && err.contains("cargo feature `web`"),
            "{err}"
        );
        load(r#"{"server":{"web":false},"monitor":{"mode":"node","token":"0123456789abcdef0"}}"#)
            .expect("web off loads");
    }

    #[cfg(not(feature = "web"))]
    #[test]
    fn a_lean_build_runs_the_embedded_example_without_the_view() {
        let env = Env {
            smon_token: Some("0123456789abcdef0123".into()),
        };
        let s = load_embedded(&env).expect("valid without the web view");
        assert_eq!(s.source, EMBEDDED_NAME);
        // The same example given as a file asks for the view, and is refused by name.
        let err = load_str(EMBEDDED_DEFAULT, "config_node.json", Path::new("."), &env)
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("config_node.json: server.web: 'true'"),
            "{err}"
        );
    }
}
