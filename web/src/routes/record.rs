//! How the routes that act on hosts record what they did: one log line per host acted on
//! (target `smon::actions`), and one audit record per request (`security::audit`), the same
//! way for host actions, program and signal actions, fleet-wide program actions and
//! application actions.

use serde::Serialize;

use crate::acting::ActionError;
use crate::security::Principal;
use crate::security::audit::{AuditEvent, event_by};
use crate::security::login::log_safe;
use crate::security::net::Client;
use crate::state::Web;

/// Logs `action` by `who` on `host` (on `on`, a program or a pid, when not empty): done, with
/// the agent's message when there is one, or failed with why.
pub(crate) fn log_host(
    action: &str,
    who: &str,
    host: &str,
    on: &str,
    r: Result<&str, &ActionError>,
) {
    match r {
        Ok(message) => tracing::info!(
            target: "smon::actions",
            action,
            by = %log_safe(who),
            host = %log_safe(host),
            on = %log_safe(on),
            message = %log_safe(message),
            "Action done."
        ),
        Err(e) => tracing::warn!(
            target: "smon::actions",
            action,
            by = %log_safe(who),
            host = %log_safe(host),
            on = %log_safe(on),
            error = %e,
            "Action failed."
        ),
    }
}

/// Keeps `action` on `target` (empty for host actions) and `hosts` by `p` from `client` in the
/// audit log, with its `outcome` (`ok`, or why not) and its `results` when it has some.
#[allow(clippy::too_many_arguments)] // one per field of the record
pub(crate) async fn audit<T: Serialize + ?Sized>(
    w: &Web,
    p: &Principal,
    client: &Client,
    action: &str,
    target: &str,
    hosts: Vec<String>,
    outcome: String,
    results: Option<&T>,
) {
    let e = AuditEvent {
        hosts,
        target: target.to_owned(),
        outcome,
        results: results.and_then(|r| serde_json::to_value(r).ok()),
        ..event_by(p, client.ip, action)
    };
    w.security.audit_later(e).await;
}

/// A group action's outcome in the audit log: `ok`, or `N of M failed`.
pub(crate) fn group_outcome(oks: impl Iterator<Item = bool>) -> String {
    let (mut failed, mut all) = (0, 0);
    for ok in oks {
        all += 1;
        failed += usize::from(!ok);
    }
    if failed == 0 {
        "ok".to_owned()
    } else {
        format!("{failed} of {all} failed")
    }
}
