//! The action routes (`web/PROTOCOL.md`, "Actions"): wake, reboot and shut down one host, or
//! a selection of hosts (ids, a tag or a cluster) with one result per host. Admins only; the
//! Origin/CSRF check of every write is the router's layer. Every action is logged (target
//! `smon::actions`) and kept in the audit log (`GET /api/v1/audit`) with who asked, from
//! where, which hosts and the results, refusals included.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use futures_util::StreamExt;

use smon_api::actions::{Action, ActionResult, GroupAnswer, Selection};

use super::record::{audit, log_host};
use crate::acting::{ActionError, ActionsService};
use crate::error::ApiError;
use crate::security::login::{Admin, log_safe};
use crate::security::net::Client;
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
        post(|w, c, a, id| one(w, c, a, id, Action::Wake)),
    )
    .route(
        &p("/hosts/{id}/reboot"),
        post(|w, c, a, id| one(w, c, a, id, Action::Reboot)),
    )
    .route(
        &p("/hosts/{id}/shutdown"),
        post(|w, c, a, id| one(w, c, a, id, Action::Shutdown)),
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

async fn one(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path(id): Path<String>,
    action: Action,
) -> Result<impl IntoResponse, ApiError> {
    let s = service(&w)?;
    let r = s.act(action, &id).await;
    let a = action.as_str();
    log_host(
        a,
        p.actor(),
        &id,
        "",
        r.as_ref().map(|x| x.message.as_str()),
    );
    let (outcome, results) = match &r {
        Ok(x) => ("ok".to_owned(), Some(std::slice::from_ref(x))),
        Err(e) => (e.to_string(), None),
    };
    audit(&w, &p, &client, a, "", vec![id], outcome, results).await;
    Ok(Json(r?))
}

async fn group(
    State(w): Shared,
    Extension(client): Extension<Client>,
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
    let ids = match selected(s.as_ref(), &sel) {
        Ok(ids) => ids,
        Err(e) => {
            let asked = sel.hosts.clone().unwrap_or_default();
            let reason = e.reason().to_owned();
            audit::<()>(&w, &p, &client, action.as_str(), "", asked, reason, None).await;
            return Err(e);
        }
    };
    let who = p.actor().to_owned();
    let results: Vec<ActionResult> = on_each(ids, |id| {
        let s = s.clone();
        async move { s.act(action, &id).await }
    })
    .await
    .into_iter()
    .map(|(id, r)| {
        log_host(
            action.as_str(),
            &who,
            &id,
            "",
            r.as_ref().map(|x| x.message.as_str()),
        );
        r.unwrap_or_else(|e| ActionResult {
            host: id,
            ok: false,
            message: e.to_string(),
        })
    })
    .collect();
    let outcome = super::record::group_outcome(results.iter().map(|r| r.ok));
    let hosts = results.iter().map(|r| r.host.clone()).collect();
    audit(
        &w,
        &p,
        &client,
        action.as_str(),
        "",
        hosts,
        outcome,
        Some(&results),
    )
    .await;
    Ok(Json(GroupAnswer { action, results }))
}

/// The hosts `sel` names for a group action (at most [`MAX_GROUP`]), or the answer refusing it.
pub(crate) fn selected(s: &dyn ActionsService, sel: &Selection) -> Result<Vec<String>, ApiError> {
    match s.select(sel) {
        Ok(ids) if ids.len() > MAX_GROUP => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the selection holds {} hosts; at most {MAX_GROUP} at once",
                ids.len()
            ),
        )),
        Ok(ids) => Ok(ids),
        Err(e) => Err(ApiError::from(e)),
    }
}

/// Runs `act` on every host of `ids`, [`PARALLEL`] at a time; the results in the order of
/// `ids`, each with its host id.
pub(crate) async fn on_each<T, F, Fut>(
    ids: Vec<String>,
    act: F,
) -> Vec<(String, Result<T, ActionError>)>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, ActionError>>,
{
    futures_util::stream::iter(ids)
        .map(|id| {
            let run = act(id.clone());
            async move { (id, run.await) }
        })
        .buffered(PARALLEL)
        .collect()
        .await
}
