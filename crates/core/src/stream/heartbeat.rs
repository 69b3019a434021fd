//! Heartbeat: makes lag exact while the application writes nothing.
//!
//! With `[source] heartbeat = true`, dropship upserts one row every second on
//! the source (pt-heartbeat / Vitess style):
//!
//! ```sql
//! CREATE DATABASE IF NOT EXISTS _dropship_heartbeat;
//! CREATE TABLE IF NOT EXISTS _dropship_heartbeat.heartbeat (id INT UNSIGNED PRIMARY KEY, ts TIMESTAMP(6) NOT NULL);
//! INSERT INTO _dropship_heartbeat.heartbeat (id, ts) VALUES (<server_id>, NOW(6)) ON DUPLICATE KEY UPDATE ts = NOW(6);
//! ```
//!
//! The row id is dropship's replica `server_id`, so several dropship
//! instances on one source do not fight over a row. The table is never
//! mapped to a service: the reader recognises its row events and turns each
//! heartbeat transaction into a `Progress` record stamped with the
//! transaction's source commit time.
//!
//! Lag is exact on an idle source without this row too: the reader asks the
//! source for heartbeat *events* (`@master_heartbeat_period`, both flavors),
//! which the dump thread sends only when it has nothing newer, and turns each
//! into a `Progress` record stamped "now" (see `reader.rs`). A stalled or cut
//! stream gets no heartbeat events, so lag grows honestly. The row adds an
//! end-to-end measure through the source's own commit path (a source that
//! stops committing while its dump thread still answers shows lag).
//!
//! Privileges (the source user needs them only when heartbeat is on):
//! `GRANT CREATE, INSERT, UPDATE ON _dropship_heartbeat.* TO 'repl'@'%';`
//!
//! Failure: a failed write is logged at WARN (nothing is lost; lag just
//! reads high while writes fail) at most once a minute, and retried next
//! second; missing privileges are reported at ERROR once with the GRANT to
//! run, since only a human can fix them.

use crate::config::Config;
use crate::control::stats::ReaderStats;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{error, warn};

pub const DATABASE: &str = "_dropship_heartbeat";
pub const TABLE: &str = "heartbeat";

/// Whether `db.table` is the heartbeat table.
pub fn is_heartbeat_table(db: &str, table: &str) -> bool {
    db == DATABASE && table == TABLE
}

async fn connect(cfg: &Config) -> Result<Conn, String> {
    let mut c = crate::connect::source(cfg)
        .await
        .map_err(|e| e.to_string())?;
    c.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS `{DATABASE}`; CREATE TABLE IF NOT EXISTS `{DATABASE}`.`{TABLE}` (id INT UNSIGNED NOT NULL PRIMARY KEY, ts TIMESTAMP(6) NOT NULL)"
    ))
    .await
    .map_err(|e| format!("creating {DATABASE}.{TABLE} on the source: {e}"))?;
    Ok(c)
}

/// Writes the heartbeat every second until `stop`.
pub async fn run(cfg: Arc<Config>, stats: Arc<ReaderStats>, mut stop: watch::Receiver<bool>) {
    let mut conn: Option<Conn> = None;
    let mut last_warn: Option<Instant> = None;
    let mut told_grant = false;
    let sql = format!("INSERT INTO `{DATABASE}`.`{TABLE}` (id, ts) VALUES ({}, NOW(6)) ON DUPLICATE KEY UPDATE ts = NOW(6)", cfg.server_id);
    loop {
        let res = async {
            if conn.is_none() {
                conn = Some(connect(&cfg).await?);
            }
            match conn.as_mut() {
                Some(c) => c
                    .query_drop(sql.as_str())
                    .await
                    .map_err(|e| format!("writing the heartbeat: {e}")),
                None => Ok(()),
            }
        }
        .await;
        match res {
            Ok(()) => {
                stats.heartbeats_written.fetch_add(1, Relaxed);
            }
            Err(msg) => {
                conn = None;
                let msg = crate::config::scrub(&msg, cfg.source.secret().unwrap_or(""));
                let denied = msg.contains("denied");
                if denied && !told_grant {
                    told_grant = true;
                    error!(error = %msg, grant = %format!("GRANT CREATE, INSERT, UPDATE ON {DATABASE}.* TO <source user>"), "heartbeat cannot be written: grant the privileges on the source or set [source] heartbeat = false; lag reads high while the source is idle");
                } else if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last_warn = Some(Instant::now());
                    warn!(error = %msg, "heartbeat write failed; retrying every second (nothing is lost; lag reads high meanwhile)");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if let Some(c) = conn {
        let _ = c.disconnect().await;
    }
}
