//! One error type for the flow, classified by what the caller should do:
//! retry ([`Error::is_transient`]) or stop and tell a human (definite). The
//! message is the diagnosis with the offending value; [`Error::hint`] is the
//! remedy, printed on its own line.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// Bad configuration: never retried.
    /// A mistake in the configuration, kept whole (file, key, message, hint).
    Config(crate::config::ConfigError),
    /// A database call failed. `what` says what dropship was doing.
    Db {
        what: String,
        source: mysql_async::Error,
    },
    /// Something a human must fix; retrying will not help.
    Definite {
        message: String,
        hint: String,
    },
    /// Something likely to pass on retry (dropped connection, server restart).
    Transient(String),
    Relay(dropship_relay::Error),
    Io {
        what: String,
        source: std::io::Error,
    },
    /// A mapped table's columns changed while its initial copy ran: the copy
    /// of the service restarts from a fresh position.
    SchemaChangedDuringCopy(String),
    /// The relay log has no room (why): see [`Error::is_relay_full`].
    RelayFull(String),
    /// Anything that failed before replication started (unreachable source,
    /// wrong password, binlog settings, a table without a key): exit code 2.
    Preflight(Box<Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn definite(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Definite {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn db(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> Error {
        let what = what.into();
        move |source| Error::Db { what, source }
    }

    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    /// MySQL error code of a failed database call, if any.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            Error::Preflight(e) => e.server_code(),
            Error::Db {
                source: mysql_async::Error::Server(e),
                ..
            } => Some(e.code),
            _ => None,
        }
    }

    /// True when the relay log has no room (its file system is full, or it
    /// is at `[state] max_size`): the reader pauses until appliers free space.
    pub fn is_relay_full(&self) -> bool {
        match self {
            Error::RelayFull(_) => true,
            Error::Relay(e) => e.is_no_space(),
            _ => false,
        }
    }

    /// True when retrying (after a backoff) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transient(_) => true,
            Error::Db { source, .. } => match source {
                mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => true,
                mysql_async::Error::Server(e) => matches!(
                    e.code,
                    1040 /* too many connections */ | 1053 /* shutdown */ | 1205 /* lock wait */
                        | 1213 /* deadlock */ | 2006 | 2013 | 1927 /* connection killed */ | 1317
                ),
                _ => false,
            },
            Error::Relay(_) | Error::Io { .. } | Error::RelayFull(_) => false,
            Error::Config(_)
            | Error::Definite { .. }
            | Error::SchemaChangedDuringCopy(_)
            | Error::Preflight(_) => false,
        }
    }

    /// Marks an error as a preflight failure (see [`Error::Preflight`]).
    pub fn preflight(e: Error) -> Error {
        match e {
            Error::Preflight(_) => e,
            e => Error::Preflight(Box::new(e)),
        }
    }

    /// What a human can do about it, if we know.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Preflight(e) => e.hint(),
            Error::Definite { hint, .. } if !hint.is_empty() => Some(hint.clone()),
            Error::Relay(e) => e.hint(),
            Error::RelayFull(_) => Some("free space on the state dir's file system, raise [state] max_size, or bring the service furthest behind back (its target); reading resumes by itself".into()),
            Error::Config(e) if !e.hint.is_empty() => Some(e.hint.clone()),
            Error::Db { source: source @ (mysql_async::Error::Io(_) | mysql_async::Error::Driver(_)), .. } => {
                crate::config::tls_hint(&source.to_string())
            }
            Error::Db { source: mysql_async::Error::Server(e), .. } => match e.code {
                1045 => Some("check the user name and password (password_file or ${VAR} in the url)".into()),
                1227 | 1142 | 1044 => Some("grant the privileges listed in the README's \"Privileges\" section; `dropship check` lists what is missing".into()),
                1236 => Some("the binlog position dropship needs is gone from the source (purged?): copy the service again with `dropship replicate --recopy SERVICE` (README \"Recovering from a purged binlog\")".into()),
                3750 => Some("the target has sql_require_primary_key=ON and this table has no PRIMARY KEY: add one on the source (the unique key's columns), or set sql_require_primary_key=OFF on the target (RDS/Aurora: in the DB parameter group); `dropship check` lists every such table".into()),
                _ => None,
            },
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "{e}"),
            Error::Db { what, source } => write!(f, "{what}: {source}"),
            Error::Definite { message, .. } => write!(f, "{message}"),
            Error::Transient(m) => write!(f, "{m}"),
            // The relay crate's messages start with "relay log:" already.
            Error::Relay(e) => write!(f, "{e}"),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::SchemaChangedDuringCopy(m) => write!(f, "{m}"),
            Error::RelayFull(m) => write!(f, "{m}"),
            Error::Preflight(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Db { source, .. } => Some(source),
            Error::Io { source, .. } => Some(source),
            Error::Relay(e) => Some(e),
            _ => None,
        }
    }
}

impl From<dropship_relay::Error> for Error {
    fn from(e: dropship_relay::Error) -> Self {
        Error::Relay(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_error_keeps_its_key_and_its_hint_apart() {
        let cfg = crate::config::Config::parse(
            "dropship.toml",
            "[source]\nurl = \"mysql://u@127.0.0.1:3307\"\nserver_id = 5000\n[services.users]\ntarget = \"mysql://u@127.0.0.1:3308\"\ntables = [\"app.users\"]\n",
            &|_| None,
        )
        .unwrap();
        let e = Error::Config(cfg.service_named("orders").unwrap_err());
        let text = e.to_string();
        assert!(
            text.starts_with("dropship.toml: services: ")
                && text.contains("\"orders\"")
                && text.contains("defined: users"),
            "{text}"
        );
        assert!(
            !text.contains("hint"),
            "the hint is not in the message: {text}"
        );
        assert!(
            e.hint().is_some_and(|h| h.contains("[services.orders]")),
            "{:?}",
            e.hint()
        );
        let Error::Config(c) = e else { unreachable!() };
        assert_eq!(c.key, "services");
    }

    #[test]
    fn relay_errors_give_their_hint_and_say_relay_log_once() {
        let e = Error::from(dropship_relay::Error::NotCovered {
            requested: 9,
            first_available: 12,
        });
        let text = e.to_string();
        assert_eq!(text.matches("relay log").count(), 1, "{text}");
        assert!(!text.contains("Hint"), "{text}");
        assert!(e.hint().is_some_and(|h| h.contains("reset the relay log")));
    }

    fn server(code: u16) -> Error {
        Error::Db {
            what: "creating app.tokens on the target".into(),
            source: mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: "Unable to create or change a table without a primary key".into(),
                state: "HY000".into(),
            }),
        }
    }

    #[test]
    fn a_target_requiring_primary_keys_gets_a_hint_and_is_not_retried() {
        let e = server(3750);
        assert!(!e.is_transient());
        let hint = e.hint().expect("a hint");
        assert!(
            hint.contains("sql_require_primary_key=OFF") && hint.contains("PRIMARY KEY"),
            "{hint}"
        );
        assert!(server(1146).hint().is_none());
    }
}
