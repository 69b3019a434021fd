//! Column values as they travel from the binlog (or a copy query) to a target.
//!
//! A [`Value`] keeps exactly what the source stored, never a lossy rendering:
//! strings are raw bytes in the column's own character set, DECIMAL is its
//! exact decimal text, TIMESTAMP is UTC epoch seconds plus microseconds, ENUM and
//! SET are their stored index and bitmask. The applier writes these with
//! `SET NAMES binary` and `time_zone='+00:00'`, so every value lands bit-exact.
//!
//! Invariant: converting a value to SQL text ([`Value::write_sql`]) and letting
//! the server parse it back gives the same stored bytes for the same column type.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One column value. Variants are chosen by storage format, not by display.
///
/// Do not reorder variants: the relay log encodes them by index (postcard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    /// Signed integer of any width (TINYINT..BIGINT, MEDIUMINT, YEAR stored as int).
    Int(i64),
    /// Unsigned integer of any width.
    UInt(u64),
    Float(f32),
    Double(f64),
    /// DECIMAL as exact text, e.g. `-12.3400`.
    Decimal(String),
    /// CHAR/VARCHAR/TEXT/BINARY/VARBINARY/BLOB/GEOMETRY/VECTOR and MariaDB JSON:
    /// the stored bytes, unconverted.
    #[serde(with = "byte_string")]
    Bytes(Vec<u8>),
    /// MySQL binary JSON rendered as JSON text (UTF-8).
    Json(String),
    /// DATE, possibly zero (`0000-00-00`) or with zero parts.
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// TIME, possibly negative, hours up to 838.
    Time {
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
    },
    /// DATETIME, possibly zero.
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    /// TIMESTAMP as UTC epoch seconds (0 means the zero timestamp).
    Timestamp {
        secs: i64,
        micros: u32,
    },
    /// YEAR (0 means 0000).
    Year(u16),
    /// BIT(n) as its integer value.
    Bit(u64),
    /// ENUM by 1-based index (0 is the empty error value).
    Enum(u16),
    /// SET as its member bitmask.
    Set(u64),
}

/// Serde for [`Value::Bytes`] as one byte string instead of a sequence of
/// single bytes. Postcard writes both the same way (varint length, then the
/// bytes), so the relay log format is unchanged, but this is one copy instead
/// of one serializer call per byte (it was the largest single cost of the
/// relay encode/decode in the callgrind profile, see BENCHMARKS.md).
mod byte_string {
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> de::Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = a.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// Whether [`Value::temporal_text`] writes the fractional seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fraction {
    /// Always six digits (`12:00:00.000000`): SQL literals, exact comparisons.
    Always,
    /// Only when non-zero (`12:00:00`, `12:00:00.000001`): what people read.
    IfAny,
}

impl Value {
    /// The text of a DATE, TIME or DATETIME value as MySQL writes it (`2024-02-29`, `-838:59:59`,
    /// `2024-02-29 12:00:00`), with the fraction as `fraction` says; `None` for any other value.
    pub fn temporal_text(&self, fraction: Fraction) -> Option<String> {
        let frac = |micros: u32| {
            if fraction == Fraction::Always || micros != 0 {
                format!(".{micros:06}")
            } else {
                String::new()
            }
        };
        Some(match self {
            Value::Date { year, month, day } => format!("{year:04}-{month:02}-{day:02}"),
            Value::Time {
                negative,
                hours,
                minutes,
                seconds,
                micros,
            } => format!(
                "{}{hours:02}:{minutes:02}:{seconds:02}{}",
                if *negative { "-" } else { "" },
                frac(*micros)
            ),
            Value::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            } => format!(
                "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}{}",
                frac(*micros)
            ),
            _ => return None,
        })
    }

    /// A JSON document's text: [`Value::Json`] (written as utf8mb4, which a MySQL JSON column needs), or the
    /// bytes unchanged when they are not UTF-8 (the target then refuses them, naming the column).
    pub fn json_from_bytes(b: Vec<u8>) -> Value {
        match String::from_utf8(b) {
            Ok(s) => Value::Json(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        }
    }

    /// Appends this value as a SQL literal to `out`, for a session that uses
    /// `SET NAMES binary`, `time_zone='+00:00'` and an `sql_mode` without
    /// `NO_BACKSLASH_ESCAPES`. `frac` is the column's fractional-seconds digits
    /// (0-6) for temporal types; more digits than stored are harmless.
    pub fn write_sql(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("NULL"),
            Value::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Value::UInt(v) | Value::Bit(v) | Value::Set(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Enum(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Year(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Float(v) => write_float(out, *v as f64, Some(*v)),
            Value::Double(v) => write_float(out, *v, None),
            Value::Decimal(s) => {
                // Decimal text comes from our own decoder; still refuse anything
                // that is not plain numeric text rather than splice it.
                if !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
                {
                    out.push_str(s);
                } else {
                    write_bytes(out, s.as_bytes());
                }
            }
            Value::Bytes(b) => write_bytes(out, b),
            // A JSON column refuses a binary string (MySQL error 3144), which is what a hex literal is in a
            // `SET NAMES binary` session: name the text's character set.
            Value::Json(s) => write_json(out, s),
            Value::Date { .. } | Value::Time { .. } | Value::DateTime { .. } => {
                let text = self.temporal_text(Fraction::Always).unwrap_or_default();
                let _ = write!(out, "'{text}'");
            }
            Value::Timestamp { secs, micros } => {
                if *secs == 0 && *micros == 0 {
                    out.push_str("'0000-00-00 00:00:00'");
                } else {
                    let (y, mo, d, h, mi, s) = civil_from_epoch(*secs);
                    let _ = write!(
                        out,
                        "'{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{micros:06}'"
                    );
                }
            }
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Reinterprets a signed integer decoded without signedness metadata as
    /// unsigned, given the column's storage width in bytes (1, 2, 3, 4 or 8).
    pub fn into_unsigned(self, width_bytes: u8) -> Value {
        match self {
            Value::Int(v) if v < 0 => {
                let bits = u32::from(width_bytes) * 8;
                let mask = if bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                Value::UInt((v as u64) & mask)
            }
            Value::Int(v) => Value::UInt(v as u64),
            other => other,
        }
    }
}

fn write_float(out: &mut String, v: f64, as_f32: Option<f32>) {
    if !v.is_finite() {
        out.push_str("NULL");
        return;
    }
    // The server parses a literal as a double, then (for FLOAT) rounds it to
    // single precision. Writing the f32's shortest text would be wrong at the
    // edges (`3.4028235e38` is above FLT_MAX as a double, so strict mode
    // rejects it); writing the f32's exact value as the shortest f64 text
    // parses to that double exactly, and it converts to the same f32.
    let _ = as_f32;
    let _ = write!(out, "{v:e}");
}

/// Appends bytes as a quoted, escaped string literal. With `SET NAMES binary`
/// the server stores these bytes unchanged in any character set.
pub fn write_bytes(out: &mut String, b: &[u8]) {
    // Hex literals are unambiguous for any byte and keep `out` valid UTF-8.
    if b.is_empty() {
        out.push_str("''");
        return;
    }
    out.push_str("X'");
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(b.len() * 2 + 1);
    for &byte in b {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 15) as usize] as char);
    }
    out.push('\'');
}

/// Appends JSON text as `CONVERT(X'..' USING utf8mb4)`: a utf8mb4 string that a MySQL JSON column accepts (and
/// a MariaDB JSON column, a LONGTEXT, stores as the same bytes).
pub fn write_json(out: &mut String, s: &str) {
    out.push_str("CONVERT(");
    if s.is_empty() {
        out.push_str("''");
    } else {
        write_bytes(out, s.as_bytes());
    }
    out.push_str(" USING utf8mb4)");
}

/// Converts UTC epoch seconds to (year, month, day, hour, minute, second).
/// Howard Hinnant's days-from-civil inverse; exact for the TIMESTAMP range.
pub fn civil_from_epoch(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

/// Converts a value read from a server with the binary protocol (a copy or
/// verify query) to a [`Value`], by the column's `DATA_TYPE`: DECIMAL keeps
/// its exact text, JSON its document text, DATE and DATETIME their kind.
pub fn from_driver(v: mysql_async::Value, data_type: &str) -> Value {
    use mysql_async::Value as V;
    match v {
        V::NULL => Value::Null,
        V::Int(i) => Value::Int(i),
        V::UInt(u) => Value::UInt(u),
        V::Float(f) => Value::Float(f),
        V::Double(d) => Value::Double(d),
        V::Bytes(b) => match data_type {
            "decimal" => Value::Decimal(String::from_utf8_lossy(&b).into_owned()),
            // MySQL JSON reads back as its text; kept apart so that it is written as utf8mb4, not binary.
            "json" => Value::json_from_bytes(b),
            _ => Value::Bytes(b),
        },
        V::Date(y, mo, d, h, mi, s, us) => match data_type {
            "date" => Value::Date {
                year: y,
                month: mo,
                day: d,
            },
            _ => Value::DateTime {
                year: y,
                month: mo,
                day: d,
                hour: h,
                minute: mi,
                second: s,
                micros: us,
            },
        },
        V::Time(neg, days, h, mi, s, us) => Value::Time {
            negative: neg,
            hours: days * 24 + u32::from(h),
            minutes: mi,
            seconds: s,
            micros: us,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(v: Value) -> String {
        let mut s = String::new();
        v.write_sql(&mut s);
        s
    }

    #[test]
    fn timestamps_render_in_utc_and_zero_stays_zero() {
        assert_eq!(
            sql(Value::Timestamp { secs: 0, micros: 0 }),
            "'0000-00-00 00:00:00'"
        );
        assert_eq!(
            sql(Value::Timestamp {
                secs: 1_700_000_000,
                micros: 5
            }),
            "'2023-11-14 22:13:20.000005'"
        );
    }

    #[test]
    fn bytes_are_hex_literals_and_empty_is_empty_string() {
        assert_eq!(sql(Value::Bytes(vec![0, 0xff, b'a'])), "X'00FF61'");
        assert_eq!(sql(Value::Bytes(vec![])), "''");
    }

    #[test]
    fn negative_time_and_unsigned_reinterpretation() {
        assert_eq!(
            sql(Value::Time {
                negative: true,
                hours: 838,
                minutes: 59,
                seconds: 59,
                micros: 0
            }),
            "'-838:59:59.000000'"
        );
        assert_eq!(Value::Int(-1).into_unsigned(4), Value::UInt(4_294_967_295));
        assert_eq!(Value::Int(-1).into_unsigned(8), Value::UInt(u64::MAX));
    }

    #[test]
    fn floats_round_trip_through_their_text() {
        for v in [0.1f64, 1e-300, -2.5e300, 123_456_789.123_456_79] {
            let s = sql(Value::Double(v));
            assert_eq!(s.parse::<f64>().unwrap(), v);
        }
        for f in [0.1f32, f32::MAX, f32::MIN_POSITIVE, -3.4028235e38, 1.0e-45] {
            let text = sql(Value::Float(f));
            let as_double: f64 = text.parse().unwrap();
            assert_eq!(as_double as f32, f, "{text}");
            assert!(
                as_double.abs() <= f32::MAX as f64,
                "{text} must not exceed FLT_MAX"
            );
        }
    }
}
