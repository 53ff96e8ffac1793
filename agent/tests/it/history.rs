//! The single-host view's history (`storage`, off by default), with a real agent in-process
//! on loopback read through its own web view's REST routes (smon-api's client): samples and
//! top processes stored, kept across a restart, owner-only files; off, the routes say so and
//! nothing is written.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{WebAgent, web_settings as settings};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// The times with a stored CPU value in `[from_ms, to_ms]`.
async fn stored(agent: &WebAgent, from_ms: u64, to_ms: u64) -> Vec<u64> {
    let a = agent
        .client
        .host_history(&agent.id, &["cpu_percent"], from_ms, to_ms, 1000)
        .await
        .expect("history");
    // No series until something is stored.
    let Some(cpu) = a.series.first() else {
        return Vec::new();
    };
    a.t.iter()
        .zip(&cpu.avg)
        .filter(|(_, v)| v.is_some())
        .map(|(t, _)| *t)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_keeps_history_across_a_restart_when_storage_is_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let storage = serde_json::json!({"storage": {"enabled": true, "dir": "data"}});
    let mut s = settings(dir.path(), storage.clone());
    // A second instead of a minute: the first scan at a random point of it.
    s.processes_every = Duration::from_secs(1);
    let begin = now_ms();
    let a = WebAgent::start(s).await;
    assert!(a.id.starts_with("local:"), "{}", a.id);

    let started = Instant::now();
    let first = loop {
        let t = stored(&a, begin, now_ms()).await;
        if t.len() >= 5 {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "samples not stored: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let top = loop {
        let p = a
            .client
            .processes_at(&a.id, now_ms())
            .await
            .expect("processes");
        if !p.top_memory.is_empty() && !p.gpu.is_empty() {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "top processes not stored: {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        top.top_cpu.len() <= 10 && top.top_memory.len() <= 10,
        "{top:?}"
    );
    // A public visitor sees no command lines or users in history either.
    assert!(
        top.top_memory
            .iter()
            .all(|p| p.cmdline.is_empty() && p.user.is_empty()),
        "{top:?}"
    );
    a.shutdown().await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let db = data.join(smon_history::db::FILE_NAME);
        let mode = std::fs::metadata(&db)
            .expect("database")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}: the owner's alone");
    }

    // Started again on the same directory: what was stored is served before any new sample.
    let stopped_at = now_ms();
    let b = WebAgent::start(settings(dir.path(), storage)).await;
    let again = stored(&b, begin, stopped_at).await;
    assert!(
        first.iter().all(|t| again.contains(t)),
        "lost across the restart: had {first:?}, now {again:?}"
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_storage_the_history_routes_say_it_is_off_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = WebAgent::start(settings(dir.path(), serde_json::Value::Null)).await;
    let e = a
        .client
        .host_history(&a.id, &["cpu_percent"], 0, now_ms(), 10)
        .await
        .expect_err("off");
    assert_eq!(e.status(), Some(503), "{e}");
    assert!(e.to_string().contains("history is off"), "{e}");
    a.shutdown().await;
    assert!(
        !dir.path().join("smon-data").exists(),
        "a database was made while history is off"
    );
}
