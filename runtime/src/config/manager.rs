//! The `manager` block: who keeps the daemon alive (`self`, `supervisor`, `systemd`), and how
//! the self manager probes and restarts its server.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::FieldError;
use crate::manager::ManagerSettings;

/// The `manager` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    /// `self` (the binary keeps itself alive), `supervisor` or `systemd`.
    #[serde(default = "default_manager_mode")]
    pub mode: String,
    /// Mode `self`: milliseconds between health probes of the server.
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u64,
    /// Mode `self`: failed probes in a row before the server is restarted.
    #[serde(default = "default_probe_failures")]
    pub probe_failures: u32,
    /// Mode `self`: milliseconds a new server may take to start before probes count.
    #[serde(default = "default_startup_grace_ms")]
    pub startup_grace_ms: u64,
    /// Mode `self`: more restarts than this within `restart_window_s` is a crash loop, and the
    /// manager gives up (exit status 1) so that an outer supervisor or a person takes over.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// Mode `self`: see `max_restarts`.
    #[serde(default = "default_restart_window_s")]
    pub restart_window_s: u64,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            mode: default_manager_mode(),
            probe_interval_ms: default_probe_interval_ms(),
            probe_failures: default_probe_failures(),
            startup_grace_ms: default_startup_grace_ms(),
            max_restarts: default_max_restarts(),
            restart_window_s: default_restart_window_s(),
        }
    }
}

fn default_probe_interval_ms() -> u64 {
    5000
}
fn default_probe_failures() -> u32 {
    3
}
fn default_startup_grace_ms() -> u64 {
    10_000
}
fn default_max_restarts() -> u32 {
    5
}
fn default_restart_window_s() -> u64 {
    60
}

impl ManagerConfig {
    /// Checks the block; returns the mode and the `self` mode's settings, or records problems.
    pub fn check(&self, errs: &mut Vec<FieldError>) -> Option<(ManagerMode, ManagerSettings)> {
        let before = errs.len();
        let mut bad = |field: &str, value: &dyn fmt::Display, problem: &str| {
            errs.push(FieldError {
                field: field.to_owned(),
                value: value.to_string(),
                problem: problem.to_owned(),
            });
        };
        let mode = match self.mode.as_str() {
            "self" => Some(ManagerMode::SelfManaged),
            "supervisor" => Some(ManagerMode::Supervisor),
            "systemd" => Some(ManagerMode::Systemd),
            other => {
                bad(
                    "manager.mode",
                    &other,
                    "is not one of self, supervisor, systemd",
                );
                None
            }
        };
        if !(200..=600_000).contains(&self.probe_interval_ms) {
            bad(
                "manager.probe_interval_ms",
                &self.probe_interval_ms,
                "must be between 200 and 600000",
            );
        }
        if !(1..=100).contains(&self.probe_failures) {
            bad(
                "manager.probe_failures",
                &self.probe_failures,
                "must be between 1 and 100",
            );
        }
        if self.startup_grace_ms > 600_000 {
            bad(
                "manager.startup_grace_ms",
                &self.startup_grace_ms,
                "must be at most 600000",
            );
        }
        if !(1..=1000).contains(&self.max_restarts) {
            bad(
                "manager.max_restarts",
                &self.max_restarts,
                "must be between 1 and 1000",
            );
        }
        if !(1..=86_400).contains(&self.restart_window_s) {
            bad(
                "manager.restart_window_s",
                &self.restart_window_s,
                "must be between 1 and 86400",
            );
        }
        if errs.len() > before {
            return None;
        }
        mode.map(|m| {
            (
                m,
                ManagerSettings {
                    probe_interval: Duration::from_millis(self.probe_interval_ms),
                    probe_failures: self.probe_failures,
                    startup_grace: Duration::from_millis(self.startup_grace_ms),
                    max_restarts: self.max_restarts,
                    restart_window: Duration::from_secs(self.restart_window_s),
                },
            )
        })
    }
}

fn default_manager_mode() -> String {
    "self".to_owned()
}

/// Who keeps the process alive (acted on by the manager; parsed and validated now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagerMode {
    /// The binary supervises itself.
    SelfManaged,
    /// Supervisor (`supervisord`) runs it.
    Supervisor,
    /// systemd runs it.
    Systemd,
}
