-- Validates the checks that 20261207000001 added NOT VALID. VALIDATE takes SHARE UPDATE
-- EXCLUSIVE: the scheduler keeps inserting and finishing runs, and the API keeps reading them,
-- while it scans (nothing in this transaction takes a stronger lock).
ALTER TABLE cron_job_runs VALIDATE CONSTRAINT cron_job_runs_trigger_type_check;
ALTER TABLE cron_job_runs VALIDATE CONSTRAINT cron_job_runs_retry_shape;
