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

#[cfg(test)]
mod tests {
    use super::*;

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
}
