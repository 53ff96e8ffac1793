//! A real cgroup made by a test, shared by the agent's and the aggregator's container tests
//! (included with `#[path]`): a directory in every hierarchy the collector reads (the cgroup v1
//! controllers, or the v2 unified tree) with the test's processes moved in. Needs root (or a
//! delegated tree). Dropping it kills the processes and removes the directories, even when the
//! test fails.

#![allow(dead_code)] // each test crate uses part of it

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use smon_collect::containers::Layout;

/// A shell that moves itself into the cgroup (`cgroup.procs` files as arguments), then holds
/// 32 MiB in a variable (charged to the cgroup: v1 charges memory where it is allocated) and
/// spins.
pub const BUSY: &str = r#"for f in "$@"; do echo $$ > "$f"; done
x=$(head -c 33554432 /dev/zero | tr '\0' a)
while :; do :; done"#;

/// The cgroup made for a test, and the processes in it.
pub struct TestCgroup {
    /// Directories made, deepest last (removed in reverse).
    pub made: Vec<PathBuf>,
    /// The processes moved in (killed on drop).
    pub children: Vec<Child>,
}

impl TestCgroup {
    /// A cgroup to be made for `children`.
    pub fn new(children: Vec<Child>) -> Self {
        Self {
            made: Vec::new(),
            children,
        }
    }

    /// Makes `rel` in every hierarchy of `layout` and moves the children in; `Err` says why
    /// it cannot. The `cgroup.procs` files of the new cgroup come back.
    pub fn make(&mut self, layout: &Layout, rel: &str) -> Result<Vec<PathBuf>, String> {
        let mut procs = Vec::new();
        for h in hierarchies(layout) {
            let mut dir = h.clone();
            for part in rel.split('/') {
                dir.push(part);
                if !dir.exists() {
                    std::fs::create_dir(&dir)
                        .map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
                    self.made.push(dir.clone());
                }
            }
            for c in &self.children {
                std::fs::write(dir.join("cgroup.procs"), c.id().to_string())
                    .map_err(|e| format!("move {} into {}: {e}", c.id(), dir.display()))?;
            }
            procs.push(dir.join("cgroup.procs"));
        }
        Ok(procs)
    }

    /// Kills the processes and removes the directories made.
    pub fn remove(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in self.made.drain(..).rev() {
            // A cgroup is busy for a moment after its last task is reaped.
            for _ in 0..50 {
                if std::fs::remove_dir(&d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The hierarchies the collector reads on this machine.
pub fn hierarchies(layout: &Layout) -> Vec<PathBuf> {
    layout.hierarchies()
}
