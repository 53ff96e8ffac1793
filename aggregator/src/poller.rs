//! One poller per agent: holds one gRPC channel, consumes the agent's `Watch` stream (the
//! summary, or the detail while a browser watches that host), publishes what it gets on the
//! event feed (the store consumer applies it), lends its channel as the host's command link
//! ([`crate::link`]), and reconnects when the connection fails.
//!
//! Reconnecting: full connects (TCP, TLS, HTTP/2, `GetInfo`) back off exponentially with
//! jitter up to 30 s ([`backoff`]), so that a host whose agent answers but refuses us (a wrong
//! token, TLS settings that do not match, an HTTP port) is not hammered. When the agent is
//! gone (nothing answers on its port, or its connection broke), the poller also probes the
//! port with a bare TCP connect every [`probe_interval`] (about a second, jittered) during the
//! wait, and connects at once when it answers: a host is up again within about two seconds of
//! its agent's return after an outage of any length, while a dead host costs one refused TCP
//! connect a second ([`wait_for_agent`]).
//!
//! Every call has a deadline, and each poller is its own task with its own cancellation, so
//! a hung or slow agent never stalls the others and the registry can stop or restart one
//! alone. Failures, reconnections, connect times and sample latency are counted for
//! `/metrics` ([`PollMetrics`]). Errors reach the host row as sentences ([`AgentError`]); the
//! transport's own words go to the debug log.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use smon_collect::sampler::first_due;
use smon_proto::agent_client::AgentClient;
use smon_proto::{GetSnapshotRequest, Parts, WatchRequest};
use smon_web::hub::now_ms;
use smon_web::metrics::PollMetrics;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Target;
use crate::endpoint::{AgentError, Security, Stage, chain, classify, classify_status};
use crate::feed::{Body, Feed};
use crate::link::{AgentLink, Auth, LinkError, LinkSlot};

/// Longest wait between full reconnection attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// First wait after a failure.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest time between two probes of a gone agent's port (the shortest is half of it).
pub const PROBE_INTERVAL: Duration = Duration::from_millis(1500);
/// Deadline of one probe (a TCP connect). An agent on a link slower than this is still
/// reached by the full connects of the backoff.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline of the TCP connect, of `GetInfo` and of opening `Watch`.
const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// Deadline of the top-processes call: an agent without recent demand for processes waits
/// for a sample with a fresh process list (about one interval) before it answers.
const PROCESSES_DEADLINE: Duration = Duration::from_secs(10);

/// The wait before attempt `n` (0-based) after consecutive failures: exponential, capped, with
/// "equal jitter" (half fixed, half random) so that many pollers do not retry in lockstep.
pub fn backoff(n: u32, rng: &mut impl rand::Rng) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(1u32 << n.min(16))
        .min(BACKOFF_CAP);
    let half = exp / 2;
    half + half.mul_f64(rng.random::<f64>())
}

/// The time until the next probe of a gone agent's port: between half of
/// [`PROBE_INTERVAL`] and all of it, at random, so that the probes of a fleet that went down
/// together (a switch, a power cut) spread out.
pub fn probe_interval(rng: &mut impl rand::Rng) -> Duration {
    let half = PROBE_INTERVAL / 2;
    half + half.mul_f64(rng.random::<f64>())
}

/// How a wait between two full connects ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The whole backoff passed.
    Backoff,
    /// A probe found the port answering: connect now.
    Answered,
}

/// Waits `wait`, probing the port with `probe` (true: it answers) every [`probe_interval`]
/// meanwhile; returns early when a probe says the port answers. Used while the agent is gone
/// ([`AgentError::agent_gone`]); pure but for the probe, so that it is tested on paused time.
pub async fn wait_for_agent<P, F>(wait: Duration, mut probe: P, rng: &mut impl rand::Rng) -> Waited
where
    P: FnMut() -> F,
    F: Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + wait;
    loop {
        let next = tokio::time::Instant::now() + probe_interval(rng);
        if next >= until {
            tokio::time::sleep_until(until).await;
            return Waited::Backoff;
        }
        tokio::time::sleep_until(next).await;
        if probe().await {
            return Waited::Answered;
        }
    }
}

/// Whether something accepts a TCP connection at `address` within [`PROBE_TIMEOUT`]. The
/// connection is closed at once: no TLS, no HTTP/2, nothing the agent has to answer.
pub async fn port_answers(address: &str) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}

/// Why a poller lost (or could not make) its connection: the sentence the host row shows
/// (its `last_error`), and the transport's own words for the debug log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct PollError {
    /// What happened, for the user.
    pub error: AgentError,
    /// The transport's error chain (empty when there was none, e.g. a silent stream).
    pub raw: String,
}

impl PollError {
    fn bare(error: AgentError) -> Self {
        Self {
            error,
            raw: String::new(),
        }
    }

    fn status(s: &tonic::Status, stage: Stage, target: &Target) -> Self {
        let raw = match std::error::Error::source(s) {
            Some(src) => format!("{:?}: {}: {}", s.code(), s.message(), chain(src)),
            None => format!("{:?}: {}", s.code(), s.message()),
        };
        Self {
            error: classify_status(s, stage, Security::of(target), &target.address),
            raw,
        }
    }
}

/// What one poller needs.
pub struct Poll {
    /// The agent.
    pub target: Target,
    /// Where samples, host facts and failures go.
    pub feed: Feed,
    /// Where the connected client is lent.
    pub link: LinkSlot,
    /// True while a browser watches this host (then the detail parts are asked for).
    pub demand: watch::Receiver<bool>,
    /// Interval asked of the agent.
    pub interval: Duration,
    /// A silent stream counts as failed after this long.
    pub down_after: Duration,
    /// Its counters.
    pub metrics: PollMetrics,
    /// Fetch the top processes this often for the history (`None`: history is off).
    pub processes_every: Option<Duration>,
    /// Whether the alert rules need this host's whole process list (then the periodic fetch
    /// asks for it).
    pub process_needs: Option<ProcessNeeds>,
    /// Whether the alert rules need every container of this host (then the summary stream
    /// asks for them all, `Parts.containers`; checked when the stream opens and every
    /// [`CONTAINER_NEEDS_EVERY`]).
    pub container_needs: Option<ProcessNeeds>,
}

/// How often a live stream checks whether the alert rules' need for every container changed
/// (a rule added or removed), reopening with the other parts if it did: a lock of the
/// rule engine per host this often, not per sample.
pub const CONTAINER_NEEDS_EVERY: Duration = Duration::from_secs(10);

/// Says whether the alert rules need a host's whole process list (`process_missing`):
/// the periodic process fetch then asks for every process, not just the top ones.
pub type ProcessNeeds = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Polls one agent until `stop`; meanwhile, when the history is on, fetches its top
/// processes every [`Poll::processes_every`] ([`fetch_processes`]), in the same task but
/// independent of the stream.
pub async fn run(p: Poll, stop: CancellationToken) {
    let processes = p.processes_every.map(|every| {
        fetch_processes(
            p.target.spec.id(),
            p.link.clone(),
            p.feed.clone(),
            every,
            p.process_needs.clone(),
            stop.clone(),
        )
    });
    let processes = async move {
        if let Some(f) = processes {
            f.await;
        }
    };
    tokio::join!(poll(p, stop), processes);
}

/// Every `every` (the first time at a random point of the first period), asks the agent for
/// its top processes over the poller's channel (a unary `GetSnapshot`, which does not disturb
/// the `Watch` stream) and publishes them as [`Body::Processes`]. A host not connected is
/// skipped; a failed call is logged at debug level and never touches the live stream or the
/// host's state. When `needs` says the alert rules need the host's whole process list, the
/// call asks for it too (the history keeps only the top ones of it). Until `stop`.
pub async fn fetch_processes(
    id: String,
    link: LinkSlot,
    feed: Feed,
    every: Duration,
    needs: Option<ProcessNeeds>,
    stop: CancellationToken,
) {
    let first = first_due(every, &mut rand::rng());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(agent) = link.borrow(&id) else {
            continue;
        };
        let parts = smon_proto::Parts {
            processes: needs.as_ref().is_some_and(|n| n(&id)),
            ..smon_history::procs::PARTS
        };
        let call = agent.call(PROCESSES_DEADLINE, |mut c| async move {
            let mut req = tonic::Request::new(GetSnapshotRequest { parts: Some(parts) });
            req.set_timeout(PROCESSES_DEADLINE);
            c.get_snapshot(req).await
        });
        let answer = tokio::select! {
            _ = stop.cancelled() => return,
            a = call => a,
        };
        match answer {
            Ok(snap) => {
                feed.publish(
                    now_ms(),
                    Body::Processes {
                        host: id.clone(),
                        snapshot: Arc::new(snap),
                    },
                );
            }
            Err(e) => {
                tracing::debug!(host = %id, error = %e, "Cannot fetch the top processes for the history.")
            }
        }
    }
}

/// The live stream's loop: connects, consumes `Watch`, backs off and reconnects, until `stop`.
async fn poll(mut p: Poll, stop: CancellationToken) {
    let id = p.target.spec.id();
    let mut failures: u32 = 0;
    loop {
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = session(&mut p, &id, &stop, &mut failures) => r,
        };
        let Err(error) = result else { return };
        let text = error.to_string();
        p.metrics.failed();
        p.link.down(text.clone());
        p.feed.publish(
            now_ms(),
            Body::Unreachable {
                host: id.clone(),
                error: text,
            },
        );
        let wait = backoff(failures, &mut rand::rng());
        let gone = error.error.agent_gone();
        if failures == 0 || failures.is_power_of_two() {
            // Logged on the first failure and then more and more rarely while it persists.
            tracing::warn!(host = %id, address = %p.target.address, error = %error, retry_in_ms = wait.as_millis() as u64, probing = gone, "Agent unreachable; backing off.");
        }
        if !error.raw.is_empty() {
            tracing::debug!(host = %id, raw = %error.raw, "The transport's own words.");
        }
        failures = failures.saturating_add(1);
        let address = p.target.address.clone();
        let waited = async {
            if gone {
                let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
                wait_for_agent(wait, || port_answers(&address), &mut rng).await
            } else {
                tokio::time::sleep(wait).await;
                Waited::Backoff
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            w = waited => if w == Waited::Answered {
                tracing::debug!(host = %id, "The agent's port answers again; connecting.");
            }
        }
    }
}

/// One connection: connect, GetInfo, then Watch until something fails. Returns `Ok` only
/// when stopped.
async fn session(
    p: &mut Poll,
    id: &str,
    stop: &CancellationToken,
    failures: &mut u32,
) -> Result<(), PollError> {
    let started = Instant::now();
    let target = &p.target;
    let settings = |e: &dyn std::fmt::Display| PollError::bare(AgentError::Settings(e.to_string()));
    let endpoint = crate::endpoint::endpoint(target, CALL_DEADLINE).map_err(|e| settings(&e))?;
    let channel = tokio::time::timeout(CALL_DEADLINE, endpoint.connect())
        .await
        .map_err(|_| {
            PollError::bare(AgentError::ConnectTimeout {
                address: target.address.clone(),
            })
        })?
        .map_err(|e| PollError {
            error: classify(&e, Stage::Connect, Security::of(target), &target.address),
            raw: chain(&e),
        })?;
    let auth = Auth::new(target.token.as_deref()).map_err(|e| settings(&e))?;
    let mut client = AgentClient::with_interceptor(channel.clone(), auth);

    // The first call goes through the command link, as every borrowed call does.
    let link = AgentLink::new(id.to_owned(), client.clone(), channel.clone());
    let info = link.get_info(CALL_DEADLINE).await.map_err(|e| match e {
        LinkError::Call { status, .. } => PollError::status(&status, Stage::Connect, target),
        LinkError::Timeout { deadline, .. } => PollError::bare(AgentError::NoAnswer {
            what: "GetInfo",
            after: deadline,
        }),
        other => PollError {
            error: AgentError::Other(other.to_string()),
            raw: String::new(),
        },
    })?;
    p.metrics.connected(started.elapsed());
    p.link.up(client.clone(), channel);
    p.feed.publish(
        now_ms(),
        Body::Connected {
            host: id.to_owned(),
            info: Arc::new(info),
        },
    );

    // One cancellation waiter and one silence timer for the whole session, not one of each per
    // message: at 10,000 agents a fresh `cancelled()` per message registers and removes a
    // waiter on the one shared token 10,000 times a second, and a fresh `timeout` inserts and
    // removes a timer as often.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let down_after = p.down_after;
    // The agent's HostInfo changes while it runs (GPUs appearing or going): a sample whose
    // `info_unix_ms` moved past what GetInfo answered sends for the facts again.
    let mut info_ms = 0u64;
    let silence = tokio::time::sleep(down_after);
    tokio::pin!(silence);
    loop {
        let detail = *p.demand.borrow_and_update();
        let all_containers = p.container_needs.as_ref().is_some_and(|n| n(id));
        let parts = if detail {
            Parts::DETAIL
        } else {
            Parts {
                containers: all_containers,
                ..Parts::SUMMARY
            }
        };
        let req = WatchRequest {
            parts: Some(parts),
            min_interval_ms: p.interval.as_millis() as u32,
        };
        // The deadline covers opening the stream, not its life.
        let mut stream = tokio::time::timeout(CALL_DEADLINE, client.watch(req))
            .await
            .map_err(|_| {
                PollError::bare(AgentError::NoAnswer {
                    what: "Watch",
                    after: CALL_DEADLINE,
                })
            })?
            .map_err(|s| PollError::status(&s, Stage::Connected, &p.target))?
            .into_inner();
        silence
            .as_mut()
            .reset(tokio::time::Instant::now() + down_after);
        let changed = p.demand.changed();
        tokio::pin!(changed);
        let mut needs_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + CONTAINER_NEEDS_EVERY,
            CONTAINER_NEEDS_EVERY,
        );
        loop {
            tokio::select! {
                _ = &mut stopped => return Ok(()),
                _ = needs_tick.tick(), if p.container_needs.is_some() && !detail => {
                    if p.container_needs.as_ref().is_some_and(|n| n(id)) != all_containers {
                        break; // reopen with the other parts
                    }
                }
                c = &mut changed => {
                    if c.is_err() {
                        return Ok(());
                    }
                    break; // reopen with the other parts
                }
                _ = &mut silence => return Err(PollError::bare(AgentError::Silent(down_after))),
                msg = stream.message() => match msg {
                    Ok(Some(snap)) => {
                        *failures = 0;
                        if snap.info_unix_ms > info_ms {
                            info_ms = snap.info_unix_ms;
                            match link.get_info(CALL_DEADLINE).await {
                                Ok(info) => {
                                    p.feed.publish(now_ms(), Body::Connected { host: id.to_owned(), info: Arc::new(info) });
                                }
                                Err(e) => tracing::warn!(host = %id, error = %e, "Cannot read the agent's changed host facts."),
                            }
                        }
                        let now = now_ms();
                        p.metrics.sample(snap.sample_unix_ms, now);
                        p.feed.publish(now, Body::Sample { host: id.to_owned(), snapshot: Arc::new(snap) });
                        silence
                            .as_mut()
                            .reset(tokio::time::Instant::now() + down_after);
                    }
                    Ok(None) => return Err(PollError::bare(AgentError::Closed)),
                    Err(s) => return Err(PollError::status(&s, Stage::Connected, &p.target)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let first = backoff(0, &mut rng);
        assert!(
            first >= BACKOFF_BASE / 2 && first <= BACKOFF_BASE,
            "{first:?}"
        );
        let later = backoff(3, &mut rng);
        assert!(
            later >= BACKOFF_BASE * 4 && later <= BACKOFF_BASE * 8,
            "{later:?}"
        );
        for n in [7, 20, 1000] {
            let d = backoff(n, &mut rng);
            assert!(d >= BACKOFF_CAP / 2 && d <= BACKOFF_CAP, "{n}: {d:?}");
        }
        let a: Vec<_> = (0..8).map(|_| backoff(5, &mut rng)).collect();
        assert!(a.windows(2).any(|w| w[0] != w[1]), "jitter varies: {a:?}");
    }

    #[test]
    fn probes_are_about_a_second_apart_and_jittered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let a: Vec<_> = (0..100).map(|_| probe_interval(&mut rng)).collect();
        assert!(
            a.iter()
                .all(|d| *d >= PROBE_INTERVAL / 2 && *d <= PROBE_INTERVAL),
            "{a:?}"
        );
        assert!(a.windows(2).any(|w| w[0] != w[1]), "jitter varies");
    }

    /// The poller's loop on paused time, with the network replaced by `answers` (true once the
    /// agent is back): a full connect (which fails while the agent is gone), then the wait;
    /// `probing` as the poller does for a gone agent, or the backoff alone as before.
    /// Returns when the full connect succeeds, and the number of probes and full connects.
    async fn reconnect(
        answers: impl Fn() -> bool + Copy,
        probing: bool,
        rng: &mut rand::rngs::StdRng,
        probes: &mut u32,
    ) -> u32 {
        let mut failures = 0;
        loop {
            if answers() {
                return failures + 1;
            }
            let wait = backoff(failures, rng);
            failures += 1;
            if probing {
                let probe = || {
                    *probes += 1;
                    std::future::ready(answers())
                };
                wait_for_agent(wait, probe, rng).await;
            } else {
                tokio::time::sleep(wait).await;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_agent_back_after_any_outage_is_reached_within_the_probe_interval() {
        let mut backoff_alone_late = Duration::ZERO;
        for (i, outage_s) in [2, 25, 31, 95, 600, 3600, 86_400].into_iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let back = tokio::time::Instant::now() + Duration::from_secs(outage_s);
            let answers = move || tokio::time::Instant::now() >= back;
            let mut probes = 0;
            reconnect(answers, true, &mut rng, &mut probes).await;
            let late = tokio::time::Instant::now() - back;
            assert!(
                late <= PROBE_INTERVAL,
                "after a {outage_s} s outage: reached {late:?} after the agent's return"
            );

            // What the backoff alone gave (issue 16: up 12-13 s after a 25 s outage).
            let back = tokio::time::Instant::now() + Duration::from_secs(outage_s);
            let answers = move || tokio::time::Instant::now() >= back;
            reconnect(answers, false, &mut rng, &mut probes).await;
            backoff_alone_late = backoff_alone_late.max(tokio::time::Instant::now() - back);
        }
        assert!(
            backoff_alone_late > Duration::from_secs(5),
            "the test tells the two apart: {backoff_alone_late:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_host_costs_about_one_probe_a_second() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let start = tokio::time::Instant::now();
        let until = start + Duration::from_secs(600);
        let mut probes = 0;
        // The agent never comes back within the 10 minutes watched.
        let answers = move || tokio::time::Instant::now() >= until;
        let connects = reconnect(answers, true, &mut rng, &mut probes).await;
        let per_s = f64::from(probes) / 600.0;
        assert!((0.66..=1.34).contains(&per_s), "{per_s} probes a second");
        // Full connects follow the backoff: a handful, then one every 15-30 s.
        assert!((20..=50).contains(&connects), "{connects} full connects");
    }

    #[tokio::test(start_paused = true)]
    async fn a_port_that_answers_ends_the_wait_at_the_first_probe() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let t = tokio::time::Instant::now();
        let w = wait_for_agent(BACKOFF_CAP, || std::future::ready(true), &mut rng).await;
        assert_eq!(w, Waited::Answered);
        assert!(t.elapsed() <= PROBE_INTERVAL);
        let t = tokio::time::Instant::now();
        let w = wait_for_agent(
            Duration::from_secs(7),
            || std::future::ready(false),
            &mut rng,
        )
        .await;
        assert_eq!((w, t.elapsed()), (Waited::Backoff, Duration::from_secs(7)));
    }
}
