//! The replication pipeline, as wiring only: one source, its services.
//! `dropship replicate` runs it forward (`replicate`); reverse replication
//! runs it mirrored, target -> source (`reverse`).
//!
//! 1. preflight the source (binlog on, ROW, FULL image) — `check`;
//! 2. per service: metadata schema, tables resolved; a service with no
//!    position gets its target tables created and its start position `P0`
//!    recorded (`copy`);
//! 3. the relay log is reused if it covers every service's position, else
//!    reset and the reader starts at the oldest position (`relay_state`);
//! 4. one reader task (`reader`) and one controller per service
//!    (`service`), which copies if needed and then applies (`applier`);
//! 5. SIGTERM/SIGINT set `stop`: appliers commit what is complete, the reader
//!    flushes, and `run` returns Ok.

use crate::config::Config;
use crate::control::Control;
use crate::error::{Error, Result};
use crate::stream::reader::{Reader, RecordSink};
use crate::stream::record::Record;
use crate::{check, copy, meta, run::service, stream::relay_state};
use dropship_mysql::position::Position;
use dropship_relay::{RelayLog, RelayOptions, SyncPolicy};
use mysql_async::Conn;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{error, info};

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only these services (all when empty).
    pub services: Vec<String>,
    /// Empty non-empty target tables of services that have no position.
    pub truncate_existing: bool,
    /// Services to copy again from scratch: their target tables are dropped
    /// and their position and progress forgotten before anything else.
    pub recopy: Vec<String>,
    /// This run is a reverse pipeline (`reverse`): what it reads is the
    /// service's target, and its messages say so.
    pub mirrored: bool,
}

struct RelaySink {
    log: RelayLog,
    /// The log's handle, taken once: `full` runs between every two
    /// transactions and must not allocate.
    handle: dropship_relay::RelayHandle,
    last_sync: std::time::Instant,
    /// `[state] max_size`.
    max_bytes: Option<u64>,
    /// The file system's free bytes, and when they were read (a `statvfs`
    /// at most every [`FREE_CHECK_EVERY`]).
    free: Option<(std::time::Instant, Option<u64>)>,
}

const FREE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Free space the state dir's file system must keep: room for the ledger
/// (acks free segments) and the next transactions. Reading pauses below it
/// and resumes at twice it.
const FREE_RESERVE: u64 = 16 << 20;

/// `12.3 MiB`.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

impl RelaySink {
    /// The consumer furthest behind, as `service X (N records to apply)`.
    fn furthest_behind(&self) -> String {
        let h = &self.handle;
        let last = h.last_id();
        h.consumers()
            .into_iter()
            .min_by_key(|(_, ack)| *ack)
            .map_or_else(String::new, |(name, ack)| {
                format!(
                    "; the service furthest behind is {name} ({} records to apply)",
                    last.saturating_sub(ack)
                )
            })
    }
}

impl RecordSink for RelaySink {
    fn append(&mut self, rec: &Record) -> Result<u64> {
        let id = self.log.append(&rec.encode())?;
        if matches!(rec, Record::Commit { .. }) {
            crate::crash::point("reader:commit-relayed");
        }
        Ok(id)
    }
    fn flush(&mut self) -> Result<()> {
        self.log.flush()?;
        if self.last_sync.elapsed() >= std::time::Duration::from_secs(1) {
            self.log.sync()?;
            self.last_sync = std::time::Instant::now();
        }
        Ok(())
    }

    fn make_room(&mut self) -> Result<()> {
        if self.log.release_drained()? {
            info!("the relay log's drained segment was deleted to make room");
        }
        Ok(())
    }

    fn full(&mut self, resuming: bool) -> Option<String> {
        let h = &self.handle;
        if let Some(max) = self.max_bytes {
            // A paused reader waits until a quarter of the cap is free again
            // (two segments of max/8 deleted), so it does not flap at the cap.
            let limit = if resuming { max - max / 4 } else { max };
            let size = h.size_bytes();
            if size >= limit {
                return Some(format!(
                    "the relay log in {} holds {}, at its [state] max_size of {}{}",
                    h.dir().display(),
                    mib(size),
                    mib(max),
                    self.furthest_behind()
                ));
            }
        }
        let reserve = if resuming {
            2 * FREE_RESERVE
        } else {
            FREE_RESERVE
        };
        let free = match self.free {
            Some((at, free)) if !resuming && at.elapsed() < FREE_CHECK_EVERY => free,
            _ => {
                let free = h.free_space();
                self.free = Some((std::time::Instant::now(), free));
                free
            }
        };
        match free {
            Some(free) if free < reserve => Some(format!(
                "the file system of the state dir {} has {} free; reading needs {}{}",
                h.dir().display(),
                mib(free),
                mib(reserve),
                self.furthest_behind()
            )),
            _ => {
                if resuming {
                    h.ensure_reserve();
                }
                None
            }
        }
    }
}

/// Runs until `stop` (or a fatal error).
pub async fn run(
    cfg: Arc<Config>,
    opts: Options,
    control: Arc<Control>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    for name in opts.services.iter().chain(&opts.recopy) {
        cfg.service_named(name).map_err(Error::Config)?;
    }
    if let Some(name) = opts
        .recopy
        .iter()
        .find(|n| !opts.services.is_empty() && !opts.services.contains(n))
    {
        return Err(Error::preflight(Error::definite(
            format!(
                "--recopy {name}: that service is not among the --service ones this run replicates"
            ),
            format!("add --service {name}, or drop the --service options to run every service"),
        )));
    }
    let selected: Vec<_> = cfg
        .services
        .iter()
        .filter(|s| opts.services.is_empty() || opts.services.contains(&s.name))
        .cloned()
        .collect();

    let (src, source_facts, starts, oldest) = setup(&cfg, &selected, &opts)
        .await
        .map_err(Error::preflight)?;

    // Relay log: reuse if it covers every service, else start over at `oldest`.
    std::fs::create_dir_all(&cfg.state_dir).map_err(Error::io(format!(
        "creating the state dir {}",
        cfg.state_dir.display()
    )))?;
    // Flushes reach the OS at once (readers see them, a kill -9 keeps them);
    // fsync happens once a second in the reader: a machine crash can lose
    // the last second of relay log, which the source still has.
    // Under a cap, segments of an eighth of it, so that acks free space in
    // steps well below the cap.
    let defaults = RelayOptions::default();
    let relay_opts = RelayOptions {
        sync: SyncPolicy::Manual,
        segment_max_bytes: cfg.state_max_bytes.map_or(defaults.segment_max_bytes, |m| {
            (m / 8).clamp(1 << 20, defaults.segment_max_bytes)
        }),
        ..defaults
    };
    let relay_dir = cfg.state_dir.join("relay");
    let mut relay = RelayLog::open(&relay_dir, relay_opts)?;
    let empty = relay.last_id() < relay.first_id();
    let reader_start = match relay_state::covered(&relay, &oldest, &relay_dir)? {
        Some(end) => {
            info!(relay_first = relay.first_id(), resume = %end, "relay log covers every service; reading on from its end");
            end
        }
        None => {
            relay.reset()?;
            if empty {
                info!(position = %oldest, state_dir = %cfg.state_dir.display(), "the state dir has no relay log (new, or lost): it is filled from the oldest service position, which the source must still have");
            } else {
                info!(position = %oldest, "the relay log does not cover every service: reading the source binlog");
            }
            oldest.clone()
        }
    };
    let handle = relay.handle();
    control.set_relay(handle.clone());
    for (svc, _, _) in &starts {
        handle.register(&svc.name)?;
    }

    let reader_stats = control.reader.clone();
    let mut reader = Reader::new(
        cfg.clone(),
        RelaySink {
            handle: relay.handle(),
            log: relay,
            last_sync: std::time::Instant::now(),
            max_bytes: cfg.state_max_bytes,
            free: None,
        },
        reader_stats,
        src,
        reader_start,
    )
    .await?;
    let reader_stop = stop.clone();
    let mut reader_task = tokio::spawn(async move {
        let r = reader.run(reader_stop).await;
        if let Err(e) = &r {
            error!(error = %e, hint = e.hint().unwrap_or_default(), "binlog reader stopped: replication cannot continue");
        }
        r
    });

    // Operations helpers: the heartbeat row and the throttle checks.
    if cfg.heartbeat {
        tokio::spawn(crate::stream::heartbeat::run(
            cfg.clone(),
            control.reader.clone(),
            stop.clone(),
        ));
    }
    tokio::spawn(crate::run::throttle::run(
        cfg.clone(),
        control.clone(),
        starts.iter().map(|(s, _, _)| s.name.clone()).collect(),
        stop.clone(),
    ));

    // A progress line per copying service when stderr is a terminal.
    tokio::spawn(crate::run::progress::run(
        starts
            .iter()
            .map(|(s, _, _)| (s.name.clone(), control.service(&s.name)))
            .collect(),
        stop.clone(),
    ));

    // One controller per service; they stop on `stop` or when the reader dies.
    let (svc_stop_tx, svc_stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (svc, tables, _) in starts {
        let ctx = service::Ctx {
            cfg: cfg.clone(),
            svc: Arc::new(svc.clone()),
            tables,
            relay: handle.clone(),
            stats: control.service(&svc.name),
            control: control.clone(),
            source: source_facts.clone(),
        };
        let stop = svc_stop_rx.clone();
        let stats = ctx.stats.clone();
        let name = svc.name.clone();
        tasks.push(tokio::spawn(async move {
            // A crashed controller must not go unnoticed: the service shows
            // `error` in status, metrics and /health, and the others go on.
            match tokio::spawn(service::run(ctx, stop)).await {
                Ok(r) => r,
                Err(e) => {
                    error!(service = %name, error = %e, "service controller crashed; the service stopped replicating. Restart replicate; please report this bug");
                    stats.set_state(crate::state::ServiceState::Error);
                    stats.set_error(&format!("internal error: {e}"));
                    Err(Error::definite(format!("service {name}: controller crashed: {e}"), "restart replicate"))
                }
            }
        }));
    }

    let mut stop_watch = stop.clone();
    let reader_done = tokio::select! {
        r = &mut reader_task => Some(r),
        _ = stop_watch.wait_for(|s| *s) => None,
    };
    // Appliers drain what the reader wrote, commit, and stop.
    let _ = svc_stop_tx.send(true);
    tracing::debug!("stopping: waiting for the services");
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            error!(error = %e, "service stopped with an error");
        }
    }
    tracing::debug!("stopping: services stopped; waiting for the reader");
    let reader_result = match reader_done {
        Some(r) => r,
        None => reader_task.await,
    };
    tracing::debug!("stopping: reader stopped");
    match reader_result {
        Ok(r) => r,
        Err(e) => Err(Error::definite(
            format!("binlog reader task failed: {e}"),
            "",
        )),
    }
}

/// Everything before streaming: source checks, table validation, target
/// metadata and start positions. Any failure here is a preflight failure.
async fn setup(
    cfg: &Arc<Config>,
    selected: &[crate::config::ServiceConfig],
    opts: &Options,
) -> Result<(
    Conn,
    crate::source::Facts,
    Vec<(
        crate::config::ServiceConfig,
        Vec<Arc<dropship_mysql::schema::TableSchema>>,
        Position,
    )>,
    Position,
)> {
    let mut src = crate::connect::source(cfg).await?;
    // Mirrored (reverse replication): what is read is the service's target.
    let side = if opts.mirrored { "target" } else { "source" };
    check::require_binlog_ready(&mut src, side).await?;
    let facts = crate::source::facts(&mut src).await?;
    // Before anything is written: a state dir of another source is refused.
    relay_state::claim(&cfg.state_dir, &facts.identity)?;

    // Validate every service's tables on the source before writing anything
    // to any target (a table without a key is a config error, exit 2).
    for svc in selected {
        let tables = crate::source::service_tables(cfg, svc, &mut src).await?;
        crate::source::refuse_unlogged_cascades(cfg, svc, &facts, &mut src, &tables).await?;
    }
    // Per service: schema, tables, and a start position.
    let mut starts = Vec::new();
    for svc in selected {
        meta::migrate(&svc.target).await?;
        let mut tgt = crate::connect::target(svc).await?;
        let recopy = opts.recopy.contains(&svc.name);
        if recopy {
            let tables: Vec<(String, String)> = crate::source::service_tables(cfg, svc, &mut src)
                .await?
                .iter()
                .map(|t| {
                    (
                        svc.target_database(&t.database).to_string(),
                        t.table.clone(),
                    )
                })
                .collect();
            meta::forget_service(&mut tgt, &svc.name, &tables).await?;
            info!(service = %svc.name, tables = tables.len(), "--recopy: the service's target tables were dropped and its position forgotten; it is copied again");
        }
        let (tables, pos) = match meta::load_position(&mut tgt, &svc.name).await? {
            Some((p, _, _)) => {
                let state = meta::load_state(&mut tgt, &svc.name).await?.map(|s| s.0);
                // A cut-over service applies nothing until a rollback sets
                // its position to a source position taken while this reader
                // runs: its old position (maybe purged weeks ago) must not
                // hold the reader back.
                let p = if state == Some(crate::state::ServiceState::CutOver) {
                    crate::source::position(&mut src).await?
                } else {
                    p
                };
                (crate::source::service_tables(cfg, svc, &mut src).await?, p)
            }
            None => {
                let (tables, p0) = copy::start(
                    cfg,
                    svc,
                    &mut src,
                    &mut tgt,
                    opts.truncate_existing || recopy,
                )
                .await?;
                service::record_copy_start(&mut tgt, &svc.name, &p0).await?;
                info!(service = %svc.name, position = %p0, tables = tables.len(), "new service: copy starts; changes from this position are kept");
                (tables, p0)
            }
        };
        let _ = tgt.disconnect().await;
        starts.push((svc.clone(), tables, pos));
    }
    let oldest: Position = starts
        .iter()
        .map(|(_, _, p)| p.clone())
        .min()
        .ok_or_else(|| {
            Error::Config(crate::config::ConfigError {
                file: cfg.file.clone(),
                key: "services".into(),
                message: "no service selected".into(),
                hint: "define at least one [services.NAME] table, or name one with --service"
                    .into(),
            })
        })?;

    Ok((src, facts, starts, oldest))
}
