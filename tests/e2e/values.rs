//! Values and constraints that are easy to get wrong: a source in a non-UTC
//! time zone, two rows swapping a unique value inside one transaction, a
//! foreign key on the target, and a source whose binlog carries no column
//! names (binlog_row_metadata at its default), so names come from the schema.

use crate::common::*;
use dropship_sandbox::ServerOptions;
use std::time::Duration;

mod non_utc_timestamps_unique_swaps_and_foreign_keys_replicate_exactly_without_binlog_column_names {
    use super::*;
    flavor_matrix!(scenario: all);
}

async fn scenario(pair: Pair) {
    let opts = ServerOptions::source()
        .with_time_zone("+05:30")
        .with_binlog_row_metadata(None);
    let env = start_pair(pair, 1, opts, true).await;
    let mut src = env.source.conn().await.unwrap();
    // A legacy application's session: zero dates allowed (MySQL's default sql_mode refuses them).
    exec(&mut src, "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'").await;
    for s in [
        "CREATE DATABASE v",
        "CREATE TABLE v.parent (id INT PRIMARY KEY, code VARCHAR(10) NOT NULL, UNIQUE KEY ux_code (code))",
        "CREATE TABLE v.child (id INT PRIMARY KEY, parent_id INT NOT NULL, ts TIMESTAMP(6) NULL, dt DATETIME NULL, u INT UNSIGNED, y YEAR, t TINYINT UNSIGNED, \
         FOREIGN KEY (parent_id) REFERENCES v.parent (id))",
        "INSERT INTO v.parent VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO v.child VALUES (1, 1, '2024-03-01 12:00:00.123456', '2024-03-01 12:00:00', 4294967295, 2024, 255)",
    ] {
        exec(&mut src, s).await;
    }
    let running = spawn_replicate(
        env.config(
            &[Svc {
                name: "v",
                target: 0,
                tables: &["v.*"],
                rename: &[("v", "v2")],
            }],
            "",
        ),
        vec![],
    );
    for s in [
        // Swap the unique codes of two rows in one transaction (via a temporary value).
        "START TRANSACTION",
        "UPDATE v.parent SET code = 'tmp' WHERE id = 1",
        "UPDATE v.parent SET code = 'a' WHERE id = 2",
        "UPDATE v.parent SET code = 'b' WHERE id = 1",
        "COMMIT",
        // Child rows reference parents inserted in the same transaction (FK order).
        "START TRANSACTION",
        "INSERT INTO v.parent VALUES (3, 'c')",
        "INSERT INTO v.child VALUES (2, 3, '1999-12-31 23:59:59.999999', '0000-00-00 00:00:00', 0, 0, 0)",
        "COMMIT",
        "SET time_zone = '+05:30'",
        "INSERT INTO v.child VALUES (3, 2, NOW(6), NOW(), 123, 1901, 128)",
        "UPDATE v.child SET ts = '2038-01-19 03:14:07.999999' WHERE id = 1",
    ] {
        exec(&mut src, s).await;
    }
    wait_caught_up(&env, 0, "v", Duration::from_secs(60)).await;
    running.stop().await.unwrap();
    assert_identical(&env, "v", 0, "v2", &["parent", "child"]).await;
    // The same instants, read in UTC on both sides.
    let mut t = env.targets[0].conn().await.unwrap();
    exec(&mut src, "SET time_zone = '+00:00'").await;
    exec(&mut t, "SET time_zone = '+00:00'").await;
    let q = "SELECT CAST(ts AS CHAR) FROM {db}.child ORDER BY id";
    let a: Vec<Option<String>> =
        mysql_async::prelude::Queryable::query(&mut src, q.replace("{db}", "v"))
            .await
            .unwrap();
    let b: Vec<Option<String>> =
        mysql_async::prelude::Queryable::query(&mut t, q.replace("{db}", "v2"))
            .await
            .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a[0].as_deref(),
        Some("2038-01-18 21:44:07.999999"),
        "stored instant of a +05:30 literal, read in UTC"
    );
}
