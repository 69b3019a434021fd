//! The GTID state the reader carries in each position: MariaDB's
//! `gtid_binlog_pos` form (one `domain-server-seq` per domain) or MySQL's
//! executed set (`uuid:1-100:200-300`, closed intervals). Only appends in
//! binlog order are needed here, so a gap-free run extends its last interval.

use dropship_mysql::Gtid;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidState {
    mariadb: BTreeMap<u32, (u32, u64)>,
    mysql: BTreeMap<String, Vec<(u64, u64)>>,
}

/// `uuid:gno`, `uuid:tag:gno` or `domain-server-seq`.
pub fn gtid_to_string(g: &Gtid) -> String {
    match g {
        Gtid::MariaDb {
            domain,
            server,
            seq,
        } => format!("{domain}-{server}-{seq}"),
        Gtid::MySql { uuid, tag, gno } => {
            let u = uuid.iter().map(|b| format!("{b:02x}")).collect::<String>();
            let u = format!(
                "{}-{}-{}-{}-{}",
                &u[0..8],
                &u[8..12],
                &u[12..16],
                &u[16..20],
                &u[20..32]
            );
            match tag {
                Some(t) => format!("{u}:{t}:{gno}"),
                None => format!("{u}:{gno}"),
            }
        }
    }
}

impl GtidState {
    /// Parses a state; unparseable parts are dropped (the state is
    /// informational: resumption uses file and offset).
    pub fn parse(mariadb: bool, s: &str) -> GtidState {
        let mut st = GtidState::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if mariadb {
                let n: Vec<&str> = part.split('-').collect();
                if let [d, sv, q] = n.as_slice() {
                    if let (Ok(d), Ok(sv), Ok(q)) = (d.parse(), sv.parse(), q.parse()) {
                        st.mariadb.insert(d, (sv, q));
                    }
                }
            } else {
                let mut it = part.split(':');
                let Some(uuid) = it.next() else { continue };
                let mut key = uuid.to_string();
                for iv in it {
                    if iv
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    {
                        key = format!("{uuid}:{iv}");
                        continue;
                    }
                    let (a, b) = iv.split_once('-').unwrap_or((iv, iv));
                    if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                        st.mysql.entry(key.clone()).or_default().push((a, b));
                    }
                }
            }
        }
        st
    }

    pub fn is_empty(&self) -> bool {
        self.mariadb.is_empty() && self.mysql.is_empty()
    }

    /// Adds one GTID given as text (the form [`gtid_to_string`] writes).
    pub fn apply(&mut self, g: &str) {
        let n: Vec<&str> = g.split('-').collect();
        if let [d, s, q] = n.as_slice() {
            if let (Ok(d), Ok(s), Ok(q)) = (d.parse(), s.parse(), q.parse()) {
                self.mariadb.insert(d, (s, q));
                return;
            }
        }
        if let Some((key, gno)) = g.rsplit_once(':') {
            if let Ok(gno) = gno.parse::<u64>() {
                let v = self.mysql.entry(key.to_string()).or_default();
                if v.iter().any(|&(a, b)| a <= gno && gno <= b) {
                    return;
                }
                match v.last_mut() {
                    Some(last) if last.1 + 1 == gno => last.1 = gno,
                    _ => {
                        v.push((gno, gno));
                        v.sort_unstable();
                    }
                }
            }
        }
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (d, (s, q)) in &self.mariadb {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{d}-{s}-{q}")?;
        }
        for (k, ivs) in &self.mysql {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(k)?;
            for (a, b) in ivs {
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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn mariadb_state_keeps_the_last_seq_per_domain() {
        let mut s = GtidState::parse(true, "0-1-100,1-2-5");
        s.apply("0-1-101");
        assert_eq!(s.to_string(), "0-1-101,1-2-5");
    }
    #[test]
    fn mysql_sets_extend_intervals_in_order() {
        let mut s = GtidState::parse(false, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5");
        s.apply("3e11fa47-71ca-11e1-9e33-c80aa9429562:6");
        s.apply("3e11fa47-71ca-11e1-9e33-c80aa9429562:9");
        assert_eq!(s.to_string(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-6:9");
        let g = Gtid::MySql {
            uuid: [0x3e; 16],
            tag: None,
            gno: 7,
        };
        assert!(gtid_to_string(&g).ends_with(":7"));
    }
}
