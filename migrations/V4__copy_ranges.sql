-- Parallel ranges within one table: each copy_chunks row (chunk_no) covers the
-- rows whose first key column is in [range_lo, range_hi) (NULL = unbounded),
-- fixed when the table's copy is planned so a resume uses the same ranges.
ALTER TABLE copy_chunks
  ADD COLUMN range_lo LONGBLOB NULL COMMENT 'first key column lower bound, inclusive (postcard Value); NULL = none',
  ADD COLUMN range_hi LONGBLOB NULL COMMENT 'first key column upper bound, exclusive (postcard Value); NULL = none';

-- Non-unique secondary indexes of a table dropship created for the copy are
-- dropped while the rows load and rebuilt (sorted) when the copy ends.
CREATE TABLE IF NOT EXISTS copy_deferred_indexes (
  service      VARCHAR(64)  NOT NULL,
  table_name   VARCHAR(200) NOT NULL COMMENT 'source db.table',
  index_defs   LONGTEXT     NOT NULL COMMENT 'index clauses as SHOW CREATE TABLE prints them, one per line',
  PRIMARY KEY (service, table_name)
);
