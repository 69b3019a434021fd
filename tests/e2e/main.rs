//! The end-to-end tests against real MySQL and MariaDB servers, in one test binary (one link instead of one per
//! file; the harness in `common` compiled once). Each module is one area; `cargo test --test e2e <module>::`
//! runs one. `tests/reader_memory.rs` stays a binary of its own: it measures the heap with a counting global
//! allocator, which other tests running in the same process would disturb.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod bench_smoke;
mod binlog_client;
mod check;
mod copy;
mod crash;
mod cutover;
mod ddl;
mod faults;
mod fixtures_apply;
mod hostile;
mod ops;
mod relay_full;
mod replicate;
mod tls;
mod values;
mod verify;
