//! `smonctl app start | stop | restart [NAME]` against a real aggregator with a declared
//! application, a real agent and its real `supervisord` (Debian package `supervisor`):
//! lines per decision, the state checked with `supervisorctl`, exit 1 when the application
//! cannot run, 3 for a viewer's token, and the action in the audit log as the token's.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{TOKEN, bin, daemon_with, smonctl, texts};

#[path = "../../../tests/supervisord_common.rs"]
mod supervisord_common;
use supervisord_common::{PASSWORD, Supervisord, USER};

const CONTROL: &str = "control-token-for-smonctl-apps-01";

fn token(dir: &std::path::Path, name: &str, role: &str) -> String {
    let started = Instant::now();
    loop {
        let o = Command::new(bin("smon-aggregator"))
            .args([
                "token", "create", "--name", name, "--role", role, "--config",
            ])
            .arg(dir.join("config.json"))
            .output()
            .expect("token create");
        if o.status.success() {
            return texts(&o).0.trim().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "token create: {:?}",
            texts(&o)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait(sup: &Supervisord, program: &str, word: &str) {
    let started = Instant::now();
    while !sup.status(program).contains(word) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{program} not {word}: {}",
            sup.status(program)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn app_start_stop_restart_with_a_real_supervisord() {
    let sdir = tempfile::tempdir().expect("tempdir");
    let sup = Supervisord::start(
        sdir.path(),
        "[program:api]\ncommand=sleep 1000\nautostart=false\nstartsecs=1\nstopwaitsecs=2\n",
    );
    sup.says("api", "STOPPED");
    let url_sup = sup.url();
    let agent = daemon_with("smon-agent", |port, _| {
        json!({"monitor": {"mode": "node", "interval_ms": 200,
                "grpc_listen": format!("127.0.0.1:{port}"), "token": TOKEN, "gpu": "off"},
            "control": {"token": CONTROL, "supervisor": {"url": url_sup,
                "username": USER, "password": PASSWORD, "interval_s": 1}}})
        .to_string()
    });
    let agg = daemon_with("smon-aggregator", |port, dir| {
        json!({"server": {"host": "127.0.0.1", "port": port},
        "monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false,
            "clusters": [{"name": "lab", "hosts": [{"name": "n1",
                "address": format!("127.0.0.1:{}", agent.port), "token": TOKEN,
                "control_token": CONTROL}]}]},
        "storage": {"dir": dir.join("data")},
        "applications": [
            {"name": "api", "program": "api:api", "candidates": ["lab:n1"]},
            {"name": "ghost", "program": "ghost:ghost", "candidates": ["lab:n1"]},
        ]})
        .to_string()
    });
    let url = format!("http://127.0.0.1:{}/", agg.port);
    let admin = token(agg.dir.path(), "ops", "admin");
    let viewer = token(agg.dir.path(), "ro", "viewer");
    // The reconciler starts it by itself.
    wait(&sup, "api", "RUNNING");

    let o = smonctl(&["app", "stop", "api", "--url", &url, "--token", &admin]);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let words: Vec<&str> = out.split_whitespace().take(3).collect();
    assert_eq!(words, ["stop", "lab:n1", "ok"], "{out}");
    assert!(
        sup.status("api").contains("STOPPED"),
        "{}",
        sup.status("api")
    );

    let o = smonctl(&[
        "app", "restart", "api", "--json", "--url", &url, "--token", &admin,
    ]);
    let r: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(o.status.code(), Some(0), "{r}");
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        sup.status("api").contains("RUNNING"),
        "{}",
        sup.status("api")
    );

    // ghost cannot run (no such program on its only candidate): exit 1 with why.
    let o = smonctl(&["app", "start", "ghost", "--url", &url, "--token", &admin]);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(out.contains("has no program ghost:ghost"), "{out}");

    let o = smonctl(&["app", "stop", "--url", &url, "--token", &viewer]);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(3), "{out}\n{err}");
    assert!(
        sup.status("api").contains("RUNNING"),
        "a viewer stops nothing"
    );
    let o = smonctl(&["app", "stop", "nope", "--url", &url, "--token", &admin]);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("no application 'nope'"), "{err}");

    let o = smonctl(&["audit", "--json", "--url", &url, "--token", &admin]);
    let log: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(
        log.as_array().is_some_and(|l| l
            .iter()
            .any(|e| e["action"] == "application.stop" && e["actor"] == "token:ops")),
        "{log}"
    );
}
