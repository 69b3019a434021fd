//! `dropship status`: asks the running `replicate` through its control
//! endpoint; when that is down, says so and reads what each target recorded
//! (`_dropship.positions` and `service_state`) and the source's current
//! position, so the answer never depends on the process being up.
//!
//! States are the contract's: copying, replicating, paused, frozen, cut-over,
//! error; offline, a service with nothing recorded is `not started`, and one
//! whose target cannot be reached is `unknown`. Offline lag is now minus the
//! source time of the last applied transaction, so it over-states lag when
//! the source was idle (without the process, nothing proves it is current).
//!
//! Failure: whatever cannot be reached (a target, the source) is named in
//! `unreachable`; the command then exits 2. Secrets are scrubbed from every
//! error text shown.

use crate::config::Config;
use crate::control::stats::now_epoch;
use crate::control::ServiceStatus;
use crate::meta;
use mysql_async::prelude::Queryable;

pub struct Report {
    /// Whether `replicate` answered on the control endpoint.
    pub running: bool,
    pub services: Vec<ServiceStatus>,
    /// What could not be reached (`source`, or service names whose target failed).
    pub unreachable: Vec<String>,
    /// Reverse replication of the cut-over services (see `reverse`).
    pub reverse: Vec<ReverseStatus>,
}

/// Where reverse replication (target -> source) of a cut-over service is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReverseStatus {
    pub service: String,
    /// Target binlog position up to which the source has the target's writes
    /// (empty: no reverse replication for this cutover).
    pub applied_position: String,
    /// The target's current binlog position.
    pub target_position: String,
    pub caught_up: bool,
}

pub async fn gather(cfg: &Config) -> Report {
    let mut r = gather_services(cfg).await;
    for s in &r.services {
        if !crate::state::ServiceState::parse(&s.state)
            .is_some_and(crate::state::ServiceState::reverse_runs)
        {
            continue;
        }
        let Some(svc) = cfg.service(&s.service) else {
            continue;
        };
        let applied = crate::reverse::applied(cfg, &svc.name).await.ok().flatten();
        let target = match crate::connect::target_plain(svc).await {
            Ok(mut c) => {
                let p = crate::source::position(&mut c).await.ok();
                let _ = c.disconnect().await;
                p
            }
            Err(_) => None,
        };
        r.reverse.push(ReverseStatus {
            service: svc.name.clone(),
            caught_up: matches!((&applied, &target), (Some(a), Some(t)) if a >= t),
            applied_position: applied.map(|p| p.to_string()).unwrap_or_default(),
            target_position: target.map(|p| p.to_string()).unwrap_or_default(),
        });
    }
    r
}

async fn gather_services(cfg: &Config) -> Report {
    if let Some(services) = crate::control::fetch_status(&cfg.control.listen).await {
        return Report {
            running: true,
            services,
            unreachable: vec![],
            reverse: vec![],
        };
    }
    let mut services = Vec::new();
    let mut unreachable = Vec::new();
    let source_position = match crate::connect::source(cfg).await {
        Ok(mut c) => {
            let p = crate::source::position(&mut c)
                .await
                .map(|p| p.to_string())
                .unwrap_or_default();
            let _ = c.disconnect().await;
            p
        }
        Err(_) => {
            unreachable.push("source".to_string());
            String::new()
        }
    };
    for svc in &cfg.services {
        let mut st = ServiceStatus {
            service: svc.name.clone(),
            state: "stopped".into(),
            lag_seconds: None,
            applied_position: String::new(),
            source_position: source_position.clone(),
            rows_copied: 0,
            rows_applied: 0,
            transactions_applied: 0,
            throttled: String::new(),
            last_error: String::new(),
        };
        match crate::connect::target_plain(svc).await {
            Ok(mut c) => {
                if let Ok(Some((p, ts, _))) = meta::load_position(&mut c, &svc.name).await {
                    st.applied_position = p.to_string();
                    st.lag_seconds = Some(now_epoch() - ts);
                }
                let copied: Option<Option<u64>> = c
                    .exec_first("SELECT CAST(IFNULL(SUM(rows_copied), 0) AS UNSIGNED) FROM `_dropship`.`copy_chunks` WHERE service = ?", (&svc.name,))
                    .await
                    .ok()
                    .flatten();
                st.rows_copied = copied.flatten().unwrap_or(0);
                match meta::load_state(&mut c, &svc.name).await {
                    Ok(Some((state, msg))) => {
                        st.state = state.as_str().into();
                        st.last_error =
                            crate::config::scrub(&msg, svc.target.secret().unwrap_or(""));
                    }
                    Ok(None) => st.state = "not started".into(),
                    Err(e) => {
                        st.state = "unknown".into();
                        st.last_error =
                            crate::config::scrub(&e.to_string(), svc.target.secret().unwrap_or(""));
                    }
                }
                let _ = c.query_drop("DO 1").await;
                let _ = c.disconnect().await;
            }
            Err(e) => {
                st.state = "unknown".into();
                st.last_error =
                    crate::config::scrub(&e.to_string(), svc.target.secret().unwrap_or(""));
                unreachable.push(svc.name.clone());
            }
        }
        services.push(st);
    }
    Report {
        running: false,
        services,
        unreachable,
        reverse: vec![],
    }
}
