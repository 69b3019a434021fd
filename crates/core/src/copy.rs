//! Initial copy of a service's tables, handed off exactly to the stream.
//!
//! # Algorithm
//! 1. Before reading any row, record the source's current binlog position
//!    `P0` as the service's position (and in `copy_state`). The reader keeps
//!    every change from `P0` on in the relay log.
//! 2. Split each table into key ranges on its first key column (integers by
//!    their MIN..MAX span, other types by sampling the key order), recorded
//!    in `_dropship.copy_chunks` (one row per range, `chunk_no`) before any
//!    row is copied, so a resume uses the same ranges. `copy_threads`
//!    workers copy the ranges of all tables concurrently.
//! 3. Copy each range in chunks by its row key (keyset pagination: `WHERE
//!    key > last ORDER BY key LIMIT n` within the range). Each chunk's rows
//!    (`REPLACE`, see below) and its range's "last key copied" commit in one
//!    target transaction, so a kill -9 resumes every range after its last
//!    committed chunk; finished ranges are not read again. Reading chunk
//!    N+1 overlaps writing chunk N. No long snapshot transaction is held:
//!    each chunk is one statement.
//! 4. Record the source position `P1` when the copy ends, then start the
//!    applier at `P0`. Until `P1` it writes with `REPLACE` (see below).
//!
//! # Why the result is exact
//! Every row image in the binlog is a full image, and applying a change
//! writes the row's whole final state (or deletes it). For any row `r`:
//! if no change touches `r` after `P0`, its copied value is its value at `P0`
//! (= now). Otherwise replay from `P0` ends by writing the image of `r`'s
//! last change, which is its current value — whatever the copy read, and
//! whenever it read it. Rows deleted before their chunk was read are simply
//! not copied; a replayed delete of a missing row deletes nothing. None of
//! this depends on the order in which chunks or ranges are read, so ranges
//! copied concurrently, and resumed at different points, keep it true. The
//! ranges partition the key space (`[lo, hi)` on the first key column, the
//! server's own comparison), so each row's key is read by exactly one range
//! at any moment; a row whose key changes is a delete and an insert, both
//! replayed.
//!
//! Chunks are read at different moments, so two copied rows can hold the
//! same unique secondary value (row `a` copied holding `u`; later `a` moves
//! to another value and `b` takes `u`; then `b` is copied). Chunks are
//! written with `REPLACE`, which removes `a`; `a` comes back when replay
//! reaches its change, which exists because it happened after `a` was read,
//! so after `P0`. For the same reason, during replay before `P1` the target
//! can be *ahead* of the replayed position (a chunk read after a change that
//! replay has not reached yet), so inserting an older image can collide on a
//! unique secondary key with a row copied in its newer state. `REPLACE`
//! removes that row; it comes back when replay reaches its own later change,
//! which exists because its copied state was produced after `P0` and before
//! `P1`. After `P1`, target and replayed position agree and plain `INSERT`
//! is used (a conflict then is a real divergence and stops the service).
//!
//! # How chunks are written
//! With `local_infile` on the target (MariaDB's default), a chunk is sent as
//! tab-separated rows through `LOAD DATA LOCAL INFILE ... REPLACE ...
//! CHARACTER SET binary`: no SQL text to parse. Each field is the text of the
//! literal the `REPLACE` path would write (numbers, FLOAT/DOUBLE as the exact
//! double's shortest text, temporal values with microseconds), bytes raw
//! with `\\`, tab, newline and NUL escaped, NULL as `\N` (distinct from the
//! empty string). `LOCAL` downgrades data errors to warnings, so a chunk
//! with any warning is rolled back and the copy stops with it. Tables with
//! BIT or spatial columns (whose text form would not load the same value),
//! and targets without `local_infile`, use `REPLACE INTO ... VALUES` with hex
//! literals. Either way the rows commit with the range's progress row.
//!
//! # Secondary indexes
//! For a table dropship creates on the target (empty, without foreign
//! keys), its plain non-unique secondary indexes are dropped before the
//! rows load and rebuilt, sorted, when the copy ends (before `P1` and
//! replay); they are recorded in `_dropship.copy_deferred_indexes` first, so
//! a resume rebuilds them too. Unique keys stay: `REPLACE` relies on them.
//!
//! # Target binary log
//! The copy's target sessions set `sql_log_bin = 0` when the target user
//! may (SUPER, or BINLOG ADMIN on MariaDB 10.5+), as myloader does by
//! default: otherwise every copied row is written a second time, to the
//! target binlog. Without the privilege the rows are binlogged and
//! a warning says so once. Nothing in dropship reads the copied rows from
//! the target binlog (reverse replication after a cutover starts at a target
//! position taken long after the copy; rollback's fallback resyncs from the
//! target's tables; replayed changes and everything after the copy are
//! binlogged as usual). Replicas
//! of the target, or point-in-time recovery from its binlog, would miss the
//! copied rows: dropship keeps the binlog when `SHOW SLAVE HOSTS` lists a
//! replica of the target; set `copy_target_binlog = true` for other such
//! targets (it is implied when `max_target_replica_lag` is set).
//!
//! # Privileges and locks
//! Both flavors: SELECT on the copied tables, REPLICATION CLIENT (MySQL) /
//! BINLOG MONITOR (MariaDB 10.5+) for `SHOW MASTER STATUS`. No lock, no
//! FLUSH TABLES WITH READ LOCK, no consistent snapshot, no undo history
//! pinned beyond one chunk's statement.

use crate::config::{Config, ServiceConfig};
use crate::control::stats::ServiceStats;
use crate::error::{Error, Result};
use dropship_mysql::flavor::Flavor;
use dropship_mysql::position::Position;
use dropship_mysql::schema::{self, TableSchema};
use dropship_mysql::sql;
use dropship_mysql::translate;
use dropship_mysql::Value;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tracing::{info, warn};

/// The source's current binlog position and GTID state.
pub async fn source_position(conn: &mut Conn) -> Result<Position> {
    let flavor = Flavor::detect(conn)
        .await
        .map_err(Error::db("detecting the source flavor"))?;
    let row: Option<mysql_async::Row> = conn
        .query_first(flavor.show_binlog_status())
        .await
        .map_err(Error::db(
            "reading the source binlog position (needs REPLICATION CLIENT / BINLOG MONITOR)",
        ))?;
    let row = row.ok_or_else(|| Error::definite("the source has no binary log (SHOW MASTER STATUS is empty)", "enable the binlog on the source: log_bin, binlog_format=ROW, binlog_row_image=FULL, then restart it"))?;
    let (file, pos) = match (row.get::<Option<String>, _>(0).flatten(), row.get::<Option<u64>, _>(1).flatten()) {
        (Some(f), Some(p)) if !f.is_empty() => (f, p),
        (f, p) => {
            return Err(Error::definite(
                format!(
                    "{} returned no usable binlog position (file {f:?}, position {p:?})",
                    flavor.show_binlog_status()
                ),
                "check that the source has its binary log on (log_bin) and that the dropship user may read it (REPLICATION CLIENT; MariaDB: BINLOG MONITOR)",
            ))
        }
    };
    let gtid: String = if flavor.is_mariadb() {
        conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos")
            .await
            .map_err(Error::db("reading gtid_binlog_pos"))?
            .unwrap_or_default()
    } else {
        // Executed_Gtid_Set, from the same statement as file and offset: a
        // separate `SELECT @@gtid_executed` could include transactions
        // committed after that offset, which a resume by GTID would skip.
        row.get::<Option<String>, _>(4)
            .flatten()
            .unwrap_or_default()
    };
    Ok(Position {
        file,
        pos,
        gtid: gtid.replace('\n', ""),
    })
}

/// Source tables the service owns, resolved from its patterns.
pub async fn resolve_tables(
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
    conn: &mut Conn,
    tables: &[Arc<TableSchema>],
) -> Result<()> {
    let flavor = Flavor::detect(conn)
        .await
        .map_err(Error::db("reading the source's version"))?;
    if flavor.logs_cascades(conn).await.map_err(Error::db(
        "reading innodb_native_foreign_keys on the source",
    ))? {
        return Ok(());
    }
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

/// Starts a service's copy: reads the definitions of its tables and the
/// start position `P0` as one snapshot, then creates the target tables.
///
/// Atomicity with DDL: the tables are locked (`LOCK TABLES ... READ`, a
/// moment: writers to those tables wait, nothing else does) while `P0` and
/// the definitions are read, so every DDL on them is either reflected in the
/// definitions (before `P0`) or replayed from the binlog (after `P0`). A table
/// created between listing and locking is caught by listing again under the
/// lock; a table created after `P0` comes through the binlog.
pub async fn start(
    cfg: &Config,
    svc: &ServiceConfig,
    source: &mut Conn,
    target: &mut Conn,
    truncate: bool,
) -> Result<(Vec<Arc<TableSchema>>, Position)> {
    for _attempt in 0..5 {
        let listed = resolve_tables(cfg, svc, source).await?;
        if !listed.is_empty() {
            let locks: Vec<String> = listed
                .iter()
                .map(|t| format!("{} READ", sql::qualified(&t.database, &t.table)))
                .collect();
            source
                .query_drop(format!("SET SESSION lock_wait_timeout = 10; LOCK TABLES {}", locks.join(", ")))
                .await
                .map_err(Error::db("locking the service's tables for a moment to read their definitions (needs LOCK TABLES)"))?;
        }
        let snapshot = async {
            let p0 = source_position(source).await?;
            let again = resolve_tables(cfg, svc, source).await?;
            let mut creates = Vec::new();
            for t in &again {
                let create = schema::show_create_table(source, &t.database, &t.table)
                    .await
                    .map_err(Error::db(format!(
                        "SHOW CREATE TABLE {}.{}",
                        t.database, t.table
                    )))?
                    .ok_or_else(|| {
                        Error::definite(
                            format!("{}.{} disappeared from the source", t.database, t.table),
                            "",
                        )
                    })?;
                creates.push(create);
            }
            Ok::<_, Error>((p0, again, creates))
        }
        .await;
        if !listed.is_empty() {
            source
                .query_drop("UNLOCK TABLES")
                .await
                .map_err(Error::db("unlocking the service's tables"))?;
        }
        let (p0, again, creates) = snapshot?;
        let same = again.len() == listed.len() && again.iter().zip(&listed).all(|(a, b)| a == b);
        if !same {
            continue;
        }
        let flavors = (
            Flavor::detect(source)
                .await
                .map_err(Error::db("reading the source's version"))?,
            Flavor::detect(target)
                .await
                .map_err(Error::db("reading the target's version"))?,
        );
        prepare_target(svc, &again, &creates, target, truncate, &flavors).await?;
        return Ok((again, p0));
    }
    Err(Error::Transient(format!(
        "service {}: its tables kept changing while their definitions were read; retrying",
        svc.name
    )))
}

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
async fn defer_secondary_indexes(
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
async fn rebuild_deferred_indexes(
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

/// Converts a value read with the binary protocol to a [`Value`].
pub fn from_driver(v: mysql_async::Value, data_type: &str) -> Value {
    use mysql_async::Value as V;
    match v {
        V::NULL => Value::Null,
        V::Int(i) => Value::Int(i),
        V::UInt(u) => Value::UInt(u),
        V::Float(f) => Value::Float(f),
        V::Double(d) => Value::Double(d),
        V::Bytes(b) => match data_type {
            "decimal" => Value::Decimal(String::from_utf8_lossy(&b).into_owned()),
            // MySQL JSON reads back as its text; kept apart so that it is written as utf8mb4, not binary.
            "json" => Value::json_from_bytes(b),
            _ => Value::Bytes(b),
        },
        V::Date(y, mo, d, h, mi, s, us) => match data_type {
            "date" => Value::Date {
                year: y,
                month: mo,
                day: d,
            },
            _ => Value::DateTime {
                year: y,
                month: mo,
                day: d,
                hour: h,
                minute: mi,
                second: s,
                micros: us,
            },
        },
        V::Time(neg, days, h, mi, s, us) => Value::Time {
            negative: neg,
            hours: days * 24 + u32::from(h),
            minutes: mi,
            seconds: s,
            micros: us,
        },
    }
}

/// One key range of a table's copy: the rows whose first key column is in
/// `[lo, hi)` (`None` = unbounded), with its own progress row in
/// `_dropship.copy_chunks` (`chunk_no`). Ranges are fixed when the table's
/// copy is planned, so a resume continues each one where it stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub no: u64,
    pub lo: Option<Value>,
    pub hi: Option<Value>,
    /// Key of the last committed row of this range.
    pub last_key: Option<Vec<Value>>,
    pub copied: u64,
    pub done: bool,
}

/// What every range of one table shares.
struct TableCopy {
    svc: ServiceConfig,
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
    fn new(svc: &ServiceConfig, t: Arc<TableSchema>, ranges: &[Range]) -> TableCopy {
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
            conds.push(after_key_predicate(&t.key_names(), k));
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

/// Column types whose tab-separated text form loads to exactly the value
/// the equivalent literal writes. BIT would store the text's bytes, spatial
/// types need their binary through a function: those tables use `REPLACE`.
fn loads_exactly(data_type: &str) -> bool {
    !matches!(
        data_type,
        "bit"
            | "geometry"
            | "point"
            | "linestring"
            | "polygon"
            | "multipoint"
            | "multilinestring"
            | "multipolygon"
            | "geometrycollection"
    )
}

/// Appends one field of a `LOAD DATA` row: `\N` for NULL, bytes escaped
/// (`\\`, `\t`, `\n`, `\0`; everything else raw, `CHARACTER SET binary`),
/// numbers and temporal values as the text of their SQL literal.
///
/// One difference from literals: text `0` into a YEAR column means 2000
/// (the number means 0000), so a zero YEAR is written `0000`.
pub fn push_tsv_field(out: &mut Vec<u8>, v: &Value, data_type: &str, scratch: &mut String) {
    fn escaped(out: &mut Vec<u8>, b: &[u8]) {
        for &c in b {
            match c {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                0 => out.extend_from_slice(b"\\0"),
                c => out.push(c),
            }
        }
    }
    match v {
        Value::Null => out.extend_from_slice(b"\\N"),
        Value::Bytes(b) => escaped(out, b),
        Value::Json(s) | Value::Decimal(s) => escaped(out, s.as_bytes()),
        Value::Int(0) | Value::UInt(0) | Value::Year(0) if data_type == "year" => {
            out.extend_from_slice(b"0000")
        }
        other => {
            scratch.clear();
            other.write_sql(scratch);
            if scratch == "NULL" {
                out.extend_from_slice(b"\\N");
                return;
            }
            let text = scratch
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .unwrap_or(scratch);
            escaped(out, text.as_bytes());
        }
    }
}

fn decode_value<T: serde::de::DeserializeOwned>(
    svc: &str,
    tname: &str,
    no: u64,
    what: &str,
    b: Option<Vec<u8>>,
) -> Result<Option<T>> {
    match b {
        None => Ok(None),
        Some(b) => postcard::from_bytes::<T>(&b).map(Some).map_err(|e| {
            Error::definite(
                format!("service {svc}: _dropship.copy_chunks row for {tname} chunk {no} has an unreadable {what} ({e})"),
                "the copy progress was written by an incompatible dropship version or edited by hand: to copy the service again, drop its target tables and delete its rows from _dropship.copy_state, copy_chunks, service_state and positions",
            )
        }),
    }
}

/// Types whose order on the server and literal form (`write_sql`) agree, so
/// sampled values can bound ranges. Other first key types copy as one range.
fn is_splittable(data_type: &str) -> bool {
    dropship_mysql::schema::is_integer_type(data_type)
        || matches!(
            data_type,
            "char" | "varchar" | "binary" | "varbinary" | "date" | "datetime" | "decimal"
        )
}

/// `n - 1` increasing boundaries splitting `lo..=hi` into `n` equal parts.
pub fn integer_bounds(lo: i128, hi: i128, n: u64) -> Vec<i128> {
    let mut out = Vec::new();
    if n < 2 || hi <= lo {
        return out;
    }
    let span = hi - lo;
    for i in 1..n as i128 {
        let b = lo + span * i / n as i128;
        if b > lo && out.last().is_none_or(|&p| b > p) {
            out.push(b);
        }
    }
    out
}

fn int_of(v: &Value) -> Option<i128> {
    match v {
        Value::Int(i) => Some(i128::from(*i)),
        Value::UInt(u) => Some(i128::from(*u)),
        _ => None,
    }
}

fn value_of_int(i: i128) -> Value {
    match i64::try_from(i) {
        Ok(v) => Value::Int(v),
        Err(_) => Value::UInt(i as u64),
    }
}

/// Boundaries (values of the first key column) splitting `t` into about `n`
/// ranges: integers by their MIN..MAX span, other types by sampling the key
/// order at even row offsets of the estimated row count.
async fn split_points(
    t: &TableSchema,
    source: &mut Conn,
    n: u64,
    est_rows: u64,
) -> Result<Vec<Value>> {
    let Some(&first) = t.key.first() else {
        return Ok(Vec::new());
    };
    let col = &t.columns[first];
    if n < 2 || !is_splittable(&col.data_type) {
        return Ok(Vec::new());
    }
    let table = sql::qualified(&t.database, &t.table);
    let mut k = String::new();
    sql::push_ident(&mut k, &col.name);
    let what = || {
        format!(
            "sampling the key of {}.{} to split its copy",
            t.database, t.table
        )
    };
    // Integer first key columns are split arithmetically.
    if dropship_mysql::schema::is_integer_type(&col.data_type) {
        let row: Option<mysql_async::Row> = source
            .exec_first(format!("SELECT MIN({k}), MAX({k}) FROM {table}"), ())
            .await
            .map_err(Error::db(what()))?;
        let Some(row) = row else {
            return Ok(Vec::new());
        };
        let mut vals = row
            .unwrap()
            .into_iter()
            .map(|v| from_driver(v, &col.data_type));
        let (Some(lo), Some(hi)) = (
            vals.next().as_ref().and_then(int_of),
            vals.next().as_ref().and_then(int_of),
        ) else {
            return Ok(Vec::new());
        };
        return Ok(integer_bounds(lo, hi, n)
            .into_iter()
            .map(value_of_int)
            .collect());
    }
    let mut out: Vec<Value> = Vec::new();
    for i in 1..n {
        let offset = est_rows * i / n;
        let row: Option<mysql_async::Row> = source
            .exec_first(
                format!("SELECT {k} FROM {table} ORDER BY {k} LIMIT 1 OFFSET {offset}"),
                (),
            )
            .await
            .map_err(Error::db(what()))?;
        let Some(row) = row else { break };
        let Some(v) = row
            .unwrap()
            .into_iter()
            .next()
            .map(|v| from_driver(v, &col.data_type))
        else {
            break;
        };
        if v.is_null() || out.last() == Some(&v) {
            continue;
        }
        out.push(v);
    }
    Ok(out)
}

/// The table's ranges: those recorded by an earlier run (resume), or new
/// ones, recorded before any row is copied.
async fn plan_ranges(
    cfg: &Config,
    svc: &ServiceConfig,
    t: &TableSchema,
    source: &mut Conn,
    target: &mut Conn,
) -> Result<(Vec<Range>, u64)> {
    let tname = format!("{}.{}", t.database, t.table);
    let est: Option<Option<u64>> = source
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&t.database, &t.table),
        )
        .await
        .map_err(Error::db(format!("estimating the rows of {tname}")))?;
    let est = est.flatten().unwrap_or(0);
    type Rec = (
        u64,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        u64,
        bool,
    );
    let recorded: Vec<Rec> = target
        .exec(
            "SELECT chunk_no, range_lo, range_hi, last_key, rows_copied, done FROM `_dropship`.`copy_chunks` \
             WHERE service = ? AND table_name = ? ORDER BY chunk_no",
            (&svc.name, &tname),
        )
        .await
        .map_err(Error::db("reading copy progress"))?;
    if !recorded.is_empty() {
        let mut out = Vec::new();
        for (no, lo, hi, last, copied, done) in recorded {
            out.push(Range {
                no,
                lo: decode_value(&svc.name, &tname, no, "range start", lo)?,
                hi: decode_value(&svc.name, &tname, no, "range end", hi)?,
                last_key: decode_value(&svc.name, &tname, no, "last key", last)?,
                copied,
                done,
            });
        }
        return Ok((out, est));
    }
    let threads = cfg.tuning.copy_threads.max(1) as u64;
    let chunk = cfg.tuning.copy_chunk_rows.max(1) as u64;
    let wanted = (est / chunk).clamp(1, threads * 2);
    let bounds = split_points(t, source, wanted, est).await?;
    let mut ranges = Vec::new();
    for i in 0..=bounds.len() {
        ranges.push(Range {
            no: i as u64,
            lo: if i == 0 {
                None
            } else {
                Some(bounds[i - 1].clone())
            },
            hi: bounds.get(i).cloned(),
            last_key: None,
            copied: 0,
            done: false,
        });
    }
    let mut q = String::from(
        "INSERT INTO `_dropship`.`copy_chunks` (service, table_name, chunk_no, range_lo, range_hi, last_key, rows_copied, done) VALUES ",
    );
    for (i, r) in ranges.iter().enumerate() {
        if i > 0 {
            q.push(',');
        }
        q.push('(');
        q.push_str(&sql::string_literal(&svc.name));
        q.push(',');
        q.push_str(&sql::string_literal(&tname));
        q.push_str(&format!(",{},", r.no));
        for b in [&r.lo, &r.hi] {
            match b {
                Some(v) => dropship_mysql::value::write_bytes(
                    &mut q,
                    &postcard::to_allocvec(v).unwrap_or_default(),
                ),
                None => q.push_str("NULL"),
            }
            q.push(',');
        }
        q.push_str("NULL,0,0)");
    }
    target
        .query_drop(q)
        .await
        .map_err(Error::db("recording the copy ranges"))?;
    if ranges.len() > 1 {
        info!(service = %svc.name, table = %tname, ranges = ranges.len(), "copying in parallel key ranges");
    }
    Ok((ranges, est))
}

/// Copies one range, resuming after its last committed chunk. Reading chunk
/// N+1 from the source overlaps writing chunk N to the target.
#[allow(clippy::too_many_arguments)]
async fn copy_range(
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
            same_source_columns(&tc.svc, t, source).await?;
            let q = tc.chunk_query(&range, last.as_deref(), chunk_rows);
            let rows: Vec<mysql_async::Row> = source
                .exec(q.as_str(), ())
                .await
                .map_err(Error::db(format!("reading a chunk of {}", tc.tname)))?;
            if rows.is_empty() {
                break;
            }
            // A DDL that finished between the check above and this read
            // changed what was read: check again before writing.
            same_source_columns(&tc.svc, t, source).await?;
            let n = rows.len();
            let mut key = Vec::new();
            let payload = if load_sql.is_some() {
                let mut tsv = Vec::with_capacity(n * 64);
                for (ri, row) in rows.into_iter().enumerate() {
                    let vals: Vec<Value> = row
                        .unwrap()
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| from_driver(v, &t.columns[i].data_type))
                        .collect();
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
                    let vals: Vec<Value> = row
                        .unwrap()
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| from_driver(v, &t.columns[i].data_type))
                        .collect();
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
    let writer = async {
        let what = || format!("writing a chunk of {} to the target", tc.tname);
        while let Some(chunk) = rx.recv().await {
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

/// Rows whose key sorts after `values` (keyset pagination): the values as
/// literals, in `sql::keyset`'s one form.
pub fn after_key_predicate(keys: &[&str], values: &[Value]) -> String {
    let literals: Vec<String> = values
        .iter()
        .map(|v| {
            let mut s = String::new();
            v.write_sql(&mut s);
            s
        })
        .collect();
    sql::keyset(keys, &literals, sql::KeySide::After)
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
async fn prepare_copy_target(cfg: &Config, svc: &ServiceConfig, target: &mut Conn) -> Result<()> {
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
async fn target_loads_local(target: &mut Conn) -> bool {
    let local: Option<i64> = target
        .query_first("SELECT @@GLOBAL.local_infile")
        .await
        .unwrap_or(None);
    local == Some(1)
}

/// Runs (or resumes) the copy of a service. Returns the end position `P1`.
///
/// Every table is split into key ranges (up to twice `copy_threads`, at
/// least `copy_chunk_rows` rows each by the table's row estimate); the
/// ranges of all tables are copied by `copy_threads` workers, each with its
/// own source and target connection.
pub async fn run(
    cfg: &Config,
    svc: &ServiceConfig,
    tables: &[Arc<TableSchema>],
    stats: Arc<ServiceStats>,
) -> Result<Position> {
    let threads = cfg.tuning.copy_threads.max(1);
    let mut source = crate::connect::source(cfg).await?;
    source
        .query_drop("SET time_zone = '+00:00', NAMES binary")
        .await
        .map_err(Error::db("preparing the copy session"))?;
    let mut target = crate::connect::target_plain(svc).await?;
    let mut work = std::collections::VecDeque::new();
    let (mut total, mut committed) = (0u64, 0u64);
    for t in tables {
        let (ranges, est) = plan_ranges(cfg, svc, t, &mut source, &mut target).await?;
        let tc = Arc::new(TableCopy::new(svc, t.clone(), &ranges));
        let done_rows: u64 = ranges.iter().map(|r| r.copied).sum();
        committed += done_rows;
        total += est.max(done_rows);
        for r in ranges.into_iter().filter(|r| !r.done) {
            work.push_back((tc.clone(), r));
        }
    }
    let load_data = target_loads_local(&mut target).await;
    if load_data {
        info!(service = %svc.name, "copy chunks load with LOAD DATA LOCAL INFILE");
    } else {
        info!(service = %svc.name, "the target has local_infile OFF: copy chunks are written with REPLACE statements (slower)");
    }
    let _ = source.disconnect().await;
    let _ = target.disconnect().await;
    stats.copy_rows_total.store(total, Relaxed);
    stats.rows_copied.store(committed, Relaxed);
    let queue = Arc::new(std::sync::Mutex::new(work));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..threads {
        let queue = queue.clone();
        let cfg = cfg.clone();
        let svc = svc.clone();
        let stats = stats.clone();
        let chunk = cfg.tuning.copy_chunk_rows;
        let max_rps = cfg
            .tuning
            .max_rows_per_second
            .map(|r| (r / threads as u64).max(1));
        tasks.spawn(async move {
            let next = || queue.lock().map(|mut q| q.pop_front()).ok().flatten();
            let Some(mut item) = next() else {
                return Ok(());
            };
            let mut source = crate::connect::source(&cfg).await?;
            source
                .query_drop("SET time_zone = '+00:00', NAMES binary")
                .await
                .map_err(Error::db("preparing the copy session"))?;
            let mut target = crate::connect::target_plain(&svc).await?;
            prepare_copy_target(&cfg, &svc, &mut target).await?;
            loop {
                let (tc, range) = item;
                copy_range(
                    &tc,
                    range,
                    &mut source,
                    &mut target,
                    chunk,
                    &stats,
                    max_rps,
                    load_data,
                )
                .await?;
                match next() {
                    Some(i) => item = i,
                    None => break,
                }
            }
            let _ = source.disconnect().await;
            let _ = target.disconnect().await;
            Ok::<(), Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        let r = r
            .map_err(|e| Error::definite(format!("copy task failed: {e}"), ""))
            .and_then(|r| r);
        if let Err(e) = r {
            // Stop the other workers now: their uncommitted chunks roll back
            // with their connections, committed ones are resumed next time.
            tasks.abort_all();
            return Err(e);
        }
    }
    let mut target = crate::connect::target_plain(svc).await?;
    rebuild_deferred_indexes(svc, tables, &mut target).await?;
    let _ = target.disconnect().await;
    let mut source = crate::connect::source(cfg).await?;
    let end = source_position(&mut source).await?;
    let _ = source.disconnect().await;
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn keyset_predicate_expands_composite_keys() {
        let p = after_key_predicate(&["a", "b"], &[Value::Int(1), Value::Bytes(b"x".to_vec())]);
        assert_eq!(p, "(`a` >= 1 AND ((`a` > 1) OR (`a` = 1 AND `b` > X'78')))");
    }

    #[test]
    fn integer_bounds_split_the_span_evenly_and_never_repeat() {
        assert_eq!(
            integer_bounds(1, 1_000_000, 4),
            vec![250_000, 500_000, 750_000]
        );
        assert_eq!(integer_bounds(-10, 10, 2), vec![0]);
        // Fewer distinct values than ranges: only distinct boundaries.
        assert_eq!(integer_bounds(5, 7, 4), vec![6]);
        assert!(integer_bounds(7, 7, 4).is_empty());
        assert!(integer_bounds(1, 100, 1).is_empty());
        // Unsigned BIGINT extremes do not overflow.
        let b = integer_bounds(0, u64::MAX as i128, 2);
        assert_eq!(b, vec![u64::MAX as i128 / 2]);
        assert_eq!(value_of_int(u64::MAX as i128), Value::UInt(u64::MAX));
        assert_eq!(value_of_int(-3), Value::Int(-3));
    }

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
        let tc = TableCopy::new(&svc, t, std::slice::from_ref(&r));
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

    #[test]
    fn tsv_fields_keep_null_empty_bytes_and_numbers_exact() {
        let mut out = Vec::new();
        let mut scratch = String::new();
        let vals = [
            Value::Null,
            Value::Bytes(Vec::new()),
            Value::Bytes(b"a\tb\nc\\d\0e\\N\r'\"".to_vec()),
            Value::Bytes(vec![0xff, 0x00, 0x80]),
            Value::Int(-5),
            Value::UInt(u64::MAX),
            Value::Double(0.1),
            Value::Float(1.5),
            Value::Double(f64::NAN),
            Value::Decimal("-12.50".into()),
            Value::DateTime {
                year: 2020,
                month: 1,
                day: 2,
                hour: 3,
                minute: 4,
                second: 5,
                micros: 6,
            },
            Value::Date {
                year: 0,
                month: 0,
                day: 0,
            },
        ];
        let mut fields = Vec::new();
        for v in &vals {
            out.clear();
            push_tsv_field(&mut out, v, "x", &mut scratch);
            fields.push(out.clone());
        }
        out.clear();
        push_tsv_field(&mut out, &Value::Int(0), "year", &mut scratch);
        assert_eq!(out, b"0000", "a zero YEAR loads as 0000, not 2000");
        out.clear();
        push_tsv_field(&mut out, &Value::Int(1999), "year", &mut scratch);
        assert_eq!(out, b"1999");
        let want: Vec<&[u8]> = vec![
            b"\\N",
            b"",
            b"a\\tb\\nc\\\\d\\0e\\\\N\r'\"",
            b"\xff\\0\x80",
            b"-5",
            b"18446744073709551615",
            b"1e-1",
            b"1.5e0",
            b"\\N",
            b"-12.50",
            b"2020-01-02 03:04:05.000006",
            b"0000-00-00",
        ];
        for (i, (got, want)) in fields.iter().zip(&want).enumerate() {
            assert_eq!(
                got.as_slice(),
                *want,
                "value {:?}: {:?}",
                vals[i],
                String::from_utf8_lossy(got)
            );
        }
        assert!(!loads_exactly("bit") && !loads_exactly("point") && loads_exactly("blob"));
    }

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

    #[test]
    fn only_types_whose_order_and_literals_agree_are_split() {
        assert!(is_splittable("bigint") && is_splittable("varchar") && is_splittable("datetime"));
        assert!(!is_splittable("enum") && !is_splittable("float") && !is_splittable("timestamp"));
    }
}
