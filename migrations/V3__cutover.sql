-- Cutover and rollback journal (see crates/core/src/cutover.rs).
-- A run is `open` from before its first change until it is `done` or `aborted`;
-- each step is recorded (started_at) BEFORE it runs and finished_at after.
CREATE TABLE IF NOT EXISTS cutover_runs (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  service      VARCHAR(64)     NOT NULL,
  kind         VARCHAR(16)     NOT NULL COMMENT 'cutover | rollback',
  status       VARCHAR(16)     NOT NULL COMMENT 'open | done | aborted',
  token        VARCHAR(64)     NOT NULL COMMENT 'session value that lets dropship''s own writes pass its freeze triggers',
  freeze_file  VARCHAR(255)    NULL COMMENT 'source position recorded after the freeze (cutover) or after the copy-back (rollback)',
  freeze_pos   BIGINT UNSIGNED NULL,
  freeze_gtid  TEXT            NULL,
  message      TEXT            NOT NULL,
  started_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  finished_at  TIMESTAMP(6)    NULL DEFAULT NULL,
  KEY ix_service_status (service, status)
);

CREATE TABLE IF NOT EXISTS cutover_journal (
  run_id       BIGINT UNSIGNED NOT NULL,
  seq          INT UNSIGNED    NOT NULL,
  step         VARCHAR(32)     NOT NULL,
  note         TEXT            NOT NULL,
  started_at   TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  finished_at  TIMESTAMP(6)    NULL DEFAULT NULL,
  PRIMARY KEY (run_id, seq)
);
