//! The aggregator's part of smon-runtime's shared start-up sequence: how it loads its config,
//! probes its own health (`/healthz`), builds its runtime, binds, and serves. `main.rs` hands
//! over to [`smon_runtime::start::run`] with an [`Aggregator`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smon_runtime::About;
use smon_runtime::config::{ConfigError, LogSettings, ManagerMode};
use smon_runtime::daemon::{self, DaemonArgs};
use smon_runtime::health::{self, Probe, Unhealthy};
use smon_runtime::manager::ManagerSettings;
use smon_runtime::start::{BoxError, Daemon};
use smon_web::security::Security;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Settings};

/// Who the aggregator is, for the kit.
pub const ABOUT: About = About {
    name: "smon-aggregator",
    description: "the cluster dashboard",
    // It reloads config_app.json on SIGHUP (the library listens for it).
    reloads_on_sighup: true,
    shutdown_grace: Duration::from_millis(1800),
};

/// The HTTP listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (server.host/server.port in {file})")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// The config file.
    pub file: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// The aggregator, configured, on its way to serving.
#[derive(Debug)]
pub struct Aggregator {
    settings: Settings,
}

impl Aggregator {
    /// Loads the config named by `--config` (else the embedded default).
    pub fn load(args: &DaemonArgs) -> Result<Self, ConfigError> {
        let settings = match &args.config {
            Some(p) => config::load_file(p)?,
            None => config::load_embedded()?,
        };
        Ok(Self { settings })
    }
}

/// The local `/healthz` URL (https when the listener serves TLS).
pub fn health_url(settings: &Settings) -> String {
    let scheme = if settings.http.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!(
        "{scheme}://{}{}/healthz",
        health::probe_address(settings.http_listen),
        settings.base_path
    )
}

impl Daemon for Aggregator {
    const ABOUT: About = ABOUT;
    type Bound = (TcpListener, Arc<Security>);
    // The library's errors, whatever their type, with their chain of causes.
    type Error = BoxError;

    fn source(&self) -> &str {
        &self.settings.source
    }

    fn log(&self) -> &LogSettings {
        &self.settings.log
    }

    fn manager(&self) -> (ManagerMode, ManagerSettings) {
        (self.settings.manager, self.settings.manager_settings)
    }

    fn run_as(&self) -> Option<&str> {
        self.settings.run_as.as_deref()
    }

    fn secret_files(&self) -> Vec<std::path::PathBuf> {
        let mut files = vec![self.settings.http.auth.users_file.clone()];
        files.extend(self.settings.token_files.iter().cloned());
        files
    }

    fn probe(&self) -> Result<Probe, BoxError> {
        let url = health_url(&self.settings);
        Ok(health::probe(move || {
            let url = url.clone();
            async move {
                crate::probe_http(url)
                    .await
                    .map_err(|e| Unhealthy(e.to_string()))
            }
        }))
    }

    fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        // A connection per agent and per browser: the default soft limit (1024) is far too low.
        let targets = self.settings.targets.len();
        if let Some(n) = daemon::raise_nofile_limit()
            && n < targets as u64 + 256
        {
            tracing::warn!(
                limit = n,
                agents = targets,
                "The open-file limit is below one per agent plus room for browsers: raise LimitNOFILE (systemd) or ulimit -n."
            );
        }
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("smon-aggregator")
            .enable_all()
            .build()
    }

    async fn bind(&mut self) -> Result<Self::Bound, BoxError> {
        let s = &self.settings;
        let listener = TcpListener::bind(s.http_listen)
            .await
            .map_err(|source| BindError {
                addr: s.http_listen,
                file: s.source.clone(),
                source,
            })?;
        // Users are read (or the first admin written) here, still privileged.
        let security = crate::prepare_security(s, &listener)?;
        Ok((listener, security))
    }

    async fn serve(
        self,
        (listener, security): Self::Bound,
        stop: CancellationToken,
    ) -> Result<(), BoxError> {
        Ok(crate::run_secured(self.settings, listener, security, stop).await?)
    }
}
