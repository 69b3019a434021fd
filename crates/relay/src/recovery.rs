//! Recovery on open: find the segments, repair a torn tail, work out the next id.
//!
//! Only the last segment can be torn: the writer finishes (flushes) a segment before it creates the next one.
//! The last segment is scanned record by record:
//!
//! * a partial frame header, a frame whose payload runs past the end of the file, or a CRC-mismatched frame
//!   that ends exactly at the end of the file is a *torn tail* (a crash while appending): the file is
//!   truncated to the end of the last good record, with a WARN that says how many bytes were dropped;
//! * a CRC mismatch or an out-of-sequence id with more bytes after it is corruption in the *middle*:
//!   an error naming the file and offset, because silently dropping good-looking data after it would hide loss;
//! * a last segment shorter than its header (crash right after it was created) gets its header rewritten.
//!
//! Older segments are not scanned (that would make open O(relay size)); their headers are checked, and readers
//! verify every record's CRC as they go.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::error::{Error, Result};
use crate::format::{
    check_segment_header, encode_segment_header, parse_segment_file_name, read_full, record_crc,
    RecordHeader, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};

/// A segment file known to the log.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    pub(crate) first_id: u64,
    pub(crate) path: PathBuf,
    /// Size in bytes (for the active segment: as of the last flush or roll).
    pub(crate) bytes: u64,
}

pub(crate) struct Recovered {
    /// Sorted by `first_id`; empty when the directory holds no segment yet.
    pub(crate) segments: Vec<SegmentMeta>,
    /// Id the next appended record gets (1 for a new log).
    pub(crate) next_id: u64,
}

pub(crate) fn recover(dir: &Path) -> Result<Recovered> {
    let mut segments = list_segments(dir)?;
    let Some(last) = segments.pop() else {
        return Ok(Recovered {
            segments,
            next_id: 1,
        });
    };
    for seg in &segments {
        let mut f = File::open(&seg.path).map_err(|e| Error::io("open", &seg.path, e))?;
        let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
        let n = read_full(&mut f, &mut h).map_err(|e| Error::io("read", &seg.path, e))?;
        if n < h.len() {
            return Err(Error::Corrupt {
                path: seg.path.clone(),
                offset: n as u64,
                reason: format!("segment is {n} bytes, shorter than its {SEGMENT_HEADER_LEN}-byte header, and it is not the last segment"),
            });
        }
        check_segment_header(&seg.path, &h, seg.first_id)?;
    }
    let (bytes, next_id) = scan_last_segment(&last.path, last.first_id)?;
    segments.push(SegmentMeta { bytes, ..last });
    Ok(Recovered { segments, next_id })
}

fn list_segments(dir: &Path) -> Result<Vec<SegmentMeta>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(first_id) = name.to_str().and_then(parse_segment_file_name) else {
            continue;
        };
        let path = entry.path();
        let bytes = entry
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        out.push(SegmentMeta {
            first_id,
            path,
            bytes,
        });
    }
    out.sort_by_key(|s| s.first_id);
    Ok(out)
}

/// Scans the last segment, truncating a torn tail. Returns (valid length, next id).
fn scan_last_segment(path: &Path, first_id: u64) -> Result<(u64, u64)> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io("stat", path, e))?
        .len();

    if file_len < SEGMENT_HEADER_LEN {
        warn!(path = %path.display(), file_len, "relay segment shorter than its header (crash while creating it); rewriting the header");
        file.set_len(0)
            .map_err(|e| Error::io("truncate", path, e))?;
        file.write_all(&encode_segment_header(first_id))
            .map_err(|e| Error::io("write", path, e))?;
        file.sync_all().map_err(|e| Error::io("fsync", path, e))?;
        return Ok((SEGMENT_HEADER_LEN, first_id));
    }

    let mut r = BufReader::with_capacity(256 * 1024, &mut file);
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    r.read_exact(&mut h)
        .map_err(|e| Error::io("read", path, e))?;
    check_segment_header(path, &h, first_id)?;

    let mut offset = SEGMENT_HEADER_LEN;
    let mut next_id = first_id;
    let mut payload = Vec::new();
    let torn: Option<&'static str> = loop {
        let mut rh = [0u8; RECORD_HEADER_LEN];
        let n = read_full(&mut r, &mut rh).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break None;
        }
        if n < RECORD_HEADER_LEN {
            break Some("partial record header");
        }
        let header = RecordHeader::decode(&rh);
        let end = offset + header.frame_len();
        if end > file_len {
            break Some("record runs past the end of the file");
        }
        payload.resize(header.len as usize, 0);
        r.read_exact(&mut payload)
            .map_err(|e| Error::io("read", path, e))?;
        let computed = record_crc(header.id, &payload);
        if computed != header.crc {
            if end == file_len {
                break Some("CRC mismatch in the last record");
            }
            return Err(Error::CrcMismatch {
                path: path.to_path_buf(),
                offset,
                id: header.id,
                stored: header.crc,
                computed,
            });
        }
        if header.id != next_id {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                offset,
                reason: format!(
                    "record id {} out of sequence, expected {next_id}",
                    header.id
                ),
            });
        }
        next_id += 1;
        offset = end;
    };
    drop(r);

    if let Some(reason) = torn {
        let dropped_bytes = file_len - offset;
        warn!(
            path = %path.display(), offset, dropped_bytes, reason, next_id,
            "truncating torn tail of relay segment (a crash interrupted an append; records after the last flush may be lost)"
        );
        file.set_len(offset)
            .map_err(|e| Error::io("truncate", path, e))?;
        file.sync_all().map_err(|e| Error::io("fsync", path, e))?;
    }
    Ok((offset, next_id))
}
