//! The command link: the gRPC channel a poller holds to its agent (plaintext, TLS or mutual
//! TLS, with the agent's token), lent to others for unary calls with a deadline.
//!
//! The poller publishes its client in a [`LinkSlot`] once the agent answered `GetInfo`, and
//! marks it down when the connection fails; [`crate::registry::Registry::link`] turns the slot
//! into an [`AgentLink`] or a typed [`LinkError`] (unknown host, not connected yet, down with
//! the reason). A tonic channel multiplexes calls over one HTTP/2 connection, so a borrowed
//! call does not disturb the poller's `Watch` stream and needs no new handshake.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use smon_proto::agent_client::AgentClient;
use smon_proto::control_client::ControlClient;
use smon_proto::{
    GetInfoRequest, HostInfo, LogStream, PowerAction, PowerReply, PowerRequest, ProgramAction,
    ProgramReply, ProgramRequest, SignalName, SignalReply, SignalRequest, TailLogReply,
    TailLogRequest, WakeReply, WakeRequest,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::endpoint::describe;

/// Adds the agent's bearer token to every call.
#[derive(Clone, Debug)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl Auth {
    /// The interceptor for `token` (none: calls go without `authorization`).
    pub fn new(token: Option<&str>) -> Result<Self, BadToken> {
        match token {
            Some(t) => format!("Bearer {t}")
                .parse()
                .map(|v| Self(Some(v)))
                .map_err(|_| BadToken),
            None => Ok(Self(None)),
        }
    }
}

/// The token cannot be sent in a header.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the token is not a valid header value")]
pub struct BadToken;

impl Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The gRPC client of one agent, over the poller's channel (cheap to clone).
pub type Client = AgentClient<InterceptedService<Channel, Auth>>;

/// The client of one agent's `Control` service, with its control token.
pub type Control = ControlClient<InterceptedService<Channel, Auth>>;

/// Where a poller's link stands.
#[derive(Clone, Debug, Default)]
enum LinkState {
    /// Not connected yet.
    #[default]
    Pending,
    /// Connected: the agent answered `GetInfo` over this client (and its channel).
    Up(Box<(Client, Channel)>),
    /// The last connection failed (the reason as in the host row); the poller backs off and
    /// retries.
    Down(String),
}

/// The link of one host, shared by its poller (which sets it) and the registry (which lends
/// it). A restarted poller gets a fresh slot.
#[derive(Clone, Debug, Default)]
pub struct LinkSlot(Arc<Mutex<LinkState>>);

impl LinkSlot {
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        // Only ever holds a plain assignment: a poisoned lock cannot hold a torn value.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The poller connected: lend `client` and its `channel`.
    pub fn up(&self, client: Client, channel: Channel) {
        *self.lock() = LinkState::Up(Box::new((client, channel)));
    }

    /// The poller lost (or could not make) its connection, for `reason`.
    pub fn down(&self, reason: String) {
        *self.lock() = LinkState::Down(reason);
    }

    /// The link to `host`, if its poller is connected.
    pub fn borrow(&self, host: &str) -> Result<AgentLink, LinkError> {
        match &*self.lock() {
            LinkState::Up(up) => Ok(AgentLink {
                host: host.to_owned(),
                client: up.0.clone(),
                channel: up.1.clone(),
            }),
            LinkState::Pending => Err(LinkError::NotConnected {
                host: host.to_owned(),
            }),
            LinkState::Down(reason) => Err(LinkError::Down {
                host: host.to_owned(),
                reason: reason.clone(),
            }),
        }
    }
}

/// Why a call through the link did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No such host in the registry.
    #[error("unknown host '{0}'")]
    UnknownHost(String),
    /// The host's poller has not reached its agent yet.
    #[error("{host}: not connected yet (its agent has not answered since the host was added)")]
    NotConnected {
        /// The host id.
        host: String,
    },
    /// The host is down: its poller's last connection failed.
    #[error("{host} is down: {reason}")]
    Down {
        /// The host id.
        host: String,
        /// The reason, as the host row shows it.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("{host}: the agent did not answer within {} ms: is it overloaded, or stopped?", deadline.as_millis())]
    Timeout {
        /// The host id.
        host: String,
        /// The deadline that passed.
        deadline: Duration,
    },
    /// The agent (or the transport) answered with an error; shown as a sentence
    /// ([`crate::endpoint::AgentError`]), the status itself kept for callers.
    #[error("{host}: {}", describe(status))]
    Call {
        /// The host id.
        host: String,
        /// The gRPC status.
        status: tonic::Status,
    },
}

/// A borrowed link to one agent: unary calls with a deadline over the poller's channel.
#[derive(Clone, Debug)]
pub struct AgentLink {
    host: String,
    client: Client,
    channel: Channel,
}

impl AgentLink {
    /// A link over `client` (on `channel`) to `host` (the poller makes it; others get it
    /// from the registry).
    pub fn new(host: String, client: Client, channel: Channel) -> Self {
        Self {
            host,
            client,
            channel,
        }
    }

    /// The host id.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Makes the unary call `f` with the client; an answer must come within `deadline`. Set
    /// the same deadline on the request (`Request::set_timeout`) so the agent gives up too.
    pub async fn call<T, F, Fut>(&self, deadline: Duration, f: F) -> Result<T, LinkError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.answer(deadline, f(self.client.clone())).await
    }

    /// The answer of the call `fut`, within `deadline`.
    async fn answer<T>(
        &self,
        deadline: Duration,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, LinkError> {
        match tokio::time::timeout(deadline, fut).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) if status.code() == tonic::Code::Cancelled && is_timeout(&status) => {
                Err(LinkError::Timeout {
                    host: self.host.clone(),
                    deadline,
                })
            }
            Ok(Err(status)) => Err(LinkError::Call {
                host: self.host.clone(),
                status,
            }),
            Err(_) => Err(LinkError::Timeout {
                host: self.host.clone(),
                deadline,
            }),
        }
    }

    /// The agent's host facts (`GetInfo`), within `deadline`.
    pub async fn get_info(&self, deadline: Duration) -> Result<HostInfo, LinkError> {
        self.call(deadline, |mut c| async move {
            let mut req = tonic::Request::new(GetInfoRequest {});
            req.set_timeout(deadline);
            c.get_info(req).await
        })
        .await
    }
}

impl AgentLink {
    /// The agent's `Control` service over the same connection, with `control_token`.
    fn control(&self, control_token: &str) -> Result<Control, LinkError> {
        let auth = Auth::new(Some(control_token)).map_err(|e| LinkError::Call {
            host: self.host.clone(),
            status: tonic::Status::invalid_argument(e.to_string()),
        })?;
        Ok(ControlClient::with_interceptor(self.channel.clone(), auth))
    }

    /// Asks the agent to send a Wake-on-LAN packet for `mac` to `to` on its LAN
    /// (`Control.Wake`), within `deadline`.
    pub async fn wake(
        &self,
        control_token: &str,
        mac: smon_runtime::wol::Mac,
        to: std::net::SocketAddrV4,
        deadline: Duration,
    ) -> Result<WakeReply, LinkError> {
        let mut c = self.control(control_token)?;
        let mut req = tonic::Request::new(WakeRequest {
            mac: mac.to_string(),
            broadcast: to.ip().to_string(),
            port: u32::from(to.port()),
        });
        req.set_timeout(deadline);
        self.answer(deadline, c.wake(req)).await
    }

    /// Asks the agent to reboot or shut down its host (`Control.Power`), within `deadline`.
    pub async fn power(
        &self,
        control_token: &str,
        action: PowerAction,
        deadline: Duration,
    ) -> Result<PowerReply, LinkError> {
        let mut c = self.control(control_token)?;
        let mut req = tonic::Request::new(PowerRequest {
            action: action.into(),
        });
        req.set_timeout(deadline);
        self.answer(deadline, c.power(req)).await
    }

    /// Asks the agent to start, stop or restart the supervisord program `name` (`group:name`
    /// or `group:*`; `Control.Program`), within `deadline`: the programs' states afterwards.
    pub async fn program(
        &self,
        control_token: &str,
        action: ProgramAction,
        name: &str,
        deadline: Duration,
    ) -> Result<ProgramReply, LinkError> {
        let mut c = self.control(control_token)?;
        let mut req = tonic::Request::new(ProgramRequest {
            action: action.into(),
            name: name.to_owned(),
        });
        req.set_timeout(deadline);
        self.answer(deadline, c.program(req)).await
    }

    /// The last `bytes` (0: the agent's default) of the program `name`'s `stream` log
    /// (`Control.TailLog`), or with `from` only what was written after that offset, within
    /// `deadline`.
    pub async fn tail_log(
        &self,
        control_token: &str,
        name: &str,
        stream: LogStream,
        bytes: u32,
        from: Option<u64>,
        deadline: Duration,
    ) -> Result<TailLogReply, LinkError> {
        let mut c = self.control(control_token)?;
        let mut req = tonic::Request::new(TailLogRequest {
            name: name.to_owned(),
            stream: stream.into(),
            bytes,
            from,
        });
        req.set_timeout(deadline);
        self.answer(deadline, c.tail_log(req)).await
    }

    /// Asks the agent to send `signal` to the process `pid` of its host (`Control.Signal`),
    /// within `deadline`.
    pub async fn signal(
        &self,
        control_token: &str,
        pid: u32,
        signal: SignalName,
        deadline: Duration,
    ) -> Result<SignalReply, LinkError> {
        let mut c = self.control(control_token)?;
        let mut req = tonic::Request::new(SignalRequest {
            pid,
            signal: signal.into(),
        });
        req.set_timeout(deadline);
        self.answer(deadline, c.signal(req)).await
    }
}

/// Whether `status` is tonic's own "the request's timeout passed".
fn is_timeout(status: &tonic::Status) -> bool {
    status
        .message()
        .to_ascii_lowercase()
        .contains("timeout expired")
}
