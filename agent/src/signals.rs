//! `Control.Signal`'s checks and the `kill` itself. A process is looked up in `/proc` (its
//! real uid, name and parent); pid 1, the agent itself, its parent (a manager: the self
//! manager's watchdog, supervisord) and its own children are never signalled, and with
//! `control.signals.users` only processes of those users are. The OS has the last word:
//! the agent needs the process's uid or CAP_KILL.
//!
//! Between the check and the `kill` the process could end and its pid be reused; pids are
//! not reused for a long time on Linux (pid_max is 4 million on 64-bit hosts), and the
//! window is a few microseconds.

use tonic::Status;

/// The signals `Control.Signal` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    /// SIGTERM.
    Term,
    /// SIGINT.
    Int,
    /// SIGKILL.
    Kill,
    /// SIGHUP.
    Hup,
}

/// The process signalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its user's name (the uid when it has none).
    pub user: String,
    /// Its short name.
    pub name: String,
}

/// A process as `/proc/<pid>/status` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcStatus {
    name: String,
    ppid: u32,
    uid: u32,
}

/// Reads `Name`, `PPid` and the real uid from a `/proc/<pid>/status` text.
fn parse_status(text: &str) -> Option<ProcStatus> {
    let mut name = None;
    let mut ppid = None;
    let mut uid = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Name:") {
            name = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("PPid:") {
            ppid = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("Uid:") {
            uid = v.split_whitespace().next().and_then(|u| u.parse().ok());
        }
    }
    Some(ProcStatus {
        name: name?,
        ppid: ppid?,
        uid: uid?,
    })
}

/// Why `pid` may not be signalled by this agent (whose pid is `me`, parent `parent`), before
/// the user check; `None` when it may.
fn forbidden(pid: u32, st: &ProcStatus, me: u32, parent: u32) -> Option<String> {
    if pid == 1 {
        Some("pid 1 (init) is never signalled".into())
    } else if pid == me {
        Some(format!("{pid} is the agent itself"))
    } else if pid == parent {
        Some(format!(
            "{pid} is the agent's parent (its manager); it is never signalled"
        ))
    } else if st.ppid == me {
        Some(format!(
            "{pid} is a child of the agent (a command it started); it is never signalled"
        ))
    } else {
        None
    }
}

/// Sends `sig` to `pid` after the checks; `users` is `control.signals.users`.
#[cfg(target_os = "linux")]
pub fn send(pid: u32, sig: Sig, users: Option<&[String]>) -> Result<Target, Status> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    if pid == 0 || pid > i32::MAX as u32 {
        return Err(Status::invalid_argument(format!(
            "pid: {pid} is not a process id"
        )));
    }
    let text = match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Status::not_found(format!("no process {pid} on this host")));
        }
        Err(e) => {
            return Err(Status::internal(format!(
                "cannot read /proc/{pid}/status: {e}"
            )));
        }
    };
    let st = parse_status(&text)
        .ok_or_else(|| Status::internal(format!("/proc/{pid}/status is not as expected")))?;
    let me = std::process::id();
    let parent = u32::try_from(nix::unistd::getppid().as_raw()).unwrap_or(0);
    if let Some(why) = forbidden(pid, &st, me, parent) {
        return Err(Status::permission_denied(why));
    }
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(st.uid))
        .ok()
        .flatten()
        .map_or_else(|| st.uid.to_string(), |u| u.name);
    if let Some(users) = users
        && !users.contains(&user)
    {
        return Err(Status::permission_denied(format!(
            "process {pid} belongs to {user}, who is not in control.signals.users"
        )));
    }
    let signal = match sig {
        Sig::Term => Signal::SIGTERM,
        Sig::Int => Signal::SIGINT,
        Sig::Kill => Signal::SIGKILL,
        Sig::Hup => Signal::SIGHUP,
    };
    match kill(Pid::from_raw(pid as i32), signal) {
        Ok(()) => Ok(Target {
            user,
            name: st.name,
        }),
        Err(nix::errno::Errno::ESRCH) => {
            Err(Status::not_found(format!("no process {pid} on this host")))
        }
        Err(nix::errno::Errno::EPERM) => Err(Status::permission_denied(format!(
            "the OS refused to signal {pid} (user {user}): the agent runs as uid {}; signals need the same uid or CAP_KILL",
            nix::unistd::getuid()
        ))),
        Err(e) => Err(Status::internal(format!("kill({pid}) failed: {e}"))),
    }
}

/// Signals are read from `/proc`: Linux only.
#[cfg(not(target_os = "linux"))]
pub fn send(_pid: u32, _sig: Sig, _users: Option<&[String]>) -> Result<Target, Status> {
    Err(Status::failed_precondition(
        "Control.Signal is supported on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\nPPid:\t1\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n";

    #[test]
    fn status_gives_name_parent_and_real_uid() {
        assert_eq!(
            parse_status(STATUS),
            Some(ProcStatus {
                name: "sleep".into(),
                ppid: 1,
                uid: 1000
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn init_the_agent_its_parent_and_children_are_never_signalled() {
        let st = |ppid| ProcStatus {
            name: "x".into(),
            ppid,
            uid: 0,
        };
        assert!(forbidden(1, &st(0), 100, 50).is_some_and(|w| w.contains("pid 1")));
        assert!(forbidden(100, &st(50), 100, 50).is_some_and(|w| w.contains("agent itself")));
        assert!(forbidden(50, &st(1), 100, 50).is_some_and(|w| w.contains("parent")));
        assert!(forbidden(300, &st(100), 100, 50).is_some_and(|w| w.contains("child")));
        assert_eq!(forbidden(300, &st(1), 100, 50), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_missing_pid_is_not_found_and_pid_zero_invalid() {
        assert_eq!(
            send(0, Sig::Term, None).expect_err("0").code(),
            tonic::Code::InvalidArgument
        );
        // Above the largest pid_max (4194304).
        assert_eq!(
            send(4_194_305, Sig::Term, None).expect_err("none").code(),
            tonic::Code::NotFound
        );
    }
}
