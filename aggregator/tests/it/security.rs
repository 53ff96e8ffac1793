//! Security of the dashboard and of the agents' gRPC, end to end over real sockets: every
//! route and the Socket.IO namespace refuse a visitor without a session; wrong passwords,
//! throttling, expiry, roles, CSRF and allow-lists; what viewers and public visitors see; the
//! first-start admin and the refusal to serve a non-loopback address without users; and TLS /
//! mutual TLS between aggregator and agents with certificates from `deploy/tls/make-certs.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    ADMIN_PASSWORD, Agent, Aggregator, Polling, TOKEN, VIEWER_PASSWORD, free_port, login,
    origin_of, post_login,
};

const SELF_ONLY: &str = r#"{"monitor":{"mode":"app","poll_interval_ms":200}}"#;

fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn own_host(agg: &Aggregator) -> String {
    let (_, hosts) = agg.get("/api/v1/hosts").await;
    hosts[0]["id"].as_str().expect("own host").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_without_a_session() {
    let agg = Aggregator::start(
        r#"{"server":{"metrics_allow_from":[]},"monitor":{"mode":"app","poll_interval_ms":200}}"#,
    )
    .await;
    let id = own_host(&agg).await;
    let c = anonymous();
    for path in [
        "/api/v1/clusters".to_owned(),
        "/api/v1/hosts".to_owned(),
        format!("/api/v1/hosts/{id}"),
        format!("/api/v1/hosts/{id}/events"),
        "/api/v1/admin/users".to_owned(),
        "/metrics".to_owned(),
    ] {
        let r = c
            .get(format!("{}{path}", agg.base))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 401, "{path}");
        let body = r.text().await.unwrap_or_default();
        assert!(body.contains("login required"), "{path}: {body}");
    }
    // `me` is a probe the login page makes: it answers, saying nobody is logged in.
    let r = c
        .get(format!("{}/api/v1/me", agg.base))
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.expect("json");
    assert_eq!(me["authenticated"], false, "{me}");
    assert_eq!(me["role"], "none", "{me}");
    assert_eq!(me["user"], Value::Null, "{me}");
    // The page sends the visitor to the login page; the login page and assets are open.
    let r = c.get(format!("{}/", agg.base)).send().await.expect("index");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "login");
    let r = c
        .get(format!("{}/login", agg.base))
        .send()
        .await
        .expect("login page");
    assert_eq!(r.status(), 200);
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h.get("referrer-policy").is_some());
    assert!(h.get("server").is_none(), "no version banner");
    // Health checks stay open, and say nothing else.
    let r = c
        .get(format!("{}/healthz", agg.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    // Socket.IO: the Engine.IO handshake itself is refused (401), before any session exists.
    let err = Polling::connect(&c, &agg.base)
        .await
        .err()
        .expect("refused without a session");
    assert!(
        err.starts_with("401") && err.contains("login required"),
        "{err}"
    );
    // With a session, all of it works.
    assert!(Polling::connect(&agg.client, &agg.base).await.is_ok());
    let r = agg
        .client
        .get(format!("{}/metrics", agg.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_refused_then_throttled() {
    let agg = Aggregator::start(
        r#"{"server":{"auth":{"max_login_failures":3,"lockout_s":60}},"monitor":{"mode":"app","poll_interval_ms":200}}"#,
    )
    .await;
    let base = agg.base.as_str();
    let try_login = |user: &'static str, pw: &'static str| {
        let c = anonymous();
        async move {
            let r = post_login(&c, base, user, pw).await;
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").is_some();
            (status, retry, r.text().await.unwrap_or_default())
        }
    };
    let (s, _, body) = try_login("viewer", "nope").await;
    assert_eq!(s, 401);
    assert!(body.contains("wrong user name or password"), "{body}");
    let (s, _, body) = try_login("nobody", "nope").await;
    assert_eq!(
        (s, body.contains("wrong user name or password")),
        (401, true),
        "same answer for an unknown user"
    );
    try_login("viewer", "nope").await;
    try_login("viewer", "nope").await;
    // Three failures for this name from this address: now refused, even with the right
    // password.
    let (s, retry, body) = try_login("viewer", VIEWER_PASSWORD).await;
    assert_eq!(s, 429, "{body}");
    assert!(retry && body.contains("too many failed logins"), "{body}");
    // Per (address, user): another user from this address is not locked (the per-address
    // limit, four times higher, and other addresses are in sec_login.rs).
    let (s, _, _) = try_login("admin", ADMIN_PASSWORD).await;
    assert_eq!(s, 200, "per address and user: the other user gets in");
    // A malformed body is a 400 with a reason.
    let r = anonymous()
        .post(format!("{}/api/v1/login", agg.base))
        .header("origin", origin_of(&agg.base))
        .header("content-type", "application/json")
        .body("{\"user\":1}")
        .send()
        .await
        .expect("bad body");
    assert_eq!(r.status(), 400);
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_idle_and_absolute() {
    let agg = Aggregator::start(
        r#"{"server":{"auth":{"session_idle_s":2,"session_max_s":4}},"monitor":{"mode":"app","poll_interval_ms":200}}"#,
    )
    .await;
    let hosts = format!("{}/api/v1/hosts", agg.base);
    // Idle: nothing for longer than 2 s.
    let c = login(&agg.base, "viewer", VIEWER_PASSWORD).await;
    assert_eq!(c.get(&hosts).send().await.expect("get").status(), 200);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        c.get(&hosts).send().await.expect("get").status(),
        401,
        "idle expiry"
    );
    // Absolute: busy, yet over after 4 s.
    let c = login(&agg.base, "viewer", VIEWER_PASSWORD).await;
    let start = Instant::now();
    let mut last = 200;
    while start.elapsed() < Duration::from_millis(5000) {
        last = c.get(&hosts).send().await.expect("get").status().as_u16();
        if last == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(last, 401, "absolute expiry");
    assert!(
        start.elapsed() >= Duration::from_millis(3500),
        "not before its time"
    );
    // Logout ends the session at once, and closes its live socket.
    let c = login(&agg.base, "viewer", VIEWER_PASSWORD).await;
    let mut live = Polling::connect(&c, &agg.base).await.expect("socket");
    live.next("hello", Duration::from_secs(5))
        .await
        .expect("hello");
    let r = c
        .post(format!("{}/api/v1/logout", agg.base))
        .header("origin", origin_of(&agg.base))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 204);
    assert_eq!(c.get(&hosts).send().await.expect("get").status(), 401);
    let closed = live.next("never-sent", Duration::from_secs(5)).await;
    assert!(
        closed.is_err_and(|e| e.contains("closed by the server")),
        "socket still open after logout"
    );
    agg.shutdown().await;
}

/// Subscribes to `id` and returns the first detail with processes.
async fn processes_seen_by(client: &reqwest::Client, base: &str, id: &str) -> Vec<Value> {
    let mut s = Polling::connect(client, base).await.expect("connect");
    s.emit("subscribe", json!({"room": "host", "id": id}))
        .await
        .expect("subscribe");
    let start = Instant::now();
    let mut frame = s.next("host", Duration::from_secs(10)).await.expect("host");
    loop {
        if let Some(p) = frame["detail"]["processes"].as_array()
            && !p.is_empty()
        {
            return p.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no processes: {frame}"
        );
        frame = s
            .next("host_update", Duration::from_secs(10))
            .await
            .expect("update");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_what_each_one_sees() {
    let agg = Aggregator::start(
        r#"{"server":{"auth":{"public_read_only":true}},"monitor":{"mode":"app","poll_interval_ms":200}}"#,
    )
    .await;
    let id = own_host(&agg).await;
    let viewer = login(&agg.base, "viewer", VIEWER_PASSWORD).await;
    // Admin-only route.
    let r = viewer
        .get(format!("{}/api/v1/admin/users", agg.base))
        .send()
        .await
        .expect("users");
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap_or_default().contains("admin role"));
    let (code, users) = agg.get("/api/v1/admin/users").await;
    assert_eq!(code, 200);
    assert_eq!(users.as_array().map(Vec::len), Some(2));
    assert!(!users.to_string().contains("argon2"), "never the hashes");

    // Admins see command lines; viewers the process owners but not command lines; public
    // visitors neither.
    let admin_p = processes_seen_by(&agg.client, &agg.base, &id).await;
    assert!(
        admin_p
            .iter()
            .any(|p| !p["cmdline"].as_str().unwrap_or("").is_empty())
    );
    let viewer_p = processes_seen_by(&viewer, &agg.base, &id).await;
    assert!(
        viewer_p.iter().all(|p| p["cmdline"] == ""),
        "viewer saw a command line"
    );
    assert!(viewer_p.iter().any(|p| p["user"] != ""));
    let public_p = processes_seen_by(&anonymous(), &agg.base, &id).await;
    assert!(
        public_p
            .iter()
            .all(|p| p["cmdline"] == "" && p["user"] == "")
    );
    // The same over REST (the detail is there while someone watches).
    let r: Value = viewer
        .get(format!("{}/api/v1/hosts/{id}", agg.base))
        .send()
        .await
        .expect("host")
        .json()
        .await
        .expect("json");
    assert!(
        r["detail"]["processes"]
            .as_array()
            .is_none_or(|p| p.iter().all(|p| p["cmdline"] == "")),
        "{r}"
    );
    // The public visitor reads, and is "public".
    let me: Value = anonymous()
        .get(format!("{}/api/v1/me", agg.base))
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["role"], "public");
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_are_refused() {
    let agg = Aggregator::start(SELF_ONLY).await;
    let url = format!("{}/api/v1/login", agg.base);
    let body = json!({"user": "admin", "password": ADMIN_PASSWORD});
    let cases: [(&str, Option<(&str, &str)>); 3] = [
        ("another origin", Some(("origin", "https://evil.example"))),
        (
            "cross-site fetch metadata",
            Some(("sec-fetch-site", "cross-site")),
        ),
        ("no origin at all", None),
    ];
    for (what, header) in cases {
        let mut req = anonymous().post(&url).json(&body);
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        let r = req.send().await.expect("post");
        assert_eq!(r.status(), 403, "{what}");
        let t = r.text().await.unwrap_or_default();
        assert!(
            t.contains("cross-site") || t.contains("Origin"),
            "{what}: {t}"
        );
    }
    // Logged in, a cross-site logout is refused too (the session survives).
    let r = agg
        .client
        .post(format!("{}/api/v1/logout", agg.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 403);
    assert_eq!(agg.get("/api/v1/hosts").await.0, 200);
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_allow_list_and_trusted_proxies() {
    let agg = Aggregator::start(
        r#"{"server":{"allow_from":["127.0.0.1/32","203.0.113.0/24"],"behind_proxy":true,"trusted_proxies":["127.0.0.3"]},"monitor":{"mode":"app","poll_interval_ms":200}}"#,
    )
    .await;
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().expect("ip"))
            .build()
            .expect("client")
    };
    let healthz = format!("{}/healthz", agg.base);
    assert_eq!(
        from("127.0.0.1")
            .get(&healthz)
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
    let r = from("127.0.0.2").get(&healthz).send().await.expect("get");
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .unwrap_or_default()
            .contains("127.0.0.2 is not allowed")
    );
    // The trusted proxy forwards an allowed client; an untrusted peer's header is ignored.
    let fwd = |ip: &str| {
        from(ip)
            .get(&healthz)
            .header("x-forwarded-for", "203.0.113.7")
            .send()
    };
    assert_eq!(fwd("127.0.0.3").await.expect("get").status(), 200);
    assert_eq!(fwd("127.0.0.4").await.expect("get").status(), 403);
    agg.shutdown().await;
}

fn aggregator_bin() -> &'static str {
    env!("CARGO_BIN_EXE_smon-aggregator")
}

/// The aggregator binary serving `cfg` (no self-supervision), stderr piped.
fn spawn_aggregator(cfg: &Path) -> std::process::Child {
    crate::support::aggregator(cfg)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .expect("aggregator")
}

#[test]
fn first_start_creates_admin_and_public_binding_needs_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port("127.0.0.1");
    let cfg = dir.path().join("config_app.json");
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config_app.json"))
            .expect("repo config");
    let mut v: Value = serde_json::from_str(&template).expect("json");
    v["server"]["port"] = json!(port);
    std::fs::write(&cfg, v.to_string()).expect("config");
    let mut child = spawn_aggregator(&cfg);
    let users = dir.path().join("smon-users.json");
    let start = Instant::now();
    while !users.exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "no users file");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    // stderr is a pipe, not a terminal: the password goes to a private file the log names.
    let pw_file = dir.path().join("smon-users.initial-password");
    let text = std::fs::read_to_string(&pw_file).expect("initial password file");
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no password in the file:\n{text}"))
        .trim()
        .to_owned();
    assert_eq!(password.len(), 20);
    assert!(!err.contains(&password), "never in the log: {err}");
    assert!(
        err.contains("smon-users.initial-password"),
        "the log says where: {err}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pw_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let stored = std::fs::read_to_string(&users).expect("users");
    assert!(stored.contains("$argon2id$") && !stored.contains(&password));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&users)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let u: Value = serde_json::from_str(&stored).expect("json");
    let hash = u["users"][0]["password_hash"].as_str().expect("hash");
    assert!(smon_web::security::users::verify_password(&password, hash));

    // Not loopback, no users, no public mode: refused with a reason, by the config check that
    // start-up and --check-config share (status 64, naming the field).
    let dir = tempfile::tempdir().expect("tempdir");
    v["server"]["host"] = json!("0.0.0.0");
    v["server"]["port"] = json!(free_port("0.0.0.0"));
    let cfg = dir.path().join("public.json");
    std::fs::write(&cfg, v.to_string()).expect("config");
    let out = Command::new(aggregator_bin())
        .args([
            "--no-supervise".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
        ])
        .output()
        .expect("aggregator");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("server.host: '0.0.0.0' is not a loopback address, and there are no users")
            && err.contains("public_read_only"),
        "{err}"
    );
    assert!(
        !dir.path().join("smon-users.json").exists(),
        "no admin made for a public address"
    );
}

#[test]
fn hash_password_reads_stdin_and_prints_an_entry() {
    use std::io::Write;
    let mut child = Command::new(aggregator_bin())
        .args(["hash-password", "--user", "carol", "--role", "admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"carols-password\n")
        .expect("write");
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("entry");
    assert_eq!(
        (v["name"].as_str(), v["role"].as_str()),
        (Some("carol"), Some("admin"))
    );
    let hash = v["password_hash"].as_str().expect("hash");
    assert!(smon_web::security::users::verify_password(
        "carols-password",
        hash
    ));
    // Too short: refused.
    let mut child = Command::new(aggregator_bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"short\n")
        .expect("write");
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(64));
}

// ------------------------------------------------------------------ gRPC: TLS, mTLS, allow-list

/// A CA with an agent certificate (for 127.0.0.1 and the test's 127.0.0.x) and a client
/// certificate for the aggregator, made by the shipped script.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new(ips: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tls/make-certs.sh");
        let run = |args: &[&str]| {
            let out = Command::new("bash")
                .arg(&script)
                .arg("-d")
                .arg(dir.path())
                .args(args)
                .output()
                .expect("make-certs.sh");
            assert!(
                out.status.success(),
                "make-certs.sh {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["ca"]);
        let mut agent = vec!["agent", "node"];
        agent.extend_from_slice(ips);
        run(&agent);
        run(&["client", "aggregator"]);
        Self { dir }
    }

    pub(crate) fn path(&self, f: &str) -> String {
        self.dir.path().join(f).display().to_string()
    }
}

fn cluster(name: &str, agent: &Agent, tls: Option<Value>, token: &str) -> Value {
    let mut host = json!({"name": "n", "address": agent.addr.to_string(), "token": token});
    if let Some(t) = tls {
        host["tls"] = t;
    }
    json!({"name": name, "hosts": [host]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_tls_mutual_tls_and_allow_lists() {
    let ours = Pki::new(&["127.0.0.21", "127.0.0.22", "127.0.0.23"]);
    let theirs = Pki::new(&["127.0.0.21", "127.0.0.22", "127.0.0.23"]);
    let tls_agent = Agent::start_with(
        "127.0.0.21",
        &format!(
            r#","tls":{{"cert":"{}","key":"{}"}}"#,
            ours.path("node.pem"),
            ours.path("node.key")
        ),
    );
    let mtls_agent = Agent::start_with(
        "127.0.0.22",
        &format!(
            r#","tls":{{"cert":"{}","key":"{}","client_ca":"{}"}}"#,
            ours.path("node.pem"),
            ours.path("node.key"),
            ours.path("ca.pem")
        ),
    );
    // The aggregator connects from 127.0.0.1: allowed by one agent, not by the other.
    let allowed = Agent::start_with("127.0.0.23", r#","allow_from":["127.0.0.1/32"]"#);
    let refused = Agent::start_with("127.0.0.24", r#","allow_from":["127.0.0.2/32"]"#);
    let ca = |p: &Pki| json!({"ca": p.path("ca.pem")});
    let client = |p: &Pki, cert: &Pki| json!({"ca": p.path("ca.pem"), "cert": cert.path("aggregator.pem"), "key": cert.path("aggregator.key")});
    let clusters = vec![
        cluster("tls-ok", &tls_agent, Some(ca(&ours)), TOKEN),
        cluster("tls-plaintext", &tls_agent, None, TOKEN),
        cluster("tls-other-ca", &tls_agent, Some(ca(&theirs)), TOKEN),
        cluster(
            "tls-wrong-token",
            &tls_agent,
            Some(ca(&ours)),
            "wrong-token-0123456789abcdef",
        ),
        cluster("mtls-ok", &mtls_agent, Some(client(&ours, &ours)), TOKEN),
        cluster("mtls-no-cert", &mtls_agent, Some(ca(&ours)), TOKEN),
        cluster(
            "mtls-other-ca-cert",
            &mtls_agent,
            Some(client(&ours, &theirs)),
            TOKEN,
        ),
        cluster("allow-ok", &allowed, None, TOKEN),
        cluster("allow-refused", &refused, None, TOKEN),
    ];
    let cfg = json!({"monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false, "clusters": clusters}});
    let agg = Aggregator::start(&cfg.to_string()).await;
    // Generous: a busy 2-core CI machine runs these handshakes (debug builds) beside other tests.
    let limit = Duration::from_secs(40);
    for id in ["tls-ok:n", "mtls-ok:n", "allow-ok:n"] {
        agg.wait_row(id, limit, "up", |r| r["status"] == "up").await;
    }
    let expect_down = [
        ("tls-plaintext:n", "may be serving TLS"),
        ("tls-other-ca:n", "not signed by the configured CA"),
        ("tls-wrong-token:n", "check the token"),
        ("mtls-no-cert:n", "requires a client certificate"),
        ("mtls-other-ca-cert:n", "refused our client certificate"),
        // Closed at accept, before HTTP/2: the row can only say what it may mean.
        ("allow-refused:n", "in the agent's monitor.allow_from"),
    ];
    for (id, why) in expect_down {
        let row = agg
            .wait_row(id, limit, "down with its reason", |r| {
                r["last_error"].as_str().is_some_and(|e| e.contains(why))
            })
            .await;
        assert_ne!(row["status"], "up", "{row}");
    }
    agg.shutdown().await;
}

/// A plaintext gRPC client straight at a TLS agent is refused (the agent never answers in
/// clear).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_agent_refuses_plaintext() {
    let pki = Pki::new(&["127.0.0.25"]);
    let agent = Agent::start_with(
        "127.0.0.25",
        &format!(
            r#","tls":{{"cert":"{}","key":"{}"}}"#,
            pki.path("node.pem"),
            pki.path("node.key")
        ),
    );
    let start = Instant::now();
    loop {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", agent.addr))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await;
        let ok = match ch {
            Ok(ch) => smon_proto::agent_client::AgentClient::new(ch)
                .get_info(smon_proto::GetInfoRequest {})
                .await
                .is_ok(),
            Err(_) => false,
        };
        assert!(!ok, "plaintext call answered by a TLS agent");
        if start.elapsed() > Duration::from_secs(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _: PathBuf = PathBuf::new();
}

/// `server.tls`: the dashboard serves HTTPS itself; the session cookie is then Secure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_serves_https_itself() {
    let pki = Pki::new(&["127.0.0.1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    crate::support::write_users(dir.path(), "smon-users.json");
    let cfg = json!({
        "server": {"tls": {"cert": pki.path("node.pem"), "key": pki.path("node.key")}},
        "monitor": {"mode": "app", "poll_interval_ms": 200}
    });
    let settings = smon_aggregator::config::load_str(&cfg.to_string(), "tls.json", dir.path())
        .expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(smon_aggregator::run(settings, listener, stop.clone()));
    let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.path("ca.pem")).expect("ca"))
        .expect("ca pem");
    let c = reqwest::Client::builder()
        .tls_certs_only([ca])
        .cookie_store(true)
        .build()
        .expect("client");
    let r = post_login(&c, &base, "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
    let r = c
        .get(format!("{base}/api/v1/hosts"))
        .send()
        .await
        .expect("hosts");
    assert_eq!(r.status(), 200);
    // Plain HTTP on the same port gets nothing useful.
    let plain = reqwest::get(format!("{}/healthz", base.replace("https://", "http://"))).await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    // The manager's health probe speaks HTTPS to it.
    smon_aggregator::probe_http(format!("{base}/healthz"))
        .await
        .expect("probe over https");
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
}

/// `server.run_as` on the aggregator: started as root, it reads its root-only users file,
/// binds, then serves as `nobody`. Without root the switch is refused.
#[test]
fn run_as_drops_privileges_after_binding() {
    let root = rustix::process::geteuid().is_root();
    let dir = tempfile::tempdir().expect("tempdir");
    crate::support::write_users(dir.path(), "smon-users.json");
    let users = dir.path().join("smon-users.json");
    std::fs::set_permissions(&users, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let port = free_port("127.0.0.1");
    let cfg = dir.path().join("config_app.json");
    std::fs::write(
        &cfg,
        // No history: the database is opened after the switch, and `nobody` cannot write
        // this root-only directory (the history test covers storage.dir).
        json!({"server": {"port": port, "run_as": "nobody"}, "monitor": {"mode": "app", "poll_interval_ms": 200},
            "storage": {"enabled": false}})
            .to_string(),
    )
    .expect("config");
    let mut child = spawn_aggregator(&cfg);
    if !root {
        let out = child.wait_with_output().expect("output");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot switch"), "{err}");
        return;
    }
    let start = Instant::now();
    let mut healthy = false;
    while start.elapsed() < Duration::from_secs(15) {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                healthy = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    assert!(
        healthy,
        "not serving: {}",
        String::from_utf8_lossy(&out.stderr)
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
}
