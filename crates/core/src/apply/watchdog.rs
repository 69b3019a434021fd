//! Telling a stalled target connection from a slow statement.
//!
//! The driver has no read timeout, and a target behind a NAT or firewall that
//! drops the flow without a reset leaves a write waiting for the kernel's TCP
//! timeout (minutes to hours). A plain timeout on the statement cannot tell
//! that from a long DDL or a batch waiting for a lock, so [`stalled`] asks the
//! target itself, over a second connection, what the writing connection is
//! doing:
//!
//! - the server runs a statement for it (`Query`, or a lock wait): healthy,
//!   however long it takes;
//! - the server has nothing from it to work on (`Sleep`) on two probes in a
//!   row while the write still waits: the request or its answer was lost,
//!   the connection has stalled (the server-side session is killed, so that
//!   an open transaction of it frees its locks at once);
//! - the server no longer knows the connection: it is gone;
//! - two probes in a row cannot reach the target: it is unreachable.
//!
//! Only then does the write stop with a transient error; the service then
//! starts again from its committed position, which the batch's own commit
//! (position and rows in one transaction) keeps exact whether or not the lost
//! answer was a COMMIT's.
//!
//! One more thing keeps it exact: the abandoned connection's bytes may still
//! reach the server after the network heals (the kernel retransmits an
//! orphaned socket's data), and a batch committed then would write older
//! images, and an older position, over the new applier's work. So the next
//! applier, before it reads its position, [`retire`]s the abandoned
//! connection: kills it and waits until the server has let it go. From then
//! on the server refuses its late bytes.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use std::time::Duration;

/// Probes start after this long and repeat this often.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// A probe that takes longer than this (connect and query) missed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one probe found about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Working,
    Idle,
    Gone,
    Unreachable,
}

/// Resolves, with the reason, once the connection `conn_id` to the server at
/// `opts` is judged stalled (see the module doc); never while the server
/// works for it. Meant to be raced against the write it watches.
pub async fn stalled(opts: Opts, conn_id: u32) -> String {
    let (mut idle, mut missed) = (0, 0);
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let seen = match tokio::time::timeout(PROBE_TIMEOUT, probe(&opts, conn_id)).await {
            Ok(Ok(s)) => s,
            _ => Seen::Unreachable,
        };
        (idle, missed) = match seen {
            Seen::Working => (0, 0),
            Seen::Idle => (idle + 1, 0),
            Seen::Unreachable => (0, missed + 1),
            Seen::Gone => {
                return format!("the server no longer has connection {conn_id}: it was closed or killed while a write waited")
            }
        };
        if idle >= 2 {
            // Its open transaction, if any, frees its locks now rather than
            // at the server's own network timeout.
            if let Ok(Ok(mut c)) =
                tokio::time::timeout(PROBE_TIMEOUT, Conn::new(opts.clone())).await
            {
                let _ = c.query_drop(format!("KILL {conn_id}")).await;
                let _ = c.disconnect().await;
            }
            return format!("connection {conn_id} stalled: the server has been waiting for it while it waited for the server (a firewall or NAT may have dropped the flow); its session was killed");
        }
        if missed >= 2 {
            return format!("the server is unreachable: two probes of {}s each got no answer while a statement on connection {conn_id} waited", PROBE_TIMEOUT.as_secs());
        }
    }
}

async fn probe(opts: &Opts, conn_id: u32) -> Result<Seen, mysql_async::Error> {
    let mut c = Conn::new(opts.clone()).await?;
    let command: Option<Option<String>> = c
        .exec_first(
            "SELECT COMMAND FROM information_schema.PROCESSLIST WHERE ID = ?",
            (conn_id,),
        )
        .await?;
    let seen = match command.flatten().as_deref() {
        None => Seen::Gone,
        Some("Sleep") => Seen::Idle,
        Some(_) => Seen::Working,
    };
    let _ = c.disconnect().await;
    Ok(seen)
}

/// Kills connection `conn_id` (a write abandoned as stalled; see the module
/// doc) if the server still has it under `user`, and waits up to 30 s until
/// the server no longer lists it. A server restarted since reuses ids: the
/// user check keeps other users' sessions safe.
pub async fn retire(conn: &mut Conn, conn_id: u32, user: &str) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut killed = false;
    loop {
        let row: Option<(String, String)> = conn
            .exec_first(
                "SELECT USER, COMMAND FROM information_schema.PROCESSLIST WHERE ID = ?",
                (conn_id,),
            )
            .await
            .map_err(|e| format!("reading the target's process list: {e}"))?;
        match row {
            None => return Ok(()),
            Some((u, _)) if u != user => return Ok(()),
            Some((_, command)) => {
                if tokio::time::Instant::now() > deadline {
                    return Err(format!("connection {conn_id} of a stalled write is still on the target ({command}) 30 s after KILL"));
                }
                if !killed || command != "Killed" {
                    // 1094: no such thread (it ended meanwhile).
                    let _ = conn.query_drop(format!("KILL {conn_id}")).await;
                    killed = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
