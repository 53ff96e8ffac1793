//! Silences: alerts matching a rule, host, cluster and/or tag notify nothing, for a time
//! (`ends_ms`) or during a recurring maintenance window (weekdays and a time range in a time
//! zone, e.g. Sundays 02:00-04:00 Europe/Paris, daylight saving time included). A silenced alert
//! is still shown, marked silenced; when the silence ends while it fires, it notifies.

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use smon_runtime::config::FieldError;

/// A silence as admins write it (config, the UI's "silence" action, stored as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceConfig {
    /// Its id (unique; the UI makes one).
    pub id: String,
    /// Only alerts of this rule (any rule when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Only this host: its id `cluster:name`, or its name (any host when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Only hosts of this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Only hosts with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// From when (ms since the epoch; at once when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_ms: Option<u64>,
    /// Until when (ms since the epoch). A silence needs this or a `window`, or both (a
    /// window that stops recurring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_ms: Option<u64>,
    /// A recurring maintenance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowConfig>,
    /// Who made it.
    #[serde(default)]
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// A recurring window: on `days`, from `start` to `end` (local time in `timezone`). An `end`
/// before `start` runs past midnight into the next day (`22:00`-`02:00`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// The days the window opens: `mon` ... `sun` (every day when empty).
    #[serde(default)]
    pub days: Vec<String>,
    /// Opens at `HH:MM`.
    pub start: String,
    /// Closes at `HH:MM`.
    pub end: String,
    /// An IANA time zone (`Europe/Paris`), default `UTC`.
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".into()
}

/// A validated silence.
#[derive(Debug, Clone)]
pub struct Silence {
    /// What was written.
    pub config: SilenceConfig,
    window: Option<Window>,
}

#[derive(Debug, Clone)]
struct Window {
    /// Bit `n` for weekday `n` (Monday = 0).
    days: u8,
    start_min: u16,
    end_min: u16,
    tz: TimeZone,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_bit(d: Weekday) -> u8 {
    1 << (d.to_monday_zero_offset() as u8)
}

impl Silence {
    /// Validates `c` (`at` is its field path, e.g. `alerts.silences[0]`).
    pub fn new(c: SilenceConfig, at: &str) -> Result<Silence, Vec<FieldError>> {
        let mut errors = Vec::new();
        let e = |field: &str, value: &str, problem: &str| FieldError {
            field: format!("{at}.{field}"),
            value: value.to_owned(),
            problem: problem.to_owned(),
        };
        if c.id.trim().is_empty() {
            errors.push(e("id", &c.id, "is empty"));
        }
        for (field, v) in [
            ("rule", &c.rule),
            ("host", &c.host),
            ("cluster", &c.cluster),
            ("tag", &c.tag),
        ] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                errors.push(e(
                    field,
                    v.as_deref().unwrap_or_default(),
                    "is empty; leave the field out to match any",
                ));
            }
        }
        if c.ends_ms.is_none() && c.window.is_none() {
            errors.push(FieldError {
                field: format!("{at}.ends_ms"),
                value: String::new(),
                problem: "is missing: a silence needs an end time or a recurring window".into(),
            });
        }
        if let (Some(s), Some(end)) = (c.starts_ms, c.ends_ms)
            && end <= s
        {
            errors.push(e(
                "ends_ms",
                &end.to_string(),
                &format!("is not after starts_ms ({s})"),
            ));
        }
        let mut window = None;
        if let Some(w) = &c.window {
            let mut days = 0u8;
            for (i, d) in w.days.iter().enumerate() {
                match DAYS.iter().position(|x| x.eq_ignore_ascii_case(d.trim())) {
                    Some(n) => days |= 1 << n,
                    None => errors.push(e(
                        &format!("window.days[{i}]"),
                        d,
                        "is not a day: mon, tue, wed, thu, fri, sat or sun",
                    )),
                }
            }
            if w.days.is_empty() {
                days = 0x7f;
            }
            let start = hhmm(&w.start);
            let end = hhmm(&w.end);
            if start.is_none() {
                errors.push(e(
                    "window.start",
                    &w.start,
                    "is not a time of day HH:MM (00:00 to 23:59)",
                ));
            }
            if end.is_none() {
                errors.push(e(
                    "window.end",
                    &w.end,
                    "is not a time of day HH:MM (00:00 to 23:59)",
                ));
            }
            if start.is_some() && start == end {
                errors.push(e(
                    "window.end",
                    &w.end,
                    "is the start time: the window would be empty",
                ));
            }
            let tz = match TimeZone::get(&w.timezone) {
                Ok(tz) => Some(tz),
                Err(_) => {
                    errors.push(e(
                        "window.timezone",
                        &w.timezone,
                        "is not a known IANA time zone (e.g. UTC, Europe/Paris, America/New_York)",
                    ));
                    None
                }
            };
            if let (Some(start_min), Some(end_min), Some(tz)) = (start, end, tz) {
                window = Some(Window {
                    days,
                    start_min,
                    end_min,
                    tz,
                });
            }
        }
        if errors.is_empty() {
            Ok(Silence { config: c, window })
        } else {
            Err(errors)
        }
    }

    /// The silence's id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Whether it is in force at `now_ms` (its time span, and its window if it has one).
    pub fn active(&self, now_ms: u64) -> bool {
        let c = &self.config;
        if c.starts_ms.is_some_and(|s| now_ms < s) || c.ends_ms.is_some_and(|e| now_ms >= e) {
            return false;
        }
        let Some(w) = &self.window else {
            return true;
        };
        let Ok(ts) = Timestamp::from_millisecond(i64::try_from(now_ms).unwrap_or(i64::MAX)) else {
            return false;
        };
        let local = w.tz.to_datetime(ts);
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let today = w.days & day_bit(local.weekday()) != 0;
        if w.start_min < w.end_min {
            today && minute >= w.start_min && minute < w.end_min
        } else {
            // Past midnight: the evening part belongs to today's window, the morning part to
            // yesterday's.
            let yesterday = w.days & day_bit(local.weekday().previous()) != 0;
            (today && minute >= w.start_min) || (yesterday && minute < w.end_min)
        }
    }

    /// Whether it covers alerts of `rule` on the host `id` of `cluster` with `tags`.
    pub fn matches(&self, rule: &str, id: &str, cluster: &str, tags: &[String]) -> bool {
        let c = &self.config;
        let name = id.split_once(':').map_or(id, |(_, n)| n);
        c.rule.as_deref().is_none_or(|r| r == rule)
            && c.host.as_deref().is_none_or(|h| h == id || h == name)
            && c.cluster.as_deref().is_none_or(|x| x == cluster)
            && c.tag.as_deref().is_none_or(|t| tags.iter().any(|x| x == t))
    }
}

/// Validates `alerts.silences[]` (`path` is the array's field path).
pub fn compile_silences(
    configs: &[SilenceConfig],
    path: &str,
) -> Result<Vec<Silence>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        if let Some(j) = configs[..i].iter().position(|o| o.id == c.id) {
            errors.push(FieldError {
                field: format!("{path}[{i}].id"),
                value: c.id.clone(),
                problem: format!("is the id of {path}[{j}] already; silence ids must be unique"),
            });
        }
        match Silence::new(c.clone(), &format!("{path}[{i}]")) {
            Ok(s) => out.push(s),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        let t: Timestamp = s.parse().expect("timestamp");
        t.as_millisecond() as u64
    }

    fn window(days: &[&str], start: &str, end: &str, tz: &str) -> Silence {
        Silence::new(
            SilenceConfig {
                id: "w".into(),
                rule: None,
                host: None,
                cluster: Some("lab".into()),
                tag: None,
                starts_ms: None,
                ends_ms: None,
                window: Some(WindowConfig {
                    days: days.iter().map(|d| d.to_string()).collect(),
                    start: start.into(),
                    end: end.into(),
                    timezone: tz.into(),
                }),
                created_by: "admin".into(),
                comment: String::new(),
            },
            "alerts.silences[0]",
        )
        .expect("valid")
    }

    #[test]
    fn a_weekly_window_follows_its_time_zone_across_daylight_saving() {
        // Sundays 02:00-04:00 in Paris: 00:00-02:00 UTC in summer, 01:00-03:00 in winter.
        let s = window(&["sun"], "02:00", "04:00", "Europe/Paris");
        assert!(s.active(ms("2026-07-05T00:30:00Z")));
        assert!(!s.active(ms("2026-07-05T02:30:00Z")));
        assert!(!s.active(ms("2026-12-06T00:30:00Z")));
        assert!(s.active(ms("2026-12-06T02:30:00Z")));
        // A Saturday at the same time: closed.
        assert!(!s.active(ms("2026-12-05T02:30:00Z")));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_opens() {
        let s = window(&["fri"], "22:00", "02:00", "UTC");
        assert!(s.active(ms("2026-12-04T23:00:00Z")), "Friday evening");
        assert!(
            s.active(ms("2026-12-05T01:59:00Z")),
            "Saturday early morning"
        );
        assert!(!s.active(ms("2026-12-05T02:00:00Z")));
        assert!(!s.active(ms("2026-12-05T23:00:00Z")), "Saturday evening");
        assert!(
            !s.active(ms("2026-12-04T01:00:00Z")),
            "Friday early morning"
        );
    }

    #[test]
    fn a_one_off_silence_has_a_span_and_matchers() {
        let s = Silence::new(
            SilenceConfig {
                id: "s".into(),
                rule: Some("disk".into()),
                host: Some("n1".into()),
                cluster: None,
                tag: None,
                starts_ms: Some(1000),
                ends_ms: Some(5000),
                window: None,
                created_by: String::new(),
                comment: String::new(),
            },
            "s",
        )
        .expect("valid");
        assert!(!s.active(999) && s.active(1000) && s.active(4999) && !s.active(5000));
        assert!(s.matches("disk", "lab:n1", "lab", &[]));
        assert!(!s.matches("cpu", "lab:n1", "lab", &[]));
        assert!(!s.matches("disk", "lab:n2", "lab", &[]));
    }

    #[test]
    fn bad_silences_name_the_field_and_value() {
        let mut c = window(&["sun"], "02:00", "04:00", "UTC").config;
        c.window = Some(WindowConfig {
            days: vec!["sunday".into()],
            start: "25:00".into(),
            end: "4pm".into(),
            timezone: "Mars/Olympus".into(),
        });
        let e: Vec<String> = Silence::new(c, "alerts.silences[3]")
            .expect_err("invalid")
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            e,
            [
                "alerts.silences[3].window.days[0]: 'sunday' is not a day: mon, tue, wed, thu, fri, sat or sun",
                "alerts.silences[3].window.start: '25:00' is not a time of day HH:MM (00:00 to 23:59)",
                "alerts.silences[3].window.end: '4pm' is not a time of day HH:MM (00:00 to 23:59)",
                "alerts.silences[3].window.timezone: 'Mars/Olympus' is not a known IANA time zone (e.g. UTC, Europe/Paris, America/New_York)",
            ]
        );
        let w = window(&[], "02:00", "04:00", "UTC").config;
        let e = compile_silences(&[w.clone(), w.clone()], "alerts.silences").expect_err("dup");
        assert_eq!(
            e[0].to_string(),
            "alerts.silences[1].id: 'w' is the id of alerts.silences[0] already; silence ids must be unique"
        );
        let mut c = w;
        c.window = None;
        let e = Silence::new(c, "s").expect_err("no end");
        assert_eq!(
            e[0].to_string(),
            "s.ends_ms: is missing: a silence needs an end time or a recurring window"
        );
    }
}
