//! Throwaway MariaDB and MySQL servers for tests, `dropship demo` and the benchmarks, plus the workloads run against them.
//!
//! - [`Server`] starts `mariadbd` from the local Debian binaries, or MySQL 9.7's `mysqld` from the folder of
//!   `scripts/install-mysql.sh` ([`Flavor`]), in a short temporary directory, on a free port, from a cached
//!   template datadir; dropping it kills the server and removes the directory.
//! - [`workload`] creates the `all_types` schema and runs random multi-statement transactions over it.
//! - [`monolith`] is the demo's `shop` schema with [`monolith::LiveWriters`] writing into it concurrently.
//! - [`proxy::FaultProxy`] sits between dropship and a server and injects network faults (resets, black holes,
//!   delays, cuts after N bytes).
//! - [`tls::TestCa`] makes a test CA and server certificates (good, self-signed, wrong host) and swaps them in.
//! - [`compare`] checks that a table is byte-for-byte identical on two servers and names the first difference.
//!
//! Nothing here touches the system MariaDB service or port 3306.

pub mod compare;
mod error;
pub mod monolith;
pub mod proxy;
mod server;
pub mod sql;
pub mod template;
pub mod tls;
pub mod workload;

pub use compare::assert_tables_identical;
pub use error::{Error, Result};
pub use server::{default_flavor, MariaDb, Server, ServerOptions};
pub use template::Flavor;
pub use workload::Workload;
