//! Containers from real cgroups: the test makes a cgroup named like a systemd service
//! (`system.slice/smon-test-<pid>.service`) in every hierarchy the collector reads (cgroup v1
//! controllers, or the v2 unified tree), moves a sleeping process and a busy one into it, and
//! checks that the agent's snapshot lists it with its task count and CPU use and tags both
//! processes. Needs root (or a delegated cgroup tree); skipped with a message otherwise. The
//! cgroup is removed and the processes killed even when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use smon_collect::containers::Layout;
use smon_proto::{GetSnapshotRequest, Parts};

use crate::support::{self, TOKEN};

/// The cgroup made for the test, and the processes in it; dropping it cleans up.
struct TestCgroup {
    /// Directories made, deepest last (removed in reverse).
    made: Vec<PathBuf>,
    children: Vec<Child>,
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in self.made.iter().rev() {
            // A cgroup is busy for a moment after its last task is reaped.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The hierarchies the collector reads on this machine.
fn hierarchies(layout: &Layout) -> Vec<PathBuf> {
    match layout {
        Layout::V2(root) => vec![root.clone()],
        Layout::V1 {
            cpuacct,
            memory,
            pids,
            blkio,
        } => [cpuacct, memory, pids, blkio]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
    }
}

/// Makes `rel` in every hierarchy and moves the children in; `Err` says why it cannot. The
/// `cgroup.procs` files of the new cgroup come back.
fn make(layout: &Layout, rel: &str, cg: &mut TestCgroup) -> Result<Vec<PathBuf>, String> {
    let mut procs = Vec::new();
    for h in hierarchies(layout) {
        let mut dir = h.clone();
        for part in rel.split('/') {
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
                cg.made.push(dir.clone());
            }
        }
        for c in &cg.children {
            std::fs::write(dir.join("cgroup.procs"), c.id().to_string())
                .map_err(|e| format!("move {} into {}: {e}", c.id(), dir.display()))?;
        }
        procs.push(dir.join("cgroup.procs"));
    }
    Ok(procs)
}

/// A shell that moves itself into the cgroup (`procs` files as arguments), then holds 32 MiB
/// in a variable (charged to the cgroup: v1 charges memory where it is allocated) and spins.
const BUSY: &str = r#"for f in "$@"; do echo $$ > "$f"; done
x=$(head -c 33554432 /dev/zero | tr '\0' a)
while :; do :; done"#;

#[tokio::test]
async fn a_real_cgroup_is_listed_with_its_tasks_and_its_processes_tagged() {
    let Some(layout) = Layout::detect(Path::new("/sys/fs/cgroup")) else {
        eprintln!("SKIPPED: no cgroup filesystem at /sys/fs/cgroup");
        return;
    };
    let unit = format!("smon-test-{}.service", std::process::id());
    let rel = format!("system.slice/{unit}");
    let mut cg = TestCgroup {
        made: Vec::new(),
        children: vec![Command::new("sleep").arg("60").spawn().expect("sleep")],
    };
    let procs = match make(&layout, &rel, &mut cg) {
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
