//! Containers from real cgroups: the test makes a cgroup named like a systemd service
//! (`system.slice/smon-test-<pid>.service`) in every hierarchy the collector reads (cgroup v1
//! controllers, or the v2 unified tree), moves a sleeping process and a busy one into it, and
//! checks that the agent's snapshot lists it with its task count and CPU use and tags both
//! processes. Needs root (or a delegated cgroup tree); skipped with a message otherwise. The
//! cgroup is removed and the processes killed even when the test fails.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use smon_collect::containers::Layout;
use smon_proto::{GetSnapshotRequest, Parts};

use crate::support::{self, TOKEN};

#[path = "../../../tests/cgroup_common.rs"]
mod cgroup_common;
use cgroup_common::{BUSY, TestCgroup};

#[tokio::test]
async fn a_real_cgroup_is_listed_with_its_tasks_and_its_processes_tagged() {
    let Some(layout) = Layout::detect(Path::new("/sys/fs/cgroup")) else {
        eprintln!("SKIPPED: no cgroup filesystem at /sys/fs/cgroup");
        return;
    };
    let unit = format!("smon-test-{}.service", std::process::id());
    let rel = format!("system.slice/{unit}");
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
    cg.children.push(
        Command::new("sh")
            .args(["-c", BUSY, "sh"])
            .args(&procs)
            .spawn()
            .expect("busy shell"),
    );
    let pids: Vec<u32> = cg.children.iter().map(Child::id).collect();

    let agent = support::start(0).await;
    let mut c = support::client(agent.addr, Some(TOKEN)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let (item, snap) = loop {
        let snap = c
            .get_snapshot(GetSnapshotRequest {
                parts: Some(Parts::DETAIL),
            })
            .await
            .expect("detail")
            .into_inner();
        let containers = snap
            .containers
            .clone()
            .expect("containers are on by default");
        let item = containers.items.iter().find(|i| i.id == unit).cloned();
        let tagged = pids.iter().all(|p| {
            snap.processes
                .iter()
                .any(|pr| pr.pid == *p && pr.container == unit)
        });
        // Past its first sample (a CPU delta), the shell's 32 MiB made (its helpers gone),
        // and with a fresh process list.
        if let Some(i) = item
            && i.cpu_percent > 0.0
            && i.pids == 2
            && i.memory_bytes + i.memory_cache_bytes >= 32 << 20
            && tagged
        {
            break (i, snap);
        }
        assert!(
            Instant::now() < deadline,
            "not listed and tagged in time: {containers:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("listed: {item:?}");
    assert_eq!(item.kind, "systemd");
    assert_eq!(item.name, unit);
    assert_eq!(item.cgroup, format!("/{rel}"));
    assert_eq!(
        item.pids, 2,
        "sleep and the shell, one thread each: {item:?}"
    );
    // A busy loop on a shared 2-core machine: well above idle, at most a core and a bit.
    assert!(
        item.cpu_percent > 10.0 && item.cpu_percent < 130.0,
        "{item:?}"
    );
    assert!(item.memory_limit_bytes.is_none(), "no limit set: {item:?}");
    assert!(
        item.memory_bytes >= 30 << 20 && item.memory_bytes < 1 << 30,
        "the shell's 32 MiB, the page cache apart: {item:?}"
    );
    assert_eq!(
        item.net_rx_bytes_per_s, None,
        "the host's network namespace"
    );
    assert!(snap.containers.as_ref().expect("containers").count >= 1);

    // A summary carries at most the top 5, and the count.
    let summary = c
        .get_snapshot(GetSnapshotRequest::default())
        .await
        .expect("summary")
        .into_inner();
    let sc = summary.containers.expect("containers in the summary");
    assert!(sc.items.len() <= 5 && sc.count as usize >= sc.items.len());

    agent.shutdown().await;
    drop(cg);
    assert!(
        !Path::new("/sys/fs/cgroup").join("pids").join(&rel).exists()
            && !Path::new("/sys/fs/cgroup").join(&rel).exists(),
        "the test cgroup is removed"
    );
}
