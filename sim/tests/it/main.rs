//! End-to-end tests of `smon-sim`: the binary on real loopback sockets, real tonic clients, and
//! the real aggregator on the config the simulator writes. Each test has a 127.x range of its
//! own, so they run in parallel.

mod support;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use smon_proto::{GetInfoRequest, GetSnapshotRequest, Parts, WatchRequest};
use support::{AggregatorProcess, Sim, TOKEN, client, free_port};

#[tokio::test]
async fn agents_speak_the_contract() {
    let mut sim = Sim::start(
        20,
        Ipv4Addr::new(127, 61, 0, 1),
        &[
            "--interval-ms",
            "200",
            "--seed",
            "7",
            "--token-file",
            "token",
        ],
    );

    // Every agent answers with its own stable identity.
    let mut names = HashSet::new();
    let mut gpu_host = None;
    for i in 0..20 {
        let mut c = client(&sim.addr(i), Some(TOKEN)).await;
        let info = c
            .get_info(GetInfoRequest {})
            .await
            .expect("GetInfo")
            .into_inner();
        assert!(names.insert(info.hostname.clone()), "{}", info.hostname);
        assert!((2..=128).contains(&info.cpu_logical_cores), "{info:?}");
        assert_eq!(info.sample_interval_ms, 200);
        assert!(info.memory_total_bytes > 1 << 30);
        if !info.gpu_names.is_empty() && gpu_host.is_none() {
            assert_eq!(info.gpu_source, "fake");
            assert!(info.capabilities.iter().any(|c| c == "gpus"));
            gpu_host = Some((i, info));
        }
    }
    let (gi, ginfo) = gpu_host.expect("seed 7 gives at least one GPU host among 20");

    let mut c = client(&sim.addr(gi), Some(TOKEN)).await;
    let again = c
        .get_info(GetInfoRequest {})
        .await
        .expect("GetInfo")
        .into_inner();
    assert_eq!(again, ginfo, "GetInfo is stable");

    // Summary: no process list, no per-core use, no GPU processes; the counts are there.
    let sum = c
        .get_snapshot(GetSnapshotRequest { parts: None })
        .await
        .expect("GetSnapshot")
        .into_inner();
    assert!(sum.seq >= 1);
    assert_eq!(sum.hostname, ginfo.hostname);
    assert!(sum.processes.is_empty());
    assert!(sum.process_count >= 20);
    let cpu = sum.cpu.as_ref().expect("cpu");
    assert!(cpu.per_core_percent.is_empty());
    assert_eq!(cpu.logical_cores, ginfo.cpu_logical_cores);
    assert_eq!(sum.gpus.len(), ginfo.gpu_names.len());
    assert!(sum.gpus.iter().all(|g| g.processes.is_empty()));
    assert!((1..=6).contains(&sum.disks.len()));
    assert!(!sum.networks.is_empty());
    assert_eq!(sum.parts, Some(Parts::SUMMARY));

    // Detail: the process list (sorted by CPU), per-core use and the GPU processes.
    let full = c
        .get_snapshot(GetSnapshotRequest {
            parts: Some(Parts::DETAIL),
        })
        .await
        .expect("GetSnapshot detail")
        .into_inner();
    assert_eq!(full.processes.len() as u32, full.process_count);
    assert!(
        full.processes
            .windows(2)
            .all(|w| w[0].cpu_percent >= w[1].cpu_percent)
    );
    assert!(
        full.processes
            .iter()
            .any(|p| p.pid == 1 && p.name == "systemd")
    );
    assert!(full.processes.iter().all(|p| !p.user.is_empty()));
    let cpu = full.cpu.as_ref().expect("cpu");
    assert_eq!(cpu.per_core_percent.len() as u32, ginfo.cpu_logical_cores);
    assert_eq!(full.parts, Some(Parts::DETAIL));

    // Watch: the latest sample at once, then one per interval, and the values move.
    let mut stream = c
        .watch(WatchRequest {
            parts: Some(Parts {
                per_core: true,
                ..Parts::SUMMARY
            }),
            min_interval_ms: 0,
        })
        .await
        .expect("Watch")
        .into_inner();
    let started = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < 6 {
        let s = tokio::time::timeout(Duration::from_secs(2), stream.message())
            .await
            .expect("a sample within 2 s")
            .expect("stream ok")
            .expect("stream open");
        samples.push(s);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    for w in samples.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "one message per sample");
        assert!(w[1].sample_unix_ms > w[0].sample_unix_ms);
        assert!(w[1].processes.is_empty(), "no process list unless asked");
    }
    let cores: HashSet<String> = samples
        .iter()
        .map(|s| format!("{:?}", s.cpu.as_ref().map(|c| &c.per_core_percent)))
        .collect();
    assert!(cores.len() >= 5, "per-core use drifts between samples");
    let rx: Vec<u64> = samples
        .iter()
        .map(|s| s.networks[0].rx_total_bytes)
        .collect();
    assert!(rx.windows(2).all(|w| w[1] >= w[0]), "{rx:?}");
    drop(stream);

    // min_interval_ms thins the stream: about 600 ms between samples of a 200 ms agent.
    let mut slow = c
        .watch(WatchRequest {
            parts: Some(Parts::DETAIL),
            min_interval_ms: 600,
        })
        .await
        .expect("Watch")
        .into_inner();
    let mut times = Vec::new();
    while times.len() < 3 {
        let s = tokio::time::timeout(Duration::from_secs(3), slow.message())
            .await
            .expect("a sample")
            .expect("ok")
            .expect("open");
        assert!(!s.processes.is_empty(), "detail asked");
        times.push(s.sample_unix_ms);
    }
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!((540..=900).contains(&gap), "gap {gap} ms");
    }
    drop(slow);

    // The token is checked on every call.
    for bad in [Some("sim-test-token-0123456789abcdeX"), None] {
        let mut c = client(&sim.addr(3), bad).await;
        let err = c.get_info(GetInfoRequest {}).await.expect_err("refused");
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
        let err = c.watch(WatchRequest::default()).await.expect_err("refused");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    // SIGTERM: a clean exit, promptly, with a stream still open.
    let mut open = client(&sim.addr(5), Some(TOKEN))
        .await
        .watch(WatchRequest::default())
        .await
        .expect("Watch")
        .into_inner();
    open.message().await.expect("ok").expect("first sample");
    let st = sim
        .terminate(Duration::from_secs(5))
        .expect("exits within 5 s");
    assert!(st.success(), "{st:?}");
}

#[tokio::test]
async fn same_seed_same_hosts_and_no_token_when_none_given() {
    let a = Sim::start(3, Ipv4Addr::new(127, 62, 0, 1), &["--seed", "42"]);
    let b = Sim::start(3, Ipv4Addr::new(127, 62, 1, 1), &["--seed", "42"]);
    for i in 0..3 {
        let ia = client(&a.addr(i), None)
            .await
            .get_info(GetInfoRequest {})
            .await
            .expect("no token needed")
            .into_inner();
        let ib = client(&b.addr(i), Some("anything-at-all-goes"))
            .await
            .get_info(GetInfoRequest {})
            .await
            .expect("GetInfo")
            .into_inner();
        assert_eq!(ia.hostname, ib.hostname);
        assert_eq!(ia.cpu_logical_cores, ib.cpu_logical_cores);
        assert_eq!(ia.gpu_names, ib.gpu_names);
    }
}

#[tokio::test]
async fn too_few_files_for_a_listener_each_and_the_agents_share_one() {
    // 40 agents want 144 descriptors for a listener each; 120 leave room for one shared one.
    let sim = Sim::start_under(
        &["prlimit", "--nofile=120:120", "--"],
        40,
        Ipv4Addr::new(127, 64, 0, 1),
        &["--interval-ms", "200"],
    );
    let mut names = HashSet::new();
    for i in [0, 1, 20, 39] {
        let mut c = client(&sim.addr(i), None).await;
        let info = c
            .get_info(GetInfoRequest {})
            .await
            .expect("GetInfo")
            .into_inner();
        assert!(names.insert(info.hostname.clone()), "own host per address");
        let snap = c
            .get_snapshot(GetSnapshotRequest { parts: None })
            .await
            .expect("GetSnapshot")
            .into_inner();
        assert_eq!(snap.hostname, info.hostname);
    }
    // An address past the last agent is nobody's: the connection is closed.
    let outside = tonic::transport::Endpoint::from_shared(format!("http://{}", sim.addr(40)))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    if let Ok(ch) = outside {
        let r = smon_proto::agent_client::AgentClient::new(ch)
            .get_info(GetInfoRequest {})
            .await;
        assert!(r.is_err(), "{r:?}");
    }
}

#[test]
fn too_few_files_at_all_is_explained() {
    let out = Command::new("prlimit")
        .args(["--nofile=50:50", "--", env!("CARGO_BIN_EXE_smon-sim")])
        .args(["--agents", "10", "--first-addr", "127.64.1.1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no ready line");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("10 agents need at least 75 open files")
            && err.contains("RLIMIT_NOFILE is 50"),
        "{err}"
    );
}

#[test]
fn bad_arguments_are_refused_with_every_problem() {
    let out = Command::new(env!("CARGO_BIN_EXE_smon-sim"))
        .args([
            "--agents",
            "0",
            "--first-addr",
            "10.0.0.1",
            "--interval-ms",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty(), "no ready line");
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "--agents: '0'",
        "--first-addr: '10.0.0.1'",
        "--interval-ms: '5'",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
}

#[tokio::test]
async fn the_aggregator_sees_every_host_up() {
    let bin = support::aggregator_bin();
    let sim = Sim::start(
        20,
        Ipv4Addr::new(127, 63, 0, 1),
        &[
            "--interval-ms",
            "200",
            "--hosts-per-cluster",
            "8",
            "--token-file",
            "token",
            "--write-config",
            "aggregator.json",
        ],
    );
    // The written config is valid for the aggregator as it is.
    let written = sim.dir.path().join("aggregator.json");
    let st = Command::new(&bin)
        .args(["--check-config", "--config"])
        .arg(&written)
        .status()
        .expect("check-config");
    assert!(st.success(), "the aggregator refused the written config");
    let text = std::fs::read_to_string(&written).expect("read");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let clusters = v["monitor"]["clusters"].as_array().expect("clusters");
    assert_eq!(clusters.len(), 3, "20 hosts, 8 per cluster");
    assert_eq!(v["monitor"]["include_self"], false);
    assert_eq!(v["monitor"]["poll_interval_ms"], 200);
    assert!(!text.contains(TOKEN), "the token stays in its file");

    // Only the HTTP port changes, to a free one.
    let http_port = free_port(Ipv4Addr::LOCALHOST);
    let mut v = v;
    v["server"]["port"] = http_port.into();
    let cfg = sim.dir.path().join("aggregator-port.json");
    std::fs::write(&cfg, v.to_string()).expect("write");
    let _agg = AggregatorProcess(
        Command::new(&bin)
            .args(["--no-supervise", "--config"])
            .arg(&cfg)
            .current_dir(sim.dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn aggregator"),
    );
    let url = format!("http://127.0.0.1:{http_port}/api/v1/hosts");
    let started = Instant::now();
    let mut last = String::new();
    loop {
        if let Ok(r) = reqwest::get(&url).await {
            let code = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if let Some(rows) = body.as_array() {
                let up = rows.iter().filter(|h| h["status"] == "up").count();
                if rows.len() == 20 && up == 20 {
                    let ids: HashSet<&str> = rows.iter().filter_map(|h| h["id"].as_str()).collect();
                    assert_eq!(ids.len(), 20);
                    break;
                }
                last = format!("{up}/{} up", rows.len());
            } else {
                last = format!("{code}: {body}");
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not every host up within 30 s; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `smon-sim ... | head -c 0`: the reader of the `ready` line has gone. The simulator is a
/// server: it neither panics nor stops, and ends quietly (status 0) on SIGTERM.
#[test]
fn a_closed_stdout_does_not_stop_the_fleet() {
    let first = Ipv4Addr::new(127, 65, 0, 1);
    let port = free_port(first);
    let (r, w) = std::io::pipe().expect("pipe");
    drop(r);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smon-sim"));
    cmd.args(["--agents", "2", "--first-addr", &first.to_string()])
        .args(["--port", &port.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(w)
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    drop(cmd);
    let start = Instant::now();
    while std::net::TcpStream::connect((first, port)).is_err() {
        if let Some(st) = child.try_wait().expect("try_wait") {
            let out = child.wait_with_output().expect("output");
            panic!(
                "the simulator ended with {st:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no listener");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let out = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.is_empty(),
        "{:?}: {err}",
        out.status
    );
}
