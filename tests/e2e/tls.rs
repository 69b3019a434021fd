//! TLS for real: servers with certificates from a test CA (`dropship_sandbox::tls`), dropship's users created
//! `REQUIRE SSL` so that any connection without TLS is refused by the server. `verify-full` refuses a self-signed
//! and a wrong-host certificate naming the host and the problem; `required` encrypts without verifying and says
//! so; with `ca` set to the test CA every connection of replicate (binlog, copy, apply), verify, cutover, reverse
//! replication and rollback runs over verified TLS.

use crate::common::*;
use dropship_sandbox::tls::TestCa;
use dropship_sandbox::ServerOptions;
use mysql_async::prelude::Queryable;
use std::time::Duration;

const SVC: [Svc<'static>; 1] = [Svc {
    name: "users",
    target: 0,
    tables: &["app.users"],
    rename: &[],
}];

mod verify_full_refuses_self_signed_and_wrong_host_certificates_and_every_connection_runs_over_verified_tls {
    use super::*;
    flavor_matrix!(scenario: mysql_to_mysql, mariadb_to_mariadb);
}

/// The config with `tls` (and `ca`) on the source and the target.
fn with_tls(text: &str, mode: &str, ca: Option<&std::path::Path>) -> String {
    let mut lines = format!("tls = \"{mode}\"\n");
    if let Some(ca) = ca {
        lines.push_str(&format!("ca = \"{}\"\n", ca.display()));
    }
    text.replace("server_id = 4242\n", &format!("server_id = 4242\n{lines}"))
        .replace("tables = [", &format!("{lines}tables = ["))
}

async fn scenario(pair: Pair) {
    let ca = TestCa::new().expect("test CA");
    let good = ca.server_cert("good", &["127.0.0.1"]).unwrap();
    let self_signed = ca.self_signed("self", &["127.0.0.1"]).unwrap();
    let wrong_host = ca.server_cert("wrong", &["db.example.com"]).unwrap();
    let mut source_opts = ServerOptions::source();
    for l in ca.server_config("source", &self_signed).unwrap() {
        source_opts = source_opts.with_extra(&l);
    }
    let target_extra = ca.server_config("target", &good).unwrap();
    let env = start_pair_with(pair, 1, source_opts, true, &target_extra).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE app").await;
    exec(
        &mut src,
        "CREATE TABLE app.users (id INT PRIMARY KEY, name VARCHAR(40))",
    )
    .await;
    exec(&mut src, "INSERT INTO app.users VALUES (1, 'a'), (2, 'b')").await;
    grant_cutover(&mut src, &["app"]).await;
    exec(&mut src, "ALTER USER 'repl'@'%' REQUIRE SSL").await;
    let mut tgt = env.targets[0].conn().await.unwrap();
    exec(&mut tgt, "ALTER USER 'dropship'@'%' REQUIRE SSL").await;
    let port = free_port();
    let base = std::fs::read_to_string(env.config_file(&SVC, "", port)).unwrap();
    let write = |name: &str, text: String| {
        let p = env.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let verified = write(
        "verified.toml",
        with_tls(&base, "verify-full", Some(&ca.ca)),
    );
    let host = format!("127.0.0.1:{}", env.source.port());

    // 1. A self-signed certificate: refused, naming the host and the problem; nothing is written.
    let (code, out) = run_binary(&verified, &["check"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&host) && out.contains("UnknownIssuer"),
        "{out}"
    );
    assert!(out.contains("ca = "), "the hint says what to set: {out}");
    let (code, out) = run_binary(&verified, &["replicate"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&host) && out.contains("certificate"), "{out}");
    let dbs: Vec<String> = tgt.query("SHOW DATABASES").await.unwrap();
    assert!(
        !dbs.iter().any(|d| d == "_dropship"),
        "nothing written: {dbs:?}"
    );

    // 2. Without `ca`, the system's roots do not know the test CA either.
    let no_ca = write("no-ca.toml", with_tls(&base, "verify-full", None));
    ca.serve(&env.source, "source", &good).await.unwrap();
    let (code, out) = run_binary(&no_ca, &["check"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&host) && out.contains("UnknownIssuer"),
        "{out}"
    );

    // 3. Signed by the CA, for another host name: refused.
    ca.serve(&env.source, "source", &wrong_host).await.unwrap();
    let (code, out) = run_binary(&verified, &["check"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&host) && out.contains("not valid for name"),
        "{out}"
    );

    // 4. `required` encrypts without verifying, and says so.
    let required = write("required.toml", with_tls(&base, "required", None));
    let (code, out) = run_binary(&required, &["check"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not verified"), "{out}");

    // 5. The right certificate and `ca`: every command, every connection, over verified TLS.
    ca.serve(&env.source, "source", &good).await.unwrap();
    let (code, out) = run_binary(&verified, &["check"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the certificate is verified for 127.0.0.1"),
        "{out}"
    );
    let mut replicate = spawn_binary(&verified, &["-v", "replicate"], "replicate.log");
    exec(&mut src, "INSERT INTO app.users VALUES (3, 'c')").await;
    wait_caught_up(&env, 0, "users", Duration::from_secs(90)).await;
    let (code, out) = run_binary(&verified, &["verify", "--service", "users"]).await;
    assert_eq!(code, 0, "{out}");
    cutover_write_back_and_rollback(
        &env,
        &verified,
        "users",
        &["INSERT INTO app.users VALUES (4, 'written on the target')"],
        "SELECT name FROM app.users WHERE id = 4",
        &replicate,
    )
    .await;
    exec(
        &mut src,
        "INSERT INTO app.users VALUES (5, 'after the rollback')",
    )
    .await;
    wait_caught_up(&env, 0, "users", Duration::from_secs(90)).await;
    assert_eq!(
        replicate.terminate().await,
        Some(0),
        "{}",
        replicate.log_text()
    );
    let log = replicate.log_text();
    let streams: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("streaming the source binlog"))
        .collect();
    assert!(
        streams.len() >= 2,
        "forward and reverse binlog streams: {log}"
    );
    assert!(
        streams.iter().all(|l| l.contains("\"tls\":true")),
        "every binlog stream runs over TLS: {streams:?}"
    );
    assert_identical(&env, "app", 0, "app", &["users"]).await;
}
