//! smon-web: what the browser sees, shared by the aggregator and the agent's single-host view:
//! the JSON wire types ([`wire`]), the cluster store ([`store`]), the Prometheus exposition
//! ([`metrics`]), who may see what ([`security`]), the state the HTTP side shares ([`state`]),
//! the routes ([`routes`]), the Socket.IO hub and the router ([`hub`]), the HTTP server
//! loop ([`serve`]) and the embedded UI ([`assets`]); with the feature `database`, opening the
//! server's database ([`database`]). The protocol is described in `web/PROTOCOL.md`.
//!
//! Modules depend one way, from the bottom: [`clock`], [`error`], [`wire`], [`assets`] ->
//! [`store`] -> [`metrics`]; [`security`] (policy: it never sees [`state`]) -> [`state`] ->
//! [`routes`] -> [`hub`] -> [`serve`].

pub mod acting;
pub mod alerting;
pub mod assets;
pub mod clock;
#[cfg(feature = "database")]
pub mod database;
pub mod error;
pub mod hub;
pub mod inventory;
pub mod metrics;
pub mod reachability;
pub mod routes;
pub mod security;
pub mod serve;
pub mod state;
pub mod store;
pub use smon_api::wire;
