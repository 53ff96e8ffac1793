//! The Node.js scripts under `web/ui/tests/` that the fleet and end-to-end benchmarks run: where
//! they are, the arguments each takes (one place, so the benchmarks and the CI smoke test give
//! them alike), the tools they need (Node.js, its packages, chromium), and their JSON summary.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

/// The fan-out script (socket.io-client), relative to the workspace root.
pub const FANOUT: &str = "web/ui/tests/bench-fanout.mjs";
/// The overview page script (playwright-core, chromium).
pub const OVERVIEW: &str = "web/ui/tests/bench-overview.mjs";
/// The end-to-end latency script (playwright-core, chromium).
pub const E2E: &str = "web/ui/tests/e2e-latency.mjs";
/// The Applications page script (fetch, playwright-core, chromium).
pub const APPLICATIONS: &str = "web/ui/tests/bench-applications.mjs";

/// The npm packages the scripts import, under `web/ui/node_modules`.
const MODULES: [&str; 3] = ["socket.io-client", "socket.io-parser", "playwright-core"];

/// `bench-fanout.mjs <base> <clients> <window_s> <warmup_s> <progress_s>`.
pub fn fanout_args(
    base: &str,
    clients: u64,
    window_s: u64,
    warmup_s: u64,
    progress_s: u64,
) -> Vec<String> {
    vec![
        base.to_owned(),
        clients.to_string(),
        window_s.to_string(),
        warmup_s.to_string(),
        progress_s.to_string(),
    ]
}

/// `bench-overview.mjs <base> <window_s> <hosts> <warmup_s>`.
pub fn overview_args(base: &str, window_s: u64, hosts: u64, warmup_s: u64) -> Vec<String> {
    vec![
        base.to_owned(),
        window_s.to_string(),
        hosts.to_string(),
        warmup_s.to_string(),
    ]
}

/// `e2e-latency.mjs <base> <window_s> <hosts>`.
pub fn e2e_args(base: &str, window_s: u64, hosts: u64) -> Vec<String> {
    vec![base.to_owned(), window_s.to_string(), hosts.to_string()]
}

/// The chromium the scripts drive: `$CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Checks what the scripts need before a fleet is started for them: `node` runs, the npm
/// packages are installed in `web/ui`, and chromium is there. The error says how to get what
/// is missing.
pub fn check_tools(root: &Path, node: &Path) -> anyhow::Result<()> {
    match Command::new(node).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => bail!("`{} --version` failed ({})", node.display(), o.status),
        Err(e) => bail!(
            "cannot run Node.js ({}): {e}. The benchmark scripts need it (Debian: apt-get \
             install nodejs npm; scripts/test.sh installs it)",
            node.display()
        ),
    }
    let modules = root.join("web").join("ui").join("node_modules");
    for m in MODULES {
        ensure!(
            modules.join(m).is_dir(),
            "{}: {m} is not installed; run `npm ci` in web/ui",
            modules.display()
        );
    }
    let chromium = chromium();
    ensure!(
        chromium.is_file(),
        "{}: chromium is missing; bench-overview.mjs and e2e-latency.mjs need it (Debian: \
         apt-get install chromium; scripts/test.sh installs it; $CHROMIUM names another)",
        chromium.display()
    );
    Ok(())
}

/// A script's summary, its last stdout line: a JSON object.
pub fn parse_summary(line: &str) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_str(line.trim())
        .with_context(|| format!("the summary is not JSON: {line}"))?;
    ensure!(v.is_object(), "the summary is not a JSON object: {line}");
    Ok(v)
}

/// `v[key]` as a finite number, or an error naming the key and what it holds.
pub fn num(v: &Value, key: &str) -> anyhow::Result<f64> {
    v[key]
        .as_f64()
        .filter(|x| x.is_finite())
        .with_context(|| format!("{key} is {}, not a number", v[key]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_and_numbers() {
        let v = parse_summary("{\"p50_ms\": 3.5, \"name\": \"x\"}\n").expect("object");
        assert_eq!(num(&v, "p50_ms").expect("number"), 3.5);
        let e = num(&v, "name").expect_err("a string");
        assert!(e.to_string().contains("name is \"x\""), "{e}");
        assert!(num(&v, "missing").is_err());
        assert!(parse_summary("[1, 2]").is_err());
        assert!(parse_summary("Error: boom").is_err());
    }

    #[test]
    fn argument_order() {
        assert_eq!(
            fanout_args("http://h/", 5, 6, 2, 10),
            ["http://h/", "5", "6", "2", "10"]
        );
        assert_eq!(
            overview_args("http://h/", 6, 200, 2),
            ["http://h/", "6", "200", "2"]
        );
        assert_eq!(e2e_args("http://h/", 6, 200), ["http://h/", "6", "200"]);
    }

    #[test]
    fn a_missing_node_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = check_tools(dir.path(), Path::new("/nonexistent/node")).expect_err("no node");
        assert!(e.to_string().contains("cannot run Node.js"), "{e}");
    }
}
