//! `dropship replicate`: the forward pipeline (`pipeline`), and next to it
//! one reverse-replication supervisor per service (`reverse`), which streams
//! a cut-over service's target writes back to the source. Both stop on
//! `stop`; the supervisors stop once the pipeline has returned.

use crate::config::Config;
use crate::control::Control;
use crate::error::{Error, Result};
pub use crate::run::pipeline::Options;
use std::sync::Arc;
use tokio::sync::watch;

/// Runs until `stop` (or a fatal error of the pipeline).
pub async fn run(
    cfg: Arc<Config>,
    opts: Options,
    control: Arc<Control>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut selected = Vec::new();
    for svc in &cfg.services {
        if opts.services.is_empty() || opts.services.contains(&svc.name) {
            selected.push(svc.clone());
        }
    }
    for name in &opts.services {
        cfg.service_named(name).map_err(Error::Config)?;
    }
    let (rev_stop_tx, rev_stop_rx) = watch::channel(false);
    let reverse: Vec<_> = selected
        .into_iter()
        .map(|svc| {
            let stats = control.service(&svc.name);
            tokio::spawn(crate::reverse::supervise(
                cfg.clone(),
                svc,
                stats,
                rev_stop_rx.clone(),
            ))
        })
        .collect();
    let result = crate::run::pipeline::run(
        cfg,
        Options {
            mirrored: false,
            ..opts
        },
        control,
        stop,
    )
    .await;
    let _ = rev_stop_tx.send(true);
    for t in reverse {
        let _ = t.await;
    }
    result
}
