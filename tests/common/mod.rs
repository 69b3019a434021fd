//! Shared helpers for the end-to-end tests: throwaway servers, a config for
//! them, running `replicate` in-process or as the real binary, and waiting
//! until every service has applied everything the source wrote.
#![allow(dead_code)]

use dropship_core::config::Config;
use dropship_core::control::Control;
use dropship_core::run::replicate;
use dropship_mysql::position::Position;
pub use dropship_sandbox::Flavor;
use dropship_sandbox::{MariaDb, ServerOptions};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const SOURCE_PASSWORD: &str = "src-pass-Zq9";
pub const TARGET_PASSWORD: &str = "tgt-pass-Xw7";

pub struct Env {
    pub source: MariaDb,
    pub targets: Vec<MariaDb>,
    pub dir: tempfile::TempDir,
}

/// Logs go to the test's captured output (shown when a test fails).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info,mysql_async=warn,refinery_core=warn")
        .try_init();
}

/// The flavors of one end-to-end run: the source's and every target's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub source: Flavor,
    pub target: Flavor,
}

/// The product's main case: a MySQL source, MySQL (RDS-like) targets.
pub const MYSQL_MYSQL: Pair = Pair {
    source: Flavor::MySql,
    target: Flavor::MySql,
};
/// A MariaDB droplet moving to RDS MySQL.
pub const MARIADB_MYSQL: Pair = Pair {
    source: Flavor::MariaDb,
    target: Flavor::MySql,
};
pub const MYSQL_MARIADB: Pair = Pair {
    source: Flavor::MySql,
    target: Flavor::MariaDb,
};
pub const MARIADB_MARIADB: Pair = Pair {
    source: Flavor::MariaDb,
    target: Flavor::MariaDb,
};

impl Pair {
    /// The pair a test without an explicit matrix runs on: `$DROPSHIP_TEST_FLAVOR` for both sides, else MariaDB.
    pub fn default_pair() -> Pair {
        let f = dropship_sandbox::default_flavor();
        Pair {
            source: f,
            target: f,
        }
    }

    /// False (with a printed note) when a flavor of the pair is not installed here. In CI a missing MySQL is a
    /// failure: the test panics instead of skipping.
    pub fn available(self) -> bool {
        for f in [self.source, self.target] {
            if !f.available() {
                if std::env::var("CI").is_ok() {
                    panic!("{f} is not installed: scripts/install-deps.sh installs it (MySQL through scripts/install-mysql.sh)");
                }
                eprintln!("skipped: {f} is not installed (scripts/install-deps.sh)");
                return false;
            }
        }
        true
    }
}

impl std::fmt::Display for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.source, self.target)
    }
}

/// One `#[tokio::test]` per flavor pair for an `async fn scenario(pair: Pair)`; each skips (with a note) where a
/// flavor is not installed, and fails in CI. Use inside a module named after the scenario:
/// `mod copies_every_type { use super::*; flavor_matrix!(scenario: all); }`.
#[macro_export]
macro_rules! flavor_matrix {
    ($scenario:path: all) => {
        $crate::flavor_matrix!($scenario: mysql_to_mysql, mariadb_to_mysql, mysql_to_mariadb, mariadb_to_mariadb);
    };
    ($scenario:path: $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let pair = $crate::common::pair_named(stringify!($name));
                if pair.available() {
                    eprintln!("flavors: {pair}");
                    $scenario(pair).await;
                }
            }
        )+
    };
}

/// `mysql_to_mariadb` -> the pair.
pub fn pair_named(name: &str) -> Pair {
    match name {
        "mysql_to_mysql" => MYSQL_MYSQL,
        "mariadb_to_mysql" => MARIADB_MYSQL,
        "mysql_to_mariadb" => MYSQL_MARIADB,
        "mariadb_to_mariadb" => MARIADB_MARIADB,
        other => panic!("flavor_matrix: unknown pair name {other}"),
    }
}

pub async fn start_env(n_targets: usize, source_opts: ServerOptions) -> Env {
    start_env_with(n_targets, source_opts, true).await
}

/// Like [`start_env`]; `target_binlog` = binlog ON, ROW, FULL on the targets
/// (what reverse replication after a cutover needs), else binlog OFF.
pub async fn start_env_with(
    n_targets: usize,
    source_opts: ServerOptions,
    target_binlog: bool,
) -> Env {
    let target = dropship_sandbox::default_flavor();
    start_pair(
        Pair {
            source: source_opts.flavor,
            target,
        },
        n_targets,
        source_opts,
        target_binlog,
    )
    .await
}

/// A source of `pair.source` (with `source_opts`, whose flavor is overridden) and `n_targets` targets of
/// `pair.target`; `target_binlog` as in [`start_env_with`]. Users: `repl` on the source (replication, SELECT,
/// LOCK TABLES), `dropship` on each target.
pub async fn start_pair(
    pair: Pair,
    n_targets: usize,
    source_opts: ServerOptions,
    target_binlog: bool,
) -> Env {
    start_pair_with(pair, n_targets, source_opts, target_binlog, &[]).await
}

/// Like [`start_pair`], with `target_extra` server option lines on every target.
pub async fn start_pair_with(
    pair: Pair,
    n_targets: usize,
    source_opts: ServerOptions,
    target_binlog: bool,
    target_extra: &[String],
) -> Env {
    init_logs();
    let mut source_opts = source_opts.with_flavor(pair.source);
    if pair.source == Flavor::MySql {
        // What an RDS parameter group or a droplet's my.cnf sets so that a user without SUPER may create the
        // cutover's freeze triggers while the binlog is on (`dropship check` says so when it is missing).
        source_opts = source_opts.with_extra("log_bin_trust_function_creators=1");
    }
    let src = MariaDb::start(source_opts.with_extra("max_allowed_packet=256M"));
    let mut tgts = Vec::new();
    for i in 0..n_targets {
        let opts = if target_binlog {
            ServerOptions::source()
        } else {
            ServerOptions::target()
        }
        .with_flavor(pair.target);
        // What an RDS parameter group sets so that the rollback's freeze triggers can be created by a user
        // without SUPER while the target's binlog is on (the README's Privileges section says so).
        let mut opts = opts.with_extra("log_bin_trust_function_creators=1");
        for line in target_extra {
            opts = opts.with_extra(line);
        }
        tgts.push(MariaDb::start(
            opts.with_server_id(10 + i as u32)
                .with_extra("max_allowed_packet=256M"),
        ));
    }
    let source = src.await.expect("start source");
    let mut targets = Vec::new();
    for t in tgts {
        targets.push(t.await.expect("start target"));
    }
    source
        .create_user(
            "repl",
            SOURCE_PASSWORD,
            // REPLICATION CLIENT is MariaDB 10.5+'s alias of BINLOG MONITOR.
            &["REPLICATION SLAVE, REPLICATION CLIENT, SELECT, LOCK TABLES ON *.*"],
        )
        .await
        .expect("source user");
    for t in &targets {
        t.create_user("dropship", TARGET_PASSWORD, &[target_grants(pair.target)])
            .await
            .expect("target user");
    }
    let dir = tempfile::Builder::new()
        .prefix("ds-e2e")
        .tempdir_in("/tmp")
        .expect("tempdir");
    Env {
        source,
        targets,
        dir,
    }
}

/// The target user's privileges, exactly as the README's Privileges section lists them (on `*.*` here, since
/// tests name many databases; in production, the service's databases and `_dropship`): the apply and copy
/// privileges, TRIGGER for the rollback's freeze, and replication for reverse replication. No SUPER, no
/// BINLOG ADMIN: the copy writes the target binlog, as it does for most production users.
pub fn target_grants(flavor: Flavor) -> &'static str {
    match flavor {
        // MySQL checks REFERENCES when a table with a foreign key is created.
        Flavor::MySql => "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES, TRIGGER, REPLICATION SLAVE, REPLICATION CLIENT ON *.*",
        // REPLICATION CLIENT is MariaDB 10.5+'s alias of BINLOG MONITOR.
        Flavor::MariaDb => "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, TRIGGER, REPLICATION SLAVE, REPLICATION CLIENT ON *.*",
    }
}

/// One service: (name, target index, tables, renames).
pub struct Svc<'a> {
    pub name: &'a str,
    pub target: usize,
    pub tables: &'a [&'a str],
    pub rename: &'a [(&'a str, &'a str)],
}

impl Env {
    pub fn config_text(&self, services: &[Svc<'_>], extra: &str) -> String {
        let mut s = format!(
            "[source]\nurl = \"mysql://repl:${{DS_TEST_SOURCE_PW}}@127.0.0.1:{}\"\nserver_id = 4242\n[state]\ndir = \"{}\"\n[control]\nlisten = \"127.0.0.1:0\"\n{extra}\n",
            self.source.port(),
            self.dir.path().join("state").display()
        );
        for svc in services {
            let tables: Vec<String> = svc.tables.iter().map(|t| format!("\"{t}\"")).collect();
            s.push_str(&format!(
                "[services.{}]\ntarget = \"mysql://dropship:${{DS_TEST_TARGET_PW}}@127.0.0.1:{}\"\ntables = [{}]\n",
                svc.name,
                self.targets[svc.target].port(),
                tables.join(", ")
            ));
            if !svc.rename.is_empty() {
                let r: Vec<String> = svc
                    .rename
                    .iter()
                    .map(|(a, b)| format!("{a} = \"{b}\""))
                    .collect();
                s.push_str(&format!("rename_databases = {{ {} }}\n", r.join(", ")));
            }
        }
        s
    }

    pub fn config(&self, services: &[Svc<'_>], extra: &str) -> Config {
        parse_config(&self.config_text(services, extra))
    }

    /// Writes the config to a file for the real binary.
    pub fn config_file(&self, services: &[Svc<'_>], extra: &str, listen_port: u16) -> PathBuf {
        let text = self
            .config_text(services, extra)
            .replace("127.0.0.1:0", &format!("127.0.0.1:{listen_port}"));
        let p = self.dir.path().join("dropship.toml");
        std::fs::write(&p, text).expect("write config");
        p
    }
}

/// `replicate` running in-process.
pub struct Running {
    pub control: Arc<Control>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<dropship_core::Result<()>>,
}

pub fn spawn_replicate(cfg: Config, services: Vec<String>) -> Running {
    let control = Arc::new(Control::new(None, Duration::from_secs(30)));
    let (stop, rx) = watch::channel(false);
    let c = control.clone();
    let task = tokio::spawn(async move {
        replicate::run(
            Arc::new(cfg),
            replicate::Options {
                services,
                ..Default::default()
            },
            c,
            rx,
        )
        .await
    });
    Running {
        control,
        stop,
        task,
    }
}

impl Running {
    pub async fn stop(self) -> dropship_core::Result<()> {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("replicate stops within 60 s")
            .expect("replicate task")
    }
    /// The service's status, polled until its state is `state` or `timeout`
    /// passes (then the last status read, for the caller's assertion).
    pub async fn wait_state(
        &self,
        service: &str,
        state: &str,
        timeout: Duration,
    ) -> dropship_core::control::ServiceStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.status_of(service);
            if st.state == state || Instant::now() > deadline {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The service's status now.
    pub fn status_of(&self, service: &str) -> dropship_core::control::ServiceStatus {
        self.control
            .status()
            .into_iter()
            .find(|s| s.service == service)
            .unwrap_or_else(|| panic!("no service {service} in the status"))
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

pub async fn source_position(src: &MariaDb) -> Position {
    let mut c = src.conn().await.expect("source conn");
    let p = dropship_core::source::position(&mut c)
        .await
        .expect("source position");
    let _ = c.disconnect().await;
    p
}

pub async fn target_position(t: &MariaDb, service: &str) -> Option<Position> {
    let mut c = t.conn().await.ok()?;
    let row: Option<(String, u64)> = c
        .exec_first(
            "SELECT binlog_file, binlog_pos FROM `_dropship`.`positions` WHERE service = ?",
            (service,),
        )
        .await
        .ok()
        .flatten();
    let _ = c.disconnect().await;
    row.map(|(f, p)| Position::new(f, p))
}

/// The service's state on a target (`_dropship.service_state`).
pub async fn target_state(t: &MariaDb, service: &str) -> Option<String> {
    let mut c = t.conn().await.ok()?;
    let row: Option<String> = c
        .exec_first(
            "SELECT state FROM `_dropship`.`service_state` WHERE service = ?",
            (service,),
        )
        .await
        .ok()
        .flatten();
    let _ = c.disconnect().await;
    row
}

/// Waits until `service` on target `t` has applied up to the source's current position.
pub async fn wait_caught_up(env: &Env, t: usize, service: &str, timeout: Duration) {
    let want = source_position(&env.source).await;
    let start = Instant::now();
    loop {
        if let Some(p) = target_position(&env.targets[t], service).await {
            // During the copy the position row holds the copy start: not caught up.
            if p >= want
                && target_state(&env.targets[t], service).await.as_deref() != Some("copying")
            {
                return;
            }
        }
        if start.elapsed() > timeout {
            let mut lists = String::new();
            for (name, srv) in std::iter::once(("source", &env.source))
                .chain(env.targets.iter().map(|x| ("target", x)))
            {
                if let Ok(mut c) = srv.conn().await {
                    let rows: Vec<mysql_async::Row> =
                        c.query("SHOW FULL PROCESSLIST").await.unwrap_or_default();
                    for r in rows {
                        let cmd: Option<String> = r.get::<Option<String>, _>(4).flatten();
                        let state: Option<String> = r.get::<Option<String>, _>(6).flatten();
                        let info: Option<String> = r.get::<Option<String>, _>(7).flatten();
                        lists.push_str(&format!(
                            "  {name} port {}: {:?} {:?} {:?}\n",
                            srv.port(),
                            cmd,
                            state,
                            info
                        ));
                    }
                }
            }
            panic!("service {service} did not reach {want} within {timeout:?} (at {:?})\nprocesslists:\n{lists}", target_position(&env.targets[t], service).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`wait_caught_up`] for a service fed by the `replicate` binary `child`: on a timeout the panic shows the
/// end of the child's log, which the test's temporary directory would otherwise take with it.
pub async fn wait_caught_up_of(
    env: &Env,
    t: usize,
    service: &str,
    timeout: Duration,
    child: &Child,
) {
    let wait = wait_caught_up(env, t, service, timeout + Duration::from_secs(30));
    if tokio::time::timeout(timeout, wait).await.is_err() {
        let log = child.log_text();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "service {service} did not catch up within {timeout:?} (at {:?}); end of replicate's log:\n{}",
            target_position(&env.targets[t], service).await,
            tail.join("\n")
        );
    }
}

pub async fn assert_identical(env: &Env, src_db: &str, t: usize, dst_db: &str, tables: &[&str]) {
    let mut s = env.source.conn().await.expect("source conn");
    let mut d = env.targets[t].conn().await.expect("target conn");
    for table in tables {
        if let Err(e) =
            dropship_sandbox::assert_tables_identical(&mut s, src_db, &mut d, dst_db, table).await
        {
            panic!("{e}");
        }
    }
}

pub async fn exec(c: &mut Conn, sql: &str) {
    c.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// What the source user `repl` needs beyond replication for a cutover of tables in `dbs`: the freeze triggers,
/// reverse replication's writes and its position in `_dropship` (README, Privileges).
pub async fn grant_cutover(src: &mut Conn, dbs: &[&str]) {
    for db in dbs {
        let target = dropship_mysql::sql::grant_database(db);
        exec(
            src,
            &format!("GRANT TRIGGER, INSERT, UPDATE, DELETE ON {target}.* TO 'repl'@'%'"),
        )
        .await;
    }
    exec(src, "GRANT ALL PRIVILEGES ON `_dropship`.* TO 'repl'@'%'").await;
    exec(src, "SET GLOBAL log_bin_trust_function_creators = 1").await;
}

/// With `replicate` running: `cutover --service SERVICE` through the binary, then `on_target` on the target
/// (now the primary), waits until `came_back` (a query on the source) returns a row, which reverse replication
/// brings, then `rollback`. Each command must exit 0.
pub async fn cutover_write_back_and_rollback(
    env: &Env,
    config: &std::path::Path,
    service: &str,
    on_target: &[&str],
    came_back: &str,
    replicate: &Child,
) {
    let (code, out) = run_binary(
        config,
        &["cutover", "--service", service, "--switch-cmd", "true"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let mut tgt = env.targets[0].conn().await.expect("target conn");
    exec(&mut tgt, "SET NAMES utf8mb4").await;
    for sql in on_target {
        exec(&mut tgt, sql).await;
    }
    let mut src = env.source.conn().await.expect("source conn");
    exec(&mut src, "SET NAMES utf8mb4").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row: Option<mysql_async::Row> = src.query_first(came_back).await.expect(came_back);
        if row.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reverse replication never answered {came_back}: {}",
            replicate.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, out) = run_binary(config, &["rollback", "--service", service]).await;
    assert_eq!(code, 0, "{out}");
}

/// One transaction of 3072 rows of 64 KiB (192 MiB) into `z.big (id INT PRIMARY KEY, v LONGBLOB)` on a MySQL
/// source with binlog compression on; returns the largest TRANSACTION_PAYLOAD event's size, which must stay
/// under 1 MiB (the rows compress well) for the memory tests to mean what they say.
pub async fn write_compressed_192_mib(src: &mut Conn) -> u64 {
    exec(src, "SET SESSION cte_max_recursion_depth = 10000").await;
    exec(
        src,
        "INSERT INTO z.big WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 3072) \
         SELECT n, REPEAT(CHAR(65 + n % 26), 65536) FROM seq",
    )
    .await;
    let events: Vec<mysql_async::Row> = src.query("SHOW BINLOG EVENTS").await.unwrap();
    let payload = events
        .iter()
        .filter(|r| r.get::<String, _>(2).as_deref() == Some("Transaction_payload"))
        .map(|r| r.get::<u64, _>(4).unwrap_or(0) - r.get::<u64, _>(1).unwrap_or(0))
        .max()
        .expect("the source wrote TRANSACTION_PAYLOAD events");
    assert!(
        payload < 1 << 20,
        "the compressed transaction is {payload} bytes"
    );
    payload
}

/// Runs a schema script (statements ended by `;` and a newline, as `workload::schema_sql` and
/// `monolith::schema_sql` write them).
pub async fn exec_script(c: &mut Conn, script: &str) {
    for stmt in script.split(";\n").filter(|s| !s.trim().is_empty()) {
        exec(c, stmt).await;
    }
}

/// A config text (from [`Env::config_text`], maybe edited) parsed with the test passwords.
pub fn parse_config(text: &str) -> Config {
    Config::parse("test.toml", text, &|k| match k {
        "DS_TEST_SOURCE_PW" => Some(SOURCE_PASSWORD.into()),
        "DS_TEST_TARGET_PW" => Some(TARGET_PASSWORD.into()),
        _ => None,
    })
    .expect("test config")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The real `dropship` binary as a child process.
pub struct Child {
    pub child: std::process::Child,
    pub log: PathBuf,
}

/// `dropship -c CONFIG --log-format json ARGS` with the test passwords in its environment.
fn dropship_command(config: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dropship"));
    c.arg("-c")
        .arg(config)
        .args(["--log-format", "json"])
        .args(args);
    c.env("DS_TEST_SOURCE_PW", SOURCE_PASSWORD)
        .env("DS_TEST_TARGET_PW", TARGET_PASSWORD);
    c
}

pub fn spawn_binary(config: &std::path::Path, args: &[&str], log_name: &str) -> Child {
    spawn_binary_env(config, args, log_name, &[])
}

/// [`spawn_binary`] with extra environment variables.
pub fn spawn_binary_env(
    config: &std::path::Path,
    args: &[&str],
    log_name: &str,
    envs: &[(&str, &str)],
) -> Child {
    let log = config.parent().expect("config dir").join(log_name);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log file");
    let child = dropship_command(config, args)
        .envs(envs.iter().copied())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("spawn dropship");
    Child { child, log }
}

impl Child {
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// SIGTERM, then the exit code.
    pub async fn terminate(&mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            if start.elapsed() > Duration::from_secs(60) {
                self.kill9();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Runs the binary to completion (killed after 120 s): (exit code, stdout+stderr).
pub async fn run_binary(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let dir = config.parent().expect("config dir");
    let out_path = dir.join(format!("run-{}.out", std::process::id()));
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut child = dropship_command(config, args)
        .stdout(out.try_clone().expect("output file"))
        .stderr(out)
        .spawn()
        .expect("run dropship");
    let start = Instant::now();
    let code = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "dropship {args:?} did not finish within 120 s; output:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (code, std::fs::read_to_string(&out_path).unwrap_or_default())
}
