//! Staleness (agent sample time → the aggregator's store), from two sources: the aggregator's
//! `smon_poll_latency_seconds` histogram (every sample, but only bucket bounds) and the rows of
//! `/api/v1/hosts` (`last_seen_ms - sample_unix_ms`, exact, for each host's latest sample at
//! the time of the read). Pure logic: parsers and percentiles, tested on text.

use anyhow::{Context as _, bail};
use serde_json::Value;

/// A cumulative histogram: `(upper bound in seconds, samples at or below it)`, in increasing
/// order, the last bound `+Inf`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Buckets {
    /// Cumulative counts per upper bound.
    pub le: Vec<(f64, u64)>,
}

impl Buckets {
    /// Samples in all.
    pub fn count(&self) -> u64 {
        self.le.last().map_or(0, |b| b.1)
    }

    /// What was added between `earlier` and `self` (same bounds).
    pub fn since(&self, earlier: &Buckets) -> anyhow::Result<Buckets> {
        if self.le.len() != earlier.le.len() {
            bail!("the histogram's buckets changed between the two reads");
        }
        let le = self
            .le
            .iter()
            .zip(&earlier.le)
            .map(|(a, b)| (a.0, a.1.saturating_sub(b.1)))
            .collect();
        Ok(Buckets { le })
    }

    /// The upper bound of the bucket holding the nearest-rank percentile `p`: the percentile
    /// is at most this; `None` without samples.
    pub fn percentile_bound(&self, p: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as u64;
        self.le.iter().find(|b| b.1 >= rank).map(|b| b.0)
    }

    /// Share (0-1) of the samples at or below `bound`, which must be one of the bounds.
    pub fn share_at_most(&self, bound: f64) -> Option<f64> {
        let n = self.count();
        let b = self.le.iter().find(|b| (b.0 - bound).abs() < 1e-9)?;
        (n > 0).then(|| b.1 as f64 / n as f64)
    }
}

/// Sums the `<name>_bucket` series of an OpenMetrics/Prometheus text over every label set
/// except `le`.
pub fn parse_histogram(text: &str, name: &str) -> anyhow::Result<Buckets> {
    let prefix = format!("{name}_bucket{{");
    let mut sums: Vec<(f64, u64)> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let labels_end = line.rfind('}').context("no '}' after the labels")?;
        let labels = &line[prefix.len()..labels_end];
        let le = labels
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("le="))
            .map(|v| v.trim_matches('"'))
            .with_context(|| format!("no le label: {line}"))?;
        let le: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().with_context(|| format!("le={le:?}"))?
        };
        let value = line[labels_end + 1..]
            .split_whitespace()
            .next()
            .context("no value")?;
        let v: f64 = value
            .parse()
            .with_context(|| format!("value {value:?} in {line}"))?;
        match sums.iter_mut().find(|s| s.0 == le) {
            Some(s) => s.1 += v as u64,
            None => sums.push((le, v as u64)),
        }
    }
    if sums.is_empty() {
        bail!("no {name}_bucket lines");
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(Buckets { le: sums })
}

/// `last_seen_ms - sample_unix_ms` in ms of every row of `/api/v1/hosts` that is up.
pub fn rows(hosts: &Value) -> Vec<u64> {
    hosts
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["status"] == "up")
                .filter_map(|r| {
                    let seen = r["last_seen_ms"].as_u64()?;
                    let sample = r["sample_unix_ms"].as_u64()?;
                    Some(seen.saturating_sub(sample))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE smon_poll_latency_seconds histogram
smon_poll_latency_seconds_sum{cluster=\"c1\"} 12.5
smon_poll_latency_seconds_count{cluster=\"c1\"} 10
smon_poll_latency_seconds_bucket{le=\"0.5\",cluster=\"c1\"} 4
smon_poll_latency_seconds_bucket{le=\"1.0\",cluster=\"c1\"} 9
smon_poll_latency_seconds_bucket{le=\"2.5\",cluster=\"c1\"} 10
smon_poll_latency_seconds_bucket{le=\"+Inf\",cluster=\"c1\"} 10
smon_poll_latency_seconds_bucket{cluster=\"c2\",le=\"0.5\"} 1
smon_poll_latency_seconds_bucket{cluster=\"c2\",le=\"1.0\"} 1
smon_poll_latency_seconds_bucket{cluster=\"c2\",le=\"2.5\"} 1
smon_poll_latency_seconds_bucket{cluster=\"c2\",le=\"+Inf\"} 2
smon_poll_connect_seconds_bucket{le=\"0.5\",cluster=\"c1\"} 99
# EOF
";

    #[test]
    fn histogram_summed_over_clusters() {
        let b = parse_histogram(TEXT, "smon_poll_latency_seconds").expect("parsed");
        assert_eq!(
            b.le,
            vec![(0.5, 5), (1.0, 10), (2.5, 11), (f64::INFINITY, 12)]
        );
        assert_eq!(b.count(), 12);
        assert_eq!(b.percentile_bound(50.0), Some(1.0));
        assert_eq!(b.percentile_bound(99.0), Some(f64::INFINITY));
        assert_eq!(b.percentile_bound(40.0), Some(0.5));
        assert_eq!(b.share_at_most(2.5), Some(11.0 / 12.0));
        assert!(parse_histogram(TEXT, "smon_nothing").is_err());
    }

    #[test]
    fn histogram_delta() {
        let a = Buckets {
            le: vec![(1.0, 5), (f64::INFINITY, 6)],
        };
        let b = Buckets {
            le: vec![(1.0, 105), (f64::INFINITY, 106)],
        };
        let d = b.since(&a).expect("delta");
        assert_eq!(d.le, vec![(1.0, 100), (f64::INFINITY, 100)]);
        assert_eq!(d.percentile_bound(99.0), Some(1.0));
        assert!(b.since(&Buckets { le: vec![(1.0, 0)] }).is_err());
        assert_eq!(Buckets::default().percentile_bound(50.0), None);
    }

    #[test]
    fn row_ages() {
        let v: Value = serde_json::json!([
            {"status": "up", "last_seen_ms": 1500, "sample_unix_ms": 1000},
            {"status": "down", "last_seen_ms": 9000, "sample_unix_ms": 1000},
            {"status": "up", "last_seen_ms": null, "sample_unix_ms": null},
            {"status": "up", "last_seen_ms": 900, "sample_unix_ms": 1000}
        ]);
        assert_eq!(rows(&v), vec![500, 0]);
    }
}
