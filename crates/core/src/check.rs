//! `dropship check`: preflight of the source, the targets and the mapping.
//! One line per check (ok / warn / FAIL) with a hint for each problem.
//! `require_binlog_ready` is the subset `replicate` insists on.

use crate::config::{Config, Endpoint, Tls};
use crate::error::{Error, Result};
use dropship_mysql::flavor::Flavor;
use dropship_mysql::grants::Grants;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub status: Status,
    pub what: String,
    pub detail: String,
    pub hint: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        write!(f, "{s}  {}: {}", self.what, self.detail)?;
        if !self.hint.is_empty() && self.status != Status::Ok {
            write!(f, "\n      hint: {}", self.hint)?;
        }
        Ok(())
    }
}

fn line(status: Status, what: &str, detail: impl Into<String>, hint: impl Into<String>) -> Line {
    Line {
        status,
        what: what.to_string(),
        detail: detail.into(),
        hint: hint.into(),
    }
}

/// A global variable: `Ok(None)` when the server has no such variable, `Err`
/// (the server's message) when it could not be read. Callers never turn an
/// error into a value that passes a check.
async fn var(conn: &mut Conn, name: &str) -> std::result::Result<Option<String>, String> {
    let q = format!(
        "SHOW GLOBAL VARIABLES LIKE {}",
        dropship_mysql::sql::string_literal(name)
    );
    conn.query_first::<(String, String), _>(q)
        .await
        .map(|r| r.map(|r| r.1))
        .map_err(|e| e.to_string())
}

/// The check line for `binlog_row_image`: FULL passes; any other value, no
/// such variable, or a failed read fails (the applier needs full images).
fn row_image_line(v: std::result::Result<Option<String>, String>) -> Line {
    const HINT: &str = "SET GLOBAL binlog_row_image='FULL' and set it in my.cnf";
    match v {
        Ok(Some(img)) if img == "FULL" => line(Status::Ok, "binlog_row_image", "FULL", ""),
        Ok(Some(img)) => line(
            Status::Fail,
            "binlog_row_image",
            format!("invalid setting: expected 'FULL', got '{img}'"),
            HINT,
        ),
        Ok(None) => line(
            Status::Fail,
            "binlog_row_image",
            "the server reports no binlog_row_image: dropship needs full row images (MySQL 5.6+, MariaDB 10.1.6+)",
            HINT,
        ),
        Err(e) => line(
            Status::Fail,
            "binlog_row_image",
            format!("cannot read binlog_row_image: {e}"),
            "check that the dropship user can run SHOW GLOBAL VARIABLES, then run check again",
        ),
    }
}

/// The binlog settings `replicate` cannot run without, on the server it
/// reads: `side` names it in the error (`source`, or `target` for reverse
/// replication).
pub async fn require_binlog_ready(conn: &mut Conn, side: &str) -> Result<()> {
    for l in binlog_checks(conn).await {
        if l.status == Status::Fail {
            return Err(Error::definite(
                format!("{side} {}: {}", l.what, l.detail),
                l.hint,
            ));
        }
    }
    Ok(())
}

async fn binlog_checks(conn: &mut Conn) -> Vec<Line> {
    let mut out = Vec::new();
    let flavor = Flavor::detect(conn).await.ok();
    let log_bin = match var(conn, "log_bin").await {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => {
            out.push(line(
                Status::Fail,
                "binlog",
                format!("cannot read log_bin: {e}"),
                "check that the dropship user can run SHOW GLOBAL VARIABLES, then run check again",
            ));
            return out;
        }
    };
    if log_bin != "ON" {
        out.push(line(Status::Fail, "binlog", format!("log_bin is {}", if log_bin.is_empty() { "unknown" } else { &log_bin }), "enable the binary log: log_bin=ON (MySQL 8 has it on by default; MariaDB needs log-bin in my.cnf) and restart the server"));
        return out;
    }
    out.push(line(Status::Ok, "binlog", "log_bin is ON", ""));
    let fmt = var(conn, "binlog_format")
        .await
        .map(Option::unwrap_or_default)
        .unwrap_or_else(|e| format!("unreadable ({e})"));
    out.push(if fmt == "ROW" {
        line(Status::Ok, "binlog_format", "ROW", "")
    } else {
        line(Status::Fail, "binlog_format", format!("invalid setting: expected 'ROW', got '{fmt}'"), "SET GLOBAL binlog_format='ROW' and set it in my.cnf; existing connections keep the old format until they reconnect")
    });
    out.push(row_image_line(var(conn, "binlog_row_image").await));
    match var(conn, "binlog_row_metadata").await {
        Err(e) => out.push(line(Status::Warn, "binlog_row_metadata", format!("cannot read it ({e}): column names are read from information_schema"), "")),
        Ok(Some(m)) if m == "FULL" => out.push(line(Status::Ok, "binlog_row_metadata", "FULL (column names travel in the binlog)", "")),
        Ok(Some(m)) => out.push(line(Status::Warn, "binlog_row_metadata", format!("{m}: column names are read from information_schema instead"), "SET GLOBAL binlog_row_metadata='FULL' so column names stay right across schema changes")),
        Ok(None) => out.push(line(Status::Warn, "binlog_row_metadata", "not supported by this server: column names are read from information_schema", "")),
    }
    if flavor.as_ref().is_some_and(|f| f.is_mariadb()) {
        out.push(match var(conn, "log_bin_compress").await {
            Ok(Some(c)) if c == "ON" => line(Status::Fail, "log_bin_compress", "ON: compressed binlog events are not supported", "SET GLOBAL log_bin_compress=OFF (and in my.cnf); events written while it was ON cannot be replicated"),
            Ok(_) => line(Status::Ok, "log_bin_compress", "OFF", ""),
            Err(e) => line(Status::Fail, "log_bin_compress", format!("cannot read log_bin_compress: {e}"), "check that the dropship user can run SHOW GLOBAL VARIABLES, then run check again"),
        });
    }
    out
}

/// How the connection to `e` is protected, as the server sees the session
/// (`Ssl_cipher`).
async fn tls_line(conn: &mut Conn, what: &str, e: &Endpoint) -> Line {
    let cipher: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .ok()
        .flatten();
    let cipher = cipher.map(|(_, v)| v).filter(|v| !v.is_empty());
    match (e.tls, cipher) {
        (Tls::VerifyFull, Some(c)) => line(
            Status::Ok,
            what,
            format!(
                "{c}; the certificate is verified for {} against {}",
                e.host,
                e.ca()
                    .map_or("the system's CA roots".into(), |p| p.display().to_string())
            ),
            "",
        ),
        (Tls::Required, Some(c)) => line(
            Status::Warn,
            what,
            format!("{c}, but the certificate is not verified (tls = \"required\"): anyone on the path can pose as the server"),
            "set tls = \"verify-full\" with ca = \"path/to/ca.pem\" (RDS and Aurora: the region's bundle, see README \"TLS\")",
        ),
        (Tls::Disabled, None) if e.is_loopback() => line(Status::Ok, what, "disabled (loopback)", ""),
        (Tls::Disabled, _) => line(
            Status::Warn,
            what,
            "disabled: passwords and rows cross the network in clear",
            "remove tls = \"disabled\" (verify-full is the default off loopback)",
        ),
        (_, None) => line(
            Status::Fail,
            what,
            "the session is not encrypted although the config asks for TLS",
            "check the server's TLS setup (ssl_cert, ssl_key); please report this",
        ),
    }
}

/// Runs every check.
pub async fn run(cfg: &Config) -> Vec<Line> {
    let mut out = Vec::new();
    let mut src = match crate::connect::source(cfg).await {
        Ok(c) => c,
        Err(e) => {
            // The error reads "connecting to the source URL: why".
            let msg = crate::config::scrub(&e.to_string(), cfg.source.secret().unwrap_or(""));
            let hint = e
                .hint()
                .or_else(|| crate::config::tls_hint(&msg))
                .unwrap_or_else(|| {
                    "check the host, port, TLS setting and that the server runs".into()
                });
            out.push(line(
                Status::Fail,
                "source",
                format!("cannot connect: {msg}"),
                hint,
            ));
            return out;
        }
    };
    let flavor = Flavor::detect(&mut src)
        .await
        .unwrap_or_else(|_| Flavor::parse(""));
    out.push(if flavor.supported() {
        line(
            Status::Ok,
            "source",
            format!("{} reachable, {flavor} ({})", cfg.source, flavor.version),
            "",
        )
    } else {
        line(
            Status::Fail,
            "source",
            format!("{flavor} is not supported"),
            "dropship reads MySQL 5.7, 8.0, 8.4 and MariaDB 10.x+",
        )
    });
    out.push(tls_line(&mut src, "source tls", &cfg.source).await);
    out.extend(binlog_checks(&mut src).await);
    // GTIDs.
    if flavor.is_mariadb() {
        let pos = var(&mut src, "gtid_binlog_pos")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let strict = var(&mut src, "gtid_strict_mode")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        out.push(line(
            Status::Ok,
            "gtid",
            format!("MariaDB GTIDs, gtid_binlog_pos='{pos}', gtid_strict_mode={strict}"),
            "",
        ));
    } else {
        let mode = var(&mut src, "gtid_mode")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| "unknown".into());
        out.push(line(
            Status::Ok,
            "gtid",
            format!("gtid_mode={mode} (positions are also kept as file:offset)"),
            "",
        ));
    }
    // Retention.
    let secs = match var(&mut src, "binlog_expire_logs_seconds")
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(s) if s > 0 => Some(s),
        _ => var(&mut src, "expire_logs_days")
            .await
            .ok()
            .flatten()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|d| *d > 0.0)
            .map(|d| (d * 86400.0) as u64),
    };
    out.push(match secs {
        None => line(Status::Ok, "binlog retention", "binlogs are not purged automatically", ""),
        Some(s) if s < 86_400 => line(Status::Warn, "binlog retention", format!("binlogs are purged after {}h", s / 3600), "keep at least 24h (binlog_expire_logs_seconds=86400) so dropship can resume after an outage; its relay log covers what it has already read"),
        Some(s) => line(Status::Ok, "binlog retention", format!("{}h", s / 3600), ""),
    });
    // Source privileges.
    out.push(match Grants::of_current_user(&mut src).await {
        Ok(grants) => source_privileges(&grants, &flavor),
        Err(e) => line(
            Status::Warn,
            "source privileges",
            format!("SHOW GRANTS failed: {e}"),
            "check the user's privileges by hand against the README's Privileges section",
        ),
    });
    // Server id.
    let own: Option<u32> = src.query_first("SELECT @@server_id").await.ok().flatten();
    let hosts: Vec<mysql_async::Row> = src
        .query(flavor.show_replica_hosts())
        .await
        .unwrap_or_default();
    let used = own == Some(cfg.server_id)
        || hosts
            .iter()
            .any(|r| r.get::<u32, _>(0) == Some(cfg.server_id));
    out.push(if used {
        line(
            Status::Fail,
            "server_id",
            format!(
                "{} is already used by the source or another replica",
                cfg.server_id
            ),
            "set source.server_id to a number no other server or replica uses",
        )
    } else {
        line(
            Status::Ok,
            "server_id",
            format!("{} is free", cfg.server_id),
            "",
        )
    });
    // Mapping.
    let facts = crate::source::facts(&mut src).await;
    for svc in &cfg.services {
        let what = format!("service {}", svc.name);
        let tables = match crate::source::service_tables(cfg, svc, &mut src).await {
            Err(e) => {
                out.push(line(
                    Status::Fail,
                    &what,
                    e.to_string(),
                    e.hint().unwrap_or_default(),
                ));
                Vec::new()
            }
            Ok(t) if t.is_empty() => {
                out.push(line(
                    Status::Warn,
                    &what,
                    "no source table matches its patterns yet",
                    "tables created later that match a pattern are picked up",
                ));
                t
            }
            Ok(t) => {
                let refused = match &facts {
                    Ok(f) => {
                        crate::source::refuse_unlogged_cascades(cfg, svc, f, &mut src, &t).await
                    }
                    Err(e) => Err(Error::definite(e.to_string(), e.hint().unwrap_or_default())),
                };
                out.push(match refused {
                    Ok(()) => line(
                        Status::Ok,
                        &what,
                        format!("{} tables, each with a row key", t.len()),
                        "",
                    ),
                    Err(e) => line(
                        Status::Fail,
                        &what,
                        e.to_string(),
                        e.hint().unwrap_or_default(),
                    ),
                });
                let names: Vec<(String, String)> = t
                    .iter()
                    .map(|s| (s.database.clone(), s.table.clone()))
                    .collect();
                out.push(
                    freeze_check(&mut src, &format!("cutover {}", svc.name), "source", &names)
                        .await,
                );
                t
            }
        };
        out.extend(target_check(svc, &tables).await);
    }
    let _ = src.disconnect().await;
    out
}

/// The source user's replication and copy privileges; more than needed is a warning.
fn source_privileges(g: &Grants, flavor: &Flavor) -> Line {
    let mut missing = Vec::new();
    if !g.global("REPLICATION SLAVE") && !g.global("REPLICATION REPLICA") {
        missing.push("REPLICATION SLAVE");
    }
    if !g.global("REPLICATION CLIENT") && !g.global("BINLOG MONITOR") && !g.global("SLAVE MONITOR")
    {
        missing.push(if flavor.is_mariadb() {
            "BINLOG MONITOR"
        } else {
            "REPLICATION CLIENT"
        });
    }
    if !g.anywhere("SELECT") {
        missing.push("SELECT");
    }
    if !g.anywhere("LOCK TABLES") {
        missing.push("LOCK TABLES");
    }
    if !missing.is_empty() {
        return line(Status::Fail, "source privileges", format!("missing {}", missing.join(", ")), format!("GRANT {} ON *.* TO the dropship user (SELECT and LOCK TABLES may be limited to the mapped databases)", missing.join(", ")));
    }
    let broad = g.broad();
    if broad.is_empty() {
        line(
            Status::Ok,
            "source privileges",
            "REPLICATION SLAVE, REPLICATION CLIENT/BINLOG MONITOR, SELECT, LOCK TABLES",
            "",
        )
    } else {
        line(
            Status::Warn,
            "source privileges",
            format!("{}: more than dropship needs", broad.join(", ")),
            "create a user with only what the README's Privileges section lists",
        )
    }
}

/// Whether the cutover's freeze triggers (source) or the rollback's (target)
/// could be created: TRIGGER on each table, and with the binlog on, SUPER or
/// `log_bin_trust_function_creators=1`. A warning: replication runs without.
async fn freeze_check(
    conn: &mut Conn,
    what: &str,
    side: &str,
    tables: &[(String, String)],
) -> Line {
    match crate::cutover::freeze::check_privileges(conn, tables).await {
        Ok(p) if p.is_empty() => line(Status::Ok, what, format!("the {side} user may create the write-freeze triggers"), ""),
        Ok(p) => line(Status::Warn, what, format!("the write freeze on the {side} would fail: {}", p.join("; ")), "replication runs without these; fix them before the maintenance window (`dropship cutover` refuses until then)"),
        Err(e) => line(Status::Warn, what, format!("cannot read the {side} user's privileges: {e}"), ""),
    }
}

async fn target_check(
    svc: &crate::config::ServiceConfig,
    tables: &[std::sync::Arc<dropship_mysql::schema::TableSchema>],
) -> Vec<Line> {
    let what = format!("target {}", svc.name);
    let mut c = match crate::connect::target_plain(svc).await {
        Ok(c) => c,
        Err(e) => {
            let msg = crate::config::scrub(&e.to_string(), svc.target.secret().unwrap_or(""));
            let hint = e
                .hint()
                .or_else(|| crate::config::tls_hint(&msg))
                .unwrap_or_else(|| "check the host, port, credentials and TLS setting".into());
            return vec![line(
                Status::Fail,
                &what,
                format!("cannot connect: {msg}"),
                hint,
            )];
        }
    };
    let tls = tls_line(&mut c, &format!("{what} tls"), &svc.target).await;
    let flavor = Flavor::detect(&mut c)
        .await
        .unwrap_or_else(|_| Flavor::parse(""));
    let grants = match Grants::of_current_user(&mut c).await {
        Ok(g) => g,
        Err(e) => {
            let _ = c.disconnect().await;
            return vec![line(
                Status::Warn,
                &what,
                format!("{} reachable, but SHOW GRANTS failed: {e}", svc.target),
                "check the user's privileges by hand against the README's Privileges section",
            )];
        }
    };
    // MySQL checks REFERENCES when a table with a foreign key is created;
    // MariaDB does not.
    let mut need = vec![
        "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "INDEX",
    ];
    if !flavor.is_mariadb() {
        need.push("REFERENCES");
    }
    let mut databases: Vec<String> = svc
        .source_databases()
        .iter()
        .map(|d| svc.target_database(d).to_string())
        .collect();
    databases.push(crate::meta::DB.to_string());
    let mut missing: Vec<String> = Vec::new();
    for p in &need {
        let lacking: Vec<&str> = databases
            .iter()
            .filter(|d| !grants.on_database(p, d))
            .map(String::as_str)
            .collect();
        if !lacking.is_empty() {
            missing.push(format!("{p} on {}", lacking.join(", ")));
        }
    }
    // Informational (reverse replication's readiness): an unreadable value
    // reads as unknown, which that warning then names.
    let unknown = |v: std::result::Result<Option<String>, String>| {
        v.ok().flatten().unwrap_or_else(|| "unknown".into())
    };
    let log_bin = unknown(var(&mut c, "log_bin").await);
    let format = unknown(var(&mut c, "binlog_format").await);
    let image = unknown(var(&mut c, "binlog_row_image").await);
    if !missing.is_empty() {
        let _ = c.disconnect().await;
        return vec![line(
            Status::Fail,
            &what,
            format!("the target user lacks {}", missing.join("; ")),
            format!(
                "GRANT {} ON each of the service's target databases and on `_dropship`.* TO the dropship user",
                need.join(", ")
            ),
        )];
    }
    let mut out = vec![tls];
    // MySQL 8.0.13+: tables without a PRIMARY KEY cannot be created there.
    // No such variable (MariaDB, MySQL before 8.0.13) means OFF; a failed
    // read is said, not taken as OFF.
    let require_pk = match var(&mut c, "sql_require_primary_key").await {
        Ok(v) => v.as_deref() == Some("ON"),
        Err(e) => {
            out.push(line(
                Status::Warn,
                &format!("{what} sql_require_primary_key"),
                format!("cannot read sql_require_primary_key: {e}; if it is ON, tables without a PRIMARY KEY cannot be created on the target"),
                "check that the dropship user can run SHOW GLOBAL VARIABLES on the target, then run check again",
            ));
            false
        }
    };
    if require_pk {
        let keyless: Vec<String> = tables
            .iter()
            .filter(|t| !t.key_is_primary)
            .map(|t| format!("{}.{}", t.database, t.table))
            .collect();
        if !keyless.is_empty() {
            out.push(line(
                Status::Fail,
                &format!("{what} sql_require_primary_key"),
                format!("the target has sql_require_primary_key=ON and {} {} no PRIMARY KEY (the row key is a NOT NULL unique key): creating {} on the target fails", keyless.join(", "), if keyless.len() == 1 { "has" } else { "have" }, if keyless.len() == 1 { "it" } else { "them" }),
                "add a PRIMARY KEY to the source table (the unique key's columns), or set sql_require_primary_key=OFF on the target (RDS/Aurora: in the DB parameter group)",
            ));
        }
    }
    let broad = grants.broad();
    if !broad.is_empty() {
        out.push(line(
            Status::Warn,
            &format!("{what} privileges"),
            format!("{}: more than dropship needs", broad.join(", ")),
            "create a user with only what the README's Privileges section lists",
        ));
    }
    // The rollback freezes the target with triggers on the service's tables.
    let tables: Vec<(String, String)> = databases
        .iter()
        .filter(|d| d.as_str() != crate::meta::DB)
        .map(|d| (d.clone(), String::new()))
        .collect();
    out.push(freeze_check(&mut c, &format!("rollback {}", svc.name), "target", &tables).await);
    let _ = c.disconnect().await;
    // Reverse replication after a cutover reads the target's binlog
    // (`reverse`); without it a rollback copies the tables back in full.
    if log_bin != "ON" || format != "ROW" || image != "FULL" {
        let now = if log_bin != "ON" {
            "binlog OFF".to_string()
        } else {
            format!("binlog_format={format}, binlog_row_image={image}")
        };
        out.insert(0, line(
            Status::Warn,
            &what,
            format!("{} reachable, privileges ok, {now}: no reverse replication after a cutover, so a rollback would copy the service's tables back in full inside its freeze", svc.target),
            "for a rollback that loses nothing in about a second: log_bin=ON, binlog_format=ROW, binlog_row_image=FULL on the target (RDS/Aurora: automated backups on, both in the DB parameter group), and GRANT REPLICATION SLAVE, BINLOG MONITOR (MySQL: REPLICATION CLIENT) to the dropship user",
        ));
        return out;
    }
    out.insert(0, line(
        Status::Ok,
        &what,
        format!(
            "{} reachable, privileges ok, binlog ROW/FULL (reverse replication keeps the source current after a cutover)",
            svc.target
        ),
        "",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_row_image_passes_only_when_read_as_full() {
        assert_eq!(row_image_line(Ok(Some("FULL".into()))).status, Status::Ok);
        for v in [
            Ok(Some("MINIMAL".to_string())),
            Ok(None),
            Err("Lost connection to server during query".to_string()),
        ] {
            let l = row_image_line(v.clone());
            assert_eq!(l.status, Status::Fail, "{v:?} must fail, got {l:?}");
            assert!(!l.hint.is_empty(), "{l:?}");
        }
        let l = row_image_line(Err("Lost connection".into()));
        assert!(l.detail.contains("Lost connection"), "{l:?}");
    }
}
