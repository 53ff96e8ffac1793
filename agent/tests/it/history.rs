//! The single-host view's history (`storage`, off by default), with a real agent in-process
//! on loopback read through its own web view's REST routes (smon-api's client): samples and
//! top processes stored, kept across a restart, owner-only files; off, the routes say so and
//! nothing is written.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smon_agent::config::{self, Env, Settings};
use smon_api::Client;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Settings of a web view, public read-only, sampling every 200 ms with a fake GPU, with
/// `storage` as given (`null`: no block).
fn settings(dir: &Path, storage: serde_json::Value) -> Settings {
    let mut cfg = serde_json::json!({
        "server": {"host": "127.0.0.1", "web": true, "auth": {"public_read_only": true}},
        "monitor": {"mode": "node", "interval_ms": 200, "auth": "none",
            "gpu": "fake", "fake_gpu_count": 1},
    });
    if !storage.is_null() {
        cfg["storage"] = storage;
    }
    config::load_str(&cfg.to_string(), "node.json", dir, &Env::default()).expect("valid")
}

/// An agent with its web view, running in this process.
struct WebAgent {
    client: Client,
    id: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), smon_agent::Error>>,
}

impl WebAgent {
    async fn start(s: Settings) -> Self {
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", http.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        let cc = s.collector_config();
        let task = tokio::spawn(smon_agent::run_with(cc, s, grpc, Some(http), stop.clone()));
        let client = Client::new(&base).expect("client");
        let started = Instant::now();
        let id = loop {
            if let Ok(hosts) = client.hosts().await
                && let Some(h) = hosts.first()
            {
                break h.id.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the web view did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Self {
            client,
            id,
            stop,
            task,
        }
    }

    async fn shutdown(self) {
        self.stop.cancel();
        let done = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        assert!(
            matches!(done, Ok(Ok(Ok(())))),
            "agent did not stop cleanly: {done:?}"
        );
    }

    /// The times with a stored CPU value in `[from_ms, to_ms]`.
    async fn stored(&self, from_ms: u64, to_ms: u64) -> Vec<u64> {
        let a = self
            .client
            .host_history(&self.id, &["cpu_percent"], from_ms, to_ms, 1000)
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_keeps_history_across_a_restart_when_storage_is_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let storage = serde_json::json!({"enabled": true, "dir": "data"});
    let mut s = settings(dir.path(), storage.clone());
    // A second instead of a minute: the first scan at a random point of it.
    s.processes_every = Duration::from_secs(1);
    let begin = now_ms();
    let a = WebAgent::start(s).await;
    assert!(a.id.starts_with("local:"), "{}", a.id);

    let started = Instant::now();
    let first = loop {
        let t = a.stored(begin, now_ms()).await;
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
    let again = b.stored(begin, stopped_at).await;
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
