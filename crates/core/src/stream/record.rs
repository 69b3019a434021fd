//! What the reader writes to the relay log and the appliers read back: one
//! [`Record`] per relay log entry, encoded with postcard.
//!
//! Why postcard: a maintained, serde-based compact binary format with a
//! stable, documented wire format (1.0), no schema files, and zero-copy-free
//! simplicity; `bincode` 3 is an empty release. Variant order is part of the
//! on-disk format: do not reorder variants or fields, only append.
//!
//! A source transaction appears as `Begin`, then `Rows`/`Ddl` records, then
//! `Commit`. Transactions that touch no mapped table are not written; the
//! reader writes `Progress` instead so that positions keep moving. A
//! `Restart` record means the reader reconnected and re-reads from `from`:
//! any transaction left open before it is abandoned (it will come again).

use dropship_mysql::position::Position;
use dropship_mysql::RowChange;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Restart {
        from: Position,
    },
    /// `start` is the position just before the transaction (the previous boundary).
    Begin {
        gtid: String,
        ts: u32,
        start: Position,
    },
    Rows(RowsRecord),
    Ddl(DdlRecord),
    Commit {
        pos: Position,
        ts: u32,
    },
    Progress {
        pos: Position,
        ts: u32,
    },
}

/// Changed rows of one table, with the column names of the images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowsRecord {
    pub database: String,
    pub table: String,
    /// Shared: the reader builds it once per table map.
    pub columns: Arc<[String]>,
    pub changes: Vec<RowChange>,
}

/// A schema change on mapped tables, in order with the rows around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DdlRecord {
    /// The session's default database when the statement ran.
    pub database: String,
    pub sql: String,
    /// Source tables the statement touches (`db`, `table`), as parsed.
    pub tables: Vec<(String, String)>,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        postcard::from_bytes(bytes)
            .map_err(|e| format!("undecodable relay record ({} bytes): {e}", bytes.len()))
    }
}

/// The error for relay record `id` of the relay log in `dir` that cannot be
/// decoded (`e`): one wording and way out wherever the relay log is read.
pub fn undecodable(dir: &str, id: u64, e: &str) -> crate::error::Error {
    crate::error::Error::definite(
        format!("relay log {dir}: record {id} cannot be decoded ({e})"),
        "the relay log is damaged or was written by another dropship version: stop dropship, move that folder \
         away (keep it until the services run again) and start again; dropship then reads from the source, \
         which must still hold the binlogs from the oldest service position (`dropship status` shows them)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropship_mysql::{RowImage, RowKind, Value};

    #[test]
    fn records_round_trip_through_postcard() {
        let r = Record::Rows(RowsRecord {
            database: "shop".into(),
            table: "users".into(),
            columns: vec!["id".to_string(), "name".to_string()].into(),
            changes: vec![RowChange {
                kind: RowKind::Insert,
                before: None,
                after: Some(RowImage {
                    values: vec![Value::UInt(7), Value::Bytes(vec![0, 255])],
                    missing: vec![],
                    partial_json: vec![],
                }),
            }],
        });
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        assert!(Record::decode(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn byte_values_keep_the_relay_format_of_a_byte_sequence() {
        let b: Vec<u8> = (0..=255u8).chain(0..44).collect();
        // Variant 6, then what serde's default (a sequence of u8) wrote.
        let mut want = vec![6u8];
        want.extend(postcard::to_allocvec(&b).unwrap());
        let v = Value::Bytes(b);
        let enc = postcard::to_allocvec(&v).unwrap();
        assert_eq!(enc, want);
        assert_eq!(postcard::from_bytes::<Value>(&enc).unwrap(), v);
        assert_eq!(
            postcard::from_bytes::<Value>(&[6, 0]).unwrap(),
            Value::Bytes(vec![])
        );
    }

    #[test]
    fn shared_column_names_keep_the_relay_format_of_a_vec() {
        let names = vec!["id".to_string(), "name".to_string()];
        let shared: Arc<[String]> = names.clone().into();
        assert_eq!(
            postcard::to_allocvec(&shared).unwrap(),
            postcard::to_allocvec(&names).unwrap()
        );
    }
}
