//! The disk I/O counters reader (`disks::parse_diskstats`) on any `/proc/diskstats` text: no
//! panic (counters past every range, short lines), at most one entry per line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smon_collect::disks::parse_diskstats;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let table = parse_diskstats(&text);
    assert!(table.len() <= text.lines().count());
});
