//! The fleet benchmarks of issue #6 and the command that runs every benchmark:
//!
//! - `scale`: the aggregator under 1,000 / 5,000 / 10,000 simulated agents at a 1 s interval:
//!   its CPU and RSS, staleness (sample → store) p50/p99, and the overview bytes per second to
//!   one browser (one Socket.IO client);
//! - `fanout`: 100 and 1,000 Socket.IO clients on the overview of 1,000 hosts: delivery
//!   latency p50/p99, aggregator CPU, bytes per second per client;
//! - `overview`: the overview page of 1,000 hosts in headless chromium: main-thread script
//!   time per live update, and input delay while it updates;
//! - `soak`: 500 hosts, 200 clients for an hour (or `--soak-s`): no client stops receiving,
//!   no disconnects, aggregator RSS growth within 5 %;
//! - `all`: the agent benchmark and the four above, one table of every figure against its
//!   target, and every section written into BENCHMARKS.md.
//!
//! The fleets are [`Fleet`]s (smon-sim + smon-aggregator); the browsers are the Node.js
//! scripts `web/ui/tests/bench-fanout.mjs` and `bench-overview.mjs`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::fleet::{self, Bins, Fleet, FleetSpec, SCRIPT_SLACK, ScriptRun};
use crate::machine::Machine;
use crate::scripts::{self, FANOUT, OVERVIEW};
use crate::staleness::Buckets;
use crate::suite_report::{FanoutRun, OverviewRun, ScaleRun, SoakRun, SuiteReport};
use crate::workspace::{self, Build, command_line};
use crate::{AgentArgs, SuiteArgs, agent, report};

/// Which benchmarks a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// `scale`.
    Scale,
    /// `fanout`.
    Fanout,
    /// `overview`.
    Overview,
    /// `soak`.
    Soak,
    /// `all`: the agent benchmark and every fleet benchmark.
    All,
}

/// Settings after `--quick` is applied.
struct Plan {
    agents: Vec<u64>,
    clients: Vec<u64>,
    window_s: u64,
    warmup_s: u64,
    soak_s: u64,
    soak_warmup_s: u64,
}

impl Plan {
    fn of(a: &SuiteArgs) -> Self {
        if a.quick {
            Self {
                agents: vec![1000],
                clients: vec![100],
                window_s: 15,
                warmup_s: 5,
                soak_s: 60,
                soak_warmup_s: 15,
            }
        } else {
            Self {
                agents: a.agents.clone(),
                clients: a.clients.clone(),
                window_s: a.duration_s,
                warmup_s: a.warmup_s,
                soak_s: a.soak_s,
                soak_warmup_s: a.soak_warmup_s,
            }
        }
    }
}

/// Runs `which`, prints the sections and the table of targets, and with `--write` stores them.
pub async fn run(which: Which, args: SuiteArgs) -> anyhow::Result<()> {
    let plan = Plan::of(&args);
    let root = workspace::workspace_root();
    let mut rep = SuiteReport {
        machine: Machine::describe(),
        command_line: command_line(),
        versions: Vec::new(),
        quick: args.quick,
        window_s: plan.window_s,
        warmup_s: plan.warmup_s,
        agent: None,
        scale: Vec::new(),
        fanout: Vec::new(),
        overview: None,
        soak: None,
        public_read_only: false,
    };

    if which == Which::All {
        let a = AgentArgs {
            duration_s: if args.quick { 10 } else { plan.window_s },
            warmup_s: plan.warmup_s.min(5),
            agent_bin: None,
            node_exporter: "/usr/bin/prometheus-node-exporter".into(),
            glances: None,
            no_glances: false,
            no_web_off: false,
            extra_procs: 200,
            containers: 0,
            burst: if args.quick { 200 } else { 2000 },
            write: None,
        };
        eprintln!("== (a) agent next to node_exporter and Glances");
        rep.agent = Some(agent::measure(&a).await?);
    }

    let bins = Bins::get(&root, Build::Release)?;
    scripts::check_tools(&root, &args.node)?;
    rep.versions = versions(&bins, &args.node);
    let wants = |w: Which| which == w || which == Which::All;

    // One fleet of 1,000 serves the scale row of 1,000, the fan-out and the overview page.
    let mut scale_agents = if wants(Which::Scale) {
        plan.agents.clone()
    } else {
        Vec::new()
    };
    let shared = 1000;
    if wants(Which::Fanout) || wants(Which::Overview) || scale_agents.contains(&shared) {
        let mut f = Fleet::start(&bins, &root, &FleetSpec::new(shared, args.interval_ms)).await?;
        rep.public_read_only = f.public_read_only;
        f.idle(Duration::from_secs(plan.warmup_s)).await?;
        if scale_agents.contains(&shared) {
            eprintln!("== (b) aggregator with {shared} agents");
            rep.scale.push(scale(&mut f, &root, &args, &plan).await?);
            scale_agents.retain(|n| *n != shared);
        }
        if wants(Which::Fanout) {
            for &c in &plan.clients {
                eprintln!("== (c) {c} Socket.IO clients on the overview of {shared} hosts");
                rep.fanout
                    .push(fanout(&mut f, &root, &args, &plan, c).await?);
            }
        }
        if wants(Which::Overview) {
            eprintln!("== (d) the overview page of {shared} hosts in chromium");
            rep.overview = Some(overview(&mut f, &root, &args, &plan).await?);
        }
    }
    for n in scale_agents {
        eprintln!("== (b) aggregator with {n} agents");
        let mut f = Fleet::start(&bins, &root, &FleetSpec::new(n, args.interval_ms)).await?;
        rep.public_read_only = f.public_read_only;
        f.idle(Duration::from_secs(plan.warmup_s)).await?;
        rep.scale.push(scale(&mut f, &root, &args, &plan).await?);
    }
    if wants(Which::Soak) {
        eprintln!(
            "== (e) soak: {} hosts, {} clients, {} s",
            args.soak_agents, args.soak_clients, plan.soak_s
        );
        let spec = FleetSpec::new(args.soak_agents, args.interval_ms);
        let mut f = Fleet::start(&bins, &root, &spec).await?;
        rep.public_read_only = f.public_read_only;
        rep.soak = Some(soak(&mut f, &root, &args, &plan).await?);
    }

    let sections = rep.sections();
    for (_, _, text) in &sections {
        crate::print_report(text)?;
    }
    let checks = rep.checks();
    crate::print_report(&SuiteReport::table(&checks))?;
    if let Some(path) = &args.write {
        for (start, end, text) in &sections {
            workspace::write_section(path, text, start, end)?;
        }
        if which == Which::All {
            if let Some(a) = &rep.agent {
                workspace::write_section(path, &a.markdown(), report::START, report::END)?;
            }
            let summary = rep.summary_section(&checks);
            workspace::write_section(
                path,
                &summary,
                crate::suite_report::SUMMARY_START,
                crate::suite_report::SUMMARY_END,
            )?;
        }
        eprintln!("Wrote {}.", path.display());
    }
    let failed = checks.iter().filter(|c| c.pass == Some(false)).count();
    if failed > 0 {
        eprintln!("{failed} of {} targets missed.", checks.len());
    }
    Ok(())
}

fn versions(bins: &Bins, node: &Path) -> Vec<String> {
    let v = |p: &Path, name: &str| {
        format!(
            "{}{}",
            crate::machine::version_of(p).unwrap_or_else(|| name.to_owned()),
            workspace::binary_size(p)
        )
    };
    let root = workspace::workspace_root();
    let rev = workspace::git_rev(&root, &["sim", "aggregator", "web", "proto"]);
    let rev = rev.trim().trim_start_matches('(').trim_end_matches(')');
    let mut out = vec![
        v(&bins.sim, "smon-sim"),
        v(&bins.aggregator, "smon-aggregator"),
    ];
    if !rev.is_empty() {
        out.push(format!("both built from {rev}"));
    }
    out.push(format!(
        "Node.js {}",
        crate::machine::version_of(node).unwrap_or_else(|| "(version unknown)".into())
    ));
    out.push(
        crate::machine::version_of(&scripts::chromium())
            .unwrap_or_else(|| "chromium (version unknown)".into()),
    );
    out
}

/// Runs the fan-out script with `clients` clients for `window_s` seconds.
async fn fanout_script(
    f: &mut Fleet,
    root: &Path,
    args: &SuiteArgs,
    clients: u64,
    window_s: u64,
    warmup_s: u64,
    scrape: bool,
) -> anyhow::Result<(ScriptRun, Value)> {
    let progress = (window_s / 6).clamp(10, 300);
    let base = f.base.clone();
    let run = f
        .run_script(
            &args.node,
            root,
            FANOUT,
            &scripts::fanout_args(&base, clients, window_s, warmup_s, progress),
            Duration::from_secs(window_s + warmup_s) + SCRIPT_SLACK,
            scrape,
        )
        .await?;
    let v = run
        .summary_json()
        .map_err(|e| e.context(format!("{FANOUT} printed an unexpected summary")))?;
    Ok((run, v))
}

/// The aggregator's CPU (and the simulator's) over the script's window, leaving out 2 s at
/// each end, where the benchmark reads `/metrics`.
fn window_cpu(f: &Fleet, start: u64, end: u64) -> (Option<f64>, Option<f64>) {
    let r = f.readings();
    let (a, b) = (start + 2000, end.saturating_sub(2000));
    (
        fleet::cpu_percent(&r.aggregator, a, b),
        fleet::cpu_percent(&r.sim, a, b),
    )
}

async fn scale(
    f: &mut Fleet,
    root: &Path,
    args: &SuiteArgs,
    plan: &Plan,
) -> anyhow::Result<ScaleRun> {
    let (run, browser) = fanout_script(f, root, args, 1, plan.window_s, 2, true).await?;
    let (start, end) = run.window()?;
    let (cpu, sim_cpu) = window_cpu(f, start, end);
    let hist: Option<Buckets> = match (&run.hist_start, &run.hist_end) {
        (Some(a), Some(b)) => Some(b.since(a)?),
        _ => None,
    };
    // Exact ages of each host's latest sample, read five times a second apart after the
    // window (the reads cost the aggregator CPU, so they stay out of it).
    let mut rows = Vec::new();
    for _ in 0..5 {
        rows.extend(f.row_staleness().await?);
        f.idle(Duration::from_secs(1)).await?;
    }
    let r = f.readings();
    f.ensure_running()?;
    Ok(ScaleRun {
        agents: f.agents,
        window_s: (end - start) as f64 / 1000.0,
        cpu_percent: cpu,
        sim_cpu_percent: sim_cpu,
        rss_end: r.aggregator.last().map_or(0, |s| s.rss),
        rss_max: fleet::rss_max(&r.aggregator, start, end).unwrap_or(0),
        hist,
        rows,
        browser,
    })
}

async fn fanout(
    f: &mut Fleet,
    root: &Path,
    args: &SuiteArgs,
    plan: &Plan,
    clients: u64,
) -> anyhow::Result<FanoutRun> {
    let (run, summary) =
        fanout_script(f, root, args, clients, plan.window_s, plan.warmup_s, false).await?;
    let (start, end) = run.window()?;
    let r = f.readings();
    let cpu = fleet::cpu_percent(&r.aggregator, start, end);
    let sim_cpu = fleet::cpu_percent(&r.sim, start, end);
    f.ensure_running()?;
    Ok(FanoutRun {
        hosts: f.agents,
        clients,
        cpu_percent: cpu,
        sim_cpu_percent: sim_cpu,
        rss_max: fleet::rss_max(&r.aggregator, start, end).unwrap_or(0),
        summary,
    })
}

async fn overview(
    f: &mut Fleet,
    root: &Path,
    args: &SuiteArgs,
    plan: &Plan,
) -> anyhow::Result<OverviewRun> {
    let base = f.base.clone();
    let run = f
        .run_script(
            &args.node,
            root,
            OVERVIEW,
            &scripts::overview_args(&base, plan.window_s, f.agents, plan.warmup_s),
            Duration::from_secs(plan.window_s + plan.warmup_s) + SCRIPT_SLACK,
            false,
        )
        .await?;
    let summary = run
        .summary_json()
        .map_err(|e| e.context(format!("{OVERVIEW} printed an unexpected summary")))?;
    let (start, end) = run.window()?;
    let r = f.readings();
    f.ensure_running()?;
    Ok(OverviewRun {
        hosts: f.agents,
        cpu_percent: fleet::cpu_percent(&r.aggregator, start, end),
        summary,
    })
}

async fn soak(
    f: &mut Fleet,
    root: &Path,
    args: &SuiteArgs,
    plan: &Plan,
) -> anyhow::Result<SoakRun> {
    // The warm-up is part of the script's run (its clients connected), so that the RSS
    // reference is taken with every client on.
    let (run, summary) = fanout_script(
        f,
        root,
        args,
        args.soak_clients,
        plan.soak_s,
        plan.soak_warmup_s,
        false,
    )
    .await?;
    let (start, end) = run.window()?;
    let r = f.readings();
    // RSS after the warm-up: the median of the window's first minute (or tenth); at the end:
    // the median of its last.
    let span = ((end - start) / 10).clamp(5_000, 60_000);
    let rss_start = fleet::rss_median(&r.aggregator, start, start + span).unwrap_or(0);
    let rss_end = fleet::rss_median(&r.aggregator, end.saturating_sub(span), end).unwrap_or(0);
    f.ensure_running()?;
    Ok(SoakRun {
        hosts: f.agents,
        clients: args.soak_clients,
        duration_s: (end - start) as f64 / 1000.0,
        warmup_s: plan.soak_warmup_s,
        span_s: span as f64 / 1000.0,
        rss_start,
        rss_end,
        rss_max: fleet::rss_max(&r.aggregator, start, end).unwrap_or(0),
        cpu_percent: fleet::cpu_percent(&r.aggregator, start, end),
        summary,
    })
}
