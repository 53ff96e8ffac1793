//! supervisord programs and signals through the aggregator (issue 15): a real `supervisord`
//! (Debian package `supervisor`) on a unix socket with a username and password in a temp
//! dir, a real agent reading it (`control.supervisor`, `control.signals`) with a control
//! token, and the aggregator's binary with that token in the host's entry. Over REST: the
//! programs listed (viewers too), stopped, started and restarted (checked with the real
//! `supervisorctl`), a log tailed, a process signalled, the refusals as what to fix, and every
//! action in the audit log; then `smonctl` with API tokens; then the host page in Chromium.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    ADMIN_PASSWORD, Agent, BROWSER_LOGIN, Binary, TOKEN, VIEWER_PASSWORD, free_port, login, send,
    workspace_bin, write_users,
};

#[path = "../../../tests/supervisord_common.rs"]
pub(crate) mod supervisord_common;
use supervisord_common::{PASSWORD, Supervisord, USER};

/// The agent's control token (set as `control_token` in the host's entry).
const CONTROL: &str = "control-token-for-programs-0123";

/// What the program `marker` prints.
const MARKER: &str = "smon-programs-marker-51c2";

/// The programs: `sleeper` (`sleep 1000`) and `marker` (prints [`MARKER`], then sleeps).
fn programs() -> String {
    format!(
        "[program:sleeper]\n\
         command=sleep 1000\n\
         startsecs=1\n\
         stopwaitsecs=2\n\
         \n\
         [program:marker]\n\
         command=/bin/sh -c 'echo {MARKER}; exec sleep 1000'\n\
         startsecs=1\n\
         stopwaitsecs=2\n\
         stdout_logfile={{d}}/marker.out.log\n"
    )
}

/// `sleep 1000` started through a shell that exits at once: not the agent's child.
fn orphan_sleep() -> u32 {
    let out = Command::new("/bin/sh")
        .args(["-c", "sleep 1000 >/dev/null 2>&1 </dev/null & echo $!"])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("pid")
}

/// Gone, or a zombie waiting for its (non-reaping) parent.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) {
        assert!(Instant::now() < deadline, "{pid} still runs after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The fleet: `lab:n1` (the agent, with its control token) and `lab:nocontrol` (the same
/// agent, no control token); storage for the tokens and the audit log.
struct Fleet {
    _sup: Supervisord,
    _agent: Agent,
    agg: Binary,
    cfg: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fleet {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sup = Supervisord::start(dir.path(), &programs());
        let control = json!({"token": CONTROL, "signals": {"enabled": true},
            "supervisor": {"url": sup.url(),
                "username": USER, "password": PASSWORD, "interval_s": 1}});
        let agent = Agent::start_full("127.0.0.57", "", &format!(",\"control\":{control}"));
        write_users(dir.path(), "smon-users.json");
        let port = free_port("127.0.0.1");
        let cfg = dir.path().join("config_app.json");
        let host = |name: &str, control: bool| {
            let mut h = json!({"name": name, "address": agent.addr.to_string(), "token": TOKEN});
            if control {
                h["control_token"] = json!(CONTROL);
            }
            h
        };
        let config = json!({
            "server": {"host": "127.0.0.1", "port": port},
            "monitor": {"mode": "app", "poll_interval_ms": 500, "include_self": false,
                "clusters": [{"name": "lab", "hosts": [host("n1", true), host("nocontrol", false)]}]},
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
        Self {
            _sup: sup,
            _agent: agent,
            agg,
            cfg,
            _dir: dir,
        }
    }

    fn sup(&self) -> &Supervisord {
        &self._sup
    }

    /// Waits until `GET .../programs` of `id` shows every program RUNNING.
    async fn running(&self, c: &reqwest::Client, id: &str) -> Value {
        let start = Instant::now();
        loop {
            let (st, v) = send(
                c,
                &self.agg.base(),
                Method::GET,
                &format!("/api/v1/hosts/{id}/programs"),
                None,
            )
            .await;
            let progs = v["programs"].as_array().cloned().unwrap_or_default();
            if st == 200 && progs.len() == 2 && progs.iter().all(|p| p["state"] == "RUNNING") {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "programs of {id} not all running: {st} {v}\n{}",
                self.agg.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `smon-aggregator token create --name name --role role`.
    fn token(&self, name: &str, role: &str) -> String {
        let o = Command::new(env!("CARGO_BIN_EXE_smon-aggregator"))
            .args([
                "token", "create", "--name", name, "--role", role, "--config",
            ])
            .arg(&self.cfg)
            .output()
            .expect("token create");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }
}

fn program<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["programs"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|p| {
                format!(
                    "{}:{}",
                    p["group"].as_str().unwrap_or(""),
                    p["name"].as_str().unwrap_or("")
                ) == name
            })
        })
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

fn has(v: &Value, want: &str) -> bool {
    v["error"].as_str().is_some_and(|e| e.contains(want))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_and_signals_over_rest_audited() {
    let f = Fleet::start().await;
    let base = f.agg.base();
    let admin = login(&base, "admin", ADMIN_PASSWORD).await;
    let viewer = login(&base, "viewer", VIEWER_PASSWORD).await;
    let call = |c: &reqwest::Client, m: Method, path: String| {
        let (c, b) = (c.clone(), base.clone());
        async move { send(&c, &b, m, &path, Some(json!({}))).await }
    };

    // Listed; viewers too.
    let v = f.running(&viewer, "lab:n1").await;
    assert_eq!(v["supervisor"], true, "{v}");
    assert!(v.get("error").is_none(), "{v}");
    let sleeper = program(&v, "sleeper:sleeper");
    let pid = sleeper["pid"].as_u64().expect("pid");
    assert!(pid > 0, "{v}");
    // The process figures come with the process list, sampled while someone watches the
    // host: a summary has none.
    assert_eq!(
        sleeper["memory_bytes"].is_u64(),
        v["processes"] == true,
        "{v}"
    );

    // A viewer may not act.
    let (st, v) = call(
        &viewer,
        Method::POST,
        "/api/v1/hosts/lab:n1/programs/sleeper:sleeper/stop".into(),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    let (st, _) = send(
        &viewer,
        &base,
        Method::GET,
        "/api/v1/hosts/lab:n1/programs/marker:marker/log",
        None,
    )
    .await;
    assert_eq!(st, 403);
    f.sup().says("sleeper", "RUNNING");

    // Stop, start, restart.
    let (st, v) = call(
        &admin,
        Method::POST,
        "/api/v1/hosts/lab:n1/programs/sleeper:sleeper/stop".into(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(program(&v, "sleeper:sleeper")["state"], "STOPPED", "{v}");
    f.sup().says("sleeper", "STOPPED");
    let (st, v) = call(
        &admin,
        Method::POST,
        "/api/v1/hosts/lab:n1/programs/sleeper:sleeper/start".into(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(program(&v, "sleeper:sleeper")["state"], "RUNNING", "{v}");
    f.sup().says("sleeper", "RUNNING");
    let started = program(&v, "sleeper:sleeper")["pid"].as_u64().expect("pid");
    assert_ne!(started, pid);
    let (st, v) = call(
        &admin,
        Method::POST,
        "/api/v1/hosts/lab:n1/programs/sleeper:sleeper/restart".into(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let restarted = program(&v, "sleeper:sleeper")["pid"].as_u64().expect("pid");
    assert_eq!(program(&v, "sleeper:sleeper")["state"], "RUNNING", "{v}");
    assert!(restarted > 0 && restarted != started, "{v}");
    // Refused by supervisord: already started (409 with its reason); unknown: 404; a verb
    // that is none: 404.
    let (st, v) = call(
        &admin,
        Method::POST,
        "/api/v1/hosts/lab:n1/programs/sleeper:sleeper/start".into(),
    )
    .await;
    assert_eq!(st, 409, "{v}");
    assert!(has(&v, "lab:n1's agent refused"), "{v}");
    let (st, v) = call(
        &admin,
        Method::POST,
        "/api/v1/hosts/lab:n1/programs/ghost:ghost/stop".into(),
    )
    .await;
    assert_eq!(st, 404, "{v}");
    let (st, _) = call(
        &admin,
        Method::POST,
        "/api/v1/hosts/lab:n1/programs/sleeper:sleeper/pause".into(),
    )
    .await;
    assert_eq!(st, 404);

    // The log's tail, as text.
    let r = admin
        .get(format!(
            "{base}/api/v1/hosts/lab:n1/programs/marker:marker/log?stream=stdout&bytes=4096"
        ))
        .send()
        .await
        .expect("log");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain")),
        "{:?}",
        r.headers()
    );
    let text = r.text().await.expect("text");
    assert!(text.contains(MARKER), "{text:?}");
    let (st, v) = send(
        &admin,
        &base,
        Method::GET,
        "/api/v1/hosts/lab:n1/programs/marker:marker/log?stream=both",
        None,
    )
    .await;
    assert_eq!(st, 400, "{v}");

    // Without the host's control_token: what to set.
    let (st, v) = call(
        &admin,
        Method::POST,
        "/api/v1/hosts/lab:nocontrol/programs/sleeper:sleeper/stop".into(),
    )
    .await;
    assert_eq!(st, 409, "{v}");
    assert!(has(&v, "control_token"), "{v}");
    f.sup().says("sleeper", "RUNNING");

    // Signals: a process of the test's, then pid 1 (refused with the agent's reason).
    let victim = orphan_sleep();
    let (st, v) = send(
        &admin,
        &base,
        Method::POST,
        "/api/v1/hosts/lab:n1/signal",
        Some(json!({"pid": victim, "signal": "TERM"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["pid"].as_u64(), v["name"].as_str()),
        (Some(u64::from(victim)), Some("sleep"))
    );
    wait_gone(victim).await;
    let (st, v) = send(
        &admin,
        &base,
        Method::POST,
        "/api/v1/hosts/lab:n1/signal",
        Some(json!({"pid": 1, "signal": "HUP"})),
    )
    .await;
    assert_eq!(st, 409, "{v}");
    assert!(has(&v, "lab:n1's agent refused"), "{v}");
    let (st, v) = send(
        &admin,
        &base,
        Method::POST,
        "/api/v1/hosts/lab:n1/signal",
        Some(json!({"pid": 2, "signal": "STOP"})),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let (st, _) = send(
        &viewer,
        &base,
        Method::POST,
        "/api/v1/hosts/lab:n1/signal",
        Some(json!({"pid": 1, "signal": "TERM"})),
    )
    .await;
    assert_eq!(st, 403);

    // Every action in the audit log, with its outcome.
    let (st, v) = send(&admin, &base, Method::GET, "/api/v1/audit?limit=100", None).await;
    assert_eq!(st, 200, "{v}");
    let entries = v.as_array().cloned().unwrap_or_default();
    let seen = |action: &str, ok: bool| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["actor"] == "admin"
                && (e["outcome"] == "ok") == ok
                && e["hosts"].as_array().is_some_and(|h| !h.is_empty())
        })
    };
    for (action, ok) in [
        ("program.stop", true),
        ("program.start", true),
        ("program.restart", true),
        ("program.start", false),
        ("signal.TERM", true),
        ("signal.HUP", false),
    ] {
        assert!(seen(action, ok), "no {action} (ok: {ok}) in {v}");
    }

    // smonctl with API tokens.
    let url = format!("{base}/");
    let tok = f.token("ops", "admin");
    let ro = f.token("ro", "viewer");
    let ctl = |args: &[&str], token: &str| -> Output {
        Command::new(workspace_bin("smonctl"))
            .args(args)
            .args(["--url", &url, "--token", token])
            .env_remove("SMON_TOKEN")
            .output()
            .expect("smonctl")
    };
    let texts = |o: &Output| {
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // The list follows the agent's samples: the restart above shows within seconds.
    let start = Instant::now();
    loop {
        let o = ctl(&["programs", "n1"], &ro);
        let (out, err) = texts(&o);
        assert!(o.status.success(), "{err}");
        assert!(out.starts_with("NAME"), "{out}");
        if out
            .lines()
            .any(|l| l.starts_with("sleeper:sleeper") && l.contains("RUNNING"))
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let o = ctl(&["programs", "lab:n1", "--json"], &ro);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(program(&v, "marker:marker")["state"], "RUNNING", "{v}");
    let o = ctl(&["stop", "n1", "marker:marker"], &ro);
    assert_eq!(o.status.code(), Some(3), "{:?}", texts(&o));
    let o = ctl(&["stop", "n1", "marker:marker"], &tok);
    let (out, err) = texts(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("marker:marker  STOPPED"), "{out}");
    f.sup().says("marker", "STOPPED");
    let o = ctl(&["start", "n1", "marker:marker", "--json"], &tok);
    let (out, err) = texts(&o);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(program(&v, "marker:marker")["state"], "RUNNING", "{v}");
    f.sup().says("marker", "RUNNING");
    let o = ctl(&["tail", "n1", "marker:marker"], &tok);
    let (out, err) = texts(&o);
    assert!(o.status.success() && out.contains(MARKER), "{out}{err}");
    // A failing action: exit 1 with the reason on one line.
    let o = ctl(&["start", "n1", "marker:marker"], &tok);
    let (_, err) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("smonctl: ") && err.contains("refused"),
        "{err}"
    );
    let victim = orphan_sleep();
    let o = ctl(
        &["signal", "n1", &victim.to_string(), "term", "--json"],
        &tok,
    );
    let (out, err) = texts(&o);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["pid"].as_u64(), Some(u64::from(victim)), "{v}");
    wait_gone(victim).await;
    let o = ctl(&["signal", "n1", "1", "TERM"], &tok);
    assert_eq!(o.status.code(), Some(1), "{:?}", texts(&o));
    let o = ctl(&["signal", "n1", "1", "STOP"], &tok);
    assert_eq!(o.status.code(), Some(2), "{:?}", texts(&o));
}

/// The host page's Programs section in Chromium: listed; an admin stops a program (the
/// confirmation accepted) and sees it STOPPED, then opens a log and sees its tail; a viewer
/// sees no buttons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_in_a_real_browser() {
    let f = Fleet::start().await;
    let admin = login(&f.agg.base(), "admin", ADMIN_PASSWORD).await;
    f.running(&admin, "lab:n1").await;
    let url = format!("{}/", f.agg.base());
    let viewer = format!("viewer:{VIEWER_PASSWORD}");
    let u = url.clone();
    tokio::task::spawn_blocking(move || {
        crate::browser::browser_with(
            &[("SMON_LOGIN", &viewer)],
            &[
                "programs",
                &u,
                "lab:n1",
                "viewer",
                "sleeper:sleeper",
                "marker:marker",
                MARKER,
            ],
        );
        crate::browser::browser_with(
            &[("SMON_LOGIN", BROWSER_LOGIN)],
            &[
                "programs",
                &u,
                "lab:n1",
                "admin",
                "sleeper:sleeper",
                "marker:marker",
                MARKER,
            ],
        );
    })
    .await
    .expect("programs scenarios");
    f.sup().says("sleeper", "STOPPED");
}
