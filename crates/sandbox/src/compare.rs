//! Row-by-row, column-by-column comparison of one table on two servers, as stored.
//!
//! Both sides are read with `SELECT CAST(col AS BINARY), ... ORDER BY <primary key>` over every column in
//! ordinal order (generated and `INVISIBLE` columns included, since they are named explicitly), so values are
//! compared as bytes, not as a collation sees them: `'a'` and `'A'` differ, `0x00` padding counts, a float differs
//! if its stored bits differ. NULL is distinct from every byte string.
//!
//! Both sessions read in UTC, so TIMESTAMPs compare by stored instant. The
//! column lists (names and types) must match first; types compare as `translate::same_column_type` does, so
//! MariaDB's `int(11)` equals MySQL's `int`, and a JSON column on one side may be MariaDB's LONGTEXT on the
//! other. JSON values compare as parsed documents (MySQL stores them normalized, MariaDB as written). The result names the first difference: a missing or
//! extra row, or the primary key and column of the first differing value. Tables without a primary key are
//! ordered by all columns. Used by every replication test; it reads whole tables, so it is meant for test-sized
//! data.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use crate::sql::{ident, qualified, to_hex};

/// Checks that `src_db.table` on `src` and `dst_db.table` on `dst` hold identical rows. On a difference returns a
/// message naming the table, the first differing primary key and column, and both values.
pub async fn assert_tables_identical(
    src: &mut Conn,
    src_db: &str,
    dst: &mut Conn,
    dst_db: &str,
    table: &str,
) -> Result<(), String> {
    let name = format!("{src_db}.{table} vs {dst_db}.{table}");
    // TIMESTAMP renders in the session time zone: read both sides in UTC so a
    // source running at +05:30 compares by stored instant, not by text.
    for (side, conn) in [("source", &mut *src), ("target", &mut *dst)] {
        conn.query_drop("SET time_zone = '+00:00'")
            .await
            .map_err(|e| format!("{name}: setting the {side} session time zone: {e}"))?;
    }
    let src_cols = columns(src, src_db, table)
        .await
        .map_err(|e| format!("{name}: reading source columns: {e}"))?;
    let dst_cols = columns(dst, dst_db, table)
        .await
        .map_err(|e| format!("{name}: reading target columns: {e}"))?;
    if src_cols.is_empty() {
        return Err(format!(
            "{name}: table {src_db}.{table} does not exist on the source"
        ));
    }
    if dst_cols.is_empty() {
        return Err(format!(
            "{name}: table {dst_db}.{table} does not exist on the target"
        ));
    }
    let same = |a: &(String, String), b: &(String, String)| {
        a.0 == b.0
            && dropship_mysql::translate::same_column_type(&base(&a.1), &a.1, &base(&b.1), &b.1)
    };
    if src_cols.len() != dst_cols.len() || src_cols.iter().zip(&dst_cols).any(|(a, b)| !same(a, b))
    {
        let first = src_cols
            .iter()
            .zip(dst_cols.iter())
            .position(|(a, b)| !same(a, b))
            .unwrap_or(src_cols.len().min(dst_cols.len()));
        return Err(format!(
            "{name}: columns differ at position {}: source {:?}, target {:?}",
            first + 1,
            src_cols.get(first),
            dst_cols.get(first)
        ));
    }
    let mut key = primary_key(src, src_db, table)
        .await
        .map_err(|e| format!("{name}: reading the primary key: {e}"))?;
    if key.is_empty() {
        key = src_cols.iter().map(|(n, _)| n.clone()).collect();
    }
    let key_idx: Vec<usize> = key
        .iter()
        .filter_map(|k| src_cols.iter().position(|(n, _)| n == k))
        .collect();
    let select = |db: &str| {
        let cols: Vec<String> = src_cols
            .iter()
            .map(|(n, _)| format!("CAST({} AS BINARY)", ident(n)))
            .collect();
        let order: Vec<String> = key.iter().map(|k| ident(k)).collect();
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            qualified(db, table),
            order.join(", ")
        )
    };
    let (qs, qd) = (select(src_db), select(dst_db));
    let mut rs = src
        .query_iter(qs)
        .await
        .map_err(|e| format!("{name}: reading source rows: {e}"))?;
    let mut rd = dst
        .query_iter(qd)
        .await
        .map_err(|e| format!("{name}: reading target rows: {e}"))?;
    let mut n: u64 = 0;
    loop {
        let a: Option<Row> = rs
            .next()
            .await
            .map_err(|e| format!("{name}: reading source rows: {e}"))?;
        let b: Option<Row> = rd
            .next()
            .await
            .map_err(|e| format!("{name}: reading target rows: {e}"))?;
        n += 1;
        let (a, b) = match (a, b) {
            (None, None) => return Ok(()),
            (Some(a), None) => {
                return Err(format!(
                    "{name}: row {} is missing on the target (target has {} rows)",
                    describe_key(&key, &key_idx, &a),
                    n - 1
                ))
            }
            (None, Some(b)) => {
                return Err(format!(
                    "{name}: target has an extra row {} (source has {} rows)",
                    describe_key(&key, &key_idx, &b),
                    n - 1
                ))
            }
            (Some(a), Some(b)) => (a, b),
        };
        let key_a: Vec<Option<&[u8]>> = key_idx.iter().map(|&i| cell(&a, i)).collect();
        let key_b: Vec<Option<&[u8]>> = key_idx.iter().map(|&i| cell(&b, i)).collect();
        if key_a != key_b {
            return Err(format!(
                "{name}: rows diverge at row {n}: source has {}, target has {}",
                describe_key(&key, &key_idx, &a),
                describe_key(&key, &key_idx, &b)
            ));
        }
        for (i, (col, ty)) in src_cols.iter().enumerate() {
            let (va, vb) = (cell(&a, i), cell(&b, i));
            let json = ty == "json" || dst_cols[i].1 == "json";
            let float = matches!(base(ty).as_str(), "float" | "double" | "real");
            if va != vb
                && !(json && same_json(va, vb))
                && !(float && same_float(va, vb, base(ty) == "float"))
            {
                return Err(format!(
                    "{name}: row {} differs in column {col}: source {}, target {}",
                    describe_key(&key, &key_idx, &a),
                    show(va),
                    show(vb)
                ));
            }
        }
    }
}

/// The DATA_TYPE part of a COLUMN_TYPE (`int(11) unsigned` → `int`).
fn base(column_type: &str) -> String {
    column_type
        .split(['(', ' '])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Whether two float texts are the same number: MySQL and MariaDB print floats differently
/// (`-1.58048e-14` and `-0.0000000000000158048`). FLOAT compares as the f32 it stores. -0 equals 0: MariaDB
/// stores a written -0 as 0, so a MySQL -0 arrives there as 0 (a known cross-flavor difference).
fn same_float(a: Option<&[u8]>, b: Option<&[u8]>, single: bool) -> bool {
    let parse = |v: &[u8]| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
    };
    match (a.and_then(parse), b.and_then(parse)) {
        (Some(x), Some(y)) if single => (x as f32) == (y as f32),
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Whether two JSON texts are the same document.
fn same_json(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            match (
                serde_json::from_slice::<serde_json::Value>(a),
                serde_json::from_slice::<serde_json::Value>(b),
            ) {
                (Ok(x), Ok(y)) => x == y,
                _ => false,
            }
        }
        _ => false,
    }
}

/// `(name, COLUMN_TYPE)` in ordinal order; empty if the table does not exist.
async fn columns(
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Vec<(String, String)>, mysql_async::Error> {
    conn.exec(
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (db, table),
    )
    .await
}

async fn primary_key(
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Vec<String>, mysql_async::Error> {
    conn.exec(
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
        (db, table),
    )
    .await
}

/// The bytes of column `i`, `None` for NULL. The text protocol returns only bytes and NULL.
fn cell(row: &Row, i: usize) -> Option<&[u8]> {
    match row.as_ref(i) {
        Some(Value::Bytes(b)) => Some(b.as_slice()),
        _ => None,
    }
}

fn describe_key(names: &[String], idx: &[usize], row: &Row) -> String {
    let parts: Vec<String> = names
        .iter()
        .zip(idx)
        .map(|(n, &i)| format!("{n}={}", show(cell(row, i))))
        .collect();
    format!("({})", parts.join(", "))
}

/// A value for a message: printable text quoted, anything else as hex; long values shortened.
fn show(v: Option<&[u8]>) -> String {
    const MAX: usize = 64;
    let Some(b) = v else { return "NULL".into() };
    let (head, more) = if b.len() > MAX {
        (&b[..MAX], format!("... ({} bytes)", b.len()))
    } else {
        (b, String::new())
    };
    match std::str::from_utf8(head) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("'{s}'{more}"),
        _ => format!("0x{}{more}", to_hex(head)),
    }
}
