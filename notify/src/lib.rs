//! smon's notification channels and their persistent outbox (issue 13).
//!
//! The rule engine (`smon-alerts`) makes [`Notification`]s; this crate delivers them:
//!
//! - [`config`]: the `alerts.channels[]` list, checked at load ([`config::check`] /
//!   [`config::parse`]), secrets read from the config or `*_file`s and never shown
//!   ([`Channel::view`] is the API's redacted view).
//! - [`template`]: titles and bodies from minijinja templates (defaults, or a channel's own).
//! - [`payload`]: the JSON each service is sent (Slack, Discord, ntfy, Pushbullet, Telegram,
//!   Alertmanager), pure.
//! - [`send`]: one attempt on one channel (HTTP, SMTP, a command).
//! - [`outbox`]: the table in smon's SQLite database where notifications wait.
//! - [`notifier`]: [`Notifier`], the delivery tasks (retries, backoff, rate limit, age limit),
//!   the figures per channel and "send test".
//!
//! ```no_run
//! # async fn demo(cfg: serde_json::Value, n: smon_notify::Notification) -> Result<(), Box<dyn std::error::Error>> {
//! let (channels, _secret_files) = smon_notify::config::parse(&cfg, "alerts.channels", std::path::Path::new("/etc/smon"))
//!     .map_err(|e| format!("{e:?}"))?;
//! let notifier = smon_notify::Notifier::open(std::path::Path::new("/var/lib/smon/smon.sqlite3"), channels)?;
//! let (tracker, stop) = (tokio_util::task::TaskTracker::new(), tokio_util::sync::CancellationToken::new());
//! notifier.start(&tracker, stop.clone());
//! notifier.enqueue(&n, &["ops-slack".to_owned()]).await?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod notifier;
pub mod outbox;
pub mod payload;
pub mod secret;
pub mod send;
pub mod template;

pub use config::{Channel, ChannelConfig, ChannelView, Kind};
pub use notifier::{ChannelStats, Notifier, TestError};
pub use send::SendError;
pub use smon_api::alerts::Notification;

use std::path::PathBuf;

/// What can go wrong with the outbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] smon_history::Error),
    /// A statement failed.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A rule names a channel that does not exist.
    #[error("no channel is named '{}'", smon_runtime::config::printable(.0))]
    UnknownChannel(String),
    /// The notification could not be written as JSON.
    #[error("cannot write the notification as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The HTTP client could not be made (no TLS roots).
    #[error("cannot make the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// A database task panicked or was cancelled.
    #[error("a database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
