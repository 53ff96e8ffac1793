//! Docker-shaped cgroups for `smon-bench agent --containers N`: a `/docker/<64 hex>` directory
//! in every hierarchy the agent's container collector reads (the v2 tree, or the v1
//! `cpuacct`, `memory`, `pids` and `blkio` controllers), each with one of the benchmark's idle
//! processes moved in, so that the agent's cost is measured with N containers to read. Needs
//! root (or a delegated cgroup tree). The directories are removed when the guard drops, after
//! the processes in them have been stopped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use smon_collect::containers::Layout;

/// The cgroups made; removed on drop (deepest first).
#[derive(Debug, Default)]
pub struct TestContainers {
    made: Vec<PathBuf>,
}

impl TestContainers {
    /// One container cgroup per pid of `pids`, under `/sys/fs/cgroup`.
    pub fn make(pids: &[u32]) -> anyhow::Result<TestContainers> {
        let Some(layout) = Layout::detect(Path::new("/sys/fs/cgroup")) else {
            bail!("--containers: no cgroup filesystem at /sys/fs/cgroup");
        };
        let mut made = TestContainers::default();
        for (i, pid) in pids.iter().enumerate() {
            let id = format!("5b{i:062x}");
            for h in layout.hierarchies() {
                for dir in [h.join("docker"), h.join("docker").join(&id)] {
                    if !dir.exists() {
                        std::fs::create_dir(&dir).with_context(|| {
                            format!("--containers: cannot make {} (run as root)", dir.display())
                        })?;
                        made.made.push(dir);
                    }
                }
                let procs = h.join("docker").join(&id).join("cgroup.procs");
                std::fs::write(&procs, pid.to_string()).with_context(|| {
                    format!("--containers: cannot move {pid} into {}", procs.display())
                })?;
            }
        }
        Ok(made)
    }
}

impl Drop for TestContainers {
    fn drop(&mut self) {
        for d in self.made.iter().rev() {
            // A cgroup is busy for a moment after its last task is reaped.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
