//! A receiver's bounded queue of host samples, and the batches taken from it. Pure: the sender
//! task in [`super`] does the I/O.
//!
//! The unit is a [`Chunk`]: one sample of one host, already turned into series values, shared
//! (`Arc`) by every receiver's queue. Sizes count values ("samples" in Prometheus' words).
//! When the queue is full the OLDEST chunks go: after a long outage the recent past is worth
//! more, and receivers refuse samples much older than their head block anyway.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::series::Series;
use super::wire;

/// One host sample: its time and its values.
#[derive(Debug)]
pub struct Chunk {
    /// When it was taken (ms since the epoch, the aggregator's clock).
    pub at_ms: i64,
    /// One value per series.
    pub values: Vec<(Arc<Series>, f64)>,
}

/// A bounded queue of chunks.
#[derive(Debug)]
pub struct Queue {
    chunks: VecDeque<Arc<Chunk>>,
    samples: usize,
    max: usize,
}

impl Queue {
    /// An empty queue holding at most `max` samples.
    pub fn new(max: usize) -> Self {
        Self {
            chunks: VecDeque::new(),
            samples: 0,
            max,
        }
    }

    /// Adds `chunk`; returns the samples dropped (the oldest chunks) to make room.
    pub fn push(&mut self, chunk: Arc<Chunk>) -> usize {
        let n = chunk.values.len();
        let mut dropped = 0;
        while self.samples + n > self.max {
            let Some(old) = self.chunks.pop_front() else {
                break;
            };
            self.samples -= old.values.len();
            dropped += old.values.len();
        }
        if n > self.max {
            // Larger than the whole queue (never with sane sizes): not kept.
            return dropped + n;
        }
        self.samples += n;
        self.chunks.push_back(chunk);
        dropped
    }

    /// Takes whole chunks from the front up to `limit` samples (at least one chunk).
    pub fn take(&mut self, limit: usize) -> Batch {
        let mut b = Batch::default();
        while let Some(c) = self.chunks.front() {
            let n = c.values.len();
            if !b.chunks.is_empty() && b.samples + n > limit {
                break;
            }
            b.samples += n;
            self.samples -= n;
            if let Some(c) = self.chunks.pop_front() {
                b.chunks.push(c);
            }
        }
        b
    }

    /// Samples queued.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Time of the oldest chunk queued.
    pub fn oldest_ms(&self) -> Option<i64> {
        self.chunks.front().map(|c| c.at_ms)
    }
}

/// Chunks taken together into one request.
#[derive(Debug, Default)]
pub struct Batch {
    /// In queue order.
    pub chunks: Vec<Arc<Chunk>>,
    /// Their values.
    pub samples: usize,
}

impl Batch {
    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Time of its oldest chunk.
    pub fn oldest_ms(&self) -> Option<i64> {
        self.chunks.iter().map(|c| c.at_ms).min()
    }

    /// The uncompressed `WriteRequest`: one `TimeSeries` per series, its samples in time
    /// order.
    pub fn encode(&self) -> Vec<u8> {
        let mut index: HashMap<*const Series, usize> = HashMap::new();
        let mut series: Vec<(&Series, Vec<(i64, f64)>)> = Vec::new();
        for c in &self.chunks {
            for (s, v) in &c.values {
                let i = *index.entry(Arc::as_ptr(s)).or_insert_with(|| {
                    series.push((s, Vec::with_capacity(1)));
                    series.len() - 1
                });
                series[i].1.push((c.at_ms, *v));
            }
        }
        let mut buf = Vec::with_capacity(self.samples * 120);
        for (s, samples) in &series {
            wire::encode_series(&s.labels, samples, &mut buf);
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(at_ms: i64, series: &[Arc<Series>], v: f64) -> Arc<Chunk> {
        Arc::new(Chunk {
            at_ms,
            values: series.iter().map(|s| (s.clone(), v)).collect(),
        })
    }

    fn series(n: usize) -> Vec<Arc<Series>> {
        (0..n)
            .map(|i| {
                Arc::new(Series::new(
                    &[("host", "n1".to_owned())],
                    &format!("m{i}"),
                    &[],
                ))
            })
            .collect()
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_them() {
        let s = series(10);
        let mut q = Queue::new(25);
        assert_eq!(q.push(chunk(1, &s, 1.0)), 0);
        assert_eq!(q.push(chunk(2, &s, 2.0)), 0);
        assert_eq!(q.samples(), 20);
        assert_eq!(q.push(chunk(3, &s, 3.0)), 10, "the oldest chunk went");
        assert_eq!((q.samples(), q.oldest_ms()), (20, Some(2)));
    }

    #[test]
    fn batches_take_whole_chunks_up_to_the_limit() {
        let s = series(3);
        let mut q = Queue::new(1000);
        for t in 0..5 {
            q.push(chunk(t, &s, t as f64));
        }
        let b = q.take(7);
        assert_eq!((b.chunks.len(), b.samples, b.oldest_ms()), (2, 6, Some(0)));
        // A limit below one chunk still takes one: progress is always made.
        assert_eq!(q.take(1).samples, 3);
        assert_eq!(q.samples(), 6);
        assert!(Queue::new(10).take(5).is_empty());
    }

    #[test]
    fn a_batch_is_one_series_per_label_set_with_samples_in_time_order() {
        let s = series(2);
        let mut q = Queue::new(1000);
        q.push(chunk(1000, &s, 1.0));
        q.push(chunk(2000, &s, 2.0));
        let body = q.take(100).encode();
        let got = wire::tests::decode(&wire::compress(&body).expect("compress"));
        assert_eq!(got.timeseries.len(), 2);
        for ts in &got.timeseries {
            let points: Vec<(i64, f64)> =
                ts.samples.iter().map(|s| (s.timestamp, s.value)).collect();
            assert_eq!(points, [(1000, 1.0), (2000, 2.0)]);
        }
        assert_eq!(got.timeseries[0].labels[0].value, "smon_m0");
        assert_eq!(got.timeseries[1].labels[0].value, "smon_m1");
    }
}
