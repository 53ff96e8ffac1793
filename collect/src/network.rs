//! Network interfaces: byte rates since the previous sample, totals, MAC and addresses, with
//! the interfaces the [`NetworkFilter`] excludes left out.
//!
//! On Linux the byte counters of every interface come from one read of `/proc/net/dev` per
//! sample. sysinfo's refresh opens about ten `/sys/class/net/<if>/...` files per interface
//! (the excluded `lo` included) each time, which showed in the agent's CPU (BENCHMARKS.md); it
//! now runs every [`LIST_EVERY`] only, for the MAC and addresses, and when an interface
//! appears. Elsewhere sysinfo is refreshed every sample, as before.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use smon_proto::NetInterface;
use sysinfo::Networks;

use crate::filters::NetworkFilter;

/// How often the interface list, MACs and addresses are refreshed (the counters are read every
/// sample).
pub const LIST_EVERY: Duration = Duration::from_secs(10);

/// The received and transmitted byte totals of each interface in `/proc/net/dev` text:
/// `(name, rx_bytes, tx_bytes)`, in the file's order. Lines that do not parse are skipped.
pub fn parse_proc_net_dev(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let mut f = rest.split_whitespace();
            // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit.
            let rx = f.next()?.parse().ok()?;
            let tx = f.nth(7)?.parse().ok()?;
            Some((name.trim().to_owned(), rx, tx))
        })
        .collect()
}

/// The interfaces of a host, kept between samples.
pub struct Interfaces {
    networks: Networks,
    listed: Instant,
    /// `/proc/net/dev` (under the collector's proc root).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    proc_net_dev: PathBuf,
    /// Each interface's totals at the previous sample.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    previous: HashMap<String, (u64, u64)>,
}

impl Interfaces {
    /// Lists the interfaces (`networks`, freshly listed) and reads counters from
    /// `proc/net/dev`.
    pub fn new(networks: Networks, proc: PathBuf) -> Self {
        Self {
            networks,
            listed: Instant::now(),
            proc_net_dev: proc.join("net").join("dev"),
            previous: HashMap::new(),
        }
    }

    /// The interfaces now, sorted by name; rates are over `elapsed` seconds (the time since
    /// the previous call).
    #[cfg(target_os = "linux")]
    pub fn read(&mut self, filter: &NetworkFilter, elapsed: f64) -> Vec<NetInterface> {
        let counters = match std::fs::read_to_string(&self.proc_net_dev) {
            Ok(text) => parse_proc_net_dev(&text),
            // No procfs here: sysinfo's way, every sample.
            Err(_) => {
                self.networks.refresh(true);
                return read(&self.networks, filter, elapsed);
            }
        };
        let new_interface = counters.iter().any(|(n, ..)| {
            filter.allows(n) && !self.networks.contains_key(std::ffi::OsStr::new(n))
        });
        if new_interface || self.listed.elapsed() >= LIST_EVERY {
            self.networks.refresh(true);
            self.listed = Instant::now();
        }
        let mut previous = HashMap::with_capacity(counters.len());
        let mut out: Vec<NetInterface> = counters
            .into_iter()
            .filter(|(name, ..)| filter.allows(name))
            .map(|(name, rx, tx)| {
                let (prx, ptx) = self.previous.get(&name).copied().unwrap_or((rx, tx));
                previous.insert(name.clone(), (rx, tx));
                let data = self.networks.get(std::ffi::OsStr::new(&name));
                NetInterface {
                    rx_bytes_per_s: (rx.saturating_sub(prx) as f64 / elapsed).round() as u64,
                    tx_bytes_per_s: (tx.saturating_sub(ptx) as f64 / elapsed).round() as u64,
                    rx_total_bytes: rx,
                    tx_total_bytes: tx,
                    mac: data.map(mac).unwrap_or_default(),
                    addresses: data.map(addresses).unwrap_or_default(),
                    name,
                }
            })
            .collect();
        self.previous = previous;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The interfaces now, sorted by name; rates are over `elapsed` seconds (the time since
    /// the previous call).
    #[cfg(not(target_os = "linux"))]
    pub fn read(&mut self, filter: &NetworkFilter, elapsed: f64) -> Vec<NetInterface> {
        self.networks.refresh(true);
        self.listed = Instant::now();
        read(&self.networks, filter, elapsed)
    }
}

fn mac(n: &sysinfo::NetworkData) -> String {
    let mac = n.mac_address();
    if mac.is_unspecified() {
        String::new()
    } else {
        mac.to_string()
    }
}

fn addresses(n: &sysinfo::NetworkData) -> Vec<String> {
    n.ip_networks()
        .iter()
        .map(|ip| format!("{}/{}", ip.addr, ip.prefix))
        .collect()
}

/// The interfaces of a refreshed `networks`, sorted by name; rates are over `elapsed` seconds.
pub fn read(networks: &Networks, filter: &NetworkFilter, elapsed: f64) -> Vec<NetInterface> {
    let mut out: Vec<NetInterface> = networks
        .iter()
        .map(|(name, n)| (name.to_string_lossy(), n))
        .filter(|(name, _)| filter.allows(name))
        .map(|(name, n)| NetInterface {
            name: name.into_owned(),
            rx_bytes_per_s: (n.received() as f64 / elapsed).round() as u64,
            tx_bytes_per_s: (n.transmitted() as f64 / elapsed).round() as u64,
            rx_total_bytes: n.total_received(),
            tx_total_bytes: n.total_transmitted(),
            mac: mac(n),
            addresses: addresses(n),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1296867   12345    0    0    0     0          0         0  1296867   12345    0    0    0     0       0          0
  eth0: 987654321 600000   0    1    0     0          0        12 123456789  400000    0    0    0     0       0          0
garbage line
";

    #[test]
    fn proc_net_dev_is_parsed() {
        assert_eq!(
            parse_proc_net_dev(DEV),
            vec![
                ("lo".to_owned(), 1_296_867, 1_296_867),
                ("eth0".to_owned(), 987_654_321, 123_456_789),
            ]
        );
        assert!(parse_proc_net_dev("").is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn rates_come_from_the_previous_sample_and_excluded_interfaces_are_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("net")).expect("net");
        let dev = dir.path().join("net").join("dev");
        std::fs::write(&dev, DEV).expect("dev");
        let mut ifs = Interfaces::new(Networks::new().expect("networks"), dir.path().to_owned());
        let filter = NetworkFilter {
            exclude_interfaces: vec!["lo".into()],
        };
        let first = ifs.read(&filter, 1.0);
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(
            (
                first[0].name.as_str(),
                first[0].rx_bytes_per_s,
                first[0].rx_total_bytes
            ),
            ("eth0", 0, 987_654_321)
        );
        std::fs::write(
            &dev,
            DEV.replace("987654321", "987656321")
                .replace("123456789", "123457789"),
        )
        .expect("dev");
        let second = ifs.read(&filter, 2.0);
        assert_eq!(
            (second[0].rx_bytes_per_s, second[0].tx_bytes_per_s),
            (1000, 500)
        );
        // A counter that went back (the interface was re-created): no negative rate.
        std::fs::write(&dev, DEV.replace("987654321", "5")).expect("dev");
        assert_eq!(ifs.read(&filter, 1.0)[0].rx_bytes_per_s, 0);
    }
}
