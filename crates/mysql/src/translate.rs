//! Table definitions across flavors: a source's `SHOW CREATE TABLE` made acceptable to a target of the other
//! flavor, and column-type equality that ignores how each flavor spells the same type.
//!
//! Same flavor: the definition passes through untouched. MySQL → MariaDB: MySQL 8's collations
//! (`utf8mb4_0900_*`) become MariaDB's nearest (`utf8mb4_uca1400_nopad_*` from 10.10, `utf8mb4_unicode_520_nopad_ci`
//! before), version comments for MySQL-only features are resolved (`INVISIBLE` kept, `SRID` dropped), expression
//! defaults calling MySQL-only functions are dropped, and functional index parts are dropped. MariaDB → MySQL:
//! `uca1400` collations become `0900` ones; MariaDB-only types and features are refused by name. Every change is
//! a note the caller logs; anything that cannot be carried over exactly is an [`Untranslatable`] naming the clause,
//! with the way out (create the table on the target by hand: dropship copies into an existing empty table).
//!
//! SHOW CREATE TABLE prints one column or index per line, so this works line by line on that output; it is not
//! a general SQL rewriter.

use crate::flavor::{Flavor, FlavorKind};

/// A definition the target accepts, and what was changed to get there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub sql: String,
    /// One sentence per change (empty when the definition passed through).
    pub notes: Vec<String>,
}

/// Part of a definition the target flavor cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslatable {
    /// The offending clause, quoted from the definition.
    pub what: String,
    pub hint: String,
}

impl std::fmt::Display for Untranslatable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.what, self.hint)
    }
}

const BY_HAND: &str =
    "create the table on the target yourself with an equivalent definition; dropship copies into an existing empty table";

/// MySQL-only functions that MariaDB lacks, as they appear in expression defaults.
const MYSQL_ONLY_FUNCTIONS: &[&str] = &["uuid_to_bin(", "bin_to_uuid(", "is_uuid(", "regexp_like("];

/// Makes the `SHOW CREATE TABLE` text `create` from a `from` server acceptable to a `to` server.
pub fn create_table(
    create: &str,
    from: &Flavor,
    to: &Flavor,
) -> Result<Translated, Untranslatable> {
    if from.kind == to.kind {
        return Ok(Translated {
            sql: create.to_string(),
            notes: Vec::new(),
        });
    }
    let (head, rest) = create.split_once('\n').unwrap_or((create, ""));
    let (body, tail) = match rest.rfind("\n)") {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => ("", rest),
    };
    let mut notes = Vec::new();
    let mut defs = Vec::new();
    for line in body.lines() {
        let def = line.trim().trim_end_matches(',');
        if def.is_empty() {
            continue;
        }
        let out = match to.kind {
            FlavorKind::MariaDb => to_mariadb_line(def, to, &mut notes)?,
            FlavorKind::MySql => to_mysql_line(def, &mut notes)?,
        };
        if let Some(d) = out {
            defs.push(format!("  {d}"));
        }
    }
    let tail = match to.kind {
        FlavorKind::MariaDb => to_mariadb_options(tail, to, &mut notes)?,
        FlavorKind::MySql => to_mysql_options(tail, &mut notes)?,
    };
    let sql = if body.is_empty() {
        create.to_string()
    } else {
        format!("{head}\n{}\n{tail}", defs.join(",\n"))
    };
    Ok(Translated { sql, notes })
}

fn to_mariadb_line(
    def: &str,
    to: &Flavor,
    notes: &mut Vec<String>,
) -> Result<Option<String>, Untranslatable> {
    let lower = def.to_ascii_lowercase();
    // Functional key parts: `KEY `k` ((expr))`. MariaDB has no such index; an index never changes data.
    if is_functional_index(&lower) {
        notes.push(format!(
            "dropped the functional index `{def}` (MariaDB has none)"
        ));
        return Ok(None);
    }
    if lower.contains("/*!80016 not enforced */") {
        return Err(Untranslatable {
            what: format!("the unenforced CHECK constraint `{def}` (MariaDB enforces every CHECK)"),
            hint: BY_HAND.into(),
        });
    }
    if column_type_word(&lower) == Some("vector") {
        return Err(Untranslatable {
            what: format!("the MySQL VECTOR column `{def}`"),
            hint: BY_HAND.into(),
        });
    }
    let mut out = resolve_version_comments(def, notes)?;
    // Expression defaults that call functions MariaDB lacks.
    if let Some((start, end)) = expression_default(&out) {
        let expr = out[start..end].to_ascii_lowercase();
        if MYSQL_ONLY_FUNCTIONS.iter().any(|f| expr.contains(f)) {
            notes.push(format!(
                "dropped the default `{}` of `{}` (MariaDB lacks the function); rows keep the source's values, but after cutover an INSERT that omits the column gets NULL or an error",
                &out[start..end],
                column_name(def)
            ));
            out.replace_range(start - 1..end, "");
        }
    }
    Ok(Some(map_collations_to_mariadb(&out, to, notes)))
}

fn to_mysql_line(def: &str, notes: &mut Vec<String>) -> Result<Option<String>, Untranslatable> {
    let lower = def.to_ascii_lowercase();
    if let Some(word) = column_type_word(&lower) {
        if matches!(word, "uuid" | "inet4" | "inet6" | "vector" | "xmltype") {
            return Err(Untranslatable {
                what: format!("the MariaDB-only column type {word} in `{def}`"),
                hint: BY_HAND.into(),
            });
        }
    }
    for feature in ["compressed", "period for", "without system versioning"] {
        if contains_word(&lower, feature) && !is_index(&lower) {
            return Err(Untranslatable {
                what: format!(
                    "the MariaDB-only clause {} in `{def}`",
                    feature.to_ascii_uppercase()
                ),
                hint: BY_HAND.into(),
            });
        }
    }
    Ok(Some(map_collations_to_mysql(
        &parenthesize_function_default(def),
        notes,
    )))
}

/// MariaDB prints a function default bare (`DEFAULT uuid()`); MySQL wants it in parentheses (`DEFAULT (uuid())`),
/// except for the CURRENT_TIMESTAMP family.
fn parenthesize_function_default(def: &str) -> String {
    let lower = def.to_ascii_lowercase();
    let Some(at) = lower.find(" default ") else {
        return def.to_string();
    };
    let start = at + " default ".len();
    let name_len = lower[start..]
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let name = &lower[start..start + name_len];
    if name_len == 0
        || lower.as_bytes().get(start + name_len) != Some(&b'(')
        || matches!(
            name,
            "current_timestamp" | "now" | "localtime" | "localtimestamp"
        )
    {
        return def.to_string();
    }
    match closing_paren(def, start + name_len) {
        Some(i) => format!("{}({}){}", &def[..start], &def[start..=i], &def[i + 1..]),
        None => def.to_string(),
    }
}

fn to_mariadb_options(
    tail: &str,
    to: &Flavor,
    notes: &mut Vec<String>,
) -> Result<String, Untranslatable> {
    let resolved = resolve_version_comments(tail, notes)?;
    Ok(map_collations_to_mariadb(&resolved, to, notes))
}

fn to_mysql_options(tail: &str, notes: &mut Vec<String>) -> Result<String, Untranslatable> {
    let lower = tail.to_ascii_lowercase();
    if lower.contains("with system versioning") {
        return Err(Untranslatable {
            what: "a system-versioned table (WITH SYSTEM VERSIONING)".into(),
            hint: BY_HAND.into(),
        });
    }
    let mut out = tail.to_string();
    for option in ["page_checksum", "transactional"] {
        if let Some(at) = out.to_ascii_lowercase().find(&format!(" {option}=")) {
            let end = out[at + 1..].find(' ').map_or(out.len(), |e| at + 1 + e);
            notes.push(format!(
                "dropped the Aria table option `{}`",
                &out[at + 1..end]
            ));
            out.replace_range(at..end, "");
        }
    }
    Ok(map_collations_to_mysql(&out, notes))
}

/// `/*!NNNNN body */` comments: MariaDB executes them when its own version number is higher, so MySQL 8's
/// (80000 and up) must be resolved here. Known bodies are kept as plain text or dropped; others are refused.
fn resolve_version_comments(s: &str, notes: &mut Vec<String>) -> Result<String, Untranslatable> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("/*!") {
        let after = &rest[at + 3..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let Some(close) = after.find("*/") else { break };
        let version: u32 = after[..digits].parse().unwrap_or(0);
        out.push_str(&rest[..at]);
        let body = after[digits..close].trim();
        if version < 80000 {
            out.push_str(&rest[at..at + 3 + close + 2]);
        } else {
            let lower = body.to_ascii_lowercase();
            if lower == "invisible" {
                out.push_str("INVISIBLE");
            } else if lower.starts_with("srid ") {
                notes.push(format!(
                    "dropped `{body}` (MariaDB has no column SRID; values keep theirs)"
                ));
                let trimmed = out.trim_end().len();
                out.truncate(trimmed);
            } else if lower.starts_with("default_encryption") {
                notes.push(format!("dropped `{body}`"));
            } else {
                return Err(Untranslatable {
                    what: format!("the MySQL {version} clause `{body}`"),
                    hint: BY_HAND.into(),
                });
            }
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The byte range of an expression default `DEFAULT (expr)` in a column definition.
fn expression_default(def: &str) -> Option<(usize, usize)> {
    let lower = def.to_ascii_lowercase();
    let at = lower.find(" default (")?;
    let close = closing_paren(def, at + " default ".len())?;
    Some((at + 1, close + 1))
}

/// The index of the `)` closing the `(` at byte `open` of `s`, skipping quoted text.
fn closing_paren(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    for (i, b) in s.bytes().enumerate().skip(open) {
        match (quote, b) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'(') => depth += 1,
            (None, b')') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_functional_index(lower: &str) -> bool {
    ["key ", "index ", "unique ", "fulltext ", "spatial "]
        .iter()
        .any(|k| lower.starts_with(k))
        && lower.contains(" ((")
}

fn is_index(lower: &str) -> bool {
    [
        "key ",
        "index ",
        "unique ",
        "primary ",
        "fulltext ",
        "spatial ",
        "constraint ",
    ]
    .iter()
    .any(|k| lower.starts_with(k))
}

/// The type word of a column definition (`int`, `varchar`, `uuid`): the token after the quoted name.
fn column_type_word(lower: &str) -> Option<&str> {
    let rest = lower.strip_prefix('`')?;
    let end = rest.find("` ")?;
    let ty = rest[end + 2..].split([' ', '(']).next()?;
    Some(ty)
}

fn column_name(def: &str) -> &str {
    def.strip_prefix('`')
        .and_then(|r| r.split('`').next())
        .unwrap_or(def)
}

fn contains_word(hay: &str, word: &str) -> bool {
    hay.match_indices(word).any(|(i, _)| {
        let before = hay[..i]
            .chars()
            .last()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_');
        let after = hay[i + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_');
        before && after
    })
}

/// Replaces every whole word `from(word)` maps, outside quotes. `word` is compared in lower case.
fn map_words(s: &str, mut map: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut quote: Option<char> = None;
    let mut word = String::new();
    let flush =
        |word: &mut String, out: &mut String, map: &mut dyn FnMut(&str) -> Option<String>| {
            if !word.is_empty() {
                match map(&word.to_ascii_lowercase()) {
                    Some(new) => out.push_str(&new),
                    None => out.push_str(word),
                }
                word.clear();
            }
        };
    for c in s.chars() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out, &mut map);
        if matches!(c, '\'' | '"' | '`') {
            quote = Some(c);
        }
        out.push(c);
    }
    flush(&mut word, &mut out, &mut map);
    out
}

fn map_collations_to_mariadb(s: &str, to: &Flavor, notes: &mut Vec<String>) -> String {
    let uca1400 = (to.major, to.minor) >= (10, 10);
    map_words(s, |w| {
        let new = mysql_collation_on_mariadb(w, uca1400)?;
        if !notes.iter().any(|n| n.contains(&format!("collation {w} "))) {
            notes.push(format!(
                "collation {w} became {new} (MariaDB lacks MySQL 8's UCA 9.0 collations)"
            ));
        }
        Some(new)
    })
}

fn map_collations_to_mysql(s: &str, notes: &mut Vec<String>) -> String {
    map_words(s, |w| {
        let new = mariadb_collation_on_mysql(w)?;
        if !notes.iter().any(|n| n.contains(&format!("collation {w} "))) {
            notes.push(format!(
                "collation {w} became {new} (MySQL lacks MariaDB's UCA 14.0 collations)"
            ));
        }
        Some(new)
    })
}

/// A replicated DDL statement (any `CREATE`/`ALTER`, as the application wrote it) from a `from` server made
/// acceptable to a `to` server of the other flavor: collation names of the source's flavor become the target's
/// nearest, outside string literals and quoted names, each change a note. Same flavor: untouched. Other clauses
/// pass as written: a target that refuses one pauses the service with its own error.
pub fn ddl_statement(sql: &str, from: &Flavor, to: &Flavor) -> Translated {
    let mut notes = Vec::new();
    let sql = match (from.kind, to.kind) {
        (FlavorKind::MySql, FlavorKind::MariaDb) => map_collations_to_mariadb(sql, to, &mut notes),
        (FlavorKind::MariaDb, FlavorKind::MySql) => map_collations_to_mysql(sql, &mut notes),
        _ => sql.to_string(),
    };
    Translated { sql, notes }
}

/// MariaDB's nearest collation to a MySQL 8 `utf8mb4_0900_*` one (both NO PAD).
pub fn mysql_collation_on_mariadb(name: &str, uca1400: bool) -> Option<String> {
    let suffix = name.strip_prefix("utf8mb4_")?;
    let rest = suffix.strip_prefix("0900_")?;
    if rest == "bin" {
        return Some("utf8mb4_nopad_bin".into());
    }
    if !uca1400 {
        return Some("utf8mb4_unicode_520_nopad_ci".into());
    }
    // Language-specific ones (`utf8mb4_de_pb_0900_ai_ci`) have no MariaDB counterpart and are left for the
    // target to refuse by name.
    Some(format!("utf8mb4_uca1400_nopad_{rest}"))
}

/// MySQL's nearest collation to a MariaDB `uca1400` one.
pub fn mariadb_collation_on_mysql(name: &str) -> Option<String> {
    let (charset, rest) = name.split_once("_uca1400_")?;
    let rest = rest.strip_prefix("nopad_").unwrap_or(rest);
    match charset {
        // MySQL has no accent-insensitive, case-sensitive 0900 collation: ai_cs becomes the stricter as_cs.
        "utf8mb4" => Some(format!(
            "utf8mb4_0900_{}",
            match rest {
                "as_ci" => "as_ci",
                "as_cs" | "ai_cs" => "as_cs",
                _ => "ai_ci",
            }
        )),
        "utf8mb3" | "utf8" => Some("utf8mb3_unicode_520_ci".into()),
        _ => None,
    }
}

/// Whether two columns hold the same type, however each flavor prints it: integer display widths (`int(11)`,
/// MariaDB and MySQL 5.7) and `year(4)` are ignored, and MariaDB's JSON (a `longtext`) equals MySQL's `json`.
/// `data_type` and `column_type` are `information_schema.COLUMNS` values.
pub fn same_column_type(
    a_data_type: &str,
    a_column_type: &str,
    b_data_type: &str,
    b_column_type: &str,
) -> bool {
    same_data_type(a_data_type, b_data_type)
        && (!a_data_type.eq_ignore_ascii_case(b_data_type)
            || normalize_column_type(a_column_type) == normalize_column_type(b_column_type))
}

/// Whether two `DATA_TYPE`s are the same, taking MariaDB's JSON (a `longtext`) as MySQL's `json`.
pub fn same_data_type(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    a == b
        || matches!(
            (a.as_str(), b.as_str()),
            ("json", "longtext") | ("longtext", "json")
        )
}

/// `int(11) unsigned` → `int unsigned`; `year(4)` → `year`; lower case.
pub fn normalize_column_type(column_type: &str) -> String {
    let lower = column_type.to_ascii_lowercase();
    let base = lower.split(['(', ' ']).next().unwrap_or("");
    let widthless = matches!(
        base,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year"
    );
    if !widthless {
        return lower;
    }
    match (lower.find('('), lower.find(')')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{}", &lower[..open], &lower[close + 1..])
        }
        _ => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mysql() -> Flavor {
        Flavor::parse("9.7.4")
    }
    fn mariadb() -> Flavor {
        Flavor::parse("10.11.6-MariaDB")
    }

    const MYSQL_CREATE: &str = "CREATE TABLE `d` (
  `id` binary(16) NOT NULL DEFAULT (uuid_to_bin(uuid())),
  `ts` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  `j` json DEFAULT NULL,
  `p` point NOT NULL /*!80003 SRID 4326 */,
  `n` varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin DEFAULT 'utf8mb4_0900_ai_ci',
  `k` int DEFAULT NULL /*!80023 INVISIBLE */,
  PRIMARY KEY (`id`),
  KEY `f` ((lower(`n`))),
  SPATIAL KEY `p` (`p`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci";

    #[test]
    fn a_mysql_definition_becomes_one_mariadb_accepts() {
        let t = create_table(MYSQL_CREATE, &mysql(), &mariadb()).expect("translates");
        assert_eq!(
            t.sql,
            "CREATE TABLE `d` (
  `id` binary(16) NOT NULL,
  `ts` timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  `j` json DEFAULT NULL,
  `p` point NOT NULL,
  `n` varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin DEFAULT 'utf8mb4_0900_ai_ci',
  `k` int DEFAULT NULL INVISIBLE,
  PRIMARY KEY (`id`),
  SPATIAL KEY `p` (`p`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_uca1400_nopad_ai_ci"
        );
        let notes = t.notes.join("\n");
        for part in [
            "uuid_to_bin",
            "SRID 4326",
            "functional index",
            "utf8mb4_0900_bin",
            "utf8mb4_0900_ai_ci",
        ] {
            assert!(notes.contains(part), "no note about {part}: {notes}");
        }
    }

    #[test]
    fn the_same_flavor_passes_through() {
        let t =
            create_table(MYSQL_CREATE, &mysql(), &Flavor::parse("8.0.36")).expect("same flavor");
        assert_eq!(t.sql, MYSQL_CREATE);
        assert!(t.notes.is_empty());
    }

    #[test]
    fn an_unenforced_check_is_refused_on_mariadb() {
        let create = "CREATE TABLE `c` (\n  `a` int DEFAULT NULL,\n  CONSTRAINT `c_chk_1` CHECK ((`a` > 0)) /*!80016 NOT ENFORCED */\n) ENGINE=InnoDB";
        let e = create_table(create, &mysql(), &mariadb()).expect_err("refused");
        assert!(e.what.contains("c_chk_1"), "{e}");
        assert!(e.hint.contains("yourself"), "{e}");
    }

    #[test]
    fn a_mariadb_definition_becomes_one_mysql_accepts() {
        let create = "CREATE TABLE `m` (
  `id` int(11) NOT NULL,
  `j` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`j`)),
  `s` varchar(5) COLLATE utf8mb4_uca1400_ai_ci DEFAULT current_timestamp(),
  `u` char(36) DEFAULT uuid(),
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_uca1400_ai_ci PAGE_CHECKSUM=1";
        let t = create_table(create, &mariadb(), &mysql()).expect("translates");
        assert!(
            t.sql
                .contains("`s` varchar(5) COLLATE utf8mb4_0900_ai_ci DEFAULT current_timestamp(),"),
            "{}",
            t.sql
        );
        assert!(
            t.sql.contains("`u` char(36) DEFAULT (uuid()),"),
            "{}",
            t.sql
        );
        assert!(t.sql.ends_with("COLLATE=utf8mb4_0900_ai_ci"), "{}", t.sql);
        assert!(
            t.notes.iter().any(|n| n.contains("PAGE_CHECKSUM=1")),
            "{:?}",
            t.notes
        );
    }

    #[test]
    fn mariadb_only_types_are_refused_on_mysql_by_name() {
        for ty in ["uuid", "inet6", "inet4"] {
            let create = format!(
                "CREATE TABLE `u` (\n  `a` {ty} NOT NULL,\n  PRIMARY KEY (`a`)\n) ENGINE=InnoDB"
            );
            let e = create_table(&create, &mariadb(), &mysql()).expect_err("refused");
            assert!(e.what.contains(ty) && e.what.contains("`a`"), "{e}");
        }
        let create =
            "CREATE TABLE `v` (\n  `a` int NOT NULL\n) ENGINE=InnoDB WITH SYSTEM VERSIONING";
        assert!(create_table(create, &mariadb(), &mysql()).is_err());
    }

    #[test]
    fn a_replicated_ddl_gets_the_other_flavors_collations_outside_literals() {
        let mysql = Flavor::parse("9.7.4");
        let mariadb = Flavor::parse("10.11.19-MariaDB");
        let t = ddl_statement(
            "ALTER TABLE t MODIFY s VARCHAR(9) COLLATE utf8mb4_0900_as_cs COMMENT 'utf8mb4_0900_ai_ci', \
             DEFAULT COLLATE=UTF8MB4_0900_AI_CI",
            &mysql,
            &mariadb,
        );
        assert_eq!(
            t.sql,
            "ALTER TABLE t MODIFY s VARCHAR(9) COLLATE utf8mb4_uca1400_nopad_as_cs COMMENT 'utf8mb4_0900_ai_ci', \
             DEFAULT COLLATE=utf8mb4_uca1400_nopad_ai_ci"
        );
        assert_eq!(t.notes.len(), 2, "{:?}", t.notes);
        let back = ddl_statement(
            "CREATE TABLE `utf8mb4_uca1400_ai_ci` (s TEXT COLLATE utf8mb4_uca1400_ai_ci)",
            &mariadb,
            &mysql,
        );
        assert_eq!(
            back.sql,
            "CREATE TABLE `utf8mb4_uca1400_ai_ci` (s TEXT COLLATE utf8mb4_0900_ai_ci)"
        );
        let same = ddl_statement("ALTER TABLE t COLLATE utf8mb4_0900_ai_ci", &mysql, &mysql);
        assert_eq!(same.sql, "ALTER TABLE t COLLATE utf8mb4_0900_ai_ci");
        assert!(same.notes.is_empty());
    }

    #[test]
    fn collations_map_both_ways() {
        assert_eq!(
            mysql_collation_on_mariadb("utf8mb4_0900_ai_ci", true).as_deref(),
            Some("utf8mb4_uca1400_nopad_ai_ci")
        );
        assert_eq!(
            mysql_collation_on_mariadb("utf8mb4_0900_as_cs", false).as_deref(),
            Some("utf8mb4_unicode_520_nopad_ci")
        );
        assert_eq!(mysql_collation_on_mariadb("utf8mb4_general_ci", true), None);
        assert_eq!(
            mariadb_collation_on_mysql("utf8mb4_uca1400_ai_ci").as_deref(),
            Some("utf8mb4_0900_ai_ci")
        );
        assert_eq!(
            mariadb_collation_on_mysql("utf8mb4_uca1400_nopad_as_cs").as_deref(),
            Some("utf8mb4_0900_as_cs")
        );
        assert_eq!(
            mariadb_collation_on_mysql("utf8mb3_uca1400_ai_ci").as_deref(),
            Some("utf8mb3_unicode_520_ci")
        );
        assert_eq!(mariadb_collation_on_mysql("latin1_swedish_ci"), None);
    }

    #[test]
    fn column_types_compare_across_flavors() {
        assert!(same_column_type("int", "int(11)", "int", "int"));
        assert!(same_column_type(
            "bigint",
            "bigint(20) unsigned",
            "bigint",
            "bigint unsigned"
        ));
        assert!(same_column_type("year", "year(4)", "year", "year"));
        assert!(same_column_type("json", "json", "longtext", "longtext"));
        assert!(!same_column_type("int", "int", "bigint", "bigint"));
        assert!(!same_column_type("int", "int unsigned", "int", "int"));
        assert!(!same_column_type(
            "varchar",
            "varchar(10)",
            "varchar",
            "varchar(11)"
        ));
        assert!(!same_column_type(
            "decimal",
            "decimal(10,2)",
            "decimal",
            "decimal(10,3)"
        ));
    }
}
