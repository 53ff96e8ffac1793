//! Declared applications with failover (issue 15): three real agents on 127.0.0.81-83, each
//! with its own real `supervisord` (programs `db` and `api`, not started by supervisord),
//! and the aggregator in-process with `db` (one instance on lab:n1 or lab:n2) and `web`
//! (program `api:api`, two instances on the hosts tagged `web`, `start_after: ["db"]`),
//! both with `down_after: 3`. Checked with the real `supervisorctl`: the initial placement
//! in start order; a host's agent SIGKILLed (its supervisord goes on running the copies: a
//! split network) and the instances running on the next candidates within `down_after` +
//! 10 s; the agent back and conciliation leaving exactly the declared copies; then the
//! action routes: stop all (reverse order), start all (start order), a viewer refused.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use smon_aggregator::feed::{Body, Kinds, Subscription};

use crate::support::{Agent, InProcess, TOKEN, VIEWER_PASSWORD, login, send};

use crate::programs::supervisord_common::{PASSWORD, Supervisord, USER};

const CONTROL: &str = "control-token-for-applications-01";

const PROGRAMS: &str = "[program:db]\n\
     command=sleep 1000\n\
     autostart=false\n\
     startsecs=1\n\
     stopwaitsecs=2\n\
     \n\
     [program:api]\n\
     command=sleep 1000\n\
     autostart=false\n\
     startsecs=1\n\
     stopwaitsecs=2\n";

struct Host {
    sup: Supervisord,
    agent: Agent,
    _dir: tempfile::TempDir,
}

fn host(ip: &str) -> Host {
    let dir = tempfile::tempdir().expect("tempdir");
    let sup = Supervisord::start(dir.path(), PROGRAMS);
    // supervisord answers before the agent first reads it.
    sup.says("db", "STOPPED");
    let control = json!({"token": CONTROL, "supervisor": {"url": sup.url(),
        "username": USER, "password": PASSWORD, "interval_s": 1}});
    let agent = Agent::start_full(ip, "", &format!(",\"control\":{control}"));
    Host {
        sup,
        agent,
        _dir: dir,
    }
}

/// Which of `hosts` (n1, n2, n3) run `program` as `supervisorctl status` says.
fn running_on(hosts: &[Host], program: &str) -> Vec<String> {
    hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.sup.status(program).contains("RUNNING"))
        .map(|(i, _)| format!("n{}", i + 1))
        .collect()
}

async fn wait_running(hosts: &[Host], program: &str, want: &[&str], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let on = running_on(hosts, program);
        if on == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{program} runs on {on:?}, not {want:?}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The (application, action, host) of the decisions on the feed so far.
fn decisions(sub: &mut Subscription, into: &mut Vec<(String, String, String, String)>) {
    while let Some(e) = sub.try_recv() {
        if let Body::Application { name, decision, .. } = &e.body {
            into.push((
                name.clone(),
                decision.action.clone(),
                decision.host.clone(),
                decision.outcome.clone(),
            ));
        }
    }
}

fn index(d: &[(String, String, String, String)], app: &str, action: &str) -> usize {
    d.iter()
        .position(|(n, a, _, _)| n == app && a == action)
        .unwrap_or_else(|| panic!("no {action} decision of {app}: {d:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_failover_conciliation_and_start_order_with_real_supervisords() {
    let mut hosts = vec![host("127.0.0.81"), host("127.0.0.82"), host("127.0.0.83")];
    let dir = tempfile::tempdir().expect("tempdir");
    let entries: Vec<Value> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({"name": format!("n{}", i + 1), "address": h.agent.addr.to_string(),
                "token": TOKEN, "control_token": CONTROL, "tags": ["web"]})
        })
        .collect();
    let cfg = json!({
        "monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false,
            "clusters": [{"name": "lab", "hosts": entries}]},
        "storage": {"dir": dir.path().join("data")},
        "applications": [
            {"name": "web", "program": "api:api", "candidates": ["tag:web"], "instances": 2,
             "down_after": 3, "start_after": ["db"]},
            {"name": "db", "program": "db:db", "candidates": ["lab:n1", "lab:n2"],
             "down_after": 3},
        ],
    });
    let agg = InProcess::start(&cfg).await;
    let mut sub = agg.feed.subscribe("test", Kinds::APPLICATION, 10_000);
    let mut seen = Vec::new();

    // Initial placement: db on n1 (config order), then web on n1 and n2 (the tag's hosts
    // by id), db first.
    wait_running(&hosts, "db", &["n1"], Duration::from_secs(30)).await;
    wait_running(&hosts, "api", &["n1", "n2"], Duration::from_secs(30)).await;
    decisions(&mut sub, &mut seen);
    assert!(
        index(&seen, "db", "start") < index(&seen, "web", "start"),
        "db starts before web: {seen:?}"
    );
    assert!(seen.iter().all(|d| d.3 == "ok"), "{seen:?}");

    // n1's agent is killed; its supervisord goes on running the copies (a split network).
    hosts[0].agent.kill();
    let limit = Duration::from_secs(3 + 10);
    let took = wait_running(&hosts, "db", &["n1", "n2"], limit).await;
    eprintln!("db on n2 {took:?} after the kill");
    wait_running(&hosts, "api", &["n1", "n2", "n3"], limit).await;

    // n1 comes back still running its copies: conciliation stops them.
    hosts[0].agent.restart();
    wait_running(&hosts, "db", &["n2"], Duration::from_secs(20)).await;
    wait_running(&hosts, "api", &["n2", "n3"], Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(running_on(&hosts, "db"), ["n2"], "exactly one db");
    assert_eq!(running_on(&hosts, "api"), ["n2", "n3"], "exactly two web");
    decisions(&mut sub, &mut seen);
    let stops: Vec<_> = seen.iter().filter(|d| d.1 == "stop").collect();
    assert!(
        stops.iter().any(|d| d.0 == "db" && d.2 == "lab:n1")
            && stops.iter().any(|d| d.0 == "web" && d.2 == "lab:n1"),
        "conciliation stopped n1's copies: {seen:?}"
    );

    // The action routes: a viewer is refused; stop all in reverse order; start all in order.
    let viewer = login(&agg.base, "viewer", VIEWER_PASSWORD).await;
    let (st, _) = send(
        &viewer,
        &agg.base,
        Method::POST,
        "/api/v1/applications/stop",
        None,
    )
    .await;
    assert_eq!(st, 403);
    let (st, v) = send(
        &agg.client,
        &agg.base,
        Method::POST,
        "/api/v1/applications/nope/stop",
        None,
    )
    .await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = send(
        &agg.client,
        &agg.base,
        Method::POST,
        "/api/v1/applications/stop",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        v["applications"],
        json!(["web", "db"]),
        "stopped in reverse order: {v}"
    );
    assert!(running_on(&hosts, "api").is_empty() && running_on(&hosts, "db").is_empty());
    let (st, v) = send(
        &agg.client,
        &agg.base,
        Method::POST,
        "/api/v1/applications/start",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["applications"],
        json!(["db", "web"]),
        "started in order: {v}"
    );
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(running_on(&hosts, "db").len(), 1, "{v}");
    assert_eq!(running_on(&hosts, "api").len(), 2, "{v}");
    // web alone waits while db is stopped.
    let (st, v) = send(
        &agg.client,
        &agg.base,
        Method::POST,
        "/api/v1/applications/stop",
        None,
    )
    .await;
    assert_eq!((st, &v["ok"]), (200, &json!(true)), "{v}");
    let (st, v) = send(
        &agg.client,
        &agg.base,
        Method::POST,
        "/api/v1/applications/web/start",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["decisions"][0]["outcome"], "waiting", "{v}");
    assert!(
        v["decisions"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("waiting for start_after: db (0 of 1 running)")),
        "{v}"
    );
    assert!(running_on(&hosts, "api").is_empty(), "web did not start");
    let (st, v) = send(
        &agg.client,
        &agg.base,
        Method::POST,
        "/api/v1/applications/db/start",
        None,
    )
    .await;
    assert_eq!((st, &v["ok"]), (200, &json!(true)), "{v}");
    // web (still wanted) follows on the next pass.
    wait_running(&hosts, "api", &["n1", "n2"], Duration::from_secs(10)).await;
    let (st, v) = send(
        &agg.client,
        &agg.base,
        Method::POST,
        "/api/v1/applications/web/restart",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let actions: Vec<&str> = v["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter_map(|d| d["action"].as_str())
        .collect();
    assert_eq!(actions, ["stop", "stop", "start", "start"], "{v}");
    agg.shutdown().await;
}

/// An application whose program no candidate has: its problem is on the feed, an
/// `application_degraded` alert fires on `application/ghost`, and starting it by hand
/// answers the same problem (not ok) and is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_that_cannot_run_fires_application_degraded() {
    let h = host("127.0.0.84");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = json!({
        "monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false,
            "clusters": [{"name": "lab", "hosts": [{"name": "n1",
                "address": h.agent.addr.to_string(), "token": TOKEN,
                "control_token": CONTROL}]}]},
        "storage": {"dir": dir.path().join("data")},
        "alerts": {"rules": [{"name": "apps", "when": "application_degraded"}]},
        "applications": [
            {"name": "ghost", "program": "ghost:ghost", "candidates": ["lab:n1"]},
        ],
    });
    let agg = InProcess::start(&cfg).await;
    let start = Instant::now();
    let alert = loop {
        let (_, v) = send(&agg.client, &agg.base, Method::GET, "/api/v1/alerts", None).await;
        if let Some(a) = v["alerts"].as_array().and_then(|a| {
            a.iter()
                .find(|a| a["rule"] == "apps" && a["pending"] == false)
        }) {
            break a.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no application_degraded alert within 20 s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alert["host"]["host"], "application/ghost", "{alert}");
    let detail = alert["host"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("no candidate left")
            && detail.contains("lab:n1 has no program ghost:ghost"),
        "{alert}"
    );
    let (st, v) = send(
        &agg.client,
        &agg.base,
        Method::POST,
        "/api/v1/applications/ghost/start",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["decisions"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("has no program ghost:ghost")),
        "{v}"
    );
    let (st, v) = send(
        &agg.client,
        &agg.base,
        Method::POST,
        "/api/v1/applications/ghost/launch",
        None,
    )
    .await;
    assert_eq!(st, 404, "{v}");
    let (_, audit) = send(
        &agg.client,
        &agg.base,
        Method::GET,
        "/api/v1/audit?limit=20",
        None,
    )
    .await;
    assert!(
        audit.to_string().contains("application.start") && audit.to_string().contains("ghost"),
        "the action is audited: {audit}"
    );
    agg.shutdown().await;
}
