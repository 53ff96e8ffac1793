//! Integration tests of the aggregator: real agents as separate processes on 127.0.0.x
//! addresses, the aggregator in-process on 127.0.0.1:0, observed through its REST API.

mod actions;
mod alerts;
mod alerts_ui;
mod api_client;
mod applications;
mod applications_declared;
mod browser;
mod cli;
mod config_fixtures;
mod containers;
mod containers_ui;
mod fleet;
mod history;
mod inventory;
mod live;
mod nginx;
mod program_events;
mod programs;
mod prometheus;
mod props;
mod reach;
mod reconnect;
mod remote_write;
mod sec_accounts;
mod sec_connections;
mod sec_http;
mod sec_login;
mod security;
mod support;
mod tokens;
