//! Just enough DDL parsing to route schema changes: which statement kind and
//! which tables it touches, and rewriting database names for renames.
//!
//! Supported: ALTER TABLE, TRUNCATE [TABLE], RENAME TABLE a TO b[, ...],
//! DROP TABLE [IF EXISTS] a[, ...], CREATE TABLE [IF NOT EXISTS] t ...,
//! CREATE [UNIQUE|FULLTEXT|SPATIAL] INDEX i ON t, DROP INDEX i ON t.
//! Anything else returns `None` (not a table DDL dropship follows).

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdlKind {
    AlterTable,
    Truncate,
    Rename,
    DropTable,
    CreateTable,
    CreateIndex,
    DropIndex,
}

/// A parsed DDL: its kind and the tables it names, as (database or None, table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ddl {
    pub kind: DdlKind,
    pub tables: Vec<(Option<String>, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Dot,
    Comma,
    Other,
}

fn tokenize(sql: &str, limit: usize) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() && out.len() < limit {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            // Comments, including /*!40000 ... */ version comments: skip the marker only.
            if b.get(i + 2) == Some(&b'!') {
                i += 3;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                match sql[i + 2..].find("*/") {
                    Some(e) => i = i + 2 + e + 2,
                    None => break,
                }
            }
        } else if c == b'*' && b.get(i + 1) == Some(&b'/') {
            i += 2;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') || c == b'#' {
            match sql[i..].find('\n') {
                Some(e) => i += e + 1,
                None => break,
            }
        } else if c == b'`' {
            let mut s = String::new();
            i += 1;
            let start = i;
            let mut seg = start;
            loop {
                match b.get(i) {
                    None => break,
                    Some(b'`') if b.get(i + 1) == Some(&b'`') => {
                        s.push_str(&sql[seg..=i]);
                        i += 2;
                        seg = i;
                    }
                    Some(b'`') => {
                        s.push_str(&sql[seg..i]);
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            out.push(Tok::Quoted(s));
        } else if c == b'.' {
            out.push(Tok::Dot);
            i += 1;
        } else if c == b',' {
            out.push(Tok::Comma);
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push(Tok::Word(sql[start..i].to_string()));
        } else {
            out.push(Tok::Other);
            i += 1;
        }
    }
    out
}

fn kw(t: Option<&Tok>, k: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
}

fn name_at(toks: &[Tok], i: &mut usize) -> Option<(Option<String>, String)> {
    let first = match toks.get(*i)? {
        Tok::Word(w) | Tok::Quoted(w) => w.clone(),
        _ => return None,
    };
    *i += 1;
    if toks.get(*i) == Some(&Tok::Dot) {
        if let Some(Tok::Word(w) | Tok::Quoted(w)) = toks.get(*i + 1) {
            *i += 2;
            return Some((Some(first), w.clone()));
        }
    }
    Some((None, first))
}

/// Parses a statement; `None` when it is not a table DDL.
pub fn parse(sql: &str) -> Option<Ddl> {
    let toks = tokenize(sql, 4096);
    let mut i;
    let w = |i: usize, k: &str| kw(toks.get(i), k);
    if w(0, "ALTER") {
        i = 1;
        while w(i, "ONLINE") || w(i, "IGNORE") {
            i += 1;
        }
        if !w(i, "TABLE") {
            return None;
        }
        i += 1;
        if w(i, "IF") && w(i + 1, "EXISTS") {
            i += 2;
        }
        let t = name_at(&toks, &mut i)?;
        // ALTER TABLE a RENAME [TO|AS] b is a rename.
        let mut j = i;
        while j < toks.len() {
            if w(j, "RENAME") && !(w(j + 1, "COLUMN") || w(j + 1, "INDEX") || w(j + 1, "KEY")) {
                let mut k = j + 1;
                if w(k, "TO") || w(k, "AS") {
                    k += 1;
                }
                if let Some(n) = name_at(&toks, &mut k) {
                    return Some(Ddl {
                        kind: DdlKind::Rename,
                        tables: vec![t, n],
                    });
                }
            }
            j += 1;
        }
        return Some(Ddl {
            kind: DdlKind::AlterTable,
            tables: vec![t],
        });
    }
    if w(0, "TRUNCATE") {
        i = 1;
        if w(i, "TABLE") {
            i += 1;
        }
        return Some(Ddl {
            kind: DdlKind::Truncate,
            tables: vec![name_at(&toks, &mut i)?],
        });
    }
    if w(0, "RENAME") && w(1, "TABLE") {
        i = 2;
        let mut tables = Vec::new();
        loop {
            tables.push(name_at(&toks, &mut i)?);
            if !w(i, "TO") {
                return None;
            }
            i += 1;
            tables.push(name_at(&toks, &mut i)?);
            if toks.get(i) == Some(&Tok::Comma) {
                i += 1;
            } else {
                break;
            }
        }
        return Some(Ddl {
            kind: DdlKind::Rename,
            tables,
        });
    }
    if w(0, "DROP") {
        i = 1;
        if w(i, "TEMPORARY") {
            return None;
        }
        if w(i, "INDEX") {
            i += 1;
            name_at(&toks, &mut i)?;
            if !w(i, "ON") {
                return None;
            }
            i += 1;
            return Some(Ddl {
                kind: DdlKind::DropIndex,
                tables: vec![name_at(&toks, &mut i)?],
            });
        }
        if !w(i, "TABLE") {
            return None;
        }
        i += 1;
        if w(i, "IF") && w(i + 1, "EXISTS") {
            i += 2;
        }
        let mut tables = Vec::new();
        loop {
            tables.push(name_at(&toks, &mut i)?);
            if toks.get(i) == Some(&Tok::Comma) {
                i += 1;
            } else {
                break;
            }
        }
        return Some(Ddl {
            kind: DdlKind::DropTable,
            tables,
        });
    }
    if w(0, "CREATE") {
        i = 1;
        if w(i, "OR") && w(i + 1, "REPLACE") {
            i += 2;
        }
        if w(i, "TEMPORARY") {
            return None;
        }
        if w(i, "UNIQUE") || w(i, "FULLTEXT") || w(i, "SPATIAL") {
            i += 1;
        }
        if w(i, "INDEX") {
            i += 1;
            if w(i, "IF") && w(i + 1, "NOT") && w(i + 2, "EXISTS") {
                i += 3;
            }
            name_at(&toks, &mut i)?;
            while i < toks.len() && !w(i, "ON") {
                i += 1;
            }
            i += 1;
            return Some(Ddl {
                kind: DdlKind::CreateIndex,
                tables: vec![name_at(&toks, &mut i)?],
            });
        }
        if !w(i, "TABLE") {
            return None;
        }
        i += 1;
        if w(i, "IF") && w(i + 1, "NOT") && w(i + 2, "EXISTS") {
            i += 3;
        }
        let t = name_at(&toks, &mut i)?;
        let mut tables = vec![t];
        if w(i, "LIKE") {
            i += 1;
            tables.push(name_at(&toks, &mut i)?);
        }
        return Some(Ddl {
            kind: DdlKind::CreateTable,
            tables,
        });
    }
    None
}

/// The table a single-table DML statement writes (INSERT/REPLACE [INTO] t,
/// UPDATE t, DELETE FROM t, LOAD DATA ... INTO TABLE t), or `None` when the
/// statement is not one of those or names several tables.
pub fn dml_table(sql: &str) -> Option<(Option<String>, String)> {
    let toks = tokenize(sql, 64);
    let w = |i: usize, k: &str| kw(toks.get(i), k);
    let mut i;
    if w(0, "INSERT") || w(0, "REPLACE") {
        i = 1;
        while w(i, "LOW_PRIORITY") || w(i, "DELAYED") || w(i, "HIGH_PRIORITY") || w(i, "IGNORE") {
            i += 1;
        }
        if w(i, "INTO") {
            i += 1;
        }
        return name_at(&toks, &mut i);
    }
    if w(0, "UPDATE") {
        i = 1;
        while w(i, "LOW_PRIORITY") || w(i, "IGNORE") {
            i += 1;
        }
        let t = name_at(&toks, &mut i)?;
        // `UPDATE a, b SET ...` or a join: several tables.
        if toks.get(i) == Some(&Tok::Comma) || w(i, "JOIN") || w(i + 1, "JOIN") {
            return None;
        }
        return Some(t);
    }
    if w(0, "DELETE") {
        i = 1;
        while w(i, "LOW_PRIORITY") || w(i, "QUICK") || w(i, "IGNORE") {
            i += 1;
        }
        if !w(i, "FROM") {
            return None;
        }
        i += 1;
        let t = name_at(&toks, &mut i)?;
        if toks.get(i) == Some(&Tok::Comma) || w(i, "USING") || w(i, "JOIN") {
            return None;
        }
        return Some(t);
    }
    if w(0, "LOAD") {
        let into = (0..toks.len()).find(|&j| w(j, "INTO") && w(j + 1, "TABLE"))?;
        let mut i = into + 2;
        return name_at(&toks, &mut i);
    }
    None
}

/// Rewrites qualified references `` `from`. `` / `from.` to the renamed
/// databases. Unqualified names are left alone (the statement runs with the
/// renamed default database).
pub fn rewrite_databases(sql: &str, renames: &BTreeMap<String, String>) -> String {
    if renames.is_empty() {
        return sql.to_string();
    }
    let mut out = sql.to_string();
    for (from, to) in renames {
        let q_from = format!("{}.", crate::sql::ident(from));
        let q_to = format!("{}.", crate::sql::ident(to));
        out = out.replace(&q_from, &q_to);
        // Unquoted `from.` at a word boundary.
        let pat = format!("{from}.");
        let mut res = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(p) = rest.find(&pat) {
            let before = rest[..p].chars().last();
            let boundary = before.is_none_or(|c| {
                !(c.is_alphanumeric() || c == '_' || c == '$' || c == '`' || c == '.')
            });
            res.push_str(&rest[..p]);
            if boundary {
                res.push_str(&q_to);
            } else {
                res.push_str(&pat);
            }
            rest = &rest[p + pat.len()..];
        }
        res.push_str(rest);
        out = res;
    }
    out
}

/// Server error codes that mean "this DDL already took effect" when a DDL is
/// re-run after a crash between running it and recording its position.
/// Like [`already_applied_code`], with the message for errors whose code is shared: MariaDB reports a
/// foreign key name that exists as `1005 Can't create table ... (errno: 121 "Duplicate key on write or
/// update")`.
pub fn already_applied(code: u16, message: &str) -> bool {
    already_applied_code(code) || (code == 1005 && message.contains("errno: 121"))
}

pub fn already_applied_code(code: u16) -> bool {
    matches!(
        code,
        1050 | 1051 | 1060 | 1061 | 1091 | 1146 | 1054 | 1826 | 1022
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(sql: &str) -> Vec<(Option<String>, String)> {
        parse(sql).unwrap().tables
    }

    #[test]
    fn common_table_ddl_is_recognised_with_its_tables() {
        assert_eq!(
            parse("ALTER TABLE `shop`.`users` ADD COLUMN x INT")
                .unwrap()
                .kind,
            DdlKind::AlterTable
        );
        assert_eq!(
            tables("alter table users drop column x"),
            vec![(None, "users".into())]
        );
        assert_eq!(
            tables("TRUNCATE shop.orders"),
            vec![(Some("shop".into()), "orders".into())]
        );
        assert_eq!(tables("RENAME TABLE a TO b, shop.c TO shop.d").len(), 4);
        assert_eq!(
            tables("DROP TABLE IF EXISTS `a`, `b` /* generated by server */").len(),
            2
        );
        assert_eq!(
            parse("CREATE TABLE IF NOT EXISTS `order_x` (id int primary key)")
                .unwrap()
                .kind,
            DdlKind::CreateTable
        );
        assert_eq!(
            tables("CREATE UNIQUE INDEX ix ON t (a)"),
            vec![(None, "t".into())]
        );
        assert_eq!(
            parse("ALTER TABLE t RENAME TO u").unwrap().kind,
            DdlKind::Rename
        );
        assert_eq!(
            parse("ALTER TABLE t RENAME COLUMN a TO b").unwrap().kind,
            DdlKind::AlterTable
        );
        assert!(parse("INSERT INTO t VALUES (1)").is_none());
        assert!(parse("CREATE TEMPORARY TABLE t (a int)").is_none());
        assert_eq!(
            tables("ALTER TABLE `my``t` ADD x INT"),
            vec![(None, "my`t".into())]
        );
    }

    #[test]
    fn dml_targets_are_found_for_single_table_statements() {
        assert_eq!(
            dml_table("REPLACE INTO `percona`.`checksums` (db) SELECT 1"),
            Some((Some("percona".into()), "checksums".into()))
        );
        assert_eq!(
            dml_table("insert ignore into t values (1)"),
            Some((None, "t".into()))
        );
        assert_eq!(
            dml_table("UPDATE shop.users SET a=1"),
            Some((Some("shop".into()), "users".into()))
        );
        assert_eq!(
            dml_table("DELETE FROM u WHERE id=1"),
            Some((None, "u".into()))
        );
        assert_eq!(dml_table("UPDATE a, b SET a.x=b.x"), None);
        assert_eq!(dml_table("DELETE a FROM a JOIN b"), None);
    }

    #[test]
    fn database_renames_rewrite_qualified_names_only() {
        let mut r = BTreeMap::new();
        r.insert("shop".to_string(), "users".to_string());
        assert_eq!(
            rewrite_databases("ALTER TABLE `shop`.`u` ADD c INT", &r),
            "ALTER TABLE `users`.`u` ADD c INT"
        );
        assert_eq!(
            rewrite_databases("RENAME TABLE shop.a TO shop.b", &r),
            "RENAME TABLE `users`.a TO `users`.b"
        );
        assert_eq!(
            rewrite_databases("ALTER TABLE workshop.a ADD c INT", &r),
            "ALTER TABLE workshop.a ADD c INT"
        );
    }
}
