//! The switch command: `sh -c CMD` with `DROPSHIP_SERVICE`,
//! `DROPSHIP_TARGET_HOST`, `DROPSHIP_TARGET_PORT`, `DROPSHIP_TARGET_DATABASES`
//! (comma-separated target database names, after renames) and
//! `DROPSHIP_DIRECTION` (`forward` or `back`) in its environment.
//!
//! Contract for the command: exit 0 when traffic now goes the new way; a
//! non-zero exit must leave routing as it was (the cutover then aborts and
//! unfreezes the source). It may be run again after a crash (`--resume`
//! re-runs a switch that started but did not record its end), so it must be
//! idempotent. It gets [`TIMEOUT`] to finish; after that it is killed and
//! counts as failed.

use crate::config::ServiceConfig;
use crate::error::{Error, Result};
use std::process::Stdio;
use std::time::Duration;

/// How long a switch command may run.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Which way the switch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Back,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Back => "back",
        }
    }
}

/// What the command did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub success: bool,
    pub code: Option<i32>,
    /// stdout then stderr, as text.
    pub output: String,
}

/// The environment the command sees.
pub fn environment(svc: &ServiceConfig, direction: Direction) -> Vec<(String, String)> {
    let dbs: Vec<String> = svc
        .source_databases()
        .iter()
        .map(|d| svc.target_database(d).to_string())
        .collect();
    vec![
        ("DROPSHIP_SERVICE".into(), svc.name.clone()),
        ("DROPSHIP_TARGET_HOST".into(), svc.target.host.clone()),
        ("DROPSHIP_TARGET_PORT".into(), svc.target.port.to_string()),
        ("DROPSHIP_TARGET_DATABASES".into(), dbs.join(",")),
        ("DROPSHIP_DIRECTION".into(), direction.as_str().into()),
    ]
}

/// Runs the command and waits for it (at most [`TIMEOUT`]).
pub async fn run(cmd: &str, svc: &ServiceConfig, direction: Direction) -> Result<Outcome> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(environment(svc, direction))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::io("starting the switch command with sh -c"))?;
    match tokio::time::timeout(TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            Ok(Outcome {
                success: out.status.success(),
                code: out.status.code(),
                output,
            })
        }
        Ok(Err(e)) => Err(Error::Io {
            what: "waiting for the switch command".into(),
            source: e,
        }),
        Err(_) => Ok(Outcome {
            success: false,
            code: None,
            output: format!("(killed after {TIMEOUT:?})"),
        }),
    }
}

/// Checks for `--dry-run`: the command parses (`sh -n`) and its first word
/// is a command `sh` can find. Returns the problems.
pub async fn check(cmd: &str) -> Vec<String> {
    let mut problems = Vec::new();
    match tokio::process::Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .await
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => problems.push(format!(
            "the switch command does not parse: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => problems.push(format!("cannot run sh: {e}")),
    }
    let first = cmd.split_whitespace().find(|w| !w.contains('='));
    if let Some(word) = first {
        if word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
        {
            let found = tokio::process::Command::new("sh")
                .arg("-c")
                .arg("command -v -- \"$1\" >/dev/null")
                .arg("sh")
                .arg(word)
                .stdin(Stdio::null())
                .status()
                .await
                .map(|s| s.success())
                .unwrap_or(false);
            if !found {
                problems.push(format!(
                    "the switch command's program {word:?} is not found (PATH={})",
                    std::env::var("PATH").unwrap_or_default()
                ));
            }
        }
    }
    problems
}
