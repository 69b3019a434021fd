//! Source positions. A [`Position`] is a transaction boundary in the source's
//! binlog: the file and the offset just after the transaction's last event,
//! plus the GTID state at that point when the source uses GTIDs.
//!
//! Ordering compares the file's numeric suffix and then the offset, so it is
//! only meaningful between positions of one source server.

use crate::flavor::Flavor;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Ordered and compared by file and offset only: the GTID state rides along
/// (two readings of one offset may differ in whether they know it), so
/// `a == b` exactly when `a.cmp(b)` is `Equal`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Position {
    pub file: String,
    pub pos: u64,
    /// GTID state after this transaction (`@@gtid_executed` form on MySQL,
    /// `gtid_binlog_pos` form on MariaDB); empty when unknown.
    pub gtid: String,
}

impl Position {
    pub fn new(file: impl Into<String>, pos: u64) -> Position {
        Position {
            file: file.into(),
            pos,
            gtid: String::new(),
        }
    }

    /// Numeric suffix of the binlog file name (`mysql-bin.000042` -> 42).
    pub fn file_index(&self) -> u64 {
        file_index(&self.file)
    }
}

/// Numeric suffix of a binlog file name; 0 if it has none.
pub fn file_index(file: &str) -> u64 {
    file.rsplit('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.file_index(), self.pos, &self.file).cmp(&(other.file_index(), other.pos, &other.file))
    }
}

impl PartialEq for Position {
    fn eq(&self, other: &Self) -> bool {
        self.pos == other.pos && self.file == other.file
    }
}

impl Eq for Position {}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if !self.gtid.is_empty() {
            write!(f, " ({})", self.gtid)?;
        }
        Ok(())
    }
}

/// What the server said its binlog position is
/// ([`Flavor::show_binlog_status`]).
#[derive(Debug, Clone, PartialEq)]
pub enum BinlogStatus {
    /// The statement returned no row: the binary log is off.
    Off,
    /// A row without a usable file name or offset.
    Unusable {
        file: Option<String>,
        pos: Option<u64>,
    },
    At(Position),
}

/// Reads the server's current binlog position and GTID state. On MySQL the
/// GTID set is `Executed_Gtid_Set` from the same statement as file and
/// offset: a separate `SELECT @@gtid_executed` could include transactions
/// committed after that offset, which a resume by GTID would skip. MariaDB's
/// statement has no GTID column: `@@GLOBAL.gtid_binlog_pos` is read next.
pub async fn current<C: Queryable>(
    conn: &mut C,
    flavor: &Flavor,
) -> Result<BinlogStatus, mysql_async::Error> {
    let row: Option<mysql_async::Row> = conn.query_first(flavor.show_binlog_status()).await?;
    let Some(row) = row else {
        return Ok(BinlogStatus::Off);
    };
    let (file, pos) = match (
        row.get::<Option<String>, _>(0).flatten(),
        row.get::<Option<u64>, _>(1).flatten(),
    ) {
        (Some(f), Some(p)) if !f.is_empty() => (f, p),
        (file, pos) => return Ok(BinlogStatus::Unusable { file, pos }),
    };
    let gtid: String = if flavor.is_mariadb() {
        conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos")
            .await?
            .unwrap_or_default()
    } else {
        row.get::<Option<String>, _>(4)
            .flatten()
            .unwrap_or_default()
    };
    Ok(BinlogStatus::At(Position {
        file,
        pos,
        gtid: gtid.replace('\n', ""),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_and_order_agree_and_ignore_the_gtid() {
        let plain = Position::new("bin.000002", 400);
        let with_gtid = Position {
            gtid: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5".into(),
            ..plain.clone()
        };
        assert_eq!(plain, with_gtid);
        assert_eq!(plain.cmp(&with_gtid), Ordering::Equal);
        // Same file number, another base name: neither equal nor Equal.
        let other = Position::new("mysql-bin.000002", 400);
        assert_ne!(plain, other);
        assert_ne!(plain.cmp(&other), Ordering::Equal);
        assert!(Position::new("bin.000003", 4) > with_gtid);
    }

    #[test]
    fn positions_order_by_file_number_then_offset() {
        let a = Position::new("bin.000009", 900);
        let b = Position::new("bin.000010", 4);
        assert!(a < b);
        assert!(Position::new("bin.000010", 5) > b);
    }
}
