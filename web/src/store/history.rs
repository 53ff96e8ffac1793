//! A host's chart history, compact: a ring of fixed-size points (22 bytes, plus one byte per
//! GPU) instead of a queue of structs with a GPU vector each (64 bytes and an allocation).
//! Times are milliseconds after a per-host base (u32), percentages hundredths (u16), network
//! rates f32 (7 significant digits), GPU use whole percent (u8, 255 for unknown). The buffer is
//! allocated once, at its full size, on the first sample, so a host never reached costs nothing.

/// GPU use not reported.
const GPU_UNKNOWN: u8 = u8::MAX;

/// One stored point. `packed(2)`: 22 bytes instead of 24; fields are only read by value.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(2))]
struct Packed {
    /// Milliseconds after `HistoryRing::t0`.
    dt: u32,
    rx: f32,
    tx: f32,
    pids: u32,
    /// Hundredths of a percent.
    cpu: u16,
    mem: u16,
    disk: u16,
}

/// One point, as recorded and as read back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Point {
    /// Sample time (agent clock).
    pub t: u64,
    /// CPU %.
    pub cpu: f32,
    /// Memory %.
    pub mem: f32,
    /// Fullest filesystem %.
    pub disk: f32,
    /// Received B/s.
    pub rx: u64,
    /// Sent B/s.
    pub tx: u64,
    /// Processes.
    pub pids: u32,
}

fn centi(v: f32) -> u16 {
    if v.is_finite() {
        (v.clamp(0.0, 100.0) * 100.0).round() as u16
    } else {
        0
    }
}

fn from_centi(v: u16) -> f32 {
    f32::from(v) / 100.0
}

/// The last `cap` points of one host, oldest first.
#[derive(Debug)]
pub(super) struct HistoryRing {
    cap: usize,
    /// Where the oldest point is once the ring is full (the next one to overwrite).
    head: usize,
    /// Base of the point times.
    t0: u64,
    pts: Vec<Packed>,
    /// GPUs per point (the most any point had).
    stride: usize,
    /// `stride` values per point, at the same ring positions as `pts`.
    gpu: Vec<u8>,
}

impl HistoryRing {
    /// An empty ring for `cap` points (nothing allocated yet).
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            head: 0,
            t0: 0,
            pts: Vec::new(),
            stride: 0,
            gpu: Vec::new(),
        }
    }

    /// Points held.
    pub fn len(&self) -> usize {
        self.pts.len()
    }

    /// GPUs per point: the most any held point reported.
    pub fn gpus(&self) -> usize {
        self.stride
    }

    /// Bytes allocated.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.pts.capacity() * std::mem::size_of::<Packed>() + self.gpu.capacity()
    }

    /// Ring positions, oldest first.
    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.pts.len();
        let start = if n == self.cap { self.head } else { 0 };
        (0..n).map(move |k| (start + k) % n.max(1))
    }

    /// Re-bases the times on `t`, when `t` does not fit the current base. Points that cannot be
    /// expressed any more (a clock jump of weeks) are dropped.
    fn rebase(&mut self, t: u64) {
        let times: Vec<u64> = self
            .order()
            .map(|i| self.t0 + u64::from(self.pts[i].dt))
            .collect();
        let t0 = times.iter().copied().chain([t]).min().unwrap_or(t);
        if times
            .iter()
            .chain([&t])
            .any(|&x| x - t0 > u64::from(u32::MAX))
        {
            self.pts.clear();
            self.gpu.clear();
            self.head = 0;
            self.t0 = t;
            return;
        }
        for (i, x) in self.order().collect::<Vec<_>>().into_iter().zip(times) {
            self.pts[i].dt = (x - t0) as u32;
        }
        self.t0 = t0;
    }

    /// Widens the GPU columns to `n` per point, unknown for the points that had fewer.
    fn widen(&mut self, n: usize) {
        let mut g = Vec::with_capacity(self.cap * n);
        for i in 0..self.pts.len() {
            let old = &self.gpu[i * self.stride..(i + 1) * self.stride];
            g.extend_from_slice(old);
            g.resize((i + 1) * n, GPU_UNKNOWN);
        }
        self.gpu = g;
        self.stride = n;
    }

    /// Records a point, dropping the oldest once full.
    pub fn push(&mut self, p: Point, gpus: impl ExactSizeIterator<Item = Option<u32>>) {
        if self.pts.capacity() == 0 {
            self.pts.reserve_exact(self.cap);
            self.t0 = p.t;
        }
        if p.t < self.t0 || p.t - self.t0 > u64::from(u32::MAX) {
            self.rebase(p.t);
        }
        if gpus.len() > self.stride {
            self.widen(gpus.len());
        }
        let packed = Packed {
            dt: (p.t - self.t0) as u32,
            rx: p.rx as f32,
            tx: p.tx as f32,
            pids: p.pids,
            cpu: centi(p.cpu),
            mem: centi(p.mem),
            disk: centi(p.disk),
        };
        let slot = if self.pts.len() < self.cap {
            self.pts.push(packed);
            self.gpu.resize(self.pts.len() * self.stride, GPU_UNKNOWN);
            self.pts.len() - 1
        } else {
            let i = self.head;
            self.pts[i] = packed;
            self.head = (i + 1) % self.cap;
            i
        };
        let row = &mut self.gpu[slot * self.stride..(slot + 1) * self.stride];
        row.fill(GPU_UNKNOWN);
        for (v, u) in row.iter_mut().zip(gpus) {
            *v = u.map_or(GPU_UNKNOWN, |u| u.min(100) as u8);
        }
    }

    /// Every point, oldest first, with the GPU use of each (`gpus()` values, `None` unknown).
    pub fn iter(&self) -> impl Iterator<Item = (Point, impl Iterator<Item = Option<u32>> + '_)> {
        self.order().map(move |i| {
            let p = self.pts[i];
            let point = Point {
                t: self.t0 + u64::from(p.dt),
                cpu: from_centi(p.cpu),
                mem: from_centi(p.mem),
                disk: from_centi(p.disk),
                rx: p.rx as u64,
                tx: p.tx as u64,
                pids: p.pids,
            };
            let g = self.gpu[i * self.stride..(i + 1) * self.stride]
                .iter()
                .map(|&v| (v != GPU_UNKNOWN).then_some(u32::from(v)));
            (point, g)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: u64, cpu: f32) -> Point {
        Point {
            t,
            cpu,
            mem: 25.5,
            disk: 90.0,
            rx: 1_234_567,
            tx: 0,
            pids: 42,
        }
    }

    fn all(r: &HistoryRing) -> Vec<(Point, Vec<Option<u32>>)> {
        r.iter().map(|(p, g)| (p, g.collect())).collect()
    }

    #[test]
    fn keeps_the_last_points_in_order_at_22_bytes_each() {
        let mut r = HistoryRing::new(3);
        assert_eq!(
            r.heap_bytes(),
            0,
            "nothing allocated before the first sample"
        );
        for i in 1..=5u64 {
            r.push(
                point(1_700_000_000_000 + i * 1000, i as f32 + 0.004),
                [].into_iter(),
            );
        }
        let got = all(&r);
        assert_eq!(got.len(), 3);
        assert_eq!(
            got.iter().map(|(p, _)| p.t).collect::<Vec<_>>(),
            vec![1_700_000_003_000, 1_700_000_004_000, 1_700_000_005_000]
        );
        assert_eq!(got[0].0.cpu, 3.0, "hundredths of a percent");
        assert_eq!(got[2].0, point(1_700_000_005_000, 5.0));
        assert_eq!(r.heap_bytes(), 3 * 22);
    }

    #[test]
    fn gpus_that_appear_later_are_unknown_before() {
        let mut r = HistoryRing::new(4);
        r.push(point(1000, 1.0), [Some(50)].into_iter());
        r.push(point(2000, 1.0), [Some(60), None, Some(101)].into_iter());
        r.push(point(3000, 1.0), [].into_iter());
        assert_eq!(r.gpus(), 3);
        let g: Vec<_> = all(&r).into_iter().map(|(_, g)| g).collect();
        assert_eq!(
            g,
            vec![
                vec![Some(50), None, None],
                vec![Some(60), None, Some(100)],
                vec![None, None, None]
            ]
        );
    }

    #[test]
    fn a_clock_that_goes_back_or_jumps_keeps_the_times() {
        let mut r = HistoryRing::new(4);
        r.push(point(10_000, 1.0), [].into_iter());
        r.push(point(5_000, 2.0), [].into_iter()); // back: re-based
        r.push(point(6_000, 3.0), [].into_iter());
        let t: Vec<_> = all(&r).iter().map(|(p, _)| p.t).collect();
        assert_eq!(t, vec![10_000, 5_000, 6_000]);
        r.push(point(6_000 + (1 << 33), 4.0), [].into_iter()); // weeks later: older ones go
        let t: Vec<_> = all(&r).iter().map(|(p, _)| p.t).collect();
        assert_eq!(t, vec![6_000 + (1 << 33)]);
    }
}
