//! Initial copy: kill -9 in the middle, then a restart resumes after the last
//! committed chunk (finished chunks are not copied again) and ends identical,
//! with writers changing the rows being copied throughout.

mod common;

use common::*;
use dropship_sandbox::ServerOptions;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

async fn copied(c: &mut mysql_async::Conn) -> Option<u64> {
    let n: Option<Option<u64>> = c
        .query_first("SELECT MAX(rows_copied) FROM _dropship.copy_chunks WHERE service = 'big'")
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
    assert_eq!(child.terminate(), Some(0));
    assert_identical(&env, "big", 0, "big", &["t"]).await;
}
