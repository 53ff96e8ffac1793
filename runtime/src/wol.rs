//! Wake-on-LAN: the magic packet (6 × `0xFF`, then the target's MAC 16 times: 102 bytes) and
//! its sending over UDP to a broadcast (or unicast) address, shared by the aggregator (a host
//! on its own LAN) and the agent (the `Control.Wake` relay, for a host on the agent's LAN).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::str::FromStr;

/// The default Wake-on-LAN port (the discard port; 7 is the other common one).
pub const DEFAULT_PORT: u16 = 9;

/// The default destination: the limited broadcast of the sender's LAN.
pub const DEFAULT_BROADCAST: Ipv4Addr = Ipv4Addr::BROADCAST;

/// A magic packet's length.
pub const PACKET_LEN: usize = 102;

/// A MAC address (EUI-48), written `aa:bb:cc:dd:ee:ff`, read with `:` or `-` separators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

/// Why a MAC address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a MAC address (six hex pairs: aa:bb:cc:dd:ee:ff)")]
pub struct BadMac(pub String);

impl FromStr for Mac {
    type Err = BadMac;

    fn from_str(s: &str) -> Result<Self, BadMac> {
        let parsed = macaddr::MacAddr6::from_str(s.trim()).map_err(|_| BadMac(s.to_owned()))?;
        let mut b = [0u8; 6];
        b.copy_from_slice(parsed.as_bytes());
        Ok(Self(b))
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The magic packet that wakes `mac`.
pub fn magic_packet(mac: Mac) -> [u8; PACKET_LEN] {
    let mut p = [0xFF; PACKET_LEN];
    for chunk in p[6..].chunks_exact_mut(6) {
        chunk.copy_from_slice(&mac.0);
    }
    p
}

/// Sends the magic packet for `mac` to `to` from an ephemeral port (broadcast allowed);
/// returns the bytes sent.
pub fn send(mac: Mac, to: SocketAddrV4) -> std::io::Result<usize> {
    let sock = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    sock.set_broadcast(true)?;
    sock.send_to(&magic_packet(mac), to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_read_with_either_separator_and_print_lowercase() {
        let m: Mac = "AA-bb-0C-dd-ee-01".parse().expect("a MAC");
        assert_eq!(m.0, [0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x01]);
        assert_eq!(m.to_string(), "aa:bb:0c:dd:ee:01");
        assert_eq!(" aa:bb:0c:dd:ee:01 ".parse::<Mac>(), Ok(m));
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:gg",
            "aa:bb:cc:dd:ee:ff:00:11",
        ] {
            let e = bad.parse::<Mac>().expect_err(bad);
            assert!(e.to_string().contains("is not a MAC address"), "{e}");
        }
    }

    #[test]
    fn the_magic_packet_is_six_ff_then_the_mac_sixteen_times() {
        let mac = Mac([1, 2, 3, 4, 5, 6]);
        let p = magic_packet(mac);
        assert_eq!(&p[..6], &[0xFF; 6]);
        for i in 0..16 {
            assert_eq!(&p[6 + i * 6..12 + i * 6], &mac.0, "repetition {i}");
        }
    }

    #[test]
    fn the_packet_arrives_on_a_udp_listener() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let SocketAddr::V4(at) = rx.local_addr().expect("addr") else {
            unreachable!("bound to IPv4")
        };
        let mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(send(mac, at).expect("send"), PACKET_LEN);
        let mut buf = [0u8; 200];
        let (n, _) = rx.recv_from(&mut buf).expect("a packet");
        assert_eq!(&buf[..n], &magic_packet(mac)[..]);
    }
}
