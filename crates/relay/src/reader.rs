//! Readers: iterate records in id order from any stored id, and tail the log as the writer flushes.
//!
//! A reader holds one segment file open and one record in memory at a time. It returns a record only when its
//! id is <= the last flushed id, which guarantees the whole frame is in the file; so a short read below that
//! point is corruption, never "not written yet". Every record's CRC is checked, and ids must follow each other
//! without a gap (a gap means records were deleted under the reader, by retention or a reset).
//!
//! Segment files may be deleted while a reader has them open; on Unix the open file stays readable.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::format::{
    check_segment_header, read_full, record_crc, RecordHeader, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN,
};
use crate::log::Shared;
use crate::recovery::SegmentMeta;

const READ_BUFFER_BYTES: usize = 64 * 1024;

struct Cursor {
    path: PathBuf,
    file: BufReader<File>,
    /// Offset of the next frame in the file.
    offset: u64,
}

/// Reads records in id order. `Send`; create one per consumer task.
pub struct RelayReader {
    shared: Arc<Shared>,
    flushed: watch::Receiver<u64>,
    /// Last flushed id as of the last look at `flushed`; ids up to it are readable without asking again.
    known_flushed: u64,
    /// First id the caller wants; records below it are skipped.
    want: u64,
    /// Id of the next frame in the stream under the cursor.
    expect: u64,
    cursor: Option<Cursor>,
}

impl std::fmt::Debug for RelayReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayReader")
            .field("want", &self.want)
            .field("expect", &self.expect)
            .finish()
    }
}

impl RelayReader {
    pub(crate) fn new(shared: Arc<Shared>, from_id: u64) -> Result<RelayReader> {
        let from_id = from_id.max(1);
        let seg = shared.segment_for(from_id)?;
        let cursor = open_segment(&shared, &seg, from_id)?;
        let flushed = shared.flushed.clone();
        Ok(RelayReader {
            shared,
            flushed,
            known_flushed: 0,
            want: from_id,
            expect: seg.first_id,
            cursor: Some(cursor),
        })
    }

    /// Id of the next record this reader will return.
    pub fn position(&self) -> u64 {
        self.want.max(self.expect)
    }

    /// The next record, or `None` at the current flushed end.
    // Not `Iterator`: `None` here means "nothing flushed yet", not "finished", and every step can fail.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        let mut payload = Vec::new();
        Ok(self.next_into(&mut payload)?.map(|id| (id, payload)))
    }

    /// Like [`next`](Self::next) but reads the payload into `buf` (cleared first), reusing its allocation.
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<Option<u64>> {
        loop {
            if self.expect > self.known_flushed {
                // Only touch the watch channel (a lock) when the cached end is reached. Marking the value as
                // seen here, right before deciding "nothing more", is what makes `next_wait` miss no wake-up.
                self.known_flushed = *self.flushed.borrow_and_update();
                if self.expect > self.known_flushed {
                    // The segment under the cursor is finished when the next record starts a newer one: close
                    // it, so that an idle reader does not hold a deleted segment's disk space.
                    if self.cursor.is_some()
                        && self
                            .shared
                            .segment_for(self.expect)
                            .is_ok_and(|s| s.first_id == self.expect)
                    {
                        self.cursor = None;
                    }
                    return Ok(None);
                }
            }
            let cursor = match &mut self.cursor {
                Some(c) => c,
                None => {
                    let seg = self.shared.segment_for(self.expect)?;
                    if seg.first_id != self.expect {
                        return Err(Error::NotCovered {
                            requested: self.expect,
                            first_available: self.shared.first_id(),
                        });
                    }
                    self.cursor
                        .insert(open_segment(&self.shared, &seg, self.expect)?)
                }
            };
            let mut rh = [0u8; RECORD_HEADER_LEN];
            let n = read_full(&mut cursor.file, &mut rh)
                .map_err(|e| Error::io("read", &cursor.path, e))?;
            if n == 0 {
                // End of this segment: record `expect` is flushed, so it must start the next one. A segment
                // that ends before it (emptied or cut on disk) would be reopened forever otherwise.
                let (finished, offset) = (cursor.path.clone(), cursor.offset);
                self.cursor = None;
                if self.shared.segment_for(self.expect)?.path == finished {
                    return Err(Error::Corrupt {
                        path: finished,
                        offset,
                        reason: format!(
                            "the segment ends before record {}, which was written",
                            self.expect
                        ),
                    });
                }
                continue;
            }
            if n < RECORD_HEADER_LEN {
                return Err(truncated(cursor, n));
            }
            let header = RecordHeader::decode(&rh);
            if header.id != self.expect {
                return Err(Error::Corrupt {
                    path: cursor.path.clone(),
                    offset: cursor.offset,
                    reason: format!(
                        "record id {} out of sequence, expected {}",
                        header.id, self.expect
                    ),
                });
            }
            let frame_offset = cursor.offset;
            if header.id < self.want {
                cursor
                    .file
                    .seek_relative(i64::from(header.len))
                    .map_err(|e| Error::io("seek", &cursor.path, e))?;
            } else {
                buf.clear();
                buf.resize(header.len as usize, 0);
                cursor.file.read_exact(buf).map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => truncated(cursor, RECORD_HEADER_LEN),
                    _ => Error::io("read", &cursor.path, e),
                })?;
                let computed = record_crc(header.id, buf);
                if computed != header.crc {
                    return Err(Error::CrcMismatch {
                        path: cursor.path.clone(),
                        offset: frame_offset,
                        id: header.id,
                        stored: header.crc,
                        computed,
                    });
                }
            }
            cursor.offset += header.frame_len();
            self.expect += 1;
            if header.id >= self.want {
                self.want = self.expect;
                return Ok(Some(header.id));
            }
        }
    }

    /// The next record, waiting for the writer to flush one. Returns `None` only once the writer is closed
    /// (dropped) and every flushed record was read. Cancel-safe: dropping the future loses no record.
    pub async fn next_wait(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        loop {
            if let Some(record) = self.next()? {
                return Ok(Some(record));
            }
            if self.flushed.changed().await.is_err() {
                // Writer gone: whatever it flushed last is final.
                return self.next();
            }
        }
    }
}

fn truncated(cursor: &Cursor, got: usize) -> Error {
    Error::Corrupt {
        path: cursor.path.clone(),
        offset: cursor.offset,
        reason: format!("flushed record is truncated ({got} bytes of its frame readable)"),
    }
}

/// Opens a segment and checks its header; `needed` is only for the error when it was deleted meanwhile.
fn open_segment(shared: &Shared, seg: &SegmentMeta, needed: u64) -> Result<Cursor> {
    let file = match File::open(&seg.path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NotCovered {
                requested: needed,
                first_available: shared.first_id(),
            })
        }
        Err(e) => return Err(Error::io("open", &seg.path, e)),
    };
    let mut file = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    let n = read_full(&mut file, &mut h).map_err(|e| Error::io("read", &seg.path, e))?;
    if n < h.len() {
        return Err(Error::Corrupt {
            path: seg.path.clone(),
            offset: n as u64,
            reason: format!(
                "segment is {n} bytes, shorter than its {SEGMENT_HEADER_LEN}-byte header"
            ),
        });
    }
    check_segment_header(&seg.path, &h, seg.first_id)?;
    Ok(Cursor {
        path: seg.path.clone(),
        file,
        offset: SEGMENT_HEADER_LEN,
    })
}
