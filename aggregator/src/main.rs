//! The `smon-aggregator` binary: parses arguments, loads the config, sets up logging and
//! signals, and hands over to the library.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use smon_agent::daemon::{self, EXIT_USAGE};
use tokio_util::sync::CancellationToken;

/// How long shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1800);

/// smon aggregator: polls agents and serves the live dashboard.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    daemon: daemon::DaemonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write a Supervisor program file ([program:smon-aggregator]) for manager.mode =
    /// "supervisor".
    GenSupervisorConf(smon_agent::deploy::GenSupervisorConf),
    /// Hash a password for `server.auth.users` or the users file (read without echo; one line
    /// from a pipe).
    HashPassword(daemon::HashPasswordArgs),
}

fn main() -> ExitCode {
    smon_agent::manager::die_with_manager();
    let args = Args::parse();
    let json_flag = args.daemon.json_logs();
    if args.command.is_some() {
        daemon::init_logging(json_flag.unwrap_or(false), "info");
    }
    match &args.command {
        Some(Command::GenSupervisorConf(g)) => {
            return smon_agent::deploy::gen_supervisor_conf(
                smon_agent::deploy::Daemon::Aggregator,
                g,
            );
        }
        Some(Command::HashPassword(h)) => return daemon::hash_password(h, "smon-aggregator"),
        None => {}
    }
    let loaded = match &args.daemon.config {
        Some(p) => smon_aggregator::config::load_file(p),
        None => smon_aggregator::config::load_embedded(),
    };
    let settings = match loaded {
        Ok(s) => s,
        Err(e) => {
            eprintln!("smon-aggregator: invalid configuration:\n{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.daemon.check_config {
        eprintln!("{}: configuration is valid", settings.source);
        return ExitCode::SUCCESS;
    }
    // Logging starts once the config (with its `log` block) is known; RUST_LOG still wins.
    daemon::init_logging(json_flag.unwrap_or(settings.log.json), &settings.log.filter);
    if settings.manager == smon_agent::config::ManagerMode::SelfManaged && !args.daemon.no_supervise
    {
        // manager.mode = "self": this process supervises a child that serves.
        let url = health_url(&settings);
        return smon_agent::manager::run(settings.manager_settings, move || {
            smon_aggregator::probe_http(url.clone())
        });
    }
    match serve(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smon-aggregator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The local `/healthz` URL (https when the listener serves TLS).
fn health_url(settings: &smon_aggregator::config::Settings) -> String {
    let scheme = if settings.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!(
        "{scheme}://{}{}/healthz",
        smon_agent::manager::probe_address(settings.http_listen),
        settings.base_path
    )
}

fn serve(settings: smon_aggregator::config::Settings) -> anyhow::Result<()> {
    // A connection per agent and per browser: the default soft limit (1024) is far too low.
    let nofile = daemon::raise_nofile_limit();
    let needed = settings.targets.len() as u64 + 256;
    if let Some(n) = nofile
        && n < needed
    {
        tracing::warn!(
            limit = n,
            agents = settings.targets.len(),
            "The open-file limit is below one per agent plus room for browsers: raise LimitNOFILE (systemd) or ulimit -n."
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("smon-aggregator")
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(settings.http_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (server.host/server.port in {})",
                    settings.http_listen, settings.source
                )
            })?;
        // Users are read (or the first admin written) while still privileged, then, bound
        // (ports below 1024 need root), switch to server.run_as.
        let security = smon_aggregator::prepare_security(&settings, &listener)?;
        daemon::drop_privileges(settings.run_as.as_deref())?;
        let stop = CancellationToken::new();
        let signals = tokio::spawn(daemon::stop_on_signal(stop.clone()));
        // systemd (Type=notify): READY=1 once /healthz answers 200, then WATCHDOG=1 while it
        // keeps doing so. No-op without NOTIFY_SOCKET.
        let _notifier = {
            let url = health_url(&settings);
            daemon::spawn_notifier(stop.clone(), move || {
                smon_aggregator::probe_http(url.clone())
            })
        };
        let run = smon_aggregator::run_secured(settings, listener, security, stop.clone());
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => { signals.abort(); r }
            _ = stop.cancelled() => {
                daemon::notify_stopping();
                match tokio::time::timeout(SHUTDOWN_GRACE, run).await {
                    Ok(r) => r,
                    Err(_) => { tracing::warn!("Shutdown took too long; exiting anyway."); Ok(()) }
                }
            }
        }
    })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    tracing::info!("Stopped.");
    Ok(())
}
