//! Prometheus remote write (protocol 1.0: protobuf + snappy) of every sample to one or more
//! time-series engines (VictoriaMetrics, Prometheus, Mimir, Thanos), configured as
//! `storage.remote_write` ([`config`]).
//!
//! One feed consumer turns each host sample into series values once ([`series`]) and appends
//! the result to each receiver's bounded queue ([`queue`]); it never waits on the network, so
//! a slow or dead receiver never holds up the feed (a full queue drops its oldest samples,
//! counted). One sender task per receiver takes batches of up to `max_samples_per_send`
//! (sent when full, or after `batch_wait_ms`), posts them ([`wire`]), and on a connection
//! error, a timeout, a 5xx or a 429 retries the same batch with exponential backoff and jitter
//! until it is accepted, so that nothing is lost or reordered while the receiver is away and
//! the queue holds. A 4xx other than 429 means the receiver will never take that batch (bad
//! or too old samples): it is dropped, counted, and the error kept.
//!
//! The state of each receiver (queued samples, lag = age of the oldest unsent sample, sent,
//! dropped, last error) is in `/metrics` (`smon_remote_write_*{url}`) and, through
//! [`RemoteWrite::stats`], on the admin page.
//!
//! Timestamps are the aggregator's clock when the sample arrived (as a Prometheus scrape
//! stamps its samples), made strictly increasing per host, because receivers refuse a whole
//! request for one out-of-order or duplicate sample: samples a poller publishes back to back
//! in the same millisecond move 1 ms apart; a sample a second or more behind the previous one
//! of its host (the clock went back) is left out and counted as dropped.

pub mod config;
pub mod queue;
pub mod series;
pub mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use reqwest::header;
use smon_api::history::RemoteWriteStats;
use smon_proto::Snapshot;
use smon_web::hub::now_ms;
use smon_web::metrics::Telemetry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::feed::{Body, Feed, Kinds, RegistryChange, Subscription};
use crate::registry::Registry;

pub use config::{RemoteWriteConfig, Target};
use queue::{Batch, Chunk, Queue};
use series::Series;

/// Queue length of the remote-write consumer on the feed (events).
const FEED_QUEUE: usize = 65_536;

/// Most feed events handled per wake-up.
const FEED_BATCH: usize = 512;

/// How long shutdown gives the queues to empty (the whole shutdown has 1.5 s).
const FLUSH_ON_STOP: Duration = Duration::from_millis(500);

/// A host sample less than this behind the previous one is moved just after it rather than
/// left out.
const SAME_INSTANT_MS: i64 = 1000;

/// Most characters of a receiver's answer kept in the last error.
const ANSWER_CHARS: usize = 200;

/// Why remote write could not start.
#[derive(Debug, thiserror::Error)]
#[error("remote write to {url}: cannot set up the HTTP client")]
pub struct StartError {
    /// The receiver.
    pub url: String,
    /// The client's error.
    #[source]
    pub source: reqwest::Error,
}

#[derive(Debug)]
struct State {
    queue: Queue,
    /// Samples of the batch being sent.
    inflight: usize,
    inflight_oldest_ms: Option<i64>,
    sent: u64,
    dropped: u64,
    failed_requests: u64,
    last_error: Option<String>,
    /// Batches refused for good in a row (their warnings are thinned out).
    refusals: u64,
}

#[derive(Debug)]
struct Shared {
    target: Target,
    state: Mutex<State>,
    /// Wakes the sender when a full batch is waiting.
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Held only to move chunks and bump counters; nothing is left half-done by a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, chunk: Arc<Chunk>) {
        let full = {
            let mut st = self.lock();
            let dropped = st.queue.push(chunk);
            if dropped > 0 {
                if st.dropped == 0 || (st.dropped + 1).is_power_of_two() {
                    tracing::warn!(url = %self.target.shown, dropped = st.dropped + dropped as u64, "Remote-write queue full; dropping its oldest samples.");
                }
                st.dropped += dropped as u64;
            }
            st.queue.samples() >= self.target.per_send
        };
        if full {
            self.wake.notify_one();
        }
    }

    fn take(&self) -> Batch {
        let mut st = self.lock();
        let b = st.queue.take(self.target.per_send);
        st.inflight = b.samples;
        st.inflight_oldest_ms = b.oldest_ms();
        b
    }

    fn add_dropped(&self, n: usize) {
        self.lock().dropped += n as u64;
    }

    fn stats(&self, now_ms: u64) -> RemoteWriteStats {
        let st = self.lock();
        let oldest = match (st.inflight_oldest_ms, st.queue.oldest_ms()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        RemoteWriteStats {
            url: self.target.shown.clone(),
            queued: (st.queue.samples() + st.inflight) as u64,
            lag_s: oldest.map_or(0.0, |o| (now_ms as i64 - o).max(0) as f64 / 1000.0),
            sent: st.sent,
            dropped: st.dropped,
            last_error: st.last_error.clone(),
        }
    }

    fn failing(&self) -> (bool, u64) {
        let st = self.lock();
        (st.last_error.is_some(), st.failed_requests)
    }
}

/// The remote-write receivers of a running aggregator (none when not configured): their
/// state for `/metrics` and the admin page. Cheap to clone.
#[derive(Clone, Default)]
pub struct RemoteWrite {
    targets: Arc<[Arc<Shared>]>,
}

impl fmt::Debug for RemoteWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteWrite")
            .field("targets", &self.stats())
            .finish()
    }
}

impl RemoteWrite {
    /// Each receiver's state now, in configuration order.
    pub fn stats(&self) -> Vec<RemoteWriteStats> {
        let now = now_ms();
        self.targets.iter().map(|t| t.stats(now)).collect()
    }
}

impl Collector for RemoteWrite {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        if self.targets.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let rows: Vec<(RemoteWriteStats, bool, u64)> = self
            .targets
            .iter()
            .map(|t| {
                let (failing, failed) = t.failing();
                (t.stats(now), failing, failed)
            })
            .collect();
        let url = |s: &RemoteWriteStats| [("url", s.url.clone())];
        let mut m = enc.encode_descriptor(
            "smon_remote_write_queued_samples",
            "Samples waiting for a remote-write receiver (the batch being sent included)",
            None,
            MetricType::Gauge,
        )?;
        for (s, _, _) in &rows {
            m.encode_family(&url(s))?.encode_gauge(&(s.queued as i64))?;
        }
        let mut m = enc.encode_descriptor(
            "smon_remote_write_lag_seconds",
            "Age of the oldest sample a remote-write receiver has not accepted yet (0 when caught up)",
            None,
            MetricType::Gauge,
        )?;
        for (s, _, _) in &rows {
            m.encode_family(&url(s))?.encode_gauge(&s.lag_s)?;
        }
        let mut m = enc.encode_descriptor(
            "smon_remote_write_failing",
            "1 while the last request to a remote-write receiver failed",
            None,
            MetricType::Gauge,
        )?;
        for (s, failing, _) in &rows {
            m.encode_family(&url(s))?
                .encode_gauge(&i64::from(*failing))?;
        }
        counter(
            &mut enc,
            "smon_remote_write_sent_samples",
            "Samples a remote-write receiver accepted",
            rows.iter().map(|r| (url(&r.0), r.0.sent)),
        )?;
        counter(
            &mut enc,
            "smon_remote_write_dropped_samples",
            "Samples never delivered to a remote-write receiver: its queue was full, it refused them for good (4xx), or they were out of order",
            rows.iter().map(|r| (url(&r.0), r.0.dropped)),
        )?;
        counter(
            &mut enc,
            "smon_remote_write_failed_requests",
            "Requests to a remote-write receiver that failed (each retried or, on a 4xx, dropped)",
            rows.iter().map(|r| (url(&r.0), r.2)),
        )?;
        Ok(())
    }
}

/// Writes one counter family (`name` without the `_total` the encoder appends).
fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl Iterator<Item = ([(&'static str, String); 1], u64)>,
) -> Result<(), fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

/// Starts remote write to `targets`: the feed consumer and one sender per receiver, tracked by
/// `tracker` until `stop`; their state appears in `/metrics` through `telemetry` (call before
/// the HTTP router is built). Host tags come from `registry`. Nothing runs without targets.
pub fn start(
    targets: &[Target],
    feed: &Feed,
    registry: Registry,
    telemetry: &Telemetry,
    tracker: &TaskTracker,
    stop: &CancellationToken,
) -> Result<RemoteWrite, StartError> {
    if targets.is_empty() {
        return Ok(RemoteWrite::default());
    }
    let mut clients = Vec::with_capacity(targets.len());
    for t in targets {
        let client = reqwest::Client::builder()
            .timeout(t.timeout)
            .user_agent(concat!("smon-aggregator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| StartError {
                url: t.shown.clone(),
                source,
            })?;
        clients.push(client);
    }
    let shared: Arc<[Arc<Shared>]> = targets
        .iter()
        .map(|t| {
            Arc::new(Shared {
                target: t.clone(),
                state: Mutex::new(State {
                    queue: Queue::new(t.max_samples),
                    inflight: 0,
                    inflight_oldest_ms: None,
                    sent: 0,
                    dropped: 0,
                    failed_requests: 0,
                    last_error: None,
                    refusals: 0,
                }),
                wake: Notify::new(),
            })
        })
        .collect();
    let sub = feed.subscribe(
        "remote_write",
        Kinds::POLL.with(Kinds::REGISTRY),
        FEED_QUEUE,
    );
    tracker.spawn(consume(sub, shared.clone(), registry, stop.clone()));
    for (s, client) in shared.iter().zip(clients) {
        tracing::info!(url = %s.target.shown, "Remote write on.");
        tracker.spawn(send_loop(s.clone(), client, stop.clone()));
    }
    let handle = RemoteWrite { targets: shared };
    telemetry.add_collector(Arc::new(handle.clone()));
    Ok(handle)
}

/// One host's label sets, made once.
#[derive(Debug)]
struct HostSeries {
    base: Vec<(&'static str, String)>,
    /// By `metric \0 item label value`.
    series: HashMap<String, Arc<Series>>,
    last_ms: i64,
}

/// Turns host samples into [`Chunk`]s, keeping each host's series.
#[derive(Debug, Default)]
pub struct Converter {
    hosts: HashMap<String, HostSeries>,
}

impl Converter {
    /// The chunk of a sample of `host` at `at_ms`; `tags` gives the host's tags the first
    /// time. A sample not later than the host's previous one is stamped 1 ms after it when it
    /// is less than a second behind (samples a poller publishes back to back); `None` (left
    /// out) when it is further behind (the clock went back).
    pub fn chunk(
        &mut self,
        host: &str,
        at_ms: i64,
        snap: &Snapshot,
        tags: impl FnOnce() -> Vec<String>,
    ) -> Option<Arc<Chunk>> {
        let h = self
            .hosts
            .entry(host.to_owned())
            .or_insert_with(|| HostSeries {
                base: series::host_labels(host, &tags()),
                series: HashMap::new(),
                last_ms: i64::MIN,
            });
        // A poller that fell behind publishes the samples it had buffered back to back, in
        // the same millisecond: those move 1 ms past the previous one. A clock that went back
        // by a second or more leaves the host's samples out until it catches up.
        let at_ms = if at_ms > h.last_ms {
            at_ms
        } else if h.last_ms - at_ms < SAME_INSTANT_MS {
            h.last_ms + 1
        } else {
            return None;
        };
        h.last_ms = at_ms;
        let mut values = Vec::with_capacity(h.series.len().max(16));
        let mut key = String::with_capacity(64);
        series::each_value(snap, &mut |metric, item, v| {
            key.clear();
            key.push_str(metric);
            // A GPU's UUID and index both: the same card under a new index is a new series.
            for (_, lv) in item {
                key.push('\0');
                key.push_str(lv);
            }
            let s = match h.series.get(key.as_str()) {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(Series::new(&h.base, metric, item));
                    h.series.insert(key.clone(), s.clone());
                    s
                }
            };
            values.push((s, v));
        });
        Some(Arc::new(Chunk { at_ms, values }))
    }

    /// Forgets a host's series (its tags changed, or it left the fleet).
    pub fn forget(&mut self, host: &str) {
        self.hosts.remove(host);
    }
}

/// The feed consumer: samples to chunks to every receiver's queue, until `stop`.
async fn consume(
    mut sub: Subscription,
    targets: Arc<[Arc<Shared>]>,
    registry: Registry,
    stop: CancellationToken,
) {
    let mut conv = Converter::default();
    let mut buf = Vec::with_capacity(FEED_BATCH);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            n = sub.recv_many(&mut buf, FEED_BATCH) => if n == 0 { return },
        }
        for e in buf.drain(..) {
            match &e.body {
                Body::Sample { host, snapshot } => {
                    let tags = || {
                        registry
                            .target(host)
                            .map(|t| t.spec.tags)
                            .unwrap_or_default()
                    };
                    match conv.chunk(host, e.at_ms as i64, snapshot, tags) {
                        Some(c) => targets.iter().for_each(|t| t.push(c.clone())),
                        None => {
                            tracing::debug!(host = %host, "Sample not later than the previous one; not sent.");
                            let mut n = 0;
                            series::each_value(snapshot, &mut |_, _, _| n += 1);
                            targets.iter().for_each(|t| t.add_dropped(n));
                        }
                    }
                }
                Body::Registry(
                    RegistryChange::Retagged { host, .. }
                    | RegistryChange::Removed { host }
                    | RegistryChange::Reconnected { host, .. },
                ) => conv.forget(host),
                _ => {}
            }
        }
    }
}

/// What one request came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Accepted.
    Sent,
    /// Refused for good (a 4xx other than 429).
    Refused(String),
    /// Worth retrying (connection, timeout, 5xx, 429), not before the given wait.
    Retry(String, Duration),
}

/// The sender of one receiver: batches out of its queue, until `stop`.
async fn send_loop(s: Arc<Shared>, client: reqwest::Client, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = s.wake.notified() => {}
            _ = tokio::time::sleep(s.target.batch_wait) => {}
        }
        loop {
            let batch = s.take();
            if batch.is_empty() {
                break;
            }
            if !deliver(&s, &client, batch, &stop).await {
                break;
            }
        }
        if stop.is_cancelled() {
            break;
        }
    }
    flush(&s, &client).await;
}

/// One try for what is queued at shutdown, within [`FLUSH_ON_STOP`].
async fn flush(s: &Shared, client: &reqwest::Client) {
    let until = tokio::time::Instant::now() + FLUSH_ON_STOP;
    loop {
        let batch = s.take();
        if batch.is_empty() {
            return;
        }
        let n = batch.samples;
        let done = match wire::compress(&batch.encode()) {
            Ok(body) => tokio::time::timeout_at(until, post(&s.target, client, body))
                .await
                .ok(),
            Err(_) => None,
        };
        match done {
            Some(Outcome::Sent) => settle(s, n, Ok(())),
            _ => {
                let mut st = s.lock();
                st.dropped += (n + st.queue.samples()) as u64;
                st.inflight = 0;
                st.inflight_oldest_ms = None;
                tracing::warn!(url = %s.target.shown, dropped = n + st.queue.samples(), "Remote write stopped before its queue emptied.");
                return;
            }
        }
    }
}

/// Records the end of a batch of `n` samples: accepted, or dropped with an error.
fn settle(s: &Shared, n: usize, r: Result<(), String>) {
    let mut st = s.lock();
    st.inflight = 0;
    st.inflight_oldest_ms = None;
    match r {
        Ok(()) => {
            st.sent += n as u64;
            st.refusals = 0;
            if st.last_error.take().is_some() {
                tracing::info!(url = %s.target.shown, "Remote write delivers again.");
            }
        }
        Err(e) => {
            st.dropped += n as u64;
            st.failed_requests += 1;
            st.refusals += 1;
            if st.refusals.is_power_of_two() {
                tracing::warn!(url = %s.target.shown, error = %e, samples = n, refused_batches = st.refusals, "Remote-write receiver refused a batch; dropped.");
            }
            st.last_error = Some(e);
        }
    }
}

/// The wait before retry `n` (0-based): `min` doubling per failure up to `max`, with equal
/// jitter (half fixed, half random) so that several aggregators do not retry in lockstep.
pub fn backoff(n: u32, min: Duration, max: Duration, rng: &mut impl rand::Rng) -> Duration {
    let exp = min.saturating_mul(1u32 << n.min(20)).min(max);
    let half = exp / 2;
    half + half.mul_f64(rng.random::<f64>())
}

/// Sends one batch until it is accepted or refused for good; `false` when `stop` came first
/// (the batch is then counted as dropped).
async fn deliver(
    s: &Shared,
    client: &reqwest::Client,
    batch: Batch,
    stop: &CancellationToken,
) -> bool {
    let n = batch.samples;
    let body = match wire::compress(&batch.encode()) {
        Ok(b) => b,
        Err(e) => {
            settle(s, n, Err(format!("cannot compress a batch: {e}")));
            return true;
        }
    };
    drop(batch);
    let t = &s.target;
    let mut attempt = 0u32;
    loop {
        match post(t, client, body.clone()).await {
            Outcome::Sent => {
                settle(s, n, Ok(()));
                return true;
            }
            Outcome::Refused(e) => {
                settle(s, n, Err(e));
                return true;
            }
            Outcome::Retry(e, after) => {
                let wait = backoff(attempt, t.min_backoff, t.max_backoff, &mut rand::rng())
                    .max(after.min(t.max_backoff));
                {
                    let mut st = s.lock();
                    st.failed_requests += 1;
                    if st.last_error.is_none() {
                        tracing::warn!(url = %t.shown, error = %e, "Remote-write receiver unavailable; holding the queue and retrying.");
                    }
                    st.last_error = Some(e);
                }
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    _ = stop.cancelled() => {
                        let mut st = s.lock();
                        st.dropped += n as u64;
                        st.inflight = 0;
                        st.inflight_oldest_ms = None;
                        tracing::warn!(url = %t.shown, dropped = n, "Remote write stopped while retrying; a batch was not delivered.");
                        return false;
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// An error and its causes on one line, without the URL (its query may hold a key).
fn chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// Posts one compressed `WriteRequest`.
async fn post(t: &Target, client: &reqwest::Client, body: Vec<u8>) -> Outcome {
    let mut req = client
        .post(t.url.clone())
        .header(header::CONTENT_ENCODING, wire::CONTENT_ENCODING)
        .header(header::CONTENT_TYPE, wire::CONTENT_TYPE)
        .header("X-Prometheus-Remote-Write-Version", wire::VERSION);
    for (n, v) in &t.headers {
        req = req.header(n, v);
    }
    req = match &t.auth {
        Some(config::Auth::Bearer(token)) => req.bearer_auth(token),
        Some(config::Auth::Basic { username, password }) => {
            req.basic_auth(username, Some(password))
        }
        None => req,
    };
    let resp = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Retry(chain(e), Duration::ZERO),
    };
    let status = resp.status();
    if status.is_success() {
        return Outcome::Sent;
    }
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    let text = resp.text().await.unwrap_or_default();
    let text: String = text.trim().chars().take(ANSWER_CHARS).collect();
    let msg = format!(
        "HTTP {status}{}{}",
        if text.is_empty() { "" } else { ": " },
        smon_runtime::config::printable(&text)
    );
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Outcome::Retry(msg, retry_after)
    } else {
        Outcome::Refused(msg)
    }
}

#[cfg(test)]
mod tests;
