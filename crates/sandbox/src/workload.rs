//! A random, reproducible replication workload over tables with a column of (nearly) every MariaDB type.
//!
//! [`schema_sql`] creates three tables in a database:
//! - `all_types`: `id BIGINT UNSIGNED` primary key and one column per type in [`ALL_TYPES_COLUMNS`] (integers of
//!   every width signed and unsigned, DECIMAL(65,30), FLOAT, DOUBLE, BIT, CHAR/VARCHAR/TEXT in utf8mb4, utf8mb3,
//!   latin1 and binary, BINARY(8), VARBINARY, BLOB, LONGBLOB, ENUM, SET, DATE, TIME/DATETIME/TIMESTAMP at every
//!   precision 0..6, YEAR, JSON, GEOMETRY, POINT, an `INVISIBLE` column), plus a STORED and a VIRTUAL generated
//!   column. Every column but `id` is nullable.
//! - `composite_pk`: a three-column primary key `(tenant_id, region, seq)`.
//! - `binary_pk`: a `VARBINARY(32)` primary key (keys differing only in case or in trailing zero bytes).
//!
//! [`Workload::run`] executes random multi-statement transactions of INSERT / UPDATE (including primary-key
//! updates and range updates) / DELETE with edge values: zero dates, negative TIME, integer extremes, 4-byte UTF-8,
//! latin1 high bytes, binary values with trailing zero bytes, occasionally large blobs, and optionally one row over
//! 16 MiB (the server needs `max_allowed_packet` above 40 MiB; sandbox servers have 256M).
//!
//! Invariants: the same `seed` on the same starting table contents produces the same statements; the known keys are
//! read from the tables at the start of every run, so runs can follow each other. The session uses
//! `sql_mode='STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'` (zero dates allowed, but a value the generator gets wrong
//! fails loudly instead of being silently truncated) and `time_zone='+00:00'`.
//!
//! Fails with [`Error::Sql`] naming the statement; the open transaction is rolled back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::sql::{charset_literal, hex_literal, ident, qualified};

/// Tables created by [`schema_sql`], in creation order.
pub const TABLES: &[&str] = &["all_types", "composite_pk", "binary_pk"];

/// What kind of value a column takes; drives both the DDL and the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int {
        bits: u32,
        unsigned: bool,
    },
    Decimal65,
    Float,
    Double,
    Bit(u32),
    /// Text in a character set, at most `max` characters (bytes for `binary`).
    Str {
        charset: &'static str,
        max: usize,
    },
    Binary8,
    Varbinary,
    Blob,
    LongBlob,
    Enum,
    Set,
    Date,
    Time(u32),
    DateTime(u32),
    Timestamp(u32),
    Year,
    Json,
    Geometry,
    Point,
}

/// `(name, column definition, kind)` of every writable column of `all_types` after `id`.
pub const ALL_TYPES_COLUMNS: &[(&str, &str, Kind)] = &[
    (
        "c_tinyint",
        "TINYINT",
        Kind::Int {
            bits: 8,
            unsigned: false,
        },
    ),
    (
        "c_tinyint_u",
        "TINYINT UNSIGNED",
        Kind::Int {
            bits: 8,
            unsigned: true,
        },
    ),
    (
        "c_smallint",
        "SMALLINT",
        Kind::Int {
            bits: 16,
            unsigned: false,
        },
    ),
    (
        "c_smallint_u",
        "SMALLINT UNSIGNED",
        Kind::Int {
            bits: 16,
            unsigned: true,
        },
    ),
    (
        "c_mediumint",
        "MEDIUMINT",
        Kind::Int {
            bits: 24,
            unsigned: false,
        },
    ),
    (
        "c_mediumint_u",
        "MEDIUMINT UNSIGNED",
        Kind::Int {
            bits: 24,
            unsigned: true,
        },
    ),
    (
        "c_int",
        "INT",
        Kind::Int {
            bits: 32,
            unsigned: false,
        },
    ),
    (
        "c_int_u",
        "INT UNSIGNED",
        Kind::Int {
            bits: 32,
            unsigned: true,
        },
    ),
    (
        "c_bigint",
        "BIGINT",
        Kind::Int {
            bits: 64,
            unsigned: false,
        },
    ),
    (
        "c_bigint_u",
        "BIGINT UNSIGNED",
        Kind::Int {
            bits: 64,
            unsigned: true,
        },
    ),
    ("c_decimal", "DECIMAL(65,30)", Kind::Decimal65),
    ("c_float", "FLOAT", Kind::Float),
    ("c_double", "DOUBLE", Kind::Double),
    ("c_bit1", "BIT(1)", Kind::Bit(1)),
    ("c_bit64", "BIT(64)", Kind::Bit(64)),
    (
        "c_char_utf8mb4",
        "CHAR(10) CHARACTER SET utf8mb4",
        Kind::Str {
            charset: "utf8mb4",
            max: 10,
        },
    ),
    (
        "c_varchar_utf8mb4",
        "VARCHAR(255) CHARACTER SET utf8mb4",
        Kind::Str {
            charset: "utf8mb4",
            max: 255,
        },
    ),
    (
        "c_text_utf8mb4",
        "TEXT CHARACTER SET utf8mb4",
        Kind::Str {
            charset: "utf8mb4",
            max: 16000,
        },
    ),
    (
        "c_char_utf8mb3",
        "CHAR(10) CHARACTER SET utf8mb3",
        Kind::Str {
            charset: "utf8mb3",
            max: 10,
        },
    ),
    (
        "c_varchar_utf8mb3",
        "VARCHAR(255) CHARACTER SET utf8mb3",
        Kind::Str {
            charset: "utf8mb3",
            max: 255,
        },
    ),
    (
        "c_text_utf8mb3",
        "TEXT CHARACTER SET utf8mb3",
        Kind::Str {
            charset: "utf8mb3",
            max: 20000,
        },
    ),
    (
        "c_char_latin1",
        "CHAR(10) CHARACTER SET latin1",
        Kind::Str {
            charset: "latin1",
            max: 10,
        },
    ),
    (
        "c_varchar_latin1",
        "VARCHAR(255) CHARACTER SET latin1",
        Kind::Str {
            charset: "latin1",
            max: 255,
        },
    ),
    (
        "c_text_latin1",
        "TEXT CHARACTER SET latin1",
        Kind::Str {
            charset: "latin1",
            max: 60000,
        },
    ),
    (
        "c_char_binary",
        "CHAR(10) CHARACTER SET binary",
        Kind::Str {
            charset: "binary",
            max: 10,
        },
    ),
    (
        "c_varchar_binary",
        "VARCHAR(255) CHARACTER SET binary",
        Kind::Str {
            charset: "binary",
            max: 255,
        },
    ),
    (
        "c_text_binary",
        "TEXT CHARACTER SET binary",
        Kind::Str {
            charset: "binary",
            max: 60000,
        },
    ),
    ("c_binary8", "BINARY(8)", Kind::Binary8),
    ("c_varbinary", "VARBINARY(255)", Kind::Varbinary),
    ("c_blob", "BLOB", Kind::Blob),
    ("c_longblob", "LONGBLOB", Kind::LongBlob),
    (
        "c_enum",
        "ENUM('small','medium','large','x-large','ünïcödé')",
        Kind::Enum,
    ),
    ("c_set", "SET('a','b','c','d','é')", Kind::Set),
    ("c_date", "DATE", Kind::Date),
    ("c_time0", "TIME(0)", Kind::Time(0)),
    ("c_time1", "TIME(1)", Kind::Time(1)),
    ("c_time2", "TIME(2)", Kind::Time(2)),
    ("c_time3", "TIME(3)", Kind::Time(3)),
    ("c_time4", "TIME(4)", Kind::Time(4)),
    ("c_time5", "TIME(5)", Kind::Time(5)),
    ("c_time6", "TIME(6)", Kind::Time(6)),
    ("c_datetime0", "DATETIME(0)", Kind::DateTime(0)),
    ("c_datetime1", "DATETIME(1)", Kind::DateTime(1)),
    ("c_datetime2", "DATETIME(2)", Kind::DateTime(2)),
    ("c_datetime3", "DATETIME(3)", Kind::DateTime(3)),
    ("c_datetime4", "DATETIME(4)", Kind::DateTime(4)),
    ("c_datetime5", "DATETIME(5)", Kind::DateTime(5)),
    ("c_datetime6", "DATETIME(6)", Kind::DateTime(6)),
    (
        "c_timestamp0",
        "TIMESTAMP(0) NULL DEFAULT NULL",
        Kind::Timestamp(0),
    ),
    (
        "c_timestamp1",
        "TIMESTAMP(1) NULL DEFAULT NULL",
        Kind::Timestamp(1),
    ),
    (
        "c_timestamp2",
        "TIMESTAMP(2) NULL DEFAULT NULL",
        Kind::Timestamp(2),
    ),
    (
        "c_timestamp3",
        "TIMESTAMP(3) NULL DEFAULT NULL",
        Kind::Timestamp(3),
    ),
    (
        "c_timestamp4",
        "TIMESTAMP(4) NULL DEFAULT NULL",
        Kind::Timestamp(4),
    ),
    (
        "c_timestamp5",
        "TIMESTAMP(5) NULL DEFAULT NULL",
        Kind::Timestamp(5),
    ),
    (
        "c_timestamp6",
        "TIMESTAMP(6) NULL DEFAULT NULL",
        Kind::Timestamp(6),
    ),
    ("c_year", "YEAR", Kind::Year),
    ("c_json", "JSON", Kind::Json),
    ("c_geometry", "GEOMETRY", Kind::Geometry),
    ("c_point", "POINT", Kind::Point),
    (
        "c_invisible",
        "INT INVISIBLE",
        Kind::Int {
            bits: 32,
            unsigned: false,
        },
    ),
];

/// The `CREATE DATABASE` and `CREATE TABLE` statements (`;`-separated) for the workload tables in `db`.
pub fn schema_sql(db: &str) -> String {
    let mut cols = vec!["  `id` BIGINT UNSIGNED NOT NULL".to_string()];
    cols.extend(
        ALL_TYPES_COLUMNS
            .iter()
            .map(|(n, def, _)| format!("  {} {def} NULL", ident(n))),
    );
    cols.push(
        "  `c_gen_stored` BIGINT AS (CAST(`id` AS SIGNED) * 2 + COALESCE(`c_tinyint`, 0)) STORED"
            .into(),
    );
    cols.push("  `c_gen_virtual` VARCHAR(40) AS (CONCAT('v', `id`)) VIRTUAL".into());
    cols.push("  PRIMARY KEY (`id`)".into());
    format!(
        "CREATE DATABASE IF NOT EXISTS {db_q} CHARACTER SET utf8mb4;\n\
         CREATE TABLE {all} (\n{cols}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n\
         CREATE TABLE {comp} (\n  `tenant_id` INT UNSIGNED NOT NULL,\n  `region` CHAR(2) CHARACTER SET ascii NOT NULL,\n  \
         `seq` BIGINT NOT NULL,\n  `payload` VARCHAR(200) CHARACTER SET utf8mb4 NULL,\n  `amount` DECIMAL(14,4) NULL,\n  \
         `updated_at` DATETIME(6) NULL,\n  `note` TEXT NULL,\n  PRIMARY KEY (`tenant_id`, `region`, `seq`)\n) ENGINE=InnoDB;\n\
         CREATE TABLE {bin} (\n  `k` VARBINARY(32) NOT NULL,\n  `v` TEXT CHARACTER SET latin1 NULL,\n  `n` INT NULL,\n  \
         `b` BINARY(4) NULL,\n  PRIMARY KEY (`k`)\n) ENGINE=InnoDB;\n",
        db_q = ident(db),
        all = qualified(db, "all_types"),
        cols = cols.join(",\n"),
        comp = qualified(db, "composite_pk"),
        bin = qualified(db, "binary_pk"),
    )
}

/// Configuration of a workload. Build with [`Workload::new`] and the `with_*` helpers.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Database holding the tables of [`schema_sql`]. Required.
    pub db: String,
    /// Statements per transaction are drawn from `1..=max_statements`. Optional, default 8.
    pub max_statements: usize,
    /// One value in `large_value_one_in` of BLOB/LONGBLOB/TEXT gets a large value (60 KB .. 2 MiB).
    /// Optional, default 200; 0 disables.
    pub large_value_one_in: u32,
    /// The first transaction of a run inserts a row with a 17 MiB LONGBLOB. Optional, default false.
    pub huge_row: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    pub transactions: u64,
    pub statements: u64,
    /// Rows reported as affected by the server (inserted + changed + deleted).
    pub rows_affected: u64,
    /// Transactions rolled back by a deadlock or lock-wait timeout and run again.
    pub retries: u64,
    pub elapsed: Duration,
}

impl WorkloadStats {
    /// Committed transactions per second.
    pub fn transactions_per_sec(&self) -> f64 {
        self.transactions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Keys known to exist, read at the start of a run and kept up to date while generating.
#[derive(Debug, Default)]
struct Keys {
    ids: BTreeSet<u64>,
    next_id: u64,
    composite: BTreeSet<(u32, String, i64)>,
    binary: BTreeSet<Vec<u8>>,
}

impl Workload {
    /// A workload over the tables of [`schema_sql`] in `db`.
    pub fn new(db: &str) -> Self {
        Workload {
            db: db.to_string(),
            max_statements: 8,
            large_value_one_in: 200,
            huge_row: false,
        }
    }

    /// Inserts one row over 16 MiB in the first transaction of each run.
    pub fn with_huge_row(mut self, on: bool) -> Self {
        self.huge_row = on;
        self
    }

    /// Sets the maximum number of statements per transaction.
    pub fn with_max_statements(mut self, n: usize) -> Self {
        self.max_statements = n.max(1);
        self
    }

    /// Runs `n_transactions` random transactions on `conn`, reproducible from `seed`.
    pub async fn run(
        &self,
        conn: &mut Conn,
        n_transactions: u64,
        seed: u64,
    ) -> Result<WorkloadStats> {
        let began = Instant::now();
        let setup =
            "SET SESSION sql_mode='STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', time_zone='+00:00'";
        conn.query_drop(setup)
            .await
            .map_err(|e| Error::sql("preparing the workload session", setup, e))?;
        let mut keys = self.load_keys(conn).await?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut stats = WorkloadStats::default();
        for t in 0..n_transactions {
            let stmts = self.transaction(&mut rng, &mut keys, t == 0 && self.huge_row);
            let mut attempt = 0;
            loop {
                match run_transaction(conn, &stmts).await {
                    Ok(affected) => {
                        stats.rows_affected += affected;
                        stats.statements += stmts.len() as u64;
                        stats.transactions += 1;
                        break;
                    }
                    // An application retries a transaction the server chose
                    // as a deadlock victim or timed out on a lock: InnoDB
                    // row locks between writers, or a reader's brief LOCK
                    // TABLES (dropship's copy takes one to read definitions).
                    Err((s, e)) if retryable(&e) && attempt < MAX_RETRIES => {
                        attempt += 1;
                        stats.retries += 1;
                        let _ = conn.query_drop("ROLLBACK").await;
                        tracing::debug!(transaction = t, attempt, error = %e, statement = %s, "workload transaction retried");
                        tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                    }
                    Err((s, e)) => {
                        let _ = conn.query_drop("ROLLBACK").await;
                        return Err(Error::sql(
                            format!("workload transaction {t} (seed {seed})"),
                            &s,
                            e,
                        ));
                    }
                }
            }
        }
        stats.elapsed = began.elapsed();
        Ok(stats)
    }

    async fn load_keys(&self, conn: &mut Conn) -> Result<Keys> {
        let q = format!("SELECT `id` FROM {}", qualified(&self.db, "all_types"));
        let ids: Vec<u64> = conn
            .query(&q)
            .await
            .map_err(|e| Error::sql("reading workload keys", &q, e))?;
        let q = format!(
            "SELECT `tenant_id`, `region`, `seq` FROM {}",
            qualified(&self.db, "composite_pk")
        );
        let composite: Vec<(u32, String, i64)> = conn
            .query(&q)
            .await
            .map_err(|e| Error::sql("reading workload keys", &q, e))?;
        let q = format!("SELECT `k` FROM {}", qualified(&self.db, "binary_pk"));
        let binary: Vec<Vec<u8>> = conn
            .query(&q)
            .await
            .map_err(|e| Error::sql("reading workload keys", &q, e))?;
        let next_id = ids.iter().max().map_or(1, |m| m + 1);
        Ok(Keys {
            ids: ids.into_iter().collect(),
            next_id,
            composite: composite.into_iter().collect(),
            binary: binary.into_iter().collect(),
        })
    }

    /// The statements of one transaction, updating `keys` as if it committed.
    fn transaction(&self, rng: &mut StdRng, keys: &mut Keys, huge: bool) -> Vec<String> {
        let mut out = Vec::new();
        if huge {
            out.push(self.insert_all_types(rng, keys, Some(17 * 1024 * 1024 + 5)));
        }
        let n = rng.gen_range(1..=self.max_statements);
        for _ in 0..n {
            let table = rng.gen_range(0..10);
            let op = rng.gen_range(0..100);
            let s = match table {
                0..=5 => self.all_types_op(rng, keys, op),
                6..=7 => self.composite_op(rng, keys, op),
                _ => self.binary_op(rng, keys, op),
            };
            out.push(s);
        }
        out
    }

    fn all_types_op(&self, rng: &mut StdRng, keys: &mut Keys, op: u32) -> String {
        let t = qualified(&self.db, "all_types");
        if keys.ids.is_empty() || op < 50 {
            return self.insert_all_types(rng, keys, None);
        }
        let id = pick(rng, &keys.ids);
        match op {
            50..=79 => {
                let n = rng.gen_range(1..=6);
                let sets: Vec<String> = (0..n)
                    .map(|_| {
                        let (name, _, kind) =
                            ALL_TYPES_COLUMNS[rng.gen_range(0..ALL_TYPES_COLUMNS.len())];
                        format!("{} = {}", ident(name), self.value_or_null(rng, kind))
                    })
                    .collect();
                format!("UPDATE {t} SET {} WHERE `id` = {id}", sets.join(", "))
            }
            80..=84 => {
                let new_id = keys.next_id;
                keys.next_id += 1;
                keys.ids.remove(&id);
                keys.ids.insert(new_id);
                format!("UPDATE {t} SET `id` = {new_id} WHERE `id` = {id}")
            }
            85..=89 => {
                let v = self.value_or_null(
                    rng,
                    Kind::Str {
                        charset: "utf8mb4",
                        max: 255,
                    },
                );
                format!("UPDATE {t} SET `c_varchar_utf8mb4` = {v}, `c_smallint` = NULL WHERE `id` BETWEEN {id} AND {}", id + 5)
            }
            90..=94 => {
                let gone: Vec<u64> = keys.ids.range(id..=id + 3).copied().collect();
                for g in gone {
                    keys.ids.remove(&g);
                }
                format!("DELETE FROM {t} WHERE `id` BETWEEN {id} AND {}", id + 3)
            }
            _ => {
                keys.ids.remove(&id);
                format!("DELETE FROM {t} WHERE `id` = {id}")
            }
        }
    }

    fn insert_all_types(
        &self,
        rng: &mut StdRng,
        keys: &mut Keys,
        huge_blob: Option<usize>,
    ) -> String {
        let id = keys.next_id;
        keys.next_id += 1;
        keys.ids.insert(id);
        let mut names = vec!["`id`".to_string()];
        let mut values = vec![id.to_string()];
        for (name, _, kind) in ALL_TYPES_COLUMNS {
            names.push(ident(name));
            let v = match (huge_blob, kind) {
                (Some(len), Kind::LongBlob) => hex_literal(&random_bytes(rng, len)),
                _ => self.value_or_null(rng, *kind),
            };
            values.push(v);
        }
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            qualified(&self.db, "all_types"),
            names.join(", "),
            values.join(", ")
        )
    }

    fn composite_op(&self, rng: &mut StdRng, keys: &mut Keys, op: u32) -> String {
        let t = qualified(&self.db, "composite_pk");
        const REGIONS: &[&str] = &["eu", "us", "ap", "sa"];
        let payload = |rng: &mut StdRng, w: &Workload| {
            w.value_or_null(
                rng,
                Kind::Str {
                    charset: "utf8mb4",
                    max: 200,
                },
            )
        };
        if keys.composite.is_empty() || op < 50 {
            let key = loop {
                let k = (
                    rng.gen_range(1..=20u32),
                    REGIONS[rng.gen_range(0..REGIONS.len())].to_string(),
                    rng.gen_range(-1000..1_000_000i64),
                );
                if !keys.composite.contains(&k) {
                    break k;
                }
            };
            let s = format!(
                "INSERT INTO {t} (`tenant_id`, `region`, `seq`, `payload`, `amount`, `updated_at`, `note`) VALUES ({}, '{}', {}, {}, {}, {}, {})",
                key.0,
                key.1,
                key.2,
                payload(rng, self),
                random_decimal(rng, 10, 4),
                datetime_literal(rng, 6),
                self.value_or_null(rng, Kind::Str { charset: "utf8mb4", max: 2000 }),
            );
            keys.composite.insert(key);
            return s;
        }
        let key = pick(rng, &keys.composite);
        let wh = format!(
            "`tenant_id` = {} AND `region` = '{}' AND `seq` = {}",
            key.0, key.1, key.2
        );
        match op {
            50..=84 => format!(
                "UPDATE {t} SET `payload` = {}, `amount` = {} WHERE {wh}",
                payload(rng, self),
                random_decimal(rng, 10, 4)
            ),
            85..=89 => {
                let new_seq = loop {
                    let s = rng.gen_range(-1000..1_000_000i64);
                    if !keys.composite.contains(&(key.0, key.1.clone(), s)) {
                        break s;
                    }
                };
                keys.composite.remove(&key);
                keys.composite.insert((key.0, key.1.clone(), new_seq));
                format!("UPDATE {t} SET `seq` = {new_seq} WHERE {wh}")
            }
            _ => {
                keys.composite.remove(&key);
                format!("DELETE FROM {t} WHERE {wh}")
            }
        }
    }

    fn binary_op(&self, rng: &mut StdRng, keys: &mut Keys, op: u32) -> String {
        let t = qualified(&self.db, "binary_pk");
        if keys.binary.is_empty() || op < 50 {
            let k = loop {
                let mut k = random_bytes_between(rng, 1, 28);
                match rng.gen_range(0..4) {
                    0 => k.extend_from_slice(&[0, 0]), // trailing zero bytes are significant in VARBINARY
                    1 => k.make_ascii_uppercase(),
                    _ => {}
                }
                if !keys.binary.contains(&k) {
                    break k;
                }
            };
            let s = format!(
                "INSERT INTO {t} (`k`, `v`, `n`, `b`) VALUES ({}, {}, {}, {})",
                hex_literal(&k),
                self.value_or_null(
                    rng,
                    Kind::Str {
                        charset: "latin1",
                        max: 300
                    }
                ),
                self.value_or_null(
                    rng,
                    Kind::Int {
                        bits: 32,
                        unsigned: false
                    }
                ),
                hex_literal(&random_bytes_between(rng, 0, 4)),
            );
            keys.binary.insert(k);
            return s;
        }
        let k = pick(rng, &keys.binary);
        if op < 85 {
            format!(
                "UPDATE {t} SET `v` = {}, `n` = {} WHERE `k` = {}",
                self.value_or_null(
                    rng,
                    Kind::Str {
                        charset: "latin1",
                        max: 300
                    }
                ),
                self.value_or_null(
                    rng,
                    Kind::Int {
                        bits: 32,
                        unsigned: false
                    }
                ),
                hex_literal(&k)
            )
        } else {
            keys.binary.remove(&k);
            format!("DELETE FROM {t} WHERE `k` = {}", hex_literal(&k))
        }
    }

    fn value_or_null(&self, rng: &mut StdRng, kind: Kind) -> String {
        if rng.gen_ratio(1, 12) {
            return "NULL".into();
        }
        self.value(rng, kind)
    }

    /// A random SQL literal for a column of `kind`.
    fn value(&self, rng: &mut StdRng, kind: Kind) -> String {
        let large = self.large_value_one_in > 0 && rng.gen_ratio(1, self.large_value_one_in);
        match kind {
            Kind::Int { bits, unsigned } => random_int(rng, bits, unsigned),
            Kind::Decimal65 => random_decimal(rng, 35, 30),
            Kind::Float => {
                const EDGE: &[f32] = &[
                    0.0,
                    -0.0,
                    1.5,
                    -2.25,
                    f32::MAX,
                    f32::MIN,
                    f32::MIN_POSITIVE,
                    1e-10,
                    16777217.0,
                ];
                let f = if rng.gen_ratio(1, 4) {
                    EDGE[rng.gen_range(0..EDGE.len())]
                } else {
                    random_f32(rng)
                };
                format!("{:e}", f as f64) // the exact double value of the f32 rounds back to it
            }
            Kind::Double => {
                const EDGE: &[f64] = &[
                    0.0,
                    -0.0,
                    0.1,
                    f64::MAX,
                    f64::MIN,
                    f64::MIN_POSITIVE,
                    1e300,
                    -1e-300,
                ];
                let f = if rng.gen_ratio(1, 4) {
                    EDGE[rng.gen_range(0..EDGE.len())]
                } else {
                    random_f64(rng)
                };
                format!("{f:e}")
            }
            Kind::Bit(1) => format!("b'{}'", rng.gen_range(0..2)),
            Kind::Bit(_) => match rng.gen_range(0..4) {
                0 => "0".into(),
                1 => u64::MAX.to_string(),
                _ => rng.gen::<u64>().to_string(),
            },
            Kind::Str { charset, max } => {
                let max = if max > 300 && !large { 300 } else { max };
                random_text(rng, charset, max)
            }
            Kind::Binary8 => {
                let mut b = random_bytes_between(rng, 0, 8);
                if rng.gen_bool(0.5) && !b.is_empty() {
                    let last = b.len() - 1;
                    b[last] = 0;
                }
                hex_literal(&b)
            }
            Kind::Varbinary => {
                let mut b = random_bytes_between(rng, 0, 64);
                if rng.gen_bool(0.3) {
                    b.extend_from_slice(&[0, 0, 0]);
                }
                hex_literal(&b)
            }
            Kind::Blob => hex_literal(&if large {
                random_bytes(rng, 65_535)
            } else {
                random_bytes_between(rng, 0, 300)
            }),
            Kind::LongBlob => hex_literal(&if large {
                random_bytes_between(rng, 100_000, 2 * 1024 * 1024)
            } else {
                random_bytes_between(rng, 0, 300)
            }),
            Kind::Enum => {
                const V: &[&str] = &["small", "medium", "large", "x-large", "ünïcödé"];
                charset_literal("utf8mb4", V[rng.gen_range(0..V.len())].as_bytes())
            }
            Kind::Set => {
                const V: &[&str] = &["a", "b", "c", "d", "é"];
                let chosen: Vec<&str> = V.iter().copied().filter(|_| rng.gen_bool(0.4)).collect();
                charset_literal("utf8mb4", chosen.join(",").as_bytes())
            }
            Kind::Date => match rng.gen_range(0..20) {
                0 => "'0000-00-00'".into(),
                1 => "'2024-02-00'".into(),
                2 => "'1000-01-01'".into(),
                3 => "'9999-12-31'".into(),
                _ => format!(
                    "'{:04}-{:02}-{:02}'",
                    rng.gen_range(1000..=9999),
                    rng.gen_range(1..=12),
                    rng.gen_range(1..=28)
                ),
            },
            Kind::Time(p) => {
                let (neg, h, m, s) = match rng.gen_range(0..10) {
                    0 => (true, 838, 59, 59),
                    1 => (false, 838, 59, 59),
                    2 => (true, 0, 0, 0),
                    _ => (
                        rng.gen_bool(0.4),
                        rng.gen_range(0..=837),
                        rng.gen_range(0..60),
                        rng.gen_range(0..60),
                    ),
                };
                // MySQL's TIME range ends at 838:59:59.000000 (MariaDB's at .999999): no fraction there, so
                // every value is valid on both flavors.
                let frac = if h == 838 {
                    String::new()
                } else {
                    fraction(rng, p)
                };
                let body = format!("{h:02}:{m:02}:{s:02}{frac}");
                if neg && (body.bytes().any(|b| b != b'0' && b != b':' && b != b'.')) {
                    format!("'-{body}'")
                } else {
                    format!("'{body}'")
                }
            }
            Kind::DateTime(p) => match rng.gen_range(0..15) {
                0 => "'0000-00-00 00:00:00'".into(),
                1 => format!("'9999-12-31 23:59:59{}'", fraction(rng, p)),
                _ => datetime_literal(rng, p),
            },
            Kind::Timestamp(p) => match rng.gen_range(0..15) {
                0 => "'0000-00-00 00:00:00'".into(),
                1 => format!("'2038-01-19 03:14:07{}'", fraction(rng, p)),
                2 => format!("'1970-01-01 00:00:01{}'", fraction(rng, p)),
                _ => {
                    let secs = rng.gen_range(1..=2_147_483_647i64);
                    let (y, mo, d, hh, mi, ss) = dropship_mysql::value::civil_from_epoch(secs);
                    format!(
                        "'{y:04}-{mo:02}-{d:02} {hh:02}:{mi:02}:{ss:02}{}'",
                        fraction(rng, p)
                    )
                }
            },
            Kind::Year => match rng.gen_range(0..8) {
                0 => "0".into(),
                1 => "1901".into(),
                2 => "2155".into(),
                _ => rng.gen_range(1901..=2155).to_string(),
            },
            Kind::Json => charset_literal("utf8mb4", random_json(rng, 0).to_string().as_bytes()),
            Kind::Geometry => {
                let wkt = match rng.gen_range(0..3) {
                    0 => format!("POINT({} {})", coord(rng), coord(rng)),
                    1 => format!(
                        "LINESTRING({} {}, {} {}, {} {})",
                        coord(rng),
                        coord(rng),
                        coord(rng),
                        coord(rng),
                        coord(rng),
                        coord(rng)
                    ),
                    _ => "POLYGON((0 0, 10 0, 10 10, 0 10, 0 0), (2 2, 3 2, 3 3, 2 2))".into(),
                };
                let srid = if rng.gen_bool(0.3) { 4326 } else { 0 };
                format!("ST_GeomFromText('{wkt}', {srid})")
            }
            Kind::Point => format!("POINT({}, {})", coord(rng), coord(rng)),
        }
    }
}

fn pick<T: Clone + Ord>(rng: &mut StdRng, set: &BTreeSet<T>) -> T {
    let i = rng.gen_range(0..set.len());
    set.iter()
        .nth(i)
        .cloned()
        .expect("index is below the set's length")
}

fn random_int(rng: &mut StdRng, bits: u32, unsigned: bool) -> String {
    let (min, max): (i128, i128) = if unsigned {
        (0, (1i128 << bits) - 1)
    } else {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    };
    let v = match rng.gen_range(0..10) {
        0 => min,
        1 => max,
        2 => 0,
        3 => {
            if unsigned {
                1
            } else {
                -1
            }
        }
        4 => rng.gen_range(0..100),
        _ => rng.gen_range(min..=max),
    };
    v.to_string()
}

fn random_decimal(rng: &mut StdRng, int_digits: usize, frac_digits: usize) -> String {
    if rng.gen_ratio(1, 10) {
        return format!("-{}.{}", "9".repeat(int_digits), "9".repeat(frac_digits));
    }
    let digits = |rng: &mut StdRng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect()
    };
    let i = rng.gen_range(1..=int_digits);
    let f = rng.gen_range(0..=frac_digits);
    let sign = if rng.gen_bool(0.3) { "-" } else { "" };
    if f == 0 {
        format!("{sign}{}", digits(rng, i))
    } else {
        format!("{sign}{}.{}", digits(rng, i), digits(rng, f))
    }
}

fn random_f32(rng: &mut StdRng) -> f32 {
    loop {
        let f = f32::from_bits(rng.gen());
        if f.is_normal() {
            return f;
        }
    }
}

fn random_f64(rng: &mut StdRng) -> f64 {
    loop {
        let f = f64::from_bits(rng.gen());
        if f.is_normal() {
            return f;
        }
    }
}

fn random_bytes_between(rng: &mut StdRng, min_len: usize, max_len: usize) -> Vec<u8> {
    let len = rng.gen_range(min_len..=max_len);
    random_bytes(rng, len)
}

fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    rng.fill(b.as_mut_slice());
    b
}

/// Random text of at most `max` characters in `charset`, as a hex literal with an introducer.
fn random_text(rng: &mut StdRng, charset: &str, max: usize) -> String {
    let len = if rng.gen_ratio(1, 20) {
        max
    } else {
        rng.gen_range(0..=max.min(40))
    };
    let bytes = match charset {
        "binary" => {
            let mut b = random_bytes(rng, len);
            if rng.gen_bool(0.3) && !b.is_empty() {
                let last = b.len() - 1;
                b[last] = 0;
            }
            b
        }
        "latin1" => (0..len)
            .map(|_| {
                if rng.gen_bool(0.5) {
                    rng.gen_range(0x20..0x7f)
                } else {
                    rng.gen_range(0xA0..=0xFF)
                }
            })
            .collect(),
        _ => {
            const MB3: &[&str] = &[
                "a", "Z", " ", "'", "\\", "\"", "é", "ß", "€", "日", "本", "\u{0}", "\n", "ñ",
            ];
            const MB4: &[&str] = &["😀", "𝄞", "🦀"];
            let mut s = String::new();
            for _ in 0..len {
                let c = if charset == "utf8mb4" && rng.gen_ratio(1, 6) {
                    MB4[rng.gen_range(0..MB4.len())]
                } else {
                    MB3[rng.gen_range(0..MB3.len())]
                };
                s.push_str(c);
            }
            if rng.gen_ratio(1, 10) && len > 0 {
                s.pop();
                s.push(' '); // trailing space
            }
            s.into_bytes()
        }
    };
    charset_literal(charset, &bytes)
}

fn fraction(rng: &mut StdRng, precision: u32) -> String {
    if precision == 0 {
        return String::new();
    }
    let v = rng.gen_range(0..10u64.pow(precision));
    format!(".{v:0width$}", width = precision as usize)
}

fn datetime_literal(rng: &mut StdRng, p: u32) -> String {
    format!(
        "'{:04}-{:02}-{:02} {:02}:{:02}:{:02}{}'",
        rng.gen_range(1000..=9999),
        rng.gen_range(1..=12),
        rng.gen_range(1..=28),
        rng.gen_range(0..24),
        rng.gen_range(0..60),
        rng.gen_range(0..60),
        fraction(rng, p)
    )
}

/// A coordinate valid as latitude and as longitude: MySQL checks SRID 4326 points (latitude first) against
/// [-90, 90].
fn coord(rng: &mut StdRng) -> String {
    format!("{:.6}", rng.gen_range(-90.0..90.0f64))
}

fn random_json(rng: &mut StdRng, depth: u32) -> serde_json::Value {
    use serde_json::Value as J;
    let leaf = depth >= 3 || rng.gen_bool(0.4);
    match rng.gen_range(0..if leaf { 5 } else { 7 }) {
        0 => J::Null,
        1 => J::Bool(rng.gen()),
        2 => J::from(rng.gen::<i64>()),
        3 => J::from(rng.gen_range(-1e6..1e6f64)),
        4 => J::String(
            [
                "plain",
                "quote\"d",
                "back\\slash",
                "ünï 😀",
                "line\nbreak",
                "",
            ][rng.gen_range(0..6)]
            .to_string(),
        ),
        5 => J::Array(
            (0..rng.gen_range(0..4))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        _ => J::Object(
            (0..rng.gen_range(0..4))
                .map(|i| (format!("k{i}"), random_json(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// How many times one transaction is run again after a deadlock or lock-wait timeout.
const MAX_RETRIES: u64 = 10;

/// Runs `stmts` as one transaction; on failure returns the failing statement
/// (the transaction is left for the caller to roll back).
async fn run_transaction(
    conn: &mut Conn,
    stmts: &[String],
) -> std::result::Result<u64, (String, mysql_async::Error)> {
    let mut affected = 0;
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(|e| ("START TRANSACTION".to_string(), e))?;
    for s in stmts {
        conn.query_drop(s).await.map_err(|e| (s.clone(), e))?;
        affected += conn.affected_rows();
    }
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| ("COMMIT".to_string(), e))?;
    Ok(affected)
}

/// ER_LOCK_DEADLOCK (1213) and ER_LOCK_WAIT_TIMEOUT (1205): the server gave
/// up on this transaction, not on its statements.
fn retryable(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == 1213 || s.code == 1205)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_generates_the_same_transactions() {
        let w = Workload::new("db");
        let gen = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut keys = Keys {
                next_id: 1,
                ..Keys::default()
            };
            (0..20)
                .flat_map(|_| w.transaction(&mut rng, &mut keys, false))
                .collect::<Vec<_>>()
        };
        assert_eq!(gen(7), gen(7));
        assert_ne!(gen(7), gen(8));
    }

    #[test]
    fn days_convert_to_calendar_dates() {
        let days = |d: i64| {
            let (y, m, dd, ..) = dropship_mysql::value::civil_from_epoch(d * 86_400);
            (y, m, dd)
        };
        assert_eq!(days(0), (1970, 1, 1));
        assert_eq!(days(24_855), (2038, 1, 19));
        assert_eq!(days(11_016), (2000, 2, 29));
    }

    #[test]
    fn schema_has_a_column_for_every_kind() {
        let s = schema_sql("w");
        for needle in [
            "MEDIUMINT UNSIGNED",
            "DECIMAL(65,30)",
            "BIT(64)",
            "CHARACTER SET utf8mb3",
            "TIME(6)",
            "INVISIBLE",
            "STORED",
            "VIRTUAL",
            "POINT",
            "JSON",
        ] {
            assert!(s.contains(needle), "schema lacks {needle}");
        }
    }
}
