//! Which server we talk to: MySQL or MariaDB, and its version. Statement and
//! variable names differ between them (and across MySQL 8.4's renames); the
//! rest of dropship asks this module instead of branching on version strings.

use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlavorKind {
    MySql,
    MariaDb,
}

/// Server flavor and version, from `SELECT VERSION()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flavor {
    pub kind: FlavorKind,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub version: String,
}

impl Flavor {
    /// Parses `8.0.36`, `10.11.6-MariaDB-0+deb12u1-log`, `5.5.5-10.11.6-MariaDB`.
    pub fn parse(version: &str) -> Flavor {
        let is_maria = version.to_ascii_lowercase().contains("mariadb");
        let v = version.strip_prefix("5.5.5-").unwrap_or(version);
        let mut nums = v
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().unwrap_or(0));
        let major = nums.next().unwrap_or(0);
        let minor = nums.next().unwrap_or(0);
        let patch = nums.next().unwrap_or(0);
        Flavor {
            kind: if is_maria {
                FlavorKind::MariaDb
            } else {
                FlavorKind::MySql
            },
            major,
            minor,
            patch,
            version: version.to_string(),
        }
    }

    pub async fn detect<C: Queryable>(conn: &mut C) -> Result<Flavor, mysql_async::Error> {
        let v: Option<String> = conn.query_first("SELECT VERSION()").await?;
        Ok(Flavor::parse(&v.unwrap_or_default()))
    }

    pub fn is_mariadb(&self) -> bool {
        self.kind == FlavorKind::MariaDb
    }

    /// Whether this version is one dropship supports as a source.
    pub fn supported(&self) -> bool {
        match self.kind {
            FlavorKind::MariaDb => self.major >= 10,
            FlavorKind::MySql => (self.major, self.minor) >= (5, 7),
        }
    }

    /// The statement that shows the current binlog file and position.
    pub fn show_binlog_status(&self) -> &'static str {
        match self.kind {
            FlavorKind::MySql if (self.major, self.minor) >= (8, 4) => "SHOW BINARY LOG STATUS",
            _ => "SHOW MASTER STATUS",
        }
    }

    /// The statement that lists the replicas connected to this server
    /// (MySQL 8.4 removed `SHOW SLAVE HOSTS`; 8.0.22 added `SHOW REPLICAS`).
    pub fn show_replica_hosts(&self) -> &'static str {
        match self.kind {
            FlavorKind::MySql if (self.major, self.minor, self.patch) >= (8, 0, 22) => {
                "SHOW REPLICAS"
            }
            _ => "SHOW SLAVE HOSTS",
        }
    }

    /// Whether changes that InnoDB makes through a foreign key's `CASCADE` or
    /// `SET NULL` action reach the row binlog. MariaDB and MySQL up to 8.4 do
    /// not log them (the cascaded rows change on the source only); MySQL 9.x
    /// runs foreign keys in the SQL layer and logs them, unless
    /// `innodb_native_foreign_keys=ON` brings back the old behaviour. Read from
    /// that variable: where it does not exist, cascades are not logged.
    pub async fn logs_cascades<C: Queryable>(
        &self,
        conn: &mut C,
    ) -> Result<bool, mysql_async::Error> {
        if self.is_mariadb() {
            return Ok(false);
        }
        match conn
            .query_first::<String, _>("SELECT @@GLOBAL.innodb_native_foreign_keys")
            .await
        {
            Ok(v) => Ok(matches!(v.as_deref(), Some("0" | "OFF"))),
            // ER_UNKNOWN_SYSTEM_VARIABLE: a server from before SQL-layer keys.
            Err(mysql_async::Error::Server(e)) if e.code == 1193 => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            FlavorKind::MySql => "MySQL",
            FlavorKind::MariaDb => "MariaDB",
        }
    }
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}.{}.{}",
            self.name(),
            self.major,
            self.minor,
            self.patch
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn versions_of_both_flavors_parse() {
        let m = Flavor::parse("10.11.6-MariaDB-0+deb12u1-log");
        assert!(m.is_mariadb());
        assert_eq!((m.major, m.minor, m.patch), (10, 11, 6));
        let m = Flavor::parse("5.5.5-10.5.15-MariaDB");
        assert_eq!((m.major, m.minor), (10, 5));
        let y = Flavor::parse("8.4.0");
        assert_eq!(y.show_binlog_status(), "SHOW BINARY LOG STATUS");
        assert!(!Flavor::parse("5.6.40").supported());
    }
}
