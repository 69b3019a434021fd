//! The tab-separated form of a copy chunk for `LOAD DATA LOCAL INFILE ...
//! CHARACTER SET binary`: each field is the text of the literal the
//! `REPLACE` path would write, so both paths load the same values.

use dropship_mysql::Value;

/// Column types whose tab-separated text form loads to exactly the value
/// the equivalent literal writes. BIT would store the text's bytes, spatial
/// types need their binary through a function: those tables use `REPLACE`.
pub(super) fn loads_exactly(data_type: &str) -> bool {
    !matches!(
        data_type,
        "bit"
            | "geometry"
            | "point"
            | "linestring"
            | "polygon"
            | "multipoint"
            | "multilinestring"
            | "multipolygon"
            | "geometrycollection"
    )
}

/// Appends one field of a `LOAD DATA` row: `\N` for NULL, bytes escaped
/// (`\\`, `\t`, `\n`, `\0`; everything else raw, `CHARACTER SET binary`),
/// numbers and temporal values as the text of their SQL literal.
///
/// One difference from literals: text `0` into a YEAR column means 2000
/// (the number means 0000), so a zero YEAR is written `0000`.
pub fn push_tsv_field(out: &mut Vec<u8>, v: &Value, data_type: &str, scratch: &mut String) {
    fn escaped(out: &mut Vec<u8>, b: &[u8]) {
        for &c in b {
            match c {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                0 => out.extend_from_slice(b"\\0"),
                c => out.push(c),
            }
        }
    }
    match v {
        Value::Null => out.extend_from_slice(b"\\N"),
        Value::Bytes(b) => escaped(out, b),
        Value::Json(s) | Value::Decimal(s) => escaped(out, s.as_bytes()),
        Value::Int(0) | Value::UInt(0) | Value::Year(0) if data_type == "year" => {
            out.extend_from_slice(b"0000")
        }
        other => {
            scratch.clear();
            other.write_sql(scratch);
            if scratch == "NULL" {
                out.extend_from_slice(b"\\N");
                return;
            }
            let text = scratch
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .unwrap_or(scratch);
            escaped(out, text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn tsv_fields_keep_null_empty_bytes_and_numbers_exact() {
        let mut out = Vec::new();
        let mut scratch = String::new();
        let vals = [
            Value::Null,
            Value::Bytes(Vec::new()),
            Value::Bytes(b"a\tb\nc\\d\0e\\N\r'\"".to_vec()),
            Value::Bytes(vec![0xff, 0x00, 0x80]),
            Value::Int(-5),
            Value::UInt(u64::MAX),
            Value::Double(0.1),
            Value::Float(1.5),
            Value::Double(f64::NAN),
            Value::Decimal("-12.50".into()),
            Value::DateTime {
                year: 2020,
                month: 1,
                day: 2,
                hour: 3,
                minute: 4,
                second: 5,
                micros: 6,
            },
            Value::Date {
                year: 0,
                month: 0,
                day: 0,
            },
        ];
        let mut fields = Vec::new();
        for v in &vals {
            out.clear();
            push_tsv_field(&mut out, v, "x", &mut scratch);
            fields.push(out.clone());
        }
        out.clear();
        push_tsv_field(&mut out, &Value::Int(0), "year", &mut scratch);
        assert_eq!(out, b"0000", "a zero YEAR loads as 0000, not 2000");
        out.clear();
        push_tsv_field(&mut out, &Value::Int(1999), "year", &mut scratch);
        assert_eq!(out, b"1999");
        let want: Vec<&[u8]> = vec![
            b"\\N",
            b"",
            b"a\\tb\\nc\\\\d\\0e\\\\N\r'\"",
            b"\xff\\0\x80",
            b"-5",
            b"18446744073709551615",
            b"1e-1",
            b"1.5e0",
            b"\\N",
            b"-12.50",
            b"2020-01-02 03:04:05.000006",
            b"0000-00-00",
        ];
        for (i, (got, want)) in fields.iter().zip(&want).enumerate() {
            assert_eq!(
                got.as_slice(),
                *want,
                "value {:?}: {:?}",
                vals[i],
                String::from_utf8_lossy(got)
            );
        }
        assert!(!loads_exactly("bit") && !loads_exactly("point") && loads_exactly("blob"));
    }
}
