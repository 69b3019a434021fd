//! What a user may do, read from `SHOW GRANTS` (the current user's).
//!
//! MySQL 8+ expands `ALL PRIVILEGES ON *.*` into the explicit list of static
//! privileges plus a second line of dynamic ones, so "has everything" is
//! told from the privileges themselves, not from the words. A grant line is
//! `GRANT <privileges> ON <object> TO <user> ...`; role grants (`GRANT
//! `r`@`%` TO ...`) and `PROXY` lines hold no object privileges and are
//! skipped. What follows `TO` (MariaDB may print a password hash there) is
//! never kept.
//!
//! Privileges held only through roles are not seen: they read as missing,
//! which errs on the side of telling the user.

/// The global privileges a CDC tool never needs; holding any means the user
/// can do far more than dropship asks for.
const BROAD: &[&str] = &[
    "ALL PRIVILEGES",
    "SUPER",
    "SHUTDOWN",
    "FILE",
    "CREATE USER",
    "GRANT OPTION",
    "SYSTEM_USER",
];

#[derive(Debug, Default, Clone)]
pub struct Grants {
    /// (object as printed, e.g. `*.*` or `` `shop`.* ``, upper-cased privileges).
    entries: Vec<(String, Vec<String>)>,
}

impl Grants {
    /// Parses the rows of `SHOW GRANTS`.
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> Grants {
        let mut entries = Vec::new();
        for line in lines {
            if let Some(e) = parse_line(line.as_ref()) {
                entries.push(e);
            }
        }
        Grants { entries }
    }

    /// Reads the current user's grants.
    pub async fn of_current_user<C: mysql_async::prelude::Queryable>(
        conn: &mut C,
    ) -> Result<Grants, mysql_async::Error> {
        let lines: Vec<String> = conn.query("SHOW GRANTS").await?;
        Ok(Grants::parse(&lines))
    }

    fn held(privs: &[String], privilege: &str) -> bool {
        privs
            .iter()
            .any(|p| p == privilege || p == "ALL PRIVILEGES" || p == "ALL")
    }

    /// Whether `privilege` is held on every table of `database`: granted on
    /// `*.*` or on `` `database`.* ``.
    pub fn on_database(&self, privilege: &str, database: &str) -> bool {
        let quoted = format!("`{}`.*", database.replace('`', "``"));
        self.entries.iter().any(|(obj, privs)| {
            (obj == "*.*" || obj.eq_ignore_ascii_case(&quoted) || obj == &format!("{database}.*"))
                && Grants::held(privs, privilege)
        })
    }

    /// Whether `privilege` is held on `*.*`.
    pub fn global(&self, privilege: &str) -> bool {
        self.entries
            .iter()
            .any(|(obj, privs)| obj == "*.*" && Grants::held(privs, privilege))
    }

    /// Whether `privilege` is held on anything (some database or table).
    pub fn anywhere(&self, privilege: &str) -> bool {
        self.entries
            .iter()
            .any(|(_, privs)| Grants::held(privs, privilege))
    }

    /// The global privileges held beyond what a replication tool needs
    /// (`ALL PRIVILEGES`, `SUPER`, `CREATE USER`, ...), in [`BROAD`]'s order.
    pub fn broad(&self) -> Vec<&'static str> {
        BROAD
            .iter()
            .copied()
            .filter(|b| {
                self.entries
                    .iter()
                    .any(|(obj, privs)| obj == "*.*" && privs.iter().any(|p| p == b))
            })
            .collect()
    }
}

/// `GRANT a, b (col1, col2), c ON obj TO ...` -> (obj, [A, B, C]).
fn parse_line(line: &str) -> Option<(String, Vec<String>)> {
    let rest = strip_prefix_ci(line.trim(), "GRANT ")?;
    // The privilege list ends at the first top-level " ON ".
    let mut depth = 0i32;
    let bytes = rest.as_bytes();
    let mut on_at = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b' ' if depth == 0
                && rest[i..].len() >= 4
                && rest[i..i + 4].eq_ignore_ascii_case(" ON ") =>
            {
                on_at = Some(i);
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let on_at = on_at?;
    let privs_text = &rest[..on_at];
    let after = &rest[on_at + 4..];
    let object = after.split(" TO ").next()?.trim();
    let object = strip_prefix_ci(object, "TABLE ")
        .or_else(|| strip_prefix_ci(object, "PROCEDURE "))
        .or_else(|| strip_prefix_ci(object, "FUNCTION "))
        .unwrap_or(object);
    let mut privs = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for ch in privs_text.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                privs.push(cur.trim().to_ascii_uppercase());
                cur.clear();
                continue;
            }
            _ if depth > 0 => continue,
            _ => {}
        }
        if depth == 0 && ch != ')' {
            cur.push(ch);
        }
    }
    privs.push(cur.trim().to_ascii_uppercase());
    privs.retain(|p| !p.is_empty() && p != "USAGE" && p != "PROXY");
    // MySQL prints "WITH GRANT OPTION" after the user.
    if after.to_ascii_uppercase().contains("WITH GRANT OPTION") {
        privs.push("GRANT OPTION".into());
    }
    Some((object.to_string(), privs))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_expands_all_privileges_and_it_still_reads_as_broad() {
        let g = Grants::parse(&[
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, SHUTDOWN, PROCESS, FILE, REFERENCES, INDEX, ALTER, SUPER, CREATE USER, TRIGGER ON *.* TO `a`@`%` WITH GRANT OPTION",
            "GRANT APPLICATION_PASSWORD_ADMIN,BINLOG_ADMIN,SYSTEM_USER ON *.* TO `a`@`%`",
        ]);
        assert_eq!(
            g.broad(),
            vec![
                "SUPER",
                "SHUTDOWN",
                "FILE",
                "CREATE USER",
                "GRANT OPTION",
                "SYSTEM_USER"
            ]
        );
        assert!(g.on_database("REFERENCES", "shop"));
        assert!(g.global("BINLOG_ADMIN"));
    }

    #[test]
    fn database_grants_hold_only_there_and_column_lists_are_skipped() {
        let g = Grants::parse(&[
            "GRANT USAGE ON *.* TO `dropship`@`%` IDENTIFIED BY PASSWORD '*ABC'",
            "GRANT SELECT, INSERT, UPDATE (a, b), REFERENCES ON `shop`.* TO `dropship`@`%`",
            "GRANT `reader`@`%` TO `dropship`@`%`",
        ]);
        assert!(g.broad().is_empty());
        assert!(g.on_database("REFERENCES", "shop"));
        assert!(g.on_database("UPDATE", "shop"));
        assert!(!g.on_database("SELECT", "other"));
        assert!(!g.global("SELECT"));
        assert!(g.anywhere("INSERT"));
        assert!(!g.anywhere("DELETE"));
    }

    #[test]
    fn mariadb_all_privileges_is_one_word_list() {
        let g =
            Grants::parse(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]);
        assert!(g.broad().contains(&"ALL PRIVILEGES"));
        assert!(g.on_database("TRIGGER", "any"));
    }
}
