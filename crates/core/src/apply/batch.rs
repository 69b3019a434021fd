//! A batch: many source transactions collapsed into one target transaction.
//!
//! Each changed row is kept once, in its final state (`None` = deleted),
//! keyed by the target table's row key. Flushing writes, per table, one
//! multi-row `DELETE` of every touched key that may exist on the target, then
//! one multi-row `INSERT` of every row whose final state exists. A key whose
//! first change in the batch is an INSERT did not exist at the batch's start
//! (the source just inserted it), so it needs no DELETE.
//!
//! Why this is exact, even for two rows swapping a unique value: before the
//! batch the target equals the source at the batch's start position (for the
//! service's tables). Deleting every touched row and inserting the touched
//! rows' final states gives the source's state at the batch's end position:
//! untouched rows are unchanged on both sides, touched rows end as their last
//! image. That final state is one the source held, so it satisfies every
//! unique key, and the `INSERT` cannot conflict. (Upserts of final states one
//! by one could conflict mid-way; delete-all-then-insert cannot.)
//!
//! During catch-up after an initial copy the target may be *ahead* of the
//! replayed position for some rows, so the precondition above does not hold;
//! there the applier uses `REPLACE` (see `copy` for why that converges).

use dropship_mysql::sql;
use dropship_mysql::Value;
use std::collections::HashMap;

/// One target table's pending changes.
#[derive(Default)]
pub struct TableBatch {
    index: HashMap<Vec<u8>, usize>,
    /// (key values, final row in insert-column order or None for deleted,
    /// whether the row may exist on the target at the batch's start)
    entries: Vec<(Vec<Value>, Option<Vec<Value>>, bool)>,
}

impl TableBatch {
    /// Records the final state of a row. `inserted` says the change is an
    /// INSERT: when it is the key's first change in the batch, the row did
    /// not exist at the batch's start.
    pub fn set(&mut self, key: Vec<Value>, row: Option<Vec<Value>>, inserted: bool) {
        let k = encode_key(&key);
        match self.index.get(&k) {
            Some(&i) => self.entries[i].1 = row,
            None => {
                self.index.insert(k, self.entries.len());
                self.entries.push((key, row, !inserted));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Byte encoding of a key for the collapse map: exact bytes, not collation,
/// and injective (a tag per value, fixed widths, lengths before bytes), so two
/// keys share an encoding only when they are the same values. Infallible: no
/// serializer that could fail and make every key collapse into one.
pub fn encode_key(key: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * key.len());
    for v in key {
        push_value(&mut out, v);
    }
    out
}

fn push_value(out: &mut Vec<u8>, v: &Value) {
    let bytes = |out: &mut Vec<u8>, tag: u8, b: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    };
    match v {
        Value::Null => out.push(0),
        Value::Int(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::UInt(u) => {
            out.push(2);
            out.extend_from_slice(&u.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(3);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Double(d) => {
            out.push(4);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::Decimal(t) => bytes(out, 5, t.as_bytes()),
        Value::Bytes(b) => bytes(out, 6, b),
        Value::Json(t) => bytes(out, 7, t.as_bytes()),
        Value::Date { year, month, day } => {
            out.push(8);
            out.extend_from_slice(&year.to_le_bytes());
            out.extend_from_slice(&[*month, *day]);
        }
        Value::Time {
            negative,
            hours,
            minutes,
            seconds,
            micros,
        } => {
            out.push(9);
            out.push(u8::from(*negative));
            out.extend_from_slice(&hours.to_le_bytes());
            out.extend_from_slice(&[*minutes, *seconds]);
            out.extend_from_slice(&micros.to_le_bytes());
        }
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } => {
            out.push(10);
            out.extend_from_slice(&year.to_le_bytes());
            out.extend_from_slice(&[*month, *day, *hour, *minute, *second]);
            out.extend_from_slice(&micros.to_le_bytes());
        }
        Value::Timestamp { secs, micros } => {
            out.push(11);
            out.extend_from_slice(&secs.to_le_bytes());
            out.extend_from_slice(&micros.to_le_bytes());
        }
        Value::Year(y) => {
            out.push(12);
            out.extend_from_slice(&y.to_le_bytes());
        }
        Value::Bit(b) => {
            out.push(13);
            out.extend_from_slice(&b.to_le_bytes());
        }
        Value::Enum(e) => {
            out.push(14);
            out.extend_from_slice(&e.to_le_bytes());
        }
        Value::Set(m) => {
            out.push(15);
            out.extend_from_slice(&m.to_le_bytes());
        }
    }
}

/// Everything pending for one target transaction.
#[derive(Default)]
pub struct Batch {
    /// Target (database, table) -> changes, in first-touched order.
    tables: Vec<((String, String), TableShape, TableBatch)>,
    pub rows: usize,
    /// Approximate bytes of values held (see `applier`).
    pub bytes: usize,
}

/// Column names needed to write a table.
#[derive(Clone, Debug)]
pub struct TableShape {
    pub insert_columns: Vec<String>,
    pub key_columns: Vec<String>,
}

impl Batch {
    pub fn table(&mut self, db: &str, table: &str, shape: &TableShape) -> &mut TableBatch {
        let pos = self
            .tables
            .iter()
            .position(|((d, t), _, _)| d == db && t == table);
        let i = match pos {
            Some(i) => i,
            None => {
                self.tables.push((
                    (db.to_string(), table.to_string()),
                    shape.clone(),
                    TableBatch::default(),
                ));
                self.tables.len() - 1
            }
        };
        &mut self.tables[i].2
    }

    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(|t| t.2.is_empty())
    }

    pub fn clear(&mut self) {
        self.tables.clear();
        self.rows = 0;
        self.bytes = 0;
    }

    /// SQL statements for this batch (without transaction control), each at
    /// most about `max_len` bytes unless a single row is larger. `catch_up`
    /// (the target may be ahead of the batch's start): every touched key is
    /// deleted first and rows are written with `REPLACE`.
    pub fn statements(&self, catch_up: bool, max_len: usize) -> Vec<String> {
        let replace = catch_up;
        let mut out = Vec::new();
        for ((db, table), shape, tb) in &self.tables {
            if tb.is_empty() {
                continue;
            }
            let name = sql::qualified(db, table);
            // Deletes of every touched key.
            let mut stmt = String::new();
            let single = shape.key_columns.len() == 1;
            for (key, _, _) in tb.entries.iter().filter(|e| e.2 || catch_up) {
                if stmt.is_empty() {
                    stmt.push_str("DELETE FROM ");
                    stmt.push_str(&name);
                    stmt.push_str(" WHERE ");
                    if single {
                        sql::push_ident(&mut stmt, &shape.key_columns[0]);
                    } else {
                        sql::push_ident_list(
                            &mut stmt,
                            shape.key_columns.iter().map(String::as_str),
                        );
                    }
                    stmt.push_str(" IN (");
                } else {
                    stmt.push(',');
                }
                if single {
                    key[0].write_sql(&mut stmt);
                } else {
                    sql::push_tuple(&mut stmt, key.iter());
                }
                if stmt.len() >= max_len {
                    stmt.push(')');
                    out.push(std::mem::take(&mut stmt));
                }
            }
            if !stmt.is_empty() {
                stmt.push(')');
                out.push(std::mem::take(&mut stmt));
            }
            // Inserts of final states.
            for (_, row, _) in &tb.entries {
                let Some(row) = row else { continue };
                if stmt.is_empty() {
                    stmt.push_str(if replace {
                        "REPLACE INTO "
                    } else {
                        "INSERT INTO "
                    });
                    stmt.push_str(&name);
                    stmt.push(' ');
                    sql::push_ident_list(
                        &mut stmt,
                        shape.insert_columns.iter().map(String::as_str),
                    );
                    stmt.push_str(" VALUES ");
                } else {
                    stmt.push(',');
                }
                sql::push_tuple(&mut stmt, row.iter());
                if stmt.len() >= max_len {
                    out.push(std::mem::take(&mut stmt));
                }
            }
            if !stmt.is_empty() {
                out.push(stmt);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_encodings_differ_exactly_when_the_keys_do() {
        let keys: Vec<Vec<Value>> = vec![
            vec![Value::Int(1)],
            vec![Value::UInt(1)],
            vec![Value::Bytes(b"a".to_vec()), Value::Bytes(b"bc".to_vec())],
            vec![Value::Bytes(b"ab".to_vec()), Value::Bytes(b"c".to_vec())],
            vec![Value::Bytes(Vec::new())],
            vec![Value::Null],
            vec![Value::Double(0.0)],
            vec![Value::Double(-0.0)],
            vec![Value::Decimal("1.0".into())],
            vec![Value::Decimal("1.00".into())],
        ];
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(encode_key(a) == encode_key(b), i == j, "{a:?} vs {b:?}");
            }
        }
        let mut t = TableBatch::default();
        for k in &keys {
            t.set(k.clone(), None, false);
        }
        assert_eq!(t.len(), keys.len(), "no two keys collapse into one");
    }

    fn shape() -> TableShape {
        TableShape {
            insert_columns: vec!["id".into(), "u".into()],
            key_columns: vec!["id".into()],
        }
    }

    #[test]
    fn repeated_changes_to_one_row_collapse_to_its_final_state() {
        let mut b = Batch::default();
        let t = b.table("db", "t", &shape());
        t.set(
            vec![Value::Int(1)],
            Some(vec![Value::Int(1), Value::Int(10)]),
            false,
        );
        t.set(
            vec![Value::Int(1)],
            Some(vec![Value::Int(1), Value::Int(11)]),
            false,
        );
        t.set(
            vec![Value::Int(2)],
            Some(vec![Value::Int(2), Value::Int(20)]),
            false,
        );
        t.set(vec![Value::Int(2)], None, false);
        let s = b.statements(false, 1 << 20);
        assert_eq!(
            s,
            vec![
                "DELETE FROM `db`.`t` WHERE `id` IN (1,2)".to_string(),
                "INSERT INTO `db`.`t` (`id`,`u`) VALUES (1,11)".to_string()
            ]
        );
    }

    #[test]
    fn rows_first_inserted_in_the_batch_need_no_delete() {
        let mut b = Batch::default();
        let t = b.table("db", "t", &shape());
        t.set(
            vec![Value::Int(1)],
            Some(vec![Value::Int(1), Value::Int(10)]),
            true,
        );
        t.set(
            vec![Value::Int(1)],
            Some(vec![Value::Int(1), Value::Int(12)]),
            false,
        );
        t.set(
            vec![Value::Int(3)],
            Some(vec![Value::Int(3), Value::Int(30)]),
            true,
        );
        t.set(vec![Value::Int(3)], None, false);
        t.set(vec![Value::Int(4)], None, false);
        let s = b.statements(false, 1 << 20);
        assert_eq!(
            s,
            vec![
                "DELETE FROM `db`.`t` WHERE `id` IN (4)".to_string(),
                "INSERT INTO `db`.`t` (`id`,`u`) VALUES (1,12)".to_string()
            ]
        );
    }

    #[test]
    fn composite_keys_use_row_constructors_and_statements_split_by_size() {
        let mut b = Batch::default();
        let sh = TableShape {
            insert_columns: vec!["a".into(), "b".into()],
            key_columns: vec!["a".into(), "b".into()],
        };
        let t = b.table("db", "t", &sh);
        for i in 0..100 {
            t.set(
                vec![Value::Int(i), Value::Bytes(b"x".to_vec())],
                Some(vec![Value::Int(i), Value::Bytes(b"x".to_vec())]),
                false,
            );
        }
        let s = b.statements(true, 200);
        assert!(s[0].starts_with("DELETE FROM `db`.`t` WHERE (`a`,`b`) IN ((0,X'78')"));
        assert!(s.len() > 4);
        assert!(s.iter().any(|x| x.starts_with("REPLACE INTO")));
    }
}
