//! The `smon-agent` binary: parses arguments, loads the config, sets up logging and signals,
//! and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use smon_agent::collect::{Collector, CollectorConfig};
use smon_agent::config::{self, ConfigError, Settings};
use tokio_util::sync::CancellationToken;

/// Exit status for a bad config or bad arguments (EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// How long shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// smon node agent: collects this host's metrics and serves them over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Config file (config_node.json). Without it, the embedded default is used: gRPC on
    /// 127.0.0.1:50051 with a token kept in ./smon-agent.token.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Take one full sample, print it and exit (no server).
    #[arg(long)]
    once: bool,
    /// With --once: print JSON (the gRPC Snapshot message, field names as in the .proto).
    #[arg(long, requires = "once")]
    json: bool,
    /// Log format.
    #[arg(long, value_parser = ["human", "json"], default_value = "human")]
    log_format: String,
    /// Only check the config and exit (status 0 when valid, 64 when not).
    #[arg(long)]
    check_config: bool,
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

fn load(args: &Args) -> Result<Settings, ConfigError> {
    let env = config::Env::from_process();
    let mut s = match &args.config {
        Some(p) => config::load_file(p, &env)?,
        None => config::load_embedded(&env)?,
    };
    s.source = args
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| config::EMBEDDED_NAME.into());
    Ok(s)
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log_format);
    let settings = match load(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("smon-agent: invalid configuration:\n{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.check_config {
        eprintln!("{}: configuration is valid", settings.source);
        return ExitCode::SUCCESS;
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
    let mut c =
        Collector::new(CollectorConfig::from_settings(settings)).map_err(anyhow::Error::msg)?;
    std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(Duration::from_millis(250)));
    let snap = c.sample(1);
    if json {
        println!("{}", serde_json::to_string_pretty(&snap)?);
        return Ok(());
    }
    let cpu = snap.cpu.unwrap_or_default();
    let mem = snap.memory.unwrap_or_default();
    let load = snap.load.unwrap_or_default();
    println!("host      {}  up {} s", snap.hostname, snap.uptime_s);
    println!(
        "cpu       {:.1} % of {} cores, load {:.2} {:.2} {:.2}",
        cpu.total_percent, cpu.logical_cores, load.one, load.five, load.fifteen
    );
    println!(
        "memory    {:.1} % of {} MiB, swap {:.1} %",
        mem.used_percent,
        mem.total_bytes >> 20,
        mem.swap_used_percent
    );
    for d in &snap.disks {
        println!(
            "disk      {} {} on {}: {:.1} % of {} MiB",
            d.device,
            d.fs_type,
            d.mount_point,
            d.used_percent,
            d.total_bytes >> 20
        );
    }
    for n in &snap.networks {
        println!(
            "network   {}: rx {} B/s, tx {} B/s",
            n.name, n.rx_bytes_per_s, n.tx_bytes_per_s
        );
    }
    println!("processes {}", snap.process_count);
    for s in &snap.sessions {
        println!(
            "user      {} on {} from {}",
            s.user,
            s.terminal,
            if s.from.is_empty() { "local" } else { &s.from }
        );
    }
    for g in &snap.gpus {
        println!(
            "gpu {}     {} util {:?} % mem {:?}/{:?} B",
            g.index, g.name, g.utilization_percent, g.memory_used_bytes, g.memory_total_bytes
        );
    }
    for e in &snap.errors {
        println!("error     {e}");
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
        let stop = CancellationToken::new();
        let signals = tokio::spawn(stop_on_signal(stop.clone()));
        let run = smon_agent::run(settings, listener, stop.clone());
        tokio::pin!(run);
        tokio::select! {
            r = &mut run => { signals.abort(); r }
            _ = stop.cancelled() => {
                match tokio::time::timeout(SHUTDOWN_GRACE, run).await {
                    Ok(r) => r,
                    Err(_) => { tracing::warn!("Shutdown took too long; exiting anyway."); Ok(()) }
                }
            }
        }
    })?;
    // Do not wait for blocking threads (a statvfs stuck on a dead mount) at exit.
    rt.shutdown_timeout(Duration::from_millis(100));
    tracing::info!("Stopped.");
    Ok(())
}

async fn stop_on_signal(stop: CancellationToken) {
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
