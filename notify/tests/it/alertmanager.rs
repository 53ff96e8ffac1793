//! The alertmanager channel against a real Prometheus Alertmanager (Debian's
//! `prometheus-alertmanager`), started by the test with a webhook receiver pointed at the
//! test's HTTP server. smon's alerts appear in its API with the documented labels; two
//! senders (two outboxes on two database files, as two aggregators) posting the same alert
//! make ONE notification from Alertmanager; a resolved notification resolves it.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use smon_api::alerts::AlertStatus;
use tokio::time::Instant;

use crate::support::{
    Child, Receiver, Running, WAIT, bin, dead_addr, notification, wait_listening,
};

struct Alertmanager {
    _child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    async fn start(webhook: &str) -> Self {
        let exe = bin(
            "/usr/bin/prometheus-alertmanager",
            "prometheus-alertmanager",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(
            &cfg,
            format!(
                "route:\n  receiver: hook\n  group_by: [alertname, cluster]\n  group_wait: 1s\n  \
                 group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    \
                 webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n"
            ),
        )
        .expect("write the config");
        let addr = dead_addr();
        let child = Command::new(exe)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start prometheus-alertmanager");
        let child = Child(child);
        wait_listening(addr, "prometheus-alertmanager").await;
        let url = format!("http://{addr}");
        let deadline = Instant::now() + WAIT;
        let http = reqwest::Client::new();
        loop {
            let ready = http.get(format!("{url}/-/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager not ready within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            _child: child,
            url,
            _dir: dir,
        }
    }

    async fn alerts(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .expect("GET /api/v2/alerts")
            .json()
            .await
            .expect("json");
        v.as_array().cloned().unwrap_or_default()
    }
}

/// The current time in milliseconds, rounded down to a whole second.
fn whole_second_now() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).expect("after 1970") * 1000
}

/// `ms` as Alertmanager's webhook writes a whole-second time: `2025-12-04T10:06:27Z`.
fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(ms / 1000).expect("a valid time"))
        .expect("a valid time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formatted")
}

/// Sets every alert of `n` as started at `started` (and fired then), resolved at `resolved`.
fn set_times(n: &mut smon_api::alerts::Notification, started: u64, resolved: Option<u64>) {
    n.at_ms = resolved.unwrap_or(started);
    for a in &mut n.alerts {
        a.started_ms = started;
        a.fired_ms = started;
        a.resolved_ms = resolved;
    }
}

#[tokio::test]
async fn alerts_reach_alertmanager_with_labels_and_two_senders_make_one_notification() {
    let hook = Receiver::start().await;
    let am = Alertmanager::start(&hook.url("/am")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Refreshed every second: endsAt 4 s ahead.
    let channels = json!([{"name": "am", "type": "alertmanager", "urls": [am.url], "resend_s": 1,
                           "backoff_min_ms": 100, "backoff_max_ms": 500}]);
    // Two aggregators: two outboxes on two database files.
    let one = Running::start(&dir.path().join("a.sqlite3"), dir.path(), channels.clone());
    let two = Running::start(&dir.path().join("b.sqlite3"), dir.path(), channels);
    // Started now, not in the past: Alertmanager flushes a new group at once (without its
    // group_wait) when its first alert started more than group_wait ago, and then the second
    // host's alert, handled a moment later, would make a second notification.
    let started = whole_second_now();
    let mut n = notification(
        "n-am",
        AlertStatus::Firing,
        "disk_full",
        &["lab:n1", "lab:n2"],
    );
    set_times(&mut n, started, None);
    let am_ch = ["am".to_owned()];
    one.notifier.enqueue(&n, &am_ch).await.expect("enqueue");
    two.notifier.enqueue(&n, &am_ch).await.expect("enqueue");
    one.wait_stats("am", "posted", |s| s.sent == 1).await;
    two.wait_stats("am", "posted", |s| s.sent == 1).await;

    let mut alerts = am.alerts().await;
    alerts.sort_by_key(|a| a["labels"]["host"].as_str().map(str::to_owned));
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(
        alerts[0]["labels"],
        json!({"alertname": "disk_full", "cluster": "lab", "host": "lab:n1",
               "severity": "critical", "subject": "/var"})
    );
    assert_eq!(alerts[1]["labels"]["host"], "lab:n2");
    assert_eq!(
        alerts[0]["annotations"]["summary"],
        "[FIRING] disk_full: lab:n1, lab:n2"
    );
    assert_eq!(alerts[0]["annotations"]["description"], "/var is 90 % full");
    assert_eq!(alerts[0]["generatorURL"], "https://smon.example/alerts");
    assert_eq!(alerts[0]["status"]["state"], "active");
    assert_eq!(
        alerts[0]["startsAt"],
        rfc3339(started).replace('Z', ".000Z")
    );

    // One notification from Alertmanager for both senders and both hosts (one group), while
    // both keep refreshing the alerts: past their first endsAt (4 s) they are still firing.
    let got = hook.wait_for(1).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(hook.got().len(), 1, "deduplicated: {:#?}", hook.got());
    let v = got[0].json();
    assert_eq!(v["status"], "firing");
    assert_eq!(v["commonLabels"]["alertname"], "disk_full");
    assert_eq!(v["alerts"].as_array().map(Vec::len), Some(2));
    let alerts = am.alerts().await;
    assert_eq!(alerts.len(), 2, "still firing, refreshed: {alerts:#?}");
    assert!(alerts.iter().all(|a| a["status"]["state"] == "active"));

    // Resolved by both: Alertmanager sends the resolved notification, and the refreshes stop.
    let mut r = notification(
        "n-am-r",
        AlertStatus::Resolved,
        "disk_full",
        &["lab:n1", "lab:n2"],
    );
    let resolved_at = whole_second_now();
    set_times(&mut r, started, Some(resolved_at));
    one.notifier.enqueue(&r, &am_ch).await.expect("enqueue");
    two.notifier.enqueue(&r, &am_ch).await.expect("enqueue");
    let deadline = Instant::now() + WAIT;
    let resolved = loop {
        if let Some(g) = hook
            .got()
            .into_iter()
            .find(|g| g.json()["status"] == "resolved")
        {
            break g.json();
        }
        assert!(
            Instant::now() < deadline,
            "no resolved notification: {:#?}",
            hook.got()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(resolved["alerts"][0]["endsAt"], rfc3339(resolved_at));
    assert_eq!(resolved["alerts"].as_array().map(Vec::len), Some(2));
    while !am.alerts().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "alerts still active: {:#?}",
            am.alerts().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        am.alerts().await.is_empty(),
        "a refresh fired a resolved alert again"
    );
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn one_alertmanager_down_of_two_still_delivers() {
    let hook = Receiver::start().await;
    let am = Alertmanager::start(&hook.url("/am")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let down = dead_addr();
    let run = Running::start(
        &dir.path().join("db"),
        dir.path(),
        json!([{"name": "am", "type": "alertmanager", "urls": [format!("http://{down}"), am.url]}]),
    );
    let n = notification("n-am2", AlertStatus::Firing, "load", &["lab:n3"]);
    run.notifier
        .enqueue(&n, &["am".to_owned()])
        .await
        .expect("enqueue");
    let s = run.wait_stats("am", "posted", |s| s.sent == 1).await;
    assert_eq!(s.failed, 0);
    assert_eq!(am.alerts().await.len(), 1);
    run.stop().await;
}
