//! `smon-bench reconnect`: how soon a host is up again after its agent returns from an outage,
//! and what waiting for dead hosts costs the aggregator.
//!
//! Real agents (`smon-agent`, one per 127.3.0.x address) and a real aggregator polling them
//! and a number of dead hosts (127.4.x.y addresses where nothing listens: every connect is
//! refused). First the cost: over a window, the TCP connects the machine made per second
//! (`Tcp: ActiveOpens` of `/proc/net/snmp`, which counts refused connects too; the agents' own
//! connects are none, so on a quiet machine that is the aggregator's probes and reconnects)
//! and the aggregator's CPU. Then the agents are killed together, left down for the outage,
//! restarted on their ports, and the time from each restart to the host's row being `up` is
//! read from `/api/v1/hosts` every 50 ms.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

use crate::children::Children;
use crate::procfs;
use crate::workspace::{self, Build, Package, free_port, log_file};

/// `smon-bench reconnect` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconnectArgs {
    /// Real agents, killed and restarted together.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=200))]
    pub agents: u64,
    /// Dead hosts in the aggregator's config (nothing listens at their address).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub dead: u64,
    /// How long the agents stay down, seconds.
    #[arg(long, default_value_t = 40)]
    pub outage_s: u64,
    /// Outages in a row (each agent gives one figure per outage).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub rounds: u32,
    /// The window over which the dead hosts' probe cost is read, seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..))]
    pub cost_window_s: u64,
    /// Use the debug build (`target/debug`, built when stale) instead of the release one.
    #[arg(long)]
    pub debug: bool,
    /// Also write the report into this markdown file (between its reconnect markers).
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// The markers of this benchmark's section in BENCHMARKS.md.
const START: &str = "<!-- bench:reconnect:start -->";
/// The end marker.
const END: &str = "<!-- bench:reconnect:end -->";

/// The `ActiveOpens` counter of `/proc/net/snmp` text: TCP connects started (refused ones
/// included).
pub fn active_opens(snmp: &str) -> anyhow::Result<u64> {
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (
        tcp.next().context("no Tcp: header line")?,
        tcp.next().context("no Tcp: values line")?,
    );
    let i = names
        .split_whitespace()
        .position(|n| n == "ActiveOpens")
        .context("no ActiveOpens column")?;
    values
        .split_whitespace()
        .nth(i)
        .context("no ActiveOpens value")?
        .parse()
        .context("ActiveOpens is not a number")
}

fn read_active_opens() -> anyhow::Result<u64> {
    active_opens(&std::fs::read_to_string("/proc/net/snmp").context("/proc/net/snmp")?)
}

/// Nearest-rank percentile `p` of `v` (sorted here).
pub fn percentile(v: &[Duration], p: f64) -> Option<Duration> {
    let mut s = v.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s.get(rank - 1).copied()
}

struct Agent {
    addr: String,
    config: PathBuf,
    log: PathBuf,
    pid: Option<u32>,
}

fn spawn_agent(kids: &mut Children, bin: &Path, a: &mut Agent) -> anyhow::Result<()> {
    let pid = kids.spawn(
        &format!("smon-agent {}", a.addr),
        Command::new(bin)
            .arg("--no-supervise")
            .arg("--config")
            .arg(&a.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&a.log)?),
        false,
        Some(a.log.clone()),
    )?;
    a.pid = Some(pid);
    Ok(())
}

/// Runs the benchmark and prints (and with `--write`, writes) its report.
pub async fn run(args: ReconnectArgs) -> anyhow::Result<()> {
    let root = workspace::workspace_root();
    let build = Build::with_debug(args.debug);
    let bins = workspace::binaries(
        &root,
        build,
        &[
            Package {
                name: "smon-agent",
                sources: &["agent/src", "collect/src", "runtime/src", "proto"],
            },
            Package {
                name: "smon-aggregator",
                sources: crate::fleet::AGGREGATOR_SOURCES,
            },
        ],
    )?;
    let [agent_bin, aggregator_bin] =
        <[PathBuf; 2]>::try_from(bins).map_err(|_| anyhow::anyhow!("expected two binaries"))?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut kids = Children::default();
    let token: String = rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let mut agents = Vec::new();
    for i in 0..args.agents {
        let ip = format!("127.3.{}.{}", i / 250, i % 250 + 1);
        let addr = format!("{ip}:{}", free_port(&ip)?);
        let config = dir.path().join(format!("agent-{i}.json"));
        let cfg = json!({"monitor": {"mode": "node", "interval_ms": 1000, "grpc_listen": addr,
            "token": token, "gpu": "off"}});
        std::fs::write(&config, serde_json::to_vec_pretty(&cfg)?)?;
        let mut a = Agent {
            addr,
            config,
            log: dir.path().join(format!("agent-{i}.log")),
            pid: None,
        };
        spawn_agent(&mut kids, &agent_bin, &mut a)?;
        agents.push(a);
    }
    // A port nothing listens on at any address (a wildcard bind of it succeeds).
    let dead_port = free_port("0.0.0.0")?;
    let live: Vec<Value> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"name": format!("a{i}"), "address": a.addr, "token": token}))
        .collect();
    let dead: Vec<Value> = (0..args.dead)
        .map(|i| {
            json!({"name": format!("d{i}"),
                "address": format!("127.4.{}.{}:{dead_port}", i / 250, i % 250 + 1), "token": token})
        })
        .collect();
    let port = free_port("127.0.0.1")?;
    let mut clusters = vec![json!({"name": "live", "hosts": live})];
    if !dead.is_empty() {
        clusters.push(json!({"name": "dead", "hosts": dead}));
    }
    let cfg = json!({
        "server": {"host": "127.0.0.1", "port": port, "auth": {"public_read_only": true}},
        "monitor": {"mode": "app", "poll_interval_ms": 1000, "include_self": false,
            "clusters": clusters},
    });
    let config = dir.path().join("config_app.json");
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg)?)?;
    let log = dir.path().join("smon-aggregator.log");
    let aggregator = kids.spawn(
        "smon-aggregator",
        Command::new(&aggregator_bin)
            .arg("--no-supervise")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&log)?),
        true,
        Some(log),
    )?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = format!("http://127.0.0.1:{port}/api/v1/hosts");
    let statuses = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        (
                            r["id"].as_str().unwrap_or_default().to_owned(),
                            r["status"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let hosts = |kids: &mut Children| -> anyhow::Result<()> { kids.ensure_running(aggregator) };
    let fetch = || async {
        let r = http.get(&url).send().await?.error_for_status()?;
        anyhow::Ok(serde_json::from_str::<Value>(&r.text().await?)?)
    };
    let count = |v: &Value, cluster: &str, status: &str| {
        statuses(v)
            .iter()
            .filter(|(id, s)| id.starts_with(&format!("{cluster}:")) && s == status)
            .count() as u64
    };
    // Everything in place: the live hosts up, the dead ones down.
    let deadline = Instant::now() + Duration::from_secs(60 + args.dead / 50);
    loop {
        hosts(&mut kids)?;
        if let Ok(v) = fetch().await
            && count(&v, "live", "up") == args.agents
            && count(&v, "dead", "down") == args.dead
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the fleet did not settle (live hosts up, dead ones down) within a minute");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "{} agents up, {} dead hosts down; reading the probe cost for {} s.",
        args.agents, args.dead, args.cost_window_s
    );

    // The cost of the dead hosts, once their backoff reached its cap.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let (o1, c1, t1) = (
        read_active_opens()?,
        procfs::cpu_ticks(aggregator)?,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(args.cost_window_s)).await;
    let (o2, c2, secs) = (
        read_active_opens()?,
        procfs::cpu_ticks(aggregator)?,
        t1.elapsed().as_secs_f64(),
    );
    let connects_per_s = o2.saturating_sub(o1) as f64 / secs;
    let cpu = c2.saturating_sub(c1) as f64 / procfs::ticks_per_second() as f64 / secs * 100.0;

    // The outages.
    let mut times = Vec::new();
    for round in 1..=args.rounds {
        for a in &mut agents {
            if let Some(pid) = a.pid.take() {
                kids.stop(pid);
            }
        }
        let limit = Instant::now() + Duration::from_secs(15);
        while fetch().await.map_or(0, |v| count(&v, "live", "down")) < args.agents {
            ensure!(
                Instant::now() < limit,
                "the killed agents were not down within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!(
            "Round {round}: {} agents down; restarting them in {} s.",
            args.agents, args.outage_s
        );
        tokio::time::sleep(Duration::from_secs(args.outage_s)).await;
        let back = Instant::now();
        for a in &mut agents {
            spawn_agent(&mut kids, &agent_bin, a)?;
        }
        let mut pending: Vec<String> = (0..args.agents).map(|i| format!("live:a{i}")).collect();
        while !pending.is_empty() {
            hosts(&mut kids)?;
            if back.elapsed() > Duration::from_secs(60) {
                bail!("{pending:?} not up within 60 s of their agents' restart");
            }
            if let Ok(v) = fetch().await {
                let now = back.elapsed();
                let up: Vec<String> = statuses(&v)
                    .into_iter()
                    .filter(|(id, s)| s == "up" && pending.contains(id))
                    .map(|(id, _)| id)
                    .collect();
                for id in up {
                    times.push(now);
                    pending.retain(|p| *p != id);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{}", d.as_millis()));
    let section = format!(
        "{START}\n\
         ## Reconnecting: a host's return after an outage, and the cost of dead hosts\n\n\
         Reproduce: `cargo run -p smon-bench --release -- reconnect --write BENCHMARKS.md`. \
         This run: `{cmd}` ({build} build{rev}).\n\n\
         | figure | value |\n|---|---|\n\
         | up again after the agent's restart, after a {outage} s outage ({n} restarts), p50 / max | {p50} / {max} ms (target: within 3,000) |\n\
         | TCP connects a second with {dead} dead hosts (probes and backed-off full connects) | {cps:.0} ({per:.2} per dead host) |\n\
         | aggregator CPU meanwhile | {cpu:.1} % of a core |\n\
         {END}\n",
        cmd = workspace::command_line(),
        build = if args.debug { "debug" } else { "release" },
        rev = workspace::git_rev(&root, &["aggregator/src"]),
        outage = args.outage_s,
        n = times.len(),
        p50 = ms(percentile(&times, 50.0)),
        max = ms(percentile(&times, 100.0)),
        dead = args.dead,
        cps = connects_per_s,
        per = if args.dead > 0 {
            connects_per_s / args.dead as f64
        } else {
            0.0
        },
    );
    println!("{section}");
    if let Some(path) = &args.write {
        workspace::write_section(path, &section, START, END)?;
        eprintln!("Wrote {}.", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_opens_is_read_from_the_tcp_lines() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
            Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens\n\
            Tcp: 1 200 120000 -1 4242 17\nUdp: InDatagrams\nUdp: 3\n";
        assert_eq!(active_opens(snmp).expect("parsed"), 4242);
        assert!(active_opens("Tcp: A B\nTcp: 1 2\n").is_err());
        assert!(active_opens("").is_err());
    }

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = [900, 100, 500, 300, 700]
            .into_iter()
            .map(Duration::from_millis)
            .collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(500)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(900)));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
