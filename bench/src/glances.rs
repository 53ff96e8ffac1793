//! Glances (<https://nicolargo.github.io/glances/>) as a peer of the agent: installed from PyPI
//! (`glances[web]`) into a virtual environment under `target/bench/` when missing, and run as a
//! web server (`glances -w --disable-webui`) whose REST API the benchmark polls.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, ensure};

/// What the benchmark polls: every plugin's current values in one answer.
pub const API_PATH: &str = "/api/4/all";

/// The PyPI requirement installed into the virtual environment.
pub const REQUIREMENT: &str = "glances[web]";

/// The virtual environment, relative to the target directory.
const VENV: &str = "bench/glances-venv";

/// The `glances` executable: the one given, or the one in this workspace's virtual environment,
/// created with `python3 -m venv` and `pip install 'glances[web]'` when missing.
pub fn binary(given: Option<&Path>, root: &Path) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        ensure!(p.is_file(), "{}: no such file", p.display());
        return Ok(p.to_path_buf());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let venv = target.join(VENV);
    let bin = venv.join("bin").join("glances");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "Glances missing; installing `{REQUIREMENT}` from PyPI into {}.",
        venv.display()
    );
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("cannot run python3 (install python3 and python3-venv)")?;
    ensure!(status.success(), "`python3 -m venv` failed ({status})");
    let status = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", REQUIREMENT])
        .status()
        .context("cannot run pip in the virtual environment")?;
    ensure!(
        status.success(),
        "`pip install '{REQUIREMENT}'` failed ({status})"
    );
    ensure!(bin.is_file(), "{}: not installed by pip", bin.display());
    Ok(bin)
}

/// Arguments for a web server on 127.0.0.1:`port` that refreshes every second (the polling
/// rate of the others), without the web UI, the update check or the network discovery.
pub fn server_args(port: u16) -> Vec<String> {
    [
        "-w",
        "--disable-webui",
        "--disable-autodiscover",
        "--disable-check-update",
        "-t",
        "1",
        "-B",
        "127.0.0.1",
        "-p",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([port.to_string()])
    .collect()
}

/// "Glances 4.5.8 (PyPI `glances[web]`, psutil 7.2.2, Python 3.11.7)".
pub fn version(bin: &Path) -> String {
    let out = Command::new(bin).arg("--version").output().ok();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let python = bin
        .parent()
        .map(|d| d.join("python3"))
        .and_then(|py| Command::new(py).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    parse_version(&text, &python)
}

/// The version line from `glances --version` and `python3 --version` outputs.
fn parse_version(glances: &str, python: &str) -> String {
    let field = |key: &str| {
        glances.lines().find_map(|l| {
            l.strip_prefix(key)
                .map(|v| v.trim_start_matches(':').trim().to_owned())
        })
    };
    let mut extra = vec![format!("PyPI `{REQUIREMENT}`")];
    if let Some(v) = field("PsUtil version") {
        extra.push(format!("psutil {v}"));
    }
    if !python.is_empty() {
        extra.push(python.to_owned());
    }
    format!(
        "Glances {} ({})",
        field("Glances version").unwrap_or_else(|| "(version unknown)".into()),
        extra.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line() {
        let out = "Glances version:\t4.5.8\nGlances API version:\t4\nPsUtil version:\t\t7.2.2\n\
                   Log file:\t\t/tmp/glances-root.log\n";
        assert_eq!(
            parse_version(out, "Python 3.11.7"),
            "Glances 4.5.8 (PyPI `glances[web]`, psutil 7.2.2, Python 3.11.7)"
        );
        assert_eq!(
            parse_version("", ""),
            "Glances (version unknown) (PyPI `glances[web]`)"
        );
    }

    #[test]
    fn server_flags() {
        let a = server_args(61209);
        assert_eq!(a.first().map(String::as_str), Some("-w"));
        assert!(a.contains(&"--disable-webui".to_owned()));
        assert_eq!(a.last().map(String::as_str), Some("61209"));
    }
}
