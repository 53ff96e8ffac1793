//! What one whole sample of the collector costs the sampler thread, the process list
//! included (a browser watching), with and without containers:
//! `cargo run --release -p smon-collect --example sample_cost -- [SAMPLES]`.
//!
//! Takes SAMPLES samples (100 by default) one after the other after one warm-up; the cost is
//! this thread's CPU time from `/proc/thread-self/schedstat` (user and kernel), so the figure
//! is what the agent's sampler thread spends per sample, whatever else the machine runs. The
//! process table alone is `proc_cost`'s; the rest is CPU, memory, disks, network, sensors,
//! sessions (and containers).

use std::time::Duration;

use smon_collect::collector::{Collector, CollectorConfig, DetailDemand, Roots};
use smon_collect::{ContainersConfig, DiskFilter, NetworkFilter, Redactor};

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let samples: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    for (label, containers) in [
        ("no containers", None),
        ("containers on", Some(ContainersConfig::default())),
    ] {
        let demand = DetailDemand::default();
        let mut c = Collector::new(CollectorConfig {
            roots: Roots::default(),
            redactor: Redactor::default(),
            disks: DiskFilter::default(),
            network: NetworkFilter::default(),
            gpus: None,
            interval: Duration::from_secs(1),
            demand: demand.clone(),
            programs: None,
            containers,
        })
        .expect("collector");
        demand.mark();
        let first = c.sample(1);
        let cpu0 = thread_cpu_ns();
        let mut last = first;
        for i in 0..samples {
            demand.mark();
            last = c.sample(u64::from(i) + 2);
        }
        let us = (thread_cpu_ns() - cpu0) as f64 / f64::from(samples) / 1000.0;
        println!(
            "{label:>14}: {us:.0} us CPU per sample ({:.3} % of a core at 1 Hz): {} processes, \
             {} disks, {} interfaces, {} temperatures, {} containers",
            us / 1e4,
            last.processes.len(),
            last.disks.len(),
            last.networks.len(),
            last.temperatures.len(),
            last.containers.as_ref().map_or(0, |c| c.items.len()),
        );
    }
}
