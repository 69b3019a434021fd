//! One applier per service: reads relay records, keeps the service's rows,
//! writes them to its target in batches, and commits the service position in
//! the same target transaction as the rows it covers.
//!
//! Exactly-once: on start the applier reads its committed position `P` from
//! `_dropship.positions`. A relay transaction whose start position is before
//! `P` is skipped whole (its effects are already on the target); the first
//! one starting at `P` is applied. Positions are only ever at transaction
//! boundaries. A crash rolls back the open target transaction, so the
//! committed position and the rows always agree.
//!
//! Memory is bounded: one source transaction is staged until its commit, up
//! to `HUGE_ROWS` rows or `HUGE_BYTES` of values; beyond that its rows are
//! written into an open target transaction as they arrive (whenever the batch
//! holds `BATCH_BYTES`) and only the commit record commits it.
//!
//! Failure: every error leaves the target transaction rolled back; the
//! controller (`replicate`) decides to retry (transient) or pause (definite).

use crate::apply::batch::{Batch, TableShape};
use crate::apply::watchdog;
use crate::config::ServiceConfig;
use crate::control::stats::{now_epoch, ServiceStats};
use crate::error::{Error, Result};
use crate::meta;
use crate::stream::record::{DdlRecord, Record, RowsRecord};
use dropship_mysql::ddl::DdlKind;
use dropship_mysql::flavor::Flavor;
use dropship_mysql::position::Position;
use dropship_mysql::schema::{self, TableSchema};
use dropship_mysql::{RowImage, RowKind, Value};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rows of one source transaction kept in memory before streaming it.
pub const HUGE_ROWS: usize = 20_000;
/// Bytes of values of one source transaction kept in memory before streaming it.
pub const HUGE_BYTES: usize = 16 << 20;
/// Bytes of values a batch holds before it is written (committed or not).
pub const BATCH_BYTES: usize = 16 << 20;
/// Largest statement text we build.
const MAX_STATEMENT: usize = 4 << 20;

/// Session settings every applier connection uses (see DESIGN-NOTES: bytes
/// unconverted, UTC timestamps, zero dates allowed, no FK ordering failures).
pub const SESSION_SQL: &str = "SET NAMES binary, time_zone = '+00:00', \
     sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,ALLOW_INVALID_DATES', \
     foreign_key_checks = 0, unique_checks = 1, autocommit = 1";

/// Where an applier gets relay records from.
#[allow(async_fn_in_trait)]
pub trait RecordSource {
    /// The next record if one is available now.
    fn try_next(&mut self) -> Result<Option<(u64, Record)>>;
    /// Waits until a record may be available or `timeout` passes.
    async fn wait(&mut self, timeout: Duration);
}

/// What the applier learned about a target table.
struct TargetTable {
    db: String,
    name: String,
    schema: TableSchema,
    shape: TableShape,
    insert_idx: Vec<usize>,
    /// Per column: a JSON column on the target (values written as utf8mb4 text, never as a binary string).
    json: Vec<bool>,
}

/// A value bound for a target JSON column: text from a MariaDB source (a LONGTEXT there) becomes JSON text.
fn as_json(v: Value) -> Value {
    match v {
        Value::Bytes(b) => Value::json_from_bytes(b),
        other => other,
    }
}

struct OpenTx {
    begin_id: u64,
    skip: bool,
    staged: Vec<RowsRecord>,
    staged_rows: usize,
    staged_bytes: usize,
    streamed: bool,
    had_ddl: bool,
}

/// Why `run` returned.
#[derive(Debug)]
pub enum Stop {
    /// The caller asked to stop; everything read was committed.
    Requested,
    /// A transaction was abandoned by a reader restart after part of it was
    /// written: restart from the committed position and skip `begin_id`.
    Abandoned { begin_id: u64 },
}

/// A batch's statements running on the target while the applier stages the
/// next one (see `flush`).
struct Inflight {
    task: tokio::task::JoinHandle<(Conn, std::result::Result<(), mysql_async::Error>)>,
    /// The writing connection's id on the target, for the watchdog.
    conn_id: u32,
    /// Set when the statements end with COMMIT: what is committed once they succeed.
    commit: Option<Committed>,
}

struct Committed {
    pos: Option<(Position, u32)>,
    relay_id: u64,
    /// Rows inserted, updated, deleted by this target transaction: counted
    /// as applied only once it has committed.
    rows: [u64; 3],
}

/// How an applier runs, given to [`Applier::new`].
pub struct ApplierOptions {
    /// `None`: DDL passes untranslated and unchecked (tests, tools).
    pub source: Option<crate::source::Facts>,
    /// The copy's end: until this position the replay after an initial copy
    /// writes with REPLACE (ignored once the committed position is past it).
    pub catch_up_until: Option<Position>,
    /// Rows per target transaction, at most.
    pub batch_rows: usize,
    /// How long a batch may wait for more rows.
    pub batch_delay: Duration,
    /// Relay ids of `Begin` records to skip (transactions already applied).
    pub skip_begin_ids: Vec<u64>,
    /// Called with the relay id of the last record covered by each commit.
    pub on_commit: Option<Box<dyn FnMut(u64) + Send>>,
}

impl Default for ApplierOptions {
    fn default() -> Self {
        ApplierOptions {
            source: None,
            catch_up_until: None,
            batch_rows: 5000,
            batch_delay: Duration::from_millis(50),
            skip_begin_ids: Vec::new(),
            on_commit: None,
        }
    }
}

pub struct Applier {
    svc: Arc<ServiceConfig>,
    source: Option<crate::source::Facts>,
    /// The target's flavor, read at the first DDL.
    target_flavor: Option<Flavor>,
    /// `None` while a batch is in flight (the task owns the connection).
    conn: Option<Conn>,
    inflight: Option<Inflight>,
    stats: Arc<ServiceStats>,
    tables: HashMap<(String, String), Arc<TargetTable>>,
    batch: Batch,
    batch_started: Option<Instant>,
    /// Position whose effects are committed or in the batch, with its commit ts.
    applied: Option<(Position, u32)>,
    /// Last committed position.
    committed: Option<Position>,
    /// Last position written with a COMMIT (committed, or in flight).
    sent: Option<Position>,
    /// The source time written with `sent`: an idle source's heartbeats
    /// move the time on at the same position.
    sent_ts: u32,
    pub committed_relay_id: u64,
    batch_relay_id: u64,
    /// Id of the last relay record read.
    read_relay_id: u64,
    pending_progress: Option<(Position, u32)>,
    last_progress_write: Instant,
    /// Rows staged (insert, update, delete) since the last commit was sent.
    staged_rows: [u64; 3],
    open: Option<OpenTx>,
    in_target_tx: bool,
    ddl_pending: Option<String>,
    /// Replay after an initial copy: until this position, write with REPLACE.
    catch_up_until: Option<Position>,
    batch_rows: usize,
    batch_delay: Duration,
    skip_begin_ids: Vec<u64>,
    on_commit: Option<Box<dyn FnMut(u64) + Send>>,
    synced: bool,
}

impl Applier {
    /// Connects state: `conn` must already have `SESSION_SQL` applied and
    /// migrations run.
    pub async fn new(
        svc: Arc<ServiceConfig>,
        mut conn: Conn,
        stats: Arc<ServiceStats>,
        opts: ApplierOptions,
    ) -> Result<Applier> {
        conn.query_drop(SESSION_SQL)
            .await
            .map_err(Error::db(format!(
                "setting up the applier session on {}",
                svc.target
            )))?;
        let abandoned = stats.abandoned_conn.load(Relaxed) as u32;
        if abandoned != 0 {
            let user = svc.target.opts().user().unwrap_or("").to_string();
            watchdog::retire(&mut conn, abandoned, &user)
                .await
                .map_err(|e| Error::Transient(format!("service {}: {e}", svc.name)))?;
            stats.abandoned_conn.store(0, Relaxed);
        }
        let loaded = meta::load_position(&mut conn, &svc.name).await?;
        let (applied, committed, ddl_pending) = match loaded {
            Some((p, ts, ddl)) => (Some((p.clone(), ts as u32)), Some(p), ddl),
            None => (None, None, None),
        };
        if let Some(p) = &committed {
            stats.set_position(&p.to_string());
        }
        let catch_up_until = opts
            .catch_up_until
            .filter(|end| committed.as_ref().is_none_or(|p| p < end));
        Ok(Applier {
            svc,
            source: opts.source,
            target_flavor: None,
            conn: Some(conn),
            inflight: None,
            stats,
            tables: HashMap::new(),
            batch: Batch::default(),
            batch_started: None,
            applied,
            sent: committed.clone(),
            sent_ts: 0,
            committed,
            committed_relay_id: 0,
            batch_relay_id: 0,
            read_relay_id: 0,
            pending_progress: None,
            last_progress_write: Instant::now(),
            staged_rows: [0; 3],
            open: None,
            in_target_tx: false,
            ddl_pending,
            catch_up_until,
            batch_rows: opts.batch_rows,
            batch_delay: opts.batch_delay,
            skip_begin_ids: opts.skip_begin_ids,
            on_commit: opts.on_commit,
            synced: false,
        })
    }

    pub fn committed(&self) -> Option<&Position> {
        self.committed.as_ref()
    }

    /// Applies records until `stop` is set (then commits what is complete and
    /// returns) or an error occurs.
    pub async fn run<S: RecordSource>(
        &mut self,
        src: &mut S,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<Stop> {
        let result = self.run_inner(src, stop).await;
        // Wait for the batch in flight (its commit counts even after an error).
        let settled = self.settle().await;
        let result = match (result, settled) {
            (Ok(s), Ok(())) => Ok(s),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        };
        if result.is_err() && self.in_target_tx {
            if let Some(c) = self.conn.as_mut() {
                let _ = c.query_drop("ROLLBACK").await;
            }
            self.in_target_tx = false;
        }
        result
    }

    async fn run_inner<S: RecordSource>(
        &mut self,
        src: &mut S,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<Stop> {
        loop {
            if *stop.borrow() {
                // Commit every complete transaction; an open one is dropped
                // (rolled back if partly written) and read again on restart:
                // the committed position makes that exact.
                if self.drop_open_tx().await.is_some() {
                    return Ok(Stop::Requested);
                }
                self.flush(true).await?;
                return Ok(Stop::Requested);
            }
            // Throttled (see `throttle.rs`): read nothing more. Only between
            // target transactions, so no target locks are held meanwhile.
            if self.stats.is_throttled() && !self.in_target_tx {
                if *stop.borrow() {
                    // Nothing of the open transaction was written; it is re-read after restart.
                    return Ok(Stop::Requested);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.stats.throttled_ms.fetch_add(100, Relaxed);
                continue;
            }
            // Record a finished batch's commit as soon as it is known.
            if self.inflight.as_ref().is_some_and(|f| f.task.is_finished()) {
                self.settle().await?;
            }
            match src.try_next()? {
                Some((id, rec)) => {
                    if let Some(stop) = self.handle(id, rec).await? {
                        return Ok(stop);
                    }
                    if (self.batch.rows >= self.batch_rows || self.batch.bytes >= BATCH_BYTES)
                        && self.open.is_none()
                    {
                        self.flush(true).await?;
                    }
                }
                None => {
                    // Nothing more right now: commit what we have once the
                    // batch is old enough, or write progress while idle.
                    let due = self
                        .batch_started
                        .is_some_and(|t| t.elapsed() >= self.batch_delay);
                    if self.open.is_none() && (due || *stop.borrow()) {
                        self.flush(true).await?;
                    }
                    // Progress records arrive every 50 ms or so; writing
                    // them 50 ms after the last write keeps the cutover's
                    // and the rollback's catch-up waits (inside the freeze)
                    // short, for at most 20 tiny target commits a second.
                    if self.open.is_none()
                        && self.batch.is_empty()
                        && self.last_progress_write.elapsed() >= Duration::from_millis(50)
                    {
                        self.write_progress().await?;
                    }
                    // Nothing to stage meanwhile: let the batch in flight
                    // finish, so its commit shows (stats, relay ack) now.
                    self.settle().await?;
                    self.ack_idle();
                    let wait = if self.batch_started.is_some() {
                        self.batch_delay
                    } else {
                        Duration::from_millis(50)
                    };
                    src.wait(wait).await;
                }
            }
        }
    }

    async fn handle(&mut self, id: u64, rec: Record) -> Result<Option<Stop>> {
        self.read_relay_id = id;
        if !self.synced {
            // The relay log may start in the middle of a transaction (its head
            // was deleted by retention): skip to the first transaction start.
            match rec {
                Record::Begin { .. } | Record::Restart { .. } | Record::Progress { .. } => {
                    self.synced = true
                }
                _ => return Ok(None),
            }
        }
        match rec {
            Record::Restart { .. } => {
                if let Some(begin_id) = self.drop_open_tx().await {
                    return Ok(Some(Stop::Abandoned { begin_id }));
                }
            }
            Record::Begin { start, .. } => {
                let already = self.applied.as_ref().is_some_and(|(p, _)| start < *p);
                let skip = already || self.skip_begin_ids.contains(&id);
                self.open = Some(OpenTx {
                    begin_id: id,
                    skip,
                    staged: Vec::new(),
                    staged_rows: 0,
                    staged_bytes: 0,
                    streamed: false,
                    had_ddl: false,
                });
            }
            Record::Rows(r) => {
                let Some(open) = self.open.as_mut() else {
                    return Err(Error::definite(
                        format!("relay log record {id}: rows outside a transaction"),
                        "this is a bug in dropship; please report it with the relay log",
                    ));
                };
                if open.skip || !self.svc.claims(&r.database, &r.table) {
                    return Ok(None);
                }
                if open.streamed {
                    // Already streaming this transaction: no staging.
                    self.stage(r).await?;
                    if self.batch.bytes >= BATCH_BYTES {
                        self.flush(false).await?;
                    }
                    return Ok(None);
                }
                open.staged_rows += r.changes.len();
                open.staged_bytes += rows_bytes(&r);
                open.staged.push(r);
                if open.staged_rows >= HUGE_ROWS || open.staged_bytes >= HUGE_BYTES {
                    let staged = std::mem::take(&mut open.staged);
                    open.staged_rows = 0;
                    open.staged_bytes = 0;
                    open.streamed = true;
                    for r in staged {
                        self.stage(r).await?;
                        if self.batch.bytes >= BATCH_BYTES {
                            self.flush(false).await?;
                        }
                    }
                    self.flush(false).await?;
                }
            }
            Record::Ddl(d) => {
                let skip = self.open.as_ref().is_none_or(|o| o.skip);
                let kind = dropship_mysql::ddl::parse(&d.sql).map(|x| x.kind);
                // CREATE TABLE new LIKE mapped creates `new`: only it counts.
                let touched = match kind {
                    Some(DdlKind::CreateTable) => &d.tables[..d.tables.len().min(1)],
                    _ => &d.tables[..],
                };
                if skip || !touched.iter().any(|(db, t)| self.svc.claims(db, t)) {
                    return Ok(None);
                }
                if kind == Some(DdlKind::Rename) {
                    self.refuse_rename_into_mapping(&d)?;
                }
                self.flush(true).await?;
                self.apply_ddl(&d, kind).await?;
                if let Some(o) = self.open.as_mut() {
                    o.had_ddl = true;
                }
            }
            Record::Commit { pos, ts } => {
                let Some(open) = self.open.take() else {
                    return Ok(None);
                };
                if open.skip {
                    return Ok(None);
                }
                // Count only transactions that carried this service's changes.
                if !open.staged.is_empty() || open.streamed || open.had_ddl {
                    self.stats.transactions.fetch_add(1, Relaxed);
                }
                for r in open.staged {
                    self.stage(r).await?;
                }
                self.applied = Some((pos, ts));
                self.batch_relay_id = id;
                if self.batch_started.is_none() {
                    self.batch_started = Some(Instant::now());
                }
                if open.had_ddl || open.streamed {
                    self.flush(true).await?;
                }
            }
            Record::Progress { pos, ts } => {
                // The same position with a newer time is news too: the
                // source was idle up to then (a server heartbeat).
                let newer = self
                    .applied
                    .as_ref()
                    .is_none_or(|(p, t)| pos > *p || (pos == *p && ts > *t));
                if self.open.is_none() && newer {
                    if self.batch.is_empty() {
                        self.pending_progress = Some((pos.clone(), ts));
                    }
                    self.applied = Some((pos, ts));
                    self.batch_relay_id = id;
                    // Idle source: what we have applied is current as of ts.
                    self.stats.caught_up_at.store(now_epoch(), Relaxed);
                }
            }
        }
        Ok(None)
    }

    /// A rename that brings a table this service does not replicate into a
    /// name it does (`RENAME TABLE t TO _t_old, _t_new TO t`: how gh-ost and
    /// pt-online-schema-change finish) would leave the target with the old
    /// table's rows under the new table's name. Pauses the service instead,
    /// before anything of the rename is applied, naming both tables.
    fn refuse_rename_into_mapping(&self, d: &DdlRecord) -> Result<()> {
        for pair in d.tables.chunks(2) {
            let [(fd, ft), (td, tt)] = pair else { continue };
            if !self.svc.claims(fd, ft) && self.svc.claims(td, tt) {
                return Err(Error::definite(
                    format!("service {}: `{}` renames {fd}.{ft}, which the service does not replicate, to {td}.{tt}, which it does (an online schema change by gh-ost or pt-online-schema-change?): the target has no copy of {fd}.{ft}'s rows, so the rename was not applied", self.svc.name, d.sql),
                    format!("add the tool's tables to the service's tables as a pattern, \"{fd}._{tt}_*\" (pt-online-schema-change's _{tt}_new and _{tt}_old, gh-ost's _{tt}_gho and _{tt}_del), before the next schema change, so they replicate with it; to recover now, copy the service again: stop replicate, then run `dropship replicate --recopy {}`", self.svc.name),
                ));
            }
        }
        Ok(())
    }

    /// Forgets the open source transaction. If part of it was already written
    /// (streamed), rolls the target transaction back, empties the batch and
    /// returns its Begin id: the caller must re-read from the committed position.
    async fn drop_open_tx(&mut self) -> Option<u64> {
        let open = self.open.take()?;
        if !open.streamed {
            return None;
        }
        // A failed write rolled back already; either way we roll back.
        if self.settle().await.is_ok() {
            if let Some(c) = self.conn.as_mut() {
                let _ = c.query_drop("ROLLBACK").await;
            }
        }
        self.in_target_tx = false;
        self.batch.clear();
        self.staged_rows = [0; 3];
        self.batch_started = None;
        Some(open.begin_id)
    }

    /// Resolves a target table for a source table.
    async fn target_table(&mut self, db: &str, table: &str) -> Result<Arc<TargetTable>> {
        if let Some(t) = self.tables.get(&(db.to_string(), table.to_string())) {
            return Ok(t.clone());
        }
        let tdb = self.svc.target_database(db).to_string();
        let schema = schema::load_table(self.conn().await?, &tdb, table)
            .await
            .map_err(Error::db(format!("reading the definition of {tdb}.{table} on the target")))?
            .ok_or_else(|| Error::definite(format!("service {}: table {tdb}.{table} does not exist on the target", self.svc.name), "let `replicate` create it (it creates missing tables before copying), or create it from the source's SHOW CREATE TABLE"))?;
        if schema.key.is_empty() {
            return Err(Error::definite(format!("service {}: target table {tdb}.{table} has no primary key or NOT NULL unique key", self.svc.name), "add the same primary key the source table has"));
        }
        let insert_idx: Vec<usize> = (0..schema.columns.len())
            .filter(|&i| !schema.columns[i].generated)
            .collect();
        let shape = TableShape {
            insert_columns: insert_idx
                .iter()
                .map(|&i| schema.columns[i].name.clone())
                .collect(),
            key_columns: schema
                .key
                .iter()
                .map(|&i| schema.columns[i].name.clone())
                .collect(),
        };
        let json = schema
            .columns
            .iter()
            .map(|c| c.data_type == "json")
            .collect();
        let t = Arc::new(TargetTable {
            json,
            db: tdb,
            name: table.to_string(),
            schema,
            shape,
            insert_idx,
        });
        self.tables
            .insert((db.to_string(), table.to_string()), t.clone());
        Ok(t)
    }

    async fn stage(&mut self, r: RowsRecord) -> Result<()> {
        let t = self.target_table(&r.database, &r.table).await?;
        // Map target columns to positions in the record's images.
        let mut col_at = Vec::with_capacity(t.schema.columns.len());
        for c in &t.schema.columns {
            col_at.push(r.columns.iter().position(|n| *n == c.name));
        }
        // A source column the target lacks would be dropped without a word.
        // Names are unique on both sides: every record column found a target
        // column exactly when as many target columns were matched.
        if col_at.iter().flatten().count() < r.columns.len() {
            let extra = r
                .columns
                .iter()
                .find(|n| !t.schema.columns.iter().any(|c| c.name == **n))
                .map_or("?", |n| n.as_str());
            return Err(Error::definite(
                format!("service {}: column {extra} of {}.{} on the source does not exist on the target {}.{} (schema drift): its values would be lost", self.svc.name, r.database, r.table, t.db, t.name),
                format!("add the column to {}.{} on the target as the source defines it (SHOW CREATE TABLE {}.{} on the source), then resume the service: it continues from its last committed position", t.db, t.name, r.database, r.table),
            ));
        }
        for &i in t.insert_idx.iter().chain(t.schema.key.iter()) {
            if col_at[i].is_none() {
                return Err(Error::definite(
                    format!("service {}: column {} of {}.{} on the target is not in the source's rows (schema drift)", self.svc.name, t.schema.columns[i].name, t.db, t.name),
                    "make the target table match the source (SHOW CREATE TABLE on both), then resume the service",
                ));
            }
        }
        // Checks that every column `idx` needs is in the image.
        let check = |img: &RowImage, idx: &[usize]| -> Result<()> {
            for &i in idx {
                let j = col_at[i].unwrap_or(usize::MAX);
                if img.missing.contains(&j) {
                    return Err(Error::definite(
                        format!(
                            "row image of {}.{} lacks column {} (binlog_row_image is not FULL)",
                            r.database, r.table, t.schema.columns[i].name
                        ),
                        "SET GLOBAL binlog_row_image=FULL on the source",
                    ));
                }
                if j >= img.values.len() {
                    return Err(Error::definite(format!("row image of {}.{} has {} values, column {} expected", r.database, r.table, img.values.len(), j), "the binlog does not match the table definition; check for DDL dropship missed"));
                }
            }
            Ok(())
        };
        // Copies the (small) key values; `check` ran first.
        let key_of = |img: &RowImage| -> Vec<Value> {
            t.schema
                .key
                .iter()
                .map(|&i| img.values[col_at[i].unwrap_or(usize::MAX)].clone())
                .collect()
        };
        // Moves the row's values out of the image (each column once: the
        // insert columns are distinct); `check` ran first.
        let take_row = |img: &mut RowImage| -> Vec<Value> {
            t.insert_idx
                .iter()
                .map(|&i| {
                    let v = std::mem::replace(
                        &mut img.values[col_at[i].unwrap_or(usize::MAX)],
                        Value::Null,
                    );
                    if t.json[i] {
                        as_json(v)
                    } else {
                        v
                    }
                })
                .collect()
        };
        let tb = self.batch.table(&t.db, &t.name, &t.shape);
        let mut n = 0;
        let mut bytes = 0usize;
        for ch in r.changes {
            match ch.kind {
                RowKind::Insert => {
                    let mut a = ch
                        .after
                        .ok_or_else(|| Error::definite("insert without an after image", ""))?;
                    check(&a, &t.schema.key)?;
                    check(&a, &t.insert_idx)?;
                    let key = key_of(&a);
                    let row = take_row(&mut a);
                    bytes += values_bytes(&row);
                    tb.set(key, Some(row), true);
                    self.staged_rows[0] += 1;
                }
                RowKind::Update => {
                    let b = ch
                        .before
                        .ok_or_else(|| Error::definite("update without a before image", ""))?;
                    let mut a = ch
                        .after
                        .ok_or_else(|| Error::definite("update without an after image", ""))?;
                    check(&b, &t.schema.key)?;
                    check(&a, &t.schema.key)?;
                    check(&a, &t.insert_idx)?;
                    let kb = key_of(&b);
                    let ka = key_of(&a);
                    if kb != ka {
                        tb.set(kb, None, false);
                    }
                    let row = take_row(&mut a);
                    bytes += values_bytes(&row);
                    tb.set(ka, Some(row), false);
                    self.staged_rows[1] += 1;
                }
                RowKind::Delete => {
                    let b = ch
                        .before
                        .ok_or_else(|| Error::definite("delete without a before image", ""))?;
                    check(&b, &t.schema.key)?;
                    tb.set(key_of(&b), None, false);
                    self.staged_rows[2] += 1;
                }
            }
            n += 1;
        }
        self.batch.rows += n;
        self.batch.bytes += bytes;
        if self.batch_started.is_none() {
            self.batch_started = Some(Instant::now());
        }
        Ok(())
    }

    /// Writes the batch. With `commit`, also writes the position and commits.
    ///
    /// Pipelined: the statements are rendered first, then the previous
    /// batch's statements are awaited, then these are sent by a task that
    /// owns the connection, and `flush` returns while the target runs them,
    /// so the applier stages (and renders) the next batch meanwhile. Nothing
    /// changes for crashes: the position still travels in the same target
    /// transaction as its rows; `committed`, the stats and `on_commit` move
    /// only when the COMMIT has succeeded (`settle`). A failed batch fails
    /// the next `settle` (at the latest when `run` returns): the target
    /// transaction is rolled back and the service restarts from its
    /// committed position.
    async fn flush(&mut self, commit: bool) -> Result<()> {
        let has_rows = !self.batch.is_empty();
        let pos_changed = self
            .applied
            .as_ref()
            .map(|(p, ts)| Some(p) != self.sent.as_ref() || *ts != self.sent_ts)
            .unwrap_or(false);
        if !has_rows && !(commit && (self.in_target_tx || pos_changed)) {
            self.batch_started = None;
            return Ok(());
        }
        // A large batch waits for the one in flight before it is rendered:
        // at most one rendered batch (hex text, about twice its values) is
        // held at a time, which keeps a huge transaction within its memory
        // budget; small batches keep the pipelining.
        if self.batch.bytes >= BATCH_BYTES / 2 {
            self.settle().await?;
        }
        // Catch-up after a copy: decided by where the batch *starts* (the last
        // committed position): from there on the target may be ahead.
        let catching_up = match (&self.catch_up_until, &self.sent) {
            (Some(until), Some(p)) => p < until,
            (Some(_), None) => true,
            _ => false,
        };
        let mut stmts = self.batch.statements(catching_up, MAX_STATEMENT);
        if !self.in_target_tx {
            stmts.insert(0, "START TRANSACTION".to_string());
            self.in_target_tx = true;
        }
        if commit {
            if let Some((p, ts)) = &self.applied {
                stmts.push(meta::position_sql(
                    &self.svc.name,
                    p,
                    *ts,
                    self.ddl_pending.is_some(),
                ));
            }
            stmts.push("COMMIT".to_string());
        }
        // Send as few round trips as possible: join statements up to the cap.
        let mut texts = Vec::new();
        let mut text = String::new();
        for s in stmts {
            if !text.is_empty() && text.len() + s.len() > MAX_STATEMENT {
                texts.push(std::mem::take(&mut text));
            }
            if !text.is_empty() {
                text.push(';');
            }
            text.push_str(&s);
        }
        if !text.is_empty() {
            texts.push(text);
        }
        if has_rows {
            self.stats.observe_batch(self.batch.rows as u64);
        }
        self.batch.clear();
        self.batch_started = None;
        let committed = if commit {
            self.in_target_tx = false;
            self.sent = self.applied.as_ref().map(|(p, _)| p.clone());
            self.sent_ts = self.applied.as_ref().map_or(0, |(_, ts)| *ts);
            self.pending_progress = None;
            self.last_progress_write = Instant::now();
            Some(Committed {
                pos: self.applied.clone(),
                relay_id: self.batch_relay_id,
                rows: std::mem::take(&mut self.staged_rows),
            })
        } else {
            None
        };
        self.settle().await?;
        let Some(mut conn) = self.conn.take() else {
            return Err(self.lost_connection());
        };
        let conn_id = conn.id();
        let task = tokio::spawn(async move {
            for t in texts {
                if let Err(e) = conn.query_drop(t).await {
                    return (conn, Err(e));
                }
            }
            (conn, Ok(()))
        });
        self.inflight = Some(Inflight {
            task,
            conn_id,
            commit: committed,
        });
        Ok(())
    }

    /// Waits for the batch in flight, if any, and records its commit.
    async fn settle(&mut self) -> Result<()> {
        let Some(mut f) = self.inflight.take() else {
            return Ok(());
        };
        let joined = tokio::select! {
            j = &mut f.task => j,
            why = watchdog::stalled(self.svc.target.opts(), f.conn_id) => {
                // The connection goes with the task; the service starts
                // again from its committed position.
                f.task.abort();
                self.stats.abandoned_conn.store(u64::from(f.conn_id), Relaxed);
                self.in_target_tx = false;
                return Err(Error::Transient(format!(
                    "service {}: writing a batch to {}: {why}; reconnecting",
                    self.svc.name, self.svc.target
                )));
            }
        };
        let (mut conn, res) = match joined {
            Ok(x) => x,
            Err(e) => {
                self.in_target_tx = false;
                return Err(Error::definite(
                    format!(
                        "service {}: the task writing a batch to {} failed: {e}",
                        self.svc.name, self.svc.target
                    ),
                    "the target transaction was not committed; the service restarts from its committed position. Report this with the log",
                ));
            }
        };
        if let Err(e) = res {
            let _ = conn.query_drop("ROLLBACK").await;
            self.conn = Some(conn);
            self.in_target_tx = false;
            // Unknown column or table: the target's definition changed under
            // us (by hand, on the target). Forget what we read; the retry
            // reads it again and names the difference (see `stage`).
            if let mysql_async::Error::Server(se) = &e {
                if matches!(se.code, 1054 | 1146) && !self.tables.is_empty() {
                    self.tables.clear();
                    return Err(Error::Transient(format!(
                        "service {}: {} refused a batch ({}): its table definitions changed; reading them again",
                        self.svc.name, self.svc.target, se.message
                    )));
                }
            }
            return Err(Error::Db {
                what: format!(
                    "service {}: writing a batch to {}",
                    self.svc.name, self.svc.target
                ),
                source: e,
            });
        }
        self.conn = Some(conn);
        if let Some(c) = f.commit {
            self.stats.rows_inserted.fetch_add(c.rows[0], Relaxed);
            self.stats.rows_updated.fetch_add(c.rows[1], Relaxed);
            self.stats.rows_deleted.fetch_add(c.rows[2], Relaxed);
            if let Some((p, ts)) = c.pos {
                self.stats.last_source_ts.store(i64::from(ts), Relaxed);
                self.stats.set_position(&p.to_string());
                self.committed = Some(p);
            }
            self.committed_relay_id = c.relay_id;
            crate::crash::point("apply:batch-committed");
            if let Some(f) = self.on_commit.as_mut() {
                f(self.committed_relay_id);
            }
        }
        Ok(())
    }

    /// The connection, once the batch in flight has finished.
    async fn conn(&mut self) -> Result<&mut Conn> {
        self.settle().await?;
        let lost = self.conn.is_none().then(|| self.lost_connection());
        match (self.conn.as_mut(), lost) {
            (Some(c), _) => Ok(c),
            (None, e) => Err(e.unwrap_or_else(|| Error::Transient("no target connection".into()))),
        }
    }

    fn lost_connection(&self) -> Error {
        Error::Transient(format!(
            "service {}: the target connection was lost with a failed batch task; reconnecting",
            self.svc.name
        ))
    }

    /// Idle with everything committed: the records read since the last
    /// commit carried nothing to apply (a progress record repeating the
    /// committed position), so the committed position covers them too.
    /// Acking them lets a drained relay log free its last segment (a reader
    /// paused on a full disk waits for that).
    fn ack_idle(&mut self) {
        let all_committed = self.open.is_none()
            && self.batch.is_empty()
            && self.inflight.is_none()
            && !self.in_target_tx
            && self.applied.as_ref().map(|(p, _)| p) == self.committed.as_ref();
        if all_committed && self.read_relay_id > self.committed_relay_id {
            self.committed_relay_id = self.read_relay_id;
            if let Some(f) = self.on_commit.as_mut() {
                f(self.read_relay_id);
            }
        }
    }

    async fn write_progress(&mut self) -> Result<()> {
        self.last_progress_write = Instant::now();
        if self.pending_progress.take().is_some() {
            self.flush(true).await?;
        }
        Ok(())
    }

    async fn apply_ddl(&mut self, d: &DdlRecord, kind: Option<DdlKind>) -> Result<()> {
        let tdb = self.svc.target_database(&d.database).to_string();
        let sql = dropship_mysql::ddl::rewrite_databases(&d.sql, &self.svc.rename_databases);
        let sql = self.translate_ddl(sql).await?;
        let recovering = self.ddl_pending.as_deref() == Some(sql.as_str());
        // From here on the pending DDL (in the metadata) is this one; the
        // commit that follows it clears it.
        self.ddl_pending = None;
        let name = self.svc.name.clone();
        meta::set_ddl_pending(self.conn().await?, &name, &sql).await?;
        let use_db = if d.database.is_empty() {
            String::new()
        } else {
            let q = dropship_mysql::sql::ident(&tdb);
            format!("CREATE DATABASE IF NOT EXISTS {q}; USE {q};")
        };
        // DDL text is UTF-8 (names, ENUM members, comments): not binary.
        let opts = self.svc.target.opts();
        let conn = self.conn().await?;
        let conn_id = conn.id();
        let res = tokio::select! {
            r = conn.query_drop(format!("SET NAMES utf8mb4;{use_db}{sql}")) => r,
            why = watchdog::stalled(opts, conn_id) => {
                // Pending in the metadata: the retry treats it as applied
                // if the lost answer was its success.
                self.conn = None;
                self.stats.abandoned_conn.store(u64::from(conn_id), Relaxed);
                return Err(Error::Transient(format!(
                    "service {}: applying DDL on {}: {why}; reconnecting",
                    self.svc.name, self.svc.target
                )));
            }
        };
        let _ = conn.query_drop("SET NAMES binary; USE `_dropship`").await;
        // Any cached table definitions may be stale now.
        self.tables.clear();
        match res {
            Ok(()) => {}
            Err(mysql_async::Error::Server(e)) if recovering && dropship_mysql::ddl::already_applied(e.code, &e.message) => {}
            Err(e) => return Err(Error::definite(
                format!("service {}: cannot apply DDL on the target: {sql}: {e}", self.svc.name),
                format!("apply an equivalent change by hand on the target, then run `dropship replicate` again (the DDL is recorded as pending and will be treated as applied if it fails with an 'already exists' error); or resume with the control endpoint POST /services/{}/resume", self.svc.name),
            )),
        }
        if matches!(kind, Some(DdlKind::CreateTable | DdlKind::AlterTable)) {
            self.refuse_unlogged_cascades(d, &sql).await?;
        }
        crate::crash::point("apply:ddl-applied");
        Ok(())
    }

    /// DDL from a source of the other flavor, with the target's collations.
    async fn translate_ddl(&mut self, sql: String) -> Result<String> {
        let Some(src) = self.source.clone() else {
            return Ok(sql);
        };
        let to = match &self.target_flavor {
            Some(f) => f.clone(),
            None => {
                let f = Flavor::detect(self.conn().await?)
                    .await
                    .map_err(Error::db("reading the target's version"))?;
                self.target_flavor = Some(f.clone());
                f
            }
        };
        let t = dropship_mysql::translate::ddl_statement(&sql, &src.flavor, &to);
        for note in &t.notes {
            tracing::warn!(service = %self.svc.name, ddl = %sql, "{note}");
        }
        Ok(t.sql)
    }

    /// A DDL that gives a mapped table a cascading foreign key (`ON DELETE
    /// CASCADE`, `SET NULL`, ...) on a source that does not binlog cascaded
    /// changes pauses the service, as `replicate` refuses such a key at start:
    /// the target (applying with `foreign_key_checks=0`) would keep the rows the
    /// source's cascade deletes or changes. Read from the target's definition
    /// after the DDL, so that any way of adding the key is seen. The DDL stays
    /// pending: after the key is changed (on the source, and by hand on the
    /// target), a resume treats it as applied and checks again.
    async fn refuse_unlogged_cascades(&mut self, d: &DdlRecord, sql: &str) -> Result<()> {
        let Some(src) = self.source.clone() else {
            return Ok(());
        };
        // A foreign key is only ever added by a statement that names what it
        // REFERENCES (CREATE TABLE ... LIKE does not copy foreign keys).
        if src.logs_cascades || !sql.to_ascii_uppercase().contains("REFERENCES") {
            return Ok(());
        }
        for (db, table) in &d.tables {
            if !self.svc.claims(db, table) {
                continue;
            }
            let tdb = self.svc.target_database(db).to_string();
            let create = schema::show_create_table(self.conn().await?, &tdb, table)
                .await
                .map_err(Error::db(format!(
                    "reading the definition of {tdb}.{table} on the target after a DDL"
                )))?;
            let Some(create) = create else { continue };
            if let Some(k) = schema::cascading_keys(db, table, &create).first() {
                return Err(Error::definite(
                    format!(
                        "service {}: the DDL `{sql}` gave {}.{} foreign key `{}` {} referencing {}: the {} source does not write cascaded changes to its binlog, so the target would keep rows the source's cascade deletes or changes",
                        self.svc.name, k.database, k.table, k.name, k.actions(), k.parent, src.flavor
                    ),
                    format!(
                        "change the key to ON DELETE RESTRICT / ON UPDATE RESTRICT on the source, and the same by hand on the target keeping its name (ALTER TABLE {tdb}.{table} DROP FOREIGN KEY `{}`; then ADD CONSTRAINT `{}` ... ON DELETE RESTRICT), then resume the service (POST /services/{}/resume): the pending DDL then counts as applied; or remove {}.{} from the service's tables",
                        k.name, k.name, self.svc.name, k.database, k.table
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Approximate size of a row's values (what dominates memory and SQL text).
fn values_bytes(v: &[Value]) -> usize {
    v.iter()
        .map(|x| match x {
            Value::Bytes(b) => b.len(),
            Value::Json(s) | Value::Decimal(s) => s.len(),
            _ => 8,
        })
        .sum()
}

fn rows_bytes(r: &RowsRecord) -> usize {
    r.changes
        .iter()
        .map(|c| {
            c.before.as_ref().map_or(0, |i| values_bytes(&i.values))
                + c.after.as_ref().map_or(0, |i| values_bytes(&i.values))
        })
        .sum()
}
