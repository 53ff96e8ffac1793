//! Smoke test of `smon-bench alerts`: 50 simulated hosts (on 127.5.0.x, away from the
//! benchmarks' 127.1.x.y and the scripts test's 127.3.0.x) under the debug aggregator for 2 s
//! windows, without and with the 20 rules, and the engine alone for 2 simulated seconds. The
//! aggregator must take the benchmark's `alerts` block (rules and webhook channel) and the run
//! must give a CPU figure for both windows and a report with its markers. The debug smon-sim
//! and smon-aggregator are built with `cargo build -p ...` when missing or older than their
//! sources.

use smon_bench::alerts::{self, AlertsArgs};
use smon_bench::fleet::Bins;
use smon_bench::machine::Machine;
use smon_bench::workspace::{self, Build};

#[tokio::test]
async fn alerts_benchmark_runs_on_a_small_fleet() {
    let root = workspace::workspace_root();
    let bins = Bins::get(&root, Build::Debug).unwrap_or_else(|e| panic!("{e:#}"));
    let args = AlertsArgs {
        hosts: 50,
        duration_s: 2,
        warmup_s: 1,
        interval_ms: 1000,
        engine_s: 2,
        debug: true,
        split: false,
        rules: None,
        write: None,
        first_addr: "127.5.0.1".into(),
    };
    let report = alerts::measure(&bins, &args)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(report.engine.len(), 2);
    assert!(report.engine.iter().all(|c| c.hosts == 50 && c.rules == 20));
    let [off, on] = report.aggregator.as_slice() else {
        panic!("two aggregator runs expected: {:?}", report.aggregator);
    };
    assert_eq!((off.rules, on.rules), (0, 20));
    assert!(off.cpu.is_some() && on.cpu.is_some(), "{off:?} {on:?}");
    assert!(report.cpu_added().is_some());
    let text = alerts::markdown(&args, &Machine::describe(), "", &report);
    assert!(text.starts_with(alerts::START) && text.ends_with(&format!("{}\n", alerts::END)));
    assert!(text.contains("20 rules (engine_cost's)"), "{text}");
}
