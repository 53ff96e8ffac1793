//! Times the live write path: HOSTS hosts x SECONDS seconds of synthetic 1 Hz samples through
//! the writer thread (staging rows, open minutes, blocks and rollups once a simulated minute),
//! and, with GPUS > 0, that many GPUs on every host plus each host's top processes and GPU
//! processes once a minute (as the aggregator hands them over).
//!
//! `cargo run --release -p smon-history --example write_rate -- DIR HOSTS SECONDS [GPUS]`
//!
//! Prints the wall time and the writer thread's own CPU time (from
//! `/proc/self/task/*/schedstat`) per host-sample: at 1 Hz, N hosts cost the writer
//! N x (that many µs) per second, e.g. 40 µs x 10,000 hosts = 40 % of a core.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use smon_history::metrics::{synthetic_gpus, synthetic_snapshot};
use smon_history::procs::{minute_of, synthetic_processes};
use smon_history::writer::{QUEUE, Write, Writer};
use smon_history::{Retention, StorageOptions};

/// How many distinct samples per host are made up front (then reused in turn; fewer past
/// 1,666 hosts, at most 100,000 in all).
const CYCLE: u64 = 60;

/// The CPU time (ns) the writer thread has used so far, from its schedstat.
fn writer_cpu_ns() -> Result<u64, Box<dyn Error>> {
    for task in std::fs::read_dir("/proc/self/task")? {
        let dir = task?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() == "smon-history-wr" {
            let stat = std::fs::read_to_string(dir.join("schedstat"))?;
            let ns = stat.split_whitespace().next().unwrap_or("0").parse()?;
            return Ok(ns);
        }
    }
    Err("no thread named smon-history-wr".into())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, hosts, seconds, gpus) = match args.as_slice() {
        [d, h, s] => (d, h, s, "0"),
        [d, h, s, g] => (d, h, s, g.as_str()),
        _ => return Err("usage: write_rate DIR HOSTS SECONDS [GPUS]".into()),
    };
    let (hosts, seconds, gpus): (u64, u64, u32) = (hosts.parse()?, seconds.parse()?, gpus.parse()?);
    let t0 = 1_700_006_400_000u64;
    let now = Arc::new(AtomicU64::new(t0));
    let clock = now.clone();
    let opts = StorageOptions {
        dir: PathBuf::from(dir),
        retention: Retention::default(),
    };
    let w = Writer::start_with(opts, Arc::new(move || clock.load(Ordering::SeqCst)), QUEUE)?;
    // Snapshots made up front (CYCLE distinct seconds per host), so only the writer is timed.
    let cycle = seconds.clamp(1, CYCLE).min((100_000 / hosts.max(1)).max(1));
    let snaps: Vec<Vec<Arc<_>>> = (0..hosts)
        .map(|h| {
            (0..cycle)
                .map(|s| {
                    let at = t0 + s * 1000;
                    let mut snap = synthetic_snapshot(h, at);
                    snap.gpus = synthetic_gpus(h, at, gpus);
                    Arc::new(snap)
                })
                .collect()
        })
        .collect();
    let names: Vec<String> = (0..hosts).map(|h| format!("c{}:node{h}", h % 10)).collect();
    let send = |w: &Writer, write: Write| {
        let mut write = Some(write);
        while let Some(x) = write.take() {
            if !w.send(x.clone()) {
                write = Some(x);
                std::thread::yield_now();
            }
        }
    };
    let cpu0 = writer_cpu_ns()?;
    let started = Instant::now();
    // After the first minute (every series made, the first minute rolled up): the steady
    // state of a writer that has been running for a while.
    let mut steady = None;
    for s in 0..seconds {
        let at = t0 + s * 1000;
        now.store(at, Ordering::SeqCst);
        for (h, snap) in snaps.iter().enumerate() {
            send(
                &w,
                Write::Sample {
                    host: names[h].clone(),
                    at_ms: at,
                    snapshot: snap[(s % cycle) as usize].clone(),
                },
            );
            if gpus > 0 && s % 60 == 30 {
                send(
                    &w,
                    Write::Processes {
                        host: names[h].clone(),
                        at_ms: at,
                        snapshot: Arc::new(synthetic_processes(h as u64, minute_of(at), gpus)),
                    },
                );
            }
        }
        if s % 60 == 59 {
            w.sync(Some(at))?;
            if steady.is_none() && s + 1 < seconds {
                steady = Some((s + 1, writer_cpu_ns()?));
            }
        }
    }
    w.sync(Some(t0 + seconds * 1000))?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = (writer_cpu_ns()? - cpu0) as f64 / 1e9;
    let n = hosts * seconds;
    let values = w.stats().written();
    println!(
        "{n} samples ({hosts} hosts x {seconds} s, {gpus} GPUs each) in {secs:.1} s: \
         {:.0} samples/s; writer CPU {cpu:.2} s = {:.1} us per host-sample \
         (= {:.0} % of a core at 10,000 hosts at 1 Hz); {values} writes committed",
        n as f64 / secs,
        cpu * 1e6 / n as f64,
        cpu * 1e6 / n as f64,
    );
    if let Some((from, cpu1)) = steady {
        let cpu = (writer_cpu_ns()? - cpu1) as f64 / 1e9;
        let n = hosts * (seconds - from);
        println!(
            "after the first minute: writer CPU {cpu:.2} s = {:.1} us per host-sample",
            cpu * 1e6 / n as f64
        );
    }
    w.stop()?;
    Ok(())
}
