//! The processes the benchmark starts, stopped when the guard is dropped: at the end of a run,
//! on an error, on a panic, and when Ctrl-C drops the benchmark's future.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rustix::process::{Pid, Signal, kill_process};

/// How long a server gets to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(2);

struct Proc {
    name: String,
    child: Child,
    /// Sent SIGTERM first (a server that should get to shut down cleanly), else SIGKILL.
    graceful: bool,
    /// Where its stderr goes, quoted when it dies early.
    log: Option<PathBuf>,
}

/// Owns every child process; dropping it stops them all and reaps them.
#[derive(Default)]
pub struct Children {
    procs: Vec<Proc>,
}

impl Children {
    /// Starts `cmd` and keeps it. `graceful` children get SIGTERM and a grace period at the
    /// end; others are killed. `log` is the file its stderr was sent to, if any.
    pub fn spawn(
        &mut self,
        name: &str,
        cmd: &mut Command,
        graceful: bool,
        log: Option<PathBuf>,
    ) -> anyhow::Result<u32> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.get_program()))?;
        let pid = child.id();
        self.procs.push(Proc {
            name: name.to_owned(),
            child,
            graceful,
            log,
        });
        Ok(pid)
    }

    /// The exit status of the child `pid`, `None` while it runs.
    pub fn try_wait(&mut self, pid: u32) -> anyhow::Result<Option<ExitStatus>> {
        let Some(p) = self.procs.iter_mut().find(|p| p.child.id() == pid) else {
            bail!("pid {pid} is not a child of the benchmark");
        };
        Ok(p.child.try_wait()?)
    }

    /// Fails, quoting the end of its log, when the child `pid` has exited.
    pub fn ensure_running(&mut self, pid: u32) -> anyhow::Result<()> {
        let Some(p) = self.procs.iter_mut().find(|p| p.child.id() == pid) else {
            bail!("pid {pid} is not a child of the benchmark");
        };
        if let Some(status) = p.child.try_wait()? {
            let tail = p
                .log
                .as_ref()
                .and_then(|l| std::fs::read_to_string(l).ok())
                .map(|t| {
                    let lines: Vec<&str> = t.lines().collect();
                    lines[lines.len().saturating_sub(20)..].join("\n")
                })
                .unwrap_or_default();
            bail!(
                "{} exited early ({status}); its last output:\n{tail}",
                p.name
            );
        }
        Ok(())
    }
}

impl Children {
    /// Stops the child `pid` now, as the guard would: SIGTERM and up to the grace period
    /// for a graceful one, then SIGKILL; reaped either way. Unknown or exited pids are left.
    pub fn stop(&mut self, pid: u32) {
        let Some(p) = self.procs.iter_mut().find(|p| p.child.id() == pid) else {
            return;
        };
        if !matches!(p.child.try_wait(), Ok(None)) {
            return;
        }
        if p.graceful {
            let _ = kill_process(Pid::from_child(&p.child), Signal::TERM);
            let deadline = Instant::now() + TERM_GRACE;
            while matches!(p.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        // Signal everyone first, then reap: 200 idle children stop in one pass.
        for p in &mut self.procs {
            if matches!(p.child.try_wait(), Ok(Some(_))) {
                continue;
            }
            let sig = if p.graceful {
                Signal::TERM
            } else {
                Signal::KILL
            };
            let _ = kill_process(Pid::from_child(&p.child), sig);
        }
        let deadline = Instant::now() + TERM_GRACE;
        for p in &mut self.procs {
            while p.graceful && Instant::now() < deadline {
                match p.child.try_wait() {
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    _ => break,
                }
            }
            if !matches!(p.child.try_wait(), Ok(Some(_))) {
                if p.graceful {
                    eprintln!(
                        "{} did not stop within {TERM_GRACE:?} of SIGTERM; killing it",
                        p.name
                    );
                }
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_stops_and_reaps_children() {
        let mut kids = Children::default();
        let a = kids
            .spawn("sleep", Command::new("sleep").arg("3600"), false, None)
            .expect("sleep");
        let b = kids
            .spawn(
                "sleep (term)",
                Command::new("sleep").arg("3600"),
                true,
                None,
            )
            .expect("sleep");
        kids.ensure_running(a).expect("running");
        kids.stop(b);
        assert!(
            kids.try_wait(b).expect("known").is_some(),
            "stopped child still running"
        );
        assert!(
            kids.ensure_running(b).is_err(),
            "a stopped child reads as running"
        );
        kids.ensure_running(a).expect("the other one still runs");
        drop(kids);
        for pid in [a, b] {
            // Reaped: no /proc entry left (not even a zombie).
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "{pid} still there"
            );
        }
    }

    #[test]
    fn early_exit_is_reported_with_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("err.log");
        let mut kids = Children::default();
        let pid = kids
            .spawn(
                "shell",
                Command::new("sh")
                    .arg("-c")
                    .arg("echo 'bad config' >&2; exit 3")
                    .stderr(std::fs::File::create(&log).expect("log")),
                true,
                Some(log),
            )
            .expect("sh");
        let mut err = String::new();
        for _ in 0..200 {
            if let Err(e) = kids.ensure_running(pid) {
                err = e.to_string();
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(
            err.contains("shell exited early") && err.contains("bad config"),
            "{err}"
        );
    }
}
