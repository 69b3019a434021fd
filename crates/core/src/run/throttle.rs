//! Throttling: copy and apply back off when the operator says so.
//!
//! Two signals, checked every second by one task:
//! - `[replicate] throttle_query` (gh-ost style): run on the source; a
//!   non-zero (or non-empty, non-"0") first column of the first row throttles
//!   every service. Example: `SELECT COUNT(*) > 50 FROM
//!   information_schema.PROCESSLIST WHERE COMMAND <> 'Sleep'`, or a flag table
//!   an operator flips by hand.
//! - `[replicate] max_target_replica_lag`: each service's target is asked
//!   `SHOW SLAVE STATUS` (MariaDB/MySQL; `SHOW REPLICA STATUS` on MySQL 8.4);
//!   when the target is itself a replica and `Seconds_Behind_Master` exceeds
//!   the bound, that service alone is throttled. No rows (not a replica) or a
//!   NULL lag (its replication is stopped) does not throttle.
//!
//! The result is a flag per service in [`ServiceStats::throttled`]: the
//! applier checks it before reading the next record when no target
//! transaction is open (so a throttled service holds no locks on its
//! target), and copy checks it between chunks.
//!
//! Invariant: throttling only delays; it never drops or reorders anything,
//! because nothing is read from the relay log while throttled.
//!
//! Failure: a throttle query or status query that fails is logged at WARN
//! (once per distinct message, then at most every minute) and does not
//! throttle; a broken throttle query would otherwise stop replication
//! silently. Connections are re-opened on the next tick.

use crate::config::Config;
use crate::control::Control;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

/// Whether a value in the throttle query's first column means "throttle".
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::NULL => false,
        Value::Int(i) => *i != 0,
        Value::UInt(u) => *u != 0,
        Value::Float(f) => *f != 0.0,
        Value::Double(d) => *d != 0.0,
        Value::Bytes(b) => {
            let s = String::from_utf8_lossy(b);
            let t = s.trim();
            !(t.is_empty() || t.parse::<f64>().is_ok_and(|x| x == 0.0))
        }
        _ => true,
    }
}

/// `Seconds_Behind_Master` (or `Seconds_Behind_Source`) from a status row.
pub fn seconds_behind(row: &Row) -> Option<i64> {
    let cols = row.columns_ref();
    let i = cols.iter().position(|c| {
        let n = c.name_str();
        n.eq_ignore_ascii_case("Seconds_Behind_Master")
            || n.eq_ignore_ascii_case("Seconds_Behind_Source")
    })?;
    match row.as_ref(i)? {
        Value::Int(x) => Some(*x),
        Value::UInt(x) => i64::try_from(*x).ok(),
        Value::Bytes(b) => String::from_utf8_lossy(b).trim().parse().ok(),
        _ => None,
    }
}

/// Warns at most once a minute per distinct message.
struct Warner {
    last: Option<(String, Instant)>,
}

impl Warner {
    fn warn(&mut self, what: &str, msg: String) {
        let due = match &self.last {
            Some((m, t)) => *m != msg || t.elapsed() >= Duration::from_secs(60),
            None => true,
        };
        if due {
            warn!(check = what, error = %msg, "throttle check failed; not throttling because of it (nothing is lost)");
            self.last = Some((msg, Instant::now()));
        }
    }
}

async fn source_says_throttle(
    cfg: &Config,
    conn: &mut Option<Conn>,
    query: &str,
    w: &mut Warner,
) -> bool {
    if conn.is_none() {
        match crate::connect::source(cfg).await {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                w.warn(
                    "throttle_query",
                    crate::config::scrub(&e.to_string(), cfg.source.secret().unwrap_or("")),
                );
                return false;
            }
        }
    }
    let Some(c) = conn.as_mut() else { return false };
    match c.query_first::<Row, _>(query).await {
        Ok(Some(row)) => row.as_ref(0).is_some_and(truthy),
        Ok(None) => false,
        Err(e) => {
            w.warn("throttle_query", format!("{query}: {e}"));
            *conn = None;
            false
        }
    }
}

async fn target_replica_lag(
    svc: &crate::config::ServiceConfig,
    conn: &mut Option<Conn>,
    w: &mut Warner,
) -> Option<i64> {
    if conn.is_none() {
        match crate::connect::target_plain(svc).await {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                w.warn(
                    "max_target_replica_lag",
                    crate::config::scrub(&e.to_string(), svc.target.secret().unwrap_or("")),
                );
                return None;
            }
        }
    }
    let c = conn.as_mut()?;
    let rows = match c.query::<Row, _>("SHOW SLAVE STATUS").await {
        Ok(r) => r,
        // MySQL 8.4 removed SHOW SLAVE STATUS.
        Err(_) => {
            match c.query::<Row, _>("SHOW REPLICA STATUS").await {
                Ok(r) => r,
                Err(e) => {
                    w.warn("max_target_replica_lag", format!("SHOW SLAVE STATUS on {}: {e} (grant REPLICATION CLIENT or SLAVE MONITOR)", svc.target));
                    *conn = None;
                    return None;
                }
            }
        }
    };
    // Several replication channels: the worst one counts.
    rows.iter().filter_map(seconds_behind).max()
}

/// Runs until `stop`; a no-op when neither key is configured.
pub async fn run(
    cfg: Arc<Config>,
    control: Arc<Control>,
    services: Vec<String>,
    mut stop: watch::Receiver<bool>,
) {
    if cfg.tuning.throttle_query.is_none() && cfg.tuning.max_target_replica_lag.is_none() {
        return;
    }
    let mut src: Option<Conn> = None;
    let mut tgts: Vec<Option<Conn>> = services.iter().map(|_| None).collect();
    let mut w = Warner { last: None };
    loop {
        let global = match &cfg.tuning.throttle_query {
            Some(q) => source_says_throttle(&cfg, &mut src, q, &mut w).await,
            None => false,
        };
        for (i, name) in services.iter().enumerate() {
            let Some(svc) = cfg.service(name) else {
                continue;
            };
            let stats = control.service(name);
            let mut reason = String::new();
            if global {
                reason = "throttle_query returned non-zero".into();
            }
            if let Some(max) = cfg.tuning.max_target_replica_lag {
                let lag = target_replica_lag(svc, &mut tgts[i], &mut w).await;
                stats.target_replica_lag.store(lag.unwrap_or(-1), Relaxed);
                stats.target_replica_lag_known.store(lag.is_some(), Relaxed);
                if let Some(l) = lag.filter(|&l| l as u64 > max.as_secs()) {
                    if reason.is_empty() {
                        reason = format!(
                            "target replica lag {l}s > max_target_replica_lag {}s",
                            max.as_secs()
                        );
                    }
                }
            }
            let now = !reason.is_empty();
            let before = stats.throttled.swap(now, Relaxed);
            if now != before {
                if now {
                    info!(service = %name, reason = %reason, "throttled: copy and apply wait");
                } else {
                    info!(service = %name, "no longer throttled");
                }
            }
            if let Ok(mut g) = stats.throttle_reason.lock() {
                *g = reason;
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    for name in &services {
        control.service(name).throttled.store(false, Relaxed);
    }
    for c in tgts.into_iter().flatten().chain(src) {
        let _ = c.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_column_throttles_when_non_zero() {
        assert!(!truthy(&Value::NULL));
        assert!(!truthy(&Value::Int(0)));
        assert!(truthy(&Value::Int(3)));
        assert!(!truthy(&Value::Bytes(b"0".to_vec())));
        assert!(!truthy(&Value::Bytes(b"0.000".to_vec())));
        assert!(truthy(&Value::Bytes(b"1".to_vec())));
        assert!(truthy(&Value::Bytes(b"yes".to_vec())));
        assert!(!truthy(&Value::Bytes(Vec::new())));
    }
}
