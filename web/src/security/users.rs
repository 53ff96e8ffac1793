//! Local users: names, argon2 password hashes and roles, from the config and from the users
//! file; the first-start `admin` with a random password; hashing for `hash-password`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::{PasswordHash, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

/// Why the users could not be read, written or made.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Argon2 refused to hash.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The users file exists but cannot be read.
    #[error("{}: cannot read the users file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The users file is not valid JSON of the expected shape.
    #[error("{}: {at}: {why}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where in it (a JSON path).
        at: String,
        /// What is wrong.
        why: String,
    },
    /// An entry of the users file is wrong.
    #[error("{}: users[{index}].{field}: {why}", path.display())]
    Entry {
        /// The file.
        path: PathBuf,
        /// The entry's position.
        index: usize,
        /// The field that is wrong.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The users file cannot be written.
    #[error("{}: cannot write the users file: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The users cannot be encoded as JSON.
    #[error("{0}")]
    Encode(#[from] serde_json::Error),
    /// A user is both in the config and in the users file.
    #[error("user '{name}' is both in server.auth.users and in {}: keep one", path.display())]
    Duplicate {
        /// The user.
        name: String,
        /// The users file.
        path: PathBuf,
    },
    /// `hash-password --user` with a name that cannot log in.
    #[error("'{0}' is not a valid user name (1-64 letters, digits, '.', '_', '-' or '@')")]
    InvalidName(String),
    /// The password could not be read from the terminal or stdin.
    #[error("{0}")]
    Input(#[source] std::io::Error),
    /// The two passwords typed differ.
    #[error("the passwords differ")]
    Differ,
    /// The password is too short.
    #[error("the password is shorter than 8 characters")]
    TooShort,
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees the dashboard (command lines and login origins only if the config says so).
    Viewer,
    /// Sees everything, and may use every action.
    Admin,
}

impl From<Role> for smon_api::auth::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Viewer => Self::Viewer,
            Role::Admin => Self::Admin,
        }
    }
}

impl Role {
    /// Parses `viewer` or `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// `viewer` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Admin => "admin",
        }
    }
}

/// One user, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// The PHC string of an argon2 hash.
    pub password_hash: String,
    /// Role.
    pub role: Role,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash is not a secret in the usual sense, but it stays out of logs all the same.
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

// The shape lives with the `server.auth` block in smon-runtime's config kit.
pub use smon_runtime::config::server::UserEntry;

/// The users file: `{"users": [...]}`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// The users.
    #[serde(default)]
    pub users: Vec<UserEntry>,
}

/// Whether `name` is an acceptable login name.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Checks one entry; `Err((field, problem))` names the field that is wrong.
pub fn check_entry(e: &UserEntry) -> Result<User, (&'static str, String)> {
    if !valid_name(&e.name) {
        return Err((
            "name",
            "must be 1-64 letters, digits, '.', '_', '-' or '@'".into(),
        ));
    }
    let role = Role::parse(&e.role).ok_or(("role", "must be 'viewer' or 'admin'".into()))?;
    match PasswordHash::new(&e.password_hash) {
        Ok(h) if h.algorithm.as_str().starts_with("argon2") => {}
        Ok(h) => {
            return Err((
                "password_hash",
                format!(
                    "is a {} hash; smon needs argon2 (make one with `hash-password`)",
                    h.algorithm
                ),
            ));
        }
        Err(_) => {
            return Err((
                "password_hash",
                "is not an argon2 PHC string like $argon2id$v=19$...; make one with `hash-password`"
                    .into(),
            ));
        }
    }
    Ok(User {
        name: e.name.clone(),
        password_hash: e.password_hash.clone(),
        role,
    })
}

/// Hashes `password` with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash`. Slow on purpose (tens of ms): call it off
/// the async threads.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A random password: 20 characters from an unambiguous alphabet (about 110 bits).
pub fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Reads the users file; a missing file is no users.
pub fn read_file(path: &Path) -> Result<Vec<User>, UsersError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(UsersError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let de = &mut serde_json::Deserializer::from_str(&text);
    let file: UsersFile = serde_path_to_error::deserialize(de).map_err(|e| UsersError::Parse {
        path: path.to_owned(),
        at: e.path().to_string(),
        why: e.inner().to_string(),
    })?;
    file.users
        .iter()
        .enumerate()
        .map(|(index, e)| {
            check_entry(e).map_err(|(field, why)| UsersError::Entry {
                path: path.to_owned(),
                index,
                field,
                why,
            })
        })
        .collect()
}

/// Writes the users file, readable by its owner only.
pub fn write_file(path: &Path, users: &[User]) -> Result<(), UsersError> {
    let file = UsersFile {
        users: users
            .iter()
            .map(|u| UserEntry {
                name: u.name.clone(),
                password_hash: u.password_hash.clone(),
                role: u.role.as_str().into(),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&file)? + "\n";
    write_private(path, &text).map_err(|source| UsersError::Write {
        path: path.to_owned(),
        source,
    })
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    smon_runtime::secret_file::write_private(path, text.as_bytes())
}

/// Users by name.
pub type Users = BTreeMap<String, User>;

/// Merges the config's users and the file's. A name in both is an error (which one counts
/// would be a guess).
pub fn merge(config: &[User], file: &[User], file_path: &Path) -> Result<Users, UsersError> {
    let mut all = Users::new();
    for u in config {
        all.insert(u.name.clone(), u.clone());
    }
    for u in file {
        if all.contains_key(&u.name) {
            return Err(UsersError::Duplicate {
                name: u.name.clone(),
                path: file_path.to_owned(),
            });
        }
        all.insert(u.name.clone(), u.clone());
    }
    Ok(all)
}

/// Why an account change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// No such user.
    #[error("no user '{0}'")]
    NotFound(String),
    /// The name is taken.
    #[error("user '{0}' exists already")]
    Exists(String),
    /// The user is defined in the config, which this server does not rewrite.
    #[error("user '{0}' is defined in server.auth.users of the config: change it there")]
    FromConfig(String),
    /// The change would leave no admin.
    #[error("user '{0}' is the last admin: make another admin first")]
    LastAdmin(String),
    /// Not an acceptable login name.
    #[error("'{0}' is not a valid user name (1-64 letters, digits, '.', '_', '-' or '@')")]
    InvalidName(String),
    /// The users file could not be written (nothing changed).
    #[error(transparent)]
    Users(#[from] UsersError),
}

/// A change to the users, as [`UserStore::apply`] makes it.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new user.
    Add(User),
    /// A user goes.
    Remove(String),
    /// A user's role.
    SetRole(String, Role),
    /// A user's password (the argon2 PHC string of the new one).
    SetPassword(String, String),
}

/// A short mark of a password hash, kept in a login session: when the hash changes (a new
/// password, here or in the users file), the user's older sessions no longer count, across
/// restarts too. One-way: it says nothing of the password.
pub fn password_mark(hash: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(hash.as_bytes());
    d.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The users of one server, changed at run time through the account routes: those of the
/// users file may change (the file is rewritten before memory, so a failed write changes
/// nothing); those of the config may not. Also the time before which a user's sessions no
/// longer count (set when the password is changed or the user removed).
pub struct UserStore {
    users: std::sync::RwLock<Users>,
    from_config: std::collections::BTreeSet<String>,
    file: PathBuf,
    valid_from_ms: std::sync::Mutex<BTreeMap<String, u64>>,
    /// Serialises changes: each writes the file from the state the previous one left.
    changing: std::sync::Mutex<()>,
    /// Where account changes (and every other audited action) are recorded: the file beside
    /// the users file until [`UserStore::set_audit_log`] chooses another (the database).
    audit: std::sync::RwLock<std::sync::Arc<dyn crate::security::audit::AuditLog>>,
}

impl UserStore {
    /// The users `all` (merged), of which `config` came from the config; changes go to
    /// `file`.
    pub fn new(all: Users, config: &[User], file: PathBuf) -> Self {
        Self {
            users: std::sync::RwLock::new(all),
            from_config: config.iter().map(|u| u.name.clone()).collect(),
            valid_from_ms: std::sync::Mutex::new(BTreeMap::new()),
            changing: std::sync::Mutex::new(()),
            audit: std::sync::RwLock::new(std::sync::Arc::new(
                crate::security::audit::FileAudit::beside(&file),
            )),
            file,
        }
    }

    /// Logs and records the account change `e` (blocking: a file append).
    pub fn audit(&self, e: &crate::security::audit::AuditEvent) {
        crate::security::audit::audit(self.audit_log().as_ref(), e);
    }

    /// Where audit records go now.
    pub fn audit_log(&self) -> std::sync::Arc<dyn crate::security::audit::AuditLog> {
        self.audit.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records audit events in `log` from now on (the server's database).
    pub fn set_audit_log(&self, log: std::sync::Arc<dyn crate::security::audit::AuditLog>) {
        *self.audit.write().unwrap_or_else(|p| p.into_inner()) = log;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Users> {
        self.users.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The user `name`.
    pub fn get(&self, name: &str) -> Option<User> {
        self.read().get(name).cloned()
    }

    /// Every user, by name, and whether it comes from the config.
    pub fn list(&self) -> Vec<(User, bool)> {
        self.read()
            .values()
            .map(|u| (u.clone(), self.from_config.contains(&u.name)))
            .collect()
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The users file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Whether a session of `user` with `role`, logged in at `login_ms` with the password
    /// marked `mark`, still counts: the user exists with that role and that password, and its
    /// sessions were not ended since.
    pub fn session_valid(&self, user: &str, role: Role, login_ms: u64, mark: &str) -> bool {
        let known = self
            .read()
            .get(user)
            .is_some_and(|u| u.role == role && password_mark(&u.password_hash) == mark);
        let from = self
            .valid_from_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .copied()
            .unwrap_or(0);
        known && login_ms >= from
    }

    /// Ends the sessions of `user` that began before `now_ms`.
    pub fn end_sessions(&self, user: &str, now_ms: u64) {
        self.valid_from_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(user.to_owned(), now_ms);
    }

    /// Makes `change`, writing the users file first. Refuses to touch a user of the config,
    /// and to remove or demote the last admin. Blocking (a file write): call it off the
    /// async threads.
    pub fn apply(&self, change: &Change) -> Result<(), AccountError> {
        let _turn = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = self.read().clone();
        let target = match change {
            Change::Add(u) => &u.name,
            Change::Remove(n) | Change::SetRole(n, _) | Change::SetPassword(n, _) => n,
        };
        if self.from_config.contains(target) {
            return Err(match change {
                Change::Add(_) => AccountError::Exists(target.clone()),
                _ => AccountError::FromConfig(target.clone()),
            });
        }
        match change {
            Change::Add(u) => {
                if !valid_name(&u.name) {
                    return Err(AccountError::InvalidName(u.name.clone()));
                }
                if next.contains_key(&u.name) {
                    return Err(AccountError::Exists(u.name.clone()));
                }
                next.insert(u.name.clone(), u.clone());
            }
            Change::Remove(n) => {
                next.remove(n)
                    .ok_or_else(|| AccountError::NotFound(n.clone()))?;
            }
            Change::SetRole(n, r) => {
                next.get_mut(n)
                    .ok_or_else(|| AccountError::NotFound(n.clone()))?
                    .role = *r;
            }
            Change::SetPassword(n, h) => {
                next.get_mut(n)
                    .ok_or_else(|| AccountError::NotFound(n.clone()))?
                    .password_hash = h.clone();
            }
        }
        let was_admin = self
            .read()
            .get(target)
            .is_some_and(|u| u.role == Role::Admin);
        let admins = next.values().filter(|u| u.role == Role::Admin).count();
        if was_admin && admins == 0 {
            return Err(AccountError::LastAdmin(target.clone()));
        }
        let in_file: Vec<User> = next
            .values()
            .filter(|u| !self.from_config.contains(&u.name))
            .cloned()
            .collect();
        write_file(&self.file, &in_file)?;
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }
}

/// The file the first-start password goes to when stderr is not a terminal:
/// `smon-users.json` -> `smon-users.initial-password`.
pub fn initial_password_file(users_file: &Path) -> PathBuf {
    users_file.with_extension("initial-password")
}

/// Removes the first-start password file of `users_file`, if any (its user changed the
/// password, or is gone); whether there was one.
pub fn remove_initial_password(users_file: &Path) -> bool {
    std::fs::remove_file(initial_password_file(users_file)).is_ok()
}

/// At start: removes a first-start password file that no longer opens the `admin` account
/// (its password was changed by editing the users file). Slow (one argon2 check) when the
/// file exists.
pub fn drop_stale_initial_password(users_file: &Path, users: &UserStore) -> bool {
    let path = initial_password_file(users_file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return false;
    };
    let password = text.lines().find_map(|l| l.strip_prefix("password: "));
    let still = match (password, users.get("admin")) {
        (Some(p), Some(u)) => verify_password(p.trim(), &u.password_hash),
        _ => false,
    };
    !still && std::fs::remove_file(&path).is_ok()
}

/// `hash-password`: reads a password (without echo on a terminal, asked twice; one line from
/// a pipe), and prints its argon2id hash, or with `user` a ready-to-paste users entry.
pub fn hash_password_command(user: Option<&str>, role: Role) -> Result<String, UsersError> {
    use std::io::IsTerminal;
    if let Some(u) = user
        && !valid_name(u)
    {
        return Err(UsersError::InvalidName(u.to_owned()));
    }
    let password = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ").map_err(UsersError::Input)?;
        let b = rpassword::prompt_password("Again: ").map_err(UsersError::Input)?;
        if a != b {
            return Err(UsersError::Differ);
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(UsersError::Input)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.chars().count() < 8 {
        return Err(UsersError::TooShort);
    }
    let hash = hash_password(&password)?;
    Ok(match user {
        None => hash,
        Some(u) => serde_json::to_string_pretty(&UserEntry {
            name: u.to_owned(),
            password_hash: hash,
            role: role.as_str().to_owned(),
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn a_session_counts_only_with_the_password_and_role_it_began_with() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = hash_password("first password").expect("hash");
        let alice = User {
            name: "alice".into(),
            password_hash: hash.clone(),
            role: Role::Viewer,
        };
        let store = UserStore::new(
            Users::from([("alice".to_owned(), alice)]),
            &[],
            dir.path().join("users.json"),
        );
        let mark = password_mark(&hash);
        assert_eq!(mark.len(), 24);
        assert!(!mark.contains(&hash[hash.len() - 8..]));
        assert!(store.session_valid("alice", Role::Viewer, 1000, &mark));
        assert!(!store.session_valid("alice", Role::Admin, 1000, &mark));
        assert!(!store.session_valid("alice", Role::Viewer, 1000, ""));
        assert!(!store.session_valid("bob", Role::Viewer, 1000, &mark));
        // A new password (even set while the server was down) ends the older sessions.
        let other = hash_password("second password").expect("hash");
        assert!(!store.session_valid("alice", Role::Viewer, 1000, &password_mark(&other)));
        store
            .apply(&Change::SetPassword("alice".into(), other.clone()))
            .expect("change");
        assert!(!store.session_valid("alice", Role::Viewer, 1000, &mark));
        assert!(store.session_valid("alice", Role::Viewer, 1000, &password_mark(&other)));
        store.end_sessions("alice", 2000);
        assert!(!store.session_valid("alice", Role::Viewer, 1000, &password_mark(&other)));
    }

    #[test]
    fn entries_are_checked() {
        let h = hash_password("x").expect("hash");
        let ok = UserEntry {
            name: "alice".into(),
            password_hash: h.clone(),
            role: "viewer".into(),
        };
        assert_eq!(check_entry(&ok).expect("valid").role, Role::Viewer);
        let bad_role = UserEntry {
            role: "root".into(),
            ..ok.clone()
        };
        assert_eq!(check_entry(&bad_role).err().map(|e| e.0), Some("role"));
        let bad_hash = UserEntry {
            password_hash: "hunter2".into(),
            ..ok.clone()
        };
        assert_eq!(
            check_entry(&bad_hash).err().map(|e| e.0),
            Some("password_hash")
        );
        let bad_name = UserEntry {
            name: "a b".into(),
            ..ok
        };
        assert_eq!(check_entry(&bad_name).err().map(|e| e.0), Some("name"));
    }

    #[test]
    fn users_file_round_trip_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("users.json");
        assert!(read_file(&p).expect("missing is empty").is_empty());
        let u = User {
            name: "admin".into(),
            password_hash: hash_password("pw").expect("hash"),
            role: Role::Admin,
        };
        write_file(&p, std::slice::from_ref(&u)).expect("write");
        assert_eq!(read_file(&p).expect("read"), vec![u.clone()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(
            &p,
            r#"{"users":[{"name":"x","password_hash":"nope","role":"admin"}]}"#,
        )
        .expect("write");
        let e = read_file(&p).expect_err("bad hash");
        assert!(
            matches!(
                &e,
                UsersError::Entry {
                    index: 0,
                    field: "password_hash",
                    ..
                }
            ),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("{}: users[0].password_hash: is not", p.display())),
            "{text}"
        );
        let dup = merge(std::slice::from_ref(&u), std::slice::from_ref(&u), &p)
            .expect_err("a user twice");
        assert_eq!(
            dup.to_string(),
            format!(
                "user '{}' is both in server.auth.users and in {}: keep one",
                u.name,
                p.display()
            )
        );
    }

    #[test]
    fn random_passwords_differ() {
        assert_ne!(random_password(), random_password());
        assert_eq!(random_password().len(), 20);
    }
}
