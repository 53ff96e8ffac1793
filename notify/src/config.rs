//! The `alerts.channels[]` list of `config_app.json`: each item a `name`, a `type` and that
//! type's fields, checked at load into a [`Channel`] with its secrets read (inline or from a
//! `*_file`) and its templates compiled. Every problem names the field path
//! (`alerts.channels[1].url`) and quotes the bad value, except secrets, which are never quoted.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use smon_runtime::config::FieldError;

use crate::secret::{self, Secret};
use crate::template::Templates;

/// One item of `alerts.channels[]` as written: a JSON object, checked by [`check`] (which
/// reports every problem with its path, so the aggregator's config can hold these as they
/// are and still reject a typo).
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct ChannelConfig(pub serde_json::Map<String, serde_json::Value>);

/// The keys whose values are secrets when written inline.
const SECRET_KEYS: &[&str] = &["url", "token", "bearer", "password", "headers"];

impl std::fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            if SECRET_KEYS.contains(&k.as_str()) {
                m.entry(k, &"<hidden>");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

/// The fields every channel has, whatever its type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    /// The name rules use in `notify`.
    name: String,
    /// `webhook`, `slack`, ...
    #[serde(rename = "type")]
    kind: String,
    /// A minijinja template for the title (see the README).
    #[serde(default)]
    title_template: Option<String>,
    /// A minijinja template for the body.
    #[serde(default)]
    body_template: Option<String>,
    /// At most `max` notifications per `per_s` seconds; the rest wait in the outbox.
    #[serde(default)]
    rate_limit: RateLimit,
    /// A notification not delivered after this many seconds is dropped (with an error).
    #[serde(default = "default_max_age_s")]
    max_age_s: u64,
    /// Deadline of one attempt, in seconds.
    #[serde(default = "default_timeout_s")]
    timeout_s: u64,
    /// First wait before a retry, in milliseconds; it doubles per failure (with jitter).
    #[serde(default = "default_backoff_min_ms")]
    backoff_min_ms: u64,
    /// Longest wait between retries, in milliseconds.
    #[serde(default = "default_backoff_max_ms")]
    backoff_max_ms: u64,
}

const COMMON_KEYS: &[&str] = &[
    "name",
    "type",
    "title_template",
    "body_template",
    "rate_limit",
    "max_age_s",
    "timeout_s",
    "backoff_min_ms",
    "backoff_max_ms",
];

/// `rate_limit`: at most `max` notifications per `per_s` seconds on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Most notifications in the window (1-10000).
    pub max: u32,
    /// The window, in seconds (1-86400).
    pub per_s: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { max: 20, per_s: 60 }
    }
}

fn default_max_age_s() -> u64 {
    24 * 3600
}
fn default_timeout_s() -> u64 {
    10
}
fn default_backoff_min_ms() -> u64 {
    1_000
}
fn default_backoff_max_ms() -> u64 {
    300_000
}

/// `webhook`: POSTs the notification's JSON. (No `Debug`: inline secrets.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookRaw {
    /// The URL (a secret: it may embed a token).
    url: Option<String>,
    /// A file holding the URL.
    url_file: Option<PathBuf>,
    /// More request headers (values are secrets).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Sent as `Authorization: Bearer ...`.
    bearer: Option<String>,
    /// A file holding the bearer token.
    bearer_file: Option<PathBuf>,
}

/// `slack` and `discord`: an incoming-webhook URL (it embeds the token: a secret).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HookRaw {
    /// The webhook URL.
    url: Option<String>,
    /// A file holding it.
    url_file: Option<PathBuf>,
}

/// `ntfy`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NtfyRaw {
    /// The server (`https://ntfy.sh`).
    #[serde(default = "default_ntfy")]
    server: String,
    /// The topic.
    topic: String,
    /// An access token.
    token: Option<String>,
    /// A file holding it.
    token_file: Option<PathBuf>,
    /// Tags (emoji short codes) added to every message.
    #[serde(default)]
    tags: Vec<String>,
}

/// `pushbullet`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushbulletRaw {
    /// The API (`https://api.pushbullet.com`).
    #[serde(default = "default_pushbullet")]
    api_url: String,
    /// The access token.
    token: Option<String>,
    /// A file holding it.
    token_file: Option<PathBuf>,
    /// One device to push to (all by default).
    device_iden: Option<String>,
}

/// `telegram`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TelegramRaw {
    /// The Bot API (`https://api.telegram.org`).
    #[serde(default = "default_telegram")]
    api_url: String,
    /// The bot token.
    token: Option<String>,
    /// A file holding it.
    token_file: Option<PathBuf>,
    /// A chat number or `@channelname`.
    chat_id: serde_json::Value,
}

/// `email`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailRaw {
    /// The SMTP server.
    host: String,
    /// Its port (587, 465 or 25 by `tls`).
    port: Option<u16>,
    /// `starttls`, `tls` or `none` (localhost only).
    #[serde(default)]
    tls: TlsMode,
    /// Login.
    user: Option<String>,
    /// Password for `user`.
    password: Option<String>,
    /// A file holding it.
    password_file: Option<PathBuf>,
    /// The sender (`name <address>` or `address`).
    from: String,
    /// The recipients.
    to: Vec<String>,
    /// A PEM file of CA certificates trusted besides the system's (a private mail server).
    ca_file: Option<PathBuf>,
}

/// `command`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandRaw {
    /// The program.
    program: String,
    /// Its arguments.
    #[serde(default)]
    args: Vec<String>,
}

/// `alertmanager`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertmanagerRaw {
    /// Base URLs of every Alertmanager of the cluster.
    urls: Vec<String>,
    /// Firing alerts are sent again this often, in seconds.
    #[serde(default = "default_resend_s")]
    resend_s: u64,
}

fn default_resend_s() -> u64 {
    60
}

fn default_ntfy() -> String {
    "https://ntfy.sh".into()
}
fn default_pushbullet() -> String {
    "https://api.pushbullet.com".into()
}
fn default_telegram() -> String {
    "https://api.telegram.org".into()
}

/// How the email channel talks to its SMTP server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, required (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465 by default).
    Tls,
    /// No encryption (port 25 by default): only for a server on the loopback interface.
    None,
}

/// A checked channel, ready to send.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Its name (unique).
    pub name: String,
    /// Where and how it sends.
    pub kind: Kind,
    /// Its title and body templates.
    pub templates: Templates,
    /// Retries, age limit, rate limit.
    pub delivery: Delivery,
}

/// How the outbox treats a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The rate limit.
    pub rate_limit: RateLimit,
    /// Dropped (with an error) when not delivered within this.
    pub max_age: Duration,
    /// Deadline of one attempt.
    pub timeout: Duration,
    /// First retry wait.
    pub backoff_min: Duration,
    /// Longest retry wait.
    pub backoff_max: Duration,
}

/// The type of a channel and its fields.
#[derive(Debug, Clone)]
pub enum Kind {
    /// POST the notification JSON to `url`.
    Webhook {
        /// The URL (a secret: it may embed a token).
        url: Secret,
        /// More headers; values are secrets (they may carry keys).
        headers: Vec<(HeaderName, Secret)>,
        /// `Authorization: Bearer ...`.
        bearer: Option<Secret>,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The webhook URL.
        url: Secret,
    },
    /// A Discord webhook.
    Discord {
        /// The webhook URL.
        url: Secret,
    },
    /// An ntfy topic.
    Ntfy {
        /// The server (`https://ntfy.sh`).
        server: Url,
        /// The topic.
        topic: String,
        /// Access token (`Authorization: Bearer`).
        token: Option<Secret>,
        /// Extra tags (emoji short codes) besides the status's own.
        tags: Vec<String>,
    },
    /// Pushbullet pushes of type note.
    Pushbullet {
        /// The API (`https://api.pushbullet.com`).
        api_url: Url,
        /// Access token.
        token: Secret,
        /// One device to push to (all devices when unset).
        device_iden: Option<String>,
    },
    /// Telegram bot `sendMessage`.
    Telegram {
        /// The Bot API (`https://api.telegram.org`).
        api_url: Url,
        /// The bot token.
        token: Secret,
        /// The chat: a number, or `@channelname`.
        chat_id: String,
    },
    /// Email through SMTP.
    Email {
        /// The SMTP server.
        host: String,
        /// Its port.
        port: u16,
        /// STARTTLS, TLS or none.
        tls: TlsMode,
        /// Login, when the server wants one.
        user: Option<String>,
        /// Password for `user`.
        password: Option<Secret>,
        /// The sender.
        from: Mailbox,
        /// The recipients.
        to: Vec<Mailbox>,
        /// PEM of CA certificates trusted besides the system's (`ca_file`).
        ca_pem: Option<Vec<u8>>,
    },
    /// A program run with the notification JSON on stdin.
    Command {
        /// The program (absolute path, or looked up in `PATH`).
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// Prometheus Alertmanager's v2 API.
    Alertmanager {
        /// Base URLs of the Alertmanagers (every one of a cluster).
        urls: Vec<Url>,
        /// How often alerts still firing are sent again. Alertmanager resolves an alert
        /// that is not refreshed by its `endsAt`, set to four times this, as Prometheus does:
        /// if smon stops, its alerts resolve there after that long.
        resend: Duration,
    },
}

impl Kind {
    /// The `type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Webhook { .. } => "webhook",
            Kind::Slack { .. } => "slack",
            Kind::Discord { .. } => "discord",
            Kind::Ntfy { .. } => "ntfy",
            Kind::Pushbullet { .. } => "pushbullet",
            Kind::Telegram { .. } => "telegram",
            Kind::Email { .. } => "email",
            Kind::Command { .. } => "command",
            Kind::Alertmanager { .. } => "alertmanager",
        }
    }
}

/// `u` without its password (an Alertmanager behind a proxy may take basic auth in its URL),
/// for messages and the API.
pub(crate) fn masked(u: &Url) -> String {
    let mut u = u.clone();
    if u.password().is_some() {
        let _ = u.set_password(None);
    }
    u.to_string()
}

/// The types [`check`] knows.
pub const TYPES: &[&str] = &[
    "webhook",
    "slack",
    "discord",
    "ntfy",
    "pushbullet",
    "telegram",
    "email",
    "command",
    "alertmanager",
];

/// A channel as the API shows it: no secret, only whether one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelView {
    /// The name.
    pub name: String,
    /// The type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where it sends, without secrets: a host name, an ntfy topic, mail recipients, a
    /// program.
    pub target: String,
    /// Whether a secret (token, password, webhook URL) is configured.
    pub secret_set: bool,
    /// The rate limit.
    pub rate_limit: RateLimit,
    /// The age limit, in seconds.
    pub max_age_s: u64,
    /// Whether the title or body template is the channel's own.
    pub custom_templates: bool,
}

impl Channel {
    /// The redacted view for the API.
    pub fn view(&self) -> ChannelView {
        let host_of = |s: &Secret| {
            Url::parse(s.expose())
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let (target, secret_set) = match &self.kind {
            Kind::Webhook { url, .. } | Kind::Slack { url } | Kind::Discord { url } => {
                (host_of(url), true)
            }
            Kind::Ntfy {
                server,
                topic,
                token,
                ..
            } => (
                format!("{}/{}", masked(server).trim_end_matches('/'), topic),
                token.is_some() || server.password().is_some(),
            ),
            Kind::Pushbullet { api_url, .. } => {
                (api_url.host_str().unwrap_or_default().to_owned(), true)
            }
            Kind::Telegram {
                api_url, chat_id, ..
            } => (
                format!("{} chat {chat_id}", api_url.host_str().unwrap_or_default()),
                true,
            ),
            Kind::Email {
                host,
                port,
                to,
                password,
                ..
            } => (
                format!(
                    "{host}:{port} to {}",
                    to.iter()
                        .map(|m| m.email.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                password.is_some(),
            ),
            Kind::Command { program, .. } => (program.clone(), false),
            Kind::Alertmanager { urls, .. } => (
                urls.iter().map(masked).collect::<Vec<_>>().join(", "),
                urls.iter().any(|u| u.password().is_some()),
            ),
        };
        ChannelView {
            name: self.name.clone(),
            kind: self.kind.type_name(),
            target,
            secret_set,
            rate_limit: self.delivery.rate_limit,
            max_age_s: self.delivery.max_age.as_secs(),
            custom_templates: self.templates.is_custom(),
        }
    }
}

/// Checks every item of `alerts.channels` (`field` is that path, for the messages); relative
/// `*_file` paths resolve against `base` (the config file's directory) and are added to
/// `secret_files` (for the file-mode warnings). Every problem goes to `errs`; the channels
/// without a problem are returned.
pub fn check(
    list: &[ChannelConfig],
    field: &str,
    base: &Path,
    secret_files: &mut Vec<PathBuf>,
    errs: &mut Vec<FieldError>,
) -> Vec<Channel> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, raw) in list.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let before = errs.len();
        let (common, rest): (serde_json::Map<_, _>, serde_json::Map<_, _>) = raw
            .0
            .clone()
            .into_iter()
            .partition(|(k, _)| COMMON_KEYS.contains(&k.as_str()));
        let Some(common) = de::<Common>(common, &f, errs) else {
            continue;
        };
        if common.name.is_empty()
            || !common
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            errs.push(FieldError {
                field: format!("{f}.name"),
                value: common.name.clone(),
                problem: "must be letters, digits, '-', '_' or '.'".into(),
            });
        } else if !names.insert(common.name.clone()) {
            errs.push(FieldError {
                field: format!("{f}.name"),
                value: common.name.clone(),
                problem: "is the name of another channel".into(),
            });
        }
        let delivery = delivery(&common, &f, errs);
        let templates = match Templates::new(
            common.title_template.as_deref(),
            common.body_template.as_deref(),
        ) {
            Ok(t) => Some(t),
            Err((which, e)) => {
                errs.push(FieldError {
                    field: format!("{f}.{which}"),
                    value: String::new(),
                    problem: format!("is not a valid template: {e}"),
                });
                None
            }
        };
        let mut cx = Cx {
            f: &f,
            base,
            secret_files,
            errs,
        };
        let kind = match common.kind.as_str() {
            "webhook" => de::<WebhookRaw>(rest, &f, cx.errs).and_then(|r| webhook(r, &mut cx)),
            "slack" | "discord" => de::<HookRaw>(rest, &f, cx.errs).and_then(|r| {
                let url = cx.secret_url(r.url.as_deref(), r.url_file.as_deref(), "url")?;
                Some(if common.kind == "slack" {
                    Kind::Slack { url }
                } else {
                    Kind::Discord { url }
                })
            }),
            "ntfy" => de::<NtfyRaw>(rest, &f, cx.errs).and_then(|r| ntfy(r, &mut cx)),
            "pushbullet" => de::<PushbulletRaw>(rest, &f, cx.errs).and_then(|r| {
                let api_url = cx.url(&r.api_url, "api_url");
                let token = cx.required(r.token.as_deref(), r.token_file.as_deref(), "token");
                Some(Kind::Pushbullet {
                    api_url: api_url?,
                    token: token?,
                    device_iden: r.device_iden,
                })
            }),
            "telegram" => de::<TelegramRaw>(rest, &f, cx.errs).and_then(|r| telegram(r, &mut cx)),
            "email" => de::<EmailRaw>(rest, &f, cx.errs).and_then(|r| email(r, &mut cx)),
            "command" => de::<CommandRaw>(rest, &f, cx.errs).and_then(|r| {
                if r.program.trim().is_empty() {
                    cx.errs.push(FieldError {
                        field: format!("{f}.program"),
                        value: String::new(),
                        problem: "is empty".into(),
                    });
                    return None;
                }
                Some(Kind::Command {
                    program: r.program,
                    args: r.args,
                })
            }),
            "alertmanager" => de::<AlertmanagerRaw>(rest, &f, cx.errs).and_then(|r| {
                if r.urls.is_empty() {
                    cx.errs.push(FieldError {
                        field: format!("{f}.urls"),
                        value: String::new(),
                        problem: "must list at least one Alertmanager URL".into(),
                    });
                    return None;
                }
                let urls: Vec<Option<Url>> = r
                    .urls
                    .iter()
                    .enumerate()
                    .map(|(j, u)| cx.url(u, &format!("urls[{j}]")))
                    .collect();
                if !(1..=3600).contains(&r.resend_s) {
                    cx.errs.push(FieldError {
                        field: format!("{f}.resend_s"),
                        value: r.resend_s.to_string(),
                        problem: "must be between 1 and 3600".into(),
                    });
                    return None;
                }
                Some(Kind::Alertmanager {
                    urls: urls.into_iter().collect::<Option<Vec<_>>>()?,
                    resend: Duration::from_secs(r.resend_s),
                })
            }),
            other => {
                cx.errs.push(FieldError {
                    field: format!("{f}.type"),
                    value: other.to_owned(),
                    problem: format!("is not a channel type (one of: {})", TYPES.join(", ")),
                });
                None
            }
        };
        if let (Some(kind), Some(templates), Some(delivery), true) =
            (kind, templates, delivery, errs.len() == before)
        {
            out.push(Channel {
                name: common.name,
                kind,
                templates,
                delivery,
            });
        }
    }
    out
}

/// Parses and checks `alerts.channels` given as a JSON array (for callers that hold the
/// config as a `serde_json::Value`): the channels and the secret files they read, or every
/// problem.
pub fn parse(
    value: &serde_json::Value,
    field: &str,
    base: &Path,
) -> Result<(Vec<Channel>, Vec<PathBuf>), Vec<FieldError>> {
    let list: Vec<ChannelConfig> = match serde_json::from_value(value.clone()) {
        Ok(l) => l,
        Err(e) => {
            return Err(vec![FieldError {
                field: field.to_owned(),
                value: String::new(),
                problem: format!("must be a list of objects: {e}"),
            }]);
        }
    };
    let (mut files, mut errs) = (Vec::new(), Vec::new());
    let channels = check(&list, field, base, &mut files, &mut errs);
    if errs.is_empty() {
        Ok((channels, files))
    } else {
        Err(errs)
    }
}

/// Deserialises one part of a channel, the error naming the field.
fn de<T: DeserializeOwned>(
    map: serde_json::Map<String, serde_json::Value>,
    f: &str,
    errs: &mut Vec<FieldError>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(serde_json::Value::Object(map)) {
        Ok(t) => Some(t),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                f.to_owned()
            } else {
                format!("{f}.{path}")
            };
            errs.push(FieldError {
                field,
                value: String::new(),
                problem: e.into_inner().to_string(),
            });
            None
        }
    }
}

fn delivery(c: &Common, f: &str, errs: &mut Vec<FieldError>) -> Option<Delivery> {
    let before = errs.len();
    let mut range = |name: &str, v: u64, lo: u64, hi: u64| {
        if !(lo..=hi).contains(&v) {
            errs.push(FieldError {
                field: format!("{f}.{name}"),
                value: v.to_string(),
                problem: format!("must be between {lo} and {hi}"),
            });
        }
    };
    range("rate_limit.max", c.rate_limit.max.into(), 1, 10_000);
    range("rate_limit.per_s", c.rate_limit.per_s, 1, 86_400);
    range("max_age_s", c.max_age_s, 1, 30 * 86_400);
    range("timeout_s", c.timeout_s, 1, 600);
    range("backoff_min_ms", c.backoff_min_ms, 10, 3_600_000);
    range("backoff_max_ms", c.backoff_max_ms, 10, 3_600_000);
    if c.backoff_max_ms < c.backoff_min_ms {
        errs.push(FieldError {
            field: format!("{f}.backoff_max_ms"),
            value: c.backoff_max_ms.to_string(),
            problem: format!("must not be below backoff_min_ms ({})", c.backoff_min_ms),
        });
    }
    (errs.len() == before).then(|| Delivery {
        rate_limit: c.rate_limit,
        max_age: Duration::from_secs(c.max_age_s),
        timeout: Duration::from_secs(c.timeout_s),
        backoff_min: Duration::from_millis(c.backoff_min_ms),
        backoff_max: Duration::from_millis(c.backoff_max_ms),
    })
}

/// What checking a channel's fields needs.
struct Cx<'a> {
    f: &'a str,
    base: &'a Path,
    secret_files: &'a mut Vec<PathBuf>,
    errs: &'a mut Vec<FieldError>,
}

impl Cx<'_> {
    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.f)
    }

    /// An http(s) URL with a host; `value` quoted in the error unless `secret`.
    fn check_url(&mut self, value: &str, name: &str, secret: bool) -> Option<Url> {
        let parsed = Url::parse(value);
        let problem = match &parsed {
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                "is not an http or https URL".to_owned()
            }
            Ok(u) if u.host_str().is_none_or(str::is_empty) => "has no host".to_owned(),
            Ok(u) => return Some(u.clone()),
            Err(e) => format!("is not a URL: {e}"),
        };
        let shown = match &parsed {
            _ if secret => "<hidden>".to_owned(),
            Ok(u) => masked(u),
            Err(_) => value.to_owned(),
        };
        self.errs.push(FieldError {
            field: self.field(name),
            value: shown,
            problem,
        });
        None
    }

    fn url(&mut self, value: &str, name: &str) -> Option<Url> {
        self.check_url(value, name, false)
    }

    fn optional(
        &mut self,
        inline: Option<&str>,
        file: Option<&Path>,
        name: &str,
    ) -> Option<Secret> {
        let field = self.field(name);
        secret::read(
            inline,
            file,
            &field,
            self.base,
            self.secret_files,
            self.errs,
        )
    }

    fn required(
        &mut self,
        inline: Option<&str>,
        file: Option<&Path>,
        name: &str,
    ) -> Option<Secret> {
        if inline.is_none() && file.is_none() {
            self.errs.push(FieldError {
                field: self.field(name),
                value: String::new(),
                problem: format!("is required (or {name}_file)"),
            });
            return None;
        }
        self.optional(inline, file, name)
    }

    /// A URL that is a secret (it embeds a token): inline or from a file.
    fn secret_url(
        &mut self,
        inline: Option<&str>,
        file: Option<&Path>,
        name: &str,
    ) -> Option<Secret> {
        let s = self.required(inline, file, name)?;
        let field = if inline.is_some() {
            name.to_owned()
        } else {
            format!("{name}_file")
        };
        self.check_url(s.expose(), &field, true)?;
        Some(s)
    }
}

fn webhook(r: WebhookRaw, cx: &mut Cx<'_>) -> Option<Kind> {
    let url = cx.secret_url(r.url.as_deref(), r.url_file.as_deref(), "url");
    let bearer = cx.optional(r.bearer.as_deref(), r.bearer_file.as_deref(), "bearer");
    let mut headers = Vec::new();
    for (name, value) in &r.headers {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) if matches!(n.as_str(), "content-type" | "content-length" | "host") => {
                cx.errs.push(FieldError {
                    field: cx.field("headers"),
                    value: name.clone(),
                    problem: "is set by smon".into(),
                })
            }
            Ok(n)
                if n.as_str() == "authorization"
                    && (r.bearer.is_some() || r.bearer_file.is_some()) =>
            {
                cx.errs.push(FieldError {
                    field: cx.field("headers"),
                    value: name.clone(),
                    problem: "cannot be combined with bearer; set one".into(),
                })
            }
            Ok(n) => match HeaderValue::from_str(value) {
                Ok(_) => headers.push((n, Secret::new(value.clone()))),
                Err(_) => cx.errs.push(FieldError {
                    field: format!("{}.{name}", cx.field("headers")),
                    value: "<hidden>".into(),
                    problem: "is not a valid header value (printable ASCII)".into(),
                }),
            },
            Err(_) => cx.errs.push(FieldError {
                field: cx.field("headers"),
                value: name.clone(),
                problem: "is not a valid header name".into(),
            }),
        }
    }
    if let Some(b) = &bearer
        && HeaderValue::from_str(&format!("Bearer {}", b.expose())).is_err()
    {
        cx.errs.push(FieldError {
            field: cx.field("bearer"),
            value: "<hidden>".into(),
            problem: "is not a valid header value (printable ASCII)".into(),
        });
    }
    Some(Kind::Webhook {
        url: url?,
        headers,
        bearer,
    })
}

fn ntfy(r: NtfyRaw, cx: &mut Cx<'_>) -> Option<Kind> {
    let server = cx.url(&r.server, "server");
    if r.topic.is_empty()
        || r.topic.len() > 64
        || !r
            .topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        cx.errs.push(FieldError {
            field: cx.field("topic"),
            value: r.topic.clone(),
            problem: "must be 1-64 letters, digits, '-' or '_' (ntfy's topic names)".into(),
        });
        return None;
    }
    let token = cx.optional(r.token.as_deref(), r.token_file.as_deref(), "token");
    Some(Kind::Ntfy {
        server: server?,
        topic: r.topic,
        token,
        tags: r.tags,
    })
}

fn telegram(r: TelegramRaw, cx: &mut Cx<'_>) -> Option<Kind> {
    let api_url = cx.url(&r.api_url, "api_url");
    let token = cx.required(r.token.as_deref(), r.token_file.as_deref(), "token");
    if let Some(t) = &token
        && !t
            .expose()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_'))
    {
        cx.errs.push(FieldError {
            field: cx.field("token"),
            value: "<hidden>".into(),
            problem: "is not a bot token (digits, ':', then letters, digits, '-' or '_')".into(),
        });
        return None;
    }
    let chat_id = match &r.chat_id {
        serde_json::Value::Number(n) if n.is_i64() => n.to_string(),
        serde_json::Value::String(s)
            if s.parse::<i64>().is_ok() || (s.starts_with('@') && s.len() > 1) =>
        {
            s.clone()
        }
        other => {
            cx.errs.push(FieldError {
                field: cx.field("chat_id"),
                value: other.to_string(),
                problem: "must be a chat number or '@channelname'".into(),
            });
            return None;
        }
    };
    Some(Kind::Telegram {
        api_url: api_url?,
        token: token?,
        chat_id,
    })
}

fn email(r: EmailRaw, cx: &mut Cx<'_>) -> Option<Kind> {
    let mut ok = true;
    if r.host.is_empty()
        || r.host.contains(['/', ' ', ':']) && r.host.parse::<std::net::Ipv6Addr>().is_err()
    {
        cx.errs.push(FieldError {
            field: cx.field("host"),
            value: r.host.clone(),
            problem: "is not a host name or address".into(),
        });
        ok = false;
    }
    let loopback = r.host == "localhost"
        || r.host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    if r.tls == TlsMode::None && !loopback {
        cx.errs.push(FieldError {
            field: cx.field("tls"),
            value: "none".into(),
            problem: format!(
                "is only allowed for a server on this machine (localhost), not '{}': use starttls or tls",
                r.host
            ),
        });
        ok = false;
    }
    let port = r.port.unwrap_or(match r.tls {
        TlsMode::Starttls => 587,
        TlsMode::Tls => 465,
        TlsMode::None => 25,
    });
    let password = cx.optional(
        r.password.as_deref(),
        r.password_file.as_deref(),
        "password",
    );
    if password.is_some() != r.user.is_some() {
        cx.errs.push(FieldError {
            field: cx.field("user"),
            value: String::new(),
            problem: "and password (or password_file) go together".into(),
        });
        ok = false;
    }
    let from = match r.from.parse::<Mailbox>() {
        Ok(m) => Some(m),
        Err(e) => {
            cx.errs.push(FieldError {
                field: cx.field("from"),
                value: r.from.clone(),
                problem: format!("is not a mail address: {e}"),
            });
            None
        }
    };
    if r.to.is_empty() {
        cx.errs.push(FieldError {
            field: cx.field("to"),
            value: String::new(),
            problem: "must list at least one recipient".into(),
        });
        ok = false;
    }
    let mut to = Vec::new();
    for (j, t) in r.to.iter().enumerate() {
        match t.parse::<Mailbox>() {
            Ok(m) => to.push(m),
            Err(e) => {
                cx.errs.push(FieldError {
                    field: cx.field(&format!("to[{j}]")),
                    value: t.clone(),
                    problem: format!("is not a mail address: {e}"),
                });
                ok = false;
            }
        }
    }
    let ca_pem = match &r.ca_file {
        None => None,
        Some(_) if r.tls == TlsMode::None => {
            cx.errs.push(FieldError {
                field: cx.field("ca_file"),
                value: String::new(),
                problem: "needs tls 'starttls' or 'tls'".into(),
            });
            ok = false;
            None
        }
        Some(file) => {
            let p = if file.is_absolute() {
                file.clone()
            } else {
                cx.base.join(file)
            };
            let read = std::fs::read(&p).map_err(|e| format!("cannot be read: {e}"));
            let checked = read.and_then(|pem| {
                lettre::transport::smtp::client::Certificate::from_pem(&pem)
                    .map(|_| pem)
                    .map_err(|e| format!("is not a PEM certificate: {e}"))
            });
            match checked {
                Ok(pem) => Some(pem),
                Err(problem) => {
                    cx.errs.push(FieldError {
                        field: cx.field("ca_file"),
                        value: p.display().to_string(),
                        problem,
                    });
                    ok = false;
                    None
                }
            }
        }
    };
    if !ok {
        return None;
    }
    Some(Kind::Email {
        ca_pem,
        host: r.host,
        port,
        tls: r.tls,
        user: r.user,
        password,
        from: from?,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: serde_json::Value) -> Result<Vec<Channel>, Vec<String>> {
        let dir = std::env::temp_dir();
        parse(&v, "alerts.channels", &dir)
            .map(|(c, _)| c)
            .map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn every_type_parses_with_its_defaults() {
        let got = run(serde_json::json!([
            {"name": "hook", "type": "webhook", "url": "https://example.com/h", "bearer": "t0k", "headers": {"X-Team": "ops"}},
            {"name": "s", "type": "slack", "url": "https://hooks.slack.com/services/T/B/x"},
            {"name": "d", "type": "discord", "url": "https://discord.com/api/webhooks/1/x"},
            {"name": "n", "type": "ntfy", "topic": "lab-alerts"},
            {"name": "p", "type": "pushbullet", "token": "o.abc"},
            {"name": "t", "type": "telegram", "token": "123:ABC-def", "chat_id": -1001},
            {"name": "m", "type": "email", "host": "smtp.example.com", "user": "u", "password": "pw",
             "from": "smon <smon@example.com>", "to": ["ops@example.com"]},
            {"name": "c", "type": "command", "program": "/usr/local/bin/page", "args": ["-v"]},
            {"name": "am", "type": "alertmanager", "urls": ["http://am1:9093", "http://am2:9093"],
             "rate_limit": {"max": 100, "per_s": 10}, "max_age_s": 600}
        ]))
        .expect("valid");
        assert_eq!(got.len(), 9);
        let types: Vec<_> = got.iter().map(|c| c.kind.type_name()).collect();
        assert_eq!(types, TYPES);
        match &got[3].kind {
            Kind::Ntfy { server, .. } => assert_eq!(server.as_str(), "https://ntfy.sh/"),
            k => panic!("{k:?}"),
        }
        match &got[6].kind {
            Kind::Email { port, tls, .. } => assert_eq!((*port, *tls), (587, TlsMode::Starttls)),
            k => panic!("{k:?}"),
        }
        assert_eq!(got[0].delivery.max_age, Duration::from_secs(86_400));
        assert_eq!(
            got[8].delivery.rate_limit,
            RateLimit {
                max: 100,
                per_s: 10
            }
        );
    }

    #[test]
    fn problems_name_the_field_and_quote_the_value() {
        let errs = run(serde_json::json!([
            {"name": "a", "type": "webhook", "url": "ftp://x"},
            {"name": "a", "type": "slak", "url": "https://x"},
            {"name": "b", "type": "ntfy", "topic": "bad topic", "tokn": "x"},
            {"name": "c", "type": "email", "host": "mail.example.com", "tls": "none", "from": "nope", "to": []},
            {"name": "d", "type": "telegram", "token": "1:A", "chat_id": "lab"},
            {"name": "e", "type": "command", "program": "x", "max_age_s": 0, "title_template": "{{ rule"}
        ]))
        .expect_err("invalid");
        let all = errs.join("\n");
        for want in [
            "alerts.channels[0].url: '<hidden>' is not an http or https URL",
            "alerts.channels[1].name: 'a' is the name of another channel",
            "alerts.channels[1].type: 'slak' is not a channel type",
            "alerts.channels[2].tokn: unknown field `tokn`",
            "alerts.channels[3].tls: 'none' is only allowed for a server on this machine",
            "alerts.channels[3].from: 'nope' is not a mail address",
            "alerts.channels[3].to: must list at least one recipient",
            "alerts.channels[4].chat_id: '\"lab\"' must be a chat number or '@channelname'",
            "alerts.channels[5].max_age_s: '0' must be between 1 and 2592000",
            "alerts.channels[5].title_template: is not a valid template",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn secrets_come_from_files_and_never_show() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("slack-url"),
            "https://hooks.slack.com/services/T/B/SECRETX\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("pw"), "hunter2\n").expect("write");
        let v = serde_json::json!([
            {"name": "s", "type": "slack", "url_file": "slack-url"},
            {"name": "m", "type": "email", "host": "127.0.0.1", "port": 2525, "tls": "none", "user": "u",
             "password_file": "pw", "from": "a@b.c", "to": ["d@e.f"]}
        ]);
        let (got, files) = parse(&v, "alerts.channels", dir.path()).expect("valid");
        assert_eq!(files.len(), 2);
        let raw: Vec<ChannelConfig> = serde_json::from_value(serde_json::json!([
            {"name": "p", "type": "pushbullet", "token": "o.SECRETZ"}
        ]))
        .expect("raw");
        let debug = format!("{raw:?}");
        assert!(
            !debug.contains("SECRETZ") && debug.contains("pushbullet"),
            "{debug}"
        );
        let debug = format!("{got:?}");
        assert!(
            !debug.contains("SECRETX") && !debug.contains("hunter2"),
            "{debug}"
        );
        let views: Vec<_> = got.iter().map(Channel::view).collect();
        let json = serde_json::to_string(&views).expect("json");
        assert!(
            !json.contains("SECRETX") && !json.contains("hunter2"),
            "{json}"
        );
        assert_eq!(views[0].target, "hooks.slack.com");
        assert!(views[0].secret_set && views[1].secret_set);
        assert_eq!(views[1].target, "127.0.0.1:2525 to d@e.f");
        // A secret file's URL that is not a URL: named by its field, not quoted.
        std::fs::write(dir.path().join("slack-url"), "not a url SECRETY").expect("write");
        let errs = parse(&v, "alerts.channels", dir.path()).expect_err("invalid");
        let text = errs[0].to_string();
        assert!(
            text.starts_with("alerts.channels[0].url_file: '<hidden>' is not a URL"),
            "{text}"
        );
        assert!(!text.contains("SECRETY"));
        // Basic auth in an Alertmanager URL: used, never shown.
        let v = serde_json::json!([
            {"name": "am", "type": "alertmanager", "urls": ["https://smon:pa55@am.lab:9093"]},
            {"name": "am2", "type": "alertmanager", "urls": ["ftp://smon:pa55@am.lab"]}
        ]);
        let errs = parse(&v, "alerts.channels", dir.path()).expect_err("ftp");
        assert_eq!(
            errs[0].to_string(),
            "alerts.channels[1].urls[0]: 'ftp://smon@am.lab/' is not an http or https URL"
        );
        let (got, _) =
            parse(&serde_json::json!([v[0]]), "alerts.channels", dir.path()).expect("valid");
        let view = got[0].view();
        assert_eq!(view.target, "https://smon@am.lab:9093/");
        assert!(view.secret_set);
    }
}
