//! The smon wire contract: the `smon.v1` gRPC service between agents and the aggregator, and
//! the messages that describe a host. Generated from `proto/smon/v1/*.proto`; see those files
//! for the meaning and unit of every field.

/// Version 1 of the contract (`package smon.v1`).
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/smon.v1.rs"));
}

pub use v1::*;

impl Parts {
    /// Everything: the process list, per-core usage and the processes on each GPU.
    pub const DETAIL: Parts = Parts {
        processes: true,
        per_core: true,
        gpu_processes: true,
        top_processes: 0,
    };
    /// Nothing heavy: what a cluster overview polls.
    pub const SUMMARY: Parts = Parts {
        processes: false,
        per_core: false,
        gpu_processes: false,
        top_processes: 0,
    };
}
