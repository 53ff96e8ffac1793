//! The agent's part of smon-runtime's shared start-up sequence: how it loads its config,
//! creates its token file, probes its own health, builds its runtime, binds, and serves.
//! `main.rs` hands over to [`smon_runtime::start::run`] with an [`Agent`].

use std::time::Duration;

use smon_runtime::About;
use smon_runtime::config::{ConfigError, LogSettings, ManagerMode};
use smon_runtime::daemon::{self, DaemonArgs};
use smon_runtime::health::{self, Heartbeat, Probe, Unhealthy};
use smon_runtime::manager::ManagerSettings;
use smon_runtime::start::Daemon;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Auth, Settings};
use crate::{Error, PreparedWeb};
use smon_collect::Collector;

/// Who the agent is, for the kit.
pub const ABOUT: About = About {
    name: "smon-agent",
    description: "the node agent",
    reloads_on_sighup: false,
    shutdown_grace: Duration::from_millis(1500),
};

/// The agent, configured, on its way to serving.
#[derive(Debug)]
pub struct Agent {
    settings: Settings,
    /// `--once` (with `--json` when true): print one sample instead of serving.
    once: Option<bool>,
}

impl Agent {
    /// Loads the config named by `--config` (else the embedded default). `once` is `--once`
    /// with its `--json`.
    pub fn load(args: &DaemonArgs, once: Option<bool>) -> Result<Self, ConfigError> {
        let env = config::Env::from_process();
        let settings = match &args.config {
            Some(p) => config::load_file(p, &env)?,
            None => config::load_embedded(&env)?,
        };
        Ok(Self { settings, once })
    }

    /// The checked settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// How old the latest sample may be for the server to count as healthy: three intervals,
    /// at least 5 s.
    fn max_sample_age(&self) -> Duration {
        (self.settings.interval * 3).max(Duration::from_secs(5))
    }
}

impl Daemon for Agent {
    const ABOUT: About = ABOUT;
    type Bound = (TcpListener, Option<PreparedWeb>);
    type Error = Error;

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

    fn has_oneshot(&self) -> bool {
        self.once.is_some()
    }

    fn oneshot(&mut self) -> Option<Result<(), Error>> {
        self.once.map(|json| once(&self.settings, json))
    }

    fn secret_files(&self) -> Vec<std::path::PathBuf> {
        let files = self.settings.token_file.iter().cloned().chain(
            self.settings
                .control
                .iter()
                .filter_map(|c| c.token_file.clone())
                .chain(
                    self.settings
                        .supervisor
                        .iter()
                        .filter_map(|s| s.password_file.clone()),
                ),
        );
        #[cfg(feature = "web")]
        let files = files.chain(
            self.settings
                .web
                .iter()
                .map(|web| web.http.auth.users_file.clone()),
        );
        files.collect()
    }

    fn create_files(&mut self) -> Result<(), Error> {
        Ok(self.settings.create_token_file()?)
    }

    fn probe(&self) -> Result<Probe, Error> {
        let s = &self.settings;
        if s.grpc_tls.is_some() {
            // A local gRPC probe would need a client certificate: the server touches this
            // process's heartbeat file after each sample instead, and that is what the probe
            // checks.
            return self.manager_probe();
        }
        let max_age = self.max_sample_age();
        let addr = health::probe_address(s.grpc_listen);
        let token = match &s.auth {
            Auth::Token(t) => Some(t.clone()),
            Auth::None => None,
        };
        Ok(health::probe(move || {
            probe_agent(addr, token.clone(), max_age)
        }))
    }

    /// The self manager watches the heartbeat file its server touches after each sample (a
    /// tokio task woken by the sampler: a stuck sampler or a wedged runtime stops it), not a
    /// `GetSnapshot` every 5 s: the manager then carries no gRPC client and the server answers
    /// no probe calls. The file goes with the probe.
    fn manager_probe(&self) -> Result<Probe, Error> {
        let max_age = self.max_sample_age();
        let hb = Heartbeat::create(ABOUT.name).map_err(Error::Heartbeat)?;
        let path = hb.path().to_path_buf();
        Ok(health::probe(move || {
            let _owned = &hb;
            health::probe_heartbeat(path.clone(), max_age)
        }))
    }

    fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        // The process collector keeps each /proc/<pid>/stat open between samples (up to 4096,
        // at most half the soft limit): a soft limit of 1024 would cap that at 512 processes.
        daemon::raise_nofile_limit();
        tokio::runtime::Builder::new_multi_thread()
            // The agent's async side only answers RPCs from a handful of pollers; two workers
            // are plenty and keep the footprint small. Sampling has its own thread.
            .worker_threads(2)
            .max_blocking_threads(4)
            .thread_name("smon-agent")
            .enable_all()
            .build()
    }

    async fn bind(&mut self) -> Result<Self::Bound, Error> {
        let s = &self.settings;
        let grpc = TcpListener::bind(s.grpc_listen)
            .await
            .map_err(|source| Error::Bind {
                addr: s.grpc_listen,
                field: "monitor.grpc_listen",
                file: s.source.clone(),
                source,
            })?;
        #[cfg(feature = "web")]
        let web = match &s.web {
            Some(w) => {
                let l = TcpListener::bind(w.listen)
                    .await
                    .map_err(|source| Error::Bind {
                        addr: w.listen,
                        field: "server.host/server.port",
                        file: s.source.clone(),
                        source,
                    })?;
                // Users are read (or the first admin written) here, still privileged.
                let sec = crate::prepare_security(s, &l)?;
                Some((l, sec))
            }
            None => None,
        };
        #[cfg(not(feature = "web"))]
        let web = None;
        Ok((grpc, web))
    }

    async fn serve(self, (grpc, web): Self::Bound, stop: CancellationToken) -> Result<(), Error> {
        let collector = self.settings.collector_config();
        crate::run_prepared(collector, self.settings, grpc, web, stop).await
    }
}

/// `--once`: two refreshes (CPU use is a difference), then print the second.
fn once(settings: &Settings, json: bool) -> Result<(), Error> {
    let cc = settings.collector_config();
    cc.demand.mark(); // the full process table, read with the sample
    let mut c = Collector::new(cc).map_err(Error::Collector)?;
    std::thread::sleep(smon_collect::cpu::MIN_INTERVAL.max(Duration::from_millis(250)));
    let snap = c.sample(1);
    let text = if json {
        serde_json::to_string_pretty(&snap)? + "\n"
    } else {
        crate::query::render(&snap)
    };
    // A reader that leaves early (`| head`) is not an error (see `smon_runtime::cli`).
    smon_runtime::cli::print(&text).map_err(Error::Stdout)?;
    Ok(())
}

/// The agent's health probe: a summary `GetSnapshot` within 1.5 s whose sample is at most
/// `max_age` old (a stuck sampler fails it as surely as a dead process).
pub async fn probe_agent(
    addr: std::net::SocketAddr,
    token: Option<String>,
    max_age: Duration,
) -> Result<(), Unhealthy> {
    use smon_proto::agent_client::AgentClient;
    let deadline = Duration::from_millis(1500);
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Unhealthy(e.to_string()))?
            .connect_timeout(deadline)
            .connect()
            .await
            .map_err(|e| Unhealthy(format!("cannot connect to {addr}: {e}")))?;
        let mut req = tonic::Request::new(smon_proto::GetSnapshotRequest::default());
        if let Some(t) = &token {
            let v = format!("Bearer {t}")
                .parse()
                .map_err(|_| Unhealthy::from("bad token"))?;
            req.metadata_mut().insert("authorization", v);
        }
        let snap = AgentClient::new(channel)
            .get_snapshot(req)
            .await
            .map_err(|s| Unhealthy(format!("GetSnapshot: {}", s.message())))?
            .into_inner();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let age = now.saturating_sub(snap.sample_unix_ms);
        if age > max_age.as_millis() as u64 {
            return Err(Unhealthy(format!(
                "the latest sample is {} s old",
                age / 1000
            )));
        }
        Ok(())
    };
    tokio::time::timeout(deadline * 2, check)
        .await
        .unwrap_or_else(|_| Err(Unhealthy::from("no answer within 4 s")))
}
