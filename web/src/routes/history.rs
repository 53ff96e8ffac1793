//! The history routes (`web/PROTOCOL.md`, "History"): a host's or a cluster's stored series
//! over a range, the top processes at a minute, GPU usage, and the storage's state for admins.
//!
//! They read [`Web::history`] (503 when history is off) off the async threads, and apply the
//! same role rules as the live routes: what a caller may not see live (command lines, process
//! owners) it does not get from history either, and GPU usage by user is refused to a caller
//! who may not see process owners. Hosts outside the fleet answer 404, as on the live routes,
//! and are left out of GPU usage.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use smon_api::history::{GpuUsageAnswer, ProcessesAnswer, UsageBy};
use smon_history::{History, SeriesQuery, Shown};

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::security::Principal;
use crate::security::login::{Admin, Reader, log_safe};
use crate::security::visibility::Visibility;
use crate::state::Web;

type Shared = State<Arc<Web>>;
type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Points of a series answer when `points` is not given.
pub const DEFAULT_POINTS: usize = 600;
/// Most points a series answer may ask for.
pub const MAX_POINTS: usize = 5000;
/// Range of a query that gives no `from` (ms): the last hour.
pub const DEFAULT_RANGE_MS: u64 = 3_600_000;
/// Most metrics one query may name.
pub const MAX_METRICS: usize = 32;
/// Longest label (a mount point, an interface...) a metric may name.
const MAX_LABEL: usize = 256;
/// Latest time a query may name (ms since the epoch, the year 2255): beyond is a typo (seconds
/// or microseconds given for milliseconds).
const MAX_TIME_MS: u64 = 9_000_000_000_000;

/// The metrics the history stores (`web/PROTOCOL.md`): one list, the store's own.
pub use smon_history::series::METRICS;

/// The history routes under `base` (paths in [`super::HISTORY_PATHS`], in that order).
pub(crate) fn routes(app: axum::Router<Arc<Web>>, base: &str) -> axum::Router<Arc<Web>> {
    use axum::routing::get;
    let [host, procs, cluster, gpus, storage_path] = super::HISTORY_PATHS;
    let p = |s: &str| format!("{base}{s}");
    app.route(&p(host), get(host_series))
        .route(&p(procs), get(processes))
        .route(&p(cluster), get(cluster_series))
        .route(&p(gpus), get(gpu_usage))
        .route(&p(storage_path), get(storage))
}

fn bad(why: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, why)
}

fn off() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "history is off on this server (storage.enabled)".into(),
    )
}

fn history_of(w: &Web) -> Result<Arc<dyn History>, ApiError> {
    w.history.clone().ok_or_else(off)
}

fn params(q: Params) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m)
        .map_err(|e| bad(format!("bad query string: {}", e.body_text())))
}

/// Checks one metric of `metrics=`: a stored name, or `name{label}` for one with labels.
pub fn check_metric(m: &str) -> Result<(), String> {
    let (name, label) = match m.split_once('{') {
        None => (m, None),
        Some((n, rest)) => match rest.strip_suffix('}') {
            Some(l) => (n, Some(l)),
            None => {
                return Err(format!(
                    "metrics: '{}' has no closing '}}' (e.g. disk_percent{{/home}})",
                    log_safe(m)
                ));
            }
        },
    };
    let Some(labelled) = METRICS.iter().find(|m| m.name == name).map(|m| m.labelled) else {
        let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        return Err(format!(
            "metrics: '{}' is not a stored metric (one of {})",
            log_safe(name),
            names.join(", ")
        ));
    };
    if let Some(l) = label {
        if !labelled {
            return Err(format!("metrics: '{name}' has no labels; ask for '{name}'"));
        }
        if l.is_empty() || l.len() > MAX_LABEL || l.chars().any(char::is_control) {
            return Err(format!(
                "metrics: the label of '{}' must be 1 to {MAX_LABEL} printable characters",
                log_safe(m)
            ));
        }
    }
    Ok(())
}

/// A time parameter (ms since the epoch), if given.
fn time_param(p: &HashMap<String, String>, key: &str) -> Result<Option<u64>, ApiError> {
    let Some(v) = p.get(key) else { return Ok(None) };
    match v.trim().parse::<u64>() {
        Ok(t) if t <= MAX_TIME_MS => Ok(Some(t)),
        Ok(_) => Err(bad(format!(
            "{key}: {} is too far in the future: give milliseconds since the epoch",
            log_safe(v)
        ))),
        Err(_) => Err(bad(format!(
            "{key}: '{}' is not a time in milliseconds since the epoch",
            log_safe(v)
        ))),
    }
}

/// `from` and `to` (default: the hour before now), with `from < to`.
fn range(p: &HashMap<String, String>, now: u64) -> Result<(u64, u64), ApiError> {
    let to = time_param(p, "to")?.unwrap_or(now);
    let from = time_param(p, "from")?.unwrap_or(to.saturating_sub(DEFAULT_RANGE_MS));
    if from >= to {
        return Err(bad(format!(
            "from ({from}) must be before to ({to}) (ms since the epoch)"
        )));
    }
    Ok((from, to))
}

/// The series query of `metrics`, `from`, `to` and `points`.
pub fn series_query(p: &HashMap<String, String>, now: u64) -> Result<SeriesQuery, ApiError> {
    let metrics: Vec<String> = p
        .get("metrics")
        .map(|m| {
            m.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if metrics.is_empty() {
        return Err(bad(
            "metrics: name at least one metric, e.g. metrics=cpu_percent,mem_percent".into(),
        ));
    }
    if metrics.len() > MAX_METRICS {
        return Err(bad(format!(
            "metrics: {} metrics asked, at most {MAX_METRICS} at once",
            metrics.len()
        )));
    }
    for m in &metrics {
        check_metric(m).map_err(bad)?;
    }
    let (from_ms, to_ms) = range(p, now)?;
    let points = match p.get("points") {
        None => DEFAULT_POINTS,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_POINTS).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "points: '{}' is not a number from 1 to {MAX_POINTS}",
                    log_safe(v)
                )));
            }
        },
    };
    Ok(SeriesQuery {
        metrics,
        from_ms,
        to_ms,
        points,
    })
}

/// What a caller may see of history, from what it may see live.
pub fn shown(vis: Visibility) -> Shown {
    Shown {
        command_lines: vis.command_lines,
        process_users: vis.process_users,
    }
}

/// Removes what `shown` hides from an answer, whatever the store returned: the role rules are
/// applied here too, so that a store that forgot them cannot leak.
pub fn hide(a: &mut ProcessesAnswer, shown: Shown) {
    for p in a.top_cpu.iter_mut().chain(a.top_memory.iter_mut()) {
        if !shown.command_lines {
            p.cmdline.clear();
        }
        if !shown.process_users {
            p.user.clear();
        }
    }
    if !shown.process_users {
        for g in &mut a.gpu {
            g.user.clear();
        }
    }
}

/// Runs a blocking history call off the async threads; store errors become answers here.
async fn blocking<T: Send + 'static>(
    p: &Principal,
    f: impl FnOnce() -> Result<T, smon_history::Error> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(smon_history::Error::BadQuery(why))) => Err(bad(why)),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "A history query failed.");
            // The text names the database file: admins get it, others a sentence.
            let why = if p.is_admin() {
                format!("the history could not be read: {e}")
            } else {
                "the history could not be read (the server's log says why)".into()
            };
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, why))
        }
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the history query failed: {e}"),
        )),
    }
}

fn known_host(w: &Web, id: &str) -> Result<(), ApiError> {
    if w.store().row(id).is_some() {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "unknown host '{}'",
            log_safe(id)
        )))
    }
}

/// `GET /api/v1/hosts/{id}/history?metrics=&from=&to=&points=`. A GPU's series are labelled
/// by its UUID (`gpu_temperature_celsius{GPU-8f2c...}`; the index only for a GPU reported
/// without one, and in rows stored before): the client maps a UUID to the GPU's index and
/// name with the host's GPUs in its live snapshot or `HostInfo`.
pub(crate) async fn host_series(
    State(w): Shared,
    Reader(p): Reader,
    Path(id): Path<String>,
    q: Params,
) -> Result<impl IntoResponse, ApiError> {
    let h = history_of(&w)?;
    let q = series_query(&params(q)?, now_ms())?;
    known_host(&w, &id)?;
    let a = blocking(&p, move || h.host_series(&id, &q)).await?;
    Ok(Json(a))
}

/// `GET /api/v1/clusters/{name}/history?metrics=&from=&to=&points=`. A per-GPU metric is one
/// series over every GPU of the cluster, labelled `all`.
pub(crate) async fn cluster_series(
    State(w): Shared,
    Reader(p): Reader,
    Path(name): Path<String>,
    q: Params,
) -> Result<impl IntoResponse, ApiError> {
    let h = history_of(&w)?;
    let q = series_query(&params(q)?, now_ms())?;
    if !w.store().clusters().iter().any(|c| c.name == name) {
        return Err(ApiError::not_found(format!(
            "unknown cluster '{}'",
            log_safe(&name)
        )));
    }
    let a = blocking(&p, move || h.cluster_series(&name, &q)).await?;
    Ok(Json(a))
}

/// `GET /api/v1/hosts/{id}/processes?at=`.
pub(crate) async fn processes(
    State(w): Shared,
    Reader(p): Reader,
    Path(id): Path<String>,
    q: Params,
) -> Result<impl IntoResponse, ApiError> {
    let h = history_of(&w)?;
    let at = time_param(&params(q)?, "at")?
        .ok_or_else(|| bad("at: missing (a time in milliseconds since the epoch)".into()))?;
    known_host(&w, &id)?;
    let shown = shown(w.security.http.auth.visibility(p.class()));
    let mut a = blocking(&p, move || h.processes_at(&id, at, shown)).await?;
    hide(&mut a, shown);
    Ok(Json(a))
}

/// `GET /api/v1/gpus/usage?from=&to=&by=user|host|gpu[&host=]`; `by=gpu` keys are
/// `host/<uuid>` (`host/#index` for rows stored before UUIDs, or a GPU without one).
pub(crate) async fn gpu_usage(
    State(w): Shared,
    Reader(p): Reader,
    q: Params,
) -> Result<impl IntoResponse, ApiError> {
    let h = history_of(&w)?;
    let q = params(q)?;
    let (from, to) = range(&q, now_ms())?;
    let by = match q.get("by").map(String::as_str) {
        None | Some("gpu") => UsageBy::Gpu,
        Some("host") => UsageBy::Host,
        Some("user") => UsageBy::User,
        Some(other) => {
            return Err(bad(format!(
                "by: '{}' is not one of user, host, gpu",
                log_safe(other)
            )));
        }
    };
    let vis = w.security.http.auth.visibility(p.class());
    if by == UsageBy::User && !vis.process_users {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "GPU usage by user needs a login that may see process owners".into(),
        ));
    }
    let only = q.get("host").cloned();
    if let Some(id) = &only {
        known_host(&w, id)?;
    }
    // The fleet now: hosts outside it answer 404 elsewhere and are left out here.
    let fleet: std::collections::HashSet<String> = w.store().ids().into_iter().collect();
    let a: GpuUsageAnswer = blocking(&p, move || {
        let ok = |host: &str| fleet.contains(host) && only.as_deref().is_none_or(|o| o == host);
        h.gpu_usage(from, to, by, &ok)
    })
    .await?;
    Ok(Json(a))
}

/// `GET /api/v1/admin/storage` (admins).
pub(crate) async fn storage(
    State(w): Shared,
    Admin(p): Admin,
) -> Result<impl IntoResponse, ApiError> {
    let h = history_of(&w)?;
    let mut a = blocking(&p, move || h.storage()).await?;
    if a.remote_write.is_empty()
        && let Some(f) = &w.remote_write
    {
        a.remote_write = f();
    }
    Ok(Json(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn why(e: ApiError) -> String {
        format!("{e:?}")
    }

    #[test]
    fn series_queries_are_checked_with_a_reason() {
        let now = 10_000_000;
        let ok = series_query(&q(&[("metrics", "cpu_percent, disk_percent{/home}")]), now)
            .expect("valid");
        assert_eq!(ok.metrics, ["cpu_percent", "disk_percent{/home}"]);
        assert_eq!((ok.from_ms, ok.to_ms), (now - DEFAULT_RANGE_MS, now));
        assert_eq!(ok.points, DEFAULT_POINTS);
        let ok = series_query(
            &q(&[
                ("metrics", "load1"),
                ("from", "5"),
                ("to", "9"),
                ("points", "5000"),
            ]),
            now,
        )
        .expect("valid");
        assert_eq!((ok.from_ms, ok.to_ms, ok.points), (5, 9, 5000));

        for (pairs, want) in [
            (vec![], "name at least one metric"),
            (vec![("metrics", " , ")], "name at least one metric"),
            (vec![("metrics", "cpu")], "'cpu' is not a stored metric"),
            (vec![("metrics", "cpu_percent{x}")], "has no labels"),
            (vec![("metrics", "disk_percent{/")], "no closing"),
            (vec![("metrics", "disk_percent{}")], "printable characters"),
            (
                vec![("metrics", "load1"), ("from", "9"), ("to", "9")],
                "must be before",
            ),
            (
                vec![("metrics", "load1"), ("from", "yesterday")],
                "'yesterday' is not a time",
            ),
            (
                vec![("metrics", "load1"), ("to", "99999999999999999")],
                "too far in the future",
            ),
            (vec![("metrics", "load1"), ("points", "0")], "points: '0'"),
            (
                vec![("metrics", "load1"), ("points", "5001")],
                "from 1 to 5000",
            ),
        ] {
            let e = why(series_query(&q(&pairs), now).expect_err(want));
            assert!(e.contains(want) && e.contains("400"), "{pairs:?}: {e}");
        }
        let many = vec!["load1"; MAX_METRICS + 1].join(",");
        let e = why(series_query(&q(&[("metrics", &many)]), now).expect_err("too many"));
        assert!(e.contains("at most 32"), "{e}");
    }

    #[test]
    fn hidden_parts_are_removed_whatever_the_store_answered() {
        use smon_api::history::{GpuProcessAt, ProcessAt};
        let proc_at = ProcessAt {
            pid: 1,
            name: "python3".into(),
            user: "ann".into(),
            cmdline: "python3 train.py".into(),
            cpu_percent: 99.0,
            memory_bytes: 1,
        };
        let mut a = ProcessesAnswer {
            host: "lab:a".into(),
            at: Some(60_000),
            top_cpu: vec![proc_at.clone()],
            top_memory: vec![proc_at],
            gpu: vec![GpuProcessAt {
                gpu: 0,
                gpu_uuid: "GPU-0".into(),
                parent_uuid: "GPU-0".into(),
                pid: 1,
                name: "python3".into(),
                user: "ann".into(),
                memory_bytes: Some(1),
            }],
        };
        let viewer = shown(Visibility::VIEWER_DEFAULT);
        assert_eq!(
            viewer,
            Shown {
                command_lines: false,
                process_users: true
            }
        );
        hide(&mut a, viewer);
        assert!(a.top_cpu[0].cmdline.is_empty() && a.top_memory[0].cmdline.is_empty());
        assert_eq!(a.top_cpu[0].user, "ann");
        hide(&mut a, shown(Visibility::PUBLIC));
        assert!(a.top_cpu[0].user.is_empty() && a.gpu[0].user.is_empty());
        assert_eq!(a.top_cpu[0].name, "python3", "the name stays");
    }
}
