//! What the aggregator library fails with: one enum, so that the binary (and a test) can tell a
//! refused users file from a failed listener without parsing text.

/// Why the aggregator could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener's own address could not be read.
    #[error("cannot read the listener's address")]
    LocalAddr(#[source] std::io::Error),
    /// The users could not be loaded (or the first `admin` made), or nobody could log in.
    #[error("{file}: {error}")]
    Security {
        /// The config file.
        file: String,
        /// What went wrong.
        error: smon_web::security::StartError,
    },
    /// The own host's sampler (`monitor.include_self`) could not start.
    #[error("the own host's sampler cannot start")]
    Sampler(#[source] smon_collect::CollectError),
    /// The history database (`storage.dir`) could not be opened.
    #[error(
        "the history database cannot be opened (storage.dir; set storage.enabled to false to run without history)"
    )]
    History(#[source] smon_history::Error),
    /// The login sessions could not be kept in the database.
    #[error(transparent)]
    Sessions(#[from] smon_web::security::sessions::SessionDbError),
    /// The API tokens' and the audit's tables could not be opened.
    #[error("the API tokens and the audit log cannot be kept in the database")]
    Access(#[source] crate::access::TokenError),
    /// Alerting could not start (its tables in the database, the outbox).
    #[error(transparent)]
    Alerts(#[from] crate::alerts::StartError),
    /// The reachability checker could not start (its table in the database).
    #[error("reachability checks cannot start: {0}")]
    Reach(String),
    /// The inventory (the hosts made in the UI, in the database) could not be read.
    #[error(transparent)]
    Inventory(#[from] crate::inventory::StartError),
    /// Remote write could not start.
    #[error(transparent)]
    RemoteWrite(crate::remote_write::StartError),
    /// The HTTP server failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// The HTTP server's task ended abnormally.
    #[error("the HTTP server's task failed")]
    ServeTask(#[source] tokio::task::JoinError),
}

impl From<smon_web::database::OpenError> for Error {
    fn from(e: smon_web::database::OpenError) -> Self {
        match e {
            smon_web::database::OpenError::History(e) => Self::History(e),
            smon_web::database::OpenError::Sessions(e) => Self::Sessions(e),
        }
    }
}
