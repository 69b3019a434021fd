//! What dropship reads from the source about a service before it streams:
//! the source's current binlog position, the tables the service owns
//! (resolved from its patterns, each with a usable key), and whether those
//! tables' cascading foreign keys reach the binlog.

use crate::config::{Config, ServiceConfig};
use crate::error::{Error, Result};
use dropship_mysql::flavor::Flavor;
use dropship_mysql::position::{self, BinlogStatus, Position};
use dropship_mysql::schema::{self, TableSchema};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::Arc;

/// The source's current binlog position and GTID state.
pub async fn position(conn: &mut Conn) -> Result<Position> {
    let flavor = Flavor::detect(conn)
        .await
        .map_err(Error::db("detecting the source flavor"))?;
    let status = position::current(conn, &flavor).await.map_err(Error::db(
        "reading the source binlog position (needs REPLICATION CLIENT / BINLOG MONITOR)",
    ))?;
    match status {
        BinlogStatus::At(p) => Ok(p),
        BinlogStatus::Off => Err(Error::definite(
            format!("the source has no binary log ({} is empty)", flavor.show_binlog_status()),
            "enable the binlog on the source: log_bin, binlog_format=ROW, binlog_row_image=FULL, then restart it",
        )),
        BinlogStatus::Unusable { file, pos } => Err(Error::definite(
            format!(
                "{} returned no usable binlog position (file {file:?}, position {pos:?})",
                flavor.show_binlog_status()
            ),
            "check that the source has its binary log on (log_bin) and that the dropship user may read it (REPLICATION CLIENT; MariaDB: BINLOG MONITOR)",
        )),
    }
}

/// What the flow must know of its source, read once at start-up: DDL from
/// the other flavor is translated, and cascading foreign keys (in the copied
/// tables, or added by a DDL) are refused when the source does not binlog
/// the cascaded changes.
#[derive(Debug, Clone)]
pub struct Facts {
    pub flavor: Flavor,
    /// See `Flavor::logs_cascades`.
    pub logs_cascades: bool,
    /// Which server this is, so a state dir filled from one source is never
    /// read as another's: MySQL's `server_uuid`; MariaDB has none, so its
    /// host name, port and `server_id`.
    pub identity: String,
}

/// Reads the source's [`Facts`].
pub async fn facts(conn: &mut Conn) -> Result<Facts> {
    let flavor = Flavor::detect(conn)
        .await
        .map_err(Error::db("reading the source's version"))?;
    let logs_cascades = flavor.logs_cascades(conn).await.map_err(Error::db(
        "reading innodb_native_foreign_keys on the source",
    ))?;
    let sql = if flavor.is_mariadb() {
        "SELECT CONCAT('mariadb:', @@hostname, ':', @@port, ':', @@server_id)"
    } else {
        "SELECT @@server_uuid"
    };
    let identity: Option<String> = conn
        .query_first(sql)
        .await
        .map_err(Error::db("reading the source's identity (server_uuid)"))?;
    Ok(Facts {
        flavor,
        logs_cascades,
        identity: identity.unwrap_or_default(),
    })
}

/// Source tables the service owns, resolved from its patterns.
pub async fn service_tables(
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
            cfg.owner_of(&db, &t).map_err(Error::Config)?;
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

/// Refuses a service whose mapped tables are children of cascading foreign
/// keys (`ON DELETE CASCADE`, `SET NULL`, ...) when the source does not write
/// the cascaded changes to its binlog (see `Flavor::logs_cascades`): the
/// target, which applies with `foreign_key_checks=0`, would keep the rows the
/// source's cascade deleted or changed. The parent may be mapped or not; the
/// child's rows are what diverge.
pub async fn refuse_unlogged_cascades(
    cfg: &Config,
    svc: &ServiceConfig,
    facts: &Facts,
    conn: &mut Conn,
    tables: &[Arc<TableSchema>],
) -> Result<()> {
    if facts.logs_cascades {
        return Ok(());
    }
    let flavor = &facts.flavor;
    for t in tables {
        let create = schema::show_create_table(conn, &t.database, &t.table)
            .await
            .map_err(Error::db(format!(
                "reading the definition of {}.{} on the source",
                t.database, t.table
            )))?
            .unwrap_or_default();
        if let Some(k) = schema::cascading_keys(&t.database, &t.table, &create).first() {
            let why = if flavor.is_mariadb() {
                format!("{flavor} does not write cascaded changes to its binlog")
            } else {
                format!("{flavor} does not write cascaded changes to its binlog (MySQL 9 does, unless innodb_native_foreign_keys=ON)")
            };
            return Err(Error::definite(
                format!(
                    "{}: services.{}.tables: {}.{} has foreign key `{}` {} referencing {}: {why}, so the target would keep rows the source's cascade deletes or changes",
                    cfg.file, svc.name, k.database, k.table, k.name, k.actions(), k.parent
                ),
                format!(
                    "change the key to ON DELETE RESTRICT / ON UPDATE RESTRICT and let the application change {}.{} itself (those writes are in the binlog), or remove {}.{} from the service's tables",
                    k.database, k.table, k.database, k.table
                ),
            ));
        }
    }
    Ok(())
}
