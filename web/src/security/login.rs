//! Login, logout and `me`: sessions in HttpOnly, SameSite=Strict cookies (Secure over TLS),
//! a new session id at each login, idle and absolute expiry, and throttling of failed logins
//! per client address and per user name.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, extract::FromRequestParts};
use serde::{Deserialize, Serialize};
use smon_api::auth::{LoggedIn, Me, Role as ApiRole, UserEntry};
use tower_sessions::Session;

use crate::hub::{ApiError, Web, now_ms};
use crate::security::net::Client;
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

/// Failed logins per key (an address or a user name) within a window.
pub struct Throttle {
    max: u32,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Keys kept at most; past this, keys with no recent failure are forgotten first.
const MAX_KEYS: usize = 100_000;

impl Throttle {
    /// At most `max` failures per key within `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(wait)` while `key` has used up its failures.
    pub fn blocked(&self, key: &str, now: Instant) -> Option<Duration> {
        let m = self.lock();
        let q = m.get(key)?;
        let recent: Vec<&Instant> = q
            .iter()
            .filter(|t| now.duration_since(**t) < self.window)
            .collect();
        if recent.len() < self.max as usize {
            return None;
        }
        let oldest = recent.first()?;
        Some(self.window.saturating_sub(now.duration_since(**oldest)))
    }

    /// Records a failure of `key`.
    pub fn fail(&self, key: &str, now: Instant) {
        let mut m = self.lock();
        if m.len() >= MAX_KEYS {
            let window = self.window;
            m.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = m.entry(key.to_owned()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        q.push_back(now);
        while q.len() > self.max as usize {
            q.pop_front();
        }
    }

    /// Forgets the failures of `key` (after a successful login).
    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }
}

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
        super::users::verify_password(&password, hash)
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

/// `GET /api/v1/me`: who the browser is logged in as, or 401.
pub async fn me(State(w): State<Arc<Web>>, p: Option<Extension<Principal>>) -> Response {
    let public = w.security.http.auth.public_read_only;
    match p.map(|e| e.0) {
        Some(Principal::User { name, role, .. }) => Json(Me {
            user: Some(name),
            role: role.into(),
            public_read_only: public,
        })
        .into_response(),
        Some(Principal::Anonymous) => Json(Me {
            user: None,
            role: ApiRole::Public,
            public_read_only: public,
        })
        .into_response(),
        None => ApiError::new(StatusCode::UNAUTHORIZED, "login required".into()).into_response(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_blocks_after_max_and_forgets_after_the_window() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(t.blocked("k", t0).is_none(), "attempt {i}");
            t.fail("k", t0);
        }
        let wait = t.blocked("k", t0).expect("blocked");
        assert!(wait <= Duration::from_secs(60));
        assert!(t.blocked("other", t0).is_none());
        assert!(t.blocked("k", t0 + Duration::from_secs(61)).is_none());
        t.clear("k");
        assert!(t.blocked("k", t0).is_none());
    }
}
