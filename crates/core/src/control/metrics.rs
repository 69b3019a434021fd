//! `GET /metrics`: the registry rendered in Prometheus' text format (the
//! metric table is in the module doc of `control`).

use super::*;

impl Control {
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
        metric(
            "dropship_relay_full",
            "gauge",
            "1 while reading is paused because the relay log has no room (full disk or [state] max_size).",
            one(r.relay_full.load(Relaxed)),
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
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
