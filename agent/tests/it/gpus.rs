//! GPU faults through the real sampler and the gRPC service: the fake GPU source with injected
//! faults, an agent on a loopback socket, and a client. In every case the other GPUs and the
//! rest of the sample keep flowing, and the error text says what happened.

use std::time::{Duration, Instant};

use smon_collect::Roots;
use smon_collect::gpus::{FakeFault, FakeGpus};
use smon_proto::{GetInfoRequest, GetSnapshotRequest, Parts, Snapshot, WatchRequest};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{InProcess, TOKEN, client, fixture, settings};

/// An agent with a 100 ms interval whose GPU source is `fake`.
async fn start(fake: FakeGpus) -> InProcess {
    let s = settings(&format!(
        r#""interval_ms":100,"token":"{TOKEN}","gpu":"off""#
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let mut cc = s.collector_config();
    cc.gpus = Some(Box::new(fake));
    cc.roots = Roots {
        utmp: fixture("../../../collect/tests/fixtures/utmp/sessions.utmp"),
        ..Roots::default()
    };
    let task = tokio::spawn(smon_agent::run_with(cc, s, listener, None, stop.clone()));
    InProcess { addr, stop, task }
}

fn detail() -> GetSnapshotRequest {
    GetSnapshotRequest {
        parts: Some(Parts::DETAIL),
    }
}

/// Polls `GetSnapshot` until `ok` holds (at most 10 s).
async fn until(
    c: &mut crate::support::Client,
    req: GetSnapshotRequest,
    ok: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = c.get_snapshot(req).await.expect("snapshot").into_inner();
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "condition never held; last: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gpu_without_permission_and_one_lost_hide_no_other() {
    let agent = start(FakeGpus::with_faults(
        3,
        vec![
            FakeFault::NoPermission { index: 1 },
            FakeFault::GpuLost { index: 2, from: 5 },
        ],
    ))
    .await;
    let mut c = client(agent.addr, Some(TOKEN)).await;
    let s = until(&mut c, GetSnapshotRequest::default(), |s| {
        s.gpus.len() == 3 && !s.gpus[2].error.is_empty()
    })
    .await;
    assert_eq!(
        s.gpus.iter().map(|g| g.index).collect::<Vec<_>>(),
        [0, 1, 2],
        "every GPU keeps its place"
    );
    assert!(s.gpus[0].utilization_percent.is_some() && s.gpus[0].error.is_empty());
    assert!(
        s.gpus[1].error.contains("NoPermission"),
        "{}",
        s.gpus[1].error
    );
    assert!(s.gpus[1].memory_total_bytes.is_none());
    assert!(
        s.gpus[2].error.contains("GPU is lost"),
        "{}",
        s.gpus[2].error
    );
    assert!(!s.gpus[2].uuid.is_empty(), "a lost GPU keeps its identity");
    assert!(
        s.errors
            .iter()
            .any(|e| e.starts_with("gpus: GPU 1: device: NoPermission")),
        "{:?}",
        s.errors
    );
    assert!(
        s.errors
            .iter()
            .any(|e| e.starts_with("gpus: GPU 2: device: GPU is lost")),
        "{:?}",
        s.errors
    );
    assert_eq!(
        s.errors
            .iter()
            .filter(|e| e.starts_with("gpus: GPU 2"))
            .count(),
        1,
        "{:?}",
        s.errors
    );
    assert!(s.cpu.is_some() && s.memory.is_some());
    let info = c
        .get_info(GetInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert_eq!(info.gpu_names.len(), 3);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_fields_are_absent_and_missing_symbols_are_errors() {
    let agent = start(FakeGpus::with_faults(
        2,
        vec![
            FakeFault::NotSupported {
                index: 0,
                field: "fan_speed",
            },
            FakeFault::MissingSymbol { field: "health" },
        ],
    ))
    .await;
    let mut c = client(agent.addr, Some(TOKEN)).await;
    let s = until(&mut c, GetSnapshotRequest::default(), |s| s.gpus.len() == 2).await;
    assert!(s.gpus[0].fan_percent.is_none(), "NotSupported: absent");
    assert!(s.gpus[0].temperature_celsius.is_some() && s.gpus[0].sm_clock_mhz.is_some());
    assert!(!s.gpus[0].error.contains("fan"), "{}", s.gpus[0].error);
    assert!(s.gpus[0].memory_temperature_celsius.is_none());
    let lines: Vec<_> = s.errors.iter().filter(|e| e.starts_with("gpus:")).collect();
    assert_eq!(lines.len(), 2, "one per GPU and field: {lines:?}");
    assert!(
        lines[0].contains("health_fields: the NVML library lacks"),
        "{lines:?}"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_nvml_call_does_not_delay_the_cpu_and_memory_sample() {
    let agent = start(FakeGpus::with_faults(
        2,
        vec![FakeFault::Hang {
            at: 3,
            duration: Duration::from_secs(6),
        }],
    ))
    .await;
    let mut c = client(agent.addr, Some(TOKEN)).await;
    let mut stream = c
        .watch(WatchRequest {
            parts: Some(Parts::SUMMARY),
            min_interval_ms: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let started = Instant::now();
    let mut times = Vec::new();
    let mut stuck = None;
    while started.elapsed() < Duration::from_secs(5) {
        let s = tokio::time::timeout(Duration::from_secs(2), stream.message())
            .await
            .expect("a sample within 2 s while NVML hangs")
            .expect("stream")
            .expect("open");
        assert!(
            s.cpu.is_some() && s.memory.is_some(),
            "CPU and memory keep flowing"
        );
        times.push(s.sample_unix_ms);
        if let Some(e) = s
            .errors
            .iter()
            .find(|e| e.contains("NVML not answering for"))
        {
            assert_eq!(s.gpus.len(), 2, "GPUs keep their rows");
            assert!(
                s.gpus
                    .iter()
                    .all(|g| g.utilization_percent.is_none() && g.error.contains("not answering"))
            );
            stuck = Some(e.clone());
        }
    }
    let stuck = stuck.expect("the stuck call is reported");
    assert!(
        stuck.starts_with("gpus: NVML not answering for "),
        "{stuck}"
    );
    // 100 ms interval: the hang (6 s) never shows as a gap between samples.
    let worst = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(worst < 1000, "largest gap between samples {worst} ms");
    assert!(times.len() >= 20, "{} samples in 5 s", times.len());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_driver_is_retried_and_host_info_changes_when_gpus_appear() {
    let agent = start(FakeGpus::with_faults(
        2,
        vec![FakeFault::LateDriver { attempts: 5 }],
    ))
    .await;
    let mut c = client(agent.addr, Some(TOKEN)).await;
    let before = c
        .get_info(GetInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert!(
        before.gpu_status.contains("DriverNotLoaded"),
        "{}",
        before.gpu_status
    );
    assert!(before.gpu_names.is_empty() && !before.capabilities.iter().any(|c| c == "gpus"));
    let early = c
        .get_snapshot(GetSnapshotRequest::default())
        .await
        .expect("snapshot")
        .into_inner();
    assert!(
        early
            .errors
            .iter()
            .any(|e| e.starts_with("gpus: NVML did not start: DriverNotLoaded")),
        "{:?}",
        early.errors
    );
    // Retries after 0.1, 0.2, 0.4, 0.8 and 1.6 s.
    let s = until(&mut c, GetSnapshotRequest::default(), |s| s.gpus.len() == 2).await;
    assert!(s.info_unix_ms > 0, "HostInfo changed");
    assert!(
        s.errors.iter().all(|e| !e.starts_with("gpus:")),
        "{:?}",
        s.errors
    );
    let after = c
        .get_info(GetInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert_eq!(after.gpu_names.len(), 2);
    assert!(after.gpu_status.is_empty() && after.capabilities.iter().any(|c| c == "gpus"));
    assert_eq!(after.gpu_source, "fake");
    assert_eq!(
        (
            after.gpu_driver_version.as_str(),
            after.cuda_driver_version.as_str()
        ),
        ("550.54.15", "12.4")
    );
    assert!(
        before.gpu_driver_version.is_empty() && before.cuda_driver_version.is_empty(),
        "no driver, no version: {before:?}"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mig_instances_mps_clients_and_vanished_pids() {
    let agent = start(FakeGpus::with_faults(
        3,
        vec![
            FakeFault::Mig {
                index: 0,
                instances: 2,
            },
            FakeFault::Mps { index: 1 },
            FakeFault::GhostProcess {
                index: 2,
                pid: 999_999_999,
            },
        ],
    ))
    .await;
    let mut c = client(agent.addr, Some(TOKEN)).await;
    let s = until(&mut c, detail(), |s| {
        s.gpus.len() == 3 && !s.gpus[2].processes.is_empty()
    })
    .await;
    let me = std::process::id();
    let mig = &s.gpus[0];
    assert_eq!(mig.mig_mode, Some(true));
    assert!(mig.utilization_percent.is_none());
    assert_eq!(mig.mig_instances.len(), 2);
    assert_eq!(
        mig.active_instances,
        Some(2),
        "in use although utilisation is not reported"
    );
    assert_eq!(mig.mig_instances[0].processes[0].pid, me);
    assert!(
        !mig.mig_instances[0].processes[0].user.is_empty(),
        "users resolved on instances"
    );
    let mps = &s.gpus[1];
    assert_eq!(mps.processes.len(), 1);
    assert_eq!(mps.processes[0].kind, "mps");
    assert_eq!(
        s.gpus[2]
            .processes
            .iter()
            .map(|p| p.pid)
            .collect::<Vec<_>>(),
        [me],
        "a pid not in /proc is dropped"
    );
    let summary = c
        .get_snapshot(GetSnapshotRequest::default())
        .await
        .expect("summary")
        .into_inner();
    assert!(
        summary.gpus[0].mig_instances[0].processes.is_empty(),
        "processes only in detail"
    );
    assert_eq!(summary.gpus[0].mig_instances.len(), 2);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r535_drivers_leave_processes_out_and_say_why() {
    let agent = start(FakeGpus::with_faults(2, vec![FakeFault::R535])).await;
    let mut c = client(agent.addr, Some(TOKEN)).await;
    let s = until(&mut c, detail(), |s| {
        s.gpus.len() == 2 && !s.gpus[0].processes_error.is_empty()
    })
    .await;
    assert!(s.gpus.iter().all(|g| g.processes.is_empty()));
    assert!(
        s.gpus[0].processes_error.contains("R530 to 535.86"),
        "{}",
        s.gpus[0].processes_error
    );
    assert!(
        s.gpus[0].utilization_percent.is_some(),
        "the rest of the GPU is read"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xid_event_reaches_the_snapshot_with_its_gpu_code_and_time() {
    let agent = start(FakeGpus::with_faults(
        2,
        vec![FakeFault::Xid {
            index: 1,
            code: 79,
            at: 4,
        }],
    ))
    .await;
    let mut c = client(agent.addr, Some(TOKEN)).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let s = until(&mut c, GetSnapshotRequest::default(), |s| {
        s.gpus.len() == 2 && s.gpus[1].xid_errors == Some(1)
    })
    .await;
    assert_eq!(s.gpus[1].last_xid, Some(79));
    assert!(
        s.gpus[1]
            .last_xid_unix_ms
            .is_some_and(|t| t + 5_000 >= before)
    );
    assert_eq!(
        (s.gpus[0].xid_errors, s.gpus[0].last_xid),
        (Some(0), None),
        "watched, none"
    );
    assert!(s.cpu.is_some() && s.memory.is_some());
    // Counted once: later samples keep it at 1.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = c
        .get_snapshot(GetSnapshotRequest::default())
        .await
        .expect("snapshot")
        .into_inner();
    assert_eq!(later.gpus[1].xid_errors, Some(1));
    agent.shutdown().await;
}
