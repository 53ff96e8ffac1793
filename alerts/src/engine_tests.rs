//! The engine as pure logic with injected time: every test feeds events at chosen times and
//! asserts exactly which notifications come out.

use super::*;
use crate::rule::{RuleConfig, compile_rule};
use crate::silence::{SilenceConfig, WindowConfig};
use smon_proto::{Cpu, Disk, Gpu, GpuProcess, Parts, Process};

const S: u64 = 1000;
/// 2026-12-06 00:00 UTC, a Sunday.
const T0: u64 = 1_796_515_200_000;

fn rule(name: &str, when: &str, f: impl FnOnce(&mut RuleConfig)) -> Rule {
    let mut c: RuleConfig =
        serde_json::from_value(serde_json::json!({"name": name, "when": when})).expect("rule");
    c.notify = vec!["ops".into()];
    f(&mut c);
    compile_rule(&c, "r").expect("valid rule")
}

fn cfg0() -> EngineConfig {
    EngineConfig {
        group_wait_s: 0,
        ..EngineConfig::default()
    }
}

fn meta(id: &str) -> HostMeta {
    let cluster = id.split(':').next().unwrap_or_default();
    HostMeta {
        id: id.into(),
        cluster: cluster.into(),
        tags: vec![],
        agent_version: "0.2.0".into(),
    }
}

fn engine(cfg: EngineConfig, rules: Vec<Rule>, hosts: &[&str]) -> Engine {
    let mut e = Engine::new(cfg);
    e.set_rules(rules, T0);
    e.set_hosts(hosts.iter().map(|h| meta(h)).collect(), T0);
    e
}

fn cpu(p: f32) -> Snapshot {
    Snapshot {
        cpu: Some(Cpu {
            total_percent: p,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// (status, repeat, hosts) of each notification.
fn summary(d: &[Dispatch]) -> Vec<(AlertStatus, bool, Vec<String>)> {
    d.iter()
        .map(|d| {
            (
                d.notification.status,
                d.notification.repeat,
                d.notification
                    .alerts
                    .iter()
                    .map(|a| a.host.host.clone())
                    .collect(),
            )
        })
        .collect()
}

fn fired(hosts: &[&str]) -> (AlertStatus, bool, Vec<String>) {
    (
        AlertStatus::Firing,
        false,
        hosts.iter().map(|h| h.to_string()).collect(),
    )
}

fn resolved(hosts: &[&str]) -> (AlertStatus, bool, Vec<String>) {
    (
        AlertStatus::Resolved,
        false,
        hosts.iter().map(|h| h.to_string()).collect(),
    )
}

#[test]
fn a_threshold_fires_only_after_for_s_and_shows_pending_before() {
    let r = rule("cpu", "cpu_percent > 90", |c| c.for_s = 30);
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    e.observe("lab:n1", &cpu(95.0), T0);
    assert!(e.tick(T0).is_empty());
    let a = e.alerts(T0);
    assert_eq!(a.len(), 1);
    assert!(a[0].pending && a[0].alert.fired_ms == 0 && a[0].alert.started_ms == T0);
    e.observe("lab:n1", &cpu(96.0), T0 + 29 * S);
    assert!(e.tick(T0 + 29 * S).is_empty());
    e.observe("lab:n1", &cpu(97.0), T0 + 30 * S);
    let d = e.tick(T0 + 30 * S);
    assert_eq!(summary(&d), [fired(&["lab:n1"])]);
    let n = &d[0].notification;
    assert_eq!(d[0].channels, ["ops"]);
    assert_eq!(n.alerts[0].started_ms, T0);
    assert_eq!(n.alerts[0].fired_ms, T0 + 30 * S);
    assert_eq!(n.alerts[0].host.value, Some(97.0));
    assert_eq!(n.alerts[0].host.detail, "cpu_percent is 97 % (> 90)");
    assert_eq!(n.severity, Severity::Warning);
    assert!(!e.alerts(T0 + 30 * S)[0].pending);
    assert_eq!(e.firing_on("lab:n1"), 1);
}

#[test]
fn a_sample_rule_fires_on_a_sample_not_on_the_clock_alone() {
    let r = rule("cpu", "cpu_percent > 90", |c| c.for_s = 30);
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    e.observe("lab:n1", &cpu(95.0), T0);
    assert!(e.tick(T0 + 60 * S).is_empty(), "no sample since");
    assert!(e.alerts(T0 + 60 * S)[0].pending);
    e.observe("lab:n1", &cpu(95.0), T0 + 61 * S);
    assert_eq!(summary(&e.tick(T0 + 61 * S)), [fired(&["lab:n1"])]);
}

#[test]
fn a_condition_that_clears_before_for_s_never_notifies() {
    let r = rule("cpu", "cpu_percent > 90", |c| c.for_s = 30);
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    e.observe("lab:n1", &cpu(95.0), T0);
    e.observe("lab:n1", &cpu(50.0), T0 + 10 * S);
    e.observe("lab:n1", &cpu(95.0), T0 + 20 * S);
    // The pending time starts again at the second crossing.
    assert!(e.tick(T0 + 40 * S).is_empty());
    assert_eq!(e.alerts(T0 + 40 * S)[0].alert.started_ms, T0 + 20 * S);
    e.observe("lab:n1", &cpu(50.0), T0 + 45 * S);
    assert!(e.tick(T0 + 60 * S).is_empty());
    assert!(e.alerts(T0 + 60 * S).is_empty());
}

#[test]
fn hysteresis_keeps_firing_until_the_clear_threshold() {
    let r = rule("cpu", "cpu_percent > 90", |c| c.clear = Some(80.0));
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    e.observe("lab:n1", &cpu(95.0), T0);
    assert_eq!(summary(&e.tick(T0)), [fired(&["lab:n1"])]);
    e.observe("lab:n1", &cpu(85.0), T0 + S);
    assert!(e.tick(T0 + S).is_empty(), "85 is above the clear threshold");
    e.observe("lab:n1", &cpu(80.0), T0 + 2 * S);
    let d = e.tick(T0 + 2 * S);
    assert_eq!(summary(&d), [resolved(&["lab:n1"])]);
    let a = &d[0].notification.alerts[0];
    assert_eq!(a.resolved_ms, Some(T0 + 2 * S));
    assert_eq!(a.host.value, Some(80.0));
    assert_eq!(a.host.detail, "cpu_percent is 80 % (> 90)");
    // Above 80 again but not above 90: not firing.
    e.observe("lab:n1", &cpu(85.0), T0 + 3 * S);
    assert!(e.tick(T0 + 3 * S).is_empty());
}

#[test]
fn host_down_fires_after_for_s_without_samples_and_resolves_only_when_up() {
    let r = rule("down", "host_down", |c| c.for_s = 10);
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    e.host_status("lab:n1", Status::Up, T0);
    e.host_status("lab:n1", Status::Down, T0 + S);
    assert!(e.tick(T0 + 10 * S).is_empty());
    let d = e.tick(T0 + 11 * S);
    assert_eq!(summary(&d), [fired(&["lab:n1"])]);
    assert_eq!(d[0].notification.alerts[0].started_ms, T0 + S);
    assert_eq!(d[0].notification.alerts[0].host.detail, "the host is down");
    e.host_status("lab:n1", Status::Stale, T0 + 20 * S);
    assert!(e.tick(T0 + 20 * S).is_empty(), "stale is not up");
    e.host_status("lab:n1", Status::Up, T0 + 30 * S);
    let d = e.tick(T0 + 30 * S);
    assert_eq!(summary(&d), [resolved(&["lab:n1"])]);
    // The resolved alert keeps the firing one's id.
    assert_eq!(
        d[0].notification.alerts[0].id,
        alert_id("down", "lab:n1", "", T0 + S)
    );
    assert_eq!(
        d[0].notification.alerts[0].host.detail,
        "the host is back up"
    );
}

#[test]
fn a_firing_alert_repeats_every_repeat_s_and_stops_when_resolved() {
    let r = rule("cpu", "cpu_percent > 90", |c| c.repeat_s = 60);
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    e.observe("lab:n1", &cpu(95.0), T0);
    assert_eq!(e.tick(T0).len(), 1);
    assert!(e.tick(T0 + 59 * S).is_empty());
    let d = e.tick(T0 + 60 * S);
    assert_eq!(
        summary(&d),
        [(AlertStatus::Firing, true, vec!["lab:n1".to_string()])]
    );
    let first = d[0].notification.id.clone();
    assert!(e.tick(T0 + 119 * S).is_empty());
    let d = e.tick(T0 + 120 * S);
    assert!(d[0].notification.repeat);
    assert_ne!(
        d[0].notification.id, first,
        "each repeat is its own notification"
    );
    e.observe("lab:n1", &cpu(10.0), T0 + 130 * S);
    assert_eq!(summary(&e.tick(T0 + 130 * S)), [resolved(&["lab:n1"])]);
    assert!(e.tick(T0 + 200 * S).is_empty());
}

fn silence(f: impl FnOnce(&mut SilenceConfig)) -> Silence {
    let mut c = SilenceConfig {
        id: "s1".into(),
        rule: None,
        host: None,
        cluster: None,
        tag: None,
        starts_ms: None,
        ends_ms: None,
        window: None,
        created_by: "admin".into(),
        comment: String::new(),
    };
    f(&mut c);
    Silence::new(c, "s").expect("valid silence")
}

#[test]
fn a_silenced_alert_shows_but_notifies_only_when_the_silence_ends() {
    let r = rule("cpu", "cpu_percent > 90", |_| {});
    let mut e = engine(cfg0(), vec![r], &["lab:n1", "lab:n2"]);
    e.set_silences(vec![silence(|s| {
        s.host = Some("n1".into());
        s.ends_ms = Some(T0 + 100 * S);
    })]);
    e.observe("lab:n1", &cpu(95.0), T0 + 10 * S);
    e.observe("lab:n2", &cpu(95.0), T0 + 10 * S);
    assert_eq!(summary(&e.tick(T0 + 10 * S)), [fired(&["lab:n2"])]);
    let a = e.alerts(T0 + 10 * S);
    assert_eq!(
        a.iter()
            .map(|a| (a.alert.host.host.as_str(), a.silenced))
            .collect::<Vec<_>>(),
        [("lab:n1", true), ("lab:n2", false)]
    );
    // The history hears of both, silenced or not.
    let ev: Vec<(String, AlertStatus)> = e
        .drain_events()
        .into_iter()
        .map(|a| (a.host.host, a.status))
        .collect();
    assert_eq!(
        ev,
        [
            ("lab:n1".to_string(), AlertStatus::Firing),
            ("lab:n2".to_string(), AlertStatus::Firing)
        ]
    );
    assert!(e.drain_events().is_empty());
    assert!(e.tick(T0 + 99 * S).is_empty());
    let d = e.tick(T0 + 100 * S);
    assert_eq!(summary(&d), [fired(&["lab:n1"])]);
    assert!(
        e.drain_events().is_empty(),
        "a notification is no new event"
    );
    assert_eq!(d[0].notification.alerts[0].started_ms, T0 + 10 * S);
    assert!(!e.alerts(T0 + 100 * S)[0].silenced);
}

#[test]
fn an_alert_that_resolves_while_silenced_never_notifies_and_a_notified_one_still_resolves() {
    let r = rule("cpu", "cpu_percent > 90", |_| {});
    let mut e = engine(cfg0(), vec![r], &["lab:n1", "lab:n2"]);
    e.observe("lab:n2", &cpu(95.0), T0);
    assert_eq!(summary(&e.tick(T0)), [fired(&["lab:n2"])]);
    e.set_silences(vec![silence(|s| {
        s.cluster = Some("lab".into());
        s.ends_ms = Some(T0 + 100 * S);
    })]);
    e.observe("lab:n1", &cpu(95.0), T0 + 10 * S);
    e.observe("lab:n1", &cpu(10.0), T0 + 20 * S);
    e.observe("lab:n2", &cpu(10.0), T0 + 20 * S);
    // n1 never notified: nothing; n2 was: its receivers hear it resolved.
    assert_eq!(summary(&e.tick(T0 + 20 * S)), [resolved(&["lab:n2"])]);
    assert!(e.tick(T0 + 200 * S).is_empty());
}

#[test]
fn a_recurring_maintenance_window_silences_only_while_open() {
    let r = rule("down", "host_down", |_| {});
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    // Sundays 02:00-04:00 UTC; T0 is a Sunday 00:00.
    e.set_silences(vec![silence(|s| {
        s.rule = Some("down".into());
        s.window = Some(WindowConfig {
            days: vec!["sun".into()],
            start: "02:00".into(),
            end: "04:00".into(),
            timezone: "UTC".into(),
        });
    })]);
    let h = 3600 * S;
    e.host_status("lab:n1", Status::Down, T0 + 2 * h + 60 * S);
    assert!(e.tick(T0 + 2 * h + 60 * S).is_empty(), "in the window");
    assert!(e.alerts(T0 + 3 * h)[0].silenced);
    assert!(e.tick(T0 + 4 * h - S).is_empty());
    assert_eq!(summary(&e.tick(T0 + 4 * h)), [fired(&["lab:n1"])]);
    e.host_status("lab:n1", Status::Up, T0 + 5 * h);
    assert_eq!(summary(&e.tick(T0 + 5 * h)), [resolved(&["lab:n1"])]);
    // Outside the window the same event notifies at once.
    e.host_status("lab:n1", Status::Down, T0 + 6 * h);
    assert_eq!(summary(&e.tick(T0 + 6 * h)), [fired(&["lab:n1"])]);
}

#[test]
fn a_hundred_hosts_down_in_one_window_make_one_notification_and_two_waves_two() {
    let r = rule("down", "host_down", |c| c.group_wait_s = Some(10));
    let ids: Vec<String> = (0..150).map(|i| format!("rack:n{i:03}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut e = engine(EngineConfig::default(), vec![r], &refs);
    // Wave 1: 100 hosts within 5 s.
    for (i, id) in ids[..100].iter().enumerate() {
        e.host_status(id, Status::Down, T0 + (i as u64 % 6) * S);
    }
    assert!(e.tick(T0 + 9 * S).is_empty(), "still grouping");
    let d = e.tick(T0 + 10 * S);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].notification.alerts.len(), 100);
    assert_eq!(d[0].notification.alerts[0].host.host, "rack:n000");
    assert_eq!(d[0].notification.status, AlertStatus::Firing);
    // Wave 2, a minute later: 50 more hosts, their own notification.
    for id in &ids[100..] {
        e.host_status(id, Status::Down, T0 + 60 * S);
    }
    let d2 = e.tick(T0 + 70 * S);
    assert_eq!(d2.len(), 1);
    assert_eq!(d2[0].notification.alerts.len(), 50);
    assert_ne!(d2[0].notification.id, d[0].notification.id);
    // All back up together: one resolved notification.
    for id in &ids {
        e.host_status(id, Status::Up, T0 + 100 * S);
    }
    let d3 = e.tick(T0 + 110 * S);
    assert_eq!(d3.len(), 1);
    assert_eq!(d3[0].notification.status, AlertStatus::Resolved);
    assert_eq!(d3[0].notification.alerts.len(), 150);
}

#[test]
fn notification_ids_are_deterministic_across_engines_and_exports() {
    let run = || {
        let r = rule("down", "host_down", |_| {});
        let mut e = engine(EngineConfig::default(), vec![r], &["a:1", "a:2"]);
        e.host_status("a:2", Status::Down, T0);
        e.host_status("a:1", Status::Down, T0);
        e.tick(T0 + 10 * S)
    };
    let (a, b) = (run(), run());
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].notification.id, b[0].notification.id);
    assert_eq!(a[0].notification.id.len(), 32);
}

#[test]
fn a_flapping_alert_notifies_when_it_starts_flapping_and_when_it_settles() {
    let r = rule("cpu", "cpu_percent > 90", |_| {});
    let cfg = EngineConfig {
        group_wait_s: 0,
        flap_window_s: 600,
        flap_changes: 4,
        ..EngineConfig::default()
    };
    let mut e = engine(cfg, vec![r], &["lab:n1"]);
    let mut out = Vec::new();
    // Up and down every 10 s: changes 1-4 notify, the 5th marks it flapping.
    for k in 0..10u64 {
        let v = if k % 2 == 0 { 95.0 } else { 50.0 };
        e.observe("lab:n1", &cpu(v), T0 + k * 10 * S);
        out.extend(
            e.tick(T0 + k * 10 * S)
                .into_iter()
                .map(|d| (k, d.notification.status, d.notification.alerts[0].flapping)),
        );
    }
    assert_eq!(
        out,
        [
            (0, AlertStatus::Firing, false),
            (1, AlertStatus::Resolved, false),
            (2, AlertStatus::Firing, false),
            (3, AlertStatus::Resolved, false),
            (4, AlertStatus::Firing, true),
        ]
    );
    // Shown as flapping; steady firing from k = 10 on.
    e.observe("lab:n1", &cpu(95.0), T0 + 100 * S);
    assert!(e.alerts(T0 + 100 * S)[0].alert.flapping);
    assert!(e.tick(T0 + 699 * S).is_empty());
    let d = e.tick(T0 + 700 * S);
    assert_eq!(summary(&d), [fired(&["lab:n1"])]);
    assert!(!d[0].notification.alerts[0].flapping, "settled");
    // And it behaves normally again.
    e.observe("lab:n1", &cpu(50.0), T0 + 710 * S);
    assert_eq!(summary(&e.tick(T0 + 710 * S)), [resolved(&["lab:n1"])]);
}

fn disks(mounts: &[(&str, f32, bool)]) -> Snapshot {
    Snapshot {
        disks: mounts
            .iter()
            .map(|&(m, p, unresponsive)| Disk {
                mount_point: m.into(),
                used_percent: p,
                unresponsive,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn a_disk_rule_fires_per_mount_and_a_named_mount_only_there() {
    let any = rule("disk", "disk_percent > 90", |_| {});
    let var = rule("var", "disk_percent{mount=\"/var\"} > 50", |_| {});
    let mut e = engine(cfg0(), vec![any, var], &["lab:n1"]);
    e.observe(
        "lab:n1",
        &disks(&[
            ("/", 95.0, false),
            ("/var", 93.14, false),
            ("/home", 40.0, false),
        ]),
        T0,
    );
    let d = e.tick(T0);
    type Subjects = Vec<(String, Option<f64>)>;
    let mut got: Vec<(String, Subjects)> = d
        .iter()
        .map(|d| {
            (
                d.notification.rule.clone(),
                d.notification
                    .alerts
                    .iter()
                    .map(|a| (a.host.subject.clone(), a.host.value))
                    .collect(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            (
                "disk".to_string(),
                vec![
                    ("/".to_string(), Some(95.0)),
                    ("/var".to_string(), Some(93.1))
                ]
            ),
            ("var".to_string(), vec![("/var".to_string(), Some(93.1))]),
        ]
    );
    // /var unmounted: its alerts resolve; / still fires.
    e.observe("lab:n1", &disks(&[("/", 95.0, false)]), T0 + S);
    let d = e.tick(T0 + S);
    assert_eq!(d.len(), 2);
    assert!(
        d.iter()
            .all(|d| d.notification.status == AlertStatus::Resolved
                && d.notification.alerts[0].host.subject == "/var")
    );
    assert_eq!(e.firing_on("lab:n1"), 1);
}

#[test]
fn an_unresponsive_filesystem_fires_and_resolves_when_it_answers() {
    let r = rule("nfs", "unresponsive", |_| {});
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    e.observe(
        "lab:n1",
        &disks(&[("/", 10.0, false), ("/mnt/nfs", 10.0, true)]),
        T0,
    );
    let d = e.tick(T0);
    assert_eq!(summary(&d), [fired(&["lab:n1"])]);
    let a = &d[0].notification.alerts[0];
    assert_eq!(a.host.subject, "/mnt/nfs");
    assert_eq!(
        a.host.detail,
        "/mnt/nfs does not answer (statvfs timed out)"
    );
    e.observe(
        "lab:n1",
        &disks(&[("/", 10.0, false), ("/mnt/nfs", 10.0, false)]),
        T0 + S,
    );
    assert_eq!(summary(&e.tick(T0 + S)), [resolved(&["lab:n1"])]);
}

#[test]
fn disk_full_within_predicts_from_seeded_history_and_live_points() {
    let r = rule("fill", "disk_full_within", |c| c.within_h = Some(12.0));
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    // Two hours of history: 70 % growing 3 %/h -> at 76 % now, full in 8 h. A live sample
    // came before the seed (the history answered late): it is kept.
    let h = 3600 * S;
    e.observe(
        "lab:n1",
        &disks(&[("/data", 75.75, false)]),
        T0 + 2 * h - 300 * S,
    );
    assert!(
        e.tick(T0 + 2 * h - 300 * S).is_empty(),
        "one point predicts nothing"
    );
    let pts: Vec<(u64, f64)> = (0..23u64)
        .map(|k| (T0 + k * 300 * S, 70.0 + 3.0 * (k as f64) / 12.0))
        .collect();
    e.seed_disk("lab:n1", "/data", &pts);
    e.observe("lab:n1", &disks(&[("/data", 76.0, false)]), T0 + 2 * h);
    let d = e.tick(T0 + 2 * h);
    assert_eq!(summary(&d), [fired(&["lab:n1"])]);
    let a = &d[0].notification.alerts[0];
    assert_eq!(a.host.subject, "/data");
    assert_eq!(a.host.value, Some(8.0), "hours to full");
    assert_eq!(
        a.host.detail,
        "/data is 76.0 % full, growing 3.01 %/h: full in about 8 h"
    );
    // A slower disk (full in ~30 h) does not fire at 12 h.
    let r = rule("fill", "disk_full_within", |c| c.within_h = Some(12.0));
    let mut e = engine(cfg0(), vec![r], &["lab:n2"]);
    for k in 0..=24u64 {
        e.observe(
            "lab:n2",
            &disks(&[("/data", 70.0 + (k as f32) / 12.0, false)]),
            T0 + k * 300 * S,
        );
    }
    assert!(e.tick(T0 + 2 * h).is_empty());
    assert!(e.alerts(T0 + 2 * h).is_empty());
}

fn gpu_snap(util: u32, procs: Vec<GpuProcess>) -> Snapshot {
    Snapshot {
        gpus: vec![Gpu {
            index: 1,
            name: "NVIDIA A100".into(),
            utilization_percent: Some(util),
            memory_used_bytes: Some(12 << 30),
            memory_total_bytes: Some(40 << 30),
            processes: procs,
            ..Default::default()
        }],
        parts: Some(Parts {
            gpu_processes: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn an_idle_gpu_holding_memory_fires_after_idle_min_naming_who_holds_it() {
    let r = rule("gpu-idle", "gpu_idle_with_memory", |c| {
        c.idle_min = Some(30.0)
    });
    let mut e = engine(cfg0(), vec![r], &["lab:g1"]);
    let holders = vec![
        GpuProcess {
            pid: 4242,
            name: "python".into(),
            user: "alice".into(),
            memory_used_bytes: Some(11 << 30),
            kind: "compute".into(),
        },
        GpuProcess {
            pid: 17,
            name: "jupyter".into(),
            user: "bob".into(),
            memory_used_bytes: Some(1 << 30),
            kind: "compute".into(),
        },
    ];
    // Busy: nothing.
    e.observe("lab:g1", &gpu_snap(80, holders.clone()), T0);
    assert!(e.alerts(T0).is_empty());
    let min = 60 * S;
    e.observe("lab:g1", &gpu_snap(0, holders.clone()), T0 + min);
    e.observe("lab:g1", &gpu_snap(1, holders.clone()), T0 + 30 * min);
    assert!(e.tick(T0 + 30 * min).is_empty(), "29 minutes idle");
    e.observe("lab:g1", &gpu_snap(0, holders.clone()), T0 + 31 * min);
    let d = e.tick(T0 + 31 * min);
    assert_eq!(summary(&d), [fired(&["lab:g1"])]);
    let a = &d[0].notification.alerts[0];
    assert_eq!(a.host.subject, "1");
    assert_eq!(a.host.value, Some(30.0));
    assert_eq!(
        a.host.detail,
        "GPU 1 (NVIDIA A100) idle with 12.0 GiB held by alice (PID 4242 python, 11.0 GiB), bob (PID 17 jupyter, 1.0 GiB)"
    );
    // The processes exit: resolved.
    e.observe("lab:g1", &gpu_snap(0, vec![]), T0 + 32 * min);
    assert_eq!(summary(&e.tick(T0 + 32 * min)), [resolved(&["lab:g1"])]);
}

fn procs(names: &[&str], full: bool) -> Snapshot {
    Snapshot {
        processes: names
            .iter()
            .map(|n| Process {
                name: n.to_string(),
                ..Default::default()
            })
            .collect(),
        parts: Some(Parts {
            processes: full,
            top_processes: if full { 0 } else { 10 },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_missing_process_fires_only_on_full_process_lists() {
    let r = rule("nginx", "process_missing", |c| {
        c.process = Some("nginx".into())
    });
    let mut e = engine(cfg0(), vec![r], &["web:w1"]);
    assert!(e.needs_processes("web:w1"));
    assert!(!e.needs_gpu_processes("web:w1"));
    e.observe("web:w1", &procs(&["sshd", "nginx"], true), T0);
    assert!(e.tick(T0).is_empty());
    // A summary with only the top processes says nothing about nginx.
    e.observe("web:w1", &procs(&["sshd"], false), T0 + S);
    assert!(e.tick(T0 + S).is_empty());
    e.observe("web:w1", &procs(&["sshd"], true), T0 + 2 * S);
    let d = e.tick(T0 + 2 * S);
    assert_eq!(summary(&d), [fired(&["web:w1"])]);
    assert_eq!(d[0].notification.alerts[0].host.subject, "nginx");
    assert_eq!(
        d[0].notification.alerts[0].host.detail,
        "no process 'nginx' runs"
    );
    e.observe("web:w1", &procs(&["sshd"], false), T0 + 3 * S);
    assert!(e.tick(T0 + 3 * S).is_empty(), "still firing, no news");
    e.observe("web:w1", &procs(&["nginx"], true), T0 + 4 * S);
    assert_eq!(summary(&e.tick(T0 + 4 * S)), [resolved(&["web:w1"])]);
}

#[test]
fn version_mismatch_compares_with_the_majority_or_the_expected_version() {
    let r = || rule("version", "version_mismatch", |_| {});
    let mut e = engine(cfg0(), vec![r()], &["a:1", "a:2", "a:3"]);
    let mut old = meta("a:3");
    old.agent_version = "0.1.0".into();
    e.upsert_host(old, T0);
    for h in ["a:1", "a:2", "a:3"] {
        e.observe(h, &cpu(1.0), T0);
    }
    let d = e.tick(T0);
    assert_eq!(summary(&d), [fired(&["a:3"])]);
    assert_eq!(
        d[0].notification.alerts[0].host.detail,
        "agent 0.1.0, expected 0.2.0"
    );
    // An expected version set: now the two others differ.
    let mut e = engine(
        EngineConfig {
            expected_agent_version: Some("0.1.0".into()),
            ..cfg0()
        },
        vec![r()],
        &["a:1", "a:2"],
    );
    for h in ["a:1", "a:2"] {
        e.observe(h, &cpu(1.0), T0);
    }
    assert_eq!(summary(&e.tick(T0)), [fired(&["a:1", "a:2"])]);
}

#[test]
fn the_state_survives_a_restart_without_notifying_again() {
    let rules = || {
        vec![
            rule("cpu", "cpu_percent > 90", |c| c.repeat_s = 600),
            rule("down", "host_down", |c| c.for_s = 60),
        ]
    };
    let mut e = engine(cfg0(), rules(), &["lab:n1", "lab:n2"]);
    e.observe("lab:n1", &cpu(95.0), T0);
    assert_eq!(e.tick(T0).len(), 1);
    let id = e.alerts(T0)[0].alert.id.clone();
    e.acknowledge(&id, "alice", T0 + S).expect("ack");
    e.host_status("lab:n2", Status::Down, T0 + 10 * S);
    let json = serde_json::to_string(&e.export()).expect("json");

    let mut e2 = Engine::new(cfg0());
    e2.set_rules(rules(), T0 + 20 * S);
    e2.import(serde_json::from_str(&json).expect("state"), T0 + 20 * S);
    e2.set_hosts(vec![meta("lab:n1"), meta("lab:n2")], T0 + 20 * S);
    e2.observe("lab:n1", &cpu(96.0), T0 + 20 * S);
    assert!(e2.tick(T0 + 20 * S).is_empty(), "no second firing");
    let a = e2.alerts(T0 + 20 * S);
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].alert.id, id);
    assert_eq!(
        a[0].ack,
        Some(Ack {
            by: "alice".into(),
            at_ms: T0 + S
        })
    );
    assert!(a[1].pending, "host_down still waits for its for_s");
    // The pending host_down fires at its time, counted from before the restart.
    e2.host_status("lab:n2", Status::Down, T0 + 21 * S);
    assert_eq!(summary(&e2.tick(T0 + 70 * S)), [fired(&["lab:n2"])]);
    // The repeat schedule carries over too (600 s after the first notification).
    assert!(e2.tick(T0 + 599 * S).is_empty());
    assert_eq!(e2.tick(T0 + 600 * S).len(), 1);
    e2.observe("lab:n1", &cpu(10.0), T0 + 601 * S);
    let d = e2.tick(T0 + 601 * S);
    assert_eq!(summary(&d), [resolved(&["lab:n1"])]);
    assert_eq!(d[0].notification.alerts[0].id, id);
}

#[test]
fn a_grouped_notification_survives_a_restart_with_its_id() {
    let r = || rule("down", "host_down", |_| {});
    let mut e = engine(EngineConfig::default(), vec![r()], &["a:1"]);
    e.host_status("a:1", Status::Down, T0);
    let state = e.export();
    let want = e.tick(T0 + 10 * S);
    let mut e2 = Engine::new(EngineConfig::default());
    e2.set_rules(vec![r()], T0);
    e2.import(state, T0);
    let got = e2.tick(T0 + 10 * S);
    assert_eq!(got, want);
    assert_eq!(got.len(), 1);
}

#[test]
fn editing_rules_keeps_unchanged_ones_and_resolves_changed_ones() {
    let cpu_rule = |sev: Severity| rule("cpu", "cpu_percent > 90", |c| c.severity = sev);
    let mem = |t: &str| rule("mem", &format!("mem_percent > {t}"), |_| {});
    let mut e = engine(
        cfg0(),
        vec![cpu_rule(Severity::Warning), mem("50")],
        &["lab:n1"],
    );
    let mut s = cpu(95.0);
    s.memory = Some(smon_proto::Memory {
        used_percent: 60.0,
        ..Default::default()
    });
    e.observe("lab:n1", &s, T0);
    assert_eq!(e.tick(T0).len(), 2);
    // cpu: only the severity changes (kept); mem: the threshold changes (starts afresh).
    e.set_rules(vec![mem("55"), cpu_rule(Severity::Critical)], T0 + S);
    let d = e.tick(T0 + S);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].notification.rule, "mem");
    assert_eq!(d[0].notification.status, AlertStatus::Resolved);
    e.observe("lab:n1", &s, T0 + 2 * S);
    let d = e.tick(T0 + 2 * S);
    assert_eq!(
        d.len(),
        1,
        "mem fires again under its new threshold, cpu does not"
    );
    assert_eq!(d[0].notification.rule, "mem");
    let a = e.alerts(T0 + 2 * S);
    let cpu_alert = a.iter().find(|a| a.alert.rule == "cpu").expect("cpu kept");
    assert_eq!(cpu_alert.alert.severity, Severity::Critical);
    assert_eq!(cpu_alert.alert.fired_ms, T0);
    // Removing a rule resolves its alerts.
    e.set_rules(vec![mem("55")], T0 + 3 * S);
    let d = e.tick(T0 + 3 * S);
    assert_eq!(d[0].notification.rule, "cpu");
    assert_eq!(d[0].notification.status, AlertStatus::Resolved);
    assert_eq!(
        d[0].notification.alerts[0].host.detail,
        "the rule was changed or removed"
    );
}

#[test]
fn a_host_leaving_the_fleet_resolves_its_alerts() {
    let r = rule("down", "host_down", |_| {});
    let mut e = engine(cfg0(), vec![r], &["lab:n1", "lab:n2"]);
    e.host_status("lab:n1", Status::Down, T0);
    assert_eq!(e.tick(T0).len(), 1);
    e.set_hosts(vec![meta("lab:n2")], T0 + S);
    let d = e.tick(T0 + S);
    assert_eq!(summary(&d), [resolved(&["lab:n1"])]);
    assert_eq!(
        d[0].notification.alerts[0].host.detail,
        "the host left the fleet"
    );
    let ev = e.drain_events();
    assert_eq!(ev.len(), 2);
    assert_eq!(
        (ev[1].status, ev[1].host.detail.as_str()),
        (AlertStatus::Resolved, "the host left the fleet")
    );
    assert!(e.alerts(T0 + S).is_empty());
    // Events for it are ignored now.
    e.host_status("lab:n1", Status::Down, T0 + 2 * S);
    assert!(e.tick(T0 + 2 * S).is_empty());
}

#[test]
fn scope_by_tag_and_cluster_limits_the_hosts_a_rule_sees() {
    let r = rule("gpu-hot", "gpu_temperature_celsius > 80", |c| {
        c.tag = Some("gpu".into());
        c.cluster = Some("lab".into());
    });
    let mut e = engine(cfg0(), vec![r], &["web:w1"]);
    let mut g = meta("lab:g1");
    g.tags = vec!["gpu".into()];
    e.upsert_host(g.clone(), T0);
    e.upsert_host(meta("lab:n1"), T0);
    let hot = Snapshot {
        gpus: vec![Gpu {
            index: 0,
            temperature_celsius: Some(85),
            ..Default::default()
        }],
        ..Default::default()
    };
    for h in ["web:w1", "lab:g1", "lab:n1"] {
        e.observe(h, &hot, T0);
    }
    let d = e.tick(T0);
    assert_eq!(summary(&d), [fired(&["lab:g1"])]);
    assert_eq!(d[0].notification.alerts[0].host.subject, "0");
    assert_eq!(
        d[0].notification.alerts[0].host.detail,
        "GPU 0 gpu_temperature_celsius is 85 °C (> 80)"
    );
    // The tag taken off: the host leaves the rule's scope and its alert resolves.
    g.tags.clear();
    e.upsert_host(g, T0 + S);
    let d = e.tick(T0 + S);
    assert_eq!(summary(&d), [resolved(&["lab:g1"])]);
    assert_eq!(
        d[0].notification.alerts[0].host.detail,
        "the host left the rule's scope"
    );
    e.observe("lab:g1", &hot, T0 + 2 * S);
    assert!(e.tick(T0 + 2 * S).is_empty());
    assert_eq!(e.firing_on("lab:g1"), 0);
}

#[test]
fn acknowledging_needs_a_firing_alert_and_ends_with_it() {
    let r = rule("cpu", "cpu_percent > 90", |_| {});
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    assert_eq!(
        e.acknowledge("nope", "alice", T0),
        Err(EngineError::UnknownAlert("nope".into()))
    );
    e.observe("lab:n1", &cpu(95.0), T0);
    let id = e.alerts(T0)[0].alert.id.clone();
    let a = e.acknowledge(&id, "alice", T0 + S).expect("ack");
    assert_eq!(a.ack.as_ref().map(|a| a.by.as_str()), Some("alice"));
    // The alerts page's JSON: the alert's fields, then the engine's marks.
    let v = serde_json::to_value(&a).expect("json");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["status"], "firing");
    assert_eq!(v["host"]["host"], "lab:n1");
    assert_eq!(v["ack"]["by"], "alice");
    assert!(v.get("pending").is_none() && v.get("silenced").is_none());
    assert_eq!(serde_json::from_value::<ActiveAlert>(v).expect("back"), a);
    e.observe("lab:n1", &cpu(10.0), T0 + 2 * S);
    e.observe("lab:n1", &cpu(95.0), T0 + 3 * S);
    let a = e.alerts(T0 + 3 * S);
    assert_ne!(a[0].alert.id, id, "a new episode");
    assert_eq!(a[0].ack, None);
}

#[test]
fn engine_settings_are_validated() {
    let c: EngineConfig =
        serde_json::from_value(serde_json::json!({"flap_changes": 1, "group_wait_s": 7200}))
            .expect("parse");
    let e: Vec<String> = c
        .validate("alerts.engine")
        .expect_err("invalid")
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        e,
        [
            "alerts.engine.group_wait_s: '7200' is more than an hour (3600 s)",
            "alerts.engine.flap_changes: '1' is not a number of changes between 2 and 100",
        ]
    );
    assert_eq!(EngineConfig::default().validate("x"), Ok(()));
}

#[test]
fn a_rule_may_group_on_its_own_window_and_notifications_carry_the_link() {
    let now = rule("now", "host_down", |c| c.group_wait_s = Some(0));
    let slow = rule("slow", "host_down", |c| {
        c.group_wait_s = Some(30);
        c.notify = vec!["mail".into()];
    });
    let cfg = EngineConfig {
        link: Some("https://smon.example/alerts".into()),
        ..EngineConfig::default()
    };
    let mut e = engine(cfg, vec![now, slow], &["lab:n1"]);
    e.host_status("lab:n1", Status::Down, T0);
    let d = e.tick(T0);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].notification.rule, "now");
    assert_eq!(
        d[0].notification.link.as_deref(),
        Some("https://smon.example/alerts")
    );
    assert!(
        e.tick(T0 + 29 * S).is_empty(),
        "the engine's 10 s do not apply"
    );
    let d = e.tick(T0 + 30 * S);
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].notification.rule.as_str(), d[0].channels.as_slice()),
        ("slow", ["mail".to_string()].as_slice())
    );
}

#[test]
fn a_gpu_that_stops_reporting_a_value_keeps_its_alert_and_a_gpu_gone_resolves() {
    let r = rule("gpu-power", "gpu_power_percent > 90", |_| {});
    let mut e = engine(cfg0(), vec![r], &["lab:g1"]);
    let snap = |power: Option<u32>, gpus: u32| Snapshot {
        gpus: (0..gpus)
            .map(|index| Gpu {
                index,
                power_mw: power,
                power_limit_mw: Some(100_000),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    e.observe("lab:g1", &snap(Some(95_000), 2), T0);
    let d = e.tick(T0);
    assert_eq!(d[0].notification.alerts.len(), 2);
    e.observe("lab:g1", &snap(None, 2), T0 + S);
    assert!(e.tick(T0 + S).is_empty(), "no reading: no change");
    assert_eq!(e.firing_on("lab:g1"), 2);
    e.observe("lab:g1", &snap(Some(95_000), 1), T0 + 2 * S);
    let d = e.tick(T0 + 2 * S);
    assert_eq!(summary(&d), [resolved(&["lab:g1"])]);
    assert_eq!(d[0].notification.alerts[0].host.subject, "1");
}

#[test]
fn a_group_holding_an_alert_twice_sends_its_last_state_in_host_order() {
    let r = rule("down", "host_down", |_| {});
    let mut e = engine(cfg0(), vec![r], &[]);
    let alert = |host: &str, detail: &str| Alert {
        id: alert_id("down", host, "", T0),
        rule: "down".into(),
        severity: Severity::Warning,
        status: AlertStatus::Firing,
        host: AlertHost {
            host: host.into(),
            cluster: "lab".into(),
            subject: String::new(),
            value: None,
            detail: detail.into(),
        },
        started_ms: T0,
        fired_ms: T0,
        resolved_ms: None,
        flapping: false,
    };
    e.import(
        EngineState {
            alerts: vec![],
            groups: vec![StoredGroup {
                rule: "down".into(),
                channels: vec!["ops".into()],
                severity: Severity::Warning,
                status: AlertStatus::Firing,
                repeat: false,
                due_ms: T0,
                alerts: vec![
                    alert("lab:n2", "first"),
                    alert("lab:n1", "only"),
                    alert("lab:n2", "second"),
                ],
            }],
        },
        T0,
    );
    let d = e.tick(T0);
    let got: Vec<(&str, &str)> = d[0]
        .notification
        .alerts
        .iter()
        .map(|a| (a.host.host.as_str(), a.host.detail.as_str()))
        .collect();
    assert_eq!(got, [("lab:n1", "only"), ("lab:n2", "second")]);
}

#[test]
fn an_import_after_the_rule_changed_resolves_the_old_alerts() {
    let mut e = engine(
        cfg0(),
        vec![rule("cpu", "cpu_percent > 90", |_| {})],
        &["lab:n1"],
    );
    e.observe("lab:n1", &cpu(95.0), T0);
    assert_eq!(e.tick(T0).len(), 1);
    let state = e.export();
    // The config was edited while the aggregator was stopped.
    let mut e2 = Engine::new(cfg0());
    e2.set_rules(vec![rule("cpu", "cpu_percent > 95", |_| {})], T0 + S);
    e2.import(state.clone(), T0 + S);
    e2.set_hosts(vec![meta("lab:n1")], T0 + S);
    let d = e2.tick(T0 + S);
    assert_eq!(summary(&d), [resolved(&["lab:n1"])]);
    assert_eq!(
        d[0].notification.alerts[0].host.detail,
        "the rule was changed or removed"
    );
    assert!(e2.alerts(T0 + S).is_empty());
    // Only the severity changed: the alert carries on, nothing is sent.
    let mut e3 = Engine::new(cfg0());
    e3.set_rules(
        vec![rule("cpu", "cpu_percent > 90", |c| {
            c.severity = Severity::Critical
        })],
        T0 + S,
    );
    e3.import(state, T0 + S);
    e3.set_hosts(vec![meta("lab:n1")], T0 + S);
    assert!(e3.tick(T0 + S).is_empty());
    assert_eq!(e3.alerts(T0 + S)[0].alert.severity, Severity::Critical);
}

fn reach(ping: Option<bool>, services: &[(&str, Option<bool>)]) -> ReachResult {
    use smon_api::reach::{PingResult, ServiceResult};
    ReachResult {
        checked_ms: 0,
        ping: PingResult {
            up: ping,
            error: (ping == Some(false)).then(|| "no answer within 2 s".to_owned()),
            ..Default::default()
        },
        services: services
            .iter()
            .map(|(n, up)| ServiceResult {
                name: (*n).into(),
                kind: "tcp".into(),
                port: Some(22),
                up: *up,
                error: (*up == Some(false)).then(|| "connection refused".to_owned()),
                ..Default::default()
            })
            .collect(),
    }
}

/// (status, subject, detail) of each alert of each notification.
fn subjects(d: &[Dispatch]) -> Vec<(AlertStatus, String, String)> {
    d.iter()
        .flat_map(|d| {
            d.notification.alerts.iter().map(|a| {
                (
                    d.notification.status,
                    a.host.subject.clone(),
                    a.host.detail.clone(),
                )
            })
        })
        .collect()
}

#[test]
fn service_down_fires_per_service_and_ping_while_down() {
    let r = rule("svc", "service_down", |_| {});
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    e.observe_reach(
        "lab:n1",
        &reach(Some(true), &[("ssh", Some(true)), ("web", Some(true))]),
        T0,
    );
    assert!(e.tick(T0).is_empty());
    e.observe_reach(
        "lab:n1",
        &reach(Some(false), &[("ssh", Some(false)), ("web", Some(true))]),
        T0 + S,
    );
    let d = e.tick(T0 + S);
    let mut got = subjects(&d);
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        got,
        [
            (
                AlertStatus::Firing,
                "ping".to_owned(),
                "the host does not answer pings: no answer within 2 s".to_owned()
            ),
            (
                AlertStatus::Firing,
                "ssh".to_owned(),
                "service ssh (tcp 22) is down: connection refused".to_owned()
            ),
        ]
    );
    // Still down: no new notification; a ping not sent keeps the ping's alert firing.
    e.observe_reach(
        "lab:n1",
        &reach(None, &[("ssh", Some(false)), ("web", Some(true))]),
        T0 + 2 * S,
    );
    assert!(e.tick(T0 + 2 * S).is_empty());
    assert_eq!(e.firing_on("lab:n1"), 2);
    e.observe_reach(
        "lab:n1",
        &reach(Some(true), &[("ssh", Some(true)), ("web", Some(true))]),
        T0 + 3 * S,
    );
    let d = e.tick(T0 + 3 * S);
    let got: Vec<AlertStatus> = subjects(&d).into_iter().map(|s| s.0).collect();
    assert_eq!(got, [AlertStatus::Resolved, AlertStatus::Resolved]);
    assert_eq!(e.firing_on("lab:n1"), 0);
}

#[test]
fn service_down_with_a_label_watches_that_service_only_and_removed_ones_resolve() {
    let r = rule("ssh", "service_down{ssh}", |c| c.for_s = 5);
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    e.observe_reach(
        "lab:n1",
        &reach(Some(false), &[("ssh", Some(false)), ("web", Some(false))]),
        T0,
    );
    assert!(e.tick(T0 + 4 * S).is_empty(), "for_s holds it pending");
    let d = e.tick(T0 + 5 * S);
    let got: Vec<String> = subjects(&d).into_iter().map(|s| s.1).collect();
    assert_eq!(got, ["ssh"]);
    // The service leaves the host's config: its alert resolves.
    e.observe_reach(
        "lab:n1",
        &reach(Some(false), &[("web", Some(false))]),
        T0 + 6 * S,
    );
    let d = e.tick(T0 + 6 * S);
    assert_eq!(summary(&d), [resolved(&["lab:n1"])]);
    // Samples never touch a service_down rule's alerts.
    e.observe("lab:n1", &cpu(10.0), T0 + 7 * S);
    assert!(e.tick(T0 + 7 * S).is_empty());
}

fn programs(list: &[(&str, &str, &str)], error: Option<&str>) -> Snapshot {
    Snapshot {
        programs: Some(smon_proto::Programs {
            programs: list
                .iter()
                .map(|(name, state, spawnerr)| {
                    let (g, n) = name.split_once(':').expect("group:name");
                    smon_proto::Program {
                        group: g.into(),
                        name: n.into(),
                        state: (*state).into(),
                        spawnerr: (*spawnerr).into(),
                        description: "Exited too quickly (process log may have details)".into(),
                        ..Default::default()
                    }
                })
                .collect(),
            error: error.map(str::to_owned),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn program_not_running_fires_per_program_after_for_s_and_resolves_when_it_runs() {
    let r = rule("prog", "program_not_running", |c| c.for_s = 5);
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    let up = programs(
        &[("web:api", "RUNNING", ""), ("web:worker", "RUNNING", "")],
        None,
    );
    e.observe("lab:n1", &up, T0);
    assert!(e.tick(T0).is_empty());
    let down = programs(
        &[("web:api", "EXITED", ""), ("web:worker", "RUNNING", "")],
        None,
    );
    e.observe("lab:n1", &down, T0 + S);
    e.observe("lab:n1", &down, T0 + 5 * S);
    assert!(e.tick(T0 + 5 * S).is_empty(), "for_s holds it pending");
    e.observe("lab:n1", &down, T0 + 6 * S);
    let d = e.tick(T0 + 6 * S);
    assert_eq!(
        subjects(&d),
        [(
            AlertStatus::Firing,
            "web:api".to_owned(),
            "program web:api is EXITED (Exited too quickly (process log may have details))"
                .to_owned()
        )]
    );
    // supervisord unreadable: the list is old, the alert stays as it is.
    let unread = programs(&[("web:api", "RUNNING", "")], Some("refused (401)"));
    e.observe("lab:n1", &unread, T0 + 7 * S);
    assert!(e.tick(T0 + 7 * S).is_empty());
    assert_eq!(e.firing_on("lab:n1"), 1);
    // A sample without programs (no supervisord read) says nothing either.
    e.observe("lab:n1", &cpu(5.0), T0 + 8 * S);
    assert_eq!(e.firing_on("lab:n1"), 1);
    e.observe("lab:n1", &up, T0 + 9 * S);
    let d = e.tick(T0 + 9 * S);
    assert_eq!(summary(&d), [resolved(&["lab:n1"])]);
    assert_eq!(e.firing_on("lab:n1"), 0);
}

#[test]
fn program_fatal_with_a_label_watches_that_program_only_and_a_removed_one_resolves() {
    let r = rule("fatal", "program_fatal{web:api}", |_| {});
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    let both = programs(
        &[
            ("web:api", "FATAL", "can't find command '/no/such'"),
            ("web:worker", "FATAL", ""),
        ],
        None,
    );
    e.observe("lab:n1", &both, T0);
    let d = e.tick(T0);
    assert_eq!(
        subjects(&d),
        [(
            AlertStatus::Firing,
            "web:api".to_owned(),
            "program web:api is FATAL: can't find command '/no/such'".to_owned()
        )]
    );
    // Not running but not FATAL does not hold program_fatal: it resolves.
    let stopped = programs(
        &[("web:api", "STOPPED", ""), ("web:worker", "FATAL", "")],
        None,
    );
    e.observe("lab:n1", &stopped, T0 + S);
    assert_eq!(summary(&e.tick(T0 + S)), [resolved(&["lab:n1"])]);
    e.observe("lab:n1", &both, T0 + 2 * S);
    assert_eq!(summary(&e.tick(T0 + 2 * S)), [fired(&["lab:n1"])]);
    // The program leaves supervisord's config: its alert resolves.
    e.observe(
        "lab:n1",
        &programs(&[("web:worker", "FATAL", "")], None),
        T0 + 3 * S,
    );
    assert_eq!(summary(&e.tick(T0 + 3 * S)), [resolved(&["lab:n1"])]);
}

#[test]
fn application_degraded_fires_on_its_pseudo_host_and_survives_fleet_changes() {
    let all = rule("apps", "application_degraded", |c| c.for_s = 2);
    let one = rule("db", "application_degraded{db}", |_| {});
    let mut e = engine(cfg0(), vec![all, one], &["lab:n1"]);
    e.observe_application("web", Some("no candidate left: lab:n1 down"), T0);
    assert!(e.tick(T0 + S).is_empty(), "for_s holds it pending");
    // The fleet's sync leaves the pseudo-host alone.
    e.set_hosts(vec![meta("lab:n2")], T0 + S);
    let d = e.tick(T0 + 2 * S);
    assert_eq!(summary(&d), [fired(&["application/web"])]);
    assert_eq!(
        subjects(&d)[0].2,
        "application web: no candidate left: lab:n1 down"
    );
    // A sample of a host never touches it; the rule on db alone ignores web.
    e.observe("lab:n2", &cpu(1.0), T0 + 3 * S);
    assert_eq!(e.firing_on("application/web"), 1);
    // A rules edit keeps it (same condition), then it resolves.
    let all = rule("apps", "application_degraded", |c| c.for_s = 2);
    e.set_rules(vec![all], T0 + 4 * S);
    assert_eq!(e.firing_on("application/web"), 1);
    e.observe_application("web", None, T0 + 5 * S);
    assert_eq!(
        summary(&e.tick(T0 + 5 * S)),
        [resolved(&["application/web"])]
    );
    assert!(e.alerts(T0 + 5 * S).is_empty());
}

/// A container `(name, kind, state, memory bytes, limit)`.
type Ctr<'a> = (&'a str, &'a str, Option<&'a str>, u64, Option<u64>);

/// A sample listing `items` out of `count` containers (a summary lists its top 5 only).
fn containers(count: u32, items: &[Ctr]) -> Snapshot {
    Snapshot {
        containers: Some(smon_proto::Containers {
            count,
            items: items
                .iter()
                .map(|&(name, kind, state, mem, limit)| smon_proto::Container {
                    id: format!("{name}-id"),
                    name: name.into(),
                    kind: kind.into(),
                    memory_bytes: mem,
                    memory_limit_bytes: limit,
                    state: state.map(str::to_owned),
                    ..Default::default()
                })
                .collect(),
            error: None,
        }),
        ..Default::default()
    }
}

fn all(items: &[Ctr]) -> Snapshot {
    containers(items.len() as u32, items)
}

const WEB: Ctr = ("web", "docker", Some("running"), 100, None);
const DB: Ctr = ("db", "docker", Some("running"), 100, None);
const CRON: Ctr = ("cron.service", "systemd", None, 100, None);

#[test]
fn container_down_fires_for_a_container_gone_after_for_s_and_resolves_when_back() {
    let r = rule("ctr", "container_down", |c| c.for_s = 30);
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    assert!(e.needs_containers("lab:n1"));
    e.observe("lab:n1", &all(&[WEB, DB, CRON]), T0);
    assert!(e.tick(T0).is_empty());
    // db goes away; a systemd service going away is not watched by the unnamed form.
    e.observe("lab:n1", &all(&[WEB]), T0 + S);
    assert!(e.tick(T0 + S).is_empty(), "pending for 30 s");
    let a = e.alerts(T0 + S);
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(a[0].pending && a[0].alert.host.subject == "db");
    e.observe("lab:n1", &all(&[WEB]), T0 + 31 * S);
    let d = e.tick(T0 + 31 * S);
    assert_eq!(
        subjects(&d),
        [(
            AlertStatus::Firing,
            "db".to_owned(),
            "container db is gone from the host".to_owned()
        )]
    );
    // A summary (top 5 of 9) that leaves db out says nothing about it: still firing.
    e.observe("lab:n1", &containers(9, &[WEB]), T0 + 40 * S);
    assert!(e.tick(T0 + 40 * S).is_empty());
    assert_eq!(e.firing_on("lab:n1"), 1);
    e.observe("lab:n1", &all(&[WEB, DB]), T0 + 50 * S);
    let d = e.tick(T0 + 50 * S);
    assert_eq!(
        subjects(&d),
        [(
            AlertStatus::Resolved,
            "db".to_owned(),
            "container db (docker) runs".to_owned()
        )]
    );
}

#[test]
fn container_down_fires_on_a_runtime_state_other_than_running() {
    let r = rule("ctr", "container_down", |_| {});
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    e.observe("lab:n1", &all(&[WEB]), T0);
    let paused = ("web", "docker", Some("paused"), 100, None);
    e.observe("lab:n1", &all(&[paused]), T0 + S);
    let d = e.tick(T0 + S);
    assert_eq!(
        subjects(&d),
        [(
            AlertStatus::Firing,
            "web".to_owned(),
            "container web (docker) is paused".to_owned()
        )]
    );
    // No runtime socket (no state): a listed cgroup counts as running.
    let bare = ("web", "docker", None, 100, None);
    e.observe("lab:n1", &all(&[bare]), T0 + 2 * S);
    assert_eq!(summary(&e.tick(T0 + 2 * S)), [resolved(&["lab:n1"])]);
}

#[test]
fn an_unnamed_container_down_forgets_a_container_gone_for_an_hour() {
    let r = rule("ctr", "container_down", |c| c.for_s = 10);
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    e.observe("lab:n1", &all(&[WEB, DB]), T0);
    e.observe("lab:n1", &all(&[WEB]), T0 + S);
    e.observe("lab:n1", &all(&[WEB]), T0 + 11 * S);
    assert_eq!(summary(&e.tick(T0 + 11 * S)), [fired(&["lab:n1"])]);
    // Still gone just before the hour since it was last seen: still firing.
    let last = T0 + crate::rule::CONTAINER_FORGET_MS;
    e.observe("lab:n1", &all(&[WEB]), last);
    assert!(e.tick(last).is_empty());
    // Then it is taken as removed on purpose: resolved, and forgotten.
    e.observe("lab:n1", &all(&[WEB]), last + S);
    assert_eq!(summary(&e.tick(last + S)), [resolved(&["lab:n1"])]);
    e.observe("lab:n1", &all(&[WEB]), last + 60 * S);
    assert!(e.tick(last + 60 * S).is_empty());
    assert!(e.alerts(last + 60 * S).is_empty());
}

#[test]
fn a_named_container_down_fires_while_it_is_missing_even_if_never_seen() {
    let r = rule("ctr", "container_down{db}", |c| c.for_s = 5);
    let svc = rule("svc", "container_down{cron.service}", |_| {});
    let mut e = engine(cfg0(), vec![r, svc], &["lab:n1"]);
    // A summary without db says nothing (db may only have left the top 5).
    e.observe("lab:n1", &containers(9, &[WEB, CRON]), T0);
    assert!(e.alerts(T0).is_empty());
    e.observe("lab:n1", &all(&[WEB, CRON]), T0 + S);
    e.observe("lab:n1", &all(&[WEB, CRON]), T0 + 6 * S);
    let d = e.tick(T0 + 6 * S);
    assert_eq!(
        subjects(&d),
        [(
            AlertStatus::Firing,
            "db".to_owned(),
            "no container db runs on the host".to_owned()
        )]
    );
    // A named systemd service is watched too; the name or the id match.
    e.observe("lab:n1", &all(&[WEB]), T0 + 7 * S);
    let d = e.tick(T0 + 7 * S);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].notification.rule, "svc");
    // db back under another name but with the id "db" (the id matches too); cron back.
    let mut s = all(&[WEB, CRON]);
    if let Some(c) = s.containers.as_mut() {
        c.items.push(smon_proto::Container {
            id: "db".into(),
            name: "db-2".into(),
            kind: "docker".into(),
            ..Default::default()
        });
        c.count += 1;
    }
    e.observe("lab:n1", &s, T0 + 8 * S);
    let d = e.tick(T0 + 8 * S);
    assert_eq!(summary(&d), [resolved(&["lab:n1"]), resolved(&["lab:n1"])]);
    // A rule that needs no containers does not ask for them.
    let e2 = engine(
        cfg0(),
        vec![rule("c", "cpu_percent > 5", |_| {})],
        &["lab:n1"],
    );
    assert!(!e2.needs_containers("lab:n1"));
}

#[test]
fn container_memory_percent_fires_per_container_with_a_limit() {
    let r = rule("mem", "container_memory_percent > 90", |c| {
        c.clear = Some(80.0)
    });
    let named = rule(
        "memdb",
        "container_memory_percent{container=\"db\"} > 50",
        |_| {},
    );
    let mut e = engine(cfg0(), vec![r, named], &["lab:n1"]);
    assert!(e.needs_containers("lab:n1"));
    let web = |mem| ("web", "docker", Some("running"), mem, Some(1000));
    let db = |mem| ("db", "docker", Some("running"), mem, Some(1000));
    let nolimit = ("big", "docker", Some("running"), u64::MAX / 2, None);
    e.observe("lab:n1", &all(&[web(950), db(600), nolimit]), T0);
    let d = e.tick(T0);
    let mut got = subjects(&d);
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        got,
        [
            (
                AlertStatus::Firing,
                "db".to_owned(),
                "container db memory is 60 % (> 50)".to_owned()
            ),
            (
                AlertStatus::Firing,
                "web".to_owned(),
                "container web memory is 95 % (> 90)".to_owned()
            ),
        ]
    );
    // Hysteresis: 85 % keeps web firing; a summary leaving db out keeps db's alert.
    e.observe("lab:n1", &containers(9, &[web(850)]), T0 + S);
    assert!(e.tick(T0 + S).is_empty());
    assert_eq!(e.firing_on("lab:n1"), 2);
    // Below the clear threshold web resolves; db gone from a full list resolves too.
    e.observe("lab:n1", &all(&[web(700)]), T0 + 2 * S);
    let d = e.tick(T0 + 2 * S);
    let mut got: Vec<String> = subjects(&d).into_iter().map(|x| x.1).collect();
    got.sort();
    assert_eq!(got, ["db", "web"]);
    assert_eq!(e.firing_on("lab:n1"), 0);
}

#[test]
fn a_container_down_alert_survives_a_restart_and_resolves_when_back() {
    let rules = || vec![rule("ctr", "container_down", |_| {})];
    let mut e = engine(cfg0(), rules(), &["lab:n1"]);
    e.observe("lab:n1", &all(&[WEB, DB]), T0);
    e.observe("lab:n1", &all(&[WEB]), T0 + S);
    assert_eq!(summary(&e.tick(T0 + S)), [fired(&["lab:n1"])]);
    let json = serde_json::to_string(&e.export()).expect("json");
    let mut e2 = Engine::new(cfg0());
    e2.set_rules(rules(), T0 + 2 * S);
    e2.import(serde_json::from_str(&json).expect("state"), T0 + 2 * S);
    e2.set_hosts(vec![meta("lab:n1")], T0 + 2 * S);
    // db is still gone after the restart: the alert keeps firing, nothing is sent again.
    e2.observe("lab:n1", &all(&[WEB]), T0 + 3 * S);
    assert!(e2.tick(T0 + 3 * S).is_empty());
    assert_eq!(e2.firing_on("lab:n1"), 1);
    e2.observe("lab:n1", &all(&[WEB, DB]), T0 + 4 * S);
    assert_eq!(summary(&e2.tick(T0 + 4 * S)), [resolved(&["lab:n1"])]);
}

#[test]
fn a_container_renamed_by_its_runtime_or_recreated_under_its_name_is_not_down() {
    let r = rule("ctr", "container_down", |_| {});
    let mut e = engine(cfg0(), vec![r], &["lab:n1"]);
    let one = |id: &str, name: &str| {
        let mut s = all(&[WEB]);
        if let Some(c) = s.containers.as_mut() {
            c.items[0].id = id.into();
            c.items[0].name = name.into();
        }
        s
    };
    // First named by its id's 12 digits, then by the runtime's API: the same container.
    e.observe("lab:n1", &one("5c35812f0817aa", "5c35812f0817"), T0);
    e.observe("lab:n1", &one("5c35812f0817aa", "web"), T0 + S);
    // Recreated under the same name (a new id): not down either.
    e.observe("lab:n1", &one("77aa00bb11cc22", "web"), T0 + 2 * S);
    assert!(e.tick(T0 + 2 * S).is_empty());
    assert!(
        e.alerts(T0 + 2 * S).is_empty(),
        "{:?}",
        e.alerts(T0 + 2 * S)
    );
    // Then gone: one alert, under its last name.
    e.observe("lab:n1", &all(&[]), T0 + 3 * S);
    let d = e.tick(T0 + 3 * S);
    assert_eq!(
        subjects(&d),
        [(
            AlertStatus::Firing,
            "web".to_owned(),
            "container web is gone from the host".to_owned()
        )]
    );
}
