//! Addresses: the client's address and scheme behind a trusted reverse
//! proxy (`X-Forwarded-For`, `X-Forwarded-Proto`, believed only from `trusted_proxies`).

use std::net::IpAddr;

use axum::http::HeaderMap;
// The allow-lists themselves live in smon-runtime: the agent's gRPC listener uses them too,
// also in a build without the web view.
pub use smon_runtime::net::{CidrError, CidrList, canonical};

/// Who is on the other end of a request, as far as it can be believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the TCP peer, or, when the peer is a trusted proxy, the nearest
    /// untrusted address of `X-Forwarded-For`.
    pub ip: IpAddr,
    /// Whether the client's side of the connection is HTTPS (directly, or per a trusted
    /// proxy's `X-Forwarded-Proto`).
    pub https: bool,
}

/// Works out the client of a request that arrived from `peer`. Forwarded headers count only
/// with `behind_proxy` and only when `peer` is in `trusted`; `X-Forwarded-For` is read from the
/// right, skipping trusted proxies, so a client cannot forge its address by sending the header
/// itself. A malformed header leaves the last believable address (the proxy's).
pub fn client(
    peer: IpAddr,
    headers: &HeaderMap,
    behind_proxy: bool,
    trusted: &CidrList,
    direct_tls: bool,
) -> Client {
    let peer = canonical(peer);
    if !behind_proxy || !trusted.contains(peer) {
        return Client {
            ip: peer,
            https: direct_tls,
        };
    }
    let mut ip = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    'outer: for line in hops.iter().rev() {
        for item in line.rsplit(',') {
            match parse_forwarded_ip(item) {
                Some(hop) => {
                    ip = hop;
                    if !trusted.contains(hop) {
                        break 'outer;
                    }
                }
                None => break 'outer,
            }
        }
    }
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.rsplit(',')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("https")
        })
        .unwrap_or(direct_tls);
    Client { ip, https }
}

/// One `X-Forwarded-For` item: `1.2.3.4`, `::1`, `[::1]`, `[::1]:443` or `1.2.3.4:5678`.
pub fn parse_forwarded_ip(item: &str) -> Option<IpAddr> {
    let t = item.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = t.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse::<IpAddr>().ok().map(canonical);
    }
    t.parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| canonical(a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    fn list(items: &[&str]) -> CidrList {
        CidrList::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("valid list")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let trusted = list(&["127.0.0.1"]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9"),
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        // Not behind a proxy: the peer, whatever the headers say.
        let c = client(ip("127.0.0.1"), &h, false, &trusted, false);
        assert_eq!(c.ip, ip("127.0.0.1"));
        assert!(!c.https);
        // From an untrusted peer: the peer.
        let c = client(ip("127.0.0.5"), &h, true, &trusted, false);
        assert_eq!(c.ip, ip("127.0.0.5"));
        // From the proxy: the rightmost untrusted hop; the client-sent 6.6.6.6 is ignored.
        let c = client(ip("127.0.0.1"), &h, true, &trusted, false);
        assert_eq!(c.ip, ip("203.0.113.9"));
        assert!(c.https);
        // A chain of trusted proxies is skipped.
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 127.0.0.1"),
        );
        assert_eq!(
            client(ip("127.0.0.1"), &h, true, &trusted, false).ip,
            ip("203.0.113.9")
        );
        // Garbage stops the walk at the last believable address.
        h.insert("x-forwarded-for", HeaderValue::from_static("nonsense"));
        assert_eq!(
            client(ip("127.0.0.1"), &h, true, &trusted, false).ip,
            ip("127.0.0.1")
        );
        assert_eq!(
            parse_forwarded_ip("[2001:db8::1]:443"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(parse_forwarded_ip(" 1.2.3.4:80 "), Some(ip("1.2.3.4")));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
        ))]

        /// Arbitrary header values never panic, and a client behind a trusted proxy is never
        /// given an address that is neither in the header nor the peer's.
        #[test]
        fn forwarded_parser_never_panics(xff in ".{0,200}", proto in ".{0,30}") {
            let trusted = list(&["127.0.0.0/8"]);
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&xff) {
                h.insert("x-forwarded-for", v);
            }
            if let Ok(v) = HeaderValue::from_str(&proto) {
                h.insert("x-forwarded-proto", v);
            }
            let c = client(ip("127.0.0.1"), &h, true, &trusted, false);
            let from_header = xff.split(',').filter_map(parse_forwarded_ip).any(|a| a == c.ip);
            prop_assert!(c.ip == ip("127.0.0.1") || from_header);
        }

        #[test]
        fn cidr_parser_never_panics(items in proptest::collection::vec(".{0,50}", 0..5)) {
            let _ = CidrList::parse(&items);
        }
    }
}
