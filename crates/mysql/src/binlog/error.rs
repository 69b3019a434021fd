//! The one error type of the binlog decoder.
//!
//! Every message names the byte offset of the event in its file (0 inside a
//! TRANSACTION_PAYLOAD or when the caller does not know it), the event type,
//! and what was wrong, so an operator can open the file at that offset with
//! `mysqlbinlog --start-position`. All decode errors are *definite*: the same
//! bytes will fail the same way, so the caller must not retry them. What to do
//! about one is [`DecodeError::hint`], kept out of the message.

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
        "checksum mismatch at offset {offset} (type {type_code}): event says {expected:#010x}, bytes give {actual:#010x}"
    )]
    Checksum {
        offset: u64,
        type_code: u8,
        expected: u32,
        actual: u32,
    },

    /// An event type the design does not support (it would lose data if skipped).
    #[error("unsupported event at offset {offset} (type {type_code}, {name}): {what}")]
    Unsupported {
        type_code: u8,
        offset: u64,
        name: &'static str,
        /// Why it is not supported.
        what: &'static str,
        /// What to do, when there is something.
        hint: Option<&'static str>,
    },

    /// A rows event refers to a table_id no TABLE_MAP announced.
    #[error(
        "rows event at offset {offset} (type {type_code}) refers to table_id {table_id} with no preceding TABLE_MAP"
    )]
    UnknownTable {
        offset: u64,
        type_code: u8,
        table_id: u64,
    },

    /// A column type the decoder cannot turn into a [`crate::Value`].
    #[error("unsupported column at offset {offset} (type {type_code}): `{table}` column {column} has binlog type {column_type} (meta {meta}): {what}")]
    UnsupportedColumn {
        offset: u64,
        type_code: u8,
        table: String,
        column: usize,
        column_type: u8,
        meta: u16,
        what: &'static str,
        hint: Option<&'static str>,
    },

    /// A rows event before any FORMAT_DESCRIPTION told how to read it.
    #[error("event at offset {offset} (type {type_code}) before any FORMAT_DESCRIPTION event")]
    NoFormatDescription { offset: u64, type_code: u8 },

    /// A partial JSON update whose before image lacks the column's document.
    #[error("partial JSON update at offset {offset} (type {type_code}) of column {column} of `{table}` but the before image has no value for it")]
    PartialJsonWithoutBefore {
        offset: u64,
        type_code: u8,
        table: String,
        column: usize,
    },

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

    #[error("{path}: not a binlog file (magic is {found:02x?}, expected fe 62 69 6e)")]
    BadMagic { path: String, found: Vec<u8> },
}

impl DecodeError {
    /// What to do about it, apart from the message.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            DecodeError::Checksum { .. } => {
                Some("the file is corrupt or was copied while being written")
            }
            DecodeError::Unsupported { hint, .. } | DecodeError::UnsupportedColumn { hint, .. } => {
                *hint
            }
            DecodeError::UnknownTable { .. } => Some("start reading at a transaction boundary"),
            DecodeError::PartialJsonWithoutBefore { .. } => {
                Some("use binlog_row_image=FULL with binlog_row_value_options=PARTIAL_JSON")
            }
            DecodeError::NoFormatDescription { .. } => {
                Some("a binlog stream must start with a FORMAT_DESCRIPTION event")
            }
            DecodeError::BadMagic { .. } => {
                Some("pass a binlog (or relay log) file: both start with \\xfebin")
            }
            DecodeError::File { source, .. } => source.hint(),
            _ => None,
        }
    }

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
            | DecodeError::PartialJsonWithoutBefore { offset, .. }
            | DecodeError::Payload { offset, .. } => Some(*offset),
            DecodeError::File { source, .. } => source.offset(),
            _ => None,
        }
    }
}
