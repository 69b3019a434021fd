//! dropship's flow: configuration, preflight checks, the binlog reader, the
//! relay log fan-out, one applier per service, copy, verify and cutover.
//! Protocol knowledge lives in `dropship-mysql`; this crate wires it.

pub mod config;
pub mod connect;
pub mod error;

pub use error::{Error, Result};
pub mod applier;
pub mod batch;
pub mod check;
pub mod control;
pub mod copy;
pub mod crash;
pub mod cutover;
pub mod gtid_state;
pub mod heartbeat;
pub mod meta;
pub mod pipeline;
pub mod progress;
pub mod reader;
pub mod record;
pub mod relay_state;
pub mod replicate;
pub mod reverse;
pub mod service;
pub mod source_schema;
pub mod state;
pub mod stats;
pub mod status;
pub mod throttle;
pub mod verify;
