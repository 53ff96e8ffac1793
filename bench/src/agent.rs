//! `smon-bench agent`: starts smon-agent, node_exporter and Glances (web server mode) on
//! loopback, polls each at 1 Hz for the window, then in back-to-back bursts, and reports what
//! each cost.
//!
//! The agent runs as shipped: `manager.mode: self`, a manager process that runs the server as
//! its child, so its memory is the PSS summed over both (RSS would count the pages of their
//! one binary twice), and its CPU the sum of both.
//!
//! Order of a run: extra idle processes (a realistic process list), the three exporters (the
//! agent with its single-host web view on), a warm-up, the measured window (CPU and memory are
//! read around it), the bursts; then the agent again with the web view off, polled the same
//! way for a second window; the report. Every child is stopped by the [`Children`] guard,
//! whatever happens.

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
use crate::procfs::{self, Memory, Pss};
use crate::report::{self, AgentOnly, Exporter, ProcMemory, Report, WebOff};
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
    /// RSS summed over the exporter's processes, once a second.
    rss: Vec<u64>,
    /// PSS summed over them.
    pss: Vec<u64>,
}

impl<T> Series<T> {
    fn new() -> Self {
        Self {
            ok: Vec::new(),
            failed: 0,
            first_error: None,
            rss: Vec::new(),
            pss: Vec::new(),
        }
    }

    /// Reads the memory of `pids` into the series.
    fn read_memory(&mut self, pids: &[u32]) {
        if let Ok((m, p)) = memory_of(pids) {
            self.rss.push(m.rss);
            self.pss.push(p.total);
        }
    }

    fn fail(&mut self, e: impl std::fmt::Display) {
        self.failed += 1;
        self.first_error.get_or_insert_with(|| e.to_string());
    }

    fn rss_range(&self) -> (u64, u64) {
        range(&self.rss)
    }

    fn pss_range(&self) -> (u64, u64) {
        range(&self.pss)
    }
}

fn range(v: &[u64]) -> (u64, u64) {
    let min = v.iter().copied().min().unwrap_or(0);
    let max = v.iter().copied().max().unwrap_or(0);
    (min, max)
}

/// The agent as shipped: the manager and the server it runs (`manager.mode: self`).
#[derive(Debug, Clone, Copy)]
struct AgentProcs {
    manager: u32,
    server: u32,
}

impl AgentProcs {
    /// Both pids, the server first.
    fn pids(&self) -> [u32; 2] {
        [self.server, self.manager]
    }

    /// Fails when either has exited, or the manager has replaced the server (a restart would
    /// put a young process into the figures).
    fn ensure_running(&self, kids: &mut Children) -> anyhow::Result<()> {
        kids.ensure_running(self.manager)?;
        let now = procfs::children(self.manager);
        ensure!(
            now == [self.server],
            "the agent's manager (pid {}) no longer runs its server {} alone (children now: \
             {now:?}): the server exited or was restarted",
            self.manager,
            self.server
        );
        Ok(())
    }
}

/// Memory summed over `pids`: the `status` figures (RSS counts shared pages once per process)
/// and PSS (shared pages split between the processes).
fn memory_of(pids: &[u32]) -> anyhow::Result<(Memory, Pss)> {
    let mut m = Memory::default();
    let mut p = Pss::default();
    for &pid in pids {
        let one = procfs::memory(pid)?;
        m.rss += one.rss;
        m.hwm += one.hwm;
        m.anon += one.anon;
        m.file += one.file;
        m.threads += one.threads;
        p = p + procfs::pss(pid)?;
    }
    Ok((m, p))
}

/// CPU ticks summed over `pids`.
fn ticks_of(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|&p| procfs::cpu_ticks(p)).sum()
}

/// Each process's memory, named.
fn per_process(named: &[(&str, u32)]) -> anyhow::Result<Vec<ProcMemory>> {
    named
        .iter()
        .map(|&(name, pid)| {
            Ok(ProcMemory {
                name: name.to_owned(),
                rss: procfs::memory(pid)?.rss,
                pss: procfs::pss(pid)?.total,
            })
        })
        .collect()
}

/// Runs the benchmark and prints (and with `--write`, stores) the report.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let report = measure(&args).await?;
    let section = report.markdown();
    crate::print_report(&section)?;
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
    // Declared before the children: removed after them (a cgroup with tasks cannot go).
    let _containers: Option<crate::cgroups::TestContainers>;
    let mut kids = Children::default();

    if args.extra_procs > 0 {
        eprintln!("Starting {} idle `sleep 3600` processes.", args.extra_procs);
    }
    if args.containers > args.extra_procs {
        anyhow::bail!(
            "--containers {} needs as many --extra-procs (each container holds one)",
            args.containers
        );
    }
    let mut sleepers = Vec::new();
    for _ in 0..args.extra_procs {
        sleepers.push(
            kids.spawn(
                "sleep",
                Command::new("sleep")
                    .arg("3600")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
                false,
                None,
            )?,
        );
    }
    _containers = if args.containers > 0 {
        eprintln!(
            "Making {} Docker-shaped cgroups, one idle process in each.",
            args.containers
        );
        Some(crate::cgroups::TestContainers::make(
            &sleepers[..args.containers],
        )?)
    } else {
        None
    };

    let token: String = rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (agent, agent_port, web_port) =
        start_agent(&mut kids, dir.path(), &agent_bin, &token, true)?;
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

    let mut client = connect_agent(&mut kids, agent.manager, agent_port, &token).await?;
    let agent = find_server(&mut kids, agent.manager).await?;
    check_web_view(web_port).await?;
    eprintln!(
        "smon-agent runs as manager {} and server {}.",
        agent.manager, agent.server
    );
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
        let (s, hs) = window(&mut client, &live, args.warmup_s, &agent.pids()).await;
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
    agent.ensure_running(&mut kids)?;
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
    let ticks0 = ticks_of(&agent.pids())?;
    let peer_ticks0 = live
        .iter()
        .map(|p| procfs::cpu_ticks(p.pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let t0 = Instant::now();
    let (smon_series, peer_series) =
        window(&mut client, &live, args.duration_s, &agent.pids()).await;
    let wall = t0.elapsed().as_secs_f64();
    let ticks1 = ticks_of(&agent.pids())?;
    let peer_ticks1 = live
        .iter()
        .map(|p| procfs::cpu_ticks(p.pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (smon_mem, smon_pss) = memory_of(&agent.pids())?;
    let smon_parts = per_process(&[("server", agent.server), ("manager", agent.manager)])?;
    let peer_mem = live
        .iter()
        .map(|p| memory_of(&[p.pid]))
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
    let smon_hwm = memory_of(&agent.pids())?.0.hwm;
    let peer_hwm = live
        .iter()
        .map(|p| procfs::memory(p.pid).map(|m| m.hwm))
        .collect::<anyhow::Result<Vec<_>>>()?;
    agent.ensure_running(&mut kids)?;

    let web_off = if args.no_web_off {
        None
    } else {
        Some(web_off_pass(&mut kids, dir.path(), &agent_bin, &token, agent, args).await?)
    };

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
        pss: smon_pss,
        pss_range: smon_series.pss_range(),
        processes: smon_parts,
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
                        memory: peer_mem[i].0,
                        pss: peer_mem[i].1,
                        pss_range: s.pss_range(),
                        processes: Vec::new(),
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
        web_off,
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
/// and PSS (summed over its processes) once a second.
async fn window(
    client: &mut Client,
    peers: &[&HttpPeer],
    secs: u64,
    agent_pids: &[u32],
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
            s.read_memory(agent_pids);
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
            s.read_memory(&[p.pid]);
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

/// Starts the agent as shipped (`manager.mode: self`, no `--no-supervise`) with its web view
/// on or off; returns its manager's pid (the server is found with [`find_server`]) and its gRPC
/// port.
fn start_agent(
    kids: &mut Children,
    dir: &Path,
    bin: &Path,
    token: &str,
    web: bool,
) -> anyhow::Result<(AgentProcs, u16, u16)> {
    let port = free_port("127.0.0.1")?;
    let http_port = free_port("127.0.0.1")?;
    let tag = if web { "web-on" } else { "web-off" };
    let config = dir.join(format!("config_node-{tag}.json"));
    let cfg = serde_json::json!({
        "server": {"host": "127.0.0.1", "port": http_port, "web": web},
        "manager": {"mode": "self"},
        "monitor": {
            "mode": "node",
            "interval_ms": 1000,
            "grpc_listen": format!("127.0.0.1:{port}"),
            "auth": "token",
            "token": token,
            "gpu": "off",
        },
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg)?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    let log = dir.join(format!("smon-agent-{tag}.log"));
    eprintln!(
        "Starting {} on 127.0.0.1:{port}, web view {}.",
        bin.display(),
        if web {
            format!("on 127.0.0.1:{http_port}")
        } else {
            "off".to_owned()
        }
    );
    let manager = kids.spawn(
        "smon-agent",
        Command::new(bin)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&log)?),
        true,
        Some(log),
    )?;
    Ok((AgentProcs { manager, server: 0 }, port, http_port))
}

/// Checks that the web view answers on `port` (its page, or a login redirect): the figures
/// with the web view on are not taken without it.
async fn check_web_view(port: u16) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/");
    let http = http_client()?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last = match http.get(&url).send().await {
            Ok(r) if !r.status().is_server_error() => return Ok(()),
            Ok(r) => format!("status {}", r.status()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("the agent's web view does not answer GET {url}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The server the manager `manager` runs: its one child, once it answers (call after
/// [`connect_agent`]).
async fn find_server(kids: &mut Children, manager: u32) -> anyhow::Result<AgentProcs> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        kids.ensure_running(manager)?;
        match procfs::children(manager).as_slice() {
            [server] => {
                return Ok(AgentProcs {
                    manager,
                    server: *server,
                });
            }
            other if Instant::now() > deadline => bail!(
                "smon-agent (pid {manager}) does not run one server process: children \
                 {other:?} (is manager.mode self?)"
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The second pass: the agent with its web view off, alone, polled at 1 Hz for the same
/// window after the same warm-up. The first agent is stopped first, so that no page of the
/// binary is shared with it.
async fn web_off_pass(
    kids: &mut Children,
    dir: &Path,
    bin: &Path,
    token: &str,
    first: AgentProcs,
    args: &AgentArgs,
) -> anyhow::Result<WebOff> {
    kids.stop(first.manager);
    let (agent, port, _) = start_agent(kids, dir, bin, token, false)?;
    let mut client = connect_agent(kids, agent.manager, port, token).await?;
    let agent = find_server(kids, agent.manager).await?;
    if args.warmup_s > 0 {
        eprintln!("Web view off: warming up for {} s.", args.warmup_s);
        window(&mut client, &[], args.warmup_s, &agent.pids()).await;
    }
    agent.ensure_running(kids)?;
    eprintln!(
        "Web view off: polling smon-agent at 1 Hz for {} s.",
        args.duration_s
    );
    let ticks0 = ticks_of(&agent.pids())?;
    let t0 = Instant::now();
    let (series, _) = window(&mut client, &[], args.duration_s, &agent.pids()).await;
    let wall = t0.elapsed().as_secs_f64();
    let ticks1 = ticks_of(&agent.pids())?;
    let (memory, pss) = memory_of(&agent.pids())?;
    let processes = per_process(&[("server", agent.server), ("manager", agent.manager)])?;
    agent.ensure_running(kids)?;
    ensure!(
        !series.ok.is_empty(),
        "every GetSnapshot failed with the web view off: {}",
        series.first_error.unwrap_or_default()
    );
    kids.stop(agent.manager);
    Ok(WebOff {
        memory,
        pss,
        pss_range: series.pss_range(),
        processes,
        cpu_percent: (ticks1 - ticks0) as f64 / procfs::ticks_per_second() as f64 / wall * 100.0,
        failed_polls: series.failed,
        polls: series.ok.len() + series.failed,
    })
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
