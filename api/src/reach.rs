//! The JSON of reachability checks (`web/PROTOCOL.md`, "Reachability"): what a check of a
//! host found (its ping and each configured service), the compact digest of it in the
//! overview's rows, and the transitions (a service or the ping going down or up) the host
//! page lists.
//!
//! The aggregator's checker (`smon_aggregator::reach`) makes these; the routes and the UI show
//! them.

use serde::{Deserialize, Serialize};

/// The ping of a host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PingResult {
    /// Whether the host answered; `null` when no ping could be sent (no ICMP socket allowed,
    /// or the address did not resolve): `error` says why.
    pub up: Option<bool>,
    /// Round trip, ms (three decimals), when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Why it did not answer or was not pinged, as a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The address pinged (the host's `ip`, resolved, or the host part of its agent's
    /// address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// One configured service of a host, checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceResult {
    /// Its name, as configured.
    pub name: String,
    /// `tcp` (a connect to `port`) or `icmp` (the host's ping).
    pub kind: String,
    /// The TCP port (`tcp` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Whether it answered; `null` when it could not be checked (`error` says why).
    pub up: Option<bool>,
    /// Connect (or ping) time, ms, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Why it is down, as a sentence ("connection refused", "no answer within 2 s", "no route
    /// to host").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one check of a host found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReachResult {
    /// When the check ended (ms since the epoch, server clock).
    pub checked_ms: u64,
    /// The ping of the host.
    pub ping: PingResult,
    /// Its services, in configuration order.
    pub services: Vec<ServiceResult>,
}

impl ReachResult {
    /// The overview's digest of this result.
    pub fn brief(&self) -> ReachBrief {
        let known: Vec<&ServiceResult> = self.services.iter().filter(|s| s.up.is_some()).collect();
        ReachBrief {
            ping_up: self.ping.up,
            ping_ms: self.ping.latency_ms,
            up: known.iter().filter(|s| s.up == Some(true)).count() as u32,
            total: known.len() as u32,
            down: known
                .iter()
                .filter(|s| s.up == Some(false))
                .map(|s| s.name.clone())
                .collect(),
        }
    }
}

/// The overview row's digest of a host's last check (`HostRow.reach`, patch key `rc`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReachBrief {
    /// Whether the host answers pings (`null`: not pinged).
    pub ping_up: Option<bool>,
    /// The ping's round trip, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_ms: Option<f64>,
    /// Services up.
    pub up: u32,
    /// Services checked.
    pub total: u32,
    /// The names of the services down, in configuration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub down: Vec<String>,
}

/// A service (or the ping) of a host went down or came back up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReachTransition {
    /// When the check that saw it ended (ms since the epoch).
    pub at_ms: u64,
    /// Host id (`cluster:name`).
    pub host: String,
    /// The service's name, or `ping` for the host's ping.
    pub subject: String,
    /// `ping`, `tcp` or `icmp`.
    pub kind: String,
    /// Up now (true: it came back; false: it went down).
    pub up: bool,
    /// Why it is down (when it went down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/v1/hosts/{id}/reach`: the host's last check and its last transitions, newest
/// first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReachAnswer {
    /// The last check (`null` before the first).
    pub result: Option<ReachResult>,
    /// The last transitions, newest first.
    pub transitions: Vec<ReachTransition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brief_counts_only_services_checked() {
        let svc = |name: &str, up| ServiceResult {
            name: name.into(),
            kind: "tcp".into(),
            port: Some(22),
            up,
            ..Default::default()
        };
        let r = ReachResult {
            checked_ms: 1,
            ping: PingResult {
                up: Some(true),
                latency_ms: Some(0.25),
                ..Default::default()
            },
            services: vec![
                svc("ssh", Some(true)),
                svc("web", Some(false)),
                svc("x", None),
            ],
        };
        let b = r.brief();
        assert_eq!((b.up, b.total), (1, 2));
        assert_eq!(b.down, vec!["web".to_owned()]);
        assert_eq!(
            serde_json::to_value(&b).expect("json"),
            serde_json::json!({"ping_up": true, "ping_ms": 0.25, "up": 1, "total": 2, "down": ["web"]})
        );
    }
}
