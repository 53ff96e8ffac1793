//! Login, logout, `me` and the user list: sessions in HttpOnly, SameSite=Strict cookies (Secure
//! over TLS), a new session id at each login, and failed logins throttled per client address
//! and per user name ([`crate::security::throttle`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use smon_api::auth::{LoggedIn, Me, Role as ApiRole, UserEntry};

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::security::Principal;
use crate::security::login::{Admin, LOGIN_KEY, Login};
use crate::security::net::Client;
use crate::state::Web;

/// `POST /api/v1/login` body: one definition, in the wire crate.
pub use smon_api::auth::LoginRequest;

fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed logins; try again in {secs} s"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// `POST /api/v1/login`: checks the password (off the async threads, at most two at once),
/// throttles failures, and on success starts a new session (a new id: no fixation).
pub async fn login(
    State(w): State<Arc<Web>>,
    Extension(client): Extension<Client>,
    session: Session,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"user\": \"...\", \"password\": \"...\"}}: {e}"),
            )
            .into_response();
        }
    };
    let sec = w.security.clone();
    let ip_key = format!("ip:{}", client.ip);
    let user_key = format!("user:{}", req.user);
    let now = Instant::now();
    let wait = [&ip_key, &user_key]
        .iter()
        .filter_map(|k| sec.throttle.blocked(k, now))
        .max();
    if let Some(wait) = wait {
        tracing::warn!(user = %req.user, client = %client.ip, "Login refused: too many failures.");
        return too_many(wait);
    }
    let Ok(_permit) = sec.hashing.acquire().await else {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into())
            .into_response();
    };
    let user = sec.users.get(&req.user).cloned();
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = req.password;
    let s = sec.clone();
    let ok = tokio::task::spawn_blocking(move || {
        let hash = hash.as_deref().unwrap_or_else(|| s.dummy_hash());
        crate::security::users::verify_password(&password, hash)
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        let now = Instant::now();
        sec.throttle.fail(&ip_key, now);
        sec.throttle.fail(&user_key, now);
        tracing::warn!(user = %req.user, client = %client.ip, "Failed login.");
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password".into(),
        )
        .into_response();
    };
    sec.throttle.clear(&user_key);
    let login = Login {
        user: user.name.clone(),
        role: user.role,
        login_ms: now_ms(),
    };
    let saved = async {
        session.cycle_id().await?;
        session.insert(LOGIN_KEY, &login).await
    }
    .await;
    if let Err(e) = saved {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot start a session: {e}"),
        )
        .into_response();
    }
    tracing::info!(user = %user.name, role = user.role.as_str(), client = %client.ip, "Login.");
    Json(LoggedIn {
        user: user.name,
        role: user.role.into(),
    })
    .into_response()
}

/// `POST /api/v1/logout`: ends the session and closes its live sockets.
pub async fn logout(State(w): State<Arc<Web>>, session: Session) -> Response {
    let id = session.id().map(|i| i.to_string());
    if let Ok(Some(l)) = session.get::<Login>(LOGIN_KEY).await {
        tracing::info!(user = %l.user, "Logout.");
    }
    let _ = session.flush().await;
    if let Some(id) = id {
        w.disconnect_session(&id);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /api/v1/me`: who the browser is logged in as. Without a session it answers 200 with
/// `authenticated: false` rather than 401: the login page asks it on every visit, and a probe
/// whose answer is "nobody" is not an error (a 401 would be logged in the browser's console).
pub async fn me(State(w): State<Arc<Web>>, p: Option<Extension<Principal>>) -> Response {
    let public = w.security.http.auth.public_read_only;
    let me = match p.map(|e| e.0) {
        Some(Principal::User { name, role, .. }) => Me {
            authenticated: true,
            user: Some(name),
            role: role.into(),
            public_read_only: public,
        },
        Some(Principal::Anonymous) => Me {
            authenticated: false,
            user: None,
            role: ApiRole::Public,
            public_read_only: public,
        },
        None => Me {
            authenticated: false,
            user: None,
            role: ApiRole::LoggedOut,
            public_read_only: public,
        },
    };
    Json(me).into_response()
}

/// `GET /api/v1/admin/users`: the users and their roles (admins only; never the hashes).
pub async fn users(State(w): State<Arc<Web>>, _: Admin) -> Response {
    let list: Vec<_> = w
        .security
        .users
        .values()
        .map(|u| UserEntry {
            name: u.name.clone(),
            role: u.role.into(),
        })
        .collect();
    Json(list).into_response()
}
