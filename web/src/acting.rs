//! What the action routes (`web/PROTOCOL.md`, "Actions") ask of the server: the
//! [`ActionsService`] trait, held in [`crate::state::Web::actions`]. The aggregator implements
//! it over its registry and the agents' command links; smon-web never depends on those.

use smon_api::actions::{Action, ActionResult, Selection};

/// Why an action could not be done on a host; each becomes an HTTP status with the sentence
/// (and `ok: false` with the sentence in a group's results).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// Bad input (400).
    #[error("{0}")]
    Invalid(String),
    /// No such host (404).
    #[error("{0}")]
    NotFound(String),
    /// The host is not set up for it (409): no MAC, no control token, power off.
    #[error("{0}")]
    NotSetUp(String),
    /// The agent is not connected, or refused or failed the call (502).
    #[error("{0}")]
    Agent(String),
    /// The server failed to do it (500): a socket error sending a packet.
    #[error("{0}")]
    Internal(String),
}

/// The server's actions on hosts, as the routes use them.
#[async_trait::async_trait]
pub trait ActionsService: Send + Sync {
    /// Does `action` on the host `id`.
    async fn act(&self, action: Action, id: &str) -> Result<ActionResult, ActionError>;
    /// The host ids `sel` names, in order (unknown ids, tags and clusters refused).
    fn select(&self, sel: &Selection) -> Result<Vec<String>, ActionError>;
}
