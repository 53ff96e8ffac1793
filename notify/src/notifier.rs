//! The delivery side: one tokio task per channel takes the oldest notification waiting for
//! it in the outbox, sends it, and deletes it once delivered. A failure is retried with
//! exponential backoff and jitter, holding the channel's later notifications behind it (order
//! is kept per channel); a channel's failures never slow another. A notification older than
//! the channel's `max_age_s` is dropped with an ERROR and kept in the dropped list.
//!
//! Delivery is at least once: a crash between a send and its delete sends it again on restart,
//! with the same notification id (webhook receivers can drop repeats; Alertmanager dedups by
//! labels; email keeps one Message-ID).

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use smon_api::alerts::{AlertStatus, Notification};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Error;
use crate::config::{Channel, ChannelView, Kind};
use crate::outbox::{Dropped, Outbox};
use crate::send::{SendError, Sender};

/// Delivery figures of one channel (for the UI and `/metrics`). Counters count since the
/// start of this process; `queued` is what the outbox holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelStats {
    /// The channel.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Notifications delivered.
    pub sent: u64,
    /// Failed attempts (each retry counts).
    pub failed: u64,
    /// Notifications dropped after `max_age_s`.
    pub dropped: u64,
    /// Notifications waiting.
    pub queued: u64,
    /// The last error (a failed attempt or a drop).
    pub last_error: Option<String>,
    /// When it happened (ms since the epoch).
    pub last_error_ms: Option<u64>,
    /// When a notification was last delivered (ms since the epoch).
    pub last_success_ms: Option<u64>,
}

/// Why `send_test` could not send.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// No channel has that name.
    #[error("no channel is named '{}'", smon_runtime::config::printable(.0))]
    UnknownChannel(String),
    /// The attempt failed.
    #[error(transparent)]
    Send(#[from] SendError),
}

struct Slot {
    channel: Channel,
    wake: Notify,
    stats: Mutex<ChannelStats>,
    /// An `alertmanager` channel's posts, one at a time: a refresh of an alert must not
    /// overtake the post that resolves it (Alertmanager would take it as firing again).
    am: tokio::sync::Mutex<()>,
}

struct Inner {
    outbox: Outbox,
    sender: Sender,
    slots: BTreeMap<String, Slot>,
}

/// The notifier: the outbox and the channels. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("channels", &self.inner.slots.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Now, in ms since the epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The wait before retry number `attempts` (1 for the first retry): `min` doubled per
/// failure up to `max`, then "equal jitter" (`jitter` in 0..1 picks within the upper half),
/// so that channels failing together do not retry in step.
pub fn backoff(attempts: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let d = min.saturating_mul(1u32 << exp).min(max);
    d / 2 + d.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

impl Notifier {
    /// Opens the outbox in the database at `path` (smon's database file) for `channels`. What
    /// was queued before (a restart) is delivered once [`Notifier::start`] runs. Rows of
    /// channels no longer configured stay in the outbox until a channel of that name returns.
    ///
    /// Blocking (SQLite). Open it after the history writer has opened the same file: both
    /// bring the schema up to date, and two first openings at the same instant could both
    /// try the same migration. To change the channels (a reload), stop this notifier's tasks
    /// and open a new one on the same file: what is queued is keyed by channel name and
    /// carries over.
    pub fn open(path: &Path, channels: Vec<Channel>) -> Result<Self, Error> {
        let outbox = Outbox::open(path)?;
        let mut slots = BTreeMap::new();
        for channel in channels {
            let queued = outbox.queued(&channel.name)?;
            let stats = ChannelStats {
                name: channel.name.clone(),
                kind: channel.kind.type_name(),
                queued,
                ..ChannelStats::default()
            };
            slots.insert(
                channel.name.clone(),
                Slot {
                    channel,
                    wake: Notify::new(),
                    stats: Mutex::new(stats),
                    am: tokio::sync::Mutex::new(()),
                },
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                outbox,
                sender: Sender::new().map_err(Error::Client)?,
                slots,
            }),
        })
    }

    /// Queues `n` for the channels named (a rule's `notify`); it is committed to the database
    /// when this returns. An unknown name queues nothing and is an error.
    pub async fn enqueue(&self, n: &Notification, channels: &[String]) -> Result<(), Error> {
        if let Some(bad) = channels.iter().find(|c| !self.inner.slots.contains_key(*c)) {
            return Err(Error::UnknownChannel(bad.clone()));
        }
        let inner = self.inner.clone();
        let n2 = n.clone();
        let names = channels.to_vec();
        let added = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            inner.outbox.enqueue(&n2, &refs, now_ms())
        })
        .await??;
        for name in added {
            if let Some(slot) = self.inner.slots.get(&name) {
                lock(&slot.stats).queued += 1;
                slot.wake.notify_one();
            }
        }
        Ok(())
    }

    /// Starts one delivery task per channel on `tracker`; they stop when `stop` is cancelled
    /// (an attempt in flight is abandoned: its notification stays queued).
    pub fn start(&self, tracker: &TaskTracker, stop: CancellationToken) {
        for (name, slot) in &self.inner.slots {
            let inner = self.inner.clone();
            let (n, s) = (name.clone(), stop.clone());
            tracker.spawn(async move { deliver(inner, n, s).await });
            if matches!(slot.channel.kind, Kind::Alertmanager { .. }) {
                let inner = self.inner.clone();
                let (n, s) = (name.clone(), stop.clone());
                tracker.spawn(async move { refresh(inner, n, s).await });
            }
        }
    }

    /// Takes over the figures (sent, failed, dropped, the last error and success) of the
    /// channels of `old`, a notifier this one replaces (channels changed at run time), for
    /// the channels of the same name; `queued` stays this outbox's count.
    pub fn carry_stats_from(&self, old: &Notifier) {
        for (name, slot) in &self.inner.slots {
            let Some(o) = old.inner.slots.get(name) else {
                continue;
            };
            let prev = lock(&o.stats).clone();
            let mut st = lock(&slot.stats);
            st.sent = prev.sent;
            st.failed = prev.failed;
            st.dropped = prev.dropped;
            st.last_error = prev.last_error;
            st.last_error_ms = prev.last_error_ms;
            st.last_success_ms = prev.last_success_ms;
        }
    }

    /// The figures of every channel, by name.
    pub fn stats(&self) -> Vec<ChannelStats> {
        self.inner
            .slots
            .values()
            .map(|s| lock(&s.stats).clone())
            .collect()
    }

    /// Every channel without its secrets, by name.
    pub fn views(&self) -> Vec<ChannelView> {
        self.inner
            .slots
            .values()
            .map(|s| s.channel.view())
            .collect()
    }

    /// The latest `limit` notifications dropped for `channel`, newest first.
    pub async fn dropped(&self, channel: &str, limit: u32) -> Result<Vec<Dropped>, Error> {
        let inner = self.inner.clone();
        let channel = channel.to_owned();
        tokio::task::spawn_blocking(move || inner.outbox.dropped(&channel, limit)).await?
    }

    /// Sends a test notification on `channel` now, outside the outbox and its rate limit, and
    /// says how it went.
    pub async fn send_test(&self, channel: &str) -> Result<(), TestError> {
        let slot = self
            .inner
            .slots
            .get(channel)
            .ok_or_else(|| TestError::UnknownChannel(channel.to_owned()))?;
        let n = crate::template::sample();
        self.inner.sender.send(&slot.channel, &n).await?;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on the outbox off the async threads.
async fn db<T: Send + 'static>(
    inner: &Arc<Inner>,
    f: impl FnOnce(&Outbox) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let inner = inner.clone();
    tokio::task::spawn_blocking(move || f(&inner.outbox)).await?
}

/// Sleeps `d`; false when `stop` came first.
async fn pause(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// The delivery loop of one channel.
async fn deliver(inner: Arc<Inner>, name: String, stop: CancellationToken) {
    let Some(slot) = inner.slots.get(&name) else {
        return;
    };
    let d = slot.channel.delivery;
    let window = Duration::from_secs(d.rate_limit.per_s);
    let mut recent: VecDeque<Instant> = VecDeque::new();
    while !stop.is_cancelled() {
        let now = now_ms();
        let max_age_ms = u64::try_from(d.max_age.as_millis()).unwrap_or(u64::MAX);
        let (n1, n2) = (name.clone(), name.clone());
        let step = async {
            let dropped = db(&inner, move |o| {
                o.drop_expired(&n1, now.saturating_sub(max_age_ms), now)
            })
            .await?;
            let head = db(&inner, move |o| o.head(&n2, now)).await?;
            Ok::<_, Error>((dropped, head))
        };
        let (dropped, head) = match step.await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(channel = %name, error = %e, "Cannot read the outbox; trying again in a second.");
                if !pause(&stop, Duration::from_secs(1)).await {
                    break;
                }
                continue;
            }
        };
        for x in &dropped {
            let msg = format!(
                "dropped notification {} after {} s undelivered ({} attempts): {}",
                x.notification_id,
                d.max_age.as_secs(),
                x.attempts,
                x.last_error.as_deref().unwrap_or("no attempt made")
            );
            tracing::error!(channel = %name, notification = %x.notification_id, attempts = x.attempts,
                last_error = x.last_error.as_deref().unwrap_or(""),
                "A notification was dropped: the channel did not take it within its max_age_s.");
            let mut s = lock(&slot.stats);
            s.dropped += 1;
            s.queued = s.queued.saturating_sub(1);
            s.last_error = Some(msg);
            s.last_error_ms = Some(now);
        }
        let Some(entry) = head else {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = slot.wake.notified() => continue,
            }
        };
        // Not before its retry time, and not past its expiry (then it is dropped above).
        if entry.next_ms > now {
            let expires = (entry.created_ms + max_age_ms).saturating_sub(now);
            let wait = Duration::from_millis((entry.next_ms - now).min(expires.max(1)));
            if !pause(&stop, wait).await {
                break;
            }
            continue;
        }
        // The rate limit: at most `max` sends in any `per_s` window; the rest wait queued.
        while recent.front().is_some_and(|t| t.elapsed() >= window) {
            recent.pop_front();
        }
        if recent.len() >= d.rate_limit.max as usize {
            let wait = recent
                .front()
                .map(|t| window.saturating_sub(t.elapsed()))
                .unwrap_or(window);
            if !pause(&stop, wait).await {
                break;
            }
            continue;
        }
        recent.push_back(Instant::now());
        let is_am = matches!(slot.channel.kind, Kind::Alertmanager { .. });
        let am_guard = if is_am {
            Some(slot.am.lock().await)
        } else {
            None
        };
        let result = tokio::select! {
            _ = stop.cancelled() => break,
            r = inner.sender.send(&slot.channel, &entry.notification) => r,
        };
        if is_am && result.is_ok() {
            remember_alertmanager(&inner, slot, &name, &entry.notification).await;
        }
        drop(am_guard);
        let row = entry.row;
        let done = now_ms();
        match result {
            Ok(()) => {
                tracing::debug!(channel = %name, notification = %entry.notification.id, "Notification delivered.");
                if let Err(e) = db(&inner, move |o| o.delivered(row)).await {
                    // It was sent: a failure to delete it means it is sent again (at least once).
                    tracing::warn!(channel = %name, error = %e, "Cannot remove a delivered notification from the outbox; it may be sent again.");
                }
                let mut s = lock(&slot.stats);
                s.sent += 1;
                s.queued = s.queued.saturating_sub(1);
                s.last_success_ms = Some(done);
            }
            Err(e) => {
                let attempts = entry.attempts + 1;
                // A service that says how long to wait (429 with Retry-After) is obeyed,
                // within the backoff's cap.
                let wait = backoff(
                    attempts,
                    d.backoff_min,
                    d.backoff_max,
                    rand::random::<f64>(),
                )
                .max(e.retry_after().unwrap_or_default().min(d.backoff_max));
                let msg = e.to_string();
                tracing::warn!(channel = %name, notification = %entry.notification.id, attempts,
                    retry_in_ms = wait.as_millis() as u64, error = %msg, "Notification not delivered; will retry.");
                let next = done + u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                let m2 = msg.clone();
                if let Err(e) = db(&inner, move |o| o.failed(row, next, &m2)).await {
                    tracing::warn!(channel = %name, error = %e, "Cannot record a failed attempt in the outbox.");
                }
                let mut s = lock(&slot.stats);
                s.failed += 1;
                s.last_error = Some(msg);
                s.last_error_ms = Some(done);
            }
        }
    }
}

/// Records what an `alertmanager` channel delivered, for [`refresh`].
async fn remember_alertmanager(inner: &Arc<Inner>, slot: &Slot, name: &str, n: &Notification) {
    let Ok(r) = slot.channel.templates.render(n) else {
        return;
    };
    let body = crate::payload::alertmanager(n, &r, 0);
    let alerts: Vec<(String, Option<serde_json::Value>)> = n
        .alerts
        .iter()
        .zip(body.as_array().into_iter().flatten())
        .map(|(a, v)| {
            let firing = a.status == AlertStatus::Firing && n.status == AlertStatus::Firing;
            (v["labels"].to_string(), firing.then(|| v.clone()))
        })
        .collect();
    let ch = name.to_owned();
    if let Err(e) = db(inner, move |o| o.alertmanager_delivered(&ch, &alerts)).await {
        tracing::warn!(channel = %name, error = %e, "Cannot record the alerts sent to Alertmanager; they will not be refreshed.");
    }
}

/// Sends an `alertmanager` channel's firing alerts again every `resend`, with `endsAt` four
/// times that ahead (as Prometheus does): Alertmanager keeps them firing while smon runs, and
/// resolves them by itself if smon stops. The first round runs at once (after a restart).
async fn refresh(inner: Arc<Inner>, name: String, stop: CancellationToken) {
    let Some(slot) = inner.slots.get(&name) else {
        return;
    };
    let Kind::Alertmanager { urls, resend } = &slot.channel.kind else {
        return;
    };
    let mut tick = tokio::time::interval(*resend);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let _guard = slot.am.lock().await;
        let ch = name.clone();
        let active = match db(&inner, move |o| o.alertmanager_active(&ch)).await {
            Ok(a) if a.is_empty() => continue,
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(channel = %name, error = %e, "Cannot read the alerts to refresh in Alertmanager.");
                continue;
            }
        };
        let ends = crate::template::rfc3339(
            now_ms() + u64::try_from(resend.as_millis() * 4).unwrap_or(u64::MAX),
        );
        let body = serde_json::Value::Array(
            active
                .into_iter()
                .map(|mut a| {
                    a["endsAt"] = serde_json::Value::from(ends.clone());
                    a
                })
                .collect(),
        );
        let post = inner.sender.post_alertmanager(&name, urls, &body);
        let result = tokio::select! {
            _ = stop.cancelled() => break,
            r = tokio::time::timeout(slot.channel.delivery.timeout, post) => r,
        };
        let e = match result {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => SendError::Timeout(slot.channel.delivery.timeout).to_string(),
        };
        tracing::warn!(channel = %name, error = %e, "Cannot refresh the firing alerts in Alertmanager; trying again next round.");
        let mut s = lock(&slot.stats);
        s.last_error = Some(format!("refresh: {e}"));
        s.last_error_ms = Some(now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff(1, min, max, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(1, min, max, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(3, min, max, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(10, min, max, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(1000, min, max, 0.5), Duration::from_secs(45));
    }
}
