//! TRANSACTION_PAYLOAD (MySQL 8.0.20+ `binlog_transaction_compression`):
//! a whole transaction's events, zstd-compressed, inside one event.
//!
//! ```text
//! body: { field_type lenenc | field_len lenenc | value lenenc }* | 0 (END_MARK) | payload
//!   field 1 = COMPRESSED_SIZE (payload bytes), 2 = COMPRESSION_TYPE (0 ZSTD, 255 NONE),
//!   field 3 = UNCOMPRESSED_SIZE; unknown fields are skipped by their length.
//! payload (once decompressed): complete events back to back, each with its
//!   19-byte header and no CRC32 trailer (the outer event's CRC covers them).
//! ```
//!
//! Memory is bounded: the decompressor is streamed and only one inner event
//! is held at a time, never the whole decompressed transaction. An inner event
//! larger than the declared uncompressed size (or 1 GiB, MySQL's largest
//! packet) is refused before it is allocated. Every failure is an error; no
//! inner event is skipped. Because inner events are streamed, those before a
//! decompression error have already reached the sink: the caller must treat
//! the transaction as failed (its XID was never delivered).

use super::cursor::Cursor;
use super::error::DecodeError;
use super::format::HEADER_LEN;
use std::io::Read;

/// Largest inner event accepted (MySQL's max_allowed_packet ceiling).
pub const MAX_INNER_EVENT: u64 = 1 << 30;

fn perr(offset: u64, what: impl Into<String>) -> DecodeError {
    DecodeError::Payload {
        offset,
        what: what.into(),
    }
}

/// Calls `f` with each inner event's raw bytes, in order.
pub fn for_each_inner(
    body: &[u8],
    offset: u64,
    f: &mut dyn FnMut(&[u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut inner = InnerEvents::new(body, offset)?;
    let mut ev = Vec::new();
    while inner.next_into(&mut ev)? {
        f(&ev)?;
    }
    Ok(())
}

/// The inner events of one TRANSACTION_PAYLOAD body, pulled one at a time:
/// the caller handles each (even asynchronously) before the next is
/// decompressed, so only the compressed payload and one inner event are in
/// memory.
pub struct InnerEvents<'a> {
    r: Box<dyn Read + Send + 'a>,
    offset: u64,
    limit: u64,
    declared: Option<u64>,
    total: u64,
    index: usize,
    done: bool,
}

impl<'a> InnerEvents<'a> {
    /// Parses the payload header of `body` (the event body without the
    /// 19-byte header and CRC trailer). `offset` is the outer event's offset,
    /// for errors.
    pub fn new(body: &'a [u8], offset: u64) -> Result<InnerEvents<'a>, DecodeError> {
        let mut c = Cursor::new(body);
        let mut compressed_size: Option<u64> = None;
        let mut algorithm: Option<u64> = None;
        let mut uncompressed_size: Option<u64> = None;
        loop {
            let field = c
                .lenenc("payload header field")
                .map_err(|e| perr(offset, format!("header: {e}")))?;
            if field == 0 {
                break;
            }
            let len = c
                .lenenc_len("payload header length")
                .map_err(|e| perr(offset, format!("header: {e}")))?;
            let value = c
                .bytes(len, "payload header value")
                .map_err(|e| perr(offset, format!("header: {e}")))?;
            let v = Cursor::new(value)
                .lenenc("payload header value")
                .map_err(|e| perr(offset, format!("header: {e}")));
            match field {
                1 => compressed_size = Some(v?),
                2 => algorithm = Some(v?),
                3 => uncompressed_size = Some(v?),
                _ => {}
            }
        }
        let data = c.rest();
        let size =
            compressed_size.ok_or_else(|| perr(offset, "header has no COMPRESSED_SIZE field"))?;
        if size != data.len() as u64 {
            return Err(perr(
                offset,
                format!(
                    "header says {size} compressed bytes, {} present",
                    data.len()
                ),
            ));
        }
        let limit = uncompressed_size
            .unwrap_or(MAX_INNER_EVENT)
            .min(MAX_INNER_EVENT.saturating_mul(4));
        let r: Box<dyn Read + Send + 'a> = match algorithm {
            Some(0) => Box::new(
                zstd::stream::read::Decoder::new(data)
                    .map_err(|e| perr(offset, format!("zstd: {e}")))?,
            ),
            Some(255) => Box::new(data),
            Some(other) => {
                return Err(perr(
                    offset,
                    format!("unknown compression type {other} (0 = ZSTD, 255 = NONE)"),
                ))
            }
            None => return Err(perr(offset, "header has no COMPRESSION_TYPE field")),
        };
        Ok(InnerEvents {
            r,
            offset,
            limit,
            declared: uncompressed_size,
            total: 0,
            index: 0,
            done: false,
        })
    }

    /// Reads the next inner event into `ev` (replacing its contents).
    /// Returns false after the last one, once the declared uncompressed size
    /// has been checked against the events' total.
    pub fn next_into(&mut self, ev: &mut Vec<u8>) -> Result<bool, DecodeError> {
        if self.done {
            return Ok(false);
        }
        let (offset, total, index) = (self.offset, self.total, self.index);
        let mut head = [0u8; HEADER_LEN];
        match fill(&mut self.r, &mut head) {
            Ok(false) => {
                self.done = true;
                if let Some(d) = self.declared {
                    if d != total {
                        return Err(perr(
                            offset,
                            format!("header says {d} uncompressed bytes, the events total {total}"),
                        ));
                    }
                }
                return Ok(false);
            }
            Ok(true) => {}
            Err(e) => {
                return Err(perr(
                    offset,
                    format!("inner event {index} header at byte {total}: {e}"),
                ))
            }
        }
        let size = u64::from(u32::from_le_bytes([head[9], head[10], head[11], head[12]]));
        if size < HEADER_LEN as u64 {
            return Err(perr(offset, format!("inner event {index} at byte {total} says it is {size} bytes, less than a header")));
        }
        if total.saturating_add(size) > self.limit {
            return Err(perr(
                offset,
                format!("inner event {index} at byte {total} says {size} bytes, beyond the payload's {} uncompressed bytes", self.limit),
            ));
        }
        // Grow the buffer only as bytes actually arrive, so a forged size
        // cannot make us allocate before the data is there; a buffer grown
        // by an earlier large event is shrunk back.
        ev.clear();
        if ev.capacity() > 4 << 20 {
            ev.shrink_to(1 << 20);
        }
        ev.reserve(HEADER_LEN.max((size as usize).min(1 << 20)));
        ev.extend_from_slice(&head);
        let want = size - HEADER_LEN as u64;
        let got = (&mut self.r).take(want).read_to_end(ev).map_err(|e| {
            perr(
                offset,
                format!("inner event {index} at byte {total} ({size} bytes): {e}"),
            )
        })?;
        if got as u64 != want {
            return Err(perr(
                offset,
                format!("inner event {index} at byte {total} says {size} bytes, the payload ends after {}", HEADER_LEN + got),
            ));
        }
        self.total += size;
        self.index += 1;
        Ok(true)
    }
}

/// Reads into `buf` fully; Ok(false) on a clean EOF before the first byte.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let Some(slot) = buf.get_mut(got..) else {
            break;
        };
        match r.read(slot) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{got} of {} bytes", buf.len()),
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
