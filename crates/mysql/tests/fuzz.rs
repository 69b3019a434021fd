//! Hostile input never panics the decoder: corpus files with mutated bytes
//! (with and without fixed-up CRCs, so mutations reach the body parsers),
//! truncated files, and random bytes, through the file reader and straight
//! into [`Decoder::decode`].

mod common;

use dropship_mysql::binlog::{file, format, DecodeError, Decoder};
use dropship_mysql::{Event, EventHeader};
use proptest::prelude::*;
use std::sync::OnceLock;

/// Corpus files small enough to decode thousands of times, with the
/// (offset, size) of every event whose CRC32 trailer is valid.
type Corpus = Vec<(Vec<u8>, Vec<(usize, usize)>)>;

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let Some(dir) = common::fixtures() else {
            return Vec::new();
        };
        common::corpus_files(&dir)
            .into_iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter(|b| b.len() <= 40_000)
            .map(|b| {
                let crcs = checksummed_events(&b);
                (b, crcs)
            })
            .collect()
    })
}

fn checksummed_events(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 4;
    while off + 19 <= b.len() {
        let size = u32::from_le_bytes([b[off + 9], b[off + 10], b[off + 11], b[off + 12]]) as usize;
        if size < 23 || off + size > b.len() {
            break;
        }
        let ev = &b[off..off + size];
        let want = u32::from_le_bytes([ev[size - 4], ev[size - 3], ev[size - 2], ev[size - 1]]);
        if format::event_crc(&ev[..size - 4], ev[4]) == want {
            out.push((off, size));
        }
        off += size;
    }
    out
}

fn fix_crcs(b: &mut [u8], events: &[(usize, usize)]) {
    for &(off, size) in events {
        let Some(ev) = b.get(off..off + size) else {
            continue;
        };
        let crc = format::event_crc(&ev[..size - 4], ev[4]);
        b[off + size - 4..off + size].copy_from_slice(&crc.to_le_bytes());
    }
}

fn run_file(bytes: &[u8]) -> Result<u64, DecodeError> {
    let mut n = 0u64;
    let mut sink = |_h: EventHeader, _e: Event| -> Result<(), DecodeError> {
        n += 1;
        Ok(())
    };
    file::read_bytes("fuzz", bytes, &mut sink)?;
    Ok(n)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus_files_never_panic_the_file_reader(
        pick in any::<prop::sample::Index>(),
        muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        fix in any::<bool>(),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let c = corpus();
        if c.is_empty() {
            return Ok(());
        }
        let (orig, crcs) = &c[pick.index(c.len())];
        let mut b = orig.clone();
        for (at, v) in &muts {
            let i = at.index(b.len());
            b[i] = *v;
        }
        if fix {
            fix_crcs(&mut b, crcs);
        }
        if let Some(cut) = cut {
            b.truncate(cut.index(b.len() + 1));
        }
        let _ = run_file(&b);
    }

    #[test]
    fn random_events_after_a_real_format_description_never_panic_the_decoder(
        body in prop::collection::vec(any::<u8>(), 0..300),
        type_code in any::<u8>(),
        checksum_file in any::<bool>(),
    ) {
        let c = corpus();
        if c.is_empty() {
            return Ok(());
        }
        // The FDE of a checksummed 5.7 file or of a checksum-less one.
        let (orig, _) = c
            .iter()
            .find(|(b, crcs)| (crcs.len() > 1) == checksum_file && b.len() > 200)
            .unwrap_or(&c[0]);
        let fde_size = u32::from_le_bytes([orig[13], orig[14], orig[15], orig[16]]) as usize;
        let mut d = Decoder::new();
        let mut sink = |_h: EventHeader, _e: Event| -> Result<(), DecodeError> { Ok(()) };
        let _ = d.decode_at(&orig[4..4 + fde_size.min(orig.len() - 4)], 4, &mut sink);
        let mut ev = vec![0u8; 19];
        ev[4] = type_code;
        ev.extend_from_slice(&body);
        let len = ev.len() as u32 + if checksum_file { 4 } else { 0 };
        ev[9..13].copy_from_slice(&len.to_le_bytes());
        if checksum_file {
            let crc = format::event_crc(&ev, type_code);
            ev.extend_from_slice(&crc.to_le_bytes());
        }
        let _ = d.decode_at(&ev, 1000, &mut sink);
    }

    #[test]
    fn random_bytes_behind_the_magic_never_panic_the_file_reader(
        tail in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut b = file::MAGIC.to_vec();
        b.extend_from_slice(&tail);
        let _ = run_file(&b);
    }
}

#[test]
fn a_flipped_byte_in_a_checksummed_event_is_a_checksum_error_naming_its_offset() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let p = dir.join("mysql-binlog-connector-java/mysql-bin.checksum-crc32");
    let mut b = std::fs::read(p).unwrap();
    let events = checksummed_events(&b);
    assert!(events.len() > 10);
    let (off, size) = events[5];
    b[off + size / 2] ^= 0x40;
    let mut seen = Vec::new();
    let mut sink = |h: EventHeader, _e: Event| -> Result<(), DecodeError> {
        seen.push(h.offset);
        Ok(())
    };
    let err = file::read_bytes("crc.bin", &b, &mut sink).unwrap_err();
    assert_eq!(err.offset(), Some(off as u64));
    let msg = err.to_string();
    assert!(
        msg.contains("checksum mismatch")
            && msg.contains(&format!("offset {off}"))
            && msg.contains("crc.bin"),
        "{msg}"
    );
    // The events before the bad one were all delivered.
    assert_eq!(
        seen,
        events[..5].iter().map(|e| e.0 as u64).collect::<Vec<_>>()
    );
}

#[test]
fn a_truncated_file_reports_the_offset_and_sizes_after_delivering_earlier_events() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let b =
        std::fs::read(dir.join("mysql-binlog-connector-java/mysql-bin.checksum-crc32")).unwrap();
    let events = checksummed_events(&b);
    let (off, size) = events[3];
    let cut = &b[..off + size - 7];
    let mut n = 0;
    let mut sink = |_h: EventHeader, _e: Event| -> Result<(), DecodeError> {
        n += 1;
        Ok(())
    };
    let err = file::read_bytes("cut.bin", cut, &mut sink).unwrap_err();
    assert_eq!(n, 3);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("truncated event at offset {off}")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("header says {size} bytes, {} present", size - 7)),
        "{msg}"
    );
}

#[test]
fn the_fuzz_corpus_is_loaded_when_fixtures_exist() {
    if common::fixtures().is_none() {
        return;
    }
    let c = corpus();
    assert!(c.len() > 70, "{} files", c.len());
    assert!(c.iter().filter(|(_, crcs)| !crcs.is_empty()).count() > 40);
    // Unmutated files decode; the proptests start from working input.
    let ok = c.iter().filter(|(b, _)| run_file(b).is_ok()).count();
    assert!(ok > 60, "{ok}");
}

#[test]
fn a_corrupt_compressed_payload_is_an_error_naming_the_payload_offset_not_lost_rows() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let mut b =
        std::fs::read(dir.join("rust_mysql_common/transaction_compression.000001")).unwrap();
    let events = checksummed_events(&b);
    let &(off, size) = events.iter().find(|(o, _)| b[o + 4] == 40).unwrap();
    // Damage the zstd frame (past the payload header) and re-seal the CRC, so
    // only the decompressor can notice.
    for x in &mut b[(off + size - 30)..(off + size - 10)] {
        *x ^= 0x5a;
    }
    fix_crcs(&mut b, &events);
    let mut kinds = Vec::new();
    let mut sink = |h: EventHeader, _e: Event| -> Result<(), DecodeError> {
        kinds.push(h.type_code);
        Ok(())
    };
    let err = file::read_bytes("zstd.bin", &b, &mut sink).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.offset(), Some(off as u64), "{msg}");
    assert!(
        msg.contains(&format!("transaction payload at offset {off}")),
        "{msg}"
    );
    // No inner XID was delivered: the transaction is not mistaken for complete.
    assert!(!kinds.contains(&16), "{kinds:?}");
}
