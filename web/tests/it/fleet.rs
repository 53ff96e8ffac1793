//! The fleet changes under open pages: a public read-only dashboard is served in-process on
//! port 0 over a store that a task feeds with samples; Debian's chromium (through
//! `web/ui/tests/browser.mjs fleet`) opens the home page and a host page; then hosts are
//! removed and added in the store while they stay open. The home page must follow without a
//! reload or a reconnect (rows, clusters, the added hosts up), and the removed host's page must
//! say so. The aggregator's SIGHUP test drives the same scenario through a config reload.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use smon_proto::{Cpu, Memory, Snapshot};
use smon_web::clock::now_ms;
use smon_web::security::config::{Input, check};
use smon_web::security::{AuthConfig, Security};
use smon_web::state::Web;
use smon_web::store::{ClusterStore, HostSpec, StoreConfig};
use tokio_util::sync::CancellationToken;

pub(crate) fn spec(cluster: &str, name: &str) -> HostSpec {
    HostSpec {
        cluster: cluster.into(),
        name: name.into(),
        address: "127.0.0.1:1".into(),
        tags: vec![],
    }
}

fn sample(seq: u64) -> Snapshot {
    Snapshot {
        seq,
        sample_unix_ms: now_ms(),
        hostname: "h".into(),
        cpu: Some(Cpu {
            total_percent: (seq % 100) as f32,
            logical_cores: 4,
            ..Default::default()
        }),
        memory: Some(Memory {
            total_bytes: 1000,
            used_bytes: 250,
            used_percent: 25.0,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ui")
}

/// A public read-only dashboard's security state (no users, no files written).
pub(crate) fn public_security(dir: &Path, listen: std::net::SocketAddr) -> Arc<Security> {
    security_with(
        dir,
        listen,
        AuthConfig {
            public_read_only: true,
            ..AuthConfig::default()
        },
    )
}

/// The security state of a plain-HTTP dashboard on `listen` with `auth` (its files in `dir`).
pub(crate) fn security_with(
    dir: &Path,
    listen: std::net::SocketAddr,
    auth: AuthConfig,
) -> Arc<Security> {
    let mut problems = Vec::new();
    let http = check(
        Input {
            behind_proxy: false,
            allow_from: &[],
            trusted_proxies: &[],
            metrics_allow_from: &[],
            allowed_hosts: None,
            tls: None,
            auth: &auth,
        },
        dir,
        "users.json",
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    Security::start(http, listen).expect("security").0
}

/// A public read-only dashboard serving a store of `hosts`, in-process on port 0.
pub(crate) struct PublicServer {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) web: Arc<Web>,
    pub(crate) stop: CancellationToken,
    pub(crate) server: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub(crate) async fn serve_public(dir: &Path, hosts: Vec<HostSpec>) -> PublicServer {
    serve_public_with(dir, hosts, None).await
}

/// [`serve_public`] with `history` behind the history routes (none: history is off).
pub(crate) async fn serve_public_with(
    dir: &Path,
    hosts: Vec<HostSpec>,
    history: Option<Arc<dyn smon_history::History>>,
) -> PublicServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let store = ClusterStore::new(hosts, StoreConfig::for_interval(500), now_ms());
    let mut web = Web::new(
        Arc::new(std::sync::Mutex::new(store)),
        "app",
        public_security(dir, addr),
    );
    if let Some(h) = history {
        web = web.with_history(h);
    }
    let web = Arc::new(web);
    let stop = CancellationToken::new();
    let server = tokio::spawn(smon_web::serve::serve(
        web.clone(),
        "",
        listener,
        smon_web::serve::HttpLimits::default(),
        stop.clone(),
    ));
    PublicServer {
        addr,
        web,
        stop,
        server,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_pages_follow_hosts_added_and_removed() {
    let _turn = crate::ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let PublicServer {
        addr,
        web,
        stop,
        server,
    } = serve_public(
        dir.path(),
        vec![spec("lab", "a1"), spec("lab", "a2"), spec("old", "o1")],
    )
    .await;
    // Every host in the store samples every 250 ms, as pollers would.
    let feeder = {
        let (web, stop) = (web.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seq = 0;
            while !stop.is_cancelled() {
                seq += 1;
                {
                    let mut st = web.store();
                    for id in st.ids() {
                        st.apply(&id, sample(seq), now_ms());
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let url = format!("http://{addr}/");
    let mut child = Command::new("node")
        .arg(ui_dir().join("tests/browser.mjs"))
        .args([
            "fleet",
            &url,
            "lab:a1,lab:a2,old:o1",
            "lab:a1,new:n1,lab:a3",
            "old:o1",
        ])
        .current_dir(ui_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is installed");
    let stdout = child.stdout.take().expect("stdout");
    // Until `ready`: the pages show the first fleet.
    let (ready, mut said, rest) = tokio::task::spawn_blocking(move || {
        let mut r = BufReader::new(stdout);
        let mut lines = String::new();
        loop {
            let mut l = String::new();
            match r.read_line(&mut l) {
                Ok(0) | Err(_) => return (false, lines, r),
                Ok(_) if l.trim() == "ready" => return (true, lines, r),
                Ok(_) => lines.push_str(&l),
            }
        }
    })
    .await
    .expect("reader");
    if ready {
        let mut st = web.store();
        assert!(st.remove_host("lab:a2"));
        assert!(st.remove_host("old:o1"), "the last host of cluster old");
        assert!(st.add_host(spec("new", "n1"), now_ms()), "a new cluster");
        assert!(st.add_host(spec("lab", "a3"), now_ms()));
    }
    let out = tokio::task::spawn_blocking(move || {
        let mut rest = rest;
        let _ = std::io::Read::read_to_string(&mut rest, &mut said);
        let out = child.wait_with_output().expect("wait");
        (
            out.status,
            said,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("waiter");
    stop.cancel();
    let _ = feeder.await;
    let _ = server.await;
    assert!(
        ready && out.0.success(),
        "browser.mjs fleet failed (ready: {ready}):\n--- stdout\n{}\n--- stderr\n{}",
        out.1,
        out.2
    );
    assert!(out.1.contains("ok: fleet:"), "{}", out.1);
}
