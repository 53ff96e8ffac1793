//! The history consumer: a consumer of the event [`feed`](crate::feed) that hands every host's
//! samples ([`Body::Sample`]) and its top processes once a minute ([`Body::Processes`]) to the
//! history writer (`smon_history::writer`), which owns the database's only writing connection
//! on its own thread.
//!
//! The consumer only moves shared values (`Arc`) from one queue to the other, never touching
//! SQLite, so it keeps up with any fleet the feed does; what the writer cannot take (its queue
//! full, the disk full) is dropped there and counted (`smon_history_*` in `/metrics`), and the
//! live view (the store consumer) never waits for it.

use std::sync::Arc;

use smon_history::writer::{Write, Writer};
use tokio_util::sync::CancellationToken;

use crate::feed::{Body, Event, Kinds, Subscription};

/// The feed kinds the history wants: samples (with the rest of what pollers publish, ignored)
/// and the per-minute top processes.
pub const KINDS: Kinds = Kinds::POLL.with(Kinds::PROCESSES);

/// Queue length of the history consumer on the feed: several seconds of samples of a large
/// fleet (a queue takes memory only as it fills).
pub const QUEUE: usize = 65_536;

/// Most events moved per wake-up.
const BATCH: usize = 1024;

/// Where the consumer hands what to store: the history writer, or a test's channel. Never
/// waits: a full writer drops and counts.
pub trait Sink: Send + 'static {
    /// Hands `w` over.
    fn send(&self, w: Write);
}

impl Sink for Arc<Writer> {
    fn send(&self, w: Write) {
        // A full queue is counted by the writer (smon_history_dropped_total).
        let _ = Writer::send(self, w);
    }
}

/// Why `smon-aggregator backup` could not make its copy.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// History is off in the config: there is no database.
    #[error("{file}: storage.enabled is false: there is no history database to back up")]
    Off {
        /// The config that says so.
        file: String,
    },
    /// The database is not there (the aggregator has not run with this `storage.dir`).
    #[error("no database at {0}: has the aggregator run with this config (storage.dir)?")]
    Missing(std::path::PathBuf),
    /// The copy failed.
    #[error("the backup failed")]
    Copy(#[source] smon_history::Error),
}

/// `smon-aggregator backup`: an online, consistent copy of the database of `settings` to
/// `out` (refused when `out` exists), while the server may be writing it. Returns the
/// database's path.
pub fn backup(
    settings: &crate::config::Settings,
    out: &std::path::Path,
) -> Result<std::path::PathBuf, BackupError> {
    let opts = settings.storage.as_ref().ok_or_else(|| BackupError::Off {
        file: settings.source.clone(),
    })?;
    let db = opts.db_path();
    if !db.exists() {
        return Err(BackupError::Missing(db));
    }
    smon_history::admin::backup(&db, out, false).map_err(BackupError::Copy)?;
    Ok(db)
}

/// What of `event` goes to the history, if anything.
pub fn to_write(event: &Event) -> Option<Write> {
    match &event.body {
        Body::Sample { host, snapshot } => Some(Write::Sample {
            host: host.clone(),
            at_ms: event.at_ms,
            snapshot: snapshot.clone(),
        }),
        Body::Processes { host, snapshot } => Some(Write::Processes {
            host: host.clone(),
            at_ms: event.at_ms,
            snapshot: snapshot.clone(),
        }),
        Body::Connected { .. }
        | Body::Unreachable { .. }
        | Body::State { .. }
        | Body::Registry(_)
        | Body::Alert { .. }
        | Body::Reach { .. }
        | Body::Program { .. }
        | Body::Application { .. } => None,
    }
}

/// Hands the events of `sub` to `sink` until `stop` (or the feed is gone); at `stop`, what
/// is already queued is handed over too, so that a clean stop loses no sample.
pub async fn run(mut sub: Subscription, sink: impl Sink, stop: CancellationToken) {
    let mut buf = Vec::with_capacity(BATCH);
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => {
                while let Some(event) = sub.try_recv() {
                    if let Some(w) = to_write(&event) {
                        sink.send(w);
                    }
                }
                return;
            }
            n = sub.recv_many(&mut buf, BATCH) => if n == 0 { return },
        }
        for event in buf.drain(..) {
            if let Some(w) = to_write(&event) {
                sink.send(w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::mpsc;

    use smon_proto::Snapshot;

    use super::*;
    use crate::feed::{Feed, RegistryChange};

    struct Chan(mpsc::Sender<Write>);

    impl Sink for Chan {
        fn send(&self, w: Write) {
            self.0.send(w).expect("test receiver alive");
        }
    }

    // Multi-threaded: the test blocks on the std channel while the consumer runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn samples_and_processes_reach_the_writer_in_order_and_nothing_else() {
        let feed = Feed::new();
        let sub = feed.subscribe("history", KINDS, QUEUE);
        let (tx, rx) = mpsc::channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(sub, Chan(tx), stop.clone()));
        let snap = |seq| {
            Arc::new(Snapshot {
                seq,
                ..Snapshot::default()
            })
        };
        feed.publish(
            10,
            Body::Sample {
                host: "lab:a".into(),
                snapshot: snap(1),
            },
        );
        feed.publish(
            11,
            Body::Unreachable {
                host: "lab:b".into(),
                error: "down".into(),
            },
        );
        feed.publish(
            12,
            Body::Registry(RegistryChange::Removed {
                host: "lab:c".into(),
            }),
        );
        feed.publish(
            13,
            Body::Processes {
                host: "lab:a".into(),
                snapshot: snap(2),
            },
        );
        let first = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the sample");
        let second = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the processes");
        match (first, second) {
            (
                Write::Sample {
                    host,
                    at_ms: 10,
                    snapshot,
                },
                Write::Processes {
                    host: h2,
                    at_ms: 13,
                    snapshot: s2,
                },
            ) => {
                assert_eq!((host.as_str(), snapshot.seq), ("lab:a", 1));
                assert_eq!((h2.as_str(), s2.seq), ("lab:a", 2));
            }
            other => panic!("unexpected writes {other:?}"),
        }
        // Queued when the stop comes: still handed over.
        feed.publish(
            14,
            Body::Sample {
                host: "lab:a".into(),
                snapshot: snap(3),
            },
        );
        stop.cancel();
        task.await.expect("consumer ends");
        let last: Vec<u64> = rx
            .try_iter()
            .map(|w| match w {
                Write::Sample { snapshot, .. } | Write::Processes { snapshot, .. } => snapshot.seq,
            })
            .collect();
        assert_eq!(last, [3], "the queued sample, and nothing else");
    }
}
