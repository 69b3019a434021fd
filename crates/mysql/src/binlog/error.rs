//! The one error type of the binlog decoder.
//!
//! Every message names the byte offset of the event in its file (0 inside a
//! TRANSACTION_PAYLOAD or when the caller does not know it), the event type,
//! and what was wrong, so an operator can open the file at that offset with
//! `mysqlbinlog --start-position`. All decode errors are *definite*: the same
//! bytes will fail the same way, so the caller must not retry them.

use thiserror::Error;

/// Why an event (or a binlog file) could not be decoded.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The event is shorter than its own header or body says.
    #[error("truncated event at offset {offset} (type {type_code}): {what}")]
    Truncated {
        offset: u64,
        type_code: u8,
        what: String,
    },

    /// A field holds a value the format does not allow.
    #[error("malformed event at offset {offset} (type {type_code}): {what}")]
    Malformed {
        offset: u64,
        type_code: u8,
        what: String,
    },

    /// The CRC32 trailer does not match the event bytes.
    #[error(
        "checksum mismatch at offset {offset} (type {type_code}): event says {expected:#010x}, bytes give {actual:#010x}; \
         hint: the file is corrupt or was copied while being written"
    )]
    Checksum {
        offset: u64,
        type_code: u8,
        expected: u32,
        actual: u32,
    },

    /// An event type the design does not support (it would lose data if skipped).
    #[error("unsupported event at offset {offset} (type {type_code}, {name}): {hint}")]
    Unsupported {
        type_code: u8,
        offset: u64,
        name: &'static str,
        hint: &'static str,
    },

    /// A rows event refers to a table_id no TABLE_MAP announced.
    #[error(
        "rows event at offset {offset} (type {type_code}) refers to table_id {table_id} with no preceding TABLE_MAP; \
         hint: start reading at a transaction boundary"
    )]
    UnknownTable {
        offset: u64,
        type_code: u8,
        table_id: u64,
    },

    /// A column type the decoder cannot turn into a [`crate::Value`].
    #[error("unsupported column at offset {offset} (type {type_code}): `{table}` column {column} has binlog type {column_type} (meta {meta}): {hint}")]
    UnsupportedColumn {
        offset: u64,
        type_code: u8,
        table: String,
        column: usize,
        column_type: u8,
        meta: u16,
        hint: &'static str,
    },

    /// A rows event before any FORMAT_DESCRIPTION told how to read it.
    #[error("event at offset {offset} (type {type_code}) before any FORMAT_DESCRIPTION event; hint: a binlog stream must start with one")]
    NoFormatDescription { offset: u64, type_code: u8 },

    /// The TRANSACTION_PAYLOAD could not be decompressed or held a bad inner event.
    #[error("transaction payload at offset {offset}: {what}")]
    Payload { offset: u64, what: String },

    /// The sink given to [`super::Decoder::decode`] refused an event.
    #[error("event sink failed: {0}")]
    Sink(String),

    /// Reading a binlog file failed, or its framing is wrong.
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: Box<DecodeError>,
    },

    #[error("{path}: {what}")]
    Io { path: String, what: String },

    #[error("{path}: not a binlog file (magic is {found:02x?}, expected fe 62 69 6e); hint: relay logs and binlogs both start with \\xfebin")]
    BadMagic { path: String, found: Vec<u8> },
}

impl DecodeError {
    /// The event offset the error is about, when it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            DecodeError::Truncated { offset, .. }
            | DecodeError::Malformed { offset, .. }
            | DecodeError::Checksum { offset, .. }
            | DecodeError::Unsupported { offset, .. }
            | DecodeError::UnknownTable { offset, .. }
            | DecodeError::UnsupportedColumn { offset, .. }
            | DecodeError::NoFormatDescription { offset, .. }
            | DecodeError::Payload { offset, .. } => Some(*offset),
            DecodeError::File { source, .. } => source.offset(),
            _ => None,
        }
    }
}
