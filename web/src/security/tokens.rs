//! API tokens: long random secrets for scripts and `smonctl`, sent as
//! `Authorization: Bearer <token>`, each with a name and a role. Only a SHA-256 of a token is
//! kept (a token is 32 random bytes, so no slow hash is needed to make guessing hopeless); the
//! token itself is shown once, when `smon-aggregator token create` makes it.
//!
//! Only bearer tokens that start with [`PREFIX`] are looked at: one that a proxy in front
//! passes on (an OAuth proxy's ID token) is left to the session.
//!
//! The store is a [`TokenStore`]: the aggregator's database (its `api_tokens` table), asked on
//! every bearer request so that a token made or revoked from the command line counts at once,
//! without a restart. Requests with a valid token need no session, no CSRF token and no
//! `Origin`: a browser never sends an `Authorization` header a page did not set, and a page
//! of another site cannot set one on a request to this server without a CORS preflight, which
//! this server never grants. Wrong tokens count as failed logins of their address
//! ([`crate::security::throttle`]), so a burst of them gets 429.

use sha2::Digest;

use crate::security::Role;

/// What every token starts with, so that one found in a file or a log is recognisable.
pub const PREFIX: &str = "smon_";

/// The user name wrong tokens are counted under in the login throttle (not a valid user name,
/// so it cannot collide with one).
pub const THROTTLE_NAME: &str = "token:";

/// A new token: [`PREFIX`] and 32 bytes from the operating system's CSPRNG (through `rand`'s
/// thread generator, a ChaCha seeded from it), in hex.
pub fn generate() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let mut s = String::with_capacity(PREFIX.len() + 64);
    s.push_str(PREFIX);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// What is stored of `token`: its SHA-256, in hex.
pub fn hash(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `name` may name a token: 1-64 letters, digits, `.`, `_` or `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The token of an `Authorization: Bearer <token>` header value, if it is one.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// A valid token: its name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token's name.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

impl TokenInfo {
    /// The actor the audit names for it: `token:<name>`.
    pub fn actor(&self) -> String {
        format!("token:{}", self.name)
    }
}

/// Marks a request authenticated by a valid bearer token (in its extensions), for the CSRF
/// check to let it through.
#[derive(Debug, Clone, Copy)]
pub struct BearerAuth;

/// Where tokens are kept (the aggregator's database).
pub trait TokenStore: Send + Sync {
    /// The token whose hash is `hash`, if it exists and is not revoked; its last use is noted
    /// as `now_ms` (at most about once a minute). Blocking: call it off the async threads.
    fn find(&self, hash: &str, now_ms: u64) -> Result<Option<TokenInfo>, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64, "{a}");
        assert_eq!(hash(&a).len(), 64);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert!(!hash(&a).contains(&a[PREFIX.len()..]));
    }

    #[test]
    fn bearer_headers_and_names() {
        assert_eq!(bearer("Bearer smon_x"), Some("smon_x"));
        assert_eq!(bearer("bearer  smon_x "), Some("smon_x"));
        assert_eq!(bearer("Basic YWI6Y2Q="), None);
        assert_eq!(bearer("Bearer "), None);
        assert!(valid_name("ci-1.a_b"));
        assert!(!valid_name("") && !valid_name("a b") && !valid_name("a:b"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
