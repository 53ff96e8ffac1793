//! Who a request comes from: what a session remembers of its login ([`Login`]), and the
//! extractors a route uses to say who may call it ([`Reader`], [`Admin`]). The login, logout
//! and `me` routes themselves are in `routes::auth`.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::security::{Principal, Role};

/// The session key of a login.
pub const LOGIN_KEY: &str = "smon.login";

/// What a session remembers of its login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    /// User name.
    pub user: String,
    /// Role at login.
    pub role: Role,
    /// When (ms since the epoch).
    pub login_ms: u64,
}

/// Extractor: anyone allowed to read (a user, or anybody on a public dashboard); else 401.
pub struct Reader(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Reader {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Reader)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "login required".into()))
    }
}

/// Extractor: an admin; 401 without a session, 403 for anyone else.
pub struct Admin(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &S,
    ) -> Result<Self, Self::Rejection> {
        let Reader(p) = Reader::from_request_parts(parts, s).await?;
        if p.is_admin() {
            Ok(Admin(p))
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this needs the admin role".into(),
            ))
        }
    }
}
