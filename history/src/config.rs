//! Where the database lives and how long each tier keeps its data (`storage` in the server's
//! config; parsed there, with the file/field/value errors of the config kit).

use std::path::PathBuf;
use std::time::Duration;

/// How long each tier keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Every sample (default 24 h).
    pub raw: Duration,
    /// 1-minute min/avg/max (default 90 days).
    pub minute: Duration,
    /// 1-hour min/avg/max (default 2 years).
    pub hour: Duration,
    /// Top processes and GPU processes, one set per host per minute (default 30 days).
    pub processes: Duration,
}

const DAY: u64 = 86_400;

impl Default for Retention {
    fn default() -> Self {
        Self {
            raw: Duration::from_secs(DAY),
            minute: Duration::from_secs(90 * DAY),
            hour: Duration::from_secs(730 * DAY),
            processes: Duration::from_secs(30 * DAY),
        }
    }
}

/// The storage settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOptions {
    /// The directory of the database (`history.sqlite3` in it).
    pub dir: PathBuf,
    /// Retention per tier.
    pub retention: Retention,
}

impl StorageOptions {
    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(crate::db::FILE_NAME)
    }
}
