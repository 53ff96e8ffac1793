//! The server's database, opened the same way by both daemons (the aggregator, and the
//! agent's single-host view when it keeps history): the history writer on its own thread, the
//! reader the history routes serve, the writer's state in `/metrics`, and the login sessions
//! kept in the same file so that a restart logs nobody out.

use std::sync::Arc;

use smon_history::StorageOptions;
use smon_history::reader::SqliteHistory;
use smon_history::writer::{Writer, WriterStats};
use tokio_util::sync::CancellationToken;

use crate::metrics::HistoryStats;
use crate::security::sessions::{SessionDbError, Sessions};
use crate::state::Web;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The history's file, directory or schema.
    #[error(transparent)]
    History(#[from] smon_history::Error),
    /// The sessions' table in it.
    #[error(transparent)]
    Sessions(#[from] SessionDbError),
}

/// Opens the database of `opts` (creating it and its directory, migrating its schema),
/// starts the writer thread, and serves it through `web`: the history routes read it, the
/// writer's state shows in `/metrics`, login sessions are kept in it (their expired rows
/// swept until `stop`). Returns `web` and the writer, which the daemon feeds and, at
/// shutdown, [`close`]s.
pub async fn open(
    mut web: Web,
    opts: &StorageOptions,
    stop: CancellationToken,
) -> Result<(Web, Arc<Writer>), OpenError> {
    let writer = Writer::start(opts.clone())?;
    let stats = writer.stats();
    let reader = SqliteHistory::open(opts, Some(stats.clone()))?;
    web.telemetry.history_source(move || metrics_of(&stats));
    tracing::info!(path = %writer.path().display(), "Keeping history.");
    web = web.with_history(Arc::new(reader));
    let sessions = Sessions::open_database(&opts.db_path(), stop).await?;
    web.security.keep_sessions(sessions);
    Ok((web, Arc::new(writer)))
}

/// The writer's counters as `/metrics` shows them.
fn metrics_of(s: &WriterStats) -> HistoryStats {
    HistoryStats {
        queued: s.queued(),
        dropped_total: s.dropped(),
        write_errors_total: s.failed(),
        disk_full: s.disk_full(),
    }
}

/// Commits what the writer holds and stops its thread (at shutdown, once whatever feeds it
/// has ended); blocks.
pub fn close(writer: Arc<Writer>) {
    match Arc::try_unwrap(writer) {
        Ok(w) => {
            if let Err(e) = w.stop() {
                tracing::warn!(error = %e, "The history's last batch could not be written.");
            }
        }
        // A feeder is still running (it did not stop in time): dropping the last handle
        // ends the thread instead.
        Err(w) => drop(w),
    }
}
