//! One controller per service: works out its phase from stored state
//! (copying -> copy; else replicate), runs the applier, and retries.
//!
//! Transient errors (target down, dropped connection) are retried with
//! exponential backoff; the same failure for longer than `give_up_after`
//! stops retrying with an ERROR saying what a human must do. Definite errors
//! (DDL it cannot apply, schema drift) pause the service at once with the
//! message recorded on the target; other services are not affected.

use crate::apply::applier::{Applier, ApplierOptions, RecordSource, Stop};
use crate::config::{Config, ServiceConfig};
use crate::control::stats::{now_epoch, ServiceStats};
use crate::control::Control;
use crate::error::{Error, Result};
use crate::state::ServiceState;
use crate::stream::record::Record;
use crate::{copy, meta};
use dropship_mysql::position::Position;
use dropship_mysql::schema::TableSchema;
use dropship_relay::{RelayHandle, RelayReader};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{error, info, warn};

pub struct Ctx {
    pub cfg: Arc<Config>,
    pub svc: Arc<ServiceConfig>,
    pub tables: Vec<Arc<TableSchema>>,
    pub relay: RelayHandle,
    pub stats: Arc<ServiceStats>,
    pub control: Arc<Control>,
    pub source: crate::source::Facts,
}

/// Records the copy start: position `P0`, state `copying`.
pub async fn record_copy_start(tgt: &mut Conn, service: &str, p0: &Position) -> Result<()> {
    let text = format!(
        "START TRANSACTION;{};INSERT INTO `_dropship`.`copy_state` (service, snapshot_file, snapshot_pos, snapshot_gtid) VALUES ({}, {}, {}, {}) \
         ON DUPLICATE KEY UPDATE snapshot_file = VALUES(snapshot_file), snapshot_pos = VALUES(snapshot_pos), snapshot_gtid = VALUES(snapshot_gtid), end_file = NULL, end_pos = NULL;\
         DELETE FROM `_dropship`.`copy_chunks` WHERE service = {};COMMIT",
        meta::position_sql(service, p0, now_epoch() as u32, false),
        dropship_mysql::sql::string_literal(service),
        dropship_mysql::sql::string_literal(&p0.file),
        p0.pos,
        dropship_mysql::sql::string_literal(&p0.gtid),
        dropship_mysql::sql::string_literal(service),
    );
    tgt.query_drop(text)
        .await
        .map_err(Error::db("recording the copy start"))?;
    meta::set_state(tgt, service, ServiceState::Copying, "").await
}

/// Adapts a relay reader to the applier.
struct RelaySource {
    reader: RelayReader,
    peeked: Option<(u64, Vec<u8>)>,
    /// The relay log's folder, for errors.
    dir: String,
}

impl RecordSource for RelaySource {
    fn try_next(&mut self) -> Result<Option<(u64, Record)>> {
        let next = match self.peeked.take() {
            Some(r) => Some(r),
            None => self.reader.next()?,
        };
        match next {
            None => Ok(None),
            Some((id, bytes)) => {
                let rec = Record::decode(&bytes)
                    .map_err(|e| crate::stream::record::undecodable(&self.dir, id, &e))?;
                Ok(Some((id, rec)))
            }
        }
    }

    async fn wait(&mut self, timeout: Duration) {
        if self.peeked.is_some() {
            return;
        }
        if let Ok(Ok(Some(r))) = tokio::time::timeout(timeout, self.reader.next_wait()).await {
            self.peeked = Some(r);
        }
    }
}

async fn copy_end(tgt: &mut Conn, service: &str) -> Result<Option<Position>> {
    let row: Option<(Option<String>, Option<u64>)> = tgt
        .exec_first(
            "SELECT end_file, end_pos FROM `_dropship`.`copy_state` WHERE service = ?",
            (service,),
        )
        .await
        .map_err(Error::db("reading the copy state"))?;
    Ok(match row {
        Some((Some(f), Some(p))) => Some(Position::new(f, p)),
        _ => None,
    })
}

/// The controller loop. Returns when `stop` is set.
pub async fn run(ctx: Ctx, mut stop: watch::Receiver<bool>) -> Result<()> {
    let name = ctx.svc.name.clone();
    let mut backoff = Duration::from_millis(200);
    let mut failing_since: Option<Instant> = None;
    let mut skip_ids = Vec::new();
    let mut start_id = ctx.relay.first_id();
    // Set when retrying was given up: the state stays `error` until resumed.
    let mut gave_up = false;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        // Paused by the control endpoint or by a definite error: wait.
        if ctx.control.is_paused(&name) {
            ctx.stats.set_state(if gave_up {
                ServiceState::Error
            } else {
                ServiceState::Paused
            });
            let mut rx = ctx.control.pause_watch(&name);
            tokio::select! {
                _ = rx.wait_for(|p| !*p) => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
            // Resumed: a fresh retry budget.
            gave_up = false;
            failing_since = None;
            backoff = Duration::from_millis(200);
            continue;
        }
        let progress_before = progress_mark(&ctx.stats);
        let result = attempt(&ctx, &stop, start_id, &skip_ids).await;
        if result.is_err() && progress_mark(&ctx.stats) != progress_before {
            // The attempt got work done before failing: a new failure, not
            // the same one going on; restart the clock and the backoff.
            failing_since = None;
            backoff = Duration::from_millis(200);
        }
        match result {
            Ok((Stop::Requested, _)) => {
                if *stop.borrow() {
                    return Ok(());
                }
                // Paused through the control endpoint, or cut over / rolled
                // back (see `cutover`): wait at the loop top, then restart
                // from the committed position.
                start_id = ctx.relay.first_id();
            }
            Ok((Stop::Abandoned { begin_id }, _)) => {
                skip_ids.push(begin_id);
                start_id = ctx.relay.first_id();
            }
            Err(e) if e.is_transient() => {
                ctx.stats.count_error(&e);
                let since = *failing_since.get_or_insert_with(Instant::now);
                let msg = scrub(&ctx, &e.to_string());
                if since.elapsed() >= ctx.cfg.tuning.give_up_after {
                    let failing_for = format!("{}s", since.elapsed().as_secs());
                    error!(
                        service = %name,
                        error = %msg,
                        failing_for = %failing_for,
                        give_up_after = %format!("{}s", ctx.cfg.tuning.give_up_after.as_secs()),
                        "service keeps failing the same way; stopped retrying (nothing is lost: changes wait in the relay log). A human must fix the cause (is the target up and reachable with these credentials?), then resume with POST /services/{name}/resume or restart replicate"
                    );
                    ctx.stats.set_error(&format!("stopped retrying after {failing_for}: {msg} (fix the cause, then POST /services/{name}/resume or restart replicate)"));
                    ctx.stats.set_state(ServiceState::Error);
                    gave_up = true;
                    ctx.control.set_paused(&name, true);
                    continue;
                }
                ctx.stats.set_error(&msg);
                ctx.stats.set_state(ServiceState::Error);
                warn!(service = %name, error = %msg, retry_in_ms = backoff.as_millis() as u64, "transient error; retrying (nothing is lost: changes wait in the relay log)");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                start_id = ctx.relay.first_id();
            }
            Err(e) => {
                ctx.stats.count_error(&e);
                let msg = scrub(&ctx, &e.to_string());
                let hint = e.hint().unwrap_or_else(|| {
                    format!("fix the cause named in the error, then resume the service (POST /services/{name}/resume, or restart replicate): it continues from its last committed position, so nothing is lost")
                });
                error!(service = %name, error = %msg, hint = %hint, "service paused: a human must act; other services continue");
                ctx.stats.set_error(&format!("{msg} (hint: {hint})"));
                ctx.stats.set_state(ServiceState::Paused);
                if let Ok(mut c) = crate::connect::target(&ctx.svc).await {
                    let _ = meta::set_state(
                        &mut c,
                        &name,
                        ServiceState::Paused,
                        &format!("{msg}\nhint: {hint}"),
                    )
                    .await;
                    let _ = c.disconnect().await;
                }
                ctx.control.set_paused(&name, true);
                start_id = ctx.relay.first_id();
            }
        }
        if failing_since.is_some() && ctx.stats.state() == Some(ServiceState::Replicating) {
            failing_since = None;
            backoff = Duration::from_millis(200);
        }
    }
}

/// Changes whenever the service gets work done (a batch or a copy chunk).
fn progress_mark(stats: &ServiceStats) -> (u64, u64, String) {
    (
        stats.batches.load(Relaxed),
        stats.rows_copied.load(Relaxed),
        stats.position(),
    )
}

fn scrub(ctx: &Ctx, msg: &str) -> String {
    let mut m = msg.to_string();
    for s in [ctx.svc.target.secret(), ctx.cfg.source.secret()]
        .into_iter()
        .flatten()
    {
        m = crate::config::scrub(&m, s);
    }
    m
}

async fn attempt(
    ctx: &Ctx,
    stop: &watch::Receiver<bool>,
    start_id: u64,
    skip_ids: &[u64],
) -> Result<(Stop, u64)> {
    let name = &ctx.svc.name;
    let mut tgt = crate::connect::target(&ctx.svc).await?;
    let state = meta::load_state(&mut tgt, name).await?.map(|s| s.0);
    if state != Some(ServiceState::Copying) {
        // Rows copied by earlier runs, so status shows the service's total.
        let copied: Option<Option<u64>> = tgt.exec_first("SELECT CAST(IFNULL(SUM(rows_copied), 0) AS UNSIGNED) FROM `_dropship`.`copy_chunks` WHERE service = ?", (name,)).await.ok();
        ctx.stats
            .rows_copied
            .store(copied.flatten().unwrap_or(0), Relaxed);
    }
    if state == Some(ServiceState::Copying) {
        ctx.stats.set_state(ServiceState::Copying);
        let mut tables = ctx.tables.clone();
        let mut s = stop.clone();
        let end = loop {
            // A stop interrupts the copy at once: each chunk commits with its
            // progress row, so the next run continues where this one stopped
            // (as after a crash); the open chunk's transaction rolls back.
            let copied = tokio::select! {
                r = copy::run(&ctx.cfg, &ctx.svc, &tables, ctx.stats.clone()) => r,
                _ = s.wait_for(|s| *s) => {
                    info!(service = %name, "stop requested: the copy stops; the next run continues it from its committed chunks");
                    return Ok((Stop::Requested, 0));
                }
            };
            match copied {
                Ok(end) => break end,
                Err(Error::SchemaChangedDuringCopy(msg)) => {
                    warn!(service = %name, reason = %msg, "copy restarts from a fresh position; nothing is lost");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = s.wait_for(|s| *s) => return Ok((Stop::Requested, 0)),
                    }
                    let mut src = crate::connect::source(&ctx.cfg).await?;
                    copy::drop_target_tables(&ctx.svc, &tables, &mut tgt).await?;
                    let current =
                        crate::source::service_tables(&ctx.cfg, &ctx.svc, &mut src).await?;
                    copy::drop_target_tables(&ctx.svc, &current, &mut tgt).await?;
                    let (fresh, p0) =
                        copy::start(&ctx.cfg, &ctx.svc, &mut src, &mut tgt, false).await?;
                    tables = fresh;
                    record_copy_start(&mut tgt, name, &p0).await?;
                    ctx.stats.rows_copied.store(0, Relaxed);
                    let _ = src.disconnect().await;
                }
                Err(e) => return Err(e),
            }
        };
        crate::crash::point("copy:end-copied");
        tgt.exec_drop(
            "UPDATE `_dropship`.`copy_state` SET end_file = ?, end_pos = ? WHERE service = ?",
            (&end.file, end.pos, name),
        )
        .await
        .map_err(Error::db("recording the copy end"))?;
        crate::crash::point("copy:end-recorded");
        meta::set_state(&mut tgt, name, ServiceState::Replicating, "").await?;
        info!(service = %name, rows = ctx.stats.rows_copied.load(Relaxed), until = %end, "copy finished; replaying changes made during the copy");
    } else if !state.is_some_and(ServiceState::reverse_runs) {
        // No state yet, or any other one (paused, error, frozen by a cutover
        // that died): replication resumes.
        meta::set_state(&mut tgt, name, ServiceState::Replicating, "").await?;
    } else {
        // Cut over (or being rolled back): park until stopped or rolled back.
        // While the state reads `cut-over`, ack the relay log so it does not
        // grow: `last` is read before the state, so every record up to it was
        // read before the rollback set `rolling-back` — which it does before
        // it unfreezes the source — and the rollback sets the position past
        // them. While `rolling-back`, nothing is acked: the writes that follow
        // the source's unfreeze must stay in the relay log.
        if let Some(state) = state {
            ctx.stats.set_state(state);
        }
        let mut s = stop.clone();
        loop {
            tokio::select! {
                _ = s.wait_for(|s| *s) => return Ok((Stop::Requested, 0)),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let last = ctx.relay.last_id();
            let state = meta::load_state(&mut tgt, name).await?.map(|s| s.0);
            let Some(state) = state.filter(|s| s.reverse_runs()) else {
                info!(service = %name, state = %state.map_or("none", ServiceState::as_str), "service is no longer cut over; replication resumes from its position");
                return Ok((Stop::Requested, 0));
            };
            ctx.stats.set_state(state);
            if last > 0 && state == ServiceState::CutOver {
                let _ = ctx.relay.ack(name, last);
            }
        }
    }
    let catch_up = copy_end(&mut tgt, name).await?;
    let relay = ctx.relay.clone();
    let consumer = name.clone();
    // Acks persist (fsync) the relay ledger: four a second at most, and the
    // last commit is always acked (a reader paused at a full relay log waits
    // for the space it frees). A lost ack only keeps segments a little longer.
    let committed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let on_commit = {
        let committed = committed.clone();
        move |id| {
            committed.fetch_max(id, Relaxed);
        }
    };
    let acker = tokio::spawn(async move {
        let mut acked = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let id = committed.load(Relaxed);
            if id > acked {
                match relay.ack(&consumer, id) {
                    Ok(()) => acked = id,
                    Err(e) => {
                        warn!(service = %consumer, error = %e, "could not record the relay log position; segments are kept longer")
                    }
                }
            }
        }
    });
    let opts = ApplierOptions {
        source: Some(ctx.source.clone()),
        catch_up_until: catch_up,
        batch_rows: ctx.cfg.tuning.batch_rows,
        batch_delay: ctx.cfg.tuning.batch_delay,
        skip_begin_ids: skip_ids.to_vec(),
        on_commit: Some(Box::new(on_commit)),
    };
    let mut applier = Applier::new(ctx.svc.clone(), tgt, ctx.stats.clone(), opts).await?;
    ctx.stats.set_state(ServiceState::Replicating);
    ctx.stats.set_error("");
    let reader = ctx.relay.reader(start_id)?;
    let mut src = RelaySource {
        reader,
        peeked: None,
        dir: ctx.cfg.state_dir.join("relay").display().to_string(),
    };
    // Stop also when paused through the control endpoint.
    let (tx, rx) = watch::channel(false);
    let mut outer = stop.clone();
    let mut pause = ctx.control.pause_watch(name);
    // Stop too when `dropship cutover` marks the service cut over.
    let cut_over = watch_cut_over(ctx.svc.target.opts_with_db(meta::DB), name.clone());
    let fwd = tokio::spawn(async move {
        tokio::select! {
            _ = outer.wait_for(|s| *s) => {}
            _ = pause.wait_for(|p| *p) => {}
            _ = cut_over => {}
        }
        let _ = tx.send(true);
    });
    let r = applier.run(&mut src, &rx).await;
    fwd.abort();
    acker.abort();
    let last = applier.committed_relay_id;
    if last > 0 {
        let _ = ctx.relay.ack(name, last);
    }
    Ok((r?, last))
}

/// Returns once the service's state on its target reads `cut-over` (polled
/// every second; connection problems are retried).
async fn watch_cut_over(opts: mysql_async::Opts, service: String) {
    let mut conn: Option<Conn> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if conn.is_none() {
            conn = crate::connect::connect(opts.clone(), String::new())
                .await
                .ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        match meta::load_state(c, &service).await {
            Ok(Some((ServiceState::CutOver, _))) => {
                info!(service = %service, "service cut over: its applier stops");
                return;
            }
            Ok(_) => {}
            Err(_) => conn = None,
        }
    }
}
