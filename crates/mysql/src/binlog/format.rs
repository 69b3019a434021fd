//! The event header and the FORMAT_DESCRIPTION event that says how to read
//! every later event of the file.
//!
//! ```text
//! Event header (binlog v4, 19 bytes, little-endian). Do not reorder.
//! +-----------+------+-----------+------------+---------+-------+
//! | timestamp | type | server_id | event_size | log_pos | flags |
//! |    u32    |  u8  |    u32    |    u32     |   u32   |  u16  |
//! +-----------+------+-----------+------------+---------+-------+
//!  event_size counts the header, the body and the 4-byte CRC32 trailer.
//!
//! FORMAT_DESCRIPTION body:
//! +----------------+----------------------+------------------+------------+
//! | binlog_version | server_version [50]  | create_timestamp | header_len |
//! |      u16       |  NUL-padded ASCII    |       u32        |     u8     |
//! +----------------+----------------------+------------------+------------+
//! | post_header_len[type-1] ... | checksum_alg u8 | CRC32 u32 |
//! +-----------------------------+-----------------+-----------+
//!  checksum_alg and the CRC slot exist only from MySQL 5.6.1 / MariaDB 5.3;
//!  they are present (alg 0 = OFF) even when checksums are off.
//!  The FDE's CRC is computed with LOG_EVENT_BINLOG_IN_USE_F cleared.
//! ```
//!
//! Invariant: a [`Format`] only comes from a parsed FDE; before one is seen
//! the decoder knows no post-header lengths and refuses rows events.

use super::cursor::Cursor;
use super::types;

pub const HEADER_LEN: usize = 19;
pub const CRC_LEN: usize = 4;

/// The common 19-byte header of every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader {
    pub timestamp: u32,
    pub type_code: u8,
    pub server_id: u32,
    pub event_size: u32,
    pub log_pos: u32,
    pub flags: u16,
}

impl RawHeader {
    /// Parses the first 19 bytes of `raw`; `None` when fewer are present.
    pub fn parse(raw: &[u8]) -> Option<RawHeader> {
        let mut c = Cursor::new(raw);
        Some(RawHeader {
            timestamp: c.u32("timestamp").ok()?,
            type_code: c.u8("type").ok()?,
            server_id: c.u32("server_id").ok()?,
            event_size: c.u32("event_size").ok()?,
            log_pos: c.u32("log_pos").ok()?,
            flags: c.u16("flags").ok()?,
        })
    }
}

/// What the FORMAT_DESCRIPTION event says about the events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub binlog_version: u16,
    pub server_version: String,
    pub header_len: u8,
    /// Post-header length of event type `t` at index `t - 1`.
    pub post_header: Vec<u8>,
    /// True when events carry a CRC32 trailer (checksum_alg = 1).
    pub checksum: bool,
    /// The writer is MariaDB.
    pub mariadb: bool,
}

/// Errors parsing an FDE body; the caller adds offset and type.
#[derive(Debug)]
pub enum FdeError {
    Short(super::cursor::Short),
    BadAlgorithm(u8),
}

impl Format {
    /// Post-header length for `type_code`; `None` when the FDE's array is
    /// shorter (older server), and the caller uses the type's v4 default.
    pub fn post_header_len(&self, type_code: u8) -> Option<u8> {
        let idx = usize::from(type_code).checked_sub(1)?;
        self.post_header.get(idx).copied()
    }

    /// Parses an FDE body (`body` = event bytes after the 19-byte header,
    /// including the trailing CRC slot if any).
    pub fn parse(body: &[u8]) -> Result<Format, FdeError> {
        let mut c = Cursor::new(body);
        let binlog_version = c.u16("binlog_version").map_err(FdeError::Short)?;
        let sv = c.bytes(50, "server_version").map_err(FdeError::Short)?;
        let end = sv.iter().position(|&b| b == 0).unwrap_or(sv.len());
        let server_version = String::from_utf8_lossy(sv.get(..end).unwrap_or(sv)).into_owned();
        c.skip(4, "create_timestamp").map_err(FdeError::Short)?;
        let header_len = c.u8("header_len").map_err(FdeError::Short)?;
        let rest = c.rest();
        let mariadb = server_version.contains("MariaDB");
        let has_alg =
            version_at_least(&server_version, if mariadb { (5, 3, 0) } else { (5, 6, 1) });
        let (post_header, checksum) = if has_alg && rest.len() >= 5 {
            let split = rest.len() - 5;
            let alg = rest.get(split).copied().unwrap_or(0);
            let checksum = match alg {
                0 => false,
                1 => true,
                0xff => false,
                other => return Err(FdeError::BadAlgorithm(other)),
            };
            (rest.get(..split).unwrap_or(&[]).to_vec(), checksum)
        } else {
            (rest.to_vec(), false)
        };
        Ok(Format {
            binlog_version,
            server_version,
            header_len,
            post_header,
            checksum,
            mariadb,
        })
    }
}

/// True when the leading `x.y.z` of `version` is at least `min`.
pub fn version_at_least(version: &str, min: (u32, u32, u32)) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let mut next = || {
        parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let v = (next(), next(), next());
    v >= min
}

/// CRC32 of an event without its trailer; for the FDE, with the in-use flag
/// cleared as the server does when it computes the checksum.
pub fn event_crc(raw_without_trailer: &[u8], type_code: u8) -> u32 {
    let mut h = crc32fast::Hasher::new();
    if type_code == types::FORMAT_DESCRIPTION && raw_without_trailer.len() >= HEADER_LEN {
        let (head, rest) = raw_without_trailer.split_at(HEADER_LEN);
        let mut head = head.to_vec();
        if let Some(b) = head.get_mut(17) {
            *b &= !(types::LOG_EVENT_BINLOG_IN_USE_F as u8);
        }
        h.update(&head);
        h.update(rest);
    } else {
        h.update(raw_without_trailer);
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_their_leading_numbers() {
        assert!(version_at_least("5.6.4-m7-debug-log", (5, 6, 1)));
        assert!(!version_at_least("5.5.62-log", (5, 6, 1)));
        assert!(version_at_least("10.0.15-MariaDB-log", (5, 3, 0)));
        assert!(!version_at_least("", (5, 6, 1)));
    }
}
