//! The `smon.v1.Control` service over a real socket: `Wake` relays a magic packet to a UDP
//! listener of the test's, `Power` starts the configured command (a `touch` in a temporary
//! directory: never a real reboot), each only with the control token (the read token gets
//! PERMISSION_DENIED, anything else UNAUTHENTICATED), with the switches off by default and
//! one power action per 10 s. An agent without a control token does not serve the service.
//! The real binary logs every call under `smon::control` with its peer and outcome, and no
//! token.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use smon_proto::control_client::ControlClient;
use smon_proto::{GetSnapshotRequest, PowerAction, PowerRequest, WakeRequest};
use tokio::net::UdpSocket;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::support::{self, Bearer, TOKEN};

/// The control token of these tests (the read token is `support::TOKEN`).
const CONTROL: &str = "control-test-token-0123456789abc";

const MAC: &str = "52:54:00:12:34:56";

type Client = ControlClient<InterceptedService<Channel, Bearer>>;

/// Settings with the read token, no GPUs, and the `control` block `control` (JSON).
fn settings(control: serde_json::Value) -> smon_agent::config::Settings {
    let cfg = serde_json::json!({
        "monitor": {"mode": "node", "interval_ms": 100, "token": TOKEN, "gpu": "off"},
        "control": control,
    });
    smon_agent::config::load_str(
        &cfg.to_string(),
        "test.json",
        Path::new("."),
        &smon_agent::config::Env::default(),
    )
    .expect("valid test config")
}

/// A Control client for `addr` sending `token`, retrying for up to 10 s while the agent starts.
async fn control(addr: SocketAddr, token: Option<&str>) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
        {
            Ok(ch) => return ControlClient::with_interceptor(ch, Bearer(token.map(str::to_owned))),
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The packet that wakes [`MAC`], written out here rather than taken from the library.
fn expected_packet() -> Vec<u8> {
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let mut p = vec![0xFF; 6];
    for _ in 0..16 {
        p.extend_from_slice(&mac);
    }
    p
}

fn wake_to(rx: &UdpSocket) -> WakeRequest {
    WakeRequest {
        mac: MAC.into(),
        broadcast: "127.0.0.1".into(),
        port: u32::from(rx.local_addr().expect("addr").port()),
    }
}

/// The next datagram on `rx`, if one arrives within `wait`.
async fn datagram(rx: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(wait, rx.recv_from(&mut buf))
        .await
        .ok()?
        .expect("recv");
    Some(buf[..n].to_vec())
}

/// Waits up to 5 s for `path` to exist.
async fn appears(path: &Path) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Whether process `pid` is gone or at least not a zombie, within 3 s.
async fn reaped(pid: u32) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            // The state follows the command name in parentheses.
            Ok(stat) => match stat.rsplit_once(')') {
                Some((_, rest)) if !rest.trim_start().starts_with('Z') => return true,
                _ => {}
            },
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_relays_the_magic_packet_for_the_control_token_only() {
    let agent = support::start_with(settings(serde_json::json!({"token": CONTROL}))).await;
    let rx = UdpSocket::bind("127.0.0.1:0").await.expect("bind");

    let reply = control(agent.addr, Some(CONTROL))
        .await
        .wake(wake_to(&rx))
        .await
        .expect("woken")
        .into_inner();
    assert_eq!(
        reply.sent_to,
        rx.local_addr().expect("addr").to_string(),
        "{reply:?}"
    );
    assert_eq!(reply.bytes, 102);
    let got = datagram(&rx, Duration::from_secs(5))
        .await
        .expect("a packet");
    assert_eq!(got, expected_packet());

    // Refused callers send nothing.
    let e = control(agent.addr, Some(TOKEN))
        .await
        .wake(wake_to(&rx))
        .await
        .expect_err("the read token");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message()
            .contains("this is the read token; control needs the control token"),
        "{e:?}"
    );
    for token in [None, Some("wrong-token-but-long-enough-0000")] {
        let e = control(agent.addr, token)
            .await
            .wake(wake_to(&rx))
            .await
            .expect_err("no or a wrong token");
        assert_eq!(e.code(), Code::Unauthenticated, "{token:?}: {e:?}");
    }
    assert_eq!(
        datagram(&rx, Duration::from_millis(300)).await,
        None,
        "a refused call sent a packet"
    );

    // Bad arguments name their field.
    let mut c = control(agent.addr, Some(CONTROL)).await;
    for (req, field) in [
        (
            WakeRequest {
                mac: "52:54:00:12:34".into(),
                ..wake_to(&rx)
            },
            "mac: '52:54:00:12:34' is not a MAC address",
        ),
        (
            WakeRequest {
                broadcast: "::1".into(),
                ..wake_to(&rx)
            },
            "broadcast: '::1' is not an IPv4 address",
        ),
        (
            WakeRequest {
                port: 65_536,
                ..wake_to(&rx)
            },
            "port: 65536 is not a UDP port",
        ),
    ] {
        let e = c.wake(req).await.expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{e:?}");
    }

    // The Agent service is unchanged: the read token reads, the control token does not.
    let mut read = support::client(agent.addr, Some(TOKEN)).await;
    read.get_snapshot(GetSnapshotRequest::default())
        .await
        .expect("the read token reads");
    let mut wrong = support::client(agent.addr, Some(CONTROL)).await;
    let e = wrong
        .get_snapshot(GetSnapshotRequest::default())
        .await
        .expect_err("the control token is not a read token");
    assert_eq!(e.code(), Code::Unauthenticated);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_off_is_a_failed_precondition() {
    let agent = support::start_with(settings(
        serde_json::json!({"token": CONTROL, "wake": false}),
    ))
    .await;
    let rx = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let e = control(agent.addr, Some(CONTROL))
        .await
        .wake(wake_to(&rx))
        .await
        .expect_err("off");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("control.wake"), "{e:?}");
    assert_eq!(datagram(&rx, Duration::from_millis(300)).await, None);
    agent.shutdown().await;
}

/// A `control` block whose power commands touch `rebooted` and `shut-down` in `dir`.
fn power(dir: &Path, enabled: Option<bool>) -> serde_json::Value {
    let mut p = serde_json::json!({
        "reboot": ["/bin/sh", "-c", format!("touch '{}'", dir.join("rebooted").display())],
        "shutdown": ["touch", dir.join("shut-down").display().to_string()],
    });
    if let Some(on) = enabled {
        p["enabled"] = on.into();
    }
    serde_json::json!({"token": CONTROL, "power": p})
}

fn action(a: PowerAction) -> PowerRequest {
    PowerRequest { action: a as i32 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_runs_the_configured_command_once_per_ten_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rebooted = dir.path().join("rebooted");
    let shut_down = dir.path().join("shut-down");
    let agent = support::start_with(settings(power(dir.path(), Some(true)))).await;

    let e = control(agent.addr, Some(TOKEN))
        .await
        .power(action(PowerAction::Reboot))
        .await
        .expect_err("the read token");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let mut c = control(agent.addr, Some(CONTROL)).await;
    let e = c
        .power(action(PowerAction::Unspecified))
        .await
        .expect_err("no action");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!rebooted.exists(), "a refused call ran the command");

    let reply = c
        .power(action(PowerAction::Reboot))
        .await
        .expect("started")
        .into_inner();
    assert!(reply.command.starts_with("/bin/sh -c touch"), "{reply:?}");
    assert!(reply.pid > 0);
    assert!(appears(&rebooted).await, "the reboot command ran");
    assert!(reaped(reply.pid).await, "the command was left a zombie");

    // A second action within 10 s is refused, whichever it is.
    for a in [PowerAction::Reboot, PowerAction::Shutdown] {
        let e = c.power(action(a)).await.expect_err("too soon");
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        assert!(e.message().contains("at most one per 10 s"), "{e:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!shut_down.exists(), "a refused shutdown ran");
    agent.shutdown().await;

    // Shutdown, on a fresh agent (its own 10 s).
    let agent = support::start_with(settings(power(dir.path(), Some(true)))).await;
    let reply = control(agent.addr, Some(CONTROL))
        .await
        .power(action(PowerAction::Shutdown))
        .await
        .expect("started")
        .into_inner();
    assert_eq!(
        reply.command,
        format!("touch {}", shut_down.display()),
        "{reply:?}"
    );
    assert!(appears(&shut_down).await, "the shutdown command ran");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_is_off_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = support::start_with(settings(power(dir.path(), None))).await;
    let mut c = control(agent.addr, Some(CONTROL)).await;
    for a in [PowerAction::Reboot, PowerAction::Shutdown] {
        let e = c.power(action(a)).await.expect_err("off");
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
        assert_eq!(
            e.message(),
            "power actions are off on this agent: set control.power.enabled"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_control_token_control_is_unimplemented() {
    let agent = support::start(0).await;
    let rx = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for token in [Some(TOKEN), Some(CONTROL), None] {
        let mut c = control(agent.addr, token).await;
        let e = c.wake(wake_to(&rx)).await.expect_err("not served");
        assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
        let e = c
            .power(action(PowerAction::Reboot))
            .await
            .expect_err("not served");
        assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    }
    assert_eq!(datagram(&rx, Duration::from_millis(300)).await, None);
    support::client(agent.addr, Some(TOKEN))
        .await
        .get_snapshot(GetSnapshotRequest::default())
        .await
        .expect("the Agent service still works");
    agent.shutdown().await;
}

/// The `smon::control` lines of a JSON log, as `(outcome, message, whole line)`.
fn control_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "smon::control")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_every_control_call_with_its_peer_and_no_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = support::free_port();
    // A token file relative to the config, owner-only.
    let token_file = dir.path().join("smon-control.token");
    std::fs::write(&token_file, format!("{CONTROL}\n")).expect("token file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    let mut control_block = power(dir.path(), Some(true));
    control_block
        .as_object_mut()
        .expect("object")
        .remove("token");
    control_block["token_file"] = "smon-control.token".into();
    let cfg = serde_json::json!({
        "monitor": {"mode": "node", "interval_ms": 200, "grpc_listen": format!("127.0.0.1:{port}"), "gpu": "off"},
        "control": control_block,
    });
    let cfg_path: PathBuf = dir.path().join("config_node.json");
    std::fs::write(&cfg_path, cfg.to_string()).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_smon-agent"))
        .args(["--log-format", "json", "--config"])
        .arg(&cfg_path)
        .env("SMON_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let rx = UdpSocket::bind("127.0.0.1:0").await.expect("bind");

    let mut c = control(addr, Some(CONTROL)).await;
    c.wake(wake_to(&rx)).await.expect("woken");
    assert_eq!(
        datagram(&rx, Duration::from_secs(5)).await,
        Some(expected_packet()),
        "sent by the agent process"
    );
    control(addr, Some(TOKEN))
        .await
        .wake(wake_to(&rx))
        .await
        .expect_err("read token");
    control(addr, Some("wrong-token-but-long-enough-0000"))
        .await
        .power(action(PowerAction::Reboot))
        .await
        .expect_err("wrong token");
    let started = c
        .power(action(PowerAction::Reboot))
        .await
        .expect("started")
        .into_inner();
    assert!(appears(&dir.path().join("rebooted")).await);
    c.power(action(PowerAction::Reboot))
        .await
        .expect_err("too soon");

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM");
    let status = child.wait().expect("wait");
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        !log.contains(CONTROL) && !log.contains(TOKEN) && !log.contains("wrong-token"),
        "a token reached the log:\n{log}"
    );

    let lines = control_lines(&log);
    let summary: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            let f = &l["fields"];
            (
                f["action"].as_str().unwrap_or_default().to_owned(),
                f["outcome"].as_str().unwrap_or_default().to_owned(),
                f["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let calls: Vec<_> = summary
        .iter()
        .filter(|(action, _, _)| !action.is_empty())
        .collect();
    assert_eq!(calls.len(), 5, "one line per call:\n{log}");
    let want = [
        ("wake", "ok", "sent 102 bytes to 127.0.0.1:"),
        ("wake", "refused", "this is the read token"),
        ("power", "refused", "wrong bearer token"),
        ("power", "ok", "started '/bin/sh -c touch"),
        ("power", "refused", "at most one per 10 s"),
    ];
    for ((action, outcome, message), (want_action, want_outcome, want_message)) in
        calls.iter().zip(want)
    {
        assert_eq!(
            (action.as_str(), outcome.as_str()),
            (want_action, want_outcome),
            "{log}"
        );
        assert!(message.contains(want_message), "{message:?} in\n{log}");
    }
    for l in lines.iter().filter(|l| !l["fields"]["action"].is_null()) {
        let peer = l["fields"]["peer"].as_str().unwrap_or_default();
        assert!(peer.starts_with("127.0.0.1:"), "peer {peer:?} in {l}");
    }
    assert!(
        lines[0]["fields"]["args"]
            .as_str()
            .is_some_and(|a| a.contains(MAC) && a.contains("to=127.0.0.1:")),
        "{log}"
    );
    assert!(log.contains(&format!("pid {}", started.pid)), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_is_served_over_mutual_tls_as_agent_is() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let pki = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tls/make-certs.sh");
    for args in [
        &["ca"][..],
        &["agent", "node", "127.0.0.1"][..],
        &["client", "aggregator"][..],
    ] {
        let out = Command::new("bash")
            .arg(&script)
            .arg("-d")
            .arg(pki.path())
            .args(args)
            .output()
            .expect("make-certs.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let p = |f: &str| pki.path().join(f).display().to_string();
    let read = |f: &str| std::fs::read(pki.path().join(f)).expect(f);
    let cfg = serde_json::json!({
        "monitor": {"mode": "node", "interval_ms": 100, "token": TOKEN, "gpu": "off",
            "tls": {"cert": p("node.pem"), "key": p("node.key"), "client_ca": p("ca.pem")}},
        "control": {"token": CONTROL},
    });
    let s = smon_agent::config::load_str(
        &cfg.to_string(),
        "tls.json",
        Path::new("."),
        &smon_agent::config::Env::default(),
    )
    .expect("valid");
    let agent = support::start_with(s).await;
    let rx = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let tls = |with_cert: bool| {
        let cfg = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("ca.pem")));
        if with_cert {
            cfg.identity(Identity::from_pem(
                read("aggregator.pem"),
                read("aggregator.key"),
            ))
        } else {
            cfg
        }
    };
    let endpoint = |with_cert: bool| {
        Endpoint::from_shared(format!("https://{}", agent.addr))
            .expect("uri")
            .tls_config(tls(with_cert))
            .expect("tls")
    };
    let started = Instant::now();
    let ch = loop {
        match endpoint(true).connect().await {
            Ok(ch) => break ch,
            Err(e) if started.elapsed() > Duration::from_secs(10) => panic!("mTLS: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut c = ControlClient::with_interceptor(ch, Bearer(Some(CONTROL.into())));
    c.wake(wake_to(&rx)).await.expect("woken over mutual TLS");
    assert_eq!(
        datagram(&rx, Duration::from_secs(5)).await,
        Some(expected_packet())
    );
    // Without a client certificate: no call at all.
    let refused = match endpoint(false).connect().await {
        Err(_) => true,
        Ok(ch) => ControlClient::with_interceptor(ch, Bearer(Some(CONTROL.into())))
            .wake(wake_to(&rx))
            .await
            .is_err(),
    };
    assert!(refused, "a client without a certificate was served");
    assert_eq!(datagram(&rx, Duration::from_millis(300)).await, None);
    agent.shutdown().await;
}

/// `--check-config` with a control block: it reads the control token file and writes nothing;
/// a missing one is an error naming file, field and path (not created, unlike the read
/// token's); one others can read gets the secret-file warning.
#[test]
fn check_config_reads_the_control_token_file_and_creates_none() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config_node.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"monitor":{{"mode":"node","grpc_listen":"127.0.0.1:1","gpu":"off","token":"{TOKEN}"}},"control":{{"token_file":"smon-control.token"}}}}"#
        ),
    )
    .expect("config");
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_smon-agent"))
            .args([
                "--check-config".as_ref(),
                "--config".as_ref(),
                cfg.as_os_str(),
            ])
            .env_remove("SMON_TOKEN")
            .output()
            .expect("run")
    };
    let token = dir.path().join("smon-control.token");
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains(&format!(
            "{}: control.token_file: '{}' does not exist, and the agent does not create the control token",
            cfg.display(),
            token.display()
        )),
        "{err}"
    );
    assert!(
        !token.exists(),
        "--check-config created the control token file"
    );

    std::fs::write(&token, format!("{CONTROL}\n")).expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("smon-control.token: mode 0644 lets group and others read"),
        "{err}"
    );
    assert!(!err.contains(CONTROL), "{err}");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(files.len(), 2, "wrote something: {files:?}");
}
