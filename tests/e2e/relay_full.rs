//! A relay log with no room: at `[state] max_size`, or on a full file system. Reading the source pauses (lag
//! grows, `dropship_relay_full` reads 1, an ERROR names the cause), the services apply what is stored, nothing
//! is lost or corrupted, and reading resumes by itself once there is room. Each scenario ends with the targets
//! equal to the source, row for row.

use crate::common::*;
use dropship_core::control::http_get;
use dropship_sandbox::ServerOptions;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

const SERVICES: [Svc<'static>; 2] = [
    Svc {
        name: "alpha",
        target: 0,
        tables: &["app.blobs"],
        rename: &[],
    },
    Svc {
        name: "beta",
        target: 1,
        tables: &["app.other"],
        rename: &[],
    },
];

async fn schema(env: &Env) {
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE app").await;
    exec(
        &mut src,
        "CREATE TABLE app.blobs (id INT PRIMARY KEY, b LONGBLOB NOT NULL)",
    )
    .await;
    exec(
        &mut src,
        "CREATE TABLE app.other (id INT PRIMARY KEY, v INT)",
    )
    .await;
    exec(&mut src, "INSERT INTO app.other VALUES (1, 1)").await;
}

/// `n` transactions on the source, each one row of 1 MiB in app.blobs, ids from `first`.
async fn write_blobs(env: &Env, first: u32, n: u32) {
    let mut src = env.source.conn().await.unwrap();
    for id in first..first + n {
        exec(
            &mut src,
            &format!("INSERT INTO app.blobs VALUES ({id}, REPEAT(CHAR(65 + {id} % 26), 1048576))"),
        )
        .await;
    }
}

async fn blob_count(env: &Env, t: usize) -> u64 {
    let mut c = env.targets[t].conn().await.unwrap();
    use mysql_async::prelude::Queryable;
    c.query_first::<u64, _>("SELECT COUNT(*) FROM app.blobs")
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

mod at_its_max_size_the_relay_log_pauses_reading_while_the_services_drain_it_and_reading_resumes_by_itself {
    use super::*;
    flavor_matrix!(at_max_size: mysql_to_mysql, mariadb_to_mariadb);
}

async fn at_max_size(pair: Pair) {
    let env = start_pair(pair, 2, ServerOptions::source(), false).await;
    schema(&env).await;
    let text = env
        .config_text(&SERVICES, "")
        .replace("[state]\n", "[state]\nmax_size = \"16MiB\"\n");
    let run = spawn_replicate(parse_config(&text), vec![]);
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(60)).await;
    wait_caught_up(&env, 1, "beta", Duration::from_secs(60)).await;

    // beta stops applying (and acking): the relay log fills up to the cap.
    run.control.set_paused("beta", true);
    let st = run
        .wait_state("beta", "paused", Duration::from_secs(30))
        .await;
    assert_eq!(st.state, "paused");
    write_blobs(&env, 1, 40).await;
    let reader = run.control.reader.clone();
    let mut largest = 0;
    let full = {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            largest = largest.max(run.control.relay_size_bytes().unwrap_or(0));
            if reader.relay_full.load(Relaxed) == 1 || Instant::now() > deadline {
                break reader.relay_full.load(Relaxed) == 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(
        full,
        "the reader must pause at the cap (relay log at {largest} bytes)"
    );
    let paused_at = Instant::now();
    // Paused: alpha applies what is stored and then falls behind; the relay log stays at its cap.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let applied = blob_count(&env, 0).await;
    assert!(
        applied < 40,
        "reading is paused: alpha cannot have every row ({applied})"
    );
    assert!(
        applied > 0,
        "alpha applies what is stored while reading is paused"
    );
    largest = largest.max(run.control.relay_size_bytes().unwrap_or(0));
    // The cap, plus the segment being written (2 MiB) and the transaction that crossed it (1 MiB).
    assert!(
        largest <= (16 + 2 + 2) << 20,
        "the relay log must stay near its cap of 16 MiB: {largest} bytes"
    );
    assert_eq!(
        reader.relay_full.load(Relaxed),
        1,
        "still paused while beta holds it back"
    );
    assert!(!run.is_finished(), "a full relay log never stops replicate");

    let lag_while_paused = run.status_of("alpha").lag_seconds;
    // beta resumes: it drains, its acks free segments, and reading resumes by itself.
    run.control.set_paused("beta", false);
    let unpaused_at = Instant::now();
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(120)).await;
    eprintln!(
        "figures {pair:?}: relay log at most {:.1} MiB under a 16 MiB cap; paused {:.1} s with beta paused (alpha's lag then {lag_while_paused:?} s); alpha caught up {:.1} s after beta resumed",
        largest as f64 / 1048576.0,
        unpaused_at.duration_since(paused_at).as_secs_f64(),
        unpaused_at.elapsed().as_secs_f64()
    );
    wait_caught_up(&env, 1, "beta", Duration::from_secs(60)).await;
    // (A last short pause may still be ending: the reader looks again every second.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.relay_full.load(Relaxed) != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reader.relay_full.load(Relaxed), 0, "reading resumed");
    assert!(reader.errors_by_kind().get("relay").copied().unwrap_or(0) >= 1);
    run.stop().await.expect("replicate stops cleanly");
    assert_identical(&env, "app", 0, "app", &["blobs"]).await;
    assert_identical(&env, "app", 1, "app", &["other"]).await;
}

/// A tmpfs of `mib` MiB on `dir` (root only); `false` with a printed note where it cannot be mounted.
fn mount_tmpfs(dir: &Path, mib: u32) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("note: the full-disk test is skipped: cannot mount a tmpfs here (it needs root)");
    }
    ok
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}

/// Leaves `keep` bytes free on the file system of `dir` (a filler file).
fn leave_free(dir: &Path, keep: u64) -> std::path::PathBuf {
    let path = dir.join("filler");
    let free = free_bytes(dir);
    let f = std::fs::File::create(&path).unwrap();
    // Written, not sparse: tmpfs counts what is written.
    let chunk = vec![1u8; 1 << 20];
    let mut left = free.saturating_sub(keep);
    use std::io::Write;
    let mut w = std::io::BufWriter::new(f);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    w.flush().unwrap();
    path
}

mod a_full_state_dir_pauses_reading_with_an_error_naming_it_and_reading_resumes_when_space_returns {
    use super::*;
    flavor_matrix!(disk_full: mysql_to_mysql, mariadb_to_mariadb);
}

async fn disk_full(pair: Pair) {
    let env = start_pair(pair, 2, ServerOptions::source(), false).await;
    let fs = env.dir.path().join("statefs");
    if !mount_tmpfs(&fs, 160) {
        return;
    }
    let _unmount = Unmount(&fs);
    schema(&env).await;
    let state = fs.join("state");
    let port = free_port();
    let text = std::fs::read_to_string(env.config_file(&SERVICES, "", port))
        .unwrap()
        .replace(
            &env.dir.path().join("state").display().to_string(),
            &state.display().to_string(),
        );
    let config = env.dir.path().join("full.toml");
    std::fs::write(&config, text).unwrap();
    let mut child = spawn_binary(&config, &["-v", "replicate"], "replicate.log");
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(60)).await;
    let listen = format!("127.0.0.1:{port}");
    let relay_full = || async {
        let (_, body) = http_get(&listen, "/metrics").await.unwrap_or_default();
        body.lines()
            .find_map(|l| l.strip_prefix("dropship_relay_full "))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(relay_full().await.as_deref(), Some("0"));

    // 40 MiB free; reading pauses below 16 MiB free and resumes at 32 MiB.
    let filler = leave_free(&fs, 40 << 20);
    // (1) Three 10 MiB transactions: the third leaves too little room, reading pauses; the services apply what
    // is stored, the drained segment is deleted, and reading resumes by itself.
    let mut src = env.source.conn().await.unwrap();
    for t in 0..3u32 {
        exec(&mut src, "BEGIN").await;
        for i in 0..10 {
            let id = 1000 + t * 10 + i;
            exec(
                &mut src,
                &format!("INSERT INTO app.blobs VALUES ({id}, REPEAT('t', 1048576))"),
            )
            .await;
        }
        exec(&mut src, "COMMIT").await;
    }
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(120)).await;
    wait_caught_up(&env, 1, "beta", Duration::from_secs(60)).await;
    assert!(
        child.log_text().contains("has no room"),
        "the pause is logged: {}",
        child.log_text()
    );
    assert_eq!(blob_count(&env, 0).await, 30);

    // (2) One 50 MiB transaction, more than the disk has: the write fails half-way (ENOSPC), reading pauses
    // with an ERROR naming the dir, replicate keeps running, and nothing of it is applied.
    exec(&mut src, "BEGIN").await;
    for i in 0..50u32 {
        exec(
            &mut src,
            &format!(
                "INSERT INTO app.blobs VALUES ({}, REPEAT('h', 1048576))",
                2000 + i
            ),
        )
        .await;
    }
    exec(&mut src, "COMMIT").await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while relay_full().await.as_deref() != Some("1") {
        assert!(
            Instant::now() < deadline,
            "the reader must pause on the full disk: {}",
            child.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(relay_full().await.as_deref(), Some("1"), "still no room");
    assert!(
        child.child.try_wait().unwrap().is_none(),
        "a full disk never stops replicate"
    );
    assert_eq!(
        blob_count(&env, 0).await,
        30,
        "nothing of the unfinished transaction is applied"
    );
    let log = child.log_text();
    assert!(
        log.contains(&state.join("relay").display().to_string()) && log.contains("is full"),
        "the ERROR names the dir: {log}"
    );
    // Space returns: reading resumes by itself, from the last transaction boundary.
    std::fs::remove_file(&filler).unwrap();
    let freed_at = Instant::now();
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(180)).await;
    eprintln!(
        "figures {pair:?}: the 50 MiB transaction applied {:.1} s after the disk had room again",
        freed_at.elapsed().as_secs_f64()
    );
    assert_eq!(relay_full().await.as_deref(), Some("0"));
    assert_eq!(blob_count(&env, 0).await, 80);
    assert_eq!(child.terminate().await, Some(0), "{}", child.log_text());
    assert_identical(&env, "app", 0, "app", &["blobs"]).await;
    assert_identical(&env, "app", 1, "app", &["other"]).await;
}
