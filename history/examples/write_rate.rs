//! Times the live write path: HOSTS hosts x SECONDS seconds of synthetic 1 Hz samples through
//! the writer thread (staging rows, open minutes, blocks and rollups once a simulated minute).
//!
//! `cargo run --release -p smon-history --example write_rate -- DIR HOSTS SECONDS`

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use smon_history::metrics::synthetic_snapshot;
use smon_history::writer::{QUEUE, Write, Writer};
use smon_history::{Retention, StorageOptions};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, hosts, seconds] = args.as_slice() else {
        return Err("usage: write_rate DIR HOSTS SECONDS".into());
    };
    let (hosts, seconds): (u64, u64) = (hosts.parse()?, seconds.parse()?);
    let t0 = 1_700_006_400_000u64;
    let now = Arc::new(AtomicU64::new(t0));
    let clock = now.clone();
    let opts = StorageOptions {
        dir: PathBuf::from(dir),
        retention: Retention::default(),
    };
    let w = Writer::start_with(opts, Arc::new(move || clock.load(Ordering::SeqCst)), QUEUE)?;
    // Snapshots made up front, so only the writer is timed.
    let snaps: Vec<Arc<_>> = (0..hosts)
        .map(|h| Arc::new(synthetic_snapshot(h, t0)))
        .collect();
    let started = Instant::now();
    for s in 0..seconds {
        let at = t0 + s * 1000;
        now.store(at, Ordering::SeqCst);
        for (h, snap) in snaps.iter().enumerate() {
            while !w.send(Write::Sample {
                host: format!("c{}:node{h}", h % 10),
                at_ms: at,
                snapshot: snap.clone(),
            }) {
                std::thread::yield_now();
            }
        }
        if s % 60 == 59 {
            w.sync(Some(at))?;
        }
    }
    w.sync(Some(t0 + seconds * 1000))?;
    let secs = started.elapsed().as_secs_f64();
    let n = hosts * seconds;
    println!(
        "{n} samples in {secs:.1} s: {:.0} samples/s ({:.1} us each, one core)",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
    w.stop()?;
    Ok(())
}
