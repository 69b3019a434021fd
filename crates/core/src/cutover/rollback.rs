//! `dropship rollback --service S`: sends a cut-over service back to the
//! source, losing nothing written on the target meanwhile.
//!
//! Steps (each journaled before it runs, like the cutover's):
//! 1. `freeze-target`: service state `rolling-back`, then freeze triggers on
//!    the service's target tables (the application now writes there),
//!    draining in-flight transactions within the max freeze.
//! 2. `reverse-catch-up`: since the cutover, reverse replication
//!    ([`crate::reverse`], run by `replicate`) has streamed the target's
//!    changes to the source. Record the target position `T1` (every
//!    acknowledged target write is before it), wait until the reverse stream
//!    has applied up to `T1`, then record the source position `B` — the
//!    source is still frozen, so `B` follows every reverse write and precedes
//!    every later application write — and write it as the service's forward
//!    position on the target. Time taken: the reverse lag, not the data size.
//!
//!    Without reverse replication (the target's binlog was off or not ROW
//!    when the service was cut over), `copy-back` instead makes every source
//!    table equal to its target table ([`super::copy_back`], a full resync
//!    inside the freeze, through the source freeze with the run's bypass
//!    token), then records `B` the same way.
//! 3. `switch`: `--switch-cmd` with `DROPSHIP_DIRECTION=back`. It runs while
//!    both sides are frozen, so a failing command aborts cleanly: the target
//!    is unfrozen, the service goes back to `cut-over`, nothing changed for
//!    the app.
//! 4. `unfreeze-source`, 5. `unfreeze-target`.
//! 6. `mark-replicating`: service state `replicating`; a running `replicate`
//!    notices within a second: its forward applier resumes from `B`, so it
//!    skips the reverse stream's own writes (before `B`) and applies every
//!    later source change exactly once, and reverse replication stops. The
//!    tables are equal at `B`, so this is exact.
//!
//! Between 5 and 6 a write that still reaches the target (a stale connection
//! the switch command did not drain) would be overwritten or collide with
//! forward replication: the switch command must stop target writes.
//!
//! Before step 1 it waits (up to 15 s) until a running `replicate` has parked
//! the service's forward applier (no position write for 3 s, or the control
//! endpoint says `cut-over`). The parked applier stops acking the relay log
//! once the state reads `rolling-back`, so the source writes that follow the
//! unfreeze stay in the relay log for it.
//!
//! A crash leaves an open journal run; running `rollback` again finishes it
//! (every step is idempotent; the copy-back is redone if it had not finished).

use super::{copy_back, freeze, journal, new_token, service, switch, CutoverReport, Outcome, Step};
use crate::config::{Config, ServiceConfig};
use crate::control::stats::now_epoch;
use crate::error::{Error, Result};
use crate::state::ServiceState;
use crate::{meta, reverse};
use dropship_mysql::schema::TableSchema;
use journal::{Kind, Run};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long the reverse stream may take to apply the last target writes.
const REVERSE_CATCH_UP: Duration = Duration::from_secs(30);

/// Options of `dropship rollback`.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub service: String,
    pub switch_cmd: Option<String>,
    /// How long the target freeze may wait for in-flight transactions. Default 5 s.
    pub max_freeze: Duration,
}

impl RollbackOptions {
    pub fn new(service: &str) -> RollbackOptions {
        RollbackOptions {
            service: service.into(),
            switch_cmd: None,
            max_freeze: Duration::from_secs(5),
        }
    }
}

/// Runs (or finishes) a rollback. Refusals and aborts are `Ok` with that outcome.
pub async fn rollback(cfg: &Config, opts: RollbackOptions) -> Result<CutoverReport> {
    let svc = service(cfg, &opts.service)?;
    meta::migrate(&svc.target).await?;
    let mut tgt = crate::connect::target(svc).await?;
    let mut src = crate::connect::source(cfg).await?;
    let tables = crate::source::service_tables(cfg, svc, &mut src).await?;
    let mut report = CutoverReport::new(&svc.name);
    report.rollback = true;
    let run = match journal::open_run(&mut tgt, &svc.name).await? {
        Some(r) if r.kind == Kind::Cutover => {
            return Err(Error::definite(
                format!(
                    "service {} has an unfinished cutover (journal run {})",
                    svc.name, r.id
                ),
                format!(
                    "finish or undo it first: dropship cutover --service {} --resume|--abort",
                    svc.name
                ),
            ))
        }
        Some(r) => {
            info!(service = %svc.name, run = r.id, "finishing the unfinished rollback from its journal");
            r
        }
        None => {
            let state = meta::load_state(&mut tgt, &svc.name).await?.map(|s| s.0);
            if state != Some(ServiceState::CutOver) {
                report.outcome = Outcome::Refused(format!(
                    "service {} is not cut over (state: {}); nothing to roll back",
                    svc.name,
                    state.map_or("none", ServiceState::as_str)
                ));
                return Ok(report);
            }
            if let Some(r) = wait_parked(cfg, svc, &mut tgt).await? {
                report.outcome = Outcome::Refused(r);
                return Ok(report);
            }
            // Same token as the cutover's source triggers (see `freeze`).
            let token = journal::last_cutover_token(&mut tgt, &svc.name)
                .await?
                .unwrap_or_else(new_token);
            journal::create_run(&mut tgt, &svc.name, Kind::Rollback, &token).await?
        }
    };
    let target_tables: Vec<(String, String)> = tables
        .iter()
        .map(|t| {
            (
                svc.target_database(&t.database).to_string(),
                t.table.clone(),
            )
        })
        .collect();
    let mut state = RunState {
        run,
        freeze_started: None,
    };
    let cx = Cx {
        cfg,
        svc,
        tables: &tables,
        target_tables: &target_tables,
        opts: &opts,
    };
    let before_switch = steps_before_switch(cx, &mut state, &mut tgt, &mut report).await;
    let abort_reason = match before_switch {
        Ok(()) => None,
        Err(e) => Some(e.to_string()),
    };
    let abort_reason = match abort_reason {
        Some(r) => Some(r),
        None => switch_back(svc, &opts, &mut state, &mut tgt, &mut report).await?,
    };
    if let Some(reason) = abort_reason {
        warn!(service = %svc.name, reason = %reason, "rollback aborting: unfreezing the target; the service stays cut over");
        let t = Instant::now();
        let mut tgt = crate::connect::target(svc).await?;
        let dropped = freeze::unfreeze(&mut tgt, &target_tables).await?;
        meta::set_state(
            &mut tgt,
            &svc.name,
            ServiceState::CutOver,
            &format!("rollback aborted: {reason}"),
        )
        .await?;
        journal::close_run(&mut tgt, &state.run, "aborted", &reason).await?;
        report.step(
            "abort",
            t,
            format!("target unfrozen ({dropped} triggers dropped); service stays cut over"),
        );
        report.outcome = Outcome::Aborted(reason);
        return Ok(report);
    }
    let names: Vec<(String, String)> = tables
        .iter()
        .map(|t| (t.database.clone(), t.table.clone()))
        .collect();
    let run = &mut state.run;
    if let Some(step) = Step::begin(&mut tgt, run, "unfreeze-source", "").await? {
        let n = freeze::unfreeze(&mut src, &names).await?;
        // The application, switched back, can write again: the freeze ends.
        report.freeze = state.freeze_started.map(|s| s.elapsed());
        let note = format!("{n} triggers dropped");
        step.done(&mut tgt, run, &mut report, "", note).await?;
    }
    if let Some(step) = Step::begin(&mut tgt, run, "unfreeze-target", "").await? {
        let n = freeze::unfreeze(&mut tgt, &target_tables).await?;
        let note = format!("{n} triggers dropped");
        step.done(&mut tgt, run, &mut report, "", note).await?;
    }
    if let Some(step) = Step::begin(&mut tgt, run, "mark-replicating", "").await? {
        meta::set_state(
            &mut tgt,
            &svc.name,
            ServiceState::Replicating,
            "rolled back by dropship rollback",
        )
        .await?;
        let note = "forward replication resumes; reverse replication stops";
        step.done(&mut tgt, run, &mut report, "", note).await?;
    }
    journal::close_run(&mut tgt, run, "done", "rolled back").await?;
    report.outcome = Outcome::RolledBack;
    Ok(report)
}

struct RunState {
    run: Run,
    freeze_started: Option<Instant>,
}

/// Waits until no applier writes the service's position. Returns a refusal
/// reason if one still does after 15 s.
async fn wait_parked(cfg: &Config, svc: &ServiceConfig, tgt: &mut Conn) -> Result<Option<String>> {
    let start = Instant::now();
    loop {
        let r = super::readiness::assess(cfg, svc, tgt).await?;
        if r.control_state.as_deref() == Some(ServiceState::CutOver.as_str())
            || r.position_age.is_none_or(|a| a >= 3.0)
        {
            return Ok(None);
        }
        if start.elapsed() > Duration::from_secs(15) {
            return Ok(Some(format!("replicate is still applying service {} although it is cut over; wait a few seconds and retry", svc.name)));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What every step of one rollback reads: the config, the service, its source
/// tables (and their names on the target) and the command's options.
#[derive(Clone, Copy)]
struct Cx<'a> {
    cfg: &'a Config,
    svc: &'a ServiceConfig,
    tables: &'a [Arc<TableSchema>],
    target_tables: &'a [(String, String)],
    opts: &'a RollbackOptions,
}

async fn steps_before_switch(
    cx: Cx<'_>,
    st: &mut RunState,
    tgt: &mut Conn,
    report: &mut CutoverReport,
) -> Result<()> {
    let Cx {
        cfg,
        svc,
        tables,
        target_tables,
        opts,
    } = cx;
    if let Some(step) = Step::begin(tgt, &mut st.run, "freeze-target", "").await? {
        st.freeze_started = Some(step.started);
        // From here on, a parked forward applier keeps every relay record
        // (see `service`): the source is unfrozen later in this run.
        meta::set_state(
            tgt,
            &svc.name,
            ServiceState::RollingBack,
            "target tables frozen by dropship rollback",
        )
        .await?;
        freeze::freeze(
            tgt,
            target_tables,
            &svc.name,
            &st.run.token,
            opts.max_freeze,
        )
        .await?;
        let note = format!("{} target tables frozen", target_tables.len());
        step.done(tgt, &mut st.run, report, "", note).await?;
    } else if !st.run.finished("unfreeze-target") {
        // Resuming: make sure the target is still frozen (not once this run
        // has unfrozen it: that would leave it frozen for good).
        st.freeze_started = st
            .run
            .frozen_for
            .and_then(|s| Instant::now().checked_sub(Duration::from_secs_f64(s.max(0.0))));
        freeze::freeze(
            tgt,
            target_tables,
            &svc.name,
            &st.run.token,
            opts.max_freeze,
        )
        .await?;
    }
    // Reverse replication ran since the cutover: wait for it (unless an
    // earlier attempt of this run had already begun a full copy-back).
    let reverse = if st.run.started("copy-back") {
        None
    } else if st.run.finished("reverse-catch-up") {
        return Ok(());
    } else {
        reverse::applied(cfg, &svc.name).await?
    };
    let catch_up = match reverse {
        Some(_) => Step::begin(tgt, &mut st.run, "reverse-catch-up", "").await?,
        None => None,
    };
    if let Some(step) = catch_up {
        // Every write the target acknowledged is before `t1` (its tables are frozen).
        let t1 = crate::source::position(tgt).await?;
        let reached = reverse::wait_applied(cfg, &svc.name, &t1, REVERSE_CATCH_UP).await?;
        // The source is still frozen: `b` follows every reverse write and
        // precedes every application write after the unfreeze.
        let mut src = crate::connect::source(cfg).await?;
        let b = crate::source::position(&mut src).await?;
        let _ = src.disconnect().await;
        record_forward_position(tgt, &mut st.run, &svc.name, &b).await?;
        let note = format!("source has every target write up to {t1} (reverse stream at {reached}); forward position {b}");
        step.done(tgt, &mut st.run, report, &b.to_string(), note)
            .await?;
        return Ok(());
    }
    if let Some(step) = Step::begin(tgt, &mut st.run, "copy-back", "").await? {
        warn!(service = %svc.name, "no reverse replication ran for this service (target binlog off when it was cut over?): copying its tables back in full");
        let mut src = crate::connect::source(cfg).await?;
        src.query_drop(crate::apply::applier::SESSION_SQL)
            .await
            .map_err(Error::db("preparing the copy-back session on the source"))?;
        src.exec_drop("SET @dropship_freeze_bypass = ?", (&st.run.token,))
            .await
            .map_err(Error::db("preparing the copy-back session on the source"))?;
        let (mut checked, mut written, mut deleted) = (0, 0, 0);
        for table in tables {
            let c = copy_back::sync_table(svc, table, &mut src, tgt).await?;
            checked += c.rows_checked;
            written += c.written;
            deleted += c.deleted;
        }
        let b = crate::source::position(&mut src).await?;
        let _ = src.disconnect().await;
        record_forward_position(tgt, &mut st.run, &svc.name, &b).await?;
        let note = format!("{checked} rows checked, {written} written, {deleted} deleted on the source; forward position {b}");
        step.done(tgt, &mut st.run, report, &b.to_string(), note)
            .await?;
    }
    Ok(())
}

/// Records `b` in the journal and as the service's forward position: the
/// source position from which forward replication resumes.
async fn record_forward_position(
    tgt: &mut Conn,
    run: &mut Run,
    service: &str,
    b: &dropship_mysql::position::Position,
) -> Result<()> {
    journal::set_position(tgt, run, b).await?;
    tgt.query_drop(format!(
        "START TRANSACTION;{};COMMIT",
        meta::position_sql(service, b, now_epoch() as u32, false)
    ))
    .await
    .map_err(Error::db("recording the service's forward position"))
}

/// Runs the switch back. `Ok(Some(reason))` means abort.
async fn switch_back(
    svc: &ServiceConfig,
    opts: &RollbackOptions,
    st: &mut RunState,
    tgt: &mut Conn,
    report: &mut CutoverReport,
) -> Result<Option<String>> {
    let note = opts.switch_cmd.as_deref().unwrap_or("");
    let Some(step) = Step::begin(tgt, &mut st.run, "switch", note).await? else {
        return Ok(None);
    };
    match opts.switch_cmd.as_deref() {
        Some(cmd) => {
            let out = match switch::run(cmd, svc, switch::Direction::Back).await {
                Ok(o) => o,
                Err(e) => return Ok(Some(format!("the switch command could not run: {e}"))),
            };
            report.switch_output = Some(out.output.clone());
            if !out.success {
                return Ok(Some(format!(
                    "the switch command failed (exit {}): {}",
                    out.code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "killed".into()),
                    out.output.trim()
                )));
            }
            step.done(tgt, &mut st.run, report, "", format!("`{cmd}` exited 0"))
                .await?;
        }
        None => {
            let note = "no --switch-cmd: repoint the application to the source yourself now";
            step.done(tgt, &mut st.run, report, "no switch command", note)
                .await?;
        }
    }
    Ok(None)
}
