//! `dropship verify` against real MariaDB servers: no false differences while
//! live writers run and replicate applies them; every kind of stored-bit
//! difference injected on the target is named with its key; schema drift is
//! reported per table; an interrupted run resumes; exit codes of the binary.

use crate::common::*;
use dropship_core::verify::{self, report::RowKind, Options};
use dropship_sandbox::monolith::{self, LiveWriters, LiveWritersConfig};
use dropship_sandbox::workload::{self, Workload};
use dropship_sandbox::ServerOptions;
use mysql_async::prelude::Queryable;
use std::time::Duration;

const KINDS: &str = "CREATE TABLE app.kinds (
  id INT NOT NULL PRIMARY KEY,
  ci VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL,
  pad VARCHAR(20) NULL,
  nul VARCHAR(20) NULL,
  dt DATETIME(6) NULL,
  f FLOAT NULL,
  d DOUBLE NULL,
  vb VARBINARY(20) NULL
)";

/// Rows 1..=8 identical on both sides at first; each id gets one kind of difference.
const KINDS_ROWS: &str = "INSERT INTO app.kinds VALUES
 (1, 'a', NULL, NULL, NULL, NULL, NULL, NULL),
 (2, NULL, 'x', NULL, NULL, NULL, NULL, NULL),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, NULL, NULL, NULL, '2024-01-02 03:04:05.000006', NULL, NULL, NULL),
 (5, NULL, NULL, NULL, NULL, 0.1, NULL, NULL),
 (6, NULL, NULL, NULL, NULL, NULL, 0.1, NULL),
 (7, NULL, NULL, NULL, NULL, NULL, NULL, X'6162'),
 (8, 'gone', NULL, NULL, NULL, NULL, NULL, NULL),
 (9, 'same', 'same', 'same', '2024-01-01 00:00:00', 1.5, 2.5, X'00'),
 (10, NULL, NULL, NULL, NULL, NULL, -3e-21, NULL)";

/// Waits until the service finished its initial copy and applied everything the source wrote.
async fn wait_replicating(env: &Env, service: &str) {
    let mut t = env.targets[0].conn().await.unwrap();
    for _ in 0..1200 {
        let st: Option<String> = t
            .exec_first(
                "SELECT state FROM `_dropship`.`service_state` WHERE service = ?",
                (service,),
            )
            .await
            .unwrap_or(None);
        if st.as_deref() == Some("replicating") {
            wait_caught_up(env, 0, service, Duration::from_secs(120)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("service {service} never reached the replicating state");
}

fn opts(cfg: &dropship_core::config::Config, service: &str) -> Options {
    let mut o = Options::new(cfg, service);
    // A wait, not a performance assertion: a loaded CI machine may lag.
    o.lag_timeout = Duration::from_secs(90);
    o
}

mod verify_is_silent_under_live_writes_and_names_every_injected_difference_with_its_key {
    use super::*;
    flavor_matrix!(scenario: all);
}

async fn scenario(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), true).await;
    let mut src = env.source.conn().await.unwrap();
    exec_script(&mut src, &monolith::schema_sql()).await;
    monolith::seed(&mut src, 3000, 500, 7)
        .await
        .expect("seed shop");
    exec_script(&mut src, &workload::schema_sql("app")).await;
    exec(&mut src, KINDS).await;
    exec(&mut src, KINDS_ROWS).await;
    exec(
        &mut src,
        "CREATE TABLE app.drift (id INT PRIMARY KEY, a INT, b VARCHAR(10))",
    )
    .await;
    exec(
        &mut src,
        "INSERT INTO app.drift VALUES (1, 1, 'x'), (2, 2, 'y')",
    )
    .await;
    let wl = Workload::new("app");
    wl.run(&mut src, 200, 1)
        .await
        .expect("workload before replicate");

    let services = [
        Svc {
            name: "shop",
            target: 0,
            tables: &["shop.*"],
            rename: &[],
        },
        Svc {
            name: "app",
            target: 0,
            tables: &["app.*"],
            rename: &[("app", "app_t")],
        },
    ];
    let cfg = env.config(&services, "");
    let running = spawn_replicate(cfg.clone(), vec![]);
    wait_replicating(&env, "shop").await;
    wait_replicating(&env, "app").await;

    // 1. Four live writers on shop and the random workload on app while verify runs: never a difference.
    let writers = LiveWriters::start(
        env.source.pool(),
        LiveWritersConfig {
            writers: 4,
            rate_per_sec: 400.0,
            seed: 3,
        },
    );
    let wl2 = wl.clone();
    let src_pool = env.source.pool();
    let app_writer = tokio::spawn(async move {
        let mut c = src_pool.get_conn().await.unwrap();
        for seed in 10..14 {
            wl2.run(&mut c, 150, seed)
                .await
                .expect("workload during verify");
        }
    });
    let mut rechecked = 0;
    for round in 0..2 {
        for svc in ["shop", "app"] {
            let mut o = opts(&cfg, svc);
            if svc == "app" {
                o.tables = vec![
                    "app.all_types".into(),
                    "app.composite_pk".into(),
                    "app.binary_pk".into(),
                ];
            }
            let r = verify::run(&cfg, &o)
                .await
                .expect("verify under live writes");
            assert!(
                r.identical,
                "round {round}: false difference under live writes:\n{}",
                r.to_text()
            );
            assert!(r.rows_compared > 0);
            assert!(r.replication_running, "{}", r.to_text());
            rechecked += r.tables.iter().map(|t| t.rechecked_chunks).sum::<u64>();
        }
    }
    assert!(
        rechecked > 0,
        "no chunk ever saw a change in flight: the live-write path was not exercised"
    );
    app_writer.await.unwrap();
    let rep = writers.stop().await;
    assert!(rep.acknowledged > 0, "the writers wrote nothing: {rep:?}");
    wait_caught_up(&env, 0, "shop", Duration::from_secs(120)).await;
    wait_caught_up(&env, 0, "app", Duration::from_secs(120)).await;

    // 2. Inject one difference of every kind on the target, directly, while replicate runs.
    let mut tgt = env.targets[0].conn().await.unwrap();
    let pk_row: (u32, String, i64) = tgt.query_first("SELECT tenant_id, region, seq FROM app_t.composite_pk ORDER BY tenant_id, region, seq LIMIT 1").await.unwrap().expect("a composite_pk row");
    let bin_key: Vec<u8> = tgt
        .query_first("SELECT k FROM app_t.binary_pk ORDER BY k LIMIT 1")
        .await
        .unwrap()
        .expect("a binary_pk row");
    for stmt in [
        "SET foreign_key_checks = 0",
        "UPDATE app_t.kinds SET ci = 'A' WHERE id = 1",
        "UPDATE app_t.kinds SET pad = 'x ' WHERE id = 2",
        "UPDATE app_t.kinds SET nul = '' WHERE id = 3",
        "UPDATE app_t.kinds SET dt = '2024-01-02 03:04:05.000007' WHERE id = 4",
        "UPDATE app_t.kinds SET f = 0.10000000894069672 WHERE id = 5",
        "UPDATE app_t.kinds SET d = 0.10000000000000002 WHERE id = 6",
        "UPDATE app_t.kinds SET vb = X'616200' WHERE id = 7",
        // The next double: MySQL prints both as -3e-21.
        "UPDATE app_t.kinds SET d = -3.0000000000000003e-21 WHERE id = 10",
        "DELETE FROM app_t.kinds WHERE id = 8",
        "INSERT INTO app_t.kinds (id, ci) VALUES (1000, 'extra')",
        "ALTER TABLE app_t.drift DROP COLUMN b",
    ] {
        exec(&mut tgt, stmt).await;
    }
    tgt.exec_drop("UPDATE app_t.composite_pk SET payload = CONCAT(IFNULL(payload, ''), '!') WHERE tenant_id = ? AND region = ? AND seq = ?", pk_row.clone()).await.unwrap();
    tgt.exec_drop(
        "DELETE FROM app_t.binary_pk WHERE k = ?",
        (bin_key.clone(),),
    )
    .await
    .unwrap();
    // Proof that the naive expressions would miss these: HEX(double) rounds, CAST(float AS CHAR) keeps 6 digits.
    let naive: (String, String) = tgt
        .query_first("SELECT HEX(0.1e0), CAST(CAST(0.10000000894069672 AS FLOAT) AS CHAR)")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(naive, ("0".to_string(), "0.1".to_string()));

    let r = verify::run(&cfg, &opts(&cfg, "app"))
        .await
        .expect("verify after injection");
    let text = r.to_text();
    assert!(!r.identical, "{text}");
    let kinds = r
        .tables
        .iter()
        .find(|t| t.table == "app.kinds")
        .expect("kinds report");
    let expect = [
        (1, "ci"),
        (2, "pad"),
        (3, "nul"),
        (4, "dt"),
        (5, "f"),
        (6, "d"),
        (7, "vb"),
        (10, "d"),
    ];
    for (id, col) in expect {
        let row = kinds
            .rows
            .iter()
            .find(|r| r.key[0].value == id.to_string())
            .unwrap_or_else(|| panic!("row id={id} ({col}) not reported:\n{text}"));
        assert_eq!(row.kind, RowKind::Different, "{text}");
        let cols: Vec<&str> = row.columns.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(cols, vec![col], "id={id}:\n{text}");
    }
    let vb = kinds.rows.iter().find(|r| r.key[0].value == "7").unwrap();
    assert_eq!(
        (vb.columns[0].source.as_str(), vb.columns[0].target.as_str()),
        ("0x6162", "0x616200"),
        "binary shown as hex"
    );
    let kind_of = |id: &str| {
        kinds
            .rows
            .iter()
            .find(|r| r.key[0].value == id)
            .map(|r| r.kind.clone())
    };
    assert_eq!(kind_of("8"), Some(RowKind::MissingOnTarget), "{text}");
    assert_eq!(kind_of("1000"), Some(RowKind::ExtraOnTarget), "{text}");
    assert_eq!(
        kind_of("9"),
        None,
        "an identical row is never reported:\n{text}"
    );
    assert_eq!(kinds.differing_rows, 10, "{text}");

    let comp = r
        .tables
        .iter()
        .find(|t| t.table == "app.composite_pk")
        .unwrap();
    assert_eq!(comp.differing_rows, 1, "{text}");
    let keys: Vec<(&str, &str)> = comp.rows[0]
        .key
        .iter()
        .map(|k| (k.column.as_str(), k.value.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("tenant_id", pk_row.0.to_string().as_str()),
            ("region", format!("'{}'", pk_row.1).as_str()),
            ("seq", pk_row.2.to_string().as_str())
        ]
    );
    assert_eq!(comp.rows[0].columns[0].column, "payload");

    let bin = r
        .tables
        .iter()
        .find(|t| t.table == "app.binary_pk")
        .unwrap();
    assert_eq!(bin.differing_rows, 1, "{text}");
    assert_eq!(bin.rows[0].kind, RowKind::MissingOnTarget);
    assert!(
        bin.rows[0].key[0].value.starts_with("0x") || bin.rows[0].key[0].value.starts_with('\''),
        "{text}"
    );

    let drift = r.tables.iter().find(|t| t.table == "app.drift").unwrap();
    assert_eq!(
        drift.drift,
        vec!["column b (varchar(10)) is missing on the target".to_string()],
        "{text}"
    );
    assert_eq!(
        drift.differing_rows, 0,
        "drift is not reported as every row differing:\n{text}"
    );
    assert!(
        text.contains("schema: column b (varchar(10)) is missing on the target"),
        "{text}"
    );
    assert!(
        r.tables
            .iter()
            .find(|x| x.table == "app.all_types")
            .unwrap()
            .identical(),
        "{text}"
    );

    // 3. The real binary: exit 1 with JSON naming the rows, 0 for the untouched service, 2 for an error.
    let file = env.config_file(&services, "", 0);
    let bin_run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dropship"))
            .arg("-c")
            .arg(&file)
            .args(args)
            .env("DS_TEST_SOURCE_PW", SOURCE_PASSWORD)
            .env("DS_TEST_TARGET_PW", TARGET_PASSWORD)
            .output()
            .expect("run dropship")
    };
    let out = bin_run(&[
        "verify",
        "--service",
        "app",
        "--table",
        "app.kinds",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["identical"], false);
    assert_eq!(v["tables"][0]["differing_rows"], 10);
    let out = bin_run(&["verify", "--service", "shop"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("identical"));
    let out = bin_run(&["verify", "--service", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no service named"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(TARGET_PASSWORD));

    running.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_verify_resumes_after_its_last_finished_chunk_without_counting_twice() {
    let env = start_env(1, ServerOptions::source()).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE big").await;
    exec(
        &mut src,
        "CREATE TABLE big.t (id INT PRIMARY KEY, v VARCHAR(40))",
    )
    .await;
    exec(
        &mut src,
        "INSERT INTO big.t SELECT seq, CONCAT('v', seq) FROM big.seq_1_to_20000",
    )
    .await;
    let services = [Svc {
        name: "big",
        target: 0,
        tables: &["big.t"],
        rename: &[],
    }];
    let running = spawn_replicate(env.config(&services, ""), vec![]);
    wait_replicating(&env, "big").await;
    running.stop().await.expect("clean stop");

    // Throttled so that it is still running when killed.
    let file = env.config_file(&services, "[replicate]\nmax_rows_per_second = 2000", 0);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dropship"))
        .args(["verify", "--service", "big"])
        .arg("-c")
        .arg(&file)
        .env("DS_TEST_SOURCE_PW", SOURCE_PASSWORD)
        .env("DS_TEST_TARGET_PW", TARGET_PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn verify");
    let mut tgt = env.targets[0].conn().await.unwrap();
    let mut saved: Option<String> = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        saved = tgt.query_first("SELECT last_key FROM `_dropship`.`verify_progress` WHERE service = 'big' AND last_key IS NOT NULL AND done = 0").await.unwrap_or(None);
        if saved.is_some() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let saved = saved.expect("progress was stored while verify ran");
    assert!(saved.starts_with('['), "{saved}");

    let cfg = env.config(&services, "");
    let r = verify::run(&cfg, &opts(&cfg, "big"))
        .await
        .expect("resumed verify");
    assert!(r.identical, "{}", r.to_text());
    assert!(r.tables[0].resumed, "{}", r.to_text());
    assert_eq!(
        r.rows_compared,
        20000,
        "each row counted once: {}",
        r.to_text()
    );
    // A finished run forgets its progress: the next one starts over.
    let left: Option<u64> = tgt
        .query_first("SELECT COUNT(*) FROM `_dropship`.`verify_progress` WHERE service = 'big'")
        .await
        .unwrap();
    assert_eq!(left, Some(0));
    let r = verify::run(&cfg, &opts(&cfg, "big"))
        .await
        .expect("fresh verify");
    assert!(!r.tables[0].resumed);
    assert_eq!(r.rows_compared, 20000);
}
