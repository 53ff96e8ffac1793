//! The utmp reader (`sessions::read_sessions`) on any file: no panic, and no more sessions
//! than whole 384-byte records, each with a user name.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use smon_collect::sessions::read_sessions;

#[allow(clippy::expect_used)]
static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().expect("tempdir"));

fuzz_target!(|data: &[u8]| {
    let path = DIR.path().join("utmp");
    std::fs::write(&path, data).expect("write the utmp file");
    let mut errors = Vec::new();
    let sessions = read_sessions(&path, &mut errors);
    assert!(sessions.len() <= data.len() / 384, "{sessions:?}");
    for s in &sessions {
        assert!(!s.user.is_empty(), "{s:?}");
    }
    for e in &errors {
        let _ = e.to_string();
    }
});
