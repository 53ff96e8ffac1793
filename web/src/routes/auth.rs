//! Login, logout and `me`: sessions in HttpOnly, SameSite=Strict cookies (Secure
//! over TLS), a new session id at each login, and logins throttled per address, per address
//! and user name, and per user name ([`crate::security::throttle`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use smon_api::auth::{LoggedIn, Me, Role as ApiRole};

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::security::Principal;
use crate::security::login::{LOGIN_KEY, Login, log_safe};
use crate::security::net::Client;
use crate::security::users::{self, valid_name};
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

/// Longest password accepted (argon2 takes any length; a megabyte of it is only a cost).
const MAX_PASSWORD_BYTES: usize = 1024;

/// `POST /api/v1/login`: refuses malformed names early (400, before any hashing), reserves
/// the attempt in the throttle BEFORE the check (see [`crate::security::throttle`]), waits
/// out the user name's backoff, checks the password (off the async threads, at most two at
/// once), and on success starts a new session (a new id: no fixation). Log lines of refused
/// and failed logins are rate-limited, with a count of those left out, and every value from
/// the request in them is escaped.
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
    let refused_log = |why: &str| {
        if let Some(suppressed) = sec.throttle.log.admit(now_ms()) {
            tracing::warn!(
                user = %log_safe(&req.user),
                client = %client.ip,
                suppressed,
                "Login refused: {why}."
            );
        }
    };
    if !valid_name(&req.user) {
        refused_log("not a valid user name");
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "user: a user name is 1-64 letters, digits, '.', '_', '-' or '@'".into(),
        )
        .into_response();
    }
    if req.password.len() > MAX_PASSWORD_BYTES {
        refused_log("password too long");
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("password: longer than {MAX_PASSWORD_BYTES} bytes"),
        )
        .into_response();
    }
    // The attempt counts from here on, whatever happens to this request.
    let attempt = match sec.throttle.reserve(client.ip, &req.user, now_ms()) {
        Ok(a) => a,
        Err(refusal) => {
            refused_log(&format!("too many failures per {}", refusal.limit));
            return too_many(refusal.wait);
        }
    };
    if !attempt.delay.is_zero() {
        tokio::time::sleep(attempt.delay).await;
    }
    let Ok(_permit) = sec.hashing.acquire().await else {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into())
            .into_response();
    };
    let user = sec.users.get(&req.user);
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = req.password;
    let s = sec.clone();
    let ok = tokio::task::spawn_blocking(move || {
        // Saved before the check, so that a crash during it does not forget the attempt.
        s.throttle.persist_logged();
        let hash = hash.as_deref().unwrap_or_else(|| s.dummy_hash());
        crate::security::users::verify_password(&password, hash)
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        if let Some(suppressed) = sec.throttle.log.admit(now_ms()) {
            tracing::warn!(user = %log_safe(&req.user), client = %client.ip, suppressed, "Failed login.");
        }
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password".into(),
        )
        .into_response();
    };
    sec.throttle.succeeded(&attempt);
    let s = sec.clone();
    tokio::task::spawn_blocking(move || s.throttle.persist_logged());
    let login = Login {
        user: user.name.clone(),
        role: user.role,
        login_ms: now_ms(),
        password_mark: users::password_mark(&user.password_hash),
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
        tracing::info!(user = %log_safe(&l.user), "Logout.");
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
