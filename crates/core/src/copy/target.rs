//! The copy's side of the target: its databases and tables created from the
//! source's definitions, its sessions (with `sql_log_bin = 0` where allowed,
//! see the copy's module doc), and its tables dropped when a copy restarts.

use super::indexes::defer_secondary_indexes;
use crate::config::{Config, ServiceConfig};
use crate::error::{Error, Result};
use dropship_mysql::flavor::Flavor;
use dropship_mysql::schema::{self, TableSchema};
use dropship_mysql::sql;
use dropship_mysql::translate;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tracing::{info, warn};

/// Creates the target databases and missing tables from the source
/// definitions (`creates`, in the order of `tables`), translated when the
/// target is of the other flavor (`flavors`: source, target). Refuses a
/// non-empty existing table unless `truncate`.
pub async fn prepare_target(
    svc: &ServiceConfig,
    tables: &[Arc<TableSchema>],
    creates: &[String],
    target: &mut Conn,
    truncate: bool,
    flavors: &(Flavor, Flavor),
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
        let translated = translate::create_table(&create, &flavors.0, &flavors.1).map_err(|e| {
            Error::definite(
                format!(
                    "service {}: {}.{} cannot be created on the {} target as the {} source defines it: {}",
                    svc.name, tdb, t.table, flavors.1.name(), flavors.0.name(), e.what
                ),
                e.hint,
            )
        })?;
        for note in &translated.notes {
            tracing::warn!(service = %svc.name, table = %format!("{tdb}.{}", t.table), "{note}");
        }
        let create = translated.sql;
        // The source accepted this definition under its own sql_mode; a
        // strict target must not refuse it for a zero-date default.
        target
            .query_drop(format!(
                "SET NAMES utf8mb4; SET @dropship_mode = @@SESSION.sql_mode; SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'; USE {}; {}; SET SESSION sql_mode = @dropship_mode",
                sql::ident(tdb),
                create
            ))
            .await
            .map_err(Error::db(format!(
                "creating {tdb}.{} on the target",
                t.table
            )))?;
        if !create.to_ascii_uppercase().contains("FOREIGN KEY") {
            defer_secondary_indexes(svc, t, tdb, target).await?;
        }
    }
    target
        .query_drop("USE `_dropship`")
        .await
        .map_err(Error::db("selecting _dropship"))?;
    Ok(())
}

/// Drops the service's target tables (before a copy starts over).
pub async fn drop_target_tables(
    svc: &ServiceConfig,
    tables: &[Arc<TableSchema>],
    target: &mut Conn,
) -> Result<()> {
    target
        .exec_drop(
            "DELETE FROM `_dropship`.`copy_deferred_indexes` WHERE service = ?",
            (&svc.name,),
        )
        .await
        .map_err(Error::db("forgetting the indexes deferred by the copy"))?;
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

/// Whether the copy's target sessions skip the binary log (see the module
/// doc): unless `copy_target_binlog = true`, or the target has replicas
/// dropship watches (`max_target_replica_lag`).
pub fn skip_target_binlog(cfg: &Config) -> bool {
    !cfg.tuning.copy_target_binlog && cfg.tuning.max_target_replica_lag.is_none()
}

static BINLOG_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prepares a target connection for copy writes: the applier's session
/// settings, then `sql_log_bin = 0` when wanted and allowed (without the
/// privilege, the rows go to the target binlog: slower, logged once).
pub(super) async fn prepare_copy_target(
    cfg: &Config,
    svc: &ServiceConfig,
    target: &mut Conn,
) -> Result<()> {
    target
        .query_drop(crate::apply::applier::SESSION_SQL)
        .await
        .map_err(Error::db("preparing the target session"))?;
    if skip_target_binlog(cfg) {
        // Replicas of the target read its binlog: they must get the rows.
        let flavor = Flavor::detect(target)
            .await
            .map_err(Error::db("reading the target's version"))?;
        let replicas: Vec<mysql_async::Row> = target
            .query(flavor.show_replica_hosts())
            .await
            .unwrap_or_default();
        if !replicas.is_empty() {
            if !BINLOG_WARNED.swap(true, Relaxed) {
                info!(service = %svc.name, replicas = replicas.len(), "the target has replicas: copied rows stay in its binary log");
            }
            return Ok(());
        }
        if let Err(e) = target.query_drop("SET SESSION sql_log_bin = 0").await {
            if !BINLOG_WARNED.swap(true, Relaxed) {
                let needs = if flavor.is_mariadb() {
                    "BINLOG ADMIN (MariaDB 10.5+) or SUPER"
                } else {
                    "SESSION_VARIABLES_ADMIN or SYSTEM_VARIABLES_ADMIN (MySQL 8+)"
                };
                warn!(service = %svc.name, reason = %e, needs, "the target user may not set sql_log_bin; copied rows go to the target's binary log, which makes the copy slower");
            }
        }
    }
    Ok(())
}

/// Whether the target accepts `LOAD DATA LOCAL INFILE` (MariaDB's default;
/// MySQL 8's is OFF): chunks then load without SQL text to parse.
pub(super) async fn target_loads_local(target: &mut Conn) -> bool {
    let local: Option<i64> = target
        .query_first("SELECT @@GLOBAL.local_infile")
        .await
        .unwrap_or(None);
    local == Some(1)
}
