//! The bodies of the session and account routes: `POST /api/v1/login`, `GET /api/v1/me`,
//! `POST /api/v1/me/password`, `GET`/`POST /api/v1/admin/users`,
//! `DELETE /api/v1/admin/users/{name}`, `PUT /api/v1/admin/users/{name}/role` and
//! `.../password`, and the `{"error": "..."}` body of every refused request.

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
    /// Defined in the config's `server.auth.users`: the account routes cannot change it.
    #[serde(default)]
    pub from_config: bool,
}

/// `POST /api/v1/me/password` body: change one's own password. `Debug` hides both.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The current password.
    pub current: String,
    /// The new one (8 characters at least).
    pub new: String,
}

impl std::fmt::Debug for ChangePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangePassword").finish_non_exhaustive()
    }
}

/// `POST /api/v1/admin/users` body: a new user (admins only). `Debug` hides the password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// User name: 1-64 letters, digits, `.`, `_`, `-` or `@`.
    pub name: String,
    /// Role: `viewer` or `admin`.
    pub role: Role,
    /// The first password (8 characters at least).
    pub password: String,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// `PUT /api/v1/admin/users/{name}/role` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    /// `viewer` or `admin`.
    pub role: Role,
}

/// `PUT /api/v1/admin/users/{name}/password` body: an admin's reset. `Debug` hides it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// The new password (8 characters at least).
    pub password: String,
}

impl std::fmt::Debug for ResetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPassword").finish_non_exhaustive()
    }
}

/// The body of every 4xx/5xx answer of the REST API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Why the request was refused, in words.
    pub error: String,
}
