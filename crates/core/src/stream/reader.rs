//! The one binlog reader: streams the source's binlog over one replication
//! connection, decodes every event with the shared decoder, keeps the rows of
//! mapped tables and writes them to the relay log as flavor-independent
//! records, which every service's applier reads at its own pace.
//!
//! Positions: the reader tracks the last transaction boundary (file and the
//! offset after the commit event, plus the GTID state). Only boundaries are
//! resumable: after a dropped connection it writes a `Restart` record and
//! reconnects from the last boundary, so a transaction cut in half is read
//! again whole and appliers drop the half they saw. A MySQL source with
//! gtid_mode=ON is asked by GTID auto-position (every transaction not in the
//! boundary's executed set); others by file and offset. The connection is
//! dropship's own (`dropship_mysql::binlog::client`), and a compressed
//! TRANSACTION_PAYLOAD is handled one inner event at a time.
//!
//! Failure: dropped connections and server restarts are retried with
//! exponential backoff (100 ms to 10 s). A purged position, an INCIDENT
//! event, an undecodable or unknown event, a CRC mismatch or statement-format
//! DML on a mapped table stop the reader with a definite error: nothing is
//! skipped silently.

use crate::config::Config;
use crate::control::stats::{now_epoch, ReaderStats};
use crate::error::{Error, Result};
use crate::stream::gtid_state::GtidState;
use crate::stream::record::{DdlRecord, Record, RowsRecord};
use crate::stream::source_schema::SourceSchemas;
use dropship_mysql::binlog::client::{BinlogClient, ClientError, DumpFrom};
use dropship_mysql::binlog::file::Frames;
use dropship_mysql::binlog::Decoder;
use dropship_mysql::flavor::Flavor;
use dropship_mysql::position::Position;
use dropship_mysql::{Event, EventHeader, Gtid, RowChange, RowImage, TableMap, Value};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

mod backoff;
mod rows;
mod transaction;

use backoff::Backoff;
use rows::RowsPlan;
use transaction::Tx;

/// Where the reader writes records.
pub trait RecordSink: Send {
    fn append(&mut self, rec: &Record) -> Result<u64>;
    fn flush(&mut self) -> Result<()>;
    /// Why the sink has no room for more records (the reader then pauses,
    /// see `Reader::pause_while_full`); `resuming` asks with the margin a
    /// paused reader waits for. `None`: there is room. Asked between every
    /// two transactions: it must be cheap.
    fn full(&mut self, _resuming: bool) -> Option<String> {
        None
    }
    /// Frees what the sink can free while the reader is paused (see
    /// `RelayLog::release_drained`).
    fn make_room(&mut self) -> Result<()> {
        Ok(())
    }
}

/// How often the position between transactions is sent on to the appliers
/// (a small relay record). It bounds how long an applier with nothing to
/// apply takes to show a position past a point: the cutover's and the
/// rollback's catch-up waits, inside the freeze, depend on it.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);
/// How long the source's dump thread waits with nothing to send before it
/// sends a heartbeat event: while idle, lag is known to within this.
const SERVER_HEARTBEAT: Duration = Duration::from_millis(500);
/// A binlog connection that reads no byte for this long, although the
/// source sends a heartbeat every [`SERVER_HEARTBEAT`] when it has nothing
/// else to send, has stalled (a NAT or firewall dropped the flow without a
/// reset): it is dropped and the reader reconnects, instead of waiting for
/// the kernel's TCP timeout (minutes to hours).
const STALLED_AFTER: Duration = Duration::from_secs(5);

pub struct Reader<S: RecordSink> {
    cfg: Arc<Config>,
    sink: S,
    stats: Arc<ReaderStats>,
    schemas: SourceSchemas,
    /// database -> table -> whether a service reads it (two levels, so a
    /// lookup needs no allocation).
    owners: HashMap<String, HashMap<String, bool>>,
    /// Per table id: see `RowsPlan`.
    plans: HashMap<u64, RowsPlan>,
    flavor: Flavor,
    file: String,
    boundary: Position,
    gtid: GtidState,
    tx: Option<Tx>,
    last_progress: Instant,
    /// Whether the boundary moved since it was last sent to the appliers (in
    /// a Commit or Progress record), and the source time of the event that
    /// last moved it: an idle stream sends a boundary that moved without a
    /// mapped commit (unmapped DDL, rotations) within `PROGRESS_EVERY`.
    unreported: bool,
    boundary_ts: u32,
    last_flush: Instant,
    dirty: bool,
    requested_file: String,
    /// Resume by GTID auto-position (a MySQL source with gtid_mode=ON):
    /// the source sends every transaction not in the executed set the
    /// boundary carries, tagged GTIDs included. Otherwise by file:offset.
    auto_position: bool,
    /// The GTID state is the source's whole executed set at the boundary
    /// (it came with the start position, or from a PREVIOUS_GTIDS event at
    /// the start of a file). A state gathered only from the GTIDs seen
    /// since a mid-file start is partial: resuming by it would re-read
    /// everything, so such a reader resumes by file:offset.
    gtid_complete: bool,
}

impl<S: RecordSink> Reader<S> {
    /// `meta` is an ordinary source connection for schema lookups.
    pub async fn new(
        cfg: Arc<Config>,
        sink: S,
        stats: Arc<ReaderStats>,
        mut meta: Conn,
        start: Position,
    ) -> Result<Reader<S>> {
        let flavor = Flavor::detect(&mut meta)
            .await
            .map_err(Error::db("detecting the source flavor"))?;
        let auto_position = if flavor.is_mariadb() {
            false
        } else {
            let mode: Option<String> = meta
                .query_first("SELECT @@GLOBAL.gtid_mode")
                .await
                .ok()
                .flatten();
            mode.is_some_and(|m| m.eq_ignore_ascii_case("ON"))
        };
        let mut r = Reader::with_flavor(cfg, sink, stats, meta, start, flavor);
        r.auto_position = auto_position;
        Ok(r)
    }

    /// Like [`Reader::new`] with the flavor of the binlog given rather than
    /// detected. `meta` answers table definitions when the binlog carries no
    /// column names (see [`SourceSchemas`]).
    pub fn with_flavor(
        cfg: Arc<Config>,
        sink: S,
        stats: Arc<ReaderStats>,
        meta: Conn,
        start: Position,
        flavor: Flavor,
    ) -> Reader<S> {
        let gtid = GtidState::parse(flavor.is_mariadb(), &start.gtid);
        let gtid_complete = !gtid.is_empty();
        Reader {
            cfg,
            sink,
            stats,
            schemas: SourceSchemas::new(meta),
            owners: HashMap::new(),
            plans: HashMap::new(),
            flavor,
            file: start.file.clone(),
            requested_file: start.file.clone(),
            boundary: start,
            gtid,
            tx: None,
            last_progress: Instant::now(),
            unreported: false,
            boundary_ts: 0,
            last_flush: Instant::now(),
            dirty: false,
            auto_position: false,
            gtid_complete,
        }
    }

    /// Turns one raw event (header, body, CRC trailer) into records: decodes
    /// it (a TRANSACTION_PAYLOAD yields its inner events) and converts every
    /// event exactly as the live stream does. `offset` is the event's offset
    /// in its file. Returns how many events the raw event held.
    pub async fn feed_raw(
        &mut self,
        decoder: &mut Decoder,
        raw: &[u8],
        offset: u64,
        events: &mut Vec<(EventHeader, Event)>,
    ) -> Result<usize> {
        let log_pos = raw
            .get(13..17)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let outer_next = u64::from(log_pos);
        events.clear();
        // A TRANSACTION_PAYLOAD is handled one inner event at a time: each
        // is decompressed, decoded and handled before the next, so memory
        // holds the compressed event and one inner event, never the whole
        // transaction.
        let fail = |file: &str, e| decode_failed(file, log_pos, raw, e);
        if let Some(mut inner) = decoder
            .payload(raw, offset)
            .map_err(|e| fail(&self.file, e))?
        {
            let mut buf = Vec::new();
            let mut n = 0;
            while inner.next_into(&mut buf).map_err(|e| fail(&self.file, e))? {
                decoder
                    .decode_embedded(&buf, offset, &mut |h, e| {
                        events.push((h, e));
                        Ok(())
                    })
                    .map_err(|e| fail(&self.file, e))?;
                for (h, e) in events.drain(..) {
                    self.handle(h, e, outer_next).await?;
                }
                n += 1;
            }
            return Ok(n);
        }
        decoder
            .decode_at(raw, offset, &mut |h, e| {
                events.push((h, e));
                Ok(())
            })
            .map_err(|e| fail(&self.file, e))?;
        let n = events.len();
        for (h, e) in events.drain(..) {
            self.handle(h, e, outer_next).await?;
        }
        Ok(n)
    }

    /// Converts a whole binlog file into records, as if the source had sent
    /// it (offline replay: tests, tools), reading one event at a time. Stops
    /// at the first error, with the records before it already in the sink.
    pub async fn replay_file(&mut self, path: &std::path::Path) -> Result<u64> {
        let name = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|e| {
            Error::definite(
                format!("reading binlog file {name}: {e}"),
                "check the path and its permissions",
            )
        })?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        let r = std::io::BufReader::with_capacity(256 * 1024, f);
        self.replay(&name, r, len).await
    }

    /// [`Reader::replay_file`] for bytes in memory (`name` is used in errors).
    pub async fn replay_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<u64> {
        self.replay(name, bytes, bytes.len() as u64).await
    }

    async fn replay(&mut self, name: &str, r: impl std::io::Read, len: u64) -> Result<u64> {
        let framing = |e: dropship_mysql::binlog::DecodeError| {
            let hint = e
                .hint()
                .unwrap_or("pass a complete binlog or relay-log file");
            Error::definite(e.to_string(), hint)
        };
        let mut frames = Frames::new(name, r, len).map_err(framing)?;
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        let mut count = 0u64;
        while let Some((offset, raw)) = frames.next_event().map_err(framing)? {
            self.stats.events.fetch_add(1, Relaxed);
            self.stats.bytes.fetch_add(raw.len() as u64, Relaxed);
            self.feed_raw(&mut decoder, raw, offset, &mut events)
                .await?;
            count += 1;
        }
        self.sink.flush()?;
        Ok(count)
    }

    /// The sink records go to.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    pub fn position(&self) -> &Position {
        &self.boundary
    }

    fn mapped(&mut self, db: &str, table: &str) -> bool {
        if let Some(&m) = self.owners.get(db).and_then(|t| t.get(table)) {
            return m;
        }
        let m = self.cfg.services.iter().any(|s| s.claims(db, table));
        self.owners
            .entry(db.to_string())
            .or_default()
            .insert(table.to_string(), m);
        m
    }

    /// Streams until `stop` is set; reconnects on transient errors.
    pub async fn run(&mut self, stop: tokio::sync::watch::Receiver<bool>) -> Result<()> {
        let mut backoff = Backoff::new();
        let mut first = true;
        loop {
            if *stop.borrow() {
                return self.final_flush();
            }
            if !first {
                self.stats.reconnects.fetch_add(1, Relaxed);
            }
            self.sink.append(&Record::Restart {
                from: self.boundary.clone(),
            })?;
            self.tx = None;
            first = false;
            let up_since = Instant::now();
            let r = self.stream_once(stop.clone()).await;
            backoff.ended_after(up_since.elapsed());
            match r {
                Ok(()) => return self.final_flush(),
                Err(e) if e.is_relay_full() => {
                    self.stats.count_error(&e);
                    self.pause_while_full(&e, stop.clone()).await?;
                }
                Err(e) if e.is_transient() => {
                    self.stats.count_error(&e);
                    match self.sink.flush() {
                        Err(f) if f.is_relay_full() => {
                            self.pause_while_full(&f, stop.clone()).await?
                        }
                        r => r?,
                    }
                    let wait = backoff.next_wait();
                    warn!(error = %e, position = %self.boundary, backoff_ms = wait.as_millis() as u64, "binlog connection lost; reconnecting from the last transaction boundary");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    let _ = self.sink.flush();
                    return Err(e);
                }
            }
        }
    }

    /// The flush on stop. With no room left, what waits in the writer is
    /// dropped: it is read again from the source at the next start (the
    /// relay log on disk ends at a whole record, and the services' positions
    /// are on their targets).
    fn final_flush(&mut self) -> Result<()> {
        match self.sink.flush() {
            Err(e) if e.is_relay_full() => {
                warn!(error = %e, position = %self.boundary, "stopping with the relay log full: what was not written is read from the source again at the next start");
                Ok(())
            }
            r => r,
        }
    }

    /// Waits, with the binlog connection closed, until the sink has room
    /// again (`why` says what is full), retrying the write of what waits in
    /// it. The services go on applying what is stored, which frees space.
    /// Reading then resumes from the last transaction boundary, as after a
    /// reconnect: nothing read before the pause is lost or doubled.
    async fn pause_while_full(
        &mut self,
        why: &Error,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<()> {
        self.stats.relay_full.store(1, Relaxed);
        error!(position = %self.boundary, error = %why, hint = why.hint().unwrap_or_default(), "the relay log has no room: reading the source is paused (lag grows) while the services apply what is stored; it resumes by itself");
        let since = Instant::now();
        let mut told = Instant::now();
        let mut reason;
        let resumed = loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|s| *s) => break false,
            }
            match self.sink.flush().and_then(|()| self.sink.make_room()) {
                Ok(()) => match self.sink.full(true) {
                    None => break true,
                    Some(w) => reason = w,
                },
                Err(e) if e.is_relay_full() => reason = e.to_string(),
                Err(e) => {
                    self.stats.relay_full.store(0, Relaxed);
                    return Err(e);
                }
            }
            if told.elapsed() >= Duration::from_secs(30) {
                told = Instant::now();
                error!(paused_s = since.elapsed().as_secs(), reason = %reason, "reading the source is still paused: the relay log has no room");
            }
        };
        self.stats.relay_full.store(0, Relaxed);
        if resumed {
            info!(paused_ms = since.elapsed().as_millis() as u64, position = %self.boundary, "the relay log has room again: reading the source resumes from the last transaction boundary");
        }
        Ok(())
    }

    async fn stream_once(&mut self, mut stop: tokio::sync::watch::Receiver<bool>) -> Result<()> {
        let opts = self
            .cfg
            .source
            .binlog_client_options()
            .map_err(|m| Error::definite(m, "fix [source] ca, or the file's permissions"))?;
        let mut conn = BinlogClient::connect(&opts).await.map_err(|e| {
            client_error(e, format!("connecting to the source {}", self.cfg.source))
        })?;
        if self.flavor.is_mariadb() {
            conn.execute("SET @mariadb_slave_capability = 4")
                .await
                .map_err(|e| client_error(e, "setting @mariadb_slave_capability"))?;
        }
        // The dump thread sends CRC32 trailers only to a replica that says
        // it reads them; the decoder checks every one.
        conn.execute(&format!(
            "SET @master_binlog_checksum = @@global.binlog_checksum, @source_binlog_checksum = @@global.binlog_checksum, @master_heartbeat_period = {}",
            SERVER_HEARTBEAT.as_nanos()
        ))
        .await
        .map_err(|e| client_error(e, "setting the checksum and heartbeat period"))?;
        let file = self.boundary.file.clone();
        self.requested_file = file.clone();
        self.file = file.clone();
        let by_gtid = match (&self.gtid, self.auto_position && self.gtid_complete) {
            (GtidState::MySql(set), true) if !set.is_empty() => Some(set.clone()),
            _ => None,
        };
        let from = match &by_gtid {
            Some(set) => DumpFrom::Gtid(set),
            None => DumpFrom::File {
                name: &file,
                pos: self.boundary.pos,
            },
        };
        conn.dump(self.cfg.server_id, from)
            .await
            .map_err(|e| self.stream_error(e))?;
        info!(
            position = %self.boundary,
            by = if by_gtid.is_some() { "gtid auto-position" } else { "file and offset" },
            tls = conn.is_secure(),
            "streaming the source binlog"
        );
        let mut decoder = Decoder::new();
        let mut events: Vec<(EventHeader, Event)> = Vec::new();
        // On stop, finish the transaction being read (so its records are
        // whole), but never wait more than this for its end.
        let mut stop_since: Option<Instant> = None;
        let (mut seen, mut heard_at) = (conn.bytes_received(), Instant::now());
        loop {
            if conn.bytes_received() != seen {
                (seen, heard_at) = (conn.bytes_received(), Instant::now());
            } else if heard_at.elapsed() > STALLED_AFTER {
                return Err(Error::Transient(format!(
                    "the binlog connection to the source {} has read nothing for {}s although the source sends a heartbeat every {}ms: the connection stalled (a firewall or NAT may have dropped it)",
                    self.cfg.source,
                    heard_at.elapsed().as_secs(),
                    SERVER_HEARTBEAT.as_millis()
                )));
            }
            if *stop.borrow() {
                let since = *stop_since.get_or_insert_with(Instant::now);
                if self.tx.is_none() || since.elapsed() > Duration::from_secs(5) {
                    return Ok(());
                }
            }
            // Between transactions: is there room for the next one?
            if self.tx.is_none() {
                if let Some(why) = self.sink.full(false) {
                    self.sink.flush()?;
                    return Err(Error::RelayFull(why));
                }
            }
            // `next_event` is cancel-safe: a timeout or a stop signal never
            // loses bytes of a half-read event.
            let next = tokio::select! {
                n = tokio::time::timeout(Duration::from_millis(5), conn.next_event()) => n,
                _ = stop.changed() => continue,
            };
            let raw = match next {
                Err(_) => {
                    self.idle_flush()?;
                    continue;
                }
                Ok(Ok(None)) => {
                    return Err(Error::Transient(
                        "the source closed the binlog stream".into(),
                    ))
                }
                Ok(Err(e)) => return Err(self.stream_error(e)),
                Ok(Ok(Some(raw))) => raw,
            };
            self.stats.events.fetch_add(1, Relaxed);
            self.stats.bytes.fetch_add(raw.len() as u64, Relaxed);
            let log_pos = raw
                .get(13..17)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let offset = u64::from(log_pos).saturating_sub(raw.len() as u64);
            self.feed_raw(&mut decoder, raw, offset, &mut events)
                .await?;
            // Only time spent waiting on the socket counts as silence.
            (seen, heard_at) = (conn.bytes_received(), Instant::now());
        }
    }

    fn stream_error(&self, e: ClientError) -> Error {
        if let ClientError::Server {
            code: 1236,
            message,
            ..
        } = &e
        {
            return Error::definite(
                format!("the source cannot send its binlog from {}: {message}", self.boundary),
                "the binlog dropship needs was purged (or the server id is in use by another replica). Nothing was written. Copy the services whose position is older than the source's first binlog again from scratch with `dropship replicate --recopy SERVICE` (see `dropship status` for their positions), and keep binlogs longer (binlog_expire_logs_seconds)",
            );
        }
        client_error(e, format!("reading the binlog from {}", self.boundary))
    }

    fn idle_flush(&mut self) -> Result<()> {
        if self.dirty {
            self.sink.flush()?;
            self.dirty = false;
            self.last_flush = Instant::now();
        }
        if self.tx.is_none() && self.unreported && self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.progress(self.boundary_ts)?;
        }
        Ok(())
    }

    fn progress(&mut self, ts: u32) -> Result<()> {
        self.sink.append(&Record::Progress {
            pos: self.boundary.clone(),
            ts,
        })?;
        self.sink.flush()?;
        self.dirty = false;
        self.last_flush = Instant::now();
        self.last_progress = Instant::now();
        self.unreported = false;
        Ok(())
    }

    /// The source sent a heartbeat event: it has nothing after what we have
    /// read, so everything up to our boundary is current as of now. This is
    /// evidence from the server (a cut-off stream gets no heartbeats), so lag
    /// reads 0 on an idle source and grows when the stream stalls.
    fn server_heartbeat(&mut self) -> Result<()> {
        if self.tx.is_some() {
            return Ok(());
        }
        let now = now_epoch();
        self.stats.last_source_ts.store(now, Relaxed);
        self.progress(now as u32)
    }

    async fn handle(&mut self, h: EventHeader, e: Event, outer_next: u64) -> Result<()> {
        match e {
            Event::Rotate { file, position } => {
                let name = if file.len() == self.requested_file.len() + 4
                    && file.starts_with(&self.requested_file)
                {
                    // mysql_async issue 189: MariaDB's first rotate keeps 4 checksum bytes.
                    self.requested_file.clone()
                } else {
                    file
                };
                self.file = name.clone();
                if self.tx.is_none() && !h.artificial {
                    self.boundary = Position {
                        file: name,
                        pos: position,
                        gtid: self.gtid.to_string(),
                    };
                    self.unreported = true;
                }
            }
            Event::Gtid { gtid, .. } => self.open_tx(Some(gtid), h.timestamp, false),
            Event::AnonymousGtid => self.open_tx(None, h.timestamp, false),
            Event::GtidSet(s) => {
                if self.gtid.is_empty() {
                    self.gtid = GtidState::parse(self.flavor.is_mariadb(), &s);
                    self.gtid_complete = self.tx.is_none() && !h.artificial;
                }
                self.advance_outside_tx(&h);
            }
            Event::Query { database, sql } => self.query(h, database, sql, outer_next).await?,
            Event::Rows { table, changes } => self.rows(&table, changes).await?,
            Event::Xid(_) => self.commit(&h, outer_next)?,
            Event::Incident { code, message } => {
                return Err(Error::definite(format!("the source wrote an INCIDENT event ({code}: {message}) at {}:{}: events may be missing from its binlog", self.file, h.offset), "verify the affected services with `dropship verify` and recopy them if they differ"));
            }
            Event::TableMap(_) | Event::RowsQuery(_) | Event::Ignored { .. } => {}
            Event::FormatDescription { .. } | Event::BinlogCheckpoint(_) | Event::Stop => {
                self.advance_outside_tx(&h)
            }
            Event::Heartbeat => self.server_heartbeat()?,
        }
        Ok(())
    }
}

/// A replication-connection error as the rest of dropship sees errors: a
/// server error keeps its code (so retries and hints work as for any query),
/// a dropped connection is transient, a protocol or login problem is
/// definite.
fn client_error(e: ClientError, what: impl Into<String>) -> Error {
    let what = what.into();
    match e {
        ClientError::Io(io) => Error::Transient(format!("{what}: {io}")),
        ClientError::Server {
            code,
            state,
            message,
        } => Error::Db {
            what,
            source: mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message,
                state,
            }),
        },
        ClientError::Protocol(m) => Error::definite(
            format!("{what}: {m}"),
            "see the message; the binlog connection uses the [source] url, password and tls settings",
        ),
    }
}

fn decode_failed(
    file: &str,
    log_pos: u32,
    raw: &[u8],
    e: dropship_mysql::binlog::DecodeError,
) -> Error {
    let see = "run `dropship binlog inspect` on that binlog file to see the event; report it if dropship should support it";
    let hint = match e.hint() {
        Some(h) => format!("{h}; {see}"),
        None => see.to_string(),
    };
    Error::definite(
        format!(
            "decoding the binlog at {file}:{log_pos}: {e} (event bytes: {})",
            hex_prefix(raw)
        ),
        hint,
    )
}

fn hex_prefix(b: &[u8]) -> String {
    let n = b.len().min(48);
    let mut s: String = b[..n].iter().map(|x| format!("{x:02x}")).collect();
    if b.len() > n {
        s.push_str(&format!("... ({} bytes)", b.len()));
    }
    s
}
