//! The dashboard in a real browser (Debian's chromium driven by playwright-core through
//! `web/ui/tests/browser.mjs`), against a real aggregator and real agents: the home page lists
//! the hosts and updates live, a host page shows processes, users and fake GPU cards, a stopped
//! agent renders as down; Socket.IO over WebSocket and over polling only; under a path prefix;
//! the login page without a console error; the connection indicator and the stale banner
//! agreeing while the real binary is frozen (SIGSTOP) and resumed; and the agent's own
//! single-host view, which opens on its host's page.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Agent, Aggregator, agent_bin, free_port};

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/ui")
}

/// One Chromium at a time: the tests run in parallel on small machines, and several browsers
/// at once starve the servers they are testing.
pub(crate) static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs one `browser.mjs` scenario, logged in as the test admin; panics with its output when
/// it fails.
fn browser(args: &[&str]) {
    browser_as(Some(crate::support::BROWSER_LOGIN), args);
}

/// Runs one `browser.mjs` scenario, first logging in through the login page with `login`
/// (`user:password`) when given.
pub fn browser_as(login: Option<&str>, args: &[&str]) {
    match login {
        Some(l) => browser_with(&[("SMON_LOGIN", l)], args),
        None => browser_with(&[], args),
    }
}

/// Runs one `browser.mjs` scenario with more environment (e.g. `SMON_LOGIN`,
/// `SMON_IGNORE_HTTPS_ERRORS`).
pub fn browser_with(env: &[(&str, &str)], args: &[&str]) {
    let _turn = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let script = ui_dir().join("tests/browser.mjs");
    let mut cmd = Command::new("node");
    cmd.envs(env.iter().copied());
    let out = cmd
        .arg(&script)
        .args(args)
        .current_dir(ui_dir())
        .output()
        .expect("node is installed");
    assert!(
        out.status.success(),
        "browser.mjs {args:?} failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fleet_config(agents: &[&Agent], base_path: &str) -> String {
    fleet_config_after(0, agents, base_path)
}

/// The fleet of `agents` (cluster `lab`) after a cluster `cold` of `cold` hosts that never
/// answer (a closed port), listed first: the `lab` rows then come in a later part of the
/// overview (128 rows per part) and deltas name them by positions past the first part.
fn fleet_config_after(cold: usize, agents: &[&Agent], base_path: &str) -> String {
    let hosts = crate::support::hosts_json(agents);
    let cold: Vec<String> = (0..cold)
        .map(|i| {
            let token = crate::support::TOKEN;
            format!(r#"{{"name":"c{i}","address":"127.0.0.1:1","token":"{token}"}}"#)
        })
        .collect();
    let cold = if cold.is_empty() {
        String::new()
    } else {
        format!(r#"{{"name":"cold","hosts":[{}]}},"#, cold.join(","))
    };
    format!(
        r#"{{"server":{{"base_path":"{base_path}"}},"monitor":{{"mode":"app","poll_interval_ms":500,"include_self":false,"clusters":[{cold}{{"name":"lab","hosts":[{}]}}]}}}}"#,
        hosts
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let a1 = Agent::start("127.0.0.7");
    let mut a2 = Agent::start("127.0.0.8");
    let a3 = Agent::start("127.0.0.9");
    let agg = Aggregator::start(&fleet_config(&[&a1, &a2, &a3], "/")).await;
    for id in ["lab:n1", "lab:n2", "lab:n3"] {
        agg.wait_row(id, Duration::from_secs(10), "up", |r| r["status"] == "up")
            .await;
    }
    let url = format!("{}/", agg.base);
    let home = url.clone();
    let u = url.clone();
    tokio::task::spawn_blocking(move || {
        browser_as(
            None,
            &["login", &home, "admin", crate::support::ADMIN_PASSWORD],
        );
        browser(&["home", &home, "lab:n1,lab:n2,lab:n3"]);
        browser(&["host", &u, "lab:n2", "1"]);
        browser(&["transport", &u, "websocket"]);
        browser(&["transport", &u, "polling"]);
    })
    .await
    .expect("browser scenarios");

    a2.kill();
    let u = url.clone();
    tokio::task::spawn_blocking(move || browser(&["status", &u, "lab:n2", "down"]))
        .await
        .expect("down scenario");
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_under_a_path_prefix() {
    let a1 = Agent::start("127.0.0.10");
    // 300 hosts before it: the page gathers the overview from three parts.
    let agg = Aggregator::start(&fleet_config_after(300, &[&a1], "/smon")).await;
    agg.wait_row("lab:n1", Duration::from_secs(10), "up", |r| {
        r["status"] == "up"
    })
    .await;
    let url = format!("{}/", agg.base);
    assert!(url.ends_with("/smon/"));
    tokio::task::spawn_blocking(move || {
        browser(&["home", &url, "lab:n1"]);
        browser(&["host", &url, "lab:n1", "1"]);
        browser(&["transport", &url, "polling"]);
    })
    .await
    .expect("prefix scenarios");
    agg.shutdown().await;
}

/// Past 2,000 hosts the overview starts with its clusters folded (a browser lays out the whole
/// table on every change); filtering finds a host and shows it live; an opened cluster stays
/// open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_fleet_starts_folded() {
    let a1 = Agent::start("127.0.0.11");
    let agg = Aggregator::start(&fleet_config_after(2100, &[&a1], "/")).await;
    agg.wait_row("lab:n1", Duration::from_secs(20), "up", |r| {
        r["status"] == "up"
    })
    .await;
    let url = format!("{}/", agg.base);
    tokio::task::spawn_blocking(move || browser(&["large", &url, "lab:n1"]))
        .await
        .expect("large-fleet scenario");
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_single_host_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = free_port("127.0.0.1");
    let cfg = dir.path().join("config_node.json");
    crate::support::write_users(dir.path(), "smon-agent-users.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"server":{{"host":"127.0.0.1","port":{http},"web":true}},"monitor":{{"mode":"node","interval_ms":500,"grpc_listen":"127.0.0.1:{}","auth":"none","gpu":"fake","fake_gpu_count":2}}}}"#,
            free_port("127.0.0.1")
        ),
    )
    .expect("config");
    let mut child = Command::new(agent_bin())
        .args([
            "--no-supervise".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ])
        .spawn()
        .expect("agent");
    let base = format!("http://127.0.0.1:{http}");
    let mut id = None;
    let mut client = None;
    for _ in 0..100 {
        if client.is_none() && reqwest::get(format!("{base}/healthz")).await.is_ok() {
            client =
                Some(crate::support::login(&base, "admin", crate::support::ADMIN_PASSWORD).await);
        }
        let Some(c) = &client else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if let Ok(r) = c.get(format!("{base}/api/v1/hosts")).send().await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && v[0]["status"] == "up"
        {
            id = v[0]["id"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = id.expect("the agent's own host is up in its web view");
    assert!(id.starts_with("local:"), "{id}");
    let url = format!("{base}/");
    // Whether this host shows kernel threads (a container's /proc may not).
    let kthreads = if std::fs::read_to_string("/proc/2/comm").is_ok_and(|c| c.trim() == "kthreadd")
    {
        "yes"
    } else {
        "no"
    };
    let result = tokio::task::spawn_blocking(move || {
        browser(&["node", &url, &id, kthreads]);
        browser(&["host", &url, &id, "2"]);
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result.expect("single-host scenarios");
}

/// Sends `sig` (`-STOP`, `-CONT`) to `pid`.
fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill {sig} {pid}");
}

/// The real aggregator binary is frozen with SIGSTOP while a browser watches the overview
/// (desktop) and a host page (phone): both pages must say "Stale" in the indicator and in the
/// banner together, never "Live" next to a stale banner; after SIGCONT both say "Live" again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicator_and_banner_agree_when_the_server_freezes() {
    let a1 = Agent::start("127.0.0.12");
    let dir = tempfile::tempdir().expect("tempdir");
    crate::support::write_users(dir.path(), "smon-users.json");
    let port = free_port("127.0.0.1");
    let cfg = dir.path().join("config_app.json");
    let hosts = crate::support::hosts_json(&[&a1]);
    std::fs::write(
        &cfg,
        format!(
            r#"{{"server":{{"host":"127.0.0.1","port":{port}}},"monitor":{{"mode":"app","poll_interval_ms":500,"include_self":false,"clusters":[{{"name":"lab","hosts":[{hosts}]}}]}}}}"#
        ),
    )
    .expect("config");
    let mut agg = crate::support::aggregator(&cfg)
        .spawn()
        .expect("aggregator");
    let pid = agg.id();
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let client = loop {
        if reqwest::get(format!("{base}/healthz")).await.is_ok() {
            break crate::support::login(&base, "admin", crate::support::ADMIN_PASSWORD).await;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no aggregator");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    loop {
        let v: serde_json::Value = match client.get(format!("{base}/api/v1/hosts")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        if v[0]["status"] == "up" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "lab:n1 not up: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("{base}/");
    let out = tokio::task::spawn_blocking(move || {
        let _turn = ONE_BROWSER.lock().unwrap_or_else(|p| p.into_inner());
        let mut child = Command::new("node")
            .arg(ui_dir().join("tests/browser.mjs"))
            .args(["freeze", &url, "lab:n1"])
            .env("SMON_LOGIN", crate::support::BROWSER_LOGIN)
            .current_dir(ui_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node is installed");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut said = String::new();
        let mut stopped = false;
        for line in lines.by_ref().map_while(Result::ok) {
            said.push_str(&line);
            said.push('\n');
            match line.trim() {
                "ready" => {
                    signal(pid, "-STOP");
                    stopped = true;
                }
                "frozen" => {
                    signal(pid, "-CONT");
                    stopped = false;
                }
                _ => {}
            }
        }
        if stopped {
            signal(pid, "-CONT");
        }
        let out = child.wait_with_output().expect("wait");
        (
            out.status,
            said,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await;
    let _ = agg.kill();
    let _ = agg.wait();
    let (status, said, err) = out.expect("browser");
    assert!(
        status.success() && said.contains("ok: freeze:"),
        "browser.mjs freeze failed:\n--- stdout\n{said}\n--- stderr\n{err}"
    );
}

/// Writes the README screenshots of a demo fleet (fake GPUs) to `docs/screenshots/`:
/// `cargo test -p smon-aggregator --test it screenshots -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/screenshots; run on demand"]
async fn screenshots() {
    let agents: Vec<Agent> = (2..=6)
        .map(|i| Agent::start(&format!("127.0.1.{i}")))
        .collect();
    let refs: Vec<&Agent> = agents.iter().collect();
    let agg = Aggregator::start(&fleet_config(&refs, "/")).await;
    agg.wait_row("lab:n5", Duration::from_secs(10), "up", |r| {
        r["status"] == "up"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await; // some history for the charts
    let url = format!("{}/", agg.base);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&out).expect("mkdir");
    let out = out.display().to_string();
    tokio::task::spawn_blocking(move || browser(&["screenshot", &url, &out]))
        .await
        .expect("screenshots");
    agg.shutdown().await;
}
