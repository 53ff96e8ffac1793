//! A cheap, reproducible scale measurement of the store and the overview wire (ignored by
//! default): fills a store with synthetic hosts sampling at 1 Hz, then times `apply`,
//! `take_changes` and the serialisation of the overview delta, and prints bytes per delta,
//! the full overview, a host page and the memory the history takes.
//!
//! ```text
//! cargo test --release -p smon-web --lib store::scale -- --ignored --nocapture
//! SMON_SCALE_HOSTS=1000 SMON_SCALE_TICKS=120 cargo test --release -p smon-web --lib store::scale -- --ignored --nocapture
//! ```
//!
//! Memory is the growth of the process's resident set while the history fills, so run this
//! test alone (as above). The synthetic fleet is deterministic (a fixed xorshift seed).

use std::time::{Duration, Instant};

use smon_proto::{
    Cpu, Disk, Gpu, LoadAverage, Memory, NetInterface, Session, Snapshot, Temperature,
};

use super::{ClusterStore, HostSpec, StoreConfig};

/// xorshift64*: deterministic and cheap.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One host's slowly drifting state.
struct Sim {
    cpu: f64,
    mem: f64,
    gpus: usize,
    boot_ms: u64,
}

const GIB: u64 = 1 << 30;

fn snapshot(i: usize, s: &mut Sim, rng: &mut Rng, seq: u64, now_ms: u64) -> Snapshot {
    s.cpu = (s.cpu + (rng.unit() - 0.5) * 8.0).clamp(0.0, 100.0);
    s.mem = (s.mem + (rng.unit() - 0.5) * 0.2).clamp(1.0, 99.0);
    let total = 256 * GIB;
    let used = (total as f64 * s.mem / 100.0) as u64;
    Snapshot {
        seq,
        sample_unix_ms: now_ms - 20,
        collect_us: 900,
        hostname: format!("node{i:05}"),
        boot_unix_ms: s.boot_ms,
        uptime_s: (now_ms - s.boot_ms) / 1000,
        load: Some(LoadAverage {
            one: s.cpu * 0.64,
            five: s.cpu * 0.6,
            fifteen: s.cpu * 0.55,
        }),
        cpu: Some(Cpu {
            total_percent: s.cpu as f32,
            logical_cores: 64,
            frequency_mhz: 2_400,
            ..Default::default()
        }),
        memory: Some(Memory {
            total_bytes: total,
            used_bytes: used,
            available_bytes: total - used,
            used_percent: s.mem as f32,
            swap_total_bytes: 8 * GIB,
            swap_used_bytes: 0,
            swap_used_percent: 0.0,
        }),
        disks: ["/", "/home", "/scratch"]
            .iter()
            .enumerate()
            .map(|(k, m)| Disk {
                device: format!("/dev/nvme0n1p{k}"),
                fs_type: "ext4".into(),
                mount_point: (*m).into(),
                total_bytes: 1 << 40,
                used_bytes: (k as u64 + 1) << 38,
                available_bytes: (3 - k as u64) << 38,
                used_percent: 25.0 * (k as f32 + 1.0) + (rng.unit() as f32) * 0.01,
                read_bytes_per_s: Some(rng.next() % 1_000_000),
                write_bytes_per_s: Some(rng.next() % 1_000_000),
                ..Default::default()
            })
            .collect(),
        networks: ["eno1", "ib0"]
            .iter()
            .map(|n| NetInterface {
                name: (*n).into(),
                rx_bytes_per_s: rng.next() % 50_000_000,
                tx_bytes_per_s: rng.next() % 50_000_000,
                rx_total_bytes: rng.next() >> 20,
                tx_total_bytes: rng.next() >> 20,
                mac: "00:11:22:33:44:55".into(),
                addresses: vec!["10.1.2.3".into(), "fe80::1".into()],
            })
            .collect(),
        process_count: 400 + (rng.next() % 20) as u32,
        sessions: (0..(i % 3))
            .map(|k| Session {
                user: format!("user{k}"),
                terminal: format!("pts/{k}"),
                from: "10.0.0.9".into(),
                login_unix_ms: s.boot_ms,
                pid: 1000 + k as u32,
            })
            .collect(),
        gpus: (0..s.gpus)
            .map(|k| Gpu {
                index: k as u32,
                uuid: format!("GPU-{i:05}-{k}"),
                name: "NVIDIA H100".into(),
                utilization_percent: Some((rng.next() % 101) as u32),
                memory_used_bytes: Some(rng.next() % (80 * GIB)),
                memory_total_bytes: Some(80 * GIB),
                ..Default::default()
            })
            .collect(),
        temperatures: (0..2)
            .map(|k| Temperature {
                label: format!("Package id {k}"),
                celsius: Some(40.0 + (rng.unit() * 20.0) as f32),
                max_celsius: Some(90.0),
                critical_celsius: Some(100.0),
            })
            .collect(),
        ..Default::default()
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e9 / n.max(1) as f64
}

#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture in release"]
fn overview_at_scale() {
    let hosts = env("SMON_SCALE_HOSTS", 10_000);
    let ticks = env("SMON_SCALE_TICKS", 900);
    let specs: Vec<HostSpec> = (0..hosts)
        .map(|i| HostSpec {
            cluster: format!("rack{:02}", i / 500),
            name: format!("node{i:05}"),
            address: format!("10.{}.{}.{}:50051", i >> 16, (i >> 8) & 255, i & 255),
            tags: if i % 10 == 0 {
                vec!["gpu".into()]
            } else {
                vec![]
            },
        })
        .collect();
    let ids: Vec<String> = specs.iter().map(HostSpec::id).collect();
    let t0: u64 = 1_700_000_000_000;
    let rss0 = rss_bytes();
    let mut store = ClusterStore::new(specs, StoreConfig::for_interval(1000), t0);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut sims: Vec<Sim> = (0..hosts)
        .map(|i| Sim {
            cpu: rng.unit() * 100.0,
            mem: 10.0 + rng.unit() * 80.0,
            gpus: if i % 10 == 0 { 4 } else { 0 },
            boot_ms: t0 - 86_400_000 - (rng.next() % 86_400_000),
        })
        .collect();
    let _ = store.take_changes(t0, |_| false);

    let mut gen_time = Duration::ZERO;
    let mut apply_time = Duration::ZERO;
    let mut take_time = Duration::ZERO;
    let mut ser_time = Duration::ZERO;
    let mut delta_bytes = 0usize;
    let mut delta_rows = 0usize;
    let mut measured = 0usize;
    for tick in 1..=ticks as u64 {
        let now = t0 + tick * 1000;
        for (i, s) in sims.iter_mut().enumerate() {
            let g = Instant::now();
            let snap = snapshot(i, s, &mut rng, tick, now);
            let a = Instant::now();
            store.apply(&ids[i], snap, now);
            apply_time += a.elapsed();
            gen_time += a - g;
        }
        let t = Instant::now();
        store.tick(now + 500);
        let changes = store.take_changes(now + 500, |_| false);
        let took = t.elapsed();
        // The steady state: after the first minute (a full sparkline), the last ticks.
        if tick as usize > ticks.saturating_sub(30).max(60).min(ticks - 1) {
            take_time += took;
            let delta = changes.delta.expect("every host sampled");
            delta_rows += delta.hosts.len();
            let s = Instant::now();
            let json = serde_json::to_vec(&delta).expect("json");
            ser_time += s.elapsed();
            delta_bytes += json.len();
            measured += 1;
        }
    }
    let rss1 = rss_bytes();
    let full = store.overview(t0);
    let full_bytes = serde_json::to_vec(&full).expect("json").len();
    let host_page = serde_json::to_vec(&store.host_full(&ids[0], t0).expect("host"))
        .expect("json")
        .len();
    let samples = hosts * ticks;
    println!("overview_at_scale: {hosts} hosts, {ticks} ticks at 1 Hz ({samples} samples)");
    println!(
        "  apply:              {:>10.0} ns/sample   (making the synthetic snapshot: {:.0} ns)",
        per(apply_time, samples),
        per(gen_time, samples)
    );
    println!(
        "  tick+take_changes:  {:>10.2} ms/tick",
        take_time.as_secs_f64() * 1e3 / measured as f64
    );
    println!(
        "  delta to JSON:      {:>10.2} ms/tick",
        ser_time.as_secs_f64() * 1e3 / measured as f64
    );
    println!(
        "  delta:              {:>10} bytes/tick, {} rows, {:.0} bytes/row",
        delta_bytes / measured,
        delta_rows / measured,
        delta_bytes as f64 / delta_rows.max(1) as f64
    );
    println!("  full overview:      {full_bytes:>10} bytes");
    println!("  host page (host):   {host_page:>10} bytes");
    println!(
        "  resident set grew:  {:>10.1} MiB ({:.0} bytes/host)",
        (rss1.saturating_sub(rss0)) as f64 / (1 << 20) as f64,
        rss1.saturating_sub(rss0) as f64 / hosts as f64
    );
}
