//! supervisord's programs through a real `supervisord` (Debian package `supervisor`) on a unix
//! socket with a username and password, in a temp dir: the sample lists the programs and
//! marks their processes; `Control.Program` starts, stops and restarts a program or a group
//! (checked with the real `supervisorctl`); `Control.TailLog` returns a program's output; a
//! wrong password and a stopped supervisord become the sample's error while the rest of the
//! sample flows. `Control.Signal` on processes the test starts, with its refusals.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use smon_proto::control_client::ControlClient;
use smon_proto::{
    GetSnapshotRequest, LogStream, Parts, Program, ProgramAction, ProgramRequest, SignalName,
    SignalRequest, Snapshot, TailLogRequest,
};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::support::{self, Bearer, TOKEN};

#[path = "../../../tests/supervisord_common.rs"]
pub(crate) mod supervisord_common;
use supervisord_common::{PASSWORD, Supervisord, USER};

/// The control token of these tests (the read token is `support::TOKEN`).
const CONTROL: &str = "control-test-token-supervisor-0123";

/// What the program `jobs:b` prints.
const MARKER: &str = "smon-tail-marker-7f3a";

type Client = ControlClient<InterceptedService<Channel, Bearer>>;

/// The programs: `sleeper` and the group `jobs` (`a`, `b`) run `sleep`, `broken` exits at
/// once (FATAL).
fn programs() -> String {
    format!(
        "[program:sleeper]\n\
         command=sleep 1000\n\
         startsecs=1\n\
         stopwaitsecs=2\n\
         \n\
         [program:broken]\n\
         command=/bin/false\n\
         startsecs=1\n\
         startretries=0\n\
         autorestart=false\n\
         \n\
         [group:jobs]\n\
         programs=a,b\n\
         \n\
         [program:a]\n\
         command=sleep 1000\n\
         startsecs=1\n\
         stopwaitsecs=2\n\
         \n\
         [program:b]\n\
         command=/bin/sh -c 'echo {MARKER}; exec sleep 1000'\n\
         startsecs=1\n\
         stopwaitsecs=2\n\
         stdout_logfile={{d}}/b.out.log\n"
    )
}

/// Settings with the read token, no GPUs, and the `control` block `control` (JSON).
fn settings(control: serde_json::Value) -> smon_agent::config::Settings {
    let cfg = serde_json::json!({
        "monitor": {"mode": "node", "interval_ms": 100, "token": TOKEN, "gpu": "off"},
        "control": control,
    });
    smon_agent::config::load_str(
        &cfg.to_string(),
        "test.json",
        Path::new("."),
        &smon_agent::config::Env::default(),
    )
    .expect("valid test config")
}

/// A Control client for `addr` sending `token`, retrying for up to 10 s while the agent starts.
async fn control(addr: SocketAddr, token: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
        {
            Ok(ch) => return ControlClient::with_interceptor(ch, Bearer(Some(token.to_owned()))),
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The detail snapshot of `addr`.
async fn snapshot(addr: SocketAddr) -> Snapshot {
    let mut c = support::client(addr, Some(TOKEN)).await;
    c.get_snapshot(GetSnapshotRequest {
        parts: Some(Parts::DETAIL),
    })
    .await
    .expect("snapshot")
    .into_inner()
}

/// Polls the detail snapshot until `ok` holds (up to `limit`); the last one either way.
async fn snapshot_until(
    addr: SocketAddr,
    limit: Duration,
    ok: impl Fn(&Snapshot) -> bool,
) -> (bool, Snapshot) {
    let deadline = Instant::now() + limit;
    loop {
        let s = snapshot(addr).await;
        if ok(&s) {
            return (true, s);
        }
        if Instant::now() > deadline {
            return (false, s);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn find<'a>(s: &'a Snapshot, group: &str, name: &str) -> Option<&'a Program> {
    s.programs
        .as_ref()?
        .programs
        .iter()
        .find(|p| p.group == group && p.name == name)
}

fn state(s: &Snapshot, group: &str, name: &str) -> String {
    find(s, group, name)
        .map(|p| p.state.clone())
        .unwrap_or_default()
}

async fn act(c: &mut Client, action: ProgramAction, name: &str) -> Vec<Program> {
    c.program(ProgramRequest {
        action: action as i32,
        name: name.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("{action:?} {name}: {e:?}"))
    .into_inner()
    .programs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_are_read_and_started_stopped_restarted_and_tailed() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut sup = Supervisord::start(dir.path(), &programs());
    let agent = support::start_with(settings(serde_json::json!({
        "token": CONTROL,
        "supervisor": {"url": sup.url(), "username": USER, "password": PASSWORD, "interval_s": 1},
    })))
    .await;

    // The sample lists the programs with their states, and marks the program's process.
    let (ok, s) = snapshot_until(agent.addr, Duration::from_secs(30), |s| {
        state(s, "sleeper", "sleeper") == "RUNNING"
            && state(s, "jobs", "a") == "RUNNING"
            && state(s, "jobs", "b") == "RUNNING"
            && state(s, "broken", "broken") == "FATAL"
            && find(s, "sleeper", "sleeper").is_some_and(|p| {
                s.processes
                    .iter()
                    .any(|q| q.pid == p.pid && q.program == "sleeper:sleeper")
            })
    })
    .await;
    assert!(
        ok,
        "programs not as expected: {:?}\n{}",
        s.programs,
        sup.log()
    );
    let programs = s.programs.as_ref().expect("programs");
    assert!(programs.error.is_none(), "{programs:?}");
    assert_eq!(programs.url, sup.url());
    assert!(programs.age_ms < 5_000, "{programs:?}");
    let sleeper = find(&s, "sleeper", "sleeper").expect("sleeper").clone();
    assert!(sleeper.pid > 0 && sleeper.start_unix_ms > 0, "{sleeper:?}");
    let b = find(&s, "jobs", "b").expect("b");
    assert!(
        s.processes
            .iter()
            .any(|q| q.pid == b.pid && q.program == "jobs:b"),
        "the group's program is marked as group:name"
    );
    assert!(
        s.processes
            .iter()
            .filter(|q| !q.program.is_empty())
            .all(|q| ["sleeper:sleeper", "jobs:a", "jobs:b"].contains(&q.program.as_str())),
        "only the programs' processes are marked"
    );

    let mut c = control(agent.addr, CONTROL).await;

    // STOP, START, RESTART one program, checked with the real supervisorctl.
    let r = act(&mut c, ProgramAction::Stop, "sleeper:sleeper").await;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].state, "STOPPED", "{r:?}");
    sup.says("sleeper", "STOPPED");
    let r = act(&mut c, ProgramAction::Start, "sleeper").await;
    assert_eq!(r[0].state, "RUNNING", "{r:?}");
    sup.says("sleeper", "RUNNING");
    let before = r[0].pid;
    let r = act(&mut c, ProgramAction::Restart, "sleeper:sleeper").await;
    assert_eq!(r[0].state, "RUNNING", "{r:?}");
    assert!(
        r[0].pid > 0 && r[0].pid != before,
        "a new pid: {before} then {r:?}"
    );
    let out = sup.says("sleeper", "RUNNING");
    assert!(out.contains(&format!("pid {}", r[0].pid)), "{out}");

    // RESTART of a stopped program starts it; of one that cannot start, supervisord's fault.
    act(&mut c, ProgramAction::Stop, "sleeper").await;
    let r = act(&mut c, ProgramAction::Restart, "sleeper").await;
    assert_eq!(r[0].state, "RUNNING", "{r:?}");
    let e = c
        .program(ProgramRequest {
            action: ProgramAction::Restart as i32,
            name: "broken".into(),
        })
        .await
        .expect_err("cannot start");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().starts_with("supervisord refused: "), "{e:?}");

    // A whole group.
    let r = act(&mut c, ProgramAction::Stop, "jobs:*").await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r.iter().all(|p| p.state == "STOPPED"), "{r:?}");
    sup.says("jobs:*", "STOPPED");
    let r = act(&mut c, ProgramAction::Start, "jobs:*").await;
    assert!(r.iter().all(|p| p.state == "RUNNING"), "{r:?}");
    sup.says("jobs:*", "RUNNING");

    // Refusals: unknown name, bad name, a stopped program stopped again, the read token.
    let e = c
        .program(ProgramRequest {
            action: ProgramAction::Start as i32,
            name: "nosuch:thing".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = c
        .program(ProgramRequest {
            action: ProgramAction::Start as i32,
            name: "a b".into(),
        })
        .await
        .expect_err("bad name");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = c
        .program(ProgramRequest {
            action: ProgramAction::Unspecified as i32,
            name: "sleeper".into(),
        })
        .await
        .expect_err("no action");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let mut reader = control(agent.addr, TOKEN).await;
    let e = reader
        .program(ProgramRequest {
            action: ProgramAction::Stop as i32,
            name: "sleeper".into(),
        })
        .await
        .expect_err("read token");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    sup.says("sleeper", "RUNNING");

    // The tail of a program's output (b was restarted with its group: it printed again).
    let t = c
        .tail_log(TailLogRequest {
            name: "jobs:b".into(),
            stream: LogStream::Stdout as i32,
            bytes: 0,
            from: None,
        })
        .await
        .expect("tail")
        .into_inner();
    assert!(t.text.contains(MARKER), "{t:?}");
    assert!(t.offset >= t.text.len() as u64, "{t:?}");
    // Following: from the end, nothing; from 4 bytes before it, those 4 bytes.
    let follow = |from: u64| TailLogRequest {
        name: "jobs:b".into(),
        stream: LogStream::Stdout as i32,
        bytes: 0,
        from: Some(from),
    };
    let n = c
        .tail_log(follow(t.offset))
        .await
        .expect("follow")
        .into_inner();
    assert_eq!((n.text.as_str(), n.offset), ("", t.offset), "{n:?}");
    let n = c
        .tail_log(follow(t.offset - 4))
        .await
        .expect("follow")
        .into_inner();
    assert_eq!(n.text, t.text[t.text.len() - 4..], "{n:?}");
    assert!(!n.overflow, "{n:?}");
    // Past the end (a rotated log): read from its start.
    let n = c
        .tail_log(follow(t.offset + 1000))
        .await
        .expect("follow")
        .into_inner();
    assert_eq!(n.text, t.text, "{n:?}");
    let e = c
        .tail_log(TailLogRequest {
            name: "jobs:b".into(),
            stream: LogStream::Stdout as i32,
            bytes: 64 * 1024 + 1,
            from: None,
        })
        .await
        .expect_err("too much");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // A wrong password: the sample says so, and still carries the rest.
    let wrong = support::start_with(settings(serde_json::json!({
        "supervisor": {"url": sup.url(), "username": USER, "password": "not-the-password", "interval_s": 1},
    })))
    .await;
    let (ok, s) = snapshot_until(wrong.addr, Duration::from_secs(15), |s| {
        s.programs
            .as_ref()
            .and_then(|p| p.error.as_deref())
            .is_some_and(|e| e.contains("refused the credentials (401)"))
    })
    .await;
    assert!(ok, "no credentials error: {:?}", s.programs);
    let e = s
        .programs
        .as_ref()
        .and_then(|p| p.error.clone())
        .expect("error");
    assert_eq!(
        e,
        format!(
            "supervisord at {} refused the credentials (401): check control.supervisor.username/password",
            sup.url()
        )
    );
    assert!(!e.contains("not-the-password"));
    assert!(s.cpu.is_some() && s.memory.is_some() && !s.processes.is_empty());
    wrong.shutdown().await;

    // supervisord gone: the sample carries the error (and the last list, ageing); CPU and
    // memory still flow; actions are UNAVAILABLE.
    sup.stop();
    let (ok, s) = snapshot_until(agent.addr, Duration::from_secs(15), |s| {
        s.programs
            .as_ref()
            .and_then(|p| p.error.as_deref())
            .is_some_and(|e| e.contains("is supervisord running?"))
    })
    .await;
    assert!(ok, "no connection error: {:?}", s.programs);
    let p = s.programs.as_ref().expect("programs");
    assert!(
        p.error.as_deref().is_some_and(
            |e| e.starts_with(&format!("cannot connect to supervisord at {}", sup.url()))
        ),
        "{p:?}"
    );
    assert!(s.cpu.is_some() && s.memory.is_some() && s.process_count > 0);
    let seq = s.seq;
    let (ok, _) = snapshot_until(agent.addr, Duration::from_secs(5), |s| s.seq > seq + 2).await;
    assert!(ok, "samples keep coming");
    let e = c
        .program(ProgramRequest {
            action: ProgramAction::Start as i32,
            name: "sleeper".into(),
        })
        .await
        .expect_err("down");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    agent.shutdown().await;
}

#[tokio::test]
async fn program_calls_without_supervisor_are_a_failed_precondition() {
    let agent = support::start_with(settings(serde_json::json!({"token": CONTROL}))).await;
    let mut c = control(agent.addr, CONTROL).await;
    let e = c
        .program(ProgramRequest {
            action: ProgramAction::Start as i32,
            name: "x".into(),
        })
        .await
        .expect_err("off");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("control.supervisor.url"), "{e:?}");
    let s = snapshot(agent.addr).await;
    assert!(s.programs.is_none(), "no programs part without supervisord");
    agent.shutdown().await;
}

/// `sleep 1000` started through a shell that exits at once: not the agent's child.
fn orphan_sleep() -> u32 {
    let out = Command::new("/bin/sh")
        .args(["-c", "sleep 1000 >/dev/null 2>&1 </dev/null & echo $!"])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("pid")
}

/// Gone, or a zombie waiting for its (non-reaping) parent.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn signal(pid: u32, signal: SignalName) -> SignalRequest {
    SignalRequest {
        pid,
        signal: signal as i32,
    }
}

#[tokio::test]
async fn signals_reach_allowed_processes_only() {
    let agent = support::start_with(settings(serde_json::json!({
        "token": CONTROL, "signals": {"enabled": true},
    })))
    .await;
    let mut c = control(agent.addr, CONTROL).await;

    let pid = orphan_sleep();
    let r = c
        .signal(signal(pid, SignalName::Term))
        .await
        .expect("signalled")
        .into_inner();
    assert_eq!((r.pid, r.name.as_str()), (pid, "sleep"), "{r:?}");
    assert_eq!(r.user, support::current_user());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) {
        assert!(Instant::now() < deadline, "{pid} still runs after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Refused: pid 1, the agent itself, its child, a pid that does not exist, the read token.
    let e = c
        .signal(signal(1, SignalName::Hup))
        .await
        .expect_err("pid 1");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = c
        .signal(signal(std::process::id(), SignalName::Term))
        .await
        .expect_err("itself");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let mut child = Command::new("sleep").arg("1000").spawn().expect("sleep");
    let e = c
        .signal(signal(child.id(), SignalName::Kill))
        .await
        .expect_err("child");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("child of the agent"), "{e:?}");
    assert!(child.try_wait().expect("wait").is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
    let e = c
        .signal(signal(4_194_305, SignalName::Term))
        .await
        .expect_err("none");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = c
        .signal(signal(pid, SignalName::Unspecified))
        .await
        .expect_err("no signal");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let mut reader = control(agent.addr, TOKEN).await;
    let e = reader
        .signal(signal(1, SignalName::Term))
        .await
        .expect_err("read token");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    agent.shutdown().await;

    // Signals off (the default): FAILED_PRECONDITION naming the switch.
    let off = support::start_with(settings(serde_json::json!({"token": CONTROL}))).await;
    let mut c = control(off.addr, CONTROL).await;
    let pid = orphan_sleep();
    let e = c
        .signal(signal(pid, SignalName::Term))
        .await
        .expect_err("off");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("control.signals.enabled"), "{e:?}");
    off.shutdown().await;

    // A users list without the process's user (root's, when the tests run as root).
    let limited = support::start_with(settings(serde_json::json!({
        "token": CONTROL, "signals": {"enabled": true, "users": ["smon-no-such-user"]},
    })))
    .await;
    let mut c = control(limited.addr, CONTROL).await;
    let e = c
        .signal(signal(pid, SignalName::Term))
        .await
        .expect_err("user");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains(&format!(
            "belongs to {}, who is not in control.signals.users",
            support::current_user()
        )),
        "{e:?}"
    );
    assert!(!gone(pid), "not signalled");
    limited.shutdown().await;
    let _ = Command::new("kill").arg(pid.to_string()).status();
}
