//! `dropship status`: asks the running `replicate` through its control
//! endpoint; when that is down, says so and reads what each target recorded
//! (`_dropship.positions` and `service_state`), so the answer never depends on
//! the process being up.

use crate::config::Config;
use crate::control::ServiceStatus;
use crate::meta;
use crate::stats::now_epoch;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GETs `path` from the control endpoint.
pub async fn http_get(listen: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(listen)).await.map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out"))??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
    Ok((code, body))
}

pub struct Report {
    pub running: bool,
    pub services: Vec<ServiceStatus>,
    pub unreachable: Vec<String>,
}

pub async fn gather(cfg: &Config) -> Report {
    if let Ok((200, body)) = http_get(&cfg.control.listen, "/status").await {
        if let Ok(v) = serde_json::from_str::<Vec<serde_json::Value>>(&body) {
            let services = v
                .into_iter()
                .map(|s| ServiceStatus {
                    service: s["service"].as_str().unwrap_or_default().into(),
                    state: s["state"].as_str().unwrap_or_default().into(),
                    lag_seconds: s["lag_seconds"].as_i64(),
                    applied_position: s["applied_position"].as_str().unwrap_or_default().into(),
                    source_position: s["source_position"].as_str().unwrap_or_default().into(),
                    rows_copied: s["rows_copied"].as_u64().unwrap_or(0),
                    rows_applied: s["rows_applied"].as_u64().unwrap_or(0),
                    transactions_applied: s["transactions_applied"].as_u64().unwrap_or(0),
                    last_error: s["last_error"].as_str().unwrap_or_default().into(),
                })
                .collect();
            return Report { running: true, services, unreachable: vec![] };
        }
    }
    let mut services = Vec::new();
    let mut unreachable = Vec::new();
    for svc in &cfg.services {
        let mut st = ServiceStatus {
            service: svc.name.clone(),
            state: "stopped".into(),
            lag_seconds: None,
            applied_position: String::new(),
            source_position: String::new(),
            rows_copied: 0,
            rows_applied: 0,
            transactions_applied: 0,
            last_error: String::new(),
        };
        match Conn::new(svc.target.opts()).await {
            Ok(mut c) => {
                if let Ok(Some((p, ts, _))) = meta::load_position(&mut c, &svc.name).await {
                    st.applied_position = p.to_string();
                    st.lag_seconds = Some(now_epoch() - ts);
                }
                if let Ok(Some((state, msg))) = meta::load_state(&mut c, &svc.name).await {
                    st.state = format!("{state} (replicate not running)");
                    st.last_error = msg;
                } else {
                    st.state = "not started".into();
                }
                let _ = c.query_drop("DO 1").await;
                let _ = c.disconnect().await;
            }
            Err(e) => {
                st.state = "unknown".into();
                st.last_error = crate::config::scrub(&e.to_string(), svc.target.secret().unwrap_or(""));
                unreachable.push(svc.name.clone());
            }
        }
        services.push(st);
    }
    Report { running: false, services, unreachable }
}
