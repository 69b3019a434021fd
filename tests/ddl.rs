//! Schema changes on mapped tables reach the target in order with the rows
//! around them (with database renames); DDL on unmapped tables is ignored;
//! DDL the target cannot apply pauses only its own service.

mod common;

use common::*;
use dropship_sandbox::ServerOptions;
use mysql_async::prelude::Queryable;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_ddl_is_applied_in_order_and_an_unappliable_one_pauses_only_its_service() {
    let env = start_env(2, ServerOptions::source()).await;
    let mut src = env.source.conn().await.unwrap();
    for s in [
        "CREATE DATABASE shop2",
        "CREATE TABLE shop2.items (id INT PRIMARY KEY, uid INT, name VARCHAR(20), note VARCHAR(10))",
        "CREATE TABLE shop2.order_a (id INT PRIMARY KEY, v INT)",
        "CREATE TABLE shop2.unmapped (id INT PRIMARY KEY, v INT)",
        "INSERT INTO shop2.items VALUES (1, 1, 'one', 'n1'), (2, 2, 'two', NULL)",
        "INSERT INTO shop2.order_a VALUES (1, 10), (2, 20)",
        "INSERT INTO shop2.unmapped VALUES (1, 1)",
    ] {
        exec(&mut src, s).await;
    }
    let services = [
        Svc {
            name: "items",
            target: 0,
            tables: &["shop2.items"],
            rename: &[("shop2", "items_db")],
        },
        Svc {
            name: "orders",
            target: 1,
            tables: &["shop2.order_*"],
            rename: &[],
        },
    ];
    let running = spawn_replicate(env.config(&services, ""), vec![]);
    for s in [
        "ALTER TABLE shop2.items ADD COLUMN extra VARCHAR(20) NOT NULL DEFAULT 'x'",
        "INSERT INTO shop2.items (id, uid, name, extra) VALUES (3, 3, 'three', 'é✓')",
        "ALTER TABLE shop2.items MODIFY COLUMN note VARCHAR(40)",
        "UPDATE shop2.items SET note = REPEAT('z', 35) WHERE id = 1",
        "ALTER TABLE shop2.items CHANGE COLUMN note remark VARCHAR(40)",
        "ALTER TABLE shop2.items ADD INDEX ix_name (name)",
        "CREATE UNIQUE INDEX ux_uid ON shop2.items (uid)",
        "DROP INDEX ix_name ON shop2.items",
        "ALTER TABLE shop2.items DROP COLUMN remark",
        "INSERT INTO shop2.items (id, uid, name) VALUES (4, 4, 'four')",
        "TRUNCATE TABLE shop2.order_a",
        "INSERT INTO shop2.order_a VALUES (5, 50)",
        "RENAME TABLE shop2.order_a TO shop2.order_b",
        "INSERT INTO shop2.order_b VALUES (6, 60)",
        "CREATE TABLE shop2.order_new (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO shop2.order_new VALUES (1, 'new')",
        "CREATE TABLE shop2.order_gone (id INT PRIMARY KEY)",
        "DROP TABLE shop2.order_gone",
        "ALTER TABLE shop2.unmapped ADD COLUMN w INT",
        "UPDATE shop2.unmapped SET w = 1",
    ] {
        exec(&mut src, s).await;
    }
    wait_caught_up(&env, 0, "items", Duration::from_secs(60)).await;
    wait_caught_up(&env, 1, "orders", Duration::from_secs(60)).await;
    assert_identical(&env, "shop2", 0, "items_db", &["items"]).await;
    assert_identical(&env, "shop2", 1, "shop2", &["order_b", "order_new"]).await;
    let mut t1 = env.targets[1].conn().await.unwrap();
    let gone: Vec<String> = t1.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='shop2' AND TABLE_NAME IN ('order_a','order_gone','unmapped')").await.unwrap();
    assert!(
        gone.is_empty(),
        "renamed, dropped and unmapped tables must not exist on the target: {gone:?}"
    );
    let mut t0 = env.targets[0].conn().await.unwrap();
    let idx: Vec<String> = t0.query("SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA='items_db' AND TABLE_NAME='items' ORDER BY 1").await.unwrap();
    assert_eq!(idx, vec!["PRIMARY".to_string(), "ux_uid".to_string()]);

    // A table swap with a table the target does not have cannot be applied:
    // the items service pauses; orders keeps replicating.
    exec(
        &mut src,
        "RENAME TABLE shop2.items TO shop2.items_swap, shop2.unmapped TO shop2.items",
    )
    .await;
    exec(&mut src, "INSERT INTO shop2.order_new VALUES (2, 'after')").await;
    wait_caught_up(&env, 1, "orders", Duration::from_secs(60)).await;
    assert_identical(&env, "shop2", 1, "shop2", &["order_new"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let items = loop {
        let st = running
            .control
            .status()
            .into_iter()
            .find(|s| s.service == "items")
            .unwrap();
        if st.state == "paused" || std::time::Instant::now() > deadline {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(items.state, "paused");
    assert!(
        items.last_error.contains("items_swap"),
        "the pause message names the DDL: {}",
        items.last_error
    );
    let orders = running
        .control
        .status()
        .into_iter()
        .find(|s| s.service == "orders")
        .unwrap();
    assert_eq!(orders.state, "replicating");
    let mut t0 = env.targets[0].conn().await.unwrap();
    let (state, msg): (String, String) = t0
        .query_first("SELECT state, message FROM _dropship.service_state WHERE service='items'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state, "paused");
    assert!(msg.contains("hint"), "{msg}");
    running.stop().await.unwrap();
}

mod an_online_schema_change_pauses_an_exact_mapping_and_replicates_when_its_tables_are_mapped {
    use super::*;
    flavor_matrix!(osc_scenario: mysql_to_mysql, mariadb_to_mysql, mariadb_to_mariadb);
}

/// pt-online-schema-change's steps on two tables: `t`, mapped alone, and `u`, mapped with the tool's tables. The
/// final `RENAME TABLE t TO _t_old, _t_new TO t` pauses `t`'s service before anything is renamed on its target
/// (which keeps every row of `t`), naming both tables; `u`'s service follows the whole change.
async fn osc_scenario(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), false).await;
    let mut src = env.source.conn().await.unwrap();
    for s in [
        "CREATE DATABASE osc",
        "CREATE TABLE osc.t (id INT PRIMARY KEY, v INT)",
        "CREATE TABLE osc.u (id INT PRIMARY KEY, v INT)",
        "INSERT INTO osc.t VALUES (1, 1), (2, 2), (3, 3)",
        "INSERT INTO osc.u VALUES (1, 1), (2, 2), (3, 3)",
    ] {
        exec(&mut src, s).await;
    }
    let services = [
        Svc {
            name: "exact",
            target: 0,
            tables: &["osc.t"],
            rename: &[],
        },
        Svc {
            name: "with_tool",
            target: 0,
            tables: &["osc.u", "osc._u_*"],
            rename: &[],
        },
    ];
    let running = spawn_replicate(env.config(&services, ""), vec![]);
    wait_caught_up(&env, 0, "exact", Duration::from_secs(60)).await;
    wait_caught_up(&env, 0, "with_tool", Duration::from_secs(60)).await;
    for t in ["t", "u"] {
        for s in [
            format!("CREATE TABLE osc._{t}_new LIKE osc.{t}"),
            format!("ALTER TABLE osc._{t}_new ADD COLUMN c VARCHAR(10) NOT NULL DEFAULT 'new'"),
            format!("INSERT INTO osc._{t}_new (id, v) SELECT id, v FROM osc.{t}"),
            format!("INSERT INTO osc._{t}_new (id, v) VALUES (4, 4)"),
            format!("RENAME TABLE osc.{t} TO osc._{t}_old, osc._{t}_new TO osc.{t}"),
            format!("UPDATE osc.{t} SET c = 'after' WHERE id = 1"),
            format!("DROP TABLE osc._{t}_old"),
        ] {
            exec(&mut src, &s).await;
        }
    }
    wait_caught_up(&env, 0, "with_tool", Duration::from_secs(60)).await;
    assert_identical(&env, "osc", 0, "osc", &["u"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exact = loop {
        let st = running
            .control
            .status()
            .into_iter()
            .find(|s| s.service == "exact")
            .unwrap();
        if st.state == "paused" || std::time::Instant::now() > deadline {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(exact.state, "paused", "{}", exact.last_error);
    assert!(
        exact.last_error.contains("osc._t_new")
            && exact.last_error.contains("pt-online-schema-change")
            && exact.last_error.contains("osc._t_*"),
        "{}",
        exact.last_error
    );
    running.stop().await.unwrap();
    let mut tgt = env.targets[0].conn().await.unwrap();
    let n: Option<u64> = tgt.query_first("SELECT COUNT(*) FROM osc.t").await.unwrap();
    assert_eq!(n, Some(3), "the target keeps the old table whole");
    let tables: Vec<String> = tgt
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'osc' ORDER BY 1")
        .await
        .unwrap();
    assert_eq!(tables, vec!["t".to_string(), "u".to_string()]);
}
