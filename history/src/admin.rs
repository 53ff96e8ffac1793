//! Administration of the database file: an online, consistent copy ([`backup`]) and the bytes
//! each table takes ([`sizes`], for the admin page's tiers).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use crate::{Error, db};

/// How long [`backup`] keeps retrying while the source is locked.
const BUSY_FOR: Duration = Duration::from_secs(30);

/// The bytes a table takes on disk, its indexes included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    /// The table (`sqlite_schema` for the schema itself).
    pub table: String,
    /// Bytes of its pages and its indexes' pages.
    pub bytes: u64,
}

fn file_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::File {
        path: path.to_owned(),
        source,
    }
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// `out` with `.tmp` appended (in the same directory, so the final rename is atomic).
fn temp_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Copies the database at `src` to `out` while it is in use, with SQLite's online backup API:
/// the copy is one consistent snapshot (taken in a single step under a read transaction,
/// which in WAL mode does not hold the writer up), written to `out.tmp`, synced, then renamed
/// to `out`, so `out` is either absent or complete. An existing `out` is refused unless
/// `overwrite`. The copy is a plain SQLite database: to restore it, stop the server and put it
/// in place of `smon.sqlite3` (removing any `smon.sqlite3-wal` and `-shm` left beside it).
pub fn backup(src: &Path, out: &Path, overwrite: bool) -> Result<(), Error> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(src, out) {
        return Err(Error::File {
            path: out.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "is the database itself; write the copy elsewhere",
            ),
        });
    }
    if !overwrite && out.exists() {
        return Err(Error::File {
            path: out.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists; not overwritten (remove it or ask to overwrite)",
            ),
        });
    }
    let tmp = temp_path(out);
    // A `.tmp` left by a backup that was killed is ours to replace.
    for stale in [
        tmp.clone(),
        PathBuf::from(format!("{}-journal", tmp.display())),
    ] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_err(&stale)(e)),
        }
    }
    let source = db::open_reader(src)?;
    let mut dest = Connection::open(&tmp).map_err(sqlite(&tmp))?;
    // The copy holds what the database holds (command lines, login sessions): owner only,
    // before a byte is copied.
    db::private(&tmp)?;
    {
        let copy = Backup::new(&source, &mut dest).map_err(sqlite(&tmp))?;
        let since = Instant::now();
        loop {
            // -1: every page in one step, so the copy is one snapshot of the source (a
            // multi-step copy restarts whenever the writer commits in between).
            match copy.step(-1).map_err(sqlite(&tmp))? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked if since.elapsed() < BUSY_FOR => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    return Err(Error::Sqlite {
                        path: src.to_owned(),
                        source: rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            Some(format!("still locked after {} s", BUSY_FOR.as_secs())),
                        ),
                    });
                }
            }
        }
    }
    dest.close().map_err(|(_, e)| sqlite(&tmp)(e))?;
    drop(source);
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(file_err(&tmp))?;
    std::fs::rename(&tmp, out).map_err(file_err(out))?;
    // The rename itself is durable once the directory is synced.
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(file_err(dir))?;
    }
    Ok(())
}

/// The bytes each table takes (its indexes included), largest first, from SQLite's `dbstat`
/// table (compiled into the bundled SQLite). It reads every page's header: about a second
/// per few GB, so callers cache it rather than run it per request.
pub fn sizes(conn: &Connection) -> Result<Vec<TableSize>, Error> {
    let e = |source| Error::Sqlite {
        path: conn.path().unwrap_or_default().into(),
        source,
    };
    let mut stmt = conn
        .prepare(
            "SELECT COALESCE(m.tbl_name, d.name) AS t, SUM(d.pgsize) AS bytes \
             FROM dbstat AS d LEFT JOIN sqlite_schema AS m ON m.name = d.name \
             WHERE d.aggregate = TRUE GROUP BY t ORDER BY bytes DESC, t",
        )
        .map_err(e)?;
    let rows = stmt
        .query_map([], |r| {
            let bytes: i64 = r.get(1)?;
            Ok(TableSize {
                table: r.get(0)?,
                bytes: u64::try_from(bytes).unwrap_or(0),
            })
        })
        .map_err(e)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(e)?;
    Ok(rows)
}

/// The bytes of the database file and its write-ahead log and shared-memory index beside it
/// (what `StorageAnswer.bytes` reports); files that are absent count 0.
pub fn file_bytes(db_path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut p = db_path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len())
        })
        .sum()
}
