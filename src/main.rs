//! `dropship`: parse the command line, then dispatch. Each command is one call
//! into `dropship-core`; this file only wires and turns errors into exit codes.

mod demo;

use clap::{Parser, Subcommand, ValueEnum};
use dropship_core::config::Config;
use dropship_core::control::{self, Control};
use dropship_core::{check, control::status, cutover, run::replicate};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "dropship",
    version,
    about = "Move a monolith's MySQL tables into per-service databases, one service at a time"
)]
struct Cli {
    /// Config file.
    #[arg(
        short,
        long,
        global = true,
        env = "DROPSHIP_CONFIG",
        default_value = "dropship.toml"
    )]
    config: PathBuf,
    /// Log format (default: text on a terminal, JSON otherwise).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Less logging (warnings and errors only).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Preflight of source, targets and mapping.
    Check,
    /// Copy, then stream changes to every service's target (long-running).
    Replicate {
        #[arg(long = "service")]
        services: Vec<String>,
        /// Empty existing non-empty target tables of services that have no position yet.
        #[arg(long)]
        truncate_existing: bool,
        /// Copy this service again from scratch (repeatable): drop its target tables and forget its position and
        /// progress first. For a service whose binlog position the source purged.
        #[arg(long = "recopy", value_name = "SERVICE")]
        recopy: Vec<String>,
    },
    /// State, lag and positions of each service.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Compare source and target rows while replication runs.
    Verify {
        #[arg(long)]
        service: String,
        #[arg(long = "table")]
        tables: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write-freeze cutover of one service.
    Cutover {
        #[arg(long)]
        service: String,
        #[arg(long)]
        max_lag: Option<String>,
        #[arg(long)]
        max_freeze: Option<String>,
        #[arg(long)]
        switch_cmd: Option<String>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, conflicts_with = "abort")]
        resume: bool,
        #[arg(long)]
        abort: bool,
    },
    /// Send a cut-over service back to the source.
    Rollback {
        #[arg(long)]
        service: String,
        #[arg(long)]
        switch_cmd: Option<String>,
    },
    /// Drive AWS DMS tasks from the same service map.
    Dms {
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Run the whole job on throwaway local servers: MySQL 9.7 when installed (the main case), else MariaDB.
    Demo {
        /// `mysql` or `mariadb` (default: mysql when scripts/install-mysql.sh installed it).
        #[arg(long)]
        flavor: Option<String>,
    },
    /// Binlog tools.
    Binlog {
        #[command(subcommand)]
        command: BinlogCommand,
    },
}

#[derive(Subcommand)]
enum BinlogCommand {
    /// Decode binlog files offline and print their events as JSON lines.
    Inspect { files: Vec<PathBuf> },
}

/// stderr for log lines; clears the copy progress lines first when they are
/// shown (see `dropship_core::run::progress`), so a log line takes their place.
fn log_writer() -> std::io::Stderr {
    use std::io::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let mut err = std::io::stderr();
    if dropship_core::run::progress::ACTIVE.load(Relaxed) {
        let _ = err.write_all(dropship_core::run::progress::CLEAR.as_bytes());
    }
    err
}

/// Logging: text on a terminal, JSON lines otherwise (`--log-format`
/// overrides). In both, structured fields come before the message: text
/// lines read `TIME LEVEL key=value ... message`, JSON objects carry the
/// fields flattened at the top level. Levels: WARN means nothing was lost
/// (a retry, a reconnect); ERROR means a human must act. Secrets never reach
/// a log line: endpoints display redacted and error texts are scrubbed.
fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let level = if cli.quiet {
        "warn"
    } else {
        match cli.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = EnvFilter::try_from_env("DROPSHIP_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},mysql_async=warn,refinery_core=warn")));
    let json = match cli.log_format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(log_writer)
        .with_target(false);
    if json {
        b.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init();
    } else {
        b.event_format(FieldsFirst).init();
    }
}

/// Text log lines with the fields before the message:
/// `2026-01-02T03:04:05.678Z  WARN service=users retry_in_ms=400 transient error; retrying`.
struct FieldsFirst;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for FieldsFirst
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::time::FormatTime;
        tracing_subscriber::fmt::time::SystemTime.format_time(&mut w)?;
        write!(w, " {:>5} ", event.metadata().level())?;
        let mut v = FieldsFirstVisitor::default();
        event.record(&mut v);
        w.write_str(&v.fields)?;
        writeln!(w, "{}", v.message)
    }
}

#[derive(Default)]
struct FieldsFirstVisitor {
    fields: String,
    message: String,
}

impl FieldsFirstVisitor {
    fn push(&mut self, name: &str, value: String) {
        if name == "message" {
            self.message = value;
            return;
        }
        let quote =
            value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '"' || c == '=');
        if quote {
            self.fields.push_str(&format!("{name}={value:?} "));
        } else {
            self.fields.push_str(&format!("{name}={value} "));
        }
    }
}

impl tracing::field::Visit for FieldsFirstVisitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.push(field.name(), value.to_string());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.push(field.name(), format!("{value:?}"));
    }
}

fn main() -> ExitCode {
    // One rustls CryptoProvider for the whole process (see README: mixing
    // ring and aws-lc-rs panics at the first TLS connection otherwise).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_logging(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(dispatch(cli))
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    let cfg = Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        if !e.hint.is_empty() {
            eprintln!("  hint: {}", e.hint);
        }
        ExitCode::from(2)
    })?;
    for e in cfg.unverified_endpoints() {
        tracing::warn!(endpoint = %e, "tls = \"required\": the connection is encrypted but the server's certificate is not verified, so anyone on the path can pose as the server; set tls = \"verify-full\" with ca = \"path/to/ca.pem\"");
    }
    Ok(cfg)
}

fn report(e: &dropship_core::Error) {
    eprintln!("error: {e}");
    if let Some(h) = e.hint() {
        eprintln!("  hint: {h}");
    }
}

async fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check => {
            let cfg = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let lines = check::run(&cfg).await;
            let mut failed = false;
            for l in &lines {
                println!("{l}");
                failed |= l.status == check::Status::Fail;
            }
            if failed {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Replicate {
            services,
            truncate_existing,
            recopy,
        } => {
            let cfg = match load_config(&cli.config) {
                Ok(c) => Arc::new(c),
                Err(code) => return code,
            };
            match run_replicate(
                cfg,
                replicate::Options {
                    services,
                    truncate_existing,
                    recopy,
                    mirrored: false,
                },
            )
            .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    report(&e);
                    if matches!(
                        e,
                        dropship_core::Error::Config(_) | dropship_core::Error::Preflight(_)
                    ) {
                        ExitCode::from(2)
                    } else {
                        ExitCode::from(3)
                    }
                }
            }
        }
        Command::Status { json } => {
            let cfg = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let r = status::gather(&cfg).await;
            if json {
                let v = serde_json::json!({
                    "replicate_running": r.running,
                    "control_endpoint": cfg.control.listen,
                    "unreachable": r.unreachable,
                    "services": r.services,
                    "reverse_replication": r.reverse,
                });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                if r.running {
                    println!(
                        "replicate is running (control endpoint {})",
                        cfg.control.listen
                    );
                } else {
                    println!("replicate is NOT running (control endpoint {} does not answer); showing what the targets recorded", cfg.control.listen);
                }
                println!(
                    "{:<16} {:<12} {:>8} {:>12} {:>12}  applied position",
                    "service", "state", "lag", "rows copied", "rows applied"
                );
                for s in &r.services {
                    let lag = s
                        .lag_seconds
                        .map(|l| format!("{l}s"))
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{:<16} {:<12} {:>8} {:>12} {:>12}  {}",
                        s.service, s.state, lag, s.rows_copied, s.rows_applied, s.applied_position
                    );
                    if !s.throttled.is_empty() {
                        println!("  throttled: {}", s.throttled);
                    }
                    if !s.last_error.is_empty() {
                        println!("  last error: {}", s.last_error);
                    }
                    if let Some(rv) = r.reverse.iter().find(|x| x.service == s.service) {
                        if rv.applied_position.is_empty() {
                            println!("  reverse replication: none for this cutover (a rollback copies the tables back in full)");
                        } else {
                            println!(
                                "  reverse replication: the source has the target's writes up to {} (target at {}{})",
                                rv.applied_position,
                                if rv.target_position.is_empty() { "?" } else { &rv.target_position },
                                if rv.caught_up { ", caught up" } else { ", behind" }
                            );
                        }
                    }
                }
                if let Some(p) = r
                    .services
                    .iter()
                    .map(|s| s.source_position.as_str())
                    .find(|p| !p.is_empty())
                {
                    println!("source position: {p}");
                }
                for u in &r.unreachable {
                    eprintln!(
                        "error: cannot reach {}",
                        if u == "source" {
                            "the source".to_string()
                        } else {
                            format!("the target of service {u}")
                        }
                    );
                }
            }
            if r.unreachable.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Command::Verify {
            service,
            tables,
            json,
        } => {
            let cfg = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let mut opts = dropship_core::verify::Options::new(&cfg, &service);
            opts.tables = tables;
            opts.progress = std::io::stderr().is_terminal();
            match dropship_core::verify::run(&cfg, &opts).await {
                Ok(r) => {
                    if json {
                        println!("{}", r.to_json());
                    } else {
                        print!("{}", r.to_text());
                    }
                    ExitCode::from(dropship_core::verify::exit_code(&r))
                }
                Err(e) => {
                    report(&e);
                    ExitCode::from(2)
                }
            }
        }
        Command::Cutover {
            service,
            max_lag,
            max_freeze,
            switch_cmd,
            dry_run,
            resume,
            abort,
        } => {
            let cfg = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let mut opts = cutover::CutoverOptions::new(&service);
            for (flag, value, slot) in [
                ("--max-lag", &max_lag, &mut opts.max_lag),
                ("--max-freeze", &max_freeze, &mut opts.max_freeze),
            ] {
                if let Some(v) = value {
                    match dropship_core::config::parse_duration(v) {
                        Ok(d) => *slot = d,
                        Err(e) => {
                            eprintln!("error: {flag} {v:?}: {e}");
                            return ExitCode::from(2);
                        }
                    }
                }
            }
            opts.switch_cmd = switch_cmd;
            opts.dry_run = dry_run;
            opts.mode = if resume {
                cutover::Mode::Resume
            } else if abort {
                cutover::Mode::Abort
            } else {
                cutover::Mode::Start
            };
            cutover_exit(cutover::run(&cfg, opts).await)
        }
        Command::Rollback {
            service,
            switch_cmd,
        } => {
            let cfg = match load_config(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let mut opts = cutover::RollbackOptions::new(&service);
            opts.switch_cmd = switch_cmd;
            cutover_exit(cutover::rollback(&cfg, opts).await)
        }
        Command::Dms { .. } => {
            eprintln!("error: this command is not available in this build yet; see the README's \"Status of the commands\"");
            ExitCode::from(2)
        }
        Command::Demo { flavor } => match demo::run(flavor.as_deref()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Binlog {
            command: BinlogCommand::Inspect { files },
        } => inspect(files),
    }
}

/// Prints a cutover/rollback report; exit 0 done, 1 refused or aborted, 2 error.
fn cutover_exit(r: Result<cutover::CutoverReport, dropship_core::Error>) -> ExitCode {
    match r {
        Ok(rep) => {
            print!("{}", rep.render());
            ExitCode::from(rep.exit_code())
        }
        Err(e) => {
            report(&e);
            ExitCode::from(2)
        }
    }
}

/// Runs replicate with the control endpoint and signal handling.
pub async fn run_replicate(
    cfg: Arc<Config>,
    opts: replicate::Options,
) -> Result<(), dropship_core::Error> {
    let control = Arc::new(Control::new(
        cfg.control.token.clone(),
        cfg.control.health_max_lag,
    ));
    // SIGTERM is caught from here on (before the control endpoint listens,
    // so a client that reached the endpoint can stop replicate cleanly).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    control::start(control.clone(), &cfg.control.listen)
        .await
        .map_err(|e| {
            dropship_core::Error::Config(dropship_core::config::ConfigError {
                file: cfg.file.clone(),
                key: "control.listen".into(),
                message: format!("cannot listen on {}: {e}", cfg.control.listen),
                hint: "choose a free address:port for control.listen (\"127.0.0.1:0\" picks one), or stop the process that holds it".into(),
            })
        })?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        tracing::info!("stop requested: finishing the batch in flight and recording positions");
        let _ = tx.send(true);
    });
    replicate::run(cfg, opts, control, rx).await
}

fn inspect(files: Vec<PathBuf>) -> ExitCode {
    if files.is_empty() {
        eprintln!("error: name at least one binlog file: dropship binlog inspect FILE...");
        return ExitCode::from(2);
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let result = dropship_mysql::binlog::inspect::inspect(&files, &mut out);
    if let Err(e) = std::io::Write::flush(&mut out) {
        eprintln!("error: writing to standard output: {e}");
        return ExitCode::from(2);
    }
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: inspecting binlog files: {e}");
            if let Some(h) = e.hint() {
                eprintln!("  hint: {h}");
            }
            ExitCode::from(2)
        }
    }
}
