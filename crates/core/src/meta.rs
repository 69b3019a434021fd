//! dropship's own metadata schema on each target (database `_dropship`),
//! created and upgraded from `migrations/` with refinery.
//!
//! Invariant: a service's row in `positions` is only ever written inside the
//! same target transaction as the rows it covers (see `applier`), so after
//! any crash it names exactly the last source transaction applied.

use crate::error::{Error, Result};
use dropship_mysql::position::Position;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

pub const DB: &str = "_dropship";

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Creates `_dropship` and runs pending migrations.
pub async fn migrate(target: &crate::config::Endpoint) -> Result<()> {
    let mut conn = Conn::new(target.opts())
        .await
        .map_err(Error::db(format!("connecting to {target}")))?;
    conn.query_drop("CREATE DATABASE IF NOT EXISTS `_dropship`")
        .await
        .map_err(Error::db(format!(
            "creating database _dropship on {target}"
        )))?;
    let _ = conn.disconnect().await;
    let mut pool = mysql_async::Pool::new(target.opts_with_db(DB));
    let res = embedded::migrations::runner().run_async(&mut pool).await;
    let _ = pool.disconnect().await;
    res.map_err(|e| {
        Error::definite(
            format!("running dropship's metadata migrations on {target}: {e}"),
            "the user needs CREATE, ALTER, INSERT, UPDATE, DELETE, SELECT on `_dropship`.*",
        )
    })?;
    Ok(())
}

/// The service's committed position, if any.
pub async fn load_position(
    conn: &mut Conn,
    service: &str,
) -> Result<Option<(Position, i64, Option<String>)>> {
    let row: Option<(String, u64, String, i64, Option<String>)> = conn
        .exec_first("SELECT binlog_file, binlog_pos, gtid, source_ts, ddl_pending FROM `_dropship`.`positions` WHERE service = ?", (service,))
        .await
        .map_err(Error::db("reading the service position"))?;
    Ok(row.map(|(file, pos, gtid, ts, ddl)| (Position { file, pos, gtid }, ts, ddl)))
}

/// SQL that upserts the position; appended to the batch's transaction.
pub fn position_sql(service: &str, pos: &Position, source_ts: u32) -> String {
    use dropship_mysql::sql::string_literal as lit;
    format!(
        "INSERT INTO `_dropship`.`positions` (service, binlog_file, binlog_pos, gtid, source_ts, ddl_pending) \
         VALUES ({}, {}, {}, {}, {}, NULL) ON DUPLICATE KEY UPDATE binlog_file=VALUES(binlog_file), \
         binlog_pos=VALUES(binlog_pos), gtid=VALUES(gtid), source_ts=VALUES(source_ts), ddl_pending=NULL",
        lit(service),
        lit(&pos.file),
        pos.pos,
        lit(&pos.gtid),
        source_ts
    )
}

pub async fn set_ddl_pending(conn: &mut Conn, service: &str, ddl: &str) -> Result<()> {
    conn.exec_drop(
        "UPDATE `_dropship`.`positions` SET ddl_pending = ? WHERE service = ?",
        (ddl, service),
    )
    .await
    .map_err(Error::db("recording a pending DDL"))
}

/// Service state: `copying`, `replicating`, `paused`, `frozen`, `cut-over`, `error`.
pub async fn set_state(conn: &mut Conn, service: &str, state: &str, message: &str) -> Result<()> {
    conn.exec_drop(
        "INSERT INTO `_dropship`.`service_state` (service, state, message) VALUES (?, ?, ?) \
         ON DUPLICATE KEY UPDATE state = VALUES(state), message = VALUES(message)",
        (service, state, message),
    )
    .await
    .map_err(Error::db("recording the service state"))
}

pub async fn load_state(conn: &mut Conn, service: &str) -> Result<Option<(String, String)>> {
    conn.exec_first(
        "SELECT state, message FROM `_dropship`.`service_state` WHERE service = ?",
        (service,),
    )
    .await
    .map_err(Error::db("reading the service state"))
}
