//! The mount table reader (`disks::parse_mountinfo`, then the selection the agent applies) on
//! any `/proc/self/mountinfo` text: no panic, one mount per device at most after selection.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use smon_collect::disks::{parse_mountinfo, select_mounts};
use smon_collect::filters::DiskFilter;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mounts = parse_mountinfo(&text);
    assert!(mounts.len() <= text.lines().count());
    let filter = DiskFilter {
        include_fs_types: vec!["tmpfs".into()],
        exclude_fs_types: vec!["nfs4".into()],
        exclude_mounts: vec!["/boot".into(), "/".into(), "/é".into()],
    };
    let selected = select_mounts(mounts, &filter);
    let mut devices = HashSet::new();
    for m in selected.iter().filter(|m| m.dev.0 != 0) {
        assert!(devices.insert(m.dev), "{m:?} twice");
    }
});
