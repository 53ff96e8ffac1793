//! One GPU reading from any [`GpuSource`]: every device on its own (a failed one keeps its row
//! with the error), NotSupported and NotFound as absent fields and every other failure as an
//! error once per GPU and field, static fields cached, processes only when asked for.

use std::collections::HashMap;

use smon_proto::{Gpu, MigInstance};

use super::{CallError, DriverFacts, GpuDevice, GpuSource, ProcessKind, merge_processes};

/// Static fields are read again after this many readings (and whenever the GPU count changes
/// or a GPU failed): persistence and MIG mode can be changed by an administrator.
const STATIC_EVERY: u64 = 60;

/// A MIG instance counts as active when this share of its memory is in use (an idle instance
/// holds a few MiB; a CUDA context alone takes hundreds).
const ACTIVE_MEMORY_PERMILLE: u64 = 10;

/// One failed query: which GPU, which field, what the driver said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// NVML index of the GPU.
    pub index: u32,
    /// The field, e.g. `memory` or `device` (the GPU could not be opened at all).
    pub field: &'static str,
    /// What went wrong.
    pub error: CallError,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gpus: GPU {}: {}: {}",
            self.index, self.field, self.error
        )
    }
}

/// Fields read once and kept.
#[derive(Debug, Clone, Default)]
struct Static {
    uuid: String,
    name: String,
    pci_bus_id: String,
    fan_count: Option<u32>,
    persistence_mode: Option<bool>,
    mig_mode: Option<bool>,
    mig_slots: Option<u32>,
}

/// What one reading gives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// Every GPU the driver counts, in index order, failed ones included.
    pub gpus: Vec<Gpu>,
    /// Every failed query that is not "absent".
    pub faults: Vec<Fault>,
}

/// Reads GPUs; keep one for the life of an opened source.
#[derive(Debug)]
pub struct Reader {
    facts: DriverFacts,
    cache: HashMap<u32, Static>,
    count: Option<u32>,
    readings: u64,
}

/// Collects one device's field results: absent kinds give `None` quietly, others are kept as
/// faults; once the GPU is lost, no more queries are made on it.
struct Fields {
    faults: Vec<(&'static str, CallError)>,
    lost: bool,
}

impl Fields {
    fn get<T>(
        &mut self,
        field: &'static str,
        call: impl FnOnce() -> Result<T, CallError>,
    ) -> Option<T> {
        if self.lost {
            return None;
        }
        match call() {
            Ok(v) => Some(v),
            Err(e) if e.is_absent() => None,
            Err(e) => {
                if e == CallError::GpuLost {
                    self.lost = true;
                    self.faults.clear();
                    self.faults.push(("device", e));
                } else {
                    self.faults.push((field, e));
                }
                None
            }
        }
    }

    fn text(&self) -> String {
        self.faults
            .iter()
            .map(|(field, e)| format!("{field}: {e}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Reader {
    /// A reader for a source that opened with `facts`.
    pub fn new(facts: DriverFacts) -> Self {
        Self {
            facts,
            cache: HashMap::new(),
            count: None,
            readings: 0,
        }
    }

    /// The driver's facts.
    pub fn facts(&self) -> &DriverFacts {
        &self.facts
    }

    /// Reads every GPU. `processes`: list the processes on each. An error means the source
    /// as a whole failed (the GPU count could not be read) and must be opened again.
    pub fn read(&mut self, src: &mut dyn GpuSource, processes: bool) -> Result<Reading, CallError> {
        let n = src.device_count()?;
        self.readings += 1;
        if self.count != Some(n) || self.readings.is_multiple_of(STATIC_EVERY) {
            self.cache.clear();
            self.count = Some(n);
        }
        let mut out = Reading::default();
        for index in 0..n {
            let mut gpu = Gpu {
                index,
                ..Gpu::default()
            };
            let mut fields = Fields {
                faults: Vec::new(),
                lost: false,
            };
            let cached = self.cache.get(&index).cloned();
            let abi_problem = self.facts.process_abi.problem();
            let opened = src.with_device(index, &mut |d| {
                let st = match &cached {
                    Some(s) => s.clone(),
                    None => read_static(d, &mut fields),
                };
                read_live(d, &st, &mut fields, processes, abi_problem, &mut gpu);
                gpu.uuid = st.uuid.clone();
                gpu.name = st.name.clone();
                gpu.pci_bus_id = st.pci_bus_id.clone();
                gpu.persistence_mode = st.persistence_mode;
                gpu.mig_mode = st.mig_mode;
                if cached.is_none() && fields.faults.is_empty() {
                    self.cache.insert(index, st);
                }
            });
            if let Err(e) = opened {
                fields.faults.push(("device", e));
            }
            if !fields.faults.is_empty() {
                // Read the static fields again next time: the failure may have been the cause.
                self.cache.remove(&index);
                gpu.error = fields.text();
                if fields.lost {
                    // Nothing read after the loss is trustworthy.
                    gpu = Gpu {
                        index,
                        uuid: gpu.uuid,
                        name: gpu.name,
                        pci_bus_id: gpu.pci_bus_id,
                        error: gpu.error,
                        ..Gpu::default()
                    };
                }
            }
            out.faults
                .extend(fields.faults.into_iter().map(|(field, error)| Fault {
                    index,
                    field,
                    error,
                }));
            out.gpus.push(gpu);
        }
        Ok(out)
    }
}

fn read_static(d: &dyn GpuDevice, f: &mut Fields) -> Static {
    let mig_mode = f.get("mig_mode", || d.mig_mode());
    Static {
        uuid: f.get("uuid", || d.uuid()).unwrap_or_default(),
        name: f.get("name", || d.name()).unwrap_or_default(),
        pci_bus_id: f.get("pci_bus_id", || d.pci_bus_id()).unwrap_or_default(),
        fan_count: f.get("fan_count", || d.fan_count()),
        persistence_mode: f.get("persistence_mode", || d.persistence_mode()),
        mig_slots: if mig_mode == Some(true) {
            f.get("mig_slots", || d.mig_slots())
        } else {
            None
        },
        mig_mode,
    }
}

fn read_live(
    d: &dyn GpuDevice,
    st: &Static,
    f: &mut Fields,
    processes: bool,
    abi_problem: Option<&'static str>,
    g: &mut Gpu,
) {
    let util = f.get("utilization", || d.utilization());
    g.utilization_percent = util.map(|u| u.0);
    g.memory_utilization_percent = util.map(|u| u.1);
    let mem = f.get("memory", || d.memory());
    g.memory_used_bytes = mem.map(|m| m.0);
    g.memory_total_bytes = mem.map(|m| m.1);
    g.fan_percent = match st.fan_count {
        Some(0) | None => None,
        Some(_) => f.get("fan_speed", || d.fan_speed(0)),
    };
    g.temperature_celsius = f.get("temperature", || d.temperature());
    g.power_mw = f.get("power", || d.power_mw());
    g.power_limit_mw = f.get("power_limit", || d.power_limit_mw());
    g.performance_state = f
        .get("performance_state", || d.performance_state())
        .filter(|p| *p <= 15);
    g.sm_clock_mhz = f.get("sm_clock", || d.sm_clock_mhz());
    g.ecc_corrected_errors = f.get("ecc_corrected", || d.ecc_errors(false));
    g.ecc_uncorrected_errors = f.get("ecc_uncorrected", || d.ecc_errors(true));
    if let Some(h) = f.get("health_fields", || d.health()) {
        g.memory_temperature_celsius = h.memory_temperature_celsius;
        g.remapped_rows_correctable = h.remapped_correctable;
        g.remapped_rows_uncorrectable = h.remapped_uncorrectable;
        g.remapping_pending = h.remapping_pending;
        g.remapping_failed = h.remapping_failed;
    }
    g.throttle_reasons = f
        .get("throttle_reasons", || d.throttle_reasons())
        .unwrap_or_default()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let list_processes = processes && abi_problem.is_none();
    if processes && let Some(why) = abi_problem {
        g.processes_error = why.to_owned();
    }
    if list_processes {
        g.processes = read_processes(d, f);
    }
    if st.mig_mode == Some(true) {
        let mut active = 0;
        for slot in 0..st.mig_slots.unwrap_or(0) {
            let mut inst = MigInstance {
                index: slot,
                ..MigInstance::default()
            };
            let mut sub = Fields {
                faults: Vec::new(),
                lost: false,
            };
            let found = d.with_mig(slot, &mut |m| {
                inst.uuid = sub.get("uuid", || m.uuid()).unwrap_or_default();
                inst.name = sub.get("name", || m.name()).unwrap_or_default();
                let mem = sub.get("memory", || m.memory());
                inst.memory_used_bytes = mem.map(|m| m.0);
                inst.memory_total_bytes = mem.map(|m| m.1);
                inst.utilization_percent = sub.get("utilization", || m.utilization()).map(|u| u.0);
                if list_processes {
                    inst.processes = read_processes(m, &mut sub);
                }
            });
            match found {
                Err(e) if e.is_absent() => continue,
                Err(e) => sub.faults.push(("device", e)),
                Ok(()) => {}
            }
            let busy_memory = matches!(
                (inst.memory_used_bytes, inst.memory_total_bytes),
                (Some(u), Some(t)) if t > 0 && u.saturating_mul(1000) / t >= ACTIVE_MEMORY_PERMILLE
            );
            if busy_memory || !inst.processes.is_empty() {
                active += 1;
            }
            if !sub.faults.is_empty() {
                inst.error = sub.text();
                for (field, e) in sub.faults {
                    // Reported under the parent, with the instance in the field name.
                    f.faults.push((mig_field(field), e));
                }
            }
            for p in &inst.processes {
                if !g.processes.iter().any(|q| q.pid == p.pid) {
                    g.processes.push(p.clone());
                }
            }
            g.mig_instances.push(inst);
        }
        g.active_instances = Some(active);
    }
}

/// Field names of MIG instance faults, as static strings.
fn mig_field(field: &'static str) -> &'static str {
    match field {
        "uuid" => "mig.uuid",
        "name" => "mig.name",
        "memory" => "mig.memory",
        "utilization" => "mig.utilization",
        "processes" => "mig.processes",
        _ => "mig.device",
    }
}

fn read_processes(d: &dyn GpuDevice, f: &mut Fields) -> Vec<smon_proto::GpuProcess> {
    let mut lists = Vec::with_capacity(3);
    for kind in [
        ProcessKind::Compute,
        ProcessKind::Graphics,
        ProcessKind::Mps,
    ] {
        if let Some(l) = f.get("processes", || d.processes(kind)) {
            lists.push((kind, l));
        }
    }
    merge_processes(lists)
}
