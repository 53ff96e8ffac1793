//! `smon-bench applications`: the fleet's Applications page (issue 15: at 500 simulated hosts
//! with 20 supervisord programs each, the page loads in under 1 s and updates live without
//! hanging).
//!
//! A simulated fleet ([`Fleet`]: `smon-sim`, which gives every host supervisord and its 20
//! programs, under a real `smon-aggregator` with anonymous read access) is started and waited
//! for until every host is up, then `web/ui/tests/bench-applications.mjs` (Node.js,
//! playwright-core, Debian chromium) measures, as a browser meets it:
//!
//! - `GET /api/v1/applications`: sequential calls, median, p95 and max, with the answer's size;
//! - the page `#/applications`: navigation to its rows drawn, a fresh browser context per load
//!   (nothing cached), at 1280x800 and 390x844;
//! - live updates (the page reads the route again every 3 s): the longest main-thread task of
//!   the last load of each viewport (`PerformanceObserver` `longtask`).
//!
//! The report says whether the target is met (the median load of each viewport under 1 s), and
//! with `--write FILE` replaces the section between [`START`] and [`END`] in FILE.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::fleet::{Bins, Fleet, FleetSpec, SCRIPT_SLACK};
use crate::machine::{self, Machine};
use crate::scripts::{self, APPLICATIONS, num};
use crate::workspace::{self, Build, command_line};

/// Start marker of the section in BENCHMARKS.md.
pub const START: &str = "<!-- bench:applications:start -->";
/// End marker.
pub const END: &str = "<!-- bench:applications:end -->";

/// The target of issue 15: the page drawn within this many ms of the navigation.
pub const TARGET_MS: f64 = 1000.0;

/// Arguments of `smon-bench applications`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplicationsArgs {
    /// Simulated hosts (agents of smon-sim), each with supervisord and 20 programs.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub hosts: u64,
    /// The agents' sampling interval and the aggregator's poll interval, in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub interval_ms: u64,
    /// Page loads per viewport (a fresh browser context each).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub loads: u64,
    /// Seconds of live updates watched after the last load of each viewport.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub live_s: u64,
    /// Sequential `GET /api/v1/applications` calls.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub rest_calls: u64,
    /// Seconds between every host being up and the measurement.
    #[arg(long, default_value_t = 5)]
    pub warmup_s: u64,
    /// The first simulated agent's address; the others count up from it.
    #[arg(long, default_value = crate::fleet::FIRST_ADDR)]
    pub first_addr: String,
    /// Use the debug builds (a smoke run: the figures then say little about a release).
    #[arg(long)]
    pub debug: bool,
    /// The Node.js executable that runs web/ui/tests/bench-applications.mjs (chromium is
    /// /usr/bin/chromium, or $CHROMIUM).
    #[arg(long, default_value = "node")]
    pub node: std::path::PathBuf,
    /// Also rewrite this benchmark's section of this markdown file (e.g. BENCHMARKS.md),
    /// keeping everything outside its markers.
    #[arg(long)]
    pub write: Option<std::path::PathBuf>,
}

/// `bench-applications.mjs <base> <loads> <live_s> <rest_calls>`.
pub fn script_args(base: &str, loads: u64, live_s: u64, rest_calls: u64) -> Vec<String> {
    vec![
        base.to_owned(),
        loads.to_string(),
        live_s.to_string(),
        rest_calls.to_string(),
    ]
}

/// The route's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Rest {
    /// Sequential calls.
    pub calls: u64,
    /// Median, p95 and max time of one call (request to body read), ms.
    pub median_ms: f64,
    /// p95.
    pub p95_ms: f64,
    /// Max.
    pub max_ms: f64,
    /// Programs listed.
    pub programs: u64,
    /// Program-host entries (the chips of the page).
    pub entries: u64,
    /// Entries with CPU and memory (their host's latest sample held its process list).
    pub entries_with_sums: u64,
    /// Programs with a memory sum above 0.
    pub programs_with_sums: u64,
    /// The JSON's size, decoded, bytes.
    pub bytes: u64,
    /// The answer's `Content-Encoding` ("identity" when none).
    pub content_encoding: String,
    /// Calls asking for no compression (`Accept-Encoding: identity`), and their median, ms;
    /// `None` when the script did not make them.
    pub identity: Option<(u64, f64)>,
}

/// One viewport's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Viewport {
    /// Width, CSS px.
    pub width: u64,
    /// Height.
    pub height: u64,
    /// Each load: navigation to rows drawn, ms.
    pub loads_ms: Vec<f64>,
    /// Median load.
    pub median_ms: f64,
    /// Slowest load.
    pub max_ms: f64,
    /// Program rows drawn.
    pub rows: u64,
    /// Host chips drawn.
    pub chips: u64,
    /// Seconds of live updates watched.
    pub live_s: u64,
    /// Long tasks (over 50 ms) seen meanwhile.
    pub long_tasks: u64,
    /// The longest of them, ms (0 when none).
    pub longest_task_ms: f64,
    /// `app.js` as the browser fetched it: (bytes on the wire with headers, body as sent,
    /// body decoded), from resource timing; `None` when not reported.
    pub app_js: Option<(u64, u64, u64)>,
    /// The page's first `GET /api/v1/applications` likewise.
    pub applications_json: Option<(u64, u64, u64)>,
    /// The last load's timeline: (step, ms from the navigation's start), earliest first; steps
    /// the script could not time left out.
    pub timeline: Vec<(String, f64)>,
}

/// What `bench-applications.mjs` printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The route.
    pub rest: Rest,
    /// 1280x800, then 390x844.
    pub viewports: Vec<Viewport>,
}

fn whole(v: &Value, key: &str) -> anyhow::Result<u64> {
    let x = num(v, key)?;
    anyhow::ensure!(
        x >= 0.0 && x.fract() == 0.0,
        "{key} is {x}, not a whole number"
    );
    Ok(x as u64)
}

impl Summary {
    /// Parses the script's last stdout line; the error names the missing or bad field.
    pub fn parse(line: &str) -> anyhow::Result<Self> {
        let v = scripts::parse_summary(line)?;
        let r = &v["rest"];
        anyhow::ensure!(r.is_object(), "rest is {}, not an object", r);
        let rest = Rest {
            calls: whole(r, "calls").context("rest")?,
            median_ms: num(r, "median_ms").context("rest")?,
            p95_ms: num(r, "p95_ms").context("rest")?,
            max_ms: num(r, "max_ms").context("rest")?,
            programs: whole(r, "programs").context("rest")?,
            entries: whole(r, "entries").context("rest")?,
            entries_with_sums: whole(r, "entries_with_sums").context("rest")?,
            programs_with_sums: whole(r, "programs_with_sums").context("rest")?,
            bytes: whole(r, "bytes").context("rest")?,
            content_encoding: r["content_encoding"]
                .as_str()
                .unwrap_or("identity")
                .to_owned(),
            identity: if r.get("identity_calls").is_some() {
                Some((
                    whole(r, "identity_calls").context("rest")?,
                    num(r, "identity_median_ms").context("rest")?,
                ))
            } else {
                None
            },
        };
        let vps = v["viewports"]
            .as_array()
            .with_context(|| format!("viewports is {}, not an array", v["viewports"]))?;
        anyhow::ensure!(!vps.is_empty(), "viewports is empty");
        let mut viewports = Vec::new();
        for (i, x) in vps.iter().enumerate() {
            let at = || format!("viewports[{i}]");
            let loads_ms = x["loads_ms"]
                .as_array()
                .with_context(|| format!("{}.loads_ms is not an array", at()))?
                .iter()
                .map(|l| l.as_f64().filter(|f| f.is_finite()))
                .collect::<Option<Vec<f64>>>()
                .with_context(|| format!("{}.loads_ms holds a non-number", at()))?;
            let sizes = |key: &str| -> anyhow::Result<Option<(u64, u64, u64)>> {
                let js = &x[key];
                if !js.is_object() {
                    return Ok(None);
                }
                let of = |k: &str| whole(js, k).with_context(|| format!("{}.{key}", at()));
                Ok(Some((
                    of("transfer_bytes")?,
                    of("encoded_bytes")?,
                    of("decoded_bytes")?,
                )))
            };
            let mut timeline: Vec<(String, f64)> = x["timeline"]
                .as_object()
                .map(|t| {
                    t.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                        .collect()
                })
                .unwrap_or_default();
            timeline.sort_by(|a, b| a.1.total_cmp(&b.1));
            let app_js = sizes("app_js")?;
            let applications_json = sizes("applications_json")?;
            viewports.push(Viewport {
                width: whole(x, "width").with_context(at)?,
                height: whole(x, "height").with_context(at)?,
                loads_ms,
                median_ms: num(x, "median_ms").with_context(at)?,
                max_ms: num(x, "max_ms").with_context(at)?,
                rows: whole(x, "rows").with_context(at)?,
                chips: whole(x, "chips").with_context(at)?,
                live_s: whole(x, "live_s").with_context(at)?,
                long_tasks: whole(x, "long_tasks").with_context(at)?,
                longest_task_ms: num(x, "longest_task_ms").with_context(at)?,
                app_js,
                applications_json,
                timeline,
            });
        }
        Ok(Self { rest, viewports })
    }

    /// Whether the target is met: the median load of every viewport under [`TARGET_MS`].
    pub fn target_met(&self) -> bool {
        self.viewports.iter().all(|v| v.median_ms < TARGET_MS)
    }

    /// The longest main-thread task over every viewport's live updates, ms.
    pub fn longest_task_ms(&self) -> f64 {
        self.viewports
            .iter()
            .map(|v| v.longest_task_ms)
            .fold(0.0, f64::max)
    }
}

/// What the report says besides the figures.
#[derive(Debug, Clone)]
pub struct Context {
    /// The machine.
    pub machine: Machine,
    /// Debug builds.
    pub debug: bool,
    /// " (git abc1234)" and the like.
    pub rev: String,
    /// Versions of the binaries, Node.js and chromium.
    pub versions: Vec<String>,
    /// The exact command.
    pub command: String,
    /// Load average (1 min) before and after the run.
    pub load: (f64, f64),
    /// The aggregator's mean CPU, % of one core, over the measurement.
    pub aggregator_cpu: Option<f64>,
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0} ms")
    } else {
        format!("{x:.1} ms")
    }
}

/// 10000 as "10,000".
fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn kib(b: u64) -> String {
    format!("{} KiB", thousands((b as f64 / 1024.0).round() as u64))
}

/// The report as a markdown section between [`START`] and [`END`].
pub fn markdown(args: &ApplicationsArgs, c: &Context, s: &Summary) -> String {
    let m = &c.machine;
    let build = if c.debug { "debug" } else { "release" };
    let mut o = String::new();
    o.push_str(&format!(
        "{START}\n## Applications page: {} simulated hosts x 20 programs\n\n",
        args.hosts
    ));
    if c.debug {
        o.push_str(
            "**Debug builds: a smoke run of the benchmark.** The figures below say little about \
             a release build; the release figures come from the same command without `--debug`.\n\n",
        );
    }
    o.push_str(&format!(
        "Measured {}; {build} builds{}; \
         load average {:.2} before, {:.2} after. {}.\n\n",
        m.summary(),
        c.rev,
        c.load.0,
        c.load.1,
        c.versions.join("; ")
    ));
    o.push_str(&format!(
        "`smon-sim` gives every host supervisord and 20 programs in 4 groups (one stopped on a \
         host in ten, fatal on one in fifty), their processes marked with their program as the \
         agent marks them; the aggregator polls the {} hosts every {} ms{}. Then \
         `web/ui/tests/bench-applications.mjs` reads the route {} times in a row, loads the \
         page {} times per viewport in headless chromium (a fresh browser context each time), \
         and watches {} s of live updates (a read every 3 s) after the last load of each.\n\n",
        args.hosts,
        args.interval_ms,
        c.aggregator_cpu
            .map(|x| format!(" (its CPU during the measurement: {x:.0} % of one core)"))
            .unwrap_or_default(),
        args.rest_calls,
        args.loads,
        args.live_s
    ));
    o.push_str(&format!("This run: `{}`.\n\n", c.command));
    let r = &s.rest;
    o.push_str("| what | figure |\n|---|---|\n");
    o.push_str(&format!(
        "| `GET /api/v1/applications` ({} programs, {} program-host entries, {} of JSON, sent {}) | median {}, p95 {}, max {} ({} sequential calls) |\n",
        r.programs,
        thousands(r.entries),
        kib(r.bytes),
        r.content_encoding,
        ms(r.median_ms),
        ms(r.p95_ms),
        ms(r.max_ms),
        r.calls
    ));
    if let Some((n, median)) = r.identity {
        o.push_str(&format!(
            "| the same uncompressed (`Accept-Encoding: identity`) | median {} ({n} calls) |\n",
            ms(median)
        ));
    }
    o.push_str(&format!(
        "| entries with CPU and memory (as the agent sums them, or from the process list of a watched host) | {} of {} ({} programs with a sum above 0) |\n",
        thousands(r.entries_with_sums),
        thousands(r.entries),
        r.programs_with_sums
    ));
    for v in &s.viewports {
        o.push_str(&format!(
            "| the page, {}x{}: navigation to rows drawn | median {}, max {} ({} loads: {}) |\n",
            v.width,
            v.height,
            ms(v.median_ms),
            ms(v.max_ms),
            v.loads_ms.len(),
            v.loads_ms
                .iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for v in &s.viewports {
        o.push_str(&format!(
            "| {} s of live updates at {}x{}: longest main-thread task | {} ({} tasks over 50 ms; {} rows, {} chips drawn) |\n",
            v.live_s,
            v.width,
            v.height,
            if v.long_tasks == 0 {
                "none over 50 ms".to_owned()
            } else {
                ms(v.longest_task_ms)
            },
            v.long_tasks,
            v.rows,
            v.chips
        ));
    }
    for v in s.viewports.iter().filter(|v| !v.timeline.is_empty()) {
        o.push_str(&format!(
            "| the last load at {}x{}, ms from the navigation's start | {} |\n",
            v.width,
            v.height,
            v.timeline
                .iter()
                .map(|(k, x)| format!("{} {x:.0}", k.trim_end_matches("_ms").replace('_', " ")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some((wire, sent, decoded)) = s.viewports.iter().find_map(|v| v.applications_json) {
        o.push_str(&format!(
            "| the route's JSON as the page fetched it | {} sent, {} decoded ({} on the wire with headers) |\n",
            kib(sent),
            kib(decoded),
            kib(wire)
        ));
    }
    if let Some((wire, sent, decoded)) = s.viewports.iter().find_map(|v| v.app_js) {
        o.push_str(&format!(
            "| `app.js` as the browser fetched it | {} sent, {} decoded ({} on the wire with headers) |\n",
            kib(sent),
            kib(decoded),
            kib(wire)
        ));
    }
    o.push('\n');
    let worst = s.viewports.iter().map(|v| v.median_ms).fold(0.0, f64::max);
    o.push_str(&format!(
        "Target (issue 15): the page at {} hosts x 20 programs drawn in under 1 s (the median \
         load of each viewport): **{}** (slowest median {}{}). Live updates: longest \
         main-thread task {}.\n",
        args.hosts,
        if s.target_met() { "met" } else { "missed" },
        ms(worst),
        if c.debug { ", debug builds" } else { "" },
        if s.longest_task_ms() > 0.0 {
            ms(s.longest_task_ms())
        } else {
            "none over 50 ms".to_owned()
        }
    ));
    o.push_str(&format!("{END}\n"));
    o
}

/// The 1-minute load average.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Runs the benchmark and prints (and with `--write`, writes) its section.
pub async fn run(args: ApplicationsArgs) -> anyhow::Result<()> {
    let root = workspace::workspace_root();
    let build = Build::with_debug(args.debug);
    let bins = Bins::get(&root, build)?;
    scripts::check_tools(&root, &args.node)?;
    let machine = Machine::describe();
    let rev = workspace::git_rev(&root, &["bench", "sim", "aggregator", "web"]);
    let load_start = loadavg();
    let spec = FleetSpec {
        first_addr: args.first_addr.clone(),
        ..FleetSpec::new(args.hosts, args.interval_ms)
    };
    let mut fleet = Fleet::start(&bins, &root, &spec).await?;
    anyhow::ensure!(
        fleet.public_read_only,
        "this aggregator has no server.auth.public_read_only: the script reads anonymously"
    );
    fleet.idle(Duration::from_secs(args.warmup_s)).await?;
    eprintln!(
        "== the Applications page of {} hosts: {} REST calls, {} loads per viewport, {} s live",
        args.hosts, args.rest_calls, args.loads, args.live_s
    );
    let base = fleet.base.clone();
    let t0 = crate::fleet::now_ms();
    // Start-up and loads: a generous 30 s per load on a loaded debug build.
    let limit =
        Duration::from_secs(2 * (args.live_s + 30 * args.loads) + args.rest_calls) + SCRIPT_SLACK;
    let run = fleet
        .run_script(
            &args.node,
            &root,
            APPLICATIONS,
            &script_args(&base, args.loads, args.live_s, args.rest_calls),
            limit,
            false,
        )
        .await?;
    let t1 = crate::fleet::now_ms();
    let summary = Summary::parse(&run.summary)
        .map_err(|e| e.context(format!("{APPLICATIONS} printed an unexpected summary")))?;
    let aggregator_cpu = crate::fleet::cpu_percent(&fleet.readings().aggregator, t0, t1);
    fleet.ensure_running()?;
    let versions = vec![
        format!(
            "{}{}",
            machine::version_of(&bins.aggregator).unwrap_or_else(|| "smon-aggregator".into()),
            workspace::binary_size(&bins.aggregator)
        ),
        format!(
            "Node.js {}",
            machine::version_of(&args.node).unwrap_or_else(|| "(version unknown)".into())
        ),
        machine::version_of(&scripts::chromium())
            .unwrap_or_else(|| "chromium (version unknown)".into()),
    ];
    drop(fleet);
    let ctx = Context {
        machine,
        debug: args.debug,
        rev,
        versions,
        command: command_line(),
        load: (load_start, loadavg()),
        aggregator_cpu,
    };
    let text = markdown(&args, &ctx, &summary);
    crate::print_report(&text)?;
    if let Some(path) = &args.write {
        workspace::write_section(path, &text, START, END)?;
        eprintln!("Wrote {}.", path.display());
    }
    if !summary.target_met() {
        eprintln!("Target missed: the page took 1 s or more (median) in a viewport.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const LINE: &str = r#"{"rest":{"calls":40,"median_ms":153.2,"p95_ms":271,"max_ms":315.5,"programs":20,"entries":10000,"entries_with_sums":0,"programs_with_sums":0,"bytes":1409024,"content_encoding":"gzip","identity_calls":10,"identity_median_ms":120.4},"viewports":[{"width":1280,"height":800,"loads_ms":[900,950,1000,800,850],"median_ms":900,"max_ms":1000,"rows":20,"chips":59,"live_s":15,"long_tasks":2,"longest_task_ms":81,"app_js":{"transfer_bytes":80000,"encoded_bytes":79000,"decoded_bytes":258000},"applications_json":{"transfer_bytes":150000,"encoded_bytes":149000,"decoded_bytes":1409024},"timeline":{"html_ms":20,"app_js_ms":90,"me_ms":null,"drawn_ms":700}},{"width":390,"height":844,"loads_ms":[700],"median_ms":700,"max_ms":700,"rows":20,"chips":59,"live_s":15,"long_tasks":0,"longest_task_ms":0,"app_js":null}]}"#;

    #[test]
    fn the_scripts_summary_is_read() {
        let s = Summary::parse(LINE).expect("parsed");
        assert_eq!(s.rest.entries, 10_000);
        assert_eq!(s.rest.content_encoding, "gzip");
        assert_eq!(s.rest.identity, Some((10, 120.4)));
        assert_eq!(s.viewports.len(), 2);
        assert_eq!(s.viewports[0].app_js, Some((80_000, 79_000, 258_000)));
        assert_eq!(s.viewports[1].app_js, None);
        assert_eq!(
            s.viewports[0].applications_json,
            Some((150_000, 149_000, 1_409_024))
        );
        assert_eq!(s.viewports[0].loads_ms.len(), 5);
        assert!(s.target_met());
        assert_eq!(s.longest_task_ms(), 81.0);
        let slow = LINE.replace("\"median_ms\":700", "\"median_ms\":1000");
        assert!(!Summary::parse(&slow).expect("parsed").target_met());
    }

    #[test]
    fn a_bad_summary_names_the_field() {
        let e = Summary::parse(&LINE.replace("\"chips\":59,", "\"chips\":\"x\","))
            .expect_err("chips is a string");
        assert!(
            format!("{e:#}").contains("viewports[0]: chips is \"x\""),
            "{e:#}"
        );
        let e = Summary::parse(&LINE.replace("\"bytes\":1409024", "\"bytes\":-1"))
            .expect_err("bytes is negative");
        assert!(format!("{e:#}").contains("rest: bytes is -1"), "{e:#}");
        assert!(Summary::parse("Error: boom").is_err());
        assert!(Summary::parse(r#"{"rest":{},"viewports":[]}"#).is_err());
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        a: ApplicationsArgs,
    }

    #[test]
    fn arguments_and_defaults() {
        let a = Cli::try_parse_from(["x"]).expect("defaults").a;
        assert_eq!((a.hosts, a.loads, a.live_s, a.rest_calls), (500, 5, 15, 40));
        assert!(!a.debug && a.write.is_none());
        let a = Cli::try_parse_from(["x", "--hosts", "20", "--debug", "--loads", "2"])
            .expect("parsed")
            .a;
        assert_eq!((a.hosts, a.loads, a.debug), (20, 2, true));
        assert!(Cli::try_parse_from(["x", "--hosts", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--loads", "0"]).is_err());
        assert_eq!(
            script_args("http://h/", 5, 15, 40),
            ["http://h/", "5", "15", "40"]
        );
    }

    #[test]
    fn the_section_has_its_markers_and_the_verdict() {
        let s = Summary::parse(LINE).expect("parsed");
        let a = Cli::try_parse_from(["x", "--debug"]).expect("parsed").a;
        let c = Context {
            machine: Machine::describe(),
            debug: true,
            rev: String::new(),
            versions: vec!["smon-aggregator 0.1.0".into()],
            command: "smon-bench applications --debug".into(),
            load: (1.0, 2.0),
            aggregator_cpu: Some(42.0),
        };
        let text = markdown(&a, &c, &s);
        assert!(text.starts_with(START) && text.ends_with(&format!("{END}\n")));
        assert!(text.contains("**Debug builds"), "{text}");
        assert!(text.contains("**met**"), "{text}");
        assert!(text.contains("median 900 ms, max 1000 ms (5 loads: 900, 950, 1000, 800, 850)"));
        assert!(text.contains("`smon-bench applications --debug`"));
        assert!(text.contains("sent gzip"));
        assert!(text.contains("| 146 KiB sent, 1,376 KiB decoded"), "{text}");
        assert!(
            text.contains("| the last load at 1280x800, ms from the navigation's start | html 20, app js 90, drawn 700 |"),
            "{text}"
        );
        assert!(
            text.contains("10,000 program-host entries, 1,376 KiB of JSON"),
            "{text}"
        );
        assert_eq!(
            (thousands(0), thousands(999), thousands(1000)),
            ("0".into(), "999".into(), "1,000".into())
        );
        assert!(text.contains("| median 120 ms (10 calls) |"), "{text}");
    }
}
