//! Actions on hosts (`web/PROTOCOL.md`, "Actions"): the [`smon_web::acting::ActionsService`]
//! over the registry and the agents' command links.
//!
//! - **Wake**: the host's magic packet goes to its `wol.broadcast:port`, sent by the
//!   aggregator, or, with `wol.via`, by the agent of that host (its `Control.Wake`, with its
//!   control token), which sits on the target's LAN: across subnets, VPNs and container
//!   bridges, with no port forwarding.
//! - **Reboot / shutdown**: the host's own agent runs its configured command
//!   (`Control.Power`, with the host's control token).
//! - **Check**: the reachability checker's ping and service checks, now ([`crate::reach`]);
//!   `ok` when nothing checked is down.
//!
//! - **Programs and signals** (`web/PROTOCOL.md`, "Programs and signals"): supervisord programs started,
//!   stopped, restarted and their logs tailed (`Control.Program`, `Control.TailLog`), a
//!   signal sent to a process (`Control.Signal`), all through the host's own agent with its
//!   control token.
//!
//! An agent's refusal is turned into what to fix (the token, the agent's control config).

use std::net::SocketAddrV4;
use std::time::Duration;

use smon_api::actions::{Action, ActionResult, Selection};
use smon_proto::{LogStream, PowerAction, ProgramAction, SignalName};
use smon_web::acting::{
    ActionError, ActionsService, LogTail, ProgramResult, ProgramState, ProgramVerb,
    ProgramsService, SignalKind, SignalResult,
};

use crate::config::Target;
use crate::link::LinkError;
use crate::reach::Reach;
use crate::registry::Registry;

/// How long an agent has to answer a control call.
pub const CONTROL_DEADLINE: Duration = Duration::from_secs(10);

/// How long an agent has to answer a program action: supervisord waits for a program's
/// `startsecs` (or `stopwaitsecs`) before answering.
pub const PROGRAM_DEADLINE: Duration = Duration::from_secs(60);

/// The actions of one server, over its registry and its reachability checker.
#[derive(Clone)]
pub struct Actions {
    registry: Registry,
    reach: Reach,
}

impl Actions {
    /// Actions on `registry`'s hosts; checks through `reach`.
    pub fn new(registry: Registry, reach: Reach) -> Self {
        Self { registry, reach }
    }

    async fn check(&self, id: &str) -> Result<ActionResult, ActionError> {
        let r = self.reach.check_now(id).await.ok_or_else(|| {
            ActionError::NotFound(format!(
                "no host '{id}' in the fleet (ids are cluster:name)"
            ))
        })?;
        let mut parts = Vec::new();
        let mut down = false;
        match (r.ping.up, r.ping.latency_ms, &r.ping.error) {
            (Some(true), Some(ms), _) => parts.push(format!("ping {ms:.1} ms")),
            (Some(false), _, e) => {
                down = true;
                parts.push(format!(
                    "ping down: {}",
                    e.as_deref().unwrap_or("no answer")
                ));
            }
            (_, _, Some(e)) => parts.push(format!("ping unknown: {e}")),
            _ => parts.push("ping unknown".into()),
        }
        for s in &r.services {
            match (s.up, s.latency_ms, &s.error) {
                (Some(true), Some(ms), _) => parts.push(format!("{} up ({ms:.1} ms)", s.name)),
                (Some(true), None, _) => parts.push(format!("{} up", s.name)),
                (Some(false), _, e) => {
                    down = true;
                    parts.push(format!(
                        "{} down: {}",
                        s.name,
                        e.as_deref().unwrap_or("no answer")
                    ));
                }
                (None, _, e) => parts.push(format!(
                    "{} unknown{}",
                    s.name,
                    e.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                )),
            }
        }
        Ok(ActionResult {
            host: id.to_owned(),
            ok: !down,
            message: parts.join("; "),
        })
    }

    fn target(&self, id: &str) -> Result<Target, ActionError> {
        self.registry.target(id).ok_or_else(|| {
            ActionError::NotFound(format!(
                "no host '{id}' with an agent in the fleet (ids are cluster:name)"
            ))
        })
    }

    async fn wake(&self, t: &Target) -> Result<ActionResult, ActionError> {
        let id = t.spec.id();
        let mac = t.net.mac.ok_or_else(|| {
            ActionError::NotSetUp(format!(
                "{id} has no MAC address: set mac in its host entry to wake it"
            ))
        })?;
        let to = SocketAddrV4::new(t.net.wol.broadcast, t.net.wol.port);
        let message = match &t.net.wol.via {
            None => {
                let sent = tokio::task::spawn_blocking(move || smon_runtime::wol::send(mac, to))
                    .await
                    .map_err(|e| ActionError::Internal(format!("the sending task failed: {e}")))?;
                sent.map_err(|e| {
                    ActionError::Internal(format!(
                        "cannot send the magic packet to {to}: {e} (is {} an address of a network this machine is on?)",
                        to.ip()
                    ))
                })?;
                format!("magic packet for {mac} sent to {to}")
            }
            Some(via) => {
                let relay = self.registry.target(via).ok_or_else(|| {
                    ActionError::NotSetUp(format!(
                        "{id}'s wol.via names {via}, which is not in the fleet"
                    ))
                })?;
                let token = relay.control_token.as_deref().ok_or_else(|| {
                    ActionError::NotSetUp(format!(
                        "the relay {via} has no control_token: set it in its host entry (the \
                         agent's control.token) to wake hosts through it"
                    ))
                })?;
                let link = self.registry.link(via).map_err(|e| {
                    ActionError::Agent(format!("cannot wake {id} through {via}: {e}"))
                })?;
                let r = link
                    .wake(token, mac, to, CONTROL_DEADLINE)
                    .await
                    .map_err(|e| refusal(e, via))?;
                format!(
                    "magic packet for {mac} sent to {} by {via}'s agent",
                    r.sent_to
                )
            }
        };
        Ok(ActionResult {
            host: id,
            ok: true,
            message,
        })
    }

    /// The control token and link of host `id`, to `what` (for the reasons).
    fn control(
        &self,
        id: &str,
        what: &str,
    ) -> Result<(String, crate::link::AgentLink), ActionError> {
        let t = self.target(id)?;
        let token = t.control_token.clone().ok_or_else(|| {
            ActionError::NotSetUp(format!(
                "{id} has no control_token: set it in its host entry (the agent's control.token) \
                 to {what}"
            ))
        })?;
        let link = self
            .registry
            .link(id)
            .map_err(|e| ActionError::Agent(format!("cannot {what} on {id}: {e}")))?;
        Ok((token, link))
    }

    async fn power(&self, t: &Target, action: PowerAction) -> Result<ActionResult, ActionError> {
        let id = t.spec.id();
        let what = match action {
            PowerAction::Shutdown => "shutdown",
            _ => "reboot",
        };
        let (token, link) = self.control(&id, what)?;
        let r = link
            .power(&token, action, CONTROL_DEADLINE)
            .await
            .map_err(|e| refusal(e, &id))?;
        Ok(ActionResult {
            host: id.clone(),
            ok: true,
            message: format!("{what} started on {id}: {} (pid {})", r.command, r.pid),
        })
    }
}

/// A program or signal call's refusal: as [`refusal`], with an unknown program or process
/// (NOT_FOUND) a 404 and a refused signal (PERMISSION_DENIED from a served call) a 409 with
/// the agent's reason.
fn control_refusal(e: LinkError, host: &str) -> ActionError {
    if let LinkError::Call { status, .. } = &e {
        let why = status.message();
        match status.code() {
            tonic::Code::NotFound => {
                return ActionError::NotFound(format!("{host}'s agent: {why}"));
            }
            // A bad token is reported by the agent as such; anything else is its refusal of
            // this process (pid 1, itself, a user outside control.signals.users).
            tonic::Code::PermissionDenied if !why.contains("token") => {
                return ActionError::NotSetUp(format!("{host}'s agent refused: {why}"));
            }
            _ => {}
        }
    }
    refusal(e, host)
}

#[async_trait::async_trait]
impl ProgramsService for Actions {
    async fn program(
        &self,
        id: &str,
        verb: ProgramVerb,
        name: &str,
    ) -> Result<ProgramResult, ActionError> {
        let what = format!("{} programs", verb.as_str());
        let (token, link) = self.control(id, &what)?;
        let action = match verb {
            ProgramVerb::Start => ProgramAction::Start,
            ProgramVerb::Stop => ProgramAction::Stop,
            ProgramVerb::Restart => ProgramAction::Restart,
        };
        let r = link
            .program(&token, action, name, PROGRAM_DEADLINE)
            .await
            .map_err(|e| control_refusal(e, id))?;
        let programs: Vec<ProgramState> = r.programs.iter().map(ProgramState::from_proto).collect();
        let states = programs
            .iter()
            .map(|p| format!("{}:{} {}", p.group, p.name, p.state))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(ProgramResult {
            host: id.to_owned(),
            ok: true,
            message: format!("{} {name} on {id}: {states}", verb.as_str()),
            programs,
        })
    }

    async fn tail_log(
        &self,
        id: &str,
        name: &str,
        stderr: bool,
        bytes: u32,
        from: Option<u64>,
    ) -> Result<LogTail, ActionError> {
        let (token, link) = self.control(id, "read program logs")?;
        let stream = if stderr {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        };
        let r = link
            .tail_log(&token, name, stream, bytes, from, CONTROL_DEADLINE)
            .await
            .map_err(|e| control_refusal(e, id))?;
        Ok(LogTail {
            text: r.text,
            offset: r.offset,
            overflow: r.overflow,
        })
    }

    async fn signal(
        &self,
        id: &str,
        pid: u32,
        signal: SignalKind,
    ) -> Result<SignalResult, ActionError> {
        let (token, link) = self.control(id, "send signals")?;
        let sig = match signal {
            SignalKind::Term => SignalName::Term,
            SignalKind::Int => SignalName::Int,
            SignalKind::Kill => SignalName::Kill,
            SignalKind::Hup => SignalName::Hup,
        };
        let r = link
            .signal(&token, pid, sig, CONTROL_DEADLINE)
            .await
            .map_err(|e| control_refusal(e, id))?;
        Ok(SignalResult {
            host: id.to_owned(),
            ok: true,
            message: format!(
                "{} sent to {} ({}, of {}) on {id}",
                signal.as_str(),
                r.pid,
                r.name,
                r.user
            ),
            pid: r.pid,
            user: r.user,
            name: r.name,
        })
    }
}

/// An agent's answer to a control call, as what to fix.
fn refusal(e: LinkError, host: &str) -> ActionError {
    let LinkError::Call { status, .. } = &e else {
        return ActionError::Agent(e.to_string());
    };
    let why = status.message();
    match status.code() {
        tonic::Code::Unimplemented => ActionError::NotSetUp(format!(
            "{host}'s agent takes no control calls: give it a control token (control.token_file \
             in its config_node.json) and set the same as control_token here"
        )),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            ActionError::NotSetUp(format!(
                "{host}'s agent refused the control token: control_token here must be the \
                 agent's control.token ({why})"
            ))
        }
        tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => {
            ActionError::NotSetUp(format!("{host}'s agent refused: {why}"))
        }
        tonic::Code::ResourceExhausted => {
            ActionError::Agent(format!("{host}'s agent refused: {why}"))
        }
        _ => ActionError::Agent(e.to_string()),
    }
}

#[async_trait::async_trait]
impl ActionsService for Actions {
    async fn act(&self, action: Action, id: &str) -> Result<ActionResult, ActionError> {
        let t = self.target(id)?;
        match action {
            Action::Wake => self.wake(&t).await,
            Action::Reboot => self.power(&t, PowerAction::Reboot).await,
            Action::Shutdown => self.power(&t, PowerAction::Shutdown).await,
            Action::Check => self.check(id).await,
        }
    }

    fn select(&self, sel: &Selection) -> Result<Vec<String>, ActionError> {
        let r = &self.registry;
        let targets = || r.ids().into_iter().filter_map(|id| r.target(&id));
        let mut ids: Vec<String> = match (&sel.hosts, &sel.tag, &sel.cluster) {
            (Some(hosts), None, None) => {
                let unknown: Vec<&str> = hosts
                    .iter()
                    .filter(|h| r.target(h).is_none())
                    .map(String::as_str)
                    .collect();
                if !unknown.is_empty() {
                    return Err(ActionError::NotFound(format!(
                        "not in the fleet: {} (ids are cluster:name)",
                        unknown.join(", ")
                    )));
                }
                let mut seen = std::collections::HashSet::new();
                return nonempty(
                    hosts
                        .iter()
                        .filter(|h| seen.insert(h.as_str()))
                        .cloned()
                        .collect(),
                    "hosts",
                );
            }
            (None, Some(tag), None) => targets()
                .filter(|t| t.spec.tags.iter().any(|x| x == tag))
                .map(|t| t.spec.id())
                .collect(),
            (None, None, Some(c)) => targets()
                .filter(|t| &t.spec.cluster == c)
                .map(|t| t.spec.id())
                .collect(),
            _ => {
                return Err(ActionError::Invalid(
                    "select hosts with exactly one of hosts, tag or cluster".into(),
                ));
            }
        };
        ids.sort();
        let what = match (&sel.tag, &sel.cluster) {
            (Some(t), _) => format!("tag '{}'", smon_web::security::login::log_safe(t)),
            (_, Some(c)) => format!("cluster '{}'", smon_web::security::login::log_safe(c)),
            _ => "selection".into(),
        };
        nonempty(ids, &what)
    }
}

fn nonempty(ids: Vec<String>, what: &str) -> Result<Vec<String>, ActionError> {
    if ids.is_empty() {
        Err(ActionError::NotFound(format!("the {what} names no host")))
    } else {
        Ok(ids)
    }
}
