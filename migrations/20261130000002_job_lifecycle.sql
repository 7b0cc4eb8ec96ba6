-- Part II, SPEC §13: the job lifecycle.
--
-- * Definitions: who retired them (`retired_by`), and whether a jobs file manages them
--   (`managed_by`: `api` or `file`; `cronjobs apply` owns the file-managed ones).
-- * Runs: a run-now's own payload (NULL: the job's payload was used), and cancellation: when it
--   was requested (`cancel_requested_at`, while the run is still running) and by whom.

ALTER TABLE cron_job_definitions ADD COLUMN retired_by text;
ALTER TABLE cron_job_definitions ADD COLUMN managed_by text NOT NULL DEFAULT 'api'
    CHECK (managed_by IN ('api', 'file'));

ALTER TABLE cron_job_runs ADD COLUMN payload jsonb
    CHECK (payload IS NULL OR jsonb_typeof(payload) = 'object');
ALTER TABLE cron_job_runs ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE cron_job_runs ADD COLUMN cancelled_by text;

-- A cancelled run says who cancelled it.
ALTER TABLE cron_job_runs ADD CONSTRAINT cron_job_runs_cancel_shape CHECK (
    status <> 'cancelled' OR cancelled_by IS NOT NULL
);
