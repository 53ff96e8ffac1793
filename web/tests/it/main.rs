//! Integration tests of smon-web: the real HTTP and Socket.IO server in-process on port 0,
//! and the real UI in a real browser.

mod assets;
mod fleet;
mod history;
mod rest_fuzz;
mod ui;

/// One Chromium at a time: the tests run in parallel on small machines, and two browsers at
/// once starve the servers they are testing.
pub(crate) static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
