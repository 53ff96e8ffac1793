//! `manager.mode = "self"`: the binary keeps its own server alive. The parent process runs the
//! server as a child (the same binary with `--no-supervise`), probes its health, and restarts it
//! when it exits or stops answering (a frozen server, the known failure of long-running live
//! views, is killed and replaced), with exponential backoff and a crash-loop limit. Each restart
//! is logged with its reason. SIGTERM/SIGINT stop the child with the manager; SIGHUP is passed
//! on to the child (the aggregator reloads its config on it), so `kill -HUP` works on either
//! process.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::health::Unhealthy;

/// Set in the child's environment by the manager.
const MANAGED_ENV: &str = "SMON_MANAGED";

/// Called first thing by a server started by the manager: the server ends with its manager (a
/// killed manager must not leave an orphan server holding the ports).
pub fn die_with_manager() {
    if std::env::var_os(MANAGED_ENV).is_none() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
        // The manager may already be gone (then we were re-parented to init or a subreaper).
        if rustix::process::getppid().is_none_or(|p| p.as_raw_nonzero().get() == 1) {
            std::process::exit(1);
        }
    }
}

/// Validated manager settings (mode `self`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagerSettings {
    /// Time between health probes.
    pub probe_interval: Duration,
    /// Consecutive failed probes before the child is restarted.
    pub probe_failures: u32,
    /// How long a new child may take before probes count.
    pub startup_grace: Duration,
    /// More than this many restarts within `restart_window` is a crash loop: give up.
    pub max_restarts: u32,
    /// See `max_restarts`.
    pub restart_window: Duration,
}

impl Default for ManagerSettings {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(5),
            probe_failures: 3,
            startup_grace: Duration::from_secs(10),
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
        }
    }
}

/// Why the manager stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Asked to stop (signal); the child was stopped.
    Stopped,
    /// Too many restarts in the window.
    CrashLoop,
    /// The child could not be started at all.
    SpawnFailed(SpawnError),
}

/// The child could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {exe}: {source}")]
pub struct SpawnError {
    /// The executable.
    pub exe: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl PartialEq for SpawnError {
    fn eq(&self, other: &Self) -> bool {
        self.exe == other.exe && self.source.kind() == other.source.kind()
    }
}

impl Eq for SpawnError {}

/// The wait after `n` consecutive restarts: 1 s doubling, capped at 30 s.
pub fn restart_delay(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.min(5)).min(Duration::from_secs(30))
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => "exited".into(),
    }
}

/// Asks the child to stop (SIGTERM), then kills it after `grace`.
async fn stop_child(child: &mut Child, grace: Duration) {
    #[cfg(target_os = "linux")]
    if let Some(pid) = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        // A stopped (frozen) process only sees the TERM once continued.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// Sends `signal` to the child, if it still runs.
fn signal_child(child: &Child, signal: rustix::process::Signal) {
    if let Some(pid) = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Runs and supervises the child `exe args.. --no-supervise` until `stop`. `probe` checks the
/// child's health (it gets a fresh future per probe and must apply its own deadline). Each
/// notification of `hangup` is passed on to the running child as SIGHUP.
pub async fn supervise<P, F>(
    exe: PathBuf,
    args: Vec<std::ffi::OsString>,
    settings: ManagerSettings,
    probe: P,
    hangup: &Notify,
    stop: CancellationToken,
) -> Outcome
where
    P: Fn() -> F,
    F: Future<Output = Result<(), Unhealthy>>,
{
    let mut restarts: VecDeque<Instant> = VecDeque::new();
    let mut consecutive = 0u32;
    loop {
        let mut child = match Command::new(&exe)
            .args(&args)
            .arg("--no-supervise")
            .env(MANAGED_ENV, "1")
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(source) => {
                return Outcome::SpawnFailed(SpawnError {
                    exe: exe.clone(),
                    source,
                });
            }
        };
        let pid = child.id().unwrap_or(0);
        tracing::info!(pid, "Manager: started the server.");
        let started = Instant::now();
        let mut failures = 0u32;
        let mut tick = tokio::time::interval(settings.probe_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate
        let reason = loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    stop_child(&mut child, Duration::from_millis(1800)).await;
                    return Outcome::Stopped;
                }
                _ = hangup.notified() => {
                    tracing::info!(pid, signal = "SIGHUP", "Manager: passing the signal on to the server.");
                    signal_child(&child, rustix::process::Signal::HUP);
                }
                st = child.wait() => {
                    break match st {
                        Ok(s) => describe(s),
                        Err(e) => format!("cannot wait for it: {e}"),
                    };
                }
                _ = tick.tick() => {
                    if started.elapsed() < settings.startup_grace {
                        // Still starting: a success ends the grace early, a failure does not count.
                        if probe().await.is_ok() { failures = 0; }
                        continue;
                    }
                    match probe().await {
                        Ok(()) => {
                            failures = 0;
                            // Healthy for a while: forget older restarts for the backoff.
                            if started.elapsed() > settings.restart_window { consecutive = 0; }
                        }
                        Err(e) => {
                            failures += 1;
                            tracing::warn!(pid, failures, error = %e, "Manager: health probe failed.");
                            if failures >= settings.probe_failures {
                                stop_child(&mut child, Duration::from_secs(2)).await;
                                break format!("stopped answering its health probe ({failures} failures, last: {e})");
                            }
                        }
                    }
                }
            }
        };
        let now = Instant::now();
        restarts.push_back(now);
        while restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > settings.restart_window)
        {
            restarts.pop_front();
        }
        if restarts.len() as u32 > settings.max_restarts {
            tracing::error!(pid, reason = %reason, restarts = restarts.len(), window_s = settings.restart_window.as_secs(), "Manager: the server keeps failing; giving up (crash loop).");
            return Outcome::CrashLoop;
        }
        let delay = restart_delay(consecutive);
        consecutive += 1;
        tracing::warn!(pid, reason = %reason, restart_in_ms = delay.as_millis() as u64, "Manager: restarting the server.");
        tokio::select! {
            _ = stop.cancelled() => return Outcome::Stopped,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Turns every SIGHUP this process gets into a notification for [`supervise`].
async fn forward_hangups(hangup: std::sync::Arc<Notify>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("Cannot install the SIGHUP handler; SIGHUP is not passed on.");
        return;
    };
    while hup.recv().await.is_some() {
        hangup.notify_one();
    }
}

/// The whole `self` mode for a binary's `main`: runs [`supervise`] on this executable with this
/// process's arguments until SIGTERM/SIGINT, and returns the exit code (1 after a crash loop).
pub fn run<P, F>(settings: ManagerSettings, probe: P) -> std::process::ExitCode
where
    P: Fn() -> F,
    F: Future<Output = Result<(), Unhealthy>>,
{
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        // Under systemd the manager would only get in the way (and never send READY=1).
        tracing::warn!(
            "Started by systemd (NOTIFY_SOCKET is set) with manager.mode \"self\": set manager.mode to \"systemd\", or the unit will time out waiting for READY=1."
        );
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("manager: cannot find this executable: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("manager: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let stop = CancellationToken::new();
        tokio::spawn(crate::daemon::stop_on_signal(stop.clone()));
        let hangup = std::sync::Arc::new(Notify::new());
        tokio::spawn(forward_hangups(hangup.clone()));
        tokio::spawn(crate::pages::release_after_startup(stop.clone()));
        match supervise(exe, args, settings, probe, &hangup, stop).await {
            Outcome::Stopped => std::process::ExitCode::SUCCESS,
            Outcome::CrashLoop => std::process::ExitCode::FAILURE,
            Outcome::SpawnFailed(e) => {
                tracing::error!(error = %e, "Manager: cannot start the server.");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delay_doubles_and_caps() {
        assert_eq!(restart_delay(0), Duration::from_secs(1));
        assert_eq!(restart_delay(3), Duration::from_secs(8));
        assert_eq!(restart_delay(9), Duration::from_secs(30));
    }

    fn fast() -> ManagerSettings {
        ManagerSettings {
            probe_interval: Duration::from_millis(100),
            probe_failures: 2,
            startup_grace: Duration::from_millis(0),
            max_restarts: 2,
            restart_window: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn a_child_that_keeps_dying_is_a_crash_loop() {
        // `false --no-supervise` exits at once with status 1: restarted, then given up.
        let started = Instant::now();
        let out = supervise(
            "false".into(),
            vec![],
            fast(),
            || async { Ok(()) },
            &Notify::new(),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(out, Outcome::CrashLoop);
        // Restarts waited 1 s then 2 s.
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_child_that_stops_answering_is_replaced_and_stop_ends_it() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};
        // `sleep 30 --no-supervise` would fail on the extra argument: use sh, which ignores it.
        let probes = Arc::new(AtomicU32::new(0));
        let p = probes.clone();
        let stop = CancellationToken::new();
        let s2 = stop.clone();
        let task = tokio::spawn(async move {
            supervise(
                "sh".into(),
                vec!["-c".into(), "sleep 30".into()],
                ManagerSettings {
                    max_restarts: 10,
                    ..fast()
                },
                move || {
                    let n = p.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n < 3 {
                            Err(Unhealthy::from("frozen"))
                        } else {
                            Ok(())
                        }
                    }
                },
                &Notify::new(),
                s2,
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(
            probes.load(Ordering::SeqCst) >= 4,
            "probed, failed twice, restarted, probed again"
        );
        stop.cancel();
        let out = tokio::time::timeout(Duration::from_secs(3), task)
            .await
            .expect("stops in time")
            .expect("join");
        assert_eq!(out, Outcome::Stopped);
    }

    #[tokio::test]
    async fn sighup_is_passed_on_to_the_child() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let got = dir.path().join("hup");
        // The child marks that its trap is set, then records each SIGHUP it gets.
        let script = format!(
            "trap 'echo hup >> {}' HUP; touch {}; while :; do sleep 0.05; done",
            got.display(),
            ready.display()
        );
        // As `run` does with `forward_hangups`: a SIGHUP handler in this process, so that a
        // SIGHUP ignored by whoever started the tests (`nohup` sets it to SIG_IGN, which a
        // child inherits, and a shell cannot trap a signal ignored on entry) reaches the
        // child with its default action, which its trap replaces.
        let _handler = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .expect("a SIGHUP handler");
        let hangup = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let (h, s) = (hangup.clone(), stop.clone());
        let task = tokio::spawn(async move {
            supervise(
                "sh".into(),
                vec!["-c".into(), script.into()],
                fast(),
                || async { Ok(()) },
                &h,
                s,
            )
            .await
        });
        // Generous: on a loaded machine (CI runs suites side by side) a shell may take
        // seconds to start, or to run its trap.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the child did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!got.exists(), "no SIGHUP before one is sent");
        hangup.notify_one();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !got.exists() {
            assert!(Instant::now() < deadline, "the child never got SIGHUP");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Passed on, not a restart: the same child is still running.
        assert_eq!(std::fs::read_to_string(&got).expect("read"), "hup\n");
        stop.cancel();
        let out = tokio::time::timeout(Duration::from_secs(3), task)
            .await
            .expect("stops in time")
            .expect("join");
        assert_eq!(out, Outcome::Stopped);
    }
}
