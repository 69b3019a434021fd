//! MySQL binary JSON (the JSON column's storage format) to JSON text, and the
//! partial-update JSON diffs of PARTIAL_UPDATE_ROWS events.
//!
//! ```text
//! value       := type u8 | body
//! type        : 0x00 small object  0x01 large object  0x02 small array  0x03 large array
//!               0x04 literal (0 null, 1 true, 2 false)  0x05 i16  0x06 u16  0x07 i32
//!               0x08 u32  0x09 i64  0x0a u64  0x0b f64  0x0c string  0x0f opaque
//! object body : count | size | key entry{offset, u16 len}[count] | value entry{type u8, offset|inline}[count] | keys | values
//! array body  : count | size | value entry[count] | values
//!               (count, size, offsets: u16 when small, u32 when large; offsets from the body start;
//!                literals and 16-bit ints are inlined, and 32-bit ints too in large containers)
//! string      : varlen length (7 bits a byte, low first, at most 5 bytes) | UTF-8 bytes
//! opaque      : column type u8 | varlen length | bytes (DECIMAL, DATE, TIME, DATETIME, ...)
//!
//! JSON diff   : operation u8 (0 REPLACE, 1 INSERT, 2 REMOVE) | path lenenc | [value lenenc | binary JSON]
//! ```
//!
//! Text output follows MySQL's own rendering: `{"k": 1, "a": [1, 2]}`, doubles
//! keep a `.0` or exponent so they stay doubles, opaque DECIMAL is a number and
//! opaque temporals are quoted strings; other opaque values are
//! `"base64:typeNN:..."` as MySQL prints them.
//!
//! Invariant: malformed input is an error (with what was wrong), never a
//! partial document; recursion depth is bounded (MySQL allows 100 levels).

use super::column::{decimal, time_from_packed};
use super::cursor::Cursor;
use crate::value::{Fraction, Value};
use std::fmt::Write as _;

const MAX_DEPTH: usize = 150;

/// A parsed JSON document, keeping object members in stored order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(String),
    /// An already-rendered JSON token (opaque values).
    Raw(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Binary JSON to JSON text. Zero bytes is the JSON `null` MySQL stores for
/// an empty value.
pub fn to_text(bytes: &[u8]) -> Result<String, String> {
    let doc = parse(bytes)?;
    let mut s = String::new();
    write(&doc, &mut s);
    Ok(s)
}

/// Parses binary JSON into a [`Json`] tree.
pub fn parse(bytes: &[u8]) -> Result<Json, String> {
    if bytes.is_empty() {
        return Ok(Json::Null);
    }
    let t = bytes[0];
    // Every node of a well-formed document has its own entry of at least one
    // byte, so more nodes than bytes means shared offsets (a DAG that would
    // blow up exponentially when expanded).
    let mut budget = bytes.len() + 1;
    parse_value(t, bytes.get(1..).unwrap_or(&[]), 0, &mut budget)
}

fn short(what: &str) -> String {
    format!("binary JSON truncated in {what}")
}

fn parse_value(t: u8, data: &[u8], depth: usize, budget: &mut usize) -> Result<Json, String> {
    if depth > MAX_DEPTH {
        return Err("binary JSON nested deeper than 150 levels".into());
    }
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| "binary JSON has more values than bytes (shared offsets)".to_string())?;
    let mut c = Cursor::new(data);
    Ok(match t {
        0x00 => container(data, false, true, depth, budget)?,
        0x01 => container(data, true, true, depth, budget)?,
        0x02 => container(data, false, false, depth, budget)?,
        0x03 => container(data, true, false, depth, budget)?,
        0x04 => literal(c.u8("literal").map_err(|_| short("literal"))?)?,
        0x05 => Json::Int(i64::from(c.u16("").map_err(|_| short("int16"))? as i16)),
        0x06 => Json::UInt(u64::from(c.u16("").map_err(|_| short("uint16"))?)),
        0x07 => Json::Int(i64::from(c.u32("").map_err(|_| short("int32"))? as i32)),
        0x08 => Json::UInt(u64::from(c.u32("").map_err(|_| short("uint32"))?)),
        0x09 => Json::Int(c.u64("").map_err(|_| short("int64"))? as i64),
        0x0a => Json::UInt(c.u64("").map_err(|_| short("uint64"))?),
        0x0b => Json::Double(f64::from_bits(c.u64("").map_err(|_| short("double"))?)),
        0x0c => {
            let len = varlen(&mut c)?;
            let b = c.bytes(len, "").map_err(|_| short("string"))?;
            Json::Str(
                String::from_utf8(b.to_vec())
                    .map_err(|_| "binary JSON string is not UTF-8".to_string())?,
            )
        }
        0x0f => {
            let ft = c.u8("").map_err(|_| short("opaque type"))?;
            let len = varlen(&mut c)?;
            let b = c.bytes(len, "").map_err(|_| short("opaque value"))?;
            opaque(ft, b)?
        }
        other => return Err(format!("binary JSON has unknown value type {other:#04x}")),
    })
}

fn literal(b: u8) -> Result<Json, String> {
    match b {
        0 => Ok(Json::Null),
        1 => Ok(Json::Bool(true)),
        2 => Ok(Json::Bool(false)),
        o => Err(format!("binary JSON literal {o} is not null/true/false")),
    }
}

fn varlen(c: &mut Cursor<'_>) -> Result<usize, String> {
    let mut len: u64 = 0;
    for i in 0..5 {
        let b = c.u8("").map_err(|_| short("length"))?;
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return usize::try_from(len).map_err(|_| "binary JSON length too large".to_string());
        }
    }
    Err("binary JSON length longer than 5 bytes".into())
}

fn container(
    data: &[u8],
    large: bool,
    object: bool,
    depth: usize,
    budget: &mut usize,
) -> Result<Json, String> {
    let w = if large { 4 } else { 2 };
    let mut c = Cursor::new(data);
    let count = c.uint_le(w, "").map_err(|_| short("element count"))? as usize;
    let size = c.uint_le(w, "").map_err(|_| short("container size"))? as usize;
    if size > data.len() {
        return Err(format!(
            "binary JSON container says {size} bytes, {} present",
            data.len()
        ));
    }
    let data = data.get(..size).unwrap_or(data);
    // Every element needs at least its entry; refuse counts the bytes cannot hold.
    let entry = 1 + w;
    let key_entry = w + 2;
    let need = count.saturating_mul(entry + if object { key_entry } else { 0 });
    if need > size {
        return Err(format!(
            "binary JSON container of {size} bytes cannot hold {count} elements"
        ));
    }
    let mut keys = Vec::new();
    if object {
        for _ in 0..count {
            let off = c.uint_le(w, "").map_err(|_| short("key entry"))? as usize;
            let len = c.u16("").map_err(|_| short("key entry"))? as usize;
            let k = off
                .checked_add(len)
                .and_then(|end| data.get(off..end))
                .ok_or_else(|| short("object key"))?;
            keys.push(
                String::from_utf8(k.to_vec())
                    .map_err(|_| "binary JSON key is not UTF-8".to_string())?,
            );
        }
    }
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        let t = c.u8("").map_err(|_| short("value entry"))?;
        let inline = matches!(t, 0x04..=0x06) || (large && matches!(t, 0x07 | 0x08));
        if inline {
            let raw = c.bytes(w, "").map_err(|_| short("value entry"))?;
            values.push(parse_value(t, raw, depth + 1, budget)?);
        } else {
            let off = c.uint_le(w, "").map_err(|_| short("value entry"))? as usize;
            let v = data.get(off..).ok_or_else(|| short("value offset"))?;
            values.push(parse_value(t, v, depth + 1, budget)?);
        }
    }
    Ok(if object {
        Json::Object(keys.into_iter().zip(values).collect())
    } else {
        Json::Array(values)
    })
}

fn opaque(field_type: u8, b: &[u8]) -> Result<Json, String> {
    let mut c = Cursor::new(b);
    match field_type {
        // NEWDECIMAL: precision u8 | scale u8 | binary decimal
        246 => {
            let p = c.u8("").map_err(|_| short("opaque decimal"))?;
            let s = c.u8("").map_err(|_| short("opaque decimal"))?;
            let text = decimal(&mut c, usize::from(p), usize::from(s))
                .map_err(|e| format!("opaque DECIMAL: {e:?}"))?;
            Ok(Json::Raw(text))
        }
        // DATE, DATETIME, TIMESTAMP, TIME: packed i64 little-endian
        10 | 12 | 7 | 17 | 18 | 11 | 19 => {
            let packed = c.u64("").map_err(|_| short("opaque temporal"))? as i64;
            let text = match field_type {
                11 | 19 => time_from_packed(packed)
                    .temporal_text(Fraction::Always)
                    .unwrap_or_default(),
                _ => {
                    let v = packed.unsigned_abs();
                    let ymdhms = v >> 24;
                    let micros = v & 0xff_ffff;
                    let ymd = ymdhms >> 17;
                    let hms = ymdhms & ((1 << 17) - 1);
                    let ym = ymd >> 5;
                    let (y, mo, d) = (ym / 13, ym % 13, ymd & 31);
                    let (year, month, day) = (y as u16, mo as u8, d as u8);
                    let v = if field_type == 10 {
                        Value::Date { year, month, day }
                    } else {
                        Value::DateTime {
                            year,
                            month,
                            day,
                            hour: (hms >> 12) as u8,
                            minute: ((hms >> 6) & 63) as u8,
                            second: (hms & 63) as u8,
                            micros: micros as u32,
                        }
                    };
                    v.temporal_text(Fraction::Always).unwrap_or_default()
                }
            };
            Ok(Json::Str(text))
        }
        _ => Ok(Json::Str(format!("base64:type{field_type}:{}", base64(b)))),
    }
}

fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Renders a document as MySQL renders JSON text.
pub fn write(j: &Json, out: &mut String) {
    match j {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Json::UInt(v) => {
            let _ = write!(out, "{v}");
        }
        Json::Double(v) => {
            if v.is_finite() {
                let _ = write!(out, "{v:?}");
            } else {
                out.push_str("null");
            }
        }
        Json::Str(s) => write_str(s, out),
        Json::Raw(s) => out.push_str(s),
        Json::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(v, out);
            }
            out.push(']');
        }
        Json::Object(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(k, out);
                out.push_str(": ");
                write(v, out);
            }
            out.push('}');
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    // serde_json's escaping is standard JSON; it cannot fail for a &str.
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

/// One step of a JSON path as used in diffs: `.key` or `[n]`.
#[derive(Debug, Clone, PartialEq)]
enum Leg {
    Key(String),
    Index(usize),
}

fn parse_path(p: &str) -> Result<Vec<Leg>, String> {
    let bad = || format!("JSON diff path `{p}` is not a simple path this decoder can apply");
    let rest = p.strip_prefix('$').ok_or_else(bad)?;
    let mut legs = Vec::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((_, ch)) = chars.next() {
        match ch {
            '.' => {
                if chars.peek().map(|x| x.1) == Some('"') {
                    chars.next();
                    let mut key = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '\\')) => match chars.next() {
                                Some((_, c)) => key.push(c),
                                None => return Err(bad()),
                            },
                            Some((_, '"')) => break,
                            Some((_, c)) => key.push(c),
                            None => return Err(bad()),
                        }
                    }
                    legs.push(Leg::Key(key));
                } else {
                    let mut key = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        if c == '.' || c == '[' {
                            break;
                        }
                        key.push(c);
                        chars.next();
                    }
                    if key.is_empty() || key == "*" {
                        return Err(bad());
                    }
                    legs.push(Leg::Key(key));
                }
            }
            '[' => {
                let mut n = String::new();
                loop {
                    match chars.next() {
                        Some((_, ']')) => break,
                        Some((_, c)) if c.is_ascii_digit() => n.push(c),
                        _ => return Err(bad()),
                    }
                }
                legs.push(Leg::Index(n.parse().map_err(|_| bad())?));
            }
            c if c.is_whitespace() => {}
            _ => return Err(bad()),
        }
    }
    Ok(legs)
}

/// One JSON diff as stored in a partial row image.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub op: u8,
    pub path: String,
    pub value: Option<Json>,
}

impl Diff {
    /// `replace`, `insert` or `remove`; `unknown` for a code [`parse_diffs`] refuses.
    pub fn op_name(&self) -> &'static str {
        match self.op {
            0 => "replace",
            1 => "insert",
            2 => "remove",
            _ => "unknown",
        }
    }
}

/// Parses the diff list of one partial JSON column value.
pub fn parse_diffs(bytes: &[u8]) -> Result<Vec<Diff>, String> {
    let mut c = Cursor::new(bytes);
    let mut diffs = Vec::new();
    while !c.is_empty() {
        let op = c.u8("").map_err(|_| short("diff operation"))?;
        if op > 2 {
            return Err(format!(
                "JSON diff operation {op} is not REPLACE/INSERT/REMOVE"
            ));
        }
        let path = c.lenenc_bytes("").map_err(|_| short("diff path"))?;
        let path = String::from_utf8(path.to_vec())
            .map_err(|_| "JSON diff path is not UTF-8".to_string())?;
        let value = if op != 2 {
            let v = c.lenenc_bytes("").map_err(|_| short("diff value"))?;
            Some(parse(v)?)
        } else {
            None
        };
        diffs.push(Diff { op, path, value });
    }
    Ok(diffs)
}

/// Applies diffs to a document the way the server applied them, or fails.
pub fn apply(doc: &mut Json, diffs: &[Diff]) -> Result<(), String> {
    for d in diffs {
        let legs = parse_path(&d.path)?;
        let Some((last, parents)) = legs.split_last() else {
            // `$` itself: only REPLACE makes sense.
            match (&d.op, &d.value) {
                (0, Some(v)) => {
                    *doc = v.clone();
                    continue;
                }
                _ => return Err(format!("JSON diff op {} on the document root", d.op)),
            }
        };
        let mut node = &mut *doc;
        for leg in parents {
            node = step(node, leg).ok_or_else(|| {
                format!(
                    "JSON diff path `{}` does not exist in the before image",
                    d.path
                )
            })?;
        }
        let missing = || {
            format!(
                "JSON diff path `{}` does not exist in the before image",
                d.path
            )
        };
        match (d.op, last, node) {
            (0, leg, n) => {
                let slot = step(n, leg).ok_or_else(missing)?;
                *slot = d.value.clone().ok_or_else(missing)?;
            }
            (1, Leg::Key(k), Json::Object(m)) => {
                if m.iter().any(|(key, _)| key == k) {
                    return Err(format!(
                        "JSON diff INSERT at `{}` but the key exists",
                        d.path
                    ));
                }
                m.push((k.clone(), d.value.clone().ok_or_else(missing)?));
            }
            (1, Leg::Index(i), Json::Array(a)) => {
                let at = (*i).min(a.len());
                a.insert(at, d.value.clone().ok_or_else(missing)?);
            }
            (2, Leg::Key(k), Json::Object(m)) => {
                let pos = m.iter().position(|(key, _)| key == k).ok_or_else(missing)?;
                m.remove(pos);
            }
            (2, Leg::Index(i), Json::Array(a)) => {
                if *i >= a.len() {
                    return Err(missing());
                }
                a.remove(*i);
            }
            _ => {
                return Err(format!(
                    "JSON diff op {} at `{}` does not fit the before image",
                    d.op, d.path
                ))
            }
        }
    }
    Ok(())
}

fn step<'a>(node: &'a mut Json, leg: &Leg) -> Option<&'a mut Json> {
    match (node, leg) {
        (Json::Object(m), Leg::Key(k)) => m.iter_mut().find(|(key, _)| key == k).map(|(_, v)| v),
        (Json::Array(a), Leg::Index(i)) => a.get_mut(*i),
        _ => None,
    }
}

/// Parses MySQL's JSON text back into a tree (for before images already rendered).
pub fn from_text(s: &str) -> Result<Json, String> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("JSON text: {e}"))?;
    fn conv(v: serde_json::Value) -> Json {
        match v {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(b),
            serde_json::Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Json::UInt(u)
                } else if let Some(i) = n.as_i64() {
                    Json::Int(i)
                } else {
                    Json::Double(n.as_f64().unwrap_or(0.0))
                }
            }
            serde_json::Value::String(s) => Json::Str(s),
            serde_json::Value::Array(a) => Json::Array(a.into_iter().map(conv).collect()),
            serde_json::Value::Object(m) => {
                Json::Object(m.into_iter().map(|(k, v)| (k, conv(v))).collect())
            }
        }
    }
    Ok(conv(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_object_with_inline_and_string_values_renders_like_mysql() {
        // {"a": 1, "b": "x"}
        let mut b = vec![0x00];
        // count 2, size
        let body: Vec<u8> = vec![
            2, 0, 0, 0, // count, size (patched)
            18, 0, 1, 0, // key a at 18
            19, 0, 1, 0, // key b at 19
            0x05, 1, 0, // int16 1 inline
            0x0c, 20, 0, // string at 20
            b'a', b'b', 1, b'x',
        ];
        let mut body = body;
        let size = body.len() as u16;
        body[2..4].copy_from_slice(&size.to_le_bytes());
        b.extend(body);
        assert_eq!(to_text(&b).unwrap(), r#"{"a": 1, "b": "x"}"#);
    }

    #[test]
    fn diffs_replace_insert_and_remove_members() {
        let mut doc = from_text(r#"{"age": 1, "tags": [1, 2]}"#).unwrap();
        let diffs = vec![
            Diff {
                op: 0,
                path: "$.age".into(),
                value: Some(Json::UInt(2)),
            },
            Diff {
                op: 1,
                path: "$.tags[1]".into(),
                value: Some(Json::Str("x".into())),
            },
            Diff {
                op: 2,
                path: "$.tags[0]".into(),
                value: None,
            },
        ];
        apply(&mut doc, &diffs).unwrap();
        let mut s = String::new();
        write(&doc, &mut s);
        assert_eq!(s, r#"{"age": 2, "tags": ["x", 2]}"#);
        assert!(apply(
            &mut doc,
            &[Diff {
                op: 0,
                path: "$.nope".into(),
                value: Some(Json::Null)
            }]
        )
        .is_err());
    }

    #[test]
    fn truncated_and_hostile_binary_json_is_an_error() {
        assert!(to_text(&[0x00, 0xff, 0xff, 0x01, 0x00]).is_err());
        assert!(to_text(&[0x0c, 0x85]).is_err());
        assert!(to_text(&[0x42]).is_err());
    }
}
