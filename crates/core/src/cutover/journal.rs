//! The cutover journal on the service's target (`_dropship.cutover_runs` and
//! `_dropship.cutover_journal`, migration V3).
//!
//! Invariant: a run is recorded `open` before the first change it makes (the
//! freeze), and every step is recorded as started before it runs and as
//! finished after it succeeded. So after a crash or kill -9 at any point the
//! journal names the run, the last step that may have had effects, the
//! freeze token and the recorded source position; `cutover --resume` goes on
//! from there and `cutover --abort` undoes it. At most one run per service
//! is open at a time (checked before a run is created).
//!
//! Failure: every call is a plain target statement; an error is returned to
//! the caller, which treats a journal it cannot write as a reason to stop
//! before the step (never to run a step unrecorded).

use crate::error::{Error, Result};
use dropship_mysql::position::Position;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cutover,
    Rollback,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cutover => "cutover",
            Kind::Rollback => "rollback",
        }
    }
}

/// One step as the journal has it.
#[derive(Debug, Clone)]
pub struct StepRow {
    pub seq: u32,
    pub step: String,
    pub finished: bool,
}

/// An open (unfinished) run.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: u64,
    pub service: String,
    pub kind: Kind,
    pub token: String,
    /// Source position recorded by the run (after the freeze, or after the copy-back).
    pub position: Option<Position>,
    pub steps: Vec<StepRow>,
    /// Seconds since the run's freeze step started (target clock), if it did.
    pub frozen_for: Option<f64>,
}

impl Run {
    pub fn finished(&self, step: &str) -> bool {
        self.steps.iter().any(|s| s.step == step && s.finished)
    }
    pub fn started(&self, step: &str) -> bool {
        self.steps.iter().any(|s| s.step == step)
    }
}

/// id, kind, token, freeze_file, freeze_pos, freeze_gtid.
type RunRow = (
    u64,
    String,
    String,
    Option<String>,
    Option<u64>,
    Option<String>,
);

/// The open run of `service`, if any.
pub async fn open_run(conn: &mut Conn, service: &str) -> Result<Option<Run>> {
    let row: Option<RunRow> = conn
        .exec_first(
            "SELECT id, kind, token, freeze_file, freeze_pos, freeze_gtid FROM `_dropship`.`cutover_runs` \
             WHERE service = ? AND status = 'open' ORDER BY id DESC LIMIT 1",
            (service,),
        )
        .await
        .map_err(Error::db("reading the cutover journal"))?;
    let Some((id, kind, token, file, pos, gtid)) = row else {
        return Ok(None);
    };
    let kind = match kind.as_str() {
        "cutover" => Kind::Cutover,
        "rollback" => Kind::Rollback,
        other => return Err(Error::definite(
            format!("cutover journal run {id} of service {service} has an unknown kind {other:?}"),
            "the journal was written by a newer dropship; use that version to resume or abort it",
        )),
    };
    let position = match (file, pos) {
        (Some(f), Some(p)) => Some(Position {
            file: f,
            pos: p,
            gtid: gtid.unwrap_or_default(),
        }),
        _ => None,
    };
    let steps: Vec<(u32, String, bool)> = conn
        .exec("SELECT seq, step, finished_at IS NOT NULL FROM `_dropship`.`cutover_journal` WHERE run_id = ? ORDER BY seq", (id,))
        .await
        .map_err(Error::db("reading the cutover journal steps"))?;
    let frozen_for: Option<f64> = conn
        .exec_first(
            "SELECT TIMESTAMPDIFF(MICROSECOND, MIN(started_at), NOW(6)) / 1e6 FROM `_dropship`.`cutover_journal` WHERE run_id = ? AND step IN ('freeze', 'freeze-target')",
            (id,),
        )
        .await
        .map_err(Error::db("reading the cutover journal steps"))?
        .flatten();
    Ok(Some(Run {
        id,
        service: service.to_string(),
        kind,
        token,
        position,
        steps: steps
            .into_iter()
            .map(|(seq, step, finished)| StepRow {
                seq,
                step,
                finished,
            })
            .collect(),
        frozen_for,
    }))
}

/// Token of the service's last finished cutover: the source freeze triggers
/// it left carry it, so the rollback's copy-back uses it to write through them.
pub async fn last_cutover_token(conn: &mut Conn, service: &str) -> Result<Option<String>> {
    // The latest cutover run that was not undone made the source's freeze
    // triggers; it may still be open for a moment after it marked the
    // service cut over.
    conn.exec_first("SELECT token FROM `_dropship`.`cutover_runs` WHERE service = ? AND kind = 'cutover' AND status <> 'aborted' ORDER BY id DESC LIMIT 1", (service,))
        .await
        .map_err(Error::db("reading the cutover journal"))
}

/// Creates an open run. The caller has checked that none is open.
pub async fn create_run(conn: &mut Conn, service: &str, kind: Kind, token: &str) -> Result<Run> {
    conn.exec_drop(
        "INSERT INTO `_dropship`.`cutover_runs` (service, kind, status, token, message) VALUES (?, ?, 'open', ?, '')",
        (service, kind.as_str(), token),
    )
    .await
    .map_err(Error::db("recording the cutover run in the journal"))?;
    let id = conn
        .last_insert_id()
        .ok_or_else(|| Error::definite("the target returned no id for the new cutover run", ""))?;
    Ok(Run {
        id,
        service: service.to_string(),
        kind,
        token: token.to_string(),
        position: None,
        steps: Vec::new(),
        frozen_for: None,
    })
}

/// Records that `step` starts; returns its sequence number.
pub async fn begin_step(conn: &mut Conn, run: &mut Run, step: &str, note: &str) -> Result<u32> {
    let seq = run.steps.iter().map(|s| s.seq).max().unwrap_or(0) + 1;
    conn.exec_drop(
        "INSERT INTO `_dropship`.`cutover_journal` (run_id, seq, step, note) VALUES (?, ?, ?, ?)",
        (run.id, seq, step, note),
    )
    .await
    .map_err(Error::db(format!(
        "recording step {step} in the cutover journal"
    )))?;
    run.steps.push(StepRow {
        seq,
        step: step.to_string(),
        finished: false,
    });
    crash_point(run, step, false);
    Ok(seq)
}

/// Test hook of the crash tests (`tests/e2e/cutover.rs`): with
/// `DROPSHIP_CRASH_AT=<kind>:<step>` the process aborts right after the
/// journal records that `step` of a `kind` run (`cutover`/`rollback`) started,
/// before the step does anything, leaving what a kill -9 at that moment
/// would; `<kind>:<step>+` aborts right after the step is recorded finished.
fn crash_point(run: &Run, step: &str, finished: bool) {
    if let Ok(want) = std::env::var("DROPSHIP_CRASH_AT") {
        let here = format!(
            "{}:{step}{}",
            run.kind.as_str(),
            if finished { "+" } else { "" }
        );
        if want == here {
            eprintln!("DROPSHIP_CRASH_AT={want}: aborting here");
            std::process::abort();
        }
    }
}

/// Records that step `seq` finished.
pub async fn finish_step(conn: &mut Conn, run: &mut Run, seq: u32, note: &str) -> Result<()> {
    conn.exec_drop(
        "UPDATE `_dropship`.`cutover_journal` SET finished_at = NOW(6), note = CONCAT(note, ?) WHERE run_id = ? AND seq = ?",
        (note, run.id, seq),
    )
    .await
    .map_err(Error::db("recording a finished step in the cutover journal"))?;
    let mut step = None;
    if let Some(s) = run.steps.iter_mut().find(|s| s.seq == seq) {
        s.finished = true;
        step = Some(s.step.clone());
    }
    if let Some(step) = step {
        crash_point(run, &step, true);
    }
    Ok(())
}

/// Records the run's source position.
pub async fn set_position(conn: &mut Conn, run: &mut Run, pos: &Position) -> Result<()> {
    conn.exec_drop(
        "UPDATE `_dropship`.`cutover_runs` SET freeze_file = ?, freeze_pos = ?, freeze_gtid = ? WHERE id = ?",
        (&pos.file, pos.pos, &pos.gtid, run.id),
    )
    .await
    .map_err(Error::db("recording the freeze position in the cutover journal"))?;
    run.position = Some(pos.clone());
    Ok(())
}

/// Closes the run as `done` or `aborted`.
pub async fn close_run(conn: &mut Conn, run: &Run, status: &str, message: &str) -> Result<()> {
    conn.exec_drop("UPDATE `_dropship`.`cutover_runs` SET status = ?, message = ?, finished_at = NOW(6) WHERE id = ?", (status, message, run.id))
        .await
        .map_err(Error::db("closing the cutover run in the journal"))
}
