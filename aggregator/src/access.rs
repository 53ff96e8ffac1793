//! API tokens and the audit log in the database (tables `api_tokens` and `audit`, migration
//! `0005_tokens_audit.sql`): the aggregator's [`TokenStore`] and [`AuditLog`], and what the
//! `smon-aggregator token` commands do.
//!
//! The server and the command line each open their own connection to the same SQLite file
//! (WAL): a token made or revoked by the command line is seen by the server's next bearer
//! request, which looks its hash up in the table (a primary-key lookup, microseconds), so no
//! cache has to be invalidated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use smon_web::security::Role;
use smon_web::security::audit::{AuditEntry, AuditError, AuditEvent, AuditLog, AuditQuery};
use smon_web::security::tokens::{self, TokenInfo, TokenStore};

/// How often at most a token's `last_used_ms` is written (ms).
const LAST_USED_EVERY_MS: u64 = 60_000;

/// Why a token command failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The config has no storage: tokens live in the database.
    #[error("{file}: storage is off; API tokens are kept in the database (storage.dir)")]
    StorageOff {
        /// The config file.
        file: String,
    },
    /// The database was not made yet.
    #[error(
        "{}: no database yet; start the aggregator once (as its service user) to create it",
        .0.display()
    )]
    Missing(PathBuf),
    /// Not a token name.
    #[error("'{0}' is not a token name: 1-64 letters, digits, '.', '_' or '-'")]
    InvalidName(String),
    /// A token of that name exists.
    #[error("a token named '{0}' exists (revoke it first, or choose another name)")]
    Exists(String),
    /// No token of that name.
    #[error("no token named '{0}'")]
    NotFound(String),
    /// Opening the database did not finish (its task panicked).
    #[error("opening the database did not finish: {0}")]
    Task(String),
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] smon_history::Error),
    /// A query failed.
    #[error("{}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
}

/// One token as `token list` shows it (never the secret, nor its hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRow {
    /// Its name.
    pub name: String,
    /// `viewer` or `admin`.
    pub role: String,
    /// When it was made (ms since the epoch).
    pub created_ms: u64,
    /// When it was last used (ms since the epoch; about a minute's precision).
    pub last_used_ms: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The tokens and the audit log of one database: a connection of its own.
pub struct Access {
    db: Mutex<Connection>,
    path: PathBuf,
    /// When each token's last use was last written, so that a busy script does not write
    /// on every request.
    noted: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// Opens the database at `path` (creating it and migrating its schema). Blocking.
    pub fn open(path: &Path) -> Result<Self, TokenError> {
        Ok(Self {
            db: Mutex::new(smon_history::db::open_writer(path)?),
            path: path.to_owned(),
            noted: Mutex::new(HashMap::new()),
        })
    }

    /// Opens the database of `settings` for the command line: it must exist already (made
    /// by the aggregator, so that it has the service user's ownership).
    pub fn open_for_cli(settings: &crate::config::Settings) -> Result<Self, TokenError> {
        let opts = settings
            .storage
            .as_ref()
            .ok_or_else(|| TokenError::StorageOff {
                file: settings.source.clone(),
            })?;
        let path = opts.db_path();
        if !path.exists() {
            return Err(TokenError::Missing(path));
        }
        Self::open(&path)
    }

    fn sqlite(&self, source: rusqlite::Error) -> TokenError {
        TokenError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Makes a token `name` with `role` at `now_ms`; returns the token (to show once). The
    /// audit records it, with `actor`.
    pub fn create(
        &self,
        name: &str,
        role: Role,
        now_ms: u64,
        actor: &str,
    ) -> Result<String, TokenError> {
        if !tokens::valid_name(name) {
            return Err(TokenError::InvalidName(
                smon_runtime::config::printable(name).into_owned(),
            ));
        }
        let token = tokens::generate();
        let n = lock(&self.db)
            .execute(
                "INSERT INTO api_tokens (name, hash, role, created_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
                params![name, tokens::hash(&token), role.as_str(), now_ms as i64],
            )
            .map_err(|e| self.sqlite(e))?;
        if n == 0 {
            return Err(TokenError::Exists(name.to_owned()));
        }
        self.audit_cli(AuditEvent {
            target: name.to_owned(),
            role: Some(role.as_str().into()),
            ..AuditEvent::new(now_ms, actor, "token.create")
        });
        Ok(token)
    }

    /// The tokens, by name.
    pub fn list(&self) -> Result<Vec<TokenRow>, TokenError> {
        let db = lock(&self.db);
        let mut st = db
            .prepare("SELECT name, role, created_ms, last_used_ms FROM api_tokens ORDER BY name")
            .map_err(|e| self.sqlite(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(TokenRow {
                    name: r.get(0)?,
                    role: r.get(1)?,
                    created_ms: r.get::<_, i64>(2)? as u64,
                    last_used_ms: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sqlite(e))?;
        Ok(rows)
    }

    /// Revokes (deletes) the token `name`; a running server refuses it from its next request.
    pub fn revoke(&self, name: &str, now_ms: u64, actor: &str) -> Result<(), TokenError> {
        let n = lock(&self.db)
            .execute("DELETE FROM api_tokens WHERE name = ?1", params![name])
            .map_err(|e| self.sqlite(e))?;
        if n == 0 {
            return Err(TokenError::NotFound(
                smon_runtime::config::printable(name).into_owned(),
            ));
        }
        self.audit_cli(AuditEvent {
            target: name.to_owned(),
            ..AuditEvent::new(now_ms, actor, "token.revoke")
        });
        Ok(())
    }

    /// Records a command line's event; a failure is said on stderr (the command still did
    /// its work).
    fn audit_cli(&self, e: AuditEvent) {
        if let Err(err) = self.record(&e) {
            eprintln!("smon-aggregator: warning: {err}");
        }
    }
}

impl TokenStore for Access {
    fn find(&self, hash: &str, now_ms: u64) -> Result<Option<TokenInfo>, String> {
        let db = lock(&self.db);
        let row: Option<(String, String)> = db
            .query_row(
                "SELECT name, role FROM api_tokens WHERE hash = ?1",
                params![hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| e.to_string())?;
        let Some((name, role)) = row else {
            return Ok(None);
        };
        let Some(role) = Role::parse(&role) else {
            return Err(format!(
                "token '{name}': unknown role '{role}' in the database"
            ));
        };
        let due = {
            let mut noted = lock(&self.noted);
            let last = noted.get(&name).copied().unwrap_or(0);
            let due = now_ms.saturating_sub(last) >= LAST_USED_EVERY_MS;
            if due {
                noted.insert(name.clone(), now_ms);
            }
            due
        };
        if due
            && let Err(e) = db.execute(
                "UPDATE api_tokens SET last_used_ms = ?1 WHERE name = ?2",
                params![now_ms as i64, name],
            )
        {
            tracing::warn!(error = %e, "Cannot note an API token's last use.");
        }
        Ok(Some(TokenInfo { name, role }))
    }
}

impl AuditLog for Access {
    fn record(&self, e: &AuditEvent) -> Result<(), AuditError> {
        let db_err = |e: rusqlite::Error| AuditError::Database(e.to_string());
        let hosts = serde_json::to_string(&e.hosts).unwrap_or_else(|_| "[]".into());
        let results = e.results.as_ref().map(|r| r.to_string());
        lock(&self.db)
            .execute(
                "INSERT INTO audit (at_ms, actor, client, action, target, role, hosts, outcome,
                 results) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    e.at_ms as i64,
                    e.actor,
                    e.client.map(|c| c.to_string()),
                    e.action,
                    e.target,
                    e.role,
                    hosts,
                    e.outcome,
                    results
                ],
            )
            .map_err(db_err)?;
        Ok(())
    }

    fn query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, AuditError> {
        let db_err = |e: rusqlite::Error| AuditError::Database(e.to_string());
        let limit = q.limit.clamp(1, smon_web::security::audit::MAX_LIMIT);
        let db = lock(&self.db);
        // The host filter is on the JSON list: `json_each` finds the id exactly.
        let mut st = db
            .prepare(
                "SELECT id, at_ms, actor, client, action, target, role, hosts, outcome, results
                 FROM audit
                 WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR action = ?2)
                   AND (?3 IS NULL OR EXISTS (SELECT 1 FROM json_each(audit.hosts)
                                              WHERE json_each.value = ?3))
                 ORDER BY id DESC LIMIT ?4",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(
                params![
                    q.before.map(|b| b.min(i64::MAX as u64) as i64),
                    q.action,
                    q.host,
                    limit
                ],
                |r| {
                    let client: Option<String> = r.get(3)?;
                    let hosts: String = r.get(7)?;
                    let results: Option<String> = r.get(9)?;
                    Ok(AuditEntry {
                        id: r.get::<_, i64>(0)? as u64,
                        event: AuditEvent {
                            at_ms: r.get::<_, i64>(1)? as u64,
                            actor: r.get(2)?,
                            client: client.and_then(|c| c.parse().ok()),
                            action: r.get(4)?,
                            target: r.get(5)?,
                            role: r.get(6)?,
                            hosts: serde_json::from_str(&hosts).unwrap_or_default(),
                            outcome: r.get(8)?,
                            results: results.and_then(|r| serde_json::from_str(&r).ok()),
                        },
                    })
                },
            )
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(db_err)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_made_found_listed_and_revoked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Access::open(&dir.path().join("smon.sqlite3")).expect("open");
        let t = a.create("ci", Role::Admin, 1_000, "cli").expect("create");
        assert!(matches!(
            a.create("ci", Role::Viewer, 1_001, "cli"),
            Err(TokenError::Exists(_))
        ));
        assert!(matches!(
            a.create("a b", Role::Viewer, 1_001, "cli"),
            Err(TokenError::InvalidName(_))
        ));
        let found = a.find(&tokens::hash(&t), 70_000).expect("find");
        assert_eq!(
            found,
            Some(TokenInfo {
                name: "ci".into(),
                role: Role::Admin
            })
        );
        assert_eq!(a.find(&tokens::hash("smon_wrong"), 70_000), Ok(None));
        let list = a.list().expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_used_ms, Some(70_000));
        assert_eq!(list[0].created_ms, 1_000);
        // Neither the token nor its hash is stored anywhere readable but the hash column.
        assert!(!format!("{list:?}").contains(&t));
        a.revoke("ci", 80_000, "cli").expect("revoke");
        assert_eq!(a.find(&tokens::hash(&t), 90_000), Ok(None));
        assert!(matches!(
            a.revoke("ci", 80_000, "cli"),
            Err(TokenError::NotFound(_))
        ));
        let actions: Vec<String> = a
            .query(&AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            })
            .expect("audit")
            .into_iter()
            .map(|e| e.event.action)
            .collect();
        assert_eq!(actions, ["token.revoke", "token.create"]);
    }

    #[test]
    fn audit_rows_round_trip_and_filter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Access::open(&dir.path().join("smon.sqlite3")).expect("open");
        let wake = AuditEvent {
            client: Some("10.0.0.7".parse().expect("ip")),
            hosts: vec!["lab:n1".into(), "lab:n2".into()],
            outcome: "1 of 2 failed".into(),
            results: Some(serde_json::json!([{"host": "lab:n1", "ok": true}])),
            ..AuditEvent::new(5, "token:ci", "wake")
        };
        let add = AuditEvent {
            target: "bob".into(),
            role: Some("viewer".into()),
            ..AuditEvent::new(6, "admin", "add_user")
        };
        a.record(&wake).expect("wake");
        a.record(&add).expect("add");
        let q = |q: AuditQuery| -> Vec<AuditEvent> {
            a.query(&AuditQuery { limit: 10, ..q })
                .expect("query")
                .into_iter()
                .map(|e| e.event)
                .collect()
        };
        assert_eq!(q(AuditQuery::default()), [add.clone(), wake.clone()]);
        let by_host = AuditQuery {
            host: Some("lab:n2".into()),
            ..AuditQuery::default()
        };
        assert_eq!(q(by_host), std::slice::from_ref(&wake));
        let not_a_host = AuditQuery {
            host: Some("lab:n".into()),
            ..AuditQuery::default()
        };
        assert!(q(not_a_host).is_empty());
        let by_action = AuditQuery {
            action: Some("add_user".into()),
            ..AuditQuery::default()
        };
        assert_eq!(q(by_action), [add]);
        let first = a.query(&AuditQuery {
            limit: 1,
            ..AuditQuery::default()
        });
        let id = first.expect("page")[0].id;
        let older = AuditQuery {
            before: Some(id),
            ..AuditQuery::default()
        };
        assert_eq!(q(older), [wake]);
    }
}
