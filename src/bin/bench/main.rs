//! `bench`: the end-to-end benchmark runner. It starts its own MariaDB and
//! MySQL servers (dropship-sandbox), runs, per server flavor, every comparison of PRODUCT.md's "Targets
//! to beat" side by side in one run, and prints (and writes) a table of ratios,
//! each the median of `--runs` runs. `scripts/bench.sh` builds the release
//! binaries and calls it; `tests/e2e/bench_smoke.rs` runs it with `--smoke`.
//!
//! Phases (see BENCHMARKS.md for the exact method of each):
//! 1. workload: 200k single-row changes in 20k transactions of 10 over 4
//!    tables of mixed types, written once to the source (`workload`);
//! 2. decode: `mariadb-binlog` / `mysqlbinlog --base64-output=decode-rows -v` vs `dropship
//!    binlog inspect` and an in-process decode-only loop on that binlog,
//!    then the same on the fixture corpus's MySQL 5.5 `mysql-bin.sakila`
//!    (read 10x per command; skipped with a note when the fixtures are absent);
//! 3. apply: native replica SQL thread (relay log filled first; on MySQL with
//!    `replica_parallel_workers` 4, its default, and 1) vs the
//!    `dropship replicate` binary resuming from a position row at the
//!    workload's start, each on a fresh server with the same options;
//! 4. steady lag: rate-limited writers at half the measured apply rate;
//! 5. copy: 1M-row table, dropship vs mydumper+myloader vs mariadb-dump|mariadb
//!    (mysqldump|mysql on MySQL);
//! 6. verify vs pt-table-checksum / CHECKSUM TABLE; cutover (only if the
//!    build has those commands; otherwise the table says so);
//! 7. peak RSS of `replicate` while it replicates one huge transaction.
//!
//! Invariant: no figure is invented. A comparison whose tool is missing or
//! whose command is not in this build is reported as such, never estimated.
//! Fails (exit 1) if a server, a tool that is present, or dropship fails.

mod workload;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use dropship_mysql::position::Position;
use dropship_sandbox::{Flavor, MariaDb, ServerOptions};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REPL_PW: &str = "bench-repl-pw";
const TGT_PW: &str = "bench-tgt-pw";
const SEED: u64 = 20240611;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "bench",
    about = "dropship end-to-end benchmarks against MariaDB's and MySQL's own tools"
)]
struct Args {
    /// Tiny sizes (the test suite runs this).
    #[arg(long)]
    smoke: bool,
    /// Runs per comparison; each figure is the median.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// The dropship binary to measure (use the release build).
    #[arg(long, default_value = "target/release/dropship")]
    dropship: PathBuf,
    /// Write the report (markdown) here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The command line to print in the report.
    #[arg(long, default_value = "")]
    command_line: String,
    /// Transactions of 10 changes in the apply workload (default 20000; smoke 300).
    #[arg(long)]
    transactions: Option<u64>,
    /// Rows of the copy table (default 1000000; smoke 5000).
    #[arg(long)]
    copy_rows: Option<u64>,
    /// Size of the huge transaction in MiB (default 1024; smoke 8).
    #[arg(long)]
    huge_mib: Option<u64>,
    /// Seconds of each steady-lag window (default 20; smoke 2).
    #[arg(long)]
    lag_secs: Option<u64>,
    /// Phases to run, comma-separated: decode,apply,lag,copy,verify,cutover,memory (lag needs apply, verify
    /// needs copy). Default: all.
    #[arg(long, value_delimiter = ',')]
    phases: Vec<String>,
    /// Servers to measure, comma-separated, each in its own section: mariadb,mysql. Default: both (MySQL
    /// where scripts/install-mysql.sh installed it; otherwise the report says it was skipped).
    #[arg(long, value_delimiter = ',')]
    flavors: Vec<String>,
    /// Record a system-wide `perf record -a -g` profile of the first dropship apply run into this file.
    #[arg(long)]
    perf: Option<PathBuf>,
    /// TOML put at the top of every generated dropship config, e.g. '[replicate]\nbatch_rows = 20000' (a
    /// literal \n is a newline; for tuning experiments; the report shows it).
    #[arg(long, default_value = "")]
    extra_config: String,
}

impl Args {
    fn on(&self, phase: &str) -> bool {
        self.phases.is_empty() || self.phases.iter().any(|p| p == phase)
    }
}

struct Sizes {
    transactions: u64,
    copy_rows: u64,
    huge_mib: u64,
    lag_secs: u64,
}

/// One line of the result table.
struct Line {
    section: String,
    what: String,
    dropship: String,
    baseline: String,
    ratio: String,
    goal: String,
}

#[derive(Default)]
struct Report {
    /// The server the lines and notes being added are about, e.g. `MySQL 9.7.0`.
    section: String,
    /// Every section in the order measured, with a note on its servers.
    sections: Vec<(String, String)>,
    lines: Vec<Line>,
    notes: Vec<(String, String)>,
}

impl Report {
    fn line(&mut self, what: &str, dropship: String, baseline: String, ratio: String, goal: &str) {
        println!(
            "  => {what}: dropship {dropship} | baseline {baseline} | ratio {ratio} | goal {goal}"
        );
        self.lines.push(Line {
            section: self.section.clone(),
            what: what.into(),
            dropship,
            baseline,
            ratio,
            goal: goal.into(),
        });
    }
    fn note(&mut self, n: impl Into<String>) {
        let n = n.into();
        println!("  note: {n}");
        self.notes.push((self.section.clone(), n));
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn secs(v: &[f64]) -> String {
    let all: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
    format!("{:.2} s [{}]", median(v), all.join(", "))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs `sh -c cmd`, returns wall seconds; fails with its stderr on a non-zero exit.
fn time_sh(cmd: &str) -> Result<f64> {
    let t = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running {cmd}"))?;
    let el = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{cmd} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(el)
}

/// Options of a native replica applying with `workers` parallel workers (0: MariaDB's serial SQL thread;
/// MySQL's serial applier is 1), also used for dropship's targets.
fn replica_options(flavor: Flavor, id: u32, workers: u32) -> ServerOptions {
    // Same options for the native replica and dropship's targets: binlog on
    // (with log_slave_updates, so the native SQL thread logs its changes as a
    // target with binlog on logs dropship's), fast durability settings.
    let o = ServerOptions::source()
        .with_flavor(flavor)
        .with_server_id(id)
        .with_extra("max_allowed_packet=1G")
        .with_extra("innodb_buffer_pool_size=512M");
    match flavor {
        Flavor::MariaDb => o
            .with_extra("log_slave_updates=ON")
            .with_extra(&format!("slave_parallel_threads={workers}")),
        Flavor::MySql => o
            .with_extra("log_replica_updates=ON")
            .with_extra(&format!("replica_parallel_workers={}", workers.max(1))),
    }
}

/// A FROM-clause item yielding integers `from..=to` as column `seq`: MariaDB's sequence engine, a recursive
/// CTE on MySQL (the session needs `cte_max_recursion_depth` above the count: [`seq_session`]).
fn seq_rows(flavor: Flavor, db: &str, from: u64, to: u64) -> String {
    match flavor {
        Flavor::MariaDb => format!("`{db}`.`seq_{from}_to_{to}`"),
        Flavor::MySql => format!(
            "(WITH RECURSIVE s(seq) AS (SELECT {from} UNION ALL SELECT seq + 1 FROM s WHERE seq < {to}) SELECT seq FROM s) AS q"
        ),
    }
}

/// Prepares a session for [`seq_rows`].
async fn seq_session(flavor: Flavor, c: &mut Conn) -> Result<()> {
    if flavor == Flavor::MySql {
        exec(c, "SET SESSION cte_max_recursion_depth = 100000000").await?;
    }
    Ok(())
}

/// The GTID state of a server, as its flavor spells it.
fn gtid_state_sql(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::MariaDb => "SELECT @@GLOBAL.gtid_binlog_pos",
        Flavor::MySql => "SELECT @@GLOBAL.gtid_executed",
    }
}

/// pt-table-checksum: 3.7 from sid (scripts/install-mysql.sh --percona-toolkit) if there, else the system's.
fn pt_table_checksum() -> Option<String> {
    let sid = dropship_sandbox::template::mysql_root().join("bin/pt-table-checksum");
    if sid.is_file() {
        Some(sid.display().to_string())
    } else if have("pt-table-checksum") {
        Some("pt-table-checksum".into())
    } else {
        None
    }
}

async fn q1<T: mysql_async::prelude::FromValue + Send + 'static>(
    c: &mut Conn,
    sql: &str,
) -> Result<T> {
    let v: Option<T> = c.query_first(sql).await.with_context(|| sql.to_string())?;
    v.ok_or_else(|| anyhow!("{sql}: no row"))
}

async fn exec(c: &mut Conn, sql: &str) -> Result<()> {
    c.query_drop(sql)
        .await
        .with_context(|| sql.chars().take(300).collect::<String>())
}

async fn source_position(src: &MariaDb) -> Result<Position> {
    let mut c = src.conn().await?;
    let p = dropship_core::source::position(&mut c).await?;
    Ok(p)
}

async fn target_position(c: &mut Conn, service: &str) -> Result<Option<Position>> {
    let row: Option<(String, u64, String)> = c
        .exec_first(
            "SELECT binlog_file, binlog_pos, gtid FROM `_dropship`.`positions` WHERE service = ?",
            (service,),
        )
        .await?;
    Ok(row.map(|(file, pos, gtid)| Position { file, pos, gtid }))
}

/// Whether a committed position covers `want`: at or past it, or (after a binlog rotation on an idle source,
/// where dropship's position can stay at `file:4` while the source reports `file:379`) the same GTID state.
fn covers(p: &Position, want: &Position) -> bool {
    p >= want || (!want.gtid.is_empty() && p.gtid == want.gtid)
}

/// A `dropship replicate` process.
struct Replicate {
    child: Child,
    log: PathBuf,
}

impl Replicate {
    fn spawn(dropship: &Path, cfg: &Path, log: PathBuf) -> Result<Replicate> {
        let f = std::fs::File::create(&log)?;
        let child = Command::new(dropship)
            .arg("-c")
            .arg(cfg)
            .args(["--log-format", "json", "replicate"])
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .with_context(|| format!("starting {}", dropship.display()))?;
        Ok(Replicate { child, log })
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Peak and current resident set (KiB) from /proc.
    fn memory_kib(&self) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let get = |k: &str| {
            s.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (get("VmHWM:"), get("VmRSS:"))
    }
    fn check_alive(&mut self) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: String = tail
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            bail!("dropship replicate exited ({st}); log tail:\n{tail}");
        }
        Ok(())
    }
    /// SIGTERM, then wait (SIGKILL after 60 s).
    async fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait()? {
                if !st.success() {
                    bail!(
                        "dropship replicate exited with {st} on SIGTERM (log: {})",
                        self.log.display()
                    );
                }
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("dropship replicate did not stop within 60 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Replicate {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Ctx {
    args: Args,
    sizes: Sizes,
    dir: tempfile::TempDir,
    flavor: Flavor,
    source: MariaDb,
    report: Report,
    next_id: u32,
}

impl Ctx {
    /// `rel` inside this flavor's part of the work directory.
    fn work(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(self.flavor.name()).join(rel)
    }

    fn config(&self, name: &str, target: &MariaDb, tables: &[&str], tag: &str) -> Result<PathBuf> {
        let d = self.work(tag);
        std::fs::create_dir_all(&d)?;
        let tables: Vec<String> = tables.iter().map(|t| format!("\"{t}\"")).collect();
        let text = format!(
            "[source]\nurl = \"mysql://repl:{REPL_PW}@127.0.0.1:{}\"\nserver_id = {}\n[state]\ndir = \"{}\"\n[control]\nlisten = \"127.0.0.1:0\"\n\n[services.{name}]\ntarget = \"mysql://dropship:{TGT_PW}@127.0.0.1:{}\"\ntables = [{}]\n",
            self.source.port(),
            5000 + self.next_id,
            d.join("state").display(),
            target.port(),
            tables.join(", ")
        );
        let text = if self.args.extra_config.is_empty() {
            text
        } else {
            format!("{}\n{text}", self.args.extra_config.replace("\\n", "\n"))
        };
        let p = d.join("dropship.toml");
        std::fs::write(&p, text)?;
        Ok(p)
    }

    async fn server(&mut self) -> Result<MariaDb> {
        self.next_id += 1;
        let s = MariaDb::start(replica_options(self.flavor, 100 + self.next_id, 0)).await?;
        s.create_user("dropship", TGT_PW, &["ALL PRIVILEGES ON *.*"])
            .await?;
        Ok(s)
    }
}

/// Waits until `service`'s committed position on `target` reaches `want`; returns the elapsed time since `t0`.
async fn wait_position(
    tc: &mut Conn,
    rep: &mut Replicate,
    service: &str,
    want: &Position,
    t0: Instant,
    timeout: Duration,
) -> Result<f64> {
    loop {
        if let Some(p) = target_position(tc, service).await.unwrap_or(None) {
            if covers(&p, want) {
                return Ok(t0.elapsed().as_secs_f64());
            }
        }
        rep.check_alive()?;
        if t0.elapsed() > timeout {
            bail!("service {service} did not reach {want} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => {}
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let sizes = Sizes {
        transactions: args
            .transactions
            .unwrap_or(if args.smoke { 300 } else { 20_000 }),
        copy_rows: args
            .copy_rows
            .unwrap_or(if args.smoke { 5_000 } else { 1_000_000 }),
        huge_mib: args.huge_mib.unwrap_or(if args.smoke { 8 } else { 1024 }),
        lag_secs: args.lag_secs.unwrap_or(if args.smoke { 2 } else { 20 }),
    };
    if !args.dropship.exists() {
        bail!(
            "no dropship binary at {} (build it: cargo build --release --bin dropship)",
            args.dropship.display()
        );
    }
    let dropship = std::fs::canonicalize(&args.dropship)?;
    let args = Args {
        dropship,
        runs: args.runs.max(1),
        ..args
    };
    let began = Instant::now();
    let mut flavors = Vec::new();
    for f in if args.flavors.is_empty() {
        vec!["mariadb".to_string(), "mysql".to_string()]
    } else {
        args.flavors.clone()
    } {
        let flavor = Flavor::parse(&f).ok_or_else(|| {
            anyhow!("unknown flavor '{f}' in --flavors (expected mariadb or mysql)")
        })?;
        flavors.push(flavor);
    }
    let dir = tempfile::Builder::new()
        .prefix("ds-bench")
        .tempdir_in("/tmp")?;
    let Some(&first) = flavors.iter().find(|f| f.available()) else {
        bail!("none of the servers in --flavors is installed here (run scripts/install-deps.sh)");
    };
    let mut cx = Ctx {
        args,
        sizes,
        dir,
        flavor: first,
        source: start_source(first).await?,
        report: Report::default(),
        next_id: 0,
    };
    for flavor in flavors {
        if !flavor.available() {
            let name = flavor.to_string();
            cx.report.sections.push((
                name.clone(),
                format!("skipped: {name} is not installed here (scripts/install-deps.sh)"),
            ));
            println!("bench: {name} not installed: its section is skipped");
            continue;
        }
        if flavor != cx.flavor {
            cx.source = start_source(flavor).await?;
            cx.flavor = flavor;
        }
        run_flavor(&mut cx).await?;
    }

    let total = began.elapsed().as_secs_f64();
    let md = render(&cx, total);
    println!("\n{md}");
    if let Some(out) = &cx.args.out {
        // Keep a hand-written analysis below the marker across runs.
        const MARKER: &str = "<!-- hand-written below: kept by the runner -->";
        let kept = std::fs::read_to_string(out)
            .ok()
            .and_then(|old| old.find(MARKER).map(|i| old[i..].to_string()));
        let md = match kept {
            Some(tail) => format!("{md}\n{tail}"),
            None => md.clone(),
        };
        std::fs::write(out, &md).with_context(|| format!("writing {}", out.display()))?;
        println!("bench: wrote {}", out.display());
    }
    Ok(())
}

/// A source of `flavor` with the `repl` user dropship connects as.
async fn start_source(flavor: Flavor) -> Result<MariaDb> {
    let source = MariaDb::start(
        ServerOptions::source()
            .with_flavor(flavor)
            .with_extra("max_allowed_packet=1G")
            .with_extra("innodb_buffer_pool_size=1G"),
    )
    .await?;
    let monitor = match flavor {
        Flavor::MariaDb => "BINLOG MONITOR",
        Flavor::MySql => "REPLICATION CLIENT",
    };
    source
        .create_user(
            "repl",
            REPL_PW,
            &[&format!(
                "REPLICATION SLAVE, {monitor}, SELECT, RELOAD, LOCK TABLES, TRIGGER ON *.*"
            )],
        )
        .await?;
    Ok(source)
}

/// Every phase asked for, against `cx.source`, into its own report section.
async fn run_flavor(cx: &mut Ctx) -> Result<()> {
    let section = format!("{} {}", cx.flavor, short_version(cx.source.version()));
    cx.report.section = section.clone();
    cx.report
        .sections
        .push((section, format!("{} {}", cx.flavor, cx.source.version())));
    println!(
        "\nbench: {} source on port {}, {} {}, work dir {}",
        cx.flavor,
        cx.source.port(),
        cx.flavor,
        cx.source.version(),
        cx.dir.path().display()
    );
    let on = |p: &str| cx.args.on(p);
    let (decode, apply, lag, copy, verify, cutover, memory) = (
        on("decode"),
        on("apply"),
        on("lag"),
        on("copy"),
        on("verify"),
        on("cutover"),
        on("memory"),
    );
    if decode || apply {
        let wl = phase_workload(cx).await?;
        if decode {
            phase_decode(cx, &wl).await?;
        }
        if apply {
            let (apply_rate, last) = phase_apply(cx, &wl).await?;
            if lag {
                phase_lag(cx, apply_rate, last).await?;
            } else if let Some((_t, rep)) = last {
                rep.stop().await?;
            }
        }
    }
    if copy {
        let copy_target = phase_copy(cx).await?;
        if verify {
            phase_verify(cx, &copy_target).await?;
        }
    }
    if cutover {
        phase_cutover(cx).await?;
    }
    if memory {
        phase_memory(cx).await?;
    }
    Ok(())
}

/// `10.11.19-MariaDB-0+deb12u1` -> `10.11.19`.
fn short_version(v: &str) -> &str {
    v.split(['-', '+']).next().unwrap_or(v)
}

struct Workload {
    /// Position and GTID before the workload (tables exist and are empty).
    start: Position,
    end: Position,
    end_gtid: String,
    start_gtid: String,
    binlog: PathBuf,
    rows: u64,
}

async fn phase_workload(cx: &mut Ctx) -> Result<Workload> {
    println!(
        "\n== workload: {} transactions of {} single-row changes over 4 tables",
        cx.sizes.transactions,
        workload::OPS_PER_TX
    );
    let mut c = cx.source.conn().await?;
    for s in workload::schema_sql() {
        exec(&mut c, &s).await?;
    }
    let start = source_position(&cx.source).await?;
    let start_gtid: String = q1(&mut c, gtid_state_sql(cx.flavor)).await?;
    let t = Instant::now();
    workload::run(&mut c, cx.sizes.transactions, SEED)
        .await
        .context("running the workload on the source")?;
    let wrote = t.elapsed().as_secs_f64();
    let end = source_position(&cx.source).await?;
    let end_gtid: String = q1(&mut c, gtid_state_sql(cx.flavor)).await?;
    let base: String = q1(&mut c, "SELECT @@GLOBAL.log_bin_basename").await?;
    let binlog = Path::new(&base).with_file_name(&end.file);
    let size = std::fs::metadata(&binlog).map(|m| m.len()).unwrap_or(0);
    let rows = cx.sizes.transactions * workload::OPS_PER_TX as u64;
    println!(
        "  source wrote {rows} changes in {wrote:.2} s; binlog {} = {:.1} MB; {start} -> {end}",
        binlog.display(),
        size as f64 / 1e6
    );
    cx.report.note(format!(
        "workload: {rows} single-row changes in {} transactions of {} over 4 tables (BIGINT/INT/VARCHAR/DECIMAL/DATETIME(6)/DOUBLE; composite INT+VARCHAR key with TEXT/DATE; BINARY(16) key with BLOB/ENUM/TIMESTAMP(3)/BIGINT UNSIGNED; INT UNSIGNED key with JSON/latin1 CHAR/FLOAT/TIME(2)/BIT(12)); about 50% inserts, 35% updates, 15% deletes; binlog {:.1} MB; the source took {wrote:.1} s to write it",
        cx.sizes.transactions,
        workload::OPS_PER_TX,
        size as f64 / 1e6
    ));
    Ok(Workload {
        start,
        end,
        end_gtid,
        start_gtid,
        binlog,
        rows,
    })
}

async fn phase_decode(cx: &mut Ctx, wl: &Workload) -> Result<()> {
    println!("\n== decode: {}", wl.binlog.display());
    decode_compare(cx, "", std::slice::from_ref(&wl.binlog))?;
    // The issue's second file: the real MySQL 5.5 sakila load binlog from the
    // fixture corpus (1.4 MB). Read 10 times in one command per tool so that
    // process start-up does not dominate.
    let dir = match std::env::var_os("DROPSHIP_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/binlogs"),
    };
    let sakila = dir.join("mysql-binlog-connector-java/mysql-bin.sakila");
    if cx.flavor == Flavor::MySql {
        // mysqlbinlog 9.7 stops at offset 21654 of this 5.5 file ("Error in log format"): no baseline.
        cx.report.note("decode: the MySQL 5.5 mysql-bin.sakila comparison is in the MariaDB section only: mysqlbinlog 9.7 refuses that file (`Could not read entry at offset 21654: Error in log format`)");
    } else if sakila.is_file() {
        println!("\n== decode: {} (x10)", sakila.display());
        decode_compare(
            cx,
            " on mysql-bin.sakila (MySQL 5.5, 1.4 MB, read 10x)",
            &vec![sakila; 10],
        )?;
    } else {
        println!(
            "  note: {} absent (set DROPSHIP_FIXTURES): sakila decode skipped",
            sakila.display()
        );
        cx.report.line(
            "binlog decode on mysql-bin.sakila",
            "skipped: fixture absent".into(),
            "n/a".into(),
            "n/a".into(),
            ">= 3x",
        );
    }
    Ok(())
}

/// Times `mariadb-binlog -v`, `dropship binlog inspect` and an in-process
/// decode-only loop over `files` (read in one command each), side by side.
fn decode_compare(cx: &mut Ctx, label: &str, files: &[PathBuf]) -> Result<()> {
    let f = files
        .iter()
        .map(|p| format!("'{}'", p.display()))
        .collect::<Vec<_>>()
        .join(" ");
    let (mut native, mut inspect, mut decode, mut events) =
        (Vec::new(), Vec::new(), Vec::new(), 0u64);
    let tool = cx.source.binlog_tool();
    let tool_name = match cx.flavor {
        Flavor::MariaDb => "mariadb-binlog",
        Flavor::MySql => "mysqlbinlog",
    };
    let have_mb = tool.is_some();
    for run in 0..cx.args.runs {
        if let Some(tool) = &tool {
            native.push(time_sh(&format!(
                "'{}' --no-defaults --base64-output=decode-rows -v {f} > /dev/null",
                tool.display()
            ))?);
        }
        inspect.push(time_sh(&format!(
            "'{}' binlog inspect {f} > /dev/null",
            cx.args.dropship.display()
        ))?);
        let t = Instant::now();
        let mut n = 0u64;
        for file in files {
            let mut sink = |_h, _e| {
                n += 1;
                Ok(())
            };
            dropship_mysql::binlog::read_file(file, &mut sink)
                .with_context(|| format!("decoding {}", file.display()))?;
        }
        decode.push(t.elapsed().as_secs_f64());
        events = n;
        println!("  run {}: {tool_name} {:?} s, dropship inspect {:.2} s, decode-only {:.2} s ({n} events)", run + 1, native.last(), inspect[run], decode[run]);
    }
    let size = files
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum::<u64>() as f64
        / 1e6;
    if have_mb {
        let b = median(&native);
        cx.report.line(
            &format!("binlog decode{label}: `dropship binlog inspect` (JSON lines)"),
            secs(&inspect),
            format!("{tool_name} -v: {}", secs(&native)),
            format!("{:.2}x", b / median(&inspect)),
            ">= 3x",
        );
        cx.report.line(
            &format!("binlog decode{label}: decode-only loop (no printing)"),
            format!(
                "{} ({:.0} MB/s, {:.0}k events/s)",
                secs(&decode),
                size / median(&decode),
                events as f64 / median(&decode) / 1e3
            ),
            format!("{tool_name} -v: {}", secs(&native)),
            format!("{:.2}x", b / median(&decode)),
            ">= 3x",
        );
    } else {
        cx.report.line(
            &format!("binlog decode{label}"),
            secs(&inspect),
            format!("{tool_name} not installed"),
            "n/a".into(),
            ">= 3x",
        );
    }
    Ok(())
}

/// The words of a flavor's native replication: MariaDB's `SLAVE` and `MASTER_*`, MySQL's `REPLICA` and
/// `SOURCE_*`.
struct Native {
    status: &'static str,
    file_col: &'static str,
    pos_col: &'static str,
    start_io: &'static str,
    start_sql: &'static str,
    stop: &'static str,
    /// Names of the two threads, for messages.
    io: &'static str,
    sql: &'static str,
}

const NATIVE_MARIADB: Native = Native {
    status: "SHOW SLAVE STATUS",
    file_col: "Master_Log_File",
    pos_col: "Read_Master_Log_Pos",
    start_io: "START SLAVE IO_THREAD",
    start_sql: "START SLAVE SQL_THREAD",
    stop: "STOP SLAVE",
    io: "IO thread",
    sql: "SQL thread",
};

const NATIVE_MYSQL: Native = Native {
    status: "SHOW REPLICA STATUS",
    file_col: "Source_Log_File",
    pos_col: "Read_Source_Log_Pos",
    start_io: "START REPLICA IO_THREAD",
    start_sql: "START REPLICA SQL_THREAD",
    stop: "STOP REPLICA",
    io: "receiver thread",
    sql: "applier",
};

/// Native replica: the relay log is fetched first, then the applier is timed until the replica holds the
/// workload's end (`workers`: MySQL's replica_parallel_workers). MariaDB starts from gtid_slave_pos, MySQL by
/// GTID auto-position from the workload's start.
async fn native_apply(cx: &mut Ctx, wl: &Workload, workers: u32) -> Result<f64> {
    let mysql = cx.flavor == Flavor::MySql;
    let n = if mysql {
        &NATIVE_MYSQL
    } else {
        &NATIVE_MARIADB
    };
    cx.next_id += 1;
    let workers = if mysql { workers } else { 0 };
    let r = MariaDb::start(replica_options(cx.flavor, 200 + cx.next_id, workers)).await?;
    let mut c = r.conn().await?;
    exec(&mut c, "SET SESSION sql_log_bin = 0").await?;
    for s in workload::schema_sql() {
        exec(&mut c, &s).await?;
    }
    let port = cx.source.port();
    if mysql {
        exec(&mut c, "RESET BINARY LOGS AND GTIDS").await?;
        if !wl.start_gtid.is_empty() {
            exec(
                &mut c,
                &format!("SET GLOBAL gtid_purged = '{}'", wl.start_gtid),
            )
            .await?;
        }
        exec(&mut c, &format!("CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={port}, SOURCE_USER='repl', SOURCE_PASSWORD='{REPL_PW}', SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1")).await?;
    } else {
        exec(
            &mut c,
            &format!("SET GLOBAL gtid_slave_pos = '{}'", wl.start_gtid),
        )
        .await?;
        exec(&mut c, &format!("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={port}, MASTER_USER='repl', MASTER_PASSWORD='{REPL_PW}', MASTER_USE_GTID=slave_pos")).await?;
    }
    exec(&mut c, n.start_io).await?;
    let want = source_position(&cx.source).await?;
    let t = Instant::now();
    loop {
        let row: Option<Row> = c.query_first(n.status).await?;
        let row = row.ok_or_else(|| anyhow!("{} is empty", n.status))?;
        let file: String = row.get(n.file_col).unwrap_or_default();
        let pos: u64 = row.get(n.pos_col).unwrap_or(0);
        let err: String = row.get("Last_IO_Error").unwrap_or_default();
        if !err.is_empty() {
            bail!("native replica {}: {err}", n.io);
        }
        if Position::new(file, pos) >= want {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!(
                "native replica {} did not fetch the binlog within 600 s",
                n.io
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fetched = t.elapsed().as_secs_f64();
    let done = if mysql {
        format!(
            "SELECT GTID_SUBSET('{}', @@GLOBAL.gtid_executed)",
            wl.end_gtid
        )
    } else {
        format!("SELECT @@GLOBAL.gtid_slave_pos = '{}'", wl.end_gtid)
    };
    let t = Instant::now();
    exec(&mut c, n.start_sql).await?;
    let mut checked = Instant::now();
    loop {
        let ok: i64 = q1(&mut c, &done).await?;
        if ok == 1 {
            break;
        }
        if t.elapsed() > Duration::from_secs(1200) {
            bail!(
                "native replica {} did not reach {} within 1200 s",
                n.sql,
                wl.end_gtid
            );
        }
        if checked.elapsed() > Duration::from_secs(1) {
            checked = Instant::now();
            let row: Option<Row> = c.query_first(n.status).await?;
            let err: String = row
                .and_then(|r| r.get("Last_SQL_Error"))
                .unwrap_or_default();
            if !err.is_empty() {
                bail!("native replica {}: {err}", n.sql);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let el = t.elapsed().as_secs_f64();
    println!(
        "  native ({workers} workers): {} fetched in {fetched:.2} s; {} applied {} rows in {el:.2} s ({:.0} rows/s)",
        n.io,
        n.sql,
        wl.rows,
        wl.rows as f64 / el
    );
    exec(&mut c, n.stop).await?;
    Ok(el)
}

/// dropship: a fresh target with the tables and the position row at the workload start; time the binary until
/// its committed position reaches the workload end.
async fn dropship_apply(
    cx: &mut Ctx,
    wl: &Workload,
    run: usize,
) -> Result<(f64, MariaDb, Replicate)> {
    let t = cx.server().await?;
    let mut c = t.conn().await?;
    exec(&mut c, "SET SESSION sql_log_bin = 0").await?;
    for s in workload::schema_sql() {
        exec(&mut c, &s).await?;
    }
    let cfg_path = cx.config("bench", &t, &["bench.*"], &format!("apply{run}"))?;
    let cfg = dropship_core::config::Config::load(&cfg_path)?;
    let svc = cfg
        .services
        .first()
        .ok_or_else(|| anyhow!("no service in the bench config"))?;
    dropship_core::meta::migrate(&svc.target).await?;
    exec(
        &mut c,
        &dropship_core::meta::position_sql("bench", &wl.start, 0, false),
    )
    .await?;
    exec(&mut c, "INSERT INTO `_dropship`.`service_state` (service, state, message) VALUES ('bench', 'replicating', '')").await?;
    let perf = match (&cx.args.perf, run) {
        (Some(out), 0) => Some(
            Command::new("perf")
                // DROPSHIP_BENCH_PERF_DWARF=1: DWARF call graphs (the release build has no frame pointers).
                .args(if std::env::var_os("DROPSHIP_BENCH_PERF_DWARF").is_some() {
                    &[
                        "record",
                        "-a",
                        "--call-graph",
                        "dwarf,16384",
                        "-F",
                        "199",
                        "-o",
                    ][..]
                } else {
                    &["record", "-a", "-g", "-F", "499", "-o"][..]
                })
                .arg(out)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting perf record")?,
        ),
        _ => None,
    };
    if perf.is_some() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let t0 = Instant::now();
    let mut rep = Replicate::spawn(
        &cx.args.dropship,
        &cfg_path,
        cx.work(format!("apply{run}/replicate.log")),
    )?;
    let el = wait_position(
        &mut c,
        &mut rep,
        "bench",
        &wl.end,
        t0,
        Duration::from_secs(1200),
    )
    .await?;
    if let Some(mut p) = perf {
        let _ = Command::new("kill")
            .args(["-INT", &p.id().to_string()])
            .status();
        let _ = p.wait();
    }
    let (hwm, _) = rep.memory_kib();
    println!(
        "  dropship: applied {} rows in {el:.2} s ({:.0} rows/s), replicate peak RSS {} MiB",
        wl.rows,
        wl.rows as f64 / el,
        hwm / 1024
    );
    if run == 0 {
        let mut s = cx.source.conn().await?;
        for table in workload::TABLES {
            dropship_sandbox::assert_tables_identical(
                &mut s,
                workload::DB,
                &mut c,
                workload::DB,
                table,
            )
            .await
            .map_err(|e| anyhow!("after the apply run the target differs from the source: {e}"))?;
        }
        println!("  dropship: target tables identical to the source");
    }
    Ok((el, t, rep))
}

/// How dropship's apply run is measured (both flavors).
const DROPSHIP_APPLY: &str = "a fresh server with the same options, tables pre-created and `_dropship.positions` set to the workload's start (no copy), the release `dropship replicate` binary timed from spawn until its committed position reaches the workload's end. dropship's time INCLUDES process start and reading the binlog from the source over TCP (the native figure excludes its IO thread), so the comparison is tilted against dropship";

async fn phase_apply(cx: &mut Ctx, wl: &Workload) -> Result<(f64, Option<(MariaDb, Replicate)>)> {
    println!("\n== apply: {} rows", wl.rows);
    let (mut native, mut native1, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let mysql = cx.flavor == Flavor::MySql;
    let mut last = None;
    for run in 0..cx.args.runs {
        native.push(native_apply(cx, wl, 4).await?);
        if mysql {
            native1.push(native_apply(cx, wl, 1).await?);
        }
        let (el, t, rep) = dropship_apply(cx, wl, run).await?;
        ours.push(el);
        if run + 1 < cx.args.runs {
            rep.stop().await?;
            drop(t);
        } else {
            // The last run's replicate keeps running for the lag phase.
            last = Some((t, rep));
        }
    }
    let rate = |v: &[f64]| wl.rows as f64 / median(v);
    let what = format!(
        "apply rate ({}k-op workload; replica/target binlog ON)",
        wl.rows / 1000
    );
    if mysql {
        for (workers, v) in [(4, &native), (1, &native1)] {
            cx.report.line(
                &format!("{what}, vs replica_parallel_workers={workers}"),
                format!("{:.0} rows/s; {}", rate(&ours), secs(&ours)),
                format!(
                    "native applier, {workers} worker(s): {:.0} rows/s; {}",
                    rate(v),
                    secs(v)
                ),
                format!("{:.2}x", median(v) / median(&ours)),
                ">= 2x",
            );
        }
        cx.report.note(format!(
            "apply: native = fresh MySQL replica (binlog ON, log_replica_updates=ON, GTID auto-position from the workload's start via gtid_purged), relay log filled by START REPLICA IO_THREAD first, then START REPLICA SQL_THREAD timed until GTID_SUBSET(workload end, gtid_executed); once with replica_parallel_workers=4 (MySQL's default, LOGICAL_CLOCK with commit order preserved) and once with 1; dropship: {DROPSHIP_APPLY}",
        ));
        return Ok((rate(&ours), last));
    }
    cx.report.line(
        &what,
        format!("{:.0} rows/s; {}", rate(&ours), secs(&ours)),
        format!(
            "native SQL thread: {:.0} rows/s; {}",
            rate(&native),
            secs(&native)
        ),
        format!("{:.2}x", median(&native) / median(&ours)),
        ">= 2x",
    );
    cx.report.note(format!(
        "apply: native = fresh replica (binlog ON, log_slave_updates=ON, slave_parallel_threads=0), relay log filled by START SLAVE IO_THREAD first, then START SLAVE SQL_THREAD timed until gtid_slave_pos equals the source's; dropship: {DROPSHIP_APPLY}",
    ));
    Ok((rate(&ours), last))
}

async fn phase_lag(
    cx: &mut Ctx,
    apply_rate: f64,
    last: Option<(MariaDb, Replicate)>,
) -> Result<()> {
    let Some((target, mut rep)) = last else {
        bail!("no running replicate for the lag phase")
    };
    const WRITERS: u32 = 4;
    let rows_per_tx = workload::OPS_PER_TX as f64 + 1.0;
    let want_rows = apply_rate / 2.0;
    let tx_rate = want_rows / rows_per_tx / f64::from(WRITERS);
    println!("\n== steady lag: {WRITERS} writers at {:.0} rows/s total (half of {apply_rate:.0}) for {} s x {}", want_rows, cx.sizes.lag_secs, cx.args.runs);
    let mut c = cx.source.conn().await?;
    for w in 0..WRITERS {
        exec(
            &mut c,
            &format!(
                "INSERT INTO `bench`.`lag_probe` VALUES ({w}, 0) ON DUPLICATE KEY UPDATE seq = 0"
            ),
        )
        .await?;
    }
    let mut p99s = Vec::new();
    let mut maxes = Vec::new();
    let mut achieved = Vec::new();
    let mut tc = target.conn().await?;
    let pos = source_position(&cx.source).await?;
    wait_position(
        &mut tc,
        &mut rep,
        "bench",
        &pos,
        Instant::now(),
        Duration::from_secs(120),
    )
    .await?;
    for run in 0..cx.args.runs {
        let acks: Arc<Mutex<Vec<Vec<Instant>>>> =
            Arc::new(Mutex::new(vec![Vec::new(); WRITERS as usize]));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let pool = cx.source.pool();
            let acks = acks.clone();
            let stop = stop.clone();
            let seed = SEED + 1000 * run as u64 + u64::from(w);
            // Keys of this window's writers never collide with earlier ones.
            let wid = 1 + w + WRITERS * run as u32;
            tasks.push(tokio::spawn(async move {
                let mut g = workload::Generator::new(seed, wid).with_probe(w);
                let mut conn = pool.get_conn().await?;
                let start = Instant::now();
                let mut k = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let due = start + Duration::from_secs_f64(k as f64 / tx_rate);
                    let now = Instant::now();
                    if due > now {
                        tokio::time::sleep(due - now).await;
                    }
                    let (sql, seq) = g.transaction();
                    conn.query_drop(sql).await?;
                    if let Ok(mut a) = acks.lock() {
                        a[w as usize].push(Instant::now());
                        debug_assert_eq!(a[w as usize].len() as u64, seq);
                    }
                    k += 1;
                }
                Ok::<u64, mysql_async::Error>(k)
            }));
        }
        let t = Instant::now();
        let mut samples = Vec::new();
        while t.elapsed() < Duration::from_secs(cx.sizes.lag_secs) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let rows: Vec<(u32, u64)> = tc.query("SELECT id, seq FROM `bench`.`lag_probe`").await?;
            let now = Instant::now();
            let mut lag = 0.0f64;
            if let Ok(a) = acks.lock() {
                for (id, applied) in rows {
                    // Age of the oldest acknowledged transaction the target has not applied.
                    if let Some(v) = a.get(id as usize) {
                        if let Some(oldest) = v.get(applied as usize) {
                            lag = lag.max(now.duration_since(*oldest).as_secs_f64());
                        }
                    }
                }
            }
            if t.elapsed() >= Duration::from_secs(1).min(Duration::from_secs(cx.sizes.lag_secs) / 2)
            {
                samples.push(lag);
            }
            rep.check_alive()?;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut n_tx = 0;
        for task in tasks {
            n_tx += task.await??;
        }
        let el = t.elapsed().as_secs_f64();
        samples.sort_by(|a, b| a.total_cmp(b));
        let p99 = samples
            .get(((samples.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN);
        let max = samples.last().copied().unwrap_or(f64::NAN);
        let rate = n_tx as f64 * rows_per_tx / el;
        println!(
            "  run {}: {} samples, p99 {:.3} s, max {:.3} s, achieved {:.0} rows/s",
            run + 1,
            samples.len(),
            p99,
            max,
            rate
        );
        p99s.push(p99);
        maxes.push(max);
        achieved.push(rate);
    }
    cx.report.line(
        "steady lag p99 at half the max apply rate",
        format!(
            "p99 {:.3} s, max {:.3} s at {:.0} rows/s",
            median(&p99s),
            median(&maxes),
            median(&achieved)
        ),
        "-".into(),
        "-".into(),
        "p99 < 1 s",
    );
    cx.report.note(format!(
        "steady lag: {WRITERS} source connections, paced to half the measured dropship apply rate in total; each transaction = 10 workload changes + an update of the writer's `lag_probe` row carrying a sequence number; every 100 ms the target's probe rows are read and lag = age of the oldest acknowledged source transaction not yet on the target (0 if none); first second of each {} s window dropped; median over windows of the window's p99",
        cx.sizes.lag_secs
    ));
    if median(&achieved) < 0.9 * want_rows {
        cx.report.note(format!(
            "steady lag: the writers reached only {:.0} of the {:.0} rows/s asked (the source itself, on the same 2 cores, is the limit), so this lag is measured at a lower rate than half the max",
            median(&achieved),
            want_rows
        ));
    }
    rep.stop().await?;
    drop(target);
    Ok(())
}

const COPY_DB: &str = "copyt";

async fn phase_copy(cx: &mut Ctx) -> Result<MariaDb> {
    let n = cx.sizes.copy_rows;
    println!("\n== initial copy: {n} rows");
    let mut c = cx.source.conn().await?;
    exec(&mut c, "SET SESSION sql_log_bin = 0").await?;
    exec(&mut c, &format!("CREATE DATABASE `{COPY_DB}`")).await?;
    exec(
        &mut c,
        &format!(
            "CREATE TABLE `{COPY_DB}`.`big` (id BIGINT NOT NULL PRIMARY KEY, a INT NOT NULL, b VARCHAR(64) NOT NULL, \
             c DECIMAL(12,2) NOT NULL, d DATETIME NOT NULL, e DOUBLE NOT NULL, f VARCHAR(40) NULL, KEY (a)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
    )
    .await?;
    let t = Instant::now();
    seq_session(cx.flavor, &mut c).await?;
    let mut from = 1u64;
    while from <= n {
        let to = (from + 99_999).min(n);
        exec(
            &mut c,
            &format!(
                "INSERT INTO `{COPY_DB}`.`big` SELECT seq, (seq * 7919) % 1000003, CONCAT('user-', seq, '-', LEFT(SHA2(seq, 256), 16)), \
                 (seq % 100000) / 100, '2020-01-01 00:00:00' + INTERVAL (seq % 100000000) SECOND, seq / 3, \
                 IF(seq % 5 = 0, NULL, CONCAT('note ', seq % 977)) FROM {}",
                seq_rows(cx.flavor, COPY_DB, from, to)
            ),
        )
        .await?;
        from = to + 1;
    }
    exec(&mut c, &format!("ANALYZE TABLE `{COPY_DB}`.`big`")).await?;
    let mb: f64 = q1(&mut c, &format!("SELECT (DATA_LENGTH + INDEX_LENGTH) / 1e6 FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{COPY_DB}' AND TABLE_NAME = 'big'")).await.unwrap_or(0.0);
    println!(
        "  source table filled in {:.1} s ({mb:.0} MB on disk, not binlogged)",
        t.elapsed().as_secs_f64()
    );
    let have_mydumper = have("mydumper") && have("myloader");
    // The flavor's own dump and client: mariadb-dump | mariadb, or MySQL's mysqldump | mysql.
    let dump_tools = match cx.flavor {
        Flavor::MariaDb => (have("mariadb-dump") && have("mariadb")).then(|| {
            (
                "mariadb-dump".to_string(),
                "mariadb".to_string(),
                "--master-data=2 --gtid",
            )
        }),
        Flavor::MySql => cx.source.client_tool().and_then(|mysql| {
            let dump = mysql.with_file_name("mysqldump");
            dump.is_file().then(|| {
                (
                    dump.display().to_string(),
                    mysql.display().to_string(),
                    "--source-data=2 --set-gtid-purged=OFF",
                )
            })
        }),
    };
    let dump_name = match cx.flavor {
        Flavor::MariaDb => "mariadb-dump|mariadb",
        Flavor::MySql => "mysqldump|mysql",
    };
    let have_dump = dump_tools.is_some();
    let (mut ours, mut myd, mut dump) = (Vec::new(), Vec::new(), Vec::new());
    let mut keep = None;
    for run in 0..cx.args.runs {
        let t = cx.server().await?;
        // dropship: a new service (no position) copies, then switches to replicating.
        let cfg = cx.config(
            "copy",
            &t,
            &[&format!("{COPY_DB}.big")],
            &format!("copy{run}"),
        )?;
        let t0 = Instant::now();
        let mut rep = Replicate::spawn(
            &cx.args.dropship,
            &cfg,
            cx.work(format!("copy{run}/replicate.log")),
        )?;
        let mut tc = loop {
            if let Ok(c) = t.conn().await {
                break c;
            }
        };
        loop {
            let st: Option<String> = tc
                .query_first("SELECT state FROM `_dropship`.`service_state` WHERE service = 'copy'")
                .await
                .unwrap_or(None);
            if st.as_deref() == Some("replicating") {
                break;
            }
            rep.check_alive()?;
            if t0.elapsed() > Duration::from_secs(1800) {
                bail!("dropship copy did not finish within 1800 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let el = t0.elapsed().as_secs_f64();
        let got: u64 = q1(&mut tc, &format!("SELECT COUNT(*) FROM `{COPY_DB}`.`big`")).await?;
        if got != n {
            bail!("dropship copied {got} rows, the source has {n}");
        }
        ours.push(el);
        print!("  run {}: dropship {el:.2} s", run + 1);
        if have_mydumper {
            let d = cx.work(format!("mydumper{run}"));
            let p = cx.source.port();
            let a = time_sh(&format!("mydumper -h 127.0.0.1 -P {p} -u root -B {COPY_DB} -t 2 -r 100000 --trx-consistency-only -o '{}'", d.display()))?;
            exec(&mut tc, "CREATE DATABASE `copyt_m`").await?;
            let b = time_sh(&format!(
                "myloader -h 127.0.0.1 -P {} -u root -t 2 -d '{}' -s {COPY_DB} -B copyt_m",
                t.port(),
                d.display()
            ))?;
            let got: u64 = q1(&mut tc, "SELECT COUNT(*) FROM `copyt_m`.`big`")
                .await
                .with_context(|| {
                    format!(
                        "after myloader; dump files: {}",
                        sh_out(&format!("ls '{}'", d.display()))
                    )
                })?;
            if got != n {
                bail!("myloader loaded {got} rows, the source has {n}");
            }
            myd.push(a + b);
            print!(", mydumper {a:.2} s + myloader {b:.2} s");
        }
        if let Some((dumper, client, position)) = &dump_tools {
            exec(&mut tc, "CREATE DATABASE `copyt_d`").await?;
            let a = time_sh(&format!(
                "'{dumper}' --no-defaults -h 127.0.0.1 -P {} -u root --single-transaction --quick {position} {COPY_DB} big | '{client}' --no-defaults -h 127.0.0.1 -P {} -u root copyt_d",
                cx.source.port(),
                t.port()
            ))?;
            let got: u64 = q1(&mut tc, "SELECT COUNT(*) FROM `copyt_d`.`big`").await?;
            if got != n {
                bail!("{dump_name} loaded {got} rows, the source has {n}");
            }
            dump.push(a);
            print!(", {dump_name} {a:.2} s");
        }
        println!();
        rep.stop().await?;
        keep = Some(t);
    }
    let rate = |v: &[f64]| n as f64 / median(v);
    if have_mydumper {
        cx.report.line(
            &format!("initial copy of a {n}-row table ({mb:.0} MB)"),
            format!("{:.0} rows/s; {}", rate(&ours), secs(&ours)),
            format!("mydumper+myloader -t 2: {}", secs(&myd)),
            format!("{:.2}x", median(&myd) / median(&ours)),
            ">= 2x",
        );
    } else {
        cx.report.line(
            &format!("initial copy of a {n}-row table"),
            secs(&ours),
            "mydumper not installed (scripts/install-deps.sh --bench)".into(),
            "n/a".into(),
            ">= 2x",
        );
    }
    if have_dump {
        cx.report.line(
            &format!("initial copy vs {}", dump_name.replace('|', " | ")),
            secs(&ours),
            format!("{dump_name}: {}", secs(&dump)),
            format!("{:.2}x", median(&dump) / median(&ours)),
            "(info)",
        );
    }
    if let Some(t) = &keep {
        let mut tc = t.conn().await?;
        let infile: String = q1(&mut tc, "SELECT CAST(@@GLOBAL.local_infile AS CHAR)").await?;
        cx.report.note(format!(
            "copy: the targets have local_infile={infile} ({}), so dropship wrote its chunks with {}",
            match cx.flavor {
                Flavor::MySql => "MySQL's default",
                Flavor::MariaDb => "MariaDB's default",
            },
            if infile == "1" || infile.eq_ignore_ascii_case("ON") {
                "LOAD DATA LOCAL INFILE"
            } else {
                "REPLACE INTO ... VALUES statements (its path for targets without local_infile)"
            }
        ));
    }
    cx.report.note("copy: dropship = `dropship replicate` on a fresh target with no position: timed from spawn until the service state turns `replicating` (tables created, rows copied, copy end recorded); mydumper `-B copyt -t 2 -r 100000 --trx-consistency-only` (the database holds only that table; mydumper 0.10 dumped nothing with `-T`) then `myloader -t 2` (sum of both); `mariadb-dump --single-transaction --quick --master-data=2 --gtid | mariadb` (MySQL: `mysqldump --single-transaction --quick --source-data=2 --set-gtid-purged=OFF | mysql`); all into a fresh server with the same options as the apply targets (binlog ON)");
    keep.ok_or_else(|| anyhow!("no copy run"))
}

/// Whether `dropship <cmd>` exists in this build (the placeholder says "not available in this build").
fn command_available(dropship: &Path, args: &[&str]) -> bool {
    let out = Command::new(dropship)
        .arg("-c")
        .arg("/nonexistent/dropship.toml")
        .args(args)
        .output();
    match out {
        Ok(o) => !String::from_utf8_lossy(&o.stderr).contains("not available in this build"),
        Err(_) => false,
    }
}

async fn phase_verify(cx: &mut Ctx, target: &MariaDb) -> Result<()> {
    println!("\n== verify");
    let mut c = cx.source.conn().await?;
    let t = Instant::now();
    let _: Vec<Row> = c.query(format!("CHECKSUM TABLE `{COPY_DB}`.`big`")).await?;
    let ck_src = t.elapsed().as_secs_f64();
    let mut tc = target.conn().await?;
    let t = Instant::now();
    let _: Vec<Row> = tc
        .query(format!("CHECKSUM TABLE `{COPY_DB}`.`big`"))
        .await?;
    let ck_tgt = t.elapsed().as_secs_f64();
    let pt_tool = pt_table_checksum();
    let pt_version = pt_tool
        .as_deref()
        .map(|t| sh_out(&format!("'{t}' --version 2>&1")))
        .unwrap_or_default();
    let pt = if let Some(tool) = &pt_tool {
        let cmd = format!(
            "'{tool}' h=127.0.0.1,P={},u=root --databases {COPY_DB} --tables big --chunk-size=10000 --no-check-binlog-format --recursion-method=none --no-check-replication-filters",
            cx.source.port()
        );
        // pt-table-checksum exits non-zero for warnings too (e.g. no replicas found): accept 0..=31 but require its table.
        let t = Instant::now();
        let out = Command::new("sh").arg("-c").arg(&cmd).output()?;
        let el = t.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains(&format!("{COPY_DB}.big")) {
            bail!(
                "pt-table-checksum failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Some(el)
    } else {
        None
    };
    println!(
        "  CHECKSUM TABLE: source {ck_src:.2} s, target {ck_tgt:.2} s; pt-table-checksum: {pt:?}"
    );
    let base = match pt {
        Some(s) => format!("{pt_version} --chunk-size=10000: {s:.2} s (source side only); CHECKSUM TABLE {ck_src:.2} s + {ck_tgt:.2} s"),
        None => format!("pt-table-checksum not installed; CHECKSUM TABLE {ck_src:.2} s + {ck_tgt:.2} s"),
    };
    if command_available(&cx.args.dropship, &["verify", "--service", "x"]) {
        // The contract: `verify --service S` exits 0 when identical. Run it against the last copy run's
        // target while replicate runs (verify compares under live replication).
        let cfg = cx.work(format!("copy{}/dropship.toml", cx.args.runs - 1));
        let mut rep = Replicate::spawn(&cx.args.dropship, &cfg, cx.work("verify-replicate.log"))?;
        let p = source_position(&cx.source).await?;
        wait_position(
            &mut tc,
            &mut rep,
            "copy",
            &p,
            Instant::now(),
            Duration::from_secs(300),
        )
        .await?;
        let t = Instant::now();
        let st = Command::new(&cx.args.dropship)
            .arg("-c")
            .arg(&cfg)
            .args(["verify", "--service", "copy"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        let el = t.elapsed().as_secs_f64();
        rep.stop().await?;
        let ok = st.code() == Some(0);
        let ratio = pt
            .map(|p| format!("{:.2}x", p / el))
            .unwrap_or_else(|| "n/a".into());
        cx.report.line(
            &format!("verify ({}-row table)", cx.sizes.copy_rows),
            format!(
                "{el:.2} s (exit {}{})",
                st.code().map_or("by signal".to_string(), |c| c.to_string()),
                if ok {
                    ", identical"
                } else {
                    ", NOT identical or error"
                }
            ),
            base,
            ratio,
            ">= 2x",
        );
    } else {
        cx.report.line(
            "verify",
            "not available in this build".into(),
            base,
            "n/a".into(),
            ">= 2x",
        );
    }
    Ok(())
}

/// Runs the release binary with `args`; returns (exit code, stdout + stderr).
fn run_dropship(dropship: &Path, cfg: &Path, args: &[&str]) -> Result<(i32, String)> {
    let out = Command::new("timeout")
        .arg("300")
        .arg(dropship)
        .arg("-c")
        .arg(cfg)
        .args(["--log-format", "text"])
        .args(args)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

/// The `freeze: 123.4 ms` line of a cutover/rollback report.
fn freeze_ms(out: &str) -> Option<f64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("freeze: "))
        .and_then(|r| r.trim_end_matches(" ms").trim().parse().ok())
}

/// Adds each `step   12.3 ms  note` line of a cutover/rollback report to `into`.
fn step_times(out: &str, into: &mut std::collections::BTreeMap<String, Vec<f64>>) {
    for l in out.lines() {
        let mut w = l.split_whitespace();
        let (Some(step), Some(ms), Some("ms")) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        if let Ok(v) = ms.parse::<f64>() {
            into.entry(step.to_string()).or_default().push(v);
        }
    }
}

fn step_medians(m: &std::collections::BTreeMap<String, Vec<f64>>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {:.0}", percentile(v, 50.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn distribution(v: &[f64]) -> String {
    format!(
        "p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms (n={})",
        percentile(v, 50.0),
        percentile(v, 90.0),
        percentile(v, 99.0),
        percentile(v, 100.0),
        v.len()
    )
}

/// Cutover and rollback, `cycles` times, with 8 writers at full rate on the
/// source and writes on the target while it is cut over; then every table is
/// compared (0 lost = identical after the writers stop).
async fn phase_cutover(cx: &mut Ctx) -> Result<()> {
    use dropship_sandbox::monolith::{self, LiveWriters, LiveWritersConfig};
    const WHAT: &str = "cutover + rollback freeze, 8 writers at full rate";
    if !command_available(&cx.args.dropship, &["cutover", "--service", "x"]) {
        cx.report.line(
            WHAT,
            "not available in this build".into(),
            "-".into(),
            "-".into(),
            "p99 < 1 s, 0 lost",
        );
        return Ok(());
    }
    let cycles = if cx.args.smoke { 2 } else { 20 };
    println!("\n== cutover: {cycles} cutovers and rollbacks, 8 writers at full rate");
    let mut src = cx.source.conn().await?;
    for stmt in monolith::schema_sql()
        .split(";\n")
        .filter(|s| !s.trim().is_empty())
    {
        exec(&mut src, stmt).await?;
    }
    let users = if cx.args.smoke { 500 } else { 20_000 };
    monolith::seed(&mut src, users, 200, SEED).await?;
    for g in [
        "GRANT INSERT, UPDATE, DELETE ON `shop`.* TO 'repl'@'%'",
        "GRANT ALL PRIVILEGES ON `_dropship`.* TO 'repl'@'%'",
        "SET GLOBAL log_bin_trust_function_creators = 1",
    ] {
        exec(&mut src, g).await?;
    }
    let target = cx.server().await?;
    let cfg = cx.config(
        "accounts",
        &target,
        &["shop.users", "shop.user_sessions"],
        "cutover",
    )?;
    let mut rep = Replicate::spawn(&cx.args.dropship, &cfg, cx.work("cutover-replicate.log"))?;
    let mut tc = target.conn().await?;
    let p = source_position(&cx.source).await?;
    wait_position(
        &mut tc,
        &mut rep,
        "accounts",
        &p,
        Instant::now(),
        Duration::from_secs(600),
    )
    .await?;
    let writers = LiveWriters::start(
        cx.source.pool(),
        LiveWritersConfig {
            writers: 8,
            rate_per_sec: 0.0,
            seed: SEED,
        },
    );
    let (mut fwd, mut back) = (Vec::new(), Vec::new());
    let (mut fwd_steps, mut back_steps) = (Default::default(), Default::default());
    let mut refused = 0;
    let mut target_writes = 0u64;
    for cycle in 0..cycles {
        // Cut over; a refusal (lag above --max-lag under full-rate writers) is retried.
        let mut tries = 0;
        loop {
            let (code, out) = run_dropship(
                &cx.args.dropship,
                &cfg,
                &[
                    "cutover",
                    "--service",
                    "accounts",
                    "--max-lag",
                    "2s",
                    "--max-freeze",
                    "5s",
                    "--switch-cmd",
                    "true",
                ],
            )?;
            if code == 0 {
                let f = freeze_ms(&out).ok_or_else(|| anyhow!("no freeze line in: {out}"))?;
                println!("  cycle {cycle}: cutover freeze {f:.0} ms");
                fwd.push(f);
                step_times(&out, &mut fwd_steps);
                break;
            }
            tries += 1;
            refused += 1;
            if tries > 20 || !out.contains("refused") {
                bail!("cutover {cycle} failed (exit {code}): {out}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // The application now writes to the target.
        for i in 0..50 {
            exec(
                &mut tc,
                &format!(
                    "UPDATE `shop`.`users` SET `balance` = `balance` + 1 WHERE `id` = {}",
                    1 + (cycle * 50 + i) % users
                ),
            )
            .await?;
            target_writes += 1;
        }
        let (code, out) = run_dropship(
            &cx.args.dropship,
            &cfg,
            &["rollback", "--service", "accounts", "--switch-cmd", "true"],
        )?;
        if code != 0 {
            bail!("rollback {cycle} failed (exit {code}): {out}");
        }
        let f = freeze_ms(&out).ok_or_else(|| anyhow!("no freeze line in: {out}"))?;
        println!("  cycle {cycle}: rollback freeze {f:.0} ms");
        back.push(f);
        step_times(&out, &mut back_steps);
        // Let forward replication settle before the next cutover's lag check.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let w = writers.stop().await;
    let p = source_position(&cx.source).await?;
    wait_position(
        &mut tc,
        &mut rep,
        "accounts",
        &p,
        Instant::now(),
        Duration::from_secs(300),
    )
    .await?;
    rep.stop().await?;
    let mut mismatch = Vec::new();
    for t in ["users", "user_sessions"] {
        if let Err(e) =
            dropship_sandbox::compare::assert_tables_identical(&mut src, "shop", &mut tc, "shop", t)
                .await
        {
            mismatch.push(e);
        }
    }
    if !mismatch.is_empty() {
        bail!(
            "after {cycles} cutovers and rollbacks the tables differ: {}",
            mismatch.join("; ")
        );
    }
    let mut all = fwd.clone();
    all.extend_from_slice(&back);
    cx.report.line(
        WHAT,
        format!(
            "cutover {}; rollback {}; 0 lost (tables identical)",
            distribution(&fwd),
            distribution(&back)
        ),
        "-".into(),
        "-".into(),
        "p99 < 1 s, 0 lost",
    );
    cx.report.note(format!(
        "cutover: {cycles} cycles of `dropship cutover --max-lag 2s --switch-cmd true` then 50 single-row updates on the target then `dropship rollback --switch-cmd true`, while 8 writers ran unpaced on the source (LiveWriters: {} transactions acknowledged, {} failed on the freeze); {refused} cutover attempts refused on lag and retried; {target_writes} target writes streamed back; freeze = the tool's own `freeze:` line (cutover: freeze to switch done; rollback: target freeze to source unfreeze, when the switched-back application can write again); every cutover and rollback p99 over both: {:.0} ms",
        w.acknowledged, w.failed, percentile(&all, 99.0)
    ));
    cx.report.note(format!(
        "cutover step medians (ms): {}; rollback step medians (ms): {}",
        step_medians(&fwd_steps),
        step_medians(&back_steps)
    ));
    Ok(())
}

async fn phase_memory(cx: &mut Ctx) -> Result<()> {
    let mib = cx.sizes.huge_mib;
    let row_kib: u64 = if mib >= 64 { 1024 } else { 256 };
    let n_rows = (mib * 1024 / row_kib).max(1);
    println!("\n== memory: one {mib} MiB transaction ({n_rows} rows of {row_kib} KiB)");
    let t = cx.server().await?;
    let mut c = cx.source.conn().await?;
    exec(&mut c, "CREATE DATABASE IF NOT EXISTS `huge`").await?;
    exec(&mut c, "CREATE TABLE `huge`.`blobs` (id INT NOT NULL PRIMARY KEY, payload LONGBLOB NOT NULL) ENGINE=InnoDB").await?;
    let cfg = cx.config("huge", &t, &["huge.blobs"], "huge")?;
    let mut rep = Replicate::spawn(&cx.args.dropship, &cfg, cx.work("huge/replicate.log"))?;
    let mut tc = loop {
        if let Ok(c) = t.conn().await {
            break c;
        }
    };
    let p = source_position(&cx.source).await?;
    wait_position(
        &mut tc,
        &mut rep,
        "huge",
        &p,
        Instant::now(),
        Duration::from_secs(120),
    )
    .await?;
    let (idle_hwm, _) = rep.memory_kib();
    let t0 = Instant::now();
    seq_session(cx.flavor, &mut c).await?;
    exec(
        &mut c,
        &format!(
            "INSERT INTO `huge`.`blobs` SELECT seq, REPEAT(CHAR(65 + seq % 26), {}) FROM {}",
            row_kib * 1024,
            seq_rows(cx.flavor, "huge", 1, n_rows)
        ),
    )
    .await?;
    let wrote = t0.elapsed().as_secs_f64();
    let want = source_position(&cx.source).await?;
    // Watchdog: stop at 8 GiB resident rather than take the machine down.
    let limit_kib = 8u64 << 20;
    let t1 = Instant::now();
    let mut peak = 0u64;
    let mut killed = false;
    loop {
        let (hwm, rss) = rep.memory_kib();
        peak = peak.max(hwm);
        if rss > limit_kib {
            killed = true;
            break;
        }
        if let Some(p) = target_position(&mut tc, "huge").await.unwrap_or(None) {
            if covers(&p, &want) {
                break;
            }
        }
        rep.check_alive()?;
        if t1.elapsed() > Duration::from_secs(1800) {
            bail!("the huge transaction was not applied within 1800 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let applied = t1.elapsed().as_secs_f64();
    let (hwm, _) = rep.memory_kib();
    peak = peak.max(hwm);
    if killed {
        drop(rep);
        cx.report.line(
            &format!("peak RSS replicating one {mib} MiB transaction"),
            format!("> {} MiB (stopped by the watchdog)", limit_kib / 1024),
            "-".into(),
            "-".into(),
            "< 256 MiB",
        );
    } else {
        rep.stop().await?;
        let n: u64 = q1(&mut tc, "SELECT COUNT(*) FROM `huge`.`blobs`").await?;
        if n != n_rows {
            bail!("huge transaction: target has {n} rows, source {n_rows}");
        }
        println!("  source wrote it in {wrote:.1} s; dropship applied it {applied:.1} s later; VmHWM {} MiB (idle {} MiB)", peak / 1024, idle_hwm / 1024);
        cx.report.line(
            &format!(
                "peak RSS replicating one {mib} MiB transaction ({n_rows} rows of {row_kib} KiB)"
            ),
            format!(
                "{} MiB (VmHWM; {} MiB before it)",
                peak / 1024,
                idle_hwm / 1024
            ),
            "-".into(),
            "-".into(),
            "< 256 MiB",
        );
    }
    Ok(())
}

fn sh_out(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn render(cx: &Ctx, total: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Measured by `scripts/bench.sh` (runner: `src/bin/bench`), {} mode, {} run(s) per comparison; each figure is the median, with every run in brackets. Ratios compare tools measured side by side in the same run (the machine is shared and noisy: absolute times vary up to 2.4x between runs, see BASELINES.md). Ratio > 1 means dropship is faster.\n",
        if cx.args.smoke { "SMOKE (tiny sizes: the figures mean nothing)" } else { "full" },
        cx.args.runs
    );
    for (section, about) in &cx.report.sections {
        let _ = writeln!(s, "## {section}\n");
        let lines: Vec<&Line> = cx
            .report
            .lines
            .iter()
            .filter(|l| &l.section == section)
            .collect();
        if lines.is_empty() {
            let _ = writeln!(s, "{about}\n");
            continue;
        }
        let _ = writeln!(s, "Source, replicas and targets: {about}.\n");
        let _ = writeln!(
            s,
            "| what | dropship | baseline | ratio | goal |\n|---|---|---|---|---|"
        );
        for l in lines {
            let cells: Vec<String> = [&l.what, &l.dropship, &l.baseline, &l.ratio, &l.goal]
                .iter()
                .map(|c| c.replace('|', "\\|"))
                .collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        let _ = writeln!(s, "\n### Method ({section})\n");
        for (_, n) in cx.report.notes.iter().filter(|(sec, _)| sec == section) {
            let _ = writeln!(s, "- {n}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Method (all sections)\n");
    let _ = writeln!(s, "- every server is a throwaway dropship-sandbox server with the fast options of BASELINES.md (`innodb_flush_log_at_trx_commit=2`, `sync_binlog=0`, no doublewrite); replicas/targets also `log_slave_updates=ON` (MySQL: `log_replica_updates=ON`), `innodb_buffer_pool_size=512M`; MySQL servers run with `gtid_mode=ON`");
    let _ = writeln!(s, "- dropship is the binary at `{}` (build: `cargo build --release`, profile release with debug=1)", cx.args.dropship.display());
    if !cx.args.extra_config.is_empty() {
        let _ = writeln!(
            s,
            "- extra dropship config for this run: `{}`",
            cx.args
                .extra_config
                .replace("\\n", "; ")
                .replace('\n', "; ")
        );
    }
    let _ = writeln!(s, "\n## Machine\n");
    let _ = writeln!(
        s,
        "- CPU: {} x `{}`",
        sh_out("nproc"),
        sh_out("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'")
    );
    let _ = writeln!(
        s,
        "- memory: {}",
        sh_out("free -g | awk '/^Mem:/ {print $2 \" GiB total, \" $7 \" GiB available\"}'")
    );
    let _ = writeln!(
        s,
        "- kernel: {}; load average at the end: {}",
        sh_out("uname -r"),
        sh_out("cut -d' ' -f1-3 /proc/loadavg")
    );
    for (section, about) in &cx.report.sections {
        let _ = writeln!(s, "- {section}: {about}");
    }
    let _ = writeln!(
        s,
        "- pt-table-checksum: {}",
        pt_table_checksum()
            .map(|t| format!("{} ({t})", sh_out(&format!("'{t}' --version 2>&1"))))
            .unwrap_or_else(|| "not installed".into())
    );
    for (tool, cmd) in [
        ("mydumper", "mydumper --version 2>&1"),
        ("mariadb-binlog", "mariadb-binlog --version 2>&1"),
        ("rustc", "rustc --version 2>&1"),
    ] {
        let v = if have(tool) {
            sh_out(cmd)
        } else {
            "not installed".into()
        };
        let _ = writeln!(s, "- {tool}: {}", v.lines().next().unwrap_or(""));
    }
    let _ = writeln!(
        s,
        "- dropship: {} (git {})",
        sh_out(&format!("'{}' --version", cx.args.dropship.display())),
        sh_out("git rev-parse --short HEAD 2>/dev/null")
    );
    let _ = writeln!(
        s,
        "\nTotal runner time: {total:.0} s.\n\nCommand:\n\n```\n{}\n```",
        if cx.args.command_line.is_empty() {
            "scripts/bench.sh".to_string()
        } else {
            cx.args.command_line.clone()
        }
    );
    s
}
