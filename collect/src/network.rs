//! Network interfaces: byte rates since the previous refresh, totals, MAC and addresses, with
//! the interfaces the [`NetworkFilter`] excludes left out.

use smon_proto::NetInterface;
use sysinfo::Networks;

use crate::filters::NetworkFilter;

/// The interfaces of a refreshed `networks`, sorted by name; rates are over `elapsed` seconds.
pub fn read(networks: &Networks, filter: &NetworkFilter, elapsed: f64) -> Vec<NetInterface> {
    let mut out: Vec<NetInterface> = networks
        .iter()
        .map(|(name, n)| (name.to_string_lossy(), n))
        .filter(|(name, _)| filter.allows(name))
        .map(|(name, n)| {
            let mac = n.mac_address();
            NetInterface {
                name: name.into_owned(),
                rx_bytes_per_s: (n.received() as f64 / elapsed).round() as u64,
                tx_bytes_per_s: (n.transmitted() as f64 / elapsed).round() as u64,
                rx_total_bytes: n.total_received(),
                tx_total_bytes: n.total_transmitted(),
                mac: if mac.is_unspecified() {
                    String::new()
                } else {
                    mac.to_string()
                },
                addresses: n
                    .ip_networks()
                    .iter()
                    .map(|ip| format!("{}/{}", ip.addr, ip.prefix))
                    .collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
