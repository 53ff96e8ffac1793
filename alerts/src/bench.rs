//! What the rule engine costs, as a reusable workload: 20 rules (every kind of condition,
//! scopes included), a simulated fleet sending a sample a second, disk-fill history seeded for
//! the prediction, and the time the engine spends on it (every `observe`, `tick` and
//! `drain_events`), as microseconds per host-evaluation (one sample through every rule in the
//! host's scope) and the share of one core at 1 Hz.
//!
//! Shared by `examples/engine_cost.rs` (the engine alone) and `smon-bench alerts`, which runs
//! the same figure next to the real aggregator loaded with the same [`rules`]. Pure logic
//! like the rest of the crate; it only reads the monotonic clock to time itself.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smon_api::wire::Status;
use smon_proto::{Cpu, Disk, Gpu, GpuProcess, LoadAverage, Memory, Parts, Process, Snapshot};

use crate::{Engine, EngineConfig, HostMeta, RuleConfig, compile_rules};

/// The 20 rules as they would stand in `alerts.rules[]` of a config; `channel` is the one
/// channel named in a `notify` (the `host_down` rule's).
pub fn rules_json(channel: &str) -> Vec<Value> {
    vec![
        json!({"name": "down", "when": "host_down", "for_s": 30, "notify": [channel]}),
        json!({"name": "cpu", "when": "cpu_percent > 90", "for_s": 60, "clear": 80}),
        json!({"name": "cpu-idle", "when": "cpu_percent < 1", "cluster": "c1", "for_s": 600}),
        json!({"name": "mem", "when": "mem_percent > 95", "for_s": 60}),
        json!({"name": "mem-warn", "when": "mem_percent > 80", "clear": 70, "repeat_s": 3600}),
        json!({"name": "swap", "when": "swap_percent > 50"}),
        json!({"name": "load1", "when": "load1 > 8"}),
        json!({"name": "load5", "when": "load5 > 16"}),
        json!({"name": "load15", "when": "load15 > 32"}),
        json!({"name": "disk", "when": "disk_percent > 90"}),
        json!({"name": "disk-var", "when": "disk_percent{/var} >= 95", "severity": "critical"}),
        json!({"name": "fill", "when": "disk_full_within", "within_h": 24}),
        json!({"name": "nfs", "when": "unresponsive"}),
        json!({"name": "version", "when": "version_mismatch"}),
        json!({"name": "gpu-hot", "when": "gpu_temperature_celsius > 85", "tag": "gpu"}),
        json!({"name": "gpu-mem", "when": "gpu_memory_percent > 95", "tag": "gpu"}),
        json!({"name": "gpu-power", "when": "gpu_power_percent > 98", "tag": "gpu"}),
        json!({"name": "gpu-idle", "when": "gpu_idle_with_memory", "idle_min": 30, "tag": "gpu"}),
        json!({"name": "nginx", "when": "process_missing", "process": "nginx", "tag": "web"}),
        json!({"name": "cpu-crit", "when": "cpu_percent >= 99", "for_s": 300, "severity": "critical"}),
    ]
}

/// [`rules_json`] as rule configs.
pub fn rules(channel: &str) -> Vec<RuleConfig> {
    rules_json(channel)
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("the benchmark's rules are valid"))
        .collect()
}

/// How the simulated values move from one second to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// A random walk of CPU and memory: a few hosts cross thresholds now and then.
    Steady,
    /// Drawn afresh every second: 10 % of the hosts cross the CPU threshold every second, so
    /// alerts start, fire and resolve all the time.
    Churn,
}

impl Load {
    /// `steady` or `churn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::Churn => "churn",
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Cost {
    /// Simulated hosts.
    pub hosts: usize,
    /// Simulated seconds (one sample per host each).
    pub seconds: u64,
    /// Rules loaded.
    pub rules: usize,
    /// The load.
    pub load: Load,
    /// Time spent in the engine.
    pub busy: Duration,
    /// Alerts active at the end.
    pub active: usize,
    /// Firings and resolutions (`drain_events`).
    pub events: usize,
    /// Notifications handed out by `tick`.
    pub notifications: usize,
}

impl Cost {
    /// Microseconds per host-evaluation.
    pub fn us_per_evaluation(&self) -> f64 {
        let evaluations = self.hosts as f64 * self.seconds as f64;
        if evaluations > 0.0 {
            self.busy.as_secs_f64() * 1e6 / evaluations
        } else {
            0.0
        }
    }

    /// Percent of one core at one sample per host per second.
    pub fn core_percent(&self) -> f64 {
        if self.seconds > 0 {
            self.busy.as_secs_f64() / self.seconds as f64 * 100.0
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} hosts x {} s at 1 Hz, {} rules, {}: {:.2} us per host-evaluation, {:.2} % of \
             one core; {} alerts active, {} firings and resolutions, {} notifications",
            self.hosts,
            self.seconds,
            self.rules,
            self.load.as_str(),
            self.us_per_evaluation(),
            self.core_percent(),
            self.active,
            self.events,
            self.notifications
        )
    }
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

/// Host `i`'s first sample: every tenth host has 4 GPUs (tag `gpu`), every tenth plus one
/// 300 processes (tag `web`), every host three mounts.
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

/// Runs `hosts` simulated hosts for `seconds` simulated seconds at one sample a second
/// through an engine holding [`rules`], and times the engine. The new values of each second
/// are drawn outside the timing (what the pollers would hand over).
pub fn run(hosts: usize, seconds: u64, load: Load) -> Cost {
    let rules = compile_rules(&rules("ops"), "alerts.rules").expect("valid rules");
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
    let churn = load == Load::Churn;

    let mut notifications = 0usize;
    let mut events = 0usize;
    let mut busy = Duration::ZERO;
    for s in 0..seconds {
        let now = t0 + s * 1000;
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
    Cost {
        hosts,
        seconds,
        rules: n_rules,
        load,
        busy,
        active: engine.alerts(t0 + seconds * 1000).len(),
        events,
        notifications,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_valid_rules_and_a_small_run() {
        assert_eq!(rules("hook").len(), 20);
        let c = run(20, 3, Load::Churn);
        assert_eq!((c.hosts, c.seconds, c.rules), (20, 3, 20));
        assert!(c.core_percent() >= 0.0 && c.us_per_evaluation() >= 0.0);
        assert!(c.to_string().contains("20 hosts x 3 s"), "{c}");
    }
}
