//! Bad input gets a clear error naming the offending value, a non-zero exit
//! and nothing written to the targets. Runs the real binary.

use crate::common::*;
use dropship_sandbox::{MariaDb, ServerOptions};
use mysql_async::prelude::Queryable;
use std::time::Duration;

const SVC: [Svc<'static>; 1] = [Svc {
    name: "users",
    target: 0,
    tables: &["app.users"],
    rename: &[],
}];

async fn target_untouched(t: &MariaDb) {
    let mut c = t.conn().await.unwrap();
    let dbs: Vec<String> = c.query("SHOW DATABASES").await.unwrap();
    assert!(
        !dbs.iter().any(|d| d == "_dropship" || d == "app"),
        "nothing may be written to the target: {dbs:?}"
    );
}

async fn with_app_table(src: &MariaDb, pk: bool) {
    let mut c = src.conn().await.unwrap();
    exec(&mut c, "CREATE DATABASE IF NOT EXISTS app").await;
    let key = if pk { "PRIMARY KEY" } else { "" };
    exec(
        &mut c,
        &format!("CREATE TABLE IF NOT EXISTS app.users (id INT NOT NULL {key}, name VARCHAR(10))"),
    )
    .await;
}

fn write_config(env: &Env, text: &str) -> std::path::PathBuf {
    let p = env.dir.path().join("bad.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_mistakes_are_named_with_file_key_and_hint_and_exit_2() {
    let env = start_env(1, ServerOptions::source()).await;
    with_app_table(&env.source, true).await;
    let good = env.config_text(&SVC, "");

    let p = write_config(&env, &good.replace("[services.users]", "[services.users"));
    let (code, out) = run_binary(&p, &["check"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("bad.toml") && out.contains("line"), "{out}");

    let p = write_config(
        &env,
        &good.replace("tables = [", "tabels = [\"x.y\"]\ntables = ["),
    );
    let (code, out) = run_binary(&p, &["replicate"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("tabels") && out.contains("hint"), "{out}");

    let two = format!("{good}[services.copycat]\ntarget = \"mysql://dropship:x@127.0.0.1:{}\"\ntables = [\"app.*\"]\n", env.targets[0].port());
    let (code, out) = run_binary(&write_config(&env, &two), &["replicate"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("users") && out.contains("copycat") && out.contains("two services"),
        "{out}"
    );
    target_untouched(&env.targets[0]).await;
}

mod a_table_without_a_key_and_a_wrong_password_are_refused_without_touching_targets {
    use super::*;
    flavor_matrix!(keyless_and_wrong_password: mysql_to_mysql, mariadb_to_mariadb);
}

async fn keyless_and_wrong_password(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), true).await;
    with_app_table(&env.source, false).await;
    let p = env.config_file(&SVC, "", free_port());
    let (code, out) = run_binary(&p, &["replicate"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("app.users") && out.contains("primary key"),
        "{out}"
    );
    target_untouched(&env.targets[0]).await;

    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("${DS_TEST_SOURCE_PW}", "not-the-password-8812");
    let (code, out) = run_binary(&write_config(&env, &text), &["replicate"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("Access denied") || out.contains("1045"),
        "{out}"
    );
    assert!(
        !out.contains("not-the-password-8812") && !out.contains(SOURCE_PASSWORD),
        "no password may be printed: {out}"
    );
    target_untouched(&env.targets[0]).await;
}

mod unusable_binlog_settings_each_fail_check_and_replicate_with_a_hint {
    use super::*;
    flavor_matrix!(unusable_binlog_settings: mysql_to_mysql, mariadb_to_mariadb);
}

async fn unusable_binlog_settings(pair: Pair) {
    let cases: Vec<(&str, ServerOptions, &str)> = vec![
        (
            "binlog off",
            ServerOptions::source().with_binlog(false),
            "log_bin",
        ),
        (
            "STATEMENT format",
            {
                let mut o = ServerOptions::source();
                o.binlog_format = Some("STATEMENT".into());
                o
            },
            "binlog_format",
        ),
        (
            "MINIMAL row image",
            ServerOptions::source().with_binlog_row_image("MINIMAL"),
            "binlog_row_image",
        ),
        // MySQL's binlog_transaction_compression is read (a supported setting); MariaDB's log_bin_compress is not.
        (
            "compressed binlog",
            ServerOptions::source().with_log_bin_compress(true),
            "log_bin_compress",
        ),
    ]
    .into_iter()
    .filter(|c| pair.source == Flavor::MariaDb || c.0 != "compressed binlog")
    .map(|(what, o, setting)| (what, o.with_flavor(pair.source), setting))
    .collect();
    let target = MariaDb::start(
        ServerOptions::target()
            .with_flavor(pair.target)
            .with_extra("max_allowed_packet=64M"),
    )
    .await
    .unwrap();
    target
        .create_user("dropship", TARGET_PASSWORD, &["ALL PRIVILEGES ON *.*"])
        .await
        .unwrap();
    for (what, opts, setting) in cases {
        let mut env = start_env(0, opts).await;
        with_app_table(&env.source, true).await;
        env.targets = vec![];
        let text = env.config_text(&[], "").to_string()
            + &format!("[services.users]\ntarget = \"mysql://dropship:${{DS_TEST_TARGET_PW}}@127.0.0.1:{}\"\ntables = [\"app.users\"]\n", target.port());
        let p = write_config(&env, &text);
        let (code, out) = run_binary(&p, &["check"]).await;
        assert_eq!(code, 2, "{what}: check must fail: {out}");
        assert!(
            out.contains("FAIL") && out.contains(setting) && out.contains("hint"),
            "{what}: {out}"
        );
        let (code, out) = run_binary(&p, &["replicate"]).await;
        assert_eq!(code, 2, "{what}: replicate must refuse: {out}");
        assert!(out.contains(setting), "{what}: {out}");
        target_untouched(&target).await;
    }
}

mod a_start_position_the_source_purged_is_a_clear_error_exit_3 {
    use super::*;
    flavor_matrix!(purged_start_position: mysql_to_mysql, mariadb_to_mariadb);
}

async fn purged_start_position(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), true).await;
    with_app_table(&env.source, true).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "INSERT INTO app.users VALUES (1, 'a')").await;
    let p = env.config_file(&SVC, "", free_port());
    let mut child = spawn_binary(&p, &["-v", "replicate"], "replicate.log");
    wait_caught_up(&env, 0, "users", Duration::from_secs(60)).await;
    assert_eq!(child.terminate().await, Some(0));
    // While dropship is stopped the source moves on and purges everything,
    // and the local relay log is gone too: the position cannot be served.
    exec(&mut src, "INSERT INTO app.users VALUES (2, 'b')").await;
    exec(&mut src, "FLUSH BINARY LOGS").await;
    // MySQL adds an `Encrypted` column: read rows, not a fixed tuple.
    let logs: Vec<mysql_async::Row> = src.query("SHOW BINARY LOGS").await.unwrap();
    let newest: String = logs.last().unwrap().get(0).unwrap();
    // The server skips (with a warning) files a dump thread still reads: retry
    // until the file dropship needs is really gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        exec(&mut src, &format!("PURGE BINARY LOGS TO '{newest}'")).await;
        let left: Vec<mysql_async::Row> = src.query("SHOW BINARY LOGS").await.unwrap();
        if left.len() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "could not purge: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::remove_dir_all(env.dir.path().join("state")).unwrap();
    let (code, out) = run_binary(&p, &["replicate"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("purged") && out.contains("--recopy SERVICE"),
        "the error must name the way to start over: {out}"
    );
    // Nothing was written: the target still holds the first row only.
    let mut tgt = env.targets[0].conn().await.unwrap();
    let n: Option<u64> = tgt
        .query_first("SELECT COUNT(*) FROM app.users")
        .await
        .unwrap();
    assert_eq!(n, Some(1), "a refused start must not write");
    // The way out the error names: copy the service again from scratch.
    let mut child = spawn_binary(&p, &["-v", "replicate", "--recopy", "users"], "recopy.log");
    wait_caught_up(&env, 0, "users", Duration::from_secs(90)).await;
    exec(&mut src, "INSERT INTO app.users VALUES (3, 'c')").await;
    wait_caught_up(&env, 0, "users", Duration::from_secs(60)).await;
    assert_eq!(child.terminate().await, Some(0), "{}", child.log_text());
    assert!(
        child.log_text().contains("--recopy"),
        "{}",
        child.log_text()
    );
    assert_identical(&env, "app", 0, "app", &["users"]).await;
}

mod a_state_dir_of_another_source_is_refused_and_a_lost_one_is_refilled_from_the_targets_positions {
    use super::*;
    flavor_matrix!(state_dir_identity: mysql_to_mysql, mariadb_to_mariadb);
}

async fn state_dir_identity(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), true).await;
    with_app_table(&env.source, true).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "INSERT INTO app.users VALUES (1, 'a'), (2, 'b')").await;
    let p = env.config_file(&SVC, "", free_port());
    let mut child = spawn_binary(&p, &["-v", "replicate"], "replicate.log");
    wait_caught_up(&env, 0, "users", Duration::from_secs(60)).await;
    assert_eq!(child.terminate().await, Some(0));

    // Lost: the state dir vanishes (ECS ephemeral storage) while the source
    // moves on; replicate refills it from the position on the target.
    let state = env.dir.path().join("state");
    std::fs::remove_dir_all(&state).unwrap();
    exec(&mut src, "INSERT INTO app.users VALUES (3, 'c')").await;
    exec(&mut src, "UPDATE app.users SET name = 'z' WHERE id = 1").await;
    let mut child = spawn_binary(&p, &["-v", "replicate"], "refill.log");
    wait_caught_up(&env, 0, "users", Duration::from_secs(60)).await;
    assert_eq!(child.terminate().await, Some(0));
    assert!(
        child.log_text().contains("no relay log (new, or lost)"),
        "{}",
        child.log_text()
    );
    assert_identical(&env, "app", 0, "app", &["users"]).await;

    // Another source's state dir: the same config pointed at a second
    // server is refused before anything is written, naming both.
    let other = MariaDb::start(
        ServerOptions::source()
            .with_flavor(pair.source)
            .with_server_id(77),
    )
    .await
    .unwrap();
    other
        .create_user(
            "repl",
            SOURCE_PASSWORD,
            &["REPLICATION SLAVE, REPLICATION CLIENT, SELECT, LOCK TABLES ON *.*"],
        )
        .await
        .unwrap();
    let mut o = other.conn().await.unwrap();
    exec(&mut o, "CREATE DATABASE app").await;
    exec(
        &mut o,
        "CREATE TABLE app.users (id INT PRIMARY KEY, name VARCHAR(10))",
    )
    .await;
    let text = std::fs::read_to_string(&p).unwrap().replace(
        &format!("127.0.0.1:{}\"\nserver_id", env.source.port()),
        &format!("127.0.0.1:{}\"\nserver_id", other.port()),
    );
    assert!(text.contains(&other.port().to_string()), "{text}");
    let q = env.dir.path().join("other.toml");
    std::fs::write(&q, text).unwrap();
    let before = target_position(&env.targets[0], "users").await;
    let (code, out) = run_binary(&q, &["replicate"]).await;
    assert_eq!(code, 2, "{out}");
    let id = std::fs::read_to_string(state.join("source-id")).unwrap();
    assert!(
        out.contains("filled from another source") && out.contains(id.trim()),
        "{out}"
    );
    assert!(out.contains("own state_dir"), "{out}");
    assert_eq!(
        target_position(&env.targets[0], "users").await,
        before,
        "nothing may be written"
    );
}

mod check_on_a_well_configured_setup_prints_one_ok_line_per_check_and_exits_0 {
    use super::*;
    flavor_matrix!(well_configured_check: mysql_to_mysql, mariadb_to_mysql, mariadb_to_mariadb);
}

async fn well_configured_check(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), true).await;
    with_app_table(&env.source, true).await;
    let p = env.config_file(&SVC, "", free_port());
    let (code, out) = run_binary(&p, &["check"]).await;
    assert_eq!(code, 0, "{out}");
    for what in [
        "source",
        "binlog_format",
        "binlog_row_image",
        "binlog_row_metadata",
        "gtid",
        "binlog retention",
        "source privileges",
        "server_id",
        "service users",
        "target users",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("ok") && l.contains(&format!("  {what}"))),
            "no ok line for {what}:\n{out}"
        );
    }
    assert!(!out.contains("FAIL"), "{out}");
    target_untouched(&env.targets[0]).await;
}
