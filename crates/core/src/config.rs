//! `dropship.toml`: parsing, `${VAR}` expansion, validation.
//!
//! Rules (PRODUCT.md "Configuration"): unknown keys are errors; a table claimed
//! by two services is an error naming both; every error names the file, the
//! key path and what to write instead. Secrets (passwords in URLs, password
//! files, tokens) never appear in errors or in the `Debug`/`Display` of the
//! resolved config: [`Endpoint`] keeps only a redacted form for display.
//!
//! Every key, with whether it is required:
//! - `[source]` `url` (required), `password_file`, `tls` (`verify-full` |
//!   `required` | `disabled`; default `verify-full`, `disabled` for loopback
//!   hosts), `ca`, `server_id` (default derived from the state dir),
//!   `heartbeat` (default `false`: when `true` dropship writes a heartbeat row
//!   to `_dropship_heartbeat.heartbeat` on the source every second so lag is
//!   exact while the application is idle; needs
//!   `GRANT CREATE, INSERT, UPDATE ON _dropship_heartbeat.* TO <source user>`,
//!   see `heartbeat.rs`).
//! - `[state]` `dir` (default `./dropship-state`), `max_size` (relay log
//!   cap; the reader pauses there).
//! - `[control]` `listen` (default `127.0.0.1:9187`), `token` (required for a
//!   non-loopback `listen`; when the key is absent the environment variable
//!   `DROPSHIP_CONTROL_TOKEN` is used, so the token need not be in the file),
//!   `health_max_lag` (default `30s`).
//! - `[replicate]` `batch_rows` (default 20000), `batch_delay` (default `50ms`),
//!   `max_rows_per_second` (copy throttle, default unlimited), `copy_chunk_rows`
//!   (default 10000), `copy_threads` (default 2: copy workers, each table
//!   split into up to twice as many key ranges), `copy_target_binlog`
//!   (default `false`: the copy's target sessions set `sql_log_bin = 0` when
//!   allowed, unless `max_target_replica_lag` is set; `true` keeps the copied
//!   rows in the target binlog for its replicas and point-in-time recovery),
//!   `give_up_after` (default `30m`:
//!   a service failing with transient errors for that long stops retrying and
//!   needs a resume), `throttle_query` (optional: SQL run on the source every
//!   second; a non-zero first column throttles copy and apply, gh-ost style),
//!   `max_target_replica_lag` (optional: throttles a service while its target's
//!   `SHOW SLAVE STATUS` reports `Seconds_Behind_Master` above it). See
//!   `throttle.rs`.
//! - `[services.NAME]` `target` (required), `tables` (required, `db.table`, `*`
//!   allowed in the table part), `rename_databases`, `password_file`, `tls`, `ca`.

use dropship_mysql::sql::pattern_matches;
use mysql_async::{Opts, OptsBuilder, SslOpts};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration error: `file: key: problem. hint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hint is a field of its own (printed by the caller on its own
        // line), never part of the diagnosis.
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    source: RawEndpoint,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    control: RawControl,
    #[serde(default)]
    replicate: RawReplicate,
    #[serde(default)]
    services: BTreeMap<String, RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    url: String,
    password_file: Option<PathBuf>,
    tls: Option<String>,
    ca: Option<PathBuf>,
    server_id: Option<u32>,
    heartbeat: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    dir: Option<PathBuf>,
    max_size: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawControl {
    listen: Option<String>,
    token: Option<String>,
    health_max_lag: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReplicate {
    batch_rows: Option<usize>,
    batch_delay: Option<String>,
    max_rows_per_second: Option<u64>,
    copy_chunk_rows: Option<usize>,
    copy_threads: Option<usize>,
    copy_target_binlog: Option<bool>,
    give_up_after: Option<String>,
    throttle_query: Option<String>,
    max_target_replica_lag: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    target: String,
    tables: Vec<String>,
    #[serde(default)]
    rename_databases: BTreeMap<String, String>,
    password_file: Option<PathBuf>,
    tls: Option<String>,
    ca: Option<PathBuf>,
}

/// TLS mode for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    VerifyFull,
    Required,
    Disabled,
}

/// A server to connect to. `Debug` and `Display` never show the password.
#[derive(Clone)]
pub struct Endpoint {
    opts: Opts,
    redacted: String,
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    password: Option<String>,
    /// The `ca` file, for TLS verification.
    ca: Option<std::path::PathBuf>,
}

impl Endpoint {
    /// Connection options (carry the password: never log them).
    pub fn opts(&self) -> Opts {
        self.opts.clone()
    }

    /// Options for dropship's own replication connection (see
    /// `dropship_mysql::binlog::client`): the same host, user, password and
    /// TLS mode as [`Endpoint::opts`]. Carries the password: never log it.
    pub fn binlog_client_options(
        &self,
    ) -> Result<dropship_mysql::binlog::client::ClientOptions, String> {
        use dropship_mysql::binlog::client::{ClientOptions, ClientTls};
        let tls = match self.tls {
            Tls::Disabled => ClientTls::Disabled,
            Tls::Required => ClientTls::Required,
            Tls::VerifyFull => {
                let mut ca = Vec::new();
                if let Some(p) = &self.ca {
                    ca.push(
                        std::fs::read(p)
                            .map_err(|e| format!("cannot read the CA file {}: {e}", p.display()))?,
                    );
                }
                ClientTls::VerifyFull { ca }
            }
        };
        Ok(ClientOptions {
            host: self.opts.ip_or_hostname().to_string(),
            port: self.opts.tcp_port(),
            user: self.opts.user().unwrap_or("").to_string(),
            password: self.opts.pass().map(str::to_string),
            tls,
            connect_timeout: std::time::Duration::from_secs(20),
        })
    }

    /// Options with a default database.
    pub fn opts_with_db(&self, db: &str) -> Opts {
        OptsBuilder::from_opts(self.opts.clone())
            .db_name(Some(db))
            .into()
    }

    /// The same endpoint with SQL run on every new connection (reverse
    /// replication sets the freeze bypass this way).
    pub fn with_session_init(&self, statements: Vec<String>) -> Endpoint {
        let mut e = self.clone();
        e.opts = OptsBuilder::from_opts(self.opts.clone())
            .init(statements)
            .into();
        e
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The secret, so callers can scrub it from server error texts.
    pub fn secret(&self) -> Option<&str> {
        self.password.as_deref()
    }

    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.host)
    }

    /// The `ca` file, if one is configured.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// Builds an endpoint from a URL for tests and the demo.
    pub fn from_url(url: &str) -> Result<Endpoint, ConfigError> {
        build_endpoint("(url)", "url", url, None, None, None)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// `db.table` where `table` may contain `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    pub database: String,
    pub table: String,
}

impl TablePattern {
    pub fn matches(&self, database: &str, table: &str) -> bool {
        self.database == database && pattern_matches(&self.table, table)
    }
    pub fn is_pattern(&self) -> bool {
        self.table.contains('*')
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub name: String,
    pub target: Endpoint,
    pub tables: Vec<TablePattern>,
    pub rename_databases: BTreeMap<String, String>,
}

impl ServiceConfig {
    /// Whether this service claims `database.table`.
    pub fn claims(&self, database: &str, table: &str) -> bool {
        self.tables.iter().any(|p| p.matches(database, table))
    }

    /// The target database for a source database.
    pub fn target_database<'a>(&'a self, source_db: &'a str) -> &'a str {
        self.rename_databases
            .get(source_db)
            .map(String::as_str)
            .unwrap_or(source_db)
    }

    /// Source databases this service reads from.
    pub fn source_databases(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tables.iter().map(|t| t.database.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub listen: String,
    pub token: Option<String>,
    pub health_max_lag: Duration,
}

#[derive(Debug, Clone)]
pub struct Tuning {
    pub batch_rows: usize,
    pub batch_delay: Duration,
    pub max_rows_per_second: Option<u64>,
    pub copy_chunk_rows: usize,
    pub copy_threads: usize,
    /// Write the copied rows to the target's binary log (default: not, when
    /// the target user may set `sql_log_bin`; see `copy.rs`).
    pub copy_target_binlog: bool,
    pub give_up_after: Duration,
    /// SQL run on the source every second; non-zero first column = throttled.
    pub throttle_query: Option<String>,
    /// Throttle a service while its target reports more replica lag than this.
    pub max_target_replica_lag: Option<Duration>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            batch_rows: 20_000,
            batch_delay: Duration::from_millis(50),
            max_rows_per_second: None,
            copy_chunk_rows: 10_000,
            copy_threads: 2,
            copy_target_binlog: false,
            give_up_after: Duration::from_secs(30 * 60),
            throttle_query: None,
            max_target_replica_lag: None,
        }
    }
}

/// The remedy for a server certificate that TLS refused, when `message` (a
/// driver or TLS error text) says that is what happened.
pub fn tls_hint(message: &str) -> Option<String> {
    let m = message.to_ascii_lowercase();
    let refused = [
        "certificate",
        "unknownissuer",
        "notvalidforname",
        "tls handshake",
    ]
    .iter()
    .any(|k| m.contains(k));
    refused.then(|| {
        "tls = \"verify-full\" (the default off loopback) checks the server's certificate against the CA and the host name in the url: set ca = \"path/to/ca.pem\" to the CA that signed it (RDS and Aurora: the region's bundle, see README \"TLS\"), connect by a name the certificate holds, or set tls = \"required\" to encrypt without checking".to_string()
    })
}

/// Every endpoint of the config with `tls = "required"`: encrypted, but the
/// server's certificate is not checked. Each is said at WARN when a command
/// starts.
impl Config {
    pub fn unverified_endpoints(&self) -> Vec<String> {
        std::iter::once(("source".to_string(), &self.source))
            .chain(
                self.services
                    .iter()
                    .map(|s| (format!("target of service {}", s.name), &s.target)),
            )
            .filter(|(_, e)| e.tls == Tls::Required)
            .map(|(what, e)| format!("{what} {e}"))
            .collect()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: String,
    pub source: Endpoint,
    pub server_id: u32,
    /// Write a heartbeat row on the source every second (`[source] heartbeat`).
    pub heartbeat: bool,
    pub state_dir: PathBuf,
    /// `[state] max_size`: at this relay log size the reader pauses (lag
    /// grows) until appliers free space. `None`: only the disk's free space
    /// limits it.
    pub state_max_bytes: Option<u64>,
    pub control: ControlConfig,
    pub tuning: Tuning,
    pub services: Vec<ServiceConfig>,
}

impl Config {
    /// Reads and validates `path`, expanding `${VAR}` from the environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
            hint: "pass the path with -c/--config or set DROPSHIP_CONFIG; `dropship demo` needs no config".into(),
        })?;
        Config::parse(&file, &text, &|k| std::env::var(k).ok())
    }

    /// Parses config text. `env` looks up `${VAR}` values.
    pub fn parse(
        file: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw = read_raw(file, text, env)?;
        let source = build_endpoint(
            file,
            "source.url",
            &raw.source.url,
            raw.source.password_file.as_deref(),
            raw.source.tls.as_deref(),
            raw.source.ca.as_deref(),
        )?;
        let state_dir = raw
            .state
            .dir
            .unwrap_or_else(|| PathBuf::from("./dropship-state"));
        let state_max_bytes = match raw.state.max_size.as_deref() {
            None => None,
            Some(v) => {
                let n = parse_size(v).map_err(|m| {
                    config_error(file, "state.max_size", m, "write a size like \"512MiB\" or \"20GB\" (at least 16MiB), or remove the key")
                })?;
                if n < MIN_STATE_MAX {
                    return Err(config_error(file, "state.max_size", format!("\"{v}\" is below the smallest relay log cap, 16MiB"), "write at least \"16MiB\" (a few minutes of the source's binlog is a sensible floor), or remove the key"));
                }
                Some(n)
            }
        };
        let server_id = match raw.source.server_id {
            Some(0) => return Err(config_error(file, "source.server_id", "0 is not a valid replica server id".into(), "write a number from 1 to 4294967295 not used by any other replica, or remove the key")),
            Some(id) => id,
            None => derive_server_id(&state_dir),
        };
        let control = control_config(file, raw.control, env)?;
        let tuning = tuning(file, raw.replicate)?;
        if raw.services.is_empty() {
            return Err(config_error(
                file,
                "services",
                "no service is defined".into(),
                "add a [services.NAME] table with `target` and `tables`",
            ));
        }
        let services = raw
            .services
            .into_iter()
            .map(|(name, s)| service_config(file, name, s))
            .collect::<Result<Vec<_>, _>>()?;
        check_static_overlaps(file, &services)?;
        Ok(Config {
            file: file.to_string(),
            source,
            server_id,
            heartbeat: raw.source.heartbeat.unwrap_or(false),
            state_dir,
            state_max_bytes,
            control,
            tuning,
            services,
        })
    }

    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Checks that `db.table` (a real table found on the source) is claimed
    /// by at most one service; returns that service's index.
    /// The service named `name`, or the one error every command gives for a
    /// name that is not defined.
    pub fn service_named(&self, name: &str) -> Result<&ServiceConfig, ConfigError> {
        self.service(name).ok_or_else(|| ConfigError {
            file: self.file.clone(),
            key: "services".into(),
            message: format!(
                "there is no service named {name:?}; defined: {}",
                self.services
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint: format!(
                "use one of the defined names, or add a [services.{name}] table to {}",
                self.file
            ),
        })
    }

    pub fn owner_of(&self, database: &str, table: &str) -> Result<Option<usize>, ConfigError> {
        let owners: Vec<usize> = self
            .services
            .iter()
            .enumerate()
            .filter(|(_, s)| s.claims(database, table))
            .map(|(i, _)| i)
            .collect();
        match owners.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            [a, b, ..] => Err(ConfigError {
                file: self.file.clone(),
                key: format!("services.{}.tables", self.services[*b].name),
                message: format!(
                    "table {database}.{table} is claimed by two services: \"{}\" and \"{}\"",
                    self.services[*a].name, self.services[*b].name
                ),
                hint: "each table belongs to exactly one service: remove it from one list, or narrow the `*` pattern".into(),
            }),
        }
    }
}

impl ConfigError {
    fn with_line(mut self, text: &str, span: Option<std::ops::Range<usize>>) -> Self {
        if let Some(span) = span {
            let upto = text.as_bytes().get(..span.start).unwrap_or(text.as_bytes());
            let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
            self.key = format!("line {line}");
        }
        self
    }
}

fn check_static_overlaps(file: &str, services: &[ServiceConfig]) -> Result<(), ConfigError> {
    for (i, a) in services.iter().enumerate() {
        for b in services.iter().skip(i + 1) {
            for pa in &a.tables {
                for pb in &b.tables {
                    let clash = pa.database == pb.database
                        && ((!pb.is_pattern() && pattern_matches(&pa.table, &pb.table))
                            || (!pa.is_pattern() && pattern_matches(&pb.table, &pa.table))
                            || (pa.is_pattern() && pb.is_pattern() && pa.table == pb.table));
                    if clash {
                        return Err(ConfigError {
                            file: file.to_string(),
                            key: format!("services.{}.tables", b.name),
                            message: format!("table {pb} is claimed by two services: \"{}\" ({pa}) and \"{}\" ({pb})", a.name, b.name),
                            hint: "each table belongs to exactly one service: remove it from one list, or narrow the `*` pattern".into(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// A config error at `key` of `file`.
fn config_error(file: &str, key: &str, message: String, hint: &str) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        key: key.to_string(),
        message,
        hint: hint.to_string(),
    }
}

/// The text as TOML, `${VAR}` expanded, in the raw shape (unknown keys refused).
fn read_raw(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RawConfig, ConfigError> {
    let mut value: toml::Value = toml::from_str(text).map_err(|e| {
        config_error(
            file,
            "",
            format!("not valid TOML: {}", e.message()),
            "fix the syntax at the line shown; see README \"Configuration\"",
        )
        .with_line(text, e.span())
    })?;
    expand_env(&mut value, "", file, env)?;
    RawConfig::deserialize(value).map_err(|e| {
        let msg = e.message().to_string();
        let hint = if msg.contains("unknown field") {
            "remove or rename the key; the README's \"Configuration\" section lists every key"
        } else if msg.contains("missing field") {
            "add the key; see README \"Configuration\""
        } else {
            "see README \"Configuration\""
        };
        // The expanded value has no positions: the text itself, parsed the
        // same way, says which line (expansion changes strings only).
        let span = toml::from_str::<RawConfig>(text)
            .err()
            .and_then(|e| e.span());
        config_error(file, "", msg, hint).with_line(text, span)
    })
}

/// `[control]`: a listen address off loopback needs a token.
fn control_config(
    file: &str,
    raw: RawControl,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ControlConfig, ConfigError> {
    let listen = raw.listen.unwrap_or_else(|| "127.0.0.1:9187".to_string());
    let token = raw
        .token
        .or_else(|| env("DROPSHIP_CONTROL_TOKEN"))
        .filter(|t| !t.is_empty());
    if !listen_is_loopback(&listen) && token.is_none() {
        return Err(config_error(
            file,
            "control.listen",
            format!("\"{listen}\" is not a loopback address and no control token is set"),
            "set control.token = \"${DROPSHIP_CONTROL_TOKEN}\" or listen on 127.0.0.1",
        ));
    }
    let health_max_lag = parse_duration_key(
        file,
        "control.health_max_lag",
        raw.health_max_lag.as_deref(),
        Duration::from_secs(30),
    )?;
    Ok(ControlConfig {
        listen,
        token,
        health_max_lag,
    })
}

/// `[replicate]`: every key has a default.
fn tuning(file: &str, raw: RawReplicate) -> Result<Tuning, ConfigError> {
    let defaults = Tuning::default();
    Ok(Tuning {
        batch_rows: positive(file, "replicate.batch_rows", raw.batch_rows, defaults.batch_rows)?,
        batch_delay: parse_duration_key(file, "replicate.batch_delay", raw.batch_delay.as_deref(), defaults.batch_delay)?,
        max_rows_per_second: raw.max_rows_per_second.filter(|&n| n > 0),
        copy_chunk_rows: positive(file, "replicate.copy_chunk_rows", raw.copy_chunk_rows, defaults.copy_chunk_rows)?,
        copy_threads: positive(file, "replicate.copy_threads", raw.copy_threads, defaults.copy_threads)?,
        copy_target_binlog: raw.copy_target_binlog.unwrap_or(defaults.copy_target_binlog),
        give_up_after: parse_duration_key(file, "replicate.give_up_after", raw.give_up_after.as_deref(), defaults.give_up_after)?,
        throttle_query: match raw.throttle_query {
            Some(q) if q.trim().is_empty() => return Err(config_error(file, "replicate.throttle_query", "the query is empty".into(), "write a query whose first column is 0 when dropship may run, e.g. \"SELECT COUNT(*) > 50 FROM information_schema.PROCESSLIST WHERE COMMAND <> 'Sleep'\", or remove the key")),
            q => q,
        },
        max_target_replica_lag: match raw.max_target_replica_lag.as_deref() {
            None => None,
            Some(v) => Some(parse_duration_key(file, "replicate.max_target_replica_lag", Some(v), Duration::ZERO)?),
        },
    })
}

/// One `[services.NAME]` table.
fn service_config(file: &str, name: String, s: RawService) -> Result<ServiceConfig, ConfigError> {
    let key = format!("services.{name}");
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(config_error(
            file,
            &key,
            format!("service name \"{name}\" is not allowed"),
            "use letters, digits, '_' or '-', at most 64 characters",
        ));
    }
    let target = build_endpoint(
        file,
        &format!("{key}.target"),
        &s.target,
        s.password_file.as_deref(),
        s.tls.as_deref(),
        s.ca.as_deref(),
    )?;
    if s.tables.is_empty() {
        return Err(config_error(
            file,
            &format!("{key}.tables"),
            "the list is empty".into(),
            "list the service's tables, e.g. tables = [\"shop.users\"]",
        ));
    }
    let tables = s
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| table_pattern(file, &format!("{key}.tables[{i}]"), t))
        .collect::<Result<Vec<_>, _>>()?;
    for (from, to) in &s.rename_databases {
        if to.is_empty() || from.is_empty() {
            return Err(config_error(
                file,
                &format!("{key}.rename_databases"),
                format!("\"{from}\" = \"{to}\" has an empty name"),
                "write { shop = \"users\" }",
            ));
        }
        if from == "_dropship" || to == "_dropship" {
            return Err(config_error(
                file,
                &format!("{key}.rename_databases"),
                "\"_dropship\" is dropship's own metadata database".into(),
                "choose another database name",
            ));
        }
    }
    Ok(ServiceConfig {
        name,
        target,
        tables,
        rename_databases: s.rename_databases,
    })
}

/// `db.table` or `db.prefix*` at `key`.
fn table_pattern(file: &str, key: &str, t: &str) -> Result<TablePattern, ConfigError> {
    let not_db_table = || {
        config_error(
            file,
            key,
            format!("\"{t}\" is not db.table"),
            "write \"shop.users\" or \"shop.order_*\"",
        )
    };
    let (db, table) = t.split_once('.').ok_or_else(not_db_table)?;
    if db.is_empty() || table.is_empty() || table.contains('.') {
        return Err(not_db_table());
    }
    if db.contains('*') {
        return Err(config_error(
            file,
            key,
            format!("\"{t}\": `*` is only allowed in the table part"),
            "name the database, e.g. \"shop.*\"",
        ));
    }
    Ok(TablePattern {
        database: db.to_string(),
        table: table.to_string(),
    })
}

fn positive(file: &str, key: &str, v: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match v {
        None => Ok(default),
        Some(0) => Err(ConfigError {
            file: file.into(),
            key: key.into(),
            message: "0 is not allowed".into(),
            hint: format!("write a positive number, or remove the key for the default {default}"),
        }),
        Some(n) => Ok(n),
    }
}

fn parse_duration_key(
    file: &str,
    key: &str,
    v: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).map_err(|m| ConfigError {
            file: file.into(),
            key: key.into(),
            message: m,
            hint: "write a duration like \"500ms\", \"5s\" or \"2m\"".into(),
        }),
    }
}

/// The smallest `[state] max_size`: a cap must hold a few relay segments.
const MIN_STATE_MAX: u64 = 16 << 20;

/// Parses a byte size: `1048576`, `512KiB`, `64MiB`, `20GiB`, `1TiB`, or the
/// decimal `KB`, `MB`, `GB`, `TB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("\"{s}\" is not a size"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
            "\"{s}\" is not a size (unit {other:?}: use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
        ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("\"{s}\" is too large"))
}

/// Parses `500ms`, `5s`, `2m`, `1h`, `1.5s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "\"{s}\" is not a duration (unit must be ms, s, m or h)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("\"{s}\" is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn expand_env(
    v: &mut toml::Value,
    path: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match v {
        toml::Value::String(s) if s.contains("${") => {
            let is_url = path.ends_with(".url") || path.ends_with(".target");
            *s = expand_str(s, is_url, env).map_err(|var| ConfigError {
                file: file.into(),
                key: path.into(),
                message: format!("environment variable {var} is not set"),
                hint: format!("export {var}=... before running dropship, or use password_file"),
            })?;
        }
        toml::Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                expand_env(x, &format!("{path}[{i}]"), file, env)?;
            }
        }
        toml::Value::Table(t) => {
            for (k, x) in t.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                expand_env(x, &p, file, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(
    s: &str,
    percent_encode: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let var = &after[..end];
        let val = env(var).ok_or_else(|| var.to_string())?;
        if percent_encode {
            for b in val.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        } else {
            out.push_str(&val);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h == "::1" || h.starts_with("127.")
}

fn listen_is_loopback(listen: &str) -> bool {
    let host = match listen.rsplit_once(':') {
        Some((h, _)) => h,
        None => listen,
    };
    is_loopback(host)
}

fn build_endpoint(
    file: &str,
    key: &str,
    url: &str,
    password_file: Option<&Path>,
    tls: Option<&str>,
    ca: Option<&Path>,
) -> Result<Endpoint, ConfigError> {
    let err = |message: String, hint: &str| ConfigError {
        file: file.into(),
        key: key.into(),
        message,
        hint: hint.into(),
    };
    let redacted = redact_url(url);
    if !url.starts_with("mysql://") {
        return Err(err(
            format!("\"{redacted}\" is not a mysql:// URL"),
            "write mysql://USER:${PASSWORD_VAR}@HOST:3306",
        ));
    }
    let opts = Opts::from_url(url).map_err(|e| {
        err(
            format!(
                "\"{redacted}\" is not a valid URL: {}",
                scrub(&e.to_string(), url)
            ),
            "write mysql://USER:${PASSWORD_VAR}@HOST:3306",
        )
    })?;
    let host = opts.ip_or_hostname().to_string();
    let port = opts.tcp_port();
    let mut builder = OptsBuilder::from_opts(opts.clone());
    let mut password = opts.pass().map(str::to_string);
    if let Some(pf) = password_file {
        let p = std::fs::read_to_string(pf).map_err(|e| ConfigError {
            file: file.into(),
            key: key
                .replace(".url", ".password_file")
                .replace(".target", ".password_file"),
            message: format!("cannot read password file {}: {e}", pf.display()),
            hint: "check the path and its permissions".into(),
        })?;
        let p = p.trim_end_matches(['\n', '\r']).to_string();
        builder = builder.pass(Some(p.clone()));
        password = Some(p);
    }
    let tls_mode = match tls {
        None if is_loopback(&host) => Tls::Disabled,
        None | Some("verify-full") => Tls::VerifyFull,
        Some("required") => Tls::Required,
        Some("disabled") => Tls::Disabled,
        Some(other) => {
            return Err(ConfigError {
                file: file.into(),
                key: key.replace(".url", ".tls").replace(".target", ".tls"),
                message: format!("\"{other}\" is not a TLS mode"),
                hint: "write \"verify-full\", \"required\" or \"disabled\"".into(),
            })
        }
    };
    match tls_mode {
        Tls::Disabled => {}
        Tls::VerifyFull | Tls::Required => {
            let mut ssl = SslOpts::default();
            if let Some(ca) = ca {
                ssl = ssl.with_root_certs(vec![ca.to_path_buf().into()]);
            }
            if tls_mode == Tls::Required {
                ssl = ssl
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true);
            }
            builder = builder.ssl_opts(Some(ssl));
        }
    }
    builder = builder
        .prefer_socket(false)
        .stmt_cache_size(Some(0))
        .wait_timeout(Some(28_800));
    Ok(Endpoint {
        opts: builder.into(),
        redacted,
        host,
        port,
        tls: tls_mode,
        password: password.filter(|p| !p.is_empty()),
        ca: ca.map(Path::to_path_buf),
    })
}

/// `mysql://user:secret@host` -> `mysql://user:***@host`.
pub fn redact_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("mysql://") {
        if let Some(at) = rest.rfind('@') {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            return format!("mysql://{masked}@{}", &rest[at + 1..]);
        }
    }
    url.to_string()
}

/// Removes `secret` from a message (server and driver errors may echo URLs).
pub fn scrub(message: &str, secret: &str) -> String {
    if secret.is_empty() {
        return message.to_string();
    }
    message.replace(secret, "***")
}

fn derive_server_id(state_dir: &Path) -> u32 {
    let abs = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let h = crc32fast::hash(format!("{}|{}", host.trim(), abs.display()).as_bytes());
    // Keep clear of small ids that humans assign.
    1_000_000 + (h % 3_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse("dropship.toml", text, &|k| match k {
            "PW" => Some("s3cr@t/x".into()),
            _ => None,
        })
    }

    const GOOD: &str = r#"
[source]
url = "mysql://repl:${PW}@127.0.0.1:3307"
[services.users]
target = "mysql://dropship:${PW}@127.0.0.1:3308"
tables = ["shop.users", "shop.user_sessions"]
rename_databases = { shop = "users" }
[services.orders]
target = "mysql://dropship:x@127.0.0.1:3309"
tables = ["shop.orders", "shop.order_*"]
"#;

    #[test]
    fn a_good_config_parses_and_expands_env_without_showing_the_password() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.services.len(), 2);
        assert_eq!(c.source.opts().pass(), Some("s3cr@t/x"));
        let shown = format!("{:?} {}", c, c.source);
        assert!(!shown.contains("s3cr"), "{shown}");
        let users = c.service("users").unwrap();
        assert_eq!(users.target_database("shop"), "users");
        assert!(c.service("orders").unwrap().claims("shop", "order_items"));
        assert_eq!(c.owner_of("shop", "orders").unwrap(), Some(0));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let e = parse(&GOOD.replace("[services.orders]", "[services.orders]\ntabels = []"))
            .unwrap_err();
        assert!(e.to_string().contains("tabels"), "{e}");
    }

    #[test]
    fn malformed_toml_names_the_line() {
        let e = parse("[source\nurl=1").unwrap_err();
        assert!(e.to_string().contains("dropship.toml: line 1"), "{e}");
    }

    #[test]
    fn a_table_claimed_by_two_services_names_both() {
        let e = parse(&GOOD.replace("\"shop.orders\", \"shop.order_*\"", "\"shop.users\""))
            .unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("users") && s.contains("orders") && s.contains("two services"),
            "{s}"
        );
        let e = parse(&GOOD.replace(
            "\"shop.users\", \"shop.user_sessions\"",
            "\"shop.order_items\"",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("order_items"), "{e}");
    }

    #[test]
    fn a_missing_variable_names_the_key_and_the_variable() {
        let e = parse(&GOOD.replace("${PW}@127.0.0.1:3307", "${NOPE}@127.0.0.1:3307")).unwrap_err();
        assert_eq!(e.key, "source.url");
        assert!(e.message.contains("NOPE"));
    }

    #[test]
    fn bad_table_names_and_durations_get_hints() {
        let e = parse(&GOOD.replace("\"shop.users\",", "\"users\",")).unwrap_err();
        assert_eq!(e.key, "services.users.tables[0]");
        assert!(e.hint.contains("shop.users"));
        assert!(parse_duration("500ms").unwrap() == Duration::from_millis(500));
        assert!(parse_duration("2m").unwrap() == Duration::from_secs(120));
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2 GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12 parsecs").unwrap_err().contains("parsecs"));
        assert!(parse_size("99999999999TiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn non_loopback_control_needs_a_token() {
        let e = parse(&format!("{GOOD}\n[control]\nlisten = \"0.0.0.0:9187\"\n")).unwrap_err();
        assert_eq!(e.key, "control.listen");
    }

    #[test]
    fn the_control_token_comes_from_the_environment_when_the_file_has_none() {
        let text = format!("{GOOD}\n[control]\nlisten = \"0.0.0.0:9187\"\n");
        let c = Config::parse("dropship.toml", &text, &|k| match k {
            "PW" => Some("pw".into()),
            "DROPSHIP_CONTROL_TOKEN" => Some("tok-from-env".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.control.token.as_deref(), Some("tok-from-env"));
        // An explicit key wins over the environment.
        let c = Config::parse(
            "dropship.toml",
            &format!("{text}token = \"in-file\"\n"),
            &|k| match k {
                "PW" => Some("pw".into()),
                "DROPSHIP_CONTROL_TOKEN" => Some("tok-from-env".into()),
                _ => None,
            },
        )
        .unwrap();
        assert_eq!(c.control.token.as_deref(), Some("in-file"));
        // Loopback without a token is fine; an empty env token is no token.
        let e = Config::parse("dropship.toml", &text, &|k| match k {
            "PW" => Some("pw".into()),
            "DROPSHIP_CONTROL_TOKEN" => Some(String::new()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(e.key, "control.listen");
    }

    #[test]
    fn heartbeat_and_throttle_keys_parse_and_default_off() {
        let c = parse(GOOD).unwrap();
        assert!(!c.heartbeat);
        assert!(c.tuning.throttle_query.is_none() && c.tuning.max_target_replica_lag.is_none());
        let text = GOOD.replace("url = \"mysql://repl:${PW}@127.0.0.1:3307\"", "url = \"mysql://repl:${PW}@127.0.0.1:3307\"\nheartbeat = true")
            + "[replicate]\nthrottle_query = \"SELECT 0\"\nmax_target_replica_lag = \"30s\"\ngive_up_after = \"3s\"\n";
        let c = parse(&text).unwrap();
        assert!(c.heartbeat);
        assert_eq!(c.tuning.throttle_query.as_deref(), Some("SELECT 0"));
        assert_eq!(
            c.tuning.max_target_replica_lag,
            Some(Duration::from_secs(30))
        );
        assert_eq!(c.tuning.give_up_after, Duration::from_secs(3));
        let e = parse(&text.replace("\"30s\"", "\"soon\"")).unwrap_err();
        assert_eq!(e.key, "replicate.max_target_replica_lag");
        let e = parse(&text.replace("\"SELECT 0\"", "\" \"")).unwrap_err();
        assert_eq!(e.key, "replicate.throttle_query");
    }

    #[test]
    fn copy_target_binlog_defaults_off_and_is_implied_by_replica_lag() {
        let c = parse(GOOD).unwrap();
        assert!(!c.tuning.copy_target_binlog);
        assert!(crate::copy::skip_target_binlog(&c));
        let c = parse(&(GOOD.to_string() + "[replicate]\ncopy_target_binlog = true\n")).unwrap();
        assert!(c.tuning.copy_target_binlog && !crate::copy::skip_target_binlog(&c));
        let c =
            parse(&(GOOD.to_string() + "[replicate]\nmax_target_replica_lag = \"5s\"\n")).unwrap();
        assert!(!crate::copy::skip_target_binlog(&c));
        assert!(
            parse(&(GOOD.to_string() + "[replicate]\ncopy_target_binlog = \"yes\"\n")).is_err()
        );
    }

    #[test]
    fn remote_hosts_default_to_verified_tls() {
        let c = parse(&GOOD.replace("127.0.0.1:3307", "db.example.com:3306")).unwrap();
        assert_eq!(c.source.tls, Tls::VerifyFull);
        assert_eq!(c.services[0].target.tls, Tls::Disabled);
    }

    /// A fragment a user might mistype or paste into the file.
    fn fragment() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::sample::select(vec![
                "=",
                "\"",
                "'",
                "[",
                "]",
                "{",
                "}",
                ",",
                "\n",
                "#",
                "${",
                "${PW}",
                "${NOPE}",
                "[services.x]",
                "[source]",
                "tables = []",
                "target = 1",
                "url = \"\"",
                "-1",
                "99999999999999999999",
                "1e400",
                "tls = \"maybe\"",
                "copy_threads = 0",
                "\u{0}",
                "é",
                "𝄞",
                "\\",
                "max_lag = \"-5s\"",
                "listen = \"0.0.0.0:1\"",
                "rename_databases = { shop = 3 }",
            ])
            .prop_map(String::from),
            "[ -~]{0,12}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Random edits of a good config (deleted spans, pasted fragments) never make the parser panic, and every
        /// error names the file and either the key or the line, with a message.
        #[test]
        fn a_damaged_config_gives_an_error_naming_the_key_or_line_never_a_panic(
            edits in proptest::collection::vec((0.0f64..1.0, 0usize..6, fragment()), 1..5),
        ) {
            let mut text = GOOD.to_string();
            for (at, del, frag) in edits {
                let mut i = ((text.len() as f64) * at) as usize;
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                let mut j = (i + del).min(text.len());
                while !text.is_char_boundary(j) {
                    j += 1;
                }
                text.replace_range(i..j, &frag);
            }
            if let Err(e) = parse(&text) {
                proptest::prop_assert!(!e.message.is_empty(), "empty message for {:?}", text);
                proptest::prop_assert!(!e.key.is_empty(), "no key or line in {:?} for {:?}", e.to_string(), text);
                proptest::prop_assert!(e.to_string().starts_with("dropship.toml: "), "{}", e);
            }
        }
    }
}
