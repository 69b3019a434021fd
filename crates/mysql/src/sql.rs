//! Identifier quoting and small statement builders. Every SQL text dropship
//! sends with a table or column name in it is built here, so a table named
//! `order`, `my-table` or with a backtick in its name always works.

use crate::value::Value;

/// Quotes an identifier with backticks, doubling any backtick inside.
pub fn ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    push_ident(&mut s, name);
    s
}

/// Appends a quoted identifier to `out`.
pub fn push_ident(out: &mut String, name: &str) {
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
}

/// `` `db`.`table` ``
pub fn qualified(db: &str, table: &str) -> String {
    let mut s = String::with_capacity(db.len() + table.len() + 5);
    push_ident(&mut s, db);
    s.push('.');
    push_ident(&mut s, table);
    s
}

/// A database name as a `GRANT ... ON db.*` target: quoted, with `_` and
/// `%` escaped, since a database-level grant reads them as wildcards
/// (`GRANT ... ON `a_b`.*` would also grant on `aXb`).
pub fn grant_database(db: &str) -> String {
    ident(
        &db.replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%"),
    )
}

/// Quotes a string literal (for names compared in information_schema queries).
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Appends `(v1,v2,...)` for a row of values.
pub fn push_tuple<'a>(out: &mut String, values: impl IntoIterator<Item = &'a Value>) {
    out.push('(');
    let mut first = true;
    for v in values {
        if !first {
            out.push(',');
        }
        first = false;
        v.write_sql(out);
    }
    out.push(')');
}

/// Appends `(a,b,c)` of quoted identifiers.
pub fn push_ident_list<'a>(out: &mut String, names: impl IntoIterator<Item = &'a str>) {
    out.push('(');
    let mut first = true;
    for n in names {
        if !first {
            out.push(',');
        }
        first = false;
        push_ident(out, n);
    }
    out.push(')');
}

/// Matches a `*`-pattern (only `*` is special) against a name.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| rec(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && rec(rest, &n[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

/// Which side of a key value a keyset predicate selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySide {
    /// Rows whose key sorts strictly after the value.
    After,
    /// Rows whose key sorts at or before the value.
    UpTo,
}

/// The keyset predicate over a (composite) key: rows whose key `keys` sorts on
/// `side` of the key whose values are the SQL literals `literals`, in the
/// key's lexicographic order. Written as a bound on the first column (which an
/// index range scan can use) and the OR-expansion (`a > 1 OR (a = 1 AND b > 'x')`)
/// that is exact for every column. No keys: `1` (every row).
pub fn keyset<K: AsRef<str>, L: AsRef<str>>(keys: &[K], literals: &[L], side: KeySide) -> String {
    let n = keys.len().min(literals.len());
    if n == 0 {
        return "1".into();
    }
    let (strict, inclusive) = match side {
        KeySide::After => (" > ", " >= "),
        KeySide::UpTo => (" < ", " <= "),
    };
    let eq = |out: &mut String, j: usize| {
        push_ident(out, keys[j].as_ref());
        out.push_str(" = ");
        out.push_str(literals[j].as_ref());
    };
    let mut out = String::from("(");
    push_ident(&mut out, keys[0].as_ref());
    out.push_str(inclusive);
    out.push_str(literals[0].as_ref());
    out.push_str(" AND (");
    for i in 0..n {
        if i > 0 {
            out.push_str(" OR ");
        }
        out.push('(');
        for j in 0..i {
            eq(&mut out, j);
            out.push_str(" AND ");
        }
        push_ident(&mut out, keys[i].as_ref());
        out.push_str(strict);
        out.push_str(literals[i].as_ref());
        out.push(')');
    }
    if side == KeySide::UpTo {
        out.push_str(" OR (");
        for j in 0..n {
            if j > 0 {
                out.push_str(" AND ");
            }
            eq(&mut out, j);
        }
        out.push(')');
    }
    out.push_str("))");
    out
}

/// Rows whose key sorts after the key `values` (keyset pagination, the
/// copy's "after the last chunk"): [`keyset`] over the values' literals.
pub fn after_key(keys: &[&str], values: &[Value]) -> String {
    let literals: Vec<String> = values
        .iter()
        .map(|v| {
            let mut s = String::new();
            v.write_sql(&mut s);
            s
        })
        .collect();
    keyset(keys, &literals, KeySide::After)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_target_escapes_the_wildcards_of_a_database_name() {
        assert_eq!(grant_database("h_st"), "`h\\_st`");
        assert_eq!(grant_database("p%c`t"), "`p\\%c``t`");
        assert_eq!(grant_database("shop"), "`shop`");
    }

    #[test]
    fn keyset_predicates_are_lexicographic_and_bounded_on_the_first_column() {
        let k = ["a", "b"];
        assert_eq!(
            keyset(&k, &["1", "'x'"], KeySide::After),
            "(`a` >= 1 AND ((`a` > 1) OR (`a` = 1 AND `b` > 'x')))"
        );
        assert_eq!(
            keyset(&k, &["1", "'x'"], KeySide::UpTo),
            "(`a` <= 1 AND ((`a` < 1) OR (`a` = 1 AND `b` < 'x') OR (`a` = 1 AND `b` = 'x')))"
        );
        assert_eq!(
            keyset(&["a"], &["7"], KeySide::After),
            "(`a` >= 7 AND ((`a` > 7)))"
        );
        assert_eq!(keyset::<&str, &str>(&[], &[], KeySide::After), "1");
    }

    #[test]
    fn identifiers_with_backticks_and_reserved_words_are_quoted() {
        assert_eq!(ident("order"), "`order`");
        assert_eq!(ident("my`table"), "`my``table`");
        assert_eq!(qualified("shop", "my-table"), "`shop`.`my-table`");
    }

    #[test]
    fn string_literals_escape_quotes_and_backslashes() {
        assert_eq!(string_literal("it's\\"), "'it''s\\\\'");
    }

    #[test]
    fn star_patterns_match_prefixes_and_middles() {
        assert!(pattern_matches("order_*", "order_items"));
        assert!(pattern_matches("*", "anything"));
        assert!(pattern_matches("a*c", "abbbc"));
        assert!(!pattern_matches("order_*", "orders"));
        assert!(pattern_matches("orders", "orders"));
    }

    #[test]
    fn keyset_predicate_expands_composite_keys() {
        let p = after_key(&["a", "b"], &[Value::Int(1), Value::Bytes(b"x".to_vec())]);
        assert_eq!(p, "(`a` >= 1 AND ((`a` > 1) OR (`a` = 1 AND `b` > X'78')))");
    }
}
