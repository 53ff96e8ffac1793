//! CI smoke test of the benchmark's Node.js scripts: `web/ui/tests/bench-fanout.mjs`,
//! `bench-overview.mjs` and `e2e-latency.mjs` read the dashboard's Socket.IO wire
//! (web/PROTOCOL.md) themselves, so a wire change could break the benchmarks with every other
//! test green. Here a small simulated fleet (smon-sim on 127.3.0.x, more hosts than one part
//! of the full `overview` holds) runs under a debug aggregator, each script runs for a few
//! seconds against it as `smon-bench` runs it, and its summary must show figures that only a
//! script reading the current wire can give.
//!
//! Needs Node.js (`node`, or `$NODE`), `web/ui/node_modules` and chromium
//! (`/usr/bin/chromium`, or `$CHROMIUM`); without them the test fails rather than skips
//! (scripts/test.sh installs them). The debug smon-sim and smon-aggregator are built with
//! `cargo build -p ...` when missing or older than their sources.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail, ensure};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;

/// Simulated hosts: more than the 128 rows of one `overview` part (api/src/wire.rs), so the
/// full state comes in two parts and `e2e-latency.mjs` must place rows by `offset`.
const AGENTS: u64 = 200;
/// Hosts per cluster, so that there are several clusters.
const HOSTS_PER_CLUSTER: u64 = 50;
/// The first simulated agent's address: away from the benchmarks' 127.1.x.y.
const FIRST_ADDR: &str = "127.3.0.1";
/// Socket.IO clients of the fan-out script.
const CLIENTS: u64 = 5;
/// Each script's measurement window, in seconds.
const WINDOW_S: u64 = 6;
/// Warm-up before a window, in seconds.
const WARMUP_S: u64 = 2;
/// What a script may take beyond its window and warm-up (chromium's start on a busy machine).
const SCRIPT_SLACK: Duration = Duration::from_secs(90);
/// How long the fleet may take until every host is up.
const UP_TIMEOUT: Duration = Duration::from_secs(60);
/// A latency at or above this is no measurement: `bench-fanout.mjs` files what it cannot
/// read at its top bucket (120 s).
const SANE_LATENCY_MS: f64 = 30_000.0;

/// The scripts, relative to the workspace root, as bench/src/suite.rs and e2e.rs name them.
const FANOUT: &str = "web/ui/tests/bench-fanout.mjs";
const OVERVIEW: &str = "web/ui/tests/bench-overview.mjs";
const E2E: &str = "web/ui/tests/e2e-latency.mjs";

/// One fleet, the three scripts one after another (about 30 s); every failing script is
/// reported, not only the first.
#[tokio::test]
async fn benchmark_scripts_read_the_current_wire() {
    let t0 = Instant::now();
    let root = workspace_root();
    let node = tools(&root).unwrap_or_else(|e| panic!("{e:#}"));
    let bins = debug_binaries(&root).unwrap_or_else(|e| panic!("{e:#}"));
    let mut fleet = Fleet::start(&bins)
        .await
        .unwrap_or_else(|e| panic!("cannot start the fleet: {e:#}"));
    eprintln!("Fleet up after {:.1} s.", t0.elapsed().as_secs_f64());

    let base = fleet.base.clone();
    let (window, warmup) = (WINDOW_S.to_string(), WARMUP_S.to_string());
    let mut failures = Vec::new();
    // The arguments as bench/src/suite.rs (fanout, overview) and e2e.rs give them.
    let fanout_args: [&str; 5] = [&base, &CLIENTS.to_string(), &window, &warmup, "10"];
    let r = fleet
        .run_script(&node, &root, FANOUT, &fanout_args, WINDOW_S + WARMUP_S)
        .await
        .and_then(|out| check_fanout(&out));
    failures.extend(r.err().map(|e| format!("{FANOUT}: {e:#}")));

    let overview_args: [&str; 4] = [&base, &window, &AGENTS.to_string(), &warmup];
    let r = fleet
        .run_script(&node, &root, OVERVIEW, &overview_args, WINDOW_S + WARMUP_S)
        .await
        .and_then(|out| check_overview(&out));
    failures.extend(r.err().map(|e| format!("{OVERVIEW}: {e:#}")));

    let e2e_args: [&str; 3] = [&base, &window, &AGENTS.to_string()];
    let r = fleet
        .run_script(&node, &root, E2E, &e2e_args, WINDOW_S)
        .await
        .and_then(|out| check_e2e(&out));
    failures.extend(r.err().map(|e| format!("{E2E}: {e:#}")));

    if let Err(e) = fleet.ensure_running() {
        failures.push(format!("{e:#}"));
    }
    eprintln!("Done in {:.1} s.", t0.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// `bench-fanout.mjs`: every client got deltas and stayed connected; the latencies are real
/// numbers, read from `server_time_ms` at the head of each frame (the script's light parser).
fn check_fanout(out: &ScriptOutput) -> anyhow::Result<()> {
    out.window()?;
    let v = out.summary()?;
    ensure!(
        num(&v, "clients")? == CLIENTS as f64,
        "clients != {CLIENTS}"
    );
    ensure!(
        num(&v, "connected_end")? == CLIENTS as f64,
        "not every client connected at the end"
    );
    ensure!(num(&v, "disconnects")? == 0.0, "clients disconnected");
    ensure!(
        num(&v, "min_deltas_per_client")? >= 1.0,
        "a client received no overview_delta in {WINDOW_S} s"
    );
    ensure!(
        num(&v, "stalled_clients")? == 0.0,
        "a client stopped receiving"
    );
    for k in ["p50_ms", "p99_ms", "max_ms", "mean_ms"] {
        let ms = num(&v, k)?;
        ensure!(
            (0.0..SANE_LATENCY_MS).contains(&ms),
            "{k} = {ms}: not a delivery latency (server_time_ms unreadable?)"
        );
    }
    // Characters are counted only when the light parser matched the frame's head; the stock
    // parser (the fallback) would measure its own JSON parsing instead.
    ensure!(
        num(&v, "mean_delta_chars")? > 0.0,
        "overview_delta frames no longer start with server_time_ms, as the script's light \
         parser expects"
    );
    ensure!(num(&v, "bytes_per_s_per_client")? > 0.0, "no bytes counted");
    Ok(())
}

/// `bench-overview.mjs`: the page showed every host and live updates were measured.
fn check_overview(out: &ScriptOutput) -> anyhow::Result<()> {
    out.window()?;
    let v = out.summary()?;
    ensure!(num(&v, "rows")? == AGENTS as f64, "rows != {AGENTS}");
    ensure!(num(&v, "updates")? > 0.0, "no overview_delta frame seen");
    ensure!(num(&v, "updates_measured")? > 0.0, "no update measured");
    for k in [
        "script_p50_ms",
        "task_p50_ms",
        "input_delay_p50_ms",
        "raf_gap_p50_ms",
    ] {
        num(&v, k)?;
    }
    ensure!(num(&v, "inputs")? > 0.0, "no input event recorded");
    Ok(())
}

/// `e2e-latency.mjs`: samples reached the DOM, and most are matched to the `overview_delta`
/// that carried them (rows by position `i` placed by the full overview's `offset`, sample
/// time `t` relative to `server_time_ms`). Only the first frame of the window can carry
/// samples the script cannot match.
fn check_e2e(out: &ScriptOutput) -> anyhow::Result<()> {
    let v = out.summary()?;
    ensure!(
        v["transport"] == "websocket",
        "transport {}, not websocket",
        v["transport"]
    );
    ensure!(num(&v, "hosts")? == AGENTS as f64, "hosts != {AGENTS}");
    ensure!(
        num(&v, "delta_frames")? > 0.0,
        "no overview_delta frame seen"
    );
    let samples = num(&v, "samples")?;
    let matched = num(&v, "matched")?;
    ensure!(samples > 0.0, "no sample reached the DOM");
    ensure!(
        matched >= 0.6 * samples,
        "only {matched} of {samples} samples matched to their overview_delta"
    );
    for k in ["p50_ms", "p99_ms", "emit_p50_ms", "deliver_p50_ms"] {
        let ms = num(&v, k)?;
        ensure!(
            ms.abs() < SANE_LATENCY_MS,
            "{k} = {ms}: not a latency (sample time misread?)"
        );
    }
    Ok(())
}

/// `v[key]` as a finite number.
fn num(v: &Value, key: &str) -> anyhow::Result<f64> {
    v[key]
        .as_f64()
        .filter(|x| x.is_finite())
        .with_context(|| format!("{key} is {}, not a number", v[key]))
}

/// The workspace root.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The Node.js executable, after checking that it runs and that the scripts' packages and
/// chromium are there.
fn tools(root: &Path) -> anyhow::Result<PathBuf> {
    let node = std::env::var_os("NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from);
    let version = Command::new(&node).arg("--version").output();
    match version {
        Ok(o) if o.status.success() => {}
        Ok(o) => bail!("`{} --version` failed ({})", node.display(), o.status),
        Err(e) => bail!(
            "cannot run Node.js ({}): {e}. The benchmark scripts need it (Debian: apt-get \
             install nodejs npm; scripts/test.sh installs it)",
            node.display()
        ),
    }
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    ensure!(
        chromium.is_file(),
        "{}: chromium is missing; bench-overview.mjs and e2e-latency.mjs need it (Debian: \
         apt-get install chromium; scripts/test.sh installs it; $CHROMIUM names another)",
        chromium.display()
    );
    let modules = root.join("web").join("ui").join("node_modules");
    for m in ["socket.io-client", "socket.io-parser", "playwright-core"] {
        ensure!(
            modules.join(m).is_dir(),
            "{}: {m} is not installed; run `npm ci` in web/ui",
            modules.display()
        );
    }
    Ok(node)
}

/// The debug binaries the fleet needs.
struct Bins {
    sim: PathBuf,
    aggregator: PathBuf,
}

/// This workspace's debug smon-sim and smon-aggregator. An integration test of smon-bench has
/// no `CARGO_BIN_EXE_` of other packages, so they are found in the target directory and built
/// there when missing or older than their sources (a stale aggregator would test yesterday's
/// wire). `cargo test --workspace` has built both already.
fn debug_binaries(root: &Path) -> anyhow::Result<Bins> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("debug");
    let packages: [(&str, &[&str]); 2] = [
        ("smon-sim", &["sim/src", "proto"]),
        (
            "smon-aggregator",
            &[
                "aggregator/src",
                "agent/src",
                "web/src",
                "web/ui/src",
                "proto",
            ],
        ),
    ];
    let mut build = Vec::new();
    for (name, sources) in packages {
        let bin = dir.join(name);
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let src = sources
            .iter()
            .filter_map(|d| newest_mtime(&root.join(d)))
            .max();
        let stale = match (built, src) {
            (None, _) => true,
            (Some(b), Some(s)) => s > b,
            (Some(_), None) => false,
        };
        if stale {
            build.extend(["-p", name]);
        }
    }
    if !build.is_empty() {
        let what = format!("cargo build {}", build.join(" "));
        eprintln!("Debug binaries missing or stale; running `{what}`.");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .arg("build")
            .args(&build)
            .current_dir(root)
            .status()
            .context("cannot run cargo")?;
        ensure!(status.success(), "`{what}` failed ({status})");
    }
    let bins = Bins {
        sim: dir.join("smon-sim"),
        aggregator: dir.join("smon-aggregator"),
    };
    for b in [&bins.sim, &bins.aggregator] {
        ensure!(b.is_file(), "{}: not built", b.display());
    }
    Ok(bins)
}

/// The newest modification time of any file under `dir`.
fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let t = if meta.is_dir() {
            newest_mtime(&entry.path())
        } else {
            meta.modified().ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// A port on `ip` nobody listens on now.
fn free_port(ip: &str) -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind((ip, 0)).with_context(|| format!("cannot bind {ip}:0"))?;
    Ok(l.local_addr()?.port())
}

fn log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::File::open(path)
        .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
        .unwrap_or_default()
}

/// The last 20 lines of a log file.
fn tail(path: &Path) -> String {
    let lines = read_lines(path);
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// One child process and where its stderr goes.
struct Kid {
    name: String,
    child: Child,
    log: PathBuf,
}

/// The test's child processes: SIGTERM (playwright then closes chromium), a grace period,
/// then SIGKILL, whenever the guard is dropped (a panic included).
#[derive(Default)]
struct Kids(Vec<Kid>);

impl Kids {
    fn spawn(&mut self, name: &str, cmd: &mut Command, log: PathBuf) -> anyhow::Result<usize> {
        let child = cmd
            .stdin(Stdio::null())
            .stderr(log_file(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        self.0.push(Kid {
            name: name.to_owned(),
            child,
            log,
        });
        Ok(self.0.len() - 1)
    }

    fn try_wait(&mut self, k: usize) -> anyhow::Result<Option<ExitStatus>> {
        Ok(self.0[k].child.try_wait()?)
    }

    /// Fails, quoting the end of its log, when child `k` has exited.
    fn ensure_running(&mut self, k: usize) -> anyhow::Result<()> {
        if let Some(status) = self.try_wait(k)? {
            let kid = &self.0[k];
            bail!(
                "{} exited early ({status}); its last output:\n{}",
                kid.name,
                tail(&kid.log)
            );
        }
        Ok(())
    }

    /// Stops child `k` now: SIGTERM, up to 5 s, SIGKILL.
    fn stop(&mut self, k: usize) {
        let child = &mut self.0[k].child;
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        let _ = kill_process(Pid::from_child(child), Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Kids {
    fn drop(&mut self) {
        // The scripts first, then the aggregator, then the simulator.
        for k in (0..self.0.len()).rev() {
            self.stop(k);
        }
    }
}

/// What a script printed.
struct ScriptOutput {
    stdout: Vec<String>,
}

impl ScriptOutput {
    /// The summary: the last stdout line, a JSON object.
    fn summary(&self) -> anyhow::Result<Value> {
        let line = self.stdout.last().context("the script printed nothing")?;
        eprintln!("  summary: {line}");
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("the summary is not JSON: {line}"))?;
        ensure!(v.is_object(), "the summary is not a JSON object: {line}");
        Ok(v)
    }

    /// The window markers `{"event":"window_start"|"window_end","t_ms":n}`, in order.
    fn window(&self) -> anyhow::Result<()> {
        let mark = |event: &str| {
            self.stdout.iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["event"] == event).then(|| v["t_ms"].as_u64())?
            })
        };
        let (start, end) = (mark("window_start"), mark("window_end"));
        match start.zip(end) {
            Some((s, e)) if s < e => Ok(()),
            _ => bail!("window markers missing or out of order: {start:?}, {end:?}"),
        }
    }
}

/// smon-sim and a debug aggregator polling it; stopped when dropped.
struct Fleet {
    // Before `dir`: the children stop before their configs and logs go.
    kids: Kids,
    sim: usize,
    aggregator: usize,
    /// `http://127.0.0.1:<port>/`.
    base: String,
    dir: tempfile::TempDir,
}

impl Fleet {
    /// Starts the simulated agents and the aggregator, as bench/src/fleet.rs does, and waits
    /// until every host is up.
    async fn start(bins: &Bins) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let mut kids = Kids::default();
        let token_file = dir.path().join("agents.token");
        let token: String = rand::random::<[u8; 16]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(&token_file, token)?;
        let sim_config = dir.path().join("sim_app.json");
        let sim_out = dir.path().join("smon-sim.out");
        let sim = kids.spawn(
            "smon-sim",
            Command::new(&bins.sim)
                .args(["--agents", &AGENTS.to_string()])
                .args(["--hosts-per-cluster", &HOSTS_PER_CLUSTER.to_string()])
                .args(["--first-addr", FIRST_ADDR])
                .args(["--port", &free_port(FIRST_ADDR)?.to_string()])
                .args(["--interval-ms", "1000"])
                .args(["--seed", "1"])
                .arg("--token-file")
                .arg(&token_file)
                .arg("--write-config")
                .arg(&sim_config)
                .env("RUST_LOG", "warn")
                .stdout(log_file(&sim_out)?),
            dir.path().join("smon-sim.log"),
        )?;
        let deadline = Instant::now() + UP_TIMEOUT;
        while !read_lines(&sim_out).iter().any(|l| l.starts_with("ready ")) {
            kids.ensure_running(sim)?;
            ensure!(
                Instant::now() < deadline,
                "smon-sim did not print `ready` within {UP_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let text = std::fs::read_to_string(&sim_config)
            .with_context(|| format!("cannot read {}", sim_config.display()))?;
        let mut cfg: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not JSON", sim_config.display()))?;
        let port = free_port("127.0.0.1")?;
        let server = cfg
            .get_mut("server")
            .and_then(Value::as_object_mut)
            .context("the simulator's config has no server block")?;
        server.insert("host".into(), "127.0.0.1".into());
        server.insert("port".into(), port.into());
        let config = dir.path().join("config_app.json");
        std::fs::write(&config, serde_json::to_vec_pretty(&cfg)?)?;
        let aggregator = kids.spawn(
            "smon-aggregator",
            Command::new(&bins.aggregator)
                .arg("--no-supervise")
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null()),
            dir.path().join("smon-aggregator.log"),
        )?;
        let mut fleet = Self {
            kids,
            sim,
            aggregator,
            base: format!("http://127.0.0.1:{port}/"),
            dir,
        };
        fleet.wait_up().await?;
        Ok(fleet)
    }

    /// Fails when the aggregator or the simulator has exited.
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.kids.ensure_running(self.aggregator)?;
        self.kids.ensure_running(self.sim)
    }

    /// Waits until the cluster totals count every host up.
    async fn wait_up(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        let url = format!("{}api/v1/clusters", self.base);
        let deadline = Instant::now() + UP_TIMEOUT;
        loop {
            self.ensure_running()?;
            let last = match get_json(&http, &url).await {
                Ok(v) => {
                    let sum = |k: &str| {
                        v.as_array()
                            .map_or(0, |a| a.iter().filter_map(|c| c[k].as_u64()).sum::<u64>())
                    };
                    let (up, hosts) = (sum("up"), sum("hosts"));
                    if up == AGENTS && hosts == AGENTS {
                        return Ok(());
                    }
                    format!("{up} of {hosts} hosts up")
                }
                Err(e) => format!("{e:#}"),
            };
            ensure!(
                Instant::now() < deadline,
                "the fleet was not up within {UP_TIMEOUT:?}: {last} (GET {url})"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs `node <script> <args>` in web/ui, as bench/src/fleet.rs does, and returns its
    /// stdout once it exits with status 0 within `run_s` seconds and the slack.
    async fn run_script(
        &mut self,
        node: &Path,
        root: &Path,
        script: &str,
        args: &[&str],
        run_s: u64,
    ) -> anyhow::Result<ScriptOutput> {
        let t = Instant::now();
        let name = Path::new(script)
            .file_name()
            .map_or_else(|| script.to_owned(), |n| n.to_string_lossy().into_owned());
        let out = self.dir.path().join(format!("{name}.out"));
        let log = self.dir.path().join(format!("{name}.log"));
        eprintln!("Running {name} {}.", args.join(" "));
        let k = self.kids.spawn(
            &format!("node {name}"),
            Command::new(node)
                .arg(root.join(script))
                .args(args)
                .current_dir(root.join("web").join("ui"))
                .stdout(log_file(&out)?),
            log.clone(),
        )?;
        let limit = Duration::from_secs(run_s) + SCRIPT_SLACK;
        let status = loop {
            if let Some(status) = self.kids.try_wait(k)? {
                break status;
            }
            if let Err(e) = self.ensure_running() {
                self.kids.stop(k);
                return Err(e);
            }
            if t.elapsed() > limit {
                self.kids.stop(k);
                bail!(
                    "did not finish within {limit:?}; its last output:\n{}",
                    tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        eprintln!(
            "  {name}: {status} after {:.1} s",
            t.elapsed().as_secs_f64()
        );
        ensure!(
            status.success(),
            "failed ({status}); its last output:\n{}",
            tail(&log)
        );
        Ok(ScriptOutput {
            stdout: read_lines(&out),
        })
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let text = http
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON"))
}
