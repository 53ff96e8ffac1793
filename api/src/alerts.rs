//! The JSON of alerts (`web/PROTOCOL.md`, "Alerts"): an alert as the alerts page and
//! `GET /api/v1/alerts` show it, and a notification as channels receive it (the body of the
//! `webhook` channel, stdin of the `command` channel, the values the templates see).
//!
//! The rule engine (`smon-alerts`) makes these; the notifiers (`smon-notify`) deliver them.
//! Every notification has an id that stays the same across retries and restarts, so that a
//! receiver, or Alertmanager behind two aggregators, can drop a second copy.

use serde::{Deserialize, Serialize};

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Look at it soon (the default).
    Warning,
    /// Act now.
    Critical,
}

impl Severity {
    /// The name used in config, labels and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// Whether an alert is going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition has held for the rule's `for_s`.
    Firing,
    /// The condition has cleared (past the rule's clear threshold, or the host is back).
    Resolved,
}

impl AlertStatus {
    /// The name used in JSON and templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One host an alert is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertHost {
    /// Host id (`cluster:name`).
    pub host: String,
    /// The host's cluster.
    pub cluster: String,
    /// What the rule looked at, when it is more than the host: a mount point, a GPU index,
    /// a process name (empty otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// The value that fired (or cleared) the rule, when it has one (`host_down` has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// A sentence about it (`/var is 93.1 % full`, `held by alice (PID 4242), 3 GiB`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// An alert: one rule firing on one host and subject. Its `id` is stable for the life of
/// the alert (from firing to resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id of this alert (the rule, host and subject, and when it started).
    pub id: String,
    /// The rule's name.
    pub rule: String,
    /// The rule's severity.
    pub severity: Severity,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// The host and what on it.
    pub host: AlertHost,
    /// When the condition began to hold (ms since the epoch; firing is `for_s` later).
    pub started_ms: u64,
    /// When it fired (ms since the epoch).
    pub fired_ms: u64,
    /// When it resolved (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_ms: Option<u64>,
    /// The host changes state too often to notify each change (it is still shown).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flapping: bool,
}

/// What a channel is sent: one rule's alerts that fired (or resolved) together. Many hosts
/// failing the same rule within the grouping window make one notification, not one each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Stable id (the same on every retry, after a restart too): receivers may drop repeats.
    pub id: String,
    /// Firing or resolved (a group holds alerts of one status).
    pub status: AlertStatus,
    /// The rule's name.
    pub rule: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The alerts, one per host and subject.
    pub alerts: Vec<Alert>,
    /// A repeat of a notification sent before (the rule's repeat interval).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeat: bool,
    /// When the notification was made (ms since the epoch).
    pub at_ms: u64,
    /// A link to the dashboard's alerts page (`server.public_url`), when the server knows
    /// its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Who acknowledged an alert, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckInfo {
    /// The user.
    pub by: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// An alert firing or pending now, as `GET /api/v1/alerts` lists it: the alert's fields and
/// these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlertView {
    /// The alert (`status` is `firing`; a pending one has `fired_ms` 0).
    #[serde(flatten)]
    pub alert: Alert,
    /// Not firing yet: the condition holds, the rule's `for_s` has not passed.
    pub pending: bool,
    /// A silence covers it: shown, but it notifies nothing.
    pub silenced: bool,
    /// Acknowledged: by whom and when (repeats stop; it still resolves as usual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<AckInfo>,
    /// Seconds since it fired (since its condition began, when pending).
    pub duration_s: u64,
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsAnswer {
    /// The server's clock (ms since the epoch), for the durations.
    pub server_time_ms: u64,
    /// Firing alerts, then pending ones.
    pub alerts: Vec<ActiveAlertView>,
}

/// One firing or resolution in the alert history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Its order in the history (increasing).
    pub seq: i64,
    /// When it fired or resolved (ms since the epoch).
    pub at_ms: u64,
    /// The alert, with its status then.
    pub alert: Alert,
}

/// `GET /api/v1/alerts/history`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertHistoryAnswer {
    /// The range asked (ms since the epoch).
    pub from: u64,
    /// The range asked (ms since the epoch).
    pub to: u64,
    /// The events, newest first.
    pub events: Vec<AlertEvent>,
    /// More events than `limit` matched: ask again with `to` before the last one.
    pub truncated: bool,
}

/// One item of `alerts.rules[]`, as written in `config_app.json` or sent by the rule editor
/// (and stored as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The rule's name, unique among the rules (it names the alerts and notifications).
    pub name: String,
    /// The condition: `host_down`, `METRIC OP VALUE` (e.g. `cpu_percent > 90`,
    /// `disk_percent{/var} >= 95`), `process_missing`, `unresponsive`, `version_mismatch`,
    /// `disk_full_within` or `gpu_idle_with_memory`.
    pub when: String,
    /// How long the condition must hold before the alert fires, seconds (0: at once).
    #[serde(default)]
    pub for_s: u64,
    /// Only hosts of this cluster (all clusters when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Only this host: its id `cluster:name`, or its name (all hosts when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Only hosts with this tag (all hosts when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `info`, `warning` (the default) or `critical`.
    #[serde(default = "warning")]
    pub severity: Severity,
    /// Threshold rules: the value past which a firing alert resolves (hysteresis); below the
    /// trigger for `>`/`>=`, above it for `<`/`<=`. Default: the trigger threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<f64>,
    /// Send the firing notification again every this many seconds while it fires (0: never).
    #[serde(default)]
    pub repeat_s: u64,
    /// The channels (`alerts.channels[].name`) notified.
    #[serde(default)]
    pub notify: Vec<String>,
    /// `disk_full_within`: the horizon, hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_h: Option<f64>,
    /// `gpu_idle_with_memory`: how long the GPU must be idle, minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_min: Option<f64>,
    /// `process_missing`: the process that must run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// How long alerts of this rule are collected into one notification, seconds (default:
    /// the engine's `group_wait_s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_wait_s: Option<u64>,
}

fn warning() -> Severity {
    Severity::Warning
}

/// Where a rule or silence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `config_app.json`: read-only in the UI.
    Config,
    /// Made in the UI (stored in the database).
    Ui,
}

/// An item of `GET /api/v1/alerts/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleEntry {
    /// Where it comes from.
    pub source: Source,
    /// The rule.
    pub rule: RuleSpec,
    /// Who last changed it (UI rules).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub updated_by: String,
    /// When (UI rules; ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<u64>,
    /// Its alerts firing now.
    pub firing: u32,
}

/// A recurring maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// `mon` ... `sun` (every day when empty).
    #[serde(default)]
    pub days: Vec<String>,
    /// Opens at `HH:MM`.
    pub start: String,
    /// Closes at `HH:MM` (before `start`: the next day).
    pub end: String,
    /// An IANA time zone (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// `POST /api/v1/alerts/silences`: what to silence (at least one of `rule`, `host`,
/// `cluster`, `tag`) and for how long (`duration_s` or `ends_ms`, and/or a `window`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Only this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Only this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Only this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Only hosts with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// From (ms since the epoch; now when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_ms: Option<u64>,
    /// For this many seconds from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
    /// Or until (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_ms: Option<u64>,
    /// A recurring window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
    /// Why (shown on the page).
    #[serde(default)]
    pub comment: String,
}

/// An item of `GET /api/v1/alerts/silences`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceEntry {
    /// Its id (`DELETE /api/v1/alerts/silences/{id}`).
    pub id: String,
    /// Where it comes from.
    pub source: Source,
    /// Only this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Only this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Only this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Only hosts with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// From (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_ms: Option<u64>,
    /// Until (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_ms: Option<u64>,
    /// The recurring window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// In force now.
    pub active: bool,
}

/// A channel's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitView {
    /// Most notifications per window.
    pub max: u32,
    /// The window, seconds.
    pub per_s: u64,
}

/// An item of `GET /api/v1/alerts/channels`: the channel without its secrets, and its
/// delivery figures since the start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelEntry {
    /// The name.
    pub name: String,
    /// Where it comes from.
    pub source: Source,
    /// Who last changed it (UI channels).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub updated_by: String,
    /// When (UI channels; ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<u64>,
    /// The type (`webhook`, `email`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it sends, without secrets.
    pub target: String,
    /// A secret (token, password, webhook URL) is configured.
    pub secret_set: bool,
    /// The rate limit.
    pub rate_limit: RateLimitView,
    /// Notifications older than this are dropped, seconds.
    pub max_age_s: u64,
    /// Its own title or body template.
    pub custom_templates: bool,
    /// Delivered.
    pub sent: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Dropped after `max_age_s`.
    pub dropped: u64,
    /// Waiting in the outbox.
    pub queued: u64,
    /// The last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_ms: Option<u64>,
    /// The last delivery (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_ms: Option<u64>,
}

/// `POST /api/v1/alerts/channels/{name}/test` when it was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestAnswer {
    /// Delivered.
    pub ok: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_serialises_with_lowercase_names_and_without_empty_fields() {
        let n = Notification {
            id: "n1".into(),
            status: AlertStatus::Firing,
            rule: "disk".into(),
            severity: Severity::Critical,
            alerts: vec![Alert {
                id: "a1".into(),
                rule: "disk".into(),
                severity: Severity::Critical,
                status: AlertStatus::Firing,
                host: AlertHost {
                    host: "lab:n1".into(),
                    cluster: "lab".into(),
                    subject: "/var".into(),
                    value: Some(93.5),
                    detail: String::new(),
                },
                started_ms: 1,
                fired_ms: 2,
                resolved_ms: None,
                flapping: false,
            }],
            repeat: false,
            at_ms: 3,
            link: None,
        };
        let v = serde_json::to_value(&n).expect("json");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["alerts"][0]["host"]["subject"], "/var");
        assert!(v.get("link").is_none() && v.get("repeat").is_none());
        assert!(v["alerts"][0].get("resolved_ms").is_none());
        let back: Notification = serde_json::from_value(v).expect("back");
        assert_eq!(back, n);
    }
}
