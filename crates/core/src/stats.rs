//! Live counters shared between the flow and the control endpoint. Plain
//! atomics: cheap on the hot path, read by `/metrics` and `/status`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Default)]
pub struct ServiceStats {
    pub rows_inserted: AtomicU64,
    pub rows_updated: AtomicU64,
    pub rows_deleted: AtomicU64,
    pub transactions: AtomicU64,
    pub batches: AtomicU64,
    pub batch_rows_total: AtomicU64,
    pub rows_copied: AtomicU64,
    pub copy_rows_total: AtomicU64,
    pub errors: AtomicU64,
    /// Source commit time (epoch s) of the last applied transaction, 0 = none.
    pub last_source_ts: AtomicI64,
    /// Wall time (epoch s) when `last_source_ts` was observed as current:
    /// lets lag stay exact while the source is idle (see `lag_seconds`).
    pub caught_up_at: AtomicI64,
    pub state: Mutex<String>,
    pub last_error: Mutex<String>,
    pub position: Mutex<String>,
}

impl ServiceStats {
    pub fn set_state(&self, s: &str) {
        if let Ok(mut g) = self.state.lock() {
            *g = s.to_string();
        }
    }
    pub fn state(&self) -> String {
        self.state.lock().map(|g| g.clone()).unwrap_or_default()
    }
    pub fn set_error(&self, e: &str) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e.to_string();
        }
    }
    pub fn last_error(&self) -> String {
        self.last_error.lock().map(|g| g.clone()).unwrap_or_default()
    }
    pub fn set_position(&self, p: &str) {
        if let Ok(mut g) = self.position.lock() {
            *g = p.to_string();
        }
    }
    pub fn position(&self) -> String {
        self.position.lock().map(|g| g.clone()).unwrap_or_default()
    }
    pub fn rows_applied(&self) -> u64 {
        self.rows_inserted.load(Relaxed) + self.rows_updated.load(Relaxed) + self.rows_deleted.load(Relaxed)
    }
}

#[derive(Default)]
pub struct ReaderStats {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    pub reconnects: AtomicU64,
    /// Source commit time of the newest transaction read.
    pub last_source_ts: AtomicI64,
    pub position: Mutex<String>,
}

pub fn now_epoch() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
