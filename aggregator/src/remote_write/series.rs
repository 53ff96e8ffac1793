//! What a sample becomes on the remote side: Prometheus series named as the embedded history
//! names its metrics, with an `smon_` prefix (`smon_cpu_percent`, `smon_disk_percent{mount}`,
//! ...), labelled `cluster`, `host`, `tags` and, per metric, `mount`, `interface`, `sensor`,
//! `container`, or for a GPU `uuid` (its UUID, which identifies the series) and `gpu` (its
//! index, for reading).
//!
//! A GPU's series is identified by its UUID, as in the history: when GPU 2 of 8 falls off the
//! bus and the driver numbers the rest anew, GPU 3 becomes `gpu="2"` but keeps its `uuid`, so
//! its data stays under its card (select or join by `uuid`) rather than continuing another
//! card's. The label is spelled `uuid` (lower case) as smon's own `/metrics` spells it on every
//! `smon_gpu_*` series, so that one query reads both, and Prometheus' convention of lower-case
//! label names holds; NVIDIA's DCGM exporter spells it `UUID` (a join with DCGM series needs a
//! `label_replace`). A GPU the agent reported without a UUID has `gpu` only.
//!
//! Tags are a list of free-form strings (spaces allowed), so they travel as one label in the
//! form Prometheus' own service discovery uses for lists: `tags=",gpu,rack 3,"`, sorted, with a
//! comma at both ends, so that `{tags=~".*,gpu,.*"}` selects the hosts tagged `gpu`. A host
//! without tags has no `tags` label.
//!
//! Pure logic: the consumer in [`super`] calls [`each_value`] per sample and keeps the encoded
//! label sets ([`Series`]) per host.

use smon_proto::Snapshot;

use super::wire;

/// The prefix of every series name.
pub const PREFIX: &str = "smon_";

/// A label of a per-item metric: its name and value.
pub type ItemLabel<'a> = (&'static str, &'a str);

/// The label of a GPU's UUID (as `/metrics` spells it).
pub const UUID_LABEL: &str = "uuid";

/// One series: its labels, sorted by name and encoded once as protobuf `Label` fields.
#[derive(Debug)]
pub struct Series {
    /// The encoded labels (repeated field 1 of `TimeSeries`).
    pub labels: Box<[u8]>,
}

impl Series {
    /// The series `smon_<metric>` of a host with `base` labels (`cluster`, `host`, `tags`)
    /// and the metric's own labels (none, one, or a GPU's `uuid` and `gpu`).
    pub fn new(base: &[(&'static str, String)], metric: &str, items: &[ItemLabel<'_>]) -> Self {
        let name = format!("{PREFIX}{metric}");
        let mut labels: Vec<(&str, &str)> = Vec::with_capacity(base.len() + 1 + items.len());
        labels.push(("__name__", &name));
        labels.extend(base.iter().map(|(n, v)| (*n, v.as_str())));
        labels.extend(items.iter().copied());
        // Receivers expect the labels of a series sorted by name.
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut buf = Vec::with_capacity(128);
        for (n, v) in labels {
            wire::encode_label(n, v, &mut buf);
        }
        Self {
            labels: buf.into_boxed_slice(),
        }
    }
}

/// The `tags` label value of a host: `",a,b,"` (sorted, deduplicated), or `None` without tags.
pub fn tags_label(tags: &[String]) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let mut t: Vec<&str> = tags.iter().map(String::as_str).collect();
    t.sort_unstable();
    t.dedup();
    Some(format!(",{},", t.join(",")))
}

/// The base labels of host `id` (`cluster:name`) with `tags`.
pub fn host_labels(id: &str, tags: &[String]) -> Vec<(&'static str, String)> {
    let (cluster, name) = id.split_once(':').unwrap_or(("", id));
    let mut v = vec![("cluster", cluster.to_owned()), ("host", name.to_owned())];
    if let Some(t) = tags_label(tags) {
        v.push(("tags", t));
    }
    v
}

/// Calls `f(metric, item labels, value)` for every value of `s`, in the history's metric names
/// (without the prefix; `smon_history::series::each_value`, the one definition of what a host
/// reports over time). Values a host does not measure are left out (never sent as 0). The item
/// labels: none for a host-wide metric, the mount, interface, sensor or container, or for a
/// GPU its `uuid` and its index `gpu` (`gpu` alone when it has no UUID).
pub fn each_value(s: &Snapshot, f: &mut impl FnMut(&'static str, &[ItemLabel<'_>], f64)) {
    // The history labels a GPU's series by UUID (or its index without one): find the GPU
    // back for its index. A host has a handful of GPUs: a scan is cheaper than a map.
    let mut index = String::new();
    smon_history::series::each_value(s, &mut |metric, label, value| match metric.label_kind() {
        None => f(metric.name, &[], value),
        Some("gpu") => {
            let g = s
                .gpus
                .iter()
                .find(|g| smon_history::series::gpu_label(g) == label);
            match g {
                Some(g) if !g.uuid.is_empty() => {
                    index.clear();
                    index.push_str(&g.index.to_string());
                    f(
                        metric.name,
                        &[(UUID_LABEL, g.uuid.as_str()), ("gpu", index.as_str())],
                        value,
                    )
                }
                // No UUID: the label is the index.
                _ => f(metric.name, &[("gpu", label)], value),
            }
        }
        Some(kind) => f(metric.name, &[(kind, label)], value),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use smon_proto::{Cpu, Disk, Gpu, LoadAverage, Memory, NetInterface, Session, Temperature};

    fn snapshot() -> Snapshot {
        Snapshot {
            cpu: Some(Cpu {
                total_percent: 12.5,
                ..Cpu::default()
            }),
            load: Some(LoadAverage {
                one: 0.5,
                five: 0.25,
                fifteen: 0.125,
            }),
            memory: Some(Memory {
                used_bytes: 4 << 30,
                used_percent: 50.0,
                swap_used_percent: 0.0,
                ..Memory::default()
            }),
            disks: vec![Disk {
                mount_point: "/home".into(),
                used_percent: 75.0,
                used_bytes: 300,
                read_bytes_per_s: Some(10),
                write_bytes_per_s: None,
                ..Disk::default()
            }],
            networks: vec![NetInterface {
                name: "eth0".into(),
                rx_bytes_per_s: 1000,
                tx_bytes_per_s: 2000,
                ..NetInterface::default()
            }],
            temperatures: vec![
                Temperature {
                    label: "cpu".into(),
                    celsius: Some(40.0),
                    ..Temperature::default()
                },
                Temperature {
                    label: "none".into(),
                    celsius: None,
                    ..Temperature::default()
                },
            ],
            gpus: vec![
                Gpu {
                    index: 1,
                    uuid: "GPU-5e1f".into(),
                    utilization_percent: Some(90),
                    memory_used_bytes: Some(1 << 30),
                    memory_total_bytes: Some(4 << 30),
                    power_mw: Some(150_000),
                    power_limit_mw: Some(300_000),
                    fan_percent: None,
                    temperature_celsius: Some(70),
                    sm_clock_mhz: Some(1410),
                    ecc_uncorrected_errors: Some(1),
                    throttle_reasons: vec!["hw_thermal".into()],
                    ..Gpu::default()
                },
                Gpu {
                    // An agent that reported no UUID: the index alone.
                    index: 2,
                    utilization_percent: Some(5),
                    ..Gpu::default()
                },
            ],
            process_count: 321,
            sessions: vec![Session::default(), Session::default()],
            ..Snapshot::default()
        }
    }

    #[test]
    fn every_value_has_the_history_name_and_its_label() {
        let mut got = Vec::new();
        each_value(&snapshot(), &mut |m, l, v| {
            let l: Vec<String> = l.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let l = if l.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", l.join(","))
            };
            got.push(format!("{m}{l} {v}"));
        });
        assert_eq!(
            got,
            [
                "cpu_percent 12.5",
                "load1 0.5",
                "load5 0.25",
                "load15 0.125",
                "mem_percent 50",
                "mem_used_bytes 4294967296",
                "swap_percent 0",
                "swap_used_bytes 0",
                "disk_percent{mount=/home} 75",
                "disk_used_bytes{mount=/home} 300",
                "disk_read_bytes_per_s{mount=/home} 10",
                "net_rx_bytes_per_s{interface=eth0} 1000",
                "net_tx_bytes_per_s{interface=eth0} 2000",
                "temperature_celsius{sensor=cpu} 40",
                "gpu_utilization_percent{uuid=GPU-5e1f,gpu=1} 90",
                "gpu_memory_used_bytes{uuid=GPU-5e1f,gpu=1} 1073741824",
                "gpu_memory_percent{uuid=GPU-5e1f,gpu=1} 25",
                "gpu_temperature_celsius{uuid=GPU-5e1f,gpu=1} 70",
                "gpu_power_watts{uuid=GPU-5e1f,gpu=1} 150",
                "gpu_power_percent{uuid=GPU-5e1f,gpu=1} 50",
                // The health signals it reports (memory temperature, the other counts: not).
                "gpu_sm_clock_mhz{uuid=GPU-5e1f,gpu=1} 1410",
                "gpu_ecc_uncorrected_errors{uuid=GPU-5e1f,gpu=1} 1",
                "gpu_throttle_reasons{uuid=GPU-5e1f,gpu=1} 1",
                "gpu_throttle_power_percent{uuid=GPU-5e1f,gpu=1} 0",
                "gpu_throttle_thermal_percent{uuid=GPU-5e1f,gpu=1} 100",
                "gpu_utilization_percent{gpu=2} 5",
                "gpu_throttle_reasons{gpu=2} 0",
                "gpu_throttle_power_percent{gpu=2} 0",
                "gpu_throttle_thermal_percent{gpu=2} 0",
                "processes 321",
                "sessions 2",
            ]
        );
    }

    #[test]
    fn tags_are_one_sorted_label_with_commas_at_both_ends() {
        assert_eq!(tags_label(&[]), None);
        assert_eq!(
            tags_label(&["rack 3".into(), "gpu".into(), "gpu".into()]).as_deref(),
            Some(",gpu,rack 3,")
        );
        assert_eq!(
            host_labels("lab:n1", &["gpu".into()]),
            [
                ("cluster", "lab".to_owned()),
                ("host", "n1".to_owned()),
                ("tags", ",gpu,".to_owned())
            ]
        );
    }

    #[test]
    fn labels_are_sorted_by_name_with_the_metric_name_first() {
        let s = Series::new(
            &host_labels("lab:n1", &["x".into()]),
            "disk_percent",
            &[("mount", "/")],
        );
        let decoded = wire::tests::decode_labels(&s.labels);
        assert_eq!(
            decoded,
            [
                ("__name__", "smon_disk_percent"),
                ("cluster", "lab"),
                ("host", "n1"),
                ("mount", "/"),
                ("tags", ",x,"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        // A GPU's: its `uuid` and its index `gpu`.
        let s = Series::new(
            &host_labels("lab:n1", &[]),
            "gpu_power_watts",
            &[(UUID_LABEL, "GPU-5e1f"), ("gpu", "1")],
        );
        let decoded = wire::tests::decode_labels(&s.labels);
        assert_eq!(
            decoded,
            [
                ("__name__", "smon_gpu_power_watts"),
                ("cluster", "lab"),
                ("gpu", "1"),
                ("host", "n1"),
                ("uuid", "GPU-5e1f"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }
}
