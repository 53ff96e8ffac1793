//! The `log` block: level (or filter) and format, both daemons the same.

use serde::Deserialize;

use super::FieldError;

/// The `log` block (both daemons).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Level or filter, e.g. `info`, `debug`, `smon_aggregator=debug,info`. `RUST_LOG` wins.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `human` or `json`. The `--log-format` flag wins.
    #[serde(default = "default_log_format")]
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
            format: default_log_format(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

fn default_log_format() -> String {
    "human".to_owned()
}

/// Validated logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The filter (`RUST_LOG` syntax).
    pub filter: String,
    /// JSON lines instead of text.
    pub json: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            filter: default_log_level(),
            json: false,
        }
    }
}

impl LogConfig {
    /// Checks the block; records problems.
    pub fn check(&self, errs: &mut Vec<FieldError>) -> Option<LogSettings> {
        let mut ok = true;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            errs.push(FieldError {
                field: "log.level".into(),
                value: self.level.clone(),
                problem: format!("is not a log level or filter: {e}"),
            });
            ok = false;
        }
        let json = match self.format.as_str() {
            "human" => false,
            "json" => true,
            other => {
                errs.push(FieldError {
                    field: "log.format".into(),
                    value: other.into(),
                    problem: "is not one of human, json".into(),
                });
                ok = false;
                false
            }
        };
        ok.then(|| LogSettings {
            filter: self.level.clone(),
            json,
        })
    }
}
