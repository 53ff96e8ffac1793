//! Actions on hosts through the REST API of an aggregator: Wake-on-LAN sent by the
//! aggregator itself (the packet's bytes captured by a UDP listener on loopback), group
//! actions by ids, tag and cluster with a result per host, roles (a viewer gets 403), and
//! the reasons of what cannot be done (no MAC, no control token, an agent not connected).

use std::net::UdpSocket;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    Agent, Aggregator, BROWSER_LOGIN, TOKEN, VIEWER_PASSWORD, free_port, login, send,
};

/// A UDP listener on 127.0.0.1 standing for a sleeping machine's LAN.
fn lan() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let port = s.local_addr().expect("addr").port();
    (s, port)
}

/// The packets that arrived (each as bytes), waiting up to 300 ms for each.
fn received(s: &UdpSocket) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn magic(mac: [u8; 6]) -> Vec<u8> {
    let mut p = vec![0xFF; 6];
    for _ in 0..16 {
        p.extend_from_slice(&mac);
    }
    p
}

/// A fleet of hosts whose agents are never reached (nothing listens on port 9 of
/// 127.0.0.1): waking needs no agent.
fn config(port: u16, closed: u16) -> String {
    let wol = json!({"broadcast": "127.0.0.1", "port": port});
    json!({"monitor": {"mode": "app", "include_self": false, "clusters": [
        {"name": "lab", "hosts": [
            {"name": "pc1", "address": "127.0.0.1:9", "mac": "52:54:00:00:00:01", "wol": wol,
             "tags": ["desk"], "services": [{"name": "web", "port": closed}]},
            {"name": "pc2", "address": "127.0.0.1:9", "mac": "52-54-00-00-00-02", "wol": wol,
             "tags": ["desk"]},
            {"name": "nomac", "address": "127.0.0.1:9", "tags": ["desk"]},
        ]},
        {"name": "far", "hosts": [
            {"name": "pc3", "address": "127.0.0.1:9", "mac": "52:54:00:00:00:03",
             "wol": {"broadcast": "127.0.0.1", "port": port, "via": "lab:pc1"}},
        ]},
    ]}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregator_sends_the_magic_packet_and_says_why_when_it_cannot() {
    let (rx, port) = lan();
    let closed = free_port("127.0.0.1");
    let agg = Aggregator::start(&config(port, closed)).await;
    let post = |path: &str, body: Value| {
        let (c, b, p) = (agg.client.clone(), agg.base.clone(), path.to_owned());
        async move { send(&c, &b, Method::POST, &p, Some(body)).await }
    };

    let (st, v) = post("/api/v1/hosts/lab:pc1/wake", json!({})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["host"], "lab:pc1");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("127.0.0.1:{port}"))),
        "{v}"
    );
    assert_eq!(received(&rx), [magic([0x52, 0x54, 0, 0, 0, 1])]);

    // No MAC: 409 with what to set; nothing sent.
    let (st, v) = post("/api/v1/hosts/lab:nomac/wake", json!({})).await;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("set mac")),
        "{v}"
    );
    // Unknown host: 404.
    let (st, v) = post("/api/v1/hosts/lab:ghost/wake", json!({})).await;
    assert_eq!(st, 404, "{v}");
    // Power needs the host's control token: 409 naming it.
    let (st, v) = post("/api/v1/hosts/lab:pc1/reboot", json!({})).await;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("control_token")),
        "{v}"
    );
    // A relay that has no control token: the reason names the relay.
    let (st, v) = post("/api/v1/hosts/far:pc3/wake", json!({})).await;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("relay lab:pc1")),
        "{v}"
    );
    assert!(received(&rx).is_empty(), "nothing more was sent");

    // A group by tag: one result per host, in id order, the failures with their reason.
    let (st, v) = post("/api/v1/actions/wake", json!({"tag": "desk"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["action"], "wake");
    let results = v["results"].as_array().expect("results");
    let hosts: Vec<_> = results.iter().map(|r| r["host"].as_str()).collect();
    assert_eq!(hosts, [Some("lab:nomac"), Some("lab:pc1"), Some("lab:pc2")]);
    let oks: Vec<_> = results.iter().map(|r| r["ok"].as_bool()).collect();
    assert_eq!(oks, [Some(false), Some(true), Some(true)]);
    let mut got = received(&rx);
    got.sort();
    assert_eq!(
        got,
        [
            magic([0x52, 0x54, 0, 0, 0, 1]),
            magic([0x52, 0x54, 0, 0, 0, 2])
        ]
    );
    // By ids (repeats once), and by cluster.
    let (st, v) = post(
        "/api/v1/actions/wake",
        json!({"hosts": ["lab:pc2", "lab:pc2"]}),
    )
    .await;
    assert_eq!(
        (st, v["results"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{v}"
    );
    assert_eq!(received(&rx).len(), 1);
    let (st, v) = post("/api/v1/actions/wake", json!({"cluster": "far"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["results"][0]["host"], "far:pc3");
    assert_eq!(v["results"][0]["ok"], false);
    // Bad selections: 400 / 404 with the reason.
    for (body, want) in [
        (json!({}), 400),
        (json!({"tag": "desk", "cluster": "lab"}), 400),
        (json!({"hosts": ["lab:pc1", "lab:nope"]}), 404),
        (json!({"tag": "none"}), 404),
        (json!({"hostz": []}), 400),
    ] {
        let (st, v) = post("/api/v1/actions/wake", body.clone()).await;
        assert_eq!(st, want, "{body} -> {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    // Check as a group action: ok where nothing is down, the service down named.
    let (st, v) = post(
        "/api/v1/actions/check",
        json!({"hosts": ["lab:pc1", "lab:pc2"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["results"][0]["ok"], false, "{v}");
    assert!(
        v["results"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("web down: connection refused")),
        "{v}"
    );
    assert_eq!(v["results"][1]["ok"], true, "{v}");
    let (st, _) = post("/api/v1/actions/explode", json!({"tag": "desk"})).await;
    assert_eq!(st, 404);
    assert!(received(&rx).is_empty(), "nothing sent on refusals");

    // A viewer cannot act; nor can a script without Origin; nor an anonymous client.
    let viewer = login(&agg.base, "viewer", VIEWER_PASSWORD).await;
    let (st, _) = send(
        &viewer,
        &agg.base,
        Method::POST,
        "/api/v1/hosts/lab:pc1/wake",
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = send(
        &viewer,
        &agg.base,
        Method::POST,
        "/api/v1/actions/wake",
        Some(json!({"tag": "desk"})),
    )
    .await;
    assert_eq!(st, 403);
    let r = agg
        .client
        .post(format!("{}/api/v1/hosts/lab:pc1/wake", agg.base))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403, "no Origin");
    let anon = reqwest::Client::new();
    let (st, _) = send(
        &anon,
        &agg.base,
        Method::POST,
        "/api/v1/hosts/lab:pc1/wake",
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 401);
    assert!(received(&rx).is_empty(), "nothing sent for refused callers");

    // Every action by the admin is in the audit log, refusals included, newest first.
    let (st, log) = agg.get("/api/v1/audit?limit=100").await;
    assert_eq!(st, 200, "{log}");
    let entries = log.as_array().expect("a list");
    let find = |action: &str, host: &str, ok: bool| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["actor"] == "admin"
                && e["hosts"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|x| x == host))
                && (e["outcome"] == "ok") == ok
        })
    };
    assert!(find("wake", "lab:pc1", true), "{log}");
    assert!(find("wake", "lab:nomac", false), "{log}");
    assert!(find("reboot", "lab:pc1", false), "{log}");
    assert!(find("check", "lab:pc1", false), "{log}");
    let group = entries
        .iter()
        .find(|e| e["action"] == "wake" && e["hosts"].as_array().map(Vec::len) == Some(3))
        .unwrap_or_else(|| panic!("the tag's group wake: {log}"));
    assert_eq!(group["outcome"], "1 of 3 failed", "{group}");
    assert_eq!(
        group["results"].as_array().map(Vec::len),
        Some(3),
        "{group}"
    );
    assert!(
        !entries.iter().any(|e| e["actor"] == "viewer"),
        "a refused role is not an action: {log}"
    );
    agg.shutdown().await;
}

/// The host page's Wake (confirmed, then the host followed until it answers) and Reboot
/// (refused with what to set), and the overview's group action on a tag, in Chromium as
/// admin; a viewer sees no action. The packets are counted on the UDP listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_in_a_real_browser() {
    let agent = Agent::start("127.0.0.52");
    let (rx, port) = lan();
    let cfg = json!({"monitor": {"mode": "app", "poll_interval_ms": 500, "include_self": false,
    "clusters": [{"name": "lab", "hosts": [
        {"name": "n1", "address": agent.addr.to_string(), "token": TOKEN,
         "mac": "52:54:00:00:00:0a", "wol": {"broadcast": "127.0.0.1", "port": port},
         "tags": ["desk"]},
        {"name": "off", "address": "127.0.0.1:9", "tags": ["desk"]},
    ]}]}});
    let agg = Aggregator::start(&cfg.to_string()).await;
    agg.wait_row("lab:n1", Duration::from_secs(20), "up", |r| {
        r["status"] == "up"
    })
    .await;
    let url = format!("{}/", agg.base);
    let viewer = format!("viewer:{VIEWER_PASSWORD}");
    tokio::task::spawn_blocking(move || {
        crate::browser::browser_with(
            &[("SMON_LOGIN", BROWSER_LOGIN)],
            &["actions", &url, "lab:n1", "admin", "desk", "lab:off"],
        );
        crate::browser::browser_with(
            &[("SMON_LOGIN", &viewer)],
            &["actions", &url, "lab:n1", "viewer", "desk", "lab:off"],
        );
    })
    .await
    .expect("actions scenarios");
    let mac = [0x52, 0x54, 0, 0, 0, 0x0a];
    assert_eq!(
        received(&rx),
        [magic(mac), magic(mac), magic(mac)],
        "one packet from the host page, one from the tag's group action, one from the filter's"
    );
    agg.shutdown().await;
}

/// The control token of the test agents (not the read token).
const CONTROL: &str = "control-token-for-the-tests-0123";

/// The relay path and power through real agents: the magic packet leaves the relay agent
/// (`wol.via`, with its control token), a reboot and a shutdown run the agent's harmless
/// commands (files touched), and the refusals come back as what to fix: a wrong control
/// token, an agent with power off, an agent with no control service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_through_a_relay_agent_and_power_through_the_hosts_agent() {
    let (rx, port) = lan();
    let dir = tempfile::tempdir().expect("tempdir");
    let (rebooted, halted) = (dir.path().join("rebooted"), dir.path().join("halted"));
    let touch = |f: &std::path::Path| json!(["/usr/bin/touch", f]);
    let control = json!({"control": {"token": CONTROL, "power": {"enabled": true,
        "reboot": touch(&rebooted), "shutdown": touch(&halted)}}});
    let top = format!(
        ",{}",
        &control.to_string()[1..control.to_string().len() - 1]
    );
    let relay = Agent::start_full("127.0.0.53", "", &top);
    let off = json!({"control": {"token": CONTROL}});
    let power_off = Agent::start_full(
        "127.0.0.54",
        "",
        &format!(",{}", &off.to_string()[1..off.to_string().len() - 1]),
    );
    let plain = Agent::start("127.0.0.55");
    let host = |name: &str, a: &Agent, control: Option<&str>| {
        let mut h = json!({"name": name, "address": a.addr.to_string(), "token": TOKEN});
        if let Some(c) = control {
            h["control_token"] = json!(c);
        }
        h
    };
    let mut sleeper = json!({"name": "sleeper", "address": "127.0.0.1:9",
        "mac": "52:54:00:00:00:0b", "wol": {"broadcast": "127.0.0.1", "port": port, "via": "gw"}});
    let cfg = json!({"monitor": {"mode": "app", "poll_interval_ms": 500, "include_self": false,
    "clusters": [{"name": "lab", "hosts": [
        host("gw", &relay, Some(CONTROL)),
        host("nopower", &power_off, Some(CONTROL)),
        host("nocontrol", &plain, Some(CONTROL)),
        host("wrongtoken", &relay, Some("not-the-control-token-0000")),
        sleeper.take(),
    ]}]}});
    let agg = Aggregator::start(&cfg.to_string()).await;
    for id in ["lab:gw", "lab:nopower", "lab:nocontrol", "lab:wrongtoken"] {
        agg.wait_row(id, Duration::from_secs(20), "up", |r| r["status"] == "up")
            .await;
    }
    let post = |path: &str| {
        let (c, b, p) = (agg.client.clone(), agg.base.clone(), path.to_owned());
        async move { send(&c, &b, Method::POST, &p, Some(json!({}))).await }
    };

    // Relayed: the packet comes from the relay agent's process.
    let (st, v) = post("/api/v1/hosts/lab:sleeper/wake").await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("by lab:gw's agent")),
        "{v}"
    );
    assert_eq!(received(&rx), [magic([0x52, 0x54, 0, 0, 0, 0x0b])]);

    // Power through the host's own agent: its configured command runs.
    let (st, v) = post("/api/v1/hosts/lab:gw/reboot").await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("reboot started on lab:gw") && m.contains("touch")),
        "{v}"
    );
    wait_file(&rebooted).await;
    // A second power call within 10 s is refused by the agent (502: try again later).
    let (st, v) = post("/api/v1/hosts/lab:gw/shutdown").await;
    assert_eq!(st, 502, "{v}");
    assert!(!halted.exists(), "refused, nothing run");

    // Refusals, as what to fix (409), nothing run.
    let (st, v) = post("/api/v1/hosts/lab:wrongtoken/reboot").await;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused the control token")),
        "{v}"
    );
    let (st, v) = post("/api/v1/hosts/lab:nopower/reboot").await;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("control.power.enabled")),
        "{v}"
    );
    let (st, v) = post("/api/v1/hosts/lab:nocontrol/shutdown").await;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("takes no control calls")),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!halted.exists(), "no shutdown ran");
    assert!(received(&rx).is_empty());
    agg.shutdown().await;
}

async fn wait_file(f: &std::path::Path) {
    let start = std::time::Instant::now();
    while !f.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} was not made by the agent's command",
            f.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
