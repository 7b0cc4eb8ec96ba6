-- Part III, SPEC 17: retries with backoff.
--
-- * Definitions gain a retry policy: `retry_max_attempts` counts the first attempt (1: no
--   retries), delays grow from `retry_initial_delay_ms` by `retry_multiplier` up to
--   `retry_max_delay_ms`.
-- * Runs gain `attempt` (1 for the first), `retry_of` (the failed run a retry follows),
--   `next_retry_at` (on a failed run: when its retry is due; null when none follows),
--   `not_before` (a pending retry waits for it).
--
-- Every new column of the runs table is nullable or has a constant default, so adding it is a
-- catalog change, not a rewrite of the history. The new checks are added NOT VALID (no scan
-- under this migration's exclusive lock) and validated by 20261207000004. The slot guard that lets
-- retries have rows of their own, and the one-retry-per-run guard, are built concurrently by
-- 20261207000002 and 20261207000003; 20261207000005 drops the old slot guard.

ALTER TABLE cron_job_definitions
    ADD COLUMN retry_max_attempts int NOT NULL DEFAULT 1,
    ADD COLUMN retry_initial_delay_ms bigint NOT NULL DEFAULT 30000,
    ADD COLUMN retry_max_delay_ms bigint NOT NULL DEFAULT 600000,
    ADD COLUMN retry_multiplier double precision NOT NULL DEFAULT 2.0,
    ADD CONSTRAINT cron_job_definitions_retry_policy CHECK (
        retry_max_attempts BETWEEN 1 AND 20
        AND retry_initial_delay_ms >= 1000
        AND retry_max_delay_ms BETWEEN retry_initial_delay_ms AND 86400000
        AND retry_multiplier BETWEEN 1.0 AND 10.0
    );

ALTER TABLE cron_job_runs
    ADD COLUMN attempt int NOT NULL DEFAULT 1,
    ADD COLUMN retry_of uuid,
    ADD COLUMN next_retry_at timestamptz,
    ADD COLUMN not_before timestamptz;

ALTER TABLE cron_job_runs DROP CONSTRAINT cron_job_runs_trigger_type_check;
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_trigger_type_check
    CHECK (trigger_type IN ('scheduled', 'manual', 'retry')) NOT VALID;
-- A retry follows a failed run and is attempt 2 or later; every other run is attempt 1.
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_retry_shape CHECK (
    attempt BETWEEN 1 AND 20
    AND (trigger_type = 'retry') = (retry_of IS NOT NULL)
    AND (trigger_type = 'retry') = (attempt > 1)
) NOT VALID;
