//! Key ranges of a table's copy: planned once (integers by their MIN..MAX
//! span, other splittable types by sampling the key order), recorded in
//! `_dropship.copy_chunks` before any row is copied, and read back on a
//! resume so that every range continues where it stopped.

use crate::config::{Config, ServiceConfig};
use crate::error::{Error, Result};
use dropship_mysql::schema::TableSchema;
use dropship_mysql::sql;
use dropship_mysql::value::from_driver;
use dropship_mysql::Value;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tracing::info;

/// One key range of a table's copy: the rows whose first key column is in
/// `[lo, hi)` (`None` = unbounded), with its own progress row in
/// `_dropship.copy_chunks` (`chunk_no`). Ranges are fixed when the table's
/// copy is planned, so a resume continues each one where it stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub no: u64,
    pub lo: Option<Value>,
    pub hi: Option<Value>,
    /// Key of the last committed row of this range.
    pub last_key: Option<Vec<Value>>,
    pub copied: u64,
    pub done: bool,
}

fn decode_value<T: serde::de::DeserializeOwned>(
    svc: &str,
    tname: &str,
    no: u64,
    what: &str,
    b: Option<Vec<u8>>,
) -> Result<Option<T>> {
    match b {
        None => Ok(None),
        Some(b) => postcard::from_bytes::<T>(&b).map(Some).map_err(|e| {
            Error::definite(
                format!("service {svc}: _dropship.copy_chunks row for {tname} chunk {no} has an unreadable {what} ({e})"),
                "the copy progress was written by an incompatible dropship version or edited by hand: to copy the service again, drop its target tables and delete its rows from _dropship.copy_state, copy_chunks, service_state and positions",
            )
        }),
    }
}

/// Types whose order on the server and literal form (`write_sql`) agree, so
/// sampled values can bound ranges. Other first key types copy as one range.
fn is_splittable(data_type: &str) -> bool {
    dropship_mysql::schema::is_integer_type(data_type)
        || matches!(
            data_type,
            "char" | "varchar" | "binary" | "varbinary" | "date" | "datetime" | "decimal"
        )
}

/// `n - 1` increasing boundaries splitting `lo..=hi` into `n` equal parts.
pub fn integer_bounds(lo: i128, hi: i128, n: u64) -> Vec<i128> {
    let mut out = Vec::new();
    if n < 2 || hi <= lo {
        return out;
    }
    let span = hi - lo;
    for i in 1..n as i128 {
        let b = lo + span * i / n as i128;
        if b > lo && out.last().is_none_or(|&p| b > p) {
            out.push(b);
        }
    }
    out
}

fn int_of(v: &Value) -> Option<i128> {
    match v {
        Value::Int(i) => Some(i128::from(*i)),
        Value::UInt(u) => Some(i128::from(*u)),
        _ => None,
    }
}

fn value_of_int(i: i128) -> Value {
    match i64::try_from(i) {
        Ok(v) => Value::Int(v),
        Err(_) => Value::UInt(i as u64),
    }
}

/// Boundaries (values of the first key column) splitting `t` into about `n`
/// ranges: integers by their MIN..MAX span, other types by sampling the key
/// order at even row offsets of the estimated row count.
async fn split_points(
    t: &TableSchema,
    source: &mut Conn,
    n: u64,
    est_rows: u64,
) -> Result<Vec<Value>> {
    let Some(&first) = t.key.first() else {
        return Ok(Vec::new());
    };
    let col = &t.columns[first];
    if n < 2 || !is_splittable(&col.data_type) {
        return Ok(Vec::new());
    }
    let table = sql::qualified(&t.database, &t.table);
    let mut k = String::new();
    sql::push_ident(&mut k, &col.name);
    let what = || {
        format!(
            "sampling the key of {}.{} to split its copy",
            t.database, t.table
        )
    };
    // Integer first key columns are split arithmetically.
    if dropship_mysql::schema::is_integer_type(&col.data_type) {
        let row: Option<mysql_async::Row> = source
            .exec_first(format!("SELECT MIN({k}), MAX({k}) FROM {table}"), ())
            .await
            .map_err(Error::db(what()))?;
        let Some(row) = row else {
            return Ok(Vec::new());
        };
        let mut vals = row
            .unwrap()
            .into_iter()
            .map(|v| from_driver(v, &col.data_type));
        let (Some(lo), Some(hi)) = (
            vals.next().as_ref().and_then(int_of),
            vals.next().as_ref().and_then(int_of),
        ) else {
            return Ok(Vec::new());
        };
        return Ok(integer_bounds(lo, hi, n)
            .into_iter()
            .map(value_of_int)
            .collect());
    }
    let mut out: Vec<Value> = Vec::new();
    for i in 1..n {
        let offset = est_rows * i / n;
        let row: Option<mysql_async::Row> = source
            .exec_first(
                format!("SELECT {k} FROM {table} ORDER BY {k} LIMIT 1 OFFSET {offset}"),
                (),
            )
            .await
            .map_err(Error::db(what()))?;
        let Some(row) = row else { break };
        let Some(v) = row
            .unwrap()
            .into_iter()
            .next()
            .map(|v| from_driver(v, &col.data_type))
        else {
            break;
        };
        if v.is_null() || out.last() == Some(&v) {
            continue;
        }
        out.push(v);
    }
    Ok(out)
}

/// The table's ranges: those recorded by an earlier run (resume), or new
/// ones, recorded before any row is copied.
pub(super) async fn plan_ranges(
    cfg: &Config,
    svc: &ServiceConfig,
    t: &TableSchema,
    source: &mut Conn,
    target: &mut Conn,
) -> Result<(Vec<Range>, u64)> {
    let tname = format!("{}.{}", t.database, t.table);
    let est: Option<Option<u64>> = source
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&t.database, &t.table),
        )
        .await
        .map_err(Error::db(format!("estimating the rows of {tname}")))?;
    let est = est.flatten().unwrap_or(0);
    type Rec = (
        u64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        u64,
        bool,
    );
    let recorded: Vec<Rec> = target
        .exec(
            "SELECT chunk_no, range_lo, range_hi, last_key, rows_copied, done FROM `_dropship`.`copy_chunks` \
             WHERE service = ? AND table_name = ? ORDER BY chunk_no",
            (&svc.name, &tname),
        )
        .await
        .map_err(Error::db("reading copy progress"))?;
    if !recorded.is_empty() {
        let mut out = Vec::new();
        for (no, lo, hi, last, copied, done) in recorded {
            out.push(Range {
                no,
                lo: decode_value(&svc.name, &tname, no, "range start", lo)?,
                hi: decode_value(&svc.name, &tname, no, "range end", hi)?,
                last_key: decode_value(&svc.name, &tname, no, "last key", last)?,
                copied,
                done,
            });
        }
        return Ok((out, est));
    }
    let threads = cfg.tuning.copy_threads.max(1) as u64;
    let chunk = cfg.tuning.copy_chunk_rows.max(1) as u64;
    let wanted = (est / chunk).clamp(1, threads * 2);
    let bounds = split_points(t, source, wanted, est).await?;
    let mut ranges = Vec::new();
    for i in 0..=bounds.len() {
        ranges.push(Range {
            no: i as u64,
            lo: if i == 0 {
                None
            } else {
                Some(bounds[i - 1].clone())
            },
            hi: bounds.get(i).cloned(),
            last_key: None,
            copied: 0,
            done: false,
        });
    }
    let mut q = String::from(
        "INSERT INTO `_dropship`.`copy_chunks` (service, table_name, chunk_no, range_lo, range_hi, last_key, rows_copied, done) VALUES ",
    );
    for (i, r) in ranges.iter().enumerate() {
        if i > 0 {
            q.push(',');
        }
        q.push('(');
        q.push_str(&sql::string_literal(&svc.name));
        q.push(',');
        q.push_str(&sql::string_literal(&tname));
        q.push_str(&format!(",{},", r.no));
        for b in [&r.lo, &r.hi] {
            match b {
                Some(v) => dropship_mysql::value::write_bytes(
                    &mut q,
                    &postcard::to_allocvec(v).unwrap_or_default(),
                ),
                None => q.push_str("NULL"),
            }
            q.push(',');
        }
        q.push_str("NULL,0,0)");
    }
    target
        .query_drop(q)
        .await
        .map_err(Error::db("recording the copy ranges"))?;
    if ranges.len() > 1 {
        info!(service = %svc.name, table = %tname, ranges = ranges.len(), "copying in parallel key ranges");
    }
    Ok((ranges, est))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn integer_bounds_split_the_span_evenly_and_never_repeat() {
        assert_eq!(
            integer_bounds(1, 1_000_000, 4),
            vec![250_000, 500_000, 750_000]
        );
        assert_eq!(integer_bounds(-10, 10, 2), vec![0]);
        // Fewer distinct values than ranges: only distinct boundaries.
        assert_eq!(integer_bounds(5, 7, 4), vec![6]);
        assert!(integer_bounds(7, 7, 4).is_empty());
        assert!(integer_bounds(1, 100, 1).is_empty());
        // Unsigned BIGINT extremes do not overflow.
        let b = integer_bounds(0, u64::MAX as i128, 2);
        assert_eq!(b, vec![u64::MAX as i128 / 2]);
        assert_eq!(value_of_int(u64::MAX as i128), Value::UInt(u64::MAX));
        assert_eq!(value_of_int(-3), Value::Int(-3));
    }

    #[test]
    fn only_types_whose_order_and_literals_agree_are_split() {
        assert!(is_splittable("bigint") && is_splittable("varchar") && is_splittable("datetime"));
        assert!(!is_splittable("enum") && !is_splittable("float") && !is_splittable("timestamp"));
    }
}
