//! Shared helpers: start an agent in-process or as a process, and connect a client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use smon_agent::config::{self, Env, Settings};
use smon_collect::Roots;
use smon_proto::agent_client::AgentClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// A token long enough to pass validation.
pub const TOKEN: &str = "integration-test-token-0123456789";

/// An agent running inside the test process.
pub struct InProcess {
    pub addr: SocketAddr,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), smon_agent::Error>>,
}

impl InProcess {
    pub async fn shutdown(self) {
        self.stop.cancel();
        let done = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        assert!(
            matches!(done, Ok(Ok(Ok(())))),
            "agent did not stop cleanly: {done:?}"
        );
    }
}

/// Settings from a `monitor` block (JSON object body, without braces).
pub fn settings(monitor_fields: &str) -> Settings {
    let text = format!(r#"{{"monitor":{{"mode":"node",{monitor_fields}}}}}"#);
    config::load_str(&text, "test.json", Path::new("."), &Env::default())
        .expect("valid test config")
}

/// Starts an agent on 127.0.0.1:0 with `fake_gpus` fake GPUs, token auth and a 100 ms interval.
pub async fn start(fake_gpus: u32) -> InProcess {
    let gpu = if fake_gpus > 0 {
        format!(r#""gpu":"fake","fake_gpu_count":{fake_gpus}"#)
    } else {
        r#""gpu":"off""#.to_owned()
    };
    let s = settings(&format!(r#""interval_ms":100,"token":"{TOKEN}",{gpu}"#));
    start_with(s).await
}

/// Starts an agent with the given settings on 127.0.0.1:0 (the utmp root points at a fixture).
pub async fn start_with(s: Settings) -> InProcess {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let mut cc = s.collector_config();
    cc.roots = Roots {
        utmp: fixture("../../../collect/tests/fixtures/utmp/sessions.utmp"),
        ..Roots::default()
    };
    let task = tokio::spawn(smon_agent::run_with(cc, s, listener, None, stop.clone()));
    InProcess { addr, stop, task }
}

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Adds `authorization: Bearer <token>` to every call (or nothing when `None`).
#[derive(Clone)]
pub struct Bearer(pub Option<String>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = &self.0 {
            let v: MetadataValue<_> = format!("Bearer {t}")
                .parse()
                .map_err(|_| Status::internal("bad token"))?;
            req.metadata_mut().insert("authorization", v);
        }
        Ok(req)
    }
}

pub type Client = AgentClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// Connects to `addr`, retrying for up to 10 s while the server starts.
pub async fn client(addr: SocketAddr, token: Option<&str>) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
        {
            Ok(ch) => return AgentClient::with_interceptor(ch, Bearer(token.map(str::to_owned))),
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A free loopback port (bound then released; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The name of the user running the tests.
pub fn current_user() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Settings of a web view, public read-only, sampling every 200 ms with a fake GPU, with the
/// blocks of `more` (`{"storage": {..}}`, `{"monitor": {..}}`) added key by key.
pub fn web_settings(dir: &Path, more: serde_json::Value) -> Settings {
    let mut cfg = serde_json::json!({
        "server": {"host": "127.0.0.1", "web": true, "auth": {"public_read_only": true}},
        "monitor": {"mode": "node", "interval_ms": 200, "auth": "none",
            "gpu": "fake", "fake_gpu_count": 1},
    });
    if let serde_json::Value::Object(blocks) = more {
        for (block, keys) in blocks {
            match (cfg.get_mut(&block), keys) {
                (Some(serde_json::Value::Object(have)), serde_json::Value::Object(add)) => {
                    have.extend(add)
                }
                (_, keys) => cfg[block.as_str()] = keys,
            }
        }
    }
    config::load_str(&cfg.to_string(), "node.json", dir, &Env::default()).expect("valid")
}

/// An agent with its web view, running in this process.
pub struct WebAgent {
    pub client: smon_api::Client,
    pub id: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), smon_agent::Error>>,
}

impl WebAgent {
    pub async fn start(s: Settings) -> Self {
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", http.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        let cc = s.collector_config();
        let task = tokio::spawn(smon_agent::run_with(cc, s, grpc, Some(http), stop.clone()));
        let client = smon_api::Client::new(&base).expect("client");
        let started = Instant::now();
        let id = loop {
            if let Ok(hosts) = client.hosts().await
                && let Some(h) = hosts.first()
            {
                break h.id.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the web view did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Self {
            client,
            id,
            stop,
            task,
        }
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let done = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        assert!(
            matches!(done, Ok(Ok(Ok(())))),
            "agent did not stop cleanly: {done:?}"
        );
    }
}
