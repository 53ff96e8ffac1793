//! Command-line redaction: secrets are replaced by `***` before a command line leaves the host.
//!
//! Rules, applied argument by argument:
//! - a flag whose name has a sensitive word (`--password x`, `--api-key=x`, `-token x`) hides
//!   its value, whether joined by `=` or in the next argument;
//! - `key=value` pairs with a sensitive key hide the value, also inside one argument such as
//!   `"host=db password=x"` or a URL query `?access_token=x&y=1`;
//! - credentials in URLs (`scheme://user:pass@host`) hide the password;
//! - `Authorization: Bearer x` / `Basic x` header values are hidden;
//! - extra patterns from the config hide their first capture group, or the whole match.
//!
//! Sensitive words: password, passwd, pwd, pass, passphrase, token, secret, key, apikey,
//! credential(s), auth, authorization, and any word ending in password, token, secret or key
//! (`dbpassword`, `accesstoken`, `sslkey`). Words are the parts of a name split at `-`, `_`, `.`.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a hidden value is replaced with.
pub const MASK: &str = "***";

#[allow(clippy::expect_used)] // The patterns are constants checked by the tests.
static KEY_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([A-Za-z0-9_.\-]+)=([^\s&;,]+)").expect("valid regex"));
#[allow(clippy::expect_used)]
static URL_USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)([a-z][a-z0-9+.\-]*://[^/\s:@]*):([^@/\s]+)@").expect("valid regex")
});
#[allow(clippy::expect_used)]
static AUTH_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(authorization:\s*(?:bearer\s+|basic\s+|token\s+)?)(\S+)")
        .expect("valid regex")
});

/// True when one word of a flag or key name marks a secret.
fn is_sensitive_word(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    matches!(
        w.as_str(),
        "password"
            | "passwd"
            | "pwd"
            | "pass"
            | "passphrase"
            | "token"
            | "secret"
            | "key"
            | "apikey"
            | "credential"
            | "credentials"
            | "auth"
            | "authorization"
    ) || ["password", "token", "secret", "key"]
        .iter()
        .any(|s| w.ends_with(s))
        && !matches!(w.as_str(), "monkey" | "hotkey" | "turkey")
}

/// True when a flag or key name (without leading dashes) contains a sensitive word.
fn is_sensitive_name(name: &str) -> bool {
    name.split(['-', '_', '.']).any(is_sensitive_word)
}

/// Redacts command lines with the built-in rules plus configured patterns.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    extra: Vec<Regex>,
}

impl Redactor {
    /// A redactor with the built-in rules and `extra` patterns.
    pub fn new(extra: Vec<Regex>) -> Self {
        Self { extra }
    }

    /// Redacts a command line given as arguments and joins it with spaces.
    pub fn redact_args<S: AsRef<str>>(&self, args: &[S]) -> String {
        let mut out = String::new();
        let mut hide_next = false;
        for arg in args {
            let arg = arg.as_ref();
            if !out.is_empty() {
                out.push(' ');
            }
            if hide_next && !arg.starts_with('-') {
                out.push_str(MASK);
                hide_next = false;
                continue;
            }
            hide_next = false;
            if let Some(flag) = arg.strip_prefix('-') {
                let flag = flag.trim_start_matches('-');
                match flag.split_once('=') {
                    Some((name, _)) if is_sensitive_name(name) => {
                        out.push_str(&arg[..arg.len() - (flag.len() - name.len() - 1)]);
                        out.push_str(MASK);
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        if !flag.is_empty() && is_sensitive_name(flag) {
                            hide_next = true;
                            out.push_str(arg);
                            continue;
                        }
                    }
                }
            }
            out.push_str(&self.redact_text(arg));
        }
        out
    }

    /// Redacts free text (one argument, or a whole command line as one string).
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut s: Cow<'a, str> = Cow::Borrowed(text);
        if s.contains("://")
            && let Cow::Owned(o) = URL_USERINFO.replace_all(&s, format!("$1:{MASK}@"))
        {
            s = Cow::Owned(o);
        }
        if s.contains('=') {
            let replaced = KEY_VALUE.replace_all(&s, |c: &Captures<'_>| {
                let key = c.get(1).map_or("", |m| m.as_str());
                let bare = key.trim_start_matches('-');
                if is_sensitive_name(bare) {
                    format!("{key}={MASK}")
                } else {
                    c[0].to_owned()
                }
            });
            if let Cow::Owned(o) = replaced {
                s = Cow::Owned(o);
            }
        }
        if s.len() >= 14
            && s.to_ascii_lowercase().contains("authorization")
            && let Cow::Owned(o) = AUTH_HEADER.replace_all(&s, format!("${{1}}{MASK}"))
        {
            s = Cow::Owned(o);
        }
        for re in &self.extra {
            let replaced = re.replace_all(&s, |c: &Captures<'_>| match c.get(1) {
                Some(g) => {
                    let whole = c.get(0).map_or("", |m| m.as_str());
                    let start = g.start() - c.get(0).map_or(0, |m| m.start());
                    format!("{}{MASK}{}", &whole[..start], &whole[start + g.len()..])
                }
                None => MASK.to_owned(),
            });
            if let Cow::Owned(o) = replaced {
                s = Cow::Owned(o);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(args: &[&str]) -> String {
        Redactor::default().redact_args(args)
    }

    #[test]
    fn redaction_table() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["mysqld", "--password", "hunter2"],
                "mysqld --password ***",
            ),
            (&["mysqld", "--password=hunter2"], "mysqld --password=***"),
            (
                &["app", "-password", "hunter2", "-v"],
                "app -password *** -v",
            ),
            (
                &["app", "--db-password", "x1", "--port", "80"],
                "app --db-password *** --port 80",
            ),
            (
                &["app", "--api-key=abc", "--verbose"],
                "app --api-key=*** --verbose",
            ),
            (&["app", "--token", "abc", "file"], "app --token *** file"),
            (
                &["app", "--client_secret", "s3cr3t"],
                "app --client_secret ***",
            ),
            (&["app", "--ssl.key", "/etc/k.pem"], "app --ssl.key ***"),
            (&["app", "--keyboard", "us"], "app --keyboard us"),
            (&["app", "--monkey", "banana"], "app --monkey banana"),
            (&["app", "--password"], "app --password"),
            (&["app", "--password", "--next"], "app --password --next"),
            (&["env", "PASSWORD=hunter2", "cmd"], "env PASSWORD=*** cmd"),
            (
                &["app", "password=x", "user=bob"],
                "app password=*** user=bob",
            ),
            (&["app", "token=abc"], "app token=***"),
            (
                &["app", "AWS_SECRET_ACCESS_KEY=abc"],
                "app AWS_SECRET_ACCESS_KEY=***",
            ),
            (&["app", "secret=abc"], "app secret=***"),
            (&["app", "key=abc"], "app key=***"),
            (
                &["psql", "host=db password=hunter2 dbname=x"],
                "psql host=db password=*** dbname=x",
            ),
            (
                &["curl", "https://x.io/a?access_token=abc&page=2"],
                "curl https://x.io/a?access_token=***&page=2",
            ),
            (
                &["git", "clone", "https://bob:hunter2@git.example.com/r.git"],
                "git clone https://bob:***@git.example.com/r.git",
            ),
            (
                &["redis-cli", "-u", "redis://:hunter2@localhost:6379"],
                "redis-cli -u redis://:***@localhost:6379",
            ),
            (
                &["psql", "postgres://app:p%40ss@db:5432/x"],
                "psql postgres://app:***@db:5432/x",
            ),
            (
                &["curl", "-H", "Authorization: Bearer abc.def"],
                "curl -H Authorization: Bearer ***",
            ),
            (
                &["curl", "-H", "authorization: Basic Ym9iOmh1bnRlcjI="],
                "curl -H authorization: Basic ***",
            ),
            (&["ls", "-la", "/home"], "ls -la /home"),
            (
                &["python3", "-m", "http.server", "8000"],
                "python3 -m http.server 8000",
            ),
            (&["app", "--mode=fast"], "app --mode=fast"),
            (&["ssh", "bob@host"], "ssh bob@host"),
            (
                &["app", "https://example.com/path"],
                "app https://example.com/path",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(r(args), *want, "args: {args:?}");
        }
    }

    #[test]
    fn extra_patterns() {
        let red = Redactor::new(vec![
            Regex::new(r"-p(\S+)").expect("re"),
            Regex::new(r"ghp_[A-Za-z0-9]+").expect("re"),
        ]);
        assert_eq!(
            red.redact_args(&["mysql", "-phunter2", "db"]),
            "mysql -p*** db"
        );
        assert_eq!(
            red.redact_args(&["gh", "auth", "ghp_abcDEF123"]),
            "gh auth ***"
        );
    }

    #[test]
    fn untouched_text_is_not_copied() {
        assert!(matches!(
            Redactor::default().redact_text("plain-argument"),
            Cow::Borrowed(_)
        ));
    }
}
