//! `smon-bench agent`: starts smon-agent, node_exporter and Glances (web server mode) on
//! loopback, polls each at 1 Hz for the window, then in back-to-back bursts, and reports what
//! each cost.
//!
//! Order of a run: extra idle processes (a realistic process list), the three exporters, a
//! warm-up, the measured window (CPU and RSS are read around it), the bursts, the report.
//! Every child is stopped by the [`Children`] guard, whatever happens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use prost::Message as _;
use smon_proto::agent_client::AgentClient;
use smon_proto::{GetInfoRequest, GetSnapshotRequest, Parts};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::AgentArgs;
use crate::children::Children;
use crate::glances;
use crate::machine::{self, Machine};
use crate::procfs;
use crate::report::{self, AgentOnly, Exporter, Report};
use crate::stats::{self, Latency};
use crate::workspace::{self, Package, binary_size, command_line, free_port, log_file};

/// How long an exporter may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Per-request limit; a poll slower than this counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

type Client = AgentClient<InterceptedService<Channel, Bearer>>;

/// A peer polled over HTTP (node_exporter, Glances): where to poll it and its pid.
pub(crate) struct HttpPeer {
    /// Its name in messages, e.g. "node_exporter".
    pub name: &'static str,
    pub http: reqwest::Client,
    pub url: String,
    pub pid: u32,
}

/// One 1 Hz poll of the agent.
struct SmonPoll {
    latency: Duration,
    bytes: usize,
    seq: u64,
    collect_us: u64,
    process_count: u32,
    listed: usize,
}

/// What one exporter's polling in a window gave.
struct Series<T> {
    ok: Vec<T>,
    failed: usize,
    first_error: Option<String>,
    rss: Vec<u64>,
}

impl<T> Series<T> {
    fn new() -> Self {
        Self {
            ok: Vec::new(),
            failed: 0,
            first_error: None,
            rss: Vec::new(),
        }
    }

    fn fail(&mut self, e: impl std::fmt::Display) {
        self.failed += 1;
        self.first_error.get_or_insert_with(|| e.to_string());
    }

    fn rss_range(&self) -> (u64, u64) {
        let min = self.rss.iter().copied().min().unwrap_or(0);
        let max = self.rss.iter().copied().max().unwrap_or(0);
        (min, max)
    }
}

/// Runs the benchmark and prints (and with `--write`, stores) the report.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let report = measure(&args).await?;
    let section = report.markdown();
    println!("{section}");
    if let Some(path) = &args.write {
        workspace::write_section(path, &section, report::START, report::END)?;
        eprintln!("Wrote the agent section of {}.", path.display());
    }
    Ok(())
}

/// Runs the benchmark and returns its figures.
pub async fn measure(args: &AgentArgs) -> anyhow::Result<Report> {
    let machine = Machine::describe();
    let root = workspace::workspace_root();
    let agent_bin = agent_binary(args.agent_bin.as_deref(), &root)?;
    let node_bin = args
        .node_exporter
        .is_file()
        .then(|| args.node_exporter.clone());
    if node_bin.is_none() {
        eprintln!(
            "node_exporter not found at {}: install it with `apt-get install -y \
             prometheus-node-exporter` (Debian) or pass --node-exporter PATH. Going on without \
             it.",
            args.node_exporter.display()
        );
    }
    let glances_bin = if args.no_glances {
        Err("left out (--no-glances)".to_owned())
    } else {
        glances::binary(args.glances.as_deref(), &root).map_err(|e| {
            eprintln!("Glances is not available: {e:#}. Going on without it.");
            format!("not available ({e:#})")
        })
    };

    // Declared before the guard so the guard, dropped first, stops the children before their
    // config and logs go.
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut kids = Children::default();

    if args.extra_procs > 0 {
        eprintln!("Starting {} idle `sleep 3600` processes.", args.extra_procs);
    }
    for _ in 0..args.extra_procs {
        kids.spawn(
            "sleep",
            Command::new("sleep")
                .arg("3600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            false,
            None,
        )?;
    }

    let token: String = rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let agent_port = free_port("127.0.0.1")?;
    let config = dir.path().join("config_node.json");
    let cfg = serde_json::json!({"monitor": {
        "mode": "node",
        "interval_ms": 1000,
        "grpc_listen": format!("127.0.0.1:{agent_port}"),
        "auth": "token",
        "token": token,
        "gpu": "off",
    }});
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg)?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    let agent_log = dir.path().join("smon-agent.log");
    eprintln!(
        "Starting {} on 127.0.0.1:{agent_port}.",
        agent_bin.display()
    );
    let agent_pid = kids.spawn(
        "smon-agent",
        Command::new(&agent_bin)
            .arg("--no-supervise") // measure the server itself, not a manager over it
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&agent_log)?),
        true,
        Some(agent_log),
    )?;

    // The HTTP peers, in column order; each either runs or says why not.
    let mut peers: Vec<Result<HttpPeer, String>> = Vec::new();
    peers.push(match &node_bin {
        Some(bin) => {
            let port = free_port("127.0.0.1")?;
            let log = dir.path().join("node_exporter.log");
            eprintln!("Starting {} on 127.0.0.1:{port}.", bin.display());
            let pid = kids.spawn(
                "node_exporter",
                Command::new(bin)
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log_file(&log)?),
                true,
                Some(log),
            )?;
            Ok(HttpPeer {
                name: "node_exporter",
                http: http_client()?,
                url: format!("http://127.0.0.1:{port}/metrics"),
                pid,
            })
        }
        None => Err("not installed".to_owned()),
    });
    peers.push(match &glances_bin {
        Ok(bin) => {
            let port = free_port("127.0.0.1")?;
            let log = dir.path().join("glances.log");
            eprintln!("Starting {} -w on 127.0.0.1:{port}.", bin.display());
            let pid = kids.spawn(
                "glances",
                Command::new(bin)
                    .args(glances::server_args(port))
                    .stdin(Stdio::null())
                    .stdout(log_file(&dir.path().join("glances.out"))?)
                    .stderr(log_file(&log)?),
                true,
                Some(log),
            )?;
            Ok(HttpPeer {
                name: "Glances",
                http: http_client()?,
                url: format!("http://127.0.0.1:{port}{}", glances::API_PATH),
                pid,
            })
        }
        Err(why) => Err(why.clone()),
    });

    let mut client = connect_agent(&mut kids, agent_pid, agent_port, &token).await?;
    let info = client
        .get_info(GetInfoRequest {})
        .await
        .context("GetInfo")?
        .into_inner();
    for p in peers.iter().flatten() {
        wait_http(&mut kids, p).await?;
    }
    let live: Vec<&HttpPeer> = peers.iter().flatten().collect();

    if args.warmup_s > 0 {
        eprintln!("Warming up for {} s.", args.warmup_s);
        let (s, hs) = window(&mut client, &live, args.warmup_s, agent_pid).await;
        if s.ok.is_empty() {
            bail!(
                "every GetSnapshot failed during the warm-up: {}",
                s.first_error.unwrap_or_default()
            );
        }
        for (p, h) in live.iter().zip(hs) {
            if let Some(e) = h.first_error {
                eprintln!("{} failed during the warm-up: {e}", p.name);
            }
        }
    }
    kids.ensure_running(agent_pid)?;
    for p in &live {
        kids.ensure_running(p.pid)?;
    }

    eprintln!(
        "Polling smon-agent{} at 1 Hz for {} s.",
        live.iter()
            .map(|p| format!(", {}", p.name))
            .collect::<String>(),
        args.duration_s
    );
    let ticks0 = procfs::cpu_ticks(agent_pid)?;
    let peer_ticks0 = live
        .iter()
        .map(|p| procfs::cpu_ticks(p.pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let t0 = Instant::now();
    let (smon_series, peer_series) = window(&mut client, &live, args.duration_s, agent_pid).await;
    let wall = t0.elapsed().as_secs_f64();
    let ticks1 = procfs::cpu_ticks(agent_pid)?;
    let peer_ticks1 = live
        .iter()
        .map(|p| procfs::cpu_ticks(p.pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let smon_mem = procfs::memory(agent_pid)?;
    let peer_mem = live
        .iter()
        .map(|p| procfs::memory(p.pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cpu = |a: u64, b: u64| (b - a) as f64 / procfs::ticks_per_second() as f64 / wall * 100.0;
    if smon_series.ok.is_empty() {
        bail!(
            "every GetSnapshot failed in the window: {}",
            smon_series.first_error.unwrap_or_default()
        );
    }
    if let Some(e) = &smon_series.first_error {
        eprintln!(
            "{} GetSnapshot calls failed; the first: {e}",
            smon_series.failed
        );
    }
    for (p, s) in live.iter().zip(&peer_series) {
        if let Some(e) = &s.first_error {
            eprintln!("{} polls of {} failed; the first: {e}", s.failed, p.name);
        }
    }

    eprintln!("Bursts: {} calls of each kind, back to back.", args.burst);
    let (detail_burst, _) = smon_burst(&mut client, Some(Parts::DETAIL), args.burst).await?;
    let (summary_burst, summary_bytes) = smon_burst(&mut client, None, args.burst).await?;
    let mut peer_bursts = Vec::new();
    for p in &live {
        // Glances answers in tens of milliseconds: a burst as long as smon's would take
        // minutes and measure the same thing.
        let calls = if p.name == "Glances" {
            args.burst.min(200)
        } else {
            args.burst
        };
        peer_bursts.push(http_burst(p, calls).await?);
    }
    let smon_hwm = procfs::memory(agent_pid)?.hwm;
    let peer_hwm = live
        .iter()
        .map(|p| procfs::memory(p.pid).map(|m| m.hwm))
        .collect::<anyhow::Result<Vec<_>>>()?;
    kids.ensure_running(agent_pid)?;

    // One entry per distinct sample: at 1 Hz a poll may see the same sample twice.
    let samples: BTreeMap<u64, (u64, u32)> = smon_series
        .ok
        .iter()
        .map(|p| (p.seq, (p.collect_us, p.process_count)))
        .collect();
    let collect: Vec<Duration> = samples
        .values()
        .map(|(us, _)| Duration::from_micros(*us))
        .collect();
    let listed = stats::mean(smon_series.ok.iter().map(|p| p.listed as f64)).unwrap_or(0.0);
    let agent = AgentOnly {
        summary_burst,
        summary_bytes,
        collect: Latency::of(&collect).context("no samples")?,
        collect_mean_us: stats::mean(samples.values().map(|(us, _)| *us as f64)).unwrap_or(0.0),
        processes_mean: stats::mean(samples.values().map(|(_, n)| f64::from(*n))).unwrap_or(0.0),
        us_per_process: stats::mean(
            samples
                .values()
                .filter(|(_, n)| *n > 0)
                .map(|(us, n)| *us as f64 / f64::from(*n)),
        )
        .unwrap_or(0.0),
    };
    let smon = Exporter {
        version: format!(
            "smon-agent {}{}{}",
            info.agent_version,
            workspace::git_rev(&root, &["agent", "proto"]),
            binary_size(&agent_bin)
        ),
        memory: smon_mem,
        rss_range: smon_series.rss_range(),
        hwm_after_burst: smon_hwm,
        cpu_percent: cpu(ticks0, ticks1),
        payload: format!(
            "every part: {listed:.0} processes, {} cores",
            info.cpu_logical_cores
        ),
        bytes_per_poll: stats::mean(smon_series.ok.iter().map(|p| p.bytes as f64)).unwrap_or(0.0),
        poll: Latency::of(&smon_series.ok.iter().map(|p| p.latency).collect::<Vec<_>>())
            .context("no polls")?,
        failed_polls: smon_series.failed,
        polls: smon_series.ok.len() + smon_series.failed,
        burst: detail_burst,
        burst_calls: args.burst,
    };

    let mut results = Vec::new();
    let mut live_i = 0;
    for p in &peers {
        results.push(match p {
            Err(why) => Err(why.clone()),
            Ok(peer) => {
                let i = live_i;
                live_i += 1;
                let s = &peer_series[i];
                let (bytes, lat): (Vec<f64>, Vec<Duration>) =
                    s.ok.iter().map(|(b, l)| (*b as f64, *l)).unzip();
                match Latency::of(&lat) {
                    Some(poll) => Ok(Exporter {
                        version: peer_version(peer.name, node_bin.as_deref(), &glances_bin),
                        memory: peer_mem[i],
                        rss_range: s.rss_range(),
                        hwm_after_burst: peer_hwm[i],
                        cpu_percent: cpu(peer_ticks0[i], peer_ticks1[i]),
                        payload: if peer.name == "Glances" {
                            format!(
                                "`GET {}`: every plugin, process list included",
                                glances::API_PATH
                            )
                        } else {
                            "default collectors, no process list".into()
                        },
                        bytes_per_poll: stats::mean(bytes).unwrap_or(0.0),
                        poll,
                        failed_polls: s.failed,
                        polls: s.ok.len() + s.failed,
                        burst: peer_bursts[i],
                        burst_calls: peer_bursts[i].n as u64,
                    }),
                    None => Err("every poll failed".to_owned()),
                }
            }
        });
    }
    let mut results = results.into_iter();
    let node = results.next().unwrap_or_else(|| Err("not run".into()));
    let glances = results.next().unwrap_or_else(|| Err("not run".into()));

    let report = Report {
        machine,
        command_line: command_line(),
        window_s: args.duration_s,
        warmup_s: args.warmup_s,
        burst_calls: args.burst,
        extra_procs: args.extra_procs,
        smon,
        agent,
        node,
        glances,
    };
    drop(kids);
    Ok(report)
}

/// "node_exporter, version 1.5.0 ..., 13.1 MiB binary" or "Glances 4.5.8 (PyPI, ...)".
fn peer_version(
    name: &str,
    node_bin: Option<&Path>,
    glances_bin: &Result<PathBuf, String>,
) -> String {
    match (name, node_bin, glances_bin) {
        ("Glances", _, Ok(bin)) => glances::version(bin),
        (_, Some(b), _) => {
            let v =
                machine::version_of(b).unwrap_or_else(|| "node_exporter (version unknown)".into());
            format!("{v}{}", binary_size(b))
        }
        _ => name.to_owned(),
    }
}

/// The HTTP client for one peer: one keep-alive connection, no proxy, no gzip.
fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("cannot build the HTTP client")
}

/// Polls the agent once a second for `secs` seconds, and each peer as often, spread over the
/// second (peer `i` of `n` starts `i / (n + 1)` of a second later), and reads each one's RSS
/// once a second.
async fn window(
    client: &mut Client,
    peers: &[&HttpPeer],
    secs: u64,
    agent_pid: u32,
) -> (Series<SmonPoll>, Vec<Series<(usize, Duration)>>) {
    let start = tokio::time::Instant::now();
    let smon = async {
        let mut s = Series::new();
        let mut tick = tokio::time::interval_at(start, Duration::from_secs(1));
        for _ in 0..secs {
            tick.tick().await;
            let t = Instant::now();
            let req = GetSnapshotRequest {
                parts: Some(Parts::DETAIL),
            };
            match client.get_snapshot(req).await {
                Ok(r) => {
                    let latency = t.elapsed();
                    let snap = r.into_inner();
                    s.ok.push(SmonPoll {
                        latency,
                        bytes: snap.encoded_len(),
                        seq: snap.seq,
                        collect_us: snap.collect_us,
                        process_count: snap.process_count,
                        listed: snap.processes.len(),
                    });
                }
                Err(e) => s.fail(e),
            }
            if let Ok(m) = procfs::memory(agent_pid) {
                s.rss.push(m.rss);
            }
        }
        s
    };
    let n = peers.len() as u64;
    let poll = |i: usize| async move {
        let p = peers.get(i)?;
        let mut s = Series::new();
        let offset = Duration::from_millis(1000 * (i as u64 + 1) / (n + 1));
        let mut tick = tokio::time::interval_at(start + offset, Duration::from_secs(1));
        for _ in 0..secs {
            tick.tick().await;
            match get_metrics(p).await {
                Ok(v) => s.ok.push(v),
                Err(e) => s.fail(format!("{e:#}")),
            }
            if let Ok(m) = procfs::memory(p.pid) {
                s.rss.push(m.rss);
            }
        }
        Some(s)
    };
    // Joined, not spawned: the single-threaded runtime interleaves them. Two peers at most.
    let (s, h0, h1) = tokio::join!(smon, poll(0), poll(1));
    let h: Vec<_> = [h0, h1].into_iter().flatten().collect();
    // The window is whole seconds: wait out the last one before CPU time is read.
    tokio::time::sleep_until(start + Duration::from_secs(secs)).await;
    (s, h)
}

/// One `GET` of the peer's URL: (body bytes, latency including the body).
async fn get_metrics(n: &HttpPeer) -> anyhow::Result<(usize, Duration)> {
    let t = Instant::now();
    let body = n
        .http
        .get(&n.url)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    Ok((body.len(), t.elapsed()))
}

/// `calls` back-to-back `GetSnapshot` calls: latencies and the mean reply size.
async fn smon_burst(
    client: &mut Client,
    parts: Option<Parts>,
    calls: u64,
) -> anyhow::Result<(Latency, f64)> {
    let mut lat = Vec::with_capacity(calls as usize);
    let mut bytes = 0usize;
    for _ in 0..calls {
        let t = Instant::now();
        let snap = client
            .get_snapshot(GetSnapshotRequest { parts })
            .await
            .context("GetSnapshot in the burst")?
            .into_inner();
        lat.push(t.elapsed());
        bytes += snap.encoded_len();
    }
    let l = Latency::of(&lat).context("no calls")?;
    Ok((l, bytes as f64 / lat.len() as f64))
}

/// `calls` back-to-back `GET`s of the peer's URL.
async fn http_burst(n: &HttpPeer, calls: u64) -> anyhow::Result<Latency> {
    let mut lat = Vec::with_capacity(calls as usize);
    for _ in 0..calls {
        let (_, l) = get_metrics(n)
            .await
            .with_context(|| format!("GET {} in the burst", n.url))?;
        lat.push(l);
    }
    Latency::of(&lat).context("no calls")
}

/// Connects to the agent, retrying until it answers `GetInfo` or [`READY_TIMEOUT`] passes.
async fn connect_agent(
    kids: &mut Children,
    pid: u32,
    port: u16,
    token: &str,
) -> anyhow::Result<Client> {
    let bearer = Bearer(
        format!("Bearer {token}")
            .parse()
            .context("token is not valid metadata")?,
    );
    let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        kids.ensure_running(pid)?;
        let last = match endpoint.connect().await {
            Ok(ch) => {
                let mut c = AgentClient::with_interceptor(ch, bearer.clone());
                match c.get_info(GetInfoRequest {}).await {
                    Ok(_) => return Ok(c),
                    Err(e) => e.to_string(),
                }
            }
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("smon-agent did not answer within {READY_TIMEOUT:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the peer answers its `GET`.
async fn wait_http(kids: &mut Children, n: &HttpPeer) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        kids.ensure_running(n.pid)?;
        let last = match get_metrics(n).await {
            Ok(_) => return Ok(()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("{} did not answer within {READY_TIMEOUT:?}: {last}", n.name);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The agent binary: the one given, or this workspace's release build, built when missing.
fn agent_binary(given: Option<&Path>, root: &Path) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        ensure!(
            p.is_file(),
            "{}: no such file (build it with `cargo build --release -p smon-agent`)",
            p.display()
        );
        return Ok(p.to_path_buf());
    }
    let bins = workspace::release_binaries(
        root,
        &[Package {
            name: "smon-agent",
            sources: &["agent/src"],
        }],
    )?;
    bins.into_iter().next().context("no agent binary")
}
