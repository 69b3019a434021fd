//! `dropship binlog inspect FILE...`: binlog files as JSON lines, one per event.
//!
//! Each line is an object with `file`, `offset` (0 inside a TRANSACTION_PAYLOAD),
//! `type` (the server's event name) and, by event: `gtid` (text form, carried
//! on every event of its transaction), `table` (`db.table`), `op`
//! (`insert`/`update`/`delete`), `rows` (each with `before`/`after` maps from
//! column name — or `@1`, `@2`… when the table map has no names — to a value),
//! `sql` for statements. Values: integers as numbers, strings as UTF-8 text
//! when valid else `{"hex": "..."}`, DECIMAL as its exact text, temporal types
//! as text, JSON as the parsed document, columns missing from the image as
//! `{"missing": true}`, and a partial JSON update whose document the before
//! image lacks (binlog_row_image=MINIMAL) as its diffs in stored order:
//! `{"json_diff": [{"op": "replace", "path": "$.a", "value": 1},
//! {"op": "remove", "path": "$.b"}]}` (`op` is `replace`, `insert` or
//! `remove`; `remove` has no `value`).
//!
//! The first decode error stops the run: the lines before it are printed and
//! the error (naming file and offset) is returned.

use super::decoder::{Decoder, Sink};
use super::error::DecodeError;
use super::{file, json, types};
use crate::event::{Event, EventHeader, PartialJson, RowImage, RowKind, TableMap};
use crate::value::{civil_from_epoch, Fraction, Value};
use serde_json::{json, Value as J};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Totals of one inspect run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InspectSummary {
    pub files: u64,
    pub events: u64,
    pub row_changes: u64,
    pub transactions: u64,
}

/// Output is rendered into one buffer and handed to the writer in blocks of
/// about this size.
const BLOCK: usize = 1 << 18;

/// Prints every event of `paths`, in order, as JSON lines to `out`.
///
/// Rendering writes straight into a byte buffer: no intermediate JSON tree,
/// no per-value allocation; column keys are escaped once per table map. The
/// text is exactly what serde_json prints for the same document (compact,
/// keys in the order documented above; strings escaped the serde_json way).
/// (Decoding on a second thread was tried: on the shared 2-core machine it
/// cost CPU and gained no wall time, so it is not done.)
pub fn inspect(paths: &[PathBuf], out: &mut dyn Write) -> Result<InspectSummary, DecodeError> {
    let mut summary = InspectSummary::default();
    let mut r = Renderer::default();
    for path in paths {
        let name = path.display().to_string();
        r.start_file(&name);
        let mut sink = |h: EventHeader, e: Event| -> Result<(), DecodeError> {
            summary.events += 1;
            r.event(&h, &e, &mut summary);
            if r.buf.len() >= BLOCK {
                r.drain(out)?;
            }
            Ok(())
        };
        let s: &mut Sink<'_> = &mut sink;
        let res = file::read_file_with(path, &mut Decoder::keeping_partial_json(), s);
        r.drain(out)?;
        res?;
        summary.files += 1;
    }
    Ok(summary)
}

/// Column keys of one table map, escaped and ready to copy: `"name":`.
struct Keys {
    map: Arc<TableMap>,
    keys: Vec<Vec<u8>>,
}

#[derive(Default)]
struct Renderer {
    buf: Vec<u8>,
    /// `{"file":"<name>","offset":` for the current file.
    head: Vec<u8>,
    /// `,"gtid":"<gtid>"` of the open transaction, if any.
    gtid: Option<Vec<u8>>,
    keys: HashMap<u64, Keys>,
}

impl Renderer {
    fn start_file(&mut self, name: &str) {
        self.head.clear();
        self.head.extend_from_slice(b"{\"file\":");
        esc_str(&mut self.head, name);
        self.head.extend_from_slice(b",\"offset\":");
        self.gtid = None;
        self.keys.clear();
    }

    fn drain(&mut self, out: &mut dyn Write) -> Result<(), DecodeError> {
        out.write_all(&self.buf)
            .map_err(|err| DecodeError::Sink(format!("writing output: {err}")))?;
        self.buf.clear();
        Ok(())
    }

    fn keys_for(&mut self, tm: &Arc<TableMap>) -> &[Vec<u8>] {
        let fresh = match self.keys.get(&tm.table_id) {
            Some(k) => !Arc::ptr_eq(&k.map, tm) && *k.map != **tm,
            None => true,
        };
        if fresh {
            let keys = (0..tm.columns.len())
                .map(|i| {
                    let mut k = Vec::new();
                    match tm.columns.get(i).and_then(|c| c.name.as_deref()) {
                        Some(n) => esc_str(&mut k, n),
                        None => {
                            k.extend_from_slice(b"\"@");
                            int(&mut k, i as u64 + 1);
                            k.push(b'"');
                        }
                    }
                    k.push(b':');
                    k
                })
                .collect();
            self.keys.insert(
                tm.table_id,
                Keys {
                    map: tm.clone(),
                    keys,
                },
            );
        } else if let Some(k) = self.keys.get_mut(&tm.table_id) {
            // Same definition in a new Arc: keep the keys, track the Arc.
            if !Arc::ptr_eq(&k.map, tm) {
                k.map = tm.clone();
            }
        }
        self.keys
            .get(&tm.table_id)
            .map(|k| k.keys.as_slice())
            .unwrap_or(&[])
    }

    fn event(&mut self, h: &EventHeader, e: &Event, sum: &mut InspectSummary) {
        let b = &mut self.buf;
        b.extend_from_slice(&self.head);
        int(b, h.offset);
        b.extend_from_slice(b",\"type\":\"");
        // Event names are plain ASCII identifiers: nothing to escape.
        b.extend_from_slice(types::name(h.type_code).as_bytes());
        b.push(b'"');
        match e {
            Event::Gtid {
                gtid: g,
                standalone,
            } => {
                let mut t = b",\"gtid\":".to_vec();
                esc_str(&mut t, &g.to_string());
                self.gtid = Some(t);
                sum.transactions += 1;
                if *standalone {
                    b.extend_from_slice(b",\"standalone\":true");
                }
            }
            Event::AnonymousGtid => {
                self.gtid = None;
                sum.transactions += 1;
            }
            _ => {}
        }
        if let Some(g) = &self.gtid {
            b.extend_from_slice(g);
        }
        match e {
            Event::FormatDescription {
                binlog_version,
                server_version,
                checksum,
            } => {
                b.extend_from_slice(b",\"binlog_version\":");
                int(b, u64::from(*binlog_version));
                b.extend_from_slice(b",\"server_version\":");
                esc_str(b, server_version);
                b.extend_from_slice(b",\"checksum\":");
                b.extend_from_slice(if *checksum { b"true" } else { b"false" });
            }
            Event::Rotate { file, position } => {
                b.extend_from_slice(b",\"next_file\":");
                esc_str(b, file);
                b.extend_from_slice(b",\"position\":");
                int(b, *position);
            }
            Event::GtidSet(s) => {
                b.extend_from_slice(b",\"gtid_set\":");
                esc_str(b, s);
            }
            Event::Query { database, sql } => {
                b.extend_from_slice(b",\"database\":");
                esc_str(b, database);
                b.extend_from_slice(b",\"sql\":");
                bytes_into(b, sql);
            }
            Event::TableMap(tm) => {
                b.extend_from_slice(b",\"table\":");
                table_name(b, tm);
                b.extend_from_slice(b",\"table_id\":");
                int(b, tm.table_id);
                b.extend_from_slice(b",\"columns\":");
                int(b, tm.columns.len() as u64);
            }
            Event::Rows { table, changes } => {
                b.extend_from_slice(b",\"table\":");
                table_name(b, table);
                let op: &[u8] = match changes.first().map(|c| c.kind) {
                    Some(RowKind::Insert) => b",\"op\":\"insert\"",
                    Some(RowKind::Update) => b",\"op\":\"update\"",
                    Some(RowKind::Delete) => b",\"op\":\"delete\"",
                    None => b",\"op\":\"none\"",
                };
                b.extend_from_slice(op);
                sum.row_changes += changes.len() as u64;
                self.rows(table, changes);
            }
            Event::Xid(x) => {
                b.extend_from_slice(b",\"xid\":");
                int(b, *x);
            }
            Event::RowsQuery(q) => {
                b.extend_from_slice(b",\"sql\":");
                bytes_into(b, q);
            }
            Event::BinlogCheckpoint(f) => {
                b.extend_from_slice(b",\"checkpoint_file\":");
                esc_str(b, f);
            }
            Event::Ignored { what } => {
                b.extend_from_slice(b",\"ignored\":");
                esc_str(b, what);
            }
            Event::Incident { code, message } => {
                b.extend_from_slice(b",\"incident_code\":");
                int(b, u64::from(*code));
                b.extend_from_slice(b",\"message\":");
                esc_str(b, message);
            }
            Event::Gtid { .. } | Event::AnonymousGtid | Event::Heartbeat | Event::Stop => {}
        }
        self.buf.extend_from_slice(b"}\n");
        if matches!(e, Event::Xid(_)) {
            self.gtid = None;
        }
    }

    fn rows(&mut self, table: &Arc<TableMap>, changes: &[crate::event::RowChange]) {
        self.keys_for(table);
        let keys = match self.keys.get(&table.table_id) {
            Some(k) => &k.keys,
            None => return,
        };
        let b = &mut self.buf;
        b.extend_from_slice(b",\"rows\":[");
        for (n, c) in changes.iter().enumerate() {
            if n > 0 {
                b.push(b',');
            }
            b.push(b'{');
            if let Some(img) = &c.before {
                b.extend_from_slice(b"\"before\":");
                image_into(b, keys, img);
            }
            if let Some(img) = &c.after {
                if c.before.is_some() {
                    b.push(b',');
                }
                b.extend_from_slice(b"\"after\":");
                image_into(b, keys, img);
            }
            b.push(b'}');
        }
        b.push(b']');
    }
}

fn table_name(b: &mut Vec<u8>, tm: &TableMap) {
    // `db.table` as one string, escaped as a whole (same text as before).
    b.push(b'"');
    esc_body(b, tm.database.as_bytes());
    b.push(b'.');
    esc_body(b, tm.table.as_bytes());
    b.push(b'"');
}

fn image_into(b: &mut Vec<u8>, keys: &[Vec<u8>], img: &RowImage) {
    b.push(b'{');
    for (i, v) in img.values.iter().enumerate() {
        if i > 0 {
            b.push(b',');
        }
        match keys.get(i) {
            Some(k) => b.extend_from_slice(k),
            None => {
                b.extend_from_slice(b"\"@");
                int(b, i as u64 + 1);
                b.extend_from_slice(b"\":");
            }
        }
        if let Some(p) = img.partial_json.iter().find(|p| p.column == i) {
            json_diff_into(b, p);
        } else if !img.missing.is_empty() && img.missing.contains(&i) {
            b.extend_from_slice(b"{\"missing\":true}");
        } else {
            value_into(b, v);
        }
    }
    b.push(b'}');
}

/// `{"json_diff":[{"op":..,"path":..,"value":..},..]}`, values rendered as JSON columns are.
fn json_diff_into(b: &mut Vec<u8>, p: &PartialJson) {
    b.extend_from_slice(b"{\"json_diff\":[");
    for (n, d) in p.diffs.iter().enumerate() {
        if n > 0 {
            b.push(b',');
        }
        b.extend_from_slice(b"{\"op\":");
        esc_str(b, d.op_name());
        b.extend_from_slice(b",\"path\":");
        esc_str(b, &d.path);
        if let Some(v) = &d.value {
            let mut text = String::new();
            json::write(v, &mut text);
            b.extend_from_slice(b",\"value\":");
            value_into(b, &Value::Json(text));
        }
        b.push(b'}');
    }
    b.extend_from_slice(b"]}");
}

/// Appends `v` as inspect prints it (the same text as serializing [`value`]).
fn value_into(b: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => b.extend_from_slice(b"null"),
        Value::Int(i) => {
            if *i < 0 {
                b.push(b'-');
            }
            int(b, i.unsigned_abs());
        }
        Value::UInt(u) | Value::Bit(u) | Value::Set(u) => int(b, *u),
        Value::Float(f) => float(b, f64::from(*f)),
        Value::Double(d) => float(b, *d),
        Value::Decimal(s) => esc_str(b, s),
        Value::Bytes(x) => bytes_into(b, x),
        Value::Json(s) => match serde_json::from_str::<J>(s) {
            // Parsed and re-serialized, as before: key order and number
            // text stay what serde_json makes of the document.
            Ok(j) => {
                let _ = serde_json::to_writer(&mut *b, &j);
            }
            Err(_) => esc_str(b, s),
        },
        Value::Date { year, month, day } => {
            let mut st = Stack::new();
            st.push(b'"');
            st.date(i64::from(*year), u32::from(*month), u32::from(*day));
            st.push(b'"');
            st.put(b);
        }
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
        } => {
            let mut st = Stack::new();
            st.push(b'"');
            if *negative {
                st.push(b'-');
            }
            st.hms(*hours, u32::from(*minutes), u32::from(*seconds));
            st.frac(*micros);
            st.push(b'"');
            st.put(b);
        }
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } => {
            let mut st = Stack::new();
            st.push(b'"');
            st.date(i64::from(*year), u32::from(*month), u32::from(*day));
            st.push(b' ');
            st.hms(u32::from(*hour), u32::from(*minute), u32::from(*second));
            st.frac(*micros);
            st.push(b'"');
            st.put(b);
        }
        Value::Timestamp { secs, micros } => {
            if *secs == 0 && *micros == 0 {
                b.extend_from_slice(b"\"0000-00-00 00:00:00\"");
            } else {
                let (y, mo, d, hh, mi, s) = civil_from_epoch(*secs);
                let mut st = Stack::new();
                st.push(b'"');
                st.date(y, mo, d);
                st.push(b' ');
                st.hms(hh, mi, s);
                st.frac(*micros);
                for &c in b" UTC\"" {
                    st.push(c);
                }
                st.put(b);
            }
        }
        Value::Year(y) => int(b, u64::from(*y)),
        Value::Enum(e) => int(b, u64::from(*e)),
    }
}

const DIGITS2: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// A small stack buffer for one rendered value, copied out in one go.
struct Stack {
    a: [u8; 40],
    n: usize,
}

impl Stack {
    fn new() -> Stack {
        Stack { a: [0; 40], n: 0 }
    }
    fn push(&mut self, c: u8) {
        if let Some(slot) = self.a.get_mut(self.n) {
            *slot = c;
            self.n += 1;
        }
    }
    /// Two digits of `v % 100`.
    fn two(&mut self, v: u32) {
        let i = (v % 100) as usize * 2;
        self.push(DIGITS2[i]);
        self.push(DIGITS2[i + 1]);
    }
    /// `v` with at least `width` digits (zero-padded), like `{v:0width$}`.
    fn pad(&mut self, v: u64, width: usize) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        let mut n = v;
        while n >= 100 {
            let d = (n % 100) as usize * 2;
            n /= 100;
            i -= 2;
            tmp[i] = DIGITS2[d];
            tmp[i + 1] = DIGITS2[d + 1];
        }
        if n >= 10 {
            let d = n as usize * 2;
            i -= 2;
            tmp[i] = DIGITS2[d];
            tmp[i + 1] = DIGITS2[d + 1];
        } else {
            i -= 1;
            tmp[i] = b'0' + n as u8;
        }
        for _ in (tmp.len() - i)..width {
            self.push(b'0');
        }
        for &c in &tmp[i..] {
            self.push(c);
        }
    }
    fn date(&mut self, y: i64, mo: u32, d: u32) {
        if y < 0 {
            self.push(b'-');
            self.pad(y.unsigned_abs(), 3);
        } else {
            self.pad(y as u64, 4);
        }
        self.push(b'-');
        self.pad(u64::from(mo), 2);
        self.push(b'-');
        self.pad(u64::from(d), 2);
    }
    fn hms(&mut self, h: u32, m: u32, s: u32) {
        if h < 100 {
            self.two(h);
        } else {
            self.pad(u64::from(h), 2);
        }
        self.push(b':');
        if m < 100 && s < 100 {
            self.two(m);
            self.push(b':');
            self.two(s);
        } else {
            self.pad(u64::from(m), 2);
            self.push(b':');
            self.pad(u64::from(s), 2);
        }
    }
    fn frac(&mut self, micros: u32) {
        if micros != 0 {
            self.push(b'.');
            self.pad(u64::from(micros), 6);
        }
    }
    fn put(&self, b: &mut Vec<u8>) {
        b.extend_from_slice(&self.a[..self.n]);
    }
}

/// `v` in decimal, left-padded with zeros to `width` digits (like `{v:0width$}`).
fn pad(b: &mut Vec<u8>, v: u64, width: usize) {
    let mut s = Stack::new();
    s.pad(v, width);
    s.put(b);
}

/// `v` in decimal.
fn int(b: &mut Vec<u8>, v: u64) {
    pad(b, v, 0);
}

/// A float as serde_json prints it (`null` when not finite).
fn float(b: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let _ = serde_json::to_writer(&mut *b, &v);
    } else {
        b.extend_from_slice(b"null");
    }
}

/// Bytes as a JSON string when they are UTF-8, else `{"hex":"..."}`.
fn bytes_into(b: &mut Vec<u8>, x: &[u8]) {
    match std::str::from_utf8(x) {
        Ok(s) => esc_str(b, s),
        Err(_) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            b.extend_from_slice(b"{\"hex\":\"");
            b.reserve(x.len() * 2 + 2);
            for &c in x {
                b.push(HEX[(c >> 4) as usize]);
                b.push(HEX[(c & 15) as usize]);
            }
            b.extend_from_slice(b"\"}");
        }
    }
}

/// A JSON string literal, escaped as serde_json escapes.
fn esc_str(b: &mut Vec<u8>, s: &str) {
    b.push(b'"');
    esc_body(b, s.as_bytes());
    b.push(b'"');
}

/// Escapes `"`, `\\` and control characters (short forms for \b \t \n \f \r,
/// else `\u00xx`); everything else, UTF-8 included, is copied as is. Runs of
/// plain bytes are copied in one go.
fn esc_body(b: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &c) in s.iter().enumerate() {
        if c >= 0x20 && c != b'"' && c != b'\\' {
            continue;
        }
        b.extend_from_slice(&s[start..i]);
        match c {
            b'"' => b.extend_from_slice(b"\\\""),
            b'\\' => b.extend_from_slice(b"\\\\"),
            0x08 => b.extend_from_slice(b"\\b"),
            0x09 => b.extend_from_slice(b"\\t"),
            0x0a => b.extend_from_slice(b"\\n"),
            0x0c => b.extend_from_slice(b"\\f"),
            0x0d => b.extend_from_slice(b"\\r"),
            _ => {
                b.extend_from_slice(b"\\u00");
                b.push(HEX[(c >> 4) as usize]);
                b.push(HEX[(c & 15) as usize]);
            }
        }
        start = i + 1;
    }
    b.extend_from_slice(&s[start..]);
}

fn bytes(b: &[u8]) -> J {
    match std::str::from_utf8(b) {
        Ok(s) => json!(s),
        Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
    }
}

/// A value as inspect prints it, as a JSON tree (the streaming renderer
/// writes the same text without building it).
pub fn value(v: &Value) -> J {
    match v {
        Value::Null => J::Null,
        Value::Int(i) => json!(i),
        Value::UInt(u) | Value::Bit(u) | Value::Set(u) => json!(u),
        Value::Float(f) => json!(f),
        Value::Double(d) => json!(d),
        Value::Decimal(s) => json!(s),
        Value::Bytes(b) => bytes(b),
        Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
        Value::Date { .. } | Value::Time { .. } | Value::DateTime { .. } => {
            json!(v.temporal_text(Fraction::IfAny).unwrap_or_default())
        }
        Value::Timestamp { secs, micros } => {
            if *secs == 0 && *micros == 0 {
                json!("0000-00-00 00:00:00")
            } else {
                let (y, mo, d, hh, mi, s) = civil_from_epoch(*secs);
                json!(format!(
                    "{y:04}-{mo:02}-{d:02} {hh:02}:{mi:02}:{s:02}{} UTC",
                    frac(*micros)
                ))
            }
        }
        Value::Year(y) => json!(y),
        Value::Enum(e) => json!(e),
    }
}

fn frac(micros: u32) -> String {
    if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_serde_json_for_every_ascii_byte_and_unicode() {
        let mut all: String = (0u8..128).map(char::from).collect();
        all.push_str("é漢字🙂\u{2028}\u{7f}");
        for s in [all.as_str(), "", "plain", "a\"b\\c\n"] {
            let mut b = Vec::new();
            esc_str(&mut b, s);
            assert_eq!(
                String::from_utf8(b).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }

    #[test]
    fn values_render_as_serde_json_renders_value() {
        let vals = [
            Value::Null,
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Int(0),
            Value::UInt(u64::MAX),
            Value::Bit(5),
            Value::Set(3),
            Value::Enum(2),
            Value::Year(0),
            Value::Year(2024),
            Value::Float(12345.679),
            Value::Float(f32::MAX),
            Value::Float(f32::NAN),
            Value::Double(0.1),
            Value::Double(1e300),
            Value::Double(-2.5e-300),
            Value::Double(f64::INFINITY),
            Value::Decimal("-12.3400".into()),
            Value::Bytes(b"tab\there \"q\"".to_vec()),
            Value::Bytes(vec![0, 0xff, 0x10]),
            Value::Json(r#"{"b": [1, 2.5, "x"], "a": null}"#.into()),
            Value::Json("not json".into()),
            Value::Date {
                year: 0,
                month: 0,
                day: 0,
            },
            Value::Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0,
            },
            Value::Time {
                negative: false,
                hours: 1,
                minutes: 2,
                seconds: 3,
                micros: 40,
            },
            Value::DateTime {
                year: 9999,
                month: 12,
                day: 31,
                hour: 23,
                minute: 59,
                second: 59,
                micros: 999_999,
            },
            Value::Timestamp { secs: 0, micros: 0 },
            Value::Timestamp {
                secs: 1_700_000_000,
                micros: 5,
            },
            Value::Timestamp {
                secs: 2_147_483_647,
                micros: 0,
            },
        ];
        for v in &vals {
            let mut b = Vec::new();
            value_into(&mut b, v);
            assert_eq!(
                String::from_utf8(b).unwrap(),
                serde_json::to_string(&value(v)).unwrap(),
                "{v:?}"
            );
        }
    }
}
