//! Live counters shared between the flow and the control endpoint. Plain
//! atomics: cheap on the hot path, read by `/metrics` and `/status`.
//!
//! Who feeds what: the reader feeds [`ReaderStats`]; each service's applier
//! and copy feed its [`ServiceStats`]; the throttle task sets
//! [`ServiceStats::throttled`], which copy and apply check. `verify` (built
//! separately) feeds `verify_rows` and `verify_differences`, exported as
//! `dropship_verify_rows_total{service}` and
//! `dropship_verify_differences_total{service}`.
//!
//! Invariant: only counters and gauges live here, nothing a decision depends
//! on except the throttle flag; a poisoned lock reads as empty.

use crate::error::Error;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the `dropship_batch_rows` histogram buckets (+Inf implied).
pub const BATCH_BUCKETS: [u64; 7] = [1, 10, 100, 1_000, 5_000, 10_000, 50_000];

#[derive(Default)]
pub struct ServiceStats {
    pub rows_inserted: AtomicU64,
    pub rows_updated: AtomicU64,
    pub rows_deleted: AtomicU64,
    pub transactions: AtomicU64,
    /// Committed target transactions that carried rows (histogram count).
    pub batches: AtomicU64,
    /// Rows in those batches (histogram sum).
    pub batch_rows_total: AtomicU64,
    /// Per-bucket (non-cumulative) counts for [`BATCH_BUCKETS`] plus +Inf.
    pub batch_buckets: [AtomicU64; BATCH_BUCKETS.len() + 1],
    pub rows_copied: AtomicU64,
    /// Estimated rows to copy (0 = unknown).
    pub copy_rows_total: AtomicU64,
    /// Rows compared by `verify` (fed by the verify module).
    pub verify_rows: AtomicU64,
    /// Differing rows found by `verify`.
    pub verify_differences: AtomicU64,
    /// All errors; per kind in `errors_by_kind`.
    pub errors: AtomicU64,
    pub errors_by_kind: Mutex<BTreeMap<&'static str, u64>>,
    /// Source commit time (epoch s) of the last applied transaction, 0 = none.
    pub last_source_ts: AtomicI64,
    /// Wall time (epoch s) when `last_source_ts` was observed as current:
    /// lets lag stay exact while the source is idle (see `lag_seconds`).
    pub caught_up_at: AtomicI64,
    /// Set by the throttle task: copy and apply wait while it is true.
    pub throttled: AtomicBool,
    pub throttle_reason: Mutex<String>,
    /// Milliseconds spent waiting because of throttling.
    pub throttled_ms: AtomicU64,
    /// `Seconds_Behind_Master` of the target, valid when `target_replica_lag_known`.
    pub target_replica_lag: AtomicI64,
    pub target_replica_lag_known: AtomicBool,
    pub state: Mutex<Option<crate::state::ServiceState>>,
    pub last_error: Mutex<String>,
    pub position: Mutex<String>,
    /// Target connection id of a write the applier abandoned as stalled
    /// (0 = none): the next applier kills it before it reads its position.
    pub abandoned_conn: AtomicU64,
}

impl ServiceStats {
    pub fn set_state(&self, s: crate::state::ServiceState) {
        if let Ok(mut g) = self.state.lock() {
            *g = Some(s);
        }
    }
    /// `None` until the service's controller has set one.
    pub fn state(&self) -> Option<crate::state::ServiceState> {
        self.state.lock().ok().and_then(|g| *g)
    }
    pub fn set_error(&self, e: &str) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e.to_string();
        }
    }
    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
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
        self.rows_inserted.load(Relaxed)
            + self.rows_updated.load(Relaxed)
            + self.rows_deleted.load(Relaxed)
    }

    /// Records one committed batch of `rows` rows.
    pub fn observe_batch(&self, rows: u64) {
        self.batches.fetch_add(1, Relaxed);
        self.batch_rows_total.fetch_add(rows, Relaxed);
        let i = BATCH_BUCKETS
            .iter()
            .position(|&b| rows <= b)
            .unwrap_or(BATCH_BUCKETS.len());
        self.batch_buckets[i].fetch_add(1, Relaxed);
    }

    /// Counts an error under its kind (see [`error_kind`]).
    pub fn count_error(&self, e: &Error) {
        self.errors.fetch_add(1, Relaxed);
        if let Ok(mut g) = self.errors_by_kind.lock() {
            *g.entry(error_kind(e)).or_default() += 1;
        }
    }

    pub fn errors_by_kind(&self) -> BTreeMap<&'static str, u64> {
        self.errors_by_kind
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    pub fn throttle_reason(&self) -> String {
        self.throttle_reason
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    pub fn is_throttled(&self) -> bool {
        self.throttled.load(Relaxed)
    }

    /// Waits while the service is throttled (copy calls this between chunks).
    pub async fn wait_unthrottled(&self) {
        while self.is_throttled() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.throttled_ms.fetch_add(100, Relaxed);
        }
    }
}

#[derive(Default)]
pub struct ReaderStats {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    pub reconnects: AtomicU64,
    pub errors_by_kind: Mutex<BTreeMap<&'static str, u64>>,
    /// Source commit time of the newest transaction read, or the time of the
    /// source's last heartbeat event (sent when it has nothing newer).
    pub last_source_ts: AtomicI64,
    /// Heartbeat rows written to / seen from the source.
    pub heartbeats_written: AtomicU64,
    pub heartbeats_read: AtomicU64,
    pub position: Mutex<String>,
    /// Reading is paused because the relay log has no room (1) or not (0).
    pub relay_full: AtomicU64,
}

impl ReaderStats {
    pub fn count_error(&self, e: &Error) {
        if let Ok(mut g) = self.errors_by_kind.lock() {
            *g.entry(error_kind(e)).or_default() += 1;
        }
    }
    pub fn errors_by_kind(&self) -> BTreeMap<&'static str, u64> {
        self.errors_by_kind
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }
}

/// A small fixed set of error kinds for the `kind` label: `transient`
/// (connection lost, server restarting, deadlock: retried), `database`
/// (other server errors), `definite` (a human must act), `config`, `relay`,
/// `io`.
pub fn error_kind(e: &Error) -> &'static str {
    if e.is_transient() {
        return "transient";
    }
    match e {
        Error::Config(_) => "config",
        Error::Db { .. } => "database",
        Error::Definite { .. } => "definite",
        Error::Transient(_) => "transient",
        Error::Relay(_) => "relay",
        Error::Io { .. } => "io",
        Error::SchemaChangedDuringCopy(_) => "schema_change",
        Error::RelayFull(_) => "relay",
        Error::Preflight(e) => error_kind(e),
    }
}

pub fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_land_in_the_smallest_bucket_that_holds_them() {
        let s = ServiceStats::default();
        for n in [1, 2, 10, 5000, 5001, 1_000_000] {
            s.observe_batch(n);
        }
        let b: Vec<u64> = s.batch_buckets.iter().map(|x| x.load(Relaxed)).collect();
        assert_eq!(b, vec![1, 2, 0, 0, 1, 1, 0, 1]);
        assert_eq!(s.batches.load(Relaxed), 6);
        assert_eq!(
            s.batch_rows_total.load(Relaxed),
            1 + 2 + 10 + 5000 + 5001 + 1_000_000
        );
    }

    #[test]
    fn errors_are_counted_by_kind() {
        let s = ServiceStats::default();
        s.count_error(&Error::Transient("x".into()));
        s.count_error(&Error::definite("y", "z"));
        s.count_error(&Error::definite("y", "z"));
        let k = s.errors_by_kind();
        assert_eq!(k.get("transient"), Some(&1));
        assert_eq!(k.get("definite"), Some(&2));
        assert_eq!(s.errors.load(Relaxed), 3);
    }
}
