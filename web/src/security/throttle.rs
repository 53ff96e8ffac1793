//! Throttling of failed logins: at most so many failures per key (a client address or a user
//! name) within a window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins per key (an address or a user name) within a window.
pub struct Throttle {
    max: u32,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Keys kept at most; past this, keys with no recent failure are forgotten first.
const MAX_KEYS: usize = 100_000;

impl Throttle {
    /// At most `max` failures per key within `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(wait)` while `key` has used up its failures.
    pub fn blocked(&self, key: &str, now: Instant) -> Option<Duration> {
        let m = self.lock();
        let q = m.get(key)?;
        let recent: Vec<&Instant> = q
            .iter()
            .filter(|t| now.duration_since(**t) < self.window)
            .collect();
        if recent.len() < self.max as usize {
            return None;
        }
        let oldest = recent.first()?;
        Some(self.window.saturating_sub(now.duration_since(**oldest)))
    }

    /// Records a failure of `key`.
    pub fn fail(&self, key: &str, now: Instant) {
        let mut m = self.lock();
        if m.len() >= MAX_KEYS {
            let window = self.window;
            m.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = m.entry(key.to_owned()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        q.push_back(now);
        while q.len() > self.max as usize {
            q.pop_front();
        }
    }

    /// Forgets the failures of `key` (after a successful login).
    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_blocks_after_max_and_forgets_after_the_window() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(t.blocked("k", t0).is_none(), "attempt {i}");
            t.fail("k", t0);
        }
        let wait = t.blocked("k", t0).expect("blocked");
        assert!(wait <= Duration::from_secs(60));
        assert!(t.blocked("other", t0).is_none());
        assert!(t.blocked("k", t0 + Duration::from_secs(61)).is_none());
        t.clear("k");
        assert!(t.blocked("k", t0).is_none());
    }
}
