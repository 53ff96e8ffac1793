//! Integration tests of smon-notify: real HTTP receivers (axum on 127.0.0.1), a real SMTP
//! server (Debian's python3-aiosmtpd), a real Prometheus Alertmanager (Debian's
//! prometheus-alertmanager) and real SQLite database files, all started by the tests.

mod alertmanager;
mod delivery;
mod email;
mod services;
mod support;
