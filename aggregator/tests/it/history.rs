//! The history end to end, with the real binaries: a real agent on loopback, the
//! `smon-aggregator` binary writing `storage.dir`, read back through the `History` reader.
//!
//! - the history survives a restart, and `kill -9` during writes leaves a readable database
//!   that lost at most [`CRASH_BOUND`] of samples (the figure the README gives);
//! - `smon-aggregator backup` copies the database while the server writes it;
//! - a full disk (a small tmpfs, mounted when the tests run as root) is reported in the log and
//!   `/metrics`, the live view keeps updating, and the history resumes once space is freed;
//! - the per-minute top processes (shortened to a second, in-process) are stored.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use smon_history::reader::SqliteHistory;
use smon_history::{History, SeriesQuery, Shown, StorageOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{Agent, Binary, TOKEN, free_port};

/// The most samples a `kill -9` may lose: the writer commits every second, and a sample
/// waits at most that long in its batch (plus the feed's and the writer's queues, which are
/// empty at this load). Measured from the start of the last stored second (the raw tier
/// answers per second), so up to a second more than the loss itself. The README's "Crash
/// safety" gives it.
const CRASH_BOUND: Duration = Duration::from_millis(2500);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A config polling `agent` every 200 ms (no own host), public read-only, history in `data`.
fn write_config(dir: &Path, port: u16, agent: &Agent, data: &Path) -> PathBuf {
    let cfg = dir.join("config_app.json");
    let text = serde_json::json!({
        "server": {"port": port, "auth": {"public_read_only": true}},
        "monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": false,
            "clusters": [{"name": "lab", "hosts": [
                {"name": "n1", "address": agent.addr.to_string(), "token": TOKEN}]}]},
        "storage": {"dir": data},
    });
    std::fs::write(&cfg, text.to_string()).expect("config");
    cfg
}

fn options(data: &Path) -> StorageOptions {
    StorageOptions {
        dir: data.to_owned(),
        retention: smon_history::Retention::default(),
    }
}

/// The seconds (their start, ms) with a stored `cpu_percent` sample of `lab:n1` in
/// `[from, to]` (the raw tier answers per second).
fn stored_times(data: &Path, from_ms: u64, to_ms: u64) -> Vec<u64> {
    let h = SqliteHistory::open(&options(data), None).expect("the database opens");
    let a = h
        .host_series(
            "lab:n1",
            &SeriesQuery {
                metrics: vec!["cpu_percent".into()],
                from_ms,
                to_ms,
                points: 5000,
            },
        )
        .expect("query");
    let Some(s) = a.series.first() else {
        return Vec::new();
    };
    a.t.iter()
        .zip(&s.avg)
        .filter(|(_, v)| v.is_some())
        .map(|(t, _)| *t)
        .collect()
}

/// The whole file checked by SQLite itself.
fn integrity(data: &Path) -> String {
    let h = SqliteHistory::open(&options(data), None).expect("the database opens");
    h.with_conn(|c| {
        c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .map_err(|source| smon_history::Error::Sqlite {
                path: data.to_owned(),
                source,
            })
    })
    .expect("integrity_check")
}

/// Waits until `lab:n1` is up in the REST API.
async fn wait_up(b: &Binary, limit: Duration) {
    let start = Instant::now();
    loop {
        if let Some(t) = b.get("/api/v1/hosts").await {
            let v: Value = serde_json::from_str(&t).unwrap_or_default();
            if v.as_array()
                .is_some_and(|a| a.iter().any(|h| h["id"] == "lab:n1" && h["status"] == "up"))
            {
                return;
            }
        }
        assert!(
            start.elapsed() < limit,
            "lab:n1 not up within {limit:?}; log:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_restart_and_kill_9_loses_at_most_the_bound() {
    let agent = Agent::start("127.0.0.1");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = free_port("127.0.0.1");
    let cfg = write_config(dir.path(), port, &agent, &data);
    let log = dir.path().join("aggregator.log");
    let t0 = now_ms();

    // 1. Write for 3 s, stop cleanly (SIGTERM): everything received is kept.
    let mut b = Binary::spawn(&cfg, port, log.clone());
    wait_up(&b, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.signal("-TERM");
    let stopped = now_ms();
    let first = stored_times(&data, t0, stopped);
    assert!(
        first.len() >= 3,
        "{} seconds stored of 3 s at 200 ms",
        first.len()
    );
    let clean_loss = stopped - first.last().copied().unwrap_or(0);
    assert!(
        clean_loss < 1500,
        "a clean stop lost {clean_loss} ms of samples"
    );

    // 2. Restart on the same directory: the old samples are there, new ones are added.
    let mut b = Binary::spawn(&cfg, port, log.clone());
    wait_up(&b, Duration::from_secs(20)).await;
    // Write a while, then kill -9 in the middle of the writes.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let killed = now_ms();
    b.signal("-KILL");
    let after_kill = stored_times(&data, t0, killed + 1000);
    assert_eq!(integrity(&data), "ok", "the file after kill -9");
    // Every second the first run stored is still there. (The second run may add a second
    // before `stopped`: the agent's latest sample, taken before the stop, is the first one a
    // new connection gets.)
    let missing: Vec<u64> = first
        .iter()
        .copied()
        .filter(|t| !after_kill.contains(t))
        .collect();
    assert!(
        missing.is_empty(),
        "the first run's samples survive the restart and the kill: missing {missing:?} of {first:?}"
    );
    let last = after_kill.last().copied().unwrap_or(0);
    let lost = Duration::from_millis(killed.saturating_sub(last));
    eprintln!("kill -9: the last stored sample was {lost:?} before the kill");
    assert!(
        last > stopped && lost <= CRASH_BOUND,
        "kill -9 lost {lost:?} of samples (bound {CRASH_BOUND:?})"
    );

    // 3. Start again after the kill: it opens the file (recovering the WAL) and goes on.
    let b = Binary::spawn(&cfg, port, log);
    wait_up(&b, Duration::from_secs(20)).await;
    let restarted = now_ms();
    let start = Instant::now();
    loop {
        let all = stored_times(&data, t0, now_ms() + 1000);
        if all.iter().any(|t| *t > restarted) {
            assert!(all.len() >= after_kill.len(), "nothing was lost at restart");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no new sample after the restart; log:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !b.log().contains("ERROR"),
        "no error in the log:\n{}",
        b.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_the_database_while_the_server_writes() {
    let agent = Agent::start("127.0.0.1");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = free_port("127.0.0.1");
    let cfg = write_config(dir.path(), port, &agent, &data);
    let b = Binary::spawn(&cfg, port, dir.path().join("aggregator.log"));
    wait_up(&b, Duration::from_secs(20)).await;
    let t0 = now_ms();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let out = dir.path().join("backup.sqlite3");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_smon-aggregator"))
            .args(["backup".as_ref(), "--out".as_ref(), out.as_os_str()])
            .args(["--config".as_ref(), cfg.as_os_str()])
            .output()
            .expect("backup")
    };
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let took = now_ms();
    // A second backup to the same file is refused, with the reason.
    let again = run();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already exists"), "{err}");

    // The copy is a database of its own holding what was written up to the backup.
    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).expect("dir");
    std::fs::copy(&out, restored.join(smon_history::db::FILE_NAME)).expect("copy");
    assert_eq!(integrity(&restored), "ok");
    let copied = stored_times(&restored, t0 - 10_000, took + 1000);
    assert!(copied.len() >= 2, "{} seconds in the backup", copied.len());
    assert!(copied.iter().any(|t| *t >= t0));

    // Without history there is nothing to back up: said so.
    let off = dir.path().join("off.json");
    std::fs::write(
        &off,
        r#"{"monitor":{"mode":"app"},"storage":{"enabled":false}}"#,
    )
    .expect("config");
    let o = Command::new(env!("CARGO_BIN_EXE_smon-aggregator"))
        .args([
            "backup".as_ref(),
            "--out".as_ref(),
            dir.path().join("x").as_os_str(),
        ])
        .args(["--config".as_ref(), off.as_os_str()])
        .output()
        .expect("backup");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("storage.enabled is false"), "{err}");
}

/// A tmpfs of `size` at `at`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with `filler` until it is full.
fn fill(filler: &Path) {
    use std::io::Write as _;
    let mut f = std::fs::File::create(filler).expect("filler");
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

async fn last_seen(b: &Binary) -> u64 {
    let t = b.get("/api/v1/hosts").await.unwrap_or_default();
    let v: Value = serde_json::from_str(&t).unwrap_or_default();
    v.as_array()
        .and_then(|a| a.iter().find(|h| h["id"] == "lab:n1"))
        .and_then(|h| h["last_seen_ms"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_and_the_live_view_goes_on() {
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "SKIPPED: a_full_disk_is_reported_and_the_live_view_goes_on mounts a tmpfs and needs root"
        );
        return;
    }
    let agent = Agent::start("127.0.0.1");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let Some(_tmpfs) = Tmpfs::mount(&data, "8m") else {
        eprintln!(
            "SKIPPED: a_full_disk_is_reported_and_the_live_view_goes_on: cannot mount a tmpfs here"
        );
        return;
    };
    let port = free_port("127.0.0.1");
    let cfg = write_config(dir.path(), port, &agent, &data);
    let b = Binary::spawn(&cfg, port, dir.path().join("aggregator.log"));
    wait_up(&b, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = b.get("/metrics").await.expect("metrics");
    assert_eq!(metric(&m, "smon_history_disk_full"), Some(0.0), "{m}");

    // Fill the disk: the writer fails, says so, and the live view goes on.
    let filler = data.join("filler");
    fill(&filler);
    let start = Instant::now();
    let m = loop {
        let m = b
            .get("/metrics")
            .await
            .expect("metrics while the disk is full");
        if metric(&m, "smon_history_disk_full") == Some(1.0) {
            break m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "disk full not reported in /metrics:\n{m}\nlog:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        metric(&m, "smon_history_write_errors_total").is_some_and(|v| v >= 1.0),
        "{m}"
    );
    let log = b.log().to_lowercase();
    assert!(
        log.contains("full") && log.contains("warn"),
        "a warning in the log:\n{log}"
    );
    let seen = last_seen(&b).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen_later = last_seen(&b).await;
    assert!(
        seen_later >= seen + 1000,
        "the overview keeps updating while the disk is full ({seen} -> {seen_later})"
    );
    assert!(b.get("/healthz").await.is_some(), "healthy");

    // Free the space: the history resumes by itself.
    std::fs::remove_file(&filler).expect("free");
    let freed = now_ms();
    let start = Instant::now();
    loop {
        let m = b.get("/metrics").await.expect("metrics");
        let resumed = stored_times(&data, freed, now_ms() + 1000)
            .iter()
            .any(|t| *t > freed);
        if metric(&m, "smon_history_disk_full") == Some(0.0) && resumed {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the history did not resume:\n{m}\nlog:\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(integrity(&data), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_processes_are_stored_every_period() {
    let agent = Agent::start("127.0.0.1");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cfg = serde_json::json!({
        "server": {"auth": {"public_read_only": true}},
        "monitor": {"mode": "app", "poll_interval_ms": 200, "include_self": true,
            "self_cluster": "local", "self_name": "me", "self_gpu": "off",
            "clusters": [{"name": "lab", "hosts": [
                {"name": "n1", "address": agent.addr.to_string(), "token": TOKEN}]}]},
        "storage": {"dir": data},
    });
    let mut settings =
        smon_aggregator::config::load_str(&cfg.to_string(), "t.json", dir.path()).expect("valid");
    // A second instead of a minute: the first fetch at a random point of it, then every one.
    settings.processes_every = Duration::from_secs(1);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let security = smon_aggregator::prepare_security(&settings, &listener).expect("security");
    let stop = CancellationToken::new();
    let running = smon_aggregator::start(settings, listener, security, stop.clone())
        .await
        .expect("started");
    let task = tokio::spawn(running.wait());

    let h = SqliteHistory::open(&options(&data), None).expect("reader");
    // The fake GPU's health signals, stored and read back through the REST route: the SM
    // clock, and counters that are 0 (reported, so stored as 0, not left out). GPU series
    // are labelled by the GPU's UUID (the fake GPU 0's), not by its index.
    let gpu0 = "GPU-fake0000-0000-0000-0000-000000000000";
    let q = format!(
        "{base}/api/v1/hosts/lab:n1/history?metrics=gpu_sm_clock_mhz,\
         gpu_ecc_corrected_errors{{{gpu0}}},gpu_remapped_rows_correctable,gpu_throttle_reasons\
         &from={}",
        now_ms() - 60_000
    );
    let start = Instant::now();
    let series = loop {
        let r = reqwest::get(&q).await.expect("history route");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        let series = v["series"].as_array().cloned().unwrap_or_default();
        let newest = |m: &str| {
            series
                .iter()
                .find(|s| s["metric"] == m && s["label"] == gpu0)
                .and_then(|s| s["max"].as_array()?.iter().rev().find_map(Value::as_f64))
        };
        if let (Some(clock), Some(ecc), Some(rows), Some(throttle)) = (
            newest("gpu_sm_clock_mhz"),
            newest("gpu_ecc_corrected_errors"),
            newest("gpu_remapped_rows_correctable"),
            newest("gpu_throttle_reasons"),
        ) {
            break (clock, ecc, rows, throttle);
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "no GPU health series stored: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The fake GPU 0: 345 MHz + 15 per point of use, index-many corrected errors and
    // remapped rows, and only the benign "gpu_idle" or nothing as throttle reasons.
    assert!((345.0..=1845.0).contains(&series.0), "{series:?}");
    assert_eq!((series.1, series.2, series.3), (0.0, 0.0, 0.0));
    let r = reqwest::get(format!(
        "{base}/api/v1/hosts/lab:n1/history?metrics=gpu_sm_clock_ghz"
    ))
    .await
    .expect("history route");
    assert_eq!(r.status(), 400);
    let why = r.text().await.expect("body");
    assert!(why.contains("gpu_sm_clock_mhz"), "the known names: {why}");

    let all = Shown {
        command_lines: true,
        process_users: true,
    };
    let start = Instant::now();
    let (agent_top, own_top) = loop {
        let at = now_ms();
        let a = h.processes_at("lab:n1", at, all).expect("query");
        let o = h.processes_at("local:me", at, all).expect("query");
        if !a.top_cpu.is_empty() && !o.top_cpu.is_empty() {
            break (a, o);
        }
        // On a loaded machine an agent's first answers may wait (up to 5 s each) for a fresh
        // process list.
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "no top processes stored: {a:?} {o:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for top in [&agent_top, &own_top] {
        assert!(
            top.top_cpu.len() <= 10 && top.top_memory.len() <= 10 && !top.top_memory.is_empty(),
            "top 10 by CPU and by memory: {top:?}"
        );
        assert!(top.top_memory.iter().all(|p| !p.name.is_empty()));
    }
    // The agent's fake GPU runs its own process: stored with its GPU.
    assert!(!agent_top.gpu.is_empty(), "GPU processes: {agent_top:?}");
    stop.cancel();
    task.await.expect("join").expect("clean stop");
}
