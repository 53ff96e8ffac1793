//! CI smoke test of the benchmark's Node.js scripts: `web/ui/tests/bench-fanout.mjs`,
//! `bench-overview.mjs`, `e2e-latency.mjs` and `bench-applications.mjs` read the dashboard's Socket.IO wire
//! (web/PROTOCOL.md) themselves, so a wire change could break the benchmarks with every other
//! test green. Here a small simulated fleet (smon-sim on 127.3.0.x, more hosts than one part
//! of the full `overview` holds) runs under a debug aggregator, each script runs for a few
//! seconds against it as `smon-bench` runs it (the same [`smon_bench`] fleet, script runner
//! and argument lists), and its summary must show figures that only a script reading the
//! current wire can give.
//!
//! Needs Node.js (`node`, or `$NODE`), `web/ui/node_modules` and chromium
//! (`/usr/bin/chromium`, or `$CHROMIUM`); without them the test fails rather than skips
//! (scripts/test.sh installs them). The debug smon-sim and smon-aggregator are built with
//! `cargo build -p ...` when missing or older than their sources.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::Value;
use smon_bench::applications;
use smon_bench::e2e_report::Summary;
use smon_bench::fleet::{Bins, Fleet, FleetSpec, ScriptRun};
use smon_bench::scripts::{self, APPLICATIONS, E2E, FANOUT, OVERVIEW, num};
use smon_bench::workspace::{self, Build};

/// Simulated hosts: more than the 128 rows of one `overview` part (api/src/wire.rs), so the
/// full state comes in two parts and `e2e-latency.mjs` must place rows by `offset`.
const AGENTS: u64 = 200;
/// Hosts per cluster, so that there are several clusters.
const HOSTS_PER_CLUSTER: u64 = 50;
/// The first simulated agent's address: away from the benchmarks' 127.1.x.y.
const FIRST_ADDR: &str = "127.3.0.1";
/// Socket.IO clients of the fan-out script.
const CLIENTS: u64 = 5;
/// Each script's measurement window, in seconds.
const WINDOW_S: u64 = 6;
/// Warm-up before a window, in seconds.
const WARMUP_S: u64 = 2;
/// What a script may take beyond its window and warm-up (chromium's start on a busy machine).
const SCRIPT_SLACK: Duration = Duration::from_secs(90);
/// How long the fleet may take until every host is up.
const UP_TIMEOUT: Duration = Duration::from_secs(60);
/// A latency at or above this is no measurement: `bench-fanout.mjs` files what it cannot
/// read at its top bucket (120 s).
const SANE_LATENCY_MS: f64 = 30_000.0;

/// One fleet, the four scripts one after another (about a minute); every failing script is
/// reported, not only the first.
#[tokio::test]
async fn benchmark_scripts_read_the_current_wire() {
    let t0 = Instant::now();
    let root = workspace::workspace_root();
    let node = std::env::var_os("NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from);
    scripts::check_tools(&root, &node).unwrap_or_else(|e| panic!("{e:#}"));
    let bins = Bins::get(&root, Build::Debug).unwrap_or_else(|e| panic!("{e:#}"));
    let spec = FleetSpec {
        first_addr: FIRST_ADDR.to_owned(),
        hosts_per_cluster: Some(HOSTS_PER_CLUSTER),
        up_timeout: UP_TIMEOUT,
        ..FleetSpec::new(AGENTS, 1000)
    };
    let mut fleet = Fleet::start(&bins, &root, &spec)
        .await
        .unwrap_or_else(|e| panic!("cannot start the fleet: {e:#}"));
    eprintln!("Fleet up after {:.1} s.", t0.elapsed().as_secs_f64());

    let base = fleet.base.clone();
    let limit = |run_s: u64| Duration::from_secs(run_s) + SCRIPT_SLACK;
    let mut failures = Vec::new();
    let args = scripts::fanout_args(&base, CLIENTS, WINDOW_S, WARMUP_S, 10);
    let r = fleet
        .run_script(
            &node,
            &root,
            FANOUT,
            &args,
            limit(WINDOW_S + WARMUP_S),
            false,
        )
        .await
        .and_then(|run| check_fanout(&run));
    failures.extend(r.err().map(|e| format!("{FANOUT}: {e:#}")));

    let args = scripts::overview_args(&base, WINDOW_S, AGENTS, WARMUP_S);
    let r = fleet
        .run_script(
            &node,
            &root,
            OVERVIEW,
            &args,
            limit(WINDOW_S + WARMUP_S),
            false,
        )
        .await
        .and_then(|run| check_overview(&run));
    failures.extend(r.err().map(|e| format!("{OVERVIEW}: {e:#}")));

    let args = scripts::e2e_args(&base, WINDOW_S, AGENTS);
    let r = fleet
        .run_script(&node, &root, E2E, &args, limit(WINDOW_S), false)
        .await
        .and_then(|run| check_e2e(&run));
    failures.extend(r.err().map(|e| format!("{E2E}: {e:#}")));

    let args = applications::script_args(&base, 1, 2, 3);
    let r = fleet
        .run_script(&node, &root, APPLICATIONS, &args, limit(30), false)
        .await
        .and_then(|run| check_applications(&run));
    failures.extend(r.err().map(|e| format!("{APPLICATIONS}: {e:#}")));

    if let Err(e) = fleet.ensure_running() {
        failures.push(format!("{e:#}"));
    }
    eprintln!("Done in {:.1} s.", t0.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// The script's summary, echoed for the log.
fn summary(run: &ScriptRun) -> anyhow::Result<Value> {
    eprintln!("  summary: {}", run.summary);
    run.summary_json()
}

/// `bench-fanout.mjs`: every client got deltas and stayed connected; the latencies are real
/// numbers, read from `server_time_ms` at the head of each frame (the script's light parser).
fn check_fanout(run: &ScriptRun) -> anyhow::Result<()> {
    run.window()?;
    let v = summary(run)?;
    ensure!(
        num(&v, "clients")? == CLIENTS as f64,
        "clients != {CLIENTS}"
    );
    ensure!(
        num(&v, "connected_end")? == CLIENTS as f64,
        "not every client connected at the end"
    );
    ensure!(num(&v, "disconnects")? == 0.0, "clients disconnected");
    ensure!(
        num(&v, "min_deltas_per_client")? >= 1.0,
        "a client received no overview_delta in {WINDOW_S} s"
    );
    ensure!(
        num(&v, "stalled_clients")? == 0.0,
        "a client stopped receiving"
    );
    for k in ["p50_ms", "p99_ms", "max_ms", "mean_ms"] {
        let ms = num(&v, k)?;
        ensure!(
            (0.0..SANE_LATENCY_MS).contains(&ms),
            "{k} = {ms}: not a delivery latency (server_time_ms unreadable?)"
        );
    }
    // Characters are counted only when the light parser matched the frame's head; the stock
    // parser (the fallback) would measure its own JSON parsing instead.
    ensure!(
        num(&v, "mean_delta_chars")? > 0.0,
        "overview_delta frames no longer start with server_time_ms, as the script's light \
         parser expects"
    );
    ensure!(num(&v, "bytes_per_s_per_client")? > 0.0, "no bytes counted");
    Ok(())
}

/// `bench-overview.mjs`: the page showed every host and live updates were measured.
fn check_overview(run: &ScriptRun) -> anyhow::Result<()> {
    run.window()?;
    let v = summary(run)?;
    ensure!(num(&v, "rows")? == AGENTS as f64, "rows != {AGENTS}");
    ensure!(num(&v, "updates")? > 0.0, "no overview_delta frame seen");
    ensure!(num(&v, "updates_measured")? > 0.0, "no update measured");
    for k in [
        "script_p50_ms",
        "task_p50_ms",
        "input_delay_p50_ms",
        "raf_gap_p50_ms",
    ] {
        num(&v, k)?;
    }
    ensure!(num(&v, "inputs")? > 0.0, "no input event recorded");
    Ok(())
}

/// `e2e-latency.mjs`: samples reached the DOM, and most are matched to the `overview_delta`
/// that carried them (rows by position `i` placed by the full overview's `offset`, sample
/// time `t` relative to `server_time_ms`). Only the first frame of the window can carry
/// samples the script cannot match.
fn check_e2e(run: &ScriptRun) -> anyhow::Result<()> {
    eprintln!("  summary: {}", run.summary);
    let s = Summary::parse(&run.summary)?;
    ensure!(
        s.transport == "websocket",
        "transport {}, not websocket",
        s.transport
    );
    ensure!(s.hosts == AGENTS, "hosts {} != {AGENTS}", s.hosts);
    ensure!(s.delta_frames > 0, "no overview_delta frame seen");
    ensure!(s.samples > 0, "no sample reached the DOM");
    ensure!(
        s.matched as f64 >= 0.6 * s.samples as f64,
        "only {} of {} samples matched to their overview_delta",
        s.matched,
        s.samples
    );
    let split =
        |k: &str, v: Option<f64>| v.ok_or_else(|| anyhow::anyhow!("{k} is null, not a number"));
    for (k, ms) in [
        ("p50_ms", s.p50_ms),
        ("p99_ms", s.p99_ms),
        ("emit_p50_ms", split("emit_p50_ms", s.emit_p50_ms)?),
        ("deliver_p50_ms", split("deliver_p50_ms", s.deliver_p50_ms)?),
    ] {
        ensure!(
            ms.is_finite() && ms.abs() < SANE_LATENCY_MS,
            "{k} = {ms}: not a latency (sample time misread?)"
        );
    }
    Ok(())
}

/// `bench-applications.mjs`: the route lists every simulated program on every host, with the
/// agents' CPU and memory sums; the page drew its rows at both viewports.
fn check_applications(run: &ScriptRun) -> anyhow::Result<()> {
    eprintln!("  summary: {}", run.summary);
    let s = applications::Summary::parse(&run.summary)?;
    ensure!(s.rest.programs == 20, "programs {} != 20", s.rest.programs);
    ensure!(
        s.rest.entries == AGENTS * 20,
        "entries {} != {}",
        s.rest.entries,
        AGENTS * 20
    );
    ensure!(
        s.rest.entries_with_sums == s.rest.entries && s.rest.programs_with_sums == 20,
        "CPU and memory missing: {:?}",
        s.rest
    );
    ensure!(s.viewports.len() == 2, "{} viewports", s.viewports.len());
    for v in &s.viewports {
        ensure!(
            v.rows == 20,
            "{}x{}: {} rows drawn",
            v.width,
            v.height,
            v.rows
        );
        ensure!(v.chips > 0, "{}x{}: no host chip drawn", v.width, v.height);
        ensure!(v.median_ms > 0.0, "{}x{}: no load time", v.width, v.height);
    }
    Ok(())
}
