//! The alerts page in Chromium (`web/ui/tests/browser.mjs alerts`), against the aggregator
//! with storage (alerting needs it), one real agent, a config rule that fires at once
//! (`cpu_percent >= 0`, critical) and a webhook channel whose URL path is a secret, received
//! by a listener started here. As admin: the overview's badge, the top bar's count, the firing
//! list, acknowledging, a rule made, refused with the server's field error, edited and deleted
//! in the UI, the config rule without edit buttons, a silence made and deleted, the channel
//! shown without its secret and tested, a UI channel to the same listener made (first refused
//! with the server's field error), tested, edited without retyping its URL, tested again, kept
//! while a rule notifies it and deleted, the host page's Alerts section, at desktop and phone
//! sizes; as viewer: the same alerts without any button that changes something. Chromium and
//! Node.js are required: the test fails, never skips, without them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{Agent, Aggregator, BROWSER_LOGIN, TOKEN, VIEWER_PASSWORD};

/// The secret part of the webhook's URL: the page must never show it.
const SECRET: &str = "secret-token-path-7d2e";

/// A webhook receiver on 127.0.0.1: counts the posts to `/<SECRET>`.
struct Hook {
    port: u16,
    posts: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Hook {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let posts = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let n = posts.clone();
        let app = axum::Router::new().route(
            &format!("/{SECRET}"),
            axum::routing::post(move || {
                let n = n.clone();
                async move {
                    n.fetch_add(1, Ordering::SeqCst);
                    "ok"
                }
            }),
        );
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        });
        Self { port, posts, stop }
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_page_in_a_real_browser() {
    let agent = Agent::start("127.0.0.51");
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = json!({
        "monitor": {"mode": "app", "poll_interval_ms": 500, "include_self": false,
            "clusters": [{"name": "lab", "hosts": [
                {"name": "n1", "address": agent.addr.to_string(), "token": TOKEN}]}]},
        "storage": {"enabled": true, "dir": dir.path().join("data")},
        "alerts": {
            "rules": [{"name": "always", "when": "cpu_percent >= 0", "for_s": 0,
                "severity": "critical", "notify": ["hook"]}],
            "channels": [{"name": "hook", "type": "webhook",
                "url": format!("http://127.0.0.1:{}/{SECRET}", hook.port)}],
        },
    });
    let agg = Aggregator::start(&cfg.to_string()).await;
    agg.wait_row("lab:n1", Duration::from_secs(20), "up", |r| {
        r["status"] == "up"
    })
    .await;
    // The rule fires on a real sample within seconds: the overview's badge says so.
    agg.wait_row("lab:n1", Duration::from_secs(20), "alerting", |r| {
        r["alerts"].as_u64().is_some_and(|n| n >= 1)
    })
    .await;
    let (st, v) = agg.get("/api/v1/alerts").await;
    assert_eq!(st, 200, "{v}");
    assert!(
        firing(&v, "always", "lab:n1"),
        "the config rule fires on lab:n1: {v}"
    );
    // The notification reached the channel (the page's channel figures count it).
    let start = Instant::now();
    while hook.posts.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no notification reached the webhook"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let url = format!("{}/", agg.base);
    let viewer = format!("viewer:{VIEWER_PASSWORD}");
    // The receiver's URL, for the channel the admin makes in the UI.
    let hook_url = format!("http://127.0.0.1:{}/{SECRET}", hook.port);
    let before = hook.posts.load(Ordering::SeqCst);
    tokio::task::spawn_blocking(move || {
        crate::browser::browser_with(
            &[("SMON_LOGIN", BROWSER_LOGIN)],
            &["alerts", &url, "lab:n1", "admin", SECRET, &hook_url],
        );
        crate::browser::browser_with(
            &[("SMON_LOGIN", &viewer)],
            &["alerts", &url, "lab:n1", "viewer", SECRET, &hook_url],
        );
    })
    .await
    .expect("alerts scenarios");
    // The admin's tests went out for real: the config channel's, and the UI channel's before
    // and after its edit (the edit kept the URL).
    let sent = hook.posts.load(Ordering::SeqCst) - before;
    assert!(
        sent >= 3,
        "the channel tests sent {sent} notifications, not 3"
    );

    // What the page did, seen from the API: the alert acknowledged by the admin, the rule and
    // the silence made in the UI gone again.
    let (_, v) = agg.get("/api/v1/alerts").await;
    let a = v["alerts"]
        .as_array()
        .and_then(|l| l.iter().find(|a| a["rule"] == "always"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(a["ack"]["by"], "admin", "acknowledged from the page: {v}");
    let (_, rules) = agg.get("/api/v1/alerts/rules").await;
    let names: Vec<&str> = rules
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|r| r["rule"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(names, ["always"], "the UI rule was deleted: {rules}");
    let (_, channels) = agg.get("/api/v1/alerts/channels").await;
    let names: Vec<&str> = channels
        .as_array()
        .map(|l| l.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["hook"], "the UI channel was deleted: {channels}");
    let (_, silences) = agg.get("/api/v1/alerts/silences").await;
    assert_eq!(
        silences.as_array().map(Vec::len),
        Some(0),
        "the silence was deleted: {silences}"
    );
    agg.shutdown().await;
}

/// Whether `answer` (`GET /api/v1/alerts`) has `rule` firing (not pending) on `host`.
fn firing(answer: &Value, rule: &str, host: &str) -> bool {
    answer["alerts"].as_array().is_some_and(|l| {
        l.iter()
            .any(|a| a["rule"] == rule && a["host"]["host"] == host && a["pending"] == false)
    })
}
