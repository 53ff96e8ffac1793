//! A secret from the config (a token, a password, a webhook URL that embeds a token): kept in
//! memory for sending, never shown. Its `Debug` prints `<hidden>`, it has no `Display` and no
//! `Serialize`, so it cannot reach a log line, an error or the API by accident.

use std::fmt;
use std::path::{Path, PathBuf};

use smon_runtime::config::FieldError;

/// A secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// Reads a secret given either inline (`field`) or as a file (`field_file`, relative to
/// `base`, trimmed), as the aggregator reads agents' `token_file` and remote-write
/// `bearer_token_file`. Records the file for the file-mode warnings
/// (`smon_runtime::secret_file`). `Ok(None)`: neither is set. Problems go to `errs`, which
/// never quote the secret itself.
pub(crate) fn read(
    inline: Option<&str>,
    file: Option<&Path>,
    field: &str,
    base: &Path,
    secret_files: &mut Vec<PathBuf>,
    errs: &mut Vec<FieldError>,
) -> Option<Secret> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            errs.push(FieldError {
                field: format!("{field}_file"),
                value: String::new(),
                problem: format!("cannot be combined with {}; set one", last(field)),
            });
            None
        }
        (Some(s), None) if s.trim().is_empty() => {
            errs.push(FieldError {
                field: field.to_owned(),
                value: String::new(),
                problem: "is empty".into(),
            });
            None
        }
        (Some(s), None) => Some(Secret::new(s.trim())),
        (None, Some(file)) => {
            let p = if file.is_absolute() {
                file.to_path_buf()
            } else {
                base.join(file)
            };
            secret_files.push(p.clone());
            let field = format!("{field}_file");
            match std::fs::read_to_string(&p) {
                Ok(t) if !t.trim().is_empty() => Some(Secret::new(t.trim())),
                Ok(_) => {
                    errs.push(FieldError {
                        field,
                        value: p.display().to_string(),
                        problem: "is empty".into(),
                    });
                    None
                }
                Err(e) => {
                    errs.push(FieldError {
                        field,
                        value: p.display().to_string(),
                        problem: format!("cannot be read: {e}"),
                    });
                    None
                }
            }
        }
        (None, None) => None,
    }
}

fn last(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let s = Secret::new("xoxb-123");
        assert_eq!(format!("{s:?}"), "<hidden>");
        assert_eq!(s.expose(), "xoxb-123");
    }

    #[test]
    fn a_file_is_read_trimmed_and_problems_name_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("tok"), "abc\n").expect("write");
        std::fs::write(dir.path().join("empty"), "\n").expect("write");
        let (mut files, mut errs) = (Vec::new(), Vec::new());
        let got = read(
            None,
            Some(Path::new("tok")),
            "alerts.channels[0].token",
            dir.path(),
            &mut files,
            &mut errs,
        );
        assert_eq!(got.as_ref().map(Secret::expose), Some("abc"));
        assert_eq!(files, vec![dir.path().join("tok")]);
        assert!(errs.is_empty());
        let got = read(
            None,
            Some(Path::new("empty")),
            "a.token",
            dir.path(),
            &mut files,
            &mut errs,
        );
        assert!(got.is_none());
        assert_eq!(errs[0].field, "a.token_file");
        assert!(errs[0].to_string().contains("is empty"), "{}", errs[0]);
        let got = read(
            Some("x"),
            Some(Path::new("tok")),
            "a.token",
            dir.path(),
            &mut files,
            &mut errs,
        );
        assert!(got.is_none());
        assert_eq!(
            errs[1].to_string(),
            "a.token_file: cannot be combined with token; set one"
        );
    }
}
