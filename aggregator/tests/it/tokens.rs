//! API tokens and the audit log (issue 14) on the real binary: `smon-aggregator token
//! create/list/revoke` against a running aggregator (listening on a non-loopback address,
//! users configured), bearer requests with no session, CSRF token or Origin, the roles, wrong
//! and revoked tokens, a burst of wrong tokens, and the audit rows served by
//! `GET /api/v1/audit` across a restart.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Binary, free_port, write_users};

/// `smon-aggregator token ARGS --config cfg`: (exit code, stdout, stderr).
fn token_cli(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smon-aggregator"))
        .arg("token")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .expect("smon-aggregator token");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn wait_ready(b: &Binary) {
    let start = Instant::now();
    while b.get("/healthz").await.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the aggregator did not start; log:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `method path` with `Authorization: Bearer token` (if any), no cookie and no Origin:
/// (status, JSON body).
async fn call(
    b: &Binary,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new().request(method, format!("{}{path}", b.base()));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await.expect("request");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

fn setup(dir: &Path, port: u16) -> std::path::PathBuf {
    write_users(dir, "smon-users.json");
    let cfg = dir.join("config_app.json");
    let config = json!({
        // Not loopback: users are needed, and tokens must work all the same.
        "server": {"host": "0.0.0.0", "port": port,
            "auth": {"max_login_failures": 5, "lockout_s": 900}},
        // One host, never up: the REST routes have something to list.
        "monitor": {"mode": "app", "poll_interval_ms": 1000, "include_self": false,
            "clusters": [{"name": "lab", "hosts": [
                {"name": "n1", "address": "127.0.0.1:1", "token": crate::support::TOKEN}]}]},
        "storage": {"dir": dir.join("data")},
    });
    std::fs::write(&cfg, config.to_string()).expect("config");
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_made_on_the_command_line_work_at_once_by_role_and_are_audited() {
    use reqwest::Method;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port("127.0.0.1");
    let cfg = setup(dir.path(), port);
    let log = dir.path().join("aggregator.log");

    // No database yet: the command says to start the aggregator first.
    let (code, _, err) = token_cli(&cfg, &["create", "--name", "ci", "--role", "admin"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("start the aggregator once"), "{err}");

    let mut b = Binary::spawn(&cfg, port, log.clone());
    wait_ready(&b).await;

    // Made while it runs: no restart.
    let (code, admin, err) = token_cli(&cfg, &["create", "--name", "ci", "--role", "admin"]);
    assert_eq!(code, 0, "{err}");
    let admin = admin.trim().to_owned();
    assert!(admin.starts_with("smon_") && admin.len() > 60, "{admin}");
    let (code, viewer, err) = token_cli(&cfg, &["create", "--name", "ro", "--role", "viewer"]);
    assert_eq!(code, 0, "{err}");
    let viewer = viewer.trim().to_owned();
    let (code, _, err) = token_cli(&cfg, &["create", "--name", "ci", "--role", "viewer"]);
    assert_eq!(code, 1, "a second 'ci': {err}");
    assert!(err.contains("exists"), "{err}");
    let (code, _, err) = token_cli(&cfg, &["create", "--name", "x", "--role", "root"]);
    assert_eq!(code, 2, "clap refuses the role: {err}");

    // A viewer token reads, and is refused what needs an admin.
    let (st, me) = call(&b, Method::GET, "/api/v1/me", Some(&viewer), None).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["user"], "token:ro", "{me}");
    assert_eq!(me["role"], "viewer", "{me}");
    let (st, hosts) = call(&b, Method::GET, "/api/v1/hosts", Some(&viewer), None).await;
    assert_eq!(st, 200, "{hosts}");
    let bob = json!({"name": "bob", "role": "viewer", "password": "bob-password-123"});
    let (st, e) = call(
        &b,
        Method::POST,
        "/api/v1/admin/users",
        Some(&viewer),
        Some(bob.clone()),
    )
    .await;
    assert_eq!(st, 403, "{e}");
    // Without a token, the same request is refused before that (no Origin, no session).
    let (st, _) = call(
        &b,
        Method::POST,
        "/api/v1/admin/users",
        None,
        Some(bob.clone()),
    )
    .await;
    assert_eq!(
        st, 403,
        "the CSRF check refuses a request with neither Origin nor token"
    );

    // An admin token does what an admin session does, with no Origin header.
    let (st, e) = call(
        &b,
        Method::POST,
        "/api/v1/admin/users",
        Some(&admin),
        Some(bob),
    )
    .await;
    assert_eq!(st, 201, "{e}");
    let (st, e) = call(
        &b,
        Method::DELETE,
        "/api/v1/admin/users/bob",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(st, 204, "{e}");

    // The audit: the account changes by the token, and the tokens made on the command line.
    let (st, audit) = call(&b, Method::GET, "/api/v1/audit", Some(&admin), None).await;
    assert_eq!(st, 200, "{audit}");
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["actor"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions[..4],
        [
            ("remove_user", "token:ci"),
            ("add_user", "token:ci"),
            ("token.create", "cli"),
            ("token.create", "cli"),
        ],
        "{audit}"
    );
    assert_eq!(audit[1]["target"], "bob");
    assert_eq!(audit[1]["client"], "127.0.0.1");
    let (st, only) = call(
        &b,
        Method::GET,
        "/api/v1/audit?action=add_user&limit=5",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(st, 200, "{only}");
    assert_eq!(only.as_array().map(Vec::len), Some(1), "{only}");
    let (st, _) = call(&b, Method::GET, "/api/v1/audit", Some(&viewer), None).await;
    assert_eq!(st, 403, "viewers do not read the audit");
    let (st, _) = call(&b, Method::GET, "/api/v1/audit", None, None).await;
    assert_eq!(st, 401, "nor does anybody without a login");
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "before=-1",
        "hots=lab:n1",
    ] {
        let path = format!("/api/v1/audit?{bad}");
        let (st, e) = call(&b, Method::GET, &path, Some(&admin), None).await;
        assert_eq!(st, 400, "{bad}: {e}");
        assert!(e["error"].is_string(), "{bad}: {e}");
    }
    let (st, none) = call(
        &b,
        Method::GET,
        "/api/v1/audit?host=lab:n1",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!((st, none), (200, json!([])), "no host action was audited");

    // The list shows names and roles, never a token.
    let (code, list, err) = token_cli(&cfg, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        list.contains("ci") && list.contains("ro") && list.contains("viewer"),
        "{list}"
    );
    assert!(!list.contains(&admin) && !list.contains(&viewer), "{list}");
    let (code, list, _) = token_cli(&cfg, &["list", "--json"]);
    assert_eq!(code, 0);
    let rows: Value = serde_json::from_str(&list).expect("json list");
    assert_eq!(rows[0]["name"], "ci");
    assert!(
        rows[0]["last_used_ms"].is_u64(),
        "its use was noted: {rows}"
    );

    // Revoked on the command line: refused from the next request.
    let (code, _, err) = token_cli(&cfg, &["revoke", "--name", "ro"]);
    assert_eq!(code, 0, "{err}");
    let (st, e) = call(&b, Method::GET, "/api/v1/hosts", Some(&viewer), None).await;
    assert_eq!(st, 401, "{e}");
    assert!(
        e["error"].as_str().is_some_and(|s| s.contains("token")),
        "{e}"
    );
    let (code, _, err) = token_cli(&cfg, &["revoke", "--name", "ro"]);
    assert_eq!(code, 1, "{err}");

    // A wrong token: 401 with a reason; a burst of them: 429, and the server goes on.
    // A bearer token that is not smon's (an OAuth proxy's) is left to the session.
    let (st, e) = call(
        &b,
        Method::GET,
        "/api/v1/hosts",
        Some("eyJhbGciOi.x.y"),
        None,
    )
    .await;
    assert_eq!(st, 401, "{e}");
    assert_eq!(e["error"], "login required", "{e}");
    let wrong = "smon_0000000000000000000000000000000000000000000000000000000000000000";
    let (st, e) = call(&b, Method::GET, "/api/v1/hosts", Some(wrong), None).await;
    assert_eq!(st, 401, "{e}");
    let mut statuses = Vec::new();
    for i in 0..30 {
        let t = format!("smon_wrong{i}");
        statuses.push(
            call(&b, Method::GET, "/api/v1/hosts", Some(&t), None)
                .await
                .0,
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [401, 429].contains(s)),
        "{statuses:?}"
    );
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/hosts", b.base()))
        .bearer_auth("smon_wrong_again")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 429);
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok());
    assert!(
        retry
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1),
        "{retry:?}"
    );
    // A valid token still works from that address (the throttle counts wrong tokens only).
    let (st, _) = call(&b, Method::GET, "/api/v1/hosts", Some(&admin), None).await;
    assert_eq!(st, 200);

    // No token is ever logged.
    let text = b.log();
    assert!(
        !text.contains(&admin) && !text.contains(&viewer) && !text.contains("smon_wrong"),
        "{text}"
    );
    assert!(
        text.contains("API token"),
        "wrong tokens are logged, not their value: {text}"
    );

    // The audit survives a restart.
    b.signal("-TERM");
    let b = Binary::spawn(&cfg, port, log);
    wait_ready(&b).await;
    let (st, audit) = call(&b, Method::GET, "/api/v1/audit", Some(&admin), None).await;
    assert_eq!(st, 200, "{audit}");
    let all = audit.to_string();
    assert!(
        all.contains("\"add_user\"") && all.contains("token.revoke"),
        "{audit}"
    );
}
