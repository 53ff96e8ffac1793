//! The NVML source: loads `libnvidia-ml.so.1` at run time (the agent builds and runs without
//! it), maps every NVML error to a [`CallError`], and tells from the library's exported
//! symbols whether its process lists can be trusted ([`ProcessAbi`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::device::Device;
use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::event::EventSet;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::{
    NVML_FI_DEV_MEMORY_TEMP, NVML_FI_DEV_REMAPPED_COR, NVML_FI_DEV_REMAPPED_FAILURE,
    NVML_FI_DEV_REMAPPED_PENDING, NVML_FI_DEV_REMAPPED_UNC,
};

use super::{
    CallError, DriverFacts, GpuDevice, GpuSource, HealthFields, ProcessAbi, ProcessKind,
    ProcessList, Symbols, XidEvent, XidNews,
};

/// Real GPUs through NVML. The library is opened by [`GpuSource::init`] on the GPU thread;
/// devices are looked up per reading (a `Device` borrows `Nvml`). Critical Xid errors are
/// waited for on a thread of their own ([`XidWatch`]).
#[derive(Default)]
pub struct NvmlGpus {
    nvml: Option<Nvml>,
    xids: Option<XidWatch>,
}

/// How long the Xid thread waits for an event before it looks whether it should stop.
const XID_WAIT_MS: u32 = 1000;

/// What the Xid thread sends.
enum XidMsg {
    Watched(Vec<u32>),
    Event(XidEvent),
}

/// The Xid thread: it opens NVML once more (NVML counts its users), registers every GPU that
/// offers critical Xid events in one event set and waits on it with a timeout. An event set
/// borrows its `Nvml`, so set and handle live together on that thread's stack; the GPU thread
/// only drains a channel and so never waits on the driver for events. Dropping the watch asks
/// the thread to stop (within [`XID_WAIT_MS`]); one stuck in the driver is left behind.
struct XidWatch {
    rx: mpsc::Receiver<XidMsg>,
    stop: Arc<AtomicBool>,
}

impl Drop for XidWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl XidWatch {
    fn start() -> Option<Self> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        match std::thread::Builder::new()
            .name("smon-gpu-xid".into())
            .spawn(move || watch_xids(&tx, &st))
        {
            Ok(_) => Some(Self { rx, stop }),
            Err(error) => {
                tracing::warn!(%error, "Cannot start the GPU Xid thread; Xid errors are not watched.");
                None
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Registers the GPUs that offer critical Xid events; those that do not (or refuse) are left
/// out. A refused registration frees the set (nvml-wrapper 0.13), so the set is then built
/// again without that GPU.
fn register<'n>(nvml: &'n Nvml) -> Result<(EventSet<'n>, Vec<u32>), NvmlError> {
    let count = nvml.device_count()?;
    let mut skip: Vec<u32> = Vec::new();
    'build: loop {
        let mut set = nvml.create_event_set()?;
        let mut watched = Vec::new();
        for index in 0..count {
            if skip.contains(&index) {
                continue;
            }
            let Ok(d) = nvml.device_by_index(index) else {
                skip.push(index);
                continue;
            };
            let offered = d
                .supported_event_types()
                .is_ok_and(|t| t.contains(EventTypes::CRITICAL_XID_ERROR));
            if !offered {
                skip.push(index);
                continue;
            }
            match d.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
                Ok(s) => {
                    set = s;
                    watched.push(index);
                }
                Err(e) => {
                    tracing::info!(gpu = index, error = ?e.error, "GPU refuses Xid events; not watched.");
                    skip.push(index);
                    continue 'build;
                }
            }
        }
        return Ok((set, watched));
    }
}

fn watch_xids(tx: &mpsc::Sender<XidMsg>, stop: &AtomicBool) {
    let nvml = match Nvml::init() {
        Ok(n) => n,
        Err(e) => {
            tracing::info!(error = ?e, "NVML did not open for Xid events; they are not watched.");
            return;
        }
    };
    let (set, watched) = match register(&nvml) {
        Ok(x) => x,
        Err(e) => {
            tracing::info!(error = ?e, "No NVML event set; Xid errors are not watched.");
            return;
        }
    };
    if tx.send(XidMsg::Watched(watched)).is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        match set.wait(XID_WAIT_MS) {
            Ok(ev) => {
                let xid = match ev.event_data {
                    Some(XidError::Value(v)) => u32::try_from(v).unwrap_or(u32::MAX),
                    Some(XidError::Unknown) => 999,
                    None => continue,
                };
                let Ok(index) = ev.device.index() else {
                    continue;
                };
                let e = XidEvent {
                    index,
                    xid,
                    unix_ms: now_ms(),
                };
                if tx.send(XidMsg::Event(e)).is_err() {
                    return;
                }
            }
            Err(NvmlError::Timeout) => {}
            Err(e) => {
                // A lost GPU or a driver in trouble: do not spin on the error.
                tracing::debug!(error = ?e, "Waiting for Xid events failed.");
                std::thread::sleep(Duration::from_millis(u64::from(XID_WAIT_MS)));
            }
        }
    }
}

impl NvmlGpus {
    /// A source that has not opened the library yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl From<NvmlError> for CallError {
    fn from(e: NvmlError) -> Self {
        match e {
            NvmlError::NotSupported => CallError::NotSupported,
            NvmlError::NotFound => CallError::NotFound,
            NvmlError::NoPermission => CallError::NoPermission,
            NvmlError::GpuLost => CallError::GpuLost,
            NvmlError::FailedToLoadSymbol(s) => CallError::MissingSymbol(s),
            NvmlError::FunctionNotFound => CallError::MissingSymbol("the function".into()),
            NvmlError::DriverNotLoaded => CallError::DriverNotLoaded,
            NvmlError::LibloadingError(e) => CallError::LibraryNotFound(e.to_string()),
            NvmlError::LibraryNotFound => {
                CallError::LibraryNotFound("libnvidia-ml.so.1 not found".into())
            }
            NvmlError::LibRmVersionMismatch => CallError::VersionMismatch,
            NvmlError::Timeout => CallError::Timeout,
            other => CallError::Other(format!("{other:?}")),
        }
    }
}

fn c<T>(r: Result<T, NvmlError>) -> Result<T, CallError> {
    r.map_err(CallError::from)
}

impl GpuSource for NvmlGpus {
    fn kind(&self) -> &'static str {
        "nvml"
    }

    fn init(&mut self) -> Result<DriverFacts, CallError> {
        // Dropping an earlier handle shuts NVML down first (after a driver reload).
        self.nvml = None;
        self.xids = None;
        let nvml = c(Nvml::init())?;
        let lib = nvml.lib();
        let symbols = Symbols {
            compute_processes_v3: lib.nvmlDeviceGetComputeRunningProcesses_v3.is_ok(),
            conf_compute_mem_size_info: lib.nvmlDeviceGetConfComputeMemSizeInfo.is_ok(),
            running_process_detail_list: lib.nvmlDeviceGetRunningProcessDetailList.is_ok(),
        };
        let facts = DriverFacts {
            driver_version: nvml.sys_driver_version().unwrap_or_default(),
            cuda_version: nvml
                .sys_cuda_driver_version()
                .map(|v| {
                    format!(
                        "{}.{}",
                        nvml_wrapper::cuda_driver_version_major(v),
                        nvml_wrapper::cuda_driver_version_minor(v)
                    )
                })
                .unwrap_or_default(),
            process_abi: ProcessAbi::from_symbols(symbols),
        };
        self.nvml = Some(nvml);
        self.xids = XidWatch::start();
        Ok(facts)
    }

    fn xid_events(&mut self) -> XidNews {
        let mut news = XidNews::default();
        if let Some(w) = &self.xids {
            while let Ok(m) = w.rx.try_recv() {
                match m {
                    XidMsg::Watched(list) => news.watched = Some(list),
                    XidMsg::Event(e) => news.events.push(e),
                }
            }
        }
        news
    }

    fn device_count(&mut self) -> Result<u32, CallError> {
        let nvml = self
            .nvml
            .as_ref()
            .ok_or(CallError::Other("NVML is not open".into()))?;
        c(nvml.device_count())
    }

    fn with_device(
        &mut self,
        index: u32,
        f: &mut dyn FnMut(&dyn GpuDevice),
    ) -> Result<(), CallError> {
        let nvml = self
            .nvml
            .as_ref()
            .ok_or(CallError::Other("NVML is not open".into()))?;
        let d = c(nvml.device_by_index(index))?;
        f(&NvmlDevice(d));
        Ok(())
    }
}

/// One NVML device (a GPU or a MIG instance).
struct NvmlDevice<'n>(Device<'n>);

fn procs(r: Result<Vec<ProcessInfo>, NvmlError>) -> Result<ProcessList, CallError> {
    Ok(c(r)?
        .into_iter()
        .map(|p| {
            let mem = match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => Some(b),
                UsedGpuMemory::Unavailable => None,
            };
            (p.pid, mem)
        })
        .collect())
}

fn as_u64(v: &SampleValue) -> Option<u64> {
    match *v {
        SampleValue::U32(x) => Some(u64::from(x)),
        SampleValue::U64(x) => Some(x),
        SampleValue::I64(x) => u64::try_from(x).ok(),
        SampleValue::F64(x) if x >= 0.0 => Some(x as u64),
        SampleValue::F64(_) => None,
    }
}

impl GpuDevice for NvmlDevice<'_> {
    fn uuid(&self) -> Result<String, CallError> {
        c(self.0.uuid())
    }

    fn name(&self) -> Result<String, CallError> {
        c(self.0.name())
    }

    fn pci_bus_id(&self) -> Result<String, CallError> {
        c(self.0.pci_info()).map(|p| p.bus_id)
    }

    fn memory(&self) -> Result<(u64, u64), CallError> {
        c(self.0.memory_info()).map(|m| (m.used, m.total))
    }

    fn utilization(&self) -> Result<(u32, u32), CallError> {
        c(self.0.utilization_rates()).map(|u| (u.gpu, u.memory))
    }

    fn fan_count(&self) -> Result<u32, CallError> {
        c(self.0.num_fans())
    }

    fn fan_speed(&self, fan: u32) -> Result<u32, CallError> {
        c(self.0.fan_speed(fan))
    }

    fn temperature(&self) -> Result<u32, CallError> {
        c(self.0.temperature(TemperatureSensor::Gpu))
    }

    fn power_mw(&self) -> Result<u32, CallError> {
        c(self.0.power_usage())
    }

    fn power_limit_mw(&self) -> Result<u32, CallError> {
        c(self.0.enforced_power_limit())
    }

    fn performance_state(&self) -> Result<u32, CallError> {
        c(self.0.performance_state()).map(|p| p.as_c())
    }

    fn persistence_mode(&self) -> Result<bool, CallError> {
        c(self.0.is_in_persistent_mode())
    }

    fn mig_mode(&self) -> Result<bool, CallError> {
        c(self.0.mig_mode()).map(|m| m.current == 1)
    }

    fn mig_slots(&self) -> Result<u32, CallError> {
        c(self.0.mig_device_count())
    }

    fn with_mig(&self, slot: u32, f: &mut dyn FnMut(&dyn GpuDevice)) -> Result<(), CallError> {
        let d = c(self.0.mig_device_by_index(slot))?;
        f(&NvmlDevice(d));
        Ok(())
    }

    fn sm_clock_mhz(&self) -> Result<u32, CallError> {
        c(self.0.clock_info(Clock::SM))
    }

    fn ecc_errors(&self, uncorrected: bool) -> Result<u64, CallError> {
        let kind = if uncorrected {
            MemoryError::Uncorrected
        } else {
            MemoryError::Corrected
        };
        c(self.0.total_ecc_errors(kind, EccCounter::Volatile))
    }

    fn health(&self) -> Result<HealthFields, CallError> {
        let ids = [
            NVML_FI_DEV_MEMORY_TEMP,
            NVML_FI_DEV_REMAPPED_COR,
            NVML_FI_DEV_REMAPPED_UNC,
            NVML_FI_DEV_REMAPPED_PENDING,
            NVML_FI_DEV_REMAPPED_FAILURE,
        ]
        .map(FieldId);
        let got = c(self.0.field_values_for(&ids))?;
        // Each value has its own result: an unsupported one is simply absent.
        let v: Vec<Option<u64>> = got
            .iter()
            .map(|s| {
                s.as_ref()
                    .ok()
                    .and_then(|s| s.value.as_ref().ok())
                    .and_then(as_u64)
            })
            .collect();
        let at = |i: usize| v.get(i).copied().flatten();
        Ok(HealthFields {
            memory_temperature_celsius: at(0).map(|x| x as u32),
            remapped_correctable: at(1).map(|x| x as u32),
            remapped_uncorrectable: at(2).map(|x| x as u32),
            remapping_pending: at(3).map(|x| x != 0),
            remapping_failed: at(4).map(|x| x != 0),
        })
    }

    fn throttle_reasons(&self) -> Result<Vec<&'static str>, CallError> {
        let r = c(self.0.current_throttle_reasons())?;
        let names = [
            (ThrottleReasons::GPU_IDLE, "gpu_idle"),
            (
                ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
                "applications_clocks",
            ),
            (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
            (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
            (ThrottleReasons::SYNC_BOOST, "sync_boost"),
            (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal"),
            (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal"),
            (ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN, "hw_power_brake"),
            (ThrottleReasons::DISPLAY_CLOCK_SETTING, "display_clocks"),
        ];
        Ok(names
            .into_iter()
            .filter(|(bit, _)| r.contains(*bit))
            .map(|(_, n)| n)
            .collect())
    }

    fn processes(&self, kind: ProcessKind) -> Result<ProcessList, CallError> {
        match kind {
            ProcessKind::Compute => procs(self.0.running_compute_processes()),
            ProcessKind::Graphics => procs(self.0.running_graphics_processes()),
            ProcessKind::Mps => procs(self.0.mps_running_compute_processes()),
        }
    }
}
