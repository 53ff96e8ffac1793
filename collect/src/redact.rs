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
            // A whole argument `NAME=value` (`env PASSWORD=x`, `docker run -e TOKEN=x`) is an
            // assignment: all of the value is the secret, `;`, `,`, `&` and spaces included.
            if let Some((name, _)) = arg.split_once('=')
                && !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
                && is_sensitive_name(name)
            {
                out.push_str(&arg[..=name.len()]);
                out.push_str(MASK);
                continue;
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
            // Found by the property tests: the value of an assignment used to end at `;`.
            (
                &["env", "PASSWORD=ab;cd,e&f", "cmd"],
                "env PASSWORD=*** cmd",
            ),
            (
                &["docker", "run", "-e", "TOKEN=a b"],
                "docker run -e TOKEN=***",
            ),
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

/// Property tests of the redactor: any command line is handled without a panic, generated
/// secrets in every supported form never come out, and redacting twice changes nothing. Cases
/// per property: `PROPTEST_CASES` (256 when unset; for a long session
/// `PROPTEST_CASES=100000 cargo test -p smon-collect --lib`).
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// A secret that cannot occur by chance in the other arguments, which use no upper case.
    /// Its characters are those a shell or a URL passes through unquoted and unencoded.
    fn secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~+/!$%*:@;,& -]{6,24}".prop_map(|s| format!("Q{s}"))
    }

    /// A secret in an `Authorization` header, which ends at white space.
    fn header_secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~+/=-]{6,24}".prop_map(|s| format!("Q{s}"))
    }

    /// A secret that may stand in a URL's userinfo: `@`, `/` and `:` would be percent-encoded.
    fn url_secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~+!$*'(),;=-]{0,20}(%[0-9A-F]{2})?".prop_map(|s| format!("Q{s}"))
    }

    /// A value for `key=value` inside a larger argument, where `&`, `;`, `,` and spaces
    /// separate pairs.
    fn pair_secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~+/!$%*:@-]{6,24}".prop_map(|s| format!("Q{s}"))
    }

    fn sensitive_key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("password"),
            Just("PASSWORD"),
            Just("passwd"),
            Just("pwd"),
            Just("token"),
            Just("access_token"),
            Just("api-key"),
            Just("apikey"),
            Just("client_secret"),
            Just("AWS_SECRET_ACCESS_KEY"),
            Just("db.password"),
            Just("credentials"),
            Just("auth"),
            Just("sslkey"),
        ]
        .prop_map(str::to_owned)
    }

    /// Harmless arguments: lower case only, so they never contain a secret.
    fn noise() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,8}",
            "--[a-z]{1,8}",
            "-[a-z]",
            "--[a-z]{1,6}=[a-z0-9]{0,6}",
            "[a-z]{1,6}=[a-z]{0,6}",
            "/[a-z/]{0,12}",
            "https://[a-z]{1,8}\\.example/[a-z]{0,6}",
        ]
    }

    /// One secret in one of the forms the redactor promises to hide, as arguments.
    fn secret_args() -> impl Strategy<Value = (Vec<String>, String)> {
        prop_oneof![
            (sensitive_key(), secret(), "-{1,2}")
                .prop_map(|(k, s, d)| (vec![format!("{d}{k}={s}")], s)),
            (sensitive_key(), secret(), "-{1,2}").prop_filter_map(
                "a value that starts with '-' reads as the next flag",
                |(k, s, d)| (!s.starts_with('-')).then(|| (vec![format!("{d}{k}"), s.clone()], s)),
            ),
            (sensitive_key(), secret()).prop_map(|(k, s)| (vec![format!("{k}={s}")], s)),
            (sensitive_key(), pair_secret(), "[a-z]{1,5}", "[ &;,]").prop_map(
                |(k, s, other, sep)| (vec![format!("host=db{sep}{k}={s}{sep}{other}=1")], s)
            ),
            (sensitive_key(), pair_secret())
                .prop_map(|(k, s)| (vec![format!("https://api.example/v1?page=2&{k}={s}")], s)),
            (
                "[a-z][a-z0-9+.-]{0,8}",
                "[a-z]{0,8}",
                url_secret(),
                "[a-z.]{1,12}(:[0-9]{1,5})?"
            )
                .prop_map(|(scheme, user, s, host)| (
                    vec![format!("{scheme}://{user}:{s}@{host}/x")],
                    s
                )),
            ("(?i:bearer|basic|token) ", header_secret()).prop_map(|(kind, s)| (
                vec!["-H".to_owned(), format!("Authorization: {kind}{s}")],
                s
            )),
        ]
    }

    /// Pieces of text that steer arbitrary arguments into the rules' branches.
    fn tricky_arg() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("-".to_owned()),
            Just("--".to_owned()),
            Just("=".to_owned()),
            Just("://".to_owned()),
            Just(":".to_owned()),
            Just("@".to_owned()),
            Just("&".to_owned()),
            Just(" ".to_owned()),
            Just("***".to_owned()),
            Just("authorization: bearer ".to_owned()),
            sensitive_key(),
            "\\PC{0,4}",
            "[a-z]{1,4}",
        ];
        proptest::collection::vec(piece, 0..10).prop_map(|v| v.concat())
    }

    fn extra_patterns() -> Vec<Regex> {
        ["-p(\\S+)", "ghp_[A-Za-z0-9]+", "(?:x)(y)?z", "é(.)"]
            .iter()
            .filter_map(|p| Regex::new(p).ok())
            .collect()
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_command_line_is_handled(args in proptest::collection::vec("\\PC{0,20}", 0..8)) {
            let _ = Redactor::default().redact_args(&args);
            let _ = Redactor::new(extra_patterns()).redact_args(&args);
        }

        #[test]
        fn tricky_command_lines_are_handled(args in proptest::collection::vec(tricky_arg(), 0..8)) {
            let red = Redactor::new(extra_patterns());
            let out = red.redact_args(&args);
            for a in &args {
                let _ = red.redact_text(a);
            }
            prop_assert!(args.is_empty() || !out.is_empty() || args.iter().all(String::is_empty));
        }

        #[test]
        fn generated_secrets_never_come_out(
            before in proptest::collection::vec(noise(), 0..4),
            (secret_args, secret) in secret_args(),
            after in proptest::collection::vec(noise(), 0..4),
        ) {
            let args: Vec<String> = before.into_iter().chain(secret_args).chain(after).collect();
            let out = Redactor::default().redact_args(&args);
            prop_assert!(!out.contains(&secret), "{secret:?} in {out:?} from {args:?}");
            prop_assert!(out.contains(MASK), "{out:?}");
        }

        #[test]
        fn redacting_text_twice_changes_nothing(s in tricky_arg()) {
            let red = Redactor::default();
            let once = red.redact_text(&s).into_owned();
            prop_assert_eq!(red.redact_text(&once), once.as_str());
        }

        #[test]
        fn redacting_arguments_twice_changes_nothing(
            args in proptest::collection::vec(
                prop_oneof![noise(), tricky_arg().prop_map(|a| a.replace(' ', ""))],
                0..8,
            ),
        ) {
            let red = Redactor::default();
            let once = red.redact_args(&args);
            let again: Vec<&str> = once.split(' ').collect();
            prop_assert_eq!(red.redact_args(&again), once);
        }
    }
}
