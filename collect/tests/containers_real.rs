//! The container collector on the real cgroup filesystem: a Docker-shaped cgroup
//! (`docker/<64 hex>`) made in every hierarchy the collector reads, with processes moved in.
//! Checks what fixture trees cannot show: a process first seen between walks is tagged from
//! its real `/proc/<pid>/cgroup` at its first sample, one moved out is untagged at the next
//! walk, and a removed cgroup is gone from the very next sample (its kept files fail to read).
//! Needs root (or a delegated cgroup tree); skipped with a message otherwise. The cgroup is
//! removed and the processes killed even when the test fails.

use std::path::Path;
use std::process::Command;

use smon_collect::ContainersConfig;
use smon_collect::containers::{ContainerCollector, Layout, WALK_EVERY};
use smon_proto::Process;

#[path = "../../tests/cgroup_common.rs"]
mod cgroup_common;
use cgroup_common::{TestCgroup, hierarchies};

fn row(pid: u32) -> Process {
    Process {
        pid,
        start_unix_ms: 1,
        ..Process::default()
    }
}

#[test]
fn on_real_cgroups_a_new_process_is_tagged_at_once_and_a_removed_cgroup_is_gone_at_once() {
    let Some(layout) = Layout::detect(Path::new("/sys/fs/cgroup")) else {
        eprintln!("SKIPPED: no cgroup filesystem at /sys/fs/cgroup");
        return;
    };
    let id = format!(
        "{:064x}",
        0x0c17_0000_0000_u64 + u64::from(std::process::id())
    );
    let rel = format!("docker/{id}");
    let mut cg = TestCgroup::new(vec![
        Command::new("sleep").arg("60").spawn().expect("sleep"),
    ]);
    let procs = match cg.make(&layout, &rel) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIPPED: cgroups not writable here ({why})");
            return;
        }
    };
    let mut c = ContainerCollector::new(ContainersConfig {
        runtime_sockets: Vec::new(),
        ..ContainersConfig::default()
    });
    let first = cg.children[0].id();
    let mut rows = vec![row(first)];
    // Sample 1, a walk: listed, its process tagged from `cgroup.procs`.
    let s = c.sample_tagging(1.0, &mut rows);
    assert!(s.items.iter().any(|i| i.id == id), "listed: {s:?}");
    assert_eq!(rows[0].container, id);

    // Sample 2, between walks: a process the collector has not seen, already in the
    // container, is tagged from its own /proc/<pid>/cgroup.
    let second = Command::new("sleep").arg("60").spawn().expect("sleep");
    let second_pid = second.id();
    cg.children.push(second);
    for p in &procs {
        std::fs::write(p, second_pid.to_string()).expect("move into the container");
    }
    rows.push(row(second_pid));
    c.sample_tagging(1.0, &mut rows);
    assert_eq!(rows[1].container, id, "tagged at its first sample");

    // The first process moves out (to each hierarchy's root): still tagged until the walk.
    for h in hierarchies(&layout) {
        std::fs::write(h.join("cgroup.procs"), first.to_string()).expect("move out");
    }
    for _ in 2..WALK_EVERY {
        c.sample_tagging(1.0, &mut rows);
        assert_eq!(rows[0].container, id, "kept until the walk");
    }
    let s = c.sample_tagging(1.0, &mut rows);
    assert_eq!(rows[0].container, "", "untagged at the walk");
    assert_eq!(rows[1].container, id);
    let item = s.items.iter().find(|i| i.id == id).expect("still listed");
    assert_eq!(item.pids, 1, "one process left in it");

    // Removed between walks: gone from the very next sample.
    cg.remove();
    let s = c.sample_tagging(1.0, &mut rows);
    assert!(
        !s.items.iter().any(|i| i.id == id),
        "gone at once: {:?}",
        s.items.iter().map(|i| &i.id).collect::<Vec<_>>()
    );
}
