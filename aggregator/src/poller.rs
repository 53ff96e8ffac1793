//! One poller per agent: holds one gRPC channel, consumes the agent's `Watch` stream (the
//! summary, or the detail while a browser watches that host), publishes what it gets on the
//! event feed (the store consumer applies it), lends its channel as the host's command link
//! ([`crate::link`]), and reconnects with exponential backoff and jitter (capped at 30 s).
//! Every call has a deadline, and each poller is its own task with its own cancellation, so
//! a hung or slow agent never stalls the others and the registry can stop or restart one
//! alone. Failures, reconnections, connect times and sample latency are counted for
//! `/metrics` ([`PollMetrics`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use smon_proto::agent_client::AgentClient;
use smon_proto::{Parts, WatchRequest};
use smon_web::hub::now_ms;
use smon_web::metrics::PollMetrics;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Target;
use crate::endpoint::{EndpointError, Explained, chain, explained, status_text};
use crate::feed::{Body, Feed};
use crate::link::{AgentLink, Auth, BadToken, LinkError, LinkSlot};

/// Longest wait between reconnection attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// First wait after a failure.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Deadline of the TCP connect, of `GetInfo` and of opening `Watch`.
const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// The wait before attempt `n` (0-based) after consecutive failures: exponential, capped, with
/// "equal jitter" (half fixed, half random) so that many pollers do not retry in lockstep.
pub fn backoff(n: u32, rng: &mut impl rand::Rng) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(1u32 << n.min(16))
        .min(BACKOFF_CAP);
    let half = exp / 2;
    half + half.mul_f64(rng.random::<f64>())
}

/// Why a poller lost (or could not make) its connection. The text is what the host row shows
/// as `last_error`.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// No endpoint could be made from the target.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The token cannot be sent.
    #[error(transparent)]
    Token(#[from] BadToken),
    /// The TCP (and TLS) connect did not finish in time.
    #[error("connect timed out after {} s", .0.as_secs())]
    ConnectTimeout(Duration),
    /// The connect or `GetInfo` failed (with a hint at the cause when there is one).
    #[error(transparent)]
    Refused(#[from] Explained),
    /// `Watch` did not open in time.
    #[error("Watch did not open in time")]
    WatchTimeout,
    /// `Watch` failed, or its stream broke.
    #[error("{}", status_text(.0))]
    Stream(tonic::Status),
    /// The stream stayed silent.
    #[error("no sample for {} s", .0.as_secs())]
    Silent(Duration),
    /// The agent ended the stream.
    #[error("the agent closed the stream")]
    Closed,
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
}

/// Polls one agent until `stop`.
pub async fn run(mut p: Poll, stop: CancellationToken) {
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
        if failures == 0 || failures.is_power_of_two() {
            // Logged on the first failure and then more and more rarely while it persists.
            tracing::warn!(host = %id, address = %p.target.address, error = %error, retry_in_ms = wait.as_millis() as u64, "Agent unreachable; backing off.");
        }
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
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
    let endpoint = crate::endpoint::endpoint(target, CALL_DEADLINE)?;
    let channel = tokio::time::timeout(CALL_DEADLINE, endpoint.connect())
        .await
        .map_err(|_| PollError::ConnectTimeout(CALL_DEADLINE))?
        .map_err(|e| explained(format!("cannot connect: {}", chain(&e)), target))?;
    let mut client = AgentClient::with_interceptor(channel, Auth::new(target.token.as_deref())?);

    // The first call goes through the command link, as every borrowed call does.
    let link = AgentLink::new(id.to_owned(), client.clone());
    let info = link.get_info(CALL_DEADLINE).await.map_err(|e| match e {
        LinkError::Call { status, .. } => {
            PollError::Refused(explained(status_text(&status), target))
        }
        other => PollError::Refused(explained(format!("GetInfo: {other}"), target)),
    })?;
    p.metrics.connected(started.elapsed());
    p.link.up(client.clone());
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
        let parts = if detail {
            Parts::DETAIL
        } else {
            Parts::SUMMARY
        };
        let req = WatchRequest {
            parts: Some(parts),
            min_interval_ms: p.interval.as_millis() as u32,
        };
        // The deadline covers opening the stream, not its life.
        let mut stream = tokio::time::timeout(CALL_DEADLINE, client.watch(req))
            .await
            .map_err(|_| PollError::WatchTimeout)?
            .map_err(PollError::Stream)?
            .into_inner();
        silence
            .as_mut()
            .reset(tokio::time::Instant::now() + down_after);
        let changed = p.demand.changed();
        tokio::pin!(changed);
        loop {
            tokio::select! {
                _ = &mut stopped => return Ok(()),
                c = &mut changed => {
                    if c.is_err() {
                        return Ok(());
                    }
                    break; // reopen with the other parts
                }
                _ = &mut silence => return Err(PollError::Silent(down_after)),
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
                    Ok(None) => return Err(PollError::Closed),
                    Err(s) => return Err(PollError::Stream(s)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

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
}
