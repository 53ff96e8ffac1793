//! Disk-full prediction: a bounded ring of one use point per step per mount, and a
//! least-squares line through it (like Prometheus' `predict_linear`), extrapolated to 100 %.
//!
//! Bounded: [`POINTS`] points of [`STEP_MS`] (6 hours) per mount, 8 bytes each, kept only for
//! hosts in the scope of a `disk_full_within` rule.

use std::collections::VecDeque;

/// One point per this many ms (the last sample of each step is kept).
pub const STEP_MS: u64 = 300_000;
/// Points kept per mount: 6 hours.
pub const POINTS: usize = 72;
/// Points needed before predicting (30 minutes of use).
pub const MIN_POINTS: usize = 6;

/// The use points of one mount.
#[derive(Debug, Clone)]
pub struct DiskRing {
    /// The mount point.
    pub mount: String,
    /// (step number, used percent), oldest first.
    points: VecDeque<(u32, f32)>,
}

/// What the line says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// The line's value now, percent.
    pub now_percent: f64,
    /// Its slope, percent per hour.
    pub percent_per_h: f64,
    /// Hours until 100 %, `None` when use is not growing.
    pub hours_to_full: Option<f64>,
}

impl DiskRing {
    /// An empty ring.
    pub fn new(mount: &str) -> DiskRing {
        DiskRing {
            mount: mount.to_owned(),
            points: VecDeque::new(),
        }
    }

    /// Records `percent` used at `t_ms`; a point in the step of the last one replaces it, a
    /// point older than the last is ignored.
    pub fn record(&mut self, t_ms: u64, percent: f64) {
        if !percent.is_finite() {
            return;
        }
        let step = u32::try_from(t_ms / STEP_MS).unwrap_or(u32::MAX);
        match self.points.back_mut() {
            Some(last) if last.0 == step => last.1 = percent as f32,
            Some(last) if last.0 > step => {}
            _ => {
                if self.points.len() == POINTS {
                    self.points.pop_front();
                }
                self.points.push_back((step, percent as f32));
            }
        }
    }

    /// The points held, `(ms at the start of their step, percent)`, oldest first.
    pub fn points(&self) -> impl Iterator<Item = (u64, f64)> + '_ {
        self.points
            .iter()
            .map(|&(s, p)| (u64::from(s) * STEP_MS, f64::from(p)))
    }

    /// The number of points held.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether it holds no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The least-squares line through the points of the last 6 hours, at `now_ms`; `None`
    /// with fewer than [`MIN_POINTS`] of them.
    pub fn predict(&self, now_ms: u64) -> Option<Prediction> {
        let now_step = now_ms as f64 / STEP_MS as f64;
        let oldest = now_step - POINTS as f64;
        let pts = self.points.iter().filter(|p| f64::from(p.0) >= oldest);
        let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(s, y) in pts {
            // x in steps before now (negative), so that the intercept is the value now.
            let x = f64::from(s) - now_step;
            let y = f64::from(y);
            n += 1.0;
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
        }
        if n < MIN_POINTS as f64 {
            return None;
        }
        let den = n * sxx - sx * sx;
        if den.abs() < f64::EPSILON {
            return None;
        }
        let slope = (n * sxy - sx * sy) / den; // percent per step
        let now_percent = (sy - slope * sx) / n;
        let per_h = slope * 3_600_000.0 / STEP_MS as f64;
        let hours_to_full = (per_h > 1e-9).then(|| ((100.0 - now_percent) / per_h).max(0.0));
        Some(Prediction {
            now_percent,
            percent_per_h: per_h,
            hours_to_full,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    #[test]
    fn a_steady_fill_is_extrapolated_to_full() {
        let mut r = DiskRing::new("/var");
        // 60 % growing 2 % an hour, sampled every minute for 3 hours.
        let t0 = 1_000 * H;
        for m in 0..=180u64 {
            r.record(t0 + m * 60_000, 60.0 + 2.0 * m as f64 / 60.0);
        }
        assert_eq!(r.len(), 37, "one point per 5-minute step");
        let p = r.predict(t0 + 3 * H).expect("enough points");
        assert!((p.percent_per_h - 2.0).abs() < 0.05, "{p:?}");
        assert!((p.now_percent - 66.0).abs() < 0.2, "{p:?}");
        let h = p.hours_to_full.expect("growing");
        assert!((h - 17.0).abs() < 0.3, "{h}");
    }

    #[test]
    fn flat_or_shrinking_use_never_fills_and_few_points_say_nothing() {
        let mut r = DiskRing::new("/");
        for m in 0..5u64 {
            r.record(m * STEP_MS, 50.0);
        }
        assert_eq!(r.predict(5 * STEP_MS), None, "5 points are too few");
        r.record(5 * STEP_MS, 49.0);
        let p = r.predict(5 * STEP_MS).expect("6 points");
        assert_eq!(p.hours_to_full, None);
        // Capacity: 6 hours.
        for m in 0..200u64 {
            r.record((10 + m) * STEP_MS, 50.0);
        }
        assert_eq!(r.len(), POINTS);
        // Points older than 6 hours are not used: a day later there is nothing to fit.
        assert_eq!(r.predict(300 * STEP_MS), None);
    }
}
