//! Integration tests of `smonctl top` against the real binaries: an agent on 127.0.0.1 (gRPC
//! with a token and a fake GPU) and an aggregator polling it, each rendered with `--once`;
//! and the sentences a user gets for a wrong token, password or address; the REST commands
//! (`hosts`, `status`, `audit`, and the host actions against a stub until their routes merge).

mod agent;
mod apps;
mod fleet;
mod rest;
mod support;
