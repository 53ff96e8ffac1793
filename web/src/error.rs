//! The one place where a failed HTTP request becomes an answer: [`ApiError`], a status and a
//! reason, sent as `{"error": "..."}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A REST error: a status and a reason, as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    /// An error with `status` and the reason `why`.
    pub fn new(status: StatusCode, why: String) -> Self {
        Self(status, why)
    }

    /// The reason given.
    pub fn reason(&self) -> &str {
        &self.1
    }

    /// 404 with the reason `why`.
    pub fn not_found(why: String) -> Self {
        Self(StatusCode::NOT_FOUND, why)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}
