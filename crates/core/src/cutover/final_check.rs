//! The exact final check of frozen tables: per table, the row count and a
//! 128-bit order-independent digest computed by each server over its own
//! rows, compared between source and target.
//!
//! Digest: for each row, `MD5` of every column as `ISNULL(c)` and
//! `HEX(CAST(c AS BINARY))` joined by `#` (hex digits never contain `#`, so
//! different rows cannot produce the same text); the two 64-bit halves of the
//! MD5 are each combined with `BIT_XOR` over the table. Rows are unique by
//! their key, so XOR cannot cancel two equal rows. Bytes are hashed, not
//! collation-equal text (`'a'` vs `'A'`, trailing spaces all differ). Both
//! sessions use `time_zone = '+00:00'` so TIMESTAMPs render alike. The same
//! column list (the source's) is used on both sides; generated columns are
//! included (both servers compute them).
//!
//! Exact while writes are frozen: with live writes the result means nothing,
//! which is why `--dry-run` only times it. Numbers render through the server's
//! own text conversion, so this is exact between servers of the same flavor
//! and version family (the `verify` module can replace it for mixed fleets).
//! Cost: one full scan of each table on each server, in parallel.

use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use dropship_mysql::schema::TableSchema;
use dropship_mysql::sql;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::Arc;

/// Count and digest of one table on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub rows: u64,
    pub hash: (u64, u64),
}

fn digest_sql(db: &str, t: &TableSchema) -> String {
    let mut parts = Vec::new();
    for c in &t.columns {
        let id = sql::ident(&c.name);
        parts.push(format!("ISNULL({id}), HEX(CAST({id} AS BINARY))"));
    }
    format!(
        "SELECT COUNT(*), CAST(COALESCE(BIT_XOR(CAST(CONV(SUBSTRING(h, 1, 16), 16, 10) AS UNSIGNED)), 0) AS UNSIGNED), \
         CAST(COALESCE(BIT_XOR(CAST(CONV(SUBSTRING(h, 17, 16), 16, 10) AS UNSIGNED)), 0) AS UNSIGNED) \
         FROM (SELECT MD5(CONCAT_WS('#', {})) AS h FROM {}) AS d",
        parts.join(", "),
        sql::qualified(db, &t.table)
    )
}

/// Digest of `db.table` (with the columns of `t`) on `conn`.
pub async fn digest(conn: &mut Conn, db: &str, t: &TableSchema) -> Result<Digest> {
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .map_err(Error::db("preparing the final-check session"))?;
    let row: Option<(u64, u64, u64)> = conn
        .query_first(digest_sql(db, t))
        .await
        .map_err(Error::db(format!("checksumming {db}.{}", t.table)))?;
    let (rows, a, b) = row.unwrap_or((0, 0, 0));
    Ok(Digest { rows, hash: (a, b) })
}

/// One table whose copies differ.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub table: String,
    pub source: Digest,
    pub target: Digest,
}

/// Compares every table of the service; returns the tables that differ
/// and the number of rows checked.
pub async fn compare(
    svc: &ServiceConfig,
    tables: &[Arc<TableSchema>],
    src: &mut Conn,
    tgt: &mut Conn,
) -> Result<(Vec<Mismatch>, u64)> {
    let mut bad = Vec::new();
    let mut rows = 0;
    for t in tables {
        let tdb = svc.target_database(&t.database);
        let (s, d) = tokio::join!(digest(src, &t.database, t), digest(tgt, tdb, t));
        let (s, d) = (s?, d?);
        rows += s.rows;
        if s != d {
            bad.push(Mismatch {
                table: format!("{}.{}", t.database, t.table),
                source: s,
                target: d,
            });
        }
    }
    Ok((bad, rows))
}
