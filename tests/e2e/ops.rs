//! Operations against real servers: metrics scraped over HTTP, lag with a
//! heartbeat, pause/resume with a token, throttling, giving up on a stopped
//! target, `dropship status` from another process, and logs that never show
//! a password.

use crate::common::*;
use dropship_core::config::Config;
use dropship_core::control::http_get;
use dropship_core::control::{self, Control};
use dropship_core::run::replicate;
use dropship_sandbox::ServerOptions;
use mysql_async::prelude::Queryable;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "tok-123-ops";

async fn http_post(addr: &str, path: &str, token: Option<&str>) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect control");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The value of one sample (`name{labels}`) in Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

async fn scrape(addr: &str) -> String {
    let (code, body) = http_get(addr, "/metrics").await.expect("GET /metrics");
    assert_eq!(code, 200);
    body
}

async fn wait_for<F: Fn() -> bool>(what: &str, timeout: Duration, f: F) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn status_of(c: &Control, service: &str) -> dropship_core::control::ServiceStatus {
    c.status()
        .into_iter()
        .find(|s| s.service == service)
        .expect("service in status")
}

async fn count(t: &dropship_sandbox::MariaDb, table: &str) -> u64 {
    let mut c = t.conn().await.expect("target conn");
    let n: Option<u64> = c
        .query_first(format!("SELECT COUNT(*) FROM {table}"))
        .await
        .expect("count");
    let _ = c.disconnect().await;
    n.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_lag_pause_throttle_and_give_up_follow_a_real_run() {
    let mut env = start_env(2, ServerOptions::source()).await;
    let mut src = env.source.conn().await.unwrap();
    for sql in [
        "CREATE DATABASE ops",
        "CREATE TABLE ops.items (id INT PRIMARY KEY, v INT NOT NULL)",
        "CREATE TABLE ops.other (id INT PRIMARY KEY, v INT NOT NULL)",
        "CREATE TABLE ops.throttle (id INT PRIMARY KEY, v INT NOT NULL)",
        "INSERT INTO ops.throttle VALUES (1, 0)",
        "GRANT CREATE, INSERT, UPDATE ON _dropship_heartbeat.* TO 'repl'@'%'",
    ] {
        exec(&mut src, sql).await;
    }
    let services = [
        Svc {
            name: "items",
            target: 0,
            tables: &["ops.items"],
            rename: &[],
        },
        Svc {
            name: "other",
            target: 1,
            tables: &["ops.other"],
            rename: &[],
        },
    ];
    let text = env
        .config_text(&services, &format!("token = \"{TOKEN}\"\n[replicate]\ngive_up_after = \"3s\"\nthrottle_query = \"SELECT v FROM ops.throttle WHERE id = 1\"\n"))
        .replace("server_id = 4242\n", "server_id = 4242\nheartbeat = true\n");
    let cfg = Config::parse("ops.toml", &text, &|k| match k {
        "DS_TEST_SOURCE_PW" => Some(SOURCE_PASSWORD.into()),
        "DS_TEST_TARGET_PW" => Some(TARGET_PASSWORD.into()),
        _ => None,
    })
    .expect("config");
    assert!(cfg.heartbeat);
    let ctl = Arc::new(Control::new(
        cfg.control.token.clone(),
        Duration::from_secs(30),
    ));
    let addr: SocketAddr = control::start(ctl.clone(), "127.0.0.1:0")
        .await
        .expect("control listens");
    let addr = addr.to_string();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let c2 = ctl.clone();
    let task = tokio::spawn(async move {
        replicate::run(Arc::new(cfg), replicate::Options::default(), c2, rx).await
    });
    wait_for("both services replicating", Duration::from_secs(60), || {
        ctl.status().len() == 2 && ctl.status().iter().all(|s| s.state == "replicating")
    })
    .await;

    // A deterministic workload: 10 transactions of 10 inserts, one update of
    // 30 rows, one delete of 20 rows; 5 inserts on the other service.
    for t in 0..10 {
        let values: Vec<String> = (1..=10).map(|i| format!("({}, {i})", t * 10 + i)).collect();
        exec(
            &mut src,
            &format!("INSERT INTO ops.items VALUES {}", values.join(",")),
        )
        .await;
    }
    exec(&mut src, "UPDATE ops.items SET v = v + 1000 WHERE id <= 30").await;
    exec(&mut src, "DELETE FROM ops.items WHERE id > 80").await;
    exec(
        &mut src,
        "INSERT INTO ops.other VALUES (1,1),(2,2),(3,3),(4,4),(5,5)",
    )
    .await;
    wait_caught_up(&env, 0, "items", Duration::from_secs(60)).await;
    wait_caught_up(&env, 1, "other", Duration::from_secs(60)).await;

    let m = scrape(&addr).await;
    assert_eq!(
        sample(
            &m,
            "dropship_rows_applied_total{service=\"items\",op=\"insert\"}"
        ),
        Some(100.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "dropship_rows_applied_total{service=\"items\",op=\"update\"}"
        ),
        Some(30.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "dropship_rows_applied_total{service=\"items\",op=\"delete\"}"
        ),
        Some(20.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "dropship_rows_applied_total{service=\"other\",op=\"insert\"}"
        ),
        Some(5.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "dropship_transactions_applied_total{service=\"items\"}"),
        Some(12.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "dropship_transactions_applied_total{service=\"other\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "dropship_batch_rows_sum{service=\"items\"}"),
        Some(150.0),
        "{m}"
    );
    assert!(
        sample(&m, "dropship_batch_rows_count{service=\"items\"}").unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "dropship_batch_rows_bucket{service=\"items\",le=\"+Inf\"}"
        ),
        sample(&m, "dropship_batch_rows_count{service=\"items\"}")
    );
    assert!(
        sample(&m, "dropship_binlog_read_bytes_total").unwrap_or(0.0) > 0.0,
        "{m}"
    );
    assert!(
        sample(&m, "dropship_binlog_events_total").unwrap_or(0.0) > 0.0,
        "{m}"
    );
    assert!(
        sample(&m, "dropship_relay_log_bytes").unwrap_or(0.0) > 0.0,
        "{m}"
    );
    assert!(
        sample(&m, "dropship_relay_backlog_records{service=\"items\"}").is_some(),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "dropship_service_state{service=\"items\",state=\"replicating\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "dropship_copy_rows_total{service=\"items\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(count(&env.targets[0], "ops.items").await, 80);

    // Idle source: the heartbeat keeps lag exact and small; it is read as
    // progress and never reaches a target.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = scrape(&addr).await;
    assert!(
        sample(&m, "dropship_heartbeats_written_total").unwrap_or(0.0) >= 2.0,
        "{m}"
    );
    assert!(
        sample(&m, "dropship_heartbeats_read_total").unwrap_or(0.0) >= 2.0,
        "{m}"
    );
    let lag = status_of(&ctl, "items").lag_seconds.expect("lag known");
    assert!(lag <= 5, "lag while idle with a heartbeat: {lag}");
    let mut t0 = env.targets[0].conn().await.unwrap();
    let hb: Option<u64> = t0.query_first("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '_dropship_heartbeat'").await.unwrap();
    assert_eq!(hb, Some(0));
    drop(t0);

    // Pause and resume need the token.
    assert_eq!(http_post(&addr, "/services/items/pause", None).await, 401);
    assert_eq!(
        http_post(&addr, "/services/items/pause", Some("wrong")).await,
        401
    );
    assert_eq!(status_of(&ctl, "items").state, "replicating");
    assert_eq!(
        http_post(&addr, "/services/items/pause", Some(TOKEN)).await,
        200
    );
    wait_for("items paused", Duration::from_secs(20), || {
        status_of(&ctl, "items").state == "paused"
    })
    .await;
    exec(&mut src, "INSERT INTO ops.items VALUES (101, 1),(102, 2)").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&env.targets[0], "ops.items").await,
        80,
        "a paused service applies nothing"
    );
    assert_eq!(
        http_post(&addr, "/services/items/resume", Some(TOKEN)).await,
        200
    );
    wait_caught_up(&env, 0, "items", Duration::from_secs(60)).await;
    assert_eq!(count(&env.targets[0], "ops.items").await, 82);

    // The throttle query holds copy and apply back until it returns 0.
    exec(&mut src, "UPDATE ops.throttle SET v = 1 WHERE id = 1").await;
    wait_for("items throttled", Duration::from_secs(20), || {
        !status_of(&ctl, "items").throttled.is_empty()
    })
    .await;
    exec(&mut src, "INSERT INTO ops.items VALUES (103, 3)").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&env.targets[0], "ops.items").await,
        82,
        "a throttled service applies nothing"
    );
    assert_eq!(
        sample(
            &scrape(&addr).await,
            "dropship_throttled{service=\"items\"}"
        ),
        Some(1.0)
    );
    exec(&mut src, "UPDATE ops.throttle SET v = 0 WHERE id = 1").await;
    wait_caught_up(&env, 0, "items", Duration::from_secs(60)).await;
    assert_eq!(count(&env.targets[0], "ops.items").await, 83);
    assert!(status_of(&ctl, "items").throttled.is_empty());

    // Target of `items` stops: lag rises, the other service goes on, and
    // after give_up_after (3s) the service stops retrying with state error.
    env.targets[0].stop().await.expect("stop target 0");
    exec(&mut src, "INSERT INTO ops.items VALUES (104, 4)").await;
    exec(&mut src, "INSERT INTO ops.other VALUES (6, 6)").await;
    // While it retries the state is already `error`; giving up says so in last_error.
    wait_for("items gives up", Duration::from_secs(90), || {
        status_of(&ctl, "items")
            .last_error
            .contains("stopped retrying")
    })
    .await;
    assert_eq!(status_of(&ctl, "items").state, "error");
    let st = status_of(&ctl, "items");
    assert!(
        st.last_error.contains("stopped retrying"),
        "{}",
        st.last_error
    );
    assert!(!st.last_error.contains(TARGET_PASSWORD));
    wait_for("lag of items rises", Duration::from_secs(30), || {
        status_of(&ctl, "items").lag_seconds.is_some_and(|l| l >= 6)
    })
    .await;
    wait_caught_up(&env, 1, "other", Duration::from_secs(60)).await;
    let other_lag = status_of(&ctl, "other").lag_seconds.expect("other lag");
    assert!(
        other_lag < status_of(&ctl, "items").lag_seconds.unwrap_or(0),
        "a stopped target delays only its own service"
    );
    let m = scrape(&addr).await;
    let errors = sample(
        &m,
        "dropship_errors_total{service=\"items\",kind=\"transient\"}",
    )
    .unwrap_or(0.0);
    assert!(errors >= 1.0, "{m}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = scrape(&addr).await;
    assert_eq!(
        sample(
            &m,
            "dropship_errors_total{service=\"items\",kind=\"transient\"}"
        ),
        Some(errors),
        "no retries after giving up"
    );
    assert_eq!(
        sample(
            &m,
            "dropship_service_state{service=\"items\",state=\"error\"}"
        ),
        Some(1.0)
    );

    // The target returns; a human resumes; lag falls.
    env.targets[0].restart().await.expect("restart target 0");
    assert_eq!(
        status_of(&ctl, "items").state,
        "error",
        "giving up holds until a human resumes"
    );
    assert_eq!(
        http_post(&addr, "/services/items/resume", Some(TOKEN)).await,
        200
    );
    wait_caught_up(&env, 0, "items", Duration::from_secs(60)).await;
    wait_for("lag of items falls", Duration::from_secs(30), || {
        status_of(&ctl, "items").lag_seconds.is_some_and(|l| l <= 3)
    })
    .await;
    assert_eq!(status_of(&ctl, "items").state, "replicating");

    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("stops")
        .expect("task")
        .expect("clean stop");
    assert_identical(&env, "ops", 0, "ops", &["items"]).await;
    assert_identical(&env, "ops", 1, "ops", &["other"]).await;
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dropship"))
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cfg: &std::path::Path, envs: &[(&str, &str)], args: &[&str]) -> Out {
    let o = bin()
        .arg("-c")
        .arg(cfg)
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("DROPSHIP_LOG")
        .output()
        .expect("run dropship");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

async fn status_json(cfg: &std::path::Path, envs: &[(&str, &str)]) -> serde_json::Value {
    let cfg = cfg.to_path_buf();
    let envs: Vec<(String, String)> = envs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let o = tokio::task::spawn_blocking(move || {
        let e: Vec<(&str, &str)> = envs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        run(&cfg, &e, &["status", "--json"])
    })
    .await
    .unwrap();
    serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {} {}", o.stdout, o.stderr))
}

/// Starts `dropship replicate`, stderr to `log`.
fn spawn_replicate_bin(
    cfg: &std::path::Path,
    envs: &[(&str, &str)],
    log: &std::path::Path,
    extra: &[&str],
) -> std::process::Child {
    let f = std::fs::File::create(log).unwrap();
    bin()
        .args(extra)
        .arg("-c")
        .arg(cfg)
        .arg("replicate")
        .envs(envs.iter().copied())
        .env_remove("DROPSHIP_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::from(f))
        .spawn()
        .expect("spawn replicate")
}

async fn sigterm(child: &mut std::process::Child) -> i32 {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s.code().unwrap_or(-1);
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("replicate did not stop within 60 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

mod status_and_logs_of_the_real_binary_say_what_runs_and_never_show_passwords {
    use super::*;
    flavor_matrix!(status_and_logs: mysql_to_mysql, mariadb_to_mariadb);
}

async fn status_and_logs(pair: Pair) {
    let env = start_pair(pair, 1, ServerOptions::source(), true).await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE ops").await;
    exec(
        &mut src,
        "CREATE TABLE ops.t (id INT PRIMARY KEY, v VARCHAR(20))",
    )
    .await;
    exec(&mut src, "INSERT INTO ops.t VALUES (1,'a'),(2,'b'),(3,'c')").await;
    let port = free_port();
    let cfg = env.config_file(
        &[Svc {
            name: "items",
            target: 0,
            tables: &["ops.t"],
            rename: &[],
        }],
        "",
        port,
    );
    let env_token = "tok-env-55x";
    let good: Vec<(&str, &str)> = vec![
        ("DS_TEST_SOURCE_PW", SOURCE_PASSWORD),
        ("DS_TEST_TARGET_PW", TARGET_PASSWORD),
        ("DROPSHIP_CONTROL_TOKEN", env_token),
    ];
    let wrong_pw = "wrong-pass-Kj3";
    let mut transcripts = Vec::new();

    // Nothing runs yet: status says so, exit 0 (everything reachable).
    let o = run(&cfg, &good, &["status"]);
    assert_eq!(o.code, 0, "{} {}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("replicate is NOT running"),
        "{}",
        o.stdout
    );
    transcripts.push(o.stdout + &o.stderr);
    assert_eq!(status_json(&cfg, &good).await["replicate_running"], false);

    // Text logs put fields before the message.
    let text_log = env.dir.path().join("replicate-text.log");
    let mut child = spawn_replicate_bin(&cfg, &good, &text_log, &["--log-format", "text"]);
    let start = Instant::now();
    loop {
        let v = status_json(&cfg, &good).await;
        if v["replicate_running"] == true && v["services"][0]["state"] == "replicating" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "replicate did not come up: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(sigterm(&mut child).await, 0, "clean stop on SIGTERM");
    let text = std::fs::read_to_string(&text_log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("copy starts"))
        .unwrap_or_else(|| panic!("no copy start line in {text}"));
    let (f, m) = (
        line.find("service=items").expect("service field"),
        line.find("new service").expect("message"),
    );
    assert!(f < m, "fields before the message: {line}");
    assert!(line.contains(" INFO "), "{line}");
    transcripts.push(text);

    // JSON logs (not a terminal), status from another process while it runs.
    let json_log = env.dir.path().join("replicate-json.log");
    let mut child = spawn_replicate_bin(&cfg, &good, &json_log, &[]);
    let start = Instant::now();
    loop {
        let v = status_json(&cfg, &good).await;
        if v["replicate_running"] == true && v["services"][0]["state"] == "replicating" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "replicate did not come up: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    exec(&mut src, "INSERT INTO ops.t VALUES (4,'d'),(5,'e')").await;
    wait_caught_up(&env, 0, "items", Duration::from_secs(60)).await;
    let v = status_json(&cfg, &good).await;
    let s = &v["services"][0];
    assert_eq!(s["state"], "replicating", "{v}");
    assert_eq!(s["rows_copied"], 3, "{v}");
    assert_eq!(s["rows_applied"], 2, "{v}");
    assert!(s["lag_seconds"].as_i64().is_some(), "{v}");
    assert!(
        !s["applied_position"].as_str().unwrap_or("").is_empty(),
        "{v}"
    );
    assert!(
        !s["source_position"].as_str().unwrap_or("").is_empty(),
        "{v}"
    );
    // The token from DROPSHIP_CONTROL_TOKEN protects the control endpoint.
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(http_post(&addr, "/services/items/pause", None).await, 401);
    assert_eq!(
        http_post(&addr, "/services/items/pause", Some(env_token)).await,
        200
    );
    assert_eq!(
        http_post(&addr, "/services/items/resume", Some(env_token)).await,
        200
    );
    let o = run(&cfg, &good, &["status"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("replicate is running"), "{}", o.stdout);
    transcripts.push(o.stdout + &o.stderr);
    assert_eq!(sigterm(&mut child).await, 0, "clean stop on SIGTERM");
    let json = std::fs::read_to_string(&json_log).unwrap();
    let mut saw_service_field = false;
    for l in json.lines().filter(|l| !l.trim().is_empty()) {
        let j: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"));
        assert!(j["level"].is_string() && j["message"].is_string(), "{l}");
        saw_service_field |= j["service"].is_string();
    }
    assert!(
        saw_service_field,
        "fields are flattened into the JSON object: {json}"
    );
    transcripts.push(json);

    // After the stop: status says it is not running and shows what the target recorded.
    let o = run(&cfg, &good, &["status"]);
    assert_eq!(o.code, 0, "{} {}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("replicate is NOT running") && o.stdout.contains("replicating"),
        "{}",
        o.stdout
    );
    transcripts.push(o.stdout + &o.stderr);

    // Wrong passwords: errors, exit 2, and no password anywhere.
    let bad_target: Vec<(&str, &str)> = vec![
        ("DS_TEST_SOURCE_PW", SOURCE_PASSWORD),
        ("DS_TEST_TARGET_PW", wrong_pw),
        ("DROPSHIP_CONTROL_TOKEN", env_token),
    ];
    let o = run(&cfg, &bad_target, &["status"]);
    assert_eq!(
        o.code, 2,
        "status exits 2 when it cannot reach a target: {} {}",
        o.stdout, o.stderr
    );
    assert!(
        o.stderr
            .contains("cannot reach the target of service items"),
        "{}",
        o.stderr
    );
    transcripts.push(o.stdout + &o.stderr);
    let o = run(&cfg, &bad_target, &["replicate"]);
    assert_ne!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("denied") || o.stderr.contains("1045"),
        "{}",
        o.stderr
    );
    transcripts.push(o.stdout + &o.stderr);
    let bad_source: Vec<(&str, &str)> = vec![
        ("DS_TEST_SOURCE_PW", wrong_pw),
        ("DS_TEST_TARGET_PW", TARGET_PASSWORD),
    ];
    let o = run(&cfg, &bad_source, &["replicate"]);
    assert_ne!(o.code, 0, "{}", o.stderr);
    transcripts.push(o.stdout + &o.stderr);
    let o = run(&cfg, &bad_source, &["status"]);
    assert_eq!(o.code, 2, "{} {}", o.stdout, o.stderr);
    transcripts.push(o.stdout + &o.stderr);

    for t in &transcripts {
        for secret in [SOURCE_PASSWORD, TARGET_PASSWORD, wrong_pw, env_token] {
            assert!(!t.contains(secret), "a secret reached the output:\n{t}");
        }
    }
}

#[test]
fn the_grafana_dashboard_is_valid_json_and_uses_only_exported_metrics() {
    let text = include_str!("../../grafana/dropship.json");
    let d: serde_json::Value = serde_json::from_str(text).expect("grafana/dropship.json is JSON");
    let panels = d["panels"].as_array().expect("panels");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for want in ["Lag", "Apply rate", "Relay backlog", "Errors"] {
        assert!(
            titles.iter().any(|t| t.starts_with(want)),
            "no {want} panel in {titles:?}"
        );
    }
    let source = include_str!("../../crates/core/src/control/metrics.rs");
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            for (i, _) in expr.match_indices("dropship_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .fold(name.clone(), |n, s| {
                        n.strip_suffix(s).map(str::to_string).unwrap_or(n)
                    });
                assert!(
                    source.contains(&format!("\"{base}\"")),
                    "dashboard uses {name}, which control/metrics.rs does not export"
                );
            }
        }
    }
}
