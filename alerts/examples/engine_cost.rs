//! What the rule engine costs the aggregator: 10,000 simulated hosts sending a sample a second,
//! 20 rules (every kind of condition, scopes included), disk-fill history seeded for the
//! prediction; prints the time per host-evaluation (one sample through every rule in the host's
//! scope) and the share of one core at 1 Hz, ticks included. The workload is
//! [`smon_alerts::bench`], which `smon-bench alerts` runs too, next to the real aggregator.
//!
//! `cargo run --release -p smon-alerts --example engine_cost [hosts] [seconds] [steady|churn]`

use smon_alerts::bench::{self, Load};

fn main() {
    let mut args = std::env::args().skip(1);
    let hosts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    let load = if args.next().as_deref() == Some("churn") {
        Load::Churn
    } else {
        Load::Steady
    };
    println!("{}", bench::run(hosts, seconds, load));
}
