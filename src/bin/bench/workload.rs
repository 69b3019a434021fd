//! The benchmark workload: single-row INSERT/UPDATE/DELETE statements over
//! four tables of mixed types, grouped in transactions of ten.
//!
//! Deterministic: the same seed gives the same statements, byte for byte
//! (a splitmix64 generator, no external RNG whose stream could change). Every
//! UPDATE and DELETE names a row that exists at that point, so each statement
//! changes exactly one row and the binlog holds exactly `10 * transactions`
//! row changes.
//!
//! Failure: generation cannot fail; running it returns the server's error.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

pub const DB: &str = "bench";
pub const TABLES: &[&str] = &["t_int", "t_comp", "t_bin", "t_misc"];
pub const OPS_PER_TX: usize = 10;

/// Schema of the workload tables plus `lag_probe` (used by the lag phase).
pub fn schema_sql() -> Vec<String> {
    vec![
        format!("CREATE DATABASE IF NOT EXISTS `{DB}`"),
        format!(
            "CREATE TABLE `{DB}`.`t_int` (id BIGINT NOT NULL PRIMARY KEY, a INT NOT NULL, b VARCHAR(64) NOT NULL, \
             c DECIMAL(14,4) NULL, d DATETIME(6) NOT NULL, e DOUBLE NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
        format!(
            "CREATE TABLE `{DB}`.`t_comp` (k1 INT NOT NULL, k2 VARCHAR(32) NOT NULL, txt TEXT NULL, \
             flag TINYINT UNSIGNED NOT NULL, dt DATE NULL, PRIMARY KEY (k1, k2)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
        format!(
            "CREATE TABLE `{DB}`.`t_bin` (id BINARY(16) NOT NULL PRIMARY KEY, payload BLOB NULL, \
             state ENUM('new','paid','shipped','void') NOT NULL, ts TIMESTAMP(3) NULL, big BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE `{DB}`.`t_misc` (id INT UNSIGNED NOT NULL PRIMARY KEY, j JSON NULL, \
             ch CHAR(10) CHARACTER SET latin1 NOT NULL, f FLOAT NULL, t TIME(2) NULL, bits BIT(12) NULL, \
             u VARCHAR(100) CHARACTER SET utf8mb4 NULL) ENGINE=InnoDB"
        ),
        format!("CREATE TABLE `{DB}`.`lag_probe` (id INT NOT NULL PRIMARY KEY, seq BIGINT NOT NULL) ENGINE=InnoDB"),
    ]
}

/// splitmix64: tiny, fast, and its output never changes between versions.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Statement generator with the live keys of each table.
pub struct Generator {
    rng: Rng,
    /// Next key number per table; keys of writer `w` start at `w << 40`.
    next_key: [u64; 4],
    live: [Vec<u64>; 4],
    /// Table the lag probe updates, if any: (writer id).
    probe: Option<u32>,
    probe_seq: u64,
}

const WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "épsilon", "ζeta", "eta", "theta", "iota", "kappa",
];

impl Generator {
    pub fn new(seed: u64, writer: u32) -> Generator {
        let base = u64::from(writer) << 40;
        Generator {
            rng: Rng::new(seed),
            next_key: [base + 1; 4],
            live: Default::default(),
            probe: None,
            probe_seq: 0,
        }
    }

    /// Also update `lag_probe` row `writer` with a sequence number in every transaction.
    pub fn with_probe(mut self, writer: u32) -> Generator {
        self.probe = Some(writer);
        self
    }

    /// One transaction as a single multi-statement text; returns it and the probe sequence it carries.
    pub fn transaction(&mut self) -> (String, u64) {
        let mut s = String::with_capacity(2048);
        s.push_str("START TRANSACTION");
        for _ in 0..OPS_PER_TX {
            s.push(';');
            self.statement(&mut s);
        }
        if let Some(w) = self.probe {
            self.probe_seq += 1;
            s.push_str(&format!(
                ";UPDATE `{DB}`.`lag_probe` SET seq = {} WHERE id = {w}",
                self.probe_seq
            ));
        }
        s.push_str(";COMMIT");
        (s, self.probe_seq)
    }

    fn statement(&mut self, s: &mut String) {
        let t = self.rng.below(4) as usize;
        let r = self.rng.below(100);
        let n_live = self.live[t].len() as u64;
        if n_live == 0 || r < 50 || (n_live < 50 && r < 80) {
            let k = self.next_key[t];
            self.next_key[t] += 1;
            self.live[t].push(k);
            self.insert(t, k, s);
        } else if r < 85 {
            let k = self.live[t][self.rng.below(n_live) as usize];
            self.update(t, k, s);
        } else {
            let i = self.rng.below(n_live) as usize;
            let k = self.live[t].swap_remove(i);
            s.push_str(&format!(
                "DELETE FROM `{DB}`.`{}` WHERE {}",
                TABLES[t],
                key_pred(t, k)
            ));
        }
    }

    fn word(&mut self) -> &'static str {
        WORDS[self.rng.below(WORDS.len() as u64) as usize]
    }

    fn insert(&mut self, t: usize, k: u64, s: &mut String) {
        let v = self.row_values(t);
        let key = match t {
            0 => format!("{k}"),
            1 => format!("{}, 'k{}'", k as u32, k >> 32),
            2 => bin_key(k),
            _ => format!("{}", misc_key(k)),
        };
        s.push_str(&format!(
            "INSERT INTO `{DB}`.`{}` VALUES ({key}, {v})",
            TABLES[t]
        ));
    }

    fn update(&mut self, t: usize, k: u64, s: &mut String) {
        let set = match t {
            0 => format!(
                "a = {}, b = '{}-{}', e = {}",
                self.rng.below(1 << 30) as i64 - (1 << 29),
                self.word(),
                self.rng.below(100000),
                self.rng.below(1_000_000) as f64 / 7.0
            ),
            1 => format!(
                "txt = '{} {}', flag = {}",
                self.word(),
                self.word(),
                self.rng.below(256)
            ),
            2 => format!(
                "state = {}, big = {}",
                self.rng.below(4) + 1,
                self.rng.next()
            ),
            _ => format!(
                "j = '{{\"n\": {}, \"w\": \"{}\"}}', f = {}",
                self.rng.below(1000),
                self.word(),
                self.rng.below(10000) as f32 / 3.0
            ),
        };
        s.push_str(&format!(
            "UPDATE `{DB}`.`{}` SET {set} WHERE {}",
            TABLES[t],
            key_pred(t, k)
        ));
    }

    fn row_values(&mut self, t: usize) -> String {
        let r = &mut self.rng;
        match t {
            0 => {
                let a = r.below(1 << 31) as i64 - (1 << 30);
                let c = if r.below(10) == 0 {
                    "NULL".to_string()
                } else {
                    format!(
                        "{}.{:04}",
                        r.below(10_000_000) as i64 - 5_000_000,
                        r.below(10000)
                    )
                };
                let d = format!(
                    "'20{:02}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}'",
                    r.below(30),
                    r.below(12) + 1,
                    r.below(28) + 1,
                    r.below(24),
                    r.below(60),
                    r.below(60),
                    r.below(1_000_000)
                );
                let e = r.next() as f64 / 3.0e10;
                let w = WORDS[r.below(WORDS.len() as u64) as usize];
                format!("{a}, '{w}-{}', {c}, {d}, {e}", r.below(1_000_000))
            }
            1 => {
                let len = r.below(200) as usize;
                let txt: String = (0..len)
                    .map(|i| (b'a' + ((i as u64 + r.below(3)) % 26) as u8) as char)
                    .collect();
                let dt = if r.below(10) == 0 {
                    "NULL".to_string()
                } else {
                    format!(
                        "'20{:02}-{:02}-{:02}'",
                        r.below(30),
                        r.below(12) + 1,
                        r.below(28) + 1
                    )
                };
                format!("'{txt}', {}, {dt}", r.below(256))
            }
            2 => {
                let len = r.below(120) as usize;
                let mut hex = String::with_capacity(len * 2);
                for _ in 0..len {
                    hex.push_str(&format!("{:02X}", r.below(256)));
                }
                let payload = if len == 0 {
                    "NULL".to_string()
                } else {
                    format!("X'{hex}'")
                };
                let ts = format!(
                    "'20{:02}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}'",
                    10 + r.below(20),
                    r.below(12) + 1,
                    r.below(28) + 1,
                    r.below(24),
                    r.below(60),
                    r.below(60),
                    r.below(1000)
                );
                format!("{payload}, {}, {ts}, {}", r.below(4) + 1, r.next())
            }
            _ => {
                let j = format!(
                    "'{{\"n\": {}, \"tags\": [\"{}\", \"{}\"]}}'",
                    r.below(1_000_000),
                    WORDS[r.below(10) as usize],
                    WORDS[r.below(10) as usize]
                );
                let t = format!(
                    "'{}{:02}:{:02}:{:02}.{:02}'",
                    if r.below(5) == 0 { "-" } else { "" },
                    r.below(838),
                    r.below(60),
                    r.below(60),
                    r.below(100)
                );
                format!(
                    "{j}, 'c{}', {}, {t}, b'{:012b}', '{}'",
                    r.below(100_000_000),
                    r.below(100000) as f32 / 7.0,
                    r.below(4096),
                    WORDS[r.below(10) as usize]
                )
            }
        }
    }
}

fn bin_key(k: u64) -> String {
    // 16 bytes; the last byte may be 0x00 (BINARY keeps trailing zero bytes).
    let hi = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("X'{hi:016X}{:016X}'", k << 8)
}

fn key_pred(t: usize, k: u64) -> String {
    match t {
        0 => format!("id = {k}"),
        1 => format!("k1 = {} AND k2 = 'k{}'", k as u32, k >> 32),
        2 => format!("id = {}", bin_key(k)),
        _ => format!("id = {}", misc_key(k)),
    }
}

/// INT UNSIGNED key of `t_misc`: the writer number in the top byte.
fn misc_key(k: u64) -> u32 {
    (((k >> 40) << 24) | (k & 0xFF_FFFF)) as u32
}

/// Runs `n_tx` transactions of the seeded workload, one round trip each.
pub async fn run(conn: &mut Conn, n_tx: u64, seed: u64) -> mysql_async::Result<()> {
    let mut g = Generator::new(seed, 0);
    for _ in 0..n_tx {
        let (sql, _) = g.transaction();
        conn.query_drop(sql).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_statements() {
        let a: Vec<String> = {
            let mut g = Generator::new(7, 0);
            (0..50).map(|_| g.transaction().0).collect()
        };
        let b: Vec<String> = {
            let mut g = Generator::new(7, 0);
            (0..50).map(|_| g.transaction().0).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().any(|s| s.contains("DELETE FROM")));
        assert!(a.iter().any(|s| s.contains("UPDATE `bench`.`t_misc`")));
    }
}
