//! Writes synthetic history (`metrics::backfill`) and times the series queries on it.
//!
//! `cargo run --release -p smon-history --example backfill -- DIR HOSTS HOURS [CLUSTERS [MS]]`
//! writes HOSTS hosts x HOURS hours of samples every MS ms (default 1000) ending now into `DIR/smon.sqlite3`,
//! then prints the raw tier's bytes per value and the time of: one host's last 24 h at 1,000
//! points, its last 30 days, and the first cluster's last 7 days.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use smon_history::metrics::{Backfill, DAY, HOUR, backfill};
use smon_history::reader::SqliteHistory;
use smon_history::{History, Retention, SeriesQuery, StorageOptions};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, hosts, hours, rest @ ..] = args.as_slice() else {
        return Err("usage: backfill DIR HOSTS HOURS [CLUSTERS [INTERVAL_MS]]".into());
    };
    let clusters: usize = rest.first().map_or(Ok(1), |c| c.parse())?;
    let interval_ms: u64 = rest.get(1).map_or(Ok(1000), |c| c.parse())?;
    let (hosts, hours): (usize, u64) = (hosts.parse()?, hours.parse()?);
    let now = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let opts = StorageOptions {
        dir: PathBuf::from(dir),
        retention: Retention::default(),
    };
    let b = Backfill {
        hosts,
        clusters,
        from_ms: now - hours * HOUR as u64,
        to_ms: now,
        interval_ms,
        seed: 1,
        gpus: 0,
    };
    let t = Instant::now();
    let done = backfill(&opts.db_path(), &opts.retention, &b)?;
    println!(
        "backfill: {} samples, {} values in {:.1} s",
        done.samples,
        done.values,
        t.elapsed().as_secs_f64()
    );
    let h = SqliteHistory::open_with(&opts, None, Arc::new(move || now))?;
    let raw = h
        .storage()?
        .tiers
        .into_iter()
        .find(|t| t.name == "raw")
        .map_or(0, |t| t.bytes);
    println!(
        "raw tier: {:.3} bytes/value",
        raw as f64 / done.values as f64
    );
    let q = |from: u64, points| SeriesQuery {
        metrics: vec!["cpu_percent".into(), "mem_percent".into()],
        from_ms: from,
        to_ms: now,
        points,
    };
    for (what, from) in [("24 h", DAY as u64), ("30 d", 30 * DAY as u64)] {
        let t = Instant::now();
        let a = h.host_series("c0:node0", &q(now - from, 1000))?;
        println!(
            "host {what}: {:.1} ms ({:?} tier, {} points)",
            t.elapsed().as_secs_f64() * 1e3,
            a.tier,
            a.t.len()
        );
    }
    let t = Instant::now();
    let a = h.cluster_series("c0", &q(now - 7 * DAY as u64, 1000))?;
    println!(
        "cluster 7 d: {:.1} ms ({:?} tier, {} points)",
        t.elapsed().as_secs_f64() * 1e3,
        a.tier,
        a.t.len()
    );
    Ok(())
}
