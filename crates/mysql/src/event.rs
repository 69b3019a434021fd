//! The flavor-independent event model produced by the binlog decoder.
//!
//! The decoder ([`crate::binlog`]) turns raw MySQL or MariaDB binlog events into
//! these values; the flow (reader, relay log, appliers) and `dropship binlog
//! inspect` consume nothing else. Nothing here depends on which server wrote
//! the binlog.

use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What every decoded event carries from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventHeader {
    /// Seconds since the epoch when the statement began on the source.
    pub timestamp: u32,
    pub server_id: u32,
    /// Raw event type code.
    pub type_code: u8,
    /// Offset of the event's first byte in its binlog file (0 when unknown,
    /// e.g. inside a TRANSACTION_PAYLOAD).
    pub offset: u64,
    /// Position just after the event (the header's `log_pos`; 0 for artificial
    /// or embedded events).
    pub next_pos: u64,
    /// True for events the server marks artificial (e.g. the fake rotate at the
    /// start of a dump).
    pub artificial: bool,
}

/// A global transaction id, as either flavor writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Gtid {
    /// MySQL `uuid:gno`, optionally tagged (`uuid:tag:gno`, 8.3+).
    MySql {
        uuid: [u8; 16],
        tag: Option<String>,
        gno: u64,
    },
    /// MariaDB `domain-server-seq`.
    MariaDb { domain: u32, server: u32, seq: u64 },
}

/// One column as described by a TABLE_MAP event (and its optional metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMeta {
    /// Binlog column type code (`MYSQL_TYPE_*`), e.g. 3 for LONG, 246 NEWDECIMAL.
    pub type_code: u8,
    /// Type metadata from the table map (length, precision, fsp, ...), decoded
    /// as the server defines it for that type.
    pub meta: u16,
    pub nullable: bool,
    /// From optional metadata when present (binlog_row_metadata=FULL).
    pub name: Option<String>,
    /// From optional metadata (SIGNEDNESS) when present, for numeric columns.
    pub unsigned: Option<bool>,
    /// Collation id, when optional metadata gives it.
    pub charset: Option<u16>,
    /// ENUM / SET member strings, when optional metadata gives them.
    pub enum_values: Option<Vec<Vec<u8>>>,
    pub set_values: Option<Vec<Vec<u8>>>,
    /// COLUMN_VISIBILITY, when present.
    pub visible: Option<bool>,
    /// The real type for MYSQL_TYPE_STRING columns that are ENUM or SET.
    pub real_type: u8,
}

/// A TABLE_MAP: which table a following rows event refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMap {
    pub table_id: u64,
    pub database: String,
    pub table: String,
    pub columns: Vec<ColumnMeta>,
    /// Primary key column indexes, when optional metadata gives them.
    pub primary_key: Option<Vec<usize>>,
}

/// Insert, update or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RowKind {
    Insert,
    Update,
    Delete,
}

/// One row image: a value for every column of the table map, in column order.
/// `missing` lists the columns the image did not include (a non-FULL row
/// image); the flow refuses such images rather than guess.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowImage {
    pub values: Vec<Value>,
    pub missing: Vec<usize>,
    /// Partial JSON updates the decoder could not apply because the before
    /// image lacks the document (binlog_row_image=MINIMAL), kept as their
    /// diffs. Only a decoder built with
    /// [`Decoder::keeping_partial_json`](crate::binlog::Decoder::keeping_partial_json)
    /// fills it; every column listed here is also in `missing`, with a
    /// `Value::Null` value. Not serialized: relay records never carry it.
    #[serde(skip)]
    pub partial_json: Vec<PartialJson>,
}

/// The JSON diffs of one column of a partial after image.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialJson {
    pub column: usize,
    pub diffs: Vec<crate::binlog::json::Diff>,
}

/// One changed row. Inserts have only `after`, deletes only `before`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowChange {
    pub kind: RowKind,
    pub before: Option<RowImage>,
    pub after: Option<RowImage>,
}

/// A decoded event. Events inside a TRANSACTION_PAYLOAD are emitted one by one
/// as if they had been in the stream, with `offset` and `next_pos` of 0.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    FormatDescription {
        binlog_version: u16,
        server_version: String,
        checksum: bool,
    },
    /// Next events come from `file`, starting at `position`.
    Rotate {
        file: String,
        position: u64,
    },
    /// Start of a transaction with a GTID. `standalone` is MariaDB's FL_STANDALONE
    /// (a DDL or other statement that commits by itself, with no XID).
    Gtid {
        gtid: Gtid,
        standalone: bool,
    },
    /// MySQL ANONYMOUS_GTID: a transaction start without a GTID.
    AnonymousGtid,
    /// MySQL PREVIOUS_GTIDS as text (`uuid:1-5,...`), MariaDB GTID_LIST.
    GtidSet(String),
    /// A statement: `BEGIN`, `COMMIT`, DDL, or statement-format DML.
    Query {
        database: String,
        sql: Vec<u8>,
    },
    TableMap(Arc<TableMap>),
    /// A rows event (v1, v2 or partial-JSON) with every row decoded.
    Rows {
        table: Arc<TableMap>,
        changes: Vec<RowChange>,
    },
    /// XID: the transaction commits.
    Xid(u64),
    /// ROWS_QUERY (MySQL) or ANNOTATE_ROWS (MariaDB): the statement text.
    RowsQuery(Vec<u8>),
    /// MariaDB BINLOG_CHECKPOINT, naming the file.
    BinlogCheckpoint(String),
    Heartbeat,
    Stop,
    /// Events the design knowingly ignores (INTVAR, RAND, USER_VAR, Aurora padding,
    /// the ignorable flag). `what` names it for `inspect`.
    Ignored {
        what: &'static str,
    },
    /// INCIDENT: the source reports lost events. Always an error for the flow.
    Incident {
        code: u16,
        message: String,
    },
}
