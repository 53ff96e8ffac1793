//! What the rule engine costs the aggregator: 10,000 simulated hosts sending a sample a second,
//! 20 rules (every kind of condition, scopes included), disk-fill history seeded for the
//! prediction; prints the time per host-evaluation (one sample through every rule in the host's
//! scope) and the share of one core at 1 Hz, ticks included.
//!
//! `cargo run --release -p smon-alerts --example engine_cost [hosts] [seconds] [steady|churn]`

use std::time::Instant;

use smon_alerts::{Engine, EngineConfig, HostMeta, RuleConfig, compile_rules};
use smon_api::wire::Status;
use smon_proto::{Cpu, Disk, Gpu, GpuProcess, LoadAverage, Memory, Parts, Process, Snapshot};

fn rules() -> Vec<RuleConfig> {
    let r = |v: serde_json::Value| -> RuleConfig { serde_json::from_value(v).expect("rule") };
    use serde_json::json;
    vec![
        r(json!({"name": "down", "when": "host_down", "for_s": 30, "notify": ["ops"]})),
        r(json!({"name": "cpu", "when": "cpu_percent > 90", "for_s": 60, "clear": 80})),
        r(json!({"name": "cpu-idle", "when": "cpu_percent < 1", "cluster": "c1", "for_s": 600})),
        r(json!({"name": "mem", "when": "mem_percent > 95", "for_s": 60})),
        r(json!({"name": "mem-warn", "when": "mem_percent > 80", "clear": 70, "repeat_s": 3600})),
        r(json!({"name": "swap", "when": "swap_percent > 50"})),
        r(json!({"name": "load1", "when": "load1 > 8"})),
        r(json!({"name": "load5", "when": "load5 > 16"})),
        r(json!({"name": "load15", "when": "load15 > 32"})),
        r(json!({"name": "disk", "when": "disk_percent > 90"})),
        r(json!({"name": "disk-var", "when": "disk_percent{/var} >= 95", "severity": "critical"})),
        r(json!({"name": "fill", "when": "disk_full_within", "within_h": 24})),
        r(json!({"name": "nfs", "when": "unresponsive"})),
        r(json!({"name": "version", "when": "version_mismatch"})),
        r(json!({"name": "gpu-hot", "when": "gpu_temperature_celsius > 85", "tag": "gpu"})),
        r(json!({"name": "gpu-mem", "when": "gpu_memory_percent > 95", "tag": "gpu"})),
        r(json!({"name": "gpu-power", "when": "gpu_power_percent > 98", "tag": "gpu"})),
        r(
            json!({"name": "gpu-idle", "when": "gpu_idle_with_memory", "idle_min": 30, "tag": "gpu"}),
        ),
        r(json!({"name": "nginx", "when": "process_missing", "process": "nginx", "tag": "web"})),
        r(
            json!({"name": "cpu-crit", "when": "cpu_percent >= 99", "for_s": 300, "severity": "critical"}),
        ),
    ]
}

/// A cheap deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 10_000) as f32 / 10_000.0
    }
}

fn host_snapshot(i: usize, rng: &mut Rng) -> Snapshot {
    let gpu = i.is_multiple_of(10);
    let web = i % 10 == 1;
    Snapshot {
        cpu: Some(Cpu {
            total_percent: 100.0 * rng.next(),
            logical_cores: 64,
            ..Default::default()
        }),
        memory: Some(Memory {
            used_percent: 40.0 + 60.0 * rng.next(),
            swap_used_percent: 10.0 * rng.next(),
            ..Default::default()
        }),
        load: Some(LoadAverage {
            one: f64::from(10.0 * rng.next()),
            five: 4.0,
            fifteen: 3.0,
        }),
        disks: ["/", "/var", "/home"]
            .iter()
            .map(|m| Disk {
                mount_point: (*m).into(),
                used_percent: 50.0 + 45.0 * rng.next(),
                ..Default::default()
            })
            .collect(),
        gpus: if gpu {
            (0..4)
                .map(|g| Gpu {
                    index: g,
                    name: "NVIDIA H100".into(),
                    utilization_percent: Some((100.0 * rng.next()) as u32),
                    memory_used_bytes: Some(40 << 30),
                    memory_total_bytes: Some(80 << 30),
                    temperature_celsius: Some(60),
                    power_mw: Some(300_000),
                    power_limit_mw: Some(700_000),
                    processes: vec![GpuProcess {
                        pid: 4242,
                        name: "python".into(),
                        user: "alice".into(),
                        memory_used_bytes: Some(40 << 30),
                        kind: "compute".into(),
                    }],
                    ..Default::default()
                })
                .collect()
        } else {
            Vec::new()
        },
        processes: if web {
            (0..300)
                .map(|p| Process {
                    pid: p,
                    name: if p == 299 {
                        "nginx".into()
                    } else {
                        format!("proc{p}")
                    },
                    ..Default::default()
                })
                .collect()
        } else {
            Vec::new()
        },
        parts: Some(Parts {
            processes: web,
            gpu_processes: gpu,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let hosts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    let churn = args.next().as_deref() == Some("churn");
    let rules = compile_rules(&rules(), "alerts.rules").expect("valid rules");
    let n_rules = rules.len();
    let t0: u64 = 1_800_000_000_000;
    let mut engine = Engine::new(EngineConfig::default());
    engine.set_rules(rules, t0);
    let metas: Vec<HostMeta> = (0..hosts)
        .map(|i| HostMeta {
            id: format!("c{}:n{i}", i % 4),
            cluster: format!("c{}", i % 4),
            tags: match i % 10 {
                0 => vec!["gpu".into()],
                1 => vec!["web".into()],
                _ => vec![],
            },
            agent_version: if i.is_multiple_of(100) {
                "0.1.0"
            } else {
                "0.2.0"
            }
            .into(),
        })
        .collect();
    engine.set_hosts(metas.clone(), t0);
    // Six hours of disk history per mount, so the prediction fits 72 points each sample.
    let history: Vec<(u64, f64)> = (0..72u64)
        .map(|k| (t0 - (72 - k) * 300_000, 50.0 + k as f64 * 0.01))
        .collect();
    for m in &metas {
        engine.host_status(&m.id, Status::Up, t0);
        for mount in ["/", "/var", "/home"] {
            engine.seed_disk(&m.id, mount, &history);
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut snaps: Vec<Snapshot> = (0..hosts).map(|i| host_snapshot(i, &mut rng)).collect();

    let mut notifications = 0usize;
    let mut events = 0usize;
    let mut busy = std::time::Duration::ZERO;
    for s in 0..seconds {
        let now = t0 + s * 1000;
        // New values (outside the timing): what the pollers would hand over. `steady`: a
        // random walk of CPU and memory (a few hosts cross thresholds now and then);
        // `churn`: drawn afresh every second (10 % of the hosts cross the CPU threshold
        // every second: alerts start, fire and resolve all the time).
        for snap in snaps.iter_mut() {
            if let Some(c) = snap.cpu.as_mut() {
                c.total_percent = if churn {
                    100.0 * rng.next()
                } else {
                    (c.total_percent + 4.0 * (rng.next() - 0.5)).clamp(0.0, 100.0)
                };
            }
            if let Some(m) = snap.memory.as_mut() {
                m.used_percent = if churn {
                    40.0 + 60.0 * rng.next()
                } else {
                    (m.used_percent + 0.5 * (rng.next() - 0.5)).clamp(0.0, 100.0)
                };
            }
            snap.sample_unix_ms = now;
        }
        let start = Instant::now();
        for (m, snap) in metas.iter().zip(&snaps) {
            engine.observe(&m.id, snap, now);
        }
        notifications += engine.tick(now).len();
        events += engine.drain_events().len();
        busy += start.elapsed();
    }
    let evaluations = hosts as f64 * seconds as f64;
    let us = busy.as_secs_f64() * 1e6 / evaluations;
    let core = busy.as_secs_f64() / seconds as f64 * 100.0;
    println!(
        "{hosts} hosts x {seconds} s at 1 Hz, {n_rules} rules, {}: {us:.2} us per \
         host-evaluation, {core:.2} % of one core; {} alerts active, {events} firings and \
         resolutions, {notifications} notifications",
        if churn { "churn" } else { "steady" },
        engine.alerts(t0 + seconds * 1000).len()
    );
}
