//! The inventory routes (`docs/protocol-inventory.md`): the fleet's hosts and clusters, those
//! of the config read-only and those made in the UI editable. Viewers read (secrets never
//! sent); admins write; anonymous visitors of a public dashboard get 401. The Origin/CSRF
//! check of every write is the router's layer.
//!
//! They call [`Web::inventory`] (503 when the server has none) off the async threads.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use smon_api::inventory::{HostInput, NewCluster};

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::inventory::{InventoryError, InventoryService};
use crate::security::Principal;
use crate::security::audit::{Subject, audited};
use crate::security::login::{Admin, Reader, log_safe};
use crate::security::net::Client;
use crate::state::Web;

type Shared = State<Arc<Web>>;

/// The inventory routes under `base`.
pub(crate) fn routes(app: axum::Router<Arc<Web>>, base: &str) -> axum::Router<Arc<Web>> {
    use axum::routing::{delete, get, put};
    let p = |s: &str| format!("{base}/api/v1/inventory{s}");
    app.route(&p("/hosts"), get(hosts).post(add_host))
        .route(&p("/hosts/{id}"), put(update_host).delete(remove_host))
        .route(&p("/clusters"), get(clusters).post(add_cluster))
        .route(&p("/clusters/{name}"), delete(remove_cluster))
}

impl From<InventoryError> for ApiError {
    fn from(e: InventoryError) -> Self {
        let status = match &e {
            InventoryError::Invalid(_) => StatusCode::BAD_REQUEST,
            InventoryError::NotFound(_) => StatusCode::NOT_FOUND,
            InventoryError::ReadOnly(_) => StatusCode::FORBIDDEN,
            InventoryError::Conflict(_) => StatusCode::CONFLICT,
            InventoryError::Off(_) => StatusCode::SERVICE_UNAVAILABLE,
            InventoryError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// Runs `f` on the server's inventory off the async threads, as the logged-in user (its name
/// and the time are handed to `f`); anonymous visitors are refused.
async fn on_inventory<T: Send + 'static>(
    w: &Web,
    p: &Principal,
    f: impl FnOnce(&dyn InventoryService, &str, u64) -> Result<T, InventoryError> + Send + 'static,
) -> Result<T, ApiError> {
    let by = match p {
        Principal::User { name, .. } => name.clone(),
        Principal::Anonymous => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "login required: the inventory is shown to logged-in users".into(),
            ));
        }
    };
    let s = w.inventory.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the inventory is not served by this server (the aggregator serves it)".into(),
        )
    })?;
    let now = now_ms();
    tokio::task::spawn_blocking(move || f(s.as_ref(), &by, now))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the inventory task failed: {e}"),
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

async fn hosts(State(w): Shared, Reader(p): Reader) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(on_inventory(&w, &p, |s, _, _| Ok(s.hosts())).await?))
}

async fn add_host(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    b: Result<Json<HostInput>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let h = body(b)?;
    let id = format!("{}:{}", log_safe(&h.cluster), log_safe(&h.name));
    let r = on_inventory(&w, &p, move |s, by, now| s.add_host(h, by, now)).await;
    let e = audited(
        &w,
        &p,
        client.ip,
        "inventory.add_host",
        Subject::Hosts(vec![id]),
        r,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(e)))
}

async fn update_host(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path(id): Path<String>,
    b: Result<Json<HostInput>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let h = body(b)?;
    let host = log_safe(&id);
    let f = move |s: &dyn InventoryService, by: &str, now| s.update_host(&id, h, by, now);
    let r = on_inventory(&w, &p, f).await;
    let what = Subject::Hosts(vec![host]);
    Ok(Json(
        audited(&w, &p, client.ip, "inventory.update_host", what, r).await?,
    ))
}

async fn remove_host(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let what = Subject::Hosts(vec![log_safe(&id)]);
    let r = on_inventory(&w, &p, move |s, by, _| s.remove_host(&id, by)).await;
    audited(&w, &p, client.ip, "inventory.remove_host", what, r).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn clusters(State(w): Shared, Reader(p): Reader) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        on_inventory(&w, &p, |s, _, _| Ok(s.clusters())).await?,
    ))
}

async fn add_cluster(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    b: Result<Json<NewCluster>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let c = body(b)?;
    let what = Subject::Target(log_safe(&c.name));
    let r = on_inventory(&w, &p, move |s, by, now| s.add_cluster(c, by, now)).await;
    let e = audited(&w, &p, client.ip, "inventory.add_cluster", what, r).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

async fn remove_cluster(
    State(w): Shared,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let what = Subject::Target(log_safe(&name));
    let r = on_inventory(&w, &p, move |s, by, _| s.remove_cluster(&name, by)).await;
    audited(&w, &p, client.ip, "inventory.remove_cluster", what, r).await?;
    Ok(StatusCode::NO_CONTENT)
}
