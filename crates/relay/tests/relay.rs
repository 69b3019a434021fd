//! Behaviour of the relay log as a consumer of the crate sees it. Each test gets its own temp directory.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dropship_relay::{
    segment_file_name, Error, RelayLog, RelayOptions, SyncPolicy, RECORD_HEADER_LEN,
    SEGMENT_HEADER_LEN,
};
use tempfile::TempDir;

fn opts(segment_max_bytes: u64) -> RelayOptions {
    RelayOptions {
        segment_max_bytes,
        sync: SyncPolicy::Manual,
        ..RelayOptions::default()
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!("txn-{i:06}").into_bytes()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("relay-")
        })
        .collect();
    v.sort();
    v
}

fn read_all(log: &RelayLog, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut r = log.reader(from).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        out.push(rec);
    }
    out
}

/// Simulates a crash: the writer's buffer is never written, nothing is flushed, the lock is released.
fn crash(log: RelayLog) {
    log.simulate_crash();
}

#[test]
fn ids_start_at_one_and_continue_after_a_clean_reopen() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(1024)).unwrap();
    assert_eq!(log.append(b"a").unwrap(), 1);
    assert_eq!(log.append(b"b").unwrap(), 2);
    drop(log);
    let mut log = RelayLog::open(dir.path(), opts(1024)).unwrap();
    assert_eq!(log.last_id(), 2, "drop flushes");
    assert_eq!(log.append(b"c").unwrap(), 3);
    log.flush().unwrap();
    let got = read_all(&log, 1);
    assert_eq!(
        got,
        vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())]
    );
}

#[test]
fn reader_does_not_see_records_until_they_are_flushed() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    let mut r = log.reader(1).unwrap();
    log.append(b"one").unwrap();
    assert_eq!(r.next().unwrap(), None);
    log.flush().unwrap();
    assert_eq!(r.next().unwrap(), Some((1, b"one".to_vec())));
    assert_eq!(r.next().unwrap(), None);
}

#[test]
fn reader_sees_records_appended_after_it_started() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(200)).unwrap();
    let mut r = log.reader(1).unwrap();
    assert_eq!(r.next().unwrap(), None);
    for i in 1..=50 {
        log.append(&payload(i)).unwrap();
        if i % 7 == 0 {
            log.flush().unwrap();
        }
    }
    log.flush().unwrap();
    let mut got = Vec::new();
    while let Some((id, p)) = r.next().unwrap() {
        assert_eq!(p, payload(id));
        got.push(id);
    }
    assert_eq!(got, (1..=50).collect::<Vec<_>>());
    assert!(
        segments(dir.path()).len() > 1,
        "the 200-byte cap must have rolled segments"
    );
}

#[test]
fn reader_positioned_mid_segment_starts_at_the_requested_id() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(150)).unwrap();
    for i in 1..=40 {
        log.append(&payload(i)).unwrap();
    }
    log.flush().unwrap();
    for from in [1, 2, 17, 39, 40] {
        let ids: Vec<u64> = read_all(&log, from).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, (from..=40).collect::<Vec<_>>(), "from {from}");
    }
    assert!(read_all(&log, 41).is_empty());
    // A reader positioned in the future waits for that id.
    let mut r = log.reader(43).unwrap();
    log.append(&payload(41)).unwrap();
    log.append(&payload(42)).unwrap();
    log.append(&payload(43)).unwrap();
    log.flush().unwrap();
    assert_eq!(r.next().unwrap(), Some((43, payload(43))));
}

#[test]
fn next_into_reuses_the_callers_buffer() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    log.append(&[7u8; 100]).unwrap();
    log.append(&[8u8; 10]).unwrap();
    log.flush().unwrap();
    let mut r = log.reader(1).unwrap();
    let mut buf = Vec::with_capacity(4096);
    let cap_before = buf.capacity();
    assert_eq!(r.next_into(&mut buf).unwrap(), Some(1));
    assert_eq!(buf, vec![7u8; 100]);
    assert_eq!(r.next_into(&mut buf).unwrap(), Some(2));
    assert_eq!(buf, vec![8u8; 10]);
    assert_eq!(buf.capacity(), cap_before);
}

#[test]
fn torn_tail_is_truncated_on_reopen_and_ids_continue() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    for i in 1..=3 {
        log.append(&payload(i)).unwrap();
    }
    log.flush().unwrap();
    crash(log);
    let seg = segments(dir.path()).pop().unwrap();
    let good_len = fs::metadata(&seg).unwrap().len();
    // Half of a fourth frame: its header claims 100 payload bytes, only 5 made it.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&100u32.to_le_bytes()).unwrap();
    f.write_all(&[0xAB; 4 + 8 + 5]).unwrap();
    drop(f);

    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        good_len,
        "torn tail truncated"
    );
    assert_eq!(log.last_id(), 3);
    assert_eq!(log.append(b"after").unwrap(), 4);
    log.flush().unwrap();
    let got = read_all(&log, 1);
    assert_eq!(got.len(), 4);
    assert_eq!(got[3], (4, b"after".to_vec()));
}

#[test]
fn partial_frame_header_at_the_tail_is_truncated() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    log.append(b"x").unwrap();
    drop(log);
    let seg = segments(dir.path()).pop().unwrap();
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&[1, 2, 3])
        .unwrap();
    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(log.append(b"y").unwrap(), 2);
}

#[test]
fn crc_mismatch_in_the_last_record_is_treated_as_a_torn_tail() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    log.append(b"first").unwrap();
    log.append(b"second").unwrap();
    drop(log);
    let seg = segments(dir.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    let mut f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.seek(SeekFrom::Start(len - 1)).unwrap();
    f.write_all(b"X").unwrap(); // last payload byte of record 2
    drop(f);
    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(log.last_id(), 1);
    assert_eq!(log.append(b"again").unwrap(), 2);
}

#[test]
fn crc_mismatch_in_the_middle_is_an_error_naming_file_and_offset() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    for i in 1..=3 {
        log.append(&payload(i)).unwrap();
    }
    drop(log);
    let seg = segments(dir.path()).pop().unwrap();
    // Damage the payload of record 2 (frames are equal-sized here).
    let frame = RECORD_HEADER_LEN + payload(1).len() as u64;
    let record2 = SEGMENT_HEADER_LEN + frame;
    let mut f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.seek(SeekFrom::Start(record2 + RECORD_HEADER_LEN))
        .unwrap();
    f.write_all(b"Z").unwrap();
    drop(f);

    let err = RelayLog::open(dir.path(), opts(1 << 20)).unwrap_err();
    match &err {
        Error::CrcMismatch {
            path, offset, id, ..
        } => {
            assert_eq!(path, &seg);
            assert_eq!(*offset, record2);
            assert_eq!(*id, 2);
        }
        other => panic!("expected CrcMismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&segment_file_name(1)) && msg.contains(&format!("offset {record2}")),
        "{msg}"
    );
    assert!(
        !msg.contains("Hint"),
        "the hint is kept apart from the message: {msg}"
    );
    assert!(
        err.hint().is_some_and(|h| h.contains("damaged on disk")),
        "{:?}",
        err.hint()
    );
    assert!(err.is_data_loss());
}

#[test]
fn crc_mismatch_in_an_older_segment_is_reported_by_the_reader_with_file_and_offset() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(100)).unwrap();
    for i in 1..=20 {
        log.append(&payload(i)).unwrap();
    }
    log.flush().unwrap();
    let first = segments(dir.path()).remove(0);
    let mut f = OpenOptions::new().write(true).open(&first).unwrap();
    f.seek(SeekFrom::Start(SEGMENT_HEADER_LEN + RECORD_HEADER_LEN))
        .unwrap();
    f.write_all(b"Z").unwrap();
    drop(f);
    let mut r = log.reader(1).unwrap();
    let err = r.next().unwrap_err();
    assert!(
        matches!(&err, Error::CrcMismatch { path, offset, .. } if path == &first && *offset == SEGMENT_HEADER_LEN),
        "{err:?}"
    );
}

#[test]
fn record_larger_than_segment_cap_gets_its_own_segment() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(256)).unwrap();
    log.append(b"small-1").unwrap();
    let big = vec![0x5A; 1000];
    assert_eq!(log.append(&big).unwrap(), 2);
    log.append(b"small-3").unwrap();
    log.flush().unwrap();
    let names: Vec<String> = segments(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            segment_file_name(1),
            segment_file_name(2),
            segment_file_name(3)
        ]
    );
    let big_seg = dir.path().join(segment_file_name(2));
    assert_eq!(
        fs::metadata(big_seg).unwrap().len(),
        SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + 1000
    );
    let got = read_all(&log, 1);
    assert_eq!(got[1], (2, big));
    assert_eq!(got[2], (3, b"small-3".to_vec()));
}

#[test]
fn segments_are_deleted_once_every_consumer_acked_past_them() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(100)).unwrap();
    log.register("orders").unwrap();
    log.register("billing").unwrap();
    for i in 1..=30 {
        log.append(&payload(i)).unwrap();
    }
    log.flush().unwrap();
    let before = segments(dir.path());
    assert!(before.len() >= 4, "{before:?}");
    let size_before = log.size_bytes();

    log.ack("orders", 30).unwrap();
    assert_eq!(
        segments(dir.path()),
        before,
        "billing still needs everything"
    );
    log.ack("billing", 12).unwrap();
    let after = segments(dir.path());
    assert!(after.len() < before.len());
    assert!(
        log.first_id() <= 13,
        "record 13 must still be stored, first_id {}",
        log.first_id()
    );
    assert!(log.size_bytes() < size_before);
    let ids: Vec<u64> = read_all(&log, 13).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, (13..=30).collect::<Vec<_>>());
    let err = log.reader(1).unwrap_err();
    assert!(err.is_not_covered(), "{err:?}");

    // Acking everything keeps the segment being written.
    log.ack("billing", 30).unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
    assert_eq!(
        log.handle().consumers(),
        vec![("billing".to_string(), 30), ("orders".to_string(), 30)]
    );
}

#[test]
fn nothing_is_deleted_without_consumers_and_a_deregistered_consumer_stops_holding_retention() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(100)).unwrap();
    for i in 1..=20 {
        log.append(&payload(i)).unwrap();
    }
    log.flush().unwrap();
    let n = segments(dir.path()).len();
    log.register("fast").unwrap();
    log.register("stuck").unwrap();
    log.ack("fast", 20).unwrap();
    assert_eq!(segments(dir.path()).len(), n);
    assert!(log.deregister("stuck").unwrap());
    assert!(!log.deregister("stuck").unwrap());
    assert_eq!(segments(dir.path()).len(), 1);
    assert!(matches!(
        log.ack("stuck", 1),
        Err(Error::UnknownConsumer { .. })
    ));
}

#[test]
fn acks_beyond_the_last_flushed_id_are_rejected_and_lower_acks_ignored() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    log.register("a").unwrap();
    log.append(b"1").unwrap();
    let err = log.ack("a", 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::AckBeyondEnd {
                id: 1,
                last_id: 0,
                ..
            }
        ),
        "{err:?}"
    );
    log.flush().unwrap();
    log.ack("a", 1).unwrap();
    log.ack("a", 0).unwrap();
    assert_eq!(log.handle().acked("a").unwrap(), 1);
}

#[test]
fn reopen_after_crash_keeps_acked_positions() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(100)).unwrap();
    assert_eq!(log.register("orders").unwrap(), 0);
    log.register("billing").unwrap();
    for i in 1..=30 {
        log.append(&payload(i)).unwrap();
    }
    log.flush().unwrap();
    log.ack("orders", 25).unwrap();
    log.ack("billing", 10).unwrap();
    let first = log.first_id();
    crash(log);

    let mut log = RelayLog::open(dir.path(), opts(100)).unwrap();
    let h = log.handle();
    assert_eq!(h.acked("orders").unwrap(), 25);
    assert_eq!(h.acked("billing").unwrap(), 10);
    assert_eq!(
        log.register("orders").unwrap(),
        25,
        "register is idempotent"
    );
    assert_eq!(log.first_id(), first);
    // Retention continues after the restart.
    log.ack("billing", 25).unwrap();
    assert!(log.first_id() > first);
    assert!(log.first_id() <= 26);
    let ids: Vec<u64> = read_all(&log, 26).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, (26..=30).collect::<Vec<_>>());
    assert_eq!(log.append(b"x").unwrap(), 31);
}

#[test]
fn reset_discards_everything_and_ids_continue() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(100)).unwrap();
    log.register("orders").unwrap();
    for i in 1..=20 {
        log.append(&payload(i)).unwrap();
    }
    log.flush().unwrap();
    let mut stale = log.reader(1).unwrap();
    let first = log.reset().unwrap();
    assert_eq!(first, 21);
    assert_eq!(
        segments(dir.path()),
        vec![dir.path().join(segment_file_name(21))]
    );
    assert_eq!(log.handle().acked("orders").unwrap(), 20);
    assert_eq!((log.first_id(), log.last_id()), (21, 20));
    assert!(log.reader(5).unwrap_err().is_not_covered());
    assert_eq!(log.append(b"fresh").unwrap(), 21);
    log.flush().unwrap();
    assert_eq!(read_all(&log, 21), vec![(21, b"fresh".to_vec())]);
    // A reader that was open across the reset cannot silently skip the discarded records.
    let mut saw_error = false;
    for _ in 0..30 {
        match stale.next() {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) => {
                assert!(e.is_not_covered(), "{e:?}");
                saw_error = true;
                break;
            }
        }
    }
    assert!(saw_error);
    // Reset of an empty log, and reopen after it.
    assert_eq!(log.reset().unwrap(), 22);
    assert_eq!(log.reset().unwrap(), 22);
    drop(log);
    let mut log = RelayLog::open(dir.path(), opts(100)).unwrap();
    assert_eq!(log.append(b"y").unwrap(), 22);
}

#[test]
fn invalid_options_are_rejected_with_the_field_name() {
    let dir = TempDir::new().unwrap();
    let err = RelayLog::open(dir.path(), opts(0)).unwrap_err();
    assert!(err.to_string().contains("segment_max_bytes"), "{err}");
}

#[test]
fn files_that_are_not_segments_are_ignored_and_a_bad_ledger_is_an_error() {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("README"), "hi").unwrap();
    fs::write(dir.path().join("ledger.json.tmp"), "half-written").unwrap();
    drop(RelayLog::open(dir.path(), opts(100)).unwrap());
    assert!(
        !dir.path().join("ledger.json.tmp").exists(),
        "a leftover ledger temp file is removed"
    );
    assert!(dir.path().join("README").exists());
    fs::write(dir.path().join("ledger.json"), "{not json").unwrap();
    let err = RelayLog::open(dir.path(), opts(100)).unwrap_err();
    assert!(matches!(err, Error::Ledger { .. }), "{err:?}");
    assert!(err.to_string().contains("ledger.json"), "{err}");
}

#[test]
fn durable_sync_policy_works_end_to_end() {
    let dir = TempDir::new().unwrap();
    let options = RelayOptions {
        segment_max_bytes: 64,
        sync: SyncPolicy::EveryFlush,
        ..RelayOptions::default()
    };
    let mut log = RelayLog::open(dir.path(), options.clone()).unwrap();
    for i in 1..=5 {
        log.append(&payload(i)).unwrap();
        log.flush().unwrap();
    }
    log.sync().unwrap();
    crash(log);
    let log = RelayLog::open(dir.path(), options).unwrap();
    assert_eq!(read_all(&log, 1).len(), 5);
}

#[tokio::test]
async fn next_wait_returns_none_once_the_writer_is_dropped_and_drained() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    let mut r = log.reader(1).unwrap();
    log.append(b"last words").unwrap();
    drop(log);
    assert_eq!(
        r.next_wait().await.unwrap(),
        Some((1, b"last words".to_vec()))
    );
    assert_eq!(r.next_wait().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_task_and_two_readers_at_different_speeds_all_see_every_record_in_order() {
    const N: u64 = 3000;
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(4096)).unwrap();
    let handle = log.handle();
    handle.register("fast").unwrap();
    handle.register("slow").unwrap();

    let reader_task = |name: &'static str, pause_every: u64| {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut r = handle.reader(1).unwrap();
            let mut expected = 1;
            while let Some((id, p)) = r.next_wait().await.unwrap() {
                assert_eq!(id, expected, "{name}");
                assert_eq!(p, payload(id), "{name}");
                if id % 50 == 0 {
                    handle.ack(name, id).unwrap();
                }
                if pause_every > 0 && id % pause_every == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                expected += 1;
            }
            expected - 1
        })
    };
    let fast = reader_task("fast", 0);
    let slow = reader_task("slow", 100);

    let writer = tokio::spawn(async move {
        for i in 1..=N {
            assert_eq!(log.append(&payload(i)).unwrap(), i);
            if i % 25 == 0 {
                log.flush().unwrap();
                tokio::task::yield_now().await;
            }
        }
        log.flush().unwrap();
        // Dropping the writer ends the readers' next_wait loops.
    });
    writer.await.unwrap();
    let (fast, slow) = tokio::time::timeout(Duration::from_secs(60), async {
        (fast.await.unwrap(), slow.await.unwrap())
    })
    .await
    .expect("readers finished");
    assert_eq!((fast, slow), (N, N));
    // Retention kept up with the slower consumer's acks.
    assert_eq!(handle.acked("slow").unwrap(), N - N % 50);
    assert!(handle.first_id() > 1);
}

#[test]
fn size_and_backlog_metrics_follow_appends_and_acks() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(log.size_bytes(), SEGMENT_HEADER_LEN);
    assert_eq!((log.first_id(), log.last_id()), (1, 0));
    log.register("orders").unwrap();
    for i in 1..=10 {
        log.append(&payload(i)).unwrap();
    }
    log.flush().unwrap();
    assert_eq!(
        log.size_bytes(),
        SEGMENT_HEADER_LEN + 10 * (RECORD_HEADER_LEN + payload(1).len() as u64)
    );
    log.ack("orders", 4).unwrap();
    let h = log.handle();
    let backlog: Vec<(String, u64)> = h
        .consumers()
        .into_iter()
        .map(|(c, ack)| (c, h.last_id() - ack))
        .collect();
    assert_eq!(backlog, vec![("orders".to_string(), 6)]);
}

#[test]
fn a_consumer_registered_after_retention_starts_at_the_oldest_stored_record() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(100)).unwrap();
    log.register("first").unwrap();
    for i in 1..=20 {
        log.append(&payload(i)).unwrap();
    }
    log.flush().unwrap();
    log.ack("first", 15).unwrap();
    let oldest = log.first_id();
    assert!(oldest > 1);
    let ack = log.register("late").unwrap();
    assert_eq!(ack, oldest - 1);
    let ids: Vec<u64> = read_all(&log, ack + 1)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, (oldest..=20).collect::<Vec<_>>());
}

#[test]
fn a_second_writer_on_the_same_directory_is_refused_until_the_first_is_closed() {
    let dir = TempDir::new().unwrap();
    let log = RelayLog::open(dir.path(), opts(100)).unwrap();
    let err = RelayLog::open(dir.path(), opts(100)).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    drop(log);
    RelayLog::open(dir.path(), opts(100)).unwrap();
}

#[test]
fn last_segment_shorter_than_its_header_gets_the_header_rewritten() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(100)).unwrap();
    for i in 1..=10 {
        log.append(&payload(i)).unwrap();
    }
    drop(log);
    // Crash right after a roll created the next segment but before its header reached the disk.
    let next = dir.path().join(segment_file_name(11));
    fs::write(&next, b"DSR").unwrap();
    let mut log = RelayLog::open(dir.path(), opts(100)).unwrap();
    assert_eq!(fs::metadata(&next).unwrap().len(), SEGMENT_HEADER_LEN);
    assert_eq!(log.append(b"x").unwrap(), 11);
    log.flush().unwrap();
    assert_eq!(read_all(&log, 1).len(), 11);
}

#[test]
fn a_reader_keeps_reading_a_segment_that_retention_deleted_under_it() {
    let dir = TempDir::new().unwrap();
    let mut log = RelayLog::open(dir.path(), opts(100)).unwrap();
    log.register("c").unwrap();
    for i in 1..=20 {
        log.append(&payload(i)).unwrap();
    }
    log.flush().unwrap();
    let mut r = log.reader(1).unwrap();
    assert_eq!(r.next().unwrap().unwrap().0, 1);
    log.ack("c", 20).unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
    // The open file stays readable; the segments after it are gone, which the reader reports.
    let mut ids = vec![1];
    let err = loop {
        match r.next() {
            Ok(Some((id, _))) => ids.push(id),
            Ok(None) => panic!("reader must not report a clean end across deleted segments"),
            Err(e) => break e,
        }
    };
    assert!(err.is_not_covered(), "{err:?}");
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_segment_emptied_on_disk_is_an_error_for_readers_not_an_endless_loop() {
    let dir = TempDir::new().unwrap();
    {
        let mut log = RelayLog::open(dir.path(), opts(512)).unwrap();
        for i in 0..40 {
            log.append(&payload(i)).unwrap();
        }
        log.flush().unwrap();
    }
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    // A middle segment loses every record (a bad copy, an edit by hand): its header stays.
    OpenOptions::new()
        .write(true)
        .open(&segs[1])
        .unwrap()
        .set_len(SEGMENT_HEADER_LEN)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let path = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let outcome = RelayLog::open(&path, opts(512)).and_then(|log| {
            let mut r = log.reader(log.first_id())?;
            let mut n = 0;
            while r.next()?.is_some() {
                n += 1;
            }
            Ok(n)
        });
        let _ = tx.send(outcome.map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Err(e)) => assert!(e.contains("ends before record"), "{e}"),
        Ok(Ok(n)) => panic!("read {n} records past a segment that lost its records"),
        Err(_) => panic!("the reader loops on the emptied segment"),
    }
}
