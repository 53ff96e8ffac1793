//! Integration tests of the agent: the real gRPC server on loopback sockets, the real binary
//! (signals, exit codes, `--once`, running as `nobody`) and config fixtures.

mod binary;
mod cli;
mod config_fixtures;
mod gpus;
mod grpc;
mod manager;
mod props;
mod sec_connections;
mod sec_files;
mod supervisor;
mod support;
mod systemd;
