//! `dropship cutover` and `dropship rollback`: the write-freeze cutover of
//! one service (PRODUCT.md "Cutover"), as wiring. Each step is one call into
//! a module named after it:
//!
//! | step | module | what |
//! |---|---|---|
//! | (checks) | [`readiness`] | refuse, changing nothing, unless the service replicates with lag <= `--max-lag` |
//! | `freeze` | [`freeze`] | triggers on the source tables make writes fail fast, naming the service; drains in-flight transactions within `--max-freeze` |
//! | `catch-up` | here | records the source position `P` after the freeze, waits until the target's applied position >= `P` |
//! | `final-check` | [`final_check`] | exact count + digest of every frozen table on both sides |
//! | `reverse-start` | [`crate::reverse`] | records the target position `T0` on the source: reverse replication (run by `replicate`) streams target changes from there back to the source; skipped, with a warning, when the target binlog is not ROW/FULL |
//! | `switch` | [`switch`] | `sh -c --switch-cmd`, direction `forward`; non-zero exit aborts |
//! | `mark-cut-over` | here | `_dropship.service_state` = `cut-over`; the source stays frozen |
//!
//! # Coordination with a running `replicate`
//! `cutover` is a separate process. The shared state is on the service's
//! target: `_dropship.positions` (what the applier has committed, rewritten at
//! least every ~2 s while it runs) and `_dropship.service_state`. A running
//! `replicate` polls `service_state` every second: when it reads `cut-over` the
//! service's applier commits and parks (acking the relay log so it does not
//! grow); when the state changes back (rollback), the applier resumes from
//! the service's position.
//!
//! # Why nothing is lost
//! After the freeze step every table carries its triggers and every
//! transaction that wrote it before has ended (that is what creating a trigger
//! waits for), so every acknowledged write is in the binlog before `P`
//! (recorded after the freeze), and no write can follow it. Once the target's
//! committed position is >= `P`, the target has every such write (the applier
//! commits rows and position together). The final check then proves the
//! tables equal before the switch. Aborting before the switch only drops the
//! triggers: the source has every write, and replication simply goes on.
//!
//! # Journal, crash, resume, abort
//! Every step is recorded in [`journal`] on the target before it runs. A
//! crash (kill -9) leaves an open run: plain `cutover` refuses (exit 2) and
//! names `--resume` (re-runs the unfinished steps; each is idempotent, so is
//! a re-run switch command, which must be idempotent) and `--abort` (runs the
//! switch command with direction `back` if the switch step had started, drops
//! the triggers, sets the state back to `replicating`). Any failure of a step
//! before the switch aborts by itself: the source is unfrozen, exit 1.
//!
//! # Rollback
//! See [`rollback`]: freezes the target tables, waits until reverse
//! replication has brought the source up to date (or, without it, copies
//! the target's rows back in full: [`copy_back`]), switches back, unfreezes
//! both, and sets the service's position to the source position taken while
//! the source was still frozen, so forward replication continues exactly.
//!
//! # Privileges
//! Source user: TRIGGER on the service's tables (plus
//! `log_bin_trust_function_creators=1` with the binlog on and no SUPER), and
//! for rollback and reverse replication SELECT, INSERT, UPDATE, DELETE on
//! them, and CREATE, ALTER, SELECT, INSERT, UPDATE, DELETE on `_dropship`.*
//! (the reverse stream's position lives on the source). Target user: what
//! `replicate` needs, plus TRIGGER (rollback freezes the target tables) and,
//! for reverse replication, REPLICATION SLAVE and BINLOG MONITOR
//! (REPLICATION CLIENT on MySQL) with the binlog ROW/FULL.
//!
//! # Exit codes (CLI)
//! 0 cut over / rolled back / dry run passed; 1 refused or aborted (the source
//! is writable, nothing lost), including a successful `--abort`; 2 error (for
//! example an unfinished journal, or an abort that could not unfreeze: the
//! message says what state things are in).

pub mod copy_back;
pub mod final_check;
pub mod freeze;
pub mod journal;
pub mod readiness;
pub mod rollback;
pub mod switch;

use crate::config::{Config, ServiceConfig};
use crate::error::{Error, Result};
use crate::state::ServiceState;
use crate::{meta, reverse};
use dropship_mysql::position::Position;
use dropship_mysql::schema::TableSchema;
use journal::{Kind, Run};
use mysql_async::Conn;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

pub use rollback::{rollback, RollbackOptions};

/// Which kind of `cutover` invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Start a new cutover (refused if a journal run is open).
    Start,
    /// `--resume`: finish the open run.
    Resume,
    /// `--abort`: undo the open run.
    Abort,
}

/// Options of `dropship cutover`.
#[derive(Debug, Clone)]
pub struct CutoverOptions {
    pub service: String,
    /// Default 5 s.
    pub max_lag: Duration,
    /// Default 5 s.
    pub max_freeze: Duration,
    pub switch_cmd: Option<String>,
    pub dry_run: bool,
    pub mode: Mode,
}

impl CutoverOptions {
    pub fn new(service: &str) -> CutoverOptions {
        CutoverOptions {
            service: service.into(),
            max_lag: Duration::from_secs(5),
            max_freeze: Duration::from_secs(5),
            switch_cmd: None,
            dry_run: false,
            mode: Mode::Start,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    CutOver,
    RolledBack,
    /// `--dry-run`: every check passed.
    DryRunPassed,
    /// `--dry-run`: a check failed (listed in `checks`).
    DryRunFailed,
    /// Refused before changing anything.
    Refused(String),
    /// Undone: the source is unfrozen and nothing was lost.
    Aborted(String),
}

/// One step's timing.
#[derive(Debug, Clone)]
pub struct StepTiming {
    pub step: String,
    pub duration: Duration,
    pub note: String,
}

/// What `cutover` or `rollback` did.
#[derive(Debug, Clone)]
pub struct CutoverReport {
    pub service: String,
    pub outcome: Outcome,
    pub steps: Vec<StepTiming>,
    /// Freeze to switch done (cutover); target freeze to source unfreeze
    /// (rollback: from then on the application, switched back, writes again).
    pub freeze: Option<Duration>,
    pub switch_output: Option<String>,
    /// Dry-run check lines: `ok ...` / `FAIL ...`.
    pub checks: Vec<String>,
    pub estimated_freeze: Option<Duration>,
    freeze_started: Option<Instant>,
    rollback: bool,
}

/// A journaled step under way: recorded as begun in the cutover journal (so
/// a resume knows it started) and timed for the report. Every step of a
/// cutover and of a rollback goes through [`Step::begin`] and [`Step::done`].
struct Step {
    seq: u32,
    name: &'static str,
    started: Instant,
}

impl Step {
    /// Begins `name`, or `None` when the run finished it already (a resume).
    async fn begin(
        conn: &mut Conn,
        run: &mut Run,
        name: &'static str,
        note: &str,
    ) -> Result<Option<Step>> {
        if run.finished(name) {
            return Ok(None);
        }
        let started = Instant::now();
        let seq = journal::begin_step(conn, run, name, note).await?;
        Ok(Some(Step { seq, name, started }))
    }

    /// Records the step finished: `journal_note` in the journal (appended to
    /// the note it began with), `note` in the report with its time.
    async fn done(
        self,
        conn: &mut Conn,
        run: &mut Run,
        report: &mut CutoverReport,
        journal_note: &str,
        note: impl Into<String>,
    ) -> Result<()> {
        journal::finish_step(conn, run, self.seq, journal_note).await?;
        report.step(self.name, self.started, note);
        Ok(())
    }
}

impl CutoverReport {
    fn new(service: &str) -> CutoverReport {
        CutoverReport {
            service: service.into(),
            outcome: Outcome::CutOver,
            steps: Vec::new(),
            freeze: None,
            switch_output: None,
            checks: Vec::new(),
            estimated_freeze: None,
            freeze_started: None,
            rollback: false,
        }
    }

    fn step(&mut self, step: &str, started: Instant, note: impl Into<String>) {
        let note = note.into();
        let duration = started.elapsed();
        info!(service = %self.service, step, duration_ms = duration.as_secs_f64() * 1e3, note = %note, "step done");
        self.steps.push(StepTiming {
            step: step.into(),
            duration,
            note,
        });
    }

    /// CLI exit code: 0 done, 1 refused/aborted/dry run failed.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::CutOver | Outcome::RolledBack | Outcome::DryRunPassed => 0,
            _ => 1,
        }
    }

    /// Human-readable summary: each step with its time, the freeze, the outcome.
    pub fn render(&self) -> String {
        let mut o = String::new();
        for c in &self.checks {
            let _ = writeln!(o, "{c}");
        }
        for s in &self.steps {
            let _ = writeln!(
                o,
                "{:<16} {:>10.1} ms  {}",
                s.step,
                s.duration.as_secs_f64() * 1e3,
                s.note
            );
        }
        if let Some(out) = &self.switch_output {
            if !out.trim().is_empty() {
                let _ = writeln!(o, "switch command output:");
                for l in out.lines() {
                    let _ = writeln!(o, "  | {l}");
                }
            }
        }
        if let Some(e) = self.estimated_freeze {
            let _ = writeln!(
                o,
                "estimated freeze: {:.0} ms plus the switch command's own time",
                e.as_secs_f64() * 1e3
            );
        }
        if let Some(f) = self.freeze {
            let _ = writeln!(o, "freeze: {:.1} ms", f.as_secs_f64() * 1e3);
        }
        let _ = match &self.outcome {
            Outcome::CutOver => writeln!(o, "service {} is cut over: its tables now live on the target; the source tables stay frozen", self.service),
            Outcome::RolledBack => writeln!(o, "service {} is rolled back: its tables live on the source again and replicate to the target", self.service),
            Outcome::DryRunPassed => writeln!(o, "dry run: every check passed; nothing was changed"),
            Outcome::DryRunFailed => writeln!(o, "dry run: a check failed; nothing was changed"),
            Outcome::Refused(r) => writeln!(o, "refused: {r}\nnothing was changed"),
            Outcome::Aborted(r) if self.rollback => writeln!(o, "rollback aborted: {r}\nthe target tables are writable again and the service stays cut over; nothing was lost"),
            Outcome::Aborted(r) => writeln!(o, "aborted: {r}\nthe source tables are writable again; nothing was lost"),
        };
        o
    }
}

/// The service's config, or a config error listing the defined services.
pub(crate) fn service<'a>(cfg: &'a Config, name: &str) -> Result<&'a ServiceConfig> {
    cfg.service_named(name).map_err(Error::Config)
}

fn source_tables(tables: &[Arc<TableSchema>]) -> Vec<(String, String)> {
    tables
        .iter()
        .map(|t| (t.database.clone(), t.table.clone()))
        .collect()
}

pub(crate) fn new_token() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

/// Runs `dropship cutover`. Refusals and aborts are `Ok` with that outcome;
/// `Err` means an error (CLI exit 2).
pub async fn run(cfg: &Config, opts: CutoverOptions) -> Result<CutoverReport> {
    let svc = service(cfg, &opts.service)?;
    meta::migrate(&svc.target).await?;
    let mut tgt = crate::connect::target(svc).await?;
    let mut src = crate::connect::source(cfg).await?;
    let tables = crate::source::service_tables(cfg, svc, &mut src).await?;
    let mut report = CutoverReport::new(&svc.name);
    let open = journal::open_run(&mut tgt, &svc.name).await?;
    if let Some(r) = &open {
        if r.kind == Kind::Rollback {
            return Err(Error::definite(
                format!(
                    "service {} has an unfinished rollback (journal run {})",
                    svc.name, r.id
                ),
                format!(
                    "run `dropship rollback --service {}` again to finish it",
                    svc.name
                ),
            ));
        }
    }
    let cx = Cx {
        cfg,
        svc,
        tables: &tables,
        opts: &opts,
    };
    let result = match opts.mode {
        Mode::Abort => match open {
            None => {
                report.outcome = Outcome::Refused(format!(
                    "service {} has no unfinished cutover to abort",
                    svc.name
                ));
                return Ok(report);
            }
            Some(run) => {
                let reason = "aborted with --abort".to_string();
                abort(cx, run, true, &reason, &mut report).await?;
                return Ok(report);
            }
        },
        Mode::Resume => match open {
            None => {
                return Err(Error::definite(
                    format!("service {} has no unfinished cutover to resume", svc.name),
                    "start one with `dropship cutover` (without --resume)",
                ))
            }
            Some(run) => {
                info!(service = %svc.name, run = run.id, "resuming the cutover from its journal");
                proceed(cx, run, &mut src, &mut tgt, &mut report).await
            }
        },
        Mode::Start => {
            if let Some(run) = open {
                return Err(Error::definite(
                    format!("service {} has an unfinished cutover (journal run {}, steps started: {})", svc.name, run.id, run.steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>().join(", ")),
                    format!("its source tables may still be frozen: pass --resume to finish it or --abort to undo it (dropship cutover --service {} --resume|--abort)", svc.name),
                ));
            }
            let started = Instant::now();
            let ready = readiness::assess(cfg, svc, &mut tgt).await?;
            let refusal = ready.refusal(&svc.name, opts.max_lag);
            if opts.dry_run {
                dry_run(cx, &ready, refusal, &mut src, &mut tgt, &mut report).await?;
                return Ok(report);
            }
            if let Some(r) = refusal {
                warn!(service = %svc.name, reason = %r, "cutover refused; nothing changed");
                report.outcome = Outcome::Refused(r);
                return Ok(report);
            }
            report.step(
                "checks",
                started,
                format!("replicating, lag {}s", ready.lag_seconds.unwrap_or(0)),
            );
            let run = journal::create_run(&mut tgt, &svc.name, Kind::Cutover, &new_token()).await?;
            proceed(cx, run, &mut src, &mut tgt, &mut report).await
        }
    };
    match result {
        Ok(()) => Ok(report),
        Err(Failure::Abort {
            run,
            reason,
            switch_started,
        }) => {
            warn!(service = %svc.name, reason = %reason, "cutover aborting: unfreezing the source");
            abort(cx, run, switch_started, &reason, &mut report).await?;
            Ok(report)
        }
        Err(Failure::Error(e)) => Err(e),
    }
}

enum Failure {
    /// Undo: drop the freeze (and switch back if the switch may have run).
    Abort {
        run: Run,
        reason: String,
        switch_started: bool,
    },
    /// Keep the state (the switch has run): the user resumes.
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

/// What every step of one cutover reads: the config, the service, its source
/// tables and the command's options.
#[derive(Clone, Copy)]
struct Cx<'a> {
    cfg: &'a Config,
    svc: &'a ServiceConfig,
    tables: &'a [Arc<TableSchema>],
    opts: &'a CutoverOptions,
}

/// Runs the unfinished steps of `run`. Errors before the switch abort.
async fn proceed(
    cx: Cx<'_>,
    mut run: Run,
    src: &mut Conn,
    tgt: &mut Conn,
    report: &mut CutoverReport,
) -> Result<(), Failure> {
    let Cx {
        cfg,
        svc,
        tables,
        opts,
    } = cx;
    // Checked before the freeze: what reverse replication needs.
    let reverse_ready = if run.finished("reverse-start") {
        Ok(())
    } else {
        reverse::prepare(cfg, tgt).await.map_err(|e| e.to_string())
    };
    let frozen_since = run
        .frozen_for
        .and_then(|s| Instant::now().checked_sub(Duration::from_secs_f64(s.max(0.0))));
    let before_switch = steps_before_switch(svc, tables, &mut run, opts, src, tgt, report).await;
    let frozen_since = frozen_since.or(report.freeze_started);
    if let Err(e) = before_switch {
        return Err(Failure::Abort {
            reason: e.to_string(),
            run,
            switch_started: false,
        });
    }
    // Reverse replication start: the source is frozen and the target holds
    // exactly its rows, so the target position now is where the
    // application's writes on the target will begin (see `reverse`).
    if let Some(step) = Step::begin(tgt, &mut run, "reverse-start", "").await? {
        let note = match reverse_ready {
            Ok(()) => match reverse::start(cfg, &svc.name, tgt).await {
                Ok(t0) => format!("reverse replication (target -> source) starts at target {t0}"),
                Err(e) => format!(
                    "no reverse replication: {e}; rollback will copy the tables back in full"
                ),
            },
            Err(r) => {
                format!("no reverse replication: {r}; rollback will copy the tables back in full")
            }
        };
        if note.starts_with("no ") {
            warn!(service = %svc.name, "{note}");
            reverse::forget(cfg, &svc.name).await;
        }
        step.done(tgt, &mut run, report, &note, note.clone())
            .await?;
    }
    // Switch.
    let switch_note = opts.switch_cmd.as_deref().unwrap_or("");
    if let Some(step) = Step::begin(tgt, &mut run, "switch", switch_note).await? {
        match opts.switch_cmd.as_deref() {
            Some(cmd) => {
                let out = match switch::run(cmd, svc, switch::Direction::Forward).await {
                    Ok(o) => o,
                    Err(e) => {
                        return Err(Failure::Abort {
                            reason: format!("the switch command could not run: {e}"),
                            run,
                            switch_started: false,
                        })
                    }
                };
                report.switch_output = Some(out.output.clone());
                if !out.success {
                    // A failing switch command leaves routing as it was (its contract): no switch back.
                    let reason = format!(
                        "the switch command failed (exit {}): {}",
                        out.code
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "killed".into()),
                        out.output.trim()
                    );
                    return Err(Failure::Abort {
                        reason,
                        run,
                        switch_started: false,
                    });
                }
                step.done(tgt, &mut run, report, "", format!("`{cmd}` exited 0"))
                    .await?;
            }
            None => {
                let note = "no --switch-cmd: repoint the application yourself now";
                step.done(tgt, &mut run, report, "no switch command", note)
                    .await?;
            }
        }
    }
    report.freeze = frozen_since.map(|s| s.elapsed());
    // Mark cut over.
    if let Some(step) = Step::begin(tgt, &mut run, "mark-cut-over", "").await? {
        meta::set_state(
            tgt,
            &svc.name,
            ServiceState::CutOver,
            "cut over by dropship cutover; source tables frozen",
        )
        .await?;
        let note = "service state cut-over; replication of its tables stops";
        step.done(tgt, &mut run, report, "", note).await?;
    }
    journal::close_run(tgt, &run, "done", "cut over").await?;
    report.outcome = Outcome::CutOver;
    info!(service = %svc.name, freeze_ms = report.freeze.map(|f| f.as_secs_f64() * 1e3).unwrap_or(0.0), "cut over");
    Ok(())
}

async fn steps_before_switch(
    svc: &ServiceConfig,
    tables: &[Arc<TableSchema>],
    run: &mut Run,
    opts: &CutoverOptions,
    src: &mut Conn,
    tgt: &mut Conn,
    report: &mut CutoverReport,
) -> Result<()> {
    let names = source_tables(tables);
    // Freeze (re-checked on resume: creates any trigger that is missing).
    let t = Instant::now();
    let freeze_note = format!("{} tables", names.len());
    if let Some(step) = Step::begin(tgt, run, "freeze", &freeze_note).await? {
        report.freeze_started = Some(step.started);
        meta::set_state(
            tgt,
            &svc.name,
            ServiceState::Frozen,
            "source tables frozen by dropship cutover",
        )
        .await?;
        freeze::freeze(src, &names, &svc.name, &run.token, opts.max_freeze).await?;
        let note = format!(
            "{} tables frozen ({} triggers)",
            names.len(),
            names.len() * 3
        );
        step.done(tgt, run, report, "", note).await?;
    } else if !freeze::is_frozen(src, &names).await? {
        freeze::freeze(src, &names, &svc.name, &run.token, opts.max_freeze).await?;
        report.step("freeze", t, "re-created missing freeze triggers");
    }
    // Catch up.
    if let Some(step) = Step::begin(tgt, run, "catch-up", "").await? {
        let p = crate::source::position(src).await?;
        journal::set_position(tgt, run, &p).await?;
        let timeout = opts.max_lag.max(Duration::from_secs(1)) + Duration::from_secs(10);
        wait_applied(tgt, &svc.name, &p, timeout).await?;
        let note = format!("target applied {p}");
        step.done(tgt, run, report, &p.to_string(), note).await?;
    }
    // Final check.
    if let Some(step) = Step::begin(tgt, run, "final-check", "").await? {
        let (bad, rows) = final_check::compare(svc, tables, src, tgt).await?;
        if !bad.is_empty() {
            let list: Vec<String> = bad
                .iter()
                .map(|m| {
                    format!(
                        "{} (source {} rows, target {} rows, digests {}/{} vs {}/{})",
                        m.table,
                        m.source.rows,
                        m.target.rows,
                        m.source.hash.0,
                        m.source.hash.1,
                        m.target.hash.0,
                        m.target.hash.1
                    )
                })
                .collect();
            return Err(Error::definite(
                format!("final check: the frozen tables differ between source and target: {}", list.join("; ")),
                format!("run `dropship verify --service {}` to see the rows; fix the cause before cutting over again", svc.name),
            ));
        }
        let note = format!("{} tables, {rows} rows identical", tables.len());
        step.done(tgt, run, report, &format!("{rows} rows identical"), note)
            .await?;
    }
    Ok(())
}

/// Waits until the service's committed position on the target is >= `p`.
async fn wait_applied(
    tgt: &mut Conn,
    service: &str,
    p: &Position,
    timeout: Duration,
) -> Result<()> {
    match meta::wait_position(tgt, service, p, timeout).await? {
        meta::Wait::Reached(_) => Ok(()),
        meta::Wait::Behind(applied) => Err(Error::definite(
            format!("the target did not apply up to the freeze position {p} within {timeout:?} (it is at {applied})"),
            "check that `dropship replicate` is running and the service is not paused or in error (`dropship status`)",
        )),
        meta::Wait::NoPosition => Err(Error::definite(
            format!("service {service} has no position on its target"),
            "start `dropship replicate`",
        )),
    }
}

/// Undoes an open cutover run: switch back (only if the switch may have
/// run), unfreeze the source, state back to replicating, close the run.
async fn abort(
    cx: Cx<'_>,
    mut run: Run,
    switch_may_have_run: bool,
    reason: &str,
    report: &mut CutoverReport,
) -> Result<()> {
    let Cx {
        cfg, svc, tables, ..
    } = cx;
    let switch_cmd = cx.opts.switch_cmd.as_deref();
    if run.finished("mark-cut-over") {
        let mut tgt = crate::connect::target(svc).await?;
        journal::close_run(&mut tgt, &run, "done", "cut over").await?;
        return Err(Error::definite(
            format!("service {} is already cut over; nothing to abort", svc.name),
            format!(
                "use `dropship rollback --service {}` to send it back",
                svc.name
            ),
        ));
    }
    let t = Instant::now();
    let mut tgt = crate::connect::target(svc).await.ok();
    let mut seq = None;
    if let Some(c) = tgt.as_mut() {
        seq = journal::begin_step(c, &mut run, "abort", reason).await.ok();
    }
    if switch_may_have_run && run.started("switch") {
        match switch_cmd {
            Some(cmd) => {
                let out = switch::run(cmd, svc, switch::Direction::Back).await?;
                report.switch_output = Some(out.output.clone());
                if !out.success {
                    return Err(Error::definite(
                        format!("the switch command with DROPSHIP_DIRECTION=back failed (exit {:?}); the source stays frozen", out.code),
                        "make sure traffic goes to the source, then run `dropship cutover --abort` again",
                    ));
                }
            }
            None => {
                warn!(service = %svc.name, "the switch step had started before the crash: make sure the application points at the source again (no --switch-cmd was given to switch back)")
            }
        }
    }
    let mut src = crate::connect::source(cfg).await?;
    let dropped = freeze::unfreeze(&mut src, &source_tables(tables)).await.map_err(|e| {
        Error::definite(format!("aborting the cutover of {}: could not unfreeze the source: {e}", svc.name), format!("the source tables may still be frozen: run `dropship cutover --service {} --abort` again", svc.name))
    })?;
    let _ = src.disconnect().await;
    let mut tgt = match tgt {
        Some(c) => c,
        None => crate::connect::target(svc).await?,
    };
    meta::set_state(
        &mut tgt,
        &svc.name,
        ServiceState::Replicating,
        &format!("cutover aborted: {reason}"),
    )
    .await?;
    if let Some(seq) = seq {
        journal::finish_step(
            &mut tgt,
            &mut run,
            seq,
            &format!("{dropped} triggers dropped"),
        )
        .await?;
    }
    journal::close_run(&mut tgt, &run, "aborted", reason).await?;
    report.freeze = report.freeze_started.map(|s| s.elapsed());
    report.step(
        "abort",
        t,
        format!("source unfrozen ({dropped} triggers dropped)"),
    );
    report.outcome = Outcome::Aborted(reason.to_string());
    Ok(())
}

async fn dry_run(
    cx: Cx<'_>,
    ready: &readiness::Readiness,
    refusal: Option<String>,
    src: &mut Conn,
    tgt: &mut Conn,
    report: &mut CutoverReport,
) -> Result<()> {
    let Cx {
        svc, tables, opts, ..
    } = cx;
    let mut failed = false;
    let mut line = |status: &str, text: String| {
        failed |= status == "FAIL";
        report.checks.push(format!("{status} {text}"));
    };
    match refusal {
        None => line(
            "ok  ",
            format!(
                "service {} replicating, lag {}s (max {:?})",
                svc.name,
                ready.lag_seconds.unwrap_or(0),
                opts.max_lag
            ),
        ),
        Some(r) => line("FAIL", r),
    }
    let names = source_tables(tables);
    let problems = freeze::check_privileges(src, &names).await?;
    if problems.is_empty() {
        line(
            "ok  ",
            format!("can create freeze triggers on {} tables", names.len()),
        );
    }
    for p in problems {
        line("FAIL", p);
    }
    for (db, t) in &names {
        if !freeze::existing(src, db, t).await?.is_empty() {
            line("FAIL", format!("{db}.{t} already carries dropship freeze triggers (an earlier run?): `dropship cutover --abort` removes them"));
        }
    }
    match reverse::prepare_check(tgt).await {
        Ok(()) => line(
            "ok  ",
            "target binlog is ROW/FULL: reverse replication will keep the source current for a rollback".into(),
        ),
        Err(e) => line("warn", format!(
            "no reverse replication after the cutover ({e}): a rollback would copy the tables back in full inside its freeze"
        )),
    }
    match opts.switch_cmd.as_deref() {
        Some(cmd) => {
            let problems = switch::check(cmd).await;
            if problems.is_empty() {
                line(
                    "ok  ",
                    format!("switch command parses and its program is found: {cmd}"),
                );
            }
            for p in problems {
                line("FAIL", p);
            }
        }
        None => line(
            "ok  ",
            "no --switch-cmd: the application must be repointed by hand during the freeze".into(),
        ),
    }
    // Time the final check on the live tables (its result is meaningless while writes go on).
    let t = Instant::now();
    let (_, rows) = final_check::compare(svc, tables, src, tgt).await?;
    let check_time = t.elapsed();
    line(
        "ok  ",
        format!(
            "final check reads {rows} rows in {:.0} ms",
            check_time.as_secs_f64() * 1e3
        ),
    );
    // Catch-up: the applier commits its position at least every ~1-2 s while idle.
    let catch_up = Duration::from_secs(ready.lag_seconds.unwrap_or(0).max(0) as u64)
        + Duration::from_millis(1500);
    report.estimated_freeze = Some(catch_up + check_time + Duration::from_millis(50));
    report.outcome = if failed {
        Outcome::DryRunFailed
    } else {
        Outcome::DryRunPassed
    };
    Ok(())
}
