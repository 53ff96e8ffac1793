//! The action routes (`web/PROTOCOL.md`, "Actions"): wake, reboot and shut down one host, or
//! a selection of hosts (ids, a tag or a cluster) with one result per host. Admins only; the
//! Origin/CSRF check of every write is the router's layer. Every action is logged (target
//! `smon::actions`) with who asked, from where, and the result.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use futures_util::StreamExt;

use smon_api::actions::{Action, ActionResult, GroupAnswer, Selection};

use crate::acting::{ActionError, ActionsService};
use crate::error::ApiError;
use crate::security::Principal;
use crate::security::login::{Admin, log_safe};
use crate::state::Web;

type Shared = State<Arc<Web>>;

/// Most hosts one group action may select.
pub const MAX_GROUP: usize = 1000;

/// Hosts acted on at once in a group action.
const PARALLEL: usize = 32;

/// The action routes under `base`.
pub(crate) fn routes(app: axum::Router<Arc<Web>>, base: &str) -> axum::Router<Arc<Web>> {
    use axum::routing::post;
    let p = |s: &str| format!("{base}/api/v1{s}");
    app.route(
        &p("/hosts/{id}/wake"),
        post(|w, a, id| one(w, a, id, Action::Wake)),
    )
    .route(
        &p("/hosts/{id}/reboot"),
        post(|w, a, id| one(w, a, id, Action::Reboot)),
    )
    .route(
        &p("/hosts/{id}/shutdown"),
        post(|w, a, id| one(w, a, id, Action::Shutdown)),
    )
    .route(&p("/actions/{action}"), post(group))
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        let status = match &e {
            ActionError::Invalid(_) => StatusCode::BAD_REQUEST,
            ActionError::NotFound(_) => StatusCode::NOT_FOUND,
            ActionError::NotSetUp(_) => StatusCode::CONFLICT,
            ActionError::Agent(_) => StatusCode::BAD_GATEWAY,
            ActionError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

fn service(w: &Web) -> Result<Arc<dyn ActionsService>, ApiError> {
    w.actions.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "actions on hosts are served by the aggregator only".into(),
        )
    })
}

/// Who asked, for the log.
fn actor(p: &Principal) -> String {
    match p {
        Principal::User { name, .. } => name.clone(),
        Principal::Anonymous => "anonymous".into(),
    }
}

/// Logs one host's result of `action` asked by `who`.
fn log_result(action: Action, who: &str, r: &Result<ActionResult, ActionError>, host: &str) {
    match r {
        Ok(r) => tracing::info!(
            target: "smon::actions",
            action = action.as_str(),
            by = %log_safe(who),
            host = %log_safe(host),
            message = %r.message,
            "Action done."
        ),
        Err(e) => tracing::warn!(
            target: "smon::actions",
            action = action.as_str(),
            by = %log_safe(who),
            host = %log_safe(host),
            error = %e,
            "Action failed."
        ),
    }
}

async fn one(
    State(w): Shared,
    Admin(p): Admin,
    Path(id): Path<String>,
    action: Action,
) -> Result<impl IntoResponse, ApiError> {
    let s = service(&w)?;
    let r = s.act(action, &id).await;
    log_result(action, &actor(&p), &r, &id);
    Ok(Json(r?))
}

async fn group(
    State(w): Shared,
    Admin(p): Admin,
    Path(action): Path<String>,
    body: Result<Json<Selection>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let action: Action = action
        .parse()
        .map_err(|e: String| ApiError::new(StatusCode::NOT_FOUND, log_safe(&e).to_string()))?;
    let Json(sel) = body.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad JSON body: {}", e.body_text()),
        )
    })?;
    let s = service(&w)?;
    let ids = s.select(&sel)?;
    if ids.len() > MAX_GROUP {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the selection holds {} hosts; at most {MAX_GROUP} at once",
                ids.len()
            ),
        ));
    }
    let who = actor(&p);
    let results: Vec<ActionResult> = futures_util::stream::iter(ids)
        .map(|id| {
            let s = s.clone();
            async move {
                let r = s.act(action, &id).await;
                (id, r)
            }
        })
        .buffered(PARALLEL)
        .map(|(id, r)| {
            log_result(action, &who, &r, &id);
            r.unwrap_or_else(|e| ActionResult {
                host: id,
                ok: false,
                message: e.to_string(),
            })
        })
        .collect()
        .await;
    Ok(Json(GroupAnswer { action, results }))
}
