//! The decoder on hand-built events: flavors' special events, the rules for
//! unknown and ignorable events, checksums, and sink errors. No fixtures needed.

use dropship_mysql::binlog::{format, types, DecodeError, Decoder};
use dropship_mysql::{Event, EventHeader, Gtid};

/// Builds a whole event: header (event_size and log_pos filled in) + body + CRC.
fn event(type_code: u8, flags: u16, body: &[u8], crc: bool, offset: u32) -> Vec<u8> {
    let size = 19 + body.len() + if crc { 4 } else { 0 };
    let mut e = Vec::with_capacity(size);
    e.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    e.push(type_code);
    e.extend_from_slice(&7u32.to_le_bytes());
    e.extend_from_slice(&(size as u32).to_le_bytes());
    e.extend_from_slice(&(offset + size as u32).to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e.extend_from_slice(body);
    if crc {
        let c = format::event_crc(&e, type_code);
        e.extend_from_slice(&c.to_le_bytes());
    }
    e
}

fn fde(version: &str, crc: bool) -> Vec<u8> {
    let mut b = 4u16.to_le_bytes().to_vec();
    let mut v = version.as_bytes().to_vec();
    v.resize(50, 0);
    b.extend_from_slice(&v);
    b.extend_from_slice(&0u32.to_le_bytes());
    b.push(19);
    let mut post = vec![0u8; 171];
    for (t, l) in [
        (2, 13),
        (4, 8),
        (15, 98),
        (19, 8),
        (23, 8),
        (24, 8),
        (25, 8),
        (26, 2),
        (30, 10),
        (31, 10),
        (32, 10),
        (39, 10),
    ] {
        post[t - 1] = l;
    }
    b.extend_from_slice(&post);
    b.push(u8::from(crc));
    // The in-use flag is set, as in a live binlog; the CRC must still match.
    event(types::FORMAT_DESCRIPTION, 0x1, &b, true, 4)
}

fn decode_all(
    d: &mut Decoder,
    evs: &[Vec<u8>],
) -> (Vec<(EventHeader, Event)>, Option<DecodeError>) {
    let mut out = Vec::new();
    let mut off = 4u64;
    for e in evs {
        let mut sink = |h: EventHeader, ev: Event| -> Result<(), DecodeError> {
            out.push((h, ev));
            Ok(())
        };
        if let Err(err) = d.decode_at(e, off, &mut sink) {
            return (out, Some(err));
        }
        off += e.len() as u64;
    }
    (out, None)
}

#[test]
fn mariadb_gtid_list_checkpoint_and_gtid_events_decode_with_flags() {
    let mut d = Decoder::new();
    let mut gtid = 42u64.to_le_bytes().to_vec();
    gtid.extend_from_slice(&3u32.to_le_bytes());
    gtid.push(0x1 | 0x2); // FL_STANDALONE | FL_GROUP_COMMIT_ID
    gtid.extend_from_slice(&99u64.to_le_bytes());
    let mut list = 2u32.to_le_bytes().to_vec();
    for (dom, srv, seq) in [(0u32, 1u32, 100u64), (1, 2, 5)] {
        list.extend_from_slice(&dom.to_le_bytes());
        list.extend_from_slice(&srv.to_le_bytes());
        list.extend_from_slice(&seq.to_le_bytes());
    }
    let mut cp = 9u32.to_le_bytes().to_vec();
    cp.extend_from_slice(b"bin.00001");
    let (evs, err) = decode_all(
        &mut d,
        &[
            fde("10.11.6-MariaDB-log", true),
            event(types::MARIADB_GTID_LIST, 0, &list, true, 0),
            event(types::MARIADB_BINLOG_CHECKPOINT, 0, &cp, true, 0),
            event(types::MARIADB_GTID, 0, &gtid, true, 0),
            event(
                types::MARIADB_ANNOTATE_ROWS,
                0,
                b"INSERT INTO t VALUES (1)",
                true,
                0,
            ),
        ],
    );
    assert!(err.is_none(), "{err:?}");
    let evs: Vec<Event> = evs.into_iter().map(|e| e.1).collect();
    assert_eq!(evs[1], Event::GtidSet("0-1-100,1-2-5".into()));
    assert_eq!(evs[2], Event::BinlogCheckpoint("bin.00001".into()));
    assert_eq!(
        evs[3],
        Event::Gtid {
            gtid: Gtid::MariaDb {
                domain: 3,
                server: 7,
                seq: 42
            },
            standalone: true
        }
    );
    assert_eq!(
        evs[4],
        Event::RowsQuery(b"INSERT INTO t VALUES (1)".to_vec())
    );
}

#[test]
fn mariadb_compressed_events_are_refused_with_a_hint() {
    for code in 165..=171u8 {
        let mut d = Decoder::new();
        let (_, err) = decode_all(
            &mut d,
            &[
                fde("10.6.1-MariaDB", false),
                event(code, 0, &[1, 2, 3], false, 0),
            ],
        );
        let err = err.unwrap();
        assert!(matches!(err, DecodeError::Unsupported { type_code, .. } if type_code == code));
        assert!(err.to_string().contains("log_bin_compress"), "{err}");
        assert!(
            !err.to_string().contains("hint"),
            "the hint is apart: {err}"
        );
        assert_eq!(err.hint(), Some("set log_bin_compress=OFF on the source"));
    }
}

#[test]
fn unknown_events_are_refused_unless_flagged_ignorable() {
    let mut d = Decoder::new();
    let (evs, err) = decode_all(
        &mut d,
        &[fde("8.0.36", true), event(77, 0x80, b"xyz", true, 0)],
    );
    assert!(err.is_none());
    assert_eq!(
        evs[1].1,
        Event::Ignored {
            what: "unknown ignorable event"
        }
    );
    let (_, err) = decode_all(&mut d, &[event(77, 0, b"xyz", true, 0)]);
    let msg = err.unwrap().to_string();
    assert!(
        msg.contains("unsupported event at offset 4 (type 77"),
        "{msg}"
    );
}

#[test]
fn a_crc_mismatch_names_the_offset_and_both_checksums() {
    let mut d = Decoder::new();
    let mut xid = event(types::XID, 0, &5u64.to_le_bytes(), true, 0);
    xid[20] ^= 1;
    let (evs, err) = decode_all(&mut d, &[fde("8.0.36", true), xid]);
    assert_eq!(evs.len(), 1);
    let err = err.unwrap();
    assert!(matches!(err, DecodeError::Checksum { offset, type_code: 16, .. } if offset > 4));
    assert!(err.to_string().contains("checksum mismatch at offset"));
}

#[test]
fn checksums_off_means_no_trailer_is_expected() {
    let mut d = Decoder::new();
    let (evs, err) = decode_all(
        &mut d,
        &[
            fde("5.7.20-log", false),
            event(types::XID, 0, &5u64.to_le_bytes(), false, 0),
        ],
    );
    assert!(err.is_none(), "{err:?}");
    assert_eq!(evs[1].1, Event::Xid(5));
    assert!(!d.checksum());
}

#[test]
fn the_fake_rotate_before_any_format_description_is_read_with_or_without_crc() {
    let mut body = 4u64.to_le_bytes().to_vec();
    body.extend_from_slice(b"binlog.000042");
    for crc in [false, true] {
        let mut d = Decoder::new();
        let (evs, err) = decode_all(&mut d, &[event(types::ROTATE, 0x20, &body, crc, 0)]);
        assert!(err.is_none());
        assert_eq!(
            evs[0].1,
            Event::Rotate {
                file: "binlog.000042".into(),
                position: 4
            }
        );
        assert!(evs[0].0.artificial);
    }
}

#[test]
fn rows_before_a_table_map_or_a_format_description_are_errors() {
    let mut d = Decoder::new();
    let rows = event(
        types::WRITE_ROWS_V2,
        0,
        &[1, 0, 0, 0, 0, 0, 1, 0, 2, 0, 1, 1, 0],
        true,
        0,
    );
    let (_, err) = decode_all(&mut d, std::slice::from_ref(&rows));
    assert!(matches!(err, Some(DecodeError::NoFormatDescription { .. })));
    let (_, err) = decode_all(&mut d, &[fde("8.0.36", true), rows]);
    assert!(
        matches!(err, Some(DecodeError::UnknownTable { table_id: 1, .. })),
        "{err:?}"
    );
}

#[test]
fn a_sink_error_stops_decoding_and_is_returned() {
    let mut d = Decoder::new();
    let f = fde("8.0.36", true);
    let mut sink = |_h: EventHeader, _e: Event| -> Result<(), DecodeError> {
        Err(DecodeError::Sink("disk full".into()))
    };
    let err = d.decode(&f, &mut sink).unwrap_err();
    assert_eq!(err.to_string(), "event sink failed: disk full");
}

#[test]
fn an_event_shorter_than_its_header_says_is_truncated_not_a_panic() {
    let mut d = Decoder::new();
    let f = fde("8.0.36", true);
    let mut sink = |_h: EventHeader, _e: Event| -> Result<(), DecodeError> { Ok(()) };
    let err = d.decode_at(&f[..40], 4, &mut sink).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "truncated event at offset 4 (type 15): header says {} bytes, 40 present",
            f.len()
        )
    );
    assert!(d.decode_at(&f[..5], 4, &mut sink).is_err());
}
