//! The read-only HTTP routes: the REST API (`/api/v1/clusters`, `/hosts`, `/hosts/{id}`,
//! `/hosts/{id}/events`), `/healthz`, `/readyz`, `/metrics`, and the pages and assets of the
//! UI. Who may call them is decided by the security layers and extractors
//! ([`crate::security`]); these only answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::assets;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::metrics::{self, Metrics};
use crate::security::Principal;
use crate::security::login::Reader;
use crate::security::net::Client;
use crate::state::Web;
use crate::wire::HostDetail;

type Shared = State<Arc<Web>>;

pub(crate) async fn clusters(State(w): Shared, _: Reader) -> impl IntoResponse {
    Json(w.store().clusters())
}

pub(crate) async fn hosts(State(w): Shared, Reader(p): Reader) -> impl IntoResponse {
    let mut rows = w.store().rows();
    let vis = w.security.http.auth.visibility(p.class());
    if vis.filters_rows() {
        for r in &mut rows {
            vis.apply_row(r);
        }
    }
    Json(rows)
}

pub(crate) async fn host(
    State(w): Shared,
    Reader(p): Reader,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (row, info, detail) = {
        let st = w.store();
        let row = st
            .row(&id)
            .ok_or_else(|| ApiError::not_found(format!("unknown host '{id}'")))?;
        let (info, detail) = st.info_and_latest(&id).unwrap_or((None, None));
        (row, info, detail)
    };
    let mut detail = detail.map(Arc::unwrap_or_clone);
    let vis = w.security.http.auth.visibility(p.class());
    if let Some(d) = detail.as_mut() {
        vis.apply(d);
    }
    let mut row = row;
    vis.apply_row(&mut row);
    Ok(Json(HostDetail {
        host: row,
        info,
        detail,
    }))
}

pub(crate) async fn events(
    State(w): Shared,
    _: Reader,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let ev = w
        .store()
        .events(&id)
        .ok_or_else(|| ApiError::not_found(format!("unknown host '{id}'")))?;
    Ok(Json(ev))
}

/// 200 while the live view works: the hub has run within three intervals (at least 5 s) and
/// the store answers. A frozen process does not answer at all; a stuck hub gets a 503.
pub(crate) async fn healthz(State(w): Shared) -> Response {
    let interval = w.interval_ms();
    let age = now_ms().saturating_sub(w.hub_tick_ms.load(std::sync::atomic::Ordering::Relaxed));
    if age > (3 * interval).max(5000) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the hub has not run for {} s", age / 1000),
        )
            .into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

pub(crate) async fn readyz(State(w): Shared) -> Response {
    if w.store().ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not every host has been tried yet",
        )
            .into_response()
    }
}

/// `GET /metrics` for anyone with a session (or on a public dashboard), and without one from
/// `metrics_allow_from` (a Prometheus on this host, by default).
pub(crate) async fn metrics_page(
    m: Arc<Metrics>,
    w: Arc<Web>,
    p: Option<Extension<Principal>>,
    c: Option<Extension<Client>>,
) -> Response {
    let allowed = p.is_some()
        || c.is_some_and(|Extension(c)| w.security.http.metrics_allow_from.contains(c.ip));
    if !allowed {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login required (or scrape from an address in server.metrics_allow_from)".into(),
        )
        .into_response();
    }
    encode_metrics(m).await
}

/// Encodes the exposition off the async threads: with many hosts it takes a while.
pub(crate) async fn encode_metrics(m: Arc<Metrics>) -> Response {
    match tokio::task::spawn_blocking(move || m.render()).await {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response(),
        Ok(Err(e)) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {e}"),
        )
        .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the metrics encoder failed: {e}"),
        )
        .into_response(),
    }
}

pub(crate) async fn api_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such API route".into())
}

/// The dashboard for a reader; everyone else goes to the login page.
pub(crate) async fn index(p: Option<Extension<Principal>>, headers: HeaderMap) -> Response {
    if p.is_none() {
        return Redirect::to("login").into_response();
    }
    assets::serve("index.html", &headers)
}

pub(crate) async fn login_page(headers: HeaderMap) -> Response {
    assets::serve("login.html", &headers)
}

pub(crate) async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    assets::serve(&format!("assets/{path}"), &headers)
}
