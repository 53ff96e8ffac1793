//! The live fleet: the registry adding, changing and removing hosts while the aggregator runs
//! (in-process through `Registry::apply`, and in the real binary on SIGHUP, watched by REST
//! and a Socket.IO client); the command link to live, down, TLS and mutual-TLS agents; and
//! the event feed, where a consumer that never reads must not hold the hub back.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smon_aggregator::feed::{Body, Kinds, RegistryChange};
use smon_aggregator::link::LinkError;
use smon_aggregator::registry::Applied;

use crate::security::Pki;
use crate::support::{Agent, InProcess as Live, Polling, TOKEN, free_port, write_users};

const WRONG_TOKEN: &str = "wrong-token-0123456789abcdef";

fn host(name: &str, agent: &Agent, token: &str, tags: &[&str]) -> Value {
    json!({"name": name, "address": agent.addr.to_string(), "token": token, "tags": tags})
}

fn fleet(hosts: Vec<Value>) -> Value {
    json!({"monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false,
        "clusters": [{"name": "lab", "hosts": hosts}]}})
}

fn up(r: &Value) -> bool {
    r["status"] == "up"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_adds_changes_and_removes_hosts_while_running() {
    let a1 = Agent::start("127.0.0.41");
    let a2 = Agent::start("127.0.0.42");
    let a3 = Agent::start("127.0.0.43");
    let v1 = fleet(vec![
        host("n1", &a1, TOKEN, &["old"]),
        host("n2", &a2, WRONG_TOKEN, &[]),
    ]);
    let live = Live::start(&v1).await;
    let mut changes = live
        .feed
        .subscribe("test", Kinds::REGISTRY.with(Kinds::STATE), 1000);
    let limit = Duration::from_secs(10);
    live.wait_row("lab:n1", limit, "up", up).await;
    live.wait_row("lab:n2", limit, "down for its token", |r| {
        r["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("check the token"))
    })
    .await;
    assert_eq!(live.registry.pollers_started(), 2);

    // n1: new tags only; n2: the right token; n3: new.
    let v2 = fleet(vec![
        host("n1", &a1, TOKEN, &["new"]),
        host("n2", &a2, TOKEN, &[]),
        host("n3", &a3, TOKEN, &[]),
    ]);
    let applied = live.registry.apply(live.targets(&v2));
    assert_eq!(
        applied,
        Applied {
            added: vec!["lab:n3".into()],
            removed: vec![],
            reconnected: vec!["lab:n2".into()],
            retagged: vec!["lab:n1".into()],
            unchanged: 0,
        }
    );
    assert_eq!(
        live.registry.generation("lab:n1"),
        Some(1),
        "tags alone: same poller"
    );
    assert_eq!(live.registry.generation("lab:n2"), Some(2));
    assert_eq!(live.registry.pollers_started(), 4);
    let t = Instant::now();
    live.wait_row("lab:n3", Duration::from_secs(5), "up", up)
        .await;
    live.wait_row("lab:n2", Duration::from_secs(5), "up", up)
        .await;
    eprintln!("added host up after {:?}", t.elapsed());
    let rows = live.rows().await;
    let n1 = rows.iter().find(|r| r["id"] == "lab:n1").expect("n1");
    assert_eq!(n1["tags"], json!(["new"]));
    assert_eq!(n1["status"], "up", "n1 kept its state: {n1}");

    // The same fleet again: nothing to do.
    let again = live.registry.apply(live.targets(&v2));
    assert!(again.is_empty() && again.unchanged == 3, "{again:?}");

    // n1 goes: gone from REST at once, and from the link.
    let v3 = fleet(vec![
        host("n2", &a2, TOKEN, &[]),
        host("n3", &a3, TOKEN, &[]),
    ]);
    let applied = live.registry.apply(live.targets(&v3));
    assert_eq!(applied.removed, ["lab:n1"]);
    let ids: Vec<Value> = live.rows().await.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, [json!("lab:n2"), json!("lab:n3")]);
    assert!(matches!(
        live.registry.link("lab:n1"),
        Err(LinkError::UnknownHost(_))
    ));
    let r = live
        .client
        .get(format!("{}/api/v1/hosts/lab:n1", live.base))
        .send()
        .await
        .expect("host");
    assert_eq!(r.status(), 404);
    let metrics = live
        .client
        .get(format!("{}/metrics", live.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"smon_poll_errors_total{cluster="lab",host="n2"}"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"host="n1""#),
        "n1 left /metrics:\n{metrics}"
    );

    // The feed told it all, in order, with the state changes.
    let mut seen = Vec::new();
    let mut last_seq = 0;
    while let Some(e) = changes.try_recv() {
        assert!(e.seq > last_seq, "sequence numbers grow");
        last_seq = e.seq;
        match &e.body {
            Body::Registry(RegistryChange::Added { host, .. }) => {
                seen.push(format!("added {host}"))
            }
            Body::Registry(RegistryChange::Reconnected { host, .. }) => {
                seen.push(format!("reconnected {host}"))
            }
            Body::Registry(RegistryChange::Retagged { host, .. }) => {
                seen.push(format!("retagged {host}"))
            }
            Body::Registry(RegistryChange::Removed { host }) => {
                seen.push(format!("removed {host}"))
            }
            Body::State { host, to, .. } => seen.push(format!("{host} {}", to.as_str())),
            other => panic!("not asked for: {other:?}"),
        }
    }
    // (n1 up and n2 down came before the subscription: the login takes a while.)
    for want in [
        "retagged lab:n1",
        "reconnected lab:n2",
        "added lab:n3",
        "lab:n3 up",
        "lab:n2 up",
        "removed lab:n1",
    ] {
        assert!(seen.iter().any(|s| s == want), "no {want:?} in {seen:?}");
    }
    let pos = |s: &str| seen.iter().position(|x| x == s);
    assert!(pos("reconnected lab:n2") < pos("lab:n2 up"), "{seen:?}");
    assert!(pos("added lab:n3") < pos("lab:n3 up"), "{seen:?}");
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_link_calls_live_tls_and_mtls_agents_and_fails_clearly() {
    let pki = Pki::new(&["127.0.0.45", "127.0.0.46"]);
    let plain = Agent::start("127.0.0.44");
    let tls = Agent::start_with(
        "127.0.0.45",
        &format!(
            r#","tls":{{"cert":"{}","key":"{}"}}"#,
            pki.path("node.pem"),
            pki.path("node.key")
        ),
    );
    let mtls = Agent::start_with(
        "127.0.0.46",
        &format!(
            r#","tls":{{"cert":"{}","key":"{}","client_ca":"{}"}}"#,
            pki.path("node.pem"),
            pki.path("node.key"),
            pki.path("ca.pem")
        ),
    );
    let mut tls_host = host("tls", &tls, TOKEN, &[]);
    tls_host["tls"] = json!({"ca": pki.path("ca.pem")});
    let mut mtls_host = host("mtls", &mtls, TOKEN, &[]);
    mtls_host["tls"] = json!({"ca": pki.path("ca.pem"), "cert": pki.path("aggregator.pem"),
        "key": pki.path("aggregator.key")});
    let closed = format!("127.0.0.47:{}", free_port("127.0.0.47"));
    let cfg = fleet(vec![
        host("plain", &plain, TOKEN, &[]),
        tls_host,
        mtls_host,
        json!({"name": "gone", "address": closed, "token": TOKEN}),
    ]);
    let live = Live::start(&cfg).await;
    let limit = Duration::from_secs(40);
    for id in ["lab:plain", "lab:tls", "lab:mtls"] {
        live.wait_row(id, limit, "up", up).await;
    }
    let deadline = Duration::from_secs(2);
    for id in ["lab:plain", "lab:tls", "lab:mtls"] {
        let link = live.registry.link(id).expect("connected");
        let info = link
            .get_info(deadline)
            .await
            .expect("GetInfo through the link");
        assert!(
            !info.hostname.is_empty() && info.cpu_logical_cores > 0,
            "{id}: {info:?}"
        );
        // Any unary call, with the caller's own request.
        let snap = link
            .call(deadline, |mut c| async move {
                let mut req = tonic::Request::new(smon_proto::GetSnapshotRequest {
                    parts: Some(smon_proto::Parts::SUMMARY),
                });
                req.set_timeout(deadline);
                c.get_snapshot(req).await
            })
            .await
            .expect("GetSnapshot through the link");
        assert!(snap.cpu.is_some(), "{id}");
    }

    // A host that never answered: a typed error at once, with the reason of its row.
    live.wait_row("lab:gone", limit, "down", |r| r["status"] == "down")
        .await;
    let t = Instant::now();
    let err = live.registry.link("lab:gone").expect_err("down");
    assert!(t.elapsed() < Duration::from_millis(100));
    let text = err.to_string();
    assert!(
        matches!(err, LinkError::Down { .. }) && text.contains("lab:gone is down: cannot connect"),
        "{text}"
    );
    assert!(matches!(
        live.registry.link("lab:nobody"),
        Err(LinkError::UnknownHost(_))
    ));

    // An agent that dies: the borrowed link answers with an error within its deadline.
    let link = live.registry.link("lab:plain").expect("connected");
    drop(plain);
    let t = Instant::now();
    let err = link
        .get_info(deadline)
        .await
        .expect_err("the agent is gone");
    assert!(
        t.elapsed() < deadline + Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(
        matches!(err, LinkError::Call { .. } | LinkError::Timeout { .. }),
        "{err}"
    );
    // Its poller notices, and the registry then says so without a call.
    let t = Instant::now();
    loop {
        match live.registry.link("lab:plain") {
            Err(LinkError::Down { reason, .. }) => {
                assert!(!reason.is_empty());
                break;
            }
            _ => {
                assert!(t.elapsed() < Duration::from_secs(10), "never marked down");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_never_reads_does_not_delay_the_hub() {
    let agents: Vec<Agent> = (0..3)
        .map(|i| Agent::start(&format!("127.0.0.{}", 48 + i)))
        .collect();
    let hosts = agents
        .iter()
        .enumerate()
        .map(|(i, a)| host(&format!("n{i}"), a, TOKEN, &[]))
        .collect();
    let live = Live::start(&fleet(hosts)).await;
    for i in 0..3 {
        live.wait_row(&format!("lab:n{i}"), Duration::from_secs(10), "up", up)
            .await;
    }
    let mut sio = Polling::connect(&live.client, &live.base)
        .await
        .expect("socket.io");
    sio.emit("subscribe", json!({"room": "overview"}))
        .await
        .expect("subscribe");
    sio.next("overview", Duration::from_secs(5))
        .await
        .expect("overview");

    // The hub's deltas over `span`: how many carried host changes, and the longest gap.
    async fn deltas(sio: &mut Polling, span: Duration) -> (usize, Duration) {
        let start = Instant::now();
        let mut last = Instant::now();
        let (mut n, mut gap) = (0, Duration::ZERO);
        while start.elapsed() < span {
            let d = sio
                .next("overview_delta", Duration::from_secs(3))
                .await
                .expect("delta");
            if d["hosts"].as_array().is_some_and(|h| !h.is_empty()) {
                n += 1;
                gap = gap.max(last.elapsed());
                last = Instant::now();
            }
        }
        (n, gap)
    }

    // A consumer that reads, alone.
    let mut reader = live.feed.subscribe("reader", Kinds::POLL, 10_000);
    // It reads until the server stops (the feed may outlive it: the web state, which holds
    // the registry and the checker, goes when its last connection does).
    let stopped = live.stop.clone();
    let reading = tokio::spawn(async move {
        let mut lags = Vec::new();
        loop {
            let e = tokio::select! {
                e = reader.recv() => e,
                () = stopped.cancelled() => None,
            };
            let Some(e) = e else { break };
            if matches!(e.body, Body::Sample { .. }) {
                lags.push(smon_web::hub::now_ms().saturating_sub(e.at_ms));
            }
        }
        lags
    });
    let span = Duration::from_secs(3);
    let (alone, alone_gap) = deltas(&mut sio, span).await;

    // And one that never reads, with a queue that is soon full.
    let stuck = live.feed.subscribe("stuck", Kinds::ALL, 8);
    let (with_stuck, stuck_gap) = deltas(&mut sio, span).await;
    eprintln!(
        "deltas alone {alone} (longest gap {alone_gap:?}), with a stuck consumer {with_stuck} ({stuck_gap:?}); stuck dropped {}",
        stuck.dropped()
    );
    assert!(
        stuck.dropped() > 0,
        "the stuck consumer's queue never filled"
    );
    let stats = live.feed.consumers();
    let of = |name: &str| stats.iter().find(|c| c.name == name).cloned().expect(name);
    assert_eq!(of("reader").dropped, 0);
    assert_eq!(of("store").dropped, 0);
    // The same counts in /metrics, per consumer.
    let text = live
        .client
        .get(format!("{}/metrics", live.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let dropped = |c: &str| {
        let prefix = format!("smon_feed_dropped_total{{consumer=\"{c}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    assert!(dropped("stuck").is_some_and(|v| v > 0.0), "{text}");
    assert_eq!(dropped("store"), Some(0.0), "{text}");
    // 200 ms interval: ~15 deltas in 3 s. The stuck consumer must not cost the hub any.
    assert!(alone >= 8, "{alone}");
    assert!(
        with_stuck + 3 >= alone,
        "alone {alone}, with a stuck consumer {with_stuck}"
    );
    assert!(stuck_gap < Duration::from_secs(1), "{stuck_gap:?}");
    drop(stuck);
    live.shutdown().await;
    let lags = reading.await.expect("reader");
    let mut sorted = lags.clone();
    sorted.sort_unstable();
    let p99 = sorted
        .get(sorted.len() * 99 / 100)
        .copied()
        .unwrap_or(u64::MAX);
    assert!(
        lags.len() > 20 && p99 < 200,
        "reader: {} events, p99 lag {p99} ms",
        lags.len()
    );
}

// ------------------------------------------------------------------ SIGHUP in the real binary

/// The aggregator binary on `cfg`, its log in `log`.
fn spawn_binary(cfg: &Path, log: &Path) -> std::process::Child {
    let err = std::fs::File::create(log).expect("log file");
    crate::support::aggregator(cfg)
        .env("RUST_LOG", "info")
        .stderr(err)
        .spawn()
        .expect("aggregator")
}

fn sighup(child: &std::process::Child) {
    let st = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

/// Local ports of the established TCP connections to `peer` (from /proc/net/tcp).
fn connections_to(peer: std::net::SocketAddr) -> Vec<u16> {
    let std::net::IpAddr::V4(ip) = peer.ip() else {
        return Vec::new();
    };
    let o = ip.octets();
    let want = format!(
        "{:02X}{:02X}{:02X}{:02X}:{:04X}",
        o[3],
        o[2],
        o[1],
        o[0],
        peer.port()
    );
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let mut ports: Vec<u16> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&want.as_str()) && f.get(3) == Some(&"01"))
                .then(|| f.get(1)?.rsplit(':').next())
                .flatten()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
        })
        .collect();
    ports.sort_unstable();
    ports
}

async fn rest_ids(client: &reqwest::Client, base: &str) -> Vec<String> {
    let v: Value = match client.get(format!("{base}/api/v1/hosts")).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_up(client: &reqwest::Client, base: &str, id: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let v: Value = match client.get(format!("{base}/api/v1/hosts/{id}")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if v["host"]["status"] == "up" || v["row"]["status"] == "up" || v["status"] == "up" {
            return;
        }
        assert!(start.elapsed() < limit, "{id} not up within {limit:?}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The overview ids a Socket.IO client prints (lines of `{"ids": [...]}`).
struct IdsClient {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<Vec<String>>,
    last: Vec<String>,
}

impl IdsClient {
    fn start(base: &str) -> Self {
        let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/ui");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/overview_ids.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .arg(format!("{base}/"))
            .env("SMON_UI_DIR", &ui)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node is installed");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or_default();
                let ids = v["ids"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                if tx.send(ids).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            last: Vec::new(),
        }
    }

    /// Waits until the client's ids are `want` (in any order).
    fn wait_for(&mut self, want: &[&str], limit: Duration) {
        let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        let start = Instant::now();
        loop {
            let mut have = self.last.clone();
            have.sort();
            if have == want {
                return;
            }
            let left = limit.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(ids) => self.last = ids,
                Err(_) => panic!(
                    "the Socket.IO client has {:?}, not {want:?}, after {limit:?}",
                    self.last
                ),
            }
        }
    }
}

impl Drop for IdsClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_the_new_fleet_and_refuses_a_bad_one() {
    let keep = Agent::start("127.0.0.61");
    let going = Agent::start("127.0.0.62");
    let token_fixed = Agent::start("127.0.0.63");
    let coming = Agent::start("127.0.0.64");
    let dir = tempfile::tempdir().expect("tempdir");
    write_users(dir.path(), "smon-users.json");
    let port = free_port("127.0.0.1");
    let base = format!("http://127.0.0.1:{port}");
    let config = |hosts: Vec<Value>, interval: u64| {
        json!({"server": {"port": port, "auth": {"public_read_only": true}},
            "monitor": {"mode": "app", "poll_interval_ms": interval, "include_self": false,
                "clusters": [{"name": "lab", "hosts": hosts}]}})
        .to_string()
    };
    let cfg = dir.path().join("config_app.json");
    std::fs::write(
        &cfg,
        config(
            vec![
                host("keep", &keep, TOKEN, &[]),
                host("going", &going, TOKEN, &[]),
                host("fixed", &token_fixed, WRONG_TOKEN, &[]),
            ],
            200,
        ),
    )
    .expect("config");
    let log = dir.path().join("aggregator.log");
    let mut child = spawn_binary(&cfg, &log);
    let client = reqwest::Client::new();
    let limit = Duration::from_secs(20);
    wait_up(&client, &base, "lab:keep", limit).await;
    wait_up(&client, &base, "lab:going", limit).await;
    let mut sio = IdsClient::start(&base);
    sio.wait_for(&["lab:keep", "lab:going", "lab:fixed"], limit);
    let kept_connections = connections_to(keep.addr);
    assert!(
        !kept_connections.is_empty(),
        "no connection to the kept agent"
    );

    // Added, removed, token changed.
    std::fs::write(
        &cfg,
        config(
            vec![
                host("keep", &keep, TOKEN, &[]),
                host("fixed", &token_fixed, TOKEN, &[]),
                host("coming", &coming, TOKEN, &[]),
            ],
            200,
        ),
    )
    .expect("config");
    sighup(&child);
    let t = Instant::now();
    wait_up(&client, &base, "lab:coming", Duration::from_secs(5)).await;
    eprintln!("added host up {:?} after SIGHUP", t.elapsed());
    wait_up(&client, &base, "lab:fixed", Duration::from_secs(5)).await;
    let mut ids = rest_ids(&client, &base).await;
    ids.sort();
    assert_eq!(ids, ["lab:coming", "lab:fixed", "lab:keep"]);
    sio.wait_for(
        &["lab:keep", "lab:fixed", "lab:coming"],
        Duration::from_secs(5),
    );
    assert_eq!(
        connections_to(keep.addr),
        kept_connections,
        "the unchanged host's poller kept its connection"
    );
    assert!(
        connections_to(going.addr).is_empty(),
        "the removed host's poller stopped"
    );

    // A bad config is refused; an interval change needs a restart. Both keep the fleet.
    std::fs::write(
        &cfg,
        config(
            vec![json!({"name": "keep", "address": "nowhere:0x50", "token": TOKEN})],
            200,
        ),
    )
    .expect("config");
    sighup(&child);
    let logged = |want: &str| {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(want) {
                return text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no {want:?} in the log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let text = logged("Configuration reload refused");
    assert!(
        text.contains(
            "monitor.clusters[0].hosts[0].address: 'nowhere:0x50' is not a host:port address"
        ),
        "{text}"
    );
    std::fs::write(
        &cfg,
        config(
            vec![
                host("keep", &keep, TOKEN, &[]),
                host("fixed", &token_fixed, TOKEN, &[]),
                host("coming", &coming, TOKEN, &[]),
            ],
            500,
        ),
    )
    .expect("config");
    sighup(&child);
    let text = logged("need a restart");
    assert!(text.contains("monitor.poll_interval_ms"), "{text}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ids = rest_ids(&client, &base).await;
    ids.sort();
    assert_eq!(ids, ["lab:coming", "lab:fixed", "lab:keep"]);
    for id in ["lab:keep", "lab:fixed", "lab:coming"] {
        wait_up(&client, &base, id, Duration::from_secs(2)).await;
    }
    assert_eq!(connections_to(keep.addr), kept_connections);
    let _ = child.kill();
    let _ = child.wait();
}

// ------------------------------------------------------------------ a browser on the home page

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_hosts_come_and_go_without_reloading() {
    let a1 = Agent::start("127.0.0.65");
    let a2 = Agent::start("127.0.0.66");
    let a3 = Agent::start("127.0.0.67");
    let with = |hosts: Vec<Value>| {
        let mut v = fleet(hosts);
        v["server"] = json!({"auth": {"public_read_only": true}});
        v
    };
    let v1 = with(vec![
        host("n1", &a1, TOKEN, &[]),
        host("n2", &a2, TOKEN, &[]),
    ]);
    let live = Live::start(&v1).await;
    live.wait_row("lab:n1", Duration::from_secs(10), "up", up)
        .await;
    let url = format!("{}/", live.base);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    // One Chromium at a time (see browser.rs); the browser runs on a thread of its own.
    let browser = std::thread::spawn(move || {
        let _turn = crate::browser::ONE_BROWSER
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/ui");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/browser_live.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .args([url.as_str(), "lab:n1,lab:n2", "lab:n2,lab:n3"])
            .env("SMON_UI_DIR", &ui)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node is installed");
        let out = child.stdout.take().expect("stdout");
        let mut said = Vec::new();
        let mut ready = Some(ready_tx);
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line == "ready"
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(());
            }
            said.push(line);
        }
        let done = child.wait_with_output().expect("node");
        (
            done.status.success(),
            said.join("\n"),
            String::from_utf8_lossy(&done.stderr).into_owned(),
        )
    });
    let ready = tokio::time::timeout(Duration::from_secs(120), ready_rx).await;
    if !matches!(ready, Ok(Ok(()))) {
        let (_, out, err) = tokio::task::spawn_blocking(move || browser.join().expect("thread"))
            .await
            .expect("join");
        panic!("the page never showed n1 and n2:\n{out}\n{err}");
    }
    let v2 = with(vec![
        host("n2", &a2, TOKEN, &[]),
        host("n3", &a3, TOKEN, &[]),
    ]);
    let applied = live.registry.apply(live.targets(&v2));
    assert_eq!((applied.added.len(), applied.removed.len()), (1, 1));
    let (ok, out, err) = tokio::task::spawn_blocking(move || browser.join().expect("thread"))
        .await
        .expect("join");
    assert!(ok && out.ends_with("ok"), "browser:\n{out}\n{err}");
    live.shutdown().await;
}
