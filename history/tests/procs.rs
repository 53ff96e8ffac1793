//! Process, GPU and session history on real SQLite files: what is written is read back, at the
//! nearest minute, with users and command lines hidden where asked; GPU usage against sums done
//! by hand; logins and logouts across a reopen; retention; the online backup.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use smon_api::history::UsageBy;
use smon_history::procs::{self, LoginEvent, LoginKind, MINUTE_MS};
use smon_history::{Error, Retention, Shown, admin, db};
use smon_proto::{Gpu, GpuProcess, MigInstance, Process, Session, Snapshot};

const GIB: u64 = 1 << 30;
/// A minute boundary (2023-11-14 22:13:00 UTC).
const T0: u64 = 1_699_999_980_000;
const DAY: u64 = 86_400_000;
const ALL: Shown = Shown {
    command_lines: true,
    process_users: true,
};

fn db_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(db::FILE_NAME);
    (dir, path)
}

fn process(pid: u32, cpu: f32, memory: u64) -> Process {
    Process {
        pid,
        user: format!("user{}", pid % 3),
        name: format!("proc{pid}"),
        cmdline: format!("/usr/bin/proc{pid} --token=<redacted>"),
        cpu_percent: cpu,
        memory_bytes: memory,
        ..Default::default()
    }
}

fn gpu_proc(pid: u32, user: &str, memory: Option<u64>) -> GpuProcess {
    GpuProcess {
        pid,
        name: format!("train{pid}"),
        user: user.into(),
        memory_used_bytes: memory,
        kind: "compute".into(),
    }
}

fn gpu(index: u32, processes: Vec<GpuProcess>) -> Gpu {
    Gpu {
        index,
        uuid: format!("GPU-{index}"),
        processes,
        ..Default::default()
    }
}

fn write(path: &Path, host: &str, at_ms: u64, snap: &Snapshot) {
    let mut conn = db::open_writer(path).expect("open");
    let tx = conn.transaction().expect("tx");
    procs::write(&tx, host, at_ms, snap).expect("write");
    tx.commit().expect("commit");
}

/// 25 processes whose CPU and memory rankings differ: pid i has CPU (i * 7 % 25) + 0.125 %
/// and memory (i * 11 % 25) MiB.
fn busy_host() -> Snapshot {
    Snapshot {
        processes: (1..=25)
            .map(|i| process(i, (i * 7 % 25) as f32 + 0.125, u64::from(i * 11 % 25) << 20))
            .collect(),
        ..Default::default()
    }
}

#[test]
fn top_lists_are_stored_and_read_back() {
    let (_dir, path) = db_file();
    let snap = busy_host();
    write(&path, "c:h1", T0 + 42_000, &snap);

    let conn = db::open_reader(&path).expect("reader");
    let a = procs::processes_at(&conn, "c:h1", T0 + 59_999, ALL).expect("read");
    assert_eq!(a.host, "c:h1");
    assert_eq!(a.at, Some(T0));

    let mut by_cpu = snap.processes.clone();
    by_cpu.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
    let want: Vec<u32> = by_cpu.iter().take(10).map(|p| p.pid).collect();
    let got: Vec<u32> = a.top_cpu.iter().map(|p| p.pid).collect();
    assert_eq!(got, want);
    let mut by_mem = snap.processes.clone();
    by_mem.sort_by_key(|p| std::cmp::Reverse(p.memory_bytes));
    let want: Vec<u32> = by_mem.iter().take(10).map(|p| p.pid).collect();
    let got: Vec<u32> = a.top_memory.iter().map(|p| p.pid).collect();
    assert_eq!(got, want);

    for p in a.top_cpu.iter().chain(&a.top_memory) {
        let orig = snap
            .processes
            .iter()
            .find(|o| o.pid == p.pid)
            .expect("a listed process");
        assert_eq!(p.name, orig.name);
        assert_eq!(p.user, orig.user);
        assert_eq!(p.cmdline, orig.cmdline);
        assert_eq!(p.memory_bytes, orig.memory_bytes);
        // Kept in hundredths: 0.125 rounds to 0.13.
        assert!(
            (p.cpu_percent - orig.cpu_percent).abs() <= 0.0051,
            "{p:?} vs {orig:?}"
        );
    }
    assert!(a.gpu.is_empty());

    // Another host, and a host with nothing listed, are told apart from "nothing stored".
    write(&path, "c:idle", T0, &Snapshot::default());
    let idle = procs::processes_at(&conn, "c:idle", T0, ALL).expect("idle");
    assert_eq!(idle.at, Some(T0));
    assert!(idle.top_cpu.is_empty() && idle.top_memory.is_empty());
    let none = procs::processes_at(&conn, "c:nobody", T0, ALL).expect("unknown host");
    assert_eq!(none.at, None);
}

#[test]
fn the_nearest_stored_minute_answers_within_five_minutes() {
    let (_dir, path) = db_file();
    let one = |pid| Snapshot {
        processes: vec![process(pid, 50.0, 1 << 20)],
        ..Default::default()
    };
    write(&path, "c:h", T0 + 10 * MINUTE_MS + 5_000, &one(10));
    write(&path, "c:h", T0 + 13 * MINUTE_MS + 59_000, &one(13));
    // Written again in the same minute: the newer replaces it.
    write(&path, "c:h", T0 + 10 * MINUTE_MS + 50_000, &one(11));

    let conn = db::open_reader(&path).expect("reader");
    let at = |m: u64, s: u64| {
        let a =
            procs::processes_at(&conn, "c:h", T0 + m * MINUTE_MS + s * 1000, ALL).expect("read");
        a.at.map(|t| ((t - T0) / MINUTE_MS, a.top_cpu[0].pid))
    };
    assert_eq!(at(10, 30), Some((10, 11)));
    assert_eq!(at(11, 30), Some((10, 11)), "one before wins a tie");
    assert_eq!(at(12, 10), Some((13, 13)));
    assert_eq!(at(18, 59), Some((13, 13)), "five minutes after");
    assert_eq!(at(5, 0), Some((10, 11)), "five minutes before");
    assert_eq!(at(19, 0), None, "six minutes after");
    assert_eq!(at(4, 59), None, "six minutes before");
}

#[test]
fn hidden_users_and_command_lines_are_blank() {
    let (_dir, path) = db_file();
    let mut snap = busy_host();
    snap.gpus = vec![gpu(0, vec![gpu_proc(7, "alice", Some(GIB))])];
    write(&path, "c:h", T0, &snap);
    let conn = db::open_reader(&path).expect("reader");

    let viewer = Shown {
        command_lines: false,
        process_users: true,
    };
    let a = procs::processes_at(&conn, "c:h", T0, viewer).expect("viewer");
    assert!(a.top_cpu.iter().all(|p| p.cmdline.is_empty()));
    assert!(a.top_cpu.iter().all(|p| p.user.starts_with("user")));
    assert_eq!(a.gpu[0].user, "alice");

    let public = Shown {
        command_lines: false,
        process_users: false,
    };
    let a = procs::processes_at(&conn, "c:h", T0, public).expect("public");
    for p in a.top_cpu.iter().chain(&a.top_memory) {
        assert!(p.cmdline.is_empty() && p.user.is_empty(), "{p:?}");
        assert!(p.name.starts_with("proc"), "names stay: {p:?}");
    }
    assert_eq!(a.gpu.len(), 1);
    assert_eq!(a.gpu[0].user, "");
    assert_eq!(a.gpu[0].name, "train7");
    let json = serde_json::to_string(&a).expect("json");
    assert!(!json.contains("alice") && !json.contains("redacted") && !json.contains("user1"));
}

/// Three minutes on two hosts:
/// - m0: a gpu0 alice 10 (2 GiB) + alice 11 (1 GiB); a gpu1 bob 20 (4 GiB); b gpu0 alice 10 (1 GiB)
/// - m1: a gpu0 alice 10 (2 GiB) + bob 21 (memory unknown)
/// - m2: a gpu0 carol 30 (3 GiB) on MIG instance 1, also listed on the GPU
fn gpu_history(path: &Path) {
    let m0 = Snapshot {
        gpus: vec![
            gpu(
                0,
                vec![
                    gpu_proc(10, "alice", Some(2 * GIB)),
                    gpu_proc(11, "alice", Some(GIB)),
                ],
            ),
            gpu(1, vec![gpu_proc(20, "bob", Some(4 * GIB))]),
        ],
        ..Default::default()
    };
    write(path, "a:1", T0 + 1_000, &m0);
    let b0 = Snapshot {
        gpus: vec![gpu(0, vec![gpu_proc(10, "alice", Some(GIB))])],
        ..Default::default()
    };
    write(path, "b:1", T0 + 2_000, &b0);
    let m1 = Snapshot {
        gpus: vec![
            gpu(
                0,
                vec![
                    gpu_proc(10, "alice", Some(2 * GIB)),
                    gpu_proc(21, "bob", None),
                ],
            ),
            gpu(1, vec![]),
        ],
        ..Default::default()
    };
    write(path, "a:1", T0 + MINUTE_MS + 1_000, &m1);
    write(path, "b:1", T0 + MINUTE_MS + 1_000, &Snapshot::default());
    let carol = gpu_proc(30, "carol", Some(3 * GIB));
    let mut g0 = gpu(0, vec![carol.clone()]);
    g0.mig_mode = Some(true);
    g0.mig_instances = vec![MigInstance {
        index: 1,
        uuid: "MIG-1".into(),
        processes: vec![carol],
        ..Default::default()
    }];
    let m2 = Snapshot {
        gpus: vec![g0],
        ..Default::default()
    };
    write(path, "a:1", T0 + 2 * MINUTE_MS + 1_000, &m2);
}

#[test]
fn gpu_usage_stays_with_the_card_when_another_falls_off_the_bus() {
    // GPUs A (index 0), B (1) and C (2), each held by one process, for 3 minutes; then B
    // falls off the bus and C becomes index 1 for 2 more minutes. C's usage is all under C.
    let (_dir, path) = db_file();
    let card = |index: u32, name: &str, pid: u32| Gpu {
        index,
        uuid: format!("GPU-{name}"),
        processes: vec![gpu_proc(pid, "ann", Some(GIB))],
        ..Default::default()
    };
    for m in 0..5u64 {
        let gpus = if m < 3 {
            vec![card(0, "A", 10), card(1, "B", 11), card(2, "C", 12)]
        } else {
            vec![card(0, "A", 10), card(1, "C", 12)]
        };
        let snap = Snapshot {
            gpus,
            ..Default::default()
        };
        write(&path, "a:1", T0 + m * MINUTE_MS + 1_000, &snap);
    }
    let conn = db::open_reader(&path).expect("reader");
    let all = |_: &str| true;
    let by_gpu =
        procs::gpu_usage(&conn, T0, T0 + 5 * MINUTE_MS, UsageBy::Gpu, &all).expect("by gpu");
    assert_eq!(
        rows(&by_gpu),
        vec![
            row("a:1/GPU-A", 5.0, 5.0, 1),
            row("a:1/GPU-C", 5.0, 5.0, 1),
            row("a:1/GPU-B", 3.0, 3.0, 1),
        ]
    );
    // The minute after: C's process at index 1, with its GPU's UUID.
    let at = procs::processes_at(&conn, "a:1", T0 + 4 * MINUTE_MS, ALL).expect("m4");
    let c: Vec<_> = at
        .gpu
        .iter()
        .map(|g| (g.gpu, g.parent_uuid.as_str(), g.pid))
        .collect();
    assert_eq!(c, [(0, "GPU-A", 10), (1, "GPU-C", 12)]);
}

#[test]
fn gpu_usage_stored_before_uuids_keeps_its_index_keys() {
    // A database of the schema before GPUs were keyed by UUID (migrations 1 to 7), with an
    // hour of usage and a minute of GPU processes by index; opened by this version, which
    // migrates it. Its rows read back under `host/#index`; new rows under the UUID.
    let (_dir, path) = db_file();
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        for sql in [
            include_str!("../migrations/0001_metrics.sql"),
            include_str!("../migrations/0002_processes.sql"),
            include_str!("../migrations/0003_outbox.sql"),
            include_str!("../migrations/0004_alerts.sql"),
            include_str!("../migrations/0005_tokens_audit.sql"),
            include_str!("../migrations/0006_reach.sql"),
            include_str!("../migrations/0007_inventory.sql"),
        ] {
            c.execute_batch(sql).expect("old schema");
        }
        c.pragma_update(None, "user_version", 7).expect("version");
        // The hour before T0's.
        let hour = T0 - T0 % 3_600_000 - 3_600_000;
        c.execute_batch(&format!(
            "INSERT INTO proc_text (id, text, last_ms) VALUES (1, 'GPU-old', {T0}), \
                 (2, 'trainer', {T0}), (3, 'ann', {T0}); \
             INSERT INTO gpu_processes VALUES ({m}, 'a:1', 1, 77, 1, 2, 3, {GIB}); \
             INSERT INTO gpu_usage_hour VALUES ({hour}, 'a:1', 1, 3, 60, {mem}), \
                 ({hour}, 'a:1', 1, -1, 60, {mem}); \
             INSERT INTO gpu_pids VALUES ('a:1', 1, 77, 3, {hour}, {m});",
            m = hour + 10 * MINUTE_MS,
            mem = 60 * GIB,
        ))
        .expect("old rows");
    }
    // Opening it for writing brings the schema up to date; a new minute, by UUID.
    write(
        &path,
        "a:1",
        T0 + 1_000,
        &Snapshot {
            gpus: vec![gpu(1, vec![gpu_proc(78, "ann", Some(GIB))])],
            ..Default::default()
        },
    );
    let conn = db::open_reader(&path).expect("reader");
    let all = |_: &str| true;
    let hour = T0 - T0 % 3_600_000 - 3_600_000;
    // The old hour from the hourly rollup, T0's minute from the minutes.
    let by_gpu = procs::gpu_usage(&conn, hour, T0 + MINUTE_MS, UsageBy::Gpu, &all).expect("by gpu");
    assert_eq!(
        rows(&by_gpu),
        vec![row("a:1/#1", 60.0, 60.0, 1), row("a:1/GPU-1", 1.0, 1.0, 1)]
    );
    let by_user =
        procs::gpu_usage(&conn, hour, T0 + MINUTE_MS, UsageBy::User, &all).expect("by user");
    assert_eq!(rows(&by_user), vec![row("ann", 61.0, 61.0, 2)]);
    // The old GPU rows got the key of their index (-1 - index).
    let keys: Vec<(i64, i64)> = conn
        .prepare("SELECT pid, gpu_key FROM gpu_processes ORDER BY pid")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(keys[0], (77, -2));
    assert!(keys[1].1 >= 1, "a UUID's string id: {keys:?}");
}

fn rows(a: &smon_api::history::GpuUsageAnswer) -> Vec<(String, f64, f64, u64)> {
    a.rows
        .iter()
        .map(|r| {
            (
                r.key.clone(),
                // In minutes and GiB-minutes, rounded, to compare exactly.
                (r.gpu_hours * 60.0 * 1e6).round() / 1e6,
                (r.gpu_memory_gib_hours * 60.0 * 1e6).round() / 1e6,
                r.processes,
            )
        })
        .collect()
}

fn row(key: &str, minutes: f64, gib_minutes: f64, processes: u64) -> (String, f64, f64, u64) {
    (key.into(), minutes, gib_minutes, processes)
}

#[test]
fn gpu_usage_matches_the_sums_done_by_hand() {
    let (_dir, path) = db_file();
    gpu_history(&path);
    let conn = db::open_reader(&path).expect("reader");
    let all = |_: &str| true;
    let end = T0 + 3 * MINUTE_MS;

    let by_user = procs::gpu_usage(&conn, T0, end, UsageBy::User, &all).expect("by user");
    assert_eq!(by_user.by, UsageBy::User);
    assert_eq!((by_user.from, by_user.to), (T0, end));
    assert_eq!(
        rows(&by_user),
        vec![
            // (a,gpu0,m0) (b,gpu0,m0) (a,gpu0,m1); 3+1+2 GiB; (a,10) (a,11) (b,10)
            row("alice", 3.0, 6.0, 3),
            // (a,gpu1,m0) (a,gpu0,m1); 4 GiB (21's unknown); (a,20) (a,21)
            row("bob", 2.0, 4.0, 2),
            // once, though listed on the GPU and on its MIG instance
            row("carol", 1.0, 3.0, 1),
        ]
    );

    let by_host = procs::gpu_usage(&conn, T0, end, UsageBy::Host, &all).expect("by host");
    assert_eq!(
        rows(&by_host),
        vec![row("a:1", 4.0, 12.0, 5), row("b:1", 1.0, 1.0, 1)]
    );

    let by_gpu = procs::gpu_usage(&conn, T0, end, UsageBy::Gpu, &all).expect("by gpu");
    assert_eq!(
        rows(&by_gpu),
        vec![
            // Keyed by UUID (the index can change), the host's GPU-0 and GPU-1.
            row("a:1/GPU-0", 3.0, 8.0, 4),
            row("a:1/GPU-1", 1.0, 4.0, 1),
            row("b:1/GPU-0", 1.0, 1.0, 1),
        ]
    );

    // The caller's host filter, and the range (minute m1 onwards; m2 excluded by `to`).
    let only_a = |h: &str| h == "a:1";
    let a = procs::gpu_usage(&conn, T0, end, UsageBy::User, &only_a).expect("only a");
    assert_eq!(rows(&a)[0], row("alice", 2.0, 5.0, 2));
    let m1 = procs::gpu_usage(
        &conn,
        T0 + MINUTE_MS + 30_000,
        T0 + 2 * MINUTE_MS,
        UsageBy::User,
        &all,
    )
    .expect("m1");
    assert_eq!(
        rows(&m1),
        vec![row("alice", 1.0, 2.0, 1), row("bob", 1.0, 0.0, 1)]
    );
    let empty = procs::gpu_usage(&conn, end, end + DAY, UsageBy::Gpu, &all).expect("empty");
    assert!(empty.rows.is_empty());

    let err = procs::gpu_usage(&conn, end, T0, UsageBy::Gpu, &all).expect_err("backwards");
    assert!(matches!(err, Error::BadQuery(_)), "{err}");

    // The MIG process keeps its instance's UUID; the others their GPU's.
    let at = procs::processes_at(&conn, "a:1", T0 + 2 * MINUTE_MS, ALL).expect("m2");
    assert_eq!(at.gpu.len(), 1);
    assert_eq!(
        (at.gpu[0].gpu, at.gpu[0].gpu_uuid.as_str(), at.gpu[0].pid),
        (0, "MIG-1", 30)
    );
    assert_eq!(at.gpu[0].parent_uuid, "GPU-0", "the MIG instance's GPU");
    let at = procs::processes_at(&conn, "a:1", T0, ALL).expect("m0");
    let got: Vec<_> = at
        .gpu
        .iter()
        .map(|g| {
            (
                g.gpu,
                g.gpu_uuid.as_str(),
                g.pid,
                g.user.as_str(),
                g.memory_bytes,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "GPU-0", 10, "alice", Some(2 * GIB)),
            (0, "GPU-0", 11, "alice", Some(GIB)),
            (1, "GPU-1", 20, "bob", Some(4 * GIB)),
        ]
    );
}

fn session(user: &str, terminal: &str, from: &str, login_ms: u64) -> Session {
    Session {
        user: user.into(),
        terminal: terminal.into(),
        from: from.into(),
        login_unix_ms: login_ms,
        pid: 100,
    }
}

fn sessions(path: &Path, host: &str, at_ms: u64, list: Vec<Session>) {
    let mut conn = db::open_writer(path).expect("open");
    let tx = conn.transaction().expect("tx");
    let snap = Snapshot {
        sessions: list,
        ..Default::default()
    };
    procs::sessions(&tx, host, at_ms, &snap).expect("sessions");
    tx.commit().expect("commit");
}

fn event(
    at_ms: u64,
    kind: LoginKind,
    user: &str,
    terminal: &str,
    from: &str,
    login_ms: u64,
) -> LoginEvent {
    LoginEvent {
        at_ms,
        kind,
        user: user.into(),
        terminal: terminal.into(),
        from: from.into(),
        login_ms,
    }
}

#[test]
fn logins_and_logouts_are_kept_across_a_reopen() {
    let (_dir, path) = db_file();
    let alice = session("alice", "pts/0", "10.0.0.9", T0 - 5_000);
    let bob = session("bob", "tty1", "", T0 + 30_000);
    sessions(&path, "c:h", T0, vec![alice.clone()]);
    sessions(&path, "c:h", T0 + 1_000, vec![alice.clone()]);
    sessions(&path, "c:h", T0 + 31_000, vec![bob.clone(), alice.clone()]);
    // A sample whose utmp could not be read says nothing about who logged out.
    {
        let mut conn = db::open_writer(&path).expect("open");
        let tx = conn.transaction().expect("tx");
        let unread = Snapshot {
            errors: vec!["sessions: /var/run/utmp: permission denied".into()],
            ..Default::default()
        };
        procs::sessions(&tx, "c:h", T0 + 40_000, &unread).expect("unread");
        tx.commit().expect("commit");
    }
    // Another host's sessions are its own.
    sessions(&path, "c:other", T0, vec![]);
    // `sessions` opens a fresh connection each time; the last set survives on disk, so a
    // logout while the server was down is seen by the first sample after it.
    sessions(&path, "c:h", T0 + 600_000, vec![bob.clone()]);
    // A session without a login time logs in at the sample's time.
    sessions(
        &path,
        "c:h",
        T0 + 660_000,
        vec![bob.clone(), session("carol", "pts/1", "", 0)],
    );

    let conn = db::open_reader(&path).expect("reader");
    let all = procs::logins(&conn, "c:h", 0, u64::MAX / 2).expect("logins");
    assert_eq!(
        all,
        vec![
            event(
                T0 - 5_000,
                LoginKind::Login,
                "alice",
                "pts/0",
                "10.0.0.9",
                T0 - 5_000
            ),
            event(
                T0 + 30_000,
                LoginKind::Login,
                "bob",
                "tty1",
                "",
                T0 + 30_000
            ),
            event(
                T0 + 600_000,
                LoginKind::Logout,
                "alice",
                "pts/0",
                "10.0.0.9",
                T0 - 5_000
            ),
            event(T0 + 660_000, LoginKind::Login, "carol", "pts/1", "", 0),
        ]
    );
    let later = procs::logins(&conn, "c:h", T0 + 60_000, T0 + 660_000).expect("range");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].kind, LoginKind::Logout);
    assert!(
        procs::logins(&conn, "c:other", 0, u64::MAX / 2)
            .expect("other")
            .is_empty()
    );
    let json = serde_json::to_value(&later[0]).expect("json");
    assert_eq!(json["kind"], "logout");
    assert_eq!(json["at"], T0 + 600_000);
    assert!(procs::logins(&conn, "c:h", 2, 1).is_err());
}

fn count(path: &Path, table: &str) -> i64 {
    let conn = db::open_reader(path).expect("reader");
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

#[test]
fn retention_deletes_what_is_past_its_age_and_nothing_else() {
    let (_dir, path) = db_file();
    let now = T0 + 60 * DAY;
    let retention = Retention::default(); // processes: 30 days
    let cutoff = now - 30 * DAY;
    let snap = |pid: u32, cmd: &str| Snapshot {
        processes: vec![Process {
            cmdline: cmd.into(),
            ..process(pid, 10.0, 1 << 20)
        }],
        gpus: vec![gpu(0, vec![gpu_proc(pid, "alice", Some(GIB))])],
        ..Default::default()
    };
    // Old rows; "shared" is written again recently, "old-only" is not.
    write(&path, "c:h", cutoff - 10 * DAY, &snap(1, "old-only"));
    write(
        &path,
        "c:h",
        cutoff - 10 * DAY + MINUTE_MS,
        &snap(2, "shared"),
    );
    write(&path, "c:h", cutoff - MINUTE_MS, &snap(3, "just-too-old"));
    // Kept: at the cutoff exactly, and recent.
    write(&path, "c:h", cutoff, &snap(4, "at-cutoff"));
    write(&path, "c:h", now - DAY, &snap(5, "shared"));
    sessions(
        &path,
        "c:h",
        cutoff - DAY,
        vec![session("alice", "pts/0", "", cutoff - DAY)],
    );
    sessions(
        &path,
        "c:h",
        now - DAY,
        vec![session("bob", "pts/0", "", now - DAY)],
    );
    assert_eq!(count(&path, "login_events"), 3);

    let mut conn = db::open_writer(&path).expect("open");
    let tx = conn.transaction().expect("tx");
    let deleted = procs::retain(&tx, now, &retention).expect("retain");
    tx.commit().expect("commit");
    drop(conn);
    // 3 top rows, 3 GPU rows, 2 login events (alice's login, her logout at now - 1 d stays).
    assert!(deleted >= 8, "deleted {deleted}");

    let reader = db::open_reader(&path).expect("reader");
    let a = procs::processes_at(&reader, "c:h", cutoff - 10 * DAY, ALL).expect("old");
    assert_eq!(a.at, None);
    // The minute before the cutoff is gone: its nearest stored minute is now the cutoff's.
    let a = procs::processes_at(&reader, "c:h", cutoff - MINUTE_MS, ALL).expect("old");
    assert_eq!(a.at, Some(cutoff));
    let kept = procs::processes_at(&reader, "c:h", cutoff, ALL).expect("cutoff");
    assert_eq!(kept.at, Some(cutoff));
    assert_eq!(kept.top_cpu[0].cmdline, "at-cutoff");
    assert_eq!(kept.gpu[0].user, "alice");
    let recent = procs::processes_at(&reader, "c:h", now - DAY, ALL).expect("recent");
    assert_eq!(
        recent.top_cpu[0].cmdline, "shared",
        "a refreshed string stays"
    );
    assert_eq!(count(&path, "top_processes"), 2);
    assert_eq!(count(&path, "gpu_processes"), 2);
    assert_eq!(count(&path, "gpu_pids"), 2, "pids 4 and 5");
    // Per user and for any user: the hour holding the cutoff (kept whole) and now - 1 d.
    assert_eq!(count(&path, "gpu_usage_hour"), 4);
    let usage = procs::gpu_usage(&reader, cutoff, now, UsageBy::User, &|_| true).expect("usage");
    assert_eq!(rows(&usage), vec![row("alice", 2.0, 2.0, 2)]);
    let texts: Vec<String> = reader
        .prepare("SELECT text FROM proc_text ORDER BY text")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(!texts.contains(&"old-only".to_string()), "{texts:?}");
    assert!(texts.contains(&"shared".to_string()), "{texts:?}");
    assert!(texts.contains(&"at-cutoff".to_string()), "{texts:?}");
    let events = procs::logins(&reader, "c:h", 0, u64::MAX / 2).expect("logins");
    let kinds: Vec<_> = events.iter().map(|e| (e.user.as_str(), e.kind)).collect();
    assert_eq!(
        kinds,
        vec![("bob", LoginKind::Login), ("alice", LoginKind::Logout)],
        "at the same time, a login before a logout"
    );

    // The tiers of the admin page.
    let sizes = admin::sizes(&reader).expect("sizes");
    let top = sizes
        .iter()
        .find(|s| s.table == "top_processes")
        .expect("top_processes listed");
    assert!(top.bytes >= 4096, "{sizes:?}");
    let tiers = procs::tiers(&reader, &retention, &sizes).expect("tiers");
    assert_eq!(tiers[0].name, "processes");
    assert_eq!(tiers[0].retention_s, 30 * 86_400);
    assert_eq!(tiers[0].oldest_ms, Some(cutoff));
    assert!(tiers[0].bytes >= 3 * 4096, "{tiers:?}");
    assert_eq!(tiers[1].name, "events");
    assert_eq!(tiers[1].oldest_ms, Some(now - DAY));
}

#[test]
fn backup_copies_a_database_being_written_and_refuses_to_overwrite() {
    let (dir, path) = db_file();
    write(&path, "c:h", T0, &busy_host());
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (path, stop, written) = (path.clone(), stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut conn = db::open_writer(&path).expect("writer");
            let snap = busy_host();
            let mut m = 1;
            while !stop.load(Ordering::Relaxed) {
                let tx = conn.transaction().expect("tx");
                for h in 0..20 {
                    procs::write(&tx, &format!("c:h{h}"), T0 + m * MINUTE_MS, &snap)
                        .expect("write");
                }
                tx.commit().expect("commit");
                written.fetch_add(20, Ordering::Relaxed);
                m += 1;
            }
        })
    };
    while written.load(Ordering::Relaxed) < 200 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = dir.path().join("copy.sqlite3");
    admin::backup(&path, &out, false).expect("backup while writing");
    let during = written.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer thread");
    assert!(
        written.load(Ordering::Relaxed) > during,
        "the writer kept writing"
    );

    let copy = rusqlite::Connection::open(&out).expect("open the copy");
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let n: i64 = copy
        .query_row("SELECT COUNT(*) FROM top_processes", [], |r| r.get(0))
        .expect("count");
    assert!(n > 200, "the copy has {n} rows");
    // One consistent snapshot: whole transactions of 20 hosts (plus the first row).
    assert_eq!((n - 1) % 20, 0, "{n} rows");
    let a = procs::processes_at(&copy, "c:h", T0, ALL).expect("read the copy");
    assert_eq!(a.top_cpu.len(), 10);
    drop(copy);
    assert!(!dir.path().join("copy.sqlite3.tmp").exists());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy holds command lines and sessions");
    }

    let err = admin::backup(&path, &out, false).expect_err("exists");
    assert!(
        matches!(&err, Error::File { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{err}"
    );
    assert!(err.to_string().contains("copy.sqlite3"), "{err}");
    admin::backup(&path, &out, true).expect("overwrite when asked");
    let copy = db::open_reader(&out).expect("the new copy opens");
    let m: i64 = copy
        .query_row("SELECT COUNT(*) FROM top_processes", [], |r| r.get(0))
        .expect("count");
    assert!(m >= n, "{m} >= {n}");

    let itself = admin::backup(&path, &path, true).expect_err("onto itself");
    assert!(
        itself.to_string().contains("the database itself"),
        "{itself}"
    );

    let missing = admin::backup(
        &dir.path().join("absent.sqlite3"),
        &dir.path().join("x"),
        false,
    );
    assert!(missing.is_err());
    assert!(!dir.path().join("x").exists());
    assert!(admin::file_bytes(&path) > 0);
}

/// A small deterministic generator (no dependency needed for a fixed pattern).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// (gpu, pid, user, memory) of one host-minute.
type Held = Vec<(u32, u32, String, Option<u64>)>;

fn random_minute(rng: &mut Lcg) -> Held {
    let mut held: Held = Vec::new();
    for _ in 0..rng.next(5) {
        let (gpu, pid) = (rng.next(3) as u32, 1 + rng.next(6) as u32);
        if held.iter().any(|h| (h.0, h.1) == (gpu, pid)) {
            continue;
        }
        let memory = (rng.next(4) > 0).then(|| (1 + rng.next(8)) * GIB / 2);
        held.push((gpu, pid, format!("u{}", pid % 3), memory));
    }
    held
}

fn snapshot_of(held: &Held) -> Snapshot {
    Snapshot {
        gpus: (0..3)
            .map(|g| {
                gpu(
                    g,
                    held.iter()
                        .filter(|h| h.0 == g)
                        .map(|h| gpu_proc(h.1, &h.2, h.3))
                        .collect(),
                )
            })
            .collect(),
        ..Default::default()
    }
}

/// Minutes and GiB-minutes per key, summed by brute force over the model.
fn expected(
    model: &std::collections::BTreeMap<(String, u64), Held>,
    from: u64,
    to: u64,
    by: UsageBy,
) -> Vec<(String, f64, f64)> {
    use std::collections::{BTreeMap, BTreeSet};
    let lo = procs::minute_of(from);
    // (key, host, gpu, minute) held, and memory per key.
    let mut held: BTreeSet<(String, String, u32, u64)> = BTreeSet::new();
    let mut memory: BTreeMap<String, u64> = BTreeMap::new();
    for ((host, minute), rows) in model {
        if *minute < lo || *minute >= to {
            continue;
        }
        for (gpu, _, user, mem) in rows {
            let key = match by {
                UsageBy::User => user.clone(),
                UsageBy::Host => host.clone(),
                UsageBy::Gpu => format!("{host}/GPU-{gpu}"),
            };
            held.insert((key.clone(), host.clone(), *gpu, *minute));
            *memory.entry(key).or_default() += mem.unwrap_or(0);
        }
    }
    let mut minutes: BTreeMap<String, u64> = BTreeMap::new();
    for (key, ..) in held {
        *minutes.entry(key).or_default() += 1;
    }
    let mut out: Vec<(String, f64, f64)> = minutes
        .into_iter()
        .map(|(k, m)| {
            let gib = memory[&k] as f64 / GIB as f64;
            (k, m as f64, (gib * 1e6).round() / 1e6)
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[test]
fn gpu_usage_over_whole_hours_matches_the_minutes_it_rolls_up() {
    let (_dir, path) = db_file();
    let start = 1_700_002_800_000 + 17 * MINUTE_MS; // an hour boundary, then 17 minutes
    let minutes = 200;
    let mut rng = Lcg(7);
    let mut model = std::collections::BTreeMap::new();
    let mut conn = db::open_writer(&path).expect("open");
    for m in 0..minutes {
        for host in ["a:1", "b:2"] {
            if rng.next(6) == 0 {
                continue; // no sample this minute
            }
            let at = start + m * MINUTE_MS + rng.next(60_000);
            let tx = conn.transaction().expect("tx");
            if rng.next(5) == 0 {
                // Written twice in one minute: the second replaces the first everywhere.
                procs::write(&tx, host, at, &snapshot_of(&random_minute(&mut rng)))
                    .expect("first write");
            }
            let held = random_minute(&mut rng);
            procs::write(&tx, host, at, &snapshot_of(&held)).expect("write");
            tx.commit().expect("commit");
            model.insert((host.to_string(), procs::minute_of(at)), held);
        }
    }
    drop(conn);
    let reader = db::open_reader(&path).expect("reader");
    let end = start + minutes * MINUTE_MS;
    let hour = 3_600_000;
    let h1 = start - start % hour + hour;
    let ranges = [
        (start, end),
        (start + 7 * MINUTE_MS + 13_000, end - 23 * MINUTE_MS - 1),
        (h1, h1 + 2 * hour),
        (h1 - 1, h1 + 2 * hour + 1),
        (h1 + 5 * MINUTE_MS, h1 + 50 * MINUTE_MS),
        (start - hour, end + hour),
    ];
    let all = |_: &str| true;
    for (from, to) in ranges {
        for by in [UsageBy::User, UsageBy::Host, UsageBy::Gpu] {
            let got: Vec<(String, f64, f64)> = procs::gpu_usage(&reader, from, to, by, &all)
                .expect("usage")
                .rows
                .iter()
                .map(|r| {
                    (
                        r.key.clone(),
                        (r.gpu_hours * 60.0 * 1e6).round() / 1e6,
                        (r.gpu_memory_gib_hours * 60.0 * 1e6).round() / 1e6,
                    )
                })
                .collect();
            assert_eq!(got, expected(&model, from, to, by), "{by:?} {from}..{to}");
        }
    }
    // Over the whole range every process was seen: distinct (host, pid) per user.
    let by_user = procs::gpu_usage(&reader, start, end, UsageBy::User, &all).expect("usage");
    for row in &by_user.rows {
        let pids: std::collections::BTreeSet<(&str, u32)> = model
            .iter()
            .flat_map(|((host, _), rows)| rows.iter().map(move |r| (host.as_str(), r)))
            .filter(|(_, r)| r.2 == row.key)
            .map(|(host, r)| (host, r.1))
            .collect();
        assert_eq!(row.processes, pids.len() as u64, "{}", row.key);
    }
    assert!(by_user.rows.len() == 3, "{:?}", by_user.rows);
}

#[test]
fn the_benchmark_backfill_writes_every_host_minute() {
    let (_dir, path) = db_file();
    let b = procs::ProcsBackfill {
        hosts: 3,
        clusters: 2,
        from_ms: T0 + 30_000,
        to_ms: T0 + 5 * MINUTE_MS,
        gpus: 2,
        seed: 9,
    };
    assert_eq!(procs::backfill(&path, &b).expect("backfill"), 15);
    let conn = db::open_reader(&path).expect("reader");
    for host in ["c0:node0", "c1:node1", "c0:node2"] {
        for m in 0..5 {
            let a = procs::processes_at(&conn, host, T0 + m * MINUTE_MS, ALL).expect("read");
            assert_eq!(a.at, Some(T0 + m * MINUTE_MS), "{host} {m}");
            assert_eq!((a.top_cpu.len(), a.top_memory.len()), (10, 10));
            assert!(
                a.top_cpu
                    .windows(2)
                    .all(|w| w[0].cpu_percent >= w[1].cpu_percent)
            );
        }
    }
    // The same seed writes the same history.
    let (_dir2, path2) = db_file();
    procs::backfill(&path2, &b).expect("again");
    let again = db::open_reader(&path2).expect("reader");
    let one = procs::processes_at(&conn, "c1:node1", T0, ALL).expect("one");
    let two = procs::processes_at(&again, "c1:node1", T0, ALL).expect("two");
    assert_eq!(one, two);
}
