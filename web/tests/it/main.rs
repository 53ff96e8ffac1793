//! Integration tests of smon-web: the real HTTP and Socket.IO server in-process on port 0,
//! and the real UI in a real browser.

mod fleet;
