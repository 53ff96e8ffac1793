//! The audit trail of account changes: who changed which account, how, from where, and
//! whether it was done. Each event is a structured log line with target `smon::audit` and a
//! record in an [`AuditLog`]: today [`FileAudit`], an append-only JSON-lines file readable by
//! its owner only, next to the users file; the database can implement the same trait later.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One account change, done or refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Who did it (a user name).
    pub actor: String,
    /// From which client address.
    pub client: IpAddr,
    /// What: `change_own_password`, `add_user`, `remove_user`, `set_role`, `reset_password`.
    pub action: String,
    /// The account changed.
    pub target: String,
    /// The new role, for `add_user` and `set_role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `ok`, or why it was refused.
    pub outcome: String,
}

/// Why an audit record could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot append to the audit log: {source}", path.display())]
pub struct AuditError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Where audit records go.
pub trait AuditLog: Send + Sync {
    /// Appends `e`. Blocking: call it off the async threads.
    fn record(&self, e: &AuditEvent) -> Result<(), AuditError>;
}

/// An [`AuditLog`] in an append-only JSON-lines file (mode 0600).
#[derive(Debug, Clone)]
pub struct FileAudit {
    path: PathBuf,
}

impl FileAudit {
    /// The audit file that goes with the users file `users_file`: `smon-users.json` ->
    /// `smon-users.audit.jsonl`.
    pub fn beside(users_file: &Path) -> Self {
        Self {
            path: users_file.with_extension("audit.jsonl"),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AuditLog for FileAudit {
    fn record(&self, e: &AuditEvent) -> Result<(), AuditError> {
        let err = |source| AuditError {
            path: self.path.clone(),
            source,
        };
        let line = serde_json::to_string(e).map_err(|e| err(e.into()))?;
        smon_runtime::secret_file::append_private(&self.path, &line).map_err(err)
    }
}

/// Logs `e` (target `smon::audit`) and appends it to `log`; a failed append is logged too.
pub fn audit(log: &dyn AuditLog, e: &AuditEvent) {
    // Names reaching here were checked (`valid_name`) or come from the session.
    tracing::info!(
        target: "smon::audit",
        actor = %crate::security::login::log_safe(&e.actor),
        client = %e.client,
        action = %e.action,
        target_user = %crate::security::login::log_safe(&e.target),
        role = e.role.as_deref().unwrap_or(""),
        outcome = %crate::security::login::log_safe(&e.outcome),
        "Account change."
    );
    if let Err(err) = log.record(e) {
        tracing::error!(target: "smon::audit", error = %err, "Audit record lost.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_private_json_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = FileAudit::beside(&dir.path().join("smon-users.json"));
        assert_eq!(a.path(), dir.path().join("smon-users.audit.jsonl"));
        let e = AuditEvent {
            at_ms: 1,
            actor: "admin".into(),
            client: IpAddr::from([127, 0, 0, 1]),
            action: "add_user".into(),
            target: "bob".into(),
            role: Some("viewer".into()),
            outcome: "ok".into(),
        };
        audit(&a, &e);
        audit(&a, &e);
        let text = std::fs::read_to_string(a.path()).expect("read");
        let lines: Vec<AuditEvent> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines, vec![e.clone(), e]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(a.path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
