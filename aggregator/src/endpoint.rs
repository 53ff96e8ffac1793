//! The gRPC endpoint of an agent: plaintext or TLS (with a client certificate for mutual TLS),
//! and connection errors explained in words an operator can act on.

use std::fmt;
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

/// A connection or call error in words, with a hint at the likely cause when there is one.
/// Displayed as `text (hint)`: the host row shows it as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// What failed, with the transport's own reason.
    pub text: String,
    /// The likely cause, in terms of the config.
    pub hint: Option<&'static str>,
}

impl fmt::Display for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.hint {
            Some(h) => write!(f, "{} ({h})", self.text),
            None => f.write_str(&self.text),
        }
    }
}

impl std::error::Error for Explained {}

/// `text` (a connection or call error) with a hint at the likely cause, when there is one.
pub fn explain(text: String, target: &Target) -> String {
    explained(text, target).to_string()
}

/// `text` (a connection or call error) with a hint at the likely cause, as a value.
pub fn explained(text: String, target: &Target) -> Explained {
    let hint = hint(&text.to_ascii_lowercase(), target);
    Explained { text, hint }
}

/// The likely cause of the (lowercase) error `t` towards `target`.
fn hint(t: &str, target: &Target) -> Option<&'static str> {
    match &target.tls {
        None if t.contains("frame with invalid size")
            || t.contains("invalid http version")
            || t.contains("connection reset")
            || t.contains("unexpected eof")
            || t.contains("broken pipe")
            || t.contains("h2 protocol error")
            || t.contains("operation was canceled") =>
        {
            // An agent also closes a connection at once when the address is outside its
            // monitor.allow_from or at its connection limits (before TLS or HTTP/2).
            Some(
                "the agent may be serving TLS: set tls for this host or cluster; or it refused the connection: is this address in its monitor.allow_from, and is it under its monitor.limits?",
            )
        }
        Some(_)
            if t.contains("unknownissuer")
                || t.contains("unknown issuer")
                || t.contains("invalid peer certificate: badsignature") =>
        {
            Some("the agent's certificate is not signed by the configured CA (tls.ca)")
        }
        Some(_) if t.contains("notvalidforname") || t.contains("not valid for name") => Some(
            "the agent's certificate does not name this address: set tls.domain to a name it has",
        ),
        Some(tls)
            if tls.identity.is_none()
                && (t.contains("certificaterequired") || t.contains("certificate required")) =>
        {
            Some("the agent requires a client certificate (mutual TLS): set tls.cert and tls.key")
        }
        Some(_)
            if t.contains("badcertificate")
                || t.contains("bad certificate")
                || t.contains("unknownca")
                || t.contains("unknown ca") =>
        {
            Some("the agent refused our client certificate: is it signed by the agent's client_ca?")
        }
        // With TLS 1.3 the client's side of the handshake ends before the agent checks the
        // client certificate; its refusal then often reads as a closed or broken connection.
        Some(tls) if tls.identity.is_some() && closed(t) => Some(
            "the agent closed the connection after the handshake: it may have refused our client certificate (is it signed by the agent's client_ca?)",
        ),
        Some(tls) if tls.identity.is_none() && closed(t) => Some(
            "the agent closed the connection after the handshake: if it requires a client certificate (mutual TLS), set tls.cert and tls.key",
        ),
        Some(_) if t.contains("invalidcontenttype") || t.contains("corrupt message") => Some(
            "the agent does not speak TLS: remove tls for this host, or enable it on the agent",
        ),
        _ => None,
    }
}

/// Formats an error with its whole source chain (tonic's transport errors say little on top).
pub use smon_runtime::start::chain;

/// A gRPC status in words, with the transport's own reason when it has one.
pub fn status_text(s: &tonic::Status) -> String {
    match s.code() {
        tonic::Code::Unauthenticated => {
            format!("refused by the agent: {} (check the token)", s.message())
        }
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            if std::error::Error::source(s).is_some() =>
        {
            // The transport's own error says more than "operation was canceled" (e.g. the TLS
            // alert an agent sent when it refused our certificate).
            let src = std::error::Error::source(s).map(chain).unwrap_or_default();
            format!("{:?}: {}: {src}", s.code(), s.message())
        }
        tonic::Code::Unavailable | tonic::Code::Unknown if s.message().is_empty() => {
            format!("{:?}", s.code())
        }
        _ => format!("{:?}: {}", s.code(), s.message()),
    }
}

/// Whether a (lowercase) error says the peer closed the connection.
fn closed(t: &str) -> bool {
    t.contains("connection closed")
        || t.contains("broken pipe")
        || t.contains("connection reset")
        || t.contains("unexpected eof")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientTls;

    fn target(tls: Option<ClientTls>) -> Target {
        Target {
            spec: smon_web::store::HostSpec {
                cluster: "c".into(),
                name: "n".into(),
                address: "127.0.0.1:1".into(),
                tags: vec![],
            },
            address: "127.0.0.1:1".into(),
            token: None,
            tls,
        }
    }

    fn tls(mutual: bool) -> Option<ClientTls> {
        Some(ClientTls {
            ca: b"ca".to_vec(),
            identity: mutual.then(|| (b"cert".to_vec(), b"key".to_vec())),
            domain: None,
        })
    }

    #[test]
    fn a_closed_connection_after_the_handshake_points_at_the_client_certificate() {
        // Both forms seen from the same agent without a client certificate (TLS 1.3: the
        // refusal comes after the client finished its side of the handshake).
        for e in [
            "transport error: connection error: stream closed because of a broken pipe",
            "transport error: received fatal alert: CertificateRequired",
        ] {
            let said = explain(e.into(), &target(tls(false)));
            assert!(said.contains("requires a client certificate"), "{said}");
        }
        let said = explain(
            "transport error: connection error: connection reset by peer".into(),
            &target(tls(true)),
        );
        assert!(said.contains("refused our client certificate"), "{said}");
        // Plaintext towards a TLS agent is another story.
        let said = explain("broken pipe".into(), &target(None));
        assert!(said.contains("may be serving TLS"), "{said}");
        // Nothing to add to an error with no known cause.
        assert_eq!(
            explain("deadline has elapsed".into(), &target(tls(false))),
            "deadline has elapsed"
        );
    }
}
