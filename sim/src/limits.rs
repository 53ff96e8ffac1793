//! The open-file limit: every agent needs a listener and, once polled, a connection, so
//! 10,000 agents need some 20,000 descriptors, more than most default limits.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors `agents` simulated agents need: a listener and a connection each, and some
/// to spare (the runtime, a test client or two).
pub fn needed(agents: u32) -> u64 {
    2 * u64::from(agents) + 64
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and the hard limit too when that is
/// still short of `need` and the process may (root, or CAP_SYS_RESOURCE). Returns the limit
/// now in force, or a message saying what to do.
pub fn raise_nofile(need: u64) -> Result<u64, String> {
    let before = getrlimit(Resource::Nofile);
    let hard = before.maximum;
    if hard.is_some_and(|h| h < need) {
        let raised = Rlimit {
            current: Some(need),
            maximum: Some(need),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return Ok(need);
        }
    }
    if before.current != hard {
        // Best effort: the check below says whether it was enough.
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: hard,
                maximum: hard,
            },
        );
    }
    let now = getrlimit(Resource::Nofile).current;
    match now {
        Some(n) if n < need => Err(format!(
            "needs {need} open files (a listener and a connection per agent), but RLIMIT_NOFILE is {n} (hard limit {}); raise it (ulimit -n, systemd LimitNOFILE=, or run as root) or run fewer agents",
            hard.map(|h| h.to_string())
                .unwrap_or_else(|| "unlimited".into())
        )),
        Some(n) => Ok(n),
        None => Ok(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_need_is_met_and_an_absurd_one_explained() {
        assert!(raise_nofile(needed(10)).is_ok_and(|n| n >= 84));
        // Above fs.nr_open (at most 2^30 on Linux): refused even for root.
        let err = raise_nofile(u64::from(u32::MAX)).expect_err("too many");
        assert!(err.contains("RLIMIT_NOFILE"), "{err}");
    }
}
