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
