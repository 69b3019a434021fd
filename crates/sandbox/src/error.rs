//! The one error type of the sandbox crate.
//!
//! Errors are split by what the caller should do: [`Error::NotInstalled`] needs a human to install packages,
//! [`Error::Startup`] and [`Error::Template`] carry the tail of the server's error log so the cause is visible
//! in the test output, and [`Error::Sql`] names the statement (shortened) that failed.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while running a throwaway server or a workload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server binaries of the asked flavor are missing.
    #[error("server binaries not found: run scripts/install-deps.sh (MariaDB from apt, MySQL 9.7 through scripts/install-mysql.sh) (looked for {0})")]
    NotInstalled(String),

    /// `mariadb-install-db` or `mysqld --initialize-insecure` failed while preparing the cached template datadir.
    #[error("initialising the template datadir {dir} failed: {detail}")]
    Template { dir: PathBuf, detail: String },

    /// The server did not become ready; `log_tail` is the end of its error log.
    #[error(
        "sandbox server on port {port} did not start: {reason}\n--- tail of {log} ---\n{log_tail}"
    )]
    Startup {
        port: u16,
        reason: String,
        log: PathBuf,
        log_tail: String,
    },

    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A statement failed; `statement` is shortened to 300 characters.
    #[error("{context}: {source} (statement: {statement})")]
    Sql {
        context: String,
        statement: String,
        #[source]
        source: mysql_async::Error,
    },

    /// A caller asked for something that makes no sense (for example an operation on a stopped server).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn sql(
        context: impl Into<String>,
        statement: &str,
        source: mysql_async::Error,
    ) -> Self {
        Error::Sql {
            context: context.into(),
            statement: shorten(statement, 300),
            source,
        }
    }
}

/// Shortens `s` to at most `max` characters, marking the cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}... ({} bytes in all)", s.len())
}
