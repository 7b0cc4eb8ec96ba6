-- Retires the slot guard that 20261207000002 replaced, and validates the checks that
-- 20261207000001 added NOT VALID. Dropping a constraint is a catalog change (a moment's
-- exclusive lock, no scan); VALIDATE takes SHARE UPDATE EXCLUSIVE, so the scheduler keeps
-- inserting and finishing runs, and the API keeps reading them, while it scans.

ALTER TABLE cron_job_runs DROP CONSTRAINT cron_job_runs_slot_guard;
ALTER TABLE cron_job_runs VALIDATE CONSTRAINT cron_job_runs_trigger_type_check;
ALTER TABLE cron_job_runs VALIDATE CONSTRAINT cron_job_runs_retry_shape;
ALTER TABLE cron_job_runs VALIDATE CONSTRAINT cron_job_runs_backfill_shape;
ALTER TABLE cron_job_runs VALIDATE CONSTRAINT cron_job_runs_backfill_fkey;
