//! Actions on hosts (`web/PROTOCOL.md`, "Actions"): wake, reboot and shut down one host
//! (`POST /api/v1/hosts/{id}/{action}`) or a selection (`POST /api/v1/actions/{action}`),
//! with one result per host.

use serde::{Deserialize, Serialize};

/// An action on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Send its Wake-on-LAN packet (from the aggregator, or relayed by an agent on its LAN).
    Wake,
    /// Reboot it through its agent.
    Reboot,
    /// Shut it down through its agent.
    Shutdown,
    /// Check its reachability now (ping and services).
    Check,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 4] = [Self::Wake, Self::Reboot, Self::Shutdown, Self::Check];

    /// Its name in routes and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wake => "wake",
            Self::Reboot => "reboot",
            Self::Shutdown => "shutdown",
            Self::Check => "check",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not an action (wake, reboot, shutdown or check)"))
    }
}

/// The hosts a group action applies to: exactly one of the three.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Host ids (`cluster:name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Every host with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Every host of this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// What an action did on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    /// The host id.
    pub host: String,
    /// Whether it was done (a wake: the packet was sent; a reboot: the command started).
    pub ok: bool,
    /// What was done, or why not, as a sentence.
    pub message: String,
}

/// The answer of a group action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAnswer {
    /// The action.
    pub action: Action,
    /// One result per selected host, in the selection's order.
    pub results: Vec<ActionResult>,
}
