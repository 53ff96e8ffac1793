//! The inventory edited in the browser (`docs/protocol-inventory.md`): hosts and clusters made
//! through REST, checked with the config's sentences, applied to the live fleet at once, and
//! kept in the database across a restart and a SIGHUP reload.
//!
//! - viewers read, admins write; config hosts are read-only (403); a config host's id is not
//!   taken (409); a bad MAC, address or port is refused with 400 naming the field; tokens never
//!   come back in any answer;
//! - a host added pointing at a real agent comes up in `/api/v1/hosts`, and goes when removed;
//!   a host without an agent has a row that stays `pending` (never aged to `down`);
//! - the UI's hosts survive a restart of the in-process aggregator on the same storage, and a
//!   SIGHUP reload of the binary that changes the config's hosts.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_PASSWORD, Agent, Aggregator, Binary, TOKEN, VIEWER_PASSWORD, free_port, login, send,
    write_users,
};

/// A control token given to a UI host: it must never come back out.
const CONTROL: &str = "control-secret-9b1e77aa4410";

fn config(hosts: &Value, data: &Path) -> Value {
    json!({
        "monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false,
            "clusters": [{"name": "lab", "hosts": hosts}]},
        "storage": {"dir": data},
    })
}

/// Every GET answer of the inventory, as text, for the secrets check.
async fn answers(c: &reqwest::Client, base: &str) -> String {
    let mut all = String::new();
    for p in [
        "/api/v1/inventory/hosts",
        "/api/v1/inventory/clusters",
        "/api/v1/hosts",
    ] {
        let (st, v) = send(c, base, Method::GET, p, None).await;
        assert_eq!(st, 200, "{p}: {v}");
        all.push_str(&v.to_string());
    }
    all
}

fn host<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|h| h["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_edit_the_inventory_live_and_it_survives_a_restart() {
    let a1 = Agent::start("127.0.0.1");
    let a2 = Agent::start("127.0.0.1");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cfg = config(
        &json!([{"name": "n1", "address": a1.addr.to_string(), "token": TOKEN}]),
        &data,
    )
    .to_string();
    let agg = Aggregator::start(&cfg).await;
    let base = agg.base.clone();
    let admin = agg.client.clone();
    let viewer = login(&base, "viewer", VIEWER_PASSWORD).await;
    let anon = reqwest::Client::new();

    // Reading: viewers yes, anonymous no; the config host is there, marked, without token.
    assert_eq!(
        send(&anon, &base, Method::GET, "/api/v1/inventory/hosts", None)
            .await
            .0,
        401
    );
    let (st, list) = send(&viewer, &base, Method::GET, "/api/v1/inventory/hosts", None).await;
    assert_eq!(st, 200, "{list}");
    let n1 = host(&list, "lab:n1").expect("lab:n1 listed");
    assert_eq!(n1["source"], "config");
    assert_eq!(n1["agent"], true);
    assert_eq!(n1["has_token"], true);
    assert_eq!(n1["address"], a1.addr.to_string());

    // Clusters: made by admins only; names checked.
    let office = json!({"name": "office"});
    let p = "/api/v1/inventory/clusters";
    assert_eq!(
        send(&viewer, &base, Method::POST, p, Some(office.clone()))
            .await
            .0,
        403
    );
    let (st, v) = send(
        &admin,
        &base,
        Method::POST,
        p,
        Some(json!({"name": "bad name"})),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("name: 'bad name' must be")),
        "{v}"
    );
    let (st, v) = send(&admin, &base, Method::POST, p, Some(office.clone())).await;
    assert_eq!((st, &v["source"]), (201, &json!("ui")), "{v}");
    assert_eq!(
        send(&admin, &base, Method::POST, p, Some(office)).await.0,
        409
    );
    let (st, v) = send(&admin, &base, Method::POST, p, Some(json!({"name": "lab"}))).await;
    assert_eq!(st, 409, "a config cluster's name: {v}");

    // Hosts: the checks of the config, with the field named.
    let p = "/api/v1/inventory/hosts";
    let n2 = json!({"cluster": "office", "name": "n2", "address": a2.addr.to_string(),
        "token": TOKEN, "control_token": CONTROL, "mac": "52:54:00:12:34:56",
        "tags": ["rack1"], "services": [{"name": "grpc", "port": a2.addr.port()}]});
    assert_eq!(
        send(&viewer, &base, Method::POST, p, Some(n2.clone()))
            .await
            .0,
        403
    );
    for (change, want) in [
        (json!({"mac": "zz"}), "mac: 'zz' is not a MAC address"),
        (
            json!({"address": "node7:50O51"}),
            "address: 'node7:50O51' is not a host:port address",
        ),
        (
            json!({"services": [{"name": "web", "port": 0}]}),
            "services[0].port: '0' must be 1-65535",
        ),
        (json!({"wol": {"port": 0}}), "wol.port: '0' must be 1-65535"),
        (
            json!({"address": null, "ip": null}),
            "address: '(none)' is needed, or ip",
        ),
        (
            json!({"cluster": "nowhere"}),
            "cluster: 'nowhere' is no cluster of the fleet",
        ),
        (
            json!({"token": "short"}),
            "token: '<hidden>' is not a valid token",
        ),
    ] {
        let mut body = n2.clone();
        for (k, v) in change.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (st, v) = send(&admin, &base, Method::POST, p, Some(body)).await;
        assert_eq!(st, 400, "{change}: {v}");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.starts_with(want), "{change}: {e}");
        assert!(
            !e.contains("short") && !e.contains(CONTROL),
            "a token in {e}"
        );
    }
    let (st, v) = send(
        &admin,
        &base,
        Method::POST,
        p,
        Some(json!({"cluster": "lab", "name": "n1", "ip": "10.0.0.1"})),
    )
    .await;
    assert_eq!(st, 409, "a config host's id: {v}");

    // Added: polled at once.
    let (st, v) = send(&admin, &base, Method::POST, p, Some(n2.clone())).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (&v["source"], &v["has_token"], &v["has_control_token"]),
        (&json!("ui"), &json!(true), &json!(true)),
        "{v}"
    );
    assert_eq!(v["created_by"], "admin");
    assert_eq!(
        send(&admin, &base, Method::POST, p, Some(n2.clone()))
            .await
            .0,
        409,
        "twice"
    );
    agg.wait_row("office:n2", Duration::from_secs(20), "up", |r| {
        r["status"] == "up"
    })
    .await;

    // A host without an agent: a row of its own, never aged to down.
    let printer = json!({"cluster": "office", "name": "printer", "ip": "127.0.0.1",
        "mac": "aa:bb:cc:dd:ee:ff", "wol": {"via": "n2"}, "services": [{"name": "ping", "type": "icmp"}]});
    let (st, v) = send(&admin, &base, Method::POST, p, Some(printer)).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (&v["agent"], &v["address"]),
        (&json!(false), &Value::Null),
        "{v}"
    );
    let row = agg.row("office:printer").await;
    assert_eq!(
        (&row["status"], &row["address"]),
        (&json!("pending"), &json!("")),
        "{row}"
    );
    // Down after 10 intervals of 200 ms for an agent: not for this one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let row = agg.row("office:printer").await;
    assert_eq!(row["status"], "pending", "{row}");
    let (st, ready) = send(&admin, &base, Method::GET, "/readyz", None).await;
    assert_eq!(st, 200, "ready without waiting for the printer: {ready}");

    // Config hosts are read-only.
    let (st, v) = send(
        &admin,
        &base,
        Method::PUT,
        "/api/v1/inventory/hosts/lab:n1",
        Some(json!({"cluster": "lab", "name": "n1", "ip": "10.0.0.1"})),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = send(
        &admin,
        &base,
        Method::DELETE,
        "/api/v1/inventory/hosts/lab:n1",
        None,
    )
    .await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(
        send(
            &viewer,
            &base,
            Method::DELETE,
            "/api/v1/inventory/hosts/office:n2",
            None
        )
        .await
        .0,
        403
    );

    // Changed: tags follow at once; the tokens left out stay.
    let mut changed = n2.clone();
    changed.as_object_mut().expect("object").remove("token");
    changed
        .as_object_mut()
        .expect("object")
        .remove("control_token");
    changed["tags"] = json!(["rack2", "gpu"]);
    let (st, v) = send(
        &admin,
        &base,
        Method::PUT,
        "/api/v1/inventory/hosts/office:n2",
        Some(changed),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (&v["has_token"], &v["has_control_token"]),
        (&json!(true), &json!(true)),
        "{v}"
    );
    agg.wait_row(
        "office:n2",
        Duration::from_secs(5),
        "retagged and up",
        |r| r["tags"] == json!(["rack2", "gpu"]) && r["status"] == "up",
    )
    .await;

    // A cluster with hosts stays; the relay of another host's wake stays.
    let (st, v) = send(
        &admin,
        &base,
        Method::DELETE,
        "/api/v1/inventory/clusters/office",
        None,
    )
    .await;
    assert_eq!(st, 409, "{v}");
    let (st, v) = send(
        &admin,
        &base,
        Method::DELETE,
        "/api/v1/inventory/hosts/office:n2",
        None,
    )
    .await;
    assert_eq!(st, 409, "n2 relays the printer's wake: {v}");
    assert_eq!(
        send(
            &admin,
            &base,
            Method::DELETE,
            "/api/v1/inventory/clusters/lab",
            None
        )
        .await
        .0,
        403
    );

    // No token in any answer, for anyone.
    for c in [&admin, &viewer] {
        let all = answers(c, &base).await;
        assert!(
            !all.contains(TOKEN) && !all.contains(CONTROL),
            "a token came back: {all}"
        );
    }

    // Removed: gone from the fleet at once. The printer first (it names n2 as relay).
    let (st, v) = send(
        &admin,
        &base,
        Method::PUT,
        "/api/v1/inventory/hosts/office:printer",
        Some(json!({"cluster": "office", "name": "printer", "ip": "127.0.0.1"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = send(
        &admin,
        &base,
        Method::DELETE,
        "/api/v1/inventory/hosts/office:n2",
        None,
    )
    .await;
    assert_eq!(st, 204, "{v}");
    agg.wait_row("office:n2", Duration::from_secs(5), "gone", Value::is_null)
        .await;
    // Each change is in the audit log, the refused ones with their reason.
    let (st, log) = agg.get("/api/v1/audit?limit=200").await;
    assert_eq!(st, 200, "{log}");
    let has = |action: &str, host: &str, ok: bool| {
        log.as_array().is_some_and(|l| {
            l.iter().any(|e| {
                e["action"] == action
                    && e["actor"] == "admin"
                    && e["hosts"]
                        .as_array()
                        .is_some_and(|h| h.iter().any(|x| x == host))
                    && (e["outcome"] == "ok") == ok
            })
        })
    };
    assert!(has("inventory.add_host", "office:n2", true), "{log}");
    assert!(
        has("inventory.add_host", "office:n2", false),
        "the refused second add: {log}"
    );
    assert!(has("inventory.add_host", "office:printer", true), "{log}");
    assert!(has("inventory.remove_host", "office:n2", true), "{log}");

    // A restart on the same storage: the UI's cluster and printer are back, polled rows too.
    agg.shutdown().await;
    let agg = Aggregator::start(&cfg).await;
    let (_, list) = send(
        &agg.client,
        &agg.base,
        Method::GET,
        "/api/v1/inventory/hosts",
        None,
    )
    .await;
    let printer = host(&list, "office:printer").expect("the printer after a restart");
    assert_eq!(
        (&printer["source"], &printer["ip"]),
        (&json!("ui"), &json!("127.0.0.1")),
        "{list}"
    );
    assert!(host(&list, "office:n2").is_none(), "{list}");
    let (_, clusters) = send(
        &agg.client,
        &agg.base,
        Method::GET,
        "/api/v1/inventory/clusters",
        None,
    )
    .await;
    assert_eq!(
        clusters,
        json!([
            {"name": "lab", "source": "config", "hosts": 1},
            {"name": "office", "source": "ui", "hosts": 1, "created_by": "admin", "created_ms": clusters[1]["created_ms"]},
        ])
    );
    assert_eq!(agg.row("office:printer").await["status"], "pending");
    agg.wait_row("lab:n1", Duration::from_secs(20), "up", |r| {
        r["status"] == "up"
    })
    .await;
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_reload_keeps_the_hosts_made_in_the_ui() {
    let agent = Agent::start("127.0.0.1");
    let dir = tempfile::tempdir().expect("tempdir");
    write_users(dir.path(), "smon-users.json");
    let port = free_port("127.0.0.1");
    let cfg_path = dir.path().join("config_app.json");
    let write = |hosts: Value| {
        let mut cfg = config(&hosts, &dir.path().join("data"));
        cfg["server"] = json!({"port": port});
        std::fs::write(&cfg_path, cfg.to_string()).expect("config");
    };
    write(json!([{"name": "n1", "address": "127.0.0.1:9"}]));
    let b = Binary::spawn(&cfg_path, port, dir.path().join("aggregator.log"));
    let base = b.base();
    let start = Instant::now();
    while b.get("/healthz").await.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not started:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = login(&base, "admin", ADMIN_PASSWORD).await;
    let ui = json!({"cluster": "lab", "name": "mine", "address": agent.addr.to_string(), "token": TOKEN});
    let (st, v) = send(&c, &base, Method::POST, "/api/v1/inventory/hosts", Some(ui)).await;
    assert_eq!(st, 201, "{v}");

    // The config's hosts change (one without an agent comes); the UI's stays, still polled.
    write(json!([{"name": "n3", "ip": "127.0.0.1"}]));
    b.nudge("-HUP");
    let start = Instant::now();
    loop {
        let (_, rows) = send(&c, &base, Method::GET, "/api/v1/hosts", None).await;
        let mut ids: Vec<&str> = rows
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["id"].as_str()).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        let mine_up = host(&rows, "lab:mine").is_some_and(|r| r["status"] == "up");
        if ids == ["lab:mine", "lab:n3"] && mine_up {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "after SIGHUP: {rows}\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, list) = send(&c, &base, Method::GET, "/api/v1/inventory/hosts", None).await;
    let sources: Vec<(&str, &str)> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|h| Some((h["id"].as_str()?, h["source"].as_str()?)))
        .collect();
    assert_eq!(sources, [("lab:n3", "config"), ("lab:mine", "ui")]);

    // The config takes the UI host's id (a host without an agent there): the config's wins,
    // its row starts afresh without a poller; the config lets it go: the UI's is back, polled.
    let sources_now = |c: reqwest::Client, base: String| async move {
        let (_, list) = send(&c, &base, Method::GET, "/api/v1/inventory/hosts", None).await;
        list.as_array()
            .map(|a| {
                a.iter()
                    .map(|h| format!("{}={}/{}", h["id"], h["source"], h["agent"]))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    write(json!([{"name": "n3", "ip": "127.0.0.1"}, {"name": "mine", "ip": "127.0.0.2"}]));
    b.nudge("-HUP");
    let start = Instant::now();
    loop {
        let got = sources_now(c.clone(), base.clone()).await;
        let (_, rows) = send(&c, &base, Method::GET, "/api/v1/hosts", None).await;
        let row = host(&rows, "lab:mine").cloned().unwrap_or_default();
        if got == [r#""lab:n3"="config"/false"#, r#""lab:mine"="config"/false"#]
            && row["address"] == ""
            && row["status"] == "pending"
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "config over UI: {got:?} {row}\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    write(json!([{"name": "n3", "ip": "127.0.0.1"}]));
    b.nudge("-HUP");
    let start = Instant::now();
    loop {
        let got = sources_now(c.clone(), base.clone()).await;
        let (_, rows) = send(&c, &base, Method::GET, "/api/v1/hosts", None).await;
        let up = host(&rows, "lab:mine").is_some_and(|r| r["status"] == "up");
        if got == [r#""lab:n3"="config"/false"#, r#""lab:mine"="ui"/true"#] && up {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the UI's back: {got:?}\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = b.log();
    assert!(
        log.lines()
            .any(|l| l.contains("Host added to the inventory.")
                && l.contains("by=admin")
                && l.contains("host=lab:mine")),
        "the change is logged with its target: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_page_in_a_real_browser() {
    let a1 = Agent::start("127.0.0.1");
    let a2 = Agent::start("127.0.0.1");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &json!([{"name": "n1", "address": a1.addr.to_string(), "token": TOKEN}]),
        &dir.path().join("data"),
    );
    let agg = Aggregator::start(&cfg.to_string()).await;
    agg.wait_row("lab:n1", Duration::from_secs(20), "up", |r| {
        r["status"] == "up"
    })
    .await;
    let args = [
        format!("{}/", agg.base),
        a2.addr.to_string(),
        TOKEN.to_owned(),
        format!("admin:{ADMIN_PASSWORD}"),
        format!("viewer:{VIEWER_PASSWORD}"),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let _turn = crate::browser::ONE_BROWSER
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::process::Command::new("node")
            .arg(manifest.join("tests/it/inventory_ui.mjs"))
            .args(&args)
            .env("SMON_UI_DIR", manifest.join("../web/ui"))
            .output()
            .expect("node is installed")
    })
    .await
    .expect("browser task");
    assert!(
        out.status.success(),
        "inventory_ui.mjs failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What the browser did is what the server holds.
    let (_, list) = agg.get("/api/v1/inventory/hosts").await;
    assert!(host(&list, "office:n2").is_some(), "{list}");
    assert!(host(&list, "office:printer").is_none(), "{list}");
    agg.shutdown().await;
}
