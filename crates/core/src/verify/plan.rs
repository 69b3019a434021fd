//! What verify compares for one table, and the SQL that compares it.
//!
//! A [`TablePlan`] is built from the source and target definitions
//! (`dropship_mysql::schema`). Columns missing on either side, or whose
//! `COLUMN_TYPE` or character set differ, are *schema drift*: reported once
//! per table and left out of the row hash, so drift never shows up as "every
//! row differs". Generated (stored and virtual) and invisible columns are
//! included: they are part of what an application reads, and a target whose
//! generated values differ is a target that answers differently.
//!
//! # The per-row hash, and why it sees every stored bit
//! `MD5(CONCAT_WS('#', e1, ISNULL(c1), e2, ISNULL(c2), ...))` where `e` is an
//! exact text form of the stored value:
//! - strings, binary strings, BLOBs, ENUM/SET, JSON, spatial, BIT, integers,
//!   YEAR: `HEX(c)` — the stored bytes (or the integer), never a collation's
//!   view: `'a'`/`'A'`, a trailing space, a trailing `0x00` all change it;
//! - DECIMAL and DATE/TIME/DATETIME/TIMESTAMP: `CAST(c AS CHAR)` — exact,
//!   microseconds included when the precision has them (sessions use
//!   `time_zone = '+00:00'`, so TIMESTAMPs compare as stored UTC values);
//! - FLOAT/DOUBLE: `CAST(c + 0e0 AS CHAR)` — the value widened to a double,
//!   printed as the shortest text that reads back as the same double, so one
//!   changed bit changes it (`HEX(double)` would round to an integer and
//!   `CAST(float AS CHAR)` keeps only 6 digits; both are proven wrong in
//!   `tests/verify.rs`).
//!
//! `CONCAT_WS` skips NULLs and `HEX('')` is empty, so the `ISNULL` flag after
//! every value keeps NULL and `''` apart. `#` never occurs in any `e`.
//!
//! A chunk's checksum is `COUNT(*)` and the exact (DECIMAL) sums of both
//! 64-bit halves of the row hashes, computed on the server: only three
//! numbers cross the network per chunk.
//!
//! # Chunks
//! A chunk is a key range `(lo, hi]` (`lo` absent for the first, `hi` absent
//! for the last) with boundaries taken from the source. Every query on either
//! side uses the same range predicate, so both sides look at the same set of
//! keys whatever the rows are doing meanwhile.

use dropship_mysql::schema::{Column, TableSchema};
use dropship_mysql::sql;

/// How verify compares one table.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// `db.table` on the source.
    pub name: String,
    pub src_db: String,
    pub tgt_db: String,
    pub table: String,
    /// Row key column names, in key order.
    pub key: Vec<String>,
    /// Compared columns (present on both sides with the same type).
    pub columns: Vec<Column>,
}

/// A table's definitions on both sides, compared.
#[derive(Debug)]
pub enum Planned {
    /// Rows can be compared (maybe with `drift` on some columns).
    Compare { plan: TablePlan, drift: Vec<String> },
    /// Rows cannot be compared: the target table is missing, or a key column is.
    Refused { drift: Vec<String> },
}

/// Compares definitions and builds the plan.
pub fn plan(src: &TableSchema, tgt: Option<&TableSchema>, tgt_db: &str) -> Planned {
    let Some(tgt) = tgt else {
        return Planned::Refused {
            drift: vec![format!(
                "table {tgt_db}.{} does not exist on the target",
                src.table
            )],
        };
    };
    let mut drift = Vec::new();
    let mut columns = Vec::new();
    for c in &src.columns {
        match tgt.columns.iter().find(|t| t.name == c.name) {
            None => drift.push(format!(
                "column {} ({}) is missing on the target",
                c.name, c.column_type
            )),
            Some(t) if !t.column_type.eq_ignore_ascii_case(&c.column_type) => drift.push(format!(
                "column {} is {} on the source but {} on the target",
                c.name, c.column_type, t.column_type
            )),
            Some(t) if t.charset != c.charset => drift.push(format!(
                "column {} has character set {} on the source but {} on the target",
                c.name,
                c.charset.as_deref().unwrap_or("-"),
                t.charset.as_deref().unwrap_or("-")
            )),
            Some(_) => columns.push(c.clone()),
        }
    }
    for t in &tgt.columns {
        if !src.columns.iter().any(|c| c.name == t.name) {
            drift.push(format!(
                "column {} ({}) exists only on the target",
                t.name, t.column_type
            ));
        }
    }
    let key: Vec<String> = src.key_names().into_iter().map(String::from).collect();
    if let Some(k) = key.iter().find(|k| !columns.iter().any(|c| &c.name == *k)) {
        drift.push(format!(
            "key column {k} differs, so rows cannot be matched; fix the schema first"
        ));
        return Planned::Refused { drift };
    }
    let plan = TablePlan {
        name: format!("{}.{}", src.database, src.table),
        src_db: src.database.clone(),
        tgt_db: tgt_db.to_string(),
        table: src.table.clone(),
        key,
        columns,
    };
    Planned::Compare { plan, drift }
}

/// Exact text form of a stored value (see the module doc).
pub fn value_expr(c: &Column) -> String {
    let id = sql::ident(&c.name);
    match c.data_type.as_str() {
        "float" | "double" | "real" => format!("CAST({id} + 0e0 AS CHAR)"),
        "decimal" | "numeric" | "date" | "time" | "datetime" | "timestamp" => {
            format!("CAST({id} AS CHAR)")
        }
        _ => format!("HEX({id})"),
    }
}

/// A key range `(lo, hi]`; values are SQL literals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    pub lo: Option<Vec<String>>,
    pub hi: Option<Vec<String>>,
}

impl TablePlan {
    pub fn src_table(&self) -> String {
        sql::qualified(&self.src_db, &self.table)
    }

    pub fn tgt_table(&self) -> String {
        sql::qualified(&self.tgt_db, &self.table)
    }

    fn key_list(&self) -> String {
        self.key
            .iter()
            .map(|k| sql::ident(k))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `MD5(CONCAT_WS(...))` over every compared column.
    pub fn row_hash(&self) -> String {
        let mut parts = Vec::with_capacity(self.columns.len() * 2);
        for c in &self.columns {
            parts.push(value_expr(c));
            parts.push(format!("ISNULL({})", sql::ident(&c.name)));
        }
        format!("MD5(CONCAT_WS('#',{}))", parts.join(","))
    }

    /// `WHERE` condition of a range (`1` for the whole table).
    pub fn range_sql(&self, r: &Range) -> String {
        let mut conds = Vec::new();
        if let Some(lo) = &r.lo {
            conds.push(cmp_key(&self.key, lo, false));
        }
        if let Some(hi) = &r.hi {
            conds.push(cmp_key(&self.key, hi, true));
        }
        if conds.is_empty() {
            "1".into()
        } else {
            conds.join(" AND ")
        }
    }

    /// `COUNT(*)` and the sums of both halves of the row hashes in a range.
    pub fn checksum_sql(&self, table: &str, r: &Range) -> String {
        format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CAST(CONV(LEFT(h,16),16,10) AS UNSIGNED)),0) AS CHAR), \
             CAST(COALESCE(SUM(CAST(CONV(RIGHT(h,16),16,10) AS UNSIGNED)),0) AS CHAR) \
             FROM (SELECT {} AS h FROM {table} WHERE {}) AS x",
            self.row_hash(),
            self.range_sql(r)
        )
    }

    /// The key of the `n`th row after `lo` (the next chunk's `hi`).
    pub fn boundary_sql(&self, lo: Option<&Vec<String>>, n: usize) -> String {
        let r = Range {
            lo: lo.cloned(),
            hi: None,
        };
        format!(
            "SELECT {k} FROM {} WHERE {} ORDER BY {k} LIMIT 1 OFFSET {}",
            self.src_table(),
            self.range_sql(&r),
            n.saturating_sub(1),
            k = self.key_list()
        )
    }

    /// Key columns and row hash of every row of a range.
    pub fn row_hashes_sql(&self, table: &str, r: &Range) -> String {
        format!(
            "SELECT {}, {} FROM {table} WHERE {}",
            self.key_list(),
            self.row_hash(),
            self.range_sql(r)
        )
    }

    /// Key columns, raw values, then exact text forms, of the given keys.
    pub fn rows_sql(&self, table: &str, keys: &[Vec<String>]) -> String {
        let raw: Vec<String> = self.columns.iter().map(|c| sql::ident(&c.name)).collect();
        let exact: Vec<String> = self.columns.iter().map(value_expr).collect();
        let tuples: Vec<String> = keys
            .iter()
            .map(|k| {
                if k.len() == 1 {
                    k[0].clone()
                } else {
                    format!("({})", k.join(","))
                }
            })
            .collect();
        let lhs = if self.key.len() == 1 {
            self.key_list()
        } else {
            format!("({})", self.key_list())
        };
        format!(
            "SELECT {}, {}, {} FROM {table} WHERE {lhs} IN ({})",
            self.key_list(),
            raw.join(","),
            exact.join(","),
            tuples.join(",")
        )
    }
}

/// `key > v` (`or_equal == false`) or `key <= v`, lexicographic over the
/// key columns. The first column also gets a plain bound so the optimizer
/// sees a range on the index.
fn cmp_key(keys: &[String], v: &[String], le: bool) -> String {
    let n = keys.len().min(v.len());
    let mut ors = Vec::new();
    for i in 0..n {
        let mut and = Vec::new();
        for j in 0..i {
            and.push(format!("{} = {}", sql::ident(&keys[j]), v[j]));
        }
        and.push(format!(
            "{} {} {}",
            sql::ident(&keys[i]),
            if le { "<" } else { ">" },
            v[i]
        ));
        ors.push(format!("({})", and.join(" AND ")));
    }
    if le {
        let all: Vec<String> = (0..n)
            .map(|j| format!("{} = {}", sql::ident(&keys[j]), v[j]))
            .collect();
        ors.push(format!("({})", all.join(" AND ")));
    }
    match n {
        0 => "1".into(),
        _ => format!(
            "({} {} {} AND ({}))",
            sql::ident(&keys[0]),
            if le { "<=" } else { ">=" },
            v[0],
            ors.join(" OR ")
        ),
    }
}

/// A key value read with the binary protocol as a SQL literal for a session
/// with `NAMES utf8mb4` and backslash escapes on (see `verify::SESSION_SQL`).
pub fn literal(v: &mysql_async::Value) -> String {
    v.as_sql(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, data_type: &str) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            unsigned: false,
            nullable: true,
            generated: false,
            charset: None,
        }
    }

    #[test]
    fn composite_key_ranges_are_lexicographic_and_bounded_on_the_first_column() {
        let k = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            cmp_key(&k, &["1".into(), "'x'".into()], false),
            "(`a` >= 1 AND ((`a` > 1) OR (`a` = 1 AND `b` > 'x')))"
        );
        assert_eq!(
            cmp_key(&k, &["1".into(), "'x'".into()], true),
            "(`a` <= 1 AND ((`a` < 1) OR (`a` = 1 AND `b` < 'x') OR (`a` = 1 AND `b` = 'x')))"
        );
    }

    #[test]
    fn floats_decimals_and_temporals_hash_as_exact_text_and_the_rest_as_hex() {
        assert_eq!(value_expr(&col("f", "float")), "CAST(`f` + 0e0 AS CHAR)");
        assert_eq!(value_expr(&col("d", "decimal")), "CAST(`d` AS CHAR)");
        assert_eq!(value_expr(&col("t", "datetime")), "CAST(`t` AS CHAR)");
        assert_eq!(value_expr(&col("s", "varchar")), "HEX(`s`)");
    }

    #[test]
    fn a_dropped_target_column_is_drift_and_left_out_of_the_hash() {
        let src = TableSchema {
            database: "d".into(),
            table: "t".into(),
            columns: vec![col("id", "int"), col("x", "int")],
            key: vec![0],
            key_is_primary: true,
        };
        let mut tgt = src.clone();
        tgt.columns.pop();
        match plan(&src, Some(&tgt), "d2") {
            Planned::Compare { plan, drift } => {
                assert_eq!(plan.columns.len(), 1);
                assert_eq!(
                    drift,
                    vec!["column x (int) is missing on the target".to_string()]
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
