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
