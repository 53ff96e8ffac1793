//! Delivery to each web service, received by a real HTTP server started by the test: each
//! request is checked against the service's documented shape (method, path, content type,
//! authentication header, required fields).

use serde_json::json;
use smon_api::alerts::{AlertStatus, Notification};

use crate::support::{Got, Receiver, Running, notification};

/// Sends one firing notification about two hosts on the channel `cfg` (named `ch`) and
/// returns the one request `rx` got.
async fn one(rx: &Receiver, cfg: serde_json::Value) -> (Got, Notification) {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = Running::start(&dir.path().join("smon.sqlite3"), dir.path(), json!([cfg]));
    let n = notification(
        "n-1",
        AlertStatus::Firing,
        "disk_full",
        &["lab:n1", "lab:n2"],
    );
    run.notifier
        .enqueue(&n, &["ch".to_owned()])
        .await
        .expect("enqueue");
    let got = rx.wait_for(1).await;
    run.wait_stats("ch", "delivered", |s| s.sent == 1).await;
    let s = run.stats("ch");
    assert_eq!((s.queued, s.failed), (0, 0), "{s:?}");
    assert!(s.last_success_ms.is_some());
    run.stop().await;
    assert_eq!(rx.got().len(), 1, "sent once");
    let g = got[0].clone();
    assert_eq!(g.method, "POST");
    assert!(
        g.header("content-type").starts_with("application/json"),
        "content type {:?}",
        g.header("content-type")
    );
    (g, n)
}

#[tokio::test]
async fn webhook_posts_the_notification_json_with_its_headers() {
    let rx = Receiver::start().await;
    let (g, n) = one(
        &rx,
        json!({"name": "ch", "type": "webhook", "url": rx.url("/hook?k=1"), "bearer": "s3cret",
               "headers": {"X-Team": "ops"}}),
    )
    .await;
    assert_eq!(g.path, "/hook?k=1");
    assert_eq!(g.header("authorization"), "Bearer s3cret");
    assert_eq!(g.header("x-team"), "ops");
    assert_eq!(g.header("x-smon-notification-id"), "n-1");
    let back: Notification = serde_json::from_slice(&g.body).expect("a Notification");
    assert_eq!(back, n);
    let v = g.json();
    assert_eq!(v["status"], "firing");
    assert_eq!(v["alerts"][1]["host"]["value"], 91.25);
    assert_eq!(v["link"], "https://smon.example/alerts");
}

#[tokio::test]
async fn slack_gets_text_and_blocks() {
    let rx = Receiver::start().await;
    let (g, _) = one(
        &rx,
        json!({"name": "ch", "type": "slack", "url": rx.url("/services/T0/B0/XXXX")}),
    )
    .await;
    assert_eq!(g.path, "/services/T0/B0/XXXX");
    let v = g.json();
    assert_eq!(v["text"], "[FIRING] disk_full: lab:n1, lab:n2");
    let blocks = v["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[1]["type"], "section");
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    let body = blocks[1]["text"]["text"].as_str().expect("text");
    assert!(
        body.contains("- lab:n2 /var: 91.25 (/var is 91 % full)"),
        "{body}"
    );
    assert!(body.contains("Started 2025-12-04T10:06:27Z"), "{body}");
}

#[tokio::test]
async fn discord_gets_an_embed() {
    let rx = Receiver::start().await;
    let (g, _) = one(
        &rx,
        json!({"name": "ch", "type": "discord", "url": rx.url("/api/webhooks/1/tok")}),
    )
    .await;
    assert_eq!(g.path, "/api/webhooks/1/tok");
    let v = g.json();
    let e = &v["embeds"][0];
    assert_eq!(e["title"], "[FIRING] disk_full: lab:n1, lab:n2");
    assert!(
        e["description"]
            .as_str()
            .is_some_and(|d| d.contains("lab:n1"))
    );
    assert!(e["color"].is_u64());
    assert_eq!(e["url"], "https://smon.example/alerts");
    assert_eq!(v["allowed_mentions"]["parse"], json!([]));
}

#[tokio::test]
async fn ntfy_gets_a_json_publish_with_its_token() {
    let rx = Receiver::start().await;
    let (g, _) = one(
        &rx,
        json!({"name": "ch", "type": "ntfy", "server": rx.url(""), "topic": "lab-alerts",
               "token": "tk_abc", "tags": ["smon"]}),
    )
    .await;
    assert_eq!(g.path, "/");
    assert_eq!(g.header("authorization"), "Bearer tk_abc");
    let v = g.json();
    assert_eq!(v["topic"], "lab-alerts");
    assert_eq!(v["title"], "[FIRING] disk_full: lab:n1, lab:n2");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("lab:n2")));
    assert_eq!(v["priority"], 5);
    assert_eq!(v["tags"], json!(["rotating_light", "smon"]));
    assert_eq!(v["click"], "https://smon.example/alerts");
}

#[tokio::test]
async fn pushbullet_gets_a_note_with_its_access_token() {
    let rx = Receiver::start().await;
    let (g, _) = one(
        &rx,
        json!({"name": "ch", "type": "pushbullet", "api_url": rx.url(""), "token": "o.pb"}),
    )
    .await;
    assert_eq!(g.path, "/v2/pushes");
    assert_eq!(g.header("access-token"), "o.pb");
    let v = g.json();
    assert_eq!(v["type"], "note");
    assert_eq!(v["title"], "[FIRING] disk_full: lab:n1, lab:n2");
    assert!(v["body"].as_str().is_some_and(|b| b.contains("lab:n1")));
}

#[tokio::test]
async fn telegram_gets_send_message_with_the_token_in_the_path() {
    let rx = Receiver::start().await;
    let (g, _) = one(
        &rx,
        json!({"name": "ch", "type": "telegram", "api_url": rx.url(""), "token": "123:ABC-def",
               "chat_id": "-1001"}),
    )
    .await;
    assert_eq!(g.path, "/bot123:ABC-def/sendMessage");
    let v = g.json();
    assert_eq!(v["chat_id"], -1001);
    let text = v["text"].as_str().expect("text");
    assert!(
        text.starts_with("[FIRING] disk_full: lab:n1, lab:n2\n\ndisk_full is firing (critical)."),
        "{text}"
    );
    assert!(v.get("parse_mode").is_none(), "plain text");
}

#[tokio::test]
async fn a_custom_template_shapes_the_title_and_body() {
    let rx = Receiver::start().await;
    let (g, _) = one(
        &rx,
        json!({"name": "ch", "type": "pushbullet", "api_url": rx.url(""), "token": "o.pb",
               "title_template": "{{ severity | upper }} {{ rule }} x{{ hosts | length }}",
               "body_template": "{% for a in alerts %}{{ a.host }}={{ a.value }};{% endfor %} {{ link }}"}),
    )
    .await;
    let v = g.json();
    assert_eq!(v["title"], "CRITICAL disk_full x2");
    assert_eq!(
        v["body"],
        "lab:n1=90.25;lab:n2=91.25; https://smon.example/alerts"
    );
}
