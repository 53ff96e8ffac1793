//! What each class of visitor sees of a sample. Admins see everything; viewers see process and
//! session user names, and command lines and login origins only when the config says so; the
//! anonymous visitors of a public read-only dashboard see neither command lines nor any user
//! name nor origins. Filtering happens on the server: what is hidden never reaches the browser.

use smon_proto::Snapshot;

/// What a hidden session user or origin reads as (an empty origin means a local login).
pub const HIDDEN: &str = "(hidden)";

/// The sensitive parts of a sample, and whether a class sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visibility {
    /// Full command lines of processes (else only the short process name).
    pub command_lines: bool,
    /// Owners of processes (host and GPU).
    pub process_users: bool,
    /// User names of logged-in sessions.
    pub session_users: bool,
    /// Where logged-in users come from (remote host or address).
    pub login_origins: bool,
}

impl Visibility {
    /// Everything.
    pub const FULL: Self = Self {
        command_lines: true,
        process_users: true,
        session_users: true,
        login_origins: true,
    };
    /// A viewer's default: user names yes, command lines and origins no.
    pub const VIEWER_DEFAULT: Self = Self {
        command_lines: false,
        process_users: true,
        session_users: true,
        login_origins: false,
    };
    /// A public dashboard: none of it.
    pub const PUBLIC: Self = Self {
        command_lines: false,
        process_users: false,
        session_users: false,
        login_origins: false,
    };

    /// Removes from `snap` what this visibility does not show.
    pub fn apply(&self, snap: &mut Snapshot) {
        if *self == Self::FULL {
            return;
        }
        for p in &mut snap.processes {
            if !self.command_lines {
                p.cmdline.clear();
            }
            if !self.process_users {
                p.user.clear();
            }
        }
        if !self.process_users {
            for g in &mut snap.gpus {
                for p in &mut g.processes {
                    p.user.clear();
                }
            }
        }
        for s in &mut snap.sessions {
            if !self.session_users {
                s.user = HIDDEN.into();
                s.pid = 0;
            }
            // An empty origin means a local login: keep that apart from a hidden one.
            if !self.login_origins && !s.from.is_empty() {
                s.from = HIDDEN.into();
            }
        }
    }
}

/// A class of visitor: the rooms of a host page are split by it, so that each socket gets the
/// sample filtered for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Admins.
    Full,
    /// Viewers.
    Viewer,
    /// Anonymous visitors of a public dashboard.
    Public,
}

impl Class {
    /// Every class.
    pub const ALL: [Self; 3] = [Self::Full, Self::Viewer, Self::Public];

    /// `full`, `viewer` or `public`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Viewer => "viewer",
            Self::Public => "public",
        }
    }

    /// Index into per-class arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// What this class sees, given the viewers' setting.
    pub fn visibility(self, viewer: Visibility) -> Visibility {
        match self {
            Self::Full => Visibility::FULL,
            Self::Viewer => viewer,
            Self::Public => Visibility::PUBLIC,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smon_proto::{Gpu, GpuProcess, Process, Session};

    fn sample() -> Snapshot {
        Snapshot {
            processes: vec![Process {
                pid: 1,
                user: "alice".into(),
                name: "mysqld".into(),
                cmdline: "mysqld --password=[redacted]".into(),
                ..Default::default()
            }],
            sessions: vec![Session {
                user: "bob".into(),
                terminal: "pts/0".into(),
                from: "10.1.2.3".into(),
                pid: 42,
                ..Default::default()
            }],
            gpus: vec![Gpu {
                processes: vec![GpuProcess {
                    pid: 7,
                    user: "carol".into(),
                    name: "python".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn classes_see_what_they_may() {
        let mut s = sample();
        Class::Full
            .visibility(Visibility::VIEWER_DEFAULT)
            .apply(&mut s);
        assert_eq!(s, sample());

        let mut s = sample();
        Class::Viewer
            .visibility(Visibility::VIEWER_DEFAULT)
            .apply(&mut s);
        assert_eq!(s.processes[0].cmdline, "");
        assert_eq!(s.processes[0].name, "mysqld");
        assert_eq!(s.processes[0].user, "alice");
        assert_eq!(s.sessions[0].user, "bob");
        assert_eq!(s.sessions[0].from, HIDDEN);

        let mut s = sample();
        let open = Visibility {
            command_lines: true,
            login_origins: true,
            ..Visibility::VIEWER_DEFAULT
        };
        Class::Viewer.visibility(open).apply(&mut s);
        assert_eq!(s, sample(), "a viewer may be allowed everything");

        let mut s = sample();
        Class::Public.visibility(open).apply(&mut s);
        assert_eq!(s.processes[0].cmdline, "");
        assert_eq!(s.processes[0].user, "");
        assert_eq!(s.sessions[0].user, HIDDEN);
        assert_eq!(s.sessions[0].from, HIDDEN);
        assert_eq!(s.sessions[0].pid, 0);
        assert_eq!(s.gpus[0].processes[0].user, "");
        assert_eq!(s.sessions[0].terminal, "pts/0");
    }
}
