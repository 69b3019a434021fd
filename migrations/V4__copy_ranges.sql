-- Parallel ranges within one table: each copy_chunks row (chunk_no) covers the
-- rows whose first key column is in [range_lo, range_hi) (NULL = unbounded),
-- fixed when the table's copy is planned so a resume uses the same ranges.
ALTER TABLE copy_chunks
  ADD COLUMN range_lo LONGBLOB NULL COMMENT 'first key column lower bound, inclusive (postcard Value); NULL = none',
  ADD COLUMN range_hi LONGBLOB NULL COMMENT 'first key column upper bound, exclusive (postcard Value); NULL = none';
