//! What one read of the process table costs: with a fresh open per process per sample, with
//! the `stat` files kept open and every process read in full, and as the agent runs (kept
//! files, single-threaded processes through `schedstat` between full reads every 5 s, and
//! `/proc` listed only when a pid was handed out since the last listing):
//! `cargo run --release -p smon-collect --example proc_cost -- [PROCESSES] [SAMPLES]`.
//!
//! Idle `sleep` children make the table at least PROCESSES long (300 by default); each mode
//! then takes SAMPLES samples (200 by default, after one warm-up) of the real `/proc`. The cost
//! is this thread's CPU time from `/proc/thread-self/schedstat` (nanoseconds, user and
//! kernel), so the figures are what the sampler thread itself spends.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smon_collect::Redactor;
use smon_collect::processes::{FULL_EVERY, MAX_KEPT_FDS, ProcTable, RELIST_EVERY};

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn count() -> usize {
    smon_collect::processes::count(std::path::Path::new("/proc")).unwrap_or(0) as usize
}

fn main() {
    let mut args = std::env::args().skip(1);
    let want: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let samples: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let mut children: Vec<Child> = Vec::new();
    while count() < want {
        match Command::new("sleep")
            .arg("600")
            .stdout(Stdio::null())
            .spawn()
        {
            Ok(c) => children.push(c),
            Err(e) => {
                eprintln!("cannot start sleep: {e}");
                break;
            }
        }
    }
    let red = Redactor::default();
    for (label, limit, every, relist) in [
        ("open per sample", 0, Duration::ZERO, Duration::ZERO),
        ("kept + pread", MAX_KEPT_FDS, Duration::ZERO, Duration::ZERO),
        ("+ schedstat", MAX_KEPT_FDS, FULL_EVERY, Duration::ZERO),
        ("+ listing skip", MAX_KEPT_FDS, FULL_EVERY, RELIST_EVERY),
    ] {
        let mut t = ProcTable::new(PathBuf::from("/proc"), 0)
            .with_fd_limit(limit)
            .with_full_every(every)
            .with_relist_every(relist);
        // Samples as the agent takes them, one second apart (on the table's clock).
        let t0 = Instant::now();
        let mut rows = t.sample(t0, &red, &mut Vec::new()).len();
        let cpu0 = thread_cpu_ns();
        for i in 1..=samples {
            let now = t0 + Duration::from_secs(u64::from(i));
            rows = t.sample(now, &red, &mut Vec::new()).len();
        }
        let per_sample_us = (thread_cpu_ns() - cpu0) as f64 / f64::from(samples) / 1000.0;
        println!(
            "{label:>16}: {rows} processes, {per_sample_us:.0} us CPU per sample, \
             {:.2} us per process, {:.3} % of a core at 1 Hz ({} files kept)",
            per_sample_us / rows.max(1) as f64,
            per_sample_us / 1e6 * 100.0,
            t.kept_fds(),
        );
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}
