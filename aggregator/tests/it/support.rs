//! Helpers: agent processes on loopback addresses, an in-process aggregator, REST polling.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use smon_aggregator::feed::Feed;
use smon_aggregator::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The token every test agent uses.
pub const TOKEN: &str = "aggregator-test-token-0123456789";

/// The test users: `admin` (role admin) and `viewer` (role viewer), with these passwords.
pub const ADMIN_PASSWORD: &str = "admin-password-123";
/// The viewer's password.
pub const VIEWER_PASSWORD: &str = "viewer-password-123";

/// The users file with `admin` and `viewer` (hashed once per test binary).
pub fn users_json() -> &'static str {
    static USERS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    USERS.get_or_init(|| {
        let h = |p: &str| smon_web::security::users::hash_password(p).expect("hash");
        serde_json::json!({"users": [
            {"name": "admin", "password_hash": h(ADMIN_PASSWORD), "role": "admin"},
            {"name": "viewer", "password_hash": h(VIEWER_PASSWORD), "role": "viewer"},
        ]})
        .to_string()
    })
}

/// Writes the test users to `dir/name`.
pub fn write_users(dir: &Path, name: &str) {
    std::fs::write(dir.join(name), users_json()).expect("users file");
}

/// `SMON_LOGIN` for `browser.mjs`: log in as the admin first.
pub const BROWSER_LOGIN: &str = "admin:admin-password-123";

/// A client with a cookie jar, logged in at `base` (the dashboard URL without the trailing
/// slash) as `user`.
pub async fn login(base: &str, user: &str, password: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let r = post_login(&client, base, user, password).await;
    assert_eq!(r.status(), 200, "login as {user}: {:?}", r.text().await);
    client
}

/// The login form's request, sent with `client` to `base` (the dashboard URL without the
/// trailing slash): `POST /api/v1/login` from the dashboard's own origin. The answer is the
/// caller's to check.
pub async fn post_login(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/api/v1/login"))
        .header("origin", origin_of(base))
        .json(&serde_json::json!({"user": user, "password": password}))
        .send()
        .await
        .expect("login request")
}

/// Sends `method path` with a JSON body as `client`; the status and the JSON answer.
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = client
        .request(method, format!("{base}{path}"))
        .header("origin", origin_of(base));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("request");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

/// `http://host:port` of a URL.
pub fn origin_of(url: &str) -> String {
    let u = reqwest::Url::parse(url).expect("url");
    u.origin().ascii_serialization()
}

/// The agent binary, built on demand when only this package's tests were asked for.
pub fn agent_bin() -> PathBuf {
    workspace_bin("smon-agent")
}

/// The binary `name` of another package of the workspace (its package has the same name),
/// beside this package's, built on demand when only this package's tests were asked for.
pub fn workspace_bin(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_smon-aggregator"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let bin = dir.join(name);
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", name])
            .status()
            .expect("cargo build");
        assert!(st.success(), "building {name} failed");
    }
    bin
}

/// A free port on `ip` (bound then released).
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `bin --no-supervise --config cfg` with stdout discarded and the log (`RUST_LOG=warn`) on
/// stderr, discarded too: callers change what they need (`.stderr(file)`, `.env(..)`) and spawn.
pub fn daemon(bin: impl AsRef<std::ffi::OsStr>, cfg: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--no-supervise".as_ref(),
        "--config".as_ref(),
        cfg.as_os_str(),
    ])
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

/// [`daemon`] for the aggregator binary.
pub fn aggregator(cfg: &Path) -> Command {
    daemon(env!("CARGO_BIN_EXE_smon-aggregator"), cfg)
}

/// Waits (at most 20 s) until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing listens on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An agent process; killed on drop.
pub struct Agent {
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// More `monitor` fields, e.g. `,"tls":{...}`.
    extra: String,
    /// More top-level blocks, e.g. `,"control":{...}`.
    top: String,
}

impl Agent {
    /// Starts an agent on `ip` (a fresh port) with a 200 ms interval and one fake GPU.
    pub fn start(ip: &str) -> Self {
        Self::start_with(ip, "")
    }

    /// Like [`Agent::start`], with more `monitor` fields (`extra` starts with a comma).
    pub fn start_with(ip: &str, extra: &str) -> Self {
        Self::start_full(ip, extra, "")
    }

    /// Like [`Agent::start_with`], with more top-level blocks (`top` starts with a comma).
    pub fn start_full(ip: &str, extra: &str, top: &str) -> Self {
        let port = free_port(ip);
        let addr: SocketAddr = format!("{ip}:{port}").parse().expect("addr");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = Self {
            addr,
            child: None,
            dir,
            extra: extra.to_owned(),
            top: top.to_owned(),
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        let cfg = self.dir.path().join("config_node.json");
        std::fs::write(
            &cfg,
            format!(
                r#"{{"monitor":{{"mode":"node","interval_ms":200,"grpc_listen":"{}","token":"{TOKEN}","gpu":"fake","fake_gpu_count":1{}}}{}}}"#,
                self.addr, self.extra, self.top
            ),
        )
        .expect("config");
        let child = daemon(agent_bin(), &cfg).spawn().expect("spawn agent");
        self.child = Some(child);
    }

    /// Kills the process (SIGKILL: no goodbye to the aggregator).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same address.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An aggregator running in this process.
pub struct Aggregator {
    pub base: String,
    pub stop: CancellationToken,
    /// Logged in as `admin`.
    pub client: reqwest::Client,
    task: tokio::task::JoinHandle<Result<(), smon_aggregator::Error>>,
    /// Holds the users file (relative paths in the config resolve here).
    _dir: tempfile::TempDir,
}

impl Aggregator {
    /// Starts one from config text, in a directory of its own holding the test users
    /// (`smon-users.json`), and logs in as `admin`.
    pub async fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        write_users(dir.path(), "smon-users.json");
        let settings = smon_aggregator::config::load_str(config, "test.json", dir.path())
            .expect("valid config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!(
            "http://{}{}",
            listener.local_addr().expect("addr"),
            settings.base_path
        );
        let stop = CancellationToken::new();
        let task = tokio::spawn(smon_aggregator::run(settings, listener, stop.clone()));
        let client = login(&base, "admin", ADMIN_PASSWORD).await;
        Self {
            base,
            stop,
            client,
            task,
            _dir: dir,
        }
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let r = tokio::time::timeout(Duration::from_secs(3), self.task).await;
        assert!(
            matches!(r, Ok(Ok(Ok(())))),
            "aggregator did not stop cleanly: {r:?}"
        );
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The row of host `id`.
    pub async fn row(&self, id: &str) -> Value {
        let (_, hosts) = self.get("/api/v1/hosts").await;
        hosts
            .as_array()
            .and_then(|a| a.iter().find(|h| h["id"] == id).cloned())
            .unwrap_or(Value::Null)
    }

    /// Waits until `check(row)` holds for host `id`; returns the row. Panics after `limit`.
    pub async fn wait_row(
        &self,
        id: &str,
        limit: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let row = self.row(id).await;
            if check(&row) {
                return row;
            }
            assert!(
                start.elapsed() < limit,
                "{id}: not {what} within {limit:?}; last row: {row}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The `hosts` entries for these agents: `n1`, `n2`, ... with the test token.
pub fn hosts_json(agents: &[&Agent]) -> String {
    let hosts: Vec<String> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| {
            format!(
                r#"{{"name":"n{}","address":"{}","token":"{TOKEN}"}}"#,
                i + 1,
                a.addr
            )
        })
        .collect();
    hosts.join(",")
}

/// A Socket.IO client over Engine.IO long-polling (protocol v4), enough to connect, emit and
/// read events: what a browser does before it upgrades to WebSocket.
pub struct Polling {
    client: reqwest::Client,
    url: String,
    /// Events read but not yet asked for.
    pending: std::collections::VecDeque<Value>,
}

impl Polling {
    /// Opens a session with `client`'s cookies. `Err` carries the `connect_error` message.
    pub async fn connect(client: &reqwest::Client, base: &str) -> Result<Self, String> {
        let poll = format!("{base}/socket.io/?EIO=4&transport=polling");
        let open = client.get(&poll).send().await.map_err(|e| e.to_string())?;
        let status = open.status();
        let text = open.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {text}"));
        }
        let hs: Value = serde_json::from_str(text.strip_prefix('0').unwrap_or(&text))
            .map_err(|e| format!("handshake {text:?}: {e}"))?;
        let sid = hs["sid"].as_str().ok_or("no sid")?.to_owned();
        let mut p = Self {
            client: client.clone(),
            url: format!("{poll}&sid={sid}"),
            pending: Default::default(),
        };
        p.post("40").await?;
        for _ in 0..10 {
            for packet in p.get().await? {
                if let Some(rest) = packet.strip_prefix("44") {
                    let v: Value = serde_json::from_str(rest).unwrap_or(Value::Null);
                    return Err(v["message"].as_str().unwrap_or(rest).to_owned());
                }
                if packet.starts_with("40") {
                    return Ok(p);
                }
            }
        }
        Err("no CONNECT answer".into())
    }

    async fn post(&self, body: &str) -> Result<(), String> {
        let r = self
            .client
            .post(&self.url)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "POST {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ))
        }
    }

    /// One poll: the packets it brought (event packets are also queued).
    async fn get(&mut self) -> Result<Vec<String>, String> {
        let r = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("poll: {}", r.status()));
        }
        let text = r.text().await.map_err(|e| e.to_string())?;
        let packets: Vec<String> = text.split('\u{1e}').map(str::to_owned).collect();
        for p in &packets {
            if p == "2" {
                self.post("3").await?;
            } else if p == "1" || p.starts_with("41") {
                return Err("closed by the server".into());
            } else if let Some(ev) = p.strip_prefix("42")
                && let Ok(v) = serde_json::from_str::<Value>(ev)
            {
                self.pending.push_back(v);
            }
        }
        Ok(packets)
    }

    /// Emits `event` with `data`.
    pub async fn emit(&self, event: &str, data: Value) -> Result<(), String> {
        self.post(&format!("42{}", serde_json::json!([event, data])))
            .await
    }

    /// The next `event`'s data, within `limit`.
    pub async fn next(&mut self, event: &str, limit: Duration) -> Result<Value, String> {
        let start = Instant::now();
        loop {
            while let Some(v) = self.pending.pop_front() {
                if v[0] == event {
                    return Ok(v[1].clone());
                }
            }
            if start.elapsed() > limit {
                return Err(format!("no '{event}' within {limit:?}"));
            }
            self.get().await?;
        }
    }
}

/// An aggregator in this process (`smon_aggregator::start` on port 0), holding its registry
/// and event feed, with a logged-in admin client.
pub struct InProcess {
    pub base: String,
    pub client: reqwest::Client,
    pub registry: Registry,
    pub feed: Feed,
    pub remote_write: smon_aggregator::remote_write::RemoteWrite,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), smon_aggregator::Error>>,
    pub dir: tempfile::TempDir,
}

impl InProcess {
    /// Starts it on `config` (users in its own temporary directory).
    pub async fn start(config: &Value) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        write_users(dir.path(), "smon-users.json");
        let settings = smon_aggregator::config::load_str(&config.to_string(), "t.json", dir.path())
            .expect("valid config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let security = smon_aggregator::prepare_security(&settings, &listener).expect("security");
        let stop = CancellationToken::new();
        let running = smon_aggregator::start(settings, listener, security, stop.clone())
            .await
            .expect("started");
        let registry = running.registry().clone();
        let feed = running.feed().clone();
        let remote_write = running.remote_write().clone();
        let task = tokio::spawn(running.wait());
        let client = login(&base, "admin", ADMIN_PASSWORD).await;
        Self {
            base,
            client,
            registry,
            feed,
            remote_write,
            stop,
            task,
            dir,
        }
    }

    /// The targets of `config` (as a reload would read them).
    pub fn targets(&self, config: &Value) -> Vec<smon_aggregator::config::Target> {
        smon_aggregator::config::load_str(&config.to_string(), "t.json", self.dir.path())
            .expect("valid config")
            .targets
    }

    /// Every host row of the REST API.
    pub async fn rows(&self) -> Vec<Value> {
        let r = self
            .client
            .get(format!("{}/api/v1/hosts", self.base))
            .send()
            .await
            .expect("hosts");
        r.json::<Value>()
            .await
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// The row of host `id` (`null` while there is none).
    pub async fn row(&self, id: &str) -> Value {
        self.rows()
            .await
            .into_iter()
            .find(|r| r["id"] == id)
            .unwrap_or_default()
    }

    /// Waits until `ok(row)` and returns the time it took; panics after `limit`.
    pub async fn wait_row(
        &self,
        id: &str,
        limit: Duration,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let row = self.row(id).await;
            if ok(&row) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{id}: not {what} within {limit:?}: {row}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it and checks that it stopped cleanly.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let r = tokio::time::timeout(Duration::from_secs(3), self.task).await;
        assert!(matches!(r, Ok(Ok(Ok(())))), "did not stop cleanly: {r:?}");
    }
}

/// An aggregator binary (`--no-supervise`: the process that writes is the one killed).
pub struct Binary {
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
}

impl Binary {
    pub fn spawn(cfg: &Path, port: u16, log: PathBuf) -> Self {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_smon-aggregator"))
            .args([
                "--no-supervise".as_ref(),
                "--config".as_ref(),
                cfg.as_os_str(),
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("aggregator");
        Self {
            child: Some(child),
            port,
            log,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `sig` (e.g. `-HUP`) and leaves the process running.
    pub fn nudge(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let st = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
    }

    /// Sends `sig` and waits for the process to end.
    pub fn signal(&mut self, sig: &str) {
        let mut c = self.child.take().expect("running");
        let st = Command::new("kill")
            .args([sig, &c.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
        let _ = c.wait();
    }

    pub async fn get(&self, path: &str) -> Option<String> {
        let r = reqwest::get(format!("{}{path}", self.base())).await.ok()?;
        r.status().is_success().then_some(())?;
        r.text().await.ok()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
