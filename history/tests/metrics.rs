//! Metric history end to end on real SQLite files: the writer thread, the tiers checked against
//! the raw samples, retention, restart, `kill -9` while writing, and the bytes per value.

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use smon_api::history::Tier;
use smon_history::codec::{self, RawBlock, Rollup};
use smon_history::metrics::{self, Backfill, HOUR, MINUTE};
use smon_history::reader::SqliteHistory;
use smon_history::writer::{Clock, QUEUE, Write, Writer};
use smon_history::{History, Retention, SeriesQuery, StorageOptions};
use smon_proto::{Cpu, Gpu, Snapshot};

/// A day boundary (so hours and days roll at known places).
const T0: u64 = 1_700_006_400_000;

fn clock(start: u64) -> (Arc<AtomicU64>, Clock) {
    let t = Arc::new(AtomicU64::new(start));
    let c = t.clone();
    (t, Arc::new(move || c.load(Ordering::SeqCst)))
}

fn opts(dir: &Path, retention: Retention) -> StorageOptions {
    StorageOptions {
        dir: dir.to_owned(),
        retention,
    }
}

fn cpu_sample(cpu: f32) -> Arc<Snapshot> {
    Arc::new(Snapshot {
        cpu: Some(Cpu {
            total_percent: cpu,
            ..Default::default()
        }),
        process_count: 100,
        ..Default::default()
    })
}

fn sample(host: &str, at_ms: u64, cpu: f32) -> Write {
    Write::Sample {
        host: host.into(),
        at_ms,
        snapshot: cpu_sample(cpu),
    }
}

/// The value as stored (percent x100, rounded).
fn q(cpu: f32) -> i64 {
    (f64::from(cpu) * 100.0).round() as i64
}

fn series_id(c: &Connection, host: &str, metric: &str) -> i64 {
    c.query_row(
        "SELECT s.id FROM series s JOIN hosts h ON h.id = s.host_id \
         WHERE h.name = ?1 AND s.metric = ?2",
        [host, metric],
        |r| r.get(0),
    )
    .expect("series exists")
}

/// Every raw sample time of `host` on disk (blocks and staging).
fn raw_times(path: &Path, host: &str) -> Vec<i64> {
    let c = Connection::open(path).expect("open");
    let hid: i64 = c
        .query_row("SELECT id FROM hosts WHERE name = ?1", [host], |r| r.get(0))
        .expect("host");
    let mut out = Vec::new();
    let mut st = c
        .prepare("SELECT body FROM raw_blocks WHERE host_id = ?1")
        .expect("prepare");
    let bodies: Vec<Vec<u8>> = st
        .query_map([hid], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    for b in bodies {
        out.extend(RawBlock::parse(&b).expect("parse").times().expect("times"));
    }
    let mut st = c
        .prepare("SELECT ts_ms FROM raw_staging WHERE host_id = ?1")
        .expect("prepare");
    out.extend(
        st.query_map([hid], |r| r.get::<_, i64>(0))
            .expect("query")
            .map(|r| r.expect("row")),
    );
    out.sort_unstable();
    out
}

/// Every 1-minute row of a series on disk (blocks and staging).
fn minute_rows(path: &Path, host: &str, metric: &str) -> Vec<Rollup> {
    let c = Connection::open(path).expect("open");
    let sid = series_id(&c, host, metric);
    let mut out = Vec::new();
    let mut st = c
        .prepare("SELECT body FROM minute_blocks WHERE series_id = ?1")
        .expect("prepare");
    let bodies: Vec<Vec<u8>> = st
        .query_map([sid], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    for b in bodies {
        out.extend(codec::decode_rollups(&b).expect("decode"));
    }
    let mut st = c
        .prepare("SELECT t_ms, min, avg, max, n FROM minute_staging WHERE series_id = ?1")
        .expect("prepare");
    out.extend(
        st.query_map([sid], |r| {
            Ok(Rollup {
                t: r.get(0)?,
                min: r.get(1)?,
                avg: r.get(2)?,
                max: r.get(3)?,
                n: r.get(4)?,
            })
        })
        .expect("query")
        .map(|r| r.expect("row")),
    );
    out.sort_by_key(|r| r.t);
    out
}

fn query(metric: &str, from: u64, to: u64, points: usize) -> SeriesQuery {
    SeriesQuery {
        metrics: vec![metric.into()],
        from_ms: from,
        to_ms: to,
        points,
    }
}

/// (min, avg, max) of quantised values, as the API answers them.
fn stats(v: &[i64]) -> (f64, f64, f64) {
    let min = *v.iter().min().expect("values") as f64 / 100.0;
    let max = *v.iter().max().expect("values") as f64 / 100.0;
    let avg = v.iter().sum::<i64>() as f64 / v.len() as f64 / 100.0;
    (min, avg, max)
}

fn cpu_a(i: u64) -> f32 {
    ((i * 37) % 1000) as f32 / 10.0
}

fn cpu_b(i: u64) -> f32 {
    ((i * 53 + 7) % 1000) as f32 / 10.0
}

#[test]
fn tiers_roll_up_to_the_min_avg_max_of_the_raw_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let retention = Retention {
        raw: Duration::from_secs(3600),
        minute: Duration::from_secs(3 * 3600),
        ..Retention::default()
    };
    let (now, clk) = clock(T0);
    let w = Writer::start_with(opts(dir.path(), retention), clk.clone(), QUEUE).expect("start");
    let n = 4 * 3600;
    for i in 0..n {
        let at = T0 + i * 1000 + 3;
        assert!(w.send(sample("lab:a", at, cpu_a(i))));
        assert!(w.send(sample("lab:b", at, cpu_b(i))));
        if i % 60 == 59 {
            now.store(at, Ordering::SeqCst);
            w.sync(Some(at)).expect("sync");
        }
    }
    let end = T0 + 4 * HOUR as u64 + 30_000;
    now.store(end, Ordering::SeqCst);
    w.sync(Some(end)).expect("sync");
    assert_eq!(w.stats().dropped(), 0);
    assert_eq!(w.stats().written(), 2 * n);
    assert_eq!(w.stats().last_error(), None);
    let h = SqliteHistory::open_with(&opts(dir.path(), retention), Some(w.stats()), clk)
        .expect("reader");
    let qa = |i: u64| q(cpu_a(i));
    let qb = |i: u64| q(cpu_b(i));

    // The 1-minute tier: an hour that is past the raw tier's hour.
    let from = T0 + 2 * HOUR as u64;
    let a = h
        .host_series(
            "lab:a",
            &query("cpu_percent", from, from + HOUR as u64 - 1, 60),
        )
        .expect("minute query");
    assert_eq!(a.tier, Tier::Minute);
    assert_eq!(a.step_ms, MINUTE as u64);
    assert_eq!(a.t.len(), 60);
    let s = &a.series[0];
    for m in 0..60u64 {
        let first = 7200 + m * 60;
        let v: Vec<i64> = (first..first + 60).map(qa).collect();
        let (min, avg, max) = stats(&v);
        assert_eq!(a.t[m as usize], from + m * 60_000);
        assert_eq!(s.min[m as usize], Some(min), "minute {m}");
        assert_eq!(s.max[m as usize], Some(max), "minute {m}");
        let got = s.avg[m as usize].expect("avg");
        assert!(
            (got - avg).abs() <= 0.005 + 1e-9,
            "minute {m}: {got} vs {avg}"
        );
    }

    // The 1-hour tier: the whole range is older than the 1-minute tier's 3 hours.
    let a = h
        .host_series(
            "lab:a",
            &query("cpu_percent", T0, T0 + 4 * HOUR as u64 - 1, 4),
        )
        .expect("hour query");
    assert_eq!(a.tier, Tier::Hour);
    assert_eq!(a.t.len(), 4);
    for hr in 0..4u64 {
        let v: Vec<i64> = (hr * 3600..(hr + 1) * 3600).map(qa).collect();
        let (min, avg, max) = stats(&v);
        let s = &a.series[0];
        assert_eq!(s.min[hr as usize], Some(min), "hour {hr}");
        assert_eq!(s.max[hr as usize], Some(max), "hour {hr}");
        let got = s.avg[hr as usize].expect("avg");
        assert!((got - avg).abs() <= 0.01, "hour {hr}: {got} vs {avg}");
    }

    // The cluster's aggregate: the mean of its two hosts, minute by minute.
    let c = h
        .cluster_series(
            "lab",
            &query("cpu_percent", from, from + 10 * 60_000 - 1, 10),
        )
        .expect("cluster query");
    assert_eq!(c.of, "lab");
    assert_eq!(c.tier, Tier::Minute);
    for m in 0..10u64 {
        let first = 7200 + m * 60;
        let va: Vec<i64> = (first..first + 60).map(qa).collect();
        let vb: Vec<i64> = (first..first + 60).map(qb).collect();
        let (mina, avga, maxa) = stats(&va);
        let (minb, avgb, maxb) = stats(&vb);
        let s = &c.series[0];
        let near = |got: Option<f64>, want: f64| {
            let got = got.expect("value");
            assert!((got - want).abs() <= 0.011, "minute {m}: {got} vs {want}");
        };
        near(s.min[m as usize], (mina + minb) / 2.0);
        near(s.avg[m as usize], (avga + avgb) / 2.0);
        near(s.max[m as usize], (maxa + maxb) / 2.0);
    }
    // Processes: a sum over the hosts.
    let p = h
        .cluster_series("lab", &query("processes", from, from + 59_999, 1))
        .expect("cluster processes");
    assert_eq!(p.series[0].avg, [Some(200.0)]);

    // The raw tier: every sample as it was, one per 1-second point.
    let from = end - 30 * 60_000;
    let r = h
        .host_series("lab:b", &query("cpu_percent", from, end, 5000))
        .expect("raw query");
    assert_eq!(r.tier, Tier::Raw);
    assert_eq!(r.step_ms, 1000);
    let s = &r.series[0];
    let mut seen = 0;
    for (k, t) in r.t.iter().enumerate() {
        if *t < T0 + n * 1000 && *t >= from {
            let i = (*t - T0) / 1000;
            assert_eq!(s.avg[k], Some(qb(i) as f64 / 100.0), "sample {i}");
            assert_eq!(s.min[k], s.max[k]);
            seen += 1;
        } else {
            assert_eq!(s.avg[k], None, "a gap stays null");
        }
    }
    assert!(seen >= 1700, "{seen} raw points");
    w.stop().expect("stop");
}

/// The corrected-ECC count of GPU 0 at second `i`: rises by 1-3 at irregular seconds.
fn ecc_at(i: u64) -> u64 {
    (0..=i).filter(|k| (k * 7919).is_multiple_of(251)).count() as u64 * 2 + i / 1000
}

fn gpu_sample(host: &str, at_ms: u64, i: u64) -> Write {
    Write::Sample {
        host: host.into(),
        at_ms,
        snapshot: Arc::new(Snapshot {
            gpus: vec![Gpu {
                index: 0,
                uuid: "GPU-a".into(),
                ecc_corrected_errors: Some(ecc_at(i)),
                // Half the time under the power cap, in 10-minute spells.
                throttle_reasons: if (i / 600).is_multiple_of(2) {
                    vec!["sw_power_cap".into()]
                } else {
                    Vec::new()
                },
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// A GPU of a host with GPU use `util` (its UUID `GPU-<name>`, or none when `name` is empty).
fn gpu(index: u32, name: &str, util: u32) -> Gpu {
    Gpu {
        index,
        uuid: if name.is_empty() {
            String::new()
        } else {
            format!("GPU-{name}")
        },
        utilization_percent: Some(util),
        ..Default::default()
    }
}

#[test]
fn a_gpu_keeps_its_series_when_another_falls_off_the_bus() {
    // GPUs A (index 0), B (1) and C (2) for 20 minutes; then B falls off the bus and the
    // driver numbers the rest anew: A (0), C (1). C's history goes on under C's UUID, and no
    // value of C lands under B's (or under an index).
    let dir = tempfile::tempdir().expect("tempdir");
    let (now, clk) = clock(T0);
    let o = opts(dir.path(), Retention::default());
    let w = Writer::start_with(o.clone(), clk.clone(), QUEUE).expect("start");
    let n = 40 * 60u64;
    for i in 0..n {
        let gpus = if i < n / 2 {
            vec![gpu(0, "A", 10), gpu(1, "B", 20), gpu(2, "C", 40)]
        } else {
            vec![gpu(0, "A", 10), gpu(1, "C", 40)]
        };
        let at = T0 + i * 1000;
        w.send(Write::Sample {
            host: "lab:g".into(),
            at_ms: at,
            snapshot: Arc::new(Snapshot {
                gpus,
                ..Default::default()
            }),
        });
        if i % 60 == 59 {
            now.store(at, Ordering::SeqCst);
            w.sync(Some(at)).expect("sync");
        }
    }
    // A host without UUIDs (an older agent): its GPU keeps its index label.
    w.send(Write::Sample {
        host: "lab:old".into(),
        at_ms: T0 + 5_000,
        snapshot: Arc::new(Snapshot {
            gpus: vec![gpu(2, "", 50)],
            ..Default::default()
        }),
    });
    let end = T0 + n * 1000 + 30_000;
    now.store(end, Ordering::SeqCst);
    w.sync(Some(end)).expect("sync");
    assert_eq!(w.stats().last_error(), None);
    let h = SqliteHistory::open_with(&o, Some(w.stats()), clk).expect("reader");
    let to = T0 + n * 1000 - 1;

    let a = h
        .host_series("lab:g", &query("gpu_utilization_percent", T0, to, 40))
        .expect("query");
    assert_eq!(a.tier, Tier::Raw);
    let labels: Vec<&str> = a.series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        ["GPU-A", "GPU-B", "GPU-C"],
        "one series per UUID, none per index"
    );
    let of = |l: &str| &a.series.iter().find(|s| s.label == l).expect(l).avg;
    assert_eq!(of("GPU-A"), &vec![Some(10.0); 40]);
    assert_eq!(
        of("GPU-C"),
        &vec![Some(40.0); 40],
        "C goes on under its UUID"
    );
    let b = of("GPU-B");
    assert!(b[..20].iter().all(|v| *v == Some(20.0)), "{b:?}");
    assert!(
        b[20..].iter().all(Option::is_none),
        "nothing lands under B: {b:?}"
    );
    // One GPU by its UUID.
    let c = h
        .host_series("lab:g", &query("gpu_utilization_percent{GPU-C}", T0, to, 4))
        .expect("query");
    assert_eq!(c.series.len(), 1);
    assert_eq!(c.series[0].avg, [Some(40.0); 4]);

    let old = h
        .host_series("lab:old", &query("gpu_utilization_percent", T0, to, 1))
        .expect("query");
    assert_eq!(old.series[0].label, "2");

    // The cluster: every GPU of its hosts in one series, `all` (the mean of A, B and C, then
    // of A and C; lab:old's one second is in the first minute only).
    let cl = h
        .cluster_series("lab", &query("gpu_utilization_percent", T0 + 60_000, to, 2))
        .expect("cluster");
    let labels: Vec<&str> = cl.series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["all"]);
    assert_eq!(cl.series[0].avg, [Some(23.33), Some(25.0)]);
    w.stop().expect("stop");
}

#[test]
fn a_counter_rolls_up_to_its_last_value_and_a_throttle_share_to_its_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let retention = Retention {
        raw: Duration::from_secs(3600),
        minute: Duration::from_secs(3 * 3600),
        ..Retention::default()
    };
    let (now, clk) = clock(T0);
    let w = Writer::start_with(opts(dir.path(), retention), clk.clone(), QUEUE).expect("start");
    let n: u64 = 3 * 3600;
    // A running count, so that the test does not sum from 0 at every second.
    let counts: Vec<u64> = {
        let mut c = 0u64;
        (0..n)
            .map(|i| {
                if (i * 7919).is_multiple_of(251) {
                    c += 2;
                }
                c + i / 1000
            })
            .collect()
    };
    assert_eq!(counts[4000], ecc_at(4000));
    for i in 0..n {
        let at = T0 + i * 1000 + 3;
        assert!(w.send(gpu_sample("lab:g", at, i)));
        if i % 60 == 59 {
            now.store(at, Ordering::SeqCst);
            w.sync(Some(at)).expect("sync");
        }
    }
    let end = T0 + 3 * HOUR as u64 + 30_000;
    now.store(end, Ordering::SeqCst);
    w.sync(Some(end)).expect("sync");
    assert_eq!(w.stats().last_error(), None);
    let h = SqliteHistory::open_with(&opts(dir.path(), retention), Some(w.stats()), clk)
        .expect("reader");

    // The 1-minute tier (the third hour is past the raw tier's hour): each minute's max is
    // the count at its last second, its min the count at its first.
    let from = T0 + 2 * HOUR as u64;
    let a = h
        .host_series(
            "lab:g",
            &query(
                "gpu_ecc_corrected_errors{GPU-a}",
                from,
                from + HOUR as u64 - 1,
                60,
            ),
        )
        .expect("minute query");
    assert_eq!(a.tier, Tier::Minute);
    let s = &a.series[0];
    assert_eq!(s.label, "GPU-a");
    for m in 0..60usize {
        let first = 7200 + m * 60;
        assert_eq!(s.max[m], Some(counts[first + 59] as f64), "minute {m}");
        assert_eq!(s.min[m], Some(counts[first] as f64), "minute {m}");
    }

    // The 1-hour tier: the max of the maxes is the count at the hour's last second.
    let a = h
        .host_series(
            "lab:g",
            &query("gpu_ecc_corrected_errors", T0, T0 + 3 * HOUR as u64 - 1, 3),
        )
        .expect("hour query");
    assert_eq!(a.tier, Tier::Hour);
    for hr in 0..3usize {
        assert_eq!(
            a.series[0].max[hr],
            Some(counts[hr * 3600 + 3599] as f64),
            "hour {hr}"
        );
        assert_eq!(
            a.series[0].min[hr],
            Some(counts[hr * 3600] as f64),
            "hour {hr}"
        );
    }

    // The power-cap share: an hour's mean is the part of the hour under the cap (half), a
    // 10-minute spell's is all or nothing.
    let p = h
        .host_series(
            "lab:g",
            &query(
                "gpu_throttle_power_percent",
                T0,
                T0 + 3 * HOUR as u64 - 1,
                3,
            ),
        )
        .expect("hour query");
    assert_eq!(p.series[0].avg, [Some(50.0); 3]);
    let p = h
        .host_series(
            "lab:g",
            &query(
                "gpu_throttle_power_percent",
                from,
                from + HOUR as u64 - 1,
                6,
            ),
        )
        .expect("minute query");
    assert_eq!(
        p.series[0].avg,
        [100.0, 0.0, 100.0, 0.0, 100.0, 0.0].map(Some)
    );
    assert_eq!(p.series[0].max[1], Some(0.0));
    w.stop().expect("stop");
}

#[test]
fn downsampling_keeps_spikes_and_answers_about_the_points_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (now, clk) = clock(T0);
    let o = opts(dir.path(), Retention::default());
    let w = Writer::start_with(o.clone(), clk.clone(), QUEUE).expect("start");
    for i in 0..3600u64 {
        let v = if i == 1234 { 99.0 } else { 10.0 };
        w.send(sample("lab:a", T0 + i * 1000, v));
    }
    now.store(T0 + HOUR as u64, Ordering::SeqCst);
    w.sync(None).expect("sync");
    let h = SqliteHistory::open_with(&o, None, clk).expect("reader");
    let a = h
        .host_series("lab:a", &query("cpu_percent", T0, T0 + HOUR as u64, 100))
        .expect("query");
    assert_eq!(a.tier, Tier::Raw);
    assert_eq!(a.step_ms, 37_000);
    assert!(a.t.len() <= 101 && a.t.len() >= 99, "{} points", a.t.len());
    let s = &a.series[0];
    let spike = s.max.iter().filter(|m| **m == Some(99.0)).count();
    assert_eq!(spike, 1, "the one-second spike survives downsampling");
    assert!(s.min.iter().flatten().all(|m| *m == 10.0));
    // Every label of a family, and bad input.
    let e = h
        .host_series("lab:a", &query("cpu_percent", 5, 4, 10))
        .expect_err("from > to");
    assert!(e.to_string().contains("after 'to'"), "{e}");
    let e = h
        .host_series("lab:a", &query("bogus", 1, 4, 10))
        .expect_err("unknown");
    assert!(e.to_string().contains("unknown metric 'bogus'"), "{e}");
    let none = h
        .host_series("lab:zzz", &query("cpu_percent", T0, T0 + 1000, 10))
        .expect("unknown host");
    assert!(none.series.is_empty());
    w.stop().expect("stop");
}

#[test]
fn retention_deletes_what_is_past_its_age_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let retention = Retention {
        raw: Duration::from_secs(3600),
        minute: Duration::from_secs(5400),
        ..Retention::default()
    };
    let (now, clk) = clock(T0);
    let o = opts(dir.path(), retention);
    let w = Writer::start_with(o.clone(), clk.clone(), QUEUE).expect("start");
    let n = 3 * 3600u64;
    for i in 0..n {
        let at = T0 + i * 1000;
        w.send(sample("lab:a", at, cpu_a(i)));
        if i % 60 == 59 {
            now.store(at, Ordering::SeqCst);
            w.sync(Some(at)).expect("sync");
        }
    }
    let end = T0 + n * 1000;
    now.store(end, Ordering::SeqCst);
    w.sync(Some(end)).expect("sync");
    let path = o.db_path();

    // Raw: every sample younger than an hour is there; no block is wholly older.
    let cut = (end - 3_600_000) as i64;
    let times = raw_times(&path, "lab:a");
    let young: Vec<i64> = (0..n)
        .map(|i| (T0 + i * 1000) as i64)
        .filter(|t| *t >= cut)
        .collect();
    let kept_young: Vec<i64> = times.iter().copied().filter(|t| *t >= cut).collect();
    assert_eq!(kept_young, young);
    let old = times.iter().filter(|t| **t < cut).count();
    assert!(
        old < 600,
        "{old} samples past their age remain (at most one block's)"
    );
    let c = Connection::open(&path).expect("open");
    let stale: i64 = c
        .query_row(
            "SELECT count(*) FROM raw_blocks WHERE end_ms < ?1",
            [cut],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(stale, 0);
    // ... and the reader hides what is past the age inside a kept block.
    let h = SqliteHistory::open_with(&o, None, clk).expect("reader");
    let r = h
        .host_series(
            "lab:a",
            &query("cpu_percent", cut as u64 - 600_000, end, 5000),
        )
        .expect("query");
    assert_eq!(
        r.tier,
        Tier::Minute,
        "a range past the raw tier's age reads minutes"
    );
    let r = h
        .host_series("lab:a", &query("cpu_percent", cut as u64, end, 5000))
        .expect("query");
    assert_eq!(r.tier, Tier::Raw);
    let shown = r.series[0].avg.iter().flatten().count();
    assert_eq!(shown, young.len());

    // 1-minute tier: every minute younger than 90 minutes, none wholly older.
    let mcut = (end - 5_400_000) as i64;
    let rows = minute_rows(&path, "lab:a", "cpu_percent");
    let young_minutes: Vec<i64> = (0..n / 60)
        .map(|m| (T0 + m * 60_000) as i64)
        .filter(|t| *t >= mcut)
        // The last minute waits for its grace period.
        .filter(|t| *t < (end - 60_000) as i64)
        .collect();
    let kept: Vec<i64> = rows.iter().map(|r| r.t).filter(|t| *t >= mcut).collect();
    assert_eq!(kept, young_minutes);
    assert!(rows.iter().filter(|r| r.t < mcut).count() < 60);
    let stale: i64 = c
        .query_row(
            "SELECT count(*) FROM minute_blocks WHERE end_ms < ?1",
            [mcut],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(stale, 0);
    // The 1-hour tier keeps everything (2 years).
    let hours: i64 = c
        .query_row("SELECT count(*) FROM hour_staging", [], |r| r.get(0))
        .expect("count");
    assert!(hours >= 3 * 2, "{hours} hour rows (2 series x 3 hours)");
    w.stop().expect("stop");
}

#[test]
fn history_and_open_minutes_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), Retention::default());
    let (now, clk) = clock(T0);
    let w = Writer::start_with(o.clone(), clk.clone(), QUEUE).expect("start");
    for i in 0..90u64 {
        w.send(sample("lab:a", T0 + i * 1000, i as f32));
    }
    w.stop().expect("stop");

    let w = Writer::start_with(o.clone(), clk.clone(), QUEUE).expect("restart");
    for i in 90..180u64 {
        w.send(sample("lab:a", T0 + i * 1000, i as f32));
    }
    now.store(T0 + 180_000, Ordering::SeqCst);
    w.sync(None).expect("sync");
    let h = SqliteHistory::open_with(&o, None, clk).expect("reader");
    let r = h
        .host_series("lab:a", &query("cpu_percent", T0, T0 + 179_999, 5000))
        .expect("query");
    let got: Vec<f64> = r.series[0].avg.iter().flatten().copied().collect();
    let want: Vec<f64> = (0..180).map(f64::from).collect();
    assert_eq!(got, want, "every sample from before and after the restart");

    // The minute that spans the restart is rolled up from both halves.
    w.sync(Some(T0 + 3 * 60_000 + 10_000)).expect("roll up");
    w.stop().expect("stop");
    let rows = minute_rows(&o.db_path(), "lab:a", "cpu_percent");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].t, (T0 + 60_000) as i64);
    assert_eq!((rows[1].min, rows[1].max, rows[1].n), (6000, 11900, 60));
    assert_eq!(rows[1].avg, 8950);
}

const KILL_ENV: &str = "SMON_HISTORY_KILL_DIR";

/// The child of `kill_9_while_writing_leaves_a_readable_database`: writes until killed.
#[test]
#[ignore = "a child process of kill_9_while_writing_leaves_a_readable_database"]
fn child_writer_for_kill_9() {
    let dir = std::env::var(KILL_ENV).expect("run by the kill -9 test");
    let (now, clk) = clock(T0);
    let w =
        Writer::start_with(opts(Path::new(&dir), Retention::default()), clk, QUEUE).expect("start");
    let mut out = std::io::stdout();
    for i in 0u64.. {
        let at = T0 + i * 1000;
        // Simulated time runs 500 times faster, so blocks and rollups are written (and killed
        // in the middle of) too.
        now.store(at, Ordering::SeqCst);
        w.send(sample("lab:k", at, (i % 100) as f32));
        if i % 10 == 0 {
            let _ = writeln!(out, "sent {i}");
            let _ = out.flush();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn kill_9_while_writing_leaves_a_readable_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "child_writer_for_kill_9",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line
                .strip_prefix("sent ")
                .and_then(|s| s.parse::<u64>().ok())
            {
                let _ = tx.send((i, Instant::now()));
            }
        }
    });
    let mut sent: Vec<(u64, Instant)> = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(x) = rx.recv_timeout(Duration::from_millis(100)) {
            sent.push(x);
        }
        // Enough to have written blocks and rollups: 20 simulated minutes.
        if sent
            .last()
            .is_some_and(|(i, t)| *i >= 1200 && t.elapsed() < Duration::from_secs(1))
            && sent
                .iter()
                .any(|(_, t)| t.elapsed() > Duration::from_secs(4))
        {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    let killed = Instant::now();
    let _ = child.wait();
    while let Ok(x) = rx.try_recv() {
        sent.push(x);
    }
    assert!(sent.len() > 100, "the child wrote ({} lines)", sent.len());

    let path = dir.path().join(smon_history::db::FILE_NAME);
    let c = Connection::open(&path).expect("open after kill");
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ok, "ok");
    drop(c);
    let times = raw_times(&path, "lab:k");
    // Loss is bounded: what was handed over more than ~2 s before the kill is on disk
    // (1 s batches; 1 s of slack for a loaded machine).
    let bound = sent
        .iter()
        .filter(|(_, t)| killed.duration_since(*t) > Duration::from_secs(3))
        .map(|(i, _)| *i)
        .max()
        .expect("lines older than the bound");
    let want: Vec<i64> = (0..=bound).map(|i| (T0 + i * 1000) as i64).collect();
    assert!(
        times.len() >= want.len() && times[..want.len()] == want[..],
        "samples 0..={bound} are all on disk ({} stored)",
        times.len()
    );
    // The writer starts again on the killed file and keeps rolling up.
    let (_, clk) = clock(T0 + (bound + 600) * 1000);
    let w = Writer::start_with(opts(dir.path(), Retention::default()), clk, QUEUE)
        .expect("restart after kill");
    w.sync(Some(T0 + (bound + 600) * 1000)).expect("roll up");
    w.stop().expect("stop");
    let rows = minute_rows(&path, "lab:k", "cpu_percent");
    assert!(
        rows.len() as u64 >= bound / 60,
        "{} minute rows",
        rows.len()
    );
}

/// Backfills `b` and measures the raw tier's blocks on disk (bytes).
fn raw_bytes(o: &StorageOptions, b: &Backfill) -> (metrics::Backfilled, i64) {
    let done = metrics::backfill(&o.db_path(), &o.retention, b).expect("backfill");
    let c = Connection::open(o.db_path()).expect("open");
    let staged: i64 = c
        .query_row("SELECT count(*) FROM raw_staging", [], |r| r.get(0))
        .expect("count");
    assert_eq!(staged, 0, "a backfill writes blocks only");
    let bytes: i64 = c
        .query_row(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN \
             ('raw_blocks', 'raw_blocks_end', 'sqlite_autoindex_raw_blocks_1')",
            [],
            |r| r.get(0),
        )
        .expect("dbstat");
    (done, bytes)
}

#[test]
fn raw_tier_stays_under_two_bytes_per_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), Retention::default());
    let b = Backfill {
        hosts: 10,
        clusters: 2,
        from_ms: T0,
        to_ms: T0 + HOUR as u64,
        interval_ms: 1000,
        seed: 1,
        gpus: 0,
    };
    let (done, bytes) = raw_bytes(&o, &b);
    assert_eq!(done.samples, 10 * 3600);
    assert_eq!(done.values, done.samples * 24, "24 series a host");
    let per_value = bytes as f64 / done.values as f64;
    println!(
        "raw tier: {bytes} bytes for {} values = {per_value:.3} bytes/value",
        done.values
    );
    assert!(per_value <= 2.0, "{per_value} bytes per value");

    // The backfill is history like any other: a host's hour and its cluster's.
    let (_, clk) = clock(T0 + HOUR as u64);
    let h = SqliteHistory::open_with(&o, None, clk).expect("reader");
    let a = h
        .host_series(
            "c1:node3",
            &query("net_rx_bytes_per_s", T0, T0 + HOUR as u64 - 1, 60),
        )
        .expect("host");
    assert_eq!(a.series.len(), 2, "eth0 and eth1");
    assert!(a.series.iter().all(|s| s.avg.iter().all(Option::is_some)));
    let c = h
        .cluster_series("c1", &query("cpu_percent", T0, T0 + HOUR as u64 - 1, 60))
        .expect("cluster");
    assert_eq!(c.t.len(), 60);
    assert!(c.series[0].avg.iter().all(Option::is_some));
    let st = h.storage().expect("storage");
    let raw = st.tiers.iter().find(|t| t.name == "raw").expect("raw tier");
    // The blocks plus the (empty) staging table's page.
    assert!(
        raw.bytes >= bytes as u64 && raw.bytes <= bytes as u64 + 8192,
        "{raw:?}"
    );
    assert_eq!(raw.retention_s, 86_400);
    // The start of the oldest block's window (windows are staggered by host).
    let oldest = raw.oldest_ms.expect("oldest");
    assert!((T0 - 600_000..=T0).contains(&oldest), "{oldest}");
}

#[test]
fn gpu_hosts_with_health_signals_stay_under_two_bytes_per_value() {
    // 8 GPUs a host, each with use, memory, power and the health signals: the counters and
    // the throttle shares mostly hold still, and must cost next to nothing.
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), Retention::default());
    let b = Backfill {
        hosts: 3,
        clusters: 1,
        from_ms: T0,
        to_ms: T0 + HOUR as u64,
        interval_ms: 1000,
        seed: 1,
        gpus: 8,
    };
    let (done, bytes) = raw_bytes(&o, &b);
    assert_eq!(done.samples, 3 * 3600);
    // 24 host series, and per GPU 6 of use (no fan) and 10 of health.
    assert_eq!(done.values, done.samples * (24 + 8 * 16), "values a sample");
    let per_value = bytes as f64 / done.values as f64;
    println!(
        "raw tier with 8 GPUs a host: {bytes} bytes for {} values = {per_value:.3} bytes/value",
        done.values
    );
    assert!(per_value <= 2.0, "{per_value} bytes per value");
    // The 1-minute tier: one block per series and hour; a series that holds still is small.
    let c = Connection::open(o.db_path()).expect("open");
    let (series, minute_bytes): (i64, i64) = c
        .query_row(
            "SELECT (SELECT count(*) FROM minute_blocks), \
             (SELECT sum(pgsize) FROM dbstat WHERE name = 'minute_blocks')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("dbstat");
    println!(
        "minute tier: {minute_bytes} bytes for {series} series-hours = {:.0} bytes each",
        minute_bytes as f64 / series as f64
    );
    assert!(series >= 3 * (24 + 8 * 16), "{series} minute blocks");

    // A counter reads back as it was written: every other GPU's corrected ECC count.
    let (_, clk) = clock(T0 + HOUR as u64);
    let h = SqliteHistory::open_with(&o, None, clk).expect("reader");
    let a = h
        .host_series(
            "c0:node1",
            // GPU 1 of host 1, by its UUID (the backfill's seed of host 1 is 1 + 7919).
            &query(
                &format!("gpu_ecc_corrected_errors{{GPU-{:08x}-1}}", 1u64 + 7919),
                T0,
                T0 + HOUR as u64 - 1,
                2,
            ),
        )
        .expect("host");
    let want = |t: u64| (t / 1_800_000 % 1000) as f64;
    assert_eq!(a.series.len(), 1);
    assert_eq!(
        a.series[0].max,
        [
            Some(want(T0 + 1_799_000)),
            Some(want(T0 + HOUR as u64 - 1000))
        ]
    );
}

#[test]
fn the_writer_hands_processes_and_sessions_to_process_history() {
    use smon_history::Shown;
    use smon_proto::{Process, Session};
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path(), Retention::default());
    let (now, clk) = clock(T0);
    let w = Writer::start_with(o.clone(), clk.clone(), QUEUE).expect("start");
    let procs = Snapshot {
        processes: (1..=3)
            .map(|pid| Process {
                pid,
                name: format!("job{pid}"),
                user: "ann".into(),
                cmdline: format!("job{pid} --fast"),
                cpu_percent: pid as f32 * 10.0,
                memory_bytes: u64::from(pid) << 20,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    assert!(w.send(Write::Processes {
        host: "lab:a".into(),
        at_ms: T0 + 1_000,
        snapshot: Arc::new(procs),
    }));
    let with_session = Snapshot {
        sessions: vec![Session {
            user: "ann".into(),
            terminal: "pts/0".into(),
            login_unix_ms: T0,
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(w.send(Write::Sample {
        host: "lab:a".into(),
        at_ms: T0 + 2_000,
        snapshot: Arc::new(with_session),
    }));
    now.store(T0 + 120_000, Ordering::SeqCst);
    w.sync(Some(T0 + 120_000)).expect("sync");
    let h = SqliteHistory::open_with(&o, Some(w.stats()), clk).expect("reader");
    let shown = Shown {
        command_lines: true,
        process_users: true,
    };
    let p = h
        .processes_at("lab:a", T0 + 30_000, shown)
        .expect("processes");
    assert_eq!(p.at, Some(T0));
    assert_eq!(p.top_cpu.first().map(|x| x.pid), Some(3));
    assert_eq!(
        p.top_cpu.first().map(|x| x.cmdline.as_str()),
        Some("job3 --fast")
    );
    let logins = smon_history::procs::logins(
        &Connection::open(o.db_path()).expect("open"),
        "lab:a",
        T0 - 1,
        T0 + 60_000,
    )
    .expect("logins");
    assert_eq!(logins.len(), 1, "{logins:?}");
    let st = h.storage().expect("storage");
    let names: Vec<&str> = st.tiers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["raw", "minute", "hour", "processes", "events"]);
    assert!(st.bytes > 0);
    assert_eq!(st.write_error, None);
    w.stop().expect("stop");
}

#[test]
fn a_full_disk_is_reported_and_the_writer_recovers_when_space_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let retention = Retention {
        raw: Duration::from_secs(600),
        ..Retention::default()
    };
    let o = opts(dir.path(), retention);
    let conn = smon_history::db::open_writer(&o.db_path()).expect("open");
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .expect("page_count");
    // SQLite answers SQLITE_FULL past this size, as on a full disk.
    let _: i64 = conn
        .query_row(
            &format!("PRAGMA max_page_count = {}", pages + 40),
            [],
            |r| r.get(0),
        )
        .expect("max_page_count");
    let (now, clk) = clock(T0);
    let w = Writer::start_on(conn, o.clone(), clk.clone(), QUEUE).expect("start");
    let mut full = None;
    for i in 0..20_000u64 {
        for h in 0..20 {
            w.send(sample(&format!("lab:n{h}"), T0 + i * 1000, cpu_a(i + h)));
        }
        if i % 30 == 29
            && let Err(e) = w.sync(None)
        {
            full = Some((i, e.to_string()));
            break;
        }
    }
    let (filled_at, e) = full.expect("the disk filled up");
    assert!(e.contains("full"), "{e}");
    let stats = w.stats();
    assert!(stats.last_error().is_some_and(|e| e.contains("full")));
    assert!(stats.failed() > 0);
    let written = stats.written();
    // Retention frees space (everything is past 10 minutes an hour later): writes work again.
    let later = T0 + (filled_at + 3600) * 1000;
    now.store(later, Ordering::SeqCst);
    w.sync(Some(later)).expect("retention frees pages");
    w.send(sample("lab:n0", later, 42.0));
    w.sync(None).expect("writes work again");
    assert_eq!(stats.last_error(), None);
    assert_eq!(stats.written(), written + 1);
    let h = SqliteHistory::open_with(&o, Some(stats), clk).expect("reader");
    let r = h
        .host_series("lab:n0", &query("cpu_percent", later - 1000, later, 10))
        .expect("query");
    assert!(r.series[0].avg.contains(&Some(42.0)));
    w.stop().expect("stop");
}
