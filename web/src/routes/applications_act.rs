//! The declared applications' action routes (`web/PROTOCOL.md`, "Applications"): start, stop
//! or restart one application (`POST /api/v1/applications/{name}/{verb}`) or every one
//! (`POST /api/v1/applications/{verb}`: starts in `start_after` order, stops in reverse),
//! through the server's [`ApplicationsService`]. Admins only; every action is logged and
//! recorded in the audit log with who asked, from where, the outcome and the decisions.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};

use crate::acting::{ActionError, AppActionResult, AppVerb, ApplicationsService};
use crate::error::ApiError;
use crate::security::login::{Admin, log_safe};
use crate::security::net::Client;
use crate::state::Web;

type Shared = State<Arc<Web>>;

/// The routes under `base`.
pub(crate) fn routes(app: axum::Router<Arc<Web>>, base: &str) -> axum::Router<Arc<Web>> {
    use axum::routing::post;
    let p = |s: &str| format!("{base}/api/v1{s}");
    app.route(&p("/applications/{name}/{verb}"), post(act_one))
        .route(&p("/applications/{verb}"), post(act_all))
}

fn service(w: &Web) -> Result<Arc<dyn ApplicationsService>, ApiError> {
    w.applications.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no application is declared on this server (applications[] in config_app.json)".into(),
        )
    })
}

fn verb(v: &str) -> Result<AppVerb, ApiError> {
    v.parse()
        .map_err(|e: String| ApiError::new(StatusCode::NOT_FOUND, log_safe(&e).to_string()))
}

async fn act_one(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path((name, v)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let verb = verb(&v)?;
    run(&w, &p, &client, Some(&name), verb).await
}

async fn act_all(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path(v): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let verb = verb(&v)?;
    run(&w, &p, &client, None, verb).await
}

async fn run(
    w: &Arc<Web>,
    p: &crate::security::Principal,
    client: &Client,
    name: Option<&str>,
    verb: AppVerb,
) -> Result<Json<AppActionResult>, ApiError> {
    let s = service(w)?;
    let who = p.actor();
    let r = s.act(name, verb, who).await;
    let action = format!("application.{}", verb.as_str());
    let target = name.unwrap_or("*");
    match &r {
        Ok(a) => tracing::info!(target: "smon::actions", action, by = %log_safe(who),
            on = %log_safe(target), ok = a.ok, "Application action done."),
        Err(e) => tracing::warn!(target: "smon::actions", action, by = %log_safe(who),
            on = %log_safe(target), error = %e, "Application action refused."),
    }
    let hosts = r
        .as_ref()
        .map(|a| {
            let mut h: Vec<String> = a
                .decisions
                .iter()
                .filter(|d| !d.host.is_empty())
                .map(|d| d.host.clone())
                .collect();
            h.dedup();
            h
        })
        .unwrap_or_default();
    let outcome = match &r {
        Ok(a) if a.ok => "ok".into(),
        Ok(_) => "not every decision was carried out".into(),
        Err(e) => e.to_string(),
    };
    super::record::audit(
        w,
        p,
        client,
        &action,
        target,
        hosts,
        outcome,
        r.as_ref().ok(),
    )
    .await;
    let r: Result<AppActionResult, ActionError> = r;
    Ok(Json(r?))
}
