//! What changes on a simulated host: CPU use per core, load, memory, disk fill and I/O,
//! network rates, GPUs and temperatures, each a bounded random walk; and turning that state into
//! a `Snapshot`.
//!
//! A host's state moves only when somebody asks for one of its samples: a host is stepped to
//! the tick asked for (several missed ticks in a few steps), so hosts nobody watches cost
//! nothing, and a host watched by several streams is stepped once per tick.

use smon_proto::{
    Cpu, Disk, Gpu, LoadAverage, Memory, NetInterface, Parts, Program, Programs, Snapshot,
    Temperature,
};

use crate::procs::RenderCtx;
use crate::profile::Profile;
use crate::rng::{Rng, hash2};

/// One beat of a host's sampling clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Sample number, from 1.
    pub seq: u64,
    /// Sample time.
    pub unix_ms: u64,
}

/// Most random-walk steps taken to catch up on missed ticks (the walks forget quickly).
const MAX_CATCH_UP: u64 = 4;

#[derive(Debug)]
struct DiskState {
    used: u64,
    read: f32,
    write: f32,
}

#[derive(Debug)]
struct NicState {
    rx: f32,
    tx: f32,
    rx_total: u64,
    tx_total: u64,
}

#[derive(Debug)]
struct GpuState {
    busy: bool,
    util: f32,
    mem_used: u64,
    temp: f32,
}

/// The changing part of one host.
#[derive(Debug)]
pub struct State {
    seq: u64,
    unix_ms: u64,
    rng: Rng,
    target: f32,
    cores: Vec<f32>,
    load: [f64; 3],
    mem: f32,
    swap: f32,
    disks: Vec<DiskState>,
    nics: Vec<NicState>,
    gpus: Vec<GpuState>,
    cpu_temp: f32,
    temp_max: Vec<f32>,
}

fn walk(x: f32, mean: f32, pull: f32, noise: f32, r: &mut Rng, lo: f32, hi: f32) -> f32 {
    (x + pull * (mean - x) + noise * r.signed()).clamp(lo, hi)
}

impl State {
    /// The state of a freshly booted simulator, at sample 0.
    pub fn new(p: &Profile, now_ms: u64) -> Self {
        let mut rng = Rng::new(p.seed ^ 0x5EED);
        let cores = (0..p.info.cpu_logical_cores)
            .map(|_| (p.base_load * 100.0 + 20.0 * rng.signed()).clamp(0.0, 100.0))
            .collect();
        let running = f64::from(p.base_load) * f64::from(p.info.cpu_logical_cores);
        let disks = p
            .disks
            .iter()
            .map(|d| DiskState {
                used: (d.total_bytes as f64 * f64::from(d.used_frac)) as u64,
                read: d.io_bytes_per_s * rng.unit(),
                write: d.io_bytes_per_s * rng.unit(),
            })
            .collect();
        let nics = p
            .nics
            .iter()
            .map(|n| NicState {
                rx: n.bytes_per_s * rng.unit(),
                tx: n.bytes_per_s * rng.unit(),
                // Traffic since boot, roughly.
                rx_total: (f64::from(n.bytes_per_s)
                    * 0.5
                    * (now_ms.saturating_sub(p.info.boot_unix_ms) / 1000) as f64)
                    as u64,
                tx_total: (f64::from(n.bytes_per_s)
                    * 0.3
                    * (now_ms.saturating_sub(p.info.boot_unix_ms) / 1000) as f64)
                    as u64,
            })
            .collect();
        let gpus = p
            .gpus
            .iter()
            .map(|g| {
                let busy = rng.chance(0.7);
                GpuState {
                    busy,
                    util: if busy { 85.0 } else { 0.0 },
                    mem_used: if busy {
                        (g.model.memory_bytes as f64 * 0.8) as u64
                    } else {
                        1 << 28
                    },
                    temp: if busy { 65.0 } else { 32.0 },
                }
            })
            .collect();
        Self {
            seq: 0,
            unix_ms: now_ms,
            rng,
            target: p.base_load,
            cores,
            load: [running; 3],
            mem: p.base_mem,
            swap: if p.info.swap_total_bytes > 0 {
                0.05
            } else {
                0.0
            },
            disks,
            nics,
            gpus,
            cpu_temp: 45.0,
            temp_max: vec![0.0; p.sockets as usize + 1],
        }
    }

    /// Moves the state forward to `tick` (no-op when it is there already).
    pub fn advance(&mut self, p: &Profile, tick: Tick) {
        if tick.seq <= self.seq {
            return;
        }
        let steps = (tick.seq - self.seq).min(MAX_CATCH_UP);
        let dt_s = (tick.unix_ms.saturating_sub(self.unix_ms) as f64 / 1000.0).max(0.0);
        for _ in 0..steps {
            self.step(p);
        }
        // Counters and the load average follow the whole time that passed.
        for n in &mut self.nics {
            n.rx_total += (f64::from(n.rx) * dt_s) as u64;
            n.tx_total += (f64::from(n.tx) * dt_s) as u64;
        }
        for (d, s) in self.disks.iter_mut().zip(&p.disks) {
            if s.has_io && !s.read_only {
                // Some of what is written stays; cleanups now and then.
                let grown = (f64::from(d.write) * dt_s * 0.02) as u64;
                d.used = (d.used + grown).min(s.total_bytes - s.total_bytes / 50);
                if self.rng.chance(0.001) {
                    d.used = (s.total_bytes as f64 * f64::from(s.used_frac)) as u64;
                }
            }
        }
        let running = f64::from(self.cpu_total()) / 100.0 * self.cores.len() as f64
            + f64::from(self.rng.unit()) * 0.3;
        for (l, period) in self.load.iter_mut().zip([60.0, 300.0, 900.0]) {
            let e = (-dt_s / period).exp();
            *l = *l * e + running * (1.0 - e);
        }
        self.seq = tick.seq;
        self.unix_ms = tick.unix_ms;
    }

    fn step(&mut self, p: &Profile) {
        let r = &mut self.rng;
        // The host's load drifts around its long-run mean; now and then a job starts or ends.
        self.target = if r.chance(0.01) {
            0.02 + 0.96 * r.unit()
        } else {
            walk(self.target, p.base_load, 0.02, 0.03, r, 0.01, 0.99)
        };
        let t = self.target * 100.0;
        for c in &mut self.cores {
            *c = walk(*c, t, 0.25, 9.0, r, 0.0, 100.0);
        }
        self.mem = walk(self.mem, p.base_mem, 0.02, 0.01, r, 0.03, 0.97);
        if p.info.swap_total_bytes > 0 {
            let pressure = if self.mem > 0.85 { 0.4 } else { 0.05 };
            self.swap = walk(self.swap, pressure, 0.01, 0.005, r, 0.0, 1.0);
        }
        for (d, s) in self.disks.iter_mut().zip(&p.disks) {
            if s.has_io {
                let burst = if r.chance(0.03) { 8.0 } else { 1.0 };
                d.read = walk(
                    d.read,
                    s.io_bytes_per_s,
                    0.3,
                    s.io_bytes_per_s * 0.3,
                    r,
                    0.0,
                    f32::MAX,
                ) * burst;
                d.write = walk(
                    d.write,
                    s.io_bytes_per_s * 0.6,
                    0.3,
                    s.io_bytes_per_s * 0.3,
                    r,
                    0.0,
                    f32::MAX,
                );
            }
        }
        for (n, s) in self.nics.iter_mut().zip(&p.nics) {
            let busy = 0.3 + self.target;
            n.rx = walk(
                n.rx,
                s.bytes_per_s * busy,
                0.3,
                s.bytes_per_s * 0.2,
                r,
                0.0,
                f32::MAX,
            );
            n.tx = walk(
                n.tx,
                s.bytes_per_s * busy * 0.6,
                0.3,
                s.bytes_per_s * 0.15,
                r,
                0.0,
                f32::MAX,
            );
        }
        for (g, s) in self.gpus.iter_mut().zip(&p.gpus) {
            if r.chance(if g.busy { 0.005 } else { 0.02 }) {
                g.busy = !g.busy;
            }
            let (util_mean, mem_mean) = if g.busy { (88.0, 0.82) } else { (0.0, 0.003) };
            g.util = walk(g.util, util_mean, 0.4, 6.0, r, 0.0, 100.0);
            let mem_frac = g.mem_used as f32 / s.model.memory_bytes as f32;
            let mem_frac = walk(mem_frac, mem_mean, 0.3, 0.01, r, 0.001, 0.99);
            g.mem_used = (s.model.memory_bytes as f64 * f64::from(mem_frac)) as u64;
            g.temp = walk(g.temp, 30.0 + g.util * 0.45, 0.2, 0.8, r, 20.0, 95.0);
        }
        let total = self.cpu_total();
        self.cpu_temp = walk(
            self.cpu_temp,
            38.0 + total * 0.45,
            0.3,
            0.7,
            &mut self.rng,
            20.0,
            100.0,
        );
    }

    fn cpu_total(&self) -> f32 {
        if self.cores.is_empty() {
            0.0
        } else {
            self.cores.iter().sum::<f32>() / self.cores.len() as f32
        }
    }

    /// The sample at the current tick, with `parts`. `anchor_ms` is when the simulator started.
    pub fn snapshot(&mut self, p: &Profile, parts: Parts, anchor_ms: u64) -> Snapshot {
        let now = self.unix_ms;
        let noise = hash2(p.seed, self.seq);
        let total = self.cpu_total();
        let mem_total = p.info.memory_total_bytes;
        let mem_used = (mem_total as f64 * f64::from(self.mem)) as u64;
        let swap_total = p.info.swap_total_bytes;
        let swap_used = (swap_total as f64 * f64::from(self.swap)) as u64;
        let freq =
            |u: f32| u64::from(p.base_mhz) + ((p.boost_mhz - p.base_mhz) as f32 * u / 100.0) as u64;
        let ctx = RenderCtx {
            pid_base: p.pid_base,
            boot_ms: p.info.boot_unix_ms,
            anchor_ms,
            now_ms: now,
            core_percent: total * self.cores.len() as f32,
            mem_used,
            mem_total,
            noise,
            program_down: program_down(p),
        };
        let cpu = Cpu {
            total_percent: total,
            logical_cores: p.info.cpu_logical_cores,
            frequency_mhz: self.cores.first().map(|&u| freq(u)).unwrap_or(0),
            per_core_percent: if parts.per_core {
                self.cores.clone()
            } else {
                Vec::new()
            },
            per_core_frequency_mhz: if parts.per_core {
                self.cores.iter().map(|&u| freq(u)).collect()
            } else {
                Vec::new()
            },
        };
        let disks = p
            .disks
            .iter()
            .zip(&self.disks)
            .map(|(s, d)| {
                // Like ext4's reserved blocks: 5% that only root may use.
                let avail = s
                    .total_bytes
                    .saturating_sub(d.used)
                    .saturating_sub(s.total_bytes / 20);
                Disk {
                    device: s.device.clone(),
                    fs_type: s.fs_type.to_owned(),
                    mount_point: s.mount_point.clone(),
                    total_bytes: s.total_bytes,
                    used_bytes: d.used,
                    available_bytes: avail,
                    used_percent: (d.used as f64 / (d.used + avail).max(1) as f64 * 100.0) as f32,
                    read_bytes_per_s: s.has_io.then_some(d.read as u64),
                    write_bytes_per_s: s.has_io.then_some(if s.read_only {
                        0
                    } else {
                        d.write as u64
                    }),
                    unresponsive: false,
                    read_only: s.read_only,
                }
            })
            .collect();
        let networks = p
            .nics
            .iter()
            .zip(&self.nics)
            .map(|(s, n)| NetInterface {
                name: s.name.clone(),
                rx_bytes_per_s: n.rx as u64,
                tx_bytes_per_s: n.tx as u64,
                rx_total_bytes: n.rx_total,
                tx_total_bytes: n.tx_total,
                mac: s.mac.clone(),
                addresses: s.addresses.clone(),
            })
            .collect();
        let gpus = p
            .gpus
            .iter()
            .zip(&self.gpus)
            .enumerate()
            .map(|(i, (s, g))| {
                let m = s.model;
                let util = g.util.round() as u32;
                let temp = g.temp.round() as u32;
                let worn = hash2(p.seed, i as u64).is_multiple_of(8);
                let power =
                    m.idle_mw as f32 + (m.power_limit_mw - m.idle_mw) as f32 * g.util / 100.0 * 0.9;
                Gpu {
                    index: i as u32,
                    uuid: s.uuid.clone(),
                    name: m.name.to_owned(),
                    utilization_percent: Some(util),
                    memory_utilization_percent: Some((g.util * 0.55).round() as u32),
                    memory_used_bytes: Some(g.mem_used),
                    memory_total_bytes: Some(m.memory_bytes),
                    fan_percent: m
                        .has_fan
                        .then(|| (30.0 + (g.temp - 35.0).max(0.0) * 1.2).min(100.0) as u32),
                    temperature_celsius: Some(temp),
                    power_mw: Some(power as u32),
                    power_limit_mw: Some(m.power_limit_mw),
                    performance_state: Some(if util > 5 { 0 } else { 8 }),
                    processes: if parts.gpu_processes && g.mem_used > 1 << 30 {
                        p.procs.gpu_processes(&ctx, i as u32, g.mem_used)
                    } else {
                        Vec::new()
                    },
                    pci_bus_id: format!("00000000:{:02X}:00.0", 0x18 + i * 0x10),
                    persistence_mode: Some(true),
                    mig_mode: Some(false),
                    sm_clock_mhz: Some(match util {
                        0..=5 => 345,
                        6..=95 => 1980,
                        // At the power cap the clock steps down.
                        _ => 1980 - 15 * (util - 95),
                    }),
                    memory_temperature_celsius: Some(temp + 4),
                    // One GPU in eight is "worn": a corrected ECC error an hour since boot
                    // and a row remapped, so that the health history has something to show.
                    ecc_corrected_errors: Some(if worn {
                        now.saturating_sub(p.info.boot_unix_ms) / 3_600_000
                    } else {
                        0
                    }),
                    ecc_uncorrected_errors: Some(0),
                    remapped_rows_correctable: Some(u32::from(worn)),
                    remapped_rows_uncorrectable: Some(0),
                    remapping_pending: Some(false),
                    remapping_failed: Some(false),
                    xid_errors: Some(0),
                    throttle_reasons: [
                        (util <= 5, "gpu_idle"),
                        (util > 95, "sw_power_cap"),
                        (temp >= 85, "sw_thermal"),
                    ]
                    .into_iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, r)| r.to_owned())
                    .collect(),
                    ..Gpu::default()
                }
            })
            .collect();
        let mut temps = Vec::with_capacity(p.sockets as usize + 1);
        for s in 0..p.sockets {
            let c = self.cpu_temp + s as f32 * 1.5;
            temps.push((format!("coretemp Package id {s}"), c, 100.0));
        }
        let io: f32 = self.disks.first().map(|d| d.read + d.write).unwrap_or(0.0);
        temps.push((
            "nvme Composite".to_owned(),
            33.0 + (io / 2e7).min(25.0),
            84.85,
        ));
        let temperatures = temps
            .into_iter()
            .zip(self.temp_max.iter_mut())
            .map(|((label, c, crit), max)| {
                *max = max.max(c);
                Temperature {
                    label,
                    celsius: Some(c),
                    max_celsius: Some(*max),
                    critical_celsius: Some(crit),
                }
            })
            .collect();
        Snapshot {
            seq: self.seq,
            sample_unix_ms: now,
            collect_us: 900 + u64::from(p.info.cpu_logical_cores) * 12 + noise % 700,
            hostname: p.info.hostname.clone(),
            boot_unix_ms: p.info.boot_unix_ms,
            uptime_s: now.saturating_sub(p.info.boot_unix_ms) / 1000,
            load: Some(LoadAverage {
                one: (self.load[0] * 100.0).round() / 100.0,
                five: (self.load[1] * 100.0).round() / 100.0,
                fifteen: (self.load[2] * 100.0).round() / 100.0,
            }),
            cpu: Some(cpu),
            memory: Some(Memory {
                total_bytes: mem_total,
                used_bytes: mem_used,
                available_bytes: mem_total - mem_used,
                used_percent: self.mem * 100.0,
                swap_total_bytes: swap_total,
                swap_used_bytes: swap_used,
                swap_used_percent: if swap_total > 0 {
                    self.swap * 100.0
                } else {
                    0.0
                },
            }),
            disks,
            networks,
            process_count: p.procs.count(noise, ctx.program_down) as u32,
            processes: if parts.processes {
                p.procs.render(&ctx)
            } else if parts.top_processes > 0 {
                Parts::top_of(parts.top_processes, &p.procs.render(&ctx))
            } else {
                Vec::new()
            },
            sessions: p.sessions.clone(),
            gpus,
            temperatures,
            parts: Some(parts),
            errors: Vec::new(),
            processes_unix_ms: now,
            gpus_unix_ms: now,
            programs: Some(programs(p, now, &ctx)),
            ..Snapshot::default()
        }
    }
}

/// The simulated supervisord programs of every host: [`PROGRAMS`] `(group, names)`.
pub const PROGRAMS: [(&str, &[&str]); 4] = [
    (
        "web",
        &[
            "api", "static", "worker-1", "worker-2", "worker-3", "worker-4",
        ],
    ),
    (
        "jobs",
        &["cron", "mailer", "reports", "sync", "thumbnails", "queue"],
    ),
    ("db", &["pgbouncer", "backup", "replica-lag", "vacuum"]),
    (
        "infra",
        &["node-exporter", "fluent-bit", "consul", "vector"],
    ),
];

/// The program (index in the flattened [`PROGRAMS`]) not running on this host, if any: per
/// host (by its seed) one is `STOPPED` on one host in ten, or `FATAL` on one in fifty.
fn program_down(p: &Profile) -> Option<usize> {
    let stopped = hash2(p.seed, 0x5707).is_multiple_of(10);
    let fatal = hash2(p.seed, 0xfa7a).is_multiple_of(50);
    (stopped || fatal).then(|| (hash2(p.seed, 0x0dd) % 20) as usize)
}

/// A host's supervisord programs: the 20 of [`PROGRAMS`], most `RUNNING` since boot (their
/// pids those of their processes in the process table, which carry the program's name, and
/// their CPU and memory those processes' use, as the agent sums them); one `STOPPED` or
/// `FATAL` as [`program_down`] says.
fn programs(p: &Profile, now_ms: u64, ctx: &RenderCtx) -> Programs {
    let fatal = hash2(p.seed, 0xfa7a).is_multiple_of(50);
    let down = program_down(p);
    let uptime_s = now_ms.saturating_sub(p.info.boot_unix_ms) / 1000;
    let mut out = Vec::with_capacity(20);
    for (group, names) in PROGRAMS {
        for name in names {
            let i = out.len();
            let state = if down == Some(i) && fatal {
                "FATAL"
            } else if down == Some(i) {
                "STOPPED"
            } else {
                "RUNNING"
            };
            let running = state == "RUNNING";
            let (cpu, mem) = if running {
                p.procs.program_use(i, ctx)
            } else {
                (0.0, 0)
            };
            let pid = if running {
                p.procs
                    .program_pid(i, p.pid_base)
                    .unwrap_or(p.pid_base + 500 + i as u32)
            } else {
                0
            };
            out.push(Program {
                group: group.to_string(),
                name: name.to_string(),
                state: state.into(),
                pid,
                uptime_s: if running { uptime_s } else { 0 },
                exit_status: 0,
                spawnerr: if state == "FATAL" {
                    "Exited too quickly (process log may have details)".into()
                } else {
                    String::new()
                },
                description: if running {
                    format!(
                        "pid {pid}, uptime {}:{:02}:{:02}",
                        uptime_s / 3600,
                        uptime_s / 60 % 60,
                        uptime_s % 60
                    )
                } else if state == "FATAL" {
                    "Exited too quickly (process log may have details)".into()
                } else {
                    "Not started".into()
                },
                start_unix_ms: if running { p.info.boot_unix_ms } else { 0 },
                cpu_percent: Some(cpu),
                memory_bytes: Some(mem),
            });
        }
    }
    out.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    Programs {
        programs: out,
        error: None,
        age_ms: 0,
        url: "unix:///run/supervisor.sock (simulated)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SimConfig, tests::sample};
    use crate::profile::build_all;

    const T0: u64 = 1_700_000_000_000;

    fn fleet() -> Vec<Profile> {
        build_all(
            &SimConfig {
                agents: 60,
                ..sample()
            },
            T0,
        )
    }

    #[test]
    fn values_change_and_stay_in_range() {
        for p in &fleet() {
            let mut s = State::new(p, T0);
            let mut prev: Option<Snapshot> = None;
            for seq in 1..=20 {
                s.advance(
                    p,
                    Tick {
                        seq,
                        unix_ms: T0 + seq * 1000,
                    },
                );
                let snap = s.snapshot(p, Parts::DETAIL, T0);
                assert_eq!(snap.seq, seq);
                let cpu = snap.cpu.as_ref().expect("cpu");
                assert_eq!(cpu.per_core_percent.len() as u32, p.info.cpu_logical_cores);
                assert!(
                    cpu.per_core_percent
                        .iter()
                        .all(|u| (0.0..=100.0).contains(u))
                );
                let mean =
                    cpu.per_core_percent.iter().sum::<f32>() / cpu.per_core_percent.len() as f32;
                assert!((mean - cpu.total_percent).abs() < 0.01);
                let mem = snap.memory.expect("memory");
                assert!(mem.used_bytes <= mem.total_bytes);
                assert_eq!(mem.used_bytes + mem.available_bytes, mem.total_bytes);
                for d in &snap.disks {
                    assert!(d.used_bytes <= d.total_bytes, "{d:?}");
                    assert!((0.0..=100.0).contains(&d.used_percent));
                }
                assert_eq!(snap.processes.len() as u32, snap.process_count);
                for g in &snap.gpus {
                    assert!(g.memory_used_bytes <= g.memory_total_bytes);
                    assert!(g.power_mw <= g.power_limit_mw);
                }
                if let Some(prev) = &prev {
                    assert_ne!(prev.cpu, snap.cpu, "per-core use drifts");
                    assert!(
                        snap.networks
                            .iter()
                            .zip(&prev.networks)
                            .all(|(a, b)| a.rx_total_bytes >= b.rx_total_bytes)
                    );
                }
                prev = Some(snap);
            }
        }
    }

    #[test]
    fn simulated_gpus_carry_the_health_signals() {
        let mut worn = 0;
        let mut gpus = 0;
        for p in fleet().iter().filter(|p| !p.gpus.is_empty()) {
            let mut st = State::new(p, T0);
            st.advance(
                p,
                Tick {
                    seq: 1,
                    unix_ms: T0,
                },
            );
            for g in st.snapshot(p, Parts::SUMMARY, T0).gpus {
                gpus += 1;
                assert!(g.sm_clock_mhz.is_some_and(|c| (345..=1980).contains(&c)));
                assert!(g.memory_temperature_celsius > g.temperature_celsius);
                assert_eq!(g.ecc_uncorrected_errors, Some(0));
                assert_eq!(g.remapped_rows_uncorrectable, Some(0));
                assert_eq!(g.xid_errors, Some(0));
                assert_eq!(g.remapping_failed, Some(false));
                let idle = g.utilization_percent.is_some_and(|u| u <= 5);
                assert_eq!(
                    g.throttle_reasons.iter().any(|r| r == "gpu_idle"),
                    idle,
                    "{g:?}"
                );
                if g.remapped_rows_correctable == Some(1) {
                    worn += 1;
                    let up_h = T0.saturating_sub(p.info.boot_unix_ms) / 3_600_000;
                    assert_eq!(g.ecc_corrected_errors, Some(up_h));
                } else {
                    assert_eq!(g.ecc_corrected_errors, Some(0));
                }
            }
        }
        assert!(gpus > 0 && worn > 0 && worn < gpus, "{worn} of {gpus}");
    }

    #[test]
    fn every_host_has_twenty_programs_sorted() {
        for p in fleet() {
            let mut st = State::new(&p, T0);
            let snap = st.snapshot(&p, Parts::default(), T0);
            let progs = snap.programs.expect("programs").programs;
            assert_eq!(progs.len(), 20);
            assert!(
                progs
                    .windows(2)
                    .all(|w| (&w[0].group, &w[0].name) < (&w[1].group, &w[1].name))
            );
            assert!(progs.iter().filter(|q| q.state != "RUNNING").count() <= 1);
            assert!(progs.iter().all(|q| (q.state == "RUNNING") == (q.pid > 0)));
        }
    }

    #[test]
    fn the_processes_of_running_programs_carry_their_name() {
        let mut seen_down = false;
        for p in fleet() {
            let mut st = State::new(&p, T0);
            let snap = st.snapshot(&p, Parts::DETAIL, T0);
            let progs = &snap.programs.as_ref().expect("programs").programs;
            for q in progs {
                let key = format!("{}:{}", q.group, q.name);
                let mine: Vec<_> = snap.processes.iter().filter(|x| x.program == key).collect();
                if q.state == "RUNNING" {
                    // Its own process (the program's pid) and, for some, children of it.
                    let own = mine.iter().find(|x| x.pid == q.pid).expect("its process");
                    assert_eq!(own.name, q.name);
                    assert!(mine.iter().all(|x| x.pid == q.pid || x.ppid == q.pid));
                    assert!(
                        mine.iter().map(|x| x.memory_bytes).sum::<u64>() > 0,
                        "{key}"
                    );
                } else {
                    seen_down = true;
                    assert!(mine.is_empty(), "{key} is {} but has processes", q.state);
                    assert_eq!((q.cpu_percent, q.memory_bytes), (Some(0.0), Some(0)));
                }
            }
            assert_eq!(snap.processes.len() as u32, snap.process_count);
        }
        assert!(seen_down, "no host of the sample fleet has a program down");
    }

    #[test]
    fn summary_leaves_the_heavy_parts_out() {
        let profiles = fleet();
        let p = profiles
            .iter()
            .find(|p| !p.gpus.is_empty() && p.role == crate::profile::Role::Gpu)
            .expect("a GPU host");
        let mut s = State::new(p, T0);
        s.advance(
            p,
            Tick {
                seq: 1,
                unix_ms: T0,
            },
        );
        let sum = s.snapshot(p, Parts::SUMMARY, T0);
        assert!(sum.processes.is_empty());
        assert!(sum.process_count > 20);
        assert!(sum.cpu.as_ref().expect("cpu").per_core_percent.is_empty());
        assert!(sum.gpus.iter().all(|g| g.processes.is_empty()));
        assert_eq!(sum.parts, Some(Parts::SUMMARY));
        assert_eq!(sum.gpus.len(), p.gpus.len());
        // Same tick, detail asked: the same sample with the heavy parts.
        let full = s.snapshot(p, Parts::DETAIL, T0);
        assert_eq!(full.seq, sum.seq);
        assert_eq!(
            full.cpu.as_ref().map(|c| c.total_percent),
            sum.cpu.as_ref().map(|c| c.total_percent)
        );
        assert!(!full.processes.is_empty());
        // The history's parts: the top 10 by CPU and by memory, and the GPU processes.
        let top = s.snapshot(
            p,
            Parts {
                top_processes: 10,
                gpu_processes: true,
                ..Parts::SUMMARY
            },
            T0,
        );
        assert!(
            (10..=20).contains(&top.processes.len()),
            "{}",
            top.processes.len()
        );
        let busiest = full
            .processes
            .iter()
            .max_by(|a, b| a.cpu_percent.total_cmp(&b.cpu_percent))
            .expect("a process");
        assert!(top.processes.iter().any(|q| q.pid == busiest.pid));
        assert!(top.gpus.iter().any(|g| !g.processes.is_empty()));
        // Advancing to the same tick again changes nothing.
        s.advance(
            p,
            Tick {
                seq: 1,
                unix_ms: T0,
            },
        );
        assert_eq!(s.snapshot(p, Parts::SUMMARY, T0).cpu, sum.cpu);
    }

    #[test]
    fn a_long_gap_catches_up_counters() {
        let profiles = fleet();
        let p = &profiles[0];
        let mut s = State::new(p, T0);
        s.advance(
            p,
            Tick {
                seq: 1,
                unix_ms: T0,
            },
        );
        let a = s.snapshot(p, Parts::SUMMARY, T0);
        s.advance(
            p,
            Tick {
                seq: 3601,
                unix_ms: T0 + 3_600_000,
            },
        );
        let b = s.snapshot(p, Parts::SUMMARY, T0);
        assert_eq!(b.seq, 3601);
        assert_eq!(b.uptime_s - a.uptime_s, 3600);
        let (na, nb) = (&a.networks[0], &b.networks[0]);
        assert!(nb.rx_total_bytes > na.rx_total_bytes + 1000);
    }
}
