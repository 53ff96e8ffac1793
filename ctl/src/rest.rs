//! `smonctl hosts | status | wake | reboot | shutdown | check | audit | programs | start |
//! stop | restart | tail | signal | app`: one-shot commands
//! over the aggregator's REST API with an API token (`Authorization: Bearer`), for people and
//! scripts. Each prints a table or lines (or the server's JSON with `--json`) and exits with
//! a status a script can branch on ([`Exit`]).
//!
//! Host arguments are ids (`cluster:name`) or bare names when one cluster has that name
//! ([`resolve`]). The action routes (`POST /api/v1/actions/{action}`) are the shapes agreed
//! for issue 14; their wire types live here until they land in `smon-api` with the routes.
//! The formatting and the choice of exit status are pure functions, unit-tested; the I/O is
//! [`smon_api::Client`].

use smon_api::Client;
use smon_api::actions::Selection;
use smon_api::applications::{AppActionResult, DeclaredApp};
use smon_api::audit::AuditEntry;
use smon_api::client::ClientError;
use smon_api::programs::{ProgramResult, ProgramVerb, ProgramsAnswer, SignalKind, SignalResult};
use smon_api::wire::{HostDetail, HostRow};

use crate::fmt::{human_bytes, pct, terminal_safe, uptime};
use smon_runtime::cli::utc_time;

/// The exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done (every host acted on).
    Ok = 0,
    /// Some hosts failed (or the server failed).
    Failed = 1,
    /// A wrong command line: an unknown or ambiguous host, a missing argument.
    Usage = 2,
    /// The server refused the token or its role (401, 403, 429).
    Auth = 3,
    /// Nothing answered at the URL.
    Unreachable = 4,
}

/// A command that did not work: what to say and how to exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit status.
    pub exit: Exit,
    /// A sentence saying what went wrong and what to do.
    pub message: String,
}

impl Failure {
    fn new(exit: Exit, message: String) -> Self {
        Self { exit, message }
    }
}

/// How to make a token, said in every message about a missing or refused one.
pub const MAKE_TOKEN: &str =
    "create one with `smon-aggregator token create --name me --role admin` on the aggregator";

/// What a refused or failed call means for the user, given whether a token was sent.
pub fn failure(e: &ClientError, url: &str, with_token: bool) -> Failure {
    match e {
        ClientError::Transport { source, .. } => Failure::new(
            Exit::Unreachable,
            format!(
                "cannot reach the server at {url}: {}. Is smon-aggregator running there? Set \
                 SMON_URL or --url to its dashboard address",
                root_cause(source)
            ),
        ),
        ClientError::Refused {
            status: 401,
            reason,
            ..
        } if with_token => Failure::new(
            Exit::Auth,
            format!(
                "the server refused the token ({reason}): check SMON_TOKEN, --token or \
                 --token-file, or {MAKE_TOKEN}"
            ),
        ),
        ClientError::Refused { status: 401, .. } => Failure::new(
            Exit::Auth,
            format!("the server needs a token: set SMON_TOKEN or --token: {MAKE_TOKEN}"),
        ),
        ClientError::Refused {
            status: 403,
            reason,
            ..
        } => Failure::new(
            Exit::Auth,
            format!("refused: {reason}; this needs an admin token: {MAKE_TOKEN}"),
        ),
        ClientError::Refused {
            status: 429,
            reason,
            ..
        } => Failure::new(Exit::Auth, format!("refused: {reason}")),
        ClientError::BadUrl { .. } => Failure::new(Exit::Usage, e.to_string()),
        other => Failure::new(Exit::Failed, other.to_string()),
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The ids of `args` among `rows`: an id (`cluster:name`) as it is; a bare name when exactly
/// one host has it. Unknown or ambiguous names are a usage error listing the candidates.
pub fn resolve(args: &[String], rows: &[HostRow]) -> Result<Vec<String>, Failure> {
    let mut ids = Vec::with_capacity(args.len());
    let mut problems = Vec::new();
    for a in args {
        if rows.iter().any(|r| &r.id == a) {
            ids.push(a.clone());
            continue;
        }
        let named: Vec<&str> = rows
            .iter()
            .filter(|r| &r.name == a)
            .map(|r| r.id.as_str())
            .collect();
        match named[..] {
            [one] => ids.push(one.to_owned()),
            [] => {
                let close: Vec<&str> = rows
                    .iter()
                    .filter(|r| r.id.contains(a.as_str()))
                    .map(|r| r.id.as_str())
                    .take(10)
                    .collect();
                problems.push(if close.is_empty() {
                    format!("no host '{}' (see `smonctl hosts`)", terminal_safe(a))
                } else {
                    format!(
                        "no host '{}'; did you mean: {}",
                        terminal_safe(a),
                        close.join(", ")
                    )
                });
            }
            _ => problems.push(format!(
                "'{}' names several hosts: {}; give the id",
                terminal_safe(a),
                named.join(", ")
            )),
        }
    }
    if problems.is_empty() {
        ids.dedup();
        Ok(ids)
    } else {
        Err(Failure::new(Exit::Usage, problems.join("; ")))
    }
}

/// The overview as a table: id, status, CPU, memory, address.
pub fn hosts_table(rows: &[HostRow]) -> String {
    let w = rows.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let mut out = format!(
        "{:<w$}  {:<7}  {:>6}  {:>6}  ADDRESS\n",
        "ID", "STATUS", "CPU", "MEM"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<w$}  {:<7}  {:>6}  {:>6}  {}\n",
            terminal_safe(&r.id),
            r.status.as_str(),
            r.cpu_percent.map(pct).unwrap_or_else(|| "-".into()),
            r.mem_percent.map(pct).unwrap_or_else(|| "-".into()),
            terminal_safe(&r.address),
        ));
    }
    out
}

/// One host in detail, a `field: value` per line.
pub fn status_text(d: &HostDetail) -> String {
    let r = &d.host;
    let mut lines: Vec<(&str, String)> = vec![
        ("id", r.id.clone()),
        ("status", r.status.as_str().into()),
        ("address", r.address.clone()),
    ];
    let mut opt = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            lines.push((k, v));
        }
    };
    opt("hostname", r.hostname.clone());
    opt("os", r.os.clone());
    opt("kernel", r.kernel.clone());
    opt("cores", r.cpu_cores.map(|c| c.to_string()));
    opt("uptime", r.uptime_s.map(uptime));
    opt("cpu", r.cpu_percent.map(pct));
    opt(
        "load",
        r.load.map(|l| format!("{} {} {}", l[0], l[1], l[2])),
    );
    opt(
        "memory",
        match (r.mem_percent, r.mem_used_bytes, r.mem_total_bytes) {
            (Some(p), Some(u), Some(t)) => Some(format!(
                "{} ({} / {})",
                pct(p),
                human_bytes(u),
                human_bytes(t)
            )),
            (Some(p), _, _) => Some(pct(p)),
            _ => None,
        },
    );
    opt(
        "disk",
        r.disk_max_percent.map(|p| {
            format!(
                "{} ({})",
                pct(p),
                r.disk_max_mount.clone().unwrap_or_default()
            )
        }),
    );
    opt(
        "gpus",
        (!r.gpus.is_empty()).then(|| r.gpus.len().to_string()),
    );
    opt("alerts", (r.alerts > 0).then(|| r.alerts.to_string()));
    opt("tags", (!r.tags.is_empty()).then(|| r.tags.join(", ")));
    opt("last error", r.last_error.clone());
    lines
        .iter()
        .map(|(k, v)| format!("{k:<11} {}\n", terminal_safe(v)))
        .collect()
}

pub use smon_api::actions::{ActionResult, GroupAnswer};

/// The hosts of `POST /api/v1/actions/{action}`, as the command line names them (sent as a
/// [`Selection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// These host ids.
    Hosts(Vec<String>),
    /// Every host with this tag.
    Tag(String),
    /// Every host of this cluster.
    Cluster(String),
}

/// One line per host (`lab:n1  ok      magic packet sent...`), and whether all went well.
pub fn action_lines(a: &GroupAnswer) -> (String, Exit) {
    let w = a.results.iter().map(|r| r.host.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in &a.results {
        out.push_str(&format!(
            "{:<w$}  {:<6}  {}\n",
            terminal_safe(&r.host),
            if r.ok { "ok" } else { "FAILED" },
            terminal_safe(&r.message)
        ));
    }
    let exit = if a.results.iter().all(|r| r.ok) {
        Exit::Ok
    } else {
        Exit::Failed
    };
    (out, exit)
}

/// The audit records as a table, newest first: time (UTC), actor, action, what, outcome.
pub fn audit_table(entries: &[AuditEntry]) -> String {
    let mut out = format!(
        "{:<19}  {:<16}  {:<20}  {:<24}  OUTCOME\n",
        "TIME (UTC)", "ACTOR", "ACTION", "TARGET"
    );
    for e in entries {
        let ev = &e.event;
        let what = if ev.hosts.is_empty() {
            ev.target.clone()
        } else {
            ev.hosts.join(",")
        };
        out.push_str(&format!(
            "{:<19}  {:<16}  {:<20}  {:<24}  {}\n",
            utc_time(ev.at_ms),
            terminal_safe(&ev.actor),
            terminal_safe(&ev.action),
            terminal_safe(&what),
            terminal_safe(&ev.outcome)
        ));
    }
    out
}

/// A signal name as given on the command line (`TERM`, `term`, `SIGTERM`...), or a usage
/// error naming the choices.
pub fn signal_kind(s: &str) -> Result<SignalKind, Failure> {
    let up = s.to_ascii_uppercase();
    match up.strip_prefix("SIG").unwrap_or(&up) {
        "TERM" => Ok(SignalKind::Term),
        "INT" => Ok(SignalKind::Int),
        "KILL" => Ok(SignalKind::Kill),
        "HUP" => Ok(SignalKind::Hup),
        _ => Err(Failure::new(
            Exit::Usage,
            format!("no signal '{}': TERM, INT, KILL or HUP", terminal_safe(s)),
        )),
    }
}

/// A host's programs as a table: name, state, pid, uptime, CPU, memory, description; the
/// supervisor's error (or its absence) on a line of its own.
pub fn programs_table(a: &ProgramsAnswer) -> String {
    let mut out = String::new();
    if !a.supervisor {
        out.push_str(&format!(
            "{}: its agent reads no supervisord (set control.supervisor in its config)\n",
            terminal_safe(&a.host)
        ));
        return out;
    }
    if let Some(e) = &a.error {
        out.push_str(&format!("supervisor error: {}\n", terminal_safe(e)));
    }
    let names: Vec<String> = a
        .programs
        .iter()
        .map(|p| format!("{}:{}", p.group, p.name))
        .collect();
    let w = names.iter().map(String::len).max().unwrap_or(4).max(4);
    out.push_str(&format!(
        "{:<w$}  {:<8}  {:>7}  {:>10}  {:>6}  {:>8}  DESCRIPTION\n",
        "NAME", "STATE", "PID", "UPTIME", "CPU", "MEM"
    ));
    for (p, n) in a.programs.iter().zip(&names) {
        out.push_str(&format!(
            "{:<w$}  {:<8}  {:>7}  {:>10}  {:>6}  {:>8}  {}\n",
            terminal_safe(n),
            terminal_safe(&p.state),
            if p.pid > 0 {
                p.pid.to_string()
            } else {
                "-".into()
            },
            if p.pid > 0 {
                uptime(p.uptime_s)
            } else {
                "-".into()
            },
            p.cpu_percent.map(pct).unwrap_or_else(|| "-".into()),
            p.memory_bytes
                .map(human_bytes)
                .unwrap_or_else(|| "-".into()),
            terminal_safe(if p.spawnerr.is_empty() {
                &p.description
            } else {
                &p.spawnerr
            }),
        ));
    }
    out
}

/// A program action's answer: one line per program acted on (`jobs:a  STOPPED  ...`).
pub fn program_lines(r: &ProgramResult) -> String {
    let mut out = String::new();
    for p in &r.programs {
        out.push_str(&format!(
            "{}:{}  {}  {}\n",
            terminal_safe(&p.group),
            terminal_safe(&p.name),
            terminal_safe(&p.state),
            terminal_safe(&p.description)
        ));
    }
    if out.is_empty() {
        out = format!("{}\n", terminal_safe(&r.message));
    }
    out
}

/// The declared applications as a table: name, state, running/declared, where, problem.
pub fn apps_table(apps: &[DeclaredApp]) -> String {
    if apps.is_empty() {
        return "no application is declared (applications[] in config_app.json)\n".into();
    }
    let state = |a: &DeclaredApp| {
        serde_json::to_value(a.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let w = apps.iter().map(|a| a.name.len()).max().unwrap_or(0).max(4);
    let p = apps
        .iter()
        .map(|a| a.program.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let mut out = format!(
        "{:<w$}  {:<p$}  {:<8}  {:<7}  {}\n",
        "NAME", "PROGRAM", "STATE", "RUNNING", "ON"
    );
    for a in apps {
        out.push_str(&format!(
            "{:<w$}  {:<p$}  {:<8}  {:<7}  {}\n",
            terminal_safe(&a.name),
            terminal_safe(&a.program),
            state(a),
            format!("{}/{}", a.running_on.len(), a.instances),
            terminal_safe(&a.running_on.join(","))
        ));
        if let Some(why) = &a.problem {
            out.push_str(&format!("{:<w$}  problem: {}\n", "", terminal_safe(why)));
        }
    }
    out
}

/// An application action's answer: one line per decision (`web  start  lab:n1  ok  why`).
pub fn app_action_lines(r: &AppActionResult) -> String {
    let mut out = String::new();
    for d in &r.decisions {
        let host = if d.host.is_empty() { "-" } else { &d.host };
        out.push_str(&format!(
            "{:<7}  {:<24}  {}  ({})\n",
            terminal_safe(&d.action),
            terminal_safe(host),
            terminal_safe(&d.outcome),
            terminal_safe(&d.reason)
        ));
    }
    if out.is_empty() {
        out = format!(
            "{}: nothing to do\n",
            terminal_safe(&r.applications.join(", "))
        );
    }
    out
}

/// `GET /api/v1/hosts/{id}/programs`.
pub async fn programs(c: &Client, id: &str) -> Result<ProgramsAnswer, ClientError> {
    c.get_json(&["api", "v1", "hosts", id, "programs"], &[])
        .await
}

/// `POST /api/v1/hosts/{id}/programs/{name}/{verb}`.
pub async fn program(
    c: &Client,
    id: &str,
    name: &str,
    verb: ProgramVerb,
) -> Result<ProgramResult, ClientError> {
    c.post(
        &["api", "v1", "hosts", id, "programs", name, verb.as_str()],
        &serde_json::json!({}),
    )
    .await
}

/// `GET /api/v1/hosts/{id}/programs/{name}/log`.
pub async fn tail(
    c: &Client,
    id: &str,
    name: &str,
    stderr: bool,
    bytes: Option<u32>,
) -> Result<String, ClientError> {
    let mut q = vec![(
        "stream",
        if stderr { "stderr" } else { "stdout" }.to_owned(),
    )];
    if let Some(b) = bytes {
        q.push(("bytes", b.to_string()));
    }
    c.get_text(&["api", "v1", "hosts", id, "programs", name, "log"], &q)
        .await
}

/// `POST /api/v1/hosts/{id}/signal`.
pub async fn signal(
    c: &Client,
    id: &str,
    pid: u32,
    sig: SignalKind,
) -> Result<SignalResult, ClientError> {
    c.post(
        &["api", "v1", "hosts", id, "signal"],
        &serde_json::json!({"pid": pid, "signal": sig}),
    )
    .await
}

/// `GET /api/v1/hosts`.
pub async fn hosts(c: &Client) -> Result<Vec<HostRow>, ClientError> {
    c.hosts().await
}

/// `GET /api/v1/hosts/{id}`.
pub async fn status(c: &Client, id: &str) -> Result<HostDetail, ClientError> {
    c.host(id).await
}

/// `POST /api/v1/actions/{action}` for `targets`.
pub async fn act(c: &Client, action: &str, targets: &Targets) -> Result<GroupAnswer, ClientError> {
    let body = match targets {
        Targets::Hosts(h) => Selection {
            hosts: Some(h.clone()),
            ..Selection::default()
        },
        Targets::Tag(t) => Selection {
            tag: Some(t.clone()),
            ..Selection::default()
        },
        Targets::Cluster(c) => Selection {
            cluster: Some(c.clone()),
            ..Selection::default()
        },
    };
    c.post(&["api", "v1", "actions", action], &body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applications_table_and_action_lines() {
        use smon_api::applications::{AppState, Decision};
        let apps = vec![DeclaredApp {
            name: "web".into(),
            program: "api:api".into(),
            instances: 2,
            running_on: vec!["lab:n1".into()],
            state: AppState::Degraded,
            problem: Some("no candidate left: lab:n2 down".into()),
            ..Default::default()
        }];
        let t = apps_table(&apps);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "PROGRAM", "STATE", "RUNNING", "ON"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["web", "api:api", "degraded", "1/2", "lab:n1"]
        );
        assert_eq!(lines[2].trim(), "problem: no candidate left: lab:n2 down");
        assert!(apps_table(&[]).starts_with("no application is declared"));
        let r = AppActionResult {
            applications: vec!["web".into()],
            decisions: vec![Decision {
                at_ms: 1,
                action: "start".into(),
                host: "lab:n2".into(),
                reason: "1 of 2 running: start".into(),
                outcome: "ok".into(),
            }],
            ok: true,
        };
        assert_eq!(
            app_action_lines(&r).split_whitespace().collect::<Vec<_>>(),
            [
                "start", "lab:n2", "ok", "(1", "of", "2", "running:", "start)"
            ]
        );
        let none = AppActionResult {
            applications: vec!["web".into()],
            ..Default::default()
        };
        assert_eq!(app_action_lines(&none), "web: nothing to do\n");
    }

    fn row(cluster: &str, name: &str) -> HostRow {
        serde_json::from_value(serde_json::json!({
            "id": format!("{cluster}:{name}"), "cluster": cluster, "name": name,
            "address": "10.0.0.1:50051", "tags": [], "status": "up", "status_since_ms": 0,
            "last_seen_ms": null, "sample_unix_ms": null, "last_error": null, "hostname": null,
            "os": null, "kernel": null, "cpu_cores": null, "uptime_s": null,
            "cpu_percent": 12.5, "load": null, "mem_percent": 40.0, "mem_used_bytes": null,
            "mem_total_bytes": null, "swap_percent": null, "disk_max_percent": null,
            "disk_max_mount": null, "net_rx_bytes_per_s": null, "net_tx_bytes_per_s": null,
            "gpus": [], "users": null, "processes": null, "spark": [],
        }))
        .expect("a row")
    }

    #[test]
    fn bare_names_resolve_when_unique_and_say_the_candidates_otherwise() {
        let rows = [row("lab", "n1"), row("lab", "n2"), row("gpu", "n2")];
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resolve(&s(&["n1", "gpu:n2"]), &rows),
            Ok(s(&["lab:n1", "gpu:n2"]))
        );
        let e = resolve(&s(&["n2"]), &rows).expect_err("ambiguous");
        assert_eq!(e.exit, Exit::Usage);
        assert!(e.message.contains("lab:n2, gpu:n2"), "{}", e.message);
        let e = resolve(&s(&["n"]), &rows).expect_err("unknown");
        assert!(e.message.contains("did you mean: lab:n1"), "{}", e.message);
        let e = resolve(&s(&["zz"]), &rows).expect_err("unknown");
        assert!(e.message.contains("smonctl hosts"), "{}", e.message);
    }

    #[test]
    fn tables_and_lines() {
        let t = hosts_table(&[row("lab", "n1")]);
        assert!(t.starts_with("ID"), "{t}");
        assert!(
            t.contains("lab:n1") && t.contains("12.5%") && t.contains("40.0%"),
            "{t}"
        );
        let a = GroupAnswer {
            action: smon_api::actions::Action::Wake,
            results: vec![
                ActionResult {
                    host: "lab:n1".into(),
                    ok: true,
                    message: "sent".into(),
                },
                ActionResult {
                    host: "lab:n2".into(),
                    ok: false,
                    message: "no mac".into(),
                },
            ],
        };
        let (text, exit) = action_lines(&a);
        assert_eq!(exit, Exit::Failed);
        assert_eq!(text, "lab:n1  ok      sent\nlab:n2  FAILED  no mac\n");
    }

    #[test]
    fn refusals_map_to_exit_statuses_and_say_what_to_do() {
        let refused = |status| ClientError::Refused {
            url: "u".into(),
            status,
            reason: "why".into(),
        };
        let f = failure(&refused(401), "http://x/", false);
        assert_eq!(f.exit, Exit::Auth);
        assert!(
            f.message.contains("set SMON_TOKEN or --token"),
            "{}",
            f.message
        );
        assert!(f.message.contains("token create"), "{}", f.message);
        assert_eq!(failure(&refused(403), "u", true).exit, Exit::Auth);
        assert_eq!(failure(&refused(500), "u", true).exit, Exit::Failed);
    }

    #[test]
    fn signal_names_are_taken_in_any_case_with_or_without_sig() {
        assert_eq!(signal_kind("TERM"), Ok(SignalKind::Term));
        assert_eq!(signal_kind("sigkill"), Ok(SignalKind::Kill));
        assert_eq!(signal_kind("hup"), Ok(SignalKind::Hup));
        let e = signal_kind("STOP").expect_err("not offered");
        assert_eq!(e.exit, Exit::Usage);
        assert!(
            e.message.contains("TERM, INT, KILL or HUP"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_programs_table_shows_states_figures_and_the_supervisor_error() {
        let a: ProgramsAnswer = serde_json::from_value(serde_json::json!({
            "host": "lab:n1", "supervisor": true, "error": "supervisord not answering",
            "age_ms": 10, "processes": true, "programs": [
                {"group": "jobs", "name": "a", "state": "RUNNING", "pid": 42, "uptime_s": 61,
                 "description": "pid 42, uptime 0:01:01", "exit_status": 0,
                 "cpu_percent": 1.5, "memory_bytes": 2048},
                {"group": "broken", "name": "broken", "state": "FATAL", "pid": 0,
                 "uptime_s": 0, "description": "Exited too quickly",
                 "spawnerr": "can't find command 'foo'", "exit_status": 0}]
        }))
        .expect("an answer");
        let t = programs_table(&a);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "supervisor error: supervisord not answering");
        assert!(lines[1].starts_with("NAME"), "{t}");
        assert!(
            lines[2].starts_with("jobs:a") && lines[2].contains("RUNNING"),
            "{t}"
        );
        assert!(lines[2].contains(" 42 "), "{t}");
        assert!(
            lines[3].contains("FATAL") && lines[3].ends_with("can't find command 'foo'"),
            "{t}"
        );
        let none = ProgramsAnswer {
            supervisor: false,
            programs: Vec::new(),
            error: None,
            ..a
        };
        assert!(programs_table(&none).contains("control.supervisor"));
    }
}
