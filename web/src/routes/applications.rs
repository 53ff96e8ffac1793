//! The fleet's programs (`web/PROTOCOL.md`, "Applications"): `GET /api/v1/applications` lists
//! every supervisord group and program seen on any host's latest sample, with its state on
//! each host and its CPU and memory summed from the process lists (the sample's, or the agent's
//! sums of its latest one, which every sample carries), beside the declared
//! applications of [`crate::acting::ApplicationsService`] (viewers too); and, for admins,
//! `POST /api/v1/programs/{name}/{verb}` starts, stops or restarts a program on a selection
//! of hosts (or on every host that has it) with one result per host, through the hosts'
//! agents ([`crate::acting::ProgramsService`]), logged and audited as one action.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use smon_api::actions::Selection;
use smon_api::applications::{ApplicationsAnswer, FleetProgram, ProgramOnHost};
use smon_api::programs::{ProgramGroupAnswer, ProgramResult};
use smon_proto::{Program, Snapshot};

use crate::acting::ProgramVerb;
use crate::error::ApiError;
use crate::routes::actions::{on_each, selected};
use crate::routes::record;
use crate::security::login::{Admin, Reader, log_safe};
use crate::security::net::Client;
use crate::state::Web;

type Shared = State<Arc<Web>>;

/// Longest program name a route takes (`group:name`).
const MAX_NAME: usize = 200;

/// The routes under `base`.
///
/// `GET /api/v1/applications` is sent gzip-compressed (fastest level) to a client that accepts
/// it: at 500 hosts x 20 programs it is 1.8 MiB of JSON, read again every 3 s by each open
/// page, and 0.4 MiB compressed (`smon-bench applications`). It is safe from BREACH: the answer carries no secret
/// (program states, pids, descriptions and sums; the session travels in a request cookie, and
/// smon's CSRF defence is the Origin/Sec-Fetch-Site check, with no token in any body), so
/// there is nothing for text an attacker places in it to be guessed against. No other API
/// route is compressed.
pub(crate) fn routes(app: axum::Router<Arc<Web>>, base: &str) -> axum::Router<Arc<Web>> {
    use axum::routing::{get, post};
    use tower_http::compression::{CompressionLayer, CompressionLevel};
    let p = |s: &str| format!("{base}/api/v1{s}");
    let gzip = CompressionLayer::new()
        .gzip(true)
        .quality(CompressionLevel::Fastest);
    app.route(&p("/applications"), get(list).layer(gzip))
        .route(&p("/programs/{name}/{verb}"), post(act))
}

/// `group:name` of a program.
fn key(p: &Program) -> String {
    format!("{}:{}", p.group, p.name)
}

/// One host's programs and the CPU and memory of their processes (summed here from the
/// sample's process list, or else as the agent summed them), added into `fleet`.
fn add_host(
    fleet: &mut BTreeMap<(String, String), FleetProgram>,
    host: &str,
    status: &str,
    snap: &Snapshot,
) {
    let Some(progs) = snap.programs.as_ref() else {
        return;
    };
    let with_processes = !snap.processes.is_empty();
    let mut sums: HashMap<&str, (f32, u64)> = HashMap::new();
    for q in snap.processes.iter().filter(|q| !q.program.is_empty()) {
        let s = sums.entry(q.program.as_str()).or_default();
        s.0 += q.cpu_percent;
        s.1 += q.memory_bytes;
    }
    for pr in &progs.programs {
        // The process list, where the sample has it (a host being watched), is summed here;
        // else the agent's own sums of its latest process scan, carried in every sample.
        let (cpu, mem) = if with_processes {
            let (c, m) = sums.get(key(pr).as_str()).copied().unwrap_or_default();
            (Some(c), Some(m))
        } else {
            (pr.cpu_percent, pr.memory_bytes)
        };
        let f = fleet
            .entry((pr.group.clone(), pr.name.clone()))
            .or_insert_with(|| FleetProgram {
                group: pr.group.clone(),
                name: pr.name.clone(),
                ..FleetProgram::default()
            });
        if pr.state == "RUNNING" {
            f.running += 1;
        }
        f.cpu_percent += cpu.unwrap_or(0.0);
        f.memory_bytes += mem.unwrap_or(0);
        f.hosts.push(ProgramOnHost {
            host: host.to_owned(),
            host_status: status.to_owned(),
            state: pr.state.clone(),
            pid: pr.pid,
            uptime_s: pr.uptime_s,
            description: pr.description.clone(),
            cpu_percent: cpu,
            memory_bytes: mem,
        });
    }
}

/// The fleet's programs in `snaps` (host id, host status, latest sample), sorted by group and
/// name, hosts by id; `managed` maps `group:name` to the declared application running it.
fn fleet_programs<'a>(
    snaps: impl Iterator<Item = (&'a str, &'a str, &'a Snapshot)>,
    managed: &HashMap<String, String>,
) -> Vec<FleetProgram> {
    let mut fleet = BTreeMap::new();
    for (host, status, snap) in snaps {
        add_host(&mut fleet, host, status, snap);
    }
    fleet
        .into_values()
        .map(|mut f| {
            f.hosts.sort_by(|a, b| a.host.cmp(&b.host));
            f.application = managed.get(&format!("{}:{}", f.group, f.name)).cloned();
            f
        })
        .collect()
}

async fn list(State(w): Shared, Reader(p): Reader) -> Result<impl IntoResponse, ApiError> {
    let declared = w
        .applications
        .as_ref()
        .map(|a| a.declared())
        .unwrap_or_default();
    let managed: HashMap<String, String> = declared
        .iter()
        .map(|d| (d.program.clone(), d.name.clone()))
        .collect();
    // The visibility rules hide nothing of a program (its state, pid, uptime, description
    // and process sums): they apply to what is listed beside it, which is not here. They
    // still run, so that a rule added later for programs applies here too.
    let vis = w.security.http.auth.visibility(p.class());
    let mut snaps: Vec<(String, &'static str, Snapshot)> = Vec::new();
    w.store().for_each_host(|row, _, latest| {
        let Some(snap) = latest.filter(|s| s.programs.is_some()) else {
            return;
        };
        // Only the parts read are copied, under the lock: the programs and their processes.
        let mut s = Snapshot {
            programs: snap.programs.clone(),
            processes: snap
                .processes
                .iter()
                .filter(|q| !q.program.is_empty())
                .cloned()
                .collect(),
            ..Snapshot::default()
        };
        // Whether the list was at hand, not only the programs' processes.
        if !snap.processes.is_empty() && s.processes.is_empty() {
            s.processes.push(smon_proto::Process::default());
        }
        vis.apply(&mut s);
        snaps.push((row.id.clone(), row.status.as_str(), s));
    });
    let programs = fleet_programs(
        snaps.iter().map(|(h, s, snap)| (h.as_str(), *s, snap)),
        &managed,
    );
    Ok(Json(ApplicationsAnswer { programs, declared }))
}

/// Whether the program `name` (`group:name`, `group:*`, or `name` outside any group) names
/// `p`.
fn names(name: &str, p: &Program) -> bool {
    match name.split_once(':') {
        Some((g, "*")) => p.group == g,
        Some((g, n)) => p.group == g && p.name == n,
        None => p.group == name && p.name == name,
    }
}

/// Refuses a name no program can have, naming the field.
fn check_name(name: &str) -> Result<(), ApiError> {
    let bad = name.is_empty()
        || name.len() > MAX_NAME
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/');
    if bad {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "name: '{}' is not a program: give group:name, group:* or name",
                log_safe(name)
            ),
        ));
    }
    Ok(())
}

/// The hosts whose latest sample lists the program `name`, sorted.
fn hosts_with(w: &Web, name: &str) -> Vec<String> {
    let mut ids = Vec::new();
    w.store().for_each_host(|row, _, latest| {
        let has = latest
            .and_then(|s| s.programs.as_ref())
            .is_some_and(|p| p.programs.iter().any(|pr| names(name, pr)));
        if has {
            ids.push(row.id.clone());
        }
    });
    ids.sort();
    ids
}

async fn act(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path((name, verb)): Path<(String, String)>,
    body: Result<Json<Selection>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let verb: ProgramVerb = verb
        .parse()
        .map_err(|e: String| ApiError::new(StatusCode::NOT_FOUND, log_safe(&e).to_string()))?;
    check_name(&name)?;
    let Json(sel) = body.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "bad JSON body ({}): expected {{}}, {{\"hosts\": [..]}}, {{\"tag\": ..}} or {{\"cluster\": ..}}",
                e.body_text()
            ),
        )
    })?;
    let programs = w.programs.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "program control is served by the aggregator only".into(),
        )
    })?;
    let action = format!("program.{}", verb.as_str());
    let everywhere = sel.hosts.is_none() && sel.tag.is_none() && sel.cluster.is_none();
    let ids = if everywhere {
        let ids = hosts_with(&w, &name);
        if ids.is_empty() {
            let e = ApiError::not_found(format!(
                "no host has the program '{}' (in its latest sample)",
                log_safe(&name)
            ));
            let reason = e.reason().to_owned();
            record::audit::<()>(&w, &p, &client, &action, &name, Vec::new(), reason, None).await;
            return Err(e);
        }
        ids
    } else {
        let actions = w.actions.clone().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "host selections are served by the aggregator only".into(),
            )
        })?;
        match selected(actions.as_ref(), &sel) {
            Ok(ids) => ids,
            Err(e) => {
                let asked = sel.hosts.clone().unwrap_or_default();
                let reason = e.reason().to_owned();
                record::audit::<()>(&w, &p, &client, &action, &name, asked, reason, None).await;
                return Err(e);
            }
        }
    };
    let who = log_safe(p.actor());
    let results: Vec<ProgramResult> = on_each(ids, |id| {
        let s = programs.clone();
        let name = name.clone();
        async move { s.program(&id, verb, &name).await }
    })
    .await
    .into_iter()
    .map(|(id, r)| match r {
        Ok(r) => {
            record::log_host(&action, &who, &id, &name, Ok(&r.message));
            r
        }
        Err(e) => {
            record::log_host(&action, &who, &id, &name, Err(&e));
            ProgramResult {
                host: id,
                ok: false,
                message: e.to_string(),
                programs: Vec::new(),
            }
        }
    })
    .collect();
    let outcome = record::group_outcome(results.iter().map(|r| r.ok));
    let hosts = results.iter().map(|r| r.host.clone()).collect();
    record::audit(
        &w,
        &p,
        &client,
        &action,
        &name,
        hosts,
        outcome,
        Some(&results),
    )
    .await;
    Ok(Json(ProgramGroupAnswer {
        program: name.clone(),
        verb,
        results,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use smon_proto::{Process, Programs};

    fn prog(group: &str, name: &str, state: &str, pid: u32) -> Program {
        Program {
            group: group.into(),
            name: name.into(),
            state: state.into(),
            pid,
            ..Program::default()
        }
    }

    fn proc_of(program: &str, cpu: f32, mem: u64) -> Process {
        Process {
            program: program.into(),
            cpu_percent: cpu,
            memory_bytes: mem,
            ..Process::default()
        }
    }

    #[test]
    fn programs_are_merged_across_hosts_with_sums() {
        let a = Snapshot {
            programs: Some(Programs {
                programs: vec![
                    prog("web", "api", "RUNNING", 10),
                    prog("db", "db", "RUNNING", 11),
                ],
                ..Programs::default()
            }),
            processes: vec![
                proc_of("web:api", 10.0, 100),
                proc_of("web:api", 5.0, 50),
                proc_of("", 99.0, 999),
            ],
            ..Snapshot::default()
        };
        // A summary: no process list, so no figures for this host.
        let b = Snapshot {
            programs: Some(Programs {
                programs: vec![prog("web", "api", "STOPPED", 0)],
                ..Programs::default()
            }),
            ..Snapshot::default()
        };
        let managed = HashMap::from([("web:api".to_owned(), "shop".to_owned())]);
        let f = fleet_programs(
            [("lab:b", "down", &b), ("lab:a", "up", &a)].into_iter(),
            &managed,
        );
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].group.as_str(), f[0].application.as_deref()),
            ("db", None)
        );
        let api = &f[1];
        assert_eq!(api.application.as_deref(), Some("shop"));
        assert_eq!(
            (api.running, api.cpu_percent, api.memory_bytes),
            (1, 15.0, 150)
        );
        let hosts: Vec<_> = api.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(hosts, ["lab:a", "lab:b"]);
        assert_eq!(api.hosts[0].cpu_percent, Some(15.0));
        assert_eq!(
            (
                api.hosts[1].state.as_str(),
                api.hosts[1].host_status.as_str()
            ),
            ("STOPPED", "down")
        );
        assert_eq!(api.hosts[1].memory_bytes, None);
    }

    #[test]
    fn a_summary_gives_the_agents_own_sums() {
        let mut api = prog("web", "api", "RUNNING", 10);
        api.cpu_percent = Some(7.5);
        api.memory_bytes = Some(4096);
        let summary = Snapshot {
            programs: Some(Programs {
                programs: vec![api.clone()],
                ..Programs::default()
            }),
            ..Snapshot::default()
        };
        // A watched host: its process list is summed, fresher than the agent's figures.
        let watched = Snapshot {
            processes: vec![proc_of("web:api", 1.0, 10)],
            ..summary.clone()
        };
        let f = fleet_programs(
            [("lab:a", "up", &summary), ("lab:b", "up", &watched)].into_iter(),
            &HashMap::new(),
        );
        let h = &f[0].hosts;
        assert_eq!(
            (h[0].cpu_percent, h[0].memory_bytes),
            (Some(7.5), Some(4096))
        );
        assert_eq!((h[1].cpu_percent, h[1].memory_bytes), (Some(1.0), Some(10)));
        assert_eq!((f[0].cpu_percent, f[0].memory_bytes), (8.5, 4106));
    }

    #[test]
    fn names_match_programs_and_groups() {
        let p = prog("web", "api", "RUNNING", 1);
        assert!(names("web:api", &p) && names("web:*", &p));
        assert!(!names("web:db", &p) && !names("web", &p) && !names("db:*", &p));
        assert!(names("solo", &prog("solo", "solo", "RUNNING", 1)));
        assert!(check_name("web:api").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(201)] {
            assert_eq!(
                check_name(bad).expect_err(bad).reason().split(':').next(),
                Some("name")
            );
        }
    }
}
