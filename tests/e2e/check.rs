//! `dropship check` and `replicate` on least-privilege users and foreign-key
//! cascades, over the flavor matrix. Runs the real binary.

use crate::common::*;
use dropship_sandbox::ServerOptions;
use mysql_async::prelude::Queryable;
use std::time::Duration;

const SVC: [Svc<'static>; 1] = [Svc {
    name: "users",
    target: 0,
    tables: &["app.*"],
    rename: &[],
}];

/// The target user with the README's target privileges, `references` saying whether REFERENCES is among them.
async fn least_privilege_target_user(env: &Env, references: bool) {
    let refs = if references { ", REFERENCES" } else { "" };
    let privs =
        format!("SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, TRIGGER{refs}");
    env.targets[0]
        .create_user(
            "lp",
            TARGET_PASSWORD,
            &[
                &format!("{privs} ON `app`.*"),
                &format!("{privs} ON `_dropship`.*"),
            ],
        )
        .await
        .expect("least-privilege target user");
}

fn config_as(env: &Env, user: &str) -> std::path::PathBuf {
    let text = env
        .config_text(&SVC, "")
        .replace("mysql://dropship:", &format!("mysql://{user}:"));
    let p = env.dir.path().join(format!("{user}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn line_of<'a>(out: &'a str, what: &str) -> &'a str {
    out.lines()
        .find(|l| {
            l.get(6..)
                .is_some_and(|r| r.starts_with(&format!("{what}:")))
        })
        .unwrap_or_else(|| panic!("no line for {what}:\n{out}"))
}

mod check_names_missing_and_excess_privileges_and_unlogged_cascades {
    use super::*;
    flavor_matrix!(scenario: all);
}

async fn scenario(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), true).await;
    let mut src = env.source.conn().await.unwrap();
    for s in [
        "CREATE DATABASE app",
        "CREATE TABLE app.users (id INT PRIMARY KEY, name VARCHAR(20))",
        "CREATE TABLE app.posts (id INT PRIMARY KEY, user_id INT, CONSTRAINT posts_user FOREIGN KEY (user_id) REFERENCES app.users (id) ON DELETE CASCADE)",
        "INSERT INTO app.users VALUES (1, 'a'), (2, 'b'), (3, 'c')",
        "INSERT INTO app.posts VALUES (10, 1), (11, 1), (20, 2), (30, 3)",
    ] {
        exec(&mut src, s).await;
    }
    let target_mysql = pair.target == Flavor::MySql;
    let cascades_logged = pair.source == Flavor::MySql;

    // The README's target privileges without REFERENCES: MySQL needs it to create `posts`.
    least_privilege_target_user(&env, false).await;
    let lp = config_as(&env, "lp");
    let (code, out) = run_binary(&lp, &["check"]).await;
    let target = line_of(&out, "target users");
    if target_mysql {
        assert!(
            target.starts_with("FAIL") && target.contains("REFERENCES on app, _dropship"),
            "{out}"
        );
    } else {
        assert!(
            target.starts_with("ok"),
            "MariaDB does not check REFERENCES:\n{out}"
        );
    }
    assert!(
        !out.contains("target users privileges"),
        "least privileges are not excess:\n{out}"
    );
    // The source user may not create the freeze triggers: a warning that names the privilege.
    let cutover = line_of(&out, "cutover users");
    assert!(
        cutover.starts_with("warn") && cutover.contains("TRIGGER"),
        "{out}"
    );
    let service = line_of(&out, "service users");
    if cascades_logged {
        assert!(service.starts_with("ok"), "{out}");
    } else {
        assert!(
            service.starts_with("FAIL")
                && service.contains("posts_user")
                && service.contains("ON DELETE CASCADE")
                && service.contains("app.posts"),
            "{out}"
        );
    }
    assert_eq!(
        code,
        if target_mysql || !cascades_logged {
            2
        } else {
            0
        },
        "{out}"
    );

    // ALL PRIVILEGES (MySQL prints it as the expanded list) is named as more than needed.
    let mut t = env.targets[0].conn().await.unwrap();
    exec(&mut t, "GRANT ALL PRIVILEGES ON *.* TO 'dropship'@'%'").await;
    drop(t);
    let (_, out) = run_binary(&config_as(&env, "dropship"), &["check"]).await;
    let excess = line_of(&out, "target users privileges");
    assert!(
        excess.starts_with("warn")
            && (excess.contains("ALL PRIVILEGES") || excess.contains("SUPER")),
        "{out}"
    );

    if !cascades_logged {
        // replicate refuses before writing anything to the target.
        let (code, out) = run_binary(&config_as(&env, "dropship"), &["replicate"]).await;
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("posts_user") && out.contains("hint"), "{out}");
        let mut t = env.targets[0].conn().await.unwrap();
        let dbs: Vec<String> = t.query("SHOW DATABASES").await.unwrap();
        assert!(
            !dbs.iter().any(|d| d == "app" || d == "_dropship"),
            "{dbs:?}"
        );
        return;
    }

    // MySQL 9 logs cascades: with REFERENCES granted, replicate runs as the least-privilege user and the
    // cascaded deletes reach the target.
    least_privilege_target_user(&env, true).await;
    let (code, out) = run_binary(&lp, &["check"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(line_of(&out, "target users").starts_with("ok"), "{out}");
    let mut child = spawn_binary(&lp, &["replicate"], "replicate.log");
    wait_caught_up(&env, 0, "users", Duration::from_secs(60)).await;
    exec(&mut src, "DELETE FROM app.users WHERE id = 1").await;
    exec(&mut src, "INSERT INTO app.posts VALUES (31, 3)").await;
    wait_caught_up(&env, 0, "users", Duration::from_secs(60)).await;
    assert_eq!(child.terminate().await, Some(0), "{}", child.log_text());
    assert_identical(&env, "app", 0, "app", &["users", "posts"]).await;
    let mut t = env.targets[0].conn().await.unwrap();
    let left: Vec<i32> = t
        .query("SELECT id FROM app.posts ORDER BY id")
        .await
        .unwrap();
    assert_eq!(left, vec![20, 30, 31]);
}

/// MySQL 9 with `innodb_native_foreign_keys=ON` keeps cascades out of the binlog, as 8.x does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_with_native_foreign_keys_refuses_cascading_children() {
    if !MYSQL_MARIADB.available() {
        return;
    }
    let env = start_pair(
        MYSQL_MARIADB,
        1,
        ServerOptions::source().with_extra("innodb_native_foreign_keys=ON"),
        false,
    )
    .await;
    let mut src = env.source.conn().await.unwrap();
    for s in [
        "CREATE DATABASE app",
        "CREATE TABLE app.users (id INT PRIMARY KEY)",
        "CREATE TABLE app.posts (id INT PRIMARY KEY, user_id INT, CONSTRAINT posts_user FOREIGN KEY (user_id) REFERENCES app.users (id) ON UPDATE SET NULL)",
    ] {
        exec(&mut src, s).await;
    }
    let (code, out) = run_binary(&config_as(&env, "dropship"), &["check"]).await;
    assert_eq!(code, 2, "{out}");
    let service = line_of(&out, "service users");
    assert!(
        service.contains("posts_user")
            && service.contains("ON UPDATE SET NULL")
            && service.contains("innodb_native_foreign_keys"),
        "{out}"
    );
}

/// A MySQL target with `sql_require_primary_key=ON` cannot hold a table whose row key is a unique key: `check` says
/// which table, before `replicate` would fail creating it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_requiring_primary_keys_is_named_with_the_tables_that_lack_one() {
    if !MARIADB_MYSQL.available() {
        return;
    }
    let env = start_pair(MARIADB_MYSQL, 1, ServerOptions::source(), false).await;
    let mut src = env.source.conn().await.unwrap();
    for s in [
        "CREATE DATABASE app",
        "CREATE TABLE app.users (id INT PRIMARY KEY)",
        "CREATE TABLE app.tokens (token VARCHAR(20) NOT NULL, UNIQUE KEY ux_token (token))",
    ] {
        exec(&mut src, s).await;
    }
    let cfg = config_as(&env, "dropship");
    let (code, out) = run_binary(&cfg, &["check"]).await;
    assert_eq!(code, 0, "{out}");
    let mut t = env.targets[0].conn().await.unwrap();
    exec(&mut t, "SET GLOBAL sql_require_primary_key = ON").await;
    let (code, out) = run_binary(&cfg, &["check"]).await;
    assert_eq!(code, 2, "{out}");
    let l = line_of(&out, "target users sql_require_primary_key");
    assert!(
        l.starts_with("FAIL") && l.contains("app.tokens") && !l.contains("app.users"),
        "{out}"
    );
}
