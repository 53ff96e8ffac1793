//! The `smon-agent` binary: parses arguments, loads the config, sets up logging and signals,
//! and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use smon_agent::config::{self, ConfigError, Settings};
use smon_collect::Collector;
use tokio_util::sync::CancellationToken;

use smon_agent::daemon::EXIT_USAGE;

/// How long shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// smon node agent: collects this host's metrics and serves them over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    daemon: smon_agent::daemon::DaemonArgs,
    /// Take one full sample, print it and exit (no server).
    #[arg(long)]
    once: bool,
    /// With --once: print JSON (the gRPC Snapshot message, field names as in the .proto).
    #[arg(long, requires = "once")]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Ask a running agent for a snapshot (or a live stream) over gRPC and print it.
    Query {
        /// Agent address.
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        /// File holding the bearer token (default: $SMON_TOKEN, else ./smon-agent.token if
        /// present, else no token).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Keep printing every sample until interrupted.
        #[arg(long)]
        watch: bool,
        /// Include the process list, per-core use and GPU processes.
        #[arg(long)]
        detail: bool,
        /// Print JSON, one snapshot per line.
        #[arg(long)]
        json: bool,
    },
    /// Write a Supervisor program file ([program:smon-agent]) for manager.mode = "supervisor".
    GenSupervisorConf(smon_agent::deploy::GenSupervisorConf),
    /// Hash a password for the web view's users (read without echo; one line from a pipe).
    HashPassword(smon_agent::daemon::HashPasswordArgs),
}

fn query_token(token_file: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
    if let Some(p) = token_file {
        let t =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        return Ok(Some(t.trim().to_owned()));
    }
    if let Some(t) = config::Env::from_process().smon_token {
        return Ok(Some(t));
    }
    Ok(std::fs::read_to_string("smon-agent.token")
        .ok()
        .map(|t| t.trim().to_owned()))
}

fn query(cmd: Command) -> anyhow::Result<()> {
    let Command::Query {
        addr,
        token_file,
        watch,
        detail,
        json,
    } = cmd
    else {
        anyhow::bail!("not a query");
    };
    let token = query_token(token_file.as_ref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let q = smon_agent::query::Query {
            addr,
            token,
            watch,
            detail,
            json,
        };
        tokio::select! {
            r = smon_agent::query::run(q) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

fn load(args: &Args) -> Result<Settings, ConfigError> {
    let env = config::Env::from_process();
    let mut s = match &args.daemon.config {
        Some(p) => config::load_file(p, &env)?,
        None => config::load_embedded(&env)?,
    };
    s.source = args
        .daemon
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| config::EMBEDDED_NAME.into());
    Ok(s)
}

fn main() -> ExitCode {
    smon_agent::manager::die_with_manager();
    let mut args = Args::parse();
    let json_flag = args.daemon.json_logs();
    if args.command.is_some() {
        smon_agent::daemon::init_logging(json_flag.unwrap_or(false), "info");
    }
    if let Some(Command::GenSupervisorConf(g)) = &args.command {
        return smon_agent::deploy::gen_supervisor_conf(smon_agent::deploy::Daemon::Agent, g);
    }
    if let Some(Command::HashPassword(h)) = &args.command {
        return smon_agent::daemon::hash_password(h, "smon-agent");
    }
    if let Some(cmd) = args.command.take() {
        return match query(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("smon-agent query: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = match load(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("smon-agent: invalid configuration:\n{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.daemon.check_config {
        eprintln!("{}: configuration is valid", settings.source);
        return ExitCode::SUCCESS;
    }
    // Logging starts once the config (with its `log` block) is known; RUST_LOG still wins.
    smon_agent::daemon::init_logging(json_flag.unwrap_or(settings.log.json), &settings.log.filter);
    for n in &settings.notices {
        tracing::info!("{n}");
    }
    if settings.manager == config::ManagerMode::SelfManaged
        && !args.daemon.no_supervise
        && !args.once
    {
        // manager.mode = "self": this process supervises a child that serves.
        let addr = smon_agent::manager::probe_address(settings.grpc_listen);
        let token = match &settings.auth {
            config::Auth::Token(t) => Some(t.clone()),
            config::Auth::None => None,
        };
        let max_age = (settings.interval * 3).max(Duration::from_secs(5));
        if settings.grpc_tls.is_some() {
            // A local gRPC probe would need a client certificate: watch the child's heartbeat.
            let hb = match smon_agent::manager::create_heartbeat() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("smon-agent: cannot create the heartbeat file: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let code = smon_agent::manager::run(settings.manager_settings, || {
                smon_agent::manager::probe_heartbeat(hb.clone(), max_age)
            });
            let _ = std::fs::remove_file(&hb);
            return code;
        }
        return smon_agent::manager::run(settings.manager_settings, move || {
            smon_agent::manager::probe_agent(addr, token.clone(), max_age)
        });
    }
    let result = if args.once {
        once(&settings, args.json)
    } else {
        serve(settings)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smon-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--once`: two refreshes (CPU use is a difference), then print the second.
fn once(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let cc = settings.collector_config();
    cc.demand.mark(); // the full process table, read with the sample
    let mut c = Collector::new(cc)?;
    std::thread::sleep(smon_collect::cpu::MIN_INTERVAL.max(Duration::from_millis(250)));
    let snap = c.sample(1);
    if json {
        println!("{}", serde_json::to_string_pretty(&snap)?);
    } else {
        print!("{}", smon_agent::query::render(&snap));
    }
    Ok(())
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        // The agent's async side only answers RPCs from a handful of pollers; two workers are
        // plenty and keep the footprint small. Sampling has its own thread.
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_name("smon-agent")
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(settings.grpc_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (monitor.grpc_listen in {})",
                    settings.grpc_listen, settings.source
                )
            })?;
        let http = match settings.web {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!(
                    "cannot listen on {addr} (server.host/server.port in {})",
                    settings.source
                )
            })?),
            None => None,
        };
        // Users are read (or the first admin written) while still privileged, then, bound
        // (ports below 1024 need root), switch to server.run_as.
        let http = match http {
            Some(l) => {
                let sec = smon_agent::prepare_security(&settings, &l)?;
                Some((l, sec))
            }
            None => None,
        };
        smon_agent::daemon::drop_privileges(settings.run_as.as_deref())?;
        let stop = CancellationToken::new();
        let signals = tokio::spawn(smon_agent::daemon::stop_on_signal(stop.clone()));
        // systemd (Type=notify): READY=1 once the agent answers its own probe (a GetSnapshot
        // with a fresh sample), then WATCHDOG=1 while it keeps doing so. No-op without
        // NOTIFY_SOCKET.
        let max_age = (settings.interval * 3).max(Duration::from_secs(5));
        let mut own_heartbeat = None;
        let _notifier = if settings.grpc_tls.is_some() {
            // With TLS a local gRPC probe would need a client certificate: the sampler
            // touches a heartbeat file instead, and that is what the watchdog checks.
            if smon_agent::daemon::notify_socket_set() {
                let hb = smon_agent::manager::create_heartbeat()?;
                own_heartbeat = Some(hb.clone());
                smon_agent::daemon::spawn_notifier(stop.clone(), move || {
                    smon_agent::manager::probe_heartbeat(hb.clone(), max_age)
                })
            } else {
                None
            }
        } else {
            let addr = smon_agent::manager::probe_address(settings.grpc_listen);
            let token = match &settings.auth {
                config::Auth::Token(t) => Some(t.clone()),
                config::Auth::None => None,
            };
            smon_agent::daemon::spawn_notifier(stop.clone(), move || {
                smon_agent::manager::probe_agent(addr, token.clone(), max_age)
            })
        };
        let collector = settings.collector_config();
        let run = smon_agent::run_prepared(collector, settings, listener, http, stop.clone());
        tokio::pin!(run);
        let r = tokio::select! {
            r = &mut run => { signals.abort(); r }
            _ = stop.cancelled() => {
                smon_agent::daemon::notify_stopping();
                match tokio::time::timeout(SHUTDOWN_GRACE, run).await {
                    Ok(r) => r,
                    Err(_) => { tracing::warn!("Shutdown took too long; exiting anyway."); Ok(()) }
                }
            }
        };
        if let Some(hb) = own_heartbeat {
            let _ = std::fs::remove_file(hb);
        }
        r
    })?;
    // Do not wait for blocking threads (a statvfs stuck on a dead mount) at exit.
    rt.shutdown_timeout(Duration::from_millis(100));
    tracing::info!("Stopped.");
    Ok(())
}
