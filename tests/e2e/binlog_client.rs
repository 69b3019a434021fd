//! dropship's own replication connection (`dropship_mysql::binlog::client`)
//! against real servers: logins with caching_sha2_password over RSA and over
//! TLS, TLS verification, the dump by file and offset, and MySQL GTID
//! auto-position with tagged GTIDs (the server sends exactly the
//! transactions missing from the set).

use crate::common::*;
use dropship_mysql::binlog::client::{
    BinlogClient, ClientError, ClientOptions, ClientTls, DumpFrom,
};
use dropship_mysql::binlog::Decoder;
use dropship_mysql::gtid::GtidSet;
use dropship_mysql::Event;
use dropship_sandbox::{Server, ServerOptions};
use mysql_async::prelude::Queryable;
use std::time::Duration;

fn options(server: &Server, user: &str, password: &str, tls: ClientTls) -> ClientOptions {
    ClientOptions {
        host: "127.0.0.1".into(),
        port: server.port(),
        user: user.into(),
        password: Some(password.into()),
        tls,
        connect_timeout: Duration::from_secs(10),
    }
}

async fn mysql_source() -> Option<Server> {
    let pair = MYSQL_MYSQL;
    if !pair.available() {
        return None;
    }
    init_logs();
    Some(
        Server::start(ServerOptions::source().with_flavor(Flavor::MySql))
            .await
            .expect("start MySQL"),
    )
}

/// How many TLS handshakes the server has accepted.
async fn tls_accepts(c: &mut mysql_async::Conn) -> u64 {
    let row: Option<(String, u64)> = c
        .query_first("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'")
        .await
        .unwrap();
    row.expect("Ssl_accepts").1
}

/// Forgets cached caching_sha2_password logins, so the next login of `user`
/// takes the full-authentication path (RSA key exchange or TLS).
async fn forget_logins(server: &Server) {
    server.exec("FLUSH PRIVILEGES").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_sha2_password_logs_in_over_rsa_and_over_tls_and_wrong_secrets_are_refused() {
    let Some(server) = mysql_source().await else {
        return;
    };
    server
        .create_user(
            "repl",
            SOURCE_PASSWORD,
            &["REPLICATION SLAVE, REPLICATION CLIENT ON *.*"],
        )
        .await
        .unwrap();
    let mut c = server.conn().await.unwrap();
    let plugin: Option<String> = c
        .query_first("SELECT plugin FROM mysql.user WHERE user = 'repl'")
        .await
        .unwrap();
    assert_eq!(plugin.as_deref(), Some("caching_sha2_password"));

    // Full authentication without TLS: the password goes RSA-encrypted.
    forget_logins(&server).await;
    let mut plain = BinlogClient::connect(&options(
        &server,
        "repl",
        SOURCE_PASSWORD,
        ClientTls::Disabled,
    ))
    .await
    .expect("login over RSA");
    assert!(!plain.is_secure());
    plain.execute("SET @x = 1").await.expect("a statement");
    // A second login is served from the server's cache (fast path).
    BinlogClient::connect(&options(
        &server,
        "repl",
        SOURCE_PASSWORD,
        ClientTls::Disabled,
    ))
    .await
    .expect("cached login");

    // Full authentication over TLS: the password goes in clear inside TLS.
    forget_logins(&server).await;
    let before = tls_accepts(&mut c).await;
    let secure = BinlogClient::connect(&options(
        &server,
        "repl",
        SOURCE_PASSWORD,
        ClientTls::Required,
    ))
    .await
    .expect("login over TLS");
    assert!(secure.is_secure());
    let after = tls_accepts(&mut c).await;
    assert!(
        after > before,
        "the server counted no TLS handshake ({before} -> {after})"
    );

    // Wrong password: the server's own error, with its code.
    for tls in [ClientTls::Disabled, ClientTls::Required] {
        forget_logins(&server).await;
        match BinlogClient::connect(&options(&server, "repl", "wrong", tls)).await {
            Err(ClientError::Server {
                code: 1045,
                message,
                ..
            }) => {
                assert!(!message.contains(SOURCE_PASSWORD));
            }
            Err(e) => panic!("expected ERROR 1045, got {e}"),
            Ok(_) => panic!("a wrong password logged in"),
        }
    }

    // verify-full: the auto-generated certificate is neither signed by a
    // known CA nor issued for 127.0.0.1, so the connection is refused,
    // with the way out in the message.
    let ca =
        std::fs::read(server.datadir().join("ca.pem")).expect("the server's auto-generated ca.pem");
    for tls in [
        ClientTls::VerifyFull { ca: vec![] },
        ClientTls::VerifyFull { ca: vec![ca] },
    ] {
        match BinlogClient::connect(&options(&server, "repl", SOURCE_PASSWORD, tls)).await {
            Err(ClientError::Protocol(m)) => {
                assert!(
                    m.contains("TLS handshake") && m.contains("verify-full"),
                    "{m}"
                );
            }
            Err(e) => panic!("expected a TLS verification error, got {e}"),
            Ok(_) => panic!("verify-full accepted an unverifiable certificate"),
        }
    }
}

async fn write(c: &mut mysql_async::Conn, id: u32, tag: Option<&str>) {
    if let Some(t) = tag {
        c.query_drop(format!("SET gtid_next = 'AUTOMATIC:{t}'"))
            .await
            .unwrap();
    }
    c.query_drop(format!("INSERT INTO g.t VALUES ({id}, 'x')"))
        .await
        .unwrap();
    if tag.is_some() {
        c.query_drop("SET gtid_next = 'AUTOMATIC'").await.unwrap();
    }
}

/// Reads events until `want` GTID events arrived or the stream goes quiet.
async fn gtids_sent(client: &mut BinlogClient, want: usize) -> Vec<String> {
    let mut decoder = Decoder::new();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        // Wait a little past the last expected event: any extra GTID the
        // server sends would arrive too and fail the comparison.
        let quiet = if seen.len() >= want {
            Duration::from_millis(1500)
        } else {
            Duration::from_secs(15)
        };
        let raw = match tokio::time::timeout(quiet, client.next_event()).await {
            Err(_) => break,
            Ok(r) => r.expect("event").expect("the stream stays open"),
        };
        decoder
            .decode(raw, &mut |_, e| {
                if let Event::Gtid { gtid, .. } = e {
                    seen.push(gtid.to_string());
                }
                Ok(())
            })
            .expect("decode");
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtid_auto_position_sends_exactly_the_missing_transactions_tagged_ones_included() {
    let Some(server) = mysql_source().await else {
        return;
    };
    server
        .exec("CREATE DATABASE g; CREATE TABLE g.t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    let mut c = server.conn().await.unwrap();
    let mut id = 0;
    for tag in [None, Some("blue"), None, Some("blue"), Some("red")] {
        id += 1;
        write(&mut c, id, tag).await;
    }
    let status: mysql_async::Row = c
        .query_first("SHOW BINARY LOG STATUS")
        .await
        .unwrap()
        .unwrap();
    let have: String = status.get::<String, _>(4).unwrap().replace('\n', "");
    let have = GtidSet::parse(&have).unwrap();
    assert!(have.has_tags(), "tagged GTIDs were written: {have}");
    for tag in [Some("blue"), None, Some("red"), None] {
        id += 1;
        write(&mut c, id, tag).await;
    }
    let uuid: String = c
        .query_first("SELECT @@server_uuid")
        .await
        .unwrap()
        .unwrap();

    server
        .create_user(
            "repl",
            SOURCE_PASSWORD,
            &["REPLICATION SLAVE, REPLICATION CLIENT ON *.*"],
        )
        .await
        .unwrap();
    let mut client = BinlogClient::connect(&options(
        &server,
        "repl",
        SOURCE_PASSWORD,
        ClientTls::Disabled,
    ))
    .await
    .unwrap();
    client
        .execute("SET @source_binlog_checksum = @@global.binlog_checksum, @master_binlog_checksum = @@global.binlog_checksum")
        .await
        .unwrap();
    client.dump(4243, DumpFrom::Gtid(&have)).await.unwrap();
    let got = gtids_sent(&mut client, 4).await;
    // The schema (GTIDs 1-2) and the first five inserts are in `have`:
    // only the last four transactions come, in commit order.
    let expected = vec![
        format!("{uuid}:blue:3"),
        format!("{uuid}:5"),
        format!("{uuid}:red:2"),
        format!("{uuid}:6"),
    ];
    assert_eq!(got, expected);
    for g in &got {
        assert!(
            !have.contains_set(&GtidSet::parse(g).unwrap()),
            "{g} was already in the set"
        );
    }

    // The same dump by file and offset from the start sends every one.
    let mut client = BinlogClient::connect(&options(
        &server,
        "repl",
        SOURCE_PASSWORD,
        ClientTls::Disabled,
    ))
    .await
    .unwrap();
    client
        .execute("SET @source_binlog_checksum = @@global.binlog_checksum, @master_binlog_checksum = @@global.binlog_checksum")
        .await
        .unwrap();
    let file: String = status.get(0).unwrap();
    client
        .dump(
            4244,
            DumpFrom::File {
                name: &file,
                pos: 4,
            },
        )
        .await
        .unwrap();
    let all = gtids_sent(&mut client, 11).await;
    assert_eq!(all.len(), 11, "{all:?}");
    assert_eq!(&all[7..], &expected[..]);
}
