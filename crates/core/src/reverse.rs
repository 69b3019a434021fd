//! Reverse replication: while a service is cut over, the changes the
//! application makes on the target stream back to the source, with the
//! database renames undone, so `rollback` only has to wait for the stream to
//! catch up instead of resynchronising whole tables.
//!
//! # Reverse replication is forward replication, mirrored
//! [`config`] builds a [`Config`] whose source is the service's target, whose
//! one service (same name) targets the real source, claims the service's
//! tables under their target database names and renames them back. That
//! config runs through the very same pipeline as forward replication
//! ([`pipeline::run`]: reader, relay log, applier, positions committed with
//! the rows), so every guarantee of the forward path holds in reverse. Its
//! metadata (`_dropship.positions`, `service_state`) lives in a `_dropship`
//! database on the *source*, next to the rows it writes, and its relay log in
//! `<state dir>/reverse/<service>`.
//!
//! # Lifecycle
//! 1. `cutover`, step `reverse-start` (after the final check, before the
//!    switch: the source is frozen and the target holds exactly its rows),
//!    records the target's binlog position `T0` as the reverse position on
//!    the source ([`start`]). Everything the target binlogs after `T0` on the
//!    service's tables is written by the application after the switch.
//! 2. `replicate` runs [`supervise`] for each service: while the service's
//!    state on the target is `cut-over` or `rolling-back` and a reverse
//!    position exists, it runs the reverse pipeline; otherwise it stops it
//!    and removes its relay log.
//! 3. `rollback` freezes the target tables, records the target position `T1`,
//!    waits until the reverse position on the source is `>= T1` ([`applied`]),
//!    then records the source position `B` as the forward position: the
//!    source is still frozen, so `B` follows every reverse write and precedes
//!    every application write after the unfreeze.
//!
//! # Writing through the source freeze
//! The source tables keep their freeze triggers while the service is cut
//! over. The reverse applier's connections set `@dropship_freeze_bypass` to
//! the cutover run's token (kept in the journal on the target), which the
//! triggers let through; applications never set it.
//!
//! # Needs
//! On the target: binlog on, `binlog_format=ROW`, `binlog_row_image=FULL`
//! (on RDS/Aurora: automated backups on, and both in the DB parameter group),
//! and REPLICATION SLAVE (+ REPLICATION CLIENT/BINLOG MONITOR) for the
//! dropship user. On the source: CREATE, INSERT, UPDATE, DELETE, SELECT on
//! `_dropship`.* and INSERT, UPDATE, DELETE on the service's tables. Without
//! these, cutover says so, goes on without reverse replication, and rollback
//! resynchronises the tables in full (`cutover::copy_back`).

use crate::config::{Config, ServiceConfig, TablePattern};
use crate::control::stats::now_epoch;
use crate::control::stats::ServiceStats;
use crate::control::Control;
use crate::cutover::journal;
use crate::error::{Error, Result};
use crate::state::ServiceState;
use crate::{check, meta, run::pipeline};
use dropship_mysql::position::Position;
use dropship_mysql::schema::TableSchema;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

/// Where the reverse pipeline keeps its relay log.
pub fn state_dir(cfg: &Config, service: &str) -> PathBuf {
    cfg.state_dir.join("reverse").join(service)
}

/// The mirrored config: source = the service's target, one service writing
/// to the real source through the freeze bypass `token`.
pub fn config(
    cfg: &Config,
    svc: &ServiceConfig,
    tables: &[Arc<TableSchema>],
    token: &str,
) -> Config {
    let mut patterns: Vec<TablePattern> = tables
        .iter()
        .map(|t| TablePattern {
            database: svc.target_database(&t.database).to_string(),
            table: t.table.clone(),
        })
        .collect();
    patterns.sort_by(|a, b| (&a.database, &a.table).cmp(&(&b.database, &b.table)));
    patterns.dedup_by(|a, b| a.database == b.database && a.table == b.table);
    let rename_databases = svc
        .rename_databases
        .iter()
        .filter(|(from, to)| from != to)
        .map(|(from, to)| (to.clone(), from.clone()))
        .collect();
    let bypass = format!(
        "SET @dropship_freeze_bypass = {}",
        dropship_mysql::sql::string_literal(token)
    );
    let mut tuning = cfg.tuning.clone();
    // The throttle query was written for the real source; the target's own
    // replicas are not the source's.
    tuning.throttle_query = None;
    tuning.max_target_replica_lag = None;
    Config {
        file: cfg.file.clone(),
        source: svc.target.clone(),
        // A replica id of its own on the target (never 0).
        server_id: (cfg.server_id ^ 0x5256_0000 ^ crc32fast::hash(svc.name.as_bytes()) & 0xffff)
            .max(1),
        heartbeat: false,
        state_dir: state_dir(cfg, &svc.name),
        state_max_bytes: cfg.state_max_bytes,
        control: cfg.control.clone(),
        tuning,
        services: vec![ServiceConfig {
            name: svc.name.clone(),
            target: cfg.source.with_session_init(vec![bypass]),
            tables: patterns,
            rename_databases,
        }],
    }
}

/// Checks what reverse replication needs and creates `_dropship` on the
/// source. Runs before the freeze; an error means "no reverse replication".
pub async fn prepare(cfg: &Config, tgt: &mut Conn) -> Result<()> {
    prepare_check(tgt).await?;
    meta::migrate(&cfg.source).await.map_err(|e| {
        Error::definite(
            format!("reverse replication keeps its position in `_dropship` on the source: {e}"),
            "GRANT CREATE, ALTER, SELECT, INSERT, UPDATE, DELETE ON `_dropship`.* TO the source user",
        )
    })
}

/// Checks the target's binlog settings only (changes nothing).
pub async fn prepare_check(tgt: &mut Conn) -> Result<()> {
    check::require_binlog_ready(tgt, "target").await?;
    crate::source::position(tgt).await.map(|_| ())
}

/// Records `T0`, the target's current binlog position, as the reverse
/// position on the source, and the reverse service as replicating.
pub async fn start(cfg: &Config, service: &str, tgt: &mut Conn) -> Result<Position> {
    let t0 = crate::source::position(tgt).await?;
    let mut src = crate::connect::source(cfg).await?;
    let text = format!(
        "START TRANSACTION;{};DELETE FROM `_dropship`.`copy_state` WHERE service = {};COMMIT",
        meta::position_sql(service, &t0, now_epoch() as u32, false),
        dropship_mysql::sql::string_literal(service),
    );
    src.query_drop(text).await.map_err(Error::db(
        "recording the reverse replication start on the source",
    ))?;
    meta::set_state(
        &mut src,
        service,
        ServiceState::Replicating,
        "reverse replication",
    )
    .await?;
    let _ = src.disconnect().await;
    Ok(t0)
}

/// Removes a reverse position left by an earlier cutover (best effort: when
/// this cutover has no reverse replication, rollback must not wait for one).
pub async fn forget(cfg: &Config, service: &str) {
    let Ok(mut src) = crate::connect::source(cfg).await else {
        return;
    };
    if let Ok(Some(_)) = applied_on(&mut src, service).await {
        let _ = src
            .exec_drop(
                "DELETE FROM `_dropship`.`positions` WHERE service = ?",
                (service,),
            )
            .await;
    }
    let _ = src.disconnect().await;
}

/// The reverse stream's committed target position, if it was started.
pub async fn applied(cfg: &Config, service: &str) -> Result<Option<Position>> {
    let mut src = crate::connect::source(cfg).await?;
    let r = applied_on(&mut src, service).await;
    let _ = src.disconnect().await;
    r
}

/// [`applied`] on an open source connection.
async fn applied_on(src: &mut Conn, service: &str) -> Result<Option<Position>> {
    // `_dropship` exists on the source only once a cutover prepared it.
    let has_table: Option<u8> = src
        .query_first("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = '_dropship' AND TABLE_NAME = 'positions'")
        .await
        .map_err(Error::db("looking for _dropship.positions on the source"))?;
    match has_table {
        None => Ok(None),
        Some(_) => Ok(meta::load_position(src, service).await?.map(|p| p.0)),
    }
}

/// Waits until the reverse stream has applied everything up to `t1` (one
/// source connection, polled every 20 ms: this runs inside the freeze).
pub async fn wait_applied(
    cfg: &Config,
    service: &str,
    t1: &Position,
    timeout: Duration,
) -> Result<Position> {
    let mut src = crate::connect::source(cfg).await?;
    let r = match applied_on(&mut src, service).await {
        Ok(Some(_)) => meta::wait_position(&mut src, service, t1, timeout).await,
        Ok(None) => Ok(meta::Wait::NoPosition),
        Err(e) => Err(e),
    };
    let _ = src.disconnect().await;
    match r? {
        meta::Wait::Reached(p) => Ok(p),
        meta::Wait::Behind(p) => Err(Error::definite(
            format!("reverse replication of service {service} did not reach the target position {t1} within {timeout:?} (it is at {p})"),
            "check that `dropship replicate` is running (`dropship status`); its log names any reverse replication error",
        )),
        meta::Wait::NoPosition => Err(Error::definite(
            format!("service {service} has no reverse replication position on the source"),
            "it was removed while the rollback ran; run `dropship rollback` again (without reverse replication it copies the tables back in full)",
        )),
    }
}

/// Whether the reverse stream should run now; `Some(token)` if so.
async fn wanted(
    cfg: &Config,
    svc: &ServiceConfig,
    tgt: &mut Option<Conn>,
) -> Result<Option<String>> {
    if tgt.is_none() {
        *tgt = Some(crate::connect::target(svc).await?);
    }
    let Some(c) = tgt.as_mut() else {
        return Ok(None);
    };
    let r = async {
        let state = meta::load_state(c, &svc.name).await?.map(|s| s.0);
        if !state.is_some_and(ServiceState::reverse_runs) {
            return Ok(None);
        }
        journal::last_cutover_token(c, &svc.name).await
    }
    .await;
    if r.is_err() {
        *tgt = None;
    }
    match r? {
        Some(token) if applied(cfg, &svc.name).await?.is_some() => Ok(Some(token)),
        _ => Ok(None),
    }
}

/// Runs reverse replication for `svc` whenever it is cut over, until `stop`.
///
/// It starts only once the service's forward applier has parked (`forward`
/// shows `cut-over`): a forward applier still running would apply the
/// reverse stream's writes on the source back to the target.
pub async fn supervise(
    cfg: Arc<Config>,
    svc: ServiceConfig,
    forward: Arc<ServiceStats>,
    mut stop: watch::Receiver<bool>,
) {
    type Running = (
        watch::Sender<bool>,
        tokio::task::JoinHandle<Result<()>>,
        Arc<Control>,
    );
    let mut running: Option<Running> = None;
    let mut tgt: Option<Conn> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let want = match wanted(&cfg, &svc, &mut tgt).await {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(service = %svc.name, error = %e, "reverse replication: cannot read the service state; retrying");
                continue;
            }
        };
        // A reverse applier paused by a definite error (say, a write the
        // source refused) is restarted after a backoff: its cause may be gone.
        if let Some((tx, _, control)) = &running {
            let st = control.service(&svc.name);
            if st.state() == Some(ServiceState::Paused) {
                warn!(service = %svc.name, error = %st.last_error(), retry_in_s = backoff.as_secs(), "reverse replication paused on an error; restarting it");
                let _ = tx.send(true);
            }
        }
        if let Some((_, h, _)) = &running {
            if h.is_finished() {
                let (_, h, _) = running.take().expect("checked");
                match h.await {
                    Ok(Err(e)) => {
                        warn!(service = %svc.name, error = %e, hint = e.hint().unwrap_or_default(), retry_in_s = backoff.as_secs(), "reverse replication stopped with an error; restarting it")
                    }
                    Ok(Ok(())) => {}
                    Err(e) => {
                        warn!(service = %svc.name, error = %e, "reverse replication task failed; restarting it")
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        }
        match (&running, want) {
            (None, Some(_)) if !forward.state().is_some_and(ServiceState::reverse_runs) => {
                tracing::debug!(service = %svc.name, "reverse replication waits until the forward applier has parked");
            }
            (None, Some(token)) => match start_pipeline(&cfg, &svc, &token).await {
                Ok(r) => {
                    info!(service = %svc.name, "service is cut over: reverse replication (target -> source) runs");
                    backoff = Duration::from_secs(1);
                    running = Some(r);
                }
                Err(e) => {
                    warn!(service = %svc.name, error = %e, hint = e.hint().unwrap_or_default(), "reverse replication cannot start; retrying");
                }
            },
            (Some(_), None) => {
                let (tx, h, _) = running.take().expect("checked");
                let _ = tx.send(true);
                let _ = h.await;
                let _ = std::fs::remove_dir_all(state_dir(&cfg, &svc.name));
                info!(service = %svc.name, "service is no longer cut over: reverse replication stopped");
            }
            _ => {}
        }
    }
    if let Some((tx, h, _)) = running {
        let _ = tx.send(true);
        let _ = h.await;
    }
}

async fn start_pipeline(
    cfg: &Config,
    svc: &ServiceConfig,
    token: &str,
) -> Result<(
    watch::Sender<bool>,
    tokio::task::JoinHandle<Result<()>>,
    Arc<Control>,
)> {
    let mut src = crate::connect::source(cfg).await?;
    let tables = crate::source::service_tables(cfg, svc, &mut src).await?;
    let _ = src.disconnect().await;
    let rcfg = Arc::new(config(cfg, svc, &tables, token));
    let control = Arc::new(Control::new(None, cfg.control.health_max_lag));
    let c = control.clone();
    let (tx, rx) = watch::channel(false);
    let span = tracing::info_span!("reverse", service = %svc.name);
    let h = tokio::spawn(
        async move {
            let opts = pipeline::Options {
                mirrored: true,
                ..Default::default()
            };
            pipeline::run(rcfg, opts, c, rx).await
        }
        .instrument(span),
    );
    Ok((tx, h, control))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirrored_config_reads_the_target_claims_renamed_tables_and_renames_back() {
        let text = r#"
[source]
url = "mysql://repl:pw@10.0.0.5:3306"
server_id = 4242
[state]
dir = "/tmp/ds"
[services.users]
target = "mysql://dropship:tpw@10.0.0.9:3306"
tables = ["shop.users", "shop.sessions"]
rename_databases = { shop = "accounts" }
"#;
        let cfg = Config::parse("t.toml", text, &|_| None).expect("config");
        let svc = cfg.service("users").expect("service");
        let tables: Vec<Arc<TableSchema>> = ["users", "sessions"]
            .iter()
            .map(|t| {
                Arc::new(TableSchema {
                    database: "shop".into(),
                    table: t.to_string(),
                    columns: Vec::new(),
                    key: Vec::new(),
                    key_is_primary: true,
                })
            })
            .collect();
        let r = config(&cfg, svc, &tables, "tok'en");
        assert_eq!(r.source.host, "10.0.0.9", "reads the service's target");
        assert_ne!(r.server_id, cfg.server_id);
        assert_ne!(r.server_id, 0);
        assert!(!r.heartbeat);
        assert_eq!(r.state_dir, PathBuf::from("/tmp/ds/reverse/users"));
        let s = &r.services[0];
        assert_eq!(s.name, "users");
        assert_eq!(s.target.host, "10.0.0.5", "writes the source");
        assert!(s.claims("accounts", "users") && s.claims("accounts", "sessions"));
        assert!(!s.claims("shop", "users"), "claims the target's names");
        assert_eq!(s.target_database("accounts"), "shop", "renames back");
        assert!(!format!("{:?}", s.target).contains(":pw@"), "redacted");
    }
}
