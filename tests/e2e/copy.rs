//! Initial copy: kill -9 in the middle, then a restart resumes after the last
//! committed chunk (finished chunks are not copied again) and ends identical,
//! with writers changing the rows being copied throughout.

use crate::common::*;
use dropship_sandbox::ServerOptions;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

async fn copied(c: &mut mysql_async::Conn) -> Option<u64> {
    let n: Option<Option<u64>> = c
        .query_first(
            "SELECT CAST(SUM(rows_copied) AS UNSIGNED) FROM _dropship.copy_chunks WHERE service = 'big'",
        )
        .await
        .unwrap_or(None);
    n.flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_copy_resumes_from_the_last_committed_chunk_and_ends_identical() {
    let env = start_env(1, ServerOptions::source()).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE big").await;
    exec(
        &mut src,
        "CREATE TABLE big.t (k VARCHAR(20) NOT NULL PRIMARY KEY, n INT, b BLOB)",
    )
    .await;
    exec(&mut src, "INSERT INTO big.t SELECT CONCAT('key-', LPAD(seq, 8, '0')), seq, REPEAT('x', seq % 50) FROM big.seq_1_to_60000").await;
    // 60 chunks of 1000 rows at 6000 rows/s: about 10 s of copy.
    let extra = "[replicate]\ncopy_chunk_rows = 1000\nmax_rows_per_second = 6000\n";
    let cfg = env.config_file(
        &[Svc {
            name: "big",
            target: 0,
            tables: &["big.t"],
            rename: &[],
        }],
        extra,
        free_port(),
    );
    let mut tgt = env.targets[0].conn().await.unwrap();
    let mut child = spawn_binary(&cfg, &["replicate"], "replicate.log");

    // Writers change rows ahead of and behind the copy cursor while it runs.
    let writer_pool = env.source.pool();
    let writer = tokio::spawn(async move {
        let mut c = writer_pool.get_conn().await.unwrap();
        for i in 0..300u32 {
            let k = format!("key-{:08}", (i * 197) % 60000 + 1);
            c.query_drop(format!("UPDATE big.t SET n = n + 1000000 WHERE k = '{k}'"))
                .await
                .unwrap();
            c.query_drop(format!(
                "DELETE FROM big.t WHERE k = 'key-{:08}'",
                (i * 331) % 60000 + 1
            ))
            .await
            .unwrap();
            c.query_drop(format!(
                "INSERT IGNORE INTO big.t VALUES ('new-{i}', {i}, 'n')"
            ))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    // Kill once a good part of the table is copied.
    let deadline = Instant::now() + Duration::from_secs(60);
    let copied_at_kill = loop {
        if let Some(n) = copied(&mut tgt).await {
            if n >= 20_000 {
                child.kill9();
                break n;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the copy did not progress; log:\n{}",
            child.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(copied_at_kill < 60_000, "the kill must land mid-copy");

    let mut child = spawn_binary(&cfg, &["replicate"], "replicate.log");
    // SIGTERM mid-copy stops replicate within seconds, exit 0 (the copy does
    // not run to its end first); the next run continues it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = copied(&mut tgt).await.unwrap_or(0);
        if n > copied_at_kill + 3000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted copy did not progress; log:\n{}",
            child.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = Instant::now();
    assert_eq!(
        child.terminate().await,
        Some(0),
        "log:\n{}",
        child.log_text()
    );
    let took = asked.elapsed();
    let copied_at_term = copied(&mut tgt).await.unwrap_or(0);
    assert!(
        copied_at_term < 60_000,
        "SIGTERM must land mid-copy: {copied_at_term} rows copied"
    );
    assert!(
        took < Duration::from_secs(5),
        "replicate took {took:?} to stop mid-copy"
    );
    let copied_at_kill = copied_at_term;

    let mut child = spawn_binary(&cfg, &["replicate"], "replicate.log");
    // The restarted copy continues from the last committed chunk: its
    // recorded progress never goes back below what was committed before.
    let mut lowest = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state: Option<String> = tgt
            .query_first("SELECT state FROM _dropship.service_state WHERE service = 'big'")
            .await
            .unwrap();
        if let Some(n) = copied(&mut tgt).await {
            lowest = lowest.min(n);
        }
        if state.as_deref() == Some("replicating") || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(lowest >= copied_at_kill, "the copy started over: progress went back to {lowest} rows (committed before the kill: {copied_at_kill})");
    writer.await.unwrap();
    wait_caught_up(&env, 0, "big", Duration::from_secs(120)).await;
    let state: Option<String> = tgt
        .query_first("SELECT state FROM _dropship.service_state WHERE service = 'big'")
        .await
        .unwrap();
    assert_eq!(state.as_deref(), Some("replicating"));
    assert_eq!(child.terminate().await, Some(0));
    assert_identical(&env, "big", 0, "big", &["t"]).await;
}

/// `(chunk_no, rows_copied, done)` of every range of the service's table.
async fn ranges(c: &mut mysql_async::Conn, service: &str) -> Vec<(u64, u64, bool)> {
    c.query(format!(
        "SELECT chunk_no, rows_copied, done FROM _dropship.copy_chunks WHERE service = '{service}' ORDER BY chunk_no"
    ))
    .await
    .unwrap_or_default()
}

/// One large table copied as several key ranges at once: kill -9 while some
/// ranges are finished and others are mid-way; the restart copies neither
/// finished ranges nor committed chunks again, and the target ends identical
/// although writers moved unique values between rows of different ranges
/// (the copy's REPLACE, see copy.rs) and inserted, updated and deleted rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_multi_range_copy_resumes_each_range_and_ends_identical() {
    let env = start_env(1, ServerOptions::source()).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE mr").await;
    exec(
        &mut src,
        "CREATE TABLE mr.t (id BIGINT NOT NULL PRIMARY KEY, u BIGINT NOT NULL, n INT, b BLOB, UNIQUE KEY (u), KEY `by n` (n, id))",
    )
    .await;
    exec(
        &mut src,
        "INSERT INTO mr.t SELECT seq, seq, seq, REPEAT('y', seq % 40) FROM mr.seq_1_to_60000",
    )
    .await;
    exec(&mut src, "ANALYZE TABLE mr.t").await;
    // 4 ranges of ~15000 rows; 2 workers at 3000 rows/s each: ~10 s of copy.
    let extra =
        "[replicate]\ncopy_chunk_rows = 1000\ncopy_threads = 2\nmax_rows_per_second = 6000\n";
    let cfg = env.config_file(
        &[Svc {
            name: "mr",
            target: 0,
            tables: &["mr.t"],
            rename: &[],
        }],
        extra,
        free_port(),
    );
    let mut tgt = env.targets[0].conn().await.unwrap();
    let mut child = spawn_binary(&cfg, &["replicate"], "replicate.log");

    let writer_pool = env.source.pool();
    let writer = tokio::spawn(async move {
        let mut c = writer_pool.get_conn().await.unwrap();
        for i in 0..200u64 {
            // Row `a` gives up its unique value; row `b` (another range) takes it.
            let a = 1 + i * 300;
            let b = 150 + i * 300;
            c.query_drop(format!("UPDATE mr.t SET u = u + 1000000000 WHERE id = {a}"))
                .await
                .unwrap();
            c.query_drop(format!("UPDATE mr.t SET u = {a}, n = -n WHERE id = {b}"))
                .await
                .unwrap();
            c.query_drop(format!("DELETE FROM mr.t WHERE id = {}", 77 + i * 300))
                .await
                .unwrap();
            c.query_drop(format!(
                "UPDATE mr.t SET n = n + 1, b = 'changed' WHERE id = {}",
                200 + i * 300
            ))
            .await
            .unwrap();
            c.query_drop(format!(
                "INSERT INTO mr.t VALUES ({0}, {0}, {i}, NULL)",
                100_000 + i
            ))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });

    // Kill once a range is finished while another is not.
    let deadline = Instant::now() + Duration::from_secs(90);
    let at_kill = loop {
        let r = ranges(&mut tgt, "mr").await;
        if r.iter().any(|x| x.2) && r.iter().any(|x| !x.2 && x.1 > 0) {
            child.kill9();
            break ranges(&mut tgt, "mr").await;
        }
        assert!(
            Instant::now() < deadline,
            "no range finished while another was mid-way: {r:?}; log:\n{}",
            child.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        at_kill.len() >= 3,
        "the table was not split into ranges: {at_kill:?}"
    );
    assert!(
        at_kill.iter().any(|x| !x.2),
        "the kill must land mid-copy: {at_kill:?}"
    );

    let mut child = spawn_binary(&cfg, &["replicate"], "replicate2.log");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = ranges(&mut tgt, "mr").await;
        assert_eq!(
            now.len(),
            at_kill.len(),
            "the ranges were planned again: {now:?} vs {at_kill:?}"
        );
        for (before, after) in at_kill.iter().zip(&now) {
            assert!(
                after.1 >= before.1,
                "range {} started over: {} rows recorded, {} before the kill",
                before.0,
                after.1,
                before.1
            );
            if before.2 {
                assert_eq!(
                    after, before,
                    "finished range {} was copied again",
                    before.0
                );
            }
        }
        let state: Option<String> = tgt
            .query_first("SELECT state FROM _dropship.service_state WHERE service = 'mr'")
            .await
            .unwrap();
        if state.as_deref() == Some("replicating") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed copy did not finish; log:\n{}",
            child.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total: u64 = ranges(&mut tgt, "mr").await.iter().map(|x| x.1).sum();
    assert!(
        total <= 60_000 + 200,
        "{total} rows copied for a 60000-row table with 200 inserts: chunks were copied twice"
    );
    writer.await.unwrap();
    wait_caught_up(&env, 0, "mr", Duration::from_secs(120)).await;
    assert_eq!(child.terminate().await, Some(0));
    assert_identical(&env, "mr", 0, "mr", &["t"]).await;
    // The secondary index dropped while the rows loaded is back, as defined.
    let mut s2 = env.source.conn().await.unwrap();
    let show = "SHOW CREATE TABLE mr.t";
    let on_target: Option<(String, String)> = tgt.query_first(show).await.unwrap();
    let on_source: Option<(String, String)> = s2.query_first(show).await.unwrap();
    assert_eq!(on_target.unwrap().1, on_source.unwrap().1);
    let pending: Option<u64> = tgt
        .query_first("SELECT COUNT(*) FROM _dropship.copy_deferred_indexes")
        .await
        .unwrap();
    assert_eq!(pending, Some(0));
}

/// Rows inserted (and changed) after `dropship check` ran and before
/// `replicate` copies all arrive: the copy reads the tables as they are when
/// it runs, not as `check` saw them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_gains_rows_between_check_and_the_copy_arrives_whole() {
    let env = start_env(1, ServerOptions::source()).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE g").await;
    exec(
        &mut src,
        "CREATE TABLE g.t (k VARCHAR(20) NOT NULL PRIMARY KEY, n INT, d DATETIME(6) NULL)",
    )
    .await;
    exec(
        &mut src,
        "INSERT INTO g.t SELECT CONCAT('k', LPAD(seq, 6, '0')), seq, NOW(6) FROM g.seq_1_to_2000",
    )
    .await;
    let extra = "[replicate]\ncopy_chunk_rows = 300\n";
    let cfg = env.config_file(
        &[Svc {
            name: "g",
            target: 0,
            tables: &["g.t"],
            rename: &[],
        }],
        extra,
        free_port(),
    );
    let (code, out) = run_binary(&cfg, &["check"]).await;
    assert_eq!(code, 0, "check failed:\n{out}");
    exec(
        &mut src,
        "INSERT INTO g.t SELECT CONCAT('late', LPAD(seq, 6, '0')), -seq, NULL FROM g.seq_1_to_1500",
    )
    .await;
    exec(&mut src, "UPDATE g.t SET n = n * 10 WHERE k < 'k000100'").await;
    exec(
        &mut src,
        "DELETE FROM g.t WHERE k BETWEEN 'k000500' AND 'k000510'",
    )
    .await;
    let mut child = spawn_binary(&cfg, &["replicate"], "replicate.log");
    let mut tgt = env.targets[0].conn().await.unwrap();
    wait_replicating(&mut tgt, "g", || child.log_text()).await;
    wait_caught_up(&env, 0, "g", Duration::from_secs(120)).await;
    let n: Option<u64> = tgt.query_first("SELECT COUNT(*) FROM g.t").await.unwrap();
    assert_eq!(n, Some(3500 - 11), "log:\n{}", child.log_text());
    assert_eq!(child.terminate().await, Some(0));
    // stderr is a file here: no progress line (terminal escapes) in it.
    let log = child.log_text();
    assert!(
        !log.contains('\u{1b}') && log.contains("copy finished"),
        "log:\n{log}"
    );
    assert_identical(&env, "g", 0, "g", &["t"]).await;
}

/// Waits until the service has finished its copy (state `replicating`).
async fn wait_replicating(c: &mut mysql_async::Conn, service: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state: Option<String> = c
            .query_first(format!(
                "SELECT state FROM _dropship.service_state WHERE service = '{service}'"
            ))
            .await
            .unwrap_or(None);
        if state.as_deref() == Some("replicating") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "service {service} did not finish its copy; log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Table-map events (info `table_id: N (db.table)`) in every binlog file of `c`.
async fn binlogged_table_maps(c: &mut mysql_async::Conn, table: &str) -> usize {
    let files: Vec<mysql_async::Row> = c.query("SHOW BINARY LOGS").await.unwrap();
    let mut n = 0;
    for f in files {
        let name: String = f.get(0).unwrap();
        let events: Vec<mysql_async::Row> = c
            .query(format!("SHOW BINLOG EVENTS IN '{name}'"))
            .await
            .unwrap();
        for e in events {
            let kind: String = e.get(2).unwrap_or_default();
            let info: String = e.get(5).unwrap_or_default();
            if kind == "Table_map" && info.contains(table) {
                n += 1;
            }
        }
    }
    n
}

/// With binary logs on the targets: a target user allowed to set
/// `sql_log_bin` copies without binlogging the rows; one without the
/// privilege still copies (rows binlogged, one warning).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_skips_the_target_binlog_when_allowed_and_still_copies_when_not() {
    let mut env = start_env(0, ServerOptions::source()).await;
    for id in [21, 22] {
        let t = dropship_sandbox::MariaDb::start(ServerOptions::source().with_server_id(id))
            .await
            .expect("start target");
        t.create_user("dropship", TARGET_PASSWORD, &["ALL PRIVILEGES ON *.*"])
            .await
            .expect("target user");
        env.targets.push(t);
    }
    let mut limited = env.targets[1].conn().await.unwrap();
    exec(
        &mut limited,
        "REVOKE SUPER, BINLOG ADMIN ON *.* FROM 'dropship'@'%'",
    )
    .await;
    let mut src = env.source.conn().await.unwrap();
    for db in ["a", "b"] {
        exec(&mut src, &format!("CREATE DATABASE {db}")).await;
        exec(
            &mut src,
            &format!("CREATE TABLE {db}.t (id INT NOT NULL PRIMARY KEY, v VARBINARY(20))"),
        )
        .await;
        exec(
            &mut src,
            &format!("INSERT INTO {db}.t SELECT seq, UNHEX(HEX(seq)) FROM {db}.seq_1_to_3000"),
        )
        .await;
    }
    let cfg = env.config_file(
        &[
            Svc {
                name: "a",
                target: 0,
                tables: &["a.t"],
                rename: &[],
            },
            Svc {
                name: "b",
                target: 1,
                tables: &["b.t"],
                rename: &[],
            },
        ],
        "",
        free_port(),
    );
    let mut child = spawn_binary(&cfg, &["replicate"], "replicate.log");
    for (t, svc) in [(0, "a"), (1, "b")] {
        let mut c = env.targets[t].conn().await.unwrap();
        wait_replicating(&mut c, svc, || child.log_text()).await;
        wait_caught_up(&env, t, svc, Duration::from_secs(120)).await;
    }
    assert_eq!(child.terminate().await, Some(0));
    assert_identical(&env, "a", 0, "a", &["t"]).await;
    assert_identical(&env, "b", 1, "b", &["t"]).await;
    let mut t0 = env.targets[0].conn().await.unwrap();
    assert_eq!(
        binlogged_table_maps(&mut t0, "(a.t)").await,
        0,
        "copied rows were binlogged on a target that allows sql_log_bin = 0"
    );
    assert!(
        binlogged_table_maps(&mut limited, "(b.t)").await > 0,
        "without the privilege the rows are written normally (binlogged)"
    );
    let log = child.log_text();
    assert_eq!(
        log.matches("may not set sql_log_bin").count(),
        1,
        "the missing privilege is logged once; log:\n{log}"
    );
}

/// Every column type that takes the `LOAD DATA LOCAL INFILE` path (all but
/// BIT and spatial, which use REPLACE statements: the workload's all_types
/// table covers those) copies byte-exact, with hand-picked edge values: NULL
/// vs empty, tabs, newlines, backslashes, NUL bytes and a literal `\N` in
/// binary and text columns, FLOAT/DOUBLE extremes, DATETIME(6), zero dates.
mod every_type_copies_exactly_through_load_data {
    use super::*;
    flavor_matrix!(load_data_scenario: all);
}

async fn load_data_scenario(pair: Pair) {
    use dropship_sandbox::workload::{self, Workload};
    let env = start_pair(pair, 1, ServerOptions::source(), true).await;
    let mut src = env.source.conn().await.unwrap();
    // A legacy application's session: zero dates allowed (MySQL's default sql_mode refuses them), out-of-range
    // values clipped as the server does.
    exec(&mut src, "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'").await;
    exec_script(&mut src, &workload::schema_sql("app")).await;
    Workload::new("app")
        .run(&mut src, 400, 11)
        .await
        .expect("workload");
    exec(&mut src, "CREATE DATABASE ld").await;
    exec(&mut src, "CREATE TABLE ld.all_types LIKE app.all_types").await;
    let cols: Vec<(String, String, String)> = src
        .query(
            "SELECT COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'all_types' ORDER BY ORDINAL_POSITION",
        )
        .await
        .unwrap();
    let mut keep = Vec::new();
    for (name, data_type, extra) in &cols {
        if data_type == "bit" || data_type == "geometry" || data_type == "point" {
            exec(
                &mut src,
                &format!("ALTER TABLE ld.all_types DROP COLUMN `{name}`"),
            )
            .await;
        } else if !extra.to_ascii_uppercase().contains("GENERATED") {
            keep.push(format!("`{name}`"));
        }
    }
    let list = keep.join(",");
    exec(
        &mut src,
        &format!("INSERT INTO ld.all_types ({list}) SELECT {list} FROM app.all_types"),
    )
    .await;
    if pair.target == Flavor::MySql {
        // MySQL's default is OFF (dropship then writes REPLACE statements, tested elsewhere); RDS parameter groups
        // can turn it on, and this test is about the LOAD DATA path.
        let mut t = env.targets[0].conn().await.unwrap();
        exec(&mut t, "SET GLOBAL local_infile = 1").await;
    }
    // MySQL's TIME ends at 838:59:59.000000; MariaDB's at 838:59:59.999999.
    let max_time = if pair.source == Flavor::MySql || pair.target == Flavor::MySql {
        "'838:59:59.000000'"
    } else {
        "'838:59:59.999999'"
    };
    exec(
        &mut src,
        "CREATE TABLE ld.edge (id INT NOT NULL PRIMARY KEY, vb VARBINARY(40) NULL, bn BINARY(6) NULL, \
         tx TEXT CHARACTER SET utf8mb4 NULL, f FLOAT NULL, d DOUBLE NULL, dt DATETIME(6) NULL, dd DATE NULL, \
         tm TIME(6) NULL, j JSON NULL, dc DECIMAL(40,20) NULL, e ENUM('a','b c') NULL, s SET('x','y') NULL, y YEAR NULL)",
    )
    .await;
    exec(
        &mut src,
        &"INSERT INTO ld.edge VALUES \
         (1, '', '', '', 0, -0e0, '0000-00-00 00:00:00', '0000-00-00', '-838:59:59.000000', '{}', 0, 'a', '', 0), \
         (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
         (3, X'5C4E', X'00090A5C0D00', 'tab\there\nnewline \\\\ back\\\\N', 3.40282e38, 1.7976931348623157e308, \
          '9999-12-31 23:59:59.999999', '2024-02-29', '838:59:59.999999', '{\"k\": \"v\\\\t\"}', \
          '-12345678901234567890.12345678901234567890', 'b c', 'x,y', 2155), \
         (4, X'00', X'FF', 'ünïcödé 🚀', 1.17549435e-38, 4.9e-324, '1970-01-01 00:00:00.000001', '1000-01-01', \
          '00:00:00.000001', 'null', 0.00000000000000000001, 'a', 'y', 1901), \
         (5, 'NULL', ' ', '\\\\N', -1.5, 0.1, '2020-06-15 12:34:56.5', '2020-06-15', '-00:00:00.5', '[1, 2.5, \"x\"]', -1, NULL, '', NULL)"
        .replace("'838:59:59.999999'", max_time),
    )
    .await;
    let cfg = env.config_file(
        &[Svc {
            name: "ld",
            target: 0,
            tables: &["ld.*"],
            rename: &[],
        }],
        "[replicate]\ncopy_chunk_rows = 97\n",
        free_port(),
    );
    let mut child = spawn_binary(&cfg, &["replicate"], "replicate.log");
    let mut tgt = env.targets[0].conn().await.unwrap();
    wait_replicating(&mut tgt, "ld", || child.log_text()).await;
    wait_caught_up(&env, 0, "ld", Duration::from_secs(120)).await;
    let log = child.log_text();
    assert_eq!(child.terminate().await, Some(0));
    assert!(
        log.contains("copy chunks load with LOAD DATA LOCAL INFILE"),
        "the LOAD DATA path was not taken; log:\n{log}"
    );
    assert_identical(&env, "ld", 0, "ld", &["all_types", "edge"]).await;
    let n: Option<u64> = tgt
        .query_first("SELECT COUNT(*) FROM ld.edge WHERE vb IS NULL")
        .await
        .unwrap();
    assert_eq!(n, Some(1), "NULL and empty must stay distinct");
}
