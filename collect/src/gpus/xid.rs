//! Critical Xid errors per GPU: what a source's event watch reported ([`XidNews`]), kept as a
//! count, the last code and when it came, and written into each GPU's row on every reading.
//! Kept by the GPU thread for the life of the agent, across reopenings of the driver, so a
//! count never goes back (a Prometheus counter may be built on it).

use std::collections::{BTreeMap, BTreeSet};

use smon_proto::Gpu;

use super::{XidEvent, XidNews};

/// What was seen of one GPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    count: u64,
    last: u32,
    unix_ms: u64,
}

/// The Xid errors seen per GPU (by NVML index).
#[derive(Debug, Default)]
pub struct XidLog {
    watched: BTreeSet<u32>,
    seen: BTreeMap<u32, Seen>,
}

impl XidLog {
    /// Takes in what the watch reported since the last reading.
    pub fn record(&mut self, news: XidNews) {
        if let Some(w) = news.watched {
            self.watched = w.into_iter().collect();
        }
        for XidEvent {
            index,
            xid,
            unix_ms,
        } in news.events
        {
            let s = self.seen.entry(index).or_default();
            s.count += 1;
            s.last = xid;
            s.unix_ms = unix_ms;
        }
    }

    /// Writes the count, last code and time into each GPU: a count (0 included) for every GPU
    /// that is watched or had an error, nothing for the others.
    pub fn apply(&self, gpus: &mut [Gpu]) {
        for g in gpus {
            let seen = self.seen.get(&g.index);
            if seen.is_none() && !self.watched.contains(&g.index) {
                continue;
            }
            let s = seen.copied().unwrap_or_default();
            g.xid_errors = Some(s.count);
            if s.count > 0 {
                g.last_xid = Some(s.last);
                g.last_xid_unix_ms = Some(s.unix_ms);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(n: u32) -> Vec<Gpu> {
        (0..n)
            .map(|index| Gpu {
                index,
                ..Gpu::default()
            })
            .collect()
    }

    #[test]
    fn counts_keep_the_last_code_and_leave_unwatched_gpus_alone() {
        let mut log = XidLog::default();
        let ev = |index, xid, unix_ms| XidEvent {
            index,
            xid,
            unix_ms,
        };
        log.record(XidNews {
            watched: Some(vec![0, 1]),
            events: vec![ev(1, 48, 1_000), ev(1, 79, 2_000)],
        });
        let mut g = gpus(3);
        log.apply(&mut g);
        assert_eq!(
            (g[0].xid_errors, g[0].last_xid, g[0].last_xid_unix_ms),
            (Some(0), None, None)
        );
        assert_eq!(
            (g[1].xid_errors, g[1].last_xid, g[1].last_xid_unix_ms),
            (Some(2), Some(79), Some(2_000))
        );
        assert_eq!(g[2].xid_errors, None, "not watched: absent, not 0");

        // Nothing new, and the watch list unchanged: the figures stand.
        log.record(XidNews::default());
        let mut again = gpus(3);
        log.apply(&mut again);
        assert_eq!(again, g);

        // The watch reopened without GPU 1: what it had seen is still reported.
        log.record(XidNews {
            watched: Some(vec![0]),
            events: vec![ev(0, 13, 3_000)],
        });
        let mut after = gpus(3);
        log.apply(&mut after);
        assert_eq!(after[0].last_xid, Some(13));
        assert_eq!(after[1].xid_errors, Some(2));
    }
}
