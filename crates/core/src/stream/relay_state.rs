//! Whether the relay log on disk can serve every service on restart.
//!
//! The relay log covers source positions from its first transaction
//! boundary record (a `Restart`, `Begin.start`, `Commit` or `Progress`) to
//! the last `Commit`/`Progress`. If the oldest service position is inside
//! that range, the reader continues from the end and appliers find their
//! transactions in the relay log, even if the source purged those binlogs.

use crate::error::{Error, Result};
use crate::stream::record::Record;
use dropship_mysql::position::Position;
use dropship_relay::RelayLog;
use std::path::Path;

/// The file in the state dir naming the source its relay log was read from.
const SOURCE_ID_FILE: &str = "source-id";

/// Claims `state_dir` for the source `identity`: a new state dir records
/// it; one recorded for another source is refused (its relay log holds that
/// source's changes, and positions of one server mean nothing on another).
pub fn claim(state_dir: &Path, identity: &str) -> Result<()> {
    let file = state_dir.join(SOURCE_ID_FILE);
    match std::fs::read_to_string(&file) {
        Ok(found) => {
            let found = found.trim();
            if found == identity {
                return Ok(());
            }
            Err(Error::definite(
                format!(
                    "the state dir {} was filled from another source ({found}); this source is {identity}",
                    state_dir.display()
                ),
                format!(
                    "give this source its own state_dir, or move {} away if the old source is gone (the relay log is then refilled from the positions on the targets)",
                    state_dir.display()
                ),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(state_dir).map_err(Error::io(format!(
                "creating the state dir {}",
                state_dir.display()
            )))?;
            let tmp = state_dir.join(format!("{SOURCE_ID_FILE}.tmp"));
            std::fs::write(&tmp, format!("{identity}\n"))
                .and_then(|()| std::fs::rename(&tmp, &file))
                .map_err(Error::io(format!("writing {}", file.display())))
        }
        Err(e) => Err(Error::io(format!("reading {}", file.display()))(e)),
    }
}

/// `Some(end)` when the relay log covers `oldest`: the reader resumes at `end`.
/// `None` when it does not (it is then reset and refilled from the source).
/// A relay log that cannot be read is an error, never a silent reset: its
/// records may be the only copy of binlogs the source has purged.
pub fn covered(relay: &RelayLog, oldest: &Position, dir: &Path) -> Result<Option<Position>> {
    if relay.last_id() < relay.first_id() {
        return Ok(None);
    }
    let mut reader = relay.reader(relay.first_id())?;
    let mut from: Option<Position> = None;
    let mut end: Option<Position> = None;
    while let Some((id, bytes)) = reader.next()? {
        let rec = Record::decode(&bytes)
            .map_err(|e| crate::stream::record::undecodable(&dir.display().to_string(), id, &e))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use dropship_relay::RelayOptions;

    #[test]
    fn a_state_dir_is_claimed_once_and_refused_to_another_source() {
        let dir = tempfile::tempdir().unwrap();
        claim(dir.path(), "uuid-a").unwrap();
        claim(dir.path(), "uuid-a").unwrap();
        let e = claim(dir.path(), "uuid-b").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("uuid-a") && text.contains("uuid-b"), "{text}");
        assert!(
            e.hint().is_some_and(|h| h.contains("own state_dir")),
            "{e:?}"
        );
    }

    #[test]
    fn a_record_that_cannot_be_decoded_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let mut relay = RelayLog::open(dir.path(), RelayOptions::default()).unwrap();
        let p = Position::new("bin.000001", 4);
        relay
            .append(&Record::Restart { from: p.clone() }.encode())
            .unwrap();
        relay
            .append(
                &Record::Progress {
                    pos: Position::new("bin.000001", 900),
                    ts: 1,
                }
                .encode(),
            )
            .unwrap();
        relay.flush().unwrap();
        assert_eq!(
            covered(&relay, &p, dir.path()).unwrap(),
            Some(Position::new("bin.000001", 900))
        );
        relay.append(b"\xff\xffnot a record").unwrap();
        relay.flush().unwrap();
        let e = covered(&relay, &p, dir.path()).unwrap_err();
        assert!(e.to_string().contains("cannot be decoded"), "{e}");
        assert!(
            e.hint().is_some_and(|h| h.contains("move that folder")),
            "{e:?}"
        );
    }
}
