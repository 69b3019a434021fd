//! End-to-end replication against real MariaDB servers.

mod common;

use common::*;
use dropship_sandbox::workload::{self, Workload};
use dropship_sandbox::ServerOptions;
use std::time::Duration;

mod random_workload_of_every_type_replicates_to_two_services_with_a_database_rename {
    use super::*;
    flavor_matrix!(scenario: all);
}

async fn scenario(pair: Pair) {
    let env = start_pair(pair, 2, ServerOptions::source(), true).await;
    let mut src = env.source.conn().await.unwrap();
    for stmt in workload::schema_sql("app")
        .split(";\n")
        .filter(|s| !s.trim().is_empty())
    {
        exec(&mut src, stmt).await;
    }
    let wl = Workload::new("app");
    // Rows that exist before replicate starts are copied.
    wl.run(&mut src, 60, 1)
        .await
        .expect("workload before replicate");
    let services = [
        Svc {
            name: "alpha",
            target: 0,
            tables: &["app.all_types"],
            rename: &[("app", "alpha_db")],
        },
        Svc {
            name: "beta",
            target: 1,
            tables: &["app.composite_pk", "app.binary_pk"],
            rename: &[],
        },
    ];
    let running = spawn_replicate(env.config(&services, ""), vec![]);
    // Changes while copying and streaming, including a row over 16 MiB.
    wl.clone()
        .with_huge_row(true)
        .run(&mut src, 150, 2)
        .await
        .expect("workload with a huge row");
    wl.run(&mut src, 250, 3)
        .await
        .expect("workload during replication");
    wait_caught_up(&env, 0, "alpha", Duration::from_secs(120)).await;
    wait_caught_up(&env, 1, "beta", Duration::from_secs(120)).await;
    assert!(!running.is_finished(), "replicate must still be running");
    running.stop().await.expect("clean stop");
    assert_identical(&env, "app", 0, "alpha_db", &["all_types"]).await;
    assert_identical(&env, "app", 1, "app", &["composite_pk", "binary_pk"]).await;
    // The other service's tables never reach a target that does not own them.
    let mut t0 = env.targets[0].conn().await.unwrap();
    let n: Option<u64> = mysql_async::prelude::Queryable::query_first(&mut t0, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME IN ('composite_pk','binary_pk')").await.unwrap();
    assert_eq!(n, Some(0));
}
