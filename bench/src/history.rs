//! `smon-bench history`: what keeping history costs, side by side with VictoriaMetrics.
//!
//! 1. **Bytes per value.** A simulated fleet (`--hosts`, default 1,000) at 1 Hz under a real
//!    aggregator that keeps history in its embedded database and sends the same samples by
//!    remote write to Debian's `victoria-metrics`, started by the benchmark, for
//!    `--duration-s` (the target is an hour). Then: values sent (the aggregator's
//!    `smon_remote_write_sent_samples_total`, which VictoriaMetrics' own row count confirms),
//!    VictoriaMetrics' bytes (its `vm_data_size_bytes`, data and index, after a flush) and
//!    smon's (the database file with its WAL: every tier, processes and indexes, so an upper
//!    bound of its raw tier), each per value.
//! 2. **CPU.** The aggregator at `--cpu-hosts` simulated hosts at 1 Hz with history off, on,
//!    and on with remote write, over `--cpu-window-s` after `--warmup-s`.
//! 3. **Query times** through the REST routes (`/api/v1/hosts/{id}/history`, the cluster
//!    route, the processes at a minute), 20 times each: on what step 1 stored, and on a store
//!    backfilled with `--backfill-h` hours of every sample of `--hosts` hosts (and their top
//!    processes every minute, at most 6 hours of them), written with `smon-history`'s own
//!    backfill and served by an aggregator whose hosts are those of the backfill (their agents
//!    absent: the history routes read the store whatever the hosts' state).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::children::Children;
use crate::fleet::{self, Bins, Fleet, FleetSpec};
use crate::machine::Machine;
use crate::workspace::{self, Build, command_line, free_port, log_file};

/// Start marker of the section in BENCHMARKS.md.
pub const START: &str = "<!-- bench:history:start -->";
/// End marker.
pub const END: &str = "<!-- bench:history:end -->";

/// Arguments of `smon-bench history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Simulated hosts fed to both stores for the bytes per value.
    #[arg(long, default_value_t = 1000)]
    pub hosts: u64,
    /// How long they are fed, in seconds (the target is an hour).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(10..))]
    pub duration_s: u64,
    /// Fleet sizes for the aggregator's CPU with history off and on (0: skip).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64])]
    pub cpu_hosts: Vec<u64>,
    /// Each CPU window, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..))]
    pub cpu_window_s: u64,
    /// Warm-up before each CPU window, in seconds.
    #[arg(long, default_value_t = 10)]
    pub warmup_s: u64,
    /// The agents' sampling interval and the aggregator's poll interval, in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub interval_ms: u64,
    /// The VictoriaMetrics binary (Debian package `victoria-metrics`).
    #[arg(long, default_value = "/usr/bin/victoria-metrics")]
    pub victoria_metrics: PathBuf,
    /// Hours of synthetic history backfilled for the query times (0: skip that step).
    #[arg(long, default_value_t = 24)]
    pub backfill_h: u64,
    /// Use the debug builds (a smoke run: CPU figures then say little).
    #[arg(long)]
    pub debug: bool,
    /// Also rewrite this run's section of this markdown file (e.g. BENCHMARKS.md).
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// A VictoriaMetrics process in a temporary directory; stopped on drop.
struct Victoria {
    /// Held so that the process stops when this is dropped.
    _kids: Children,
    base: String,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Victoria {
    async fn start(bin: &Path) -> anyhow::Result<Self> {
        if !bin.is_file() {
            bail!(
                "{}: not found; install it with `apt-get install victoria-metrics`",
                bin.display()
            );
        }
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let data = dir.path().join("data");
        let port = free_port("127.0.0.1")?;
        let log = dir.path().join("victoria-metrics.log");
        let mut kids = Children::default();
        kids.spawn(
            "victoria-metrics",
            Command::new(bin)
                .arg(format!("-storageDataPath={}", data.display()))
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg("-retentionPeriod=1y")
                .arg("-loggerLevel=WARN")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file(&log)?),
            true,
            Some(log),
        )?;
        let v = Self {
            _kids: kids,
            base: format!("http://127.0.0.1:{port}"),
            data,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/health", v.base)).await
                && r.status().is_success()
            {
                return Ok(v);
            }
            if Instant::now() > until {
                bail!("victoria-metrics did not answer /health within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `vm_rows` and `vm_data_size_bytes` summed over the storage and index parts, after a
    /// flush of what it holds in memory.
    async fn sizes(&self) -> anyhow::Result<(u64, u64)> {
        let _ = reqwest::get(format!("{}/internal/force_flush", self.base)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await?
            .text()
            .await?;
        let sum = |name: &str, want: &dyn Fn(&str) -> bool| -> u64 {
            text.lines()
                .filter_map(|l| {
                    let rest = l.strip_prefix(name)?.strip_prefix("{type=\"")?;
                    let (ty, v) = rest.split_once("\"} ")?;
                    want(ty).then(|| v.trim().parse::<f64>().ok())?
                })
                .sum::<f64>() as u64
        };
        let rows = sum("vm_rows", &|t| t.starts_with("storage/"));
        let bytes = sum("vm_data_size_bytes", &|t| {
            t.starts_with("storage/") || t.starts_with("indexdb")
        });
        Ok((rows, bytes))
    }
}

/// Bytes on disk under `dir` (file sizes, recursively).
fn du(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One counter or gauge of a `/metrics` text, summed over its series.
pub(crate) fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Whether this workspace's aggregator has the embedded history (`storage.enabled`).
fn has_history(root: &Path) -> bool {
    root.join("aggregator/src/history.rs").is_file()
}

/// The `storage` block of a configuration.
fn storage(history: bool, remote: Option<&str>, known: bool) -> Option<Value> {
    let mut s = serde_json::Map::new();
    if known {
        s.insert("enabled".into(), json!(history));
    }
    if let Some(url) = remote {
        // Room for a few minutes of the whole fleet: nothing may be dropped in the window.
        s.insert(
            "remote_write".into(),
            json!([{"url": url, "queue": {"max_samples": 20_000_000, "max_samples_per_send": 10_000}}]),
        );
    }
    (!s.is_empty()).then_some(Value::Object(s))
}

/// The figures of step 1.
#[derive(Debug, Default)]
struct Bytes {
    sent: f64,
    dropped: f64,
    vm_rows: u64,
    vm_bytes: u64,
    vm_du: u64,
    smon_db: Option<u64>,
    /// Pages of the every-sample tier (tables and indexes named `raw_*`), from `dbstat`.
    smon_raw: Option<u64>,
}

/// Bytes of the tables and indexes named `raw_*` (the every-sample tier) of the database
/// `file`, read with Debian's `sqlite3` (its `dbstat` table); `None` without it.
fn raw_tier_bytes(file: &Path) -> Option<u64> {
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(file)
        .arg("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name LIKE 'raw\\_%' ESCAPE '\\'")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "Warning: sqlite3 could not read {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// One query's timings.
#[derive(Debug)]
struct Query {
    what: String,
    target_ms: u64,
    p50_ms: f64,
    max_ms: f64,
    status: u16,
    points: usize,
}

/// One CPU row.
#[derive(Debug)]
struct Cpu {
    hosts: u64,
    mode: &'static str,
    cpu: Option<f64>,
    rss: Option<u64>,
}

/// The queries' times through `base`'s REST API, each on the store's first host. The top
/// processes are asked at `procs_at_ms`, a minute the store holds (the minute before now when
/// `None`: what a live fleet has just stored).
async fn time_queries(base: &str, procs_at_ms: Option<u64>) -> anyhow::Result<Vec<Query>> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()?;
    let hosts: Value = serde_json::from_str(
        &http
            .get(format!("{base}api/v1/hosts"))
            .send()
            .await?
            .text()
            .await?,
    )
    .context("/api/v1/hosts: not JSON")?;
    let first = hosts
        .as_array()
        .and_then(|a| a.first())
        .context("no host in /api/v1/hosts")?;
    let id = first["id"].as_str().context("host id")?.to_owned();
    let cluster = first["cluster"].as_str().context("cluster")?.to_owned();
    let now = fleet::now_ms();
    let day = 86_400_000u64;
    let cases = [
        (
            "24 h of one host (cpu_percent), ~1,000 points".to_owned(),
            format!(
                "api/v1/hosts/{id}/history?metrics=cpu_percent&from={}&to={now}&points=1000",
                now - day
            ),
            50,
        ),
        (
            "30 days of one host (cpu_percent), ~1,000 points".to_owned(),
            format!(
                "api/v1/hosts/{id}/history?metrics=cpu_percent&from={}&to={now}&points=1000",
                now - 30 * day
            ),
            50,
        ),
        (
            format!("cluster {cluster} aggregate over 7 days (cpu_percent)"),
            format!(
                "api/v1/clusters/{cluster}/history?metrics=cpu_percent&from={}&to={now}&points=1000",
                now - 7 * day
            ),
            300,
        ),
        (
            "top processes at a minute".to_owned(),
            format!(
                "api/v1/hosts/{id}/processes?at={}",
                procs_at_ms.unwrap_or(now - 60_000)
            ),
            20,
        ),
    ];
    let mut out = Vec::new();
    for (what, path, target_ms) in cases {
        let url = format!("{base}{path}");
        let mut times = Vec::new();
        let mut status = 0;
        let mut points = 0;
        for _ in 0..20 {
            let t = Instant::now();
            let r = http.get(&url).send().await?;
            status = r.status().as_u16();
            let body: Value =
                serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            points = body["t"]
                .as_array()
                .map(Vec::len)
                .or_else(|| body["top_cpu"].as_array().map(Vec::len))
                .unwrap_or(0);
        }
        times.sort_by(f64::total_cmp);
        if points == 0 {
            eprintln!("Warning: {what}: the answer held nothing ({url}).");
        }
        out.push(Query {
            what,
            target_ms,
            p50_ms: times[times.len() / 2],
            max_ms: times[times.len() - 1],
            status,
            points,
        });
    }
    Ok(out)
}

/// Step 3's figures: on what step 1 stored, and on the backfilled store.
#[derive(Debug)]
struct Queries {
    stored: Vec<Query>,
    backfilled: Option<(Backfilled, Vec<Query>)>,
}

/// What step 3's backfill wrote, and how long it took.
#[derive(Debug)]
struct Backfilled {
    hosts: u64,
    hours: u64,
    values: u64,
    process_minutes: u64,
    seconds: f64,
    bytes: u64,
}

/// Step 3 on a backfilled store: `args.backfill_h` hours of `args.hosts` hosts written into a
/// new database, then an aggregator serving it (its hosts named as the backfill names them,
/// at an address where nothing listens) and the queries of [`time_queries`] through it.
async fn backfilled_queries(
    bins: &Bins,
    args: &HistoryArgs,
) -> anyhow::Result<(Backfilled, Vec<Query>)> {
    use smon_history::metrics::{Backfill, backfill};
    use smon_history::procs::{self, MINUTE_MS, ProcsBackfill};
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let data = dir.path().join("smon-data");
    let db = data.join(smon_history::db::FILE_NAME);
    let hosts = usize::try_from(args.hosts)?;
    let clusters = hosts.div_ceil(100);
    let now = fleet::now_ms();
    let hour = 3_600_000u64;
    eprintln!(
        "== history: backfilling {hosts} hosts x {} h for the query times",
        args.backfill_h
    );
    let t = Instant::now();
    let metrics = Backfill {
        hosts,
        clusters,
        from_ms: now - args.backfill_h * hour,
        to_ms: now,
        interval_ms: args.interval_ms,
        seed: 1,
        gpus: 0,
    };
    let to = procs::minute_of(now) + MINUTE_MS;
    let processes = ProcsBackfill {
        hosts,
        clusters,
        from_ms: to - args.backfill_h.min(6) * hour,
        to_ms: to,
        gpus: 2,
        seed: 1,
    };
    let path = db.clone();
    let (done, process_minutes) = tokio::task::spawn_blocking(move || {
        let done = backfill(&path, &smon_history::Retention::default(), &metrics)?;
        let n = procs::backfill(&path, &processes)?;
        anyhow::Ok((done, n))
    })
    .await??;
    let filled = Backfilled {
        hosts: args.hosts,
        hours: args.backfill_h,
        values: done.values,
        process_minutes,
        seconds: t.elapsed().as_secs_f64(),
        bytes: du(&data),
    };
    eprintln!(
        "Backfilled {} values and {} host-minutes of processes in {:.0} s.",
        filled.values, filled.process_minutes, filled.seconds
    );
    let dead = free_port("127.0.0.1")?;
    let cluster_list: Vec<Value> = (0..clusters)
        .map(|k| {
            let hosts: Vec<Value> = (k..hosts)
                .step_by(clusters)
                .map(|h| {
                    json!({"name": format!("node{h}"), "address": format!("127.0.0.1:{dead}"),
                        "token": "backfilled-store-no-agent-0123"})
                })
                .collect();
            json!({"name": format!("c{k}"), "hosts": hosts})
        })
        .collect();
    let port = free_port("127.0.0.1")?;
    let config = dir.path().join("config_app.json");
    let cfg = json!({
        "server": {"host": "127.0.0.1", "port": port, "auth": {"public_read_only": true}},
        "monitor": {"mode": "app", "poll_interval_ms": args.interval_ms, "include_self": false,
            "clusters": cluster_list},
        "storage": {"dir": data},
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg)?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    let log = dir.path().join("smon-aggregator.log");
    let mut kids = Children::default();
    let pid = kids.spawn(
        "smon-aggregator",
        Command::new(&bins.aggregator)
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
    let base = format!("http://127.0.0.1:{port}/");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        kids.ensure_running(pid)?;
        if let Ok(r) = reqwest::get(format!("{base}healthz")).await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > until {
            bail!("the aggregator over the backfilled store did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The backfill's last minute of processes: the backfill took minutes, and "a minute ago"
    // is past its end by now.
    let queries = time_queries(&base, Some(to - 2 * MINUTE_MS)).await?;
    kids.stop(pid);
    Ok((filled, queries))
}

/// Runs the benchmark and prints (and with `--write`, writes) its section.
pub async fn run(args: HistoryArgs) -> anyhow::Result<()> {
    let root = workspace::workspace_root();
    let build = Build::with_debug(args.debug);
    let bins = Bins::get(&root, build)?;
    let machine = Machine::describe();
    let known = has_history(&root);
    if !known {
        eprintln!(
            "Warning: this workspace's aggregator has no embedded history yet: only \
             VictoriaMetrics' side and the remote-write CPU are measured."
        );
    }

    // 1. Bytes per value, and the queries on what was stored.
    eprintln!(
        "== history: {} hosts for {} s into the embedded store and VictoriaMetrics",
        args.hosts, args.duration_s
    );
    let vm = Victoria::start(&args.victoria_metrics).await?;
    let mut spec = FleetSpec::new(args.hosts, args.interval_ms);
    spec.storage = storage(true, Some(&format!("{}/api/v1/write", vm.base)), known);
    let mut f = Fleet::start(&bins, &root, &spec).await?;
    let start = Instant::now();
    f.idle(Duration::from_secs(args.duration_s)).await?;
    let fed_s = start.elapsed().as_secs();
    let metrics = reqwest::get(format!("{}metrics", f.base))
        .await?
        .text()
        .await?;
    let mut b = Bytes {
        sent: metric_sum(&metrics, "smon_remote_write_sent_samples_total").unwrap_or(0.0),
        dropped: metric_sum(&metrics, "smon_remote_write_dropped_samples_total").unwrap_or(0.0),
        ..Bytes::default()
    };
    (b.vm_rows, b.vm_bytes) = vm.sizes().await?;
    b.vm_du = du(&vm.data);
    if known {
        let db = f.dir().join("smon-data");
        b.smon_db = Some(du(&db));
    }
    let queries = if known {
        time_queries(&f.base, None).await?
    } else {
        Vec::new()
    };
    if known {
        // Stopped first: the aggregator checkpoints its WAL into the file as it closes.
        f.stop_aggregator();
        b.smon_raw = raw_tier_bytes(&f.dir().join("smon-data").join("smon.sqlite3"));
    }
    drop(f);
    drop(vm);
    // Said at once: an hour's figures must not be lost to a later step that fails.
    eprintln!("== history: step 1 after {fed_s} s: {b:?}; queries: {queries:?}");
    let backfilled = if known && args.backfill_h > 0 {
        Some(backfilled_queries(&bins, &args).await?)
    } else {
        None
    };

    // 2. CPU with history off and on.
    let mut cpu = Vec::new();
    let mut cpu_failed = Vec::new();
    for &n in args.cpu_hosts.iter().filter(|n| **n > 0) {
        let mut modes: Vec<(&'static str, bool, bool)> = vec![("history off", false, false)];
        if known {
            modes.push(("history on", true, false));
        }
        modes.push((
            if known {
                "history on + remote write"
            } else {
                "remote write"
            },
            known,
            true,
        ));
        for (mode, history, remote) in modes {
            eprintln!("== history: CPU at {n} hosts, {mode}");
            match cpu_window(&bins, &root, &args, n, mode, history, remote, known).await {
                Ok(c) => {
                    eprintln!("== history: {c:?}");
                    cpu.push(c);
                }
                // The figures of the other steps are still written; the row says why not.
                Err(e) => {
                    eprintln!("== history: CPU at {n} hosts, {mode}: {e:#}");
                    cpu_failed.push(format!("- CPU at {n} hosts, {mode}: not measured: {e:#}"));
                }
            }
        }
    }

    let text = markdown(
        &args,
        &machine,
        fed_s,
        &b,
        &Queries {
            stored: queries,
            backfilled,
        },
        &cpu,
        known,
    );
    let text = if cpu_failed.is_empty() {
        text
    } else {
        format!("{text}\n{}\n", cpu_failed.join("\n"))
    };
    crate::print_report(&text)?;
    if let Some(path) = &args.write {
        workspace::write_section(path, &text, START, END)?;
        eprintln!("Wrote {}.", path.display());
    }
    Ok(())
}

fn per_value(bytes: u64, values: f64) -> String {
    if values > 0.0 {
        format!("{:.2}", bytes as f64 / values)
    } else {
        "n/a".into()
    }
}

fn markdown(
    args: &HistoryArgs,
    m: &Machine,
    fed_s: u64,
    b: &Bytes,
    queries: &Queries,
    cpu: &[Cpu],
    known: bool,
) -> String {
    let mib = |x: u64| format!("{:.1} MiB", x as f64 / 1_048_576.0);
    let mut s = String::new();
    s.push_str(&format!(
        "{START}\n## History: bytes per value, CPU, query times\n\n"
    ));
    s.push_str(&format!(
        "Measured {}; {} builds.\n\n",
        m.summary(),
        if args.debug { "debug" } else { "release" }
    ));
    s.push_str(&format!("This run: `{}`.\n\n", command_line()));
    s.push_str(&format!(
        "### Bytes per stored value: {} hosts at {} ms for {} s\n\n",
        args.hosts, args.interval_ms, fed_s
    ));
    s.push_str("| | values | bytes | bytes per value |\n|---|---|---|---|\n");
    s.push_str(&format!(
        "| sent by remote write (dropped: {}) | {:.0} | | |\n",
        b.dropped, b.sent
    ));
    s.push_str(&format!(
        "| VictoriaMetrics, data + index (`vm_data_size_bytes`) | {} rows | {} | {} |\n",
        b.vm_rows,
        mib(b.vm_bytes),
        per_value(b.vm_bytes, b.vm_rows as f64)
    ));
    s.push_str(&format!(
        "| VictoriaMetrics, whole data directory | | {} | {} |\n",
        mib(b.vm_du),
        per_value(b.vm_du, b.sent)
    ));
    if let Some(raw) = b.smon_raw {
        s.push_str(&format!(
            "| smon, every-sample tier (`raw_*` tables and indexes, `dbstat`) | | {} | {} |\n",
            mib(raw),
            per_value(raw, b.sent)
        ));
    }
    match b.smon_db {
        Some(db) => s.push_str(&format!(
            "| smon, whole database with WAL (every tier, processes, indexes: an upper bound of the raw tier) | | {} | {} |\n",
            mib(db),
            per_value(db, b.sent)
        )),
        None => s.push_str("| smon's embedded store | | not in this build | |\n"),
    }
    s.push('\n');
    if cpu.is_empty() {
        s.push_str("CPU: not measured in this run (`--cpu-hosts 0`).\n\n");
    } else {
        s.push_str(&format!(
            "### Aggregator CPU at 1 Hz ({} s windows after {} s warm-up)\n\n| hosts | mode | CPU, % of one core | RSS peak |\n|---|---|---|---|\n",
            args.cpu_window_s, args.warmup_s
        ));
        for c in cpu {
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                c.hosts,
                c.mode,
                c.cpu.map_or("n/a".into(), |v| format!("{v:.1} %")),
                c.rss.map_or("n/a".into(), mib)
            ));
        }
        s.push('\n');
    }
    if !known {
        s.push_str("Query times: not measured (no embedded history in this build).\n");
    } else {
        query_table(
            &mut s,
            &format!("### Query times through REST (20 each, on the {fed_s} s stored above)"),
            &queries.stored,
        );
        if let Some((f, q)) = &queries.backfilled {
            s.push('\n');
            query_table(
                &mut s,
                &format!(
                    "### Query times through REST on a backfilled store: {} hosts x {} h of every sample ({} values), top processes for {} host-minutes; {} on disk, written in {:.0} s",
                    f.hosts,
                    f.hours,
                    f.values,
                    f.process_minutes,
                    mib(f.bytes),
                    f.seconds
                ),
                q,
            );
        }
    }
    s.push_str(&format!("{END}\n"));
    s
}

/// A table of query times under `title`.
fn query_table(s: &mut String, title: &str, queries: &[Query]) {
    s.push_str(&format!(
        "{title}\n\n| query | HTTP | points / rows | p50 | max | target |\n|---|---|---|---|---|---|\n"
    ));
    for q in queries {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} ms | {:.1} ms | ≤ {} ms |\n",
            q.what, q.status, q.points, q.p50_ms, q.max_ms, q.target_ms
        ));
    }
}

/// Step 2 for one fleet size and mode: the aggregator's CPU and RSS over the window.
#[allow(clippy::too_many_arguments)]
async fn cpu_window(
    bins: &Bins,
    root: &Path,
    args: &HistoryArgs,
    n: u64,
    mode: &'static str,
    history: bool,
    remote: bool,
    known: bool,
) -> anyhow::Result<Cpu> {
    let vm = if remote {
        Some(Victoria::start(&args.victoria_metrics).await?)
    } else {
        None
    };
    let mut spec = FleetSpec::new(n, args.interval_ms);
    spec.storage = storage(
        history,
        vm.as_ref()
            .map(|v| format!("{}/api/v1/write", v.base))
            .as_deref(),
        known,
    );
    let mut f = Fleet::start(bins, root, &spec).await?;
    f.idle(Duration::from_secs(args.warmup_s)).await?;
    let from = fleet::now_ms();
    f.idle(Duration::from_secs(args.cpu_window_s)).await?;
    let to = fleet::now_ms();
    let r = f.readings();
    Ok(Cpu {
        hosts: n,
        mode,
        cpu: fleet::cpu_percent(&r.aggregator, from, to),
        rss: fleet::rss_max(&r.aggregator, from, to),
    })
}
