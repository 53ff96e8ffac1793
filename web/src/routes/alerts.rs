//! The alert routes (`web/PROTOCOL.md`, "Alerts"): alerts firing now, their history,
//! acknowledgement, and the rules, silences and channels. Viewers read; admins write and
//! acknowledge; anonymous visitors of a public dashboard get 401 (they see only the badge
//! counts of the overview). The Origin/CSRF check of every write is the router's layer.
//!
//! They call [`Web::alerts`] (503 when the server runs no alerting) off the async threads.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use smon_api::alerts::{NewSilence, RuleSpec, TestAnswer};

use crate::alerting::{AlertsError, AlertsService, HistoryQuery};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::security::Principal;
use crate::security::login::{Admin, Reader};
use crate::state::Web;

type Shared = State<Arc<Web>>;

/// Events a history answer holds when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 200;
/// Most events a history answer may hold.
pub const MAX_LIMIT: u32 = 1000;
/// Range of a history query without `from`: a day (ms).
pub const DEFAULT_RANGE_MS: u64 = 86_400_000;

/// The alert routes under `base`.
pub(crate) fn routes(app: axum::Router<Arc<Web>>, base: &str) -> axum::Router<Arc<Web>> {
    use axum::routing::{delete, get, post, put};
    let p = |s: &str| format!("{base}/api/v1/alerts{s}");
    app.route(&p(""), get(list))
        .route(&p("/history"), get(history))
        .route(&p("/{id}/ack"), post(ack))
        .route(&p("/rules"), get(rules).post(add_rule))
        .route(&p("/rules/{name}"), put(update_rule).delete(remove_rule))
        .route(&p("/silences"), get(silences).post(add_silence))
        .route(&p("/silences/{id}"), delete(remove_silence))
        .route(&p("/channels"), get(channels).post(add_channel))
        .route(
            &p("/channels/{name}"),
            put(update_channel).delete(remove_channel),
        )
        .route(&p("/channels/{name}/test"), post(test_channel))
}

impl From<AlertsError> for ApiError {
    fn from(e: AlertsError) -> Self {
        let status = match &e {
            AlertsError::Invalid(_) => StatusCode::BAD_REQUEST,
            AlertsError::NotFound(_) => StatusCode::NOT_FOUND,
            AlertsError::ReadOnly(_) => StatusCode::FORBIDDEN,
            AlertsError::Conflict(_) => StatusCode::CONFLICT,
            AlertsError::Delivery(_) => StatusCode::BAD_GATEWAY,
            AlertsError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

fn service(w: &Web) -> Result<Arc<dyn AlertsService>, ApiError> {
    w.alerts.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "alerts are off on this server (the aggregator runs them when storage is enabled)"
                .into(),
        )
    })
}

/// The logged-in user's name; anonymous visitors of a public dashboard are refused.
fn user(p: &Principal) -> Result<String, ApiError> {
    match p {
        Principal::User { name, .. } => Ok(name.clone()),
        Principal::Anonymous => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login required: alerts are shown to logged-in users".into(),
        )),
    }
}

/// Runs `f` on the server's alerting off the async threads, as the logged-in user (its name
/// and the time are handed to `f`); anonymous visitors are refused.
async fn on_alerts<T: Send + 'static>(
    w: &Web,
    p: &Principal,
    f: impl FnOnce(&dyn AlertsService, &str, u64) -> Result<T, AlertsError> + Send + 'static,
) -> Result<T, ApiError> {
    let by = user(p)?;
    let s = service(w)?;
    let now = now_ms();
    tokio::task::spawn_blocking(move || f(s.as_ref(), &by, now))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the alerting task failed: {e}"),
            )
        })?
        .map_err(ApiError::from)
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad JSON body: {}", e.body_text()),
        )
    })
}

async fn list(State(w): Shared, Reader(p): Reader) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        on_alerts(&w, &p, |s, _, now| Ok(s.alerts(now))).await?,
    ))
}

fn number<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, ApiError> {
    q.get(key)
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{key}: '{}' is not a whole number",
                        crate::security::login::log_safe(v)
                    ),
                )
            })
        })
        .transpose()
}

async fn history(
    State(w): Shared,
    Reader(p): Reader,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = q.map(|Query(m)| m).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad query string: {}", e.body_text()),
        )
    })?;
    let to_ms = number::<u64>(&q, "to")?.unwrap_or_else(now_ms);
    let from_ms = number::<u64>(&q, "from")?.unwrap_or(to_ms.saturating_sub(DEFAULT_RANGE_MS));
    if from_ms >= to_ms {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("from ({from_ms}) must be before to ({to_ms})"),
        ));
    }
    let limit = number::<u32>(&q, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit: {limit} must be 1 to {MAX_LIMIT}"),
        ));
    }
    let nonempty = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let query = HistoryQuery {
        rule: nonempty("rule"),
        host: nonempty("host"),
        from_ms,
        to_ms,
        limit,
    };
    Ok(Json(
        on_alerts(&w, &p, move |s, _, _| s.history(&query)).await?,
    ))
}

async fn ack(
    State(w): Shared,
    Admin(p): Admin,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        on_alerts(&w, &p, move |s, by, now| s.ack(&id, by, now)).await?,
    ))
}

async fn rules(State(w): Shared, Reader(p): Reader) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(on_alerts(&w, &p, |s, _, _| Ok(s.rules())).await?))
}

async fn add_rule(
    State(w): Shared,
    Admin(p): Admin,
    b: Result<Json<RuleSpec>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let rule = body(b)?;
    let e = on_alerts(&w, &p, move |s, by, now| s.add_rule(rule, by, now)).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

async fn update_rule(
    State(w): Shared,
    Admin(p): Admin,
    Path(name): Path<String>,
    b: Result<Json<RuleSpec>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let rule = body(b)?;
    let f = move |s: &dyn AlertsService, by: &str, now| s.update_rule(&name, rule, by, now);
    Ok(Json(on_alerts(&w, &p, f).await?))
}

async fn remove_rule(
    State(w): Shared,
    Admin(p): Admin,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    on_alerts(&w, &p, move |s, _, now| s.remove_rule(&name, now)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn silences(State(w): Shared, Reader(p): Reader) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        on_alerts(&w, &p, |s, _, now| Ok(s.silences(now))).await?,
    ))
}

async fn add_silence(
    State(w): Shared,
    Admin(p): Admin,
    b: Result<Json<NewSilence>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let new = body(b)?;
    let e = on_alerts(&w, &p, move |s, by, now| s.add_silence(new, by, now)).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

async fn remove_silence(
    State(w): Shared,
    Admin(p): Admin,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    on_alerts(&w, &p, move |s, _, _| s.remove_silence(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn channels(State(w): Shared, Reader(p): Reader) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(on_alerts(&w, &p, |s, _, _| Ok(s.channels())).await?))
}

/// A channel body: a JSON object.
type ChannelBody = serde_json::Map<String, serde_json::Value>;

async fn add_channel(
    State(w): Shared,
    Admin(p): Admin,
    b: Result<Json<ChannelBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let channel = body(b)?;
    let e = on_alerts(&w, &p, move |s, by, now| s.add_channel(channel, by, now)).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

async fn update_channel(
    State(w): Shared,
    Admin(p): Admin,
    Path(name): Path<String>,
    b: Result<Json<ChannelBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let changes = body(b)?;
    let f = move |s: &dyn AlertsService, by: &str, now| s.update_channel(&name, changes, by, now);
    Ok(Json(on_alerts(&w, &p, f).await?))
}

async fn remove_channel(
    State(w): Shared,
    Admin(p): Admin,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    on_alerts(&w, &p, move |s, _, _| s.remove_channel(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn test_channel(
    State(w): Shared,
    Admin(p): Admin,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    user(&p)?;
    let s = service(&w)?;
    s.test_channel(&name).await?;
    Ok(Json(TestAnswer { ok: true }))
}
