//! Write and read throughput of 100k records of 200 bytes.
//!
//! Run: `cargo bench -p dropship-relay --bench relay`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dropship_relay::{RelayLog, RelayOptions, SyncPolicy};
use tempfile::TempDir;

const RECORDS: u64 = 100_000;
const PAYLOAD: usize = 200;

fn options(sync: SyncPolicy) -> RelayOptions {
    RelayOptions {
        sync,
        ..RelayOptions::default()
    }
}

fn write_all(dir: &TempDir, sync: SyncPolicy, flush_every: u64) -> RelayLog {
    let payload = vec![0x42u8; PAYLOAD];
    let mut log = RelayLog::open(dir.path(), options(sync)).unwrap();
    for i in 1..=RECORDS {
        log.append(&payload).unwrap();
        if i % flush_every == 0 {
            log.flush().unwrap();
        }
    }
    log.flush().unwrap();
    log
}

fn bench_write(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_100k_x_200B");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RECORDS));
    for (name, sync, flush_every) in [
        ("flush_once_no_fsync", SyncPolicy::Manual, RECORDS),
        ("flush_every_100_no_fsync", SyncPolicy::Manual, 100),
        ("flush_every_1000_fsync", SyncPolicy::EveryFlush, 1000),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || TempDir::new().unwrap(),
                |dir| {
                    let log = write_all(&dir, sync, flush_every);
                    (log, dir)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn bench_read(c: &mut Criterion) {
    let dir = TempDir::new().unwrap();
    let log = write_all(&dir, SyncPolicy::Manual, RECORDS);
    let mut g = c.benchmark_group("read_100k_x_200B");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RECORDS));
    g.bench_function("next_into_reused_buffer", |b| {
        b.iter(|| {
            let mut r = log.reader(1).unwrap();
            let mut buf = Vec::new();
            let mut n = 0u64;
            while let Some(_id) = r.next_into(&mut buf).unwrap() {
                n += 1;
            }
            assert_eq!(n, RECORDS);
        })
    });
    g.bench_function("next_owned_vec", |b| {
        b.iter(|| {
            let mut r = log.reader(1).unwrap();
            let mut n = 0u64;
            while let Some((_id, p)) = r.next().unwrap() {
                n += p.len() as u64;
            }
            assert_eq!(n, RECORDS * PAYLOAD as u64);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_write, bench_read);
criterion_main!(benches);
