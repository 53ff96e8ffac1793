//! Overview deltas: which fields of a host row the overview room must hear about, as a
//! [`RowPatch`] against the row the room already has (the store's copy of what it sent).
//!
//! Most fields are sent whenever they change; a few that the overview shows coarsely, or not at
//! all, are sent only once they moved enough to matter, so that an idle fleet's delta is little
//! more than the sample times and the new sparkline points:
//! - `uptime_s` every second during the first 10 minutes (shown to the second), then when it
//!   moved by a minute, or went back (a reboot);
//! - `last_seen_ms` while the host is not `up` (its data age is shown then), on a status
//!   change, and once a minute;
//! - `mem_used_bytes` when it moved by 1 % of the total memory (`mem_percent`, shown, is sent
//!   on every change);
//! - network rates (by 10 %) and `processes` (by 5 %), which the overview does not show, only
//!   along with `last_seen_ms` (about once a minute);
//! - GPUs: the whole list only when it changed (count, names, totals); otherwise the use of
//!   every GPU when one changed (`gpu_util`), and the memory in use when one moved by 1 % of
//!   its total (`gpu_mem_used_bytes`).
//!
//! What was not sent stays in the room's copy, so a client that applies every delta holds
//! exactly the rows a resubscribe would give it ([`apply`] is the browser's side, for tests).

use crate::wire::{GpuBrief, HostRow, RowPatch, Status};
#[cfg(test)]
use crate::wire::{LayoutChange, OverviewDelta};

/// Uptime is shown to the second below this.
const UPTIME_EXACT_BELOW_S: u64 = 600;
/// Otherwise it is resent when it moved this far.
const UPTIME_STEP_S: u64 = 60;
/// `last_seen_ms` of an `up` host is resent when it moved this far.
const LAST_SEEN_STEP_MS: u64 = 60_000;

/// Whether `a -> b` moved by `step` or more (any change to or from unknown counts).
fn moved_by(a: Option<u64>, b: Option<u64>, step: u64) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x.abs_diff(y) >= step.max(1),
        _ => a != b,
    }
}

/// Whether `a -> b` moved by `1/divisor` of the larger of the two.
fn moved_rel(a: Option<u64>, b: Option<u64>, divisor: u64) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x.abs_diff(y) >= (x.max(y) / divisor).max(1),
        _ => a != b,
    }
}

fn uptime_moved(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => y < x || y < UPTIME_EXACT_BELOW_S || y - x >= UPTIME_STEP_S,
        _ => a != b,
    }
}

/// Whether the GPU list itself changed (count, indices, totals, and names when `texts`): then
/// it is resent whole; otherwise only the use and memory columns that moved.
fn gpu_list_changed(a: &[GpuBrief], b: &[GpuBrief], texts: bool) -> bool {
    a.len() != b.len()
        || a.iter().zip(b).any(|(x, y)| {
            x.index != y.index
                || x.mem_total_bytes != y.mem_total_bytes
                || x.active_instances != y.active_instances
                || texts && (x.name != y.name || x.uuid != y.uuid || x.error != y.error)
        })
}

/// The patch that brings `sent` (the room's copy) up to `live`, or `None` when nothing worth
/// sending changed; `sent` is updated with what the patch carries. `new_points` is how many
/// sparkline points `live` gained since the last patch; `texts` whether any text field (host
/// name, OS, kernel, error, mount point, GPU names) may have changed: comparing them touches
/// memory far from the row, so they are skipped when the store knows they did not. The address
/// and tags change only on a configuration reload, which sets `texts` too.
pub(super) fn diff(
    sent: &mut HostRow,
    live: &HostRow,
    new_points: usize,
    texts: bool,
    ix: usize,
    now_ms: u64,
) -> Option<RowPatch> {
    let mut p = RowPatch::default();
    let mut any = false;
    let status_changed = sent.status != live.status;
    // `$f` is sent when it differs and `$send` holds.
    macro_rules! field {
        ($f:ident) => {
            field!($f, true)
        };
        ($f:ident, $send:expr) => {
            if $send && sent.$f != live.$f {
                sent.$f.clone_from(&live.$f);
                p.$f = Some(Clone::clone(&live.$f));
                any = true;
            }
        };
    }
    field!(address, texts);
    field!(tags, texts);
    field!(status);
    field!(status_since_ms);
    let minute = status_changed
        || live.status != Status::Up
        || moved_by(sent.last_seen_ms, live.last_seen_ms, LAST_SEEN_STEP_MS);
    field!(last_seen_ms, minute);
    let new_sample = sent.sample_unix_ms != live.sample_unix_ms;
    if new_sample {
        sent.sample_unix_ms = live.sample_unix_ms;
        p.sample_rel_ms = Some(live.sample_unix_ms.map(|t| rel_ms(t, now_ms)));
        any = true;
    }
    field!(last_error, texts);
    field!(hostname, texts);
    field!(os, texts);
    field!(kernel, texts);
    field!(cpu_cores);
    field!(uptime_s, uptime_moved(sent.uptime_s, live.uptime_s));
    field!(cpu_percent);
    field!(load);
    field!(mem_percent);
    field!(
        mem_used_bytes,
        sent.mem_total_bytes != live.mem_total_bytes
            || moved_by(
                sent.mem_used_bytes,
                live.mem_used_bytes,
                live.mem_total_bytes.unwrap_or(0) / 100,
            )
    );
    field!(mem_total_bytes);
    field!(swap_percent);
    field!(
        swap_total_bytes,
        moved_rel(sent.swap_total_bytes, live.swap_total_bytes, 100)
    );
    field!(disk_max_percent);
    field!(disk_max_mount, texts);
    // Rates are optional overview columns, off by default, and they jitter every sample: a
    // jump (doubled or halved) is sent at once, a drift (a tenth or more) with
    // `last_seen_ms`, about once a minute, so that a fleet's deltas do not carry every host's
    // noise to browsers that do not show them.
    let rate_moved =
        |a: Option<u64>, b: Option<u64>| moved_rel(a, b, 2) || minute && moved_rel(a, b, 10);
    field!(
        net_rx_bytes_per_s,
        rate_moved(sent.net_rx_bytes_per_s, live.net_rx_bytes_per_s)
    );
    field!(
        net_tx_bytes_per_s,
        rate_moved(sent.net_tx_bytes_per_s, live.net_tx_bytes_per_s)
    );
    field!(
        disk_read_bytes_per_s,
        rate_moved(sent.disk_read_bytes_per_s, live.disk_read_bytes_per_s)
    );
    field!(
        disk_write_bytes_per_s,
        rate_moved(sent.disk_write_bytes_per_s, live.disk_write_bytes_per_s)
    );
    // Sensors wander by a degree: 2 °C is a change worth sending at once.
    let temp_jumped = match (sent.temp_max_celsius, live.temp_max_celsius) {
        (Some(a), Some(b)) => (a - b).abs() >= 2.0,
        (a, b) => a.is_some() != b.is_some(),
    };
    field!(temp_max_celsius, minute || temp_jumped);
    if gpu_list_changed(&sent.gpus, &live.gpus, texts) {
        sent.gpus.clone_from(&live.gpus);
        p.gpus = Some(live.gpus.clone());
        any = true;
    } else {
        let pairs = || sent.gpus.iter().zip(&live.gpus);
        if pairs().any(|(x, y)| x.util_percent != y.util_percent) {
            p.gpu_util = Some(live.gpus.iter().map(|g| g.util_percent).collect());
        }
        if pairs().any(|(x, y)| {
            moved_by(
                x.mem_used_bytes,
                y.mem_used_bytes,
                y.mem_total_bytes.unwrap_or(0) / 100,
            )
        }) {
            p.gpu_mem_used_bytes = Some(live.gpus.iter().map(|g| g.mem_used_bytes).collect());
        }
        for (x, y) in sent.gpus.iter_mut().zip(&live.gpus) {
            if p.gpu_util.is_some() {
                x.util_percent = y.util_percent;
            }
            if p.gpu_mem_used_bytes.is_some() {
                x.mem_used_bytes = y.mem_used_bytes;
            }
        }
        any |= p.gpu_util.is_some() || p.gpu_mem_used_bytes.is_some();
    }
    field!(users);
    // The process count drifts slowly: 5 % is enough to matter once a minute.
    let (sp, lp) = (sent.processes.map(u64::from), live.processes.map(u64::from));
    field!(
        processes,
        moved_rel(sp, lp, 4) || minute && moved_rel(sp, lp, 20)
    );
    field!(alerts);
    field!(reach);
    field!(containers);
    field!(container_top_name, texts);
    field!(container_top_cpu_percent);
    // A new sample appends its `cpu_percent` on the client; `s` only when that is not the
    // whole story (no point, or several).
    let implied = new_sample
        && new_points == 1
        && live
            .cpu_percent
            .is_some_and(|c| live.spark.last() == Some(&c));
    if new_points > 0 || new_sample {
        if !implied {
            let k = new_points.min(live.spark.len());
            p.spark_add = Some(live.spark[live.spark.len() - k..].to_vec());
        }
        sent.spark.clone_from(&live.spark);
        any = true;
    }
    any.then(|| {
        p.ix = u32::try_from(ix).unwrap_or(u32::MAX);
        p
    })
}

/// `t - base` in ms, saturating.
fn rel_ms(t: u64, base: u64) -> i64 {
    if t >= base {
        i64::try_from(t - base).unwrap_or(i64::MAX)
    } else {
        i64::try_from(base - t).map_or(i64::MIN, |d| -d)
    }
}

/// Applies a patch of the delta sent at `server_time_ms` to a row as the browser does
/// (`web/ui/src/pages/home.ts`): the fields it carries replace the row's, and a new sample
/// appends its CPU % to the sparkline (or the points in `spark_add`), keeping the last 60.
#[cfg(test)]
pub(super) fn apply(row: &mut HostRow, p: &RowPatch, server_time_ms: u64) {
    macro_rules! set {
        ($($f:ident),*) => {$(
            if let Some(v) = &p.$f {
                row.$f.clone_from(v);
            }
        )*};
    }
    set!(
        address,
        tags,
        status,
        status_since_ms,
        last_seen_ms,
        last_error,
        hostname,
        os,
        kernel,
        cpu_cores,
        uptime_s,
        cpu_percent,
        load,
        mem_percent,
        mem_used_bytes,
        mem_total_bytes,
        swap_percent,
        swap_total_bytes,
        disk_max_percent,
        disk_max_mount,
        net_rx_bytes_per_s,
        net_tx_bytes_per_s,
        disk_read_bytes_per_s,
        disk_write_bytes_per_s,
        temp_max_celsius,
        gpus,
        users,
        processes,
        alerts,
        reach,
        containers,
        container_top_name,
        container_top_cpu_percent
    );
    if let Some(u) = &p.gpu_util {
        for (g, v) in row.gpus.iter_mut().zip(u) {
            g.util_percent = *v;
        }
    }
    if let Some(m) = &p.gpu_mem_used_bytes {
        for (g, v) in row.gpus.iter_mut().zip(m) {
            g.mem_used_bytes = *v;
        }
    }
    if let Some(t) = p.sample_rel_ms {
        row.sample_unix_ms = t.map(|t| server_time_ms.saturating_add_signed(t));
    }
    match &p.spark_add {
        Some(points) => row.spark.extend_from_slice(points),
        None if p.sample_rel_ms.is_some() => row.spark.extend(row.cpu_percent),
        None => {}
    }
    let extra = row.spark.len().saturating_sub(super::SPARK_LEN);
    row.spark.drain(..extra);
}

/// Applies a layout change to the rows as the browser does: removes the rows at `removed`
/// (positions in the old layout), then inserts each added row at its position, in order.
#[cfg(test)]
pub(super) fn apply_layout(rows: &mut Vec<HostRow>, l: &LayoutChange) {
    for &i in l.removed.iter().rev() {
        rows.remove(i as usize);
    }
    for a in &l.added {
        rows.insert(a.i as usize, a.row.clone());
    }
}

/// Applies a whole delta as the browser does: the layout change first, then the row patches
/// (positions in the new layout). Returns false when a patch names no row.
#[cfg(test)]
pub(super) fn apply_delta(rows: &mut Vec<HostRow>, d: &OverviewDelta) -> bool {
    if let Some(l) = &d.layout {
        apply_layout(rows, l);
    }
    for p in &d.hosts {
        let Some(row) = rows.get_mut(p.ix as usize) else {
            return false;
        };
        apply(row, p, d.server_time_ms);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server clock of every delta in these tests.
    const NOW: u64 = 2_000;

    fn row() -> HostRow {
        HostRow {
            id: "a:h".into(),
            cluster: "a".into(),
            name: "h".into(),
            address: "x:1".into(),
            tags: vec![],
            status: Status::Up,
            status_since_ms: 0,
            last_seen_ms: Some(1_000),
            sample_unix_ms: Some(990),
            last_error: None,
            hostname: Some("h".into()),
            os: None,
            kernel: None,
            cpu_cores: Some(8),
            uptime_s: Some(100_000),
            cpu_percent: Some(10.0),
            load: Some([0.5, 0.5, 0.5]),
            mem_percent: Some(50.0),
            mem_used_bytes: Some(500_000),
            mem_total_bytes: Some(1_000_000),
            swap_percent: Some(0.0),
            swap_total_bytes: Some(1_000_000),
            disk_max_percent: Some(40.0),
            disk_max_mount: Some("/".into()),
            net_rx_bytes_per_s: Some(1000),
            net_tx_bytes_per_s: Some(1000),
            disk_read_bytes_per_s: Some(1000),
            disk_write_bytes_per_s: None,
            temp_max_celsius: Some(50.0),
            gpus: vec![],
            users: Some(1),
            processes: Some(300),
            spark: vec![10.0],
            alerts: 0,
            reach: None,
            containers: None,
            container_top_name: None,
            container_top_cpu_percent: None,
        }
    }

    #[test]
    fn a_new_reachability_digest_is_sent_whole_under_rc() {
        let mut sent = row();
        let mut live = row();
        live.reach = Some(smon_api::reach::ReachBrief {
            ping_up: Some(true),
            ping_ms: Some(0.5),
            up: 1,
            total: 2,
            down: vec!["ssh".into()],
        });
        let p = diff(&mut sent, &live, 0, true, 0, NOW).expect("a patch");
        assert_eq!(
            serde_json::to_string(&p).expect("json"),
            r#"{"i":0,"rc":{"ping_up":true,"ping_ms":0.5,"up":1,"total":2,"down":["ssh"]}}"#
        );
        let mut client = row();
        apply(&mut client, &p, NOW);
        assert_eq!(client.reach, live.reach);
        assert_eq!(diff(&mut sent, &live, 0, true, 0, NOW), None, "sent once");
    }

    #[test]
    fn an_unchanged_row_gives_no_patch() {
        let live = row();
        let mut sent = live.clone();
        assert_eq!(diff(&mut sent, &live, 0, true, 0, NOW), None);
    }

    #[test]
    fn a_patch_carries_only_what_changed_and_the_new_point() {
        let mut sent = row();
        let mut live = row();
        live.sample_unix_ms = Some(1_990);
        live.last_seen_ms = Some(2_000);
        live.uptime_s = Some(100_001);
        live.cpu_percent = Some(12.5);
        live.mem_used_bytes = Some(509_000); // < 1 % of the total
        live.net_rx_bytes_per_s = Some(1200); // drifted, not jumped: waits for the minute
        live.processes = Some(340);
        live.temp_max_celsius = Some(51.0); // a degree: waits for the minute too
        live.spark.push(12.5);
        let p = diff(&mut sent, &live, 1, true, 0, NOW).expect("a patch");
        assert_eq!(
            serde_json::to_string(&p).expect("json"),
            r#"{"i":0,"t":-10,"c":12.5}"#,
            "the new point is the new cpu_percent: implied"
        );
        let mut client = row();
        apply(&mut client, &p, NOW);
        assert_eq!(client, sent);
        // What was not sent stays as it was in the room's copy.
        assert_eq!(sent.last_seen_ms, Some(1_000));
        assert_eq!(sent.uptime_s, Some(100_000));
        assert_eq!(sent.mem_used_bytes, Some(500_000));
        assert_eq!(sent.spark, live.spark);
    }

    #[test]
    fn coarse_fields_are_sent_once_they_moved_enough() {
        let mut sent = row();
        let mut live = row();
        live.uptime_s = Some(100_060);
        live.mem_used_bytes = Some(510_000);
        live.net_rx_bytes_per_s = Some(1200);
        live.processes = Some(315);
        live.last_seen_ms = Some(61_000);
        let p = diff(&mut sent, &live, 0, true, 0, NOW).expect("a patch");
        assert_eq!(p.uptime_s, Some(Some(100_060)));
        assert_eq!(p.mem_used_bytes, Some(Some(510_000)));
        assert_eq!(p.net_rx_bytes_per_s, Some(Some(1200)));
        assert_eq!(p.processes, Some(Some(315)));
        assert_eq!(p.last_seen_ms, Some(Some(61_000)));
        assert_eq!(p.spark_add, None);
        // A reboot: uptime went back.
        live.uptime_s = Some(5);
        assert_eq!(
            diff(&mut sent, &live, 0, true, 0, NOW)
                .expect("patch")
                .uptime_s,
            Some(Some(5))
        );
    }

    #[test]
    fn jumps_of_rates_and_the_hottest_sensor_are_sent_at_once() {
        let mut sent = row();
        let mut live = row();
        live.net_tx_bytes_per_s = Some(5000);
        live.disk_read_bytes_per_s = Some(100);
        live.disk_write_bytes_per_s = Some(7);
        live.temp_max_celsius = Some(53.0);
        live.processes = Some(400);
        let p = diff(&mut sent, &live, 0, true, 0, NOW).expect("a patch");
        assert_eq!(
            serde_json::to_string(&p).expect("json"),
            r#"{"i":0,"tx":5000,"dr":100,"dw":7,"tm":53.0,"p":400}"#
        );
        let mut client = row();
        apply(&mut client, &p, NOW);
        assert_eq!(client, sent);
        assert_eq!(client, live);
    }

    #[test]
    fn gpus_send_their_use_not_their_names_unless_the_list_changed() {
        let gpu = |i: u32, util: u32, used: u64| GpuBrief {
            index: i,
            uuid: format!("GPU-{i}"),
            name: "NVIDIA H100 80GB HBM3".into(),
            error: None,
            active_instances: None,
            util_percent: Some(util),
            mem_used_bytes: Some(used),
            mem_total_bytes: Some(80_000),
        };
        let mut sent = row();
        sent.gpus = vec![gpu(0, 10, 1000), gpu(1, 20, 1000)];
        let mut live = sent.clone();
        let mut client = sent.clone();
        live.gpus = vec![gpu(0, 10, 1500), gpu(1, 25, 1900)];
        let p = diff(&mut sent, &live, 0, false, 0, NOW).expect("a patch");
        assert_eq!(
            serde_json::to_string(&p).expect("json"),
            r#"{"i":0,"gu":[10,25],"gm":[1500,1900]}"#
        );
        apply(&mut client, &p, NOW);
        assert_eq!(client, sent);
        assert_eq!(client.gpus, live.gpus);
        live.gpus.push(gpu(2, 0, 0));
        let p = diff(&mut sent, &live, 0, true, 0, NOW).expect("a patch");
        assert_eq!(p.gpus.as_ref().map(Vec::len), Some(3));
        apply(&mut client, &p, NOW);
        assert_eq!(client.gpus, live.gpus);
    }

    #[test]
    fn a_host_that_stops_being_up_sends_its_last_seen_time_and_a_null() {
        let mut sent = row();
        let mut live = row();
        live.last_seen_ms = Some(1_500); // moved a little: not sent while up
        assert_eq!(diff(&mut sent, &live, 0, true, 0, NOW), None);
        live.status = Status::Stale;
        live.status_since_ms = 4_000;
        live.cpu_percent = None;
        let p = diff(&mut sent, &live, 0, true, 0, NOW).expect("a patch");
        assert_eq!(p.last_seen_ms, Some(Some(1_500)));
        let json = serde_json::to_string(&p).expect("json");
        assert!(json.contains(r#""c":null"#), "{json}");
        assert!(json.contains(r#""st":"stale""#), "{json}");
        assert!(!json.contains(r#""hn""#), "{json}");
    }

    #[test]
    fn applying_patches_rebuilds_the_rooms_rows_and_the_sparkline() {
        let mut sent = row();
        let mut client = row();
        let mut live = row();
        for i in 0..150u32 {
            // Two points between some deltas (a host that sampled twice in an interval).
            // And now and then a sample without CPU: no point.
            let points = if i % 11 == 5 {
                live.cpu_percent = None;
                0
            } else {
                1 + usize::from(i % 7 == 0)
            };
            for k in 0..points {
                let v = ((i * 7 + k as u32) % 100) as f32;
                live.spark.push(v);
                if live.spark.len() > crate::store::SPARK_LEN {
                    live.spark.remove(0);
                }
                live.cpu_percent = Some(v);
            }
            live.uptime_s = live.uptime_s.map(|u| u + 1);
            live.sample_unix_ms = live.sample_unix_ms.map(|t| t + 1000);
            let now = live.sample_unix_ms.unwrap_or(0) + 300;
            if let Some(p) = diff(&mut sent, &live, points, i % 2 == 0, 0, now) {
                assert_eq!(p.sample_rel_ms, Some(Some(-300)));
                assert_eq!(
                    p.spark_add.is_some(),
                    points != 1,
                    "explicit points only for none or several, delta {i}"
                );
                apply(&mut client, &p, now);
            }
            assert_eq!(client, sent, "after delta {i}");
        }
        assert_eq!(client.spark, live.spark, "appending gives the full line");
        assert_eq!(client.spark.len(), crate::store::SPARK_LEN);
    }
}
