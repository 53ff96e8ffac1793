//! `manager.mode = "supervisor"` with a real `supervisord` (Debian package `supervisor`): the
//! program file written by `smon-agent gen-supervisor-conf` starts the agent, and after a
//! SIGKILL Supervisor starts a new one that answers gRPC again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smon_proto::GetInfoRequest;
use smon_proto::agent_client::AgentClient;

use crate::support;

const BIN: &str = env!("CARGO_BIN_EXE_smon-agent");
const SUPERVISORD: &str = "/usr/bin/supervisord";
const SUPERVISORCTL: &str = "/usr/bin/supervisorctl";

/// A `supervisord` in the foreground (`-n`) with its own config, socket and logs in a temp
/// dir. Dropping it stops supervisord, which stops the agent.
struct Supervisord {
    child: Child,
    conf: PathBuf,
    dir: PathBuf,
}

impl Supervisord {
    fn start(dir: &Path) -> Self {
        assert!(
            Path::new(SUPERVISORD).exists() && Path::new(SUPERVISORCTL).exists(),
            "{SUPERVISORD} is missing: install the Debian package `supervisor` \
             (apt-get install supervisor; scripts/test.sh does it)"
        );
        let d = dir.display();
        let conf = dir.join("supervisord.conf");
        let text = format!(
            "[unix_http_server]\n\
             file={d}/supervisor.sock\n\
             chmod=0700\n\
             \n\
             [supervisord]\n\
             logfile={d}/supervisord.log\n\
             pidfile={d}/supervisord.pid\n\
             childlogdir={d}\n\
             loglevel=info\n\
             \n\
             [rpcinterface:supervisor]\n\
             supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\
             \n\
             [supervisorctl]\n\
             serverurl=unix://{d}/supervisor.sock\n\
             \n\
             [include]\n\
             files = {d}/programs/*.conf\n"
        );
        std::fs::write(&conf, text).expect("write supervisord.conf");
        let child = Command::new(SUPERVISORD)
            .arg("-n")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn supervisord");
        Self {
            child,
            conf,
            dir: dir.to_owned(),
        }
    }

    /// `supervisorctl pid smon-agent`: the agent's pid, `None` while it is not running.
    fn agent_pid(&self) -> Option<u32> {
        let out = Command::new(SUPERVISORCTL)
            .arg("-c")
            .arg(&self.conf)
            .args(["pid", "smon-agent"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
    }

    /// What supervisord and the agent logged, for failure messages.
    fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["supervisord.log", "smon-agent.err.log"] {
            let t = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            s.push_str(&format!("--- {f}\n{t}\n"));
        }
        s
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        // SIGTERM: supervisord stops its programs first (SIGKILL would orphan the agent).
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

    let sup = Supervisord::start(d);
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    assert!(
        answers(addr, Duration::from_secs(20)).await,
        "the agent started by supervisord does not answer gRPC\n{}",
        sup.logs()
    );
    let first = wait_for(Duration::from_secs(5), || sup.agent_pid())
        .unwrap_or_else(|| panic!("supervisorctl shows no pid\n{}", sup.logs()));
    let exe = std::fs::read_link(format!("/proc/{first}/exe")).expect("exe of the agent");
    assert_eq!(exe, canon_bin, "supervisord runs something else");

    // Kill it hard; Supervisor must start a new one (autorestart) within 15 s.
    let pid = rustix::process::Pid::from_raw(first as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("SIGKILL the agent");
    let started = Instant::now();
    let second = wait_for(Duration::from_secs(15), || {
        sup.agent_pid().filter(|p| *p != first)
    })
    .unwrap_or_else(|| panic!("no new agent within 15 s of SIGKILL\n{}", sup.logs()));
    let left = Duration::from_secs(15).saturating_sub(started.elapsed());
    assert!(
        answers(addr, left.max(Duration::from_secs(1))).await,
        "the restarted agent (pid {second}) does not answer gRPC\n{}",
        sup.logs()
    );
    // The old process is gone: what answers is the new one.
    assert!(
        !Path::new(&format!("/proc/{first}/exe")).exists(),
        "pid {first} still runs"
    );
    assert!(
        sup.logs()
            .contains("exited: smon-agent (terminated by SIGKILL"),
        "{}",
        sup.logs()
    );
}
