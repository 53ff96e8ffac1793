//! The open-file limit, and how the agents listen within it.
//!
//! A listener per agent (its own address) plus, once polled, a connection per agent makes
//! 10,000 agents need some 20,000 descriptors: more than many hard limits (20,000 on the
//! benchmark machines, where even root lacks CAP_SYS_RESOURCE to raise it). When a listener per
//! agent does not fit, the agents share one listener instead: `0.0.0.0:PORT` bound to the
//! loopback device, which sees every connection to `127.x.y.z:PORT` (Linux delivers all of
//! 127/8 locally) and none from other hosts; connections to addresses that are not agents are
//! closed at once. Clients cannot tell the two apart.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// How the agents listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listening {
    /// A listener per agent, on its own address.
    PerAgent,
    /// One listener on the wildcard address, bound to `lo`, for every agent.
    Shared,
}

/// Descriptors to spare beyond the agents' own: the runtime, stdio, a test client or two.
const SPARE: u64 = 64;

/// Descriptors `agents` agents need when each has its own listener.
pub fn per_agent_need(agents: u32) -> u64 {
    2 * u64::from(agents) + SPARE
}

/// Descriptors `agents` agents need when they share one listener.
pub fn shared_need(agents: u32) -> u64 {
    u64::from(agents) + 1 + SPARE
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and the hard limit as well when that is
/// short of `want` and the process may (CAP_SYS_RESOURCE). Returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    let before = getrlimit(Resource::Nofile);
    let hard = before.maximum;
    if hard.is_some_and(|h| h < want) {
        let raised = Rlimit {
            current: Some(want),
            maximum: Some(want),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return want;
        }
    }
    if before.current != hard {
        // Best effort: the caller compares what is in force with what it needs.
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: hard,
                maximum: hard,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// How `agents` agents listen under an open-file limit of `limit`, or why they cannot.
pub fn plan(agents: u32, limit: u64) -> Result<Listening, String> {
    if limit >= per_agent_need(agents) {
        Ok(Listening::PerAgent)
    } else if limit >= shared_need(agents) {
        Ok(Listening::Shared)
    } else {
        Err(format!(
            "{agents} agents need at least {} open files (a connection per agent), but RLIMIT_NOFILE is {limit} even after raising it to the hard limit; raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or run fewer agents",
            shared_need(agents)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_each_when_it_fits_else_one_shared_else_a_reason() {
        assert_eq!(plan(1000, 20_000), Ok(Listening::PerAgent));
        assert_eq!(plan(10_000, 20_000), Ok(Listening::Shared));
        let err = plan(10_000, 4096).expect_err("too few");
        assert!(
            err.contains("10000 agents need at least 10065 open files"),
            "{err}"
        );
        assert!(err.contains("RLIMIT_NOFILE is 4096"), "{err}");
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let before = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        assert!(raise_nofile(100) >= before);
    }
}
