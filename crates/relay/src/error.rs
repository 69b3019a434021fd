//! The crate's one error type.
//!
//! Every variant names the file, offset or value involved; [`Error::hint`] says what to do, apart from the message. Callers classify with
//! [`Error::is_data_loss`] (stop and tell a human) and [`Error::is_not_covered`] (the relay log no longer holds
//! what the consumer needs: reset the relay log and restart that consumer from the source).

use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the relay log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed.
    #[error("relay log: cannot {op} {path:?}: {source}")]
    Io {
        /// What was being done ("open", "write", "fsync", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A record inside a segment (not at its torn tail) fails its CRC: data was damaged after it was written.
    #[error("relay log: CRC mismatch in {path:?} at offset {offset} (record id {id}, stored crc {stored:#010x}, computed {computed:#010x})")]
    CrcMismatch {
        /// Segment file.
        path: PathBuf,
        /// Byte offset of the record's frame in the file.
        offset: u64,
        /// The id stored in the frame (may itself be damaged).
        id: u64,
        /// CRC stored in the frame.
        stored: u32,
        /// CRC computed over id + payload.
        computed: u32,
    },

    /// A segment's structure is wrong (bad header, truncated record, ids out of sequence).
    #[error("relay log: corrupt segment {path:?} at offset {offset}: {reason}")]
    Corrupt {
        /// Segment file.
        path: PathBuf,
        /// Byte offset where the problem was found.
        offset: u64,
        /// What was wrong, with the values found.
        reason: String,
    },

    /// The relay log no longer holds the record a reader asked for (deleted by retention or by a reset).
    #[error(
        "relay log: record {requested} is no longer stored (first stored id is {first_available})"
    )]
    NotCovered {
        /// The id the reader needed.
        requested: u64,
        /// The oldest id still stored.
        first_available: u64,
    },

    /// A payload is larger than a frame can describe.
    #[error("relay log: record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Payload size.
        len: usize,
        /// Largest allowed payload.
        max: usize,
    },

    /// `ack` or `acked` for a consumer that was never registered (or was deregistered).
    #[error("relay log: unknown consumer {name:?}")]
    UnknownConsumer {
        /// The consumer name given.
        name: String,
    },

    /// A consumer acknowledged an id that was never written.
    #[error("relay log: consumer {consumer:?} acked id {id} but the last flushed id is {last_id}")]
    AckBeyondEnd {
        /// Consumer name.
        consumer: String,
        /// The id acked.
        id: u64,
        /// The last flushed id.
        last_id: u64,
    },

    /// The ledger file cannot be parsed.
    #[error("relay log: cannot read ledger {path:?}: {reason}")]
    Ledger {
        /// Ledger path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// An option has an unusable value.
    #[error("relay log: invalid option {field} = {value}: {reason}")]
    InvalidOption {
        /// Option name.
        field: &'static str,
        /// Value given.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },

    /// Another process (or another `RelayLog` in this one) has the directory open for writing.
    #[error("relay log: {path:?} is already open for writing by another RelayLog")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// The relay directory's file system is full (or over quota). Nothing is lost: the bytes it did not take wait
    /// in the writer, and the next `flush` (or `append`) continues where this write stopped.
    #[error("relay log: the file system of {dir:?} is full ({pending} bytes wait to be written): {source}")]
    NoSpace {
        /// The relay directory.
        dir: PathBuf,
        /// Bytes waiting in the writer.
        pending: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An earlier write failed half-way; the writer refuses further appends.
    #[error("relay log: the writer failed earlier ({first_error}) and stopped accepting records")]
    WriterFailed {
        /// Display of the first error.
        first_error: String,
    },
}

impl Error {
    /// What to do about it, kept apart from the diagnosis (the `Display` text).
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Io { .. } => "check disk space and permissions of the relay directory".to_string(),
            Error::CrcMismatch { .. } => "the file was damaged on disk; the records from this offset on are lost, reset the relay log and restart the consumers from the source".to_string(),
            Error::Corrupt { .. } => "do not edit relay files by hand; reset the relay log and restart the consumers from the source".to_string(),
            Error::NotCovered { .. } => "the consumer is behind what the relay log retains; reset the relay log and restart the consumer from the source".to_string(),
            Error::RecordTooLarge { .. } => "split the transaction before appending".to_string(),
            Error::UnknownConsumer { name } => format!("call register({name:?}) first"),
            Error::AckBeyondEnd { .. } => "ack only ids returned by a reader".to_string(),
            Error::Ledger { .. } => "the ledger holds consumer acks only; if it is damaged, move it away and re-register the consumers at their applied positions".to_string(),
            Error::Locked { .. } => "only one dropship process may use a relay directory; stop the other one or give this one its own directory".to_string(),
            Error::NoSpace { dir, .. } => format!("free space on the file system of {} (or move the state dir to a larger one); writing resumes where it stopped", dir.display()),
            Error::WriterFailed { .. } => "drop and reopen the relay log; recovery truncates the partial record".to_string(),
            Error::InvalidOption { .. } => return None,
        })
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when stored records were found damaged: an operator must look, retrying will not help.
    pub fn is_data_loss(&self) -> bool {
        matches!(self, Error::CrcMismatch { .. } | Error::Corrupt { .. })
    }

    /// True when the file system is full: retry once space returns, nothing was lost.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::NoSpace { .. })
    }

    /// True when the reader asked for records the relay log no longer holds: reset and restart from the source.
    pub fn is_not_covered(&self) -> bool {
        matches!(self, Error::NotCovered { .. })
    }
}
