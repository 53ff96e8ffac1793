//! The persistent outbox: the `outbox` table of smon's database (migration
//! `history/migrations/0003_outbox.sql`), one row per notification and channel, committed
//! before any attempt and deleted once delivered; rows older than the channel's age limit
//! move to `outbox_dropped`, where the UI can show them. Synchronous SQLite calls: the
//! notifier runs them off the async threads.
//!
//! The outbox opens its own connection to the database file the history writer uses; WAL and
//! the busy timeout (`smon_history::db::open_writer`) let both write.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use smon_api::alerts::Notification;

use crate::Error;

/// A notification waiting for a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The row (the order of the channel's queue).
    pub row: i64,
    /// The notification.
    pub notification: Notification,
    /// When it was queued (ms since the epoch).
    pub created_ms: u64,
    /// Attempts so far.
    pub attempts: u32,
    /// No attempt before this (ms since the epoch).
    pub next_ms: u64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A notification given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// The channel.
    pub channel: String,
    /// The notification's id.
    pub notification_id: String,
    /// When it was queued (ms since the epoch).
    pub created_ms: u64,
    /// When it was dropped.
    pub dropped_ms: u64,
    /// Attempts made.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// The outbox table.
#[derive(Debug)]
pub struct Outbox {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// How long dropped notifications are listed.
const DROPPED_KEPT_MS: u64 = 30 * 86_400_000;

/// A row as `move_to_dropped` reads it.
type Row = (i64, String, String, String, i64, i64, Option<String>);

fn ms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Outbox {
    /// Opens (creating it when missing, with the schema brought up to date) the database at
    /// `path`: smon's database file (`storage.dir/smon.sqlite3`).
    pub fn open(path: &Path) -> Result<Self, Error> {
        let conn = match smon_history::db::open_writer(path) {
            // The history writer opening the same new file at the same instant may have
            // applied a migration this connection then tried too: once more finds it done.
            Err(smon_history::Error::Migration { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(200));
                smon_history::db::open_writer(path)?
            }
            other => other?,
        };
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, Error> {
        // A poisoned lock means a panic inside a statement: the connection itself is fine.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|source| Error::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Queues `n` for each of `channels` in one transaction; a notification already queued
    /// for a channel (same id) is not queued twice. Returns the channels it was queued for.
    pub fn enqueue(
        &self,
        n: &Notification,
        channels: &[&str],
        now_ms: u64,
    ) -> Result<Vec<String>, Error> {
        let body = serde_json::to_string(n)?;
        self.with(|c| {
            let tx = c.transaction()?;
            let mut added = Vec::new();
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR IGNORE INTO outbox (channel, notification_id, body, created_ms, next_ms)
                     VALUES (?1, ?2, ?3, ?4, ?4)",
                )?;
                for ch in channels {
                    if st.execute(params![ch, n.id, body, sql(now_ms)])? == 1 {
                        added.push((*ch).to_owned());
                    }
                }
            }
            tx.commit()?;
            Ok(added)
        })
    }

    /// The oldest notification waiting for `channel`. A row that no longer parses (a damaged
    /// file) is moved to the dropped list with that reason.
    pub fn head(&self, channel: &str, now_ms: u64) -> Result<Option<Entry>, Error> {
        loop {
            let row = self.with(|c| {
                c.prepare_cached(
                    "SELECT id, body, created_ms, attempts, next_ms, last_error FROM outbox
                     WHERE channel = ?1 ORDER BY id LIMIT 1",
                )?
                .query_row(params![channel], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                })
                .optional()
            })?;
            let Some((row, body, created, attempts, next, last_error)) = row else {
                return Ok(None);
            };
            match serde_json::from_str::<Notification>(&body) {
                Ok(notification) => {
                    return Ok(Some(Entry {
                        row,
                        notification,
                        created_ms: ms(created),
                        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                        next_ms: ms(next),
                        last_error,
                    }));
                }
                Err(e) => {
                    self.set_error(row, &format!("unreadable row: {e}"))?;
                    self.move_to_dropped("id = ?1", params![row], now_ms)?;
                }
            }
        }
    }

    fn set_error(&self, row: i64, error: &str) -> Result<(), Error> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET last_error = ?2 WHERE id = ?1",
                params![row, error],
            )
            .map(drop)
        })
    }

    /// The row was delivered.
    pub fn delivered(&self, row: i64) -> Result<(), Error> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute(params![row])
                .map(drop)
        })
    }

    /// An attempt failed: count it, keep the reason, and try again at `next_ms`.
    pub fn failed(&self, row: i64, next_ms: u64, error: &str) -> Result<(), Error> {
        self.with(|c| {
            c.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_ms = ?2, last_error = ?3 WHERE id = ?1",
            )?
            .execute(params![row, sql(next_ms), error])
            .map(drop)
        })
    }

    /// Moves the rows of `channel` queued before `before_ms` to the dropped list; returns them.
    pub fn drop_expired(
        &self,
        channel: &str,
        before_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<Dropped>, Error> {
        self.move_to_dropped(
            "channel = ?1 AND created_ms < ?2",
            params![channel, sql(before_ms)],
            now_ms,
        )
    }

    fn move_to_dropped(
        &self,
        cond: &str,
        p: &[&dyn rusqlite::ToSql],
        now_ms: u64,
    ) -> Result<Vec<Dropped>, Error> {
        self.with(|c| {
            let tx = c.transaction()?;
            let rows: Vec<Row> = {
                let mut st = tx.prepare(&format!(
                    "SELECT id, channel, notification_id, body, created_ms, attempts, last_error
                     FROM outbox WHERE {cond} ORDER BY id"
                ))?;
                st.query_map(p, |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::new();
            for (id, channel, nid, body, created, attempts, last_error) in rows {
                tx.execute(
                    "INSERT INTO outbox_dropped
                     (channel, notification_id, body, created_ms, dropped_ms, attempts, last_error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        channel,
                        nid,
                        body,
                        created,
                        sql(now_ms),
                        attempts,
                        last_error
                    ],
                )?;
                tx.execute("DELETE FROM outbox WHERE id = ?1", params![id])?;
                out.push(Dropped {
                    channel,
                    notification_id: nid,
                    created_ms: ms(created),
                    dropped_ms: now_ms,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    last_error,
                });
            }
            if !out.is_empty() {
                // The dropped list is for the UI: a month of it is kept.
                tx.execute(
                    "DELETE FROM outbox_dropped WHERE dropped_ms < ?1",
                    params![sql(now_ms.saturating_sub(DROPPED_KEPT_MS))],
                )?;
            }
            tx.commit()?;
            Ok(out)
        })
    }

    /// How many notifications wait for `channel`.
    pub fn queued(&self, channel: &str) -> Result<u64, Error> {
        self.with(|c| {
            c.prepare_cached("SELECT count(*) FROM outbox WHERE channel = ?1")?
                .query_row(params![channel], |r| r.get::<_, i64>(0))
                .map(ms)
        })
    }

    /// Records what an `alertmanager` channel delivered: each `(labels, Some(alert))` is
    /// firing (sent again until it resolves), each `(labels, None)` resolved.
    pub fn alertmanager_delivered(
        &self,
        channel: &str,
        alerts: &[(String, Option<serde_json::Value>)],
    ) -> Result<(), Error> {
        self.with(|c| {
            let tx = c.transaction()?;
            for (labels, alert) in alerts {
                match alert {
                    Some(a) => tx.execute(
                        "INSERT OR REPLACE INTO outbox_alertmanager_active (channel, labels, body)
                         VALUES (?1, ?2, ?3)",
                        params![channel, labels, a.to_string()],
                    )?,
                    None => tx.execute(
                        "DELETE FROM outbox_alertmanager_active WHERE channel = ?1 AND labels = ?2",
                        params![channel, labels],
                    )?,
                };
            }
            tx.commit()
        })
    }

    /// The alerts an `alertmanager` channel sends again (firing, not yet resolved).
    pub fn alertmanager_active(&self, channel: &str) -> Result<Vec<serde_json::Value>, Error> {
        let bodies: Vec<String> = self.with(|c| {
            c.prepare_cached(
                "SELECT body FROM outbox_alertmanager_active WHERE channel = ?1 ORDER BY labels",
            )?
            .query_map(params![channel], |r| r.get(0))?
            .collect()
        })?;
        // A row that does not parse is skipped: the next firing notification rewrites it.
        Ok(bodies
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect())
    }

    /// The latest `limit` notifications dropped for `channel`, newest first.
    pub fn dropped(&self, channel: &str, limit: u32) -> Result<Vec<Dropped>, Error> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT channel, notification_id, created_ms, dropped_ms, attempts, last_error
                 FROM outbox_dropped WHERE channel = ?1 ORDER BY id DESC LIMIT ?2",
            )?
            .query_map(params![channel, limit], |r| {
                Ok(Dropped {
                    channel: r.get(0)?,
                    notification_id: r.get(1)?,
                    created_ms: ms(r.get(2)?),
                    dropped_ms: ms(r.get(3)?),
                    attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
                    last_error: r.get(5)?,
                })
            })?
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smon_api::alerts::{AlertStatus, Severity};

    fn n(id: &str) -> Notification {
        Notification {
            id: id.into(),
            status: AlertStatus::Firing,
            rule: "r".into(),
            severity: Severity::Warning,
            alerts: vec![],
            repeat: false,
            at_ms: 1,
            link: None,
        }
    }

    #[test]
    fn queue_order_retry_and_drop_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("smon.sqlite3");
        let o = Outbox::open(&path).expect("open");
        assert_eq!(
            o.enqueue(&n("a"), &["x", "y"], 100).expect("enqueue"),
            ["x", "y"]
        );
        assert!(
            o.enqueue(&n("a"), &["x"], 150).expect("again").is_empty(),
            "no duplicate"
        );
        o.enqueue(&n("b"), &["x"], 200).expect("enqueue");
        let h = o.head("x", 300).expect("head").expect("some");
        assert_eq!((h.notification.id.as_str(), h.attempts), ("a", 0));
        o.failed(h.row, 5_000, "refused").expect("failed");
        drop(o);
        let o = Outbox::open(&path).expect("reopen");
        let h = o.head("x", 300).expect("head").expect("some");
        assert_eq!(
            (
                h.notification.id.as_str(),
                h.attempts,
                h.next_ms,
                h.last_error.as_deref()
            ),
            ("a", 1, 5_000, Some("refused"))
        );
        o.delivered(h.row).expect("delivered");
        assert_eq!(o.queued("x").expect("queued"), 1);
        let d = o.drop_expired("x", 250, 9_000).expect("drop");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].notification_id, "b");
        assert!(o.head("x", 9_000).expect("head").is_none());
        assert_eq!(o.dropped("x", 10).expect("dropped"), d);
        assert_eq!(o.queued("y").expect("queued"), 1);
    }

    #[test]
    fn another_writer_on_the_file_delays_an_enqueue_but_does_not_fail_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("smon.sqlite3");
        let o = Outbox::open(&path).expect("open");
        // The history writer's connection, in the middle of a write transaction.
        let other = smon_history::db::open_writer(&path).expect("second writer");
        other
            .execute_batch("BEGIN IMMEDIATE; CREATE TABLE busy (x); INSERT INTO busy VALUES (1);")
            .expect("hold the write lock");
        let held = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            other.execute_batch("COMMIT").expect("commit");
        });
        let t0 = std::time::Instant::now();
        o.enqueue(&n("a"), &["x"], 1)
            .expect("enqueued once the lock is free");
        assert!(t0.elapsed() >= std::time::Duration::from_millis(250));
        held.join().expect("join");
        assert_eq!(o.queued("x").expect("queued"), 1);
    }

    #[test]
    fn alertmanager_active_alerts_are_kept_until_resolved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Outbox::open(&dir.path().join("db")).expect("open");
        let a = serde_json::json!({"labels": {"host": "a"}});
        let b = serde_json::json!({"labels": {"host": "b"}});
        o.alertmanager_delivered(
            "am",
            &[("a".into(), Some(a.clone())), ("b".into(), Some(b.clone()))],
        )
        .expect("firing");
        assert_eq!(o.alertmanager_active("am").expect("active"), [a.clone(), b]);
        o.alertmanager_delivered("am", &[("b".into(), None)])
            .expect("resolved");
        assert_eq!(o.alertmanager_active("am").expect("active"), [a]);
        assert!(o.alertmanager_active("other").expect("active").is_empty());
    }

    #[test]
    fn an_unreadable_row_is_dropped_with_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Outbox::open(&dir.path().join("db")).expect("open");
        o.enqueue(&n("a"), &["x"], 1).expect("enqueue");
        o.with(|c| c.execute("UPDATE outbox SET body = 'nope'", []).map(drop))
            .expect("damage");
        assert!(o.head("x", 2).expect("head").is_none());
        let d = o.dropped("x", 1).expect("dropped");
        assert!(
            d[0].last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("unreadable row")),
            "{d:?}"
        );
    }
}
