-- Part III, exactly once in every mode.
--
-- * Runs gain the failure reason `fenced`: a scheduler cut off from the database stopped its
--   own runs before any peer could count it lost.
-- * Definitions record who resumed them, as they record who paused and retired them.
-- * Scheduler instances record their clock's offset from the database's, and the settings
--   that every process of a cluster must agree on, so a disagreement is visible.
--
-- The reason check is replaced NOT VALID (no scan of the history under this migration's
-- exclusive lock) and validated by the next migration, in a transaction of its own, under a lock
-- that lets reads and writes go on.

ALTER TABLE cron_job_runs DROP CONSTRAINT cron_job_runs_reason_check;
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_reason_check CHECK (reason IN (
    'overlap',                                                                    -- skipped
    'error', 'panic', 'timeout', 'stale', 'shutdown', 'scheduler_lost', 'fenced', -- failed
    'cancelled',                                                                  -- cancelled
    'no_scheduler', 'target_unavailable', 'database_unreachable', 'overloaded', 'not_started' -- missed
)) NOT VALID;

-- Local clock minus the database's, in milliseconds, as of the instance's last heartbeat.
ALTER TABLE cron_scheduler_instances ADD COLUMN clock_offset_ms bigint;
-- CRON_MISSED_AFTER, CRON_STALE_AFTER and a digest of the webhook URLs, as this instance reads them.
ALTER TABLE cron_scheduler_instances ADD COLUMN settings jsonb NOT NULL DEFAULT '{}';

ALTER TABLE cron_job_definitions ADD COLUMN resumed_by text, ADD COLUMN resumed_at timestamptz;
