//! The HTTP routes, apart from the security policy that guards them: [`auth`] (login, logout,
//! `me`), [`reach`] (reachability checks), [`accounts`] (passwords, users and roles), [`audit`]
//! (the audit log), [`api`] (REST, health, metrics, the UI's
//! pages and assets) and [`history`] (the stored history's routes).

pub mod accounts;
pub mod actions;
pub mod alerts;
pub mod api;
pub mod applications;
pub mod applications_act;
pub mod audit;
pub mod auth;
#[cfg(feature = "database")]
pub mod history;
pub mod inventory;
pub mod programs;
pub mod reach;
mod record;

/// Without the `database` feature (a lean agent's single-host view): the history routes exist and
/// answer 503, as a server with history off does.
#[cfg(not(feature = "database"))]
pub mod history {
    use std::sync::Arc;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    use crate::error::ApiError;
    use crate::state::Web;

    async fn off() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "history is off on this server (built without its database: cargo feature history)"
                .into(),
        )
    }

    /// The history routes under `base`, each answering 503.
    pub(crate) fn routes(app: Router<Arc<Web>>, base: &str) -> Router<Arc<Web>> {
        super::HISTORY_PATHS.iter().fold(app, |app, path| {
            app.route(&format!("{base}{path}"), get(off))
        })
    }
}

/// The paths of the history routes (`web/PROTOCOL.md`, "History"), under the base path.
pub(crate) const HISTORY_PATHS: [&str; 5] = [
    "/api/v1/hosts/{id}/history",
    "/api/v1/hosts/{id}/processes",
    "/api/v1/clusters/{name}/history",
    "/api/v1/gpus/usage",
    "/api/v1/admin/storage",
];
