//! The relay log: one writer ([`RelayLog`]) and a cloneable, `Send + Sync` handle ([`RelayHandle`]) for readers,
//! acks and metrics.
//!
//! Invariants:
//! * ids are assigned in append order, start at 1, and continue across restarts and resets (the next id is
//!   derived from the last segment's name plus the records in it, and the writer never deletes the last segment);
//! * readers see a record only once `flush` has written it to the OS; the last flushed id is published on a
//!   `tokio::sync::watch` channel so tailing readers wake without polling;
//! * a segment is deleted only when every registered consumer's ack, already persisted in the ledger, is at or
//!   past its last record, and never while it is the segment being written;
//! * a full file system loses nothing: bytes the file did not take stay in the writer's buffer and the next
//!   `flush` continues exactly where the failed write stopped ([`Error::NoSpace`]), so a torn frame in the file is
//!   completed, never duplicated; while bytes wait, the writer holds at most one buffer and one record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::format::{
    encode_record_header, encode_segment_header, segment_file_name, MAX_PAYLOAD, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN,
};
use crate::ledger::{ensure_reserve, sync_dir, Ledger};
use crate::reader::RelayReader;
use crate::recovery::{recover, SegmentMeta};

/// When the writer calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// fsync on every [`RelayLog::flush`] (and when a segment is finished). Durable across power loss.
    #[default]
    EveryFlush,
    /// fsync only when [`RelayLog::sync`] is called. Survives a process crash, not a power loss.
    Manual,
}

/// Options for [`RelayLog::open`].
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Optional, default 64 MiB. A segment is closed before a record that would take it past this size; a record
    /// larger than this gets a segment of its own. Must be > 0.
    pub segment_max_bytes: u64,
    /// Optional, default [`SyncPolicy::EveryFlush`].
    pub sync: SyncPolicy,
    /// Optional, default 256 KiB. Size of the writer's buffer in front of the segment file. Must be > 0.
    pub write_buffer_bytes: usize,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            segment_max_bytes: 64 * 1024 * 1024,
            sync: SyncPolicy::default(),
            write_buffer_bytes: 256 * 1024,
        }
    }
}

impl RelayOptions {
    fn validate(&self) -> Result<()> {
        if self.segment_max_bytes == 0 {
            return Err(Error::InvalidOption {
                field: "segment_max_bytes",
                value: "0".into(),
                reason: "must be greater than 0",
            });
        }
        if self.write_buffer_bytes == 0 {
            return Err(Error::InvalidOption {
                field: "write_buffer_bytes",
                value: "0".into(),
                reason: "must be greater than 0",
            });
        }
        Ok(())
    }
}

/// State shared by the writer, the handles and the readers.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    /// Sorted by first id; the last one is the segment being written. Never empty.
    segments: Mutex<Vec<SegmentMeta>>,
    /// Consumer acks. Lock order: `ledger` before `segments`.
    ledger: Mutex<Ledger>,
    /// Bytes in the active segment, including the writer's buffer.
    active_bytes: AtomicU64,
    /// Last flushed id (0 before the first record ever). Readers clone this receiver.
    pub(crate) flushed: watch::Receiver<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind; keep going rather than cascade panics.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Oldest stored id (equals the next id to be written when nothing is stored).
    pub(crate) fn first_id(&self) -> u64 {
        lock(&self.segments).first().map_or(1, |s| s.first_id)
    }

    /// The segment that holds `id`: the last one whose first id is <= `id`. `Err(NotCovered)` when `id` is older
    /// than everything stored.
    pub(crate) fn segment_for(&self, id: u64) -> Result<SegmentMeta> {
        let segs = lock(&self.segments);
        let first_available = segs.first().map_or(1, |s| s.first_id);
        if id < first_available {
            return Err(Error::NotCovered {
                requested: id,
                first_available,
            });
        }
        let idx = segs.partition_point(|s| s.first_id <= id);
        match idx.checked_sub(1).and_then(|i| segs.get(i)) {
            Some(s) => Ok(s.clone()),
            None => Err(Error::NotCovered {
                requested: id,
                first_available,
            }),
        }
    }
}

/// Cloneable, `Send + Sync` access to a relay log for readers, acks and metrics.
#[derive(Clone)]
pub struct RelayHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RelayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHandle")
            .field("dir", &self.shared.dir)
            .field("last_id", &self.last_id())
            .finish()
    }
}

impl RelayHandle {
    /// A reader positioned at the first record with id >= `from_id`.
    ///
    /// `Err(NotCovered)` when `from_id` is older than the oldest stored record (deleted by retention or reset).
    /// `from_id` may be beyond the last id: the reader then waits for it.
    pub fn reader(&self, from_id: u64) -> Result<RelayReader> {
        RelayReader::new(Arc::clone(&self.shared), from_id)
    }

    /// Oldest stored id; equals `last_id() + 1` when nothing is stored.
    pub fn first_id(&self) -> u64 {
        self.shared.first_id()
    }

    /// Last flushed id (0 when no record was ever written). Ids below `first_id()` may have been deleted.
    pub fn last_id(&self) -> u64 {
        *self.shared.flushed.borrow()
    }

    /// The relay directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Bytes an unprivileged writer may still use on the relay directory's file system; `None` when the system
    /// cannot tell.
    pub fn free_space(&self) -> Option<u64> {
        free_space(&self.shared.dir)
    }

    /// Re-creates the small reserve file the ledger gives up when the file system is full (so that acks, which
    /// free segments, can still be recorded). Returns whether the reserve is in place.
    pub fn ensure_reserve(&self) -> bool {
        ensure_reserve(&self.shared.dir)
    }

    /// Bytes of all segment files (including the writer's unflushed buffer). For `dropship_relay_size_bytes`.
    pub fn size_bytes(&self) -> u64 {
        let segs = lock(self.segments());
        let closed: u64 = segs.iter().rev().skip(1).map(|s| s.bytes).sum();
        closed + self.shared.active_bytes.load(Ordering::Relaxed)
    }

    fn segments(&self) -> &Mutex<Vec<SegmentMeta>> {
        &self.shared.segments
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        lock(self.segments()).len()
    }

    /// Registers `consumer` (idempotent) and returns its ack. A new consumer's ack is `first_id() - 1`: it holds
    /// back retention of everything currently stored.
    pub fn register(&self, consumer: &str) -> Result<u64> {
        let mut ledger = lock(&self.shared.ledger);
        if let Some(&ack) = ledger.consumers.get(consumer) {
            return Ok(ack);
        }
        let ack = self.first_id().saturating_sub(1);
        ledger.consumers.insert(consumer.to_string(), ack);
        if let Err(e) = ledger.save() {
            ledger.consumers.remove(consumer);
            return Err(e);
        }
        info!(consumer, ack, "relay consumer registered");
        Ok(ack)
    }

    /// Removes `consumer`; its ack no longer holds back retention. Returns whether it was registered.
    pub fn deregister(&self, consumer: &str) -> Result<bool> {
        let deleted = {
            let mut ledger = lock(&self.shared.ledger);
            let Some(old) = ledger.consumers.remove(consumer) else {
                return Ok(false);
            };
            if let Err(e) = ledger.save() {
                ledger.consumers.insert(consumer.to_string(), old);
                return Err(e);
            }
            info!(consumer, ack = old, "relay consumer deregistered");
            self.collect_deletable(&ledger)
        };
        self.delete_segments(deleted)?;
        Ok(true)
    }

    /// Records that `consumer` no longer needs any record with id <= `id`, persists it, and deletes segments
    /// every registered consumer has acked past. An ack lower than the stored one is ignored.
    ///
    /// Each ack that moves a position rewrites and fsyncs the ledger (milliseconds on a real disk): ack per batch
    /// of applied transactions, not per record.
    pub fn ack(&self, consumer: &str, id: u64) -> Result<()> {
        let last_id = self.last_id();
        if id > last_id {
            return Err(Error::AckBeyondEnd {
                consumer: consumer.to_string(),
                id,
                last_id,
            });
        }
        let deleted = {
            let mut ledger = lock(&self.shared.ledger);
            let Some(&old) = ledger.consumers.get(consumer) else {
                return Err(Error::UnknownConsumer {
                    name: consumer.to_string(),
                });
            };
            if id <= old {
                return Ok(());
            }
            ledger.consumers.insert(consumer.to_string(), id);
            if let Err(e) = ledger.save() {
                ledger.consumers.insert(consumer.to_string(), old);
                return Err(e);
            }
            self.collect_deletable(&ledger)
        };
        self.delete_segments(deleted)
    }

    /// The stored ack of `consumer`.
    pub fn acked(&self, consumer: &str) -> Result<u64> {
        lock(&self.shared.ledger)
            .consumers
            .get(consumer)
            .copied()
            .ok_or_else(|| Error::UnknownConsumer {
                name: consumer.to_string(),
            })
    }

    /// All registered consumers with their acks, sorted by name. Backlog of one is `last_id() - ack`.
    pub fn consumers(&self) -> Vec<(String, u64)> {
        lock(&self.shared.ledger)
            .consumers
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Removes from the segment list every segment, except the active one, whose records are all <= the
    /// minimum ack; returns them for deletion. Called with the (already saved) ledger locked.
    fn collect_deletable(&self, ledger: &Ledger) -> Vec<SegmentMeta> {
        let Some(min_ack) = ledger.min_ack() else {
            return Vec::new();
        };
        let mut segs = lock(&self.shared.segments);
        // Segment i holds ids [first_id(i), first_id(i+1) - 1].
        let n = segs
            .windows(2)
            .take_while(|w| w[1].first_id.saturating_sub(1) <= min_ack)
            .count();
        segs.drain(..n).collect()
    }

    fn delete_segments(&self, segments: Vec<SegmentMeta>) -> Result<()> {
        if segments.is_empty() {
            return Ok(());
        }
        for seg in &segments {
            match fs::remove_file(&seg.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete", &seg.path, e)),
            }
        }
        info!(
            count = segments.len(),
            first_id = self.first_id(),
            "relay segments deleted after every consumer acked past them"
        );
        sync_dir(&self.shared.dir)
    }
}

/// The segment the writer appends to.
struct ActiveSegment {
    path: PathBuf,
    file: File,
    /// Frames appended but not yet written to `file`: `pending[written..]`.
    pending: Vec<u8>,
    written: usize,
    /// Bytes including the header and pending bytes.
    bytes: u64,
    records: u64,
}

impl ActiveSegment {
    fn new(path: PathBuf, file: File, bytes: u64, records: u64, options: &RelayOptions) -> Self {
        ActiveSegment {
            path,
            file,
            pending: Vec::with_capacity(options.write_buffer_bytes),
            written: 0,
            bytes,
            records,
        }
    }

    fn pending_bytes(&self) -> usize {
        self.pending.len() - self.written
    }

    /// Writes the pending bytes. On an error the bytes the file did not take stay pending, so the next call
    /// continues exactly where this one stopped.
    fn write_pending(&mut self, buffer_bytes: usize) -> io::Result<()> {
        while self.written < self.pending.len() {
            match self.file.write(&self.pending[self.written..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the file took no bytes",
                    ))
                }
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        self.written = 0;
        // One large record must not keep its buffer for the log's lifetime.
        if self.pending.capacity() > 4 * buffer_bytes {
            self.pending = Vec::with_capacity(buffer_bytes);
        }
        Ok(())
    }
}

/// Whether an OS error means the file system is full or over quota (retry once space returns).
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

#[cfg(unix)]
fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data; all-zero is a valid value of it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and outlives the call; `st` is a valid out-parameter.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    let free = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    (rc == 0).then_some(free)
}

#[cfg(not(unix))]
fn free_space(_dir: &Path) -> Option<u64> {
    None
}

/// The single writer of a relay log directory. Also offers everything [`RelayHandle`] does.
///
/// Only one `RelayLog` may be open on a directory at a time: `open` takes an exclusive `flock` on `<dir>/lock`
/// (released when the process dies, so a crash leaves no stale lock) and fails with [`Error::Locked`].
pub struct RelayLog {
    handle: RelayHandle,
    /// Held for the writer's lifetime; the lock goes with the file descriptor.
    _lock: File,
    tx: watch::Sender<u64>,
    options: RelayOptions,
    active: ActiveSegment,
    next_id: u64,
    failed: Option<String>,
    /// Under [`SyncPolicy::Manual`]: segments finished since the last `sync`, still to be fsynced, and whether
    /// the directory (new segment files) needs an fsync too.
    unsynced: Vec<(PathBuf, File)>,
    dir_unsynced: bool,
}

impl std::fmt::Debug for RelayLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayLog")
            .field("dir", &self.handle.shared.dir)
            .field("next_id", &self.next_id)
            .finish()
    }
}

impl RelayLog {
    /// Opens (creating if needed) the relay log in `dir`, recovering from a crash: a torn tail of the last segment
    /// is truncated (WARN), ids continue after the last good record, and retention is re-applied from the ledger.
    pub fn open(dir: impl AsRef<Path>, options: RelayOptions) -> Result<RelayLog> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let lock_file = lock_dir(&dir)?;
        let ledger = Ledger::load(&dir)?;
        let recovered = recover(&dir)?;
        let next_id = recovered.next_id;
        let mut segments = recovered.segments;

        let active = match segments.last() {
            Some(last) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&last.path)
                    .map_err(|e| Error::io("open", &last.path, e))?;
                ActiveSegment::new(
                    last.path.clone(),
                    file,
                    last.bytes,
                    next_id - last.first_id,
                    &options,
                )
            }
            None => {
                let active = create_segment(&dir, next_id, &options)?;
                segments.push(SegmentMeta {
                    first_id: next_id,
                    path: active.path.clone(),
                    bytes: active.bytes,
                });
                active
            }
        };

        let last_id = next_id - 1;
        let (tx, rx) = watch::channel(last_id);
        let shared = Arc::new(Shared {
            dir,
            segments: Mutex::new(segments),
            ledger: Mutex::new(ledger),
            active_bytes: AtomicU64::new(active.bytes),
            flushed: rx,
        });
        let log = RelayLog {
            handle: RelayHandle { shared },
            _lock: lock_file,
            tx,
            options,
            active,
            next_id,
            failed: None,
            unsynced: Vec::new(),
            dir_unsynced: true,
        };
        // A crash between saving an ack and deleting the segments it freed leaves them behind: finish the job.
        let deletable = log
            .handle
            .collect_deletable(&lock(&log.handle.shared.ledger));
        log.handle.delete_segments(deletable)?;
        if !log.handle.ensure_reserve() {
            warn!(dir = %log.handle.shared.dir.display(), "relay log: cannot create the space reserve file (is the file system full?); acks may fail while it is full");
        }
        info!(dir = %log.handle.shared.dir.display(), first_id = log.first_id(), last_id, "relay log opened");
        Ok(log)
    }

    /// A cloneable handle for other tasks (readers, acks, metrics).
    pub fn handle(&self) -> RelayHandle {
        self.handle.clone()
    }

    /// Appends a record and returns its id. Buffered: readers see it after [`flush`](Self::flush).
    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        if let Some(first_error) = &self.failed {
            return Err(Error::WriterFailed {
                first_error: first_error.clone(),
            });
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(Error::RecordTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        // Bytes still waiting (a full disk) are written before another record is taken: memory stays bounded.
        if self.active.pending_bytes() >= self.options.write_buffer_bytes {
            self.write_pending()?;
        }
        let frame = (RECORD_HEADER_LEN + payload.len()) as u64;
        if self.active.records > 0 && self.active.bytes + frame > self.options.segment_max_bytes {
            self.roll()?;
        }
        let id = self.next_id;
        let header = encode_record_header(id, payload);
        self.active.pending.extend_from_slice(&header);
        self.active.pending.extend_from_slice(payload);
        self.active.bytes += frame;
        self.active.records += 1;
        self.handle
            .shared
            .active_bytes
            .store(self.active.bytes, Ordering::Relaxed);
        self.next_id += 1;
        if self.active.pending_bytes() >= self.options.write_buffer_bytes {
            match self.write_pending() {
                // Taken: the bytes are written by a later append or flush.
                Ok(()) | Err(Error::NoSpace { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(id)
    }

    /// Writes the pending bytes; a full file system is [`Error::NoSpace`] (retry later), anything else fails
    /// the writer.
    fn write_pending(&mut self) -> Result<()> {
        match self.active.write_pending(self.options.write_buffer_bytes) {
            Ok(()) => Ok(()),
            Err(e) if is_no_space(&e) => Err(Error::NoSpace {
                dir: self.handle.shared.dir.clone(),
                pending: self.active.pending_bytes() as u64,
                source: e,
            }),
            Err(e) => Err(self.fail(Error::io("write", &self.active.path, e))),
        }
    }

    /// Writes buffered records to the OS (and fsyncs under [`SyncPolicy::EveryFlush`]), then wakes readers.
    pub fn flush(&mut self) -> Result<()> {
        self.write_out(self.options.sync == SyncPolicy::EveryFlush)
    }

    /// Like [`flush`](Self::flush), and always fsyncs.
    pub fn sync(&mut self) -> Result<()> {
        self.write_out(true)
    }

    fn write_out(&mut self, fsync: bool) -> Result<()> {
        if let Some(first_error) = &self.failed {
            return Err(Error::WriterFailed {
                first_error: first_error.clone(),
            });
        }
        self.write_pending()?;
        if fsync {
            if let Err(e) = self.sync_all_written() {
                return Err(self.fail(e));
            }
        }
        let last = self.next_id - 1;
        self.tx.send_if_modified(|v| {
            let changed = *v != last;
            *v = last;
            changed
        });
        Ok(())
    }

    /// Id the next appended record will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Discards every stored and buffered record. Ids continue (the next record gets [`next_id`](Self::next_id)),
    /// and every registered consumer's ack is set to `next_id - 1` so that it reads the new log from its start.
    /// Readers still open get `NotCovered` or a gap error for records that were discarded under them.
    /// Returns the first id of the new, empty log.
    pub fn reset(&mut self) -> Result<u64> {
        let first = self.next_id;
        let dir = self.handle.shared.dir.clone();
        let reuse_active =
            self.active.records == 0 && self.active.path == dir.join(segment_file_name(first));
        if !reuse_active {
            // Create the new segment before deleting the old ones: a crash in between must never leave a
            // directory without segments, or ids would restart at 1.
            let active = create_segment(&dir, first, &self.options)?;
            // The old file is discarded, its pending bytes with it.
            drop(std::mem::replace(&mut self.active, active));
        }
        self.unsynced.clear();
        let new_meta = SegmentMeta {
            first_id: first,
            path: self.active.path.clone(),
            bytes: self.active.bytes,
        };
        self.failed = None;
        let old = {
            let mut ledger = lock(&self.handle.shared.ledger);
            for ack in ledger.consumers.values_mut() {
                *ack = first - 1;
            }
            ledger.save()?;
            let mut segs = lock(&self.handle.shared.segments);
            std::mem::replace(&mut *segs, vec![new_meta])
        };
        self.handle
            .shared
            .active_bytes
            .store(self.active.bytes, Ordering::Relaxed);
        for seg in old.iter().filter(|s| s.first_id != first) {
            match fs::remove_file(&seg.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete", &seg.path, e)),
            }
        }
        sync_dir(&dir)?;
        self.tx.send_replace(first - 1);
        warn!(dir = %dir.display(), first_id = first, discarded_segments = old.len(), "relay log reset: every stored record discarded");
        Ok(first)
    }

    /// When every registered consumer has acked every record, finishes the active segment and deletes it, so a
    /// writer paused on a full file system gets its space back (the active segment is never deleted otherwise).
    /// Returns whether a segment was deleted.
    pub fn release_drained(&mut self) -> Result<bool> {
        let last = self.next_id - 1;
        if self.active.records == 0 || self.active.pending_bytes() > 0 {
            return Ok(false);
        }
        let min_ack = lock(&self.handle.shared.ledger).min_ack();
        let drained = min_ack.is_some_and(|m| m >= last);
        if !drained {
            return Ok(false);
        }
        self.roll()?;
        let deletable = self
            .handle
            .collect_deletable(&lock(&self.handle.shared.ledger));
        let freed = !deletable.is_empty();
        self.handle.delete_segments(deletable)?;
        Ok(freed)
    }

    /// Finishes the active segment and starts a new one at `next_id`.
    /// On an error nothing changed: the active segment stays, and a later append tries again.
    fn roll(&mut self) -> Result<()> {
        self.write_pending()?;
        if self.options.sync == SyncPolicy::EveryFlush {
            if let Err(e) = self.active.file.sync_data() {
                return Err(self.fail(Error::io("fsync", &self.active.path, e)));
            }
        }
        let finished_bytes = self.active.bytes;
        let active = match create_segment(&self.handle.shared.dir, self.next_id, &self.options) {
            Ok(a) => a,
            Err(e @ Error::NoSpace { .. }) => return Err(e),
            Err(e) => return Err(self.fail(e)),
        };
        let meta = SegmentMeta {
            first_id: self.next_id,
            path: active.path.clone(),
            bytes: active.bytes,
        };
        let finished = std::mem::replace(&mut self.active, active);
        if self.options.sync == SyncPolicy::Manual {
            // Keep the finished file so that the next `sync` makes it durable too.
            self.unsynced.push((finished.path, finished.file));
            self.dir_unsynced = true;
        }
        let mut segs = lock(&self.handle.shared.segments);
        if let Some(last) = segs.last_mut() {
            last.bytes = finished_bytes;
        }
        segs.push(meta);
        self.handle
            .shared
            .active_bytes
            .store(self.active.bytes, Ordering::Relaxed);
        Ok(())
    }

    /// fsyncs the active segment, segments finished since the last sync, and the directory if it changed.
    fn sync_all_written(&mut self) -> Result<()> {
        for (path, file) in &self.unsynced {
            file.sync_data().map_err(|e| Error::io("fsync", path, e))?;
        }
        self.unsynced.clear();
        self.active
            .file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.active.path, e))?;
        if self.dir_unsynced {
            sync_dir(&self.handle.shared.dir)?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    /// Test support: closes the log the way a killed process would. Buffered records are discarded unwritten
    /// (bytes the buffer had already spilled to the file stay, as a torn tail), nothing is flushed or synced,
    /// and the directory lock is released.
    #[doc(hidden)]
    pub fn simulate_crash(mut self) {
        self.failed = Some("simulated crash".to_string());
        // Pending bytes are dropped, never written.
        self.active.pending.clear();
        self.active.written = 0;
    }

    fn fail(&mut self, e: Error) -> Error {
        self.failed.get_or_insert_with(|| e.to_string());
        e
    }

    /// See [`RelayHandle::reader`].
    pub fn reader(&self, from_id: u64) -> Result<RelayReader> {
        self.handle.reader(from_id)
    }
    /// See [`RelayHandle::first_id`].
    pub fn first_id(&self) -> u64 {
        self.handle.first_id()
    }
    /// See [`RelayHandle::last_id`] (last *flushed* id).
    pub fn last_id(&self) -> u64 {
        self.handle.last_id()
    }
    /// See [`RelayHandle::size_bytes`].
    pub fn size_bytes(&self) -> u64 {
        self.handle.size_bytes()
    }
    /// See [`RelayHandle::register`].
    pub fn register(&self, consumer: &str) -> Result<u64> {
        self.handle.register(consumer)
    }
    /// See [`RelayHandle::deregister`].
    pub fn deregister(&self, consumer: &str) -> Result<bool> {
        self.handle.deregister(consumer)
    }
    /// See [`RelayHandle::ack`].
    pub fn ack(&self, consumer: &str, id: u64) -> Result<()> {
        self.handle.ack(consumer, id)
    }
}

impl Drop for RelayLog {
    fn drop(&mut self) {
        if self.failed.is_none() {
            if let Err(e) = self.flush() {
                warn!(error = %e, "relay log: final flush on close failed; unflushed records will be dropped by recovery");
            }
        }
    }
}

/// Creates `relay-<first_id>.log` with its header written to the OS. A full file system is
/// [`Error::NoSpace`], with no file left behind.
fn create_segment(dir: &Path, first_id: u64, options: &RelayOptions) -> Result<ActiveSegment> {
    let path = dir.join(segment_file_name(first_id));
    let no_space = |e: io::Error| Error::NoSpace {
        dir: dir.to_path_buf(),
        pending: SEGMENT_HEADER_LEN,
        source: e,
    };
    let mut file = match OpenOptions::new().append(true).create_new(true).open(&path) {
        Ok(f) => f,
        Err(e) if is_no_space(&e) => return Err(no_space(e)),
        Err(e) => return Err(Error::io("create", &path, e)),
    };
    if let Err(e) = file.write_all(&encode_segment_header(first_id)) {
        let _ = fs::remove_file(&path);
        if is_no_space(&e) {
            return Err(no_space(e));
        }
        return Err(Error::io("write", &path, e));
    }
    if options.sync == SyncPolicy::EveryFlush {
        file.sync_data().map_err(|e| Error::io("fsync", &path, e))?;
        sync_dir(dir)?;
    }
    Ok(ActiveSegment::new(
        path,
        file,
        SEGMENT_HEADER_LEN,
        0,
        options,
    ))
}

const LOCK_FILE: &str = "lock";

/// Takes the single-writer lock on `dir`.
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own and keep open; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                return Err(Error::Locked { path });
            }
            return Err(Error::io("lock", &path, e));
        }
    }
    Ok(file)
}
