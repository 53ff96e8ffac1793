//! Who may use the HTTP side, and what each one sees.
//!
//! - [`config`]: the `server` block's security fields, shared by both daemons, and their checks.
//! - [`net`]: CIDR allow-lists, the client's address behind a trusted proxy, and the host
//!   names the server answers to (`allowed_hosts`, against DNS rebinding).
//! - [`users`]: local users with argon2 hashes, the users file, the first-start `admin`.
//! - [`login`]: what a session remembers of its login, and the extractors routes use to say
//!   who may call them.
//! - [`throttle`]: login attempts per address, per address and user, and per user name.
//! - [`audit`]: the audit trail of account changes, host actions and API tokens.
//! - [`tokens`]: API tokens (`Authorization: Bearer`), stored hashed, and their store.
//! - [`layers`]: the middleware: allow-list, host names, session to [`Principal`], the
//!   Engine.IO handshake gate, CSRF, security headers.
//! - [`handshake`]: which Engine.IO handshakes may open a session, and the places of
//!   anonymous visitors of a public dashboard.
//!
//! Policy only: the routes that log in and out are in `routes::auth`; nothing here depends on
//! the shared state of the HTTP side (`state::Web`).
//! - [`visibility`]: what a viewer or an anonymous visitor of a public dashboard may see of a
//!   sample.

pub mod audit;
pub mod config;
pub mod handshake;
pub mod layers;
pub mod login;
pub mod net;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod users;
pub mod visibility;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::{AuthConfig, AuthSettings, HttpSecurity, TlsFiles};
pub use users::Role;
pub use visibility::Class;

use crate::security::throttle::Throttle;
use crate::security::users::UserStore;

/// Who made a request (or opened a socket), once the session has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Nobody logged in, on a dashboard in public read-only mode.
    Anonymous,
    /// A logged-in user.
    User {
        /// Login name.
        name: String,
        /// Role at login.
        role: Role,
        /// When the session ends whatever happens (ms since the epoch).
        expires_ms: u64,
        /// The session's id, to close its sockets at logout.
        session: String,
    },
}

impl Principal {
    /// Who it is in logs and the audit: the user's name, or `anonymous`.
    pub fn actor(&self) -> &str {
        match self {
            Self::User { name, .. } => name,
            Self::Anonymous => "anonymous",
        }
    }

    /// What this principal may see.
    pub fn class(&self) -> Class {
        match self {
            Self::Anonymous => Class::Public,
            Self::User {
                role: Role::Admin, ..
            } => Class::Full,
            Self::User {
                role: Role::Viewer, ..
            } => Class::Viewer,
        }
    }

    /// Whether this principal is an admin.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Self::User {
                role: Role::Admin,
                ..
            }
        )
    }
}

/// The security state of one HTTP server: its checked settings, its users and the login
/// throttle.
pub struct Security {
    /// The checked settings.
    pub http: HttpSecurity,
    /// The users, by name.
    pub users: UserStore,
    /// Login attempts per address, per address and user, and per user (kept across restarts).
    pub throttle: Throttle,
    /// At most this many password checks at once (argon2 is slow on purpose).
    pub hashing: tokio::sync::Semaphore,
    /// Rate limit of the log lines about requests for host names not allowed.
    pub(crate) host_refusals: layers::LogEvery,
    /// A hash to check wrong user names against, so that they take as long as wrong passwords
    /// (made at the first such login, not at start-up: argon2 takes 19 MiB and tens of ms).
    dummy_hash: std::sync::OnceLock<String>,
    /// Where login sessions are kept: the database once [`Security::keep_sessions`] was
    /// called, else memory.
    sessions: std::sync::OnceLock<sessions::Sessions>,
    /// Where API tokens are looked up, once [`Security::keep_tokens`] was called (the
    /// database); without one, bearer requests get 401.
    tokens: std::sync::OnceLock<Arc<dyn tokens::TokenStore>>,
}

/// Why [`Security::start`] refused.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The users could not be read, or the first-start `admin` could not be made.
    #[error(transparent)]
    Users(#[from] users::UsersError),
    /// No users, not public, and not on loopback: nobody could log in.
    #[error(
        "refusing to serve on {listen}, which is not a loopback address, with no users: add users \
         to server.auth.users or {} (make a hash with `hash-password`), or set \
         server.auth.public_read_only to true for an anonymous read-only dashboard",
        users_file.display()
    )]
    NoUsers {
        /// The listening address.
        listen: SocketAddr,
        /// The users file that could hold users.
        users_file: std::path::PathBuf,
    },
}

/// What [`Security::start`] did about users, for the caller to report.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Users were configured.
    Users(usize),
    /// No users, public read-only mode.
    PublicOnly,
    /// The first start on loopback: an `admin` was created; the password is to be shown once.
    CreatedAdmin {
        /// The users file written.
        file: std::path::PathBuf,
        /// The password, to print once.
        password: String,
    },
}

impl Security {
    /// Loads the users (config and users file) for a server listening on `listen`. With none
    /// and no public mode: on loopback, creates `admin` with a random password in the users
    /// file; elsewhere, refuses to start.
    pub fn start(
        http: HttpSecurity,
        listen: SocketAddr,
    ) -> Result<(Arc<Self>, Bootstrap), StartError> {
        let auth = &http.auth;
        let from_file = users::read_file(&auth.users_file)?;
        let mut all = users::merge(&auth.users, &from_file, &auth.users_file)?;
        let bootstrap = if !all.is_empty() {
            Bootstrap::Users(all.len())
        } else if auth.public_read_only {
            Bootstrap::PublicOnly
        } else if listen.ip().is_loopback() {
            let password = users::random_password();
            let admin = users::User {
                name: "admin".into(),
                password_hash: users::hash_password(&password)?,
                role: Role::Admin,
            };
            users::write_file(&auth.users_file, std::slice::from_ref(&admin))?;
            all.insert(admin.name.clone(), admin);
            Bootstrap::CreatedAdmin {
                file: auth.users_file.clone(),
                password,
            }
        } else {
            return Err(StartError::NoUsers {
                listen,
                users_file: auth.users_file.clone(),
            });
        };
        let throttle = throttle::for_auth(auth);
        let users = UserStore::new(all, &auth.users, auth.users_file.clone());
        users::drop_stale_initial_password(&auth.users_file, &users);
        let sec = Self {
            http,
            users,
            throttle,
            hashing: tokio::sync::Semaphore::new(2),
            host_refusals: layers::LogEvery::default(),
            dummy_hash: std::sync::OnceLock::new(),
            sessions: std::sync::OnceLock::new(),
            tokens: std::sync::OnceLock::new(),
        };
        Ok((Arc::new(sec), bootstrap))
    }

    /// The hash wrong user names are checked against. Slow the first time: call it off the
    /// async threads.
    pub fn dummy_hash(&self) -> &str {
        self.dummy_hash
            .get_or_init(|| users::hash_password(&users::random_password()).unwrap_or_default())
    }

    /// Keeps login sessions in `store` (the server's database) instead of memory. Call it
    /// before the router is built; a second call changes nothing.
    pub fn keep_sessions(&self, store: sessions::Sessions) {
        let _ = self.sessions.set(store);
    }

    /// The session store (memory unless [`Security::keep_sessions`] chose another).
    pub fn sessions(&self) -> sessions::Sessions {
        self.sessions
            .get_or_init(sessions::Sessions::default)
            .clone()
    }

    /// Looks API tokens up in `store` (the server's database). Call it before serving; a
    /// second call changes nothing.
    pub fn keep_tokens(&self, store: Arc<dyn tokens::TokenStore>) {
        let _ = self.tokens.set(store);
    }

    /// The token store, if the server keeps tokens.
    pub fn tokens(&self) -> Option<Arc<dyn tokens::TokenStore>> {
        self.tokens.get().cloned()
    }

    /// Records audit events in `log` (the server's database) instead of the file beside the
    /// users file.
    pub fn keep_audit(&self, log: Arc<dyn audit::AuditLog>) {
        self.users.set_audit_log(log);
    }

    /// The audit log (to query it).
    pub fn audit_log(&self) -> Arc<dyn audit::AuditLog> {
        self.users.audit_log()
    }

    /// Logs and records `e` in the audit log. Blocking (a database or file write): from async
    /// code use [`Security::audit_later`].
    pub fn audit(&self, e: &audit::AuditEvent) {
        self.users.audit(e);
    }

    /// Logs and records `e` in the audit log off the async threads; resolves once it is
    /// written (or its loss logged).
    pub async fn audit_later(self: &Arc<Self>, e: audit::AuditEvent) {
        let s = self.clone();
        let _ = tokio::task::spawn_blocking(move || s.audit(&e)).await;
    }

    /// The idle expiry of a session.
    pub fn idle(&self) -> Duration {
        self.http.auth.idle
    }
}

/// Hands over the first-start password once. On a terminal it is printed on stderr; otherwise
/// (a service manager collecting stderr into a log) it goes to a file readable by the owner
/// only, next to the users file, and the log says where, never the password. The file is
/// removed once the password is changed.
pub fn announce(b: &Bootstrap, daemon: &str) {
    use std::io::IsTerminal;
    let Bootstrap::CreatedAdmin { file, password } = b else {
        return;
    };
    if std::io::stderr().is_terminal() {
        eprintln!(
            "\n  ==================================================================\n  \
             {daemon}: first start, created the user 'admin'.\n  \
             Password (shown only this once): {password}\n  \
             Stored hashed in {}.\n  \
             Change it on the dashboard's Accounts page.\n  \
             ==================================================================\n",
            file.display()
        );
        return;
    }
    let path = users::initial_password_file(file);
    let text = format!(
        "{daemon}: first start, created the user 'admin'.\n\
         password: {password}\n\
         This file is removed once that password is changed (the dashboard's Accounts page).\n"
    );
    match smon_runtime::secret_file::write_private(&path, text.as_bytes()) {
        Ok(()) => tracing::warn!(
            file = %path.display(),
            "First start: created the user 'admin'; its password is in this file (mode 0600)."
        ),
        Err(e) => tracing::error!(
            file = %path.display(),
            error = %e,
            "First start: created the user 'admin' but cannot write its password; set one with hash-password."
        ),
    }
}
