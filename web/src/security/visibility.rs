//! What each class of visitor sees of a sample and of a host's row. Admins see everything;
//! viewers see process and session user names, and command lines and login origins only when
//! the config says so; the anonymous visitors of a public read-only dashboard see neither
//! command lines nor any user name nor origins, and, unless `public_shows_addresses`, no
//! addresses (the agent's, the interfaces' IP and MAC addresses) and no error texts (a generic
//! text instead). Filtering happens on the server: what is hidden never reaches the browser.

use smon_api::wire::{HostRow, OverviewDelta, RowPatch};
use smon_proto::Snapshot;

/// What a hidden session user or origin reads as (an empty origin means a local login).
pub const HIDDEN: &str = "(hidden)";

/// What a hidden error text reads as: the host's state still says what is wrong.
pub const HIDDEN_ERROR: &str = "details are shown to logged-in users";

/// What a hidden agent address reads as (empty: the pages leave it out).
pub const HIDDEN_ADDRESS: &str = "";

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
    /// The agent's address, and the interfaces' IP and MAC addresses.
    pub addresses: bool,
    /// The text of errors: a host's last error, a collector's failure.
    pub error_texts: bool,
}

impl Visibility {
    /// Everything.
    pub const FULL: Self = Self {
        command_lines: true,
        process_users: true,
        session_users: true,
        login_origins: true,
        addresses: true,
        error_texts: true,
    };
    /// A viewer's default: user names, addresses and errors yes, command lines and origins no.
    pub const VIEWER_DEFAULT: Self = Self {
        command_lines: false,
        process_users: true,
        session_users: true,
        login_origins: false,
        addresses: true,
        error_texts: true,
    };
    /// A public dashboard: none of it.
    pub const PUBLIC: Self = Self {
        command_lines: false,
        process_users: false,
        session_users: false,
        login_origins: false,
        addresses: false,
        error_texts: false,
    };

    /// Whether this visibility changes overview rows (addresses, error texts): such visitors
    /// get overview frames of their own.
    pub fn filters_rows(&self) -> bool {
        !(self.addresses && self.error_texts)
    }

    /// Removes from an overview row what this visibility does not show.
    pub fn apply_row(&self, row: &mut HostRow) {
        if !self.addresses {
            row.address = HIDDEN_ADDRESS.into();
        }
        if !self.error_texts && row.last_error.is_some() {
            row.last_error = Some(HIDDEN_ERROR.into());
        }
    }

    /// Removes from a row's changes what this visibility does not show.
    pub fn apply_patch(&self, p: &mut RowPatch) {
        if !self.addresses && p.address.is_some() {
            p.address = Some(HIDDEN_ADDRESS.into());
        }
        if !self.error_texts && matches!(p.last_error, Some(Some(_))) {
            p.last_error = Some(Some(HIDDEN_ERROR.into()));
        }
    }

    /// Removes from an overview delta (its changed and its added rows) what this visibility
    /// does not show.
    pub fn apply_delta(&self, d: &mut OverviewDelta) {
        for p in &mut d.hosts {
            self.apply_patch(p);
        }
        if let Some(l) = d.layout.as_mut() {
            for r in &mut l.added {
                self.apply_row(&mut r.row);
            }
        }
    }

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
                let mig = g.mig_instances.iter_mut().flat_map(|m| &mut m.processes);
                for p in g.processes.iter_mut().chain(mig) {
                    p.user.clear();
                }
            }
        }
        if !self.error_texts {
            for g in &mut snap.gpus {
                let mig = g.mig_instances.iter_mut().map(|m| &mut m.error);
                let texts = [&mut g.error, &mut g.processes_error]
                    .into_iter()
                    .chain(mig);
                for e in texts.filter(|e| !e.is_empty()) {
                    *e = HIDDEN_ERROR.into();
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
        if !self.addresses {
            for n in &mut snap.networks {
                n.addresses.clear();
                n.mac.clear();
            }
        }
        if !self.error_texts
            && let Some(e) = snap.containers.as_mut().and_then(|c| c.error.as_mut())
        {
            *e = format!("containers: {HIDDEN_ERROR}");
        }
        if !self.error_texts {
            // Keep which collector failed ("disks: ..."), not what it said.
            for e in &mut snap.errors {
                let what = e.split_once(':').map(|(w, _)| w).unwrap_or("a collector");
                *e = format!("{what}: {HIDDEN_ERROR}");
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

    /// What this class sees, given the viewers' setting, with a public dashboard's default
    /// (see [`crate::security::config::AuthSettings::visibility`] for the configured one).
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
    use smon_proto::{Gpu, GpuProcess, NetInterface, Process, Session};

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
            networks: vec![NetInterface {
                name: "eth0".into(),
                rx_bytes_per_s: 5,
                mac: "52:54:00:12:34:56".into(),
                addresses: vec!["10.1.2.3/24".into()],
                ..Default::default()
            }],
            errors: vec!["disks: /mnt/nfs: statvfs timed out".into()],
            gpus: vec![Gpu {
                processes: vec![GpuProcess {
                    pid: 7,
                    user: "carol".into(),
                    name: "python".into(),
                    ..Default::default()
                }],
                mig_instances: vec![smon_proto::MigInstance {
                    processes: vec![GpuProcess {
                        pid: 8,
                        user: "dave".into(),
                        name: "train".into(),
                        ..Default::default()
                    }],
                    error: "NVML: insufficient permissions on /dev/nvidia-caps/nvidia-cap21".into(),
                    ..Default::default()
                }],
                processes_error: "NVML: not supported on this driver".into(),
                ..Default::default()
            }],
            containers: Some(smon_proto::Containers {
                count: 0,
                items: vec![],
                error: Some(
                    "containers: cannot read /sys/fs/cgroup/memory: permission denied".into(),
                ),
            }),
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
        assert_eq!(s.gpus[0].mig_instances[0].processes[0].user, "");
        assert_eq!(s.gpus[0].mig_instances[0].processes[0].name, "train");
        assert_eq!(s.gpus[0].mig_instances[0].error, HIDDEN_ERROR);
        assert_eq!(s.gpus[0].processes_error, HIDDEN_ERROR);
        assert_eq!(
            s.containers.as_ref().and_then(|c| c.error.as_deref()),
            Some(format!("containers: {HIDDEN_ERROR}").as_str()),
            "which part failed, not the path"
        );
        assert_eq!(s.gpus[0].error, "", "no error stays no error");
        assert_eq!(s.sessions[0].terminal, "pts/0");
        assert_eq!(s.networks[0].addresses, Vec::<String>::new());
        assert_eq!(s.networks[0].mac, "");
        assert_eq!(s.networks[0].rx_bytes_per_s, 5, "the figures stay");
        assert_eq!(s.errors, vec![format!("disks: {HIDDEN_ERROR}")]);

        let mut s = sample();
        let shows = Visibility {
            addresses: true,
            error_texts: true,
            ..Visibility::PUBLIC
        };
        shows.apply(&mut s);
        assert_eq!(s.networks, sample().networks);
        assert_eq!(s.errors, sample().errors);
    }

    fn row() -> HostRow {
        HostRow {
            id: "lab:n1".into(),
            cluster: "lab".into(),
            name: "n1".into(),
            address: "10.9.8.7:50051".into(),
            status: smon_api::wire::Status::Down,
            status_since_ms: 1,
            last_error: Some("connect to 10.9.8.7:50051: connection refused".into()),
            ..Default::default()
        }
    }

    #[test]
    fn rows_and_deltas_hide_addresses_and_errors_from_the_public() {
        let v = Class::Public.visibility(Visibility::VIEWER_DEFAULT);
        assert!(v.filters_rows());
        assert!(!Visibility::FULL.filters_rows());
        assert!(!Visibility::VIEWER_DEFAULT.filters_rows());
        let mut r = row();
        v.apply_row(&mut r);
        assert_eq!(r.address, HIDDEN_ADDRESS);
        assert_eq!(r.last_error.as_deref(), Some(HIDDEN_ERROR));
        assert_eq!(r.status, smon_api::wire::Status::Down, "the state stays");
        let mut r = row();
        r.last_error = None;
        v.apply_row(&mut r);
        assert_eq!(r.last_error, None, "no error is not made one");

        let mut d = OverviewDelta {
            server_time_ms: 1,
            seq: 2,
            layout: Some(smon_api::wire::LayoutChange {
                generation: 1,
                removed: vec![],
                added: vec![smon_api::wire::RowInsert { i: 0, row: row() }],
                clusters: None,
            }),
            clusters: vec![],
            hosts: vec![
                RowPatch {
                    ix: 0,
                    address: Some("10.0.0.1:1".into()),
                    last_error: Some(Some("timeout from 10.0.0.1".into())),
                    ..Default::default()
                },
                RowPatch {
                    ix: 1,
                    last_error: Some(None),
                    cpu_percent: Some(Some(3.0)),
                    ..Default::default()
                },
            ],
        };
        v.apply_delta(&mut d);
        let text = serde_json::to_string(&d).expect("json");
        assert!(
            !text.contains("10.0.0.1") && !text.contains("10.9.8.7"),
            "{text}"
        );
        assert_eq!(d.hosts[0].address.as_deref(), Some(HIDDEN_ADDRESS));
        assert_eq!(
            d.hosts[1].last_error,
            Some(None),
            "a cleared error stays cleared"
        );
        assert_eq!(d.hosts[1].cpu_percent, Some(Some(3.0)));
    }
}
