//! What can go wrong while collecting. A collector that fails in part still returns what it
//! could read; its problems become [`CollectError`]s, and the snapshot carries them as text
//! (turned into strings in one place, `Collector::sample`, because the wire has strings).

use std::path::PathBuf;

/// A problem met while building a collector or taking a sample.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A system-wide query failed (sysinfo could not read a table).
    #[error("cannot {what}: {error}")]
    System {
        /// What was being done, e.g. `list network interfaces`.
        what: &'static str,
        /// What the OS layer said.
        error: sysinfo::Error,
    },
    /// A file or directory of the OS (under `/proc`, or the utmp file) could not be read.
    #[error("{area}: {}: {error}", path.display())]
    Read {
        /// The resource, e.g. `processes`.
        area: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the read said.
        error: std::io::Error,
    },
    /// A utmp record could not be parsed and was skipped.
    #[error("sessions: {}: skipped a record: {detail}", path.display())]
    SessionRecord {
        /// The utmp file.
        path: PathBuf,
        /// What was wrong with the record.
        detail: String,
    },
    /// `statvfs` of a mount answered with an error.
    #[error("disks: {mount}: statvfs failed: {error}")]
    Statvfs {
        /// The mount point.
        mount: String,
        /// What `statvfs` said.
        error: std::io::Error,
    },
    /// `statvfs` of a mount did not answer within its deadline (a hung network mount).
    #[error("disks: {mount}: statvfs timed out; mount unresponsive")]
    StatvfsTimedOut {
        /// The mount point.
        mount: String,
    },
    /// An earlier `statvfs` of this mount has still not returned, and no size is known yet.
    #[error("disks: {mount}: statvfs still blocked")]
    StatvfsBlocked {
        /// The mount point.
        mount: String,
    },
    /// A helper thread could not be started.
    #[error("{area}: cannot start the {thread} thread: {error}")]
    Thread {
        /// The resource, e.g. `disks`.
        area: &'static str,
        /// Which thread.
        thread: &'static str,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The sampler thread ended before it had built its collector (it panicked).
    #[error("the sampler thread stopped while starting")]
    SamplerStopped,
    /// The GPU source failed.
    #[error("gpus: {0}")]
    Gpu(#[from] crate::gpus::GpuError),
}
