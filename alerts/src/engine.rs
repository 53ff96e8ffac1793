//! The rule engine: fed the fleet's events (registry changes, host state changes, samples) and
//! a clock tick, it keeps one state per (rule, host, subject) — pending, firing, resolved —
//! and makes the notifications: grouped per rule and status, held back by silences and
//! flapping, repeated while firing, with ids that stay the same on retries and restarts.
//!
//! Pure logic: time is a parameter (`now_ms`, ms since the epoch, the aggregator's clock),
//! nothing here does I/O, and the state can be exported and imported (serde) so that firing
//! alerts survive a restart without notifying again.
//!
//! Cost: a sample evaluates only the rules whose scope holds the host (worked out when the
//! host or the rules change), and allocates only when an alert changes state.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use smon_api::alerts::{Alert, AlertHost, AlertStatus, Notification, Severity};
use smon_api::reach::ReachResult;
use smon_api::wire::Status;
use smon_proto::Snapshot;
use smon_runtime::config::FieldError;

use crate::observe::{HostMeta, Observation, gpu_memory_percent};
use crate::predict::DiskRing;
use crate::rule::{CONTAINER_FORGET_MS, Condition, Rule};
use crate::silence::Silence;

/// The engine's settings (`alerts.engine` in `config_app.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Alerts of one rule and status that start within this many seconds of the first go out
    /// as one notification (a rule can set its own `group_wait_s`). 0: each tick sends what
    /// came since the last.
    #[serde(default = "default_group_wait_s")]
    pub group_wait_s: u64,
    /// The window over which an alert's changes (firing <-> resolved) are counted, seconds.
    #[serde(default = "default_flap_window_s")]
    pub flap_window_s: u64,
    /// More changes than this within the window mark the alert flapping: it notifies once
    /// then, and once when it has been steady for a whole window.
    #[serde(default = "default_flap_changes")]
    pub flap_changes: u32,
    /// The agent version every host should run (`version_mismatch`); when absent, the version
    /// most hosts run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_agent_version: Option<String>,
    /// The dashboard's alerts page (`server.public_url` + `/alerts`), put in notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Short, so that a lone alert is notified within a few seconds of firing (the host-down
/// target: `for_s` + 5 s), and long enough to gather a rack that fails at once (its hosts
/// are seen down within about a second of each other).
fn default_group_wait_s() -> u64 {
    2
}
fn default_flap_window_s() -> u64 {
    600
}
fn default_flap_changes() -> u32 {
    4
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            group_wait_s: default_group_wait_s(),
            flap_window_s: default_flap_window_s(),
            flap_changes: default_flap_changes(),
            expected_agent_version: None,
            link: None,
        }
    }
}

impl EngineConfig {
    /// Checks the values (`at` is the block's field path, e.g. `alerts.engine`).
    pub fn validate(&self, at: &str) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut e = |field: &str, v: String, problem: &str| {
            errors.push(FieldError {
                field: format!("{at}.{field}"),
                value: v,
                problem: problem.to_owned(),
            })
        };
        if self.group_wait_s > 3600 {
            e(
                "group_wait_s",
                self.group_wait_s.to_string(),
                "is more than an hour (3600 s)",
            );
        }
        if !(60..=86_400).contains(&self.flap_window_s) {
            e(
                "flap_window_s",
                self.flap_window_s.to_string(),
                "is not a window between 60 s and a day (86400 s)",
            );
        }
        if !(2..=100).contains(&self.flap_changes) {
            e(
                "flap_changes",
                self.flap_changes.to_string(),
                "is not a number of changes between 2 and 100",
            );
        }
        if self
            .expected_agent_version
            .as_deref()
            .is_some_and(|v| v.trim().is_empty())
        {
            e(
                "expected_agent_version",
                String::new(),
                "is empty; leave it out to compare with the version most hosts run",
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Who acknowledged an alert, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The user.
    pub by: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// An alert as the alerts page lists it: firing, or pending (its condition holds, waiting for
/// the rule's `for_s`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    /// The alert (`status` is `firing`; a pending one has `fired_ms` 0).
    #[serde(flatten)]
    pub alert: Alert,
    /// Not firing yet: the condition holds, `for_s` has not passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// A silence covers it: it is shown but notifies nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub silenced: bool,
    /// Acknowledged, by whom and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Ack>,
}

/// A notification to send, and to which channels (the rule's `notify`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispatch {
    /// The channel names.
    pub channels: Vec<String>,
    /// What to send.
    pub notification: Notification,
}

/// What can go wrong when operating the engine.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// No current alert has this id.
    #[error("no current alert has the id '{0}'")]
    UnknownAlert(String),
}

/// The engine's state for export (serde): current alerts, with their notification
/// bookkeeping, and the notifications still being grouped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// Alerts (pending, firing, and resolved ones still remembered for flapping).
    pub alerts: Vec<StoredAlert>,
    /// Notifications being grouped, not sent yet.
    pub groups: Vec<StoredGroup>,
}

/// One alert in an [`EngineState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    /// Host id.
    pub host: String,
    /// The host's cluster.
    pub cluster: String,
    /// Its state.
    #[serde(flatten)]
    state: AlertState,
}

/// One notification being grouped in an [`EngineState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    /// The rule.
    pub rule: String,
    /// Its channels.
    pub channels: Vec<String>,
    /// Its severity.
    pub severity: Severity,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// A repeat.
    pub repeat: bool,
    /// When it goes out (ms since the epoch).
    pub due_ms: u64,
    /// Its alerts so far.
    pub alerts: Vec<Alert>,
}

/// One (rule, host, subject).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AlertState {
    rule: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    subject: String,
    /// Firing now.
    firing: bool,
    /// The condition has held since then, not yet for the rule's `for_s` (not firing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_since: Option<u64>,
    /// The current or last episode: when its condition began, fired, resolved.
    started_ms: u64,
    fired_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolved_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    detail: String,
    /// The last status sent (or queued) to channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_sent: Option<AlertStatus>,
    #[serde(default)]
    last_notified_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ack: Option<Ack>,
    /// Times of the changes within the flap window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changes: Vec<u64>,
    #[serde(default)]
    flapping: bool,
    /// The rule's [`Rule::fingerprint`] (written on export only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    rule_fingerprint: String,
    #[serde(skip)]
    rule_idx: usize,
    #[serde(skip)]
    seen: u32,
}

impl AlertState {
    fn id(&self, host: &str) -> String {
        alert_id(&self.rule, host, &self.subject, self.started_ms)
    }
}

/// The id of an alert: stable from firing to resolved, the same on every aggregator that saw
/// it start at the same time.
pub fn alert_id(rule: &str, host: &str, subject: &str, started_ms: u64) -> String {
    let mut h = Sha256::new();
    for part in [rule, host, subject] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(started_ms.to_be_bytes());
    hex(&h.finalize()[..12])
}

fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

/// The id prefix of the pseudo-hosts that hold `application_degraded` alerts (`/` is in no
/// host id).
pub const APPLICATION_PREFIX: &str = "application/";

struct Slot {
    rule: Rule,
    fingerprint: String,
    for_ms: u64,
    group_wait_ms: u64,
}

struct HostEntry {
    meta: HostMeta,
    /// In the registry (an entry made by [`Engine::import`] is not until the registry says so).
    registered: bool,
    status: Status,
    /// The rules whose scope holds the host.
    scope: Vec<usize>,
    alerts: Vec<AlertState>,
    rings: Vec<DiskRing>,
    wants_rings: bool,
    /// Containers (not systemd services) seen, by id (unnamed `container_down`: a container
    /// gone from a later sample was seen before).
    seen_containers: HashMap<String, SeenContainer>,
    wants_containers: bool,
    generation: u32,
}

impl HostEntry {
    /// A new entry for `meta`, with no alerts and nothing kept.
    fn new(meta: HostMeta, registered: bool, status: Status) -> Self {
        Self {
            meta,
            registered,
            status,
            scope: Vec::new(),
            alerts: Vec::new(),
            rings: Vec::new(),
            wants_rings: false,
            seen_containers: HashMap::new(),
            wants_containers: false,
            generation: 0,
        }
    }
}

/// The engine. See the module doc.
pub struct Engine {
    cfg: EngineConfig,
    slots: Vec<Slot>,
    silences: Vec<Silence>,
    hosts: HashMap<String, HostEntry>,
    groups: Vec<StoredGroup>,
    versions: HashMap<String, u32>,
    majority: String,
    events: Vec<Alert>,
}

/// A rule's verdict on one subject.
struct Verdict<'a> {
    /// The subject is there but says nothing now (a GPU not reporting the value): the alert
    /// keeps its state.
    keep: bool,
    /// The condition holds at the trigger threshold.
    trigger: bool,
    /// It holds at the clear threshold (what keeps a firing alert firing).
    sustain: bool,
    value: Option<f64>,
    detail: &'a dyn Fn() -> String,
}

/// What the transition code needs besides the host's alerts.
struct Ctx<'a> {
    cfg: &'a EngineConfig,
    silences: &'a [Silence],
    groups: &'a mut Vec<StoredGroup>,
    events: &'a mut Vec<Alert>,
    now: u64,
}

impl Engine {
    /// An engine with no rules, hosts or silences.
    pub fn new(cfg: EngineConfig) -> Engine {
        Engine {
            cfg,
            slots: Vec::new(),
            silences: Vec::new(),
            hosts: HashMap::new(),
            groups: Vec::new(),
            versions: HashMap::new(),
            majority: String::new(),
            events: Vec::new(),
        }
    }

    /// The rules.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.slots.iter().map(|s| &s.rule)
    }

    /// Replaces the rules (config reload, an admin's edit). A rule whose name, condition and
    /// scope are unchanged keeps its alerts (a change of severity, `notify`, `repeat_s` or
    /// grouping applies to them); the alerts of a rule removed or changed resolve (notified
    /// when their firing was), and a changed rule starts afresh.
    pub fn set_rules(&mut self, rules: Vec<Rule>, now_ms: u64) {
        let old: Vec<Slot> = std::mem::take(&mut self.slots);
        self.slots = rules
            .into_iter()
            .map(|rule| Slot {
                fingerprint: rule.fingerprint(),
                for_ms: rule.for_ms(),
                group_wait_ms: rule.config.group_wait_s.unwrap_or(self.cfg.group_wait_s) * 1000,
                rule,
            })
            .collect();
        // Old index -> new index, for the rules kept.
        let map: Vec<Option<usize>> = old
            .iter()
            .map(|o| {
                self.slots
                    .iter()
                    .position(|n| n.rule.same_condition(&o.rule))
            })
            .collect();
        let mut ctx = Ctx {
            cfg: &self.cfg,
            silences: &self.silences,
            groups: &mut self.groups,
            events: &mut self.events,
            now: now_ms,
        };
        for h in self.hosts.values_mut() {
            let mut i = 0;
            while i < h.alerts.len() {
                let a = &mut h.alerts[i];
                match map.get(a.rule_idx).copied().flatten() {
                    Some(n) => {
                        a.rule_idx = n;
                        i += 1;
                    }
                    None => {
                        let a = h.alerts.swap_remove(i);
                        retire(
                            a,
                            &old,
                            &h.meta,
                            &mut ctx,
                            "the rule was changed or removed",
                        );
                    }
                }
            }
        }
        self.rescope_all();
    }

    /// Replaces the silences.
    pub fn set_silences(&mut self, silences: Vec<Silence>) {
        self.silences = silences;
    }

    /// The silences.
    pub fn silences(&self) -> &[Silence] {
        &self.silences
    }

    /// Replaces the fleet: hosts not listed leave it (their alerts resolve), listed ones are
    /// added or updated.
    pub fn set_hosts(&mut self, hosts: Vec<HostMeta>, now_ms: u64) {
        let keep: std::collections::HashSet<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
        let gone: Vec<String> = self
            .hosts
            .keys()
            .filter(|k| !keep.contains(k.as_str()) && !k.starts_with(APPLICATION_PREFIX))
            .cloned()
            .collect();
        for id in gone {
            self.remove_host(&id, now_ms);
        }
        for h in hosts {
            self.upsert_host(h, now_ms);
        }
    }

    /// Adds a host to the fleet, or updates its cluster, tags or agent version. Alerts of
    /// rules whose scope no longer holds the host (a tag taken off) resolve.
    pub fn upsert_host(&mut self, meta: HostMeta, now_ms: u64) {
        let old_version = match self.hosts.get_mut(&meta.id) {
            Some(h) => {
                let was = h.registered.then(|| h.meta.agent_version.clone());
                h.meta = meta.clone();
                h.registered = true;
                was
            }
            None => {
                self.hosts.insert(
                    meta.id.clone(),
                    HostEntry::new(meta.clone(), true, Status::Pending),
                );
                None
            }
        };
        if old_version.as_deref() != Some(meta.agent_version.as_str()) {
            if let Some(v) = old_version {
                self.count_version(&v, false);
            }
            self.count_version(&meta.agent_version, true);
        }
        let Some(h) = self.hosts.get_mut(&meta.id) else {
            return;
        };
        rescope(h, &self.slots);
        if h.alerts.iter().all(|a| h.scope.contains(&a.rule_idx)) {
            return;
        }
        let mut ctx = Ctx {
            cfg: &self.cfg,
            silences: &self.silences,
            groups: &mut self.groups,
            events: &mut self.events,
            now: now_ms,
        };
        let mut i = 0;
        while i < h.alerts.len() {
            if h.scope.contains(&h.alerts[i].rule_idx) {
                i += 1;
                continue;
            }
            let a = h.alerts.swap_remove(i);
            retire(
                a,
                &self.slots,
                &h.meta,
                &mut ctx,
                "the host left the rule's scope",
            );
        }
    }

    /// Takes a host out of the fleet: its firing alerts resolve (notified when their firing
    /// was) and it is forgotten.
    pub fn remove_host(&mut self, id: &str, now_ms: u64) {
        let Some(h) = self.hosts.remove(id) else {
            return;
        };
        if h.registered {
            self.count_version(&h.meta.agent_version, false);
        }
        let mut ctx = Ctx {
            cfg: &self.cfg,
            silences: &self.silences,
            groups: &mut self.groups,
            events: &mut self.events,
            now: now_ms,
        };
        for a in h.alerts {
            retire(a, &self.slots, &h.meta, &mut ctx, "the host left the fleet");
        }
    }

    /// The host's state changed (`host_down` rules: fire on `down`, resolve on `up`).
    pub fn host_status(&mut self, id: &str, status: Status, now_ms: u64) {
        let Some(h) = self.hosts.get_mut(id) else {
            return;
        };
        h.status = status;
        h.generation = h.generation.wrapping_add(1);
        let mut ctx = Ctx {
            cfg: &self.cfg,
            silences: &self.silences,
            groups: &mut self.groups,
            events: &mut self.events,
            now: now_ms,
        };
        let detail = || match status {
            Status::Down => "the host is down".to_owned(),
            _ => "the host is back up".to_owned(),
        };
        for &r in &h.scope {
            let slot = &self.slots[r];
            if slot.rule.condition.is_host_down() {
                let v = Verdict {
                    keep: false,
                    trigger: status == Status::Down,
                    sustain: status != Status::Up,
                    value: None,
                    detail: &detail,
                };
                apply(
                    &mut h.alerts,
                    &h.meta,
                    h.generation,
                    r,
                    slot,
                    "",
                    &v,
                    &mut ctx,
                );
            }
        }
    }

    /// A sample of the host arrived at `now_ms` (the aggregator's clock): evaluates the rules
    /// in the host's scope.
    pub fn observe(&mut self, id: &str, snap: &Snapshot, now_ms: u64) {
        let Some(h) = self.hosts.get_mut(id) else {
            return;
        };
        let obs = Observation::new(snap);
        h.generation = h.generation.wrapping_add(1);
        let generation = h.generation;
        if h.wants_rings {
            record_rings(&mut h.rings, &obs, now_ms);
        }
        if h.wants_containers {
            record_containers(&mut h.seen_containers, snap, now_ms);
        }
        let expected = self
            .cfg
            .expected_agent_version
            .as_deref()
            .unwrap_or(&self.majority);
        let mut ctx = Ctx {
            cfg: &self.cfg,
            silences: &self.silences,
            groups: &mut self.groups,
            events: &mut self.events,
            now: now_ms,
        };
        for &r in &h.scope {
            let slot = &self.slots[r];
            let had_data = evaluate(
                slot,
                &obs,
                &h.meta,
                expected,
                &h.rings,
                &h.seen_containers,
                now_ms,
                &mut |subject: &str, v: &Verdict| {
                    apply(
                        &mut h.alerts,
                        &h.meta,
                        generation,
                        r,
                        slot,
                        subject,
                        v,
                        &mut ctx,
                    )
                },
            );
            if had_data {
                // Subjects the sample no longer has (an unmounted disk, a GPU gone) clear.
                clear_stale(&mut h.alerts, &h.meta, generation, r, slot, &mut ctx);
            }
        }
    }

    /// A reachability check of the host ended (`service_down` rules): each service with a
    /// known state, and the ping (subject `ping`), fires while down and resolves when it
    /// answers again; a service no longer checked (removed from the config) resolves.
    pub fn observe_reach(&mut self, id: &str, result: &ReachResult, now_ms: u64) {
        let Some(h) = self.hosts.get_mut(id) else {
            return;
        };
        h.generation = h.generation.wrapping_add(1);
        let generation = h.generation;
        let mut ctx = Ctx {
            cfg: &self.cfg,
            silences: &self.silences,
            groups: &mut self.groups,
            events: &mut self.events,
            now: now_ms,
        };
        // (subject, up, what the alert says)
        let mut subjects: Vec<(&str, Option<bool>, String)> = Vec::new();
        let why = |e: &Option<String>| e.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
        subjects.push((
            "ping",
            result.ping.up,
            match result.ping.up {
                Some(false) => format!("the host does not answer pings{}", why(&result.ping.error)),
                _ => "the host answers pings".to_owned(),
            },
        ));
        for s in &result.services {
            let what = match s.port {
                Some(p) => format!("service {} ({} {p})", s.name, s.kind),
                None => format!("service {} ({})", s.name, s.kind),
            };
            let detail = match s.up {
                Some(false) => format!("{what} is down{}", why(&s.error)),
                _ => format!("{what} is up"),
            };
            subjects.push((&s.name, s.up, detail));
        }
        for &r in &h.scope {
            let slot = &self.slots[r];
            let Condition::ServiceDown { service } = &slot.rule.condition else {
                continue;
            };
            for (subject, up, detail) in &subjects {
                if service.as_deref().is_some_and(|want| want != *subject) {
                    continue;
                }
                let detail = || detail.clone();
                let v = match up {
                    // Not checked this time (no ICMP socket): the alert keeps its state.
                    None => KEEP,
                    Some(up) => Verdict {
                        keep: false,
                        trigger: !up,
                        sustain: !up,
                        value: None,
                        detail: &detail,
                    },
                };
                apply(
                    &mut h.alerts,
                    &h.meta,
                    generation,
                    r,
                    slot,
                    subject,
                    &v,
                    &mut ctx,
                );
            }
            // Subjects no longer checked clear.
            clear_stale(&mut h.alerts, &h.meta, generation, r, slot, &mut ctx);
        }
    }

    /// A declared application's state (`application_degraded` rules): `problem` is why it
    /// cannot run as declared, `None` when it runs as declared again. Its alerts live on the
    /// pseudo-host `application/<name>` (no cluster, no tags), which the fleet's changes
    /// leave alone.
    pub fn observe_application(&mut self, name: &str, problem: Option<&str>, now_ms: u64) {
        let id = format!("{APPLICATION_PREFIX}{name}");
        let h = self.hosts.entry(id.clone()).or_insert_with(|| {
            let meta = HostMeta {
                id,
                ..HostMeta::default()
            };
            HostEntry::new(meta, false, Status::Up)
        });
        if !h.registered {
            // Not counted among agent versions (upsert_host is for hosts).
            h.registered = true;
            h.scope = application_scope(&self.slots);
        }
        h.generation = h.generation.wrapping_add(1);
        let generation = h.generation;
        let mut ctx = Ctx {
            cfg: &self.cfg,
            silences: &self.silences,
            groups: &mut self.groups,
            events: &mut self.events,
            now: now_ms,
        };
        let detail = || match problem {
            Some(p) => format!("application {name}: {p}"),
            None => format!("application {name} runs as declared"),
        };
        for &r in &h.scope {
            let slot = &self.slots[r];
            let Condition::ApplicationDegraded { application } = &slot.rule.condition else {
                continue;
            };
            if application.as_deref().is_some_and(|want| want != name) {
                continue;
            }
            let v = Verdict {
                keep: false,
                trigger: problem.is_some(),
                sustain: problem.is_some(),
                value: None,
                detail: &detail,
            };
            apply(
                &mut h.alerts,
                &h.meta,
                generation,
                r,
                slot,
                "",
                &v,
                &mut ctx,
            );
        }
    }

    /// Seeds the disk-use points of `mount` on host `id` from history (`(ms, used percent)`,
    /// oldest first), so that `disk_full_within` predicts at once after a restart. Points
    /// the engine already holds are kept (they are newer).
    pub fn seed_disk(&mut self, id: &str, mount: &str, points: &[(u64, f64)]) {
        let Some(h) = self.hosts.get_mut(id) else {
            return;
        };
        let mut ring = DiskRing::new(mount);
        for &(t, p) in points {
            ring.record(t, p);
        }
        match h.rings.iter_mut().find(|r| r.mount == mount) {
            Some(old) => {
                for (t, p) in old.points() {
                    ring.record(t, p);
                }
                *old = ring;
            }
            None => h.rings.push(ring),
        }
    }

    /// Advances the clock: pending alerts whose `for_s` has passed fire, silences that ended
    /// let their firing alerts notify, repeats fall due, flapping alerts that settled notify,
    /// and the groups whose wait is over are returned as notifications.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Dispatch> {
        let flap_window = self.cfg.flap_window_s * 1000;
        let mut ctx = Ctx {
            cfg: &self.cfg,
            silences: &self.silences,
            groups: &mut self.groups,
            events: &mut self.events,
            now: now_ms,
        };
        for h in self.hosts.values_mut() {
            if h.alerts.is_empty() {
                continue;
            }
            let mut i = 0;
            while i < h.alerts.len() {
                let a = &mut h.alerts[i];
                let slot = &self.slots[a.rule_idx];
                // host_down's and service_down's for_s pass with no event (the next check
                // may be half a minute away): the clock fires them. Rules on samples fire on
                // a sample (one that still shows the condition), as in Prometheus: a host
                // that stops reporting does not fire them.
                if !a.firing
                    && slot.rule.condition.fires_on_clock()
                    && let Some(since) = a.pending_since
                    && now_ms.saturating_sub(since) >= slot.for_ms
                {
                    fire(a, slot, &h.meta, &mut ctx, None, &String::new);
                }
                let last_change = a.changes.last().copied().unwrap_or(0);
                if a.flapping && now_ms.saturating_sub(last_change) >= flap_window {
                    a.flapping = false;
                    a.changes.clear();
                    reconcile(a, slot, &h.meta, &mut ctx, true);
                } else if a.firing && !a.flapping {
                    let silenced = is_silenced(ctx.silences, slot, &h.meta, now_ms);
                    if a.last_sent != Some(AlertStatus::Firing) {
                        // A silence ended.
                        if !silenced {
                            reconcile(a, slot, &h.meta, &mut ctx, false);
                        }
                    } else if slot.rule.config.repeat_s > 0
                        && !silenced
                        && now_ms.saturating_sub(a.last_notified_ms)
                            >= slot.rule.config.repeat_s * 1000
                    {
                        a.last_notified_ms = now_ms;
                        let alert = to_alert(a, slot, &h.meta, AlertStatus::Firing);
                        enqueue(&mut ctx, slot, alert, true);
                    }
                }
                // A resolved alert is remembered for the flap window, then forgotten.
                let a = &h.alerts[i];
                let idle = !a.firing
                    && a.pending_since.is_none()
                    && !a.flapping
                    && now_ms.saturating_sub(last_change) >= flap_window;
                if idle {
                    h.alerts.swap_remove(i);
                } else {
                    i += 1;
                }
            }
        }
        self.flush(now_ms)
    }

    fn flush(&mut self, now_ms: u64) -> Vec<Dispatch> {
        let mut due: Vec<StoredGroup> = Vec::new();
        let mut i = 0;
        while i < self.groups.len() {
            if self.groups[i].due_ms <= now_ms {
                due.push(self.groups.remove(i));
            } else {
                i += 1;
            }
        }
        due.into_iter()
            .map(|mut g| {
                // Host order; of several states of one alert the last queued (a stable sort
                // keeps queue order among equals).
                g.alerts.sort_by(|a, b| {
                    (&a.host.host, &a.host.subject, &a.id).cmp(&(
                        &b.host.host,
                        &b.host.subject,
                        &b.id,
                    ))
                });
                let mut kept: Vec<Alert> = Vec::with_capacity(g.alerts.len());
                for a in g.alerts.drain(..) {
                    match kept.last_mut() {
                        Some(last) if last.id == a.id => *last = a,
                        _ => kept.push(a),
                    }
                }
                g.alerts = kept;
                let id = notification_id(&g, now_ms);
                Dispatch {
                    channels: g.channels,
                    notification: Notification {
                        id,
                        status: g.status,
                        rule: g.rule,
                        severity: g.severity,
                        alerts: g.alerts,
                        repeat: g.repeat,
                        at_ms: now_ms,
                        link: self.cfg.link.clone(),
                    },
                }
            })
            .collect()
    }

    /// Every alert that fired or resolved since the last call, in order, silenced and
    /// flapping ones included (notifications leave those out): what the alert history
    /// stores and the alerts page's live feed shows. Call it after each batch of events or
    /// tick; it is not part of the exported state.
    pub fn drain_events(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.events)
    }

    /// The alerts firing or pending now, host by host (silence marks as of `now_ms`).
    pub fn alerts(&self, now_ms: u64) -> Vec<ActiveAlert> {
        let mut out = Vec::new();
        for h in self.hosts.values() {
            for a in &h.alerts {
                if let Some(v) = self.view(h, a, now_ms) {
                    out.push(v);
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.alert.host.host, &a.alert.rule, &a.alert.host.subject).cmp(&(
                &b.alert.host.host,
                &b.alert.rule,
                &b.alert.host.subject,
            ))
        });
        out
    }

    /// How many alerts fire on host `id` (the overview's badge).
    pub fn firing_on(&self, id: &str) -> usize {
        self.hosts
            .get(id)
            .map_or(0, |h| h.alerts.iter().filter(|a| a.firing).count())
    }

    fn view(&self, h: &HostEntry, a: &AlertState, now_ms: u64) -> Option<ActiveAlert> {
        let slot = &self.slots[a.rule_idx];
        let pending = !a.firing;
        let alert = match (a.firing, a.pending_since) {
            (true, _) => to_alert(a, slot, &h.meta, AlertStatus::Firing),
            (false, Some(since)) => {
                let mut p = a.clone();
                p.started_ms = since;
                p.fired_ms = 0;
                p.resolved_ms = None;
                to_alert(&p, slot, &h.meta, AlertStatus::Firing)
            }
            (false, None) => return None,
        };
        Some(ActiveAlert {
            alert,
            pending,
            silenced: is_silenced(&self.silences, slot, &h.meta, now_ms),
            ack: a.ack.clone().filter(|_| a.firing),
        })
    }

    /// Acknowledges the firing alert `alert_id` (kept until it resolves).
    pub fn acknowledge(
        &mut self,
        alert_id: &str,
        by: &str,
        now_ms: u64,
    ) -> Result<ActiveAlert, EngineError> {
        for h in self.hosts.values_mut() {
            if let Some(a) = h
                .alerts
                .iter_mut()
                .find(|a| a.firing && a.id(&h.meta.id) == alert_id)
            {
                a.ack = Some(Ack {
                    by: by.to_owned(),
                    at_ms: now_ms,
                });
                break;
            }
        }
        self.alerts(now_ms)
            .into_iter()
            .find(|a| a.alert.id == alert_id && !a.pending && a.ack.is_some())
            .ok_or_else(|| EngineError::UnknownAlert(alert_id.to_owned()))
    }

    /// Whether host `id` is in the scope of a rule that needs its full process list
    /// (`process_missing`): the aggregator then asks its agent for processes.
    pub fn needs_processes(&self, id: &str) -> bool {
        self.hosts.get(id).is_some_and(|h| {
            h.scope
                .iter()
                .any(|&r| self.slots[r].rule.needs_processes())
        })
    }

    /// Whether host `id` is in the scope of a rule that needs every one of its containers
    /// (`container_down`, `container_memory_percent`): the aggregator then asks its agent
    /// for them (`Parts.containers`), not just the summary's top 5.
    pub fn needs_containers(&self, id: &str) -> bool {
        self.hosts.get(id).is_some_and(|h| {
            h.scope
                .iter()
                .any(|&r| self.slots[r].rule.needs_containers())
        })
    }

    /// Whether host `id` is in the scope of a rule that needs the processes on its GPUs
    /// (`gpu_idle_with_memory`, to name who holds the memory).
    pub fn needs_gpu_processes(&self, id: &str) -> bool {
        self.hosts.get(id).is_some_and(|h| {
            h.scope
                .iter()
                .any(|&r| self.slots[r].rule.needs_gpu_processes())
        })
    }

    /// The state to keep across a restart.
    pub fn export(&self) -> EngineState {
        let mut alerts: Vec<StoredAlert> = self
            .hosts
            .values()
            .flat_map(|h| {
                h.alerts.iter().map(|a| StoredAlert {
                    host: h.meta.id.clone(),
                    cluster: h.meta.cluster.clone(),
                    state: AlertState {
                        rule_fingerprint: self.slots[a.rule_idx].fingerprint.clone(),
                        ..a.clone()
                    },
                })
            })
            .collect();
        alerts.sort_by(|a, b| {
            (&a.host, &a.state.rule, &a.state.subject).cmp(&(
                &b.host,
                &b.state.rule,
                &b.state.subject,
            ))
        });
        EngineState {
            alerts,
            groups: self.groups.clone(),
        }
    }

    /// Restores a state [`Self::export`]ed before (call after [`Self::set_rules`]): alerts of
    /// rules that no longer exist are dropped, those of rules whose condition or scope changed
    /// in between resolve at `now_ms` (as [`Self::set_rules`] does). Hosts it names that the
    /// registry has not added yet are kept until [`Self::set_hosts`] says whether they are in
    /// the fleet.
    pub fn import(&mut self, state: EngineState, now_ms: u64) {
        for s in state.alerts {
            let Some(r) = self
                .slots
                .iter()
                .position(|x| x.rule.name() == s.state.rule)
            else {
                continue;
            };
            let h = self.hosts.entry(s.host.clone()).or_insert_with(|| {
                let meta = HostMeta {
                    id: s.host.clone(),
                    cluster: s.cluster.clone(),
                    ..HostMeta::default()
                };
                HostEntry::new(meta, false, Status::Pending)
            });
            let mut a = s.state;
            a.rule_idx = r;
            if matches!(
                self.slots[r].rule.condition,
                Condition::ContainerDown { name: None }
            ) && (a.firing || a.pending_since.is_some())
            {
                // Still missing after the restart: remembered afresh, so that the first
                // sample does not take it for a container never seen.
                h.seen_containers.insert(
                    a.subject.clone(),
                    SeenContainer {
                        name: a.subject.clone(),
                        last_ms: now_ms,
                    },
                );
            }
            h.alerts
                .retain(|x| !(x.rule == a.rule && x.subject == a.subject));
            let fingerprint = std::mem::take(&mut a.rule_fingerprint);
            if !fingerprint.is_empty() && fingerprint != self.slots[r].fingerprint {
                let mut ctx = Ctx {
                    cfg: &self.cfg,
                    silences: &self.silences,
                    groups: &mut self.groups,
                    events: &mut self.events,
                    now: now_ms,
                };
                retire(
                    a,
                    &self.slots,
                    &h.meta,
                    &mut ctx,
                    "the rule was changed or removed",
                );
                continue;
            }
            h.alerts.push(a);
        }
        let known: Vec<&str> = self.slots.iter().map(|s| s.rule.name()).collect();
        self.groups.extend(
            state
                .groups
                .into_iter()
                .filter(|g| known.contains(&g.rule.as_str())),
        );
    }

    fn count_version(&mut self, v: &str, add: bool) {
        if v.is_empty() {
            return;
        }
        if add {
            *self.versions.entry(v.to_owned()).or_default() += 1;
        } else if let Some(n) = self.versions.get_mut(v) {
            *n -= 1;
            if *n == 0 {
                self.versions.remove(v);
            }
        }
        // The most common version; a tie goes to the highest (the newest, usually).
        self.majority = self
            .versions
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)))
            .map(|(v, _)| v.clone())
            .unwrap_or_default();
    }

    fn rescope_all(&mut self) {
        for h in self.hosts.values_mut() {
            if h.meta.id.starts_with(APPLICATION_PREFIX) {
                h.scope = application_scope(&self.slots);
            } else {
                rescope(h, &self.slots);
            }
        }
    }
}

/// The `application_degraded` rules: an application pseudo-host's scope.
fn application_scope(slots: &[Slot]) -> Vec<usize> {
    slots
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.rule.condition, Condition::ApplicationDegraded { .. }))
        .map(|(i, _)| i)
        .collect()
}

fn rescope(h: &mut HostEntry, slots: &[Slot]) {
    h.scope.clear();
    if !h.registered {
        return;
    }
    for (i, s) in slots.iter().enumerate() {
        if s.rule.in_scope(&h.meta.id, &h.meta.cluster, &h.meta.tags) {
            h.scope.push(i);
        }
    }
    h.wants_rings = h
        .scope
        .iter()
        .any(|&i| matches!(slots[i].rule.condition, Condition::DiskFullWithin { .. }));
    if !h.wants_rings {
        h.rings = Vec::new();
    }
    h.wants_containers = h.scope.iter().any(|&i| {
        matches!(
            slots[i].rule.condition,
            Condition::ContainerDown { name: None }
        )
    });
    if !h.wants_containers {
        h.seen_containers = HashMap::new();
    }
}

fn is_silenced(silences: &[Silence], slot: &Slot, meta: &HostMeta, now: u64) -> bool {
    silences
        .iter()
        .any(|s| s.matches(slot.rule.name(), &meta.id, &meta.cluster, &meta.tags) && s.active(now))
}

fn to_alert(a: &AlertState, slot: &Slot, meta: &HostMeta, status: AlertStatus) -> Alert {
    Alert {
        id: a.id(&meta.id),
        rule: a.rule.clone(),
        severity: slot.rule.config.severity,
        status,
        host: AlertHost {
            host: meta.id.clone(),
            cluster: meta.cluster.clone(),
            subject: a.subject.clone(),
            value: a.value,
            detail: a.detail.clone(),
        },
        started_ms: a.started_ms,
        fired_ms: a.fired_ms,
        resolved_ms: a.resolved_ms,
        flapping: a.flapping,
    }
}

/// Puts an alert into its rule's open group for this status, or opens one.
fn enqueue(ctx: &mut Ctx, slot: &Slot, alert: Alert, repeat: bool) {
    let name = slot.rule.name();
    if let Some(g) = ctx
        .groups
        .iter_mut()
        .find(|g| g.rule == name && g.status == alert.status && g.repeat == repeat)
    {
        // A second state of the same alert (it fired again after a silence, say) replaces the
        // first at the flush; no search here, which would cost O(n) per alert in a big group.
        g.alerts.push(alert);
        return;
    }
    ctx.groups.push(StoredGroup {
        rule: name.to_owned(),
        channels: slot.rule.config.notify.clone(),
        severity: slot.rule.config.severity,
        status: alert.status,
        repeat,
        due_ms: ctx.now + slot.group_wait_ms,
        alerts: vec![alert],
    });
}

/// The notification's id: the rule, status and alert ids (each names its host, subject and
/// start), plus the time for a repeat; the same on a retry, after a restart, and on another
/// aggregator that grouped the same alerts.
fn notification_id(g: &StoredGroup, now_ms: u64) -> String {
    let mut h = Sha256::new();
    h.update(g.rule.as_bytes());
    h.update([0]);
    h.update(g.status.as_str().as_bytes());
    h.update([0, u8::from(g.repeat)]);
    if g.repeat {
        h.update(now_ms.to_be_bytes());
    }
    let mut ids: Vec<&str> = g.alerts.iter().map(|a| a.id.as_str()).collect();
    ids.sort_unstable();
    for id in ids {
        h.update(id.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize()[..16])
}

/// Records a firing <-> resolved change; true when it makes the alert flapping.
fn record_change(a: &mut AlertState, cfg: &EngineConfig, now: u64) -> bool {
    let window = cfg.flap_window_s * 1000;
    a.changes.retain(|&t| now.saturating_sub(t) < window);
    a.changes.push(now);
    if !a.flapping && a.changes.len() > cfg.flap_changes as usize {
        a.flapping = true;
        return true;
    }
    false
}

/// Sends what the channels have not been told, when allowed: a firing alert notifies unless
/// silenced; a resolved one notifies when its firing was notified (a silence does not hold a
/// resolution back, so that no receiver keeps an alert open for ever). A flapping alert
/// notifies only when `force`d (it just became flapping, or just settled).
fn reconcile(a: &mut AlertState, slot: &Slot, meta: &HostMeta, ctx: &mut Ctx, force: bool) {
    if a.flapping && !force {
        return;
    }
    if a.firing {
        if is_silenced(ctx.silences, slot, meta, ctx.now) {
            return;
        }
        if a.last_sent != Some(AlertStatus::Firing) || force {
            a.last_sent = Some(AlertStatus::Firing);
            a.last_notified_ms = ctx.now;
            let alert = to_alert(a, slot, meta, AlertStatus::Firing);
            enqueue(ctx, slot, alert, false);
        }
    } else if a.last_sent == Some(AlertStatus::Firing) {
        a.last_sent = Some(AlertStatus::Resolved);
        a.last_notified_ms = ctx.now;
        let alert = to_alert(a, slot, meta, AlertStatus::Resolved);
        enqueue(ctx, slot, alert, false);
    }
}

/// The last word on an alert that is going away (host, rule or scope removed): it resolves
/// (`why` says why), notified when its firing was, flapping or not.
fn retire(mut a: AlertState, slots: &[Slot], meta: &HostMeta, ctx: &mut Ctx, why: &str) {
    let slot = &slots[a.rule_idx];
    if a.firing {
        a.firing = false;
        a.resolved_ms = Some(ctx.now);
        a.detail = why.to_owned();
        ctx.events
            .push(to_alert(&a, slot, meta, AlertStatus::Resolved));
    }
    if a.last_sent == Some(AlertStatus::Firing) {
        let alert = to_alert(&a, slot, meta, AlertStatus::Resolved);
        enqueue(ctx, slot, alert, false);
    }
}

fn fire(
    a: &mut AlertState,
    slot: &Slot,
    meta: &HostMeta,
    ctx: &mut Ctx,
    value: Option<f64>,
    detail: &dyn Fn() -> String,
) {
    let since = a.pending_since.take().unwrap_or(ctx.now);
    a.firing = true;
    a.started_ms = since;
    a.fired_ms = ctx.now;
    a.resolved_ms = None;
    a.ack = None;
    if value.is_some() {
        a.value = value;
    }
    let d = detail();
    if !d.is_empty() {
        a.detail = d;
    }
    let newly = record_change(a, ctx.cfg, ctx.now);
    ctx.events
        .push(to_alert(a, slot, meta, AlertStatus::Firing));
    reconcile(a, slot, meta, ctx, newly);
}

/// One verdict on one (rule, host, subject): the state machine.
/// Clears the alerts of rule `rule_idx` whose subject this pass did not see (`seen` is not
/// `generation`): an unmounted disk, a GPU gone, a service no longer checked.
fn clear_stale(
    alerts: &mut Vec<AlertState>,
    meta: &HostMeta,
    generation: u32,
    rule_idx: usize,
    slot: &Slot,
    ctx: &mut Ctx,
) {
    let gone: Vec<String> = alerts
        .iter()
        .filter(|a| a.rule_idx == rule_idx && a.seen != generation)
        .map(|a| a.subject.clone())
        .collect();
    let none = String::new;
    let v = Verdict {
        keep: false,
        trigger: false,
        sustain: false,
        value: None,
        detail: &none,
    };
    for s in gone {
        apply(alerts, meta, generation, rule_idx, slot, &s, &v, ctx);
    }
}

#[allow(clippy::too_many_arguments)]
fn apply(
    alerts: &mut Vec<AlertState>,
    meta: &HostMeta,
    generation: u32,
    rule_idx: usize,
    slot: &Slot,
    subject: &str,
    v: &Verdict,
    ctx: &mut Ctx,
) {
    let found = alerts
        .iter()
        .position(|a| a.rule_idx == rule_idx && a.subject == subject);
    let i = match found {
        Some(i) => i,
        None if v.trigger && !v.keep => {
            alerts.push(AlertState {
                rule: slot.rule.name().to_owned(),
                subject: subject.to_owned(),
                firing: false,
                pending_since: None,
                started_ms: 0,
                fired_ms: 0,
                resolved_ms: None,
                value: v.value,
                detail: String::new(),
                last_sent: None,
                last_notified_ms: 0,
                ack: None,
                changes: Vec::new(),
                flapping: false,
                rule_fingerprint: String::new(),
                rule_idx,
                seen: generation,
            });
            alerts.len() - 1
        }
        None => return,
    };
    let a = &mut alerts[i];
    a.seen = generation;
    if v.keep {
        return;
    }
    let holds = if a.firing { v.sustain } else { v.trigger };
    match (a.firing, holds) {
        (true, true) => {
            if v.value.is_some() {
                a.value = v.value;
            }
        }
        (true, false) => {
            a.firing = false;
            a.resolved_ms = Some(ctx.now);
            if v.value.is_some() {
                a.value = v.value;
            }
            let d = (v.detail)();
            if !d.is_empty() {
                a.detail = d;
            }
            let newly = record_change(a, ctx.cfg, ctx.now);
            ctx.events
                .push(to_alert(a, slot, meta, AlertStatus::Resolved));
            reconcile(a, slot, meta, ctx, newly);
        }
        (false, true) => {
            if a.pending_since.is_none() {
                // What the alert says if it fires from a tick, with no sample (host_down).
                a.detail = (v.detail)();
            }
            let since = *a.pending_since.get_or_insert(ctx.now);
            a.value = v.value.or(a.value);
            if ctx.now.saturating_sub(since) >= slot.for_ms {
                fire(a, slot, meta, ctx, v.value, v.detail);
            }
        }
        (false, false) => {
            a.pending_since = None;
            // Never fired and nothing to remember: forget it now.
            if a.fired_ms == 0 && a.last_sent.is_none() && a.changes.is_empty() {
                alerts.swap_remove(i);
            }
        }
    }
}

fn record_rings(rings: &mut Vec<DiskRing>, obs: &Observation, now_ms: u64) {
    for d in obs.disks() {
        if d.unresponsive {
            continue;
        }
        match rings.iter_mut().find(|r| r.mount == d.mount) {
            Some(r) => r.record(now_ms, d.percent),
            None => {
                let mut r = DiskRing::new(d.mount);
                r.record(now_ms, d.percent);
                rings.push(r);
            }
        }
    }
    if rings.len() > obs.snapshot().disks.len() {
        rings.retain(|r| obs.disks().any(|d| d.mount == r.mount));
    }
}

/// Whether a sample's `containers` lists every container of the host (a summary lists the
/// top 5 unless `Parts.containers` was asked).
fn all_containers(c: &smon_proto::Containers) -> bool {
    c.items.len() >= c.count as usize
}

/// Whether a listed container runs: its runtime says `running`, or no runtime says anything
/// (a cgroup with tasks in it).
fn container_runs(c: &smon_proto::Container) -> bool {
    c.state.as_deref().is_none_or(|s| s == "running")
}

/// A container an unnamed `container_down` has seen.
#[derive(Debug, Clone)]
struct SeenContainer {
    /// Its last name (the alert's subject): the runtime's API names a container some seconds
    /// after its cgroup appears, so the id, not the name, says it is the same one.
    name: String,
    /// When a sample last listed it.
    last_ms: u64,
}

/// Remembers the containers (not services) a sample lists, by id; on a sample that lists them
/// all, forgets those gone for longer than [`CONTAINER_FORGET_MS`].
fn record_containers(seen: &mut HashMap<String, SeenContainer>, snap: &Snapshot, now_ms: u64) {
    let Some(c) = snap.containers.as_ref() else {
        return;
    };
    for x in &c.items {
        if x.kind == "systemd" || x.name.is_empty() {
            continue;
        }
        match seen.get_mut(x.id.as_str()) {
            Some(s) => {
                s.last_ms = now_ms;
                if s.name != x.name {
                    s.name.clone_from(&x.name);
                }
            }
            None => {
                seen.insert(
                    x.id.clone(),
                    SeenContainer {
                        name: x.name.clone(),
                        last_ms: now_ms,
                    },
                );
            }
        }
    }
    if all_containers(c) {
        seen.retain(|_, s| now_ms.saturating_sub(s.last_ms) <= CONTAINER_FORGET_MS);
    }
}

fn no_detail() -> String {
    String::new()
}

/// The verdict on a subject that says nothing now.
const KEEP: Verdict<'static> = Verdict {
    keep: true,
    trigger: false,
    sustain: false,
    value: None,
    detail: &no_detail,
};

/// A GPU index as a subject, written without allocating.
struct IndexBuf {
    buf: [u8; 10],
    len: usize,
}

impl IndexBuf {
    fn new(mut n: u32) -> IndexBuf {
        let mut buf = [0u8; 10];
        let mut len = 0;
        loop {
            buf[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        buf[..len].reverse();
        IndexBuf { buf, len }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("0")
    }
}

/// Evaluates one rule on one sample, calling `out` per subject; false when the sample says
/// nothing about it (a metric the host does not report, no process list), so that the state
/// stays as it is.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    slot: &Slot,
    obs: &Observation,
    meta: &HostMeta,
    expected_version: &str,
    rings: &[DiskRing],
    seen_containers: &HashMap<String, SeenContainer>,
    now_ms: u64,
    out: &mut dyn FnMut(&str, &Verdict),
) -> bool {
    match &slot.rule.condition {
        Condition::HostDown
        | Condition::ServiceDown { .. }
        | Condition::ApplicationDegraded { .. } => false,
        Condition::ProgramNotRunning { program } | Condition::ProgramFatal { program } => {
            let fatal = matches!(slot.rule.condition, Condition::ProgramFatal { .. });
            // No supervisord read by the agent, or its last read failed (the list is then
            // old): the alerts keep their state.
            let Some(p) = obs.snapshot().programs.as_ref() else {
                return false;
            };
            if p.error.is_some() {
                return false;
            }
            let mut name = String::new();
            for prog in &p.programs {
                name.clear();
                name.push_str(&prog.group);
                name.push(':');
                name.push_str(&prog.name);
                if program.as_deref().is_some_and(|want| want != name) {
                    continue;
                }
                let bad = if fatal {
                    prog.state == "FATAL"
                } else {
                    prog.state != "RUNNING"
                };
                let detail = || {
                    let mut d = format!("program {}:{} is {}", prog.group, prog.name, prog.state);
                    if !prog.spawnerr.is_empty() {
                        d.push_str(&format!(": {}", prog.spawnerr));
                    } else if !prog.description.is_empty() {
                        d.push_str(&format!(" ({})", prog.description));
                    }
                    d
                };
                out(
                    &name,
                    &Verdict {
                        keep: false,
                        trigger: bad,
                        sustain: bad,
                        value: None,
                        detail: &detail,
                    },
                );
            }
            true
        }
        Condition::Threshold {
            metric,
            label,
            op,
            value,
            clear,
        } => {
            let verdict = |x: f64, subject: &str, out: &mut dyn FnMut(&str, &Verdict)| {
                let detail = || {
                    let what = if subject.is_empty() {
                        metric.name().to_owned()
                    } else if metric.label_kind() == Some("gpu") {
                        format!("GPU {subject} {}", metric.name())
                    } else if metric.label_kind() == Some("container") {
                        format!("container {subject} memory")
                    } else {
                        subject.to_owned()
                    };
                    format!("{what} is {x}{} ({} {value})", metric.unit(), op.as_str())
                };
                out(
                    subject,
                    &Verdict {
                        keep: false,
                        trigger: op.holds(x, *value),
                        sustain: op.holds(x, *clear),
                        value: Some(x),
                        detail: &detail,
                    },
                );
            };
            match metric.label_kind() {
                None => match obs.metric(*metric) {
                    Some(x) => {
                        verdict(x, "", out);
                        true
                    }
                    None => false,
                },
                Some("mount") => {
                    if obs.snapshot().disks.is_empty() {
                        return false;
                    }
                    for d in obs.disks() {
                        if label.as_deref().is_none_or(|l| l == d.mount) {
                            verdict(d.percent, d.mount, out);
                        }
                    }
                    true
                }
                Some("container") => {
                    let Some(c) = obs.snapshot().containers.as_ref() else {
                        return false;
                    };
                    for x in &c.items {
                        if label.as_deref().is_some_and(|l| l != x.name && l != x.id) {
                            continue;
                        }
                        if let Some(p) = container_memory_percent(x) {
                            verdict(p, &x.name, out);
                        }
                    }
                    // A container missing from a summary may only have left its top 5.
                    all_containers(c)
                }
                Some(_) => {
                    let mut any = false;
                    for g in obs.gpus() {
                        let idx = IndexBuf::new(g.index);
                        if label.as_deref().is_some_and(|l| l != idx.as_str()) {
                            continue;
                        }
                        any = true;
                        match Observation::gpu_metric(g, *metric) {
                            Some(x) => verdict(x, idx.as_str(), out),
                            None => out(idx.as_str(), &KEEP),
                        }
                    }
                    any
                }
            }
        }
        Condition::ContainerDown { name } => {
            let Some(c) = obs.snapshot().containers.as_ref() else {
                return false;
            };
            let complete = all_containers(c);
            let state_verdict =
                |x: &smon_proto::Container, subject: &str, out: &mut dyn FnMut(&str, &Verdict)| {
                    let runs = container_runs(x);
                    let detail = || match (&x.state, runs) {
                        (_, true) => format!("container {subject} ({}) runs", x.kind),
                        (Some(st), false) => format!("container {subject} ({}) is {st}", x.kind),
                        (None, false) => format!("container {subject} ({}) does not run", x.kind),
                    };
                    out(
                        subject,
                        &Verdict {
                            keep: false,
                            trigger: !runs,
                            sustain: !runs,
                            value: None,
                            detail: &detail,
                        },
                    );
                };
            match name {
                Some(want) => {
                    let found = c
                        .items
                        .iter()
                        .filter(|x| x.name == *want || x.id == *want)
                        // Of several (a container being replaced), a running one counts.
                        .max_by_key(|x| container_runs(x));
                    match found {
                        Some(x) => state_verdict(x, want, out),
                        None if complete => {
                            let detail = || format!("no container {want} runs on the host");
                            out(
                                want,
                                &Verdict {
                                    keep: false,
                                    trigger: true,
                                    sustain: true,
                                    value: None,
                                    detail: &detail,
                                },
                            );
                        }
                        None => {}
                    }
                    complete
                }
                None => {
                    for x in &c.items {
                        if x.kind != "systemd" && !x.name.is_empty() {
                            state_verdict(x, &x.name, out);
                        }
                    }
                    if !complete {
                        return false;
                    }
                    for s in seen_containers.values() {
                        let n = &s.name;
                        // Listed in this sample; or another container of its name is (one
                        // recreated under the same name by `docker compose up`).
                        if s.last_ms >= now_ms || c.items.iter().any(|x| x.name == *n) {
                            continue;
                        }
                        let detail = || format!("container {n} is gone from the host");
                        out(
                            n,
                            &Verdict {
                                keep: false,
                                trigger: true,
                                sustain: true,
                                value: None,
                                detail: &detail,
                            },
                        );
                    }
                    true
                }
            }
        }
        Condition::ProcessMissing { process } => match obs.process_running(process) {
            Some(running) => {
                let detail = || format!("no process '{process}' runs");
                out(
                    process,
                    &Verdict {
                        keep: false,
                        trigger: !running,
                        sustain: !running,
                        value: None,
                        detail: &detail,
                    },
                );
                true
            }
            None => false,
        },
        Condition::Unresponsive { mount } => {
            if obs.snapshot().disks.is_empty() {
                return false;
            }
            for d in obs.disks() {
                if mount.as_deref().is_some_and(|m| m != d.mount) {
                    continue;
                }
                let detail = || format!("{} does not answer (statvfs timed out)", d.mount);
                out(
                    d.mount,
                    &Verdict {
                        keep: false,
                        trigger: d.unresponsive,
                        sustain: d.unresponsive,
                        value: None,
                        detail: &detail,
                    },
                );
            }
            true
        }
        Condition::VersionMismatch => {
            let v = meta.agent_version.as_str();
            if v.is_empty() || expected_version.is_empty() {
                return false;
            }
            let differs = v != expected_version;
            let detail = || format!("agent {v}, expected {expected_version}");
            out(
                "",
                &Verdict {
                    keep: false,
                    trigger: differs,
                    sustain: differs,
                    value: None,
                    detail: &detail,
                },
            );
            true
        }
        Condition::DiskFullWithin { mount, within_h } => {
            let mut any = false;
            for r in rings {
                if mount.as_deref().is_some_and(|m| m != r.mount) {
                    continue;
                }
                let Some(p) = r.predict(now_ms) else {
                    continue;
                };
                any = true;
                let hours = p.hours_to_full.map(|h| (h * 10.0).round() / 10.0);
                let soon = hours.is_some_and(|h| h <= *within_h);
                let detail = || match hours {
                    Some(h) => format!(
                        "{} is {:.1} % full, growing {:.2} %/h: full in about {h} h",
                        r.mount, p.now_percent, p.percent_per_h
                    ),
                    None => format!("{} no longer fills up", r.mount),
                };
                out(
                    &r.mount,
                    &Verdict {
                        keep: false,
                        trigger: soon,
                        sustain: soon,
                        value: hours,
                        detail: &detail,
                    },
                );
            }
            any
        }
        Condition::GpuIdleWithMemory { .. } => {
            let with_procs = obs.has_gpu_processes();
            let mut any = false;
            for g in obs.gpus() {
                any = true;
                let idx = IndexBuf::new(g.index);
                // MIG GPUs report no utilisation: they cannot be told idle.
                let Some(util) = g.utilization_percent else {
                    out(idx.as_str(), &KEEP);
                    continue;
                };
                let mem = gpu_memory_percent(g).unwrap_or(0.0);
                let held = if with_procs {
                    g.processes.iter().any(|p| p.memory_used_bytes != Some(0))
                } else {
                    mem >= 5.0
                };
                let idle = util <= 1 && held;
                let detail = || gpu_holders(g, with_procs);
                out(
                    idx.as_str(),
                    &Verdict {
                        keep: false,
                        trigger: idle,
                        sustain: idle,
                        value: Some(mem),
                        detail: &detail,
                    },
                );
            }
            any
        }
    }
}

/// A container's memory in use against its limit, 0-100 rounded to 0.1; `None` without a
/// limit.
fn container_memory_percent(c: &smon_proto::Container) -> Option<f64> {
    let limit = c.memory_limit_bytes.filter(|&l| l > 0)?;
    let p = c.memory_bytes as f64 * 100.0 / limit as f64;
    Some((p * 10.0).round() / 10.0)
}

/// `GPU 0 (NVIDIA A100): 12.0 GiB held by alice (PID 4242 python, 11.5 GiB), ... while idle`.
fn gpu_holders(g: &smon_proto::Gpu, with_procs: bool) -> String {
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let used = g
        .memory_used_bytes
        .map_or(String::new(), |b| format!(" {:.1} GiB", gib(b)));
    let who = if with_procs {
        let mut parts: Vec<String> = g
            .processes
            .iter()
            .filter(|p| p.memory_used_bytes != Some(0))
            .map(|p| {
                let user = if p.user.is_empty() { "?" } else { &p.user };
                let mem = p
                    .memory_used_bytes
                    .map_or(String::new(), |b| format!(", {:.1} GiB", gib(b)));
                let name = if p.name.is_empty() {
                    String::new()
                } else {
                    format!(" {}", p.name)
                };
                format!("{user} (PID {}{name}{mem})", p.pid)
            })
            .collect();
        parts.sort();
        parts.join(", ")
    } else {
        "unknown users (the sample carries no GPU process list)".to_owned()
    };
    format!("GPU {} ({}) idle with{used} held by {who}", g.index, g.name)
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
