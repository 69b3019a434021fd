//! dropship's local relay log: the binlog reader appends every source transaction here once; one applier per
//! service reads it at its own pace. A slow or unreachable target therefore never stalls the others, and the
//! source may purge binlogs dropship has already relayed.
//!
//! Modeled on Vector's disk buffer: CRC-framed records in capped segment files, a ledger of consumer positions,
//! and files deleted only once every consumer has acknowledged them.
//!
//! # Model
//!
//! * Records are opaque byte payloads (the caller serializes transactions with postcard). Each gets a `u64` id:
//!   1, 2, 3, … in append order, never reused, continued across restarts and [`RelayLog::reset`].
//! * One writer ([`RelayLog`]): [`append`](RelayLog::append) buffers, [`flush`](RelayLog::flush) writes to the
//!   OS (and fsyncs under [`SyncPolicy::EveryFlush`], the default) and wakes readers. Readers see flushed
//!   records only.
//! * Any number of readers ([`RelayReader`], from [`RelayHandle::reader`]) in any task. `next` returns `None`
//!   at the flushed end; `next_wait` waits for the writer (a `tokio::sync::watch` of the last flushed id).
//! * Consumers [`register`](RelayHandle::register) and [`ack`](RelayHandle::ack) the highest id they no longer
//!   need. Acks are persisted in `ledger.json`; a segment is deleted once all its ids are <= the minimum ack.
//!   With no consumer registered nothing is deleted. Backlog of a consumer = `last_id() - ack`.
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), dropship_relay::Error> {
//! use dropship_relay::{RelayLog, RelayOptions};
//! # let tmp = tempfile::TempDir::new().unwrap();
//! # let dir = tmp.path();
//! let mut log = RelayLog::open(dir, RelayOptions::default())?;
//! let relay = log.handle(); // clone into applier tasks
//! let from = relay.register("orders")? + 1;
//!
//! log.append(b"txn 1")?; // postcard-encoded transaction
//! log.append(b"txn 2")?;
//! log.flush()?; // now visible to readers
//!
//! let mut reader = relay.reader(from)?;
//! while let Some((id, payload)) = reader.next()? {
//!     // apply `payload` to the target, commit, then:
//!     relay.ack("orders", id)?;
//! }
//! assert_eq!(relay.last_id() - relay.acked("orders")?, 0); // backlog
//! # Ok(()) }
//! ```
//!
//! # On-disk format (version 1)
//!
//! ```text
//! <dir>/
//!   relay-00000000000000000001.log    segment; the name is its first record's id, 20 digits, so names sort
//!   relay-00000000000000052113.log    in id order. Only the last segment is written to.
//!   ledger.json                       {"version":1,"consumers":{"<name>":<acked id>,...}}
//!   ledger.json.tmp                   transient, during an atomic ledger replace
//!   lock                              empty; flock'ed by the one open RelayLog (single writer)
//!
//! segment file
//! +----------------+-------------+--------------+---------------+----------+----------+-----
//! | magic [8]      | version u32 | reserved u32 | first_id u64  | record 1 | record 2 | ...
//! | "DSRELAY\0"    | = 1         | = 0          | = name's id   |          |          |
//! +----------------+-------------+--------------+---------------+----------+----------+-----
//!   0                8             12             16              24
//!
//! record frame (all integers little-endian)
//! +-------------+-------------+---------+-----------------+
//! | len u32     | crc32 u32   | id u64  | payload         |
//! | payload len | of id|payl. |         | len bytes       |
//! +-------------+-------------+---------+-----------------+
//!   0             4             8         16
//!   crc32 = crc32fast (IEEE) over id (8 bytes LE) followed by the payload
//! ```
//!
//! **Do not reorder or resize these fields**: existing relay directories would be misread. Any layout change
//! bumps the version in the segment header.
//!
//! A segment is closed before a record that would take it past `segment_max_bytes` (default 64 MiB); a record
//! larger than the cap gets a segment of its own. Ids are contiguous within and across segments.
//!
//! # Failure handling
//!
//! * Crash while appending: on [`RelayLog::open`] the last segment is scanned; a torn tail (partial frame, or a
//!   CRC mismatch in the very last frame) is truncated with a WARN and ids continue after the last good record.
//!   Records appended but not flushed before a crash may be lost; flushed ones survive a process crash, synced
//!   ones a power loss.
//! * A CRC mismatch or id out of sequence *before* the tail is an error naming the file and offset
//!   ([`Error::CrcMismatch`], [`Error::Corrupt`]): data loss is never silent.
//! * A reader asking for ids no longer stored gets [`Error::NotCovered`]: reset the relay log and restart that
//!   consumer from the source.
//! * An I/O error inside `append`/`flush` stops the writer ([`Error::WriterFailed`] afterwards); reopen to
//!   recover.

mod error;
mod format;
mod ledger;
mod log;
mod reader;
mod recovery;

pub use error::{Error, Result};
pub use log::{RelayHandle, RelayLog, RelayOptions, SyncPolicy};
pub use reader::RelayReader;

/// Name of a segment file for `first_id` (`relay-<20 digits>.log`); public for tests and tooling.
pub fn segment_file_name(first_id: u64) -> String {
    format::segment_file_name(first_id)
}

/// Size of the segment header in bytes; public for tests and tooling.
pub const SEGMENT_HEADER_LEN: u64 = format::SEGMENT_HEADER_LEN;
/// Size of a record frame's header (`len | crc32 | id`) in bytes; public for tests and tooling.
pub const RECORD_HEADER_LEN: u64 = format::RECORD_HEADER_LEN as u64;
