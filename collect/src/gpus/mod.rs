//! NVIDIA GPUs.
//!
//! The collector sees GPUs only through the [`GpuSource`] trait, one method per driver query:
//! the NVML source ([`nvml`]) for real cards, and a fake ([`FakeGpus`]) that a config selects
//! explicitly (`"gpu": "fake"`) for tests and demos, with injectable faults. No NVML type
//! crosses the trait: a failed call is a [`CallError`]. One reading routine ([`read`]) turns
//! either source into `Gpu` messages, so what is tested with the fake (one bad GPU among good
//! ones, errors versus absent fields, MIG, the R535 process-list bug, call counts) is the code
//! that runs on real cards.
//!
//! The source lives on its own thread ([`worker`]): a wedged driver leaves NVML calls in
//! uninterruptible sleep, and that must never hold up the CPU, memory and disk sample. The
//! sampler takes the worker's latest reading and its age.

pub mod fake;
pub mod nvml;
pub mod read;
pub mod worker;
pub mod xid;

use smon_proto::GpuProcess;

pub use fake::{FakeFault, FakeGpus};
pub use worker::{GpuReading, GpuWorker};

/// Where GPU data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuMode {
    /// NVML when the library and a GPU are present, retried while they are not.
    Auto,
    /// Never look for GPUs.
    Off,
    /// A demo source with this many GPUs.
    Fake(u32),
}

/// Why one driver query failed. Only [`CallError::NotSupported`] and [`CallError::NotFound`]
/// make a field absent; every other kind is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The card or driver does not offer this query.
    #[error("not supported")]
    NotSupported,
    /// The object asked for does not exist (e.g. an empty MIG slot).
    #[error("not found")]
    NotFound,
    /// The agent may not open the device: the unit's `DeviceAllow=` or the device file's mode.
    #[error(
        "NoPermission: no access to the device (check DeviceAllow= in the unit's gpu.conf drop-in and the mode of /dev/nvidia*)"
    )]
    NoPermission,
    /// The GPU no longer answers (fallen off the bus, Xid 79): it needs a reset or a reboot.
    #[error("GPU is lost (fallen off the bus?): it needs a reset or a reboot")]
    GpuLost,
    /// The driver's library lacks the function (a driver older than the query).
    #[error("the NVML library lacks {0} (driver too old for this query)")]
    MissingSymbol(String),
    /// The NVIDIA kernel driver is not loaded.
    #[error("DriverNotLoaded: the NVIDIA kernel driver is not loaded")]
    DriverNotLoaded,
    /// `libnvidia-ml.so.1` could not be loaded.
    #[error("NVML library not found: {0}")]
    LibraryNotFound(String),
    /// The library and the kernel driver are of different versions (after an upgrade).
    #[error(
        "LibRmVersionMismatch: the NVML library and the kernel driver differ in version (reboot, or reload the driver)"
    )]
    VersionMismatch,
    /// The call did not finish in the driver's own time limit.
    #[error("the driver timed out")]
    Timeout,
    /// Anything else the driver said.
    #[error("{0}")]
    Other(String),
}

impl CallError {
    /// Whether the field is simply not there (not an error to report).
    pub fn is_absent(&self) -> bool {
        matches!(self, CallError::NotSupported | CallError::NotFound)
    }
}

/// Why a GPU source could not start or sample as a whole.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// The driver library could not be opened (retried with backoff).
    #[error("NVML did not start: {0}")]
    Init(CallError),
    /// The number of GPUs could not be read.
    #[error("cannot count GPUs: {0}")]
    Count(CallError),
    /// The last reading is older than the deadline: a call is stuck in the driver.
    #[error("NVML not answering for {0} s; GPU values are withheld until it does")]
    NotAnswering(u64),
}

/// The kinds of process list NVML keeps per GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    /// CUDA and other compute contexts.
    Compute,
    /// Graphics contexts.
    Graphics,
    /// Clients of the MPS server (`nvidia-cuda-mps-server` itself is listed under compute).
    Mps,
}

impl ProcessKind {
    fn label(self) -> &'static str {
        match self {
            ProcessKind::Compute => "compute",
            ProcessKind::Graphics => "graphics",
            ProcessKind::Mps => "mps",
        }
    }
}

/// Which symbols the driver's library exports: what tells a driver with the R530-535.86
/// process-list bug apart (nvitop decides the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Symbols {
    /// `nvmlDeviceGetComputeRunningProcesses_v3`.
    pub compute_processes_v3: bool,
    /// `nvmlDeviceGetConfComputeMemSizeInfo` (new in R530).
    pub conf_compute_mem_size_info: bool,
    /// `nvmlDeviceGetRunningProcessDetailList` (new in 535.98, where the bug is fixed).
    pub running_process_detail_list: bool,
}

/// How process lists can be read on this driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessAbi {
    /// The layout nvml-wrapper uses matches the driver's.
    Matching,
    /// Drivers R530 to 535.86 write 32-byte entries into the 24-byte `_v3` array: from the
    /// second process on, pids and memory are garbage, and past 15 processes the buffer
    /// overruns. Process lists are left out on these drivers.
    R535Bug,
}

impl ProcessAbi {
    /// Decides from the exported symbols: R530 added `ConfComputeMemSizeInfo` together with
    /// the 32-byte entries; 535.98 fixed the layout and added `RunningProcessDetailList`.
    pub fn from_symbols(s: Symbols) -> Self {
        if s.compute_processes_v3 && s.conf_compute_mem_size_info && !s.running_process_detail_list
        {
            ProcessAbi::R535Bug
        } else {
            ProcessAbi::Matching
        }
    }

    /// Why processes are left out on this driver, if they are.
    pub fn problem(self) -> Option<&'static str> {
        match self {
            ProcessAbi::Matching => None,
            ProcessAbi::R535Bug => Some(
                "process lists left out: drivers R530 to 535.86 return them in a broken layout (upgrade to 535.98 or later)",
            ),
        }
    }
}

/// What the driver says about itself when it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverFacts {
    /// Driver version, e.g. "550.54.15" (empty when unknown).
    pub driver_version: String,
    /// The newest CUDA version the driver supports, e.g. "12.4" (empty when unknown).
    pub cuda_version: String,
    /// How process lists can be read.
    pub process_abi: ProcessAbi,
}

/// Readings that NVML gives as one batch of field values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthFields {
    /// Memory (HBM) temperature.
    pub memory_temperature_celsius: Option<u32>,
    /// Rows remapped after correctable errors.
    pub remapped_correctable: Option<u32>,
    /// Rows remapped after uncorrectable errors.
    pub remapped_uncorrectable: Option<u32>,
    /// A remapping waits for a reset.
    pub remapping_pending: Option<bool>,
    /// A remapping failed.
    pub remapping_failed: Option<bool>,
}

/// One critical Xid error as the driver reported it (an NVML event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XidEvent {
    /// NVML index of the GPU.
    pub index: u32,
    /// The Xid code; 999 when the driver did not say.
    pub xid: u32,
    /// When the agent saw it, ms since the epoch.
    pub unix_ms: u64,
}

/// What a source's Xid watch has seen since it was last asked ([`GpuSource::xid_events`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XidNews {
    /// The GPUs (NVML indices) whose events are watched now; `None`: unchanged since the last
    /// call.
    pub watched: Option<Vec<u32>>,
    /// Events since the last call, oldest first.
    pub events: Vec<XidEvent>,
}

/// One GPU (or MIG instance) as a source shows it: one method per driver query.
pub trait GpuDevice {
    /// UUID.
    fn uuid(&self) -> Result<String, CallError>;
    /// Product name.
    fn name(&self) -> Result<String, CallError>;
    /// PCI bus id.
    fn pci_bus_id(&self) -> Result<String, CallError>;
    /// Memory in use and total, in bytes.
    fn memory(&self) -> Result<(u64, u64), CallError>;
    /// GPU and memory-controller utilisation, 0-100.
    fn utilization(&self) -> Result<(u32, u32), CallError>;
    /// Number of fans.
    fn fan_count(&self) -> Result<u32, CallError>;
    /// Speed of one fan, 0-100.
    fn fan_speed(&self, fan: u32) -> Result<u32, CallError>;
    /// Core temperature.
    fn temperature(&self) -> Result<u32, CallError>;
    /// Power draw in milliwatts.
    fn power_mw(&self) -> Result<u32, CallError>;
    /// Enforced power limit in milliwatts.
    fn power_limit_mw(&self) -> Result<u32, CallError>;
    /// Performance state, 0-15.
    fn performance_state(&self) -> Result<u32, CallError>;
    /// Persistence mode.
    fn persistence_mode(&self) -> Result<bool, CallError>;
    /// Current MIG mode.
    fn mig_mode(&self) -> Result<bool, CallError>;
    /// How many MIG device slots to look at.
    fn mig_slots(&self) -> Result<u32, CallError>;
    /// Runs `f` on the MIG instance in `slot` (`NotFound` for an empty slot).
    fn with_mig(&self, slot: u32, f: &mut dyn FnMut(&dyn GpuDevice)) -> Result<(), CallError>;
    /// Current SM clock.
    fn sm_clock_mhz(&self) -> Result<u32, CallError>;
    /// Volatile ECC error count, corrected or not.
    fn ecc_errors(&self, uncorrected: bool) -> Result<u64, CallError>;
    /// Memory temperature and row remapping, in one call.
    fn health(&self) -> Result<HealthFields, CallError>;
    /// Why the clocks are held down, as the names of `Gpu.throttle_reasons`.
    fn throttle_reasons(&self) -> Result<Vec<&'static str>, CallError>;
    /// One process list: pid and GPU memory (when the driver says).
    fn processes(&self, kind: ProcessKind) -> Result<ProcessList, CallError>;
}

/// Something that can report GPUs: the driver library, opened on the GPU thread.
pub trait GpuSource: Send {
    /// Short name of the source, for `HostInfo.gpu_source`: `nvml` or `fake`.
    fn kind(&self) -> &'static str;
    /// Opens (or reopens) the driver library. Retried with backoff until it succeeds; called
    /// again after a whole-source failure (a driver reload).
    fn init(&mut self) -> Result<DriverFacts, CallError>;
    /// Number of GPUs.
    fn device_count(&mut self) -> Result<u32, CallError>;
    /// Runs `f` on GPU `index`, or says why the GPU cannot be opened.
    fn with_device(
        &mut self,
        index: u32,
        f: &mut dyn FnMut(&dyn GpuDevice),
    ) -> Result<(), CallError>;
    /// The critical Xid errors reported since the last call. It never blocks: a source waits
    /// for events on a thread of its own and this only takes what has come. A source that
    /// cannot watch events answers nothing.
    fn xid_events(&mut self) -> XidNews {
        XidNews::default()
    }
}

/// Opens the source the config asks for. `auto` always gives the NVML source: it is opened on
/// the GPU thread and retried there, so a driver loaded after the agent is picked up.
pub fn open(mode: GpuMode) -> Option<Box<dyn GpuSource>> {
    match mode {
        GpuMode::Off => None,
        GpuMode::Fake(n) => Some(Box::new(FakeGpus::new(n))),
        GpuMode::Auto => Some(Box::new(nvml::NvmlGpus::new())),
    }
}

/// One process list as a driver gives it: pid and GPU memory (when the driver says).
pub type ProcessList = Vec<(u32, Option<u64>)>;

/// Merges process lists into one entry per pid; `kind` lists every list the pid is on.
pub fn merge_processes(lists: Vec<(ProcessKind, ProcessList)>) -> Vec<GpuProcess> {
    let mut out: Vec<GpuProcess> = Vec::new();
    for (kind, list) in lists {
        let kind = kind.label();
        for (pid, mem) in list {
            if let Some(p) = out.iter_mut().find(|p| p.pid == pid) {
                if !p.kind.split('+').any(|k| k == kind) {
                    p.kind = format!("{}+{kind}", p.kind);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_process_lists() {
        let m = merge_processes(vec![
            (ProcessKind::Compute, vec![(10, Some(100)), (11, None)]),
            (ProcessKind::Graphics, vec![(10, Some(50)), (12, Some(7))]),
            (ProcessKind::Mps, vec![(12, Some(9)), (13, Some(1))]),
        ]);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].kind, "compute+graphics");
        assert_eq!(m[0].memory_used_bytes, Some(100));
        assert_eq!(m[1].memory_used_bytes, None);
        assert_eq!(m[2].kind, "graphics+mps");
        assert_eq!(m[2].memory_used_bytes, Some(9));
        assert_eq!(m[3].kind, "mps");
    }

    #[test]
    fn the_r535_layout_is_told_apart_by_its_symbols() {
        let s = |v3, cc, detail| Symbols {
            compute_processes_v3: v3,
            conf_compute_mem_size_info: cc,
            running_process_detail_list: detail,
        };
        // R470-R525: no _v3 at all.
        assert_eq!(
            ProcessAbi::from_symbols(s(false, false, false)),
            ProcessAbi::Matching
        );
        // R530 to 535.86: _v3 and ConfComputeMemSizeInfo, no detail list.
        assert_eq!(
            ProcessAbi::from_symbols(s(true, true, false)),
            ProcessAbi::R535Bug
        );
        // 535.98 and later.
        assert_eq!(
            ProcessAbi::from_symbols(s(true, true, true)),
            ProcessAbi::Matching
        );
        assert!(ProcessAbi::R535Bug.problem().is_some());
        assert!(CallError::NotSupported.is_absent() && CallError::NotFound.is_absent());
        assert!(!CallError::GpuLost.is_absent() && !CallError::NoPermission.is_absent());
    }

    #[test]
    fn auto_is_the_nvml_source_off_is_none() {
        assert_eq!(open(GpuMode::Auto).map(|s| s.kind()), Some("nvml"));
        assert_eq!(open(GpuMode::Fake(1)).map(|s| s.kind()), Some("fake"));
        assert!(open(GpuMode::Off).is_none());
    }
}
