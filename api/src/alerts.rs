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
