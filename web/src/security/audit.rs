//! The audit trail: who did what (an account change, a host action, an API token made or
//! revoked), from where, to which hosts, and how it went. Each event is a structured log line
//! with target `smon::audit` and a record in an [`AuditLog`]: the server's database when it
//! has one (the aggregator's implementation, table `audit`), else [`FileAudit`], an
//! append-only JSON-lines file readable by its owner only, next to the users file. Admins
//! read it through `GET /api/v1/audit` ([`AuditLog::query`]).
//!
//! Other code makes an event with [`event_by`] and records it with
//! [`crate::security::Security::audit`] (blocking) or
//! [`crate::security::Security::audit_later`] (from async code).

use std::path::{Path, PathBuf};

pub use smon_api::audit::{AuditEntry, AuditEvent};

/// Records a query answers by default.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most records a query answers.
pub const MAX_LIMIT: u32 = 1000;

/// Why an audit record could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The audit file.
    #[error("{}: cannot use the audit log: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database.
    #[error("the audit table of the database: {0}")]
    Database(String),
}

/// Which records a query wants, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// At most this many ([`MAX_LIMIT`] at most).
    pub limit: u32,
    /// Only records with an id below this one (the next page).
    pub before: Option<u64>,
    /// Only this action.
    pub action: Option<String>,
    /// Only records naming this host id.
    pub host: Option<String>,
}

impl AuditQuery {
    /// Whether `e` passes the filters (not `before` or `limit`).
    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.action.as_ref().is_none_or(|a| &e.action == a)
            && self.host.as_ref().is_none_or(|h| e.hosts.contains(h))
    }
}

/// Where audit records go.
pub trait AuditLog: Send + Sync {
    /// Appends `e`. Blocking: call it off the async threads.
    fn record(&self, e: &AuditEvent) -> Result<(), AuditError>;
    /// The records `q` asks for, newest first. Blocking.
    fn query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError>;
}

/// An [`AuditLog`] in an append-only JSON-lines file (mode 0600); a record's id is its line
/// number (from 1).
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

    fn err(&self, source: std::io::Error) -> AuditError {
        AuditError::File {
            path: self.path.clone(),
            source,
        }
    }
}

impl AuditLog for FileAudit {
    fn record(&self, e: &AuditEvent) -> Result<(), AuditError> {
        let line = serde_json::to_string(e).map_err(|e| self.err(e.into()))?;
        smon_runtime::secret_file::append_private(&self.path, &line).map_err(|e| self.err(e))
    }

    fn query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let limit = q.limit.clamp(1, MAX_LIMIT) as usize;
        // A line that does not parse (cut by a crash) is skipped, and keeps its number.
        let mut all: Vec<AuditEntry> = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| {
                let event = serde_json::from_str(l).ok()?;
                Some(AuditEntry {
                    id: i as u64 + 1,
                    event,
                })
            })
            .filter(|e| q.before.is_none_or(|b| e.id < b) && q.matches(&e.event))
            .collect();
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }
}

/// An event of `action` done now by `p` from `client`, with the outcome `ok`: the actor is
/// the user's name (`token:<name>` for an API token). Set `hosts`, `outcome` and `results`
/// with struct update syntax, then record it ([`crate::security::Security::audit_later`]).
pub fn event_by(
    p: &crate::security::Principal,
    client: std::net::IpAddr,
    action: &str,
) -> AuditEvent {
    let actor = p.actor();
    AuditEvent {
        client: Some(client),
        ..AuditEvent::new(crate::clock::now_ms(), actor, action)
    }
}

/// What an audited request acted on: hosts (ids) or another target (a cluster, an account).
pub enum Subject {
    /// Host ids.
    Hosts(Vec<String>),
    /// Anything else, by name.
    Target(String),
}

/// Keeps `action` on `subject` by `p` from `client` in the server's audit log, with the
/// outcome of `r` (`ok`, or the refusal's reason), and hands `r` back.
pub async fn audited<T>(
    w: &crate::state::Web,
    p: &crate::security::Principal,
    client: std::net::IpAddr,
    action: &str,
    subject: Subject,
    r: Result<T, crate::error::ApiError>,
) -> Result<T, crate::error::ApiError> {
    let mut e = event_by(p, client, action);
    match subject {
        Subject::Hosts(h) => e.hosts = h,
        Subject::Target(t) => e.target = t,
    }
    e.outcome = match &r {
        Ok(_) => "ok".to_owned(),
        Err(er) => er.reason().to_owned(),
    };
    w.security.audit_later(e).await;
    r
}

/// Logs `e` (target `smon::audit`) and appends it to `log`; a failed append is logged too.
pub fn audit(log: &dyn AuditLog, e: &AuditEvent) {
    use crate::security::login::log_safe;
    // Names reaching here were checked (`valid_name`) or come from the session.
    tracing::info!(
        target: "smon::audit",
        actor = %log_safe(&e.actor),
        client = %e.client.map(|c| c.to_string()).unwrap_or_default(),
        action = %log_safe(&e.action),
        target_user = %log_safe(&e.target),
        role = e.role.as_deref().unwrap_or(""),
        hosts = %log_safe(&e.hosts.join(",")),
        outcome = %log_safe(&e.outcome),
        "Audited action."
    );
    if let Err(err) = log.record(e) {
        tracing::error!(target: "smon::audit", error = %err, "Audit record lost.");
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn event(action: &str, hosts: &[&str]) -> AuditEvent {
        AuditEvent {
            client: Some(IpAddr::from([127, 0, 0, 1])),
            target: "bob".into(),
            role: Some("viewer".into()),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..AuditEvent::new(1, "admin", action)
        }
    }

    #[test]
    fn records_are_private_json_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = FileAudit::beside(&dir.path().join("smon-users.json"));
        assert_eq!(a.path(), dir.path().join("smon-users.audit.jsonl"));
        let e = event("add_user", &[]);
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

    #[test]
    fn events_name_their_actor() {
        let p = crate::security::Principal::User {
            name: "token:ci".into(),
            role: crate::security::Role::Admin,
            expires_ms: 0,
            session: String::new(),
        };
        let ip = IpAddr::from([10, 0, 0, 7]);
        let e = AuditEvent {
            hosts: vec!["lab:n1".into()],
            ..event_by(&p, ip, "wake")
        };
        assert_eq!(
            (e.actor.as_str(), e.client, e.action.as_str()),
            ("token:ci", Some(ip), "wake")
        );
        assert_eq!(e.outcome, "ok");
        assert!(e.at_ms > 0);
        let anon = event_by(&crate::security::Principal::Anonymous, ip, "check");
        assert_eq!(anon.actor, "anonymous");
    }

    #[test]
    fn lines_of_the_account_only_format_still_read() {
        let old = r#"{"at_ms":1,"actor":"admin","client":"127.0.0.1","action":"add_user","target":"bob","role":"viewer","outcome":"ok"}"#;
        let e: AuditEvent = serde_json::from_str(old).expect("old line");
        assert_eq!(e, event("add_user", &[]));
    }

    #[test]
    fn queries_filter_page_and_put_the_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = FileAudit::beside(&dir.path().join("u.json"));
        assert!(a.query(&AuditQuery::default()).expect("empty").is_empty());
        a.record(&event("add_user", &[])).expect("1");
        a.record(&event("wake", &["lab:n1", "lab:n2"])).expect("2");
        a.record(&event("reboot", &["lab:n2"])).expect("3");
        let ids = |q: AuditQuery| -> Vec<u64> {
            a.query(&q).expect("query").iter().map(|e| e.id).collect()
        };
        let q = |limit| AuditQuery {
            limit,
            ..AuditQuery::default()
        };
        assert_eq!(ids(q(10)), [3, 2, 1]);
        assert_eq!(ids(q(2)), [3, 2]);
        assert_eq!(
            ids(AuditQuery {
                before: Some(3),
                ..q(10)
            }),
            [2, 1]
        );
        assert_eq!(
            ids(AuditQuery {
                host: Some("lab:n2".into()),
                ..q(10)
            }),
            [3, 2]
        );
        assert_eq!(
            ids(AuditQuery {
                action: Some("wake".into()),
                ..q(10)
            }),
            [2]
        );
    }
}
