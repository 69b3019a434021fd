//! Source table definitions, cached, for naming row-image columns when the
//! binlog's table map carries no names (binlog_row_metadata other than FULL)
//! and for signedness. Reloaded after DDL on a table.

use crate::error::{Error, Result};
use dropship_mysql::schema::{self, TableSchema};
use mysql_async::Conn;
use std::collections::HashMap;
use std::sync::Arc;

pub struct SourceSchemas {
    conn: Conn,
    cache: HashMap<(String, String), Option<Arc<TableSchema>>>,
}

impl SourceSchemas {
    pub fn new(conn: Conn) -> SourceSchemas {
        SourceSchemas {
            conn,
            cache: HashMap::new(),
        }
    }

    pub async fn get(&mut self, db: &str, table: &str) -> Result<Option<Arc<TableSchema>>> {
        let key = (db.to_string(), table.to_string());
        if let Some(s) = self.cache.get(&key) {
            return Ok(s.clone());
        }
        let s = schema::load_table(&mut self.conn, db, table)
            .await
            .map_err(Error::db(format!(
                "reading the definition of {db}.{table} on the source"
            )))?
            .map(Arc::new);
        self.cache.insert(key, s.clone());
        Ok(s)
    }

    pub fn invalidate(&mut self, db: &str, table: &str) {
        self.cache.remove(&(db.to_string(), table.to_string()));
    }

    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }
}
