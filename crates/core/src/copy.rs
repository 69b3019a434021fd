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

mod chunk;
mod indexes;
mod ranges;
mod target;
mod tsv;

pub use ranges::{integer_bounds, Range};
pub use target::{drop_target_tables, prepare_target, skip_target_binlog};
pub use tsv::push_tsv_field;

use crate::config::{Config, ServiceConfig};
use crate::control::stats::ServiceStats;
use crate::error::{Error, Result};
use chunk::{copy_range, TableCopy};
use dropship_mysql::flavor::Flavor;
use dropship_mysql::position::Position;
use dropship_mysql::schema::{self, TableSchema};
use dropship_mysql::sql;
use indexes::rebuild_deferred_indexes;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use ranges::plan_ranges;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use target::{prepare_copy_target, target_loads_local};
use tracing::info;

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
        let listed = crate::source::service_tables(cfg, svc, source).await?;
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
            let p0 = crate::source::position(source).await?;
            let again = crate::source::service_tables(cfg, svc, source).await?;
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
        let tc = Arc::new(TableCopy::new(svc, &cfg.source, t.clone(), &ranges));
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
    let end = crate::source::position(&mut source).await?;
    let _ = source.disconnect().await;
    Ok(end)
}
