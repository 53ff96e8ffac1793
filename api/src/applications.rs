//! The wire types of the applications routes (`web/PROTOCOL.md`, "Applications"): the fleet's
//! supervisord programs seen across hosts (the Applications page), the applications declared
//! in `config_app.json` (`applications[]`) with where they run and what the aggregator decided,
//! and the answers of the fleet-wide program and application actions; shared by the server
//! (`smon-web`, the aggregator) and its clients (`smonctl app`).

use serde::{Deserialize, Serialize};

/// `GET /api/v1/applications`: every supervisord group and program seen on any host, and the
/// declared applications.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplicationsAnswer {
    /// The programs across the fleet, sorted by group then name.
    pub programs: Vec<FleetProgram>,
    /// The declared applications, in configuration order (empty without `applications[]`).
    pub declared: Vec<DeclaredApp>,
}

/// One supervisord program (`group:name`) and the hosts that have it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetProgram {
    /// Its group.
    pub group: String,
    /// Its name in the group.
    pub name: String,
    /// On how many hosts it is `RUNNING`.
    pub running: u32,
    /// CPU use (percent of one CPU) summed over its processes on every host whose process list
    /// is at hand.
    pub cpu_percent: f32,
    /// Resident memory summed likewise (bytes).
    pub memory_bytes: u64,
    /// The declared application that manages it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Its state on each host that has it, sorted by host id.
    pub hosts: Vec<ProgramOnHost>,
}

/// A program's state on one host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramOnHost {
    /// Host id (`cluster:name`).
    pub host: String,
    /// The host's state (`up`, `stale`, `down`, `pending`).
    pub host_status: String,
    /// supervisord's state name (`RUNNING`, `STOPPED`, `FATAL`...).
    pub state: String,
    /// Its pid while it runs (0 otherwise).
    pub pid: u32,
    /// Seconds since it started, while it runs.
    pub uptime_s: u64,
    /// supervisord's description.
    pub description: String,
    /// CPU use summed over its processes on this host; absent without the process list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f32>,
    /// Resident memory summed likewise (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// Where to start a declared application's instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The candidates in configuration order.
    #[default]
    Config,
    /// The candidate with the lowest CPU use.
    LessLoaded,
    /// The candidate with the most memory available.
    MostMemoryFree,
}

/// What to do with an instance whose host is down for `down_after` seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnHostDown {
    /// Start it on the next candidate.
    #[default]
    RestartElsewhere,
    /// Leave it: wait for the host.
    Keep,
    /// Stop every instance.
    StopAll,
}

/// What a declared application is doing, as a whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    /// As many instances as declared are running.
    Running,
    /// Fewer running than declared, and the aggregator is starting more.
    Starting,
    /// Fewer running than declared, and the aggregator cannot start more (`problem` says why).
    Degraded,
    /// Stopped on purpose (by an action, `stop_all`, or waiting for `start_after`).
    #[default]
    Stopped,
}

/// A declared application (`applications[]` in `config_app.json`) and its instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeclaredApp {
    /// Its name.
    pub name: String,
    /// The supervisord program it runs (`group:name`).
    pub program: String,
    /// How many instances should run.
    pub instances: u32,
    /// Where instances are placed.
    pub strategy: Strategy,
    /// What happens when an instance's host goes down.
    pub on_host_down: OnHostDown,
    /// Applications that must be running before it starts.
    pub start_after: Vec<String>,
    /// The candidate host ids, resolved (a tag becomes its hosts), in order.
    pub candidates: Vec<String>,
    /// The hosts where it runs now.
    pub running_on: Vec<String>,
    /// What it is doing.
    pub state: AppState,
    /// Why it is degraded or waiting, e.g. "no candidate left: web-1 down, web-2 has no
    /// supervisord"; absent when all is well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The latest decisions, newest first (at most 20).
    pub decisions: Vec<Decision>,
}

/// One thing the aggregator decided for a declared application, and how it went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// `start`, `stop` (conciliation, `stop_all`, an action) or `none` (nothing could be done).
    pub action: String,
    /// The host acted on (empty for `none`).
    pub host: String,
    /// Why, e.g. "web-1 down for 30 s: restart elsewhere" or "conciliation: 2 running, 1
    /// declared".
    pub reason: String,
    /// `ok`, or the error.
    pub outcome: String,
}

/// An action on declared applications (`POST /api/v1/applications/{name}/{verb}`, or on all
/// of them with `POST /api/v1/applications/{verb}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppVerb {
    /// Start (in `start_after` order) and keep running.
    Start,
    /// Stop (in reverse order) and keep stopped until started.
    Stop,
    /// Stop, then start.
    Restart,
}

impl AppVerb {
    /// Its name in routes and the audit log (`application.<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
        }
    }
}

impl std::str::FromStr for AppVerb {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "start" => Ok(Self::Start),
            "stop" => Ok(Self::Stop),
            "restart" => Ok(Self::Restart),
            _ => Err(format!(
                "no application action '{s}': start, stop or restart"
            )),
        }
    }
}

/// What an application action did: the decisions it made, per application, in the order
/// they were carried out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppActionResult {
    /// The applications acted on, in the order acted on.
    pub applications: Vec<String>,
    /// The decisions, in order.
    pub decisions: Vec<Decision>,
    /// True when every decision's outcome is `ok`.
    pub ok: bool,
}
