//! The transaction state machine: where a source transaction starts (GTID,
//! BEGIN, or an implicit one), its `Begin` record (written only once it
//! touches a mapped table), DDL on mapped tables, and its commit: the one
//! place the boundary, the GTID state and the relay's Commit move together.

use super::*;

pub(super) struct Tx {
    pub(super) gtid: Option<Gtid>,
    pub(super) ts: u32,
    pub(super) begun: bool,
    pub(super) explicit: bool,
    pub(super) start: Position,
    /// The transaction wrote the heartbeat row (see `heartbeat.rs`).
    pub(super) heartbeat: bool,
}

impl<S: RecordSink> Reader<S> {
    pub(super) fn begin(&mut self) -> Result<()> {
        let Some(tx) = self.tx.as_mut() else {
            return Ok(());
        };
        if !tx.begun {
            tx.begun = true;
            let rec = Record::Begin {
                gtid: tx.gtid.as_ref().map(|g| g.to_string()).unwrap_or_default(),
                ts: tx.ts,
                start: tx.start.clone(),
            };
            self.sink.append(&rec)?;
        }
        Ok(())
    }

    pub(super) fn open_tx(&mut self, gtid: Option<Gtid>, ts: u32, explicit: bool) {
        self.tx = Some(Tx {
            gtid,
            ts,
            begun: false,
            explicit,
            start: self.boundary.clone(),
            heartbeat: false,
        });
    }

    pub(super) fn commit(&mut self, h: &EventHeader, outer_next: u64) -> Result<()> {
        let next = if h.next_pos != 0 {
            h.next_pos
        } else {
            outer_next
        };
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        // The GTID state moves only once the commit is in the sink: a commit
        // the sink refused (no room) is read again after the pause, and a
        // GTID already counted would make the source skip it.
        let gtid = tx.gtid.as_ref().map(|g| {
            let mut s = self.gtid.clone();
            s.add(g);
            s
        });
        let pos = Position {
            file: self.file.clone(),
            pos: next,
            gtid: gtid.as_ref().unwrap_or(&self.gtid).to_string(),
        };
        self.stats
            .last_source_ts
            .store(i64::from(h.timestamp), Relaxed);
        self.boundary_ts = h.timestamp;
        if tx.begun {
            self.sink.append(&Record::Commit {
                pos: pos.clone(),
                ts: h.timestamp,
            })?;
            self.dirty = true;
            if self.last_flush.elapsed() >= Duration::from_millis(2) {
                self.sink.flush()?;
                self.dirty = false;
                self.last_flush = Instant::now();
            }
        }
        if let Some(g) = gtid {
            self.gtid = g;
        }
        self.boundary = pos;
        self.unreported = !tx.begun;
        if let Ok(mut p) = self.stats.position.lock() {
            *p = self.boundary.to_string();
        }
        if tx.heartbeat {
            self.stats.heartbeats_read.fetch_add(1, Relaxed);
        }
        if (tx.heartbeat && !tx.begun) || self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.sink.append(&Record::Progress {
                pos: self.boundary.clone(),
                ts: h.timestamp,
            })?;
            self.dirty = true;
            self.last_progress = Instant::now();
            self.unreported = false;
        }
        Ok(())
    }

    /// Whether a statement-format DML writes a mapped table. A statement whose
    /// table cannot be told (multi-table) counts when its default database is
    /// one a service reads from. Tools like pt-table-checksum write their own
    /// tables in statement format: those are not mapped and pass.
    pub(super) fn dml_touches_mapped(&mut self, sql: &str, database: &str) -> bool {
        match dropship_mysql::ddl::dml_table(sql) {
            Some((db, t)) => {
                let db = db.unwrap_or_else(|| database.to_string());
                self.mapped(&db, &t)
            }
            None => self
                .cfg
                .services
                .iter()
                .any(|s| s.source_databases().iter().any(|d| d == database)),
        }
    }

    /// Events between transactions (format description, GTID list,
    /// checkpoint) move the resumable position past them, so an idle source's
    /// end position is reachable.
    pub(super) fn advance_outside_tx(&mut self, h: &EventHeader) {
        if self.tx.is_none()
            && h.next_pos > 0
            && !h.artificial
            && h.next_pos > self.boundary.pos
            && self.file == self.boundary.file
        {
            self.boundary.pos = h.next_pos;
            self.boundary_ts = h.timestamp;
            self.unreported = true;
            if let Ok(mut p) = self.stats.position.lock() {
                *p = self.boundary.to_string();
            }
        }
    }

    pub(super) async fn query(
        &mut self,
        h: EventHeader,
        database: String,
        sql: Vec<u8>,
        outer_next: u64,
    ) -> Result<()> {
        let text = String::from_utf8_lossy(&sql).into_owned();
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("BEGIN") || trimmed.eq_ignore_ascii_case("XA START") {
            match self.tx.as_mut() {
                Some(tx) => tx.explicit = true,
                None => self.open_tx(None, h.timestamp, true),
            }
            return Ok(());
        }
        if trimmed.eq_ignore_ascii_case("COMMIT") {
            return self.commit(&h, outer_next);
        }
        if trimmed.eq_ignore_ascii_case("ROLLBACK") {
            // Only non-transactional changes survive a logged ROLLBACK; nothing to apply.
            return self.commit(&h, outer_next);
        }
        if self.tx.is_none() {
            self.open_tx(None, h.timestamp, false);
        }
        if let Some(ddl) = dropship_mysql::ddl::parse(trimmed) {
            let tables: Vec<(String, String)> = ddl
                .tables
                .iter()
                .map(|(d, t)| (d.clone().unwrap_or_else(|| database.clone()), t.clone()))
                .collect();
            // Any cached plan may name stale columns now.
            self.plans.clear();
            for (d, t) in &tables {
                self.schemas.invalidate(d, t);
                if let Some(m) = self.owners.get_mut(d) {
                    m.remove(t);
                }
            }
            if tables
                .iter()
                .any(|(d, t)| self.cfg.services.iter().any(|s| s.claims(d, t)))
            {
                self.begin()?;
                self.sink.append(&Record::Ddl(DdlRecord {
                    database: database.clone(),
                    sql: text.clone(),
                    tables,
                }))?;
                info!(database = %database, ddl = %text, "schema change on a mapped table");
            }
        } else if is_dml(trimmed) && self.dml_touches_mapped(trimmed, &database) {
            return Err(Error::definite(
                format!("statement-format DML in database {database} at {}:{}: {}", self.file, h.offset, truncate(trimmed, 120)),
                "set binlog_format=ROW on the source (SET GLOBAL binlog_format='ROW', and in its config), then restart replicate",
            ));
        }
        let explicit = self.tx.as_ref().is_some_and(|t| t.explicit);
        if !explicit {
            self.commit(&h, outer_next)?;
        }
        Ok(())
    }
}

pub(super) fn is_dml(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "LOAD"
    )
}

pub(super) fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}
