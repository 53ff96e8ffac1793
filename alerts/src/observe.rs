//! What rules see of a host: its sample ([`Observation`], a view over the agent's
//! [`Snapshot`] that computes the overview's numbers, rounded as the overview shows them, so an
//! alert at "cpu_percent > 90" fires exactly when the overview shows more than 90), and the
//! registry's facts about it ([`HostMeta`]: cluster, tags, agent version).
//!
//! Pure and allocation-free: the view borrows the snapshot.

use smon_proto::{Disk, Gpu, HostInfo, Snapshot};

use crate::rule::Metric;

/// The registry's facts about a host that rules read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostMeta {
    /// Host id, `cluster:name`.
    pub id: String,
    /// Its cluster.
    pub cluster: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its agent's version (`HostInfo.agent_version`; empty until known).
    pub agent_version: String,
}

impl HostMeta {
    /// The facts of host `id` in `cluster` with `tags`, and its agent's version from `info`
    /// (`None` before the first `GetInfo` answer).
    pub fn new(id: &str, cluster: &str, tags: &[String], info: Option<&HostInfo>) -> HostMeta {
        HostMeta {
            id: id.to_owned(),
            cluster: cluster.to_owned(),
            tags: tags.to_vec(),
            agent_version: info.map(|i| i.agent_version.clone()).unwrap_or_default(),
        }
    }
}

/// A host's sample as rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    snap: &'a Snapshot,
}

/// One filesystem.
#[derive(Debug, Clone, Copy)]
pub struct DiskView<'a> {
    /// Mount point.
    pub mount: &'a str,
    /// Use as `df` shows it, 0-100, rounded to 0.1 as the overview shows it.
    pub percent: f64,
    /// Did not answer in time (a hung network mount).
    pub unresponsive: bool,
}

impl<'a> Observation<'a> {
    /// The view of `snap`.
    pub fn new(snap: &'a Snapshot) -> Self {
        Self { snap }
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &'a Snapshot {
        self.snap
    }

    /// When the agent took the sample (ms since the epoch, the agent's clock).
    pub fn sample_ms(&self) -> u64 {
        self.snap.sample_unix_ms
    }

    /// A host-wide metric's value, as the overview shows it; `None` when the sample lacks it
    /// (and for per-mount or per-GPU metrics: see [`Self::disks`], [`Self::gpu_metric`]).
    pub fn metric(&self, m: Metric) -> Option<f64> {
        let s = self.snap;
        match m {
            Metric::CpuPercent => s.cpu.as_ref().map(|c| round1(c.total_percent)),
            Metric::MemPercent => s.memory.as_ref().map(|m| round1(m.used_percent)),
            Metric::SwapPercent => s.memory.as_ref().map(|m| round1(m.swap_used_percent)),
            Metric::Load1 => s.load.map(|l| round_load(l.one)),
            Metric::Load5 => s.load.map(|l| round_load(l.five)),
            Metric::Load15 => s.load.map(|l| round_load(l.fifteen)),
            Metric::TempMaxCelsius => s
                .temperatures
                .iter()
                .filter_map(|t| t.celsius)
                .filter(|c| c.is_finite())
                .reduce(f32::max)
                .map(|c| f64::from(c.round())),
            // Summed as the overview sums them (a sample without interfaces says 0).
            Metric::NetRxBytesPerS => {
                Some(s.networks.iter().map(|n| n.rx_bytes_per_s as f64).sum())
            }
            Metric::NetTxBytesPerS => {
                Some(s.networks.iter().map(|n| n.tx_bytes_per_s as f64).sum())
            }
            Metric::DiskReadBytesPerS => s
                .disks
                .iter()
                .filter_map(|d| d.read_bytes_per_s)
                .map(|b| b as f64)
                .reduce(|a, b| a + b),
            Metric::DiskWriteBytesPerS => s
                .disks
                .iter()
                .filter_map(|d| d.write_bytes_per_s)
                .map(|b| b as f64)
                .reduce(|a, b| a + b),
            _ => None,
        }
    }

    /// The filesystems.
    pub fn disks(&self) -> impl Iterator<Item = DiskView<'a>> + 'a {
        self.snap.disks.iter().map(disk_view)
    }

    /// The GPUs.
    pub fn gpus(&self) -> &'a [Gpu] {
        &self.snap.gpus
    }

    /// A per-GPU metric of `g` (`None` when the card does not report it).
    pub fn gpu_metric(g: &Gpu, m: Metric) -> Option<f64> {
        match m {
            Metric::GpuTemperatureCelsius => g.temperature_celsius.map(f64::from),
            Metric::GpuMemoryPercent => gpu_memory_percent(g),
            Metric::GpuUtilPercent => g.utilization_percent.map(f64::from),
            Metric::GpuMemoryTemperatureCelsius => g.memory_temperature_celsius.map(f64::from),
            Metric::GpuEccUncorrectedErrors => g.ecc_uncorrected_errors.map(|n| n as f64),
            Metric::GpuRemappedRowsUncorrectable => g.remapped_rows_uncorrectable.map(f64::from),
            Metric::GpuXidErrors => g.xid_errors.map(|n| n as f64),
            // Idle and the clocks an admin set are not trouble.
            Metric::GpuThrottleReasons => Some(
                g.throttle_reasons
                    .iter()
                    .filter(|r| !matches!(r.as_str(), "gpu_idle" | "applications_clocks"))
                    .count() as f64,
            ),
            Metric::GpuPowerPercent => match (g.power_mw, g.power_limit_mw) {
                (Some(mw), Some(limit)) if limit > 0 => {
                    Some(round1f(f64::from(mw) * 100.0 / f64::from(limit)))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the sample carries the whole process list (a summary carries none, or only the
    /// top processes: then a missing process cannot be told).
    pub fn has_process_list(&self) -> bool {
        self.snap.parts.is_some_and(|p| p.processes)
    }

    /// Whether a process called `name` runs: its short name, or the file name of its
    /// command (the kernel cuts short names at 15 characters). `None` without a process list.
    pub fn process_running(&self, name: &str) -> Option<bool> {
        if !self.has_process_list() {
            return None;
        }
        Some(self.snap.processes.iter().any(|p| {
            p.name == name
                || p.cmdline
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.rsplit('/').next())
                    .is_some_and(|c| c == name)
        }))
    }

    /// Whether the GPUs carry their process lists.
    pub fn has_gpu_processes(&self) -> bool {
        self.snap.parts.is_some_and(|p| p.gpu_processes)
    }
}

fn disk_view(d: &Disk) -> DiskView<'_> {
    DiskView {
        mount: &d.mount_point,
        percent: round1(d.used_percent),
        unresponsive: d.unresponsive,
    }
}

/// A GPU's memory in use, 0-100, rounded to 0.1 (as the history stores it: used / total).
pub fn gpu_memory_percent(g: &Gpu) -> Option<f64> {
    match (g.memory_used_bytes, g.memory_total_bytes) {
        (Some(used), Some(total)) if total > 0 => Some(round1f(used as f64 * 100.0 / total as f64)),
        _ => None,
    }
}

/// The overview's rounding of percentages (`smon-web`'s store: one decimal, on the f32), as
/// the f64 nearest to the decimal it shows (95.1, not 95.0999984741211).
fn round1(v: f32) -> f64 {
    round1f(f64::from((v * 10.0).round() / 10.0))
}

fn round1f(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The overview's rounding of load averages (two decimals below 10, one below 100, none above).
fn round_load(v: f64) -> f64 {
    let scale = if v.abs() < 10.0 {
        100.0
    } else if v.abs() < 100.0 {
        10.0
    } else {
        1.0
    };
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use smon_proto::{Cpu, LoadAverage, Memory, Parts, Process};

    #[test]
    fn the_numbers_are_the_overviews() {
        let s = Snapshot {
            cpu: Some(Cpu {
                total_percent: 90.04,
                ..Default::default()
            }),
            memory: Some(Memory {
                used_percent: 95.06,
                swap_used_percent: 0.0,
                ..Default::default()
            }),
            load: Some(LoadAverage {
                one: 8.004,
                five: 12.34,
                fifteen: 123.4,
            }),
            disks: vec![Disk {
                mount_point: "/var".into(),
                used_percent: 93.14,
                unresponsive: true,
                ..Default::default()
            }],
            gpus: vec![Gpu {
                index: 0,
                memory_used_bytes: Some(1 << 30),
                memory_total_bytes: Some(3 << 30),
                power_mw: Some(150_000),
                power_limit_mw: Some(300_000),
                temperature_celsius: Some(71),
                ..Default::default()
            }],
            ..Default::default()
        };
        let o = Observation::new(&s);
        assert_eq!(o.metric(Metric::CpuPercent), Some(90.0));
        assert_eq!(o.metric(Metric::MemPercent), Some(95.1));
        assert_eq!(o.metric(Metric::SwapPercent), Some(0.0));
        assert_eq!(o.metric(Metric::Load1), Some(8.0));
        assert_eq!(o.metric(Metric::Load5), Some(12.3));
        assert_eq!(o.metric(Metric::Load15), Some(123.0));
        assert_eq!(o.metric(Metric::DiskPercent), None);
        let d: Vec<_> = o.disks().collect();
        assert_eq!(
            (d[0].mount, d[0].percent, d[0].unresponsive),
            ("/var", 93.1, true)
        );
        let g = &o.gpus()[0];
        assert_eq!(
            Observation::gpu_metric(g, Metric::GpuMemoryPercent),
            Some(33.3)
        );
        assert_eq!(
            Observation::gpu_metric(g, Metric::GpuPowerPercent),
            Some(50.0)
        );
        assert_eq!(
            Observation::gpu_metric(g, Metric::GpuTemperatureCelsius),
            Some(71.0)
        );
        assert_eq!(
            Observation::new(&Snapshot::default()).metric(Metric::CpuPercent),
            None
        );
    }

    #[test]
    fn temperatures_rates_and_gpu_use_are_the_overviews_too() {
        let s = Snapshot {
            temperatures: vec![
                smon_proto::Temperature {
                    celsius: Some(61.4),
                    ..Default::default()
                },
                smon_proto::Temperature {
                    celsius: Some(f32::NAN),
                    ..Default::default()
                },
                smon_proto::Temperature {
                    celsius: Some(83.6),
                    ..Default::default()
                },
            ],
            networks: vec![
                smon_proto::NetInterface {
                    rx_bytes_per_s: 1000,
                    tx_bytes_per_s: 10,
                    ..Default::default()
                },
                smon_proto::NetInterface {
                    rx_bytes_per_s: 500,
                    tx_bytes_per_s: 5,
                    ..Default::default()
                },
            ],
            disks: vec![
                Disk {
                    read_bytes_per_s: Some(4096),
                    write_bytes_per_s: None,
                    ..Default::default()
                },
                Disk {
                    read_bytes_per_s: Some(4096),
                    ..Default::default()
                },
            ],
            gpus: vec![Gpu {
                utilization_percent: Some(97),
                memory_temperature_celsius: Some(88),
                ecc_uncorrected_errors: Some(2),
                remapped_rows_uncorrectable: Some(1),
                xid_errors: Some(3),
                throttle_reasons: vec!["gpu_idle".into(), "hw_thermal".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let o = Observation::new(&s);
        assert_eq!(o.metric(Metric::TempMaxCelsius), Some(84.0));
        assert_eq!(o.metric(Metric::NetRxBytesPerS), Some(1500.0));
        assert_eq!(o.metric(Metric::NetTxBytesPerS), Some(15.0));
        assert_eq!(o.metric(Metric::DiskReadBytesPerS), Some(8192.0));
        assert_eq!(
            o.metric(Metric::DiskWriteBytesPerS),
            None,
            "no filesystem reports it"
        );
        let g = &o.gpus()[0];
        for (m, want) in [
            (Metric::GpuUtilPercent, 97.0),
            (Metric::GpuMemoryTemperatureCelsius, 88.0),
            (Metric::GpuEccUncorrectedErrors, 2.0),
            (Metric::GpuRemappedRowsUncorrectable, 1.0),
            (Metric::GpuXidErrors, 3.0),
            (Metric::GpuThrottleReasons, 1.0),
        ] {
            assert_eq!(Observation::gpu_metric(g, m), Some(want), "{}", m.name());
        }
        assert_eq!(
            Observation::gpu_metric(&Gpu::default(), Metric::GpuXidErrors),
            None,
            "not watched"
        );
        assert_eq!(
            Observation::new(&Snapshot::default()).metric(Metric::TempMaxCelsius),
            None,
            "no sensors"
        );
    }

    #[test]
    fn host_meta_takes_the_agent_version_from_host_info() {
        let info = HostInfo {
            agent_version: "0.3.1".into(),
            ..Default::default()
        };
        let m = HostMeta::new("lab:n1", "lab", &["gpu".into()], Some(&info));
        assert_eq!(
            (m.id.as_str(), m.cluster.as_str(), m.agent_version.as_str()),
            ("lab:n1", "lab", "0.3.1")
        );
        assert_eq!(m.tags, ["gpu"]);
        assert_eq!(HostMeta::new("a:b", "a", &[], None).agent_version, "");
    }

    #[test]
    fn a_process_is_found_by_name_or_command_only_in_a_full_list() {
        let mut s = Snapshot {
            processes: vec![Process {
                name: "postgres: walw".into(),
                cmdline: "/usr/lib/postgresql/15/bin/postgres -D /var/lib".into(),
                ..Default::default()
            }],
            parts: Some(Parts {
                top_processes: 10,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(Observation::new(&s).process_running("postgres"), None);
        s.parts = Some(Parts {
            processes: true,
            ..Default::default()
        });
        let o = Observation::new(&s);
        assert_eq!(o.process_running("postgres"), Some(true));
        assert_eq!(o.process_running("postgres: walw"), Some(true));
        assert_eq!(o.process_running("nginx"), Some(false));
    }
}
