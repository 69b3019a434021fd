-- verify progress, so an interrupted `dropship verify` resumes. One row per
-- (service, source table) of the run in progress; the rows of a finished run
-- are deleted when its report is printed.
CREATE TABLE IF NOT EXISTS verify_progress (
  service        VARCHAR(64)     NOT NULL,
  table_name     VARCHAR(200)    NOT NULL COMMENT 'source db.table',
  last_key       MEDIUMTEXT      NULL COMMENT 'JSON array of SQL literals: every chunk up to this key is verified',
  done           TINYINT(1)      NOT NULL DEFAULT 0,
  result         LONGTEXT        NOT NULL COMMENT 'JSON table report of the verified chunks',
  updated_at     TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (service, table_name)
);
