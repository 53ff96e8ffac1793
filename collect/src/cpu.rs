//! CPU: total and per-core use, frequencies, and the load average, read from the collector's
//! `sysinfo::System` (which must be refreshed with [`refresh_kind`] first: use is a difference
//! between two refreshes).

use std::time::Duration;

use smon_proto::{Cpu, LoadAverage};
use sysinfo::{CpuRefreshKind, System};

/// The shortest time between two refreshes for CPU use to mean something.
pub const MIN_INTERVAL: Duration = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;

/// What a sample refreshes of the CPUs: use and frequency, nothing else.
pub fn refresh_kind() -> CpuRefreshKind {
    CpuRefreshKind::nothing().with_usage().with_frequency()
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
