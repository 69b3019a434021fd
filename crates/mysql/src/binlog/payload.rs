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
    match algorithm {
        Some(0) => {
            let dec = zstd::stream::read::Decoder::new(data)
                .map_err(|e| perr(offset, format!("zstd: {e}")))?;
            walk(dec, offset, limit, uncompressed_size, f)
        }
        Some(255) => walk(data, offset, limit, uncompressed_size, f),
        Some(other) => Err(perr(
            offset,
            format!("unknown compression type {other} (0 = ZSTD, 255 = NONE)"),
        )),
        None => Err(perr(offset, "header has no COMPRESSION_TYPE field")),
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

fn walk(
    mut r: impl Read,
    offset: u64,
    limit: u64,
    declared: Option<u64>,
    f: &mut dyn FnMut(&[u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut total: u64 = 0;
    let mut index = 0usize;
    loop {
        let mut head = [0u8; HEADER_LEN];
        match fill(&mut r, &mut head) {
            Ok(false) => break,
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
        if total.saturating_add(size) > limit {
            return Err(perr(
                offset,
                format!("inner event {index} at byte {total} says {size} bytes, beyond the payload's {limit} uncompressed bytes"),
            ));
        }
        // Grow the buffer only as bytes actually arrive, so a forged size
        // cannot make us allocate before the data is there.
        let mut ev = Vec::with_capacity(HEADER_LEN.max((size as usize).min(1 << 20)));
        ev.extend_from_slice(&head);
        let want = size - HEADER_LEN as u64;
        let got = (&mut r).take(want).read_to_end(&mut ev).map_err(|e| {
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
        f(&ev)?;
        total += size;
        index += 1;
    }
    if let Some(d) = declared {
        if d != total {
            return Err(perr(
                offset,
                format!("header says {d} uncompressed bytes, the events total {total}"),
            ));
        }
    }
    Ok(())
}
