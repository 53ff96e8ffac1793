//! Where the database lives and how long each tier keeps its data: the `storage` block both
//! daemons' configs share ([`StorageConfig`], checked with the file/field/value errors of the
//! config kit), and the checked [`StorageOptions`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use smon_runtime::config::FieldError;

/// How long each tier keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Every sample (default 24 h).
    pub raw: Duration,
    /// 1-minute min/avg/max (default 90 days).
    pub minute: Duration,
    /// 1-hour min/avg/max (default 2 years).
    pub hour: Duration,
    /// Top processes and GPU processes, one set per host per minute (default 30 days).
    pub processes: Duration,
}

const DAY: u64 = 86_400;

impl Default for Retention {
    fn default() -> Self {
        Self {
            raw: Duration::from_secs(DAY),
            minute: Duration::from_secs(90 * DAY),
            hour: Duration::from_secs(730 * DAY),
            processes: Duration::from_secs(30 * DAY),
        }
    }
}

/// The storage settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageOptions {
    /// The directory of the database (`history.sqlite3` in it).
    pub dir: PathBuf,
    /// Retention per tier.
    pub retention: Retention,
}

impl StorageOptions {
    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(crate::db::FILE_NAME)
    }
}

/// The `storage` block of a config file (the aggregator adds its `remote_write` beside these
/// keys, in a struct of its own that hands these to [`StorageConfig::check`]). Every key
/// needs a restart.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Keep history. Off: no database is opened and the history routes answer 503
    /// "history is off". The aggregator's default is on, the agent's off.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The database's directory (`smon.sqlite3` in it); relative to the config file's
    /// directory (the working directory for the embedded default). Default [`DEFAULT_DIR`].
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// How long each tier keeps its data.
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// `storage.retention`: durations such as `"24h"`, `"90d"` or `"2y"` (units `s`, `m`, `h`,
/// `d`, `w`, `y` = 365 days).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Every sample (default `24h`).
    #[serde(default)]
    pub raw: Option<String>,
    /// 1-minute min/avg/max (default `90d`).
    #[serde(default)]
    pub minute: Option<String>,
    /// 1-hour min/avg/max (default `2y`).
    #[serde(default)]
    pub hour: Option<String>,
    /// Top processes and GPU processes (default `30d`).
    #[serde(default)]
    pub processes: Option<String>,
}

/// The storage directory when `storage.dir` is not set (relative to the config file).
pub const DEFAULT_DIR: &str = "smon-data";

/// Parses a duration such as `"90s"`, `"15m"`, `"24h"`, `"90d"`, `"2w"` or `"2y"` (a year
/// is 365 days); `None` when it is not one.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

impl RetentionConfig {
    /// The checked retention; a bad value is pushed to `errs` (and its default taken).
    fn check(&self, errs: &mut Vec<FieldError>) -> Retention {
        let defaults = Retention::default();
        let mut one = |name: &str, v: &Option<String>, default: Duration| {
            let Some(text) = v else { return default };
            let problem = match parse_duration(text) {
                Some(d)
                    if d >= Duration::from_secs(3600)
                        && d <= Duration::from_secs(100 * 365 * DAY) =>
                {
                    return d;
                }
                Some(_) => "must be between 1h and 100y",
                None => "is not a duration like 24h, 90d or 2y (units s, m, h, d, w, y)",
            };
            errs.push(FieldError {
                field: format!("storage.retention.{name}"),
                value: text.clone(),
                problem: problem.into(),
            });
            default
        };
        Retention {
            raw: one("raw", &self.raw, defaults.raw),
            minute: one("minute", &self.minute, defaults.minute),
            hour: one("hour", &self.hour, defaults.hour),
            processes: one("processes", &self.processes, defaults.processes),
        }
    }
}

impl StorageConfig {
    /// The checked options, `None` when history is off (`enabled` unset: `on_by_default`).
    /// Relative directories are taken from `base` (the config file's directory). Problems
    /// are pushed to `errs`, named `storage.*`; the block is checked when off too, so that a
    /// mistake shows before it is switched on.
    pub fn check(
        &self,
        base: &Path,
        on_by_default: bool,
        errs: &mut Vec<FieldError>,
    ) -> Option<StorageOptions> {
        let retention = self.retention.check(errs);
        let dir = match &self.dir {
            Some(d) if d.as_os_str().is_empty() => {
                errs.push(FieldError {
                    field: "storage.dir".into(),
                    value: String::new(),
                    problem: format!(
                        "is empty: name a directory, or leave the key out for {DEFAULT_DIR} next to the config file"
                    ),
                });
                return None;
            }
            Some(d) if d.is_absolute() => d.clone(),
            Some(d) => base.join(d),
            None => base.join(DEFAULT_DIR),
        };
        if dir.is_file() {
            errs.push(FieldError {
                field: "storage.dir".into(),
                value: dir.display().to_string(),
                problem: "is a file, not a directory".into(),
            });
        }
        self.enabled
            .unwrap_or(on_by_default)
            .then_some(StorageOptions { dir, retention })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, on: bool) -> (Option<StorageOptions>, Vec<String>) {
        let c: StorageConfig = serde_json::from_str(json).expect("json");
        let mut errs = Vec::new();
        let o = c.check(Path::new("/etc/smon"), on, &mut errs);
        (o, errs.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn the_default_follows_the_daemon_and_the_dir_sits_next_to_the_config() {
        let (o, errs) = check("{}", true);
        assert!(errs.is_empty(), "{errs:?}");
        let o = o.expect("on");
        assert_eq!(o.dir, Path::new("/etc/smon/smon-data"));
        assert_eq!(o.retention, Retention::default());
        assert_eq!(check("{}", false).0, None);
        assert!(check(r#"{"enabled":true}"#, false).0.is_some());
        assert_eq!(check(r#"{"enabled":false}"#, true).0, None);
        let (o, _) = check(
            r#"{"dir":"/var/lib/smon","retention":{"raw":"48h","hour":"1y"}}"#,
            true,
        );
        let o = o.expect("on");
        assert_eq!(o.dir, Path::new("/var/lib/smon"));
        assert_eq!(o.retention.raw, Duration::from_secs(2 * DAY));
        assert_eq!(o.retention.hour, Duration::from_secs(365 * DAY));
    }

    #[test]
    fn bad_values_are_named_even_when_history_is_off() {
        let (_, errs) = check(
            r#"{"enabled":false,"retention":{"raw":"2 days","minute":"30m"}}"#,
            true,
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].contains("storage.retention.raw") && errs[0].contains("2 days"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("storage.retention.minute") && errs[1].contains("between 1h and 100y"),
            "{errs:?}"
        );
        let (o, errs) = check(r#"{"dir":""}"#, true);
        assert!(o.is_none() && errs[0].contains("storage.dir"), "{errs:?}");
    }

    #[test]
    fn durations_take_their_unit() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2w"), Some(Duration::from_secs(14 * DAY)));
        assert_eq!(parse_duration("2y"), Some(Duration::from_secs(730 * DAY)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        for bad in [
            "",
            "h",
            "24",
            "1x",
            "1.5d",
            "-1d",
            "24hours",
            "99999999999999999999y",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
