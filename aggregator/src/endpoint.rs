//! The gRPC endpoint of an agent: plaintext or TLS (with a client certificate for mutual TLS),
//! and connection errors explained in words an operator can act on.

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::config::Target;

/// The endpoint for `target`, with `connect_timeout`.
pub fn endpoint(target: &Target, connect_timeout: Duration) -> Result<Endpoint, String> {
    let scheme = if target.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{}", target.address))
        .map_err(|e| format!("bad address: {e}"))?
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
        ep = ep
            .tls_config(cfg)
            .map_err(|e| format!("TLS settings refused: {e}"))?;
    }
    Ok(ep)
}

/// `text` (a connection or call error) with a hint at the likely cause, when there is one.
pub fn explain(text: String, target: &Target) -> String {
    let t = text.to_ascii_lowercase();
    let hint = match &target.tls {
        None if t.contains("frame with invalid size")
            || t.contains("invalid http version")
            || t.contains("connection reset")
            || t.contains("unexpected eof")
            || t.contains("broken pipe")
            || t.contains("h2 protocol error")
            || t.contains("operation was canceled") =>
        {
            Some("the agent may be serving TLS: set tls for this host or cluster")
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
        Some(tls) if tls.identity.is_some() && closed(&t) => Some(
            "the agent closed the connection after the handshake: it may have refused our client certificate (is it signed by the agent's client_ca?)",
        ),
        Some(tls) if tls.identity.is_none() && closed(&t) => Some(
            "the agent closed the connection after the handshake: if it requires a client certificate (mutual TLS), set tls.cert and tls.key",
        ),
        Some(_) if t.contains("invalidcontenttype") || t.contains("corrupt message") => Some(
            "the agent does not speak TLS: remove tls for this host, or enable it on the agent",
        ),
        _ => None,
    };
    match hint {
        Some(h) => format!("{text} ({h})"),
        None => text,
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
