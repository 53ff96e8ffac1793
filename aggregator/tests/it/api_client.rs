//! The typed REST client (`smon-api`) against a real aggregator polling a real agent: every
//! read route parses into its wire type (the host's latest sample too), refusals carry the
//! server's status and reason, and the session ends at logout.

use std::time::{Duration, Instant};

use smon_api::auth::Role;
use smon_api::wire::Status;
use smon_api::{Client, ClientError};

use crate::support::{ADMIN_PASSWORD, Agent, Aggregator, TOKEN, VIEWER_PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_client_reads_every_route_and_reports_refusals() {
    let agent = Agent::start("127.0.0.21");
    let agg = Aggregator::start(&format!(
        r#"{{"monitor":{{"mode":"app","poll_interval_ms":200,"include_self":false,"clusters":[{{"name":"lab","hosts":[{{"name":"n1","address":"{}","token":"{TOKEN}","tags":["gpu"]}}]}}]}}}}"#,
        agent.addr
    ))
    .await;
    let c = Client::new(&agg.base).expect("client");

    // Before login: 401 with the server's reason.
    let e = c.hosts().await.expect_err("no session yet");
    assert_eq!(e.status(), Some(401), "{e}");
    let e = c.login("admin", "wrong").await.expect_err("wrong password");
    assert!(
        matches!(&e, ClientError::Refused { status: 401, reason, .. } if reason.contains("wrong user name or password")),
        "{e}"
    );

    let who = c.login("admin", ADMIN_PASSWORD).await.expect("login");
    assert_eq!((who.user.as_str(), who.role), ("admin", Role::Admin));
    let me = c.me().await.expect("me");
    assert!(me.authenticated);
    assert_eq!(me.user.as_deref(), Some("admin"));
    assert!(!me.public_read_only);
    let users = c.users().await.expect("users");
    assert!(
        users
            .iter()
            .any(|u| u.name == "viewer" && u.role == Role::Viewer),
        "{users:?}"
    );

    let start = Instant::now();
    let row = loop {
        let hosts = c.hosts().await.expect("hosts");
        assert_eq!(hosts.len(), 1, "{hosts:?}");
        if hosts[0].status == Status::Up && hosts[0].processes.is_some() {
            break hosts[0].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "not up: {hosts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (row.id.as_str(), row.tags.as_slice()),
        ("lab:n1", &["gpu".to_owned()][..])
    );

    let clusters = c.clusters().await.expect("clusters");
    assert_eq!(clusters.len(), 1);
    assert_eq!((clusters[0].name.as_str(), clusters[0].hosts), ("lab", 1));

    // The host page's state: the agent's own messages, read back from JSON.
    let full = c.host("lab:n1").await.expect("host");
    assert_eq!(full.host.id, "lab:n1");
    let info = full.info.expect("facts");
    assert!(
        !info.hostname.is_empty() && info.cpu_logical_cores > 0,
        "{info:?}"
    );
    let snap = full.detail.expect("a sample");
    assert!(
        snap.seq >= 1 && snap.memory.is_some_and(|m| m.total_bytes > 0),
        "{snap:?}"
    );

    let start = Instant::now();
    while c.events("lab:n1").await.expect("events").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "no events");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let e = c.host("lab:nope").await.expect_err("unknown host");
    assert!(
        matches!(&e, ClientError::Refused { status: 404, reason, .. } if reason.contains("unknown host 'lab:nope'")),
        "{e}"
    );

    // A viewer is refused the admin route, with the reason.
    let v = Client::new(&agg.base).expect("client");
    assert_eq!(
        v.login("viewer", VIEWER_PASSWORD)
            .await
            .expect("login")
            .role,
        Role::Viewer
    );
    let e = v.users().await.expect_err("admin only");
    assert_eq!(e.status(), Some(403), "{e}");

    c.logout().await.expect("logout");
    // Logged out: `me` answers (a probe, not an error), saying so.
    let me = c.me().await.expect("me after logout");
    assert!(!me.authenticated, "{me:?}");
    assert_eq!((me.user, me.role), (None, Role::LoggedOut));
    c.clusters()
        .await
        .expect_err("the data needs a session again");
    c.healthz().await.expect("healthz needs no session");
    agg.shutdown().await;
}
