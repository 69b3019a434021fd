//! Initial copy of a service's tables, handed off exactly to the stream.
//!
//! # Algorithm
//! 1. Before reading any row, record the source's current binlog position
//!    `P0` as the service's position (and in `copy_state`). The reader keeps
//!    every change from `P0` on in the relay log.
//! 2. Copy each table in chunks by its row key (keyset pagination: `WHERE
//!    key > last ORDER BY key LIMIT n`), tables in parallel. Each chunk's rows
//!    and its "last key copied" row in `_dropship.copy_chunks` commit in one
//!    target transaction, so a kill -9 resumes after the last committed chunk.
//!    No long snapshot transaction is held: each chunk is one statement.
//! 3. Record the source position `P1` when the copy ends, then start the
//!    applier at `P0`. Until `P1` it writes with `REPLACE` (see below).
//!
//! # Why the result is exact
//! Every row image in the binlog is a full image, and applying a change
//! writes the row's whole final state (or deletes it). For any row `r`:
//! if no change touches `r` after `P0`, its copied value is its value at `P0`
//! (= now). Otherwise replay from `P0` ends by writing the image of `r`'s
//! last change, which is its current value — whatever the copy read, and
//! whenever it read it. Rows deleted before their chunk was read are simply
//! not copied; a replayed delete of a missing row deletes nothing.
//!
//! During replay before `P1` the target can be *ahead* of the replayed
//! position (a chunk read after a change that replay has not reached yet),
//! so inserting an older image can collide on a unique secondary key with a
//! row copied in its newer state. `REPLACE` removes that row; it comes back
//! when replay reaches its own later change, which exists because its copied
//! state was produced after `P0` and before `P1`. After `P1`, target and
//! replayed position agree and plain `INSERT` is used (a conflict then is a
//! real divergence and stops the service).
//!
//! # Privileges and locks
//! Both flavors: SELECT on the copied tables, REPLICATION CLIENT (MySQL) /
//! BINLOG MONITOR (MariaDB 10.5+) for `SHOW MASTER STATUS`. No lock, no
//! FLUSH TABLES WITH READ LOCK, no consistent snapshot, no undo history
//! pinned beyond one chunk's statement.

use crate::config::{Config, ServiceConfig};
use crate::error::{Error, Result};
use crate::stats::ServiceStats;
use dropship_mysql::flavor::Flavor;
use dropship_mysql::position::Position;
use dropship_mysql::schema::{self, TableSchema};
use dropship_mysql::sql;
use dropship_mysql::Value;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tracing::info;

/// The source's current binlog position and GTID state.
pub async fn source_position(conn: &mut Conn) -> Result<Position> {
    let flavor = Flavor::detect(conn)
        .await
        .map_err(Error::db("detecting the source flavor"))?;
    let row: Option<mysql_async::Row> = conn
        .query_first(flavor.show_binlog_status())
        .await
        .map_err(Error::db(
            "reading the source binlog position (needs REPLICATION CLIENT / BINLOG MONITOR)",
        ))?;
    let row = row.ok_or_else(|| Error::definite("the source has no binary log (SHOW MASTER STATUS is empty)", "enable the binlog on the source: log_bin, binlog_format=ROW, binlog_row_image=FULL, then restart it"))?;
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or(4);
    let gtid: String = if flavor.is_mariadb() {
        conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos")
            .await
            .map_err(Error::db("reading gtid_binlog_pos"))?
            .unwrap_or_default()
    } else {
        conn.query_first("SELECT @@GLOBAL.gtid_executed")
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    Ok(Position {
        file,
        pos,
        gtid: gtid.replace('\n', ""),
    })
}

/// Source tables the service owns, resolved from its patterns.
pub async fn resolve_tables(
    cfg: &Config,
    svc: &ServiceConfig,
    conn: &mut Conn,
) -> Result<Vec<Arc<TableSchema>>> {
    let mut out = Vec::new();
    for db in svc.source_databases() {
        let names = schema::list_tables(conn, &db)
            .await
            .map_err(Error::db(format!("listing tables of {db} on the source")))?;
        for t in names {
            if !svc.claims(&db, &t) {
                continue;
            }
            cfg.owner_of(&db, &t)
                .map_err(|e| Error::Config(e.to_string()))?;
            let s = schema::load_table(conn, &db, &t)
                .await
                .map_err(Error::db(format!("reading {db}.{t} on the source")))?;
            let Some(s) = s else { continue };
            if s.key.is_empty() {
                return Err(Error::definite(
                    format!("{}: services.{}.tables: table {db}.{t} has no primary key or NOT NULL unique key", cfg.file, svc.name),
                    format!("add a primary key to {db}.{t} on the source (ALTER TABLE ... ADD PRIMARY KEY), or remove it from the service's tables"),
                ));
            }
            out.push(Arc::new(s));
        }
    }
    for p in &svc.tables {
        if !p.is_pattern()
            && !out
                .iter()
                .any(|s| s.database == p.database && s.table == p.table)
        {
            return Err(Error::definite(
                format!(
                    "{}: services.{}.tables: table {p} does not exist on the source",
                    cfg.file, svc.name
                ),
                "check the spelling, or remove it from the list",
            ));
        }
    }
    Ok(out)
}

/// Starts a service's copy: reads the definitions of its tables and the
/// start position `P0` as one snapshot, then creates the target tables.
///
/// Atomicity with DDL: the tables are locked (`LOCK TABLES ... READ`, a
/// moment: writers to those tables wait, nothing else does) while `P0` and
/// the definitions are read, so every DDL on them is either reflected in the
/// definitions (before `P0`) or replayed from the binlog (after `P0`). A table
/// created between listing and locking is caught by listing again under the
/// lock; a table created after `P0` comes through the binlog.
pub async fn start(
    cfg: &Config,
    svc: &ServiceConfig,
    source: &mut Conn,
    target: &mut Conn,
    truncate: bool,
) -> Result<(Vec<Arc<TableSchema>>, Position)> {
    for _attempt in 0..5 {
        let listed = resolve_tables(cfg, svc, source).await?;
        if !listed.is_empty() {
            let locks: Vec<String> = listed
                .iter()
                .map(|t| format!("{} READ", sql::qualified(&t.database, &t.table)))
                .collect();
            source
                .query_drop(format!("SET SESSION lock_wait_timeout = 10; LOCK TABLES {}", locks.join(", ")))
                .await
                .map_err(Error::db("locking the service's tables for a moment to read their definitions (needs LOCK TABLES)"))?;
        }
        let snapshot = async {
            let p0 = source_position(source).await?;
            let again = resolve_tables(cfg, svc, source).await?;
            let mut creates = Vec::new();
            for t in &again {
                let create = schema::show_create_table(source, &t.database, &t.table)
                    .await
                    .map_err(Error::db(format!(
                        "SHOW CREATE TABLE {}.{}",
                        t.database, t.table
                    )))?
                    .ok_or_else(|| {
                        Error::definite(
                            format!("{}.{} disappeared from the source", t.database, t.table),
                            "",
                        )
                    })?;
                creates.push(create);
            }
            Ok::<_, Error>((p0, again, creates))
        }
        .await;
        if !listed.is_empty() {
            source
                .query_drop("UNLOCK TABLES")
                .await
                .map_err(Error::db("unlocking the service's tables"))?;
        }
        let (p0, again, creates) = snapshot?;
        let same = again.len() == listed.len() && again.iter().zip(&listed).all(|(a, b)| a == b);
        if !same {
            continue;
        }
        prepare_target(svc, &again, &creates, target, truncate).await?;
        return Ok((again, p0));
    }
    Err(Error::Transient(format!(
        "service {}: its tables kept changing while their definitions were read; retrying",
        svc.name
    )))
}

/// Creates the target databases and missing tables from the source
/// definitions (`creates`, in the order of `tables`). Refuses a non-empty
/// existing table unless `truncate`.
pub async fn prepare_target(
    svc: &ServiceConfig,
    tables: &[Arc<TableSchema>],
    creates: &[String],
    target: &mut Conn,
    truncate: bool,
) -> Result<()> {
    target
        .query_drop("SET foreign_key_checks = 0")
        .await
        .map_err(Error::db("preparing the target session"))?;
    // Every target database, even one whose pattern matches no table yet: a
    // table created later on the source is created there by replication.
    for db in svc.source_databases() {
        let tdb = svc.target_database(&db);
        target
            .query_drop(format!("CREATE DATABASE IF NOT EXISTS {}", sql::ident(tdb)))
            .await
            .map_err(Error::db(format!("creating database {tdb} on the target")))?;
    }
    for (t, create) in tables.iter().zip(creates) {
        let tdb = svc.target_database(&t.database);
        let existing = schema::load_table(target, tdb, &t.table)
            .await
            .map_err(Error::db("reading the target table"))?;
        if existing.is_some() {
            let non_empty: Option<u8> = target
                .query_first(format!(
                    "SELECT 1 FROM {} LIMIT 1",
                    sql::qualified(tdb, &t.table)
                ))
                .await
                .map_err(Error::db("checking whether the target table is empty"))?;
            if non_empty.is_some() {
                if truncate {
                    target
                        .query_drop(format!("TRUNCATE TABLE {}", sql::qualified(tdb, &t.table)))
                        .await
                        .map_err(Error::db("truncating the target table"))?;
                } else {
                    return Err(Error::definite(
                        format!("service {}: target table {tdb}.{} already has rows but the service has no dropship position", svc.name, t.table),
                        "if those rows are disposable, run `dropship replicate --truncate-existing` to empty the service's target tables before copying; otherwise point the service at an empty database",
                    ));
                }
            }
            continue;
        }
        let create = dropship_mysql::ddl::rewrite_databases(create, &svc.rename_databases);
        target
            .query_drop(format!(
                "SET NAMES utf8mb4; USE {}; {}",
                sql::ident(tdb),
                create
            ))
            .await
            .map_err(Error::db(format!(
                "creating {tdb}.{} on the target",
                t.table
            )))?;
    }
    target
        .query_drop("USE `_dropship`")
        .await
        .map_err(Error::db("selecting _dropship"))?;
    Ok(())
}

/// Converts a value read with the binary protocol to a [`Value`].
pub fn from_driver(v: mysql_async::Value, data_type: &str) -> Value {
    use mysql_async::Value as V;
    match v {
        V::NULL => Value::Null,
        V::Int(i) => Value::Int(i),
        V::UInt(u) => Value::UInt(u),
        V::Float(f) => Value::Float(f),
        V::Double(d) => Value::Double(d),
        V::Bytes(b) => match data_type {
            "decimal" => Value::Decimal(String::from_utf8_lossy(&b).into_owned()),
            _ => Value::Bytes(b),
        },
        V::Date(y, mo, d, h, mi, s, us) => match data_type {
            "date" => Value::Date {
                year: y,
                month: mo,
                day: d,
            },
            _ => Value::DateTime {
                year: y,
                month: mo,
                day: d,
                hour: h,
                minute: mi,
                second: s,
                micros: us,
            },
        },
        V::Time(neg, days, h, mi, s, us) => Value::Time {
            negative: neg,
            hours: days * 24 + u32::from(h),
            minutes: mi,
            seconds: s,
            micros: us,
        },
    }
}

/// Copies one table; resumes from its recorded chunk.
async fn copy_table(
    svc: &ServiceConfig,
    t: &TableSchema,
    source: &mut Conn,
    target: &mut Conn,
    chunk_rows: usize,
    stats: &ServiceStats,
    max_rps: Option<u64>,
) -> Result<u64> {
    let tname = format!("{}.{}", t.database, t.table);
    let tdb = svc.target_database(&t.database);
    let row: Option<(Option<Vec<u8>>, u64, bool)> = target
        .exec_first("SELECT last_key, rows_copied, done FROM `_dropship`.`copy_chunks` WHERE service = ? AND table_name = ? AND chunk_no = 0", (&svc.name, &tname))
        .await
        .map_err(Error::db("reading copy progress"))?;
    let (mut last_key, mut copied, done) = match row {
        Some((k, n, d)) => (
            k.and_then(|k| postcard::from_bytes::<Vec<Value>>(&k).ok()),
            n,
            d,
        ),
        None => (None, 0, false),
    };
    if done {
        stats.rows_copied.fetch_add(copied, Relaxed);
        return Ok(copied);
    }
    let cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    let insert_idx: Vec<usize> = (0..t.columns.len())
        .filter(|&i| !t.columns[i].generated)
        .collect();
    let mut select_list = String::new();
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            select_list.push(',');
        }
        sql::push_ident(&mut select_list, c);
    }
    let key_names: Vec<&str> = t.key_names();
    let mut order = String::new();
    for (i, k) in key_names.iter().enumerate() {
        if i > 0 {
            order.push(',');
        }
        sql::push_ident(&mut order, k);
    }
    let mut insert_head = format!("INSERT INTO {} ", sql::qualified(tdb, &t.table));
    sql::push_ident_list(&mut insert_head, insert_idx.iter().map(|&i| cols[i]));
    insert_head.push_str(" VALUES ");
    source
        .query_drop("SET time_zone = '+00:00', NAMES binary")
        .await
        .map_err(Error::db("preparing the copy session"))?;
    let started = std::time::Instant::now();
    loop {
        stats.wait_unthrottled().await;
        same_columns(svc, t, source, target).await?;
        let mut q = format!(
            "SELECT {select_list} FROM {}",
            sql::qualified(&t.database, &t.table)
        );
        if let Some(k) = &last_key {
            q.push_str(" WHERE ");
            q.push_str(&after_key_predicate(&key_names, k));
        }
        q.push_str(&format!(" ORDER BY {order} LIMIT {chunk_rows}"));
        let rows: Vec<mysql_async::Row> = source
            .exec(q.as_str(), ())
            .await
            .map_err(Error::db(format!("reading a chunk of {tname}")))?;
        if rows.is_empty() {
            break;
        }
        // A DDL that finished between the check above and this read changed
        // what was read: check again before writing.
        same_columns(svc, t, source, target).await?;
        let n = rows.len();
        let mut text = String::from("START TRANSACTION;");
        text.push_str(&insert_head);
        let mut key = Vec::new();
        for (ri, row) in rows.into_iter().enumerate() {
            let vals: Vec<Value> = row
                .unwrap()
                .into_iter()
                .enumerate()
                .map(|(i, v)| from_driver(v, &t.columns[i].data_type))
                .collect();
            if ri > 0 {
                text.push(',');
            }
            sql::push_tuple(&mut text, insert_idx.iter().map(|&i| &vals[i]));
            if ri + 1 == n {
                key = t.key.iter().map(|&i| vals[i].clone()).collect();
            }
        }
        copied += n as u64;
        let key_bytes = postcard::to_allocvec(&key).unwrap_or_default();
        text.push_str(&format!(
            ";INSERT INTO `_dropship`.`copy_chunks` (service, table_name, chunk_no, last_key, rows_copied, done) VALUES ({}, {}, 0, ",
            sql::string_literal(&svc.name),
            sql::string_literal(&tname)
        ));
        dropship_mysql::value::write_bytes(&mut text, &key_bytes);
        text.push_str(&format!(", {copied}, 0) ON DUPLICATE KEY UPDATE last_key = VALUES(last_key), rows_copied = VALUES(rows_copied);COMMIT"));
        target.query_drop(text).await.map_err(Error::db(format!(
            "writing a chunk of {tname} to the target"
        )))?;
        stats.rows_copied.fetch_add(n as u64, Relaxed);
        last_key = Some(key);
        if let Some(max) = max_rps {
            let expected = std::time::Duration::from_secs_f64(copied as f64 / max as f64);
            let el = started.elapsed();
            if expected > el {
                tokio::time::sleep(expected - el).await;
            }
        }
        if n < chunk_rows {
            break;
        }
    }
    target
        .exec_drop(
            "INSERT INTO `_dropship`.`copy_chunks` (service, table_name, chunk_no, last_key, rows_copied, done) VALUES (?, ?, 0, NULL, ?, 1) \
             ON DUPLICATE KEY UPDATE done = 1, rows_copied = VALUES(rows_copied)",
            (&svc.name, &tname, copied),
        )
        .await
        .map_err(Error::db("recording a finished table copy"))?;
    info!(service = %svc.name, table = %tname, rows = copied, "table copied");
    Ok(copied)
}

/// Checks that the source table and its target copy still have the columns
/// the copy started with (names and types). A DDL during the copy makes the
/// copied rows and the target table disagree: the copy must start over.
async fn same_columns(
    svc: &ServiceConfig,
    t: &TableSchema,
    source: &mut Conn,
    target: &mut Conn,
) -> Result<()> {
    let tdb = svc.target_database(&t.database);
    let now_src = schema::load_table(source, &t.database, &t.table)
        .await
        .map_err(Error::db("re-reading the source table definition"))?;
    let now_tgt = schema::load_table(target, tdb, &t.table)
        .await
        .map_err(Error::db("re-reading the target table definition"))?;
    // Same server: compare full column types. Target (maybe another
    // version, which renders types differently): names and base types.
    let full = |s: &TableSchema| {
        s.columns
            .iter()
            .map(|c| (c.name.clone(), c.column_type.to_ascii_lowercase()))
            .collect::<Vec<_>>()
    };
    let base = |s: &TableSchema| {
        s.columns
            .iter()
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect::<Vec<_>>()
    };
    match (now_src, now_tgt) {
        (Some(s), Some(g)) if full(&s) == full(t) && base(&g) == base(t) => Ok(()),
        _ => Err(Error::SchemaChangedDuringCopy(format!(
            "service {}: the definition of {}.{} changed while it was being copied; the service's copy starts over",
            svc.name, t.database, t.table
        ))),
    }
}

/// Drops the service's target tables (before a copy starts over).
pub async fn drop_target_tables(
    svc: &ServiceConfig,
    tables: &[Arc<TableSchema>],
    target: &mut Conn,
) -> Result<()> {
    for t in tables {
        let tdb = svc.target_database(&t.database);
        target
            .query_drop(format!(
                "SET foreign_key_checks = 0; DROP TABLE IF EXISTS {}",
                sql::qualified(tdb, &t.table)
            ))
            .await
            .map_err(Error::db(format!(
                "dropping {tdb}.{} on the target to restart its copy",
                t.table
            )))?;
    }
    Ok(())
}

/// `(k1 > v1) OR (k1 = v1 AND k2 > v2) ...` for keyset pagination.
pub fn after_key_predicate(keys: &[&str], values: &[Value]) -> String {
    let mut ors = Vec::new();
    for i in 0..keys.len().min(values.len()) {
        let mut and = String::from("(");
        for j in 0..i {
            sql::push_ident(&mut and, keys[j]);
            and.push_str(" = ");
            values[j].write_sql(&mut and);
            and.push_str(" AND ");
        }
        sql::push_ident(&mut and, keys[i]);
        and.push_str(" > ");
        values[i].write_sql(&mut and);
        and.push(')');
        ors.push(and);
    }
    format!("({})", ors.join(" OR "))
}

/// Runs (or resumes) the copy of a service. Returns the end position `P1`.
pub async fn run(
    cfg: &Config,
    svc: &ServiceConfig,
    tables: &[Arc<TableSchema>],
    stats: Arc<ServiceStats>,
) -> Result<Position> {
    let total: u64 = 0;
    stats.copy_rows_total.store(total, Relaxed);
    let threads = cfg.tuning.copy_threads.max(1);
    let queue = Arc::new(tokio::sync::Mutex::new(tables.to_vec()));
    let mut tasks = Vec::new();
    for _ in 0..threads {
        let queue = queue.clone();
        let svc = svc.clone();
        let stats = stats.clone();
        let src_opts = cfg.source.opts();
        let tgt_opts = svc.target.opts();
        let chunk = cfg.tuning.copy_chunk_rows;
        let max_rps = cfg
            .tuning
            .max_rows_per_second
            .map(|r| (r / threads as u64).max(1));
        tasks.push(tokio::spawn(async move {
            let mut source = Conn::new(src_opts)
                .await
                .map_err(Error::db("connecting to the source for the copy"))?;
            let mut target = Conn::new(tgt_opts)
                .await
                .map_err(Error::db("connecting to the target for the copy"))?;
            target
                .query_drop(crate::applier::SESSION_SQL)
                .await
                .map_err(Error::db("preparing the target session"))?;
            loop {
                let next = queue.lock().await.pop();
                let Some(t) = next else { break };
                copy_table(&svc, &t, &mut source, &mut target, chunk, &stats, max_rps).await?;
            }
            let _ = source.disconnect().await;
            let _ = target.disconnect().await;
            Ok::<(), Error>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| Error::definite(format!("copy task failed: {e}"), ""))??;
    }
    let mut source = Conn::new(cfg.source.opts())
        .await
        .map_err(Error::db("connecting to the source"))?;
    let end = source_position(&mut source).await?;
    let _ = source.disconnect().await;
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn keyset_predicate_expands_composite_keys() {
        let p = after_key_predicate(&["a", "b"], &[Value::Int(1), Value::Bytes(b"x".to_vec())]);
        assert_eq!(p, "((`a` > 1) OR (`a` = 1 AND `b` > X'78'))");
    }
}
