//! The gRPC endpoint of an agent: plaintext or TLS (with a client certificate for mutual TLS),
//! and, in one place, every error towards an agent turned into a sentence an operator can act
//! on ([`AgentError`]).

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::config::Target;

/// Why no endpoint could be made for a target.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The address does not make a URI.
    #[error("bad address: {0}")]
    Address(#[source] tonic::transport::Error),
    /// tonic refused the TLS settings (certificate or key unusable).
    #[error("TLS settings refused: {0}")]
    Tls(#[source] tonic::transport::Error),
}

/// The endpoint for `target`, with `connect_timeout`.
pub fn endpoint(target: &Target, connect_timeout: Duration) -> Result<Endpoint, EndpointError> {
    let scheme = if target.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{}", target.address))
        .map_err(EndpointError::Address)?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    if let Some(tls) = &target.tls {
        let mut cfg = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca));
        if let Some((cert, key)) = &tls.identity {
            cfg = cfg.identity(Identity::from_pem(cert, key));
        }
        if let Some(d) = &tls.domain {
            cfg = cfg.domain_name(d.clone());
        }
        ep = ep.tls_config(cfg).map_err(EndpointError::Tls)?;
    }
    Ok(ep)
}

/// How the aggregator reaches an agent, as far as explaining an error needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Not known to the caller (a borrowed call: the connection was made by the poller).
    Unknown,
    /// Plaintext HTTP/2.
    Plain,
    /// TLS without a client certificate.
    Tls,
    /// Mutual TLS: with a client certificate.
    MutualTls,
}

impl Security {
    /// How `target` is reached.
    pub fn of(target: &Target) -> Self {
        match &target.tls {
            None => Self::Plain,
            Some(t) if t.identity.is_some() => Self::MutualTls,
            Some(_) => Self::Tls,
        }
    }
}

/// Where an error happened: the same transport words mean different things before the agent
/// first answered (a refused handshake: TLS settings) and after (the agent went away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Connecting, or the first call (`GetInfo`) of a new connection.
    Connect,
    /// The agent has answered on this connection: a `Watch` stream, a borrowed call.
    Connected,
}

/// What went wrong between the aggregator and an agent, as the host row shows it: a sentence
/// saying what happened and what to check. Made in one place ([`classify`],
/// [`classify_status`]) from the transport's error; the transport's own words (a tonic, h2 or
/// rustls chain) go to the debug log, not to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The host's settings cannot make a connection (bad address, unusable TLS files, a token
    /// that is not a header value).
    #[error("this host's settings cannot be used: {0}")]
    Settings(String),
    /// Nothing listens on the port.
    #[error(
        "cannot connect to {address}: connection refused. Is the agent running, and is this its gRPC port (monitor.grpc_listen)?"
    )]
    Refused {
        /// The address tried.
        address: String,
    },
    /// The connect did not finish in time.
    #[error(
        "cannot connect to {address}: no answer in time. Is the host up, and does a firewall let its port through?"
    )]
    ConnectTimeout {
        /// The address tried.
        address: String,
    },
    /// The name in the address does not resolve.
    #[error(
        "cannot connect to {address}: DNS does not know this name. Check its spelling, and this machine's resolver."
    )]
    UnknownName {
        /// The address tried.
        address: String,
    },
    /// No route to the host or its network.
    #[error(
        "cannot connect to {address}: no route to the host. Check the address, and the network between here and there."
    )]
    NoRoute {
        /// The address tried.
        address: String,
    },
    /// The agent went away: its connection broke, or it ended the stream.
    #[error(
        "the agent closed the connection (restarting?); smon reconnects as soon as its port answers"
    )]
    Closed,
    /// An HTTP server answered, not a gRPC one.
    #[error(
        "this address answers HTTP, not gRPC: is it the dashboard's port instead of the agent's?"
    )]
    NotGrpc,
    /// The TLS settings of the host and of the agent do not match (the sentence says which
    /// setting to look at).
    #[error("{0}")]
    Tls(&'static str),
    /// The agent refused the bearer token (its own reason in brackets).
    #[error(
        "the agent refused the token ({0}): check the token (or token_file) of this host against the agent's"
    )]
    Token(String),
    /// The agent's `monitor.allow_from` does not list this aggregator (the agent's words).
    #[error("the agent refused this aggregator: {0}; add this aggregator's address there")]
    NotAllowed(String),
    /// A call got no answer in time.
    #[error("the agent did not answer {what} within {} s: is it overloaded, or stopped?", .after.as_secs())]
    NoAnswer {
        /// The call.
        what: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The stream stayed silent.
    #[error("no sample for {} s: the agent or the network between here and there has stalled", .0.as_secs())]
    Silent(Duration),
    /// The agent answered with an error of its own (its code and words).
    #[error("the agent answered with an error: {0}")]
    Answer(String),
    /// Anything else: the transport's words, each phrase once.
    #[error("{0}")]
    Other(String),
}

impl AgentError {
    /// Whether the agent is gone (nothing answers on its port, or its connection broke): then
    /// its port is probed until it answers again, for a quick reconnect. For the other kinds
    /// the port answers and only a change on one side helps, so the poller backs off.
    pub fn agent_gone(&self) -> bool {
        matches!(
            self,
            Self::Refused { .. }
                | Self::ConnectTimeout { .. }
                | Self::NoRoute { .. }
                | Self::Closed
                | Self::Silent(_)
        )
    }
}

/// A failed connect (TCP, TLS, the HTTP/2 handshake) or transport error towards `address`,
/// in words ([`AgentError`]).
pub fn classify(
    e: &(dyn std::error::Error + 'static),
    stage: Stage,
    security: Security,
    address: &str,
) -> AgentError {
    let text = dedup(&chain(e));
    transport(&text, io_kinds(Some(e)), stage, security, address)
}

/// A failed call or stream (a gRPC status from the agent or from the transport), in words
/// ([`AgentError`]).
pub fn classify_status(
    s: &tonic::Status,
    stage: Stage,
    security: Security,
    address: &str,
) -> AgentError {
    let msg = s.message();
    let lower = msg.to_ascii_lowercase();
    // tonic maps a plain HTTP answer (no grpc-status) to a code from the HTTP status: a 401 or
    // 403 from a web server is not the agent refusing the token or the address.
    let http = lower.contains("grpc-status header missing")
        || lower.contains("invalid compression flag")
        || s.metadata()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| !ct.starts_with("application/grpc"));
    if http {
        return AgentError::NotGrpc;
    }
    match s.code() {
        tonic::Code::Unauthenticated => return AgentError::Token(msg.to_owned()),
        tonic::Code::PermissionDenied if lower.contains("allow_from") => {
            return AgentError::NotAllowed(msg.to_owned());
        }
        tonic::Code::Unknown
        | tonic::Code::Unavailable
        | tonic::Code::Cancelled
        | tonic::Code::Internal => {}
        code => return AgentError::Answer(dedup(&format!("{}: {msg}", code_name(code)))),
    }
    let source = std::error::Error::source(s);
    let text = match source.map(chain) {
        Some(src) if !msg.is_empty() => dedup(&format!("{msg}: {src}")),
        Some(src) => dedup(&src),
        None if msg.is_empty() => code_name(s.code()),
        None => dedup(msg),
    };
    transport(&text, io_kinds(source), stage, security, address)
}

/// A gRPC code's name, as gRPC tools print it ("NotFound").
fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}

/// The kinds of every I/O error in the chain of `e`.
fn io_kinds(e: Option<&(dyn std::error::Error + 'static)>) -> Vec<std::io::ErrorKind> {
    let mut out = Vec::new();
    let mut cur = e;
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            out.push(io.kind());
        }
        cur = c.source();
    }
    out
}

/// The rules, on the transport's (deduplicated) words and the I/O error kinds in its chain.
fn transport(
    text: &str,
    kinds: Vec<std::io::ErrorKind>,
    stage: Stage,
    security: Security,
    address: &str,
) -> AgentError {
    use std::io::ErrorKind as K;
    let t = text.to_ascii_lowercase();
    let address = address.to_owned();
    let has = |k: K| kinds.contains(&k);
    if has(K::ConnectionRefused) || t.contains("connection refused") {
        return AgentError::Refused { address };
    }
    if t.contains("dns error") || t.contains("failed to lookup address") {
        return AgentError::UnknownName { address };
    }
    if has(K::HostUnreachable)
        || has(K::NetworkUnreachable)
        || t.contains("no route to host")
        || t.contains("network is unreachable")
    {
        return AgentError::NoRoute { address };
    }
    if stage == Stage::Connect && (has(K::TimedOut) || t.contains("timed out")) {
        return AgentError::ConnectTimeout { address };
    }
    if t.contains("grpc-status header missing") || t.contains("invalid compression flag") {
        return AgentError::NotGrpc;
    }
    let closed = closed(&t)
        || has(K::BrokenPipe)
        || has(K::ConnectionReset)
        || has(K::ConnectionAborted)
        || has(K::UnexpectedEof);
    if stage == Stage::Connected && closed {
        return AgentError::Closed;
    }
    if stage == Stage::Connect
        && let Some(h) = tls_hint(&t, security)
    {
        return AgentError::Tls(h);
    }
    if closed || t.contains("operation was canceled") {
        return AgentError::Closed;
    }
    match stage {
        Stage::Connect => AgentError::Other(format!("cannot connect to {address}: {text}")),
        Stage::Connected => AgentError::Other(text.to_owned()),
    }
}

/// The TLS setting to look at, from the (lowercase) error `t` of a connect or first call.
fn tls_hint(t: &str, security: Security) -> Option<&'static str> {
    let tls = matches!(security, Security::Tls | Security::MutualTls);
    let mutual = security == Security::MutualTls;
    match security {
        Security::Plain
            if t.contains("frame with invalid size")
                || t.contains("invalid http version")
                || closed(t)
                || t.contains("h2 protocol error")
                || t.contains("operation was canceled") =>
        {
            Some(
                "the connection broke in the handshake: the agent may be serving TLS (set tls for this host or cluster), or it refused this address (is it in the agent's monitor.allow_from, and under its monitor.limits?), or this port is not an agent's",
            )
        }
        _ if tls
            && (t.contains("unknownissuer")
                || t.contains("unknown issuer")
                || t.contains("invalid peer certificate: badsignature")) =>
        {
            Some(
                "TLS: the agent's certificate is not signed by the configured CA (tls.ca): check tls.ca against the agent's certificate",
            )
        }
        _ if tls && (t.contains("notvalidforname") || t.contains("not valid for name")) => Some(
            "TLS: the agent's certificate does not name this address: set tls.domain to a name it has",
        ),
        _ if tls
            && !mutual
            && (t.contains("certificaterequired") || t.contains("certificate required")) =>
        {
            Some(
                "TLS: the agent requires a client certificate (mutual TLS): set tls.cert and tls.key",
            )
        }
        // The agent's alert: an unknown CA, or (a CA of the same name as its client_ca, whose
        // signature does not verify) a decrypt error.
        _ if tls
            && (t.contains("badcertificate")
                || t.contains("bad certificate")
                || t.contains("unknownca")
                || t.contains("unknown ca")
                || (mutual && t.contains("received fatal alert: decrypterror"))) =>
        {
            Some(
                "TLS: the agent refused our client certificate: is it signed by the agent's client_ca?",
            )
        }
        // With TLS 1.3 the client's side of the handshake ends before the agent checks the
        // client certificate; its refusal then often reads as a closed or broken connection.
        _ if mutual && closed(t) => Some(
            "TLS: the agent closed the connection after the handshake: it may have refused our client certificate (is it signed by the agent's client_ca?)",
        ),
        _ if tls && closed(t) => Some(
            "TLS: the agent closed the connection after the handshake: if it requires a client certificate (mutual TLS), set tls.cert and tls.key",
        ),
        _ if tls && (t.contains("invalidcontenttype") || t.contains("corrupt message")) => Some(
            "TLS: the agent does not speak TLS: remove tls for this host, or enable it on the agent",
        ),
        _ => None,
    }
}

/// Formats an error with its whole source chain (tonic's transport errors say little on top).
pub use smon_runtime::start::chain;

/// `text` (phrases joined by ": ") with every phrase kept once: h2 and hyper repeat their
/// own words when they wrap each other ("error reading a body from connection: error reading
/// a body from connection").
pub fn dedup(text: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut out: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        let key = part.trim().to_ascii_lowercase();
        if key.is_empty() || seen.contains(&key) {
            continue;
        }
        seen.push(key);
        out.push(part.trim());
    }
    out.join(": ")
}

/// A gRPC status of a borrowed call in words ([`AgentError`]), for a [`crate::link::LinkError`].
pub fn describe(s: &tonic::Status) -> AgentError {
    classify_status(s, Stage::Connected, Security::Unknown, "the agent")
}

/// Whether a (lowercase) error says the peer closed the connection.
fn closed(t: &str) -> bool {
    t.contains("connection closed")
        || t.contains("broken pipe")
        || t.contains("connection reset")
        || t.contains("unexpected eof")
        || t.contains("stream closed")
        || t.contains("error reading a body from connection")
        || t.contains("missing grpc-status trailer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn status(code: tonic::Code, msg: &str, source: Option<io::Error>) -> tonic::Status {
        let mut s = tonic::Status::new(code, msg);
        if let Some(e) = source {
            s.set_source(std::sync::Arc::new(e));
        }
        s
    }

    /// No phrase (between ": " and the sentence's punctuation) said twice.
    fn no_repeats(text: &str) {
        let parts: Vec<String> = text
            .split([':', '.', ';', '?', '(', ')'])
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| p.len() > 3)
            .collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(p), "'{p}' repeated in: {text}");
        }
    }

    #[test]
    fn a_closed_connection_after_the_handshake_points_at_the_client_certificate() {
        // Both forms seen from the same agent without a client certificate (TLS 1.3: the
        // refusal comes after the client finished its side of the handshake).
        for e in [
            "transport error: connection error: stream closed because of a broken pipe",
            "transport error: received fatal alert: CertificateRequired",
        ] {
            let said = classify(&io::Error::other(e), Stage::Connect, Security::Tls, "a:1");
            assert!(
                said.to_string().contains("requires a client certificate"),
                "{said}"
            );
        }
        let said = classify(
            &io::Error::other(
                "transport error: connection error: received fatal alert: DecryptError",
            ),
            Stage::Connect,
            Security::MutualTls,
            "a:1",
        );
        assert!(
            said.to_string().contains("refused our client certificate"),
            "{said}"
        );
        let said = classify(
            &io::Error::other("transport error: connection error: connection reset by peer"),
            Stage::Connect,
            Security::MutualTls,
            "a:1",
        );
        assert!(
            said.to_string().contains("refused our client certificate"),
            "{said}"
        );
        // Plaintext towards a TLS agent is another story.
        let said = classify(
            &io::Error::from(io::ErrorKind::BrokenPipe),
            Stage::Connect,
            Security::Plain,
            "a:1",
        );
        assert!(said.to_string().contains("may be serving TLS"), "{said}");
        // Nothing to add to an error with no known cause, but the address.
        assert_eq!(
            classify(
                &io::Error::other("deadline has elapsed"),
                Stage::Connect,
                Security::Tls,
                "a:1"
            )
            .to_string(),
            "cannot connect to a:1: deadline has elapsed"
        );
    }

    #[test]
    fn a_stream_broken_by_the_agent_says_so_once() {
        // What an agent killed mid-stream gives (issue 16): the phrase was repeated.
        let s = status(
            tonic::Code::Unknown,
            "h2 protocol error: error reading a body from connection",
            Some(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "error reading a body from connection: stream closed because of a broken pipe",
            )),
        );
        let said = classify_status(&s, Stage::Connected, Security::Plain, "a:1");
        assert_eq!(said, AgentError::Closed);
        assert_eq!(
            said.to_string(),
            "the agent closed the connection (restarting?); smon reconnects as soon as its port answers"
        );
        assert!(said.agent_gone());
        // The same words through a borrowed call.
        assert_eq!(describe(&s), AgentError::Closed);
        assert_eq!(
            dedup(
                "h2 protocol error: error reading a body from connection: error reading a body from connection: stream closed because of a broken pipe"
            ),
            "h2 protocol error: error reading a body from connection: stream closed because of a broken pipe"
        );
    }

    #[test]
    fn an_http_server_is_not_taken_for_an_agent_refusing_us() {
        // A web server's 401 or 403 is mapped by tonic to Unauthenticated or PermissionDenied:
        // not the agent refusing the token or the address.
        for (code, http) in [
            (tonic::Code::Unauthenticated, 401),
            (tonic::Code::PermissionDenied, 403),
            (tonic::Code::Unimplemented, 404),
        ] {
            let s = status(
                code,
                &format!("grpc-status header missing, mapped from HTTP status code {http}"),
                None,
            );
            let said = classify_status(&s, Stage::Connect, Security::Plain, "a:1");
            assert_eq!(said, AgentError::NotGrpc, "{http}");
        }
        let s = status(
            tonic::Code::Internal,
            "protocol error: received message with invalid compression flag: 123 (valid flags are 0 and 1) while receiving response with status: 403 Forbidden",
            None,
        );
        let said = classify_status(&s, Stage::Connect, Security::Plain, "a:1");
        assert_eq!(
            said.to_string(),
            "this address answers HTTP, not gRPC: is it the dashboard's port instead of the agent's?"
        );
    }

    #[test]
    fn refusals_by_the_agent_name_the_setting() {
        let s = status(tonic::Code::Unauthenticated, "wrong bearer token", None);
        let said = classify_status(&s, Stage::Connect, Security::Plain, "a:1").to_string();
        assert!(
            said.contains("(wrong bearer token): check the token"),
            "{said}"
        );
        let s = status(
            tonic::Code::PermissionDenied,
            "127.0.0.1 is not allowed by the agent's monitor.allow_from",
            None,
        );
        let said = classify_status(&s, Stage::Connect, Security::Plain, "a:1");
        assert!(matches!(said, AgentError::NotAllowed(_)), "{said}");
        let s = status(tonic::Code::NotFound, "no process 7", None);
        assert_eq!(
            describe(&s).to_string(),
            "the agent answered with an error: NotFound: no process 7"
        );
    }

    #[test]
    fn connect_failures_by_kind() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let said = classify(&refused, Stage::Connect, Security::Plain, "10.0.0.9:50051");
        assert_eq!(
            said,
            AgentError::Refused {
                address: "10.0.0.9:50051".into()
            }
        );
        assert!(said.agent_gone());
        let dns = io::Error::other(
            "dns error: failed to lookup address information: Name or service not known",
        );
        let said = classify(&dns, Stage::Connect, Security::Plain, "nohost:1");
        assert!(matches!(said, AgentError::UnknownName { .. }), "{said}");
        assert!(!said.agent_gone());
        let t = io::Error::from(io::ErrorKind::TimedOut);
        assert!(matches!(
            classify(&t, Stage::Connect, Security::Plain, "a:1"),
            AgentError::ConnectTimeout { .. }
        ));
        let unreachable = io::Error::from(io::ErrorKind::HostUnreachable);
        assert!(matches!(
            classify(&unreachable, Stage::Connect, Security::Tls, "a:1"),
            AgentError::NoRoute { .. }
        ));
        for e in [
            said,
            AgentError::Closed,
            AgentError::NotGrpc,
            AgentError::Refused {
                address: "a:1".into(),
            },
            AgentError::ConnectTimeout {
                address: "a:1".into(),
            },
            AgentError::Silent(Duration::from_secs(10)),
            AgentError::NoAnswer {
                what: "GetInfo",
                after: Duration::from_secs(5),
            },
            AgentError::Token("wrong bearer token".into()),
        ] {
            no_repeats(&e.to_string());
        }
    }
}
