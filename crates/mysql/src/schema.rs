//! Table definitions read from `information_schema`: column names, types,
//! signedness, generated columns and the row key (primary key, or the first
//! unique key whose columns are all NOT NULL).
//!
//! Column order is `ORDINAL_POSITION`, which is the order of values in binlog
//! row images (generated and invisible columns included).

use crate::sql;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// `DATA_TYPE`, lower case: `int`, `varchar`, `datetime`, ...
    pub data_type: String,
    /// `COLUMN_TYPE`: `int(10) unsigned`, `enum('a','b')`, ...
    pub column_type: String,
    pub unsigned: bool,
    pub nullable: bool,
    /// Stored or virtual generated column: never written by dropship.
    pub generated: bool,
    pub charset: Option<String>,
}

impl Column {
    /// Declared width of a `BINARY(n)` column: its values are always n bytes.
    pub fn binary_width(&self) -> Option<usize> {
        if self.data_type != "binary" {
            return None;
        }
        let t = self.column_type.to_ascii_lowercase();
        let inner = t.strip_prefix("binary(")?.split(')').next()?;
        inner.trim().parse().ok()
    }

    /// Storage width in bytes of an integer column, for reinterpreting signed
    /// binlog values as unsigned.
    pub fn int_width(&self) -> Option<u8> {
        match self.data_type.as_str() {
            "tinyint" => Some(1),
            "smallint" => Some(2),
            "mediumint" => Some(3),
            "int" | "integer" => Some(4),
            "bigint" => Some(8),
            _ => None,
        }
    }
}

/// A table's columns and row key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub database: String,
    pub table: String,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the row key; empty when the table has none.
    pub key: Vec<usize>,
    /// True when `key` is the PRIMARY KEY (false: a NOT NULL unique key).
    pub key_is_primary: bool,
}

impl TableSchema {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn key_names(&self) -> Vec<&str> {
        self.key
            .iter()
            .filter_map(|&i| self.columns.get(i).map(|c| c.name.as_str()))
            .collect()
    }
}

/// Loads one table's schema, or `None` if the table does not exist.
pub async fn load_table<C: Queryable>(
    conn: &mut C,
    database: &str,
    table: &str,
) -> Result<Option<TableSchema>, mysql_async::Error> {
    let q = format!(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, EXTRA, \
         IFNULL(GENERATION_EXPRESSION,''), IFNULL(CHARACTER_SET_NAME,'') \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} \
         ORDER BY ORDINAL_POSITION",
        sql::string_literal(database),
        sql::string_literal(table)
    );
    let rows: Vec<(String, String, String, String, String, String, String)> = conn.query(q).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let columns: Vec<Column> = rows
        .into_iter()
        .map(
            |(name, data_type, column_type, nullable, extra, gen, charset)| Column {
                unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
                nullable: nullable == "YES",
                generated: is_generated(&extra, &gen),
                data_type: data_type.to_ascii_lowercase(),
                column_type,
                charset: (!charset.is_empty()).then_some(charset),
                name,
            },
        )
        .collect();
    let q = format!(
        "SELECT s.INDEX_NAME, s.COLUMN_NAME, s.NULLABLE FROM information_schema.STATISTICS s \
         WHERE s.TABLE_SCHEMA = {} AND s.TABLE_NAME = {} AND s.NON_UNIQUE = 0 \
         ORDER BY s.INDEX_NAME = 'PRIMARY' DESC, s.INDEX_NAME, s.SEQ_IN_INDEX",
        sql::string_literal(database),
        sql::string_literal(table)
    );
    // COLUMN_NAME is NULL for MySQL 8 functional index parts: such an index
    // cannot be a row key.
    let keys: Vec<(String, Option<String>, Option<String>)> = conn.query(q).await?;
    let mut key = Vec::new();
    let mut key_is_primary = false;
    let mut current: Option<String> = None;
    let mut candidate: Vec<usize> = Vec::new();
    let mut candidate_ok = true;
    let finish = |name: &Option<String>, cand: &mut Vec<usize>, ok: bool, key: &mut Vec<usize>| {
        if key.is_empty() && ok && !cand.is_empty() {
            *key = std::mem::take(cand);
            if name.as_deref() == Some("PRIMARY") {
                return true;
            }
        }
        cand.clear();
        false
    };
    for (index, col, nullable) in keys {
        if current.as_deref() != Some(index.as_str()) {
            if current.is_some() && finish(&current, &mut candidate, candidate_ok, &mut key) {
                key_is_primary = true;
            }
            current = Some(index);
            candidate_ok = true;
        }
        match col.and_then(|col| columns.iter().position(|c| c.name == col)) {
            Some(i) if nullable.as_deref() != Some("YES") && !columns[i].nullable => {
                candidate.push(i)
            }
            _ => candidate_ok = false,
        }
    }
    if current.is_some() && finish(&current, &mut candidate, candidate_ok, &mut key) {
        key_is_primary = true;
    }
    Ok(Some(TableSchema {
        database: database.to_string(),
        table: table.to_string(),
        columns,
        key,
        key_is_primary,
    }))
}

/// Whether a column is generated (stored or virtual), from `information_schema.COLUMNS`' `EXTRA` and
/// `GENERATION_EXPRESSION`.
///
/// A generated column has a generation expression (MySQL prints `''` for other columns, MariaDB `NULL`) and an
/// `EXTRA` of `VIRTUAL GENERATED` / `STORED GENERATED` (MySQL) or `VIRTUAL GENERATED` / `STORED GENERATED` /
/// `PERSISTENT GENERATED` (MariaDB). MySQL's `DEFAULT_GENERATED` (a column with an expression or
/// `CURRENT_TIMESTAMP` default, perhaps `on update CURRENT_TIMESTAMP`) is *not* generated: its values are
/// ordinary stored values that must be copied and written, or the target would invent its own (the apply time,
/// or a different primary key for `DEFAULT (UUID_TO_BIN(UUID()))`).
pub fn is_generated(extra: &str, generation_expression: &str) -> bool {
    if !generation_expression.trim().is_empty() {
        return true;
    }
    extra.split_whitespace().any(|w| {
        ["virtual", "stored", "persistent"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k))
    })
}

/// Lists base tables of `database` (names only).
pub async fn list_tables<C: Queryable>(
    conn: &mut C,
    database: &str,
) -> Result<Vec<String>, mysql_async::Error> {
    let q = format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} \
         AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        sql::string_literal(database)
    );
    conn.query(q).await
}

/// A foreign key whose action writes the child table: `ON DELETE` or
/// `ON UPDATE` is `CASCADE`, `SET NULL` or `SET DEFAULT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadingKey {
    pub name: String,
    pub database: String,
    /// The child table, whose rows the action changes.
    pub table: String,
    pub parent: String,
    pub on_delete: String,
    pub on_update: String,
}

impl CascadingKey {
    /// `ON DELETE CASCADE`, `ON UPDATE SET NULL`, or both.
    pub fn actions(&self) -> String {
        let writes = |r: &str| !matches!(r, "RESTRICT" | "NO ACTION");
        let mut a = Vec::new();
        if writes(&self.on_delete) {
            a.push(format!("ON DELETE {}", self.on_delete));
        }
        if writes(&self.on_update) {
            a.push(format!("ON UPDATE {}", self.on_update));
        }
        a.join(" ")
    }
}

/// The cascading foreign keys declared in a `SHOW CREATE TABLE` text of
/// `database`.`table`. Read from the definition rather than from
/// `information_schema.REFERENTIAL_CONSTRAINTS`, which MariaDB hides from a
/// user holding only SELECT (so the keys would silently read as none).
pub fn cascading_keys(database: &str, table: &str, create: &str) -> Vec<CascadingKey> {
    let mut out = Vec::new();
    for line in create.lines() {
        let l = line.trim().trim_end_matches(',');
        let Some(rest) = l.strip_prefix("CONSTRAINT ") else {
            continue;
        };
        let Some(fk) = rest.find(" FOREIGN KEY ") else {
            continue;
        };
        let name = unquote(&rest[..fk]);
        let Some(refs) = rest.find(" REFERENCES ") else {
            continue;
        };
        let after = &rest[refs + " REFERENCES ".len()..];
        let parent_end = after.find(" (").unwrap_or(after.len());
        let parent = match after[..parent_end].split_once("`.`") {
            Some((d, t)) => format!("{}.{}", unquote(d), unquote(t)),
            None => format!("{database}.{}", unquote(&after[..parent_end])),
        };
        let rule = |kw: &str| -> String {
            let Some(at) = after.find(kw) else {
                return "RESTRICT".into();
            };
            let tail = &after[at + kw.len()..];
            [
                "SET DEFAULT",
                "SET NULL",
                "NO ACTION",
                "CASCADE",
                "RESTRICT",
            ]
            .iter()
            .find(|r| tail.starts_with(*r))
            .map(|r| r.to_string())
            .unwrap_or_else(|| "RESTRICT".into())
        };
        let key = CascadingKey {
            name,
            database: database.to_string(),
            table: table.to_string(),
            parent,
            on_delete: rule(" ON DELETE "),
            on_update: rule(" ON UPDATE "),
        };
        if !key.actions().is_empty() {
            out.push(key);
        }
    }
    out
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('`').replace("``", "`")
}

/// Whether an `information_schema.COLUMNS.DATA_TYPE` is one of the integer
/// types, TINYINT to BIGINT (not YEAR, not BIT): exact decimal text, and
/// arithmetic between values.
pub fn is_integer_type(data_type: &str) -> bool {
    matches!(
        data_type,
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint"
    )
}

/// `SHOW CREATE TABLE` text.
pub async fn show_create_table<C: Queryable>(
    conn: &mut C,
    database: &str,
    table: &str,
) -> Result<Option<String>, mysql_async::Error> {
    let row: Option<(String, String)> = conn
        .query_first(format!(
            "SHOW CREATE TABLE {}",
            sql::qualified(database, table)
        ))
        .await?;
    Ok(row.map(|r| r.1))
}

#[cfg(test)]
mod tests {
    use super::{cascading_keys, is_generated, is_integer_type};

    #[test]
    fn integer_types_are_tinyint_to_bigint_only() {
        for t in ["tinyint", "smallint", "mediumint", "int", "bigint"] {
            assert!(is_integer_type(t), "{t}");
        }
        for t in ["year", "bit", "decimal", "double", "varchar", "integer"] {
            assert!(!is_integer_type(t), "{t}");
        }
    }

    #[test]
    fn cascading_keys_are_read_from_the_definition_and_restrict_ones_are_not() {
        let create = "CREATE TABLE `posts` (\n  `id` int NOT NULL,\n  `user_id` int DEFAULT NULL,\n  `shop_id` int DEFAULT NULL,\n  `o` int,\n  PRIMARY KEY (`id`),\n  \
            CONSTRAINT `posts_user` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE CASCADE,\n  \
            CONSTRAINT `posts_shop` FOREIGN KEY (`shop_id`) REFERENCES `other`.`shops` (`id`) ON UPDATE SET NULL,\n  \
            CONSTRAINT `posts_o` FOREIGN KEY (`o`) REFERENCES `o` (`id`) ON DELETE RESTRICT ON UPDATE NO ACTION\n) ENGINE=InnoDB";
        let keys = cascading_keys("app", "posts", create);
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(
            (keys[0].name.as_str(), keys[0].parent.as_str()),
            ("posts_user", "app.users")
        );
        assert_eq!(keys[0].actions(), "ON DELETE CASCADE");
        assert_eq!(
            (keys[1].name.as_str(), keys[1].parent.as_str()),
            ("posts_shop", "other.shops")
        );
        assert_eq!(keys[1].actions(), "ON UPDATE SET NULL");
    }

    #[test]
    fn default_generated_columns_are_ordinary_columns_and_generated_ones_are_not() {
        // MySQL 8/9 EXTRA texts for columns with defaults: not generated.
        for extra in [
            "DEFAULT_GENERATED",
            "DEFAULT_GENERATED on update CURRENT_TIMESTAMP",
            "on update current_timestamp()",
            "auto_increment",
            "INVISIBLE",
            "",
        ] {
            assert!(!is_generated(extra, ""), "{extra}");
        }
        for (extra, expr) in [
            ("VIRTUAL GENERATED", "concat(`a`,'x')"),
            ("STORED GENERATED", "(`id` * 2)"),
            ("PERSISTENT GENERATED", ""),
            ("VIRTUAL GENERATED INVISIBLE", "`a` + 1"),
            ("", "`a` + 1"),
        ] {
            assert!(is_generated(extra, expr), "{extra} / {expr}");
        }
    }
}
