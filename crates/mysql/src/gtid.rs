//! GTID sets for both flavors, and the text form of a single [`Gtid`].
//!
//! - **MySQL** ([`GtidSet`]): `uuid:1-5:7-9,uuid2:1-3`, with tagged GTIDs
//!   (8.3+) as `uuid:tag:1-5` or mixed `uuid:1-5:tag:1-3`. Intervals are
//!   *closed* (`1-5` holds 1,2,3,4,5), as in `@@gtid_executed`; the binlog's
//!   PREVIOUS_GTIDS event stores them half-open and the decoder converts.
//!   The set keeps intervals sorted, non-overlapping and non-adjacent, so equal
//!   sets format to equal text.
//! - **MariaDB** ([`MariaDbPosition`]): `domain-server-seq` entries, one per
//!   domain (`0-1-100,1-2-5`), as in `@@gtid_binlog_pos` / `@@slave_connect_state`.
//!
//! Parsing fails with a message naming the offending piece of text; nothing
//! here panics on input.

use crate::event::Gtid;
use std::collections::BTreeMap;
use std::fmt;

/// A GTID text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GTID text `{text}`: {why}")]
pub struct GtidParseError {
    pub text: String,
    pub why: &'static str,
}

fn err(text: &str, why: &'static str) -> GtidParseError {
    GtidParseError {
        text: text.to_string(),
        why,
    }
}

/// Formats 16 bytes as the canonical lowercase 8-4-4-4-12 UUID text.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses a UUID with or without dashes (case-insensitive).
pub fn parse_uuid(s: &str) -> Result<[u8; 16], GtidParseError> {
    let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 {
        return Err(err(s, "a server UUID has 32 hex digits"));
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let hi = (pair[0] as char)
            .to_digit(16)
            .ok_or_else(|| err(s, "a server UUID has only hex digits"))?;
        let lo = (pair[1] as char)
            .to_digit(16)
            .ok_or_else(|| err(s, "a server UUID has only hex digits"))?;
        if let Some(slot) = out.get_mut(i) {
            *slot = (hi * 16 + lo) as u8;
        }
    }
    Ok(out)
}

/// Checks and normalizes (lowercases) a GTID tag: `[a-z_][a-z0-9_]{0,31}`.
pub fn parse_tag(s: &str) -> Result<String, GtidParseError> {
    let t = s.trim().to_ascii_lowercase();
    let ok = !t.is_empty()
        && t.len() <= 32
        && t.bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_lowercase() || (i > 0 && b.is_ascii_digit()));
    if ok {
        Ok(t)
    } else {
        Err(err(
            s,
            "a tag is a letter or _ then up to 31 letters, digits or _",
        ))
    }
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::MySql {
                uuid,
                tag: None,
                gno,
            } => write!(f, "{}:{gno}", format_uuid(uuid)),
            Gtid::MySql {
                uuid,
                tag: Some(t),
                gno,
            } => write!(f, "{}:{t}:{gno}", format_uuid(uuid)),
            Gtid::MariaDb {
                domain,
                server,
                seq,
            } => write!(f, "{domain}-{server}-{seq}"),
        }
    }
}

/// MySQL's serialization-library unsigned varlen: the count of trailing one
/// bits of the first byte says how many more bytes follow (8 ones: a plain
/// u64 follows).
pub(crate) fn push_varlen(out: &mut Vec<u8>, v: u64) {
    for n in 1..=8u32 {
        if n < 8 && v >= 1u64 << (7 * n) {
            continue;
        }
        if n == 8 && v >= 1u64 << 56 {
            break;
        }
        let enc = (v << n) | ((1u64 << (n - 1)) - 1);
        out.extend_from_slice(&enc.to_le_bytes()[..n as usize]);
        return;
    }
    out.push(0xff);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A MySQL GTID set: per (server UUID, tag), sorted closed intervals.
/// (server UUID, tag) -> sorted, disjoint, non-adjacent closed intervals.
type Intervals = BTreeMap<([u8; 16], Option<String>), Vec<(u64, u64)>>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    sets: Intervals,
}

impl GtidSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Parses `@@gtid_executed` text. Whitespace and newlines are ignored;
    /// the empty string is the empty set.
    pub fn parse(text: &str) -> Result<GtidSet, GtidParseError> {
        let mut set = GtidSet::new();
        let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for entry in clean.split(',').filter(|e| !e.is_empty()) {
            let mut parts = entry.split(':');
            let uuid = parse_uuid(parts.next().unwrap_or(""))?;
            let mut tag: Option<String> = None;
            let mut any = false;
            for p in parts {
                if p.is_empty() {
                    return Err(err(entry, "empty interval"));
                }
                if p.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                    let (a, b) = match p.split_once('-') {
                        Some((a, b)) => (a, b),
                        None => (p, p),
                    };
                    let a: u64 = a
                        .parse()
                        .map_err(|_| err(entry, "interval bounds are integers"))?;
                    let b: u64 = b
                        .parse()
                        .map_err(|_| err(entry, "interval bounds are integers"))?;
                    if a == 0 || b < a {
                        return Err(err(entry, "intervals are a-b with 1 <= a <= b"));
                    }
                    set.add_interval(uuid, tag.clone(), a, b);
                    any = true;
                } else {
                    tag = Some(parse_tag(p)?);
                    any = false;
                }
            }
            if !any {
                return Err(err(entry, "each uuid or tag needs at least one interval"));
            }
        }
        Ok(set)
    }

    /// Adds the closed interval `start..=end`, merging with neighbors.
    pub fn add_interval(&mut self, uuid: [u8; 16], tag: Option<String>, start: u64, end: u64) {
        if start == 0 || end < start {
            return;
        }
        let v = self.sets.entry((uuid, tag)).or_default();
        v.push((start, end));
        v.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for &(a, b) in v.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *v = merged;
    }

    /// Adds one GTID; MariaDB GTIDs are ignored (use [`MariaDbPosition`]).
    pub fn add(&mut self, gtid: &Gtid) {
        if let Gtid::MySql { uuid, tag, gno } = gtid {
            self.add_interval(*uuid, tag.clone(), *gno, *gno);
        }
    }

    pub fn contains(&self, gtid: &Gtid) -> bool {
        match gtid {
            Gtid::MySql { uuid, tag, gno } => self
                .sets
                .get(&(*uuid, tag.clone()))
                .is_some_and(|v| v.iter().any(|&(a, b)| a <= *gno && *gno <= b)),
            Gtid::MariaDb { .. } => false,
        }
    }

    /// True when every GTID of `other` is in `self`.
    pub fn contains_set(&self, other: &GtidSet) -> bool {
        other.sets.iter().all(|(k, ivs)| {
            let mine = self.sets.get(k);
            ivs.iter()
                .all(|&(a, b)| mine.is_some_and(|m| m.iter().any(|&(x, y)| x <= a && b <= y)))
        })
    }

    /// Whether any interval carries a tag (MySQL 8.3+).
    pub fn has_tags(&self) -> bool {
        self.sets.keys().any(|(_, t)| t.is_some())
    }

    /// The binary form MySQL uses in PREVIOUS_GTIDS events and in
    /// COM_BINLOG_DUMP_GTID requests (intervals are half-open there):
    ///
    /// ```text
    /// untagged: n_sids u64 | { sid[16] | n_intervals u64 | { start u64 | end u64 }* }*
    /// tagged:   (1 << 56 | n_sids << 8 | 1) u64 | { sid[16] | tag_len varlen | tag |
    ///           n_intervals u64 | { start u64 | end u64 }* }*
    /// ```
    ///
    /// The untagged form, which every MySQL since 5.6 reads, is used unless
    /// a tag is present; the tagged form needs MySQL 8.3 or later.
    pub fn encode(&self) -> Vec<u8> {
        let tagged = self.has_tags();
        let n = self.sets.len() as u64;
        let mut out = Vec::with_capacity(8 + self.sets.len() * 40);
        let header = if tagged {
            (1u64 << 56) | (n << 8) | 1
        } else {
            n
        };
        out.extend_from_slice(&header.to_le_bytes());
        for ((uuid, tag), ivs) in &self.sets {
            out.extend_from_slice(uuid);
            if tagged {
                let t = tag.as_deref().unwrap_or("").as_bytes();
                push_varlen(&mut out, t.len() as u64);
                out.extend_from_slice(t);
            }
            out.extend_from_slice(&(ivs.len() as u64).to_le_bytes());
            for &(a, b) in ivs {
                out.extend_from_slice(&a.to_le_bytes());
                out.extend_from_slice(&b.saturating_add(1).to_le_bytes());
            }
        }
        out
    }

    /// Intervals of one (uuid, tag), closed.
    pub fn intervals(&self, uuid: &[u8; 16], tag: Option<&str>) -> &[(u64, u64)] {
        self.sets
            .get(&(*uuid, tag.map(str::to_string)))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

impl fmt::Display for GtidSet {
    /// `uuid:1-5:7,uuid2:1-3:tag:1-2` with UUIDs sorted, untagged intervals first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last_uuid: Option<[u8; 16]> = None;
        for ((uuid, tag), ivs) in &self.sets {
            if last_uuid != Some(*uuid) {
                if last_uuid.is_some() {
                    f.write_str(",")?;
                }
                f.write_str(&format_uuid(uuid))?;
                last_uuid = Some(*uuid);
            }
            if let Some(t) = tag {
                write!(f, ":{t}")?;
            }
            for &(a, b) in ivs {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

/// A MariaDB GTID position: the last GTID of each replication domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MariaDbPosition {
    domains: BTreeMap<u32, (u32, u64)>,
}

impl MariaDbPosition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `0-1-100,1-2-5`; two entries for one domain are an error.
    pub fn parse(text: &str) -> Result<MariaDbPosition, GtidParseError> {
        let mut pos = MariaDbPosition::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let g = parse_mariadb_gtid(entry)?;
            if let Gtid::MariaDb {
                domain,
                server,
                seq,
            } = g
            {
                if pos.domains.insert(domain, (server, seq)).is_some() {
                    return Err(err(
                        entry,
                        "a MariaDB GTID position has one entry per domain",
                    ));
                }
            }
        }
        Ok(pos)
    }

    /// Records `gtid` as its domain's latest; MySQL GTIDs are ignored.
    pub fn update(&mut self, gtid: &Gtid) {
        if let Gtid::MariaDb {
            domain,
            server,
            seq,
        } = gtid
        {
            self.domains.insert(*domain, (*server, *seq));
        }
    }

    /// The latest GTID of `domain`.
    pub fn get(&self, domain: u32) -> Option<Gtid> {
        self.domains
            .get(&domain)
            .map(|&(server, seq)| Gtid::MariaDb {
                domain,
                server,
                seq,
            })
    }

    /// True when `gtid`'s domain is at or past its sequence number.
    pub fn contains(&self, gtid: &Gtid) -> bool {
        match gtid {
            Gtid::MariaDb { domain, seq, .. } => {
                self.domains.get(domain).is_some_and(|&(_, s)| s >= *seq)
            }
            Gtid::MySql { .. } => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

impl fmt::Display for MariaDbPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (d, (s, n))) in self.domains.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}-{s}-{n}")?;
        }
        Ok(())
    }
}

/// Parses one MariaDB GTID `domain-server-seq`.
pub fn parse_mariadb_gtid(s: &str) -> Result<Gtid, GtidParseError> {
    let mut it = s.trim().split('-');
    let (Some(d), Some(sv), Some(n), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(err(s, "a MariaDB GTID is domain-server-seq"));
    };
    Ok(Gtid::MariaDb {
        domain: d.parse().map_err(|_| err(s, "domain is a u32"))?,
        server: sv.parse().map_err(|_| err(s, "server_id is a u32"))?,
        seq: n.parse().map_err(|_| err(s, "seq_no is a u64"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "8a94f357-aab4-11df-86ab-c80aa9429562";

    #[test]
    fn mysql_sets_parse_merge_and_format_canonically() {
        let s = GtidSet::parse(&format!("{U2}:1-3, {U1}:7-9:1-5:6\n")).unwrap();
        assert_eq!(s.to_string(), format!("{U1}:1-9,{U2}:1-3"));
        let u1 = parse_uuid(U1).unwrap();
        assert!(s.contains(&Gtid::MySql {
            uuid: u1,
            tag: None,
            gno: 9
        }));
        assert!(!s.contains(&Gtid::MySql {
            uuid: u1,
            tag: None,
            gno: 10
        }));
        assert_eq!(GtidSet::parse("").unwrap(), GtidSet::new());
    }

    #[test]
    fn tagged_gtids_are_kept_apart_from_untagged_ones() {
        let mut s = GtidSet::parse(&format!("{U1}:1-5:Blue:1-2")).unwrap();
        let u1 = parse_uuid(U1).unwrap();
        assert!(s.contains(&Gtid::MySql {
            uuid: u1,
            tag: Some("blue".into()),
            gno: 2
        }));
        assert!(!s.contains(&Gtid::MySql {
            uuid: u1,
            tag: Some("blue".into()),
            gno: 3
        }));
        s.add(&Gtid::MySql {
            uuid: u1,
            tag: Some("blue".into()),
            gno: 3,
        });
        assert_eq!(s.to_string(), format!("{U1}:1-5:blue:1-3"));
        assert_eq!(GtidSet::parse(&s.to_string()).unwrap(), s);
        assert_eq!(
            Gtid::MySql {
                uuid: u1,
                tag: Some("blue".into()),
                gno: 3
            }
            .to_string(),
            format!("{U1}:blue:3")
        );
    }

    #[test]
    fn adding_adjacent_gtids_joins_intervals_and_set_containment_works() {
        let u1 = parse_uuid(U1).unwrap();
        let mut s = GtidSet::new();
        for g in [1, 2, 4, 3, 10] {
            s.add(&Gtid::MySql {
                uuid: u1,
                tag: None,
                gno: g,
            });
        }
        assert_eq!(s.to_string(), format!("{U1}:1-4:10"));
        assert!(s.contains_set(&GtidSet::parse(&format!("{U1}:2-3")).unwrap()));
        assert!(!s.contains_set(&GtidSet::parse(&format!("{U1}:4-5")).unwrap()));
    }

    #[test]
    fn bad_mysql_sets_are_rejected_with_the_offending_text() {
        for bad in [
            "nope:1",
            U1,
            &format!("{U1}:0-3"),
            &format!("{U1}:5-3"),
            &format!("{U1}:1-x"),
        ] {
            let e = GtidSet::parse(bad).unwrap_err();
            assert!(!e.text.is_empty(), "{bad}");
        }
    }

    #[test]
    fn mariadb_positions_keep_one_entry_per_domain() {
        let mut p = MariaDbPosition::parse("1-2-5, 0-1-100").unwrap();
        assert_eq!(p.to_string(), "0-1-100,1-2-5");
        p.update(&Gtid::MariaDb {
            domain: 0,
            server: 3,
            seq: 101,
        });
        assert_eq!(p.to_string(), "0-3-101,1-2-5");
        assert!(p.contains(&Gtid::MariaDb {
            domain: 1,
            server: 9,
            seq: 5
        }));
        assert!(!p.contains(&Gtid::MariaDb {
            domain: 2,
            server: 9,
            seq: 1
        }));
        assert!(MariaDbPosition::parse("0-1-1,0-1-2").is_err());
        assert!(MariaDbPosition::parse("0-1").is_err());
        assert_eq!(
            Gtid::MariaDb {
                domain: 0,
                server: 1,
                seq: 7
            }
            .to_string(),
            "0-1-7"
        );
    }
}
