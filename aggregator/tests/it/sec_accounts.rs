//! Accounts (issue 16 item 13, issue 18 items 8 and 9), over real sockets with the typed
//! client: one's own password, the admin's user management and its limits (the last admin,
//! users of the config), sessions ended by a new password, the audit trail, the first-start
//! password file; and the Accounts page in a real browser.

use std::path::Path;
use std::process::Command;

use smon_api::Client;
use smon_api::auth::Role;

use crate::sec_login::Server;
use crate::support::{ADMIN_PASSWORD, VIEWER_PASSWORD};

const CONFIG: &str = r#"{"monitor":{"mode":"app","poll_interval_ms":500}}"#;

async fn client(base: &str, user: &str, pw: &str) -> Client {
    let c = Client::new(base).expect("client");
    c.login(user, pw).await.expect("login");
    c
}

fn refused(e: &smon_api::client::ClientError) -> (u16, String) {
    match e {
        smon_api::client::ClientError::Refused { status, reason, .. } => (*status, reason.clone()),
        other => panic!("not a refusal: {other}"),
    }
}

/// The audit records of the server of `CONFIG` in `dir`: storage is on, so they are in its
/// database (readable by its owner only), oldest first.
fn audit_lines(dir: &Path) -> Vec<serde_json::Value> {
    use smon_web::security::audit::{AuditLog, AuditQuery};
    let settings =
        smon_aggregator::config::load_str(CONFIG, "test.json", dir).expect("valid config");
    let p = settings.storage.expect("storage on").db_path();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p)
            .expect("database")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        !dir.join("smon-users.audit.jsonl").exists(),
        "with storage on, the audit is not in the file"
    );
    let db = smon_aggregator::access::Access::open(&p).expect("database");
    let q = AuditQuery {
        limit: 1000,
        ..AuditQuery::default()
    };
    let mut all: Vec<serde_json::Value> = db
        .query(&q)
        .expect("audit")
        .iter()
        .map(|e| serde_json::to_value(&e.event).expect("json"))
        .collect();
    all.reverse();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_users_and_everyone_their_own_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(dir.path(), CONFIG).await;
    let admin = client(&srv.base, "admin", ADMIN_PASSWORD).await;
    let viewer = client(&srv.base, "viewer", VIEWER_PASSWORD).await;

    // Viewers cannot manage users.
    let (s, _) = refused(
        &viewer
            .add_user("x1", Role::Viewer, "password-1")
            .await
            .expect_err("403"),
    );
    assert_eq!(s, 403);

    // Add, with checks.
    let e = admin
        .add_user("carol", Role::Viewer, "carol-pw-1")
        .await
        .expect("add");
    assert_eq!(
        (e.name.as_str(), e.role, e.from_config),
        ("carol", Role::Viewer, false)
    );
    let (s, why) = refused(
        &admin
            .add_user("carol", Role::Viewer, "carol-pw-1")
            .await
            .expect_err("dup"),
    );
    assert_eq!((s, why.contains("exists")), (409, true), "{why}");
    let (s, why) = refused(
        &admin
            .add_user("a b", Role::Viewer, "password-1")
            .await
            .expect_err("name"),
    );
    assert_eq!((s, why.contains("name")), (400, true), "{why}");
    let (s, why) = refused(
        &admin
            .add_user("dave", Role::Viewer, "short")
            .await
            .expect_err("pw"),
    );
    assert_eq!((s, why.contains("8 characters")), (400, true), "{why}");
    let names: Vec<String> = admin
        .users()
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["admin", "carol", "viewer"]);
    let carol = client(&srv.base, "carol", "carol-pw-1").await;
    assert_eq!(carol.me().await.expect("me").role, Role::Viewer);

    // Roles: carol becomes admin; her session (with the old role) ends.
    admin.set_role("carol", Role::Admin).await.expect("promote");
    assert!(!carol.me().await.expect("me").authenticated, "ended");
    let carol = client(&srv.base, "carol", "carol-pw-1").await;
    assert_eq!(carol.me().await.expect("me").role, Role::Admin);

    // The last admin can be neither removed nor demoted.
    carol.remove_user("admin").await.expect("remove admin");
    let (s, why) = refused(
        &carol
            .set_role("carol", Role::Viewer)
            .await
            .expect_err("last"),
    );
    assert_eq!((s, why.contains("last admin")), (409, true), "{why}");
    let (s, _) = refused(&carol.remove_user("carol").await.expect_err("last"));
    assert_eq!(s, 409);
    let (s, _) = refused(&carol.remove_user("nobody").await.expect_err("404"));
    assert_eq!(s, 404);
    // The removed admin's session ended at once.
    assert!(!admin.me().await.expect("me").authenticated, "removed");

    // A reset ends the user's sessions; the new password works, the old one no longer.
    carol
        .reset_password("viewer", "viewer-new-pw")
        .await
        .expect("reset");
    assert!(!viewer.me().await.expect("me").authenticated, "ended");
    assert!(
        Client::new(&srv.base)
            .expect("c")
            .login("viewer", VIEWER_PASSWORD)
            .await
            .is_err()
    );
    let viewer = client(&srv.base, "viewer", "viewer-new-pw").await;

    // One's own password: the current one is needed; this session stays, others end.
    let other = client(&srv.base, "viewer", "viewer-new-pw").await;
    let (s, why) = refused(
        &viewer
            .change_password("wrong-current", "viewer-pw-3")
            .await
            .expect_err("403"),
    );
    assert_eq!((s, why.contains("current")), (403, true), "{why}");
    viewer
        .change_password("viewer-new-pw", "viewer-pw-3")
        .await
        .expect("change");
    assert!(viewer.me().await.is_ok(), "the changing session stays");
    assert!(!other.me().await.expect("me").authenticated, "ended");
    client(&srv.base, "viewer", "viewer-pw-3").await;

    // The users file holds the changes (hashes only) and survives a restart.
    srv.shutdown().await;
    let file = std::fs::read_to_string(dir.path().join("smon-users.json")).expect("users");
    assert!(
        file.contains("carol")
            && !file.contains("\"name\": \"admin\"")
            && !file.contains("viewer-pw-3")
    );
    let srv = Server::start(dir.path(), CONFIG).await;
    client(&srv.base, "viewer", "viewer-pw-3").await;
    client(&srv.base, "carol", "carol-pw-1").await;
    srv.shutdown().await;

    // Every change, done or refused, is in the audit log, with who, what, whom and from where.
    let audit = audit_lines(dir.path());
    let has = |action: &str, target: &str, outcome: &str| {
        audit.iter().any(|e| {
            e["action"] == action
                && e["target"] == target
                && e["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(outcome))
        })
    };
    assert!(has("add_user", "carol", "ok"));
    assert!(has("add_user", "carol", "user 'carol' exists"));
    assert!(has("set_role", "carol", "ok"));
    assert!(has("remove_user", "admin", "ok"));
    assert!(has("set_role", "carol", "user 'carol' is the last admin"));
    assert!(has("reset_password", "viewer", "ok"));
    assert!(has("change_own_password", "viewer", "ok"));
    assert!(
        audit
            .iter()
            .all(|e| e["client"] == "127.0.0.1" && e["at_ms"].as_u64().is_some())
    );
    let text = serde_json::Value::from(audit).to_string();
    assert!(
        !text.contains("carol-pw-1") && !text.contains("argon2"),
        "no secrets audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_the_config_are_listed_but_not_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = smon_web::security::users::hash_password("ops-password-1").expect("hash");
    let config = serde_json::json!({
        "server": {"auth": {"users": [{"name": "ops", "password_hash": hash, "role": "admin"}]}},
        "monitor": {"mode": "app", "poll_interval_ms": 500},
    })
    .to_string();
    let srv = Server::start(dir.path(), &config).await;
    let admin = client(&srv.base, "admin", ADMIN_PASSWORD).await;
    let list = admin.users().await.expect("list");
    let ops = list.iter().find(|u| u.name == "ops").expect("ops listed");
    assert!(ops.from_config && ops.role == Role::Admin);
    for e in [
        admin.reset_password("ops", "new-password-1").await,
        admin.remove_user("ops").await,
        admin.set_role("ops", Role::Viewer).await,
    ] {
        let (s, why) = refused(&e.expect_err("from the config"));
        assert_eq!((s, why.contains("server.auth.users")), (409, true), "{why}");
    }
    let ops = client(&srv.base, "ops", "ops-password-1").await;
    let (s, why) = refused(
        &ops.change_password("ops-password-1", "other-pass-1")
            .await
            .expect_err("config"),
    );
    assert_eq!((s, why.contains("config")), (409, true), "{why}");
    // With an admin in the config, the file's last admin may go.
    ops.remove_user("admin").await.expect("not the last admin");
    srv.shutdown().await;
}

#[test]
fn the_first_start_password_file_goes_once_the_password_is_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::support::free_port("127.0.0.1");
    // No users: the first start makes `admin`. stderr is a file here, not a terminal.
    let mut child = spawn_binary_without_users(dir.path(), port);
    let pw_file = dir.path().join("smon-users.initial-password");
    let started = std::time::Instant::now();
    while !pw_file.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no password file"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let text = std::fs::read_to_string(&pw_file).expect("the password file");
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a password line")
        .to_owned();
    let log = std::fs::read_to_string(dir.path().join("err.log")).expect("log");
    assert!(
        log.contains("smon-users.initial-password") && !log.contains(&password),
        "{log}"
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let base = format!("http://127.0.0.1:{port}");
        let admin = client(&base, "admin", &password).await;
        admin
            .change_password(&password, "a-new-admin-password")
            .await
            .expect("change");
    });
    assert!(!pw_file.exists(), "the password file outlived the change");
    let _ = child.kill();
    let _ = child.wait();
}

/// The aggregator binary on `port` in `dir` with no users (a first start), stderr (its log)
/// into `dir/err.log`; waits until it listens.
fn spawn_binary_without_users(dir: &Path, port: u16) -> std::process::Child {
    let cfg = dir.join("config_app.json");
    let config = serde_json::json!({
        "server": {"host": "127.0.0.1", "port": port},
        "monitor": {"mode": "app", "poll_interval_ms": 1000},
    });
    std::fs::write(&cfg, config.to_string()).expect("config");
    let err = std::fs::File::create(dir.join("err.log")).expect("log file");
    let child = crate::support::aggregator(&cfg)
        .env_remove("RUST_LOG")
        .stderr(err)
        .spawn()
        .expect("aggregator");
    crate::support::wait_for_port(port);
    child
}

#[test]
fn check_config_warns_about_secret_files_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("n1.token");
    std::fs::write(&token, "aggregator-test-token-0123456789").expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    crate::support::write_users(dir.path(), "smon-users.json");
    std::fs::set_permissions(
        dir.path().join("smon-users.json"),
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    let cfg = dir.path().join("config_app.json");
    let config = serde_json::json!({
        "monitor": {"mode": "app", "include_self": false, "clusters": [
            {"name": "lab", "hosts": [{"name": "n1", "address": "127.0.0.1:1", "token_file": "n1.token"}]}
        ]},
    });
    std::fs::write(&cfg, config.to_string()).expect("config");
    let check = |cfg: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_smon-aggregator"))
            .args([
                "--check-config".as_ref(),
                "--config".as_ref(),
                cfg.as_os_str(),
            ])
            .output()
            .expect("aggregator");
        assert!(out.status.success(), "a warning, not a refusal");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = check(&cfg);
    assert!(
        err.contains("smon-users.json: mode 0640 lets group read")
            && err.contains("n1.token: mode 0644 lets group and others read")
            && err.contains("chmod 600"),
        "{err}"
    );
    for f in [&token, &dir.path().join("smon-users.json")] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let err = check(&cfg);
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn the_accounts_page_in_a_browser() {
    let _turn = crate::browser::ONE_BROWSER
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let srv = rt.block_on(Server::start(dir.path(), CONFIG));
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/ui");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/browser_accounts.mjs");
    let out = Command::new("node")
        .arg(&script)
        .args([
            srv.base.as_str(),
            ADMIN_PASSWORD,
            "carol-password-1",
            "admin-new-password-1",
        ])
        .env("SMON_UI_DIR", &ui)
        .output()
        .expect("node is installed");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("ok"),
        "browser_accounts.mjs failed:\n--- stdout\n{said}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rt.block_on(async {
        // What the browser did holds on the server.
        client(&srv.base, "admin", "admin-new-password-1").await;
        assert!(
            Client::new(&srv.base)
                .expect("c")
                .login("admin", ADMIN_PASSWORD)
                .await
                .is_err()
        );
        client(&srv.base, "carol", "carol-password-1").await;
        srv.shutdown().await;
    });
    let audit = audit_lines(dir.path());
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "add_user" && e["target"] == "carol")
    );
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "change_own_password" && e["outcome"] == "ok")
    );
}
