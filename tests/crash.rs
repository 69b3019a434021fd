//! Crashes and outages: kill -9 of `replicate`, kill -9 of a target server,
//! a target down while the source purges the binlogs it needs. Every case
//! ends with the targets identical to the source.

mod common;

use common::*;
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
    for stmt in workload::schema_sql("app")
        .split(";\n")
        .filter(|s| !s.trim().is_empty())
    {
        exec(&mut src, stmt).await;
    }
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
    let mut child = spawn_binary(&cfg, &["replicate"], "replicate.log");
    for round in 0..4u64 {
        // Writes run while dropship is killed at a random moment.
        let mut c = env.source.conn().await.unwrap();
        let w = wl.clone();
        let writes = tokio::spawn(async move { w.run(&mut c, 80, 100 + round).await });
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1500))).await;
        child.kill9();
        writes.await.unwrap().unwrap();
        child = spawn_binary(&cfg, &["replicate"], "replicate.log");
    }
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(120)).await;
    wait_caught_up(&env, 1, "beta", Duration::from_secs(120)).await;
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
        child.terminate(),
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
