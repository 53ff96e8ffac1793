//! `smon-bench`: benchmarks that print figures side by side with smon's peers, in one run on
//! one machine, so the numbers compare like with like.
//!
//! `smon-bench agent` runs the node agent next to Prometheus node_exporter, polls both the same
//! way and reports memory, CPU, bytes and latency per poll, and the agent's sample time.
//!
//! `smon-bench e2e` runs a demo fleet of agents, the aggregator and a headless browser, and
//! reports the latency from an agent's sample to the home page's DOM and the bytes per second
//! the page receives.

mod agent;
mod children;
mod e2e;
mod e2e_report;
mod machine;
mod procfs;
mod report;
mod stats;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// smon benchmarks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The node agent side by side with Prometheus node_exporter: RSS, CPU, bytes and latency
    /// per poll, sample time per process.
    Agent(AgentArgs),
    /// A demo fleet (real agents and aggregator) and a headless browser: latency from an
    /// agent's sample to the home page's DOM, p50 and p99, and the bytes per second the page
    /// receives.
    E2e(E2eArgs),
}

/// Arguments of `smon-bench agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// How long both exporters are polled at 1 Hz (the measurement window), in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration_s: u64,
    /// Polling at 1 Hz before the window starts, in seconds (start-up costs stay out of it).
    #[arg(long, default_value_t = 5)]
    pub warmup_s: u64,
    /// The agent binary (a release build). Default: target/release/smon-agent in this
    /// workspace, built with `cargo build --release -p smon-agent` when missing.
    #[arg(long)]
    pub agent_bin: Option<PathBuf>,
    /// The node_exporter binary (Debian package `prometheus-node-exporter`).
    #[arg(long, default_value = "/usr/bin/prometheus-node-exporter")]
    pub node_exporter: PathBuf,
    /// Idle `sleep` processes started first, so the process list is the size of a real host's.
    #[arg(long, default_value_t = 200)]
    pub extra_procs: usize,
    /// Back-to-back calls per kind in the latency burst after the window.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub burst: u64,
    /// Also rewrite the agent section of this markdown file (e.g. BENCHMARKS.md), keeping
    /// everything outside its markers.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// Arguments of `smon-bench e2e`.
#[derive(Debug, clap::Args)]
pub struct E2eArgs {
    /// Agents in the demo fleet, on 127.0.0.2 and up (0, 1, 2, 0, ... fake GPUs each).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=200))]
    pub agents: u64,
    /// The agents' sampling interval and the aggregator's poll interval, in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub interval_ms: u64,
    /// How long the browser measures, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration_s: u64,
    /// Seconds between every host being up and the browser starting (start-up effects stay
    /// out of the window).
    #[arg(long, default_value_t = 5)]
    pub warmup_s: u64,
    /// The Node.js executable that runs web/ui/tests/e2e-latency.mjs (chromium is
    /// /usr/bin/chromium, or $CHROMIUM).
    #[arg(long, default_value = "node")]
    pub node: PathBuf,
    /// Also rewrite the e2e section of this markdown file (e.g. BENCHMARKS.md), keeping
    /// everything outside its markers.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: the benchmark shares a small machine with what it measures, and a
    // single-threaded client keeps its own footprint and scheduling noise small.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smon-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let work = async {
            match cli.command {
                Command::Agent(args) => agent::run(args).await,
                Command::E2e(args) => e2e::run(args).await,
            }
        };
        // On Ctrl-C or SIGTERM the work future is dropped, and with it the guard that stops
        // every child process.
        tokio::select! {
            r = work => r,
            s = stop_signal() => Err(anyhow::anyhow!("interrupted by {s}; child processes stopped")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smon-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for SIGINT or SIGTERM and names it.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
}
