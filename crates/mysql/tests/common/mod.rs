//! Shared helpers for the corpus tests: where the fixtures are, and reading
//! a file into (header, event) pairs plus the error that stopped it.

#![allow(dead_code)]

use dropship_mysql::binlog::{file, DecodeError};
use dropship_mysql::{Event, EventHeader};
use std::path::PathBuf;

/// The fixtures folder: `$DROPSHIP_FIXTURES`, else `<workspace>/../shared/fixtures/binlogs`.
/// `None` (after printing a note) when it is absent, so tests pass without it.
pub fn fixtures() -> Option<PathBuf> {
    let dir = match std::env::var_os("DROPSHIP_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/binlogs"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: fixtures folder absent ({})", dir.display());
        None
    }
}

pub struct Decoded {
    pub events: Vec<(EventHeader, Event)>,
    pub error: Option<DecodeError>,
}

pub fn decode_file(path: &std::path::Path) -> Decoded {
    let mut events = Vec::new();
    let mut sink = |h: EventHeader, e: Event| -> Result<(), DecodeError> {
        events.push((h, e));
        Ok(())
    };
    let error = file::read_file(path, &mut sink).err();
    Decoded { events, error }
}

/// Every binlog file of the corpus (not the expected-output texts).
pub fn corpus_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .map(|b| b.starts_with(&[0xfe, b'b', b'i', b'n']))
                .unwrap_or(false)
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
