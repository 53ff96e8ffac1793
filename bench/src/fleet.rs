//! A simulated fleet under a real aggregator: `smon-sim` (thousands of fake agents speaking
//! the real gRPC contract on 127.1.x.y) and `smon-aggregator --no-supervise` polling them, plus
//! what the fleet benchmarks read while it runs: the aggregator's CPU and RSS once a second
//! from `/proc`, its staleness histogram from `/metrics`, the rows of `/api/v1/hosts`, and the
//! Node.js scripts under `web/ui/tests/` run against it.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

use crate::children::Children;
use crate::procfs;
use crate::scripts;
use crate::staleness::{self, Buckets};
use crate::workspace::{self, Build, Package, free_port, log_file};

/// The first simulated agent's address; the others count up from it.
pub const FIRST_ADDR: &str = "127.1.0.1";

/// Where the aggregator's code lives, relative to the workspace root: a change there makes a
/// built aggregator stale. (Folders that do not exist in this tree are skipped.)
pub const AGGREGATOR_SOURCES: &[&str] = &[
    "aggregator/src",
    "web/src",
    "web/ui/src",
    "runtime/src",
    "collect/src",
    "api/src",
    "agent/src",
    "proto",
];

/// The aggregator's `/metrics` histogram of sample → store times.
pub const STALENESS_METRIC: &str = "smon_poll_latency_seconds";

/// What a fleet benchmark gives a script beyond its window to start and finish.
pub const SCRIPT_SLACK: Duration = Duration::from_secs(300);

/// The binaries a fleet needs.
pub struct Bins {
    /// smon-sim.
    pub sim: PathBuf,
    /// smon-aggregator.
    pub aggregator: PathBuf,
}

impl Bins {
    /// This workspace's builds of both (see [`Build`] for when they are built).
    pub fn get(root: &Path, build: Build) -> anyhow::Result<Self> {
        ensure!(
            root.join("sim").join("Cargo.toml").is_file(),
            "{}: the fleet simulator (crate sim/, smon-sim) is not in this workspace",
            root.join("sim").display()
        );
        let bins = workspace::binaries(
            root,
            build,
            &[
                Package {
                    name: "smon-sim",
                    sources: &["sim/src", "proto"],
                },
                Package {
                    name: "smon-aggregator",
                    sources: AGGREGATOR_SOURCES,
                },
            ],
        )?;
        let [sim, aggregator] = <[PathBuf; 2]>::try_from(bins)
            .map_err(|b| anyhow::anyhow!("expected two binaries, got {}", b.len()))?;
        Ok(Self { sim, aggregator })
    }
}

/// What fleet to start.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Simulated agents.
    pub agents: u64,
    /// Their sampling interval and the aggregator's poll interval, ms.
    pub interval_ms: u64,
    /// The first simulated agent's address; the others count up from it.
    pub first_addr: String,
    /// Hosts per cluster (`smon-sim --hosts-per-cluster`); `None`: the simulator's default.
    pub hosts_per_cluster: Option<u64>,
    /// How long the fleet may take until every host is up.
    pub up_timeout: Duration,
    /// The aggregator's `storage` block (history, remote write); `None`: the binary's default.
    pub storage: Option<Value>,
    /// The aggregator's `alerts` block (rules, channels); `None`: none.
    pub alerts: Option<Value>,
}

impl FleetSpec {
    /// `agents` simulated agents from [`FIRST_ADDR`] up, in the simulator's clusters, given a
    /// minute plus 10 ms per agent to come up.
    pub fn new(agents: u64, interval_ms: u64) -> Self {
        Self {
            agents,
            interval_ms,
            first_addr: FIRST_ADDR.to_owned(),
            hosts_per_cluster: None,
            up_timeout: Duration::from_secs(60) + Duration::from_millis(agents * 10),
            storage: None,
            alerts: None,
        }
    }
}

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// Wall clock, Unix ms.
    pub t_ms: u64,
    /// `utime + stime`, clock ticks.
    pub ticks: u64,
    /// `VmRSS`, bytes.
    pub rss: u64,
}

/// Readings of the aggregator and the simulator, once a second, taken by a task of the
/// benchmark's runtime.
#[derive(Debug, Default)]
pub struct Readings {
    /// The aggregator.
    pub aggregator: Vec<ProcSample>,
    /// The simulator.
    pub sim: Vec<ProcSample>,
}

/// A running fleet. Dropping it stops the aggregator and the simulator.
pub struct Fleet {
    // Declared before `dir` so that the children stop before their configs and logs go.
    kids: Children,
    readings: Arc<Mutex<Readings>>,
    sampler: tokio::task::JoinHandle<()>,
    /// Simulated agents.
    pub agents: u64,
    up_timeout: Duration,
    /// The aggregator's pid.
    pub aggregator_pid: u32,
    /// The simulator's pid.
    pub sim_pid: u32,
    /// `http://127.0.0.1:<port>/`.
    pub base: String,
    /// Whether the aggregator runs with `server.auth.public_read_only` (anonymous readers).
    pub public_read_only: bool,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

/// Unix time in ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether this workspace's aggregator knows `"auth": {"public_read_only": true}` in its
/// `server` block (the security work adds it; until then the key would be refused).
pub fn supports_public_read_only(root: &Path) -> bool {
    ["web/src", "aggregator/src"]
        .iter()
        .any(|d| tree_contains(&root.join(d), "public_read_only"))
}

fn tree_contains(dir: &Path, needle: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            tree_contains(&p, needle)
        } else {
            p.extension().is_some_and(|x| x == "rs")
                && std::fs::read_to_string(&p).is_ok_and(|t| t.contains(needle))
        }
    })
}

/// The simulator's aggregator config with the benchmark's settings: the listener, the
/// aggregator's own host left out, and anonymous read access where the aggregator has it.
pub fn adapt_config(mut cfg: Value, port: u16, public_read_only: bool) -> anyhow::Result<Value> {
    let obj = cfg
        .as_object_mut()
        .context("the simulator's config is not a JSON object")?;
    let server = obj.entry("server").or_insert_with(|| json!({}));
    let server = server
        .as_object_mut()
        .context("server is not a JSON object")?;
    server.insert("host".into(), json!("127.0.0.1"));
    server.insert("port".into(), json!(port));
    if public_read_only {
        let auth = server.entry("auth").or_insert_with(|| json!({}));
        auth.as_object_mut()
            .context("server.auth is not a JSON object")?
            .insert("public_read_only".into(), json!(true));
    }
    let monitor = obj
        .get_mut("monitor")
        .and_then(Value::as_object_mut)
        .context("the simulator's config has no monitor block")?;
    // Only the simulated hosts: the aggregator's own host would add a sampler thread.
    monitor.insert("include_self".into(), json!(false));
    Ok(cfg)
}

/// Raises the soft limit of open files to `want` (children inherit it): a simulator with N
/// agents holds N listeners and N connections, the aggregator N connections.
fn raise_nofile(want: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let cur = getrlimit(Resource::Nofile);
    if cur.current.is_some_and(|c| c >= want) || cur.current.is_none() {
        return;
    }
    let max = cur.maximum.map_or(want, |m| m.max(want));
    let r = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum: Some(max),
        },
    );
    if r.is_err() {
        // Not root: as far as the hard limit allows.
        let hard = cur.maximum.unwrap_or(want).min(want);
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: cur.maximum,
            },
        );
        eprintln!(
            "Warning: cannot raise the open-file limit to {want} (hard limit {:?}); a large \
             fleet may fail to connect.",
            cur.maximum
        );
    }
}

impl Fleet {
    /// Starts the simulated agents of `spec` and an aggregator polling them, and waits until
    /// every host is up.
    pub async fn start(bins: &Bins, root: &Path, spec: &FleetSpec) -> anyhow::Result<Self> {
        let (agents, interval_ms, first_addr) =
            (spec.agents, spec.interval_ms, spec.first_addr.as_str());
        raise_nofile(agents * 3 + 4096);
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let mut kids = Children::default();
        let token: String = rand::random::<[u8; 16]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let token_file = dir.path().join("agents.token");
        std::fs::write(&token_file, &token)
            .with_context(|| format!("cannot write {}", token_file.display()))?;
        let sim_config = dir.path().join("sim_app.json");
        let sim_port = free_port(first_addr)?;
        let sim_out = dir.path().join("smon-sim.out");
        let sim_log = dir.path().join("smon-sim.log");
        eprintln!("Starting {agents} simulated agents on {first_addr} and up, port {sim_port}.");
        let mut sim = Command::new(&bins.sim);
        if let Some(n) = spec.hosts_per_cluster {
            sim.args(["--hosts-per-cluster", &n.to_string()]);
        }
        let sim_pid = kids.spawn(
            "smon-sim",
            sim.args(["--agents", &agents.to_string()])
                .args(["--first-addr", first_addr])
                .args(["--port", &sim_port.to_string()])
                .args(["--interval-ms", &interval_ms.to_string()])
                .args(["--seed", "1"])
                .arg("--token-file")
                .arg(&token_file)
                .arg("--write-config")
                .arg(&sim_config)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log_file(&sim_out)?)
                .stderr(log_file(&sim_log)?),
            true,
            Some(sim_log),
        )?;
        let ready_limit = spec.up_timeout;
        let deadline = Instant::now() + ready_limit;
        loop {
            kids.ensure_running(sim_pid)?;
            let out = std::fs::read_to_string(&sim_out).unwrap_or_default();
            if let Some(line) = out.lines().find(|l| l.starts_with("ready ")) {
                eprintln!("smon-sim: {line}");
                break;
            }
            if Instant::now() > deadline {
                bail!("smon-sim did not print `ready` within {ready_limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = std::fs::read_to_string(&sim_config)
            .with_context(|| format!("cannot read {}", sim_config.display()))?;
        let cfg: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not JSON", sim_config.display()))?;
        let port = free_port("127.0.0.1")?;
        let config = dir.path().join("config_app.json");
        let mut public_read_only = supports_public_read_only(root);
        loop {
            let mut adapted = adapt_config(cfg.clone(), port, public_read_only)?;
            if let (Some(st), Some(o)) = (&spec.storage, adapted.as_object_mut()) {
                o.insert("storage".into(), st.clone());
            }
            if let (Some(al), Some(o)) = (&spec.alerts, adapted.as_object_mut()) {
                o.insert("alerts".into(), al.clone());
            }
            std::fs::write(&config, serde_json::to_vec_pretty(&adapted)?)
                .with_context(|| format!("cannot write {}", config.display()))?;
            // The sources may know the key while the binary (built earlier) does not yet.
            let check = Command::new(&bins.aggregator)
                .arg("--check-config")
                .arg("--config")
                .arg(&config)
                .output()
                .context("cannot run smon-aggregator --check-config")?;
            if check.status.success() {
                break;
            }
            let err = String::from_utf8_lossy(&check.stderr);
            if public_read_only && err.contains("auth") {
                eprintln!(
                    "Warning: this smon-aggregator binary does not know server.auth (rebuild \
                     it); going on without public_read_only."
                );
                public_read_only = false;
                continue;
            }
            bail!("the aggregator refuses the benchmark's config: {err}");
        }
        let log = dir.path().join("smon-aggregator.log");
        let base = format!("http://127.0.0.1:{port}/");
        eprintln!("Starting the aggregator on {base}.");
        let aggregator_pid = kids.spawn(
            "smon-aggregator",
            Command::new(&bins.aggregator)
                .arg("--no-supervise") // measure the server itself, not a manager over it
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
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        let readings = Arc::new(Mutex::new(Readings::default()));
        let sampler = tokio::spawn(sample(readings.clone(), aggregator_pid, sim_pid));
        let mut fleet = Self {
            kids,
            readings,
            sampler,
            agents,
            up_timeout: spec.up_timeout,
            aggregator_pid,
            sim_pid,
            base,
            public_read_only,
            http,
            dir,
        };
        fleet.wait_up().await?;
        Ok(fleet)
    }

    /// The fleet's directory: the aggregator's config (and so its default `smon-data/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the aggregator now (SIGTERM, then SIGKILL after the grace period); the simulator
    /// goes on until the fleet is dropped.
    pub fn stop_aggregator(&mut self) {
        self.kids.stop(self.aggregator_pid);
    }

    /// Fails when the aggregator or the simulator has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.kids.ensure_running(self.aggregator_pid)?;
        self.kids.ensure_running(self.sim_pid)
    }

    /// Waits until the cluster aggregates count every host up.
    async fn wait_up(&mut self) -> anyhow::Result<()> {
        let limit = self.up_timeout;
        let deadline = Instant::now() + limit;
        let url = format!("{}api/v1/clusters", self.base);
        let t = Instant::now();
        loop {
            self.ensure_running()?;
            let last = match self.get_json(&url).await {
                Ok(v) => {
                    let sum = |k: &str| {
                        v.as_array()
                            .map_or(0, |a| a.iter().filter_map(|c| c[k].as_u64()).sum::<u64>())
                    };
                    let (up, hosts) = (sum("up"), sum("hosts"));
                    if up == self.agents && hosts == self.agents {
                        eprintln!(
                            "All {up} hosts up after {:.1} s.",
                            t.elapsed().as_secs_f64()
                        );
                        return Ok(());
                    }
                    format!("{up} of {hosts} hosts up")
                }
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() > deadline {
                bail!("the fleet was not up within {limit:?}: {last} (GET {url})");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn get_text(&self, url: &str) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    async fn get_json(&self, url: &str) -> anyhow::Result<Value> {
        let text = self.get_text(url).await?;
        serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON"))
    }

    /// The aggregator's staleness histogram now, summed over clusters.
    pub async fn staleness_histogram(&self) -> anyhow::Result<Buckets> {
        let url = format!("{}metrics", self.base);
        let text = self.get_text(&url).await?;
        staleness::parse_histogram(&text, STALENESS_METRIC)
            .with_context(|| format!("GET {url}: no {STALENESS_METRIC} histogram"))
    }

    /// `last_seen_ms - sample_unix_ms` of every host that is up, from one `/api/v1/hosts`:
    /// how old each host's latest sample was when it reached the store.
    pub async fn row_staleness(&self) -> anyhow::Result<Vec<u64>> {
        let url = format!("{}api/v1/hosts", self.base);
        let v = self.get_json(&url).await?;
        Ok(staleness::rows(&v))
    }

    /// Waits `d`, failing when the aggregator or the simulator dies meanwhile.
    pub async fn idle(&mut self, d: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.ensure_running()?;
            tokio::time::sleep(Duration::from_millis(250).min(until - Instant::now())).await;
        }
        Ok(())
    }

    /// The readings so far.
    pub fn readings(&self) -> Readings {
        let r = self.readings.lock().unwrap_or_else(|p| p.into_inner());
        Readings {
            aggregator: r.aggregator.clone(),
            sim: r.sim.clone(),
        }
    }

    /// Runs a Node.js script from `web/ui/tests/` (see [`crate::scripts`]) against this fleet
    /// and returns its last stdout line (the JSON summary) and the window it reported. With
    /// `scrape`, the staleness histogram is read as soon as the window opens and again when it
    /// closes. `limit` bounds its whole run time (window, warm-up and start-up): past it, or
    /// when the aggregator or the simulator dies, the script is stopped and this fails.
    pub async fn run_script(
        &mut self,
        node: &Path,
        root: &Path,
        script: &str,
        args: &[String],
        limit: Duration,
        scrape: bool,
    ) -> anyhow::Result<ScriptRun> {
        let ui = root.join("web").join("ui");
        ensure!(
            ui.join("node_modules").join("socket.io-client").is_dir(),
            "{}: node_modules missing; run `npm ci` there",
            ui.display()
        );
        let name = Path::new(script)
            .file_name()
            .map_or_else(|| script.to_owned(), |n| n.to_string_lossy().into_owned());
        let out_path = self.dir.path().join(format!("{name}.out"));
        let err_path = self.dir.path().join(format!("{name}.log"));
        let pid = self.kids.spawn(
            &format!("node {name}"),
            Command::new(node)
                .arg(root.join(script))
                .args(args)
                .current_dir(&ui)
                .stdin(Stdio::null())
                .stdout(log_file(&out_path)?)
                .stderr(log_file(&err_path)?),
            true,
            Some(err_path.clone()),
        )?;
        let deadline = Instant::now() + limit;
        let mut seen = 0usize;
        let mut echoed = 0usize;
        let mut run = ScriptRun::default();
        let status = loop {
            let done = self.kids.try_wait(pid)?;
            // Lines as they come: the window markers.
            let lines = read_lines(&out_path);
            for line in lines.iter().skip(seen) {
                if let Some(t) = window_mark(line, "window_start") {
                    run.start_ms = Some(t);
                    if scrape {
                        run.hist_start = Some(self.staleness_histogram().await?);
                    }
                } else if let Some(t) = window_mark(line, "window_end") {
                    run.end_ms = Some(t);
                    if scrape {
                        run.hist_end = Some(self.staleness_histogram().await?);
                    }
                }
            }
            seen = lines.len();
            // The script's progress, passed on.
            let err = read_lines(&err_path);
            for line in err.iter().skip(echoed) {
                eprintln!("  {name}: {line}");
            }
            echoed = err.len();
            if let Some(status) = done {
                break status;
            }
            if let Err(e) = self.ensure_running() {
                self.kids.stop(pid);
                return Err(e);
            }
            if Instant::now() > deadline {
                self.kids.stop(pid);
                bail!(
                    "{script} did not finish within {limit:?}; its last output:\n{}",
                    tail(&err_path)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        ensure!(
            status.success(),
            "{script} failed ({status}); its output:\n{}",
            tail(&err_path)
        );
        run.summary = read_lines(&out_path)
            .pop()
            .with_context(|| format!("{script} printed nothing"))?;
        Ok(run)
    }
}

/// What one script run gave.
#[derive(Debug, Default)]
pub struct ScriptRun {
    /// Its last stdout line: the JSON summary.
    pub summary: String,
    /// When its window opened, Unix ms.
    pub start_ms: Option<u64>,
    /// When it closed.
    pub end_ms: Option<u64>,
    /// The staleness histogram when the window opened (with `scrape`).
    pub hist_start: Option<Buckets>,
    /// And when it closed.
    pub hist_end: Option<Buckets>,
}

impl ScriptRun {
    /// The window (start, end), Unix ms; an error when a marker is missing or they are out of
    /// order.
    pub fn window(&self) -> anyhow::Result<(u64, u64)> {
        match self.start_ms.zip(self.end_ms) {
            Some((s, e)) if s < e => Ok((s, e)),
            _ => bail!(
                "window markers missing or out of order: start {:?}, end {:?}",
                self.start_ms,
                self.end_ms
            ),
        }
    }

    /// The summary as a JSON object (see [`scripts::parse_summary`]).
    pub fn summary_json(&self) -> anyhow::Result<Value> {
        scripts::parse_summary(&self.summary)
    }
}

/// The last 20 lines of a log file.
fn tail(path: &Path) -> String {
    let lines = read_lines(path);
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::File::open(path)
        .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
        .unwrap_or_default()
}

/// Reads the aggregator's and the simulator's CPU time and RSS once a second, forever (the
/// task is aborted with the fleet).
async fn sample(readings: Arc<Mutex<Readings>>, aggregator: u32, sim: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let read = |pid: u32| -> Option<ProcSample> {
            Some(ProcSample {
                t_ms: now_ms(),
                ticks: procfs::cpu_ticks(pid).ok()?,
                rss: procfs::memory(pid).ok()?.rss,
            })
        };
        let (a, s) = (read(aggregator), read(sim));
        let mut r = readings.lock().unwrap_or_else(|p| p.into_inner());
        r.aggregator.extend(a);
        r.sim.extend(s);
    }
}

/// CPU use, percent of one core, between the first reading at or after `from_ms` and the last
/// at or before `to_ms`; `None` when fewer than two readings fall in between.
pub fn cpu_percent(samples: &[ProcSample], from_ms: u64, to_ms: u64) -> Option<f64> {
    let inside: Vec<&ProcSample> = samples
        .iter()
        .filter(|s| s.t_ms >= from_ms && s.t_ms <= to_ms)
        .collect();
    let (a, b) = (inside.first()?, inside.last()?);
    if b.t_ms <= a.t_ms {
        return None;
    }
    let secs = (b.t_ms - a.t_ms) as f64 / 1000.0;
    Some((b.ticks - a.ticks) as f64 / procfs::ticks_per_second() as f64 / secs * 100.0)
}

/// Median RSS of the readings in [`from_ms`, `to_ms`].
pub fn rss_median(samples: &[ProcSample], from_ms: u64, to_ms: u64) -> Option<u64> {
    let mut v: Vec<u64> = samples
        .iter()
        .filter(|s| s.t_ms >= from_ms && s.t_ms <= to_ms)
        .map(|s| s.rss)
        .collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// Largest RSS of the readings in [`from_ms`, `to_ms`].
pub fn rss_max(samples: &[ProcSample], from_ms: u64, to_ms: u64) -> Option<u64> {
    samples
        .iter()
        .filter(|s| s.t_ms >= from_ms && s.t_ms <= to_ms)
        .map(|s| s.rss)
        .max()
}

/// The `t_ms` of a script's `{"event": <event>, "t_ms": n}` line.
pub fn window_mark(line: &str, event: &str) -> Option<u64> {
    let v: Value = serde_json::from_str(line).ok()?;
    (v["event"] == event).then(|| v["t_ms"].as_u64())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_adapted() {
        let cfg = json!({"server": {"port": 8080}, "monitor": {"mode": "app", "clusters": []}});
        let out = adapt_config(cfg.clone(), 9000, false).expect("adapted");
        assert_eq!(out["server"]["port"], 9000);
        assert_eq!(out["server"]["host"], "127.0.0.1");
        assert_eq!(out["monitor"]["include_self"], false);
        assert!(out["server"].get("auth").is_none());
        let out = adapt_config(cfg, 9000, true).expect("adapted");
        assert_eq!(out["server"]["auth"]["public_read_only"], true);
        let bare = json!({"monitor": {"mode": "app"}});
        assert_eq!(
            adapt_config(bare, 1, false).expect("adapted")["server"]["port"],
            1
        );
        assert!(adapt_config(json!({"server": {}}), 1, false).is_err());
    }

    #[test]
    fn cpu_and_rss_over_a_window() {
        let hz = procfs::ticks_per_second();
        let s: Vec<ProcSample> = (0..10)
            .map(|i| ProcSample {
                t_ms: 1000 * i,
                ticks: i * hz / 2, // half a core
                rss: 100 + i,
            })
            .collect();
        let cpu = cpu_percent(&s, 2000, 8000).expect("cpu");
        assert!((cpu - 50.0).abs() < 1e-9, "{cpu}");
        assert_eq!(cpu_percent(&s, 2500, 2900), None);
        assert_eq!(rss_median(&s, 0, 2000), Some(101));
        assert_eq!(rss_max(&s, 0, 9000), Some(109));
    }

    #[test]
    fn window_marks() {
        assert_eq!(
            window_mark(r#"{"event":"window_start","t_ms":12}"#, "window_start"),
            Some(12)
        );
        assert_eq!(
            window_mark(r#"{"event":"window_end","t_ms":12}"#, "window_start"),
            None
        );
        assert_eq!(window_mark("{\"p50_ms\": 3}", "window_start"), None);
    }
}
