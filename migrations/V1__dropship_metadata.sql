-- dropship's own metadata on each target, in database `_dropship`.
-- The position row is written in the same transaction as the rows it covers.
CREATE TABLE IF NOT EXISTS positions (
  service      VARCHAR(64)     NOT NULL PRIMARY KEY,
  binlog_file  VARCHAR(255)    NOT NULL,
  binlog_pos   BIGINT UNSIGNED NOT NULL,
  gtid         TEXT            NOT NULL,
  source_ts    BIGINT          NOT NULL DEFAULT 0 COMMENT 'source commit time (epoch s) of the last applied transaction',
  ddl_pending  TEXT            NULL COMMENT 'DDL started but its position not yet committed',
  updated_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
);

CREATE TABLE IF NOT EXISTS service_state (
  service      VARCHAR(64)  NOT NULL PRIMARY KEY,
  state        VARCHAR(32)  NOT NULL COMMENT 'copying | replicating | paused | frozen | cut-over | error',
  message      TEXT         NOT NULL,
  updated_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
);

CREATE TABLE IF NOT EXISTS copy_chunks (
  service      VARCHAR(64)     NOT NULL,
  table_name   VARCHAR(200)    NOT NULL COMMENT 'source db.table',
  chunk_no     BIGINT UNSIGNED NOT NULL,
  last_key     LONGBLOB        NULL COMMENT 'key of the last copied row (postcard)',
  rows_copied  BIGINT UNSIGNED NOT NULL,
  done         TINYINT(1)      NOT NULL DEFAULT 0,
  PRIMARY KEY (service, table_name, chunk_no)
);

CREATE TABLE IF NOT EXISTS copy_state (
  service      VARCHAR(64)     NOT NULL PRIMARY KEY,
  snapshot_file VARCHAR(255)   NOT NULL,
  snapshot_pos BIGINT UNSIGNED NOT NULL,
  snapshot_gtid TEXT           NOT NULL,
  end_file     VARCHAR(255)    NULL COMMENT 'source position when the copy finished: replay uses REPLACE until here',
  end_pos      BIGINT UNSIGNED NULL,
  started_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
);
