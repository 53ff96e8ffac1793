//! One delivery attempt of one notification on one channel: HTTP for the web services, SMTP
//! for email, a child process for `command`. No retry here (the outbox retries); every
//! attempt has the channel's deadline. Errors are sentences without secrets: reqwest's URL
//! (a Slack or Telegram URL holds the token) is stripped from them.

use std::process::Stdio;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use smon_api::alerts::Notification;
use tokio::io::AsyncWriteExt;

use crate::config::{Channel, Kind, TlsMode};
use crate::payload;
use crate::template::TemplateError;

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request did not complete (connection refused, TLS, timeout).
    #[error("request failed: {0}")]
    Http(String),
    /// The service answered with an error status.
    #[error("the service answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of its answer (printable).
        body: String,
        /// How long it asked to wait (`Retry-After` in seconds, with 429 or 503).
        retry_after: Option<Duration>,
    },
    /// Every Alertmanager refused or was unreachable.
    #[error("no Alertmanager accepted the alerts: {0}")]
    Alertmanager(String),
    /// The mail could not be made or sent.
    #[error("mail: {0}")]
    Mail(String),
    /// The command could not run, timed out or failed.
    #[error("command: {0}")]
    Command(String),
    /// The attempt ran past the channel's `timeout_s`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A template failed.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The notification could not be written as JSON (it cannot happen with smon's types).
    #[error("cannot write the notification as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn http_error(e: reqwest::Error) -> SendError {
    // Without the URL: it may hold a token. With the source chain: "connection refused".
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    SendError::Http(msg)
}

/// Sends notifications; holds the HTTP client (one connection pool for every channel).
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
}

impl SendError {
    /// The wait the service asked for (`Retry-After`), when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A header value that reqwest and hyper keep out of their debug output.
fn sensitive(v: &str) -> Result<HeaderValue, SendError> {
    let mut h = HeaderValue::from_str(v)
        .map_err(|_| SendError::Http("a secret is not a valid header value".into()))?;
    h.set_sensitive(true);
    Ok(h)
}

impl Sender {
    /// A sender with its own HTTP client.
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("smon/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // A redirect could carry the webhook's token to another host: not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http })
    }

    /// One attempt to deliver `n` on `ch`, within the channel's timeout.
    pub async fn send(&self, ch: &Channel, n: &Notification) -> Result<(), SendError> {
        let timeout = ch.delivery.timeout;
        match tokio::time::timeout(timeout, self.attempt(ch, n)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(timeout)),
        }
    }

    async fn attempt(&self, ch: &Channel, n: &Notification) -> Result<(), SendError> {
        let r = ch.templates.render(n)?;
        match &ch.kind {
            Kind::Webhook {
                url,
                headers,
                bearer,
            } => {
                let mut req = self
                    .http
                    .post(url.expose())
                    .header("X-Smon-Notification-Id", &n.id)
                    .json(n);
                for (name, value) in headers {
                    req = req.header(name, sensitive(value.expose())?);
                }
                if let Some(b) = bearer {
                    req = req.header(AUTHORIZATION, sensitive(&format!("Bearer {}", b.expose()))?);
                }
                self.post(req).await
            }
            Kind::Slack { url } => {
                self.post(self.http.post(url.expose()).json(&payload::slack(n, &r)))
                    .await
            }
            Kind::Discord { url } => {
                self.post(self.http.post(url.expose()).json(&payload::discord(n, &r)))
                    .await
            }
            Kind::Ntfy {
                server,
                topic,
                token,
                tags,
            } => {
                let mut req = self
                    .http
                    .post(server.clone())
                    .json(&payload::ntfy(n, &r, topic, tags));
                if let Some(t) = token {
                    req = req.header(AUTHORIZATION, sensitive(&format!("Bearer {}", t.expose()))?);
                }
                self.post(req).await
            }
            Kind::Pushbullet {
                api_url,
                token,
                device_iden,
            } => {
                let url = format!("{}/v2/pushes", api_url.as_str().trim_end_matches('/'));
                let req = self
                    .http
                    .post(url)
                    .header("Access-Token", sensitive(token.expose())?)
                    .json(&payload::pushbullet(&r, device_iden.as_deref()));
                self.post(req).await
            }
            Kind::Telegram {
                api_url,
                token,
                chat_id,
            } => {
                let url = format!(
                    "{}/bot{}/sendMessage",
                    api_url.as_str().trim_end_matches('/'),
                    token.expose()
                );
                self.post(self.http.post(url).json(&payload::telegram(&r, chat_id)))
                    .await
            }
            Kind::Alertmanager { urls, resend } => {
                let ends = crate::notifier::now_ms()
                    + u64::try_from(resend.as_millis() * 4).unwrap_or(u64::MAX);
                let body = payload::alertmanager(n, &r, ends);
                self.post_alertmanager(&ch.name, urls, &body).await
            }
            Kind::Email {
                host,
                port,
                tls,
                user,
                password,
                from,
                to,
                ca_pem,
            } => {
                let mut m = Message::builder()
                    .from(from.clone())
                    // The same Message-ID on every retry: mail systems can drop a repeat.
                    .message_id(Some(format!("<{}.{}@smon>", n.id, ch.name)))
                    .subject(r.title)
                    .header(ContentType::TEXT_PLAIN);
                for t in to {
                    m = m.to(t.clone());
                }
                let msg = m.body(r.body).map_err(|e| SendError::Mail(e.to_string()))?;
                let mail_err = |e: lettre::transport::smtp::Error| SendError::Mail(chain(&e));
                let params = || {
                    let mut b = TlsParameters::builder(host.clone());
                    if let Some(pem) = ca_pem {
                        b = b.add_root_certificate(Certificate::from_pem(pem).map_err(mail_err)?);
                    }
                    b.build_rustls().map_err(mail_err)
                };
                let builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(match tls {
                        // Required: no falling back to clear text when STARTTLS is missing.
                        TlsMode::Starttls => Tls::Required(params()?),
                        TlsMode::Tls => Tls::Wrapper(params()?),
                        TlsMode::None => Tls::None,
                    });
                let mut builder = builder.port(*port).timeout(Some(ch.delivery.timeout));
                if let (Some(u), Some(p)) = (user, password) {
                    builder =
                        builder.credentials(Credentials::new(u.clone(), p.expose().to_owned()));
                }
                builder
                    .build()
                    .send(msg)
                    .await
                    .map(|_| ())
                    .map_err(|e| SendError::Mail(chain(&e)))
            }
            Kind::Command { program, args } => run_command(program, args, n).await,
        }
    }

    /// Posts `alerts` to every Alertmanager of `urls` (as Prometheus does); one that accepts
    /// is enough, they share their notification state by gossip.
    pub(crate) async fn post_alertmanager(
        &self,
        channel: &str,
        urls: &[reqwest::Url],
        alerts: &serde_json::Value,
    ) -> Result<(), SendError> {
        let mut errors = Vec::new();
        for u in urls {
            let url = format!("{}/api/v2/alerts", u.as_str().trim_end_matches('/'));
            if let Err(e) = self.post(self.http.post(url).json(alerts)).await {
                errors.push(format!("{}: {e}", crate::config::masked(u)));
            }
        }
        if errors.len() == urls.len() {
            return Err(SendError::Alertmanager(errors.join("; ")));
        }
        for e in errors {
            tracing::warn!(channel = %channel, error = %e, "An Alertmanager refused the alerts; another took them.");
        }
        Ok(())
    }

    async fn post(&self, req: reqwest::RequestBuilder) -> Result<(), SendError> {
        let resp = req.send().await.map_err(http_error)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.text().await.unwrap_or_default();
        Err(SendError::Status {
            status: status.as_u16(),
            retry_after,
            body: smon_runtime::config::printable(&crate::payload::cut(body.trim(), 200))
                .into_owned(),
        })
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Runs `program args` with the notification JSON on stdin; exit status 0 is success, else
/// the status and the end of its stderr make the error. The child is killed when the attempt
/// times out (kill on drop).
async fn run_command(program: &str, args: &[String], n: &Notification) -> Result<(), SendError> {
    let json = serde_json::to_vec(n)?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SendError::Command(format!("cannot start {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading is judged by its status, not by the broken pipe.
        let _ = stdin.write_all(&json).await;
        drop(stdin);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| SendError::Command(format!("{program}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(200)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(SendError::Command(format!(
        "{program} exited with {}{}",
        out.status,
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {}", smon_runtime::config::printable(&tail))
        }
    )))
}
