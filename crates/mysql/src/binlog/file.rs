//! Reading binlog and relay-log files: framing events by their header length
//! and feeding them to a [`Decoder`], with each event's file offset.
//!
//! ```text
//! file := magic "\xfe" "bin" | event* ;  event := header(19, event_size at bytes 9..13) | body | [CRC32]
//! ```
//!
//! A relay log is the same format and may hold several FORMAT_DESCRIPTION and
//! ROTATE events (its own and the source's); the decoder switches format at
//! each FDE. Reading is streamed through a buffer; one event is held at a
//! time. Truncated or corrupt input stops with an error naming the file and
//! the offset; every event before it has already been handed to the sink.

use super::decoder::{Decoder, Sink};
use super::error::DecodeError;
use super::format::HEADER_LEN;
use super::payload::MAX_INNER_EVENT;
use std::io::{BufReader, Read};
use std::path::Path;

pub const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];

/// What a file read delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileSummary {
    /// Raw events framed from the file (a TRANSACTION_PAYLOAD counts once).
    pub raw_events: u64,
    /// Events handed to the sink (inner payload events included).
    pub events: u64,
    /// Offset just past the last complete event.
    pub end_offset: u64,
}

fn wrap(path: &str, e: DecodeError) -> DecodeError {
    match e {
        DecodeError::Sink(_)
        | DecodeError::File { .. }
        | DecodeError::Io { .. }
        | DecodeError::BadMagic { .. } => e,
        other => DecodeError::File {
            path: path.to_string(),
            source: Box::new(other),
        },
    }
}

/// Reads a whole binlog file, calling `out` for every decoded event.
pub fn read_file(path: &Path, out: &mut Sink<'_>) -> Result<FileSummary, DecodeError> {
    read_file_with(path, &mut Decoder::new(), out)
}

/// [`read_file`] with a caller-owned decoder (e.g. one built with
/// [`Decoder::keeping_partial_json`]).
pub fn read_file_with(
    path: &Path,
    decoder: &mut Decoder,
    out: &mut Sink<'_>,
) -> Result<FileSummary, DecodeError> {
    let name = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| DecodeError::Io {
        path: name.clone(),
        what: e.to_string(),
    })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    read_from(
        &name,
        BufReader::with_capacity(256 * 1024, f),
        len,
        decoder,
        out,
    )
}

/// Reads binlog bytes already in memory (`name` is used in errors).
pub fn read_bytes(
    name: &str,
    bytes: &[u8],
    out: &mut Sink<'_>,
) -> Result<FileSummary, DecodeError> {
    read_from(name, bytes, bytes.len() as u64, &mut Decoder::new(), out)
}

/// The raw events of a binlog stream, one at a time (header, body and CRC
/// trailer as the file holds them), each checked against its header's size
/// and the stream's length: the framing every reader of binlog files
/// shares (`read_from` here, and the core's offline replay). One event is
/// held at a time.
pub struct Frames<R> {
    name: String,
    r: R,
    len: u64,
    offset: u64,
    buf: Vec<u8>,
}

impl<R: Read> Frames<R> {
    /// Checks the magic number; `len` bounds event sizes (`u64::MAX` if
    /// unknown).
    pub fn new(name: &str, mut r: R, len: u64) -> Result<Frames<R>, DecodeError> {
        let mut magic = [0u8; 4];
        let got = fill(&mut r, &mut magic).map_err(|e| DecodeError::Io {
            path: name.to_string(),
            what: e.to_string(),
        })?;
        if got < 4 || magic != MAGIC {
            return Err(DecodeError::BadMagic {
                path: name.to_string(),
                found: magic.get(..got).unwrap_or(&[]).to_vec(),
            });
        }
        Ok(Frames {
            name: name.to_string(),
            r,
            len,
            offset: 4,
            buf: Vec::new(),
        })
    }

    /// Offset just past the last complete event.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next event and its offset; `None` at the end of the stream.
    /// Errors name the file and the offset.
    pub fn next_event(&mut self) -> Result<Option<(u64, &[u8])>, DecodeError> {
        let (name, offset) = (self.name.as_str(), self.offset);
        let io = |e: std::io::Error| DecodeError::Io {
            path: name.to_string(),
            what: e.to_string(),
        };
        let mut head = [0u8; HEADER_LEN];
        let got = fill(&mut self.r, &mut head).map_err(io)?;
        if got == 0 {
            return Ok(None);
        }
        let type_code = head[4];
        if got < HEADER_LEN {
            return Err(wrap(
                name,
                DecodeError::Truncated {
                    offset,
                    type_code,
                    what: format!(
                        "file ends inside an event header: {got} of {HEADER_LEN} bytes present"
                    ),
                },
            ));
        }
        let size = u64::from(u32::from_le_bytes([head[9], head[10], head[11], head[12]]));
        if size < HEADER_LEN as u64 {
            return Err(wrap(
                name,
                DecodeError::Malformed {
                    offset,
                    type_code,
                    what: format!("header says {size} bytes, less than a header"),
                },
            ));
        }
        let left = self.len.saturating_sub(offset);
        if size > left || size > MAX_INNER_EVENT {
            return Err(wrap(
                name,
                DecodeError::Truncated {
                    offset,
                    type_code,
                    what: format!("header says {size} bytes, {left} present"),
                },
            ));
        }
        self.buf.clear();
        self.buf.extend_from_slice(&head);
        self.buf.resize(size as usize, 0);
        let body = self.buf.get_mut(HEADER_LEN..).unwrap_or(&mut []);
        let want = body.len();
        let got = fill(&mut self.r, body).map_err(io)?;
        if got < want {
            return Err(wrap(
                name,
                DecodeError::Truncated {
                    offset,
                    type_code,
                    what: format!("header says {size} bytes, {} present", HEADER_LEN + got),
                },
            ));
        }
        self.offset += size;
        Ok(Some((offset, &self.buf)))
    }

    /// The name errors use.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Reads a binlog stream with a caller-owned decoder (e.g. to continue a
/// relay log across files). `len` bounds event sizes; pass `u64::MAX` if unknown.
pub fn read_from(
    name: &str,
    r: impl Read,
    len: u64,
    decoder: &mut Decoder,
    out: &mut Sink<'_>,
) -> Result<FileSummary, DecodeError> {
    let mut frames = Frames::new(name, r, len)?;
    let mut summary = FileSummary {
        end_offset: 4,
        ..Default::default()
    };
    let mut events = 0u64;
    while let Some((offset, raw)) = frames.next_event()? {
        let mut counting = |h, e| {
            events += 1;
            out(h, e)
        };
        decoder
            .decode_at(raw, offset, &mut counting)
            .map_err(|e| wrap(name, e))?;
        summary.raw_events += 1;
        summary.end_offset = offset + raw.len() as u64;
    }
    summary.events = events;
    Ok(summary)
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let Some(slot) = buf.get_mut(got..) else {
            break;
        };
        match r.read(slot) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
