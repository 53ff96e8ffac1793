//! Accounts: everyone changes their own password (with the current one); admins list, add
//! and remove users, set roles and reset passwords. Users of the config's `server.auth.users`
//! are shown but not changed here (the config is the operator's file); the users file is
//! rewritten before memory, the last admin can be neither removed nor demoted, and every
//! change, done or refused, is audited ([`crate::security::audit`]). A new password ends the
//! user's other sessions; removing a user or changing a role ends theirs at their next
//! request.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tower_sessions::Session;

use smon_api::auth::{ChangePassword, NewUser, ResetPassword, Role as ApiRole, SetRole, UserEntry};

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::security::audit::AuditEvent;
use crate::security::login::{Admin, LOGIN_KEY, Login, Reader};
use crate::security::net::Client;
use crate::security::users::{self, AccountError, Change, Role, User};
use crate::security::{Principal, Security};
use crate::state::Web;

/// Shortest password accepted (as `hash-password`).
const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (as the login).
const MAX_PASSWORD_BYTES: usize = 1024;

fn bad(why: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, why)
}

fn body<T: DeserializeOwned>(
    b: Result<Json<T>, JsonRejection>,
    shape: &str,
) -> Result<T, ApiError> {
    b.map(|Json(t)| t)
        .map_err(|e| bad(format!("expected {shape}: {e}")))
}

fn check_password(field: &str, p: &str) -> Result<(), ApiError> {
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(bad(format!(
            "{field}: shorter than {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(bad(format!(
            "{field}: longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

fn role_of(r: ApiRole) -> Result<Role, ApiError> {
    match r {
        ApiRole::Viewer => Ok(Role::Viewer),
        ApiRole::Admin => Ok(Role::Admin),
        ApiRole::Public | ApiRole::LoggedOut => {
            Err(bad("role: must be 'viewer' or 'admin'".into()))
        }
    }
}

fn refused(e: &AccountError) -> ApiError {
    let status = match e {
        AccountError::NotFound(_) => StatusCode::NOT_FOUND,
        AccountError::Exists(_) | AccountError::FromConfig(_) | AccountError::LastAdmin(_) => {
            StatusCode::CONFLICT
        }
        AccountError::InvalidName(_) => StatusCode::BAD_REQUEST,
        AccountError::Users(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

fn login_required() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "login required".into())
}

fn name_of(p: &Principal) -> String {
    match p {
        Principal::User { name, .. } => name.clone(),
        Principal::Anonymous => String::new(),
    }
}

/// Who asks for an account change, and what, for the audit.
struct Asked {
    actor: String,
    client: std::net::IpAddr,
    action: &'static str,
    target: String,
    role: Option<Role>,
}

impl Asked {
    /// `action` on `target` by the admin `p`, from `client`.
    fn by(p: &Principal, client: &Client, action: &'static str, target: &str) -> Self {
        Self {
            actor: name_of(p),
            client: client.ip,
            action,
            target: target.to_owned(),
            role: None,
        }
    }

    /// The same, setting `role`.
    fn with_role(self, role: Role) -> Self {
        Self {
            role: Some(role),
            ..self
        }
    }
}

/// Hashes `password` and makes the change `make(hash)` (both off the async threads), then
/// audits it.
async fn change(
    sec: Arc<Security>,
    asked: Asked,
    password: Option<String>,
    make: impl FnOnce(Option<String>) -> Change + Send + 'static,
) -> Result<(), AccountError> {
    let s = sec.clone();
    let Asked {
        actor,
        client: ip,
        action,
        target: t,
        role,
    } = asked;
    tokio::task::spawn_blocking(move || {
        let hash = match password {
            Some(p) => Some(users::hash_password(&p)?),
            None => None,
        };
        let c = make(hash);
        let r = s.users.apply(&c);
        s.users.audit(&AuditEvent {
            client: Some(ip),
            target: t,
            role: role.map(|r| r.as_str().to_owned()),
            outcome: match &r {
                Ok(()) => "ok".into(),
                Err(e) => e.to_string(),
            },
            ..AuditEvent::new(now_ms(), actor, action)
        });
        r
    })
    .await
    .unwrap_or_else(|e| {
        Err(AccountError::Users(users::UsersError::Hash(format!(
            "the change did not finish: {e}"
        ))))
    })
}

/// After a password change or reset of `user`: their sessions end, their login failures
/// are forgotten, and the first-start password file goes once `admin` has a new password.
fn after_new_password(sec: &Security, user: &str, now: u64) {
    sec.users.end_sessions(user, now);
    sec.throttle.forget_user(user);
    if user == "admin" && users::remove_initial_password(sec.users.file()) {
        tracing::info!("Removed the first-start password file: the password was changed.");
    }
}

/// `POST /api/v1/me/password`: changes the caller's own password; needs the current one
/// (checked like a login, throttled the same way). The caller's session stays; its other
/// sessions end.
pub async fn change_own_password(
    State(w): State<Arc<Web>>,
    Extension(client): Extension<Client>,
    Reader(p): Reader,
    session: Session,
    b: Result<Json<ChangePassword>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(b, r#"{"current": "...", "new": "..."}"#)?;
    let Principal::User { name, role, .. } = &p else {
        return Err(login_required());
    };
    let (name, role) = (name.clone(), *role);
    check_password("new", &req.new)?;
    if req.current.len() > MAX_PASSWORD_BYTES {
        return Err(bad(format!(
            "current: longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let sec = w.security.clone();
    // The current password is checked like a login: a stolen session cannot guess it.
    let attempt = match sec.throttle.reserve(client.ip, &name, now_ms()) {
        Ok(a) => a,
        Err(r) => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many wrong passwords; try again in {} s",
                    r.wait.as_secs().max(1)
                ),
            ));
        }
    };
    let Some(user) = sec.users.get(&name) else {
        return Err(login_required());
    };
    let Ok(_permit) = sec.hashing.acquire().await else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down".into(),
        ));
    };
    let current = req.current;
    let hash = user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || users::verify_password(&current, &hash))
        .await
        .unwrap_or(false);
    if !ok {
        let s = sec.clone();
        tokio::task::spawn_blocking(move || s.throttle.persist_logged());
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "current: not your current password".into(),
        ));
    }
    sec.throttle.succeeded(&attempt);
    let target = name.clone();
    change(
        sec.clone(),
        Asked::by(&p, &client, "change_own_password", &name),
        Some(req.new),
        move |h| Change::SetPassword(target, h.unwrap_or_default()),
    )
    .await
    .map_err(|e| refused(&e))?;
    let now = now_ms();
    after_new_password(&sec, &name, now);
    // This session goes on: it counts as a login made now.
    let password_mark = sec
        .users
        .get(&name)
        .map(|u| users::password_mark(&u.password_hash))
        .unwrap_or_default();
    let login = Login {
        user: name,
        role,
        login_ms: now,
        password_mark,
    };
    let saved = async {
        session.cycle_id().await?;
        session.insert(LOGIN_KEY, &login).await
    }
    .await;
    if let Err(e) = saved {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("password changed, but the session could not be kept: {e}"),
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn entry(u: &User, from_config: bool) -> UserEntry {
    UserEntry {
        name: u.name.clone(),
        role: u.role.into(),
        from_config,
    }
}

/// `GET /api/v1/admin/users`: the users and their roles (admins only; never the hashes).
pub async fn list(State(w): State<Arc<Web>>, _: Admin) -> Response {
    let list: Vec<_> = w
        .security
        .users
        .list()
        .iter()
        .map(|(u, c)| entry(u, *c))
        .collect();
    Json(list).into_response()
}

/// `POST /api/v1/admin/users`: adds a user (201 with its entry).
pub async fn add(
    State(w): State<Arc<Web>>,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    b: Result<Json<NewUser>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(
        b,
        r#"{"name": "...", "role": "viewer" | "admin", "password": "..."}"#,
    )?;
    if !users::valid_name(&req.name) {
        return Err(bad(
            "name: a user name is 1-64 letters, digits, '.', '_', '-' or '@'".into(),
        ));
    }
    let role = role_of(req.role)?;
    check_password("password", &req.password)?;
    let name = req.name.clone();
    change(
        w.security.clone(),
        Asked::by(&p, &client, "add_user", &req.name).with_role(role),
        Some(req.password),
        move |h| {
            Change::Add(User {
                name,
                password_hash: h.unwrap_or_default(),
                role,
            })
        },
    )
    .await
    .map_err(|e| refused(&e))?;
    let created = UserEntry {
        name: req.name,
        role: role.into(),
        from_config: false,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `DELETE /api/v1/admin/users/{name}`: removes a user (never the last admin).
pub async fn remove(
    State(w): State<Arc<Web>>,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let target = name.clone();
    change(
        w.security.clone(),
        Asked::by(&p, &client, "remove_user", &name),
        None,
        move |_| Change::Remove(target),
    )
    .await
    .map_err(|e| refused(&e))?;
    w.security.users.end_sessions(&name, now_ms());
    w.security.throttle.forget_user(&name);
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/v1/admin/users/{name}/role`: sets a role (never demotes the last admin).
pub async fn set_role(
    State(w): State<Arc<Web>>,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path(name): Path<String>,
    b: Result<Json<SetRole>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let role = role_of(body(b, r#"{"role": "viewer" | "admin"}"#)?.role)?;
    let target = name.clone();
    change(
        w.security.clone(),
        Asked::by(&p, &client, "set_role", &name).with_role(role),
        None,
        move |_| Change::SetRole(target, role),
    )
    .await
    .map_err(|e| refused(&e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/v1/admin/users/{name}/password`: sets a user's password; their sessions end.
pub async fn reset_password(
    State(w): State<Arc<Web>>,
    Extension(client): Extension<Client>,
    Admin(p): Admin,
    Path(name): Path<String>,
    b: Result<Json<ResetPassword>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let req = body(b, r#"{"password": "..."}"#)?;
    check_password("password", &req.password)?;
    let target = name.clone();
    change(
        w.security.clone(),
        Asked::by(&p, &client, "reset_password", &name),
        Some(req.password),
        move |h| Change::SetPassword(target, h.unwrap_or_default()),
    )
    .await
    .map_err(|e| refused(&e))?;
    after_new_password(&w.security, &name, now_ms());
    Ok(StatusCode::NO_CONTENT)
}
