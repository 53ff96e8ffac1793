//! supervisord's programs in the sample: the agent's supervisor task (which talks to
//! supervisord, and may wait on it) leaves its latest reading in a [`ProgramsFeed`]; the
//! collector takes it as it is, with its age, and marks the processes of each program.
//! The sampler never waits for supervisord.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use smon_proto::{Process, Program, Programs};

/// The latest reading of supervisord, shared between the task that reads it and the
/// collector. Cheap to clone.
#[derive(Clone)]
pub struct ProgramsFeed {
    inner: Arc<Mutex<Reading>>,
}

/// What the feed holds.
struct Reading {
    url: String,
    programs: Vec<Program>,
    /// When `programs` was read (the feed's creation until then).
    read_at: Instant,
    error: Option<String>,
}

impl ProgramsFeed {
    /// An empty feed for supervisord at `url` (shown in the sample; no credentials).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Reading {
                url: url.into(),
                programs: Vec::new(),
                read_at: Instant::now(),
                error: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reading> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh list of programs (sorted here by group and name); clears the error.
    pub fn update(&self, mut programs: Vec<Program>) {
        programs.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        let mut r = self.lock();
        r.programs = programs;
        r.read_at = Instant::now();
        r.error = None;
    }

    /// supervisord could not be read: the last list stays, with its age, and `error`.
    pub fn fail(&self, error: String) {
        self.lock().error = Some(error);
    }

    /// The sample's `Programs` as of now.
    pub fn read(&self) -> Programs {
        let r = self.lock();
        Programs {
            programs: r.programs.clone(),
            error: r.error.clone(),
            age_ms: r.read_at.elapsed().as_millis() as u64,
            url: r.url.clone(),
        }
    }
}

/// Sets `Process.program` to `group:name` on each running program's process and on its
/// descendants (through `ppid`); clears it elsewhere.
pub fn mark(processes: &mut [Process], programs: &[Program]) {
    let owner: HashMap<u32, String> = programs
        .iter()
        .filter(|p| p.pid != 0)
        .map(|p| (p.pid, format!("{}:{}", p.group, p.name)))
        .collect();
    if owner.is_empty() {
        // No program running (or no supervisord): nothing to walk.
        for p in processes.iter_mut() {
            p.program.clear();
        }
        return;
    }
    let parent: HashMap<u32, u32> = processes.iter().map(|p| (p.pid, p.ppid)).collect();
    for p in processes.iter_mut() {
        p.program.clear();
        // Walk up to a program's pid (or the root); the depth bound guards against a table
        // read mid-change with a cycle in it.
        let mut at = p.pid;
        for _ in 0..64 {
            if let Some(name) = owner.get(&at) {
                p.program.clone_from(name);
                break;
            }
            match parent.get(&at) {
                Some(&pp) if pp != 0 && pp != at => at = pp,
                _ => break,
            }
        }
    }
}

/// Sets each program's `cpu_percent` and `memory_bytes` to the sums over the processes
/// marked with it by [`mark`] (0 for a program without processes), so that a sample without
/// its process list (a summary) still carries them.
pub fn sum(processes: &[Process], programs: &mut [Program]) {
    let mut sums: HashMap<(&str, &str), (f32, u64)> = HashMap::new();
    for p in processes {
        if let Some(key) = p.program.split_once(':') {
            let s = sums.entry(key).or_default();
            s.0 += p.cpu_percent;
            s.1 += p.memory_bytes;
        }
    }
    for pr in programs {
        let (cpu, mem) = sums
            .get(&(pr.group.as_str(), pr.name.as_str()))
            .copied()
            .unwrap_or_default();
        pr.cpu_percent = Some(cpu);
        pr.memory_bytes = Some(mem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, ppid: u32) -> Process {
        Process {
            pid,
            ppid,
            ..Process::default()
        }
    }

    fn program(group: &str, name: &str, pid: u32) -> Program {
        Program {
            group: group.into(),
            name: name.into(),
            pid,
            state: if pid == 0 { "STOPPED" } else { "RUNNING" }.into(),
            ..Program::default()
        }
    }

    #[test]
    fn a_programs_pid_and_its_descendants_are_marked() {
        let mut procs = vec![
            proc(1, 0),
            proc(10, 1), // supervisord
            proc(20, 10),
            proc(21, 20),
            proc(22, 21),
            proc(30, 10),
            proc(40, 1),
        ];
        procs[6].program = "stale:mark".into();
        let programs = [
            program("web", "web", 20),
            program("jobs", "a", 30),
            program("jobs", "b", 0),
        ];
        mark(&mut procs, &programs);
        let marks: Vec<(u32, &str)> = procs.iter().map(|p| (p.pid, p.program.as_str())).collect();
        assert_eq!(
            marks,
            [
                (1, ""),
                (10, ""),
                (20, "web:web"),
                (21, "web:web"),
                (22, "web:web"),
                (30, "jobs:a"),
                (40, "")
            ]
        );
        for (i, p) in procs.iter_mut().enumerate() {
            p.cpu_percent = i as f32;
            p.memory_bytes = 100 * i as u64;
        }
        let mut programs = programs;
        sum(&procs, &mut programs);
        let sums: Vec<(Option<f32>, Option<u64>)> = programs
            .iter()
            .map(|p| (p.cpu_percent, p.memory_bytes))
            .collect();
        // web:web is pids 20, 21, 22 (indexes 2, 3, 4); jobs:a pid 30 (index 5); jobs:b
        // does not run.
        assert_eq!(
            sums,
            [
                (Some(9.0), Some(900)),
                (Some(5.0), Some(500)),
                (Some(0.0), Some(0))
            ]
        );
    }

    #[test]
    fn a_parent_cycle_does_not_hang() {
        let mut procs = vec![proc(5, 6), proc(6, 5)];
        mark(&mut procs, &[program("g", "n", 7)]);
        assert!(procs.iter().all(|p| p.program.is_empty()));
    }

    #[test]
    fn the_feed_keeps_the_last_list_with_its_age_and_the_error() {
        let feed = ProgramsFeed::new("unix:///tmp/s.sock");
        assert!(feed.read().programs.is_empty());
        feed.update(vec![program("b", "x", 3), program("a", "y", 2)]);
        let r = feed.read();
        assert_eq!(r.programs[0].group, "a", "sorted");
        assert!(r.error.is_none());
        feed.fail("cannot connect".into());
        let r = feed.read();
        assert_eq!(r.programs.len(), 2, "the last list stays");
        assert_eq!(r.error.as_deref(), Some("cannot connect"));
        assert_eq!(r.url, "unix:///tmp/s.sock");
        feed.update(Vec::new());
        assert!(feed.read().error.is_none());
    }
}
