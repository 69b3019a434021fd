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
                let complete = buf[..n].windows(4).any(|w| w == b"\r\n\r\n");
                let (code, ctype, body) = match parse_request(&buf[..n], complete) {
                    Ok(r) => me.handle(&r.method, &r.path, r.auth.as_deref()),
                    Err((code, why)) => (code, "text/plain", format!("{why}\n")),
                };
                let reason = match code {
                    200 => "OK",
                    400 => "Bad Request",
                    401 => "Unauthorized",
                    431 => "Request Header Fields Too Large",
                    403 => "Forbidden",
                    404 => "Not Found",
                    _ => "Service Unavailable",
                };
                let resp = format!("HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
                // Read what the client still sends (briefly, boundedly) before
                // closing: closing with unread input sends a reset, which can
                // destroy the answer before the client reads it.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let mut left = 1usize << 20;
                    while left > 0 {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(m) => left = left.saturating_sub(m),
                        }
                    }
                })
                .await;
            });
        }
    }
}

/// The parts of a request the endpoint uses.
#[derive(Debug, PartialEq)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub auth: Option<String>,
}

/// Reads a request head (`complete`: its blank line arrived). A head that
/// filled the buffer without ending is refused with 431, a request line that
/// is not `METHOD /path HTTP/1.x` with 400.
pub(crate) fn parse_request(head: &[u8], complete: bool) -> Result<Request, (u16, &'static str)> {
    if !complete {
        return Err((431, "request head too large or incomplete"));
    }
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let parts: Vec<&str> = first.split(' ').collect();
    let [method, path, version] = parts.as_slice() else {
        return Err((400, "malformed request line"));
    };
    let method_ok = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    if !method_ok || !path.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err((400, "malformed request line"));
    }
    let auth = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("authorization")
            .then(|| v.trim().to_string())
    });
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        auth,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_request_line_parses_and_malformed_or_oversized_ones_are_refused() {
        let r = parse_request(
            b"POST /services/a/pause HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n",
            true,
        )
        .unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.auth.as_deref()),
            ("POST", "/services/a/pause", Some("Bearer t"))
        );
        assert_eq!(
            parse_request(b"GET /x HTTP/1.1\r\n", false).unwrap_err().0,
            431
        );
        for bad in [
            &b"\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET x HTTP/1.1\r\n\r\n",
            b"GET / FTP\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                parse_request(bad, true).unwrap_err().0,
                400,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn the_endpoint_answers_garbage_with_400_an_oversized_head_with_431_and_keeps_serving() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let control = Arc::new(Control::new(Some("tok".into()), Duration::from_secs(30)));
        control.service("s");
        let addr = start(control, "127.0.0.1:0").await.unwrap();
        let ask = |req: Vec<u8>| async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = c.write_all(&req).await;
            let mut out = String::new();
            let _ = c.read_to_string(&mut out).await;
            out
        };
        assert!(ask(b"\x00\xff garbage\r\n\r\n".to_vec())
            .await
            .starts_with("HTTP/1.1 400 "));
        assert!(ask(vec![b'a'; 100_000]).await.starts_with("HTTP/1.1 431 "));
        let wrong =
            b"POST /services/s/pause HTTP/1.1\r\nAuthorization: Bearer nope\r\n\r\n".to_vec();
        assert!(ask(wrong).await.starts_with("HTTP/1.1 401 "));
        let missing = b"POST /services/s/pause HTTP/1.1\r\n\r\n".to_vec();
        assert!(ask(missing).await.starts_with("HTTP/1.1 401 "));
        assert!(ask(b"GET /health HTTP/1.1\r\n\r\n".to_vec())
            .await
            .starts_with("HTTP/1.1 "));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Any bytes as a request head: never a panic; either a 400/431 or a request whose path starts with '/'.
        #[test]
        fn any_request_head_is_parsed_or_refused_never_a_panic(
            head in proptest::collection::vec(any::<u8>(), 0..300),
            prefix in proptest::sample::select(vec!["", "GET / HTTP/1.1\r\n", "POST /services/s/resume HTTP/1.0\r\n"]),
        ) {
            let mut bytes = prefix.as_bytes().to_vec();
            bytes.extend_from_slice(&head);
            let complete = bytes.windows(4).any(|w| w == b"\r\n\r\n");
            match parse_request(&bytes, complete) {
                Ok(r) => prop_assert!(r.path.starts_with('/')),
                Err((code, _)) => prop_assert!(code == 400 || code == 431),
            }
        }
    }
}
