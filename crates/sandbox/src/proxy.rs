//! A TCP fault proxy for tests: it listens on a free loopback port, forwards
//! every connection to one upstream address, and injects faults when a test
//! asks, while the connections stay in use:
//!
//! - [`FaultProxy::reset_all`] closes every open connection with a TCP reset;
//! - [`FaultProxy::black_hole`] forwards nothing, in either direction and on
//!   new connections too, for a while, without closing anything (a NAT or a
//!   firewall that drops a flow): held bytes flow again afterwards;
//! - [`FaultProxy::black_hole_open`] does that to the connections open now
//!   only, while new ones work (a flow dropped by a NAT whose other flows
//!   live on: the server is reachable, one connection is dead);
//! - [`FaultProxy::delay`] sleeps before forwarding each chunk (a slow link);
//! - [`FaultProxy::cut_after`] forwards the next N bytes from the upstream,
//!   then closes that connection (a cut in the middle of a large event or
//!   batch).
//!
//! Every fault is bounded in time or bytes, [`FaultProxy::clear`] ends them,
//! and dropping the proxy closes its listener and connections.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Default)]
struct Faults {
    /// Nothing is forwarded until then.
    hole_until: Option<Instant>,
    /// Connections numbered below `.0` forward nothing until `.1`.
    hole_open: Option<(u64, Instant)>,
    /// Sleep before forwarding each chunk.
    delay: Duration,
    /// Bytes from the upstream still forwarded before a reset.
    cut_budget: Option<u64>,
}

struct Shared {
    faults: Mutex<Faults>,
    /// Bumped by `reset_all`: every pump resets its connection.
    resets: watch::Sender<u64>,
    bytes_up: std::sync::atomic::AtomicU64,
    bytes_down: std::sync::atomic::AtomicU64,
    connections: std::sync::atomic::AtomicU64,
}

/// See the module doc.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding `127.0.0.1:<port>` to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            faults: Mutex::new(Faults::default()),
            resets: watch::channel(0).0,
            bytes_up: 0.into(),
            bytes_down: 0.into(),
            connections: 0.into(),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let no = s
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let s = s.clone();
                tokio::spawn(async move {
                    // A black hole holds new connections too, before connecting.
                    wait_hole(&s, no).await;
                    if let Ok(up) = TcpStream::connect(upstream).await {
                        relay(client, up, s, no).await;
                    }
                });
            }
        });
        Ok(FaultProxy { port, shared, task })
    }

    /// The loopback port to connect to instead of the upstream.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Resets every open connection now (new ones are accepted).
    pub fn reset_all(&self) {
        self.shared.resets.send_modify(|g| *g += 1);
    }

    /// Forwards nothing for `d`, without closing any connection.
    pub fn black_hole(&self, d: Duration) {
        self.faults().hole_until = Some(Instant::now() + d);
    }

    /// Forwards nothing for `d` on the connections open now, without closing
    /// them; connections opened later are not affected.
    pub fn black_hole_open(&self, d: Duration) {
        let open = self.connections();
        self.faults().hole_open = Some((open, Instant::now() + d));
    }

    /// Sleeps `d` before forwarding each chunk, until [`FaultProxy::clear`].
    pub fn delay(&self, d: Duration) {
        self.faults().delay = d;
    }

    /// Forwards `n` more bytes from the upstream, then closes the connection
    /// that carried the last of them.
    pub fn cut_after(&self, n: u64) {
        self.faults().cut_budget = Some(n);
    }

    /// Ends every fault.
    pub fn clear(&self) {
        *self.faults() = Faults::default();
    }

    /// Bytes forwarded to the upstream and from it so far.
    pub fn bytes(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.shared.bytes_up.load(Relaxed),
            self.shared.bytes_down.load(Relaxed),
        )
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.shared.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.reset_all();
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Faults> {
    s.faults.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sleeps while a black hole holds connection `no` (re-read: it may be
/// extended or cleared).
async fn wait_hole(s: &Shared, no: u64) {
    loop {
        let until = {
            let f = lock(s);
            let open = f.hole_open.filter(|&(below, _)| no < below).map(|h| h.1);
            f.hole_until.max(open)
        };
        match until {
            Some(t) if t > Instant::now() => {
                tokio::time::sleep((t - Instant::now()).min(Duration::from_millis(50))).await
            }
            _ => return,
        }
    }
}

/// Pumps both directions until either side closes or a fault ends it: a
/// cut closes both sockets (FIN), a reset closes them with RST (SO_LINGER 0).
async fn relay(client: TcpStream, up: TcpStream, s: Arc<Shared>, no: u64) {
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = up.into_split();
    let mut resets = s.resets.subscribe();
    resets.borrow_and_update();
    let reset = tokio::select! {
        _ = pump(&mut cr, &mut uw, &s, no, false) => false,
        _ = pump(&mut ur, &mut cw, &s, no, true) => false,
        _ = resets.changed() => true,
    };
    if reset {
        for (r, w) in [(cr, cw), (ur, uw)] {
            if let Ok(stream) = r.reunite(w) {
                abort_on_close(&stream);
            }
        }
    }
}

/// SO_LINGER with a zero timeout: closing the socket sends RST.
fn abort_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    s: &Shared,
    no: u64,
    downstream: bool,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        wait_hole(s, no).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read just before a black hole began are held through it.
        wait_hole(s, no).await;
        let delay = lock(s).delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut send = n;
        let mut cut = false;
        if downstream {
            let mut f = lock(s);
            if let Some(b) = f.cut_budget {
                if (n as u64) >= b {
                    send = b as usize;
                    cut = true;
                    f.cut_budget = None;
                } else {
                    f.cut_budget = Some(b - n as u64);
                }
            }
        }
        if send > 0 && to.write_all(&buf[..send]).await.is_err() {
            return;
        }
        if downstream {
            s.bytes_down.fetch_add(send as u64, Relaxed);
        } else {
            s.bytes_up.fetch_add(send as u64, Relaxed);
        }
        if cut {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = vec![0u8; 4096];
                    while let Ok(n) = c.read(&mut b).await {
                        if n == 0 || c.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(c: &mut TcpStream, msg: &[u8], within: Duration) -> Option<Vec<u8>> {
        c.write_all(msg).await.ok()?;
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(within, c.read_exact(&mut got))
            .await
            .ok()?
            .ok()?;
        Some(got)
    }

    #[tokio::test]
    async fn forwards_holds_in_a_black_hole_resets_and_cuts() {
        let p = FaultProxy::start(echo_server().await).await.unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", p.port())).await.unwrap();
        let s = Duration::from_secs(2);
        assert_eq!(
            roundtrip(&mut c, b"hello", s).await.as_deref(),
            Some(&b"hello"[..])
        );

        // A black hole holds the bytes without closing; they arrive after it.
        p.black_hole(Duration::from_millis(600));
        let t = Instant::now();
        assert_eq!(
            roundtrip(&mut c, b"held", s).await.as_deref(),
            Some(&b"held"[..])
        );
        assert!(
            t.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );

        // A hole for the open connections only: a new one works meanwhile.
        p.black_hole_open(Duration::from_millis(800));
        let mut fresh = TcpStream::connect(("127.0.0.1", p.port())).await.unwrap();
        assert!(roundtrip(&mut fresh, b"new", Duration::from_millis(400))
            .await
            .is_some());
        assert!(roundtrip(&mut c, b"old", Duration::from_millis(200))
            .await
            .is_none());
        let mut late = [0u8; 3];
        c.read_exact(&mut late).await.unwrap();
        assert_eq!(&late, b"old", "held bytes arrive after the hole");

        // A cut forwards exactly the budget, then closes the connection.
        p.cut_after(3);
        c.write_all(b"abcdef").await.unwrap();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(s, c.read_to_end(&mut got)).await;
        assert_eq!(got, b"abc");

        // A reset closes every open connection; new ones work.
        let mut c2 = TcpStream::connect(("127.0.0.1", p.port())).await.unwrap();
        assert!(roundtrip(&mut c2, b"x", s).await.is_some());
        p.reset_all();
        let mut rest = Vec::new();
        let r = tokio::time::timeout(s, c2.read_to_end(&mut rest)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
        let mut c3 = TcpStream::connect(("127.0.0.1", p.port())).await.unwrap();
        assert!(roundtrip(&mut c3, b"y", s).await.is_some());
        assert_eq!(p.connections(), 4);
    }
}
