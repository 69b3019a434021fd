//! Copying one key range in chunks: keyset pagination on the row key within
//! the range, each chunk's rows and the range's "last key copied" in one
//! target transaction, reading chunk N+1 while chunk N is written.

use super::ranges::Range;
use super::tsv::{loads_exactly, push_tsv_field};
use crate::config::ServiceConfig;
use crate::control::stats::ServiceStats;
use crate::error::{Error, Result};
use dropship_mysql::schema::{self, TableSchema};
use dropship_mysql::sql;
use dropship_mysql::translate;
use dropship_mysql::value::from_driver;
use dropship_mysql::Value;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tracing::info;

/// What every range of one table shares.
pub(super) struct TableCopy {
    svc: ServiceConfig,
    /// The source's connection options, for the read watchdog's probes.
    source_opts: mysql_async::Opts,
    t: Arc<TableSchema>,
    tname: String,
    select_list: String,
    order: String,
    insert_head: String,
    insert_idx: Vec<usize>,
    /// `LOAD DATA LOCAL INFILE ... REPLACE INTO TABLE ...`, or `None` when a
    /// column type does not load exactly from text (BIT, spatial types).
    load_sql: Option<String>,
    /// Ranges of the table not finished yet; the last one to finish logs.
    remaining: std::sync::atomic::AtomicUsize,
    copied: std::sync::atomic::AtomicU64,
}

impl TableCopy {
    pub(super) fn new(
        svc: &ServiceConfig,
        source: &crate::config::Endpoint,
        t: Arc<TableSchema>,
        ranges: &[Range],
    ) -> TableCopy {
        let tname = format!("{}.{}", t.database, t.table);
        let tdb = svc.target_database(&t.database);
        let insert_idx: Vec<usize> = (0..t.columns.len())
            .filter(|&i| !t.columns[i].generated)
            .collect();
        let mut select_list = String::new();
        for (i, c) in t.columns.iter().enumerate() {
            if i > 0 {
                select_list.push(',');
            }
            sql::push_ident(&mut select_list, &c.name);
        }
        let mut order = String::new();
        for (i, k) in t.key_names().iter().enumerate() {
            if i > 0 {
                order.push(',');
            }
            sql::push_ident(&mut order, k);
        }
        // REPLACE, not INSERT: see "Why the result is exact" (a row read
        // later may take a unique value that an earlier-copied row held).
        let mut insert_head = format!("REPLACE INTO {} ", sql::qualified(tdb, &t.table));
        sql::push_ident_list(
            &mut insert_head,
            insert_idx.iter().map(|&i| t.columns[i].name.as_str()),
        );
        insert_head.push_str(" VALUES ");
        let load_sql = insert_idx
            .iter()
            .all(|&i| loads_exactly(&t.columns[i].data_type))
            .then(|| {
                let mut q = format!(
                    "LOAD DATA LOCAL INFILE 'dropship-chunk' REPLACE INTO TABLE {} CHARACTER SET binary \
                     FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ",
                    sql::qualified(tdb, &t.table)
                );
                // JSON columns read their field into a variable first: loaded `CHARACTER SET binary`, a JSON
                // column would refuse it (MySQL error 3144).
                let mut sets = Vec::new();
                q.push('(');
                for (n, &i) in insert_idx.iter().enumerate() {
                    if n > 0 {
                        q.push(',');
                    }
                    let c = &t.columns[i];
                    if c.data_type == "json" {
                        q.push_str(&format!("@j{n}"));
                        let mut set = String::new();
                        sql::push_ident(&mut set, &c.name);
                        set.push_str(&format!(" = CONVERT(@j{n} USING utf8mb4)"));
                        sets.push(set);
                    } else {
                        sql::push_ident(&mut q, &c.name);
                    }
                }
                q.push(')');
                if !sets.is_empty() {
                    q.push_str(" SET ");
                    q.push_str(&sets.join(", "));
                }
                q
            });
        TableCopy {
            load_sql,
            svc: svc.clone(),
            source_opts: source.opts(),
            tname,
            select_list,
            order,
            insert_head,
            insert_idx,
            remaining: (ranges.iter().filter(|r| !r.done).count()).into(),
            copied: ranges.iter().map(|r| r.copied).sum::<u64>().into(),
            t,
        }
    }

    /// The chunk query of a range after `last` (exclusive).
    fn chunk_query(&self, range: &Range, last: Option<&[Value]>, limit: usize) -> String {
        let t = &self.t;
        let mut q = format!(
            "SELECT {} FROM {}",
            self.select_list,
            sql::qualified(&t.database, &t.table)
        );
        let mut conds = Vec::new();
        let first = t.key_names().first().map(|s| s.to_string());
        if let Some(first) = &first {
            if let Some(lo) = &range.lo {
                let mut c = String::new();
                sql::push_ident(&mut c, first);
                c.push_str(" >= ");
                lo.write_sql(&mut c);
                conds.push(c);
            }
            if let Some(hi) = &range.hi {
                let mut c = String::new();
                sql::push_ident(&mut c, first);
                c.push_str(" < ");
                hi.write_sql(&mut c);
                conds.push(c);
            }
        }
        if let Some(k) = last {
            conds.push(sql::after_key(&t.key_names(), k));
        }
        if !conds.is_empty() {
            q.push_str(" WHERE ");
            q.push_str(&conds.join(" AND "));
        }
        q.push_str(&format!(" ORDER BY {} LIMIT {limit}", self.order));
        q
    }
}

/// How a chunk's rows travel to the target.
enum Payload {
    /// `START TRANSACTION;REPLACE INTO ... VALUES ...`
    Sql(String),
    /// Tab-separated rows for `LOAD DATA LOCAL INFILE ... REPLACE`.
    Tsv(Vec<u8>),
}

/// A chunk read from the source, with what writes it.
struct Chunk {
    payload: Payload,
    rows: u64,
    last_key: Vec<Value>,
    /// Rows of the range copied once this chunk commits.
    copied: u64,
}

/// Copies one range, resuming after its last committed chunk. Reading chunk
/// N+1 from the source overlaps writing chunk N to the target.
#[allow(clippy::too_many_arguments)]
pub(super) async fn copy_range(
    tc: &TableCopy,
    range: Range,
    source: &mut Conn,
    target: &mut Conn,
    chunk_rows: usize,
    stats: &ServiceStats,
    max_rps: Option<u64>,
    load_data: bool,
) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(1);
    let t = &tc.t;
    let no = range.no;
    let load_sql = tc.load_sql.as_deref().filter(|_| load_data);
    let reader = async move {
        let mut last = range.last_key.clone();
        let mut copied = range.copied;
        let started = std::time::Instant::now();
        let mut read_here = 0u64;
        let mut scratch = String::new();
        loop {
            stats.wait_unthrottled().await;
            let q = tc.chunk_query(&range, last.as_deref(), chunk_rows);
            // The read runs under the watchdog too: one whose flow died
            // silently is abandoned, and the copy goes on from its last
            // committed chunk.
            let conn_id = source.id();
            let read = async {
                same_source_columns(&tc.svc, t, source).await?;
                let rows: Vec<mysql_async::Row> = source
                    .exec(q.as_str(), ())
                    .await
                    .map_err(Error::db(format!("reading a chunk of {}", tc.tname)))?;
                // A DDL that finished between the check above and this read
                // changed what was read: check again before writing.
                same_source_columns(&tc.svc, t, source).await?;
                Ok::<_, Error>(rows)
            };
            let rows = tokio::select! {
                r = read => r?,
                why = crate::apply::watchdog::stalled(tc.source_opts.clone(), conn_id) => {
                    return Err(Error::Transient(format!(
                        "reading a chunk of {} from the source: {why}; the copy goes on from its last committed chunk",
                        tc.tname
                    )));
                }
            };
            if rows.is_empty() {
                break;
            }
            let n = rows.len();
            let mut key = Vec::new();
            let payload = if load_sql.is_some() {
                let mut tsv = Vec::with_capacity(n * 64);
                for (ri, row) in rows.into_iter().enumerate() {
                    let vals = row_values(t, row);
                    for (j, &i) in tc.insert_idx.iter().enumerate() {
                        if j > 0 {
                            tsv.push(b'\t');
                        }
                        push_tsv_field(&mut tsv, &vals[i], &t.columns[i].data_type, &mut scratch);
                    }
                    tsv.push(b'\n');
                    if ri + 1 == n {
                        key = t.key.iter().map(|&i| vals[i].clone()).collect();
                    }
                }
                Payload::Tsv(tsv)
            } else {
                let mut text = String::with_capacity(tc.insert_head.len() + n * 64);
                text.push_str("START TRANSACTION;");
                text.push_str(&tc.insert_head);
                for (ri, row) in rows.into_iter().enumerate() {
                    let vals = row_values(t, row);
                    if ri > 0 {
                        text.push(',');
                    }
                    sql::push_tuple(&mut text, tc.insert_idx.iter().map(|&i| &vals[i]));
                    if ri + 1 == n {
                        key = t.key.iter().map(|&i| vals[i].clone()).collect();
                    }
                }
                Payload::Sql(text)
            };
            copied += n as u64;
            read_here += n as u64;
            last = Some(key.clone());
            let chunk = Chunk {
                payload,
                rows: n as u64,
                last_key: key,
                copied,
            };
            if tx.send(chunk).await.is_err() {
                // The writer stopped: its error is the one reported.
                return Ok(false);
            }
            if let Some(max) = max_rps {
                let expected = std::time::Duration::from_secs_f64(read_here as f64 / max as f64);
                let el = started.elapsed();
                if expected > el {
                    tokio::time::sleep(expected - el).await;
                }
            }
            if n < chunk_rows {
                break;
            }
        }
        Ok::<bool, Error>(true)
    };
    // The writer owns the receiving end: when it fails, the channel closes,
    // so a reader waiting to hand over its next chunk stops too (a borrowed
    // receiver kept the channel open and the join below waited forever).
    let target_w = &mut *target;
    let writer = async move {
        let target = target_w;
        let what = || format!("writing a chunk of {} to the target", tc.tname);
        while let Some(chunk) = rx.recv().await {
            // Everything a chunk does on the target runs under the write
            // watchdog (see `watched`).
            let conn_id = target.id();
            let write = async {
                same_target_columns(&tc.svc, t, target).await?;
                let key_bytes = postcard::to_allocvec(&chunk.last_key).unwrap_or_default();
                let mut text = match chunk.payload {
                    Payload::Sql(text) => text,
                    Payload::Tsv(tsv) => {
                        let load = load_sql.unwrap_or_default();
                        target
                            .query_drop("START TRANSACTION")
                            .await
                            .map_err(Error::db(what()))?;
                        let data = bytes::Bytes::from(tsv);
                        target.set_infile_handler(async move {
                            Ok(
                                Box::pin(futures_util::stream::once(async move { Ok(data) }))
                                    as mysql_async::InfileData,
                            )
                        });
                        target.query_drop(load).await.map_err(Error::db(what()))?;
                        // LOCAL turns data errors into warnings: any warning
                        // means a value did not load exactly, so nothing commits.
                        if target.get_warnings() > 0 {
                            let w: Option<(String, u32, String)> = target
                                .query_first("SHOW WARNINGS LIMIT 1")
                                .await
                                .unwrap_or(None);
                            let _ = target.query_drop("ROLLBACK").await;
                            let (level, code, msg) = w.unwrap_or_default();
                            return Err(Error::definite(
                            format!("service {}: loading a chunk of {} into the target gave {level} {code}: {msg}", tc.svc.name, tc.tname),
                            "the target table no longer matches the source (compare SHOW CREATE TABLE on both); fix it, then resume",
                        ));
                        }
                        String::new()
                    }
                };
                if !text.is_empty() {
                    text.push(';');
                }
                text.push_str("UPDATE `_dropship`.`copy_chunks` SET last_key = ");
                dropship_mysql::value::write_bytes(&mut text, &key_bytes);
                text.push_str(&format!(
                ", rows_copied = {} WHERE service = {} AND table_name = {} AND chunk_no = {no};COMMIT",
                chunk.copied,
                sql::string_literal(&tc.svc.name),
                sql::string_literal(&tc.tname)
            ));
                target.query_drop(text).await.map_err(Error::db(what()))?;
                Ok::<(), Error>(())
            };
            watched(&tc.svc, conn_id, &what(), write).await?;
            crate::crash::point("copy:chunk-committed");
            stats.rows_copied.fetch_add(chunk.rows, Relaxed);
            tc.copied.fetch_add(chunk.rows, Relaxed);
        }
        Ok::<(), Error>(())
    };
    let (read, written) = tokio::join!(reader, writer);
    written?;
    if !read? {
        return Err(Error::Transient(format!(
            "copy of {} stopped: its writer ended early",
            tc.tname
        )));
    }
    crate::crash::point("copy:range-written");
    target
        .exec_drop(
            "UPDATE `_dropship`.`copy_chunks` SET done = 1 WHERE service = ? AND table_name = ? AND chunk_no = ?",
            (&tc.svc.name, &tc.tname, no),
        )
        .await
        .map_err(Error::db("recording a finished copy range"))?;
    if tc.remaining.fetch_sub(1, Relaxed) == 1 {
        info!(service = %tc.svc.name, table = %tc.tname, rows = tc.copied.load(Relaxed), "table copied");
    }
    Ok(())
}

/// One chunk's work on the copy's target session (`conn_id`), raced against
/// the write watchdog (`apply::watchdog`): a connection the watchdog judges
/// stalled (its flow dropped by a NAT, an unreachable target) is abandoned
/// with a transient error, and the copy goes on from its last committed
/// chunk, instead of waiting for the kernel's TCP timeout. A long LOAD DATA
/// stays healthy: the server is working for it.
async fn watched(
    svc: &ServiceConfig,
    conn_id: u32,
    what: &str,
    write: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    tokio::select! {
        r = write => r,
        why = crate::apply::watchdog::stalled(svc.target.opts(), conn_id) => Err(Error::Transient(format!(
            "{what}: {why}; the copy goes on from its last committed chunk"
        ))),
    }
}

/// A source row of `t` as [`Value`]s, by each column's type.
fn row_values(t: &TableSchema, row: mysql_async::Row) -> Vec<Value> {
    row.unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let data_type = t.columns.get(i).map_or("", |c| c.data_type.as_str());
            from_driver(v, data_type)
        })
        .collect()
}

fn schema_changed(svc: &ServiceConfig, t: &TableSchema) -> Error {
    Error::SchemaChangedDuringCopy(format!(
        "service {}: the definition of {}.{} changed while it was being copied; the service's copy starts over",
        svc.name, t.database, t.table
    ))
}

/// Checks that the source table still has the columns the copy started with
/// (names and full types). A DDL during the copy makes the copied rows and
/// the target table disagree: the copy must start over.
async fn same_source_columns(
    svc: &ServiceConfig,
    t: &TableSchema,
    source: &mut Conn,
) -> Result<()> {
    let now = schema::load_table(source, &t.database, &t.table)
        .await
        .map_err(Error::db("re-reading the source table definition"))?;
    let full = |s: &TableSchema| {
        s.columns
            .iter()
            .map(|c| (c.name.clone(), c.column_type.to_ascii_lowercase()))
            .collect::<Vec<_>>()
    };
    match now {
        Some(s) if full(&s) == full(t) => Ok(()),
        _ => Err(schema_changed(svc, t)),
    }
}

/// Checks that the target copy still has the columns the copy started with.
/// The target may be another version, which renders types differently:
/// names and base types are compared.
async fn same_target_columns(
    svc: &ServiceConfig,
    t: &TableSchema,
    target: &mut Conn,
) -> Result<()> {
    let tdb = svc.target_database(&t.database);
    let now = schema::load_table(target, tdb, &t.table)
        .await
        .map_err(Error::db("re-reading the target table definition"))?;
    // Same names in the same order, same base types (JSON = LONGTEXT across flavors).
    let same = |g: &TableSchema| {
        g.columns.len() == t.columns.len()
            && g.columns.iter().zip(&t.columns).all(|(a, b)| {
                a.name == b.name && translate::same_data_type(&a.data_type, &b.data_type)
            })
    };
    match now {
        Some(g) if same(&g) => Ok(()),
        _ => Err(schema_changed(svc, t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    fn table(key_type: &str) -> TableSchema {
        let col = |name: &str, data_type: &str| dropship_mysql::schema::Column {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            unsigned: false,
            nullable: false,
            generated: false,
            charset: None,
        };
        TableSchema {
            database: "d".into(),
            table: "t".into(),
            columns: vec![col("k", key_type), col("j", "int"), col("v", "blob")],
            key: vec![0, 1],
            key_is_primary: true,
        }
    }

    #[test]
    fn chunk_query_bounds_the_range_on_the_first_key_column() {
        let cfg = Config::parse(
            "t.toml",
            "[source]\nurl = \"mysql://u@127.0.0.1:1\"\n[services.s]\ntarget = \"mysql://u@127.0.0.1:2\"\ntables = [\"d.t\"]\nrename_databases = { d = \"x\" }\n",
            &|_| None,
        )
        .unwrap();
        let svc = cfg.services[0].clone();
        let t = Arc::new(table("bigint"));
        let r = Range {
            no: 1,
            lo: Some(Value::Int(100)),
            hi: Some(Value::Int(200)),
            last_key: None,
            copied: 0,
            done: false,
        };
        let tc = TableCopy::new(&svc, &cfg.source, t, std::slice::from_ref(&r));
        assert_eq!(
            tc.chunk_query(&r, None, 10),
            "SELECT `k`,`j`,`v` FROM `d`.`t` WHERE `k` >= 100 AND `k` < 200 ORDER BY `k`,`j` LIMIT 10"
        );
        assert_eq!(
            tc.chunk_query(&r, Some(&[Value::Int(150), Value::Int(7)]), 10),
            "SELECT `k`,`j`,`v` FROM `d`.`t` WHERE `k` >= 100 AND `k` < 200 AND (`k` >= 150 AND ((`k` > 150) OR (`k` = 150 AND `j` > 7))) ORDER BY `k`,`j` LIMIT 10"
        );
        let whole = Range {
            lo: None,
            hi: None,
            ..r
        };
        assert_eq!(
            tc.chunk_query(&whole, None, 5),
            "SELECT `k`,`j`,`v` FROM `d`.`t` ORDER BY `k`,`j` LIMIT 5"
        );
        assert_eq!(tc.insert_head, "REPLACE INTO `x`.`t` (`k`,`j`,`v`) VALUES ");
    }
}
