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

pub mod stats;
pub mod status;

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

    pub fn metrics(&self) -> String {
        let mut o = String::new();
        let r = &self.reader;
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
            o.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, v) in lines {
                o.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        let one = |v: u64| vec![(String::new(), v.to_string())];
        metric(
            "dropship_binlog_events_total",
            "counter",
            "Binlog events read from the source.",
            one(r.events.load(Relaxed)),
        );
        metric(
            "dropship_binlog_read_bytes_total",
            "counter",
            "Binlog bytes read from the source.",
            one(r.bytes.load(Relaxed)),
        );
        metric(
            "dropship_binlog_reconnects_total",
            "counter",
            "Reconnects of the binlog connection.",
            one(r.reconnects.load(Relaxed)),
        );
        let rk: Vec<(String, String)> = r
            .errors_by_kind()
            .into_iter()
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), v.to_string()))
            .collect();
        metric(
            "dropship_reader_errors_total",
            "counter",
            "Errors of the binlog reader, by kind.",
            rk,
        );
        let rts = r.last_source_ts.load(Relaxed);
        metric(
            "dropship_reader_lag_seconds",
            "gauge",
            "Now minus the source commit time of the newest transaction read.",
            vec![(
                String::new(),
                if rts > 0 {
                    (now_epoch() - rts).max(0).to_string()
                } else {
                    "NaN".into()
                },
            )],
        );
        metric(
            "dropship_heartbeats_written_total",
            "counter",
            "Heartbeat rows written to the source.",
            one(r.heartbeats_written.load(Relaxed)),
        );
        metric(
            "dropship_heartbeats_read_total",
            "counter",
            "Heartbeat transactions read from the binlog.",
            one(r.heartbeats_read.load(Relaxed)),
        );
        if let Some(h) = self.relay.lock().ok().and_then(|g| g.clone()) {
            metric(
                "dropship_relay_log_bytes",
                "gauge",
                "Size of the relay log on disk.",
                one(h.size_bytes()),
            );
            let last = h.last_id();
            let backlog: Vec<(String, String)> = h
                .consumers()
                .into_iter()
                .map(|(c, ack)| {
                    (
                        format!("{{service=\"{}\"}}", esc(&c)),
                        last.saturating_sub(ack).to_string(),
                    )
                })
                .collect();
            metric(
                "dropship_relay_backlog_records",
                "gauge",
                "Relay records not yet applied, per service.",
                backlog,
            );
        }
        let g = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let lbl = |n: &str| format!("{{service=\"{}\"}}", esc(n));
        let per = |f: &dyn Fn(&ServiceStats) -> String| -> Vec<(String, String)> {
            g.iter().map(|(n, s)| (lbl(n), f(s))).collect()
        };
        metric(
            "dropship_lag_seconds",
            "gauge",
            "Now minus the source commit time of the last applied transaction.",
            per(&|s| {
                self.lag(s)
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "NaN".into())
            }),
        );
        let mut rows = Vec::new();
        for (n, s) in g.iter() {
            for (op, v) in [
                ("insert", &s.rows_inserted),
                ("update", &s.rows_updated),
                ("delete", &s.rows_deleted),
            ] {
                rows.push((
                    format!("{{service=\"{}\",op=\"{op}\"}}", esc(n)),
                    v.load(Relaxed).to_string(),
                ));
            }
        }
        metric(
            "dropship_rows_applied_total",
            "counter",
            "Row changes applied to the target, by operation.",
            rows,
        );
        metric(
            "dropship_transactions_applied_total",
            "counter",
            "Source transactions applied to the target.",
            per(&|s| s.transactions.load(Relaxed).to_string()),
        );
        let mut hist = Vec::new();
        for (n, s) in g.iter() {
            let mut cum = 0u64;
            for (i, b) in crate::control::stats::BATCH_BUCKETS.iter().enumerate() {
                cum += s.batch_buckets[i].load(Relaxed);
                hist.push((
                    format!("_bucket{{service=\"{}\",le=\"{b}\"}}", esc(n)),
                    cum.to_string(),
                ));
            }
            cum += s.batch_buckets[crate::control::stats::BATCH_BUCKETS.len()].load(Relaxed);
            hist.push((
                format!("_bucket{{service=\"{}\",le=\"+Inf\"}}", esc(n)),
                cum.to_string(),
            ));
            hist.push((
                format!("_sum{}", lbl(n)),
                s.batch_rows_total.load(Relaxed).to_string(),
            ));
            hist.push((
                format!("_count{}", lbl(n)),
                s.batches.load(Relaxed).to_string(),
            ));
        }
        metric(
            "dropship_batch_rows",
            "histogram",
            "Rows per committed target transaction (batch).",
            hist,
        );
        metric(
            "dropship_copy_rows_total",
            "counter",
            "Rows copied by the initial copy.",
            per(&|s| s.rows_copied.load(Relaxed).to_string()),
        );
        metric(
            "dropship_verify_rows_total",
            "counter",
            "Rows compared by verify.",
            per(&|s| s.verify_rows.load(Relaxed).to_string()),
        );
        metric(
            "dropship_verify_differences_total",
            "counter",
            "Differing rows found by verify.",
            per(&|s| s.verify_differences.load(Relaxed).to_string()),
        );
        let mut errs = Vec::new();
        for (n, s) in g.iter() {
            for (k, v) in s.errors_by_kind() {
                errs.push((
                    format!("{{service=\"{}\",kind=\"{k}\"}}", esc(n)),
                    v.to_string(),
                ));
            }
        }
        metric(
            "dropship_errors_total",
            "counter",
            "Errors seen by the service, by kind (transient ones are retried).",
            errs,
        );
        let mut states = Vec::new();
        for (n, s) in g.iter() {
            let cur = s.state();
            for st in ServiceState::ALL {
                states.push((
                    format!("{{service=\"{}\",state=\"{st}\"}}", esc(n)),
                    u8::from(cur == Some(st)).to_string(),
                ));
            }
        }
        metric(
            "dropship_service_state",
            "gauge",
            "1 for the state the service is in.",
            states,
        );
        metric(
            "dropship_service_up",
            "gauge",
            "1 when the service is replicating.",
            per(&|s| {
                if s.state() == Some(ServiceState::Replicating) {
                    "1".into()
                } else {
                    "0".into()
                }
            }),
        );
        metric(
            "dropship_throttled",
            "gauge",
            "1 while copy and apply of the service are throttled.",
            per(&|s| u8::from(s.is_throttled()).to_string()),
        );
        metric(
            "dropship_throttled_seconds_total",
            "counter",
            "Time the service waited because it was throttled.",
            per(&|s| format!("{:.1}", s.throttled_ms.load(Relaxed) as f64 / 1000.0)),
        );
        let rl: Vec<(String, String)> = g
            .iter()
            .filter(|(_, s)| s.target_replica_lag_known.load(Relaxed))
            .map(|(n, s)| (lbl(n), s.target_replica_lag.load(Relaxed).to_string()))
            .collect();
        metric("dropship_target_replica_lag_seconds", "gauge", "Seconds_Behind_Master of the target (when max_target_replica_lag is set and the target is a replica).", rl);
        o
    }

    fn healthy(&self) -> (bool, String) {
        let st = self.status();
        let max = self.health_max_lag.as_secs() as i64;
        let bad: Vec<String> = st
            .iter()
            .filter(|s| {
                s.state != "replicating" && s.state != "cut-over"
                    || s.lag_seconds.is_some_and(|l| l > max)
            })
            .map(|s| format!("{}: {} (lag {:?})", s.service, s.state, s.lag_seconds))
            .collect();
        (
            bad.is_empty(),
            if bad.is_empty() {
                "ok\n".into()
            } else {
                bad.join("\n") + "\n"
            },
        )
    }

    fn handle(&self, method: &str, path: &str, auth: Option<&str>) -> (u16, &'static str, String) {
        match (method, path) {
            ("GET", "/metrics") => (200, "text/plain; version=0.0.4", self.metrics()),
            ("GET", "/status") => (
                200,
                "application/json",
                serde_json::to_string_pretty(&self.status()).unwrap_or_default(),
            ),
            ("GET", "/health") => {
                let (ok, body) = self.healthy();
                (if ok { 200 } else { 503 }, "text/plain", body)
            }
            ("POST", p) if p.starts_with("/services/") => {
                let rest = &p["/services/".len()..];
                let Some((name, action)) = rest.split_once('/') else {
                    return (404, "text/plain", "not found\n".into());
                };
                let Some(token) = &self.token else {
                    return (
                        403,
                        "text/plain",
                        "state changes need a token: set control.token in the config\n".into(),
                    );
                };
                let given = auth.and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
                if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
                    return (401, "text/plain", "missing or wrong bearer token\n".into());
                }
                if !self
                    .services
                    .lock()
                    .map(|g| g.contains_key(name))
                    .unwrap_or(false)
                {
                    return (404, "text/plain", format!("no service {name}\n"));
                }
                match action {
                    "pause" => {
                        self.set_paused(name, true);
                        info!(service = name, "paused through the control endpoint");
                        (200, "text/plain", format!("{name} paused\n"))
                    }
                    "resume" => {
                        self.set_paused(name, false);
                        info!(service = name, "resumed through the control endpoint");
                        (200, "text/plain", format!("{name} resumed\n"))
                    }
                    _ => (404, "text/plain", "not found\n".into()),
                }
            }
            _ => (404, "text/plain", "not found\n".into()),
        }
    }

    /// Serves until the process ends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut n = 0;
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        let m = sock.read(&mut buf[n..]).await?;
                        if m == 0 {
                            break;
                        }
                        n += m;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || n == buf.len() {
                            break;
                        }
                    }
                    Ok::<(), std::io::Error>(())
                })
                .await;
                if read.is_err() {
                    return;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let mut lines = text.split("\r\n");
                let first = lines.next().unwrap_or("");
                let mut parts = first.split(' ');
                let method = parts.next().unwrap_or("");
                let path = parts.next().unwrap_or("");
                let auth = lines.find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("authorization")
                        .then(|| v.trim().to_string())
                });
                let (code, ctype, body) = me.handle(method, path, auth.as_deref());
                let reason = match code {
                    200 => "OK",
                    401 => "Unauthorized",
                    403 => "Forbidden",
                    404 => "Not Found",
                    _ => "Service Unavailable",
                };
                let resp = format!("HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    }
}

/// Binds the control endpoint and serves it in the background.
pub async fn start(control: Arc<Control>, listen: &str) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    info!(listen = %addr, "control endpoint: /metrics /status /health");
    tokio::spawn(control.serve(listener));
    Ok(addr)
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /status` of the `replicate` listening on `listen`: `None` when none
/// answers (or the answer is not a status list).
pub async fn fetch_status(listen: &str) -> Option<Vec<ServiceStatus>> {
    match http_get(listen, "/status").await {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// GETs `path` from the control endpoint.
pub async fn http_get(listen: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(listen),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out"))??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Ok((code, body))
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
