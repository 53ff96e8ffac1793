//! The host's supervisord, reached through its XML-RPC interface (`control.supervisor`):
//! over its unix socket or HTTP, with basic auth, one request per connection, every call
//! under a deadline. [`poll`] reads the programs every interval into the sample's
//! [`ProgramsFeed`] (the sampler never waits on supervisord); `Control.Program` and
//! `Control.TailLog` act through [`Supervisor`].

use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use smon_collect::ProgramsFeed;
use smon_proto::Program;
use tokio_util::sync::CancellationToken;

use crate::config::{SupervisorEndpoint, SupervisorSettings};
use crate::xmlrpc::{self, DecodeError, Param, Value};

/// How long one read of the programs may take: a supervisord that hangs is reported as not
/// answering, and the next interval tries again.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a start, stop or restart may take: supervisord answers once the program is up
/// (its `startsecs`) or down (up to its `stopwaitsecs`, 10 s by default).
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest reply read (a log tail is at most 64 KiB; the process list of a few hundred
/// programs well under this).
const MAX_REPLY: usize = 4 << 20;

/// supervisord's fault codes the agent tells apart (supervisor/xmlrpc.py `Faults`).
pub mod faults {
    /// No such program or group.
    pub const BAD_NAME: i64 = 10;
    /// Not running (stop of a stopped program).
    pub const NOT_RUNNING: i64 = 70;
}

/// Why a call to supervisord failed.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// Nothing listens there.
    #[error("cannot connect to supervisord at {url}: {reason}: is supervisord running?")]
    Connect {
        /// `control.supervisor.url`.
        url: String,
        /// The OS's reason.
        reason: String,
    },
    /// HTTP 401.
    #[error(
        "supervisord at {url} refused the credentials (401): check control.supervisor.username/password"
    )]
    Credentials {
        /// `control.supervisor.url`.
        url: String,
    },
    /// No answer in time.
    #[error("supervisord at {url} did not answer within {}", within(.timeout))]
    Timeout {
        /// `control.supervisor.url`.
        url: String,
        /// The deadline.
        timeout: Duration,
    },
    /// An HTTP answer other than 200 or 401, a broken connection, or not XML-RPC.
    #[error("supervisord at {url}: {reason}")]
    Protocol {
        /// `control.supervisor.url`.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// supervisord answered with a fault.
    #[error("supervisord refused: {text} (fault {code})")]
    Fault {
        /// The fault code ([`faults`]).
        code: i64,
        /// Its text, e.g. "BAD_NAME: foo".
        text: String,
    },
}

/// A deadline as the messages say it: "5 s", or "300 ms" under a second.
fn within(d: &Duration) -> String {
    if d.as_millis() >= 1000 && d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

impl From<SupervisorError> for tonic::Status {
    fn from(e: SupervisorError) -> Self {
        match &e {
            SupervisorError::Fault {
                code: faults::BAD_NAME,
                ..
            } => tonic::Status::not_found(e.to_string()),
            SupervisorError::Fault { .. } => tonic::Status::failed_precondition(e.to_string()),
            _ => tonic::Status::unavailable(e.to_string()),
        }
    }
}

/// The end of a log, as `tailProcess*Log` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The bytes, as text (invalid UTF-8 replaced).
    pub text: String,
    /// The log's size.
    pub offset: u64,
    /// More was there than asked for.
    pub overflow: bool,
}

/// A client of one supervisord.
#[derive(Clone)]
pub struct Supervisor {
    url: String,
    endpoint: SupervisorEndpoint,
    /// `Basic <base64>`, when credentials are set.
    authorization: Option<String>,
}

impl Supervisor {
    /// The client for `settings`.
    pub fn new(settings: &SupervisorSettings) -> Self {
        Self {
            url: settings.url.clone(),
            endpoint: settings.endpoint.clone(),
            authorization: settings.credentials.as_ref().map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }),
        }
    }

    /// `control.supervisor.url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn protocol(&self, reason: impl Into<String>) -> SupervisorError {
        SupervisorError::Protocol {
            url: self.url.clone(),
            reason: reason.into(),
        }
    }

    /// Calls `method` with `params`, within `timeout` (connecting included).
    pub async fn call(
        &self,
        method: &str,
        params: &[Param<'_>],
        timeout: Duration,
    ) -> Result<Value, SupervisorError> {
        let body = xmlrpc::encode_call(method, params);
        match tokio::time::timeout(timeout, self.post(body)).await {
            Ok(r) => r,
            Err(_) => Err(SupervisorError::Timeout {
                url: self.url.clone(),
                timeout,
            }),
        }
    }

    async fn post(&self, body: String) -> Result<Value, SupervisorError> {
        let connect = |e: std::io::Error| SupervisorError::Connect {
            url: self.url.clone(),
            reason: e.to_string(),
        };
        let (host, path) = match &self.endpoint {
            SupervisorEndpoint::Unix(_) => ("localhost", "/RPC2"),
            SupervisorEndpoint::Http { authority, path } => (authority.as_str(), path.as_str()),
        };
        let mut req = hyper::Request::post(path)
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "text/xml")
            .header(hyper::header::USER_AGENT, "smon-agent");
        if let Some(a) = &self.authorization {
            req = req.header(hyper::header::AUTHORIZATION, a);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.protocol(format!("cannot build the request: {e}")))?;
        let (status, bytes) = match &self.endpoint {
            SupervisorEndpoint::Unix(p) => {
                let stream = tokio::net::UnixStream::connect(p).await.map_err(connect)?;
                self.exchange(stream, req).await?
            }
            SupervisorEndpoint::Http { authority, .. } => {
                let stream = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(connect)?;
                // Small requests: no waiting for delayed ACKs.
                let _ = stream.set_nodelay(true);
                self.exchange(stream, req).await?
            }
        };
        if status == hyper::StatusCode::UNAUTHORIZED {
            return Err(SupervisorError::Credentials {
                url: self.url.clone(),
            });
        }
        if !status.is_success() {
            return Err(self.protocol(format!("HTTP {status}")));
        }
        let text = String::from_utf8_lossy(&bytes);
        xmlrpc::decode_response(&text).map_err(|e| match e {
            DecodeError::Fault { code, text } => SupervisorError::Fault { code, text },
            DecodeError::Malformed(m) => self.protocol(format!("not an XML-RPC reply: {m}")),
        })
    }

    /// One HTTP/1 exchange on `stream`: the status, and the body when it is a success.
    async fn exchange<S>(
        &self,
        stream: S,
        req: hyper::Request<Full<Bytes>>,
    ) -> Result<(hyper::StatusCode, Bytes), SupervisorError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.protocol(format!("HTTP handshake failed: {e}")))?;
        let work = async move {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("the request failed: {e}"))?;
            let status = resp.status();
            if !status.is_success() {
                return Ok((status, Bytes::new()));
            }
            let body = Limited::new(resp.into_body(), MAX_REPLY)
                .collect()
                .await
                .map_err(|e| format!("cannot read the reply: {e}"))?
                .to_bytes();
            // `sender` is dropped here: the connection then closes.
            Ok::<_, String>((status, body))
        };
        // The connection is driven here, beside the exchange, not on a task of its own: when
        // the caller's deadline drops this future, the socket closes with it (a spawned
        // driver would stay behind as long as a hung supervisord keeps the socket open).
        let (result, _) = tokio::join!(work, conn);
        result.map_err(|reason| self.protocol(reason))
    }

    /// Every program, with its state (`supervisor.getAllProcessInfo`).
    pub async fn programs(&self, timeout: Duration) -> Result<Vec<Program>, SupervisorError> {
        let v = self
            .call("supervisor.getAllProcessInfo", &[], timeout)
            .await?;
        let list = v
            .as_array()
            .ok_or_else(|| self.protocol("getAllProcessInfo did not answer a list"))?;
        Ok(list.iter().map(program).collect())
    }

    /// Starts `name` (`group:name`), or every program of `group` when `name` is `group:*`.
    pub async fn start(&self, name: &Name) -> Result<(), SupervisorError> {
        self.start_or_stop(name, "start").await
    }

    /// Stops `name`, or every program of a group.
    pub async fn stop(&self, name: &Name) -> Result<(), SupervisorError> {
        self.start_or_stop(name, "stop").await
    }

    /// `supervisor.{verb}Process(name, wait)`, or `{verb}ProcessGroup` for a group.
    async fn start_or_stop(&self, name: &Name, verb: &str) -> Result<(), SupervisorError> {
        match name {
            Name::Group(g) => self
                .call(
                    &format!("supervisor.{verb}ProcessGroup"),
                    &[Param::Str(g), Param::Bool(true)],
                    ACTION_TIMEOUT,
                )
                .await
                .and_then(|v| self.group_result(&v)),
            Name::Program(n) => self
                .call(
                    &format!("supervisor.{verb}Process"),
                    &[Param::Str(n), Param::Bool(true)],
                    ACTION_TIMEOUT,
                )
                .await
                .map(drop),
        }
    }

    /// A group call answers one status per program (80 is SUCCESS): the first failure that
    /// is not "already so" becomes the error.
    fn group_result(&self, v: &Value) -> Result<(), SupervisorError> {
        const SUCCESS: i64 = 80;
        const ALREADY_STARTED: i64 = 60;
        for r in v.as_array().unwrap_or_default() {
            let code = r.get("status").and_then(Value::as_int).unwrap_or(SUCCESS);
            if !matches!(code, SUCCESS | ALREADY_STARTED | faults::NOT_RUNNING) {
                let who = format!(
                    "{}:{}",
                    r.get("group").and_then(Value::as_str).unwrap_or_default(),
                    r.get("name").and_then(Value::as_str).unwrap_or_default()
                );
                let said = r
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Err(SupervisorError::Fault {
                    code,
                    text: format!("{who}: {said}"),
                });
            }
        }
        Ok(())
    }

    /// The last `bytes` of a program's stdout (or stderr) log.
    pub async fn tail(
        &self,
        name: &str,
        stderr: bool,
        bytes: u32,
    ) -> Result<Tail, SupervisorError> {
        self.tail_at(name, stderr, 0, bytes).await
    }

    /// What was written to a program's stdout (or stderr) log after `from` (a previous
    /// [`Tail::offset`]): at most the last `bytes` of it, with `overflow` when more was
    /// written. A log now shorter than `from` (rotated or cleared) is read from its start.
    pub async fn tail_from(
        &self,
        name: &str,
        stderr: bool,
        bytes: u32,
        from: u64,
    ) -> Result<Tail, SupervisorError> {
        let t = self.tail_at(name, stderr, from, bytes).await?;
        if t.offset >= from {
            return Ok(written_after(from, bytes, t));
        }
        // supervisord answers nothing for an offset past the end: read the new log's end.
        let t = self.tail_at(name, stderr, 0, bytes).await?;
        Ok(written_after(0, bytes, t))
    }

    /// `tailProcess*Log(name, offset, bytes)`: supervisord answers the last `bytes` of the
    /// log (whatever `offset` is, unless it is past the end: then nothing) and its size.
    async fn tail_at(
        &self,
        name: &str,
        stderr: bool,
        offset: u64,
        bytes: u32,
    ) -> Result<Tail, SupervisorError> {
        let method = if stderr {
            "supervisor.tailProcessStderrLog"
        } else {
            "supervisor.tailProcessStdoutLog"
        };
        let length = i32::try_from(bytes).unwrap_or(i32::MAX);
        let offset = i32::try_from(offset).unwrap_or(i32::MAX);
        let v = self
            .call(
                method,
                &[Param::Str(name), Param::Int(offset), Param::Int(length)],
                POLL_TIMEOUT,
            )
            .await?;
        match v.as_array() {
            Some([Value::Str(text), offset, overflow]) => Ok(Tail {
                text: text.clone(),
                offset: offset.as_int().unwrap_or(0).max(0) as u64,
                overflow: overflow.as_bool().unwrap_or(false),
            }),
            _ => Err(self.protocol(format!("{method} did not answer [text, offset, overflow]"))),
        }
    }
}

/// What of `t`, supervisord's answer to `tailProcess*Log(name, from, bytes)` (the last `bytes`
/// of the log at most, and the log's size), was written after `from`: its last
/// `size - from` bytes, or all of it with `overflow` when more than `bytes` were written.
pub fn written_after(from: u64, bytes: u32, t: Tail) -> Tail {
    let size = t.offset;
    let new = size.saturating_sub(from);
    if new > u64::from(bytes) {
        return Tail {
            overflow: true,
            ..t
        };
    }
    let keep = usize::try_from(new).unwrap_or(usize::MAX).min(t.text.len());
    let mut cut = t.text.len() - keep;
    // Invalid UTF-8 replaced by supervisord may shift lengths: never cut inside a character.
    while !t.text.is_char_boundary(cut) {
        cut += 1;
    }
    Tail {
        text: t.text[cut..].to_owned(),
        offset: size,
        overflow: false,
    }
}

/// What `Control.Program` acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// `group:*`: the group's name.
    Group(String),
    /// `group:name` or `name`, as given.
    Program(String),
}

impl Name {
    /// Checks a caller's name: `group:name`, `group:*` or `name`; no whitespace or control
    /// characters, at most 200 characters.
    pub fn parse(s: &str) -> Option<Name> {
        let fine = |p: &str| {
            !p.is_empty()
                && !p.contains(['*', ':'])
                && !p.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if s.len() > 200 {
            return None;
        }
        match s.split_once(':') {
            Some((g, "*")) if fine(g) => Some(Name::Group(g.to_owned())),
            Some((g, n)) if fine(g) && fine(n) => Some(Name::Program(s.to_owned())),
            None if fine(s) => Some(Name::Program(s.to_owned())),
            _ => None,
        }
    }

    /// Whether `p` is one of the programs this names.
    pub fn covers(&self, p: &Program) -> bool {
        match self {
            Name::Group(g) => &p.group == g,
            Name::Program(n) => match n.split_once(':') {
                Some((g, n)) => p.group == g && p.name == n,
                None => p.group == *n && p.name == *n,
            },
        }
    }
}

/// supervisord's state code for RUNNING.
const RUNNING: i64 = 20;

/// One entry of `getAllProcessInfo`.
fn program(v: &Value) -> Program {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let i = |k: &str| v.get(k).and_then(Value::as_int).unwrap_or(0);
    let running = i("state") == RUNNING;
    let start = i("start").max(0) as u64;
    let now = i("now").max(0) as u64;
    Program {
        group: s("group"),
        name: s("name"),
        state: s("statename"),
        pid: u32::try_from(i("pid")).unwrap_or(0),
        uptime_s: if running {
            now.saturating_sub(start)
        } else {
            0
        },
        exit_status: i32::try_from(i("exitstatus")).unwrap_or(-1),
        spawnerr: s("spawnerr"),
        description: s("description"),
        start_unix_ms: start * 1000,
        // Summed by the collector from the process list at each sample.
        cpu_percent: None,
        memory_bytes: None,
    }
}

/// Reads the programs into `feed` every `every` until `stop`: the latest list, or the reason
/// it could not be read (logged once per change, not every interval).
pub async fn poll(
    client: Supervisor,
    feed: ProgramsFeed,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing: Option<String> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let read = tokio::select! {
            _ = stop.cancelled() => return,
            r = client.programs(POLL_TIMEOUT) => r,
        };
        match read {
            Ok(programs) => {
                if failing.take().is_some() {
                    tracing::info!(url = %client.url(), "supervisord answers again.");
                }
                feed.update(programs);
            }
            Err(e) => {
                let text = e.to_string();
                if failing.as_deref() != Some(text.as_str()) {
                    tracing::warn!(url = %client.url(), error = %text, "Cannot read supervisord's programs; retrying every interval.");
                }
                feed.fail(text.clone());
                failing = Some(text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(text: &str, size: u64) -> Tail {
        Tail {
            text: text.into(),
            offset: size,
            overflow: false,
        }
    }

    #[test]
    fn written_after_keeps_only_the_new_bytes() {
        // 10 bytes logged, 4 of them new, supervisord answered the last 8.
        let t = written_after(6, 8, tail("cdefghij", 10));
        assert_eq!((t.text.as_str(), t.offset, t.overflow), ("ghij", 10, false));
        // Nothing new.
        let t = written_after(10, 8, tail("", 10));
        assert_eq!((t.text.as_str(), t.offset, t.overflow), ("", 10, false));
        // More new than asked for: the last `bytes`, marked.
        let t = written_after(0, 8, tail("cdefghij", 10));
        assert_eq!((t.text.as_str(), t.overflow), ("cdefghij", true));
        // Never inside a character: "é" is 2 bytes, 1 new byte keeps none of it.
        let t = written_after(2, 8, tail("aé", 3));
        assert_eq!(t.text, "");
        let t = written_after(1, 8, tail("aé", 3));
        assert_eq!(t.text, "é");
    }

    #[test]
    fn names_are_a_program_a_group_or_refused() {
        assert_eq!(Name::parse("web:*"), Some(Name::Group("web".into())));
        assert_eq!(
            Name::parse("web:api"),
            Some(Name::Program("web:api".into()))
        );
        assert_eq!(Name::parse("solo"), Some(Name::Program("solo".into())));
        for bad in [
            "", ":", "a:", ":b", "*", "a:b:c", "a b", "a\n", "*:*", "a:b*",
        ] {
            assert_eq!(Name::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Name::parse(&"a".repeat(201)), None);
        let p = Program {
            group: "web".into(),
            name: "api".into(),
            ..Program::default()
        };
        assert!(Name::Group("web".into()).covers(&p));
        assert!(Name::Program("web:api".into()).covers(&p));
        assert!(!Name::Program("api".into()).covers(&p));
        assert!(!Name::Group("api".into()).covers(&p));
    }

    #[test]
    fn process_info_becomes_a_program_with_its_uptime() {
        let info = |state: i64, name: &str| {
            Value::Struct(vec![
                ("group".into(), Value::Str("g".into())),
                ("name".into(), Value::Str("n".into())),
                ("state".into(), Value::Int(state)),
                ("statename".into(), Value::Str(name.into())),
                ("pid".into(), Value::Int(if state == 20 { 77 } else { 0 })),
                ("start".into(), Value::Int(1_000)),
                ("now".into(), Value::Int(1_090)),
                ("exitstatus".into(), Value::Int(2)),
                ("spawnerr".into(), Value::Str(String::new())),
                (
                    "description".into(),
                    Value::Str("pid 77, uptime 0:01:30".into()),
                ),
            ])
        };
        let p = program(&info(20, "RUNNING"));
        assert_eq!(
            (p.state.as_str(), p.pid, p.uptime_s, p.exit_status),
            ("RUNNING", 77, 90, 2)
        );
        assert_eq!(p.start_unix_ms, 1_000_000);
        let p = program(&info(100, "EXITED"));
        assert_eq!((p.pid, p.uptime_s), (0, 0));
    }

    #[test]
    fn faults_map_to_status_codes() {
        let st = |e: SupervisorError| tonic::Status::from(e).code();
        assert_eq!(
            st(SupervisorError::Fault {
                code: faults::BAD_NAME,
                text: "BAD_NAME: x".into()
            }),
            tonic::Code::NotFound
        );
        assert_eq!(
            st(SupervisorError::Fault {
                code: 60,
                text: "ALREADY_STARTED".into()
            }),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            st(SupervisorError::Credentials { url: "u".into() }),
            tonic::Code::Unavailable
        );
    }

    fn http_client(addr: std::net::SocketAddr) -> Supervisor {
        Supervisor::new(&SupervisorSettings {
            url: format!("http://{addr}"),
            endpoint: SupervisorEndpoint::Http {
                authority: addr.to_string(),
                path: "/RPC2".into(),
            },
            credentials: Some(("smon".into(), "pw".into())),
            password_file: None,
            interval: Duration::from_secs(1),
        })
    }

    /// A one-connection HTTP server answering `reply`; returns the request it read.
    async fn serve_once(reply: String) -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers and the (small) body.
            while !String::from_utf8_lossy(&got).contains("</methodCall>") {
                let n = s.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(reply.as_bytes()).await.expect("write");
            String::from_utf8_lossy(&got).into_owned()
        });
        (addr, task)
    }

    #[tokio::test]
    async fn over_http_with_basic_auth() {
        let body = "<?xml version='1.0'?><methodResponse><params><param><value><array><data>\
            <value><struct><member><name>group</name><value><string>g</string></value></member>\
            <member><name>name</name><value><string>n</string></value></member>\
            <member><name>statename</name><value><string>STOPPED</string></value></member>\
            </struct></value></data></array></value></param></params></methodResponse>";
        let (addr, task) = serve_once(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
        let programs = http_client(addr)
            .programs(Duration::from_secs(5))
            .await
            .expect("read");
        assert_eq!(programs.len(), 1);
        assert_eq!(
            (programs[0].group.as_str(), programs[0].state.as_str()),
            ("g", "STOPPED")
        );
        let req = task.await.expect("server");
        assert!(req.starts_with("POST /RPC2 HTTP/1.1\r\n"), "{req}");
        // base64("smon:pw")
        assert!(req.contains("authorization: Basic c21vbjpwdw=="), "{req}");
        assert!(req.contains("<methodName>supervisor.getAllProcessInfo</methodName>"));

        let (addr, _task) =
            serve_once("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".into()).await;
        let e = http_client(addr)
            .programs(Duration::from_secs(5))
            .await
            .expect_err("401");
        assert_eq!(
            e.to_string(),
            format!(
                "supervisord at http://{addr} refused the credentials (401): check control.supervisor.username/password"
            )
        );
    }

    #[tokio::test]
    async fn a_supervisord_that_never_answers_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        // Accepts, then holds the connection without a word.
        let held = tokio::spawn(async move {
            let (s, _) = l.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let e = http_client(addr)
            .programs(Duration::from_millis(300))
            .await
            .expect_err("timeout");
        assert!(matches!(e, SupervisorError::Timeout { .. }), "{e}");
        assert!(
            e.to_string().ends_with("did not answer within 300 ms"),
            "{e}"
        );
        held.abort();
    }

    #[tokio::test]
    async fn nothing_listening_is_the_is_it_running_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let sock = dir.path().join("none.sock");
        let client = Supervisor::new(&SupervisorSettings {
            url: format!("unix://{}", sock.display()),
            endpoint: SupervisorEndpoint::Unix(sock),
            credentials: None,
            password_file: None,
            interval: Duration::from_secs(1),
        });
        let e = client
            .programs(Duration::from_secs(2))
            .await
            .expect_err("none");
        let text = e.to_string();
        assert!(
            text.starts_with("cannot connect to supervisord at unix://")
                && text.ends_with("is supervisord running?"),
            "{text}"
        );
    }
}
