//! Where login sessions are kept: in memory (the agent's single-host view, tests), or in the
//! server's database, so that a restart logs nobody out (`tower-sessions-rusqlite-store`, its
//! own table `sessions` in the SQLite file of the history). Expired sessions are deleted once
//! a minute. What a session holds is server-side only (the cookie carries an id).

#[cfg(feature = "database")]
use std::path::Path;
#[cfg(feature = "database")]
use std::time::Duration;

#[cfg(feature = "database")]
use tokio_util::sync::CancellationToken;
use tower_sessions::MemoryStore;
use tower_sessions::session::{Id, Record};
#[cfg(feature = "database")]
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::session_store::{self, SessionStore};
#[cfg(feature = "database")]
use tower_sessions_rusqlite_store::{RusqliteStore, tokio_rusqlite};

/// The table of the database that holds the sessions.
#[cfg(feature = "database")]
const TABLE: &str = "sessions";

/// How often expired sessions are deleted from the database.
#[cfg(feature = "database")]
const DELETE_EXPIRED_EVERY: Duration = Duration::from_secs(60);

/// A session store: one of the two kinds.
#[derive(Debug, Clone)]
pub enum Sessions {
    /// In memory: lost on restart.
    Memory(MemoryStore),
    /// In the server's SQLite database.
    #[cfg(feature = "database")]
    Database(RusqliteStore),
}

impl Default for Sessions {
    fn default() -> Self {
        Self::Memory(MemoryStore::default())
    }
}

/// The session table could not be opened.
#[cfg(feature = "database")]
#[derive(Debug, thiserror::Error)]
#[error("cannot keep login sessions in {path}: {source}")]
pub struct SessionDbError {
    /// The database file.
    pub path: String,
    /// Why.
    #[source]
    pub source: tokio_rusqlite::Error,
}

#[cfg(feature = "database")]
impl Sessions {
    /// Sessions kept in the SQLite database at `path` (made by the history writer; WAL), in
    /// the table `sessions`, created when missing. Expired ones are deleted once a minute
    /// until `stop`.
    pub async fn open_database(
        path: &Path,
        stop: CancellationToken,
    ) -> Result<Self, SessionDbError> {
        let err = |source| SessionDbError {
            path: path.display().to_string(),
            source,
        };
        let conn = tokio_rusqlite::Connection::open(path)
            .await
            .map_err(|e| err(tokio_rusqlite::Error::Error(e)))?;
        conn.call(|c| {
            c.busy_timeout(Duration::from_secs(5))?;
            c.pragma_update(None, "journal_mode", "WAL")
        })
        .await
        .map_err(err)?;
        let store = RusqliteStore::new(conn)
            .with_table_name(TABLE)
            .unwrap_or_else(|_| unreachable!("a valid table name"));
        store.migrate().await.map_err(err)?;
        let sweeper = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(DELETE_EXPIRED_EVERY);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = sweeper.delete_expired().await {
                    tracing::warn!(error = %e, "Cannot delete expired login sessions.");
                }
            }
        });
        Ok(Self::Database(store))
    }
}

#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Memory(s) => s.create(record).await,
            #[cfg(feature = "database")]
            Self::Database(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Memory(s) => s.save(record).await,
            #[cfg(feature = "database")]
            Self::Database(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Memory(s) => s.load(id).await,
            #[cfg(feature = "database")]
            Self::Database(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Memory(s) => s.delete(id).await,
            #[cfg(feature = "database")]
            Self::Database(s) => s.delete(id).await,
        }
    }
}
