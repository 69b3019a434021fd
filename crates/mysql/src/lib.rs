//! MySQL and MariaDB protocol knowledge for dropship, kept apart from the flow.
//!
//! - [`value`]: column values, exact, and their SQL literal form.
//! - [`event`]: the flavor-independent binlog event model.
//! - [`binlog`]: the one binlog decoder, shared by the live reader and `inspect`.
//! - [`gtid`]: MySQL and MariaDB GTID sets.
//! - [`sql`]: identifier quoting and statement building.
//! - [`rowhash`]: the per-row hash verify and the final check compute on both servers.
//! - [`translate`]: table definitions and column types across MySQL and MariaDB.
//! - [`grants`]: what the connected user may do, from `SHOW GRANTS`.

pub mod binlog;
pub mod event;
pub mod gtid;
pub mod value;

pub use event::*;
pub use value::Value;
pub mod ddl;
pub mod flavor;
pub mod grants;
pub mod position;
pub mod rowhash;
pub mod schema;
pub mod sql;
pub mod translate;
