//! Program state changes on the event feed and the program alert rules (issue 15): a real
//! `supervisord` with a program that runs and one whose command is missing (FATAL), a real
//! agent reading it, and the aggregator in-process with `program_not_running{sleeper:sleeper}`
//! and `program_fatal` rules. A program stopped and started again with the real
//! `supervisorctl` gives `program` events on the feed, fires the rule after its `for_s` and
//! resolves it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smon_aggregator::feed::{Body, Kinds};

use crate::support::{Agent, InProcess, TOKEN};

use crate::programs::supervisord_common::{PASSWORD, Supervisord, USER};

const PROGRAMS: &str = "[program:sleeper]\n\
     command=sleep 1000\n\
     startsecs=1\n\
     stopwaitsecs=2\n\
     \n\
     [program:broken]\n\
     command=/no/such/command-for-smon\n\
     startretries=0\n";

/// The alerts of `agg` (`GET /api/v1/alerts`) as (rule, subject, firing).
async fn alerts(agg: &InProcess) -> Vec<(String, String, bool)> {
    let v: Value = agg
        .client
        .get(format!("{}/api/v1/alerts", agg.base))
        .send()
        .await
        .expect("alerts")
        .json()
        .await
        .expect("json");
    v["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|a| {
                    (
                        a["rule"].as_str().unwrap_or_default().to_owned(),
                        a["host"]["subject"].as_str().unwrap_or_default().to_owned(),
                        a["pending"] == false && a["status"] == "firing",
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_alerts(
    agg: &InProcess,
    what: &str,
    ok: impl Fn(&[(String, String, bool)]) -> bool,
) -> Vec<(String, String, bool)> {
    let start = Instant::now();
    loop {
        let a = alerts(agg).await;
        if ok(&a) {
            return a;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not {what} within 20 s: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn firing(a: &[(String, String, bool)], rule: &str, subject: &str) -> bool {
    a.iter().any(|(r, s, f)| r == rule && s == subject && *f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn program_changes_reach_the_feed_and_fire_and_resolve_program_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sup = Supervisord::start(dir.path(), PROGRAMS);
    let control = json!({"supervisor": {"url": sup.url(), "username": USER,
        "password": PASSWORD, "interval_s": 1}});
    // Both settled before the agent reads them: a first read of sleeper STARTING would make
    // its rule pending.
    sup.says("sleeper", "RUNNING");
    sup.says("broken", "FATAL");
    let _agent = Agent::start_full("127.0.0.61", "", &format!(",\"control\":{control}"));
    let cfg = json!({
        "monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false,
            "clusters": [{"name": "lab", "hosts": [
                {"name": "n1", "address": _agent.addr.to_string(), "token": TOKEN}]}]},
        "storage": {"dir": dir.path().join("data")},
        "alerts": {"rules": [
            {"name": "sleeper down", "when": "program_not_running{sleeper:sleeper}", "for_s": 1},
            {"name": "fatal", "when": "program_fatal"},
        ]},
    });
    let agg = InProcess::start(&cfg).await;
    let mut sub = agg.feed.subscribe("test", Kinds::PROGRAM, 1000);

    // FATAL from the first sample on: the rule reads samples, not only changes.
    let a = wait_alerts(&agg, "broken fatal", |a| {
        firing(a, "fatal", "broken:broken")
    })
    .await;
    assert!(
        !a.iter().any(|(r, _, _)| r == "sleeper down"),
        "the running sleeper fires nothing: {a:?}"
    );

    let stopped = Instant::now();
    assert!(sup.ctl(&["stop", "sleeper"]).contains("stopped"));
    // The feed: sleeper left RUNNING (STOPPING, then STOPPED, or STOPPED at once).
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen
        .iter()
        .any(|(_, to): &(String, String)| to == "STOPPED")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = tokio::time::timeout(left, sub.recv())
            .await
            .unwrap_or_else(|_| panic!("no STOPPED program event within 10 s: {seen:?}"))
            .expect("feed");
        let Body::Program {
            host,
            program,
            from,
            to,
            description,
            ..
        } = &e.body
        else {
            panic!("only program events: {e:?}");
        };
        assert_eq!(host, "lab:n1");
        assert_eq!(program, "sleeper:sleeper", "only sleeper changed");
        assert!(!description.is_empty());
        seen.push((from.clone(), to.clone()));
    }
    assert_eq!(seen[0].0, "RUNNING", "{seen:?}");
    let a = wait_alerts(&agg, "sleeper down firing", |a| {
        firing(a, "sleeper down", "sleeper:sleeper")
    })
    .await;
    assert!(
        stopped.elapsed() >= Duration::from_secs(1),
        "for_s 1 s holds it pending first: {a:?}"
    );

    assert!(sup.ctl(&["start", "sleeper"]).contains("started"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = tokio::time::timeout(left, sub.recv())
            .await
            .expect("no RUNNING program event within 10 s")
            .expect("feed");
        if let Body::Program { to, .. } = &e.body
            && to == "RUNNING"
        {
            break;
        }
    }
    wait_alerts(&agg, "sleeper down resolved", |a| {
        !firing(a, "sleeper down", "sleeper:sleeper") && firing(a, "fatal", "broken:broken")
    })
    .await;
    agg.shutdown().await;
}
