//! smonctl: smon's command-line client. `smonctl top` is a top-like terminal view, redrawn in
//! place, of one agent (straight over gRPC with its token) or of the whole fleet (through the
//! aggregator's REST API): gauges, per-core bars, disks, network rates, a process table sorted
//! by CPU or memory, and GPUs with their processes.
//!
//! Modules, in the order data flows: [`agent`] and [`fleet`] fetch (I/O only), [`app`] holds
//! the state and what each key does (pure), [`view`] draws it into a ratatui buffer (pure,
//! tested on `TestBackend`), [`fmt`] writes numbers for people, [`term`] runs the live loop.
//! [`rest`] holds the one-shot commands over the REST API (`smonctl hosts`, `status`, the host
//! actions, `audit`). The lean agent does not depend on this crate: `smon-agent query` stays a plain printer.

pub mod agent;
pub mod app;
pub mod fleet;
pub mod fmt;
pub mod rest;
pub mod term;
pub mod view;

#[cfg(test)]
mod testdata;
