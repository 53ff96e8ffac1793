//! Command-line redaction: secrets are replaced by `***` before a command line leaves the host.
//!
//! Rules, applied argument by argument:
//! - a flag whose name has a sensitive word (`--password x`, `--api-key=x`, `-token x`) hides
//!   its value, whether joined by `=`, by white space inside one argument (`--password<TAB>x`)
//!   or in the next argument;
//! - `key=value` pairs with a sensitive key hide the value, also inside one argument such as
//!   `"host=db password=x"` or a URL query `?access_token=x&y=1`;
//! - `key: value` and `key:value` with a sensitive key hide the value: a whole argument such
//!   as the header `X-API-Key: x` or `password:x` (all of the rest), and pairs inside one
//!   argument such as JSON `{"password":"x"}` or `{'api_key': 'x'}`;
//! - credentials in URLs (`scheme://user:pass@host`) hide the password;
//! - `Authorization: Bearer x` / `Basic x` header values and a bare `Bearer x` are hidden;
//! - curl's `-u user:x`, `--user user:x`, `-U`/`--proxy-user` hide what follows the colon
//!   (only for curl: `docker -u app:app` is a user and a group);
//! - extra patterns from the config hide their first capture group, or the whole match.
//!
//! An argument with characters outside ASCII is matched in its NFKC form with invisible
//! format characters (zero-width spaces, bidi controls, soft hyphens) removed, so a fullwidth
//! `ＰＡＳＳＷＯＲＤ=x` or a `pass\u{200b}word=x` is caught. Such an argument is shown in that
//! normalised form only when something in it was hidden; otherwise it is shown as it was.
//!
//! Sensitive words: password, passwd, pwd, pass, passphrase, token, secret, key, apikey,
//! credential(s), auth, authorization, and any word ending in password, token, secret or key
//! (`dbpassword`, `accesstoken`, `sslkey`). Words are the parts of a name split at `-`, `_`, `.`.
//!
//! Cost: the collectors redact a command line once per process (then cache it); an argument
//! in plain ASCII without `=`, `:`, `://`, `bearer` or white space goes through no regular
//! expression at all.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use unicode_normalization::UnicodeNormalization;

/// What a hidden value is replaced with.
pub const MASK: &str = "***";

#[allow(clippy::expect_used)] // The patterns are constants checked by the tests.
static KEY_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([A-Za-z0-9_.\-]+)=([^\s&;,]+)").expect("valid regex"));
#[allow(clippy::expect_used)]
static URL_USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)([a-z][a-z0-9+.\-]*://[^/\s:@]*):([^@/\s]+)@").expect("valid regex")
});
/// `key: value` inside text (JSON, YAML-ish, a header inside a shell string). Groups: 1 the
/// text before the value, 2 the key, 3 a quoted value, 4 an auth scheme, 5 a bare value. The
/// key starts the text or follows a separator, so `/etc/ssl/x.key:/y` (a path) is left alone.
#[allow(clippy::expect_used)]
static COLON_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"((?:^|[\s{,;&(\[])["']?([A-Za-z0-9_.\-]+)["']?[ \t]*:[ \t]*)(?:("(?:[^"\\]|\\.)*"?|'[^']*'?)|((?i:bearer|basic|digest|negotiate|token)[ \t]+)?([^\s,;&{}\[\]"']+))"#,
    )
    .expect("valid regex")
});
/// A bearer token anywhere: `Bearer x`, `Authorization: Bearer x`.
#[allow(clippy::expect_used)]
static BEARER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)((?:^|[\s"':=,;])bearer[ \t]+)([^\s"',;]+)"#).expect("valid regex")
});
/// curl's user option inside text (`sh -c "curl -u bob:x url"`): group 1 up to the colon.
#[allow(clippy::expect_used)]
static CURL_USER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"((?:^|\s)(?:-u|-U|--user[ \t=]|--proxy-user[ \t=])[ \t]*[^\s:/@]*:)(\S+)")
        .expect("valid regex")
});
/// A flag and its value separated by white space inside text (`sh -c "app --password x"`).
#[allow(clippy::expect_used)]
static FLAG_SPACE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"((?:^|\s)-{1,2}([A-Za-z0-9_.\-]+)[ \t]+)([^\s\-]\S*)").expect("valid regex")
});

/// A part of every sensitive word: text without any of them has no sensitive key, and the
/// key-based rules are skipped (one fast literal search instead of three regex scans).
#[allow(clippy::expect_used)]
static STEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i-u)pass|pwd|token|secret|key|auth|credential").expect("valid regex")
});

/// True when one word of a flag or key name marks a secret. No allocation: this runs for
/// every name in every command line.
fn is_sensitive_word(word: &str) -> bool {
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "token",
        "secret",
        "key",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "authorization",
    ];
    const ENDINGS: &[&str] = &["password", "token", "secret", "key"];
    const NOT: &[&str] = &["monkey", "hotkey", "turkey"];
    let w = word.as_bytes();
    let ends_with =
        |s: &str| w.len() >= s.len() && w[w.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes());
    WORDS.iter().any(|s| word.eq_ignore_ascii_case(s))
        || ENDINGS.iter().any(|s| ends_with(s)) && !NOT.iter().any(|s| word.eq_ignore_ascii_case(s))
}

/// True when a flag or key name (without leading dashes) contains a sensitive word.
fn is_sensitive_name(name: &str) -> bool {
    name.split(['-', '_', '.']).any(is_sensitive_word)
}

/// True for the characters of a flag, key or header name.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// ASCII case-insensitive `contains`, without allocating.
fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.len() >= needle.len()
        && hay
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Invisible characters that would split a word without showing: soft hyphen, zero-width
/// spaces and joiners, bidi marks and overrides, word joiner, invisible operators, BOM.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// The form an argument is matched in: itself when ASCII, else NFKC without invisibles.
fn normalise(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    let n: String = s.nfkc().filter(|c| !is_invisible(*c)).collect();
    if n == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(n)
    }
}

/// An auth scheme word and the blanks after it at the start of a header value, kept visible.
fn scheme_prefix(value: &str) -> &str {
    let word_end = value
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(value.len());
    let word = &value[..word_end];
    let rest = &value[word_end..];
    let blanks = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    if blanks > 0
        && blanks < rest.len()
        && ["bearer", "basic", "digest", "negotiate", "token"]
            .iter()
            .any(|s| word.eq_ignore_ascii_case(s))
    {
        &value[..word_end + blanks]
    } else {
        ""
    }
}

/// A whole argument `NAME: value` or `NAME:value` with a sensitive name (a header, a
/// `password:x`): the length of what stays visible, when there is a value to hide.
fn header_value_start(arg: &str) -> Option<usize> {
    let lead = arg.len() - arg.trim_start_matches([' ', '\t']).len();
    let name_len = arg[lead..].bytes().take_while(|b| is_name_byte(*b)).count();
    let name = &arg[lead..lead + name_len];
    let after = &arg[lead + name_len..];
    let colon = after.trim_start_matches([' ', '\t']);
    let value = colon.strip_prefix(':')?.trim_start_matches([' ', '\t']);
    if value.is_empty() || name.is_empty() || name.starts_with('-') || !is_sensitive_name(name) {
        return None;
    }
    let start = arg.len() - value.len();
    Some(start + scheme_prefix(value).len())
}

/// True for curl and its look-alikes (`curl`, `/usr/bin/curl`, `curlie`).
fn is_curl(program: &str) -> bool {
    program
        .rsplit('/')
        .next()
        .is_some_and(|base| base.starts_with("curl"))
}

/// curl's options whose value is `user:password`.
fn is_curl_user_flag(arg: &str) -> bool {
    matches!(arg, "-u" | "-U" | "--user" | "--proxy-user")
}

/// For curl's `-uNAME:PW`, `--user=NAME:PW` (or the value after `-u`, when `value` is true):
/// the length of what stays visible, up to and including the colon.
fn curl_user_visible(arg: &str, value: bool) -> Option<usize> {
    let rest = if value {
        arg
    } else if let Some(r) = arg
        .strip_prefix("--user=")
        .or_else(|| arg.strip_prefix("--proxy-user="))
    {
        r
    } else {
        arg.strip_prefix("-u").or_else(|| arg.strip_prefix("-U"))?
    };
    let colon = rest.find(':')?;
    let secret = &rest[colon + 1..];
    if secret.is_empty() || secret.starts_with("//") {
        return None; // nothing, or a URL (hidden by the URL rule)
    }
    Some(arg.len() - secret.len())
}

/// True when an argument ends with the word `Bearer` (alone or after `Authorization:`), so
/// the next argument is the token.
fn ends_with_bearer(arg: &str) -> bool {
    let t = arg.trim_end();
    t.len() >= 6
        && t.is_char_boundary(t.len() - 6)
        && t[t.len() - 6..].eq_ignore_ascii_case("bearer")
        && t[..t.len() - 6]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == ':')
}

/// `visible` bytes of `arg` then the mask.
fn masked(arg: &str, visible: usize) -> Cow<'static, str> {
    Cow::Owned(format!("{}{MASK}", &arg[..visible]))
}

/// Redacts command lines with the built-in rules plus configured patterns.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    extra: Vec<Regex>,
}

/// What the previous arguments say about the next one.
#[derive(Default)]
struct ArgState {
    /// The command is curl (its `-u` carries `user:password`).
    curl: bool,
    /// The previous argument was a sensitive flag or `Bearer`: this one is the secret.
    hide_next: bool,
    /// The previous argument was curl's `-u`: what follows the colon is the secret.
    curl_user_next: bool,
}

impl Redactor {
    /// A redactor with the built-in rules and `extra` patterns.
    pub fn new(extra: Vec<Regex>) -> Self {
        Self { extra }
    }

    /// Redacts a command line given as arguments and joins it with spaces.
    pub fn redact_args<S: AsRef<str>>(&self, args: &[S]) -> String {
        let mut out = String::new();
        let mut st = ArgState {
            curl: args.first().is_some_and(|a| is_curl(a.as_ref())),
            ..ArgState::default()
        };
        for arg in args {
            let arg = arg.as_ref();
            if !out.is_empty() {
                out.push(' ');
            }
            let norm = normalise(arg);
            match self.redact_arg(&norm, &mut st) {
                // Nothing hidden: the argument as it was, not its normalised form.
                Cow::Borrowed(_) => out.push_str(arg),
                Cow::Owned(o) if o == *norm => out.push_str(arg),
                Cow::Owned(o) => out.push_str(&o),
            }
        }
        out
    }

    /// One argument (normalised), given what the previous ones said.
    fn redact_arg<'a>(&self, arg: &'a str, st: &mut ArgState) -> Cow<'a, str> {
        let curl_user = std::mem::take(&mut st.curl_user_next);
        if std::mem::take(&mut st.hide_next) && !arg.starts_with('-') {
            // `--auth-scheme Bearer x`: the token after a hidden `Bearer` is hidden too.
            st.hide_next = ends_with_bearer(arg);
            return Cow::Owned(MASK.to_owned());
        }
        if curl_user && let Some(visible) = curl_user_visible(arg, true) {
            return masked(arg, visible);
        }
        if st.curl {
            if is_curl_user_flag(arg) {
                st.curl_user_next = true;
                return Cow::Borrowed(arg);
            }
            if arg.starts_with('-')
                && let Some(visible) = curl_user_visible(arg, false)
            {
                return masked(arg, visible);
            }
        }
        if let Some(flag) = arg.strip_prefix('-') {
            let flag = flag.trim_start_matches('-');
            // The name ends at `=` or white space (`--password=x`, `--password<TAB>x`).
            let split = flag.find(|c: char| c == '=' || c.is_whitespace());
            match split.map(|i| (&flag[..i], &flag[i..])) {
                Some((name, rest)) if !name.is_empty() && is_sensitive_name(name) => {
                    let at = arg.len() - rest.len();
                    if rest.starts_with('=') {
                        return masked(arg, at + 1);
                    }
                    let value = rest.trim_start();
                    if !value.is_empty() {
                        return masked(arg, arg.len() - value.len());
                    }
                    // `--password ` with nothing after: the value is the next argument.
                    st.hide_next = true;
                    return Cow::Borrowed(arg);
                }
                Some(_) => {}
                None => {
                    if !flag.is_empty() && is_sensitive_name(flag) {
                        st.hide_next = true;
                        return Cow::Borrowed(arg);
                    }
                }
            }
        }
        // A whole argument `NAME=value` (`env PASSWORD=x`, `docker run -e TOKEN=x`) is an
        // assignment: all of the value is the secret, `;`, `,`, `&` and spaces included.
        if let Some((name, _)) = arg.split_once('=')
            && !name.is_empty()
            && name.bytes().all(is_name_byte)
            && is_sensitive_name(name)
        {
            return masked(arg, name.len() + 1);
        }
        // A whole argument `NAME: value` (a header, `password:x`): all of the rest.
        if let Some(visible) = header_value_start(arg) {
            return masked(arg, visible);
        }
        if ends_with_bearer(arg) {
            st.hide_next = true;
        }
        self.redact_normalised(arg)
    }

    /// Redacts free text (one argument, or a whole command line as one string).
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match normalise(text) {
            Cow::Borrowed(t) => self.redact_normalised(t),
            Cow::Owned(n) => match self.redact_normalised(&n) {
                // Nothing hidden: the text as it was, not its normalised form.
                Cow::Borrowed(_) => Cow::Borrowed(text),
                Cow::Owned(o) if o == n => Cow::Borrowed(text),
                Cow::Owned(o) => Cow::Owned(o),
            },
        }
    }

    /// The text rules, on text already normalised, applied until nothing more changes: one
    /// rule's match can swallow a later secret (`a=x,key=y` read as one value of `a`) that a
    /// second pass over the redacted text would find, so redacting twice must change nothing.
    /// Text without a secret takes one pass; text with one, two.
    fn redact_normalised<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = match self.redact_pass(text) {
            Cow::Borrowed(_) => return Cow::Borrowed(text),
            Cow::Owned(o) => o,
        };
        // A bound, though each pass only ever hides more: masks are stable under every rule.
        for _ in 0..8 {
            match self.redact_pass(&out) {
                Cow::Owned(next) if next != out => out = next,
                _ => break,
            }
        }
        Cow::Owned(out)
    }

    /// One pass of the text rules.
    fn redact_pass<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut s: Cow<'a, str> = Cow::Borrowed(text);
        /// The new text when a rule replaced something.
        fn owned(r: Cow<'_, str>) -> Option<String> {
            match r {
                Cow::Owned(o) => Some(o),
                Cow::Borrowed(_) => None,
            }
        }
        if s.contains("://") {
            let r = URL_USERINFO.replace_all(&s, format!("$1:{MASK}@"));
            if let Some(o) = owned(r) {
                s = Cow::Owned(o);
            }
        }
        // The rules that look at a key first scan for one that is sensitive: most text has
        // none, and then nothing is copied.
        let any_sensitive = |re: &Regex, s: &str, group: usize, strip: bool| {
            re.captures_iter(s).any(|c| {
                let k = c.get(group).map_or("", |m| m.as_str());
                is_sensitive_name(if strip { k.trim_start_matches('-') } else { k })
            })
        };
        let keyed = STEM.is_match(&s);
        if keyed && s.contains('=') && any_sensitive(&KEY_VALUE, &s, 1, true) {
            let r = KEY_VALUE.replace_all(&s, |c: &Captures<'_>| {
                let key = c.get(1).map_or("", |m| m.as_str());
                let bare = key.trim_start_matches('-');
                if is_sensitive_name(bare) {
                    format!("{key}={MASK}")
                } else {
                    c[0].to_owned()
                }
            });
            if let Some(o) = owned(r) {
                s = Cow::Owned(o);
            }
        }
        if keyed && s.contains(':') && any_sensitive(&COLON_PAIR, &s, 2, false) {
            let r = COLON_PAIR.replace_all(&s, |c: &Captures<'_>| {
                let key = c.get(2).map_or("", |m| m.as_str());
                if !is_sensitive_name(key) {
                    return c[0].to_owned();
                }
                let head = c.get(1).map_or("", |m| m.as_str());
                match (c.get(3), c.get(4)) {
                    (Some(q), _) => {
                        let q = q.as_str();
                        let open = &q[..1];
                        let close = if q.len() > 1 && q.ends_with(open) {
                            open
                        } else {
                            ""
                        };
                        format!("{head}{open}{MASK}{close}")
                    }
                    (None, Some(scheme)) => format!("{head}{}{MASK}", scheme.as_str()),
                    (None, None) => format!("{head}{MASK}"),
                }
            });
            if let Some(o) = owned(r) {
                s = Cow::Owned(o);
            }
        }
        if contains_ci(&s, "bearer") {
            let r = BEARER.replace_all(&s, format!("${{1}}{MASK}"));
            if let Some(o) = owned(r) {
                s = Cow::Owned(o);
            }
        }
        if s.contains(':') && contains_ci(&s, "curl") {
            let r = CURL_USER.replace_all(&s, |c: &Captures<'_>| {
                let head = c.get(1).map_or("", |m| m.as_str());
                if c[2].starts_with("//") {
                    c[0].to_owned()
                } else {
                    format!("{head}{MASK}")
                }
            });
            if let Some(o) = owned(r) {
                s = Cow::Owned(o);
            }
        }
        if keyed
            && s.contains('-')
            && s.contains([' ', '\t'])
            && any_sensitive(&FLAG_SPACE, &s, 2, false)
        {
            let r = FLAG_SPACE.replace_all(&s, |c: &Captures<'_>| {
                if is_sensitive_name(&c[2]) {
                    format!("{}{MASK}", &c[1])
                } else {
                    c[0].to_owned()
                }
            });
            if let Some(o) = owned(r) {
                s = Cow::Owned(o);
            }
        }
        for re in &self.extra {
            let r = re.replace_all(&s, |c: &Captures<'_>| match c.get(1) {
                Some(g) => {
                    let whole = c.get(0).map_or("", |m| m.as_str());
                    let start = g.start() - c.get(0).map_or(0, |m| m.start());
                    format!("{}{MASK}{}", &whole[..start], &whole[start + g.len()..])
                }
                None => MASK.to_owned(),
            });
            if let Some(o) = owned(r) {
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
            // Issue 18: the shapes that got through.
            (
                &["app", "--config-json", r#"{"password":"hunter2"}"#],
                r#"app --config-json {"password":"***"}"#,
            ),
            (
                &["app", r#"{"user": "bob", "api_key": "abc", "n": 1}"#],
                r#"app {"user": "bob", "api_key": "***", "n": 1}"#,
            ),
            (
                &["app", r#"{'db': {'password': 'p w'}}"#],
                r#"app {'db': {'password': '***'}}"#,
            ),
            (
                &["app", r#"{"token":"a\"b","x":2}"#],
                r#"app {"token":"***","x":2}"#,
            ),
            (
                &["curl", "-H", "X-API-Key: abc def", "https://x.io"],
                "curl -H X-API-Key: *** https://x.io",
            ),
            (
                &["curl", "-H", "X-Auth-Token:abc"],
                "curl -H X-Auth-Token:***",
            ),
            (
                &["curl", "-u", "bob:hunter2", "https://x.io"],
                "curl -u bob:*** https://x.io",
            ),
            (
                &["/usr/bin/curl", "--user", "bob:hun:ter2"],
                "/usr/bin/curl --user bob:***",
            ),
            (&["curl", "-ubob:hunter2"], "curl -ubob:***"),
            (
                &["curl", "--proxy-user=bob:hunter2"],
                "curl --proxy-user=bob:***",
            ),
            (&["curl", "-u", "bob"], "curl -u bob"),
            // Not curl: `-u` is a user and a group.
            (
                &["docker", "run", "-u", "app:app", "img"],
                "docker run -u app:app img",
            ),
            (&["curl", "-H", "Bearer abc.def"], "curl -H Bearer ***"),
            (&["app", "--auth-header", "x"], "app --auth-header ***"),
            (&["app", "Bearer", "abc"], "app Bearer ***"),
            (&["app", "bearer\tabc"], "app bearer\t***"),
            (&["app", "password:hunter2"], "app password:***"),
            (&["app", "password: hunter 2"], "app password: ***"),
            (
                &["openssl", "rsa", "-passin", "pass:hunter2"],
                "openssl rsa -passin pass:***",
            ),
            (&["app", "--password\thunter2"], "app --password\t***"),
            (&["app", "--password hunter2 x"], "app --password ***"),
            (
                &["sh", "-c", "mysqld --password hunter2 --port 3306"],
                "sh -c mysqld --password *** --port 3306",
            ),
            (
                &["sh", "-c", "curl -u bob:hunter2 https://x.io"],
                "sh -c curl -u bob:*** https://x.io",
            ),
            (&["app", "ＰＡＳＳＷＯＲＤ=hunter2"], "app PASSWORD=***"),
            (&["app", "ＰＡＳＳＷＯＲＤ＝hunter2"], "app PASSWORD=***"),
            (
                &["app", "--ｐａｓｓｗｏｒｄ", "hunter2"],
                "app --ｐａｓｓｗｏｒｄ ***",
            ),
            (&["app", "pass\u{200b}word=hunter2"], "app password=***"),
            (&["app", "--pa\u{ad}ssword=hunter2"], "app --password=***"),
            // Left as they are: paths with a colon, a port, text outside ASCII.
            (
                &["docker", "run", "-v", "/etc/ssl/x.key:/key", "img"],
                "docker run -v /etc/ssl/x.key:/key img",
            ),
            (&["app", "localhost:6379"], "app localhost:6379"),
            (
                &["app", "--name", "ｃａｆé", "ﬁle"],
                "app --name ｃａｆé ﬁle",
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
    fn a_secret_swallowed_by_another_rule_is_found_and_twice_changes_nothing() {
        // Found by the `redact` fuzz target: `kk--proxy-user=` took `e}=s::kkey=----y=` as its
        // value, hiding the later `kkey=` from the first pass.
        let red = Redactor::default();
        let text = "-pass:kk--proxy-user=e}=s::kkey=----y= r/";
        let once = red.redact_text(text).into_owned();
        assert_eq!(red.redact_text(&once), once.as_str());
        assert!(!once.contains("----y"), "{once}");
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

    /// A JSON string's content: no quote, no backslash.
    fn json_secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~+/!$%*:@;,&={}\\[\\] -]{6,24}".prop_map(|s| format!("Q{s}"))
    }

    /// `s` in fullwidth forms (what NFKC turns back into ASCII).
    fn fullwidth(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xff01).unwrap_or(c),
                c => c,
            })
            .collect()
    }

    /// One secret in one of the forms the redactor promises to hide, as arguments, with the
    /// program they need in front (`curl` for its `-u`), if any.
    fn secret_args() -> impl Strategy<Value = (Option<&'static str>, Vec<String>, String)> {
        let plain = plain_secret_args().prop_map(|(a, s)| (None, a, s));
        let curl = prop_oneof![
            ("[a-z]{1,8}", secret(), "-u|-U|--user|--proxy-user")
                .prop_map(|(u, s, f)| (vec![f, format!("{u}:{s}")], s)),
            ("[a-z]{1,8}", secret()).prop_map(|(u, s)| (vec![format!("-u{u}:{s}")], s)),
            ("[a-z]{1,8}", secret(), "--user|--proxy-user")
                .prop_map(|(u, s, f)| (vec![format!("{f}={u}:{s}")], s)),
        ]
        .prop_map(|(a, s)| (Some("curl"), a, s));
        prop_oneof![4 => plain, 1 => curl]
    }

    fn plain_secret_args() -> impl Strategy<Value = (Vec<String>, String)> {
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
            // Issue 18: JSON in an argument, with other pairs around.
            (sensitive_key(), json_secret(), "[ ]?", "\"|'").prop_map(|(k, s, sp, q)| (
                vec![format!(
                    "{{{q}user{q}:{sp}{q}bob{q},{sp}{q}{k}{q}:{sp}{q}{s}{q},{q}n{q}:1}}"
                )],
                s
            )),
            // A header with a sensitive name, and `password:x`: all of the rest.
            (
                "X-API-Key|X-Auth-Token|Api-Key|Private-Token|password|token",
                "[ ]{0,2}",
                secret()
            )
                .prop_map(|(h, sp, s)| (vec![format!("{h}:{sp}{s}")], s)),
            // A bare bearer token, in one argument or in the next.
            ("(?i:bearer)", header_secret(), "[ \t]")
                .prop_map(|(b, s, sp)| (vec!["-H".to_owned(), format!("{b}{sp}{s}")], s)),
            ("(?i:bearer)", header_secret()).prop_map(|(b, s)| (vec![b, s.clone()], s)),
            // A flag and its value in one argument, after a tab or a space.
            (sensitive_key(), "[\t ]{1,2}", secret(), "-{1,2}")
                .prop_map(|(k, sp, s, d)| (vec![format!("{d}{k}{sp}{s}")], s)),
            // Fullwidth keys (and separators): NFKC makes them ASCII.
            (sensitive_key(), secret(), "=|＝")
                .prop_map(|(k, s, eq)| (vec![format!("{}{eq}{s}", fullwidth(&k))], s)),
            (sensitive_key(), secret())
                .prop_map(|(k, s)| (vec![format!("--{}", fullwidth(&k)), s.clone()], s)),
            // A whole command line in one argument (`sh -c "..."`).
            (sensitive_key(), pair_secret())
                .prop_map(|(k, s)| (vec!["-c".to_owned(), format!("app --{k} {s} --port 1")], s)),
            ("[a-z]{1,6}", pair_secret()).prop_map(|(u, s)| (
                vec![
                    "-c".to_owned(),
                    format!("curl -u {u}:{s} https://x.example/")
                ],
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
            Just("bearer".to_owned()),
            Just("curl".to_owned()),
            Just("-u".to_owned()),
            Just("\"".to_owned()),
            Just("'".to_owned()),
            Just("{".to_owned()),
            Just("\t".to_owned()),
            Just("\\".to_owned()),
            Just("ＰＡＳＳ".to_owned()),
            Just("\u{200b}".to_owned()),
            Just("\u{3000}".to_owned()),
            sensitive_key(),
            "\\PC{0,4}",
            "[a-z]{1,4}",
        ];
        proptest::collection::vec(piece, 0..10).prop_map(|v| v.concat())
    }

    /// `a` without what is or becomes (under NFKC, as a hidden argument is shown) a space:
    /// the property below splits a redacted line at spaces to get its arguments back.
    fn without_spaces(a: &str) -> String {
        a.chars()
            .filter(|c| !c.to_string().nfkc().any(|n| n == ' '))
            .collect()
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
            (program, secret_args, secret) in secret_args(),
            after in proptest::collection::vec(noise(), 0..4),
        ) {
            let args: Vec<String> = program
                .map(str::to_owned)
                .into_iter()
                .chain(before)
                .chain(secret_args)
                .chain(after)
                .collect();
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
                prop_oneof![noise(), tricky_arg().prop_map(|a| without_spaces(&a))],
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
