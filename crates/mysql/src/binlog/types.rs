//! Event type codes of MySQL and MariaDB binlogs, and their names.
//!
//! Codes are the `type_code` byte of the event header. MySQL uses 0–42 (100
//! is Aurora's padding); MariaDB adds 160–171. Names follow the servers'
//! `*_EVENT` constants without the suffix.

pub const UNKNOWN: u8 = 0;
pub const START_V3: u8 = 1;
pub const QUERY: u8 = 2;
pub const STOP: u8 = 3;
pub const ROTATE: u8 = 4;
pub const INTVAR: u8 = 5;
pub const LOAD: u8 = 6;
pub const SLAVE: u8 = 7;
pub const CREATE_FILE: u8 = 8;
pub const APPEND_BLOCK: u8 = 9;
pub const EXEC_LOAD: u8 = 10;
pub const DELETE_FILE: u8 = 11;
pub const NEW_LOAD: u8 = 12;
pub const RAND: u8 = 13;
pub const USER_VAR: u8 = 14;
pub const FORMAT_DESCRIPTION: u8 = 15;
pub const XID: u8 = 16;
pub const BEGIN_LOAD_QUERY: u8 = 17;
pub const EXECUTE_LOAD_QUERY: u8 = 18;
pub const TABLE_MAP: u8 = 19;
pub const PRE_GA_WRITE_ROWS: u8 = 20;
pub const PRE_GA_UPDATE_ROWS: u8 = 21;
pub const PRE_GA_DELETE_ROWS: u8 = 22;
pub const WRITE_ROWS_V1: u8 = 23;
pub const UPDATE_ROWS_V1: u8 = 24;
pub const DELETE_ROWS_V1: u8 = 25;
pub const INCIDENT: u8 = 26;
pub const HEARTBEAT: u8 = 27;
pub const IGNORABLE: u8 = 28;
pub const ROWS_QUERY: u8 = 29;
pub const WRITE_ROWS_V2: u8 = 30;
pub const UPDATE_ROWS_V2: u8 = 31;
pub const DELETE_ROWS_V2: u8 = 32;
pub const GTID: u8 = 33;
pub const ANONYMOUS_GTID: u8 = 34;
pub const PREVIOUS_GTIDS: u8 = 35;
pub const TRANSACTION_CONTEXT: u8 = 36;
pub const VIEW_CHANGE: u8 = 37;
pub const XA_PREPARE: u8 = 38;
pub const PARTIAL_UPDATE_ROWS: u8 = 39;
pub const TRANSACTION_PAYLOAD: u8 = 40;
pub const HEARTBEAT_V2: u8 = 41;
pub const GTID_TAGGED: u8 = 42;
pub const AURORA_PADDING: u8 = 100;
pub const MARIADB_ANNOTATE_ROWS: u8 = 160;
pub const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
pub const MARIADB_GTID: u8 = 162;
pub const MARIADB_GTID_LIST: u8 = 163;
pub const MARIADB_START_ENCRYPTION: u8 = 164;
pub const MARIADB_QUERY_COMPRESSED: u8 = 165;
pub const MARIADB_DELETE_ROWS_COMPRESSED_V2: u8 = 171;

/// Header flag: the binlog file is still open (cleared for the FDE checksum).
pub const LOG_EVENT_BINLOG_IN_USE_F: u16 = 0x1;
/// Header flag: artificial event (e.g. the fake ROTATE at a dump's start).
pub const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;
/// Header flag: a reader that does not know the event may skip it.
pub const LOG_EVENT_IGNORABLE_F: u16 = 0x80;

/// The server's name for an event type code.
pub fn name(code: u8) -> &'static str {
    match code {
        UNKNOWN => "UNKNOWN",
        START_V3 => "START_V3",
        QUERY => "QUERY",
        STOP => "STOP",
        ROTATE => "ROTATE",
        INTVAR => "INTVAR",
        LOAD => "LOAD",
        SLAVE => "SLAVE",
        CREATE_FILE => "CREATE_FILE",
        APPEND_BLOCK => "APPEND_BLOCK",
        EXEC_LOAD => "EXEC_LOAD",
        DELETE_FILE => "DELETE_FILE",
        NEW_LOAD => "NEW_LOAD",
        RAND => "RAND",
        USER_VAR => "USER_VAR",
        FORMAT_DESCRIPTION => "FORMAT_DESCRIPTION",
        XID => "XID",
        BEGIN_LOAD_QUERY => "BEGIN_LOAD_QUERY",
        EXECUTE_LOAD_QUERY => "EXECUTE_LOAD_QUERY",
        TABLE_MAP => "TABLE_MAP",
        PRE_GA_WRITE_ROWS => "PRE_GA_WRITE_ROWS",
        PRE_GA_UPDATE_ROWS => "PRE_GA_UPDATE_ROWS",
        PRE_GA_DELETE_ROWS => "PRE_GA_DELETE_ROWS",
        WRITE_ROWS_V1 => "WRITE_ROWS_V1",
        UPDATE_ROWS_V1 => "UPDATE_ROWS_V1",
        DELETE_ROWS_V1 => "DELETE_ROWS_V1",
        INCIDENT => "INCIDENT",
        HEARTBEAT => "HEARTBEAT",
        IGNORABLE => "IGNORABLE",
        ROWS_QUERY => "ROWS_QUERY",
        WRITE_ROWS_V2 => "WRITE_ROWS_V2",
        UPDATE_ROWS_V2 => "UPDATE_ROWS_V2",
        DELETE_ROWS_V2 => "DELETE_ROWS_V2",
        GTID => "GTID",
        ANONYMOUS_GTID => "ANONYMOUS_GTID",
        PREVIOUS_GTIDS => "PREVIOUS_GTIDS",
        TRANSACTION_CONTEXT => "TRANSACTION_CONTEXT",
        VIEW_CHANGE => "VIEW_CHANGE",
        XA_PREPARE => "XA_PREPARE",
        PARTIAL_UPDATE_ROWS => "PARTIAL_UPDATE_ROWS",
        TRANSACTION_PAYLOAD => "TRANSACTION_PAYLOAD",
        HEARTBEAT_V2 => "HEARTBEAT_V2",
        GTID_TAGGED => "GTID_TAGGED",
        AURORA_PADDING => "AURORA_PADDING",
        MARIADB_ANNOTATE_ROWS => "MARIADB_ANNOTATE_ROWS",
        MARIADB_BINLOG_CHECKPOINT => "MARIADB_BINLOG_CHECKPOINT",
        MARIADB_GTID => "MARIADB_GTID",
        MARIADB_GTID_LIST => "MARIADB_GTID_LIST",
        MARIADB_START_ENCRYPTION => "MARIADB_START_ENCRYPTION",
        165 => "MARIADB_QUERY_COMPRESSED",
        166 => "MARIADB_WRITE_ROWS_COMPRESSED_V1",
        167 => "MARIADB_UPDATE_ROWS_COMPRESSED_V1",
        168 => "MARIADB_DELETE_ROWS_COMPRESSED_V1",
        169 => "MARIADB_WRITE_ROWS_COMPRESSED_V2",
        170 => "MARIADB_UPDATE_ROWS_COMPRESSED_V2",
        171 => "MARIADB_DELETE_ROWS_COMPRESSED_V2",
        _ => "UNKNOWN",
    }
}
