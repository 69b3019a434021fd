//! The decoder against the real-server binlog corpus in
//! `shared/fixtures/binlogs` (see its SOURCES.md). Each test returns early with
//! "skipped: fixtures folder absent" when the corpus is not there.

mod common;

use common::{decode_file, fixtures};
use dropship_mysql::binlog::{types, DecodeError};
use dropship_mysql::gtid::format_uuid;
use dropship_mysql::{Event, Gtid, RowKind, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Files that must stop with an error, at this offset, with this kind.
/// Everything else in the corpus must decode to the end.
const EXPECTED_FAILURES: &[(&str, u64, &str)] = &[
    // Deliberately truncated files (negative tests upstream).
    (
        "rust_mysql_common/binlog_truncated_event.000001",
        4,
        "truncated",
    ),
    (
        "rust_mysql_common/binlog_truncated_prev_gtid_event.000001",
        120,
        "truncated",
    ),
    // The corrupt QUERY event of the corrupt relay log.
    (
        "rust_mysql_common/corrupt-relay-bin.000624",
        91204,
        "truncated",
    ),
    // Statement-based LOAD DATA and pre-GA rows events are refused, not skipped.
    ("boxercrab/17_18_load/log.bin", 304, "unsupported"),
    ("rust_mysql_common/ver_5_1-wl2325_r.001", 466, "unsupported"),
    ("rust_mysql_common/ver_5_1-wl2325_s.001", 411, "unsupported"),
    ("rust_mysql_common/ver_5_1_23.001", 1480, "unsupported"),
    (
        "rust_mysql_common/ver_trunk_row_v2.001",
        2651,
        "unsupported",
    ),
    // PARTIAL_JSON with binlog_row_image=MINIMAL: the before image lacks the JSON
    // document, so no full after image can be built; refusing beats guessing.
    // (`inspect` decodes it with `Decoder::keeping_partial_json` and prints the diffs.)
    (
        "rust_mysql_common/json.binlog.000001",
        3750,
        "partial json without before image",
    ),
    // MariaDB 10.0 old-format TIMESTAMP(3): the width is not in the binlog.
    ("tiflow/mysql-bin.000001", 1819, "unsupported column"),
];

fn kind(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::File { source, .. } => kind(source),
        DecodeError::Truncated { .. } => "truncated",
        DecodeError::Unsupported { .. } => "unsupported",
        DecodeError::UnsupportedColumn { .. } => "unsupported column",
        DecodeError::Malformed { .. } => "malformed",
        DecodeError::Checksum { .. } => "checksum",
        DecodeError::PartialJsonWithoutBefore { .. } => "partial json without before image",
        _ => "other",
    }
}

#[test]
fn every_corpus_file_decodes_to_the_end_or_fails_where_expected() {
    let Some(dir) = fixtures() else { return };
    let files = common::corpus_files(&dir);
    assert!(files.len() >= 80, "corpus has {} binlog files", files.len());
    let mut failures = Vec::new();
    for p in &files {
        let rel = p
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let d = decode_file(p);
        let expected = EXPECTED_FAILURES.iter().find(|(f, _, _)| *f == rel);
        match (&d.error, expected) {
            (None, None) => {}
            (Some(e), Some((_, off, k))) => {
                let msg = e.to_string();
                if e.offset() != Some(*off) || kind(e) != *k || !msg.contains(&rel) {
                    failures.push(format!("{rel}: expected {k} at {off}, got {msg}"));
                }
            }
            (Some(e), None) => failures.push(format!("{rel}: unexpected error {e}")),
            (None, Some((_, off, k))) => {
                failures.push(format!("{rel}: expected {k} at {off}, decoded fully"))
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// SOURCES.md event names -> server names.
fn canonical(name: &str) -> String {
    let n = name.trim();
    let map = [
        ("PREV_GTIDS", "PREVIOUS_GTIDS"),
        ("ANON_GTID", "ANONYMOUS_GTID"),
        ("WRITE_V1", "WRITE_ROWS_V1"),
        ("UPDATE_V1", "UPDATE_ROWS_V1"),
        ("DELETE_V1", "DELETE_ROWS_V1"),
        ("WRITE_V2", "WRITE_ROWS_V2"),
        ("UPDATE_V2", "UPDATE_ROWS_V2"),
        ("DELETE_V2", "DELETE_ROWS_V2"),
        ("PARTIAL_UPDATE_ROWS", "PARTIAL_UPDATE_ROWS"),
        ("MDB_GTID_LIST", "MARIADB_GTID_LIST"),
        ("MDB_GTID", "MARIADB_GTID"),
        ("MDB_BINLOG_CHECKPOINT", "MARIADB_BINLOG_CHECKPOINT"),
        ("MDB_ANNOTATE_ROWS", "MARIADB_ANNOTATE_ROWS"),
        ("100", "AURORA_PADDING"),
    ];
    map.iter()
        .find(|(a, _)| *a == n)
        .map(|(_, b)| b.to_string())
        .unwrap_or_else(|| n.to_string())
}

fn parse_counts(list: &str, into: &mut BTreeMap<String, usize>) {
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, n) = match item.split_once('×') {
            Some((a, b)) => (a, b.trim().parse::<usize>().unwrap_or(0)),
            None => (item, 1),
        };
        *into.entry(canonical(name)).or_default() += n;
    }
}

/// The event counts SOURCES.md gives per file (outer events, plus the
/// "in payload" events of TRANSACTION_PAYLOADs, which the decoder emits).
fn sources_counts(dir: &Path) -> BTreeMap<String, BTreeMap<String, usize>> {
    let text = std::fs::read_to_string(dir.join("SOURCES.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 8 || !cols[1].contains('/') || cols[5].is_empty() || cols[5] == "server" {
            continue;
        }
        let coverage = cols[6];
        let end = [
            "; cols:",
            "; pre-checksum",
            "; checksum OFF",
            "; TM opt-meta",
        ]
        .iter()
        .filter_map(|m| coverage.find(m))
        .min()
        .unwrap_or(coverage.len());
        let list_part = &coverage[..end];
        let list = match list_part.rfind(". ") {
            Some(i) => &list_part[i + 2..],
            None => list_part,
        };
        let mut counts = BTreeMap::new();
        parse_counts(list, &mut counts);
        if let Some(payload) = cols.iter().find_map(|c| c.strip_prefix("in payload: ")) {
            counts.remove("TRANSACTION_PAYLOAD");
            parse_counts(payload.split("; ").next().unwrap_or(""), &mut counts);
        }
        out.insert(cols[1].to_string(), counts);
    }
    out
}

#[test]
fn event_counts_by_type_match_sources_md_for_every_fully_decoded_file() {
    let Some(dir) = fixtures() else { return };
    let expected = sources_counts(&dir);
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for (rel, want) in &expected {
        let p = dir.join(rel);
        if !p.is_file() || want.is_empty() || EXPECTED_FAILURES.iter().any(|(f, _, _)| f == rel) {
            continue;
        }
        let d = decode_file(&p);
        if d.error.is_some() {
            continue; // reported by the test above
        }
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        for (h, _) in &d.events {
            if h.type_code != types::FORMAT_DESCRIPTION {
                *got.entry(types::name(h.type_code).to_string()).or_default() += 1;
            }
        }
        if &got != want {
            mismatches.push(format!(
                "{rel}:\n  SOURCES.md {want:?}\n  decoded    {got:?}"
            ));
        }
        checked += 1;
    }
    assert!(checked >= 60, "only {checked} files had counts to check");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// (db.table, kind, before values, after values) for every row change of a file.
type Rows = Vec<(String, RowKind, Option<Vec<Value>>, Option<Vec<Value>>)>;

fn rows_of(rel: &str) -> Option<Rows> {
    let dir = fixtures()?;
    let d = decode_file(&dir.join(rel));
    assert!(
        d.error.is_none(),
        "{rel}: {:?}",
        d.error.map(|e| e.to_string())
    );
    let mut out = Vec::new();
    for (_, e) in d.events {
        if let Event::Rows { table, changes } = e {
            for c in changes {
                out.push((
                    format!("{}.{}", table.database, table.table),
                    c.kind,
                    c.before.map(|i| i.values),
                    c.after.map(|i| i.values),
                ));
            }
        }
    }
    Some(out)
}

/// Renders a value as `mysqlbinlog -vv` prints it after `@N=`.
fn mysqlbinlog_text(v: &Value) -> String {
    fn quoted(b: &[u8]) -> String {
        let mut s = String::from("'");
        for &c in b {
            if c > 0x1f && c != b'\'' && c != b'\\' {
                s.push(c as char);
            } else {
                s.push_str(&format!("\\x{c:02x}"));
            }
        }
        s.push('\'');
        s
    }
    match v {
        Value::Null => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Decimal(d) => d.clone(),
        Value::Bytes(b) => quoted(b),
        Value::Timestamp { secs, micros: 0 } => secs.to_string(),
        Value::Timestamp { secs, micros } => format!("{secs}.{micros:06}"),
        Value::Date { year, month, day } => format!("'{year:04}:{month:02}:{day:02}'"),
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros: 0,
        } => {
            format!("'{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}'")
        }
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Row images from a `mysqlbinlog -vv` dump: each `### INSERT/UPDATE/DELETE`
/// statement's `@N=value` lists (two per UPDATE).
fn dump_images(text: &str) -> Vec<Vec<String>> {
    let mut images: Vec<Vec<String>> = Vec::new();
    for line in text.lines() {
        let l = line.trim_end_matches('\r');
        if l.starts_with("### INSERT")
            || l.starts_with("### DELETE")
            || l == "### WHERE"
            || l == "### SET"
        {
            if l.starts_with("### UPDATE") {
                continue;
            }
            if l == "### SET"
                || l == "### WHERE"
                || l.starts_with("### INSERT")
                || l.starts_with("### DELETE")
            {
                // INSERT is followed by SET, DELETE by WHERE: open the image at the keyword.
                if l == "### SET" || l == "### WHERE" {
                    images.push(Vec::new());
                }
            }
        } else if let Some(rest) = l.strip_prefix("###   @") {
            let (_, v) = rest.split_once('=').unwrap();
            let v = v.split(" /*").next().unwrap();
            // `-1 (255)`: mysqlbinlog adds the unsigned reading in parentheses.
            let v = match v.find(" (") {
                Some(i) if !v.starts_with('\'') => &v[..i],
                _ => v,
            };
            images.last_mut().unwrap().push(v.to_string());
        }
    }
    images
}

fn decoded_images(rel: &str) -> Option<Vec<Vec<String>>> {
    let rows = rows_of(rel)?;
    let mut out = Vec::new();
    for (_, kind, before, after) in rows {
        match kind {
            RowKind::Insert => out.push(after.unwrap().iter().map(mysqlbinlog_text).collect()),
            RowKind::Delete => out.push(before.unwrap().iter().map(mysqlbinlog_text).collect()),
            RowKind::Update => {
                out.push(before.unwrap().iter().map(mysqlbinlog_text).collect());
                out.push(after.unwrap().iter().map(mysqlbinlog_text).collect());
            }
        }
    }
    Some(out)
}

fn read_dump(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    if bytes.starts_with(&[0xff, 0xfe]) {
        let units: Vec<u16> = bytes[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[test]
fn row_values_match_the_mysqlbinlog_vv_dumps_shipped_with_the_corpus() {
    let Some(dir) = fixtures() else { return };
    let pairs = [
        (
            "boxercrab/19_table_map/log.bin",
            "boxercrab/19_table_map/dump.txt",
        ),
        (
            "boxercrab/29_row_query/log.bin",
            "boxercrab/29_row_query/dump.txt",
        ),
        (
            "boxercrab/30_write_rows_v2/log.bin",
            "boxercrab/30_write_rows_v2/dump.txt",
        ),
        (
            "boxercrab/32_delete_rows_v2/log.bin",
            "boxercrab/32_delete_rows_v2/dump.txt",
        ),
        (
            "boxercrab/33_35_gtid_prev_gtid/log.bin",
            "boxercrab/33_35_gtid_prev_gtid/dump.txt",
        ),
        (
            "boxercrab/34_anonymous_gtid/log.bin",
            "boxercrab/34_anonymous_gtid/dump.txt",
        ),
        (
            "binlog-parser/fixtures/mysql-bin.01",
            "binlog-parser/fixtures/plaintext-mysql-bin.01",
        ),
        (
            "binlog-parser/fixtures/mysql-bin.03",
            "binlog-parser/fixtures/plaintext-mysql-bin.03",
        ),
        (
            "binlog-parser/fixtures/mysql-bin.06",
            "binlog-parser/fixtures/plaintext-mysql-bin.06",
        ),
        (
            "binlog-parser/fixtures/mysql-bin.07",
            "binlog-parser/fixtures/plaintext-mysql-bin.07",
        ),
        (
            "binlog-parser/gtid-fixtures/mysql-bin.01",
            "binlog-parser/gtid-fixtures/plaintext-mysql-bin.01",
        ),
        (
            "mysql-cdc-rs/8.0/19_30_Table_map_event_Write_rows_log_event/binlog.000018",
            "mysql-cdc-rs/8.0/19_30_Table_map_event_Write_rows_log_event/dump.txt",
        ),
        (
            "mysql-cdc-rs/8.0/31_update_rows_v2/binlog.000001",
            "mysql-cdc-rs/8.0/31_update_rows_v2/dump.txt",
        ),
        (
            "mysql-cdc-rs/8.0/32_delete_rows_v2/binlog.000001",
            "mysql-cdc-rs/8.0/32_delete_rows_v2/dump.txt",
        ),
    ];
    let mut compared = 0;
    for (bin, dump) in pairs {
        let want = dump_images(&read_dump(&dir.join(dump)));
        let got = decoded_images(bin).unwrap();
        assert!(!want.is_empty(), "{dump} has no row images");
        assert_eq!(got, want, "{bin} vs {dump}");
        compared += want.iter().map(Vec::len).sum::<usize>();
    }
    assert!(compared > 150, "compared only {compared} values");
}

fn after_values(rel: &str) -> Vec<Vec<Value>> {
    rows_of(rel)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.3)
        .collect()
}

#[test]
fn json_opaque_values_render_like_mysql_json_text() {
    if fixtures().is_none() {
        return;
    }
    let got: Vec<String> = after_values("rust_mysql_common/json-opaque.binlog")
        .into_iter()
        .map(|v| match v.last() {
            Some(Value::Json(s)) => s.clone(),
            other => panic!("expected JSON, got {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            r#"{"a": "base64:type15:VQ=="}"#,
            r#"{"b": "2012-03-18"}"#,
            r#"{"c": "2012-03-18 11:30:45.000000"}"#,
            r#"{"c": "87:31:46.654321"}"#,
            r#"{"d": 123.456}"#,
            r#"{"e": 9.00}"#,
            r#"{"e": [0, 1, true, false]}"#,
            r#"{"e": null}"#,
        ]
    );
}

#[test]
fn vector_columns_come_out_as_their_raw_float_bytes() {
    if fixtures().is_none() {
        return;
    }
    let rows = rows_of("rust_mysql_common/vector.binlog").unwrap();
    let inserts: Vec<&Vec<Value>> = rows.iter().filter_map(|r| r.3.as_ref()).collect();
    assert!(inserts.iter().any(|v| v.as_slice()
        == [
            Value::Int(1),
            Value::Bytes(vec![205, 204, 140, 63, 205, 204, 12, 64, 51, 51, 83, 64])
        ]
        || v.as_slice()
            == [
                Value::UInt(1),
                Value::Bytes(vec![205, 204, 140, 63, 205, 204, 12, 64, 51, 51, 83, 64])
            ]));
    assert!(inserts.iter().any(|v| v.get(1)
        == Some(&Value::Bytes(vec![
            0, 0, 128, 63, 0, 0, 128, 191, 0, 0, 0, 0
        ]))));
}

#[test]
fn enum_set_and_char_columns_keep_index_bitmask_and_stored_bytes() {
    let Some(dir) = fixtures() else { return };
    let rows = rows_of("rust_mysql_common/mysql-enum-string-set.000001").unwrap();
    let long = b"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789".to_vec();
    let ins = rows.iter().find(|r| r.1 == RowKind::Insert).unwrap();
    let after = ins.3.as_ref().unwrap();
    assert_eq!(after[0], Value::Bytes(long.clone()));
    assert_eq!(after[2], Value::Enum(1));
    assert_eq!(after[3], Value::Set(0b101));
    assert_eq!(after[4], Value::Bytes(b"0123456789".to_vec()));
    let upd = rows.iter().find(|r| r.1 == RowKind::Update).unwrap();
    let a = upd.3.as_ref().unwrap();
    assert_eq!(a[0], Value::Bytes(b"field1".to_vec()));
    assert_eq!(a[2], Value::Enum(2));
    assert_eq!(a[3], Value::Set(0b1010));
    // FULL row metadata: names and ENUM/SET members come through.
    let d = decode_file(&dir.join("rust_mysql_common/mysql-enum-string-set.000001"));
    let tm = d
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Rows { table, .. } => Some(table.clone()),
            _ => None,
        })
        .unwrap();
    assert!(tm.columns.iter().all(|c| c.name.is_some()));
    assert!(tm
        .columns
        .iter()
        .any(|c| c.enum_values.as_ref().is_some_and(|v| !v.is_empty())));
    assert!(tm
        .columns
        .iter()
        .any(|c| c.set_values.as_ref().is_some_and(|v| !v.is_empty())));
}

#[test]
fn bit_columns_decode_to_their_integer_value() {
    if fixtures().is_none() {
        return;
    }
    let rows = after_values("rust_mysql_common/mysql_type_bit.000001");
    assert_eq!(
        rows,
        vec![vec![
            Value::Bit(0b100),
            Value::Bytes(b"foo".to_vec()),
            Value::Bit(0b100000)
        ]]
    );
}

#[test]
fn mariadb_full_row_metadata_gives_names_charsets_and_primary_key() {
    let Some(dir) = fixtures() else { return };
    let d = decode_file(&dir.join("rust_mysql_common/mariadb-bin.000001"));
    assert!(d.error.is_none());
    let tm = d
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::TableMap(t) => Some(t.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (tm.database.as_str(), tm.table.as_str()),
        ("toddy_test", "outbox")
    );
    let names: Vec<_> = tm.columns.iter().map(|c| c.name.clone().unwrap()).collect();
    assert_eq!(names, ["id", "topic", "event_type", "event", "created"]);
    let charsets: Vec<_> = tm.columns.iter().map(|c| c.charset).collect();
    assert_eq!(charsets, [None, Some(45), Some(45), Some(63), None]);
    assert_eq!(tm.primary_key, Some(vec![0]));
    // GTIDs, standalone flags and the GTID list come out as MariaDB GTIDs.
    let gtids: Vec<String> = d
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Gtid { gtid, .. } => Some(gtid.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(gtids.len(), 2);
    assert!(gtids.iter().all(|g| g.split('-').count() == 3), "{gtids:?}");
    assert!(d
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::RowsQuery(_))));
    assert!(d
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::BinlogCheckpoint(f) if f.starts_with("mariadb-bin"))));
}

#[test]
fn time2_edge_value_decodes_exactly() {
    if fixtures().is_none() {
        return;
    }
    let rows = after_values("rust_mysql_common/time_issue.000001");
    assert_eq!(rows.len(), 1);
    // Stored bytes 60 43 e5 (fsp 0): 0x6043e5 - 0x800000 = -2079771, which
    // my_time_packed_from_binary() unpacks to -507:48:27.
    assert_eq!(
        rows[0][0],
        Value::Time {
            negative: true,
            hours: 507,
            minutes: 48,
            seconds: 27,
            micros: 0
        }
    );
}

#[test]
fn compressed_transaction_payloads_yield_their_inner_rows_events() {
    let Some(dir) = fixtures() else { return };
    for (rel, want_kind, min_rows) in [
        (
            "rust_mysql_common/transaction_compression.000001",
            RowKind::Insert,
            1,
        ),
        (
            "mysql-binlog-connector-java/mysql-bin.compressed",
            RowKind::Update,
            1,
        ),
        (
            "mysql-binlog-connector-rust/mysql-bin.000057",
            RowKind::Insert,
            2,
        ),
    ] {
        let d = decode_file(&dir.join(rel));
        assert!(
            d.error.is_none(),
            "{rel}: {:?}",
            d.error.map(|e| e.to_string())
        );
        let inner: Vec<_> = d.events.iter().filter(|(h, _)| h.offset == 0).collect();
        assert!(
            inner.iter().any(|(h, _)| h.type_code == types::XID),
            "{rel}: no inner XID"
        );
        let rows: Vec<_> = inner
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Rows { changes, .. } => Some(changes.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(
            rows.iter().filter(|c| c.kind == want_kind).count() >= min_rows,
            "{rel}: {rows:?}"
        );
        assert!(inner.iter().all(|(h, _)| h.next_pos == 0));
    }
}

#[test]
fn rust_mysql_binlog_fixture_gives_its_documented_gtid_table_and_row() {
    if fixtures().is_none() {
        return;
    }
    let dir = fixtures().unwrap();
    let d = decode_file(&dir.join("rust-mysql-binlog/bin-log.000001"));
    assert!(d.error.is_none());
    let gtids: Vec<(String, u64)> = d
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Gtid {
                gtid: Gtid::MySql { uuid, gno, .. },
                ..
            } => Some((format_uuid(uuid), *gno)),
            _ => None,
        })
        .collect();
    assert_eq!(
        gtids.iter().map(|g| g.1).collect::<Vec<_>>(),
        [14917, 14918, 14919]
    );
    assert!(gtids
        .iter()
        .all(|g| g.0 == "87cee3a4-6b31-11e7-bdfd-0d98d6698870"));
    let rows = rows_of("rust-mysql-binlog/bin-log.000001").unwrap();
    assert_eq!(rows[0].0, "bltest.foo");
    let after = rows[0].3.as_ref().unwrap();
    assert_eq!(after[0], Value::Int(1));
    // DECIMAL(10,5): exact text keeps the column's scale.
    assert_eq!(after[1], Value::Decimal("0.10000".into()));
    assert!(matches!(&after[2], Value::Bytes(b) if !b.is_empty()));
}

#[test]
fn incident_events_come_out_as_incidents() {
    let Some(dir) = fixtures() else { return };
    let d = decode_file(&dir.join("rust_mysql_common/bug40482-bin.000001"));
    assert!(d.error.is_none());
    assert!(d
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::Incident { .. })));
}

#[test]
fn tagged_gtids_and_previous_gtids_come_out_as_text() {
    let Some(dir) = fixtures() else { return };
    let d = decode_file(&dir.join("rust_mysql_common/binlog_transaction_with_GTID_TAG.000001"));
    assert!(d.error.is_none());
    let g = d
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Gtid { gtid, .. } => Some(gtid.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        matches!(&g, Gtid::MySql { tag: Some(t), .. } if !t.is_empty()),
        "{g:?}"
    );
    println!("tagged gtid {g}");
    let sets: Vec<String> = d
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::GtidSet(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    println!("previous gtids {sets:?}");
    for s in &sets {
        dropship_mysql::gtid::GtidSet::parse(s).unwrap();
    }
}

#[test]
fn relay_logs_with_two_format_descriptions_decode_with_right_offsets() {
    let Some(dir) = fixtures() else { return };
    let p = dir.join("rust_mysql_common/rpl_unfiltered_hidden_gcol.000001");
    let d = decode_file(&p);
    assert!(d.error.is_none());
    let fdes = d
        .events
        .iter()
        .filter(|(h, _)| h.type_code == types::FORMAT_DESCRIPTION)
        .count();
    assert_eq!(fdes, 2);
    // Offsets are strictly increasing and each event starts where the bytes say.
    let bytes = std::fs::read(&p).unwrap();
    let mut last = 0;
    for (h, _) in &d.events {
        assert!(h.offset > last || h.offset == 0);
        last = h.offset;
        let o = h.offset as usize;
        assert_eq!(bytes[o + 4], h.type_code);
    }
}

#[test]
fn the_all_types_mysql_5_7_sample_decodes_every_column_type_exactly() {
    if fixtures().is_none() {
        return;
    }
    // Columns per the CREATE TABLE inside the file: tinyint .. timestamp(3).
    let rows = after_values("MySqlCdc/mysql-bin.000001");
    assert_eq!(rows.len(), 3);
    let r = &rows[1];
    assert_eq!(
        r[1..7],
        [
            Value::Int(122),
            Value::Int(12342),
            Value::Int(1234562),
            Value::Int(123456789),
            Value::Int(1234567890987654321),
            Value::Float(12345.679),
        ][..]
    );
    assert_eq!(r[7], Value::Double(123456789.09876543));
    // DECIMAL(65,10): 55 integer digits and exactly 10 fraction digits.
    assert_eq!(
        r[8],
        Value::Decimal("1234567890112233445566778899001112223334445556667778889.9900011112".into())
    );
    assert_eq!(r[10], Value::Bytes(b"Hello world!".to_vec()));
    assert_eq!(r[12], Value::Json(r#"{"id": 1, "name": "John"}"#.into()));
    assert_eq!(r[14], Value::Bit(129324935));
    assert_eq!(
        (r[15].clone(), r[16].clone(), r[17].clone()),
        (Value::Enum(2), Value::Set(4), Value::Year(1989))
    );
    assert_eq!(
        r[18],
        Value::Date {
            year: 1985,
            month: 10,
            day: 23
        }
    );
    assert_eq!(
        r[19],
        Value::DateTime {
            year: 1988,
            month: 11,
            day: 27,
            hour: 14,
            minute: 12,
            second: 13,
            micros: 345_000
        }
    );
    assert_eq!(
        r[20],
        Value::Time {
            negative: false,
            hours: 15,
            minutes: 22,
            seconds: 33,
            micros: 670_000
        }
    );
    assert_eq!(
        r[21],
        Value::Timestamp {
            secs: 498_046_943,
            micros: 567_000
        }
    );
}

#[test]
fn the_large_sakila_binlog_yields_all_1374_row_events() {
    let Some(dir) = fixtures() else { return };
    let p = dir.join("mysql-binlog-connector-java/mysql-bin.sakila");
    if !p.exists() {
        return;
    }
    let d = decode_file(&p);
    assert!(d.error.is_none());
    let n = |code| d.events.iter().filter(|(h, _)| h.type_code == code).count();
    assert_eq!(
        (n(types::WRITE_ROWS_V1), n(types::XID), n(types::TABLE_MAP)),
        (1374, 15, 18)
    );
}

#[test]
fn percona_8_4_rows_match_the_generator_script() {
    if fixtures().is_none() {
        return;
    }
    // e2e-tests/gen-binlog-testdata.sh: CREATE TABLE t.a(id INT PK); INSERT (1),(2),(3).
    let rows = rows_of("percona-server-mysql-operator/binlog.000003").unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.1, r.3.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("t.a", RowKind::Insert, Some(vec![Value::Int(1)])),
            ("t.a", RowKind::Insert, Some(vec![Value::Int(2)])),
            ("t.a", RowKind::Insert, Some(vec![Value::Int(3)])),
        ]
    );
}
