//! Verify progress: stored per table in `_dropship.verify_progress` on the
//! target (migration V2) so an interrupted run resumes, and shown as a
//! rate/ETA line on stderr when it is a terminal.
//!
//! Invariant: the stored `last_key` and `result` cover exactly the chunks up
//! to `last_key`, all finished (chunks finish out of order; only the
//! contiguous prefix is stored). A resumed run starts after `last_key` with
//! that `result`, so nothing is counted twice. A run that finishes deletes
//! its rows: the next run starts from the beginning.

use super::report::TableReport;
use crate::error::{Error, Result};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// What an interrupted run had finished for one table.
#[derive(Debug, Clone)]
pub struct Saved {
    pub last_key: Option<Vec<String>>,
    pub done: bool,
    pub report: TableReport,
}

/// Saved progress of the service's interrupted run, by source `db.table`.
pub async fn load(tgt: &mut Conn, service: &str) -> Result<HashMap<String, Saved>> {
    let rows: Vec<(String, Option<String>, bool, String)> = tgt
        .exec("SELECT table_name, last_key, done, result FROM `_dropship`.`verify_progress` WHERE service = ?", (service,))
        .await
        .map_err(Error::db("reading verify progress"))?;
    let mut out = HashMap::new();
    for (table, key, done, result) in rows {
        // Unreadable progress (written by another version) means: start that table over.
        let Ok(report) = serde_json::from_str::<TableReport>(&result) else {
            continue;
        };
        let last_key = match key {
            Some(k) => match serde_json::from_str::<Vec<String>>(&k) {
                Ok(k) => Some(k),
                Err(_) => continue,
            },
            None => None,
        };
        out.insert(
            table,
            Saved {
                last_key,
                done,
                report,
            },
        );
    }
    Ok(out)
}

pub async fn save(
    tgt: &mut Conn,
    service: &str,
    table: &str,
    last_key: Option<&Vec<String>>,
    done: bool,
    report: &TableReport,
) -> Result<()> {
    let key = last_key.map(|k| serde_json::to_string(k).unwrap_or_default());
    let result = serde_json::to_string(report).unwrap_or_default();
    tgt.exec_drop(
        "INSERT INTO `_dropship`.`verify_progress` (service, table_name, last_key, done, result) VALUES (?, ?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE last_key = VALUES(last_key), done = VALUES(done), result = VALUES(result)",
        (service, table, key, done, result),
    )
    .await
    .map_err(Error::db("recording verify progress"))
}

/// Forgets the progress of a finished run (or of `--restart`).
pub async fn clear(tgt: &mut Conn, service: &str) -> Result<()> {
    tgt.exec_drop(
        "DELETE FROM `_dropship`.`verify_progress` WHERE service = ?",
        (service,),
    )
    .await
    .map_err(Error::db("clearing verify progress"))
}

/// A `rows, rate, ETA` line on stderr, redrawn at most once a second.
pub struct Line {
    enabled: bool,
    started: Instant,
    last: Instant,
    total_estimate: u64,
    drawn: bool,
}

impl Line {
    pub fn new(enabled: bool, total_estimate: u64) -> Line {
        let now = Instant::now();
        Line {
            enabled,
            started: now,
            last: now,
            total_estimate,
            drawn: false,
        }
    }

    pub fn tick(&mut self, table: &str, rows: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = rows as f64 / secs;
        let eta = if rate > 0.0 && self.total_estimate > rows {
            format!("{:.0}s", (self.total_estimate - rows) as f64 / rate)
        } else {
            "-".into()
        };
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\r\x1b[2Kverify {table}: {rows} of ~{} rows, {rate:.0} rows/s, ETA {eta}",
            self.total_estimate
        );
        let _ = e.flush();
        self.drawn = true;
    }

    pub fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr().lock());
            self.drawn = false;
        }
    }
}
