//! Network faults between dropship and its servers, through the sandbox's TCP fault proxy
//! (`dropship_sandbox::proxy`), with writers running on the source the whole time. Every scenario ends with
//! every target equal to the source, row for row.
//!
//! On one source and two targets per flavor pair: (1) a black hole on the binlog connection, noticed and
//! reconnected while it lasts; (2) seven resets in a row, then a healthy stream, then a reset that must reconnect
//! at once; (3) cuts after N bytes; (4) a black hole on one service's target, which only that service feels and
//! notices; (5) one dead flow to that target while the target stays reachable.

use crate::common::*;
use dropship_sandbox::proxy::FaultProxy;
use dropship_sandbox::workload::{self, Workload};
use dropship_sandbox::ServerOptions;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod the_binlog_stream_survives_black_holes_resets_and_cuts_and_a_cut_target_delays_only_its_service {
    use super::*;
    flavor_matrix!(scenario: mysql_to_mysql, mariadb_to_mariadb);
}

async fn proxy_to(port: u16) -> FaultProxy {
    FaultProxy::start(([127, 0, 0, 1], port).into())
        .await
        .expect("fault proxy")
}

/// Waits until `f` holds or `timeout` passes; returns whether it held.
async fn within(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

async fn scenario(pair: Pair) {
    let env = start_pair(pair, 2, ServerOptions::source(), false).await;
    let mut src = env.source.conn().await.unwrap();
    exec_script(&mut src, &workload::schema_sql("app")).await;
    let wl = Workload::new("app");
    wl.run(&mut src, 30, 1)
        .await
        .expect("workload before replicate");
    // dropship reaches the source and target 1 only through proxies.
    let source_proxy = proxy_to(env.source.port()).await;
    let target_proxy = proxy_to(env.targets[1].port()).await;
    let services = [
        Svc {
            name: "alpha",
            target: 0,
            tables: &["app.all_types"],
            rename: &[],
        },
        Svc {
            name: "beta",
            target: 1,
            tables: &["app.composite_pk", "app.binary_pk"],
            rename: &[],
        },
    ];
    let text = env
        .config_text(&services, "")
        .replace(
            &format!("127.0.0.1:{}\"", env.source.port()),
            &format!("127.0.0.1:{}\"", source_proxy.port()),
        )
        .replace(
            &format!("127.0.0.1:{}\"", env.targets[1].port()),
            &format!("127.0.0.1:{}\"", target_proxy.port()),
        );
    let running = spawn_replicate(parse_config(&text), vec![]);
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(120)).await;
    wait_caught_up(&env, 1, "beta", Duration::from_secs(120)).await;

    // Writers run on the source (directly, not through a proxy) through every fault.
    let writer_wl = wl.clone();
    let mut c = env.source.conn().await.expect("writer conn");
    let stop_writers = Arc::new(AtomicBool::new(false));
    let stop = stop_writers.clone();
    let writers = tokio::spawn(async move {
        let mut done = 0u64;
        for seed in 10.. {
            if stop.load(Relaxed) {
                break;
            }
            writer_wl.run(&mut c, 20, seed).await.expect("workload");
            done += 20;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        done
    });
    let reader = running.control.reader.clone();
    let reconnects = || reader.reconnects.load(Relaxed);

    // 1. A black hole: the binlog connection goes silent without closing. The reader notices the stall by itself
    //    (the source's heartbeats stop arriving) and reconnects while the hole is still open; before, it waited
    //    for the kernel's TCP timeout.
    let before = reconnects();
    source_proxy.black_hole(Duration::from_secs(14));
    let noticed = within(Duration::from_secs(12), || reconnects() > before).await;
    assert!(
        noticed,
        "the reader did not reconnect within 12 s of a black hole on its connection"
    );
    assert!(
        !running.is_finished(),
        "a black hole must not stop replicate"
    );
    source_proxy.clear();
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(120)).await;

    // 2. Resets in a row grow the backoff; a stream that then stays up resets it, so the next blip reconnects at
    //    once (before, the backoff stayed at its 10 s cap for the rest of the process's life).
    for _ in 0..7 {
        let n = reconnects();
        source_proxy.reset_all();
        assert!(
            within(Duration::from_secs(30), || reconnects() > n).await,
            "no reconnect after a reset"
        );
        // The count moves just before the reader connects again: let the
        // new connection come up before the next reset.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(11)).await;
    let n = reconnects();
    let t = Instant::now();
    source_proxy.reset_all();
    assert!(
        within(Duration::from_secs(30), || reconnects() > n).await,
        "no reconnect after the last reset"
    );
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "after 11 s of healthy streaming the reconnect took {took:?}: the backoff did not start over"
    );

    // 3. Cuts after N bytes from the source, most likely inside an event of the binlog stream (the busiest
    //    connection; a cut may also hit one of dropship's query connections, which must recover too).
    let r = reconnects();
    for n in [100u64, 5_000, 60_000, 250_000] {
        source_proxy.cut_after(n);
        let _ = within(Duration::from_secs(10), || reconnects() > r).await;
    }
    assert!(reconnects() > r, "no cut reached the binlog connection");

    // 4. Target 1 goes silent: beta stops applying, alpha keeps applying. Beta's applier notices by itself that its
    //    write stalled (its probes of the target get no answer) while the hole lasts, and retries; before, it
    //    waited for the kernel's TCP timeout.
    target_proxy.black_hole(Duration::from_secs(40));
    let alpha = running.control.service("alpha");
    let beta = running.control.service("beta");
    let beta_errors = beta.errors.load(Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (a0, b0) = (alpha.rows_applied(), beta.rows_applied());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (a1, b1) = (alpha.rows_applied(), beta.rows_applied());
    assert!(
        a1 > a0,
        "alpha stopped applying while only beta's target was cut ({a0} -> {a1})"
    );
    assert_eq!(b0, b1, "beta applied through a black hole on its target");
    let noticed = within(Duration::from_secs(30), || {
        beta.errors.load(Relaxed) > beta_errors
    })
    .await;
    let last = beta.last_error();
    assert!(
        noticed && (last.contains("unreachable") || last.contains("stalled")),
        "beta's applier did not notice the black hole on its target within 35 s (last error: {last:?})"
    );
    assert!(alpha.rows_applied() > a1, "alpha stopped applying");
    target_proxy.clear();

    // 5. One flow to target 1 dies while the target stays reachable (a NAT dropped it): the probes see the
    //    server waiting for that connection while the applier waits for the server, so the connection is
    //    judged stalled, killed on the server, and beta carries on over a new connection while the dead flow
    //    still exists. Its late bytes, delivered when the hole ends, reach a killed session.
    let b2 = beta.rows_applied();
    assert!(
        within(Duration::from_secs(60), || beta.rows_applied() > b2).await,
        "beta did not apply again after the black hole on its target"
    );
    target_proxy.black_hole_open(Duration::from_secs(60));
    let beta_errors = beta.errors.load(Relaxed);
    let noticed = within(Duration::from_secs(40), || {
        beta.errors.load(Relaxed) > beta_errors
    })
    .await;
    // The error names the stall, or the connection closing under the write once the watchdog killed its
    // session (whichever the applier sees first).
    assert!(
        noticed,
        "beta's applier did not notice its dead connection within 40 s (last error: {:?})",
        beta.last_error()
    );
    let b3 = beta.rows_applied();
    assert!(
        within(Duration::from_secs(30), || beta.rows_applied() > b3).await,
        "beta did not apply again over a new connection while the old flow was dead"
    );
    target_proxy.clear();

    // After the faults: every target equals the source.
    stop_writers.store(true, Relaxed);
    let written = writers.await.expect("writers");
    assert!(written > 0);
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(180)).await;
    wait_caught_up(&env, 1, "beta", Duration::from_secs(180)).await;
    assert!(!running.is_finished(), "replicate must still be running");
    running.stop().await.expect("clean stop");
    assert_identical(&env, "app", 0, "app", &["all_types"]).await;
    assert_identical(&env, "app", 1, "app", &["composite_pk", "binary_pk"]).await;
}

/// A copy connection dies silently in the middle of the initial copy (a NAT dropped the flow; the server stays
/// reachable): the watchdog notices, the copy goes on from its last committed chunk over a new connection, and
/// the target ends equal to the source. Without the watchdog the copy would wait for the kernel's TCP timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_flow_during_the_copy_is_noticed_and_the_copy_goes_on() {
    dead_flow_during_the_copy(false).await;
}

/// The same on the source side: the copy's reads (and the binlog stream, which notices its own stall) lose
/// their flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_source_flow_during_the_copy_is_noticed_and_the_copy_goes_on() {
    dead_flow_during_the_copy(true).await;
}

async fn dead_flow_during_the_copy(source_side: bool) {
    let env = start_pair(Pair::default_pair(), 1, ServerOptions::source(), false).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE app").await;
    exec(
        &mut src,
        "CREATE TABLE app.big (id INT PRIMARY KEY, v VARCHAR(200))",
    )
    .await;
    for batch in 0..120 {
        let rows: Vec<String> = (1..=1000)
            .map(|i| format!("({}, REPEAT('v', 150))", batch * 1000 + i))
            .collect();
        exec(
            &mut src,
            &format!("INSERT INTO app.big VALUES {}", rows.join(", ")),
        )
        .await;
    }
    let behind = if source_side {
        env.source.port()
    } else {
        env.targets[0].port()
    };
    let proxy = proxy_to(behind).await;
    let svc = [Svc {
        name: "big",
        target: 0,
        tables: &["app.big"],
        rename: &[],
    }];
    // Throttled, so that the copy is still running when the flow dies.
    let text = env
        .config_text(
            &svc,
            "[replicate]\nmax_rows_per_second = 8000\ncopy_chunk_rows = 2000\n",
        )
        .replace(
            &format!("127.0.0.1:{behind}\""),
            &format!("127.0.0.1:{}\"", proxy.port()),
        );
    let running = spawn_replicate(parse_config(&text), vec![]);
    let stats = running.control.service("big");
    assert!(
        within(Duration::from_secs(60), || stats.rows_copied.load(Relaxed)
            > 20_000)
        .await,
        "the copy did not start"
    );
    let errors = stats.errors.load(Relaxed);
    let started = Instant::now();
    proxy.black_hole_open(Duration::from_secs(120));
    assert!(
        within(Duration::from_secs(90), || stats.errors.load(Relaxed)
            > errors)
        .await,
        "the copy did not notice its dead connection within 90 s (last error: {:?})",
        stats.last_error()
    );
    eprintln!(
        "figures (source side: {source_side}): the copy noticed its dead flow after {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        stats.last_error()
    );
    let copied = stats.rows_copied.load(Relaxed);
    assert!(
        within(Duration::from_secs(60), || stats.rows_copied.load(Relaxed)
            > copied)
        .await,
        "the copy did not go on over a new connection while the old flow was dead"
    );
    wait_caught_up(&env, 0, "big", Duration::from_secs(180)).await;
    proxy.clear();
    running.stop().await.expect("clean stop");
    assert_identical(&env, "app", 0, "app", &["big"]).await;
}
