//! Comparing one chunk while replication runs: the checksum protocol, the
//! wait for the target to catch up, and naming the differing rows.
//!
//! # Protocol (see `verify` for why it is exact)
//! 1. Checksum the chunk on the source and on the target, at the same time
//!    (different servers). Equal: done (the common case; no waiting at all).
//! 2. Otherwise, up to `retries` times: checksum the source, read the source
//!    binlog position `P` *after* that statement, wait (bounded) until the
//!    service's applied position on the target is `>= P`, checksum the
//!    target. Equal: done.
//! 3. Still different: compare per-row hashes with the same
//!    source/`P`/wait/target order, `retries + 1` times; only keys that differ
//!    *every* time are suspects. Their full rows are then read from both
//!    sides and each column compared by its exact text form.
//!
//! Fails with the database error of the statement that failed; the chunk is
//! then redone by the next run (progress only covers finished chunks).

use super::plan::{literal, Range, TablePlan};
use super::report::{show, ColumnDiff, KeyPart, RowDiff, RowKind};
use crate::error::{Error, Result};
use crate::meta;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One key range of one table.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub table: usize,
    pub seq: u64,
    pub plan: Arc<TablePlan>,
    pub range: Range,
}

/// What comparing a chunk found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rows: u64,
    pub elapsed: Duration,
    /// Rows that differ (at most `max_rows` described).
    pub diffs: Vec<RowDiff>,
    pub differing: u64,
    /// The first comparison differed (changes in flight or lag) and the
    /// chunk was compared again.
    pub rechecked: bool,
}

/// Waits for the target to apply what the source has written so far.
/// After one timeout it stops waiting for the rest of the run (and says so):
/// replication is then not running or far behind.
pub struct LagGate {
    pub service: String,
    pub timeout: Duration,
    awaitable: AtomicBool,
    note: Mutex<Option<String>>,
}

impl LagGate {
    pub fn new(service: &str, timeout: Duration, awaitable: bool) -> LagGate {
        LagGate {
            service: service.to_string(),
            timeout,
            awaitable: AtomicBool::new(awaitable),
            note: Mutex::new(None),
        }
    }

    pub fn awaitable(&self) -> bool {
        self.awaitable.load(Relaxed)
    }

    pub fn note(&self) -> Option<String> {
        self.note.lock().ok().and_then(|n| n.clone())
    }

    /// Reads the source position now and waits until the target applied it.
    pub async fn wait(&self, src: &mut Conn, tgt: &mut Conn) -> Result<()> {
        if !self.awaitable() {
            return Ok(());
        }
        let p = crate::source::position(src).await?;
        let start = Instant::now();
        let mut delay = Duration::from_millis(5);
        loop {
            if let Some((applied, _, _)) = meta::load_position(tgt, &self.service).await? {
                if applied >= p {
                    return Ok(());
                }
            }
            if start.elapsed() >= self.timeout {
                self.awaitable.store(false, Relaxed);
                if let Ok(mut n) = self.note.lock() {
                    n.get_or_insert_with(|| {
                        format!(
                            "replication of service {} did not reach source position {p} within {:?}: it is not running or far behind, so the \
                             rest was compared without waiting for lag; differences may be changes not applied yet",
                            self.service, self.timeout
                        )
                    });
                }
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }
}

/// Settings shared by the workers.
pub struct Ctx {
    pub gate: Arc<LagGate>,
    pub retries: u32,
    /// Most rows described per chunk.
    pub max_rows: usize,
    /// Set by the first worker that fails: the others stop too.
    pub stop: AtomicBool,
}

type Sums = (u64, String, String);

async fn checksum(conn: &mut Conn, q: &str, side: &str, table: &str) -> Result<Sums> {
    let row: Option<(u64, String, String)> = conn.query_first(q).await.map_err(Error::db(
        format!("checksumming a chunk of {table} on the {side}"),
    ))?;
    Ok(row.unwrap_or((0, "0".into(), "0".into())))
}

/// Compares one chunk (see the module doc).
pub async fn compare(ctx: &Ctx, src: &mut Conn, tgt: &mut Conn, c: &Chunk) -> Result<Outcome> {
    let started = Instant::now();
    let plan = &c.plan;
    let (qs, qt) = (
        plan.checksum_sql(&plan.src_table(), &c.range),
        plan.checksum_sql(&plan.tgt_table(), &c.range),
    );
    let mut rows = 0;
    for attempt in 0..=ctx.retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
        }
        let (s, t) = if attempt == 0 {
            // Different servers: both at once.
            let (s, t) = tokio::join!(
                checksum(src, &qs, "source", &plan.name),
                checksum(tgt, &qt, "target", &plan.name)
            );
            (s?, t?)
        } else {
            let s = checksum(src, &qs, "source", &plan.name).await?;
            ctx.gate.wait(src, tgt).await?;
            (s, checksum(tgt, &qt, "target", &plan.name).await?)
        };
        rows = s.0;
        if s == t {
            return Ok(Outcome {
                rows,
                elapsed: started.elapsed(),
                rechecked: attempt > 0,
                ..Outcome::default()
            });
        }
    }
    // Still different: find the rows that differ every time.
    let mut suspects: Option<BTreeSet<Vec<String>>> = None;
    let mut shown_keys: HashMap<Vec<String>, Vec<KeyPart>> = HashMap::new();
    for attempt in 0..=ctx.retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
        }
        let s = row_hashes(
            src,
            plan,
            &plan.src_table(),
            &c.range,
            "source",
            &mut shown_keys,
        )
        .await?;
        ctx.gate.wait(src, tgt).await?;
        let t = row_hashes(
            tgt,
            plan,
            &plan.tgt_table(),
            &c.range,
            "target",
            &mut shown_keys,
        )
        .await?;
        let mut diff = BTreeSet::new();
        for (k, h) in &s {
            if t.get(k) != Some(h) {
                diff.insert(k.clone());
            }
        }
        for k in t.keys() {
            if !s.contains_key(k) {
                diff.insert(k.clone());
            }
        }
        let next: BTreeSet<Vec<String>> = match suspects.take() {
            None => diff,
            Some(prev) => prev.intersection(&diff).cloned().collect(),
        };
        if next.is_empty() {
            return Ok(Outcome {
                rows,
                elapsed: started.elapsed(),
                rechecked: true,
                ..Outcome::default()
            });
        }
        suspects = Some(next);
    }
    let suspects: Vec<Vec<String>> = suspects.unwrap_or_default().into_iter().collect();
    let described: Vec<Vec<String>> = suspects.iter().take(ctx.max_rows).cloned().collect();
    let a = full_rows(src, plan, &plan.src_table(), &described, "source").await?;
    let b = full_rows(tgt, plan, &plan.tgt_table(), &described, "target").await?;
    let mut diffs = Vec::new();
    for k in &described {
        let key = shown_keys.get(k).cloned().unwrap_or_default();
        match (a.get(k), b.get(k)) {
            (Some(_), None) => diffs.push(RowDiff {
                key,
                kind: RowKind::MissingOnTarget,
                columns: vec![],
            }),
            (None, Some(_)) => diffs.push(RowDiff {
                key,
                kind: RowKind::ExtraOnTarget,
                columns: vec![],
            }),
            (Some(x), Some(y)) => {
                let columns: Vec<ColumnDiff> = plan
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| x.1.get(*i) != y.1.get(*i))
                    .map(|(i, col)| {
                        let text = is_text(col);
                        ColumnDiff {
                            column: col.name.clone(),
                            source: x.0.get(i).map(|v| show(v, text)).unwrap_or_default(),
                            target: y.0.get(i).map(|v| show(v, text)).unwrap_or_default(),
                        }
                    })
                    .collect();
                if !columns.is_empty() {
                    diffs.push(RowDiff {
                        key,
                        kind: RowKind::Different,
                        columns,
                    });
                }
            }
            (None, None) => {}
        }
    }
    let differing = diffs.len() as u64 + (suspects.len() - described.len()) as u64;
    Ok(Outcome {
        rows,
        elapsed: started.elapsed(),
        diffs,
        differing,
        rechecked: true,
    })
}

fn is_text(c: &dropship_mysql::schema::Column) -> bool {
    c.charset.as_deref().is_some_and(|cs| cs != "binary")
        || matches!(
            c.data_type.as_str(),
            "int"
                | "integer"
                | "tinyint"
                | "smallint"
                | "mediumint"
                | "bigint"
                | "decimal"
                | "year"
                | "date"
                | "time"
                | "datetime"
                | "timestamp"
                | "enum"
                | "set"
                | "json"
        )
}

/// Row key (as literals) -> row hash, for every row of a range.
async fn row_hashes(
    conn: &mut Conn,
    plan: &TablePlan,
    table: &str,
    range: &Range,
    side: &str,
    shown: &mut HashMap<Vec<String>, Vec<KeyPart>>,
) -> Result<HashMap<Vec<String>, Value>> {
    let rows: Vec<Row> = conn
        .exec(plan.row_hashes_sql(table, range), ())
        .await
        .map_err(Error::db(format!(
            "reading row hashes of {} on the {side}",
            plan.name
        )))?;
    let nk = plan.key.len();
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let vals: Vec<Value> = row
            .unwrap_raw()
            .into_iter()
            .map(|v| v.unwrap_or(Value::NULL))
            .collect();
        if vals.len() != nk + 1 {
            return Err(Error::definite(
                format!(
                    "reading row hashes of {}: expected {} columns, got {}",
                    plan.name,
                    nk + 1,
                    vals.len()
                ),
                "",
            ));
        }
        let key: Vec<String> = vals[..nk].iter().map(literal).collect();
        shown
            .entry(key.clone())
            .or_insert_with(|| key_parts(plan, &vals[..nk]));
        out.insert(key, vals[nk].clone());
    }
    Ok(out)
}

fn key_parts(plan: &TablePlan, vals: &[Value]) -> Vec<KeyPart> {
    plan.key
        .iter()
        .zip(vals)
        .map(|(k, v)| {
            let text = plan
                .columns
                .iter()
                .find(|c| &c.name == k)
                .is_some_and(is_text);
            KeyPart {
                column: k.clone(),
                value: show(v, text),
            }
        })
        .collect()
}

/// Key -> (raw values, exact text forms) of the given keys.
async fn full_rows(
    conn: &mut Conn,
    plan: &TablePlan,
    table: &str,
    keys: &[Vec<String>],
    side: &str,
) -> Result<HashMap<Vec<String>, (Vec<Value>, Vec<Value>)>> {
    let mut out = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let rows: Vec<Row> = conn
        .exec(plan.rows_sql(table, keys), ())
        .await
        .map_err(Error::db(format!(
            "reading differing rows of {} on the {side}",
            plan.name
        )))?;
    let (nk, nc) = (plan.key.len(), plan.columns.len());
    for row in rows {
        let vals: Vec<Value> = row
            .unwrap_raw()
            .into_iter()
            .map(|v| v.unwrap_or(Value::NULL))
            .collect();
        if vals.len() != nk + 2 * nc {
            return Err(Error::definite(
                format!(
                    "reading rows of {}: expected {} columns, got {}",
                    plan.name,
                    nk + 2 * nc,
                    vals.len()
                ),
                "",
            ));
        }
        let key: Vec<String> = vals[..nk].iter().map(literal).collect();
        out.insert(key, (vals[nk..nk + nc].to_vec(), vals[nk + nc..].to_vec()));
    }
    Ok(out)
}
