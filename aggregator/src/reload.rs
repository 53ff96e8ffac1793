//! Configuration reload: on SIGHUP (`systemctl reload`), `config_app.json` is read and checked
//! again, and the fleet (`monitor.clusters`) is changed to match it, only where it differs
//! ([`crate::registry::Registry::apply`]). A config that fails the checks is refused with the
//! usual message (file, field, value) and the running one stays. What cannot change while the
//! server runs (the `server` block, `manager`, `log`, `storage` (the history database),
//! `alerts` apart from its rules and silences (the channels, the engine's settings, the
//! history's retention), and `monitor` apart from its clusters:
//! the interval, the state thresholds, the own host) is named as needing a restart and
//! ignored, never half-applied. The alert rules and silences of the config are replaced
//! ([`crate::alerts::Alerts::reload`]); those made in the UI stay. So do the hosts made in the
//! UI: the fleet applied is the new config's hosts and the inventory's
//! ([`crate::inventory::Inventory::set_config`]).

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::config::{self, Settings};
use crate::inventory::Inventory;
use crate::registry::{Applied, Registry};

/// Why a reload did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config failed to load or failed its checks.
    #[error("{0}")]
    Config(#[from] smon_runtime::config::ConfigError),
    /// The check could not run (its thread failed).
    #[error("the config check did not finish: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// The fleet changes made.
    pub applied: Applied,
    /// Fields that changed but need a restart (ignored until then).
    pub needs_restart: Vec<String>,
}

/// Reads `path` again and applies its fleet to `registry`, where `running` is the config the
/// server started with (its fixed part is what the new one is compared with).
pub async fn reload(
    path: &Path,
    running: &Settings,
    registry: &Registry,
    inventory: &Inventory,
    alerts: Option<&crate::alerts::Alerts>,
) -> Result<Reloaded, ReloadError> {
    // Token and PEM files are read too: off the async threads.
    let p = path.to_path_buf();
    let new = tokio::task::spawn_blocking(move || config::load_file(&p)).await??;
    let needs_restart = config::fixed_changes(running, &new);
    if let (Some(a), Some(set)) = (alerts, &new.alerts) {
        a.reload(set.rules.clone(), set.silences.clone());
    }
    let applied = registry.apply(inventory.set_config(new.targets, new.clusters));
    Ok(Reloaded {
        applied,
        needs_restart,
    })
}

/// Logs the outcome of a reload.
pub fn log_outcome(source: &str, r: &Result<Reloaded, ReloadError>) {
    match r {
        Ok(done) => {
            if !done.needs_restart.is_empty() {
                tracing::warn!(file = %source, fields = %done.needs_restart.join(", "), "Configuration reload: these settings need a restart; they were ignored.");
            }
            let a = &done.applied;
            tracing::info!(
                file = %source,
                added = a.added.len(),
                removed = a.removed.len(),
                reconnected = a.reconnected.len(),
                retagged = a.retagged.len(),
                unchanged = a.unchanged,
                "Configuration reloaded."
            );
        }
        Err(e) => {
            tracing::error!(file = %source, error = %e, "Configuration reload refused; the running configuration stays.")
        }
    }
}

/// Reloads `path` on every SIGHUP until `stop`. Outcomes are logged.
pub async fn on_sighup(
    path: PathBuf,
    running: Settings,
    registry: Registry,
    inventory: Inventory,
    alerts: Option<crate::alerts::Alerts>,
    stop: CancellationToken,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "Cannot listen for SIGHUP: configuration reload is off.");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            tracing::info!(signal = "SIGHUP", file = %path.display(), "Reloading the configuration.");
            let r = reload(&path, &running, &registry, &inventory, alerts.as_ref()).await;
            log_outcome(&running.source, &r);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, running, registry, inventory, alerts);
        stop.cancelled().await;
    }
}
