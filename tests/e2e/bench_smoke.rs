//! The benchmark runner in smoke mode (tiny sizes): it must complete against real servers and print a table
//! with every comparison's row. No timing is asserted (figures from a shared machine mean nothing here); the
//! comparisons whose tools are absent (mydumper, percona-toolkit) must still produce their row, saying so, in
//! both the MariaDB and the MySQL section.

use std::process::Command;

#[test]
fn the_benchmark_runner_in_smoke_mode_completes_and_prints_every_comparison() {
    let dir = tempfile::Builder::new()
        .prefix("ds-bsmoke")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let out = dir.path().join("bench.md");
    let res = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--smoke",
            "--runs",
            "1",
            "--dropship",
            env!("CARGO_BIN_EXE_dropship"),
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("run the bench binary");
    let stdout = String::from_utf8_lossy(&res.stdout);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(
        res.status.success(),
        "bench --smoke failed ({}):\n{stdout}\n{stderr}",
        res.status
    );
    let md = std::fs::read_to_string(&out).expect("the runner writes its report");
    // One section per server flavor, in the same run, each with every comparison's row.
    for flavor in ["MariaDB", "MySQL"] {
        let head = format!("\n## {flavor} ");
        let start = md
            .find(&head)
            .unwrap_or_else(|| panic!("report lacks the {flavor} section:\n{md}"));
        let rest = &md[start + 1..];
        let section = &rest[..rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3)];
        for row in [
            "| binlog decode",
            "| apply rate",
            "| steady lag p99",
            "| initial copy of a 5000-row table",
            "| verify (",
            "| cutover + rollback freeze, 8 writers",
            "| peak RSS replicating one 8 MiB transaction",
        ] {
            assert!(
                section.contains(row),
                "the {flavor} section lacks the row {row:?}:\n{section}"
            );
        }
    }
    assert!(
        md.contains("replica_parallel_workers=4") && md.contains("replica_parallel_workers=1"),
        "the MySQL apply rows compare with 4 and 1 workers:\n{md}"
    );
    assert!(
        md.contains("## Machine"),
        "report lacks the machine section:\n{md}"
    );
}
