//! smon-api: what crosses the wire between an smon server (the aggregator, or the agent's
//! single-host view) and its HTTP clients, without any server code.
//!
//! - [`wire`]: the JSON of the REST API and of the Socket.IO events (`web/PROTOCOL.md`). The
//!   server (`smon-web`) serialises these very types, so a client built on this crate reads
//!   exactly what is sent.
//! - [`auth`]: the login, `me` and user-list bodies.
//! - [`alerts`]: alerts and the notifications channels are sent.
//! - [`audit`]: the audit log's records (`GET /api/v1/audit`).
//! - [`history`]: the bodies of the history routes.
//! - [`applications`]: the fleet's programs and the declared applications.
//! - [`inventory`]: the hosts and clusters edited in the browser.
//! - [`client`]: a small typed REST client (login with a session cookie, the read routes), for
//!   the CLI and for tests.
//!
//! It must not depend on axum, socketioxide or the embedded UI: a CLI or a test pulls in serde,
//! the generated protobuf messages and an HTTP client, nothing more.

pub mod actions;
pub mod alerts;
pub mod applications;
pub mod audit;
pub mod auth;
pub mod client;
pub mod history;
pub mod inventory;
pub mod programs;
pub mod reach;
pub mod wire;

pub use client::{Client, ClientError};
