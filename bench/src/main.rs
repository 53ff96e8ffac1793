//! The `smon-bench` command: parses the command line and runs one benchmark of the
//! [`smon_bench`] library on a single-threaded runtime, stopping every child process on
//! Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use smon_bench::alerts::{self, AlertsArgs};
use smon_bench::applications::{self, ApplicationsArgs};
use smon_bench::history::{self, HistoryArgs};
use smon_bench::reconnect::{self, ReconnectArgs};
use smon_bench::{AgentArgs, E2eArgs, SuiteArgs, agent, e2e, suite};

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
    /// Real agents killed and restarted after an outage under a real aggregator with dead
    /// hosts: time from an agent's restart to its host up, and the dead hosts' probe cost.
    Reconnect(ReconnectArgs),
    /// History: bytes per stored value next to VictoriaMetrics fed the same samples by remote
    /// write, the aggregator's CPU with history off and on, query times.
    History(HistoryArgs),
    /// Alerts: the aggregator's CPU under a simulated fleet without and with 20 rules, RSS,
    /// notifications received, and the rule engine alone.
    Alerts(AlertsArgs),
    /// The Applications page at 500 simulated hosts x 20 supervisord programs: the route's
    /// latency, the page's load in chromium at two viewports, the longest task while it
    /// updates live.
    Applications(ApplicationsArgs),
    /// (b) The aggregator under 1,000 / 5,000 / 10,000 simulated agents at 1 Hz: CPU, RSS,
    /// staleness p50/p99, overview bytes per second to one browser.
    Scale(SuiteArgs),
    /// (c) 100 and 1,000 Socket.IO clients on the overview of 1,000 hosts: delivery latency,
    /// aggregator CPU, bytes per second per client.
    Fanout(SuiteArgs),
    /// (d) The overview page of 1,000 hosts in headless chromium: script time per live
    /// update, input delay.
    Overview(SuiteArgs),
    /// (e) Soak: 500 hosts, 200 clients, an hour (`--soak-s`): no client stops receiving, no
    /// disconnects, aggregator RSS growth within 5 %.
    Soak(SuiteArgs),
    /// Every benchmark (agent, scale, fanout, overview, soak) and one table of every figure
    /// against its target.
    All(SuiteArgs),
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
                Command::Reconnect(args) => reconnect::run(args).await,
                Command::History(args) => history::run(args).await,
                Command::Alerts(args) => alerts::run(args).await,
                Command::Applications(args) => applications::run(args).await,
                Command::Scale(args) => suite::run(suite::Which::Scale, args).await,
                Command::Fanout(args) => suite::run(suite::Which::Fanout, args).await,
                Command::Overview(args) => suite::run(suite::Which::Overview, args).await,
                Command::Soak(args) => suite::run(suite::Which::Soak, args).await,
                Command::All(args) => suite::run(suite::Which::All, args).await,
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
