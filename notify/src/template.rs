//! Titles and bodies of notifications, from minijinja templates: the defaults below, or a
//! channel's own `title_template` / `body_template`. A template is checked at config load by
//! rendering it once with a sample notification, so a typo fails the load, not a page at 3 am.

use std::sync::{Arc, LazyLock};

use minijinja::Environment;
use serde::Serialize;
use smon_api::alerts::{AlertStatus, Notification};

/// The default title: status, rule and the hosts (their number past three).
pub const DEFAULT_TITLE: &str = "[{{ status | upper }}] {{ rule }}: \
{% if hosts | length <= 3 %}{{ hosts | join(', ') }}{% else %}{{ hosts | length }} hosts{% endif %}";

/// The default body: one line per host with its value and detail, the start time and the
/// link.
pub const DEFAULT_BODY: &str = "{{ rule }} is {{ status }} ({{ severity }}){% if repeat %}, still{% endif %}.
{% for a in alerts %}
- {{ a.host }}{% if a.subject %} {{ a.subject }}{% endif %}{% if a.value is not none %}: {{ a.value }}{% endif %}{% if a.detail %} ({{ a.detail }}){% endif %}{% if a.flapping %} [flapping]{% endif %}

{% endfor %}
Started {{ started }}{% if status == 'resolved' and resolved %}, resolved {{ resolved }}{% endif %}.
{% if link %}{{ link }}
{% endif %}";

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Plain text out: no HTML escaping (chat services and mail bodies are not HTML).
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_trim_blocks(true);
    env
});

/// A channel's templates (its own or the defaults).
#[derive(Debug, Clone, Default)]
pub struct Templates {
    title: Option<Arc<str>>,
    body: Option<Arc<str>>,
}

/// What a template made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line.
    pub title: String,
    /// Several lines.
    pub body: String,
}

/// A template failed to render (a broken custom template).
#[derive(Debug, thiserror::Error)]
#[error("the {which} template failed: {source}")]
pub struct TemplateError {
    /// `title_template` or `body_template`.
    pub which: &'static str,
    /// minijinja's reason.
    #[source]
    pub source: minijinja::Error,
}

impl Templates {
    /// Checks `title` and `body` (either may be the default) by rendering a sample; the error
    /// names the template field.
    pub fn new(
        title: Option<&str>,
        body: Option<&str>,
    ) -> Result<Self, (&'static str, minijinja::Error)> {
        let t = Self {
            title: title.map(Arc::from),
            body: body.map(Arc::from),
        };
        let sample = sample();
        let cx = Context::of(&sample);
        if let Some(s) = &t.title {
            ENV.render_str(s, &cx).map_err(|e| ("title_template", e))?;
        }
        if let Some(s) = &t.body {
            ENV.render_str(s, &cx).map_err(|e| ("body_template", e))?;
        }
        Ok(t)
    }

    /// Whether either template is not the default.
    pub fn is_custom(&self) -> bool {
        self.title.is_some() || self.body.is_some()
    }

    /// Renders the title (one line, trimmed) and the body of `n`.
    pub fn render(&self, n: &Notification) -> Result<Rendered, TemplateError> {
        let cx = Context::of(n);
        let title = ENV
            .render_str(self.title.as_deref().unwrap_or(DEFAULT_TITLE), &cx)
            .map_err(|source| TemplateError {
                which: "title_template",
                source,
            })?;
        let body = ENV
            .render_str(self.body.as_deref().unwrap_or(DEFAULT_BODY), &cx)
            .map_err(|source| TemplateError {
                which: "body_template",
                source,
            })?;
        Ok(Rendered {
            title: title.split_whitespace().collect::<Vec<_>>().join(" "),
            body: body.trim_end().to_owned(),
        })
    }
}

/// The values a template sees (the README lists them).
#[derive(Debug, Serialize)]
pub(crate) struct Context<'a> {
    id: &'a str,
    status: &'static str,
    rule: &'a str,
    severity: &'static str,
    repeat: bool,
    /// Host ids, each once, in the order of the alerts.
    hosts: Vec<&'a str>,
    alerts: Vec<AlertContext<'a>>,
    /// The earliest start (RFC 3339, UTC).
    started: String,
    /// The latest resolve time, when resolved.
    resolved: Option<String>,
    /// When the notification was made.
    at: String,
    link: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct AlertContext<'a> {
    host: &'a str,
    cluster: &'a str,
    subject: &'a str,
    /// The value, written short (`93.12`), or none.
    value: Option<String>,
    detail: &'a str,
    started: String,
    fired: String,
    resolved: Option<String>,
    flapping: bool,
}

impl<'a> Context<'a> {
    pub(crate) fn of(n: &'a Notification) -> Self {
        let mut hosts: Vec<&str> = Vec::new();
        for a in &n.alerts {
            if !hosts.contains(&a.host.host.as_str()) {
                hosts.push(&a.host.host);
            }
        }
        let started = n
            .alerts
            .iter()
            .map(|a| a.started_ms)
            .min()
            .unwrap_or(n.at_ms);
        let resolved = n.alerts.iter().filter_map(|a| a.resolved_ms).max();
        Self {
            id: &n.id,
            status: n.status.as_str(),
            rule: &n.rule,
            severity: n.severity.as_str(),
            repeat: n.repeat,
            hosts,
            alerts: n
                .alerts
                .iter()
                .map(|a| AlertContext {
                    host: &a.host.host,
                    cluster: &a.host.cluster,
                    subject: &a.host.subject,
                    value: a.host.value.map(short),
                    detail: &a.host.detail,
                    started: rfc3339(a.started_ms),
                    fired: rfc3339(a.fired_ms),
                    resolved: a.resolved_ms.map(rfc3339),
                    flapping: a.flapping,
                })
                .collect(),
            started: rfc3339(started),
            resolved: (n.status == AlertStatus::Resolved)
                .then_some(resolved)
                .flatten()
                .map(rfc3339),
            at: rfc3339(n.at_ms),
            link: n.link.as_deref(),
        }
    }
}

/// A value written short: at most two decimals, no trailing zeros.
pub(crate) fn short(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

/// Milliseconds since the epoch as RFC 3339 in UTC (`2026-12-04T10:06:27.123Z`).
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// The notification used to check templates and by "send test".
pub fn sample() -> Notification {
    use smon_api::alerts::{Alert, AlertHost, Severity};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Notification {
        id: format!("test-{now}"),
        status: AlertStatus::Firing,
        rule: "smon test notification".into(),
        severity: Severity::Info,
        alerts: vec![Alert {
            id: format!("test-{now}-a"),
            rule: "smon test notification".into(),
            severity: Severity::Info,
            status: AlertStatus::Firing,
            host: AlertHost {
                host: "smon:test".into(),
                cluster: "smon".into(),
                subject: String::new(),
                value: Some(1.0),
                detail: "This is a test: the channel works.".into(),
            },
            started_ms: now,
            fired_ms: now,
            resolved_ms: None,
            flapping: false,
        }],
        repeat: false,
        at_ms: now,
        link: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smon_api::alerts::{Alert, AlertHost, Severity};

    fn alert(host: &str, subject: &str, value: Option<f64>, detail: &str) -> Alert {
        Alert {
            id: format!("a-{host}"),
            rule: "disk".into(),
            severity: Severity::Critical,
            status: AlertStatus::Firing,
            host: AlertHost {
                host: host.into(),
                cluster: "lab".into(),
                subject: subject.into(),
                value,
                detail: detail.into(),
            },
            started_ms: 1_764_842_787_000,
            fired_ms: 1_764_842_847_000,
            resolved_ms: None,
            flapping: false,
        }
    }

    fn n(alerts: Vec<Alert>) -> Notification {
        Notification {
            id: "n1".into(),
            status: AlertStatus::Firing,
            rule: "disk".into(),
            severity: Severity::Critical,
            alerts,
            repeat: false,
            at_ms: 1_764_842_850_000,
            link: Some("https://smon.example/alerts".into()),
        }
    }

    #[test]
    fn the_defaults_carry_status_rule_hosts_values_start_and_link() {
        let r = Templates::default()
            .render(&n(vec![
                alert("lab:n1", "/var", Some(93.456), "/var is 93.5 % full"),
                alert("lab:n2", "", None, ""),
            ]))
            .expect("render");
        assert_eq!(r.title, "[FIRING] disk: lab:n1, lab:n2");
        assert_eq!(
            r.body,
            "disk is firing (critical).\n- lab:n1 /var: 93.46 (/var is 93.5 % full)\n- lab:n2\n\
             Started 2025-12-04T10:06:27Z.\nhttps://smon.example/alerts"
        );
    }

    #[test]
    fn many_hosts_are_counted_in_the_title() {
        let many: Vec<_> = (0..100)
            .map(|i| alert(&format!("lab:n{i}"), "", None, ""))
            .collect();
        let r = Templates::default().render(&n(many)).expect("render");
        assert_eq!(r.title, "[FIRING] disk: 100 hosts");
        assert_eq!(r.body.lines().filter(|l| l.starts_with("- ")).count(), 100);
    }

    #[test]
    fn custom_templates_are_checked_and_used() {
        let t = Templates::new(
            Some("{{ severity }}/{{ rule }}"),
            Some("{{ hosts | join(' ') }} {{ link }}"),
        )
        .expect("valid");
        let r = t
            .render(&n(vec![alert("lab:n1", "", None, "")]))
            .expect("render");
        assert_eq!(r.title, "critical/disk");
        assert_eq!(r.body, "lab:n1 https://smon.example/alerts");
        let (which, _) = Templates::new(None, Some("{% for %}")).expect_err("broken");
        assert_eq!(which, "body_template");
        let (which, _) = Templates::new(Some("{{ 1 + }}"), None).expect_err("broken");
        assert_eq!(which, "title_template");
    }

    #[test]
    fn values_are_short() {
        assert_eq!(short(93.0), "93");
        assert_eq!(short(93.456), "93.46");
        assert_eq!(short(0.1), "0.1");
        assert_eq!(rfc3339(1_000), "1970-01-01T00:00:01Z");
    }
}
