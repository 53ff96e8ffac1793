//! The writer: one thread owns the only writing connection. The server hands it what to
//! store ([`Write`]); it batches them into transactions, rolls the tiers up and applies
//! retention.

use std::sync::Arc;

use smon_proto::Snapshot;

/// Something to store.
#[derive(Debug, Clone)]
pub enum Write {
    /// A host's sample (the summary parts): its metrics go to the raw tier.
    Sample {
        /// Host id (`cluster:name`).
        host: String,
        /// When the server received it (ms since the epoch).
        at_ms: u64,
        /// The sample.
        snapshot: Arc<Snapshot>,
    },
    /// A host's top processes and GPU processes, once a minute.
    Processes {
        /// Host id.
        host: String,
        /// When the server received it (ms since the epoch).
        at_ms: u64,
        /// A sample with the top processes (`Parts.top_processes`) and the GPU processes.
        snapshot: Arc<Snapshot>,
    },
}
