//! End-to-end cutover and rollback against real MariaDB servers, with eight
//! live writers changing the monolith throughout.

use crate::common::*;
use dropship_core::config::Config;
use dropship_core::cutover::{self, freeze, CutoverOptions, Outcome, RollbackOptions};
use dropship_sandbox::monolith::{self, LiveWriters, LiveWritersConfig};
use dropship_sandbox::ServerOptions;
use mysql_async::prelude::Queryable;
use std::time::Duration;

const TABLES: &[&str] = &["users", "user_sessions"];
const SVC: Svc<'static> = Svc {
    name: "accounts",
    target: 0,
    tables: &["shop.users", "shop.user_sessions"],
    rename: &[("shop", "accounts_db")],
};

/// Source and one target with the shop schema, seeded; the dropship source
/// user may create triggers and write back (rollback).
async fn setup(target_binlog: bool) -> Env {
    setup_pair(Pair::default_pair(), target_binlog).await
}

async fn setup_pair(pair: Pair, target_binlog: bool) -> Env {
    let env = start_pair(pair, 1, ServerOptions::source(), target_binlog).await;
    let mut src = env.source.conn().await.unwrap();
    exec_script(&mut src, &monolith::schema_sql()).await;
    monolith::seed(&mut src, 300, 100, 7).await.expect("seed");
    grant_cutover(&mut src, &["shop"]).await;
    env
}

fn writers(env: &Env, seed: u64) -> LiveWriters {
    LiveWriters::start(
        env.source.pool(),
        LiveWritersConfig {
            writers: 8,
            rate_per_sec: 400.0,
            seed,
        },
    )
}

async fn frozen_triggers(env: &Env) -> usize {
    let mut c = env.source.conn().await.unwrap();
    let mut n = 0;
    for t in TABLES {
        n += freeze::existing(&mut c, "shop", t).await.unwrap().len();
    }
    n
}

/// A write to a frozen table: `Ok` if it succeeded, else the server error.
async fn try_write(env: &Env) -> Result<(), (u16, String)> {
    let mut c = env.source.conn().await.unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        c.query_drop("UPDATE `shop`.`users` SET `balance` = `balance` + 1 WHERE `id` = 1"),
    )
    .await
    .expect("a write to a frozen table must not hang");
    match r {
        Ok(()) => Ok(()),
        Err(mysql_async::Error::Server(e)) => Err((e.code, e.message)),
        Err(e) => panic!("unexpected error {e}"),
    }
}

async fn state(env: &Env) -> String {
    let mut c = env.targets[0].conn().await.unwrap();
    c.query_first("SELECT state FROM `_dropship`.`service_state` WHERE service = 'accounts'")
        .await
        .unwrap()
        .unwrap_or_default()
}

fn opts(max_lag_s: u64, switch_cmd: Option<&str>) -> CutoverOptions {
    let mut o = CutoverOptions::new("accounts");
    o.max_lag = Duration::from_secs(max_lag_s);
    o.switch_cmd = switch_cmd.map(str::to_string);
    o
}

mod with_eight_live_writers_cutover_refuses_on_lag_aborts_on_a_failing_switch_cuts_over_streams_back_and_rolls_back_losing_nothing {
    use super::*;
    flavor_matrix!(scenario: all);
}

async fn scenario(pair: Pair) {
    let env = setup_pair(pair, true).await;
    let cfg: Config = env.config(&[SVC], "");
    let running = spawn_replicate(cfg.clone(), vec![]);
    let w = writers(&env, 100);
    wait_caught_up(&env, 0, "accounts", Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. Lag above --max-lag: refused, nothing frozen.
    running.control.set_paused("accounts", true);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rep = cutover::run(&cfg, opts(2, None))
        .await
        .expect("cutover runs");
    match &rep.outcome {
        Outcome::Refused(r) => assert!(r.contains("lags") || r.contains("not applying"), "{r}"),
        o => panic!("expected a refusal, got {o:?}"),
    }
    assert_eq!(
        frozen_triggers(&env).await,
        0,
        "a refused cutover creates no trigger"
    );
    try_write(&env)
        .await
        .expect("the source stays writable after a refusal");
    running.control.set_paused("accounts", false);
    wait_caught_up(&env, 0, "accounts", Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 2. Dry run: every check passes, nothing changes.
    let mut dry = opts(5, Some("true"));
    dry.dry_run = true;
    let rep = cutover::run(&cfg, dry).await.expect("dry run");
    assert_eq!(rep.outcome, Outcome::DryRunPassed, "{}", rep.render());
    assert_eq!(frozen_triggers(&env).await, 0);

    // 3. A failing switch command aborts: source writable, replication goes on.
    let acked = w.acknowledged();
    let rep = cutover::run(&cfg, opts(5, Some("echo switching; false")))
        .await
        .expect("cutover runs");
    assert!(
        matches!(rep.outcome, Outcome::Aborted(_)),
        "{}",
        rep.render()
    );
    assert_eq!(rep.exit_code(), 1);
    assert!(rep
        .switch_output
        .as_deref()
        .unwrap_or("")
        .contains("switching"));
    assert_eq!(
        frozen_triggers(&env).await,
        0,
        "abort drops the freeze triggers"
    );
    try_write(&env)
        .await
        .expect("the source is writable after the abort");
    assert_eq!(state(&env).await, "replicating");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(w.acknowledged() > acked, "writers go on after the abort");
    wait_caught_up(&env, 0, "accounts", Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 4. The cutover: writes fail fast naming the service; nothing acknowledged is missing.
    let env_file = env.dir.path().join("switch.env");
    let cmd = format!(
        "env | grep ^DROPSHIP_ | sort > '{}'; echo routed",
        env_file.display()
    );
    let rep = cutover::run(&cfg, opts(5, Some(&cmd)))
        .await
        .expect("cutover runs");
    println!("{}", rep.render());
    assert_eq!(rep.outcome, Outcome::CutOver, "{}", rep.render());
    assert!(rep.freeze.is_some());
    assert!(
        rep.steps.iter().any(|s| s.step == "reverse-start"
            && s.note
                .contains("reverse replication (target -> source) starts")),
        "{}",
        rep.render()
    );
    for step in [
        "freeze",
        "catch-up",
        "final-check",
        "switch",
        "mark-cut-over",
    ] {
        assert!(
            rep.steps.iter().any(|s| s.step == step),
            "step {step} reported"
        );
    }
    let (code, msg) = try_write(&env)
        .await
        .expect_err("writes to the frozen source fail");
    assert_eq!(code, 1644, "{msg}");
    assert!(
        msg.contains("frozen for the cutover of service accounts"),
        "{msg}"
    );
    let seen = std::fs::read_to_string(&env_file).unwrap();
    assert!(seen.contains("DROPSHIP_DIRECTION=forward"), "{seen}");
    assert!(seen.contains("DROPSHIP_SERVICE=accounts"), "{seen}");
    assert!(
        seen.contains("DROPSHIP_TARGET_DATABASES=accounts_db"),
        "{seen}"
    );
    assert!(
        seen.contains(&format!("DROPSHIP_TARGET_PORT={}", env.targets[0].port())),
        "{seen}"
    );
    let report = w.stop().await;
    assert!(report.failed > 0, "writers saw the freeze");
    assert!(report.acknowledged > 0);
    assert_identical(&env, "shop", 0, "accounts_db", TABLES).await;
    assert_eq!(state(&env).await, "cut-over");
    // The freeze triggers never reach the target.
    let mut t0 = env.targets[0].conn().await.unwrap();
    let n: Option<u64> = t0
        .query_first("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA NOT IN ('sys', 'mysql')")
        .await
        .unwrap();
    assert_eq!(n, Some(0), "no trigger on the target");
    // A second cutover is refused.
    let rep = cutover::run(&cfg, opts(5, None))
        .await
        .expect("cutover runs");
    assert!(matches!(rep.outcome, Outcome::Refused(_)));

    // 5. Writes on the target stream back to the (still frozen) source.
    exec(&mut t0, "INSERT INTO `accounts_db`.`users` (`email`, `name`, `country`, `status`, `balance`, `created_at`) VALUES ('after-cutover@example.com', 'New', 'DE', 'active', 1.50, NOW(6))").await;
    exec(
        &mut t0,
        "UPDATE `accounts_db`.`users` SET `name` = 'changed on the target' WHERE `id` = 2",
    )
    .await;
    exec(
        &mut t0,
        "DELETE FROM `accounts_db`.`user_sessions` ORDER BY `token` LIMIT 3",
    )
    .await;
    let mut s = env.source.conn().await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let name: Option<String> = s
            .query_first("SELECT `name` FROM `shop`.`users` WHERE `id` = 2")
            .await
            .unwrap();
        if name.as_deref() == Some("changed on the target") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "reverse replication did not bring the target's update to the source (source has {name:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_identical(&env, "shop", 0, "accounts_db", TABLES).await;
    try_write(&env).await.expect_err(
        "the source stays frozen for the application while reverse replication writes it",
    );
    let st = dropship_core::control::status::gather(&cfg).await;
    let rv = st
        .reverse
        .iter()
        .find(|r| r.service == "accounts")
        .expect("status shows reverse replication of the cut-over service");
    assert!(!rv.applied_position.is_empty(), "{rv:?}");
    assert!(!rv.target_position.is_empty(), "{rv:?}");
    // replicate restarts while the service is cut over: reverse replication
    // resumes from its committed position (the old forward position does not
    // hold the reader back).
    running.stop().await.expect("clean stop");
    exec(
        &mut t0,
        "UPDATE `accounts_db`.`users` SET `name` = 'while replicate was down' WHERE `id` = 3",
    )
    .await;
    let running = spawn_replicate(cfg.clone(), vec![]);
    // More target writes while the rollback begins: the rollback waits for them.
    for i in 0..20 {
        exec(&mut t0, &format!("INSERT INTO `accounts_db`.`users` (`email`, `name`, `country`, `status`, `balance`, `created_at`) VALUES ('late-{i}@example.com', 'Late', 'FR', 'active', {i}, NOW(6))")).await;
    }

    // 6. Rollback: waits for the reverse stream, switches back, forward replication runs again.
    let back_file = env.dir.path().join("back.env");
    let mut ro = RollbackOptions::new("accounts");
    ro.switch_cmd = Some(format!(
        "env | grep ^DROPSHIP_DIRECTION > '{}'",
        back_file.display()
    ));
    let rep = cutover::rollback(&cfg, ro).await.expect("rollback runs");
    println!("{}", rep.render());
    assert_eq!(rep.outcome, Outcome::RolledBack, "{}", rep.render());
    assert!(
        rep.steps.iter().any(|s| s.step == "reverse-catch-up"),
        "rollback waits for the reverse stream: {}",
        rep.render()
    );
    assert!(
        !rep.steps.iter().any(|s| s.step == "copy-back"),
        "no full copy-back with reverse replication: {}",
        rep.render()
    );
    let late: Option<u64> = s
        .query_first("SELECT COUNT(*) FROM `shop`.`users` WHERE `email` LIKE 'late-%'")
        .await
        .unwrap();
    assert_eq!(
        late,
        Some(20),
        "every target write before the rollback is on the source"
    );
    assert!(std::fs::read_to_string(&back_file)
        .unwrap()
        .contains("DROPSHIP_DIRECTION=back"));
    assert_eq!(frozen_triggers(&env).await, 0, "the source is unfrozen");
    let n: Option<u64> = t0
        .query_first("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA NOT IN ('sys', 'mysql')")
        .await
        .unwrap();
    assert_eq!(n, Some(0), "the target is unfrozen");
    assert_identical(&env, "shop", 0, "accounts_db", TABLES).await;
    let name: Option<String> = s
        .query_first("SELECT `name` FROM `shop`.`users` WHERE `id` = 2")
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("changed on the target"));
    let name: Option<String> = s
        .query_first("SELECT `name` FROM `shop`.`users` WHERE `id` = 3")
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("while replicate was down"));
    // Forward replication resumes from the copy-back position.
    let w = writers(&env, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = w.stop().await;
    assert!(
        report.acknowledged > 0,
        "the source takes writes again: {report:?}"
    );
    wait_caught_up(&env, 0, "accounts", Duration::from_secs(60)).await;
    assert_identical(&env, "shop", 0, "accounts_db", TABLES).await;
    assert_eq!(state(&env).await, "replicating");
    assert!(!running.is_finished(), "replicate keeps running");
    running.stop().await.expect("clean stop");
}

fn binary(config: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dropship"));
    c.arg("-c")
        .arg(config)
        .arg("--log-format")
        .arg("text")
        .args(args);
    c.env("DS_TEST_SOURCE_PW", SOURCE_PASSWORD)
        .env("DS_TEST_TARGET_PW", TARGET_PASSWORD);
    c
}

/// Starts `cutover` with a switch command that records its pid and sleeps,
/// waits until the switch runs, then kill -9s dropship and the command.
async fn cutover_killed_during_the_switch(env: &Env, config: &std::path::Path) {
    let pid_file = env.dir.path().join("switch.pid");
    let _ = std::fs::remove_file(&pid_file);
    let cmd = format!("echo $$ > '{}'; exec sleep 60", pid_file.display());
    let mut child = binary(
        config,
        &["cutover", "--service", "accounts", "--switch-cmd", &cmd],
    )
    .spawn()
    .expect("start dropship");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&pid_file)
        .map(|s| s.trim().is_empty())
        .unwrap_or(true)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the switch command never started"
        );
        if let Ok(Some(st)) = child.try_wait() {
            panic!("dropship cutover exited before the switch: {st}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().expect("kill -9 dropship");
    let _ = child.wait();
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.trim())
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_the_switch_then_abort_or_resume_loses_no_acknowledged_write_and_rollback_without_target_binlog_copies_back(
) {
    let env = setup(false).await;
    let cfg = env.config(&[SVC], "");
    let cfg_for_rollback = cfg.clone();
    let config = env.config_file(&[SVC], "", free_port());
    let running = spawn_replicate(cfg, vec![]);
    let w = writers(&env, 300);
    wait_caught_up(&env, 0, "accounts", Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Crash 1, then --abort.
    cutover_killed_during_the_switch(&env, &config).await;
    assert_eq!(
        frozen_triggers(&env).await,
        6,
        "the source is still frozen after the crash"
    );
    let out = binary(&config, &["cutover", "--service", "accounts"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unfinished journal is an error"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--resume") && stderr.contains("--abort"),
        "{stderr}"
    );
    let out = binary(&config, &["cutover", "--service", "accounts", "--abort"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "abort exits 1: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("aborted"), "{stdout}");
    assert_eq!(frozen_triggers(&env).await, 0);
    try_write(&env).await.expect("writable after --abort");
    assert_eq!(state(&env).await, "replicating");
    wait_caught_up(&env, 0, "accounts", Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Crash 2, then --resume.
    cutover_killed_during_the_switch(&env, &config).await;
    let out = binary(
        &config,
        &[
            "cutover",
            "--service",
            "accounts",
            "--resume",
            "--switch-cmd",
            "true",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "resume cuts over: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("freeze:"), "{stdout}");
    assert_eq!(state(&env).await, "cut-over");
    let mut t0 = env.targets[0].conn().await.unwrap();
    let note: Option<String> = t0
        .query_first("SELECT note FROM `_dropship`.`cutover_journal` WHERE step = 'reverse-start' ORDER BY run_id DESC LIMIT 1")
        .await
        .unwrap();
    let journal: Vec<(u64, String, String)> = t0
        .query("SELECT run_id, step, note FROM `_dropship`.`cutover_journal` ORDER BY run_id, seq")
        .await
        .unwrap();
    assert!(
        note.as_deref()
            .unwrap_or("")
            .starts_with("no reverse replication"),
        "the target binlog is off: the journal says there is no reverse replication: {note:?}\n{journal:?}"
    );
    let report = w.stop().await;
    assert!(report.acknowledged > 0);
    assert_identical(&env, "shop", 0, "accounts_db", TABLES).await;

    // Without the target's binlog, rollback copies the tables back in full.
    exec(
        &mut t0,
        "UPDATE `accounts_db`.`users` SET `name` = 'copied back' WHERE `id` = 3",
    )
    .await;
    let rep = cutover::rollback(&cfg_for_rollback, RollbackOptions::new("accounts"))
        .await
        .expect("rollback runs");
    assert_eq!(rep.outcome, Outcome::RolledBack, "{}", rep.render());
    assert!(
        rep.steps.iter().any(|s| s.step == "copy-back"),
        "{}",
        rep.render()
    );
    assert_identical(&env, "shop", 0, "accounts_db", TABLES).await;
    assert_eq!(state(&env).await, "replicating");
    try_write(&env)
        .await
        .expect("the source is writable after the rollback");
    wait_caught_up(&env, 0, "accounts", Duration::from_secs(60)).await;
    assert_identical(&env, "shop", 0, "accounts_db", TABLES).await;
    running.stop().await.expect("clean stop");
}

/// The step a killed run was in: (run kind, last step started, whether it finished).
async fn open_step(env: &Env) -> Option<(String, String, bool)> {
    let mut t = env.targets[0].conn().await.unwrap();
    t.query_first(
        "SELECT r.kind, j.step, j.finished_at IS NOT NULL FROM `_dropship`.`cutover_runs` r \
         JOIN `_dropship`.`cutover_journal` j ON j.run_id = r.id \
         WHERE r.status = 'open' ORDER BY j.seq DESC LIMIT 1",
    )
    .await
    .unwrap()
}

/// Runs the binary to completion (bounded), returning its exit code and output.
fn finish(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = binary(config, args).output().expect("run dropship");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `wait_caught_up`, printing replicate's log if it times out.
async fn caught_up_or_log(env: &Env, replicate: &Child) {
    let want = source_position(&env.source).await;
    let start = std::time::Instant::now();
    loop {
        if let Some(p) = target_position(&env.targets[0], "accounts").await {
            if p >= want {
                return;
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            panic!(
                "not caught up with {want} in 60 s; replicate log:\n{}",
                replicate.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the binary crashing (abort, as a kill -9) at `crash` (`kind:step[+]`).
fn crash_at(config: &std::path::Path, args: &[&str], crash: &str) -> (Option<i32>, String) {
    let out = binary(config, args)
        .env("DROPSHIP_CRASH_AT", crash)
        .output()
        .expect("run dropship");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_at_every_step_of_cutover_and_rollback_then_resume_or_abort_loses_nothing() {
    const CUTOVER: &[&str] = &[
        "freeze",
        "catch-up",
        "final-check",
        "reverse-start",
        "switch",
        "mark-cut-over",
        "switch+",
    ];
    const ROLLBACK: &[&str] = &[
        "freeze-target",
        "reverse-catch-up",
        "switch",
        "unfreeze-source",
        "unfreeze-target",
        "mark-replicating",
        "reverse-catch-up+",
    ];
    let env = setup(true).await;
    let config = env.config_file(&[SVC], "", free_port());
    let mut replicate = spawn_binary(&config, &["replicate"], "replicate.log");
    let w = writers(&env, 500);
    wait_caught_up(&env, 0, "accounts", Duration::from_secs(120)).await;
    let mut t0 = env.targets[0].conn().await.unwrap();
    let mut s = env.source.conn().await.unwrap();
    let cut = [
        "cutover",
        "--service",
        "accounts",
        "--max-lag",
        "30s",
        "--switch-cmd",
        "true",
    ];
    for (i, (c_step, r_step)) in CUTOVER.iter().zip(ROLLBACK).enumerate() {
        // Crash the cutover at this step; resume (even) or abort (odd).
        let crash = format!("cutover:{c_step}");
        let (code, out) = crash_at(&config, &cut, &crash);
        assert_eq!(
            code, None,
            "{crash}: the process must die by the signal: {out}"
        );
        let (kind, step, _) = open_step(&env)
            .await
            .expect("an open journal run after the crash");
        assert_eq!(
            (kind.as_str(), step.as_str()),
            ("cutover", c_step.trim_end_matches('+'))
        );
        let mut args = vec!["cutover", "--service", "accounts", "--switch-cmd", "true"];
        args.push(if i % 2 == 0 { "--resume" } else { "--abort" });
        let (code, out) = finish(&config, &args);
        if i % 2 == 0 {
            assert_eq!(code, 0, "{crash} then --resume: {out}");
            assert_eq!(state(&env).await, "cut-over", "{crash}: {out}");
        } else {
            assert_eq!(code, 1, "{crash} then --abort: {out}");
            assert_eq!(state(&env).await, "replicating", "{crash}: {out}");
            assert_eq!(frozen_triggers(&env).await, 0, "{crash}: --abort unfreezes");
            try_write(&env).await.expect("writable after --abort");
            caught_up_or_log(&env, &replicate).await;
            let (code, out) = finish(&config, &cut);
            assert_eq!(code, 0, "cutover after the abort: {out}");
        }
        // The application writes on the target; a rollback crashes at this step, then finishes.
        exec(
            &mut t0,
            &format!(
                "UPDATE `accounts_db`.`users` SET `name` = 'cycle {i}' WHERE `id` = {}",
                i + 1
            ),
        )
        .await;
        let crash = format!("rollback:{r_step}");
        let (code, out) = crash_at(
            &config,
            &["rollback", "--service", "accounts", "--switch-cmd", "true"],
            &crash,
        );
        assert_eq!(
            code, None,
            "{crash}: the process must die by the signal: {out}"
        );
        let (code, out) = finish(
            &config,
            &["rollback", "--service", "accounts", "--switch-cmd", "true"],
        );
        assert_eq!(code, 0, "{crash} then rollback again: {out}");
        assert_eq!(state(&env).await, "replicating", "{crash}");
        assert_eq!(
            frozen_triggers(&env).await,
            0,
            "{crash}: the source is writable"
        );
        let name: Option<String> = s
            .query_first(format!(
                "SELECT `name` FROM `shop`.`users` WHERE `id` = {}",
                i + 1
            ))
            .await
            .unwrap();
        assert_eq!(
            name,
            Some(format!("cycle {i}")),
            "{crash}: the target's write is on the source"
        );
        eprintln!("iteration {i}: {c_step} / {r_step} done");
        caught_up_or_log(&env, &replicate).await;
    }
    let report = w.stop().await;
    assert!(report.acknowledged > 0);
    wait_caught_up(&env, 0, "accounts", Duration::from_secs(60)).await;
    assert_identical(&env, "shop", 0, "accounts_db", TABLES).await;
    assert_eq!(
        replicate.terminate().await,
        Some(0),
        "{}",
        replicate.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_final_check_catches_every_kind_of_difference_and_aborts_leaving_the_source_writable() {
    let env = setup(true).await;
    let cfg: Config = env.config(&[SVC], "");
    let running = spawn_replicate(cfg.clone(), vec![]);
    let mut src = env.source.conn().await.unwrap();
    let mut t0 = env.targets[0].conn().await.unwrap();
    // Known values on both sides (through replication), then one change on the target only.
    for (setup_sql, target_change) in [
        (
            "UPDATE `shop`.`users` SET `name` = 'mixed Case' WHERE `id` = 5",
            "UPDATE `accounts_db`.`users` SET `name` = 'Mixed Case' WHERE `id` = 5",
        ),
        (
            "UPDATE `shop`.`users` SET `name` = 'trail' WHERE `id` = 5",
            "UPDATE `accounts_db`.`users` SET `name` = 'trail ' WHERE `id` = 5",
        ),
        (
            "UPDATE `shop`.`users` SET `created_at` = '2024-01-01 00:00:00.000001' WHERE `id` = 5",
            "UPDATE `accounts_db`.`users` SET `created_at` = '2024-01-01 00:00:00.000002' WHERE `id` = 5",
        ),
        (
            "UPDATE `shop`.`users` SET `name` = CASE `id` WHEN 6 THEN 'AAAA' ELSE 'BBBB' END WHERE `id` IN (6, 7)",
            "UPDATE `accounts_db`.`users` SET `name` = CASE `id` WHEN 6 THEN 'BBBB' ELSE 'AAAA' END WHERE `id` IN (6, 7)",
        ),
        (
            "INSERT INTO `shop`.`user_sessions` (`token`, `user_id`, `user_agent`, `ip`, `created_at`) VALUES (UNHEX(MD5('s1')), 1, NULL, NULL, NOW(6))",
            "UPDATE `accounts_db`.`user_sessions` SET `user_agent` = '' WHERE `token` = UNHEX(MD5('s1'))",
        ),
        (
            "INSERT INTO `shop`.`user_sessions` (`token`, `user_id`, `user_agent`, `ip`, `created_at`) VALUES (UNHEX(MD5('s2')), 2, 'agent', x'0a000001', NOW(6))",
            "DELETE FROM `accounts_db`.`user_sessions` WHERE `token` = UNHEX(MD5('s2'))",
        ),
        (
            "DO 0",
            "UPDATE `accounts_db`.`user_sessions` SET `ip` = x'0a00000100' WHERE `token` = UNHEX(MD5('s2'))",
        ),
    ] {
        exec(&mut src, setup_sql).await;
        wait_caught_up(&env, 0, "accounts", Duration::from_secs(60)).await;
        assert_identical(&env, "shop", 0, "accounts_db", TABLES).await;
        exec(&mut t0, target_change).await;
        assert_eq!(t0.affected_rows(), if target_change.contains("IN (6, 7)") { 2 } else { 1 }, "{target_change}");
        let rep = cutover::run(&cfg, opts(30, Some("true")))
            .await
            .expect("cutover runs");
        match &rep.outcome {
            Outcome::Aborted(r) => assert!(r.contains("final check"), "{target_change}: {r}"),
            o => panic!("{target_change}: the final check must abort the cutover, got {o:?}\n{}", rep.render()),
        }
        assert_eq!(frozen_triggers(&env).await, 0, "{target_change}: unfrozen");
        try_write(&env).await.expect("the source is writable after the abort");
        assert_eq!(state(&env).await, "replicating");
        // Put the target right again: copy the source's rows of both tables back.
        exec(&mut t0, "SET foreign_key_checks = 0").await;
        for t in TABLES {
            exec(&mut t0, &format!("DELETE FROM `accounts_db`.`{t}`")).await;
        }
        for t in TABLES {
            let rows: Vec<mysql_async::Row> = src
                .query(format!("SELECT * FROM `shop`.`{t}`"))
                .await
                .unwrap();
            for r in rows {
                let vals: Vec<mysql_async::Value> = r.unwrap();
                let ph = vec!["?"; vals.len()].join(", ");
                t0.exec_drop(
                    format!("INSERT INTO `accounts_db`.`{t}` VALUES ({ph})"),
                    mysql_async::Params::Positional(vals),
                )
                .await
                .unwrap();
            }
        }
        exec(&mut t0, "SET foreign_key_checks = 1").await;
        wait_caught_up(&env, 0, "accounts", Duration::from_secs(60)).await;
        assert_identical(&env, "shop", 0, "accounts_db", TABLES).await;
    }
    // And with the copies equal, the cutover goes through.
    let rep = cutover::run(&cfg, opts(30, Some("true")))
        .await
        .expect("cutover runs");
    assert_eq!(rep.outcome, Outcome::CutOver, "{}", rep.render());
    running.stop().await.expect("clean stop");
}
