//! Rollback's copy-back: makes each of the service's source tables equal to
//! its target table (the target is the newer copy after a cutover). This is
//! a full resync, not a change stream: every row of every table is read on
//! both servers, and only differing rows are written to the source.
//!
//! Algorithm per table, in key order, chunk by chunk: read the next chunk of
//! target rows (keyset pagination), then the source rows in the same key
//! range (after the previous chunk's last key, up to this chunk's last key;
//! unbounded for the final chunk). Source rows whose key is not in the target
//! chunk are deleted; target rows missing or different on the source are
//! written with `REPLACE` (deletes first). Keys are matched by their bytes.
//!
//! Why `REPLACE` is safe with unique secondary keys: the target satisfies
//! them. A replaced row can only collide with a source row that is not yet
//! synced, i.e. one in a later chunk (earlier rows already equal their target
//! state), which `REPLACE` removes and its own chunk writes back.
//!
//! Preconditions (kept by the rollback): both tables are frozen (the source
//! since the cutover, the target by rollback's freeze), and the source session
//! carries the run's `@dropship_freeze_bypass` token and the applier's session
//! settings (binary charset, UTC, foreign_key_checks=0). So the result is
//! exact, and a crash mid-way is repaired by running it again.
//!
//! Privileges: SELECT, INSERT, UPDATE, DELETE on the service's source tables.

use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use dropship_mysql::schema::TableSchema;
use dropship_mysql::sql::after_key;
use dropship_mysql::value::from_driver;
use dropship_mysql::{sql, Value};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;

const CHUNK: usize = 5000;

/// What the copy-back changed on the source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Changes {
    pub rows_checked: u64,
    pub written: u64,
    pub deleted: u64,
}

async fn read(
    conn: &mut Conn,
    t: &TableSchema,
    db: &str,
    predicate: &str,
    limit: bool,
) -> Result<Vec<Vec<Value>>> {
    let cols: Vec<String> = t.columns.iter().map(|c| sql::ident(&c.name)).collect();
    let order: Vec<String> = t.key_names().iter().map(|k| sql::ident(k)).collect();
    let mut text = format!(
        "SELECT {} FROM {} WHERE {predicate} ORDER BY {}",
        cols.join(","),
        sql::qualified(db, &t.table),
        order.join(",")
    );
    if limit {
        text.push_str(&format!(" LIMIT {CHUNK}"));
    }
    let rows: Vec<mysql_async::Row> =
        conn.exec(text.as_str(), ())
            .await
            .map_err(Error::db(format!(
                "reading {db}.{} for the copy-back",
                t.table
            )))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .enumerate()
                .map(|(i, v)| from_driver(v, &t.columns[i].data_type))
                .collect()
        })
        .collect())
}

fn key_of(t: &TableSchema, row: &[Value]) -> Vec<Value> {
    t.key.iter().map(|&i| row[i].clone()).collect()
}

fn key_bytes(key: &[Value]) -> Vec<u8> {
    postcard::to_allocvec(key).unwrap_or_default()
}

/// Makes `src_db.table` equal to `tgt_db.table`. `src` must carry the bypass token.
pub async fn sync_table(
    svc: &ServiceConfig,
    t: &TableSchema,
    src: &mut Conn,
    tgt: &mut Conn,
) -> Result<Changes> {
    let tdb = svc.target_database(&t.database).to_string();
    let keys: Vec<&str> = t.key_names();
    let insert_idx: Vec<usize> = (0..t.columns.len())
        .filter(|&i| !t.columns[i].generated)
        .collect();
    let mut changes = Changes::default();
    let mut last: Option<Vec<Value>> = None;
    tgt.query_drop("SET time_zone = '+00:00', NAMES binary")
        .await
        .map_err(Error::db("preparing the copy-back session on the target"))?;
    loop {
        let lower = last
            .as_ref()
            .map(|k| after_key(&keys, k))
            .unwrap_or_else(|| "1".into());
        let tgt_rows = read(tgt, t, &tdb, &lower, true).await?;
        let upper = if tgt_rows.len() == CHUNK {
            tgt_rows.last().map(|r| key_of(t, r))
        } else {
            None
        };
        let mut pred = lower.clone();
        if let Some(u) = &upper {
            pred = format!("{pred} AND NOT {}", after_key(&keys, u));
        }
        let src_rows = read(src, t, &t.database, &pred, false).await?;
        let mut on_source: HashMap<Vec<u8>, Vec<Value>> = src_rows
            .into_iter()
            .map(|r| (key_bytes(&key_of(t, &r)), r))
            .collect();
        let mut write = Vec::new();
        for r in &tgt_rows {
            let k = key_bytes(&key_of(t, r));
            match on_source.remove(&k) {
                Some(s) if insert_idx.iter().all(|&i| s[i] == r[i]) => {}
                _ => write.push(r),
            }
        }
        changes.rows_checked += tgt_rows.len() as u64;
        let mut stmts = Vec::new();
        if !on_source.is_empty() {
            for row in on_source.values() {
                let mut d = format!(
                    "DELETE FROM {} WHERE ",
                    sql::qualified(&t.database, &t.table)
                );
                let conds: Vec<String> = t
                    .key
                    .iter()
                    .map(|&i| {
                        let mut c = sql::ident(&t.columns[i].name);
                        c.push_str(" = ");
                        row[i].write_sql(&mut c);
                        c
                    })
                    .collect();
                d.push_str(&conds.join(" AND "));
                stmts.push(d);
            }
            changes.deleted += on_source.len() as u64;
        }
        for part in write.chunks(500) {
            let mut s = format!("REPLACE INTO {} ", sql::qualified(&t.database, &t.table));
            sql::push_ident_list(
                &mut s,
                insert_idx.iter().map(|&i| t.columns[i].name.as_str()),
            );
            s.push_str(" VALUES ");
            for (n, r) in part.iter().enumerate() {
                if n > 0 {
                    s.push(',');
                }
                sql::push_tuple(&mut s, insert_idx.iter().map(|&i| &r[i]));
            }
            stmts.push(s);
        }
        changes.written += write.len() as u64;
        if !stmts.is_empty() {
            let text = format!("START TRANSACTION;{};COMMIT", stmts.join(";"));
            src.query_drop(text).await.map_err(Error::db(format!(
                "writing the copy-back of {}.{} to the source",
                t.database, t.table
            )))?;
        }
        match upper {
            Some(u) => last = Some(u),
            None => break,
        }
    }
    Ok(changes)
}
