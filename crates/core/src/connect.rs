//! Connections to the servers a command talks to, each failure naming the
//! server (credentials scrubbed by the endpoint's `Display`).

use crate::config::{Config, ServiceConfig};
use crate::error::{Error, Result};
use crate::meta;
use mysql_async::Conn;

/// A connection to the service's target, default database `_dropship`.
pub async fn target(svc: &ServiceConfig) -> Result<Conn> {
    Conn::new(svc.target.opts_with_db(meta::DB))
        .await
        .map_err(Error::db(format!("connecting to target {}", svc.target)))
}

/// A connection to the service's target with no default database (for
/// statements that name every table).
pub async fn target_plain(svc: &ServiceConfig) -> Result<Conn> {
    Conn::new(svc.target.opts())
        .await
        .map_err(Error::db(format!("connecting to target {}", svc.target)))
}

/// A connection to the source.
pub async fn source(cfg: &Config) -> Result<Conn> {
    Conn::new(cfg.source.opts())
        .await
        .map_err(Error::db(format!(
            "connecting to the source {}",
            cfg.source
        )))
}
