//! smon-web: what the browser sees, shared by the aggregator and the agent's single-host view:
//! the JSON wire types ([`wire`]), the cluster store ([`store`]), the Socket.IO hub and REST API
//! ([`hub`]), the Prometheus exposition ([`metrics`]) and the embedded UI ([`assets`]). The
//! protocol is described in `web/PROTOCOL.md`.

pub mod assets;
pub mod hub;
pub mod metrics;
pub mod security;
pub mod store;
pub use smon_api::wire;
