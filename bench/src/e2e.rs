//! `smon-bench e2e`: a demo fleet of real agents, a real aggregator and a headless browser on
//! one machine; measures the latency from an agent's sample to the home page's DOM and the bytes
//! per second the page receives.
//!
//! Order of a run: the agents (127.0.0.2 and up, fake GPUs), the aggregator polling them, a
//! wait until every host is up, then `web/ui/tests/e2e-latency.mjs` (Node.js, playwright-core,
//! Debian chromium), which measures in the page and prints a JSON summary; then the report.
//! Every child, the browser script included, is stopped by the [`Children`] guard, whatever
//! happens.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

use crate::E2eArgs;
use crate::children::Children;
use crate::e2e_report::{self, E2eReport, Summary};
use crate::machine::{self, Machine};
use crate::scripts::{self, E2E as SCRIPT};
use crate::workspace::{self, Package, binary_size, command_line, free_port, log_file};

/// How long the fleet may take until every host is up.
const UP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the browser script may take beyond the window: starting chromium, loading the page.
const SCRIPT_SLACK: Duration = Duration::from_secs(120);

/// Runs the benchmark and prints (and with `--write`, stores) the report.
pub async fn run(args: E2eArgs) -> anyhow::Result<()> {
    let machine = Machine::describe();
    let load_start = loadavg();
    let root = workspace::workspace_root();
    let bins = workspace::release_binaries(
        &root,
        &[
            Package {
                name: "smon-agent",
                sources: &["agent/src", "proto"],
            },
            Package {
                name: "smon-aggregator",
                sources: crate::fleet::AGGREGATOR_SOURCES,
            },
        ],
    )?;
    let [agent_bin, aggregator_bin] = bins.as_slice() else {
        bail!("expected two binaries, got {}", bins.len());
    };
    let ui = root.join("web").join("ui");
    scripts::check_tools(&root, &args.node)?;

    // Declared before the guard so the guard, dropped first, stops the children before their
    // configs and logs go.
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut kids = Children::default();
    let mut pids = Vec::new();

    let gpus: Vec<u32> = (0..args.agents).map(|i| (i % 3) as u32).collect();
    let mut hosts = Vec::new();
    eprintln!(
        "Starting {} agents ({} ms interval) on 127.0.0.2 and up.",
        args.agents, args.interval_ms
    );
    let stagger = Duration::from_millis(e2e_report::stagger_ms(args.interval_ms, gpus.len()));
    for (i, gpu_count) in gpus.iter().enumerate() {
        // Each agent samples on its own schedule from its start: starting them apart spreads
        // their phases over the interval, as in a real fleet.
        if i > 0 {
            tokio::time::sleep(stagger).await;
        }
        let ip = format!("127.0.0.{}", i + 2);
        let addr = format!("{ip}:{}", free_port(&ip)?);
        let token: String = rand::random::<[u8; 16]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let name = format!("node{}", i + 1);
        let config = dir.path().join(format!("{name}.json"));
        let mut cfg = json!({"monitor": {
            "mode": "node",
            "interval_ms": args.interval_ms,
            "grpc_listen": addr,
            "token": token,
            "gpu": "off",
        }});
        // The fake source has 1 to 16 cards; a host without GPUs has them off.
        if *gpu_count > 0 {
            cfg["monitor"]["gpu"] = json!("fake");
            cfg["monitor"]["fake_gpu_count"] = json!(gpu_count);
        }
        write_json(&config, &cfg)?;
        let log = dir.path().join(format!("{name}.log"));
        pids.push(
            kids.spawn(
                &format!("smon-agent {name}"),
                Command::new(agent_bin)
                    .arg("--no-supervise") // measure the server itself, not a manager over it
                    .arg("--config")
                    .arg(&config)
                    .env("RUST_LOG", "warn")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log_file(&log)?),
                true,
                Some(log),
            )?,
        );
        hosts.push(json!({"name": name, "address": addr, "token": token}));
    }

    let port = free_port("127.0.0.1")?;
    let config = dir.path().join("config_app.json");
    let cfg = json!({
        "server": {"host": "127.0.0.1", "port": port, "auth": {"public_read_only": true}},
        "monitor": {
            "mode": "app",
            "poll_interval_ms": args.interval_ms,
            "include_self": false,
            "clusters": [{"name": "demo", "hosts": hosts}],
        },
    });
    write_json(&config, &cfg)?;
    let log = dir.path().join("smon-aggregator.log");
    let base = format!("http://127.0.0.1:{port}/");
    eprintln!("Starting the aggregator on {base}.");
    pids.push(
        kids.spawn(
            "smon-aggregator",
            Command::new(aggregator_bin)
                .arg("--no-supervise") // measure the server itself, not a manager over it
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file(&log)?),
            true,
            Some(log),
        )?,
    );
    wait_fleet_up(&mut kids, &pids, &base, gpus.len()).await?;
    // Past the start-up: a `Watch` stream begins with the sample at hand, and the hosts' first
    // rows arrive out of step.
    if args.warmup_s > 0 {
        eprintln!("Every host is up; warming up for {} s.", args.warmup_s);
        let until = Instant::now() + Duration::from_secs(args.warmup_s);
        while Instant::now() < until {
            for pid in &pids {
                kids.ensure_running(*pid)?;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    eprintln!("Measuring in the browser for {} s.", args.duration_s);
    let out_path = dir.path().join("e2e-latency.json");
    let err_path = dir.path().join("e2e-latency.log");
    let script = root.join(SCRIPT);
    let node = kids.spawn(
        "node e2e-latency.mjs",
        Command::new(&args.node)
            .arg(&script)
            .args(scripts::e2e_args(&base, args.duration_s, args.agents))
            .current_dir(&ui)
            .stdin(Stdio::null())
            .stdout(log_file(&out_path)?)
            .stderr(log_file(&err_path)?),
        // SIGTERM first: playwright then closes chromium before Node exits.
        true,
        Some(err_path.clone()),
    )?;
    let limit = Duration::from_secs(args.duration_s) + SCRIPT_SLACK;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = kids.try_wait(node)? {
            break status;
        }
        // A daemon that dies mid-window makes the figures meaningless: stop at once.
        for pid in &pids {
            kids.ensure_running(*pid)?;
        }
        if Instant::now() > deadline {
            bail!(
                "{SCRIPT} did not finish within {limit:?}; its output:\n{}",
                tail(&err_path)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    ensure!(
        status.success(),
        "{SCRIPT} failed ({status}); its output:\n{}",
        tail(&err_path)
    );
    let out = std::fs::read_to_string(&out_path)
        .with_context(|| format!("cannot read {}", out_path.display()))?;
    let summary = Summary::parse(&out).with_context(|| {
        format!(
            "{SCRIPT} printed an unexpected summary: {}",
            out.trim().chars().take(500).collect::<String>()
        )
    })?;
    for pid in &pids {
        kids.ensure_running(*pid)?;
    }
    let load_end = loadavg();
    drop(kids);

    let rev = workspace::git_rev(&root, &["agent", "aggregator", "web", "proto"]);
    let mut versions = vec![
        format!(
            "{}{}",
            machine::version_of(agent_bin).unwrap_or_else(|| "smon-agent".into()),
            binary_size(agent_bin)
        ),
        format!(
            "{}{}",
            machine::version_of(aggregator_bin).unwrap_or_else(|| "smon-aggregator".into()),
            binary_size(aggregator_bin)
        ),
        machine::version_of(&scripts::chromium())
            .unwrap_or_else(|| "chromium (version unknown)".into()),
        format!(
            "Node.js {}",
            machine::version_of(&args.node).unwrap_or_else(|| "(version unknown)".into())
        ),
    ];
    let rev = rev.trim().trim_start_matches('(').trim_end_matches(')');
    if !rev.is_empty() {
        versions.insert(2, format!("both built from {rev}"));
    }
    let report = E2eReport {
        machine,
        command_line: command_line(),
        versions,
        agents: gpus.len(),
        gpus,
        interval_ms: args.interval_ms,
        duration_s: args.duration_s,
        warmup_s: args.warmup_s,
        load: (load_start, load_end),
        summary,
    };
    let section = report.markdown();
    crate::print_report(&section)?;
    if let Some(path) = &args.write {
        workspace::write_section(path, &section, e2e_report::START, e2e_report::END)?;
        eprintln!("Wrote the e2e section of {}.", path.display());
    }
    Ok(())
}

/// Waits until `/api/v1/hosts` lists `n` hosts, all up, checking that no daemon has died.
async fn wait_fleet_up(
    kids: &mut Children,
    pids: &[u32],
    base: &str,
    n: usize,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .context("cannot build the HTTP client")?;
    let url = format!("{base}api/v1/hosts");
    let deadline = Instant::now() + UP_TIMEOUT;
    loop {
        for pid in pids {
            kids.ensure_running(*pid)?;
        }
        let last = match hosts_up(&http, &url).await {
            Ok((up, listed)) if up == n && listed == n => return Ok(()),
            Ok((up, listed)) => format!("{up} of {listed} hosts up"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("the fleet was not up within {UP_TIMEOUT:?}: {last} (GET {url})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (hosts up, hosts listed) from `GET /api/v1/hosts`.
async fn hosts_up(http: &reqwest::Client, url: &str) -> anyhow::Result<(usize, usize)> {
    let text = http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let v: Value = serde_json::from_str(&text).context("not JSON")?;
    let rows = v.as_array().context("not a JSON array")?;
    let up = rows.iter().filter(|r| r["status"] == "up").count();
    Ok((up, rows.len()))
}

fn write_json(path: &Path, v: &Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(v)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The last 20 lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The 1, 5 and 15 minute load averages (zeros when unreadable).
fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut v = text.split_whitespace().map(|w| w.parse().unwrap_or(0.0));
    [
        v.next().unwrap_or(0.0),
        v.next().unwrap_or(0.0),
        v.next().unwrap_or(0.0),
    ]
}
