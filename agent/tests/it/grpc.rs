//! The gRPC contract over a real socket: GetInfo, GetSnapshot (summary and detail), Watch, and
//! the token check, with the fake GPU source through the whole path.

use std::time::{Duration, Instant};

use smon_proto::{GetInfoRequest, GetSnapshotRequest, Parts, WatchRequest};
use tokio_stream::StreamExt as _;
use tonic::Code;

use crate::support::{self, TOKEN};

fn detail() -> GetSnapshotRequest {
    GetSnapshotRequest {
        parts: Some(Parts::DETAIL),
    }
}

#[tokio::test]
async fn get_info_and_snapshots_summary_and_detail() {
    let agent = support::start(2).await;
    let mut c = support::client(agent.addr, Some(TOKEN)).await;

    let info = c
        .get_info(GetInfoRequest {})
        .await
        .expect("GetInfo")
        .into_inner();
    assert!(!info.hostname.is_empty());
    assert!(info.cpu_logical_cores >= 1 && info.memory_total_bytes > 0);
    assert_eq!(info.gpu_source, "fake");
    assert_eq!(info.gpu_names.len(), 2);
    assert!(info.capabilities.iter().any(|c| c == "gpus"));
    assert_eq!(info.sample_interval_ms, 100);
    assert_eq!(info.agent_version, env!("CARGO_PKG_VERSION"));

    let summary = c
        .get_snapshot(GetSnapshotRequest::default())
        .await
        .expect("summary")
        .into_inner();
    assert!(summary.seq >= 1);
    assert!(summary.process_count > 0);
    assert!(
        summary.processes.is_empty(),
        "summary carries no process list"
    );
    assert!(
        summary
            .cpu
            .as_ref()
            .expect("cpu")
            .per_core_percent
            .is_empty()
    );
    assert_eq!(summary.gpus.len(), 2);
    assert!(summary.gpus.iter().all(|g| g.processes.is_empty()));
    assert_eq!(summary.parts, Some(Parts::SUMMARY));
    // Sessions come from the utmp fixture the test points the agent at.
    assert_eq!(summary.sessions.len(), 3);
    assert_eq!(summary.sessions[1].from, "203.0.113.7");

    let full = c.get_snapshot(detail()).await.expect("detail").into_inner();
    assert!(!full.processes.is_empty());
    assert_eq!(full.processes.len() as u32, full.process_count);
    let cpu = full.cpu.as_ref().expect("cpu");
    assert_eq!(cpu.per_core_percent.len() as u32, cpu.logical_cores);
    // The fake GPUs list the agent's (this test's) process; name and user are resolved.
    let gp = &full.gpus[0].processes[0];
    assert_eq!(gp.pid, std::process::id());
    assert_eq!(gp.user, support::current_user());
    assert!(!gp.name.is_empty());
    assert!(
        full.gpus[0].fan_percent.is_some() && full.gpus[1].fan_percent.is_none(),
        "unsupported field absent"
    );
    let mem = full.memory.expect("memory");
    assert!(mem.used_bytes <= mem.total_bytes && mem.total_bytes == info.memory_total_bytes);
    assert!(full.sample_unix_ms > 1_600_000_000_000);

    // Only the asked-for part.
    let only_gpu = c
        .get_snapshot(GetSnapshotRequest {
            parts: Some(Parts {
                gpu_processes: true,
                ..Parts::SUMMARY
            }),
        })
        .await
        .expect("partial")
        .into_inner();
    assert!(only_gpu.processes.is_empty() && !only_gpu.gpus[0].processes.is_empty());

    agent.shutdown().await;
}

#[tokio::test]
async fn top_processes_are_the_top_by_cpu_and_by_memory() {
    let agent = support::start(0).await;
    let mut c = support::client(agent.addr, Some(TOKEN)).await;
    let top_req = || GetSnapshotRequest {
        parts: Some(Parts {
            top_processes: 3,
            ..Parts::SUMMARY
        }),
    };
    // The same sample both ways: the top 3 and the whole list (retried until one sample
    // answers both calls).
    let mut pair = None;
    for _ in 0..50 {
        let top = c.get_snapshot(top_req()).await.expect("top").into_inner();
        let full = c.get_snapshot(detail()).await.expect("detail").into_inner();
        if top.seq == full.seq {
            pair = Some((top, full));
            break;
        }
    }
    let (top, full) = pair.expect("two answers from one sample");
    assert!(full.processes.len() > 6, "a real process table");
    assert!(
        (3..=6).contains(&top.processes.len()),
        "{} processes",
        top.processes.len()
    );
    assert!(
        top.cpu.as_ref().expect("cpu").per_core_percent.is_empty(),
        "nothing else heavy"
    );
    let in_top = |pid: u32| top.processes.iter().any(|p| p.pid == pid);
    assert!(top.processes.iter().all(|t| full.processes.contains(t)));
    // Anything above the 3rd highest CPU (or memory) is in; ties may go either way.
    let mut cpus: Vec<f32> = full.processes.iter().map(|p| p.cpu_percent).collect();
    cpus.sort_by(|a, b| b.total_cmp(a));
    let mut mems: Vec<u64> = full.processes.iter().map(|p| p.memory_bytes).collect();
    mems.sort_by(|a, b| b.cmp(a));
    for p in &full.processes {
        if p.cpu_percent > cpus[3] || p.memory_bytes > mems[3] {
            assert!(
                in_top(p.pid),
                "{} ({}% CPU, {} B) missing",
                p.name,
                p.cpu_percent,
                p.memory_bytes
            );
        }
    }
    let biggest = full
        .processes
        .iter()
        .max_by_key(|p| p.memory_bytes)
        .expect("a process");
    assert!(in_top(biggest.pid));
    agent.shutdown().await;
}

#[tokio::test]
async fn watch_streams_every_sample_and_honours_min_interval() {
    let agent = support::start(1).await;
    let mut c = support::client(agent.addr, Some(TOKEN)).await;

    let mut s = c
        .watch(WatchRequest {
            parts: None,
            min_interval_ms: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut seqs = Vec::new();
    let started = Instant::now();
    while seqs.len() < 5 {
        let snap = tokio::time::timeout(Duration::from_secs(3), s.next())
            .await
            .expect("a sample in time")
            .expect("open")
            .expect("ok");
        assert!(snap.processes.is_empty());
        seqs.push(snap.seq);
    }
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "increasing: {seqs:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "5 samples at 100 ms took {:?}",
        started.elapsed()
    );

    let mut slow = c
        .watch(WatchRequest {
            parts: Some(Parts::DETAIL),
            min_interval_ms: 400,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut times = Vec::new();
    for _ in 0..3 {
        let snap = tokio::time::timeout(Duration::from_secs(3), slow.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok");
        assert!(
            !snap.processes.is_empty(),
            "detail stream carries processes"
        );
        times.push(snap.sample_unix_ms);
    }
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= 350,
            "min_interval_ms not honoured: {times:?}"
        );
    }

    // Shutdown ends open streams instead of waiting for them.
    agent.shutdown().await;
    let end = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = s.next().await {}
    })
    .await;
    assert!(end.is_ok(), "stream did not end on shutdown");
}

#[tokio::test]
async fn calls_without_or_with_a_wrong_token_are_refused() {
    let agent = support::start(0).await;
    for token in [None, Some("wrong-token-but-long-enough"), Some("")] {
        let mut c = support::client(agent.addr, token).await;
        let e = c.get_info(GetInfoRequest {}).await.expect_err("refused");
        assert_eq!(e.code(), Code::Unauthenticated, "{token:?}: {e:?}");
        let e = c.get_snapshot(detail()).await.expect_err("refused");
        assert_eq!(e.code(), Code::Unauthenticated);
        let e = c.watch(WatchRequest::default()).await.expect_err("refused");
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    // The right token still works on the same server.
    let mut ok = support::client(agent.addr, Some(TOKEN)).await;
    ok.get_info(GetInfoRequest {}).await.expect("accepted");
    agent.shutdown().await;
}

#[tokio::test]
async fn auth_none_on_loopback_needs_no_token() {
    let agent = support::start_with(support::settings(
        r#""interval_ms":100,"auth":"none","gpu":"off""#,
    ))
    .await;
    let mut c = support::client(agent.addr, None).await;
    let s = c
        .get_snapshot(GetSnapshotRequest::default())
        .await
        .expect("no token needed")
        .into_inner();
    assert!(s.gpus.is_empty());
    agent.shutdown().await;
}

#[tokio::test]
async fn a_started_process_appears_with_its_user_and_without_its_password() {
    let agent = support::start(0).await;
    let mut c = support::client(agent.addr, Some(TOKEN)).await;
    // `sh -c 'sleep 30; true' NAME ARGS..`: sh stays the parent and keeps these arguments.
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "sleep 30; true",
            "smon-it",
            "--password",
            "hunter2-secret-value",
            "--api-key=sk-live-123",
            "mysql://app:pa55word@db/x",
        ])
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    let found = loop {
        let snap = c.get_snapshot(detail()).await.expect("detail").into_inner();
        if let Some(p) = snap.processes.into_iter().find(|p| p.pid == pid) {
            break p;
        }
        assert!(Instant::now() < deadline, "process {pid} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(found.user, support::current_user());
    assert_eq!(found.ppid, std::process::id());
    assert!(
        found.cmdline.contains("--password ***"),
        "{}",
        found.cmdline
    );
    assert!(found.cmdline.contains("--api-key=***"), "{}", found.cmdline);
    assert!(
        found.cmdline.contains("mysql://app:***@db/x"),
        "{}",
        found.cmdline
    );
    for secret in ["hunter2", "sk-live-123", "pa55word"] {
        assert!(
            !found.cmdline.contains(secret),
            "secret {secret} leaked: {}",
            found.cmdline
        );
    }
    assert!(found.start_unix_ms > 0 && found.memory_bytes > 0);
    agent.shutdown().await;
}
