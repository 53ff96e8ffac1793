//! What the inventory routes (`docs/protocol-inventory.md`) ask of the server: the
//! [`InventoryService`] trait, held in [`crate::state::Web::inventory`]. The aggregator
//! implements it over its configuration, its database and the live fleet registry; smon-web
//! never depends on those.

use smon_api::inventory::{HostInput, InventoryCluster, InventoryHost, NewCluster};

/// Why an inventory change was refused; each becomes an HTTP status with the sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// Bad input (400): the sentence names the field and the value.
    #[error("{0}")]
    Invalid(String),
    /// No such host or cluster (404).
    #[error("{0}")]
    NotFound(String),
    /// The host or cluster comes from the config file and is read-only (403).
    #[error("{0}")]
    ReadOnly(String),
    /// The id is taken, or the cluster still has hosts (409).
    #[error("{0}")]
    Conflict(String),
    /// The server has no database to keep the change in (503).
    #[error("{0}")]
    Off(String),
    /// The server failed (the database): 500.
    #[error("{0}")]
    Internal(String),
}

/// The server's inventory, as the routes use it. Methods may block (the database): the routes
/// call them off the async threads. `by` is the admin's name, `now_ms` the time.
pub trait InventoryService: Send + Sync {
    /// Every host of the fleet, config ones first, without secrets.
    fn hosts(&self) -> Vec<InventoryHost>;
    /// Adds a host made in the UI; it is polled at once.
    fn add_host(
        &self,
        host: HostInput,
        by: &str,
        now_ms: u64,
    ) -> Result<InventoryHost, InventoryError>;
    /// Replaces the UI host `id` (same cluster and name); tokens left out stay.
    fn update_host(
        &self,
        id: &str,
        host: HostInput,
        by: &str,
        now_ms: u64,
    ) -> Result<InventoryHost, InventoryError>;
    /// Removes the UI host `id`.
    fn remove_host(&self, id: &str, by: &str) -> Result<(), InventoryError>;
    /// Every cluster, config ones first.
    fn clusters(&self) -> Vec<InventoryCluster>;
    /// Adds a cluster made in the UI.
    fn add_cluster(
        &self,
        cluster: NewCluster,
        by: &str,
        now_ms: u64,
    ) -> Result<InventoryCluster, InventoryError>;
    /// Removes the UI cluster `name` (refused while it has hosts).
    fn remove_cluster(&self, name: &str, by: &str) -> Result<(), InventoryError>;
}
