//! Row events of mapped tables: the per-table plan (column names, which
//! columns need a fix-up) and the fix-ups that make row images
//! flavor-independent before they become relay records.

use super::*;

/// What `rows` needs per table map, computed once per distinct table map (a
/// source writes the same map before every rows event of a table) and
/// forgotten on DDL.
#[derive(Clone)]
pub(super) struct RowsPlan {
    /// The table map this plan was computed from.
    pub(super) map: Arc<TableMap>,
    pub(super) columns: Arc<[String]>,
    /// (column index, declared width) of BINARY(n) columns.
    pub(super) binary: Vec<(usize, usize)>,
    /// (column index, integer width) of unsigned integer columns the table
    /// map does not mark as such.
    pub(super) unsigned: Vec<(usize, u8)>,
}

impl<S: RecordSink> Reader<S> {
    pub(super) async fn rows_plan(&mut self, table: &Arc<TableMap>) -> Result<RowsPlan> {
        if let Some(p) = self.plans.get_mut(&table.table_id) {
            if Arc::ptr_eq(&p.map, table) {
                return Ok(p.clone());
            }
            if *p.map == **table {
                p.map = table.clone();
                return Ok(p.clone());
            }
        }
        let names_from_map: Option<Vec<String>> =
            table.columns.iter().map(|c| c.name.clone()).collect();
        let schema = self.schemas.get(&table.database, &table.table).await?;
        let columns: Vec<String> = match (names_from_map, &schema) {
            (Some(n), _) => n,
            (None, Some(s)) if s.columns.len() == table.columns.len() => s.columns.iter().map(|c| c.name.clone()).collect(),
            (None, Some(s)) => {
                return Err(Error::definite(
                    format!("{}.{}: the binlog has {} columns but the source table now has {} and the binlog carries no column names", table.database, table.table, table.columns.len(), s.columns.len()),
                    "set binlog_row_metadata=FULL on the source (MySQL 8.0.1+, MariaDB 10.5+) so column names travel in the binlog; then restart replicate",
                ))
            }
            (None, None) => {
                return Err(Error::definite(format!("{}.{}: table no longer exists on the source and the binlog carries no column names", table.database, table.table), "set binlog_row_metadata=FULL on the source"))
            }
        };
        let mut binary = Vec::new();
        let mut unsigned = Vec::new();
        if let Some(s) = &schema {
            for (i, name) in columns.iter().enumerate() {
                let Some(sc) = s.columns.iter().find(|x| &x.name == name) else {
                    continue;
                };
                if let Some(width) = sc.binary_width() {
                    binary.push((i, width));
                }
                // Signedness: when the table map does not say, use the source schema.
                let map_says = table.columns.get(i).and_then(|c| c.unsigned);
                if map_says.is_none() && sc.unsigned {
                    if let Some(w) = sc.int_width() {
                        unsigned.push((i, w));
                    }
                }
            }
        }
        let plan = RowsPlan {
            map: table.clone(),
            columns: columns.into(),
            binary,
            unsigned,
        };
        self.plans.insert(table.table_id, plan.clone());
        Ok(plan)
    }
}

pub(super) fn fix_unsigned(img: &mut RowImage, i: usize, width: u8) {
    if let Some(v) = img.values.get_mut(i) {
        if matches!(v, Value::Int(_)) {
            *v = std::mem::replace(v, Value::Null).into_unsigned(width);
        }
    }
}

impl<S: RecordSink> Reader<S> {
    pub(super) async fn rows(
        &mut self,
        table: &Arc<TableMap>,
        mut changes: Vec<RowChange>,
    ) -> Result<()> {
        if crate::stream::heartbeat::is_heartbeat_table(&table.database, &table.table) {
            // Never mapped: its commit becomes a Progress record (see commit).
            if let Some(tx) = self.tx.as_mut() {
                tx.heartbeat = true;
            }
            return Ok(());
        }
        if !self.mapped(&table.database, &table.table) {
            return Ok(());
        }
        if self.tx.is_none() {
            self.open_tx(None, 0, false);
        }
        let plan = self.rows_plan(table).await?;
        if !plan.binary.is_empty() || !plan.unsigned.is_empty() {
            for ch in changes.iter_mut() {
                for img in [ch.before.as_mut(), ch.after.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    // BINARY(n): row images may omit trailing 0x00 bytes
                    // (MariaDB strips them); the stored value is always n
                    // bytes, and keys must match it.
                    for &(i, width) in &plan.binary {
                        if let Some(Value::Bytes(b)) = img.values.get_mut(i) {
                            if b.len() < width {
                                b.resize(width, 0);
                            }
                        }
                    }
                    for &(i, w) in &plan.unsigned {
                        fix_unsigned(img, i, w);
                    }
                }
            }
        }
        self.begin()?;
        let rec = Record::Rows(RowsRecord {
            database: table.database.clone(),
            table: table.table.clone(),
            columns: plan.columns,
            changes,
        });
        self.sink.append(&rec)?;
        Ok(())
    }
}
