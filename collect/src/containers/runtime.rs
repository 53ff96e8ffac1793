//! Names, images and states from a container runtime's API: Docker's Engine API, or Podman's
//! compatible one, on a Unix socket. Read-only (`GET /containers/json?all=1`), on its own
//! thread, at most every [`REFRESH`], each call bounded by [`CALL_TIMEOUT`]: the sampler only
//! looks up the latest answer and is never held up. Without a readable socket (no runtime,
//! or no permission: Docker's socket needs the `docker` group) nothing is read, and names
//! stay those of the cgroup paths.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the runtimes are asked.
pub const REFRESH: Duration = Duration::from_secs(10);

/// The longest a call may take (connect, write, read).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers above this size are refused (a runtime with thousands of containers stays well
/// below).
const MAX_ANSWER: u64 = 16 << 20;

/// What a runtime says about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Its name, without Docker's leading `/`.
    pub name: String,
    /// Its image, e.g. `nginx:1.27`.
    pub image: String,
    /// Its state, e.g. `running`, `exited`, `paused`.
    pub state: String,
}

/// The containers of one `/containers/json` answer, by full id.
pub fn parse_list(body: &[u8]) -> Result<HashMap<String, Meta>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let list = v.as_array().ok_or("not a JSON array")?;
    let s = |c: &serde_json::Value, k: &str| c.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    Ok(list
        .iter()
        .filter_map(|c| {
            let id = s(c, "Id")?;
            let name = c
                .get("Names")
                .and_then(|n| n.as_array())
                .and_then(|n| n.first())
                .and_then(|n| n.as_str())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default();
            Some((
                id,
                Meta {
                    name,
                    image: s(c, "Image").unwrap_or_default(),
                    state: s(c, "State").unwrap_or_default(),
                },
            ))
        })
        .collect())
}

/// One read-only call on the socket at `path`: the containers it lists.
pub fn list(path: &Path) -> Result<HashMap<String, Meta>, String> {
    let mut s = UnixStream::connect(path).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(CALL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(CALL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    // HTTP/1.0: the answer is not chunked and ends when the runtime closes.
    s.write_all(b"GET /containers/json?all=1 HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    s.take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP header")?;
    let status = String::from_utf8_lossy(&answer[..split]);
    let first = status.lines().next().unwrap_or_default();
    if first.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered {first:?}"));
    }
    parse_list(&answer[split + 4..])
}

/// The runtimes' latest answers, read by a thread of its own; dropping it stops the thread.
pub struct RuntimeNames {
    latest: Arc<Mutex<HashMap<String, Meta>>>,
    _stop: mpsc::Sender<()>,
}

impl RuntimeNames {
    /// Starts the thread over `sockets` (those that do not exist are skipped at each call).
    pub fn start(sockets: Vec<PathBuf>) -> Self {
        let latest = Arc::new(Mutex::new(HashMap::new()));
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(&latest);
        let spawned = std::thread::Builder::new()
            .name("smon-runtimes".into())
            .spawn(move || {
                loop {
                    let mut all = HashMap::new();
                    for p in sockets.iter().filter(|p| p.exists()) {
                        match list(p) {
                            Ok(m) => all.extend(m),
                            Err(e) => tracing::debug!("containers: {}: {e}", p.display()),
                        }
                    }
                    if let Ok(mut l) = shared.lock() {
                        *l = all;
                    }
                    match stopped.recv_timeout(REFRESH) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("containers: cannot start the runtime names thread: {e}");
        }
        Self {
            latest,
            _stop: stop,
        }
    }

    /// What the runtimes last said about the container `id`.
    pub fn get(&self, id: &str) -> Option<Meta> {
        self.latest.lock().ok()?.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// Docker's answer, trimmed to the fields read (real field names and shapes).
    const ANSWER: &str = r#"[{"Id":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","Names":["/web"],"Image":"nginx:1.27","ImageID":"sha256:1","Command":"nginx","Created":1700000000,"Ports":[],"Labels":{},"State":"running","Status":"Up 2 hours"},{"Id":"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210","Names":["/db"],"Image":"postgres:16","State":"exited","Status":"Exited (0) 1 hour ago"}]"#;

    fn serve_once(
        path: &Path,
        status: &'static str,
        body: &'static str,
    ) -> std::thread::JoinHandle<String> {
        let l = UnixListener::bind(path).expect("bind");
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut req = [0u8; 512];
            let n = s.read(&mut req).expect("read");
            let head = format!(
                "HTTP/1.0 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).expect("write");
            s.write_all(body.as_bytes()).expect("write");
            String::from_utf8_lossy(&req[..n]).into_owned()
        })
    }

    #[test]
    fn the_engine_api_list_gives_names_images_and_states() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("docker.sock");
        let server = serve_once(&sock, "200 OK", ANSWER);
        let got = list(&sock).expect("list");
        let req = server.join().expect("server");
        assert!(
            req.starts_with("GET /containers/json?all=1 HTTP/1.0\r\n"),
            "{req}"
        );
        let web = &got["0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"];
        assert_eq!(web.name, "web");
        assert_eq!(web.image, "nginx:1.27");
        assert_eq!(web.state, "running");
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn an_error_answer_or_no_socket_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("docker.sock");
        let server = serve_once(&sock, "500 Internal Server Error", "{}");
        assert!(list(&sock).expect_err("500").contains("500"));
        server.join().expect("server");
        assert!(list(&dir.path().join("none.sock")).is_err());
        assert!(parse_list(b"{}").is_err());
    }
}
