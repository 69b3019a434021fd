//! The write freeze: `BEFORE INSERT`, `BEFORE UPDATE` and `BEFORE DELETE`
//! triggers on each frozen table that `SIGNAL SQLSTATE '45000'` with
//! `dropship: writes to DB.T are frozen for the cutover of service S`.
//!
//! # Why triggers
//! They stop every user, root included (a legacy app connecting as root is
//! frozen too), per table (other services keep writing), and a write fails at
//! once with error 1644 naming the service instead of hanging. `read_only`
//! misses root and freezes the whole server; `REVOKE` misses root;
//! `LOCK TABLES` makes writers hang; renames break readers.
//!
//! # Draining in-flight transactions
//! `CREATE TRIGGER` takes a metadata lock on its table, so it waits until
//! every open transaction that touched the table commits or rolls back.
//! While it waits, new statements on the table queue behind it. The session
//! runs with `lock_wait_timeout` set to what is left of `--max-freeze`, so
//! within `--max-freeze` either every table carries its triggers (and every
//! write that succeeded before is committed, hence in the binlog before the
//! position recorded next), or creation fails with "lock wait timeout" and
//! the caller drops what it created (nothing was lost: writes that failed were
//! never acknowledged). A long read-only transaction on a frozen table also
//! blocks the freeze (and the unfreeze): it aborts in that case too.
//!
//! # dropship's own writes
//! The trigger lets a session through when `@dropship_freeze_bypass` equals
//! the run's random token (kept in the journal on the target). Only the
//! rollback's copy-back uses it; an application never sets it.
//!
//! # Existing triggers
//! If a table already has a BEFORE trigger for the event, the freeze trigger
//! is created `PRECEDES` the first one, so it fires before any app logic.
//!
//! # Binlog
//! `CREATE TRIGGER`/`DROP TRIGGER` are binlogged on the source as query
//! events. The reader only forwards table DDL that `ddl::parse` recognises
//! (ALTER/CREATE/DROP/RENAME/TRUNCATE TABLE, CREATE/DROP INDEX):
//! `CREATE DEFINER=... TRIGGER` and `DROP TRIGGER` are not among them, so the
//! freeze never reaches a target (the tests check the target has no trigger).
//!
//! # Privileges
//! `GRANT TRIGGER ON db.* TO 'dropship'@'%'` (or per table) on the server
//! whose tables are frozen. With the binlog on, creating a trigger without
//! SUPER also needs `log_bin_trust_function_creators=1` (server config; on
//! RDS/Aurora in the DB parameter group) — error 1419 otherwise.
//! [`check_privileges`] reports both without changing anything.

use crate::error::{Error, Result};
use dropship_mysql::sql;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::{Duration, Instant};

/// Prefix of every trigger dropship creates.
pub const PREFIX: &str = "dropship_freeze_";

const EVENTS: [(&str, &str); 3] = [("INSERT", "ins"), ("UPDATE", "upd"), ("DELETE", "del")];

/// The freeze trigger's name for `table` and an event short name.
pub fn trigger_name(short: &str, table: &str) -> String {
    let head: String = table
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(30)
        .collect();
    format!(
        "{PREFIX}{short}_{head}_{:08x}",
        crc32fast::hash(table.as_bytes())
    )
}

/// The error text a frozen write gets (SIGNAL texts are capped at 128 characters).
pub fn message(db: &str, table: &str, service: &str) -> String {
    let m =
        format!("dropship: writes to {db}.{table} are frozen for the cutover of service {service}");
    if m.chars().count() <= 128 {
        m
    } else {
        let short = format!("dropship: writes are frozen for the cutover of service {service}");
        short.chars().take(128).collect()
    }
}

fn create_sql(
    db: &str,
    table: &str,
    event: &str,
    short: &str,
    service: &str,
    token: &str,
    precedes: Option<&str>,
) -> String {
    let order = precedes
        .map(|p| format!(" PRECEDES {}", sql::ident(p)))
        .unwrap_or_default();
    format!(
        "CREATE TRIGGER {} BEFORE {event} ON {} FOR EACH ROW{order} \
         IF NOT (@dropship_freeze_bypass <=> {}) THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = {}; END IF",
        sql::qualified(db, &trigger_name(short, table)),
        sql::qualified(db, table),
        sql::string_literal(token),
        sql::string_literal(&message(db, table, service)),
    )
}

/// Names of dropship's freeze triggers on `db.table`.
pub async fn existing(conn: &mut Conn, db: &str, table: &str) -> Result<Vec<String>> {
    conn.exec(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? AND TRIGGER_NAME LIKE 'dropship\\_freeze\\_%'",
        (db, table),
    )
    .await
    .map_err(Error::db(format!("listing triggers on {db}.{table}")))
}

/// Freezes `tables` (db, table) for `service`. Idempotent: triggers that
/// exist are kept. Fails (having created possibly some triggers: the caller
/// unfreezes) when the tables cannot be frozen within `max_wait`.
pub async fn freeze(
    conn: &mut Conn,
    tables: &[(String, String)],
    service: &str,
    token: &str,
    max_wait: Duration,
) -> Result<()> {
    let started = Instant::now();
    for (db, table) in tables {
        // One look at the table's BEFORE triggers (ours and the app's), then
        // one round trip per trigger: the freeze window is made of these.
        let before: Vec<(String, String)> = conn
            .exec(
                "SELECT TRIGGER_NAME, EVENT_MANIPULATION FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? \
                 AND ACTION_TIMING = 'BEFORE' ORDER BY ACTION_ORDER",
                (db, table),
            )
            .await
            .map_err(Error::db(format!("listing triggers on {db}.{table}")))?;
        for (event, short) in EVENTS {
            let name = trigger_name(short, table);
            if before.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let left = max_wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(drain_timeout(db, table, max_wait));
            }
            let secs = left.as_secs_f64().ceil().max(1.0) as u64;
            let first = before
                .iter()
                .find(|(n, e)| e == event && !n.starts_with(PREFIX))
                .map(|(n, _)| n.as_str());
            let stmt = format!(
                "SET SESSION lock_wait_timeout = {secs}; {}",
                create_sql(db, table, event, short, service, token, first)
            );
            match conn.query_drop(stmt).await {
                Ok(()) => {}
                Err(mysql_async::Error::Server(e)) if e.code == 1205 => return Err(drain_timeout(db, table, max_wait)),
                Err(e) => {
                    return Err(match &e {
                        mysql_async::Error::Server(se) if se.code == 1419 => Error::definite(
                            format!("cannot create the freeze trigger on {db}.{table}: {se}"),
                            "with the binlog on, creating triggers without SUPER needs log_bin_trust_function_creators=1 (server config; on RDS/Aurora in the DB parameter group)",
                        ),
                        mysql_async::Error::Server(se) if matches!(se.code, 1142 | 1044 | 1227) => Error::definite(
                            format!("cannot create the freeze trigger on {db}.{table}: {se}"),
                            format!("GRANT TRIGGER ON {}.* TO the user dropship connects as", sql::grant_database(db)),
                        ),
                        _ => Error::Db { what: format!("creating the freeze trigger on {db}.{table}"), source: e },
                    })
                }
            }
        }
    }
    Ok(())
}

fn drain_timeout(db: &str, table: &str, max_wait: Duration) -> Error {
    Error::definite(
        format!("transactions in flight on {db}.{table} did not finish within --max-freeze {max_wait:?}"),
        "find long transactions (SELECT * FROM information_schema.INNODB_TRX) and retry when they are done, or pass a larger --max-freeze",
    )
}

/// Drops every dropship freeze trigger on `tables`. Returns how many it dropped.
pub async fn unfreeze(conn: &mut Conn, tables: &[(String, String)]) -> Result<usize> {
    conn.query_drop("SET SESSION lock_wait_timeout = 60")
        .await
        .map_err(Error::db("setting lock_wait_timeout for the unfreeze"))?;
    let mut n = 0;
    for (db, table) in tables {
        let names = existing(conn, db, table).await?;
        if names.is_empty() {
            continue;
        }
        // One round trip per table.
        let stmts: Vec<String> = names
            .iter()
            .map(|name| format!("DROP TRIGGER IF EXISTS {}", sql::qualified(db, name)))
            .collect();
        conn.query_drop(stmts.join("; "))
            .await
            .map_err(Error::db(format!(
                "dropping the freeze triggers on {db}.{table}"
            )))?;
        n += names.len();
    }
    Ok(n)
}

/// True when every table carries all three freeze triggers.
pub async fn is_frozen(conn: &mut Conn, tables: &[(String, String)]) -> Result<bool> {
    for (db, table) in tables {
        let have = existing(conn, db, table).await?;
        if EVENTS
            .iter()
            .any(|(_, short)| !have.contains(&trigger_name(short, table)))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Problems that would stop [`freeze`], found without changing anything:
/// the TRIGGER privilege on each table's database (through the
/// information_schema privilege views of the current user) and, with the
/// binlog on, SUPER or `log_bin_trust_function_creators`. Privileges held
/// only through roles are not seen (reported as missing).
pub async fn check_privileges(conn: &mut Conn, tables: &[(String, String)]) -> Result<Vec<String>> {
    let grantee: String = conn
        .query_first("SELECT CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')")
        .await
        .map_err(Error::db("reading the current user"))?
        .unwrap_or_default();
    let global: Vec<String> = conn
        .exec(
            "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?",
            (&grantee,),
        )
        .await
        .map_err(Error::db("reading the user's privileges"))?;
    let mut problems = Vec::new();
    for (db, table) in tables {
        if global.iter().any(|p| p == "TRIGGER") {
            break;
        }
        let on_db: Option<u8> = conn
            .exec_first(
                // A database-level grant's name is a LIKE pattern (`h\_st`
                // names h_st only; `h_st` also hXst): match the name against it.
                "SELECT 1 FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ? AND PRIVILEGE_TYPE = 'TRIGGER' AND ? LIKE TABLE_SCHEMA \
                 UNION SELECT 1 FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = ? AND PRIVILEGE_TYPE = 'TRIGGER' AND TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&grantee, db, &grantee, db, table),
            )
            .await
            .map_err(Error::db("reading the user's privileges"))?;
        if on_db.is_none() {
            problems.push(format!("{grantee} lacks the TRIGGER privilege on {db}.{table}: GRANT TRIGGER ON {}.* TO {grantee}", sql::grant_database(db)));
        }
    }
    let (log_bin, trust): (Option<i64>, Option<i64>) = conn
        .query_first("SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators")
        .await
        .map_err(Error::db("reading log_bin_trust_function_creators"))?
        .unwrap_or((None, None));
    if log_bin == Some(1) && trust != Some(1) && !global.iter().any(|p| p == "SUPER") {
        problems.push(format!(
            "the binlog is on and {grantee} has no SUPER: creating triggers needs log_bin_trust_function_creators=1 (server config; on RDS/Aurora in the DB parameter group)"
        ));
    }
    Ok(problems)
}
