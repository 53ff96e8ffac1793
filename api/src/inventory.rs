//! The inventory edited in the browser (`docs/protocol-inventory.md`): the hosts and clusters
//! of the fleet as the inventory routes list them (config ones read-only, UI ones editable),
//! and the bodies admins send. Tokens go in, never out: answers say only `has_token`.

use serde::{Deserialize, Serialize};

pub use crate::alerts::Source;

/// How a host's Wake-on-LAN packet is sent (as `wol` in `config_app.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WolSpec {
    /// The IPv4 broadcast (or unicast) address (default `255.255.255.255`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<String>,
    /// The UDP port (default 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The host (`name` in the same cluster, or `cluster:name`) whose agent relays it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// A service whose reachability is checked (as `services[]` in `config_app.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Its name.
    pub name: String,
    /// The TCP port (needed for `tcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `tcp` (the default) or `icmp`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A host as an admin sends it (`POST /api/v1/inventory/hosts`, `PUT .../{id}`): the keys of a
/// `monitor.clusters[].hosts[]` item of `config_app.json`, plus its `cluster`, without files
/// or TLS. On `PUT`, a token left out keeps the stored one and `""` removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostInput {
    /// Its cluster (of the config, or made in the UI).
    pub cluster: String,
    /// Its name, unique in the cluster.
    pub name: String,
    /// The agent's gRPC address `host:port`; absent or empty for a host without an agent.
    #[serde(default)]
    pub address: Option<String>,
    /// The agent's bearer token (write-only).
    #[serde(default)]
    pub token: Option<String>,
    /// IP address or DNS name (needed without an agent).
    #[serde(default)]
    pub ip: Option<String>,
    /// MAC address, for Wake-on-LAN.
    #[serde(default)]
    pub mac: Option<String>,
    /// How to send its Wake-on-LAN packet.
    #[serde(default)]
    pub wol: Option<WolSpec>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Services whose reachability is checked.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// The agent's control token (write-only).
    #[serde(default)]
    pub control_token: Option<String>,
}

/// A host of the fleet as the inventory lists it (`GET /api/v1/inventory/hosts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryHost {
    /// `cluster:name`.
    pub id: String,
    /// Its cluster.
    pub cluster: String,
    /// Its name.
    pub name: String,
    /// `config` (read-only here) or `ui`.
    pub source: Source,
    /// Whether it has an agent that is polled.
    pub agent: bool,
    /// The agent's address (absent without an agent).
    pub address: Option<String>,
    /// Whether an agent token is set (the token itself is never sent).
    pub has_token: bool,
    /// Whether a control token is set.
    pub has_control_token: bool,
    /// IP address or DNS name.
    pub ip: Option<String>,
    /// MAC address (`aa:bb:cc:dd:ee:ff`).
    pub mac: Option<String>,
    /// Wake-on-LAN settings, when set.
    pub wol: Option<WolSpec>,
    /// Tags.
    pub tags: Vec<String>,
    /// Services checked.
    pub services: Vec<ServiceSpec>,
    /// Who made it in the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<u64>,
    /// Who changed it last in the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// When (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<u64>,
}

/// A cluster as the inventory lists it (`GET /api/v1/inventory/clusters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryCluster {
    /// Its name.
    pub name: String,
    /// `config` (read-only here) or `ui`.
    pub source: Source,
    /// How many hosts it has (config and UI ones).
    pub hosts: usize,
    /// Who made it in the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<u64>,
}

/// A cluster as an admin makes it (`POST /api/v1/inventory/clusters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCluster {
    /// Its name (`[A-Za-z0-9._-]`, 1-63 characters).
    pub name: String,
}
