//! The JSON each service is sent, built from a notification and its rendered title and body.
//! Pure functions: the shapes follow each service's documentation (the links are on each
//! function) and are unit-tested here; [`crate::send`] posts them.

use serde_json::{Value, json};
use smon_api::alerts::{AlertStatus, Notification, Severity};

use crate::template::{Rendered, rfc3339};

/// `text` cut to at most `max` characters (an ellipsis marks the cut): the services reject
/// longer fields rather than cut them.
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// Slack incoming webhook (<https://api.slack.com/messaging/webhooks>, Block Kit): `text` is
/// the fallback shown in notifications; a header block (plain text, at most 150 characters)
/// and a section (mrkdwn, at most 3000).
pub fn slack(n: &Notification, r: &Rendered) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&r.title, 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&slack_escape(&r.body), 3000)}}),
    ];
    if let Some(link) = &n.link {
        blocks.push(json!({"type": "context", "elements": [
            {"type": "mrkdwn", "text": format!("<{}|Open in smon>", slack_escape(link))}
        ]}));
    }
    json!({"text": cut(&r.title, 3000), "blocks": blocks})
}

/// Slack's three control characters in mrkdwn (<https://api.slack.com/reference/surfaces/formatting#escaping>).
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The colour of a notification in Discord's embed (an RGB integer).
fn colour(n: &Notification) -> u32 {
    match (n.status, n.severity) {
        (AlertStatus::Resolved, _) => 0x2e_b8_86,
        (_, Severity::Critical) => 0xd9_2d_20,
        (_, Severity::Warning) => 0xe8_a3_17,
        (_, Severity::Info) => 0x33_7a_b7,
    }
}

/// Discord webhook (<https://discord.com/developers/docs/resources/webhook#execute-webhook>):
/// one embed (title at most 256 characters, description at most 4096); no mentions parsed, so
/// a host name cannot ping `@everyone`.
pub fn discord(n: &Notification, r: &Rendered) -> Value {
    let mut embed = json!({
        "title": cut(&r.title, 256),
        "description": cut(&r.body, 4096),
        "color": colour(n),
        "timestamp": rfc3339(n.at_ms),
        "footer": {"text": format!("smon · {}", n.severity.as_str())},
    });
    if let Some(link) = &n.link {
        embed["url"] = json!(link);
    }
    json!({"content": null, "embeds": [embed], "allowed_mentions": {"parse": []}})
}

/// ntfy JSON publishing (<https://docs.ntfy.sh/publish/#publish-as-json>), posted to the
/// server's root URL: topic, title, message, priority 1-5, tags (emoji short codes), click.
pub fn ntfy(n: &Notification, r: &Rendered, topic: &str, extra_tags: &[String]) -> Value {
    let (priority, tag) = match (n.status, n.severity) {
        (AlertStatus::Resolved, _) => (3, "white_check_mark"),
        (_, Severity::Critical) => (5, "rotating_light"),
        (_, Severity::Warning) => (4, "warning"),
        (_, Severity::Info) => (3, "information_source"),
    };
    let mut tags = vec![tag.to_owned()];
    tags.extend(extra_tags.iter().cloned());
    let mut v = json!({
        "topic": topic,
        "title": cut(&r.title, 256),
        "message": cut(&r.body, 4096),
        "priority": priority,
        "tags": tags,
    });
    if let Some(link) = &n.link {
        v["click"] = json!(link);
    }
    v
}

/// Pushbullet `POST /v2/pushes` (<https://docs.pushbullet.com/#create-push>), type `note`.
pub fn pushbullet(r: &Rendered, device_iden: Option<&str>) -> Value {
    let mut v = json!({"type": "note", "title": r.title, "body": r.body});
    if let Some(d) = device_iden {
        v["device_iden"] = json!(d);
    }
    v
}

/// Telegram Bot API `sendMessage` (<https://core.telegram.org/bots/api#sendmessage>): plain
/// text (no parse mode, so nothing in a host name needs escaping), at most 4096 characters.
pub fn telegram(r: &Rendered, chat_id: &str) -> Value {
    let chat: Value = chat_id
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(chat_id));
    json!({
        "chat_id": chat,
        "text": cut(&format!("{}\n\n{}", r.title, r.body), 4096),
        "link_preview_options": {"is_disabled": true},
    })
}

/// Alertmanager `POST /api/v2/alerts` (<https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml>,
/// `postableAlerts`): one alert per host and subject, labelled alertname (the rule), cluster,
/// host, severity and subject when there is one. `endsAt` is the resolve time for resolved
/// alerts, and `firing_ends_ms` for firing ones: the notifier sends those again before then
/// (as Prometheus does), so that Alertmanager resolves them by itself only when smon stops.
pub fn alertmanager(n: &Notification, r: &Rendered, firing_ends_ms: u64) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            let mut labels = json!({
                "alertname": a.rule,
                "cluster": a.host.cluster,
                "host": a.host.host,
                "severity": a.severity.as_str(),
            });
            if !a.host.subject.is_empty() {
                labels["subject"] = json!(a.host.subject);
            }
            let description = if a.host.detail.is_empty() {
                match a.host.value {
                    Some(v) => format!("{} value {}", a.host.host, crate::template::short(v)),
                    None => a.host.host.clone(),
                }
            } else {
                a.host.detail.clone()
            };
            let mut v = json!({
                "labels": labels,
                "annotations": {"summary": r.title, "description": description},
                "startsAt": rfc3339(a.started_ms),
            });
            v["endsAt"] = if a.status == AlertStatus::Resolved || n.status == AlertStatus::Resolved
            {
                json!(rfc3339(a.resolved_ms.unwrap_or(n.at_ms)))
            } else {
                json!(rfc3339(firing_ends_ms))
            };
            if let Some(link) = &n.link {
                v["generatorURL"] = json!(link);
            }
            v
        })
        .collect();
    Value::Array(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smon_api::alerts::{Alert, AlertHost};

    fn n(status: AlertStatus) -> Notification {
        Notification {
            id: "n1".into(),
            status,
            rule: "disk".into(),
            severity: Severity::Critical,
            alerts: vec![Alert {
                id: "a1".into(),
                rule: "disk".into(),
                severity: Severity::Critical,
                status,
                host: AlertHost {
                    host: "lab:n1".into(),
                    cluster: "lab".into(),
                    subject: "/var".into(),
                    value: Some(93.5),
                    detail: String::new(),
                },
                started_ms: 1_000,
                fired_ms: 2_000,
                resolved_ms: (status == AlertStatus::Resolved).then_some(5_000),
                flapping: false,
            }],
            repeat: false,
            at_ms: 6_000,
            link: Some("https://smon.example/alerts".into()),
        }
    }

    fn r() -> Rendered {
        Rendered {
            title: "[FIRING] disk <x>".into(),
            body: "body & more".into(),
        }
    }

    #[test]
    fn slack_has_text_and_blocks_escaped() {
        let v = slack(&n(AlertStatus::Firing), &r());
        assert_eq!(v["text"], "[FIRING] disk <x>");
        assert_eq!(v["blocks"][0]["type"], "header");
        assert_eq!(v["blocks"][0]["text"]["type"], "plain_text");
        assert_eq!(v["blocks"][1]["text"]["text"], "body &amp; more");
        assert_eq!(
            v["blocks"][2]["elements"][0]["text"],
            "<https://smon.example/alerts|Open in smon>"
        );
    }

    #[test]
    fn discord_embed_within_limits_and_no_mentions() {
        let long = Rendered {
            title: "t".repeat(300),
            body: "b".repeat(5000),
        };
        let v = discord(&n(AlertStatus::Firing), &long);
        assert_eq!(
            v["embeds"][0]["title"].as_str().map(|s| s.chars().count()),
            Some(256)
        );
        assert_eq!(
            v["embeds"][0]["description"]
                .as_str()
                .map(|s| s.chars().count()),
            Some(4096)
        );
        assert_eq!(v["embeds"][0]["color"], 0xd92d20);
        assert_eq!(v["allowed_mentions"]["parse"], json!([]));
    }

    #[test]
    fn ntfy_priority_follows_severity_and_status() {
        let v = ntfy(&n(AlertStatus::Firing), &r(), "lab", &["smon".into()]);
        assert_eq!(
            (v["topic"].clone(), v["priority"].clone()),
            (json!("lab"), json!(5))
        );
        assert_eq!(v["tags"], json!(["rotating_light", "smon"]));
        assert_eq!(v["click"], "https://smon.example/alerts");
        let v = ntfy(&n(AlertStatus::Resolved), &r(), "lab", &[]);
        assert_eq!(v["priority"], 3);
    }

    #[test]
    fn telegram_chat_id_is_a_number_when_it_is_one() {
        assert_eq!(telegram(&r(), "-1001")["chat_id"], json!(-1001));
        assert_eq!(telegram(&r(), "@lab")["chat_id"], json!("@lab"));
        assert_eq!(
            telegram(&r(), "1")["text"],
            "[FIRING] disk <x>\n\nbody & more"
        );
    }

    #[test]
    fn alertmanager_labels_and_times() {
        let v = alertmanager(&n(AlertStatus::Firing), &r(), 9_000);
        assert_eq!(
            v[0]["labels"],
            json!({"alertname": "disk", "cluster": "lab", "host": "lab:n1", "severity": "critical", "subject": "/var"})
        );
        assert_eq!(v[0]["startsAt"], "1970-01-01T00:00:01Z");
        assert_eq!(v[0]["endsAt"], "1970-01-01T00:00:09Z");
        assert_eq!(v[0]["generatorURL"], "https://smon.example/alerts");
        assert_eq!(v[0]["annotations"]["description"], "lab:n1 value 93.5");
        let v = alertmanager(&n(AlertStatus::Resolved), &r(), 9_000);
        assert_eq!(v[0]["endsAt"], "1970-01-01T00:00:05Z");
    }
}
