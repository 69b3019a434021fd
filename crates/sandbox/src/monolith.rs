//! The demo's "monolith": database `shop` with `users`, `user_sessions`, `products`, `orders`, `order_items`, and
//! [`LiveWriters`], concurrent writer tasks that keep changing it while replication and cutover run.
//!
//! Service boundaries the demo cuts along: *accounts* = `users` + `user_sessions` (FK `user_sessions.user_id ->
//! users.id`), *orders* = `orders` + `order_items` (FK `order_items.order_id -> orders.id`) + `products`.
//! `orders.user_id` is a cross-service reference without a foreign key. No FK cascades: cascaded changes are not
//! written to a row-based binlog, so writers delete children explicitly.
//!
//! Invariants of the writers: users are never deleted (only marked `deleted`), so sessions always have a parent;
//! each writer deletes only sessions and orders it created itself. A write counts as *acknowledged* only after
//! its `COMMIT` returned OK. A failed write (for example while the source is frozen for cutover) is counted, the
//! last error kept, and the writer carries on after a short pause: writers stop only when told to.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::sql::{charset_literal, hex_literal};

/// Name of the demo database.
pub const DB: &str = "shop";

/// Users and products that [`seed`] must create before [`LiveWriters::start`].
pub const MIN_SEED: u64 = 50;

/// Tables of the demo database, parents before children.
pub const TABLES: &[&str] = &[
    "users",
    "user_sessions",
    "products",
    "orders",
    "order_items",
];

/// `;`-separated DDL creating database `shop` and its tables.
pub fn schema_sql() -> String {
    "CREATE DATABASE IF NOT EXISTS `shop` CHARACTER SET utf8mb4;
CREATE TABLE `shop`.`users` (
  `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `email` VARCHAR(255) NOT NULL,
  `name` VARCHAR(100) NOT NULL,
  `country` CHAR(2) CHARACTER SET ascii NOT NULL,
  `status` ENUM('active','suspended','deleted') NOT NULL DEFAULT 'active',
  `balance` DECIMAL(12,2) NOT NULL DEFAULT 0,
  `created_at` DATETIME(6) NOT NULL,
  `updated_at` TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_email` (`email`)
) ENGINE=InnoDB;
CREATE TABLE `shop`.`user_sessions` (
  `token` BINARY(16) NOT NULL,
  `user_id` BIGINT UNSIGNED NOT NULL,
  `user_agent` VARCHAR(255) NULL,
  `ip` VARBINARY(16) NULL,
  `created_at` DATETIME(6) NOT NULL,
  `expires_at` TIMESTAMP NULL DEFAULT NULL,
  PRIMARY KEY (`token`),
  KEY `ix_user` (`user_id`),
  CONSTRAINT `fk_sessions_user` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`)
) ENGINE=InnoDB;
CREATE TABLE `shop`.`products` (
  `id` INT UNSIGNED NOT NULL AUTO_INCREMENT,
  `sku` VARCHAR(32) CHARACTER SET ascii NOT NULL,
  `title` VARCHAR(200) NOT NULL,
  `price` DECIMAL(10,2) NOT NULL,
  `stock` INT NOT NULL DEFAULT 0,
  `attributes` JSON NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_sku` (`sku`)
) ENGINE=InnoDB;
CREATE TABLE `shop`.`orders` (
  `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `user_id` BIGINT UNSIGNED NOT NULL,
  `status` ENUM('pending','paid','shipped','cancelled') NOT NULL DEFAULT 'pending',
  `total` DECIMAL(12,2) NOT NULL,
  `currency` CHAR(3) CHARACTER SET ascii NOT NULL,
  `placed_at` DATETIME(3) NOT NULL,
  `note` TEXT NULL,
  PRIMARY KEY (`id`),
  KEY `ix_user` (`user_id`)
) ENGINE=InnoDB;
CREATE TABLE `shop`.`order_items` (
  `order_id` BIGINT UNSIGNED NOT NULL,
  `line_no` SMALLINT UNSIGNED NOT NULL,
  `product_id` INT UNSIGNED NOT NULL,
  `quantity` INT NOT NULL,
  `unit_price` DECIMAL(10,2) NOT NULL,
  PRIMARY KEY (`order_id`, `line_no`),
  CONSTRAINT `fk_items_order` FOREIGN KEY (`order_id`) REFERENCES `orders` (`id`)
) ENGINE=InnoDB;
"
    .to_string()
}

/// Inserts `users` users and `products` products (in transactions of up to 500 rows), reproducibly from `seed`.
pub async fn seed(conn: &mut Conn, users: u64, products: u64, seed: u64) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut stmts = Vec::new();
    let mut start = 0;
    while start < users {
        let end = (start + 500).min(users);
        let rows: Vec<String> = (start..end)
            .map(|i| user_row(&mut rng, &format!("seed{seed}-{i}")))
            .collect();
        stmts.push(format!(
            "INSERT INTO `shop`.`users` (`email`, `name`, `country`, `status`, `balance`, `created_at`) VALUES {}",
            rows.join(", ")
        ));
        start = end;
    }
    let mut start = 0;
    while start < products {
        let end = (start + 500).min(products);
        let rows: Vec<String> = (start..end)
            .map(|i| {
                format!(
                    "('SKU-{seed}-{i}', {}, {}.{:02}, {}, {})",
                    charset_literal("utf8mb4", format!("Product {i} – édition ✓").as_bytes()),
                    rng.gen_range(1..500),
                    rng.gen_range(0..100),
                    rng.gen_range(0..1000),
                    charset_literal(
                        "utf8mb4",
                        format!(r#"{{"color":"c{}","tags":["a","b"]}}"#, rng.gen_range(0..9))
                            .as_bytes()
                    ),
                )
            })
            .collect();
        stmts.push(format!(
            "INSERT INTO `shop`.`products` (`sku`, `title`, `price`, `stock`, `attributes`) VALUES {}",
            rows.join(", ")
        ));
        start = end;
    }
    for s in &stmts {
        conn.query_drop(s)
            .await
            .map_err(|e| Error::sql("seeding the shop database", s, e))?;
    }
    Ok(())
}

fn user_row(rng: &mut StdRng, unique: &str) -> String {
    const NAMES: &[&str] = &[
        "Ada",
        "Grace",
        "Linus",
        "Zoë",
        "Søren",
        "Nguyễn",
        "李雷",
        "Renée 🎉",
    ];
    const COUNTRIES: &[&str] = &["US", "DE", "FR", "VN", "CN", "DK", "IN"];
    format!(
        "('{unique}@example.com', {}, '{}', 'active', {}.{:02}, NOW(6))",
        charset_literal("utf8mb4", NAMES[rng.gen_range(0..NAMES.len())].as_bytes()),
        COUNTRIES[rng.gen_range(0..COUNTRIES.len())],
        rng.gen_range(0..10_000),
        rng.gen_range(0..100),
    )
}

/// How [`LiveWriters`] write.
#[derive(Debug, Clone)]
pub struct LiveWritersConfig {
    /// Number of concurrent writer tasks (each with its own connection). Default 4.
    pub writers: usize,
    /// Total target rate in transactions per second across all writers; 0 means as fast as possible. Default 200.
    pub rate_per_sec: f64,
    /// Seed for the random choices (writer `i` uses `seed + i`). Default 1.
    pub seed: u64,
}

impl Default for LiveWritersConfig {
    fn default() -> Self {
        LiveWritersConfig {
            writers: 4,
            rate_per_sec: 200.0,
            seed: 1,
        }
    }
}

/// Counters shared by the writers.
#[derive(Debug, Default)]
struct Counters {
    acknowledged: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// What the writers did, returned by [`LiveWriters::stop`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveWritersReport {
    /// Transactions whose COMMIT returned OK.
    pub acknowledged: u64,
    /// Transactions that failed (and were not retried).
    pub failed: u64,
    /// The most recent failure, if any.
    pub last_error: Option<String>,
}

/// Concurrent writer tasks changing the `shop` database until [`LiveWriters::stop`].
pub struct LiveWriters {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    tasks: Vec<JoinHandle<()>>,
}

impl LiveWriters {
    /// Starts the writers on connections from `pool`. The `shop` schema must exist, seeded with at least
    /// [`MIN_SEED`] users and products (see [`seed`]): writers reference ids `1..=MIN_SEED`.
    pub fn start(pool: Pool, config: LiveWritersConfig) -> LiveWriters {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let writers = config.writers.max(1);
        let pause = if config.rate_per_sec > 0.0 {
            Some(Duration::from_secs_f64(
                writers as f64 / config.rate_per_sec,
            ))
        } else {
            None
        };
        let tasks = (0..writers)
            .map(|i| {
                let w = Writer {
                    pool: pool.clone(),
                    stop: stop.clone(),
                    counters: counters.clone(),
                    rng: StdRng::seed_from_u64(config.seed.wrapping_add(i as u64)),
                    name: format!("w{}-{i}", config.seed),
                    pause,
                    sessions: Vec::new(),
                    orders: Vec::new(),
                    created: 0,
                };
                tokio::spawn(w.run())
            })
            .collect();
        LiveWriters {
            stop,
            counters,
            tasks,
        }
    }

    /// Transactions acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.counters.acknowledged.load(Ordering::Relaxed)
    }

    /// Transactions failed so far.
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }

    /// Signals the writers to stop, waits for their in-flight transactions, and reports.
    pub async fn stop(self) -> LiveWritersReport {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            if let Err(e) = t.await {
                *lock(&self.counters.last_error) = Some(format!("writer task panicked: {e}"));
            }
        }
        LiveWritersReport {
            acknowledged: self.counters.acknowledged.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            last_error: lock(&self.counters.last_error).clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Writer {
    pool: Pool,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    rng: StdRng,
    name: String,
    pause: Option<Duration>,
    /// Session tokens and order ids this writer created and has not deleted.
    sessions: Vec<Vec<u8>>,
    orders: Vec<u64>,
    created: u64,
}

impl Writer {
    async fn run(mut self) {
        let mut conn: Option<Conn> = None;
        let mut next = tokio::time::Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            if let Some(p) = self.pause {
                next += p;
                tokio::time::sleep_until(next).await;
                if self.stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            if conn.is_none() {
                match self.pool.get_conn().await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        self.failure(format!("connecting: {e}")).await;
                        next = tokio::time::Instant::now(); // pace from now, do not burst to catch up
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            let (stmts, effect) = self.next_transaction();
            match run_transaction(c, &stmts).await {
                Ok(last_id) => {
                    self.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                    self.apply(effect, last_id);
                }
                Err(e) => {
                    conn = None; // the connection may be broken; take a fresh one
                    self.failure(e).await;
                    next = tokio::time::Instant::now();
                }
            }
        }
    }

    async fn failure(&mut self, e: String) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        *lock(&self.counters.last_error) = Some(e);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Picks the next transaction and what to remember if it commits.
    fn next_transaction(&mut self) -> (Vec<String>, Effect) {
        let r = &mut self.rng;
        let user = r.gen_range(1..=MIN_SEED); // seeded users are never deleted
        match r.gen_range(0..100) {
            0..=9 => {
                self.created += 1;
                let row = user_row(r, &format!("{}-{}", self.name, self.created));
                (
                    vec![format!(
                        "INSERT INTO `shop`.`users` (`email`, `name`, `country`, `status`, `balance`, `created_at`) VALUES {row}"
                    )],
                    Effect::None,
                )
            }
            10..=29 => {
                let mut token = vec![0u8; 16];
                r.fill(token.as_mut_slice());
                let s = format!(
                    "INSERT INTO `shop`.`user_sessions` (`token`, `user_id`, `user_agent`, `ip`, `created_at`, `expires_at`) \
                     VALUES ({}, {user}, 'Mozilla/5.0 (X11; Linux)', {}, NOW(6), NOW() + INTERVAL 1 DAY)",
                    hex_literal(&token),
                    hex_literal(&[127, 0, 0, r.gen_range(1..255)]),
                );
                (vec![s], Effect::Session(token))
            }
            30..=39 if !self.sessions.is_empty() => {
                let i = r.gen_range(0..self.sessions.len());
                let token = self.sessions.swap_remove(i);
                (vec![format!("DELETE FROM `shop`.`user_sessions` WHERE `token` = {}", hex_literal(&token))], Effect::None)
            }
            40..=64 => {
                let lines = r.gen_range(1..=4);
                let mut stmts = vec![format!(
                    "INSERT INTO `shop`.`orders` (`user_id`, `status`, `total`, `currency`, `placed_at`, `note`) \
                     VALUES ({user}, 'pending', {}.{:02}, 'EUR', NOW(3), {})",
                    r.gen_range(1..2000),
                    r.gen_range(0..100),
                    if r.gen_bool(0.3) { charset_literal("utf8mb4", "leave at the door 🚪".as_bytes()) } else { "NULL".into() },
                )];
                for line in 1..=lines {
                    stmts.push(format!(
                        "INSERT INTO `shop`.`order_items` (`order_id`, `line_no`, `product_id`, `quantity`, `unit_price`) \
                         VALUES (LAST_INSERT_ID(), {line}, {}, {}, {}.{:02})",
                        r.gen_range(1..=MIN_SEED),
                        r.gen_range(1..5),
                        r.gen_range(1..500),
                        r.gen_range(0..100)
                    ));
                }
                // LAST_INSERT_ID() stays the order id: order_items has no AUTO_INCREMENT.
                stmts.push("SELECT LAST_INSERT_ID()".into());
                (stmts, Effect::Order)
            }
            65..=79 if !self.orders.is_empty() => {
                let id = self.orders[r.gen_range(0..self.orders.len())];
                let status = ["paid", "shipped", "cancelled"][r.gen_range(0..3)];
                (vec![format!("UPDATE `shop`.`orders` SET `status` = '{status}' WHERE `id` = {id}")], Effect::None)
            }
            80..=84 if !self.orders.is_empty() => {
                let i = r.gen_range(0..self.orders.len());
                let id = self.orders.swap_remove(i);
                (
                    vec![
                        format!("DELETE FROM `shop`.`order_items` WHERE `order_id` = {id}"),
                        format!("DELETE FROM `shop`.`orders` WHERE `id` = {id}"),
                    ],
                    Effect::None,
                )
            }
            85..=92 => (
                vec![format!(
                    "UPDATE `shop`.`products` SET `stock` = `stock` + {} WHERE `id` = {}",
                    r.gen_range(-3..10),
                    r.gen_range(1..=MIN_SEED)
                )],
                Effect::None,
            ),
            _ => (
                vec![format!(
                    "UPDATE `shop`.`users` SET `balance` = `balance` + {}.{:02} WHERE `id` = {user}",
                    r.gen_range(-5..20),
                    r.gen_range(0..100)
                )],
                Effect::None,
            ),
        }
    }

    fn apply(&mut self, effect: Effect, last_id: Option<u64>) {
        match effect {
            Effect::None => {}
            Effect::Session(token) => self.sessions.push(token),
            Effect::Order => {
                if let Some(id) = last_id {
                    self.orders.push(id);
                }
            }
        }
    }
}

enum Effect {
    None,
    Session(Vec<u8>),
    Order,
}

/// Runs `stmts` in one transaction; a trailing `SELECT` returns one id. Errors are rendered for the report.
async fn run_transaction(
    c: &mut Conn,
    stmts: &[String],
) -> std::result::Result<Option<u64>, String> {
    let mut last = None;
    let fail = |s: &str, e: mysql_async::Error| {
        format!("{e} (statement: {})", crate::error::shorten(s, 200))
    };
    c.query_drop("START TRANSACTION")
        .await
        .map_err(|e| fail("START TRANSACTION", e))?;
    for s in stmts {
        let r = if s.starts_with("SELECT") {
            c.query_first::<u64, _>(s).await.map(|v| last = v)
        } else {
            c.query_drop(s).await
        };
        if let Err(e) = r {
            let _ = c.query_drop("ROLLBACK").await;
            return Err(fail(s, e));
        }
    }
    c.query_drop("COMMIT")
        .await
        .map_err(|e| fail("COMMIT", e))?;
    Ok(last)
}
