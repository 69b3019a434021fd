//! Schema changes on mapped tables reach the target in order with the rows
//! around them (with database renames); DDL on unmapped tables is ignored;
//! DDL the target cannot apply pauses only its own service.

use crate::common::*;
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
    let items = running
        .wait_state("items", "paused", Duration::from_secs(30))
        .await;
    assert_eq!(items.state, "paused");
    assert!(
        items.last_error.contains("items_swap"),
        "the pause message names the DDL: {}",
        items.last_error
    );
    let orders = running.status_of("orders");
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
    let exact = running
        .wait_state("exact", "paused", Duration::from_secs(30))
        .await;
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

mod ddl_naming_the_other_flavors_collations_is_translated {
    use super::*;
    flavor_matrix!(collation_scenario: mysql_to_mariadb, mariadb_to_mysql);
}

/// A CREATE TABLE and an ALTER TABLE written on the source with its own flavor's collations (MySQL's
/// `utf8mb4_0900_*`, MariaDB's `utf8mb4_uca1400_*`, which the other flavor lacks) replicate with the target's
/// nearest collations, and the rows around them follow.
async fn collation_scenario(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), false).await;
    let mut src = env.source.conn().await.unwrap();
    let (ai, as_ci, as_cs) = if pair.source == dropship_sandbox::Flavor::MySql {
        (
            "utf8mb4_0900_ai_ci",
            "utf8mb4_0900_as_ci",
            "utf8mb4_0900_as_cs",
        )
    } else {
        (
            "utf8mb4_uca1400_ai_ci",
            "utf8mb4_uca1400_as_ci",
            "utf8mb4_uca1400_as_cs",
        )
    };
    for s in [
        "CREATE DATABASE col".to_string(),
        "CREATE TABLE col.a (id INT PRIMARY KEY, name VARCHAR(20)) DEFAULT CHARSET=utf8mb4"
            .to_string(),
        "INSERT INTO col.a VALUES (1, 'eins')".to_string(),
    ] {
        exec(&mut src, &s).await;
    }
    let services = [Svc {
        name: "col",
        target: 0,
        tables: &["col.*"],
        rename: &[],
    }];
    let running = spawn_replicate(env.config(&services, ""), vec![]);
    wait_caught_up(&env, 0, "col", Duration::from_secs(60)).await;
    for s in [
        format!("CREATE TABLE col.b (id INT PRIMARY KEY, s VARCHAR(20) COLLATE {as_cs}) DEFAULT CHARSET=utf8mb4 COLLATE={ai}"),
        "INSERT INTO col.b VALUES (1, 'Straße'), (2, 'strasse')".to_string(),
        format!("ALTER TABLE col.a MODIFY name VARCHAR(20) CHARACTER SET utf8mb4 COLLATE {as_ci}"),
        "INSERT INTO col.a VALUES (2, 'zwei')".to_string(),
    ] {
        exec(&mut src, &s).await;
    }
    wait_caught_up(&env, 0, "col", Duration::from_secs(60)).await;
    let st = running.status_of("col");
    assert_eq!(st.state, "replicating", "{}", st.last_error);
    assert_identical(&env, "col", 0, "col", &["a", "b"]).await;
    let mut tgt = env.targets[0].conn().await.unwrap();
    let got: Vec<(String, String)> = tgt
        .query("SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME), COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'col' AND COLLATION_NAME IS NOT NULL ORDER BY 1")
        .await
        .unwrap();
    let want: Vec<(String, String)> = if pair.target == dropship_sandbox::Flavor::MariaDb {
        vec![
            ("a.name".into(), "utf8mb4_uca1400_nopad_as_ci".into()),
            ("b.s".into(), "utf8mb4_uca1400_nopad_as_cs".into()),
        ]
    } else {
        vec![
            ("a.name".into(), "utf8mb4_0900_as_ci".into()),
            ("b.s".into(), "utf8mb4_0900_as_cs".into()),
        ]
    };
    assert_eq!(got, want);
    running.stop().await.unwrap();
}

mod a_cascading_foreign_key_added_by_ddl_pauses_when_the_source_does_not_log_cascades {
    use super::*;
    flavor_matrix!(cascade_ddl_scenario: mysql_to_mysql, mariadb_to_mysql, mariadb_to_mariadb);
}

/// `ALTER TABLE child ADD ... FOREIGN KEY ... ON DELETE CASCADE` on a source that does not binlog cascaded
/// changes (MariaDB; MySQL 9 with innodb_native_foreign_keys=ON) pauses the service naming the key, before
/// the ALTER's position is committed. With the key changed to RESTRICT on the source and by hand on the
/// target, a resume treats the pending ALTER as applied, replicates the change of key, and the tables end
/// identical.
async fn cascade_ddl_scenario(pair: Pair) {
    let opts = if pair.source == dropship_sandbox::Flavor::MySql {
        ServerOptions::source().with_extra("innodb_native_foreign_keys=ON")
    } else {
        ServerOptions::source()
    };
    let env = start_pair(pair, 1, opts, false).await;
    let mut src = env.source.conn().await.unwrap();
    for s in [
        "CREATE DATABASE fk",
        "CREATE TABLE fk.parent (id INT PRIMARY KEY)",
        "CREATE TABLE fk.child (id INT PRIMARY KEY, pid INT, KEY (pid))",
        "INSERT INTO fk.parent VALUES (1), (2)",
        "INSERT INTO fk.child VALUES (10, 1), (20, 2)",
    ] {
        exec(&mut src, s).await;
    }
    let services = [Svc {
        name: "fk",
        target: 0,
        tables: &["fk.*"],
        rename: &[],
    }];
    let running = spawn_replicate(env.config(&services, ""), vec![]);
    wait_caught_up(&env, 0, "fk", Duration::from_secs(60)).await;
    exec(&mut src, "ALTER TABLE fk.child ADD CONSTRAINT fk_parent FOREIGN KEY (pid) REFERENCES fk.parent (id) ON DELETE CASCADE").await;
    let st = running
        .wait_state("fk", "paused", Duration::from_secs(30))
        .await;
    assert_eq!(st.state, "paused", "{}", st.last_error);
    assert!(
        st.last_error.contains("fk_parent")
            && st.last_error.contains("ON DELETE CASCADE")
            && st.last_error.contains("does not write cascaded changes"),
        "{}",
        st.last_error
    );
    // The way out the hint gives: RESTRICT on the source, the same by hand on the target, resume.
    let fix = [
        "ALTER TABLE fk.child DROP FOREIGN KEY fk_parent",
        "ALTER TABLE fk.child ADD CONSTRAINT fk_parent FOREIGN KEY (pid) REFERENCES fk.parent (id) ON DELETE RESTRICT",
    ];
    let mut tgt = env.targets[0].conn().await.unwrap();
    for s in fix {
        exec(&mut src, s).await;
        exec(&mut tgt, s).await;
    }
    exec(&mut src, "DELETE FROM fk.child WHERE id = 20").await;
    exec(&mut src, "DELETE FROM fk.parent WHERE id = 2").await;
    running.control.set_paused("fk", false);
    wait_caught_up(&env, 0, "fk", Duration::from_secs(60)).await;
    let st = running.status_of("fk");
    assert_eq!(st.state, "replicating", "{}", st.last_error);
    assert_identical(&env, "fk", 0, "fk", &["parent", "child"]).await;
    let create: (String, String) = tgt
        .query_first("SHOW CREATE TABLE fk.child")
        .await
        .unwrap()
        .unwrap();
    assert!(
        create.1.contains("fk_parent") && !create.1.contains("CASCADE"),
        "{}",
        create.1
    );
    running.stop().await.unwrap();
}
