//! One throwaway MariaDB or MySQL server: its options, its directory, its process.
//!
//! [`Server::start`] copies the cached template datadir (see [`crate::template`]) into a short temporary
//! directory (`/tmp/ds-XXXXXX`, so the unix socket path stays far below the 107-byte limit), writes a `my.cnf`,
//! and spawns `mariadbd --defaults-file=my.cnf` (always the first argument, so `/etc/mysql/my.cnf` never leaks
//! in) as a direct child of this process. MySQL runs the same way through the `bin/mysqld` wrapper of
//! `scripts/install-mysql.sh`, which `exec`s the server, so the child is still the server itself.
//!
//! The flavor is an option ([`ServerOptions::with_flavor`]); each option is rendered in that flavor's words
//! (MariaDB's `gtid_strict_mode` is MySQL's `gtid_mode=ON` + `enforce_gtid_consistency`, MariaDB's
//! `log_bin_compress` is MySQL's `binlog_transaction_compression`, a target without binlog is `skip-log-bin` on
//! MySQL, whose binlog is on by default).
//!
//! Invariants:
//! - The server process is always our direct child and is reaped with `wait()`: a killed server is really gone
//!   (not a zombie) when `kill9`/`stop`/`drop` return.
//! - The port is picked free (bind `127.0.0.1:0`, read, release), is never 3306, and a start that loses the
//!   race for it is retried on a fresh port.
//! - "Started" means a root connection over TCP succeeded *and* reported our own socket path, so a foreign
//!   server that grabbed the port is never mistaken for ours.
//! - Dropping a [`Server`] kills the server and removes its directory, unless `DROPSHIP_KEEP_SANDBOX=1`.
//!
//! Fails with [`Error::NotInstalled`] without binaries and [`Error::Startup`] (carrying the tail of the error log)
//! when the server exits or is not ready within 30 seconds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool};

use crate::error::{Error, Result};
use crate::template::{self, Binaries, Flavor};

const READY_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: usize = 5;

/// How to configure a server. Start from [`ServerOptions::source`] or [`ServerOptions::target`] and adjust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Which server to start. Optional, default MariaDB (or `$DROPSHIP_TEST_FLAVOR`, see [`default_flavor`]).
    pub flavor: Flavor,
    /// Write a binary log (`log-bin`). Required: yes.
    pub binlog: bool,
    /// `server-id`. Required: yes (source 1, target 2).
    pub server_id: u32,
    /// `binlog_row_metadata`: `FULL`, `MINIMAL` or `NO_LOG`. Optional, default: the server's (`NO_LOG`).
    pub binlog_row_metadata: Option<&'static str>,
    /// `max_binlog_size` in bytes (4096 at least); small values force rotations. Optional, default 1 GiB.
    pub max_binlog_size: Option<u64>,
    /// `binlog_format`: `ROW`, `MIXED` or `STATEMENT`. Optional, default: the server's (`MIXED`).
    pub binlog_format: Option<String>,
    /// `binlog_row_image`: `FULL`, `MINIMAL`, `NOBLOB`. Optional, default: the server's (`FULL`).
    pub binlog_row_image: Option<String>,
    /// `log_bin_compress`: compress row events in the binlog. Default false.
    pub log_bin_compress: bool,
    /// `default_time_zone`, for example `+05:30` or `+00:00`. Optional, default: the system zone.
    pub time_zone: Option<String>,
    /// `gtid_strict_mode`. Default false.
    pub gtid_strict_mode: bool,
    /// Extra `my.cnf` lines for the `[mysqld]` section, written last so they override everything above
    /// (for example `max_allowed_packet=1G`).
    pub extra: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self::target()
    }
}

impl ServerOptions {
    /// A replication source: `log-bin`, `binlog_format=ROW`, `binlog_row_image=FULL`, `binlog_row_metadata=FULL`,
    /// `server-id=1`, `gtid_strict_mode=ON`.
    pub fn source() -> Self {
        ServerOptions {
            flavor: default_flavor(),
            binlog: true,
            server_id: 1,
            binlog_row_metadata: Some("FULL"),
            max_binlog_size: None,
            binlog_format: Some("ROW".into()),
            binlog_row_image: Some("FULL".into()),
            log_bin_compress: false,
            time_zone: None,
            gtid_strict_mode: true,
            extra: Vec::new(),
        }
    }

    /// A replication target: binlog off, `server-id=2`, everything else at the server's defaults.
    pub fn target() -> Self {
        ServerOptions {
            flavor: default_flavor(),
            binlog: false,
            server_id: 2,
            binlog_row_metadata: None,
            max_binlog_size: None,
            binlog_format: None,
            binlog_row_image: None,
            log_bin_compress: false,
            time_zone: None,
            gtid_strict_mode: false,
            extra: Vec::new(),
        }
    }

    /// Sets the flavor.
    pub fn with_flavor(mut self, flavor: Flavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// Sets `server-id`.
    pub fn with_server_id(mut self, id: u32) -> Self {
        self.server_id = id;
        self
    }

    /// Turns the binary log on or off.
    pub fn with_binlog(mut self, on: bool) -> Self {
        self.binlog = on;
        self
    }

    /// Sets `binlog_row_metadata` (`FULL`, `MINIMAL`, `NO_LOG`); `None` leaves the server default.
    pub fn with_binlog_row_metadata(mut self, value: Option<&'static str>) -> Self {
        self.binlog_row_metadata = value;
        self
    }

    /// Sets `max_binlog_size` in bytes.
    pub fn with_max_binlog_size(mut self, bytes: u64) -> Self {
        self.max_binlog_size = Some(bytes);
        self
    }

    /// Sets `binlog_row_image`.
    pub fn with_binlog_row_image(mut self, image: &str) -> Self {
        self.binlog_row_image = Some(image.to_string());
        self
    }

    /// Turns `log_bin_compress` on.
    pub fn with_log_bin_compress(mut self, on: bool) -> Self {
        self.log_bin_compress = on;
        self
    }

    /// Sets `default_time_zone`, for example `+05:30`.
    pub fn with_time_zone(mut self, zone: &str) -> Self {
        self.time_zone = Some(zone.to_string());
        self
    }

    /// Appends one `my.cnf` line.
    pub fn with_extra(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }

    /// Renders the `[mysqld]` section for a server of `bins` living in `layout`.
    fn render(&self, bins: &Binaries, layout: &Layout, port: u16) -> String {
        let mysql = bins.flavor == Flavor::MySql;
        let mut c = String::from("[mysqld]\n");
        let mut line = |s: String| {
            c.push_str(&s);
            c.push('\n');
        };
        if let (true, Some(root)) = (mysql, &bins.root) {
            line(format!("basedir={}", root.join("usr").display()));
            line(format!(
                "lc-messages-dir={}",
                root.join("usr/share/mysql").display()
            ));
            line("mysqlx=OFF".into());
            line("secure-file-priv=".into());
            line("innodb_redo_log_capacity=64M".into());
            line("innodb_doublewrite=OFF".into());
            line("log-error-verbosity=2".into());
        } else {
            line("innodb_log_file_size=32M".into());
            line("innodb_doublewrite=0".into());
            line("collation-server=utf8mb4_general_ci".into());
        }
        line(format!("datadir={}", layout.data.display()));
        line(format!("tmpdir={}", layout.tmp.display()));
        line(format!("socket={}", layout.socket.display()));
        line(format!(
            "pid-file={}",
            layout.root.join("server.pid").display()
        ));
        line(format!("log-error={}", layout.error_log.display()));
        line(format!("port={port}"));
        line("bind-address=127.0.0.1".into());
        line("skip-name-resolve".into());
        line("performance_schema=OFF".into());
        line("innodb_flush_log_at_trx_commit=2".into());
        line("innodb_buffer_pool_size=64M".into());
        line("sync_binlog=0".into());
        line("max_allowed_packet=256M".into());
        line("max_connections=300".into());
        line("character-set-server=utf8mb4".into());
        line(format!("server-id={}", self.server_id));
        if self.binlog {
            line(format!("log-bin={}", layout.data.join("binlog").display()));
            if mysql {
                line("gtid_mode=ON".into());
                line("enforce_gtid_consistency=ON".into());
            }
        } else if mysql {
            line("skip-log-bin".into());
        }
        if let Some(v) = &self.binlog_format {
            line(format!("binlog_format={v}"));
        }
        if let Some(v) = &self.binlog_row_image {
            line(format!("binlog_row_image={v}"));
        }
        if let Some(v) = self.binlog_row_metadata {
            line(format!("binlog_row_metadata={v}"));
        }
        if let Some(v) = self.max_binlog_size {
            line(format!("max_binlog_size={v}"));
        }
        if self.log_bin_compress {
            line(if mysql {
                "binlog_transaction_compression=ON".into()
            } else {
                "log_bin_compress=ON".into()
            });
        }
        if let Some(v) = &self.time_zone {
            line(format!("default_time_zone='{v}'"));
        }
        if !mysql {
            line(format!(
                "gtid_strict_mode={}",
                if self.gtid_strict_mode { "ON" } else { "OFF" }
            ));
        }
        for e in &self.extra {
            line(e.clone());
        }
        c
    }
}

/// The flavor test servers get when a test does not choose: `$DROPSHIP_TEST_FLAVOR` (`mysql` or `mariadb`),
/// else MariaDB.
pub fn default_flavor() -> Flavor {
    std::env::var("DROPSHIP_TEST_FLAVOR")
        .ok()
        .and_then(|v| Flavor::parse(&v))
        .unwrap_or(Flavor::MariaDb)
}

/// The files of one server, all under one short temporary directory.
#[derive(Debug, Clone)]
struct Layout {
    root: PathBuf,
    data: PathBuf,
    tmp: PathBuf,
    socket: PathBuf,
    cnf: PathBuf,
    error_log: PathBuf,
    stderr_log: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
            data: root.join("data"),
            tmp: root.join("tmp"),
            socket: root.join("sock"),
            cnf: root.join("my.cnf"),
            error_log: root.join("error.log"),
            stderr_log: root.join("stderr.log"),
        }
    }
}

/// A running throwaway server (MariaDB or MySQL). Dropping it kills the server and deletes its files.
pub struct Server {
    bins: Binaries,
    opts: ServerOptions,
    layout: Layout,
    dir: Option<tempfile::TempDir>,
    port: u16,
    child: Option<Child>,
    pool: Pool,
    startup: Duration,
}

/// The name the sandbox's server had before it spoke MySQL too.
pub type MariaDb = Server;

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("flavor", &self.bins.flavor)
            .field("port", &self.port)
            .field("dir", &self.layout.root)
            .field("server_id", &self.opts.server_id)
            .field("running", &self.child.is_some())
            .finish()
    }
}

enum Outcome {
    Ready,
    PortClash(String),
}

impl Server {
    /// Starts a server and returns once it accepts root connections on `127.0.0.1:port()`.
    pub async fn start(opts: ServerOptions) -> Result<Server> {
        let began = Instant::now();
        let bins = template::find_binaries_of(opts.flavor)?;
        let template_dir = {
            let bins = bins.clone();
            tokio::task::spawn_blocking(move || template::ensure_template(&bins))
                .await
                .map_err(|e| Error::Invalid(format!("template preparation panicked: {e}")))??
        };
        let dir = tempfile::Builder::new()
            .prefix("ds-")
            .tempdir_in(short_temp_root())
            .map_err(|e| Error::io("creating the sandbox directory", e))?;
        let layout = Layout::new(dir.path());
        let out = Command::new("cp")
            .arg("-a")
            .arg(&template_dir)
            .arg(&layout.data)
            .output()
            .map_err(|e| Error::io("running cp -a for the template datadir", e))?;
        if !out.status.success() {
            return Err(Error::io(
                format!(
                    "copying {} to {}",
                    template_dir.display(),
                    layout.data.display()
                ),
                std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
            ));
        }
        fs::create_dir_all(&layout.tmp).map_err(|e| Error::io("creating the server tmpdir", e))?;
        // MySQL keeps its server_uuid in auto.cnf and makes a new one when the file is missing: every copy of the
        // template must have its own, or two servers' GTIDs would look like one server's.
        let _ = fs::remove_file(layout.data.join("auto.cnf"));

        let mut last_clash = String::new();
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port()?;
            fs::write(&layout.cnf, opts.render(&bins, &layout, port))
                .map_err(|e| Error::io(format!("writing {}", layout.cnf.display()), e))?;
            let _ = fs::remove_file(&layout.error_log);
            let mut child = spawn(&bins, &layout)?;
            match wait_ready(&mut child, &layout, port).await {
                Ok(Outcome::Ready) => {
                    let startup = began.elapsed();
                    tracing::debug!(port, flavor = %bins.flavor, dir = %layout.root.display(), startup_ms = startup.as_millis() as u64, "sandbox server ready");
                    return Ok(Server {
                        pool: Pool::new(root_opts(port)),
                        bins,
                        opts,
                        layout,
                        dir: Some(dir),
                        port,
                        child: Some(child),
                        startup,
                    });
                }
                Ok(Outcome::PortClash(msg)) => {
                    reap(&mut child);
                    tracing::warn!(
                        port,
                        attempt,
                        "port taken while the sandbox server started; retrying on another port"
                    );
                    last_clash = msg;
                }
                Err(e) => {
                    reap(&mut child);
                    return Err(e);
                }
            }
        }
        Err(Error::Startup {
            port: 0,
            reason: format!("lost the race for a free port {PORT_ATTEMPTS} times"),
            log: layout.error_log.clone(),
            log_tail: last_clash,
        })
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data directory.
    pub fn datadir(&self) -> &Path {
        &self.layout.data
    }

    /// The server's unix socket.
    pub fn socket(&self) -> &Path {
        &self.layout.socket
    }

    /// The server's error log.
    pub fn error_log(&self) -> &Path {
        &self.layout.error_log
    }

    /// The options the server was started with.
    pub fn options(&self) -> &ServerOptions {
        &self.opts
    }

    /// The server version, for example `10.11.19-MariaDB-0+deb12u1` or `9.7.4-2`.
    pub fn version(&self) -> &str {
        &self.bins.version
    }

    /// MariaDB or MySQL.
    pub fn flavor(&self) -> Flavor {
        self.bins.flavor
    }

    /// True for MySQL.
    pub fn is_mysql(&self) -> bool {
        self.bins.flavor == Flavor::MySql
    }

    /// The server's binary-log client (`mariadb-binlog` or MySQL's `mysqlbinlog` wrapper), if installed.
    pub fn binlog_tool(&self) -> Option<PathBuf> {
        match &self.bins.root {
            Some(root) => Some(root.join("bin/mysqlbinlog")).filter(|p| p.is_file()),
            None => ["/usr/bin/mariadb-binlog", "/usr/bin/mysqlbinlog"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file()),
        }
    }

    /// The command-line client (`mariadb` or MySQL's `mysql` wrapper), if installed.
    pub fn client_tool(&self) -> Option<PathBuf> {
        match &self.bins.root {
            Some(root) => Some(root.join("bin/mysql")).filter(|p| p.is_file()),
            None => ["/usr/bin/mariadb", "/usr/bin/mysql"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file()),
        }
    }

    /// Time from the call to [`Server::start`] until the server accepted connections.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The operating-system process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `mysql://user:password@127.0.0.1:port` (user and password percent-encoded).
    pub fn url(&self, user: &str, password: &str) -> String {
        if password.is_empty() {
            format!("mysql://{}@127.0.0.1:{}", pct(user), self.port)
        } else {
            format!(
                "mysql://{}:{}@127.0.0.1:{}",
                pct(user),
                pct(password),
                self.port
            )
        }
    }

    /// URL of the password-less `root` account.
    pub fn root_url(&self) -> String {
        self.url("root", "")
    }

    /// A root connection pool. After [`MariaDb::restart`] or [`MariaDb::kill9`] take a new one: connections of an
    /// old pool point at the dead process.
    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// One root connection from the pool.
    pub async fn conn(&self) -> Result<Conn> {
        self.pool
            .get_conn()
            .await
            .map_err(|e| Error::sql(format!("connecting to sandbox port {}", self.port), "", e))
    }

    /// Runs `sql` (may hold several statements) as root, discarding results.
    pub async fn exec(&self, sql: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        conn.query_drop(sql)
            .await
            .map_err(|e| Error::sql(format!("executing on sandbox port {}", self.port), sql, e))
    }

    /// Creates `name@'%'` with `password` and runs `GRANT <g> TO name@'%'` for every `g` in `grants` (for example
    /// `"REPLICATION SLAVE, REPLICATION CLIENT ON *.*"`), all with `sql_log_bin=0` so nothing reaches the binlog.
    pub async fn create_user(&self, name: &str, password: &str, grants: &[&str]) -> Result<()> {
        let mut conn = Conn::new(root_opts(self.port))
            .await
            .map_err(|e| Error::sql(format!("connecting to sandbox port {}", self.port), "", e))?;
        let account = format!("{}@'%'", crate::sql::string_literal(name));
        let mut stmts = vec![
            "SET SESSION sql_log_bin=0".to_string(),
            format!(
                "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {}",
                crate::sql::string_literal(password)
            ),
        ];
        stmts.extend(grants.iter().map(|g| format!("GRANT {g} TO {account}")));
        for s in &stmts {
            conn.query_drop(s)
                .await
                .map_err(|e| Error::sql(format!("creating user {name}"), s, e))?;
        }
        let _ = conn.disconnect().await;
        Ok(())
    }

    /// Sends SIGKILL and waits until the process is gone. Data files stay; [`MariaDb::restart`] recovers them.
    pub async fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .map_err(|e| Error::io("sending SIGKILL to the server", e))?;
            wait_exit(&mut child, STOP_DEADLINE).await?;
        }
        Ok(())
    }

    /// Shuts the server down gracefully (SIGTERM) and waits for it to exit; SIGKILL after 60 s.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let pid = libc::pid_t::try_from(child.id())
                .map_err(|_| Error::Invalid(format!("pid {} does not fit pid_t", child.id())))?;
            // SAFETY: `pid` is our own unreaped child, so it cannot have been recycled.
            let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
            if rc != 0 {
                let err = std::io::Error::last_os_error();
                return Err(Error::io(
                    format!("sending SIGTERM to server pid {pid}"),
                    err,
                ));
            }
            if let Err(e) = wait_exit(&mut child, STOP_DEADLINE).await {
                tracing::warn!(pid, error = %e, "server ignored SIGTERM; killing it");
                let _ = child.kill();
                wait_exit(&mut child, STOP_DEADLINE).await?;
            }
        }
        Ok(())
    }

    /// Starts the server again on the same datadir and port (stopping it gracefully first if it runs). Take a new
    /// [`MariaDb::pool`] afterwards.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        let began = Instant::now();
        let _ = fs::remove_file(&self.layout.error_log);
        let mut child = spawn(&self.bins, &self.layout)?;
        match wait_ready(&mut child, &self.layout, self.port).await {
            Ok(Outcome::Ready) => {
                self.child = Some(child);
                self.pool = Pool::new(root_opts(self.port));
                self.startup = began.elapsed();
                Ok(())
            }
            Ok(Outcome::PortClash(log_tail)) => {
                reap(&mut child);
                Err(Error::Startup {
                    port: self.port,
                    reason: "another process took the port while the server was down".into(),
                    log: self.layout.error_log.clone(),
                    log_tail,
                })
            }
            Err(e) => {
                reap(&mut child);
                Err(e)
            }
        }
    }

    /// True while the server process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            reap(&mut child);
        }
        if let Some(dir) = self.dir.take() {
            if std::env::var("DROPSHIP_KEEP_SANDBOX").as_deref() == Ok("1") {
                let kept = dir.keep();
                eprintln!(
                    "DROPSHIP_KEEP_SANDBOX=1: kept sandbox files in {}",
                    kept.display()
                );
            }
            // Otherwise TempDir's own drop removes the directory.
        }
    }
}

/// Root connection options for a sandbox port.
fn root_opts(port: u16) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("root"))
        .prefer_socket(false)
        .into()
}

fn spawn(bins: &Binaries, layout: &Layout) -> Result<Child> {
    let stderr = fs::File::create(&layout.stderr_log)
        .map_err(|e| Error::io(format!("creating {}", layout.stderr_log.display()), e))?;
    let mut cmd = Command::new(&bins.server);
    cmd.arg(format!("--defaults-file={}", layout.cnf.display())); // must stay the first argument
    if template::running_as_root() {
        cmd.arg("--user=root");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
    cmd.spawn()
        .map_err(|e| Error::io(format!("spawning {}", bins.server.display()), e))
}

/// Polls until the server answers as itself, exits, or the deadline passes.
async fn wait_ready(child: &mut Child, layout: &Layout, port: u16) -> Result<Outcome> {
    let deadline = Instant::now() + READY_DEADLINE;
    let startup_error = |reason: String| Error::Startup {
        port,
        reason,
        log: layout.error_log.clone(),
        log_tail: log_tail(layout),
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let tail = log_tail(layout);
                if tail.contains("Address already in use") || tail.contains("Bind on TCP/IP port") {
                    return Ok(Outcome::PortClash(tail));
                }
                return Err(startup_error(format!("the server exited with {status}")));
            }
            Ok(None) => {}
            Err(e) => return Err(Error::io("checking on the server process", e)),
        }
        let attempt =
            tokio::time::timeout(Duration::from_secs(2), Conn::new(root_opts(port))).await;
        if let Ok(Ok(mut conn)) = attempt {
            let socket: Option<String> = conn.query_first("SELECT @@socket").await.ok().flatten();
            let _ = conn.disconnect().await;
            if socket.as_deref() == Some(&*layout.socket.to_string_lossy()) {
                return Ok(Outcome::Ready);
            }
            // A foreign server answers on our port: ours will fail to bind and exit; the next loop sees that.
        }
        if Instant::now() >= deadline {
            return Err(startup_error(format!(
                "not ready after {} s",
                READY_DEADLINE.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_exit(child: &mut Child, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return Ok(()),
            Ok(None) if Instant::now() >= deadline => {
                return Err(Error::Invalid(format!(
                    "server pid {} still running after {} s",
                    child.id(),
                    limit.as_secs()
                )))
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => return Err(Error::io("waiting for the server process", e)),
        }
    }
}

/// Kills (if still running) and reaps synchronously; used on error paths and in `Drop`.
fn reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn log_tail(layout: &Layout) -> String {
    let mut s = String::new();
    for p in [&layout.error_log, &layout.stderr_log] {
        if let Ok(bytes) = fs::read(p) {
            s.push_str(&template::tail(&String::from_utf8_lossy(&bytes), 25));
        }
    }
    s
}

/// A port that was free a moment ago; never 3306.
fn free_port() -> Result<u16> {
    for _ in 0..20 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::io("binding 127.0.0.1:0 to find a free port", e))?;
        let port = l
            .local_addr()
            .map_err(|e| Error::io("reading a bound port", e))?
            .port();
        if port != 3306 {
            return Ok(port);
        }
    }
    Err(Error::Invalid(
        "the kernel kept handing out port 3306".into(),
    ))
}

/// `$TMPDIR` if short enough for socket paths, else `/tmp`.
fn short_temp_root() -> PathBuf {
    let t = std::env::temp_dir();
    if t.as_os_str().len() <= 40 {
        t
    } else {
        PathBuf::from("/tmp")
    }
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
