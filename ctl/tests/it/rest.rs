//! `smonctl hosts | status | audit` against a real aggregator with API tokens made by
//! `smon-aggregator token create`: tables, `--json`, bare host names, and the exit statuses
//! (2 usage, 3 auth, 4 unreachable) with their sentences.
//!
//! `smonctl wake | reboot | shutdown | check` go to the same real aggregator's action routes.

use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::{agent, aggregator, bin, free_port, smonctl, texts, until};

/// `smon-aggregator token create --name name --role role` for the aggregator in `dir`.
fn make_token(dir: &std::path::Path, name: &str, role: &str) -> String {
    let o = Command::new(bin("smon-aggregator"))
        .args([
            "token", "create", "--name", name, "--role", role, "--config",
        ])
        .arg(dir.join("config.json"))
        .output()
        .expect("token create");
    let (out, err) = texts(&o);
    assert!(o.status.success(), "{err}");
    out.trim().to_owned()
}

/// Asserts `o` exited with `code` and one line on stderr holding `want`.
fn exits(o: &Output, code: i32, want: &str) {
    let (out, err) = texts(o);
    assert_eq!(o.status.code(), Some(code), "{out}\n{err}");
    assert!(err.starts_with("smonctl: ") && err.contains(want), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn hosts_status_and_audit_with_tokens_on_a_real_aggregator() {
    let a = agent();
    let g = aggregator(&a);
    let url = format!("http://127.0.0.1:{}/", g.port);
    let admin = make_token(g.dir.path(), "me", "admin");
    let viewer = make_token(g.dir.path(), "ro", "viewer");

    // The table, once the host is up.
    let table = until(&["hosts", "--url", &url, "--token", &viewer], |o| {
        o.lines()
            .any(|l| l.starts_with("lab:n1") && l.contains(" up "))
    });
    let head: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(head, ["ID", "STATUS", "CPU", "MEM", "ADDRESS"], "{table}");
    assert!(table.contains(&format!("127.0.0.1:{}", a.port)), "{table}");

    // SMON_URL and a token file, --json.
    let tf = g.dir.path().join("viewer.token");
    std::fs::write(&tf, format!("{viewer}\n")).expect("token file");
    let o = Command::new(env!("CARGO_BIN_EXE_smonctl"))
        .args(["hosts", "--json", "--token-file"])
        .arg(&tf)
        .env("SMON_URL", &url)
        .env_remove("SMON_TOKEN")
        .output()
        .expect("smonctl");
    let (out, err) = texts(&o);
    assert!(o.status.success(), "{err}");
    let rows: Value = serde_json::from_str(&out).expect("json");
    let ids: Vec<&str> = rows
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(ids.contains(&"lab:n1"), "{rows}");

    // One host by its bare name, with SMON_TOKEN.
    let o = Command::new(env!("CARGO_BIN_EXE_smonctl"))
        .args(["status", "n1", "--url", &url])
        .env("SMON_TOKEN", &viewer)
        .output()
        .expect("smonctl");
    let (out, err) = texts(&o);
    assert!(o.status.success(), "{err}");
    for want in ["id          lab:n1", "status", "cores", "memory"] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
    let o = smonctl(&["status", "n9", "--url", &url, "--token", &viewer]);
    exits(&o, 2, "no host 'n9'");

    // The audit: admins only.
    let o = smonctl(&["audit", "--url", &url, "--token", &admin]);
    let (out, err) = texts(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.starts_with("TIME (UTC)"), "{out}");
    assert!(out.contains("token.create") && out.contains("cli"), "{out}");
    let o = smonctl(&[
        "audit", "--url", &url, "--token", &admin, "--json", "--limit", "1",
    ]);
    let entries: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries}");
    let o = smonctl(&["audit", "--url", &url, "--token", &viewer]);
    exits(&o, 3, "needs an admin token");

    // Auth: a wrong token, and none at all on a dashboard that is not public.
    let o = smonctl(&["hosts", "--url", &url, "--token", "smon_wrong"]);
    exits(&o, 3, "refused the token");
    let o = Command::new(env!("CARGO_BIN_EXE_smonctl"))
        .args(["hosts", "--url", &url])
        .env_remove("SMON_TOKEN")
        .output()
        .expect("smonctl");
    exits(&o, 3, "set SMON_TOKEN or --token");
    let (_, err) = texts(&o);
    assert!(err.contains("smon-aggregator token create"), "{err}");

    // Nothing there: 4. A wrong command line: 2.
    let nobody = format!("http://127.0.0.1:{}/", free_port());
    let o = smonctl(&["hosts", "--url", &nobody, "--token", &viewer]);
    exits(&o, 4, "cannot reach the server");
    let o = smonctl(&["wake", "--url", &url]);
    assert_eq!(o.status.code(), Some(2), "{:?}", texts(&o));
    let o = smonctl(&["hosts", "--url", "not a url", "--token", &viewer]);
    exits(&o, 2, "not a server URL");
    // The token is never echoed.
    let o = smonctl(&["hosts", "--url", &url, "--token", "smon_wrong_secret"]);
    assert!(!texts(&o).1.contains("smon_wrong_secret"));
}

/// `smonctl wake | reboot | shutdown | check` against a real aggregator: the magic packet
/// arrives on a UDP listener standing for the LAN; a failed host makes exit 1 with its reason;
/// an ambiguous bare name exits 2 before anything is sent; the actions are audited as the
/// token's.
#[test]
fn host_actions_print_a_line_per_host_and_exit_1_when_one_failed() {
    let a = agent();
    let lan = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    lan.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("timeout");
    let port = lan.local_addr().expect("addr").port();
    let closed = free_port();
    let clusters = json!([
        {"name": "lab", "hosts": [
            {"name": "n1", "address": format!("127.0.0.1:{}", a.port), "token": crate::support::TOKEN,
             "mac": "52:54:00:00:00:21", "wol": {"broadcast": "127.0.0.1", "port": port},
             "tags": ["gpu"]},
            {"name": "n2", "address": "127.0.0.1:9", "tags": ["gpu"],
             "services": [{"name": "web", "port": closed}]},
        ]},
        {"name": "gpu", "hosts": [{"name": "n2", "address": "127.0.0.1:9"}]},
    ]);
    let g = crate::support::aggregator_of(&clusters.to_string(), "");
    let url = format!("http://127.0.0.1:{}/", g.port);
    // The token file is made at the aggregator's first start, with its database.
    let tok = until_token(g.dir.path());

    let o = smonctl(&["wake", "n1", "--url", &url, "--token", &tok]);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert_eq!(
        out,
        format!("lab:n1  ok      magic packet for 52:54:00:00:00:21 sent to 127.0.0.1:{port}\n")
    );
    let mut buf = [0u8; 200];
    let (n, _) = lan.recv_from(&mut buf).expect("the magic packet");
    assert_eq!(n, 102);
    assert_eq!(&buf[6..12], &[0x52, 0x54, 0, 0, 0, 0x21]);

    let o = smonctl(&["reboot", "lab:n1", "gpu:n2", "--url", &url, "--token", &tok]);
    let (out, err) = texts(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("lab:n1  FAILED  lab:n1 has no control_token")
            && out.contains("gpu:n2  FAILED"),
        "{out}"
    );

    // An ambiguous name: nothing is sent.
    let o = smonctl(&["shutdown", "n2", "--url", &url, "--token", &tok]);
    exits(&o, 2, "lab:n2, gpu:n2");

    // A check by tag: lab:n2's service is down, so exit 1; the JSON is the server's answer.
    let o = smonctl(&[
        "check", "--tag", "gpu", "--json", "--url", &url, "--token", &tok,
    ]);
    let answer: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(o.status.code(), Some(1), "{answer}");
    assert_eq!(answer["action"], "check");
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{answer}");
    assert_eq!(results[1]["host"], "lab:n2");
    assert!(
        results[1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("web down")),
        "{answer}"
    );

    // Audited as the token's.
    let o = smonctl(&["audit", "--json", "--url", &url, "--token", &tok]);
    let log: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(
        log.as_array().is_some_and(|l| l
            .iter()
            .any(|e| e["action"] == "wake" && e["actor"] == "token:ops")),
        "{log}"
    );
    let o = smonctl(&["audit", "--url", &url, "--token", &tok]);
    assert!(texts(&o).0.contains("reboot"), "{:?}", texts(&o));
}

/// An admin token for the aggregator in `dir`, once its database exists.
fn until_token(dir: &std::path::Path) -> String {
    let started = std::time::Instant::now();
    loop {
        let o = Command::new(bin("smon-aggregator"))
            .args([
                "token", "create", "--name", "ops", "--role", "admin", "--config",
            ])
            .arg(dir.join("config.json"))
            .output()
            .expect("token create");
        if o.status.success() {
            return texts(&o).0.trim().to_owned();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "token create: {:?}",
            texts(&o)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
