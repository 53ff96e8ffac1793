//! `applications[]` of `config_app.json`: the declared applications as written, and their
//! check into [`App`]s the reconciler runs. Every problem names its field
//! (`applications[1].start_after[0]`), quotes the value and says what is allowed.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use smon_api::applications::{OnHostDown, Strategy};
use smon_runtime::config::FieldError;

/// What to do when a host that was lost (down past `down_after`, its instance started
/// elsewhere) comes back still running its copy: a split network must not leave two copies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conciliation {
    /// Stop the copy on the host that came back (the replacement goes on serving).
    #[default]
    StopReturning,
    /// Stop the replacement started while the host was away (the original goes on).
    StopReplacement,
    /// Leave both running (logged; the application then runs more instances than declared).
    Keep,
}

impl Conciliation {
    /// Its name in the config and the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StopReturning => "stop_returning",
            Self::StopReplacement => "stop_replacement",
            Self::Keep => "keep",
        }
    }
}

fn one() -> u32 {
    1
}

fn thirty() -> u64 {
    30
}

/// One item of `applications[]`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Its name (1-63 of `A-Z a-z 0-9 . _ -`), unique.
    pub name: String,
    /// The supervisord program it runs, `group:name` (`name:name` for a program outside a
    /// group), as `supervisorctl status` shows it.
    pub program: String,
    /// Where it may run, in order of preference for `strategy: config`: host ids
    /// (`cluster:name`) of `monitor.clusters`, or `tag:x` for every host tagged `x` (hosts
    /// added in the UI too), sorted by id.
    pub candidates: Vec<String>,
    /// How many instances run (default 1).
    #[serde(default = "one")]
    pub instances: u32,
    /// Where instances are placed: `config` (candidate order, the default), `less_loaded`
    /// (lowest CPU use) or `most_memory_free`.
    #[serde(default)]
    pub strategy: Strategy,
    /// When a host running an instance is down for `down_after` seconds:
    /// `restart_elsewhere` (the default), `keep` (wait for it) or `stop_all`.
    #[serde(default)]
    pub on_host_down: OnHostDown,
    /// Seconds a host must be down before `on_host_down` applies (default 30, 1 to 86400).
    #[serde(default = "thirty")]
    pub down_after: u64,
    /// Applications that must be running before this one starts.
    #[serde(default)]
    pub start_after: Vec<String>,
    /// When a lost host comes back still running its copy: `stop_returning` (the default),
    /// `stop_replacement` or `keep`.
    #[serde(default)]
    pub conciliation: Conciliation,
}

/// A candidate, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// One host, by id.
    Host(String),
    /// Every host with this tag.
    Tag(String),
}

/// A declared application, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// Its name.
    pub name: String,
    /// Its program, `group:name`.
    pub program: String,
    /// Where it may run.
    pub candidates: Vec<Candidate>,
    /// How many instances run.
    pub instances: u32,
    /// Placement.
    pub strategy: Strategy,
    /// What a host down does.
    pub on_host_down: OnHostDown,
    /// How long a host must be down before `on_host_down` applies (ms).
    pub down_after_ms: u64,
    /// What must run first.
    pub start_after: Vec<String>,
    /// What a lost host's return does.
    pub conciliation: Conciliation,
}

fn problem(field: String, value: &str, what: &str) -> FieldError {
    FieldError {
        field,
        value: value.to_owned(),
        problem: what.to_owned(),
    }
}

/// Checks `applications[]` (`path` is its field path) against the fleet's host ids `ids`:
/// every problem, or the applications in configuration order.
pub fn check(
    list: &[AppConfig],
    path: &str,
    ids: &HashSet<String>,
    errs: &mut Vec<FieldError>,
) -> Vec<App> {
    let mut out = Vec::with_capacity(list.len());
    let before = errs.len();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, a) in list.iter().enumerate() {
        names.entry(a.name.as_str()).or_insert(i);
    }
    let mut programs: HashMap<&str, usize> = HashMap::new();
    for (i, a) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !crate::config::valid_name(&a.name) {
            errs.push(problem(
                format!("{at}.name"),
                &a.name,
                "must be 1-63 of A-Z a-z 0-9 . _ -",
            ));
        } else if names.get(a.name.as_str()) != Some(&i) {
            errs.push(problem(
                format!("{at}.name"),
                &a.name,
                "is used by another application",
            ));
        }
        let ok_program = a.program.split_once(':').is_some_and(|(g, n)| {
            !g.is_empty()
                && !n.is_empty()
                && !a.program.contains(['*', ' ', '\n', '\t'])
                && !n.contains(':')
        });
        if !ok_program {
            errs.push(problem(
                format!("{at}.program"),
                &a.program,
                "is not one supervisord program: write group:name as supervisorctl status shows \
                 it (name:name for a program outside a group; no '*')",
            ));
        } else if let Some(j) = programs.insert(&a.program, i) {
            errs.push(problem(
                format!("{at}.program"),
                &a.program,
                &format!("is run by {path}[{j}] too: two applications would fight over it"),
            ));
        }
        let mut candidates = Vec::new();
        if a.candidates.is_empty() {
            errs.push(problem(
                format!("{at}.candidates"),
                "[]",
                "lists no host: give host ids (cluster:name) or tag:x",
            ));
        }
        for (k, c) in a.candidates.iter().enumerate() {
            let f = format!("{at}.candidates[{k}]");
            let cand = match c.strip_prefix("tag:") {
                Some(t) if crate::config::valid_name(t) => Candidate::Tag(t.to_owned()),
                Some(_) => {
                    errs.push(problem(
                        f,
                        c,
                        "is not tag:x with x 1-63 of A-Z a-z 0-9 . _ -",
                    ));
                    continue;
                }
                None if ids.contains(c) => Candidate::Host(c.clone()),
                None => {
                    errs.push(problem(
                        f,
                        c,
                        "names no host of monitor.clusters (ids are cluster:name; hosts added \
                         in the UI are reached with tag:x)",
                    ));
                    continue;
                }
            };
            if candidates.contains(&cand) {
                errs.push(problem(f, c, "is listed twice"));
            } else {
                candidates.push(cand);
            }
        }
        let hosts_only = candidates.iter().all(|c| matches!(c, Candidate::Host(_)));
        if a.instances == 0 {
            errs.push(problem(
                format!("{at}.instances"),
                "0",
                "must be at least 1 (stop an application with its stop action)",
            ));
        } else if hosts_only && !candidates.is_empty() && a.instances as usize > candidates.len() {
            errs.push(problem(
                format!("{at}.instances"),
                &a.instances.to_string(),
                &format!(
                    "is more than its {} candidate host(s): one instance per host",
                    candidates.len()
                ),
            ));
        }
        if !(1..=86_400).contains(&a.down_after) {
            errs.push(problem(
                format!("{at}.down_after"),
                &a.down_after.to_string(),
                "must be 1 to 86400 seconds",
            ));
        }
        for (k, d) in a.start_after.iter().enumerate() {
            let f = format!("{at}.start_after[{k}]");
            if *d == a.name {
                errs.push(problem(f, d, "is the application itself"));
            } else if !names.contains_key(d.as_str()) {
                errs.push(problem(f, d, "names no application of applications[]"));
            } else if a.start_after[..k].contains(d) {
                errs.push(problem(f, d, "is listed twice"));
            }
        }
        out.push(App {
            name: a.name.clone(),
            program: a.program.clone(),
            candidates,
            instances: a.instances,
            strategy: a.strategy,
            on_host_down: a.on_host_down,
            down_after_ms: a.down_after * 1000,
            start_after: a.start_after.clone(),
            conciliation: a.conciliation,
        });
    }
    if errs.len() == before
        && let Err(cycle) = start_order(&out)
    {
        let i = names.get(cycle[0].as_str()).copied().unwrap_or(0);
        errs.push(problem(
            format!("{path}[{i}].start_after"),
            &cycle.join(" -> "),
            "is a cycle: no application of it could ever start",
        ));
    }
    out
}

/// The applications' indexes in start order (each after those in its `start_after`,
/// otherwise in configuration order); a cycle's names (first repeated last) when there is
/// one.
pub fn start_order(apps: &[App]) -> Result<Vec<usize>, Vec<String>> {
    let index: HashMap<&str, usize> = apps
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    // 0: not seen, 1: on the path, 2: placed.
    let mut mark = vec![0u8; apps.len()];
    let mut order = Vec::with_capacity(apps.len());
    fn visit(
        i: usize,
        apps: &[App],
        index: &HashMap<&str, usize>,
        mark: &mut [u8],
        order: &mut Vec<usize>,
        path: &mut Vec<usize>,
    ) -> Result<(), Vec<String>> {
        match mark[i] {
            2 => return Ok(()),
            1 => {
                let from = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut c: Vec<String> =
                    path[from..].iter().map(|&p| apps[p].name.clone()).collect();
                c.push(apps[i].name.clone());
                return Err(c);
            }
            _ => {}
        }
        mark[i] = 1;
        path.push(i);
        for d in &apps[i].start_after {
            if let Some(&j) = index.get(d.as_str()) {
                visit(j, apps, index, mark, order, path)?;
            }
        }
        path.pop();
        mark[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..apps.len() {
        visit(i, apps, &index, &mut mark, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> HashSet<String> {
        ["lab:a", "lab:b"].into_iter().map(String::from).collect()
    }

    fn parse(v: serde_json::Value) -> Vec<AppConfig> {
        serde_json::from_value(v).expect("parses")
    }

    fn problems(v: serde_json::Value) -> Vec<String> {
        let mut errs = Vec::new();
        check(&parse(v), "applications", &ids(), &mut errs);
        errs.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn defaults_and_a_valid_list() {
        let list = parse(serde_json::json!([
            {"name": "db", "program": "db:db", "candidates": ["lab:a", "lab:b"]},
            {"name": "web", "program": "web:api", "candidates": ["tag:web", "lab:a"],
             "instances": 2, "strategy": "less_loaded", "on_host_down": "keep",
             "down_after": 5, "start_after": ["db"], "conciliation": "stop_replacement"},
        ]));
        let mut errs = Vec::new();
        let apps = check(&list, "applications", &ids(), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(apps[0].instances, 1);
        assert_eq!(apps[0].strategy, Strategy::Config);
        assert_eq!(apps[0].on_host_down, OnHostDown::RestartElsewhere);
        assert_eq!(apps[0].down_after_ms, 30_000);
        assert_eq!(apps[0].conciliation, Conciliation::StopReturning);
        assert_eq!(
            apps[1].candidates,
            [
                Candidate::Tag("web".into()),
                Candidate::Host("lab:a".into())
            ]
        );
        assert_eq!(start_order(&apps), Ok(vec![0, 1]));
    }

    #[test]
    fn every_problem_names_field_and_value() {
        let p = problems(serde_json::json!([
            {"name": "web", "program": "api", "candidates": ["lab:zz", "tag:"],
             "instances": 0, "down_after": 0, "start_after": ["nope", "web"]},
            {"name": "web", "program": "g:*", "candidates": []},
        ]));
        let want = [
            "applications[0].program: 'api'",
            "applications[0].candidates[0]: 'lab:zz' names no host",
            "applications[0].candidates[1]: 'tag:'",
            "applications[0].instances: '0' must be at least 1",
            "applications[0].down_after: '0'",
            "applications[0].start_after[0]: 'nope' names no application",
            "applications[0].start_after[1]: 'web' is the application itself",
            "applications[1].name: 'web' is used by another application",
            "applications[1].program: 'g:*'",
            "applications[1].candidates: '[]' lists no host",
        ];
        for w in want {
            assert!(p.iter().any(|e| e.contains(w)), "no '{w}' in {p:#?}");
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");
    }

    #[test]
    fn too_many_instances_a_shared_program_and_a_cycle_are_refused() {
        let p = problems(serde_json::json!([
            {"name": "a", "program": "g:a", "candidates": ["lab:a"], "instances": 2},
            {"name": "b", "program": "g:a", "candidates": ["lab:a"]},
        ]));
        assert!(
            p[0].contains("instances: '2' is more than its 1 candidate"),
            "{p:?}"
        );
        assert!(p[1].contains("applications[1].program: 'g:a' is run by applications[0]"));
        let p = problems(serde_json::json!([
            {"name": "a", "program": "g:a", "candidates": ["lab:a"], "start_after": ["c"]},
            {"name": "b", "program": "g:b", "candidates": ["lab:a"], "start_after": ["a"]},
            {"name": "c", "program": "g:c", "candidates": ["lab:a"], "start_after": ["b"]},
        ]));
        assert_eq!(
            p,
            [
                "applications[0].start_after: 'a -> c -> b -> a' is a cycle: no application of it could ever start"
            ]
        );
        let bad = serde_json::from_value::<Vec<AppConfig>>(serde_json::json!([
            {"name": "a", "program": "g:a", "candidates": ["lab:a"], "strategy": "fastest"}]));
        assert!(
            bad.expect_err("no such strategy")
                .to_string()
                .contains("fastest")
        );
    }
}
