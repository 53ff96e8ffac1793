//! CPU: total and per-core use, frequencies, and the load average, read from the collector's
//! `sysinfo::System` (which must be refreshed with [`refresh_kind`] first: use is a difference
//! between two refreshes; the frequencies are read every [`FREQUENCY_EVERY`]).

use std::time::Duration;

use smon_proto::{Cpu, LoadAverage};
use sysinfo::{CpuRefreshKind, System};

/// The shortest time between two refreshes for CPU use to mean something.
pub const MIN_INTERVAL: Duration = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;

/// How often the frequencies are read again. sysinfo reads them from
/// `/sys/devices/system/cpu/cpu<n>/cpufreq`, or where that is missing (many VMs) from the whole
/// of `/proc/cpuinfo` once per core: every sample, that was a visible part of the agent's CPU
/// (BENCHMARKS.md). Between two reads the last frequencies are reported.
pub const FREQUENCY_EVERY: Duration = Duration::from_secs(10);

/// What a sample refreshes of the CPUs: use always; the frequencies with `frequency`.
pub fn refresh_kind(frequency: bool) -> CpuRefreshKind {
    let kind = CpuRefreshKind::nothing().with_usage();
    if frequency {
        kind.with_frequency()
    } else {
        kind
    }
}

/// The CPU reading of a refreshed `sys`.
pub fn read(sys: &System) -> Cpu {
    let cpus = sys.cpus();
    Cpu {
        total_percent: sys.global_cpu_usage(),
        logical_cores: cpus.len() as u32,
        frequency_mhz: cpus.first().map(|c| c.frequency()).unwrap_or(0),
        per_core_percent: cpus.iter().map(|c| c.usage()).collect(),
        per_core_frequency_mhz: cpus.iter().map(|c| c.frequency()).collect(),
    }
}

/// The 1, 5 and 15 minute load averages (zeros where the OS has none).
pub fn load() -> LoadAverage {
    System::load_average()
        .map(|l| LoadAverage {
            one: l.one,
            five: l.five,
            fifteen: l.fifteen,
        })
        .unwrap_or_default()
}
