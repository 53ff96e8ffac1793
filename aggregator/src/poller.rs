//! One poller per agent: holds one gRPC channel, consumes the agent's `Watch` stream (the
//! summary, or the detail while a browser watches that host), feeds the store, and reconnects
//! with exponential backoff and jitter (capped at 30 s). Every call has a deadline, and each
//! poller is its own task, so a hung or slow agent never stalls the others. Failures,
//! reconnections, connect times and sample latency are counted for `/metrics` ([`PollMetrics`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smon_proto::agent_client::AgentClient;
use smon_proto::{GetInfoRequest, Parts, WatchRequest};
use smon_web::hub::now_ms;
use smon_web::metrics::PollMetrics;
use smon_web::store::ClusterStore;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;

use crate::config::Target;

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

/// Formats an error with its whole source chain (tonic's transport errors say little on top).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn status_text(s: &tonic::Status) -> String {
    match s.code() {
        tonic::Code::Unauthenticated => {
            format!("refused by the agent: {} (check the token)", s.message())
        }
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            if std::error::Error::source(s).is_some() =>
        {
            // The transport's own error says more than "operation was canceled" (e.g. the TLS
            // alert an agent sent when it refused our certificate).
            let src = std::error::Error::source(s).map(chain).unwrap_or_default();
            format!("{:?}: {}: {src}", s.code(), s.message())
        }
        tonic::Code::Unavailable | tonic::Code::Unknown if s.message().is_empty() => {
            format!("{:?}", s.code())
        }
        _ => format!("{:?}: {}", s.code(), s.message()),
    }
}

/// Polls one agent until `stop`, counting into `metrics`.
pub async fn run(
    target: Target,
    store: Arc<Mutex<ClusterStore>>,
    mut demand: watch::Receiver<bool>,
    interval: Duration,
    down_after: Duration,
    mut metrics: PollMetrics,
    stop: CancellationToken,
) {
    let id = target.spec.id();
    let mut failures: u32 = 0;
    loop {
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = session(&target, &id, &store, &mut demand, interval, down_after, &stop, &mut failures, &mut metrics) => r,
        };
        let Err(error) = result else { return };
        metrics.failed();
        {
            let mut st = store.lock().unwrap_or_else(|p| p.into_inner());
            st.mark_down(&id, &error, now_ms());
        }
        let wait = backoff(failures, &mut rand::rng());
        if failures == 0 || failures.is_power_of_two() {
            // Logged on the first failure and then more and more rarely while it persists.
            tracing::warn!(host = %id, address = %target.address, error = %error, retry_in_ms = wait.as_millis() as u64, "Agent unreachable; backing off.");
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
#[allow(clippy::too_many_arguments)]
async fn session(
    target: &Target,
    id: &str,
    store: &Arc<Mutex<ClusterStore>>,
    demand: &mut watch::Receiver<bool>,
    interval: Duration,
    down_after: Duration,
    stop: &CancellationToken,
    failures: &mut u32,
    metrics: &mut PollMetrics,
) -> Result<(), String> {
    let started = Instant::now();
    let endpoint = crate::endpoint::endpoint(target, CALL_DEADLINE)?;
    let channel = tokio::time::timeout(CALL_DEADLINE, endpoint.connect())
        .await
        .map_err(|_| format!("connect timed out after {} s", CALL_DEADLINE.as_secs()))?
        .map_err(|e| crate::endpoint::explain(format!("cannot connect: {}", chain(&e)), target))?;
    let auth: Option<MetadataValue<_>> = match &target.token {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse()
                .map_err(|_| "the token is not a valid header value".to_owned())?,
        ),
        None => None,
    };
    let mut client = AgentClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
        if let Some(v) = &auth {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    });

    let mut info_req = tonic::Request::new(GetInfoRequest {});
    info_req.set_timeout(CALL_DEADLINE);
    let info = client
        .get_info(info_req)
        .await
        .map_err(|s| crate::endpoint::explain(status_text(&s), target))?
        .into_inner();
    metrics.connected(started.elapsed());
    store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .set_info(id, info);

    // One cancellation waiter and one silence timer for the whole session, not one of each per
    // message: at 10,000 agents a fresh `cancelled()` per message registers and removes a
    // waiter on the one shared token 10,000 times a second, and a fresh `timeout` inserts and
    // removes a timer as often.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let silence = tokio::time::sleep(down_after);
    tokio::pin!(silence);
    loop {
        let detail = *demand.borrow_and_update();
        let parts = if detail {
            Parts::DETAIL
        } else {
            Parts::SUMMARY
        };
        let req = WatchRequest {
            parts: Some(parts),
            min_interval_ms: interval.as_millis() as u32,
        };
        // The deadline covers opening the stream, not its life.
        let mut stream = tokio::time::timeout(CALL_DEADLINE, client.watch(req))
            .await
            .map_err(|_| "Watch did not open in time".to_owned())?
            .map_err(|s| status_text(&s))?
            .into_inner();
        silence
            .as_mut()
            .reset(tokio::time::Instant::now() + down_after);
        let changed = demand.changed();
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
                _ = &mut silence => {
                    return Err(format!("no sample for {} s", down_after.as_secs()));
                }
                msg = stream.message() => match msg {
                    Ok(Some(snap)) => {
                        *failures = 0;
                        let now = now_ms();
                        metrics.sample(snap.sample_unix_ms, now);
                        store.lock().unwrap_or_else(|p| p.into_inner()).apply(id, snap, now);
                        silence
                            .as_mut()
                            .reset(tokio::time::Instant::now() + down_after);
                    }
                    Ok(None) => return Err("the agent closed the stream".into()),
                    Err(s) => return Err(status_text(&s)),
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
