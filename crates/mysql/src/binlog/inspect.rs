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
//! `{"missing": true}`.
//!
//! The first decode error stops the run: the lines before it are printed and
//! the error (naming file and offset) is returned.

use super::decoder::Sink;
use super::error::DecodeError;
use super::{file, types};
use crate::event::{Event, EventHeader, RowImage, RowKind, TableMap};
use crate::value::{civil_from_epoch, Value};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value as J};
use std::io::Write;
use std::path::PathBuf;

/// A JSON object that keeps its keys in insertion order (position first,
/// columns in table order), whatever serde_json's map flavor is.
#[derive(Debug, Default)]
struct Obj(Vec<(String, Node)>);

/// A JSON value whose objects keep key order.
#[derive(Debug)]
enum Node {
    V(J),
    O(Obj),
    A(Vec<Node>),
}

impl From<J> for Node {
    fn from(v: J) -> Self {
        Node::V(v)
    }
}

impl Obj {
    fn insert(&mut self, k: impl Into<String>, v: impl Into<Node>) {
        self.0.push((k.into(), v.into()));
    }
}

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::V(v) => v.serialize(s),
            Node::O(o) => o.serialize(s),
            Node::A(a) => a.serialize(s),
        }
    }
}

/// Totals of one inspect run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InspectSummary {
    pub files: u64,
    pub events: u64,
    pub row_changes: u64,
    pub transactions: u64,
}

/// Prints every event of `paths`, in order, as JSON lines to `out`.
pub fn inspect(paths: &[PathBuf], out: &mut dyn Write) -> Result<InspectSummary, DecodeError> {
    let mut summary = InspectSummary::default();
    for path in paths {
        let name = path.display().to_string();
        let mut gtid: Option<String> = None;
        let mut sink = |h: EventHeader, e: Event| -> Result<(), DecodeError> {
            summary.events += 1;
            let line = render(&name, &h, &e, &mut gtid, &mut summary);
            let text = serde_json::to_string(&line)
                .map_err(|err| DecodeError::Sink(format!("rendering JSON: {err}")))?;
            writeln!(out, "{text}")
                .map_err(|err| DecodeError::Sink(format!("writing output: {err}")))
        };
        let s: &mut Sink<'_> = &mut sink;
        file::read_file(path, s)?;
        summary.files += 1;
    }
    Ok(summary)
}

fn render(
    file: &str,
    h: &EventHeader,
    e: &Event,
    gtid: &mut Option<String>,
    sum: &mut InspectSummary,
) -> Obj {
    let mut o = Obj::default();
    o.insert("file", json!(file));
    o.insert("offset", json!(h.offset));
    o.insert("type", json!(types::name(h.type_code)));
    match e {
        Event::Gtid {
            gtid: g,
            standalone,
        } => {
            *gtid = Some(g.to_string());
            sum.transactions += 1;
            if *standalone {
                o.insert("standalone", json!(true));
            }
        }
        Event::AnonymousGtid => {
            *gtid = None;
            sum.transactions += 1;
        }
        _ => {}
    }
    if let Some(g) = gtid.as_ref() {
        o.insert("gtid", json!(g));
    }
    match e {
        Event::FormatDescription {
            binlog_version,
            server_version,
            checksum,
        } => {
            o.insert("binlog_version", json!(binlog_version));
            o.insert("server_version", json!(server_version));
            o.insert("checksum", json!(checksum));
        }
        Event::Rotate { file, position } => {
            o.insert("next_file", json!(file));
            o.insert("position", json!(position));
        }
        Event::GtidSet(s) => {
            o.insert("gtid_set", json!(s));
        }
        Event::Query { database, sql } => {
            o.insert("database", json!(database));
            o.insert("sql", bytes(sql));
        }
        Event::TableMap(tm) => {
            o.insert("table", json!(format!("{}.{}", tm.database, tm.table)));
            o.insert("table_id", json!(tm.table_id));
            o.insert("columns", json!(tm.columns.len()));
        }
        Event::Rows { table, changes } => {
            o.insert(
                "table",
                json!(format!("{}.{}", table.database, table.table)),
            );
            let op = match changes.first().map(|c| c.kind) {
                Some(RowKind::Insert) => "insert",
                Some(RowKind::Update) => "update",
                Some(RowKind::Delete) => "delete",
                None => "none",
            };
            o.insert("op", json!(op));
            sum.row_changes += changes.len() as u64;
            let rows: Vec<Node> = changes
                .iter()
                .map(|c| {
                    let mut r = Obj::default();
                    if let Some(b) = &c.before {
                        r.insert("before", Node::O(image(table, b)));
                    }
                    if let Some(a) = &c.after {
                        r.insert("after", Node::O(image(table, a)));
                    }
                    Node::O(r)
                })
                .collect();
            o.insert("rows", Node::A(rows));
        }
        Event::Xid(x) => {
            o.insert("xid", json!(x));
        }
        Event::RowsQuery(q) => {
            o.insert("sql", bytes(q));
        }
        Event::BinlogCheckpoint(f) => {
            o.insert("checkpoint_file", json!(f));
        }
        Event::Ignored { what } => {
            o.insert("ignored", json!(what));
        }
        Event::Incident { code, message } => {
            o.insert("incident_code", json!(code));
            o.insert("message", json!(message));
        }
        Event::Gtid { .. } | Event::AnonymousGtid | Event::Heartbeat | Event::Stop => {}
    }
    if matches!(e, Event::Xid(_)) {
        *gtid = None;
    }
    o
}

fn image(tm: &TableMap, img: &RowImage) -> Obj {
    let mut m = Obj::default();
    for (i, v) in img.values.iter().enumerate() {
        let name = tm
            .columns
            .get(i)
            .and_then(|c| c.name.clone())
            .unwrap_or_else(|| format!("@{}", i + 1));
        let jv = if img.missing.contains(&i) {
            json!({"missing": true})
        } else {
            value(v)
        };
        m.insert(name, jv);
    }
    m
}

fn bytes(b: &[u8]) -> J {
    match std::str::from_utf8(b) {
        Ok(s) => json!(s),
        Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
    }
}

/// A value as inspect prints it.
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
        Value::Date { year, month, day } => json!(format!("{year:04}-{month:02}-{day:02}")),
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
        } => {
            json!(format!(
                "{}{hours:02}:{minutes:02}:{seconds:02}{}",
                if *negative { "-" } else { "" },
                frac(*micros)
            ))
        }
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } => json!(format!(
            "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}{}",
            frac(*micros)
        )),
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
