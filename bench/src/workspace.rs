//! What every benchmark needs from its surroundings: this workspace's release or debug binaries
//! (built when missing), the git revision they come from, free loopback ports, log files and the
//! command line of the run, so that a report says exactly what was measured and how.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use anyhow::{Context as _, ensure};

use crate::report;

/// A port on `ip` nobody listens on now. (Another process could take it before the child
/// binds it; on a benchmark machine that race is not worth a port-passing protocol.)
pub fn free_port(ip: &str) -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind((ip, 0)).with_context(|| format!("cannot bind {ip}:0"))?;
    Ok(l.local_addr()?.port())
}

/// A new file for a child's stderr.
pub fn log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// The workspace this benchmark was built in.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A release binary of this workspace to measure.
pub struct Package {
    /// Cargo package, also the binary's name, e.g. "smon-agent".
    pub name: &'static str,
    /// Source folders (relative to the workspace root) whose changes make the binary stale.
    pub sources: &'static [&'static str],
}

/// Which build of this workspace's binaries to use, and what to do with a stale one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// `target/release`, as the benchmarks measure: built when missing; one older than its
    /// sources is measured anyway, with a warning (the build is the reader's choice).
    Release,
    /// `target/debug`, as the CI smoke test runs it: built when missing or older than its
    /// sources (a stale aggregator would test yesterday's wire).
    Debug,
}

impl Build {
    /// A benchmark's `--debug` flag: debug builds for a smoke run, else release.
    pub fn with_debug(debug: bool) -> Self {
        if debug { Self::Debug } else { Self::Release }
    }

    fn dir(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Debug => "debug",
        }
    }

    fn cargo_args(self) -> &'static [&'static str] {
        match self {
            Self::Release => &["build", "--release"],
            Self::Debug => &["build"],
        }
    }
}

/// The release binaries of `packages`, in order (see [`Build::Release`]).
pub fn release_binaries(root: &Path, packages: &[Package]) -> anyhow::Result<Vec<PathBuf>> {
    binaries(root, Build::Release, packages)
}

/// The binaries of `packages`, in order, from the `build` directory of this workspace's target
/// directory (`$CARGO_TARGET_DIR` or `target/`). Those to build are built in one
/// `cargo build [--release] -p ...`.
pub fn binaries(root: &Path, build: Build, packages: &[Package]) -> anyhow::Result<Vec<PathBuf>> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bins: Vec<PathBuf> = packages
        .iter()
        .map(|p| target.join(build.dir()).join(p.name))
        .collect();
    let stale: Vec<bool> = packages
        .iter()
        .zip(&bins)
        .map(|(p, bin)| {
            let src = p
                .sources
                .iter()
                .filter_map(|d| newest_mtime(&root.join(d)))
                .max();
            let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok();
            src.zip(built).is_some_and(|(src, built)| src > built)
        })
        .collect();
    let to_build: Vec<String> = packages
        .iter()
        .zip(&bins)
        .zip(&stale)
        .filter(|((_, b), stale)| !b.is_file() || (build == Build::Debug && **stale))
        .flat_map(|((p, _), _)| ["-p".to_owned(), p.name.to_owned()])
        .collect();
    if !to_build.is_empty() {
        let what = format!(
            "cargo {} {}",
            build.cargo_args().join(" "),
            to_build.join(" ")
        );
        eprintln!("Binaries missing or stale; running `{what}`.");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(build.cargo_args())
            .args(&to_build)
            .current_dir(root)
            .status()
            .context("cannot run cargo")?;
        ensure!(status.success(), "`{what}` failed ({status})");
    }
    for ((p, bin), stale) in packages.iter().zip(&bins).zip(stale) {
        ensure!(bin.is_file(), "{}: not built", bin.display());
        if build == Build::Release && stale {
            eprintln!(
                "Warning: {} is older than {}; run `cargo build --release -p {}` to measure the \
                 current code.",
                bin.display(),
                p.sources.join(", "),
                p.name
            );
        }
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

/// " (git abc1234)" or " (git abc1234 + uncommitted changes in agent/ or proto/)" when any of
/// `paths` has changes; empty without git.
pub fn git_rev(root: &Path, paths: &[&str]) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) if !rev.is_empty() => {
            let mut args = vec!["status", "--porcelain", "--"];
            args.extend_from_slice(paths);
            let dirty = git(&args).is_some_and(|s| !s.is_empty());
            if dirty {
                let dirs: Vec<String> = paths.iter().map(|p| format!("{p}/")).collect();
                format!(
                    " (git {rev} + uncommitted changes in {})",
                    dirs.join(" or ")
                )
            } else {
                format!(" (git {rev})")
            }
        }
        _ => String::new(),
    }
}

/// ", 10.4 MiB binary", empty when the size is unknown.
pub fn binary_size(bin: &Path) -> String {
    std::fs::metadata(bin)
        .map(|m| format!(", {:.1} MiB binary", m.len() as f64 / (1024.0 * 1024.0)))
        .unwrap_or_default()
}

/// This run's command line, as `smon-bench agent ...`.
pub fn command_line() -> String {
    let mut words = vec!["smon-bench".to_owned()];
    words.extend(std::env::args().skip(1).map(|a| {
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
            format!("'{}'", a.replace('\'', r"'\''"))
        } else {
            a
        }
    }));
    words.join(" ")
}

/// Writes `section` into the markdown file `path` between the markers `start` and `end`,
/// keeping the rest of the file (see [`report::splice_between`]); creates the file when missing.
pub fn write_section(path: &Path, section: &str, start: &str, end: &str) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let text = report::splice_between(existing.as_deref(), section, start, end)
        .with_context(|| format!("{}", path.display()))?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
