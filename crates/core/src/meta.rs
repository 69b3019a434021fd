//! dropship's own metadata schema on each target (database `_dropship`),
//! created and upgraded from `migrations/` with refinery.
//!
//! Invariant: a service's row in `positions` is only ever written inside the
//! same target transaction as the rows it covers (see `applier`), so after
//! any crash it names exactly the last source transaction applied.

use crate::error::{Error, Result};
use crate::state::ServiceState;
use dropship_mysql::position::Position;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

pub const DB: &str = "_dropship";

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Creates `_dropship` and runs pending migrations.
pub async fn migrate(target: &crate::config::Endpoint) -> Result<()> {
    let mut conn =
        crate::connect::connect(target.opts(), format!("connecting to {target}")).await?;
    conn.query_drop("CREATE DATABASE IF NOT EXISTS `_dropship`")
        .await
        .map_err(Error::db(format!(
            "creating database _dropship on {target}"
        )))?;
    undo_half_applied_v4(&mut conn).await?;
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

/// MySQL and MariaDB DDL is not transactional: a process killed between
/// V4's `ALTER TABLE copy_chunks ADD COLUMN ...` and refinery's history row
/// leaves the columns without the row, and every later start failed on them
/// (ERROR 1060, duplicate column). The half-applied migration is undone (the
/// columns hold nothing yet: no run got past the migration) so that it runs
/// again whole. V1-V3 and V4's other statement are `CREATE TABLE IF NOT
/// EXISTS`, which run again harmlessly; later migrations must be written
/// idempotent, or get the same treatment here.
async fn undo_half_applied_v4(conn: &mut Conn) -> Result<()> {
    // No history table yet: nothing was applied, nothing is half-applied.
    let Ok(recorded) = conn
        .query_first::<u64, _>(
            "SELECT COUNT(*) FROM `_dropship`.`refinery_schema_history` WHERE version = 4",
        )
        .await
    else {
        return Ok(());
    };
    if recorded.unwrap_or(0) > 0 {
        return Ok(());
    }
    let present: Vec<String> = conn
        .query(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '_dropship' \
             AND TABLE_NAME = 'copy_chunks' AND COLUMN_NAME IN ('range_lo', 'range_hi')",
        )
        .await
        .map_err(Error::db("reading _dropship.copy_chunks's columns"))?;
    if present.is_empty() {
        return Ok(());
    }
    let drops: Vec<String> = present
        .iter()
        .map(|c| format!("DROP COLUMN {}", dropship_mysql::sql::ident(c)))
        .collect();
    tracing::warn!(columns = ?present, "the metadata migration V4 was cut half-way by an earlier stop: undoing it so that it runs again whole");
    conn.query_drop(format!(
        "ALTER TABLE `_dropship`.`copy_chunks` {}",
        drops.join(", ")
    ))
    .await
    .map_err(Error::db("undoing the half-applied metadata migration V4"))
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

/// Forgets everything dropship recorded for `service` on its target (its
/// position, state, copy and verify progress) and drops `tables` (target
/// database, table), so the next run copies the service from scratch.
/// Refused while the target is the primary, or in the middle of a cutover or
/// a rollback: the target's rows are then the only current copy.
pub async fn forget_service(
    conn: &mut Conn,
    service: &str,
    tables: &[(String, String)],
) -> Result<()> {
    if let Some((state, _)) = load_state(conn, service).await? {
        if matches!(
            state,
            ServiceState::Frozen | ServiceState::CutOver | ServiceState::RollingBack
        ) {
            return Err(Error::definite(
                format!(
                    "--recopy {service}: the service is {} on its target, whose rows may be the only current copy",
                    state.as_str()
                ),
                "finish or roll back the cutover first (`dropship cutover --service NAME --rollback`); a recopy is for a service that still replicates from the source",
            ));
        }
    }
    conn.query_drop("SET foreign_key_checks = 0")
        .await
        .map_err(Error::db("preparing the target session for a recopy"))?;
    for (db, table) in tables {
        conn.query_drop(format!(
            "DROP TABLE IF EXISTS {}",
            dropship_mysql::sql::qualified(db, table)
        ))
        .await
        .map_err(Error::db(format!(
            "--recopy {service}: dropping {db}.{table} on the target"
        )))?;
    }
    for meta_table in [
        "copy_chunks",
        "copy_state",
        "copy_deferred_indexes",
        "verify_progress",
        "service_state",
        "positions",
    ] {
        conn.exec_drop(
            format!("DELETE FROM `_dropship`.`{meta_table}` WHERE service = ?"),
            (service,),
        )
        .await
        .map_err(Error::db(format!(
            "--recopy {service}: clearing _dropship.{meta_table} on the target"
        )))?;
    }
    conn.query_drop("SET foreign_key_checks = 1")
        .await
        .map_err(Error::db("restoring the target session after a recopy"))?;
    Ok(())
}

/// How [`wait_position`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    /// The service's position reached the one waited for: it is here.
    Reached(Position),
    /// The timeout passed with the service at this position.
    Behind(Position),
    /// The service has no position on this server.
    NoPosition,
}

/// Waits until `service`'s committed position in `conn`'s `_dropship` is at
/// or after `want`, polling every 20 ms (cutover and rollback wait inside a
/// freeze), for at most `timeout`. The one "caught up" wait of the cutover
/// (forward stream, on the target) and the rollback (reverse stream, on the
/// source): each words its own error from the [`Wait`].
pub async fn wait_position(
    conn: &mut Conn,
    service: &str,
    want: &Position,
    timeout: std::time::Duration,
) -> Result<Wait> {
    let start = std::time::Instant::now();
    loop {
        match load_position(conn, service).await? {
            Some((p, _, _)) if p >= *want => return Ok(Wait::Reached(p)),
            Some((p, _, _)) if start.elapsed() > timeout => return Ok(Wait::Behind(p)),
            None if start.elapsed() > timeout => return Ok(Wait::NoPosition),
            _ => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// SQL that upserts the position; appended to the batch's transaction. It
/// clears a pending DDL unless `keep_ddl_pending`: an applier that restarted
/// before a pending DDL keeps it while it re-applies what comes before it
/// (idle heartbeats, unmapped transactions), so that the DDL is still known
/// as pending when it is reached again.
pub fn position_sql(
    service: &str,
    pos: &Position,
    source_ts: u32,
    keep_ddl_pending: bool,
) -> String {
    use dropship_mysql::sql::string_literal as lit;
    format!(
        "INSERT INTO `_dropship`.`positions` (service, binlog_file, binlog_pos, gtid, source_ts, ddl_pending) \
         VALUES ({}, {}, {}, {}, {}, NULL) ON DUPLICATE KEY UPDATE binlog_file=VALUES(binlog_file), \
         binlog_pos=VALUES(binlog_pos), gtid=VALUES(gtid), source_ts=VALUES(source_ts){}",
        lit(service),
        lit(&pos.file),
        pos.pos,
        lit(&pos.gtid),
        source_ts,
        if keep_ddl_pending { "" } else { ", ddl_pending=NULL" }
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

/// Records the service's state (stored by its name) and a message.
pub async fn set_state(
    conn: &mut Conn,
    service: &str,
    state: ServiceState,
    message: &str,
) -> Result<()> {
    conn.exec_drop(
        "INSERT INTO `_dropship`.`service_state` (service, state, message) VALUES (?, ?, ?) \
         ON DUPLICATE KEY UPDATE state = VALUES(state), message = VALUES(message)",
        (service, state.as_str(), message),
    )
    .await
    .map_err(Error::db("recording the service state"))
}

/// The service's stored state and message; `None` when it has none yet. A
/// state name this version does not know is an error naming it.
pub async fn load_state(conn: &mut Conn, service: &str) -> Result<Option<(ServiceState, String)>> {
    let row: Option<(String, String)> = conn
        .exec_first(
            "SELECT state, message FROM `_dropship`.`service_state` WHERE service = ?",
            (service,),
        )
        .await
        .map_err(Error::db("reading the service state"))?;
    row.map(|(name, message)| {
        ServiceState::parse(&name).map(|s| (s, message)).ok_or_else(|| {
            Error::definite(
                format!("_dropship.service_state on the target of service {service} holds the unknown state {name:?}"),
                format!(
                    "it was written by another dropship version or edited by hand: set it to one of {}",
                    ServiceState::ALL.map(ServiceState::as_str).join(", ")
                ),
            )
        })
    })
    .transpose()
}
