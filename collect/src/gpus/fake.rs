//! A demo and test GPU source: `count` cards whose readings move smoothly over time, with
//! faults a test can inject (a GPU the agent may not open, one that falls off the bus mid-run,
//! fields that are not supported, a call that hangs, a driver that loads late, MIG instances,
//! the R535 process-list layout, MPS clients, processes gone from /proc). Odd-numbered cards
//! are passively cooled (no fan). Each card lists the agent's own process as a compute
//! process, so names and users resolve end to end. Every query is counted, so a test or a
//! benchmark can say what one reading costs in driver calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{
    CallError, DriverFacts, GpuDevice, GpuSource, HealthFields, ProcessAbi, ProcessKind,
    ProcessList, Symbols, XidEvent, XidNews,
};

/// A fault the fake source can be told to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeFault {
    /// GPU `index` cannot be opened: NoPermission (a unit that allows only `/dev/nvidia0`).
    NoPermission {
        /// The GPU.
        index: u32,
    },
    /// GPU `index` answers GpuLost from reading number `from` (1-based) on.
    GpuLost {
        /// The GPU.
        index: u32,
        /// The first reading that sees it lost.
        from: u64,
    },
    /// `field` (a [`GpuDevice`] method name, e.g. `fan_speed`) of GPU `index` is not
    /// supported.
    NotSupported {
        /// The GPU.
        index: u32,
        /// The method.
        field: &'static str,
    },
    /// `field` of every GPU fails because the library lacks its symbol (an old driver).
    MissingSymbol {
        /// The method.
        field: &'static str,
    },
    /// At reading number `at`, the memory query of GPU 0 blocks for `duration` (a wedged
    /// driver).
    Hang {
        /// The reading.
        at: u64,
        /// How long the call blocks.
        duration: Duration,
    },
    /// `init` fails with DriverNotLoaded this many times before it succeeds.
    LateDriver {
        /// Failed attempts.
        attempts: u32,
    },
    /// GPU `index` is in MIG mode with `instances` instances (slots past them are empty).
    Mig {
        /// The GPU.
        index: u32,
        /// Instances.
        instances: u32,
    },
    /// The driver exports the symbols of R530 to 535.86 (broken process-list layout).
    R535,
    /// The driver goes away (unloaded, reloaded): counting GPUs fails with DriverNotLoaded for
    /// `readings` attempts from reading number `from` on.
    DriverGone {
        /// The first failing reading.
        from: u64,
        /// How many attempts fail.
        readings: u64,
    },
    /// GPU `index` runs an MPS server with the agent as its client.
    Mps {
        /// The GPU.
        index: u32,
    },
    /// GPU `index` reports critical Xid error `code` at reading number `at` (once).
    Xid {
        /// The GPU.
        index: u32,
        /// The Xid code, e.g. 79.
        code: u32,
        /// The reading at which the event arrives.
        at: u64,
    },
    /// GPU `index` lists a process `pid` that is not in /proc (garbage from a broken layout).
    GhostProcess {
        /// The GPU.
        index: u32,
        /// A pid that does not exist.
        pid: u32,
    },
}

/// The query names a fault can name (`not_supported`, `missing_symbol`).
pub const FAKE_FIELDS: &[&str] = &[
    "uuid",
    "name",
    "pci_bus_id",
    "memory",
    "utilization",
    "fan_count",
    "fan_speed",
    "temperature",
    "power",
    "power_limit",
    "performance_state",
    "persistence_mode",
    "mig_mode",
    "mig_slots",
    "with_mig",
    "sm_clock",
    "ecc_corrected",
    "ecc_uncorrected",
    "health",
    "throttle_reasons",
    "processes",
];

/// A fault written as text that is not one of the forms [`FakeFault`] parses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "is not a fake GPU fault ({0}); forms: no_permission:GPU, gpu_lost:GPU@READING, not_supported:GPU:FIELD, missing_symbol:FIELD, hang:READING@MS, late_driver:ATTEMPTS, mig:GPUxINSTANCES, r535, mps:GPU, ghost_process:GPU:PID, xid:GPU:CODE@READING"
)]
pub struct FakeFaultError(String);

impl std::str::FromStr for FakeFault {
    type Err = FakeFaultError;

    /// Parses the config form, e.g. `no_permission:1`, `gpu_lost:2@5`, `mig:0x3`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| FakeFaultError(why.to_owned());
        let n = |v: &str| -> Result<u64, FakeFaultError> {
            v.parse()
                .map_err(|_| err(&format!("'{v}' is not a number")))
        };
        let gpu = |v: &str| -> Result<u32, FakeFaultError> {
            v.parse()
                .map_err(|_| err(&format!("'{v}' is not a GPU index")))
        };
        let field = |v: &str| -> Result<&'static str, FakeFaultError> {
            FAKE_FIELDS
                .iter()
                .copied()
                .find(|f| *f == v)
                .ok_or_else(|| err(&format!("'{v}' is not one of {}", FAKE_FIELDS.join(", "))))
        };
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let two = |sep: char| {
            arg.split_once(sep)
                .ok_or_else(|| err(&format!("'{arg}' lacks '{sep}'")))
        };
        Ok(match kind {
            "no_permission" => FakeFault::NoPermission { index: gpu(arg)? },
            "gpu_lost" => {
                let (i, from) = two('@')?;
                FakeFault::GpuLost {
                    index: gpu(i)?,
                    from: n(from)?,
                }
            }
            "not_supported" => {
                let (i, f) = two(':')?;
                FakeFault::NotSupported {
                    index: gpu(i)?,
                    field: field(f)?,
                }
            }
            "missing_symbol" => FakeFault::MissingSymbol { field: field(arg)? },
            "hang" => {
                let (at, ms) = two('@')?;
                FakeFault::Hang {
                    at: n(at)?,
                    duration: Duration::from_millis(n(ms)?),
                }
            }
            "late_driver" => FakeFault::LateDriver {
                attempts: u32::try_from(n(arg)?).map_err(|_| err("too many attempts"))?,
            },
            "mig" => {
                let (i, k) = two('x')?;
                let instances = u32::try_from(n(k)?).ok().filter(|k| (1..=7).contains(k));
                FakeFault::Mig {
                    index: gpu(i)?,
                    instances: instances.ok_or_else(|| err("MIG instances must be 1 to 7"))?,
                }
            }
            "r535" if arg.is_empty() => FakeFault::R535,
            "mps" => FakeFault::Mps { index: gpu(arg)? },
            "ghost_process" => {
                let (i, pid) = two(':')?;
                FakeFault::GhostProcess {
                    index: gpu(i)?,
                    pid: u32::try_from(n(pid)?).map_err(|_| err("not a pid"))?,
                }
            }
            "xid" => {
                let (i, rest) = two(':')?;
                let (code, at) = rest
                    .split_once('@')
                    .ok_or_else(|| err(&format!("'{rest}' lacks '@'")))?;
                FakeFault::Xid {
                    index: gpu(i)?,
                    code: u32::try_from(n(code)?).map_err(|_| err("not an Xid code"))?,
                    at: n(at)?,
                }
            }
            _ => return Err(err(&format!("unknown kind '{kind}'"))),
        })
    }
}

/// The fake GPU source.
#[derive(Debug)]
pub struct FakeGpus {
    count: u32,
    tick: u64,
    inits: u32,
    own_pid: u32,
    faults: Vec<FakeFault>,
    calls: Arc<AtomicU64>,
    /// Xid faults already delivered (by position in `faults`), and whether the watched GPUs
    /// were announced.
    xids_sent: Vec<usize>,
    watch_announced: bool,
}

/// Memory of each fake GPU.
const TOTAL: u64 = 80 * 1024 * 1024 * 1024;

impl FakeGpus {
    /// A fake with `count` GPUs and no faults.
    pub fn new(count: u32) -> Self {
        Self::with_faults(count, Vec::new())
    }

    /// A fake with `count` GPUs showing `faults`.
    pub fn with_faults(count: u32, faults: Vec<FakeFault>) -> Self {
        Self {
            count,
            tick: 0,
            inits: 0,
            own_pid: std::process::id(),
            faults,
            calls: Arc::new(AtomicU64::new(0)),
            xids_sent: Vec::new(),
            watch_announced: false,
        }
    }

    /// The counter of driver calls made so far (shared: it can be read while the source
    /// lives on the GPU thread).
    pub fn calls(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.calls)
    }

    fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn has(&self, f: impl Fn(&FakeFault) -> bool) -> bool {
        self.faults.iter().any(f)
    }
}

impl GpuSource for FakeGpus {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn init(&mut self) -> Result<DriverFacts, CallError> {
        self.count_call();
        self.inits += 1;
        let late = self.faults.iter().find_map(|f| match f {
            FakeFault::LateDriver { attempts } => Some(*attempts),
            _ => None,
        });
        if late.is_some_and(|a| self.inits <= a) {
            return Err(CallError::DriverNotLoaded);
        }
        // A reopened driver announces its watched GPUs again.
        self.watch_announced = false;
        let r535 = self.has(|f| *f == FakeFault::R535);
        let symbols = Symbols {
            compute_processes_v3: true,
            conf_compute_mem_size_info: true,
            running_process_detail_list: !r535,
        };
        Ok(DriverFacts {
            driver_version: if r535 { "535.54.03" } else { "550.54.15" }.into(),
            cuda_version: if r535 { "12.2" } else { "12.4" }.into(),
            process_abi: ProcessAbi::from_symbols(symbols),
        })
    }

    fn device_count(&mut self) -> Result<u32, CallError> {
        self.count_call();
        self.tick += 1;
        let tick = self.tick;
        if self.has(|f| matches!(f, FakeFault::DriverGone { from, readings } if tick >= *from && tick < from + readings)) {
            return Err(CallError::DriverNotLoaded);
        }
        Ok(self.count)
    }

    fn with_device(
        &mut self,
        index: u32,
        f: &mut dyn FnMut(&dyn GpuDevice),
    ) -> Result<(), CallError> {
        self.count_call();
        if index >= self.count {
            return Err(CallError::Other("invalid argument".into()));
        }
        if self.has(|f| *f == FakeFault::NoPermission { index }) {
            return Err(CallError::NoPermission);
        }
        f(&FakeDevice {
            fake: self,
            index,
            mig: None,
        });
        Ok(())
    }

    /// Every GPU the agent may open is watched; each Xid fault arrives once, at its reading.
    fn xid_events(&mut self) -> XidNews {
        let watched = (!self.watch_announced).then(|| {
            (0..self.count)
                .filter(|&index| !self.has(|f| *f == FakeFault::NoPermission { index }))
                .collect()
        });
        self.watch_announced = true;
        let mut events = Vec::new();
        for (i, f) in self.faults.iter().enumerate() {
            if let FakeFault::Xid { index, code, at } = *f
                && self.tick >= at
                && !self.xids_sent.contains(&i)
            {
                events.push(XidEvent {
                    index,
                    xid: code,
                    unix_ms: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                });
                self.xids_sent.push(i);
            }
        }
        XidNews { watched, events }
    }
}

/// One fake GPU, or one of its MIG instances (`mig`).
struct FakeDevice<'a> {
    fake: &'a FakeGpus,
    index: u32,
    mig: Option<u32>,
}

impl FakeDevice<'_> {
    /// Counts the call and applies the faults that concern `field`.
    fn call(&self, field: &'static str) -> Result<(), CallError> {
        let fake = self.fake;
        fake.count_call();
        let index = self.index;
        for f in &fake.faults {
            match f {
                FakeFault::GpuLost { index: i, from } if *i == index && fake.tick >= *from => {
                    return Err(CallError::GpuLost);
                }
                FakeFault::NotSupported { index: i, field: x } if *i == index && *x == field => {
                    return Err(CallError::NotSupported);
                }
                FakeFault::MissingSymbol { field: x } if *x == field => {
                    return Err(CallError::MissingSymbol(format!("nvmlDeviceGet_{field}")));
                }
                FakeFault::Hang { at, duration }
                    if *at == fake.tick
                        && index == 0
                        && field == "memory"
                        && self.mig.is_none() =>
                {
                    std::thread::sleep(*duration);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn mig_instances(&self) -> Option<u32> {
        self.fake.faults.iter().find_map(|f| match f {
            FakeFault::Mig { index, instances } if *index == self.index => Some(*instances),
            _ => None,
        })
    }

    /// 0..1, moving with time, different per GPU.
    fn wave(&self) -> f64 {
        let phase = self.fake.tick as f64 / 10.0 + f64::from(self.index);
        (phase.sin() + 1.0) / 2.0
    }

    fn util(&self) -> u32 {
        (self.wave() * 100.0).round() as u32
    }

    fn total(&self) -> u64 {
        match (self.mig, self.mig_instances()) {
            (Some(_), Some(n)) => TOTAL / u64::from(n.max(1)),
            _ => TOTAL,
        }
    }

    fn used(&self) -> u64 {
        (self.total() as f64 * (0.2 + 0.6 * self.wave())) as u64
    }
}

impl GpuDevice for FakeDevice<'_> {
    fn uuid(&self) -> Result<String, CallError> {
        self.call("uuid")?;
        Ok(match self.mig {
            Some(m) => format!("MIG-fake0000-0000-0000-{:04}-{m:012}", self.index),
            None => format!("GPU-fake0000-0000-0000-0000-{:012}", self.index),
        })
    }

    fn name(&self) -> Result<String, CallError> {
        self.call("name")?;
        Ok(match self.mig {
            Some(_) => "Fake NVIDIA H100 80GB HBM3 MIG 1g.10gb".into(),
            None => "Fake NVIDIA H100 80GB HBM3".into(),
        })
    }

    fn pci_bus_id(&self) -> Result<String, CallError> {
        self.call("pci_bus_id")?;
        Ok(format!("00000000:{:02X}:00.0", 0x18 + self.index * 0x10))
    }

    fn memory(&self) -> Result<(u64, u64), CallError> {
        self.call("memory")?;
        Ok((self.used(), self.total()))
    }

    fn utilization(&self) -> Result<(u32, u32), CallError> {
        self.call("utilization")?;
        // As on real MIG GPUs: neither the parent nor the instances report utilisation.
        if self.mig.is_some() || self.mig_instances().is_some() {
            return Err(CallError::NotSupported);
        }
        let u = self.util();
        Ok((u, u / 2))
    }

    fn fan_count(&self) -> Result<u32, CallError> {
        self.call("fan_count")?;
        Ok(if self.index.is_multiple_of(2) { 1 } else { 0 })
    }

    fn fan_speed(&self, _fan: u32) -> Result<u32, CallError> {
        self.call("fan_speed")?;
        Ok(30 + self.util() / 3)
    }

    fn temperature(&self) -> Result<u32, CallError> {
        self.call("temperature")?;
        Ok(35 + self.util() / 2)
    }

    fn power_mw(&self) -> Result<u32, CallError> {
        self.call("power")?;
        Ok(70_000 + self.util() * 6_000)
    }

    fn power_limit_mw(&self) -> Result<u32, CallError> {
        self.call("power_limit")?;
        Ok(700_000)
    }

    fn performance_state(&self) -> Result<u32, CallError> {
        self.call("performance_state")?;
        Ok(if self.util() > 10 { 0 } else { 8 })
    }

    fn persistence_mode(&self) -> Result<bool, CallError> {
        self.call("persistence_mode")?;
        Ok(true)
    }

    fn mig_mode(&self) -> Result<bool, CallError> {
        self.call("mig_mode")?;
        Ok(self.mig_instances().is_some())
    }

    fn mig_slots(&self) -> Result<u32, CallError> {
        self.call("mig_slots")?;
        // NVML reports the most instances the GPU could hold; the empty slots are NotFound.
        Ok(7)
    }

    fn with_mig(&self, slot: u32, f: &mut dyn FnMut(&dyn GpuDevice)) -> Result<(), CallError> {
        self.call("with_mig")?;
        match self.mig_instances() {
            Some(n) if slot < n => {
                f(&FakeDevice {
                    fake: self.fake,
                    index: self.index,
                    mig: Some(slot),
                });
                Ok(())
            }
            _ => Err(CallError::NotFound),
        }
    }

    fn sm_clock_mhz(&self) -> Result<u32, CallError> {
        self.call("sm_clock")?;
        Ok(345 + self.util() * 15)
    }

    fn ecc_errors(&self, uncorrected: bool) -> Result<u64, CallError> {
        self.call(if uncorrected {
            "ecc_uncorrected"
        } else {
            "ecc_corrected"
        })?;
        Ok(if uncorrected {
            0
        } else {
            u64::from(self.index)
        })
    }

    fn health(&self) -> Result<HealthFields, CallError> {
        self.call("health")?;
        Ok(HealthFields {
            memory_temperature_celsius: Some(40 + self.util() / 3),
            remapped_correctable: Some(self.index),
            remapped_uncorrectable: Some(0),
            remapping_pending: Some(false),
            remapping_failed: Some(false),
        })
    }

    fn throttle_reasons(&self) -> Result<Vec<&'static str>, CallError> {
        self.call("throttle_reasons")?;
        Ok(if self.util() < 5 {
            vec!["gpu_idle"]
        } else {
            Vec::new()
        })
    }

    fn processes(&self, kind: ProcessKind) -> Result<ProcessList, CallError> {
        self.call("processes")?;
        let fake = self.fake;
        let index = self.index;
        let mps = fake.has(|f| *f == FakeFault::Mps { index });
        let mig = self.mig_instances().is_some();
        Ok(match kind {
            // On a MIG GPU the process sits on instance 0 (and is listed there).
            ProcessKind::Compute if mig && self.mig != Some(0) => Vec::new(),
            ProcessKind::Compute if !mps => {
                let mut l = vec![(fake.own_pid, Some(self.used() / 2))];
                l.extend(fake.faults.iter().filter_map(|f| match f {
                    FakeFault::GhostProcess { index: i, pid } if *i == index => {
                        Some((*pid, Some(1 << 20)))
                    }
                    _ => None,
                }));
                l
            }
            ProcessKind::Compute => Vec::new(),
            ProcessKind::Graphics => Vec::new(),
            ProcessKind::Mps if mps && self.mig.is_none() => {
                vec![(fake.own_pid, Some(self.used() / 4))]
            }
            ProcessKind::Mps => return Err(CallError::NotSupported),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpus::read::Reader;

    fn reader(f: &mut FakeGpus) -> Reader {
        Reader::new(f.init().expect("init"))
    }

    #[test]
    fn faults_parse_from_their_config_form() {
        let ok = |t: &str| t.parse::<FakeFault>().expect(t);
        assert_eq!(ok("no_permission:1"), FakeFault::NoPermission { index: 1 });
        assert_eq!(ok("gpu_lost:2@5"), FakeFault::GpuLost { index: 2, from: 5 });
        assert_eq!(
            ok("not_supported:0:fan_speed"),
            FakeFault::NotSupported {
                index: 0,
                field: "fan_speed"
            }
        );
        assert_eq!(
            ok("missing_symbol:sm_clock"),
            FakeFault::MissingSymbol { field: "sm_clock" }
        );
        assert_eq!(
            ok("hang:3@6000"),
            FakeFault::Hang {
                at: 3,
                duration: Duration::from_secs(6)
            }
        );
        assert_eq!(ok("late_driver:4"), FakeFault::LateDriver { attempts: 4 });
        assert_eq!(
            ok("mig:0x3"),
            FakeFault::Mig {
                index: 0,
                instances: 3
            }
        );
        assert_eq!(ok("r535"), FakeFault::R535);
        assert_eq!(ok("mps:1"), FakeFault::Mps { index: 1 });
        assert_eq!(
            ok("ghost_process:2:99"),
            FakeFault::GhostProcess { index: 2, pid: 99 }
        );
        assert_eq!(
            ok("xid:1:79@4"),
            FakeFault::Xid {
                index: 1,
                code: 79,
                at: 4
            }
        );
        for bad in [
            "xid:1:79",
            "xid:1",
            "",
            "boom",
            "gpu_lost:2",
            "not_supported:0:fan",
            "mig:0x9",
            "r535:1",
            "hang:x@1",
        ] {
            let e = bad.parse::<FakeFault>().expect_err(bad).to_string();
            assert!(e.starts_with("is not a fake GPU fault ("), "{bad}: {e}");
        }
    }

    #[test]
    fn fake_gpus_move_and_leave_fans_out() {
        let mut f = FakeGpus::new(3);
        let mut r = reader(&mut f);
        let a = r.read(&mut f, true).expect("read");
        let b = r.read(&mut f, true).expect("read");
        assert!(a.faults.is_empty(), "{:?}", a.faults);
        assert_eq!(a.gpus.len(), 3);
        assert_ne!(a.gpus[0].utilization_percent, b.gpus[0].utilization_percent);
        assert!(a.gpus[0].fan_percent.is_some());
        assert!(a.gpus[1].fan_percent.is_none());
        assert!(
            a.gpus
                .iter()
                .all(|g| g.memory_used_bytes <= g.memory_total_bytes)
        );
        assert_eq!(a.gpus[2].processes[0].pid, std::process::id());
        assert_eq!(a.gpus[2].pci_bus_id, "00000000:38:00.0");
        assert_eq!(a.gpus[0].persistence_mode, Some(true));
    }

    #[test]
    fn one_bad_gpu_keeps_its_row_and_hides_no_other() {
        let mut f = FakeGpus::with_faults(
            3,
            vec![
                FakeFault::NoPermission { index: 1 },
                FakeFault::GpuLost { index: 2, from: 2 },
            ],
        );
        let mut r = reader(&mut f);
        let first = r.read(&mut f, false).expect("read");
        assert_eq!(first.gpus.len(), 3);
        assert!(
            first.gpus[1].error.starts_with("device: NoPermission"),
            "{}",
            first.gpus[1].error
        );
        assert_eq!(first.gpus[1].index, 1);
        assert!(first.gpus[1].memory_total_bytes.is_none());
        assert!(first.gpus[2].error.is_empty() && first.gpus[2].utilization_percent.is_some());
        assert_eq!(first.faults.len(), 1);
        assert_eq!(
            first.faults[0].to_string(),
            format!("gpus: GPU 1: device: {}", CallError::NoPermission)
        );

        let second = r.read(&mut f, false).expect("read");
        let lost = &second.gpus[2];
        assert!(lost.error.contains("GPU is lost"), "{}", lost.error);
        assert_eq!(
            lost.uuid, "GPU-fake0000-0000-0000-0000-000000000002",
            "kept from the cache"
        );
        assert!(lost.utilization_percent.is_none() && lost.power_mw.is_none());
        assert_eq!(
            second.faults.iter().filter(|x| x.index == 2).count(),
            1,
            "one line for a lost GPU, not one per field: {:?}",
            second.faults
        );
        assert!(second.gpus[0].error.is_empty() && second.gpus[0].utilization_percent.is_some());
    }

    #[test]
    fn not_supported_is_absent_and_other_errors_are_reported() {
        let mut f = FakeGpus::with_faults(
            2,
            vec![
                FakeFault::NotSupported {
                    index: 0,
                    field: "power",
                },
                FakeFault::MissingSymbol { field: "sm_clock" },
            ],
        );
        let mut r = reader(&mut f);
        let got = r.read(&mut f, false).expect("read");
        let g0 = &got.gpus[0];
        assert!(g0.power_mw.is_none(), "not supported: absent");
        assert!(
            g0.temperature_celsius.is_some(),
            "the rest of the GPU stays"
        );
        assert!(got.gpus[1].power_mw.is_some());
        assert!(g0.sm_clock_mhz.is_none());
        assert_eq!(got.faults.len(), 2, "{:?}", got.faults);
        assert!(got.faults.iter().all(|x| x.field == "sm_clock"));
        assert!(
            g0.error.contains("lacks nvmlDeviceGet_sm_clock"),
            "{}",
            g0.error
        );
        assert!(!g0.error.contains("power"), "{}", g0.error);
    }

    #[test]
    fn mig_instances_are_listed_and_count_as_active() {
        let mut f = FakeGpus::with_faults(
            2,
            vec![FakeFault::Mig {
                index: 0,
                instances: 3,
            }],
        );
        let mut r = reader(&mut f);
        let got = r.read(&mut f, true).expect("read");
        assert!(got.faults.is_empty(), "{:?}", got.faults);
        let g = &got.gpus[0];
        assert_eq!(g.mig_mode, Some(true));
        assert!(
            g.utilization_percent.is_none(),
            "NotSupported on a MIG parent"
        );
        assert_eq!(g.mig_instances.len(), 3, "empty slots are not instances");
        assert!(g.mig_instances[0].uuid.starts_with("MIG-"));
        assert_eq!(g.mig_instances[0].processes.len(), 1);
        assert_eq!(
            g.processes.len(),
            1,
            "instance processes are listed on the GPU"
        );
        assert_eq!(g.active_instances, Some(3));
        assert_eq!(got.gpus[1].mig_mode, Some(false));
        assert!(got.gpus[1].mig_instances.is_empty() && got.gpus[1].active_instances.is_none());
    }

    #[test]
    fn r535_drivers_leave_processes_out_and_say_why() {
        let mut f = FakeGpus::with_faults(1, vec![FakeFault::R535]);
        let mut r = reader(&mut f);
        let got = r.read(&mut f, true).expect("read");
        assert!(got.gpus[0].processes.is_empty());
        assert!(
            got.gpus[0].processes_error.contains("535.98"),
            "{}",
            got.gpus[0].processes_error
        );
        let quiet = r.read(&mut f, false).expect("read");
        assert!(
            quiet.gpus[0].processes_error.is_empty(),
            "only said when processes are asked for"
        );
    }

    #[test]
    fn mps_clients_are_listed() {
        let mut f = FakeGpus::with_faults(2, vec![FakeFault::Mps { index: 1 }]);
        let mut r = reader(&mut f);
        let got = r.read(&mut f, true).expect("read");
        assert_eq!(got.gpus[1].processes[0].kind, "mps");
        assert_eq!(got.gpus[0].processes[0].kind, "compute");
    }

    #[test]
    fn static_fields_are_cached_and_processes_cost_calls_only_when_asked() {
        let mut f = FakeGpus::new(8);
        let calls = f.calls();
        let mut r = reader(&mut f);
        let at = |c: &Arc<AtomicU64>| c.load(Ordering::Relaxed);
        let c0 = at(&calls);
        r.read(&mut f, false).expect("read");
        let first = at(&calls) - c0;
        let c1 = at(&calls);
        r.read(&mut f, false).expect("read");
        let steady = at(&calls) - c1;
        let c2 = at(&calls);
        r.read(&mut f, true).expect("read");
        let with_procs = at(&calls) - c2;
        assert!(steady < first, "static fields cached: {steady} < {first}");
        assert_eq!(with_procs, steady + 8 * 3, "three process lists per GPU");
        // The figures in BENCHMARKS.md ("GPU sampling cost"): per GPU one lookup, 6 static
        // and 11 live queries, and the fan on the 4 cards that have one; then the static 6 are
        // cached.
        assert_eq!((first, steady), (1 + 8 * 18 + 4, 1 + 8 * 12 + 4));
    }
}
