//! What the action routes (`web/PROTOCOL.md`, "Actions") ask of the server: the
//! [`ActionsService`] trait, held in [`crate::state::Web::actions`]. The aggregator implements
//! it over its registry and the agents' command links; smon-web never depends on those.

use smon_api::actions::{Action, ActionResult, Selection};
pub use smon_api::applications::{AppActionResult, AppVerb, DeclaredApp};
pub use smon_api::programs::{
    LogTail, ProgramResult, ProgramState, ProgramVerb, ProgramsAnswer, SignalKind, SignalResult,
};

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

/// The server's control of hosts' supervisord programs and processes, through their agents
/// (`web/PROTOCOL.md`, "Programs and signals").
#[async_trait::async_trait]
pub trait ProgramsService: Send + Sync {
    /// Starts, stops or restarts the program `name` (`group:name`, `group:*`) of host `id`.
    async fn program(
        &self,
        id: &str,
        verb: ProgramVerb,
        name: &str,
    ) -> Result<ProgramResult, ActionError>;
    /// The last `bytes` (0: the agent's default, 16 KiB) of the program `name`'s stdout, or
    /// with `stderr` its stderr; with `from` (a previous [`LogTail::offset`]) only what was
    /// written since, at most `bytes` of it (a live view follows the log this way).
    async fn tail_log(
        &self,
        id: &str,
        name: &str,
        stderr: bool,
        bytes: u32,
        from: Option<u64>,
    ) -> Result<LogTail, ActionError>;
    /// Sends `signal` to the process `pid` of host `id`.
    async fn signal(
        &self,
        id: &str,
        pid: u32,
        signal: SignalKind,
    ) -> Result<SignalResult, ActionError>;
}

/// The server's declared applications (`applications[]` in `config_app.json`,
/// `web/PROTOCOL.md`, "Applications"): what they are doing, and starting or stopping them.
#[async_trait::async_trait]
pub trait ApplicationsService: Send + Sync {
    /// The declared applications now, in configuration order.
    fn declared(&self) -> Vec<DeclaredApp>;
    /// Does `verb` on the application `name`, or on every declared application with `None`
    /// (starts in `start_after` order, stops in reverse); `by` names who asked, for the logs.
    async fn act(
        &self,
        name: Option<&str>,
        verb: AppVerb,
        by: &str,
    ) -> Result<AppActionResult, ActionError>;
}
