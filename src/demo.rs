//! `dropship demo`: the main job on an embedded default. Starts a throwaway
//! source and two targets from the local server binaries (MySQL 9.7, the
//! product's main case, when installed; MariaDB with `--flavor mariadb` or
//! when MySQL is not installed), loads the
//! `shop` monolith with 8 live writers, replicates two services (one with a
//! database rename), verifies both while the writers run, cuts `accounts`
//! over with a write freeze, stops the writers, waits until `orders` caught
//! up, compares every table row by row and prints a summary.

use anyhow::{bail, Context, Result};
use dropship_core::config::Config;
use dropship_core::control::Control;
use dropship_core::run::replicate;
use dropship_sandbox::monolith::{self, LiveWriters, LiveWritersConfig};
use dropship_sandbox::{Flavor, MariaDb, ServerOptions};
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACCOUNTS: &[&str] = &["users", "user_sessions"];
const ORDERS: &[&str] = &["orders", "order_items", "products"];

pub async fn run(flavor: Option<&str>) -> Result<()> {
    let t0 = Instant::now();
    let flavor = match flavor {
        Some(f) => match Flavor::parse(f) {
            Some(f) => f,
            None => bail!("--flavor {f}: expected mysql or mariadb"),
        },
        None if Flavor::MySql.available() => Flavor::MySql,
        None => {
            println!("MySQL is not installed here (scripts/install-deps.sh installs it): the demo runs on MariaDB");
            Flavor::MariaDb
        }
    };
    let name = match flavor {
        Flavor::MySql => "MySQL",
        Flavor::MariaDb => "MariaDB",
    };
    println!("dropship demo: starting a {name} source and two {name} targets in temporary directories...");
    let (source, accounts_db, orders_db) = tokio::try_join!(
        MariaDb::start(ServerOptions::source().with_flavor(flavor)),
        // Binlog ROW/FULL on the accounts target: reverse replication after its cutover.
        MariaDb::start(
            ServerOptions::source()
                .with_flavor(flavor)
                .with_server_id(2)
        ),
        MariaDb::start(
            ServerOptions::target()
                .with_flavor(flavor)
                .with_server_id(3)
        ),
    )
    .with_context(|| {
        format!("starting throwaway {name} servers (scripts/install-deps.sh installs them)")
    })?;
    println!(
        "  source  127.0.0.1:{}  ({})",
        source.port(),
        source.version()
    );
    println!(
        "  target  127.0.0.1:{}  service accounts (database shop -> accounts)",
        accounts_db.port()
    );
    println!("  target  127.0.0.1:{}  service orders", orders_db.port());
    // The source user of README "Privileges"; without SUPER, creating the
    // cutover's freeze triggers needs log_bin_trust_function_creators=1.
    source
        .create_user(
            "repl",
            "demo-repl",
            &[match flavor {
                Flavor::MySql => {
                    "REPLICATION SLAVE, REPLICATION CLIENT, SELECT, LOCK TABLES, TRIGGER ON *.*"
                }
                Flavor::MariaDb => {
                    "REPLICATION SLAVE, BINLOG MONITOR, SELECT, LOCK TABLES, TRIGGER ON *.*"
                }
            }],
        )
        .await?;
    source
        .exec("SET GLOBAL log_bin_trust_function_creators = 1")
        .await?;
    // Reverse replication after the cutover writes the accounts tables back
    // and keeps its position in `_dropship` on the source.
    source
        .exec("GRANT INSERT, UPDATE, DELETE ON `shop`.* TO 'repl'@'%'")
        .await?;
    source
        .exec("GRANT ALL PRIVILEGES ON `_dropship`.* TO 'repl'@'%'")
        .await?;
    for t in [&accounts_db, &orders_db] {
        t.create_user("dropship", "demo-target", &["ALL PRIVILEGES ON *.*"])
            .await?;
    }
    let mut src = source.conn().await?;
    for stmt in monolith::schema_sql()
        .split(";\n")
        .filter(|s| !s.trim().is_empty())
    {
        src.query_drop(stmt)
            .await
            .with_context(|| format!("loading the shop schema: {stmt}"))?;
    }
    monolith::seed(&mut src, 2_000, 200, 7).await?;
    println!(
        "loaded the shop monolith: 2000 users, 200 products; starting 8 live writers at 200 tx/s"
    );
    let writers = LiveWriters::start(
        source.pool(),
        LiveWritersConfig {
            writers: 8,
            rate_per_sec: 200.0,
            seed: 11,
        },
    );

    let state = tempfile::Builder::new()
        .prefix("ds-demo")
        .tempdir_in("/tmp")?;
    let text = format!(
        r#"[source]
url = "mysql://repl:demo-repl@127.0.0.1:{src}"
[state]
dir = "{state}"
[control]
listen = "127.0.0.1:0"
[services.accounts]
target = "mysql://dropship:demo-target@127.0.0.1:{a}"
tables = ["shop.user*"]
rename_databases = {{ shop = "accounts" }}
[services.orders]
target = "mysql://dropship:demo-target@127.0.0.1:{o}"
tables = ["shop.order*", "shop.products"]
"#,
        src = source.port(),
        state = state.path().display(),
        a = accounts_db.port(),
        o = orders_db.port()
    );
    let cfg =
        Arc::new(Config::parse("(demo)", &text, &|_| None).map_err(|e| anyhow::anyhow!("{e}"))?);
    let control = Arc::new(Control::new(None, Duration::from_secs(30)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(replicate::run(
        cfg.clone(),
        replicate::Options::default(),
        control.clone(),
        stop_rx,
    ));

    // Stream for a while, showing progress.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if task.is_finished() {
            break;
        }
        let line: Vec<String> = control
            .status()
            .iter()
            .map(|s| {
                format!(
                    "{} {} copied={} applied={} lag={}",
                    s.service,
                    s.state,
                    s.rows_copied,
                    s.rows_applied,
                    s.lag_seconds.map(|l| format!("{l}s")).unwrap_or("-".into())
                )
            })
            .collect();
        println!(
            "  [{:>4.1}s] {} | writes acknowledged: {}",
            t0.elapsed().as_secs_f64(),
            line.join(" | "),
            writers.acknowledged()
        );
    }
    if task.is_finished() {
        let r = task.await?;
        bail!("replicate stopped early: {:?}", r.err());
    }
    // Verify both services while the writers keep writing.
    println!("\ndropship verify, while the writers run:");
    for svc in ["accounts", "orders"] {
        let opts = dropship_core::verify::Options::new(&cfg, svc);
        let r = dropship_core::verify::run(&cfg, &opts)
            .await
            .map_err(|e| anyhow::anyhow!("verify {svc}: {e}"))?;
        for line in r.to_text().lines() {
            println!("  [{svc}] {line}");
        }
        if dropship_core::verify::exit_code(&r) != 0 {
            bail!("verify found differences in service {svc}");
        }
    }

    // Cut `accounts` over while the writers keep writing.
    println!("\ndropship cutover --service accounts, with the writers still running:");
    let mut co = dropship_core::cutover::CutoverOptions::new("accounts");
    co.switch_cmd = Some("echo \"  switch: route /accounts -> $DROPSHIP_TARGET_HOST:$DROPSHIP_TARGET_PORT (databases $DROPSHIP_TARGET_DATABASES, $DROPSHIP_DIRECTION)\"".into());
    let cut = dropship_core::cutover::run(&cfg, co)
        .await
        .map_err(|e| anyhow::anyhow!("cutover: {e}"))?;
    for line in cut.render().lines() {
        println!("  {line}");
    }
    if cut.exit_code() != 0 {
        bail!("cutover did not complete");
    }
    // The application now writes to the accounts target; reverse replication
    // keeps the (frozen) source current so a rollback would lose nothing.
    {
        let mut a = accounts_db.conn().await?;
        a.query_drop(
            "UPDATE `accounts`.`users` SET `name` = 'renamed after the cutover' WHERE `id` = 1",
        )
        .await?;
        let t = Instant::now();
        loop {
            let name: Option<String> = src
                .query_first("SELECT `name` FROM `shop`.`users` WHERE `id` = 1")
                .await?;
            if name.as_deref() == Some("renamed after the cutover") {
                println!(
                    "\nreverse replication: a write on the accounts target reached the source in {} ms",
                    t.elapsed().as_millis()
                );
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("reverse replication did not bring a target write back to the source within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = writers.stop().await;
    println!("\nwriters stopped: {} transactions acknowledged, {} refused (writes to the frozen accounts tables fail fast, as they should)", report.acknowledged, report.failed);

    // Wait for both services to apply everything the source wrote.
    let want = dropship_core::source::position(&mut src).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    // accounts is cut over (its source tables are frozen); orders must catch up.
    for (svc, t) in [("orders", &orders_db)] {
        loop {
            let mut c = t.conn().await?;
            let row: Option<(String, u64)> = c
                .exec_first(
                    "SELECT binlog_file, binlog_pos FROM _dropship.positions WHERE service = ?",
                    (svc,),
                )
                .await?;
            let _ = c.disconnect().await;
            if let Some((f, p)) = row {
                if dropship_mysql::position::Position::new(f, p) >= want {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("service {svc} did not catch up with {want} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let status = control.status();
    let _ = stop_tx.send(true);
    task.await?.map_err(|e| anyhow::anyhow!("replicate: {e}"))?;

    println!("\ncomparing every table row by row, column by column:");
    let mut ok = true;
    for (db, t, tables) in [
        ("accounts", &accounts_db, ACCOUNTS),
        ("shop", &orders_db, ORDERS),
    ] {
        let mut d = t.conn().await?;
        for table in tables.iter() {
            let n: Option<u64> = src
                .query_first(format!("SELECT COUNT(*) FROM shop.`{table}`"))
                .await?;
            match dropship_sandbox::assert_tables_identical(&mut src, "shop", &mut d, db, table)
                .await
            {
                Ok(()) => println!(
                    "  shop.{table:<14} -> {db}.{table:<14} {:>7} rows  identical",
                    n.unwrap_or(0)
                ),
                Err(e) => {
                    ok = false;
                    println!("  shop.{table:<14} -> {db}.{table:<14} DIFFERENT: {e}");
                }
            }
        }
    }
    println!("\nsummary:");
    for s in status {
        println!("  service {:<9} copied {:>6} rows, applied {:>6} row changes in {:>5} transactions, position {}", s.service, s.rows_copied, s.rows_applied, s.transactions_applied, s.applied_position);
    }
    println!("  total time {:.1}s", t0.elapsed().as_secs_f64());
    if !ok {
        bail!("the copies differ from the source");
    }
    if let Some(f) = cut.freeze {
        println!(
            "  accounts cut over with a write freeze of {} ms",
            f.as_millis()
        );
    }
    println!("demo finished: both services' targets are identical to the source; accounts now lives on its own database.");
    Ok(())
}
