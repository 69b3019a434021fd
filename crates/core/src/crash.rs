//! Named crash points for tests: `DROPSHIP_CRASH_AT=<point>` (or
//! `<point>#<n>`, the n-th time the point is reached, from 1) makes the
//! process abort there, as a kill -9 or a power cut would, between two steps
//! whose order the recovery depends on. Unset, a point costs one relaxed
//! atomic load.
//!
//! Points, in data-flow order (`POINTS`; the cutover's are in
//! `cutover::journal`):
//! - `reader:commit-relayed`: a transaction's COMMIT is in the relay log, not
//!   yet flushed;
//! - `copy:chunk-committed`: a chunk's rows and its range's progress row
//!   committed on the target;
//! - `copy:range-written`: a range's last chunk committed, its done mark not
//!   yet written;
//! - `copy:end-copied`: every range done, the copy end not yet recorded;
//! - `copy:end-recorded`: the copy end recorded, the state not yet
//!   `replicating`;
//! - `apply:batch-committed`: a batch committed on the target with its
//!   position, the relay log not yet acknowledged;
//! - `apply:ddl-applied`: a DDL applied on the target, its position not yet
//!   committed.
//!
//! Invariant (tests/e2e/crash.rs walks every point): after an abort at any of
//! them, the next `replicate` ends with targets equal to the source.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;

/// Every named point outside the cutover.
pub const POINTS: [&str; 7] = [
    "reader:commit-relayed",
    "copy:chunk-committed",
    "copy:range-written",
    "copy:end-copied",
    "copy:end-recorded",
    "apply:batch-committed",
    "apply:ddl-applied",
];

/// 0: not read yet, 1: no crash asked, 2: a crash asked.
static STATE: AtomicU8 = AtomicU8::new(0);
static WANT: OnceLock<(String, u64)> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

/// Aborts the process if `DROPSHIP_CRASH_AT` names `point` and this is the
/// asked-for time it is reached.
pub fn point(point: &str) {
    let state = match STATE.load(Relaxed) {
        0 => {
            let want = std::env::var("DROPSHIP_CRASH_AT")
                .ok()
                .map(|v| match v.split_once('#') {
                    Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
                    None => (v, 1),
                });
            let s = match want {
                Some(w) if POINTS.contains(&w.0.as_str()) => {
                    let _ = WANT.set(w);
                    2
                }
                _ => 1,
            };
            STATE.store(s, Relaxed);
            s
        }
        s => s,
    };
    if state != 2 {
        return;
    }
    if let Some((name, n)) = WANT.get() {
        if name == point && HITS.fetch_add(1, Relaxed) + 1 == *n {
            eprintln!("DROPSHIP_CRASH_AT={point}#{n}: aborting here");
            std::process::abort();
        }
    }
}
