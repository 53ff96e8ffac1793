//! Prometheus exposition: `GET /metrics` in the OpenMetrics text format ([`CONTENT_TYPE`]),
//! encoded with prometheus-client.
//!
//! Host series are read from the cluster store at scrape time by a [`Collector`]: no second
//! copy of the state is kept, and the store lock is held only while the values are copied,
//! never while the text is written. The daemon's own health (poll latency, poll errors,
//! reconnects, connected browsers) lives in [`Telemetry`], whose counters the pollers and the
//! Socket.IO hub update as things happen.
//!
//! Conventions: names start with `smon_` and end in their unit (`_bytes`, `_seconds`,
//! `_celsius`, `_watts`, `_hertz`, `_percent` for 0-100, `_bytes_per_second` for rates the
//! agent measures); counters end in `_total`. Every host series has the labels `cluster` and
//! `host`; GPU series add `gpu` (the index), `gpu_name` and `uuid`, disk series `device`,
//! `mount` and `fs_type`, network series `interface`, temperature series `sensor`, container
//! series `container` (its name) and `kind` (docker, podman, systemd, ...), for at most
//! [`CONTAINERS_TOP`] containers per host, the busiest by CPU (`smon_host_containers` counts
//! them all). A value the
//! host cannot measure has no sample (never 0). Sample series are exported only while the host
//! is `up`: a stale or down host keeps `smon_host_up`, `smon_host_state`,
//! `smon_host_last_seen_age_seconds` and `smon_host_info`, so that a dead host's last values do
//! not show as flat lines.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, NoLabelSet, text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use smon_proto::{Container, Containers, Cpu, Gpu, HostInfo, Parts, Snapshot};

use crate::store::ClusterStore;
use crate::wire::{HostRow, Status};

/// The `Content-Type` of a `/metrics` answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Buckets of the latency histograms, in seconds.
const LATENCY_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every host state, in the order the one-hot series are written.
const STATES: [Status; 4] = [Status::Pending, Status::Up, Status::Stale, Status::Down];

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct PollLabels {
    cluster: String,
    host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ClusterLabel {
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ConsumerLabel {
    consumer: String,
}

/// The counters of one consumer of the aggregator's event feed: events queued for it, and
/// events dropped because its queue was full (it reads too slowly). Shared with the feed.
#[derive(Clone, Debug, Default)]
pub struct FeedCounters {
    delivered: Counter,
    dropped: Counter,
}

impl FeedCounters {
    /// One event queued.
    pub fn delivered(&self) {
        self.delivered.inc();
    }

    /// One event dropped; returns how many were dropped before this one.
    pub fn dropped(&self) -> u64 {
        self.dropped.inc()
    }

    /// Events queued so far.
    pub fn delivered_total(&self) -> u64 {
        self.delivered.get()
    }

    /// Events dropped so far.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.get()
    }
}

type Histograms = Family<ClusterLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The daemon's own health counters, shared (cheap clones) by the pollers, the Socket.IO hub
/// and the `/metrics` route.
#[derive(Clone, Debug)]
pub struct Telemetry {
    sample_age: Histograms,
    connect_time: Histograms,
    errors: Family<PollLabels, Counter>,
    reconnects: Family<PollLabels, Counter>,
    browsers: Gauge,
    feed_delivered: Family<ConsumerLabel, Counter>,
    feed_dropped: Family<ConsumerLabel, Counter>,
    /// Collectors other parts of the daemon add ([`Telemetry::add_collector`]).
    extra: Arc<Mutex<Vec<Arc<dyn Collector>>>>,
}

/// The history writer's state as `/metrics` shows it (`smon_history_*`), read at each scrape
/// from the source the aggregator sets ([`Telemetry::history_source`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Writes handed to the writer and not yet committed.
    pub queued: u64,
    /// Writes dropped because the writer's queue was full.
    pub dropped_total: u64,
    /// Writes lost because their batch could not be committed (disk full, I/O errors).
    pub write_errors_total: u64,
    /// The last write failed because the disk (or the quota) is full.
    pub disk_full: bool,
}

/// Where the history's stats come from (added with [`Telemetry::history_source`]; without
/// it, when history is off or in the agent, no `smon_history_*` series).
struct HistorySource(Box<dyn Fn() -> HistoryStats + Send + Sync>);

impl fmt::Debug for HistorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistorySource").finish_non_exhaustive()
    }
}

impl Collector for HistorySource {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = (self.0)();
        let gauges = [
            (
                "smon_history_queued",
                "Writes handed to the history writer and not yet committed",
                s.queued as i64,
            ),
            (
                "smon_history_disk_full",
                "1 while the history cannot be written because the disk (or quota) is full",
                i64::from(s.disk_full),
            ),
        ];
        for (name, help, v) in gauges {
            enc.encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&v)?;
        }
        let counters = [
            (
                "smon_history_dropped",
                "Writes the history dropped because its queue was full (it writes too slowly)",
                s.dropped_total,
            ),
            (
                "smon_history_write_errors",
                "Writes the history lost because their batch could not be committed (disk full, \
                 I/O errors); the writer retries each second",
                s.write_errors_total,
            ),
        ];
        for (name, help, v) in counters {
            enc.encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
        Ok(())
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            sample_age: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            connect_time: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            errors: Family::default(),
            reconnects: Family::default(),
            browsers: Gauge::default(),
            feed_delivered: Family::default(),
            feed_dropped: Family::default(),
            extra: Arc::default(),
        }
    }
}

impl Telemetry {
    /// The counters of one poller. Creates its series at zero, so that `rate()` and alerts see
    /// them before the first failure.
    pub fn poller(&self, cluster: &str, host: &str) -> PollMetrics {
        let host_labels = PollLabels {
            cluster: cluster.to_owned(),
            host: host.to_owned(),
        };
        let cluster_label = ClusterLabel {
            cluster: cluster.to_owned(),
        };
        PollMetrics {
            sample_age: self.sample_age.get_or_create_owned(&cluster_label),
            connect_time: self.connect_time.get_or_create_owned(&cluster_label),
            errors: self.errors.get_or_create_owned(&host_labels),
            reconnects: self.reconnects.get_or_create_owned(&host_labels),
            connected_before: false,
        }
    }

    /// Drops the series of a host removed from the fleet (its poll errors and reconnects), so
    /// that `/metrics` no longer shows it; call it when its poller stops for good. Its series
    /// from the store go with [`crate::store::ClusterStore::remove_host`].
    pub fn forget_host(&self, cluster: &str, host: &str) {
        let labels = PollLabels {
            cluster: cluster.to_owned(),
            host: host.to_owned(),
        };
        self.errors.remove(&labels);
        self.reconnects.remove(&labels);
    }

    /// Drops the per-cluster series (poll latency, connect time) of a cluster that is gone.
    pub fn forget_cluster(&self, cluster: &str) {
        let label = ClusterLabel {
            cluster: cluster.to_owned(),
        };
        self.sample_age.remove(&label);
        self.connect_time.remove(&label);
    }

    /// The counters of the event-feed consumer `name` (several consumers of one name share
    /// them). Its series exist at zero from now on.
    pub fn feed_consumer(&self, name: &str) -> FeedCounters {
        let label = ConsumerLabel {
            consumer: name.to_owned(),
        };
        FeedCounters {
            delivered: self.feed_delivered.get_or_create_owned(&label),
            dropped: self.feed_dropped.get_or_create_owned(&label),
        }
    }

    /// Shows the history writer's state in `/metrics`, read from `source` at each scrape (a
    /// collector added like any other, [`Telemetry::add_collector`]).
    pub fn history_source(&self, source: impl Fn() -> HistoryStats + Send + Sync + 'static) {
        self.add_collector(Arc::new(HistorySource(Box::new(source))));
    }

    /// A browser opened a Socket.IO connection.
    pub fn browser_connected(&self) {
        self.browsers.inc();
    }

    /// A browser's Socket.IO connection closed.
    pub fn browser_disconnected(&self) {
        self.browsers.dec();
    }

    /// Browsers connected now.
    pub fn browsers(&self) -> i64 {
        self.browsers.get()
    }

    /// Adds a collector read at each scrape of `/metrics` (the remote-write queues, ...). It
    /// appears in the `/metrics` of servers whose router is built after this call.
    pub fn add_collector(&self, collector: Arc<dyn Collector>) {
        self.extra
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(collector);
    }

    fn register(&self, reg: &mut Registry) {
        for c in self.extra.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            reg.register_collector(Box::new(Shared(c.clone())));
        }
        reg.register(
            "smon_poll_latency_seconds",
            "Time from an agent taking a sample to its arrival in the store, per cluster (agent \
             clock against aggregator clock: skew shifts it; a negative age counts as 0)",
            self.sample_age.clone(),
        );
        reg.register(
            "smon_poll_connect_seconds",
            "Time to connect to an agent and get its host facts (GetInfo), per cluster",
            self.connect_time.clone(),
        );
        reg.register(
            "smon_poll_errors",
            "Polling failures per host (connect, GetInfo, Watch, a silent stream); each one is \
             followed by a backoff and a reconnection attempt",
            self.errors.clone(),
        );
        reg.register(
            "smon_poll_reconnects",
            "Connections to an agent established after the first one",
            self.reconnects.clone(),
        );
        reg.register(
            "smon_browsers_connected",
            "Browsers connected over Socket.IO",
            self.browsers.clone(),
        );
        reg.register(
            "smon_feed_delivered",
            "Events of the aggregator's event feed queued for each consumer",
            self.feed_delivered.clone(),
        );
        reg.register(
            "smon_feed_dropped",
            "Events of the aggregator's event feed a consumer missed because its queue was full \
             (it reads too slowly); the other consumers are not affected",
            self.feed_dropped.clone(),
        );
    }
}

/// A collector shared with whoever added it ([`Telemetry::add_collector`]).
#[derive(Debug)]
struct Shared(Arc<dyn Collector>);

impl Collector for Shared {
    fn encode(&self, enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        self.0.encode(enc)
    }
}

/// The counters of one poller (one agent), owned by its task.
#[derive(Debug)]
pub struct PollMetrics {
    sample_age: Histogram,
    connect_time: Histogram,
    errors: Counter,
    reconnects: Counter,
    connected_before: bool,
}

impl PollMetrics {
    /// Polling failed (and the poller will back off and reconnect).
    pub fn failed(&self) {
        self.errors.inc();
    }

    /// A connection (connect + GetInfo) succeeded after `took`.
    pub fn connected(&mut self, took: Duration) {
        self.connect_time.observe(took.as_secs_f64());
        if self.connected_before {
            self.reconnects.inc();
        }
        self.connected_before = true;
    }

    /// A sample taken at `sample_unix_ms` (agent clock) reached the store at `now_ms`.
    pub fn sample(&self, sample_unix_ms: u64, now_ms: u64) {
        self.sample_age
            .observe(now_ms.saturating_sub(sample_unix_ms) as f64 / 1000.0);
    }
}

/// The `/metrics` registry: the telemetry counters and a collector over the store.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// The exposition of `store` and `telemetry` for a daemon in `mode` (`app` or `node`).
    pub fn new(store: Arc<Mutex<ClusterStore>>, telemetry: &Telemetry, mode: &str) -> Self {
        Self::with_clock(store, telemetry, mode, crate::clock::now_ms)
    }

    fn with_clock(
        store: Arc<Mutex<ClusterStore>>,
        telemetry: &Telemetry,
        mode: &str,
        clock: fn() -> u64,
    ) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "smon_build",
            "Version and mode (app: aggregator, node: agent) of the daemon serving these metrics",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("mode", mode.to_owned()),
            ]),
        );
        telemetry.register(&mut registry);
        registry.register_collector(Box::new(HostCollector { store, clock }));
        Self { registry }
    }

    /// The OpenMetrics text, `# EOF` included.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Reads the store on each scrape.
#[derive(Debug)]
struct HostCollector {
    store: Arc<Mutex<ClusterStore>>,
    clock: fn() -> u64,
}

impl Collector for HostCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let hosts = {
            let st = self.store.lock().unwrap_or_else(|p| p.into_inner());
            let mut hosts = Vec::new();
            st.for_each_host(|row, info, latest| hosts.push(HostCopy::new(row, info, latest)));
            hosts
        };
        encode_hosts(&hosts, (self.clock)(), &mut enc)
    }
}

/// What a scrape needs of one host, copied under the store lock.
struct HostCopy {
    cluster: String,
    name: String,
    status: Status,
    last_seen_ms: Option<u64>,
    info: Option<HostInfo>,
    latest: Option<Snapshot>,
}

/// `cluster` and `host`.
type HostLabels<'a> = [(&'static str, &'a str); 2];

impl HostCopy {
    fn new(row: &HostRow, info: Option<&HostInfo>, latest: Option<&Snapshot>) -> Self {
        Self {
            cluster: row.cluster.clone(),
            name: row.name.clone(),
            status: row.status,
            last_seen_ms: row.last_seen_ms,
            info: info.cloned(),
            latest: latest.map(summary),
        }
    }

    fn labels(&self) -> HostLabels<'_> {
        [("cluster", &self.cluster), ("host", &self.name)]
    }

    /// The latest sample while it is current (the host is `up`).
    fn live(&self) -> Option<&Snapshot> {
        self.latest.as_ref().filter(|_| self.status == Status::Up)
    }
}

/// A copy of the parts of a sample that are exported: without the process list, per-core
/// values and GPU processes, which the store holds while a browser watches the host.
fn summary(s: &Snapshot) -> Snapshot {
    Snapshot {
        seq: s.seq,
        sample_unix_ms: s.sample_unix_ms,
        collect_us: s.collect_us,
        boot_unix_ms: s.boot_unix_ms,
        uptime_s: s.uptime_s,
        load: s.load,
        cpu: s.cpu.as_ref().map(|c| Cpu {
            total_percent: c.total_percent,
            logical_cores: c.logical_cores,
            frequency_mhz: c.frequency_mhz,
            ..Cpu::default()
        }),
        memory: s.memory,
        disks: s.disks.clone(),
        networks: s.networks.clone(),
        process_count: s.process_count,
        sessions: s.sessions.clone(),
        gpus: s
            .gpus
            .iter()
            .map(|g| Gpu {
                uuid: g.uuid.clone(),
                name: g.name.clone(),
                error: g.error.clone(),
                pci_bus_id: g.pci_bus_id.clone(),
                throttle_reasons: g.throttle_reasons.clone(),
                processes_error: String::new(),
                processes: Vec::new(),
                mig_instances: Vec::new(),
                ..*g
            })
            .collect(),
        temperatures: s.temperatures.clone(),
        errors: s.errors.clone(),
        gpus_unix_ms: s.gpus_unix_ms,
        // The top by CPU, whatever the store holds (all of them while a browser watches):
        // the label sets stay bounded per host.
        containers: s.containers.as_ref().map(|c| c.for_parts(&Parts::SUMMARY)),
        ..Snapshot::default()
    }
}

/// How many containers per host have series (the busiest by CPU, as a summary carries them):
/// a host running hundreds of short-lived containers must not flood the scraper with series.
pub const CONTAINERS_TOP: usize = Containers::SUMMARY_TOP;

/// Writes one gauge family: the descriptor, then a sample per item; nothing at all when no item
/// has a value.
fn gauge<L: EncodeLabelSet, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

/// Writes one counter family; `name` is without the `_total` the encoder appends.
fn counter<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

fn flag(b: bool) -> u32 {
    u32::from(b)
}

fn encode_hosts(hosts: &[HostCopy], now_ms: u64, enc: &mut DescriptorEncoder) -> fmt::Result {
    encode_states(hosts, now_ms, enc)?;
    encode_system(hosts, enc)?;
    encode_disks(hosts, enc)?;
    encode_networks(hosts, enc)?;
    encode_gpus(hosts, enc)?;
    encode_containers(hosts, enc)?;
    encode_temperatures(hosts, enc)
}

/// Containers and services: their count, then the top [`CONTAINERS_TOP`] by CPU per host.
fn encode_containers(hosts: &[HostCopy], enc: &mut DescriptorEncoder) -> fmt::Result {
    gauge(
        enc,
        "smon_host_containers",
        "Containers and systemd services found in the host's cgroups (all of them; the \
         smon_container_* series cover the busiest few).",
        hosts.iter().filter_map(|h| {
            let c = h.live()?.containers.as_ref()?;
            Some((h.labels(), c.count))
        }),
    )?;
    let items = || {
        hosts.iter().flat_map(|h| {
            h.live()
                .into_iter()
                .flat_map(|s| s.containers.iter())
                .flat_map(move |c| {
                    c.items.iter().take(CONTAINERS_TOP).map(move |x| {
                        let labels = [("container", x.name.as_str()), ("kind", x.kind.as_str())];
                        ((h.labels(), labels), x)
                    })
                })
        })
    };
    let g = |enc: &mut DescriptorEncoder,
             name: &str,
             help: &str,
             f: &dyn Fn(&Container) -> Option<f64>| {
        gauge(
            enc,
            name,
            help,
            items().filter_map(|(l, x)| Some((l, f(x)?))),
        )
    };
    g(
        enc,
        "smon_container_cpu_percent",
        "CPU use in percent of one core (100 = one core busy).",
        &|x| Some(f64::from(x.cpu_percent)),
    )?;
    g(
        enc,
        "smon_container_memory_bytes",
        "Memory in use, the page cache left out.",
        &|x| Some(x.memory_bytes as f64),
    )?;
    g(
        enc,
        "smon_container_memory_limit_bytes",
        "Its memory limit (absent when unlimited).",
        &|x| x.memory_limit_bytes.map(|b| b as f64),
    )?;
    g(
        enc,
        "smon_container_memory_cache_bytes",
        "Page cache charged to it.",
        &|x| Some(x.memory_cache_bytes as f64),
    )?;
    g(
        enc,
        "smon_container_pids",
        "Tasks in it (processes and threads).",
        &|x| Some(f64::from(x.pids)),
    )?;
    g(
        enc,
        "smon_container_io_read_bytes_per_second",
        "Block device bytes read per second.",
        &|x| Some(x.io_read_bytes_per_s as f64),
    )?;
    g(
        enc,
        "smon_container_io_write_bytes_per_second",
        "Block device bytes written per second.",
        &|x| Some(x.io_write_bytes_per_s as f64),
    )?;
    g(
        enc,
        "smon_container_network_receive_bytes_per_second",
        "Bytes received per second over its own network namespace (absent when it shares \
         the host's).",
        &|x| x.net_rx_bytes_per_s.map(|b| b as f64),
    )?;
    g(
        enc,
        "smon_container_network_transmit_bytes_per_second",
        "Bytes sent per second over its own network namespace (absent when it shares the \
         host's).",
        &|x| x.net_tx_bytes_per_s.map(|b| b as f64),
    )
}

/// Host states, hosts by state per cluster, last-seen age and host facts.
fn encode_states(hosts: &[HostCopy], now_ms: u64, enc: &mut DescriptorEncoder) -> fmt::Result {
    let mut clusters: Vec<(&str, [u32; 4])> = Vec::new();
    for h in hosts {
        let i = match clusters.iter().position(|(c, _)| *c == h.cluster) {
            Some(i) => i,
            None => {
                clusters.push((&h.cluster, [0; 4]));
                clusters.len() - 1
            }
        };
        if let (Some((_, counts)), Some(s)) = (
            clusters.get_mut(i),
            STATES.iter().position(|s| *s == h.status),
        ) {
            counts[s] += 1;
        }
    }
    gauge(
        enc,
        "smon_hosts",
        "Configured hosts per cluster and state (pending, up, stale, down).",
        clusters.iter().flat_map(|(c, counts)| {
            STATES
                .iter()
                .zip(counts)
                .map(move |(s, n)| ([("cluster", *c), ("state", s.as_str())], *n))
        }),
    )?;
    gauge(
        enc,
        "smon_host_up",
        "1 while samples of the host arrive (state up), else 0.",
        hosts
            .iter()
            .map(|h| (h.labels(), flag(h.status == Status::Up))),
    )?;
    gauge(
        enc,
        "smon_host_state",
        "The host's state, one-hot: pending (never reached), up, stale (no sample for a few \
         intervals), down (unreachable or no sample for many intervals).",
        hosts.iter().flat_map(|h| {
            STATES
                .iter()
                .map(move |s| ((h.labels(), [("state", s.as_str())]), flag(h.status == *s)))
        }),
    )?;
    gauge(
        enc,
        "smon_host_last_seen_age_seconds",
        "Seconds since the host's last sample arrived (server clock); absent before the first.",
        hosts.iter().filter_map(|h| {
            let seen = h.last_seen_ms?;
            Some((h.labels(), now_ms.saturating_sub(seen) as f64 / 1000.0))
        }),
    )?;
    let facts: Vec<_> = hosts
        .iter()
        .filter_map(|h| {
            let i = h.info.as_ref()?;
            let os = format!("{} {}", i.os_name, i.os_version);
            Some((
                h.labels(),
                [
                    ("os", os.trim().to_owned()),
                    ("kernel", i.kernel_version.clone()),
                    ("arch", i.arch.clone()),
                    ("agent_version", i.agent_version.clone()),
                    ("cpu_brand", i.cpu_brand.clone()),
                    ("gpu_source", i.gpu_source.clone()),
                    ("gpu_driver", i.gpu_driver_version.clone()),
                ],
            ))
        })
        .collect();
    if !facts.is_empty() {
        let mut m = enc.encode_descriptor(
            "smon_host",
            "Static facts of the host and its agent.",
            None,
            MetricType::Info,
        )?;
        for labels in &facts {
            m.encode_info(labels)?;
        }
    }
    Ok(())
}

/// Uptime, load, CPU, memory, processes, users and the agent's collection.
fn encode_system(hosts: &[HostCopy], enc: &mut DescriptorEncoder) -> fmt::Result {
    let live = || {
        hosts
            .iter()
            .filter_map(|h| Some((h.labels(), h.live()?, h)))
    };
    gauge(
        enc,
        "smon_host_uptime_seconds",
        "Seconds since the host booted.",
        live().map(|(l, s, _)| (l, s.uptime_s)),
    )?;
    gauge(
        enc,
        "smon_host_boot_time_seconds",
        "When the host booted, Unix time in seconds.",
        live().map(|(l, s, _)| (l, s.boot_unix_ms as f64 / 1000.0)),
    )?;
    gauge(
        enc,
        "smon_agent_collect_duration_seconds",
        "How long the agent took to collect the latest sample.",
        live().map(|(l, s, _)| (l, s.collect_us as f64 / 1e6)),
    )?;
    gauge(
        enc,
        "smon_agent_collect_errors",
        "Collectors that failed in the latest sample (the reasons are in the snapshot's errors).",
        live().map(|(l, s, _)| (l, s.errors.len())),
    )?;
    type LoadPick = fn(&smon_proto::LoadAverage) -> f64;
    let load: [(&str, &str, LoadPick); 3] = [
        ("smon_load1", "Load average over 1 minute.", |l| l.one),
        ("smon_load5", "Load average over 5 minutes.", |l| l.five),
        ("smon_load15", "Load average over 15 minutes.", |l| {
            l.fifteen
        }),
    ];
    for (name, help, pick) in load {
        gauge(
            enc,
            name,
            help,
            live().filter_map(|(l, s, _)| Some((l, pick(s.load.as_ref()?)))),
        )?;
    }
    gauge(
        enc,
        "smon_cpu_percent",
        "Utilisation of all logical CPUs together, 0-100.",
        live().filter_map(|(l, s, _)| Some((l, s.cpu.as_ref()?.total_percent))),
    )?;
    gauge(
        enc,
        "smon_cpu_cores",
        "Logical CPUs (hardware threads).",
        live().filter_map(|(l, s, _)| Some((l, s.cpu.as_ref()?.logical_cores))),
    )?;
    gauge(
        enc,
        "smon_cpu_physical_cores",
        "Physical CPU cores, when the host reports them.",
        live().filter_map(|(l, _, h)| Some((l, h.info.as_ref()?.cpu_physical_cores?))),
    )?;
    gauge(
        enc,
        "smon_cpu_frequency_hertz",
        "Current frequency of the first CPU, when known.",
        live().filter_map(|(l, s, _)| {
            let mhz = s.cpu.as_ref()?.frequency_mhz;
            (mhz > 0).then_some((l, mhz.saturating_mul(1_000_000)))
        }),
    )?;
    type MemPick = fn(&smon_proto::Memory) -> u64;
    let memory: [(&str, &str, MemPick); 5] = [
        ("smon_memory_total_bytes", "Total memory.", |m| {
            m.total_bytes
        }),
        (
            "smon_memory_used_bytes",
            "Memory in use (total minus available).",
            |m| m.used_bytes,
        ),
        (
            "smon_memory_available_bytes",
            "Memory available for new work without swapping (MemAvailable).",
            |m| m.available_bytes,
        ),
        ("smon_swap_total_bytes", "Total swap.", |m| {
            m.swap_total_bytes
        }),
        ("smon_swap_used_bytes", "Swap in use.", |m| {
            m.swap_used_bytes
        }),
    ];
    for (name, help, pick) in memory {
        gauge(
            enc,
            name,
            help,
            live().filter_map(|(l, s, _)| Some((l, pick(s.memory.as_ref()?)))),
        )?;
    }
    gauge(
        enc,
        "smon_processes",
        "Processes on the host.",
        live().map(|(l, s, _)| (l, s.process_count)),
    )?;
    gauge(
        enc,
        "smon_user_sessions",
        "Logged-in user sessions (utmp).",
        live().map(|(l, s, _)| (l, s.sessions.len())),
    )
}

/// Mounted filesystems.
fn encode_disks(hosts: &[HostCopy], enc: &mut DescriptorEncoder) -> fmt::Result {
    let disks = || {
        hosts.iter().flat_map(|h| {
            h.live().into_iter().flat_map(move |s| {
                s.disks.iter().map(move |d| {
                    let labels = [
                        ("device", d.device.as_str()),
                        ("mount", d.mount_point.as_str()),
                        ("fs_type", d.fs_type.as_str()),
                    ];
                    ((h.labels(), labels), d)
                })
            })
        })
    };
    gauge(
        enc,
        "smon_disk_total_bytes",
        "Size of the filesystem.",
        disks().map(|(l, d)| (l, d.total_bytes)),
    )?;
    gauge(
        enc,
        "smon_disk_used_bytes",
        "Space in use (total minus free, as df counts it).",
        disks().map(|(l, d)| (l, d.used_bytes)),
    )?;
    gauge(
        enc,
        "smon_disk_available_bytes",
        "Space available to unprivileged users.",
        disks().map(|(l, d)| (l, d.available_bytes)),
    )?;
    gauge(
        enc,
        "smon_disk_used_percent",
        "used / (used + available), 0-100, as df shows it.",
        disks().map(|(l, d)| (l, d.used_percent)),
    )?;
    gauge(
        enc,
        "smon_disk_read_bytes_per_second",
        "Bytes read from the device per second (absent without I/O counters, e.g. NFS).",
        disks().filter_map(|(l, d)| Some((l, d.read_bytes_per_s?))),
    )?;
    gauge(
        enc,
        "smon_disk_write_bytes_per_second",
        "Bytes written to the device per second (absent without I/O counters, e.g. NFS).",
        disks().filter_map(|(l, d)| Some((l, d.write_bytes_per_s?))),
    )?;
    gauge(
        enc,
        "smon_disk_read_only",
        "1 when the filesystem is mounted read-only.",
        disks().map(|(l, d)| (l, flag(d.read_only))),
    )?;
    gauge(
        enc,
        "smon_disk_unresponsive",
        "1 when the filesystem did not answer in time (sizes are then the last known ones).",
        disks().map(|(l, d)| (l, flag(d.unresponsive))),
    )
}

/// Network interfaces.
fn encode_networks(hosts: &[HostCopy], enc: &mut DescriptorEncoder) -> fmt::Result {
    let nets = || {
        hosts.iter().flat_map(|h| {
            h.live().into_iter().flat_map(move |s| {
                s.networks
                    .iter()
                    .map(move |n| ((h.labels(), [("interface", n.name.as_str())]), n))
            })
        })
    };
    gauge(
        enc,
        "smon_network_receive_bytes_per_second",
        "Bytes received per second over the last interval.",
        nets().map(|(l, n)| (l, n.rx_bytes_per_s)),
    )?;
    gauge(
        enc,
        "smon_network_transmit_bytes_per_second",
        "Bytes sent per second over the last interval.",
        nets().map(|(l, n)| (l, n.tx_bytes_per_s)),
    )?;
    counter(
        enc,
        "smon_network_receive_bytes",
        "Bytes received since the interface came up.",
        nets().map(|(l, n)| (l, n.rx_total_bytes)),
    )?;
    counter(
        enc,
        "smon_network_transmit_bytes",
        "Bytes sent since the interface came up.",
        nets().map(|(l, n)| (l, n.tx_total_bytes)),
    )
}

/// NVIDIA GPUs.
fn encode_gpus(hosts: &[HostCopy], enc: &mut DescriptorEncoder) -> fmt::Result {
    let gpus = || {
        hosts.iter().flat_map(|h| {
            h.live().into_iter().flat_map(move |s| {
                s.gpus.iter().map(move |g| {
                    let labels = (
                        [("gpu", g.index.to_string())],
                        [("gpu_name", g.name.as_str()), ("uuid", g.uuid.as_str())],
                    );
                    ((h.labels(), labels), g)
                })
            })
        })
    };
    type Pick = fn(&Gpu) -> Option<u32>;
    let percent: [(&str, &str, Pick); 4] = [
        (
            "smon_gpu_utilization_percent",
            "GPU utilisation over the last sample period, 0-100.",
            |g| g.utilization_percent,
        ),
        (
            "smon_gpu_memory_utilization_percent",
            "Memory controller utilisation, 0-100.",
            |g| g.memory_utilization_percent,
        ),
        (
            "smon_gpu_fan_percent",
            "Fan speed of the first fan, 0-100 (absent on passively cooled cards).",
            |g| g.fan_percent,
        ),
        (
            "smon_gpu_temperature_celsius",
            "GPU core temperature.",
            |g| g.temperature_celsius,
        ),
    ];
    for (name, help, pick) in percent {
        gauge(
            enc,
            name,
            help,
            gpus().filter_map(|(l, g)| Some((l, pick(g)?))),
        )?;
    }
    gauge(
        enc,
        "smon_gpu_memory_used_bytes",
        "GPU memory in use.",
        gpus().filter_map(|(l, g)| Some((l, g.memory_used_bytes?))),
    )?;
    gauge(
        enc,
        "smon_gpu_memory_total_bytes",
        "Total GPU memory.",
        gpus().filter_map(|(l, g)| Some((l, g.memory_total_bytes?))),
    )?;
    gauge(
        enc,
        "smon_gpu_power_watts",
        "Power draw.",
        gpus().filter_map(|(l, g)| Some((l, f64::from(g.power_mw?) / 1000.0))),
    )?;
    gauge(
        enc,
        "smon_gpu_power_limit_watts",
        "Enforced power limit.",
        gpus().filter_map(|(l, g)| Some((l, f64::from(g.power_limit_mw?) / 1000.0))),
    )?;
    gauge(
        enc,
        "smon_gpu_performance_state",
        "Performance state: 0 (P0, highest) to 15 (P15, lowest).",
        gpus().filter_map(|(l, g)| Some((l, g.performance_state?))),
    )?;
    encode_gpu_health(hosts, enc)
}

/// The throttle reasons a GPU can report (`Gpu.throttle_reasons`): the `reason` label takes
/// only these values.
const THROTTLE_REASONS: [&str; 9] = [
    "gpu_idle",
    "applications_clocks",
    "sw_power_cap",
    "hw_slowdown",
    "sync_boost",
    "sw_thermal",
    "hw_thermal",
    "hw_power_brake",
    "display_clocks",
];

/// GPU health: SM clock, memory temperature, ECC errors, row remapping, throttle reasons,
/// critical Xid errors, whether the GPU was read in full, and the age of the GPU reading.
/// Labels stay bounded: the GPU's own (`gpu`, `gpu_name`, `uuid`) and `reason` from
/// [`THROTTLE_REASONS`].
fn encode_gpu_health(hosts: &[HostCopy], enc: &mut DescriptorEncoder) -> fmt::Result {
    let gpus = || {
        hosts.iter().flat_map(|h| {
            h.live().into_iter().flat_map(move |s| {
                s.gpus.iter().map(move |g| {
                    let labels = (
                        [("gpu", g.index.to_string())],
                        [("gpu_name", g.name.as_str()), ("uuid", g.uuid.as_str())],
                    );
                    ((h.labels(), labels), g)
                })
            })
        })
    };
    gauge(
        enc,
        "smon_gpu_sm_clock_hertz",
        "Current SM clock.",
        gpus().filter_map(|(l, g)| Some((l, u64::from(g.sm_clock_mhz?) * 1_000_000))),
    )?;
    gauge(
        enc,
        "smon_gpu_memory_temperature_celsius",
        "Memory (HBM) temperature.",
        gpus().filter_map(|(l, g)| Some((l, g.memory_temperature_celsius?))),
    )?;
    counter(
        enc,
        "smon_gpu_ecc_corrected_errors",
        "Corrected ECC errors since the driver loaded (volatile count; resets with the driver).",
        gpus().filter_map(|(l, g)| Some((l, g.ecc_corrected_errors?))),
    )?;
    counter(
        enc,
        "smon_gpu_ecc_uncorrected_errors",
        "Uncorrected ECC errors since the driver loaded (volatile count; resets with the driver).",
        gpus().filter_map(|(l, g)| Some((l, g.ecc_uncorrected_errors?))),
    )?;
    gauge(
        enc,
        "smon_gpu_remapped_rows_correctable",
        "Memory rows remapped after correctable errors.",
        gpus().filter_map(|(l, g)| Some((l, g.remapped_rows_correctable?))),
    )?;
    gauge(
        enc,
        "smon_gpu_remapped_rows_uncorrectable",
        "Memory rows remapped after uncorrectable errors.",
        gpus().filter_map(|(l, g)| Some((l, g.remapped_rows_uncorrectable?))),
    )?;
    gauge(
        enc,
        "smon_gpu_remapping_pending",
        "1 when a row remapping waits for a GPU reset.",
        gpus().filter_map(|(l, g)| Some((l, flag(g.remapping_pending?)))),
    )?;
    gauge(
        enc,
        "smon_gpu_remapping_failed",
        "1 when a row remapping failed (the GPU needs service).",
        gpus().filter_map(|(l, g)| Some((l, flag(g.remapping_failed?)))),
    )?;
    gauge(
        enc,
        "smon_gpu_throttle_reason",
        "1 while the clocks are held down for this reason, 0 otherwise (only for GPUs whose reasons were read).",
        gpus()
            .filter(|(_, g)| g.throttle_read())
            .flat_map(|(l, g)| {
                THROTTLE_REASONS.into_iter().map(move |r| {
                    let held = g.throttle_reasons.iter().any(|x| x == r);
                    ((l.clone(), [("reason", r)]), flag(held))
                })
            }),
    )?;
    counter(
        enc,
        "smon_gpu_xid_errors",
        "Critical Xid errors the driver reported since the agent began watching (absent when not watched).",
        gpus().filter_map(|(l, g)| Some((l, g.xid_errors?))),
    )?;
    gauge(
        enc,
        "smon_gpu_last_xid",
        "Code of the last critical Xid error (79: fallen off the bus, 48: double-bit ECC; 999: not said).",
        gpus().filter_map(|(l, g)| Some((l, g.last_xid?))),
    )?;
    gauge(
        enc,
        "smon_gpu_last_xid_timestamp_seconds",
        "When the agent saw the last critical Xid error, seconds since the epoch.",
        gpus().filter_map(|(l, g)| Some((l, g.last_xid_unix_ms? as f64 / 1000.0))),
    )?;
    gauge(
        enc,
        "smon_gpu_read_error",
        "1 when the GPU could not be read in full (its error is in the snapshot), 0 otherwise.",
        gpus().map(|(l, g)| (l, flag(!g.error.is_empty()))),
    )?;
    gauge(
        enc,
        "smon_gpu_reading_age_seconds",
        "Age of the GPU reading in the host's sample (GPUs are read on their own thread; a stuck NVML shows as a growing age).",
        hosts.iter().filter_map(|h| {
            let s = h.live()?;
            if s.gpus.is_empty() || s.gpus_unix_ms == 0 {
                return None;
            }
            let age = s.sample_unix_ms.saturating_sub(s.gpus_unix_ms);
            Some((h.labels(), age as f64 / 1000.0))
        }),
    )
}

/// Temperature sensors.
fn encode_temperatures(hosts: &[HostCopy], enc: &mut DescriptorEncoder) -> fmt::Result {
    let temps = || {
        hosts.iter().flat_map(|h| {
            h.live().into_iter().flat_map(move |s| {
                s.temperatures
                    .iter()
                    .map(move |t| ((h.labels(), [("sensor", t.label.as_str())]), t))
            })
        })
    };
    gauge(
        enc,
        "smon_temperature_celsius",
        "Current temperature of the sensor.",
        temps().filter_map(|(l, t)| Some((l, t.celsius?))),
    )?;
    gauge(
        enc,
        "smon_temperature_max_celsius",
        "Highest temperature of the sensor since the agent started.",
        temps().filter_map(|(l, t)| Some((l, t.max_celsius?))),
    )?;
    gauge(
        enc,
        "smon_temperature_critical_celsius",
        "Critical temperature of the sensor, set by the hardware.",
        temps().filter_map(|(l, t)| Some((l, t.critical_celsius?))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{HostSpec, StoreConfig};
    use smon_proto::{Disk, LoadAverage, Memory, NetInterface, Process, Session, Temperature};

    fn spec(cluster: &str, name: &str) -> HostSpec {
        HostSpec {
            cluster: cluster.into(),
            name: name.into(),
            address: "127.0.0.1:1".into(),
            tags: vec![],
        }
    }

    fn gpu(index: u32, fan: Option<u32>) -> Gpu {
        Gpu {
            index,
            uuid: format!("GPU-{index}"),
            name: "NVIDIA H100".into(),
            utilization_percent: Some(87),
            memory_utilization_percent: Some(40),
            memory_used_bytes: Some(1 << 30),
            memory_total_bytes: Some(80 << 30),
            fan_percent: fan,
            temperature_celsius: Some(61),
            power_mw: Some(250_500),
            power_limit_mw: Some(700_000),
            performance_state: Some(0),
            processes: vec![],
            ..Default::default()
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            seq: 7,
            sample_unix_ms: 900,
            collect_us: 1_500,
            hostname: "n1".into(),
            boot_unix_ms: 1_700_000_000_000,
            uptime_s: 3_600,
            load: Some(LoadAverage {
                one: 0.5,
                five: 0.25,
                fifteen: 0.125,
            }),
            cpu: Some(Cpu {
                total_percent: 12.5,
                logical_cores: 8,
                frequency_mhz: 2_400,
                per_core_percent: vec![1.0; 8],
                per_core_frequency_mhz: vec![2_400; 8],
            }),
            memory: Some(Memory {
                total_bytes: 16 << 30,
                used_bytes: 4 << 30,
                available_bytes: 12 << 30,
                used_percent: 25.0,
                swap_total_bytes: 2 << 30,
                swap_used_bytes: 0,
                swap_used_percent: 0.0,
            }),
            disks: vec![
                Disk {
                    device: "/dev/nvme0n1p2".into(),
                    fs_type: "ext4".into(),
                    mount_point: "/".into(),
                    total_bytes: 1000,
                    used_bytes: 400,
                    available_bytes: 500,
                    used_percent: 44.4,
                    read_bytes_per_s: Some(4096),
                    write_bytes_per_s: Some(8192),
                    unresponsive: false,
                    read_only: false,
                },
                Disk {
                    device: "server:/export".into(),
                    fs_type: "nfs4".into(),
                    mount_point: "/mnt/nfs".into(),
                    total_bytes: 2000,
                    used_bytes: 1000,
                    available_bytes: 1000,
                    used_percent: 50.0,
                    read_bytes_per_s: None,
                    write_bytes_per_s: None,
                    unresponsive: true,
                    read_only: true,
                },
            ],
            networks: vec![NetInterface {
                name: "eth0".into(),
                rx_bytes_per_s: 100,
                tx_bytes_per_s: 50,
                rx_total_bytes: 1_000_000,
                tx_total_bytes: 500_000,
                mac: "52:54:00:12:34:56".into(),
                addresses: vec!["10.0.0.5/24".into()],
            }],
            process_count: 300,
            processes: vec![Process {
                pid: 1,
                name: "init".into(),
                ..Default::default()
            }],
            sessions: vec![
                Session {
                    user: "ann".into(),
                    ..Default::default()
                },
                Session {
                    user: "bob".into(),
                    ..Default::default()
                },
            ],
            gpus: vec![gpu(0, None), gpu(1, Some(40))],
            temperatures: vec![Temperature {
                label: "coretemp Package id 0".into(),
                celsius: Some(55.0),
                max_celsius: Some(70.0),
                critical_celsius: None,
            }],
            parts: None,
            errors: vec!["disks: /mnt/nfs: statvfs timed out".into()],
            processes_unix_ms: 900,
            ..Default::default()
        }
    }

    fn info() -> HostInfo {
        HostInfo {
            hostname: "n1".into(),
            os_name: "Debian GNU/Linux".into(),
            os_version: "12".into(),
            kernel_version: "6.1.0-18-amd64".into(),
            arch: "x86_64".into(),
            cpu_brand: "AMD EPYC 7B13".into(),
            cpu_logical_cores: 8,
            cpu_physical_cores: Some(4),
            agent_version: "0.1.0".into(),
            gpu_source: "fake".into(),
            gpu_driver_version: "550.54.15".into(),
            ..Default::default()
        }
    }

    /// `lab:n1` up with everything, `lab:n2` pending, `gpu:g1` down after one sample.
    fn store() -> Arc<Mutex<ClusterStore>> {
        let mut st = ClusterStore::new(
            vec![spec("lab", "n1"), spec("lab", "n2"), spec("gpu", "g1")],
            StoreConfig::for_interval(1000),
            0,
        );
        st.set_info("lab:n1", info());
        assert!(st.apply("lab:n1", snapshot(), 1_000));
        assert!(st.apply("gpu:g1", snapshot(), 1_000));
        st.mark_down("gpu:g1", "connection refused", 2_000);
        Arc::new(Mutex::new(st))
    }

    fn render(telemetry: &Telemetry) -> String {
        Metrics::with_clock(store(), telemetry, "app", || 3_500)
            .render()
            .expect("render")
    }

    /// The value of the sample line that starts with `series` (name and labels), if any.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().expect("a number"))
    }

    const N1: &str = r#"cluster="lab",host="n1""#;

    #[test]
    fn a_host_is_exported_with_units_and_labels() {
        let t = render(&Telemetry::default());
        assert!(t.ends_with("# EOF\n"), "{t}");
        let v = |s: &str| value(&t, s).unwrap_or_else(|| panic!("no sample {s} in\n{t}"));
        assert_eq!(v(&format!("smon_cpu_percent{{{N1}}}")), 12.5);
        assert_eq!(v(&format!("smon_cpu_cores{{{N1}}}")), 8.0);
        assert_eq!(v(&format!("smon_cpu_physical_cores{{{N1}}}")), 4.0);
        assert_eq!(v(&format!("smon_cpu_frequency_hertz{{{N1}}}")), 2.4e9);
        assert_eq!(v(&format!("smon_load15{{{N1}}}")), 0.125);
        assert_eq!(
            v(&format!("smon_memory_available_bytes{{{N1}}}")),
            (12u64 << 30) as f64
        );
        assert_eq!(v(&format!("smon_swap_used_bytes{{{N1}}}")), 0.0);
        assert_eq!(v(&format!("smon_host_boot_time_seconds{{{N1}}}")), 1.7e9);
        assert_eq!(
            v(&format!("smon_agent_collect_duration_seconds{{{N1}}}")),
            0.0015
        );
        assert_eq!(v(&format!("smon_agent_collect_errors{{{N1}}}")), 1.0);
        assert_eq!(v(&format!("smon_processes{{{N1}}}")), 300.0);
        assert_eq!(v(&format!("smon_user_sessions{{{N1}}}")), 2.0);
        assert_eq!(v(&format!("smon_host_last_seen_age_seconds{{{N1}}}")), 2.5);
        let root = r#"device="/dev/nvme0n1p2",mount="/",fs_type="ext4""#;
        assert_eq!(
            v(&format!("smon_disk_read_bytes_per_second{{{N1},{root}}}")),
            4096.0
        );
        let nfs = r#"device="server:/export",mount="/mnt/nfs",fs_type="nfs4""#;
        assert_eq!(v(&format!("smon_disk_unresponsive{{{N1},{nfs}}}")), 1.0);
        assert_eq!(v(&format!("smon_disk_read_only{{{N1},{nfs}}}")), 1.0);
        let eth = r#"interface="eth0""#;
        assert_eq!(
            v(&format!("smon_network_receive_bytes_total{{{N1},{eth}}}")),
            1e6
        );
        assert_eq!(
            v(&format!(
                "smon_network_transmit_bytes_per_second{{{N1},{eth}}}"
            )),
            50.0
        );
        assert!(
            t.contains("# TYPE smon_network_receive_bytes counter\n"),
            "{t}"
        );
        let g1 = r#"gpu="1",gpu_name="NVIDIA H100",uuid="GPU-1""#;
        assert_eq!(v(&format!("smon_gpu_fan_percent{{{N1},{g1}}}")), 40.0);
        assert_eq!(v(&format!("smon_gpu_power_watts{{{N1},{g1}}}")), 250.5);
        assert_eq!(
            v(&format!("smon_gpu_power_limit_watts{{{N1},{g1}}}")),
            700.0
        );
        assert_eq!(v(&format!("smon_gpu_performance_state{{{N1},{g1}}}")), 0.0);
        let sensor = r#"sensor="coretemp Package id 0""#;
        assert_eq!(
            v(&format!("smon_temperature_max_celsius{{{N1},{sensor}}}")),
            70.0
        );
        assert!(t.contains(&format!(
            r#"smon_host_info{{{N1},os="Debian GNU/Linux 12",kernel="6.1.0-18-amd64",arch="x86_64",agent_version="0.1.0",cpu_brand="AMD EPYC 7B13",gpu_source="fake",gpu_driver="550.54.15"}} 1"#
        )), "{t}");
        assert!(t.contains("# TYPE smon_host info\n"), "{t}");
        assert!(
            t.contains(r#"smon_build_info{version=""#) && t.contains(r#"mode="app"} 1"#),
            "{t}"
        );
    }

    #[test]
    fn gpu_health_is_exported_with_bounded_labels() {
        let mut snap = snapshot();
        snap.gpus_unix_ms = 400;
        snap.gpus = vec![
            Gpu {
                error: "device: GPU is lost (fallen off the bus?): it needs a reset or a reboot"
                    .into(),
                ..gpu(0, None)
            },
            Gpu {
                sm_clock_mhz: Some(1_980),
                memory_temperature_celsius: Some(71),
                ecc_corrected_errors: Some(12),
                ecc_uncorrected_errors: Some(0),
                remapped_rows_correctable: Some(3),
                remapped_rows_uncorrectable: Some(1),
                remapping_pending: Some(true),
                remapping_failed: Some(false),
                throttle_reasons: vec!["sw_power_cap".into(), "hw_thermal".into()],
                xid_errors: Some(2),
                last_xid: Some(79),
                last_xid_unix_ms: Some(1_700_000_000_500),
                ..gpu(1, Some(40))
            },
        ];
        let mut st = ClusterStore::new(vec![spec("lab", "n1")], StoreConfig::for_interval(1000), 0);
        assert!(st.apply("lab:n1", snap, 1_000));
        let t = Metrics::with_clock(
            Arc::new(Mutex::new(st)),
            &Telemetry::default(),
            "app",
            || 1_500,
        )
        .render()
        .expect("render");
        let v = |s: &str| value(&t, s).unwrap_or_else(|| panic!("no sample {s} in\n{t}"));
        let g0 = r#"gpu="0",gpu_name="NVIDIA H100",uuid="GPU-0""#;
        let g1 = r#"gpu="1",gpu_name="NVIDIA H100",uuid="GPU-1""#;
        assert_eq!(v(&format!("smon_gpu_sm_clock_hertz{{{N1},{g1}}}")), 1.98e9);
        assert_eq!(
            v(&format!("smon_gpu_memory_temperature_celsius{{{N1},{g1}}}")),
            71.0
        );
        assert_eq!(
            v(&format!("smon_gpu_ecc_corrected_errors_total{{{N1},{g1}}}")),
            12.0
        );
        assert_eq!(
            v(&format!(
                "smon_gpu_ecc_uncorrected_errors_total{{{N1},{g1}}}"
            )),
            0.0
        );
        assert!(t.contains("# TYPE smon_gpu_ecc_corrected_errors counter\n"));
        assert_eq!(
            v(&format!("smon_gpu_remapped_rows_correctable{{{N1},{g1}}}")),
            3.0
        );
        assert_eq!(
            v(&format!(
                "smon_gpu_remapped_rows_uncorrectable{{{N1},{g1}}}"
            )),
            1.0
        );
        assert_eq!(v(&format!("smon_gpu_remapping_pending{{{N1},{g1}}}")), 1.0);
        assert_eq!(v(&format!("smon_gpu_remapping_failed{{{N1},{g1}}}")), 0.0);
        // Every known reason, 1 for those held; none for a GPU whose reasons were not read.
        let reason = |g: &str, r: &str| {
            value(
                &t,
                &format!(r#"smon_gpu_throttle_reason{{{N1},{g},reason="{r}"}}"#),
            )
        };
        assert_eq!(reason(g1, "sw_power_cap"), Some(1.0));
        assert_eq!(reason(g1, "hw_thermal"), Some(1.0));
        assert_eq!(reason(g1, "gpu_idle"), Some(0.0));
        assert_eq!(
            t.matches(&format!("smon_gpu_throttle_reason{{{N1},{g1},"))
                .count(),
            THROTTLE_REASONS.len()
        );
        assert_eq!(
            reason(g0, "gpu_idle"),
            None,
            "a lost GPU's reasons are unknown"
        );
        assert_eq!(v(&format!("smon_gpu_xid_errors_total{{{N1},{g1}}}")), 2.0);
        assert_eq!(v(&format!("smon_gpu_last_xid{{{N1},{g1}}}")), 79.0);
        assert_eq!(
            v(&format!("smon_gpu_last_xid_timestamp_seconds{{{N1},{g1}}}")),
            1_700_000_000.5
        );
        assert!(
            !t.contains(&format!("smon_gpu_xid_errors_total{{{N1},{g0}}}")),
            "not watched: no sample"
        );
        assert_eq!(v(&format!("smon_gpu_read_error{{{N1},{g0}}}")), 1.0);
        assert_eq!(v(&format!("smon_gpu_read_error{{{N1},{g1}}}")), 0.0);
        assert_eq!(v(&format!("smon_gpu_reading_age_seconds{{{N1}}}")), 0.5);
    }

    #[test]
    fn containers_are_exported_for_the_busiest_few_with_a_count() {
        let mut snap = snapshot();
        let items: Vec<Container> = (0..8u32)
            .map(|i| Container {
                id: format!("{i:064x}"),
                name: format!("c{i}"),
                kind: if i == 0 { "systemd" } else { "docker" }.into(),
                cpu_percent: i as f32 * 10.0,
                memory_bytes: u64::from(i) << 20,
                memory_limit_bytes: (i == 7).then_some(1 << 30),
                pids: i,
                net_rx_bytes_per_s: (i == 6).then_some(1_500),
                ..Default::default()
            })
            .collect();
        // As a detail carries them (a browser watches): all 8, in no order.
        snap.containers = Some(Containers {
            count: 8,
            items,
            error: None,
        });
        let mut st = ClusterStore::new(vec![spec("lab", "n1")], StoreConfig::for_interval(1000), 0);
        assert!(st.apply("lab:n1", snap, 1_000));
        let t = Metrics::with_clock(
            Arc::new(Mutex::new(st)),
            &Telemetry::default(),
            "app",
            || 1_500,
        )
        .render()
        .expect("render");
        let v = |s: &str| value(&t, s).unwrap_or_else(|| panic!("no sample {s} in\n{t}"));
        assert_eq!(v(&format!("smon_host_containers{{{N1}}}")), 8.0);
        let c7 = r#"container="c7",kind="docker""#;
        assert_eq!(v(&format!("smon_container_cpu_percent{{{N1},{c7}}}")), 70.0);
        assert_eq!(
            v(&format!("smon_container_memory_bytes{{{N1},{c7}}}")),
            f64::from(7u32 << 20)
        );
        assert_eq!(
            v(&format!("smon_container_memory_limit_bytes{{{N1},{c7}}}")),
            f64::from(1u32 << 30)
        );
        assert_eq!(v(&format!("smon_container_pids{{{N1},{c7}}}")), 7.0);
        let c6 = r#"container="c6",kind="docker""#;
        assert_eq!(
            v(&format!(
                "smon_container_network_receive_bytes_per_second{{{N1},{c6}}}"
            )),
            1_500.0
        );
        // No limit, no namespace of its own: no sample.
        assert_eq!(
            value(
                &t,
                &format!("smon_container_memory_limit_bytes{{{N1},{c6}}}")
            ),
            None
        );
        // Only the top 5 by CPU (c3..c7) have series.
        let names: std::collections::BTreeSet<&str> = t
            .lines()
            .filter(|l| l.starts_with("smon_container_cpu_percent{"))
            .filter_map(|l| l.split("container=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["c3", "c4", "c5", "c6", "c7"]
        );
        assert_eq!(CONTAINERS_TOP, 5);
    }

    #[test]
    fn absent_values_have_no_sample() {
        let t = render(&Telemetry::default());
        let g0 = r#"gpu="0",gpu_name="NVIDIA H100",uuid="GPU-0""#;
        assert!(value(&t, &format!("smon_gpu_utilization_percent{{{N1},{g0}}}")).is_some());
        assert!(
            !t.contains(&format!("smon_gpu_fan_percent{{{N1},{g0}}}")),
            "{t}"
        );
        assert!(
            !t.contains(
                r#"smon_disk_read_bytes_per_second{cluster="lab",host="n1",device="server:/export""#
            ),
            "{t}"
        );
        assert!(
            !t.contains("smon_temperature_critical_celsius"),
            "no sensor has one: {t}"
        );
        // Heavy parts never show: per-core values and processes are not exported.
        assert!(!t.contains("init") && !t.contains("per_core"), "{t}");
    }

    #[test]
    fn states_are_one_hot_and_only_up_hosts_have_samples() {
        let t = render(&Telemetry::default());
        let n2 = r#"cluster="lab",host="n2""#;
        let g1 = r#"cluster="gpu",host="g1""#;
        let v = |s: &str| value(&t, s).unwrap_or_else(|| panic!("no sample {s} in\n{t}"));
        assert_eq!(v(&format!("smon_host_up{{{N1}}}")), 1.0);
        assert_eq!(v(&format!("smon_host_up{{{n2}}}")), 0.0);
        assert_eq!(v(&format!("smon_host_up{{{g1}}}")), 0.0);
        for (host, state) in [(N1, "up"), (n2, "pending"), (g1, "down")] {
            for s in ["pending", "up", "stale", "down"] {
                let want = if s == state { 1.0 } else { 0.0 };
                assert_eq!(v(&format!("smon_host_state{{{host},state=\"{s}\"}}")), want);
            }
        }
        assert_eq!(v(r#"smon_hosts{cluster="lab",state="up"}"#), 1.0);
        assert_eq!(v(r#"smon_hosts{cluster="lab",state="pending"}"#), 1.0);
        assert_eq!(v(r#"smon_hosts{cluster="gpu",state="down"}"#), 1.0);
        assert_eq!(v(r#"smon_hosts{cluster="gpu",state="up"}"#), 0.0);
        // The down host keeps its age but not its last values; the pending one has neither.
        assert_eq!(v(&format!("smon_host_last_seen_age_seconds{{{g1}}}")), 2.5);
        assert!(!t.contains(&format!("smon_cpu_percent{{{g1}}}")), "{t}");
        assert!(!t.contains(&format!("smon_cpu_percent{{{n2}}}")), "{t}");
        assert!(
            !t.contains(&format!("smon_host_last_seen_age_seconds{{{n2}}}")),
            "{t}"
        );
    }

    #[test]
    fn telemetry_counts_polls_and_browsers() {
        let tel = Telemetry::default();
        let mut p = tel.poller("lab", "n1");
        let t = render(&tel);
        assert_eq!(
            value(&t, &format!("smon_poll_errors_total{{{N1}}}")),
            Some(0.0),
            "{t}"
        );
        p.connected(Duration::from_millis(20));
        p.failed();
        p.connected(Duration::from_millis(30));
        p.sample(1_000, 1_040);
        p.sample(2_000, 1_990); // agent clock ahead: counts as 0
        tel.browser_connected();
        tel.browser_connected();
        tel.browser_disconnected();
        assert_eq!(tel.browsers(), 1);
        let t = render(&tel);
        let v = |s: &str| value(&t, s).unwrap_or_else(|| panic!("no sample {s} in\n{t}"));
        assert_eq!(v(&format!("smon_poll_errors_total{{{N1}}}")), 1.0);
        assert_eq!(v(&format!("smon_poll_reconnects_total{{{N1}}}")), 1.0);
        assert_eq!(v(r#"smon_poll_connect_seconds_count{cluster="lab"}"#), 2.0);
        assert_eq!(v(r#"smon_poll_latency_seconds_count{cluster="lab"}"#), 2.0);
        assert_eq!(
            v(r#"smon_poll_latency_seconds_bucket{le="0.005",cluster="lab"}"#),
            1.0
        );
        assert_eq!(
            v(r#"smon_poll_latency_seconds_bucket{le="0.05",cluster="lab"}"#),
            2.0
        );
        assert_eq!(v("smon_browsers_connected"), 1.0);
        assert_eq!(
            value(&t, r#"smon_feed_dropped_total{consumer="history"}"#),
            None
        );
        let c = tel.feed_consumer("history");
        c.delivered();
        assert_eq!(c.dropped(), 0);
        assert_eq!(c.dropped(), 1);
        let t = render(&tel);
        let v = |s: &str| value(&t, s).unwrap_or_else(|| panic!("no sample {s} in\n{t}"));
        assert_eq!(v(r#"smon_feed_delivered_total{consumer="history"}"#), 1.0);
        assert_eq!(v(r#"smon_feed_dropped_total{consumer="history"}"#), 2.0);
    }

    #[test]
    fn history_stats_appear_once_a_source_is_set() {
        let tel = Telemetry::default();
        let t = render(&tel);
        assert!(!t.contains("smon_history"), "{t}");
        tel.history_source(|| HistoryStats {
            queued: 3,
            dropped_total: 5,
            write_errors_total: 2,
            disk_full: true,
        });
        let t = render(&tel);
        let v = |s: &str| value(&t, s).unwrap_or_else(|| panic!("no sample {s} in\n{t}"));
        assert_eq!(v("smon_history_queued"), 3.0);
        assert_eq!(v("smon_history_dropped_total"), 5.0);
        assert_eq!(v("smon_history_write_errors_total"), 2.0);
        assert_eq!(v("smon_history_disk_full"), 1.0);
        assert!(
            !t.contains("smon_history_queued{}"),
            "no empty label set:\n{t}"
        );
    }

    #[test]
    fn a_removed_host_leaves_the_exposition() {
        let tel = Telemetry::default();
        let st = store();
        let m = Metrics::with_clock(st.clone(), &tel, "app", || 3_500);
        let mut p1 = tel.poller("lab", "n1");
        let _p2 = tel.poller("lab", "n2");
        let mut g = tel.poller("gpu", "g1");
        p1.connected(Duration::from_millis(20));
        g.connected(Duration::from_millis(20));
        let t = m.render().expect("render");
        for host in [N1, r#"cluster="gpu",host="g1""#] {
            assert!(t.contains(&format!("smon_host_up{{{host}}}")), "{t}");
            assert!(
                t.contains(&format!("smon_poll_errors_total{{{host}}}")),
                "{t}"
            );
        }
        {
            let mut s = st.lock().expect("lock");
            assert!(s.remove_host("lab:n1"));
            assert!(s.remove_host("gpu:g1"));
        }
        tel.forget_host("lab", "n1");
        tel.forget_host("gpu", "g1");
        tel.forget_cluster("gpu");
        let t = m.render().expect("render");
        assert!(!t.contains(r#"host="n1""#), "{t}");
        assert!(!t.contains(r#"cluster="gpu""#), "{t}");
        let n2 = r#"cluster="lab",host="n2""#;
        assert!(t.contains(&format!("smon_host_up{{{n2}}}")), "{t}");
        assert!(
            t.contains(&format!("smon_poll_errors_total{{{n2}}}")),
            "{t}"
        );
        assert!(
            t.contains(r#"smon_poll_connect_seconds_count{cluster="lab"} 1"#),
            "lab keeps its histograms: {t}"
        );
        // Added again: its series start again, at zero.
        let _again = tel.poller("lab", "n1");
        let t = m.render().expect("render");
        assert_eq!(
            value(&t, &format!("smon_poll_errors_total{{{N1}}}")),
            Some(0.0)
        );
    }

    /// Sample names (`name` of `name{...} value`) in an exposition.
    fn sample_names(text: &str) -> std::collections::BTreeSet<&str> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect()
    }

    /// Every `smon_...` token in `text`.
    fn smon_names(text: &str) -> std::collections::BTreeSet<&str> {
        let mut out = std::collections::BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find("smon_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            out.insert(&tail[..end]);
            rest = &tail[end..];
        }
        out
    }

    /// The Grafana dashboard is valid JSON, uses only metrics that exist, and uses every one.
    #[test]
    fn the_grafana_dashboard_matches_the_exposition() {
        let dashboard = include_str!("../../deploy/grafana/smon.json");
        let json: serde_json::Value = serde_json::from_str(dashboard).expect("valid JSON");
        assert!(json["panels"].as_array().is_some_and(|p| !p.is_empty()));
        let tel = Telemetry::default();
        let mut p = tel.poller("lab", "n1");
        p.connected(Duration::from_millis(20));
        p.sample(1_000, 1_040);
        // n1 again, now with a sensor that has every reading.
        let st = store();
        {
            let mut s = st.lock().expect("lock");
            let mut snap = snapshot();
            snap.temperatures[0].critical_celsius = Some(100.0);
            // And a GPU with every health reading.
            snap.gpus_unix_ms = snap.sample_unix_ms;
            snap.gpus[1] = Gpu {
                sm_clock_mhz: Some(1_980),
                memory_temperature_celsius: Some(71),
                ecc_corrected_errors: Some(1),
                ecc_uncorrected_errors: Some(0),
                remapped_rows_correctable: Some(0),
                remapped_rows_uncorrectable: Some(0),
                remapping_pending: Some(false),
                remapping_failed: Some(false),
                xid_errors: Some(1),
                last_xid: Some(79),
                last_xid_unix_ms: Some(800),
                ..snap.gpus[1].clone()
            };
            s.apply("lab:n1", snap, 1_000);
        }
        let text = Metrics::with_clock(st, &tel, "app", || 3_500)
            .render()
            .expect("render");
        let exposed = sample_names(&text);
        let used = smon_names(dashboard);
        let missing: Vec<_> = used.iter().filter(|n| !exposed.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "the dashboard uses unknown metrics {missing:?}; exposed: {exposed:?}"
        );
        let unused: Vec<_> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .filter(|(name, kind)| {
                let candidates = match *kind {
                    "counter" => vec![format!("{name}_total")],
                    "info" => vec![format!("{name}_info")],
                    "histogram" => ["bucket", "sum", "count"]
                        .iter()
                        .map(|s| format!("{name}_{s}"))
                        .collect(),
                    _ => vec![(*name).to_owned()],
                };
                !candidates.iter().any(|c| used.contains(c.as_str()))
            })
            .map(|(name, _)| name)
            .collect();
        assert!(
            unused.is_empty(),
            "metrics without a dashboard panel: {unused:?}"
        );
    }
}
