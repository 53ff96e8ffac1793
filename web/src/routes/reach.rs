//! The reachability routes (`web/PROTOCOL.md`, "Reachability"): a host's last check and its
//! last transitions (logged-in users: anonymous visitors of a public dashboard get 401), and a check run now (`POST .../check`, admins only; the
//! Origin/CSRF check of every write is the router's layer).
//!
//! They call [`Web::reach`] (503 when the server runs no checker).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::error::ApiError;
use crate::reachability::{ReachError, ReachService};
use crate::security::Principal;
use crate::security::audit::{Subject, audited};
use crate::security::login::{Admin, Reader, log_safe};
use crate::security::net::Client;
use crate::state::Web;

type Shared = State<Arc<Web>>;

/// Transitions `GET .../reach` lists.
pub const TRANSITIONS: u32 = 50;

/// The reachability routes under `base`.
pub(crate) fn routes(app: axum::Router<Arc<Web>>, base: &str) -> axum::Router<Arc<Web>> {
    use axum::routing::{get, post};
    app.route(&format!("{base}/api/v1/hosts/{{id}}/reach"), get(status))
        .route(&format!("{base}/api/v1/hosts/{{id}}/check"), post(check))
}

impl From<ReachError> for ApiError {
    fn from(e: ReachError) -> Self {
        let status = match &e {
            ReachError::NotFound(_) => StatusCode::NOT_FOUND,
            ReachError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

fn service(w: &Web) -> Result<Arc<dyn ReachService>, ApiError> {
    w.reach.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "reachability checks are off on this server (the aggregator runs them)".into(),
        )
    })
}

async fn status(
    State(w): Shared,
    Reader(p): Reader,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    // The result names the address pinged, which a public dashboard hides from anonymous
    // visitors (their rows keep the digest, without addresses).
    if matches!(p, Principal::Anonymous) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login required: reachability details are shown to logged-in users".into(),
        ));
    }
    let s = service(&w)?;
    let answer = tokio::task::spawn_blocking(move || s.status(&id, TRANSITIONS))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the reachability task failed: {e}"),
            )
        })??;
    Ok(Json(answer))
}

async fn check(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let what = Subject::Hosts(vec![log_safe(&id)]);
    let r = match service(&w) {
        Ok(s) => s.check(&id).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    Ok(Json(audited(&w, &p, client.ip, "check", what, r).await?))
}
