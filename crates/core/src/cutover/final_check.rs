//! The exact final check of frozen tables: per table, the row count and an
//! order-independent digest computed by each server over its own rows,
//! compared between source and target.
//!
//! Row text: every column as `ISNULL(c)`, `LENGTH(c)` and
//! `CAST(c AS BINARY)` (FLOAT/DOUBLE as `verify::plan::float_expr`, since
//! MySQL's text of a double is not exact), joined by `#`. The byte length before each value makes
//! the text unambiguous (a `#` inside a value cannot shift the fields), and
//! bytes are hashed, not collation-equal text (`'a'` vs `'A'`, trailing
//! spaces all differ). Both sessions use `time_zone = '+00:00'` so TIMESTAMPs
//! render alike. The same column list (the source's) is used on both sides;
//! generated columns are included (both servers compute them).
//!
//! Digest: `dropship_mysql::rowhash` (the same hashes verify uses). When both
//! servers have `CRC32C` (MariaDB 10.8+), the sums of `CRC32(text)` and of
//! `CRC32C(text)` over the table: two independent 32-bit hashes of each row,
//! added as integers (a sum, not a XOR: CRCs are linear over XOR, so
//! XOR-combining them would let structured differences cancel). Otherwise
//! the sums of the two leading 64-bit halves of `SHA2(text, 224)` (MySQL 9.6
//! removed `MD5`). The CRC pair is about 3x cheaper per row than the former
//! HEX + MD5 text on MariaDB 10.11 (200k-row table: 0.62 s vs 1.94 s), which
//! matters because the check runs inside the freeze.
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
    /// The two exact sums of row hashes, as decimal text.
    pub hash: (String, String),
}

pub use dropship_mysql::rowhash::RowHash as HashKind;

fn digest_sql(db: &str, t: &TableSchema, kind: HashKind) -> String {
    let mut parts = Vec::new();
    for c in &t.columns {
        let id = sql::ident(&c.name);
        if matches!(c.data_type.as_str(), "float" | "double" | "real") {
            // MySQL's text of a double drops digits (see `verify::plan`).
            parts.push(format!(
                "ISNULL({id}), {}",
                crate::verify::plan::float_expr(&id)
            ));
        } else {
            parts.push(format!("ISNULL({id}), LENGTH({id}), CAST({id} AS BINARY)"));
        }
    }
    let text = format!("CONCAT_WS('#', {})", parts.join(", "));
    kind.sums_sql(&text, &sql::qualified(db, &t.table))
}

/// Digest of `db.table` (with the columns of `t`) on `conn`.
pub async fn digest(conn: &mut Conn, db: &str, t: &TableSchema, kind: HashKind) -> Result<Digest> {
    conn.query_drop("SET time_zone = '+00:00', SESSION optimizer_switch = 'derived_merge=off'")
        .await
        .map_err(Error::db("preparing the final-check session"))?;
    let row: Option<(u64, String, String)> = conn
        .query_first(digest_sql(db, t, kind))
        .await
        .map_err(Error::db(format!("checksumming {db}.{}", t.table)))?;
    let (rows, a, b) = row.ok_or_else(|| {
        Error::Transient(format!(
            "checksumming {db}.{}: the server returned no row",
            t.table
        ))
    })?;
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
    let kind = dropship_mysql::rowhash::detect(src, tgt).await;
    for t in tables {
        let tdb = svc.target_database(&t.database);
        let (s, d) = tokio::join!(digest(src, &t.database, t, kind), digest(tgt, tdb, t, kind));
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
