//! Attacks on the login, over real sockets from several loopback addresses (issue 18, items 1,
//! 2 and 5): parallel bursts of wrong passwords, the right password hidden in a burst, a user
//! locked out from one address logging in from another, password spraying from one address,
//! and a lockout that outlives a restart. Each is bounded in count and time.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support::{ADMIN_PASSWORD, VIEWER_PASSWORD, origin_of, write_users};

/// Failures allowed per (address, user) in these tests.
const LIMIT: usize = 5;
/// 200 parallel connections from one address: past the default per-address connection limit
/// (64, `server.limits`), which would reset the rest before the throttle saw them.
const CONFIG: &str = r#"{"server":{"auth":{"max_login_failures":5,"lockout_s":900},"limits":{"max_connections_per_address":256}},"monitor":{"mode":"app","poll_interval_ms":500}}"#;

/// An aggregator in this process whose directory (users file, throttle state) outlives it,
/// so that a second one can start on the same files.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), smon_aggregator::Error>>,
}

impl Server {
    pub(crate) async fn start(dir: &Path, config: &str) -> Self {
        if !dir.join("smon-users.json").exists() {
            write_users(dir, "smon-users.json");
        }
        let settings =
            smon_aggregator::config::load_str(config, "test.json", dir).expect("valid config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let stop = CancellationToken::new();
        let task = tokio::spawn(smon_aggregator::run(settings, listener, stop.clone()));
        Self {
            base,
            addr,
            stop,
            task,
        }
    }

    pub(crate) async fn shutdown(self) {
        self.stop.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        assert!(matches!(r, Ok(Ok(Ok(())))), "did not stop cleanly: {r:?}");
    }
}

/// A client whose connections come from `ip` (a loopback address).
pub(crate) fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .local_address(ip.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

/// The status of a login as `user` from `client`.
pub(crate) async fn login_status(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    pw: &str,
) -> u16 {
    client
        .post(format!("{base}/api/v1/login"))
        .header("origin", origin_of(base))
        .json(&serde_json::json!({"user": user, "password": pw}))
        .send()
        .await
        .expect("login request")
        .status()
        .as_u16()
}

/// A connection to `server` from `ip`, not yet used.
async fn connect_from(ip: &str, server: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().expect("socket");
    s.bind(format!("{ip}:0").parse().expect("addr"))
        .expect("bind");
    s.connect(server).await.expect("connect")
}

/// The raw bytes of a login request, to be written in one go.
fn login_request(server: SocketAddr, user: &str, pw: &str) -> Vec<u8> {
    let body = serde_json::json!({"user": user, "password": pw}).to_string();
    format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: {server}\r\nOrigin: http://{server}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads the status code of the answer on `s` (0 if the connection closed without one), and
/// says on `answered` that it came.
async fn status_of(mut s: TcpStream, answered: tokio::sync::mpsc::UnboundedSender<()>) -> u16 {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf)).await;
    let _ = answered.send(());
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Sends `requests` (user, password) from `ip` on connections opened beforehand, in this
/// order; with `hold_after = Some(i)`, the requests after the `i`-th wait until a first answer
/// came (at most 2 s). Returns the statuses in the same order.
async fn burst(
    ip: &str,
    server: SocketAddr,
    requests: &[(&str, &str)],
    hold_after: Option<usize>,
) -> Vec<u16> {
    let mut conns = Vec::new();
    for _ in requests {
        conns.push(connect_from(ip, server).await);
    }
    let (tx, mut answered) = tokio::sync::mpsc::unbounded_channel();
    let mut answers = Vec::new();
    for (i, (mut c, (user, pw))) in conns.into_iter().zip(requests).enumerate() {
        c.write_all(&login_request(server, user, pw))
            .await
            .expect("write");
        answers.push(tokio::spawn(status_of(c, tx.clone())));
        if hold_after == Some(i) {
            let _ = tokio::time::timeout(Duration::from_secs(2), answered.recv()).await;
        }
    }
    let mut out = Vec::new();
    for a in answers {
        out.push(a.await.expect("answer"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_parallel_wrong_passwords_check_at_most_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), CONFIG).await;
    let started = Instant::now();
    let wrong = vec![("viewer", "wrong-password"); 200];
    let statuses = burst("127.0.0.2", srv.addr, &wrong, None).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        checked <= LIMIT,
        "{checked} of 200 parallel wrong passwords were checked (limit {LIMIT})"
    );
    assert_eq!(
        checked + refused,
        200,
        "every request answered: {statuses:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_right_password_late_in_a_parallel_burst_gets_no_200() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), CONFIG).await;
    // 40 logins on connections opened beforehand: 34 wrong passwords written at once, then,
    // as soon as the first answer comes (a 429 here, which means the limit is reserved; with
    // a throttle that counts only after the check, a 401 after one password check, with at
    // most two failures counted), the right one at position 35 and five more wrong ones.
    let mut reqs = vec![("admin", "wrong-password"); 40];
    reqs[34] = ("admin", ADMIN_PASSWORD);
    let statuses = burst("127.0.0.3", srv.addr, &reqs, Some(33)).await;
    assert_ne!(
        statuses[34], 200,
        "the right password at position 35 got in"
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(statuses.iter().filter(|s| **s == 401).count() <= LIMIT);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_locked_out_from_one_address_logs_in_from_another() {
    // A limit of 3 keeps the user name's backoff (which doubles per failure) short here.
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(
        dir.path(),
        r#"{"server":{"auth":{"max_login_failures":3,"lockout_s":900}},"monitor":{"mode":"app","poll_interval_ms":500}}"#,
    )
    .await;
    let base = srv.base.as_str();
    // Two attackers, one after the other, each use up their failures for `viewer`.
    for attacker in ["127.0.0.2", "127.0.0.4"] {
        let a = client_from(attacker);
        for i in 0..3 {
            assert_eq!(login_status(&a, base, "viewer", "guess").await, 401, "{i}");
        }
        assert_eq!(
            login_status(&a, base, "viewer", VIEWER_PASSWORD).await,
            429,
            "{attacker} is locked out for that name, even with the right password"
        );
        // The real user, from elsewhere, still gets in, slowed down only.
        let started = Instant::now();
        let user = client_from("127.0.0.3");
        assert_eq!(
            login_status(&user, base, "viewer", VIEWER_PASSWORD).await,
            200,
            "after {attacker}'s failures"
        );
        assert!(
            started.elapsed() < Duration::from_secs(9),
            "{:?}",
            started.elapsed()
        );
    }
    // Six failures of the name from two addresses: a third address waits before its check
    // (250 ms doubled three times).
    let started = Instant::now();
    assert_eq!(
        login_status(&client_from("127.0.0.6"), base, "viewer", "guess").await,
        401
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spraying_many_names_from_one_address_locks_that_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), CONFIG).await;
    let base = srv.base.as_str();
    let sprayer = client_from("127.0.0.7");
    // Four times the limit, each name below its own limit.
    for i in 0..4 * LIMIT {
        let name = format!("user{}", i / 2);
        assert_eq!(
            login_status(&sprayer, base, &name, "guess").await,
            401,
            "{i}"
        );
    }
    assert_eq!(
        login_status(&sprayer, base, "admin", ADMIN_PASSWORD).await,
        429,
        "the address is locked whatever the name"
    );
    let other = client_from("127.0.0.8");
    assert_eq!(
        login_status(&other, base, "admin", ADMIN_PASSWORD).await,
        200
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lockout_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), CONFIG).await;
    let a = client_from("127.0.0.2");
    for _ in 0..LIMIT {
        assert_eq!(login_status(&a, &srv.base, "viewer", "guess").await, 401);
    }
    assert_eq!(
        login_status(&a, &srv.base, "viewer", VIEWER_PASSWORD).await,
        429
    );
    srv.shutdown().await;
    let state = dir.path().join("smon-users.throttle.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state)
            .expect("throttle state saved")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A new server on the same files: the address is still locked out for that name.
    let srv = Server::start(dir.path(), CONFIG).await;
    let a = client_from("127.0.0.2");
    assert_eq!(
        login_status(&a, &srv.base, "viewer", VIEWER_PASSWORD).await,
        429,
        "the lockout was forgotten by the restart"
    );
    let b = client_from("127.0.0.3");
    assert_eq!(
        login_status(&b, &srv.base, "viewer", VIEWER_PASSWORD).await,
        200
    );
    srv.shutdown().await;
}

/// The aggregator binary on `port` with the test users (mode 0600) in `dir`, stderr (its log)
/// into `dir/err.log`; waits until it answers.
pub(crate) fn spawn_binary(dir: &Path, port: u16) -> std::process::Child {
    write_users(dir, "smon-users.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("smon-users.json"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
    }
    let cfg = dir.join("config_app.json");
    let config = serde_json::json!({
        "server": {"host": "127.0.0.1", "port": port},
        "monitor": {"mode": "app", "poll_interval_ms": 1000, "clusters": []},
    });
    std::fs::write(&cfg, config.to_string()).expect("config");
    let err = std::fs::File::create(dir.join("err.log")).expect("log file");
    let child = crate::support::aggregator(&cfg)
        .env_remove("RUST_LOG")
        .stderr(err)
        .spawn()
        .expect("aggregator");
    crate::support::wait_for_port(port);
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_names_cannot_forge_log_lines_or_flood_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::support::free_port("127.0.0.1");
    let mut child = spawn_binary(dir.path(), port);
    let base = format!("http://127.0.0.1:{port}");
    let c = client_from("127.0.0.9");
    // A name that would end the log line, forge an INFO line, and colour the terminal.
    let forged = "bob\n2026-12-03T00:00:00Z  INFO FORGED Login.\r\x1b[31mREDTEXT\x1b[0m";
    let r = c
        .post(format!("{base}/api/v1/login"))
        .header("origin", &base)
        .json(&serde_json::json!({"user": forged, "password": "x"}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 400);
    let why = r.text().await.unwrap_or_default();
    assert!(why.contains("user name"), "{why}");
    // 300 logins with 15 KB names, in under a second or two: each refused with 400 and a
    // reason, before any hashing; the log gets a few short lines and a count of the rest.
    let long = "A".repeat(15 * 1024);
    let started = Instant::now();
    for i in 0..300 {
        let r = c
            .post(format!("{base}/api/v1/login"))
            .header("origin", &base)
            .json(&serde_json::json!({"user": long, "password": "x"}))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 400, "{i}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    // One more a second later reports how many lines were left out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = c
        .post(format!("{base}/api/v1/login"))
        .header("origin", &base)
        .json(&serde_json::json!({"user": long, "password": "x"}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 400);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("err.log")).expect("log");
    for line in log.lines().filter(|l| l.contains("FORGED")) {
        assert!(
            line.contains("Login refused") && line.contains("\\u{a}"),
            "a forged line: {line}"
        );
    }
    assert_eq!(
        log.lines().filter(|l| l.contains("FORGED")).count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("\x1b[31mREDTEXT"),
        "raw ANSI codes reached the log"
    );
    assert!(
        log.len() < 16 * 1024,
        "{} bytes of log for 300 refused logins",
        log.len()
    );
    let left_out = log
        .lines()
        .filter(|l| l.contains("Login refused"))
        .filter_map(|l| {
            l.split("suppressed=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum::<u64>();
    assert!(
        left_out > 200,
        "{left_out} lines counted as left out:\n{log}"
    );
}

/// Who `/api/v1/me` says the client is: the user name, or `None` when not logged in.
async fn me(client: &reqwest::Client, base: &str) -> Option<String> {
    let v: serde_json::Value = client
        .get(format!("{base}/api/v1/me"))
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("me json");
    (v["authenticated"] == true).then(|| v["user"].as_str().unwrap_or_default().to_owned())
}

/// Issue 16 item 13: login sessions live in the server's database (with history on, the
/// default), so a restart logs nobody out; a password changed while the server was down (in
/// the users file) still ends the sessions of the old one. Without the database they are
/// kept in memory and a restart ends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sessions_survive_a_restart_but_not_a_new_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), CONFIG).await;
    let viewer = client_from("127.0.0.2");
    let admin = client_from("127.0.0.3");
    assert_eq!(
        login_status(&viewer, &srv.base, "viewer", VIEWER_PASSWORD).await,
        200
    );
    assert_eq!(
        login_status(&admin, &srv.base, "admin", ADMIN_PASSWORD).await,
        200
    );
    assert_eq!(me(&viewer, &srv.base).await.as_deref(), Some("viewer"));
    srv.shutdown().await;

    // The same cookies, a new server on the same files (its own port: cookies ignore ports).
    let srv = Server::start(dir.path(), CONFIG).await;
    assert_eq!(
        me(&viewer, &srv.base).await.as_deref(),
        Some("viewer"),
        "the restart logged the viewer out"
    );
    assert_eq!(me(&admin, &srv.base).await.as_deref(), Some("admin"));
    srv.shutdown().await;

    // While it is down, the operator gives the viewer a new password in the users file.
    let file = dir.path().join("smon-users.json");
    let mut users: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("users")).expect("users json");
    for u in users["users"].as_array_mut().expect("list") {
        if u["name"] == "viewer" {
            u["password_hash"] = serde_json::json!(
                smon_web::security::users::hash_password("a-new-password-456").expect("hash")
            );
        }
    }
    std::fs::write(&file, users.to_string()).expect("users");
    let srv = Server::start(dir.path(), CONFIG).await;
    assert_eq!(
        me(&viewer, &srv.base).await,
        None,
        "the old password's session"
    );
    assert_eq!(me(&admin, &srv.base).await.as_deref(), Some("admin"));
    srv.shutdown().await;

    // History (and so the database) off: sessions are in memory, and a restart ends them.
    let off = CONFIG.replace(r#""monitor":"#, r#""storage":{"enabled":false},"monitor":"#);
    let srv = Server::start(dir.path(), &off).await;
    let c = client_from("127.0.0.4");
    assert_eq!(
        login_status(&c, &srv.base, "admin", ADMIN_PASSWORD).await,
        200
    );
    assert_eq!(me(&c, &srv.base).await.as_deref(), Some("admin"));
    srv.shutdown().await;
    let srv = Server::start(dir.path(), &off).await;
    assert_eq!(me(&c, &srv.base).await, None);
    srv.shutdown().await;
}
