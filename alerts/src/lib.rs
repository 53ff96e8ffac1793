//! smon-alerts: the alert rule engine, as pure logic with injected time (no I/O, no async
//! runtime, no database).
//!
//! - [`rule`]: the rules of `alerts.rules[]` (serde types), the condition language of `when`
//!   and their validation (every problem with its field path and value).
//! - [`observe`]: what rules see of a host: a view over its [`smon_proto::Snapshot`] with the
//!   overview's numbers, and its registry facts ([`HostMeta`]).
//! - [`silence`]: silences, one-off or recurring maintenance windows in a time zone.
//! - [`predict`]: the disk-full line fit.
//! - [`engine`]: the [`Engine`]: per (rule, host, subject) state, `for_s`, hysteresis,
//!   repeats, silences, grouping, flapping, acknowledgements, and export/import of its state.
//!
//! Its output is the wire types of [`smon_api::alerts`] ([`smon_api::alerts::Alert`],
//! [`smon_api::alerts::Notification`]); the channels that deliver them live in `smon-notify`.
//!
//! How the aggregator drives it (one owner, e.g. the task that consumes the event feed):
//!
//! ```
//! use smon_alerts::{Engine, EngineConfig, HostMeta, RuleConfig, compile_rules};
//! use smon_api::wire::Status;
//!
//! let rules: Vec<RuleConfig> = serde_json::from_str(
//!     r#"[{"name": "down", "when": "host_down", "for_s": 30, "notify": ["ops"]}]"#,
//! ).unwrap();
//! let rules = compile_rules(&rules, "alerts.rules").unwrap(); // Err: FieldErrors to print
//! let mut engine = Engine::new(EngineConfig::default());
//! engine.set_rules(rules, 0); // and again on every edit, with the time
//! // engine.import(saved_state, now) here, after a restart.
//! engine.set_hosts(vec![HostMeta { id: "lab:n1".into(), cluster: "lab".into(), ..Default::default() }], 0);
//! engine.host_status("lab:n1", Status::Down, 1_000); // registry: upsert_host / remove_host
//! // engine.observe("lab:n1", &snapshot, now) on every sample
//! let sent = engine.tick(31_000); // once a second: notifications to deliver
//! assert_eq!(sent.len(), 0); // still grouping (group_wait_s = 2)
//! let sent = engine.tick(41_000);
//! assert_eq!((sent[0].channels[0].as_str(), sent[0].notification.alerts.len()), ("ops", 1));
//! let history = engine.drain_events(); // every firing and resolution, for the history
//! assert_eq!(history.len(), 1);
//! let _saved = engine.export(); // serde: keep it across restarts
//! ```

pub mod bench;
pub mod engine;
pub mod observe;
pub mod predict;
pub mod rule;
pub mod silence;

pub use engine::{
    Ack, ActiveAlert, Dispatch, Engine, EngineConfig, EngineError, EngineState, alert_id,
};
pub use observe::{HostMeta, Observation};
pub use rule::{
    Condition, Metric, Op, Rule, RuleConfig, check_notify, compile_rule, compile_rules,
};
pub use silence::{Silence, SilenceConfig, WindowConfig, compile_silences};
