//! The audit log's records: one action done or refused (an account change, a host action, an
//! API token made or revoked), as `GET /api/v1/audit` sends them and as the server stores them.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One action, done or refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Who: a user name, `token:<name>` for an API token, or `cli` for `smon-aggregator token`.
    pub actor: String,
    /// From which client address (none for the command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    /// What: an account change (`change_own_password`, `add_user`, `remove_user`, `set_role`,
    /// `reset_password`), a host action (`wake`, `reboot`, `shutdown`, `check`,
    /// `inventory.add`...), or `token.create`, `token.revoke`.
    pub action: String,
    /// The account or token acted on, when there is one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// The new role, for `add_user`, `set_role` and `token.create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The hosts acted on (ids `cluster:name`); empty for account changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// `ok`, or why it was refused or failed.
    pub outcome: String,
    /// Per-host results of a host action (e.g. `[{"host": "lab:n1", "ok": true, "message":
    /// "..."}]`), as the action's answer gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<serde_json::Value>,
}

impl AuditEvent {
    /// An event of `action` by `actor` at `at_ms` with the outcome `ok`, acting on nothing
    /// yet: set the other fields with struct update syntax.
    pub fn new(at_ms: u64, actor: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            at_ms,
            actor: actor.into(),
            client: None,
            action: action.into(),
            target: String::new(),
            role: None,
            hosts: Vec::new(),
            outcome: "ok".into(),
            results: None,
        }
    }
}

/// One record of `GET /api/v1/audit`: its id (larger is newer; pass the smallest seen as
/// `before` for the next page) and the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The record's id, increasing.
    pub id: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: AuditEvent,
}
