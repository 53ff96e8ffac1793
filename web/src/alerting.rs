//! What the alert routes (`web/PROTOCOL.md`, "Alerts") ask of the server's alerting: the
//! [`AlertsService`] trait, held in [`crate::state::Web::alerts`]. The aggregator implements
//! it over its rule engine, notifier and database; smon-web never depends on those.

use smon_api::alerts::{
    ActiveAlertView, AlertHistoryAnswer, AlertsAnswer, ChannelEntry, NewSilence, RuleEntry,
    RuleSpec, SilenceEntry,
};

/// Why an alerting operation was refused; each becomes an HTTP status with the sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertsError {
    /// Bad input (400): the sentence names the field and value.
    #[error("{0}")]
    Invalid(String),
    /// No such alert, rule, silence or channel (404).
    #[error("{0}")]
    NotFound(String),
    /// The thing comes from the config file and is read-only (403).
    #[error("{0}")]
    ReadOnly(String),
    /// The name is taken (409).
    #[error("{0}")]
    Conflict(String),
    /// A channel test that could not deliver (502).
    #[error("{0}")]
    Delivery(String),
    /// The server failed (the database): 500.
    #[error("{0}")]
    Internal(String),
}

/// A query of the alert history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only this rule.
    pub rule: Option<String>,
    /// Only this host id.
    pub host: Option<String>,
    /// From (ms since the epoch).
    pub from_ms: u64,
    /// To (ms since the epoch).
    pub to_ms: u64,
    /// At most this many events.
    pub limit: u32,
}

/// The server's alerting, as the routes use it. Methods may block (the database): the routes
/// call them off the async threads, apart from [`AlertsService::test_channel`].
#[async_trait::async_trait]
pub trait AlertsService: Send + Sync {
    /// The alerts firing and pending now.
    fn alerts(&self, now_ms: u64) -> AlertsAnswer;
    /// The alert history.
    fn history(&self, q: &HistoryQuery) -> Result<AlertHistoryAnswer, AlertsError>;
    /// Acknowledges the firing alert `id` as `by`.
    fn ack(&self, id: &str, by: &str, now_ms: u64) -> Result<ActiveAlertView, AlertsError>;
    /// Every rule (config first).
    fn rules(&self) -> Vec<RuleEntry>;
    /// Adds a rule made in the UI.
    fn add_rule(&self, rule: RuleSpec, by: &str, now_ms: u64) -> Result<RuleEntry, AlertsError>;
    /// Replaces the UI rule `name` (which `rule.name` may rename).
    fn update_rule(
        &self,
        name: &str,
        rule: RuleSpec,
        by: &str,
        now_ms: u64,
    ) -> Result<RuleEntry, AlertsError>;
    /// Removes the UI rule `name`.
    fn remove_rule(&self, name: &str, now_ms: u64) -> Result<(), AlertsError>;
    /// Every silence in force or to come.
    fn silences(&self, now_ms: u64) -> Vec<SilenceEntry>;
    /// Adds a silence.
    fn add_silence(
        &self,
        s: NewSilence,
        by: &str,
        now_ms: u64,
    ) -> Result<SilenceEntry, AlertsError>;
    /// Removes the UI silence `id`.
    fn remove_silence(&self, id: &str) -> Result<(), AlertsError>;
    /// The channels and their delivery figures, without secrets.
    fn channels(&self) -> Vec<ChannelEntry>;
    /// Adds a channel made in the UI (`alerts.channels[]` item as JSON, secrets inline).
    fn add_channel(
        &self,
        channel: serde_json::Map<String, serde_json::Value>,
        by: &str,
        now_ms: u64,
    ) -> Result<ChannelEntry, AlertsError>;
    /// Changes the UI channel `name`: the keys given replace the stored ones (`null`
    /// removes one); those left out, secrets included, stay.
    fn update_channel(
        &self,
        name: &str,
        changes: serde_json::Map<String, serde_json::Value>,
        by: &str,
        now_ms: u64,
    ) -> Result<ChannelEntry, AlertsError>;
    /// Removes the UI channel `name` (refused while a rule notifies it).
    fn remove_channel(&self, name: &str) -> Result<(), AlertsError>;
    /// Sends a test notification on channel `name`.
    async fn test_channel(&self, name: &str) -> Result<(), AlertsError>;
}
