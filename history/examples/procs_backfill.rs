//! Writes synthetic process and GPU history (`procs::backfill`) and times its queries.
//!
//! `cargo run --release -p smon-history --example procs_backfill -- DIR HOSTS MINUTES [GPUS]`
//! writes HOSTS hosts x MINUTES minutes ending now into `DIR/smon.sqlite3` (through the real
//! `procs::write`), then prints the bytes per host-minute and the time of: the top processes
//! at a minute (1,000 random hosts and minutes: mean and worst), and GPU usage by user over
//! the whole range and over the range less 7 minutes at each end.

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smon_api::history::UsageBy;
use smon_history::procs::{self, MINUTE_MS, ProcsBackfill};
use smon_history::{Shown, admin, db};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, hosts, minutes, rest @ ..] = args.as_slice() else {
        return Err("usage: procs_backfill DIR HOSTS MINUTES [GPUS]".into());
    };
    let gpus: u32 = rest.first().map_or(Ok(8), |g| g.parse())?;
    let (hosts, minutes): (usize, u64) = (hosts.parse()?, minutes.parse()?);
    let now = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let now = procs::minute_of(now);
    let path = PathBuf::from(dir).join(db::FILE_NAME);
    let b = ProcsBackfill {
        hosts,
        clusters: 1,
        from_ms: now - minutes * MINUTE_MS,
        to_ms: now,
        gpus,
        seed: 1,
    };
    let t = Instant::now();
    let written = procs::backfill(&path, &b)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "backfill: {written} host-minutes in {secs:.1} s ({:.0} µs each)",
        secs * 1e6 / written as f64
    );
    let conn = db::open_reader(&path)?;
    let sizes = admin::sizes(&conn)?;
    let tier: u64 = sizes
        .iter()
        .filter(|s| procs::PROCESS_TABLES.contains(&s.table.as_str()))
        .map(|s| s.bytes)
        .sum();
    println!(
        "processes tier: {} MiB, {:.0} bytes per host-minute",
        tier >> 20,
        tier as f64 / written as f64
    );
    let shown = Shown {
        command_lines: true,
        process_users: true,
    };
    let (mut total, mut worst) = (Duration::ZERO, Duration::ZERO);
    let mut x: u64 = 88_172_645_463_325_252;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let host = format!("c0:node{}", x % hosts as u64);
        let at = b.from_ms + (x >> 20) % (minutes * MINUTE_MS);
        let t = Instant::now();
        let a = procs::processes_at(&conn, &host, at, shown)?;
        let took = t.elapsed();
        if a.top_cpu.is_empty() {
            return Err(format!("nothing stored for {host} at {at}").into());
        }
        total += took;
        worst = worst.max(took);
    }
    // The total of 1,000 lookups in seconds is the mean in ms.
    println!(
        "processes_at: mean {:.3} ms, worst {:.3} ms",
        total.as_secs_f64(),
        worst.as_secs_f64() * 1e3
    );
    for (from, to) in [
        (b.from_ms, now),
        (b.from_ms + 7 * MINUTE_MS, now - 7 * MINUTE_MS),
    ] {
        let t = Instant::now();
        let u = procs::gpu_usage(&conn, from, to, UsageBy::User, &|_| true)?;
        println!(
            "gpu_usage by user over {} min: {:.1} ms ({} users)",
            (to - from) / MINUTE_MS,
            t.elapsed().as_secs_f64() * 1e3,
            u.rows.len()
        );
    }
    Ok(())
}
