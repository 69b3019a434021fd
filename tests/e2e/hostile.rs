//! Hostile names and values through replicate, verify, cutover, reverse replication and rollback: identifiers
//! with backticks, quotes and unicode, reserved words, 64-character names, `_` and `%` in database names under
//! a `*` pattern (with look-alike databases that must not be touched), and values at the limits of their types.

use crate::common::*;
use dropship_sandbox::ServerOptions;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// 64 characters, the longest identifier MySQL and MariaDB allow.
fn long(prefix: &str) -> String {
    let mut s = prefix.to_string();
    while s.chars().count() < 64 {
        s.push('x');
    }
    s
}

/// `name` quoted as an identifier.
fn q(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Every (database, table) the service owns, source side.
fn tables() -> Vec<(&'static str, String)> {
    vec![
        ("h_st", "we`ird".to_string()),
        ("h_st", "sel'ect \"q\"".to_string()),
        ("h_st", "ünïcødé_表".to_string()),
        ("h_st", "order".to_string()),
        ("h_st", long("t")),
        ("h_st", "limits".to_string()),
        ("p%ct", "x".to_string()),
    ]
}

async fn schema(src: &mut mysql_async::Conn) {
    exec(src, "SET NAMES utf8mb4").await;
    for db in ["h_st", "p%ct", "hXst", "pabcct"] {
        exec(src, &format!("CREATE DATABASE {}", q(db))).await;
    }
    let c64 = long("c");
    let defs = [
        ("h_st", "we`ird".to_string(), "`id` BIGINT PRIMARY KEY, `c``1` VARCHAR(20), `c'2` TEXT, `c\"3` INT".to_string()),
        ("h_st", "sel'ect \"q\"".to_string(), "`select` INT PRIMARY KEY, `where` VARCHAR(10)".to_string()),
        ("h_st", "ünïcødé_表".to_string(), "`ключ` INT PRIMARY KEY, `значение` VARCHAR(10) CHARACTER SET utf8mb4".to_string()),
        ("h_st", "order".to_string(), "`key` INT PRIMARY KEY, `from` INT, `group` VARCHAR(5)".to_string()),
        ("h_st", long("t"), format!("{} INT PRIMARY KEY, v INT", q(&c64))),
        (
            "h_st",
            "limits".to_string(),
            "id INT PRIMARY KEY, bi BIGINT, ubi BIGINT UNSIGNED, d DECIMAL(65,30), dbl DOUBLE, f FLOAT, \
             dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(6), y YEAR, bits BIT(64), \
             vb VARBINARY(255), s VARCHAR(100) CHARACTER SET utf8mb4, e ENUM('', 'a b', 'x''y'), st SET('a', 'b')"
                .to_string(),
        ),
        ("p%ct", "x".to_string(), "id INT PRIMARY KEY, v VARCHAR(10)".to_string()),
        // Look-alikes that `h_st.*` and `p%ct.*` must not reach (as SQL LIKE patterns they would).
        ("hXst", "we`ird".to_string(), "id INT PRIMARY KEY".to_string()),
        ("pabcct", "x".to_string(), "id INT PRIMARY KEY".to_string()),
    ];
    for (db, t, cols) in defs {
        exec(src, &format!("CREATE TABLE {}.{} ({cols})", q(db), q(&t))).await;
    }
    exec(src, "INSERT INTO `hXst`.`we``ird` VALUES (1)").await;
    exec(src, "INSERT INTO `pabcct`.`x` VALUES (1)").await;
}

/// Rows in every owned table; `base` keeps the keys of two calls apart.
async fn rows(src: &mut mysql_async::Conn, base: i64) {
    exec(src, "SET NAMES utf8mb4, time_zone = '+00:00'").await;
    let c64 = long("c");
    let t64 = long("t");
    for i in base..base + 3 {
        exec(
            src,
            &format!("INSERT INTO `h_st`.`we``ird` VALUES ({i}, 'a`b''c\"d\\\\e', 'x\\'y', {i})"),
        )
        .await;
        exec(
            src,
            &format!("INSERT INTO `h_st`.`sel'ect \"q\"` VALUES ({i}, 'from')"),
        )
        .await;
        exec(
            src,
            &format!("INSERT INTO `h_st`.`ünïcødé_表` VALUES ({i}, 'значение😀')"),
        )
        .await;
        exec(
            src,
            &format!("INSERT INTO `h_st`.`order` VALUES ({i}, {i}, 'by')"),
        )
        .await;
        exec(
            src,
            &format!(
                "INSERT INTO `h_st`.{} ({}, v) VALUES ({i}, {i})",
                q(&t64),
                q(&c64)
            ),
        )
        .await;
        exec(
            src,
            &format!("INSERT INTO `p%ct`.`x` VALUES ({i}, '100%_')"),
        )
        .await;
    }
    let b = base;
    exec(
        src,
        &format!(
            "INSERT INTO `h_st`.`limits` VALUES \
             ({b}, -9223372036854775808, 0, -99999999999999999999999999999999999.999999999999999999999999999999, \
              -1.7976931348623157e308, -3.40282e38, '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', \
              '-838:59:59.000000', 1901, b'0', '', '', '', ''), \
             ({b} + 1, 9223372036854775807, 18446744073709551615, 99999999999999999999999999999999999.999999999999999999999999999999, \
              1.7976931348623157e308, 3.40282e38, '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', \
              '838:59:59.000000', 2155, b'1111111111111111111111111111111111111111111111111111111111111111', \
              UNHEX(REPEAT('FF', 255)), '😀𝄞 ünï \\'\"`\\\\', 'x''y', 'a,b'), \
             ({b} + 2, 0, 1, 0.000000000000000000000000000001, 4.9e-324, 1.17549e-38, '2000-02-29 12:00:00.000001', \
              '2000-02-29 12:00:00.000001', '00:00:00.000001', 2000, b'1', UNHEX('00FF00'), ' ', 'a b', 'b'), \
             ({b} + 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ),
    )
    .await;
}

/// Updates and deletes in every owned table.
async fn changes(src: &mut mysql_async::Conn) {
    exec(src, "SET NAMES utf8mb4").await;
    exec(
        src,
        "UPDATE `h_st`.`we``ird` SET `c``1` = 'up`dated', `c\"3` = NULL WHERE `id` = 1",
    )
    .await;
    exec(src, "DELETE FROM `h_st`.`sel'ect \"q\"` WHERE `select` = 2").await;
    exec(
        src,
        "UPDATE `h_st`.`ünïcødé_表` SET `значение` = 'ё' WHERE `ключ` = 1",
    )
    .await;
    exec(src, "UPDATE `h_st`.`order` SET `from` = -1 WHERE `key` = 2").await;
    exec(
        src,
        "UPDATE `h_st`.`limits` SET ubi = ubi - 1, d = -d WHERE id = 101",
    )
    .await;
    exec(src, "DELETE FROM `h_st`.`limits` WHERE id = 100").await;
    exec(src, "UPDATE `p%ct`.`x` SET v = '%' WHERE id = 1").await;
    exec(src, "INSERT INTO `hXst`.`we``ird` VALUES (2)").await;
}

mod hostile_names_and_limit_values_pass_replicate_verify_cutover_reverse_and_rollback {
    use super::*;
    flavor_matrix!(scenario: mysql_to_mysql, mariadb_to_mariadb);
}

async fn scenario(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), true).await;
    let mut src = env.source.conn().await.unwrap();
    schema(&mut src).await;
    rows(&mut src, 1).await;
    grant_cutover(&mut src, &["h_st", "p%ct"]).await;
    let svc = [Svc {
        name: "odd",
        target: 0,
        tables: &["h_st.*", "p%ct.*"],
        rename: &[],
    }];
    let config = env.config_file(&svc, "", free_port());
    let (code, out) = run_binary(&config, &["check"]).await;
    assert_eq!(code, 0, "{out}");
    // The grants on `h\_st` and `p\%ct` (escaped: as patterns they would reach the look-alikes) are understood.
    assert!(
        out.contains("the source user may create the write-freeze triggers"),
        "{out}"
    );

    let mut replicate = spawn_binary(&config, &["-v", "replicate"], "replicate.log");
    wait_caught_up(&env, 0, "odd", Duration::from_secs(90)).await;
    rows(&mut src, 100).await;
    changes(&mut src).await;
    wait_caught_up(&env, 0, "odd", Duration::from_secs(90)).await;
    all_identical(&env).await;
    let mut tgt = env.targets[0].conn().await.unwrap();
    let dbs: Vec<String> = tgt.query("SHOW DATABASES").await.unwrap();
    assert!(
        !dbs.iter().any(|d| d == "hXst" || d == "pabcct"),
        "look-alike databases must not be replicated: {dbs:?}"
    );

    let (code, out) = run_binary(&config, &["verify", "--service", "odd"]).await;
    assert_eq!(code, 0, "{out}");
    // Reverse replication brings target writes back through the hostile names.
    cutover_write_back_and_rollback(
        &env,
        &config,
        "odd",
        &[
            "INSERT INTO `h_st`.`we``ird` VALUES (900, 'from the `target`', 'x', 9)",
            "UPDATE `h_st`.`ünïcødé_表` SET `значение` = 'цель' WHERE `ключ` = 2",
        ],
        "SELECT 1 FROM `h_st`.`we``ird` w, `h_st`.`ünïcødé_表` u WHERE w.`id` = 900 AND u.`ключ` = 2 AND u.`значение` = 'цель'",
        &replicate,
    )
    .await;
    exec(
        &mut src,
        "UPDATE `h_st`.`order` SET `group` = 'after' WHERE `key` = 1",
    )
    .await;
    wait_caught_up(&env, 0, "odd", Duration::from_secs(90)).await;
    assert_eq!(
        replicate.terminate().await,
        Some(0),
        "{}",
        replicate.log_text()
    );
    all_identical(&env).await;
}

async fn all_identical(env: &Env) {
    for (db, t) in tables() {
        assert_identical(env, db, 0, db, &[t.as_str()]).await;
    }
}
