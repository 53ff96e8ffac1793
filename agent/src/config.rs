//! The agent's configuration (`config_node.json`): serde structs that reject unknown keys, and a
//! validation pass that reports every problem at once, naming the file, the field and the value.
//!
//! The JSON keeps the shape users of the older Python System Monitor know: `server`, `manager`
//! and `monitor` blocks. Loading turns the raw file into [`Settings`], the typed, checked values
//! the agent runs on; nothing downstream re-validates.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

use crate::manager::ManagerSettings;
use serde::Deserialize;
use smon_collect::{
    CollectorConfig, DetailDemand, DiskFilter, GpuMode, NetworkFilter, Redactor, Roots,
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
    /// HTTP side: the single-host web view.
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
}

/// The `log` block (both daemons).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Level or filter, e.g. `info`, `debug`, `smon_aggregator=debug,info`. `RUST_LOG` wins.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `human` or `json`. The `--log-format` flag wins.
    #[serde(default = "default_log_format")]
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: default_log_format(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

fn default_log_format() -> String {
    "human".to_owned()
}

/// Validated logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The filter (`RUST_LOG` syntax).
    pub filter: String,
    /// JSON lines instead of text.
    pub json: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            filter: default_log_level(),
            json: false,
        }
    }
}

impl LogConfig {
    /// Checks the block; records problems.
    pub fn check(&self, errs: &mut Vec<FieldError>) -> Option<LogSettings> {
        let mut ok = true;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            errs.push(FieldError {
                field: "log.level".into(),
                value: self.level.clone(),
                problem: format!("is not a log level or filter: {e}"),
            });
            ok = false;
        }
        let json = match self.format.as_str() {
            "human" => false,
            "json" => true,
            other => {
                errs.push(FieldError {
                    field: "log.format".into(),
                    value: other.into(),
                    problem: "is not one of human, json".into(),
                });
                ok = false;
                false
            }
        };
        ok.then(|| LogSettings {
            filter: self.level.clone(),
            json,
        })
    }
}

/// The `server` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    #[serde(default = "default_http_host")]
    pub host: String,
    /// Port the HTTP server listens on.
    #[serde(default = "default_http_port")]
    pub port: u16,
    /// True when nginx (or another reverse proxy) fronts the server.
    #[serde(default)]
    pub behind_proxy: bool,
    /// Serve the single-host web view (the dashboard for this host alone).
    #[serde(default)]
    pub web: bool,
    /// Path prefix of the web view when the proxy does not strip it, e.g. `/smon`.
    #[serde(default = "default_base_path")]
    pub base_path: String,
    /// Who may reach the web view (CIDR ranges; empty: anyone, the login still applies).
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Proxies whose `X-Forwarded-For`/`-Proto`/`-Host` are believed (with `behind_proxy`).
    #[serde(default = "smon_web::security::config::default_trusted_proxies")]
    pub trusted_proxies: Vec<String>,
    /// Who may read `/metrics` without logging in.
    #[serde(default = "smon_web::security::config::default_metrics_allow_from")]
    pub metrics_allow_from: Vec<String>,
    /// HTTPS on the web view's listener itself (certificate and key, PEM).
    #[serde(default)]
    pub tls: Option<smon_web::security::TlsFiles>,
    /// Started as root: switch to this user (and its group) once the listeners are bound.
    #[serde(default)]
    pub run_as: Option<String>,
    /// Users and sessions of the web view.
    #[serde(default)]
    pub auth: smon_web::security::AuthConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: default_http_host(),
            port: default_http_port(),
            behind_proxy: false,
            web: false,
            base_path: default_base_path(),
            allow_from: Vec::new(),
            trusted_proxies: smon_web::security::config::default_trusted_proxies(),
            metrics_allow_from: smon_web::security::config::default_metrics_allow_from(),
            tls: None,
            run_as: None,
            auth: smon_web::security::AuthConfig::default(),
        }
    }
}

impl ServerConfig {
    /// The security fields, for [`smon_web::security::config::check`].
    pub fn security_input(&self) -> smon_web::security::config::Input<'_> {
        smon_web::security::config::Input {
            behind_proxy: self.behind_proxy,
            allow_from: &self.allow_from,
            trusted_proxies: &self.trusted_proxies,
            metrics_allow_from: &self.metrics_allow_from,
            tls: self.tls.as_ref(),
            auth: &self.auth,
        }
    }
}

/// Checks the security fields of a `server` block into `errs`.
pub fn check_http_security(
    input: smon_web::security::config::Input<'_>,
    base: &Path,
    default_users_file: &str,
    errs: &mut Vec<FieldError>,
) -> smon_web::security::HttpSecurity {
    let mut problems = Vec::new();
    let sec = smon_web::security::config::check(input, base, default_users_file, &mut problems);
    errs.extend(problems.into_iter().map(|p| FieldError {
        field: p.field,
        value: p.value,
        problem: p.problem,
    }));
    sec
}

/// Checks `run_as`: a user that exists on this machine.
pub fn check_run_as(run_as: Option<&String>, errs: &mut Vec<FieldError>) -> Option<String> {
    let name = run_as?;
    if crate::daemon::user_exists(name) {
        Some(name.clone())
    } else {
        errs.push(FieldError {
            field: "server.run_as".into(),
            value: name.clone(),
            problem: "is not a user on this machine".into(),
        });
        None
    }
}

fn default_base_path() -> String {
    "/".to_owned()
}

fn default_http_host() -> String {
    "127.0.0.1".to_owned()
}

fn default_http_port() -> u16 {
    8081
}

/// The `manager` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    /// `self` (the binary keeps itself alive), `supervisor` or `systemd`.
    #[serde(default = "default_manager_mode")]
    pub mode: String,
    /// Mode `self`: milliseconds between health probes of the server.
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u64,
    /// Mode `self`: failed probes in a row before the server is restarted.
    #[serde(default = "default_probe_failures")]
    pub probe_failures: u32,
    /// Mode `self`: milliseconds a new server may take to start before probes count.
    #[serde(default = "default_startup_grace_ms")]
    pub startup_grace_ms: u64,
    /// Mode `self`: more restarts than this within `restart_window_s` is a crash loop, and the
    /// manager gives up (exit status 1) so that an outer supervisor or a person takes over.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// Mode `self`: see `max_restarts`.
    #[serde(default = "default_restart_window_s")]
    pub restart_window_s: u64,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            mode: default_manager_mode(),
            probe_interval_ms: default_probe_interval_ms(),
            probe_failures: default_probe_failures(),
            startup_grace_ms: default_startup_grace_ms(),
            max_restarts: default_max_restarts(),
            restart_window_s: default_restart_window_s(),
        }
    }
}

fn default_probe_interval_ms() -> u64 {
    5000
}
fn default_probe_failures() -> u32 {
    3
}
fn default_startup_grace_ms() -> u64 {
    10_000
}
fn default_max_restarts() -> u32 {
    5
}
fn default_restart_window_s() -> u64 {
    60
}

impl ManagerConfig {
    /// Checks the block; returns the mode and the `self` mode's settings, or records problems.
    pub fn check(&self, errs: &mut Vec<FieldError>) -> Option<(ManagerMode, ManagerSettings)> {
        let before = errs.len();
        let mut bad = |field: &str, value: &dyn fmt::Display, problem: &str| {
            errs.push(FieldError {
                field: field.to_owned(),
                value: value.to_string(),
                problem: problem.to_owned(),
            });
        };
        let mode = match self.mode.as_str() {
            "self" => Some(ManagerMode::SelfManaged),
            "supervisor" => Some(ManagerMode::Supervisor),
            "systemd" => Some(ManagerMode::Systemd),
            other => {
                bad(
                    "manager.mode",
                    &other,
                    "is not one of self, supervisor, systemd",
                );
                None
            }
        };
        if !(200..=600_000).contains(&self.probe_interval_ms) {
            bad(
                "manager.probe_interval_ms",
                &self.probe_interval_ms,
                "must be between 200 and 600000",
            );
        }
        if !(1..=100).contains(&self.probe_failures) {
            bad(
                "manager.probe_failures",
                &self.probe_failures,
                "must be between 1 and 100",
            );
        }
        if self.startup_grace_ms > 600_000 {
            bad(
                "manager.startup_grace_ms",
                &self.startup_grace_ms,
                "must be at most 600000",
            );
        }
        if !(1..=1000).contains(&self.max_restarts) {
            bad(
                "manager.max_restarts",
                &self.max_restarts,
                "must be between 1 and 1000",
            );
        }
        if !(1..=86_400).contains(&self.restart_window_s) {
            bad(
                "manager.restart_window_s",
                &self.restart_window_s,
                "must be between 1 and 86400",
            );
        }
        if errs.len() > before {
            return None;
        }
        mode.map(|m| {
            (
                m,
                ManagerSettings {
                    probe_interval: Duration::from_millis(self.probe_interval_ms),
                    probe_failures: self.probe_failures,
                    startup_grace: Duration::from_millis(self.startup_grace_ms),
                    max_restarts: self.max_restarts,
                    restart_window: Duration::from_secs(self.restart_window_s),
                },
            )
        })
    }
}

fn default_manager_mode() -> String {
    "self".to_owned()
}

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
    /// File holding the bearer token; created with a random token (mode 0600) when missing.
    /// Relative paths are relative to the config file's directory.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// GPU source: `auto` (NVML when present), `off`, or `fake` (a demo source).
    #[serde(default = "default_gpu")]
    pub gpu: String,
    /// How many GPUs the `fake` source pretends to have.
    #[serde(default = "default_fake_gpu_count")]
    pub fake_gpu_count: u32,
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
    /// TLS on the gRPC listener; with `client_ca`, mutual TLS (clients need a certificate
    /// signed by that CA). The token still applies.
    #[serde(default)]
    pub tls: Option<GrpcTlsConfig>,
    /// Who may call the gRPC API (CIDR ranges; empty: anyone, the token still applies).
    /// Connections from elsewhere are closed before TLS or any request.
    #[serde(default)]
    pub allow_from: Vec<String>,
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

/// Reads a PEM file named in the config, or says why not into `errs`.
pub fn read_pem(
    base: &Path,
    field: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<Vec<u8>> {
    let p = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        base.join(path)
    };
    match std::fs::read(&p) {
        Ok(b) if String::from_utf8_lossy(&b).contains("-----BEGIN ") => Some(b),
        Ok(_) => {
            errs.push(FieldError {
                field: field.into(),
                value: p.display().to_string(),
                problem: "is not a PEM file (no -----BEGIN line)".into(),
            });
            None
        }
        Err(e) => {
            errs.push(FieldError {
                field: field.into(),
                value: p.display().to_string(),
                problem: format!("cannot be read: {e}"),
            });
            None
        }
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

/// Who keeps the process alive (acted on by the manager; parsed and validated now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerMode {
    /// The binary supervises itself.
    SelfManaged,
    /// Supervisor (`supervisord`) runs it.
    Supervisor,
    /// systemd runs it.
    Systemd,
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
    /// HTTP listen address of the web view, when it is enabled.
    pub web: Option<SocketAddr>,
    /// Path prefix of the web view (`""` or `/prefix`).
    pub base_path: String,
    /// True when behind a reverse proxy.
    pub behind_proxy: bool,
    /// Who keeps the process alive.
    pub manager: ManagerMode,
    /// How mode `self` supervises.
    pub manager_settings: ManagerSettings,
    /// Logging.
    pub log: LogSettings,
    /// Things to tell the operator once logging is up (e.g. a token file was created).
    pub notices: Vec<String>,
    /// Sampling interval.
    pub interval: Duration,
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// gRPC authentication.
    pub auth: Auth,
    /// GPU source.
    pub gpu: GpuMode,
    /// Extra redaction patterns, compiled.
    pub redact_patterns: Vec<Regex>,
    /// Disk filters.
    pub disks: DiskFilter,
    /// Network filters.
    pub network: NetworkFilter,
    /// The web view's security (users, sessions, allow-lists).
    pub http: smon_web::security::HttpSecurity,
    /// Switch to this user after binding.
    pub run_as: Option<String>,
    /// TLS of the gRPC listener.
    pub grpc_tls: Option<GrpcTls>,
    /// Who may call the gRPC API (empty: anyone).
    pub grpc_allow: smon_web::security::net::CidrList,
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
            gpus: smon_collect::gpus::open(self.gpu),
            interval: self.interval,
            demand: DetailDemand::default(),
        }
    }
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `monitor.interval_ms`.
    pub field: String,
    /// The offending value as written (or `<hidden>` for secrets).
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: '{}' {}",
            printable(&self.field),
            printable(&self.value),
            printable(&self.problem)
        )
    }
}

/// `s` with control characters and bidirectional overrides written as `\u{..}`, so text from a
/// config cannot forge lines or drive the terminal when an error repeats it.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if bad(c) {
                    format!("\\u{{{:x}}}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the file: {source}")]
    Read {
        /// The config file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape (including unknown keys).
    #[error("{file}: {field}: {message}")]
    Parse {
        /// The config file.
        file: String,
        /// Dotted path of the field where parsing stopped (`.` for the top level).
        field: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parsed, but some values are invalid: all of them are listed.
    #[error("{}", render_invalid(.file, .errors))]
    Invalid {
        /// The config file.
        file: String,
        /// Every invalid field.
        errors: Vec<FieldError>,
    },
}

fn render_invalid(file: &str, errors: &[FieldError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| format!("{file}: {e}")).collect();
    lines.join("\n")
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
pub fn load_embedded(env: &Env) -> Result<Settings, ConfigError> {
    load_str(EMBEDDED_DEFAULT, EMBEDDED_NAME, Path::new(""), env)
}

/// Parses config JSON into `T`, naming the file and the field where parsing stopped (unknown
/// keys included). Shared by both daemons' configs.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        // serde_path_to_error writes `?` for a position it cannot name (a syntax error).
        let path = e.path().to_string();
        let field = match path.trim_end_matches(".?") {
            "?" | "" => ".".to_owned(),
            p => p.to_owned(),
        };
        ConfigError::Parse {
            file: file.to_owned(),
            field: printable(&field).into_owned(),
            message: printable(&e.into_inner().to_string()).into_owned(),
        }
    })
}

/// Parses and validates config text. `file` names it in errors; `base` resolves relative paths.
pub fn load_str(text: &str, file: &str, base: &Path, env: &Env) -> Result<Settings, ConfigError> {
    let raw: NodeConfig = parse_json(text, file)?;
    raw.validate(base, env)
        .map_err(|errors| ConfigError::Invalid {
            file: file.to_owned(),
            errors,
        })
}

impl NodeConfig {
    /// Checks every field and returns the typed settings, or every problem found.
    pub fn validate(&self, base: &Path, env: &Env) -> Result<Settings, Vec<FieldError>> {
        let mut errs = Vec::new();
        let manager = self.manager.check(&mut errs);
        let log = self.log.check(&mut errs);
        let mut notices = Vec::new();
        let mut bad = |field: &str, value: &dyn fmt::Display, problem: &str| {
            errs.push(FieldError {
                field: field.to_owned(),
                value: value.to_string(),
                problem: problem.to_owned(),
            });
        };

        let http_listen = match self.server.host.parse::<std::net::IpAddr>() {
            Ok(ip) => Some(SocketAddr::new(ip, self.server.port)),
            Err(_) => {
                bad("server.host", &self.server.host, "is not an IP address");
                None
            }
        };

        let bp = &self.server.base_path;
        if !smon_web::hub::valid_base_path(bp) {
            bad("server.base_path", bp, "must be a path like / or /smon");
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
                match resolve_token(m, base, env, &mut notices) {
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
        for (i, n) in m.network.exclude_interfaces.iter().enumerate() {
            if n.is_empty() || n == "*" || n.contains(char::is_whitespace) {
                bad(
                    &format!("monitor.network.exclude_interfaces[{i}]"),
                    n,
                    "is not an interface name or prefix*",
                );
            }
        }

        let http = check_http_security(
            self.server.security_input(),
            base,
            "smon-agent-users.json",
            &mut errs,
        );
        let run_as = check_run_as(self.server.run_as.as_ref(), &mut errs);
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
        let grpc_allow = match smon_web::security::net::CidrList::parse(&m.allow_from) {
            Ok(l) => l,
            Err((i, v)) => {
                errs.push(FieldError {
                    field: format!("monitor.allow_from[{i}]"),
                    value: v,
                    problem: "is not an address or CIDR range like 10.0.0.0/8 or fd00::/8".into(),
                });
                smon_web::security::net::CidrList::default()
            }
        };

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
            ) => Ok(Settings {
                source: String::new(),
                web: self.server.web.then_some(http_listen),
                base_path: smon_web::hub::normalise_base(&self.server.base_path),
                behind_proxy: self.server.behind_proxy,
                manager,
                manager_settings,
                log: log.unwrap_or_default(),
                notices,
                interval: Duration::from_millis(m.interval_ms),
                grpc_listen,
                auth,
                gpu,
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
                http,
                run_as,
                grpc_tls,
                grpc_allow,
            }),
            _ => Err(errs),
        }
    }
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

/// Finds the token: `SMON_TOKEN`, then `token`, then `token_file` (created when missing).
fn resolve_token(
    m: &MonitorConfig,
    base: &Path,
    env: &Env,
    notices: &mut Vec<String>,
) -> Result<String, (&'static str, String, String)> {
    if let Some(t) = &env.smon_token {
        return Ok(t.trim().to_owned());
    }
    if let Some(t) = &m.token {
        return Ok(t.clone());
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
        Ok(s) => Ok(s.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_token_file(&path, notices)
            .map_err(|e| {
                (
                    "monitor.token_file",
                    path.display().to_string(),
                    format!("does not exist and cannot be created: {e}"),
                )
            }),
        Err(e) => Err((
            "monitor.token_file",
            path.display().to_string(),
            format!("cannot be read: {e}"),
        )),
    }
}

/// Writes a new random token to `path`, readable by the owner only.
fn create_token_file(path: &Path, notices: &mut Vec<String>) -> std::io::Result<String> {
    use rand::Rng as _;
    use std::io::Write as _;
    let bytes: [u8; 32] = rand::rng().random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
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
    notices.push(format!(
        "Created a new random gRPC token in {} (mode 0600); give it to the aggregator.",
        path.display()
    ));
    Ok(token)
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

    #[test]
    fn embedded_default_is_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s =
            load_str(EMBEDDED_DEFAULT, EMBEDDED_NAME, dir.path(), &Env::default()).expect("valid");
        assert_eq!(s.interval, Duration::from_secs(1));
        assert!(s.grpc_listen.ip().is_loopback());
        assert!(matches!(s.auth, Auth::Token(ref t) if t.len() == 64));
        // The token file was created, owner-only, and is reused on the next load.
        let path = dir.path().join("smon-agent.token");
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
    fn unknown_key_names_its_path() {
        let err = load(r#"{"monitor":{"mode":"node","intervall_ms":100}}"#).expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "test.json: monitor.intervall_ms: unknown field `intervall_ms`, expected one of"
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
}
