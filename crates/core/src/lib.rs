//! dropship's flow: configuration, preflight checks, the binlog reader, the
//! relay log fan-out, one applier per service, copy, verify and cutover.
//! Protocol knowledge lives in `dropship-mysql`; this crate wires it.
//!
//! Modules in the order the data flows:

// What a run is told, and what it talks to.
pub mod config;
pub mod connect;
pub mod error;
pub mod state;
// Preflight, and dropship's own metadata on the targets (`_dropship`).
pub mod check;
pub mod meta;
// Source binlog -> records -> relay log.
pub mod stream;
// What the source says about a service: position, tables, cascades.
pub mod source;
// A new service's initial rows.
pub mod copy;
// Records -> a target.
pub mod apply;
// The pipeline and the `replicate` command around it.
pub mod run;
// Proving the copies identical.
pub mod verify;
// Switching a service over, and back.
pub mod cutover;
pub mod reverse;
// Status, metrics and the control endpoint.
pub mod control;
// Named crash points for tests.
pub mod crash;

pub use error::{Error, Result};
