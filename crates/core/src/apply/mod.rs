//! Writing to a target: the applier (transactions, column mapping, the pipelined writer, DDL) and the
//! batch that collapses a transaction group's changes per key.

pub mod applier;
pub mod batch;
pub mod watchdog;
