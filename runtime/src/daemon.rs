//! What every smon daemon binary does the same way: the shared command-line flags, logging
//! set-up, stopping on signals, telling systemd about readiness and health (`Type=notify`
//! units with a watchdog), the open-file limit, and dropping privileges after binding.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::Unhealthy;

/// The command-line options both daemons share.
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Config file. Without it, the embedded default (the repository's example config) is
    /// used, with nothing to edit.
    #[arg(long, short)]
    pub config: Option<std::path::PathBuf>,
    /// Log format (default: the config's `log.format`, else human).
    #[arg(long, value_parser = ["human", "json"])]
    pub log_format: Option<String>,
    /// Only check the config and exit (status 0 when valid, 64 when not).
    #[arg(long)]
    pub check_config: bool,
    /// Serve in this process even when `manager.mode` is `self` (the manager starts its child
    /// this way; also for debugging).
    #[arg(long)]
    pub no_supervise: bool,
}

impl DaemonArgs {
    /// `Some(true)` for `--log-format json`, `Some(false)` for human, `None` when not given.
    pub fn json_logs(&self) -> Option<bool> {
        self.log_format.as_deref().map(|f| f == "json")
    }
}

/// Exit status for a bad config or bad arguments (EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

/// Logs to stderr, human-readable (colours on a terminal) or JSON; the level is `RUST_LOG`
/// when set, else `default_filter` (the config's `log.level`; `warn` for one-shot commands).
///
/// Every line's target names the daemon, `name` (`smon-aggregator::manager`), whichever smon
/// crate the line comes from: the kit, the collectors and the web side are shared, and a line
/// of the aggregator's that said `smon_runtime::manager` (or, before the kit, `smon_agent`)
/// named a program that is not running. Other crates' targets (`h2`, `tonic`) stay. Filters
/// still name the crates (`RUST_LOG=smon_runtime=debug`).
pub fn init_logging(name: &'static str, json: bool, default_filter: &str) {
    use tracing_subscriber::fmt::format;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A line that cannot be written (stderr into a pipe whose reader has gone, as in
        // `smon-agent 2>&1 | head`) is dropped: by default tracing-subscriber would report it
        // with `eprintln!`, which panics there, in whatever task logged (the signal handler's
        // panic left the daemon deaf to SIGTERM).
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        b.json()
            .event_format(DaemonTarget {
                name,
                json: true,
                inner: format().json().with_target(false),
            })
            .init();
    } else {
        b.event_format(DaemonTarget {
            name,
            json: false,
            inner: format().without_time().with_level(false).with_target(false),
        })
        .init();
    }
}

/// `target` as the daemon `name` shows it: an smon crate's name becomes the daemon's.
pub fn daemon_target(name: &str, target: &str) -> String {
    match target.split_once("::") {
        Some((krate, rest)) if krate.starts_with("smon_") => format!("{name}::{rest}"),
        None if target.starts_with("smon_") => name.to_owned(),
        _ => target.to_owned(),
    }
}

/// tracing-subscriber's formats with the target written by [`daemon_target`]: human lines
/// are `time LEVEL target: fields`, as the default format writes them; JSON lines get a
/// `target` key.
struct DaemonTarget<F> {
    name: &'static str,
    json: bool,
    inner: F,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for DaemonTarget<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::format::Writer;
        use tracing_subscriber::fmt::time::FormatTime as _;
        let target = daemon_target(self.name, event.metadata().target());
        if self.json {
            let mut line = String::new();
            self.inner
                .format_event(ctx, Writer::new(&mut line), event)?;
            let quoted = serde_json::to_string(&target).map_err(|_| std::fmt::Error)?;
            return match line.strip_prefix('{') {
                Some(rest) => write!(w, "{{\"target\":{quoted},{rest}"),
                None => w.write_str(&line),
            };
        }
        let mut time = String::new();
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut time))?;
        let level = *event.metadata().level();
        if w.has_ansi_escapes() {
            let colour = match level {
                tracing::Level::ERROR => "31",
                tracing::Level::WARN => "33",
                tracing::Level::INFO => "32",
                tracing::Level::DEBUG => "34",
                tracing::Level::TRACE => "35",
            };
            write!(
                w,
                "\x1b[2m{time}\x1b[0m \x1b[{colour}m{level:>5}\x1b[0m \x1b[2m{target}:\x1b[0m "
            )?;
        } else {
            write!(w, "{time} {level:>5} {target}: ")?;
        }
        self.inner.format_event(ctx, w, event)
    }
}

/// Cancels `stop` on the first SIGTERM or SIGINT (Ctrl-C elsewhere).
pub async fn stop_on_signal(stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("Cannot install signal handlers.");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "Shutting down."),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "Shutting down."),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    stop.cancel();
}

/// For a daemon with nothing to reload: logs each SIGHUP and otherwise ignores it, where its
/// default action would end the process (a manager passes SIGHUP on to its child, and a
/// closing terminal sends one).
pub async fn ignore_hangups(name: &'static str) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!(
                signal = "SIGHUP",
                "{name} has nothing to reload; restart it to apply config changes."
            );
        }
    }
    #[cfg(not(unix))]
    let _ = name;
}

/// A message for the service manager (systemd's `sd_notify(3)` protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// `READY=1`: start-up is finished and the daemon serves.
    Ready,
    /// `WATCHDOG=1`: the daemon is alive and healthy.
    Watchdog,
    /// `STOPPING=1`: the daemon is shutting down.
    Stopping,
    /// `STATUS=...`: a line `systemctl status` shows.
    Status(String),
}

/// True when a service manager listens for notifications (`NOTIFY_SOCKET` is set, as systemd
/// does for `Type=notify` units).
pub fn notify_socket_set() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

/// Sends `note` to the service manager; a no-op without `NOTIFY_SOCKET`. A lost notification
/// must never stop the daemon, so failures are only logged.
pub fn notify(note: &Note) {
    #[cfg(target_os = "linux")]
    {
        use sd_notify::NotifyState;
        let state = match note {
            Note::Ready => NotifyState::Ready,
            Note::Watchdog => NotifyState::Watchdog,
            Note::Stopping => NotifyState::Stopping,
            Note::Status(s) => NotifyState::Status(s),
        };
        // `false`: leave the environment alone (changing it is unsound once threads run).
        if let Err(e) = sd_notify::notify(false, &[state]) {
            // Once: a missing socket would otherwise log at every watchdog period.
            static WARNED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(error = %e, ?note, "Cannot notify the service manager.");
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = note;
}

/// `STOPPING=1`, for the moment shutdown begins.
pub fn notify_stopping() {
    notify(&Note::Stopping);
}

/// How often to pet systemd's watchdog: half of `WATCHDOG_USEC`, as `sd_watchdog_enabled(3)`
/// advises. `None` when no watchdog is asked for (or it is meant for another process:
/// `WATCHDOG_PID` names a different pid).
pub fn watchdog_period() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let mut usec = 0;
        if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
            return Some(Duration::from_micros(usec) / 2);
        }
    }
    None
}

/// Starts the task that tells systemd about readiness and health, when `NOTIFY_SOCKET` is set
/// (else returns `None` and runs nothing, not even a probe).
///
/// `healthy` is the daemon's own health probe (the agent answers a `GetSnapshot` with a fresh
/// sample; the aggregator's `/healthz` answers 200). `READY=1` is sent after the first
/// successful probe, so "ready" means the listeners are bound *and* serving; after that,
/// `WATCHDOG=1` every half watchdog period while probes succeed. A failing probe skips the pet
/// (systemd restarts the unit once `WatchdogSec` passes without one) and is retried sooner.
pub fn spawn_notifier<H, F>(stop: CancellationToken, healthy: H) -> Option<JoinHandle<()>>
where
    H: FnMut() -> F + Send + 'static,
    F: Future<Output = Result<(), Unhealthy>> + Send + 'static,
{
    if !notify_socket_set() {
        return None;
    }
    let period = watchdog_period();
    Some(tokio::spawn(notifier(
        healthy,
        period,
        |n| notify(&n),
        stop,
    )))
}

/// How long to wait between probes before the first success (start-up).
const READY_POLL: Duration = Duration::from_millis(100);

/// The loop behind [`spawn_notifier`], with the sink injected for tests.
pub async fn notifier<H, F, S>(
    mut healthy: H,
    watchdog: Option<Duration>,
    mut send: S,
    stop: CancellationToken,
) where
    H: FnMut() -> F,
    F: Future<Output = Result<(), Unhealthy>>,
    S: FnMut(Note),
{
    // Start-up: probe until the daemon serves, then READY=1 (and a first pet at once).
    loop {
        let probe = tokio::select! {
            _ = stop.cancelled() => return,
            r = healthy() => r,
        };
        match probe {
            Ok(()) => break,
            Err(e) => tracing::debug!(error = %e, "Not serving yet."),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(READY_POLL) => {}
        }
    }
    send(Note::Ready);
    let Some(period) = watchdog else {
        return;
    };
    tracing::info!(
        period_ms = period.as_millis() as u64,
        "Feeding the systemd watchdog while healthy."
    );
    send(Note::Watchdog);
    // After a failed probe, try again a few times within the period: one slow answer must not
    // cost the restart that only a daemon stuck for the whole WatchdogSec deserves.
    let retry = (period / 4).max(Duration::from_millis(10));
    let mut next = tokio::time::Instant::now() + period;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        // The next probe is timed from the start of this one, so a slow probe does not
        // stretch the gap between pets beyond the period.
        let began = tokio::time::Instant::now();
        let probe = tokio::select! {
            _ = stop.cancelled() => return,
            r = healthy() => r,
        };
        match probe {
            Ok(()) => {
                send(Note::Watchdog);
                if failing {
                    tracing::info!("Healthy again; feeding the systemd watchdog.");
                    send(Note::Status("healthy".into()));
                }
                failing = false;
                next = began + period;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "Health probe failed; not feeding the systemd watchdog.");
                    // One line: a newline would start another assignment in the datagram.
                    let e: String = e
                        .to_string()
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect();
                    send(Note::Status(format!("unhealthy: {e}")));
                }
                failing = true;
                next = began + retry;
            }
        }
    }
}

/// Raises the soft open-file limit to the hard one: an aggregator holds a connection per
/// agent and per browser, far past the usual soft limit of 1024. Returns the limit now in
/// force (`None` where unknown).
#[cfg(target_os = "linux")]
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current
}

/// Not raised elsewhere.
#[cfg(not(target_os = "linux"))]
pub fn raise_nofile_limit() -> Option<u64> {
    None
}

/// `hash-password` of both daemons.
#[derive(Debug, clap::Args)]
pub struct HashPasswordArgs {
    /// Print a whole users entry for this user name (else only the hash).
    #[arg(long)]
    pub user: Option<String>,
    /// The entry's role: viewer or admin.
    #[arg(long, default_value = "viewer", value_parser = ["viewer", "admin"])]
    pub role: String,
}

/// Runs `hash-password`: the hash (or entry) on stdout, errors on stderr (exit status 64).
/// `hash` is the web security's `(user, role) -> entry` function: the kit has no password
/// code of its own.
pub fn hash_password<E: std::fmt::Display>(
    args: &HashPasswordArgs,
    daemon: &str,
    hash: impl FnOnce(Option<&str>, &str) -> Result<String, E>,
) -> std::process::ExitCode {
    match hash(args.user.as_deref(), &args.role) {
        Ok(out) => match crate::cli::print(&format!("{out}\n")) {
            Ok(_) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{daemon} hash-password: cannot write to stdout: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{daemon} hash-password: {e}");
            std::process::ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Whether `name` is a user on this machine (passwd, via NSS).
#[cfg(target_os = "linux")]
pub fn user_exists(name: &str) -> bool {
    matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
}

/// Whether `name` is a user on this machine.
#[cfg(not(target_os = "linux"))]
pub fn user_exists(_name: &str) -> bool {
    true
}

/// Why the switch to `server.run_as` failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The user database could not be asked.
    #[error("server.run_as: cannot look up user '{user}': {reason}")]
    Lookup {
        /// The user.
        user: String,
        /// The lookup's error.
        reason: String,
    },
    /// No such user.
    #[error("server.run_as: no user '{0}' on this machine")]
    NoSuchUser(String),
    /// Unprivileged, and not already that user.
    #[error(
        "server.run_as is '{user}', but the process runs as uid {uid} and cannot switch: start it as root or as '{user}'"
    )]
    CannotSwitch {
        /// The user.
        user: String,
        /// The process's effective uid.
        uid: u32,
    },
    /// The switch itself failed.
    #[error("server.run_as: cannot switch to '{user}': {reason}")]
    Switch {
        /// The user.
        user: String,
        /// The error.
        reason: String,
    },
    /// Root is still reachable after the switch.
    #[error("server.run_as: still root after switching to '{0}'")]
    StillRoot(String),
    /// Not supported on this system.
    #[error("server.run_as is supported on Linux only")]
    Unsupported,
}

/// Switches the whole process to `user`, its primary group and its supplementary groups (as
/// `server.run_as` asks), after the listeners are bound. Running as root without `run_as` only
/// warns; running unprivileged as another user than `run_as` is an error, since the switch is
/// impossible.
#[cfg(target_os = "linux")]
pub fn drop_privileges(run_as: Option<&str>) -> Result<(), PrivilegeError> {
    let euid = nix::unistd::geteuid();
    let Some(user) = run_as else {
        if euid.is_root() {
            tracing::warn!(
                "Running as root: set server.run_as (e.g. \"smon\") to serve as an unprivileged user."
            );
        }
        return Ok(());
    };
    let target = nix::unistd::User::from_name(user)
        .map_err(|e| PrivilegeError::Lookup {
            user: user.to_owned(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| PrivilegeError::NoSuchUser(user.to_owned()))?;
    if !euid.is_root() {
        if euid == target.uid {
            return Ok(());
        }
        return Err(PrivilegeError::CannotSwitch {
            user: user.to_owned(),
            uid: euid.as_raw(),
        });
    }
    privdrop::PrivDrop::default()
        .user(user)
        .apply()
        .map_err(|e| PrivilegeError::Switch {
            user: user.to_owned(),
            reason: e.to_string(),
        })?;
    if nix::unistd::geteuid().is_root() || nix::unistd::getuid().is_root() {
        return Err(PrivilegeError::StillRoot(user.to_owned()));
    }
    tracing::info!(user, uid = %target.uid, gid = %target.gid, "Dropped privileges.");
    Ok(())
}

/// Privilege switching is Linux-only here.
#[cfg(not(target_os = "linux"))]
pub fn drop_privileges(run_as: Option<&str>) -> Result<(), PrivilegeError> {
    if run_as.is_some() {
        return Err(PrivilegeError::Unsupported);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn targets_name_the_daemon_not_the_crate() {
        let t = |target| super::daemon_target("smon-aggregator", target);
        assert_eq!(t("smon_runtime::manager"), "smon-aggregator::manager");
        assert_eq!(t("smon_collect::gpus"), "smon-aggregator::gpus");
        assert_eq!(t("smon_web::hub::rooms"), "smon-aggregator::hub::rooms");
        assert_eq!(t("smon_aggregator"), "smon-aggregator");
        assert_eq!(t("h2::codec"), "h2::codec");
    }

    use std::sync::{Arc, Mutex};

    use super::*;

    /// Runs the notifier over scripted probe results (then "healthy" forever) until it ends by
    /// itself, `done` says so for what was sent, or `limit` passes; returns what it sent.
    async fn script(
        results: Vec<Result<(), Unhealthy>>,
        watchdog: Option<Duration>,
        done: impl Fn(&[Note]) -> bool + Send + 'static,
        limit: Duration,
    ) -> Vec<Note> {
        let results = Arc::new(Mutex::new(results.into_iter()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (sink, stop_sink) = (sent.clone(), stop.clone());
        let task = tokio::spawn(notifier(
            move || {
                let next = results.lock().expect("lock").next().unwrap_or(Ok(()));
                async move { next }
            },
            watchdog,
            move |n| {
                let mut s = sink.lock().expect("lock");
                s.push(n);
                if done(&s) {
                    stop_sink.cancel();
                }
            },
            stop.clone(),
        ));
        let _ = tokio::time::timeout(limit, stop.cancelled()).await;
        stop.cancel();
        task.await.expect("notifier");
        std::mem::take(&mut *sent.lock().expect("lock"))
    }

    fn watchdogs(sent: &[Note]) -> usize {
        sent.iter().filter(|n| **n == Note::Watchdog).count()
    }

    #[tokio::test]
    async fn ready_only_after_the_first_healthy_probe() {
        let started = std::time::Instant::now();
        let sent = script(
            vec![Err("not yet".into()), Err("not yet".into())],
            None,
            |_| false,
            Duration::from_secs(2),
        )
        .await;
        // Without a watchdog the task ends after READY=1.
        assert_eq!(sent, vec![Note::Ready]);
        assert!(started.elapsed() >= 2 * READY_POLL);
    }

    #[tokio::test]
    async fn never_ready_while_unhealthy() {
        let sent = script(
            (0..1000).map(|_| Err("down".into())).collect(),
            Some(Duration::from_millis(20)),
            |_| false,
            Duration::from_millis(500),
        )
        .await;
        assert!(sent.is_empty(), "{sent:?}");
    }

    #[tokio::test]
    async fn pets_every_period_while_healthy() {
        let period = Duration::from_millis(30);
        let started = std::time::Instant::now();
        let sent = script(
            Vec::new(),
            Some(period),
            |s| watchdogs(s) == 5,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(sent[0], Note::Ready);
        assert_eq!(&sent[1..], vec![Note::Watchdog; 5]);
        // The first pet comes with READY=1, then one per period.
        assert!(started.elapsed() >= 4 * period, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn an_unhealthy_daemon_is_not_petted_and_says_why() {
        // Ready; then three failed probes (retried at a quarter period), then healthy again.
        let sent = script(
            vec![
                Ok(()),
                // A newline must not reach the datagram (it would start another assignment).
                Err("stale\nsample".into()),
                Err("stale sample".into()),
                Err("stale sample".into()),
            ],
            Some(Duration::from_millis(40)),
            |s| s.last() == Some(&Note::Status("healthy".into())),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            sent,
            vec![
                Note::Ready,
                Note::Watchdog,
                Note::Status("unhealthy: stale sample".into()),
                Note::Watchdog,
                Note::Status("healthy".into()),
            ]
        );
    }
}
