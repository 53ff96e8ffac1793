//! What can go wrong with the database.

use std::path::PathBuf;

/// A database error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage directory could not be made or used.
    #[error("cannot use the storage directory {dir}: {source}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The schema could not be brought up to date.
    #[error("database {path}: schema migration failed: {source}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite_migration::Error,
    },
    /// A file beside the database (a backup's copy) could not be written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A stored block could not be decoded (a damaged file, or one from a newer smon).
    #[error("a stored block could not be decoded: {0}")]
    Codec(String),
    /// A query asked for something that cannot be answered (a range that ends before it
    /// starts, an unknown metric): the HTTP side answers 400 with this text.
    #[error("{0}")]
    BadQuery(String),
}

impl Error {
    /// Whether this is SQLite saying the disk (or the quota) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Sqlite {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => e.code == rusqlite::ErrorCode::DiskFull,
            Error::Dir { source, .. } | Error::File { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
            }
            _ => false,
        }
    }
}
