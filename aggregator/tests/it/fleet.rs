//! Three real agents behind one aggregator: all appear; a killed agent shows `down` within 5 s
//! while the others keep updating; restarted, it is `up` again. Wrong tokens and unreachable
//! addresses mark only their own host down, with a reason.

use std::time::{Duration, Instant};

use crate::support::{Agent, Aggregator, TOKEN};

fn config(agents: &[&Agent], extra_hosts: &str) -> String {
    let hosts: Vec<String> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| {
            format!(
                r#"{{"name":"n{}","address":"{}","token":"{TOKEN}","tags":["t{}"]}}"#,
                i + 1,
                a.addr,
                i + 1
            )
        })
        .collect();
    format!(
        r#"{{"monitor":{{"mode":"app","poll_interval_ms":200,"include_self":false,"clusters":[{{"name":"lab","hosts":[{}{}]}}]}}}}"#,
        hosts.join(","),
        extra_hosts
    )
}

fn up(r: &serde_json::Value) -> bool {
    r["status"] == "up"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_one_dies_and_comes_back() {
    let a1 = Agent::start("127.0.0.2");
    let mut a2 = Agent::start("127.0.0.3");
    let a3 = Agent::start("127.0.0.4");
    let bad_token = format!(
        r#","address":"{}","token":"wrong-token-0123456789abcdef"}}"#,
        a1.addr
    );
    let extra = format!(
        r#",{{"name":"badtoken"{bad_token},{{"name":"nobody-home","address":"127.0.0.5:{}"}}"#,
        crate::support::free_port("127.0.0.5")
    );
    let agg = Aggregator::start(&config(&[&a1, &a2, &a3], &extra)).await;

    for id in ["lab:n1", "lab:n2", "lab:n3"] {
        let row = agg.wait_row(id, Duration::from_secs(10), "up", up).await;
        assert_eq!(row["gpus"].as_array().map(Vec::len), Some(1), "{row}");
        assert!(row["processes"].as_u64().is_some_and(|n| n > 0));
        assert!(row["os"].is_string() && row["cpu_cores"].as_u64().is_some());
    }
    let (_, clusters) = agg.get("/api/v1/clusters").await;
    assert_eq!(clusters[0]["name"], "lab");
    assert_eq!(clusters[0]["hosts"], 5);

    // Hosts that cannot be polled are down with the reason, and do not disturb the others.
    // Its first tries may find the agent not yet listening (refused); then the token.
    let bt = agg
        .wait_row(
            "lab:badtoken",
            Duration::from_secs(10),
            "down for its token",
            |r| {
                r["status"] == "down"
                    && r["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("check the token"))
            },
        )
        .await;
    assert_eq!(
        bt["last_error"],
        "the agent refused the token (wrong bearer token): check the token (or token_file) of this host against the agent's",
        "{bt}"
    );
    let nh = agg
        .wait_row("lab:nobody-home", Duration::from_secs(10), "down", |r| {
            r["status"] == "down"
        })
        .await;
    assert!(
        nh["last_error"].as_str().is_some_and(|e| e.starts_with("cannot connect to 127.0.0.5:")
            && e.ends_with(": connection refused. Is the agent running, and is this its gRPC port (monitor.grpc_listen)?")),
        "{nh}"
    );

    // Kill n2: down within 5 s; n1 and n3 keep updating meanwhile.
    let before = [
        agg.row("lab:n1").await["last_seen_ms"].as_u64(),
        agg.row("lab:n3").await["last_seen_ms"].as_u64(),
    ];
    let killed_at = Instant::now();
    a2.kill();
    let down = agg
        .wait_row("lab:n2", Duration::from_secs(5), "down", |r| {
            r["status"] == "down"
        })
        .await;
    assert!(killed_at.elapsed() < Duration::from_secs(5));
    // The agent went away mid-stream; a moment later its port refuses connections.
    let said = down["last_error"].as_str().unwrap_or_default();
    assert!(
        said.starts_with("the agent closed the connection (restarting?)")
            || said.contains("connection refused. Is the agent running"),
        "{down}"
    );
    assert!(
        down["cpu_percent"].is_number(),
        "last known metrics are kept: {down}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    for (id, b) in ["lab:n1", "lab:n3"].iter().zip(before) {
        let r = agg.row(id).await;
        assert!(up(&r), "{r}");
        assert!(r["last_seen_ms"].as_u64() > b, "{id} stopped updating: {r}");
    }

    // Restart n2: up again.
    a2.restart();
    let back = agg
        .wait_row("lab:n2", Duration::from_secs(15), "up again", up)
        .await;
    assert!(back["last_error"].is_null(), "{back}");

    // Events: the record scripts read.
    let (code, ev) = agg.get("/api/v1/hosts/lab:n1/events").await;
    assert_eq!(code, 200);
    let last = ev
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("events");
    for k in [
        "time",
        "cpu_percent",
        "memory_percent",
        "disk_percent",
        "num_pids",
    ] {
        assert!(last[k].is_number(), "{k} in {last}");
    }
    let (code, body) = agg.get("/api/v1/hosts/lab:nope").await;
    assert_eq!(code, 404);
    assert_eq!(body["error"], "unknown host 'lab:nope'");
    let (code, one) = agg.get("/api/v1/hosts/lab:n3").await;
    assert_eq!(code, 200);
    assert_eq!(one["info"]["gpu_source"], "fake");
    assert!(
        one["detail"]["processes"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "summary only while nobody watches"
    );
    let (code, _) = agg.get("/api/v1/nope").await;
    assert_eq!(code, 404);

    agg.shutdown().await;
}

#[tokio::test]
async fn readyz_waits_for_every_host_and_healthz_answers() {
    let a1 = Agent::start("127.0.0.6");
    let agg = Aggregator::start(&config(&[&a1], "")).await;
    let r = reqwest::get(format!("{}/healthz", agg.base))
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    agg.wait_row("lab:n1", Duration::from_secs(10), "up", up)
        .await;
    let r = reqwest::get(format!("{}/readyz", agg.base))
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    agg.shutdown().await;
}

#[tokio::test]
async fn serves_under_a_path_prefix() {
    let agg = Aggregator::start(
        r#"{"server":{"base_path":"/smon"},"monitor":{"mode":"app","poll_interval_ms":200}}"#,
    )
    .await;
    assert!(agg.base.ends_with("/smon"));
    let (code, hosts) = agg.get("/api/v1/hosts").await;
    assert_eq!(code, 200);
    assert_eq!(hosts.as_array().map(Vec::len), Some(1), "the own host");
    let page = agg
        .client
        .get(format!("{}/", agg.base))
        .send()
        .await
        .expect("index");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("body").contains("<"));
    let root = agg.base.trim_end_matches("/smon");
    let outside = reqwest::get(format!("{root}/api/v1/hosts"))
        .await
        .expect("request");
    assert_eq!(outside.status(), 404, "nothing outside the prefix");
    let handshake = agg
        .client
        .get(format!("{}/socket.io/?EIO=4&transport=polling", agg.base))
        .send()
        .await
        .expect("socket.io");
    assert_eq!(handshake.status(), 200);
    assert!(handshake.text().await.expect("body").contains("\"sid\""));
    agg.shutdown().await;
}

/// A GPU driver that loads after the agent started: the agent retries, its `HostInfo` changes,
/// and the aggregator, seeing the samples' `info_unix_ms` move, reads the facts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpus_that_appear_after_start_reach_the_host_facts() {
    let a = Agent::start_with("127.0.0.1", r#","fake_gpu_faults":["late_driver:5"]"#);
    let agg = Aggregator::start(&config(&[&a], "")).await;
    let first = agg
        .wait_row("lab:n1", Duration::from_secs(10), "up", up)
        .await;
    assert!(
        first["gpus"].as_array().is_none_or(|g| g.is_empty()),
        "no GPU before the driver loads: {first}"
    );
    let (_, early) = agg.get("/api/v1/hosts/lab:n1").await;
    assert!(
        early["info"]["gpu_status"]
            .as_str()
            .is_some_and(|s| s.contains("DriverNotLoaded")),
        "{}",
        early["info"]
    );
    // Retries after 0.2, 0.4, 0.8, 1.6 and 3.2 s.
    agg.wait_row("lab:n1", Duration::from_secs(20), "up with its GPU", |r| {
        up(r) && r["gpus"].as_array().is_some_and(|g| g.len() == 1)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, host) = agg.get("/api/v1/hosts/lab:n1").await;
        if host["info"]["gpu_names"]
            .as_array()
            .is_some_and(|n| n.len() == 1)
        {
            assert_eq!(host["info"]["gpu_status"], "", "{}", host["info"]);
            assert_eq!(host["info"]["gpu_source"], "fake");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the host facts never named the GPU: {}",
            host["info"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agg.shutdown().await;
}
