//! Micro-benchmarks of the apply path's hot spots, all in memory:
//!
//! - `decode`: the binlog decoder over a whole file held in memory
//!   (`$DROPSHIP_BENCH_BINLOG`, e.g. the workload binlog the runner leaves
//!   behind, else the sakila corpus file from the shared fixtures; skipped
//!   with a note when neither exists);
//! - `relay_record`: postcard encode/decode of a relay `Rows` record of 10
//!   changes (what the reader writes and every applier reads back);
//! - `batch`: collapsing 5000 row changes into a `Batch` (`TableBatch::set`,
//!   key encoding) and rendering its SQL (`Batch::statements`, i.e.
//!   `Value::write_sql` for every value);
//! - `write_sql`: one literal per value kind;
//! - `crc32`: crc32fast over 1 MiB (relay log framing; a checksum helper would
//!   use the same).
//!
//! The relay log's own write/read throughput is benchmarked in
//! `crates/relay/benches/relay.rs` (`cargo bench -p dropship-relay`).
//!
//! Run: `cargo bench --bench hot_paths` (add `-- --quick` for a fast pass).

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dropship_core::apply::batch::{Batch, TableShape};
use dropship_core::stream::record::{Record, RowsRecord};
use dropship_mysql::{RowChange, RowImage, RowKind, Value};
use std::path::PathBuf;

fn binlog_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DROPSHIP_BENCH_BINLOG") {
        return Some(PathBuf::from(p));
    }
    let fixtures = std::env::var_os("DROPSHIP_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/binlogs")
        });
    let p = fixtures.join("mysql-binlog-connector-java/mysql-bin.sakila");
    p.exists().then_some(p)
}

fn bench_decode(c: &mut Criterion) {
    let Some(path) = binlog_file() else {
        eprintln!("decode: skipped (no $DROPSHIP_BENCH_BINLOG and no fixtures folder)");
        return;
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("decode: skipped ({}: {e})", path.display());
            return;
        }
    };
    let name = path.display().to_string();
    let mut g = c.benchmark_group("decode");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function(
        path.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        |b| {
            b.iter(|| {
                let mut n = 0u64;
                let mut sink = |_h, e| {
                    black_box(&e);
                    n += 1;
                    Ok(())
                };
                dropship_mysql::binlog::read_bytes(&name, &bytes, &mut sink).expect("decodes");
                n
            })
        },
    );
    g.finish();
}

/// A row like the workload's `t_int` table: BIGINT, INT, VARCHAR, DECIMAL, DATETIME(6), DOUBLE.
fn row(i: i64) -> Vec<Value> {
    vec![
        Value::Int(i),
        Value::Int(i * 7919 % 1_000_003),
        Value::Bytes(format!("user-{i}-{:016x}", i.wrapping_mul(0x9E37_79B9)).into_bytes()),
        Value::Decimal(format!("{}.{:02}", i % 100_000, i % 100)),
        Value::DateTime {
            year: 2024,
            month: 6,
            day: 11,
            hour: (i % 24) as u8,
            minute: (i % 60) as u8,
            second: 7,
            micros: (i % 1_000_000) as u32,
        },
        Value::Double(i as f64 / 3.0),
    ]
}

fn columns() -> Vec<String> {
    ["id", "a", "b", "c", "d", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn bench_relay_record(c: &mut Criterion) {
    let rec = Record::Rows(RowsRecord {
        database: "bench".into(),
        table: "t_int".into(),
        columns: columns().into(),
        changes: (0..10)
            .map(|i| RowChange {
                kind: RowKind::Update,
                before: Some(RowImage {
                    values: row(i),
                    missing: vec![],
                    partial_json: vec![],
                }),
                after: Some(RowImage {
                    values: row(i + 1),
                    missing: vec![],
                    partial_json: vec![],
                }),
            })
            .collect(),
    });
    let bytes = rec.encode();
    let mut g = c.benchmark_group("relay_record_10_updates");
    g.throughput(Throughput::Elements(10));
    g.bench_function("encode", |b| b.iter(|| black_box(&rec).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| Record::decode(black_box(&bytes)).expect("decodes"))
    });
    g.finish();
}

fn shape() -> TableShape {
    TableShape {
        insert_columns: columns(),
        key_columns: vec!["id".into()],
    }
}

fn filled_batch(n: i64) -> Batch {
    let mut b = Batch::default();
    let sh = shape();
    let t = b.table("bench", "t_int", &sh);
    for i in 0..n {
        // 50% distinct inserts, the rest update or delete earlier rows.
        let k = if i % 2 == 0 { i } else { i / 3 };
        let v = if i % 7 == 0 { None } else { Some(row(k)) };
        t.set(vec![Value::Int(k)], v, false);
    }
    b.rows = n as usize;
    b
}

fn bench_batch(c: &mut Criterion) {
    const N: i64 = 5000;
    let mut g = c.benchmark_group("batch_5000_changes");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("collapse", |b| b.iter(|| filled_batch(black_box(N))));
    let batch = filled_batch(N);
    g.bench_function("statements_insert", |b| {
        b.iter(|| batch.statements(false, 4 << 20))
    });
    g.bench_function("statements_replace", |b| {
        b.iter(|| batch.statements(true, 4 << 20))
    });
    g.finish();
    let mut g = c.benchmark_group("batch_key");
    g.bench_function("encode_key_int", |b| {
        b.iter(|| dropship_core::apply::batch::encode_key(black_box(&[Value::Int(123_456_789)])))
    });
    g.bench_function("encode_key_binary16", |b| {
        b.iter_batched(
            || vec![Value::Bytes(vec![7u8; 16])],
            |k| dropship_core::apply::batch::encode_key(&k),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_write_sql(c: &mut Criterion) {
    let values = [
        ("int", Value::Int(-1_234_567_890)),
        ("double", Value::Double(1234.5678e-3)),
        ("decimal", Value::Decimal("-12345678.9012".into())),
        ("bytes_64", Value::Bytes((0..64u8).collect())),
        (
            "text_64",
            Value::Bytes(b"The quick brown fox jumps over the lazy dog, 'quoted' \\ back".to_vec()),
        ),
        (
            "datetime6",
            Value::DateTime {
                year: 2024,
                month: 6,
                day: 11,
                hour: 13,
                minute: 14,
                second: 15,
                micros: 123_456,
            },
        ),
        (
            "timestamp3",
            Value::Timestamp {
                secs: 1_718_111_655,
                micros: 123_000,
            },
        ),
        (
            "json",
            Value::Json("{\"a\": [1, 2, 3], \"b\": \"text\"}".into()),
        ),
    ];
    let mut g = c.benchmark_group("write_sql");
    for (name, v) in values {
        g.bench_function(name, |b| {
            let mut s = String::with_capacity(256);
            b.iter(|| {
                s.clear();
                black_box(&v).write_sql(&mut s);
                s.len()
            })
        });
    }
    g.finish();
}

fn bench_crc32(c: &mut Criterion) {
    let buf = vec![0x5au8; 1 << 20];
    let mut g = c.benchmark_group("crc32");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("crc32fast_1MiB", |b| {
        b.iter(|| crc32fast::hash(black_box(&buf)))
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_relay_record,
    bench_batch,
    bench_write_sql,
    bench_crc32
);
criterion_main!(benches);
