//! Helpers: the simulator as a child process on a loopback range of its own, gRPC clients with
//! or without the token, and the aggregator binary.

use std::io::{BufRead as _, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use smon_proto::agent_client::AgentClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The token the tests give the simulator.
pub const TOKEN: &str = "sim-test-token-0123456789abcdef";

/// A free port on `ip` (bound then released).
pub fn free_port(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running `smon-sim`; SIGKILLed on drop unless stopped.
pub struct Sim {
    /// First agent's address.
    pub first: Ipv4Addr,
    /// Every agent's port.
    pub port: u16,
    /// Folder of the token file and the written config.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Sim {
    /// Starts `agents` agents from `first` with `extra` arguments, and waits for `ready`.
    pub fn start(agents: u32, first: Ipv4Addr, extra: &[&str]) -> Self {
        Self::start_under(&[], agents, first, extra)
    }

    /// As [`Sim::start`], run by the command `wrapper` (e.g. `prlimit --nofile=N:N --`).
    pub fn start_under(wrapper: &[&str], agents: u32, first: Ipv4Addr, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).expect("token");
        let port = free_port(first);
        let sim = env!("CARGO_BIN_EXE_smon-sim");
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(sim);
                c
            }
            None => Command::new(sim),
        };
        let mut child = cmd
            .args([
                "--agents",
                &agents.to_string(),
                "--first-addr",
                &first.to_string(),
                "--port",
                &port.to_string(),
            ])
            .args(extra)
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn smon-sim");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("smon-sim said nothing within 30 s");
        assert_eq!(line, format!("ready {agents} {first}:{port}"));
        Self {
            first,
            port,
            dir,
            child: Some(child),
        }
    }

    /// Address of agent `i`.
    pub fn addr(&self, i: u32) -> String {
        format!(
            "{}:{}",
            Ipv4Addr::from(u32::from(self.first) + i),
            self.port
        )
    }

    /// Sends SIGTERM and waits for the exit (at most `limit`).
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        )
        .expect("SIGTERM");
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(st) = child.try_wait().expect("wait") {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The client type: a channel with a metadata-adding interceptor.
pub type Client = AgentClient<
    InterceptedService<
        Channel,
        Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>,
    >,
>;

/// A real tonic client for the agent at `addr`, sending `token` when given.
pub async fn client(addr: &str, token: Option<&str>) -> Client {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect");
    let auth: Option<tonic::metadata::MetadataValue<_>> =
        token.map(|t| format!("Bearer {t}").parse().expect("header"));
    AgentClient::with_interceptor(
        channel,
        Box::new(move |mut req: tonic::Request<()>| {
            if let Some(v) = &auth {
                req.metadata_mut().insert("authorization", v.clone());
            }
            Ok(req)
        }),
    )
}

/// The aggregator binary, built first (a no-op when it is up to date).
pub fn aggregator_bin() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_smon-sim"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-p", "smon-aggregator", "--bin", "smon-aggregator"])
        .status()
        .expect("cargo build");
    assert!(st.success(), "building smon-aggregator failed");
    dir.join("smon-aggregator")
}

/// A running aggregator; killed on drop.
pub struct AggregatorProcess(pub Child);

impl Drop for AggregatorProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
