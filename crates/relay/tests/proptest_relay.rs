//! Random sequences of append / flush / clean reopen / crash / read, checked against an in-memory model.

use dropship_relay::{RelayLog, RelayOptions, SyncPolicy};
use proptest::prelude::*;
use tempfile::TempDir;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Flush,
    Reopen,
    Crash,
    Read(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Op::Append),
        2 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        2 => (0u64..80).prop_map(Op::Read),
    ]
}

fn read_from(log: &RelayLog, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut r = log.reader(from).expect("reader");
    let mut out = Vec::new();
    while let Some(rec) = r.next().expect("next") {
        out.push(rec);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn reads_return_exactly_what_was_appended_in_order(
        ops in proptest::collection::vec(op(), 1..60),
        cap in prop_oneof![Just(64u64), Just(512), Just(1 << 20)],
        buffer in prop_oneof![Just(16usize), Just(4096)],
    ) {
        let dir = TempDir::new().unwrap();
        let options = RelayOptions { segment_max_bytes: cap, sync: SyncPolicy::Manual, write_buffer_bytes: buffer };
        let mut log = RelayLog::open(dir.path(), options.clone()).unwrap();
        // model[i] is the payload of id i + 1; the first `flushed` are visible to readers.
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut flushed = 0usize;
        for op in ops {
            match op {
                Op::Append(p) => {
                    let id = log.append(&p).unwrap();
                    model.push(p);
                    prop_assert_eq!(id, model.len() as u64);
                }
                Op::Flush => {
                    log.flush().unwrap();
                    flushed = model.len();
                }
                Op::Reopen => {
                    drop(log);
                    log = RelayLog::open(dir.path(), options.clone()).unwrap();
                    flushed = model.len();
                }
                Op::Crash => {
                    log.simulate_crash();
                    log = RelayLog::open(dir.path(), options.clone()).unwrap();
                    // Flushed records survive; of the unflushed ones, a prefix may have reached the file.
                    let survived = read_from(&log, 1);
                    prop_assert!(survived.len() >= flushed && survived.len() <= model.len(),
                        "survived {} flushed {} appended {}", survived.len(), flushed, model.len());
                    model.truncate(survived.len());
                    flushed = model.len();
                    prop_assert_eq!(log.last_id(), model.len() as u64);
                }
                Op::Read(from) => {
                    let got = read_from(&log, from);
                    let start = from.max(1);
                    let want: Vec<(u64, Vec<u8>)> = model[..flushed]
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (i as u64 + 1, p.clone()))
                        .filter(|(id, _)| *id >= start)
                        .collect();
                    prop_assert_eq!(got, want);
                }
            }
        }
        log.flush().unwrap();
        let all = read_from(&log, 1);
        prop_assert_eq!(all.len(), model.len());
        for (i, (id, p)) in all.into_iter().enumerate() {
            prop_assert_eq!(id, i as u64 + 1);
            prop_assert_eq!(&p, &model[i]);
        }
    }
}

#[derive(Debug, Clone)]
enum Damage {
    /// XOR one byte at this fraction of a segment file.
    Flip { segment: usize, at: f64, mask: u8 },
    /// Cut a segment file at this fraction of its length.
    Truncate { segment: usize, at: f64 },
    /// Append garbage to a segment file.
    Garbage { segment: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..8, 0.0f64..1.0, 1u8..=255).prop_map(|(segment, at, mask)| Damage::Flip {
            segment,
            at,
            mask
        }),
        (0usize..8, 0.0f64..1.0).prop_map(|(segment, at)| Damage::Truncate { segment, at }),
        (0usize..8, proptest::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(segment, bytes)| Damage::Garbage { segment, bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Corrupt or truncated segments (a bad disk, a copy taken mid-write, an edit by hand) never make opening or
    /// reading the relay log panic, and never hand out a record that was not appended under that id: each
    /// read returns the appended record or an error.
    #[test]
    fn corrupt_or_truncated_segments_give_errors_or_the_appended_records_never_a_panic_or_a_wrong_record(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..60),
        damages in proptest::collection::vec(damage(), 1..4),
    ) {
        let dir = TempDir::new().unwrap();
        let options = RelayOptions { segment_max_bytes: 512, sync: SyncPolicy::Manual, write_buffer_bytes: 64 };
        {
            let mut log = RelayLog::open(dir.path(), options.clone()).unwrap();
            for p in &payloads {
                log.append(p).unwrap();
            }
            log.flush().unwrap();
        }
        let mut segments: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                n.len() == dropship_relay::segment_file_name(1).len() && n[..4] == dropship_relay::segment_file_name(1)[..4]
            })
            .collect();
        segments.sort();
        prop_assert!(!segments.is_empty(), "no segment file found to damage");
        for d in &damages {
            match d {
                Damage::Flip { segment, at, mask } => {
                    let p = &segments[segment % segments.len()];
                    let mut b = std::fs::read(p).unwrap();
                    if !b.is_empty() {
                        let i = ((b.len() as f64) * at) as usize % b.len();
                        b[i] ^= mask;
                        std::fs::write(p, b).unwrap();
                    }
                }
                Damage::Truncate { segment, at } => {
                    let p = &segments[segment % segments.len()];
                    let len = std::fs::metadata(p).unwrap().len();
                    let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                    f.set_len(((len as f64) * at) as u64).unwrap();
                }
                Damage::Garbage { segment, bytes } => {
                    use std::io::Write;
                    let p = &segments[segment % segments.len()];
                    let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
                    f.write_all(bytes).unwrap();
                }
            }
        }
        let Ok(log) = RelayLog::open(dir.path(), options) else {
            return Ok(());
        };
        let Ok(mut r) = log.reader(log.first_id()) else {
            return Ok(());
        };
        while let Ok(Some((id, p))) = r.next() {
            prop_assert!(id >= 1 && (id as usize) <= payloads.len(), "id {} of {}", id, payloads.len());
            prop_assert_eq!(&p, &payloads[id as usize - 1], "record {} differs", id);
        }
    }
}
