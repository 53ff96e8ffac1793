//! smon-web: what the browser sees, shared by the aggregator and the agent's single-host view:
//! the JSON wire types ([`wire`]), the cluster store ([`store`]), the Socket.IO hub and REST API
//! ([`hub`]), the Prometheus exposition ([`metrics`]) and the embedded UI ([`assets`]). The
//! protocol is described in `web/PROTOCOL.md`.

pub mod assets;
pub mod clock;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod routes;
pub mod security;
pub mod state;
pub mod store;
pub mod wire;
