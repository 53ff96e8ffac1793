//! What the tests share: an HTTP receiver (axum on 127.0.0.1) that records every request,
//! notifications to send, a notifier with its delivery tasks, and Debian binaries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use smon_api::alerts::{Alert, AlertHost, AlertStatus, Notification, Severity};
use smon_notify::Notifier;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest any test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(20);

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Clone)]
struct Shared {
    got: Arc<Mutex<Vec<Got>>>,
    answer: Arc<Mutex<(StatusCode, String)>>,
    /// Answered once (then `answer`), e.g. a 429 with Retry-After.
    once: Arc<Mutex<Option<(StatusCode, HeaderMap, String)>>>,
}

/// An HTTP server that records every request and answers with a set status (200 `ok`).
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Shared,
    stop: CancellationToken,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn record(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    s.got.lock().expect("lock").push(Got {
        method,
        path: uri.to_string(),
        headers,
        body,
        at: Instant::now(),
    });
    if let Some(once) = s.once.lock().expect("lock").take() {
        return once;
    }
    let (status, body) = s.answer.lock().expect("lock").clone();
    (status, HeaderMap::new(), body)
}

impl Receiver {
    /// On a new port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("addr")).await
    }

    /// On `addr` (a port used before: a receiver that comes back).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Shared {
            got: Arc::default(),
            answer: Arc::new(Mutex::new((StatusCode::OK, "ok".into()))),
            once: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let s2 = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { s2.cancelled().await })
                .await;
        });
        Self { addr, shared, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers every request with `status` and `body` from now on.
    pub fn answer(&self, status: u16, body: &str) {
        *self.shared.answer.lock().expect("lock") =
            (StatusCode::from_u16(status).expect("status"), body.into());
    }

    /// Answers the next request with `status`, `headers` and `body`, then as before.
    pub fn answer_once(&self, status: u16, headers: &[(&'static str, &str)], body: &str) {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().expect("header value"));
        }
        *self.shared.once.lock().expect("lock") = Some((
            StatusCode::from_u16(status).expect("status"),
            h,
            body.into(),
        ));
    }

    pub fn got(&self) -> Vec<Got> {
        self.shared.got.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests came (fails the test after [`WAIT`]).
    pub async fn wait_for(&self, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} requests within {WAIT:?}, not {n}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A port nothing listens on (bound, then released).
pub fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// A notification of `rule` about `hosts`, each with a value and a detail.
pub fn notification(id: &str, status: AlertStatus, rule: &str, hosts: &[&str]) -> Notification {
    let started = 1_764_842_787_000;
    Notification {
        id: id.into(),
        status,
        rule: rule.into(),
        severity: Severity::Critical,
        alerts: hosts
            .iter()
            .enumerate()
            .map(|(i, h)| Alert {
                id: format!("{id}-{h}"),
                rule: rule.into(),
                severity: Severity::Critical,
                status,
                host: AlertHost {
                    host: (*h).into(),
                    cluster: h.split(':').next().unwrap_or("lab").into(),
                    subject: "/var".into(),
                    value: Some(90.0 + i as f64 + 0.25),
                    detail: format!("/var is {} % full", 90 + i),
                },
                started_ms: started,
                fired_ms: started + 60_000,
                resolved_ms: (status == AlertStatus::Resolved).then_some(started + 600_000),
                flapping: false,
            })
            .collect(),
        repeat: false,
        at_ms: started + 60_000,
        link: Some("https://smon.example/alerts".into()),
    }
}

/// A notifier on the database `db` with its delivery tasks running; stopped on drop.
pub struct Running {
    pub notifier: Notifier,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Running {
    /// Parses `channels` (JSON, secrets relative to `base`), opens the outbox and starts.
    pub fn start(db: &Path, base: &Path, channels: serde_json::Value) -> Self {
        let (channels, _) = smon_notify::config::parse(&channels, "alerts.channels", base)
            .unwrap_or_else(|e| panic!("config: {e:?}"));
        let notifier = Notifier::open(db, channels).expect("open the outbox");
        let (stop, tracker) = (CancellationToken::new(), TaskTracker::new());
        notifier.start(&tracker, stop.clone());
        Self {
            notifier,
            stop,
            tracker,
        }
    }

    /// Stops the delivery tasks and waits for them (bounded).
    pub async fn stop(self) {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(WAIT, self.tracker.wait())
            .await
            .expect("the delivery tasks stop");
    }

    /// The figures of `channel`.
    pub fn stats(&self, channel: &str) -> smon_notify::ChannelStats {
        self.notifier
            .stats()
            .into_iter()
            .find(|s| s.name == channel)
            .expect("channel")
    }

    /// Waits until `f` holds for the figures of `channel`.
    pub async fn wait_stats(
        &self,
        channel: &str,
        what: &str,
        f: impl Fn(&smon_notify::ChannelStats) -> bool,
    ) -> smon_notify::ChannelStats {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.stats(channel);
            if f(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {WAIT:?}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A Debian binary; fails the test with the fix when it is missing.
pub fn bin(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "`{path}` is not installed: this test runs Debian's. Install it with \
         `apt-get install -y {package}` (scripts/test.sh does)."
    );
    p
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {addr} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process killed on drop.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
