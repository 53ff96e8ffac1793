//! smon-runtime: the daemon kit both smon daemons share. Output of the commands that print
//! ([`cli`]: a closed pipe ends them quietly). The command-line flags, logging,
//! signals, privilege drop and systemd notifications ([`daemon`]); the self manager
//! ([`manager`]) and health probes ([`health`]); Supervisor program files ([`deploy`]); the
//! config kit ([`config`]: errors that name the field, JSON with paths, PEM files, and the
//! `log`, `manager` and `server` blocks); CIDR allow-lists ([`net`]); the connection guard of the listeners ([`listen`]); the binary's start-up pages
//! given back once a daemon is up ([`pages`]); and the start-up
//! sequence itself ([`start`]), so each daemon's `main` stays thin.
//!
//! It knows no daemon by name: each describes itself with an [`About`]. It depends on no
//! HTTP or gRPC stack.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod deploy;
pub mod health;
pub mod listen;
pub mod manager;
pub mod net;
pub mod pages;
pub mod secret_file;
pub mod start;
pub mod wol;

use std::time::Duration;

/// How a daemon describes itself to the kit.
#[derive(Debug, Clone, Copy)]
pub struct About {
    /// The binary's name: messages, the Supervisor program and log files, heartbeat files.
    pub name: &'static str,
    /// A few words on what it is, e.g. "the node agent" (in generated files).
    pub description: &'static str,
    /// True when the daemon acts on SIGHUP itself (reloads its config); else the kit logs and
    /// ignores SIGHUP rather than let it end the process.
    pub reloads_on_sighup: bool,
    /// How long shutdown may take before the process exits anyway.
    pub shutdown_grace: Duration,
}
