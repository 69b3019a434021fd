//! Secondary indexes deferred by the copy: dropped from a table dropship
//! created (empty, without foreign keys) before its rows load, recorded in
//! `_dropship.copy_deferred_indexes` first, and rebuilt sorted when the
//! copy ends, so a resume after a crash rebuilds them too.

use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use dropship_mysql::schema::{self, TableSchema};
use dropship_mysql::sql;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::Arc;
use tracing::info;

/// Reads a backquoted identifier at the start of `s`: (name, rest).
fn backquoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('`')?;
    let mut name = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '`' {
            if chars.peek().map(|&(_, n)| n) == Some('`') {
                chars.next();
                name.push('`');
                continue;
            }
            return Some((name, &body[i + 1..]));
        }
        name.push(c);
    }
    None
}

/// The plain non-unique secondary indexes of a `SHOW CREATE TABLE` text:
/// (name, clause as printed, e.g. ``KEY `a` (`a`,`b`(10) DESC)``). UNIQUE,
/// FULLTEXT, SPATIAL and primary keys are not among them.
pub fn deferrable_indexes(create: &str) -> Vec<(String, String)> {
    create
        .lines()
        .filter_map(|line| {
            let clause = line.trim().trim_end_matches(',');
            let (name, _) = backquoted(clause.strip_prefix("KEY ")?)?;
            Some((name, clause.to_string()))
        })
        .collect()
}

/// Drops the non-unique secondary indexes of a table dropship just created
/// (empty), recording them to be rebuilt when the copy ends: loading rows
/// into random places of a secondary index costs more than building it
/// sorted afterwards. Recorded first, so a crash in between loses nothing.
pub(super) async fn defer_secondary_indexes(
    svc: &ServiceConfig,
    t: &TableSchema,
    tdb: &str,
    target: &mut Conn,
) -> Result<()> {
    let created = schema::show_create_table(target, tdb, &t.table)
        .await
        .map_err(Error::db(format!(
            "SHOW CREATE TABLE {tdb}.{} on the target",
            t.table
        )))?
        .unwrap_or_default();
    let defs = deferrable_indexes(&created);
    if defs.is_empty() {
        return Ok(());
    }
    let tname = format!("{}.{}", t.database, t.table);
    let lines: Vec<&str> = defs.iter().map(|(_, d)| d.as_str()).collect();
    target
        .exec_drop(
            "REPLACE INTO `_dropship`.`copy_deferred_indexes` (service, table_name, index_defs) VALUES (?, ?, ?)",
            (&svc.name, &tname, lines.join("\n")),
        )
        .await
        .map_err(Error::db("recording the indexes rebuilt after the copy"))?;
    let drops: Vec<String> = defs
        .iter()
        .map(|(n, _)| format!("DROP INDEX {}", sql::ident(n)))
        .collect();
    target
        .query_drop(format!(
            "ALTER TABLE {} {}",
            sql::qualified(tdb, &t.table),
            drops.join(", ")
        ))
        .await
        .map_err(Error::db(format!(
            "dropping the secondary indexes of {tdb}.{} until its copy ends",
            t.table
        )))?;
    Ok(())
}

/// Rebuilds the indexes [`defer_secondary_indexes`] dropped (those not
/// present already: a resume after a crash mid-way adds only the rest).
pub(super) async fn rebuild_deferred_indexes(
    svc: &ServiceConfig,
    tables: &[Arc<TableSchema>],
    target: &mut Conn,
) -> Result<()> {
    for t in tables {
        let tname = format!("{}.{}", t.database, t.table);
        let tdb = svc.target_database(&t.database);
        let defs: Option<String> = target
            .exec_first(
                "SELECT index_defs FROM `_dropship`.`copy_deferred_indexes` WHERE service = ? AND table_name = ?",
                (&svc.name, &tname),
            )
            .await
            .map_err(Error::db("reading the indexes to rebuild after the copy"))?;
        let Some(defs) = defs else { continue };
        let existing: Vec<String> = target
            .exec(
                "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (tdb, &t.table),
            )
            .await
            .map_err(Error::db("reading the target table's indexes"))?;
        let adds: Vec<String> = deferrable_indexes(&defs)
            .into_iter()
            .filter(|(n, _)| !existing.iter().any(|e| e.eq_ignore_ascii_case(n)))
            .map(|(_, d)| format!("ADD {d}"))
            .collect();
        if !adds.is_empty() {
            let started = std::time::Instant::now();
            target
                .query_drop(format!(
                    "ALTER TABLE {} {}",
                    sql::qualified(tdb, &t.table),
                    adds.join(", ")
                ))
                .await
                .map_err(Error::db(format!(
                    "rebuilding the secondary indexes of {tdb}.{} after its copy",
                    t.table
                )))?;
            info!(service = %svc.name, table = %tname, indexes = adds.len(), secs = started.elapsed().as_secs_f64(), "secondary indexes rebuilt after the copy");
        }
        target
            .exec_drop(
                "DELETE FROM `_dropship`.`copy_deferred_indexes` WHERE service = ? AND table_name = ?",
                (&svc.name, &tname),
            )
            .await
            .map_err(Error::db("recording the rebuilt indexes"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn deferrable_indexes_are_the_plain_non_unique_ones() {
        let create = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `a` int,\n  `b` varchar(20),\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`a`),\n  KEY `a` (`a`),\n  KEY `we``ird` (`b`(10) DESC,`a`) COMMENT 'x',\n  FULLTEXT KEY `f` (`b`),\n  SPATIAL KEY `s` (`g`)\n) ENGINE=InnoDB";
        assert_eq!(
            deferrable_indexes(create),
            vec![
                ("a".to_string(), "KEY `a` (`a`)".to_string()),
                (
                    "we`ird".to_string(),
                    "KEY `we``ird` (`b`(10) DESC,`a`) COMMENT 'x'".to_string()
                ),
            ]
        );
        assert!(deferrable_indexes("CREATE TABLE `t` (\n  `KEY ` int\n)").is_empty());
        assert_eq!(
            backquoted("`a``b` rest"),
            Some(("a`b".to_string(), " rest"))
        );
        assert_eq!(backquoted("`open"), None);
    }
}
