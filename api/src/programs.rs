//! The wire types of the program routes (`web/PROTOCOL.md`, "Programs and signals"): a host's supervisord
//! programs, what a program action did, a log's tail, and what a signal did; shared by the
//! server (`smon-web`) and its clients (`smonctl`).

use serde::{Deserialize, Serialize};

/// What may be done to a supervisord program (`web/PROTOCOL.md`, "Programs and signals").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgramVerb {
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Stop it (unless stopped), then start it.
    Restart,
}

impl ProgramVerb {
    /// Its name in routes and in the audit log (`program.<name>` there).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
        }
    }
}

impl std::str::FromStr for ProgramVerb {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "start" => Ok(Self::Start),
            "stop" => Ok(Self::Stop),
            "restart" => Ok(Self::Restart),
            _ => Err(format!("no program action '{s}': start, stop or restart")),
        }
    }
}

/// A signal the signal route may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SignalKind {
    /// SIGTERM.
    Term,
    /// SIGINT.
    Int,
    /// SIGKILL.
    Kill,
    /// SIGHUP.
    Hup,
}

impl SignalKind {
    /// Its name, `TERM`, `INT`, `KILL` or `HUP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Term => "TERM",
            Self::Int => "INT",
            Self::Kill => "KILL",
            Self::Hup => "HUP",
        }
    }
}

/// One supervisord program of a host, as `GET /api/v1/hosts/{id}/programs` and the program
/// actions show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramState {
    /// Its group (its own name outside any `[group:x]`).
    pub group: String,
    /// Its name in the group.
    pub name: String,
    /// supervisord's state name: `RUNNING`, `STOPPED`, `FATAL`...
    pub state: String,
    /// Its pid while it runs (0 otherwise).
    pub pid: u32,
    /// Seconds since it started, while it runs.
    pub uptime_s: u64,
    /// supervisord's description, e.g. `pid 4242, uptime 0:03:10`.
    pub description: String,
    /// Why it could not be spawned (empty otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spawnerr: String,
    /// The exit status of its last run.
    pub exit_status: i32,
    /// CPU use (percent of one CPU) summed over the host's processes marked with this
    /// program; absent when the process list is not at hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f32>,
    /// Resident memory summed over those processes (bytes); absent as `cpu_percent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

impl ProgramState {
    /// `p` as the routes show it, without process figures.
    pub fn from_proto(p: &smon_proto::Program) -> Self {
        Self {
            group: p.group.clone(),
            name: p.name.clone(),
            state: p.state.clone(),
            pid: p.pid,
            uptime_s: p.uptime_s,
            description: p.description.clone(),
            spawnerr: p.spawnerr.clone(),
            exit_status: p.exit_status,
            cpu_percent: None,
            memory_bytes: None,
        }
    }
}

/// What a program action did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramResult {
    /// The host id.
    pub host: String,
    /// Always true in an answer (a refusal is an error status).
    pub ok: bool,
    /// A sentence, e.g. `stop jobs:a on lab:n1: STOPPED`.
    pub message: String,
    /// The programs acted on, as supervisord reports them afterwards.
    pub programs: Vec<ProgramState>,
}

/// The end of a program's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogTail {
    /// The text (it may start in the middle of a line).
    pub text: String,
    /// The log's size.
    pub offset: u64,
    /// True when the log holds more than was returned.
    pub overflow: bool,
}

/// What a signal did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalResult {
    /// The host id.
    pub host: String,
    /// Always true in an answer.
    pub ok: bool,
    /// A sentence, e.g. `TERM sent to 4242 (sleep, of alice) on lab:n1`.
    pub message: String,
    /// The process signalled.
    pub pid: u32,
    /// Its user.
    pub user: String,
    /// Its short name.
    pub name: String,
}

/// `GET /api/v1/hosts/{id}/programs`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramsAnswer {
    /// The host id.
    pub host: String,
    /// Whether the host's agent reads a supervisord (`control.supervisor`).
    pub supervisor: bool,
    /// Where that supervisord is reached (no credentials).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Why supervisord could not be read, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How old the list is (ms).
    pub age_ms: u64,
    /// Whether the process figures (`cpu_percent`, `memory_bytes`) are given: the host's
    /// latest sample holds its process list.
    pub processes: bool,
    /// The programs, by group then name.
    pub programs: Vec<ProgramState>,
}

/// The answer of a fleet-wide program action (`POST /api/v1/programs/{name}/{verb}`): one
/// result per host selected, in host order; a host where it failed has `ok: false`, the
/// reason as `message` and no programs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramGroupAnswer {
    /// The program acted on (`group:name` or `group:*`).
    pub program: String,
    /// What was done.
    pub verb: ProgramVerb,
    /// One result per host.
    pub results: Vec<ProgramResult>,
}
