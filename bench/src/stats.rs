//! Summaries of measured series: percentiles of latencies and means of counts.

use std::time::Duration;

/// Percentiles of a latency series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Number of measurements.
    pub n: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Latency {
    /// Summarises `samples` (nearest-rank percentiles); `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        let mut v = samples.to_vec();
        v.sort_unstable();
        let max = *v.last()?;
        Some(Self {
            n: v.len(),
            p50: nearest_rank(&v, 50.0),
            p99: nearest_rank(&v, 99.0),
            max,
        })
    }
}

/// The nearest-rank percentile `p` (0-100] of a sorted, non-empty slice.
fn nearest_rank(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Mean of `values`; `None` when there are none.
pub fn mean<I>(values: I) -> Option<f64>
where
    I: IntoIterator,
    I::Item: Into<f64>,
{
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v.into(), n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let l = Latency::of(&samples).expect("some");
        assert_eq!((l.n, l.p50, l.p99, l.max), (100, ms(50), ms(99), ms(100)));

        let one = Latency::of(&[ms(7)]).expect("some");
        assert_eq!((one.p50, one.p99, one.max), (ms(7), ms(7), ms(7)));

        let three = Latency::of(&[ms(3), ms(1), ms(2)]).expect("some");
        assert_eq!((three.p50, three.p99), (ms(2), ms(3)));

        assert_eq!(Latency::of(&[]), None);
    }

    #[test]
    fn means() {
        assert_eq!(mean([1u32, 2, 3, 6]), Some(3.0));
        assert_eq!(mean(Vec::<f64>::new()), None);
    }
}
