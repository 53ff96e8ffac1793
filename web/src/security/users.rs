//! Local users: names, argon2 password hashes and roles, from the config and from the users
//! file; the first-start `admin` with a random password; hashing for `hash-password`.

use std::collections::BTreeMap;
use std::path::Path;

use argon2::Argon2;
use argon2::{PasswordHash, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

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
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
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
pub fn read_file(path: &Path) -> Result<Vec<User>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!(
                "{}: cannot read the users file: {e}",
                path.display()
            ));
        }
    };
    let de = &mut serde_json::Deserializer::from_str(&text);
    let file: UsersFile = serde_path_to_error::deserialize(de)
        .map_err(|e| format!("{}: {}: {}", path.display(), e.path(), e.inner()))?;
    file.users
        .iter()
        .enumerate()
        .map(|(i, e)| {
            check_entry(e)
                .map_err(|(field, why)| format!("{}: users[{i}].{field}: {why}", path.display()))
        })
        .collect()
}

/// Writes the users file, readable by its owner only.
pub fn write_file(path: &Path, users: &[User]) -> Result<(), String> {
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
    let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())? + "\n";
    write_private(path, &text)
        .map_err(|e| format!("{}: cannot write the users file: {e}", path.display()))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Users by name.
pub type Users = BTreeMap<String, User>;

/// Merges the config's users and the file's. A name in both is an error (which one counts
/// would be a guess).
pub fn merge(config: &[User], file: &[User], file_path: &Path) -> Result<Users, String> {
    let mut all = Users::new();
    for u in config {
        all.insert(u.name.clone(), u.clone());
    }
    for u in file {
        if all.contains_key(&u.name) {
            return Err(format!(
                "user '{}' is both in server.auth.users and in {}: keep one",
                u.name,
                file_path.display()
            ));
        }
        all.insert(u.name.clone(), u.clone());
    }
    Ok(all)
}

/// `hash-password`: reads a password (without echo on a terminal, asked twice; one line from
/// a pipe), and prints its argon2id hash, or with `user` a ready-to-paste users entry.
pub fn hash_password_command(user: Option<&str>, role: Role) -> Result<String, String> {
    use std::io::IsTerminal;
    if let Some(u) = user
        && !valid_name(u)
    {
        return Err(format!(
            "'{u}' is not a valid user name (1-64 letters, digits, '.', '_', '-' or '@')"
        ));
    }
    let password = if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let b = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if a != b {
            return Err("the passwords differ".into());
        }
        a
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.chars().count() < 8 {
        return Err("the password is shorter than 8 characters".into());
    }
    let hash = hash_password(&password)?;
    Ok(match user {
        None => hash,
        Some(u) => serde_json::to_string_pretty(&UserEntry {
            name: u.to_owned(),
            password_hash: hash,
            role: role.as_str().to_owned(),
        })
        .map_err(|e| e.to_string())?,
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
        assert_eq!(read_file(&p).expect("read"), vec![u]);
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
        assert!(e.contains("users[0].password_hash"), "{e}");
    }

    #[test]
    fn random_passwords_differ() {
        assert_ne!(random_password(), random_password());
        assert_eq!(random_password().len(), 20);
    }
}
