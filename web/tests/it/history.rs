//! The history routes (`web/PROTOCOL.md`, "History") on the real server, in-process on port
//! 0, with an admin, a viewer and anonymous visitors (a public dashboard): input checks with
//! their reasons, 404s, 503 when history is off, the role rules (no command lines for viewers
//! and the public, no process owners for the public, GPU usage by user refused to it, the
//! storage page for admins only), and in Chromium the host page's range picker, drag to zoom
//! and the processes at a clicked point, the cluster page and the storage page.
//!
//! The browser test reads a real history ([`Real`]: seven hours written by the history's
//! writer, read by its reader). The route tests also use [`Recorded`], a `History` that answers fixed data and
//! records what the routes asked, so that the tests see what the server passed on (ranges,
//! what the caller may see, which hosts) and what it let through. It deliberately ignores
//! `Shown`: the routes must strip what a caller may not see whatever the store answers.
//! [`StoredProcs`] reads processes and GPU use from a real SQLite file written by
//! `smon_history::procs`, for the same rules end to end.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smon_api::Client;
use smon_api::history::{
    GpuProcessAt, GpuUsageAnswer, GpuUsageRow, ProcessAt, ProcessesAnswer, RemoteWriteStats,
    Series, SeriesAnswer, StorageAnswer, Tier, TierStats, UsageBy,
};
use smon_history::{History, SeriesQuery, Shown};
use smon_proto::{Cpu, Memory, Snapshot};
use smon_runtime::config::server::UserEntry;
use smon_web::clock::now_ms;
use smon_web::security::users::hash_password;
use smon_web::security::{AuthConfig, Security};
use smon_web::state::Web;
use smon_web::store::{ClusterStore, StoreConfig};
use tokio_util::sync::CancellationToken;

use crate::fleet::{spec, ui_dir};

const ADMIN_PASSWORD: &str = "admin-password-1";
const VIEWER_PASSWORD: &str = "viewer-password-1";
/// A command line only admins may see.
const SECRET: &str = "--api-key=hunter2";

/// What the routes asked of the store.
#[derive(Default)]
struct Asked {
    series: Vec<(String, SeriesQuery)>,
    shown: Vec<Shown>,
    usage_hosts: Vec<Vec<String>>,
}

/// A `History` with fixed answers that records what it was asked (see the module doc).
#[derive(Default)]
pub(crate) struct Recorded {
    asked: Mutex<Asked>,
}

/// Every stored GPU use: (host, GPU index, user, hours).
const USES: &[(&str, u32, &str, f64)] = &[
    ("lab:busy", 0, "ann", 3.0),
    ("lab:busy", 1, "bob", 1.0),
    ("lab:idle", 0, "ann", 0.5),
    ("gone:old", 0, "eve", 9.0),
];

impl Recorded {
    fn asked(&self) -> std::sync::MutexGuard<'_, Asked> {
        self.asked.lock().expect("lock")
    }

    fn series(&self, of: &str, q: &SeriesQuery) -> SeriesAnswer {
        self.asked().series.push((of.to_owned(), q.clone()));
        let n = q.points.min(120) as u64;
        let step = ((q.to_ms - q.from_ms) / n).max(1);
        let t: Vec<u64> = (0..n).map(|i| q.from_ms + i * step).collect();
        let wave = |i: usize, k: f64| Some(50.0 + 40.0 * ((i as f64) / 7.0 + k).sin());
        let mut series = Vec::new();
        for m in &q.metrics {
            let labels: &[&str] = match m.as_str() {
                "net_rx_bytes_per_s" | "net_tx_bytes_per_s" => &["eth0", "eth1"],
                "gpu_utilization_percent" => &["0", "1"],
                _ => &[""],
            };
            for (k, l) in labels.iter().enumerate() {
                let avg: Vec<Option<f64>> = (0..t.len()).map(|i| wave(i, k as f64)).collect();
                series.push(Series {
                    metric: m.clone(),
                    label: (*l).to_owned(),
                    max: avg.iter().map(|v| v.map(|v| v + 5.0)).collect(),
                    min: avg.iter().map(|v| v.map(|v| v - 5.0)).collect(),
                    avg,
                });
            }
        }
        SeriesAnswer {
            of: of.to_owned(),
            from: q.from_ms,
            to: q.to_ms,
            tier: Tier::Raw,
            step_ms: step,
            t,
            series,
        }
    }
}

fn proc_at(pid: u32, name: &str, cpu: f32) -> ProcessAt {
    ProcessAt {
        pid,
        name: name.into(),
        user: "ann".into(),
        cmdline: format!("/usr/bin/{name} {SECRET}"),
        cpu_percent: cpu,
        memory_bytes: 512 << 20,
    }
}

impl History for Recorded {
    fn host_series(
        &self,
        host: &str,
        q: &SeriesQuery,
    ) -> Result<SeriesAnswer, smon_history::Error> {
        Ok(self.series(host, q))
    }

    fn cluster_series(
        &self,
        cluster: &str,
        q: &SeriesQuery,
    ) -> Result<SeriesAnswer, smon_history::Error> {
        Ok(self.series(cluster, q))
    }

    fn processes_at(
        &self,
        host: &str,
        at_ms: u64,
        shown: Shown,
    ) -> Result<ProcessesAnswer, smon_history::Error> {
        self.asked().shown.push(shown);
        Ok(ProcessesAnswer {
            host: host.to_owned(),
            at: Some(at_ms - at_ms % 60_000),
            top_cpu: vec![
                proc_at(4242, "trainer", 1310.5),
                proc_at(77, "loader", 12.0),
            ],
            top_memory: vec![proc_at(4242, "trainer", 1310.5)],
            gpu: vec![GpuProcessAt {
                gpu: 0,
                gpu_uuid: "GPU-0".into(),
                parent_uuid: "GPU-0".into(),
                pid: 4242,
                name: "trainer".into(),
                user: "ann".into(),
                memory_bytes: Some(40 << 30),
            }],
        })
    }

    fn gpu_usage(
        &self,
        from_ms: u64,
        to_ms: u64,
        by: UsageBy,
        host_ok: &dyn Fn(&str) -> bool,
    ) -> Result<GpuUsageAnswer, smon_history::Error> {
        let mut rows: Vec<GpuUsageRow> = Vec::new();
        let mut hosts = Vec::new();
        for (host, gpu, user, hours) in USES {
            if !host_ok(host) {
                continue;
            }
            hosts.push((*host).to_owned());
            let key = match by {
                UsageBy::User => (*user).to_owned(),
                UsageBy::Host => (*host).to_owned(),
                UsageBy::Gpu => format!("{host}/#{gpu}"),
            };
            match rows.iter_mut().find(|r| r.key == key) {
                Some(r) => {
                    r.gpu_hours += hours;
                    r.processes += 1;
                }
                None => rows.push(GpuUsageRow {
                    key,
                    gpu_hours: *hours,
                    gpu_memory_gib_hours: hours * 40.0,
                    processes: 1,
                }),
            }
        }
        rows.sort_by(|a, b| b.gpu_hours.total_cmp(&a.gpu_hours));
        self.asked().usage_hosts.push(hosts);
        Ok(GpuUsageAnswer {
            from: from_ms,
            to: to_ms,
            by,
            rows,
        })
    }

    fn storage(&self) -> Result<StorageAnswer, smon_history::Error> {
        Ok(StorageAnswer {
            path: "/var/lib/smon/smon.sqlite3".into(),
            bytes: 3 << 30,
            tiers: vec![
                TierStats {
                    name: "raw".into(),
                    retention_s: 86_400,
                    bytes: 2 << 30,
                    oldest_ms: Some(now_ms() - 86_400_000),
                },
                TierStats {
                    name: "minute".into(),
                    retention_s: 90 * 86_400,
                    bytes: 1 << 30,
                    oldest_ms: None,
                },
            ],
            write_error: Some("database or disk is full".into()),
            queued: 12,
            remote_write: vec![],
        })
    }
}

/// A dashboard with users `admin` and `viewer`, open to anonymous visitors (read-only);
/// viewers see command lines when `viewer_cmdlines`.
fn security(dir: &Path, listen: std::net::SocketAddr, viewer_cmdlines: bool) -> Arc<Security> {
    let user = |name: &str, password: &str, role: &str| UserEntry {
        name: name.into(),
        password_hash: hash_password(password).expect("hash"),
        role: role.into(),
    };
    let auth = AuthConfig {
        public_read_only: true,
        users: vec![
            user("admin", ADMIN_PASSWORD, "admin"),
            user("viewer", VIEWER_PASSWORD, "viewer"),
        ],
        viewers_see_command_lines: viewer_cmdlines,
        ..AuthConfig::default()
    };
    crate::fleet::security_with(dir, listen, auth)
}

struct Server {
    base: String,
    web: Arc<Web>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn close(self) {
        self.stop.cancel();
        let _ = self.server.await;
    }
}

/// Serves hosts `lab:busy`, `lab:idle` and `web:front` with `history` (or none: history off).
async fn serve(dir: &Path, history: Option<Arc<dyn History>>) -> Server {
    serve_with(dir, history, false).await
}

/// [`serve`], with command lines shown to viewers when `viewer_cmdlines`.
async fn serve_with(
    dir: &Path,
    history: Option<Arc<dyn History>>,
    viewer_cmdlines: bool,
) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hosts = vec![
        spec("lab", "busy"),
        spec("lab", "idle"),
        spec("web", "front"),
    ];
    let store = ClusterStore::new(hosts, StoreConfig::for_interval(500), now_ms());
    let mut web = Web::new(
        Arc::new(std::sync::Mutex::new(store)),
        "app",
        security(dir, addr, viewer_cmdlines),
    );
    if let Some(h) = history {
        web = web.with_history(h).with_remote_write(Arc::new(|| {
            vec![RemoteWriteStats {
                url: "http://vm.example:8428/api/v1/write".into(),
                queued: 5,
                lag_s: 1.5,
                sent: 1000,
                dropped: 0,
                last_error: None,
            }]
        }));
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
    Server {
        base: format!("http://{addr}/"),
        web,
        stop,
        server,
    }
}

async fn client(base: &str, login: Option<(&str, &str)>) -> Client {
    let c = Client::new(base).expect("client");
    if let Some((u, p)) = login {
        c.login(u, p).await.expect("login");
    }
    c
}

/// `GET` of `path` (below `c`'s base), anonymous: the status and the `error` text.
async fn refusal(c: &Client, path: &str) -> (u16, String) {
    let url = format!("{}{path}", c.base());
    let r = reqwest::get(&url).await.expect("answer");
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_routes_check_input_roles_and_hosts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Recorded::default());
    let srv = serve(dir.path(), Some(store.clone() as Arc<dyn History>)).await;
    let public = client(&srv.base, None).await;
    let viewer = client(&srv.base, Some(("viewer", VIEWER_PASSWORD))).await;
    let admin = client(&srv.base, Some(("admin", ADMIN_PASSWORD))).await;

    // A series query reaches the store as asked, and comes back.
    let a = public
        .host_history(
            "lab:busy",
            &["cpu_percent", "disk_percent{/home}"],
            1_000,
            61_000,
            30,
        )
        .await
        .expect("series");
    assert_eq!((a.of.as_str(), a.from, a.to), ("lab:busy", 1_000, 61_000));
    {
        let asked = store.asked();
        let (of, q) = asked.series.last().expect("asked");
        assert_eq!(of, "lab:busy");
        assert_eq!(q.metrics, ["cpu_percent", "disk_percent{/home}"]);
        assert_eq!((q.from_ms, q.to_ms, q.points), (1_000, 61_000, 30));
    }
    let c = viewer
        .cluster_history("lab", &["load1"], 1_000, 2_000, 10)
        .await
        .expect("cluster series");
    assert_eq!(c.of, "lab");
    // Defaults: the last hour, 600 points.
    let before = now_ms();
    let (s, _) = refusal(&public, "api/v1/hosts/lab:busy/history?metrics=load1").await;
    assert_eq!(s, 200);
    {
        let asked = store.asked();
        let (_, q) = asked.series.last().expect("asked");
        assert_eq!(q.points, 600);
        assert!(
            q.to_ms >= before && q.to_ms - q.from_ms == 3_600_000,
            "{q:?}"
        );
    }

    // Bad input: 400 with the reason; unknown hosts and clusters: 404.
    for (path, status, why) in [
        (
            "api/v1/hosts/lab:busy/history",
            400,
            "name at least one metric",
        ),
        (
            "api/v1/hosts/lab:busy/history?metrics=cpu",
            400,
            "'cpu' is not a stored metric",
        ),
        (
            "api/v1/hosts/lab:busy/history?metrics=load1&from=9&to=3",
            400,
            "must be before",
        ),
        (
            "api/v1/hosts/lab:busy/history?metrics=load1&points=0",
            400,
            "points: '0'",
        ),
        (
            "api/v1/hosts/lab:busy/history?metrics=load1&to=soon",
            400,
            "'soon' is not a time",
        ),
        (
            "api/v1/hosts/lab:nope/history?metrics=load1",
            404,
            "unknown host 'lab:nope'",
        ),
        (
            "api/v1/clusters/nope/history?metrics=load1",
            404,
            "unknown cluster 'nope'",
        ),
        ("api/v1/hosts/lab:busy/processes", 400, "at: missing"),
        (
            "api/v1/hosts/lab:busy/processes?at=x",
            400,
            "'x' is not a time",
        ),
        ("api/v1/hosts/lab:nope/processes?at=5", 404, "unknown host"),
        (
            "api/v1/gpus/usage?by=team",
            400,
            "by: 'team' is not one of user, host, gpu",
        ),
        (
            "api/v1/gpus/usage?by=gpu&host=lab:nope",
            404,
            "unknown host",
        ),
        ("api/v1/gpus/usage?by=user", 403, "may see process owners"),
        ("api/v1/admin/storage", 403, "admin role"),
    ] {
        let (s, w) = refusal(&public, path).await;
        assert!(s == status && w.contains(why), "{path}: {s} {w}");
    }

    // Processes: admins see command lines; viewers owners only; the public neither, although
    // the store answered them (it ignores what it is told).
    let at = 1_700_000_030_000;
    let a = admin.processes_at("lab:busy", at).await.expect("admin");
    assert_eq!(
        a.at,
        Some(1_699_999_980_000),
        "the minute the store answered"
    );
    assert!(a.top_cpu[0].cmdline.contains(SECRET) && a.top_cpu[0].user == "ann");
    let v = viewer.processes_at("lab:busy", at).await.expect("viewer");
    let p = public.processes_at("lab:busy", at).await.expect("public");
    for (who, a) in [("viewer", &v), ("public", &p)] {
        let text = serde_json::to_string(a).expect("json");
        assert!(!text.contains(SECRET), "{who} got a command line: {text}");
        assert_eq!(a.top_cpu[1].name, "loader", "{who}");
    }
    assert_eq!(v.top_cpu[0].user, "ann");
    assert_eq!(v.gpu[0].user, "ann");
    assert!(
        p.top_cpu
            .iter()
            .chain(&p.top_memory)
            .all(|p| p.user.is_empty())
    );
    assert!(p.gpu.iter().all(|g| g.user.is_empty()));
    assert_eq!(
        store.asked().shown,
        [
            Shown {
                command_lines: true,
                process_users: true
            },
            Shown {
                command_lines: false,
                process_users: true
            },
            Shown {
                command_lines: false,
                process_users: false
            },
        ],
        "the store is told what each caller may see"
    );

    // GPU usage: hosts outside the fleet are left out; `host=` keeps one; by user for logins
    // that may see owners.
    let g = public
        .gpu_usage(0, 10_000, UsageBy::Host, None)
        .await
        .expect("by host");
    let keys: Vec<&str> = g.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        ["lab:busy", "lab:idle"],
        "gone:old is not in the fleet"
    );
    let g = viewer
        .gpu_usage(0, 10_000, UsageBy::User, Some("lab:busy"))
        .await
        .expect("by user");
    let rows: Vec<(&str, f64)> = g
        .rows
        .iter()
        .map(|r| (r.key.as_str(), r.gpu_hours))
        .collect();
    assert_eq!(rows, [("ann", 3.0), ("bob", 1.0)]);
    assert_eq!(
        store.asked().usage_hosts.last().expect("asked"),
        &["lab:busy", "lab:busy"]
    );
    let e = public
        .gpu_usage(0, 10_000, UsageBy::User, None)
        .await
        .expect_err("public by user");
    assert_eq!(e.status(), Some(403), "{e}");

    // Storage: admins only, with the remote-write targets.
    let e = viewer.storage().await.expect_err("viewer");
    assert_eq!(e.status(), Some(403), "{e}");
    let s = admin.storage().await.expect("admin");
    assert_eq!(s.tiers.len(), 2);
    assert_eq!(s.write_error.as_deref(), Some("database or disk is full"));
    assert_eq!(s.remote_write[0].sent, 1000);
    srv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_get_command_lines_where_the_config_shows_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Recorded::default());
    let srv = serve_with(dir.path(), Some(store.clone() as Arc<dyn History>), true).await;
    let viewer = client(&srv.base, Some(("viewer", VIEWER_PASSWORD))).await;
    let v = viewer
        .processes_at("lab:busy", 60_000)
        .await
        .expect("viewer");
    assert!(v.top_cpu[0].cmdline.contains(SECRET), "{v:?}");
    // The public still gets none.
    let public = client(&srv.base, None).await;
    let p = public
        .processes_at("lab:busy", 60_000)
        .await
        .expect("public");
    assert!(
        !serde_json::to_string(&p).expect("json").contains(SECRET),
        "{p:?}"
    );
    assert_eq!(
        store.asked().shown,
        [
            Shown {
                command_lines: true,
                process_users: true
            },
            Shown {
                command_lines: false,
                process_users: false
            },
        ]
    );
    srv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_off_answers_503_and_logins_still_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = serve(dir.path(), None).await;
    assert!(srv.web.history.is_none());
    let public = client(&srv.base, None).await;
    for path in [
        "api/v1/hosts/lab:busy/history?metrics=load1",
        "api/v1/clusters/lab/history?metrics=load1",
        "api/v1/hosts/lab:busy/processes?at=5",
        "api/v1/gpus/usage",
    ] {
        let (s, why) = refusal(&public, path).await;
        assert_eq!(
            (s, why.starts_with("history is off")),
            (503, true),
            "{path}: {why}"
        );
    }
    let admin = client(&srv.base, Some(("admin", ADMIN_PASSWORD))).await;
    let e = admin.storage().await.expect_err("off");
    assert_eq!(e.status(), Some(503), "{e}");
    srv.close().await;
}

fn sample(seq: u64) -> Snapshot {
    Snapshot {
        // The GPU the stored history calls GPU-0, at index 1 now.
        gpus: vec![smon_proto::Gpu {
            index: 1,
            uuid: "GPU-0".into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            utilization_percent: Some(40),
            ..Default::default()
        }],
        seq,
        sample_unix_ms: now_ms(),
        hostname: "h".into(),
        cpu: Some(Cpu {
            total_percent: 30.0,
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

/// Runs `browser.mjs history` as `user` (`admin` or `viewer`); the scenario's output.
async fn browse(base: &str, user: &str, password: &str) -> (bool, String) {
    let (base, login) = (base.to_owned(), format!("{user}:{password}"));
    let role = if user == "admin" { "admin" } else { "viewer" };
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(ui_dir().join("tests/browser.mjs"))
            .args(["history", &base, "lab:busy", "lab", role, SECRET])
            .env("SMON_LOGIN", login)
            .current_dir(ui_dir())
            .output()
            .expect("node is installed")
    })
    .await
    .expect("browser");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = format!(
        "--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && stdout.contains("ok: history:"),
        text,
    )
}

/// The real history behind the browser test: series and storage from [`SqliteHistory`]
/// (`smon_history::reader`), processes and GPU use from `smon_history::procs`, on one SQLite
/// file; the series queries are recorded.
struct Real {
    series: smon_history::reader::SqliteHistory,
    procs: StoredProcs,
    asked: Mutex<Vec<(String, SeriesQuery)>>,
}

impl History for Real {
    fn host_series(
        &self,
        host: &str,
        q: &SeriesQuery,
    ) -> Result<SeriesAnswer, smon_history::Error> {
        self.asked
            .lock()
            .expect("lock")
            .push((host.to_owned(), q.clone()));
        self.series.host_series(host, q)
    }

    fn cluster_series(
        &self,
        cluster: &str,
        q: &SeriesQuery,
    ) -> Result<SeriesAnswer, smon_history::Error> {
        self.asked
            .lock()
            .expect("lock")
            .push((cluster.to_owned(), q.clone()));
        self.series.cluster_series(cluster, q)
    }

    fn processes_at(
        &self,
        host: &str,
        at_ms: u64,
        shown: Shown,
    ) -> Result<ProcessesAnswer, smon_history::Error> {
        self.procs.processes_at(host, at_ms, shown)
    }

    fn gpu_usage(
        &self,
        from_ms: u64,
        to_ms: u64,
        by: UsageBy,
        host_ok: &dyn Fn(&str) -> bool,
    ) -> Result<GpuUsageAnswer, smon_history::Error> {
        self.procs.gpu_usage(from_ms, to_ms, by, host_ok)
    }

    fn storage(&self) -> Result<StorageAnswer, smon_history::Error> {
        self.series.storage()
    }
}

/// Seven hours of history up to now in `dir`: lab:busy's CPU a slow wave and lab:idle's 10 %,
/// every 10 s (lab:busy with a GPU whose corrected ECC count rises by one an hour), and lab:busy's processes every minute (ann's trainer on GPU 0, its command line
/// holding [`SECRET`]). Blocks.
fn seven_hours(dir: &Path) -> (smon_history::writer::Writer, Real) {
    use smon_history::writer::{Write, Writer};
    use smon_history::{Retention, StorageOptions};
    let opts = StorageOptions {
        dir: dir.join("data"),
        retention: Retention::default(),
    };
    let writer = Writer::start(opts.clone()).expect("writer");
    let now = now_ms();
    let start = now - 7 * 3_600_000;
    for s in (0..7 * 3600u64).step_by(10) {
        let busy = 50.0 + 40.0 * (s as f32 / 600.0).sin();
        for (host, cpu) in [("lab:busy", busy), ("lab:idle", 10.0)] {
            let mut snapshot = cpu_only(cpu);
            if host == "lab:busy" {
                // GPU 0 gains a corrected ECC error an hour: 6 in the last hour. GPU 1 has
                // since fallen off the bus (the live samples have GPU-0 alone, at index 1).
                Arc::make_mut(&mut snapshot).gpus = vec![
                    smon_proto::Gpu {
                        index: 0,
                        uuid: "GPU-0".into(),
                        utilization_percent: Some(90),
                        ecc_corrected_errors: Some(s / 3600),
                        ..Default::default()
                    },
                    smon_proto::Gpu {
                        index: 1,
                        uuid: "GPU-7f3a9c2e-0000-0000-0000-000000000001".into(),
                        utilization_percent: Some(10),
                        ecc_corrected_errors: Some(0),
                        ..Default::default()
                    },
                ];
            }
            assert!(writer.send(Write::Sample {
                host: host.into(),
                at_ms: start + s * 1000,
                snapshot,
            }));
        }
    }
    writer.sync(Some(now)).expect("sync");
    let path = opts.db_path();
    {
        let mut conn = smon_history::db::open_writer(&path).expect("open");
        let tx = conn.transaction().expect("tx");
        for m in 0..7 * 60 {
            let at = start + m * 60_000;
            smon_history::procs::write(&tx, "lab:busy", at, &with_processes("ann")).expect("write");
        }
        tx.commit().expect("commit");
    }
    let series =
        smon_history::reader::SqliteHistory::open(&opts, Some(writer.stats())).expect("reader");
    let real = Real {
        series,
        procs: StoredProcs {
            path,
            rest: Recorded::default(),
        },
        asked: Mutex::new(Vec::new()),
    };
    (writer, real)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_page_picks_ranges_zooms_and_shows_processes_at_a_point() {
    let _turn = crate::ONE_BROWSER.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_owned();
    let (writer, real) = tokio::task::spawn_blocking(move || seven_hours(&data))
        .await
        .expect("history");
    let real = Arc::new(real);
    let srv = serve(dir.path(), Some(real.clone() as Arc<dyn History>)).await;
    let feeder = {
        let (web, stop) = (srv.web.clone(), srv.stop.clone());
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
    let (admin_ok, admin_out) = browse(&srv.base, "admin", ADMIN_PASSWORD).await;
    let (viewer_ok, viewer_out) = browse(&srv.base, "viewer", VIEWER_PASSWORD).await;
    srv.stop.cancel();
    let _ = feeder.await;
    let _ = srv.server.await;
    tokio::task::spawn_blocking(move || writer.stop().expect("stop"))
        .await
        .expect("stop");
    assert!(admin_ok, "browser.mjs history (admin) failed:\n{admin_out}");
    assert!(
        viewer_ok,
        "browser.mjs history (viewer) failed:\n{viewer_out}"
    );
    // What the page asked: a 6-hour range, then a zoom inside it.
    let asked = real.asked.lock().expect("lock");
    let spans: Vec<u64> = asked
        .iter()
        .filter(|(of, _)| of == "lab:busy")
        .map(|(_, q)| q.to_ms - q.from_ms)
        .collect();
    let six = spans
        .iter()
        .position(|s| *s == 6 * 3_600_000)
        .unwrap_or_else(|| panic!("no 6-hour query: {spans:?}"));
    assert!(
        spans.get(six + 1).is_some_and(|s| *s < 3 * 3_600_000),
        "no zoom after the 6 hours: {spans:?}"
    );
    assert!(asked.iter().any(|(of, _)| of == "lab"), "the cluster page");
}

/// Processes and GPU use from a real database (`smon_history::procs` on a SQLite file in a
/// tempdir); series and storage from [`Recorded`].
struct StoredProcs {
    path: std::path::PathBuf,
    rest: Recorded,
}

impl History for StoredProcs {
    fn host_series(
        &self,
        host: &str,
        q: &SeriesQuery,
    ) -> Result<SeriesAnswer, smon_history::Error> {
        self.rest.host_series(host, q)
    }

    fn cluster_series(
        &self,
        cluster: &str,
        q: &SeriesQuery,
    ) -> Result<SeriesAnswer, smon_history::Error> {
        self.rest.cluster_series(cluster, q)
    }

    fn processes_at(
        &self,
        host: &str,
        at_ms: u64,
        shown: Shown,
    ) -> Result<ProcessesAnswer, smon_history::Error> {
        let conn = smon_history::db::open_reader(&self.path)?;
        smon_history::procs::processes_at(&conn, host, at_ms, shown)
    }

    fn gpu_usage(
        &self,
        from_ms: u64,
        to_ms: u64,
        by: UsageBy,
        host_ok: &dyn Fn(&str) -> bool,
    ) -> Result<GpuUsageAnswer, smon_history::Error> {
        let conn = smon_history::db::open_reader(&self.path)?;
        smon_history::procs::gpu_usage(&conn, from_ms, to_ms, by, host_ok)
    }

    fn storage(&self) -> Result<StorageAnswer, smon_history::Error> {
        self.rest.storage()
    }
}

/// A sample with a trainer (on GPU 0, owned by `user`) and a shell.
fn with_processes(user: &str) -> Snapshot {
    use smon_proto::{Gpu, GpuProcess, Process};
    let process = |pid: u32, name: &str, cpu: f32| Process {
        pid,
        user: user.into(),
        name: name.into(),
        cmdline: format!("/usr/bin/{name} {SECRET}"),
        cpu_percent: cpu,
        memory_bytes: 1 << 30,
        ..Default::default()
    };
    Snapshot {
        processes: vec![process(4242, "trainer", 1310.5), process(77, "bash", 0.5)],
        gpus: vec![Gpu {
            index: 0,
            uuid: "GPU-0".into(),
            processes: vec![GpuProcess {
                pid: 4242,
                name: "trainer".into(),
                user: user.into(),
                memory_used_bytes: Some(40 << 30),
                kind: "compute".into(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_processes_and_gpu_use_keep_the_role_rules() {
    const T0: u64 = 1_699_999_980_000; // a minute boundary
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(smon_history::db::FILE_NAME);
    {
        let mut conn = smon_history::db::open_writer(&path).expect("open");
        let tx = conn.transaction().expect("tx");
        // 30 minutes of ann's trainer on lab:busy, and of eve's on a host no longer in the fleet.
        for m in 0..30 {
            let at = T0 + m * 60_000;
            smon_history::procs::write(&tx, "lab:busy", at, &with_processes("ann")).expect("write");
            smon_history::procs::write(&tx, "gone:old", at, &with_processes("eve")).expect("write");
        }
        tx.commit().expect("commit");
    }
    let store = StoredProcs {
        path,
        rest: Recorded::default(),
    };
    let srv = serve(dir.path(), Some(Arc::new(store) as Arc<dyn History>)).await;
    let public = client(&srv.base, None).await;
    let viewer = client(&srv.base, Some(("viewer", VIEWER_PASSWORD))).await;
    let admin = client(&srv.base, Some(("admin", ADMIN_PASSWORD))).await;

    let at = T0 + 10 * 60_000 + 25_000;
    let a = admin.processes_at("lab:busy", at).await.expect("admin");
    assert_eq!(a.at, Some(T0 + 10 * 60_000), "the minute holding `at`");
    assert_eq!(a.top_cpu[0].pid, 4242);
    assert!(a.top_cpu[0].cmdline.contains(SECRET), "{a:?}");
    assert_eq!(a.gpu[0].user, "ann");
    let v = viewer.processes_at("lab:busy", at).await.expect("viewer");
    let p = public.processes_at("lab:busy", at).await.expect("public");
    for (who, a) in [("viewer", &v), ("public", &p)] {
        let text = serde_json::to_string(a).expect("json");
        assert!(!text.contains(SECRET), "{who} got a command line: {text}");
        assert_eq!(a.top_cpu[0].name, "trainer", "{who}");
    }
    assert_eq!(
        (v.top_cpu[0].user.as_str(), v.gpu[0].user.as_str()),
        ("ann", "ann")
    );
    assert!(
        !serde_json::to_string(&p).expect("json").contains("ann"),
        "{p:?}"
    );
    // Nothing stored near a time long before.
    let none = admin
        .processes_at("lab:busy", T0 - 86_400_000)
        .await
        .expect("empty");
    assert_eq!(none.at, None);

    // GPU use: ann held GPU 0 for 30 minutes; eve's host is not in the fleet any more.
    let to = T0 + 30 * 60_000;
    let u = viewer
        .gpu_usage(T0, to, UsageBy::User, None)
        .await
        .expect("by user");
    assert_eq!(u.rows.len(), 1, "{u:?}");
    assert_eq!(u.rows[0].key, "ann");
    assert!((u.rows[0].gpu_hours - 0.5).abs() < 1e-9, "{u:?}");
    let g = public
        .gpu_usage(T0, to, UsageBy::Gpu, Some("lab:busy"))
        .await
        .expect("by gpu");
    assert_eq!(g.rows.len(), 1, "{g:?}");
    // Keyed by the GPU's UUID, not its index.
    assert_eq!(g.rows[0].key, "lab:busy/GPU-0");
    let e = public
        .gpu_usage(T0, to, UsageBy::User, None)
        .await
        .expect_err("public by user");
    assert_eq!(e.status(), Some(403), "{e}");
    srv.close().await;
}

/// A sample with only the CPU use.
fn cpu_only(cpu: f32) -> Arc<Snapshot> {
    Arc::new(Snapshot {
        cpu: Some(Cpu {
            total_percent: cpu,
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_series_and_storage_come_back_through_the_routes() {
    use smon_history::reader::SqliteHistory;
    use smon_history::writer::{QUEUE, Write, Writer};
    use smon_history::{Retention, StorageOptions};

    const T0: u64 = 1_700_006_400_000; // a day boundary
    const MIN: u64 = 60_000;
    let now = T0 + 2 * 60 * MIN;
    let clock: smon_history::writer::Clock = Arc::new(move || now);
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StorageOptions {
        dir: dir.path().join("data"),
        retention: Retention::default(),
    };
    let writer = Writer::start_with(opts.clone(), clock.clone(), QUEUE).expect("writer");
    // 30 minutes every second: lab:busy at 30 % with one spike to 95 % in minute 12, lab:idle
    // at 10 %.
    let start = now - 30 * MIN;
    for s in 0..30 * 60u64 {
        let at = start + s * 1000;
        let busy = if s == 12 * 60 + 7 { 95.0 } else { 30.0 };
        for (host, cpu) in [("lab:busy", busy), ("lab:idle", 10.0)] {
            assert!(writer.send(Write::Sample {
                host: host.into(),
                at_ms: at,
                snapshot: cpu_only(cpu),
            }));
        }
    }
    let w = tokio::task::spawn_blocking(move || {
        writer.sync(Some(now)).expect("sync");
        writer
    })
    .await
    .expect("sync");
    let history = SqliteHistory::open_with(&opts, Some(w.stats()), clock).expect("reader");
    let srv = serve(dir.path(), Some(Arc::new(history) as Arc<dyn History>)).await;
    let public = client(&srv.base, None).await;

    // One host, a point per minute: every sample's tier, the spike kept in `max`.
    let a = public
        .host_history("lab:busy", &["cpu_percent"], start, now, 30)
        .await
        .expect("host series");
    assert_eq!(a.tier, Tier::Raw);
    assert!((25..=35).contains(&a.t.len()), "about 30 points: {a:?}");
    let s = &a.series[0];
    assert_eq!(s.metric, "cpu_percent");
    let spikes: Vec<usize> = (0..a.t.len()).filter(|&i| s.max[i] == Some(95.0)).collect();
    assert_eq!(
        spikes.len(),
        1,
        "the spike is kept in one point's max: {a:?}"
    );
    for i in 0..a.t.len() {
        let avg = s.avg[i].expect("avg");
        if spikes.contains(&i) {
            assert!(
                avg > 30.0 && avg < 35.0,
                "the spike's point averages it out: {avg}"
            );
        } else {
            assert_eq!((avg, s.max[i]), (30.0, Some(30.0)), "point {i}");
        }
    }

    // The cluster: the mean over its hosts, from the 1-minute tier.
    let c = public
        .cluster_history("lab", &["cpu_percent"], start, now, 30)
        .await
        .expect("cluster series");
    assert_eq!(c.tier, Tier::Minute);
    let avgs: Vec<f64> = c.series[0].avg.iter().flatten().copied().collect();
    assert!(avgs.len() >= 14, "a point every minute or two: {c:?}");
    assert!(
        avgs.iter().filter(|v| (**v - 20.0).abs() < 1e-6).count() == avgs.len() - 1,
        "(30 + 10) / 2 but where the spike was: {avgs:?}"
    );
    assert!(
        c.series[0].max.contains(&Some(52.5)),
        "the spike's minute: (95 + 10) / 2: {c:?}"
    );

    // A metric of a host with nothing stored: no points with values.
    let e = public
        .host_history("web:front", &["mem_percent"], start, now, 30)
        .await
        .expect("empty series");
    assert!(
        e.series.iter().all(|s| s.avg.iter().all(Option::is_none)),
        "{e:?}"
    );

    // The storage page: the file, the raw tier's bytes, no write error.
    let admin = client(&srv.base, Some(("admin", ADMIN_PASSWORD))).await;
    let st = admin.storage().await.expect("storage");
    assert!(st.path.ends_with(smon_history::db::FILE_NAME), "{st:?}");
    assert!(st.bytes > 0 && st.write_error.is_none(), "{st:?}");
    let raw = st.tiers.iter().find(|t| t.name == "raw").expect("raw tier");
    assert!(raw.bytes > 0 && raw.retention_s == 86_400, "{raw:?}");
    assert_eq!(
        st.remote_write.len(),
        1,
        "from the server's remote-write stats"
    );
    srv.close().await;
    tokio::task::spawn_blocking(move || w.stop().expect("stop"))
        .await
        .expect("stop");
}
