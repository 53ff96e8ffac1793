//! The fleet: every host's profile and state, and the one clock that drives them all.
//!
//! There is one timer for the whole fleet, not one per host. It beats `SLOTS` times per
//! interval and each beat publishes a new [`Tick`] to one phase's `watch` channel; a host
//! belongs to one phase, so its `Watch` streams wake once per interval and a tenth of the fleet
//! wakes at a time. A tick is only a number and a time: a host's state moves and its snapshot is
//! built when a stream or a call needs it (see [`crate::state`]).

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smon_proto::{Parts, Snapshot};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::config::SimConfig;
use crate::profile::{self, Profile, SLOTS};
use crate::state::{State, Tick};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Host {
    profile: Profile,
    state: Mutex<State>,
}

/// All simulated hosts.
pub struct Fleet {
    cfg: SimConfig,
    hosts: Vec<Host>,
    slots: Vec<watch::Sender<Tick>>,
    anchor_ms: u64,
}

impl Fleet {
    /// Builds every host from the seed; every host has its first sample at once.
    pub fn new(cfg: SimConfig) -> Self {
        let now = now_ms();
        let hosts = profile::build_all(&cfg, now)
            .into_iter()
            .map(|p| Host {
                state: Mutex::new(State::new(&p, now)),
                profile: p,
            })
            .collect();
        let first = Tick {
            seq: 1,
            unix_ms: now,
        };
        Self {
            cfg,
            hosts,
            slots: (0..SLOTS).map(|_| watch::Sender::new(first)).collect(),
            anchor_ms: now,
        }
    }

    /// The settings it was built from.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// True without hosts.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Every host's profile, in address order.
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.hosts.iter().map(|h| &h.profile)
    }

    /// Host `i`'s profile.
    pub fn profile(&self, i: usize) -> &Profile {
        &self.hosts[i].profile
    }

    /// The host whose agent listens on `ip`.
    pub fn host_at(&self, ip: Ipv4Addr) -> Option<usize> {
        self.cfg
            .index_of(ip)
            .map(|i| i as usize)
            .filter(|&i| i < self.hosts.len())
    }

    /// The latest tick of host `i`.
    pub fn latest(&self, i: usize) -> Tick {
        *self.slots[self.hosts[i].profile.slot].borrow()
    }

    /// Host `i`'s ticks, from the latest one on.
    pub fn subscribe(&self, i: usize) -> watch::Receiver<Tick> {
        self.slots[self.hosts[i].profile.slot].subscribe()
    }

    /// Host `i`'s sample at `tick` (or later, if another caller moved it on already).
    pub fn snapshot(&self, i: usize, tick: Tick, parts: Parts) -> Snapshot {
        let h = &self.hosts[i];
        // Never held across an await; on the simulator's one thread it is never contended.
        let mut st = h.state.lock().unwrap_or_else(|p| p.into_inner());
        st.advance(&h.profile, tick);
        st.snapshot(&h.profile, parts, self.anchor_ms)
    }

    /// Beats the clock until `stop`: one timer for the whole fleet.
    pub async fn run_clock(self: Arc<Self>, stop: CancellationToken) {
        let period = (self.cfg.interval / SLOTS as u32).max(Duration::from_millis(1));
        let mut timer = tokio::time::interval_at(Instant::now() + period, period);
        // A simulator starved of CPU falls behind rather than bursting to catch up.
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut beat: u64 = 0;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = timer.tick() => {
                    let slot = (beat % SLOTS as u64) as usize;
                    let tick = Tick { seq: beat / SLOTS as u64 + 2, unix_ms: now_ms() };
                    self.slots[slot].send_replace(tick);
                    beat += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::sample;

    #[tokio::test(start_paused = true)]
    async fn one_clock_moves_every_phase_once_per_interval() {
        let fleet = Arc::new(Fleet::new(SimConfig {
            agents: 25,
            ..sample()
        }));
        let mut rx: Vec<_> = (0..SLOTS).map(|i| fleet.subscribe(i)).collect();
        for r in &mut rx {
            assert_eq!(r.borrow_and_update().seq, 1);
        }
        let stop = CancellationToken::new();
        let clock = tokio::spawn(fleet.clone().run_clock(stop.clone()));
        tokio::time::sleep(Duration::from_millis(1050)).await;
        for (i, r) in rx.iter_mut().enumerate() {
            assert!(r.has_changed().expect("open"), "phase {i}");
            assert_eq!(r.borrow_and_update().seq, 2, "phase {i}");
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(fleet.latest(0).seq, 3);
        assert_eq!(fleet.latest(24).seq, 3);
        let a = fleet.snapshot(3, fleet.latest(3), Parts::SUMMARY);
        assert_eq!(a.seq, 3);
        assert_eq!(fleet.host_at(Ipv4Addr::new(127, 1, 0, 4)), Some(3));
        assert_eq!(fleet.host_at(Ipv4Addr::new(127, 1, 0, 26)), None);
        stop.cancel();
        clock.await.expect("clock stops");
    }
}
