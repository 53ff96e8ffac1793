//! One agent, straight over gRPC (`smonctl top --agent`): the same contract and bearer token
//! as the aggregator's pollers (`smon-proto` with `grpc`), plaintext or TLS with a private CA
//! and, for mutual TLS, a client certificate. Every failure comes back as an [`AgentError`]
//! whose message is a sentence saying what happened and what to check, never a transport
//! chain.

use std::time::Duration;

use smon_proto::agent_client::AgentClient;
use smon_proto::{GetSnapshotRequest, Parts, Snapshot};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// TLS towards the agent (its `monitor.tls`).
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// The CA that signed the agent's certificate (PEM).
    pub ca: Vec<u8>,
    /// The name in the agent's certificate, when not the address's host.
    pub domain: Option<String>,
    /// Client certificate and key (PEM), for an agent that asks for one (mutual TLS).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// How to reach one agent.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` of its gRPC listener.
    pub address: String,
    /// Its bearer token (none for an agent with `"auth": "none"`).
    pub token: Option<String>,
    /// TLS, when the agent serves it.
    pub tls: Option<Tls>,
}

/// Why the agent gave no sample, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The settings cannot make a connection.
    #[error("{0}")]
    Settings(String),
    /// Nothing listens there.
    #[error(
        "cannot connect to {0}: connection refused. Is the agent running, and is this its gRPC port (monitor.grpc_listen)?"
    )]
    Refused(String),
    /// No answer in time.
    #[error(
        "no answer from {0} in time. Is the host up, and does a firewall let its port through?"
    )]
    Timeout(String),
    /// The name does not resolve.
    #[error("cannot connect to {0}: DNS does not know this name. Check its spelling.")]
    UnknownName(String),
    /// The agent refused the token.
    #[error(
        "the agent at {address} refused the token ({reason}): check --token-file against the agent's token (monitor.token or /var/lib/smon/agent.token)"
    )]
    Token {
        /// Where.
        address: String,
        /// The agent's words.
        reason: String,
    },
    /// The agent refused this client's address.
    #[error("the agent at {address} refused this machine: {reason}")]
    NotAllowed {
        /// Where.
        address: String,
        /// The agent's words.
        reason: String,
    },
    /// An HTTP server answered.
    #[error(
        "{0} answers HTTP, not gRPC: is it the dashboard's port instead of the agent's (use --server URL for a dashboard)?"
    )]
    NotGrpc(String),
    /// The TLS handshake failed.
    #[error(
        "TLS with {address} failed ({reason}): check --tls-ca (and --tls-domain) against the agent's certificate"
    )]
    Tls {
        /// Where.
        address: String,
        /// The handshake's words.
        reason: String,
    },
    /// The connection broke in the handshake: TLS on one side only, or refused.
    #[error(
        "{0} closed the connection in the handshake: does the agent serve TLS (then pass --tls-ca), or does its monitor.allow_from leave this machine out?"
    )]
    Handshake(String),
    /// Anything else, the agent's or the transport's words once.
    #[error("{address}: {reason}")]
    Other {
        /// Where.
        address: String,
        /// What.
        reason: String,
    },
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A connection to one agent; it connects on the first call and again after a failure.
#[derive(Clone)]
pub struct Agent {
    client: AgentClient<InterceptedService<Channel, Bearer>>,
    target: Target,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("address", &self.target.address)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// A client of `target` (nothing is sent yet).
    pub fn new(target: Target) -> Result<Self, AgentError> {
        let settings =
            |what: &str, e: &dyn std::fmt::Display| AgentError::Settings(format!("{what}: {e}"));
        let scheme = if target.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut ep = Endpoint::from_shared(format!("{scheme}://{}", target.address))
            .map_err(|e| {
                settings(
                    &format!("'{}' is not an address (host:port)", target.address),
                    &e,
                )
            })?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(tls) = &target.tls {
            let mut cfg = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca));
            if let Some((cert, key)) = &tls.identity {
                cfg = cfg.identity(Identity::from_pem(cert, key));
            }
            if let Some(d) = &tls.domain {
                cfg = cfg.domain_name(d.clone());
            }
            ep = ep
                .tls_config(cfg)
                .map_err(|e| settings("the TLS settings cannot be used", &e))?;
        }
        let token = match &target.token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| {
                        AgentError::Settings(
                            "the token has characters not allowed in a header (a token is printable ASCII)"
                                .to_owned(),
                        )
                    })?,
            ),
            None => None,
        };
        let client = AgentClient::with_interceptor(ep.connect_lazy(), Bearer(token));
        Ok(Self { client, target })
    }

    /// The agent's address.
    pub fn address(&self) -> &str {
        &self.target.address
    }

    /// The latest sample with everything in it (processes, per-core use, GPU processes).
    pub async fn snapshot(&mut self) -> Result<Snapshot, AgentError> {
        let req = GetSnapshotRequest {
            parts: Some(Parts::DETAIL),
        };
        match self.client.get_snapshot(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(explain(&s, &self.target)),
        }
    }
}

/// The status's message and its source chain, each phrase once.
fn words(s: &tonic::Status) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !s.message().is_empty() {
        parts.push(s.message().to_owned());
    }
    let mut cur = std::error::Error::source(s);
    while let Some(e) = cur {
        let t = e.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = e.source();
    }
    if parts.is_empty() {
        format!("{:?}", s.code())
    } else {
        parts.join(": ")
    }
}

/// A failed call in words ([`AgentError`]).
pub fn explain(s: &tonic::Status, target: &Target) -> AgentError {
    let address = target.address.clone();
    let text = words(s);
    let t = text.to_ascii_lowercase();
    let not_grpc = t.contains("grpc-status header missing")
        || t.contains("invalid compression flag")
        || s.metadata()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| !ct.starts_with("application/grpc"));
    if not_grpc {
        return AgentError::NotGrpc(address);
    }
    match s.code() {
        tonic::Code::Unauthenticated => {
            return AgentError::Token {
                address,
                reason: s.message().to_owned(),
            };
        }
        tonic::Code::PermissionDenied => {
            return AgentError::NotAllowed {
                address,
                reason: s.message().to_owned(),
            };
        }
        _ => {}
    }
    if t.contains("connection refused") {
        AgentError::Refused(address)
    } else if t.contains("dns error") || t.contains("failed to lookup address") {
        AgentError::UnknownName(address)
    } else if t.contains("timed out")
        || t.contains("timeout expired")
        || s.code() == tonic::Code::DeadlineExceeded
    {
        AgentError::Timeout(address)
    } else if t.contains("certificate") || t.contains("unknownissuer") || t.contains("tls") {
        AgentError::Tls {
            address,
            reason: text,
        }
    } else if target.tls.is_none()
        && (t.contains("frame with invalid size")
            || t.contains("connection reset")
            || t.contains("broken pipe")
            || t.contains("h2 protocol error"))
    {
        AgentError::Handshake(address)
    } else {
        AgentError::Other {
            address,
            reason: text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            address: "10.0.0.1:50051".into(),
            token: None,
            tls: None,
        }
    }

    #[test]
    fn refusals_are_sentences_with_what_to_check() {
        let e = explain(&tonic::Status::unauthenticated("bad token"), &target());
        assert_eq!(
            e.to_string(),
            "the agent at 10.0.0.1:50051 refused the token (bad token): check --token-file against the agent's token (monitor.token or /var/lib/smon/agent.token)"
        );
        let e = explain(
            &tonic::Status::unknown("grpc-status header missing, mapped from HTTP status code 403"),
            &target(),
        );
        assert!(matches!(e, AgentError::NotGrpc(_)), "{e}");
        let e = explain(
            &tonic::Status::unavailable("tcp connect error: Connection refused (os error 111)"),
            &target(),
        );
        assert!(
            e.to_string()
                .contains("connection refused. Is the agent running"),
            "{e}"
        );
        let e = explain(&tonic::Status::cancelled("Timeout expired"), &target());
        assert!(matches!(e, AgentError::Timeout(_)), "{e}");
        let e = explain(&tonic::Status::not_found("no such thing"), &target());
        assert_eq!(e.to_string(), "10.0.0.1:50051: no such thing");
    }

    #[test]
    fn bad_settings_are_refused_before_any_call() {
        let mut t = target();
        t.address = "not an address".into();
        assert!(matches!(Agent::new(t), Err(AgentError::Settings(_))));
        let mut t = target();
        t.token = Some("tok\nen".into());
        let e = Agent::new(t).expect_err("a newline in a header");
        assert!(e.to_string().contains("not allowed in a header"), "{e}");
    }
}
