//! smon-collect: everything a host reports about itself, gathered into one
//! [`Snapshot`](smon_proto::Snapshot), and the sampler thread that takes one every interval.
//!
//! Data flows one way: the resource modules read the OS ([`cpu`], [`memory`], [`disks`],
//! [`network`], [`processes`], [`sessions`], [`gpus`], [`temperatures`], [`containers`]; supervisord's [`programs`] come from the agent); the [`Collector`]
//! puts their readings into a snapshot, with command lines passed through [`redact`] and
//! mounts and interfaces through [`filters`]; the [`sampler`] thread owns the collector and
//! publishes the latest sample on a `watch` channel for the agent's gRPC service, its web view
//! and the aggregator's own host. Nothing here knows a config file: the daemons build a
//! [`CollectorConfig`] from theirs. Nothing here is async apart from the sampler's handle.

pub mod collector;
pub mod containers;
pub mod cpu;
pub mod error;
pub mod filters;
pub mod gpus;
pub mod memory;
pub mod network;
pub mod programs;
pub mod redact;
pub mod sampler;
pub mod temperatures;

#[cfg(target_os = "linux")]
pub mod disks;
#[cfg(target_os = "linux")]
pub mod processes;
#[cfg(target_os = "linux")]
pub mod sessions;

pub use collector::{
    Collector, CollectorConfig, DetailDemand, Roots, host_slug, hostname, with_parts,
};
pub use containers::ContainersConfig;
pub use error::CollectError;
pub use filters::{DiskFilter, NetworkFilter};
pub use gpus::{GpuMode, GpuSource};
pub use programs::ProgramsFeed;
pub use redact::Redactor;
pub use sampler::{Latest, Sample, Sampler};
