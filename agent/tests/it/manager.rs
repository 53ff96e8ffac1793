//! `manager.mode = "self"` with the real binary: the manager restarts a server that is killed,
//! replaces one that freezes (SIGSTOP: alive but not answering), and stops it on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use smon_proto::{GetSnapshotRequest, Parts};

use crate::support;

const BIN: &str = env!("CARGO_BIN_EXE_smon-agent");

/// The pid of the serving child of `manager`, as the agent itself reports it.
async fn server_pid(addr: std::net::SocketAddr, manager: u32, limit: Duration) -> u32 {
    let start = Instant::now();
    loop {
        let mut c = support::client(addr, None).await;
        if let Ok(s) = c
            .get_snapshot(GetSnapshotRequest {
                parts: Some(Parts::DETAIL),
            })
            .await
            && let Some(p) = s
                .into_inner()
                .processes
                .iter()
                .find(|p| p.ppid == manager && p.name.starts_with("smon-agent"))
        {
            return p.pid;
        }
        assert!(
            start.elapsed() < limit,
            "no server under manager {manager} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_restarts_a_dead_or_frozen_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = support::free_port();
    let cfg = dir.path().join("config_node.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"manager":{{"mode":"self","probe_interval_ms":300,"probe_failures":2,"startup_grace_ms":3000}},
                "monitor":{{"mode":"node","interval_ms":200,"grpc_listen":"127.0.0.1:{port}","auth":"none","gpu":"off"}}}}"#
        ),
    )
    .expect("config");
    let mut manager = Command::new(BIN)
        .args(["--config".as_ref(), cfg.as_os_str()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn manager");
    let mpid = manager.id();
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");

    let first = server_pid(addr, mpid, Duration::from_secs(10)).await;
    assert_ne!(first, mpid, "the manager does not serve itself");

    // Killed: restarted (after 1 s of backoff).
    signal(first, rustix::process::Signal::KILL);
    let second = server_pid(addr, mpid, Duration::from_secs(10)).await;
    assert_ne!(second, first);

    // Frozen: the process lives but does not answer; the probe notices and replaces it.
    signal(second, rustix::process::Signal::STOP);
    let frozen_at = Instant::now();
    let third = loop {
        let p = server_pid(addr, mpid, Duration::from_secs(20)).await;
        if p != second {
            break p;
        }
    };
    assert_ne!(third, second);
    assert!(
        frozen_at.elapsed() < Duration::from_secs(15),
        "took {:?}",
        frozen_at.elapsed()
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{second}")).exists() || {
            // A stopped process that was killed may linger as a zombie for a moment.
            std::fs::read_to_string(format!("/proc/{second}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true)
        }
    );

    // SIGTERM to the manager stops the server too, within 2 s.
    signal(mpid, rustix::process::Signal::TERM);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = manager.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "manager still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    if let Some(mut e) = manager.stderr.take() {
        use std::io::Read as _;
        let _ = e.read_to_string(&mut log);
    }
    assert!(
        log.contains("killed by signal 9"),
        "restart reason logged:\n{log}"
    );
    assert!(
        log.contains("stopped answering its health probe"),
        "freeze reason logged:\n{log}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the server stopped with its manager"
    );
}
