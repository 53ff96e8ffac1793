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
    /// A mark of the user's password hash at login ([`crate::security::users::password_mark`]):
    /// a session outlives a restart, but not a change of the password (made here, or in the
    /// users file while the server was down).
    #[serde(default)]
    pub password_mark: String,
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

/// Longest text of a request shown in a log line; the rest is cut and its size given.
const LOG_TEXT_MAX: usize = 64;

/// `s`, a value from a request, made safe for a log line: control characters (CR, LF, ESC
/// ...) and bidirectional overrides escaped, so that it cannot forge a line or colour a
/// terminal, and cut to 64 characters, so that it cannot flood the log.
pub fn log_safe(s: &str) -> String {
    let cut: String = s.chars().take(LOG_TEXT_MAX).collect();
    let mut out = smon_runtime::config::printable(&cut).into_owned();
    if cut.len() < s.len() {
        out.push_str(&format!("... ({} bytes)", s.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_values_cannot_forge_lines_or_flood() {
        let s = log_safe("bob\n2026-01-01T00:00:00Z  INFO forged\r\x1b[31mred");
        assert!(!s.chars().any(char::is_control), "{s}");
        assert!(s.contains("\\u{a}") && s.contains("\\u{1b}"), "{s}");
        let long = log_safe(&"x".repeat(15_000));
        assert!(
            long.len() < 100 && long.ends_with("(15000 bytes)"),
            "{long}"
        );
        assert_eq!(log_safe("alice"), "alice");
    }
}
