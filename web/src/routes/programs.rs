//! The program routes (`web/PROTOCOL.md`, "Programs and signals"): a host's supervisord programs as its
//! latest sample shows them (viewers too), and, for admins, starting, stopping and restarting
//! a program, tailing its log (once, or live as server-sent events), and sending a signal to
//! a process, through the host's agent
//! ([`crate::acting::ProgramsService`]). Every action (not the log reads) is logged and
//! recorded in the audit log with who asked, from where, and the outcome.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::record::{audit, log_host};
use crate::acting::{
    ActionError, LogTail, ProgramState, ProgramVerb, ProgramsAnswer, ProgramsService, SignalKind,
};
use crate::error::ApiError;
use crate::security::Principal;
use crate::security::login::{Admin, Reader, log_safe};
use crate::security::net::Client;
use crate::state::Web;

type Shared = State<Arc<Web>>;

/// Most bytes of a log one call may ask for (the agent's own limit).
pub const MAX_LOG_BYTES: u32 = 65536;

/// The program routes under `base`.
pub(crate) fn routes(app: axum::Router<Arc<Web>>, base: &str) -> axum::Router<Arc<Web>> {
    use axum::routing::{get, post};
    let p = |s: &str| format!("{base}/api/v1{s}");
    app.route(&p("/hosts/{id}/programs"), get(list))
        .route(&p("/hosts/{id}/programs/{name}/log"), get(log))
        .route(
            &p("/hosts/{id}/programs/{name}/log/stream"),
            get(log_stream),
        )
        .route(&p("/hosts/{id}/programs/{name}/{verb}"), post(act))
        .route(&p("/hosts/{id}/signal"), post(signal))
}

fn service(w: &Web) -> Result<Arc<dyn ProgramsService>, ApiError> {
    w.programs.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "program control is served by the aggregator only".into(),
        )
    })
}

async fn list(
    State(w): Shared,
    Reader(p): Reader,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let latest = {
        let st = w.store();
        if !st.contains(&id) {
            return Err(ApiError::not_found(format!(
                "unknown host '{}'",
                log_safe(&id)
            )));
        }
        st.info_and_latest(&id).and_then(|(_, l)| l)
    };
    let mut answer = ProgramsAnswer {
        host: id,
        supervisor: false,
        url: String::new(),
        error: None,
        age_ms: 0,
        processes: false,
        programs: Vec::new(),
    };
    let Some(mut snap) = latest.map(Arc::unwrap_or_clone) else {
        return Ok(Json(answer));
    };
    w.security.http.auth.visibility(p.class()).apply(&mut snap);
    let Some(progs) = snap.programs.as_ref() else {
        return Ok(Json(answer));
    };
    answer.supervisor = true;
    answer.url = progs.url.clone();
    answer.error = progs.error.clone();
    answer.age_ms = progs.age_ms;
    answer.processes = !snap.processes.is_empty();
    let mut sums: HashMap<&str, (f32, u64)> = HashMap::new();
    for q in snap.processes.iter().filter(|q| !q.program.is_empty()) {
        let s = sums.entry(q.program.as_str()).or_default();
        s.0 += q.cpu_percent;
        s.1 += q.memory_bytes;
    }
    answer.programs = progs
        .programs
        .iter()
        .map(|pr| {
            let mut v = ProgramState::from_proto(pr);
            if answer.processes {
                let (cpu, mem) = sums
                    .get(format!("{}:{}", pr.group, pr.name).as_str())
                    .copied()
                    .unwrap_or_default();
                v.cpu_percent = Some(cpu);
                v.memory_bytes = Some(mem);
            }
            v
        })
        .collect();
    Ok(Json(answer))
}

async fn act(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path((id, name, verb)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let verb: ProgramVerb = verb
        .parse()
        .map_err(|e: String| ApiError::new(StatusCode::NOT_FOUND, log_safe(&e).to_string()))?;
    let s = service(&w)?;
    let r = s.program(&id, verb, &name).await;
    let action = format!("program.{}", verb.as_str());
    recorded(&w, &p, &client, &action, &id, &name, &r).await;
    Ok(Json(r?))
}

/// `GET .../log`'s query.
#[derive(Debug, Deserialize)]
struct LogQuery {
    /// `stdout` (the default) or `stderr`.
    #[serde(default)]
    stream: Option<String>,
    /// How many bytes of the end; default 16384, at most [`MAX_LOG_BYTES`].
    #[serde(default)]
    bytes: Option<u32>,
}

/// `stream` and `bytes` of a log query: (stderr, bytes), or the 400 naming the field.
fn log_args(q: Result<Query<LogQuery>, QueryRejection>) -> Result<(bool, u32), ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let stderr = match q.stream.as_deref() {
        None | Some("stdout") => false,
        Some("stderr") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("stream: '{}' is not stdout or stderr", log_safe(other)),
            ));
        }
    };
    let bytes = q.bytes.unwrap_or(0);
    if bytes > MAX_LOG_BYTES {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bytes: at most {MAX_LOG_BYTES}"),
        ));
    }
    Ok((stderr, bytes))
}

async fn log(
    State(w): Shared,
    Admin(_): Admin,
    Path((id, name)): Path<(String, String)>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let (stderr, bytes) = log_args(q)?;
    let s = service(&w)?;
    let t = s.tail_log(&id, &name, stderr, bytes, None).await?;
    Ok((
        [
            ("content-type", "text/plain; charset=utf-8".to_owned()),
            ("x-smon-log-offset", t.offset.to_string()),
            ("x-smon-log-overflow", t.overflow.to_string()),
        ],
        t.text,
    ))
}

/// How often an open log stream asks the agent for what was written since.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// How long one log stream lasts: then it ends, and the browser's `EventSource` reconnects,
/// which checks the session (still an admin?) again.
pub const STREAM_FOR: Duration = Duration::from_secs(30 * 60);

/// An open log stream: where it is in the log.
struct Follow {
    s: Arc<dyn ProgramsService>,
    id: String,
    name: String,
    stderr: bool,
    offset: u64,
    first: Option<LogTail>,
    failing: bool,
    until: tokio::time::Instant,
    /// Who watches, for the log lines.
    by: String,
    /// Reads done after the first.
    reads: u64,
}

impl Drop for Follow {
    /// The stream's end (the browser closed it, or [`STREAM_FOR`] passed): no more reads.
    fn drop(&mut self) {
        tracing::info!(target: "smon::actions", by = %log_safe(&self.by),
            host = %log_safe(&self.id), on = %log_safe(&self.name), reads = self.reads,
            "Log stream closed.");
    }
}

/// A `chunk` event: `{"text", "offset", "overflow"}`.
fn chunk(t: &LogTail) -> Event {
    Event::default()
        .event("chunk")
        .data(serde_json::to_string(t).unwrap_or_default())
}

/// `GET .../log/stream`: the log's tail, then what is written to it, as server-sent events
/// (`chunk` with a [`LogTail`]; `problem` with a sentence while the agent cannot be read, the
/// stream going on). It follows the log every [`FOLLOW_EVERY`] until the browser closes it
/// (the body is dropped, and with it the loop), or for [`STREAM_FOR`].
async fn log_stream(
    State(w): Shared,
    Admin(p): Admin,
    Path((id, name)): Path<(String, String)>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let (stderr, bytes) = log_args(q)?;
    let s = service(&w)?;
    // The first read answers the request: a refusal is an error status, not an event.
    let first = s.tail_log(&id, &name, stderr, bytes, None).await?;
    tracing::info!(target: "smon::actions", by = %log_safe(p.actor()), host = %log_safe(&id),
        on = %log_safe(&name), "Log stream opened.");
    let st = Follow {
        s,
        id,
        name,
        stderr,
        offset: first.offset,
        first: Some(first),
        failing: false,
        until: tokio::time::Instant::now() + STREAM_FOR,
        by: p.actor().to_owned(),
        reads: 0,
    };
    let events = futures_util::stream::unfold(st, |mut st| async move {
        if let Some(t) = st.first.take() {
            return Some((Ok::<_, Infallible>(chunk(&t)), st));
        }
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            if tokio::time::Instant::now() >= st.until {
                return None;
            }
            st.reads += 1;
            let r =
                st.s.tail_log(&st.id, &st.name, st.stderr, MAX_LOG_BYTES, Some(st.offset))
                    .await;
            match r {
                Ok(t) => {
                    let recovered = std::mem::take(&mut st.failing);
                    st.offset = t.offset;
                    if recovered || t.overflow || !t.text.is_empty() {
                        return Some((Ok(chunk(&t)), st));
                    }
                }
                Err(e) if !st.failing => {
                    st.failing = true;
                    let e = Event::default().event("problem").data(e.to_string());
                    return Some((Ok(e), st));
                }
                Err(_) => {}
            }
        }
    });
    Ok((
        // No proxy buffering (nginx): each event goes out as it is written.
        [("x-accel-buffering", "no"), ("cache-control", "no-store")],
        Sse::new(events).keep_alive(KeepAlive::default()),
    ))
}

/// `POST /api/v1/hosts/{id}/signal`'s body.
#[derive(Debug, Deserialize)]
struct SignalBody {
    pid: u32,
    signal: SignalKind,
}

async fn signal(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path(id): Path<String>,
    body: Result<Json<SignalBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(b) = body.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "bad JSON body ({}): expected {{\"pid\": N, \"signal\": \"TERM|INT|KILL|HUP\"}}",
                e.body_text()
            ),
        )
    })?;
    let s = service(&w)?;
    let r = s.signal(&id, b.pid, b.signal).await;
    let action = format!("signal.{}", b.signal.as_str());
    let target = b.pid.to_string();
    recorded(&w, &p, &client, &action, &id, &target, &r).await;
    Ok(Json(r?))
}

/// Logs and audits one host's `action` on `on` (a program, a pid) with the outcome of `r`.
async fn recorded<T: Serialize>(
    w: &Web,
    p: &Principal,
    client: &Client,
    action: &str,
    host: &str,
    on: &str,
    r: &Result<T, ActionError>,
) {
    log_host(action, p.actor(), host, on, r.as_ref().map(|_| ""));
    let outcome = match r {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    };
    let hosts = vec![host.to_owned()];
    audit(w, p, client, action, on, hosts, outcome, r.as_ref().ok()).await;
}
