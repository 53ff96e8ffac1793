//! The metrics of a sample: which series a host's [`Snapshot`] (its summary parts) stores, under
//! exactly the names of the alert rules (`cpu_percent`, `disk_percent{/home}`, ...), how each is
//! quantised to an integer for the compressed blocks, and how a cluster aggregates it.
//!
//! Pure: no I/O, unit-tested here.

use smon_proto::Snapshot;

use crate::Error;

/// How a cluster's aggregate series is made from its hosts' series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// The mean over the hosts (percentages, loads, temperatures).
    Mean,
    /// The sum over the hosts (bytes, rates, counts, watts).
    Sum,
}

/// A metric: its name, the unit's quantisation and its cluster aggregate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    /// The name (as in alert rules and the REST routes).
    pub name: &'static str,
    /// Stored as `round(value * scale)` in an `i64` (percent x100 keeps 0.01 %, temperatures
    /// x10 keep 0.1 degree, watts x1000 keep the milliwatt the card reports).
    pub scale: f64,
    /// Whether it has one series per label (mount, interface, sensor, GPU UUID, container).
    pub labelled: bool,
    /// How a cluster aggregates it.
    pub aggregate: Aggregate,
    /// A count that only rises (ECC errors, remapped rows, Xid errors; a driver reload resets
    /// it): read it by the `max` of a point, which is its last value in the point's interval
    /// at every tier (max of the maxes), never by the mean (fractions of an error).
    pub counter: bool,
}

const fn m(name: &'static str, scale: f64, labelled: bool, aggregate: Aggregate) -> Metric {
    Metric {
        name,
        scale,
        labelled,
        aggregate,
        counter: false,
    }
}

/// A per-GPU count that only rises: stored as an integer, summed over a cluster's hosts.
const fn counter(name: &'static str) -> Metric {
    Metric {
        name,
        scale: 1.0,
        labelled: true,
        aggregate: Sum,
        counter: true,
    }
}

use Aggregate::{Mean, Sum};

/// Every stored metric, in the order answers list them.
pub const METRICS: &[Metric] = &[
    m("cpu_percent", 100.0, false, Mean),
    m("load1", 100.0, false, Mean),
    m("load5", 100.0, false, Mean),
    m("load15", 100.0, false, Mean),
    m("mem_percent", 100.0, false, Mean),
    m("mem_used_bytes", 1.0, false, Sum),
    m("swap_percent", 100.0, false, Mean),
    m("swap_used_bytes", 1.0, false, Sum),
    m("disk_percent", 100.0, true, Mean),
    m("disk_used_bytes", 1.0, true, Sum),
    m("disk_read_bytes_per_s", 1.0, true, Sum),
    m("disk_write_bytes_per_s", 1.0, true, Sum),
    m("net_rx_bytes_per_s", 1.0, true, Sum),
    m("net_tx_bytes_per_s", 1.0, true, Sum),
    m("temperature_celsius", 10.0, true, Mean),
    m("gpu_utilization_percent", 100.0, true, Mean),
    m("gpu_memory_used_bytes", 1.0, true, Sum),
    m("gpu_memory_percent", 100.0, true, Mean),
    m("gpu_temperature_celsius", 10.0, true, Mean),
    m("gpu_power_watts", 1000.0, true, Sum),
    m("gpu_power_percent", 100.0, true, Mean),
    m("gpu_fan_percent", 100.0, true, Mean),
    m("gpu_sm_clock_mhz", 1.0, true, Mean),
    m("gpu_memory_temperature_celsius", 10.0, true, Mean),
    counter("gpu_ecc_corrected_errors"),
    counter("gpu_ecc_uncorrected_errors"),
    counter("gpu_remapped_rows_correctable"),
    counter("gpu_remapped_rows_uncorrectable"),
    counter("gpu_xid_errors"),
    m("gpu_throttle_reasons", 1.0, true, Mean),
    m("gpu_throttle_power_percent", 100.0, true, Mean),
    m("gpu_throttle_thermal_percent", 100.0, true, Mean),
    m("processes", 1.0, false, Sum),
    m("sessions", 1.0, false, Sum),
    m("container_cpu_percent", 100.0, true, Sum),
    m("container_memory_bytes", 1.0, true, Sum),
    m("container_memory_percent", 100.0, true, Mean),
];

/// How many containers per host each sample stores (the busiest by CPU, as a summary lists
/// them: `Containers.SUMMARY_TOP`), so that a host with hundreds of short-lived containers
/// cannot grow its series without bound. A container outside them has no point that second.
pub const CONTAINERS_TOP: usize = smon_proto::Containers::SUMMARY_TOP;

/// The metric called `name`, if there is one.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// The position of `name` in [`METRICS`], evaluated at compile time by [`known!`] (a name
/// that is not there does not compile).
const fn const_index(name: &str) -> usize {
    let mut i = 0;
    while i < METRICS.len() {
        let (a, b) = (METRICS[i].name.as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut k = 0;
            while k < a.len() && a[k] == b[k] {
                k += 1;
            }
            if k == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not a metric name")
}

/// The metric of a literal name, found at compile time: [`each_value`] runs on every sample
/// of every host, and looking its 30-150 names up in [`METRICS`] took a tenth of the history
/// writer's time.
macro_rules! known {
    ($name:literal) => {{
        const M: &Metric = &METRICS[const_index($name)];
        M
    }};
}

/// The position of `name` in [`METRICS`] (answers are sorted by it).
pub fn metric_index(name: &str) -> usize {
    METRICS
        .iter()
        .position(|m| m.name == name)
        .unwrap_or(METRICS.len())
}

/// One value of a sample, before quantisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The metric.
    pub metric: &'static Metric,
    /// The label (empty for an unlabelled metric).
    pub label: String,
    /// The value in the metric's unit.
    pub value: f64,
}

impl Value {
    /// The stored integer.
    pub fn quantised(&self) -> i64 {
        quantise(self.metric, self.value)
    }
}

impl Metric {
    /// What the label of a labelled metric names, as a Prometheus label (`mount`, `interface`,
    /// `sensor`, `gpu`: the GPU (its UUID, see [`gpu_label`]), `container`: its name); `None`
    /// for a metric without labels.
    pub fn label_kind(&self) -> Option<&'static str> {
        if !self.labelled {
            return None;
        }
        let n = self.name;
        Some(if n.starts_with("disk_") {
            "mount"
        } else if n.starts_with("net_") {
            "interface"
        } else if n.starts_with("gpu_") {
            "gpu"
        } else if n.starts_with("container_") {
            "container"
        } else {
            "sensor"
        })
    }
}

/// `value` as stored for `metric` (rounded; non-finite values become 0).
pub fn quantise(metric: &Metric, value: f64) -> i64 {
    let q = (value * metric.scale).round();
    if q.is_finite() { q as i64 } else { 0 }
}

/// A stored integer back in the metric's unit.
pub fn dequantise(metric: &Metric, q: f64) -> f64 {
    q / metric.scale
}

/// The values a sample stores: every metric the snapshot carries (a GPU field the card does
/// not report, a sensor without a reading or a disk without I/O counters is left out, not
/// stored as 0).
pub fn values(s: &Snapshot) -> Vec<Value> {
    let mut out = Vec::with_capacity(32);
    each_value(s, &mut |metric, label, value| {
        out.push(Value {
            metric,
            label: label.to_owned(),
            value,
        })
    });
    out
}

/// What a host reports over time, in one place: calls `f(metric, label, value)` for every
/// value of `s` that it carries (finite ones; a field the host does not measure is left out,
/// never 0). The history stores these; remote write sends them.
pub fn each_value(s: &Snapshot, f: &mut impl FnMut(&'static Metric, &str, f64)) {
    let mut push = |metric: &'static Metric, label: &str, value: f64| {
        if value.is_finite() {
            f(metric, label, value);
        }
    };
    if let Some(cpu) = &s.cpu {
        push(known!("cpu_percent"), "", f64::from(cpu.total_percent));
    }
    if let Some(load) = &s.load {
        push(known!("load1"), "", load.one);
        push(known!("load5"), "", load.five);
        push(known!("load15"), "", load.fifteen);
    }
    if let Some(mem) = &s.memory {
        push(known!("mem_percent"), "", f64::from(mem.used_percent));
        push(known!("mem_used_bytes"), "", mem.used_bytes as f64);
        push(known!("swap_percent"), "", f64::from(mem.swap_used_percent));
        push(known!("swap_used_bytes"), "", mem.swap_used_bytes as f64);
    }
    for d in &s.disks {
        let l = d.mount_point.as_str();
        push(known!("disk_percent"), l, f64::from(d.used_percent));
        push(known!("disk_used_bytes"), l, d.used_bytes as f64);
        if let Some(r) = d.read_bytes_per_s {
            push(known!("disk_read_bytes_per_s"), l, r as f64);
        }
        if let Some(w) = d.write_bytes_per_s {
            push(known!("disk_write_bytes_per_s"), l, w as f64);
        }
    }
    for n in &s.networks {
        push(
            known!("net_rx_bytes_per_s"),
            &n.name,
            n.rx_bytes_per_s as f64,
        );
        push(
            known!("net_tx_bytes_per_s"),
            &n.name,
            n.tx_bytes_per_s as f64,
        );
    }
    for t in &s.temperatures {
        if let Some(c) = t.celsius {
            push(known!("temperature_celsius"), &t.label, f64::from(c));
        }
    }
    for g in &s.gpus {
        let l = gpu_label(g);
        let l = l.as_ref();
        if let Some(u) = g.utilization_percent {
            push(known!("gpu_utilization_percent"), l, f64::from(u));
        }
        if let Some(used) = g.memory_used_bytes {
            push(known!("gpu_memory_used_bytes"), l, used as f64);
            if let Some(total) = g.memory_total_bytes.filter(|t| *t > 0) {
                let p = used as f64 * 100.0 / total as f64;
                push(known!("gpu_memory_percent"), l, p);
            }
        }
        if let Some(t) = g.temperature_celsius {
            push(known!("gpu_temperature_celsius"), l, f64::from(t));
        }
        if let Some(mw) = g.power_mw {
            push(known!("gpu_power_watts"), l, f64::from(mw) / 1000.0);
            if let Some(limit) = g.power_limit_mw.filter(|l| *l > 0) {
                let p = f64::from(mw) * 100.0 / f64::from(limit);
                push(known!("gpu_power_percent"), l, p);
            }
        }
        if let Some(f) = g.fan_percent {
            push(known!("gpu_fan_percent"), l, f64::from(f));
        }
        gpu_health(g, &mut |metric, value| push(metric, l, value));
    }
    push(known!("processes"), "", f64::from(s.process_count));
    push(known!("sessions"), "", s.sessions.len() as f64);
    if let Some(c) = &s.containers {
        // The agent lists them by CPU, highest first; a detail lists them all.
        let mut top: Vec<&smon_proto::Container> = c.items.iter().collect();
        if top.len() > CONTAINERS_TOP {
            top.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
            top.truncate(CONTAINERS_TOP);
        }
        for x in top.into_iter().filter(|x| !x.name.is_empty()) {
            let l = x.name.as_str();
            push(known!("container_cpu_percent"), l, f64::from(x.cpu_percent));
            push(known!("container_memory_bytes"), l, x.memory_bytes as f64);
            if let Some(limit) = x.memory_limit_bytes.filter(|l| *l > 0) {
                let p = x.memory_bytes as f64 * 100.0 / limit as f64;
                push(known!("container_memory_percent"), l, p);
            }
        }
    }
}

/// The label of a GPU's series: its UUID (`GPU-8f2c...`), which stays with the card when
/// another GPU falls off the bus and the driver numbers the rest anew, so that a missing GPU
/// never shifts every later GPU's history onto its neighbour's series. The index (`"2"`) only
/// when the host reported no UUID (an agent before UUIDs, a GPU that could not be opened):
/// the one case where the position is all there is. A UUID never looks like an index, so the
/// two never meet. Rows stored before UUIDs keep their index labels.
pub fn gpu_label(g: &smon_proto::Gpu) -> std::borrow::Cow<'_, str> {
    if g.uuid.is_empty() {
        g.index.to_string().into()
    } else {
        g.uuid.as_str().into()
    }
}

/// The label of a cluster's aggregate of a per-GPU metric: every GPU of the cluster's hosts in
/// one series (`gpu_utilization_percent{all}`: the mean over the GPUs; `gpu_power_watts{all}`:
/// their sum). A per-UUID aggregate would only copy one host's series, since a UUID belongs
/// to one card.
pub const CLUSTER_GPUS: &str = "all";

/// The label under which a host's series `label` of `metric` joins its cluster's aggregate:
/// [`CLUSTER_GPUS`] for a per-GPU metric, the label itself otherwise (a mount, an interface or
/// a sensor of the same name on several hosts).
pub fn cluster_label<'a>(metric: &Metric, label: &'a str) -> &'a str {
    if metric.label_kind() == Some("gpu") {
        CLUSTER_GPUS
    } else {
        label
    }
}

/// The throttle reasons of a held-down power budget (`Gpu.throttle_reasons`).
pub const THROTTLE_POWER: [&str; 2] = ["sw_power_cap", "hw_power_brake"];
/// The throttle reasons of a GPU too hot.
pub const THROTTLE_THERMAL: [&str; 2] = ["sw_thermal", "hw_thermal"];
/// The reasons that are no trouble: an idle GPU, and clocks an admin set. Left out of
/// `gpu_throttle_reasons` as the alert rule of that name leaves them out.
pub const THROTTLE_BENIGN: [&str; 2] = ["gpu_idle", "applications_clocks"];

/// The health series of one GPU (what it reports of them): SM clock, memory temperature, the
/// ECC, remapped-row and Xid counts, and the throttle reasons as three bounded series:
/// `gpu_throttle_reasons` (how many reasons hold the clocks down, idle and application clocks
/// left out, as the alert rule counts them), and `gpu_throttle_power_percent` /
/// `gpu_throttle_thermal_percent`, 100 while a power (`sw_power_cap`, `hw_power_brake`) or
/// thermal (`sw_thermal`, `hw_thermal`) reason holds them and 0 otherwise, so that a minute's
/// or an hour's mean is the share of the time the GPU was held down for that cause.
fn gpu_health(g: &smon_proto::Gpu, push: &mut impl FnMut(&'static Metric, f64)) {
    if let Some(c) = g.sm_clock_mhz {
        push(known!("gpu_sm_clock_mhz"), f64::from(c));
    }
    if let Some(t) = g.memory_temperature_celsius {
        push(known!("gpu_memory_temperature_celsius"), f64::from(t));
    }
    if let Some(n) = g.ecc_corrected_errors {
        push(known!("gpu_ecc_corrected_errors"), n as f64);
    }
    if let Some(n) = g.ecc_uncorrected_errors {
        push(known!("gpu_ecc_uncorrected_errors"), n as f64);
    }
    if let Some(n) = g.remapped_rows_correctable {
        push(known!("gpu_remapped_rows_correctable"), f64::from(n));
    }
    if let Some(n) = g.remapped_rows_uncorrectable {
        push(known!("gpu_remapped_rows_uncorrectable"), f64::from(n));
    }
    if let Some(n) = g.xid_errors {
        push(known!("gpu_xid_errors"), n as f64);
    }
    if g.throttle_read() {
        let held = |set: &[&str]| g.throttle_reasons.iter().any(|r| set.contains(&r.as_str()));
        let trouble = g
            .throttle_reasons
            .iter()
            .filter(|r| !THROTTLE_BENIGN.contains(&r.as_str()))
            .count();
        push(known!("gpu_throttle_reasons"), trouble as f64);
        let pct = |on: bool| if on { 100.0 } else { 0.0 };
        push(
            known!("gpu_throttle_power_percent"),
            pct(held(&THROTTLE_POWER)),
        );
        push(
            known!("gpu_throttle_thermal_percent"),
            pct(held(&THROTTLE_THERMAL)),
        );
    }
}

/// A metric as a query names it: `name` (every label) or `name{label}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    /// The metric.
    pub metric: &'static Metric,
    /// One label, or every label when `None`.
    pub label: Option<String>,
}

/// Parses `name` or `name{label}`; an unknown name or a malformed selector is a
/// [`Error::BadQuery`] that says which.
pub fn parse_selector(s: &str) -> Result<Selector, Error> {
    let s = s.trim();
    let (name, label) = match s.find('{') {
        Some(i) => {
            let Some(inner) = s[i + 1..].strip_suffix('}') else {
                return Err(Error::BadQuery(format!(
                    "metric '{s}' has a '{{' without a closing '}}' at the end"
                )));
            };
            (&s[..i], Some(inner.to_owned()))
        }
        None => (s, None),
    };
    let Some(metric) = metric(name) else {
        let known: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        return Err(Error::BadQuery(format!(
            "unknown metric '{name}'; known metrics: {}",
            known.join(", ")
        )));
    };
    if label.is_some() && !metric.labelled {
        return Err(Error::BadQuery(format!(
            "metric '{name}' has no labels; ask for '{name}'"
        )));
    }
    Ok(Selector { metric, label })
}

/// The cluster of a host id (`cluster:name` -> `cluster`; an id without `:` is its own
/// cluster).
pub fn cluster_of(host: &str) -> &str {
    host.split_once(':').map_or(host, |(c, _)| c)
}

/// The pseudo host under which a cluster's aggregate series are stored: `@cluster`. A real
/// host id always holds a `:` and a cluster name never does, so the two never meet.
pub fn cluster_host(cluster: &str) -> String {
    format!("@{cluster}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use smon_proto::{Cpu, Disk, Gpu, LoadAverage, Memory, NetInterface, Session, Temperature};

    #[test]
    fn labelled_metrics_say_what_their_label_names() {
        let kind = |n: &str| metric(n).and_then(Metric::label_kind);
        assert_eq!(kind("cpu_percent"), None);
        assert_eq!(kind("processes"), None);
        assert_eq!(kind("disk_write_bytes_per_s"), Some("mount"));
        assert_eq!(kind("net_rx_bytes_per_s"), Some("interface"));
        assert_eq!(kind("temperature_celsius"), Some("sensor"));
        assert_eq!(kind("gpu_fan_percent"), Some("gpu"));
        assert!(
            METRICS
                .iter()
                .all(|m| m.labelled == m.label_kind().is_some())
        );
    }

    fn sample() -> Snapshot {
        Snapshot {
            cpu: Some(Cpu {
                total_percent: 12.345,
                ..Default::default()
            }),
            load: Some(LoadAverage {
                one: 1.5,
                five: 1.25,
                fifteen: 0.75,
            }),
            memory: Some(Memory {
                used_bytes: 4_000_000_000,
                used_percent: 50.0,
                swap_used_bytes: 10,
                swap_used_percent: 1.0,
                ..Default::default()
            }),
            disks: vec![
                Disk {
                    mount_point: "/".into(),
                    used_percent: 40.0,
                    used_bytes: 400,
                    read_bytes_per_s: Some(1000),
                    write_bytes_per_s: None,
                    ..Default::default()
                },
                Disk {
                    mount_point: "/home".into(),
                    used_percent: 10.0,
                    used_bytes: 100,
                    ..Default::default()
                },
            ],
            networks: vec![NetInterface {
                name: "eth0".into(),
                rx_bytes_per_s: 5,
                tx_bytes_per_s: 6,
                ..Default::default()
            }],
            temperatures: vec![
                Temperature {
                    label: "cpu".into(),
                    celsius: Some(55.5),
                    ..Default::default()
                },
                Temperature {
                    label: "broken".into(),
                    celsius: None,
                    ..Default::default()
                },
            ],
            gpus: vec![Gpu {
                index: 1,
                utilization_percent: Some(90),
                memory_used_bytes: Some(20),
                memory_total_bytes: Some(80),
                temperature_celsius: Some(70),
                power_mw: Some(250_000),
                power_limit_mw: Some(500_000),
                fan_percent: None,
                ..Default::default()
            }],
            process_count: 321,
            sessions: vec![Session::default(), Session::default()],
            ..Default::default()
        }
    }

    fn get(v: &[Value], name: &str, label: &str) -> Option<f64> {
        v.iter()
            .find(|x| x.metric.name == name && x.label == label)
            .map(|x| x.value)
    }

    #[test]
    fn a_sample_stores_its_busiest_containers_only() {
        let mut s = Snapshot::default();
        let items = (0..9u32)
            .map(|i| smon_proto::Container {
                name: format!("c{i}"),
                cpu_percent: i as f32,
                memory_bytes: u64::from(i) * 100,
                memory_limit_bytes: (i == 8).then_some(1_000),
                ..Default::default()
            })
            .collect();
        s.containers = Some(smon_proto::Containers {
            count: 9,
            items,
            error: None,
        });
        let v = values(&s);
        assert_eq!(get(&v, "container_cpu_percent", "c8"), Some(8.0));
        assert_eq!(get(&v, "container_memory_bytes", "c8"), Some(800.0));
        assert_eq!(get(&v, "container_memory_percent", "c8"), Some(80.0));
        assert_eq!(get(&v, "container_memory_percent", "c7"), None, "no limit");
        let kept: Vec<&str> = v
            .iter()
            .filter(|x| x.metric.name == "container_cpu_percent")
            .map(|x| x.label.as_str())
            .collect();
        assert_eq!(kept.len(), CONTAINERS_TOP);
        assert!(
            kept.iter()
                .all(|l| ["c4", "c5", "c6", "c7", "c8"].contains(l))
        );
        assert_eq!(
            metric("container_memory_bytes").and_then(Metric::label_kind),
            Some("container")
        );
        assert!(parse_selector("container_cpu_percent{c8}").is_ok());
    }

    #[test]
    fn a_sample_gives_every_metric_it_carries_under_the_plan_names() {
        let v = values(&sample());
        assert_eq!(get(&v, "cpu_percent", ""), Some(f64::from(12.345f32)));
        assert_eq!(get(&v, "load1", ""), Some(1.5));
        assert_eq!(get(&v, "load15", ""), Some(0.75));
        assert_eq!(get(&v, "mem_used_bytes", ""), Some(4e9));
        assert_eq!(get(&v, "swap_percent", ""), Some(1.0));
        assert_eq!(get(&v, "disk_percent", "/home"), Some(10.0));
        assert_eq!(get(&v, "disk_read_bytes_per_s", "/"), Some(1000.0));
        assert_eq!(get(&v, "disk_write_bytes_per_s", "/"), None);
        assert_eq!(get(&v, "net_tx_bytes_per_s", "eth0"), Some(6.0));
        assert_eq!(
            get(&v, "temperature_celsius", "cpu"),
            Some(f64::from(55.5f32))
        );
        assert_eq!(get(&v, "temperature_celsius", "broken"), None);
        assert_eq!(get(&v, "gpu_utilization_percent", "1"), Some(90.0));
        assert_eq!(get(&v, "gpu_memory_percent", "1"), Some(25.0));
        assert_eq!(get(&v, "gpu_temperature_celsius", "1"), Some(70.0));
        assert_eq!(get(&v, "gpu_power_watts", "1"), Some(250.0));
        assert_eq!(get(&v, "gpu_power_percent", "1"), Some(50.0));
        assert_eq!(get(&v, "gpu_fan_percent", "1"), None);
        assert_eq!(get(&v, "processes", ""), Some(321.0));
        assert_eq!(get(&v, "sessions", ""), Some(2.0));
        assert!(v.iter().all(|x| x.metric.labelled || x.label.is_empty()));
    }

    fn health_gpu() -> Gpu {
        Gpu {
            index: 3,
            uuid: "GPU-3".into(),
            sm_clock_mhz: Some(1980),
            memory_temperature_celsius: Some(81),
            ecc_corrected_errors: Some(12),
            ecc_uncorrected_errors: Some(0),
            remapped_rows_correctable: Some(2),
            remapped_rows_uncorrectable: Some(1),
            xid_errors: Some(0),
            throttle_reasons: vec![
                "gpu_idle".into(),
                "sw_power_cap".into(),
                "hw_thermal".into(),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_gpu_stores_its_health_signals() {
        let s = Snapshot {
            gpus: vec![health_gpu()],
            ..Default::default()
        };
        let v = values(&s);
        for (name, want) in [
            ("gpu_sm_clock_mhz", 1980.0),
            ("gpu_memory_temperature_celsius", 81.0),
            ("gpu_ecc_corrected_errors", 12.0),
            ("gpu_ecc_uncorrected_errors", 0.0),
            ("gpu_remapped_rows_correctable", 2.0),
            ("gpu_remapped_rows_uncorrectable", 1.0),
            ("gpu_xid_errors", 0.0),
            // gpu_idle is no trouble: power cap and thermal are.
            ("gpu_throttle_reasons", 2.0),
            ("gpu_throttle_power_percent", 100.0),
            ("gpu_throttle_thermal_percent", 100.0),
        ] {
            assert_eq!(get(&v, name, "GPU-3"), Some(want), "{name}");
            let m = metric(name).expect("known");
            assert_eq!(m.label_kind(), Some("gpu"), "{name}");
            assert_eq!(quantise(m, want) as f64, want * m.scale, "{name}");
        }
        let counters: Vec<&str> = METRICS
            .iter()
            .filter(|m| m.counter)
            .map(|m| m.name)
            .collect();
        assert_eq!(
            counters,
            [
                "gpu_ecc_corrected_errors",
                "gpu_ecc_uncorrected_errors",
                "gpu_remapped_rows_correctable",
                "gpu_remapped_rows_uncorrectable",
                "gpu_xid_errors"
            ]
        );
        assert!(
            METRICS
                .iter()
                .filter(|m| m.counter)
                .all(|m| m.aggregate == Sum && m.scale == 1.0)
        );

        // Only an idle GPU, or clocks an admin set: nothing held down.
        let mut g = health_gpu();
        g.throttle_reasons = vec!["gpu_idle".into(), "applications_clocks".into()];
        let v = values(&Snapshot {
            gpus: vec![g],
            ..Default::default()
        });
        assert_eq!(get(&v, "gpu_throttle_reasons", "GPU-3"), Some(0.0));
        assert_eq!(get(&v, "gpu_throttle_power_percent", "GPU-3"), Some(0.0));
        assert_eq!(get(&v, "gpu_throttle_thermal_percent", "GPU-3"), Some(0.0));
    }

    #[test]
    fn health_signals_a_gpu_does_not_report_stay_absent() {
        // A GPU that reports none of them (an older card, no ECC, no HBM sensor) stores none:
        // no 0 is invented, except the throttle reasons of a GPU that was read (empty: none).
        let v = values(&Snapshot {
            gpus: vec![Gpu {
                index: 0,
                utilization_percent: Some(5),
                ..Default::default()
            }],
            ..Default::default()
        });
        let names: Vec<&str> = v
            .iter()
            .filter(|x| x.label == "0")
            .map(|x| x.metric.name)
            .collect();
        assert_eq!(
            names,
            [
                "gpu_utilization_percent",
                "gpu_throttle_reasons",
                "gpu_throttle_power_percent",
                "gpu_throttle_thermal_percent"
            ]
        );
        // A GPU whose throttle reasons could not be read (lost, no permission, the query
        // failed, NVML hanging) has no throttle series at all: its empty list means "unknown".
        for error in [
            "device: GPU is lost (fallen off the bus?): it needs a reset or a reboot",
            "device: NoPermission",
            "throttle_reasons: Unknown",
            "NVML not answering for 12 s; GPU values are withheld until it does",
        ] {
            let mut g = health_gpu();
            g.error = error.into();
            g.throttle_reasons.clear();
            let v = values(&Snapshot {
                gpus: vec![g],
                ..Default::default()
            });
            assert!(
                v.iter().all(|x| !x.metric.name.starts_with("gpu_throttle")),
                "{error}"
            );
            assert_eq!(
                get(&v, "gpu_sm_clock_mhz", "GPU-3"),
                Some(1980.0),
                "{error}"
            );
        }
    }

    #[test]
    fn an_empty_snapshot_stores_only_the_counts() {
        let v = values(&Snapshot::default());
        let names: Vec<&str> = v.iter().map(|x| x.metric.name).collect();
        assert_eq!(names, ["processes", "sessions"]);
    }

    #[test]
    fn quantisation_keeps_the_promised_resolution() {
        let p = metric("cpu_percent").expect("known");
        assert_eq!(quantise(p, 12.345), 1235);
        assert!((dequantise(p, 1235.0) - 12.35).abs() < 1e-9);
        let t = metric("gpu_temperature_celsius").expect("known");
        assert_eq!(quantise(t, 70.04), 700);
        assert_eq!(quantise(p, f64::NAN), 0);
    }

    #[test]
    fn selectors_parse_and_bad_ones_say_why() {
        let s = parse_selector("disk_percent{/home}").expect("ok");
        assert_eq!(s.metric.name, "disk_percent");
        assert_eq!(s.label.as_deref(), Some("/home"));
        assert_eq!(parse_selector("load1").expect("ok").label, None);
        let e = parse_selector("cpu_pct").expect_err("unknown").to_string();
        assert!(e.contains("unknown metric 'cpu_pct'"), "{e}");
        let e = parse_selector("disk_percent{/")
            .expect_err("open")
            .to_string();
        assert!(e.contains("closing"), "{e}");
        let e = parse_selector("load1{x}").expect_err("label").to_string();
        assert!(e.contains("has no labels"), "{e}");
    }

    #[test]
    fn clusters_and_their_pseudo_hosts() {
        assert_eq!(cluster_of("lab:node1"), "lab");
        assert_eq!(cluster_of("a:b:c"), "a");
        assert_eq!(cluster_of("solo"), "solo");
        assert_eq!(cluster_host("lab"), "@lab");
    }
}
