//! `manager.mode = "supervisor"` with a real `supervisord` (Debian package `supervisor`): the
//! program file written by `smon-agent gen-supervisor-conf` starts the agent, and after a
//! SIGKILL Supervisor starts a new one that answers gRPC again.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use smon_proto::GetInfoRequest;
use smon_proto::agent_client::AgentClient;

use crate::support;

const BIN: &str = env!("CARGO_BIN_EXE_smon-agent");
use crate::supervisor_control::supervisord_common::Supervisord;

/// `supervisorctl pid smon-agent`: the agent's pid, `None` while it is not running.
fn agent_pid(sup: &Supervisord) -> Option<u32> {
    sup.ctl(&["pid", "smon-agent"])
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// What supervisord and the agent logged (in `dir`), for failure messages.
fn logs(sup: &Supervisord, dir: &Path) -> String {
    let agent = std::fs::read_to_string(dir.join("smon-agent.err.log")).unwrap_or_default();
    format!(
        "--- supervisord.log\n{}\n--- smon-agent.err.log\n{agent}\n",
        sup.log()
    )
}

/// Waits up to `limit` for `f` to return `Some`.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Connects and asks for `GetInfo`, retrying within `limit`.
async fn answers(addr: std::net::SocketAddr, limit: Duration) -> bool {
    tokio::time::timeout(limit, async {
        loop {
            let ch = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect()
                .await;
            if let Ok(ch) = ch
                && AgentClient::new(ch)
                    .get_info(GetInfoRequest::default())
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn supervisord_runs_the_generated_program_and_restarts_a_killed_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join("programs")).expect("mkdir programs");
    let port = support::free_port();
    let cfg = d.join("config_node.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"manager":{{"mode":"supervisor"}},"monitor":{{"mode":"node","interval_ms":200,"grpc_listen":"127.0.0.1:{port}","auth":"none","gpu":"off"}}}}"#
        ),
    )
    .expect("write config");

    // The program file, written by the real binary.
    let program = d.join("programs/smon-agent.conf");
    let out = Command::new(BIN)
        .arg("gen-supervisor-conf")
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&program)
        .arg("--log-dir")
        .arg(d)
        .output()
        .expect("run gen-supervisor-conf");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let text = std::fs::read_to_string(&program).expect("program file");
    let canon_bin = std::fs::canonicalize(BIN).expect("canonical binary");
    assert!(
        text.contains(&format!("command={} --config ", canon_bin.display())),
        "{text}"
    );

    // supervisord reads the program file from programs/ (its `[include]`).
    let sup = Supervisord::start(d, "[include]\nfiles = {d}/programs/*.conf\n");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    assert!(
        answers(addr, Duration::from_secs(20)).await,
        "the agent started by supervisord does not answer gRPC\n{}",
        logs(&sup, d)
    );
    let first = wait_for(Duration::from_secs(5), || agent_pid(&sup))
        .unwrap_or_else(|| panic!("supervisorctl shows no pid\n{}", logs(&sup, d)));
    let exe = std::fs::read_link(format!("/proc/{first}/exe")).expect("exe of the agent");
    assert_eq!(exe, canon_bin, "supervisord runs something else");

    // Kill it hard; Supervisor must start a new one (autorestart) within 15 s.
    let pid = rustix::process::Pid::from_raw(first as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("SIGKILL the agent");
    let started = Instant::now();
    let second = wait_for(Duration::from_secs(15), || {
        agent_pid(&sup).filter(|p| *p != first)
    })
    .unwrap_or_else(|| panic!("no new agent within 15 s of SIGKILL\n{}", logs(&sup, d)));
    let left = Duration::from_secs(15).saturating_sub(started.elapsed());
    assert!(
        answers(addr, left.max(Duration::from_secs(1))).await,
        "the restarted agent (pid {second}) does not answer gRPC\n{}",
        logs(&sup, d)
    );
    // The old process is gone: what answers is the new one.
    assert!(
        !Path::new(&format!("/proc/{first}/exe")).exists(),
        "pid {first} still runs"
    );
    assert!(
        logs(&sup, d).contains("exited: smon-agent (terminated by SIGKILL"),
        "{}",
        logs(&sup, d)
    );
}
