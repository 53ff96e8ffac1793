//! The start-up sequence both daemons share, written once. A daemon's `main` parses its
//! arguments, handles its own subcommands, and hands over to [`run`] with a loader; the
//! daemon's part is the [`Daemon`] trait.
//!
//! The order, and why:
//! 1. load and validate the config: a bad one exits with status 64 and every problem listed;
//!    loading is pure, so `--check-config` stops here having written nothing;
//! 2. logging, from the config's `log` block (`--log-format` and `RUST_LOG` win);
//! 3. a one-shot job instead of serving, when the daemon has one (the agent's `--once`);
//! 4. the files the daemon needs ([`Daemon::create_files`]), then either
//! 5. `manager.mode = "self"`: this process becomes the manager of a child that serves, or
//! 6. serve: build the async runtime, bind and prepare security while still privileged
//!    (ports below 1024, a root-only users file), drop to `server.run_as`, stop on
//!    SIGTERM/SIGINT, tell systemd READY/WATCHDOG while the daemon's own probe passes, give
//!    back the binary's start-up pages once it has run a while ([`crate::pages`]; the manager
//!    too), and on stop give the daemon a bounded grace before exiting anyway.

use std::error::Error;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::About;
use crate::config::{ConfigError, LogSettings, ManagerMode};
use crate::daemon::{self, DaemonArgs, EXIT_USAGE};
use crate::health::Probe;
use crate::manager::{self, ManagerSettings};

/// Any error a daemon's start-up or serving returns, with its chain of causes.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// A daemon's part of the shared start-up sequence.
pub trait Daemon: Sized {
    /// Who the daemon is (name, description, grace, SIGHUP).
    const ABOUT: About;
    /// Listeners and state prepared by [`Daemon::bind`] while still privileged.
    type Bound;
    /// What the daemon's own steps fail with.
    type Error: Into<BoxError>;

    /// Where the config came from (a path, or the embedded default), for messages.
    fn source(&self) -> &str;
    /// The checked `log` block.
    fn log(&self) -> &LogSettings;
    /// The checked `manager` block.
    fn manager(&self) -> (ManagerMode, ManagerSettings);
    /// The checked `server.run_as`.
    fn run_as(&self) -> Option<&str>;

    /// A job that replaces the manager and the server (the agent's `--once`), run after
    /// logging is up; `None` (the default) to go on and serve.
    fn oneshot(&mut self) -> Option<Result<(), Self::Error>> {
        None
    }

    /// Whether [`Daemon::oneshot`] has a job: a command-line call then logs warnings only
    /// (the start-up lines, such as NVML's "not available", are the daemon's to log).
    fn has_oneshot(&self) -> bool {
        false
    }

    /// Creates the files the daemon needs (the agent's token file). Called at start-up, by the
    /// manager and by the server, before privileges are dropped; never by `--check-config`.
    fn create_files(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// The files holding secrets (users file, token files), checked for group or world
    /// access at start and by `--check-config` ([`crate::secret_file`]): a warning, not a
    /// refusal.
    fn secret_files(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }

    /// The daemon's health probe, for the systemd watchdog (and the self manager unless
    /// [`Daemon::manager_probe`] says otherwise).
    fn probe(&self) -> Result<Probe, Self::Error>;

    /// The probe the self manager runs against its server (default: [`Daemon::probe`]). The
    /// agent's watches the heartbeat file its server touches after each sample, so that the
    /// manager needs no gRPC client (its pages and memory) and the server answers no probe
    /// calls.
    fn manager_probe(&self) -> Result<Probe, Self::Error> {
        self.probe()
    }

    /// The async runtime the server runs on.
    fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime>;

    /// Binds the listeners and prepares what must be read or written as root.
    fn bind(&mut self) -> impl Future<Output = Result<Self::Bound, Self::Error>>;

    /// Serves until `stop` is cancelled.
    fn serve(
        self,
        bound: Self::Bound,
        stop: CancellationToken,
    ) -> impl Future<Output = Result<(), Self::Error>>;
}

/// `e` and its causes, one after the other (`a: b: c`), each said once: wrappers that repeat
/// their cause in their own message (anyhow-style, or tonic's transport errors) do not say it
/// twice.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The whole sequence (see the module doc); returns the process's exit status.
pub fn run<D: Daemon>(
    args: &DaemonArgs,
    load: impl FnOnce(&DaemonArgs) -> Result<D, ConfigError>,
) -> ExitCode {
    let name = D::ABOUT.name;
    let mut d = match load(args) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{name}: invalid configuration:\n{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let secrets = d.secret_files();
    let exposed = crate::secret_file::warnings(secrets.iter().map(|p| p.as_path()));
    if args.check_config {
        for w in &exposed {
            eprintln!("{name}: warning: {w}");
        }
        eprintln!("{}: configuration is valid", d.source());
        return ExitCode::SUCCESS;
    }
    // Logging starts once the config (with its `log` block) is known; RUST_LOG still wins.
    let filter = if d.has_oneshot() {
        "warn"
    } else {
        &d.log().filter
    };
    daemon::init_logging(name, args.json_logs().unwrap_or(d.log().json), filter);
    for w in &exposed {
        tracing::warn!(problem = %w, "A secret file is readable by others.");
    }
    if let Some(r) = d.oneshot() {
        return exit(name, r.map_err(Into::into));
    }
    if let Err(e) = d.create_files() {
        return exit(name, Err(e.into()));
    }
    let (mode, manager_settings) = d.manager();
    if mode == ManagerMode::SelfManaged && !args.no_supervise {
        // manager.mode = "self": this process supervises a child that serves.
        let probe = match d.manager_probe() {
            Ok(p) => p,
            Err(e) => return exit(name, Err(e.into())),
        };
        // The manager only supervises: what loading the config built (users, patterns, the
        // settings) is freed before the long wait.
        drop(d);
        return manager::run(manager_settings, probe);
    }
    exit(name, serve(d))
}

fn exit(name: &str, r: Result<(), BoxError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {}", chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Steps 6 of the module doc.
fn serve<D: Daemon>(mut d: D) -> Result<(), BoxError> {
    let rt = d.runtime()?;
    let grace = D::ABOUT.shutdown_grace;
    rt.block_on(async move {
        let bound = d.bind().await.map_err(Into::into)?;
        daemon::drop_privileges(d.run_as())?;
        let stop = CancellationToken::new();
        let signals = tokio::spawn(daemon::stop_on_signal(stop.clone()));
        if !D::ABOUT.reloads_on_sighup {
            tokio::spawn(daemon::ignore_hangups(D::ABOUT.name));
        }
        tokio::spawn(crate::pages::release_after_startup(stop.clone()));
        // systemd (Type=notify): READY=1 once the daemon's own probe passes, then WATCHDOG=1
        // while it keeps passing. Nothing (not even the probe) without NOTIFY_SOCKET.
        let _notifier = if daemon::notify_socket_set() {
            let probe = d.probe().map_err(Into::into)?;
            daemon::spawn_notifier(stop.clone(), probe)
        } else {
            None
        };
        let run = d.serve(bound, stop.clone());
        tokio::pin!(run);
        let r = tokio::select! {
            r = &mut run => { signals.abort(); r }
            _ = stop.cancelled() => {
                daemon::notify_stopping();
                match tokio::time::timeout(grace, run).await {
                    Ok(r) => r,
                    Err(_) => { tracing::warn!("Shutdown took too long; exiting anyway."); Ok(()) }
                }
            }
        };
        r.map_err(Into::into)
    })?;
    // Do not wait for blocking threads (a statvfs stuck on a dead mount) at exit.
    rt.shutdown_timeout(Duration::from_millis(100));
    tracing::info!("Stopped.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chains_name_every_cause_once() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&e), "outer: inner");
        let e = std::io::Error::other("alone");
        assert_eq!(chain(&e), "alone");
    }
}
