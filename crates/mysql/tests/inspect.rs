//! `inspect` prints one JSON object per event, with positions, GTIDs, tables,
//! operations and values by column name.

mod common;

use dropship_mysql::binlog::inspect::inspect;
use serde_json::Value as J;

fn lines(rel: &[&str]) -> Option<(Vec<J>, dropship_mysql::binlog::inspect::InspectSummary)> {
    let dir = common::fixtures()?;
    let paths: Vec<_> = rel.iter().map(|r| dir.join(r)).collect();
    let mut out = Vec::new();
    let summary = inspect(&paths, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    Some((
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        summary,
    ))
}

#[test]
fn inspect_prints_rows_by_column_name_with_gtid_and_position() {
    let Some((ls, sum)) = lines(&["rust_mysql_common/mariadb-bin.000001"]) else {
        return;
    };
    assert_eq!(sum.files, 1);
    assert_eq!(sum.events as usize, ls.len());
    assert_eq!(sum.row_changes, 2);
    let row = ls.iter().find(|l| l["type"] == "WRITE_ROWS_V1").unwrap();
    assert_eq!(row["table"], "toddy_test.outbox");
    assert_eq!(row["op"], "insert");
    assert!(row["gtid"].as_str().unwrap().starts_with("0-"), "{row}");
    assert!(row["offset"].as_u64().unwrap() > 4);
    assert!(row["file"]
        .as_str()
        .unwrap()
        .ends_with("mariadb-bin.000001"));
    let after = &row["rows"][0]["after"];
    for name in ["id", "topic", "event_type", "event", "created"] {
        assert!(after.get(name).is_some(), "{after}");
    }
    assert!(
        after["created"].as_str().unwrap().ends_with("UTC"),
        "{after}"
    );
}

#[test]
fn inspect_uses_positional_names_without_metadata_and_keeps_ddl_text() {
    let Some((ls, sum)) = lines(&[
        "boxercrab/30_write_rows_v2/log.bin",
        "binlog-parser/fixtures/mysql-bin.07",
    ]) else {
        return;
    };
    assert_eq!(sum.files, 2);
    let row = ls.iter().find(|l| l["type"] == "WRITE_ROWS_V2").unwrap();
    assert!(row["rows"][0]["after"].get("@1").is_some(), "{row}");
    assert!(ls
        .iter()
        .any(|l| l["type"] == "QUERY" && l["sql"].as_str().is_some_and(|s| !s.is_empty())));
    assert!(ls
        .iter()
        .any(|l| l["type"] == "MARIADB_GTID_LIST" && l.get("gtid_set").is_some()));
    assert!(ls.iter().any(|l| l["type"] == "FORMAT_DESCRIPTION"
        && l["server_version"].as_str().unwrap().contains("MariaDB")));
}

#[test]
fn inspect_stops_with_the_error_naming_file_and_offset() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let mut out = Vec::new();
    let err = inspect(
        &[dir.join("rust_mysql_common/corrupt-relay-bin.000624")],
        &mut out,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("corrupt-relay-bin.000624")
            && err.to_string().contains("offset 91204")
    );
    assert!(String::from_utf8(out).unwrap().lines().count() > 800);
}

#[test]
fn inspect_prints_minimal_image_partial_json_updates_as_their_diffs() {
    let Some((ls, sum)) = lines(&["rust_mysql_common/json.binlog.000001"]) else {
        return;
    };
    assert_eq!(sum.events as usize, ls.len());
    let partial: Vec<&J> = ls
        .iter()
        .filter(|l| l["type"] == "PARTIAL_UPDATE_ROWS")
        .collect();
    assert_eq!(partial.len(), 1);
    let ev = partial[0];
    assert_eq!(ev["offset"], 3750);
    assert_eq!(ev["op"], "update");
    let rows = ev["rows"].as_array().unwrap();
    // `mysqlbinlog -v`: WHERE @1=n SET @2=JSON_REPLACE(@2, '$.age', age) @3=name @4=age.
    let expected = [
        (1, 26, "Joe"),
        (2, 34, "Sue"),
        (3, 42, "Pete"),
        (4, 26, "Joe"),
        (5, 34, "Sue"),
        (6, 42, "Pete"),
    ];
    assert_eq!(rows.len(), expected.len());
    for (row, (id, age, name)) in rows.iter().zip(expected) {
        let (before, after) = (&row["before"], &row["after"]);
        assert_eq!(before["@1"], id, "{row}");
        assert_eq!(before["@2"], serde_json::json!({"missing": true}), "{row}");
        assert_eq!(after["@1"], serde_json::json!({"missing": true}), "{row}");
        assert_eq!(
            after["@2"],
            serde_json::json!({"json_diff": [{"op": "replace", "path": "$.age", "value": age}]}),
            "{row}"
        );
        assert_eq!(after["@3"], name, "{row}");
        assert_eq!(after["@4"], age, "{row}");
    }
    assert!(
        ls.last().is_some_and(|l| l["type"] == "XID"),
        "{:?}",
        ls.last()
    );
}
