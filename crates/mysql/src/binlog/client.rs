//! The replication connection: a minimal MySQL/MariaDB client that logs in,
//! asks for the binlog (from a file and offset, or from a MySQL GTID set) and
//! hands back each event's bytes exactly as the server sent them.
//!
//! Why our own: the driver's binlog stream decompresses every
//! TRANSACTION_PAYLOAD whole into memory, and its GTID request cannot carry
//! tagged GTIDs (MySQL 8.3+). Here an event is returned as raw bytes and the
//! caller's [`Decoder`](super::Decoder) streams payloads one inner event at a
//! time (see [`payload`](super::payload)); the GTID set is encoded by
//! [`GtidSet::encode`], tags included. Ordinary queries still go through the
//! driver; this connection only issues `SET` statements and the dump.
//!
//! Protocol, as used here:
//!
//! ```text
//! packet:     len u24 | seq u8 | payload (a payload of 0xffffff bytes continues in the next packet)
//! handshake:  10 | version NUL | conn id u32 | nonce[8] | 0 | caps lo u16 | charset u8 |
//!             status u16 | caps hi u16 | nonce len u8 | 0[10] | nonce rest | plugin NUL
//! response:   caps u32 | max packet u32 | charset u8 | 0[23] | user NUL |
//!             lenenc auth data | plugin NUL      (an SSL request is the first 32 bytes)
//! auth:       0x00 OK | 0xff ERR | 0xfe switch: plugin NUL, nonce |
//!             0x01 more data: caching_sha2 3 = fast auth done, 4 = send the password
//!             (cleartext over TLS, else RSA-OAEP with the key asked for by 0x02)
//! dump:       0x12 pos u32 | flags u16 | server id u32 | file
//! dump gtid:  0x1e flags u16 | server id u32 | file len u32 | file | pos u64 |
//!             set len u32 | set (flag 0x04: start from the set)
//! events:     0x00 | event bytes; 0xfe (< 9 bytes) end of stream; 0xff ERR
//! ```
//!
//! Authentication plugins: `mysql_native_password` and
//! `caching_sha2_password` (MySQL 8+'s default, with or without TLS).
//! Anything else is a clear error naming the plugin. Nothing from the server
//! can make this panic: every length is checked before it is used.

use crate::gtid::GtidSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest packet accepted: MySQL's max_allowed_packet ceiling plus room
/// for the OK byte and header.
const MAX_PACKET: usize = (1 << 30) + 64;

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_LONG_FLAG: u32 = 0x4;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;
const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x20_0000;
/// utf8mb4_general_ci, which both flavors have.
const CHARSET: u8 = 45;

/// How the connection is secured (the `tls` setting of the endpoint).
#[derive(Clone)]
pub enum ClientTls {
    Disabled,
    /// Encrypted, but any certificate is accepted (`tls = "required"`).
    Required,
    /// The certificate must chain to the built-in web roots or to one of
    /// these CA certificates (PEM or DER) and name the host.
    VerifyFull {
        ca: Vec<Vec<u8>>,
    },
}

#[derive(Clone)]
pub struct ClientOptions {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub tls: ClientTls,
    /// Bounds the TCP connect, TLS and login together.
    pub connect_timeout: Duration,
}

impl fmt::Debug for ClientOptions {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.host, self.port)
    }
}

/// Where the binlog starts.
pub enum DumpFrom<'a> {
    File {
        name: &'a str,
        pos: u64,
    },
    /// MySQL GTID auto-position: everything not in the set.
    Gtid(&'a GtidSet),
}

#[derive(Debug)]
pub enum ClientError {
    /// The connection failed or dropped: worth a retry.
    Io(std::io::Error),
    /// The server refused something, with its error code.
    Server {
        code: u16,
        state: String,
        message: String,
    },
    /// The server said something this client does not understand, or asked
    /// for something it does not do (an authentication plugin, TLS).
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Server {
                code,
                state,
                message,
            } => write!(f, "ERROR {code} ({state}): {message}"),
            ClientError::Protocol(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

fn proto(m: impl Into<String>) -> ClientError {
    ClientError::Protocol(m.into())
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One logged-in replication connection.
pub struct BinlogClient {
    io: BufReader<Box<dyn Io>>,
    seq: u8,
    buf: Vec<u8>,
    rx: RxState,
    secure: bool,
    server_version: String,
    /// Bytes read from the server so far (a stalled connection reads none).
    received: u64,
}

impl BinlogClient {
    /// Connects and logs in.
    pub async fn connect(opts: &ClientOptions) -> Result<BinlogClient, ClientError> {
        match tokio::time::timeout(opts.connect_timeout, Self::connect_inner(opts)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "connecting to {}:{} took more than {:?}",
                    opts.host, opts.port, opts.connect_timeout
                ),
            ))),
        }
    }

    /// Bytes read from the server so far, counted as they arrive (also in
    /// the middle of an event): a connection whose count stops moving
    /// while the server should send heartbeats has stalled.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// The server's version string from its handshake.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// Whether the connection is encrypted.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    async fn connect_inner(opts: &ClientOptions) -> Result<BinlogClient, ClientError> {
        let tcp = TcpStream::connect((opts.host.as_str(), opts.port)).await?;
        tcp.set_nodelay(true)?;
        let mut c = BinlogClient {
            io: BufReader::with_capacity(1 << 16, Box::new(tcp) as Box<dyn Io>),
            seq: 0,
            buf: Vec::with_capacity(1 << 16),
            rx: RxState {
                ready: true,
                ..RxState::default()
            },
            secure: false,
            server_version: String::new(),
            received: 0,
        };
        c.read_packet().await?;
        let hs = Handshake::parse(&c.buf)?;
        c.server_version = hs.version.clone();
        let wanted = CLIENT_LONG_PASSWORD
            | CLIENT_LONG_FLAG
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
            | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        let mut caps = wanted & hs.caps;
        if caps & CLIENT_PROTOCOL_41 == 0 || caps & CLIENT_SECURE_CONNECTION == 0 {
            return Err(proto(format!(
                "the server ({}) does not speak the 4.1 protocol",
                hs.version
            )));
        }
        if !matches!(opts.tls, ClientTls::Disabled) {
            if hs.caps & CLIENT_SSL == 0 {
                return Err(proto(format!(
                    "{}:{} does not offer TLS, and tls is \"{}\"; enable TLS on the server or set tls = \"disabled\" for a trusted network",
                    opts.host,
                    opts.port,
                    if matches!(opts.tls, ClientTls::Required) { "required" } else { "verify-full" }
                )));
            }
            caps |= CLIENT_SSL;
            let mut req = Vec::with_capacity(32);
            req.extend_from_slice(&caps.to_le_bytes());
            req.extend_from_slice(&((1u32 << 30).to_le_bytes()));
            req.push(CHARSET);
            req.extend_from_slice(&[0u8; 23]);
            c.write_packet(&req).await?;
            c.upgrade(opts).await?;
        }
        let plugin = match hs.plugin.as_str() {
            "caching_sha2_password" => Plugin::CachingSha2,
            _ => Plugin::Native,
        };
        let password = opts.password.as_deref().unwrap_or("");
        let mut resp = Vec::with_capacity(128);
        resp.extend_from_slice(&caps.to_le_bytes());
        resp.extend_from_slice(&((1u32 << 30).to_le_bytes()));
        resp.push(CHARSET);
        resp.extend_from_slice(&[0u8; 23]);
        resp.extend_from_slice(opts.user.as_bytes());
        resp.push(0);
        let data = plugin.scramble(password, &hs.nonce);
        if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            push_lenenc(&mut resp, data.len() as u64);
        } else {
            resp.push(data.len() as u8);
        }
        resp.extend_from_slice(&data);
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            resp.extend_from_slice(plugin.name().as_bytes());
            resp.push(0);
        }
        c.write_packet(&resp).await?;
        c.authenticate(plugin, hs.nonce, password).await?;
        Ok(c)
    }

    async fn upgrade(&mut self, opts: &ClientOptions) -> Result<(), ClientError> {
        if !self.io.buffer().is_empty() {
            return Err(proto(
                "the server sent data before the TLS handshake".to_string(),
            ));
        }
        let config = tls_config(&opts.tls)?;
        let name = rustls::pki_types::ServerName::try_from(opts.host.clone()).map_err(|e| {
            proto(format!(
                "\"{}\" is not a host name TLS can check: {e}",
                opts.host
            ))
        })?;
        let plain = std::mem::replace(
            &mut self.io,
            BufReader::new(Box::new(tokio::io::duplex(1).0) as Box<dyn Io>),
        )
        .into_inner();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, plain)
            .await
            .map_err(|e| {
                proto(format!(
                    "TLS handshake with {}:{} failed: {e}{}",
                    opts.host,
                    opts.port,
                    if matches!(opts.tls, ClientTls::VerifyFull { .. }) {
                        " (tls = \"verify-full\" checks the certificate against the CA and the host name: set ca = \"path/to/ca.pem\" to the server's CA, or tls = \"required\" to encrypt without checking)"
                    } else {
                        ""
                    }
                ))
            })?;
        self.io = BufReader::with_capacity(1 << 16, Box::new(tls) as Box<dyn Io>);
        self.secure = true;
        Ok(())
    }

    async fn authenticate(
        &mut self,
        mut plugin: Plugin,
        mut nonce: Vec<u8>,
        password: &str,
    ) -> Result<(), ClientError> {
        let mut switched = false;
        loop {
            self.read_packet().await?;
            match self.buf.first().copied() {
                Some(0x00) => return Ok(()),
                Some(0xff) => return Err(parse_err(&self.buf)),
                Some(0xfe) if !switched => {
                    switched = true;
                    let body = self.buf.get(1..).unwrap_or(&[]);
                    let nul = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                    let name = String::from_utf8_lossy(&body[..nul]).into_owned();
                    let mut n = body.get(nul + 1..).unwrap_or(&[]).to_vec();
                    if n.last() == Some(&0) {
                        n.pop();
                    }
                    nonce = n;
                    plugin = match name.as_str() {
                        "mysql_native_password" => Plugin::Native,
                        "caching_sha2_password" => Plugin::CachingSha2,
                        other => return Err(proto(format!(
                            "the server asks for the authentication plugin \"{other}\", which dropship's binlog connection does not support; give the replication user mysql_native_password or caching_sha2_password (ALTER USER ... IDENTIFIED WITH caching_sha2_password BY '...')"
                        ))),
                    };
                    let data = plugin.scramble(password, &nonce);
                    self.write_packet(&data).await?;
                }
                Some(0x01) if plugin == Plugin::CachingSha2 => match self.buf.get(1).copied() {
                    // Fast authentication succeeded; the OK follows.
                    Some(0x03) => {}
                    Some(0x04) => {
                        let mut clear = password.as_bytes().to_vec();
                        clear.push(0);
                        if self.secure {
                            self.write_packet(&clear).await?;
                        } else {
                            self.write_packet(&[0x02]).await?;
                            self.read_packet().await?;
                            if self.buf.first() == Some(&0xff) {
                                return Err(parse_err(&self.buf));
                            }
                            let key = self.buf.get(1..).unwrap_or(&[]).to_vec();
                            for (i, b) in clear.iter_mut().enumerate() {
                                *b ^= nonce.get(i % nonce.len().max(1)).copied().unwrap_or(0);
                            }
                            let sealed = rsa_encrypt(&clear, &key)?;
                            self.write_packet(&sealed).await?;
                        }
                    }
                    other => {
                        return Err(proto(format!(
                            "unexpected caching_sha2_password step {other:?}"
                        )))
                    }
                },
                other => {
                    return Err(proto(format!(
                        "unexpected packet during login (first byte {other:?}, {} bytes)",
                        self.buf.len()
                    )))
                }
            }
        }
    }

    /// Runs a statement that returns no rows (`SET ...`).
    pub async fn execute(&mut self, sql: &str) -> Result<(), ClientError> {
        let mut p = Vec::with_capacity(sql.len() + 1);
        p.push(0x03);
        p.extend_from_slice(sql.as_bytes());
        self.command(&p).await?;
        self.expect_ok(sql).await
    }

    /// Registers as a replica (so `SHOW REPLICAS` lists the connection),
    /// then asks for the binlog. Events follow through [`Self::next_event`].
    pub async fn dump(&mut self, server_id: u32, from: DumpFrom<'_>) -> Result<(), ClientError> {
        let mut reg = Vec::with_capacity(18);
        reg.push(0x15);
        reg.extend_from_slice(&server_id.to_le_bytes());
        reg.extend_from_slice(&[0, 0, 0]); // host, user, password: empty
        reg.extend_from_slice(&0u16.to_le_bytes());
        reg.extend_from_slice(&0u32.to_le_bytes());
        reg.extend_from_slice(&0u32.to_le_bytes());
        self.command(&reg).await?;
        self.expect_ok("COM_REGISTER_SLAVE").await?;
        let mut p = Vec::with_capacity(64);
        match from {
            DumpFrom::File { name, pos } => {
                let pos = u32::try_from(pos).map_err(|_| {
                    proto(format!(
                        "binlog offset {pos} in {name} is beyond 4 GiB, which COM_BINLOG_DUMP cannot ask for"
                    ))
                })?;
                p.push(0x12);
                p.extend_from_slice(&pos.to_le_bytes());
                p.extend_from_slice(&0u16.to_le_bytes());
                p.extend_from_slice(&server_id.to_le_bytes());
                p.extend_from_slice(name.as_bytes());
            }
            DumpFrom::Gtid(set) => {
                let data = set.encode();
                p.push(0x1e);
                p.extend_from_slice(&0x04u16.to_le_bytes());
                p.extend_from_slice(&server_id.to_le_bytes());
                p.extend_from_slice(&0u32.to_le_bytes());
                p.extend_from_slice(&4u64.to_le_bytes());
                p.extend_from_slice(&(data.len() as u32).to_le_bytes());
                p.extend_from_slice(&data);
            }
        }
        self.command(&p).await
    }

    /// The next event's bytes (header, body, CRC trailer as sent), or None
    /// when the server ended the stream. The slice is valid until the next
    /// call.
    pub async fn next_event(&mut self) -> Result<Option<&[u8]>, ClientError> {
        self.read_packet().await?;
        match self.buf.first().copied() {
            Some(0x00) => Ok(self.buf.get(1..)),
            Some(0xff) => Err(parse_err(&self.buf)),
            Some(0xfe) if self.buf.len() < 9 => Ok(None),
            other => Err(proto(format!(
                "unexpected packet in the binlog stream (first byte {other:?}, {} bytes)",
                self.buf.len()
            ))),
        }
    }

    async fn expect_ok(&mut self, what: &str) -> Result<(), ClientError> {
        self.read_packet().await?;
        match self.buf.first().copied() {
            Some(0x00) => Ok(()),
            Some(0xff) => Err(parse_err(&self.buf)),
            other => Err(proto(format!(
                "{what}: expected OK, got a packet starting with {other:?}"
            ))),
        }
    }

    async fn command(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.seq = 0;
        self.write_packet(payload).await
    }

    async fn write_packet(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        let mut last_len = 0;
        for chunk in payload.chunks(0xff_ffff) {
            let mut head = (chunk.len() as u32).to_le_bytes();
            head[3] = self.seq;
            self.seq = self.seq.wrapping_add(1);
            let w = self.io.get_mut();
            w.write_all(&head).await?;
            w.write_all(chunk).await?;
            last_len = chunk.len();
        }
        // An empty payload, or one ending on a full packet, ends with an
        // empty packet.
        if payload.is_empty() || last_len == 0xff_ffff {
            let head = [0, 0, 0, self.seq];
            self.seq = self.seq.wrapping_add(1);
            self.io.get_mut().write_all(&head).await?;
        }
        self.io.get_mut().flush().await?;
        Ok(())
    }

    /// Reads one whole packet (continuations joined) into `buf`.
    ///
    /// Cancel-safe, so a caller may wrap [`Self::next_event`] in a timeout
    /// or `select!`: each await is a single read whose bytes are kept in
    /// `self` at once, and a dropped call resumes where it stopped.
    async fn read_packet(&mut self) -> Result<(), ClientError> {
        if self.rx.ready {
            self.buf.clear();
            // Give back what one very large event needed.
            if self.buf.capacity() > 64 << 20 {
                self.buf.shrink_to(1 << 20);
            }
            self.rx = RxState::default();
        }
        loop {
            if self.rx.head_got < 4 {
                let got = self.rx.head_got;
                let n = self.io.read(&mut self.rx.head[got..]).await?;
                if n == 0 {
                    return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
                self.rx.head_got += n;
                self.received += n as u64;
                if self.rx.head_got < 4 {
                    continue;
                }
                let h = self.rx.head;
                let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
                self.seq = h[3].wrapping_add(1);
                if self.buf.len() + len > MAX_PACKET {
                    return Err(proto(format!(
                        "the server sent a packet of more than {MAX_PACKET} bytes"
                    )));
                }
                self.rx.body_left = len;
                self.rx.last_len = len;
            }
            while self.rx.body_left > 0 {
                // Grow as bytes arrive, never ahead of them by more than 1 MiB.
                self.buf.reserve(self.rx.body_left.min(1 << 20));
                let n = (&mut self.io)
                    .take(self.rx.body_left as u64)
                    .read_buf(&mut self.buf)
                    .await?;
                if n == 0 {
                    return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
                self.rx.body_left -= n;
                self.received += n as u64;
            }
            self.rx.head_got = 0;
            if self.rx.last_len < 0xff_ffff {
                self.rx.ready = true;
                return Ok(());
            }
        }
    }
}

/// How far the packet being read has come (see `read_packet`).
#[derive(Default)]
struct RxState {
    head: [u8; 4],
    head_got: usize,
    body_left: usize,
    last_len: usize,
    /// The last packet is complete in `buf`: the next read starts afresh.
    ready: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Plugin {
    Native,
    CachingSha2,
}

impl Plugin {
    fn name(self) -> &'static str {
        match self {
            Plugin::Native => "mysql_native_password",
            Plugin::CachingSha2 => "caching_sha2_password",
        }
    }

    fn scramble(self, password: &str, nonce: &[u8]) -> Vec<u8> {
        let nonce = nonce.get(..20).unwrap_or(nonce);
        match self {
            Plugin::Native => mysql_common::scramble::scramble_native(nonce, password.as_bytes())
                .map(|s| s.to_vec())
                .unwrap_or_default(),
            Plugin::CachingSha2 => {
                mysql_common::scramble::scramble_sha256(nonce, password.as_bytes())
                    .map(|s| s.to_vec())
                    .unwrap_or_default()
            }
        }
    }
}

struct Handshake {
    version: String,
    caps: u32,
    nonce: Vec<u8>,
    plugin: String,
}

impl Handshake {
    fn parse(p: &[u8]) -> Result<Handshake, ClientError> {
        if p.first() == Some(&0xff) {
            return Err(parse_err(p));
        }
        let short = || proto("the server's handshake packet is truncated");
        if p.first() != Some(&10) {
            return Err(proto(format!(
                "the server's handshake is protocol {:?}, not 10",
                p.first()
            )));
        }
        let rest = p.get(1..).ok_or_else(short)?;
        let nul = rest.iter().position(|&b| b == 0).ok_or_else(short)?;
        let version = String::from_utf8_lossy(&rest[..nul]).into_owned();
        let mut i = 1 + nul + 1 + 4; // version, NUL, connection id
        let part1 = p.get(i..i + 8).ok_or_else(short)?;
        let mut nonce = part1.to_vec();
        i += 8 + 1;
        let lo = p.get(i..i + 2).ok_or_else(short)?;
        let mut caps = u32::from(u16::from_le_bytes([lo[0], lo[1]]));
        i += 2;
        let mut plugin = String::new();
        if let Some(ext) = p.get(i..i + 16) {
            // charset u8, status u16, caps hi u16, nonce len u8, reserved[10]
            caps |= u32::from(u16::from_le_bytes([ext[3], ext[4]])) << 16;
            let nonce_len = usize::from(ext[5]);
            i += 16;
            if caps & CLIENT_SECURE_CONNECTION != 0 {
                let n = nonce_len.saturating_sub(8).max(13);
                let part2 = p.get(i..i + n).ok_or_else(short)?;
                let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
                nonce.extend_from_slice(part2);
                i += n;
            }
            if caps & CLIENT_PLUGIN_AUTH != 0 {
                let tail = p.get(i..).unwrap_or(&[]);
                let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
                plugin = String::from_utf8_lossy(&tail[..end]).into_owned();
            }
        }
        Ok(Handshake {
            version,
            caps,
            nonce,
            plugin,
        })
    }
}

fn parse_err(p: &[u8]) -> ClientError {
    let code = p
        .get(1..3)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .unwrap_or(0);
    let body = p.get(3..).unwrap_or(&[]);
    let (state, msg) = match body.split_first() {
        Some((b'#', rest)) if rest.len() >= 5 => {
            (String::from_utf8_lossy(&rest[..5]).into_owned(), &rest[5..])
        }
        _ => ("HY000".to_string(), body),
    };
    ClientError::Server {
        code,
        state,
        message: String::from_utf8_lossy(msg).into_owned(),
    }
}

fn push_lenenc(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=250 => out.push(v as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// RSA-OAEP with the server's public key (caching_sha2_password without
/// TLS). The key comes from the server: it is checked to look like a PEM
/// public key, and a malformed one is an error, never a panic.
fn rsa_encrypt(data: &[u8], pem: &[u8]) -> Result<Vec<u8>, ClientError> {
    let text = String::from_utf8_lossy(pem);
    if !text.contains("-----BEGIN PUBLIC KEY-----")
        && !text.contains("-----BEGIN RSA PUBLIC KEY-----")
    {
        return Err(proto(
            "the server's RSA public key for caching_sha2_password is not a PEM public key; use TLS (tls = \"required\" or \"verify-full\")",
        ));
    }
    let data = data.to_vec();
    let pem = pem.to_vec();
    std::panic::catch_unwind(move || mysql_common::crypto::encrypt(&data, &pem)).map_err(|_| {
        proto("the server's RSA public key for caching_sha2_password could not be used; use TLS (tls = \"required\" or \"verify-full\")")
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

fn tls_config(tls: &ClientTls) -> Result<rustls::ClientConfig, ClientError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| proto(format!("TLS setup: {e}")))?;
    match tls {
        ClientTls::Disabled => Err(proto("TLS is disabled")),
        ClientTls::Required => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()),
        ClientTls::VerifyFull { ca } => {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::CertificateDer;
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            for bytes in ca {
                let mut seen = false;
                for cert in CertificateDer::pem_slice_iter(bytes) {
                    let cert = cert.map_err(|e| proto(format!("reading the CA file: {e}")))?;
                    roots.add(cert).map_err(|e| {
                        proto(format!("the CA file holds an unusable certificate: {e}"))
                    })?;
                    seen = true;
                }
                if !seen {
                    roots
                        .add(CertificateDer::from(bytes.clone()))
                        .map_err(|e| {
                            proto(format!(
                                "the CA file is neither PEM nor a DER certificate: {e}"
                            ))
                        })?;
                }
            }
            Ok(builder.with_root_certificates(roots).with_no_client_auth())
        }
    }
}

/// `tls = "required"`: encrypt, accept any certificate, but still check the
/// handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_parse_and_truncated_ones_are_errors() {
        let mut p = vec![10];
        p.extend_from_slice(b"9.7.4\0");
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(b"abcdefgh\0");
        let caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_SSL;
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(255);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0");
        p.extend_from_slice(b"caching_sha2_password\0");
        let hs = Handshake::parse(&p).unwrap();
        assert_eq!(hs.version, "9.7.4");
        assert_eq!(hs.nonce, b"abcdefghijklmnopqrst");
        assert_eq!(hs.plugin, "caching_sha2_password");
        assert_eq!(hs.caps, caps);
        // Cut anywhere before the capability flags (byte 22).
        for n in 0..22 {
            assert!(Handshake::parse(&p[..n]).is_err(), "{n} bytes parsed");
        }
        let err = parse_err(b"\xff\x15\x04#28000Access denied");
        assert_eq!(err.to_string(), "ERROR 1045 (28000): Access denied");
    }

    #[test]
    fn a_bad_server_key_is_an_error_not_a_panic() {
        assert!(rsa_encrypt(b"secret\0", b"not a key").is_err());
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = rsa_encrypt(
            b"secret\0",
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        );
        std::panic::set_hook(hook);
        assert!(r.is_err());
    }

    #[test]
    fn options_never_print_the_password() {
        let o = ClientOptions {
            host: "db".into(),
            port: 3306,
            user: "repl".into(),
            password: Some("hunter2".into()),
            tls: ClientTls::Disabled,
            connect_timeout: Duration::from_secs(1),
        };
        assert!(!format!("{o:?}").contains("hunter2"));
    }
}
