//! The email channel against a real SMTP server: Debian's `python3-aiosmtpd`, started by the
//! test with its Mailbox handler (a maildir), so the test reads the message as delivered.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use smon_api::alerts::AlertStatus;
use tokio::time::Instant;

use crate::support::{Child, Running, WAIT, bin, dead_addr, notification, wait_listening};

/// aiosmtpd on a free port writing to `maildir`.
async fn smtp_server(maildir: &std::path::Path) -> (Child, std::net::SocketAddr) {
    // Debian's python (the one on PATH may be another without Debian's modules).
    let python = bin("/usr/bin/python3", "python3-aiosmtpd");
    let ok = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .status()
        .expect("python3");
    assert!(
        ok.success(),
        "aiosmtpd is not installed: apt-get install -y python3-aiosmtpd (scripts/test.sh does)"
    );
    let addr = dead_addr();
    let child = Command::new(python)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &addr.to_string(),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let child = Child(child);
    wait_listening(addr, "aiosmtpd").await;
    (child, addr)
}

#[tokio::test]
async fn email_is_delivered_over_real_smtp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("mail");
    let (_smtp, addr) = smtp_server(&maildir).await;
    let run = Running::start(
        &dir.path().join("db"),
        dir.path(),
        json!([{"name": "mail", "type": "email", "host": "127.0.0.1", "port": addr.port(),
                "tls": "none", "from": "smon <smon@lab.example>",
                "to": ["ops@lab.example", "Second <oncall@lab.example>"]}]),
    );
    let n = notification("n-mail", AlertStatus::Firing, "disk_full", &["lab:n1"]);
    run.notifier
        .enqueue(&n, &["mail".to_owned()])
        .await
        .expect("enqueue");
    run.wait_stats("mail", "delivered", |s| s.sent == 1).await;
    let new = maildir.join("new");
    let deadline = Instant::now() + WAIT;
    let file = loop {
        if let Some(f) = std::fs::read_dir(&new)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
        {
            break f.path();
        }
        assert!(Instant::now() < deadline, "no mail in {}", new.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let msg = std::fs::read_to_string(&file).expect("read the mail");
    let headers = msg
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    assert!(
        headers.contains("Subject: [FIRING] disk_full: lab:n1"),
        "{msg}"
    );
    assert!(headers.contains("From: smon <smon@lab.example>"), "{msg}");
    assert!(headers.contains("ops@lab.example"), "{msg}");
    assert!(headers.contains("Second <oncall@lab.example>"), "{msg}");
    assert!(headers.contains("Message-ID: <n-mail.mail@smon>"), "{msg}");
    assert!(
        headers.contains("Content-Type: text/plain; charset=utf-8"),
        "{msg}"
    );
    let body = msg.replace("\r\n", "\n");
    assert!(
        body.contains("- lab:n1 /var: 90.25 (/var is 90 % full)"),
        "{msg}"
    );
    assert!(body.contains("https://smon.example/alerts"), "{msg}");
    assert_eq!(
        std::fs::read_dir(&new).expect("maildir").count(),
        1,
        "one mail"
    );
    run.stop().await;
}

#[tokio::test]
async fn starttls_is_required_not_skipped_when_the_server_lacks_it() {
    // aiosmtpd without a certificate offers no STARTTLS: the channel must refuse to send in
    // clear rather than fall back.
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("mail");
    let (_smtp, addr) = smtp_server(&maildir).await;
    let run = Running::start(
        &dir.path().join("db"),
        dir.path(),
        json!([{"name": "mail", "type": "email", "host": "127.0.0.1", "port": addr.port(),
                "tls": "starttls", "from": "smon@lab.example", "to": ["ops@lab.example"],
                "timeout_s": 5}]),
    );
    let e = run
        .notifier
        .send_test("mail")
        .await
        .expect_err("no STARTTLS");
    assert!(
        e.to_string().starts_with("mail: ") && e.to_string().contains("STARTTLS is not supported"),
        "{e}"
    );
    assert!(
        std::fs::read_dir(maildir.join("new")).map_or(0, |d| d.count()) == 0,
        "nothing sent in clear"
    );
    run.stop().await;
}
