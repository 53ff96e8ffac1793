//! `manager.mode = "systemd"`: the real binary speaks systemd's notification protocol. The
//! test plays systemd: it listens on a datagram socket named by `NOTIFY_SOCKET`, sets
//! `WATCHDOG_USEC` and `WATCHDOG_PID` as systemd does for `Type=notify` + `WatchdogSec=`, and
//! expects `READY=1` once the agent serves, `WATCHDOG=1` every half period, and `STOPPING=1`
//! on SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smon_proto::GetInfoRequest;
use tokio::net::UnixDatagram;

use crate::support;

const BIN: &str = env!("CARGO_BIN_EXE_smon-agent");

/// Kills the agent if the test fails half-way.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the agent as systemd would: `NOTIFY_SOCKET`, and when `watchdog_usec` is given,
/// `WATCHDOG_USEC` with `WATCHDOG_PID` set to the agent's own pid (the shell `exec`s it).
fn spawn(dir: &Path, port: u16, watchdog_usec: Option<u64>) -> KillOnDrop {
    let cfg = dir.join("config_node.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"manager":{{"mode":"systemd"}},"monitor":{{"mode":"node","interval_ms":200,"grpc_listen":"127.0.0.1:{port}","auth":"none","gpu":"off"}}}}"#
        ),
    )
    .expect("write config");
    let mut cmd = Command::new("/bin/sh");
    match watchdog_usec {
        Some(usec) => {
            cmd.args(["-c", r#"export WATCHDOG_PID=$$; exec "$0" "$@""#])
                .env("WATCHDOG_USEC", usec.to_string());
        }
        None => {
            cmd.args(["-c", r#"exec "$0" "$@""#]);
        }
    }
    let child = cmd
        .arg(BIN)
        .arg("--config")
        .arg(&cfg)
        .env("NOTIFY_SOCKET", dir.join("notify.sock"))
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agent");
    KillOnDrop(child)
}

/// Receives datagrams for `window` (or until one equals `until`), each with its arrival time.
async fn receive(
    sock: &UnixDatagram,
    window: Duration,
    until: Option<&str>,
) -> Vec<(Instant, String)> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
        let msg = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
        let stop = until == Some(msg.as_str());
        got.push((Instant::now(), msg));
        if stop {
            break;
        }
    }
    got
}

async fn answers_grpc(port: u16) {
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut c = support::client(addr, None).await;
    c.get_info(GetInfoRequest::default())
        .await
        .expect("GetInfo after READY=1");
}

fn sigterm(child: &Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
}

#[tokio::test]
async fn ready_then_watchdog_pets_then_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = UnixDatagram::bind(dir.path().join("notify.sock")).expect("bind notify socket");
    let port = support::free_port();
    let mut agent = spawn(dir.path(), port, Some(400_000));

    let start = receive(&sock, Duration::from_secs(15), Some("READY=1")).await;
    assert_eq!(
        start.last().map(|(_, m)| m.as_str()),
        Some("READY=1"),
        "no READY=1 within 15 s: {start:?}"
    );
    assert!(
        start.iter().all(|(_, m)| !m.starts_with("WATCHDOG")),
        "a watchdog pet before READY=1: {start:?}"
    );
    // READY=1 means serving: gRPC answers now.
    answers_grpc(port).await;

    // WATCHDOG_USEC=400000: a pet every 200 ms.
    let window = Duration::from_millis(1500);
    let got = receive(&sock, window, None).await;
    let pets: Vec<Instant> = got
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    assert!(
        (5..=10).contains(&pets.len()),
        "{} pets in {window:?}, expected about 7: {got:?}",
        pets.len()
    );
    let longest = pets
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .expect("two pets");
    assert!(
        longest < Duration::from_millis(400),
        "a gap of {longest:?} between pets (the timeout is 400 ms)"
    );

    sigterm(&agent.0);
    let end = receive(&sock, Duration::from_secs(3), Some("STOPPING=1")).await;
    assert!(
        end.iter().any(|(_, m)| m == "STOPPING=1"),
        "no STOPPING=1 after SIGTERM: {end:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(st) = agent.0.try_wait().expect("try_wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "still running 3 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn without_a_watchdog_only_ready_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = UnixDatagram::bind(dir.path().join("notify.sock")).expect("bind notify socket");
    let port = support::free_port();
    let _agent = spawn(dir.path(), port, None);

    let start = receive(&sock, Duration::from_secs(15), Some("READY=1")).await;
    assert_eq!(
        start.last().map(|(_, m)| m.as_str()),
        Some("READY=1"),
        "{start:?}"
    );
    answers_grpc(port).await;
    let after = receive(&sock, Duration::from_millis(800), None).await;
    assert!(after.is_empty(), "{after:?}");
}

/// The repository root (the agent crate's parent).
fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// Every leaf of a JSON object as `dotted.key = value`.
fn leaves(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match v.as_object() {
        Some(o) => {
            for (k, v) in o {
                leaves(v, &format!("{prefix}{k}."), out);
            }
        }
        None => out.push((prefix.trim_end_matches('.').to_owned(), v.clone())),
    }
}

fn differences(example: &str, packaged: &str) -> Vec<String> {
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(repo().join(p)).expect(p)).expect(p)
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    leaves(&read(example), "", &mut a);
    leaves(&read(packaged), "", &mut b);
    let mut diff: Vec<String> = b
        .iter()
        .filter(|kv| !a.contains(kv))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    diff.extend(
        a.iter()
            .filter(|(k, _)| !b.iter().any(|(k2, _)| k2 == k))
            .map(|(k, _)| format!("{k} missing")),
    );
    diff.sort();
    diff
}

#[test]
fn the_packaged_configs_are_the_examples_run_by_systemd() {
    // Only what systemd and the read-only /etc need differs from the repository's examples.
    assert_eq!(
        differences("config_node.json", "deploy/debian/config_node.json"),
        vec![
            r#"manager.mode="systemd""#.to_owned(),
            r#"monitor.token_file="/var/lib/smon/agent.token""#.to_owned(),
            r#"server.auth.users_file="/var/lib/smon/smon-agent-users.json""#.to_owned(),
            r#"storage.dir="/var/lib/smon/agent-history""#.to_owned(),
        ]
    );
    assert_eq!(
        differences("config_app.json", "deploy/debian/config_app.json"),
        vec![
            r#"manager.mode="systemd""#.to_owned(),
            r#"server.auth.users_file="/var/lib/smon/smon-users.json""#.to_owned(),
            r#"storage.dir="/var/lib/smon""#.to_owned(),
        ]
    );
    // And the agent accepts its packaged config (SMON_TOKEN set: the token file is not read).
    let env = smon_agent::config::Env {
        smon_token: Some(support::TOKEN.to_owned()),
    };
    let s = smon_agent::config::load_file(&repo().join("deploy/debian/config_node.json"), &env)
        .expect("the packaged config_node.json is valid");
    assert_eq!(s.manager, smon_runtime::config::ManagerMode::Systemd);
}

#[test]
fn the_units_run_the_packaged_configs_with_notify_and_a_watchdog() {
    for (unit, bin, cfg) in [
        ("smon-agent.service", "smon-agent", "config_node.json"),
        (
            "smon-aggregator.service",
            "smon-aggregator",
            "config_app.json",
        ),
    ] {
        let text = std::fs::read_to_string(repo().join("deploy/systemd").join(unit)).expect(unit);
        for line in [
            format!("ExecStart=/usr/bin/{bin} --config /etc/smon/{cfg}"),
            "Type=notify".to_owned(),
            "NotifyAccess=main".to_owned(),
            "WatchdogSec=10".to_owned(),
            "Restart=on-failure".to_owned(),
            "User=smon".to_owned(),
            "StateDirectory=smon".to_owned(),
            "ProtectSystem=strict".to_owned(),
            "NoNewPrivileges=yes".to_owned(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{unit} lacks the line {line}"
            );
        }
        // No capability, but the aggregator's CAP_NET_RAW for its reachability pings (the
        // raw ICMP socket, when net.ipv4.ping_group_range leaves its group out).
        let caps = if bin == "smon-aggregator" {
            "CAP_NET_RAW"
        } else {
            ""
        };
        for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
            let line = format!("{key}={caps}");
            assert!(
                text.lines().any(|l| l == line),
                "{unit} lacks the line {line}"
            );
        }
        // `systemctl reload` sends SIGHUP where the daemon reloads its config on it (the
        // aggregator); the agent has nothing to reload, so no reload is offered.
        let reload = "ExecReload=/bin/kill -HUP $MAINPID";
        assert_eq!(
            text.lines().any(|l| l == reload),
            bin == "smon-aggregator",
            "{unit}: ExecReload"
        );
    }
}
