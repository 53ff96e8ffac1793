//! What a declared application needs now, as pure logic with the time passed in: from what
//! the fleet shows ([`Facts`]) and what the reconciler remembers of the application
//! ([`Memory`]), the starts and stops to carry out ([`Plan`]), its state and its problem.
//! The reconciler ([`super`]) feeds it and carries the steps out through the agents.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use smon_api::applications::{AppState, Decision, OnHostDown, Strategy};

use super::config::{App, Candidate, Conciliation};

/// How many decisions are kept per application.
pub const KEPT_DECISIONS: usize = 20;

/// How long a start carried out counts as an instance before a sample shows it running.
pub const PENDING_MS: u64 = 30_000;

/// How long, at least, the reconciler waits at start-up for candidates that have not reported
/// (`down_after` when longer) before placing without them.
pub const STARTUP_GRACE_MS: u64 = 10_000;

/// How long a host where a start failed is passed over.
pub const FAILED_COOLDOWN_MS: u64 = 60_000;

/// What the fleet shows of one host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFacts {
    /// Its tags (from the registry).
    pub tags: Vec<String>,
    /// Whether its state is known yet (it reported, or was found down).
    pub known: bool,
    /// Up or stale: its instance (if any) is counted as running.
    pub alive: bool,
    /// Up: a start may be tried there.
    pub up: bool,
    /// When its last sample came (ms).
    pub last_seen_ms: u64,
    /// supervisord's programs as its last sample showed them (`group:name`, state); `None`
    /// when the agent reads no supervisord.
    pub programs: Option<Vec<(String, String)>>,
    /// Why supervisord could not be read at the last sample.
    pub supervisor_error: Option<String>,
    /// CPU use, percent of all cores.
    pub cpu_percent: f32,
    /// Memory available, bytes.
    pub mem_free: u64,
}

impl HostFacts {
    /// The state of `program` on the host, if its supervisord has it.
    pub fn program(&self, program: &str) -> Option<&str> {
        self.programs
            .as_ref()?
            .iter()
            .find(|(n, _)| n == program)
            .map(|(_, s)| s.as_str())
    }
}

/// What the fleet shows: every host by id.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The hosts.
    pub hosts: BTreeMap<String, HostFacts>,
    /// When the reconciler began (ms): candidates not yet known are waited for until
    /// `down_after` past it.
    pub started_ms: u64,
}

/// What the reconciler remembers of one application.
#[derive(Debug, Clone)]
pub struct Memory {
    /// Whether it should run (an action or `stop_all` stops it until started).
    pub wanted: bool,
    /// Starts carried out and not yet seen running (host, when).
    pub pending: HashMap<String, u64>,
    /// Stops carried out and not yet seen in a sample (host, when): not counted as running
    /// meanwhile.
    pub stopping: HashMap<String, u64>,
    /// Starts that failed (host, (when, why)).
    pub failed: HashMap<String, (u64, String)>,
    /// Hosts lost past `down_after` whose instance was replaced; a copy they still run when
    /// they come back is conciliated.
    pub replaced: HashSet<String>,
    /// Hosts started while others were lost (the replacements).
    pub replacements: Vec<String>,
    /// Why it cannot run as declared (or is waiting), as last decided.
    pub problem: Option<String>,
    /// Its state, as last decided.
    pub state: AppState,
    /// Where it runs, as last decided.
    pub running_on: Vec<String>,
    /// The latest decisions, newest first.
    pub decisions: VecDeque<Decision>,
}

impl Default for Memory {
    fn default() -> Self {
        Self {
            wanted: true,
            pending: HashMap::new(),
            stopping: HashMap::new(),
            failed: HashMap::new(),
            replaced: HashSet::new(),
            replacements: Vec::new(),
            problem: None,
            state: AppState::Stopped,
            running_on: Vec::new(),
            decisions: VecDeque::new(),
        }
    }
}

impl Memory {
    /// Keeps `d` (newest first, at most [`KEPT_DECISIONS`]).
    pub fn keep(&mut self, d: Decision) {
        self.decisions.push_front(d);
        self.decisions.truncate(KEPT_DECISIONS);
    }
}

/// A start or a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Start the program.
    Start,
    /// Stop it.
    Stop,
}

impl Verb {
    /// `start` or `stop`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
        }
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Start or stop.
    pub verb: Verb,
    /// On which host.
    pub host: String,
    /// Why.
    pub reason: String,
}

/// What an application needs now.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Starts and stops, in order.
    pub steps: Vec<Step>,
    /// Its state once they are carried out.
    pub state: AppState,
    /// Why it cannot run as declared, or what it waits for.
    pub problem: Option<String>,
    /// Instances running or being started (starts of this plan included), for the
    /// applications that start after it.
    pub running: u32,
    /// Where it runs now (before the steps).
    pub running_on: Vec<String>,
}

/// The candidate host ids of `app`, in order: hosts as listed, a tag's hosts sorted by id.
pub fn resolve(app: &App, facts: &Facts) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in &app.candidates {
        match c {
            Candidate::Host(h) => {
                if !out.contains(h) {
                    out.push(h.clone());
                }
            }
            Candidate::Tag(t) => {
                for (id, f) in &facts.hosts {
                    if f.tags.iter().any(|x| x == t) && !out.contains(id) {
                        out.push(id.clone());
                    }
                }
            }
        }
    }
    out
}

/// Whether supervisord's `state` is a copy that runs or is coming up.
fn active(state: Option<&str>) -> bool {
    matches!(state, Some("RUNNING" | "STARTING"))
}

fn secs(ms: u64) -> u64 {
    ms / 1000
}

/// Decides what `app` needs now. `deps` is `Err(why)` while an application of its
/// `start_after` is not running. Forgets pending starts that a sample confirmed or that
/// timed out, and failures past their cooldown; notes hosts lost and replaced.
pub fn plan(
    app: &App,
    mem: &mut Memory,
    facts: &Facts,
    deps: Result<(), String>,
    now: u64,
) -> Plan {
    let cands = resolve(app, facts);
    let none = HostFacts::default();
    let fact = |h: &str| facts.hosts.get(h).unwrap_or(&none);
    mem.pending.retain(|h, since| {
        now.saturating_sub(*since) < PENDING_MS && !active(fact(h).program(&app.program))
    });
    mem.failed
        .retain(|_, (at, _)| now.saturating_sub(*at) < FAILED_COOLDOWN_MS);
    mem.stopping.retain(|h, since| {
        now.saturating_sub(*since) < PENDING_MS && active(fact(h).program(&app.program))
    });

    let mut running: Vec<String> = Vec::new();
    // (host, down for ms)
    let mut lost: Vec<(String, u64)> = Vec::new();
    for h in &cands {
        let f = fact(h);
        let st = f
            .program(&app.program)
            .filter(|_| !mem.stopping.contains_key(h));
        if f.alive && (active(st) || mem.pending.contains_key(h)) {
            running.push(h.clone());
        } else if !f.alive && f.known && active(st) {
            lost.push((h.clone(), now.saturating_sub(f.last_seen_ms)));
        }
    }
    // Lost hosts back: a copy they run is conciliated below.
    let returning: Vec<String> = mem
        .replaced
        .iter()
        .filter(|h| fact(h).alive)
        .filter(|h| running.contains(h))
        .cloned()
        .collect();
    mem.replaced.retain(|h| !fact(h).alive);
    let mut out = Plan {
        steps: Vec::new(),
        state: AppState::Running,
        problem: None,
        running: 0,
        running_on: running.clone(),
    };

    if !mem.wanted {
        for h in &running {
            if !mem.pending.contains_key(h) {
                out.steps.push(Step {
                    verb: Verb::Stop,
                    host: h.clone(),
                    reason: "stopped on purpose: keep it stopped until started".into(),
                });
            }
        }
        mem.pending.clear();
        out.state = AppState::Stopped;
        out.problem = mem.problem.clone().filter(|p| p.contains("stop_all"));
        return out;
    }

    let waiting_for: Vec<&str> = cands
        .iter()
        .filter(|h| !fact(h).known)
        .map(String::as_str)
        .collect();
    if !waiting_for.is_empty()
        && running.len() < app.instances as usize
        && now.saturating_sub(facts.started_ms) < app.down_after_ms.max(STARTUP_GRACE_MS)
    {
        out.state = AppState::Starting;
        out.running = running.len() as u32;
        return out;
    }

    if let Err(why) = &deps
        && running.is_empty()
    {
        out.state = AppState::Stopped;
        out.problem = Some(format!("waiting for start_after: {why}"));
        return out;
    }

    let mut waiting = 0usize;
    let mut gone: Vec<(String, u64)> = Vec::new();
    for (h, down) in &lost {
        if *down < app.down_after_ms || app.on_host_down == OnHostDown::Keep {
            waiting += 1;
        } else {
            gone.push((h.clone(), *down));
        }
    }
    if let Some((h, down)) = gone.first()
        && app.on_host_down == OnHostDown::StopAll
    {
        let why = format!(
            "{h} down for {} s: stop_all stopped every instance",
            secs(*down)
        );
        for r in &running {
            out.steps.push(Step {
                verb: Verb::Stop,
                host: r.clone(),
                reason: why.clone(),
            });
        }
        mem.wanted = false;
        mem.pending.clear();
        out.state = AppState::Stopped;
        out.problem = Some(why);
        return out;
    }
    for (h, _) in &gone {
        mem.replaced.insert(h.clone());
    }

    let declared = app.instances as usize;
    let have = running.len() + waiting;
    if have < declared {
        let mut eligible: Vec<&String> = Vec::new();
        let mut why_not: Vec<String> = Vec::new();
        for h in &cands {
            let f = fact(h);
            if running.contains(h) || lost.iter().any(|(l, _)| l == h) {
                continue;
            }
            let reason = if !f.known {
                Some(format!("{h} has not reported"))
            } else if !f.up {
                Some(format!("{h} down"))
            } else if f.programs.is_none() {
                Some(format!("{h}'s agent reads no supervisord"))
            } else if let Some(e) = &f.supervisor_error {
                Some(format!("{h}'s supervisord: {e}"))
            } else if f.program(&app.program).is_none() {
                Some(format!("{h} has no program {}", app.program))
            } else if f.program(&app.program) == Some("BACKOFF") {
                Some(format!("{h}: {} in BACKOFF", app.program))
            } else {
                mem.failed
                    .get(h)
                    .map(|(_, e)| format!("{h}: start failed: {e}"))
            };
            match reason {
                Some(r) => why_not.push(r),
                None => eligible.push(h),
            }
        }
        match app.strategy {
            Strategy::Config => {}
            Strategy::LessLoaded => {
                eligible.sort_by(|a, b| fact(a).cpu_percent.total_cmp(&fact(b).cpu_percent))
            }
            Strategy::MostMemoryFree => {
                eligible.sort_by_key(|h| std::cmp::Reverse(fact(h).mem_free))
            }
        }
        let need = declared - have;
        let reason = match gone.first() {
            Some((h, down)) => format!(
                "{h} down for {} s: restart elsewhere ({} of {declared} running)",
                secs(*down),
                running.len()
            ),
            None => format!("{have} of {declared} running: start"),
        };
        for h in eligible.iter().take(need) {
            out.steps.push(Step {
                verb: Verb::Start,
                host: (*h).clone(),
                reason: reason.clone(),
            });
            if !gone.is_empty() {
                mem.replacements.push((*h).clone());
            }
        }
        if eligible.len() < need {
            let mut p = format!(
                "no candidate left for {} more instance(s) of {declared}",
                need - eligible.len()
            );
            if !why_not.is_empty() {
                p.push_str(": ");
                p.push_str(&why_not.join(", "));
            }
            out.problem = Some(p);
            out.state = AppState::Degraded;
        } else {
            out.state = AppState::Starting;
        }
    } else if running.len() > declared {
        let extra = running.len() - declared;
        let mut victims: Vec<(String, String)> = Vec::new();
        let what = format!("{} running, {declared} declared", running.len());
        if !returning.is_empty() {
            match app.conciliation {
                Conciliation::StopReturning => {
                    for h in &returning {
                        victims.push((
                            h.clone(),
                            format!(
                                "conciliation (stop_returning): {h} came back running a copy; {what}"
                            ),
                        ));
                    }
                }
                Conciliation::StopReplacement => {
                    for h in mem.replacements.iter().rev() {
                        if running.contains(h) && !returning.contains(h) {
                            victims.push((
                                h.clone(),
                                format!(
                                    "conciliation (stop_replacement): {} came back running a \
                                     copy; {what}: stop the replacement",
                                    returning.join(", ")
                                ),
                            ));
                        }
                    }
                }
                Conciliation::Keep => {
                    out.problem = Some(format!(
                        "conciliation (keep): {} came back running a copy; {what}",
                        returning.join(", ")
                    ));
                }
            }
        }
        if app.conciliation != Conciliation::Keep {
            // More than declared for another reason (started by hand): the least preferred go.
            for h in running.iter().rev() {
                if victims.len() >= extra {
                    break;
                }
                if !victims.iter().any(|(v, _)| v == h) {
                    victims.push((h.clone(), format!("{what}: stop the least preferred")));
                }
            }
        }
        for (h, reason) in victims.into_iter().take(extra) {
            out.steps.push(Step {
                verb: Verb::Stop,
                host: h,
                reason,
            });
        }
        out.state = AppState::Running;
    } else if waiting > 0 && running.len() < declared {
        let (h, down) = lost.first().cloned().unwrap_or_default();
        // No running count of seconds in a problem: a new text is a new decision.
        out.problem = Some(
            if app.on_host_down == OnHostDown::Keep && down >= app.down_after_ms {
                format!(
                    "{h} down longer than down_after ({} s): keep waits for it",
                    secs(app.down_after_ms)
                )
            } else {
                format!(
                    "{h} down: waiting down_after ({} s) before acting",
                    secs(app.down_after_ms)
                )
            },
        );
        out.state = if down >= app.down_after_ms {
            AppState::Degraded
        } else {
            AppState::Starting
        };
    }
    if mem.replaced.is_empty() && returning.is_empty() {
        mem.replacements.retain(|h| running.contains(h));
    }
    let starts = out.steps.iter().filter(|s| s.verb == Verb::Start).count();
    let stops = out.steps.iter().filter(|s| s.verb == Verb::Stop).count();
    out.running = (running.len() + starts).saturating_sub(stops) as u32;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;
    const T0: u64 = 1_800_000_000_000;

    fn app(cands: &[&str], instances: u32) -> App {
        App {
            name: "web".into(),
            program: "web:api".into(),
            candidates: cands
                .iter()
                .map(|c| match c.strip_prefix("tag:") {
                    Some(t) => Candidate::Tag(t.into()),
                    None => Candidate::Host((*c).into()),
                })
                .collect(),
            instances,
            strategy: Strategy::Config,
            on_host_down: OnHostDown::RestartElsewhere,
            down_after_ms: 10 * S,
            start_after: vec![],
            conciliation: Conciliation::StopReturning,
        }
    }

    fn up(state: Option<&str>, now: u64) -> HostFacts {
        HostFacts {
            tags: vec!["web".into()],
            known: true,
            alive: true,
            up: true,
            last_seen_ms: now,
            programs: Some(
                state
                    .map(|s| vec![("web:api".to_owned(), s.to_owned())])
                    .unwrap_or_default(),
            ),
            ..Default::default()
        }
    }

    fn down(mut f: HostFacts) -> HostFacts {
        f.alive = false;
        f.up = false;
        f
    }

    fn facts(hosts: &[(&str, HostFacts)]) -> Facts {
        Facts {
            hosts: hosts
                .iter()
                .map(|(h, f)| ((*h).to_owned(), f.clone()))
                .collect(),
            started_ms: T0,
        }
    }

    fn steps(p: &Plan) -> Vec<(Verb, &str)> {
        p.steps.iter().map(|s| (s.verb, s.host.as_str())).collect()
    }

    #[test]
    fn places_on_the_first_candidates_and_counts_pending_starts() {
        let a = app(&["lab:a", "lab:b", "lab:c"], 2);
        let mut m = Memory::default();
        let f = facts(&[
            ("lab:a", up(Some("STOPPED"), T0)),
            ("lab:b", up(None, T0)),
            ("lab:c", up(Some("EXITED"), T0)),
        ]);
        let p = plan(&a, &mut m, &f, Ok(()), T0);
        assert_eq!(steps(&p), [(Verb::Start, "lab:a"), (Verb::Start, "lab:c")]);
        assert_eq!(p.state, AppState::Starting);
        assert_eq!(p.running, 2);
        m.pending.insert("lab:a".into(), T0);
        m.pending.insert("lab:c".into(), T0);
        let p = plan(&a, &mut m, &f, Ok(()), T0 + S);
        assert!(p.steps.is_empty(), "pending starts count: {p:?}");
        // Never seen running within PENDING_MS: tried again.
        let p = plan(&a, &mut m, &f, Ok(()), T0 + PENDING_MS + S);
        assert_eq!(p.steps.len(), 2);
    }

    #[test]
    fn strategies_order_the_candidates() {
        let mut a = app(&["tag:web"], 1);
        let mut b = up(Some("STOPPED"), T0);
        b.cpu_percent = 5.0;
        b.mem_free = 1;
        let mut c = up(Some("STOPPED"), T0);
        c.cpu_percent = 50.0;
        c.mem_free = 9;
        let mut x = up(Some("STOPPED"), T0);
        x.cpu_percent = 90.0;
        x.mem_free = 5;
        let f = facts(&[("lab:x", x), ("lab:b", b), ("lab:c", c)]);
        let first = |a: &App| {
            plan(a, &mut Memory::default(), &f, Ok(()), T0).steps[0]
                .host
                .clone()
        };
        assert_eq!(first(&a), "lab:b", "config: the tag's hosts by id");
        a.strategy = Strategy::LessLoaded;
        assert_eq!(first(&a), "lab:b");
        a.strategy = Strategy::MostMemoryFree;
        assert_eq!(first(&a), "lab:c");
    }

    #[test]
    fn waits_for_unknown_candidates_then_for_start_after() {
        let a = app(&["lab:a", "lab:b"], 1);
        let mut m = Memory::default();
        let mut f = facts(&[("lab:b", up(Some("STOPPED"), T0))]);
        let p = plan(&a, &mut m, &f, Ok(()), T0 + S);
        assert!(p.steps.is_empty() && p.state == AppState::Starting, "{p:?}");
        let p = plan(&a, &mut m, &f, Ok(()), T0 + 10 * S);
        assert_eq!(steps(&p), [(Verb::Start, "lab:b")], "down_after passed");
        f.hosts.insert("lab:a".into(), up(Some("STOPPED"), T0));
        let p = plan(&a, &mut m, &f, Err("db (0 of 1 running)".into()), T0 + S);
        assert!(p.steps.is_empty());
        assert_eq!(p.state, AppState::Stopped);
        assert_eq!(
            p.problem.as_deref(),
            Some("waiting for start_after: db (0 of 1 running)")
        );
    }

    #[test]
    fn restarts_elsewhere_after_down_after_and_conciliates_the_returning_copy() {
        let a = app(&["lab:a", "lab:b"], 1);
        let mut m = Memory::default();
        let mut f = facts(&[
            ("lab:a", up(Some("RUNNING"), T0)),
            ("lab:b", up(Some("STOPPED"), T0)),
        ]);
        let p = plan(&a, &mut m, &f, Ok(()), T0);
        assert!(p.steps.is_empty());
        assert_eq!(
            (p.state, p.running_on.clone()),
            (AppState::Running, vec!["lab:a".to_owned()])
        );
        // a is lost (its supervisord still runs the copy): waited for down_after.
        f.hosts
            .insert("lab:a".into(), down(up(Some("RUNNING"), T0)));
        let p = plan(&a, &mut m, &f, Ok(()), T0 + 9 * S);
        assert!(p.steps.is_empty(), "{p:?}");
        assert_eq!(p.state, AppState::Starting);
        let p = plan(&a, &mut m, &f, Ok(()), T0 + 10 * S);
        assert_eq!(steps(&p), [(Verb::Start, "lab:b")]);
        assert_eq!(
            p.steps[0].reason,
            "lab:a down for 10 s: restart elsewhere (0 of 1 running)"
        );
        m.pending.insert("lab:b".into(), T0 + 10 * S);
        f.hosts
            .insert("lab:b".into(), up(Some("RUNNING"), T0 + 11 * S));
        let p = plan(&a, &mut m, &f, Ok(()), T0 + 11 * S);
        assert!(p.steps.is_empty());
        // a comes back running its copy: the returning copy stops.
        f.hosts
            .insert("lab:a".into(), up(Some("RUNNING"), T0 + 20 * S));
        let p = plan(&a, &mut m, &f, Ok(()), T0 + 20 * S);
        assert_eq!(steps(&p), [(Verb::Stop, "lab:a")]);
        assert!(
            p.steps[0]
                .reason
                .starts_with("conciliation (stop_returning): lab:a came back")
        );
        // Once stopped, nothing more.
        f.hosts
            .insert("lab:a".into(), up(Some("STOPPED"), T0 + 21 * S));
        let p = plan(&a, &mut m, &f, Ok(()), T0 + 21 * S);
        assert!(p.steps.is_empty() && p.state == AppState::Running, "{p:?}");
    }

    #[test]
    fn conciliation_policies_and_other_on_host_down() {
        let mut a = app(&["lab:a", "lab:b"], 1);
        a.conciliation = Conciliation::StopReplacement;
        let mut m = Memory::default();
        let mut f = facts(&[
            ("lab:a", down(up(Some("RUNNING"), T0))),
            ("lab:b", up(Some("STOPPED"), T0 + 10 * S)),
        ]);
        assert_eq!(
            steps(&plan(&a, &mut m, &f, Ok(()), T0 + 10 * S)),
            [(Verb::Start, "lab:b")]
        );
        f.hosts
            .insert("lab:b".into(), up(Some("RUNNING"), T0 + 11 * S));
        f.hosts
            .insert("lab:a".into(), up(Some("RUNNING"), T0 + 12 * S));
        let p = plan(&a, &mut m, &f, Ok(()), T0 + 12 * S);
        assert_eq!(steps(&p), [(Verb::Stop, "lab:b")], "{p:?}");

        a.conciliation = Conciliation::Keep;
        let mut m = Memory::default();
        f.hosts
            .insert("lab:a".into(), down(up(Some("RUNNING"), T0)));
        f.hosts.insert("lab:b".into(), up(Some("STOPPED"), T0));
        assert_eq!(plan(&a, &mut m, &f, Ok(()), T0 + 10 * S).steps.len(), 1);
        f.hosts
            .insert("lab:b".into(), up(Some("RUNNING"), T0 + 11 * S));
        f.hosts
            .insert("lab:a".into(), up(Some("RUNNING"), T0 + 12 * S));
        let p = plan(&a, &mut m, &f, Ok(()), T0 + 12 * S);
        assert!(p.steps.is_empty());
        assert!(
            p.problem
                .is_some_and(|p| p.starts_with("conciliation (keep)"))
        );

        a.on_host_down = OnHostDown::Keep;
        let mut m = Memory::default();
        f.hosts
            .insert("lab:a".into(), down(up(Some("RUNNING"), T0)));
        f.hosts.insert("lab:b".into(), up(Some("STOPPED"), T0));
        let p = plan(&a, &mut m, &f, Ok(()), T0 + 60 * S);
        assert!(p.steps.is_empty());
        assert_eq!(p.state, AppState::Degraded);
        assert_eq!(
            p.problem.as_deref(),
            Some("lab:a down longer than down_after (10 s): keep waits for it")
        );

        a.on_host_down = OnHostDown::StopAll;
        a.instances = 2;
        let mut m = Memory::default();
        f.hosts.insert("lab:b".into(), up(Some("RUNNING"), T0));
        let p = plan(&a, &mut m, &f, Ok(()), T0 + 60 * S);
        assert_eq!(steps(&p), [(Verb::Stop, "lab:b")]);
        assert!(!m.wanted);
        assert_eq!(p.state, AppState::Stopped);
    }

    #[test]
    fn no_candidate_left_is_a_problem_with_each_reason() {
        let a = app(&["lab:a", "lab:b", "lab:c", "lab:d"], 1);
        let mut m = Memory::default();
        m.failed.insert("lab:d".into(), (T0, "spawn error".into()));
        let mut nosup = up(None, T0);
        nosup.programs = None;
        let f = facts(&[
            ("lab:a", down(up(Some("STOPPED"), T0))),
            ("lab:b", nosup),
            ("lab:c", up(None, T0)),
            ("lab:d", up(Some("FATAL"), T0)),
        ]);
        let p = plan(&a, &mut m, &f, Ok(()), T0 + S);
        assert!(p.steps.is_empty());
        assert_eq!(p.state, AppState::Degraded);
        assert_eq!(
            p.problem.as_deref(),
            Some(
                "no candidate left for 1 more instance(s) of 1: lab:a down, lab:b's agent reads \
                 no supervisord, lab:c has no program web:api, lab:d: start failed: spawn error"
            )
        );
        // The failure's cooldown passes: d is tried again.
        let p = plan(&a, &mut m, &f, Ok(()), T0 + FAILED_COOLDOWN_MS);
        assert_eq!(steps(&p), [(Verb::Start, "lab:d")]);
    }

    #[test]
    fn stopped_on_purpose_stops_every_copy_and_extras_stop_the_least_preferred() {
        let a = app(&["lab:a", "lab:b"], 1);
        let mut m = Memory {
            wanted: false,
            ..Memory::default()
        };
        let f = facts(&[
            ("lab:a", up(Some("RUNNING"), T0)),
            ("lab:b", up(Some("STARTING"), T0)),
        ]);
        let p = plan(&a, &mut m, &f, Ok(()), T0);
        assert_eq!(steps(&p), [(Verb::Stop, "lab:a"), (Verb::Stop, "lab:b")]);
        assert_eq!(p.state, AppState::Stopped);
        m.wanted = true;
        let p = plan(&a, &mut m, &f, Ok(()), T0);
        assert_eq!(steps(&p), [(Verb::Stop, "lab:b")]);
        assert_eq!(p.running, 1);
    }
}
