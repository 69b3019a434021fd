//! Is the service ready to cut over? Reads the shared state a running
//! `replicate` keeps on the target, so it works wherever `replicate` runs
//! (another host, an ECS task): `_dropship.service_state`, and the
//! service's row in `_dropship.positions`, which the applier rewrites at
//! least every couple of seconds while it runs (every batch, and a progress
//! write each second while the source is idle). When the control endpoint
//! (`control.listen`) answers, its view of the service is used as well.
//!
//! - not replicating: state is not `replicating`, or the position row has not
//!   changed for [`STALE_AFTER`] (replicate stopped, paused or stuck), or the
//!   control endpoint reports another state;
//! - lag: now minus the source commit time of the last applied transaction
//!   (`positions.source_ts`, the same figure `status` shows).

use crate::config::{Config, ServiceConfig};
use crate::control::stats::now_epoch;
use crate::error::{Error, Result};
use crate::meta;
use crate::state::ServiceState;
use dropship_mysql::position::Position;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::Duration;

/// A position row older than this means nobody is applying the service.
pub const STALE_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Readiness {
    /// `_dropship.service_state.state` (`None` when missing).
    pub state: Option<ServiceState>,
    pub applied: Option<Position>,
    pub lag_seconds: Option<i64>,
    /// Seconds since the position row last changed (target clock).
    pub position_age: Option<f64>,
    /// The service's state as the control endpoint reports it, if it answered.
    pub control_state: Option<String>,
}

pub async fn assess(cfg: &Config, svc: &ServiceConfig, tgt: &mut Conn) -> Result<Readiness> {
    let state = meta::load_state(tgt, &svc.name).await?.map(|s| s.0);
    let pos = meta::load_position(tgt, &svc.name).await?;
    let age: Option<f64> = tgt
        .exec_first("SELECT TIMESTAMPDIFF(MICROSECOND, updated_at, NOW(6)) / 1e6 FROM `_dropship`.`positions` WHERE service = ?", (&svc.name,))
        .await
        .map_err(Error::db("reading the service position"))?
        .flatten();
    let control_state = crate::control::fetch_status(&cfg.control.listen)
        .await
        .and_then(|v| v.into_iter().find(|s| s.service == svc.name))
        .map(|s| s.state);
    Ok(Readiness {
        state,
        lag_seconds: pos.as_ref().map(|(_, ts, _)| (now_epoch() - ts).max(0)),
        applied: pos.map(|p| p.0),
        position_age: age,
        control_state,
    })
}

impl Readiness {
    /// Why a cutover must not start, if it must not.
    pub fn refusal(&self, service: &str, max_lag: Duration) -> Option<String> {
        match self.state {
            Some(ServiceState::CutOver) => {
                return Some(format!("service {service} is already cut over; `dropship rollback --service {service}` sends it back"));
            }
            Some(ServiceState::Replicating) => {}
            other => {
                let st = other.map_or("not started", ServiceState::as_str);
                return Some(format!("service {service} is not replicating (state on its target: {st}); start `dropship replicate` and wait until it is"));
            }
        }
        let Some(lag) = self.lag_seconds else {
            return Some(format!("service {service} has no applied position yet; wait until `dropship status` shows it replicating"));
        };
        if lag as f64 > max_lag.as_secs_f64() {
            return Some(format!("service {service} lags {lag}s behind the source, more than --max-lag {max_lag:?}; wait until it catches up"));
        }
        if self
            .position_age
            .is_none_or(|a| a > STALE_AFTER.as_secs_f64())
        {
            return Some(format!(
                "replicate is not applying service {service}: its position on the target last changed {:.0}s ago; start `dropship replicate` (or resume the service) first",
                self.position_age.unwrap_or(f64::INFINITY)
            ));
        }
        if let Some(cs) = &self.control_state {
            if cs != ServiceState::Replicating.as_str() {
                return Some(format!(
                    "the running replicate reports service {service} as {cs}, not replicating"
                ));
            }
        }
        None
    }
}
