//! The `smon-sim` binary: parses arguments, raises the open-file limit, writes the matching
//! aggregator config if asked, binds every agent's address, says `ready`, and runs the fleet
//! until SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use smon_sim::{Fleet, Listening, SimConfig, aggconfig, limits};
use tokio_util::sync::CancellationToken;

/// Exit status for bad arguments (sysexits EX_USAGE), as the other smon binaries use.
const EXIT_USAGE: u8 = 64;

/// smon fleet simulator: N fake agents on loopback addresses, speaking the real gRPC contract.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Number of simulated agents.
    #[arg(long)]
    agents: u32,
    /// Address of the first agent; the others count up from it through 127.0.0.0/8.
    #[arg(long, default_value = "127.1.0.1")]
    first_addr: Ipv4Addr,
    /// gRPC port of every agent.
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// Sampling interval of every agent, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Most GPUs per host (0-16).
    #[arg(long, default_value_t = 8)]
    max_gpus: u32,
    /// Hosts per cluster.
    #[arg(long, default_value_t = 100)]
    hosts_per_cluster: u32,
    /// Seed of the fleet: the same seed gives the same hosts.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// File holding the bearer token every agent asks for (default: no token check).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Write a matching smon-aggregator config to this file.
    #[arg(long)]
    write_config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let token = match &args.token_file {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t.trim().to_owned()),
            Err(e) => {
                eprintln!("smon-sim: --token-file: cannot read {}: {e}", p.display());
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => None,
    };
    let cfg = SimConfig {
        agents: args.agents,
        first_addr: args.first_addr,
        port: args.port,
        interval: Duration::from_millis(args.interval_ms),
        max_gpus: args.max_gpus,
        hosts_per_cluster: args.hosts_per_cluster,
        seed: args.seed,
        token,
    };
    if let Err(problems) = cfg.validate() {
        eprintln!("smon-sim: invalid arguments:");
        for p in problems {
            eprintln!("  {p}");
        }
        return ExitCode::from(EXIT_USAGE);
    }
    let limit = limits::raise_nofile(limits::per_agent_need(cfg.agents));
    let how = match limits::plan(cfg.agents, limit) {
        Ok(how) => how,
        Err(e) => {
            eprintln!("smon-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    if how == Listening::Shared {
        tracing::info!(
            limit,
            wanted = limits::per_agent_need(cfg.agents),
            "Too few open files for a listener per agent: the agents share one listener on 0.0.0.0:{} bound to lo (clients see no difference).",
            cfg.port
        );
    }
    let fleet = Arc::new(Fleet::new(cfg));
    if let Some(path) = &args.write_config
        && let Err(e) = aggconfig::write(&fleet, path, args.token_file.as_deref())
    {
        eprintln!(
            "smon-sim: --write-config: cannot write {}: {e}",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    match serve(fleet, how) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smon-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(fleet: Arc<Fleet>, how: Listening) -> anyhow::Result<()> {
    // One thread: the simulator runs next to what it feeds and should take as little as it can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let cfg = fleet.config().clone();
        let listeners = smon_sim::bind(&cfg, how).await?;
        tracing::info!(agents = cfg.agents, first = %cfg.first_addr, port = cfg.port, listening = ?how, interval_ms = cfg.interval_ms(), token = cfg.token.is_some(), "Simulated agents listening.");
        // The line that tells a harness the fleet is up. A reader that has gone (`| head -c0`)
        // does not stop the fleet: the simulator is a server, and its output is only this line.
        {
            let mut out = std::io::stdout().lock();
            match writeln!(out, "ready {} {}:{}", cfg.agents, cfg.first_addr, cfg.port)
                .and_then(|()| out.flush())
            {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
        }
        let stop = CancellationToken::new();
        tokio::spawn(stop_on_signal(stop.clone()));
        smon_sim::run(fleet, listeners, stop).await
    })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    tracing::info!("Stopped.");
    Ok(())
}

/// Cancels `stop` on SIGINT or SIGTERM.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("Cannot install signal handlers; stop with SIGKILL.");
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("Signal received; stopping.");
    stop.cancel();
}
