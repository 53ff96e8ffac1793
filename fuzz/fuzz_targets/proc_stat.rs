//! The process reader (`processes::ProcTable`) on any `/proc/<pid>/stat` and `cmdline`: no
//! panic (counters past every range, a broken frame, bytes that are not UTF-8), twice in a row
//! as the agent samples, and at most the one process.
//!
//! Input: the stat record, then a 0xFF byte, then the command line (NUL-separated).
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use smon_collect::Redactor;
use smon_collect::processes::ProcTable;

#[allow(clippy::expect_used)]
static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(d.path().join("4242")).expect("pid dir");
    d
});

fuzz_target!(|data: &[u8]| {
    let (stat, cmdline) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let pid: PathBuf = DIR.path().join("4242");
    std::fs::write(pid.join("stat"), stat).expect("write stat");
    std::fs::write(pid.join("cmdline"), cmdline).expect("write cmdline");
    let red = Redactor::default();
    for kept in [0, 8] {
        let mut t = ProcTable::new(DIR.path().to_owned(), u64::MAX - 1).with_fd_limit(kept);
        let now = Instant::now();
        let first = t.sample(now, &red, &mut Vec::new());
        let second = t.sample(now + Duration::from_millis(1), &red, &mut Vec::new());
        assert!(first.len() <= 1 && second.len() <= 1);
        for row in first.iter().chain(&second) {
            assert!(row.cpu_percent.is_finite(), "{row:?}");
        }
    }
});
