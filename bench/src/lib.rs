//! smon's benchmarks as a library: the harness (the machine description, child processes
//! stopped on drop, the workspace's binaries, a simulated fleet under a real aggregator, the
//! Node.js scripts run against it, `/proc` readings, statistics, and the markdown reports) and
//! the benchmarks built on it. The `smon-bench` binary is a thin command line over it, and the
//! CI smoke test (`tests/scripts.rs`) runs the same fleet and scripts.
//!
//! `smon-bench agent` runs the node agent next to Prometheus node_exporter, polls both the same
//! way and reports memory (PSS summed over the agent's processes, and RSS), CPU, bytes and
//! latency per poll, and the agent's sample time.
//!
//! `smon-bench e2e` runs a demo fleet of agents, the aggregator and a headless browser, and
//! reports the latency from an agent's sample to the home page's DOM and the bytes per second
//! the page receives.
//!
//! `smon-bench reconnect` kills real agents under a real aggregator and restarts them after an
//! outage: how soon each host is up again, and what probing dead hosts costs meanwhile.
//!
//! `smon-bench history` feeds a simulated fleet into the embedded history and, by remote write,
//! into VictoriaMetrics: bytes per stored value side by side, the aggregator's CPU with history
//! off and on, and query times.
//!
//! `smon-bench alerts` runs the alert rule engine alone (the workload of
//! `alerts/examples/engine_cost.rs`) and a simulated fleet under the real aggregator without
//! and with its 20 rules: the CPU the rules add, RSS, notifications received.
//!
//! `smon-bench applications` runs a simulated fleet of 500 hosts with 20 supervisord programs
//! each under the real aggregator: `GET /api/v1/applications` and the Applications page in
//! chromium (load time at two viewports, the longest task during live updates).
//!
//! `smon-bench scale | fanout | overview | soak` run a simulated fleet (smon-sim) under the
//! aggregator: 1,000 to 10,000 agents, 100 and 1,000 Socket.IO clients, the overview page in
//! chromium, an hour's soak. `smon-bench all` runs the agent benchmark and those four and
//! prints every figure against its target (`--quick` for a smoke run).
//!
//! Errors are `anyhow` here although this is a library: every caller is the benchmark's own
//! binary or test, which only prints them, and none branches on a kind.

pub mod agent;
pub mod alerts;
pub mod applications;
pub mod cgroups;
pub mod children;
pub mod e2e;
pub mod e2e_report;
pub mod fleet;
pub mod glances;
pub mod history;
pub mod machine;
pub mod procfs;
pub mod reconnect;
pub mod report;
pub mod scripts;
pub mod staleness;
pub mod stats;
pub mod suite;
pub mod suite_report;
pub mod workspace;

use std::io::Write;
use std::path::PathBuf;

/// Prints a report (and a newline) on stdout. A reader that has left (`smon-bench agent |
/// head`) is not an error: Rust ignores SIGPIPE, so `println!` would panic there; the write is
/// dropped and the run goes on (a `--write` file is still written), ending with status 0.
pub fn print_report(text: &str) -> std::io::Result<()> {
    write_report(&mut std::io::stdout().lock(), text)
}

fn write_report(w: &mut impl Write, text: &str) -> std::io::Result<()> {
    match writeln!(w, "{text}").and_then(|()| w.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// Arguments of the fleet benchmarks and of `all`.
#[derive(Debug, Clone, clap::Args)]
pub struct SuiteArgs {
    /// A short smoke run: 15 s windows, 1,000 agents only, 100 clients only, a 60 s soak.
    #[arg(long)]
    pub quick: bool,
    /// Fleet sizes for `scale`.
    #[arg(long, value_delimiter = ',', default_values_t = [1000u64, 5000, 10_000])]
    pub agents: Vec<u64>,
    /// Client counts for `fanout`.
    #[arg(long, value_delimiter = ',', default_values_t = [100u64, 1000])]
    pub clients: Vec<u64>,
    /// The agents' sampling interval and the aggregator's poll interval, in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub interval_ms: u64,
    /// Each measurement window (scale, fanout, overview; the agent benchmark in `all`), s.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..))]
    pub duration_s: u64,
    /// Warm-up before each window, in seconds.
    #[arg(long, default_value_t = 10)]
    pub warmup_s: u64,
    /// How long the soak runs, in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(10..))]
    pub soak_s: u64,
    /// Warm-up of the soak (clients connected) before the RSS reference, in seconds.
    #[arg(long, default_value_t = 300)]
    pub soak_warmup_s: u64,
    /// Hosts in the soak.
    #[arg(long, default_value_t = 500)]
    pub soak_agents: u64,
    /// Socket.IO clients in the soak.
    #[arg(long, default_value_t = 200)]
    pub soak_clients: u64,
    /// The Node.js executable that runs web/ui/tests/bench-*.mjs.
    #[arg(long, default_value = "node")]
    pub node: PathBuf,
    /// Also rewrite this run's sections of this markdown file (e.g. BENCHMARKS.md), keeping
    /// everything outside their markers.
    #[arg(long)]
    pub write: Option<PathBuf>,
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
    /// The Glances executable. Default: target/bench/glances-venv/bin/glances, installed
    /// from PyPI (`glances[web]`) into that virtual environment when missing.
    #[arg(long)]
    pub glances: Option<PathBuf>,
    /// Leave Glances out.
    #[arg(long)]
    pub no_glances: bool,
    /// Idle `sleep` processes started first, so the process list is the size of a real host's.
    #[arg(long, default_value_t = 200)]
    pub extra_procs: usize,
    /// Of those idle processes, how many are each put in a Docker-shaped cgroup of their own
    /// (`/docker/<id>`, every hierarchy the collector reads), so that the agent reads that many
    /// containers; needs root. 0: none made.
    #[arg(long, default_value_t = 0)]
    pub containers: usize,
    /// Leave out the second pass, the agent alone with its web view off.
    #[arg(long)]
    pub no_web_off: bool,
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

#[cfg(test)]
mod tests {
    use std::io::{self, ErrorKind, Write};

    struct Failing(ErrorKind);
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(self.0))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reader_that_left_is_not_an_error_but_a_full_disk_is() {
        let mut v = Vec::new();
        super::write_report(&mut v, "report").expect("written");
        assert_eq!(v, b"report\n");
        super::write_report(&mut Failing(ErrorKind::BrokenPipe), "r").expect("quiet");
        let e = super::write_report(&mut Failing(ErrorKind::StorageFull), "r").expect_err("error");
        assert_eq!(e.kind(), ErrorKind::StorageFull);
    }
}
