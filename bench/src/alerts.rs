//! `smon-bench alerts`: what the alert rule engine costs the real aggregator (issue 13: 20
//! rules at 10,000 hosts at 1 Hz add less than 10 % of one core).
//!
//! 1. **The engine alone**: [`smon_alerts::bench`], the workload of
//!    `alerts/examples/engine_cost.rs` (20 rules of every kind, `--hosts` hosts, disk history
//!    seeded), steady and with churn, timed in this process.
//! 2. **The real aggregator**: a simulated fleet (`smon-sim`, `--hosts` agents at 1 Hz) under
//!    `smon-aggregator` with history on, twice: with an `alerts` block without rules, then
//!    with the same 20 rules. Each run waits until every host is up, warms up for
//!    `--warmup-s`, then reads the aggregator's CPU and RSS from `/proc` over `--duration-s`.
//!    The one channel is a webhook to a small receiver in this process, which counts the
//!    POSTs (and the alerts in them); the `host_down` rule notifies it, the others notify
//!    nobody. The difference of the two CPU figures is the rules' cost. `--split` adds a run
//!    with the 19 rules other than `process_missing` (the one rule that makes the aggregator
//!    fetch whole process lists); `--rules FILE` loads other rules instead of the 20 (e.g.
//!    `bench/alerts-rules-seldom.json`: the same with thresholds the simulated fleet seldom
//!    crosses, to tell the cost per evaluation from the cost per firing).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use smon_alerts::bench::{self as engine_bench, Cost, Load};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::fleet::{self, Bins, Fleet, FleetSpec};
use crate::machine::Machine;
use crate::workspace::{self, Build, command_line};

/// Start marker of the section in BENCHMARKS.md.
pub const START: &str = "<!-- bench:alerts:start -->";
/// End marker.
pub const END: &str = "<!-- bench:alerts:end -->";

/// The name of the webhook channel the rules notify.
const CHANNEL: &str = "hook";

/// Arguments of `smon-bench alerts`.
#[derive(Debug, Clone, clap::Args)]
pub struct AlertsArgs {
    /// Simulated hosts (agents of smon-sim), and the hosts of the engine-alone run.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub hosts: u64,
    /// Each aggregator measurement window, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration_s: u64,
    /// Warm-up after every host is up and before each window, in seconds.
    #[arg(long, default_value_t = 10)]
    pub warmup_s: u64,
    /// The agents' sampling interval and the aggregator's poll interval, in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub interval_ms: u64,
    /// Simulated seconds of the engine-alone run (0: skip it).
    #[arg(long, default_value_t = 60)]
    pub engine_s: u64,
    /// The first simulated agent's address; the others count up from it.
    #[arg(long, default_value = fleet::FIRST_ADDR)]
    pub first_addr: String,
    /// A third aggregator run with the 19 rules other than `process_missing` (which makes
    /// the aggregator fetch whole process lists): what the rest of the rules cost.
    #[arg(long)]
    pub split: bool,
    /// A JSON array of rules (as in `alerts.rules[]`) loaded in the aggregator instead of the
    /// 20 of engine_cost (e.g. the same with thresholds the simulated fleet seldom crosses).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Use the debug builds (a smoke run: the figures then say little).
    #[arg(long)]
    pub debug: bool,
    /// Also rewrite this benchmark's section of this markdown file (e.g. BENCHMARKS.md),
    /// keeping everything outside its markers.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// One aggregator run's figures.
#[derive(Debug, Clone)]
pub struct AggregatorRun {
    /// What the `alerts` block held.
    pub mode: &'static str,
    /// Rules loaded.
    pub rules: usize,
    /// CPU over the window, % of one core.
    pub cpu: Option<f64>,
    /// Median RSS over the window, bytes.
    pub rss_median: Option<u64>,
    /// Largest RSS over the window, bytes.
    pub rss_max: Option<u64>,
    /// Alerts firing at the end of the window (`smon_alerts_firing`, summed).
    pub firing: f64,
    /// Notifications the aggregator counts as delivered (`smon_notify_sent_total`, summed).
    pub sent: f64,
    /// Webhook POSTs received during the window.
    pub posts_window: u64,
    /// Webhook POSTs received since the aggregator started.
    pub posts_total: u64,
    /// Alerts in those POSTs (their `alerts` arrays), since the start.
    pub alerts_total: u64,
    /// CPU over the window per thread name (`/proc/<pid>/task/*/comm`), % of one core,
    /// largest first.
    pub threads: Vec<(String, f64)>,
    /// Alerts firing at the end per rule, largest first (rules with none left out).
    pub by_rule: Vec<(String, f64)>,
}

/// Everything one `smon-bench alerts` measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The engine alone, steady then churn (empty with `--engine-s 0`).
    pub engine: Vec<Cost>,
    /// The aggregator without rules, then with them.
    pub aggregator: Vec<AggregatorRun>,
}

impl Report {
    /// CPU with the rules minus CPU without them, % of one core.
    pub fn cpu_added(&self) -> Option<f64> {
        let [off, on, ..] = self.aggregator.as_slice() else {
            return None;
        };
        Some(on.cpu? - off.cpu?)
    }
}

/// Counts what the receiver got.
#[derive(Debug, Default)]
struct Counts {
    posts: AtomicU64,
    alerts: AtomicU64,
}

/// A webhook receiver on 127.0.0.1: answers every request `200 OK` and counts the POSTs and
/// the alerts in their JSON bodies. Stops when dropped.
struct Receiver {
    port: u16,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind the webhook receiver")?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                conns.spawn(serve(stream, c.clone()));
            }
        });
        Ok(Self { port, counts, task })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/{CHANNEL}", self.port)
    }

    fn posts(&self) -> u64 {
        self.counts.posts.load(Ordering::Relaxed)
    }

    fn alerts(&self) -> u64 {
        self.counts.alerts.load(Ordering::Relaxed)
    }
}

/// One HTTP/1.1 request at the start of `buf`: (length of the head with its blank line,
/// length of the body from `Content-Length`, whether it is a POST); `None` while the head is
/// incomplete.
pub fn parse_head(buf: &[u8]) -> Option<(usize, usize, bool)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]);
    let body = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    Some((end, body, head.starts_with("POST ")))
}

/// The number of alerts in a notification's JSON (its `alerts` array; 0 when none).
pub fn alerts_in(body: &[u8]) -> u64 {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("alerts").and_then(Value::as_array).map(Vec::len))
        .unwrap_or(0) as u64
}

/// Serves one connection (keep-alive: request after request) until the peer closes it.
async fn serve(mut stream: tokio::net::TcpStream, counts: Arc<Counts>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let (head, body, post) = loop {
            if let Some(h) = parse_head(&buf)
                && buf.len() >= h.0 + h.1
            {
                break h;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        if post {
            counts.posts.fetch_add(1, Ordering::Relaxed);
            counts
                .alerts
                .fetch_add(alerts_in(&buf[head..head + body]), Ordering::Relaxed);
        }
        buf.drain(..head + body);
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}

/// CPU ticks of every thread of `pid` now, summed per thread name.
pub fn thread_ticks(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let name = text
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map_or("?", |(n, _)| n)
            .to_owned();
        if let Ok(ticks) = crate::procfs::parse_stat_ticks(&text) {
            *out.entry(name).or_default() += ticks;
        }
    }
    out
}

/// CPU per thread name between two [`thread_ticks`] readings `secs` apart, % of one core,
/// largest first (threads that exited in between are left out).
pub fn thread_cpu(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    secs: f64,
) -> Vec<(String, f64)> {
    let hz = crate::procfs::ticks_per_second() as f64;
    let mut v: Vec<(String, f64)> = after
        .iter()
        .map(|(n, t)| {
            let d = t.saturating_sub(before.get(n).copied().unwrap_or(0));
            (n.clone(), d as f64 / hz / secs.max(1e-9) * 100.0)
        })
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// `smon_alerts_firing` per rule from a `/metrics` text, largest first, zeros left out.
pub fn firing_by_rule(metrics: &str) -> Vec<(String, f64)> {
    let mut by: BTreeMap<String, f64> = BTreeMap::new();
    for l in metrics.lines() {
        let Some(rest) = l.strip_prefix("smon_alerts_firing{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let rule = labels
            .split("rule=\"")
            .nth(1)
            .and_then(|r| r.split_once('"'))
            .map_or("?", |(r, _)| r);
        if let Ok(n) = value.trim().parse::<f64>() {
            *by.entry(rule.to_owned()).or_default() += n;
        }
    }
    let mut v: Vec<(String, f64)> = by.into_iter().filter(|(_, n)| *n > 0.0).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// The `alerts` block: the webhook channel, and `rules`.
pub fn alerts_block(url: &str, rules: Vec<Value>) -> Value {
    json!({
        "rules": rules,
        "channels": [{"name": CHANNEL, "type": "webhook", "url": url}],
    })
}

/// One aggregator run: a fleet with history on and `rules`, measured over the window.
async fn aggregator_run(
    bins: &Bins,
    args: &AlertsArgs,
    mode: &'static str,
    rules: Vec<Value>,
) -> anyhow::Result<AggregatorRun> {
    let root = workspace::workspace_root();
    let receiver = Receiver::start().await?;
    let n_rules = rules.len();
    let mut spec = FleetSpec::new(args.hosts, args.interval_ms);
    spec.first_addr.clone_from(&args.first_addr);
    spec.storage = Some(json!({"enabled": true}));
    spec.alerts = Some(alerts_block(&receiver.url(), rules));
    eprintln!("== alerts: {} hosts, {mode}", args.hosts);
    let mut f = Fleet::start(bins, &root, &spec).await?;
    f.idle(Duration::from_secs(args.warmup_s)).await?;
    let posts_before = receiver.posts();
    let from = fleet::now_ms();
    let threads_before = thread_ticks(f.aggregator_pid);
    f.idle(Duration::from_secs(args.duration_s)).await?;
    let threads_after = thread_ticks(f.aggregator_pid);
    let to = fleet::now_ms();
    let posts_after = receiver.posts();
    let metrics = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?
        .get(format!("{}metrics", f.base))
        .send()
        .await?
        .text()
        .await?;
    let r = f.readings();
    let run = AggregatorRun {
        mode,
        rules: n_rules,
        cpu: fleet::cpu_percent(&r.aggregator, from, to),
        rss_median: fleet::rss_median(&r.aggregator, from, to),
        rss_max: fleet::rss_max(&r.aggregator, from, to),
        firing: crate::history::metric_sum(&metrics, "smon_alerts_firing").unwrap_or(0.0),
        sent: crate::history::metric_sum(&metrics, "smon_notify_sent_total").unwrap_or(0.0),
        posts_window: posts_after - posts_before,
        posts_total: receiver.posts(),
        alerts_total: receiver.alerts(),
        threads: thread_cpu(&threads_before, &threads_after, (to - from) as f64 / 1000.0),
        by_rule: firing_by_rule(&metrics),
    };
    eprintln!(
        "{mode}: CPU {} of one core, {} alerts firing, {} webhook POSTs in the window",
        run.cpu.map_or("n/a".into(), |c| format!("{c:.1} %")),
        run.firing,
        run.posts_window
    );
    Ok(run)
}

/// Runs the benchmark and prints (and with `--write`, writes) its section.
pub async fn run(args: AlertsArgs) -> anyhow::Result<()> {
    let root = workspace::workspace_root();
    let build = Build::with_debug(args.debug);
    let bins = Bins::get(&root, build)?;
    let machine = Machine::describe();
    let rev = workspace::git_rev(&root, &["bench", "alerts", "aggregator", "sim"]);
    let report = measure(&bins, &args).await?;
    let text = markdown(&args, &machine, &rev, &report);
    crate::print_report(&text)?;
    if let Some(path) = &args.write {
        workspace::write_section(path, &text, START, END)?;
        eprintln!("Wrote {}.", path.display());
    }
    Ok(())
}

/// The measurements: the engine alone first (nothing else of the benchmark running), then
/// the aggregator without and with the rules.
pub async fn measure(bins: &Bins, args: &AlertsArgs) -> anyhow::Result<Report> {
    let mut engine = Vec::new();
    if args.engine_s > 0 {
        let hosts = usize::try_from(args.hosts)?;
        for load in [Load::Steady, Load::Churn] {
            eprintln!(
                "== alerts: the engine alone, {hosts} hosts x {} s, {}",
                args.engine_s,
                load.as_str()
            );
            let seconds = args.engine_s;
            let cost = tokio::task::spawn_blocking(move || engine_bench::run(hosts, seconds, load))
                .await?;
            eprintln!("{cost}");
            engine.push(cost);
        }
    }
    let (label, rules) = match &args.rules {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let rules: Vec<Value> = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a JSON array of rules", path.display()))?;
            ("rules of --rules", rules)
        }
        None => (
            "20 rules (engine_cost's)",
            engine_bench::rules_json(CHANNEL),
        ),
    };
    let mut aggregator = vec![
        aggregator_run(bins, args, "no rules", Vec::new()).await?,
        aggregator_run(bins, args, label, rules).await?,
    ];
    if args.split {
        // `process_missing` makes the aggregator fetch the whole process list of every host
        // in its scope at every poll: the one rule whose cost is outside the engine.
        let rules = engine_bench::rules_json(CHANNEL)
            .into_iter()
            .filter(|r| r["when"] != "process_missing")
            .collect();
        aggregator
            .push(aggregator_run(bins, args, "19 rules (no `process_missing`)", rules).await?);
    }
    Ok(Report { engine, aggregator })
}

/// The report as a markdown section between [`START`] and [`END`].
pub fn markdown(args: &AlertsArgs, m: &Machine, rev: &str, r: &Report) -> String {
    let mib = |x: Option<u64>| {
        x.map_or("n/a".into(), |x| {
            format!("{:.1} MiB", x as f64 / 1_048_576.0)
        })
    };
    let pct = |x: Option<f64>| x.map_or("n/a".into(), |v| format!("{v:.1} %"));
    let mut s = String::new();
    s.push_str(&format!(
        "{START}\n## Alerts: what the rule engine costs the aggregator\n\n"
    ));
    s.push_str(&format!(
        "Measured {}; {} builds{rev}.\n\n",
        m.summary(),
        if args.debug { "debug" } else { "release" }
    ));
    s.push_str(&format!("This run: `{}`.\n\n", command_line()));
    s.push_str(&format!(
        "### The aggregator: {} simulated hosts at {} ms, history on ({} s windows after {} s warm-up)\n\n",
        args.hosts, args.interval_ms, args.duration_s, args.warmup_s
    ));
    s.push_str(
        "| alerts | CPU, % of one core | RSS median | RSS peak | alerts firing at the end | \
         webhook POSTs (window / whole run) | alerts in them | `smon_notify_sent_total` |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for a in &r.aggregator {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} / {} | {} | {} |\n",
            a.mode,
            pct(a.cpu),
            mib(a.rss_median),
            mib(a.rss_max),
            a.firing,
            a.posts_window,
            a.posts_total,
            a.alerts_total,
            a.sent
        ));
    }
    if let [off, on, rest @ ..] = r.aggregator.as_slice() {
        let d_rss = on
            .rss_median
            .zip(off.rss_median)
            .map(|(a, b)| format!("{:+.1} MiB", (a as f64 - b as f64) / 1_048_576.0));
        s.push_str(&format!(
            "| **the rules' cost** | **{}** | {} | | | | | |\n",
            r.cpu_added().map_or("n/a".into(), |d| format!("{d:+.1} %")),
            d_rss.unwrap_or_else(|| "n/a".into())
        ));
        for x in rest {
            if let (Some(a), Some(b)) = (x.cpu, off.cpu) {
                s.push_str(&format!(
                    "| cost of the {} | {:+.1} % | | | | | | |\n",
                    x.mode,
                    a - b
                ));
            }
        }
        s.push('\n');
        let list = |v: &[(String, f64)], unit: &str| -> String {
            if v.is_empty() {
                return "none".into();
            }
            v.iter()
                .map(|(n, x)| format!("{n} {x:.1}{unit}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for a in &r.aggregator {
            s.push_str(&format!(
                "- {}: aggregator CPU per thread: {}.\n",
                a.mode,
                list(&a.threads, " %")
            ));
        }
        s.push_str(&format!(
            "- Alerts firing at the end of the window with the rules, per rule: {}.\n\n",
            list(&on.by_rule, "")
        ));
        if let Some(d) = r.cpu_added() {
            s.push_str(&format!(
                "Target (issue 13): 20 rules at {} hosts add less than 10 % of one core: **{}** ({d:+.1} %).\n\n",
                args.hosts,
                if d < 10.0 { "met" } else { "not met" }
            ));
        }
    }
    if r.engine.is_empty() {
        s.push_str("The engine alone: not measured in this run (`--engine-s 0`).\n");
    } else {
        s.push_str(&format!(
            "### The engine alone (`smon_alerts::bench`, the workload of `alerts/examples/engine_cost.rs`): {} hosts x {} s, in this process\n\n",
            args.hosts, args.engine_s
        ));
        s.push_str(
            "| load | rules | us per host-evaluation | % of one core at 1 Hz | alerts active | firings and resolutions | notifications |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for c in &r.engine {
            s.push_str(&format!(
                "| {} | {} | {:.2} | {:.2} % | {} | {} | {} |\n",
                c.load.as_str(),
                c.rules,
                c.us_per_evaluation(),
                c.core_percent(),
                c.active,
                c.events,
                c.notifications
            ));
        }
    }
    s.push_str(&format!("{END}\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_parsed() {
        let req = b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_head(req), Some((req.len() - 5, 5, true)));
        assert_eq!(parse_head(b"POST /hook HTTP/1.1\r\nHost: x\r\n"), None);
        let get = b"GET / HTTP/1.1\r\ncontent-length:0\r\n\r\n";
        assert_eq!(parse_head(get), Some((get.len(), 0, false)));
    }

    #[test]
    fn firing_alerts_per_rule() {
        let m = "# HELP x\nsmon_alerts_firing{rule=\"cpu\",severity=\"warning\"} 3\n\
                 smon_alerts_firing{rule=\"disk\",severity=\"critical\"} 0\n\
                 smon_alerts_firing{rule=\"mem\",severity=\"warning\"} 7\n\
                 smon_notify_queued{channel=\"hook\"} 2\n";
        assert_eq!(
            firing_by_rule(m),
            vec![("mem".to_owned(), 7.0), ("cpu".to_owned(), 3.0)]
        );
    }

    #[test]
    fn this_process_has_threads() {
        let t = thread_ticks(std::process::id());
        assert!(!t.is_empty());
        let cpu = thread_cpu(&BTreeMap::new(), &t, 1.0);
        assert_eq!(cpu.len(), t.len());
    }

    #[test]
    fn alerts_are_counted() {
        assert_eq!(alerts_in(br#"{"alerts": [{}, {}], "title": "x"}"#), 2);
        assert_eq!(alerts_in(b"not json"), 0);
    }

    #[test]
    fn the_block_holds_the_channel_and_the_rules() {
        let b = alerts_block("http://127.0.0.1:1/hook", engine_bench::rules_json(CHANNEL));
        assert_eq!(b["rules"].as_array().map(Vec::len), Some(20));
        assert_eq!(b["channels"][0]["name"], CHANNEL);
        assert_eq!(b["rules"][0]["notify"][0], CHANNEL);
    }
}
