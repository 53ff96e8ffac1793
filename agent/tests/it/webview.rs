//! The single-host web view with a real agent in-process on loopback, read through its REST
//! routes (smon-api's client).

use std::time::{Duration, Instant};

use crate::support::{WebAgent, web_settings};

/// GPUs that appear after the start (a driver loaded late) reach the web view's host facts,
/// as they reach gRPC's `GetInfo`: the host page names them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_facts_follow_gpus_that_appear_after_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = web_settings(
        dir.path(),
        serde_json::json!({"monitor": {"fake_gpu_count": 2, "fake_gpu_faults": ["late_driver:5"]}}),
    );
    let a = WebAgent::start(s).await;
    let gpus = |d: &smon_api::wire::HostDetail| d.info.as_ref().map_or(0, |i| i.gpu_names.len());
    let first = a.client.host(&a.id).await.expect("host");
    assert_eq!(gpus(&first), 0, "no driver yet: {:?}", first.info);
    // The fake driver answers on its 6th attempt (retries after 0.1, 0.2, 0.4, 0.8, 1.6 s).
    let started = Instant::now();
    loop {
        let d = a.client.host(&a.id).await.expect("host");
        if gpus(&d) == 2 {
            let info = d.info.expect("info");
            assert!(info.gpu_status.is_empty(), "{}", info.gpu_status);
            assert!(info.capabilities.iter().any(|c| c == "gpus"), "{info:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the web view kept the facts of the start: {:?}",
            d.info
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.shutdown().await;
}
