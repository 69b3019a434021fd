//! The control endpoint's HTTP side: the server (`/metrics`, `/status`,
//! `/health`, `POST /services/NAME/pause|resume` with the bearer token) and
//! the small client `status` and the cutover use to read `/status`.

use super::*;

impl Control {
    pub(crate) fn healthy(&self) -> (bool, String) {
        let st = self.status();
        let max = self.health_max_lag.as_secs() as i64;
        let bad: Vec<String> = st
            .iter()
            .filter(|s| {
                let serving = matches!(
                    ServiceState::parse(&s.state),
                    Some(ServiceState::Replicating | ServiceState::CutOver)
                );
                !serving || s.lag_seconds.is_some_and(|l| l > max)
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

    pub(crate) fn handle(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
    ) -> (u16, &'static str, String) {
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
