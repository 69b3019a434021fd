//! Reading the source: the binlog reader and what it turns events into (records), the
//! source-side schema cache, GTID state, heartbeats, and whether the relay log still covers every service.

pub mod gtid_state;
pub mod heartbeat;
pub mod reader;
pub mod record;
pub mod relay_state;
pub mod source_schema;
