//! The `smon.v1.Control` service: acting on the host or its LAN, a separate privilege from
//! reading it. `Wake` relays a Wake-on-LAN magic packet from this host; `Power` starts the
//! configured reboot or shutdown command; `Program` and `TailLog` act on supervisord's
//! programs (`control.supervisor`, through [`crate::supervisor`]); `Signal` signals a process
//! (`control.signals`, checked in [`crate::signals`]).
//!
//! Served beside `Agent` on the same listener (the same TLS, mutual TLS, `allow_from` and
//! limits), only when `control.token` / `control.token_file` is set. Every call needs
//! `authorization: Bearer <control token>`: the read token is told apart (PERMISSION_DENIED,
//! so a misconfigured aggregator learns which token it sent), anything else is
//! UNAUTHENTICATED. Every call is logged under the target `smon::control` with its peer,
//! its arguments and its outcome; tokens never are.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use smon_proto::control_server::Control;
use smon_proto::{
    LogStream, PowerAction, PowerReply, PowerRequest, ProgramAction, ProgramReply, ProgramRequest,
    SignalName, SignalReply, SignalRequest, TailLogReply, TailLogRequest, WakeReply, WakeRequest,
};
use smon_runtime::config::printable;
use smon_runtime::net::CidrList;
use smon_runtime::wol::{self, BadMac, Mac};
use tokio::io::AsyncReadExt as _;
use tonic::{Code, Request, Response, Status};

use crate::config::{Auth, ControlSettings, PowerCommands, SignalSettings, SupervisorSettings};
use crate::service::{RefusalLog, bearer_is};
use crate::supervisor::{Name, POLL_TIMEOUT, Supervisor, faults};

/// The log target of every control call.
const TARGET: &str = "smon::control";

/// The shortest gap between two started power actions: a double click, or two operators at
/// once, must not reboot twice.
pub const POWER_GAP: Duration = Duration::from_secs(10);

/// How long `Power` watches the command it started before answering: a command that fails at
/// once (sudo asking for a password, polkit refusing) is reported to the caller instead of
/// "ok". One still running then is left to run (the host is going down).
const STARTED_CHECK: Duration = Duration::from_millis(500);

/// How much of a power command's standard error is kept (for the reply and the log).
const STDERR_KEPT: usize = 2048;

/// `TailLog`'s default and largest lengths.
const TAIL_DEFAULT: u32 = 16 * 1024;
const TAIL_MAX: u32 = 64 * 1024;

/// The service. Cheap to share: the rate limit is the only state.
pub struct ControlService {
    /// `Bearer <control token>`.
    control: Vec<u8>,
    /// `Bearer <read token>`, to tell the read token apart; `None` with `monitor.auth: none`.
    read: Option<Vec<u8>>,
    allow: CidrList,
    wake: bool,
    power: Option<PowerCommands>,
    /// `control.supervisor`, for `Program` and `TailLog`.
    supervisor: Option<Supervisor>,
    /// `control.signals`, `None` when off.
    signals: Option<SignalSettings>,
    /// When the last power action was started.
    last_power: Mutex<Option<Instant>>,
    /// Unauthenticated calls (anyone who can connect) are logged at most once per second.
    refusals: RefusalLog,
}

impl ControlService {
    /// The service for `control`, telling `read` (the Agent service's auth) apart, refusing
    /// callers outside `allow` (empty: anyone) as the Agent service does; `supervisor` is the
    /// supervisord `Program` and `TailLog` act on.
    pub fn new(
        control: &ControlSettings,
        supervisor: Option<&SupervisorSettings>,
        read: &Auth,
        allow: CidrList,
    ) -> Self {
        Self {
            control: format!("Bearer {}", control.token).into_bytes(),
            read: match read {
                Auth::Token(t) => Some(format!("Bearer {t}").into_bytes()),
                Auth::None => None,
            },
            allow,
            wake: control.wake,
            power: control.power.clone(),
            supervisor: supervisor.map(Supervisor::new),
            signals: control.signals.clone(),
            last_power: Mutex::new(None),
            refusals: RefusalLog::new(),
        }
    }

    /// The control token check (and `monitor.allow_from`), before anything else is looked at.
    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        crate::service::check_allow(&self.allow, req.remote_addr())?;
        let mut values = req.metadata().get_all("authorization").iter();
        let (Some(v), None) = (values.next(), values.next()) else {
            return Err(match req.metadata().get("authorization") {
                None => Status::unauthenticated(
                    "missing bearer token: control calls need authorization: Bearer <control token>",
                ),
                Some(_) => Status::unauthenticated("more than one authorization entry"),
            });
        };
        if bearer_is(v, &self.control) {
            Ok(())
        } else if self.read.as_deref().is_some_and(|r| bearer_is(v, r)) {
            Err(Status::permission_denied(
                "this is the read token; control needs the control token (the agent's control.token_file)",
            ))
        } else {
            Err(Status::unauthenticated("wrong bearer token"))
        }
    }

    /// Logs the outcome of a call (every one, bar unauthenticated calls past one a second).
    fn log(&self, call: &Call, result: Result<&str, &Status>) {
        match result {
            Ok(what) => tracing::info!(
                target: TARGET,
                action = call.action,
                peer = %call.peer,
                args = %call.args,
                outcome = "ok",
                "Control call served: {what}."
            ),
            Err(s) if s.code() == Code::Unauthenticated => {
                if let Some(suppressed) = self.refusals.due() {
                    tracing::warn!(
                        target: TARGET,
                        action = call.action,
                        peer = %call.peer,
                        args = %call.args,
                        outcome = "refused",
                        code = ?s.code(),
                        suppressed,
                        "Control call refused: {}.",
                        s.message()
                    );
                }
            }
            Err(s) if matches!(s.code(), Code::Internal | Code::Unavailable) => tracing::warn!(
                target: TARGET,
                action = call.action,
                peer = %call.peer,
                args = %call.args,
                outcome = "failed",
                code = ?s.code(),
                "Control call failed: {}.",
                s.message()
            ),
            Err(s) => tracing::info!(
                target: TARGET,
                action = call.action,
                peer = %call.peer,
                args = %call.args,
                outcome = "refused",
                code = ?s.code(),
                "Control call refused: {}.",
                s.message()
            ),
        }
    }

    async fn wake(&self, r: &WakeRequest) -> Result<WakeReply, Status> {
        if !self.wake {
            return Err(Status::failed_precondition(
                "Wake-on-LAN is off on this agent: set control.wake to true",
            ));
        }
        let (mac, to) = wake_target(r)?;
        let sent = tokio::task::spawn_blocking(move || wol::send(mac, to))
            .await
            .map_err(|e| Status::internal(format!("the sending task failed: {e}")))?
            .map_err(|e| {
                Status::unavailable(format!("cannot send the magic packet to {to}: {e}"))
            })?;
        Ok(WakeReply {
            sent_to: to.to_string(),
            bytes: sent as u32,
        })
    }

    async fn power(&self, r: &PowerRequest) -> Result<PowerReply, Status> {
        let Some(commands) = &self.power else {
            return Err(Status::failed_precondition(
                "power actions are off on this agent: set control.power.enabled",
            ));
        };
        let (name, argv) = match PowerAction::try_from(r.action) {
            Ok(PowerAction::Reboot) => ("reboot", &commands.reboot),
            Ok(PowerAction::Shutdown) => ("shutdown", &commands.shutdown),
            Ok(PowerAction::Unspecified) | Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "action: {} is not a power action (POWER_ACTION_REBOOT or POWER_ACTION_SHUTDOWN)",
                    r.action
                )));
            }
        };
        let Some(argv) = argv else {
            return Err(Status::failed_precondition(format!(
                "{name} is off on this agent (control.power.{name} is null): set its command"
            )));
        };
        let previous = self.reserve_power_slot()?;
        match start(name, argv).await {
            Ok(reply) => Ok(reply),
            Err(e) => {
                // Nothing started: a corrected retry need not wait.
                *self.last_power.lock().unwrap_or_else(|p| p.into_inner()) = previous;
                Err(e)
            }
        }
    }

    fn supervisor(&self) -> Result<&Supervisor, Status> {
        self.supervisor.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "supervisord is not configured on this agent: set control.supervisor.url (and its username and password_file)",
            )
        })
    }

    async fn program(&self, r: &ProgramRequest) -> Result<ProgramReply, Status> {
        let sup = self.supervisor()?;
        let name = Name::parse(&r.name).ok_or_else(|| {
            Status::invalid_argument(format!(
                "name: '{}' is not a program: give group:name, group:* or name",
                shown(&r.name)
            ))
        })?;
        match ProgramAction::try_from(r.action) {
            Ok(ProgramAction::Start) => sup.start(&name).await?,
            Ok(ProgramAction::Stop) => sup.stop(&name).await?,
            Ok(ProgramAction::Restart) => {
                match sup.stop(&name).await {
                    Ok(()) => {}
                    // A stopped program is simply started.
                    Err(crate::supervisor::SupervisorError::Fault {
                        code: faults::NOT_RUNNING,
                        ..
                    }) => {}
                    Err(e) => return Err(e.into()),
                }
                sup.start(&name).await?
            }
            Ok(ProgramAction::Unspecified) | Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "action: {} is not a program action (PROGRAM_ACTION_START, _STOP or _RESTART)",
                    r.action
                )));
            }
        }
        let programs = sup
            .programs(POLL_TIMEOUT)
            .await?
            .into_iter()
            .filter(|p| name.covers(p))
            .collect();
        Ok(ProgramReply { programs })
    }

    async fn tail_log(&self, r: &TailLogRequest) -> Result<TailLogReply, Status> {
        let sup = self.supervisor()?;
        let Some(Name::Program(name)) = Name::parse(&r.name) else {
            return Err(Status::invalid_argument(format!(
                "name: '{}' is not a program: give group:name or name",
                shown(&r.name)
            )));
        };
        let stderr = match LogStream::try_from(r.stream) {
            Ok(LogStream::Stdout) => false,
            Ok(LogStream::Stderr) => true,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "stream: {} is not LOG_STREAM_STDOUT or LOG_STREAM_STDERR",
                    r.stream
                )));
            }
        };
        let bytes = match r.bytes {
            0 => TAIL_DEFAULT,
            b if b <= TAIL_MAX => b,
            b => {
                return Err(Status::invalid_argument(format!(
                    "bytes: {b} is more than {TAIL_MAX} (0 means {TAIL_DEFAULT})"
                )));
            }
        };
        let tail = match r.from {
            None => sup.tail(&name, stderr, bytes).await?,
            Some(from) => sup.tail_from(&name, stderr, bytes, from).await?,
        };
        Ok(TailLogReply {
            text: tail.text,
            offset: tail.offset,
            overflow: tail.overflow,
        })
    }

    async fn signal(&self, r: &SignalRequest) -> Result<SignalReply, Status> {
        let Some(signals) = &self.signals else {
            return Err(Status::failed_precondition(
                "signals are off on this agent: set control.signals.enabled to true (and, to limit them, control.signals.users)",
            ));
        };
        let sig = match SignalName::try_from(r.signal) {
            Ok(SignalName::Term) => crate::signals::Sig::Term,
            Ok(SignalName::Int) => crate::signals::Sig::Int,
            Ok(SignalName::Kill) => crate::signals::Sig::Kill,
            Ok(SignalName::Hup) => crate::signals::Sig::Hup,
            Ok(SignalName::Unspecified) | Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "signal: {} is not SIGNAL_NAME_TERM, _INT, _KILL or _HUP",
                    r.signal
                )));
            }
        };
        let users = signals.users.clone();
        let pid = r.pid;
        let target =
            tokio::task::spawn_blocking(move || crate::signals::send(pid, sig, users.as_deref()))
                .await
                .map_err(|e| Status::internal(format!("the signalling task failed: {e}")))??;
        Ok(SignalReply {
            pid,
            user: target.user,
            name: target.name,
        })
    }

    /// Takes the one power action allowed per [`POWER_GAP`]; returns the previous start time
    /// (to give the slot back when nothing was started).
    fn reserve_power_slot(&self) -> Result<Option<Instant>, Status> {
        let mut last = self.last_power.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some(at) = *last {
            let since = now.duration_since(at);
            if since < POWER_GAP {
                return Err(Status::resource_exhausted(format!(
                    "a power action was started {} s ago; at most one per {} s, so a double click cannot act twice: try again in {} s",
                    since.as_secs(),
                    POWER_GAP.as_secs(),
                    (POWER_GAP - since).as_secs().max(1)
                )));
            }
        }
        Ok(last.replace(now))
    }
}

/// One call, as logged.
struct Call {
    action: &'static str,
    peer: String,
    args: String,
}

impl Call {
    fn new<T>(action: &'static str, req: &Request<T>, args: String) -> Self {
        Self {
            action,
            peer: req
                .remote_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "unknown".into()),
            args,
        }
    }
}

/// A caller's text as it may appear in a log line or a status: no control characters, at
/// most 64 characters.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(64).collect();
    let mut out = printable(&cut).into_owned();
    if cut.len() < s.len() {
        out.push('…');
    }
    out
}

/// The checked arguments of `Wake`: the MAC and where to send its packet.
fn wake_target(r: &WakeRequest) -> Result<(Mac, SocketAddrV4), Status> {
    let mac: Mac = r
        .mac
        .parse()
        .map_err(|_| Status::invalid_argument(format!("mac: {}", BadMac(shown(&r.mac)))))?;
    let ip = if r.broadcast.trim().is_empty() {
        wol::DEFAULT_BROADCAST
    } else {
        r.broadcast.trim().parse::<Ipv4Addr>().map_err(|_| {
            Status::invalid_argument(format!(
                "broadcast: '{}' is not an IPv4 address (e.g. 192.168.1.255); leave it empty for 255.255.255.255",
                shown(&r.broadcast)
            ))
        })?
    };
    let port = match r.port {
        0 => wol::DEFAULT_PORT,
        p => u16::try_from(p).map_err(|_| {
            Status::invalid_argument(format!(
                "port: {p} is not a UDP port (1-65535; 0 means {})",
                wol::DEFAULT_PORT
            ))
        })?,
    };
    Ok((mac, SocketAddrV4::new(ip, port)))
}

/// Starts `argv` (the `name` action's command) and answers once it runs: an error when it
/// cannot be started or fails within [`STARTED_CHECK`]. It is reaped (and its end logged)
/// in the background, so no zombie is left.
async fn start(name: &'static str, argv: &[String]) -> Result<PowerReply, Status> {
    let command = argv.join(" ");
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Status::internal("empty power command"))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // The command needs no token of ours.
        .env_remove("SMON_TOKEN")
        .spawn()
        .map_err(|e| {
            Status::failed_precondition(format!(
                "cannot run '{program}': {e}; check control.power.{name}"
            ))
        })?;
    let pid = child.id().unwrap_or_default();
    let stderr = child.stderr.take();
    let errors = tokio::spawn(async move {
        let mut kept = Vec::new();
        if let Some(mut err) = stderr {
            let mut buf = [0u8; 1024];
            // Read to the end (a full pipe would block the command), keep the start.
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        let text = String::from_utf8_lossy(&kept).trim().to_owned();
        printable(&text).into_owned()
    });
    match tokio::time::timeout(STARTED_CHECK, child.wait()).await {
        Ok(Ok(status)) if !status.success() => {
            let text = tokio::time::timeout(Duration::from_millis(200), errors)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let said = if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            };
            Err(Status::failed_precondition(format!(
                "'{command}' failed at once ({status}){said}"
            )))
        }
        Ok(Ok(_)) => {
            tokio::spawn(async move {
                if let Ok(text) = errors.await
                    && !text.is_empty()
                {
                    tracing::info!(target: TARGET, pid, stderr = %text, "The power command wrote to its standard error.");
                }
            });
            Ok(PowerReply { command, pid })
        }
        Ok(Err(e)) => Err(Status::internal(format!(
            "'{command}' started (pid {pid}) but cannot be watched: {e}"
        ))),
        Err(_) => {
            // Still running: reaped here, whenever it ends (if the host is still up).
            tokio::spawn(async move {
                let status = child.wait().await;
                let text = errors.await.unwrap_or_default();
                match status {
                    Ok(s) if s.success() => {
                        tracing::info!(target: TARGET, pid, stderr = %text, "The power command ended.")
                    }
                    Ok(s) => {
                        tracing::warn!(target: TARGET, pid, status = %s, stderr = %text, "The power command failed.")
                    }
                    Err(e) => {
                        tracing::warn!(target: TARGET, pid, error = %e, "Cannot wait for the power command.")
                    }
                }
            });
            Ok(PowerReply { command, pid })
        }
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn wake(&self, req: Request<WakeRequest>) -> Result<Response<WakeReply>, Status> {
        let r = req.get_ref();
        let port = match r.port {
            0 => wol::DEFAULT_PORT.to_string(),
            p => p.to_string(),
        };
        let broadcast = if r.broadcast.trim().is_empty() {
            wol::DEFAULT_BROADCAST.to_string()
        } else {
            shown(&r.broadcast)
        };
        let call = Call::new(
            "wake",
            &req,
            format!("mac={} to={broadcast}:{port}", shown(&r.mac)),
        );
        let result = match self.authorize(&req) {
            Ok(()) => self.wake(req.get_ref()).await,
            Err(e) => Err(e),
        };
        answer(self, &call, result, |reply| {
            format!("sent {} bytes to {}", reply.bytes, reply.sent_to)
        })
    }

    async fn power(&self, req: Request<PowerRequest>) -> Result<Response<PowerReply>, Status> {
        let action = match PowerAction::try_from(req.get_ref().action) {
            Ok(PowerAction::Reboot) => "reboot".to_owned(),
            Ok(PowerAction::Shutdown) => "shutdown".to_owned(),
            Ok(PowerAction::Unspecified) => "unspecified".to_owned(),
            Err(_) => format!("unknown({})", req.get_ref().action),
        };
        let call = Call::new("power", &req, format!("action={action}"));
        let result = match self.authorize(&req) {
            Ok(()) => self.power(req.get_ref()).await,
            Err(e) => Err(e),
        };
        answer(self, &call, result, |reply| {
            format!("started '{}' (pid {})", reply.command, reply.pid)
        })
    }

    async fn program(
        &self,
        req: Request<ProgramRequest>,
    ) -> Result<Response<ProgramReply>, Status> {
        let r = req.get_ref();
        let action = match ProgramAction::try_from(r.action) {
            Ok(a) => a
                .as_str_name()
                .trim_start_matches("PROGRAM_ACTION_")
                .to_lowercase(),
            Err(_) => format!("unknown({})", r.action),
        };
        let call = Call::new(
            "program",
            &req,
            format!("action={action} name={}", shown(&r.name)),
        );
        let result = match self.authorize(&req) {
            Ok(()) => self.program(req.get_ref()).await,
            Err(e) => Err(e),
        };
        answer(self, &call, result, |reply| {
            let states: Vec<String> = reply
                .programs
                .iter()
                .map(|p| format!("{}:{} {}", p.group, p.name, p.state))
                .collect();
            format!("now {}", states.join(", "))
        })
    }

    async fn tail_log(
        &self,
        req: Request<TailLogRequest>,
    ) -> Result<Response<TailLogReply>, Status> {
        let r = req.get_ref();
        let stream = match LogStream::try_from(r.stream) {
            Ok(LogStream::Stderr) => "stderr".to_owned(),
            Ok(LogStream::Stdout) => "stdout".to_owned(),
            Err(_) => format!("unknown({})", r.stream),
        };
        let call = Call::new(
            "tail_log",
            &req,
            match r.from {
                None => format!("name={} stream={stream} bytes={}", shown(&r.name), r.bytes),
                Some(from) => format!(
                    "name={} stream={stream} bytes={} from={from}",
                    shown(&r.name),
                    r.bytes
                ),
            },
        );
        let result = match self.authorize(&req) {
            Ok(()) => self.tail_log(req.get_ref()).await,
            Err(e) => Err(e),
        };
        answer(self, &call, result, |reply| {
            format!("{} bytes, log size {}", reply.text.len(), reply.offset)
        })
    }

    async fn signal(&self, req: Request<SignalRequest>) -> Result<Response<SignalReply>, Status> {
        let r = req.get_ref();
        let signal = match SignalName::try_from(r.signal) {
            Ok(s) => s
                .as_str_name()
                .trim_start_matches("SIGNAL_NAME_")
                .to_owned(),
            Err(_) => format!("unknown({})", r.signal),
        };
        let call = Call::new("signal", &req, format!("pid={} signal={signal}", r.pid));
        let result = match self.authorize(&req) {
            Ok(()) => self.signal(req.get_ref()).await,
            Err(e) => Err(e),
        };
        answer(self, &call, result, |reply| {
            format!(
                "sent SIG{signal} to {} ({}, user {})",
                reply.pid,
                shown(&reply.name),
                shown(&reply.user)
            )
        })
    }
}

/// Logs `call` with `result` (described by `what` when ok) and returns it as the answer.
fn answer<T>(
    s: &ControlService,
    call: &Call,
    result: Result<T, Status>,
    what: impl FnOnce(&T) -> String,
) -> Result<Response<T>, Status> {
    match &result {
        Ok(reply) => s.log(call, Ok(&what(reply))),
        Err(e) => s.log(call, Err(e)),
    }
    result.map(Response::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wake(mac: &str, broadcast: &str, port: u32) -> Result<(Mac, SocketAddrV4), Status> {
        wake_target(&WakeRequest {
            mac: mac.into(),
            broadcast: broadcast.into(),
            port,
        })
    }

    #[test]
    fn wake_arguments_default_and_name_the_bad_field() {
        let (mac, to) = wake("AA-bb-cc-dd-ee-01", "", 0).expect("valid");
        assert_eq!(mac.to_string(), "aa:bb:cc:dd:ee:01");
        assert_eq!(to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 9));
        let (_, to) = wake("aa:bb:cc:dd:ee:01", "192.168.1.255", 7).expect("valid");
        assert_eq!(to.to_string(), "192.168.1.255:7");

        let e = wake("aa:bb:cc:dd:ee", "", 0).expect_err("bad mac");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message()
                .starts_with("mac: 'aa:bb:cc:dd:ee' is not a MAC address"),
            "{e:?}"
        );
        let e = wake("aa:bb:cc:dd:ee:01", "fe80::1", 0).expect_err("IPv6");
        assert!(e.message().starts_with("broadcast: 'fe80::1'"), "{e:?}");
        let e = wake("aa:bb:cc:dd:ee:01", "", 65_536).expect_err("port");
        assert!(e.message().starts_with("port: 65536"), "{e:?}");
        // A caller's text is shown escaped and cut.
        let e = wake(&format!("\u{1b}[2J{}", "a".repeat(100)), "", 0).expect_err("bad mac");
        assert!(!e.message().contains('\u{1b}'), "{e:?}");
        assert!(e.message().len() < 200, "{e:?}");
    }

    fn service(power: Option<PowerCommands>) -> ControlService {
        ControlService::new(
            &ControlSettings {
                token: "control-token-0123456789".into(),
                token_file: None,
                wake: true,
                power,
                signals: None,
            },
            None,
            &Auth::Token("read-token-0123456789".into()),
            CidrList::default(),
        )
    }

    fn with_token<T>(msg: T, token: Option<&str>) -> Request<T> {
        let mut req = Request::new(msg);
        if let Some(t) = token {
            req.metadata_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("ascii"),
            );
        }
        req
    }

    #[test]
    fn the_control_token_passes_the_read_token_is_told_apart() {
        let s = service(None);
        let ok = with_token((), Some("control-token-0123456789"));
        assert!(s.authorize(&ok).is_ok());
        let e = s
            .authorize(&with_token((), Some("read-token-0123456789")))
            .expect_err("read");
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(e.message().contains("this is the read token"), "{e:?}");
        for t in [None, Some("control-token-012345678"), Some("")] {
            let e = s.authorize(&with_token((), t)).expect_err("refused");
            assert_eq!(e.code(), Code::Unauthenticated, "{t:?}");
        }
    }

    #[tokio::test]
    async fn power_is_refused_when_off_unspecified_or_too_soon() {
        let e = service(None)
            .power(&PowerRequest { action: 1 })
            .await
            .expect_err("off");
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(e.message().contains("control.power.enabled"), "{e:?}");

        let s = service(Some(PowerCommands {
            reboot: Some(vec!["true".into()]),
            shutdown: None,
        }));
        for action in [0, 7] {
            let e = s.power(&PowerRequest { action }).await.expect_err("bad");
            assert_eq!(e.code(), Code::InvalidArgument, "{action}");
        }
        let e = s
            .power(&PowerRequest { action: 2 })
            .await
            .expect_err("null");
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(e.message().contains("control.power.shutdown"), "{e:?}");

        let r = s.power(&PowerRequest { action: 1 }).await.expect("started");
        assert_eq!(r.command, "true");
        assert!(r.pid > 0);
        let e = s
            .power(&PowerRequest { action: 1 })
            .await
            .expect_err("soon");
        assert_eq!(e.code(), Code::ResourceExhausted);
    }

    #[tokio::test]
    async fn a_command_that_fails_at_once_or_cannot_start_is_reported_and_frees_the_slot() {
        let s = service(Some(PowerCommands {
            reboot: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo 'sudo: a password is required' >&2; exit 1".into(),
            ]),
            shutdown: Some(vec!["smon-no-such-program".into()]),
        }));
        let e = s
            .power(&PowerRequest { action: 1 })
            .await
            .expect_err("fails");
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(
            e.message().contains("failed at once") && e.message().contains("password is required"),
            "{e:?}"
        );
        let e = s
            .power(&PowerRequest { action: 2 })
            .await
            .expect_err("missing");
        assert_eq!(e.code(), Code::FailedPrecondition, "not rate-limited");
        assert!(
            e.message()
                .starts_with("cannot run 'smon-no-such-program': "),
            "{e:?}"
        );
    }
}
