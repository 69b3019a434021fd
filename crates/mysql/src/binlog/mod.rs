//! The one binlog decoder, shared by the live reader and `dropship binlog inspect`.
//!
//! - [`Decoder`] turns one raw event (19-byte header, body, CRC32 trailer when
//!   checksums are on) into [`crate::Event`]s, keeping the FORMAT_DESCRIPTION
//!   and table maps it needs. See [`decoder`] for the rules.
//! - [`file`](mod@file) frames events out of a binlog or relay-log file and feeds them
//!   to a decoder, with their file offsets.
//! - [`inspect`](mod@inspect) prints files as JSON lines for humans and scripts.
//! - [`client`] is the replication connection: login, the dump request (file
//!   and offset, or a GTID set with tags) and each event's raw bytes.
//!
//! Byte formats live next to the code that reads them: [`format`](mod@format) (header,
//! FDE), [`table_map`], [`rows`], [`column`](mod@column) (values), [`json`] (binary JSON
//! and partial-update diffs), [`payload`] (TRANSACTION_PAYLOAD). Nothing here
//! panics on input, and nothing is skipped silently: every failure is a
//! [`DecodeError`] naming the offset and event type.

pub mod client;
pub mod column;
pub mod cursor;
pub mod decoder;
pub mod error;
pub mod file;
pub mod format;
pub mod inspect;
pub mod json;
pub mod payload;
pub mod rows;
pub mod table_map;
pub mod types;

pub use decoder::{Decoder, Sink};
pub use error::DecodeError;
pub use file::{read_bytes, read_file, FileSummary};
pub use inspect::{inspect, InspectSummary};
