//! What the reachability routes (`web/PROTOCOL.md`, "Reachability") ask of the server's
//! checker: the [`ReachService`] trait, held in [`crate::state::Web::reach`]. The aggregator
//! implements it over its checker (pings and TCP connects); smon-web never depends on it.

use smon_api::reach::{ReachAnswer, ReachResult};

/// Why a reachability request was refused; each becomes an HTTP status with the sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReachError {
    /// No such host (404).
    #[error("{0}")]
    NotFound(String),
    /// The server failed (the database): 500.
    #[error("{0}")]
    Internal(String),
}

/// The server's reachability checker, as the routes use it.
#[async_trait::async_trait]
pub trait ReachService: Send + Sync {
    /// Checks host `id` now (its ping and services, each within its timeout) and answers
    /// the result, which also becomes the host's last result.
    async fn check(&self, id: &str) -> Result<ReachResult, ReachError>;
    /// The host's last result and its last transitions, newest first. May block (the
    /// database): the route calls it off the async threads.
    fn status(&self, id: &str, limit: u32) -> Result<ReachAnswer, ReachError>;
}
