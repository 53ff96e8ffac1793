//! The read side: [`crate::History`] on read-only connections.
