//! The `storage.remote_write` list of `config_app.json`: where to send every sample, how to
//! authenticate, and how much to hold while the receiver is away. Secrets come from files
//! only (read at load, like agents' token files), never from the config text, and are never
//! printed.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use smon_runtime::config::FieldError;

/// One receiver, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver's remote-write URL, e.g. `http://vm:8428/api/v1/write` (VictoriaMetrics)
    /// or `http://prometheus:9090/api/v1/write` (Prometheus with
    /// `--web.enable-remote-write-receiver`). No credentials in it: use `basic_auth` or
    /// `bearer_token_file`.
    pub url: String,
    /// File holding a bearer token, sent as `Authorization: Bearer ...`; relative to the
    /// config file's directory.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuthConfig>,
    /// More request headers, e.g. `{"X-Scope-OrgID": "lab"}` for a Mimir or Cortex tenant.
    /// The protocol's own headers and `Authorization` cannot be set here.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Deadline of one request, in milliseconds (100-600000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The queue of samples waiting for this receiver.
    #[serde(default)]
    pub queue: QueueConfig,
}

/// `basic_auth`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// User name.
    pub username: String,
    /// File holding the password; relative to the config file's directory.
    pub password_file: PathBuf,
}

/// `queue`: one bounded queue per receiver.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Most samples (values) held while the receiver is slow or away; past it the oldest are
    /// dropped (counted). About 40 bytes each. Size it as hosts x values per host (about 30)
    /// x seconds of outage to ride out.
    #[serde(default = "default_max_samples")]
    pub max_samples: u64,
    /// Most samples in one request.
    #[serde(default = "default_per_send")]
    pub max_samples_per_send: u64,
    /// A partial batch is sent after this long, in milliseconds.
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
    /// First wait before a retry, in milliseconds; it doubles per failure (with jitter).
    #[serde(default = "default_min_backoff_ms")]
    pub min_backoff_ms: u64,
    /// Longest wait between retries, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_samples: default_max_samples(),
            max_samples_per_send: default_per_send(),
            batch_wait_ms: default_batch_wait_ms(),
            min_backoff_ms: default_min_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
        }
    }
}

fn default_timeout_ms() -> u64 {
    30_000
}
fn default_max_samples() -> u64 {
    1_000_000
}
fn default_per_send() -> u64 {
    2_000
}
fn default_batch_wait_ms() -> u64 {
    1_000
}
fn default_min_backoff_ms() -> u64 {
    250
}
fn default_max_backoff_ms() -> u64 {
    30_000
}

/// How requests authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic ...`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer(<hidden>)"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
        }
    }
}

/// One receiver, checked.
#[derive(Clone)]
pub struct Target {
    /// Where to POST.
    pub url: reqwest::Url,
    /// The URL as shown in `/metrics`, the admin page and the log (it holds no credentials:
    /// those are refused in `url`).
    pub shown: String,
    /// Authentication, if any.
    pub auth: Option<Auth>,
    /// Extra headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Deadline of one request.
    pub timeout: Duration,
    /// Most samples queued.
    pub max_samples: usize,
    /// Most samples per request.
    pub per_send: usize,
    /// A partial batch waits at most this long.
    pub batch_wait: Duration,
    /// First retry wait.
    pub min_backoff: Duration,
    /// Longest retry wait.
    pub max_backoff: Duration,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.shown)
            .field("auth", &self.auth)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("max_samples", &self.max_samples)
            .finish_non_exhaustive()
    }
}

/// Headers the protocol sets itself (and `Authorization`, which comes from the secret files).
const RESERVED: [&str; 7] = [
    "authorization",
    "content-encoding",
    "content-length",
    "content-type",
    "host",
    "user-agent",
    "x-prometheus-remote-write-version",
];

/// Reads a secret file (trimmed); records the path for the file-mode warnings.
fn read_secret(
    base: &Path,
    field: String,
    file: &Path,
    secret_files: &mut Vec<PathBuf>,
    errs: &mut Vec<FieldError>,
) -> Option<String> {
    let p = if file.is_absolute() {
        file.to_path_buf()
    } else {
        base.join(file)
    };
    secret_files.push(p.clone());
    match std::fs::read_to_string(&p) {
        Ok(t) if !t.trim().is_empty() => Some(t.trim().to_owned()),
        Ok(_) => {
            errs.push(FieldError {
                field,
                value: p.display().to_string(),
                problem: "is empty".into(),
            });
            None
        }
        Err(e) => {
            errs.push(FieldError {
                field,
                value: p.display().to_string(),
                problem: format!("cannot be read: {e}"),
            });
            None
        }
    }
}

fn range(errs: &mut Vec<FieldError>, field: String, v: u64, lo: u64, hi: u64) -> Option<u64> {
    if (lo..=hi).contains(&v) {
        Some(v)
    } else {
        errs.push(FieldError {
            field,
            value: v.to_string(),
            problem: format!("must be between {lo} and {hi}"),
        });
        None
    }
}

/// Checks every receiver of `storage.remote_write` (`field` is that path); relative secret
/// files resolve against `base` and are added to `secret_files`. Every problem goes to `errs`.
pub fn check(
    list: &[RemoteWriteConfig],
    field: &str,
    base: &Path,
    secret_files: &mut Vec<PathBuf>,
    errs: &mut Vec<FieldError>,
) -> Vec<Target> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, c) in list.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let before = errs.len();
        let url = match reqwest::Url::parse(&c.url) {
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                errs.push(FieldError {
                    field: format!("{f}.url"),
                    value: u.scheme().to_owned(),
                    problem: "is not a scheme remote write speaks: use http or https".into(),
                });
                None
            }
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                // The value is not echoed: it holds a password.
                let mut shown = u.clone();
                let _ = shown.set_username("");
                let _ = shown.set_password(None);
                errs.push(FieldError {
                    field: format!("{f}.url"),
                    value: shown.to_string(),
                    problem: "must not hold credentials: use basic_auth with a password_file, or bearer_token_file".into(),
                });
                None
            }
            Ok(u) if u.host_str().is_none_or(str::is_empty) => {
                errs.push(FieldError {
                    field: format!("{f}.url"),
                    value: c.url.clone(),
                    problem: "has no host".into(),
                });
                None
            }
            Ok(u) => Some(u),
            Err(e) => {
                errs.push(FieldError {
                    field: format!("{f}.url"),
                    value: c.url.clone(),
                    problem: format!("is not a URL: {e}"),
                });
                None
            }
        };
        if let Some(u) = &url
            && !seen.insert(u.to_string())
        {
            errs.push(FieldError {
                field: format!("{f}.url"),
                value: u.to_string(),
                problem: "is listed twice".into(),
            });
        }
        let auth = match (&c.bearer_token_file, &c.basic_auth) {
            (Some(_), Some(_)) => {
                errs.push(FieldError {
                    field: format!("{f}.bearer_token_file"),
                    value: String::new(),
                    problem: "cannot be combined with basic_auth; set one".into(),
                });
                None
            }
            (Some(file), None) => read_secret(
                base,
                format!("{f}.bearer_token_file"),
                file,
                secret_files,
                errs,
            )
            .map(Auth::Bearer),
            (None, Some(b)) => {
                if b.username.is_empty() || b.username.contains(':') {
                    errs.push(FieldError {
                        field: format!("{f}.basic_auth.username"),
                        value: b.username.clone(),
                        problem: "must be a non-empty name without ':'".into(),
                    });
                }
                read_secret(
                    base,
                    format!("{f}.basic_auth.password_file"),
                    &b.password_file,
                    secret_files,
                    errs,
                )
                .map(|password| Auth::Basic {
                    username: b.username.clone(),
                    password,
                })
            }
            (None, None) => None,
        };
        let mut headers = Vec::new();
        for (name, value) in &c.headers {
            let hf = format!("{f}.headers");
            match HeaderName::from_bytes(name.as_bytes()) {
                Ok(n) if RESERVED.contains(&n.as_str()) => errs.push(FieldError {
                    field: hf,
                    value: name.clone(),
                    problem: "is set by smon (authentication: basic_auth or bearer_token_file)"
                        .into(),
                }),
                Ok(n) => match HeaderValue::from_str(value) {
                    Ok(v) => headers.push((n, v)),
                    // The value is not echoed: a header may carry a key.
                    Err(_) => errs.push(FieldError {
                        field: format!("{hf}.{name}"),
                        value: "<hidden>".into(),
                        problem: "is not a valid header value (printable ASCII)".into(),
                    }),
                },
                Err(_) => errs.push(FieldError {
                    field: hf,
                    value: name.clone(),
                    problem: "is not a valid header name".into(),
                }),
            }
        }
        let q = &c.queue;
        let timeout = range(errs, format!("{f}.timeout_ms"), c.timeout_ms, 100, 600_000);
        let max = range(
            errs,
            format!("{f}.queue.max_samples"),
            q.max_samples,
            1_000,
            100_000_000,
        );
        let per_send = range(
            errs,
            format!("{f}.queue.max_samples_per_send"),
            q.max_samples_per_send,
            1,
            100_000,
        );
        let wait = range(
            errs,
            format!("{f}.queue.batch_wait_ms"),
            q.batch_wait_ms,
            10,
            60_000,
        );
        let min_b = range(
            errs,
            format!("{f}.queue.min_backoff_ms"),
            q.min_backoff_ms,
            10,
            60_000,
        );
        let max_b = range(
            errs,
            format!("{f}.queue.max_backoff_ms"),
            q.max_backoff_ms,
            10,
            600_000,
        );
        if let (Some(lo), Some(hi)) = (min_b, max_b)
            && hi < lo
        {
            errs.push(FieldError {
                field: format!("{f}.queue.max_backoff_ms"),
                value: hi.to_string(),
                problem: "must be at least min_backoff_ms".into(),
            });
        }
        if let (Some(m), Some(p)) = (max, per_send)
            && p > m
        {
            errs.push(FieldError {
                field: format!("{f}.queue.max_samples_per_send"),
                value: p.to_string(),
                problem: "must not exceed queue.max_samples".into(),
            });
        }
        if errs.len() != before {
            continue;
        }
        if let (Some(url), Some(t), Some(m), Some(p), Some(w), Some(lo), Some(hi)) =
            (url, timeout, max, per_send, wait, min_b, max_b)
        {
            let mut shown = url.clone();
            shown.set_query(None);
            shown.set_fragment(None);
            out.push(Target {
                shown: shown.to_string(),
                url,
                auth,
                headers,
                timeout: Duration::from_millis(t),
                max_samples: m as usize,
                per_send: p as usize,
                batch_wait: Duration::from_millis(w),
                min_backoff: Duration::from_millis(lo),
                max_backoff: Duration::from_millis(hi),
            });
        }
    }
    out
}
