//! Declared applications (`applications[]` in `config_app.json`, README "Applications"):
//! the reconciler that keeps each one's `instances` running on its candidate hosts, restarts
//! an instance elsewhere when its host is down for `down_after`, conciliates a lost host's
//! copy when it comes back, and starts in `start_after` order; and the
//! [`ApplicationsService`] the routes use (what each application is doing, start, stop and
//! restart).
//!
//! It reads the fleet from the event feed (samples, host state changes, program state
//! changes, fleet changes) into [`plan::Facts`], and passes over every application each
//! second and at once on a host or program state change: [`plan::plan`] (pure) decides,
//! and this module carries the steps out through the agents' `Control.Program` (the
//! [`ProgramsService`] of [`crate::actions`]). Every decision is logged (target
//! `smon::applications`), kept (the last 20 per application), recorded in the audit log
//! (actor `smon` for its own decisions, the user for an action) and published on the feed
//! ([`Body::Application`]); a problem (no candidate left, a start failing) is shown as the
//! application's `problem` and fires an `application_degraded` alert
//! ([`crate::alerts`]).

pub mod config;
pub mod plan;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use smon_api::applications::{AppActionResult, AppState, AppVerb, Decision, DeclaredApp};
use smon_web::acting::{ActionError, ApplicationsService, ProgramVerb, ProgramsService};
use smon_web::security::Security;
use smon_web::wire::Status;
use tokio_util::sync::CancellationToken;

use crate::feed::{Body, Feed, Kinds, RegistryChange, Subscription};
use crate::registry::Registry;
use config::App;
use plan::{Facts, Memory, Verb};

/// The events the reconciler reads.
pub const KINDS: Kinds = Kinds::POLL
    .with(Kinds::STATE)
    .with(Kinds::PROGRAM)
    .with(Kinds::REGISTRY);

/// Its queue: room for several seconds of samples of a large fleet (facts are updated
/// apart from the passes, which may wait on agents).
pub const QUEUE: usize = 65_536;

/// How often every application is looked at when nothing happens.
const TICK: Duration = Duration::from_secs(1);

/// Who the audit log names for the reconciler's own decisions.
const ACTOR: &str = "smon";

/// The reconciler and the service over it: a cheap handle.
#[derive(Clone)]
pub struct Applications {
    inner: Arc<Inner>,
}

struct Inner {
    apps: Vec<App>,
    /// The programs the applications run, as (group, name): the only ones kept from samples.
    managed: Vec<(String, String)>,
    /// Start order (indexes into `apps`).
    order: Vec<usize>,
    facts: Mutex<Facts>,
    /// One pass or action at a time; held across the agents' calls.
    work: tokio::sync::Mutex<Vec<Memory>>,
    shown: Mutex<Vec<DeclaredApp>>,
    programs: Arc<dyn ProgramsService>,
    registry: Registry,
    feed: Feed,
    security: Option<Arc<Security>>,
    wake: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for Applications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applications")
            .field("apps", &self.inner.apps.len())
            .finish()
    }
}

impl Applications {
    /// The reconciler of `apps` (checked: no cycle), acting through `programs` on
    /// `registry`'s hosts, publishing on `feed`, auditing through `security`.
    pub fn new(
        apps: Vec<App>,
        programs: Arc<dyn ProgramsService>,
        registry: Registry,
        feed: Feed,
        security: Option<Arc<Security>>,
    ) -> Self {
        let order = config::start_order(&apps).unwrap_or_else(|_| (0..apps.len()).collect());
        let now = smon_web::clock::now_ms();
        let shown = apps
            .iter()
            .map(|a| shown(a, &Memory::default(), &[]))
            .collect();
        let managed = apps
            .iter()
            .filter_map(|a| a.program.split_once(':'))
            .map(|(g, n)| (g.to_owned(), n.to_owned()))
            .collect();
        Self {
            inner: Arc::new(Inner {
                managed,
                order,
                facts: Mutex::new(Facts {
                    started_ms: now,
                    ..Facts::default()
                }),
                work: tokio::sync::Mutex::new(vec![Memory::default(); apps.len()]),
                shown: Mutex::new(shown),
                apps,
                programs,
                registry,
                feed,
                security,
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Whether any application is declared.
    pub fn is_empty(&self) -> bool {
        self.inner.apps.is_empty()
    }

    /// Reads the fleet from `sub` and reconciles each second and on every host or program
    /// state change, until `stop`.
    pub async fn run(self, mut sub: Subscription, stop: CancellationToken) {
        let facts = async {
            let mut buf = Vec::with_capacity(512);
            loop {
                if sub.recv_many(&mut buf, 512).await == 0 {
                    return;
                }
                let wake = self.update(buf.drain(..));
                if wake {
                    self.inner.wake.notify_one();
                }
            }
        };
        let passes = async {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = self.inner.wake.notified() => {}
                }
                let mut mems = self.inner.work.lock().await;
                self.pass(&mut mems, false, ACTOR).await;
            }
        };
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = facts => {}
            _ = passes => {}
        }
    }

    /// Applies feed events to the facts; true when a host or program state changed.
    fn update(&self, events: impl Iterator<Item = Arc<crate::feed::Event>>) -> bool {
        let mut wake = false;
        let mut f = lock(&self.inner.facts);
        for e in events {
            match &e.body {
                Body::Sample { host, snapshot } => {
                    let h = f.hosts.entry(host.clone()).or_default();
                    h.known = true;
                    h.last_seen_ms = e.at_ms;
                    if let Some(p) = &snapshot.programs {
                        // Only the managed programs: a host's others are never looked at.
                        let managed = &self.inner.managed;
                        h.programs = Some(
                            p.programs
                                .iter()
                                .filter(|q| {
                                    managed.iter().any(|(g, n)| *g == q.group && *n == q.name)
                                })
                                .map(|q| (format!("{}:{}", q.group, q.name), q.state.clone()))
                                .collect(),
                        );
                        h.supervisor_error = p.error.clone();
                    } else {
                        h.programs = None;
                        h.supervisor_error = None;
                    }
                    if let Some(c) = &snapshot.cpu {
                        h.cpu_percent = c.total_percent;
                    }
                    if let Some(m) = &snapshot.memory {
                        h.mem_free = m.available_bytes;
                    }
                }
                Body::State { host, to, .. } => {
                    let h = f.hosts.entry(host.clone()).or_default();
                    h.known = *to != Status::Pending;
                    h.alive = matches!(to, Status::Up | Status::Stale);
                    h.up = *to == Status::Up;
                    wake = true;
                }
                Body::Program { .. } => wake = true,
                Body::Registry(RegistryChange::Removed { host }) => {
                    f.hosts.remove(host);
                    wake = true;
                }
                _ => {}
            }
        }
        wake
    }

    /// One pass over every application (in start order, or in reverse), carrying out what
    /// each needs; `by` names who asked (audit). Returns the decisions made, per
    /// application.
    async fn pass(&self, mems: &mut [Memory], reverse: bool, by: &str) -> Vec<(String, Decision)> {
        let inner = &self.inner;
        let now = smon_web::clock::now_ms();
        let facts = {
            let mut f = lock(&inner.facts).clone();
            for (id, h) in f.hosts.iter_mut() {
                h.tags = inner
                    .registry
                    .target(id)
                    .map(|t| t.spec.tags)
                    .unwrap_or_default();
            }
            f
        };
        let mut order = inner.order.clone();
        if reverse {
            order.reverse();
        }
        let mut running: std::collections::HashMap<&str, u32> = Default::default();
        let mut made = Vec::new();
        for i in order {
            let app = &inner.apps[i];
            let waiting: Vec<String> = app
                .start_after
                .iter()
                .filter_map(|d| {
                    let want = inner.apps.iter().find(|a| &a.name == d)?.instances;
                    let have = running.get(d.as_str()).copied().unwrap_or_else(|| {
                        lock(&inner.shown)
                            .iter()
                            .find(|s| &s.name == d)
                            .map_or(0, |s| s.running_on.len() as u32)
                    });
                    (have < want).then(|| format!("{d} ({have} of {want} running)"))
                })
                .collect();
            let deps = if waiting.is_empty() {
                Ok(())
            } else {
                Err(waiting.join(", "))
            };
            let mem = &mut mems[i];
            let p = plan::plan(app, mem, &facts, deps, now);
            let mut up = p.running;
            let mut problem = p.problem.clone();
            let mut start_failed = false;
            for step in &p.steps {
                let verb = match step.verb {
                    Verb::Start => ProgramVerb::Start,
                    Verb::Stop => ProgramVerb::Stop,
                };
                let r = inner.programs.program(&step.host, verb, &app.program).await;
                let at = smon_web::clock::now_ms();
                let outcome = match &r {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => e.to_string(),
                };
                match (step.verb, &r) {
                    (Verb::Start, Ok(_)) => {
                        mem.stopping.remove(&step.host);
                        mem.pending.insert(step.host.clone(), at);
                        mem.failed.remove(&step.host);
                    }
                    (Verb::Start, Err(e)) => {
                        mem.failed.insert(step.host.clone(), (at, e.to_string()));
                        up = up.saturating_sub(1);
                        start_failed = true;
                        problem = Some(format!("start on {} failed: {e}", step.host));
                    }
                    (Verb::Stop, Ok(_)) => {
                        mem.pending.remove(&step.host);
                        mem.stopping.insert(step.host.clone(), at);
                    }
                    (Verb::Stop, Err(_)) => {}
                }
                let d = Decision {
                    at_ms: at,
                    action: step.verb.as_str().to_owned(),
                    host: step.host.clone(),
                    reason: step.reason.clone(),
                    outcome,
                };
                let degraded = problem.clone().filter(|_| {
                    (step.verb == Verb::Start && r.is_err()) || p.state == AppState::Degraded
                });
                self.record(app, mem, &d, by, degraded).await;
                made.push((app.name.clone(), d));
            }
            let state = if start_failed && p.state == AppState::Starting {
                AppState::Degraded
            } else {
                p.state
            };
            if problem != mem.problem {
                match &problem {
                    Some(why) => {
                        let d = Decision {
                            at_ms: now,
                            action: "none".into(),
                            host: String::new(),
                            reason: why.clone(),
                            outcome: match state {
                                AppState::Degraded => "cannot run as declared".into(),
                                _ => "waiting".into(),
                            },
                        };
                        let degraded = problem.clone().filter(|_| state == AppState::Degraded);
                        self.record(app, mem, &d, by, degraded).await;
                        made.push((app.name.clone(), d));
                    }
                    None => {
                        tracing::info!(target: "smon::applications", app = %app.name,
                            "Application runs as declared again.");
                        inner.feed.publish(
                            now,
                            Body::Application {
                                name: app.name.clone(),
                                decision: Decision {
                                    at_ms: now,
                                    action: "none".into(),
                                    host: String::new(),
                                    reason: "runs as declared".into(),
                                    outcome: "ok".into(),
                                },
                                problem: None,
                            },
                        );
                    }
                }
            }
            mem.problem = problem;
            mem.state = state;
            mem.running_on = p.running_on.clone();
            running.insert(app.name.as_str(), up);
            let view = shown(app, mem, &plan::resolve(app, &facts));
            lock(&inner.shown)[i] = view;
        }
        made
    }

    /// Logs, keeps, audits and publishes decision `d` of `app`; `degraded` is why the
    /// application cannot run as declared (an `application_degraded` alert fires while the
    /// feed says so), `None` when it can or merely waits.
    async fn record(
        &self,
        app: &App,
        mem: &mut Memory,
        d: &Decision,
        by: &str,
        degraded: Option<String>,
    ) {
        if d.outcome == "ok" {
            tracing::info!(target: "smon::applications", app = %app.name, action = %d.action,
                host = %d.host, reason = %d.reason, "Application decision carried out.");
        } else {
            tracing::warn!(target: "smon::applications", app = %app.name, action = %d.action,
                host = %d.host, reason = %d.reason, outcome = %d.outcome,
                "Application decision not carried out.");
        }
        mem.keep(d.clone());
        if let Some(sec) = &self.inner.security {
            let mut e =
                smon_api::audit::AuditEvent::new(d.at_ms, by, format!("application.{}", d.action));
            e.target = app.name.clone();
            e.hosts = if d.host.is_empty() {
                Vec::new()
            } else {
                vec![d.host.clone()]
            };
            e.outcome = d.outcome.clone();
            e.results = serde_json::to_value(d).ok();
            sec.audit_later(e).await;
        }
        self.inner.feed.publish(
            d.at_ms,
            Body::Application {
                name: app.name.clone(),
                decision: d.clone(),
                problem: degraded,
            },
        );
    }

    /// The declared applications now, in configuration order.
    pub fn view(&self) -> Vec<DeclaredApp> {
        lock(&self.inner.shown).clone()
    }
}

fn shown(app: &App, mem: &Memory, candidates: &[String]) -> DeclaredApp {
    DeclaredApp {
        name: app.name.clone(),
        program: app.program.clone(),
        instances: app.instances,
        strategy: app.strategy,
        on_host_down: app.on_host_down,
        start_after: app.start_after.clone(),
        candidates: if candidates.is_empty() {
            app.candidates
                .iter()
                .map(|c| match c {
                    config::Candidate::Host(h) => h.clone(),
                    config::Candidate::Tag(t) => format!("tag:{t}"),
                })
                .collect()
        } else {
            candidates.to_vec()
        },
        running_on: mem.running_on.clone(),
        state: mem.state,
        problem: mem.problem.clone(),
        decisions: mem.decisions.iter().cloned().collect(),
    }
}

#[async_trait::async_trait]
impl ApplicationsService for Applications {
    fn declared(&self) -> Vec<DeclaredApp> {
        self.view()
    }

    async fn act(
        &self,
        name: Option<&str>,
        verb: AppVerb,
        by: &str,
    ) -> Result<AppActionResult, ActionError> {
        let inner = &self.inner;
        let which: Vec<usize> = match name {
            Some(n) => {
                let i = inner.apps.iter().position(|a| a.name == n).ok_or_else(|| {
                    ActionError::NotFound(format!(
                        "no application '{}' (applications[] in config_app.json)",
                        smon_web::security::login::log_safe(n)
                    ))
                })?;
                vec![i]
            }
            None if inner.apps.is_empty() => {
                return Err(ActionError::NotFound(
                    "no application is declared (applications[] in config_app.json)".into(),
                ));
            }
            None => (0..inner.apps.len()).collect(),
        };
        let mut mems = inner.work.lock().await;
        let mut decisions = Vec::new();
        if matches!(verb, AppVerb::Stop | AppVerb::Restart) {
            for &i in &which {
                mems[i].wanted = false;
            }
            decisions.extend(self.pass(&mut mems, true, by).await);
        }
        if matches!(verb, AppVerb::Start | AppVerb::Restart) {
            for &i in &which {
                let m = &mut mems[i];
                m.wanted = true;
                // An operator's start tries every candidate again.
                m.failed.clear();
                m.problem = m.problem.take().filter(|p| !p.contains("stop_all"));
            }
            decisions.extend(self.pass(&mut mems, false, by).await);
        }
        let names: Vec<&str> = which.iter().map(|&i| inner.apps[i].name.as_str()).collect();
        // An application still unable to run, or waiting for start_after, says why, though
        // nothing new was decided.
        if verb != AppVerb::Stop {
            for &i in &which {
                let (app, m) = (&inner.apps[i], &mems[i]);
                let waits = m.wanted && m.state == AppState::Stopped && m.problem.is_some();
                if (m.state == AppState::Degraded || waits)
                    && !decisions
                        .iter()
                        .any(|(n, d)| n == &app.name && d.outcome != "ok")
                {
                    decisions.push((
                        app.name.clone(),
                        Decision {
                            at_ms: smon_web::clock::now_ms(),
                            action: "none".into(),
                            host: String::new(),
                            reason: m.problem.clone().unwrap_or_default(),
                            outcome: if waits {
                                "waiting".into()
                            } else {
                                "cannot run as declared".into()
                            },
                        },
                    ));
                }
            }
        }
        let decisions: Vec<(String, Decision)> = decisions
            .into_iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .collect();
        let mut applications: Vec<String> = Vec::new();
        for (n, _) in &decisions {
            if !applications.contains(n) {
                applications.push(n.clone());
            }
        }
        for n in names {
            if !applications.iter().any(|a| a == n) {
                applications.push(n.to_owned());
            }
        }
        let decisions: Vec<Decision> = decisions.into_iter().map(|(_, d)| d).collect();
        // Waiting for start_after is not done either: the caller asked for it to run.
        let ok = decisions.iter().all(|d| d.outcome == "ok");
        Ok(AppActionResult {
            applications,
            decisions,
            ok,
        })
    }
}
