//! The simulator's settings (from the command line), checked all at once, and the loopback
//! address of each simulated agent.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// Everything the simulator needs to build its fleet.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of simulated agents.
    pub agents: u32,
    /// Loopback address of the first agent; the others count up from it.
    pub first_addr: Ipv4Addr,
    /// gRPC port every agent listens on (each on its own address).
    pub port: u16,
    /// Sampling interval of every agent (and the poll interval of the written aggregator
    /// config).
    pub interval: Duration,
    /// Most GPUs a host may have.
    pub max_gpus: u32,
    /// Hosts per cluster in the written aggregator config (and in the host names).
    pub hosts_per_cluster: u32,
    /// Seed of every name, size and random walk: the same seed gives the same fleet.
    pub seed: u64,
    /// Bearer token every agent asks for (`None`: no token check).
    pub token: Option<String>,
}

/// One problem with the settings: the option, the value, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The command-line option, e.g. `--agents`.
    pub option: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: '{}' {}", self.option, self.value, self.problem)
    }
}

/// Most agents one simulator runs (the 127/8 space and file descriptors run out well before).
pub const MAX_AGENTS: u32 = 1_000_000;

impl SimConfig {
    /// Checks every setting; returns every problem, not only the first.
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        let mut errs = Vec::new();
        let mut bad = |option: &'static str, value: &dyn fmt::Display, problem: &str| {
            errs.push(ConfigProblem {
                option,
                value: value.to_string(),
                problem: problem.to_owned(),
            });
        };
        if self.agents == 0 || self.agents > MAX_AGENTS {
            bad(
                "--agents",
                &self.agents,
                &format!("must be between 1 and {MAX_AGENTS}"),
            );
        }
        // Loopback only: the simulated agents are for tests and benchmarks on this machine,
        // and an address outside 127/8 would either fail to bind or expose them.
        if !self.first_addr.is_loopback() {
            bad(
                "--first-addr",
                &self.first_addr,
                "is not a loopback address (127.0.0.0/8)",
            );
        } else if self.agents > 0 && self.addr(self.agents - 1).is_none() {
            bad(
                "--first-addr",
                &self.first_addr,
                &format!(
                    "leaves no room for {} agents before 127.255.255.254",
                    self.agents
                ),
            );
        }
        if self.port == 0 {
            bad("--port", &self.port, "must be a fixed port (1-65535)");
        }
        let ms = self.interval.as_millis();
        if !(100..=3_600_000).contains(&ms) {
            bad(
                "--interval-ms",
                &ms,
                "must be between 100 and 3600000 (the aggregator's limits)",
            );
        }
        if self.max_gpus > 16 {
            bad("--max-gpus", &self.max_gpus, "must be between 0 and 16");
        }
        if self.hosts_per_cluster == 0 {
            bad(
                "--hosts-per-cluster",
                &self.hosts_per_cluster,
                "must be at least 1",
            );
        }
        if let Some(t) = &self.token
            && (t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            bad(
                "--token-file",
                &"<hidden>",
                "does not hold a valid token (16+ characters, no whitespace)",
            );
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// Address of agent `i` (0-based): the first address plus `i`, while it stays in 127/8
    /// and short of 127.255.255.255.
    pub fn addr(&self, i: u32) -> Option<SocketAddrV4> {
        let ip = u32::from(self.first_addr).checked_add(i)?;
        let ip = Ipv4Addr::from(ip);
        (ip.is_loopback() && ip != Ipv4Addr::new(127, 255, 255, 255))
            .then_some(SocketAddrV4::new(ip, self.port))
    }

    /// Index of the agent at `ip`, if it is one of ours.
    pub fn index_of(&self, ip: Ipv4Addr) -> Option<u32> {
        let i = u32::from(ip).checked_sub(u32::from(self.first_addr))?;
        (i < self.agents).then_some(i)
    }

    /// The sampling interval in milliseconds.
    pub fn interval_ms(&self) -> u64 {
        self.interval.as_millis() as u64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> SimConfig {
        SimConfig {
            agents: 20,
            first_addr: Ipv4Addr::new(127, 1, 0, 1),
            port: 50051,
            interval: Duration::from_millis(1000),
            max_gpus: 8,
            hosts_per_cluster: 100,
            seed: 1,
            token: None,
        }
    }

    #[test]
    fn addresses_count_up_through_127_8() {
        let c = sample();
        assert_eq!(c.addr(0), Some("127.1.0.1:50051".parse().expect("addr")));
        assert_eq!(c.addr(255), Some("127.1.1.0:50051".parse().expect("addr")));
        assert_eq!(c.index_of(Ipv4Addr::new(127, 1, 0, 20)), Some(19));
        assert_eq!(c.index_of(Ipv4Addr::new(127, 1, 0, 21)), None);
        assert_eq!(c.index_of(Ipv4Addr::new(127, 0, 0, 1)), None);
        let top = SimConfig {
            first_addr: Ipv4Addr::new(127, 255, 255, 250),
            ..sample()
        };
        assert!(top.addr(4).is_some());
        assert!(
            top.addr(5).is_none(),
            "127.255.255.255 is the broadcast address"
        );
    }

    #[test]
    fn reports_every_problem() {
        let c = SimConfig {
            agents: 0,
            first_addr: Ipv4Addr::new(10, 0, 0, 1),
            port: 0,
            interval: Duration::from_millis(10),
            max_gpus: 99,
            hosts_per_cluster: 0,
            seed: 1,
            token: Some("short secret".into()),
        };
        let errs: Vec<String> = c
            .validate()
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect();
        let all = errs.join("\n");
        for want in [
            "--agents: '0' must be between 1",
            "--first-addr: '10.0.0.1' is not a loopback address",
            "--port: '0' must be a fixed port",
            "--interval-ms: '10' must be between 100 and 3600000",
            "--max-gpus: '99' must be between 0 and 16",
            "--hosts-per-cluster: '0' must be at least 1",
            "--token-file: '<hidden>' does not hold a valid token",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
        assert!(!all.contains("short secret"), "token leaked: {all}");
        assert!(sample().validate().is_ok());
        let crowded = SimConfig {
            agents: 10,
            first_addr: Ipv4Addr::new(127, 255, 255, 250),
            ..sample()
        };
        assert!(crowded.validate().is_err());
    }
}
