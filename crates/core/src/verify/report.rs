//! What verify found: per table, schema drift and every differing row (key,
//! differing columns with both values), and a summary. Rendered as text for
//! people or as JSON (`--json`); the same structure is stored in
//! `_dropship.verify_progress.result` so an interrupted run resumes with what
//! it had already found.
//!
//! Values are shown as text when they are printable UTF-8 of a text column,
//! otherwise as `0x` hex; anything longer than [`MAX_SHOWN`] characters is
//! cut and marked with its full length.

use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Longest value shown, in characters (bytes for hex).
pub const MAX_SHOWN: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub service: String,
    /// False when the target's applied position could not be awaited
    /// (replication not running or far behind): see `notes`.
    pub replication_running: bool,
    pub notes: Vec<String>,
    pub tables: Vec<TableReport>,
    pub rows_compared: u64,
    pub chunks: u64,
    pub elapsed_ms: u64,
    pub identical: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableReport {
    /// Source `db.table`.
    pub table: String,
    /// Target `db.table`.
    pub target: String,
    /// Schema differences, one line each.
    pub drift: Vec<String>,
    /// False when rows could not be compared at all (missing table or key).
    pub compared: bool,
    pub rows_compared: u64,
    pub chunks: u64,
    /// Chunks whose first comparison differed (rows changing meanwhile, or
    /// lag) and that were compared again.
    #[serde(default)]
    pub rechecked_chunks: u64,
    /// Number of differing rows (may exceed `rows.len()`).
    pub differing_rows: u64,
    /// Differing rows (at most a few hundred per table are listed).
    pub rows: Vec<RowDiff>,
    /// Resumed from a previous interrupted run.
    pub resumed: bool,
}

impl TableReport {
    pub fn identical(&self) -> bool {
        self.compared && self.drift.is_empty() && self.differing_rows == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPart {
    pub column: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowKind {
    /// On the source only.
    MissingOnTarget,
    /// On the target only.
    ExtraOnTarget,
    /// On both, with different values.
    Different,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDiff {
    pub column: String,
    pub source: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDiff {
    pub key: Vec<KeyPart>,
    pub kind: RowKind,
    pub columns: Vec<ColumnDiff>,
}

impl RowDiff {
    pub fn key_text(&self) -> String {
        let parts: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{}={}", k.column, k.value))
            .collect();
        format!("({})", parts.join(", "))
    }
}

/// A value for display (see the module doc).
pub fn show(v: &mysql_async::Value, text_column: bool) -> String {
    use mysql_async::Value as V;
    match v {
        V::NULL => "NULL".into(),
        V::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s)
                if text_column && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') =>
            {
                let n = s.chars().count();
                if n > MAX_SHOWN {
                    format!(
                        "'{}'... ({n} characters)",
                        s.chars().take(MAX_SHOWN).collect::<String>()
                    )
                } else {
                    format!("'{s}'")
                }
            }
            _ => {
                let head = &b[..b.len().min(MAX_SHOWN)];
                let mut h = String::from("0x");
                for x in head {
                    let _ = write!(h, "{x:02X}");
                }
                if b.len() > MAX_SHOWN {
                    let _ = write!(h, "... ({} bytes)", b.len());
                }
                h
            }
        },
        V::Float(f) => format!("{f:?}"),
        V::Double(d) => format!("{d:?}"),
        other => other.as_sql(false).trim_matches('\'').to_string(),
    }
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        for t in &self.tables {
            let verdict = if !t.compared {
                "NOT COMPARED"
            } else if t.identical() {
                "identical"
            } else if t.differing_rows > 0 {
                "DIFFERENT"
            } else {
                "SCHEMA DRIFT"
            };
            let _ = writeln!(
                s,
                "{} -> {}: {verdict} ({} rows, {} chunks{}{}{})",
                t.table,
                t.target,
                t.rows_compared,
                t.chunks,
                if t.rechecked_chunks > 0 {
                    format!(", {} rechecked", t.rechecked_chunks)
                } else {
                    String::new()
                },
                if t.differing_rows > 0 {
                    format!(", {} differing rows", t.differing_rows)
                } else {
                    String::new()
                },
                if t.resumed { ", resumed" } else { "" }
            );
            for d in &t.drift {
                let _ = writeln!(s, "  schema: {d}");
            }
            for r in &t.rows {
                match r.kind {
                    RowKind::MissingOnTarget => {
                        let _ = writeln!(s, "  row {} is missing on the target", r.key_text());
                    }
                    RowKind::ExtraOnTarget => {
                        let _ = writeln!(s, "  row {} exists only on the target", r.key_text());
                    }
                    RowKind::Different => {
                        let _ = writeln!(s, "  row {} differs:", r.key_text());
                        for c in &r.columns {
                            let _ = writeln!(
                                s,
                                "    {}: source {}, target {}",
                                c.column, c.source, c.target
                            );
                        }
                    }
                }
            }
            if (t.rows.len() as u64) < t.differing_rows {
                let _ = writeln!(
                    s,
                    "  ... and {} more differing rows",
                    t.differing_rows - t.rows.len() as u64
                );
            }
        }
        let _ = writeln!(
            s,
            "{}: {} rows compared in {} chunks, {:.1} s: {}",
            self.service,
            self.rows_compared,
            self.chunks,
            self.elapsed_ms as f64 / 1000.0,
            if self.identical {
                "identical"
            } else {
                "DIFFERENCES FOUND"
            }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_binary_values_are_cut_and_shown_as_hex() {
        let long = "x".repeat(100);
        assert!(show(&mysql_async::Value::Bytes(long.into_bytes()), true)
            .ends_with("... (100 characters)"));
        assert_eq!(
            show(&mysql_async::Value::Bytes(vec![0x61, 0]), false),
            "0x6100"
        );
        assert_eq!(
            show(&mysql_async::Value::Bytes(vec![0x61, 0]), true),
            "0x6100"
        );
        assert_eq!(show(&mysql_async::Value::NULL, true), "NULL");
    }
}
