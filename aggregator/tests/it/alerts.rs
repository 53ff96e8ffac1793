//! Alerts end to end: real agents (and `smon-sim` for a hundred hosts), the aggregator in
//! process or as its binary, and webhook receivers started by the test on loopback.
//!
//! - an agent killed for real (SIGKILL) is notified within the rule's `for_s` + 5 s, and
//!   resolved once it runs again; the overview's badge, `/metrics` and the history follow;
//! - a hundred simulated hosts going down at once make one notification per channel;
//! - a channel that is down loses nothing, across a `kill -9` of the aggregator too;
//! - the REST routes: viewers read, admins write, bad input gets a 4xx with a reason, secrets
//!   never come back, and the UI's rules and silences survive a restart.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{
    ADMIN_PASSWORD, Agent, Aggregator, Binary, TOKEN, VIEWER_PASSWORD, free_port, login, send,
    workspace_bin, write_users,
};

/// The secret part of the receivers' URL: it must never come back out of the API.
const SECRET: &str = "hook-secret-4f9a1c";

/// A webhook receiver on loopback: keeps every body posted to it.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Value>>>,
    stop: CancellationToken,
}

impl Receiver {
    /// Listens on a fresh port.
    async fn start() -> Self {
        Self::on(0).await
    }

    /// Listens on `port` of 127.0.0.1 (0: a fresh one).
    async fn on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        async fn take(State(got): State<Arc<Mutex<Vec<Value>>>>, body: String) -> &'static str {
            let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
            got.lock().expect("lock").push(v);
            "ok"
        }
        let app = axum::Router::new()
            .route(&format!("/hook/{SECRET}"), axum::routing::post(take))
            .with_state(got.clone());
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        });
        Self { addr, got, stop }
    }

    fn url(port: u16) -> String {
        format!("http://127.0.0.1:{port}/hook/{SECRET}")
    }

    /// Notifications received (tests, `test-...` ids, left out).
    fn notifications(&self) -> Vec<Value> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter(|v| {
                v.get("alerts").is_some()
                    && !v["id"].as_str().is_some_and(|id| id.starts_with("test-"))
            })
            .cloned()
            .collect()
    }

    /// Everything received.
    fn all(&self) -> Vec<Value> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits until a notification of `status` arrives; returns it with the time waited.
    async fn wait(&self, status: &str, limit: Duration) -> (Value, Duration) {
        let start = Instant::now();
        loop {
            if let Some(n) = self
                .notifications()
                .into_iter()
                .find(|n| n["status"] == status)
            {
                return (n, start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "no {status} notification within {limit:?}; received: {:?}",
                self.all()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn count(&self, status: &str) -> usize {
        self.notifications()
            .iter()
            .filter(|n| n["status"] == status)
            .count()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The ids of the hosts in a notification.
fn hosts_of(n: &Value) -> Vec<String> {
    let mut v: Vec<String> = n["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["host"]["host"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A config polling `hosts` (items of `monitor.clusters[0].hosts`) every 200 ms, with the
/// history in `data` and `alerts`.
fn config(hosts: &Value, data: &Path, alerts: Value) -> Value {
    json!({
        "monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false,
            "clusters": [{"name": "lab", "hosts": hosts}]},
        "storage": {"dir": data},
        "alerts": alerts,
    })
}

fn host(name: &str, addr: impl ToString) -> Value {
    json!({"name": name, "address": addr.to_string(), "token": TOKEN})
}

/// Seconds from `t` to now, for the messages.
fn since(t: Instant) -> String {
    format!("{:.1} s", t.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_is_notified_within_for_s_plus_5_s_and_resolved_after_its_restart() {
    const FOR_S: u64 = 2;
    let mut agent = Agent::start("127.0.0.1");
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &json!([host("n1", agent.addr)]),
        &dir.path().join("data"),
        json!({
            "rules": [{"name": "host down", "when": "host_down", "for_s": FOR_S,
                "severity": "critical", "notify": ["hook"]}],
            "channels": [{"name": "hook", "type": "webhook", "url": Receiver::url(hook.addr.port())}],
        }),
    );
    let agg = Aggregator::start(&cfg.to_string()).await;
    agg.wait_row("lab:n1", Duration::from_secs(20), "up", |r| {
        r["status"] == "up"
    })
    .await;

    let killed = Instant::now();
    agent.kill();
    let limit = Duration::from_secs(FOR_S + 5);
    let (n, took) = hook.wait("firing", Duration::from_secs(30)).await;
    eprintln!("SIGKILL -> firing notification: {took:?}");
    assert!(
        took <= limit,
        "the firing notification came {took:?} after the kill (for_s {FOR_S} s + 5 s = {limit:?})"
    );
    assert_eq!(n["rule"], "host down");
    assert_eq!(n["severity"], "critical");
    assert_eq!(hosts_of(&n), ["lab:n1"]);
    assert!(n["id"].as_str().is_some_and(|s| !s.is_empty()), "{n}");
    let started = n["alerts"][0]["started_ms"].as_u64().unwrap_or(0);
    assert!(started > 0, "the start time is given: {n}");

    // While it fires: the list, the overview's badge and /metrics say so.
    let (st, list) = agg.get("/api/v1/alerts").await;
    assert_eq!(st, 200, "{list}");
    let firing: Vec<&Value> = list["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["pending"] == false)
        .collect();
    assert_eq!(firing.len(), 1, "{list}");
    assert_eq!(firing[0]["host"]["host"], "lab:n1");
    assert_eq!(firing[0]["status"], "firing");
    agg.wait_row("lab:n1", Duration::from_secs(5), "badged", |r| {
        r["alerts"] == 1
    })
    .await;
    let metrics = agg
        .client
        .get(format!("{}/metrics", agg.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"smon_alerts_firing{rule="host down",severity="critical"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"smon_notify_sent_total{channel="hook"} 1"#),
        "{metrics}"
    );

    // Back: one resolved notification, the badge goes, the history has both.
    let back = Instant::now();
    agent.restart();
    let (r, took) = hook.wait("resolved", Duration::from_secs(30)).await;
    eprintln!("restart -> resolved notification: {took:?}");
    assert_eq!(hosts_of(&r), ["lab:n1"]);
    assert_eq!(
        r["alerts"][0]["id"], n["alerts"][0]["id"],
        "the resolution names the same alert"
    );
    agg.wait_row("lab:n1", Duration::from_secs(5), "without a badge", |r| {
        r.get("alerts").is_none_or(|a| a == 0)
    })
    .await;
    let (st, h) = agg.get("/api/v1/alerts/history?rule=host%20down").await;
    assert_eq!(st, 200, "{h}");
    let statuses: Vec<&str> = h["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["alert"]["status"].as_str())
        .collect();
    assert_eq!(statuses, ["resolved", "firing"], "newest first: {h}");
    assert_eq!(hook.count("firing"), 1, "one firing notification");
    eprintln!("killed {} ago, back {} ago", since(killed), since(back));
    agg.shutdown().await;
}

/// `n` simulated agents on 127.4.0.1 and up, one port.
struct Sim {
    child: Option<Child>,
    n: u32,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sim {
    const FIRST: Ipv4Addr = Ipv4Addr::new(127, 4, 0, 1);

    fn start(n: u32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).expect("token");
        let port = free_port(&Self::FIRST.to_string());
        let mut s = Self {
            child: None,
            n,
            port,
            dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        use std::io::BufRead;
        let mut child = Command::new(workspace_bin("smon-sim"))
            .args([
                "--agents",
                &self.n.to_string(),
                "--first-addr",
                &Self::FIRST.to_string(),
                "--port",
                &self.port.to_string(),
                "--max-gpus",
                "0",
                "--token-file",
            ])
            .arg(self.dir.path().join("token"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn smon-sim");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("read");
        assert!(line.starts_with("ready"), "smon-sim said {line:?}");
        self.child = Some(child);
    }

    fn addr(&self, i: u32) -> String {
        format!(
            "{}:{}",
            Ipv4Addr::from(u32::from(Self::FIRST) + i),
            self.port
        )
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_hosts_down_at_once_make_one_notification_per_channel() {
    const N: u32 = 100;
    let mut sim = Sim::start(N);
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts: Vec<Value> = (0..N)
        .map(|i| host(&format!("h{i}"), sim.addr(i)))
        .collect();
    let cfg = config(
        &Value::Array(hosts),
        &dir.path().join("data"),
        json!({
            "rules": [{"name": "rack down", "when": "host_down", "for_s": 1,
                "notify": ["a", "b"]}],
            "channels": [
                {"name": "a", "type": "webhook", "url": Receiver::url(a.addr.port())},
                {"name": "b", "type": "webhook", "url": Receiver::url(b.addr.port())},
            ],
        }),
    );
    let agg = Aggregator::start(&cfg.to_string()).await;
    let start = Instant::now();
    loop {
        let (_, rows) = agg.get("/api/v1/hosts").await;
        let up = rows
            .as_array()
            .map_or(0, |r| r.iter().filter(|h| h["status"] == "up").count());
        if up == N as usize {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{up} of {N} hosts up after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    sim.kill();
    let want: Vec<String> = {
        let mut v: Vec<String> = (0..N).map(|i| format!("lab:h{i}")).collect();
        v.sort();
        v
    };
    for r in [&a, &b] {
        let (n, took) = r.wait("firing", Duration::from_secs(30)).await;
        eprintln!("100 hosts down -> one notification after {took:?}");
        assert_eq!(hosts_of(&n), want, "every host in the one notification");
    }
    // Nothing more comes for them (the grouping window is long past).
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(a.count("firing"), 1, "channel a: {:?}", a.notifications());
    assert_eq!(b.count("firing"), 1, "channel b: {:?}", b.notifications());

    // All back at once: one resolved notification each.
    sim.spawn();
    for r in [&a, &b] {
        let (n, _) = r.wait("resolved", Duration::from_secs(60)).await;
        assert_eq!(
            hosts_of(&n),
            want,
            "every host resolved in one notification"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(a.count("resolved"), 1);
    assert_eq!(b.count("resolved"), 1);
    agg.shutdown().await;
}

/// Logs in to a binary's dashboard as admin.
async fn admin(b: &Binary) -> reqwest::Client {
    login(&b.base(), "admin", ADMIN_PASSWORD).await
}

/// `GET path` as `client`, JSON.
async fn get(client: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    match client.get(format!("{base}{path}")).send().await {
        Ok(r) => {
            let st = r.status().as_u16();
            (st, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// Waits until the binary answers its health probe.
async fn wait_ready(b: &Binary) {
    let start = Instant::now();
    while b.get("/healthz").await.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the aggregator did not start; log:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_down_loses_nothing_across_a_kill_9_of_the_aggregator() {
    let mut agent = Agent::start("127.0.0.1");
    let dir = tempfile::tempdir().expect("tempdir");
    write_users(dir.path(), "smon-users.json");
    let hook_port = free_port("127.0.0.1");
    let port = free_port("127.0.0.1");
    let mut cfg = config(
        &json!([host("n1", agent.addr)]),
        &dir.path().join("data"),
        json!({
            "rules": [{"name": "down", "when": "host_down", "for_s": 0, "notify": ["hook"],
                "group_wait_s": 0}],
            "channels": [{"name": "hook", "type": "webhook", "url": Receiver::url(hook_port)}],
        }),
    );
    cfg["server"] = json!({"port": port});
    let cfg_path = dir.path().join("config_app.json");
    std::fs::write(&cfg_path, cfg.to_string()).expect("config");
    let log = dir.path().join("aggregator.log");

    // The channel is down (nothing listens on its port) when the alert fires.
    let mut b = Binary::spawn(&cfg_path, port, log.clone());
    wait_ready(&b).await;
    let client = admin(&b).await;
    let start = Instant::now();
    while get(&client, &b.base(), "/api/v1/hosts").await.1[0]["status"] != "up" {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", b.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agent.kill();
    let start = Instant::now();
    loop {
        let (_, ch) = get(&client, &b.base(), "/api/v1/alerts/channels").await;
        let c = &ch[0];
        if c["queued"].as_u64() >= Some(1) && c["failed"].as_u64() >= Some(1) {
            assert!(c["last_error"].is_string(), "the failure is shown: {c}");
            assert!(!ch.to_string().contains(SECRET), "no secret: {ch}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the notification was not queued and tried: {ch}\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // kill -9 while it waits; the channel comes back; the aggregator starts again.
    b.signal("-KILL");
    let hook = Receiver::on(hook_port).await;
    let b = Binary::spawn(&cfg_path, port, log);
    wait_ready(&b).await;
    let (n, took) = hook.wait("firing", Duration::from_secs(30)).await;
    eprintln!("delivered {took:?} after the restart");
    assert_eq!(n["rule"], "down");
    assert_eq!(hosts_of(&n), ["lab:n1"]);
    // Once: the engine's saved state knows it notified already.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.count("firing"), 1, "{:?}", hook.all());

    // And its end is notified too.
    agent.restart();
    hook.wait("resolved", Duration::from_secs(30)).await;
    let client = admin(&b).await;
    let (_, ch) = get(&client, &b.base(), "/api/v1/alerts/channels").await;
    assert_eq!(ch[0]["queued"], 0, "{ch}");
    assert!(ch[0]["sent"].as_u64() >= Some(2), "{ch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_admins_write_and_bad_input_gets_a_reason() {
    use reqwest::Method;
    let agent = Agent::start("127.0.0.1");
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let dead = free_port("127.0.0.1");
    let cfg = config(
        &json!([host("n1", agent.addr)]),
        &data,
        json!({
            "rules": [{"name": "busy", "when": "cpu_percent >= 0", "notify": ["hook"]}],
            "channels": [
                {"name": "hook", "type": "webhook", "url": Receiver::url(hook.addr.port())},
                {"name": "dead", "type": "webhook", "url": Receiver::url(dead)},
            ],
        }),
    )
    .to_string();
    let agg = Aggregator::start(&cfg).await;
    let base = agg.base.clone();
    let viewer = login(&base, "viewer", VIEWER_PASSWORD).await;
    let anon = reqwest::Client::new();

    // Who may read.
    assert_eq!(get(&anon, &base, "/api/v1/alerts").await.0, 401);
    let start = Instant::now();
    let id = loop {
        let (st, v) = get(&viewer, &base, "/api/v1/alerts").await;
        assert_eq!(st, 200, "{v}");
        if let Some(a) = v["alerts"].as_array().and_then(|a| a.first()) {
            assert_eq!(a["rule"], "busy");
            break a["id"].as_str().expect("id").to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no alert: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Viewers change nothing.
    let rule = json!({"name": "hot", "when": "temp_max_celsius > 80", "for_s": 60});
    for (m, p, b) in [
        (
            Method::POST,
            "/api/v1/alerts/rules".to_owned(),
            Some(rule.clone()),
        ),
        (Method::DELETE, "/api/v1/alerts/rules/busy".to_owned(), None),
        (
            Method::POST,
            "/api/v1/alerts/silences".to_owned(),
            Some(json!({"host": "lab:n1", "duration_s": 60})),
        ),
        (Method::POST, format!("/api/v1/alerts/{id}/ack"), None),
        (
            Method::POST,
            "/api/v1/alerts/channels/hook/test".to_owned(),
            None,
        ),
    ] {
        let (st, v) = send(&viewer, &base, m.clone(), &p, b).await;
        assert_eq!(st, 403, "viewer {m} {p}: {v}");
    }

    // Rules: bad input is refused with the reason; config rules are read-only.
    let c = &agg.client;
    let bad = [
        (
            json!({"name": "x", "when": "cpu_percnt > 9"}),
            400,
            "cpu_percnt",
        ),
        (
            json!({"name": "x", "when": "host_down", "fro_s": 3}),
            400,
            "fro_s",
        ),
        (
            json!({"name": "x", "when": "host_down", "notify": ["nope"]}),
            400,
            "nope",
        ),
        (json!({"name": "busy", "when": "host_down"}), 409, "busy"),
    ];
    for (body, want, names) in bad {
        let (st, v) = send(
            c,
            &base,
            Method::POST,
            "/api/v1/alerts/rules",
            Some(body.clone()),
        )
        .await;
        assert_eq!(st, want, "{body} -> {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(names)),
            "{body}: the reason names {names}: {v}"
        );
    }
    let (st, v) = send(
        c,
        &base,
        Method::PUT,
        "/api/v1/alerts/rules/busy",
        Some(rule.clone()),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = send(
        c,
        &base,
        Method::POST,
        "/api/v1/alerts/rules",
        Some(rule.clone()),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["source"], "ui");
    let renamed = json!({"name": "hotter", "when": "temp_max_celsius > 90", "for_s": 30,
        "notify": ["hook"], "severity": "critical"});
    let (st, v) = send(
        c,
        &base,
        Method::PUT,
        "/api/v1/alerts/rules/hot",
        Some(renamed),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = send(c, &base, Method::DELETE, "/api/v1/alerts/rules/nope", None).await;
    assert_eq!(st, 404, "{v}");

    // Silences.
    for (body, names) in [
        (json!({"duration_s": 60}), "at least one"),
        (json!({"host": "lab:n1"}), "ends_ms"),
        (
            json!({"host": "lab:n1", "window": {"start": "25:00", "end": "02:00"}}),
            "25:00",
        ),
        (
            json!({"host": "lab:n1", "duration_s": 60, "ends_ms": 1}),
            "not both",
        ),
    ] {
        let (st, v) = send(
            c,
            &base,
            Method::POST,
            "/api/v1/alerts/silences",
            Some(body.clone()),
        )
        .await;
        assert_eq!(st, 400, "{body} -> {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(names)),
            "{body}: the reason says {names}: {v}"
        );
    }
    let (st, s) = send(
        c,
        &base,
        Method::POST,
        "/api/v1/alerts/silences",
        Some(json!({"host": "lab:n1", "duration_s": 3600, "comment": "disk swap"})),
    )
    .await;
    assert_eq!(st, 201, "{s}");
    assert_eq!(s["created_by"], "admin");
    assert_eq!(s["active"], true);
    let start = Instant::now();
    loop {
        let (_, v) = get(c, &base, "/api/v1/alerts").await;
        if v["alerts"][0]["silenced"] == true {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not silenced: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Acknowledge.
    let (st, v) = send(
        c,
        &base,
        Method::POST,
        &format!("/api/v1/alerts/{id}/ack"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["ack"]["by"], "admin");
    let (st, _) = send(c, &base, Method::POST, "/api/v1/alerts/nope/ack", None).await;
    assert_eq!(st, 404);

    // History queries.
    for q in ["limit=0", "limit=x", "from=10&to=5", "limit=1001"] {
        let (st, v) = get(c, &base, &format!("/api/v1/alerts/history?{q}")).await;
        assert_eq!(st, 400, "{q}: {v}");
        assert!(v["error"].is_string(), "{q}: {v}");
    }
    // The history is written once a second.
    let start = Instant::now();
    loop {
        let (st, h) = get(&viewer, &base, "/api/v1/alerts/history?host=lab:n1").await;
        assert_eq!(st, 200, "{h}");
        if h["events"][0]["alert"]["rule"] == "busy" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Channels: no secret, a test each (one delivered, one refused with the reason).
    let (st, ch) = get(&viewer, &base, "/api/v1/alerts/channels").await;
    assert_eq!(st, 200);
    assert!(!ch.to_string().contains(SECRET), "a secret came back: {ch}");
    assert_eq!(ch[0]["secret_set"], true, "{ch}");
    let before = hook.all().len();
    let (st, v) = send(
        c,
        &base,
        Method::POST,
        "/api/v1/alerts/channels/hook/test",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        hook.all().len(),
        before + 1,
        "the test reached the receiver"
    );
    let (st, v) = send(
        c,
        &base,
        Method::POST,
        "/api/v1/alerts/channels/dead/test",
        None,
    )
    .await;
    assert_eq!(st, 502, "{v}");
    assert!(!v.to_string().contains(SECRET), "{v}");
    let (st, _) = send(
        c,
        &base,
        Method::POST,
        "/api/v1/alerts/channels/nope/test",
        None,
    )
    .await;
    assert_eq!(st, 404);

    // The UI's rule and silence survive a restart on the same database.
    agg.shutdown().await;
    let agg = Aggregator::start(&cfg).await;
    let (_, rules) = agg.get("/api/v1/alerts/rules").await;
    let names: Vec<(&str, &str)> = rules
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| Some((r["rule"]["name"].as_str()?, r["source"].as_str()?)))
        .collect();
    assert_eq!(names, [("busy", "config"), ("hotter", "ui")], "{rules}");
    let (_, sil) = agg.get("/api/v1/alerts/silences").await;
    let sid = sil[0]["id"]
        .as_str()
        .expect("the silence is kept")
        .to_owned();
    let (st, _) = send(
        &agg.client,
        &agg.base,
        Method::DELETE,
        &format!("/api/v1/alerts/silences/{sid}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (_, sil) = agg.get("/api/v1/alerts/silences").await;
    assert_eq!(sil, json!([]));
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_add_change_and_remove_channels_and_their_secrets_stay_inside() {
    use reqwest::Method;
    let agent = Agent::start("127.0.0.1");
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &json!([host("n1", agent.addr)]),
        &dir.path().join("data"),
        json!({
            "channels": [{"name": "ops", "type": "webhook", "url": Receiver::url(free_port("127.0.0.1"))}],
        }),
    )
    .to_string();
    let agg = Aggregator::start(&cfg).await;
    let (c, base) = (&agg.client, agg.base.clone());
    let url = Receiver::url(hook.addr.port());

    // What a browser may not make the server do is refused, with the reason.
    for (body, names) in [
        (
            json!({"name": "sh", "type": "command", "program": "/bin/sh"}),
            "config_app.json",
        ),
        (
            json!({"name": "f", "type": "webhook", "url_file": "/etc/shadow"}),
            "url_file",
        ),
        (json!({"name": "x", "type": "webhook"}), "url"),
        (
            json!({"name": "x y", "type": "webhook", "url": url}),
            "name",
        ),
        (json!({"name": "x", "type": "pager", "url": url}), "pager"),
        (json!({"name": "ops", "type": "webhook", "url": url}), "ops"),
    ] {
        let (st, v) = send(
            c,
            &base,
            Method::POST,
            "/api/v1/alerts/channels",
            Some(body.clone()),
        )
        .await;
        assert!(st == 400 || st == 409, "{body} -> {st} {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(names)),
            "{body}: the reason names {names}: {v}"
        );
        assert!(!v.to_string().contains(SECRET), "{v}");
    }
    let viewer = login(&base, "viewer", VIEWER_PASSWORD).await;
    let new = json!({"name": "hook", "type": "webhook", "url": url});
    let (st, _) = send(
        &viewer,
        &base,
        Method::POST,
        "/api/v1/alerts/channels",
        Some(new.clone()),
    )
    .await;
    assert_eq!(st, 403);

    // Added: listed without its secret, used by a rule at once.
    let (st, v) = send(c, &base, Method::POST, "/api/v1/alerts/channels", Some(new)).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (v["source"].as_str(), v["updated_by"].as_str()),
        (Some("ui"), Some("admin"))
    );
    assert!(!v.to_string().contains(SECRET), "{v}");
    let rule = json!({"name": "busy", "when": "cpu_percent >= 0", "notify": ["hook"]});
    let (st, v) = send(c, &base, Method::POST, "/api/v1/alerts/rules", Some(rule)).await;
    assert_eq!(st, 201, "{v}");
    hook.wait("firing", Duration::from_secs(20)).await;

    // Changed without repeating the secret: the URL stays, the rate limit changes.
    let (st, v) = send(
        c,
        &base,
        Method::PUT,
        "/api/v1/alerts/channels/hook",
        Some(json!({"rate_limit": {"max": 5, "per_s": 60}})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["rate_limit"], json!({"max": 5, "per_s": 60}));
    let before = hook.all().len();
    let (st, v) = send(
        c,
        &base,
        Method::POST,
        "/api/v1/alerts/channels/hook/test",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(hook.all().len(), before + 1, "the kept URL still delivers");
    // The figures of the other channels survived the change of the channel list.
    let (_, ch) = agg.get("/api/v1/alerts/channels").await;
    let hook_entry = ch
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "hook"))
        .cloned()
        .unwrap_or_default();
    assert!(hook_entry["sent"].as_u64() >= Some(1), "{hook_entry}");
    for (path, body, want) in [
        ("/api/v1/alerts/channels/ops", json!({"max_age_s": 60}), 403),
        (
            "/api/v1/alerts/channels/nope",
            json!({"max_age_s": 60}),
            404,
        ),
        (
            "/api/v1/alerts/channels/hook",
            json!({"name": "other"}),
            400,
        ),
        ("/api/v1/alerts/channels/hook", json!({"url": null}), 400),
    ] {
        let (st, v) = send(c, &base, Method::PUT, path, Some(body.clone())).await;
        assert_eq!(st, want, "PUT {path} {body}: {v}");
    }

    // Kept across a restart; removed only once no rule notifies it.
    agg.shutdown().await;
    let agg = Aggregator::start(&cfg).await;
    let (c, base) = (&agg.client, agg.base.clone());
    let (_, ch) = agg.get("/api/v1/alerts/channels").await;
    let names: Vec<(&str, &str)> = ch
        .as_array()
        .expect("channels")
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?, c["source"].as_str()?)))
        .collect();
    assert_eq!(names, [("hook", "ui"), ("ops", "config")], "{ch}");
    assert!(!ch.to_string().contains(SECRET), "{ch}");
    let (st, v) = send(
        c,
        &base,
        Method::DELETE,
        "/api/v1/alerts/channels/hook",
        None,
    )
    .await;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("busy")),
        "{v}"
    );
    let (st, _) = send(c, &base, Method::DELETE, "/api/v1/alerts/rules/busy", None).await;
    assert_eq!(st, 204);
    let (st, v) = send(
        c,
        &base,
        Method::DELETE,
        "/api/v1/alerts/channels/hook",
        None,
    )
    .await;
    assert_eq!(st, 204, "{v}");
    let (st, _) = send(
        c,
        &base,
        Method::DELETE,
        "/api/v1/alerts/channels/ops",
        None,
    )
    .await;
    assert_eq!(st, 403);
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_replaces_the_config_rules_and_keeps_those_of_the_ui() {
    use reqwest::Method;
    let dir = tempfile::tempdir().expect("tempdir");
    write_users(dir.path(), "smon-users.json");
    let port = free_port("127.0.0.1");
    let write = |rules: Value, channel: &str| {
        let mut cfg = config(
            &json!([host("n1", "127.0.0.1:9")]),
            &dir.path().join("data"),
            json!({"rules": rules,
                "channels": [{"name": channel, "type": "ntfy", "topic": "smon-test-topic"}]}),
        );
        cfg["server"] = json!({"port": port});
        std::fs::write(dir.path().join("config_app.json"), cfg.to_string()).expect("config");
    };
    write(json!([{"name": "old", "when": "host_down"}]), "ops");
    let log = dir.path().join("aggregator.log");
    let b = Binary::spawn(&dir.path().join("config_app.json"), port, log);
    wait_ready(&b).await;
    let c = admin(&b).await;
    let base = b.base();
    let ui = json!({"name": "mine", "when": "load1 > 8"});
    let (st, v) = send(&c, &base, Method::POST, "/api/v1/alerts/rules", Some(ui)).await;
    assert_eq!(st, 201, "{v}");

    // New config rules, and a channel change that needs a restart.
    write(
        json!([{"name": "new", "when": "mem_percent > 95"}, {"name": "mine", "when": "host_down"}]),
        "pager",
    );
    b.nudge("-HUP");
    let start = Instant::now();
    let want = [("new", "config"), ("mine", "config")];
    loop {
        let (_, rules) = get(&c, &base, "/api/v1/alerts/rules").await;
        let got: Vec<(String, String)> = rules
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        Some((
                            r["rule"]["name"].as_str()?.to_owned(),
                            r["source"].as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The UI's "mine" steps aside while a config rule has its name.
        if got.iter().map(|(n, s)| (n.as_str(), s.as_str())).eq(want)
            || got.len() == 3
                && got[..2]
                    .iter()
                    .map(|(n, s)| (n.as_str(), s.as_str()))
                    .eq(want)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the rules after SIGHUP: {got:?}\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, ch) = get(&c, &base, "/api/v1/alerts/channels").await;
    assert_eq!(ch[0]["name"], "ops", "channels need a restart: {ch}");
    let log = b.log();
    assert!(
        log.lines()
            .any(|l| l.contains("need a restart") && l.contains("alerts")),
        "the restart-only change is named: {log}"
    );
}
