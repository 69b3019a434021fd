//! Whether the relay log on disk can serve every service on restart.
//!
//! The relay log covers source positions from its first transaction
//! boundary record (a `Restart`, `Begin.start`, `Commit` or `Progress`) to
//! the last `Commit`/`Progress`. If the oldest service position is inside
//! that range, the reader continues from the end and appliers find their
//! transactions in the relay log, even if the source purged those binlogs.

use crate::error::Result;
use crate::record::Record;
use dropship_mysql::position::Position;
use dropship_relay::RelayLog;

/// `Some(end)` when the relay log covers `oldest`: the reader resumes at `end`.
pub fn covered(relay: &RelayLog, oldest: &Position) -> Result<Option<Position>> {
    if relay.last_id() < relay.first_id() {
        return Ok(None);
    }
    let mut reader = match relay.reader(relay.first_id()) {
        Ok(r) => r,
        Err(_) => return Ok(None),
    };
    let mut from: Option<Position> = None;
    let mut end: Option<Position> = None;
    while let Some((_, bytes)) = reader.next()? {
        let Ok(rec) = Record::decode(&bytes) else {
            return Ok(None);
        };
        match rec {
            Record::Restart { from: p } | Record::Begin { start: p, .. } => {
                if from.is_none() {
                    from = Some(p.clone());
                }
                // A restart re-reads from p: what follows is valid from p on.
                if end.as_ref().is_some_and(|e| p > *e) {
                    // A gap: positions between end and p were never relayed.
                    from = Some(p);
                }
            }
            Record::Commit { pos, .. } | Record::Progress { pos, .. } => {
                if from.is_none() {
                    from = Some(pos.clone());
                }
                end = Some(pos);
            }
            _ => {}
        }
    }
    match (from, end) {
        (Some(f), Some(e)) if f <= *oldest && *oldest <= e => Ok(Some(e)),
        _ => Ok(None),
    }
}
