//! The binlog reader's memory on `binlog_transaction_compression=ON`: one
//! 192 MiB transaction arrives as a single compressed TRANSACTION_PAYLOAD
//! event of tens of kilobytes. The reader decompresses and handles it one
//! inner event at a time, so the heap never holds the transaction.
//!
//! Measured with a counting global allocator, which is why this test has a
//! binary of its own: nothing else allocates in this process while it runs
//! (the servers are other processes).

mod common;

use common::*;
use dropship_core::control::stats::ReaderStats;
use dropship_core::stream::reader::{Reader, RecordSink};
use dropship_core::stream::record::Record;
use dropship_sandbox::ServerOptions;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now =
                    LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Counts what the reader produces and drops it.
struct Counter {
    rows: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
}

impl RecordSink for Counter {
    fn append(&mut self, rec: &Record) -> dropship_core::Result<u64> {
        if let Record::Rows(r) = rec {
            self.rows.fetch_add(r.changes.len(), Relaxed);
            for c in &r.changes {
                if let Some(img) = &c.after {
                    for v in &img.values {
                        if let dropship_mysql::Value::Bytes(b) = v {
                            self.bytes.fetch_add(b.len(), Relaxed);
                        }
                    }
                }
            }
        }
        Ok(0)
    }
    fn flush(&mut self) -> dropship_core::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_192_mib_transaction_is_read_with_a_few_mib_of_heap() {
    if !MYSQL_MYSQL.available() {
        return;
    }
    let env = start_pair(
        MYSQL_MYSQL,
        1,
        ServerOptions::source().with_log_bin_compress(true),
        false,
    )
    .await;
    let mut src = env.source.conn().await.unwrap();
    exec(&mut src, "CREATE DATABASE z").await;
    exec(
        &mut src,
        "CREATE TABLE z.big (id INT PRIMARY KEY, v LONGBLOB NOT NULL)",
    )
    .await;
    let start = source_position(&env.source).await;
    let payload = write_compressed_192_mib(&mut src).await;

    let svc = [Svc {
        name: "z",
        target: 0,
        tables: &["z.big"],
        rename: &[],
    }];
    let cfg = Arc::new(env.config(&svc, ""));
    let meta = env.source.conn().await.unwrap();
    let rows = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicUsize::new(0));
    let sink = Counter {
        rows: rows.clone(),
        bytes: bytes.clone(),
    };
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let mut reader = Reader::new(cfg, sink, Arc::new(ReaderStats::default()), meta, start)
        .await
        .expect("reader");
    let task = tokio::spawn(async move { reader.run(stop).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while rows.load(Relaxed) < 3072 {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of 3072 rows",
            rows.load(Relaxed)
        );
        assert!(
            !task.is_finished(),
            "the reader stopped early: {:?}",
            task.await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    task.await.unwrap().expect("the reader stops cleanly");
    let peak = PEAK.load(Relaxed).saturating_sub(base);
    assert_eq!(
        bytes.load(Relaxed),
        3072 * 65536,
        "every value byte was read"
    );
    eprintln!(
        "read a 192 MiB transaction from a {payload}-byte compressed event with a heap peak of {:.1} MiB above the start",
        peak as f64 / (1 << 20) as f64
    );
    assert!(
        peak < 16 << 20,
        "heap peak {} MiB while reading a 192 MiB transaction",
        peak >> 20
    );
}
