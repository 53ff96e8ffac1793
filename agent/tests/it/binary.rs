//! The real `smon-agent` binary: signals, `--once --json`, the exit status of a bad config,
//! secrets kept out of logs, and running as the unprivileged user `nobody`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smon_proto::{GetSnapshotRequest, Parts, WatchRequest};
use tokio_stream::StreamExt as _;

use crate::support::{self, TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_smon-agent");

fn write_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let path = dir.join("config_node.json");
    let text = format!(
        r#"{{"monitor":{{"mode":"node","interval_ms":200,"grpc_listen":"127.0.0.1:{port}","gpu":"fake","fake_gpu_count":1{extra}}}}}"#
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, sig).expect("kill");
}

/// Waits for the child to exit, at most `limit`; returns its status and how long it took.
fn wait_exit(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return (st, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("agent still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

async fn stops_on(sig: rustix::process::Signal) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = support::free_port();
    let cfg = write_config(dir.path(), port, "");
    let mut child = Command::new(BIN)
        .args(["--config".as_ref(), cfg.as_os_str()])
        .env("SMON_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut c = support::client(addr, Some(TOKEN)).await;
    // An open Watch stream must not hold shutdown up.
    let mut stream = c
        .watch(WatchRequest::default())
        .await
        .expect("watch")
        .into_inner();
    stream.next().await.expect("first").expect("ok");
    // A refused call is logged without the token that was tried.
    let mut bad = support::client(addr, Some("not-the-token-but-long-enough")).await;
    bad.get_snapshot(GetSnapshotRequest::default())
        .await
        .expect_err("refused");

    signal(&child, sig);
    let (status, took) = wait_exit(&mut child, Duration::from_secs(2));
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let log = stderr_of(&mut child);
    assert!(log.contains("Refused a gRPC call"), "{log}");
    assert!(log.contains("wrong bearer token"), "{log}");
    assert!(
        !log.contains(TOKEN) && !log.contains("not-the-token"),
        "a token reached the log:\n{log}"
    );
    assert!(log.contains("Stopped."), "{log}");
}

#[tokio::test]
async fn sigterm_stops_within_two_seconds() {
    stops_on(rustix::process::Signal::TERM).await;
}

#[tokio::test]
async fn sigint_stops_within_two_seconds() {
    stops_on(rustix::process::Signal::INT).await;
}

#[test]
fn once_json_prints_a_full_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), support::free_port(), "");
    let out = Command::new(BIN)
        .args([
            "--once".as_ref(),
            "--json".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ])
        .env("SMON_TOKEN", TOKEN)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["seq"], 1);
    assert!(v["process_count"].as_u64().expect("count") > 0);
    assert_eq!(
        v["processes"].as_array().expect("processes").len() as u64,
        v["process_count"].as_u64().expect("count")
    );
    assert!(
        v["cpu"]["per_core_percent"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    assert_eq!(v["gpus"][0]["name"], "Fake NVIDIA H100 80GB HBM3");
    assert!(v["gpus"][0]["processes"][0]["user"].is_string());
    assert!(v["memory"]["total_bytes"].as_u64().expect("mem") > 0);
    assert!(v["disks"].is_array() && v["networks"].is_array() && v["sessions"].is_array());
}

#[test]
fn bad_config_exits_64_naming_file_field_and_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bad.json");
    std::fs::write(
        &cfg,
        r#"{"monitor":{"mode":"node","interval_ms":50,"grpc_listen":"node7:50O51"}}"#,
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["--config".as_ref(), cfg.as_os_str()])
        .env_remove("SMON_TOKEN")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = cfg.display().to_string();
    assert!(
        err.contains(&format!(
            "{file}: monitor.interval_ms: '50' is below the minimum of 100"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}: monitor.grpc_listen: 'node7:50O51' is not a socket address"
        )),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/config_node.json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("/nonexistent/config_node.json: cannot read the file")
    );
}

/// `--check-config` and `--once` write nothing: a missing `monitor.token_file` is created
/// when the agent starts to serve, not while its config is checked or a sample is printed.
#[test]
fn check_config_and_once_create_no_token_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = support::free_port();
    let cfg = write_config(dir.path(), port, r#","token_file":"agent.token""#);
    let token = dir.path().join("agent.token");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(["--config".as_ref(), cfg.as_os_str()])
            .args(args)
            .env_remove("SMON_TOKEN")
            .output()
            .expect("run")
    };
    let out = run(&["--check-config"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("configuration is valid"));
    assert!(!token.exists(), "--check-config created the token file");
    let out = run(&["--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!token.exists(), "--once created the token file");
    // Nothing else appeared either: the directory holds the config alone.
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);

    // A token file whose directory is missing is still a config error (64), and nothing
    // is created on the way.
    let other = tempfile::tempdir().expect("tempdir");
    let bad = write_config(
        other.path(),
        port,
        r#","token_file":"no-such-dir/agent.token""#,
    );
    let out = Command::new(BIN)
        .args([
            "--check-config".as_ref(),
            "--config".as_ref(),
            bad.as_os_str(),
        ])
        .env_remove("SMON_TOKEN")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist and cannot be created"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!other.path().join("no-such-dir").exists());

    // Serving creates it, owner-only, and the agent answers with the token written there.
    let mut child = Command::new(BIN)
        .args([
            "--no-supervise".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ])
        .env_remove("SMON_TOKEN")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !token.exists() {
        assert!(
            Instant::now() < deadline,
            "serving did not create the token file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&token)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    signal(&child, rustix::process::Signal::TERM);
    let (st, _) = wait_exit(&mut child, Duration::from_secs(5));
    let log = stderr_of(&mut child);
    assert!(st.success(), "{log}");
    assert!(log.contains("Created a new random gRPC token"), "{log}");
}

/// Runs everything as `nobody` when the tests run as root (CI does); otherwise the tests
/// already run unprivileged and the same checks apply to the current user.
#[tokio::test]
async fn runs_unprivileged_as_nobody() {
    let root = rustix::process::geteuid().is_root();
    // nobody must be able to reach the binary and the config: copy both to a 0755 directory.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let bin = dir.path().join("smon-agent");
    std::fs::copy(BIN, &bin).expect("copy binary");
    let port = support::free_port();
    let cfg = write_config(dir.path(), port, "");
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let expected_user = if root {
        "nobody".to_owned()
    } else {
        support::current_user()
    };
    let mut child = cmd
        .args([
            "--no-supervise".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ]) // the serving process itself is the child
        .env("SMON_TOKEN", TOKEN)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");

    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut c = support::client(addr, Some(TOKEN)).await;
    let mut snap = c
        .get_snapshot(GetSnapshotRequest {
            parts: Some(Parts::DETAIL),
        })
        .await;
    for _ in 0..20 {
        if snap.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        snap = c
            .get_snapshot(GetSnapshotRequest {
                parts: Some(Parts::DETAIL),
            })
            .await;
    }
    let snap = snap
        .expect("detail snapshot from the unprivileged agent")
        .into_inner();
    let me = snap
        .processes
        .iter()
        .find(|p| p.pid == child.id())
        .expect("the agent lists itself");
    assert_eq!(me.user, expected_user);
    assert!(
        snap.processes.iter().any(|p| p.pid == 1),
        "other users' processes are visible"
    );
    assert!(
        snap.cpu.is_some() && snap.memory.is_some() && !snap.disks.is_empty(),
        "{:?}",
        snap.errors
    );
    assert!(
        snap.errors.is_empty(),
        "collector errors as {expected_user}: {:?}",
        snap.errors
    );
    assert_eq!(snap.gpus[0].processes[0].user, expected_user);

    signal(&child, rustix::process::Signal::TERM);
    let (status, _) = wait_exit(&mut child, Duration::from_secs(2));
    assert!(status.success(), "{}", stderr_of(&mut child));
}

/// `server.run_as`: started as root, the agent reads its root-only users file, binds, then
/// serves as `nobody` (real, effective and saved ids, and no supplementary groups of root).
/// Without root (a developer's machine) the switch is impossible and must be refused.
#[tokio::test]
async fn run_as_drops_privileges_after_binding() {
    let root = rustix::process::geteuid().is_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = support::free_port();
    let web = support::free_port();
    let users = dir.path().join("smon-agent-users.json");
    let hash = smon_web::security::users::hash_password("a-long-password").expect("hash");
    std::fs::write(
        &users,
        format!(r#"{{"users":[{{"name":"admin","password_hash":"{hash}","role":"admin"}}]}}"#),
    )
    .expect("users");
    std::fs::set_permissions(&users, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let cfg = dir.path().join("config_node.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"server":{{"host":"127.0.0.1","port":{web},"web":true,"run_as":"nobody"}},"monitor":{{"mode":"node","interval_ms":200,"grpc_listen":"127.0.0.1:{port}","auth":"none","gpu":"off"}}}}"#
        ),
    )
    .expect("config");
    let mut child = Command::new(BIN)
        .args([
            "--no-supervise".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if !root {
        let (status, _) = wait_exit(&mut child, Duration::from_secs(5));
        assert!(!status.success());
        let log = stderr_of(&mut child);
        assert!(
            log.contains("server.run_as is 'nobody'") && log.contains("cannot switch"),
            "{log}"
        );
        return;
    }
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut c = support::client(addr, None).await;
    let mut ok = false;
    for _ in 0..50 {
        if c.get_snapshot(GetSnapshotRequest::default()).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("status");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok,
        "the agent serves after dropping privileges: {}",
        stderr_of(&mut child)
    );
    let ids = |key: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    assert_eq!(ids("Uid:"), vec!["65534"; 4], "{status}");
    assert_eq!(ids("Gid:"), vec!["65534"; 4], "{status}");
    assert!(!ids("Groups:").contains(&"0".to_owned()), "{status}");
}
