//! The bodies of the session routes: `POST /api/v1/login`, `GET /api/v1/me` and
//! `GET /api/v1/admin/users`, and the `{"error": "..."}` body of every refused request.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/login` body. Its `Debug` never shows the password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What a caller may do, as the session routes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees the dashboard.
    Viewer,
    /// Sees everything, and may use every action.
    Admin,
    /// Not logged in, on a dashboard with `public_read_only` (only in [`Me`]).
    Public,
    /// Not logged in, on a dashboard that is not public: nothing may be read (only in [`Me`]).
    #[serde(rename = "none")]
    LoggedOut,
}

/// `POST /api/v1/login` answer: who is now logged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedIn {
    /// User name.
    pub user: String,
    /// Role.
    pub role: Role,
}

/// `GET /api/v1/me` answer, also without a session (a probe, not an error: the login page asks
/// it to learn whether the dashboard is public).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// Whether the request came with a live login session.
    pub authenticated: bool,
    /// User name; `None` without a session.
    pub user: Option<String>,
    /// Role: [`Role::Public`] for an anonymous visitor of a public dashboard,
    /// [`Role::LoggedOut`] without a session on one that is not.
    pub role: Role,
    /// Whether anonymous visitors may watch.
    pub public_read_only: bool,
}

/// One entry of `GET /api/v1/admin/users` (admins only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    /// User name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// The body of every 4xx/5xx answer of the REST API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Why the request was refused, in words.
    pub error: String,
}
