//! Connections to the servers a command talks to, each failure naming the
//! server (credentials scrubbed by the endpoint's `Display`). A connection
//! attempt that gets no answer within [`CONNECT_TIMEOUT`] (a black-holed
//! network path: the driver has no timeout of its own) fails as a lost
//! connection, which the callers retry.

use crate::config::{Config, ServiceConfig};
use crate::error::{Error, Result};
use crate::meta;
use mysql_async::{Conn, Opts};
use std::time::Duration;

/// How long a connection attempt, login included, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A connection with these options; `what` names the server in the error
/// (`connecting to ...`). Every other function here is this one.
pub async fn connect(opts: Opts, what: String) -> Result<Conn> {
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Ok(r) => r.map_err(Error::db(what)),
        Err(_) => Err(Error::Db {
            what,
            source: mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            ))),
        }),
    }
}

/// A connection to the service's target, default database `_dropship`.
pub async fn target(svc: &ServiceConfig) -> Result<Conn> {
    let what = format!("connecting to target {}", svc.target);
    connect(svc.target.opts_with_db(meta::DB), what).await
}

/// A connection to the service's target with no default database (for
/// statements that name every table).
pub async fn target_plain(svc: &ServiceConfig) -> Result<Conn> {
    let what = format!("connecting to target {}", svc.target);
    connect(svc.target.opts(), what).await
}

/// A connection to the source.
pub async fn source(cfg: &Config) -> Result<Conn> {
    let what = format!("connecting to the source {}", cfg.source);
    connect(cfg.source.opts(), what).await
}
