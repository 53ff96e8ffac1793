//! `GET /api/v1/audit` (admins only): the audit log, newest first, a page at a time, filtered
//! by action or host (`web/PROTOCOL.md`, and `docs/protocol-tokens.md` until merged).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::error::ApiError;
use crate::security::audit::{AuditEntry, AuditQuery, DEFAULT_LIMIT, MAX_LIMIT};
use crate::security::login::Admin;
use crate::state::Web;

/// The query string of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// At most this many records (default 100, at most 1000).
    limit: Option<u32>,
    /// Only records with an id below this one (the next page: the smallest id seen).
    before: Option<u64>,
    /// Only this action (e.g. `wake`, `add_user`).
    action: Option<String>,
    /// Only records naming this host id (`cluster:name`).
    host: Option<String>,
}

/// `GET /api/v1/audit`: the records, newest first.
pub async fn list(
    State(w): State<Arc<Web>>,
    _: Admin,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let Query(p) = q.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected ?limit=&before=&action=&host=: {e}"),
        )
    })?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit: must be 1 to {MAX_LIMIT}"),
        ));
    }
    let q = AuditQuery {
        limit,
        before: p.before,
        action: p.action.filter(|a| !a.is_empty()),
        host: p.host.filter(|h| !h.is_empty()),
    };
    let log = w.security.audit_log();
    tokio::task::spawn_blocking(move || log.query(&q))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map(Json)
        .map_err(|e| {
            tracing::error!(error = %e, "Cannot read the audit log.");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        })
}
