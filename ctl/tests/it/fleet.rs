//! `smonctl top --server`: the fleet list and one host's detail from a real aggregator that
//! polls a real agent, logged in; and the sentences for a wrong password or a missing login.

use crate::support::{agent, aggregator, aggregator_with, fails_with, free_port, smonctl, until};

#[test]
fn once_lists_the_fleet_and_opens_a_host_through_the_rest_api() {
    let a = agent();
    let g = aggregator(&a);
    let url = format!("http://127.0.0.1:{}/", g.port);
    let pw = g.dir.path().join("password");
    let pw = pw.to_str().expect("utf-8");
    let login = [
        "top",
        "--server",
        &url,
        "--user",
        "admin",
        "--password-file",
        pw,
        "--once",
        "--width",
        "160",
    ];
    let list = until(&login, |o| {
        o.lines()
            .any(|l| l.contains("lab:n1") && l.contains(" up "))
    });
    for want in [
        "smon fleet",
        "HOST",
        "STATUS",
        "CPU",
        "MEM",
        "DISK",
        "NET RX",
        "GPUS",
        "> ",
        "1x ",
        &url,
    ] {
        assert!(list.contains(want), "no {want:?} in\n{list}");
    }
    assert!(list.contains("GiB"), "{list}");
    // One host's detail: the same view as --agent, from GET /api/v1/hosts/lab:n1.
    let detail = until(&[&login[..], &["--host", "lab:n1"]].concat(), |o| {
        o.contains("lab:n1") && o.contains("CPU  [")
    });
    for want in ["MEM  [", "GPUs", "Processes"] {
        assert!(detail.contains(want), "no {want:?} in\n{detail}");
    }
    let o = smonctl(&[&login[..], &["--host", "lab:nope"]].concat());
    fails_with(&o, "the server no longer knows the host lab:nope");
}

#[test]
fn a_wrong_password_no_login_and_no_server_are_one_sentence_each() {
    let a = agent();
    let g = aggregator(&a);
    let url = format!("http://127.0.0.1:{}/", g.port);
    let wrong = g.dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").expect("file");
    let o = smonctl(&[
        "top",
        "--server",
        &url,
        "--user",
        "admin",
        "--password-file",
        wrong.to_str().expect("utf-8"),
        "--once",
    ]);
    fails_with(
        &o,
        &format!("the server at {url} refused the login of 'admin'"),
    );
    let o = smonctl(&["top", "--server", &url, "--once"]);
    fails_with(
        &o,
        "needs a login (it is not a public read-only dashboard): pass --user and --password-file",
    );
    let closed = format!("http://127.0.0.1:{}/", free_port());
    let o = smonctl(&["top", "--server", &closed, "--once"]);
    fails_with(
        &o,
        &format!("cannot reach the server at {closed}: connection refused"),
    );
    // The agent's gRPC port is not a dashboard.
    let o = smonctl(&[
        "top",
        "--server",
        &format!("http://127.0.0.1:{}/", a.port),
        "--once",
    ]);
    let (_, err) = crate::support::texts(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        !err.contains("panicked") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn a_public_read_only_dashboard_needs_no_login() {
    let a = agent();
    let g = aggregator_with(&a, r#","auth":{"public_read_only":true}"#);
    let url = format!("http://127.0.0.1:{}/", g.port);
    let list = until(
        &[
            "top", "--server", &url, "--once", "--width", "160", "--sort", "cpu",
        ],
        |o| {
            o.lines()
                .any(|l| l.contains("lab:n1") && l.contains(" up "))
        },
    );
    assert!(
        list.contains("smon fleet") && list.contains("local:"),
        "{list}"
    );
}
