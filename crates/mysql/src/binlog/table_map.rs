//! TABLE_MAP events: which table (and which column types) a rows event means.
//!
//! ```text
//! post-header: table_id (u48, or u32 when the FDE says post-header is 6) | flags u16
//! body:
//! +--------+----+---+---------+----+---+--------------+-----------------+
//! | db_len | db | 0 | tbl_len | tbl| 0 | ncols lenenc | col_type[ncols] |
//! |   u8   |    |   |   u8    |    |   |              |   u8 each       |
//! +--------+----+---+---------+----+---+--------------+-----------------+
//! | meta_len lenenc | meta block | null bitmap (ncols+7)/8 | optional metadata TLVs |
//! +-----------------+------------+-------------------------+------------------------+
//! optional metadata TLV: type u8 | length lenenc | value   (MySQL 8.0.1+, MariaDB 10.5+)
//! ```
//!
//! Column metadata is stored in [`ColumnMeta::meta`] the way the server's
//! `table_def` reads it: NEWDECIMAL / STRING / VAR_STRING / ENUM / SET as
//! `byte0 << 8 | byte1`; BIT and VARCHAR as `byte0 | byte1 << 8`; one-byte
//! metadata as is; none as 0. The meta block must be consumed exactly, so an
//! unknown column type is an error instead of shifting every later column.

use super::cursor::{bit, bit_msb, Cursor, Short};
use crate::event::{ColumnMeta, TableMap};

pub mod col {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const TYPED_ARRAY: u8 = 244;
    pub const VECTOR: u8 = 242;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

/// Why a table map could not be read; the decoder adds offset and type.
#[derive(Debug)]
pub enum TableMapError {
    Short(Short),
    Malformed(String),
}

impl From<Short> for TableMapError {
    fn from(s: Short) -> Self {
        TableMapError::Short(s)
    }
}

/// Reads the table_id of a TABLE_MAP or rows event post-header.
pub fn read_table_id(c: &mut Cursor<'_>, post_header_len: u8) -> Result<u64, Short> {
    if post_header_len == 6 {
        Ok(u64::from(c.u32("table_id")?))
    } else {
        c.uint_le(6, "table_id")
    }
}

/// Columns the SIGNEDNESS bitmap covers: every numeric type and YEAR, on both
/// flavors (MySQL's `has_signedess_information_type`). Getting this wrong
/// shifts every later column's signedness: seen on MariaDB 10.11
/// (`TINYINT UNSIGNED` after a YEAR decoded as signed) and on MySQL 9.7 (a
/// signed `INT` after a YEAR decoded as unsigned, -1 as 4294967295). MySQL
/// writes 0 for YEAR, MariaDB 1; the YEAR decoder ignores the bit.
fn is_numeric(t: u8) -> bool {
    use col::*;
    matches!(
        t,
        TINY | SHORT | INT24 | LONG | LONGLONG | FLOAT | DOUBLE | NEWDECIMAL | DECIMAL | YEAR
    )
}

fn is_character(c: &ColumnMeta) -> bool {
    use col::*;
    matches!(
        c.real_type,
        STRING | VAR_STRING | VARCHAR | BLOB | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB
    )
}

fn is_enum_or_set(c: &ColumnMeta) -> bool {
    c.real_type == col::ENUM || c.real_type == col::SET
}

/// Parses a TABLE_MAP body (after the 19-byte header, without CRC).
pub fn parse(body: &[u8], post_header_len: u8) -> Result<TableMap, TableMapError> {
    let mut c = Cursor::new(body);
    let table_id = read_table_id(&mut c, post_header_len)?;
    c.skip(2, "table map flags")?;
    // Some post-header lengths are longer than what we read; skip the rest.
    let read = if post_header_len == 6 { 6 } else { 8 };
    c.skip(
        usize::from(post_header_len).saturating_sub(read),
        "post-header padding",
    )?;
    let db_len = c.u8("database name length")?;
    let database =
        String::from_utf8_lossy(c.bytes(usize::from(db_len), "database name")?).into_owned();
    c.skip(1, "database name NUL")?;
    let tbl_len = c.u8("table name length")?;
    let table = String::from_utf8_lossy(c.bytes(usize::from(tbl_len), "table name")?).into_owned();
    c.skip(1, "table name NUL")?;
    let ncols = c.lenenc_len("column count")?;
    let types = c.bytes(ncols, "column types")?;
    let meta_block = c.lenenc_bytes("column metadata")?;
    let nulls = c.bytes(ncols.div_ceil(8), "null bitmap")?;

    let mut m = Cursor::new(meta_block);
    let mut columns = Vec::with_capacity(ncols);
    for (i, &t) in types.iter().enumerate() {
        use col::*;
        let (meta, real_type) = match t {
            FLOAT | DOUBLE | BLOB | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | GEOMETRY | JSON | VECTOR | TIMESTAMP2
            | DATETIME2 | TIME2 => (u16::from(m.u8("one-byte column metadata")?), t),
            VARCHAR | BIT => (m.u16("two-byte column metadata")?, t),
            NEWDECIMAL | VAR_STRING | STRING | ENUM | SET => {
                let b0 = m.u8("column metadata")?;
                let b1 = m.u8("column metadata")?;
                let meta = (u16::from(b0) << 8) | u16::from(b1);
                let real = if t == STRING || t == VAR_STRING {
                    if b0 & 0x30 != 0x30 {
                        b0 | 0x30
                    } else if b0 == 0 {
                        t
                    } else {
                        b0
                    }
                } else {
                    t
                };
                (meta, real)
            }
            DECIMAL | TINY | SHORT | LONG | NULL | TIMESTAMP | LONGLONG | INT24 | DATE | TIME | DATETIME | YEAR
            | NEWDATE => (0, t),
            TYPED_ARRAY => {
                return Err(TableMapError::Malformed(format!(
                    "column {i} of `{database}`.`{table}` is MYSQL_TYPE_TYPED_ARRAY, which only internal multi-valued indexes use"
                )))
            }
            other => {
                return Err(TableMapError::Malformed(format!(
                    "column {i} of `{database}`.`{table}` has unknown binlog type {other}"
                )))
            }
        };
        columns.push(ColumnMeta {
            type_code: t,
            meta,
            nullable: bit(nulls, i),
            name: None,
            unsigned: None,
            charset: None,
            enum_values: None,
            set_values: None,
            visible: None,
            real_type,
        });
    }
    if !m.is_empty() {
        return Err(TableMapError::Malformed(format!(
            "column metadata of `{database}`.`{table}` has {} unread bytes; a column type's metadata size is not what this decoder expects",
            m.left()
        )));
    }
    let mut primary_key = None;
    parse_optional(&mut c, &mut columns, &mut primary_key)?;
    Ok(TableMap {
        table_id,
        database,
        table,
        columns,
        primary_key,
    })
}

/// DEFAULT_CHARSET and ENUM_AND_SET_DEFAULT_CHARSET: a default, then (index among the `applies` columns,
/// charset) pairs for the columns that differ.
fn default_charsets(
    v: &mut Cursor<'_>,
    columns: &mut [ColumnMeta],
    applies: fn(&ColumnMeta) -> bool,
    what: &'static str,
) -> Result<(), TableMapError> {
    let default = v.lenenc(what)? as u16;
    let mut overrides = Vec::new();
    while !v.is_empty() {
        let idx = v.lenenc(what)?;
        let cs = v.lenenc(what)? as u16;
        overrides.push((idx, cs));
    }
    for (n, col) in columns.iter_mut().filter(|c| applies(c)).enumerate() {
        let cs = overrides
            .iter()
            .find(|(i, _)| *i == n as u64)
            .map_or(default, |p| p.1);
        col.charset = Some(cs);
    }
    Ok(())
}

/// COLUMN_CHARSET and ENUM_AND_SET_COLUMN_CHARSET: one charset per `applies` column, in order.
fn column_charsets(
    v: &mut Cursor<'_>,
    columns: &mut [ColumnMeta],
    applies: fn(&ColumnMeta) -> bool,
    what: &'static str,
) -> Result<(), TableMapError> {
    for col in columns.iter_mut().filter(|c| applies(c)) {
        if v.is_empty() {
            break;
        }
        col.charset = Some(v.lenenc(what)? as u16);
    }
    Ok(())
}

fn parse_optional(
    c: &mut Cursor<'_>,
    columns: &mut [ColumnMeta],
    primary_key: &mut Option<Vec<usize>>,
) -> Result<(), TableMapError> {
    while !c.is_empty() {
        let kind = c.u8("optional metadata type")?;
        let value = c.lenenc_bytes("optional metadata value")?;
        let mut v = Cursor::new(value);
        match kind {
            // SIGNEDNESS: MSB-first bitmap over numeric columns.
            1 => {
                for (n, col) in columns
                    .iter_mut()
                    .filter(|c| is_numeric(c.type_code))
                    .enumerate()
                {
                    col.unsigned = Some(bit_msb(value, n));
                }
            }
            // DEFAULT_CHARSET: default, then (character-column index, charset) pairs.
            2 => default_charsets(&mut v, columns, is_character, "charset")?,
            // COLUMN_CHARSET: one lenenc per character column.
            3 => column_charsets(&mut v, columns, is_character, "column charset")?,
            // COLUMN_NAME: one lenenc string per column.
            4 => {
                for col in columns.iter_mut() {
                    if v.is_empty() {
                        break;
                    }
                    col.name =
                        Some(String::from_utf8_lossy(v.lenenc_bytes("column name")?).into_owned());
                }
            }
            // SET_STR_VALUE / ENUM_STR_VALUE: per SET/ENUM column, count then strings.
            5 | 6 => {
                let want = if kind == 5 { col::SET } else { col::ENUM };
                for col in columns.iter_mut().filter(|c| c.real_type == want) {
                    if v.is_empty() {
                        break;
                    }
                    let n = v.lenenc_len("member count")?;
                    let mut members = Vec::with_capacity(n);
                    for _ in 0..n {
                        members.push(v.lenenc_bytes("member")?.to_vec());
                    }
                    if kind == 5 {
                        col.set_values = Some(members);
                    } else {
                        col.enum_values = Some(members);
                    }
                }
            }
            // SIMPLE_PRIMARY_KEY: column indexes.
            8 => {
                let mut pk = Vec::new();
                while !v.is_empty() {
                    pk.push(v.lenenc("primary key column")? as usize);
                }
                *primary_key = Some(pk);
            }
            // PRIMARY_KEY_WITH_PREFIX: (index, prefix length) pairs.
            9 => {
                let mut pk = Vec::new();
                while !v.is_empty() {
                    pk.push(v.lenenc("primary key column")? as usize);
                    v.lenenc("primary key prefix")?;
                }
                *primary_key = Some(pk);
            }
            // ENUM_AND_SET_DEFAULT_CHARSET.
            10 => default_charsets(&mut v, columns, is_enum_or_set, "enum/set charset")?,
            // ENUM_AND_SET_COLUMN_CHARSET.
            11 => column_charsets(&mut v, columns, is_enum_or_set, "enum/set column charset")?,
            // COLUMN_VISIBILITY: MSB-first bitmap over all columns.
            12 => {
                for (i, col) in columns.iter_mut().enumerate() {
                    col.visible = Some(bit_msb(value, i));
                }
            }
            // GEOMETRY_TYPE (7), VECTOR_DIMENSIONALITY (13) and unknown future
            // kinds carry nothing the model keeps; their length lets us skip them.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `CREATE TABLE y (id INT, y YEAR, b INT, c INT UNSIGNED)` as MySQL 9.7 maps it: the SIGNEDNESS bitmap
    /// holds one bit per numeric column and YEAR (0b0001 for id, y, b, c: only `c` unsigned).
    #[test]
    fn the_signedness_bitmap_has_a_bit_for_year() {
        let mut body = vec![109, 0, 0, 0, 0, 0, 1, 0];
        body.extend([1, b'x', 0, 1, b'y', 0]);
        body.push(4); // column count
        body.extend([col::LONG, col::YEAR, col::LONG, col::LONG]);
        body.push(0); // no column metadata
        body.push(0b1110); // nullability
        body.extend([1, 1, 0b0001_0000]); // SIGNEDNESS
        let tm = parse(&body, 8).expect("table map");
        let unsigned: Vec<Option<bool>> = tm.columns.iter().map(|c| c.unsigned).collect();
        assert_eq!(
            unsigned,
            [Some(false), Some(false), Some(false), Some(true)]
        );
    }
}
