//! Crashes and outages: kill -9 of `replicate`, kill -9 of a target server,
//! a target down while the source purges the binlogs it needs. Every case
//! ends with the targets identical to the source.

use crate::common::*;
use dropship_sandbox::workload::{self, Workload};
use dropship_sandbox::ServerOptions;
use mysql_async::prelude::Queryable;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

const SERVICES: [Svc<'static>; 2] = [
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

async fn setup() -> (Env, mysql_async::Conn) {
    setup_pair(Pair::default_pair()).await
}

async fn setup_pair(pair: Pair) -> (Env, mysql_async::Conn) {
    // Small binlog files: rotations happen all the time during these tests.
    let env = start_pair(
        pair,
        2,
        ServerOptions::source().with_max_binlog_size(256 * 1024),
        true,
    )
    .await;
    let mut src = env.source.conn().await.unwrap();
    exec_script(&mut src, &workload::schema_sql("app")).await;
    (env, src)
}

async fn assert_all_identical(env: &Env) {
    assert_identical(env, "app", 0, "alpha_db", &["all_types"]).await;
    assert_identical(env, "app", 1, "app", &["composite_pk", "binary_pk"]).await;
}

mod kill_9_of_replicate_at_random_points_then_restart_ends_identical {
    use super::*;
    flavor_matrix!(scenario: all);
}

async fn scenario(pair: Pair) {
    let (env, mut src) = setup_pair(pair).await;
    Workload::new("app").run(&mut src, 40, 10).await.unwrap();
    let port = free_port();
    let cfg = env.config_file(&SERVICES, "", port);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let wl = Workload::new("app");
    let mut child = spawn_binary(&cfg, &["-v", "replicate"], "replicate.log");
    for round in 0..4u64 {
        // Writes run while dropship is killed at a random moment.
        let mut c = env.source.conn().await.unwrap();
        let w = wl.clone();
        let writes = tokio::spawn(async move { w.run(&mut c, 80, 100 + round).await });
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1500))).await;
        child.kill9();
        writes.await.unwrap().unwrap();
        child = spawn_binary(&cfg, &["-v", "replicate"], "replicate.log");
    }
    wait_caught_up_of(&env, 0, "alpha", Duration::from_secs(120), &child).await;
    wait_caught_up_of(&env, 1, "beta", Duration::from_secs(120), &child).await;
    // The last process may not have started yet (the killed one had caught
    // up): wait for its control endpoint, which listens only once SIGTERM is
    // handled.
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "replicate's control endpoint never listened; log:\n{}",
            child.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        child.terminate().await,
        Some(0),
        "SIGTERM must stop replicate cleanly; log:\n{}",
        child.log_text()
    );
    assert_all_identical(&env).await;
    // MySQL adds an `Encrypted` column: read rows, not a fixed tuple.
    let rotations: Vec<mysql_async::Row> = src.query("SHOW BINARY LOGS").await.unwrap();
    assert!(
        rotations.len() > 3,
        "the test must cross binlog rotations, saw {}",
        rotations.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_killed_mid_stream_recovers_and_the_other_service_never_pauses_even_after_a_purge()
{
    let (mut env, mut src) = setup().await;
    let running = spawn_replicate(
        env.config(&SERVICES, "[replicate]\nbatch_delay = \"20ms\"\n"),
        vec![],
    );
    Workload::new("app").run(&mut src, 30, 1).await.unwrap();
    wait_caught_up(&env, 1, "beta", Duration::from_secs(60)).await;

    // beta's target dies; alpha keeps going with low lag.
    env.targets[1].kill9().await.unwrap();
    let wl = Workload::new("app");
    let start = Instant::now();
    wl.run(&mut src, 150, 2).await.unwrap();
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(60)).await;
    let alpha_catchup = start.elapsed();
    let alpha = running
        .control
        .status()
        .into_iter()
        .find(|s| s.service == "alpha")
        .unwrap();
    assert_eq!(
        alpha.state, "replicating",
        "alpha must not pause while beta's target is down"
    );

    // The source purges every binlog the reader has already read; beta has
    // applied none of the recent ones, so it can only catch up from the relay log.
    exec(&mut src, "FLUSH BINARY LOGS").await;
    let last: Vec<(String, u64)> = src.query("SHOW BINARY LOGS").await.unwrap();
    let newest = last.last().unwrap().0.clone();
    exec(&mut src, &format!("PURGE BINARY LOGS TO '{newest}'")).await;
    let beta_pos = target_position(&env.targets[1], "beta").await;
    assert!(beta_pos.is_none(), "beta's target is down");

    env.targets[1].restart().await.unwrap();
    wait_caught_up(&env, 1, "beta", Duration::from_secs(120)).await;
    assert!(alpha_catchup < Duration::from_secs(60));
    running.stop().await.unwrap();
    assert_all_identical(&env).await;
}

mod every_named_crash_point_in_the_reader_copy_and_applier_then_a_restart_ends_identical {
    use super::*;
    flavor_matrix!(crash_points_scenario: mysql_to_mysql, mariadb_to_mariadb);
}

/// Walks `dropship_core::crash::POINTS`: for each, `replicate` runs with
/// `DROPSHIP_CRASH_AT` under live writes (and a DDL, for the DDL point) until
/// it aborts there; a plain `replicate` then catches up and the target equals
/// the source. Before each copy point the service is made new again (target
/// tables, its `_dropship` rows and the relay log removed), so that it copies.
async fn crash_points_scenario(pair: Pair) {
    use std::os::unix::process::ExitStatusExt;
    let env = start_pair(pair, 1, ServerOptions::source(), true).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE cp").await;
    exec(
        &mut src,
        "CREATE TABLE cp.t (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL, n INT NOT NULL)",
    )
    .await;
    for b in 0..3 {
        let rows: Vec<String> = (1..=1000)
            .map(|i| {
                let id = b * 1000 + i;
                format!("({id}, 'row {id}', {})", id * 7)
            })
            .collect();
        exec(
            &mut src,
            &format!("INSERT INTO cp.t VALUES {}", rows.join(", ")),
        )
        .await;
    }
    let svc = [Svc {
        name: "cp",
        target: 0,
        tables: &["cp.*"],
        rename: &[],
    }];
    let port = free_port();
    let cfg = env.config_file(&svc, "[replicate]\ncopy_chunk_rows = 200\n", port);
    let mut next_id = 10_000;
    let mut columns = 0;
    for point in dropship_core::crash::POINTS {
        if point.starts_with("copy:") {
            let mut tgt = env.targets[0].conn().await.unwrap();
            exec(&mut tgt, "DROP DATABASE IF EXISTS cp").await;
            for t in ["positions", "copy_state", "copy_chunks", "service_state"] {
                exec(
                    &mut tgt,
                    &format!("DELETE FROM `_dropship`.`{t}` WHERE service = 'cp'"),
                )
                .await;
            }
            let _ = std::fs::remove_dir_all(env.dir.path().join("state"));
        }
        let nth = match point {
            "copy:chunk-committed" | "apply:batch-committed" => 2,
            "reader:commit-relayed" => 5,
            _ => 1,
        };
        let crash_at = format!("{point}#{nth}");
        let mut child = spawn_binary_env(
            &cfg,
            &["replicate"],
            "crash-points.log",
            &[("DROPSHIP_CRASH_AT", crash_at.as_str())],
        );
        let t0 = Instant::now();
        let status = loop {
            if let Ok(Some(st)) = child.child.try_wait() {
                break st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "{crash_at} was never reached; log:\n{}",
                child.log_text()
            );
            next_id += 1;
            exec(
                &mut src,
                &format!(
                    "INSERT INTO cp.t (id, v, n) VALUES ({next_id}, 'live {next_id}', {next_id})"
                ),
            )
            .await;
            exec(
                &mut src,
                &format!(
                    "UPDATE cp.t SET n = n + 1 WHERE id = {}",
                    next_id % 3000 + 1
                ),
            )
            .await;
            if point == "apply:ddl-applied" && columns < 3 && t0.elapsed() > Duration::from_secs(2)
            {
                columns += 1;
                exec(
                    &mut src,
                    &format!("ALTER TABLE cp.t ADD COLUMN c{columns} INT NULL"),
                )
                .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            status.signal(),
            Some(6),
            "{crash_at}: replicate must abort there (SIGABRT), got {status:?}; log:\n{}",
            child.log_text()
        );
        assert!(
            child
                .log_text()
                .contains(&format!("DROPSHIP_CRASH_AT={crash_at}: aborting here")),
            "{crash_at}: log:\n{}",
            child.log_text()
        );
        let mut child = spawn_binary(&cfg, &["replicate"], "crash-points.log");
        wait_caught_up(&env, 0, "cp", Duration::from_secs(120)).await;
        let t1 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t1.elapsed() < Duration::from_secs(60),
                "no control endpoint"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            child.terminate().await,
            Some(0),
            "{crash_at}: {}",
            child.log_text()
        );
        assert_identical(&env, "cp", 0, "cp", &["t"]).await;
        eprintln!("{crash_at}: aborted, restarted, identical");
    }
}

/// A kill between a metadata migration's DDL (not transactional) and its history row: the next start
/// finishes the migration instead of failing on the columns forever (ERROR 1060, found by the kill -9 test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_migration_cut_half_way_runs_again_whole_at_the_next_start() {
    let env = start_env(1, ServerOptions::source()).await;
    let cfg = env.config(&SERVICES[..1], "");
    let target = &cfg.services[0].target;
    dropship_core::meta::migrate(target)
        .await
        .expect("first migration");
    let mut t = env.targets[0].conn().await.unwrap();
    // What a kill after V4's ALTER and before its history row leaves.
    exec(
        &mut t,
        "DELETE FROM `_dropship`.`refinery_schema_history` WHERE version = 4",
    )
    .await;
    exec(&mut t, "DROP TABLE `_dropship`.`copy_deferred_indexes`").await;
    dropship_core::meta::migrate(target)
        .await
        .expect("the half-applied migration is finished at the next start");
    let n: Option<u64> = t
        .query_first("SELECT COUNT(*) FROM `_dropship`.`refinery_schema_history` WHERE version = 4")
        .await
        .unwrap();
    assert_eq!(n, Some(1));
    let cols: Option<u64> = t
        .query_first("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '_dropship' AND TABLE_NAME = 'copy_chunks' AND COLUMN_NAME IN ('range_lo', 'range_hi')")
        .await
        .unwrap();
    assert_eq!(cols, Some(2));
    let tables: Option<u64> = t
        .query_first("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '_dropship' AND TABLE_NAME = 'copy_deferred_indexes'")
        .await
        .unwrap();
    assert_eq!(tables, Some(1));
}
