//! The fleet's programs (issue 15's Applications page): two real agents on 127.0.0.61 and
//! 127.0.0.62, each with its own real `supervisord` (Debian package `supervisor`) running
//! `sleeper` and `jobs:ticker` (a line a fifth of a second), and the aggregator's binary with
//! both hosts' control tokens. Over REST: `GET /api/v1/applications` lists each program with
//! its state on both hosts (viewers too); `POST /api/v1/programs/{name}/{verb}` stops, starts
//! and restarts a program on every host that has it, on named hosts and on a tag, one result
//! per host, checked with each host's `supervisorctl`, refusals as what to fix, and audited;
//! the log stream (`.../log/stream`, server-sent events) delivers the new lines exactly once
//! and ends when the client goes. Then the Applications page and the host page's live log in
//! Chromium (`applications_ui.mjs`), at a desktop and a phone's width.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_PASSWORD, Agent, Binary, TOKEN, VIEWER_PASSWORD, free_port, login, send, write_users,
};

use crate::programs::supervisord_common::{PASSWORD, Supervisord, USER};

/// The agents' control token (each host's `control_token`).
const CONTROL: &str = "control-token-for-applications-0123";

/// The programs of each supervisord.
const PROGRAMS: &str = "[program:sleeper]\n\
    command=sleep 1000\n\
    startsecs=1\n\
    stopwaitsecs=2\n\
    \n\
    [group:jobs]\n\
    programs=ticker\n\
    \n\
    [program:ticker]\n\
    command=/bin/sh -c 'i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.2; done'\n\
    startsecs=1\n\
    stopwaitsecs=2\n\
    stdout_logfile={d}/ticker.out.log\n";

/// Two hosts (`lab:n1`, `lab:n2`, tag `web`), each an agent with its supervisord.
struct Fleet {
    sups: Vec<Supervisord>,
    _agents: Vec<Agent>,
    agg: Binary,
    _dirs: Vec<tempfile::TempDir>,
}

impl Fleet {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sups = Vec::new();
        let mut agents = Vec::new();
        let mut dirs = Vec::new();
        for ip in ["127.0.0.61", "127.0.0.62"] {
            let d = tempfile::tempdir().expect("tempdir");
            let sup = Supervisord::start(d.path(), PROGRAMS);
            let control = json!({"token": CONTROL, "supervisor": {"url": sup.url(),
                "username": USER, "password": PASSWORD, "interval_s": 1}});
            agents.push(Agent::start_full(
                ip,
                "",
                &format!(",\"control\":{control}"),
            ));
            sups.push(sup);
            dirs.push(d);
        }
        write_users(dir.path(), "smon-users.json");
        let port = free_port("127.0.0.1");
        let cfg = dir.path().join("config_app.json");
        let hosts: Vec<Value> = agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                json!({"name": format!("n{}", i + 1), "address": a.addr.to_string(),
                    "token": TOKEN, "control_token": CONTROL, "tags": ["web"]})
            })
            .collect();
        let config = json!({
            "server": {"host": "127.0.0.1", "port": port},
            "monitor": {"mode": "app", "poll_interval_ms": 500, "include_self": false,
                "clusters": [{"name": "lab", "hosts": hosts}]},
            "storage": {"dir": dir.path().join("data")},
        });
        std::fs::write(&cfg, config.to_string()).expect("config");
        let agg = Binary::spawn(&cfg, port, dir.path().join("aggregator.log"));
        let start = Instant::now();
        while agg.get("/healthz").await.is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the aggregator did not start; log:\n{}",
                agg.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        dirs.push(dir);
        Self {
            sups,
            _agents: agents,
            agg,
            _dirs: dirs,
        }
    }

    /// `GET /api/v1/applications` as `c`, until `ok` holds of it (at most 30 s).
    async fn apps_until(
        &self,
        c: &reqwest::Client,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let (st, v) = send(
                c,
                &self.agg.base(),
                Method::GET,
                "/api/v1/applications",
                None,
            )
            .await;
            if st == 200 && ok(&v) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "applications never showed {what}: {st} {v}\n{}",
                self.agg.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The pid of `name` in `supervisorctl status` of host `i` (0 when it does not run).
    fn pid(&self, i: usize, name: &str) -> u32 {
        let out = self.sups[i].status(name);
        out.split("pid ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// The entry of `group:name` in an applications answer.
fn program<'a>(v: &'a Value, group: &str, name: &str) -> Option<&'a Value> {
    v["programs"]
        .as_array()?
        .iter()
        .find(|p| p["group"] == group && p["name"] == name)
}

/// Whether `group:name` is listed on both hosts, every copy in `state`.
fn on_both(v: &Value, group: &str, name: &str, state: &str) -> bool {
    program(v, group, name).is_some_and(|p| {
        let hosts = p["hosts"].as_array().cloned().unwrap_or_default();
        hosts.len() == 2 && hosts.iter().all(|h| h["state"] == state)
    })
}

/// The server-sent events read so far: (event, data) of each complete one.
fn events(buf: &str) -> Vec<(String, String)> {
    let complete = match buf.rfind("\n\n") {
        Some(i) => &buf[..i],
        None => return Vec::new(),
    };
    complete
        .split("\n\n")
        .filter_map(|e| {
            let mut name = String::from("message");
            let mut data = Vec::new();
            for l in e.lines() {
                if let Some(n) = l.strip_prefix("event:") {
                    name = n.trim().to_owned();
                } else if let Some(d) = l.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            (!data.is_empty()).then(|| (name, data.join("\n")))
        })
        .collect()
}

/// The numbers of the whole `tick-N` lines of `text`, skipping a first line that may be cut.
fn ticks(text: &str) -> Vec<u64> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.remove(0);
    lines.pop(); // After the last newline: empty, or a line being written.
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("tick-")?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_programs_listed_acted_on_and_followed_over_rest() {
    let f = Fleet::start().await;
    let base = f.agg.base();
    let admin = login(&base, "admin", ADMIN_PASSWORD).await;
    let viewer = login(&base, "viewer", VIEWER_PASSWORD).await;

    // Listed across both hosts; viewers too; no declared application.
    let v = f
        .apps_until(&viewer, "both programs running on both hosts", |v| {
            on_both(v, "sleeper", "sleeper", "RUNNING") && on_both(v, "jobs", "ticker", "RUNNING")
        })
        .await;
    assert_eq!(v["declared"], json!([]), "{v}");
    let s = program(&v, "sleeper", "sleeper").expect("sleeper");
    assert_eq!(s["running"], 2, "{v}");
    let hosts: Vec<&str> = s["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| h["host"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(hosts, ["lab:n1", "lab:n2"], "{v}");
    for (i, h) in s["hosts"].as_array().expect("hosts").iter().enumerate() {
        assert_eq!(h["host_status"], "up", "{v}");
        assert_eq!(
            h["pid"].as_u64(),
            Some(u64::from(f.pid(i, "sleeper"))),
            "{v}"
        );
    }
    // CPU and memory for every host although nobody watches one (the samples are summaries,
    // without process lists): the agents' own sums over the processes they mark.
    let v = f
        .apps_until(&viewer, "the sleeper's memory on both hosts", |v| {
            program(v, "sleeper", "sleeper").is_some_and(|p| {
                let hosts = p["hosts"].as_array().cloned().unwrap_or_default();
                hosts.len() == 2
                    && hosts.iter().all(|h| {
                        h["memory_bytes"].as_u64().is_some_and(|m| m > 0)
                            && h["cpu_percent"].as_f64().is_some()
                    })
            })
        })
        .await;
    let s = program(&v, "sleeper", "sleeper").expect("sleeper");
    let per_host: u64 = s["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| h["memory_bytes"].as_u64())
        .sum();
    assert_eq!(s["memory_bytes"].as_u64(), Some(per_host), "{v}");
    let names: Vec<String> = v["programs"]
        .as_array()
        .expect("programs")
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p["group"].as_str().unwrap_or(""),
                p["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        names,
        ["jobs:ticker", "sleeper:sleeper"],
        "sorted by group: {v}"
    );

    let act = |c: &reqwest::Client, path: &str, body: Value| {
        let (c, b, p) = (c.clone(), base.clone(), path.to_owned());
        async move { send(&c, &b, Method::POST, &p, Some(body)).await }
    };
    let oks = |v: &Value| -> Vec<(String, bool)> {
        v["results"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| (r["host"].as_str().unwrap_or("").to_owned(), r["ok"] == true))
            .collect()
    };

    // A viewer may not act.
    let (st, v) = act(&viewer, "/api/v1/programs/sleeper:sleeper/stop", json!({})).await;
    assert_eq!(st, 403, "{v}");
    f.sups[0].says("sleeper", "RUNNING");

    // Every host that has it: `{}`.
    let (st, v) = act(&admin, "/api/v1/programs/sleeper:sleeper/stop", json!({})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["program"].as_str(), v["verb"].as_str()),
        (Some("sleeper:sleeper"), Some("stop")),
        "{v}"
    );
    assert_eq!(
        oks(&v),
        [("lab:n1".into(), true), ("lab:n2".into(), true)],
        "{v}"
    );
    f.sups[0].says("sleeper", "STOPPED");
    f.sups[1].says("sleeper", "STOPPED");

    // Named hosts: only those.
    let (st, v) = act(
        &admin,
        "/api/v1/programs/sleeper:sleeper/start",
        json!({"hosts": ["lab:n1"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(oks(&v), [("lab:n1".into(), true)], "{v}");
    f.sups[0].says("sleeper", "RUNNING");
    f.sups[1].says("sleeper", "STOPPED");
    // A tag; a start where it runs already fails there alone, with supervisord's reason.
    let (st, v) = act(
        &admin,
        "/api/v1/programs/sleeper:sleeper/start",
        json!({"tag": "web"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        oks(&v),
        [("lab:n1".into(), false), ("lab:n2".into(), true)],
        "{v}"
    );
    assert!(
        v["results"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("refused")),
        "{v}"
    );
    f.sups[1].says("sleeper", "RUNNING");
    let before = (f.pid(0, "sleeper"), f.pid(1, "sleeper"));
    let (st, v) = act(
        &admin,
        "/api/v1/programs/sleeper:sleeper/restart",
        json!({"cluster": "lab"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        oks(&v),
        [("lab:n1".into(), true), ("lab:n2".into(), true)],
        "{v}"
    );
    f.sups[0].says("sleeper", "RUNNING");
    f.sups[1].says("sleeper", "RUNNING");
    let after = (f.pid(0, "sleeper"), f.pid(1, "sleeper"));
    assert!(
        after.0 != before.0 && after.1 != before.1,
        "{before:?} {after:?}"
    );
    // The list follows.
    f.apps_until(&viewer, "the restarted pids", |v| {
        program(v, "sleeper", "sleeper").is_some_and(|p| {
            p["running"] == 2
                && p["hosts"][0]["pid"].as_u64() == Some(u64::from(after.0))
                && p["hosts"][1]["pid"].as_u64() == Some(u64::from(after.1))
        })
    })
    .await;

    // Refusals, as what to fix.
    let (st, v) = act(&admin, "/api/v1/programs/ghost:ghost/restart", json!({})).await;
    assert_eq!(st, 404, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("no host has the program 'ghost:ghost'")),
        "{v}"
    );
    let (st, v) = act(&admin, "/api/v1/programs/sleeper:sleeper/pause", json!({})).await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = act(
        &admin,
        "/api/v1/programs/sleeper:sleeper/stop",
        json!({"hosts": ["lab:nope"]}),
    )
    .await;
    assert_eq!(st, 404, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("lab:nope")),
        "{v}"
    );
    let (st, v) = act(
        &admin,
        "/api/v1/programs/sleeper:sleeper/stop",
        json!({"hosts": 3}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = act(
        &admin,
        "/api/v1/programs/sleeper:sleeper/stop",
        json!({"tag": "web", "cluster": "lab"}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    f.sups[0].says("sleeper", "RUNNING");

    // Audited: who, which hosts, the program, the outcome.
    let (st, v) = send(&admin, &base, Method::GET, "/api/v1/audit?limit=100", None).await;
    assert_eq!(st, 200, "{v}");
    let entries = v.as_array().cloned().unwrap_or_default();
    let seen = |action: &str, hosts: &[&str], outcome: &str| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["actor"] == "admin"
                && e["target"] == "sleeper:sleeper"
                && e["outcome"] == outcome
                && e["hosts"] == json!(hosts)
        })
    };
    assert!(seen("program.stop", &["lab:n1", "lab:n2"], "ok"), "{v}");
    assert!(seen("program.start", &["lab:n1"], "ok"), "{v}");
    assert!(
        seen("program.start", &["lab:n1", "lab:n2"], "1 of 2 failed"),
        "{v}"
    );
    assert!(seen("program.restart", &["lab:n1", "lab:n2"], "ok"), "{v}");

    // The log stream: admins only; an unknown program refused before any event.
    let url = format!("{base}/api/v1/hosts/lab:n1/programs/jobs:ticker/log/stream");
    let r = viewer.get(&url).send().await.expect("stream");
    assert_eq!(r.status(), 403);
    let r = admin
        .get(format!(
            "{base}/api/v1/hosts/lab:n1/programs/jobs:ghost/log/stream"
        ))
        .send()
        .await
        .expect("stream");
    assert_eq!(r.status(), 404);
    let mut r = admin.get(&url).send().await.expect("stream");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/event-stream")),
        "{:?}",
        r.headers()
    );
    // The tail, then at least 3 more chunks, each with what was written since the last.
    let mut buf = String::new();
    let start = Instant::now();
    let chunks = loop {
        let chunks: Vec<Value> = events(&buf)
            .into_iter()
            .filter(|(e, _)| e == "chunk")
            .map(|(_, d)| serde_json::from_str(&d).expect("chunk json"))
            .collect();
        if chunks.len() >= 4 {
            break chunks;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "too few events: {buf}"
        );
        let c = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .expect("an event within 10 s")
            .expect("read")
            .expect("the stream goes on");
        buf.push_str(&String::from_utf8_lossy(&c));
    };
    let offsets: Vec<u64> = chunks
        .iter()
        .map(|c| c["offset"].as_u64().expect("offset"))
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert!(chunks.iter().all(|c| c["overflow"] == false), "{buf}");
    let text: String = chunks
        .iter()
        .map(|c| c["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        text.len() as u64 - chunks[0]["text"].as_str().unwrap_or("").len() as u64,
        offsets[offsets.len() - 1] - offsets[0],
        "every new byte once: {buf}"
    );
    let n = ticks(&text);
    assert!(n.len() >= 5, "{text}");
    assert!(
        n.windows(2).all(|w| w[1] == w[0] + 1),
        "lines lost or repeated: {n:?}"
    );
    // Closing it ends the server's reads.
    drop(r);
    let start = Instant::now();
    while !f.agg.log().contains("Log stream closed.") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the stream did not end:\n{}",
            f.agg.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Applications page and the host page's live log in Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_page_in_a_real_browser() {
    let f = Fleet::start().await;
    let admin = login(&f.agg.base(), "admin", ADMIN_PASSWORD).await;
    f.apps_until(&admin, "both programs running on both hosts", |v| {
        on_both(v, "sleeper", "sleeper", "RUNNING") && on_both(v, "jobs", "ticker", "RUNNING")
    })
    .await;
    let before = (f.pid(0, "sleeper"), f.pid(1, "sleeper"));
    let args = vec![
        format!("{}/", f.agg.base()),
        format!("admin:{ADMIN_PASSWORD}"),
        format!("viewer:{VIEWER_PASSWORD}"),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let _turn = crate::browser::ONE_BROWSER
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::process::Command::new("node")
            .arg(manifest.join("tests/it/applications_ui.mjs"))
            .args(&args)
            .env("SMON_UI_DIR", manifest.join("../web/ui"))
            .output()
            .expect("node is installed")
    })
    .await
    .expect("browser task");
    assert!(
        out.status.success(),
        "applications_ui.mjs failed:\n--- stdout\n{}\n--- stderr\n{}\n--- aggregator\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        f.agg.log()
    );
    // What the browser did is what supervisord did: sleeper restarted on both hosts (new
    // pids), jobs:ticker stopped on lab:n2 alone; the log panel's stream ended when closed.
    f.sups[0].says("sleeper", "RUNNING");
    f.sups[1].says("sleeper", "RUNNING");
    let after = (f.pid(0, "sleeper"), f.pid(1, "sleeper"));
    assert!(
        after.0 != before.0 && after.1 != before.1,
        "{before:?} {after:?}"
    );
    f.sups[1].says("jobs:ticker", "STOPPED");
    f.sups[0].says("jobs:ticker", "RUNNING");
    let start = Instant::now();
    while !f.agg.log().contains("Log stream closed.") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the stream did not end:\n{}",
            f.agg.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
