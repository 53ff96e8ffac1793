//! The config kit both daemons' configs are built from: the error types (one invalid field,
//! a whole failed load), JSON parsing that reports every unknown key and wrong type at once
//! with its path and value, PEM reading,
//! and the blocks every daemon has: `log`, `manager` and the HTTP `server` block.
//!
//! Loading is pure: it reads files the config names (tokens, certificates) but never writes
//! one; files a daemon needs are created when it starts (see [`crate::start`]).

pub mod log;
pub mod manager;
pub mod server;

use std::fmt;
use std::path::{Path, PathBuf};

pub use log::{LogConfig, LogSettings};
pub use manager::{ManagerConfig, ManagerMode};
pub use server::ServerConfig;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `monitor.interval_ms`.
    pub field: String,
    /// The offending value as written (or `<hidden>` for secrets); empty when there is none
    /// to show (a missing field), and then not quoted.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No value to quote (a missing field): `field: problem`.
        if self.value.is_empty() {
            return write!(
                f,
                "{}: {}",
                printable(&self.field),
                printable(&self.problem)
            );
        }
        write!(
            f,
            "{}: '{}' {}",
            printable(&self.field),
            printable(&self.value),
            printable(&self.problem)
        )
    }
}

/// `s` with control characters and bidirectional overrides written as `\u{..}`, so text from a
/// config cannot forge lines or drive the terminal when an error repeats it.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if bad(c) {
                    format!("\\u{{{:x}}}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the file: {source}")]
    Read {
        /// The config file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{file}: {field}: {message}")]
    Parse {
        /// The config file.
        file: String,
        /// Dotted path of the field where the parser stopped (`.` for the top level).
        field: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parsed, but some values are invalid: all of them are listed.
    #[error("{}", render_invalid(.file, .errors))]
    Invalid {
        /// The config file.
        file: String,
        /// Every invalid field.
        errors: Vec<FieldError>,
    },
}

fn render_invalid(file: &str, errors: &[FieldError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| format!("{file}: {e}")).collect();
    lines.join("\n")
}

/// Parses config JSON into `T`, reporting every unknown key and every value of the wrong
/// type at once (see [`parse_json_all`]); on success nothing was wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<T, ConfigError> {
    let (t, errors) = parse_json_all(text, file)?;
    finish(file, errors, Ok(t))
}

/// Joins the problems found while parsing with those of the value checks that followed:
/// the settings when there are none, else every problem, the parser's first.
pub fn finish<S>(
    file: &str,
    mut parse_errors: Vec<FieldError>,
    checked: Result<S, Vec<FieldError>>,
) -> Result<S, ConfigError> {
    match checked {
        Ok(s) if parse_errors.is_empty() => Ok(s),
        Ok(_) => Err(ConfigError::Invalid {
            file: file.to_owned(),
            errors: parse_errors,
        }),
        Err(more) => {
            parse_errors.extend(more);
            Err(ConfigError::Invalid {
                file: file.to_owned(),
                errors: parse_errors,
            })
        }
    }
}

/// Parses config JSON into `T` and keeps going after a problem, so that one run reports them
/// all: serde stops at the first unknown key or wrong type, so each one found is recorded
/// (file, field path, value) and taken out of the document, and the rest is parsed again.
/// Fields taken out get their defaults, and the value checks the caller runs next see the
/// remainder ([`finish`] joins both lists).
///
/// Returns `T` and the problems found, or [`ConfigError::Parse`] for text that is not JSON,
/// or [`ConfigError::Invalid`] when parsing cannot go on (a required field missing or
/// unusable): then only the problems found so far are listed.
pub fn parse_json_all<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<(T, Vec<FieldError>), ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let mut doc: serde_json::Value = serde_path_to_error::deserialize(de).map_err(|e| {
        // Not JSON: where the parser stopped (serde_path_to_error writes `?` for a position
        // it cannot name).
        let path = e.path().to_string();
        let field = match path.trim_end_matches(".?") {
            "?" | "" => ".".to_owned(),
            p => p.to_owned(),
        };
        ConfigError::Parse {
            file: file.to_owned(),
            field: printable(&field).into_owned(),
            message: printable(&e.into_inner().to_string()).into_owned(),
        }
    })?;
    if !doc.is_object() {
        // Nothing in it can be named by a field: the whole file is of the wrong shape.
        let kind = match &doc {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Object(_) => "an object",
        };
        return Err(ConfigError::Parse {
            file: file.to_owned(),
            field: ".".to_owned(),
            message: format!("the file holds {kind}, expected a JSON object {{...}}"),
        });
    }
    let mut errors = Vec::new();
    let mut removed = Removed::default();
    // Every round takes one entry out of the document, so the loop ends; the bound is a
    // safety net.
    for _ in 0..10_000 {
        let e = match serde_path_to_error::deserialize::<_, T>(doc.clone()) {
            Ok(t) => return Ok((t, errors)),
            Err(e) => e,
        };
        let message = e.inner().to_string();
        let Some(at) = segments(e.path()) else {
            errors.push(FieldError {
                field: printable(&e.path().to_string()).into_owned(),
                value: String::new(),
                problem: printable(&message).into_owned(),
            });
            break;
        };
        let original = removed.original(&at);
        if let Some(name) = missing_field(&message) {
            let mut full = original.clone();
            full.push(Seg::Key(name.to_owned()));
            // A field this loop took out (a wrong type) is reported already.
            if !removed.paths.contains(&full) {
                errors.push(FieldError {
                    field: dotted(&full),
                    value: String::new(),
                    problem: "is missing".into(),
                });
            }
            break;
        }
        let Some(value) = take(&mut doc, &at) else {
            errors.push(FieldError {
                field: dotted(&original),
                value: String::new(),
                problem: printable(&message).into_owned(),
            });
            break;
        };
        errors.push(FieldError {
            field: dotted(&original),
            value: shown(&original, &value),
            problem: problem(&message, &value),
        });
        removed.note(original);
    }
    Err(ConfigError::Invalid {
        file: file.to_owned(),
        errors,
    })
}

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Key(String),
    Index(usize),
}

fn segments(p: &serde_path_to_error::Path) -> Option<Vec<Seg>> {
    use serde_path_to_error::Segment;
    p.iter()
        .map(|s| match s {
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

/// `monitor.clusters[0].hosts[1].name`, made printable.
fn dotted(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                // An empty key would vanish from the path: name it as written.
                if k.is_empty() {
                    s.push_str("\"\"");
                } else {
                    s.push_str(k);
                }
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if s.is_empty() {
        s.push('.');
    }
    printable(&s).into_owned()
}

/// What was taken out of the document, in the document's own positions: array elements taken
/// out shift the later ones, and errors are reported at the positions the user wrote.
#[derive(Debug, Default)]
struct Removed {
    paths: std::collections::HashSet<Vec<Seg>>,
    /// Per array (its original path), the original indices taken out, ascending.
    indices: std::collections::HashMap<Vec<Seg>, Vec<usize>>,
}

impl Removed {
    fn original(&self, now: &[Seg]) -> Vec<Seg> {
        let mut out = Vec::with_capacity(now.len());
        for seg in now {
            let seg = match seg {
                Seg::Index(i) => {
                    let mut k = *i;
                    for r in self
                        .indices
                        .get(&out)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                    {
                        if *r <= k {
                            k += 1;
                        }
                    }
                    Seg::Index(k)
                }
                key => key.clone(),
            };
            out.push(seg);
        }
        out
    }

    fn note(&mut self, original: Vec<Seg>) {
        if let Some((Seg::Index(i), array)) = original.split_last() {
            let list = self.indices.entry(array.to_vec()).or_default();
            let at = list.partition_point(|r| r < i);
            list.insert(at, *i);
        }
        self.paths.insert(original);
    }
}

/// Takes the value at `path` out of `doc`.
fn take(doc: &mut serde_json::Value, path: &[Seg]) -> Option<serde_json::Value> {
    let (last, parent) = path.split_last()?;
    let mut cur = doc;
    for seg in parent {
        cur = match seg {
            Seg::Key(k) => cur.get_mut(k.as_str())?,
            Seg::Index(i) => cur.get_mut(*i)?,
        };
    }
    match (last, cur) {
        (Seg::Key(k), serde_json::Value::Object(m)) => m.remove(k),
        (Seg::Index(i), serde_json::Value::Array(a)) if *i < a.len() => Some(a.remove(*i)),
        _ => None,
    }
}

/// serde's "missing field `x`": the field's name.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")?
        .split_once('`')
        .map(|(name, _)| name)
}

/// The value as the user wrote it (strings bare, the rest as JSON), shortened, and hidden
/// for secrets.
fn shown(path: &[Seg], v: &serde_json::Value) -> String {
    fn secret_key(k: &str) -> bool {
        let k = k.to_ascii_lowercase();
        ["token", "password", "secret", "hash"]
            .iter()
            .any(|w| k.contains(w))
    }
    // A value holding a secret anywhere inside (a misplaced block with users' hashes, say) is
    // hidden whole: an unknown key's value is quoted, and it may be such a block.
    fn holds_secret(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(o) => o.iter().any(|(k, c)| secret_key(k) || holds_secret(c)),
            serde_json::Value::Array(a) => a.iter().any(holds_secret),
            serde_json::Value::String(s) => s.starts_with("$argon2"),
            _ => false,
        }
    }
    let secret = path
        .iter()
        .any(|s| matches!(s, Seg::Key(k) if secret_key(k)));
    if secret || holds_secret(v) {
        return "<hidden>".into();
    }
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        let short: String = s.chars().take(57).collect();
        format!("{short}...")
    } else {
        s
    }
}

/// serde's message in the words of a config file; the value itself is shown apart (and never
/// repeated here, so that a secret stays hidden).
fn problem(message: &str, v: &serde_json::Value) -> String {
    let expected = |m: &str| {
        m.rsplit_once(", expected ")
            .map(|(_, e)| expected_words(e))
            .unwrap_or_default()
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let known = rest
            .split_once("`, ")
            .map(|(_, k)| k.to_owned())
            .unwrap_or_default();
        return if known.is_empty() {
            "is not a known key".into()
        } else {
            format!("is not a known key ({})", printable(&known))
        };
    }
    if message.starts_with("invalid type: ") {
        let kind = match v {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Object(_) => "an object",
        };
        return format!("is {kind}, expected {}", expected(message));
    }
    if ["invalid value: ", "invalid length ", "unknown variant "]
        .iter()
        .any(|p| message.starts_with(p))
    {
        return format!("is not valid here: expected {}", expected(message));
    }
    printable(message).into_owned()
}

/// serde's names of Rust types in plain words.
fn expected_words(e: &str) -> String {
    let w = match e {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a sequence" => "an array",
        "a map" => "an object",
        "a boolean" | "a string" => e,
        s if s.starts_with("struct ") => "an object",
        s => return printable(s).into_owned(),
    };
    w.to_owned()
}

/// Reads a PEM file named in the config, or says why not into `errs`.
pub fn read_pem(
    base: &Path,
    field: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<Vec<u8>> {
    let p = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        base.join(path)
    };
    match std::fs::read(&p) {
        Ok(b) if String::from_utf8_lossy(&b).contains("-----BEGIN ") => Some(b),
        Ok(_) => {
            errs.push(FieldError {
                field: field.into(),
                value: p.display().to_string(),
                problem: "is not a PEM file (no -----BEGIN line)".into(),
            });
            None
        }
        Err(e) => {
            errs.push(FieldError {
                field: field.into(),
                value: p.display().to_string(),
                problem: format!("cannot be read: {e}"),
            });
            None
        }
    }
}

/// Checks `run_as`: a user that exists on this machine.
pub fn check_run_as(run_as: Option<&String>, errs: &mut Vec<FieldError>) -> Option<String> {
    let name = run_as?;
    if crate::daemon::user_exists(name) {
        Some(name.clone())
    } else {
        errs.push(FieldError {
            field: "server.run_as".into(),
            value: name.clone(),
            problem: "is not a user on this machine".into(),
        });
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_controls_and_bidi_overrides() {
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("a\nb\u{202e}c"), "a\\u{a}b\\u{202e}c");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: Inner,
        #[serde(default)]
        list: Vec<Item>,
        #[serde(default)]
        token: Option<String>,
    }
    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        b: u32,
        #[serde(default)]
        c: bool,
        #[serde(default)]
        d: Vec<String>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        #[serde(default)]
        port: u16,
    }

    fn lines(text: &str) -> Vec<String> {
        match parse_json::<T>(text, "f.json") {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn every_unknown_key_and_wrong_type_is_reported_at_once() {
        // Keys come in name order (serde_json's map); array positions are the written ones,
        // though elements before them were taken out.
        assert_eq!(
            lines(
                r#"{"a":{"b":1,"c":"yes","x":1,"d":["ok",5,"ok",[],"ok"]},"list":[{"port":70000},{"prot":1},{"port":"80"}],"token":12345,"z":{"deep":true}}"#
            ),
            [
                "f.json: a.c: 'yes' is a string, expected a boolean",
                "f.json: a.d[1]: '5' is a number, expected a string",
                "f.json: a.d[3]: '[]' is an array, expected a string",
                "f.json: a.x: '1' is not a known key (expected one of `b`, `c`, `d`)",
                "f.json: list[0].port: '70000' is not valid here: expected a whole number (0 or more)",
                "f.json: list[1].prot: '1' is not a known key (expected `port`)",
                "f.json: list[2].port: '80' is a string, expected a whole number (0 or more)",
                "f.json: token: '<hidden>' is a number, expected a string",
                "f.json: z: '{\"deep\":true}' is not a known key (expected one of `a`, `list`, `token`)",
            ]
        );
        assert!(lines(r#"{"a":{"b":1}}"#).is_empty());
    }

    #[test]
    fn an_unknown_block_holding_a_secret_is_not_quoted() {
        // A block put under a wrong key (a `server` block as `mode`, with users' hashes) is
        // quoted as an unknown key's value: not when a secret is anywhere inside it.
        assert_eq!(
            lines(
                r#"{"a":{"b":1},"mode":{"auth":{"users":[{"name":"ops","password_hash":"$argon2id$v=19$abc"}]}},"q":"$argon2id$v=19$def"}"#
            ),
            [
                "f.json: mode: '<hidden>' is not a known key (expected one of `a`, `list`, `token`)",
                "f.json: q: '<hidden>' is not a known key (expected one of `a`, `list`, `token`)",
            ]
        );
    }

    #[test]
    fn a_missing_or_unusable_required_field_ends_the_parse() {
        assert_eq!(
            lines(r#"{"a":{"x":1}}"#),
            [
                "f.json: a.x: '1' is not a known key (expected one of `b`, `c`, `d`)",
                "f.json: a.b: is missing",
            ]
        );
        // A wrong type in a required field is reported once, not again as missing.
        assert_eq!(
            lines(r#"{"a":{"b":"one","c":2}}"#),
            [
                "f.json: a.b: 'one' is a string, expected a whole number (0 or more)",
                "f.json: a.c: '2' is a number, expected a boolean",
            ]
        );
        let e = parse_json::<T>("{", "f.json").expect_err("syntax");
        assert!(e.to_string().starts_with("f.json: .: "), "{e}");
        assert!(matches!(e, ConfigError::Parse { .. }));
    }

    #[test]
    fn parse_problems_come_before_the_value_checks() {
        let (t, errs) = parse_json_all::<T>(r#"{"a":{"b":1,"q":0}}"#, "f.json").expect("parsed");
        assert_eq!(t.a.b, 1);
        let checked: Result<(), _> = Err(vec![FieldError {
            field: "a.b".into(),
            value: "1".into(),
            problem: "is too small".into(),
        }]);
        let e = finish("f.json", errs, checked).expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "f.json: a.q: '0' is not a known key (expected one of `b`, `c`, `d`)\nf.json: a.b: '1' is too small"
        );
    }

    #[test]
    fn read_pem_says_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ok.pem"), "-----BEGIN CERTIFICATE-----\n").expect("w");
        std::fs::write(dir.path().join("bad.pem"), "hello").expect("w");
        let mut errs = Vec::new();
        assert!(read_pem(dir.path(), "x.cert", "ok.pem", &mut errs).is_some());
        assert!(read_pem(dir.path(), "x.key", "bad.pem", &mut errs).is_none());
        assert!(read_pem(dir.path(), "x.ca", "missing.pem", &mut errs).is_none());
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].field, "x.key");
        assert_eq!(errs[0].problem, "is not a PEM file (no -----BEGIN line)");
        assert!(
            errs[1].problem.starts_with("cannot be read: "),
            "{:?}",
            errs[1]
        );
    }
}
