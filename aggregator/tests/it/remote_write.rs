//! Remote write against real engines from Debian's packages, started by the tests:
//! `victoria-metrics` (with HTTP basic auth, so the password file is really used) and
//! `prometheus --web.enable-remote-write-receiver`. Real agents feed an in-process aggregator;
//! the test records every sample the aggregator published on its feed and reads the series
//! back through each engine's query API: same values, same timestamps, the documented labels.
//! While VictoriaMetrics is stopped the queue holds (lag grows, nothing dropped) and it
//! drains, without a gap, once the engine is back on the same port and data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smon_aggregator::feed::{Body, Kinds, Subscription};

use crate::support::{Agent, InProcess, TOKEN, free_port};

/// A Debian binary; fails the test with the fix when it is missing.
fn bin(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join(name))
        .chain([Path::new("/usr/bin").join(name)])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: this test runs Debian's. Install it with \
                 `apt-get install -y {package}` (scripts/test.sh does)."
            )
        })
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Victoria,
    Prometheus,
}

/// An engine process on a fixed port and data directory; killed on drop.
struct Engine {
    kind: Kind,
    listen: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Basic auth the engine requires (VictoriaMetrics only).
    auth: Option<(String, String)>,
}

impl Engine {
    fn start(kind: Kind, auth: Option<(&str, &str)>) -> Self {
        let mut e = Self {
            kind,
            listen: format!("127.0.0.1:{}", free_port("127.0.0.1")),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
        };
        e.spawn();
        e
    }

    fn spawn(&mut self) {
        let data = self.dir.path().join("data");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("engine.log"))
            .expect("log file");
        let mut cmd = match self.kind {
            Kind::Victoria => {
                let mut c = Command::new(bin("victoria-metrics", "victoria-metrics"));
                c.arg(format!("-storageDataPath={}", data.display()))
                    .arg(format!("-httpListenAddr={}", self.listen))
                    .arg("-retentionPeriod=1y")
                    .arg("-loggerLevel=WARN");
                if let Some((u, p)) = &self.auth {
                    c.arg(format!("-httpAuth.username={u}"))
                        .arg(format!("-httpAuth.password={p}"));
                }
                c
            }
            Kind::Prometheus => {
                let config = self.dir.path().join("prometheus.yml");
                std::fs::write(&config, "global:\n  scrape_interval: 1m\n").expect("config");
                let mut c = Command::new(bin("prometheus", "prometheus"));
                c.arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg(format!("--web.listen-address={}", self.listen))
                    .arg("--web.enable-remote-write-receiver");
                c
            }
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn engine");
        self.child = Some(child);
    }

    fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.listen)
    }

    fn client_get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client_get_with(path, &[])
    }

    fn client_get_with(&self, path: &str, query: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let url = reqwest::Url::parse_with_params(&format!("http://{}{path}", self.listen), query)
            .expect("url");
        let r = reqwest::Client::new().get(url);
        match &self.auth {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    /// Waits until the engine answers its readiness check.
    async fn ready(&self) {
        let path = match self.kind {
            Kind::Victoria => "/health",
            Kind::Prometheus => "/-/ready",
        };
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.client_get(path).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < until,
                "engine not ready in 20 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it cleanly (SIGTERM: it flushes what it holds) and waits for it.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = rustix::process::Pid::from_raw(c.id() as i32).expect("pid");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let until = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("engine.log")).unwrap_or_default()
    }

    /// Every raw sample of the series selected by `selector`: labels -> (ms, value) in time
    /// order.
    async fn samples(&self, selector: &str) -> BTreeMap<String, (Value, Vec<(i64, f64)>)> {
        let mut out = BTreeMap::new();
        match self.kind {
            Kind::Victoria => {
                // Data waiting in memory becomes searchable at once.
                let _ = self.client_get("/internal/force_flush").send().await;
                let r = self
                    .client_get_with("/api/v1/export", &[("match[]", selector)])
                    .send()
                    .await
                    .expect("export");
                assert!(r.status().is_success(), "export: {}", r.status());
                let text = r.text().await.expect("export body");
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let v: Value = serde_json::from_str(line).expect("export line");
                    let ts = v["timestamps"].as_array().cloned().unwrap_or_default();
                    let vals = v["values"].as_array().cloned().unwrap_or_default();
                    let points = ts
                        .iter()
                        .zip(&vals)
                        .map(|(t, x)| (t.as_i64().expect("ts"), x.as_f64().expect("value")))
                        .collect();
                    out.insert(v["metric"].to_string(), (v["metric"].clone(), points));
                }
            }
            Kind::Prometheus => {
                let r = self
                    .client_get_with("/api/v1/query", &[("query", &format!("{selector}[10m]"))])
                    .send()
                    .await
                    .expect("query");
                let v: Value = r.json().await.expect("query json");
                for s in v["data"]["result"].as_array().cloned().unwrap_or_default() {
                    let points = s["values"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|p| {
                            let t = p[0].as_f64().expect("time");
                            let x: f64 = p[1].as_str().expect("value").parse().expect("number");
                            ((t * 1000.0).round() as i64, x)
                        })
                        .collect();
                    out.insert(s["metric"].to_string(), (s["metric"].clone(), points));
                }
            }
        }
        out
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What the aggregator published: per host, (time, metric{label}, value) as the test
/// computes them from the snapshots, independently of the code under test.
#[derive(Default)]
struct Recorded {
    /// host id -> time -> series key (`metric` or `metric{label=value}`) -> value.
    hosts: BTreeMap<String, BTreeMap<i64, BTreeMap<String, f64>>>,
}

impl Recorded {
    fn take(&mut self, sub: &mut Subscription) {
        while let Some(e) = sub.try_recv() {
            let Body::Sample { host, snapshot: s } = &e.body else {
                continue;
            };
            let mut v = BTreeMap::new();
            if let Some(c) = &s.cpu {
                v.insert("cpu_percent".into(), f64::from(c.total_percent));
            }
            if let Some(l) = &s.load {
                v.insert("load1".into(), l.one);
            }
            if let Some(m) = &s.memory {
                v.insert("mem_used_bytes".into(), m.used_bytes as f64);
                v.insert("swap_used_bytes".into(), m.swap_used_bytes as f64);
            }
            v.insert("processes".into(), f64::from(s.process_count));
            v.insert("sessions".into(), s.sessions.len() as f64);
            for d in &s.disks {
                v.insert(
                    format!("disk_used_bytes{{mount={}}}", d.mount_point),
                    d.used_bytes as f64,
                );
            }
            for n in &s.networks {
                v.insert(
                    format!("net_rx_bytes_per_s{{interface={}}}", n.name),
                    n.rx_bytes_per_s as f64,
                );
            }
            for g in &s.gpus {
                if let Some(m) = g.memory_used_bytes {
                    v.insert(
                        format!("gpu_memory_used_bytes{{uuid={},gpu={}}}", g.uuid, g.index),
                        m as f64,
                    );
                }
            }
            // As documented: a host's samples published in the same millisecond go 1 ms apart.
            let times = self.hosts.entry(host.clone()).or_default();
            let last = times.keys().next_back().copied().unwrap_or(i64::MIN);
            times.insert((e.at_ms as i64).max(last + 1), v);
        }
    }

    fn count(&self) -> usize {
        self.hosts.values().map(BTreeMap::len).sum()
    }
}

/// The test's key of an engine series: `metric` or `metric{label=value}` (without the prefix).
fn key_of(metric: &Value) -> (String, String, String) {
    let name = metric["__name__"].as_str().expect("name");
    let name = name.strip_prefix("smon_").expect("smon_ prefix");
    let host = format!(
        "{}:{}",
        metric["cluster"].as_str().expect("cluster"),
        metric["host"].as_str().expect("host")
    );
    // A GPU's series has two: its `uuid` and its index `gpu`.
    let item: Vec<String> = ["mount", "interface", "sensor", "uuid", "gpu"]
        .into_iter()
        .filter_map(|l| metric[l].as_str().map(|v| format!("{l}={v}")))
        .collect();
    let item = if item.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", item.join(","))
    };
    let tags = metric["tags"].as_str().unwrap_or_default().to_owned();
    (host, format!("{name}{item}"), tags)
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Compares every recorded value with the engine's samples; returns the problems (empty when
/// the engine holds everything).
async fn compare(engine: &Engine, rec: &Recorded, tags: &BTreeMap<&str, &str>) -> Vec<String> {
    let got = engine
        .samples(r#"{__name__=~"smon_.*",cluster="lab"}"#)
        .await;
    let mut series: BTreeMap<(String, String), BTreeMap<i64, f64>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (metric, points) in got.values() {
        let (host, key, t) = key_of(metric);
        let want_tags = tags.get(host.as_str()).copied().unwrap_or_default();
        if t != want_tags {
            problems.push(format!("{host} {key}: tags {t:?}, want {want_tags:?}"));
        }
        series
            .entry((host, key))
            .or_default()
            .extend(points.iter().copied());
    }
    for (host, times) in &rec.hosts {
        for (t, values) in times {
            for (key, want) in values {
                match series
                    .get(&(host.clone(), key.clone()))
                    .and_then(|s| s.get(t))
                {
                    Some(v) if close(*v, *want) => {}
                    Some(v) => problems.push(format!("{host} {key} @{t}: {v}, want {want}")),
                    None => problems.push(format!("{host} {key} @{t}: missing")),
                }
            }
        }
    }
    problems
}

fn remote(url: &str, extra: Value) -> Value {
    let mut v = json!({"url": url, "queue": {"batch_wait_ms": 200, "min_backoff_ms": 100, "max_backoff_ms": 1000}});
    if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(x.clone());
    }
    v
}

fn aggregator_config(agents: &[(&Agent, Value)], remote_write: Vec<Value>) -> Value {
    let hosts: Vec<Value> = agents
        .iter()
        .enumerate()
        .map(|(i, (a, tags))| {
            json!({"name": format!("n{}", i + 1), "address": a.addr.to_string(), "token": TOKEN, "tags": tags})
        })
        .collect();
    json!({
        "monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false,
                    "clusters": [{"name": "lab", "hosts": hosts}]},
        "storage": {"remote_write": remote_write}
    })
}

async fn wait_up(agg: &InProcess, ids: &[&str]) {
    for id in ids {
        agg.wait_row(id, Duration::from_secs(15), "up", |r| r["status"] == "up")
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn victoria_metrics_and_prometheus_hold_what_smon_published() {
    let vm = Engine::start(Kind::Victoria, Some(("smon", "vm-pass-123")));
    let prom = Engine::start(Kind::Prometheus, None);
    let secrets = tempfile::tempdir().expect("tempdir");
    let pass = secrets.path().join("vm.pass");
    std::fs::write(&pass, "vm-pass-123\n").expect("password file");
    let token = secrets.path().join("prom.token");
    std::fs::write(&token, "prom-token\n").expect("token file");
    let a1 = Agent::start("127.0.0.2");
    let a2 = Agent::start("127.0.0.3");
    vm.ready().await;
    prom.ready().await;
    let cfg = aggregator_config(
        &[(&a1, json!(["rack 3", "gpu"])), (&a2, json!([]))],
        vec![
            remote(
                &vm.write_url(),
                json!({"basic_auth": {"username": "smon", "password_file": pass}}),
            ),
            remote(&prom.write_url(), json!({"bearer_token_file": token})),
        ],
    );
    let agg = InProcess::start(&cfg).await;
    let mut sub = agg.feed.subscribe("test", Kinds::POLL, 65_536);
    wait_up(&agg, &["lab:n1", "lab:n2"]).await;
    // Record about three seconds of samples (15 per host at 200 ms).
    let mut rec = Recorded::default();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        rec.take(&mut sub);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rec.take(&mut sub);
    drop(sub);
    assert!(
        rec.count() >= 20,
        "too few samples recorded: {}",
        rec.count()
    );

    let tags = BTreeMap::from([("lab:n1", ",gpu,rack 3,"), ("lab:n2", "")]);
    for engine in [&vm, &prom] {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let problems = compare(engine, &rec, &tags).await;
            if problems.is_empty() {
                break;
            }
            assert!(
                Instant::now() < until,
                "{} does not hold what smon published ({} problems), first: {:#?}\nengine log:\n{}",
                engine.write_url(),
                problems.len(),
                &problems[..problems.len().min(10)],
                engine.log()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    // The state of each receiver: on the admin handle and in /metrics.
    let stats = agg.remote_write.stats();
    assert_eq!(stats.len(), 2);
    for (s, url) in stats.iter().zip([vm.write_url(), prom.write_url()]) {
        assert_eq!(s.url, url);
        assert!(
            s.sent > 0 && s.dropped == 0 && s.last_error.is_none(),
            "{s:?}"
        );
    }
    let metrics = reqwest::get(format!("{}/metrics", agg.base))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    for url in [vm.write_url(), prom.write_url()] {
        let line = format!("smon_remote_write_sent_samples_total{{url=\"{url}\"}} ");
        let sent: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{line} missing in /metrics:\n{metrics}"));
        assert!(sent > 0);
        assert!(metrics.contains(&format!("smon_remote_write_failing{{url=\"{url}\"}} 0")));
    }
    assert!(!metrics.contains("vm-pass-123") && !metrics.contains("prom-token"));
    agg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_holds_while_victoria_metrics_is_down_and_drains_when_it_is_back() {
    let mut vm = Engine::start(Kind::Victoria, None);
    let a1 = Agent::start("127.0.0.4");
    vm.ready().await;
    let cfg = aggregator_config(
        &[(&a1, json!(["x"]))],
        vec![remote(&vm.write_url(), json!({}))],
    );
    let agg = InProcess::start(&cfg).await;
    wait_up(&agg, &["lab:n1"]).await;
    let stat = || agg.remote_write.stats().remove(0);
    let until = Instant::now() + Duration::from_secs(10);
    while stat().sent == 0 {
        assert!(Instant::now() < until, "nothing sent: {:?}", stat());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    vm.stop();
    let mut sub = agg.feed.subscribe("test", Kinds::POLL, 65_536);
    let mut rec = Recorded::default();
    let down = Instant::now();
    let mut queued = Vec::new();
    while down.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rec.take(&mut sub);
        queued.push(stat().queued);
    }
    let s = stat();
    assert!(
        queued.windows(2).all(|w| w[1] >= w[0]) && queued[0] < *queued.last().unwrap_or(&0),
        "the queue grows while the receiver is down: {queued:?}"
    );
    assert!(s.lag_s >= 3.0, "{s:?}");
    assert_eq!(s.dropped, 0, "{s:?}");
    assert!(s.last_error.is_some(), "{s:?}");
    let metrics = reqwest::get(format!("{}/metrics", agg.base))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let url = vm.write_url();
    assert!(
        metrics.contains(&format!("smon_remote_write_failing{{url=\"{url}\"}} 1")),
        "{metrics}"
    );
    let lag: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("smon_remote_write_lag_seconds{{url=\"{url}\"}} ")))
        .and_then(|v| v.trim().parse().ok())
        .expect("lag in /metrics");
    assert!(lag >= 3.0, "{lag}");

    // Back on the same port and data: the queue drains, nothing was dropped, no gap.
    vm.spawn();
    vm.ready().await;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let s = stat();
        if s.queued < 200 && s.lag_s < 2.0 && s.last_error.is_none() {
            break;
        }
        assert!(Instant::now() < until, "did not drain: {s:?}\n{}", vm.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rec.take(&mut sub);
    assert_eq!(stat().dropped, 0);
    let tags = BTreeMap::from([("lab:n1", ",x,")]);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let problems = compare(&vm, &rec, &tags).await;
        if problems.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "samples of the outage missing ({}), first: {:#?}",
            problems.len(),
            &problems[..problems.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    agg.shutdown().await;
}
