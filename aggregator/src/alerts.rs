//! The alerts consumer: a consumer of the event [`feed`](crate::feed) that drives the rule
//! engine (`smon-alerts`) and hands its notifications to the channels' outbox
//! (`smon-notify`), and the [`AlertsService`] the alert routes (`web/PROTOCOL.md`, "Alerts")
//! use.
//!
//! - Samples ([`Body::Sample`]) and whole process lists ([`Body::Processes`] when the rules
//!   asked for them, see [`Alerts::needs_processes`]) go to [`Engine::observe`], state
//!   changes ([`Body::State`]) to [`Engine::host_status`], reachability checks
//!   ([`Body::Reach`], `service_down` rules) to [`Engine::observe_reach`], declared
//!   applications' decisions ([`Body::Application`], `application_degraded` rules) to
//!   [`Engine::observe_application`], fleet changes and host facts to
//!   [`Engine::upsert_host`] / [`Engine::remove_host`].
//! - Once a second [`Engine::tick`]: its notifications go to [`Notifier::enqueue`] (the
//!   persistent outbox, delivered with retries by the notifier's tasks); its firings and
//!   resolutions ([`Engine::drain_events`]) go to the `alert_events` table and back on the
//!   feed as [`Body::Alert`], and the per-host count of firing alerts to the overview's rows.
//! - The engine's state (alerts, acknowledgements, notifications being grouped) is saved to
//!   `alert_state` every few seconds, right after each tick that sent something, and at stop;
//!   it is imported at start, so a restart does not notify again.
//!
//! The engine sits behind a mutex shared by the consumer and the routes; SQLite is touched
//! only off the async threads (`spawn_blocking`, or the routes' blocking tasks). Lock order:
//! the rule and silence sets, then the engine, then the store or the database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use rusqlite::{Connection, OptionalExtension, params};
use smon_alerts::{
    ActiveAlert, Engine, EngineState, HostMeta, RuleConfig, Silence, SilenceConfig, WindowConfig,
    check_notify, compile_rule, compile_rules, compile_silences,
};
use smon_api::alerts::{
    AckInfo, ActiveAlertView, Alert, AlertEvent, AlertHistoryAnswer, AlertStatus, AlertsAnswer,
    ChannelEntry, NewSilence, RateLimitView, RuleEntry, RuleSpec, SilenceEntry, Source, WindowSpec,
};
use smon_notify::config::ChannelConfig;
use smon_notify::{Channel, Notifier, TestError};
use smon_web::alerting::{AlertsError, AlertsService, HistoryQuery};
use smon_web::hub::now_ms;
use smon_web::store::ClusterStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AlertSettings;
use crate::feed::{Body, Feed, Kinds, RegistryChange, Subscription};

/// The feed kinds the consumer wants: samples, host facts and failures, state changes, fleet
/// changes, the per-minute process lists and the reachability checks.
pub const KINDS: Kinds = Kinds::POLL
    .with(Kinds::STATE)
    .with(Kinds::REGISTRY)
    .with(Kinds::PROCESSES)
    .with(Kinds::REACH)
    .with(Kinds::APPLICATION);

/// Queue length of the consumer on the feed.
pub const QUEUE: usize = 65_536;

/// Most events handled per wake-up.
const BATCH: usize = 1024;

/// How often the engine's state is saved (and at stop, and right after a tick that notified,
/// so that a restart never notifies twice; between saves a crash loses only the timers of
/// alerts that notified nothing).
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// How often old history events are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why alerting could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("alerts: the database cannot be opened")]
    Db(#[source] smon_history::Error),
    /// A statement on the alert tables failed.
    #[error("alerts: database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The notifier (the outbox) could not start.
    #[error("alerts: the notification outbox cannot start")]
    Notify(#[source] smon_notify::Error),
    /// The start-up task failed.
    #[error("alerts: the start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A rule made in the UI.
#[derive(Debug, Clone)]
struct UiRule {
    rule: RuleConfig,
    by: String,
    ms: u64,
}

/// A channel made in the UI: what was sent (secrets included: it is stored in the database,
/// never shown) and the checked channel.
#[derive(Debug, Clone)]
struct UiChannel {
    raw: serde_json::Map<String, serde_json::Value>,
    channel: Channel,
    by: String,
    ms: u64,
}

/// The rules, silences and channels: the config's (read-only) and the UI's (stored).
#[derive(Debug, Default)]
struct Sets {
    config_rules: Vec<RuleConfig>,
    ui_rules: Vec<UiRule>,
    config_silences: Vec<SilenceConfig>,
    ui_silences: Vec<SilenceConfig>,
    config_channels: Vec<Channel>,
    ui_channels: Vec<UiChannel>,
}

impl Sets {
    fn channel_names(&self) -> Vec<String> {
        self.config_channels
            .iter()
            .map(|c| c.name.clone())
            .chain(self.ui_channels.iter().map(|u| u.channel.name.clone()))
            .collect()
    }

    fn all_channels(&self) -> Vec<Channel> {
        self.config_channels
            .iter()
            .cloned()
            .chain(self.ui_channels.iter().map(|u| u.channel.clone()))
            .collect()
    }

    /// The rules (config and UI) that notify channel `name`.
    fn rules_notifying(&self, name: &str) -> Vec<String> {
        self.config_rules
            .iter()
            .chain(self.ui_rules.iter().map(|u| &u.rule))
            .filter(|r| r.notify.iter().any(|n| n == name))
            .map(|r| r.name.clone())
            .collect()
    }

    fn all_rules(&self) -> Vec<RuleConfig> {
        self.config_rules
            .iter()
            .cloned()
            .chain(self.ui_rules.iter().map(|u| u.rule.clone()))
            .collect()
    }
}

/// Where the notifier's delivery tasks run, so that a new notifier (channels changed in the
/// UI) can replace the old one.
struct Delivery {
    tracker: TaskTracker,
    stop: CancellationToken,
    /// The running notifier's tasks (a child of `stop`).
    current: CancellationToken,
}

struct Inner {
    engine: Mutex<Engine>,
    notifier: RwLock<Notifier>,
    delivery: Mutex<Option<Delivery>>,
    db: Mutex<Connection>,
    path: PathBuf,
    sets: Mutex<Sets>,
    store: Arc<Mutex<ClusterStore>>,
    retention_ms: u64,
    silence_seq: AtomicU64,
    /// The (rule, host, subject) of alerts whose flapping has been written to the history:
    /// their further flips are not, until they settle.
    flapping: Mutex<std::collections::HashSet<(String, String, String)>>,
}

/// Alerting: the engine, the notifier and the alert tables. Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves nothing half-done worth refusing to go on for.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn internal(e: impl std::fmt::Display) -> AlertsError {
    AlertsError::Internal(format!("alerts database: {e}"))
}

fn view_of(a: ActiveAlert, now_ms: u64) -> ActiveAlertView {
    let since = if a.pending {
        a.alert.started_ms
    } else {
        a.alert.fired_ms
    };
    ActiveAlertView {
        duration_s: now_ms.saturating_sub(since) / 1000,
        pending: a.pending,
        silenced: a.silenced,
        ack: a.ack.map(|k| AckInfo {
            by: k.by,
            at_ms: k.at_ms,
        }),
        alert: a.alert,
    }
}

fn silence_entry(c: &SilenceConfig, source: Source, now_ms: u64) -> SilenceEntry {
    let active = Silence::new(c.clone(), "silence").is_ok_and(|s| s.active(now_ms));
    SilenceEntry {
        id: c.id.clone(),
        source,
        rule: c.rule.clone(),
        host: c.host.clone(),
        cluster: c.cluster.clone(),
        tag: c.tag.clone(),
        starts_ms: c.starts_ms,
        ends_ms: c.ends_ms,
        window: c.window.as_ref().map(|w| WindowSpec {
            days: w.days.clone(),
            start: w.start.clone(),
            end: w.end.clone(),
            timezone: Some(w.timezone.clone()),
        }),
        created_by: c.created_by.clone(),
        comment: c.comment.clone(),
        active,
    }
}

/// A silence over for good (an end in the past, no recurring window).
fn expired(c: &SilenceConfig, now_ms: u64) -> bool {
    c.window.is_none() && c.ends_ms.is_some_and(|e| e <= now_ms)
}

fn joined(errs: &[smon_runtime::config::FieldError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the database holds for alerting at start.
struct Saved {
    rules: Vec<UiRule>,
    /// UI channels as stored: name, body, who, when (checked by [`Alerts::open`]).
    channels: Vec<(String, String, String, u64)>,
    silences: Vec<SilenceConfig>,
    state: Option<EngineState>,
}

/// The rows of a table of things made in the UI (`alert_rules`, `alert_channels`): name,
/// body, who, when.
fn named_rows(
    conn: &Connection,
    table: &str,
) -> rusqlite::Result<Vec<(String, String, String, u64)>> {
    let mut st = conn.prepare(&format!(
        "SELECT name, body, updated_by, updated_ms FROM {table} ORDER BY name"
    ))?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        ))
    })?;
    rows.collect()
}

/// Checks a channel sent by an admin: as `alerts.channels[]` items are checked, except that
/// what would let a browser read the server's files (`*_file` keys) or run programs on it
/// (`command`) is refused: those belong in `config_app.json`.
fn ui_channel(raw: &serde_json::Map<String, serde_json::Value>) -> Result<Channel, String> {
    if let Some(k) = raw.keys().find(|k| k.ends_with("_file")) {
        return Err(format!(
            "channel.{k}: files are read only for channels of config_app.json; give the value itself"
        ));
    }
    if raw.get("type").and_then(|t| t.as_str()) == Some("command") {
        return Err(
            "channel.type: 'command' runs a program on the server: it can be set only in config_app.json"
                .into(),
        );
    }
    let mut errs = Vec::new();
    let mut files = Vec::new();
    let mut out = smon_notify::config::check(
        &[ChannelConfig(raw.clone())],
        "channel",
        Path::new("/"),
        &mut files,
        &mut errs,
    );
    if errs.is_empty()
        && let Some(c) = out.pop()
    {
        Ok(c)
    } else {
        Err(joined(&errs).replace("channel[0]", "channel"))
    }
}

fn load(conn: &Connection) -> rusqlite::Result<Saved> {
    let mut rules = Vec::new();
    for (name, body, by, ms) in named_rows(conn, "alert_rules")? {
        match serde_json::from_str::<RuleConfig>(&body) {
            Ok(rule) => rules.push(UiRule { rule, by, ms }),
            Err(e) => {
                tracing::warn!(rule = %name, error = %e, "A stored alert rule cannot be read; it is ignored.")
            }
        }
    }
    let mut silences = Vec::new();
    let mut st = conn.prepare("SELECT id, body FROM alert_silences")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (id, body) = row?;
        match serde_json::from_str::<SilenceConfig>(&body) {
            Ok(s) => silences.push(s),
            Err(e) => {
                tracing::warn!(silence = %id, error = %e, "A stored silence cannot be read; it is ignored.")
            }
        }
    }
    let state: Option<String> = conn
        .query_row("SELECT body FROM alert_state WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    let state = state.and_then(|s| match serde_json::from_str::<EngineState>(&s) {
        Ok(st) => Some(st),
        Err(e) => {
            tracing::warn!(error = %e, "The saved alert state cannot be read; alerts start afresh.");
            None
        }
    });
    Ok(Saved {
        rules,
        channels: named_rows(conn, "alert_channels")?,
        silences,
        state,
    })
}

impl Alerts {
    /// Opens alerting on the database at `path` (`storage.dir/smon.sqlite3`): the outbox and
    /// the channels of `settings`, the UI's rules and silences, and the engine with its saved
    /// state. Blocks (call it off the async threads). Rules or silences stored before that no
    /// longer pass (a rule now named in the config, a channel removed) are skipped with a
    /// warning.
    pub fn open(
        path: &Path,
        settings: &AlertSettings,
        store: Arc<Mutex<ClusterStore>>,
    ) -> Result<Alerts, StartError> {
        let conn = smon_history::db::open_writer(path).map_err(StartError::Db)?;
        let saved = load(&conn).map_err(|source| StartError::Sqlite {
            path: path.to_owned(),
            source,
        })?;
        let now = now_ms();
        let mut sets = Sets {
            config_rules: settings.rules.clone(),
            config_silences: settings.silences.clone(),
            config_channels: settings.channels.clone(),
            ..Sets::default()
        };
        for (name, body, by, ms) in saved.channels {
            let checked = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&body)
                .map_err(|e| e.to_string())
                .and_then(|raw| {
                    if sets.channel_names().contains(&name) {
                        return Err("a channel of the config has its name now".into());
                    }
                    ui_channel(&raw).map(|channel| (raw, channel))
                });
            match checked {
                Ok((raw, channel)) => sets.ui_channels.push(UiChannel {
                    raw,
                    channel,
                    by,
                    ms,
                }),
                Err(why) => {
                    tracing::warn!(channel = %name, problem = %why, "A channel made in the UI cannot be used; it is ignored.")
                }
            }
        }
        let notifier = Notifier::open(path, sets.all_channels()).map_err(StartError::Notify)?;
        let channel_names = sets.channel_names();
        let names: Vec<&str> = channel_names.iter().map(String::as_str).collect();
        for u in saved.rules {
            let clash = sets
                .config_rules
                .iter()
                .chain(sets.ui_rules.iter().map(|u| &u.rule))
                .any(|r| r.name == u.rule.name);
            let problems: Vec<String> = compile_rule(&u.rule, "rule")
                .err()
                .into_iter()
                .flatten()
                .chain(check_notify(std::slice::from_ref(&u.rule), &names, "rule"))
                .map(|e| e.to_string())
                .collect();
            if clash {
                tracing::warn!(rule = %u.rule.name, "A rule made in the UI has the name of a rule of the config now; the UI's is ignored.");
            } else if !problems.is_empty() {
                tracing::warn!(rule = %u.rule.name, problems = %problems.join("; "), "A rule made in the UI no longer passes its checks; it is ignored.");
            } else {
                sets.ui_rules.push(u);
            }
        }
        for s in saved.silences {
            if expired(&s, now) || sets.config_silences.iter().any(|c| c.id == s.id) {
                continue;
            }
            sets.ui_silences.push(s);
        }
        let mut engine = Engine::new(settings.engine.clone());
        // Checked one by one above: every rule compiles.
        let rules = compile_rules(&sets.all_rules(), "alerts.rules").unwrap_or_default();
        engine.set_rules(rules, now);
        engine.set_silences(compile_all_silences(&sets));
        if let Some(state) = saved.state {
            engine.import(state, now);
        }
        Ok(Alerts {
            inner: Arc::new(Inner {
                engine: Mutex::new(engine),
                notifier: RwLock::new(notifier),
                delivery: Mutex::new(None),
                db: Mutex::new(conn),
                path: path.to_owned(),
                sets: Mutex::new(sets),
                store,
                retention_ms: u64::try_from(settings.history_retention.as_millis())
                    .unwrap_or(u64::MAX),
                silence_seq: AtomicU64::new(0),
                flapping: Mutex::new(std::collections::HashSet::new()),
            }),
        })
    }

    /// The notifier now (a new one replaces it when channels are changed in the UI).
    pub fn notifier(&self) -> Notifier {
        self.inner
            .notifier
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts the notifier's delivery tasks on `tracker`, until `stop`; a notifier that
    /// replaces it later starts there too.
    pub fn start_delivery(&self, tracker: &TaskTracker, stop: CancellationToken) {
        let current = stop.child_token();
        self.notifier().start(tracker, current.clone());
        *lock(&self.inner.delivery) = Some(Delivery {
            tracker: tracker.clone(),
            stop,
            current,
        });
    }

    /// Replaces the notifier with one for the channels of `sets` (blocking: it opens the
    /// outbox). What is queued is keyed by channel name and carries over, and so do the
    /// channels' figures (a rate limit's window starts afresh); an attempt in flight
    /// on the old one is abandoned and made again (receivers may see it twice, with the same
    /// notification id).
    fn renew_notifier(&self, sets: &Sets) -> Result<(), AlertsError> {
        let n = Notifier::open(&self.inner.path, sets.all_channels()).map_err(internal)?;
        n.carry_stats_from(&self.notifier());
        if let Some(d) = lock(&self.inner.delivery).as_mut() {
            d.current.cancel();
            d.current = d.stop.child_token();
            n.start(&d.tracker, d.current.clone());
        }
        *self
            .inner
            .notifier
            .write()
            .unwrap_or_else(|p| p.into_inner()) = n;
        Ok(())
    }

    /// Whether the rules need every container of host `id` (`container_down`,
    /// `container_memory_percent`), not just a summary's top 5.
    pub fn needs_containers(&self, id: &str) -> bool {
        lock(&self.inner.engine).needs_containers(id)
    }

    /// Whether the rules need host `id`'s whole process list (`process_missing`).
    pub fn needs_processes(&self, id: &str) -> bool {
        lock(&self.inner.engine).needs_processes(id)
    }

    /// Tells the engine the whole fleet as the store holds it now (after the registry's first
    /// `apply`): hosts of the saved state no longer in the fleet are dropped. Sets the badges.
    pub fn sync_fleet(&self) {
        let metas = {
            let store = lock(&self.inner.store);
            let mut metas = Vec::new();
            store.for_each_host(|row, info, _| {
                metas.push(HostMeta::new(&row.id, &row.cluster, &row.tags, info));
            });
            metas
        };
        let ids: Vec<String> = metas.iter().map(|m| m.id.clone()).collect();
        let counts: Vec<(String, u32)> = {
            let mut e = lock(&self.inner.engine);
            e.set_hosts(metas, now_ms());
            ids.into_iter()
                .map(|id| {
                    let n = u32::try_from(e.firing_on(&id)).unwrap_or(u32::MAX);
                    (id, n)
                })
                .collect()
        };
        let mut store = lock(&self.inner.store);
        for (id, n) in counts {
            store.set_alerts(&id, n);
        }
    }

    /// Replaces the config's rules and silences (SIGHUP; already checked by the config's
    /// load). A UI rule that now clashes with a config rule's name is left out (with a
    /// warning) while the clash lasts.
    pub fn reload(&self, rules: Vec<RuleConfig>, silences: Vec<SilenceConfig>) {
        let mut sets = lock(&self.inner.sets);
        sets.config_rules = rules;
        sets.config_silences = silences;
        self.apply(&sets, now_ms());
    }

    /// Gives the engine the rules and silences of `sets`.
    fn apply(&self, sets: &Sets, now: u64) {
        let config_names: Vec<&str> = sets.config_rules.iter().map(|r| r.name.as_str()).collect();
        let all: Vec<RuleConfig> = sets
            .config_rules
            .iter()
            .cloned()
            .chain(
                sets.ui_rules
                    .iter()
                    .filter(|u| {
                        let clash = config_names.contains(&u.rule.name.as_str());
                        if clash {
                            tracing::warn!(rule = %u.rule.name, "A rule made in the UI has the name of a rule of the config; the UI's is ignored.");
                        }
                        !clash
                    })
                    .map(|u| u.rule.clone()),
            )
            .collect();
        let rules = match compile_rules(&all, "alerts.rules") {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(problems = %joined(&e), "The alert rules do not compile together; the previous ones stay.");
                return;
            }
        };
        let silences = compile_all_silences(sets);
        let mut e = lock(&self.inner.engine);
        e.set_rules(rules, now);
        e.set_silences(silences);
    }

    /// Runs `f` on the alert tables (blocking).
    fn db<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, AlertsError> {
        f(&lock(&self.inner.db)).map_err(internal)
    }

    /// Consumes `sub` until `stop`: see the module's documentation. At stop the state is
    /// saved.
    /// `feed` is where the alert events are published: held by this task only, so that the
    /// feed closes once the server's tasks have stopped, whoever still holds the alerting.
    pub async fn run(self, mut sub: Subscription, feed: Feed, stop: CancellationToken) {
        let mut buf = Vec::with_capacity(BATCH);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_save = tokio::time::Instant::now();
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            let mut sent = false;
            let mut ticked = false;
            tokio::select! {
                _ = stop.cancelled() => {
                    self.flush_events(&feed).await;
                    self.save().await;
                    return;
                }
                n = sub.recv_many(&mut buf, BATCH) => {
                    if n == 0 {
                        self.save().await;
                        return;
                    }
                    self.handle(&mut buf);
                }
                _ = tick.tick() => {
                    ticked = true;
                    let dispatches = lock(&self.inner.engine).tick(now_ms());
                    for d in dispatches {
                        if d.channels.is_empty() {
                            continue;
                        }
                        sent = true;
                        if let Err(e) = self.notifier().enqueue(&d.notification, &d.channels).await {
                            tracing::error!(rule = %d.notification.rule, error = %e, "A notification could not be queued.");
                        }
                    }
                }
            }
            // Once a second: the history's writes and the badges follow the ticks (one
            // transaction a second), not each batch of samples.
            if !ticked {
                continue;
            }
            self.flush_events(&feed).await;
            if sent || last_save.elapsed() >= SAVE_EVERY {
                self.save().await;
                last_save = tokio::time::Instant::now();
            }
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(tokio::time::Instant::now());
                let me = self.clone();
                let cutoff = now_ms().saturating_sub(self.inner.retention_ms);
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(e) = me.db(|c| {
                        c.execute("DELETE FROM alert_events WHERE at_ms < ?1", [sql(cutoff)])
                    }) {
                        tracing::warn!(error = %e, "Old alert history cannot be deleted.");
                    }
                })
                .await;
            }
        }
    }

    /// Applies a batch of feed events to the engine.
    fn handle(&self, buf: &mut Vec<Arc<crate::feed::Event>>) {
        // Facts the engine's host metadata needs, read from the store before the engine's
        // lock is taken (lock order).
        let mut metas: HashMap<String, HostMeta> = HashMap::new();
        {
            let store = lock(&self.inner.store);
            for ev in buf.iter() {
                let (id, tags) = match &ev.body {
                    Body::Connected { host, .. }
                    | Body::Registry(RegistryChange::Added { host, .. }) => (host, None),
                    Body::Registry(RegistryChange::Retagged { host, tags }) => (host, Some(tags)),
                    _ => continue,
                };
                let Some(row) = store.row(id) else { continue };
                let info = store.info_and_latest(id).and_then(|(i, _)| i);
                let tags = tags.unwrap_or(&row.tags);
                metas.insert(
                    id.clone(),
                    HostMeta::new(id, &row.cluster, tags, info.as_ref()),
                );
            }
        }
        let mut e = lock(&self.inner.engine);
        for ev in buf.drain(..) {
            match &ev.body {
                Body::Sample { host, snapshot } => e.observe(host, snapshot, ev.at_ms),
                Body::Processes { host, snapshot }
                    if snapshot.parts.is_some_and(|p| p.processes) =>
                {
                    e.observe(host, snapshot, ev.at_ms);
                }
                Body::State { host, to, .. } => e.host_status(host, *to, ev.at_ms),
                Body::Reach { host, result, .. } => e.observe_reach(host, result, ev.at_ms),
                Body::Application { name, problem, .. } => {
                    e.observe_application(name, problem.as_deref(), ev.at_ms);
                }
                Body::Connected { host, info } => {
                    if let Some(mut m) = metas.get(host).cloned() {
                        m.agent_version.clone_from(&info.agent_version);
                        e.upsert_host(m, ev.at_ms);
                    }
                }
                Body::Registry(RegistryChange::Added { host, .. })
                | Body::Registry(RegistryChange::Retagged { host, .. }) => {
                    if let Some(m) = metas.get(host) {
                        e.upsert_host(m.clone(), ev.at_ms);
                    }
                }
                Body::Registry(RegistryChange::Removed { host }) => e.remove_host(host, ev.at_ms),
                _ => {}
            }
        }
    }

    /// Writes the engine's new firings and resolutions to the history, publishes them on
    /// the feed and updates the badges of their hosts.
    async fn flush_events(&self, feed: &Feed) {
        let (events, counts) = {
            let mut e = lock(&self.inner.engine);
            let mut events = e.drain_events();
            if events.is_empty() {
                return;
            }
            let mut counts: HashMap<String, u32> = HashMap::new();
            for a in &events {
                counts.entry(a.host.host.clone()).or_insert_with(|| {
                    u32::try_from(e.firing_on(&a.host.host)).unwrap_or(u32::MAX)
                });
            }
            // A flapping alert's flips would fill the history (a load average around its
            // threshold flips every few samples): the flip that made it flapping is kept,
            // then nothing until it settles. The badges above count them all.
            let mut flapping = lock(&self.inner.flapping);
            events.retain(|a| {
                let key = (a.rule.clone(), a.host.host.clone(), a.host.subject.clone());
                if a.flapping {
                    flapping.insert(key)
                } else {
                    flapping.remove(&key);
                    true
                }
            });
            drop(flapping);
            (events, counts)
        };
        {
            let mut store = lock(&self.inner.store);
            for (id, n) in &counts {
                store.set_alerts(id, *n);
            }
        }
        for a in &events {
            let at = a.resolved_ms.unwrap_or(a.fired_ms);
            feed.publish(
                at,
                Body::Alert {
                    alert: Arc::new(a.clone()),
                },
            );
        }
        let me = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            me.db(|c| {
                let tx = c.unchecked_transaction()?;
                {
                    let mut st = tx.prepare_cached(
                        "INSERT INTO alert_events (at_ms, rule, host, status, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?;
                    for a in &events {
                        let body = serde_json::to_string(a).unwrap_or_default();
                        st.execute(params![
                            sql(a.resolved_ms.unwrap_or(a.fired_ms)),
                            a.rule,
                            a.host.host,
                            a.status.as_str(),
                            body
                        ])?;
                    }
                }
                tx.commit()
            })
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "Alert history events could not be written."),
            Err(e) => tracing::error!(error = %e, "The alert history task failed."),
        }
    }

    /// Saves the engine's state.
    async fn save(&self) {
        let state = lock(&self.inner.engine).export();
        let me = self.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let body = serde_json::to_string(&state).unwrap_or_default();
            me.db(|c| {
                c.execute(
                    "INSERT INTO alert_state (id, body, saved_ms) VALUES (1, ?1, ?2) \
                     ON CONFLICT (id) DO UPDATE SET body = excluded.body, saved_ms = excluded.saved_ms",
                    params![body, sql(now_ms())],
                )
            })
        })
        .await;
        match saved {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "The alert state could not be saved."),
            Err(e) => tracing::error!(error = %e, "The alert state task failed."),
        }
    }

    fn rule_problems(sets: &Sets, rule: &RuleConfig) -> Result<(), AlertsError> {
        let channel_names = sets.channel_names();
        let names: Vec<&str> = channel_names.iter().map(String::as_str).collect();
        let mut errs: Vec<smon_runtime::config::FieldError> =
            compile_rule(rule, "rule").err().unwrap_or_default();
        errs.extend(check_notify(std::slice::from_ref(rule), &names, "rule"));
        if errs.is_empty() {
            Ok(())
        } else {
            Err(AlertsError::Invalid(joined(&errs)))
        }
    }

    /// The entry of channel `name` (after a change).
    fn channel_entry(&self, name: &str) -> Result<ChannelEntry, AlertsError> {
        self.channels()
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| AlertsError::Internal(format!("channel '{name}' vanished")))
    }

    fn entry(u: &UiRule, firing: &HashMap<String, u32>) -> RuleEntry {
        RuleEntry {
            source: Source::Ui,
            rule: u.rule.clone(),
            updated_by: u.by.clone(),
            updated_ms: Some(u.ms),
            firing: firing.get(&u.rule.name).copied().unwrap_or(0),
        }
    }

    /// Alerts firing now, per rule: one pass over the engine's alerts for a whole list.
    fn firing_counts(&self, now: u64) -> HashMap<String, u32> {
        let mut by: HashMap<String, u32> = HashMap::new();
        for a in lock(&self.inner.engine).alerts(now) {
            if !a.pending {
                *by.entry(a.alert.rule).or_default() += 1;
            }
        }
        by
    }
}

fn compile_all_silences(sets: &Sets) -> Vec<Silence> {
    let all: Vec<SilenceConfig> = sets
        .config_silences
        .iter()
        .chain(&sets.ui_silences)
        .cloned()
        .collect();
    match compile_silences(&all, "alerts.silences") {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(problems = %joined(&e), "Some silences do not compile; only the valid ones apply.");
            all.into_iter()
                .filter_map(|c| Silence::new(c, "silence").ok())
                .collect()
        }
    }
}

#[async_trait::async_trait]
impl AlertsService for Alerts {
    fn alerts(&self, now_ms: u64) -> AlertsAnswer {
        let alerts = lock(&self.inner.engine)
            .alerts(now_ms)
            .into_iter()
            .map(|a| view_of(a, now_ms))
            .collect();
        AlertsAnswer {
            server_time_ms: now_ms,
            alerts,
        }
    }

    fn history(&self, q: &HistoryQuery) -> Result<AlertHistoryAnswer, AlertsError> {
        let limit = i64::from(q.limit) + 1;
        let mut events = self.db(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, at_ms, body FROM alert_events \
                 WHERE at_ms >= ?1 AND at_ms <= ?2 \
                 AND (?3 IS NULL OR rule = ?3) AND (?4 IS NULL OR host = ?4) \
                 ORDER BY at_ms DESC, seq DESC LIMIT ?5",
            )?;
            let rows = st.query_map(
                params![sql(q.from_ms), sql(q.to_ms), q.rule, q.host, limit],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, at, body) = row?;
                if let Ok(alert) = serde_json::from_str::<Alert>(&body) {
                    out.push(AlertEvent {
                        seq,
                        at_ms: u64::try_from(at).unwrap_or(0),
                        alert,
                    });
                }
            }
            Ok(out)
        })?;
        let truncated = events.len() > q.limit as usize;
        events.truncate(q.limit as usize);
        Ok(AlertHistoryAnswer {
            from: q.from_ms,
            to: q.to_ms,
            events,
            truncated,
        })
    }

    fn ack(&self, id: &str, by: &str, now_ms: u64) -> Result<ActiveAlertView, AlertsError> {
        let a = lock(&self.inner.engine)
            .acknowledge(id, by, now_ms)
            .map_err(|e| AlertsError::NotFound(e.to_string()))?;
        Ok(view_of(a, now_ms))
    }

    fn rules(&self) -> Vec<RuleEntry> {
        let firing = self.firing_counts(now_ms());
        let sets = lock(&self.inner.sets);
        let mut out: Vec<RuleEntry> = sets
            .config_rules
            .iter()
            .map(|r| RuleEntry {
                source: Source::Config,
                rule: r.clone(),
                updated_by: String::new(),
                updated_ms: None,
                firing: firing.get(&r.name).copied().unwrap_or(0),
            })
            .collect();
        let mut ui: Vec<RuleEntry> = sets
            .ui_rules
            .iter()
            .map(|u| Self::entry(u, &firing))
            .collect();
        ui.sort_by(|a, b| a.rule.name.cmp(&b.rule.name));
        out.extend(ui);
        out
    }

    fn add_rule(&self, rule: RuleSpec, by: &str, now_ms: u64) -> Result<RuleEntry, AlertsError> {
        let mut sets = lock(&self.inner.sets);
        if let Some(src) = source_of(&sets, &rule.name) {
            return Err(AlertsError::Conflict(format!(
                "a rule named '{}' exists already ({src})",
                rule.name
            )));
        }
        Self::rule_problems(&sets, &rule)?;
        let body = serde_json::to_string(&rule).map_err(internal)?;
        self.db(|c| {
            c.execute(
                "INSERT INTO alert_rules (name, body, updated_by, updated_ms) VALUES (?1, ?2, ?3, ?4)",
                params![rule.name, body, by, sql(now_ms)],
            )
        })?;
        let u = UiRule {
            rule,
            by: by.to_owned(),
            ms: now_ms,
        };
        sets.ui_rules.push(u.clone());
        self.apply(&sets, now_ms);
        drop(sets);
        Ok(Self::entry(&u, &self.firing_counts(now_ms)))
    }

    fn update_rule(
        &self,
        name: &str,
        rule: RuleSpec,
        by: &str,
        now_ms: u64,
    ) -> Result<RuleEntry, AlertsError> {
        let mut sets = lock(&self.inner.sets);
        let ix = ui_rule_ix(&sets, name)?;
        if rule.name != name
            && let Some(src) = source_of(&sets, &rule.name)
        {
            return Err(AlertsError::Conflict(format!(
                "a rule named '{}' exists already ({src})",
                rule.name
            )));
        }
        Self::rule_problems(&sets, &rule)?;
        let body = serde_json::to_string(&rule).map_err(internal)?;
        self.db(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute("DELETE FROM alert_rules WHERE name = ?1", [name])?;
            tx.execute(
                "INSERT INTO alert_rules (name, body, updated_by, updated_ms) VALUES (?1, ?2, ?3, ?4)",
                params![rule.name, body, by, sql(now_ms)],
            )?;
            tx.commit()
        })?;
        let u = UiRule {
            rule,
            by: by.to_owned(),
            ms: now_ms,
        };
        sets.ui_rules[ix] = u.clone();
        self.apply(&sets, now_ms);
        drop(sets);
        Ok(Self::entry(&u, &self.firing_counts(now_ms)))
    }

    fn remove_rule(&self, name: &str, now_ms: u64) -> Result<(), AlertsError> {
        let mut sets = lock(&self.inner.sets);
        let ix = ui_rule_ix(&sets, name)?;
        self.db(|c| c.execute("DELETE FROM alert_rules WHERE name = ?1", [name]))?;
        sets.ui_rules.remove(ix);
        self.apply(&sets, now_ms);
        Ok(())
    }

    fn silences(&self, now_ms: u64) -> Vec<SilenceEntry> {
        let mut sets = lock(&self.inner.sets);
        let gone: Vec<String> = sets
            .ui_silences
            .iter()
            .filter(|s| expired(s, now_ms))
            .map(|s| s.id.clone())
            .collect();
        if !gone.is_empty() {
            sets.ui_silences.retain(|s| !expired(s, now_ms));
            let _ = self.db(|c| {
                for id in &gone {
                    c.execute("DELETE FROM alert_silences WHERE id = ?1", [id])?;
                }
                Ok(())
            });
            self.apply(&sets, now_ms);
        }
        sets.config_silences
            .iter()
            .map(|s| silence_entry(s, Source::Config, now_ms))
            .chain(
                sets.ui_silences
                    .iter()
                    .map(|s| silence_entry(s, Source::Ui, now_ms)),
            )
            .collect()
    }

    fn add_silence(
        &self,
        s: NewSilence,
        by: &str,
        now_ms: u64,
    ) -> Result<SilenceEntry, AlertsError> {
        if s.rule.is_none() && s.host.is_none() && s.cluster.is_none() && s.tag.is_none() {
            return Err(AlertsError::Invalid(
                "a silence needs at least one of rule, host, cluster or tag (a silence of everything is refused)".into(),
            ));
        }
        if s.duration_s.is_some() && s.ends_ms.is_some() {
            return Err(AlertsError::Invalid(
                "give duration_s or ends_ms, not both".into(),
            ));
        }
        if s.duration_s == Some(0) {
            return Err(AlertsError::Invalid(
                "duration_s: 0 must be at least 1".into(),
            ));
        }
        let start = s.starts_ms.unwrap_or(now_ms);
        let ends_ms = s.ends_ms.or(s
            .duration_s
            .map(|d| start.saturating_add(d.saturating_mul(1000))));
        if let Some(e) = ends_ms
            && e <= now_ms
        {
            return Err(AlertsError::Invalid(format!("ends_ms: {e} is in the past")));
        }
        let seq = self.inner.silence_seq.fetch_add(1, Ordering::Relaxed);
        let c = SilenceConfig {
            id: format!("s-{now_ms}-{seq}"),
            rule: s.rule,
            host: s.host,
            cluster: s.cluster,
            tag: s.tag,
            starts_ms: s.starts_ms,
            ends_ms,
            window: s.window.map(|w| WindowConfig {
                days: w.days,
                start: w.start,
                end: w.end,
                timezone: w.timezone.unwrap_or_else(|| "UTC".into()),
            }),
            created_by: by.to_owned(),
            comment: s.comment,
        };
        Silence::new(c.clone(), "silence").map_err(|e| AlertsError::Invalid(joined(&e)))?;
        let body = serde_json::to_string(&c).map_err(internal)?;
        let mut sets = lock(&self.inner.sets);
        self.db(|conn| {
            conn.execute(
                "INSERT INTO alert_silences (id, body) VALUES (?1, ?2)",
                params![c.id, body],
            )
        })?;
        sets.ui_silences.push(c.clone());
        self.apply(&sets, now_ms);
        Ok(silence_entry(&c, Source::Ui, now_ms))
    }

    fn remove_silence(&self, id: &str) -> Result<(), AlertsError> {
        let mut sets = lock(&self.inner.sets);
        if sets.config_silences.iter().any(|s| s.id == id) {
            return Err(AlertsError::ReadOnly(format!(
                "silence '{id}' comes from the config file (alerts.silences): it is read-only here"
            )));
        }
        let Some(ix) = sets.ui_silences.iter().position(|s| s.id == id) else {
            return Err(AlertsError::NotFound(format!(
                "no silence has the id '{id}'"
            )));
        };
        self.db(|c| c.execute("DELETE FROM alert_silences WHERE id = ?1", [id]))?;
        sets.ui_silences.remove(ix);
        self.apply(&sets, now_ms());
        Ok(())
    }

    fn channels(&self) -> Vec<ChannelEntry> {
        let notifier = self.notifier();
        let ui: HashMap<String, (String, u64)> = lock(&self.inner.sets)
            .ui_channels
            .iter()
            .map(|u| (u.channel.name.clone(), (u.by.clone(), u.ms)))
            .collect();
        let stats: HashMap<String, smon_notify::ChannelStats> = notifier
            .stats()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        notifier
            .views()
            .into_iter()
            .map(|v| {
                let s = stats.get(&v.name).cloned().unwrap_or_default();
                let made = ui.get(&v.name);
                ChannelEntry {
                    source: if made.is_some() {
                        Source::Ui
                    } else {
                        Source::Config
                    },
                    updated_by: made.map(|m| m.0.clone()).unwrap_or_default(),
                    updated_ms: made.map(|m| m.1),
                    name: v.name,
                    kind: v.kind.to_owned(),
                    target: v.target,
                    secret_set: v.secret_set,
                    rate_limit: RateLimitView {
                        max: v.rate_limit.max,
                        per_s: v.rate_limit.per_s,
                    },
                    max_age_s: v.max_age_s,
                    custom_templates: v.custom_templates,
                    sent: s.sent,
                    failed: s.failed,
                    dropped: s.dropped,
                    queued: s.queued,
                    last_error: s.last_error,
                    last_error_ms: s.last_error_ms,
                    last_success_ms: s.last_success_ms,
                }
            })
            .collect()
    }

    fn add_channel(
        &self,
        raw: serde_json::Map<String, serde_json::Value>,
        by: &str,
        now_ms: u64,
    ) -> Result<ChannelEntry, AlertsError> {
        let channel = ui_channel(&raw).map_err(AlertsError::Invalid)?;
        let name = channel.name.clone();
        let mut sets = lock(&self.inner.sets);
        if sets.channel_names().contains(&name) {
            return Err(AlertsError::Conflict(format!(
                "a channel named '{name}' exists already"
            )));
        }
        let body = serde_json::to_string(&raw).map_err(internal)?;
        self.db(|c| {
            c.execute(
                "INSERT INTO alert_channels (name, body, updated_by, updated_ms) VALUES (?1, ?2, ?3, ?4)",
                params![name, body, by, sql(now_ms)],
            )
        })?;
        sets.ui_channels.push(UiChannel {
            raw,
            channel,
            by: by.to_owned(),
            ms: now_ms,
        });
        self.renew_notifier(&sets)?;
        drop(sets);
        self.channel_entry(&name)
    }

    fn update_channel(
        &self,
        name: &str,
        changes: serde_json::Map<String, serde_json::Value>,
        by: &str,
        now_ms: u64,
    ) -> Result<ChannelEntry, AlertsError> {
        let mut sets = lock(&self.inner.sets);
        let ix = ui_channel_ix(&sets, name)?;
        // Keys left out keep their value (secrets are never shown, so an edit need not
        // repeat them); `null` removes one.
        let mut raw = sets.ui_channels[ix].raw.clone();
        for (k, v) in changes {
            if v.is_null() {
                raw.remove(&k);
            } else {
                raw.insert(k, v);
            }
        }
        if raw.get("name").and_then(|n| n.as_str()) != Some(name) {
            return Err(AlertsError::Invalid(format!(
                "channel.name: a channel cannot be renamed (rules name it); add '{}' and remove '{name}' instead",
                raw.get("name").and_then(|n| n.as_str()).unwrap_or("")
            )));
        }
        let channel = ui_channel(&raw).map_err(AlertsError::Invalid)?;
        let body = serde_json::to_string(&raw).map_err(internal)?;
        self.db(|c| {
            c.execute(
                "UPDATE alert_channels SET body = ?2, updated_by = ?3, updated_ms = ?4 WHERE name = ?1",
                params![name, body, by, sql(now_ms)],
            )
        })?;
        sets.ui_channels[ix] = UiChannel {
            raw,
            channel,
            by: by.to_owned(),
            ms: now_ms,
        };
        self.renew_notifier(&sets)?;
        drop(sets);
        self.channel_entry(name)
    }

    fn remove_channel(&self, name: &str) -> Result<(), AlertsError> {
        let mut sets = lock(&self.inner.sets);
        let ix = ui_channel_ix(&sets, name)?;
        let users = sets.rules_notifying(name);
        if !users.is_empty() {
            return Err(AlertsError::Conflict(format!(
                "channel '{name}' is notified by the rules {}: change them first",
                users.join(", ")
            )));
        }
        self.db(|c| c.execute("DELETE FROM alert_channels WHERE name = ?1", [name]))?;
        sets.ui_channels.remove(ix);
        self.renew_notifier(&sets)
    }

    async fn test_channel(&self, name: &str) -> Result<(), AlertsError> {
        self.notifier().send_test(name).await.map_err(|e| match e {
            TestError::UnknownChannel(_) => AlertsError::NotFound(e.to_string()),
            TestError::Send(_) => AlertsError::Delivery(format!("the test failed: {e}")),
        })
    }
}

/// Where a rule named `name` comes from, if it exists.
fn source_of(sets: &Sets, name: &str) -> Option<&'static str> {
    if sets.config_rules.iter().any(|r| r.name == name) {
        Some("in the config file")
    } else if sets.ui_rules.iter().any(|u| u.rule.name == name) {
        Some("made in the UI")
    } else {
        None
    }
}

/// The index of the UI channel `name`: 403 for a config channel, 404 for none.
fn ui_channel_ix(sets: &Sets, name: &str) -> Result<usize, AlertsError> {
    if sets.config_channels.iter().any(|c| c.name == name) {
        return Err(AlertsError::ReadOnly(format!(
            "channel '{name}' comes from the config file (alerts.channels): it is read-only here; change it in config_app.json"
        )));
    }
    sets.ui_channels
        .iter()
        .position(|u| u.channel.name == name)
        .ok_or_else(|| AlertsError::NotFound(format!("no channel is named '{name}'")))
}

/// The index of the UI rule `name`: 403 for a config rule, 404 for none.
fn ui_rule_ix(sets: &Sets, name: &str) -> Result<usize, AlertsError> {
    if sets.config_rules.iter().any(|r| r.name == name) {
        return Err(AlertsError::ReadOnly(format!(
            "rule '{name}' comes from the config file (alerts.rules): it is read-only here; change it in config_app.json"
        )));
    }
    sets.ui_rules
        .iter()
        .position(|u| u.rule.name == name)
        .ok_or_else(|| AlertsError::NotFound(format!("no rule is named '{name}'")))
}

/// A counter of `/metrics`: its name, help and how to read it from a channel's figures.
type Counter = (
    &'static str,
    &'static str,
    fn(&smon_notify::ChannelStats) -> u64,
);

/// The alerting figures of `/metrics`: `smon_alerts_firing{rule,severity}` and, per channel,
/// `smon_notify_{sent,failed,dropped}_total` and `smon_notify_queued`.
impl Collector for Alerts {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = now_ms();
        let firing: Vec<((String, &'static str), i64)> = {
            let e = lock(&self.inner.engine);
            let mut by: HashMap<(String, &'static str), i64> = e
                .rules()
                .map(|r| ((r.name().to_owned(), r.config.severity.as_str()), 0))
                .collect();
            for a in e.alerts(now) {
                if !a.pending && a.alert.status == AlertStatus::Firing {
                    *by.entry((a.alert.rule.clone(), a.alert.severity.as_str()))
                        .or_default() += 1;
                }
            }
            let mut v: Vec<_> = by.into_iter().collect();
            v.sort();
            v
        };
        let mut m = enc.encode_descriptor(
            "smon_alerts_firing",
            "Alerts firing now, per rule and severity",
            None,
            MetricType::Gauge,
        )?;
        for ((rule, sev), n) in &firing {
            m.encode_family(&[("rule", rule.as_str()), ("severity", sev)])?
                .encode_gauge(n)?;
        }
        let stats = self.notifier().stats();
        let mut m = enc.encode_descriptor(
            "smon_notify_queued",
            "Notifications waiting in a channel's outbox",
            None,
            MetricType::Gauge,
        )?;
        for s in &stats {
            m.encode_family(&[("channel", s.name.as_str())])?
                .encode_gauge(&(s.queued as i64))?;
        }
        let counters: [Counter; 3] = [
            (
                "smon_notify_sent",
                "Notifications a channel delivered (since the start)",
                |s| s.sent,
            ),
            (
                "smon_notify_failed",
                "Failed delivery attempts of a channel (each retry counts)",
                |s| s.failed,
            ),
            (
                "smon_notify_dropped",
                "Notifications a channel dropped after its max_age_s",
                |s| s.dropped,
            ),
        ];
        for (name, help, get) in counters {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for s in &stats {
                m.encode_family(&[("channel", s.name.as_str())])?
                    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                        &get(s),
                        None,
                    )?;
            }
        }
        Ok(())
    }
}
