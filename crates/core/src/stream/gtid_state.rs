//! The GTID state the reader carries in each position: MariaDB's
//! `gtid_binlog_pos` form (one `domain-server-seq` per domain) or MySQL's
//! executed set (`uuid:1-100:200-300`). The GTID arithmetic lives in
//! `dropship_mysql::gtid`; this picks the flavor's form and is lenient: an
//! unparseable state starts empty rather than stopping replication. A MySQL
//! reader resumes by this set (GTID auto-position) only when it is the whole
//! executed set; an empty or partial one resumes by file and offset (see
//! `reader.rs`).

use dropship_mysql::gtid::{GtidSet, MariaDbPosition};
use dropship_mysql::Gtid;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidState {
    MySql(GtidSet),
    MariaDb(MariaDbPosition),
}

impl GtidState {
    /// Parses a state in the flavor's form.
    pub fn parse(mariadb: bool, s: &str) -> GtidState {
        if mariadb {
            GtidState::MariaDb(MariaDbPosition::parse(s).unwrap_or_default())
        } else {
            GtidState::MySql(GtidSet::parse(s).unwrap_or_default())
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            GtidState::MySql(s) => s.is_empty(),
            GtidState::MariaDb(p) => p.is_empty(),
        }
    }

    /// Adds a transaction's GTID (one of the other flavor is ignored).
    pub fn add(&mut self, g: &Gtid) {
        match (self, g) {
            (GtidState::MySql(s), Gtid::MySql { .. }) => s.add(g),
            (GtidState::MariaDb(p), Gtid::MariaDb { .. }) => p.update(g),
            _ => {}
        }
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidState::MySql(s) => s.fmt(f),
            GtidState::MariaDb(p) => p.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_state_keeps_the_last_seq_per_domain() {
        let mut s = GtidState::parse(true, "0-1-100,1-2-5");
        s.add(&Gtid::MariaDb {
            domain: 0,
            server: 1,
            seq: 101,
        });
        assert_eq!(s.to_string(), "0-1-101,1-2-5");
    }

    #[test]
    fn mysql_sets_extend_intervals_in_order() {
        let mut s = GtidState::parse(false, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5");
        let uuid =
            dropship_mysql::gtid::parse_uuid("3e11fa47-71ca-11e1-9e33-c80aa9429562").unwrap();
        s.add(&Gtid::MySql {
            uuid,
            tag: None,
            gno: 6,
        });
        s.add(&Gtid::MySql {
            uuid,
            tag: None,
            gno: 9,
        });
        assert_eq!(s.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-6:9");
    }
}
