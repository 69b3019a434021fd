//! End-to-end replication against real MariaDB servers.

use crate::common::*;
use dropship_sandbox::workload::{self, Workload};
use dropship_sandbox::ServerOptions;
use std::time::Duration;

mod random_workload_of_every_type_replicates_to_two_services_with_a_database_rename {
    use super::*;
    flavor_matrix!(scenario: all);
}

async fn scenario(pair: Pair) {
    let env = start_pair(pair, 2, ServerOptions::source(), true).await;
    let mut src = env.source.conn().await.unwrap();
    exec_script(&mut src, &workload::schema_sql("app")).await;
    let wl = Workload::new("app");
    // Rows that exist before replicate starts are copied.
    wl.run(&mut src, 60, 1)
        .await
        .expect("workload before replicate");
    let services = [
        Svc {
            name: "alpha",
            target: 0,
            tables: &["app.all_types"],
            rename: &[("app", "alpha_db")],
        },
        Svc {
            name: "beta",
            target: 1,
            tables: &["app.composite_pk", "app.binary_pk"],
            rename: &[],
        },
    ];
    let running = spawn_replicate(env.config(&services, ""), vec![]);
    // Changes while copying and streaming, including a row over 16 MiB.
    wl.clone()
        .with_huge_row(true)
        .run(&mut src, 150, 2)
        .await
        .expect("workload with a huge row");
    wl.run(&mut src, 250, 3)
        .await
        .expect("workload during replication");
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(120)).await;
    wait_caught_up(&env, 1, "beta", Duration::from_secs(120)).await;
    assert!(!running.is_finished(), "replicate must still be running");
    running.stop().await.expect("clean stop");
    assert_identical(&env, "app", 0, "alpha_db", &["all_types"]).await;
    assert_identical(&env, "app", 1, "app", &["composite_pk", "binary_pk"]).await;
    // The other service's tables never reach a target that does not own them.
    let mut t0 = env.targets[0].conn().await.unwrap();
    let n: Option<u64> = mysql_async::prelude::Queryable::query_first(&mut t0, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME IN ('composite_pk','binary_pk')").await.unwrap();
    assert_eq!(n, Some(0));
}

mod lag_is_exact_while_the_source_is_idle {
    use super::*;
    flavor_matrix!(idle_scenario: all);
}

/// Nothing is written for several seconds: the server's own heartbeat events say the reader is at the end of the
/// binlog, so the lag that status, metrics and the cutover's readiness read stays at 0 (1 across a second's edge),
/// and it never grows with the idle time.
async fn idle_scenario(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), false).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE idle").await;
    exec(&mut src, "CREATE TABLE idle.t (id INT PRIMARY KEY)").await;
    exec(&mut src, "INSERT INTO idle.t VALUES (1), (2)").await;
    let svc = [Svc {
        name: "idle",
        target: 0,
        tables: &["idle.t"],
        rename: &[],
    }];
    let running = spawn_replicate(env.config(&svc, ""), vec![]);
    wait_caught_up(&env, 0, "idle", Duration::from_secs(60)).await;
    let mut tgt = env.targets[0].conn().await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let live = running
            .control
            .status()
            .into_iter()
            .find(|s| s.service == "idle")
            .and_then(|s| s.lag_seconds);
        let stored: Option<i64> = mysql_async::prelude::Queryable::query_first(
            &mut tgt,
            "SELECT UNIX_TIMESTAMP() - source_ts FROM _dropship.positions WHERE service = 'idle'",
        )
        .await
        .unwrap();
        assert!(
            live.is_some_and(|l| l <= 1),
            "live lag while idle: {live:?}"
        );
        assert!(
            stored.is_some_and(|l| l <= 1),
            "stored lag while idle: {stored:?}"
        );
    }
    running.stop().await.expect("clean stop");
}

mod a_refused_write_or_a_column_missing_on_the_target_pauses_with_a_hint_and_counts_nothing {
    use super::*;
    flavor_matrix!(drift_scenario: all);
}

fn status(running: &Running, service: &str) -> dropship_core::control::ServiceStatus {
    running
        .control
        .status()
        .into_iter()
        .find(|s| s.service == service)
        .expect("service status")
}

async fn wait_paused(running: &Running, service: &str) -> dropship_core::control::ServiceStatus {
    let start = std::time::Instant::now();
    loop {
        let s = status(running, service);
        if s.state == "paused" {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "service never paused: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The target drifts from the source twice: a column too narrow for a new value (the target refuses the write),
/// then a column dropped on the target. Each pauses the service with an error naming the cause, a non-empty hint,
/// and no rows counted as applied for the batch that wrote nothing; after the fix and a resume, nothing is lost.
async fn drift_scenario(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), false).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE d").await;
    exec(
        &mut src,
        "CREATE TABLE d.t (id INT PRIMARY KEY, name VARCHAR(20), note VARCHAR(20))",
    )
    .await;
    exec(&mut src, "INSERT INTO d.t VALUES (1, 'a', 'x')").await;
    let svc = [Svc {
        name: "d",
        target: 0,
        tables: &["d.t"],
        rename: &[],
    }];
    let running = spawn_replicate(env.config(&svc, ""), vec![]);
    wait_caught_up(&env, 0, "d", Duration::from_secs(60)).await;
    let mut tgt = env.targets[0].conn().await.unwrap();

    exec(&mut tgt, "ALTER TABLE d.t MODIFY name VARCHAR(2)").await;
    let before = status(&running, "d").rows_applied;
    exec(&mut src, "INSERT INTO d.t VALUES (2, 'much too long', 'y')").await;
    let s = wait_paused(&running, "d").await;
    assert!(
        s.last_error.contains("name") || s.last_error.contains("1406"),
        "{s:?}"
    );
    let hint = s.last_error.split("(hint: ").nth(1).unwrap_or("");
    assert!(
        hint.trim_end_matches(')').trim().len() > 10,
        "a hint that says what to do: {s:?}"
    );
    assert_eq!(
        s.rows_applied, before,
        "a batch that wrote nothing counts nothing: {s:?}"
    );
    exec(&mut tgt, "ALTER TABLE d.t MODIFY name VARCHAR(20)").await;
    running.control.set_paused("d", false);
    wait_caught_up(&env, 0, "d", Duration::from_secs(60)).await;
    assert_eq!(status(&running, "d").rows_applied, before + 1);

    exec(&mut tgt, "ALTER TABLE d.t DROP COLUMN note").await;
    exec(&mut src, "UPDATE d.t SET note = 'changed' WHERE id = 1").await;
    let s = wait_paused(&running, "d").await;
    assert!(
        s.last_error.contains("column note")
            && s.last_error.contains("does not exist on the target"),
        "{s:?}"
    );
    assert_eq!(s.rows_applied, before + 1, "{s:?}");
    exec(&mut tgt, "ALTER TABLE d.t ADD COLUMN note VARCHAR(20)").await;
    exec(&mut tgt, "UPDATE d.t SET note = 'x' WHERE id = 1").await;
    exec(&mut tgt, "UPDATE d.t SET note = 'y' WHERE id = 2").await;
    running.control.set_paused("d", false);
    wait_caught_up(&env, 0, "d", Duration::from_secs(60)).await;
    running.stop().await.expect("clean stop");
    assert_identical(&env, "d", 0, "d", &["t"]).await;
}

mod resumes_by_gtid_auto_position_with_tagged_gtids_when_the_stored_offset_is_unusable {
    use super::*;
    flavor_matrix!(gtid_scenario: mysql_to_mysql, mysql_to_mariadb);
}

/// Inserts rows `ids`, every third in a tagged GTID (MySQL 8.3+), and deletes the row before every fifth.
async fn tagged_writes(src: &mut mysql_async::Conn, ids: std::ops::Range<u32>) {
    for id in ids {
        let tagged = id % 3 == 0;
        if tagged {
            exec(src, &format!("SET gtid_next = 'AUTOMATIC:t{}'", id % 2)).await;
        }
        exec(src, &format!("INSERT INTO g.t VALUES ({id}, {})", id * 7)).await;
        if tagged {
            exec(src, "SET gtid_next = 'AUTOMATIC'").await;
        }
        if id % 5 == 0 {
            exec(src, &format!("DELETE FROM g.t WHERE id = {}", id - 1)).await;
        }
    }
}

/// A MySQL source with gtid_mode=ON resumes by its executed GTID set, tags included. The test makes the stored
/// file offset unusable (it points inside an event) and removes the relay log, so a resume by file and offset
/// would fail: the target ends identical only if the source sent exactly the transactions it lacked.
async fn gtid_scenario(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), false).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE g").await;
    exec(
        &mut src,
        "CREATE TABLE g.t (id INT PRIMARY KEY, n INT NOT NULL)",
    )
    .await;
    tagged_writes(&mut src, 1..10).await;
    let svc = [Svc {
        name: "g",
        target: 0,
        tables: &["g.t"],
        rename: &[],
    }];
    let running = spawn_replicate(env.config(&svc, ""), vec![]);
    tagged_writes(&mut src, 10..40).await;
    wait_caught_up(&env, 0, "g", Duration::from_secs(60)).await;
    running.stop().await.expect("clean stop");
    let mut tgt = env.targets[0].conn().await.unwrap();
    let stored: Option<String> = mysql_async::prelude::Queryable::query_first(
        &mut tgt,
        "SELECT gtid FROM _dropship.positions WHERE service = 'g'",
    )
    .await
    .unwrap();
    let stored = stored.unwrap_or_default();
    assert!(
        stored.contains(":t0:") && stored.contains(":t1:"),
        "tags in the stored GTID set {stored}"
    );

    tagged_writes(&mut src, 40..70).await;
    exec(
        &mut tgt,
        "UPDATE _dropship.positions SET binlog_pos = 5 WHERE service = 'g'",
    )
    .await;
    std::fs::remove_dir_all(env.dir.path().join("state")).expect("remove the relay log");
    let running = spawn_replicate(env.config(&svc, ""), vec![]);
    tagged_writes(&mut src, 70..90).await;
    wait_caught_up(&env, 0, "g", Duration::from_secs(60)).await;
    assert!(!running.is_finished(), "replicate must still be running");
    running.stop().await.expect("clean stop");
    assert_identical(&env, "g", 0, "g", &["t"]).await;
    let n: Option<u64> =
        mysql_async::prelude::Queryable::query_first(&mut tgt, "SELECT COUNT(*) FROM g.t")
            .await
            .unwrap();
    assert_eq!(n, Some(89 - 17), "rows on the target");
}

/// `binlog_transaction_compression=ON`: one transaction of 192 MiB of row data arrives as a single compressed
/// TRANSACTION_PAYLOAD event of tens of kilobytes, and reaches the target whole. (The reader's memory on the same
/// transaction is measured in `tests/reader_memory.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_192_mib_transaction_replicates_whole() {
    if !MYSQL_MYSQL.available() {
        return;
    }
    let env = start_pair(
        MYSQL_MYSQL,
        1,
        ServerOptions::source().with_log_bin_compress(true),
        false,
    )
    .await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE z").await;
    exec(
        &mut src,
        "CREATE TABLE z.big (id INT PRIMARY KEY, v LONGTEXT NOT NULL)",
    )
    .await;
    exec(&mut src, "INSERT INTO z.big VALUES (0, 'seed')").await;
    let svc = [Svc {
        name: "z",
        target: 0,
        tables: &["z.big"],
        rename: &[],
    }];
    let running = spawn_replicate(env.config(&svc, ""), vec![]);
    wait_caught_up(&env, 0, "z", Duration::from_secs(60)).await;
    write_compressed_192_mib(&mut src).await;
    wait_caught_up(&env, 0, "z", Duration::from_secs(300)).await;
    assert!(!running.is_finished(), "replicate must still be running");
    running.stop().await.expect("clean stop");
    let mut tgt = env.targets[0].conn().await.unwrap();
    let got: Option<(u64, u64)> = mysql_async::prelude::Queryable::query_first(
        &mut tgt,
        "SELECT COUNT(*), SUM(LENGTH(v)) FROM z.big",
    )
    .await
    .unwrap();
    assert_eq!(got, Some((3073, 3072 * 65536 + 4)));
    assert_identical(&env, "z", 0, "z", &["big"]).await;
}
