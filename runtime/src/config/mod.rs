//! The config kit both daemons' configs are built from: the error types (one invalid field,
//! a whole failed load), JSON parsing that names the field where it stopped, PEM reading,
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
    /// The offending value as written (or `<hidden>` for secrets).
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
    /// The file is not valid JSON of the expected shape (including unknown keys).
    #[error("{file}: {field}: {message}")]
    Parse {
        /// The config file.
        file: String,
        /// Dotted path of the field where parsing stopped (`.` for the top level).
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

/// Parses config JSON into `T`, naming the file and the field where parsing stopped (unknown
/// keys included). Shared by both daemons' configs.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        // serde_path_to_error writes `?` for a position it cannot name (a syntax error).
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
    })
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

    #[test]
    fn parse_errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: Inner,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Inner {
            b: u32,
        }
        let e = parse_json::<T>(r#"{"a":{"c":1}}"#, "f.json").expect_err("unknown key");
        assert!(
            e.to_string().starts_with("f.json: a.c: unknown field `c`"),
            "{e}"
        );
        let e = parse_json::<T>("{", "f.json").expect_err("syntax");
        assert!(e.to_string().starts_with("f.json: .: "), "{e}");
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
