//! Prometheus export: the aggregator's `/metrics` (OpenMetrics) read directly, then scraped by
//! Debian's real `prometheus` binary every second, and a host's CPU series found through the
//! Prometheus HTTP API. The dashboard is served under a path prefix to cover `metrics_path`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Agent, Aggregator, TOKEN, free_port};

/// The `prometheus` binary; fails the test with the fix when it is missing.
fn prometheus_bin() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("prometheus"))
        .chain([PathBuf::from("/usr/bin/prometheus")])
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "the Prometheus server is not installed: this test runs Debian's `prometheus` \
             binary. Install it with `apt-get install -y prometheus` (scripts/test.sh does)."
        )
    })
}

/// A Prometheus server scraping one target; killed on drop.
struct Prometheus {
    base: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts one that scrapes `http://{target}{metrics_path}` every second.
    fn start(target: &str, metrics_path: &str) -> Self {
        let bin = prometheus_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: smon\n    metrics_path: {metrics_path}\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let listen = format!("127.0.0.1:{}", free_port("127.0.0.1"));
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        Self {
            base: format!("http://{listen}"),
            child,
            dir,
        }
    }

    /// `GET /api/v1/{path}?query=...`; `None` while the server is not up yet.
    async fn api(&self, path: &str, query: Option<&str>) -> Option<Value> {
        let url = format!("{}/api/v1/{path}", self.base);
        let url = match query {
            Some(q) => reqwest::Url::parse_with_params(&url, &[("query", q)]),
            None => reqwest::Url::parse(&url),
        }
        .expect("url");
        let r = reqwest::get(url).await.ok()?;
        r.json().await.ok()
    }

    /// The result vector of an instant query (empty while Prometheus has nothing).
    async fn query(&self, q: &str) -> Vec<Value> {
        self.api("query", Some(q))
            .await
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }

    /// What went wrong, for a failure message: the scrape target's state and the server log.
    async fn diagnose(&self) -> String {
        let targets = self.api("targets", None).await.unwrap_or(Value::Null);
        let log =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        format!(
            "targets: {}\nlog (last lines, newest first):\n{}",
            targets["data"]["activeTargets"],
            tail.join("\n")
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of an instant-query sample (`"value": [time, "12.5"]`).
fn sample_value(s: &Value) -> f64 {
    s["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("not a sample value: {s}"))
}

fn config(agents: &[&Agent], unreachable: &str) -> String {
    let hosts = crate::support::hosts_json(agents);
    format!(
        r#"{{"server":{{"base_path":"/smon"}},"monitor":{{"mode":"app","poll_interval_ms":200,"include_self":false,"clusters":[{{"name":"lab","hosts":[{},{{"name":"gone","address":"{unreachable}","token":"{TOKEN}"}}]}}]}}}}"#,
        hosts
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_host_from_the_aggregator() {
    prometheus_bin(); // fail early, before anything starts
    let a1 = Agent::start("127.0.0.2");
    let a2 = Agent::start("127.0.0.3");
    let unreachable = format!("127.0.0.5:{}", free_port("127.0.0.5"));
    let agg = Aggregator::start(&config(&[&a1, &a2], &unreachable)).await;
    for id in ["lab:n1", "lab:n2"] {
        agg.wait_row(id, Duration::from_secs(10), "up", |r| r["status"] == "up")
            .await;
    }
    agg.wait_row("lab:gone", Duration::from_secs(10), "down", |r| {
        r["status"] == "down"
    })
    .await;

    // The exposition itself.
    let r = reqwest::get(format!("{}/metrics", agg.base))
        .await
        .expect("GET /metrics");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(smon_web::metrics::CONTENT_TYPE)
    );
    let text = r.text().await.expect("body");
    assert!(text.ends_with("# EOF\n"), "{text}");
    for needle in [
        r#"smon_cpu_percent{cluster="lab",host="n1"} "#,
        r#"smon_gpu_utilization_percent{cluster="lab",host="n2",gpu="0","#,
        r#"smon_host_up{cluster="lab",host="gone"} 0"#,
        r#"smon_hosts{cluster="lab",state="up"} 2"#,
        r#"smon_poll_errors_total{cluster="lab",host="n1"} "#,
        r#"smon_build_info{version=""#,
    ] {
        assert!(text.contains(needle), "no {needle} in\n{text}");
    }
    let errors = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"smon_poll_errors_total{cluster="lab",host="gone"} "#))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(errors.is_some_and(|n| n >= 1), "{text}");

    // Prometheus scrapes it and answers a query on a host's CPU series.
    let (target, path) = agg
        .base
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .expect("base is http://addr/prefix");
    let prom = Prometheus::start(target, &format!("/{path}/metrics"));
    let start = Instant::now();
    let cpu = loop {
        let result = prom.query(r#"smon_cpu_percent{host="n1"}"#).await;
        if let Some(s) = result.first() {
            break s.clone();
        }
        if start.elapsed() > Duration::from_secs(30) {
            panic!(
                "Prometheus found no smon_cpu_percent for n1 within 30 s\n{}",
                prom.diagnose().await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(cpu["metric"]["cluster"], "lab", "{cpu}");
    assert_eq!(cpu["metric"]["job"], "smon", "{cpu}");
    let v = sample_value(&cpu);
    assert!((0.0..=100.0).contains(&v), "CPU {v} out of 0..100: {cpu}");

    // The rest of the same scrape: every host, GPUs and the aggregator's health.
    let hosts = prom.query(r#"sum(smon_hosts{cluster="lab"})"#).await;
    assert_eq!(hosts.first().map(sample_value), Some(3.0), "{hosts:?}");
    let gpus = prom.query("smon_gpu_memory_total_bytes").await;
    assert_eq!(gpus.len(), 2, "one fake GPU per agent: {gpus:?}");
    let up = prom.query("smon_host_up == 1").await;
    assert_eq!(up.len(), 2, "{up:?}");

    drop(prom);
    agg.shutdown().await;
}

/// The value of the unlabelled sample `name` in an exposition.
async fn scalar(agg: &Aggregator, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", agg.base))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until `/metrics` shows `smon_browsers_connected` at `want`.
async fn wait_browsers(agg: &Aggregator, want: f64) {
    let start = Instant::now();
    loop {
        let got = scalar(agg, "smon_browsers_connected").await;
        if got == Some(want) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "smon_browsers_connected: {got:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Socket.IO client over HTTP long-polling (what a browser does before upgrading) is
/// counted while connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_browsers_are_counted() {
    let unreachable = format!("127.0.0.5:{}", free_port("127.0.0.5"));
    let agg = Aggregator::start(&format!(
        r#"{{"monitor":{{"mode":"app","include_self":false,"clusters":[{{"name":"lab","hosts":[{{"name":"gone","address":"{unreachable}","token":"{TOKEN}"}}]}}]}}}}"#
    ))
    .await;
    wait_browsers(&agg, 0.0).await;

    // Engine.IO handshake, then the Socket.IO connect packet for namespace `/`.
    let poll = format!("{}/socket.io/?EIO=4&transport=polling", agg.base);
    let client = agg.client.clone();
    let open = client
        .get(&poll)
        .send()
        .await
        .expect("handshake")
        .text()
        .await
        .expect("body");
    let handshake: Value = serde_json::from_str(open.strip_prefix('0').unwrap_or(&open))
        .unwrap_or_else(|e| panic!("handshake {open:?}: {e}"));
    let sid = handshake["sid"].as_str().expect("sid");
    let session = format!("{poll}&sid={sid}");
    let sent = client
        .post(&session)
        .body("40")
        .send()
        .await
        .expect("connect");
    assert!(sent.status().is_success(), "{sent:?}");
    wait_browsers(&agg, 1.0).await;

    // An Engine.IO close packet ends the session.
    client.post(&session).body("1").send().await.expect("close");
    wait_browsers(&agg, 0.0).await;
    agg.shutdown().await;
}
