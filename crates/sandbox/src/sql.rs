//! Building SQL text: quoted identifiers and literals. All SQL in this crate that embeds a name or a value goes
//! through here, so quoting is decided in one place.
//!
//! Values are written as hex literals with a charset introducer (`_latin1 X'E9'`), which puts exact bytes on the
//! server without any client-side charset conversion or escaping.

// Identifiers and string literals are quoted exactly as dropship itself does.
pub use dropship_mysql::sql::{ident, qualified, string_literal};

/// `X'...'` for raw bytes (`X''` for the empty string).
pub fn hex_literal(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2 + 3);
    s.push_str("X'");
    s.push_str(&to_hex(bytes));
    s.push('\'');
    s
}

/// `_charset X'...'`: exact bytes interpreted in `charset` (for example `utf8mb4`, `latin1`, `binary`).
pub fn charset_literal(charset: &str, bytes: &[u8]) -> String {
    format!("_{charset} {}", hex_literal(bytes))
}

/// Upper-case hex digits of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_with_backticks_are_doubled() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(qualified("db", "t"), "`db`.`t`");
    }

    #[test]
    fn string_literals_escape_quotes_backslashes_and_nul() {
        assert_eq!(string_literal("it's\\\0"), "'it''s\\\\\\0'");
    }

    #[test]
    fn charset_literals_carry_exact_bytes() {
        assert_eq!(charset_literal("latin1", &[0xE9, 0x00]), "_latin1 X'E900'");
        assert_eq!(hex_literal(&[]), "X''");
    }
}
