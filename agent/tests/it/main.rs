//! Integration tests of the agent: the real gRPC server on loopback sockets, the real binary
//! (signals, exit codes, `--once`, running as `nobody`), config fixtures and the web view's
//! history.

mod binary;
mod cli;
mod config_fixtures;
mod containers;
mod control;
mod gpus;
mod grpc;
#[cfg(feature = "history")]
mod history;
mod manager;
mod props;
mod sec_connections;
mod sec_files;
mod supervisor;
mod supervisor_control;
mod support;
mod systemd;
mod webview;
