//! Containers in a real browser (Debian's chromium through playwright-core, driven by
//! `containers_ui.mjs`): the test makes a real cgroup named like a systemd service
//! (`system.slice/smon-uitest-<pid>.service`) in every hierarchy the collector reads, limits
//! its memory to 256 MiB, moves a busy shell holding 32 MiB and a `sleep` into it, and starts
//! a real agent (containers on, as by default). Through the aggregator: the overview row
//! shows the containers count and the busiest one, the host page's Containers section lists
//! the test's service with CPU above 0 and its memory as a bar against the limit, its search
//! filters it, its name filters the process list down to exactly the test's two processes,
//! and the select shows all processes, or those in no container, again. Then the agent's own
//! single-host view (`server.web`) on the same host does the same. A second agent with
//! containers off gives a row without them (REST and overview) and a host page without the
//! section, the filter or the column. At 390 px nothing sticks out of the screen. Needs root (or a delegated cgroup tree): skipped with a message
//! otherwise. The processes are killed and the cgroup removed even when the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use smon_collect::containers::Layout;

use crate::support::{Agent, Aggregator, agent_bin, free_port};

use crate::containers::cgroup_common::{BUSY, TestCgroup, hierarchies};

/// The memory limit the test sets on its cgroup.
const LIMIT: u64 = 256 << 20;

/// Makes `rel` in every hierarchy, limits its memory to [`LIMIT`] and moves the children in;
/// `Err` says why it cannot. The `cgroup.procs` files of the new cgroup come back.
fn make(layout: &Layout, rel: &str, cg: &mut TestCgroup) -> Result<Vec<PathBuf>, String> {
    let procs = cg.make(layout, rel)?;
    let limit_file = match layout {
        Layout::V2(root) => Some(root.join(rel).join("memory.max")),
        Layout::V1 { memory, .. } => memory
            .as_ref()
            .map(|m| m.join(rel).join("memory.limit_in_bytes")),
    };
    if let Some(f) = limit_file {
        std::fs::write(&f, LIMIT.to_string()).map_err(|e| format!("limit {}: {e}", f.display()))?;
    }
    Ok(procs)
}

/// Runs `containers_ui.mjs` with `args`; panics with its output when it fails.
fn scenario(args: Vec<String>) {
    let _turn = crate::browser::ONE_BROWSER
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .arg(manifest.join("tests/it/containers_ui.mjs"))
        .args(&args)
        .env("SMON_UI_DIR", manifest.join("../web/ui"))
        .output()
        .expect("node is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "containers_ui.mjs {args:?} failed:\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_on_the_overview_and_the_host_page_in_a_real_browser() {
    let Some(layout) = Layout::detect(Path::new("/sys/fs/cgroup")) else {
        eprintln!("SKIPPED: no cgroup filesystem at /sys/fs/cgroup");
        return;
    };
    let unit = format!("smon-uitest-{}.service", std::process::id());
    let rel = format!("system.slice/{unit}");
    let mut cg = TestCgroup {
        made: Vec::new(),
        children: vec![Command::new("sleep").arg("300").spawn().expect("sleep")],
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
    let pids: Vec<String> = cg.children.iter().map(|c| c.id().to_string()).collect();
    let pids = pids.join(",");

    // Through the aggregator.
    let agent = Agent::start("127.0.0.71");
    // A host whose agent reports no containers: nothing of them on its row and page.
    let plain = Agent::start_with("127.0.0.72", r#","containers":{"enabled":false}"#);
    let hosts = crate::support::hosts_json(&[&agent, &plain]);
    let agg = Aggregator::start(&format!(
        r#"{{"monitor":{{"mode":"app","poll_interval_ms":500,"include_self":false,"clusters":[{{"name":"lab","hosts":[{hosts}]}}]}}}}"#
    ))
    .await;
    let row = agg
        .wait_row(
            "lab:n1",
            Duration::from_secs(20),
            "up with containers",
            |r| r["status"] == "up" && r["containers"].as_u64().is_some_and(|n| n >= 1),
        )
        .await;
    assert!(row["container_top_name"].is_string(), "{row}");
    let plain_row = agg
        .wait_row("lab:n2", Duration::from_secs(20), "up", |r| {
            r["status"] == "up"
        })
        .await;
    for k in [
        "containers",
        "container_top_name",
        "container_top_cpu_percent",
    ] {
        assert!(plain_row.get(k).is_none(), "{k} in {plain_row}");
    }
    // The detail lists the test's service, busy, with both processes tagged.
    let start = Instant::now();
    loop {
        let (_, d) = agg.get("/api/v1/hosts/lab:n1").await;
        let listed = d["detail"]["containers"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["id"] == unit.as_str() && c["cpu_percent"].as_f64() > Some(0.0));
        if listed {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{unit} not listed busy: {}",
            d["detail"]["containers"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let args = vec![
        "app".to_owned(),
        format!("{}/", agg.base),
        "lab:n1".to_owned(),
        unit.clone(),
        pids.clone(),
        crate::support::BROWSER_LOGIN.to_owned(),
        "lab:n2".to_owned(),
    ];
    tokio::task::spawn_blocking(move || scenario(args))
        .await
        .expect("aggregator scenario");
    agg.shutdown().await;
    drop(agent);
    drop(plain);

    // The agent's own single-host view shares the page.
    let dir = tempfile::tempdir().expect("tempdir");
    let http = free_port("127.0.0.1");
    let cfg = dir.path().join("config_node.json");
    crate::support::write_users(dir.path(), "smon-agent-users.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"server":{{"host":"127.0.0.1","port":{http},"web":true}},"monitor":{{"mode":"node","interval_ms":500,"grpc_listen":"127.0.0.1:{}","auth":"none","gpu":"off"}}}}"#,
            free_port("127.0.0.1")
        ),
    )
    .expect("config");
    let mut child = crate::support::daemon(agent_bin(), &cfg)
        .spawn()
        .expect("agent");
    let base = format!("http://127.0.0.1:{http}");
    let start = Instant::now();
    let mut client = None;
    let id = loop {
        if client.is_none() && reqwest::get(format!("{base}/healthz")).await.is_ok() {
            client =
                Some(crate::support::login(&base, "admin", crate::support::ADMIN_PASSWORD).await);
        }
        if let Some(c) = &client
            && let Ok(r) = c.get(format!("{base}/api/v1/hosts")).send().await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && v[0]["status"] == "up"
            && v[0]["containers"].as_u64().is_some_and(|n| n >= 1)
        {
            break v[0]["id"].as_str().unwrap_or_default().to_owned();
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent's own view did not come up with containers");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let args = vec![
        "node".to_owned(),
        format!("{base}/"),
        id,
        unit.clone(),
        pids,
        crate::support::BROWSER_LOGIN.to_owned(),
        "-".to_owned(),
    ];
    let result = tokio::task::spawn_blocking(move || scenario(args)).await;
    let _ = child.kill();
    let _ = child.wait();
    result.expect("single-host scenario");

    drop(cg);
    for h in hierarchies(&layout) {
        assert!(!h.join(&rel).exists(), "the test cgroup is removed");
    }
}
