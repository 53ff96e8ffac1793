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
    smtp_server_with(maildir, &[]).await
}

/// aiosmtpd with more arguments (TLS certificates).
async fn smtp_server_with(
    maildir: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> (Child, std::net::SocketAddr) {
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
        .args(["-m", "aiosmtpd", "-n", "-l", &addr.to_string()])
        .args(extra)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Its tracebacks for the handshakes refused on purpose are noise.
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let child = Child(child);
    wait_listening(addr, "aiosmtpd").await;
    (child, addr)
}

#[tokio::test]
async fn email_is_delivered_over_real_smtp() {
    // Plain SMTP on loopback (`tls: none` is refused for any other host).
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

/// A private CA and a certificate for 127.0.0.1, made by the project's own
/// `deploy/tls/make-certs.sh` (openssl).
fn certs(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tls/make-certs.sh");
    for args in [vec!["ca"], vec!["server", "smtp", "127.0.0.1"]] {
        let ok = Command::new("bash")
            .arg(&script)
            .arg("-d")
            .arg(dir)
            .args(&args)
            .stdout(Stdio::null())
            .status()
            .expect("make-certs.sh (needs openssl)");
        assert!(ok.success(), "make-certs.sh {args:?}");
    }
    (
        dir.join("ca.pem"),
        dir.join("smtp.pem"),
        dir.join("smtp.key"),
    )
}

/// Waits for one mail in `maildir` and returns it.
async fn one_mail(maildir: &std::path::Path) -> String {
    let new = maildir.join("new");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(f) = std::fs::read_dir(&new)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
        {
            return std::fs::read_to_string(f.path()).expect("read the mail");
        }
        assert!(Instant::now() < deadline, "no mail in {}", new.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn email_over_starttls_and_tls_verifies_the_server_with_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = certs(&dir.path().join("tls"));
    for (mode, cert_flag, key_flag) in [
        ("starttls", "--tlscert", "--tlskey"),
        ("tls", "--smtpscert", "--smtpskey"),
    ] {
        let maildir = dir.path().join(format!("mail-{mode}"));
        let (_smtp, addr) = smtp_server_with(
            &maildir,
            &[
                cert_flag.as_ref(),
                cert.as_os_str(),
                key_flag.as_ref(),
                key.as_os_str(),
            ],
        )
        .await;
        let channel = |name: &str, ca_file: Option<&std::path::Path>| {
            let mut c = json!({"name": name, "type": "email", "host": "127.0.0.1", "port": addr.port(),
                               "tls": mode, "from": "smon@lab.example", "to": ["ops@lab.example"],
                               "timeout_s": 10});
            if let Some(p) = ca_file {
                c["ca_file"] = json!(p);
            }
            c
        };
        let run = Running::start(
            &dir.path().join(format!("{mode}.sqlite3")),
            dir.path(),
            json!([channel("trusted", Some(&ca)), channel("untrusted", None)]),
        );
        // The private CA is not the system's: without ca_file the certificate is refused.
        let e = run
            .notifier
            .send_test("untrusted")
            .await
            .expect_err("unknown issuer");
        let text = e.to_string();
        assert!(
            text.starts_with("mail: ") && text.contains("UnknownIssuer"),
            "{mode}: {text}"
        );
        let n = notification(
            &format!("n-{mode}"),
            AlertStatus::Firing,
            "disk_full",
            &["lab:n1"],
        );
        run.notifier
            .enqueue(&n, &["trusted".to_owned()])
            .await
            .expect("enqueue");
        run.wait_stats("trusted", "delivered", |s| s.sent == 1)
            .await;
        let msg = one_mail(&maildir).await;
        assert!(
            msg.contains("Subject: [FIRING] disk_full: lab:n1"),
            "{mode}: {msg}"
        );
        run.stop().await;
    }
}

/// aiosmtpd with STARTTLS required and a login (`smon` and `password`), as a submission
/// server runs; a small Python program around its `Controller`, since its command line has no
/// authenticator.
const AUTH_SERVER: &str = r#"
import ssl, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult
host, port, cert, key, maildir, password = sys.argv[1:7]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
def check(server, session, envelope, mechanism, data):
    ok = data.login == b"smon" and data.password == password.encode()
    return AuthResult(success=ok, handled=False)
c = Controller(Mailbox(maildir), hostname=host, port=int(port), tls_context=ctx,
               require_starttls=True, authenticator=check, auth_required=True,
               auth_require_tls=True)
c.start()
print("READY", flush=True)
threading.Event().wait()
"#;

#[tokio::test]
async fn email_logs_in_with_the_password_file_over_starttls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = certs(&dir.path().join("tls"));
    let maildir = dir.path().join("mail");
    let addr = dead_addr();
    let python = bin("/usr/bin/python3", "python3-aiosmtpd");
    let _server = Child(
        Command::new(python)
            .args(["-c", AUTH_SERVER, "127.0.0.1", &addr.port().to_string()])
            .args([&cert, &key, &maildir])
            .arg("pa55-w0rd")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SMTP server"),
    );
    wait_listening(addr, "the SMTP server").await;
    std::fs::write(dir.path().join("smtp.password"), "pa55-w0rd\n").expect("write");
    std::fs::write(dir.path().join("wrong.password"), "guess\n").expect("write");
    let channel = |name: &str, password_file: &str| {
        json!({"name": name, "type": "email", "host": "127.0.0.1", "port": addr.port(),
               "tls": "starttls", "ca_file": ca, "user": "smon", "password_file": password_file,
               "from": "smon@lab.example", "to": ["ops@lab.example"]})
    };
    let run = Running::start(
        &dir.path().join("db"),
        dir.path(),
        json!([
            channel("good", "smtp.password"),
            channel("bad", "wrong.password")
        ]),
    );
    let e = run.notifier.send_test("bad").await.expect_err("refused");
    assert!(
        e.to_string().starts_with("mail: ") && e.to_string().contains("535"),
        "{e}"
    );
    assert!(!e.to_string().contains("guess"), "{e}");
    run.notifier
        .send_test("good")
        .await
        .expect("logged in and sent");
    let msg = one_mail(&maildir).await;
    assert!(
        msg.contains("Subject: [FIRING] smon test notification: smon:test"),
        "{msg}"
    );
    run.stop().await;
}
