//! CIDR allow-lists (`allow_from`, `trusted_proxies`, `metrics_allow_from`, the agent's
//! `monitor.allow_from`): parsed once from the config, then matched against peer addresses.
//! Pure and dependency-light, so the agent's gRPC listener has them in a build without the
//! web view.

use std::net::IpAddr;

use ipnet::IpNet;

/// An entry of an allow-list that is neither an address nor a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index}: '{value}' is not an address or CIDR range")]
pub struct CidrError {
    /// Its position in the list.
    pub index: usize,
    /// The entry as written.
    pub value: String,
}

/// A list of CIDR ranges. An address matches when any range contains it. IPv4-mapped IPv6
/// addresses (`::ffff:10.0.0.1`, as a dual-stack listener reports them) match IPv4 ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList(Vec<IpNet>);

impl CidrList {
    /// Parses `10.0.0.0/8`, `::1/128`, or a bare address (a /32 or /128). Fails on the first
    /// entry that is neither.
    pub fn parse(items: &[String]) -> Result<Self, CidrError> {
        let mut nets = Vec::with_capacity(items.len());
        for (i, s) in items.iter().enumerate() {
            let t = s.trim();
            let net = t
                .parse::<IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| CidrError {
                    index: i,
                    value: s.clone(),
                })?;
            nets.push(net.trunc());
        }
        Ok(Self(nets))
    }

    /// Loopback only: `127.0.0.0/8` and `::1/128`.
    pub fn loopback() -> Self {
        Self(vec![
            IpNet::V4(ipnet::Ipv4Net::new_assert(
                std::net::Ipv4Addr::new(127, 0, 0, 0),
                8,
            )),
            IpNet::V6(ipnet::Ipv6Net::new_assert(
                std::net::Ipv6Addr::LOCALHOST,
                128,
            )),
        ])
    }

    /// Whether the list has no ranges.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }
}

impl std::fmt::Display for CidrList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; everything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> CidrList {
        CidrList::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("valid list")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidr_lists() {
        let l = list(&["10.0.0.0/8", "192.168.1.7", "fd00::/8"]);
        assert!(l.contains(ip("10.1.2.3")));
        assert!(l.contains(ip("192.168.1.7")));
        assert!(!l.contains(ip("192.168.1.8")));
        assert!(l.contains(ip("fd12::1")));
        assert!(l.contains(ip("::ffff:10.9.9.9")), "mapped IPv4 matches");
        assert!(!l.contains(ip("11.0.0.1")));
        assert_eq!(
            CidrList::parse(&["10.0.0.0/8".into(), "10.0.0.0/33".into()]),
            Err(CidrError {
                index: 1,
                value: "10.0.0.0/33".into()
            })
        );
        assert!(CidrList::loopback().contains(ip("127.0.0.2")));
        assert!(CidrList::loopback().contains(ip("::1")));
    }
}
