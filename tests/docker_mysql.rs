//! End-to-end replicate against real MySQL 8.0 and 8.4 servers in Docker
//! containers (`testcontainers`): a source with GTIDs, `binlog_format=ROW`,
//! `binlog_row_image=FULL`, `binlog_row_metadata=FULL`, and a target of the same
//! version. A workload runs before and during `replicate`; the tables must end
//! identical.
//!
//! Only built with `--features docker` (see Cargo.toml `required-features`)
//! and only useful where a Docker engine runs: `cargo test --features docker
//! --test docker_mysql`. The development machines have no Docker engine, so
//! this file is compile-checked there (`cargo check --features docker
//! --tests`) but has never been run by the project's own CI.
#![cfg(feature = "docker")]

mod common;

use common::exec;
use dropship_core::config::Config;
use dropship_sandbox::compare::assert_tables_identical;
use dropship_sandbox::workload::{schema_sql, Workload};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use std::time::{Duration, Instant};
use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

const ROOT_PW: &str = "root-pw-Dk4";
const TABLES: [&str; 3] = ["all_types", "composite_pk", "binary_pk"];

/// A MySQL container of `tag` and its host port. The source gets the binlog
/// settings dropship needs; both get a server id of their own.
async fn mysql(tag: &str, server_id: u32, source: bool) -> (ContainerAsync<GenericImage>, u16) {
    let mut args = vec![
        format!("--server-id={server_id}"),
        "--gtid-mode=ON".to_string(),
        "--enforce-gtid-consistency=ON".to_string(),
        "--max-allowed-packet=256M".to_string(),
    ];
    if source {
        args.extend(
            [
                "--log-bin=binlog",
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
                "--log-bin-trust-function-creators=1",
            ]
            .map(String::from),
        );
    }
    let container = GenericImage::new("mysql", tag)
        .with_exposed_port(ContainerPort::Tcp(3306))
        // The entrypoint starts a temporary server first; the real one
        // announces port 3306.
        .with_wait_for(WaitFor::message_on_either_std("port: 3306"))
        .with_env_var("MYSQL_ROOT_PASSWORD", ROOT_PW)
        .with_cmd(args)
        .with_startup_timeout(Duration::from_secs(300))
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting mysql:{tag} (is a Docker engine running?): {e}"));
    let port = container
        .get_host_port_ipv4(3306)
        .await
        .expect("mapped port");
    // Accepting connections can lag the log line a little.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match Conn::new(opts(port)).await {
            Ok(c) => {
                let _ = c.disconnect().await;
                break;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("mysql:{tag} not ready yet: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("mysql:{tag} never accepted connections: {e}"),
        }
    }
    (container, port)
}

fn opts(port: u16) -> Opts {
    Opts::from_url(&format!("mysql://root:{ROOT_PW}@127.0.0.1:{port}")).expect("url")
}

fn config(source_port: u16, target_port: u16, state: &std::path::Path) -> Config {
    let tables: Vec<String> = TABLES.iter().map(|t| format!("\"shop.{t}\"")).collect();
    let text = format!(
        "[source]\nurl = \"mysql://root:${{DS_PW}}@127.0.0.1:{source_port}\"\nserver_id = 4242\n\
         [state]\ndir = \"{}\"\n[control]\nlisten = \"127.0.0.1:0\"\n\
         [services.shop]\ntarget = \"mysql://root:${{DS_PW}}@127.0.0.1:{target_port}\"\ntables = [{}]\n",
        state.display(),
        tables.join(", ")
    );
    Config::parse("docker.toml", &text, &|k| {
        (k == "DS_PW").then(|| ROOT_PW.to_string())
    })
    .expect("config")
}

async fn replicate_against(tag: &str) {
    common::init_logs();
    let ((src, src_port), (tgt, tgt_port)) =
        tokio::join!(mysql(tag, 1, true), mysql(tag, 2, false));
    let mut s = Conn::new(opts(src_port)).await.expect("source conn");
    let version: String = s
        .query_first("SELECT VERSION()")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(version.starts_with(tag), "mysql:{tag} reports {version}");
    let gtid_mode: String = s
        .query_first("SELECT @@gtid_mode")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(gtid_mode, "ON");
    for stmt in schema_sql("shop")
        .split(";\n")
        .filter(|x| !x.trim().is_empty())
    {
        exec(&mut s, stmt).await;
    }
    let wl = Workload::new("shop");
    wl.run(&mut s, 200, 1)
        .await
        .expect("workload before replicate");

    let state = tempfile::tempdir().expect("state dir");
    let running = common::spawn_replicate(
        config(src_port, tgt_port, state.path()),
        vec!["shop".into()],
    );
    // Changes while the copy and then the binlog stream run.
    wl.run(&mut s, 300, 2)
        .await
        .expect("workload during replicate");
    exec(
        &mut s,
        "UPDATE shop.all_types SET c_json = JSON_SET(COALESCE(c_json, '{}'), '$.touched', 1) LIMIT 20",
    )
    .await;

    let mut t = Conn::new(opts(tgt_port)).await.expect("target conn");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut diffs = Vec::new();
        for table in TABLES {
            if let Err(d) = assert_tables_identical(&mut s, "shop", &mut t, "shop", table).await {
                diffs.push(d);
            }
        }
        if diffs.is_empty() {
            break;
        }
        assert!(
            !running.is_finished(),
            "replicate stopped early; differences: {diffs:?}"
        );
        if Instant::now() > deadline {
            panic!("mysql:{tag}: target still differs after 300 s: {diffs:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rows: u64 = t
        .query_first("SELECT COUNT(*) FROM shop.all_types")
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(rows > 0, "no rows replicated");
    running.stop().await.expect("replicate stops cleanly");
    drop((src, tgt));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicate_mysql_8_0_with_gtid_row_full() {
    replicate_against("8.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicate_mysql_8_4_with_gtid_row_full() {
    replicate_against("8.4").await;
}
