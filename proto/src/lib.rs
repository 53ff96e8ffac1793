//! The smon wire contract: the `smon.v1` gRPC service between agents and the aggregator, and
//! the messages that describe a host. Generated from `proto/smon/v1/*.proto`; see those files
//! for the meaning and unit of every field.

/// Version 1 of the contract (`package smon.v1`).
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/smon.v1.rs"));
}

pub use v1::*;

impl Containers {
    /// How many containers a summary carries (the top by CPU).
    pub const SUMMARY_TOP: usize = 5;

    /// This part as a snapshot with `parts` carries it: every item in the detail
    /// (`Parts.processes`) or with `Parts.containers`, else the top
    /// [`Containers::SUMMARY_TOP`] by CPU. The count and the error are kept either way.
    pub fn for_parts(&self, parts: &Parts) -> Containers {
        if parts.processes || parts.containers {
            return self.clone();
        }
        // Only the top ones are copied (the order of a stable sort by CPU).
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        order.sort_by(|&a, &b| {
            self.items[b]
                .cpu_percent
                .total_cmp(&self.items[a].cpu_percent)
        });
        let items = order
            .into_iter()
            .take(Self::SUMMARY_TOP)
            .map(|i| self.items[i].clone())
            .collect();
        Containers {
            count: self.count,
            items,
            error: self.error.clone(),
        }
    }
}

impl Gpu {
    /// Whether this GPU's throttle reasons were read: an empty list means "not held down" only
    /// then. Not when the GPU could not be opened (`device: `), is lost, NVML hangs, or the
    /// query itself failed (its error names the field), so that no 0 stands for "unknown".
    pub fn throttle_read(&self) -> bool {
        !self.error.contains("device: ")
            && !self.error.contains("throttle_reasons: ")
            && !self.error.starts_with("NVML not answering")
    }
}

impl Parts {
    /// Everything: the process list, per-core usage and the processes on each GPU.
    pub const DETAIL: Parts = Parts {
        processes: true,
        per_core: true,
        gpu_processes: true,
        top_processes: 0,
        containers: true,
    };
    /// Nothing heavy: what a cluster overview polls.
    pub const SUMMARY: Parts = Parts {
        processes: false,
        per_core: false,
        gpu_processes: false,
        top_processes: 0,
        containers: false,
    };

    /// The processes [`Parts::top_processes`] asks for out of a whole list: the top N by CPU
    /// and the top N by resident memory, their union (at most 2N), the CPU ones first. One
    /// definition of it for every side that answers snapshots (the agent, the aggregator's
    /// own host, the simulator).
    pub fn top_of(n: u32, procs: &[Process]) -> Vec<Process> {
        let n = n as usize;
        if n == 0 {
            return Vec::new();
        }
        if procs.len() <= n {
            return procs.to_vec();
        }
        let mut by_cpu: Vec<usize> = (0..procs.len()).collect();
        by_cpu.sort_by(|&a, &b| procs[b].cpu_percent.total_cmp(&procs[a].cpu_percent));
        let mut by_mem: Vec<usize> = (0..procs.len()).collect();
        by_mem.sort_by_key(|&i| std::cmp::Reverse(procs[i].memory_bytes));
        let mut picked: Vec<usize> = by_cpu[..n].to_vec();
        for &i in &by_mem[..n] {
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        picked.into_iter().map(|i| procs[i].clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, cpu: f32, mem: u64) -> Process {
        Process {
            pid,
            cpu_percent: cpu,
            memory_bytes: mem,
            ..Process::default()
        }
    }

    #[test]
    fn top_of_is_the_union_of_the_top_by_cpu_and_by_memory() {
        let procs = vec![
            p(1, 0.0, 100),
            p(2, 90.0, 1),
            p(3, 5.0, 5000),
            p(4, 50.0, 10),
            p(5, 1.0, 3000),
            p(6, 0.5, 2),
        ];
        let pids = |v: Vec<Process>| v.iter().map(|p| p.pid).collect::<Vec<_>>();
        assert_eq!(pids(Parts::top_of(2, &procs)), [2, 4, 3, 5]);
        // Overlap: pid 3 is both in the top 3 by CPU and by memory.
        assert_eq!(pids(Parts::top_of(3, &procs)), [2, 4, 3, 5, 1]);
        assert!(Parts::top_of(0, &procs).is_empty());
        assert_eq!(Parts::top_of(10, &procs).len(), 6);
    }

    #[test]
    fn a_summary_carries_the_top_containers_unless_parts_asks_for_all() {
        let c = Containers {
            count: 8,
            items: (0..8)
                .map(|i| Container {
                    name: format!("c{i}"),
                    cpu_percent: i as f32,
                    ..Container::default()
                })
                .collect(),
            error: None,
        };
        let s = c.for_parts(&Parts::SUMMARY);
        assert_eq!(s.count, 8);
        let names: Vec<&str> = s.items.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["c7", "c6", "c5", "c4", "c3"]);
        let all = Parts {
            containers: true,
            ..Parts::SUMMARY
        };
        assert_eq!(c.for_parts(&all).items.len(), 8);
        assert_eq!(c.for_parts(&Parts::DETAIL).items.len(), 8);
    }

    #[test]
    fn a_program_from_an_agent_without_sums_reads_back() {
        let old = r#"{"group":"web","name":"api","state":"RUNNING","pid":7,"uptime_s":3,
            "exit_status":0,"spawnerr":"","description":"pid 7, uptime 0:00:03","start_unix_ms":1}"#;
        let p: crate::Program = serde_json::from_str(old).expect("read back");
        assert_eq!((p.pid, p.cpu_percent, p.memory_bytes), (7, None, None));
        let with = crate::Program {
            cpu_percent: Some(2.5),
            memory_bytes: Some(4096),
            ..p
        };
        let text = serde_json::to_string(&with).expect("json");
        let back: crate::Program = serde_json::from_str(&text).expect("read back");
        assert_eq!(back, with);
    }
}
