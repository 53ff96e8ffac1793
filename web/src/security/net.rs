//! Addresses: the client's address and scheme behind a trusted reverse
//! proxy (`X-Forwarded-For`, `X-Forwarded-Proto`, believed only from `trusted_proxies`), and
//! the host names the server answers to ([`HostPolicy`], `server.allowed_hosts`).

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

/// The host names a server answers to (`server.allowed_hosts`), against DNS rebinding: a page
/// of `evil.example` whose name the attacker re-points at this server sends
/// `Host: evil.example`, which no entry names.
///
/// IP addresses and `localhost` always pass: a rebinding page has a name the attacker
/// controls, and a browser that shows `http://127.0.0.1:8080/` or `http://localhost:8080/`
/// gives that origin to nobody else.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostPolicy {
    /// `*`: any name.
    any: bool,
    /// Exact names, lowercase, without a trailing dot.
    names: Vec<String>,
    /// `*.example.org` entries, as `.example.org`.
    suffixes: Vec<String>,
}

/// Why an `allowed_hosts` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a host name like smon.example.org, a pattern like *.example.org, or *")]
pub struct HostEntryError;

impl HostPolicy {
    /// The default: IP addresses, `localhost`, and `names` (this machine's name).
    pub fn with_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut p = Self::default();
        for n in names {
            let n = normalise_name(n);
            if !n.is_empty() && valid_name(&n) && !p.names.contains(&n) {
                p.names.push(n);
            }
        }
        p
    }

    /// Adds one entry of `server.allowed_hosts`: a name, `*.` and a name, `*`, or an IP address
    /// (which always passes anyway). A port is refused: names are compared without one.
    pub fn add(&mut self, entry: &str) -> Result<(), HostEntryError> {
        let raw = entry.trim();
        let e = normalise_name(raw);
        if raw == "*" {
            self.any = true;
        } else if let Some(rest) = raw.strip_prefix("*.") {
            let rest = normalise_name(rest);
            if !valid_name(&rest) {
                return Err(HostEntryError);
            }
            self.suffixes.push(format!(".{rest}"));
        } else if ip_literal(&e).is_some() {
            // Addresses always pass: nothing to remember.
        } else if valid_name(&e) {
            self.names.push(e);
        } else {
            return Err(HostEntryError);
        }
        Ok(())
    }

    /// Whether the authority `host[:port]` of a request (its `Host`, or a trusted proxy's
    /// `X-Forwarded-Host`) names this server.
    pub fn allows(&self, authority: &str) -> bool {
        if self.any {
            return true;
        }
        let Some(host) = host_of(authority) else {
            return false;
        };
        if ip_literal(&host).is_some() || host == "localhost" {
            return true;
        }
        self.names.contains(&host) || self.suffixes.iter().any(|s| host.ends_with(s))
    }

    /// The names and patterns accepted besides IP addresses and `localhost`, for messages.
    pub fn describe(&self) -> String {
        if self.any {
            return "*".into();
        }
        let mut all: Vec<String> = vec!["IP addresses".into(), "localhost".into()];
        all.extend(self.names.iter().cloned());
        all.extend(self.suffixes.iter().map(|s| format!("*{s}")));
        all.join(", ")
    }
}

/// Lowercase, without one trailing dot (`Example.ORG.` and `example.org` are one name).
fn normalise_name(s: &str) -> String {
    let s = s.to_ascii_lowercase();
    match s.strip_suffix('.') {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => s,
    }
}

/// A DNS name: labels of letters, digits, `-` and `_`, 1-63 characters each, 253 in all.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// `s` as an IP address: `10.0.0.1`, `::1` or `[::1]`.
fn ip_literal(s: &str) -> Option<IpAddr> {
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    inner.parse().ok()
}

/// The host part of an authority (`name:port`, `[v6]:port`, `name`), normalised; `None` for
/// anything with user info or stray characters.
fn host_of(authority: &str) -> Option<String> {
    let a = authority.trim();
    if a.contains('@') {
        return None;
    }
    let host = if let Some(rest) = a.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| format!("[{ip}]"));
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) if is_port(p) => h,
            Some(_) => return None,
            None => a,
        }
    };
    let h = normalise_name(host);
    (ip_literal(&h).is_some() || valid_name(&h)).then_some(h)
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit())
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

    #[test]
    fn host_names_against_dns_rebinding() {
        let mut p = HostPolicy::with_names(["Gpu-01"]);
        for ok in [
            "127.0.0.1:18080",
            "127.0.0.1",
            "[::1]:8080",
            "10.1.2.3",
            "localhost:8080",
            "LOCALHOST.",
            "gpu-01:8080",
            "gpu-01.",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:18080",
            "evil.example",
            "gpu-01.evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "user@127.0.0.1",
            "127.0.0.1:80x",
            "[::1",
            "",
            "a b",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        p.add("smon.example.org").expect("name");
        p.add("*.lab.example").expect("pattern");
        p.add("192.0.2.1").expect("address");
        assert!(p.allows("SMON.example.org:443"));
        assert!(p.allows("a.lab.example"));
        assert!(!p.allows("lab.example"), "a pattern names what is below it");
        assert!(!p.allows("evillab.example"));
        for bad in ["smon.example.org:443", "http://x", "a..b", "*.", "x/y", ""] {
            assert_eq!(p.add(bad), Err(HostEntryError), "{bad}");
        }
        p.add("*").expect("any");
        assert!(p.allows("evil.example"));
        assert_eq!(
            HostPolicy::with_names(["h"]).describe(),
            "IP addresses, localhost, h"
        );
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

        /// A name the policy does not list never passes, whatever its port or case.
        #[test]
        fn unlisted_names_never_pass(name in "[a-z][a-z0-9-]{0,20}\\.[a-z]{2,6}", port in 0u32..70000) {
            let p = HostPolicy::with_names(["smon.example.org"]);
            prop_assume!(name != "smon.example.org");
            let authority = format!("{name}:{port}");
            prop_assert!(!p.allows(&authority));
            prop_assert!(!p.allows(&name.to_uppercase()));
        }

        #[test]
        fn cidr_parser_never_panics(items in proptest::collection::vec(".{0,50}", 0..5)) {
            let _ = CidrList::parse(&items);
        }
    }
}
