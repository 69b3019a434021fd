//! Byte layout of segment files and record frames (see the crate doc for the drawing).
//!
//! Pure encode/decode helpers: no file handling beyond "read as much as is there". Every decode of file bytes
//! returns a `Result`/`Option`; nothing here panics on what it reads.

use std::io::{self, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// Magic at the start of every segment file. DO NOT CHANGE: existing relay directories become unreadable.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"DSRELAY\0";
/// Version of the segment and frame layout. Bump on any change to the layout.
pub(crate) const SEGMENT_VERSION: u32 = 1;
/// `magic[8] | version u32 | reserved u32 | first_id u64`.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 24;
/// `len u32 | crc32 u32 | id u64`.
pub(crate) const RECORD_HEADER_LEN: usize = 16;
/// Largest payload a frame can describe.
pub(crate) const MAX_PAYLOAD: usize = u32::MAX as usize;

const SEGMENT_PREFIX: &str = "relay-";
const SEGMENT_SUFFIX: &str = ".log";
const ID_DIGITS: usize = 20;

/// `relay-<first id, 20 digits>.log`: names sort in id order.
pub(crate) fn segment_file_name(first_id: u64) -> String {
    format!(
        "{SEGMENT_PREFIX}{first_id:0width$}{SEGMENT_SUFFIX}",
        width = ID_DIGITS
    )
}

/// The first id encoded in a segment file name, or `None` when the name is not a segment's.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn encode_segment_header(first_id: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    // h[12..16]: reserved, zero.
    h[16..24].copy_from_slice(&first_id.to_le_bytes());
    h
}

/// Checks magic, version and that the header's first id matches the one in the file name.
pub(crate) fn check_segment_header(
    path: &Path,
    bytes: &[u8; SEGMENT_HEADER_LEN as usize],
    expected_first_id: u64,
) -> Result<()> {
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason,
    };
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(corrupt(format!(
            "bad magic {:?}, expected {:?}",
            &bytes[0..8],
            SEGMENT_MAGIC
        )));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != SEGMENT_VERSION {
        return Err(corrupt(format!(
            "unsupported segment version {version}, this build reads version {SEGMENT_VERSION}"
        )));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[16..24]);
    let first_id = u64::from_le_bytes(id);
    if first_id != expected_first_id {
        return Err(corrupt(format!(
            "header says first id {first_id} but the file name says {expected_first_id}"
        )));
    }
    Ok(())
}

/// CRC32 (IEEE, crc32fast) over `id (u64 LE) | payload`.
pub(crate) fn record_crc(id: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&id.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Frame header for `payload`; the caller has checked `payload.len() <= MAX_PAYLOAD`.
pub(crate) fn encode_record_header(id: u64, payload: &[u8]) -> [u8; RECORD_HEADER_LEN] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[4..8].copy_from_slice(&record_crc(id, payload).to_le_bytes());
    h[8..16].copy_from_slice(&id.to_le_bytes());
    h
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordHeader {
    pub(crate) len: u32,
    pub(crate) crc: u32,
    pub(crate) id: u64,
}

impl RecordHeader {
    pub(crate) fn decode(h: &[u8; RECORD_HEADER_LEN]) -> Self {
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[8..16]);
        RecordHeader {
            len,
            crc,
            id: u64::from_le_bytes(id),
        }
    }

    /// Whole frame size on disk.
    pub(crate) fn frame_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// Reads until `buf` is full or the end of the file; returns how many bytes were read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort_in_id_order() {
        assert_eq!(segment_file_name(42), "relay-00000000000000000042.log");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert!(segment_file_name(9) < segment_file_name(10));
        assert_eq!(parse_segment_file_name("relay-42.log"), None);
        assert_eq!(parse_segment_file_name("ledger.json"), None);
        assert_eq!(
            parse_segment_file_name("relay-0000000000000000004x.log"),
            None
        );
    }

    #[test]
    fn record_header_round_trips() {
        let h = encode_record_header(7, b"hello");
        let d = RecordHeader::decode(&h);
        assert_eq!((d.len, d.id, d.crc), (5, 7, record_crc(7, b"hello")));
        assert_eq!(d.frame_len(), 21);
    }
}
