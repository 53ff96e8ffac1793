//! NVIDIA GPUs. The collector sees GPUs only through the [`GpuSource`] trait: the NVML source
//! for real cards and a fake source that a config selects explicitly (`"gpu": "fake"`) for tests
//! and demos. No NVML type crosses the trait. The processes on a GPU carry only pid and memory
//! here; the sampler fills in name and user from its process table.

use smon_proto::{Gpu, GpuProcess};

/// Where GPU data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuMode {
    /// NVML when the library and a GPU are present, else none.
    Auto,
    /// Never look for GPUs.
    Off,
    /// A demo source with this many GPUs.
    Fake(u32),
}

/// Why a GPU source could not open or sample.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// NVML answered with an error (no driver, no permission, a lost card...).
    #[error("{0}")]
    Nvml(#[from] nvml_wrapper::error::NvmlError),
    /// NVML loaded but lists no GPU.
    #[error("NVML found no GPU")]
    NoGpu,
    /// One device could not be looked up.
    #[error("device {index}: {error}")]
    Device {
        /// Its NVML index.
        index: u32,
        /// What NVML said.
        error: nvml_wrapper::error::NvmlError,
    },
}

/// Something that can report GPUs.
pub trait GpuSource: Send {
    /// Short name of the source, for `HostInfo.gpu_source`: `nvml` or `fake`.
    fn kind(&self) -> &'static str;
    /// The GPUs now, with their processes. Unsupported fields are `None`.
    fn sample(&mut self) -> Result<Vec<Gpu>, GpuError>;
}

/// Opens the source the config asks for. `auto` without NVML (no driver, no GPU) gives `None`
/// and one info line; it never fails the agent.
pub fn open(mode: GpuMode) -> Option<Box<dyn GpuSource>> {
    match mode {
        GpuMode::Off => None,
        GpuMode::Fake(n) => Some(Box::new(FakeGpus::new(n))),
        GpuMode::Auto => match nvml::NvmlGpus::init() {
            Ok(src) => Some(Box::new(src)),
            Err(e) => {
                tracing::info!(reason = %e, "NVML is not available; no GPUs will be reported.");
                None
            }
        },
    }
}

/// Merges compute and graphics process lists into one entry per pid.
pub fn merge_processes(
    compute: Vec<(u32, Option<u64>)>,
    graphics: Vec<(u32, Option<u64>)>,
) -> Vec<GpuProcess> {
    let mut out: Vec<GpuProcess> = Vec::with_capacity(compute.len() + graphics.len());
    for (list, kind) in [(compute, "compute"), (graphics, "graphics")] {
        for (pid, mem) in list {
            if let Some(p) = out.iter_mut().find(|p| p.pid == pid) {
                if p.kind != kind {
                    p.kind = "compute+graphics".into();
                }
                p.memory_used_bytes = match (p.memory_used_bytes, mem) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            } else {
                out.push(GpuProcess {
                    pid,
                    name: String::new(),
                    user: String::new(),
                    memory_used_bytes: mem,
                    kind: kind.into(),
                });
            }
        }
    }
    out
}

mod nvml {
    //! The NVML source: loads `libnvidia-ml.so.1` at run time.
    use nvml_wrapper::Nvml;
    use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
    use nvml_wrapper::enums::device::UsedGpuMemory;
    use nvml_wrapper::error::NvmlError;
    use smon_proto::Gpu;

    use super::{GpuError, GpuSource, merge_processes};

    /// Real GPUs through NVML. Devices are looked up per sample (a `Device` borrows `Nvml`).
    pub struct NvmlGpus {
        nvml: Nvml,
    }

    impl NvmlGpus {
        /// Loads NVML and checks that it sees at least one GPU.
        pub fn init() -> Result<Self, GpuError> {
            let nvml = Nvml::init()?;
            match nvml.device_count()? {
                0 => Err(GpuError::NoGpu),
                _ => Ok(Self { nvml }),
            }
        }
    }

    /// A field the card does not support (or cannot read now) is absent, not zero.
    fn opt<T>(r: Result<T, NvmlError>) -> Option<T> {
        r.ok()
    }

    fn procs(
        r: Result<Vec<nvml_wrapper::struct_wrappers::device::ProcessInfo>, NvmlError>,
    ) -> Vec<(u32, Option<u64>)> {
        r.unwrap_or_default()
            .into_iter()
            .map(|p| {
                let mem = match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => Some(b),
                    UsedGpuMemory::Unavailable => None,
                };
                (p.pid, mem)
            })
            .collect()
    }

    impl GpuSource for NvmlGpus {
        fn kind(&self) -> &'static str {
            "nvml"
        }

        fn sample(&mut self) -> Result<Vec<Gpu>, GpuError> {
            let n = self.nvml.device_count()?;
            let mut out = Vec::with_capacity(n as usize);
            for i in 0..n {
                let d = match self.nvml.device_by_index(i) {
                    Ok(d) => d,
                    Err(error) => return Err(GpuError::Device { index: i, error }),
                };
                let util = opt(d.utilization_rates());
                let mem = opt(d.memory_info());
                let fan = match opt(d.num_fans()) {
                    Some(0) => None,
                    _ => opt(d.fan_speed(0)),
                };
                let pstate = opt(d.performance_state())
                    .map(|p| p.as_c())
                    .filter(|p| *p <= 15);
                out.push(Gpu {
                    index: i,
                    uuid: opt(d.uuid()).unwrap_or_default(),
                    name: opt(d.name()).unwrap_or_default(),
                    utilization_percent: util.as_ref().map(|u| u.gpu),
                    memory_utilization_percent: util.as_ref().map(|u| u.memory),
                    memory_used_bytes: mem.as_ref().map(|m| m.used),
                    memory_total_bytes: mem.as_ref().map(|m| m.total),
                    fan_percent: fan,
                    temperature_celsius: opt(d.temperature(TemperatureSensor::Gpu)),
                    power_mw: opt(d.power_usage()),
                    power_limit_mw: opt(d.enforced_power_limit()),
                    performance_state: pstate,
                    processes: merge_processes(
                        procs(d.running_compute_processes()),
                        procs(d.running_graphics_processes()),
                    ),
                });
            }
            Ok(out)
        }
    }
}

/// A demo GPU source: `count` cards whose readings move smoothly over time. Odd-numbered cards
/// are passively cooled (no fan), so the UI and tests see an absent field. Each card lists the
/// agent's own process as a compute process, so names and users resolve end to end.
#[derive(Debug)]
pub struct FakeGpus {
    count: u32,
    tick: u64,
    own_pid: u32,
}

impl FakeGpus {
    /// A fake with `count` GPUs.
    pub fn new(count: u32) -> Self {
        Self {
            count,
            tick: 0,
            own_pid: std::process::id(),
        }
    }
}

impl GpuSource for FakeGpus {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn sample(&mut self) -> Result<Vec<Gpu>, GpuError> {
        self.tick += 1;
        let total: u64 = 80 * 1024 * 1024 * 1024;
        Ok((0..self.count)
            .map(|i| {
                let phase = self.tick as f64 / 10.0 + f64::from(i);
                let wave = (phase.sin() + 1.0) / 2.0; // 0..1
                let util = (wave * 100.0).round() as u32;
                let used = (total as f64 * (0.2 + 0.6 * wave)) as u64;
                Gpu {
                    index: i,
                    uuid: format!("GPU-fake0000-0000-0000-0000-{i:012}"),
                    name: "Fake NVIDIA H100 80GB HBM3".into(),
                    utilization_percent: Some(util),
                    memory_utilization_percent: Some(util / 2),
                    memory_used_bytes: Some(used),
                    memory_total_bytes: Some(total),
                    fan_percent: (i % 2 == 0).then_some(30 + util / 3),
                    temperature_celsius: Some(35 + util / 2),
                    power_mw: Some(70_000 + util * 6_000),
                    power_limit_mw: Some(700_000),
                    performance_state: Some(if util > 10 { 0 } else { 8 }),
                    processes: vec![GpuProcess {
                        pid: self.own_pid,
                        name: String::new(),
                        user: String::new(),
                        memory_used_bytes: Some(used / 2),
                        kind: "compute".into(),
                    }],
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_gpus_move_and_leave_fans_out() {
        let mut f = FakeGpus::new(3);
        let a = f.sample().expect("sample");
        let b = f.sample().expect("sample");
        assert_eq!(a.len(), 3);
        assert_ne!(a[0].utilization_percent, b[0].utilization_percent);
        assert!(a[0].fan_percent.is_some());
        assert!(a[1].fan_percent.is_none());
        assert!(
            a.iter()
                .all(|g| g.memory_used_bytes <= g.memory_total_bytes)
        );
        assert_eq!(a[2].processes[0].pid, std::process::id());
    }

    #[test]
    fn merges_compute_and_graphics() {
        let m = merge_processes(
            vec![(10, Some(100)), (11, None)],
            vec![(10, Some(50)), (12, Some(7))],
        );
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].kind, "compute+graphics");
        assert_eq!(m[0].memory_used_bytes, Some(100));
        assert_eq!(m[1].memory_used_bytes, None);
        assert_eq!(m[2].kind, "graphics");
    }

    #[test]
    fn auto_without_nvml_is_none_not_a_crash() {
        // On machines with a GPU this opens NVML instead; either way it must not panic.
        let src = open(GpuMode::Auto);
        if let Some(mut s) = src {
            assert_eq!(s.kind(), "nvml");
            assert!(s.sample().is_ok());
        }
        assert!(open(GpuMode::Off).is_none());
    }
}
