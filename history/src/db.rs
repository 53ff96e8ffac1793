//! Opening the database: WAL, the pragmas every connection needs, and the schema migrations
//! (`rusqlite_migration`, the schema version in SQLite's `user_version`). Each feature keeps its
//! tables in its own migration file under `history/migrations/`; a new feature appends one,
//! never edits one that has shipped.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};

use crate::Error;

/// The database file's name in `storage.dir`.
pub const FILE_NAME: &str = "smon.sqlite3";

/// The schema, in order.
static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![
        M::up(include_str!("../migrations/0001_metrics.sql")),
        M::up(include_str!("../migrations/0002_processes.sql")),
        M::up(include_str!("../migrations/0003_outbox.sql")),
        M::up(include_str!("../migrations/0004_alerts.sql")),
        M::up(include_str!("../migrations/0005_tokens_audit.sql")),
        M::up(include_str!("../migrations/0006_reach.sql")),
        M::up(include_str!("../migrations/0007_inventory.sql")),
        M::up(include_str!("../migrations/0008_gpu_uuid.sql")),
    ])
});

/// How long a connection waits for another's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// Opens (creating it and its directory when missing) the database at `path` for writing, in
/// WAL mode, with the schema brought up to date. Only the writer holds such a connection.
pub fn open_writer(path: &Path) -> Result<Connection, Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // A directory made here is the owner's alone; one that exists keeps its mode (the
        // Debian unit's StateDirectoryMode).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| Error::Dir {
                dir: dir.to_owned(),
                source,
            })?;
    }
    let mut conn = Connection::open(path).map_err(sqlite(path))?;
    // Command lines, user names and login sessions are in it: readable by the owner only
    // (SQLite gives the -wal and -shm files the database's mode). A file of another owner
    // keeps its mode, said once here.
    if let Err(e) = private(path) {
        tracing::warn!(error = %e, "Cannot make the history database readable by its owner only.");
    }
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite(path))?;
    // WAL: readers never block the writer, and a crash loses at most the transactions not
    // yet committed. NORMAL: a commit is durable once the WAL is synced at a checkpoint; a
    // power cut may lose the last commits, never corrupt the file.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite(path))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sqlite(path))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sqlite(path))?;
    MIGRATIONS
        .to_latest(&mut conn)
        .map_err(|source| Error::Migration {
            path: path.to_owned(),
            source,
        })?;
    Ok(conn)
}

/// Makes `path` readable and writable by its owner only.
pub(crate) fn private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        Error::File {
            path: path.to_owned(),
            source,
        }
    })
}

/// Opens the database at `path` read-only (it must exist: the writer made it).
pub fn open_reader(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(path))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite(path))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(MIGRATIONS.validate().is_ok());
    }

    #[test]
    fn opening_twice_keeps_the_schema_and_uses_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join(FILE_NAME);
        drop(open_writer(&path).expect("first open"));
        let conn = open_writer(&path).expect("second open");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        let r = open_reader(&path).expect("reader");
        let v: i64 = r
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert!(v >= 2, "schema version {v}");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600, "the database");
        assert_eq!(
            mode(&dir.path().join("sub")),
            0o700,
            "a directory made for it"
        );
        assert_eq!(
            mode(&dir.path().join("sub").join("smon.sqlite3-wal")),
            0o600
        );
    }
}
