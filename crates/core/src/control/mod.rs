//! The control endpoint and the live state it serves.
//!
//! `GET /metrics` (Prometheus text), `GET /status` (JSON), `GET /health`
//! (200 when every service replicates with lag under `health_max_lag`, else
//! 503), `POST /services/{name}/pause` and `/resume` (need
//! `Authorization: Bearer <token>`; refused with 401 otherwise, and refused
//! with 403 when no token is configured). Binds to loopback by default; a
//! non-loopback address without a token is refused at config load.
//!
//! A deliberately small HTTP/1.1 server: one request per connection, bodies
//! ignored, 8 KiB header limit, 5 s read timeout.
//!
//! # Metrics
//! Every name is `dropship_<thing>_<unit>`; counters end in `_total`; labels
//! are at most `service` plus a small fixed set (`op`, `kind`, `state`, `le`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `dropship_lag_seconds` | gauge | service |
//! | `dropship_reader_lag_seconds` | gauge | |
//! | `dropship_binlog_events_total` | counter | |
//! | `dropship_binlog_read_bytes_total` | counter | |
//! | `dropship_binlog_reconnects_total` | counter | |
//! | `dropship_reader_errors_total` | counter | kind |
//! | `dropship_heartbeats_written_total`, `dropship_heartbeats_read_total` | counter | |
//! | `dropship_relay_log_bytes` | gauge | |
//! | `dropship_relay_full` | gauge | |
//! | `dropship_relay_backlog_records` | gauge | service |
//! | `dropship_rows_applied_total` | counter | service, op |
//! | `dropship_transactions_applied_total` | counter | service |
//! | `dropship_batch_rows` | histogram | service |
//! | `dropship_copy_rows_total` | counter | service |
//! | `dropship_verify_rows_total`, `dropship_verify_differences_total` | counter | service |
//! | `dropship_errors_total` | counter | service, kind |
//! | `dropship_service_state` | gauge (1 for the current state) | service, state |
//! | `dropship_service_up` | gauge | service |
//! | `dropship_throttled` | gauge | service |
//! | `dropship_throttled_seconds_total` | counter | service |
//! | `dropship_target_replica_lag_seconds` | gauge (when known) | service |

mod http;
mod metrics;
pub mod stats;
pub mod status;

pub use http::{fetch_status, http_get, start};

use crate::control::stats::{now_epoch, ReaderStats, ServiceStats};
use crate::state::ServiceState;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

#[derive(Default)]
pub struct Control {
    pub reader: Arc<ReaderStats>,
    services: Mutex<BTreeMap<String, Arc<ServiceStats>>>,
    paused: Mutex<BTreeMap<String, watch::Sender<bool>>>,
    pub token: Option<String>,
    pub health_max_lag: Duration,
    relay: Mutex<Option<dropship_relay::RelayHandle>>,
}

/// A service's state before its controller set one.
pub const STARTING: &str = "starting";

/// One service in `GET /status` (the wire form: `state` is a
/// `ServiceState` name, or `starting`).
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ServiceStatus {
    pub service: String,
    pub state: String,
    pub lag_seconds: Option<i64>,
    pub applied_position: String,
    pub source_position: String,
    pub rows_copied: u64,
    pub rows_applied: u64,
    pub transactions_applied: u64,
    /// Why the service is throttled; empty when it is not.
    pub throttled: String,
    pub last_error: String,
}

impl Control {
    pub fn new(token: Option<String>, health_max_lag: Duration) -> Control {
        Control {
            token,
            health_max_lag,
            ..Default::default()
        }
    }

    /// Lets `/metrics` report relay log size and per-service backlog.
    pub fn set_relay(&self, h: dropship_relay::RelayHandle) {
        if let Ok(mut g) = self.relay.lock() {
            *g = Some(h);
        }
    }

    /// Bytes of the relay log's segment files, once the pipeline has one.
    pub fn relay_size_bytes(&self) -> Option<u64> {
        self.relay
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|h| h.size_bytes()))
    }

    pub fn service(&self, name: &str) -> Arc<ServiceStats> {
        let mut g = self.services.lock().unwrap_or_else(|p| p.into_inner());
        g.entry(name.to_string()).or_default().clone()
    }

    fn pause_sender(&self, name: &str) -> watch::Sender<bool> {
        let mut g = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        g.entry(name.to_string())
            .or_insert_with(|| watch::channel(false).0)
            .clone()
    }

    pub fn pause_watch(&self, name: &str) -> watch::Receiver<bool> {
        self.pause_sender(name).subscribe()
    }

    pub fn is_paused(&self, name: &str) -> bool {
        *self.pause_sender(name).borrow()
    }

    pub fn set_paused(&self, name: &str, paused: bool) {
        self.pause_sender(name).send_replace(paused);
    }

    /// Lag of a service: now minus the source commit time of the last applied
    /// transaction. While the source is idle the reader writes progress
    /// records stamped with the current time, so lag stays exact.
    pub fn lag(&self, s: &ServiceStats) -> Option<i64> {
        let ts = s.last_source_ts.load(Relaxed);
        (ts > 0).then(|| (now_epoch() - ts).max(0))
    }

    pub fn status(&self) -> Vec<ServiceStatus> {
        let g = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let src = self
            .reader
            .position
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default();
        g.iter()
            .map(|(name, s)| ServiceStatus {
                service: name.clone(),
                state: s.state().map_or(STARTING, ServiceState::as_str).to_string(),
                lag_seconds: self.lag(s),
                applied_position: s.position(),
                source_position: src.clone(),
                rows_copied: s.rows_copied.load(Relaxed),
                rows_applied: s.rows_applied(),
                transactions_applied: s.transactions.load(Relaxed),
                throttled: if s.is_throttled() {
                    s.throttle_reason()
                } else {
                    String::new()
                },
                last_error: s.last_error(),
            })
            .collect()
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_changes_need_the_right_bearer_token() {
        let c = Control::new(Some("s3cret".into()), Duration::from_secs(30));
        c.service("users");
        assert_eq!(c.handle("POST", "/services/users/pause", None).0, 401);
        assert_eq!(
            c.handle("POST", "/services/users/pause", Some("Bearer nope"))
                .0,
            401
        );
        assert!(!c.is_paused("users"));
        assert_eq!(
            c.handle("POST", "/services/users/pause", Some("Bearer s3cret"))
                .0,
            200
        );
        assert!(c.is_paused("users"));
        assert_eq!(
            c.handle("POST", "/services/nobody/pause", Some("Bearer s3cret"))
                .0,
            404
        );
        let none = Control::new(None, Duration::from_secs(30));
        none.service("users");
        assert_eq!(
            none.handle("POST", "/services/users/pause", Some("Bearer x"))
                .0,
            403
        );
    }

    #[test]
    fn metrics_follow_prometheus_naming() {
        let c = Control::new(None, Duration::from_secs(30));
        let s = c.service("users");
        s.observe_batch(3);
        s.set_state(ServiceState::Replicating);
        let m = c.metrics();
        assert!(
            m.contains("dropship_batch_rows_bucket{service=\"users\",le=\"10\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("dropship_batch_rows_count{service=\"users\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("dropship_service_state{service=\"users\",state=\"replicating\"} 1"),
            "{m}"
        );
        // A rollback in progress reads as such, not as all zeros.
        s.set_state(ServiceState::RollingBack);
        let m = c.metrics();
        assert!(
            m.contains("dropship_service_state{service=\"users\",state=\"rolling-back\"} 1")
                && m.contains("dropship_service_state{service=\"users\",state=\"replicating\"} 0"),
            "{m}"
        );
        for line in m.lines().filter(|l| l.starts_with("# TYPE")) {
            let mut p = line.split(' ').skip(2);
            let (name, kind) = (p.next().unwrap(), p.next().unwrap());
            assert!(name.starts_with("dropship_"), "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
        }
    }
}
